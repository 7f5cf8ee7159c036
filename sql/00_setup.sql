-- The extension installs into schema streamml from a preloaded library.
CREATE EXTENSION pg_streamml;
SELECT extname, extversion, extnamespace::regnamespace AS schema
  FROM pg_extension WHERE extname = 'pg_streamml';
SELECT streamml.version();
SHOW shared_preload_libraries;
-- The library is already loaded; loading it again is a no-op.
LOAD 'pg_streamml';
-- The streamml prefix is reserved for our settings.
SET streamml.no_such_setting = 1;
