-- Categorical features (text, varchar, char, enum columns), one-hot encoded
-- for every family, on seed 003's games (test/data/vgsales-with-na.csv),
-- against python3-xgboost and scikit-learn (OneHotEncoder max_categories 32,
-- handle_unknown 'infrequent_if_exist'): test/data/make_categorical_fixtures.py.
CREATE TYPE genre AS ENUM ('Sports', 'Platform', 'Racing', 'Role-Playing',
	'Puzzle', 'Misc', 'Shooter', 'Simulation', 'Action', 'Fighting',
	'Adventure', 'Strategy');
CREATE TABLE vg_raw (rank int, name text, platform text, year text,
	genre text, publisher text, na_sales float8, eu_sales float8,
	jp_sales float8, other_sales float8, global_sales float8);
\copy vg_raw FROM 'test/data/vgsales-with-na.csv' CSV HEADER
-- platform char(4) (its text cast drops the padding), genre an enum,
-- publisher varchar: every categorical type
CREATE TABLE games (rank int, platform char(4), genre genre,
	publisher varchar(60), year int, global_sales float8);
INSERT INTO games SELECT rank, platform, genre::genre, publisher,
	NULLIF(year, 'N/A')::int, global_sales FROM vg_raw;
CREATE TABLE vg_expected (rank int, gbt float8, linreg float8);
\copy vg_expected FROM 'test/data/vgsales_expected.csv' CSV HEADER
SELECT count(*) AS games, count(DISTINCT platform) AS platforms,
	   count(DISTINCT genre) AS genres, count(DISTINCT publisher) AS publishers,
	   count(*) FILTER (WHERE year IS NULL) AS no_year
  FROM games;

-- Gradient-boosted trees: 31 platforms and 12 genres get a slot each; the
-- 579 publishers keep the 31 most frequent and an "other" level.
SELECT model, version, rows_used, rows_skipped, iterations, deployed
  FROM streamml.train_gbt('vg_gbt', 'games', 'global_sales',
	ARRAY['platform', 'genre', 'publisher', 'year'],
	'{"trees": 20, "max_depth": 4, "threads": 1}');
SELECT c AS feature_column, pg_catalog.jsonb_array_length(v.encoding->c->'levels') AS levels,
	   v.encoding->c->'other' AS other
  FROM streamml.model_versions v, pg_catalog.jsonb_object_keys(v.encoding) c
 WHERE v.model = 'vg_gbt' ORDER BY 1;
SELECT pg_catalog.cardinality(features) AS features, features[1:3] AS first,
	   features[75:76] AS last
  FROM streamml.model_versions WHERE model = 'vg_gbt';
SELECT features[43:45] FROM streamml.models WHERE name = 'vg_gbt';
-- the row form equals python3-xgboost within 1e-6
SELECT count(*) AS rows, max(abs(streamml.predict('vg_gbt', g) - e.gbt)) < 1e-6 AS gbt_ok
  FROM games g JOIN vg_expected e USING (rank);

-- Linear regression on the same encoding: equal to scikit-learn's
-- LinearRegression (rows without a year are skipped, and predict NULL).
SELECT model, version, rows_used, rows_skipped, converged, deployed
  FROM streamml.train_linreg('vg_lin', 'games', 'global_sales',
	ARRAY['platform', 'genre', 'publisher', 'year']);
SELECT count(*) AS rows, max(abs(streamml.predict('vg_lin', g) - e.linreg)) < 1e-6 AS linreg_ok,
	   count(*) FILTER (WHERE streamml.predict('vg_lin', g) IS NULL) AS nulls,
	   count(*) FILTER (WHERE e.linreg IS NULL) AS expected_nulls
  FROM games g JOIN vg_expected e USING (rank);
SELECT pg_catalog.cardinality(aliased) AS aliased FROM streamml.model_versions
 WHERE model = 'vg_lin';

-- Values unseen in training: a new platform (no other level: missing, so
-- NULL for the linear model and XGBoost's default direction for the trees)
-- and a new publisher (the other level).  Counted, never an error.
CREATE TABLE games_unseen (LIKE games);
INSERT INTO games_unseen VALUES (-1, 'NewC', 'Action', 'Nobody', 2016, 0),
	(-2, 'PS2', 'Action', 'Nobody', 2016, 0);
SELECT t.rank, abs(streamml.predict('vg_gbt', t) - e.gbt) < 1e-6 AS gbt_ok,
	   streamml.predict('vg_lin', t) IS NULL AS lin_null,
	   abs(streamml.predict('vg_lin', t) - e.linreg) < 1e-6 AS lin_ok
  FROM games_unseen t JOIN vg_expected e USING (rank)
 ORDER BY 1;
-- as_other also counts the publishers too rare to keep (3319 rows above
-- were scored once per model, and once more here)
SELECT * FROM streamml.unseen_categories() ORDER BY 1, 2;
-- a NULL category: missing for the trees, NULL for the linear model
SELECT streamml.predict('vg_gbt', ROW(0, NULL, 'Action', 'Nintendo', 2000, 0)::games) IS NOT NULL AS gbt_scores,
	   streamml.predict('vg_lin', ROW(0, NULL, 'Action', 'Nintendo', 2000, 0)::games) IS NULL AS lin_null;

-- evaluate scores trees and categorical models; it equals the metrics
-- aggregates over the row form.
SELECT (e->>'rows')::int AS rows, e->>'rows_skipped' AS skipped,
	   e->>'rows_other_level' AS other, e->>'rows_unseen_missing' AS missing, e->>'version' AS version,
	   abs((e->>'rmse')::float8 - (a->>'rmse')::float8) < 1e-9 AS same_rmse
  FROM streamml.evaluate('vg_gbt', 'games', 'global_sales',
	ARRAY['platform', 'genre', 'publisher', 'year']) e,
	   (SELECT streamml.regression_metrics(global_sales, streamml.predict('vg_gbt', g)) AS a
		  FROM games g) m;
SELECT (e->>'rows')::int AS rows, e->>'rows_skipped' AS skipped,
	   abs((e->>'rmse')::float8 - (a->>'rmse')::float8) < 1e-9 AS same_rmse
  FROM streamml.evaluate('vg_lin', 'games', 'global_sales',
	ARRAY['platform', 'genre', 'publisher', 'year']) e,
	   (SELECT streamml.regression_metrics(global_sales, streamml.predict('vg_lin', g)) AS a
		  FROM games g) m;
-- rows of a new source with unseen values are counted
CREATE TABLE games_new AS SELECT * FROM games WHERE rank <= 100;
UPDATE games_new SET publisher = 'Nobody' WHERE rank <= 10;
UPDATE games_new SET platform = 'NewC' WHERE rank > 95;
SELECT e->>'rows' AS rows, e->>'rows_other_level' AS other,
	   e->>'rows_unseen_missing' AS missing
  FROM streamml.evaluate('vg_gbt', 'games_new', 'global_sales',
	ARRAY['platform', 'genre', 'publisher', 'year']) e;
-- ... and scored as serving scores them: a platform that is not a level
-- (the column has no other level) is missing, so evaluate equals the
-- metrics over the row form there too (NULL for the linear model: skipped)
SELECT abs((e->>'rmse')::float8 - (a->>'rmse')::float8) < 1e-9 AS gbt_same
  FROM streamml.evaluate('vg_gbt', 'games_new', 'global_sales',
	ARRAY['platform', 'genre', 'publisher', 'year']) e,
	   (SELECT streamml.regression_metrics(global_sales, streamml.predict('vg_gbt', g)) AS a
		  FROM games_new g) m;
SELECT (e->>'rows')::int AS rows, e->>'rows_skipped' AS skipped,
	   abs((e->>'rmse')::float8 - (a->>'rmse')::float8) < 1e-9 AS lin_same
  FROM streamml.evaluate('vg_lin', 'games_new', 'global_sales',
	ARRAY['platform', 'genre', 'publisher', 'year']) e,
	   (SELECT streamml.regression_metrics(global_sales, streamml.predict('vg_lin', g)) AS a
		  FROM games_new g) m;
-- a time-ordered holdout with a platform its training rows lack: the
-- holdout's metrics are the row form's over the holdout rows (to the
-- trees' single precision)
CREATE TABLE games_time AS
SELECT rank, CASE WHEN rank > 270 THEN 'NewC' ELSE platform END AS platform,
	   genre, year, global_sales
  FROM games WHERE rank <= 300;
SELECT version FROM streamml.train_gbt('vg_time', 'games_time', 'global_sales',
	ARRAY['platform', 'genre', 'year'],
	'{"trees": 5, "threads": 1, "test_fraction": 0.2, "order_by": "rank"}');
SELECT version FROM streamml.train_linreg('vg_time_lin', 'games_time', 'global_sales',
	ARRAY['platform', 'genre', 'year'], '{"test_fraction": 0.2, "order_by": "rank"}');
SELECT v.model, (v.metrics->>'rows')::int AS holdout_rows, (a->>'rows')::int AS scored,
	   abs((v.metrics->>'rmse')::float8 / (a->>'rmse')::float8 - 1) < 1e-6 AS same_rmse
  FROM streamml.model_versions v,
	   LATERAL (SELECT streamml.regression_metrics(global_sales, streamml.predict(v.model, g)) AS a
				  FROM games_time g WHERE rank > 240) m
 WHERE v.model IN ('vg_time', 'vg_time_lin')
 ORDER BY 1;

-- Logistic regression and a forest with categorical features, holdout by k
-- (the rank shuffled).
SELECT version, rows_used > 0 AS used, metrics->>'on' AS "on",
	   (metrics->>'roc_auc')::float8 > 0.7 AS auc_above_07
  FROM streamml.train_logreg('vg_hit', 'SELECT *, global_sales >= 1 AS hit, (rank * 7919) % 16603 AS k FROM games',
	'hit', ARRAY['platform', 'genre', 'publisher', 'year'],
	'{"order_by": "k", "test_fraction": 0.2, "l2": 1}');
SELECT version, rows_used > 0 AS used, metrics->>'on' AS "on",
	   (metrics->>'roc_auc')::float8 > 0.7 AS auc_above_07
  FROM streamml.train_forest('vg_hit_forest', 'SELECT *, global_sales >= 1 AS hit, (rank * 7919) % 16603 AS k FROM games',
	'hit', ARRAY['platform', 'genre', 'publisher', 'year'],
	'{"order_by": "k", "test_fraction": 0.2, "threads": 1, "max_categories": 8}');
SELECT pg_catalog.cardinality(features) AS features FROM streamml.model_versions
 WHERE model = 'vg_hit_forest';
SELECT streamml.predict_class('vg_hit_forest', g) AS class, count(*)
  FROM (SELECT *, global_sales >= 1 AS hit FROM games) g GROUP BY 1 ORDER BY 1;

-- Errors: too many values without the other level, a bad max_categories,
-- a target of the wrong type, a row whose categorical column is a number.
SELECT * FROM streamml.train_linreg('vg_err', 'games', 'global_sales',
	ARRAY['platform', 'publisher'], '{"other_level": false}');
SELECT * FROM streamml.train_gbt('vg_err', 'games', 'global_sales',
	ARRAY['platform'], '{"max_categories": 1}');
SELECT * FROM streamml.train_linreg('vg_err', 'games', 'platform', ARRAY['year']);
SELECT * FROM streamml.train_gbt('vg_err', 'SELECT *, now() AS t FROM games', 't',
	ARRAY['platform']);
CREATE TABLE games_bad (rank int, platform int, genre genre, publisher text, year int);
INSERT INTO games_bad VALUES (1, 7, 'Action', 'Nintendo', 2000);
SELECT streamml.predict('vg_gbt', b) FROM games_bad b;
SELECT streamml.evaluate('vg_gbt', 'games_bad', 'year', ARRAY['platform', 'genre', 'publisher', 'year']);

-- A league over categorical columns: every candidate gets the same encoding
-- options; the leaderboard ranks them on one holdout.
SELECT rank, candidate, kind, deployed, error IS NULL AS trained
  FROM streamml.train_league('vg_league', 'games', 'global_sales',
	ARRAY['platform', 'genre', 'publisher', 'year'],
	'{"order_by": "rank", "threads": 1, "max_categories": 16}')
 ORDER BY rank NULLS LAST, candidate;
SELECT DISTINCT pg_catalog.cardinality(features) AS features
  FROM streamml.model_versions WHERE model = 'vg_league';

-- Scorers serve categorical models: each inserted row is encoded with the
-- deployed version's levels; a category that is missing (NULL, or unseen
-- without an other level) is a missing value to a tree model, as a NULL
-- feature is, so the prediction is predict's.
CREATE TABLE games_live (rank int PRIMARY KEY, platform char(4), genre genre,
	publisher varchar(60), year int);
SELECT streamml.create_scorer('vg_live', 'games_live', 'vg_gbt');
INSERT INTO games_live SELECT rank, platform, genre, publisher, year
  FROM games WHERE rank % 5 = 0 AND rank <= 1000;
INSERT INTO games_live VALUES (-1, 'NewC', 'Action', 'Nobody', 2016),
	(-2, 'PS2', 'Action', 'Nobody', 2016), (-3, NULL, 'Action', 'Nintendo', 2000);
SELECT count(*) AS scored, max(abs(p.prediction - e.gbt)) < 1e-6 AS gbt_ok
  FROM vg_live p JOIN vg_expected e USING (rank) WHERE p.rank > 0;
SELECT rank, p.prediction IS NULL AS unscorable,
	   p.prediction = streamml.predict('vg_gbt', g) AS equals_predict
  FROM vg_live p JOIN games_live g USING (rank) WHERE p.rank < 0 ORDER BY rank;
SELECT rows_processed, rows_unscorable FROM streamml.scorers WHERE name = 'vg_live';
-- a source whose categorical column is a number is refused up front
CREATE TABLE games_live_bad (rank int PRIMARY KEY, platform int, genre genre,
	publisher text, year int);
SELECT streamml.create_scorer('vg_live_bad', 'games_live_bad', 'vg_gbt');
SELECT streamml.drop_scorer('vg_live');

-- warm_start keeps the deployed version's levels: the continued model has
-- the features it had (new publishers of the new rows are "other").
SELECT version, rows_used, iterations FROM streamml.train_gbt('vg_warm',
	'SELECT * FROM games WHERE rank > 12000', 'global_sales',
	ARRAY['platform', 'genre', 'publisher', 'year'], '{"trees": 5, "threads": 1}');
SELECT version, rows_used, iterations FROM streamml.train_gbt('vg_warm', 'games', 'global_sales',
	ARRAY['platform', 'genre', 'publisher', 'year'],
	'{"trees": 5, "threads": 1, "warm_start": true}');
SELECT count(DISTINCT encoding) AS encodings, count(DISTINCT features) AS feature_lists
  FROM streamml.model_versions WHERE model = 'vg_warm';
-- without warm_start the levels are found again, from all the rows
SELECT version, iterations FROM streamml.train_gbt('vg_warm', 'games', 'global_sales',
	ARRAY['platform', 'genre', 'publisher', 'year'], '{"trees": 5, "threads": 1}');
SELECT count(DISTINCT encoding) AS encodings FROM streamml.model_versions WHERE model = 'vg_warm';

-- A column of a nondeterministic collation: training finds its levels and
-- encodes its slots by bytes, as serving reads them ('a' and 'A' are two
-- levels, not one whose rows serving then found unseen).
CREATE COLLATION vg_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE vg_ci_src (id int, cat text COLLATE vg_ci, y float8);
INSERT INTO vg_ci_src SELECT i, (ARRAY['a', 'A', 'b', 'c'])[1 + i % 4], i % 4 + (i % 7) * 0.01
  FROM generate_series(1, 400) i;
SELECT rows_used FROM streamml.train_linreg('vg_ci_m', 'vg_ci_src', 'y', ARRAY['cat']);
SELECT encoding FROM streamml.model_versions WHERE model = 'vg_ci_m';
SELECT count(*) FILTER (WHERE streamml.predict('vg_ci_m', t) IS NULL) AS unscored,
	   abs((streamml.regression_metrics(y, streamml.predict('vg_ci_m', t))->>'rmse')::float8 -
		   (SELECT (metrics->>'rmse')::float8 FROM streamml.model_versions WHERE model = 'vg_ci_m')) < 1e-9 AS same_rmse
  FROM vg_ci_src t;
SELECT streamml.drop_model('vg_ci_m');
DROP TABLE vg_ci_src;
DROP COLLATION vg_ci;
