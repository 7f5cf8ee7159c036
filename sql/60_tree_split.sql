-- The holdout split of a tree run found in its one scan (split_scan.c)
-- against the split by query (percentile_disc) that other runs use: ties
-- at the cutoff all train, NULL order_by rows are in neither side, rows
-- skipped for their target or an infinite feature count on their side.
CREATE TABLE split_t (t int, ts timestamptz, tx text, g text, x1 float8,
	x2 float8, y boolean);
INSERT INTO split_t
SELECT CASE WHEN i % 23 = 0 THEN NULL ELSE i / 7 END,
	   '2026-01-01'::timestamptz + (i / 7) * interval '1 hour',
	   pg_catalog.lpad((i / 7)::text, 4, '0'), 'one',
	   CASE WHEN i % 31 = 0 THEN 'infinity' WHEN i % 11 = 0 THEN NULL
			ELSE pg_catalog.sin(i) END,
	   pg_catalog.cos(i * 1.3),
	   CASE WHEN i % 29 = 0 THEN NULL ELSE pg_catalog.sin(i) + pg_catalog.cos(i * 1.3) > 0.2 END
  FROM pg_catalog.generate_series(1, 400) i;
-- the split by SQL: the cutoff and the rows of each side
CREATE TABLE split_expected AS
SELECT c.cutoff, c.newest,
	   (SELECT pg_catalog.count(*) FROM split_t WHERE t <= c.cutoff AND y IS NOT NULL AND x1 IS DISTINCT FROM 'infinity') AS train_rows,
	   (SELECT pg_catalog.count(*) FROM split_t WHERE t <= c.cutoff AND NOT (y IS NOT NULL AND x1 IS DISTINCT FROM 'infinity')) AS train_skipped,
	   (SELECT pg_catalog.count(*) FROM split_t WHERE t IS NULL) AS null_order,
	   (SELECT pg_catalog.count(*) FROM split_t WHERE t > c.cutoff AND y IS NOT NULL AND x1 IS DISTINCT FROM 'infinity') AS test_rows
  FROM (SELECT pg_catalog.percentile_disc(0.7) WITHIN GROUP (ORDER BY t) AS cutoff,
			   pg_catalog.max(t) AS newest FROM split_t) c;
-- x1 NULL is a missing value (kept), x1 infinite skips the row
SELECT cutoff, newest, train_rows, train_skipped, null_order, test_rows FROM split_expected;
-- the tree run (split in the scan) counts and cuts as the query does
SELECT s.rows_used = e.train_rows AS rows_ok,
	   s.rows_skipped = e.train_skipped + e.null_order AS skipped_ok,
	   (s.metrics->>'rows')::bigint = e.test_rows AS holdout_ok
  FROM streamml.train_tree('split_tree', 'split_t', 'y', ARRAY['x1', 'x2'],
	'{"test_fraction": 0.3, "order_by": "t", "threads": 1}') s, split_expected e;
SELECT v.data_cutoff = e.cutoff::text AS cutoff_ok, v.data_max = e.newest::text AS newest_ok
  FROM streamml.model_versions v, split_expected e WHERE v.model = 'split_tree';
-- the same rows by the query split: a per-group run with one group (its
-- rows_skipped leaves out the NULL order_by rows, which are in no group)
SELECT rows_used, rows_skipped, metrics->>'rows' AS holdout_rows
  FROM streamml.train_tree('split_tree_g', 'split_t', 'y', ARRAY['x1', 'x2'],
	'{"test_fraction": 0.3, "order_by": "t", "group_by": "g", "threads": 1}');
SELECT rows_used, rows_skipped, metrics->>'rows' AS holdout_rows, data_cutoff, data_max
  FROM streamml.model_versions WHERE model IN ('split_tree', 'split_tree_g') ORDER BY model;
-- both trained on the same rows: the same holdout metrics
SELECT a.metrics = b.metrics AS same_metrics
  FROM streamml.model_versions a, streamml.model_versions b
 WHERE a.model = 'split_tree' AND b.model = 'split_tree_g';
-- a timestamptz order_by in the scan, a text one (passed by reference) by
-- query: the same cutoff row, the same sides
SELECT rows_used, rows_skipped, metrics->>'rows' AS holdout_rows
  FROM streamml.train_tree('split_ts', 'split_t', 'y', ARRAY['x1', 'x2'],
	'{"test_fraction": 0.3, "order_by": "ts", "threads": 1}');
SELECT data_cutoff::timestamptz = (SELECT pg_catalog.percentile_disc(0.7) WITHIN GROUP (ORDER BY ts) FROM split_t) AS ts_cutoff_ok
  FROM streamml.model_versions WHERE model = 'split_ts';
SELECT rows_used, rows_skipped, metrics->>'rows' AS holdout_rows
  FROM streamml.train_tree('split_tx', 'split_t', 'y', ARRAY['x1', 'x2'],
	'{"test_fraction": 0.3, "order_by": "tx", "threads": 1}');
SELECT data_cutoff, data_max FROM streamml.model_versions WHERE model = 'split_tx';
-- every order_by value NULL: no split can be made, an error (before, every
-- row trained, was counted skipped, and was scored as the holdout); the
-- query path (a GLM, a grouped tree) says the same; without a holdout
-- every row trains
CREATE TABLE split_nulls AS SELECT NULL::int AS t, x1, x2, y FROM split_t;
SELECT rows_used, rows_skipped, metrics->>'on' AS "on", metrics->>'rows' AS rows
  FROM streamml.train_tree('split_nulls', 'split_nulls', 'y', ARRAY['x1', 'x2'],
	'{"test_fraction": 0.3, "order_by": "t", "threads": 1}');
SELECT rows_used FROM streamml.train_logreg('split_nulls', 'split_nulls', 'y', ARRAY['x1', 'x2'],
	'{"test_fraction": 0.3, "order_by": "t"}');
SELECT rows_used FROM streamml.train_tree('split_nulls', 'split_nulls', 'y', ARRAY['x1', 'x2'],
	'{"test_fraction": 0.3, "order_by": "t", "threads": 1, "group_by": "x1"}');
SELECT rows_used, rows_skipped
  FROM streamml.train_tree('split_nulls', 'split_nulls', 'y', ARRAY['x1', 'x2'],
	'{"test_fraction": 0, "order_by": "t", "threads": 1}');
-- the drift bins of a tree run: its training rows without a missing value,
-- as the shortest decimals of their single-precision values
SELECT (v.feature_bins->>'rows')::bigint = (SELECT pg_catalog.count(*) FROM split_t, split_expected e
		WHERE t <= e.cutoff AND y IS NOT NULL AND x1 < 'infinity' AND x1 IS NOT NULL) AS bins_rows_ok,
	   v.feature_bins->'features'->'x2'->'bins'->>0 AS x2_min,
	   (SELECT pg_catalog.min(x2)::float4::text FROM split_t, split_expected e
		 WHERE t <= e.cutoff AND y IS NOT NULL AND x1 < 'infinity' AND x1 IS NOT NULL) AS x2_min_float4
  FROM streamml.model_versions v WHERE v.model = 'split_tree';
-- the session's extra_float_digits does not round the cutoff: a float8
-- order_by splits alike in the scan and by query (training prints its
-- values exactly, whatever the session's settings)
CREATE TABLE split_fine AS SELECT (1764547200.1234567 + i * 0.0000003)::float8 AS o,
	   pg_catalog.sin(i) AS x, pg_catalog.sin(i) + pg_catalog.cos(i) AS y, 1 AS g
  FROM pg_catalog.generate_series(1, 1000) i;
SET extra_float_digits = 0;
SET DateStyle = 'SQL, DMY';
SELECT rows_used, metrics->>'rows' AS holdout_rows FROM streamml.train_gbt('split_fine_t', 'split_fine', 'y', ARRAY['x'],
	'{"test_fraction": 0.2, "order_by": "o", "threads": 1, "trees": 3}');
SELECT rows_used, metrics->>'rows' AS holdout_rows FROM streamml.train_gbt('split_fine_g', 'split_fine', 'y', ARRAY['x'],
	'{"test_fraction": 0.2, "order_by": "o", "group_by": "g", "threads": 1, "trees": 3}');
SELECT rows_used, metrics->>'rows' AS holdout_rows FROM streamml.train_linreg('split_fine_l', 'split_fine', 'y', ARRAY['x'],
	'{"test_fraction": 0.2, "order_by": "o"}');
RESET extra_float_digits;
RESET DateStyle;
SELECT count(DISTINCT data_cutoff) AS cutoffs,
	   bool_and(data_cutoff::float8 = (SELECT pg_catalog.percentile_disc(0.8) WITHIN GROUP (ORDER BY o) FROM split_fine)) AS exact
  FROM streamml.model_versions WHERE model LIKE 'split_fine_%';
SELECT streamml.drop_model(m) FROM (VALUES ('split_fine_t'), ('split_fine_g'), ('split_fine_l')) d(m);
DROP TABLE split_fine;
-- a value beyond single precision (XGBoost's) skips its row, as an
-- infinite one does: in a feature, a label, the holdout
CREATE TABLE split_huge AS SELECT i AS t, pg_catalog.sin(i) AS x,
	   pg_catalog.sin(i) + pg_catalog.cos(i) AS y FROM pg_catalog.generate_series(1, 200) i;
UPDATE split_huge SET x = 1e300 WHERE t = 5;
UPDATE split_huge SET y = -1e300 WHERE t IN (7, 190);
SELECT rows_used, rows_skipped, metrics->>'rows' AS holdout_rows
  FROM streamml.train_gbt('split_huge', 'split_huge', 'y', ARRAY['x'],
	'{"test_fraction": 0.2, "order_by": "t", "threads": 1, "trees": 3}');
SELECT streamml.drop_model('split_huge');
DROP TABLE split_huge;
-- a boolean order_by is refused, by the scan and by the query alike
CREATE TABLE split_bool AS SELECT (i % 2 = 0) AS b, pg_catalog.sin(i) AS x, pg_catalog.cos(i) AS y, 1 AS g
  FROM pg_catalog.generate_series(1, 50) i;
SELECT rows_used FROM streamml.train_tree('split_bool', 'split_bool', 'y', ARRAY['x'],
	'{"test_fraction": 0.2, "order_by": "b", "threads": 1}');
SELECT rows_used FROM streamml.train_tree('split_bool', 'split_bool', 'y', ARRAY['x'],
	'{"test_fraction": 0.2, "order_by": "b", "group_by": "g", "threads": 1}');
DROP TABLE split_bool;
-- a group whose every row is skipped gets no model, and a NOTICE says so
CREATE TABLE split_empty AS
SELECT t, x1, x2, CASE WHEN t % 3 = 0 THEN NULL ELSE y END AS y,
	   CASE WHEN t % 3 = 0 THEN 'b' ELSE 'a' END AS g
  FROM split_t WHERE t IS NOT NULL;
SELECT group_key, rows_used FROM streamml.train_logreg('split_empty', 'split_empty', 'y', ARRAY['x2'],
	'{"group_by": "g"}') ORDER BY 1;
SELECT group_key, rows_used FROM streamml.train_tree('split_empty', 'split_empty', 'y', ARRAY['x2'],
	'{"group_by": "g", "threads": 1}') ORDER BY 1;
SELECT streamml.drop_model('split_empty');
DROP TABLE split_empty;
SELECT streamml.drop_model(m) FROM (VALUES ('split_tree'), ('split_tree_g'), ('split_ts'), ('split_tx'), ('split_nulls')) d(m);
DROP TABLE split_t, split_expected, split_nulls;
