-- Attacks on outcome trackers (attacker 10), each compared with the SQL
-- statement's answers as regress 79 does: the C path and its in-memory
-- join (table ta_c) must give the SQL statement's outcomes (twin ta_s,
-- read in SQL because its index is partial).  Expected: no differing rows.
SET client_min_messages = warning;
CREATE TABLE ta_train AS
SELECT i::float8 AS x, 2.0 * i + 1 AS y FROM generate_series(1, 50) i;
SELECT version FROM streamml.train_linreg('ta_m1', 'ta_train', 'y', ARRAY['x']);
SELECT version FROM streamml.train_linreg('ta_m2', 'ta_train', 'y', ARRAY['x'],
	'{"l2": 10}');
CREATE TABLE ta_c (id bigint, sym text, t int, x float8, price float8);
CREATE INDEX ON ta_c (sym COLLATE "C", t);
CREATE TABLE ta_s (id bigint, sym text, t int, x float8, price float8);
CREATE INDEX ON ta_s (sym, t) WHERE sym IS NOT NULL;
SELECT streamml.create_scorer('ta_c_s', 'ta_c', 'ta_m1', '{"key": "id"}');
SELECT streamml.create_scorer('ta_s_s', 'ta_s', 'ta_m1', '{"key": "id"}');
SELECT count(*) FROM (SELECT streamml.track_outcomes(s, t, '{"actual": "price",
	"horizon": 2, "partition_by": "sym", "order_by": "t"}')
  FROM (VALUES ('ta_c_s', 'ta_c'::regclass), ('ta_s_s', 'ta_s'::regclass)) v(s, t)) x;
RESET client_min_messages;
CREATE FUNCTION ta_batch(q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE 'INSERT INTO ta_c ' || q;
	EXECUTE 'INSERT INTO ta_s ' || q;
END
$$;
-- a statement run on both predictions tables (TBL)
CREATE FUNCTION ta_preds(q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE replace(q, 'TBL', 'ta_c_s');
	EXECUTE replace(q, 'TBL', 'ta_s_s');
END
$$;
-- the outcomes of the two tables that differ
CREATE VIEW ta_diff AS
SELECT coalesce(c.key, s.key) AS key, coalesce(c.model, s.model) AS model,
	   c.prediction AS memory, s.prediction AS sql
  FROM (SELECT * FROM streamml.outcomes WHERE scorer = 'ta_c_s') c
  FULL JOIN (SELECT * FROM streamml.outcomes WHERE scorer = 'ta_s_s') s
	ON s.key = c.key AND s.model = c.model AND s.version = c.version
 WHERE c.key IS NULL OR s.key IS NULL OR c.actual IS DISTINCT FROM s.actual
	OR c.prediction IS DISTINCT FROM s.prediction OR c.role IS DISTINCT FROM s.role;
SELECT ta_batch($q$SELECT i, CASE WHEN i % 2 = 0 THEN 'A' ELSE 'B' END, i / 2 + 1,
	i % 10, 100 + i FROM generate_series(1, 101) i$q$);
SELECT count(*) AS differing FROM ta_diff;

-- 1. Rows that reach the predictions table without its statement trigger:
-- through an inheritance child (a read of the table reads them, an INSERT
-- into the child fires the child's triggers only) or through a parent it
-- is attached to as a partition.  Both are refused, as for sources.
SELECT ta_preds($$CREATE TABLE TBL_child () INHERITS (TBL)$$);
CREATE TABLE ta_other (LIKE ta_c_s);
ALTER TABLE ta_other INHERIT ta_c_s;
SELECT ta_preds($$CREATE TABLE TBL_parent (LIKE TBL INCLUDING DEFAULTS)
	PARTITION BY RANGE (id)$$);
SELECT ta_preds($$ALTER TABLE TBL_parent ATTACH PARTITION TBL
	FOR VALUES FROM (MINVALUE) TO (MAXVALUE)$$);
-- a tracker is not made on a predictions table that has a child already
CREATE TABLE ta_xp (id bigint, x float8, price float8);
SELECT streamml.create_scorer('ta_xp_s', 'ta_xp', 'ta_m1', '{"key": "id"}');
CREATE TABLE ta_xp_s_child () INHERITS (ta_xp_s);
SELECT streamml.track_outcomes('ta_xp_s', 'ta_xp', '{"actual": "price"}');
DROP TABLE ta_xp_s_child;
SELECT streamml.track_outcomes('ta_xp_s', 'ta_xp', '{"actual": "price"}');
SELECT streamml.untrack_outcomes('ta_xp_s');
SELECT streamml.drop_scorer('ta_xp_s');
SELECT ta_batch($q$VALUES (700, 'H', 1, 1, 1), (701, 'H', 5, 1, 2)$q$);
SELECT * FROM ta_diff ORDER BY 1, 2;

-- 2. Outcome keys whose text differs between equal values: a bytea (its
-- text follows bytea_output), an interval (1 day = 24 hours); written
-- alike now, whatever the session's settings and whichever side came
-- first.  Key types whose text cannot be made so (inside an array, money)
-- are refused, and so is a source key of another type than the scorer's
-- (before: every insert into the source failed with an internal SQL error).
CREATE TABLE ta_kb (k bytea, x float8);
CREATE TABLE ta_kb_out (k bytea, v float8);
SELECT streamml.create_scorer('ta_kb_s', 'ta_kb', 'ta_m1', '{"key": "k"}');
SELECT streamml.track_outcomes('ta_kb_s', 'ta_kb_out', '{"actual": "v"}');
SET bytea_output = escape;
INSERT INTO ta_kb_out VALUES ('\x0304', 6);		-- outcome first
SET bytea_output = hex;
INSERT INTO ta_kb VALUES ('\x0102', 1), ('\x0304', 1);
SET bytea_output = escape;
INSERT INTO ta_kb_out VALUES ('\x0102', 5);		-- prediction first
RESET bytea_output;
CREATE TABLE ta_ki (k interval, x float8);
CREATE TABLE ta_ki_out (k interval, v float8);
SELECT streamml.create_scorer('ta_ki_s', 'ta_ki', 'ta_m1', '{"key": "k"}');
SELECT streamml.track_outcomes('ta_ki_s', 'ta_ki_out', '{"actual": "v"}');
INSERT INTO ta_ki_out VALUES ('48 hours', 7), ('1 mon', 8);	-- outcomes first
INSERT INTO ta_ki VALUES ('2 days', 1), ('30 days', 1), ('1 day', 1);
INSERT INTO ta_ki_out VALUES ('24:00:00', 9), ('720 hours', 10);	-- 720 hours: a duplicate
SELECT scorer, key, actual FROM streamml.outcomes
 WHERE scorer IN ('ta_kb_s', 'ta_ki_s') ORDER BY 1, 3;
SELECT t.scorer, count(*) AS pending FROM streamml.pending_outcomes p
  JOIN streamml.outcome_trackers t ON t.id = p.tracker
 WHERE t.scorer IN ('ta_kb_s', 'ta_ki_s') GROUP BY 1;
SELECT sum(labelled) AS labelled, sum(duplicates) AS duplicates
  FROM streamml.live_metrics WHERE scorer = 'ta_ki_s' AND group_key IS NULL;
CREATE TABLE ta_ka (k timestamptz[], x float8);
SELECT streamml.create_scorer('ta_ka_s', 'ta_ka', 'ta_m1', '{"key": "k"}');
SELECT streamml.track_outcomes('ta_ka_s', 'ta_ka', '{"actual": "x"}');
CREATE TABLE ta_km (k money, x float8);
SELECT streamml.create_scorer('ta_km_s', 'ta_km', 'ta_m1', '{"key": "k"}');
SELECT streamml.track_outcomes('ta_km_s', 'ta_km', '{"actual": "x"}');
CREATE TABLE ta_kn (k int, x float8);
CREATE TABLE ta_kn_text (k text, v float8);
CREATE TABLE ta_kn_num (k numeric, v float8);
SELECT streamml.create_scorer('ta_kn_s', 'ta_kn', 'ta_m1', '{"key": "k"}');
SELECT streamml.track_outcomes('ta_kn_s', 'ta_kn_text', '{"actual": "v"}');
SELECT streamml.track_outcomes('ta_kn_s', 'ta_kn_num', '{"actual": "v"}');
INSERT INTO ta_kn_num VALUES (7.0, 3);
INSERT INTO ta_kn VALUES (7, 1), (8, 1);
INSERT INTO ta_kn_num VALUES (8.00, 4);
SELECT key, actual FROM streamml.outcomes WHERE scorer = 'ta_kn_s' ORDER BY actual;
SELECT streamml.untrack_outcomes(s) FROM unnest(ARRAY['ta_kb_s', 'ta_ki_s', 'ta_kn_s']) s;
SELECT streamml.drop_scorer(s)
  FROM unnest(ARRAY['ta_kb_s', 'ta_ki_s', 'ta_ka_s', 'ta_km_s', 'ta_kn_s']) s;

-- 3. Another role's type in a column that a tracker or a training run
-- reads: its owner can attach a cast to it, which the tracker's statements
-- (as the scorer's owner, at every insert) and a retrain (as the model's
-- owner, by pg_cron or a monitor) would call.  Before, the owner of a
-- labels table became superuser by inserting a row.  Refused now, at every
-- statement (the type may change after the tracker or model was made).
CREATE ROLE ta_mallory;
GRANT CREATE ON SCHEMA public TO ta_mallory;
CREATE TABLE ta_src (id int, x float8);
SELECT streamml.create_scorer('ta_src_s', 'ta_src', 'ta_m1', '{"key": "id"}');
SET ROLE ta_mallory;
CREATE TABLE ta_labels (id int, v float8);
CREATE TABLE ta_feed (c text, x float8, y float8);
INSERT INTO ta_feed SELECT CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, i, 2 * i + i % 2
  FROM generate_series(1, 40) i;
GRANT SELECT, TRIGGER ON ta_labels TO PUBLIC;
GRANT SELECT ON ta_feed TO PUBLIC;
CREATE TABLE ta_pwned (who text, superuser boolean);
GRANT INSERT ON ta_pwned TO PUBLIC;
CREATE TYPE ta_e AS ENUM ('a', 'b');
CREATE FUNCTION ta_e_text(ta_e) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.ta_pwned SELECT current_user, rolsuper FROM pg_roles
	 WHERE rolname = current_user;
	BEGIN
		EXECUTE 'ALTER ROLE ta_mallory SUPERUSER';
	EXCEPTION WHEN insufficient_privilege THEN NULL;
	END;
	RETURN 'a';
END
$$;
CREATE FUNCTION ta_e_float8(ta_e) RETURNS float8 LANGUAGE sql
	AS $$ SELECT length(ta_e_text($1))::float8 $$;
CREATE CAST (ta_e AS text) WITH FUNCTION ta_e_text(ta_e);
CREATE CAST (ta_e AS float8) WITH FUNCTION ta_e_float8(ta_e);
RESET ROLE;
SET client_min_messages = error;
SELECT streamml.track_outcomes('ta_src_s', 'ta_labels', '{"actual": "v"}');
SELECT version FROM streamml.train_linreg('ta_mr', 'ta_feed', 'y', ARRAY['x', 'c']);
INSERT INTO ta_src VALUES (1, 1), (2, 2);
SET ROLE ta_mallory;
ALTER TABLE ta_labels ALTER v TYPE ta_e USING 'a';
INSERT INTO ta_labels VALUES (1, 'a');
ALTER TABLE ta_feed ALTER c TYPE ta_e USING c::ta_e;
RESET ROLE;
SELECT model, version FROM streamml.retrain('ta_mr');
-- a type of the reader's own is trusted
SET ROLE ta_mallory;
CREATE TABLE ta_own (c ta_e, x float8, y float8);
INSERT INTO ta_own SELECT c, x, y FROM ta_feed;
DELETE FROM ta_pwned;
SELECT version FROM streamml.train_linreg('ta_mo', 'ta_own', 'y', ARRAY['x', 'c']);
SELECT count(*) > 0 AS own_cast_called FROM ta_pwned;
RESET ROLE;
RESET client_min_messages;
SELECT rolsuper FROM pg_roles WHERE rolname = 'ta_mallory';
SELECT count(*) FROM ta_pwned WHERE who <> 'ta_mallory';
SELECT streamml.untrack_outcomes('ta_src_s');
SELECT streamml.drop_scorer('ta_src_s');
SELECT streamml.drop_model(m) FROM unnest(ARRAY['ta_mr', 'ta_mo']) m;
DROP TABLE ta_labels, ta_feed, ta_own, ta_pwned;
DROP FUNCTION ta_e_float8(ta_e) CASCADE;
DROP FUNCTION ta_e_text(ta_e) CASCADE;
DROP TYPE ta_e;
REVOKE CREATE ON SCHEMA public FROM ta_mallory;
DROP ROLE ta_mallory;

-- 4. The source of outcomes altered after track_outcomes: its statements
-- were kept as first planned, so every insert failed with the tracker's
-- own SQL in the message (a column renamed or given a type it cannot
-- read), or read the actual value as the type it had (a text column
-- parsed as float8).  Now the columns are checked at every statement, and
-- a type change plans the statements again.  A regression's actual value
-- of text is refused: every outcome had a NULL actual, counted as labelled.
CREATE TABLE ta_alt (id int, x float8);
CREATE TABLE ta_alt_out (id int, v float8);
CREATE TABLE ta_alt_txt (id int, v text);
SELECT streamml.create_scorer('ta_alt_s', 'ta_alt', 'ta_m1', '{"key": "id"}');
SELECT streamml.track_outcomes('ta_alt_s', 'ta_alt_txt', '{"actual": "v"}');
SELECT streamml.track_outcomes('ta_alt_s', 'ta_alt_out', '{"actual": "v"}');
INSERT INTO ta_alt SELECT i, i FROM generate_series(1, 5) i;
INSERT INTO ta_alt_out VALUES (1, 3);
ALTER TABLE ta_alt_out ALTER v TYPE numeric;
INSERT INTO ta_alt_out VALUES (2, 5.5);
ALTER TABLE ta_alt_out ALTER v TYPE text;
INSERT INTO ta_alt_out VALUES (3, '7');
ALTER TABLE ta_alt_out ALTER v TYPE interval USING '1 day';
INSERT INTO ta_alt_out VALUES (4, '1 day');
ALTER TABLE ta_alt_out ALTER v TYPE float8 USING 9;
ALTER TABLE ta_alt_out RENAME id TO ident;
INSERT INTO ta_alt_out VALUES (4, 9);
ALTER TABLE ta_alt_out RENAME ident TO id;
INSERT INTO ta_alt_out VALUES (4, 9);
SELECT key, prediction, actual FROM streamml.outcomes WHERE scorer = 'ta_alt_s'
 ORDER BY key;
SELECT streamml.untrack_outcomes('ta_alt_s');
SELECT streamml.drop_scorer('ta_alt_s');

-- 5. Horizon order_by values at the ends of their type's range: the C
-- path computed prev - horizon in int64, which -infinity (the smallest
-- int64) wrapped around to a huge number, and then labelled no row of the
-- partition in that batch (the SQL statement keeps -infinity infinite: it
-- labelled key 2 with the row at infinity).  Such batches are now read by
-- the SQL statement, whose answers the C path gives elsewhere.
SET client_min_messages = warning;
CREATE TABLE ta_tc (id bigint, sym text, ts timestamptz, x float8, price float8);
CREATE INDEX ON ta_tc (sym COLLATE "C", ts);
CREATE TABLE ta_ts (id bigint, sym text, ts timestamptz, x float8, price float8);
CREATE INDEX ON ta_ts (sym, ts) WHERE sym IS NOT NULL;
SELECT streamml.create_scorer('ta_tc_s', 'ta_tc', 'ta_m1', '{"key": "id"}');
SELECT streamml.create_scorer('ta_ts_s', 'ta_ts', 'ta_m1', '{"key": "id"}');
SELECT count(*) FROM (SELECT streamml.track_outcomes(s, t, '{"actual": "price",
	"horizon": "1 minute", "partition_by": "sym", "order_by": "ts"}')
  FROM (VALUES ('ta_tc_s', 'ta_tc'::regclass), ('ta_ts_s', 'ta_ts'::regclass)) v(s, t)) x;
RESET client_min_messages;
CREATE FUNCTION ta_tbatch(q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE 'INSERT INTO ta_tc ' || q;
	EXECUTE 'INSERT INTO ta_ts ' || q;
END
$$;
SELECT ta_tbatch($q$VALUES (1, 'A', '-infinity'::timestamptz, 1, 1),
	(2, 'A', '2026-01-01', 1, 2), (3, 'A', 'infinity', 1, 3)$q$);
SELECT ta_tbatch($q$VALUES (4, 'B', '2026-01-01'::timestamptz, 1, 1), (5, 'B', 'infinity', 1, 2)$q$);
SELECT ta_tbatch($q$VALUES (6, 'B', 'infinity'::timestamptz, 1, 3)$q$);
SELECT ta_tbatch($q$VALUES (7, 'C', '-infinity'::timestamptz, 1, 1)$q$);
SELECT ta_tbatch($q$VALUES (8, 'C', '2020-01-01'::timestamptz, 1, 3)$q$);
SELECT scorer, key, actual FROM streamml.outcomes WHERE scorer IN ('ta_tc_s', 'ta_ts_s')
 ORDER BY key, scorer;
SELECT streamml.untrack_outcomes(s) FROM unnest(ARRAY['ta_tc_s', 'ta_ts_s']) s;
SELECT streamml.drop_scorer(s) FROM unnest(ARRAY['ta_tc_s', 'ta_ts_s']) s;

-- 6. A key column of a nondeterministic collation: 'abc' and 'ABC' are
-- one key to the scorer and to the SQL join of a label with its
-- prediction, but not to a pending outcome's key (its text): a label that
-- came first waited for ever, one that came second was joined.  Refused.
CREATE COLLATION ta_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE ta_ci_src (id text COLLATE ta_ci, x float8);
CREATE TABLE ta_ci_out (id text COLLATE ta_ci, v float8);
CREATE TABLE ta_c_out (id text COLLATE "C", v float8);
SELECT streamml.create_scorer('ta_ci_s', 'ta_ci_src', 'ta_m1', '{"key": "id"}');
SELECT streamml.track_outcomes('ta_ci_s', 'ta_ci_out', '{"actual": "v"}');
-- (its predictions table's key has the default collation: a "C" key meets it)
SELECT streamml.track_outcomes('ta_ci_s', 'ta_c_out', '{"actual": "v"}');
INSERT INTO ta_c_out VALUES ('abc', 1);
INSERT INTO ta_ci_src VALUES ('abc', 1), ('ABC', 2);
INSERT INTO ta_c_out VALUES ('ABC', 2);
SELECT key, prediction, actual FROM streamml.outcomes WHERE scorer = 'ta_ci_s' ORDER BY key;
SELECT streamml.untrack_outcomes('ta_ci_s');
SELECT streamml.track_outcomes('ta_ci_s', 'ta_ci_src', '{"actual": "x", "horizon": 1,
	"partition_by": "id", "order_by": "x"}');
SELECT streamml.drop_scorer('ta_ci_s');
