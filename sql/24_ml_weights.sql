-- Class weights, row weights and warm start against scikit-learn
-- (test/data/logit_weighted_expected.csv, from make_fixtures.py):
-- unpenalized fits with class_weight 'balanced', class_weight
-- {false: 1, true: 3}, and sample_weight 1 + id % 3.
CREATE TABLE logit_weighted_expected (fit text, feature text, coefficient float8);
\copy logit_weighted_expected FROM 'test/data/logit_weighted_expected.csv' CSV HEADER
SELECT model, rows_used, converged FROM streamml.train_logreg('cw_balanced', 'logit', 'y',
	ARRAY['x1', 'x2', 'x3', 'x4', 'flag'], '{"class_weight": "balanced"}');
SELECT model, rows_used, converged FROM streamml.train_logreg('cw_object', 'logit', 'y',
	ARRAY['x1', 'x2', 'x3', 'x4', 'flag'], '{"class_weight": {"false": 1, "true": 3}}');
SELECT model, rows_used, converged FROM streamml.train_logreg('cw_weight',
	'SELECT *, 1 + id % 3 AS w FROM logit', 'y',
	ARRAY['x1', 'x2', 'x3', 'x4', 'flag'], '{"weight": "w"}');
SELECT e.fit, bool_and(abs(c.coefficient - e.coefficient) <= 1e-6 * abs(e.coefficient)) AS within_1e6,
	   count(*) AS coefficients
  FROM streamml.coefficients c
  JOIN logit_weighted_expected e
	ON c.model = CASE e.fit WHEN 'balanced' THEN 'cw_balanced'
						  WHEN 'object' THEN 'cw_object' ELSE 'cw_weight' END
   AND c.feature = e.feature
 GROUP BY e.fit ORDER BY e.fit;
-- Class weights by 0/1 names of a boolean label are the same weights.
SELECT converged FROM streamml.train_logreg('cw_object01', 'logit', 'y',
	ARRAY['x1', 'x2', 'x3', 'x4', 'flag'], '{"class_weight": {"0": 1, "1": 3}}');
SELECT bool_and(abs(a.coefficient - b.coefficient) <= 1e-9 * abs(b.coefficient)) AS same
  FROM streamml.coefficients a JOIN streamml.coefficients b USING (feature)
 WHERE a.model = 'cw_object01' AND b.model = 'cw_object';
-- A weight of 2 on every row is the same fit as no weight.
SELECT converged FROM streamml.train_logreg('w2', 'SELECT *, 2 AS w FROM logit', 'y',
	ARRAY['x1', 'x2', 'x3', 'x4', 'flag'], '{"weight": "w"}');
SELECT bool_and(abs(a.coefficient - b.coefficient) <= 1e-6 * abs(b.coefficient)) AS same
  FROM streamml.coefficients a JOIN streamml.coefficients b USING (feature)
 WHERE a.model = 'w2' AND b.model = 'churn' AND b.version = 1;
-- Errors.
SELECT * FROM streamml.train_logreg('bad', 'logit', 'y', ARRAY['x1'], '{"class_weight": "even"}');
SELECT * FROM streamml.train_logreg('bad', 'logit', 'y', ARRAY['x1'], '{"class_weight": {"true": -1}}');
SELECT * FROM streamml.train_logreg('bad', 'logit', 'y', ARRAY['x1'], '{"weight": "grp"}');
SELECT * FROM streamml.train_logreg('bad', 'logit', 'y', ARRAY['x1'], '{"weight": "nope"}');

-- Warm start: the same optimum from the deployed coefficients, in fewer
-- Newton iterations.  Version 1 sees the first 1800 rows; version 2 starts
-- from it on all 2000, and matches a cold fit on all 2000.
CREATE VIEW logit_growing AS SELECT * FROM logit WHERE id <= 1800;
SELECT version, converged FROM streamml.train_logreg('ws', 'logit_growing', 'y',
	ARRAY['x1', 'x2', 'x3', 'x4', 'flag']);
CREATE OR REPLACE VIEW logit_growing AS SELECT * FROM logit;
CREATE TABLE ws_runs AS
SELECT 'warm' AS run, * FROM streamml.train_logreg('ws', 'logit_growing', 'y',
	ARRAY['x1', 'x2', 'x3', 'x4', 'flag'], '{"warm_start": true}')
UNION ALL
SELECT 'cold', * FROM streamml.train_logreg('ws_cold', 'logit_growing', 'y',
	ARRAY['x1', 'x2', 'x3', 'x4', 'flag']);
SELECT run, version, rows_used, converged FROM ws_runs ORDER BY run;
SELECT (SELECT iterations FROM ws_runs WHERE run = 'warm') <
	   (SELECT iterations FROM ws_runs WHERE run = 'cold') AS fewer_iterations;
SELECT bool_and(abs(w.coefficient - c.coefficient) <= 1e-6 * abs(c.coefficient)) AS same_optimum,
	   count(*) AS coefficients
  FROM streamml.coefficients w JOIN streamml.coefficients c USING (feature)
 WHERE w.model = 'ws' AND w.version = 2 AND c.model = 'ws_cold';
-- Both also match scikit-learn's unpenalized fit.
SELECT bool_and(abs(w.coefficient - e.coefficient) <= 1e-6 * abs(e.coefficient)) AS within_1e6
  FROM streamml.coefficients w JOIN logit_expected e ON e.feature = w.feature AND e.fit = 'none'
 WHERE w.model = 'ws' AND w.version = 2;
SELECT * FROM streamml.train_logreg('bad', 'logit', 'y', ARRAY['x1'], '{"class_weight": {"yes": 2}}');
SELECT * FROM streamml.train_logreg('bad', 'logit', 'y', ARRAY['x1'], '{"class_weight": {"true": "2"}}');
SELECT count(*) FROM streamml.models WHERE name = 'bad';

-- Feature arrays stored in a table (short varlena headers, read in place)
-- give the same model as the same features as columns; arrays with a NULL
-- or a NaN are skipped.
CREATE TABLE logit_arr AS SELECT id, y, ARRAY[x1, x2, x3, x4, flag::int] AS f FROM logit;
INSERT INTO logit_arr VALUES (3001, true, ARRAY[1, NULL, 1e9, 5000, 0]),
	(3002, false, ARRAY['NaN', 0, 1e9, 5000, 0]);
SELECT rows_used, rows_skipped, converged
  FROM streamml.train_logreg('arr_stored', 'logit_arr', 'y', ARRAY['f']);
SELECT bool_and(abs(a.coefficient - c.coefficient) <= 1e-9 * abs(c.coefficient)) AS same, count(*)
  FROM streamml.coefficients a
  JOIN streamml.coefficients c
	ON c.model = 'churn' AND c.version = 1
   AND c.feature = CASE a.feature WHEN '(intercept)' THEN '(intercept)'
					 ELSE (ARRAY['x1', 'x2', 'x3', 'x4', 'flag'])[substring(a.feature from '\[(\d+)\]')::int] END
 WHERE a.model = 'arr_stored';
-- Long arrays are stored compressed or out of line (TOAST): read as well.
SELECT setseed(0.9);
CREATE TABLE wide AS
SELECT i AS id, ARRAY(SELECT random() - 0.5 + 0 * i FROM generate_series(1, 300)) AS f,
	   random() < 0.5 AS y
  FROM generate_series(1, 400) i;
SELECT pg_relation_size(reltoastrelid) > 0 AS toasted FROM pg_class WHERE oid = 'wide'::regclass;
SELECT rows_used, rows_skipped, converged
  FROM streamml.train_logreg('wide', 'wide', 'y', ARRAY['f'], '{"l2": 1}');
