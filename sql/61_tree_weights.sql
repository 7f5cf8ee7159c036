-- Weighted tree models against python3-xgboost's xgb.train on a DMatrix with
-- the same weights (test/data/make_tree_weight_fixtures.py): train_gbt hands
-- its rows to XGBoost as a QuantileDMatrix, which must give the same trees,
-- rows of weight 0 and missing values included.  threads 1 makes both
-- deterministic.
CREATE TABLE weighted_trees (id int, grp text, x1 float8, x2 float8, x3 float8,
	x4 float8, yr float8, yb boolean, yc text);
\copy weighted_trees FROM 'test/data/trees.csv' CSV HEADER
ALTER TABLE weighted_trees ADD COLUMN w float8;
UPDATE weighted_trees SET w = (id % 7) * 0.5;
CREATE TABLE weighted_expected (id int, gbt_reg_w float8, gbt_bin_w float8,
	forest_reg_w float8);
\copy weighted_expected FROM 'test/data/trees_weighted_expected.csv' CSV HEADER
SELECT count(*) AS rows, count(*) FILTER (WHERE w = 0) AS weight_0,
	   count(*) FILTER (WHERE x3 IS NULL) AS x3_missing
  FROM weighted_trees;

-- Regression with missing values (x3).
SELECT rows_used, rows_skipped, iterations, metrics->>'on' AS "on"
  FROM streamml.train_gbt('wt_reg', 'weighted_trees', 'yr', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 20, "max_depth": 4, "threads": 1, "weight": "w"}');
SELECT max(abs(streamml.predict('wt_reg', t) - e.gbt_reg_w)) < 1e-6 AS reg_ok,
	   max(abs(streamml.predict('wt_reg', t) - e.gbt_reg_w))
		   FILTER (WHERE t.x3 IS NULL) < 1e-6 AS missing_ok
  FROM weighted_trees t JOIN weighted_expected e USING (id);

-- Binary.
SELECT rows_used, iterations
  FROM streamml.train_gbt('wt_bin', 'weighted_trees', 'yb', ARRAY['x1', 'x2', 'x4'],
	'{"trees": 20, "max_depth": 4, "threads": 1, "weight": "w"}');
SELECT max(abs(streamml.predict_proba('wt_bin', t) - e.gbt_bin_w)) < 1e-6 AS bin_ok
  FROM weighted_trees t JOIN weighted_expected e USING (id);

-- A forest (row and column sampling, one round of 20 trees).
SELECT rows_used, iterations
  FROM streamml.train_forest('wt_forest', 'weighted_trees', 'yr', ARRAY['x1', 'x2', 'x4'],
	'{"threads": 1, "weight": "w"}');
SELECT max(abs(streamml.predict('wt_forest', t) - e.forest_reg_w)) < 1e-6 AS forest_ok
  FROM weighted_trees t JOIN weighted_expected e USING (id);

-- The weights reach XGBoost: the unweighted model differs.
SELECT rows_used
  FROM streamml.train_gbt('wt_unweighted', 'weighted_trees', 'yr', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 20, "max_depth": 4, "threads": 1}');
SELECT max(abs(streamml.predict('wt_unweighted', t) - e.gbt_reg_w)) > 1e-3 AS differs
  FROM weighted_trees t JOIN weighted_expected e USING (id);

-- Training rows that all weigh zero teach nothing: no model, as for a GLM
-- (the whole source: an error; one group: a NOTICE and no model for it).
CREATE TABLE wt_zero AS
SELECT i::float8 AS x, (i % 3)::float8 AS y, 'g' || (i % 2) AS grp,
	   CASE WHEN i % 2 = 0 THEN 0 ELSE 1 END::float8 AS w, 0::float8 AS w0
  FROM generate_series(1, 200) i;
SELECT rows_used FROM streamml.train_gbt('wt_zero', 'wt_zero', 'y', ARRAY['x'],
	'{"weight": "w0", "trees": 3, "threads": 1}');
SELECT group_key, rows_used FROM streamml.train_gbt('wt_zero', 'wt_zero', 'y', ARRAY['x'],
	'{"weight": "w", "trees": 3, "threads": 1, "group_by": "grp"}');
DROP TABLE wt_zero;
