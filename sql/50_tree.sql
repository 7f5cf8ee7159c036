-- Tree models (XGBoost): gradient-boosted trees, forests and single trees,
-- against predictions of python3-xgboost on the same data and parameters
-- (test/data/make_tree_fixtures.py).  threads 1 makes both deterministic.
CREATE TABLE trees (id int, grp text, x1 float8, x2 float8, x3 float8,
	x4 float8, yr float8, yb boolean, yc text);
\copy trees FROM 'test/data/trees.csv' CSV HEADER
CREATE TABLE trees_expected (id int, gbt_reg float8, gbt_bin float8,
	gbt_multi_a float8, gbt_multi_b float8, gbt_multi_c float8,
	forest_reg float8, tree_bin float8, grp_reg float8);
\copy trees_expected FROM 'test/data/trees_expected.csv' CSV HEADER
SELECT count(*) AS rows, count(*) FILTER (WHERE x3 IS NULL) AS x3_missing FROM trees;

-- Regression with missing values (x3 NULL in one row of 6).
SELECT model, version, group_key, rows_used, rows_skipped, iterations, converged, deployed,
	   metrics->>'on' AS "on", (metrics->>'r2')::float8 > 0.9 AS fits
  FROM streamml.train_gbt('t_reg', 'trees', 'yr', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 20, "max_depth": 4, "threads": 1}');
SELECT kind, classes FROM streamml.models WHERE name = 't_reg';
SELECT pg_catalog.cardinality(coefficients) AS coefficients, model_data IS NOT NULL AS has_model
  FROM streamml.model_versions WHERE model = 't_reg';
-- Row form and float8[] form both equal python3-xgboost within 1e-6.
SELECT max(abs(streamml.predict('t_reg', t) - e.gbt_reg)) < 1e-6 AS row_ok,
	   max(abs(streamml.predict('t_reg', ARRAY[x1, x2, x3]) - e.gbt_reg)) < 1e-6 AS array_ok,
	   count(*) FILTER (WHERE streamml.predict('t_reg', t) IS NULL) AS nulls
  FROM trees t JOIN trees_expected e USING (id);
SELECT max(abs(streamml.predict('t_reg', t) - e.gbt_reg)) < 1e-6 AS missing_ok
  FROM trees t JOIN trees_expected e USING (id) WHERE t.x3 IS NULL;

-- Binary (boolean target), no missing values.
SELECT rows_used, iterations, deployed, metrics->>'on' AS "on"
  FROM streamml.train_gbt('t_bin', 'trees', 'yb', ARRAY['x1', 'x2', 'x4'],
	'{"trees": 20, "max_depth": 4, "threads": 1}');
SELECT max(abs(streamml.predict_proba('t_bin', t) - e.gbt_bin)) < 1e-6 AS proba_ok,
	   bool_and(streamml.predict_class('t_bin', t) = (e.gbt_bin >= 0.5)::text) AS class_ok,
	   bool_and(streamml.predict('t_bin', t) = (e.gbt_bin >= 0.5)::int) AS predict_ok
  FROM trees t JOIN trees_expected e USING (id);

-- Multiclass (text target with three values), with missing values.
SELECT rows_used, iterations, metrics->>'on' AS "on"
  FROM streamml.train_gbt('t_multi', 'trees', 'yc', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 10, "max_depth": 4, "threads": 1}');
SELECT kind, classes FROM streamml.models WHERE name = 't_multi';
SELECT bool_and(streamml.predict_class('t_multi', t) =
		CASE WHEN e.gbt_multi_a >= greatest(e.gbt_multi_b, e.gbt_multi_c) THEN 'a'
			 WHEN e.gbt_multi_b >= e.gbt_multi_c THEN 'b' ELSE 'c' END) AS class_ok
  FROM trees t JOIN trees_expected e USING (id);
SELECT streamml.predict_proba('t_multi', ARRAY[0, 0, 0]::float8[]);

-- Forest (20 trees of depth 10, subsample and colsample_bynode 0.8) and a
-- single tree (depth 8): XGBoost's defaults for them, same results.
SELECT rows_used, iterations
  FROM streamml.train_forest('t_forest', 'trees', 'yr', ARRAY['x1', 'x2', 'x4'],
	'{"threads": 1}');
SELECT max(abs(streamml.predict('t_forest', t) - e.forest_reg)) < 1e-6 AS forest_ok
  FROM trees t JOIN trees_expected e USING (id);
SELECT rows_used, iterations
  FROM streamml.train_tree('t_tree', 'trees', 'yb', ARRAY['x1', 'x2', 'x3'],
	'{"threads": 1}');
SELECT max(abs(streamml.predict_proba('t_tree', t) - e.tree_bin)) < 1e-6 AS tree_ok
  FROM trees t JOIN trees_expected e USING (id);

-- Per-group trees: one model per grp; the row form reads the group column.
SELECT group_key, rows_used, iterations
  FROM streamml.train_gbt('t_grp', 'trees', 'yr', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 20, "max_depth": 4, "threads": 1, "group_by": "grp"}');
SELECT max(abs(streamml.predict('t_grp', t) - e.grp_reg)) < 1e-6 AS row_ok,
	   max(abs(streamml.predict('t_grp', grp, ARRAY[x1, x2, x3]) - e.grp_reg)) < 1e-6 AS array_ok
  FROM trees t JOIN trees_expected e USING (id);

-- A holdout, deploy if_better, early stopping.
SELECT version, rows_used, deployed, metrics->>'on' AS "on", (metrics->>'rows')::int AS holdout_rows
  FROM streamml.train_gbt('t_hold', 'trees', 'yr', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 30, "threads": 1, "test_fraction": 0.2, "order_by": "id"}');
-- a worse model (2 rounds) is not deployed over the better one
SELECT version, deployed
  FROM streamml.train_gbt('t_hold', 'trees', 'yr', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 2, "threads": 1, "test_fraction": 0.2, "order_by": "id", "deploy": "if_better"}');
SELECT deployed_version FROM streamml.models WHERE name = 't_hold';
SELECT version, iterations < 300 AS stopped_early
  FROM streamml.train_gbt('t_hold', 'trees', 'yr', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 300, "learning_rate": 0.5, "threads": 1, "test_fraction": 0.2, "order_by": "id", "early_stopping": 5}');
-- retrain, rollback and evaluate work for trees too
SELECT version, rows_used FROM streamml.retrain('t_hold');
SELECT streamml.rollback('t_hold');

-- Feature importance: gain, weight and cover of every feature.
SELECT feature, gain > 0 AS gain, weight > 0 AS weight, cover > 0 AS cover
  FROM streamml.feature_importance WHERE model = 't_reg' ORDER BY feature;
SELECT rows_used FROM streamml.train_linreg('t_lin', 'trees', 'yr', ARRAY['x1', 'x2', 'x4']);
SELECT feature, gain, abs_std_coefficient > 0 AS has_coefficient
  FROM streamml.feature_importance WHERE model = 't_lin' ORDER BY feature;
-- the row form serves linear models too
SELECT max(abs(streamml.predict('t_lin', t) - streamml.predict('t_lin', ARRAY[x1, x2, x4]))) AS diff
  FROM trees t;

-- Errors.
SELECT * FROM streamml.train_gbt('t_err', 'trees', 'yr', ARRAY['x1'], '{"rounds": 3}');
SELECT * FROM streamml.train_gbt('t_err', 'trees', 'yc', ARRAY['x1'], '{"objective": "reg:squarederror"}');
SELECT * FROM streamml.train_gbt('t_err', 'trees', 'yr', ARRAY['x1'], '{"objective": "rank:pairwise"}');
SELECT * FROM streamml.train_gbt('t_err', 'trees', 'yc', ARRAY['x1'], '{"objective": "binary:logistic"}');
CREATE TABLE trees_dates AS SELECT id, x1, current_date + id AS d FROM trees;
SELECT * FROM streamml.train_gbt('t_err', 'trees_dates', 'd', ARRAY['x1']);
SELECT * FROM streamml.train_gbt('t_err', 'trees', 'yr', ARRAY['x1'], '{"early_stopping": 5}');
SELECT * FROM streamml.train_tree('t_err', 'trees', 'yr', ARRAY['x1'], '{"trees": 5}');
SELECT * FROM streamml.train_gbt('t_err', 'trees_dates', 'x1', ARRAY['d']);
SELECT * FROM streamml.train_gbt('t_err', 'trees', 'yr', ARRAY['x1'], '{"max_depth": -1}');
-- wrong row types for predict
SELECT streamml.predict('t_reg', dd) FROM trees_dates dd LIMIT 1;
-- a record naming a column twice: which one is meant is unknown
SELECT streamml.predict('t_reg', r) FROM (SELECT 1.0::float8 AS x1, 2.0::float8 AS x2,
	3.0::float8 AS x3, 4.0::float8 AS x2) r;
CREATE TABLE trees_text (x1 float8, x2 float8, x3 text);
INSERT INTO trees_text VALUES (1, 2, '3');
SELECT streamml.predict('t_reg', r) FROM trees_text r;
SELECT streamml.predict('t_reg', ARRAY[1, 2]::float8[]);
SELECT streamml.predict('t_reg', ARRAY[1, 2, 'Infinity']::float8[]) IS NULL AS inf_is_null;
-- a finite value beyond float's range is infinite to XGBoost: training
-- skips its row, and serving gives it no prediction, by every path
SELECT streamml.predict('t_reg', ARRAY[1, 2, 1e300]::float8[]) IS NULL AS huge_is_null,
	   streamml.predict('t_reg', ROW(0, 'a', 1, 2, -1e300, 0, 0, true, 'a')::trees) IS NULL AS huge_row_is_null,
	   streamml.predict('t_reg', ARRAY[1, 2, 3e38]::float8[]) IS NOT NULL AS float_max_scores;
-- A scorer serves a tree model as predict does: a NULL or NaN feature is a
-- missing value (XGBoost's default direction), not an unscorable row; an
-- infinite one, or one beyond float's range, is unscorable.
CREATE TABLE trees_live (LIKE trees, PRIMARY KEY (id));
SELECT streamml.create_scorer('t_live', 'trees_live', 't_reg');
INSERT INTO trees_live SELECT * FROM trees;
INSERT INTO trees_live (id, x1, x2, x3) VALUES (-1, 1, 2, 'NaN'), (-2, 1, 2, 'Infinity'),
	(-3, 1, 2, 1e300), (-4, NULL, NULL, NULL);
SELECT count(*) AS rows, count(p.prediction) AS scored,
	   count(*) FILTER (WHERE p.prediction IS DISTINCT FROM streamml.predict('t_reg', t)) AS differ_from_predict,
	   count(*) FILTER (WHERE t.x3 IS NULL AND p.prediction IS NOT NULL) AS missing_scored
  FROM t_live p JOIN trees_live t USING (id);
SELECT id, prediction IS NULL AS unscorable FROM t_live WHERE id < 0 ORDER BY id DESC;
SELECT rows_processed, rows_unscorable FROM streamml.scorers WHERE name = 't_live';
SELECT streamml.drop_scorer('t_live');
SELECT streamml.predict_proba('t_reg', ARRAY[1, 2, 3]::float8[]);
SELECT streamml.predict('t_multi', ARRAY[1, 2, 3]::float8[]);
SELECT streamml.evaluate('t_reg', 'trees', 'yr', ARRAY['x1', 'x2', 'x3']);
SELECT (streamml.regression_metrics(yr, streamml.predict('t_reg', t))->>'r2')::float8 > 0.9 AS fits
  FROM trees t;
