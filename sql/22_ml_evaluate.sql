-- streamml.evaluate: metrics of the deployed version against scikit-learn's
-- on the same rows (test/data/eval_expected.csv, from make_fixtures.py).
CREATE TABLE eval_expected (model text, metric text, value float8);
\copy eval_expected FROM 'test/data/eval_expected.csv' CSV HEADER

-- Version 1 of churn is the unpenalized fit whose probabilities equal
-- scikit-learn's within 1e-9.
SELECT streamml.deploy('churn', 1);
CREATE TABLE ev AS
SELECT streamml.evaluate('churn', 'logit', 'y', ARRAY['x1', 'x2', 'x3', 'x4', 'flag']) AS m;
SELECT m->'rows' AS rows, m->'rows_skipped' AS skipped, m->'version' AS version FROM ev;
SELECT e.metric,
	   abs(coalesce(m->>e.metric, m->'confusion_matrix'->>e.metric)::float8 - e.value)
		   <= 1e-9 * greatest(1, abs(e.value)) AS matches_sklearn
  FROM ev, eval_expected e WHERE e.model = 'churn' ORDER BY e.metric;
SELECT streamml.deploy('churn', 2);

-- Linear regression: rmse, mae and r2 of the least squares model.
SELECT e.metric, abs((m->>e.metric)::float8 - e.value) <= 1e-9 * greatest(1, abs(e.value)) AS matches_numpy
  FROM (SELECT streamml.evaluate('price', 'linear', 't', ARRAY['a', 'b', 'c']) AS m) v,
	   eval_expected e
 WHERE e.model = 'price' ORDER BY e.metric;

-- A grouped model: overall metrics and one object per group, each equal to
-- the aggregate called directly on predict_proba of that group.
CREATE TABLE evg AS
SELECT streamml.evaluate('bygrp', 'logit', 'y', ARRAY['x1', 'x4', 'flag']) AS m;
SELECT m->'rows' AS rows, m->'version' AS version,
	   (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(m->'groups') k) AS groups,
	   m->'groups'->'A'->'rows' AS a_rows
  FROM evg;
SELECT d.grp, bool_and(abs((evg.m->'groups'->d.grp->>k)::float8 - (d.m->>k)::float8) < 1e-12) AS same
  FROM evg,
	   (SELECT grp, streamml.classification_metrics(y, streamml.predict_proba('bygrp', grp, ARRAY[x1, x4, flag::int]::float8[])) AS m
		  FROM logit GROUP BY grp) d,
	   unnest(ARRAY['accuracy', 'precision', 'recall', 'f1', 'roc_auc', 'pr_auc', 'log_loss']) k
 GROUP BY d.grp ORDER BY d.grp;
SELECT abs((m->>'roc_auc')::float8 - (SELECT (streamml.classification_metrics(y,
		streamml.predict_proba('bygrp', grp, ARRAY[x1, x4, flag::int]::float8[]))->>'roc_auc')::float8 FROM logit)) < 1e-12 AS overall_same
  FROM evg;
-- Rows whose group is NULL have no model: skipped and counted, never scored
-- with another group's coefficients (the '' group included).
SELECT m->'rows' AS rows, m->'rows_skipped' AS rows_skipped,
	   (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(m->'groups') k) AS groups
  FROM (SELECT streamml.evaluate('bygrp',
		   'SELECT CASE WHEN x1 < 0 THEN NULL ELSE grp END AS grp, y, x1, x4, flag FROM logit',
		   'y', ARRAY['x1', 'x4', 'flag']) AS m) e;
SELECT count(*) FILTER (WHERE x1 < 0) AS null_group_rows FROM logit;
-- Rows of a group the model does not know are skipped and counted.
SELECT m->'rows' AS rows, m->'rows_skipped' AS skipped, m->'groups'->'C' AS c
  FROM (SELECT streamml.evaluate('bygrp',
	'SELECT CASE WHEN id <= 100 THEN ''C'' ELSE grp END AS grp, y, x1, x4, flag FROM logit',
	'y', ARRAY['x1', 'x4', 'flag']) AS m) v;

-- Multinomial: labels outside the model's classes are skipped.
SELECT m->'rows' AS rows, m->'rows_skipped' AS skipped,
	   (m->>'accuracy')::float8 > 0.7 AS accurate,
	   jsonb_array_length(m->'confusion_matrix') AS classes,
	   (SELECT sum(x::int) FROM jsonb_array_elements(m->'confusion_matrix') r,
			   jsonb_array_elements_text(r) x) AS counted
  FROM (SELECT streamml.evaluate('three',
	'SELECT CASE WHEN id <= 10 THEN ''zzz'' ELSE c END AS c, x1, x2 FROM three',
	'c', ARRAY['x1', 'x2']) AS m) v;

-- Names that need quoting: a view, a label and features with capitals and
-- spaces; integer 0/1 labels are matched as numbers.
CREATE VIEW "Odd View" AS
SELECT y::int AS "Churned?", x1 AS "X 1", x4 AS "x4", grp FROM logit;
SELECT converged FROM streamml.train_logreg('odd', '"Odd View"', 'Churned?', ARRAY['X 1', 'x4']);
SELECT m->'rows' AS rows, m->'rows_skipped' AS skipped, round((m->>'roc_auc')::numeric, 4) AS roc_auc
  FROM (SELECT streamml.evaluate('odd', '"Odd View"', 'Churned?', ARRAY['X 1', 'x4']) AS m) v;

-- Errors.
SELECT streamml.evaluate('nope', 'logit', 'y', ARRAY['x1']);
SELECT version, deployed FROM streamml.train_logreg('undeployed', 'logit', 'y', ARRAY['x1'], '{"deploy": "never"}');
SELECT streamml.evaluate('undeployed', 'logit', 'y', ARRAY['x1']);
SELECT streamml.evaluate('churn', 'logit', 'nope', ARRAY['x1', 'x2', 'x3', 'x4', 'flag']);
SELECT streamml.evaluate('churn', 'logit', 'y', ARRAY['x1', 'x2']);
SELECT streamml.evaluate('churn', 'no_such_table', 'y', ARRAY['x1']);
SELECT streamml.evaluate('price', 'logit', 'grp', ARRAY['x1', 'x2', 'x3']);
SELECT streamml.evaluate('bygrp', 'SELECT y, x1, x4, flag FROM logit', 'y', ARRAY['x1', 'x4', 'flag']);
SELECT streamml.evaluate('churn', 'logit', 'y', ARRAY[]::text[]);
