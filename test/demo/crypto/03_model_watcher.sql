-- Seed 004, gold: a league per symbol (seed 004's four candidates:
-- elastic net, tree, forest, gbt) for the price 60 seconds ahead, its
-- champion deployed only when it beats the one served on the same holdout
-- ("deploy": "if_better"); a scorer that predicts every arriving trade; an
-- outcome tracker that labels each prediction with the symbol's price 60 s
-- later (horizon mode) and keeps live metrics; and, until monitors land,
-- the watcher that trains the model first (seed 004's: at 20 rows per
-- symbol), retrains it every N new rows, and at once when drift_detect
-- finds drift in the deployed version's live errors.

-- The training rows: the features with the price 60 s later (the first
-- trade of the symbol at or after ts + 60 s), the tracker's own definition.
CREATE VIEW training_rows AS
SELECT f.*, o.price AS price_60s
  FROM trade_features f
 CROSS JOIN LATERAL (SELECT n.price FROM trade_features n
                      WHERE n.symbol = f.symbol AND n.ts >= f.ts + interval '60 seconds'
                      ORDER BY n.ts, n.arrival_seq LIMIT 1) o;

-- What the watcher did, for the summary and the report's chart.
CREATE TABLE model_events (
	id      serial PRIMARY KEY,
	at      timestamptz NOT NULL DEFAULT clock_timestamp(),
	data_ts timestamptz,    -- the newest trade time then
	kind    text NOT NULL,  -- train, retrain, drift, deploy, kept
	version int,
	detail  text
);

-- Records what the model's last league did (streamml.leaderboard: one
-- league per symbol), and whether its champion was deployed; returns the
-- version served after it.
CREATE FUNCTION record_league(newest timestamptz, ev_kind text, why text) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
	served int := (SELECT deployed_version FROM streamml.models WHERE name = 'price_60s');
BEGIN
	INSERT INTO model_events (data_ts, kind, version, detail)
	SELECT newest, ev_kind, l.version,
	       format('%s: %s; champion %s, holdout rmse %s', l.group_key, why, l.candidate,
	              round(l.score::numeric, 3))
	  FROM streamml.leaderboard l
	 WHERE l.model = 'price_60s' AND l.rank = 1
	 ORDER BY l.group_key;
	IF EXISTS (SELECT 1 FROM streamml.leaderboard WHERE model = 'price_60s' AND deployed) THEN
		INSERT INTO model_events (data_ts, kind, version, detail)
		VALUES (newest, 'deploy', served, format('version %s deployed: it beat the version served on the same holdout', served));
	ELSE
		INSERT INTO model_events (data_ts, kind, version, detail)
		VALUES (newest, 'kept', served, format('version %s kept: no champion beat it on the same holdout', served));
	END IF;
	RETURN served;
END
$$;

-- One look: trains, retrains or does nothing; returns what it did.
-- MONITOR PLUG-IN POINT: once streamml.create_monitor lands, this function,
-- its pg_cron job and the demo's two-second loop give way to one call in
-- crypto.sh (see "MONITOR PLUG-IN POINT" there): a monitor of price_60s
-- that retrains on drift of the outcomes' errors or every N new rows.
CREATE FUNCTION watch_price_model(first_rows int DEFAULT 20, every_rows int DEFAULT 3000,
                                  drift_method text DEFAULT 'adwin')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	features constant text[] := ARRAY['price', 'lag_1', 'lag_3', 'ma_5', 'ma_10',
	                                  'momentum', 'vol_30s', 'vol_change'];
	newest timestamptz;
	fewest bigint;
	served int;
	drifted text;
	v int;
	before int;
BEGIN
	PERFORM pg_advisory_xact_lock(4004);
	SELECT max(ts) INTO newest FROM trade_features;
	IF NOT EXISTS (SELECT 1 FROM streamml.models WHERE name = 'price_60s') THEN
		-- seed 004's watcher: the first training once 20 rows per symbol have
		-- their label
		SELECT min(n) INTO fewest
		  FROM (SELECT s.symbol, (SELECT count(*) FROM training_rows t
		                           WHERE t.symbol = s.symbol AND t.vol_change IS NOT NULL) AS n
		          FROM (SELECT DISTINCT symbol FROM trade_features) s) c;
		IF coalesce(fewest, 0) < first_rows THEN
			RETURN format('waiting: %s of %s rows', coalesce(fewest, 0), first_rows);
		END IF;
		-- seed 004's candidates, plus a nearly unpenalized linear model: the
		-- target is a price level, which the trees cannot extrapolate and
		-- elastic net's penalty pulls toward the mean
		PERFORM streamml.train_league('price_60s', 'training_rows', 'price_60s', features,
		            '{"group_by": "symbol", "order_by": "ts", "test_fraction": 0.2,
		              "deploy": "if_better", "threads": 1,
		              "candidates": ["elasticnet", "tree", "forest", "gbt",
		                             {"name": "linear", "trainer": "linreg", "options": {"l2": 0.001}}]}');
		v := record_league(newest, 'train', format('first league at %s rows per symbol', fewest));
		-- every arriving trade is scored from now on, in its loading
		-- transaction, and labelled with the price 60 s later
		PERFORM streamml.create_scorer('price_scorer', 'trade_features', 'price_60s',
		            '{"into": "price_predictions", "key": ["symbol", "trade_id"]}');
		PERFORM streamml.track_outcomes('price_scorer', 'trade_features',
		            '{"actual": "price", "horizon": "60 seconds", "partition_by": "symbol",
		              "order_by": "ts", "bucket": "5 seconds"}');
		RETURN format('league trained, version %s deployed; scorer and tracker created', v);
	END IF;

	-- drift: streamml.drift_detect over the deployed version's errors, in
	-- the order their outcomes arrived, per symbol
	SELECT deployed_version INTO served FROM streamml.models WHERE name = 'price_60s';
	SELECT string_agg(format('%s (%s, %s outcomes since v%s)', group_key, drift_method, n, served), '; ')
	  INTO drifted
	  FROM (SELECT o.group_key, count(*) AS n,
	               streamml.drift_detect(drift_method, abs(o.prediction - o.actual) / o.actual
	                                     ORDER BY o.labelled_at, o.predicted_at) AS d
	          FROM streamml.outcomes o
	         WHERE o.model = 'price_60s' AND o.version = served AND o.prediction IS NOT NULL
	         GROUP BY o.group_key) x
	 WHERE jsonb_array_length(d->'detections') > 0;
	IF drifted IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM model_events WHERE kind = 'drift' AND version = served) THEN
		INSERT INTO model_events (data_ts, kind, version, detail)
		VALUES (newest, 'drift', served, 'drift in the live errors: ' || drifted);
		PERFORM streamml.retrain('price_60s');
		v := record_league(newest, 'retrain', 'after drift');
		RETURN format('drift (%s): league run again, version %s served', drifted, v);
	END IF;

	-- otherwise every every_rows new rows
	SELECT max(version) INTO before FROM streamml.model_versions WHERE model = 'price_60s';
	PERFORM streamml.retrain('price_60s', jsonb_build_object('min_new_rows', every_rows));
	SELECT max(version) INTO v FROM streamml.model_versions WHERE model = 'price_60s';
	IF v > before THEN
		v := record_league(newest, 'retrain', format('%s or more new rows', every_rows));
		RETURN format('league run again (%s new rows): version %s served', every_rows, v);
	END IF;
	RETURN 'nothing to do';
END
$$;

-- In production pg_cron runs the watcher (pg_cron 1.4, Debian 12's, runs
-- jobs at most once a minute; the demo, which lasts a minute, also calls
-- it every two seconds).
SELECT cron.schedule('price_60s watcher', '* * * * *', 'SELECT watch_price_model()');
