-- In-database training: logistic and linear regression against fixtures
-- computed once with scikit-learn and numpy (test/data/make_fixtures.py).
CREATE TABLE logit (id int, grp text, x1 float8, x2 float8, x3 float8,
	x4 float8, flag boolean, y boolean);
\copy logit FROM 'test/data/logit.csv' CSV HEADER
CREATE TABLE logit_expected (fit text, feature text, coefficient float8);
\copy logit_expected FROM 'test/data/logit_expected.csv' CSV HEADER
CREATE TABLE logit_raw_expected (feature text, coefficient float8);
\copy logit_raw_expected FROM 'test/data/logit_raw_expected.csv' CSV HEADER
CREATE TABLE logit_proba (id int, proba float8);
\copy logit_proba FROM 'test/data/logit_proba.csv' CSV HEADER
CREATE TABLE linear (id int, a float8, b float8, c int, t float8);
\copy linear FROM 'test/data/linear.csv' CSV HEADER
CREATE TABLE linear_expected (feature text, coefficient float8);
\copy linear_expected FROM 'test/data/linear_expected.csv' CSV HEADER

-- Plain maximum likelihood, features on scales from 1e-6 to 1e9.
SELECT model, version, group_key, rows_used, rows_skipped, converged, deployed
  FROM streamml.train_logreg('churn', 'logit', 'y',
	ARRAY['x1', 'x2', 'x3', 'x4', 'flag'], '{"l2": 0}');
SELECT c.feature, abs(c.coefficient - e.coefficient) <= 1e-6 * abs(e.coefficient) AS within_1e6
  FROM streamml.coefficients c JOIN logit_expected e
	ON e.feature = c.feature AND e.fit = 'none'
 WHERE c.model = 'churn' ORDER BY c.feature;
-- predict_proba equals scikit-learn's within 1e-9.
SELECT max(abs(streamml.predict_proba('churn', ARRAY[x1, x2, x3, x4, flag::int]) - p.proba)) < 1e-9 AS proba_ok
  FROM logit l JOIN logit_proba p USING (id);
-- Standard errors, z values and p-values of the intercept and x1.
SELECT feature, round(std_error::numeric, 3) AS se, round(z_value::numeric) AS z,
	   p_value < 1e-10 AS significant, round(odds_ratio::numeric, 4) AS odds_ratio
  FROM streamml.coefficients WHERE model = 'churn' AND feature IN ('(intercept)', 'x1', 'flag')
 ORDER BY feature;

-- Ridge on the standardized scale: scikit-learn's C = 1/(n·λ) on
-- StandardScaler features.
SELECT version, converged FROM streamml.train_logreg('churn', 'logit', 'y',
	ARRAY['x1', 'x2', 'x3', 'x4', 'flag'], '{"l2": 0.01}');
SELECT c.feature, abs(c.coefficient - e.coefficient) <= 1e-6 * abs(e.coefficient) AS within_1e6
  FROM streamml.coefficients c JOIN logit_expected e
	ON e.feature = c.feature AND e.fit = 'l2'
 WHERE c.model = 'churn' AND c.version = 2 ORDER BY c.feature;
-- Ridge on the raw scale (standardize false), from a query source.
SELECT converged FROM streamml.train_logreg('raw',
	'SELECT y, x1, x4 / 1000 AS x4k FROM logit', 'y', ARRAY['x1', 'x4k'],
	'{"l2": 0.01, "standardize": false}');
SELECT c.feature, abs(c.coefficient - e.coefficient) <= 1e-6 * abs(e.coefficient) AS within_1e6
  FROM streamml.coefficients c JOIN logit_raw_expected e USING (feature)
 WHERE c.model = 'raw' ORDER BY c.feature;

-- Linear regression: numpy least squares coefficients and R².
SELECT model, version, iterations, converged, rows_used,
	   abs((metrics->>'r2')::float8 - (SELECT coefficient FROM linear_expected WHERE feature = 'r2')) < 1e-6 AS r2_ok,
	   round((metrics->>'rmse')::numeric, 4) AS rmse, round((metrics->>'mae')::numeric, 4) AS mae
  FROM streamml.train_linreg('price', 'linear', 't', ARRAY['a', 'b', 'c']);
SELECT c.feature, abs(c.coefficient - e.coefficient) <= 1e-6 * abs(e.coefficient) AS within_1e6,
	   round(c.t_value::numeric, 1) AS t, c.z_value IS NULL AS no_z, c.odds_ratio IS NULL AS no_or
  FROM streamml.coefficients c JOIN linear_expected e USING (feature)
 WHERE c.model = 'price' ORDER BY c.feature;
SELECT round(streamml.predict('price', ARRAY[1, 10, 50]::float8[])::numeric, 4) AS prediction;

-- NULL and non-finite features are skipped and counted; the rest trains.
SELECT rows_used, rows_skipped FROM streamml.train_linreg('price2',
	'SELECT t, a, CASE WHEN id % 10 = 0 THEN NULL WHEN id % 10 = 1 THEN ''NaN''::float8 ELSE b END AS b FROM linear',
	't', ARRAY['a', 'b']);
-- A constant column gets coefficient 0 and no standard error; a collinear
-- one still trains.
SELECT converged FROM streamml.train_logreg('const',
	'SELECT y, x1, 5.0::float8 AS k, 2 * x1 AS x1b FROM logit', 'y', ARRAY['x1', 'k', 'x1b']);
SELECT feature, coefficient, std_error FROM streamml.coefficients
 WHERE model = 'const' AND feature = 'k';
SELECT round((sum(coefficient) FILTER (WHERE feature = 'x1')
		+ 2 * sum(coefficient) FILTER (WHERE feature = 'x1b'))::numeric, 4) AS combined_x1
  FROM streamml.coefficients WHERE model = 'const';
-- Perfectly separable data: a warning without l2, finite coefficients with.
SELECT converged FROM streamml.train_logreg('sep', 'SELECT x1, x1 > 0 AS y FROM logit', 'y', ARRAY['x1']);
SELECT converged, round((metrics->>'accuracy')::numeric, 3) AS accuracy
  FROM streamml.train_logreg('sep', 'SELECT x1, x1 > 0 AS y FROM logit', 'y', ARRAY['x1'], '{"l2": 0.01}');
-- One array column of features: names x[1], x[2], ...
SELECT converged FROM streamml.train_logreg('arr',
	'SELECT y, ARRAY[x1, x4] AS x FROM logit', 'y', ARRAY['x']);
SELECT feature FROM streamml.coefficients WHERE model = 'arr' ORDER BY feature;
-- Labels as 0/1 integers and as text classes.
SELECT converged FROM streamml.train_logreg('int01', 'SELECT y::int AS y, x1 FROM logit', 'y', ARRAY['x1']);
SELECT converged FROM streamml.train_logreg('txt', 'SELECT CASE WHEN y THEN ''yes'' ELSE ''no'' END AS y, x1 FROM logit', 'y', ARRAY['x1']);
SELECT streamml.predict_class('txt', ARRAY[3]::float8[]), streamml.predict_class('txt', ARRAY[-3]::float8[]);

-- Errors.
SELECT * FROM streamml.train_logreg('bad', 'SELECT true AS y, x1 FROM logit', 'y', ARRAY['x1']);
SELECT * FROM streamml.train_logreg('bad', 'logit', 'nope', ARRAY['x1']);
SELECT * FROM streamml.train_logreg('bad', 'SELECT *, now() AS t FROM logit', 'y', ARRAY['t']);
SELECT * FROM streamml.train_logreg('bad', 'no_such_table', 'y', ARRAY['x1']);
SELECT * FROM streamml.train_logreg('bad', 'logit', 'y', ARRAY['x1'], '{"l3": 1}');
SELECT * FROM streamml.train_logreg('bad', 'logit', 'y', ARRAY['x1'], '{"l2": -1}');
SELECT * FROM streamml.train_logreg('bad', 'logit', 'y', ARRAY['x1'], '{"test_fraction": 0.2}');
SELECT * FROM streamml.train_logreg('bad', 'logit', 'y', ARRAY['x1'], '{"deploy": "if_better"}');
SELECT * FROM streamml.train_logreg('bad', 'SELECT * FROM logit WHERE false', 'y', ARRAY['x1']);
SELECT * FROM streamml.train_linreg('bad', 'logit', 'grp', ARRAY['x1']);
SELECT count(*) FROM streamml.models WHERE name = 'bad';
