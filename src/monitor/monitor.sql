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
