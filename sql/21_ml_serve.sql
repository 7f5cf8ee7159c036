-- Serving, deployment, holdout, grouped models, evaluation and visibility.
SELECT model, version, group_key, rows_used, deployed,
	   metrics->>'on' AS evaluated_on, (metrics->>'rows')::int AS holdout_rows,
	   round((metrics->>'roc_auc')::numeric, 4) AS roc_auc
  FROM streamml.train_logreg('bygrp', 'logit', 'y', ARRAY['x1', 'x4', 'flag'],
	'{"group_by": "grp", "test_fraction": 0.2, "order_by": "id"}');
SELECT model, version, group_key, data_cutoff FROM streamml.model_versions
 WHERE model = 'bygrp' ORDER BY group_key;
SELECT round(streamml.predict_proba('bygrp', 'A', ARRAY[1, 5000, 1]::float8[])::numeric, 6) AS a,
	   round(streamml.predict_proba('bygrp', 'B', ARRAY[1, 5000, 1]::float8[])::numeric, 6) AS b;
-- A worse challenger (a weak feature only) is not deployed by if_better.
SELECT version, group_key, deployed FROM streamml.train_logreg('bygrp', 'logit', 'y',
	ARRAY['x4'], '{"group_by": "grp", "test_fraction": 0.2, "order_by": "id",
	"deploy": "if_better"}') ORDER BY group_key;
-- Nor is one that is only as good on the same holdout.
SELECT version, group_key, deployed FROM streamml.train_logreg('bygrp', 'logit', 'y',
	ARRAY['x1', 'x4', 'flag'], '{"group_by": "grp", "test_fraction": 0.2, "order_by": "id",
	"deploy": "if_better", "l2": 0.0001}') ORDER BY group_key;
SELECT deployed_version FROM streamml.models WHERE name = 'bygrp';
-- deploy and rollback; predict sees the new deployment at once.
SELECT streamml.deploy('bygrp', 3);
SELECT round(streamml.predict_proba('bygrp', 'A', ARRAY[1, 5000, 1]::float8[])::numeric, 6) AS a;
SELECT streamml.rollback('bygrp');
SELECT round(streamml.predict_proba('bygrp', 'A', ARRAY[1, 5000, 1]::float8[])::numeric, 6) AS a;
SELECT model, version FROM streamml.deployments WHERE model = 'bygrp' ORDER BY id;
SELECT streamml.deploy('bygrp', 9);
SELECT streamml.deploy('nope', 1);

-- Serving errors.
SELECT streamml.predict_proba('nope', ARRAY[1]::float8[]);
SELECT streamml.predict_proba('churn', ARRAY[1, 2]::float8[]);
SELECT streamml.predict_proba('bygrp', ARRAY[1, 2, 3]::float8[]);
SELECT streamml.predict_proba('bygrp', 'C', ARRAY[1, 2, 3]::float8[]);
SELECT streamml.predict_proba('churn', 'A', ARRAY[1, 2, 3, 4, 5]::float8[]);
SELECT streamml.predict_proba('price', ARRAY[1, 2, 3]::float8[]);
-- also for a row with a missing feature: the call is wrong, not the row
SELECT streamml.predict_proba('price', ARRAY[1, NULL, 3]::float8[]);
SELECT streamml.predict_proba('churn', ARRAY[1, NULL, 3, 4, 5]::float8[]) IS NULL AS null_in_null_out;

-- Evaluation aggregates, callable directly.
SELECT streamml.classification_metrics(label, p)
  FROM (VALUES (true, 0.9), (true, 0.4), (false, 0.35), (false, 0.1), (true, 0.8)) v(label, p);
SELECT streamml.regression_metrics(actual, predicted)
  FROM (VALUES (1.0, 1.5), (2.0, 2.0), (3.0, 2.5), (4.0, 4.0)) v(actual, predicted);
SELECT streamml.multiclass_metrics(c, p)
  FROM (VALUES (0, ARRAY[0.7, 0.2, 0.1]), (1, ARRAY[0.1, 0.8, 0.1]), (2, ARRAY[0.5, 0.3, 0.2])) v(c, p);
SELECT (streamml.classification_metrics(y, streamml.predict_proba('churn', ARRAY[x1, x2, x3, x4, flag::int]))->>'roc_auc')::float8 > 0.8 AS auc_ok
  FROM logit;

-- Visibility: a user sees and uses only the models they own or were granted.
CREATE ROLE ml_alice;
CREATE ROLE ml_bob;
GRANT SELECT ON logit TO ml_alice, ml_bob;
SET ROLE ml_alice;
SELECT version FROM streamml.train_logreg('alice_model', 'logit', 'y', ARRAY['x1']);
SELECT name, owner::regrole AS owner FROM streamml.models ORDER BY name;
SELECT streamml.predict_proba('churn', ARRAY[1, 2, 3, 4, 5]::float8[]);
RESET ROLE;
SET ROLE ml_bob;
SELECT count(*) FROM streamml.models;
SELECT streamml.predict_proba('alice_model', ARRAY[1]::float8[]);
RESET ROLE;
SET ROLE ml_alice;
SELECT streamml.grant_model('alice_model', 'ml_bob');
RESET ROLE;
SET ROLE ml_bob;
SELECT round(streamml.predict_proba('alice_model', ARRAY[1]::float8[])::numeric, 6) AS p;
SELECT streamml.deploy('alice_model', 1);
RESET ROLE;
SELECT streamml.drop_model('alice_model');
DROP OWNED BY ml_alice, ml_bob;
DROP ROLE ml_alice, ml_bob;

-- Multinomial (softmax) regression on text classes; the last class is the
-- reference whose coefficients are zero.
SELECT setseed(0.25);
CREATE TABLE three AS
SELECT i AS id, x1, x2,
	   CASE WHEN random() < 0.2 THEN (ARRAY['a', 'b', 'c'])[1 + i % 3]
			WHEN x1 > 0.6 THEN 'a' WHEN x2 > 0.5 THEN 'b' ELSE 'c' END AS c
  FROM (SELECT i, random() AS x1, random() AS x2 FROM generate_series(1, 3000) i) s;
SELECT model, converged, (metrics->>'accuracy')::float8 > 0.7 AS accurate
  FROM streamml.train_logreg('three', 'three', 'c', ARRAY['x1', 'x2'], '{"l2": 0.001}');
SELECT kind, classes FROM streamml.models WHERE name = 'three';
SELECT streamml.predict_class('three', ARRAY[0.9, 0.1]::float8[]) AS a,
	   streamml.predict_class('three', ARRAY[0.1, 0.9]::float8[]) AS b,
	   streamml.predict_class('three', ARRAY[0.1, 0.1]::float8[]) AS c;
SELECT count(*) FROM streamml.coefficients WHERE model = 'three' AND class = 'c' AND coefficient = 0;
SELECT streamml.predict_proba('three', ARRAY[0.9, 0.1]::float8[]);
-- NULL, NaN and infinite features give NULL from every serving function
-- and overload, never a number computed from them.
SELECT f,
	   streamml.predict('churn', f) IS NULL AS predict,
	   streamml.predict_proba('churn', f) IS NULL AS proba,
	   streamml.predict_class('churn', f) IS NULL AS class,
	   streamml.predict('price', f[1:3]) IS NULL AS linear,
	   streamml.predict_class('three', f[1:2]) IS NULL AS multi,
	   streamml.predict('bygrp', 'A', f[1:3]) IS NULL AS grp,
	   streamml.predict_proba('bygrp', 'A'::text, f[1:3]) IS NULL AS grp_proba,
	   streamml.predict_class('bygrp', 'A'::text, f[1:3]) IS NULL AS grp_class
  FROM (VALUES (ARRAY['NaN', 1, 1, 1, 1]::float8[]),
			   (ARRAY[1, 'Infinity', 1, 1, 1]::float8[]),
			   (ARRAY['-Infinity', 1, 1, 1, 1]::float8[]),
			   (ARRAY[NULL, 1, 1, 1, 1]::float8[])) v(f);
