-- What a newcomer meets: hints that say what to do must work when followed.

-- A 'rows' monitor of a model trained without order_by names the model's
-- own trainer (streamml.retrain takes no training options); followed, it
-- lets the monitor be created.
CREATE TABLE nu_rows AS
SELECT i AS id, '2026-01-01'::timestamptz + i * interval '1 second' AS ts,
	   (i % 7)::float8 AS x, 2.0 * (i % 7) + 1 AS v
  FROM generate_series(1, 200) i;
SELECT version FROM streamml.train_forest('nu_forest', 'nu_rows', 'v', ARRAY['x'], '{"trees": 2}');
SELECT streamml.create_monitor('nu_rows_m', 'nu_forest', 'rows');
SELECT * FROM streamml.retrain('nu_forest', '{"order_by": "ts"}');
SELECT version FROM streamml.train_forest('nu_forest', 'nu_rows', 'v', ARRAY['x'],
	'{"trees": 2, "order_by": "ts"}');
SELECT streamml.create_monitor('nu_rows_m', 'nu_forest', 'rows');
SELECT name, kind FROM streamml.monitors WHERE name = 'nu_rows_m';
SELECT streamml.drop_monitor('nu_rows_m');
SELECT streamml.drop_model('nu_forest');
DROP TABLE nu_rows;
