-- rolling_slope(y, x) against regr_slope, and against numeric sums.
SET extra_float_digits = 0;

CREATE FUNCTION feat_test.compare_slope(frame text)
RETURNS TABLE (compared bigint, mismatches bigint)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE format(
		'SELECT count(*), count(*) FILTER (WHERE NOT feat_test.close(a, b))
		 FROM (SELECT streamml.rolling_slope(y, x) OVER w AS a, regr_slope(y, x) OVER w AS b
			   FROM feat_test.edge WINDOW w AS (%s)) s', frame);
END
$$;

-- NULL in either argument skips the row; NaN/Infinity in x or y; runs of
-- equal x (a vertical line: NULL); empty frames.
SELECT * FROM feat_test.compare_slope('ORDER BY id ROWS BETWEEN 4 PRECEDING AND CURRENT ROW');
SELECT * FROM feat_test.compare_slope('PARTITION BY g ORDER BY id ROWS BETWEEN 3 PRECEDING AND 1 PRECEDING');
SELECT * FROM feat_test.compare_slope('ORDER BY ts RANGE BETWEEN ''30 seconds'' PRECEDING AND CURRENT ROW');
SELECT * FROM feat_test.compare_slope('ORDER BY id ROWS BETWEEN 2 PRECEDING AND 2 FOLLOWING EXCLUDE TIES');
SELECT * FROM feat_test.compare_slope('ORDER BY id');

-- Spelled out: one row, a vertical line, a horizontal line, NaN in y with
-- equal x (regr_slope gives NULL there: Sxx is 0), NaN in y otherwise.
SELECT streamml.rolling_slope(y, x), regr_slope(y, x)
FROM (VALUES (1.0::float8, 2.0::float8)) v(y, x);
SELECT streamml.rolling_slope(y, x), regr_slope(y, x)
FROM (VALUES (1.0::float8, 2.0::float8), (3, 2), (5, 2)) v(y, x);
SELECT streamml.rolling_slope(y, x), regr_slope(y, x)
FROM (VALUES (7.0::float8, 1.0::float8), (7, 2), (7, 5)) v(y, x);
SELECT streamml.rolling_slope(y, x), regr_slope(y, x)
FROM (VALUES ('NaN'::float8, 2.0::float8), (3, 2)) v(y, x);
SELECT streamml.rolling_slope(y, x), regr_slope(y, x)
FROM (VALUES ('NaN'::float8, 1.0::float8), (3, 2)) v(y, x);
SELECT streamml.rolling_slope(y, x), regr_slope(y, x)
FROM (VALUES (1.0::float8, 'Infinity'::float8)) v(y, x);

-- Long slide on a trend with a large offset: y = 3x + noise, x = 1e6 + i,
-- against Sxy / Sxx computed in numeric from windowed sums.
CREATE TABLE feat_test.trend AS
SELECT i AS id, xn, yn, xn::float8 AS x, yn::float8 AS y
FROM (SELECT i, 1000000 + i::numeric AS xn,
			 3 * i + 1e9 + ((i::bigint * 2654435761) % 1024) * 0.0009765625 AS yn
	  FROM generate_series(1, 50000) i) s;
SELECT max(abs(a - b::float8) / abs(b::float8)) < 1e-9 AS slope_within_1e_9
FROM (SELECT streamml.rolling_slope(y, x) OVER w AS a,
			 (sum(xn * yn) OVER w - sum(xn) OVER w * sum(yn) OVER w / count(*) OVER w) /
			 nullif(sum(xn * xn) OVER w - sum(xn) OVER w ^ 2 / count(*) OVER w, 0) AS b
	  FROM feat_test.trend
	  WINDOW w AS (ORDER BY id ROWS BETWEEN 199 PRECEDING AND CURRENT ROW)) r
WHERE b IS NOT NULL AND b <> 0;

-- A constant y stretch gives exactly 0; a constant x stretch NULL.
SELECT count(*) FILTER (WHERE s <> 0) AS nonzero, count(*) FILTER (WHERE s IS NULL) AS nulls
FROM (SELECT id, streamml.rolling_slope(CASE WHEN id > 100 THEN 5 ELSE y END, x)
				 OVER (ORDER BY id ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) AS s
	  FROM feat_test.trend WHERE id <= 300) r
WHERE id >= 110;
SELECT count(*) FILTER (WHERE s IS NULL) AS nulls
FROM (SELECT id, streamml.rolling_slope(y, CASE WHEN id > 100 THEN 5 ELSE x END)
				 OVER (ORDER BY id ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) AS s
	  FROM feat_test.trend WHERE id <= 300) r
WHERE id >= 110;

-- Parallel GROUP BY, against numeric (regr_slope itself is off by ~6e-9 here).
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT streamml.rolling_slope(y, x) FROM feat_test.trend;
SELECT abs(streamml.rolling_slope(y, x) / ((sum(xn * yn) - sum(xn) * sum(yn) / count(*)) /
		   (sum(xn * xn) - sum(xn) ^ 2 / count(*)))::float8 - 1) < 1e-12 AS exact
FROM feat_test.trend;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
