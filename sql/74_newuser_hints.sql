-- What a newcomer meets: hints that say what to do must work when followed.

-- A 'rows' monitor of a model trained without order_by names the model's
-- own trainer (streamml.retrain takes no training options); followed, it
-- lets the monitor be created.
CREATE TABLE nu_rows AS
SELECT i AS id, '2026-01-01'::timestamptz + i * interval '1 second' AS ts,
	   (i % 7)::float8 AS x, 2.0 * (i % 7) + 1 AS v
  FROM generate_series(1, 200) i;
SELECT version FROM streamml.train_forest('nu_forest', 'nu_rows', 'v', ARRAY['x'], '{"trees": 2}');
SELECT streamml.create_monitor('nu_rows_m', 'nu_forest', 'rows');
SELECT * FROM streamml.retrain('nu_forest', '{"order_by": "ts"}');
SELECT version FROM streamml.train_forest('nu_forest', 'nu_rows', 'v', ARRAY['x'],
	'{"trees": 2, "order_by": "ts"}');
SELECT streamml.create_monitor('nu_rows_m', 'nu_forest', 'rows');
SELECT name, kind FROM streamml.monitors WHERE name = 'nu_rows_m';
SELECT streamml.drop_monitor('nu_rows_m');
SELECT streamml.drop_model('nu_forest');
DROP TABLE nu_rows;

-- A tree's holdout metric is computed against the target itself, as
-- evaluate and predict compute it, not against its float4 rounding (which
-- XGBoost trains on): the two agreed only to about 1e-8, so a league run
-- again on the same rows found its champion "better" than the very same
-- model deployed and deployed it again.
CREATE TABLE nu_tree AS
SELECT i AS id, (i % 17)::float8 AS x, (i % 5)::float8 AS z,
	   (i % 17) * 0.1 + (i % 5) * 0.013 + (i % 3) * 0.0007 AS v
  FROM generate_series(1, 1000) i;
SELECT version, deployed FROM streamml.train_gbt('nu_gbt', 'nu_tree', 'v', ARRAY['x', 'z'],
	'{"trees": 5, "test_fraction": 0.2, "order_by": "id"}');
SELECT (v.metrics->>'rmse')::float8 = (streamml.evaluate('nu_gbt', 'SELECT * FROM nu_tree WHERE id > 800',
		'v', ARRAY['x', 'z'])->>'rmse')::float8 AS holdout_rmse_as_evaluate
  FROM streamml.model_versions v WHERE v.model = 'nu_gbt' AND v.version = 1;
SELECT version, deployed FROM streamml.train_forest('nu_forest2', 'nu_tree', 'v', ARRAY['x', 'z'],
	'{"trees": 3}');
SELECT (v.metrics->>'rmse')::float8 = (streamml.evaluate('nu_forest2', 'nu_tree',
		'v', ARRAY['x', 'z'])->>'rmse')::float8 AS training_rmse_as_evaluate
  FROM streamml.model_versions v WHERE v.model = 'nu_forest2' AND v.version = 1;
SELECT candidate, version, deployed FROM streamml.train_league('nu_league', 'nu_tree', 'v',
	ARRAY['x', 'z'], '{"order_by": "id", "candidates": ["gbt"]}');
SELECT candidate, version, deployed FROM streamml.train_league('nu_league', 'nu_tree', 'v',
	ARRAY['x', 'z'], '{"order_by": "id", "candidates": ["gbt"]}');
SELECT deployed_version FROM streamml.models WHERE name = 'nu_league';
SELECT streamml.drop_model('nu_gbt');
SELECT streamml.drop_model('nu_forest2');
SELECT streamml.drop_model('nu_league');
DROP TABLE nu_tree;

-- streamml.retrain of a league returns the rows of train_*, with each
-- candidate's rows_used, rows_skipped and iterations (they were NULL),
-- as model_versions has them.
CREATE TABLE nu_lg AS
SELECT i AS id, (i % 17)::float8 AS x, CASE WHEN i % 50 = 0 THEN NULL ELSE (i % 5)::float8 END AS z,
	   (i % 17) * 0.1 + (i % 5) * 0.013 AS v
  FROM generate_series(1, 500) i;
SELECT count(*) FROM streamml.train_league('nu_lg', 'nu_lg', 'v', ARRAY['x', 'z'],
	'{"order_by": "id", "candidates": ["gbt", "elasticnet"]}');
CREATE TEMP TABLE nu_lg_run AS SELECT * FROM streamml.retrain('nu_lg');
SELECT r.metrics->>'candidate' AS candidate, r.rows_used, r.rows_skipped, r.iterations, r.converged,
	   (r.rows_used, r.rows_skipped, r.iterations) = (v.rows_used, v.rows_skipped, v.iterations) AS as_catalog
  FROM nu_lg_run r
  JOIN streamml.model_versions v ON v.model = r.model AND v.version = r.version
 ORDER BY 1;
SELECT streamml.drop_model('nu_lg');
DROP TABLE nu_lg;
