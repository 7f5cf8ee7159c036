-- The sales model and the scoring of every arriving game.
--
-- PLUG-IN POINTS, for when they land on main:
--   [categorical] the one-hot encoding below (game_categories,
--     game_features) goes when the tree learners take categorical columns:
--     train_forest/train_league over platform, genre, publisher and year;
--   [league] train_linreg becomes streamml.train_league with a random
--     forest and a linear model, the league deploying its champion;
--   [scorer] the trigger becomes streamml.create_scorer('global_sales', 'games', ...).

-- One-hot columns: each platform, genre and publisher seen in the first
-- games (publishers with fewer than 20 games together as 'other'), less
-- the most common of each, the baseline that the intercept holds.
CREATE TABLE game_categories (kind text, value text, idx int, PRIMARY KEY (kind, value));
CREATE FUNCTION game_features(p_platform text, p_genre text, p_publisher text, p_year int)
RETURNS float8[] LANGUAGE sql STABLE AS $$
	SELECT array_prepend(p_year::float8, array_agg(
	         (CASE c.kind WHEN 'platform' THEN p_platform = c.value
	                      WHEN 'genre' THEN p_genre = c.value
	                      ELSE p_publisher = c.value END)::int::float8 ORDER BY c.idx))
	  FROM game_categories c
$$;

CREATE TABLE game_predictions (
	rank       int PRIMARY KEY,
	name       text, platform text, genre text, publisher text, year int,
	actual     float8,
	predicted  float8,
	version    int,
	arrival    bigint,
	kafka_ts   timestamptz
);

CREATE FUNCTION on_games_batch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	v int := (SELECT deployed_version FROM streamml.models WHERE name = 'global_sales');
BEGIN
	IF v IS NOT NULL THEN
		INSERT INTO game_predictions
		SELECT rank, name, platform, genre, publisher, year, global_sales,
		       streamml.predict('global_sales', game_features(platform, genre, publisher, year)),
		       v, arrival, kafka_ts
		  FROM new_games;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER games_batch AFTER INSERT ON games REFERENCING NEW TABLE AS new_games
	FOR EACH STATEMENT EXECUTE FUNCTION on_games_batch();

-- Called once the first games are in: fixes the categories, trains.
CREATE FUNCTION train_sales_model() RETURNS SETOF record LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO game_categories
	SELECT kind, value, row_number() OVER (ORDER BY kind, value)
	  FROM (SELECT 'platform' AS kind, platform AS value, count(*) AS n,
	               rank() OVER (ORDER BY count(*) DESC, platform) AS r FROM games GROUP BY platform
	        UNION ALL
	        SELECT 'genre', genre, count(*), rank() OVER (ORDER BY count(*) DESC, genre) FROM games GROUP BY genre
	        UNION ALL
	        SELECT 'publisher', publisher, count(*), rank() OVER (ORDER BY count(*) DESC, publisher)
	          FROM games GROUP BY publisher HAVING count(*) >= 20) c
	 WHERE r > 1;
	RETURN QUERY SELECT t.version, t.rows_used, t.deployed, t.metrics
	  FROM streamml.train_linreg('global_sales',
	       'SELECT game_features(platform, genre, publisher, year) AS f, global_sales, arrival FROM games',
	       'global_sales', ARRAY['f'],
	       '{"test_fraction": 0.2, "order_by": "arrival", "l2": 0.001}') t;
END
$$;

CREATE VIEW live_metrics AS
SELECT count(*) AS games,
       round(sqrt(avg((predicted - actual) ^ 2))::numeric, 4) AS rmse,
       round(avg(abs(predicted - actual))::numeric, 4) AS mae,
       round((1 - sum((predicted - actual) ^ 2) / nullif(sum((actual - a.m) ^ 2), 0))::numeric, 4) AS r2,
       round(avg(actual)::numeric, 4) AS mean_actual
  FROM game_predictions, (SELECT avg(actual) AS m FROM game_predictions) a;
