-- A horizon tracker joins the rows its loading statement scored with the
-- predictions that statement's scorer kept in memory (src/quality/predstash.c),
-- instead of reading them back from the predictions table, for keys above
-- the tracker's floor (outcome_trackers.stash_floor).  The same rows are
-- loaded into two tables, one read in C (with the in-memory join) and one by
-- the SQL statement (a partial index: the C path declines), and their
-- outcomes compared after every way the predictions table can get rows the
-- statement did not write: a row inserted by hand, an UPDATE, a promotion
-- (the former champion's rows), a key loaded twice.
CREATE TABLE ps_train AS
SELECT i::float8 AS x, 2.0 * i + 1 AS y FROM generate_series(1, 50) i;
SELECT model, version FROM streamml.train_linreg('ps_m1', 'ps_train', 'y', ARRAY['x']);
SELECT model, version FROM streamml.train_linreg('ps_m2', 'ps_train', 'y', ARRAY['x'],
	'{"l2": 10}');

CREATE TABLE ps_c (id bigint, sym text, t int, x float8, price float8);
CREATE INDEX ON ps_c (sym COLLATE "C", t);
CREATE TABLE ps_s (id bigint, sym text, t int, x float8, price float8);
CREATE INDEX ON ps_s (sym, t) WHERE sym IS NOT NULL;
SELECT streamml.create_scorer('ps_c_s', 'ps_c', 'ps_m1', '{"key": "id"}');
SELECT streamml.create_scorer('ps_s_s', 'ps_s', 'ps_m1', '{"key": "id"}');
-- rows scored before the tracker: the floor starts at their last key
INSERT INTO ps_c VALUES (1, 'A', 1, 1, 101);
INSERT INTO ps_s VALUES (1, 'A', 1, 1, 101);
SELECT streamml.track_outcomes(s, t, '{"actual": "price", "horizon": 2,
	"partition_by": "sym", "order_by": "t"}')
  FROM (VALUES ('ps_c_s', 'ps_c'::regclass), ('ps_s_s', 'ps_s'::regclass)) v(s, t);
SELECT scorer, stash_floor FROM streamml.outcome_trackers
 WHERE scorer LIKE 'ps\_%' ORDER BY 1;

CREATE FUNCTION ps_batch(q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE 'INSERT INTO ps_c ' || q;
	EXECUTE 'INSERT INTO ps_s ' || q;
END
$$;
-- outcomes of the two tables compared, key by key and model by model
CREATE FUNCTION ps_compare(OUT outcomes bigint, OUT differing bigint)
LANGUAGE sql AS $$
SELECT count(*),
	   count(*) FILTER (WHERE c.key IS NULL OR s.key IS NULL
						OR c.actual IS DISTINCT FROM s.actual
						OR c.prediction IS DISTINCT FROM s.prediction
						OR c.loss IS DISTINCT FROM s.loss
						OR c.role IS DISTINCT FROM s.role
						OR c.predicted_at IS NULL OR s.predicted_at IS NULL)
  FROM (SELECT * FROM streamml.outcomes WHERE scorer = 'ps_c_s') c
  FULL JOIN (SELECT * FROM streamml.outcomes WHERE scorer = 'ps_s_s') s
	ON s.key = c.key AND s.model = c.model AND s.version = c.version
$$;

-- Two symbols interleaved, a tick every unit each: every batch labels its
-- own rows but the last two of each symbol, and the previous batch's.
-- The predictions read back from the index: few (the previous batch's).
BEGIN;
-- (the view sums the transactions whose counts are not sent yet: a difference)
SELECT coalesce(idx_tup_fetch, 0) AS fetched FROM pg_stat_xact_user_tables
 WHERE relname = 'ps_c_s' \gset
SELECT ps_batch($q$SELECT i, CASE WHEN i % 2 = 0 THEN 'A' ELSE 'B' END, i / 2 + 1,
	i % 10, 100 + i FROM generate_series(2, 101) i$q$);
SELECT idx_tup_fetch - :fetched < 10 AS few_index_fetches FROM pg_stat_xact_user_tables
 WHERE relname = 'ps_c_s';
COMMIT;
SELECT ps_batch($q$SELECT i, CASE WHEN i % 2 = 0 THEN 'A' ELSE 'B' END, i / 2 + 1,
	i % 10, 100 + i FROM generate_series(102, 201) i$q$);
SELECT * FROM ps_compare();

-- A prediction of a key not loaded yet, written by hand under another
-- model: the in-memory join stops (the floor is NULL), and when the key
-- is loaded both its predictions are joined with its outcome.
INSERT INTO ps_c_s (id, model, version, prediction, scored_at)
VALUES (300, 'by_hand', 1, 42, now());
INSERT INTO ps_s_s (id, model, version, prediction, scored_at)
VALUES (300, 'by_hand', 1, 42, now());
SELECT scorer, stash_floor FROM streamml.outcome_trackers
 WHERE scorer LIKE 'ps\_%' ORDER BY 1;
SELECT ps_batch($q$VALUES (300, 'C', 1, 1, 1), (301, 'C', 5, 1, 2)$q$);
SELECT model, actual FROM streamml.outcomes
 WHERE scorer = 'ps_c_s' AND key = '{"id": 300}' ORDER BY model;
SELECT * FROM ps_compare();

-- A change of the scorer's models sets the floor again, to the last key:
-- the former champion's rows are all at or below it.
SELECT streamml.set_challengers(s, ARRAY['ps_m2'])
  FROM unnest(ARRAY['ps_c_s', 'ps_s_s']) s;
SELECT streamml.promote(s, 'ps_m2') FROM unnest(ARRAY['ps_c_s', 'ps_s_s']) s;
SELECT scorer, stash_floor FROM streamml.outcome_trackers
 WHERE scorer LIKE 'ps\_%' ORDER BY 1;
-- key 150, scored by ps_m1 before, loaded again: both predictions joined
SELECT ps_batch($q$VALUES (150, 'D', 1, 3, 10), (400, 'D', 2, 1, 20), (401, 'D', 5, 1, 30)$q$);
SELECT model, actual FROM streamml.outcomes
 WHERE scorer = 'ps_c_s' AND key = '{"id": 150}' ORDER BY model;
-- new keys above the floor: from memory again
BEGIN;
-- (the view sums the transactions whose counts are not sent yet: a difference)
SELECT coalesce(idx_tup_fetch, 0) AS fetched FROM pg_stat_xact_user_tables
 WHERE relname = 'ps_c_s' \gset
SELECT ps_batch($q$SELECT i, CASE WHEN i % 2 = 0 THEN 'A' ELSE 'B' END, i / 2 + 1,
	i % 10, 100 + i FROM generate_series(500, 599) i$q$);
SELECT idx_tup_fetch - :fetched < 10 AS few_index_fetches FROM pg_stat_xact_user_tables
 WHERE relname = 'ps_c_s';
COMMIT;
SELECT * FROM ps_compare();

-- An UPDATE of the predictions stops the in-memory join too.
UPDATE ps_c_s SET prediction = prediction WHERE id = 1;
SELECT stash_floor FROM streamml.outcome_trackers WHERE scorer = 'ps_c_s';
-- (every labelled key's prediction read back from the table)
BEGIN;
-- (the view sums the transactions whose counts are not sent yet: a difference)
SELECT coalesce(idx_tup_fetch, 0) AS fetched FROM pg_stat_xact_user_tables
 WHERE relname = 'ps_c_s' \gset
SELECT ps_batch($q$SELECT i, CASE WHEN i % 2 = 0 THEN 'A' ELSE 'B' END, i / 2 + 1,
	i % 10, 100 + i FROM generate_series(600, 699) i$q$);
SELECT idx_tup_fetch - :fetched >= 90 AS read_back FROM pg_stat_xact_user_tables
 WHERE relname = 'ps_c_s';
COMMIT;
SELECT * FROM ps_compare();

-- A rolled-back subtransaction's predictions are not joined from memory.
BEGIN;
SAVEPOINT a;
INSERT INTO ps_c VALUES (800, 'E', 1, 1, 1);
ROLLBACK TO a;
INSERT INTO ps_c VALUES (801, 'E', 5, 1, 1);
COMMIT;
SELECT count(*) FROM streamml.outcomes WHERE scorer = 'ps_c_s' AND key = '{"id": 800}';

-- A per-group model (the tracker takes its group column): the C path reads
-- each outcome's group from its labelled row, as streamml.group_key gives
-- it, and gives the SQL statement's outcomes and live_metrics per group.
CREATE TABLE ps_gtrain AS
SELECT i::float8 AS x, CASE WHEN i % 2 = 0 THEN 'A' ELSE 'B' END AS sym,
	   CASE WHEN i % 2 = 0 THEN 2.0 ELSE 3.0 END * i AS y
  FROM generate_series(1, 60) i;
SELECT model, version FROM streamml.train_linreg('ps_g', 'ps_gtrain', 'y', ARRAY['x'],
	'{"group_by": "sym"}');
CREATE TABLE ps_gc (id bigint, sym text, t int, x float8, price float8);
CREATE INDEX ON ps_gc (sym COLLATE "C", t);
CREATE TABLE ps_gs (id bigint, sym text, t int, x float8, price float8);
CREATE INDEX ON ps_gs (sym, t) WHERE sym IS NOT NULL;
SELECT streamml.create_scorer(s, t, 'ps_g', '{"key": "id"}')
  FROM (VALUES ('ps_gc_s', 'ps_gc'::regclass), ('ps_gs_s', 'ps_gs'::regclass)) v(s, t);
SELECT streamml.track_outcomes(s, t, '{"actual": "price", "horizon": 2,
	"partition_by": "sym", "order_by": "t"}')
  FROM (VALUES ('ps_gc_s', 'ps_gc'::regclass), ('ps_gs_s', 'ps_gs'::regclass)) v(s, t);
SELECT scorer, group_column, stash_floor FROM streamml.outcome_trackers
 WHERE scorer LIKE 'ps\_g%' ORDER BY 1;
-- groups A and B, C unknown to the model (NULL predictions), NULL partitions
INSERT INTO ps_gc SELECT i, CASE WHEN i % 17 = 0 THEN NULL ELSE chr(65 + i % 3) END,
	i / 3 + 1, i % 10, 100 + i FROM generate_series(1, 120) i;
INSERT INTO ps_gs SELECT i, CASE WHEN i % 17 = 0 THEN NULL ELSE chr(65 + i % 3) END,
	i / 3 + 1, i % 10, 100 + i FROM generate_series(1, 120) i;
INSERT INTO ps_gc SELECT i, chr(65 + i % 3), i / 3 + 1, i % 10, 100 + i
  FROM generate_series(121, 200) i;
INSERT INTO ps_gs SELECT i, chr(65 + i % 3), i / 3 + 1, i % 10, 100 + i
  FROM generate_series(121, 200) i;
SELECT count(*) AS outcomes,
	   count(*) FILTER (WHERE c.key IS NULL OR s.key IS NULL
						OR c.group_key IS DISTINCT FROM s.group_key
						OR c.actual IS DISTINCT FROM s.actual
						OR c.prediction IS DISTINCT FROM s.prediction) AS differing
  FROM (SELECT * FROM streamml.outcomes WHERE scorer = 'ps_gc_s') c
  FULL JOIN (SELECT * FROM streamml.outcomes WHERE scorer = 'ps_gs_s') s
	ON s.key = c.key AND s.model = c.model AND s.version = c.version;
SELECT group_key, sum(labelled) AS labelled, round(sum(rmse * labelled)::numeric, 6) AS rmse_w
  FROM streamml.live_metrics WHERE scorer = 'ps_gc_s' GROUP BY 1 ORDER BY 1;
SELECT group_key, sum(labelled) AS labelled, round(sum(rmse * labelled)::numeric, 6) AS rmse_w
  FROM streamml.live_metrics WHERE scorer = 'ps_gs_s' GROUP BY 1 ORDER BY 1;
SELECT streamml.untrack_outcomes(s) FROM unnest(ARRAY['ps_gc_s', 'ps_gs_s']) s;
SELECT streamml.drop_scorer(s) FROM unnest(ARRAY['ps_gc_s', 'ps_gs_s']) s;
DROP TABLE ps_gc, ps_gs, ps_gc_s, ps_gs_s, ps_gtrain;
SELECT streamml.drop_model('ps_g');

SELECT streamml.untrack_outcomes(s) FROM unnest(ARRAY['ps_c_s', 'ps_s_s']) s;
SELECT streamml.drop_scorer(s) FROM unnest(ARRAY['ps_c_s', 'ps_s_s']) s;
DROP TABLE ps_c, ps_s, ps_c_s, ps_s_s, ps_train;
DROP FUNCTION ps_batch(text), ps_compare();
SELECT streamml.drop_model(m) FROM unnest(ARRAY['ps_m1', 'ps_m2']) m;
