-- A table that feature tables, scorers and outcome trackers depend on is
-- dropped only with CASCADE, which takes them along (src/relations.c, an
-- event trigger on sql_drop): no catalog row is left naming a relation
-- that is gone, names are free again, and a source whose scorer lost its
-- predictions table still loads.
CREATE ROLE rd_user;
GRANT CREATE ON SCHEMA public TO rd_user;
SET ROLE rd_user;
CREATE TABLE rd_ticks (id bigint PRIMARY KEY, symbol text, ts timestamptz, price float8);
INSERT INTO rd_ticks SELECT g, (g % 3)::text, '2026-01-01'::timestamptz + g * interval '1 second',
	100 + sin(g) FROM generate_series(1, 300) g;
SELECT streamml.create_feature_table('rd_f', 'rd_ticks', '{"partition_by": "symbol",
	"order_by": "ts", "keep": ["id", "symbol", "ts", "price"],
	"features": {"lag1": {"fn": "lag", "of": "price", "n": 1}}}');
SELECT version FROM streamml.train_linreg('rd_m', 'rd_f', 'price', ARRAY['lag1']);
CREATE INDEX ON rd_f (symbol, ts);
SELECT streamml.create_scorer('rd_s', 'rd_f', 'rd_m', '{"key": "id", "into": "rd_p"}');
SELECT streamml.track_outcomes('rd_s', 'rd_f', '{"actual": "price", "horizon": "5 seconds",
	"partition_by": "symbol", "order_by": "ts"}');

-- the predictions table: refused without CASCADE, as for a view; with
-- it, its tracker and scorer go, and the source loads
DROP TABLE rd_p;
DROP TABLE rd_p CASCADE;
SELECT count(*) AS scorers FROM streamml.scorers WHERE name = 'rd_s';
SELECT count(*) AS trackers FROM streamml.outcome_trackers WHERE scorer = 'rd_s';
INSERT INTO rd_ticks VALUES (1000, '1', '2026-01-02', 1);
SELECT count(*) AS feature_rows FROM rd_f;

-- the source: the feature table is forgotten but kept, a plain table; the
-- scorer reading it stays, and so does its tracker on the same table
SELECT streamml.create_scorer('rd_s', 'rd_f', 'rd_m', '{"key": "id", "into": "rd_p"}');
SELECT streamml.track_outcomes('rd_s', 'rd_f', '{"actual": "price", "horizon": "5 seconds",
	"partition_by": "symbol", "order_by": "ts"}');
DROP TABLE rd_ticks;
DROP TABLE rd_ticks CASCADE;
SELECT count(*) AS feature_tables FROM streamml.feature_tables WHERE name = 'rd_f';
SELECT name, source::text FROM streamml.scorers WHERE name = 'rd_s';
SELECT count(*) AS kept_rows FROM rd_f;

-- a scorer's source with a tracker on another table: both go, and the
-- outcomes with the tracker
CREATE TABLE rd_labels (id bigint, price float8);
SELECT streamml.untrack_outcomes('rd_s');
SELECT streamml.track_outcomes('rd_s', 'rd_labels', '{"actual": "price"}');
DROP TABLE rd_f, rd_labels;
DROP TABLE rd_f CASCADE;
SELECT count(*) AS scorers FROM streamml.scorers WHERE name = 'rd_s';
SELECT count(*) AS trackers FROM streamml.outcome_trackers WHERE scorer = 'rd_s';
INSERT INTO rd_labels VALUES (1, 1);
SELECT count(*) AS predictions_kept FROM rd_p;

-- the names are free again
CREATE TABLE rd_ticks (id bigint PRIMARY KEY, symbol text, ts timestamptz, price float8);
SELECT streamml.create_feature_table('rd_f', 'rd_ticks', '{"partition_by": "symbol",
	"order_by": "ts", "keep": ["id", "symbol", "ts", "price"],
	"features": {"lag1": {"fn": "lag", "of": "price", "n": 1}}}');
SELECT streamml.create_scorer('rd_s', 'rd_f', 'rd_m', '{"key": "id", "into": "rd_p2"}');
RESET ROLE;

-- however the table goes: DROP SCHEMA ... CASCADE, by another role
CREATE SCHEMA rd_schema AUTHORIZATION rd_user;
SET ROLE rd_user;
CREATE TABLE rd_schema.src (id bigint PRIMARY KEY, symbol text, ts timestamptz, price float8);
SELECT streamml.create_feature_table('rd_schema_f', 'rd_schema.src', '{"partition_by": "symbol",
	"order_by": "ts", "keep": ["id", "symbol", "ts", "price"],
	"features": {"lag1": {"fn": "lag", "of": "price", "n": 1}}}');
RESET ROLE;
\set VERBOSITY terse
DROP SCHEMA rd_schema CASCADE;
\set VERBOSITY default
SELECT count(*) AS feature_tables FROM streamml.feature_tables WHERE name = 'rd_schema_f';

-- the event trigger is no function to call
SELECT streamml.relations_dropped();

-- another role's DROP gets PostgreSQL's own error, and learns nothing
CREATE ROLE rd_other;
SET ROLE rd_other;
DROP TABLE rd_p2;
RESET ROLE;
DROP ROLE rd_other;

-- drops of tables nothing uses say nothing
CREATE TABLE rd_unrelated (x int);
DROP TABLE rd_unrelated;

-- drop_feature_table is refused while a scorer reads its table
SELECT streamml.drop_feature_table('rd_f');

-- cleanup
SELECT streamml.drop_scorer('rd_s');
SELECT streamml.drop_feature_table('rd_f');
SELECT streamml.drop_model('rd_m');
DROP TABLE rd_ticks, rd_p, rd_p2, rd_labels, rd_schema_f;
REVOKE CREATE ON SCHEMA public FROM rd_user;
DROP ROLE rd_user;
