-- The holdout of a tree run is predicted on the run's threads
-- (tree_predict.c's TreeModelPredictRows: chunks of 8192 rows taken in
-- turn by the backend and its helper threads).  The metrics it records
-- equal those of the single-row walk that serves the model over the same
-- rows (the metrics aggregates over predict, predict_proba and
-- predict_class), with missing values, for a binary, a regression and a
-- multiclass model; a holdout of 25,000 rows is three full chunks and a
-- partial one.
CREATE TABLE hth (id int, x1 float8, x2 float8, x3 float8, yb boolean,
	yr float8, yc text);
INSERT INTO hth
SELECT i, x1, x2, x3,
	   coalesce(x1, 0) + x2 * x3 + 0.6 * pg_catalog.sin(i::float8 * i * 0.013) > 0.1,
	   2 * coalesce(x1, 0.5) + x2 * x3 + 0.3 * pg_catalog.sin(i::float8 * i * 0.013),
	   CASE WHEN x2 + 0.4 * pg_catalog.sin(i::float8 * i * 0.013) < -0.3 THEN 'a'
			WHEN x3 > 0.6 THEN 'b' ELSE 'c' END
  FROM (SELECT i, CASE WHEN i % 13 = 0 THEN NULL ELSE pg_catalog.sin(i * 0.37) END AS x1,
			   pg_catalog.cos(i * 1.7) AS x2, (i % 97) / 97.0 AS x3
		  FROM pg_catalog.generate_series(1, 50000) i) s;

-- binary: the holdout is the 25,000 rows after id 25000
SELECT rows_used, (metrics->>'rows')::int AS holdout_rows
  FROM streamml.train_gbt('hth_b', 'hth', 'yb', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 30, "max_depth": 5, "threads": 2, "test_fraction": 0.5, "order_by": "id"}');
SELECT (v.metrics->>'roc_auc')::float8 > 0.8 AS learned,
	   abs((v.metrics->>'roc_auc')::float8 - (a->>'roc_auc')::float8) < 1e-12 AS same_auc,
	   abs((v.metrics->>'pr_auc')::float8 - (a->>'pr_auc')::float8) < 1e-12 AS same_pr_auc,
	   abs((v.metrics->>'log_loss')::float8 - (a->>'log_loss')::float8) < 1e-12 AS same_log_loss,
	   v.metrics->'confusion_matrix' = a->'confusion_matrix' AS same_confusion
  FROM streamml.model_versions v,
	   (SELECT streamml.classification_metrics(yb, streamml.predict_proba('hth_b', h)) AS a
		  FROM hth h WHERE id > 25000) m
 WHERE v.model = 'hth_b';

-- regression (a tree run hands XGBoost its targets in single precision,
-- but scores its holdout against the targets themselves, as evaluate does)
SELECT rows_used, (metrics->>'rows')::int AS holdout_rows
  FROM streamml.train_gbt('hth_r', 'hth', 'yr', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 30, "max_depth": 5, "threads": 2, "test_fraction": 0.5, "order_by": "id"}');
SELECT abs((v.metrics->>'rmse')::float8 - (a->>'rmse')::float8) < 1e-12 AS same_rmse,
	   abs((v.metrics->>'mae')::float8 - (a->>'mae')::float8) < 1e-12 AS same_mae
  FROM streamml.model_versions v,
	   (SELECT streamml.regression_metrics(yr, streamml.predict('hth_r', h)) AS a
		  FROM hth h WHERE id > 25000) m
 WHERE v.model = 'hth_r';

-- multiclass (three outputs a row)
SELECT rows_used, (metrics->>'rows')::int AS holdout_rows
  FROM streamml.train_gbt('hth_m', 'hth', 'yc', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 10, "max_depth": 4, "threads": 2, "test_fraction": 0.5, "order_by": "id"}');
SELECT abs((v.metrics->>'accuracy')::float8 - a) < 1e-12 AS same_accuracy
  FROM streamml.model_versions v,
	   (SELECT avg((streamml.predict_class('hth_m', h) = yc)::int)::float8 AS a
		  FROM hth h WHERE id > 25000) m
 WHERE v.model = 'hth_m';

-- deploy 'if_better' scores the deployed version on the same holdout, on
-- the same threads: the same trees again score the same, so are not
-- better, and the deployed version stays
SELECT version, deployed
  FROM streamml.train_gbt('hth_b', 'hth', 'yb', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 30, "max_depth": 5, "threads": 2, "test_fraction": 0.5, "order_by": "id",
	  "deploy": "if_better"}');
SELECT deployed_version FROM streamml.models WHERE name = 'hth_b';

-- the same holdout on one thread: the same metrics
SELECT version, (metrics->>'rows')::int AS holdout_rows
  FROM streamml.train_gbt('hth_b1', 'hth', 'yb', ARRAY['x1', 'x2', 'x3'],
	'{"trees": 30, "max_depth": 5, "threads": 1, "test_fraction": 0.5, "order_by": "id"}');
SELECT abs((a.metrics->>'roc_auc')::float8 - (m->>'roc_auc')::float8) < 1e-12 AS same_auc
  FROM streamml.model_versions a,
	   (SELECT streamml.classification_metrics(yb, streamml.predict_proba('hth_b1', h)) AS m
		  FROM hth h WHERE id > 25000) s
 WHERE a.model = 'hth_b1';
SELECT streamml.drop_model(name) FROM streamml.models WHERE name LIKE 'hth%' ORDER BY name;

-- classification_metrics sorts its scores by a radix sort from 4,096 rows
-- on (metrics.c): its areas under the curves against SQL's, over 20,000
-- scores with many ties, zeros and ones among them (ROC AUC by average
-- ranks, PR AUC as average precision over the distinct thresholds).
CREATE TABLE hth_scores AS
SELECT (i % 7 = 0 OR (i % 5 = 0 AND i % 3 = 0)) AS y,
	   CASE WHEN i % 101 = 0 THEN 1.0 ELSE pg_catalog.round(((i * 7919) % 1000) / 1000.0, 2) END::float8 AS p
  FROM pg_catalog.generate_series(1, 20000) i;
WITH m AS (SELECT streamml.classification_metrics(y, p) AS m FROM hth_scores),
	 r AS (SELECT y, rank() OVER (ORDER BY p) + (count(*) OVER (PARTITION BY p) - 1) / 2.0 AS ar
			 FROM hth_scores),
	 n AS (SELECT count(*) FILTER (WHERE y) AS np, count(*) FILTER (WHERE NOT y) AS nn FROM hth_scores),
	 t AS (SELECT p, count(*) FILTER (WHERE y) AS tp_at, count(*) AS n_at FROM hth_scores GROUP BY p),
	 c AS (SELECT tp_at, sum(tp_at) OVER (ORDER BY p DESC) AS ctp, sum(n_at) OVER (ORDER BY p DESC) AS cn FROM t)
SELECT abs((m->>'roc_auc')::float8 -
		   ((SELECT sum(ar) FROM r WHERE y) - np * (np + 1) / 2.0) / (np * nn)) < 1e-12 AS same_roc_auc,
	   abs((m->>'pr_auc')::float8 - (SELECT sum(tp_at::float8 / np * ctp / cn) FROM c)) < 1e-12 AS same_pr_auc,
	   (m->>'rows')::int AS rows
  FROM m, n;
DROP TABLE hth_scores;
DROP TABLE hth;
