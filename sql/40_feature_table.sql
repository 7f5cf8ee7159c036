-- Feature tables: every row inserted into the source gets its features row
-- in the same transaction, equal to the SQL window query feature_sql gives.
SET extra_float_digits = 0;
CREATE SCHEMA ftt;

-- Equal within 1e-9 relative (NULL = NULL, NaN = NaN).
CREATE FUNCTION ftt.close(a float8, b float8) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
	SELECT (a IS NULL AND b IS NULL) OR a = b
		OR abs(a - b) <= 1e-9 * greatest(abs(a), abs(b))
$$;

-- Compares every feature of feature table ft with feature_sql's query,
-- row by row (joined on key): rows compared, non-NULL values, mismatches.
CREATE FUNCTION ftt.compare(ft text, key text, ref_sql text DEFAULT NULL)
RETURNS TABLE (feature text, compared bigint, nonnull bigint, mismatches bigint)
LANGUAGE plpgsql AS $$
DECLARE
	f text;
	r record;
BEGIN
	IF to_regclass('pg_temp.ref') IS NOT NULL THEN DROP TABLE pg_temp.ref; END IF;
	EXECUTE 'CREATE TEMP TABLE ref AS ' || coalesce(ref_sql, streamml.feature_sql(ft));
	FOR f IN SELECT a.attname FROM pg_attribute a
			  WHERE a.attrelid = ft::regclass AND a.attnum > 0 AND NOT a.attisdropped
				AND a.atttypid = 'float8'::regtype
				AND a.attname IN (SELECT jsonb_object_keys(spec->'features')
								  FROM streamml.feature_tables_catalog c WHERE c.name = ft)
			  ORDER BY a.attnum
	LOOP
		EXECUTE format('SELECT count(*) AS c, count(t.%1$I) AS nn, count(*) FILTER (WHERE NOT ftt.close(t.%1$I, r.%1$I)) AS mm
						  FROM %2$s t JOIN pg_temp.ref r USING (%3$I)', f, ft, key) INTO r;
		feature := f; compared := r.c; nonnull := r.nn; mismatches := r.mm;
		RETURN NEXT;
	END LOOP;
END $$;

-- Random trades: 4 symbols with 150-400 rows each, prices with NULLs, gaps
-- longer than the 30 s range, and a symbol seen once.  Timestamps are
-- distinct within a symbol (ties are tested further down).
SELECT setseed(0.42);
CREATE TABLE ftt.trades (id bigserial PRIMARY KEY, symbol text, ts timestamptz,
						 price numeric(12,4), qty float8, notional float8);
CREATE TABLE ftt.gen AS
SELECT symbol, i,
	   '2026-01-01 00:00:00+00'::timestamptz
		 + make_interval(secs => sum(gap) OVER (PARTITION BY symbol ORDER BY i)) AS ts,
	   CASE WHEN random() < 0.1 THEN NULL
			ELSE round((100 + sum(step) OVER (PARTITION BY symbol ORDER BY i))::numeric, 4) END AS price,
	   round((random() * 10)::numeric, 2)::float8 AS qty
FROM (SELECT s.symbol, g.i,
			 CASE WHEN random() < 0.03 THEN 95 + random() * 60
				  ELSE 0.001 + round((random() * 4)::numeric, 3)::float8 END AS gap,
			 random() - 0.5 AS step
	  FROM (VALUES ('AAA', 400), ('BBB', 300), ('CCC', 150), ('DDD', 250)) s(symbol, n),
		   generate_series(1, s.n) g(i)) x
UNION ALL
SELECT 'ONCE', 1, '2026-01-01 00:05:00+00', 42.5, 1;
UPDATE ftt.gen SET qty = NULL WHERE i % 17 = 0;

-- Every function and frame, over a timestamptz order_by.
SELECT streamml.create_feature_table('ftt.f_all', 'ftt.trades', $${
  "partition_by": "symbol", "order_by": "ts",
  "keep": ["id", "symbol", "ts", "price"],
  "features": {
	"lag_1":       {"fn": "lag",        "of": "price", "n": 1},
	"lag_3":       {"fn": "lag",        "of": "price", "n": 3},
	"delta_2":     {"fn": "delta",      "of": "price", "n": 2},
	"pct_1":       {"fn": "pct_change", "of": "price"},
	"mean_5":      {"fn": "mean",       "of": "price", "preceding": 5},
	"mean_30s":    {"fn": "mean",       "of": "price", "range": "30 seconds"},
	"sum_5":       {"fn": "sum",        "of": "qty",   "preceding": 5},
	"sum_1m":      {"fn": "sum",        "of": "notional", "range": "1 minute"},
	"min_5":       {"fn": "min",        "of": "price", "preceding": 5},
	"min_30s":     {"fn": "min",        "of": "price", "range": "30 seconds"},
	"max_0":       {"fn": "max",        "of": "price", "preceding": 0},
	"max_30s":     {"fn": "max",        "of": "qty",   "range": "30 seconds"},
	"var_5":       {"fn": "var",        "of": "price", "preceding": 5},
	"var_30s":     {"fn": "var",        "of": "price", "range": "30 seconds"},
	"var_pop_9":   {"fn": "var_pop",    "of": "price", "preceding": 9},
	"var_pop_30s": {"fn": "var_pop",    "of": "qty",   "range": "30 seconds"},
	"sd_5":        {"fn": "stddev",     "of": "price", "preceding": 5},
	"sd_30s":      {"fn": "stddev",     "of": "price", "range": "30 seconds"},
	"sdp_5":       {"fn": "stddev_pop", "of": "price", "preceding": 5},
	"sdp_30s":     {"fn": "stddev_pop", "of": "price", "range": "30 seconds"},
	"n_30s":       {"fn": "count",                     "range": "30 seconds"},
	"n_price_7":   {"fn": "count",      "of": "price", "preceding": 7},
	"slope_19":    {"fn": "slope",      "of": "price", "preceding": 19},
	"slope_30s":   {"fn": "slope",      "of": "price", "range": "30 seconds"},
	"ewma_a":      {"fn": "ewma",       "of": "price", "alpha": 0.2},
	"ewma_10s":    {"fn": "ewma",       "of": "price", "half_life": "10 seconds"}}}$$);
\d ftt.f_all

-- Rows come in by several paths: multi-row INSERTs, single rows, COPY, a
-- trigger on another table, in order_by order within each symbol.
INSERT INTO ftt.trades (symbol, ts, price, qty, notional)
SELECT symbol, ts, price, qty, price * qty FROM ftt.gen
WHERE ts < '2026-01-01 00:03:00+00' ORDER BY ts, symbol;
INSERT INTO ftt.trades (symbol, ts, price, qty, notional)
SELECT symbol, ts, price, qty, price * qty FROM ftt.gen
WHERE ts >= '2026-01-01 00:03:00+00' AND ts < '2026-01-01 00:03:10+00' AND symbol = 'AAA' ORDER BY ts;
INSERT INTO ftt.trades (symbol, ts, price, qty, notional)
SELECT symbol, ts, price, qty, price * qty FROM ftt.gen
WHERE ts >= '2026-01-01 00:03:00+00' AND ts < '2026-01-01 00:03:10+00' AND symbol <> 'AAA' ORDER BY ts;
DO $$
DECLARE r record;
BEGIN
	FOR r IN SELECT * FROM ftt.gen WHERE ts >= '2026-01-01 00:03:10+00'
			 AND ts < '2026-01-01 00:06:00+00' ORDER BY ts, symbol LOOP
		INSERT INTO ftt.trades (symbol, ts, price, qty, notional)
		VALUES (r.symbol, r.ts, r.price, r.qty, r.price * r.qty);
	END LOOP;
END $$;
COPY (SELECT symbol, ts, price, qty, price * qty FROM ftt.gen
	  WHERE ts >= '2026-01-01 00:06:00+00' AND ts < '2026-01-01 00:10:00+00' ORDER BY ts, symbol)
	TO '/tmp/pg_streamml_40_copy.csv' (FORMAT csv);
COPY ftt.trades (symbol, ts, price, qty, notional) FROM '/tmp/pg_streamml_40_copy.csv' (FORMAT csv);
CREATE TABLE ftt.trades_in (symbol text, ts timestamptz, price numeric, qty float8);
CREATE FUNCTION ftt.forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO ftt.trades (symbol, ts, price, qty, notional)
	VALUES (NEW.symbol, NEW.ts, NEW.price, NEW.qty, NEW.price * NEW.qty);
	RETURN NULL;
END $$;
CREATE TRIGGER forward AFTER INSERT ON ftt.trades_in FOR EACH ROW EXECUTE FUNCTION ftt.forward();
INSERT INTO ftt.trades_in SELECT symbol, ts, price, qty FROM ftt.gen
WHERE ts >= '2026-01-01 00:10:00+00' ORDER BY ts, symbol;

SELECT count(*) AS source_rows, (SELECT count(*) FROM ftt.f_all) AS feature_rows,
	   (SELECT count(*) FROM ftt.trades t JOIN ftt.f_all f USING (id)) AS joined,
	   (SELECT count(*) FROM ftt.f_all WHERE late) AS late
FROM ftt.trades;
SELECT * FROM ftt.compare('ftt.f_all', 'id');
-- arrival_seq numbers each symbol's rows in order
SELECT symbol, count(*), min(arrival_seq), max(arrival_seq) FROM ftt.f_all GROUP BY symbol ORDER BY symbol;

-- A back-fill reads whole rows, also of a source with a column named s
-- (the alias of its query, which the column hid: every such back-fill
-- failed) and with a dropped column.
CREATE TABLE ftt.cols_s (s text, ts int, v float8, gone int);
INSERT INTO ftt.cols_s VALUES ('a', 1, 1, 0), ('a', 2, 2, 0);
ALTER TABLE ftt.cols_s DROP COLUMN gone;
INSERT INTO ftt.cols_s VALUES ('a', 3, 4), ('b', 1, 8);
SELECT streamml.create_feature_table('ftt.f_cols_s', 'ftt.cols_s', '{"partition_by": "s",
	"order_by": "ts", "features": {"l": {"fn": "lag", "of": "v"}}}');
SELECT * FROM ftt.f_cols_s ORDER BY s, ts;
SELECT streamml.drop_feature_table('ftt.f_cols_s');
DROP TABLE ftt.cols_s;

-- A feature table made afterwards back-fills the existing rows; the
-- issue's example.
SELECT streamml.create_feature_table('ftt.f_example', 'ftt.trades', $${
  "partition_by": "symbol", "order_by": "ts", "keep": ["id", "symbol", "ts", "price"],
  "features": {
	"lag_1":    {"fn": "lag",        "of": "price", "n": 1},
	"ret_1":    {"fn": "pct_change", "of": "price", "n": 1},
	"momentum": {"fn": "delta",      "of": "price", "n": 3},
	"ma_5":     {"fn": "mean",       "of": "price", "preceding": 5},
	"vol_30s":  {"fn": "stddev_pop", "of": "price", "range": "30 seconds"},
	"vwap_1m":  {"fn": "sum",        "of": "notional", "range": "1 minute"},
	"n_30s":    {"fn": "count",                       "range": "30 seconds"},
	"ewma_10s": {"fn": "ewma",       "of": "price", "half_life": "10 seconds"},
	"trend_20": {"fn": "slope",      "of": "price", "preceding": 19}}}$$);
SELECT count(*) FROM ftt.f_example;
SELECT * FROM ftt.compare('ftt.f_example', 'id');
SELECT streamml.feature_sql('ftt.f_example');
SELECT id, symbol, ts, price, lag_1, ret_1, momentum, ma_5, vol_30s, n_30s, arrival_seq, late
FROM ftt.f_example WHERE symbol = 'CCC' ORDER BY ts LIMIT 5;

-- The states are rebuilt from the feature table: forget them (a rolled
-- back statement does), and the next rows are still exact.
BEGIN;
INSERT INTO ftt.trades (symbol, ts, price, qty, notional)
VALUES ('AAA', '2026-01-02', 1, 1, 1);
ROLLBACK;
INSERT INTO ftt.trades (symbol, ts, price, qty, notional)
SELECT symbol, ts + interval '2 hours', price, qty, price * qty FROM ftt.gen
WHERE ts < '2026-01-01 00:02:00+00' ORDER BY ts, symbol;
SELECT count(*) FROM ftt.f_all;
SELECT feature, compared, mismatches FROM ftt.compare('ftt.f_all', 'id') WHERE mismatches > 0;
SELECT feature, compared, mismatches FROM ftt.compare('ftt.f_example', 'id') WHERE mismatches > 0;

-- Integer and float order_by, several partition columns.
CREATE TABLE ftt.ticks (id serial PRIMARY KEY, a int, b text, n int, x float8, y numeric);
SELECT streamml.create_feature_table('ftt.f_int', 'ftt.ticks', $${
  "partition_by": ["a", "b"], "order_by": "n",
  "features": {
	"m_r40":  {"fn": "mean",  "of": "x", "range": 40},
	"s_r60":  {"fn": "slope", "of": "y", "range": 60},
	"c_r0":   {"fn": "count", "range": 0},
	"c_r19":  {"fn": "count", "range": 19},
	"mx_r50": {"fn": "max",   "of": "x", "range": 50},
	"e":      {"fn": "ewma",  "of": "x", "alpha": 0.5},
	"sd_3":   {"fn": "stddev", "of": "y", "preceding": 3}}}$$);
INSERT INTO ftt.ticks (a, b, n, x, y)
SELECT i % 3, CASE WHEN i % 2 = 0 THEN 'p' ELSE 'q' END, i * 3 + (i % 4),
	   CASE WHEN i % 11 = 0 THEN NULL ELSE sin(i) * 100 END, (i % 13)::numeric / 7
FROM generate_series(1, 600) i ORDER BY i;
SELECT * FROM ftt.compare('ftt.f_int', 'id');
CREATE TABLE ftt.fticks (id serial PRIMARY KEY, k text, t float8, x float4);
SELECT streamml.create_feature_table('ftt.f_float', 'ftt.fticks', $${
  "partition_by": "k", "order_by": "t",
  "features": {
	"m":  {"fn": "mean", "of": "x", "range": 0.75},
	"v":  {"fn": "var",  "of": "x", "range": 1.5},
	"sl": {"fn": "slope", "of": "x", "range": 2.5}}}$$);
INSERT INTO ftt.fticks (k, t, x)
SELECT CASE WHEN i % 5 = 0 THEN 'u' ELSE 'v' END, i * 0.37, (i % 7) * 1.5
FROM generate_series(1, 300) i ORDER BY i;
SELECT * FROM ftt.compare('ftt.f_float', 'id');

-- timestamp without time zone: ewma's half-life and slope in seconds.
CREATE TABLE ftt.ltrades (id serial PRIMARY KEY, s text, ts timestamp, p float8);
SELECT streamml.create_feature_table('ftt.f_local', 'ftt.ltrades', $${
  "partition_by": "s", "order_by": "ts",
  "features": {
	"e":  {"fn": "ewma", "of": "p", "half_life": "1 day 2 hours"},
	"sl": {"fn": "slope", "of": "p", "range": "2 days"},
	"mn": {"fn": "min", "of": "p", "range": "36 hours"}}}$$);
INSERT INTO ftt.ltrades (s, ts, p)
SELECT CASE WHEN i % 3 = 0 THEN 'x' ELSE 'y' END,
	   '2026-03-28'::timestamp + i * interval '5 hours 7 minutes', cos(i) * 10 + i
FROM generate_series(1, 200) i ORDER BY i;
SELECT * FROM ftt.compare('ftt.f_local', 'id');

-- Ties: rows with equal order_by values go in by arrival, so a row's
-- frame holds the rows that came before it, never a later peer.  The
-- reference orders peers by id (the arrival order) for ROWS frames, lag
-- and ewma, and takes RANGE frames as the rows within the range that came
-- before (for the last of its peers that is exactly the window function).
CREATE TABLE ftt.ties (id serial PRIMARY KEY, s text, ts timestamptz, v float8);
SELECT streamml.create_feature_table('ftt.f_ties', 'ftt.ties', $${
  "partition_by": "s", "order_by": "ts",
  "features": {
	"lag_2": {"fn": "lag",  "of": "v", "n": 2},
	"m_3":   {"fn": "mean", "of": "v", "preceding": 3},
	"mx_3":  {"fn": "max",  "of": "v", "preceding": 3},
	"e":     {"fn": "ewma", "of": "v", "alpha": 0.3},
	"s_10s": {"fn": "sum",  "of": "v", "range": "10 seconds"},
	"n_10s": {"fn": "count", "range": "10 seconds"},
	"mn_10s": {"fn": "min", "of": "v", "range": "10 seconds"}}}$$);
INSERT INTO ftt.ties (s, ts, v)
SELECT CASE WHEN i % 4 = 0 THEN 'b' ELSE 'a' END,
	   '2026-01-01'::timestamptz + (i / 3) * interval '2 seconds',
	   CASE WHEN i % 9 = 0 THEN NULL ELSE (i * 37 % 23)::float8 END
FROM generate_series(1, 400) i ORDER BY i;
SELECT * FROM ftt.compare('ftt.f_ties', 'id', $$
SELECT t.id,
	   lag(v, 2) OVER w AS lag_2,
	   streamml.rolling_mean(v) OVER (w ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS m_3,
	   streamml.rolling_max(v) OVER (w ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS mx_3,
	   streamml.ewma(v, 0.3) OVER (w ROWS UNBOUNDED PRECEDING) AS e,
	   r.s_10s, r.n_10s, r.mn_10s
FROM ftt.ties t,
	 LATERAL (SELECT streamml.rolling_sum(p.v ORDER BY p.id) AS s_10s,
					 count(*)::float8 AS n_10s, min(p.v) AS mn_10s
			  FROM ftt.ties p WHERE p.s = t.s AND p.id <= t.id
				AND p.ts >= t.ts - interval '10 seconds') r
WINDOW w AS (PARTITION BY s ORDER BY ts, id)$$);
-- and the last of each group of peers equals feature_sql's window query
SELECT count(*) AS last_peers,
	   count(*) FILTER (WHERE NOT (ftt.close(f.s_10s, r.s_10s) AND ftt.close(f.n_10s, r.n_10s)
								   AND ftt.close(f.mn_10s, r.mn_10s))) AS mismatches
FROM ftt.f_ties f
JOIN (SELECT * FROM ftt.ties t WHERE NOT EXISTS
		(SELECT 1 FROM ftt.ties u WHERE u.s = t.s AND u.ts = t.ts AND u.id > t.id)) l USING (id)
JOIN (SELECT id, streamml.rolling_sum(v) OVER w AS s_10s, count(*) OVER w::float8 AS n_10s,
			 streamml.rolling_min(v) OVER w AS mn_10s
	  FROM ftt.ties WINDOW w AS (PARTITION BY s ORDER BY ts
								RANGE BETWEEN '10 seconds' PRECEDING AND CURRENT ROW)) r USING (id);

-- Late rows: order_by below the newest of the partition.  "late": "null"
-- (the default) gives them NULL features and late = true, counted, and
-- leaves the partition's state as it was: the next rows are exact.
CREATE TABLE ftt.lt (id serial PRIMARY KEY, s text, ts int, v float8);
SELECT streamml.create_feature_table('ftt.f_lt', 'ftt.lt', $${
  "partition_by": "s", "order_by": "ts",
  "features": {"m": {"fn": "mean", "of": "v", "preceding": 2}, "l": {"fn": "lag", "of": "v"}}}$$);
INSERT INTO ftt.lt (s, ts, v) VALUES ('a', 1, 1), ('a', 2, 2), ('a', 5, 5), ('a', 3, 3), ('a', 5, 6), ('a', 7, 7);
SELECT id, ts, v, m, l, arrival_seq, late FROM ftt.f_lt ORDER BY id;
SELECT name, rows_processed, late_rows, last_error FROM streamml.feature_tables WHERE name = 'ftt.f_lt';
-- the statistics: rows and late rows since the server started, the last error
-- "late": "error" refuses them
CREATE TABLE ftt.lt2 (s text, ts int, v float8);
SELECT streamml.create_feature_table('ftt.f_lt2', 'ftt.lt2', $${
  "partition_by": "s", "order_by": "ts", "late": "error",
  "features": {"m": {"fn": "mean", "of": "v", "preceding": 2}}}$$);
INSERT INTO ftt.lt2 VALUES ('a', 1, 1), ('a', 2, 2);
INSERT INTO ftt.lt2 VALUES ('a', 1, 1);
INSERT INTO ftt.lt2 VALUES ('b', 1, 1), ('a', 2, 3);
SELECT s, ts, m, arrival_seq FROM ftt.f_lt2 ORDER BY s, arrival_seq;
SELECT last_error FROM streamml.feature_tables WHERE name = 'ftt.f_lt2';

-- Rows a feature cannot place: an ordinary error for INSERT and COPY.
INSERT INTO ftt.lt2 VALUES (NULL, 3, 1);
INSERT INTO ftt.lt2 VALUES ('a', NULL, 1);
SELECT count(*) FROM ftt.lt2;
-- an overflow in a feature is the error the window function gives
CREATE TABLE ftt.big (s text, ts int, v float8);
SELECT streamml.create_feature_table('ftt.f_big', 'ftt.big', $${
  "partition_by": "s", "order_by": "ts",
  "features": {"d": {"fn": "delta", "of": "v"}, "sm": {"fn": "sum", "of": "v", "preceding": 1}}}$$);
INSERT INTO ftt.big VALUES ('a', 1, 1e308), ('a', 2, -1e308);
INSERT INTO ftt.big VALUES ('a', 1, 1e308), ('a', 2, 1e308);
SELECT streamml.rolling_sum(v) OVER (ORDER BY ts ROWS 1 PRECEDING)
FROM (VALUES (1, 1e308::float8), (2, 1e308)) v(ts, v);
INSERT INTO ftt.big VALUES ('a', 1, 1e150), ('a', 2, 1);
SELECT ts, v, d, sm FROM ftt.f_big;

-- Spec errors.
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "mean", "of": "v", "preceding": 1}}, "colour": 1}');
-- a partitioned source: its partitions could lose rows behind the feature table's back
CREATE TABLE ftt.parted (s text, ts timestamptz, v float8) PARTITION BY LIST (s);
SELECT streamml.create_feature_table('ftt.e', 'ftt.parted', '{"order_by": "ts", "features": {"m": {"fn": "mean", "of": "v", "preceding": 1}}}');
DROP TABLE ftt.parted;
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"features": {"m": {"fn": "mean", "of": "v", "preceding": 1}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "s", "features": {"m": {"fn": "mean", "of": "v", "preceding": 1}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "nope", "features": {"m": {"fn": "mean", "of": "v", "preceding": 1}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "median", "of": "v", "preceding": 1}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "mean", "preceding": 1}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "mean", "of": "s", "preceding": 1}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "mean", "of": "v"}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "mean", "of": "v", "preceding": 1, "range": 2}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "mean", "of": "v", "preceding": -1}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "mean", "of": "v", "range": 1.5}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "lag", "of": "v", "preceding": 1}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "ewma", "of": "v"}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "ewma", "of": "v", "alpha": 1}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "ewma", "of": "v", "half_life": "1 minute"}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.trades', '{"order_by": "ts", "features": {"m": {"fn": "mean", "of": "price", "range": "1 month"}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.trades', '{"order_by": "ts", "features": {"m": {"fn": "mean", "of": "price", "range": "soon"}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "lag", "of": "v", "n": 0}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"v": {"fn": "lag", "of": "v"}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"late": {"fn": "lag", "of": "v"}}}');
-- a feature is a column: a name PostgreSQL would truncate is refused
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"arrival_seq_and_a_name_longer_than_sixty_three_bytes_in_all_zz_zz": {"fn": "lag", "of": "v"}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"": {"fn": "lag", "of": "v"}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "late": "drop", "features": {"m": {"fn": "lag", "of": "v"}}}');
SELECT streamml.create_feature_table('ftt.f_lt2', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "lag", "of": "v"}}}');
SELECT streamml.create_feature_table('ftt.e', 'ftt.lt2', '{"order_by": "ts", "features": {"m": {"fn": "lag", "of": "v", "n": 1, "extra": 2}}}');
SELECT streamml.feature_sql('ftt.nope');
SELECT streamml.drop_feature_table('ftt.nope');

-- The view and the catalog.
SELECT name, owner, source, target, rows_processed > 0 AS loaded, late_rows, last_error IS NULL AS ok
FROM streamml.feature_tables ORDER BY name;

-- Dropping one removes its table, its trigger and its catalog row; the
-- source loads on.
SELECT streamml.drop_feature_table('ftt.f_example');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ftt.trades'::regclass;
SELECT to_regclass('ftt.f_example');
INSERT INTO ftt.trades (symbol, ts, price) VALUES ('AAA', '2026-02-01', 1);
SELECT count(*) = (SELECT count(*) FROM ftt.trades) AS complete FROM ftt.f_all;
-- dropping the table itself stops the trigger too, and takes the catalog
-- row along (relations.c)
DROP TABLE ftt.f_all;
INSERT INTO ftt.trades (symbol, ts, price) VALUES ('AAA', '2026-02-02', 1);
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ftt.trades'::regclass;
SELECT streamml.drop_feature_table('ftt.f_all');
SELECT name FROM streamml.feature_tables ORDER BY name;

-- UPDATE and DELETE of source rows.  An UPDATE that changes a column the
-- feature table keeps (partition_by, order_by, the "of" columns, the other
-- kept ones) is refused; others are free.  A DELETE deletes the feature
-- rows too (found by the source's primary key, which must be kept); the
-- rows that arrive after it get the features feature_sql gives over what
-- remains, while the rows already there keep theirs.
CREATE TABLE ftt.ud (id int PRIMARY KEY, s text, ts int, v float8, note text);
SELECT streamml.create_feature_table('ftt.f_ud', 'ftt.ud', $${
  "partition_by": "s", "order_by": "ts", "keep": ["id", "s", "ts", "v"],
  "features": {"m": {"fn": "mean", "of": "v", "preceding": 2},
			   "l": {"fn": "lag", "of": "v"},
			   "e": {"fn": "ewma", "of": "v", "alpha": 0.5},
			   "n": {"fn": "count", "range": 5}}}$$);
INSERT INTO ftt.ud SELECT i, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, i, i * 1.5
FROM generate_series(1, 20) i;
UPDATE ftt.ud SET note = 'checked' WHERE id <= 4;
UPDATE ftt.ud SET v = v, s = s, note = 'same' WHERE id = 3;
UPDATE ftt.ud SET v = 0 WHERE id = 3;
UPDATE ftt.ud SET ts = 100 WHERE id = 3;
UPDATE ftt.ud SET s = 'c' WHERE id = 3;
UPDATE ftt.ud SET id = 300 WHERE id = 3;
UPDATE ftt.ud SET v = 1, ts = 200, note = 'two' WHERE id = 3;
SELECT count(*) FILTER (WHERE note IS NOT NULL) AS noted, sum(v) AS v FROM ftt.ud;
DELETE FROM ftt.ud WHERE id IN (7, 18, 19, 20);
SELECT (SELECT count(*) FROM ftt.f_ud) AS feature_rows, (SELECT count(*) FROM ftt.ud) AS source_rows,
	   (SELECT count(*) FROM ftt.f_ud WHERE id IN (7, 18, 19, 20)) AS deleted_left;
BEGIN;
INSERT INTO ftt.ud SELECT i, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, i, i * 1.5
FROM generate_series(21, 24) i;
DELETE FROM ftt.ud WHERE id = 23;
INSERT INTO ftt.ud SELECT i, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, i, i * 1.5
FROM generate_series(25, 30) i;
COMMIT;
SELECT * FROM ftt.compare('ftt.f_ud', 'id',
	'SELECT * FROM (' || streamml.feature_sql('ftt.f_ud') || ') q WHERE id > 20');
SELECT id, s, arrival_seq, m, l, e, n FROM ftt.f_ud WHERE id > 14 ORDER BY s, arrival_seq;
-- without the primary key kept, or without one, a DELETE is refused
CREATE TABLE ftt.ud2 (id int PRIMARY KEY, s text, ts int, v float8);
SELECT streamml.create_feature_table('ftt.f_ud2', 'ftt.ud2', $${
  "partition_by": "s", "order_by": "ts", "keep": ["s", "ts"], "features": {"l": {"fn": "lag", "of": "v"}}}$$);
INSERT INTO ftt.ud2 VALUES (1, 'a', 1, 1), (2, 'a', 2, 2);
DELETE FROM ftt.ud2 WHERE id = 1;
DELETE FROM ftt.ud2 WHERE id = 100;
CREATE TABLE ftt.ud3 (s text, ts int, v float8);
SELECT streamml.create_feature_table('ftt.f_ud3', 'ftt.ud3', $${
  "partition_by": "s", "order_by": "ts", "features": {"l": {"fn": "lag", "of": "v"}}}$$);
INSERT INTO ftt.ud3 VALUES ('a', 1, 1);
DELETE FROM ftt.ud3;
-- the triggers go with the feature table
SELECT tgname ~ '_(delete|truncate|update)$' AS change_trigger, count(*) FROM pg_trigger
WHERE tgrelid = 'ftt.ud'::regclass GROUP BY 1 ORDER BY 1;
SELECT streamml.drop_feature_table('ftt.f_ud');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ftt.ud'::regclass;
UPDATE ftt.ud SET v = 0 WHERE id = 1;
DELETE FROM ftt.ud;
SELECT streamml.drop_feature_table('ftt.f_ud2');
SELECT streamml.drop_feature_table('ftt.f_ud3');

-- The feature table's own defaults, generated columns, constraints, unique
-- index and triggers apply to the rows the source's statements write into
-- it: in bulk, AFTER ROW and statement triggers (with transition tables)
-- fire as for COPY; with a BEFORE ROW trigger the rows go through INSERT.
CREATE TABLE ftt.w (id int PRIMARY KEY, s text, ts int, v float8);
SELECT streamml.create_feature_table('ftt.f_w', 'ftt.w', $${
  "partition_by": "s", "order_by": "ts", "keep": ["id", "s", "ts", "v"],
  "features": {"l": {"fn": "lag", "of": "v"}}}$$);
ALTER TABLE ftt.f_w ADD COLUMN note text DEFAULT 'new',
	ADD COLUMN l2 float8 GENERATED ALWAYS AS (l * 2) STORED,
	ADD CONSTRAINT l_small CHECK (l < 100);
CREATE TABLE ftt.w_log (what text, n bigint);
CREATE FUNCTION ftt.w_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO ftt.w_log VALUES ('row ' || NEW.id || ' ' || NEW.note, NEW.arrival_seq); RETURN NULL; END $$;
CREATE FUNCTION ftt.w_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO ftt.w_log SELECT 'statement', count(*) FROM new_rows; RETURN NULL; END $$;
CREATE TRIGGER w_row AFTER INSERT ON ftt.f_w FOR EACH ROW EXECUTE FUNCTION ftt.w_row();
CREATE TRIGGER w_stmt AFTER INSERT ON ftt.f_w REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION ftt.w_stmt();
INSERT INTO ftt.w VALUES (1, 'a', 1, 10), (2, 'a', 2, 20), (3, 'b', 1, 30);
SELECT id, arrival_seq, l, note, l2 FROM ftt.f_w ORDER BY id;
-- a row written by hand takes an arrival_seq: the unique index refuses the
-- next row's rather than let a feature go wrong
INSERT INTO ftt.f_w (id, s, ts, v, arrival_seq, late) VALUES (99, 'a', 9, 1, 3, false);
INSERT INTO ftt.w VALUES (6, 'a', 3, 1);
DELETE FROM ftt.f_w WHERE id = 99;
-- a CHECK constraint of the feature table fails the source's statement
INSERT INTO ftt.w VALUES (4, 'b', 2, 500), (5, 'b', 3, 1);
INSERT INTO ftt.w VALUES (6, 'a', 3, 1);
CREATE FUNCTION ftt.w_before() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.note := 'before ' || NEW.id; RETURN NEW; END $$;
CREATE TRIGGER w_before BEFORE INSERT ON ftt.f_w FOR EACH ROW EXECUTE FUNCTION ftt.w_before();
INSERT INTO ftt.w VALUES (7, 'a', 4, 40), (8, 'b', 4, 50);
SELECT id, arrival_seq, l, note, l2 FROM ftt.f_w ORDER BY id;
SELECT * FROM ftt.w_log ORDER BY what;
SELECT streamml.drop_feature_table('ftt.f_w');

-- rows_per_second (src/ratemeter.h, as for streams and scorers): nothing
-- from one statement alone, a rate once a second statement follows, 0
-- three seconds after the last
CREATE TABLE ftt.rate_src (id int PRIMARY KEY, s text, ts int, v float8);
SELECT streamml.create_feature_table('ftt.rate_f', 'ftt.rate_src',
	'{"partition_by": "s", "order_by": "ts", "features": {"m": {"fn": "mean", "of": "v", "preceding": 3}}}');
INSERT INTO ftt.rate_src SELECT i, 'a', i, i FROM generate_series(1, 100) i;
SELECT rows_processed, rows_per_second FROM streamml.feature_tables WHERE target = 'ftt.rate_f'::regclass;
SELECT pg_sleep(0.3);
INSERT INTO ftt.rate_src SELECT i, 'a', i, i FROM generate_series(101, 200) i;
SELECT rows_processed, rows_per_second > 0 AS flowing FROM streamml.feature_tables WHERE target = 'ftt.rate_f'::regclass;
SELECT pg_sleep(3.1);
SELECT rows_per_second FROM streamml.feature_tables WHERE target = 'ftt.rate_f'::regclass;
SELECT streamml.drop_feature_table('ftt.rate_f');

-- The UPDATE trigger function is callable by anyone who makes a trigger
-- with it: as a statement trigger, or without a column list, it refuses
-- (once it read the rows a statement trigger does not have: a crash)
CREATE ROLE ft_nobody;
SET ROLE ft_nobody;
CREATE TEMP TABLE ft_boom (a int);
CREATE TRIGGER t BEFORE UPDATE OF a ON ft_boom FOR EACH STATEMENT
  EXECUTE FUNCTION streamml.feature_table_update_trigger('0', 'x');
UPDATE ft_boom SET a = 2;
DROP TRIGGER t ON ft_boom;
CREATE TRIGGER t BEFORE UPDATE ON ft_boom FOR EACH ROW
  EXECUTE FUNCTION streamml.feature_table_update_trigger('0', 'x');
INSERT INTO ft_boom VALUES (1);
UPDATE ft_boom SET a = 2;
DROP TABLE ft_boom;
RESET ROLE;
DROP ROLE ft_nobody;

-- feature_table_stats() shows a role its own feature tables only
CREATE TABLE ftt.vis_src (id int PRIMARY KEY, s text, ts int, v float8);
SELECT streamml.create_feature_table('ftt.vis_f', 'ftt.vis_src',
	'{"partition_by": "s", "order_by": "ts", "features": {"m": {"fn": "mean", "of": "v", "preceding": 3}}}');
INSERT INTO ftt.vis_src VALUES (1, 'a', 1, 1);
CREATE ROLE ft_peer;
SELECT count(*) > 0 AS superuser_sees FROM streamml.feature_table_stats() WHERE target = 'ftt.vis_f'::regclass;
SET ROLE ft_peer;
SELECT count(*) AS peer_sees FROM streamml.feature_table_stats();
RESET ROLE;
DROP ROLE ft_peer;
SELECT streamml.drop_feature_table('ftt.vis_f');

-- A feature table whose column an ALTER retyped is refused at the next
-- load (its rows are read back by their types: read as another type, they
-- crashed the server or gave wrong features); altered back, it goes on
CREATE TABLE ftt.alt_src (id int, sym text, ts int, price numeric);
SELECT streamml.create_feature_table('ftt.alt_f', 'ftt.alt_src',
	'{"partition_by": "sym", "order_by": "ts", "keep": ["id", "sym", "ts", "price"],
	  "features": {"l1": {"fn": "lag", "of": "price", "n": 1}}}');
INSERT INTO ftt.alt_src SELECT i, 'A', i, i FROM generate_series(1, 10) i;
ALTER TABLE ftt.alt_f ALTER price TYPE float8;
INSERT INTO ftt.alt_src VALUES (11, 'A', 11, 11);
ALTER TABLE ftt.alt_f ALTER price TYPE numeric;
ALTER TABLE ftt.alt_f ALTER arrival_seq TYPE text;
INSERT INTO ftt.alt_src VALUES (11, 'A', 11, 11);
ALTER TABLE ftt.alt_f ALTER arrival_seq TYPE bigint USING arrival_seq::bigint;
ALTER TABLE ftt.alt_f ALTER l1 TYPE real;
INSERT INTO ftt.alt_src VALUES (11, 'A', 11, 11);
ALTER TABLE ftt.alt_f ALTER l1 TYPE float8;
INSERT INTO ftt.alt_src VALUES (11, 'A', 11, 11);
SELECT id, l1 FROM ftt.alt_f ORDER BY id DESC LIMIT 2;
SELECT streamml.drop_feature_table('ftt.alt_f');

-- A trigger on another table that names a feature table is refused before
-- anything is built from its table's columns: a refused load must not leave
-- a definition of the wrong columns cached in the backend (here price and
-- qty swapped), which later loads of the real source would use
CREATE TABLE ftt.own_src (id int, sym text, ts int, price float8, qty float8);
SELECT streamml.create_feature_table('ftt.own_f', 'ftt.own_src',
	'{"partition_by": "sym", "order_by": "ts", "keep": ["id", "sym", "ts", "price", "qty"],
	  "features": {"lag_price": {"fn": "lag", "of": "price", "n": 1}}}');
CREATE TABLE ftt.swapped (id int, sym text, ts int, qty float8, price float8);
DO $$ BEGIN
	EXECUTE (SELECT format('CREATE TRIGGER %I AFTER INSERT ON ftt.swapped REFERENCING NEW TABLE AS streamml_new_rows
		FOR EACH STATEMENT EXECUTE FUNCTION streamml.feature_table_trigger(%L)', trigger_name, name)
	  FROM streamml.feature_tables_catalog WHERE name = 'ftt.own_f');
END $$;
INSERT INTO ftt.swapped VALUES (1, 'C', 1, 5, 6);
INSERT INTO ftt.own_src VALUES (1, 'C', 1, 100, 1), (2, 'C', 2, 200, 2), (3, 'C', 3, 300, 3);
SELECT id, price, qty, lag_price FROM ftt.own_f ORDER BY id;
DROP TABLE ftt.swapped;
SELECT streamml.drop_feature_table('ftt.own_f');
