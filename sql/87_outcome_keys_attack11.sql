-- Attacks on the outcome key sets (src/quality/outcomekeys.c, attacker
-- 11): a subtransaction rolled back takes its keys' bits with it (they
-- are recorded again, not found duplicates), a set that grows past 511
-- offsets to a bitmap in a later batch keeps finding duplicates, and a
-- set a superuser damaged is named, with its model, version and tracker,
-- in a data_corrupted error (once an internal error naming a tracker id).
CREATE TABLE ak_train AS
SELECT i::float8 AS x, 2.0 * i + 1 AS y FROM generate_series(1, 50) i;
SELECT model, version FROM streamml.train_linreg('ak_reg', 'ak_train', 'y', ARRAY['x']);
CREATE TABLE ak_rows (id bigint PRIMARY KEY, x float8);
SELECT streamml.create_scorer('ak_s', 'ak_rows', 'ak_reg');
CREATE TABLE ak_labels (id bigint, y float8);
SELECT streamml.track_outcomes('ak_s', 'ak_labels', '{"actual": "y"}');
INSERT INTO ak_rows SELECT i, 1 FROM generate_series(-700, 700) i;
CREATE VIEW ak_sets AS
SELECT s.key_set, length(s.bits) AS bytes
  FROM streamml.outcome_key_sets s JOIN streamml.outcome_trackers t ON t.id = s.tracker
 WHERE t.scorer = 'ak_s' ORDER BY s.key_set;

-- a savepoint rolled back: its 511 keys are not kept, as set or outcomes
BEGIN;
SAVEPOINT a;
INSERT INTO ak_labels SELECT i, 1 FROM generate_series(1, 511) i;
SELECT * FROM ak_sets;
ROLLBACK TO a;
INSERT INTO ak_labels SELECT i, 2 FROM generate_series(1, 10) i;
COMMIT;
SELECT * FROM ak_sets;
SELECT count(*) AS outcomes, min(actual), max(actual)
  FROM streamml.outcomes WHERE scorer = 'ak_s';

-- to 511 offsets in one batch, then 512 (a bitmap) in the next, each with
-- the keys before again: one outcome per key
INSERT INTO ak_labels SELECT i, 3 FROM generate_series(1, 511) i;
SELECT * FROM ak_sets;
INSERT INTO ak_labels SELECT i, 4 FROM generate_series(1, 512) i;
SELECT * FROM ak_sets;
-- negative keys (set -1) beside: the bitmap set's keys are duplicates
INSERT INTO ak_labels SELECT i, 5 FROM generate_series(-600, 600) i;
SELECT * FROM ak_sets;
SELECT count(*) AS outcomes, count(DISTINCT key_hash) AS keys,
	   count(*) FILTER (WHERE actual = 2) AS from_batch_2
  FROM streamml.outcomes WHERE scorer = 'ak_s';

-- a superuser damages sets: the user's next label of those sets errs,
-- naming the set; other sets are unharmed
UPDATE streamml.outcome_key_sets SET bits = '\x000102'
 WHERE key_set = -1 AND tracker = (SELECT id FROM streamml.outcome_trackers WHERE scorer = 'ak_s');
INSERT INTO ak_labels VALUES (-5, 6);
UPDATE streamml.outcome_key_sets SET bits = '\x0001ffff'
 WHERE key_set = -1 AND tracker = (SELECT id FROM streamml.outcome_trackers WHERE scorer = 'ak_s');
INSERT INTO ak_labels VALUES (-5, 6);
INSERT INTO ak_labels VALUES (650, 6);
SELECT count(*) AS outcomes FROM streamml.outcomes WHERE scorer = 'ak_s';

-- cleanup
SELECT streamml.untrack_outcomes('ak_s');
SELECT streamml.drop_scorer('ak_s');
SELECT streamml.drop_model('ak_reg');
DROP VIEW ak_sets;
DROP TABLE ak_rows, ak_labels, ak_train;
