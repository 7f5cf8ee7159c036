
-- ---------------------------------------------------------------------------
-- Outcomes and live quality (src/quality): the actual values that arrive
-- for scored rows are joined with the scorer's predictions in the
-- transaction that brings them, and live metrics are kept per time bucket.
--
-- Users create and drop trackers only through the functions below; the
-- tables are written only by those functions and by the extension's
-- triggers (as the bootstrap superuser, with a pinned search_path, after
-- checking the tracker owner's privileges), and each role sees the rows
-- of the trackers whose owner's privileges it has (row-level security).
-- Owners are regrole (role oids), as for streams, models and scorers.
-- ---------------------------------------------------------------------------

CREATE TABLE streamml.outcome_trackers (
	id serial PRIMARY KEY,
	scorer text NOT NULL UNIQUE,
	owner regrole NOT NULL,
	source regclass NOT NULL,
	predictions regclass NOT NULL,
	mode text NOT NULL CHECK (mode IN ('key', 'horizon')),
	key_columns text[] NOT NULL,
	prediction_keys text[] NOT NULL,
	actual text NOT NULL,
	at text,
	group_column text,
	horizon text,
	partition_by text,
	order_by text,
	bucket interval NOT NULL,
	grace interval NOT NULL,
	options jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	-- keys above it that the loading statement scored are joined with that
	-- statement's predictions in memory (src/quality/predstash.c); NULL:
	-- every key's predictions are read from the predictions table
	stash_floor bigint
);
COMMENT ON TABLE streamml.outcome_trackers IS
	'outcome trackers: where the actual values of a scorer''s predictions arrive, and how they are read';

-- One row per (outcome, model version that scored its key): the first
-- outcome of a key wins, later ones are counted as duplicates in the
-- buckets.  Users read them through the view streamml.outcomes below; the
-- stored row is narrow, because a loading transaction writes one per
-- labelled key: no scorer (the tracker's), role NULL for 'champion',
-- group_key NULL without a group, and key NULL when it is one integer (it
-- is then key_hash, under the tracker's key name; otherwise key_hash is
-- jsonb_hash_extended(key, 0)).  Which keys already have an outcome: for
-- one-integer keys, the bit sets of streamml.outcome_key_sets below (one
-- row per 8,192 keys, not one index entry per outcome); for the others,
-- the partial unique index here, key_hash first so that inserting compares
-- integers, and jsonb only when they tie.  Model names compare bytewise
-- (COLLATE "C"): equality is all the unique key needs.
CREATE TABLE streamml.outcome_rows (
	tracker integer NOT NULL,
	key_hash bigint NOT NULL,
	version integer NOT NULL,
	model text COLLATE "C" NOT NULL,
	key jsonb,
	role text COLLATE "C",
	group_key text,
	prediction float8,
	probability float8,
	class text,
	actual float8,
	actual_class text,
	loss float8,
	predicted_at timestamptz NOT NULL,
	labelled_at timestamptz NOT NULL,
	owner regrole NOT NULL
);
CREATE UNIQUE INDEX outcome_rows_key ON streamml.outcome_rows
	(tracker, key_hash, version, model, key) WHERE key IS NOT NULL;
COMMENT ON TABLE streamml.outcome_rows IS
	'the stored rows of streamml.outcomes (read the view)';

-- The one-integer keys that have an outcome, per tracker, model and
-- version (src/quality/outcomekeys.c): offset key mod 8192 in the row of
-- key_set = key div 8192 (rounded down), whose bits are the set's offsets,
-- two bytes each (big-endian, sorted) while there are at most 511, else a
-- bitmap of 1,024 bytes (bit offset mod 8 of byte offset div 8).
CREATE TABLE streamml.outcome_key_sets (
	tracker integer NOT NULL,
	model text COLLATE "C" NOT NULL,
	version integer NOT NULL,
	key_set bigint NOT NULL,
	bits bytea NOT NULL,
	owner regrole NOT NULL,
	PRIMARY KEY (tracker, model, version, key_set)
);
COMMENT ON TABLE streamml.outcome_key_sets IS
	'which one-integer keys of a tracker have an outcome, per model and version: sets of 8,192 keys';

-- Outcomes whose key has no prediction yet: joined when it arrives.
CREATE TABLE streamml.pending_outcomes (
	tracker integer NOT NULL,
	key jsonb NOT NULL,
	actual_number float8,
	actual_text text NOT NULL,
	group_key text NOT NULL DEFAULT '',
	labelled_at timestamptz NOT NULL,
	owner regrole NOT NULL
);
CREATE INDEX pending_outcomes_key ON streamml.pending_outcomes (tracker, key);
CREATE INDEX pending_outcomes_labelled_at
	ON streamml.pending_outcomes (tracker, labelled_at);
COMMENT ON TABLE streamml.pending_outcomes IS
	'outcomes that arrived before the prediction of their key; those older than the tracker''s grace are counted as unknown keys';

-- The sums live_metrics is computed from, per tracker, model, version,
-- role, group, bucket (of the prediction time) and shard (the backend that
-- wrote them, so that concurrent loads never wait on each other's rows).
CREATE TABLE streamml.quality_buckets (
	tracker integer NOT NULL,
	model text NOT NULL,
	version integer NOT NULL,
	role text NOT NULL,
	group_key text NOT NULL,
	bucket timestamptz NOT NULL,
	shard integer NOT NULL,
	predictions bigint NOT NULL DEFAULT 0,
	scored_conf_n bigint NOT NULL DEFAULT 0,
	scored_conf_sum float8 NOT NULL DEFAULT 0,
	labelled bigint NOT NULL DEFAULT 0,
	duplicates bigint NOT NULL DEFAULT 0,
	labelled_conf_n bigint NOT NULL DEFAULT 0,
	labelled_conf_sum float8 NOT NULL DEFAULT 0,
	cls_n bigint NOT NULL DEFAULT 0,
	correct bigint NOT NULL DEFAULT 0,
	tp bigint NOT NULL DEFAULT 0,
	fp bigint NOT NULL DEFAULT 0,
	fn bigint NOT NULL DEFAULT 0,
	prob_n bigint NOT NULL DEFAULT 0,
	log_loss_sum float8 NOT NULL DEFAULT 0,
	brier_sum float8 NOT NULL DEFAULT 0,
	reg_n bigint NOT NULL DEFAULT 0,
	err_sum float8 NOT NULL DEFAULT 0,
	abs_err_sum float8 NOT NULL DEFAULT 0,
	sq_err_sum float8 NOT NULL DEFAULT 0,
	actual_sum float8 NOT NULL DEFAULT 0,
	actual_sq_sum float8 NOT NULL DEFAULT 0,
	pair_n bigint NOT NULL DEFAULT 0,
	pair_diff_sum float8 NOT NULL DEFAULT 0,
	pair_diff_sq_sum float8 NOT NULL DEFAULT 0,
	lag_hist bigint[],
	score_hist bigint[],
	owner regrole NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (tracker, model, version, role, group_key, bucket, shard)
);
COMMENT ON TABLE streamml.quality_buckets IS
	'additive sums behind streamml.live_metrics, maintained in the transaction of each prediction and outcome batch';

ALTER TABLE streamml.outcome_trackers ENABLE ROW LEVEL SECURITY;
CREATE POLICY outcome_trackers_owner ON streamml.outcome_trackers
	FOR SELECT USING (pg_catalog.pg_has_role(owner, 'USAGE'));
ALTER TABLE streamml.outcome_rows ENABLE ROW LEVEL SECURITY;
CREATE POLICY outcome_rows_owner ON streamml.outcome_rows
	FOR SELECT USING (pg_catalog.pg_has_role(owner, 'USAGE'));
ALTER TABLE streamml.outcome_key_sets ENABLE ROW LEVEL SECURITY;
CREATE POLICY outcome_key_sets_owner ON streamml.outcome_key_sets
	FOR SELECT USING (pg_catalog.pg_has_role(owner, 'USAGE'));
ALTER TABLE streamml.pending_outcomes ENABLE ROW LEVEL SECURITY;
CREATE POLICY pending_outcomes_owner ON streamml.pending_outcomes
	FOR SELECT USING (pg_catalog.pg_has_role(owner, 'USAGE'));
ALTER TABLE streamml.quality_buckets ENABLE ROW LEVEL SECURITY;
CREATE POLICY quality_buckets_owner ON streamml.quality_buckets
	FOR SELECT USING (pg_catalog.pg_has_role(owner, 'USAGE'));
GRANT SELECT ON streamml.outcome_trackers, streamml.outcome_rows,
	streamml.outcome_key_sets, streamml.pending_outcomes, streamml.quality_buckets TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('streamml.outcome_trackers', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.outcome_trackers_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.outcome_rows', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.outcome_key_sets', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.pending_outcomes', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.quality_buckets', '');

-- Outcomes as users read them: the stored rows with what the tracker
-- knows (the scorer, the key's name) put back.
CREATE VIEW streamml.outcomes WITH (security_invoker = true) AS
SELECT o.tracker, t.scorer, o.model COLLATE "default" AS model, o.version,
	   COALESCE(o.role, 'champion') COLLATE "default" AS role,
	   COALESCE(o.group_key, '') AS group_key,
	   COALESCE(o.key,
			pg_catalog.jsonb_build_object(t.prediction_keys[1], o.key_hash)) AS key,
	   o.key_hash, o.prediction, o.probability, o.class, o.actual,
	   o.actual_class, o.loss, o.predicted_at, o.labelled_at, o.owner
  FROM streamml.outcome_rows o
  JOIN streamml.outcome_trackers t ON t.id OPERATOR(pg_catalog.=) o.tracker;
COMMENT ON VIEW streamml.outcomes IS
	'outcomes joined with the predictions of their key: prediction, actual, loss, when each was known';
GRANT SELECT ON streamml.outcomes TO PUBLIC;

CREATE FUNCTION streamml.track_outcomes(scorer text, source regclass,
	options jsonb DEFAULT '{}') RETURNS void
	AS 'MODULE_PATHNAME', 'track_outcomes'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.track_outcomes(text, regclass, jsonb) IS
	'joins the actual values arriving in source with the scorer''s predictions of their key, in the same transaction, into streamml.outcomes and streamml.live_metrics (options: key, actual, at, group, horizon, partition_by, order_by, bucket, grace)';

CREATE FUNCTION streamml.untrack_outcomes(scorer text) RETURNS void
	AS 'MODULE_PATHNAME', 'untrack_outcomes'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.untrack_outcomes(text) IS
	'stops tracking the outcomes of a scorer: removes its triggers, outcomes, pending outcomes and live metrics (owner only)';

-- The statement triggers track_outcomes puts on the source and on the
-- predictions table.  Nobody but the extension may attach them to a table.
CREATE FUNCTION streamml.outcome_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME', 'outcome_trigger'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.outcome_trigger() IS
	'trigger: joins the outcomes of each statement that inserts into a tracker''s source with their predictions';
REVOKE ALL ON FUNCTION streamml.outcome_trigger() FROM PUBLIC;

-- The outcome triggers' cache of trackers (src/quality/outcomes.c) is
-- forgotten in every backend when a tracker is created, changed or removed.
CREATE TRIGGER outcome_trackers_changed
	AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON streamml.outcome_trackers
	FOR EACH STATEMENT EXECUTE FUNCTION streamml.catalog_cache_invalidate();

-- The outcome writer's cache of which models have 'error' monitors
-- (src/monitor/monitorobserve.c) is forgotten in every backend when a
-- monitor is created, dropped or re-targeted.
CREATE TRIGGER monitors_catalog_changed
	AFTER INSERT OR DELETE OR UPDATE OF kind, model OR TRUNCATE ON streamml.monitors_catalog
	FOR EACH STATEMENT EXECUTE FUNCTION streamml.catalog_cache_invalidate();

CREATE FUNCTION streamml.outcome_prediction_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME', 'outcome_prediction_trigger'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.outcome_prediction_trigger() IS
	'trigger: counts the predictions of each batch in the live metrics and joins the pending outcomes of their keys';
REVOKE ALL ON FUNCTION streamml.outcome_prediction_trigger() FROM PUBLIC;

-- Histograms (src/quality/live_metrics.c): bigint[] counts, added bin by bin.
CREATE FUNCTION streamml.histogram_add(a bigint[], b bigint[]) RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'histogram_add'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.histogram_add(bigint[], bigint[]) IS
	'bin-by-bin sum of two histograms (NULL is the empty histogram)';

CREATE AGGREGATE streamml.histogram_sum(bigint[]) (
	SFUNC = streamml.histogram_add,
	STYPE = bigint[],
	COMBINEFUNC = streamml.histogram_add,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.histogram_sum(bigint[]) IS
	'bin-by-bin sum of histograms';

CREATE FUNCTION streamml.histogram_count_transfn(bigint[], integer, integer)
	RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'histogram_count_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.histogram_count_transfn(bigint[], integer, integer) IS
	'transition function of streamml.histogram_count';

CREATE AGGREGATE streamml.histogram_count(bin integer, nbins integer) (
	SFUNC = streamml.histogram_count_transfn,
	STYPE = bigint[],
	COMBINEFUNC = streamml.histogram_add,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.histogram_count(integer, integer) IS
	'histogram of nbins bins: the number of rows per bin (0-based; NULL bins are not counted)';

CREATE FUNCTION streamml.label_lag_bin(seconds float8) RETURNS integer
	AS 'MODULE_PATHNAME', 'label_lag_bin'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.label_lag_bin(float8) IS
	'bin of a label lag (seconds) in the 128-bin log histogram of live_metrics: 0 below 1 ms, then bins a factor 2^(1/4) wide';

CREATE FUNCTION streamml.label_lag_quantile(hist bigint[], q float8) RETURNS float8
	AS 'MODULE_PATHNAME', 'label_lag_quantile'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.label_lag_quantile(bigint[], float8) IS
	'q-quantile (nearest rank) of a label lag histogram, in seconds: the geometric middle of its bin, within 9.1% of the exact value';

CREATE FUNCTION streamml.score_bin(probability float8, positive boolean) RETURNS integer
	AS 'MODULE_PATHNAME', 'score_bin'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.score_bin(float8, boolean) IS
	'bin of a scored probability in the 200-bin score histogram of live_metrics: 100 bins of width 0.01 for the negatives, then for the positives';

CREATE FUNCTION streamml.score_histogram_roc_auc(hist bigint[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'score_histogram_roc_auc'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.score_histogram_roc_auc(bigint[]) IS
	'ROC AUC of a score histogram, pairs in the same bin counting one half (NULL without both classes)';

CREATE FUNCTION streamml.score_histogram_roc_auc_bound(hist bigint[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'score_histogram_roc_auc_bound'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.score_histogram_roc_auc_bound(bigint[]) IS
	'the most the histogram ROC AUC can differ from the exact one: half the share of positive-negative pairs that fall in the same bin';

-- Trackers with their pending and unknown outcomes.
CREATE VIEW streamml.outcome_tracking WITH (security_invoker = true) AS
SELECT t.scorer, t.owner, t.source, t.predictions, t.mode, t.key_columns,
	   t.actual, t.at, t.group_column, t.horizon, t.partition_by, t.order_by,
	   t.bucket, t.grace,
	   (SELECT pg_catalog.count(*) FROM streamml.pending_outcomes p
		 WHERE p.tracker OPERATOR(pg_catalog.=) t.id) AS pending,
	   (SELECT pg_catalog.count(*) FROM streamml.pending_outcomes p
		 WHERE p.tracker OPERATOR(pg_catalog.=) t.id
		   AND p.labelled_at OPERATOR(pg_catalog.<)
			   (pg_catalog.now() OPERATOR(pg_catalog.-) t.grace)) AS unknown_keys,
	   t.options, t.created_at
  FROM streamml.outcome_trackers t;
COMMENT ON VIEW streamml.outcome_tracking IS
	'outcome trackers with their pending outcomes (no prediction yet) and unknown keys (pending longer than the grace period)';
GRANT SELECT ON streamml.outcome_tracking TO PUBLIC;

-- Live quality: one row per scorer, model, version, role, group and bucket
-- of prediction time, plus a total row over the groups (group_key NULL).
-- It reads the bucket sums only: O(buckets), not O(outcomes).  Predictions
-- are counted by the predictions table's trigger, which does not know
-- their group: the group rows count outcomes only.
CREATE VIEW streamml.live_metrics WITH (security_invoker = true) AS
WITH s AS (
	SELECT b.tracker, b.model, b.version, b.role,
		   CASE WHEN GROUPING(b.group_key) OPERATOR(pg_catalog.=) 1
				THEN NULL ELSE b.group_key END AS group_key,
		   b.bucket,
		   pg_catalog.sum(b.predictions) AS predictions,
		   pg_catalog.sum(b.scored_conf_n) AS scored_conf_n,
		   pg_catalog.sum(b.scored_conf_sum) AS scored_conf_sum,
		   pg_catalog.sum(b.labelled) AS labelled,
		   pg_catalog.sum(b.duplicates) AS duplicates,
		   pg_catalog.sum(b.labelled_conf_n) AS labelled_conf_n,
		   pg_catalog.sum(b.labelled_conf_sum) AS labelled_conf_sum,
		   pg_catalog.sum(b.cls_n) AS cls_n, pg_catalog.sum(b.correct) AS correct,
		   pg_catalog.sum(b.tp) AS tp, pg_catalog.sum(b.fp) AS fp,
		   pg_catalog.sum(b.fn) AS fn, pg_catalog.sum(b.prob_n) AS prob_n,
		   pg_catalog.sum(b.log_loss_sum) AS log_loss_sum,
		   pg_catalog.sum(b.brier_sum) AS brier_sum,
		   pg_catalog.sum(b.reg_n) AS reg_n, pg_catalog.sum(b.err_sum) AS err_sum,
		   pg_catalog.sum(b.abs_err_sum) AS abs_err_sum,
		   pg_catalog.sum(b.sq_err_sum) AS sq_err_sum,
		   pg_catalog.sum(b.actual_sum) AS actual_sum,
		   pg_catalog.sum(b.actual_sq_sum) AS actual_sq_sum,
		   streamml.histogram_sum(b.lag_hist) AS lag_hist,
		   streamml.histogram_sum(b.score_hist) AS score_hist,
		   pg_catalog.max(b.updated_at) AS updated_at
	  FROM streamml.quality_buckets b
	 GROUP BY GROUPING SETS ((b.tracker, b.model, b.version, b.role, b.group_key, b.bucket),
							 (b.tracker, b.model, b.version, b.role, b.bucket)))
SELECT t.scorer, s.model, s.version, s.role, s.group_key, s.bucket,
	   CASE WHEN s.group_key IS NULL THEN s.predictions::bigint END AS predictions,
	   s.labelled::bigint AS labelled,
	   s.duplicates::bigint AS duplicates,
	   CASE WHEN s.cls_n > 0 THEN s.correct::float8 / s.cls_n END AS accuracy,
	   CASE WHEN s.tp + s.fp > 0 THEN s.tp::float8 / (s.tp + s.fp) END AS precision,
	   CASE WHEN s.tp + s.fn > 0 THEN s.tp::float8 / (s.tp + s.fn) END AS recall,
	   CASE WHEN 2 * s.tp + s.fp + s.fn > 0
			THEN 2 * s.tp::float8 / (2 * s.tp + s.fp + s.fn) END AS f1,
	   CASE WHEN s.prob_n > 0 THEN s.log_loss_sum / s.prob_n END AS log_loss,
	   CASE WHEN s.prob_n > 0 THEN s.brier_sum / s.prob_n END AS brier,
	   streamml.score_histogram_roc_auc(s.score_hist) AS roc_auc,
	   streamml.score_histogram_roc_auc_bound(s.score_hist) AS roc_auc_error_bound,
	   CASE WHEN s.reg_n > 0 THEN pg_catalog.sqrt(s.sq_err_sum / s.reg_n) END AS rmse,
	   CASE WHEN s.reg_n > 0 THEN s.abs_err_sum / s.reg_n END AS mae,
	   CASE WHEN s.reg_n > 1
				 AND s.actual_sq_sum - s.actual_sum * s.actual_sum / s.reg_n > 0
			THEN 1 - s.sq_err_sum / (s.actual_sq_sum - s.actual_sum * s.actual_sum / s.reg_n)
	   END AS r2,
	   CASE WHEN s.reg_n > 0 THEN s.err_sum / s.reg_n END AS mean_error,
	   pg_catalog.make_interval(secs => streamml.label_lag_quantile(s.lag_hist, 0.5))
		   AS label_lag_p50,
	   pg_catalog.make_interval(secs => streamml.label_lag_quantile(s.lag_hist, 0.95))
		   AS label_lag_p95,
	   CASE WHEN s.group_key IS NULL
			THEN (s.scored_conf_n - s.labelled_conf_n)::bigint END AS unlabelled_scored,
	   CASE WHEN s.group_key IS NULL AND s.scored_conf_n - s.labelled_conf_n > 0
			THEN LEAST(1, GREATEST(0.5,
				 (s.scored_conf_sum - s.labelled_conf_sum) /
				 (s.scored_conf_n - s.labelled_conf_n))) END
		   AS expected_accuracy_unlabelled,
	   s.updated_at
  FROM s JOIN streamml.outcome_trackers t ON t.id OPERATOR(pg_catalog.=) s.tracker
 WHERE s.group_key IS NULL OR s.group_key OPERATOR(pg_catalog.<>) '';
COMMENT ON VIEW streamml.live_metrics IS
	'live quality per scorer, model, version, role, group (NULL: all groups) and bucket of prediction time: counts, classification and regression metrics, label lag, expected accuracy of the predictions not yet labelled';
GRANT SELECT ON streamml.live_metrics TO PUBLIC;
