-- Scorers with per-group models grouped by columns of by-value types
-- (integer, timestamptz, float8, boolean): each statement makes a group's
-- key once and finds the next rows of the same value by its bits.  Every
-- prediction equals streamml.predict's for the same group and features;
-- a group without a model and a NULL group are unscorable, in any order,
-- repeated within a statement.
SET extra_float_digits = 0;
CREATE TABLE sg_train AS
SELECT i % 3 AS g_int, '2024-03-01 00:00+00'::timestamptz + (i % 3) * interval '1 hour' AS g_ts,
	   ((i % 3) / 10.0 + 0.2)::float8 AS g_f, i % 2 = 0 AS g_b,
	   i::float8 AS x, ((i % 3 + 1) * i + 1 + (i * 7919) % 5)::float8 AS y
  FROM generate_series(1, 90) i;
SELECT count(*) FROM streamml.train_linreg('sg_int', 'sg_train', 'y', ARRAY['x'], '{"group_by": "g_int"}');
SELECT count(*) FROM streamml.train_linreg('sg_ts', 'sg_train', 'y', ARRAY['x'], '{"group_by": "g_ts"}');
SELECT count(*) FROM streamml.train_linreg('sg_f', 'sg_train', 'y', ARRAY['x'], '{"group_by": "g_f"}');
SELECT count(*) FROM streamml.train_linreg('sg_b', 'sg_train', 'y', ARRAY['x'], '{"group_by": "g_b"}');

CREATE TABLE sg_src (id int PRIMARY KEY, g_int int, g_ts timestamptz, g_f float8, g_b boolean, x float8);
SELECT streamml.create_scorer('sg_s_int', 'sg_src', 'sg_int') IS NOT NULL AS int_scorer;
SELECT streamml.create_scorer('sg_s_ts', 'sg_src', 'sg_ts') IS NOT NULL AS ts_scorer;
SELECT streamml.create_scorer('sg_s_f', 'sg_src', 'sg_f') IS NOT NULL AS float_scorer;
SELECT streamml.create_scorer('sg_s_b', 'sg_src', 'sg_b') IS NOT NULL AS bool_scorer;
-- a source without the model's group column: the error says how to name it
CREATE TABLE sg_nogroup (id int PRIMARY KEY, x float8, grp int);
SELECT streamml.create_scorer('sg_s_ng', 'sg_nogroup', 'sg_int');
DROP TABLE sg_nogroup;
-- groups 0..3 (3 has no model), a NULL group every 7th row, values
-- repeated and interleaved within each statement
INSERT INTO sg_src
SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE i % 4 END,
	   CASE WHEN i % 7 = 0 THEN NULL ELSE '2024-03-01 00:00+00'::timestamptz + (i % 4) * interval '1 hour' END,
	   CASE WHEN i % 7 = 0 THEN NULL ELSE (i % 4) / 10.0 + 0.2 END,
	   CASE WHEN i % 7 = 0 THEN NULL ELSE i % 2 = 0 END,
	   i * 0.5
  FROM generate_series(1, 200) i;
INSERT INTO sg_src
SELECT i, i % 4, '2024-03-01 00:00+00'::timestamptz + (i % 4) * interval '1 hour',
	   (i % 4) / 10.0 + 0.2, i % 2 = 0, i * 0.5
  FROM generate_series(201, 260) i;

-- every row has a prediction row; the scored ones equal predict's (the
-- rows of a group with a model; predict refuses the others)
SELECT 'int' AS grouped_by, count(*) AS rows, count(p.prediction) AS scored,
	   count(*) FILTER (WHERE p.prediction IS DISTINCT FROM CASE WHEN s.g_int < 3 THEN streamml.predict('sg_int', s.g_int, ARRAY[s.x]) END) AS mismatches
  FROM sg_src s JOIN sg_s_int p USING (id)
UNION ALL
SELECT 'timestamptz', count(*), count(p.prediction),
	   count(*) FILTER (WHERE p.prediction IS DISTINCT FROM CASE WHEN s.g_ts < '2024-03-01 03:00+00' THEN streamml.predict('sg_ts', s.g_ts, ARRAY[s.x]) END)
  FROM sg_src s JOIN sg_s_ts p USING (id)
UNION ALL
SELECT 'float8', count(*), count(p.prediction),
	   count(*) FILTER (WHERE p.prediction IS DISTINCT FROM CASE WHEN s.g_f < 0.45 THEN streamml.predict('sg_f', s.g_f, ARRAY[s.x]) END)
  FROM sg_src s JOIN sg_s_f p USING (id)
UNION ALL
SELECT 'boolean', count(*), count(p.prediction),
	   count(*) FILTER (WHERE p.prediction IS DISTINCT FROM CASE WHEN s.g_b IS NOT NULL THEN streamml.predict('sg_b', s.g_b, ARRAY[s.x]) END)
  FROM sg_src s JOIN sg_s_b p USING (id);
SELECT name, rows_processed, rows_unscorable FROM streamml.scorers WHERE name LIKE 'sg\_%' ORDER BY name;

SELECT streamml.drop_scorer(n) FROM unnest(ARRAY['sg_s_int', 'sg_s_ts', 'sg_s_f', 'sg_s_b']) n;
DROP TABLE sg_src, sg_train, sg_s_int, sg_s_ts, sg_s_f, sg_s_b;
SELECT streamml.drop_model(m) FROM unnest(ARRAY['sg_int', 'sg_ts', 'sg_f', 'sg_b']) m;
