-- Attacks on the horizon tracker's in-memory join (src/quality/predstash.c,
-- attacker 9).  The join is sound only while every prediction row of a key
-- above the tracker's floor that another writer than the scorer made
-- resets the floor.  Each block below writes such a row without the
-- tracker hearing of it, then loads its key: the in-memory join (table
-- sa_c) must still give the SQL statement's outcomes (twin sa_s, read in
-- SQL because its index is partial).  Expected: "differing" 0 everywhere.
SET client_min_messages = warning;
CREATE TABLE sa_train AS
SELECT i::float8 AS x, 2.0 * i + 1 AS y FROM generate_series(1, 50) i;
SELECT version FROM streamml.train_linreg('sa_m1', 'sa_train', 'y', ARRAY['x']);
SELECT version FROM streamml.train_linreg('sa_m2', 'sa_train', 'y', ARRAY['x'],
	'{"l2": 10}');
CREATE TABLE sa_c (id bigint, sym text, t int, x float8, price float8);
CREATE INDEX ON sa_c (sym COLLATE "C", t);
CREATE TABLE sa_s (id bigint, sym text, t int, x float8, price float8);
CREATE INDEX ON sa_s (sym, t) WHERE sym IS NOT NULL;
SELECT streamml.create_scorer('sa_c_s', 'sa_c', 'sa_m1', '{"key": "id"}');
SELECT streamml.create_scorer('sa_s_s', 'sa_s', 'sa_m1', '{"key": "id"}');
SELECT count(*) FROM (SELECT streamml.track_outcomes(s, t, '{"actual": "price",
	"horizon": 2, "partition_by": "sym", "order_by": "t"}')
  FROM (VALUES ('sa_c_s', 'sa_c'::regclass), ('sa_s_s', 'sa_s'::regclass)) v(s, t)) x;
RESET client_min_messages;
CREATE FUNCTION sa_batch(q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE 'INSERT INTO sa_c ' || q;
	EXECUTE 'INSERT INTO sa_s ' || q;
END
$$;
-- a statement run on both predictions tables (TBL)
CREATE FUNCTION sa_preds(q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE replace(q, 'TBL', 'sa_c_s');
	EXECUTE replace(q, 'TBL', 'sa_s_s');
END
$$;
-- the outcomes of the two tables that differ
CREATE VIEW sa_diff AS
SELECT coalesce(c.key, s.key) AS key, coalesce(c.model, s.model) AS model,
	   c.prediction AS memory, s.prediction AS sql
  FROM (SELECT * FROM streamml.outcomes WHERE scorer = 'sa_c_s') c
  FULL JOIN (SELECT * FROM streamml.outcomes WHERE scorer = 'sa_s_s') s
	ON s.key = c.key AND s.model = c.model AND s.version = c.version
 WHERE c.key IS NULL OR s.key IS NULL OR c.actual IS DISTINCT FROM s.actual
	OR c.prediction IS DISTINCT FROM s.prediction OR c.role IS DISTINCT FROM s.role;
SELECT sa_batch($q$SELECT i, CASE WHEN i % 2 = 0 THEN 'A' ELSE 'B' END, i / 2 + 1,
	i % 10, 100 + i FROM generate_series(1, 101) i$q$);
SELECT count(*) AS differing FROM sa_diff;

-- 1. A row written by hand with the tracker's trigger not firing: under
-- session_replication_role = replica (pg_restore --disable-triggers, a
-- logical replication apply worker), or with the trigger disabled.
SET session_replication_role = replica;
SELECT sa_preds($$INSERT INTO TBL (id, model, version, prediction, scored_at)
	VALUES (300, 'by_hand', 1, 42, now())$$);
RESET session_replication_role;
SELECT sa_preds($$ALTER TABLE TBL DISABLE TRIGGER USER$$);
SELECT sa_preds($$INSERT INTO TBL (id, model, version, prediction, scored_at)
	VALUES (310, 'by_hand', 1, 42, now())$$);
SELECT sa_preds($$ALTER TABLE TBL ENABLE TRIGGER USER$$);
SELECT sa_batch($q$VALUES (300, 'C', 1, 1, 1), (310, 'C', 2, 1, 1), (301, 'C', 5, 1, 2)$q$);
SELECT * FROM sa_diff ORDER BY 1, 2;

-- 2. Another scorer writing into the same predictions table (option
-- "into"): its rows pass for the tracker's scorer's own.
CREATE TABLE sa_xc (id bigint, x float8);
CREATE TABLE sa_xs (id bigint, x float8);
SELECT streamml.create_scorer('sa_xc_s', 'sa_xc', 'sa_m2', '{"key": "id", "into": "sa_c_s"}');
SELECT streamml.create_scorer('sa_xs_s', 'sa_xs', 'sa_m2', '{"key": "id", "into": "sa_s_s"}');
INSERT INTO sa_xc VALUES (400, 1);
INSERT INTO sa_xs VALUES (400, 1);
SELECT sa_batch($q$VALUES (400, 'D', 1, 1, 1), (401, 'D', 5, 1, 2)$q$);
SELECT * FROM sa_diff ORDER BY 1, 2;

-- 3. Rows another trigger on the predictions table writes while the
-- scorer writes: they too pass for the scorer's (the trigger dropped
-- later, the in-memory join is used again).
CREATE FUNCTION sa_shadow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM nt WHERE model <> 'shadow') THEN
		EXECUTE format('INSERT INTO public.%I (id, model, version, prediction, scored_at)
			SELECT id + 1000, ''shadow'', 1, 42, now() FROM nt WHERE model <> ''shadow''',
			TG_TABLE_NAME);
	END IF;
	RETURN NULL;
END
$$;
SELECT sa_preds($$CREATE TRIGGER shadow AFTER INSERT ON TBL REFERENCING NEW TABLE AS nt
	FOR EACH STATEMENT EXECUTE FUNCTION sa_shadow()$$);
SELECT sa_batch($q$VALUES (500, 'E', 1, 1, 1)$q$);
SELECT sa_preds($$DROP TRIGGER shadow ON TBL$$);
SELECT sa_batch($q$VALUES (1500, 'F', 1, 1, 1), (1501, 'F', 5, 1, 2)$q$);
SELECT * FROM sa_diff ORDER BY 1, 2;

-- 4. An ALTER TABLE that rewrites the rows (SET DATA TYPE ... USING)
-- changes a row's model with no UPDATE trigger firing.
SELECT sa_batch($q$VALUES (600, 'G', 1, 1, 1)$q$);
SELECT sa_preds($$ALTER TABLE TBL ALTER COLUMN model TYPE text
	USING CASE WHEN id = 600 THEN 'by_hand' ELSE model END$$);
SELECT sa_batch($q$VALUES (600, 'G', 2, 1, 1), (601, 'G', 5, 1, 2)$q$);
SELECT * FROM sa_diff ORDER BY 1, 2;
