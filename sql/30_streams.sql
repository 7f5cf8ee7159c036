-- The stream catalog API and its errors (no Kafka needed: the broker below
-- does not exist: workers start and only fail to connect, so nothing loads).
CREATE TABLE trades (id int PRIMARY KEY, symbol text, price float8, "Odd ""col""" text);
SELECT streamml.create_stream('s1', 'trades', '127.0.0.1:1', 'trades');
SELECT name, target, brokers, topic, format, options, enabled, generation,
       owner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AS mine
  FROM streamml.streams;
-- Names are data, never SQL: quotes and odd names are fine.
SELECT streamml.create_stream('s2; DROP TABLE trades', 'trades', '127.0.0.1:1', 'x',
	'csv', '{"delimiter": ";", "header": true, "columns": {"Odd \"col\"": "$key"}}');
SELECT name, format, options FROM streamml.streams ORDER BY id;
-- Errors.
SELECT streamml.create_stream('s1', 'trades', '127.0.0.1:1', 'trades');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'avro');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'json', '{"wokers": 2}');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'json', '{"workers": 0}');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'json', '{"start": "yesterday-ish"}');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'json', '{"columns": {"nope": "a.b"}}');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'json', '{"columns": {"price": "$nope"}}');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'json', '{"columns": {"price": "a..b"}}');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'csv', '{"columns": {"price": "x"}}');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'json', '{"kafka": {"bootstrap.servers": "x"}}');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'json', '{"group": "g", "workers": 2}');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'json', '[1]');
SELECT streamml.create_stream('', 'trades', '127.0.0.1:1', 'trades');
SELECT streamml.create_stream('s3', 'trades', '', 'trades');
SELECT streamml.create_stream('s3', 'pg_class', '127.0.0.1:1', 'trades');
CREATE VIEW v AS SELECT 1 AS x;
SELECT streamml.create_stream('s3', 'v', '127.0.0.1:1', 'trades');
-- Temporary tables: the workers could never see them.
CREATE TEMP TABLE tmp_trades (id int);
SELECT streamml.create_stream('s3', 'tmp_trades', '127.0.0.1:1', 'trades');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'json',
	'{"route_field": "k", "routes": {"a": "tmp_trades"}}');
-- What to do when Kafka no longer has the stored offset.
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'json',
	'{"on_offset_out_of_range": "latest"}');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'json',
	'{"on_offset_out_of_range": false}');
SELECT streamml.create_stream('s3', 'trades', '127.0.0.1:1', 'trades', 'json',
	'{"kafka": {"auto.offset.reset": "latest"}}');
-- stop, start, alter, reset.
SELECT streamml.stop_stream('s1');
SELECT name, enabled FROM streamml.streams WHERE name = 's1';
SELECT streamml.start_stream('s1');
SELECT streamml.alter_stream('s1', '{"workers": 4, "batch_size": 500}');
SELECT options, generation FROM streamml.streams WHERE name = 's1';
SELECT streamml.alter_stream('s1', '{"batch_size": null}');
SELECT options, generation FROM streamml.streams WHERE name = 's1';
SELECT streamml.alter_stream('s1', '{"workers": "many"}');
SELECT streamml.alter_stream('s1', '{"on_offset_out_of_range": "fail"}');
SELECT options FROM streamml.streams WHERE name = 's1';
SELECT streamml.alter_stream('s1', '{"on_offset_out_of_range": "sometimes"}');
SELECT streamml.alter_stream('s1', '{"on_offset_out_of_range": null}');
-- "target" points the stream at another table and keeps its offsets.
CREATE TABLE trades2 (id int, symbol text, price float8);
SELECT streamml.alter_stream('s1', '{"target": "trades2"}');
SELECT target, options, generation FROM streamml.streams WHERE name = 's1';
SELECT streamml.alter_stream('s1', '{"target": "nope"}');
SELECT streamml.alter_stream('s1', '{"target": 1}');
SELECT streamml.alter_stream('s1', '{"target": "tmp_trades"}');
SELECT streamml.alter_stream('s1', '{"target": "v"}');
DROP TABLE trades2;
\set VERBOSITY terse
SELECT streamml.alter_stream('s1', '{"batch_size": 10}');
\set VERBOSITY default
SELECT streamml.alter_stream('s1', '{"target": "trades"}');
SELECT target FROM streamml.streams WHERE name = 's1';
SELECT streamml.reset_stream('s1', 'latest');
SELECT streamml.reset_stream('s1', '2024-01-01 00:00:00+00');
SELECT options->>'start' AS start, generation FROM streamml.streams WHERE name = 's1';
SELECT streamml.reset_stream('s1', 'somewhere');
-- Offsets per partition: the named partitions move, the others stay.
-- They are checked against Kafka; without an answer they are taken as
-- given, with a warning.
\set VERBOSITY terse
SELECT streamml.reset_stream('s1', '{"0": 1500, "3": 0}');
SELECT streamml.reset_stream('s1', ' {"3": 7, "1": 1e3}');
\set VERBOSITY default
SELECT o.partition, o.next_offset FROM streamml.offsets o
  JOIN streamml.streams s ON s.id = o.stream_id WHERE s.name = 's1' ORDER BY 1;
SELECT options->>'start' AS start, generation FROM streamml.streams WHERE name = 's1';
SELECT streamml.reset_stream('s1', '{}');
SELECT streamml.reset_stream('s1', '{"x": 1}');
SELECT streamml.reset_stream('s1', '{"-1": 1}');
SELECT streamml.reset_stream('s1', '{"0": -1}');
SELECT streamml.reset_stream('s1', '{"0": 1.5}');
SELECT streamml.reset_stream('s1', '{"0": "1.5"}');
-- an offset written as a string is read as options are
\set VERBOSITY terse
SELECT streamml.reset_stream('s1', '{"0": "10"}');
\set VERBOSITY default
SELECT o.partition, o.next_offset FROM streamml.offsets o
  JOIN streamml.streams s ON s.id = o.stream_id WHERE s.name = 's1' AND o.partition = 0;
SELECT streamml.reset_stream('s1', '{"0": 1');
SELECT streamml.stop_stream('nope');
SELECT streamml.drop_stream('nope');
-- Privileges: another user sees nothing and may not touch the stream; a
-- stream needs INSERT on its target.
CREATE ROLE streamml_other;
SET ROLE streamml_other;
SELECT count(*) FROM streamml.streams;
SELECT count(*) FROM streamml.offsets;
SELECT count(*) FROM streamml.stream_stats;
SELECT streamml.stop_stream('s1');
SELECT streamml.drop_stream('s1');
SELECT streamml.create_stream('mine', 'trades', '127.0.0.1:1', 'trades');
UPDATE streamml.streams SET enabled = false;
SELECT streamml.produce('127.0.0.1:1', 't', 'v');
RESET ROLE;
GRANT INSERT ON trades TO streamml_other;
SET ROLE streamml_other;
SELECT streamml.create_stream('mine', 'trades', '127.0.0.1:1', 'trades', 'json',
	'{"kafka": {"sasl.password": "secret"}}');
SELECT name, options FROM streamml.streams;
RESET ROLE;
SELECT name FROM streamml.streams ORDER BY id;
-- Members of the owning role see its streams, as they may alter them.
CREATE ROLE streamml_member IN ROLE streamml_other;
SET ROLE streamml_member;
SELECT s.name, st.stream FROM streamml.streams s
  LEFT JOIN (SELECT DISTINCT stream FROM streamml.stream_stats) st ON st.stream = s.name;
SELECT streamml.stop_stream('mine');
RESET ROLE;
DROP ROLE streamml_member;
-- The format is a keyword, as COPY's FORMAT is: any case.
SELECT streamml.create_stream('upper', 'trades', '127.0.0.1:1', 'trades', 'JSON');
SELECT format FROM streamml.streams WHERE name = 'upper';
SELECT streamml.drop_stream('upper');
-- Dropping.
SELECT streamml.drop_stream('mine');
SELECT streamml.drop_stream('s1');
SELECT streamml.drop_stream('s2; DROP TABLE trades');
SELECT count(*) FROM streamml.streams;
REVOKE ALL ON trades FROM streamml_other;
DROP ROLE streamml_other;
-- The objects of the API carry comments.
SELECT p.proname, obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
  FROM pg_proc p WHERE p.pronamespace = 'streamml'::regnamespace
   AND p.proname IN ('create_stream', 'stop_stream', 'start_stream', 'drop_stream',
                     'alter_stream', 'reset_stream', 'produce', 'stream_stats_raw')
 ORDER BY 1;
SELECT c.relname, obj_description(c.oid, 'pg_class') IS NOT NULL AS commented
  FROM pg_class c WHERE c.relnamespace = 'streamml'::regnamespace
   AND c.relname IN ('streams', 'offsets', 'dead_letters', 'stream_stats')
 ORDER BY 1;
SELECT a.attname, col_description(a.attrelid, a.attnum) IS NOT NULL AS commented
  FROM pg_attribute a WHERE a.attrelid = 'streamml.offsets'::regclass
   AND a.attname IN ('messages_lost', 'last_gap_start', 'last_gap_end')
 ORDER BY a.attnum;
-- stream_stats: lag, and what was lost to retention per partition.
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'streamml.stream_stats'::regclass AND attnum > 0 ORDER BY attnum;
-- A start time means the instant the caller meant: read in the caller's
-- TimeZone and DateStyle, stored in UTC, so the worker (which runs with
-- the server's settings) starts at the same instant; "now" is now.
SET timezone = 'Asia/Tokyo';
SELECT streamml.create_stream('tz', 'trades', '127.0.0.1:1', 'tz', 'json',
	'{"start": "2026-01-01 09:00"}');
SELECT options->>'start' FROM streamml.streams WHERE name = 'tz';
SET DateStyle = 'SQL, DMY';
SELECT streamml.reset_stream('tz', '02/01/2026 09:00:00.25');
SELECT options->>'start' FROM streamml.streams WHERE name = 'tz';
SELECT streamml.alter_stream('tz', '{"start": "now"}');
SELECT (options->>'start')::timestamptz BETWEEN now() - interval '1 minute' AND now() + interval '1 minute'
  FROM streamml.streams WHERE name = 'tz';
SELECT streamml.reset_stream('tz', 'LATEST');
SELECT options->>'start' FROM streamml.streams WHERE name = 'tz';
RESET DateStyle;
RESET timezone;
SELECT streamml.drop_stream('tz');
DROP TABLE trades;
DROP TABLE tmp_trades;
DROP VIEW v;
