-- A run that did not converge is not deployed unless the caller asks for it.
-- Quasi-complete separation: y = (x > 50) except two rows at x = 50.
CREATE TABLE qsep AS
SELECT i AS x, i > 50 AS y FROM generate_series(1, 100) i
UNION ALL SELECT 50, true UNION ALL SELECT 50, false;
SELECT version, converged, deployed
  FROM streamml.train_logreg('qsep', 'qsep', 'y', ARRAY['x'], '{"max_iter": 100}');
SELECT deployed_version FROM streamml.models WHERE name = 'qsep';
-- asked for explicitly: deployed, with the warning
SELECT version, converged, deployed
  FROM streamml.train_logreg('qsep', 'qsep', 'y', ARRAY['x'],
	'{"max_iter": 100, "deploy": "always"}');
SELECT deployed_version FROM streamml.models WHERE name = 'qsep';
-- a penalty makes it converge, and the default deploys it
SELECT version, converged, deployed
  FROM streamml.train_logreg('qsep', 'qsep', 'y', ARRAY['x'], '{"l2": 0.01}');
SELECT streamml.drop_model('qsep');
DROP TABLE qsep;
-- Exactly collinear features are reported by name (as R's lm reports NA
-- coefficients), held at 0 with no standard error, and recorded.
CREATE TABLE coll AS
SELECT i AS id, i / 10.0 AS x1, 2 * (i / 10.0) AS x2, (i * 37 % 11)::float8 AS x3,
	   3 * (i / 10.0) - (i * 37 % 11) AS x4,
	   1 + 0.5 * (i / 10.0) + 0.25 * (i * 37 % 11) + ((i * 7919) % 13 - 6) / 10.0 AS y
  FROM generate_series(1, 200) i;
SELECT version, converged, deployed
  FROM streamml.train_linreg('coll', 'coll', 'y', ARRAY['x1', 'x2', 'x3', 'x4']);
SELECT aliased FROM streamml.model_versions WHERE model = 'coll';
SELECT feature, round(coefficient::numeric, 6) AS coefficient, std_error IS NULL AS no_se
  FROM streamml.coefficients WHERE model = 'coll' ORDER BY feature;
SELECT version, converged
  FROM streamml.train_logreg('collg', 'SELECT x1, x2, x3, y > 4 AS y FROM coll', 'y',
	ARRAY['x1', 'x3', 'x2']);
SELECT aliased FROM streamml.model_versions WHERE model = 'collg';
-- nearly but not exactly collinear features are kept
SELECT version FROM streamml.train_linreg('near',
	'SELECT x1, x2 + 1e-4 * x3 AS x2, y FROM coll', 'y', ARRAY['x1', 'x2']);
SELECT aliased IS NULL AS none_aliased FROM streamml.model_versions WHERE model = 'near';
SELECT streamml.drop_model(m) FROM unnest(ARRAY['coll', 'collg', 'near']) m;
DROP TABLE coll;
