-- Windowed-feature aggregates against their definitions: the built-in
-- aggregates, or numeric arithmetic where float8 is not exact enough.
SET extra_float_digits = 0;
CREATE SCHEMA feat_test;

-- Equal, both NULL, or within a relative tolerance (NaN = NaN in PostgreSQL).
CREATE FUNCTION feat_test.close(a float8, b float8, tol float8 DEFAULT 1e-12)
RETURNS bool LANGUAGE sql IMMUTABLE AS $$
	SELECT coalesce((a IS NULL AND b IS NULL) OR a = b OR
					abs(a - b) <= tol * greatest(abs(a), abs(b)), false)
$$;

-- Edge cases: NULLs, NaN, infinities, runs of equal values, negatives,
-- ties in ts (pairs of rows share a timestamp), two partitions.
CREATE TABLE feat_test.edge (id int, g int, ts timestamptz, x float8, y float8);
INSERT INTO feat_test.edge
SELECT i, 1 + i % 2, '2024-01-01 00:00:00+00'::timestamptz + (i / 2) * interval '7 s',
	   v[1 + (i - 1) % array_length(v, 1)],
	   w[1 + (i - 1) % array_length(w, 1)]
FROM generate_series(1, 120) i,
	 (SELECT ARRAY[1.5, 2, NULL, 4, 'NaN', 5, 6, 'Infinity', 7, -3.25, '-Infinity', 8,
				   9, 9, 9, 9, 9, 9, 9, 9, NULL, 9, 0, -1, 'Infinity', 'Infinity', 2.5,
				   NULL, NULL, NULL, NULL, NULL, 11, 12, 'NaN', 'NaN', 13, 1e6, 1e-6, 17
				  ]::float8[] AS v,
			 ARRAY[3, 1, 4, 1, 5, 9, 2, 6, 5, NULL, 5, 8, 9, 7, 9, 'NaN', 2, 3, 8, 4, 6,
				   2, 6, 4, 3, 3, 8, 3, 2, 7, 9, 5]::float8[] AS w) a;

-- Every aggregate of the family beside its built-in, over one frame clause:
-- rows compared, and how many differ.
CREATE FUNCTION feat_test.compare(frame text)
RETURNS TABLE (agg text, compared bigint, mismatches bigint)
LANGUAGE plpgsql AS $$
DECLARE
	pair text[];
BEGIN
	FOREACH pair SLICE 1 IN ARRAY ARRAY[
		['rolling_sum', 'sum'], ['rolling_mean', 'avg'],
		['rolling_var', 'var_samp'], ['rolling_var_pop', 'var_pop'],
		['rolling_stddev', 'stddev_samp'], ['rolling_stddev_pop', 'stddev_pop'],
		['rolling_min', 'min'], ['rolling_max', 'max']]
	LOOP
		RETURN QUERY EXECUTE format(
			'SELECT %L::text, count(*), count(*) FILTER (WHERE NOT feat_test.close(a, b))
			 FROM (SELECT streamml.%I(x) OVER w AS a, pg_catalog.%I(x) OVER w AS b
				   FROM feat_test.edge WINDOW w AS (%s)) s',
			pair[1], pair[1], pair[2], frame);
	END LOOP;
END
$$;

-- Sliding ROWS frames (moving aggregate with inverse transitions).
SELECT * FROM feat_test.compare('ORDER BY id ROWS BETWEEN 3 PRECEDING AND CURRENT ROW');
-- Frames empty at the start of each partition (NULL there).
SELECT * FROM feat_test.compare('PARTITION BY g ORDER BY id ROWS BETWEEN 2 PRECEDING AND 1 PRECEDING');
-- Frames empty at the end.
SELECT * FROM feat_test.compare('ORDER BY id ROWS BETWEEN 1 FOLLOWING AND 4 FOLLOWING');
-- RANGE over a timestamptz with ties, and a RANGE reaching forward.
SELECT * FROM feat_test.compare('ORDER BY ts RANGE BETWEEN ''30 seconds'' PRECEDING AND CURRENT ROW');
SELECT * FROM feat_test.compare('PARTITION BY g ORDER BY ts RANGE BETWEEN ''20 s'' PRECEDING AND ''10 s'' FOLLOWING');
-- GROUPS frames.
SELECT * FROM feat_test.compare('ORDER BY ts GROUPS BETWEEN 2 PRECEDING AND CURRENT ROW');
-- EXCLUDE: PostgreSQL restarts the aggregate for every row instead.
SELECT * FROM feat_test.compare('ORDER BY id ROWS BETWEEN 2 PRECEDING AND 2 FOLLOWING EXCLUDE CURRENT ROW');
-- Growing frames and whole partitions (the plain transition).
SELECT * FROM feat_test.compare('ORDER BY id');
SELECT * FROM feat_test.compare('PARTITION BY g');

-- A few values spelled out: NaN and Infinity enter and leave the frame.
SELECT id, x, streamml.rolling_mean(x) OVER w AS mean, avg(x) OVER w AS avg,
	   streamml.rolling_var(x) OVER w AS var, streamml.rolling_max(x) OVER w AS max
FROM feat_test.edge WHERE id <= 14
WINDOW w AS (ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) ORDER BY id;

-- GROUP BY, NULL-only and empty inputs, a single row.
SELECT g, streamml.rolling_sum(x) = sum(x) AS sum_ok, streamml.rolling_mean(x) = avg(x) AS mean_ok,
	   streamml.rolling_min(x), streamml.rolling_max(x)
FROM feat_test.edge GROUP BY g ORDER BY g;
SELECT streamml.rolling_sum(x), streamml.rolling_mean(x), streamml.rolling_var(x),
	   streamml.rolling_var_pop(x), streamml.rolling_min(x)
FROM feat_test.edge WHERE x IS NULL;
SELECT streamml.rolling_sum(x), streamml.rolling_mean(x), streamml.rolling_var(x)
FROM feat_test.edge WHERE false;
SELECT streamml.rolling_sum(x), streamml.rolling_mean(x), streamml.rolling_var(x),
	   streamml.rolling_var_pop(x), streamml.rolling_stddev_pop(x)
FROM (VALUES (2.5::float8)) v(x);
SELECT streamml.rolling_var(x), streamml.rolling_var_pop(x), var_pop(x)
FROM (VALUES ('NaN'::float8)) v(x);

-- Exactness over a long slide: 100000 rows of 1e9 plus 20-bit noise
-- (exact in float8 and numeric alike), frame of 500 rows, against numeric.
CREATE TABLE feat_test.offset AS
SELECT i AS id, xn, xn::float8 AS x
FROM (SELECT i, 1e9 + ((i::bigint * 2654435761) % 1048576) * 0.00000095367431640625 AS xn
	  FROM generate_series(1, 100000) i) s;
SELECT max(abs(m - mn::float8) / abs(mn::float8)) < 1e-15 AS mean_exact,
	   max(abs(v - vn::float8) / vn::float8) < 1e-9 AS var_within_1e_9,
	   max(abs(sd - sdn::float8) / sdn::float8) < 1e-9 AS stddev_within_1e_9,
	   max(abs(s - sn::float8) / abs(sn::float8)) < 1e-15 AS sum_exact
FROM (SELECT streamml.rolling_mean(x) OVER w AS m, avg(xn) OVER w AS mn,
			 streamml.rolling_var_pop(x) OVER w AS v, var_pop(xn) OVER w AS vn,
			 streamml.rolling_stddev(x) OVER w AS sd, stddev_samp(xn) OVER w AS sdn,
			 streamml.rolling_sum(x) OVER w AS s, sum(xn) OVER w AS sn
	  FROM feat_test.offset
	  WINDOW w AS (ORDER BY id ROWS BETWEEN 499 PRECEDING AND CURRENT ROW)) r
WHERE vn > 0;

-- Regimes one after another: 1e9 plus noise, a constant stretch longer than
-- the frame, a steep trend; variance exactly 0 over the constant stretch.
CREATE TABLE feat_test.regimes AS
SELECT i AS id, xn, xn::float8 AS x
FROM (SELECT i, CASE WHEN i % 3000 < 1000 THEN 1e9 + ((i::bigint * 2654435761) % 1024) * 0.0009765625
					 WHEN i % 3000 < 2000 THEN 12345.5
					 ELSE (i % 3000)::numeric * 1000000 + (i % 7) * 0.125 END AS xn
	  FROM generate_series(1, 30000) i) s;
SELECT count(*) FILTER (WHERE vn = 0) AS constant_frames,
	   count(*) FILTER (WHERE vn = 0 AND v <> 0) AS nonzero_variance,
	   count(*) FILTER (WHERE v < 0) AS negative_variance,
	   max(abs(v - vn::float8) / vn::float8) FILTER (WHERE vn > 0) < 1e-9 AS var_within_1e_9,
	   count(*) FILTER (WHERE vn = 0 AND m <> x) AS constant_mean_not_exact
FROM (SELECT x, streamml.rolling_var(x) OVER w AS v, var_samp(xn) OVER w AS vn,
			 streamml.rolling_mean(x) OVER w AS m
	  FROM feat_test.regimes
	  WINDOW w AS (ORDER BY id ROWS BETWEEN 299 PRECEDING AND CURRENT ROW)) r;

-- Parallel GROUP BY: partial aggregates combined from the workers.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF)
SELECT streamml.rolling_sum(x), streamml.rolling_mean(x), streamml.rolling_var(x),
	   streamml.rolling_stddev_pop(x), streamml.rolling_min(x), streamml.rolling_max(x)
FROM feat_test.offset;
SELECT streamml.rolling_mean(x) = avg(xn)::float8 AS mean_exact,
	   abs(streamml.rolling_var(x) - var_samp(xn)::float8) / var_samp(xn)::float8 < 1e-12 AS var_ok,
	   streamml.rolling_min(x) = min(xn)::float8 AS min_ok,
	   streamml.rolling_max(x) = max(xn)::float8 AS max_ok
FROM feat_test.offset;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
