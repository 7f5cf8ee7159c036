-- streamml.retrain re-runs the stored training spec, optionally only once
-- enough new rows (by order_by) arrived; schedule_training puts it in
-- pg_cron.
CREATE TABLE stream (id int, x float8, y boolean);
INSERT INTO stream SELECT id, x1, y FROM logit WHERE id <= 1000;
SELECT version, rows_used FROM streamml.train_logreg('rt', 'stream', 'y', ARRAY['x'],
	'{"order_by": "id", "l2": 0.001}');
SELECT version, data_cutoff, data_max FROM streamml.model_versions WHERE model = 'rt';
-- No new rows yet: skipped with a NOTICE, nothing returned.
SELECT * FROM streamml.retrain('rt', '{"min_new_rows": 100}');
INSERT INTO stream SELECT id, x1, y FROM logit WHERE id BETWEEN 1001 AND 1099;
SELECT * FROM streamml.retrain('rt', '{"min_new_rows": 100}');
-- The 100th new row makes it due; the run uses the stored options.
INSERT INTO stream SELECT id, x1, y FROM logit WHERE id = 1100;
SELECT model, version, rows_used, converged, deployed
  FROM streamml.retrain('rt', '{"min_new_rows": 100}');
SELECT version, data_max, l2 FROM streamml.model_versions WHERE model = 'rt' ORDER BY version;
-- Without options it always trains; the result is train_logreg's.
SELECT model, version, rows_used FROM streamml.retrain('rt');
SELECT model, version, rows_used, iterations, converged FROM streamml.retrain('price');
-- A holdout: new rows count from the newest row, not from the cutoff.
SELECT version FROM streamml.train_logreg('rt_hold', 'stream', 'y',
	ARRAY['x'], '{"order_by": "id", "test_fraction": 0.2}');
SELECT version, data_cutoff, data_max FROM streamml.model_versions WHERE model = 'rt_hold';
SELECT count(*) FROM streamml.retrain('rt_hold', '{"min_new_rows": 1}');
-- deploy 'if_better' with a holdout too small to hold a row: nothing to
-- compare on, so the version served stays
SELECT version, deployed FROM streamml.train_logreg('rt_hold', 'stream', 'y',
	ARRAY['x'], '{"order_by": "id", "test_fraction": 1e-9, "deploy": "if_better"}');
SELECT deployed_version < (SELECT max(version) FROM streamml.model_versions WHERE model = 'rt_hold')
  FROM streamml.models WHERE name = 'rt_hold';

-- Errors.
SELECT * FROM streamml.retrain('nope');
SELECT * FROM streamml.retrain('churn', '{"min_new_rows": 10}');
SELECT * FROM streamml.retrain('rt', '{"min_rows": 10}');
SELECT * FROM streamml.retrain('rt', '{"min_new_rows": -1}');
SELECT * FROM streamml.retrain('rt', '{"min_new_rows": 1.5}');
SELECT * FROM streamml.retrain('rt', '[1]');
CREATE ROLE ml_carol;
GRANT SELECT ON stream TO ml_carol;
SELECT streamml.grant_model('rt', 'ml_carol');
SET ROLE ml_carol;
SELECT * FROM streamml.retrain('rt');
RESET ROLE;

-- Scheduling: pg_cron is preloaded here (cron.database_name is this
-- database) but not installed yet.
SELECT streamml.schedule_training('rt', '0 0 1 1 *');
SELECT streamml.unschedule_training('rt');
SET client_min_messages = warning;
CREATE EXTENSION pg_cron;
RESET client_min_messages;
SELECT streamml.schedule_training('rt', '0 0 1 1 *', '{"min_new_rows": 100}') > 0 AS scheduled;
SELECT jobname, schedule, command, database = current_database() AS here,
	   username = current_user AS as_owner, active
  FROM cron.job ORDER BY jobid;
-- Scheduling again changes the same job.
SELECT streamml.schedule_training('rt', '30 2 * * *') > 0 AS rescheduled;
SELECT jobname, schedule, command FROM cron.job ORDER BY jobid;
-- Names are quoted in the command.
SELECT version FROM streamml.train_linreg('it''s', 'linear', 't', ARRAY['a']);
SELECT streamml.schedule_training('it''s', '0 3 * * *') > 0 AS scheduled;
SELECT command FROM cron.job WHERE jobname = streamml.training_job_name('it''s');
SELECT streamml.drop_model('it''s');
SELECT count(*) FROM cron.job WHERE jobname = streamml.training_job_name('it''s');
-- Errors.
SELECT streamml.schedule_training('nope', '0 3 * * *');
SELECT streamml.schedule_training('rt', 'every now and then');
SELECT streamml.schedule_training('rt', '0 3 * * *', '{"l2": 1}');
SET ROLE ml_carol;
SELECT streamml.schedule_training('rt', '0 3 * * *');
SELECT streamml.unschedule_training('rt');
RESET ROLE;
-- Unscheduling.
SELECT streamml.unschedule_training('rt');
SELECT streamml.unschedule_training('rt');
SELECT count(*) FROM cron.job;
SELECT streamml.unschedule_training('nope');
DROP OWNED BY ml_carol;
DROP ROLE ml_carol;
