-- The bytea states of the aggregates (src/ml/pass_state.c) are values that
-- any role can hand to their functions: an initcond of its own aggregate,
-- a state fed to the combine function used as a transition, a final
-- function called on any bytea.  Each state is checked completely when it
-- is read, and a crafted one fails with a clean error instead of crashing
-- the server; a real one still round-trips.  The native-order parts of the
-- states below are little-endian (x86-64, aarch64).
CREATE ROLE states_nobody;
SET ROLE states_nobody;
SET client_min_messages = warning;

-- Helpers: a float8 or an int4 in native (little-endian) order.
CREATE FUNCTION pg_temp.le8(float8) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT decode(string_agg(substr(h, i, 2), '' ORDER BY i DESC), 'hex')
     FROM (SELECT encode(float8send($1), 'hex') AS h) s,
          generate_series(1, 15, 2) AS i $$;
CREATE FUNCTION pg_temp.le4(int4) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT decode(string_agg(substr(h, i, 2), '' ORDER BY i DESC), 'hex')
     FROM (SELECT encode(int4send($1), 'hex') AS h) s,
          generate_series(1, 7, 2) AS i $$;
-- Whether two jsonb objects have the same keys and numbers within 1e-9.
CREATE FUNCTION pg_temp.close(a jsonb, b jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT bool_and(CASE WHEN jsonb_typeof(x.value) = 'number'
		THEN abs(x.value::float8 - (b -> x.key)::float8) <= 1e-9 * greatest(1, abs(x.value::float8))
		ELSE x.value = b -> x.key END)
	   AND count(*) = (SELECT count(*) FROM jsonb_object_keys(b))
     FROM jsonb_each(a) AS x $$;
-- Whether two float8[] have the same length and values within 1e-9.
CREATE FUNCTION pg_temp.close(a float8[], b float8[]) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT cardinality(a) = cardinality(b)
	   AND bool_and(abs(x - y) <= 1e-9 * greatest(1, abs(x))) FROM unnest(a, b) AS u(x, y) $$;
-- n zero bytes
CREATE FUNCTION pg_temp.zeros(int) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT decode(repeat('00', $1), 'hex') $$;

-- Aggregates over flat states: the combine function as a transition, as
-- the Citus coordinator combines the states of the shards.
CREATE AGGREGATE pg_temp.moments_of(bytea) (sfunc = streamml.ml_moments_combinefn,
	stype = bytea, finalfunc = streamml.ml_moments_finalfn);
CREATE AGGREGATE pg_temp.irls_of(bytea) (sfunc = streamml.irls_pass_combinefn,
	stype = bytea, finalfunc = streamml.irls_pass_finalfn);
CREATE AGGREGATE pg_temp.class_of(bytea) (sfunc = streamml.classification_metrics_combinefn,
	stype = bytea, finalfunc = streamml.classification_metrics_finalfn);
CREATE AGGREGATE pg_temp.reg_of(bytea) (sfunc = streamml.regression_metrics_combinefn,
	stype = bytea, finalfunc = streamml.regression_metrics_finalfn);
CREATE AGGREGATE pg_temp.multi_of(bytea) (sfunc = streamml.multiclass_metrics_combinefn,
	stype = bytea, finalfunc = streamml.multiclass_metrics_finalfn);
CREATE AGGREGATE pg_temp.bins_of(bytea) (sfunc = streamml.feature_bins_combinefn,
	stype = bytea, finalfunc = streamml.feature_bins_finalfn);
-- The states themselves, flattened: the aggregates without final function.
CREATE AGGREGATE pg_temp.moments_state(float8, float8[], float8) (
	sfunc = streamml.ml_moments_transfn, stype = bytea);
CREATE AGGREGATE pg_temp.irls_state(float8, float8[], float8, float8[], text[], text) (
	sfunc = streamml.irls_pass_transfn, stype = bytea);
CREATE AGGREGATE pg_temp.class_state(boolean, float8) (
	sfunc = streamml.classification_metrics_transfn, stype = bytea);
CREATE AGGREGATE pg_temp.reg_state(float8, float8) (
	sfunc = streamml.regression_metrics_transfn, stype = bytea);
CREATE AGGREGATE pg_temp.multi_state(integer, float8[]) (
	sfunc = streamml.multiclass_metrics_transfn, stype = bytea);
CREATE AGGREGATE pg_temp.bins_state(float8[], text[]) (
	sfunc = streamml.feature_bins_transfn, stype = bytea);

CREATE TEMP TABLE rows AS
SELECT i, (i % 3 = 0)::int::float8 AS y, ARRAY[i / 10.0, (i % 7) - 3.0] AS x,
	   1.0 + (i % 2) AS w, (i % 5) / 5.0 + 0.1 AS prob
  FROM generate_series(1, 200) AS i;

-- Every function called outside its aggregate errors cleanly.
SELECT streamml.feature_bins_finalfn(decode('ffffffff' || '0000000000000001' || 'fffe7960'
	   || repeat('4142434445464748', 1000) || 'ffffffff', 'hex'));
SELECT streamml.feature_bins_combinefn(NULL, '\x00');
SELECT streamml.ml_moments_finalfn('\x00');
SELECT streamml.irls_pass_combinefn('\x00', '\x00');
SELECT streamml.classification_metrics_finalfn('\x00');
SELECT streamml.regression_metrics_transfn('\x00', 1, 2);
SELECT streamml.multiclass_metrics_transfn(NULL, 1, ARRAY[0.5, 0.5]);
SELECT streamml.irls_pass_transfn(NULL, 1, ARRAY[1, 2]::float8[], 1,
	ARRAY[2, 0, 0, 1, 1, 0, 0, 0]::float8[], NULL, NULL);
-- The final functions of empty states are NULL.
SELECT streamml.ml_moments_finalfn(NULL) IS NULL AS empty;

-- ml_moments: header p int4, full byte, count, skipped, malformed int8,
-- w float8, then exps int4 (native), means, co-moments (native).
SELECT pg_temp.moments_of(s) FROM (VALUES ('\x0000'::bytea)) v(s);
SELECT pg_temp.moments_of(int4send(-5) || '\x00'::bytea || int8send(0) || int8send(0)
	|| int8send(0) || float8send(0)) FROM (VALUES (1)) v;
SELECT pg_temp.moments_of(int4send(2147483647) || '\x00'::bytea || int8send(0) || int8send(0)
	|| int8send(0) || float8send(0)) FROM (VALUES (1)) v;
SELECT pg_temp.moments_of(int4send(5000) || '\x01'::bytea || int8send(0) || int8send(0)
	|| int8send(0) || float8send(0)) FROM (VALUES (1)) v;
SELECT pg_temp.moments_of(int4send(-1) || '\x00'::bytea || int8send(-7) || int8send(0)
	|| int8send(0) || float8send(0)) FROM (VALUES (1)) v;
SELECT pg_temp.moments_of(int4send(-1) || '\x00'::bytea || int8send(0) || int8send(0)
	|| int8send(0) || float8send('NaN')) FROM (VALUES (1)) v;
-- one feature, full: exps (2), means (2), co-moments (3); one byte short,
-- one too many, then a unit out of range, then a NaN mean
SELECT pg_temp.moments_of(int4send(1) || '\x01'::bytea || int8send(1) || int8send(0)
	|| int8send(0) || float8send(1) || pg_temp.zeros(8 + 16 + 24 - 1)) FROM (VALUES (1)) v;
SELECT pg_temp.moments_of(int4send(1) || '\x01'::bytea || int8send(1) || int8send(0)
	|| int8send(0) || float8send(1) || pg_temp.zeros(8 + 16 + 24 + 1)) FROM (VALUES (1)) v;
SELECT pg_temp.moments_of(int4send(1) || '\x01'::bytea || int8send(1) || int8send(0)
	|| int8send(0) || float8send(1) || pg_temp.le4(5000) || pg_temp.le4(0)
	|| pg_temp.zeros(16 + 24)) FROM (VALUES (1)) v;
SELECT pg_temp.moments_of(int4send(1) || '\x01'::bytea || int8send(1) || int8send(0)
	|| int8send(0) || float8send(1) || pg_temp.le4(0) || pg_temp.le4(0)
	|| pg_temp.le8('NaN') || pg_temp.zeros(8 + 24)) FROM (VALUES (1)) v;
-- a well-formed one is read
SELECT pg_temp.moments_of(int4send(1) || '\x01'::bytea || int8send(1) || int8send(0)
	|| int8send(0) || float8send(1) || pg_temp.le4(0) || pg_temp.le4(0)
	|| pg_temp.le8(0.5) || pg_temp.le8(0.25) || pg_temp.zeros(24)) FROM (VALUES (1)) v;
-- the six-argument form refuses an initcond of other dimensions
DO $$ BEGIN
EXECUTE format('CREATE AGGREGATE pg_temp.moments_init(float8, float8[], float8, int4, boolean) (
	sfunc = streamml.ml_moments_transfn, stype = bytea, initcond = %L,
	finalfunc = streamml.ml_moments_finalfn)',
	(SELECT pg_temp.moments_state(y, x, w) FROM rows WHERE i <= 50)::text);
END $$;
SELECT pg_temp.moments_init(y, x, w, 3, true) FROM rows;
SELECT pg_temp.moments_init(y, x, w, 2, false) FROM rows;
-- with the right ones it carries on from the initcond: the same sums as
-- one pass over all rows
SELECT pg_temp.close((SELECT pg_temp.moments_init(y, x, w, 2, true) FROM rows WHERE i > 50),
	(SELECT streamml.ml_moments(y, x, w) FROM rows)) AS same;

-- irls_pass: header p, K int4, gradient-only byte, count, skipped int8,
-- w, loss, correct float8, then the confusion matrix, gradient, Hessian.
-- The attacker's initcond: the sums of a state without its parameters,
-- which the transition now reads from its arguments.
\set st '\\x000000020000000200' `printf '00%.0s' $(seq 1 144)`
CREATE AGGREGATE pg_temp.evil_irls(float8, float8[], float8, float8[], text[], text) (
  sfunc = streamml.irls_pass_transfn, stype = bytea, initcond = :'st',
  finalfunc = streamml.irls_pass_finalfn);
SELECT pg_temp.evil_irls(1, ARRAY[1,2]::float8[], 1, ARRAY[2,0,0,1,1,0,0,0]::float8[], NULL, NULL);
-- parameters of another size than the state's
SELECT pg_temp.evil_irls(1, ARRAY[1]::float8[], 1, ARRAY[2,0,1,0,0]::float8[], NULL, NULL);
SELECT pg_temp.evil_irls(1, ARRAY[1,2]::float8[], 1, ARRAY[3,0,0,1,1,0,0,0,0,0,0,0,0,0]::float8[], NULL, NULL);
-- K (p + 1) overflowing an int, negative p, a Hessian too large, K = 1,
-- a gradient-only multinomial state, negative counts, truncated, too long
SELECT pg_temp.irls_of(int4send(65535) || int4send(65537) || '\x00'::bytea
	|| pg_temp.zeros(16 + 24 + 32)) FROM (VALUES (1)) v;
SELECT pg_temp.irls_of(int4send(-1) || int4send(2) || '\x00'::bytea
	|| pg_temp.zeros(16 + 24 + 32)) FROM (VALUES (1)) v;
SELECT pg_temp.irls_of(int4send(5000) || int4send(2) || '\x00'::bytea
	|| pg_temp.zeros(16 + 24 + 32)) FROM (VALUES (1)) v;
SELECT pg_temp.irls_of(int4send(1) || int4send(1) || '\x00'::bytea
	|| pg_temp.zeros(16 + 24 + 32)) FROM (VALUES (1)) v;
SELECT pg_temp.irls_of(int4send(1) || int4send(3) || '\x01'::bytea
	|| pg_temp.zeros(16 + 24 + 32)) FROM (VALUES (1)) v;
SELECT pg_temp.irls_of(int4send(1) || int4send(2) || '\x00'::bytea || int8send(-1)
	|| pg_temp.zeros(8 + 24 + 32 + 16 + 24)) FROM (VALUES (1)) v;
SELECT pg_temp.irls_of(int4send(1) || int4send(2) || '\x00'::bytea
	|| pg_temp.zeros(16 + 24 + 32 + 16 + 23)) FROM (VALUES (1)) v;
SELECT pg_temp.irls_of(int4send(1) || int4send(2) || '\x00'::bytea
	|| pg_temp.zeros(16 + 24 + 32 + 16 + 25)) FROM (VALUES (1)) v;
SELECT pg_temp.irls_of(int4send(1) || int4send(2) || '\x00'::bytea || pg_temp.zeros(16)
	|| float8send('-Infinity') || pg_temp.zeros(16 + 32 + 16 + 24)) FROM (VALUES (1)) v;
-- two states of as many coefficients, of other features and classes
SELECT pg_temp.irls_of(s) FROM (VALUES
	(int4send(5) || int4send(2) || '\x00'::bytea || pg_temp.zeros(16 + 24 + 32 + 48 + 168)),
	(int4send(1) || int4send(3) || '\x00'::bytea || pg_temp.zeros(16 + 24 + 32 + 48 + 168))) v(s);
-- a real state, flattened and read back: the same sums
SELECT pg_temp.close(pg_temp.irls_of(s), (SELECT streamml.irls_pass(y, x, w,
		ARRAY[2, 10, 0, 0.1, 0.5, -0.2, 0.3, 0.1], NULL, NULL) FROM rows)) AS same
  FROM (SELECT pg_temp.irls_state(y, x, w, ARRAY[2, 10, 0, 0.1, 0.5, -0.2, 0.3, 0.1],
		NULL, NULL) AS s FROM rows GROUP BY i % 3) q;
-- a state used by the functions of another aggregate
CREATE AGGREGATE pg_temp.mixed(float8, float8[], float8, float8[], text[], text) (
  sfunc = streamml.irls_pass_transfn, stype = bytea,
  finalfunc = streamml.ml_moments_finalfn);
SELECT pg_temp.mixed(1, ARRAY[1,2]::float8[], 1, ARRAY[2,0,0,1,1,0,0,0]::float8[], NULL, NULL);

-- classification_metrics: n int8, log-loss float8, then the confusion
-- matrix and n (score, label) pairs (native).
SELECT pg_temp.class_of(int8send(1152921504606846976) || float8send(0)
	|| pg_temp.zeros(32)) FROM (VALUES (1)) v;
SELECT pg_temp.class_of(int8send(-1) || float8send(0) || pg_temp.zeros(32)) FROM (VALUES (1)) v;
SELECT pg_temp.class_of(int8send(1) || float8send(0) || pg_temp.zeros(32 + 15)) FROM (VALUES (1)) v;
SELECT pg_temp.class_of(int8send(1) || float8send(0.5) || pg_temp.le8(1) || pg_temp.zeros(24)
	|| pg_temp.le8('NaN') || pg_temp.le8(1)) FROM (VALUES (1)) v;
SELECT pg_temp.class_of(int8send(1) || float8send(0.5) || pg_temp.le8(1) || pg_temp.zeros(24)
	|| pg_temp.le8(0.9) || pg_temp.le8(2)) FROM (VALUES (1)) v;
SELECT pg_temp.class_of(int8send(1) || float8send(0.5) || pg_temp.le8(5) || pg_temp.zeros(24)
	|| pg_temp.le8(0.9) || pg_temp.le8(1)) FROM (VALUES (1)) v;
SELECT pg_temp.class_of(int8send(1) || float8send(0.5) || pg_temp.le8(1) || pg_temp.zeros(24)
	|| pg_temp.le8(0.9) || pg_temp.le8(1)) FROM (VALUES (1)) v;
SELECT pg_temp.close(pg_temp.class_of(s),
		(SELECT streamml.classification_metrics(y = 1, prob) FROM rows)) AS same
  FROM (SELECT pg_temp.class_state(y = 1, prob) AS s FROM rows GROUP BY i % 4) q;

-- regression_metrics: n, |e|, e², mean, m2 float8, unit int4 (native).
SELECT pg_temp.reg_of(pg_temp.zeros(47)) FROM (VALUES (1)) v;
SELECT pg_temp.reg_of(pg_temp.le8(1) || pg_temp.zeros(32) || pg_temp.le4(-2147483648)
	|| pg_temp.zeros(4)) FROM (VALUES (1)) v;
SELECT pg_temp.reg_of(pg_temp.le8(-1) || pg_temp.zeros(32) || pg_temp.le4(0)
	|| pg_temp.zeros(4)) FROM (VALUES (1)) v;
SELECT pg_temp.reg_of(pg_temp.le8(1) || pg_temp.le8('Infinity') || pg_temp.zeros(24)
	|| pg_temp.le4(0) || pg_temp.zeros(4)) FROM (VALUES (1)) v;
SELECT pg_temp.close(pg_temp.reg_of(s),
		(SELECT streamml.regression_metrics(y, prob) FROM rows)) AS same
  FROM (SELECT pg_temp.reg_state(y, prob) AS s FROM rows GROUP BY i % 4) q;

-- multiclass_metrics: k int4 (native), then n, correct, log-loss and the
-- k × k confusion matrix.
SELECT pg_temp.multi_of(pg_temp.le4(0) || pg_temp.zeros(28)) FROM (VALUES (1)) v;
SELECT pg_temp.multi_of(pg_temp.le4(1001) || pg_temp.zeros(28)) FROM (VALUES (1)) v;
SELECT pg_temp.multi_of(pg_temp.le4(2) || pg_temp.zeros(28 + 24)) FROM (VALUES (1)) v;
SELECT pg_temp.multi_of(pg_temp.le4(2) || pg_temp.zeros(4) || pg_temp.le8(3)
	|| pg_temp.zeros(16 + 32)) FROM (VALUES (1)) v;
SELECT pg_temp.multi_of(pg_temp.le4(2) || pg_temp.zeros(4) || pg_temp.le8(1)
	|| pg_temp.le8(2) || pg_temp.zeros(8 + 32)) FROM (VALUES (1)) v;
SELECT streamml.multiclass_metrics(1, array_fill(0.001, ARRAY[1001])::float8[]);
SELECT pg_temp.close(pg_temp.multi_of(s),
		(SELECT streamml.multiclass_metrics(i % 3, ARRAY[0.2, 0.3, 0.5]) FROM rows)) AS same
  FROM (SELECT pg_temp.multi_state(i % 3, ARRAY[0.2, 0.3, 0.5]) AS s FROM rows GROUP BY i % 4) q;

-- feature_bins: p int4, rows int8, sampled k int4, k × p float8, then the
-- number of names (-1: none) and the names, each ended by a zero byte.
-- The attacker's state (p = -1, k = -100000), fed to the aggregate.
SELECT pg_temp.bins_of(decode('ffffffff' || '0000000000000001' || 'fffe7960'
	   || repeat('4142434445464748', 1000) || 'ffffffff', 'hex')) FROM (VALUES (1)) v;
-- more features than a sample holds values
SELECT pg_temp.bins_of(int4send(5000000) || int8send(0) || int4send(0) || int4send(-1))
  FROM (VALUES (1)) v;
SELECT streamml.feature_bins(array_fill(1.0, ARRAY[5000000])::float8[], NULL);
-- fewer rows sampled than seen (the combine would read past the sample)
SELECT pg_temp.bins_of(int4send(1) || int8send(1000) || int4send(0) || int4send(-1))
  FROM (VALUES (1)) v;
SELECT pg_temp.bins_of(int4send(1) || int8send(1) || int4send(1) || int4send(-1))
  FROM (VALUES (1)) v;
SELECT pg_temp.bins_of(int4send(1) || int8send(1) || int4send(1) || float8send('NaN')
	|| int4send(-1)) FROM (VALUES (1)) v;
SELECT pg_temp.bins_of(int4send(1) || int8send(1) || int4send(1) || float8send(2)
	|| int4send(2147483647)) FROM (VALUES (1)) v;
SELECT pg_temp.bins_of(int4send(1) || int8send(1) || int4send(1) || float8send(2)
	|| int4send(1) || '\x6162'::bytea) FROM (VALUES (1)) v;
SELECT pg_temp.bins_of(int4send(1) || int8send(1) || int4send(1) || float8send(2)
	|| int4send(1) || '\xff00'::bytea) FROM (VALUES (1)) v;
SELECT pg_temp.bins_of(int4send(1) || int8send(1) || int4send(1) || float8send(2)
	|| int4send(1) || '\x616200'::bytea || '\x00'::bytea) FROM (VALUES (1)) v;
SELECT pg_temp.bins_of(int4send(1) || int8send(1) || int4send(1) || float8send(2)
	|| int4send(1) || '\x616200'::bytea) FROM (VALUES (1)) v;
-- a state of one feature combined with one of two
SELECT pg_temp.bins_of(s) FROM (VALUES
	(int4send(1) || int8send(1) || int4send(1) || float8send(2) || int4send(-1)),
	(int4send(2) || int8send(1) || int4send(1) || float8send(2) || float8send(3)
	 || int4send(-1))) v(s);
-- the attacker's state as an initcond
DO $$ BEGIN
EXECUTE format('CREATE AGGREGATE pg_temp.evil_bins(float8[], text[]) (
	sfunc = streamml.feature_bins_transfn, stype = bytea, initcond = %L,
	finalfunc = streamml.feature_bins_finalfn)',
	decode('ffffffff' || '0000000000000001' || 'fffe7960'
	   || repeat('4142434445464748', 1000) || 'ffffffff', 'hex')::text);
END $$;
SELECT pg_temp.evil_bins(x, NULL) FROM rows;
-- real states, flattened and combined: the same bins
SELECT pg_temp.bins_of(s) = (SELECT streamml.feature_bins(x, ARRAY['a', 'b']) FROM rows) AS same
  FROM (SELECT pg_temp.bins_state(x, ARRAY['a', 'b']) AS s FROM rows) q;

-- The aggregates in parallel (states through the parallel leader, and
-- for psi and wasserstein_distance through data_drift_deserialize): the
-- same results as serially.
RESET ROLE;
CREATE TABLE states_rows AS
SELECT (i % 3 = 0)::int::float8 AS y, ARRAY[i / 1000.0, (i % 7) - 3.0] AS x,
	   (i % 5) / 5.0 + 0.1 AS prob, i % 3 AS cls
  FROM generate_series(1, 60000) AS i;
ANALYZE states_rows;
GRANT SELECT ON states_rows TO states_nobody;
SET ROLE states_nobody;
CREATE TEMP TABLE serial AS
SELECT streamml.ml_moments(y, x, 1) AS m,
	   streamml.irls_pass(y, x, 1, ARRAY[2, 30, 0, 0.05, 0.5, -0.2, 0.3, 0.1], NULL, NULL) AS irls,
	   streamml.classification_metrics(y = 1, prob) AS c,
	   streamml.regression_metrics(y, prob) AS r,
	   streamml.multiclass_metrics(cls, ARRAY[0.2, 0.3, 0.5]) AS mc,
	   streamml.feature_bins(x, ARRAY['a', 'b']) AS b,
	   streamml.psi(x[2], ARRAY[-3, -1, 1, 3], ARRAY[0.3, 0.3, 0.4]) AS psi,
	   streamml.wasserstein_distance(x[2], ARRAY[-3, -1, 1, 3], ARRAY[0.3, 0.3, 0.4]) AS wd
  FROM states_rows;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT streamml.irls_pass(y, x, 1,
	ARRAY[2, 30, 0, 0.05, 0.5, -0.2, 0.3, 0.1], NULL, NULL) FROM states_rows;
SELECT pg_temp.close(p.m, s.m) AS moments, pg_temp.close(p.irls, s.irls) AS irls,
	   pg_temp.close(p.c, s.c) AS classification, pg_temp.close(p.r, s.r) AS regression,
	   pg_temp.close(p.mc, s.mc) AS multiclass,
	   p.b -> 'rows' = s.b -> 'rows' AS bins_rows,
	   abs(p.psi - s.psi) < 1e-12 AS psi, abs(p.wd - s.wd) < 1e-12 AS wasserstein
  FROM serial s,
	   (SELECT streamml.ml_moments(y, x, 1) AS m,
			   streamml.irls_pass(y, x, 1, ARRAY[2, 30, 0, 0.05, 0.5, -0.2, 0.3, 0.1],
								  NULL, NULL) AS irls,
			   streamml.classification_metrics(y = 1, prob) AS c,
			   streamml.regression_metrics(y, prob) AS r,
			   streamml.multiclass_metrics(cls, ARRAY[0.2, 0.3, 0.5]) AS mc,
			   streamml.feature_bins(x, ARRAY['a', 'b']) AS b,
			   streamml.psi(x[2], ARRAY[-3, -1, 1, 3], ARRAY[0.3, 0.3, 0.4]) AS psi,
			   streamml.wasserstein_distance(x[2], ARRAY[-3, -1, 1, 3],
											 ARRAY[0.3, 0.3, 0.4]) AS wd
		  FROM states_rows) p;
RESET ROLE;
DROP TABLE states_rows;
DROP OWNED BY states_nobody;
DROP ROLE states_nobody;
