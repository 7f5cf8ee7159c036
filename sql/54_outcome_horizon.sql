-- Horizon mode read in C (src/quality/outcomehorizon.c: one index range
-- scan per partition of a batch) gives the outcomes of the SQL statement
-- (outcomeinsert.c), which runs where the source has no plain (partition_by,
-- order_by) btree index: the same rows are loaded into two tables, one
-- with the index and one with a partial one (which the C path declines and
-- the statement uses), in the same batches, and their outcomes compared.
-- The batches have ties of order_by, NULLs, late rows (older than the
-- partition's newest: relabelled rows are duplicates), a batch starting at
-- the partition's newest order_by, and a second model shadow-scoring.
CREATE TABLE oh_train AS
SELECT i::float8 AS x, 2.0 * i + 1 AS y FROM generate_series(1, 50) i;
SELECT model, version FROM streamml.train_linreg('oh_reg', 'oh_train', 'y', ARRAY['x']);
SELECT model, version FROM streamml.train_linreg('oh_reg2', 'oh_train', 'y', ARRAY['x'],
	'{"l2": 10}');

-- timestamptz order_by, int key
CREATE TABLE oh_c (id int PRIMARY KEY, sym text, ts timestamptz, x float8, price float8);
-- (in COLLATE "C": the C path looks partitions up by equality only, which
-- every deterministic collation decides bytewise)
CREATE INDEX ON oh_c (sym COLLATE "C", ts);
CREATE TABLE oh_s (id int PRIMARY KEY, sym text, ts timestamptz, x float8, price float8);
CREATE INDEX ON oh_s (sym, ts) WHERE sym IS NOT NULL;
SELECT streamml.create_scorer('oh_c_s', 'oh_c', 'oh_reg', '{"challengers": ["oh_reg2"]}');
SELECT streamml.create_scorer('oh_s_s', 'oh_s', 'oh_reg', '{"challengers": ["oh_reg2"]}');
SELECT streamml.track_outcomes(s, t, '{"actual": "price", "horizon": "30 seconds",
	"partition_by": "sym", "order_by": "ts"}')
  FROM (VALUES ('oh_c_s', 'oh_c'::regclass), ('oh_s_s', 'oh_s'::regclass)) v(s, t);

CREATE FUNCTION oh_batch(q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE 'INSERT INTO oh_c ' || q;
	EXECUTE 'INSERT INTO oh_s ' || q;
END
$$;
-- 3 symbols, a tick every 7 s each, some at the same second, a few NULLs
SELECT oh_batch($q$SELECT i, CASE WHEN i % 17 = 0 THEN NULL ELSE 'S' || (i % 3) END,
	'2026-01-01 10:00:00+00'::timestamptz + (i / 6) * interval '7 s',
	i % 10, CASE WHEN i % 11 = 0 THEN NULL ELSE 100 + i END
	FROM generate_series(1, 60) i$q$);
SELECT oh_batch($q$SELECT i, 'S' || (i % 3),
	'2026-01-01 10:00:00+00'::timestamptz + (i / 6) * interval '7 s',
	i % 10, 100 + i FROM generate_series(61, 90) i$q$);
-- late rows: older than the newest of their partition
SELECT oh_batch($q$SELECT i, 'S' || (i % 3),
	'2026-01-01 10:00:00+00'::timestamptz + ((i - 60) / 6) * interval '7 s' + interval '3 s',
	i % 10, 500 + i FROM generate_series(91, 99) i$q$);
-- a batch starting at the partitions' newest order_by
SELECT oh_batch($q$SELECT i, 'S' || (i % 3),
	'2026-01-01 10:00:00+00'::timestamptz + ((i - 10) / 6) * interval '7 s',
	i % 10, 700 + i FROM generate_series(100, 140) i$q$);
-- a NULL order_by, a new partition
SELECT oh_batch($q$VALUES (141, 'S1', NULL, 1, 1), (142, 'S9', '2026-01-01 10:00:00+00', 1, 1),
	(143, 'S9', '2026-01-01 10:01:00+00', 1, 2)$q$);

SELECT s.scorer, count(*) AS outcomes, count(DISTINCT s.key) AS keys,
	   (SELECT sum(labelled) FROM streamml.live_metrics m
		 WHERE m.scorer = s.scorer AND m.group_key IS NULL) AS labelled,
	   (SELECT sum(duplicates) FROM streamml.quality_buckets b
		  JOIN streamml.outcome_trackers t ON t.id = b.tracker
		 WHERE t.scorer = s.scorer) AS duplicates
  FROM streamml.outcomes s WHERE s.scorer IN ('oh_c_s', 'oh_s_s')
 GROUP BY 1 ORDER BY 1;
-- the same outcomes, key by key and model by model
SELECT count(*) AS compared,
	   count(*) FILTER (WHERE c.key IS NULL OR s.key IS NULL
						OR c.actual IS DISTINCT FROM s.actual
						OR c.prediction IS DISTINCT FROM s.prediction
						OR c.loss IS DISTINCT FROM s.loss
						OR c.role IS DISTINCT FROM s.role
						OR c.key_hash IS DISTINCT FROM s.key_hash) AS differing
  FROM (SELECT * FROM streamml.outcomes WHERE scorer = 'oh_c_s') c
  FULL JOIN (SELECT * FROM streamml.outcomes WHERE scorer = 'oh_s_s') s
	ON s.key = c.key AND s.model = c.model AND s.version = c.version;
-- key_hash: the key itself for one integer key
SELECT count(*) FILTER (WHERE key_hash <> (key->>'id')::bigint) AS not_the_key
  FROM streamml.outcomes WHERE scorer = 'oh_c_s';

-- bigint order_by, text key, a numeric actual
CREATE TABLE oh_ci (k text PRIMARY KEY, sym int, n bigint, x float8, v numeric);
CREATE INDEX ON oh_ci (sym, n);
CREATE TABLE oh_si (k text PRIMARY KEY, sym int, n bigint, x float8, v numeric);
CREATE INDEX ON oh_si (sym, n) WHERE sym IS NOT NULL;
SELECT streamml.create_scorer('oh_ci_s', 'oh_ci', 'oh_reg', '{"key": "k"}');
SELECT streamml.create_scorer('oh_si_s', 'oh_si', 'oh_reg', '{"key": "k"}');
SELECT streamml.track_outcomes(s, t, '{"actual": "v", "horizon": 5,
	"partition_by": "sym", "order_by": "n"}')
  FROM (VALUES ('oh_ci_s', 'oh_ci'::regclass), ('oh_si_s', 'oh_si'::regclass)) v(s, t);
CREATE FUNCTION oh_batch_i(q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE 'INSERT INTO oh_ci ' || q;
	EXECUTE 'INSERT INTO oh_si ' || q;
END
$$;
SELECT oh_batch_i($q$SELECT 'k' || i, i % 4, i / 2, i % 7, i * 1.5 FROM generate_series(1, 40) i$q$);
SELECT oh_batch_i($q$SELECT 'k' || i, i % 4, i / 2, i % 7, i * 1.5 FROM generate_series(41, 70) i$q$);
SELECT oh_batch_i($q$SELECT 'k' || i, i % 4, (i - 30) / 2, i % 7, i * 1.5 FROM generate_series(71, 80) i$q$);
SELECT s.scorer, count(*) AS outcomes FROM streamml.outcomes s
 WHERE s.scorer IN ('oh_ci_s', 'oh_si_s') GROUP BY 1 ORDER BY 1;
SELECT count(*) AS compared,
	   count(*) FILTER (WHERE c.key IS NULL OR s.key IS NULL
						OR c.actual IS DISTINCT FROM s.actual
						OR c.loss IS DISTINCT FROM s.loss
						OR c.key_hash IS DISTINCT FROM s.key_hash) AS differing
  FROM (SELECT * FROM streamml.outcomes WHERE scorer = 'oh_ci_s') c
  FULL JOIN (SELECT * FROM streamml.outcomes WHERE scorer = 'oh_si_s') s
	ON s.key = c.key AND s.model = c.model AND s.version = c.version;

-- A float8 order_by with NaN: SQL sorts NaN above every number; a batch
-- holding one is read by the SQL statement, and both tables agree
CREATE TABLE oh_cf (id bigint PRIMARY KEY, sym text, ts float8, x float8, price float8);
CREATE INDEX ON oh_cf (sym, ts);
CREATE TABLE oh_sf (LIKE oh_cf INCLUDING DEFAULTS);
ALTER TABLE oh_sf ADD PRIMARY KEY (id);
CREATE INDEX ON oh_sf (sym, ts) WHERE sym IS NOT NULL;
SELECT streamml.create_scorer(t || '_s', t, 'oh_reg') FROM unnest(ARRAY['oh_cf', 'oh_sf']) t;
SELECT streamml.track_outcomes(t || '_s', t::regclass,
	'{"actual": "price", "horizon": 1.5, "partition_by": "sym", "order_by": "ts"}')
  FROM unnest(ARRAY['oh_cf', 'oh_sf']) t;
INSERT INTO oh_cf SELECT i, 'A', i, 1, 100 + i FROM generate_series(1, 10) i;
INSERT INTO oh_sf SELECT i, 'A', i, 1, 100 + i FROM generate_series(1, 10) i;
INSERT INTO oh_cf VALUES (11, 'A', 'NaN', 1, 111), (12, 'A', 12, 1, 112), (13, 'B', 1, 1, 5);
INSERT INTO oh_sf VALUES (11, 'A', 'NaN', 1, 111), (12, 'A', 12, 1, 112), (13, 'B', 1, 1, 5);
INSERT INTO oh_cf SELECT i, 'A', i, 1, 100 + i FROM generate_series(14, 18) i;
INSERT INTO oh_sf SELECT i, 'A', i, 1, 100 + i FROM generate_series(14, 18) i;
SELECT count(*) AS outcomes,
	   count(*) FILTER (WHERE c.actual IS NOT DISTINCT FROM s.actual) AS same
  FROM (SELECT key, actual FROM streamml.outcomes WHERE scorer = 'oh_cf_s') c
  FULL JOIN (SELECT key, actual FROM streamml.outcomes WHERE scorer = 'oh_sf_s') s USING (key);
-- an infinite order_by, or one the horizon is lost on (1e17 + 3 = 1e17),
-- is not its own label: the label is after the row, on both paths
INSERT INTO oh_cf VALUES (21, 'C', 1, 1, 1), (22, 'C', 5, 1, 2), (23, 'C', 'Infinity', 1, 3), (24, 'C', 6, 1, 4);
INSERT INTO oh_sf VALUES (21, 'C', 1, 1, 1), (22, 'C', 5, 1, 2), (23, 'C', 'Infinity', 1, 3), (24, 'C', 6, 1, 4);
INSERT INTO oh_cf VALUES (25, 'C', 10, 1, 5), (26, 'C', 'Infinity', 1, 6), (27, 'C', 1e17, 1, 7), (28, 'C', 1e17 + 16, 1, 8);
INSERT INTO oh_sf VALUES (25, 'C', 10, 1, 5), (26, 'C', 'Infinity', 1, 6), (27, 'C', 1e17, 1, 7), (28, 'C', 1e17 + 16, 1, 8);
SELECT c.key->>'id' AS id, c.actual AS c_path, s.actual AS sql_path
  FROM (SELECT key, actual FROM streamml.outcomes WHERE scorer = 'oh_cf_s') c
  FULL JOIN (SELECT key, actual FROM streamml.outcomes WHERE scorer = 'oh_sf_s') s USING (key)
 WHERE (COALESCE(c.key, s.key)->>'id')::int > 20 ORDER BY 1;
SELECT streamml.untrack_outcomes(s) FROM unnest(ARRAY['oh_cf_s', 'oh_sf_s']) s;
SELECT streamml.drop_scorer(s) FROM unnest(ARRAY['oh_cf_s', 'oh_sf_s']) s;
DROP TABLE oh_cf, oh_sf;

SELECT streamml.untrack_outcomes(s) FROM unnest(ARRAY['oh_c_s', 'oh_s_s', 'oh_ci_s', 'oh_si_s']) s;
SELECT streamml.drop_scorer(s) FROM unnest(ARRAY['oh_c_s', 'oh_s_s', 'oh_ci_s', 'oh_si_s']) s;
DROP TABLE oh_c, oh_s, oh_ci, oh_si, oh_train;
DROP FUNCTION oh_batch(text);
DROP FUNCTION oh_batch_i(text);
