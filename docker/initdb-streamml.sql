-- Run once by the postgres image when it initialises a new data directory.
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION IF NOT EXISTS pg_streamml;
