-- Horizon mode on a feature table read by the feature table's own
-- (partition, arrival_seq) index (src/quality/outcomehorizon.c,
-- LabelPartitionBySeq: the late flags order a partition's rows enough)
-- gives the outcomes of the SQL statement (outcomeinsert.c).  Each source
-- feeds a feature table (no (partition_by, order_by) index: the new path);
-- after each statement its new feature rows are copied, in the order of
-- their heap tuples, into a plain table with only a partial index, which
-- every C path declines and the statement reads.  The same scorer model
-- scores both, and the outcomes are compared key by key.  The batches have
-- ties of order_by, late rows ("late": "null"), deletes in between (of
-- rows that late rows were late behind, too), several partitions, text and
-- integer partitions, timestamptz, bigint and float8 order_by.
CREATE TABLE fs_train AS
SELECT i::float8 AS x, 2.0 * i + 1 AS y FROM generate_series(1, 50) i;
SELECT model, version FROM streamml.train_linreg('fs_reg', 'fs_train', 'y', ARRAY['x']);

-- a batch into source src, then its new feature rows into the plain table
CREATE FUNCTION fs_batch(src text, q text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	cols text;
BEGIN
	EXECUTE format('INSERT INTO %I %s', src, q);
	SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
	  FROM pg_attribute WHERE attrelid = (src || '_p')::regclass AND attnum > 0
	   AND NOT attisdropped;
	EXECUTE format('INSERT INTO %I SELECT %s FROM %I f WHERE NOT EXISTS '
				   '(SELECT FROM %I p WHERE p.id = f.id) ORDER BY f.ctid',
				   src || '_p', cols, src || '_f', src || '_p');
END
$$;
-- the same delete from both
CREATE FUNCTION fs_delete(src text, cond text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('DELETE FROM %I WHERE %s', src, cond);
	EXECUTE format('DELETE FROM %I WHERE %s', src || '_p', cond);
END
$$;
-- outcomes of the two trackers, compared
CREATE FUNCTION fs_compare(src text, OUT outcomes bigint, OUT compared bigint,
						   OUT differing bigint) LANGUAGE sql AS $$
SELECT (SELECT count(*) FROM streamml.outcomes WHERE scorer = src || '_fs'),
	   count(*),
	   count(*) FILTER (WHERE c.key IS NULL OR s.key IS NULL
						OR c.actual IS DISTINCT FROM s.actual
						OR c.prediction IS DISTINCT FROM s.prediction
						OR c.loss IS DISTINCT FROM s.loss
						OR c.key_hash IS DISTINCT FROM s.key_hash)
  FROM (SELECT * FROM streamml.outcomes WHERE scorer = src || '_fs') c
  FULL JOIN (SELECT * FROM streamml.outcomes WHERE scorer = src || '_ps') s
	ON s.key = c.key AND s.model = c.model AND s.version = c.version
$$;

-- timestamptz order_by, text partitions, int key
CREATE TABLE fs_a (id int PRIMARY KEY, sym text, ts timestamptz, x float8, price float8);
SELECT streamml.create_feature_table('fs_a_f', 'fs_a', '{"partition_by": "sym",
	"order_by": "ts", "late": "null", "features": {"l": {"fn": "lag", "of": "price"}}}');
CREATE TABLE fs_a_p (id int PRIMARY KEY, sym text, ts timestamptz, x float8, price float8);
CREATE INDEX ON fs_a_p (sym, ts) WHERE sym IS NOT NULL;
SELECT streamml.create_scorer('fs_a_fs', 'fs_a_f', 'fs_reg', '{"key": "id"}');
SELECT streamml.create_scorer('fs_a_ps', 'fs_a_p', 'fs_reg');
-- no warning for the feature table: its own index serves
SELECT streamml.track_outcomes('fs_a_fs', 'fs_a_f', '{"actual": "price",
	"horizon": "30 seconds", "partition_by": "sym", "order_by": "ts"}');
SELECT streamml.track_outcomes('fs_a_ps', 'fs_a_p', '{"actual": "price",
	"horizon": "30 seconds", "partition_by": "sym", "order_by": "ts"}');
-- 3 symbols, two ticks of each at the same second, some prices NULL
SELECT fs_batch('fs_a', $q$SELECT i, 'S' || (i % 3),
	'2026-01-01 10:00:00+00'::timestamptz + (i / 6) * interval '7 s',
	i % 10, CASE WHEN i % 11 = 0 THEN NULL ELSE 100 + i END
	FROM generate_series(1, 60) i$q$);
SELECT fs_batch('fs_a', $q$SELECT i, 'S' || (i % 3),
	'2026-01-01 10:00:00+00'::timestamptz + (i / 6) * interval '7 s',
	i % 10, 100 + i FROM generate_series(61, 90) i$q$);
-- late rows: older than the newest of their partition
SELECT fs_batch('fs_a', $q$SELECT i, 'S' || (i % 3),
	'2026-01-01 10:00:00+00'::timestamptz + ((i - 60) / 6) * interval '7 s' + interval '3 s',
	i % 10, 500 + i FROM generate_series(91, 99) i$q$);
SELECT count(*) FILTER (WHERE late) AS late, count(*) AS rows FROM fs_a_f;
-- a batch starting at the partitions' newest order_by, mixed with late rows
SELECT fs_batch('fs_a', $q$SELECT i, 'S' || (i % 3),
	'2026-01-01 10:00:00+00'::timestamptz + ((i - 10 - (i % 4) * 30) / 6) * interval '7 s',
	i % 10, 700 + i FROM generate_series(100, 140) i$q$);
-- deletes: rows in the middle, and the newest rows of S0 before the batch
SELECT fs_delete('fs_a', 'id IN (30, 33, 47, 84, 87, 90, 120)');
SELECT fs_batch('fs_a', $q$SELECT i, 'S' || (i % 3),
	'2026-01-01 10:00:00+00'::timestamptz + ((i - 40) / 6) * interval '7 s',
	i % 10, 900 + i FROM generate_series(141, 200) i$q$);
-- a new partition, one row at a time
SELECT fs_batch('fs_a', $q$VALUES (201, 'S9', '2026-01-01 10:00:00+00', 1, 1)$q$);
SELECT fs_batch('fs_a', $q$VALUES (202, 'S9', '2026-01-01 10:00:30+00', 1, 2)$q$);
SELECT fs_batch('fs_a', $q$VALUES (203, 'S9', '2026-01-01 10:00:30+00', 1, 3)$q$);
SELECT fs_batch('fs_a', $q$VALUES (204, 'S9', '2026-01-01 10:01:00+00', 1, 4)$q$);
SELECT count(*) FILTER (WHERE late) AS late, count(*) AS rows FROM fs_a_f;
SELECT * FROM fs_compare('fs_a');

-- A row below a late row left by a delete is late too: the feature
-- table's partition keeps every row before a row that is not late at
-- or below its order_by
SELECT fs_batch('fs_a', $q$VALUES (301, 'D', '2026-01-01 10:00:05+00', 1, 1),
	(302, 'D', '2026-01-01 10:00:10+00', 1, 2)$q$);
SELECT fs_batch('fs_a', $q$VALUES (303, 'D', '2026-01-01 10:00:07+00', 1, 3)$q$);
SELECT fs_delete('fs_a', 'id = 302');
SELECT fs_batch('fs_a', $q$VALUES (304, 'D', '2026-01-01 10:00:06+00', 1, 4),
	(305, 'D', '2026-01-01 10:00:40+00', 1, 5)$q$);
SELECT id, ts, late FROM fs_a_f WHERE sym = 'D' ORDER BY arrival_seq;
SELECT * FROM fs_compare('fs_a');
-- timestamps beyond 2^53 microseconds from 2000, which the feature trigger
-- compares inexactly as float8: such a batch is read by the SQL statement
SELECT fs_batch('fs_a', $q$SELECT 400 + i, 'F', '2400-01-01 00:00:00+00'::timestamptz
	+ (i / 2) * interval '10 s', 1, i FROM generate_series(1, 10) i$q$);
SELECT fs_batch('fs_a', $q$SELECT 400 + i, 'F', '2400-01-01 00:00:00+00'::timestamptz
	+ (i / 2) * interval '10 s', 1, i FROM generate_series(11, 20) i$q$);
SELECT * FROM fs_compare('fs_a');

-- bigint order_by, integer partitions, text key, a numeric actual
CREATE TABLE fs_b (id int PRIMARY KEY, k text, sym int, n bigint, x float8, v numeric);
SELECT streamml.create_feature_table('fs_b_f', 'fs_b', '{"partition_by": "sym",
	"order_by": "n", "features": {"m": {"fn": "mean", "of": "x", "preceding": 3}}}');
CREATE TABLE fs_b_p (id int PRIMARY KEY, k text, sym int, n bigint, x float8, v numeric);
CREATE INDEX ON fs_b_p (sym, n) WHERE sym IS NOT NULL;
SELECT streamml.create_scorer('fs_b_fs', 'fs_b_f', 'fs_reg', '{"key": "k"}');
SELECT streamml.create_scorer('fs_b_ps', 'fs_b_p', 'fs_reg', '{"key": "k"}');
SELECT streamml.track_outcomes(s, t, '{"actual": "v", "horizon": 5,
	"partition_by": "sym", "order_by": "n"}')
  FROM (VALUES ('fs_b_fs', 'fs_b_f'::regclass), ('fs_b_ps', 'fs_b_p'::regclass)) v(s, t);
SELECT fs_batch('fs_b', $q$SELECT i, 'k' || i, i % 4, i / 2, i % 7, i * 1.5
	FROM generate_series(1, 40) i$q$);
SELECT fs_batch('fs_b', $q$SELECT i, 'k' || i, i % 4, i / 2, i % 7, i * 1.5
	FROM generate_series(41, 70) i$q$);
SELECT fs_batch('fs_b', $q$SELECT i, 'k' || i, i % 4, (i - 30) / 2, i % 7, i * 1.5
	FROM generate_series(71, 80) i$q$);
SELECT fs_delete('fs_b', 'id BETWEEN 61 AND 70');
SELECT fs_batch('fs_b', $q$SELECT i, 'k' || i, i % 4, (i - 40) / 2, i % 7, i * 1.5
	FROM generate_series(81, 120) i$q$);
SELECT count(*) FILTER (WHERE late) AS late, count(*) AS rows FROM fs_b_f;
SELECT * FROM fs_compare('fs_b');

-- float8 order_by, a horizon between ticks, equal order_by across batches
CREATE TABLE fs_c (id bigint PRIMARY KEY, sym text, ts float8, x float8, price float8);
SELECT streamml.create_feature_table('fs_c_f', 'fs_c', '{"partition_by": "sym",
	"order_by": "ts", "late": "null", "features": {"l": {"fn": "lag", "of": "price"}}}');
CREATE TABLE fs_c_p (id bigint PRIMARY KEY, sym text, ts float8, x float8, price float8);
CREATE INDEX ON fs_c_p (sym, ts) WHERE sym IS NOT NULL;
SELECT streamml.create_scorer('fs_c_fs', 'fs_c_f', 'fs_reg', '{"key": "id"}');
SELECT streamml.create_scorer('fs_c_ps', 'fs_c_p', 'fs_reg');
SELECT streamml.track_outcomes(s, t, '{"actual": "price", "horizon": 1.5,
	"partition_by": "sym", "order_by": "ts"}')
  FROM (VALUES ('fs_c_fs', 'fs_c_f'::regclass), ('fs_c_ps', 'fs_c_p'::regclass)) v(s, t);
SELECT fs_batch('fs_c', $q$SELECT i, 'A' || (i % 2), i / 3, 1, 100 + i
	FROM generate_series(1, 30) i$q$);
SELECT fs_batch('fs_c', $q$SELECT i, 'A' || (i % 2), 10 - (i % 5) * 0.5, 1, 100 + i
	FROM generate_series(31, 40) i$q$);
SELECT fs_batch('fs_c', $q$SELECT i, 'A' || (i % 2), 9 + (i - 40) / 4.0, 1, 100 + i
	FROM generate_series(41, 60) i$q$);
SELECT fs_delete('fs_c', 'id % 7 = 0');
SELECT fs_batch('fs_c', $q$SELECT i, 'A' || (i % 2), 14 + (i - 60) / 4.0, 1, 100 + i
	FROM generate_series(61, 80) i$q$);
SELECT count(*) FILTER (WHERE late) AS late, count(*) AS rows FROM fs_c_f;
SELECT * FROM fs_compare('fs_c');
-- keys 50 apart over a span of more than 4,096 (a run of the predictions'
-- index read without its upper bound), then the keys between them, whose
-- range steps over the first ones' entries
SELECT fs_batch('fs_c', $q$SELECT 100000 + 50 * i, 'B' || (i % 2), 20 + i / 4.0, 1, 100 + i
	FROM generate_series(1, 200) i$q$);
SELECT fs_batch('fs_c', $q$SELECT 100025 + 50 * i, 'B' || (i % 2), 70 + i / 4.0, 1, 300 + i
	FROM generate_series(1, 200) i$q$);
SELECT fs_batch('fs_c', $q$SELECT 100030 + 50 * i, 'B' || (i % 2), 120 + i / 4.0, 1, 500 + i
	FROM generate_series(1, 100) i$q$);
SELECT * FROM fs_compare('fs_c');

-- a tracker ordered by another column than its feature table: it warns
-- (the feature table's index does not serve it)
CREATE TABLE fs_d (id int PRIMARY KEY, sym text, ts timestamptz, n int, x float8, price float8);
SELECT streamml.create_feature_table('fs_d_f', 'fs_d', '{"partition_by": "sym",
	"order_by": "ts", "features": {"l": {"fn": "lag", "of": "price"}}}');
SELECT streamml.create_scorer('fs_d_fs', 'fs_d_f', 'fs_reg', '{"key": "id"}');
SELECT streamml.track_outcomes('fs_d_fs', 'fs_d_f', '{"actual": "price",
	"horizon": 3, "partition_by": "sym", "order_by": "n"}');
SELECT streamml.untrack_outcomes('fs_d_fs');
SELECT streamml.drop_scorer('fs_d_fs');
SELECT streamml.drop_feature_table('fs_d_f');

SELECT streamml.untrack_outcomes(s || '_' || k || 's'), streamml.drop_scorer(s || '_' || k || 's')
  FROM unnest(ARRAY['fs_a', 'fs_b', 'fs_c']) s, unnest(ARRAY['f', 'p']) k;
SELECT streamml.drop_feature_table(s || '_f') FROM unnest(ARRAY['fs_a', 'fs_b', 'fs_c']) s;
DROP TABLE fs_a, fs_a_p, fs_b, fs_b_p, fs_c, fs_c_p, fs_d, fs_train;
DROP FUNCTION fs_batch(text, text);
DROP FUNCTION fs_delete(text, text);
DROP FUNCTION fs_compare(text);
