-- Group keys are the same text in every session (src/ml/group_key.c): a
-- per-group model trained under one TimeZone, DateStyle or
-- extra_float_digits serves rows of another session, keys of any length
-- are served, and rows no pass reads are counted.
SET client_min_messages = notice;

-- The key text of each type: the cast to text under default settings in UTC.
SET TimeZone = 'Asia/Tokyo';
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'sql_standard';
SET extra_float_digits = 0;
SET bytea_output = 'escape';
SELECT streamml.group_key('2024-03-01 09:00:00+09'::timestamptz) AS tstz,
	   streamml.group_key('2024-03-01 09:00:00'::timestamp) AS ts,
	   streamml.group_key('2024-03-01'::date) AS d,
	   streamml.group_key('1 day 02:03:04'::interval) AS i,
	   streamml.group_key(0.1::float8 + 0.2) AS f8,
	   streamml.group_key(0.1::float4) AS f4,
	   streamml.group_key('\x0102'::bytea) AS b,
	   streamml.group_key('ab  '::char(6)) AS c,
	   streamml.group_key(true) AS bool,
	   streamml.group_key(12.50::numeric) AS n,
	   streamml.group_key('infinity'::timestamptz) AS inf,
	   streamml.group_key('NaN'::float8) AS nan;
RESET ALL;
SET client_min_messages = notice;

-- Types whose text cannot be pinned are refused as group columns.
SELECT streamml.group_key(1.5::money);
SELECT streamml.group_key('pg_class'::regclass);
-- -0 and 0 are equal: one key
SELECT streamml.group_key('-0'::float8), streamml.group_key('-0'::float4);
SELECT streamml.group_key(ARRAY[1, 2]);
CREATE TABLE keyed_money (m money, x float8, y float8);
INSERT INTO keyed_money SELECT i::money, i, 2 * i FROM generate_series(1, 10) i;
SELECT model FROM streamml.train_linreg('km', 'keyed_money', 'y', ARRAY['x'],
										'{"group_by": "m"}');

-- A model per hour (timestamptz), per float and per long text key, trained
-- in UTC.
SET TimeZone = 'UTC';
CREATE TABLE keyed (
	hour timestamptz, f float8, long text, pad char(8),
	x float8, y float8, ord int);
INSERT INTO keyed
SELECT '2024-03-01 00:00+00'::timestamptz + (i % 3) * interval '1 hour',
	   (i % 3) / 10.0 + 0.2,
	   repeat(chr(97 + i % 3), 300 + 3000 * (i % 2)),
	   chr(97 + i % 3),
	   i, (i % 3 + 1) * i + 1, i
  FROM generate_series(1, 60) i;
-- rows no pass reads: a NULL group, and a NULL order_by under a holdout
INSERT INTO keyed VALUES (NULL, NULL, NULL, NULL, 1, 1, 61), ('2024-03-01 00:00+00', 0.2, 'c', 'c', 1, 2, NULL);
SELECT group_key, rows_used, rows_skipped
  FROM streamml.train_linreg('by_hour', 'keyed', 'y', ARRAY['x'], '{"group_by": "hour"}')
 ORDER BY group_key;
SELECT group_key, rows_used, rows_skipped
  FROM streamml.train_linreg('by_hour_split', 'keyed', 'y', ARRAY['x'],
							 '{"group_by": "hour", "order_by": "ord", "test_fraction": 0.2}')
 ORDER BY group_key;
SELECT count(*) AS groups FROM streamml.train_linreg('by_float', 'keyed', 'y', ARRAY['x'], '{"group_by": "f"}');
SELECT length(group_key) AS key_length
  FROM streamml.train_linreg('by_long', 'keyed', 'y', ARRAY['x'], '{"group_by": "long"}')
 ORDER BY 1;
SELECT group_key FROM streamml.train_linreg('by_pad', 'keyed', 'y', ARRAY['x'], '{"group_by": "pad"}')
 ORDER BY 1;

-- Another session's settings: every serving path finds every group.
SET TimeZone = 'America/Los_Angeles';
SET DateStyle = 'German';
SET extra_float_digits = -3;
SELECT count(*) AS rows,
	   count(streamml.predict('by_hour', k)) AS row_form,
	   count(streamml.predict('by_hour', k.hour, ARRAY[k.x])) AS key_form,
	   count(streamml.predict('by_float', k)) AS float_row_form,
	   count(streamml.predict('by_float', k.f, ARRAY[k.x])) AS float_key_form,
	   count(streamml.predict('by_long', k)) AS long_row_form,
	   count(streamml.predict('by_long', k.long, ARRAY[k.x])) AS long_key_form,
	   count(streamml.predict('by_pad', k)) AS pad_row_form,
	   count(streamml.predict('by_pad', k.pad, ARRAY[k.x])) AS pad_key_form
  FROM keyed k WHERE k.hour IS NOT NULL AND k.ord IS NOT NULL;
-- the predictions equal the model of the row's own group: y = (g + 1) x + 1
SELECT max(abs(streamml.predict('by_hour', k) - k.y)) < 1e-6 AS exact
  FROM keyed k WHERE k.hour IS NOT NULL AND k.ord IS NOT NULL;
-- evaluate finds every group: only the NULL-group row is skipped
SELECT m->'rows' AS rows, m->'rows_skipped' AS skipped,
	   (SELECT count(*) FROM jsonb_object_keys(m->'groups')) AS groups
  FROM (SELECT streamml.evaluate('by_hour', 'keyed', 'y', ARRAY['x']) AS m) e;
SELECT m->'rows' AS rows, m->'rows_skipped' AS skipped
  FROM (SELECT streamml.evaluate('by_long', 'keyed', 'y', ARRAY['x']) AS m) e;
-- a scorer, in this session's settings, finds the groups too
CREATE TABLE keyed_live (id int PRIMARY KEY, hour timestamptz, long text, x float8);
SELECT streamml.create_scorer('keyed_hour', 'keyed_live', 'by_hour');
SELECT streamml.create_scorer('keyed_long', 'keyed_live', 'by_long', '{"into": "keyed_long_preds"}');
INSERT INTO keyed_live SELECT ord, hour, long, x FROM keyed WHERE hour IS NOT NULL AND ord IS NOT NULL;
SELECT count(*) AS predictions, count(prediction) AS scored FROM keyed_hour;
SELECT count(*) AS predictions, count(prediction) AS scored FROM keyed_long_preds;
SELECT streamml.drop_scorer('keyed_hour');
SELECT streamml.drop_scorer('keyed_long');
DROP TABLE keyed_live, keyed_hour, keyed_long_preds;
-- an unknown key of any length is an error that shows its start
SELECT streamml.predict('by_long', repeat('z', 500), ARRAY[1.0]);
RESET ALL;

SELECT count(*) AS dropped
  FROM (SELECT streamml.drop_model(m)
		  FROM unnest(ARRAY['by_hour', 'by_hour_split', 'by_float', 'by_long', 'by_pad']) m) d;
DROP TABLE keyed, keyed_money;
