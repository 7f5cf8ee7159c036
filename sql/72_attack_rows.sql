-- Attacks on rows that could go unseen or be read wrongly (attacker 8).
--
-- A table with inheritance children is no source of a scorer, outcome
-- tracker or feature table: a SELECT of it reads its children's rows, but
-- an INSERT into a child fires only the child's triggers, so their rows
-- would get no prediction, outcome or features, without a word.  Refused
-- at creation, and by CREATE TABLE ... INHERITS and ALTER TABLE ... INHERIT
-- of a watched table (the event trigger streamml.partitions_changed()).
CREATE TABLE ar_train AS
SELECT i::float8 AS x1, (i * 7 % 13)::float8 AS x2, 2.0 * i - 0.5 * (i * 7 % 13) AS y
  FROM generate_series(1, 60) i;
SELECT version FROM streamml.train_linreg('ar_m', 'ar_train', 'y', ARRAY['x1', 'x2']);
CREATE TABLE ar_src (id int PRIMARY KEY, ts int, x1 float8, x2 float8);
CREATE TABLE ar_src_kid () INHERITS (ar_src);
SELECT streamml.create_scorer('ar_s', 'ar_src', 'ar_m', '{"into": "ar_pred"}');
SELECT streamml.create_feature_table('ar_f', 'ar_src',
	'{"order_by": "ts", "features": {"m": {"fn": "mean", "of": "x1", "preceding": 2}}}');
DROP TABLE ar_src_kid;
SELECT streamml.create_scorer('ar_s', 'ar_src', 'ar_m', '{"into": "ar_pred"}');
-- a child made or attached later is refused
CREATE TABLE ar_src_kid () INHERITS (ar_src);
CREATE TABLE ar_src_kid2 (id int NOT NULL, ts int, x1 float8, x2 float8);
ALTER TABLE ar_src_kid2 INHERIT ar_src;
-- the source itself may become a child (its own triggers still fire)
CREATE TABLE ar_src_parent (id int NOT NULL, ts int, x1 float8, x2 float8);
ALTER TABLE ar_src INHERIT ar_src_parent;
INSERT INTO ar_src VALUES (1, 1, 1, 2);
SELECT id, version, round(prediction::numeric, 6) AS prediction FROM ar_pred;
-- a grandchild through a child that is no source is refused too
ALTER TABLE ar_src NO INHERIT ar_src_parent;
CREATE TABLE ar_out (id int, y float8);
SELECT streamml.track_outcomes('ar_s', 'ar_out', '{"actual": "y"}');
CREATE TABLE ar_out_kid () INHERITS (ar_out);
CREATE TABLE ar_mid (id int, y float8);
CREATE TABLE ar_mid_kid () INHERITS (ar_mid);
ALTER TABLE ar_mid INHERIT ar_out;
-- a feature table, and a table with no watched ancestor
CREATE TABLE ar_ft_src (id int, ts int, x1 float8);
SELECT streamml.create_feature_table('ar_f', 'ar_ft_src',
	'{"order_by": "ts", "features": {"m": {"fn": "mean", "of": "x1", "preceding": 2}}}');
CREATE TABLE ar_ft_kid () INHERITS (ar_ft_src);
CREATE TABLE ar_free_kid () INHERITS (ar_mid);
SELECT streamml.untrack_outcomes('ar_s');
CREATE TABLE ar_out_kid () INHERITS (ar_out);
SELECT streamml.track_outcomes('ar_s', 'ar_out', '{"actual": "y"}');
DROP TABLE ar_out_kid, ar_free_kid, ar_mid_kid, ar_mid, ar_src_parent;

-- The row form's reader of a row type lives as long as its call site: a
-- PL/pgSQL simple expression keeps it for the transaction.  Columns
-- renamed (or dropped and added) in the transaction are read by their new
-- names, not by the old names' positions (which swapped x1 and x2 here).
CREATE TABLE ar_rn (x1 float8, x2 float8);
INSERT INTO ar_rn VALUES (1, 10), (3, 5);
CREATE FUNCTION ar_rn_f(r ar_rn) RETURNS float8 LANGUAGE plpgsql AS $$
BEGIN
	RETURN streamml.predict('ar_m', r);
END $$;
BEGIN;
SELECT round(ar_rn_f(t)::numeric, 6) AS kept,
	   round(streamml.predict('ar_m', ARRAY[t.x1, t.x2])::numeric, 6) AS expected
  FROM ar_rn t ORDER BY t.x1;
ALTER TABLE ar_rn RENAME COLUMN x1 TO tmp;
ALTER TABLE ar_rn RENAME COLUMN x2 TO x1;
ALTER TABLE ar_rn RENAME COLUMN tmp TO x2;
SELECT round(ar_rn_f(t)::numeric, 6) AS kept,
	   round(streamml.predict('ar_m', ARRAY[t.x1, t.x2])::numeric, 6) AS expected
  FROM ar_rn t ORDER BY t.x1;
ALTER TABLE ar_rn DROP COLUMN x1;
ALTER TABLE ar_rn ADD COLUMN x1 float8 DEFAULT 2;
SELECT round(ar_rn_f(t)::numeric, 6) AS kept,
	   round(streamml.predict('ar_m', ARRAY[t.x1, t.x2])::numeric, 6) AS expected
  FROM ar_rn t ORDER BY t.x2;
COMMIT;
-- a composite type altered likewise
CREATE TYPE ar_ct AS (x2 float8, x1 float8);
CREATE FUNCTION ar_ct_f(a float8, b float8) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	r ar_ct := ROW(a, b);
BEGIN
	RETURN streamml.predict('ar_m', r);
END $$;
BEGIN;
SELECT round(ar_ct_f(1, 10)::numeric, 6) AS kept,
	   round(streamml.predict('ar_m', ARRAY[10, 1]::float8[])::numeric, 6) AS expected;
ALTER TYPE ar_ct RENAME ATTRIBUTE x1 TO tmp;
ALTER TYPE ar_ct RENAME ATTRIBUTE x2 TO x1;
ALTER TYPE ar_ct RENAME ATTRIBUTE tmp TO x2;
SELECT round(ar_ct_f(1, 10)::numeric, 6) AS kept,
	   round(streamml.predict('ar_m', ARRAY[1, 10]::float8[])::numeric, 6) AS expected;
COMMIT;
DROP FUNCTION ar_rn_f(ar_rn), ar_ct_f(float8, float8);
DROP TABLE ar_rn;
DROP TYPE ar_ct;

-- Data drift aggregates with extreme references.  Fractions near DBL_MAX
-- are normalised as any others (their sum was infinite, every fraction
-- became 0 and the PSI was that of a reference of empty bins): the same
-- PSI as for fractions 0.5, 0.5.
SELECT round(streamml.psi(x, '{0,1,2}', '{1e308,1e308}')::numeric, 9) AS huge,
	   round(streamml.psi(x, '{0,1,2}', '{0.5,0.5}')::numeric, 9) AS plain,
	   round(streamml.psi(x, '{0,1,2}', '{1e-320,1e-320}')::numeric, 9) AS tiny
  FROM generate_series(0, 1, 0.1) x;
-- A bin wider than DBL_MAX: W1 of values in [0, 1] against a reference
-- uniform on [-1.7e308, 1.7e308] is a quarter of the width (it was NaN);
-- scaled down, the same figure.
SELECT streamml.wasserstein_distance(x, '{-1.7e308,1.7e308}', '{1}') / 1.7e308 AS huge,
	   streamml.wasserstein_distance(x * 1e-300, '{-1.7e8,1.7e8}', '{1}') / 1.7e8 AS scaled
  FROM generate_series(0, 1, 0.1) x;
-- a distance beyond DBL_MAX is float8's overflow error, not Infinity
SELECT streamml.wasserstein_distance(x, '{-1.7e308,-1.6e308}', '{1}')
  FROM (VALUES (1.7e308::float8)) v(x);

-- Drift detectors whose sums overflow: finite values of great magnitude
-- made ADWIN's and CUSUM's variance infinite or NaN, and the detector
-- never detected again (a clear step at row 501 went unseen).
-- drift_detect reports float8's overflow error; unscaled, the step is seen.
SELECT streamml.drift_detect('cusum', x * 1e300)->'detections'
  FROM (SELECT CASE WHEN i > 500 THEN 2 ELSE 1 END + (i % 7) * 0.1 AS x
		  FROM generate_series(1, 1000) i) s;
SELECT streamml.drift_detect('adwin', x * 1e300)->'detections'
  FROM (SELECT CASE WHEN i > 500 THEN 2 ELSE 1 END + (i % 7) * 0.1 AS x
		  FROM generate_series(1, 1000) i) s;
SELECT streamml.drift_detect('page_hinkley', x)->'detections'
  FROM (VALUES (1e308::float8), (-1e308), (1e308)) v(x);
SELECT streamml.drift_detect('cusum', x * 1e150)->'detections' AS cusum,
	   streamml.drift_detect('adwin', x * 1e150)->'detections' AS adwin
  FROM (SELECT CASE WHEN i > 500 THEN 2 ELSE 1 END + (i % 7) * 0.1 AS x
		  FROM generate_series(1, 1000) i) s;
-- An 'error' monitor leaves such an outcome's error out, as it does an
-- infinite one: the load goes on and the detector keeps finite sums.
CREATE TABLE ar_mo_src (id int PRIMARY KEY, x1 float8, x2 float8);
SELECT streamml.create_scorer('ar_mo_s', 'ar_mo_src', 'ar_m', '{"into": "ar_mo_pred"}');
CREATE TABLE ar_mo_out (id int, y float8);
SELECT streamml.track_outcomes('ar_mo_s', 'ar_mo_out', '{"actual": "y"}');
SELECT streamml.create_monitor('ar_mo_mon', 'ar_m', 'error',
	'{"detector": "cusum", "params": {"min_instances": 3}}');
INSERT INTO ar_mo_src SELECT i, i, i * 7 % 13 FROM generate_series(1, 10) i;
INSERT INTO ar_mo_out VALUES (1, 2), (2, 3.5);
INSERT INTO ar_mo_out VALUES (3, 1e200);
INSERT INTO ar_mo_out SELECT i, 2.0 * i - 0.5 * (i * 7 % 13) + 0.25 * (i % 2)
  FROM generate_series(4, 10) i;
SELECT name, observed, detector_state->'sigma' IS NOT NULL AS sigma_finite,
	   detector_state->'sum_increase' IS NOT NULL AS sums_finite
  FROM streamml.monitors WHERE name = 'ar_mo_mon';
SELECT count(*) AS outcomes FROM streamml.outcomes WHERE scorer = 'ar_mo_s';
SELECT streamml.drop_monitor('ar_mo_mon');
SELECT streamml.untrack_outcomes('ar_mo_s');
SELECT streamml.drop_scorer('ar_mo_s');

-- A feature's "range" (or "half_life") beyond int64 microseconds is out of
-- range: '213503983 days' wrapped around to a window of 16 hours, and
-- '213503982 days' was "not positive".
CREATE TABLE ar_iv (id int, ts timestamptz, x float8);
SELECT streamml.create_feature_table('ar_iv_f', 'ar_iv',
	'{"order_by": "ts", "features": {"s": {"fn": "sum", "of": "x", "range": "213503983 days"}}}');
SELECT streamml.create_feature_table('ar_iv_f', 'ar_iv',
	'{"order_by": "ts", "features": {"s": {"fn": "sum", "of": "x", "range": "213503982 days"}}}');
SELECT streamml.create_feature_table('ar_iv_f', 'ar_iv',
	'{"order_by": "ts", "features": {"s": {"fn": "ewma", "of": "x", "half_life": "106751992 days"}}}');
SELECT streamml.create_feature_table('ar_iv_f', 'ar_iv',
	'{"order_by": "ts", "features": {"s": {"fn": "sum", "of": "x", "range": "106751990 days"}}}');
SELECT streamml.drop_feature_table('ar_iv_f');
DROP TABLE ar_iv;

-- multiclass_metrics takes probabilities between 0 and 1, as
-- classification_metrics does: a NaN never won the argmax, so a row of
-- class 0 with probabilities {NaN, 0.5} counted as correct.
SELECT streamml.multiclass_metrics(c, p)
  FROM (VALUES (0, '{NaN,0.5}'::float8[])) v(c, p);
SELECT streamml.multiclass_metrics(c, p)
  FROM (VALUES (1, '{-0.5,1.5}'::float8[])) v(c, p);
SELECT streamml.multiclass_metrics(c, p)
  FROM (VALUES (0, '{0.7,0.3}'::float8[]), (1, '{0,1}')) v(c, p);

-- feature_bins of a feature with values of both signs near DBL_MAX: the
-- deciles between them were NaN (their difference is infinite), and the
-- result failed as invalid JSON.
SELECT (b->'features'->'a'->'bins'->>0)::float8 AS lowest,
	   (b->'features'->'a'->'bins'->>5)::float8 AS median,
	   b->'features'->'a'->'fractions' AS fractions
  FROM (SELECT streamml.feature_bins(ARRAY[x], ARRAY['a']) AS b
		  FROM (VALUES (1.7e308::float8), (-1.7e308)) v(x)) s;
