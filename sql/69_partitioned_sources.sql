-- A scorer or outcome tracker on a partitioned table sees the rows of
-- every statement that inserts into it, whichever table the statement
-- names: the parent, a partition, a partition of a partition, one created
-- or attached later (src/partitions.c).  A detached partition is no longer
-- watched.
CREATE TABLE ps_train AS SELECT i::float8 AS x, 2.0 * i + 1 AS y FROM generate_series(1, 50) i;
SELECT version FROM streamml.train_linreg('ps_m', 'ps_train', 'y', ARRAY['x']);
CREATE TABLE ps_src (id int, ts int, x float8) PARTITION BY RANGE (ts);
CREATE TABLE ps_src_1 PARTITION OF ps_src FOR VALUES FROM (0) TO (100);
CREATE TABLE ps_src_2 PARTITION OF ps_src FOR VALUES FROM (100) TO (200)
	PARTITION BY RANGE (ts);
CREATE TABLE ps_src_2a PARTITION OF ps_src_2 FOR VALUES FROM (100) TO (150);
CREATE TABLE ps_src_2b PARTITION OF ps_src_2 FOR VALUES FROM (150) TO (200);
SELECT streamml.create_scorer('ps_s', 'ps_src', 'ps_m', '{"key": ["id", "ts"], "into": "ps_p"}');
SELECT c.relname, count(t.tgname) AS triggers
  FROM pg_class c LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname LIKE 'streamml_scorer_%'
 WHERE c.relname LIKE 'ps_src%' GROUP BY 1 ORDER BY 1;

-- through the parent (its trigger only: each row once), then each level
INSERT INTO ps_src VALUES (1, 10, 1), (2, 120, 2), (3, 170, 3);
INSERT INTO ps_src_1 VALUES (4, 20, 4);
INSERT INTO ps_src_2 VALUES (5, 110, 5);
INSERT INTO ps_src_2b VALUES (6, 160, 6);
COPY ps_src_2a FROM STDIN;
7	130	7
\.
SELECT id, ts, prediction FROM ps_p ORDER BY id;

-- partitions made or attached later are watched; a detached one is not
CREATE TABLE ps_src_3 PARTITION OF ps_src FOR VALUES FROM (200) TO (300);
CREATE TABLE ps_src_4 (id int, ts int, x float8);
ALTER TABLE ps_src ATTACH PARTITION ps_src_4 FOR VALUES FROM (300) TO (400);
INSERT INTO ps_src_3 VALUES (8, 250, 8);
INSERT INTO ps_src_4 VALUES (9, 350, 9);
ALTER TABLE ps_src DETACH PARTITION ps_src_1;
INSERT INTO ps_src_1 VALUES (10, 30, 10);
SELECT id, ts FROM ps_p WHERE id >= 8 ORDER BY id;
SELECT c.relname, count(t.tgname) AS triggers
  FROM pg_class c LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname LIKE 'streamml_scorer_%'
 WHERE c.relname LIKE 'ps_src%' GROUP BY 1 ORDER BY 1;

-- CREATE SCHEMA's partitions too; a foreign partition cannot be watched
-- (no transition tables): refused, and so is attaching a table that is
-- itself watched (rows inserted through the parent would be missed)
CREATE SCHEMA ps_schema CREATE TABLE ps_src_5 PARTITION OF public.ps_src FOR VALUES FROM (400) TO (500);
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'ps_schema.ps_src_5'::regclass
   AND tgname LIKE 'streamml_scorer_%';
CREATE FOREIGN DATA WRAPPER ps_fdw;
CREATE SERVER ps_server FOREIGN DATA WRAPPER ps_fdw;
CREATE FOREIGN TABLE ps_src_f PARTITION OF ps_src FOR VALUES FROM (500) TO (600) SERVER ps_server;
CREATE TABLE ps_watched (id int, ts int, x float8);
SELECT streamml.create_scorer('ps_w', 'ps_watched', 'ps_m', '{"key": ["id", "ts"], "into": "ps_wp"}');
ALTER TABLE ps_src ATTACH PARTITION ps_watched FOR VALUES FROM (600) TO (700);
SELECT streamml.drop_scorer('ps_w');
DROP TABLE ps_wp, ps_watched;

-- a trigger is known by its function and argument, not its name: one its
-- partition's owner renamed is not doubled by the next partition DDL
DO $$ BEGIN
	EXECUTE format('ALTER TRIGGER %I ON ps_src_3 RENAME TO my_name',
		(SELECT tgname FROM pg_trigger WHERE tgrelid = 'ps_src_3'::regclass
		  AND tgname LIKE 'streamml_scorer_%'));
END $$;
CREATE TABLE ps_src_6 PARTITION OF ps_src FOR VALUES FROM (700) TO (800);
SELECT tgname FROM pg_trigger WHERE tgrelid = 'ps_src_3'::regclass AND NOT tgisinternal;
INSERT INTO ps_src_3 VALUES (11, 260, 11);
SELECT id, ts FROM ps_p WHERE id = 11;

-- a partition is no source, nor a predictions table: the parent's
-- statements would bypass its triggers
SELECT streamml.create_scorer('ps_bad', 'ps_src_2a', 'ps_m', '{"key": ["id", "ts"]}');
CREATE TABLE ps_fsrc (id int, sym text, ts int, x float8) PARTITION BY LIST (sym);
CREATE TABLE ps_fsrc_a PARTITION OF ps_fsrc FOR VALUES IN ('a');
SELECT streamml.create_feature_table('ps_ft', 'ps_fsrc_a', '{"partition_by": "sym",
	"order_by": "ts", "features": {"n": {"fn": "count", "preceding": 0}}}');
CREATE TABLE ps_pp (id int, ts int, model text, version int, prediction float8,
	probability float8, class text, scored_at timestamptz) PARTITION BY LIST (model);
CREATE TABLE ps_pp_m PARTITION OF ps_pp FOR VALUES IN ('ps_m');
ALTER TABLE ps_pp_m ADD PRIMARY KEY (id, ts, model);
CREATE TABLE ps_plain (id int, ts int, x float8);
SELECT streamml.create_scorer('ps_bad', 'ps_plain', 'ps_m', '{"key": ["id", "ts"], "into": "ps_pp_m"}');
DROP TABLE ps_fsrc, ps_pp, ps_plain;

-- an outcome tracker whose labels table is partitioned: the same
CREATE TABLE ps_labels (id int, ts int, y float8) PARTITION BY LIST (id);
CREATE TABLE ps_labels_low PARTITION OF ps_labels FOR VALUES IN (1, 2, 3, 4, 5);
CREATE TABLE ps_labels_high PARTITION OF ps_labels DEFAULT;
SELECT streamml.track_outcomes('ps_s', 'ps_labels', '{"actual": "y"}');
INSERT INTO ps_labels VALUES (1, 10, 3);
INSERT INTO ps_labels_low VALUES (2, 120, 5);
INSERT INTO ps_labels_high VALUES (9, 350, 19);
SELECT key, actual FROM streamml.outcomes WHERE scorer = 'ps_s' ORDER BY actual;
SELECT streamml.track_outcomes('ps_s2', 'ps_labels_low', '{"actual": "y"}');
-- a plain DROP of the partitioned source is refused, naming the scorer
DROP TABLE ps_src;

-- dropping the scorer (after its tracker) takes every trigger along
SELECT streamml.untrack_outcomes('ps_s');
SELECT streamml.drop_scorer('ps_s');
SELECT count(*) AS triggers FROM pg_trigger
 WHERE (tgname LIKE 'streamml_scorer_%' OR tgname LIKE 'streamml_tracker_%' OR tgname = 'my_name')
   AND tgrelid::regclass::text LIKE 'ps\_%';

-- the event trigger is no function to call
SELECT streamml.partitions_changed();

-- cleanup
SELECT streamml.drop_model('ps_m');
DROP TABLE ps_src, ps_src_1, ps_labels, ps_p, ps_train;
DROP SCHEMA ps_schema;
DROP SERVER ps_server;
DROP FOREIGN DATA WRAPPER ps_fdw;
