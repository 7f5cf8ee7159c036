-- TRUNCATE of a feature table's source truncates the feature table in the
-- same transaction (an AFTER TRUNCATE statement trigger): the partitions
-- start over, arrival_seq from 1, and the features of the rows loaded next
-- are what feature_sql gives over the new rows alone.  A rolled-back
-- TRUNCATE leaves both as they were.  A scorer's predictions are history
-- and stay.
SET extra_float_digits = 0;
CREATE SCHEMA ftr;

-- rows compared with feature_sql's query, and the mismatches among them
CREATE FUNCTION ftr.mismatches(ft text) RETURNS TABLE (compared bigint, mismatches bigint)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE format(
		'SELECT count(*), count(*) FILTER (WHERE (t.l, t.m, t.n) IS DISTINCT FROM (r.l, r.m, r.n))
		   FROM %s t JOIN (%s) r USING (id)', ft, streamml.feature_sql(ft));
END $$;

CREATE TABLE ftr.src (id int PRIMARY KEY, s text, ts int, v float8);
SELECT streamml.create_feature_table('ftr.f', 'ftr.src', $${
  "partition_by": "s", "order_by": "ts", "keep": ["id", "s", "ts", "v"],
  "features": {"l": {"fn": "lag", "of": "v"},
			   "m": {"fn": "mean", "of": "v", "preceding": 3},
			   "n": {"fn": "count", "range": 10}}}$$);
SELECT tgname ~ '_truncate$' AS truncate_trigger, count(*) FROM pg_trigger
WHERE tgrelid = 'ftr.src'::regclass GROUP BY 1 ORDER BY 1;
INSERT INTO ftr.src SELECT i, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, i, i * 1.5
FROM generate_series(1, 20) i;
SELECT count(*) AS feature_rows, max(arrival_seq) AS max_seq FROM ftr.f;

-- a rolled-back TRUNCATE: nothing changes, the states go on from row 20
BEGIN;
TRUNCATE ftr.src;
SELECT count(*) AS feature_rows_inside FROM ftr.f;
ROLLBACK;
INSERT INTO ftr.src VALUES (21, 'b', 21, 31.5), (22, 'a', 22, 33);
SELECT id, s, arrival_seq, l, m, n FROM ftr.f WHERE id > 18 ORDER BY id;
SELECT * FROM ftr.mismatches('ftr.f');

-- TRUNCATE the source: the feature table is empty in the same transaction
TRUNCATE ftr.src;
SELECT (SELECT count(*) FROM ftr.src) AS source_rows, (SELECT count(*) FROM ftr.f) AS feature_rows;
-- the rows loaded next start their partitions over (no lag from before)
INSERT INTO ftr.src SELECT i, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, i, i * 2.0
FROM generate_series(101, 106) i;
SELECT id, s, arrival_seq, l, m, n FROM ftr.f ORDER BY id;
SELECT * FROM ftr.mismatches('ftr.f');

-- inserts, TRUNCATE and inserts in one transaction (this backend forgets
-- its states at once), then a table created and truncated in the same
-- transaction, which PostgreSQL truncates in place
BEGIN;
INSERT INTO ftr.src VALUES (107, 'b', 107, 1);
TRUNCATE ftr.src;
INSERT INTO ftr.src VALUES (201, 'a', 201, 5), (202, 'a', 202, 7), (203, 'b', 203, 9);
COMMIT;
SELECT id, s, arrival_seq, l, m, n FROM ftr.f ORDER BY id;
BEGIN;
CREATE TABLE ftr.src2 (id int PRIMARY KEY, s text, ts int, v float8);
SELECT streamml.create_feature_table('ftr.f2', 'ftr.src2', $${
  "partition_by": "s", "order_by": "ts", "keep": ["id", "s", "ts", "v"],
  "features": {"l": {"fn": "lag", "of": "v"},
			   "m": {"fn": "mean", "of": "v", "preceding": 3},
			   "n": {"fn": "count", "range": 10}}}$$);
INSERT INTO ftr.src2 VALUES (1, 'a', 1, 10), (2, 'a', 2, 20);
TRUNCATE ftr.src2;
INSERT INTO ftr.src2 VALUES (3, 'a', 3, 30), (4, 'a', 4, 40);
COMMIT;
SELECT id, s, arrival_seq, l, m, n FROM ftr.f2 ORDER BY id;
SELECT * FROM ftr.mismatches('ftr.f2');

-- a scorer on the feature table: TRUNCATE of the source empties the
-- features, the predictions stay (the scorer's table is the user's history)
CREATE TABLE ftr.train AS
SELECT i AS id, sin(i)::float8 AS l, cos(i)::float8 AS m, (sin(i) + cos(i * 1.3)) > 0 AS y
  FROM generate_series(1, 300) i;
SELECT version FROM streamml.train_logreg('ftr_model', 'ftr.train', 'y', ARRAY['l', 'm']);
SELECT streamml.create_scorer('ftr_scorer', 'ftr.f', 'ftr_model',
	'{"into": "ftr.preds", "key": "id"}') IS NOT NULL AS created;
INSERT INTO ftr.src VALUES (301, 'a', 301, 1), (302, 'a', 302, 2), (303, 'a', 303, 4);
SELECT count(*) AS predictions, count(prediction) AS scored FROM ftr.preds;
TRUNCATE ftr.src;
SELECT (SELECT count(*) FROM ftr.f) AS feature_rows, (SELECT count(*) FROM ftr.preds) AS predictions;
INSERT INTO ftr.src VALUES (401, 'a', 401, 1), (402, 'a', 402, 3);
SELECT id, arrival_seq, l, m FROM ftr.f ORDER BY id;
SELECT id, prediction IS NULL AS unscorable FROM ftr.preds ORDER BY id;

-- drop_feature_table drops the TRUNCATE trigger with the others; the
-- source truncates alone
SELECT streamml.drop_scorer('ftr_scorer');
SELECT streamml.drop_feature_table('ftr.f');
SELECT streamml.drop_feature_table('ftr.f2');
SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('ftr.src'::regclass, 'ftr.src2'::regclass);
TRUNCATE ftr.src, ftr.src2;
DROP SCHEMA ftr CASCADE;
SELECT streamml.drop_model('ftr_model');
