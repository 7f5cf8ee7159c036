
-- Windowed features: aggregates with an inverse transition, so that a
-- sliding window frame costs O(1) per row (src/features/*.c).

-- rolling_sum, rolling_mean, rolling_var(_pop), rolling_stddev(_pop): one
-- shared state (rolling.c), one final function each.

CREATE FUNCTION streamml.rolling_accum(internal, pg_catalog.float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'rolling_accum'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_accum(internal, pg_catalog.float8) IS
	'forward transition of the rolling_sum/mean/var/stddev aggregates';

CREATE FUNCTION streamml.rolling_retract(internal, pg_catalog.float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'rolling_retract'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_retract(internal, pg_catalog.float8) IS
	'inverse transition of the rolling_sum/mean/var/stddev aggregates';

CREATE FUNCTION streamml.rolling_combine(internal, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'rolling_combine'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_combine(internal, internal) IS
	'combine function of the rolling_sum/mean/var/stddev aggregates';

CREATE FUNCTION streamml.rolling_serialize(internal)
	RETURNS pg_catalog.bytea
	AS 'MODULE_PATHNAME', 'rolling_serialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_serialize(internal) IS
	'serialization function of the rolling_sum/mean/var/stddev aggregates';

CREATE FUNCTION streamml.rolling_deserialize(pg_catalog.bytea, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'rolling_deserialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_deserialize(pg_catalog.bytea, internal) IS
	'deserialization function of the rolling_sum/mean/var/stddev aggregates';

CREATE FUNCTION streamml.rolling_sum_final(internal)
	RETURNS pg_catalog.float8
	AS 'MODULE_PATHNAME', 'rolling_sum_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_sum_final(internal) IS
	'final function of streamml.rolling_sum';

CREATE FUNCTION streamml.rolling_mean_final(internal)
	RETURNS pg_catalog.float8
	AS 'MODULE_PATHNAME', 'rolling_mean_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_mean_final(internal) IS
	'final function of streamml.rolling_mean';

CREATE FUNCTION streamml.rolling_var_final(internal)
	RETURNS pg_catalog.float8
	AS 'MODULE_PATHNAME', 'rolling_var_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_var_final(internal) IS
	'final function of streamml.rolling_var';

CREATE FUNCTION streamml.rolling_var_pop_final(internal)
	RETURNS pg_catalog.float8
	AS 'MODULE_PATHNAME', 'rolling_var_pop_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_var_pop_final(internal) IS
	'final function of streamml.rolling_var_pop';

CREATE FUNCTION streamml.rolling_stddev_final(internal)
	RETURNS pg_catalog.float8
	AS 'MODULE_PATHNAME', 'rolling_stddev_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_stddev_final(internal) IS
	'final function of streamml.rolling_stddev';

CREATE FUNCTION streamml.rolling_stddev_pop_final(internal)
	RETURNS pg_catalog.float8
	AS 'MODULE_PATHNAME', 'rolling_stddev_pop_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_stddev_pop_final(internal) IS
	'final function of streamml.rolling_stddev_pop';

CREATE AGGREGATE streamml.rolling_sum(pg_catalog.float8) (
	SFUNC = streamml.rolling_accum,
	STYPE = internal,
	SSPACE = 104,
	FINALFUNC = streamml.rolling_sum_final,
	COMBINEFUNC = streamml.rolling_combine,
	SERIALFUNC = streamml.rolling_serialize,
	DESERIALFUNC = streamml.rolling_deserialize,
	MSFUNC = streamml.rolling_accum,
	MINVFUNC = streamml.rolling_retract,
	MSTYPE = internal,
	MSSPACE = 104,
	MFINALFUNC = streamml.rolling_sum_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.rolling_sum(pg_catalog.float8) IS
	'sum of the non-NULL values, like sum(float8), compensated, O(1) per row over a sliding frame';

CREATE AGGREGATE streamml.rolling_mean(pg_catalog.float8) (
	SFUNC = streamml.rolling_accum,
	STYPE = internal,
	SSPACE = 104,
	FINALFUNC = streamml.rolling_mean_final,
	COMBINEFUNC = streamml.rolling_combine,
	SERIALFUNC = streamml.rolling_serialize,
	DESERIALFUNC = streamml.rolling_deserialize,
	MSFUNC = streamml.rolling_accum,
	MINVFUNC = streamml.rolling_retract,
	MSTYPE = internal,
	MSSPACE = 104,
	MFINALFUNC = streamml.rolling_mean_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.rolling_mean(pg_catalog.float8) IS
	'mean of the non-NULL values, like avg(float8), O(1) per row over a sliding frame';

CREATE AGGREGATE streamml.rolling_var(pg_catalog.float8) (
	SFUNC = streamml.rolling_accum,
	STYPE = internal,
	SSPACE = 104,
	FINALFUNC = streamml.rolling_var_final,
	COMBINEFUNC = streamml.rolling_combine,
	SERIALFUNC = streamml.rolling_serialize,
	DESERIALFUNC = streamml.rolling_deserialize,
	MSFUNC = streamml.rolling_accum,
	MINVFUNC = streamml.rolling_retract,
	MSTYPE = internal,
	MSSPACE = 104,
	MFINALFUNC = streamml.rolling_var_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.rolling_var(pg_catalog.float8) IS
	'sample variance, like var_samp(float8), O(1) per row over a sliding frame';

CREATE AGGREGATE streamml.rolling_var_pop(pg_catalog.float8) (
	SFUNC = streamml.rolling_accum,
	STYPE = internal,
	SSPACE = 104,
	FINALFUNC = streamml.rolling_var_pop_final,
	COMBINEFUNC = streamml.rolling_combine,
	SERIALFUNC = streamml.rolling_serialize,
	DESERIALFUNC = streamml.rolling_deserialize,
	MSFUNC = streamml.rolling_accum,
	MINVFUNC = streamml.rolling_retract,
	MSTYPE = internal,
	MSSPACE = 104,
	MFINALFUNC = streamml.rolling_var_pop_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.rolling_var_pop(pg_catalog.float8) IS
	'population variance, like var_pop(float8), O(1) per row over a sliding frame';

CREATE AGGREGATE streamml.rolling_stddev(pg_catalog.float8) (
	SFUNC = streamml.rolling_accum,
	STYPE = internal,
	SSPACE = 104,
	FINALFUNC = streamml.rolling_stddev_final,
	COMBINEFUNC = streamml.rolling_combine,
	SERIALFUNC = streamml.rolling_serialize,
	DESERIALFUNC = streamml.rolling_deserialize,
	MSFUNC = streamml.rolling_accum,
	MINVFUNC = streamml.rolling_retract,
	MSTYPE = internal,
	MSSPACE = 104,
	MFINALFUNC = streamml.rolling_stddev_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.rolling_stddev(pg_catalog.float8) IS
	'sample standard deviation, like stddev_samp(float8), O(1) per row over a sliding frame';

CREATE AGGREGATE streamml.rolling_stddev_pop(pg_catalog.float8) (
	SFUNC = streamml.rolling_accum,
	STYPE = internal,
	SSPACE = 104,
	FINALFUNC = streamml.rolling_stddev_pop_final,
	COMBINEFUNC = streamml.rolling_combine,
	SERIALFUNC = streamml.rolling_serialize,
	DESERIALFUNC = streamml.rolling_deserialize,
	MSFUNC = streamml.rolling_accum,
	MINVFUNC = streamml.rolling_retract,
	MSTYPE = internal,
	MSSPACE = 104,
	MFINALFUNC = streamml.rolling_stddev_pop_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.rolling_stddev_pop(pg_catalog.float8) IS
	'population standard deviation, like stddev_pop(float8), O(1) per row over a sliding frame';

-- rolling_min, rolling_max: the built-in float8smaller/float8larger for
-- GROUP BY and growing frames, a monotonic deque for sliding frames
-- (rolling_minmax.c).

CREATE FUNCTION streamml.rolling_min_accum(internal, pg_catalog.float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'rolling_min_accum'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_min_accum(internal, pg_catalog.float8) IS
	'moving forward transition of streamml.rolling_min';

CREATE FUNCTION streamml.rolling_max_accum(internal, pg_catalog.float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'rolling_max_accum'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_max_accum(internal, pg_catalog.float8) IS
	'moving forward transition of streamml.rolling_max';

CREATE FUNCTION streamml.rolling_minmax_retract(internal, pg_catalog.float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'rolling_minmax_retract'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_minmax_retract(internal, pg_catalog.float8) IS
	'moving inverse transition of streamml.rolling_min and streamml.rolling_max';

CREATE FUNCTION streamml.rolling_minmax_final(internal)
	RETURNS pg_catalog.float8
	AS 'MODULE_PATHNAME', 'rolling_minmax_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_minmax_final(internal) IS
	'moving final function of streamml.rolling_min and streamml.rolling_max';

CREATE AGGREGATE streamml.rolling_min(pg_catalog.float8) (
	SFUNC = pg_catalog.float8smaller,
	STYPE = pg_catalog.float8,
	COMBINEFUNC = pg_catalog.float8smaller,
	SORTOP = OPERATOR(pg_catalog.<),
	MSFUNC = streamml.rolling_min_accum,
	MINVFUNC = streamml.rolling_minmax_retract,
	MSTYPE = internal,
	MSSPACE = 64,
	MFINALFUNC = streamml.rolling_minmax_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.rolling_min(pg_catalog.float8) IS
	'minimum, like min(float8), amortized O(1) per row over a sliding frame';

CREATE AGGREGATE streamml.rolling_max(pg_catalog.float8) (
	SFUNC = pg_catalog.float8larger,
	STYPE = pg_catalog.float8,
	COMBINEFUNC = pg_catalog.float8larger,
	SORTOP = OPERATOR(pg_catalog.>),
	MSFUNC = streamml.rolling_max_accum,
	MINVFUNC = streamml.rolling_minmax_retract,
	MSTYPE = internal,
	MSSPACE = 64,
	MFINALFUNC = streamml.rolling_minmax_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.rolling_max(pg_catalog.float8) IS
	'maximum, like max(float8), amortized O(1) per row over a sliding frame';

-- rolling_slope(y, x): least-squares slope, like regr_slope (rolling_slope.c).

CREATE FUNCTION streamml.rolling_slope_accum(internal, pg_catalog.float8, pg_catalog.float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'rolling_slope_accum'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_slope_accum(internal, pg_catalog.float8, pg_catalog.float8) IS
	'forward transition of streamml.rolling_slope';

CREATE FUNCTION streamml.rolling_slope_retract(internal, pg_catalog.float8, pg_catalog.float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'rolling_slope_retract'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_slope_retract(internal, pg_catalog.float8, pg_catalog.float8) IS
	'inverse transition of streamml.rolling_slope';

CREATE FUNCTION streamml.rolling_slope_combine(internal, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'rolling_slope_combine'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_slope_combine(internal, internal) IS
	'combine function of streamml.rolling_slope';

CREATE FUNCTION streamml.rolling_slope_serialize(internal)
	RETURNS pg_catalog.bytea
	AS 'MODULE_PATHNAME', 'rolling_slope_serialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_slope_serialize(internal) IS
	'serialization function of streamml.rolling_slope';

CREATE FUNCTION streamml.rolling_slope_deserialize(pg_catalog.bytea, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'rolling_slope_deserialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_slope_deserialize(pg_catalog.bytea, internal) IS
	'deserialization function of streamml.rolling_slope';

CREATE FUNCTION streamml.rolling_slope_final(internal)
	RETURNS pg_catalog.float8
	AS 'MODULE_PATHNAME', 'rolling_slope_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.rolling_slope_final(internal) IS
	'final function of streamml.rolling_slope';

CREATE AGGREGATE streamml.rolling_slope(y pg_catalog.float8, x pg_catalog.float8) (
	SFUNC = streamml.rolling_slope_accum,
	STYPE = internal,
	SSPACE = 176,
	FINALFUNC = streamml.rolling_slope_final,
	COMBINEFUNC = streamml.rolling_slope_combine,
	SERIALFUNC = streamml.rolling_slope_serialize,
	DESERIALFUNC = streamml.rolling_slope_deserialize,
	MSFUNC = streamml.rolling_slope_accum,
	MINVFUNC = streamml.rolling_slope_retract,
	MSTYPE = internal,
	MSSPACE = 176,
	MFINALFUNC = streamml.rolling_slope_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.rolling_slope(pg_catalog.float8, pg_catalog.float8) IS
	'least-squares slope of y on x, like regr_slope, O(1) per row over a sliding frame';

-- ewma(x, alpha) and ewma(x, ts, half_life): exponentially weighted means
-- (ewma.c).

CREATE FUNCTION streamml.ewma_accum(internal, pg_catalog.float8, pg_catalog.float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'ewma_accum'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ewma_accum(internal, pg_catalog.float8, pg_catalog.float8) IS
	'forward transition of streamml.ewma(x, alpha)';

CREATE FUNCTION streamml.ewma_retract(internal, pg_catalog.float8, pg_catalog.float8)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'ewma_retract'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ewma_retract(internal, pg_catalog.float8, pg_catalog.float8) IS
	'inverse transition of streamml.ewma(x, alpha)';

CREATE FUNCTION streamml.ewma_time_accum(internal, pg_catalog.float8, pg_catalog.timestamptz, pg_catalog.interval)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'ewma_time_accum'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ewma_time_accum(internal, pg_catalog.float8, pg_catalog.timestamptz, pg_catalog.interval) IS
	'forward transition of streamml.ewma(x, ts, half_life)';

CREATE FUNCTION streamml.ewma_time_retract(internal, pg_catalog.float8, pg_catalog.timestamptz, pg_catalog.interval)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'ewma_time_retract'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ewma_time_retract(internal, pg_catalog.float8, pg_catalog.timestamptz, pg_catalog.interval) IS
	'inverse transition of streamml.ewma(x, ts, half_life)';

CREATE FUNCTION streamml.ewma_combine(internal, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'ewma_combine'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ewma_combine(internal, internal) IS
	'combine function of streamml.ewma(x, ts, half_life)';

CREATE FUNCTION streamml.ewma_serialize(internal)
	RETURNS pg_catalog.bytea
	AS 'MODULE_PATHNAME', 'ewma_serialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ewma_serialize(internal) IS
	'serialization function of streamml.ewma(x, ts, half_life)';

CREATE FUNCTION streamml.ewma_deserialize(pg_catalog.bytea, internal)
	RETURNS internal
	AS 'MODULE_PATHNAME', 'ewma_deserialize'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ewma_deserialize(pg_catalog.bytea, internal) IS
	'deserialization function of streamml.ewma(x, ts, half_life)';

CREATE FUNCTION streamml.ewma_final(internal)
	RETURNS pg_catalog.float8
	AS 'MODULE_PATHNAME', 'ewma_final'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ewma_final(internal) IS
	'final function of both streamml.ewma aggregates';

-- Order-dependent: no combine function, so never split across workers.
CREATE AGGREGATE streamml.ewma(x pg_catalog.float8, alpha pg_catalog.float8) (
	SFUNC = streamml.ewma_accum,
	STYPE = internal,
	SSPACE = 120,
	FINALFUNC = streamml.ewma_final,
	MSFUNC = streamml.ewma_accum,
	MINVFUNC = streamml.ewma_retract,
	MSTYPE = internal,
	MSSPACE = 120,
	MFINALFUNC = streamml.ewma_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.ewma(pg_catalog.float8, pg_catalog.float8) IS
	'exponentially weighted mean in input order, weight (1 - alpha)^k k rows back; O(1) per row over a sliding frame';

CREATE AGGREGATE streamml.ewma(x pg_catalog.float8, ts pg_catalog.timestamptz, half_life pg_catalog.interval) (
	SFUNC = streamml.ewma_time_accum,
	STYPE = internal,
	SSPACE = 120,
	FINALFUNC = streamml.ewma_final,
	COMBINEFUNC = streamml.ewma_combine,
	SERIALFUNC = streamml.ewma_serialize,
	DESERIALFUNC = streamml.ewma_deserialize,
	MSFUNC = streamml.ewma_time_accum,
	MINVFUNC = streamml.ewma_time_retract,
	MSTYPE = internal,
	MSSPACE = 120,
	MFINALFUNC = streamml.ewma_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.ewma(pg_catalog.float8, pg_catalog.timestamptz, pg_catalog.interval) IS
	'time-decayed mean, weight 2^(-age / half_life) relative to the newest row; O(1) per row over a sliding frame';

-- hop(ts, size, slide, origin): hopping windows (hop.c).

CREATE FUNCTION streamml.hop(ts pg_catalog.timestamptz, size pg_catalog.interval,
							 slide pg_catalog.interval,
							 origin pg_catalog.timestamptz DEFAULT '2000-01-01 00:00:00+00')
	RETURNS SETOF pg_catalog.timestamptz
	AS 'MODULE_PATHNAME', 'hop'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 4;
COMMENT ON FUNCTION streamml.hop(pg_catalog.timestamptz, pg_catalog.interval, pg_catalog.interval, pg_catalog.timestamptz) IS
	'starts of the hopping windows [start, start + size), one every slide from origin, that contain ts';
