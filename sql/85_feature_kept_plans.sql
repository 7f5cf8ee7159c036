-- A feature table reads a partition back (to rebuild its state, or to
-- catch up with rows another session wrote) by its (partition,
-- arrival_seq) index, whatever the statistics: the statements are kept
-- for the backend, and a plan made while the table was nearly empty (a
-- stream's first partitions) once read a whole partition by bitmap and
-- sorted it, to take its newest rows.
CREATE TABLE kp (sym text, ts timestamptz, price float8);
SELECT streamml.create_feature_table('kp_f', 'kp',
	'{"partition_by": "sym", "order_by": "ts",
	  "features": {"m": {"fn": "mean", "of": "price", "preceding": 5}}}');
-- eight partitions, one statement each: eight rebuilds while the table
-- is nearly empty (past the plan cache's five custom plans)
SELECT format('INSERT INTO kp VALUES (%L, %L, 1)', 'p' || i,
			  timestamptz '2026-01-01' + i * interval '1 s')
  FROM generate_series(1, 8) i \gexec
INSERT INTO kp SELECT 'p1', timestamptz '2026-01-02' + i * interval '1 ms', i
  FROM generate_series(1, 5000) i;
CREATE TEMP VIEW kp_counts AS
SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) AS rows_read
  FROM pg_stat_xact_user_tables WHERE relname = 'kp_f';
-- a rolled-back subtransaction drops the partition's state: the next row
-- of p1 rebuilds it from its newest rows only
BEGIN;
SAVEPOINT s;
INSERT INTO kp VALUES ('p1', '2026-01-03', 1);
ROLLBACK TO s;
SELECT rows_read AS read0 FROM kp_counts \gset
INSERT INTO kp VALUES ('p1', '2026-01-03', 2);
SELECT rows_read - :read0 AS rows_read, rows_read - :read0 < 100 AS read_newest_only FROM kp_counts;
COMMIT;
-- and the feature is the mean of the newest row and the five before it
SELECT m FROM kp_f WHERE sym = 'p1' ORDER BY arrival_seq DESC LIMIT 1;
SELECT avg(price) FROM (SELECT price FROM kp WHERE sym = 'p1' ORDER BY ts DESC LIMIT 6) s;
SELECT streamml.drop_feature_table('kp_f');
DROP TABLE kp;
