-- Lasso and elastic net for linear regression, solved from the moments by
-- coordinate descent, against scikit-learn's Lasso and ElasticNet on the
-- standardized features (test/data/linear_l1_expected.csv).
CREATE TABLE linear_l1_expected (fit text, feature text, coefficient float8);
\copy linear_l1_expected FROM 'test/data/linear_l1_expected.csv' CSV HEADER
SELECT model, rows_used, iterations, converged
  FROM streamml.train_linreg('lasso', 'linear', 't', ARRAY['a', 'b', 'c'], '{"l1": 0.3}');
SELECT model, rows_used, converged
  FROM streamml.train_linreg('enet', 'linear', 't', ARRAY['a', 'b', 'c'], '{"l1": 0.05, "l2": 0.02}');
SELECT e.fit, e.feature,
	   abs(c.coefficient - e.coefficient) <= 1e-6 * greatest(abs(e.coefficient), 1e-3) AS within_1e6,
	   c.coefficient = 0 AS zero, c.std_error IS NULL AS no_se
  FROM linear_l1_expected e
  JOIN streamml.coefficients c ON c.model = e.fit AND c.feature = e.feature
 WHERE e.fit <> 'logit_l1' ORDER BY e.fit, e.feature;
SELECT model, l1, l2 FROM streamml.model_versions WHERE model IN ('lasso', 'enet') ORDER BY model;
-- A large enough l1 leaves only the intercept: the mean of the target.
SELECT converged FROM streamml.train_linreg('lasso_all', 'linear', 't', ARRAY['a', 'b', 'c'], '{"l1": 100}');
SELECT bool_and(coefficient = 0) FILTER (WHERE feature <> '(intercept)') AS all_zero,
	   abs(max(coefficient) FILTER (WHERE feature = '(intercept)') - (SELECT avg(t) FROM linear)) < 1e-12 AS mean
  FROM streamml.coefficients WHERE model = 'lasso_all';
-- l1-penalized logistic regression: proximal Newton (each Newton pass
-- minimises the quadratic model plus the l1 penalty by coordinate descent)
-- against scikit-learn's saga with C = 1/(n·l1).
SELECT model, rows_used, converged
  FROM streamml.train_logreg('logit_l1', 'logit', 'y', ARRAY['x1', 'x2', 'x3', 'x4', 'flag'], '{"l1": 0.05}');
SELECT e.feature,
	   abs(c.coefficient - e.coefficient) <= 1e-6 * abs(e.coefficient) AS within_1e6,
	   c.coefficient = 0 AS zero, c.std_error IS NULL AS no_se
  FROM linear_l1_expected e
  JOIN streamml.coefficients c ON c.model = e.fit AND c.feature = e.feature
 WHERE e.fit = 'logit_l1' ORDER BY e.feature;
SELECT * FROM streamml.train_linreg('bad', 'linear', 't', ARRAY['a'], '{"l1": -1}');
