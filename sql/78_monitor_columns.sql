-- A monitor's column-naming options are checked at create_monitor, with
-- PostgreSQL's undefined-column error naming the column and the source,
-- not an internal query's "column s.x does not exist at character 8"
-- (fixes8).
CREATE TABLE mc78 AS
SELECT i AS id, '2026-01-01'::timestamptz + i * interval '1 second' AS ts,
	   (i % 7)::float8 AS x, (i % 5)::float8 AS z, 2.0 * (i % 7) + (i % 5) AS v
  FROM generate_series(1, 300) i;
CREATE TABLE mc78_other AS SELECT ts, x FROM mc78;
SELECT model, version FROM streamml.train_linreg('mc78', 'mc78', 'v', ARRAY['x', 'z'],
	'{"order_by": "ts"}');

-- order_by of each kind that reads the source ('error' to retrain)
SELECT streamml.create_monitor('mc', 'mc78', 'rows', '{"order_by": "nope"}');
\echo :LAST_ERROR_SQLSTATE
SELECT streamml.create_monitor('mc', 'mc78', 'data', '{"order_by": "nope"}');
\echo :LAST_ERROR_SQLSTATE
SELECT streamml.create_monitor('mc', 'mc78', 'error',
	'{"action": "retrain", "order_by": "nope"}');
\echo :LAST_ERROR_SQLSTATE
-- the model's feature columns in a 'data' monitor's own source
SELECT streamml.create_monitor('mc', 'mc78', 'data', '{"source": "mc78_other"}');
\echo :LAST_ERROR_SQLSTATE
-- a source query's columns too
SELECT streamml.create_monitor('mc', 'mc78', 'data',
	'{"source": "SELECT id AS t, x, z FROM mc78"}');
\echo :LAST_ERROR_SQLSTATE
-- deploy_metric, which a retrain compares, is a metric of the model's task
SELECT streamml.create_monitor('mc', 'mc78', 'error',
	'{"action": "retrain", "deploy_metric": "roc_auc"}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS monitors FROM streamml.monitors WHERE model = 'mc78';

-- the columns there are taken
SELECT streamml.create_monitor('mc_rows', 'mc78', 'rows', '{"order_by": "id"}');
SELECT streamml.create_monitor('mc_data', 'mc78', 'data');
SELECT streamml.create_monitor('mc_err', 'mc78', 'error',
	'{"action": "retrain", "deploy_metric": "MAE"}');
SELECT name, kind FROM streamml.monitors WHERE model = 'mc78' ORDER BY name;
SELECT streamml.drop_monitor('mc_rows');
SELECT streamml.drop_monitor('mc_data');
SELECT streamml.drop_monitor('mc_err');
