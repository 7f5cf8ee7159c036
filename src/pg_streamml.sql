-- pg_streamml install script, version 0.1.0.
--
-- Assembled by the Makefile from src/pg_streamml.sql (this common part) and
-- one fragment per area (src/*/*.sql).  Every name is schema-qualified so
-- that the script does not depend on the caller's search_path.

\echo Use "CREATE EXTENSION pg_streamml" to load this file. \quit

-- Every role may use the schema: streams and models are per user, and what
-- each role sees of the catalogs is decided row by row (row-level security);
-- the functions that change them check ownership and privileges themselves.
GRANT USAGE ON SCHEMA streamml TO PUBLIC;

CREATE FUNCTION streamml.version() RETURNS text
	AS 'MODULE_PATHNAME', 'streamml_version'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.version() IS
	'version of the loaded pg_streamml library';

-- A statement trigger on the catalog tables whose rows backends cache
-- (feature tables, scorers): every change, whoever makes it, reaches the
-- caches of all backends when it commits, as a relcache invalidation of
-- the catalog table (src/catalog.c).
CREATE FUNCTION streamml.catalog_cache_invalidate() RETURNS trigger
	AS 'MODULE_PATHNAME', 'catalog_cache_invalidate'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.catalog_cache_invalidate() IS
	'trigger: tells every backend that a catalog table it caches rows of changed';
REVOKE ALL ON FUNCTION streamml.catalog_cache_invalidate() FROM PUBLIC;

-- At the end of every DROP: the feature tables, scorers and outcome
-- trackers whose tables were dropped go with them (src/relations.c).
CREATE FUNCTION streamml.relations_dropped() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'relations_dropped'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.relations_dropped() IS
	'event trigger on sql_drop: removes the feature tables, scorers and outcome trackers whose source, table or predictions table was dropped';
REVOKE ALL ON FUNCTION streamml.relations_dropped() FROM PUBLIC;
CREATE EVENT TRIGGER streamml_relations_dropped ON sql_drop
	EXECUTE FUNCTION streamml.relations_dropped();

-- At the end of CREATE TABLE and ALTER TABLE: the triggers of scorers and
-- outcome trackers on every partition of a partitioned source follow its
-- partitions (src/partitions.c).
CREATE FUNCTION streamml.partitions_changed() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'partitions_changed'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.partitions_changed() IS
	'event trigger on ddl_command_end of CREATE TABLE, CREATE FOREIGN TABLE, CREATE SCHEMA and ALTER TABLE: puts the triggers of scorers and outcome trackers on new partitions of their source, and takes them off detached ones; refuses an inheritance child of a watched table';
REVOKE ALL ON FUNCTION streamml.partitions_changed() FROM PUBLIC;
CREATE EVENT TRIGGER streamml_partitions_changed ON ddl_command_end
	WHEN TAG IN ('CREATE TABLE', 'CREATE FOREIGN TABLE', 'CREATE SCHEMA', 'ALTER TABLE')
	EXECUTE FUNCTION streamml.partitions_changed();
