-- Seed 004, gold: a per-symbol model of the price 60 seconds ahead (of its
-- change from the trade's price, which the scorer adds back), and the
-- watcher that trains it (seed 004's: first at 20 rows, then every N new
-- rows) and retrains it at once when its live error drifts away from its
-- holdout error.
--
-- PLUG-IN POINTS, for when they land on main:
--   [league] the train_linreg call below becomes
--       streamml.train_league('price_60s', 'training_rows', 'price_60s', ...)
--     over linear, tree and forest candidates; the champion is deployed by
--     the league instead of by "deploy": "if_better";
--   [drift] the live-RMSE ratio test below becomes streamml.drift_detect()
--     on the outcomes (the retrain call stays).

-- The training rows: features with their outcome, known 60 s later.
CREATE VIEW training_rows AS
SELECT f.*, o.actual AS price_60s, o.actual - f.price AS change_60s
  FROM trade_features f JOIN outcomes o USING (symbol, trade_id);

-- What the watcher did, for the summary and the report's chart.
CREATE TABLE model_events (
	id      serial PRIMARY KEY,
	at      timestamptz NOT NULL DEFAULT clock_timestamp(),
	data_ts timestamptz,    -- the newest trade time then
	kind    text NOT NULL,  -- train, retrain, drift, deploy
	version int,
	detail  text
);

-- One look: trains, retrains or does nothing; returns what it did.
CREATE FUNCTION watch_price_model(first_rows int DEFAULT 20, every_rows int DEFAULT 1000,
                                  drift_ratio float8 DEFAULT 2.0, drift_window int DEFAULT 150)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	features constant text[] := ARRAY['price', 'lag_1', 'lag_3', 'ma_5', 'ma_10',
	                                  'momentum', 'vol_30s', 'vol_change'];
	newest timestamptz;
	fewest bigint;
	r record;
	drifted text;
	why text;
	trained int := 0;
BEGIN
	PERFORM pg_advisory_xact_lock(4004);
	SELECT max(ts) INTO newest FROM trades;
	IF NOT EXISTS (SELECT 1 FROM streamml.models WHERE name = 'price_60s') THEN
		SELECT min(n) INTO fewest
		  FROM (SELECT s.symbol, (SELECT count(*) FROM training_rows t
		                           WHERE t.symbol = s.symbol AND t.ma_10 IS NOT NULL
		                             AND t.vol_change IS NOT NULL) AS n
		          FROM (SELECT DISTINCT symbol FROM trades) s) c;
		IF coalesce(fewest, 0) < first_rows THEN
			RETURN format('waiting: %s of %s rows', coalesce(fewest, 0), first_rows);
		END IF;
		why := format('first training: %s rows per symbol', fewest);
		FOR r IN SELECT * FROM streamml.train_linreg('price_60s', 'training_rows', 'change_60s',
		             features, '{"group_by": "symbol", "test_fraction": 0.2, "order_by": "ts",
		                         "l2": 0.001, "deploy": "if_better", "deploy_metric": "rmse"}')
		LOOP
			trained := r.version;
			INSERT INTO model_events (data_ts, kind, version, detail)
			VALUES (newest, 'train', r.version, format('%s: %s (%s rows, holdout rmse %s)',
			        r.group_key, why, r.rows_used, round((r.metrics->>'rmse')::numeric, 3)));
		END LOOP;
	ELSE
		-- drift: the deployed version's error on its latest outcomes against
		-- its holdout error, per symbol
		SELECT string_agg(format('%s live rmse %s vs holdout %s', symbol,
		                         round(live::numeric, 3), round(holdout::numeric, 3)), '; ')
		  INTO drifted
		  FROM (SELECT v.group_key AS symbol, (v.metrics->>'rmse')::float8 AS holdout,
		               (SELECT sqrt(avg((p.predicted - p.actual) ^ 2)) FROM
		                  (SELECT p.predicted, o.actual
		                     FROM predictions p JOIN outcomes o USING (symbol, trade_id)
		                    WHERE p.symbol = v.group_key AND p.version = v.version
		                    ORDER BY p.ts DESC LIMIT drift_window) p
		                HAVING count(*) = drift_window) AS live
		          FROM streamml.models m
		          JOIN streamml.model_versions v ON v.model = m.name AND v.version = m.deployed_version
		         WHERE m.name = 'price_60s') d
		 WHERE live > drift_ratio * holdout;
		IF drifted IS NOT NULL AND NOT EXISTS (
				SELECT 1 FROM model_events WHERE kind = 'drift'
				   AND data_ts > newest - interval '10 minutes') THEN
			why := 'drift: ' || drifted;
			INSERT INTO model_events (data_ts, kind, detail) VALUES (newest, 'drift', drifted);
			FOR r IN SELECT * FROM streamml.retrain('price_60s') LOOP
				trained := r.version;
				INSERT INTO model_events (data_ts, kind, version, detail)
				VALUES (newest, 'retrain', r.version, format('%s: after drift (%s rows, holdout rmse %s)',
				        r.group_key, r.rows_used, round((r.metrics->>'rmse')::numeric, 3)));
			END LOOP;
		ELSE
			FOR r IN SELECT * FROM streamml.retrain('price_60s',
			             jsonb_build_object('min_new_rows', every_rows)) LOOP
				trained := r.version;
				why := format('%s new rows', every_rows);
				INSERT INTO model_events (data_ts, kind, version, detail)
				VALUES (newest, 'retrain', r.version, format('%s: %s or more new rows (%s rows, holdout rmse %s)',
				        r.group_key, every_rows, r.rows_used, round((r.metrics->>'rmse')::numeric, 3)));
			END LOOP;
		END IF;
	END IF;
	IF trained = 0 THEN
		RETURN 'nothing to do';
	END IF;
	IF (SELECT deployed_version FROM streamml.models WHERE name = 'price_60s') = trained THEN
		INSERT INTO model_events (data_ts, kind, version, detail)
		VALUES (newest, 'deploy', trained, 'deployed: better holdout rmse than the version served');
		RETURN format('version %s trained and deployed (%s)', trained, why);
	END IF;
	INSERT INTO model_events (data_ts, kind, version, detail)
	VALUES (newest, 'kept', trained, 'not deployed: the version served did as well on the same holdout');
	RETURN format('version %s trained, not deployed (%s)', trained, why);
END
$$;

-- In production pg_cron runs the watcher (pg_cron 1.4, Debian 12's, runs
-- jobs at most once a minute; the demo, which lasts a minute, also calls
-- it every two seconds).
SELECT cron.schedule('price_60s watcher', '* * * * *', 'SELECT watch_price_model()');
