-- Drift detection (src/monitor): streamml.drift_detect, one detector run
-- over a group's rows in the aggregate's order (drift.c and drift_*.c).

CREATE FUNCTION streamml.drift_detect_accum(internal, pg_catalog.text, pg_catalog.float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'drift_detect_accum'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.drift_detect_accum(internal, pg_catalog.text, pg_catalog.float8) IS
	'transition function of streamml.drift_detect(method, x)';

CREATE FUNCTION streamml.drift_detect_accum(internal, pg_catalog.text, pg_catalog.float8, pg_catalog.jsonb)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'drift_detect_accum'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.drift_detect_accum(internal, pg_catalog.text, pg_catalog.float8, pg_catalog.jsonb) IS
	'transition function of streamml.drift_detect(method, x, params)';

CREATE FUNCTION streamml.drift_detect_final(internal)
	RETURNS pg_catalog.jsonb
	AS 'MODULE_PATHNAME', 'drift_detect_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.drift_detect_final(internal) IS
	'final function of streamml.drift_detect';

-- Order-dependent: no combine function, so never split across workers.
-- Two aggregates stand for one with params DEFAULT '{}' (aggregates take
-- no defaults).
CREATE AGGREGATE streamml.drift_detect(method pg_catalog.text, x pg_catalog.float8) (
	SFUNC = streamml.drift_detect_accum,
	STYPE = internal,
	FINALFUNC = streamml.drift_detect_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.drift_detect(pg_catalog.text, pg_catalog.float8) IS
	'drift detector (adwin, ddm, eddm, kswin, page_hinkley, cusum; River''s defaults) over the rows in the call''s ORDER BY: {"detections": [...], "warnings": [...], "state": {...}}, 1-based positions';

CREATE AGGREGATE streamml.drift_detect(method pg_catalog.text, x pg_catalog.float8, params pg_catalog.jsonb) (
	SFUNC = streamml.drift_detect_accum,
	STYPE = internal,
	FINALFUNC = streamml.drift_detect_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.drift_detect(pg_catalog.text, pg_catalog.float8, pg_catalog.jsonb) IS
	'drift detector with River''s parameter names in params, over the rows in the call''s ORDER BY: {"detections": [...], "warnings": [...], "state": {...}}, 1-based positions';

-- Data drift of one feature against reference quantile bins: psi,
-- ks_statistic, wasserstein_distance (data_drift.c).

CREATE FUNCTION streamml.data_drift_accum(internal, pg_catalog.float8, pg_catalog.float8[], pg_catalog.float8[])
	RETURNS internal
	AS 'MODULE_PATHNAME', 'data_drift_accum'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.data_drift_accum(internal, pg_catalog.float8, pg_catalog.float8[], pg_catalog.float8[]) IS
	'transition function of streamml.psi and streamml.ks_statistic: counts per reference bin';

CREATE FUNCTION streamml.data_drift_values_accum(internal, pg_catalog.float8, pg_catalog.float8[], pg_catalog.float8[])
	RETURNS internal
	AS 'MODULE_PATHNAME', 'data_drift_values_accum'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.data_drift_values_accum(internal, pg_catalog.float8, pg_catalog.float8[], pg_catalog.float8[]) IS
	'transition function of streamml.wasserstein_distance: counts per bin and every value';

CREATE FUNCTION streamml.data_drift_combine(internal, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'data_drift_combine'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.data_drift_combine(internal, internal) IS
	'combine function of the data drift aggregates';

CREATE FUNCTION streamml.data_drift_serialize(internal)
	RETURNS pg_catalog.bytea
	AS 'MODULE_PATHNAME', 'data_drift_serialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.data_drift_serialize(internal) IS
	'serialization function of the data drift aggregates';

CREATE FUNCTION streamml.data_drift_deserialize(pg_catalog.bytea, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'data_drift_deserialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.data_drift_deserialize(pg_catalog.bytea, internal) IS
	'deserialization function of the data drift aggregates';

CREATE FUNCTION streamml.psi_final(internal)
	RETURNS pg_catalog.float8
	AS 'MODULE_PATHNAME', 'psi_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.psi_final(internal) IS
	'final function of streamml.psi';

CREATE FUNCTION streamml.ks_statistic_final(internal)
	RETURNS pg_catalog.float8
	AS 'MODULE_PATHNAME', 'ks_statistic_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ks_statistic_final(internal) IS
	'final function of streamml.ks_statistic';

CREATE FUNCTION streamml.wasserstein_distance_final(internal)
	RETURNS pg_catalog.float8
	AS 'MODULE_PATHNAME', 'wasserstein_distance_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.wasserstein_distance_final(internal) IS
	'final function of streamml.wasserstein_distance';

CREATE AGGREGATE streamml.psi(value pg_catalog.float8, bins pg_catalog.float8[], fractions pg_catalog.float8[]) (
	SFUNC = streamml.data_drift_accum,
	STYPE = internal,
	FINALFUNC = streamml.psi_final,
	COMBINEFUNC = streamml.data_drift_combine,
	SERIALFUNC = streamml.data_drift_serialize,
	DESERIALFUNC = streamml.data_drift_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.psi(pg_catalog.float8, pg_catalog.float8[], pg_catalog.float8[]) IS
	'Population Stability Index of the values against reference bins (k + 1 edges) and fractions (k); empty fractions count as 0.0001, as in Evidently';

CREATE AGGREGATE streamml.ks_statistic(value pg_catalog.float8, bins pg_catalog.float8[], fractions pg_catalog.float8[]) (
	SFUNC = streamml.data_drift_accum,
	STYPE = internal,
	FINALFUNC = streamml.ks_statistic_final,
	COMBINEFUNC = streamml.data_drift_combine,
	SERIALFUNC = streamml.data_drift_serialize,
	DESERIALFUNC = streamml.data_drift_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.ks_statistic(pg_catalog.float8, pg_catalog.float8[], pg_catalog.float8[]) IS
	'Kolmogorov-Smirnov distance between the values and reference bins, at the bin edges: max |F_new(e) - F_ref(e)|';

CREATE AGGREGATE streamml.wasserstein_distance(value pg_catalog.float8, bins pg_catalog.float8[], fractions pg_catalog.float8[]) (
	SFUNC = streamml.data_drift_values_accum,
	STYPE = internal,
	FINALFUNC = streamml.wasserstein_distance_final,
	COMBINEFUNC = streamml.data_drift_combine,
	SERIALFUNC = streamml.data_drift_serialize,
	DESERIALFUNC = streamml.data_drift_deserialize,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.wasserstein_distance(pg_catalog.float8, pg_catalog.float8[], pg_catalog.float8[]) IS
	'earth mover''s (W1) distance between the values and reference bins taken as uniform within each bin; keeps every value';

-- The reference bins of each feature, recorded with every model version
-- trained from now on (src/ml/feature_bins.c), and the data drift
-- aggregates that read them.

ALTER TABLE streamml.model_versions ADD COLUMN feature_bins pg_catalog.jsonb;
COMMENT ON COLUMN streamml.model_versions.feature_bins IS
	'per feature, deciles of the training rows (bins: 11 edges) and each bin''s share (fractions), from a sample of at most 10000 rows: {"rows", "sample", "features": {name: {"bins", "fractions"}}}';

CREATE FUNCTION streamml.feature_bins_accum(internal, pg_catalog.float8[], pg_catalog.text[])
	RETURNS internal
	AS 'MODULE_PATHNAME', 'feature_bins_accum'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.feature_bins_accum(internal, pg_catalog.float8[], pg_catalog.text[]) IS
	'transition function of streamml.feature_bins: reservoir sample of the rows';

CREATE FUNCTION streamml.feature_bins_final(internal)
	RETURNS pg_catalog.jsonb
	AS 'MODULE_PATHNAME', 'feature_bins_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.feature_bins_final(internal) IS
	'final function of streamml.feature_bins: deciles and shares per feature';

CREATE FUNCTION streamml.feature_bins_combine(internal, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'feature_bins_combine'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.feature_bins_combine(internal, internal) IS
	'combine function of streamml.feature_bins: a uniform sample of both samples'' rows';

CREATE FUNCTION streamml.feature_bins_serialize(internal)
	RETURNS pg_catalog.bytea
	AS 'MODULE_PATHNAME', 'feature_bins_serialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.feature_bins_serialize(internal) IS
	'serialization function of streamml.feature_bins';

CREATE FUNCTION streamml.feature_bins_deserialize(pg_catalog.bytea, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'feature_bins_deserialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.feature_bins_deserialize(pg_catalog.bytea, internal) IS
	'deserialization function of streamml.feature_bins';

-- The aggregate keeps its state as bytea (the C state as an expanded
-- object, src/ml/pass_state.c), so that Citus computes it on the workers
-- and combines one sample per shard, as for the training passes.
CREATE FUNCTION streamml.feature_bins_transfn(pg_catalog.bytea, pg_catalog.float8[], pg_catalog.text[])
	RETURNS pg_catalog.bytea AS 'MODULE_PATHNAME', 'feature_bins_state_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.feature_bins_transfn(pg_catalog.bytea, pg_catalog.float8[], pg_catalog.text[]) IS
	'transition function of streamml.feature_bins';
CREATE FUNCTION streamml.feature_bins_combinefn(pg_catalog.bytea, pg_catalog.bytea)
	RETURNS pg_catalog.bytea AS 'MODULE_PATHNAME', 'feature_bins_state_combinefn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.feature_bins_combinefn(pg_catalog.bytea, pg_catalog.bytea) IS
	'combine function of streamml.feature_bins';
CREATE FUNCTION streamml.feature_bins_finalfn(pg_catalog.bytea)
	RETURNS pg_catalog.jsonb AS 'MODULE_PATHNAME', 'feature_bins_state_finalfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.feature_bins_finalfn(pg_catalog.bytea) IS
	'final function of streamml.feature_bins';

CREATE AGGREGATE streamml.feature_bins(features pg_catalog.float8[], names pg_catalog.text[]) (
	SFUNC = streamml.feature_bins_transfn,
	STYPE = pg_catalog.bytea,
	FINALFUNC = streamml.feature_bins_finalfn,
	COMBINEFUNC = streamml.feature_bins_combinefn,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.feature_bins(pg_catalog.float8[], pg_catalog.text[]) IS
	'deciles (11 bin edges) and bin shares of each feature over a sample of at most 10000 rows, keyed by name: what training records in model_versions.feature_bins';

CREATE FUNCTION streamml.model_drift_accum(internal, pg_catalog.text, pg_catalog.text, pg_catalog.float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'model_drift_accum'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION streamml.model_drift_accum(internal, pg_catalog.text, pg_catalog.text, pg_catalog.float8) IS
	'transition function of streamml.psi and streamml.ks_statistic (model, feature, value)';

CREATE FUNCTION streamml.model_drift_values_accum(internal, pg_catalog.text, pg_catalog.text, pg_catalog.float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'model_drift_values_accum'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION streamml.model_drift_values_accum(internal, pg_catalog.text, pg_catalog.text, pg_catalog.float8) IS
	'transition function of streamml.wasserstein_distance(model, feature, value)';

-- These read the catalog at a group's first row: parallel restricted.
CREATE AGGREGATE streamml.psi(model pg_catalog.text, feature pg_catalog.text, value pg_catalog.float8) (
	SFUNC = streamml.model_drift_accum,
	STYPE = internal,
	FINALFUNC = streamml.psi_final,
	PARALLEL = RESTRICTED
);
COMMENT ON AGGREGATE streamml.psi(pg_catalog.text, pg_catalog.text, pg_catalog.float8) IS
	'Population Stability Index of the values against the feature''s bins stored with the deployed version of the model';

CREATE AGGREGATE streamml.ks_statistic(model pg_catalog.text, feature pg_catalog.text, value pg_catalog.float8) (
	SFUNC = streamml.model_drift_accum,
	STYPE = internal,
	FINALFUNC = streamml.ks_statistic_final,
	PARALLEL = RESTRICTED
);
COMMENT ON AGGREGATE streamml.ks_statistic(pg_catalog.text, pg_catalog.text, pg_catalog.float8) IS
	'Kolmogorov-Smirnov distance at the bin edges between the values and the feature''s bins stored with the deployed version of the model';

CREATE AGGREGATE streamml.wasserstein_distance(model pg_catalog.text, feature pg_catalog.text, value pg_catalog.float8) (
	SFUNC = streamml.model_drift_values_accum,
	STYPE = internal,
	FINALFUNC = streamml.wasserstein_distance_final,
	PARALLEL = RESTRICTED
);
COMMENT ON AGGREGATE streamml.wasserstein_distance(pg_catalog.text, pg_catalog.text, pg_catalog.float8) IS
	'W1 distance between the values and the feature''s bins (uniform within each bin) stored with the deployed version of the model';
