-- Seed 004, gold: a league per symbol (seed 004's four candidates:
-- elastic net, tree, forest, gbt) for the price 60 seconds ahead, its
-- champion deployed only when it beats the one served on the same holdout
-- ("deploy": "if_better"); a scorer that predicts every arriving trade; an
-- outcome tracker that labels each prediction with the symbol's price 60 s
-- later (horizon mode) and keeps live metrics; and two monitors
-- (streamml.create_monitor) that run the league again: one every 3,000 new
-- rows (seed 004's periodic retraining), one when the live errors drift.
-- A small watcher trains the model first (seed 004's: at 20 rows per
-- symbol) and creates the scorer, the tracker and the monitors: a monitor
-- watches a model that exists, so it cannot do the first training.

-- The training rows: the features with the price 60 s later (the first
-- trade of the symbol at or after ts + 60 s), the tracker's own definition.
CREATE VIEW training_rows AS
SELECT f.*, o.price AS price_60s
  FROM trade_features f
 CROSS JOIN LATERAL (SELECT n.price FROM trade_features n
                      WHERE n.symbol = f.symbol AND n.ts >= f.ts + interval '60 seconds'
                      ORDER BY n.ts, n.arrival_seq LIMIT 1) o;

-- The first league, which no monitor ran (streamml.model_events has the
-- monitors' events from then on).
CREATE TABLE first_league (
	at      timestamptz NOT NULL DEFAULT clock_timestamp(),
	data_ts timestamptz,    -- the newest trade time then
	version int,
	detail  text
);

-- What happened to the model, for the report's chart and the dashboards:
-- the first league, then streamml.model_events (written by the monitors)
-- with the trade time of each event (the newest trade Kafka had delivered
-- by then: the replay runs faster than the clock) and the demo's short
-- names for the events.
CREATE VIEW model_events AS
SELECT 0::bigint AS id, at, data_ts, 'train' AS kind, version, NULL::text AS monitor, detail
  FROM first_league
UNION ALL
SELECT e.id, e.at, (SELECT max(t.ts) FROM trades t WHERE t.kafka_ts <= e.at) AS data_ts,
       CASE e.event WHEN 'drift_detected' THEN 'drift' WHEN 'retrain_started' THEN 'retrain'
                    WHEN 'deployed' THEN 'deploy' WHEN 'not_deployed' THEN 'kept'
                    ELSE e.event END AS kind,
       coalesce((e.details->>'version')::int, e.version) AS version, e.monitor, e.details::text
  FROM streamml.model_events e
 WHERE e.model = 'price_60s';

-- One look: trains the model the first time, then leaves it to the
-- monitors; returns what it did.
CREATE FUNCTION watch_price_model(first_rows int DEFAULT 20, every_rows int DEFAULT 3000)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	features constant text[] := ARRAY['price', 'lag_1', 'lag_3', 'ma_5', 'ma_10',
	                                  'momentum', 'vol_30s', 'vol_change'];
	newest timestamptz;
	fewest bigint;
	served int;
BEGIN
	IF EXISTS (SELECT 1 FROM streamml.models WHERE name = 'price_60s') THEN
		RETURN 'nothing to do';
	END IF;
	PERFORM pg_advisory_xact_lock(4004);
	IF EXISTS (SELECT 1 FROM streamml.models WHERE name = 'price_60s') THEN
		RETURN 'nothing to do';
	END IF;
	SELECT max(ts) INTO newest FROM trade_features;
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
	SELECT deployed_version INTO served FROM streamml.models WHERE name = 'price_60s';
	INSERT INTO first_league (data_ts, version, detail)
	SELECT newest, served,
	       format('first league at %s rows per symbol; champions: %s', fewest,
	              string_agg(format('%s %s (holdout rmse %s)', l.group_key, l.candidate,
	                                round(l.score::numeric, 3)), ', ' ORDER BY l.group_key))
	  FROM streamml.leaderboard l
	 WHERE l.model = 'price_60s' AND l.rank = 1;
	-- every arriving trade is scored from now on, in its loading
	-- transaction, and labelled with the price 60 s later
	PERFORM streamml.create_scorer('price_scorer', 'trade_features', 'price_60s',
	            '{"into": "price_predictions", "key": ["symbol", "trade_id"]}');
	PERFORM streamml.track_outcomes('price_scorer', 'trade_features',
	            '{"actual": "price", "horizon": "60 seconds", "partition_by": "symbol",
	              "order_by": "ts", "bucket": "5 seconds"}');
	-- The monitors.  A monitor's retrain is streamml.retrain(price_60s),
	-- which runs a league model's league again (README, "The league"),
	-- with "deploy": "if_better" on the newest 20% by ts; one retrain at a
	-- time, in the monitor worker, while loading goes on.
	-- Seed 004's periodic retraining, but only when there are new rows:
	-- every 3,000 rows of training_rows newer than the last training's.
	-- The interval and cooldown are short because the replay runs two hours
	-- of trades in a minute (in production: minutes).
	PERFORM streamml.create_monitor('price_60s_rows', 'price_60s', 'rows',
	            jsonb_build_object('action', 'retrain', 'min_rows', every_rows,
	                               'interval', '2 seconds', 'cooldown', '5 seconds'));
	-- Drift of the live errors: Page-Hinkley over |prediction - actual| of
	-- the deployed version's outcomes, fed in the outcome tracker's
	-- transaction; the league runs again at once when it fires, after 200
	-- outcomes of the version and at most every 15 s.  A monitor sees one
	-- sequence per model, both symbols' absolute errors (USDT) interleaved,
	-- whereas this demo's former watcher ran ADWIN over each symbol's
	-- relative error (the summary still shows that beside it).  So the
	-- detector's own scale: River's defaults ("delta" 0.005, "threshold"
	-- 50) fired every 30 to 100 outcomes on these errors, whose spread is
	-- tens of USDT; a rise of more than 10 USDT ("delta") summing to 3,000
	-- USDT fires it (measured on a run's outcomes with drift_detect: once
	-- or twice a version after the regime change, not before).
	PERFORM streamml.create_monitor('price_60s_error', 'price_60s', 'error',
	            '{"action": "retrain", "min_rows": 200, "cooldown": "15 seconds",
	              "detector": "page_hinkley",
	              "params": {"mode": "up", "min_instances": 200, "delta": 10, "threshold": 3000}}');
	RETURN format('league trained, version %s deployed; scorer, tracker and monitors created', served);
END
$$;

-- In production pg_cron runs the watcher until the first training
-- (pg_cron 1.4, Debian 12's, runs jobs at most once a minute; the demo,
-- which lasts a minute, also calls it every 0.3 seconds until then).
SELECT cron.schedule('price_60s watcher', '* * * * *', 'SELECT watch_price_model()');
