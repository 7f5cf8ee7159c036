-- pg_streamml install script, version 0.1.0.
--
-- Assembled by the Makefile from src/pg_streamml.sql (this common part) and
-- one fragment per area (src/*/*.sql).  Every name is schema-qualified so
-- that the script does not depend on the caller's search_path.

\echo Use "CREATE EXTENSION pg_streamml" to load this file. \quit

CREATE FUNCTION streamml.version() RETURNS text
	AS 'MODULE_PATHNAME', 'streamml_version'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.version() IS
	'version of the loaded pg_streamml library';
