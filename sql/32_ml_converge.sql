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
