-- One options reader for streams and training (src/options.c): numbers
-- as JSON numbers or numeric strings, integers without a fraction,
-- booleans as JSON booleans or PostgreSQL's boolean words, null as absent,
-- unknown keys refused with the list of known ones.
CREATE TABLE opt_src AS
SELECT i AS id, (i % 10) / 10.0 AS x, (i * 7) % 10 < (i % 10) AS y
  FROM generate_series(1, 200) i;
SELECT iterations <= 42 AS capped FROM streamml.train_logreg('opt', 'opt_src', 'y', ARRAY['x'],
	'{"max_iter": "42", "l2": "0.5", "standardize": "on", "tol": null}');
SELECT options FROM streamml.models WHERE name = 'opt';
SELECT * FROM streamml.train_logreg('opt', 'opt_src', 'y', ARRAY['x'], '{"max_iter": 4.5}');
SELECT * FROM streamml.train_logreg('opt', 'opt_src', 'y', ARRAY['x'], '{"max_iter": "many"}');
SELECT * FROM streamml.train_logreg('opt', 'opt_src', 'y', ARRAY['x'], '{"l2": -1}');
SELECT * FROM streamml.train_logreg('opt', 'opt_src', 'y', ARRAY['x'], '{"l2": [1]}');
SELECT * FROM streamml.train_logreg('opt', 'opt_src', 'y', ARRAY['x'], '{"standardize": "maybe"}');
SELECT * FROM streamml.train_logreg('opt', 'opt_src', 'y', ARRAY['x'], '{"group_by": 3}');
SELECT * FROM streamml.train_logreg('opt', 'opt_src', 'y', ARRAY['x'], '{"max_iters": 3}');
SELECT * FROM streamml.train_logreg('opt', 'opt_src', 'y', ARRAY['x'], '[1]');
SELECT * FROM streamml.retrain('opt', '{"min_new_rows": "1.5"}');
SELECT streamml.drop_model('opt');
DROP TABLE opt_src;
-- Only decimal numbers, named in every error.
CREATE TABLE opt_src2 AS SELECT i AS id, (i % 10) / 10.0 AS x, (i * 7) % 10 < (i % 10) AS y
  FROM generate_series(1, 50) i;
SELECT * FROM streamml.train_logreg('opt2', 'opt_src2', 'y', ARRAY['x'], '{"l2": "0x10"}');
SELECT * FROM streamml.train_logreg('opt2', 'opt_src2', 'y', ARRAY['x'], '{"max_iter": "inf"}');
SELECT * FROM streamml.train_logreg('opt2', 'opt_src2', 'y', ARRAY['x'], '{"max_iter": 1e400}');
SELECT * FROM streamml.train_logreg('opt2', 'opt_src2', 'y', ARRAY['x'], '{"l2": ""}');
-- Integers are read exactly: 2^63 does not wrap to -2^63, 2^53 + 1 is not 2^53.
SELECT * FROM streamml.train_logreg('opt2', 'opt_src2', 'y', ARRAY['x'], '{"max_iter": 9223372036854775808}');
SELECT * FROM streamml.train_logreg('opt2', 'opt_src2', 'y', ARRAY['x'], '{"max_iter": "9223372036854775807"}');
SELECT * FROM streamml.train_logreg('opt2', 'opt_src2', 'y', ARRAY['x'], '{"max_iter": 9007199254740993}');
SELECT * FROM streamml.train_logreg('opt2', 'opt_src2', 'y', ARRAY['x'], '{"max_iter": -1e19}');
SELECT * FROM streamml.retrain('opt2', '{"min_new_rows": 9223372036854775807}');
-- deploy_metric must be a metric of the model's kind
SELECT * FROM streamml.train_logreg('opt2', 'opt_src2', 'y', ARRAY['x'],
	'{"deploy": "if_better", "deploy_metric": "rmse", "test_fraction": 0.2, "order_by": "id"}');
SELECT * FROM streamml.train_linreg('opt2', 'opt_src2', 'x', ARRAY['id'], '{"deploy_metric": "roc_auc"}');
DROP TABLE opt_src2;
-- Streams read their options with the same reader: the same words, the
-- same rules (a fraction is not an integer, hexadecimal is not a number,
-- null means not given, a boolean may be a string PostgreSQL reads).
CREATE TABLE opt_trades (id int, price float8);
SELECT streamml.create_stream('opt_s', 'opt_trades', '127.0.0.1:1', 't', 'json', '{"workers": 2.5}');
SELECT streamml.create_stream('opt_s', 'opt_trades', '127.0.0.1:1', 't', 'json', '{"batch_size": "0x10"}');
SELECT streamml.create_stream('opt_s', 'opt_trades', '127.0.0.1:1', 't', 'json', '{"flush_ms": true}');
SELECT streamml.create_stream('opt_s', 'opt_trades', '127.0.0.1:1', 't', 'csv', '{"header": "maybe"}');
SELECT streamml.create_stream('opt_s', 'opt_trades', '127.0.0.1:1', 't', 'json', '{"group": 7}');
SELECT streamml.create_stream('opt_s', 'opt_trades', '127.0.0.1:1', 't', 'json', '{"wokers": 2}');
SELECT streamml.create_stream('opt_s', 'opt_trades', '127.0.0.1:1', 't', 'json', '"workers"');
SELECT streamml.create_stream('opt_s', 'opt_trades', '127.0.0.1:1', 't', 'csv',
	'{"workers": "2", "batch_size": null, "header": "yes"}');
SELECT name, options FROM streamml.streams WHERE name = 'opt_s';
SELECT streamml.drop_stream('opt_s');
DROP TABLE opt_trades;
-- Keywords are read in any case, as PostgreSQL reads them; names are not.
CREATE TABLE kw AS SELECT i::float8 AS x, (2 * i + i % 3)::float8 AS y, i AS t
  FROM generate_series(1, 40) i;
SELECT deployed FROM streamml.train_linreg('kw', 'kw', 'y', ARRAY['x'],
	'{"deploy": "Always", "test_fraction": 0.25, "order_by": "t", "deploy_metric": "RMSE"}');
SELECT deployed FROM streamml.train_linreg('kw', 'kw', 'y', ARRAY['x'],
	'{"deploy": "IF_BETTER", "test_fraction": 0.25, "order_by": "t"}');
SELECT rows_used FROM streamml.train_linreg('kw', 'kw', 'y', ARRAY['X']);
SELECT streamml.drop_model('kw');
DROP TABLE kw;
-- The target is no feature, and a classifier's target has at most
-- max_classes distinct values (a number with more is a regression target).
CREATE TABLE mc AS SELECT i::float8 AS x, (i * 7 % 150)::float8 AS y, i % 2 = 0 AS b
  FROM generate_series(1, 300) i;
SELECT version FROM streamml.train_logreg('mc', 'mc', 'b', ARRAY['x', 'b']);
SELECT version FROM streamml.train_gbt('mc', 'mc', 'y', ARRAY['x', 'y'], '{"trees": 2}');
SELECT version FROM streamml.train_logreg('mc', 'mc', 'y', ARRAY['x']);
SELECT version FROM streamml.train_logreg('mc', 'mc', 'y', ARRAY['x'], '{"max_classes": 1001}');
SELECT version FROM streamml.train_logreg('mc', 'mc', 'y', ARRAY['x'],
	'{"max_classes": 150, "max_iter": 2}');
-- nor the group_by column; a feature column is named once, every class
-- weighing zero teaches nothing, and two features may not share a name
SELECT version FROM streamml.train_linreg('mc', 'mc', 'y', ARRAY['x'], '{"group_by": "y"}');
SELECT version FROM streamml.train_gbt('mc', 'mc', 'y', ARRAY['x'], '{"group_by": "y", "trees": 2}');
SELECT version FROM streamml.train_linreg('mc', 'mc', 'y', ARRAY['x', 'x']);
SELECT version FROM streamml.train_logreg('mc', 'mc', 'b', ARRAY['x'],
	'{"class_weight": {"true": 0, "false": 0}}');
CREATE TABLE mc_names AS SELECT i::float8 AS x, (ARRAY['a=b', 'z'])[1 + i % 2] AS c,
	(ARRAY['b', 'y'])[1 + i % 2] AS "c=a", i % 3 AS y FROM generate_series(1, 60) i;
SELECT version FROM streamml.train_linreg('mc', 'mc_names', 'y', ARRAY['x', 'c', 'c=a']);
DROP TABLE mc_names;
SELECT streamml.drop_model('mc');
DROP TABLE mc;
