-- The sales model and the scoring of every arriving game.
--
-- A league of a random forest and a linear model predicts Global_Sales
-- from Platform, Genre, Publisher and Year, and deploys its champion; a
-- scorer predicts every game that arrives after the training; an outcome
-- tracker joins each with its actual Global_Sales (which arrives in the
-- same message) and keeps the live metrics.
--
-- FOR THE LEAD: the learners take numeric and boolean features only (README,
-- "Tree models and the league", Not yet: categorical features), so
-- Platform, Genre and Publisher are still one-hot encoded here, into
-- game_rows, a table that a statement trigger on games fills with one
-- float8 column per category seen in the first games.  When categorical
-- features land, game_rows and game_categories go, and the league, the
-- scorer and the tracker take games itself with ARRAY['platform', 'genre',
-- 'publisher', 'year'].

-- The categories: each platform, genre and publisher seen in the first
-- games (publishers with fewer than 20 games together as 'other'), less the
-- most common of each, the baseline that the linear model's intercept holds.
CREATE TABLE game_categories (kind text, value text, idx int, col text, PRIMARY KEY (kind, value));

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

-- Called once the first games are in: fixes the categories, makes
-- game_rows and its trigger, runs the league, creates the scorer and the
-- outcome tracker.
CREATE FUNCTION train_sales_model() RETURNS TABLE (rank int, candidate text, kind text, version int,
                                                  holdout_rmse numeric, deployed boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	cols text;
	exprs text;
	features text[];
BEGIN
	INSERT INTO game_categories
	SELECT c.kind, c.value, row_number() OVER (ORDER BY c.kind, c.value),
	       left(c.kind || '_' || trim(BOTH '_' FROM lower(regexp_replace(c.value, '\W+', '_', 'g'))), 50)
	         || '_' || row_number() OVER (ORDER BY c.kind, c.value)
	  FROM (SELECT 'platform' AS kind, platform AS value, count(*) AS n,
	               rank() OVER (ORDER BY count(*) DESC, platform) AS r FROM games GROUP BY platform
	        UNION ALL
	        SELECT 'genre', genre, count(*), rank() OVER (ORDER BY count(*) DESC, genre) FROM games GROUP BY genre
	        UNION ALL
	        SELECT 'publisher', publisher, count(*), rank() OVER (ORDER BY count(*) DESC, publisher)
	          FROM games GROUP BY publisher HAVING count(*) >= 20) c
	 WHERE c.r > 1;
	SELECT string_agg(format('%I float8', c.col), ', ' ORDER BY c.idx),
	       string_agg(format('(%I = %L)::int::float8', c.kind, c.value), ', ' ORDER BY c.idx),
	       array_prepend('year', array_agg(c.col::text ORDER BY c.idx))
	  INTO cols, exprs, features
	  FROM game_categories c;
	EXECUTE format('CREATE TABLE game_rows (rank int PRIMARY KEY, arrival bigint, year float8,
	                global_sales float8, %s)', cols);
	EXECUTE format($f$CREATE FUNCTION game_rows_fill() RETURNS trigger LANGUAGE plpgsql AS $b$
	               BEGIN
	                 INSERT INTO game_rows SELECT rank, arrival, year, global_sales, %s FROM new_games;
	                 RETURN NULL;
	               END $b$ $f$, exprs);
	LOCK TABLE games IN SHARE ROW EXCLUSIVE MODE;
	CREATE TRIGGER game_rows_fill AFTER INSERT ON games REFERENCING NEW TABLE AS new_games
		FOR EACH STATEMENT EXECUTE FUNCTION game_rows_fill();
	EXECUTE format('INSERT INTO game_rows SELECT rank, arrival, year, global_sales, %s FROM games', exprs);

	RETURN QUERY SELECT l.rank, l.candidate, l.kind, l.version, round(l.score::numeric, 4), l.deployed
	  FROM streamml.train_league('global_sales', 'game_rows', 'global_sales', features,
	       '{"test_fraction": 0.2, "order_by": "arrival", "threads": 1,
	         "candidates": ["forest", {"name": "linear", "trainer": "linreg", "options": {"l2": 0.001}}]}') l
	 ORDER BY l.rank;

	PERFORM streamml.create_scorer('sales_scorer', 'game_rows', 'global_sales', '{"into": "game_scores"}');
	-- the outcome is in the game's own message: the tracker reads games,
	-- whose trigger game_rows_fill (which fires before the tracker's, by
	-- name) has had the game scored by then, so each outcome joins its
	-- prediction at once
	PERFORM streamml.track_outcomes('sales_scorer', 'games', '{"actual": "global_sales", "bucket": "5 seconds"}');
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
