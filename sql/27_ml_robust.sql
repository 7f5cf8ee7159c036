-- Training and evaluation on awkward data: feature arrays of the wrong
-- length, features and labels at extreme scales, and models too large for
-- the Newton solver.  (Cancellation is tested by TAP, 028_ml_cancel.)

-- 1. Malformed feature arrays are skipped and counted, not fatal.
-- y = 1 + 2 x1 - x2 exactly on the good rows; the odd rows come first in
-- the scan, so the length must not come from the first row.
CREATE TABLE rb_arr (id int, f float8[], t float8, c boolean);
INSERT INTO rb_arr VALUES
	(1, '{}', 5, true),
	(2, '{1,2,3}', 5, false),
	(3, '{{1,2}}', 5, true),
	(4, NULL, 5, false),
	(5, '{1,NULL}', 5, true);
INSERT INTO rb_arr
SELECT 5 + i, ARRAY[i % 7, i % 5]::float8[], 1 + 2 * (i % 7) - (i % 5),
	   (i % 7) + (i % 5) + (i % 3) > 6
  FROM generate_series(1, 60) i;
SELECT rows_used, rows_skipped,
	   round((metrics->>'r2')::numeric, 9) AS r2
  FROM streamml.train_linreg('rb_lin', 'SELECT * FROM rb_arr ORDER BY id', 't', ARRAY['f']);
SELECT feature, round(coefficient::numeric, 9) AS coefficient
  FROM streamml.coefficients WHERE model = 'rb_lin' ORDER BY feature;
SELECT rows_used, rows_skipped
  FROM streamml.train_logreg('rb_log', 'SELECT * FROM rb_arr ORDER BY id', 'c', ARRAY['f'],
	'{"l2": 0.01}');
-- the L-BFGS and the holdout passes skip them too
SELECT rows_used, rows_skipped, metrics->>'on' AS "on", (metrics->>'rows')::int AS holdout_rows
  FROM streamml.train_logreg('rb_log2', 'rb_arr', 'c', ARRAY['f'],
	'{"l2": 0.01, "solver": "lbfgs", "test_fraction": 0.5, "order_by": "id"}');
-- evaluate: the model fixes the length; NULL, NaN and infinite features
-- are skipped and counted as in training
INSERT INTO rb_arr VALUES (100, '{NaN,1}', 5, true), (101, '{1,Infinity}', 5, false),
	(102, '{-Infinity,1}', 5, true), (103, '{1,2,3,4}', 5, true);
WITH e AS MATERIALIZED (SELECT streamml.evaluate('rb_lin', 'SELECT * FROM rb_arr ORDER BY id', 't', ARRAY['f']) AS m)
SELECT m->'rows' AS rows, m->'rows_skipped' AS skipped, round((m->>'r2')::numeric, 9) AS r2 FROM e;
WITH e AS MATERIALIZED (SELECT streamml.evaluate('rb_log', 'rb_arr', 'c', ARRAY['f']) AS m)
SELECT m->'rows' AS rows, m->'rows_skipped' AS skipped FROM e;
-- feature columns: NULL, NaN and infinite values likewise
CREATE TABLE rb_cols AS SELECT f[1] AS a, f[2] AS b, t FROM rb_arr WHERE id > 5 AND id < 100;
SELECT rows_used FROM streamml.train_linreg('rb_cols', 'rb_cols', 't', ARRAY['a', 'b']);
INSERT INTO rb_cols VALUES (NULL, 1, 1), ('NaN', 1, 1), (1, 'Infinity', 1), (1, '-Infinity', 1), (1, 1, NULL);
WITH e AS MATERIALIZED (SELECT streamml.evaluate('rb_cols', 'rb_cols', 't', ARRAY['a', 'b']) AS m)
SELECT m->'rows' AS rows, m->'rows_skipped' AS skipped FROM e;
-- no most common length: an error that says so
SELECT * FROM streamml.train_linreg('rb_tie',
	'VALUES (1::float8, ARRAY[1,2]::float8[]), (2, ARRAY[3]::float8[])', 'column1', ARRAY['column2']);
SELECT * FROM streamml.train_linreg('rb_none',
	'VALUES (1::float8, ''{}''::float8[])', 'column1', ARRAY['column2']);
-- the aggregate with its expected length (header: weight, rows used,
-- skipped, p, malformed, full); in the three-argument form of earlier
-- versions the first non-empty array still decides
SELECT (streamml.ml_moments(t, f, 1, 2, true))[1:6] AS header FROM rb_arr;
SELECT (streamml.ml_moments(t, f, 1))[1:6] AS header FROM (SELECT * FROM rb_arr ORDER BY id) s;

-- 2. Extreme scales: never a zero coefficient for a varying feature.
-- y = 2 x + (i % 3) 1e200 with x = i 1e200: the same fit as at scale 1.
SELECT rows_used, round((metrics->>'r2')::numeric, 12) AS r2,
	   ((metrics->>'rmse')::float8 / 1e200)::numeric(20, 12) AS rmse
  FROM streamml.train_linreg('rb_huge',
	'SELECT (i * 1e200)::float8 x, 2 * (i * 1e200)::float8 + (i % 3) * 1e200 y FROM generate_series(1, 100) i',
	'y', ARRAY['x']);
SELECT feature, (coefficient / CASE WHEN feature = 'x' THEN 1 ELSE 1e200 END)::numeric(20, 12) AS coefficient,
	   (std_error / CASE WHEN feature = 'x' THEN 1 ELSE 1e200 END)::numeric(20, 12) AS std_error
  FROM streamml.coefficients WHERE model = 'rb_huge' ORDER BY feature;
SELECT rows_used, round((metrics->>'r2')::numeric, 12) AS r2
  FROM streamml.train_linreg('rb_tiny',
	'SELECT (i * 1e-200)::float8 x, 2 * (i * 1e-200)::float8 + (i % 3) * 1e-200 y FROM generate_series(1, 100) i',
	'y', ARRAY['x']);
SELECT feature, (coefficient / CASE WHEN feature = 'x' THEN 1 ELSE 1e-200 END)::numeric(20, 12) AS coefficient
  FROM streamml.coefficients WHERE model = 'rb_tiny' ORDER BY feature;
-- the same data at scale 1, for comparison
SELECT rows_used, round((metrics->>'r2')::numeric, 12) AS r2
  FROM streamml.train_linreg('rb_one',
	'SELECT i::float8 x, 2 * i::float8 + (i % 3) y FROM generate_series(1, 100) i', 'y', ARRAY['x']);
SELECT feature, coefficient::numeric(20, 12) AS coefficient
  FROM streamml.coefficients WHERE model = 'rb_one' ORDER BY feature;
-- a huge feature beside an ordinary one, and a label near 1e-100
SELECT rows_used, round((metrics->>'r2')::numeric, 12) AS r2
  FROM streamml.train_linreg('rb_mixed',
	'SELECT (i * 1e150)::float8 x, (i % 4)::float8 z, (3 * i + 2 * (i % 4) + (i % 3)) * 1e-100 y FROM generate_series(1, 100) i',
	'y', ARRAY['x', 'z']);
SELECT feature,
	   (coefficient / CASE feature WHEN 'x' THEN 1e-250 ELSE 1e-100 END)::numeric(20, 9) AS scaled
  FROM streamml.coefficients WHERE model = 'rb_mixed' AND feature <> '(intercept)' ORDER BY feature;
-- logistic: the fit at 1e200 is the fit at 1 with the slope divided by 1e200
SELECT rows_used, converged, deployed
  FROM streamml.train_logreg('rb_loghuge',
	'SELECT (i * 1e200)::float8 x, (i > 50 OR i % 7 = 0) y FROM generate_series(1, 100) i', 'y', ARRAY['x']);
SELECT rows_used, converged
  FROM streamml.train_logreg('rb_logone',
	'SELECT i::float8 x, (i > 50 OR i % 7 = 0) y FROM generate_series(1, 100) i', 'y', ARRAY['x']);
SELECT h.feature, abs(h.coefficient * CASE WHEN h.feature = 'x' THEN 1e200 ELSE 1 END / o.coefficient - 1) < 1e-9 AS same
  FROM streamml.coefficients h JOIN streamml.coefficients o USING (feature)
 WHERE h.model = 'rb_loghuge' AND o.model = 'rb_logone' ORDER BY 1;
SELECT rows_used, converged
  FROM streamml.train_logreg('rb_logtiny',
	'SELECT (i * 1e-200)::float8 x, (i > 50 OR i % 7 = 0) y FROM generate_series(1, 100) i', 'y', ARRAY['x'],
	'{"solver": "lbfgs"}');
SELECT feature, (coefficient * CASE WHEN feature = 'x' THEN 1e-200 ELSE 1 END)::numeric(20, 6) AS coefficient
  FROM streamml.coefficients WHERE model = 'rb_logtiny' ORDER BY feature;
-- a constant column at any scale is still constant
SELECT rows_used FROM streamml.train_linreg('rb_const',
	'SELECT 1e200::float8 c, i::float8 x, 3 * i::float8 y FROM generate_series(1, 20) i', 'y', ARRAY['c', 'x']);
SELECT feature, round(coefficient::numeric, 9) AS coefficient, std_error IS NULL AS no_std_error
  FROM streamml.coefficients WHERE model = 'rb_const' ORDER BY feature;
-- what cannot be represented is an error, not a silent zero
SELECT * FROM streamml.train_linreg('rb_over',
	'SELECT (i * 1e-200)::float8 x, (2 * i + (i % 3)) * 1e200 y FROM generate_series(1, 100) i',
	'y', ARRAY['x']);
SELECT * FROM streamml.train_linreg('rb_under',
	'SELECT (i * 1e250)::float8 x, (3 * i + (i % 3)) * 1e-200 y FROM generate_series(1, 100) i',
	'y', ARRAY['x']);
SELECT * FROM streamml.train_linreg('rb_denormal',
	'SELECT (i * 1e-310)::float8 x, i::float8 y FROM generate_series(1, 100) i', 'y', ARRAY['x']);
-- evaluation at extreme scales
WITH e AS MATERIALIZED (SELECT streamml.evaluate('rb_huge',
	'SELECT (i * 1e200)::float8 x, 2 * (i * 1e200)::float8 + (i % 3) * 1e200 y FROM generate_series(1, 100) i',
	'y', ARRAY['x']) AS m)
SELECT m->'rows' AS rows, round((m->>'r2')::numeric, 12) AS r2,
	   ((m->>'rmse')::float8 / 1e200)::numeric(20, 12) AS rmse FROM e;
SELECT (m->>'rows')::int AS rows, round((m->>'r2')::numeric, 12) AS r2,
	   ((m->>'mae')::float8 * 1e200)::numeric(20, 12) AS mae
  FROM (SELECT streamml.regression_metrics(y * 1e-200, (y + (i % 2)) * 1e-200) AS m
		  FROM generate_series(1, 10) i, LATERAL (SELECT i::float8 AS y) l) r;
-- the moments aggregate keeps them finite, and the variance of x nonzero
-- (the last element, its co-moment in its unit)
WITH m AS MATERIALIZED (SELECT streamml.ml_moments(y, ARRAY[x], 1, 1, true) AS v
  FROM (SELECT (i * 1e-200)::float8 x, (i % 3) * 1e300 y FROM generate_series(1, 100) i) s)
SELECT cardinality(v) AS len,
	   (SELECT bool_and(e::text NOT IN ('Infinity', '-Infinity', 'NaN')) FROM unnest(v) e) AS finite,
	   v[13] > 0 AS varies
  FROM m;

-- 3. Size bound: the Newton solver and the normal equations take at most
-- 4096 coefficients (matrices of 64 MiB); L-BFGS has no such bound.
CREATE TABLE rb_wide AS
SELECT i, i % 2 = 0 AS c, i % 3 AS k, i::float8 AS t,
	   array_fill((i % 5)::float8, ARRAY[5000]) AS f
  FROM generate_series(1, 40) i;
SELECT * FROM streamml.train_logreg('rb_wide', 'rb_wide', 'c', ARRAY['f']);
SELECT * FROM streamml.train_linreg('rb_wide', 'rb_wide', 't', ARRAY['f']);
SELECT * FROM streamml.train_logreg('rb_wide', 'SELECT k, f[1:2000] AS f FROM rb_wide', 'k', ARRAY['f']);
SELECT rows_used, rows_skipped, converged
  FROM streamml.train_logreg('rb_wide', 'rb_wide', 'c', ARRAY['f'], '{"solver": "lbfgs"}');
SELECT count(*) AS coefficients FROM streamml.coefficients WHERE model = 'rb_wide';
-- the aggregates refuse such matrices too when called directly
SELECT streamml.ml_moments(t, f, 1, 5000, true) FROM rb_wide;
SELECT (streamml.ml_moments(t, f, 1, 5000, false))[1:6] AS header FROM rb_wide;
-- Extreme row weights: outside [1e-12, 1e12] (0 aside) a clear error, never
-- a fit whose sums overflowed or underflowed; small uniform weights give
-- the unweighted fit.
CREATE TABLE wx AS
SELECT i::float8 AS x, (2 * i + (i % 3))::float8 AS y, 1e300::float8 AS big,
	   1e-12::float8 AS tiny, 1e-200::float8 AS tinier, i % 2 = 0 AS up
  FROM generate_series(1, 50) i;
SELECT rows_used FROM streamml.train_linreg('wx_big', 'wx', 'y', ARRAY['x'], '{"weight": "big"}');
SELECT rows_used FROM streamml.train_gbt('wx_big', 'wx', 'y', ARRAY['x'], '{"weight": "big", "trees": 2}');
SELECT rows_used FROM streamml.train_logreg('wx_big', 'wx', 'up', ARRAY['x'], '{"weight": "tinier"}');
SELECT abs((t.metrics->>'r2')::float8 - (u.metrics->>'r2')::float8) < 1e-9 AS same_fit
  FROM streamml.train_linreg('wx_tiny', 'wx', 'y', ARRAY['x'], '{"weight": "tiny"}') t,
	   streamml.train_linreg('wx_one', 'wx', 'y', ARRAY['x']) u;
-- A linear prediction whose sum overflows is an error, as float8 arithmetic
-- raises, not Infinity.
SELECT streamml.predict('wx_one', ARRAY[1e307]);
SELECT streamml.predict('wx_one', ARRAY[-1e308]);
SELECT streamml.drop_model('wx_tiny'), streamml.drop_model('wx_one');
DROP TABLE wx;
