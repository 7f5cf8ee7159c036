-- What a newcomer meets (newuser10): hints that say what to do must be
-- right when followed.

-- schedule_training in a database that is not cron.database_name:
-- pg_cron keeps its jobs in that one database and cannot be installed
-- anywhere else, so "CREATE EXTENSION pg_cron in database X" (where it may
-- well be installed already) does not help. The hint names the two ways
-- that do: move cron.database_name here, or schedule the retrain from
-- there with cron.schedule_in_database.
CREATE DATABASE nu10_app;
\c nu10_app
CREATE EXTENSION pg_streamml;
CREATE TABLE nu10_t AS
SELECT i AS id, '2026-01-01'::timestamptz + i * interval '1 second' AS ts,
	   (i % 7)::float8 AS x, 2.0 * (i % 7) + 1 + (i % 3) * 0.1 AS v
  FROM generate_series(1, 100) i;
SELECT version FROM streamml.train_linreg('nu10_m', 'nu10_t', 'v', ARRAY['x'], '{"order_by": "ts"}');
SELECT streamml.schedule_training('nu10_m', '0 0 1 1 *');
SELECT streamml.unschedule_training('nu10_m');
\c contrib_regression
DROP DATABASE nu10_app WITH (FORCE);
