-- Option "rollback" of monitors (src/monitor/monitorworker.c): its shape,
-- and the version a new monitor accepts (the deployed one).  The check
-- itself runs in the monitor worker: test/t/066_monitor_rollback.pl.
CREATE TABLE rb_train AS
SELECT i AS id, '2026-01-01'::timestamptz + i * interval '1 second' AS ts,
	   (i % 10)::float8 AS x, (i % 10) * 2.0 + 1 AS y
  FROM generate_series(1, 100) i;
SELECT version FROM streamml.train_linreg('rb', 'rb_train', 'y', ARRAY['x'], '{"order_by": "ts"}');
-- Errors.
SELECT streamml.create_monitor('rb_e1', 'rb', 'rows', '{"rollback": 1}');
SELECT streamml.create_monitor('rb_e2', 'rb', 'rows', '{"rollback": {"rows": 100}}');
SELECT streamml.create_monitor('rb_e3', 'rb', 'rows', '{"rollback": {"min_rows": 10}}');
SELECT streamml.create_monitor('rb_e4', 'rb', 'rows', '{"rollback": {"alpha": 0.9}}');
-- true takes the defaults; an object sets them; false is no check
SELECT streamml.create_monitor('rb_m1', 'rb', 'rows',
	'{"rollback": true, "min_rows": 1000000, "interval": "1 hour"}');
SELECT streamml.create_monitor('rb_m2', 'rb', 'error',
	'{"rollback": {"min_rows": 200, "alpha": 0.05}}');
SELECT streamml.create_monitor('rb_m3', 'rb', 'error', '{"rollback": false}');
SELECT name, options->'rollback' AS rollback, rollback_version, rollback_check
  FROM streamml.monitors ORDER BY name;
SELECT streamml.drop_monitor('rb_m1');
SELECT streamml.drop_monitor('rb_m2');
SELECT streamml.drop_monitor('rb_m3');
SELECT streamml.drop_model('rb');
