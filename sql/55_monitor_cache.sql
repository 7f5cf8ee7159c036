-- The outcome writer's cache of which models have 'error' monitors
-- (src/monitor/monitorobserve.c), in one session: outcomes of a model
-- without monitors are cached as such; a monitor created afterwards, in
-- the same transaction as outcomes or not, and one created after a drop,
-- observe every later outcome; a rolled-back monitor leaves none behind.
-- Across backends: TAP 063.
CREATE TABLE mcr_train AS SELECT (i % 10)::float8 AS x, (i % 10) * 2.0 + 1 AS y
  FROM generate_series(1, 200) i;
SELECT model FROM streamml.train_linreg('mcr', 'mcr_train', 'y', ARRAY['x']);
CREATE TABLE mcr_rows (id int PRIMARY KEY, x float8);
SELECT streamml.create_scorer('mcr_s', 'mcr_rows', 'mcr');
INSERT INTO mcr_rows SELECT i, i % 10 FROM generate_series(1, 500) i;
CREATE TABLE mcr_labels (id int, y float8);
SELECT streamml.track_outcomes('mcr_s', 'mcr_labels', '{"actual": "y"}');
INSERT INTO mcr_labels SELECT i, (i % 10) * 2 + 1 FROM generate_series(1, 100) i;
-- created after the cache said "no monitor"
SELECT streamml.create_monitor('mcr_a', 'mcr', 'error');
INSERT INTO mcr_labels SELECT i, (i % 10) * 2 + 1 FROM generate_series(101, 150) i;
SELECT name, observed FROM streamml.monitors WHERE model = 'mcr' ORDER BY name;
-- in one transaction: drop, create, outcomes
BEGIN;
SELECT streamml.drop_monitor('mcr_a');
INSERT INTO mcr_labels SELECT i, (i % 10) * 2 + 1 FROM generate_series(151, 160) i;
SELECT streamml.create_monitor('mcr_b', 'mcr', 'error');
INSERT INTO mcr_labels SELECT i, (i % 10) * 2 + 1 FROM generate_series(161, 190) i;
SELECT name, observed FROM streamml.monitors WHERE model = 'mcr' ORDER BY name;
COMMIT;
-- a monitor created in a rolled-back transaction is gone, and nothing breaks
BEGIN;
SELECT streamml.create_monitor('mcr_c', 'mcr', 'error');
INSERT INTO mcr_labels SELECT i, (i % 10) * 2 + 1 FROM generate_series(191, 200) i;
ROLLBACK;
INSERT INTO mcr_labels SELECT i, (i % 10) * 2 + 1 FROM generate_series(201, 220) i;
SELECT name, observed FROM streamml.monitors WHERE model = 'mcr' ORDER BY name;
SELECT count(*) AS outcomes FROM streamml.outcomes WHERE scorer = 'mcr_s';
SELECT streamml.drop_monitor('mcr_b');
SELECT streamml.untrack_outcomes('mcr_s');
SELECT streamml.drop_scorer('mcr_s');
DROP TABLE mcr_rows, mcr_labels, mcr_train;
