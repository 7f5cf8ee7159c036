-- Tree models: warm_start (XGBoost's continued training) against
-- python3-xgboost's xgb.train(..., xgb_model=booster), and evaluate with
-- tree models (test/data/make_categorical_fixtures.py writes the fixture).
CREATE TABLE trees_w (id int, grp text, x1 float8, x2 float8, x3 float8,
	x4 float8, yr float8, yb boolean, yc text);
\copy trees_w FROM 'test/data/trees.csv' CSV HEADER
CREATE TABLE warm_expected (id int, first float8, warm float8);
\copy warm_expected FROM 'test/data/warm_expected.csv' CSV HEADER

-- 10 rounds on the first 2000 rows, then 10 more on all 3000 from them.
SELECT version, rows_used, iterations, deployed
  FROM streamml.train_gbt('w', 'SELECT * FROM trees_w WHERE id <= 2000', 'yr',
	ARRAY['x1', 'x2', 'x3'], '{"trees": 10, "max_depth": 4, "threads": 1}');
SELECT max(abs(streamml.predict('w', t) - e.first)) < 1e-6 AS first_ok
  FROM trees_w t JOIN warm_expected e USING (id);
SELECT version, rows_used, iterations, deployed
  FROM streamml.train_gbt('w', 'trees_w', 'yr', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 10, "max_depth": 4, "threads": 1, "warm_start": true}');
SELECT max(abs(streamml.predict('w', t) - e.warm)) < 1e-6 AS warm_ok
  FROM trees_w t JOIN warm_expected e USING (id);
-- other features: nothing to continue, a NOTICE, trained from scratch
SELECT version, iterations
  FROM streamml.train_gbt('w', 'trees_w', 'yr', ARRAY['x1', 'x2'],
	'{"trees": 10, "max_depth": 4, "threads": 1, "warm_start": true}');
-- a forest continues too: 20 more trees in one more round
SELECT version, iterations FROM streamml.train_forest('wf', 'trees_w', 'yr',
	ARRAY['x1', 'x2'], '{"threads": 1}');
SELECT version, iterations FROM streamml.train_forest('wf', 'trees_w', 'yr',
	ARRAY['x1', 'x2'], '{"threads": 1, "warm_start": true}');
-- per group: each group continues its own deployed trees
SELECT version, group_key, iterations FROM streamml.train_gbt('wg', 'trees_w', 'yr',
	ARRAY['x1', 'x2', 'x3'], '{"trees": 5, "threads": 1, "group_by": "grp"}');
SELECT version, group_key, iterations FROM streamml.train_gbt('wg', 'trees_w', 'yr',
	ARRAY['x1', 'x2', 'x3'], '{"trees": 5, "threads": 1, "group_by": "grp", "warm_start": true}');

-- evaluate: a regression, per group, a binary and a multiclass tree model,
-- equal to the metrics aggregates over the row forms.
SELECT (e->>'rows')::int AS rows, e->>'version' AS version,
	   abs((e->>'rmse')::float8 - (a->>'rmse')::float8) < 1e-9 AS same_rmse
  FROM streamml.evaluate('w', 'trees_w', 'yr', ARRAY['x1', 'x2']) e,
	   (SELECT streamml.regression_metrics(yr, streamml.predict('w', t)) AS a FROM trees_w t) m;
SELECT g.key, (g.value->>'rows')::int AS rows,
	   abs((g.value->>'rmse')::float8 - (a->>'rmse')::float8) < 1e-9 AS same_rmse
  FROM streamml.evaluate('wg', 'trees_w', 'yr', ARRAY['x1', 'x2', 'x3']) e,
	   pg_catalog.jsonb_each(e->'groups') g,
	   LATERAL (SELECT streamml.regression_metrics(yr, streamml.predict('wg', t)) AS a
				  FROM trees_w t WHERE t.grp = g.key) m
 ORDER BY 1;
SELECT rows_used FROM streamml.train_gbt('wb', 'trees_w', 'yb', ARRAY['x1', 'x2', 'x4'],
	'{"trees": 20, "max_depth": 4, "threads": 1}');
SELECT (e->>'rows')::int AS rows,
	   abs((e->>'roc_auc')::float8 - (a->>'roc_auc')::float8) < 1e-9 AS same_auc,
	   abs((e->>'log_loss')::float8 - (a->>'log_loss')::float8) < 1e-9 AS same_log_loss
  FROM streamml.evaluate('wb', 'trees_w', 'yb', ARRAY['x1', 'x2', 'x4']) e,
	   (SELECT streamml.classification_metrics(yb, streamml.predict_proba('wb', t)) AS a
		  FROM trees_w t) m;
SELECT rows_used FROM streamml.train_gbt('wm', 'trees_w', 'yc', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 10, "max_depth": 4, "threads": 1}');
SELECT (e->>'rows')::int AS rows,
	   abs((e->>'accuracy')::float8 - a) < 1e-9 AS same_accuracy
  FROM streamml.evaluate('wm', 'trees_w', 'yc', ARRAY['x1', 'x2', 'x3']) e,
	   (SELECT avg((streamml.predict_class('wm', t) = yc)::int)::float8 AS a
		  FROM trees_w t) m;
-- a league's tree champion is evaluated as a tree model
SELECT count(*) > 0 AS ranked FROM streamml.train_league('wl', 'trees_w', 'yr',
	ARRAY['x1', 'x2', 'x3'], '{"order_by": "id", "threads": 1}');
SELECT v.kind IN ('gbt', 'forest', 'tree') AS tree_champion,
	   abs((e->>'rmse')::float8 - (a->>'rmse')::float8) < 1e-9 AS same_rmse
  FROM streamml.models m
  JOIN streamml.model_versions v ON v.model = m.name AND v.version = m.deployed_version,
	   streamml.evaluate('wl', 'trees_w', 'yr', ARRAY['x1', 'x2', 'x3']) e,
	   (SELECT streamml.regression_metrics(yr, streamml.predict('wl', t)) AS a FROM trees_w t) a
 WHERE m.name = 'wl';

-- evaluate treats a value beyond float4's range as predict does (no
-- prediction: the row is skipped), and its scoring function takes a model
-- name and version, read from the catalog as the caller: never model
-- bytes from SQL (a hand-made model crashed the server through it)
CREATE TABLE trees_huge AS SELECT * FROM trees_w WHERE id <= 100;
UPDATE trees_huge SET x1 = 1e300 WHERE id <= 3;
SELECT (e->>'rows')::int AS rows, (e->>'rows_skipped')::int AS skipped,
	   (SELECT count(*) FROM trees_huge t WHERE streamml.predict('w', t) IS NULL) AS predict_nulls
  FROM streamml.evaluate('w', 'trees_huge', 'yr', ARRAY['x1', 'x2']) e;
SELECT streamml.ml_score_tree('nosuch', 1, '', ARRAY[1, 2, 3]::float8[]);
SELECT streamml.ml_score_tree(ARRAY['\x00'::bytea], ARRAY['']::text[], '', ARRAY[1]::float8[]);

-- base_score: refused where the objective cannot take it or does not use
-- it; warm_start does not continue trees of another objective (their
-- scale differs: Poisson's trees add to a log)
SELECT * FROM streamml.train_gbt('bs', 'trees_w', 'yr', ARRAY['x1'], '{"trees": 2, "threads": 1, "objective": "count:poisson", "base_score": -1}');
SELECT * FROM streamml.train_gbt('bs', 'trees_w', 'yb', ARRAY['x1'], '{"trees": 2, "threads": 1, "base_score": 1}');
SELECT * FROM streamml.train_gbt('bs', 'trees_w', 'yr', ARRAY['x1'], '{"trees": 2, "threads": 1, "objective": "reg:absoluteerror", "base_score": 7}');
SELECT * FROM streamml.train_gbt('bs', 'trees_w', 'yc', ARRAY['x1'], '{"trees": 2, "threads": 1, "base_score": 0.5}');
CREATE TABLE trees_pos AS SELECT id, x1, abs(yr) AS y FROM trees_w;
SELECT version, deployed FROM streamml.train_gbt('bs', 'trees_pos', 'y', ARRAY['x1'],
	'{"trees": 20, "threads": 1, "objective": "count:poisson"}');
SELECT version, iterations FROM streamml.train_gbt('bs', 'trees_pos', 'y', ARRAY['x1'],
	'{"trees": 2, "threads": 1, "warm_start": true}');
SELECT streamml.ml_score_tree('bs', 2, '', ARRAY[1, 2]::float8[]);
