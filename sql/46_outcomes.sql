-- Outcomes joined with predictions, and live metrics (src/quality).
--
-- First with a real scorer (streamml.create_scorer); then, for exact
-- checks of the metrics, with predictions tables filled by hand in the
-- scorer's shape (key columns, model, version, prediction, probability,
-- class, role, scored_at) and scorer rows written here as the superuser,
-- so that the joins are tested in every order with predictions whose
-- values and times the test chooses.

-- A binary classifier and a regression, trained on made-up rows.
CREATE TABLE oc_train AS
SELECT i AS id, (i % 7)::float8 AS x, ((i % 7) > 3) <> (i % 10 = 0) AS y,
	   2 * (i % 5) + 1 + (i % 3) AS v
  FROM generate_series(1, 200) i;
SELECT model, version FROM streamml.train_logreg('oc_clf', 'oc_train', 'y', ARRAY['x']);
SELECT model, version FROM streamml.train_linreg('oc_reg', 'oc_train', 'v', ARRAY['x']);

-- A real scorer: rows scored as they load, labels joined as they arrive,
-- in either order.
CREATE TABLE oc_live (id int PRIMARY KEY, x float8);
SELECT streamml.create_scorer('oc_live_s', 'oc_live', 'oc_clf');
CREATE TABLE oc_live_labels (id int, y boolean);
SELECT streamml.track_outcomes('oc_live_s', 'oc_live_labels', '{"actual": "y"}');
INSERT INTO oc_live SELECT i, i % 7 FROM generate_series(1, 50) i;
INSERT INTO oc_live_labels SELECT i, ((i % 7) > 3) <> (i % 10 = 0) FROM generate_series(41, 60) i;
SELECT count(*) AS outcomes FROM streamml.outcomes WHERE scorer = 'oc_live_s';
SELECT count(*) AS pending FROM streamml.pending_outcomes;
COPY oc_live FROM stdin;
51	2
52	6
\.
INSERT INTO oc_live SELECT i, i % 7 FROM generate_series(53, 60) i;
SELECT count(*) AS outcomes, count(*) FILTER (WHERE o.class = o.actual_class) AS correct,
	   count(*) FILTER (WHERE o.probability = p.probability AND o.version = p.version
						  AND o.predicted_at = p.scored_at) AS as_scored
  FROM streamml.outcomes o JOIN oc_live_s p ON o.key = jsonb_build_object('id', p.id)
 WHERE o.scorer = 'oc_live_s';
SELECT count(*) AS pending FROM streamml.pending_outcomes;
SELECT sum(predictions) AS predictions, sum(labelled) AS labelled,
	   round(sum(accuracy * labelled)::numeric / sum(labelled), 12) AS accuracy
  FROM streamml.live_metrics WHERE scorer = 'oc_live_s' AND group_key IS NULL;
SELECT round(count(*) FILTER (WHERE class = actual_class)::numeric / count(*), 12) AS accuracy
  FROM streamml.outcomes WHERE scorer = 'oc_live_s';
SELECT streamml.untrack_outcomes('oc_live_s');
SELECT streamml.drop_scorer('oc_live_s');

CREATE TABLE oc_rows (id int PRIMARY KEY, x float8, grp text);
CREATE TABLE oc_preds (id int NOT NULL, model text NOT NULL, version int NOT NULL,
	prediction float8, probability float8, class text,
	role text NOT NULL DEFAULT 'champion', scored_at timestamptz NOT NULL,
	PRIMARY KEY (id, model));
-- a scorer's catalog row, without its trigger: oc_score scores instead
INSERT INTO streamml.scorers_catalog (name, owner, source, model, predictions, key_columns)
VALUES ('oc_s', current_user::regrole, 'oc_rows', 'oc_clf', 'oc_preds', ARRAY['id']);
-- scores rows as a scorer would, at a given time
CREATE FUNCTION oc_score(lo int, hi int, at timestamptz) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO oc_preds
	SELECT i, 'oc_clf', 1, (p >= 0.5)::int, p, CASE WHEN p >= 0.5 THEN 'true' ELSE 'false' END,
		   'champion', at
	  FROM (SELECT i, streamml.predict_proba('oc_clf', ARRAY[(i % 7)::float8]) AS p
			  FROM generate_series(lo, hi) i) s
$$;
CREATE TABLE oc_labels (id int, y boolean, grp text, at timestamptz);

-- Errors.
SELECT streamml.track_outcomes('nope', 'oc_labels', '{"actual": "y"}');
SELECT streamml.track_outcomes('oc_s', 'oc_labels', '{}');
SELECT streamml.track_outcomes('oc_s', 'oc_labels', '{"actual": "nope"}');
SELECT streamml.track_outcomes('oc_s', 'oc_labels', '{"actual": "y", "key": ["id", "grp"]}');
SELECT streamml.track_outcomes('oc_s', 'oc_labels', '{"actual": "y", "colour": 1}');
SELECT streamml.track_outcomes('oc_s', 'oc_labels', '{"actual": "y", "bucket": "-1 minute"}');
SELECT streamml.track_outcomes('oc_s', 'oc_labels', '{"actual": "y", "bucket": "0.000001 s"}');
CREATE TABLE oc_nokey (ident int, y boolean);
SELECT streamml.track_outcomes('oc_s', 'oc_nokey', '{"actual": "y"}');
DROP TABLE oc_nokey;
SELECT streamml.track_outcomes('oc_s', 'oc_labels', '{"actual": "y", "at": "grp"}');
SELECT streamml.track_outcomes('oc_s', 'oc_labels', '{"actual": "y", "order_by": "at"}');
SELECT streamml.track_outcomes('oc_s', 'oc_preds', '{"actual": "prediction"}');
SELECT streamml.untrack_outcomes('oc_s');

-- Predictions made before tracking starts are counted too.
SELECT oc_score(1, 100, '2026-01-01 10:00:10+00');
SELECT streamml.track_outcomes('oc_s', 'oc_labels', '{"actual": "y", "at": "at", "group": "grp"}');
SELECT streamml.track_outcomes('oc_s', 'oc_labels', '{"actual": "y"}');
SELECT scorer, source, predictions, mode, key_columns, actual, at, group_column,
	   bucket, grace, pending, unknown_keys FROM streamml.outcome_tracking;

-- Prediction first: outcomes join at once.
INSERT INTO oc_labels
SELECT i, ((i % 7) > 3) <> (i % 10 = 0), CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END,
	   '2026-01-01 10:00:10+00'::timestamptz + i * interval '1 second'
  FROM generate_series(1, 60) i;
SELECT count(*) AS outcomes FROM streamml.outcomes;
-- Outcome first: it waits in pending_outcomes, then joins its prediction.
INSERT INTO oc_labels
SELECT i, ((i % 7) > 3) <> (i % 10 = 0), CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END,
	   '2026-01-01 10:01:00+00'
  FROM generate_series(101, 130) i;
SELECT count(*) AS pending FROM streamml.pending_outcomes;
SELECT oc_score(101, 120, '2026-01-01 10:01:30+00');
SELECT count(*) AS pending FROM streamml.pending_outcomes;
SELECT count(*) AS outcomes FROM streamml.outcomes;
-- Duplicates: the first outcome of a key wins, later ones are counted,
-- in a later statement or in the same one (the earliest "at" first).
INSERT INTO oc_labels VALUES (1, false, 'odd', '2026-01-01 11:00:00+00');
INSERT INTO oc_labels VALUES (61, false, 'odd', '2026-01-01 10:05:00+00'),
	(61, true, 'odd', '2026-01-01 10:04:00+00');
INSERT INTO oc_labels VALUES (125, true, 'odd', '2026-01-01 10:06:00+00');
SELECT oc_score(121, 130, '2026-01-01 10:02:30+00');
SELECT key, actual_class, labelled_at FROM streamml.outcomes
 WHERE key IN ('{"id": 1}', '{"id": 61}', '{"id": 125}') ORDER BY key;
SELECT sum(duplicates) AS duplicates FROM streamml.live_metrics WHERE group_key IS NULL;
-- Unknown keys: outcomes without a prediction after the grace period
-- (1 hour by default) are counted, and still joined if it comes.
INSERT INTO oc_labels VALUES (900, true, 'odd', now() - interval '2 hours'),
	(901, true, 'odd', now());
SELECT pending, unknown_keys FROM streamml.outcome_tracking;
-- A NULL label is no outcome.
INSERT INTO oc_labels VALUES (62, NULL, 'even', '2026-01-01 10:05:00+00');
SELECT oc_score(131, 131, '2026-01-01 10:02:30+00');

-- Each outcome row: prediction, actual, loss (log loss of the clipped
-- probability for a binary classifier).
SELECT key, version, role, group_key, prediction, round(probability::numeric, 6) AS p,
	   class, actual, actual_class, round(loss::numeric, 6) AS loss, predicted_at,
	   labelled_at
  FROM streamml.outcomes WHERE key IN ('{"id": 3}', '{"id": 10}', '{"id": 110}')
 ORDER BY key;
SELECT count(*) FROM streamml.outcomes o
 WHERE abs(o.loss + CASE WHEN o.actual = 1 THEN ln(o.probability)
						  ELSE ln(1 - o.probability) END) > 1e-12;

-- live_metrics against a computation from scratch over streamml.outcomes:
-- exact for the counts and the ratios of sums.
SELECT group_key, bucket, predictions, labelled, duplicates, round(accuracy::numeric, 12) AS accuracy,
	   round(precision::numeric, 12) AS precision, round(recall::numeric, 12) AS recall,
	   round(f1::numeric, 12) AS f1, round(log_loss::numeric, 12) AS log_loss,
	   round(brier::numeric, 12) AS brier, unlabelled_scored
  FROM streamml.live_metrics ORDER BY bucket, group_key NULLS FIRST;
WITH o AS (SELECT o.*, date_bin('1 minute', predicted_at, '2000-01-01') AS bucket
			 FROM streamml.outcomes o),
	 g AS (SELECT CASE WHEN GROUPING(group_key) = 1 THEN NULL ELSE group_key END AS group_key,
				  bucket, count(*) AS labelled,
				  count(*) FILTER (WHERE class = actual_class)::float8 / count(*) AS accuracy,
				  count(*) FILTER (WHERE prediction = 1 AND actual = 1)::float8
					/ nullif(count(*) FILTER (WHERE prediction = 1), 0) AS precision,
				  count(*) FILTER (WHERE prediction = 1 AND actual = 1)::float8
					/ nullif(count(*) FILTER (WHERE actual = 1), 0) AS recall,
				  avg(loss) AS log_loss, avg((probability - actual) ^ 2) AS brier
			 FROM o GROUP BY GROUPING SETS ((group_key, bucket), (bucket)))
SELECT count(*) AS rows_compared,
	   count(*) FILTER (WHERE m.labelled IS DISTINCT FROM g.labelled
						   OR abs(m.accuracy - g.accuracy) > 1e-12
						   OR abs(m.precision - g.precision) > 1e-12
						   OR abs(m.recall - g.recall) > 1e-12
						   OR abs(m.log_loss - g.log_loss) > 1e-12
						   OR abs(m.brier - g.brier) > 1e-12) AS rows_differing
  FROM g FULL JOIN streamml.live_metrics m
	ON m.bucket = g.bucket AND m.group_key IS NOT DISTINCT FROM g.group_key;
-- predictions per bucket, from scratch
SELECT count(*) AS buckets_differing
  FROM (SELECT date_bin('1 minute', scored_at, '2000-01-01') AS bucket, count(*) AS n
		  FROM oc_preds GROUP BY 1) p
  FULL JOIN streamml.live_metrics m ON m.bucket = p.bucket AND m.group_key IS NULL
 WHERE m.predictions IS DISTINCT FROM p.n;
-- ROC AUC from the score histograms, within the bound of the exact AUC
SELECT m.bucket, round(m.roc_auc::numeric, 6) AS roc_auc,
	   round(m.roc_auc_error_bound::numeric, 6) AS bound,
	   round((e.metrics->>'roc_auc')::numeric, 6) AS exact,
	   abs(m.roc_auc - (e.metrics->>'roc_auc')::float8) <= m.roc_auc_error_bound + 1e-12 AS within
  FROM streamml.live_metrics m
  JOIN (SELECT date_bin('1 minute', predicted_at, '2000-01-01') AS bucket,
			   streamml.classification_metrics(actual = 1, probability) AS metrics
		  FROM streamml.outcomes WHERE actual IS NOT NULL GROUP BY 1) e ON e.bucket = m.bucket
 WHERE m.group_key IS NULL ORDER BY 1;
-- expected accuracy of the predictions not yet labelled: mean(max(p, 1 - p))
SELECT m.bucket, m.unlabelled_scored, round(m.expected_accuracy_unlabelled::numeric, 12) AS view,
	   round(avg(greatest(p.probability, 1 - p.probability))::numeric, 12) AS scratch
  FROM streamml.live_metrics m
  JOIN oc_preds p ON date_bin('1 minute', p.scored_at, '2000-01-01') = m.bucket
 WHERE m.group_key IS NULL
   AND NOT EXISTS (SELECT 1 FROM streamml.outcomes o WHERE o.key = jsonb_build_object('id', p.id))
 GROUP BY 1, 2, 3 ORDER BY 1;
-- label lag quantiles: within 9.1% of the exact nearest-rank quantile (an
-- outcome known before its prediction has lag 0)
SELECT m.bucket, m.label_lag_p50, m.label_lag_p95,
	   extract(epoch FROM m.label_lag_p50) BETWEEN e.p50 / 1.0906 AND e.p50 * 1.0906 AS p50_within,
	   extract(epoch FROM m.label_lag_p95) BETWEEN e.p95 / 1.0906 AND e.p95 * 1.0906 AS p95_within
  FROM streamml.live_metrics m
  JOIN (SELECT date_bin('1 minute', predicted_at, '2000-01-01') AS bucket,
			   percentile_disc(0.5) WITHIN GROUP (ORDER BY greatest(0, extract(epoch FROM labelled_at - predicted_at))) AS p50,
			   percentile_disc(0.95) WITHIN GROUP (ORDER BY greatest(0, extract(epoch FROM labelled_at - predicted_at))) AS p95
		  FROM streamml.outcomes GROUP BY 1) e ON e.bucket = m.bucket
 WHERE m.group_key IS NULL ORDER BY 1;

-- A regression, in horizon mode: the outcome of a tick is the price of
-- the first tick of its symbol at or after 60 seconds later.
CREATE TABLE oc_ticks (id int PRIMARY KEY, symbol text, ts timestamptz, price float8);
CREATE INDEX ON oc_ticks (symbol, ts);
CREATE TABLE oc_tpreds (id int NOT NULL, model text NOT NULL, version int NOT NULL,
	prediction float8, probability float8, class text,
	role text NOT NULL DEFAULT 'champion', scored_at timestamptz NOT NULL,
	PRIMARY KEY (id, model));
INSERT INTO streamml.scorers_catalog (name, owner, source, model, predictions, key_columns)
VALUES ('oc_h', current_user::regrole, 'oc_ticks', 'oc_reg', 'oc_tpreds', ARRAY['id']);
SELECT streamml.track_outcomes('oc_h', 'oc_ticks', '{"actual": "price", "horizon": 60}');
SELECT streamml.track_outcomes('oc_h', 'oc_ticks', '{"actual": "price", "horizon": 60, "partition_by": "symbol", "order_by": "ts"}');
SELECT streamml.track_outcomes('oc_h', 'oc_ticks', '{"actual": "price", "horizon": "60 seconds", "partition_by": "symbol", "order_by": "ts"}');
-- ticks arrive in batches, each scored after it lands (predictions of
-- rows labelled in their own batch wait in pending_outcomes)
CREATE FUNCTION oc_tick_batch(lo int, hi int) RETURNS void LANGUAGE sql AS $$
	INSERT INTO oc_ticks
	SELECT i, 'S' || (i % 3), '2026-01-01 10:00:00+00'::timestamptz + (i / 3) * interval '7 s'
			  + (i % 3) * interval '1 s',
		   100 + (i % 3) * 10 + (i * 7919 % 13)
	  FROM generate_series(lo, hi) i;
	INSERT INTO oc_tpreds
	SELECT id, 'oc_reg', 1, 100 + (id % 3) * 10 + 6, NULL, NULL, 'champion',
		   '2026-01-01 10:00:00+00'::timestamptz + (id / 3) * interval '7 s'
	  FROM oc_ticks WHERE id BETWEEN lo AND hi;
$$;
SELECT oc_tick_batch(0, 29);
SELECT oc_tick_batch(30, 31);
SELECT oc_tick_batch(32, 100);
SELECT oc_tick_batch(101, 101);
SELECT oc_tick_batch(102, 150);
-- the outcomes equal the SQL definition of the label
SELECT count(*) AS labelled,
	   count(*) FILTER (WHERE o.actual IS DISTINCT FROM l.actual) AS differing
  FROM (SELECT r.id, (SELECT s.price FROM oc_ticks s WHERE s.symbol = r.symbol
						 AND s.ts >= r.ts + interval '60 s' ORDER BY s.ts LIMIT 1) AS actual
		  FROM oc_ticks r) l
  FULL JOIN (SELECT (key->>'id')::int AS id, actual FROM streamml.outcomes
			  WHERE scorer = 'oc_h') o ON o.id = l.id
 WHERE l.actual IS NOT NULL OR o.id IS NOT NULL;
SELECT count(*) AS pending FROM streamml.pending_outcomes p
  JOIN streamml.outcome_trackers t ON t.id = p.tracker WHERE t.scorer = 'oc_h';
-- regression metrics against a computation from scratch
WITH o AS (SELECT date_bin('1 minute', predicted_at, '2000-01-01') AS bucket, prediction, actual
			 FROM streamml.outcomes WHERE scorer = 'oc_h'),
	 g AS (SELECT bucket, count(*) AS n, sqrt(avg((prediction - actual) ^ 2)) AS rmse,
				  avg(abs(prediction - actual)) AS mae, avg(prediction - actual) AS me,
				  1 - sum((prediction - actual) ^ 2) / nullif(sum((actual - (SELECT avg(actual) FROM o o2 WHERE o2.bucket = o.bucket)) ^ 2), 0) AS r2
			 FROM o GROUP BY bucket)
SELECT m.bucket, m.labelled, round(m.rmse::numeric, 9) AS rmse, round(m.mae::numeric, 9) AS mae,
	   round(m.r2::numeric, 9) AS r2, round(m.mean_error::numeric, 9) AS mean_error,
	   m.labelled = g.n AND abs(m.rmse - g.rmse) < 1e-9 AND abs(m.mae - g.mae) < 1e-9
		 AND abs(m.mean_error - g.me) < 1e-9 AND abs(m.r2 - g.r2) < 1e-9 AS equal,
	   m.accuracy, m.log_loss, m.roc_auc
  FROM streamml.live_metrics m JOIN g ON g.bucket = m.bucket
 WHERE m.scorer = 'oc_h' ORDER BY 1;

-- Visibility: another role sees no tracker, outcome or metric of ours,
-- and cannot write them nor stop the tracker.
CREATE ROLE oc_other;
SET ROLE oc_other;
SELECT (SELECT count(*) FROM streamml.outcome_trackers) AS trackers,
	   (SELECT count(*) FROM streamml.outcomes) AS outcomes,
	   (SELECT count(*) FROM streamml.quality_buckets) AS buckets,
	   (SELECT count(*) FROM streamml.live_metrics) AS metrics;
DELETE FROM streamml.outcome_rows;
DELETE FROM streamml.outcomes;
SELECT streamml.untrack_outcomes('oc_s');
RESET ROLE;

-- A role that owns a tracker cannot be dropped; DROP OWNED drops it.
-- (Its privileges come from predefined roles, so that PostgreSQL's own
-- dependencies do not stop DROP ROLE first.)
CREATE ROLE oc_owner;
CREATE TABLE oc_o_rows (id int PRIMARY KEY, x float8);
CREATE TABLE oc_o_preds (LIKE oc_preds INCLUDING ALL);
GRANT TRIGGER ON oc_o_rows TO oc_owner;
GRANT pg_read_all_data, pg_write_all_data TO oc_owner;
SELECT streamml.grant_model('oc_clf', 'oc_owner');
SET ROLE oc_owner;
SELECT streamml.create_scorer('oc_o', 'oc_o_rows', 'oc_clf', '{"into": "oc_o_preds"}');
-- a tracker puts triggers on the labels and the predictions table: reading
-- them is not enough, its owner needs TRIGGER on both
SELECT streamml.track_outcomes('oc_o', 'oc_labels', '{"actual": "y"}');
RESET ROLE;
GRANT TRIGGER ON oc_labels TO oc_owner;
SET ROLE oc_owner;
SELECT streamml.track_outcomes('oc_o', 'oc_labels', '{"actual": "y"}');
RESET ROLE;
GRANT TRIGGER ON oc_o_preds TO oc_owner;
SET ROLE oc_owner;
SELECT streamml.track_outcomes('oc_o', 'oc_labels', '{"actual": "y"}');
RESET ROLE;
REVOKE TRIGGER ON oc_o_rows FROM oc_owner;
SELECT streamml.track_outcomes('oc_o', 'oc_labels', '{"actual": "y"}');
-- the owner must keep SELECT on the source and the predictions table
REVOKE pg_read_all_data FROM oc_owner;
INSERT INTO oc_labels VALUES (1, true, 'odd', now());
REVOKE TRIGGER ON oc_labels, oc_o_preds FROM oc_owner;
DROP ROLE oc_owner;
DROP OWNED BY oc_owner;
DROP ROLE oc_owner;
SELECT scorer FROM streamml.outcome_trackers ORDER BY 1;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'oc_o_preds'::regclass;

-- untrack_outcomes removes the triggers and every row of the tracker.
SELECT streamml.untrack_outcomes('oc_s');
SELECT (SELECT count(*) FROM streamml.outcomes WHERE scorer = 'oc_s') AS outcomes,
	   (SELECT count(*) FROM streamml.live_metrics WHERE scorer = 'oc_s') AS metrics,
	   (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'streamml_tracker_%'
		   AND tgrelid IN ('oc_labels'::regclass, 'oc_preds'::regclass)) AS triggers;
INSERT INTO oc_labels VALUES (5, true, 'odd', now());
SELECT streamml.untrack_outcomes('oc_s');
-- A dropped predictions table takes its scorer and tracker along
-- (relations.c): the loads go on.
DROP TABLE oc_tpreds CASCADE;
INSERT INTO oc_ticks VALUES (151, 'S0', now(), 1);
SELECT streamml.untrack_outcomes('oc_h');
INSERT INTO oc_ticks VALUES (152, 'S0', now(), 1);
DROP ROLE oc_other;
DELETE FROM streamml.scorers_catalog WHERE name IN ('oc_s', 'oc_h');

-- A predictions table whose column type an ALTER changed is refused when
-- outcomes arrive (it was read as its old type: a crash), and by the
-- scorer when rows arrive.
CREATE TABLE oc_alt_train AS SELECT i::float8 AS x, 2.0 * i + 1 AS y FROM generate_series(1, 50) i;
SELECT version FROM streamml.train_linreg('oc_alt', 'oc_alt_train', 'y', ARRAY['x']);
CREATE TABLE oc_alt_src (id bigint PRIMARY KEY, x float8);
SELECT streamml.create_scorer('oc_alt_s', 'oc_alt_src', 'oc_alt');
INSERT INTO oc_alt_src SELECT i, i % 10 FROM generate_series(1, 50) i;
CREATE TABLE oc_alt_lab (id bigint, y float8);
SELECT streamml.track_outcomes('oc_alt_s', 'oc_alt_lab', '{"actual": "y"}');
ALTER TABLE oc_alt_s ALTER COLUMN class TYPE int USING 12345;
INSERT INTO oc_alt_lab SELECT i, i FROM generate_series(1, 20) i;
INSERT INTO oc_alt_src VALUES (51, 1);
SELECT count(*) FROM streamml.outcomes WHERE scorer = 'oc_alt_s';
-- a scorer whose outcomes are tracked is not dropped behind its tracker
SELECT streamml.drop_scorer('oc_alt_s');
SELECT streamml.untrack_outcomes('oc_alt_s');
SELECT streamml.drop_scorer('oc_alt_s');
SELECT streamml.drop_model('oc_alt');
DROP TABLE oc_alt_train, oc_alt_src, oc_alt_lab, oc_alt_s;
