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

-- An 'error' monitor created before its model's outcomes are tracked (a
-- legitimate order) would wait in silence, "observed" 0, for a tracker the
-- user may not know it needs: a NOTICE says so, with what to create. Once
-- a tracker of the owner follows a scorer of the model, no NOTICE.
CREATE TABLE nu10_rows (id int PRIMARY KEY, x float8);
CREATE TABLE nu10_train AS
SELECT i AS id, (i % 10)::float8 AS x, (i % 10) + (i % 3) > 5 AS y
  FROM generate_series(1, 200) i;
SELECT version FROM streamml.train_logreg('nu10_clf', 'nu10_train', 'y', ARRAY['x']);
SELECT streamml.create_monitor('nu10_err1', 'nu10_clf', 'error');
SELECT streamml.create_scorer('nu10_s', 'nu10_rows', 'nu10_clf');
-- a scorer alone feeds nothing either
SELECT streamml.create_monitor('nu10_err2', 'nu10_clf', 'error');
CREATE TABLE nu10_labels (id int, y boolean);
SELECT streamml.track_outcomes('nu10_s', 'nu10_labels', '{"actual": "y"}');
SELECT streamml.create_monitor('nu10_err3', 'nu10_clf', 'error');
-- data and rows monitors read the source, not outcomes: no NOTICE
SELECT streamml.create_monitor('nu10_data', 'nu10_clf', 'data', '{"order_by": "id"}');
SELECT streamml.drop_monitor('nu10_data');
-- followed, the hint feeds the first monitor
INSERT INTO nu10_rows SELECT i, (i % 10)::float8 FROM generate_series(1, 50) i;
INSERT INTO nu10_labels SELECT i, (i % 10) + (i % 3) > 5 FROM generate_series(1, 50) i;
SELECT name, observed FROM streamml.monitors WHERE name LIKE 'nu10_err%' ORDER BY name;
SELECT streamml.drop_monitor(n) FROM unnest(ARRAY['nu10_err1', 'nu10_err2', 'nu10_err3']) n;
SELECT streamml.untrack_outcomes('nu10_s');
SELECT streamml.drop_scorer('nu10_s');
SELECT streamml.drop_model('nu10_clf');
DROP TABLE nu10_rows, nu10_train, nu10_labels, nu10_s;

-- A per-group model's outcomes are split by group in live_metrics only
-- when the outcomes' table has the group column (or option "group" names
-- one): without it, the tracker said nothing and live_metrics had total
-- rows only. A NOTICE says so; followed, the groups appear.
CREATE TABLE nu10_g_train AS
SELECT i AS id, CASE WHEN i % 2 = 0 THEN 'A' ELSE 'B' END AS sym,
	   (i % 10)::float8 AS x, (i % 10) + (i % 3) > 5 AS y
  FROM generate_series(1, 400) i;
SELECT group_key FROM streamml.train_logreg('nu10_g', 'nu10_g_train', 'y', ARRAY['x'],
	'{"group_by": "sym", "l2": 0.1}') ORDER BY 1;
CREATE TABLE nu10_g_rows (id int PRIMARY KEY, sym text, x float8);
SELECT streamml.create_scorer('nu10_gs', 'nu10_g_rows', 'nu10_g');
CREATE TABLE nu10_g_labels (id int, y boolean);
SELECT streamml.track_outcomes('nu10_gs', 'nu10_g_labels', '{"actual": "y"}');
SELECT streamml.untrack_outcomes('nu10_gs');
ALTER TABLE nu10_g_labels ADD COLUMN sym text;
SELECT streamml.track_outcomes('nu10_gs', 'nu10_g_labels', '{"actual": "y"}');
INSERT INTO nu10_g_rows SELECT id, sym, x FROM nu10_g_train WHERE id <= 20;
INSERT INTO nu10_g_labels SELECT id, y, sym FROM nu10_g_train WHERE id <= 20;
SELECT group_key, labelled FROM streamml.live_metrics WHERE scorer = 'nu10_gs'
 ORDER BY group_key NULLS LAST;
SELECT streamml.untrack_outcomes('nu10_gs');
SELECT streamml.drop_scorer('nu10_gs');
SELECT streamml.drop_model('nu10_g');
DROP TABLE nu10_g_train, nu10_g_rows, nu10_g_labels, nu10_gs;
