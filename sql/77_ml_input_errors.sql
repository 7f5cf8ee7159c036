-- Errors of training inputs that used to surface late, under another
-- name, or not at all (fixes8).

-- A league's "metric" is checked against the task before any candidate
-- trains, under the name the user gave; so are its group_by and weight
-- columns.
CREATE TABLE lg77 (t int, x float8, z float8, yc text, yn float8, w text, g text);
INSERT INTO lg77
SELECT i, (i * 37 % 101) / 10.0, (i * 53 % 89) / 10.0,
	   CASE WHEN (i * 37 % 101) > 50 THEN 'up' ELSE 'down' END,
	   (i * 37 % 101) / 5.0 + (i * 53 % 89) / 20.0, 'heavy', CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END
  FROM generate_series(1, 400) i;
SELECT * FROM streamml.train_league('lg77', 'lg77', 'yc', ARRAY['x', 'z'],
	'{"order_by": "t", "metric": "rmse", "threads": 1}');
SELECT * FROM streamml.train_league('lg77', 'lg77', 'yn', ARRAY['x', 'z'],
	'{"order_by": "t", "metric": "roc_auc", "threads": 1}');
SELECT * FROM streamml.train_league('lg77', 'lg77', 'yn', ARRAY['x', 'z'],
	'{"order_by": "t", "group_by": "nope", "threads": 1}');
SELECT * FROM streamml.train_league('lg77', 'lg77', 'yn', ARRAY['x', 'z'],
	'{"order_by": "t", "weight": "w", "threads": 1}');
SELECT count(*) AS versions FROM streamml.model_versions WHERE model = 'lg77';
-- a metric of the task is taken
SELECT rank, candidate, metric
  FROM streamml.train_league('lg77', 'lg77', 'yc', ARRAY['x', 'z'],
	'{"order_by": "t", "metric": "accuracy", "threads": 1,
	  "candidates": ["elasticnet"]}');

-- A league's notices about the source's rows come once per league, not
-- once per candidate: every candidate reads the same rows.
CREATE TABLE lg77n AS SELECT * FROM lg77;
UPDATE lg77n SET t = NULL WHERE t % 50 = 0;
UPDATE lg77n SET g = NULL WHERE t % 40 = 1;
SELECT count(*) AS candidates
  FROM streamml.train_league('lg77n', 'lg77n', 'yn', ARRAY['x', 'z'],
	'{"order_by": "t", "threads": 1}');
SELECT count(*) AS candidate_groups
  FROM streamml.train_league('lg77g', 'lg77n', 'yn', ARRAY['x', 'z'],
	'{"order_by": "t", "group_by": "g", "threads": 1}');
-- a training run alone says it too
SELECT rows_skipped FROM streamml.train_linreg('lg77l', 'lg77n', 'yn', ARRAY['x', 'z'],
	'{"order_by": "t", "test_fraction": 0.2}');

-- The Grafana panel "Deployed models" tells a per-group model's rows
-- apart by their group_key (the panel's own SQL, read from the dashboard).
\set panel `python3 -c "import json; print(' '.join(t['rawSql'] for p in json.load(open('docker/grafana/dashboards/streamml.json'))['panels'] if p['title'] == 'Deployed models' for t in p['targets']))"`
SELECT model, group_key, deployed_version > 0 AS deployed
  FROM (:panel) panel WHERE model = 'lg77g' ORDER BY group_key;

-- regression_metrics: finite values whose error overflows float8 are
-- float8's overflow error (22003), never a row silently left out of the
-- RMSE; NaN and infinite values are left out, and "rows" says so.
SELECT streamml.regression_metrics(a, p)
  FROM (VALUES (1.0::float8, 2.0::float8), (1.7e308, -1.7e308)) v(a, p);
\echo :LAST_ERROR_SQLSTATE
SELECT streamml.regression_metrics(a, p)
  FROM (VALUES (1.0::float8, 2.0::float8), (-1e308, 1e308)) v(a, p);
\echo :LAST_ERROR_SQLSTATE
SELECT m->>'rows' AS rows, (m->>'rmse')::float8 AS rmse, (m->>'mae')::float8 AS mae
  FROM (SELECT streamml.regression_metrics(a, p) AS m
		  FROM (VALUES (1.0::float8, 2.0::float8), (1e308, -1e307), ('NaN', 1),
					   (2, 'Infinity')) v(a, p)) r;
SELECT streamml.regression_metrics(a, p)
  FROM (VALUES (3.0::float8, 1.0::float8), ('-Infinity', 1), (NULL, 1)) v(a, p);

-- feature_bins: every row has as many features as names names (without
-- names, as the first row); names are distinct and not NULL.  A row of
-- another width, or a name given twice, used to drop rows or a feature
-- silently.
SELECT streamml.feature_bins(x, ARRAY['a', 'b'])
  FROM (VALUES (ARRAY[1.0, 2.0]::float8[]), (ARRAY[3.0]), (ARRAY[4.0, 5.0])) v(x);
\echo :LAST_ERROR_SQLSTATE
SELECT streamml.feature_bins(x, ARRAY['a'])
  FROM (VALUES (ARRAY[1.0, 2.0]::float8[]), (ARRAY[4.0, 5.0])) v(x);
SELECT streamml.feature_bins(x, NULL)
  FROM (VALUES (ARRAY[1.0, 2.0]::float8[]), (ARRAY[3.0, 4.0, 5.0])) v(x);
SELECT streamml.feature_bins(x, NULL)
  FROM (VALUES (ARRAY[1.0, 2.0]::float8[]), ('{}')) v(x);
SELECT streamml.feature_bins(x, ARRAY['a', 'a'])
  FROM (VALUES (ARRAY[1.0, 2.0]::float8[])) v(x);
SELECT streamml.feature_bins(x, ARRAY['a', NULL])
  FROM (VALUES (ARRAY[1.0, 2.0]::float8[])) v(x);
SELECT streamml.feature_bins(x, '{}')
  FROM (VALUES (ARRAY[1.0, 2.0]::float8[])) v(x);
-- valid rows: NULL rows and rows with a NULL or non-finite feature are
-- left out, as training leaves them out
SELECT b->'rows' AS rows, b->'features'->'a'->'bins'->>0 AS a_min,
	   b->'features'->'b'->'bins'->>10 AS b_max
  FROM (SELECT streamml.feature_bins(x, ARRAY['a', 'b']) AS b
		  FROM (VALUES (ARRAY[1.0, 2.0]::float8[]), (NULL), (ARRAY[3.0, NULL]),
					   (ARRAY['NaN', 1.0]), (ARRAY[4.0, 5.0])) v(x)) q;
SELECT jsonb_object_keys(streamml.feature_bins(x, NULL)->'features') AS names
  FROM (VALUES (ARRAY[1.0, 2.0]::float8[])) v(x) ORDER BY 1;
