
-- ---------------------------------------------------------------------------
-- Feature tables (src/scoring): the windowed features of every row inserted
-- into a source table, written by a statement trigger in the same
-- transaction.
-- ---------------------------------------------------------------------------

CREATE TABLE streamml.feature_tables_catalog (
	name text PRIMARY KEY CHECK (name OPERATOR(pg_catalog.<>) ''),
	owner regrole NOT NULL,
	source regclass NOT NULL,
	target regclass NOT NULL UNIQUE,
	spec jsonb NOT NULL,
	trigger_name name NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE streamml.feature_tables_catalog IS
	'feature tables: the source, the table kept complete with the features of its rows, the spec (written only by create/drop_feature_table)';
ALTER TABLE streamml.feature_tables_catalog ENABLE ROW LEVEL SECURITY;
CREATE POLICY feature_tables_owner ON streamml.feature_tables_catalog
	FOR SELECT USING (pg_catalog.pg_has_role(owner, 'USAGE'));
GRANT SELECT ON streamml.feature_tables_catalog TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('streamml.feature_tables_catalog', '');

-- every change drops the definitions backends cache (featureinsert.c)
CREATE TRIGGER feature_tables_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON streamml.feature_tables_catalog FOR EACH STATEMENT
	EXECUTE FUNCTION streamml.catalog_cache_invalidate();

CREATE FUNCTION streamml.feature_table_trigger()
	RETURNS trigger
	AS 'MODULE_PATHNAME', 'feature_table_trigger'
	LANGUAGE C;
COMMENT ON FUNCTION streamml.feature_table_trigger() IS
	'the AFTER INSERT statement trigger that writes the features of a source''s new rows into its feature table';

CREATE FUNCTION streamml.feature_table_delete_trigger()
	RETURNS trigger
	AS 'MODULE_PATHNAME', 'feature_table_delete_trigger'
	LANGUAGE C;
COMMENT ON FUNCTION streamml.feature_table_delete_trigger() IS
	'the AFTER DELETE statement trigger that deletes the feature rows of a source''s deleted rows, by the source''s primary key';

CREATE FUNCTION streamml.feature_table_truncate_trigger()
	RETURNS trigger
	AS 'MODULE_PATHNAME', 'feature_table_truncate_trigger'
	LANGUAGE C;
COMMENT ON FUNCTION streamml.feature_table_truncate_trigger() IS
	'the AFTER TRUNCATE statement trigger that truncates a source''s feature table with it, in the same transaction';

CREATE FUNCTION streamml.feature_table_update_trigger()
	RETURNS trigger
	AS 'MODULE_PATHNAME', 'feature_table_update_trigger'
	LANGUAGE C;
COMMENT ON FUNCTION streamml.feature_table_update_trigger() IS
	'the BEFORE UPDATE row trigger that refuses changes to the columns a feature table keeps from its source';

CREATE FUNCTION streamml.create_feature_table(name pg_catalog.text, source pg_catalog.regclass, spec pg_catalog.jsonb)
	RETURNS pg_catalog.regclass
	AS 'MODULE_PATHNAME', 'create_feature_table'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.create_feature_table(pg_catalog.text, pg_catalog.regclass, pg_catalog.jsonb) IS
	'creates table name holding, for every row inserted into source, its kept columns and windowed features (spec), computed in the same transaction';

CREATE FUNCTION streamml.drop_feature_table(name pg_catalog.text)
	RETURNS void
	AS 'MODULE_PATHNAME', 'drop_feature_table'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.drop_feature_table(pg_catalog.text) IS
	'drops a feature table: the table, the trigger on its source and its catalog row';

CREATE FUNCTION streamml.feature_sql(name pg_catalog.text)
	RETURNS pg_catalog.text
	AS 'MODULE_PATHNAME', 'feature_sql'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION streamml.feature_sql(pg_catalog.text) IS
	'the SQL window query over the source that computes a feature table''s features';

CREATE FUNCTION streamml.feature_table_stats(
	OUT target pg_catalog.oid, OUT rows_processed pg_catalog.int8,
	OUT late_rows pg_catalog.int8, OUT rows_per_second pg_catalog.float8,
	OUT last_error pg_catalog.text, OUT mean_batch_time pg_catalog.float8)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'feature_table_stats'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION streamml.feature_table_stats() IS
	'live statistics of the feature tables of this database, since the server started (under the view streamml.feature_tables)';

CREATE VIEW streamml.feature_tables WITH (security_invoker = true) AS
	SELECT c.name, c.owner, c.source, c.spec, c.target,
		s.rows_processed, s.late_rows, s.rows_per_second, s.last_error,
		s.mean_batch_time
	FROM streamml.feature_tables_catalog c
	LEFT JOIN streamml.feature_table_stats() s
		ON s.target OPERATOR(pg_catalog.=) c.target::pg_catalog.oid;
COMMENT ON VIEW streamml.feature_tables IS
	'feature tables the current user owns: spec, target table, rows processed and late since the server started, rows per second, last error, mean milliseconds per loading statement';
GRANT SELECT ON streamml.feature_tables TO PUBLIC;
