-- Which one-integer keys have an outcome: the sets of
-- streamml.outcome_key_sets (src/quality/outcomekeys.c), one row per 8,192
-- keys, model and version (their offsets, two bytes each, or a bitmap of
-- 1,024 bytes once they are more than 511), instead of one unique index
-- entry per outcome.
-- The first outcome of a key wins whatever the batch, the set, the sign
-- of the key or the order of arrival; other keys keep the unique index.
CREATE TABLE ks_train AS
SELECT i::float8 AS x, 2.0 * i + 1 AS y FROM generate_series(1, 50) i;
SELECT model, version FROM streamml.train_linreg('ks_reg', 'ks_train', 'y', ARRAY['x']);
SELECT model, version FROM streamml.train_linreg('ks_reg2', 'ks_train', 'y', ARRAY['x'],
	'{"l2": 10}');

-- keys at the edges of sets and of int8, negative ones, a champion and a
-- challenger (each model version has its own sets)
CREATE TABLE ks_rows (id bigint PRIMARY KEY, x float8);
SELECT streamml.create_scorer('ks_s', 'ks_rows', 'ks_reg', '{"challengers": ["ks_reg2"]}');
CREATE TABLE ks_labels (id bigint, y float8);
SELECT streamml.track_outcomes('ks_s', 'ks_labels', '{"actual": "y"}');
CREATE TEMP TABLE ks_keys AS
SELECT unnest(ARRAY[0, 1, 1023, 1024, 1025, 2047, 2048, 8191, 8192, 8193,
	-1, -1023, -1024, -1025, -8192, -8193,
	-9223372036854775808, -9223372036854775807, 9223372036854775807,
	9223372036854774784, 9223372036854774783]::bigint[]) AS id;
INSERT INTO ks_rows SELECT id, 1 FROM ks_keys;
-- one batch labels each key twice: one outcome per key and model, the
-- other label a duplicate (which of two labels of one statement comes
-- first is not defined: they have the same time)
INSERT INTO ks_labels SELECT id, v FROM ks_keys, (VALUES (1), (2)) v(v);
SELECT model, count(*) AS outcomes, count(DISTINCT key_hash) AS keys
  FROM streamml.outcomes WHERE scorer = 'ks_s' GROUP BY model ORDER BY model;
CREATE TEMP TABLE ks_first AS
SELECT model, key_hash, actual FROM streamml.outcomes WHERE scorer = 'ks_s';
-- the sets: one per model and 8,192 keys, each key's offset in two bytes
SELECT s.model, s.key_set, length(s.bits) AS bytes,
	   (SELECT string_agg((get_byte(s.bits, 2 * i) * 256 + get_byte(s.bits, 2 * i + 1))::text,
						  ',' ORDER BY i)
		  FROM generate_series(0, length(s.bits) / 2 - 1) i) AS offsets
  FROM streamml.outcome_key_sets s JOIN streamml.outcome_trackers t ON t.id = s.tracker
 WHERE t.scorer = 'ks_s' AND s.model = 'ks_reg' ORDER BY s.key_set;
-- later batches: every key again (all duplicates), in another order, and
-- in two concurrent-looking statements of one transaction
INSERT INTO ks_labels SELECT id, 3 FROM ks_keys ORDER BY id DESC;
BEGIN;
INSERT INTO ks_labels SELECT id, 4 FROM ks_keys WHERE id % 2 = 0;
INSERT INTO ks_labels SELECT id, 5 FROM ks_keys;
COMMIT;
SELECT count(*) AS outcomes,
	   count(*) FILTER (WHERE f.actual IS DISTINCT FROM o.actual) AS changed,
	   (SELECT sum(labelled) FROM streamml.live_metrics
		 WHERE scorer = 'ks_s' AND group_key IS NULL) AS labelled,
	   (SELECT sum(duplicates) FROM streamml.live_metrics
		 WHERE scorer = 'ks_s' AND group_key IS NULL) AS duplicates
  FROM streamml.outcomes o
  LEFT JOIN ks_first f ON f.model = o.model AND f.key_hash = o.key_hash
 WHERE o.scorer = 'ks_s';

-- a rolled-back batch rolls its bits back: the key is labelled again later
INSERT INTO ks_rows VALUES (5000, 1), (5001, 1);
BEGIN;
INSERT INTO ks_labels VALUES (5000, 6);
SELECT count(*) AS in_transaction FROM streamml.outcomes WHERE scorer = 'ks_s' AND key_hash = 5000;
ROLLBACK;
INSERT INTO ks_labels VALUES (5000, 7), (5001, 7);
SELECT key_hash, actual, count(*) AS models FROM streamml.outcomes
 WHERE scorer = 'ks_s' AND key_hash IN (5000, 5001) GROUP BY 1, 2 ORDER BY 1;

-- an outcome before its prediction: kept pending, joined once the row is
-- scored, and a second label of it is then a duplicate
INSERT INTO ks_labels VALUES (6000, 8);
SELECT count(*) AS pending FROM streamml.pending_outcomes p
  JOIN streamml.outcome_trackers t ON t.id = p.tracker WHERE t.scorer = 'ks_s';
INSERT INTO ks_rows VALUES (6000, 1);
INSERT INTO ks_labels VALUES (6000, 9);
SELECT key_hash, actual, count(*) AS models FROM streamml.outcomes
 WHERE scorer = 'ks_s' AND key_hash = 6000 GROUP BY 1, 2;

-- a set of more than 511 keys is a bitmap of 1,024 bytes: 510 keys are
-- offsets, then 90 more (and 10 duplicates) make it a bitmap, in which
-- the duplicates of later batches are found as before
INSERT INTO ks_rows SELECT 8192 * 5 + i, 1 FROM generate_series(0, 599) i;
INSERT INTO ks_labels SELECT 8192 * 5 + i, 1 FROM generate_series(0, 509) i;
CREATE TEMP VIEW ks_set5 AS
SELECT s.model, length(s.bits) AS bytes
  FROM streamml.outcome_key_sets s JOIN streamml.outcome_trackers t ON t.id = s.tracker
 WHERE t.scorer = 'ks_s' AND s.key_set = 5;
SELECT * FROM ks_set5 ORDER BY model;
INSERT INTO ks_labels SELECT 8192 * 5 + i, 2 FROM generate_series(500, 599) i;
SELECT v.model, v.bytes, (SELECT count(*) FROM generate_series(0, 8191) b
							WHERE get_bit(s.bits, b) = 1) AS keys
  FROM ks_set5 v JOIN streamml.outcome_key_sets s ON s.model = v.model AND s.key_set = 5
  JOIN streamml.outcome_trackers t ON t.id = s.tracker AND t.scorer = 'ks_s'
 ORDER BY model;
INSERT INTO ks_labels SELECT 8192 * 5 + i, 3 FROM generate_series(0, 599, 7) i;
SELECT count(*) AS outcomes, count(*) FILTER (WHERE actual = 2) AS from_second,
	   count(*) FILTER (WHERE actual = 3) AS from_third
  FROM streamml.outcomes WHERE scorer = 'ks_s' AND key_hash BETWEEN 8192 * 5 AND 8192 * 5 + 599;

-- a batch reads and writes its own sets only, however many the tracker
-- has: 300 more sets, then twelve batches of one key each (past the plan
-- cache's five custom plans: a generic plan once joined the batch's sets
-- with all the tracker's, a merge join read at every batch), then one in
-- a transaction whose own counts of the table are read
INSERT INTO ks_rows SELECT 100000 + 8192 * i, 1 FROM generate_series(0, 311) i;
INSERT INTO ks_labels SELECT 100000 + 8192 * i, 1 FROM generate_series(0, 299) i;
SELECT format('INSERT INTO ks_labels VALUES (%s, 1)', 100000 + 8192 * i)
  FROM generate_series(300, 310) i \gexec
CREATE TEMP VIEW ks_counts AS
SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) AS rows_read, n_tup_upd AS updated,
	   n_tup_ins AS inserted
  FROM pg_stat_xact_user_tables
 WHERE schemaname = 'streamml' AND relname = 'outcome_key_sets';
BEGIN;
SELECT rows_read AS read0, updated AS updated0, inserted AS inserted0 FROM ks_counts \gset
INSERT INTO ks_labels VALUES (100000 + 8192 * 311, 1), (100000 + 8192 * 5, 2);
SELECT rows_read - :read0 AS rows_read, updated - :updated0 AS updated,
	   inserted - :inserted0 AS inserted
  FROM ks_counts;
COMMIT;
SELECT count(*) AS outcomes, count(DISTINCT key_hash) AS keys FROM streamml.outcomes
 WHERE scorer = 'ks_s' AND key_hash >= 100000;

-- and a batch of predictions reads the pending outcomes of its own keys
-- only, however many the tracker has (a hash join once read them all)
INSERT INTO ks_labels SELECT 900000 + i, 1 FROM generate_series(1, 500) i;
SELECT format('INSERT INTO ks_rows VALUES (%s, 1)', 900000 + i)
  FROM generate_series(1, 7) i \gexec
CREATE TEMP VIEW ks_pending_counts AS
SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) AS rows_read, n_tup_del AS deleted
  FROM pg_stat_xact_user_tables
 WHERE schemaname = 'streamml' AND relname = 'pending_outcomes';
BEGIN;
SELECT rows_read AS read0, deleted AS deleted0 FROM ks_pending_counts \gset
INSERT INTO ks_rows VALUES (900100, 1), (900200, 1);
SELECT rows_read - :read0 AS rows_read, deleted - :deleted0 AS deleted
  FROM ks_pending_counts;
COMMIT;
SELECT count(*) AS outcomes, count(DISTINCT key_hash) AS keys,
	   (SELECT count(*) FROM streamml.pending_outcomes p
		  JOIN streamml.outcome_trackers t ON t.id = p.tracker
		 WHERE t.scorer = 'ks_s') AS pending
  FROM streamml.outcomes WHERE scorer = 'ks_s' AND key_hash BETWEEN 900000 AND 900500;

-- a key of two columns is hashed (jsonb_hash_extended): it keeps the
-- unique index on outcome_rows, and its duplicates are found there
CREATE TABLE ks_two (a int, b text, x float8, PRIMARY KEY (a, b));
SELECT streamml.create_scorer('ks_two_s', 'ks_two', 'ks_reg', '{"key": ["a", "b"]}');
CREATE TABLE ks_two_labels (a int, b text, y float8);
SELECT streamml.track_outcomes('ks_two_s', 'ks_two_labels', '{"actual": "y"}');
INSERT INTO ks_two VALUES (1, 'p', 1), (1, 'q', 1), (2, 'p', 1);
INSERT INTO ks_two_labels VALUES (1, 'p', 1), (1, 'q', 1);
INSERT INTO ks_two_labels VALUES (1, 'p', 2), (2, 'p', 1);
SELECT key, actual FROM streamml.outcomes WHERE scorer = 'ks_two_s' ORDER BY key::text;
SELECT count(*) AS sets FROM streamml.outcome_key_sets s
  JOIN streamml.outcome_trackers t ON t.id = s.tracker WHERE t.scorer = 'ks_two_s';

-- Nobody writes the sets but the extension, and a role sees only the sets
-- of the trackers whose owner's privileges it has.
CREATE ROLE ks_other;
SET ROLE ks_other;
SELECT count(*) AS visible FROM streamml.outcome_key_sets;
INSERT INTO streamml.outcome_key_sets VALUES (1, 'ks_reg', 1, 0, '\x00', 'ks_other');
UPDATE streamml.outcome_key_sets SET bits = '\x00';
DELETE FROM streamml.outcome_key_sets;
RESET ROLE;
DROP ROLE ks_other;

-- untrack_outcomes deletes them
SELECT streamml.untrack_outcomes(s) FROM unnest(ARRAY['ks_s', 'ks_two_s']) s;
SELECT count(*) AS left_behind FROM streamml.outcome_key_sets s
 WHERE NOT EXISTS (SELECT 1 FROM streamml.outcome_trackers t WHERE t.id = s.tracker);
SELECT streamml.drop_scorer(s) FROM unnest(ARRAY['ks_s', 'ks_two_s']) s;
SELECT streamml.drop_model(m) FROM unnest(ARRAY['ks_reg', 'ks_reg2']) m;
DROP TABLE ks_rows, ks_labels, ks_two, ks_two_labels, ks_train;
