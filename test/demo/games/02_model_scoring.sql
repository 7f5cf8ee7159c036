-- The sales model and the scoring of every arriving game.
--
-- A league of a random forest and a linear model predicts Global_Sales
-- from Platform, Genre, Publisher and Year, and deploys its champion; a
-- scorer predicts every game that arrives after the training; an outcome
-- tracker joins each with its actual Global_Sales (which arrives in the
-- same message) and keeps the live metrics.
--
-- Platform, Genre and Publisher are categorical features (text columns of
-- games): every trainer one-hot encodes them at training time, with at
-- most 32 levels a column (the 31 platforms each their own, the 31 most
-- frequent of the 579 publishers, the rest as "publisher=(other)"; README,
-- "Categorical features"), stores the levels with the version, and the
-- scorer encodes each arriving game with them.  The league, the scorer and
-- the tracker all read games itself.

-- The scorer's predictions table, made ahead of the scorer so that the
-- views below exist from the start.
CREATE TABLE game_scores (
	rank int NOT NULL, model text NOT NULL, version int NOT NULL,
	prediction float8, probability float8, class text,
	role text NOT NULL DEFAULT 'champion', scored_at timestamptz NOT NULL,
	PRIMARY KEY (rank, model));

-- Every game scored on arrival, with its actual Global_Sales.
CREATE VIEW game_predictions AS
SELECT g.rank, g.name, g.platform, g.genre, g.publisher, g.year, g.global_sales AS actual,
       s.prediction AS predicted, s.version, g.arrival, g.kafka_ts,
       pg_xact_commit_timestamp(s.xmin) AS committed_at
  FROM game_scores s JOIN games g USING (rank)
 WHERE s.model = 'global_sales';

-- Called once the first games are in: runs the league, creates the
-- scorer, the outcome tracker and the monitors.
CREATE FUNCTION train_sales_model() RETURNS TABLE (rank int, candidate text, kind text, version int,
                                                  holdout_rmse numeric, deployed boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY SELECT l.rank, l.candidate, l.kind, l.version, round(l.score::numeric, 4), l.deployed
	  FROM streamml.train_league('global_sales', 'games', 'global_sales',
	       ARRAY['platform', 'genre', 'publisher', 'year'],
	       '{"test_fraction": 0.2, "order_by": "arrival", "threads": 1,
	         "candidates": ["forest", {"name": "linear", "trainer": "linreg", "options": {"l2": 0.001}}]}') l
	 ORDER BY l.rank;

	PERFORM streamml.create_scorer('sales_scorer', 'games', 'global_sales', '{"into": "game_scores"}');
	-- the outcome is in the game's own message: the tracker reads games
	-- too, and its trigger (streamml_tracker_N) fires after the scorer's
	-- (streamml_scorer_N: triggers fire by name), so each outcome joins
	-- its prediction at once
	PERFORM streamml.track_outcomes('sales_scorer', 'games', '{"actual": "global_sales", "bucket": "5 seconds"}');
	-- The monitors: the league again every 4,000 new games (the first
	-- league saw 4,000), and at once when the live absolute errors drift
	-- up (Page-Hinkley, the default for a regression), at most every 20 s;
	-- each new version is deployed only if it beats the served one on the
	-- newest 20% of games by arrival.  streamml.model_events says what they
	-- did.
	PERFORM streamml.create_monitor('global_sales_rows', 'global_sales', 'rows',
	            '{"action": "retrain", "min_rows": 4000, "interval": "5 seconds", "cooldown": "5 seconds"}');
	PERFORM streamml.create_monitor('global_sales_error', 'global_sales', 'error',
	            '{"action": "retrain", "min_rows": 500, "cooldown": "20 seconds"}');
END
$$;

-- Live metrics of the games scored on arrival (streamml.live_metrics: the
-- tracker's sums per bucket), all buckets together.
CREATE VIEW live_metrics AS
SELECT sum(labelled) AS games,
       round(sqrt(sum(rmse ^ 2 * labelled) / nullif(sum(labelled), 0))::numeric, 4) AS rmse,
       round((sum(mae * labelled) / nullif(sum(labelled), 0))::numeric, 4) AS mae,
       (SELECT round((1 - sum((predicted - actual) ^ 2) / nullif(sum((actual - a.m) ^ 2), 0))::numeric, 4)
          FROM game_predictions, (SELECT avg(actual) AS m FROM game_predictions) a) AS r2,
       (SELECT round(avg(actual)::numeric, 4) FROM game_predictions) AS mean_actual
  FROM streamml.live_metrics WHERE model = 'global_sales' AND group_key IS NULL AND labelled > 0;
