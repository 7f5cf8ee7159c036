-- ewma against its definition, a weighted mean computed with a plain join:
-- weight (1 - alpha)^k for the row k non-NULL rows back in the frame, or
-- 2^(-age / half_life).
SET extra_float_digits = 0;

-- Row-numbered non-NULL values of the edge table (rank among non-NULL x).
CREATE VIEW feat_test.edge_nn AS
SELECT id, ts, x, row_number() OVER (ORDER BY id) AS k
FROM feat_test.edge WHERE x IS NOT NULL;

-- Sliding frame of 5 rows: NULLs skipped, NaN and infinities enter and
-- leave, against the weighted mean over the same non-NULL rows.
SELECT count(*) AS compared,
	   count(*) FILTER (WHERE NOT feat_test.close(e, ref)) AS mismatches
FROM (SELECT id, streamml.ewma(x, 0.3) OVER (ORDER BY id ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS e
	  FROM feat_test.edge) r
JOIN (SELECT c.id,
			 CASE WHEN bool_or(p.x = 'NaN') OR (bool_or(p.x = 'Infinity') AND bool_or(p.x = '-Infinity'))
				  THEN 'NaN'::float8
				  WHEN bool_or(p.x = 'Infinity') THEN 'Infinity'
				  WHEN bool_or(p.x = '-Infinity') THEN '-Infinity'
				  ELSE sum(0.7 ^ (c.k - p.k) * p.x) / sum(0.7 ^ (c.k - p.k)) END AS ref
	  FROM (SELECT e.id, max(n.k) AS k FROM feat_test.edge e
			JOIN feat_test.edge_nn n ON n.id <= e.id GROUP BY e.id) c
	  JOIN feat_test.edge_nn p ON p.id BETWEEN c.id - 4 AND c.id
	  GROUP BY c.id) d USING (id);

-- Spelled out: the first rows, a huge value leaving the frame, GROUP BY
-- with ORDER BY inside the call.
SELECT id, x, streamml.ewma(x, 0.5) OVER (ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS e
FROM feat_test.edge WHERE id <= 6 ORDER BY id;
SELECT x, streamml.ewma(x, 0.5) OVER (ORDER BY i ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
FROM (VALUES (1, 10.0::float8), (2, 20), (3, 1e300), (4, -5), (5, 7)) v(i, x);
SELECT streamml.ewma(x, 0.5 ORDER BY i) AS forward, streamml.ewma(x, 0.5 ORDER BY i DESC) AS backward
FROM (VALUES (1, 1.0::float8), (2, 2), (3, 4)) v(i, x);
SELECT streamml.ewma(x, 0.5) FROM feat_test.edge WHERE false;

-- A long slide with alpha small: the sums are rescaled many times.
SELECT max(abs(e - ref) / abs(ref)) < 1e-12 AS within_1e_12
FROM (SELECT id, streamml.ewma(x, 0.05) OVER (ORDER BY id ROWS BETWEEN 99 PRECEDING AND CURRENT ROW) AS e
	  FROM feat_test.trend WHERE id <= 1500) r
JOIN (SELECT c.id, sum(0.95::float8 ^ (c.id - p.id) * p.x) / sum(0.95::float8 ^ (c.id - p.id)) AS ref
	  FROM feat_test.trend c JOIN feat_test.trend p ON p.id BETWEEN c.id - 99 AND c.id
	  WHERE c.id <= 1500 GROUP BY c.id) d USING (id);

-- Time-decayed, over a 30-second RANGE frame with ties in ts.
SELECT count(*) AS compared,
	   count(*) FILTER (WHERE NOT feat_test.close(e, ref)) AS mismatches
FROM (SELECT id, streamml.ewma(x, ts, '10 seconds') OVER (ORDER BY ts RANGE BETWEEN '30 seconds' PRECEDING AND CURRENT ROW) AS e
	  FROM feat_test.edge) r
JOIN (SELECT c.id,
			 CASE WHEN bool_or(p.x = 'NaN') OR (bool_or(p.x = 'Infinity') AND bool_or(p.x = '-Infinity'))
				  THEN 'NaN'::float8
				  WHEN bool_or(p.x = 'Infinity') THEN 'Infinity'
				  WHEN bool_or(p.x = '-Infinity') THEN '-Infinity'
				  ELSE sum(2 ^ (-extract(epoch FROM c.ts - p.ts)::float8 / 10) * p.x) /
					   sum(2 ^ (-extract(epoch FROM c.ts - p.ts)::float8 / 10)) END AS ref
	  FROM feat_test.edge c
	  JOIN feat_test.edge p ON p.ts BETWEEN c.ts - interval '30 seconds' AND c.ts AND p.x IS NOT NULL
	  GROUP BY c.id) d USING (id);

-- Time-decayed ewma combines: parallel GROUP BY gives the serial result.
CREATE TABLE feat_test.ticks AS
SELECT i AS id, '2024-01-01 00:00:00+00'::timestamptz + i * interval '250 ms' AS ts,
	   100 + (i % 17) * 0.25 AS x
FROM generate_series(1, 20000) i;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT streamml.ewma(x, ts, '1 min') FROM feat_test.ticks;
CREATE TEMP TABLE par AS SELECT streamml.ewma(x, ts, '1 min') AS e FROM feat_test.ticks;
SET max_parallel_workers_per_gather = 0;
SELECT feat_test.close(e, (SELECT streamml.ewma(x, ts, '1 min') FROM feat_test.ticks), 1e-14) AS same
FROM par;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- Errors.
SELECT streamml.ewma(x, 0) FROM feat_test.edge;
SELECT streamml.ewma(x, 1) FROM feat_test.edge;
SELECT streamml.ewma(x, 'NaN') FROM feat_test.edge;
SELECT streamml.ewma(x, id / 100.0) FROM feat_test.edge WHERE x IS NOT NULL;
SELECT streamml.ewma(x, ts, '1 month') FROM feat_test.edge;
SELECT streamml.ewma(x, ts, '-1 s') FROM feat_test.edge;
