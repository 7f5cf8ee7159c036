-- solver 'lbfgs': gradient-only passes for many features, against the same
-- scikit-learn fixtures as Newton (test/data/logit_expected.csv).
SELECT model, rows_used, converged
  FROM streamml.train_logreg('lb', 'logit', 'y', ARRAY['x1', 'x2', 'x3', 'x4', 'flag'],
	'{"solver": "lbfgs"}');
SELECT c.feature, abs(c.coefficient - e.coefficient) <= 1e-6 * abs(e.coefficient) AS within_1e6,
	   c.std_error IS NULL AS no_se
  FROM streamml.coefficients c JOIN logit_expected e ON e.feature = c.feature AND e.fit = 'none'
 WHERE c.model = 'lb' ORDER BY c.feature;
SELECT converged FROM streamml.train_logreg('lb', 'logit', 'y', ARRAY['x1', 'x2', 'x3', 'x4', 'flag'],
	'{"solver": "lbfgs", "l2": 0.01}');
SELECT c.feature, abs(c.coefficient - e.coefficient) <= 1e-6 * abs(e.coefficient) AS within_1e6
  FROM streamml.coefficients c JOIN logit_expected e ON e.feature = c.feature AND e.fit = 'l2'
 WHERE c.model = 'lb' AND c.version = 2 ORDER BY c.feature;
-- More passes than Newton, each without the Hessian.
SELECT (SELECT iterations FROM streamml.model_versions WHERE model = 'lb' AND version = 1) >
	   (SELECT iterations FROM streamml.model_versions WHERE model = 'churn' AND version = 1) AS more_passes;
-- Errors.
SELECT * FROM streamml.train_logreg('bad', 'logit', 'y', ARRAY['x1'], '{"solver": "sgd"}');
SELECT * FROM streamml.train_logreg('bad', 'logit', 'y', ARRAY['x1'], '{"solver": "lbfgs", "group_by": "grp"}');
SELECT * FROM streamml.train_logreg('bad', 'logit', 'y', ARRAY['x1'], '{"solver": "lbfgs", "l1": 0.1}');
SELECT * FROM streamml.train_logreg('bad', 'three', 'c', ARRAY['x1', 'x2'], '{"solver": "lbfgs"}');
SELECT * FROM streamml.train_linreg('bad', 'linear', 't', ARRAY['a'], '{"solver": "lbfgs"}');
