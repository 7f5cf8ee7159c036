-- The row forms of predict, predict_proba and predict_class over a table's
-- whole row are planned as calls that take the row's columns (a planner
-- support function, src/ml/predict_support.c).  Every result here is
-- compared with the row form, which the planner keeps for ROW(...), for a
-- subquery's row (OFFSET 0) and for a function's row.
SET max_parallel_workers_per_gather = 0;
CREATE TABLE pr (id int PRIMARY KEY, x1 float8, gone int, x2 int, cat text,
	grp text, y float8, label boolean);
INSERT INTO pr
SELECT i, (i % 17) * 0.25 - 2, i, i % 5, (ARRAY['a', 'b', 'c'])[i % 3 + 1],
	   CASE WHEN i % 2 = 0 THEN 'g1' ELSE 'g2' END,
	   1.5 * ((i % 17) * 0.25 - 2) - 0.5 * (i % 5) + CASE WHEN i % 3 = 1 THEN 2 ELSE 0 END
		 + ((i * 7919) % 101) / 101.0 - 0.5,
	   1.5 * ((i % 17) * 0.25 - 2) - 0.5 * (i % 5) + ((i * 37) % 13 - 6) * 0.5 > -1
  FROM generate_series(1, 300) i;
-- a dropped column before the features, and one added with a default after
ALTER TABLE pr DROP COLUMN gone;
ALTER TABLE pr ADD COLUMN note text DEFAULT 'n';

SELECT model, version, rows_used, deployed
  FROM streamml.train_linreg('pr_lin', 'pr', 'y', ARRAY['x1', 'x2', 'cat']);
SELECT model, version, rows_used, deployed
  FROM streamml.train_logreg('pr_log', 'pr', 'label', ARRAY['x1', 'cat', 'x2']);
SELECT model, version, rows_used, deployed
  FROM streamml.train_gbt('pr_gbt', 'pr', 'label', ARRAY['x2', 'x1', 'cat'],
	'{"trees": 10, "max_depth": 3, "threads": 1}');
SELECT model, version, rows_used, deployed
  FROM streamml.train_forest('pr_forest', 'pr', 'y', ARRAY['cat', 'x1', 'x2'],
	'{"trees": 5, "max_depth": 4, "threads": 1}');
SELECT model, version, rows_used, deployed
  FROM streamml.train_tree('pr_class', 'pr', 'cat', ARRAY['x1', 'y'],
	'{"max_depth": 4, "threads": 1}');
SELECT model, version, group_key, rows_used, deployed
  FROM streamml.train_linreg('pr_grp', 'pr', 'y', ARRAY['x1', 'x2'],
	'{"group_by": "grp"}') ORDER BY group_key;
-- rows after training: NULL features, a NULL group, an unseen category,
-- a row of NULLs
INSERT INTO pr (id, x1, x2, cat, grp, y, label) VALUES
	(301, NULL, 1, 'a', 'g1', 0, true), (302, 0.5, NULL, 'b', 'g2', 0, false),
	(303, 0.5, 2, NULL, 'g1', 0, true), (304, 0.5, 2, 'zzz', NULL, 0, true),
	(305, NULL, NULL, NULL, NULL, NULL, NULL);

-- The rewrite: a whole-row Var of a table becomes the columns form, with
-- the row type, the row's tableoid and every column not dropped, in order.
EXPLAIN (VERBOSE, COSTS OFF)
SELECT streamml.predict('pr_lin', t), streamml.predict_proba('pr_gbt', t),
	   streamml.predict_class('pr_class', t) FROM pr t;
-- ROW(...), a subquery's row and a function's row keep the row form.
EXPLAIN (VERBOSE, COSTS OFF)
SELECT streamml.predict('pr_lin', ROW(t.*)::pr) FROM pr t;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT streamml.predict('pr_lin', s) FROM (SELECT * FROM pr OFFSET 0) s;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT streamml.predict('pr_lin', f) FROM pg_catalog.unnest(ARRAY(SELECT t FROM pr t)) f;
-- nor does a row of an outer query level
EXPLAIN (VERBOSE, COSTS OFF)
SELECT (SELECT streamml.predict('pr_lin', t)) FROM pr t;
SELECT count(*) AS rows, count(*) FILTER (WHERE a IS DISTINCT FROM b) AS differ
  FROM (SELECT (SELECT streamml.predict('pr_lin', t)) AS a,
			   streamml.predict('pr_lin', t) AS b FROM pr t) x;

-- Scores every row of a table both ways in one query, the whole row
-- (rewritten) and ROW(t.*) cast to the row type (the row form), and says
-- whether the plan has both forms; differ counts the rows whose results
-- are distinct (a NULL on one side only is a difference).
CREATE FUNCTION pr_compare(fn text, model text, tbl regclass)
RETURNS TABLE (function text, model_name text, rewritten boolean,
			   rows bigint, nonnull bigint, differ bigint)
LANGUAGE plpgsql AS $$
DECLARE
	q text := format(
		'SELECT count(*), count(a), count(*) FILTER (WHERE a IS DISTINCT FROM b)
		   FROM (SELECT streamml.%1$I(%2$L, t) AS a,
						streamml.%1$I(%2$L, ROW(t.*)::%3$s) AS b FROM %3$s t) x',
		fn, model, tbl);
	plan text := '';
	line text;
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP
		plan := plan || line;
	END LOOP;
	RETURN QUERY EXECUTE format('SELECT %L::text, %L::text, %L::boolean, c.*
		FROM (%s) c', fn, model,
		plan LIKE format('%%streamml.%s_columns(%%', fn) AND
		plan LIKE format('%%streamml.%s(%%ROW(%%', fn), q);
END $$;

-- Linear, logistic, trees: the same results (a categorical column, NULL
-- features, a row of NULLs, an unseen category).
SELECT * FROM pr_compare('predict', 'pr_lin', 'pr');
SELECT * FROM pr_compare('predict', 'pr_log', 'pr');
SELECT * FROM pr_compare('predict_proba', 'pr_log', 'pr');
SELECT * FROM pr_compare('predict_class', 'pr_log', 'pr');
SELECT * FROM pr_compare('predict', 'pr_gbt', 'pr');
SELECT * FROM pr_compare('predict_proba', 'pr_gbt', 'pr');
SELECT * FROM pr_compare('predict_class', 'pr_gbt', 'pr');
SELECT * FROM pr_compare('predict', 'pr_forest', 'pr');
SELECT * FROM pr_compare('predict_class', 'pr_class', 'pr');
SELECT * FROM pr_compare('predict', 'pr_grp', 'pr');
-- the special rows one by one
SELECT t.id, streamml.predict('pr_lin', t) AS lin,
	   round(streamml.predict_proba('pr_gbt', t)::numeric, 6) AS gbt,
	   round(streamml.predict('pr_forest', t)::numeric, 6) AS forest,
	   streamml.predict('pr_grp', t) IS NULL AS grp_null
  FROM pr t WHERE t.id > 300 ORDER BY t.id;

-- Unseen categories are counted the same: one row ('zzz') per call.
SELECT as_other, as_missing FROM streamml.unseen_categories()
 WHERE model = 'pr_lin' AND feature_column = 'cat';
SELECT count(streamml.predict('pr_lin', t)) FROM pr t;
SELECT as_other, as_missing FROM streamml.unseen_categories()
 WHERE model = 'pr_lin' AND feature_column = 'cat';
SELECT count(streamml.predict('pr_lin', s)) FROM (SELECT * FROM pr OFFSET 0) s;
SELECT as_other, as_missing FROM streamml.unseen_categories()
 WHERE model = 'pr_lin' AND feature_column = 'cat';

-- Errors are those of the row form: a row without a column the model
-- reads, a column of the wrong type, a group the model does not have.
CREATE TABLE pr_other (id int, x1 float8, cat text);
INSERT INTO pr_other VALUES (1, 0.5, 'a');
SELECT streamml.predict('pr_lin', t) FROM pr_other t;
SELECT streamml.predict('pr_lin', ROW(t.*)::pr_other) FROM pr_other t;
CREATE TABLE pr_types (id int, x1 float8, x2 text, cat text);
INSERT INTO pr_types VALUES (1, 0.5, '2', 'a');
SELECT streamml.predict('pr_lin', t) FROM pr_types t;
SELECT streamml.predict('pr_lin', ROW(t.*)::pr_types) FROM pr_types t;
CREATE TABLE pr_groups (x1 float8, x2 int, grp text);
INSERT INTO pr_groups VALUES (0.5, 1, 'g3');
SELECT streamml.predict('pr_grp', t) FROM pr_groups t;
SELECT streamml.predict('pr_grp', ROW(t.*)::pr_groups) FROM pr_groups t;
SELECT streamml.predict('no_such_model', t) FROM pr_groups t;
SELECT streamml.predict_proba('pr_lin', t) FROM pr t WHERE t.id = 1;
-- a NULL model name gives NULL, as the strict row form does
SELECT streamml.predict(m, t) IS NULL AS is_null
  FROM pr t, (VALUES (NULL::text)) v(m) WHERE t.id = 1;

-- The nullable side of an outer join: the whole row is NULL there, and so
-- is the prediction (the row's tableoid is passed to tell).
EXPLAIN (VERBOSE, COSTS OFF)
SELECT v.i, streamml.predict('pr_gbt', t)
  FROM (VALUES (1), (1000)) v(i) LEFT JOIN pr t ON t.id = v.i;
SELECT v.i, streamml.predict('pr_gbt', t) AS rewritten,
	   streamml.predict('pr_gbt', s) AS row_form,
	   streamml.predict('pr_lin', t) AS lin, streamml.predict('pr_grp', t) AS grp
  FROM (VALUES (1), (1000), (305)) v(i)
  LEFT JOIN pr t ON t.id = v.i
  LEFT JOIN (SELECT * FROM pr OFFSET 0) s ON s.id = v.i
 ORDER BY v.i;
SELECT count(*) AS rows, count(streamml.predict('pr_lin', t)) AS scored
  FROM pr_other o FULL JOIN pr t ON t.id = o.id + 1000;

-- Grouping by the key or by the whole row, and a WHERE clause.
SELECT count(*) AS rows, count(*) FILTER (WHERE p IS DISTINCT FROM q) AS differ
  FROM (SELECT streamml.predict('pr_lin', t) AS p,
			   streamml.predict('pr_lin', ROW(t.*)::pr) AS q
		  FROM pr t GROUP BY t.id) x;
SELECT count(*) AS rows FROM (SELECT streamml.predict('pr_lin', t) FROM pr t GROUP BY t) x;
-- grouping sets null the grouped row, not its columns, in a set without
-- it: the row form stays, and the empty set's prediction is NULL
EXPLAIN (VERBOSE, COSTS OFF)
SELECT streamml.predict('pr_lin', t) FROM pr t GROUP BY GROUPING SETS ((t), ());
SELECT streamml.predict('pr_lin', t) AS p FROM pr t WHERE t.id < 3
 GROUP BY GROUPING SETS ((t), ()) ORDER BY 1;
SELECT count(*) AS rows FROM pr t WHERE streamml.predict_proba('pr_gbt', t) > 0.5;
SELECT count(*) AS rows FROM (SELECT * FROM pr OFFSET 0) s
 WHERE streamml.predict_proba('pr_gbt', s) > 0.5;

-- A prepared statement across a retrain on other columns: the columns are
-- read by name at execution, so the generic plan serves the new version.
SET plan_cache_mode = force_generic_plan;
PREPARE pr_sum AS
SELECT round(sum(p * p)::numeric, 6) AS sum_squares, count(p) AS scored
  FROM (SELECT streamml.predict('pr_swap', t) AS p FROM pr t OFFSET 0) x;
SELECT version FROM streamml.train_linreg('pr_swap', 'pr', 'y', ARRAY['x1']);
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE pr_sum;
EXECUTE pr_sum;
SELECT round(sum(p * p)::numeric, 6) AS sum_squares, count(p) AS scored
  FROM (SELECT streamml.predict('pr_swap', s) AS p FROM (SELECT * FROM pr OFFSET 0) s) x;
SELECT version FROM streamml.train_linreg('pr_swap', 'pr', 'y', ARRAY['cat', 'x2']);
EXECUTE pr_sum;
SELECT round(sum(p * p)::numeric, 6) AS sum_squares, count(p) AS scored
  FROM (SELECT streamml.predict('pr_swap', s) AS p FROM (SELECT * FROM pr OFFSET 0) s) x;
SELECT version FROM streamml.train_gbt('pr_swap', 'pr', 'y', ARRAY['note', 'x1', 'cat'],
	'{"trees": 5, "max_depth": 2, "threads": 1}');
EXECUTE pr_sum;
SELECT round(sum(p * p)::numeric, 6) AS sum_squares, count(p) AS scored
  FROM (SELECT streamml.predict('pr_swap', s) AS p FROM (SELECT * FROM pr OFFSET 0) s) x;
-- a column added to the table replans: the new column is read
ALTER TABLE pr ADD COLUMN x9 float8;
UPDATE pr SET x9 = id % 7;
SELECT version FROM streamml.train_linreg('pr_swap', 'pr', 'y', ARRAY['x1', 'x9']);
EXECUTE pr_sum;
SELECT round(sum(p * p)::numeric, 6) AS sum_squares, count(p) AS scored
  FROM (SELECT streamml.predict('pr_swap', s) AS p FROM (SELECT * FROM pr OFFSET 0) s) x;
DEALLOCATE pr_sum;
RESET plan_cache_mode;
ALTER TABLE pr DROP COLUMN x9;

-- Partitioned tables (partitions with their own column order and a dropped
-- column), inheritance and a materialized view.
CREATE TABLE pr_parted (id int, grp text, x1 float8, x2 int, cat text)
	PARTITION BY LIST (grp);
CREATE TABLE pr_part1 (cat text, dropme int, x2 int, id int, x1 float8, grp text);
ALTER TABLE pr_part1 DROP COLUMN dropme;
ALTER TABLE pr_parted ATTACH PARTITION pr_part1 FOR VALUES IN ('g1');
CREATE TABLE pr_part2 PARTITION OF pr_parted FOR VALUES IN ('g2', NULL);
INSERT INTO pr_parted SELECT id, grp, x1, x2, cat FROM pr;
EXPLAIN (VERBOSE, COSTS OFF) SELECT streamml.predict('pr_grp', t) FROM pr_parted t;
SELECT * FROM pr_compare('predict', 'pr_lin', 'pr_parted');
SELECT * FROM pr_compare('predict_proba', 'pr_gbt', 'pr_parted');
SELECT * FROM pr_compare('predict', 'pr_grp', 'pr_parted');
CREATE TABLE pr_parent (id int, x1 float8, x2 int, cat text);
CREATE TABLE pr_child (grp text) INHERITS (pr_parent);
INSERT INTO pr_parent SELECT id, x1, x2, cat FROM pr WHERE id % 2 = 0;
INSERT INTO pr_child SELECT id, x1, x2, cat, grp FROM pr WHERE id % 2 = 1;
SELECT * FROM pr_compare('predict', 'pr_lin', 'pr_parent');
SELECT * FROM pr_compare('predict_class', 'pr_log', 'pr_parent');
CREATE MATERIALIZED VIEW pr_mat AS SELECT id, cat, x2, x1, grp FROM pr;
SELECT * FROM pr_compare('predict', 'pr_grp', 'pr_mat');

-- A parallel plan: the columns form is parallel safe, as the row form.
SET max_parallel_workers_per_gather = 1;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
CREATE TABLE pr_big AS SELECT (g - 1) * 305 + p.id AS id, p.x1, p.x2, p.cat, p.grp
  FROM pr p, generate_series(1, 40) g;
ANALYZE pr_big;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT sum(streamml.predict_proba('pr_gbt', b)) FROM pr_big b;
SELECT round(sum(streamml.predict_proba('pr_gbt', b))::numeric, 6) AS total,
	   count(streamml.predict_proba('pr_gbt', b)) AS scored FROM pr_big b;
RESET max_parallel_workers_per_gather;
SET max_parallel_workers_per_gather = 0;
SELECT round(sum(streamml.predict_proba('pr_gbt', s))::numeric, 6) AS total,
	   count(streamml.predict_proba('pr_gbt', s)) AS scored
  FROM (SELECT * FROM pr_big OFFSET 0) s;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;

-- A table with more columns than a call can take keeps the row form.
DO $$
BEGIN
	EXECUTE 'CREATE TABLE pr_wide (id int, x1 float8, x2 int, cat text, '
		|| (SELECT string_agg(format('w%s int', i), ', ') FROM generate_series(1, 97) i)
		|| ')';
END $$;
INSERT INTO pr_wide (id, x1, x2, cat) SELECT id, x1, x2, cat FROM pr;
EXPLAIN (VERBOSE, COSTS OFF) SELECT streamml.predict('pr_lin', t) FROM pr_wide t WHERE t.id = 1;
SELECT * FROM pr_compare('predict', 'pr_lin', 'pr_wide');

-- The columns forms are internal; called directly they check their
-- arguments against the row type.
SELECT streamml.predict_columns('pr_lin', 'pr', 1::oid, 1, 0.5::float8);
SELECT streamml.predict_columns('pr_lin', 'pr', t.tableoid, t.id, t.x1, t.x2, t.cat,
		t.grp, t.y, t.label, t.note) = streamml.predict('pr_lin', t) AS same
  FROM pr t WHERE t.id = 1;

-- A REVOKE on the row form replans without the rewrite: the row form's
-- privilege is checked, as before (in a transaction rolled back, which
-- puts the default privileges back).
CREATE ROLE pr70_user;
GRANT SELECT ON pr TO pr70_user;
SELECT streamml.grant_model('pr_lin', 'pr70_user');
SET ROLE pr70_user;
PREPARE pr_user AS SELECT count(streamml.predict('pr_lin', t)) FROM pr t;
EXECUTE pr_user;
RESET ROLE;
BEGIN;
REVOKE EXECUTE ON FUNCTION streamml.predict(text, record) FROM PUBLIC;
EXPLAIN (VERBOSE, COSTS OFF) SELECT streamml.predict('pr_lin', t) FROM pr t;
SET ROLE pr70_user;
EXECUTE pr_user;
ROLLBACK;
SET ROLE pr70_user;
EXECUTE pr_user;
RESET ROLE;
EXPLAIN (VERBOSE, COSTS OFF) SELECT streamml.predict('pr_lin', t) FROM pr t;
DEALLOCATE pr_user;
REVOKE SELECT ON pr FROM pr70_user;
SELECT streamml.revoke_model('pr_lin', 'pr70_user');
DROP ROLE pr70_user;
RESET max_parallel_workers_per_gather;

-- The columns forms refuse a row type of 0 (it stood for the row form and
-- read argument 1 as a row: a crash).
SELECT streamml.predict_columns('pr_lin', 0, 0, 0);
-- A row of a LATERAL subquery's UNION ALL leg keeps the row form (the
-- rewritten leg asked for columns its scan did not give).
SELECT round(sum(v.p)::numeric, 6) AS lateral_sum,
	   round((SELECT sum(streamml.predict('pr_lin', ROW(t.*)::pr)) + sum(u.x1)
			    FROM pr t, pr u WHERE u.id = t.id)::numeric, 6) AS expected
  FROM pr t, LATERAL (SELECT streamml.predict('pr_lin', t) AS p
					  UNION ALL SELECT u.x1 FROM pr u WHERE u.id = t.id) v;
-- A retrain on the columns in another order while an executor runs on (a
-- cursor over a transaction): its rows are read as the new version reads
-- them, not by the old version's column positions.
CREATE TABLE pr_swap2 (x1 float8, x2 float8, y float8);
INSERT INTO pr_swap2 SELECT i, (i * 7) % 13, 10 * i + 0.5 * ((i * 7) % 13)
  FROM generate_series(1, 100) i;
SELECT version FROM streamml.train_linreg('pr_sw', 'pr_swap2', 'y', ARRAY['x1', 'x2']);
-- a plpgsql function's simple expression keeps its state (and the reader
-- of its row form) across the statements of a transaction
CREATE FUNCTION pr_sw_f(r pr_swap2) RETURNS float8 LANGUAGE plpgsql AS $$
BEGIN
	RETURN streamml.predict('pr_sw', r);
END $$;
BEGIN;
SELECT round(pr_sw_f(t)::numeric, 6) AS before FROM pr_swap2 t WHERE x1 = 3;
SELECT version FROM streamml.train_linreg('pr_sw', 'pr_swap2', 'y', ARRAY['x2', 'x1']);
SELECT abs(pr_sw_f(t) - streamml.predict('pr_sw', ARRAY[t.x2, t.x1])) < 1e-6 AS as_fresh
  FROM pr_swap2 t WHERE x1 IN (3, 4) ORDER BY x1;
COMMIT;
DROP FUNCTION pr_sw_f(pr_swap2);
SELECT streamml.drop_model('pr_sw');
DROP TABLE pr_swap2;
