-- Scorers: every row inserted into a source gets its prediction in the same
-- transaction (src/scoring).
CREATE TABLE sc_train AS
SELECT i AS id, (ARRAY['A', 'B', 'C'])[i % 3 + 1] AS symbol,
	   sin(i)::float8 AS x1, cos(i * 1.7)::float8 AS x2,
	   (sin(i) + 0.5 * cos(i * 1.7) + ((i * 7919) % 1000) / 1000.0 - 0.5) > 0 AS y,
	   2 * sin(i) - cos(i * 1.7) + ((i * 104729) % 100) / 100.0 AS target,
	   (ARRAY['down', 'flat', 'up'])[CASE WHEN sin(i) + ((i * 31) % 10) / 20.0 < -0.3 THEN 1
		 WHEN sin(i) + ((i * 31) % 10) / 20.0 < 0.5 THEN 2 ELSE 3 END] AS move
  FROM generate_series(1, 900) i;
SELECT version FROM streamml.train_logreg('sc_logit', 'sc_train', 'y', ARRAY['x1', 'x2']);
SELECT version FROM streamml.train_logreg('sc_group', 'sc_train', 'y', ARRAY['x1', 'x2'],
	'{"group_by": "symbol"}') ORDER BY group_key;
SELECT version FROM streamml.train_linreg('sc_linear', 'sc_train', 'target', ARRAY['x1', 'x2']);
SELECT version FROM streamml.train_logreg('sc_multi', 'sc_train', 'move', ARRAY['x1', 'x2']);

-- The source: trades with a primary key.
CREATE TABLE sc_trades (id int PRIMARY KEY, symbol text, x1 float8, x2 float8);

-- A scorer creates its predictions table (default: the scorer's name).
SELECT streamml.create_scorer('sc_logit_preds', 'sc_trades', 'sc_logit');
\d sc_logit_preds
SELECT name, owner, source, model, predictions, key_columns, options,
	   rows_processed, rows_unscorable FROM streamml.scorers;
SELECT tgname, tgtype FROM pg_trigger WHERE tgrelid = 'sc_trades'::regclass;

-- INSERT: every row is scored in the same statement.
INSERT INTO sc_trades SELECT id, symbol, x1, x2 FROM sc_train WHERE id <= 300;
SELECT count(*) AS predictions, count(DISTINCT id) AS keys, min(version), max(version),
	   min(role), count(*) FILTER (WHERE scored_at IS NULL) AS no_time
  FROM sc_logit_preds;
-- The predictions equal streamml.predict* on the same rows, to the bit.
SELECT count(*) AS rows,
	   count(*) FILTER (WHERE p.probability = streamml.predict_proba('sc_logit', ARRAY[t.x1, t.x2])) AS same_probability,
	   count(*) FILTER (WHERE p.prediction = streamml.predict('sc_logit', ARRAY[t.x1, t.x2])) AS same_prediction,
	   count(*) FILTER (WHERE p.class = streamml.predict_class('sc_logit', ARRAY[t.x1, t.x2])) AS same_class
  FROM sc_trades t JOIN sc_logit_preds p USING (id);
SELECT DISTINCT class, prediction FROM sc_logit_preds ORDER BY 1;

-- COPY is scored the same way.
COPY sc_trades (id, symbol, x1, x2) FROM stdin;
1001	A	0.5	0.25
1002	B	-0.75	0.5
1003	C	0.1	-0.9
\.
SELECT p.id, p.version, p.prediction, round(p.probability::numeric, 10) =
	   round(streamml.predict_proba('sc_logit', ARRAY[t.x1, t.x2])::numeric, 10) AS same
  FROM sc_logit_preds p JOIN sc_trades t USING (id) WHERE id > 1000 ORDER BY id;

-- A rolled-back insert leaves no prediction.
BEGIN;
INSERT INTO sc_trades VALUES (2001, 'A', 1, 1);
SELECT count(*) FROM sc_logit_preds WHERE id = 2001;
ROLLBACK;
SELECT count(*) FROM sc_logit_preds WHERE id = 2001;

-- Unscorable rows: NULL, NaN or infinite features get a NULL prediction.
INSERT INTO sc_trades VALUES (3001, 'A', NULL, 1), (3002, 'A', 'NaN', 1),
	(3003, 'A', 1, 'Infinity'), (3004, 'A', 1, '-Infinity'), (3005, 'A', 0.5, 0.5);
SELECT id, version, prediction, round(probability::numeric, 6) AS probability, class
  FROM sc_logit_preds WHERE id > 3000 ORDER BY id;
SELECT rows_processed, rows_unscorable, batches FROM streamml.scorers;

-- Version switching: a deploy, rollback or retrain is used by the next
-- statement; each prediction records its version.
SELECT version FROM streamml.train_logreg('sc_logit', 'sc_train', 'y', ARRAY['x1', 'x2'],
	'{"l2": 1}');
INSERT INTO sc_trades VALUES (4001, 'A', 0.3, 0.3);
SELECT streamml.rollback('sc_logit');
INSERT INTO sc_trades VALUES (4002, 'A', 0.3, 0.3);
BEGIN;
SELECT streamml.deploy('sc_logit', 2);
INSERT INTO sc_trades VALUES (4003, 'A', 0.3, 0.3);
SELECT streamml.deploy('sc_logit', 1);
INSERT INTO sc_trades VALUES (4004, 'A', 0.3, 0.3);
COMMIT;
SELECT id, version, probability <> lag(probability) OVER (ORDER BY id) AS changed
  FROM sc_logit_preds WHERE id > 4000 ORDER BY id;
-- ... and the version is that of streamml.predict at the time.
SELECT streamml.deploy('sc_logit', 2);
INSERT INTO sc_trades VALUES (4005, 'A', 0.3, 0.3);
SELECT p.version, p.probability = streamml.predict_proba('sc_logit', ARRAY[0.3, 0.3]) AS same
  FROM sc_logit_preds p WHERE id = 4005;

-- Two scorers on one source: a per-group model and a linear model, with a
-- feature mapping, into one predictions table of another name.
CREATE TABLE sc_ticks (sym text, seq bigint, a float8, b real, PRIMARY KEY (sym, seq));
SELECT streamml.create_scorer('sc_grp', 'sc_ticks', 'sc_group',
	'{"into": "sc_tick_preds", "features": {"x1": "a", "x2": "b"}, "group_by": "sym"}');
SELECT streamml.create_scorer('sc_lin', 'sc_ticks', 'sc_linear',
	'{"into": "public.sc_tick_preds", "features": {"x1": "a", "x2": "b"}}');
\d sc_tick_preds
INSERT INTO sc_ticks SELECT symbol, id, x1, x2 FROM sc_train WHERE id <= 90
UNION ALL VALUES ('Z', 1, 0.5, 0.5);
SELECT model, count(*), count(prediction) AS scored, count(probability) AS with_probability,
	   count(class) AS with_class
  FROM sc_tick_preds GROUP BY model ORDER BY model;
SELECT count(*) FILTER (WHERE p.probability = streamml.predict_proba('sc_group', t.sym, ARRAY[t.a, t.b::float8])) AS same_group,
	   count(*) AS rows
  FROM sc_ticks t JOIN sc_tick_preds p ON p.sym = t.sym AND p.seq = t.seq
 WHERE p.model = 'sc_group' AND t.sym <> 'Z';
SELECT count(*) FILTER (WHERE p.prediction = streamml.predict('sc_linear', ARRAY[t.a, t.b::float8])) AS same_linear,
	   count(*) AS rows
  FROM sc_ticks t JOIN sc_tick_preds p ON p.sym = t.sym AND p.seq = t.seq
 WHERE p.model = 'sc_linear';
-- A group the model does not know is unscorable.
SELECT sym, model, version, round(prediction::numeric, 6) AS prediction
  FROM sc_tick_preds WHERE sym = 'Z' ORDER BY model;
SELECT name, rows_processed, rows_unscorable FROM streamml.scorers ORDER BY name;

-- A multinomial model: the class index and label, no probability.
CREATE TABLE sc_moves (id bigint PRIMARY KEY, x1 numeric, x2 int);
SELECT streamml.create_scorer('sc_multi', 'sc_moves', 'sc_multi');
INSERT INTO sc_moves VALUES (1, -0.9, 0), (2, 0.1, 0), (3, 0.95, 1), (4, 'NaN', 0);
SELECT p.id, p.prediction, p.probability, p.class,
	   p.class = streamml.predict_class('sc_multi', ARRAY[m.x1, m.x2]::float8[]) AS same
  FROM sc_multi p JOIN sc_moves m USING (id) ORDER BY id;

-- A key that is not the primary key, and a partitioned source.
CREATE TABLE sc_part (id int, ts int, x1 float8, x2 float8) PARTITION BY RANGE (ts);
CREATE TABLE sc_part_1 PARTITION OF sc_part FOR VALUES FROM (0) TO (100);
CREATE TABLE sc_part_2 PARTITION OF sc_part FOR VALUES FROM (100) TO (200);
SELECT streamml.create_scorer('sc_part', 'sc_part', 'sc_logit', '{"key": ["id", "ts"]}');
SELECT streamml.create_scorer('sc_part_scorer', 'sc_part', 'sc_logit', '{"key": ["id", "ts"]}');
INSERT INTO sc_part VALUES (1, 50, 0.1, 0.2), (2, 150, 0.3, 0.4);
SELECT id, ts, version FROM sc_part_scorer ORDER BY id;

-- A key scored twice is an error, and the statement's rows go with it;
-- its hint says how it comes.  So is a key loaded again after a TRUNCATE
-- of the source (its prediction stays).
INSERT INTO sc_part VALUES (1, 50, 0.1, 0.2);
SELECT count(*) FROM sc_part;
BEGIN;
TRUNCATE sc_part;
INSERT INTO sc_part VALUES (2, 150, 0.3, 0.4);
ROLLBACK;

-- Errors at creation.
CREATE TABLE sc_nokey (a int, x1 float8, x2 float8);
SELECT streamml.create_scorer('e1', 'sc_nokey', 'sc_logit');
SELECT streamml.create_scorer('e2', 'sc_trades', 'no_such_model');
SELECT streamml.create_scorer('e3', 'sc_trades', 'sc_logit', '{"intoo": "x"}');
SELECT streamml.create_scorer('e4', 'sc_trades', 'sc_logit', '{"features": {"x9": "x1"}}');
SELECT streamml.create_scorer('e5', 'sc_trades', 'sc_logit', '{"features": {"x1": "symbol"}}');
SELECT streamml.create_scorer('e6', 'sc_trades', 'sc_logit', '{"features": {"x1": "nope"}}');
SELECT streamml.create_scorer('e7', 'sc_trades', 'sc_logit', '{"key": 5}');
SELECT streamml.create_scorer('e7', 'sc_trades', 'sc_logit', '{"key": ["id", "nope"]}');
SELECT streamml.create_scorer('e8', 'sc_trades', 'sc_logit', '{"group_by": "symbol"}');
SELECT streamml.create_scorer('e9', 'sc_trades', 'sc_logit', '{"into": "sc_trades"}');
SELECT streamml.create_scorer('sc_logit_preds', 'sc_trades', 'sc_logit', '{"into": "other"}');
SELECT streamml.create_scorer('', 'sc_trades', 'sc_logit');
CREATE TABLE sc_bad_shape (id int, model text, version int, prediction float8);
SELECT streamml.create_scorer('e10', 'sc_trades', 'sc_logit', '{"into": "sc_bad_shape"}');
CREATE TABLE sc_bad_type (id bigint, model text, version int, prediction float8,
	probability float8, class text, role text, scored_at timestamptz);
SELECT streamml.create_scorer('e11', 'sc_trades', 'sc_logit', '{"into": "sc_bad_type"}');
-- a generated column is named as such (its type may be right)
CREATE TABLE sc_generated (id int, model text, version int, prediction float8,
	probability float8, class text, role text GENERATED ALWAYS AS ('served') STORED,
	scored_at timestamptz);
SELECT streamml.create_scorer('e11', 'sc_trades', 'sc_logit', '{"into": "sc_generated"}');
CREATE TABLE sc_no_unique (id int, model text, version int, prediction float8,
	probability float8, class text, role text, scored_at timestamptz);
SELECT streamml.create_scorer('e12', 'sc_trades', 'sc_logit', '{"into": "sc_no_unique"}');
CREATE VIEW sc_view AS SELECT * FROM sc_trades;
SELECT streamml.create_scorer('e13', 'sc_view', 'sc_logit');
SELECT streamml.create_scorer('e14', 'sc_ticks', 'sc_group');
-- a group column of another type than the model's groups: its keys would find no group
SELECT streamml.create_scorer('e15', 'sc_ticks', 'sc_group',
	'{"features": {"x1": "a", "x2": "b"}, "group_by": "seq"}');
-- a dropped model's name is not free to another role while a scorer names it:
-- the scorer would serve the newcomer's model under the old name
SELECT version FROM streamml.train_linreg('sc_gone', 'sc_train', 'target', ARRAY['x1', 'x2']);
SELECT streamml.create_scorer('sc_gone_s', 'sc_ticks', 'sc_gone',
	'{"into": "sc_gone_preds", "features": {"x1": "a", "x2": "b"}}');
SELECT streamml.drop_model('sc_gone');
CREATE ROLE sc_taker;
GRANT SELECT ON sc_train TO sc_taker;
SET ROLE sc_taker;
SELECT version FROM streamml.train_linreg('sc_gone', 'sc_train', 'target', ARRAY['x1', 'x2']);
RESET ROLE;
SELECT streamml.drop_scorer('sc_gone_s');
SET ROLE sc_taker;
SELECT version FROM streamml.train_linreg('sc_gone', 'sc_train', 'target', ARRAY['x1', 'x2']);
RESET ROLE;
SELECT streamml.drop_model('sc_gone');
DROP TABLE sc_gone_preds;
REVOKE SELECT ON sc_train FROM sc_taker;
DROP ROLE sc_taker;
SELECT count(*) FROM streamml.scorers WHERE name LIKE 'e%';

-- An existing predictions table of the right shape, with extra columns
-- filled by their defaults and an AFTER trigger that sees the rows (code run
-- by a scorer sees search_path pg_catalog, pg_temp: it qualifies its names).
CREATE TABLE sc_own (id int, model text, version int, prediction float8,
	probability float8, class text, role text, scored_at timestamptz,
	note text DEFAULT 'auto', PRIMARY KEY (id, model));
CREATE TABLE sc_own_log (n bigint);
CREATE FUNCTION sc_own_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.sc_own_log SELECT count(*) FROM new_rows;
	RETURN NULL;
END $$;
CREATE TRIGGER sc_own_count AFTER INSERT ON sc_own REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION sc_own_count();
SELECT streamml.create_scorer('sc_own', 'sc_trades', 'sc_logit', '{"into": "sc_own"}');
INSERT INTO sc_trades VALUES (5001, 'A', 0.1, 0.1), (5002, 'B', 0.2, 0.2);
SELECT id, note, version FROM sc_own ORDER BY id;
SELECT * FROM sc_own_log;
-- A BEFORE row trigger on the predictions table is refused when scoring.
CREATE FUNCTION sc_before() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RETURN NEW; END $$;
CREATE TRIGGER sc_before BEFORE INSERT ON sc_own FOR EACH ROW EXECUTE FUNCTION sc_before();
INSERT INTO sc_trades VALUES (5003, 'A', 0.1, 0.1);
DROP TRIGGER sc_before ON sc_own;

-- Errors at scoring time: the scorer's fault (55000), the insert fails.
SELECT streamml.drop_scorer('sc_own');
SELECT version FROM streamml.train_logreg('sc_tmp', 'sc_train', 'y', ARRAY['x1']);
CREATE TABLE sc_tmp_src (id int PRIMARY KEY, x1 float8);
SELECT streamml.create_scorer('sc_tmp', 'sc_tmp_src', 'sc_tmp');
SELECT streamml.drop_model('sc_tmp');
INSERT INTO sc_tmp_src VALUES (1, 0.5);
DO $$ BEGIN INSERT INTO sc_tmp_src VALUES (1, 0.5);
EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'SQLSTATE %', SQLSTATE; END $$;
SELECT last_error FROM streamml.scorers WHERE name = 'sc_tmp';
-- ... but a statement that inserts no row does not fail.
INSERT INTO sc_tmp_src SELECT 1, 0.5 WHERE false;
-- A scorer's trigger attached to another table (by a superuser) refuses.
CREATE TABLE sc_other (id int PRIMARY KEY, x1 float8, x2 float8);
CREATE TRIGGER hijack AFTER INSERT ON sc_other REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION streamml.scorer_trigger('1');
INSERT INTO sc_other VALUES (1, 0.5, 0.5);
DROP TRIGGER hijack ON sc_other;

-- Privileges: SELECT and TRIGGER on the source, the model usable by the
-- owner, ownership of (or INSERT on) the predictions table.
CREATE ROLE sc_alice;
CREATE ROLE sc_bob;
GRANT CREATE ON SCHEMA public TO sc_alice, sc_bob;
CREATE TABLE sc_alice_src (id int PRIMARY KEY, x1 float8, x2 float8);
ALTER TABLE sc_alice_src OWNER TO sc_alice;
SET ROLE sc_bob;
-- bob cannot see alice's table, nor the model
SELECT streamml.create_scorer('bob1', 'sc_alice_src', 'sc_logit');
RESET ROLE;
GRANT SELECT ON sc_alice_src TO sc_bob;
SET ROLE sc_bob;
SELECT streamml.create_scorer('bob1', 'sc_alice_src', 'sc_logit');
RESET ROLE;
GRANT TRIGGER ON sc_alice_src TO sc_bob;
SET ROLE sc_bob;
SELECT streamml.create_scorer('bob1', 'sc_alice_src', 'sc_logit');
SELECT streamml.create_scorer('bob1', 'sc_alice_src', 'sc_logit', '{"into": "sc_own"}');
RESET ROLE;
SELECT streamml.grant_model('sc_logit', 'sc_bob');
SET ROLE sc_bob;
SELECT streamml.create_scorer('bob1', 'sc_alice_src', 'sc_logit', '{"into": "sc_own"}');
SELECT streamml.create_scorer('bob1', 'sc_alice_src', 'sc_logit');
SELECT name, owner FROM streamml.scorers;
-- bob cannot attach the trigger function to a table of his
CREATE TABLE sc_bob_table (id int PRIMARY KEY, x1 float8, x2 float8);
CREATE TRIGGER hijack AFTER INSERT ON sc_bob_table REFERENCING NEW TABLE AS n
	FOR EACH STATEMENT EXECUTE FUNCTION streamml.scorer_trigger('1');
DROP TABLE sc_bob_table;
RESET ROLE;
SET ROLE sc_alice;
-- alice's inserts are scored as bob, into bob's table; she sees neither
INSERT INTO sc_alice_src VALUES (1, 0.2, 0.3);
SELECT count(*) FROM streamml.scorers;
SELECT streamml.drop_scorer('bob1');
RESET ROLE;
SELECT id, model, version FROM bob1;
-- the grant withdrawn: bob's scorer can no longer score, alice's insert fails
SELECT streamml.revoke_model('sc_logit', 'sc_bob');
SET ROLE sc_alice;
INSERT INTO sc_alice_src VALUES (2, 0.2, 0.3);
DO $$ BEGIN INSERT INTO sc_alice_src VALUES (2, 0.2, 0.3);
EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'SQLSTATE %', SQLSTATE; END $$;
RESET ROLE;
-- DROP ROLE is refused while bob owns a scorer; REASSIGN OWNED is too; DROP OWNED
ALTER TABLE bob1 OWNER TO sc_alice;
REVOKE ALL ON sc_alice_src FROM sc_bob;
REVOKE ALL ON SCHEMA public FROM sc_bob;
DROP ROLE sc_bob;
-- a scorer acts as its owner by itself: REASSIGN OWNED refuses to move it
REASSIGN OWNED BY sc_bob TO sc_alice;
SELECT name, owner FROM streamml.scorers WHERE name = 'bob1';
SELECT streamml.drop_scorer('bob1');
REASSIGN OWNED BY sc_bob TO sc_alice;
SELECT count(*) FROM streamml.scorers WHERE name = 'bob1';
SELECT streamml.grant_model('sc_logit', 'sc_alice');
SET ROLE sc_alice;
INSERT INTO sc_alice_src VALUES (3, 0.2, 0.3);
RESET ROLE;
DROP OWNED BY sc_alice;
SELECT count(*) FROM streamml.scorers WHERE name = 'bob1';
SELECT count(*) FROM pg_class WHERE relname IN ('sc_alice_src', 'bob1');
DROP OWNED BY sc_bob;
DROP ROLE sc_alice, sc_bob;

-- drop_scorer: inserts are no longer scored; the predictions stay.
SELECT streamml.drop_scorer('sc_logit_preds');
INSERT INTO sc_trades VALUES (6001, 'A', 0.1, 0.1);
SELECT count(*) FILTER (WHERE id = 6001) AS new, count(*) > 0 AS kept FROM sc_logit_preds;
SELECT streamml.drop_scorer('sc_logit_preds');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'sc_trades'::regclass AND NOT tgisinternal;

-- A numeric feature beyond float8's range (src/number.h): the scorer and
-- predict on the row agree, one row unscorable, no error for the statement.
CREATE TABLE sc_num_train AS SELECT i AS id, i::numeric AS x, 2.0 * i + 1 AS y
  FROM generate_series(1, 50) i;
SELECT version FROM streamml.train_linreg('sc_num', 'sc_num_train', 'y', ARRAY['x']);
CREATE TABLE sc_num_src (id int PRIMARY KEY, x numeric);
SELECT streamml.create_scorer('sc_num_s', 'sc_num_src', 'sc_num');
INSERT INTO sc_num_src VALUES (1, 3), (2, 1e400), (3, 'NaN');
SELECT s.id, round(p.prediction::numeric, 6) AS scored,
	   round(streamml.predict('sc_num', s)::numeric, 6) AS predicted
  FROM sc_num_src s JOIN sc_num_s p USING (id) ORDER BY s.id;
SELECT rows_processed, rows_unscorable FROM streamml.scorers WHERE name = 'sc_num_s';
SELECT streamml.drop_scorer('sc_num_s');
SELECT streamml.drop_model('sc_num');
DROP TABLE sc_num_train, sc_num_src, sc_num_s;
-- a key column named twice
CREATE TABLE sc_dupkey (id int, x1 float8, x2 float8);
SELECT streamml.create_scorer('sc_dupkey_s', 'sc_dupkey', 'sc_logit', '{"key": ["id", "id"]}');
DROP TABLE sc_dupkey;
