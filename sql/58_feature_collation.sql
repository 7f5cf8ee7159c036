-- Feature tables: a string partition column whose equality is byte equality
-- is compared under "C" in the feature table's (partition, arrival_seq)
-- index, and the catch-up and rebuild queries match it there; a column of a
-- nondeterministic collation keeps its own equality, in the index and in
-- the queries.  A rolled-back subtransaction makes the next statement
-- rebuild its partitions' states from the feature table: the features after
-- it must still equal feature_sql's window query.
SET extra_float_digits = 0;
CREATE SCHEMA ftc;
CREATE COLLATION ftc.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

-- Equal within 1e-9 relative (NULL = NULL).
CREATE FUNCTION ftc.close(a float8, b float8) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
	SELECT (a IS NULL AND b IS NULL) OR a = b
		OR abs(a - b) <= 1e-9 * greatest(abs(a), abs(b))
$$;

-- Rows of feature table ft and of feature_sql's query over its source:
-- compared, and those where a feature differs.
CREATE FUNCTION ftc.compare(ft text, OUT compared bigint, OUT mismatches bigint)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('SELECT count(*), count(*) FILTER (WHERE NOT (ftc.close(t.l, r.l)
						AND ftc.close(t.m, r.m) AND ftc.close(t.e, r.e)))
					  FROM %s t JOIN (%s) r USING (id)', ft, streamml.feature_sql(ft))
		INTO compared, mismatches;
END $$;

CREATE TABLE ftc.s_text (id int PRIMARY KEY, sym text, ts int, v float8);
CREATE TABLE ftc.s_vc (id int PRIMARY KEY, sym varchar(8), ts int, v float8);
CREATE TABLE ftc.s_bp (id int PRIMARY KEY, sym char(4), ts int, v float8);
CREATE TABLE ftc.s_ci (id int PRIMARY KEY, sym text COLLATE ftc.ci, ts int, v float8);
CREATE TABLE ftc.s_int (id int PRIMARY KEY, sym int, ts int, v float8);
SELECT streamml.create_feature_table('ftc.f_' || t, ('ftc.s_' || t)::regclass,
	'{"partition_by": "sym", "order_by": "ts", "features": {
		"l": {"fn": "lag", "of": "v", "n": 1},
		"m": {"fn": "mean", "of": "v", "preceding": 3},
		"e": {"fn": "ewma", "of": "v", "alpha": 0.5}}}')
  FROM unnest(ARRAY['text', 'vc', 'bp', 'ci', 'int']) t;

-- "C" for text, varchar and char under the database's collation; the
-- nondeterministic collation and the integer as they are
SELECT i.indexrelid::regclass AS index, pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
 WHERE c.relnamespace = 'ftc'::regnamespace AND c.relname LIKE 'f\_%'
 ORDER BY i.indexrelid::regclass::text;

-- 'A' and 'a' are two partitions, one under the case-insensitive collation
CREATE FUNCTION ftc.load(lo int, hi int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO ftc.s_text SELECT i, CASE WHEN i % 3 = 0 THEN 'a' WHEN i % 3 = 1 THEN 'A' ELSE 'b' END, i, i * 1.5 FROM generate_series(lo, hi) i;
	INSERT INTO ftc.s_vc SELECT i, CASE WHEN i % 3 = 0 THEN 'a' WHEN i % 3 = 1 THEN 'A' ELSE 'b' END, i, i * 1.5 FROM generate_series(lo, hi) i;
	INSERT INTO ftc.s_bp SELECT i, CASE WHEN i % 3 = 0 THEN 'a' WHEN i % 3 = 1 THEN 'A' ELSE 'b' END, i, i * 1.5 FROM generate_series(lo, hi) i;
	INSERT INTO ftc.s_ci SELECT i, CASE WHEN i % 3 = 0 THEN 'a' WHEN i % 3 = 1 THEN 'A' ELSE 'b' END, i, i * 1.5 FROM generate_series(lo, hi) i;
	INSERT INTO ftc.s_int SELECT i, i % 3, i, i * 1.5 FROM generate_series(lo, hi) i;
END $$;

BEGIN;
SELECT ftc.load(1, 30);
-- an error rolled back: every cached state is forgotten
SAVEPOINT s;
INSERT INTO ftc.s_ci VALUES (1000, 'A', NULL, 1);
ROLLBACK TO SAVEPOINT s;
-- these rows' states are rebuilt from the feature tables
SELECT ftc.load(31, 60);
COMMIT;
-- a new session rebuilds them too
\c
SET extra_float_digits = 0;
SELECT ftc.load(61, 90);

SELECT t AS source, (ftc.compare('ftc.f_' || t)).* FROM unnest(ARRAY['text', 'vc', 'bp', 'ci', 'int']) t;
-- the case-insensitive partitions: 'A' and 'a' share one arrival_seq
SELECT count(*), max(arrival_seq) FROM ftc.f_ci WHERE sym = 'a';
SELECT sym COLLATE "C", count(*), max(arrival_seq) FROM ftc.f_text GROUP BY 1 ORDER BY 1;

-- a hand-written arrival_seq is still refused under "C"
INSERT INTO ftc.f_text (id, sym, ts, v, arrival_seq, late) VALUES (999, 'A', 999, 1, 30, false);

SELECT streamml.drop_feature_table('ftc.f_' || t) FROM unnest(ARRAY['text', 'vc', 'bp', 'ci', 'int']) t;
DROP SCHEMA ftc CASCADE;
