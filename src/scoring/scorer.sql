
-- ---------------------------------------------------------------------------
-- Scorers (src/scoring/scorer*.c): every row inserted into a source table,
-- by a stream, INSERT or COPY, gets its prediction by a deployed model in
-- the same transaction.
--
-- Users create and drop scorers only through the functions below, which
-- check ownership and privileges and then write the catalog themselves;
-- each role sees the scorers whose owner's privileges it has (row-level
-- security).  Owners are regrole (role oids), as for streams and models.
-- ---------------------------------------------------------------------------

CREATE TABLE streamml.scorers_catalog (
	id serial NOT NULL UNIQUE,
	name text PRIMARY KEY CHECK (name OPERATOR(pg_catalog.<>) ''),
	owner regrole NOT NULL,
	source regclass NOT NULL,
	model text NOT NULL,
	predictions regclass NOT NULL,
	key_columns text[] NOT NULL,
	options jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE streamml.scorers_catalog IS
	'scorers: the model that scores every row inserted into a source table, and the table its predictions go to';
ALTER TABLE streamml.scorers_catalog ENABLE ROW LEVEL SECURITY;
CREATE POLICY scorers_catalog_owner ON streamml.scorers_catalog
	FOR SELECT USING (pg_catalog.pg_has_role(owner, 'USAGE'));
GRANT SELECT ON streamml.scorers_catalog TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('streamml.scorers_catalog', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.scorers_catalog_id_seq', '');

CREATE FUNCTION streamml.create_scorer(name text, source regclass, model text,
	options jsonb DEFAULT '{}') RETURNS regclass
	AS 'MODULE_PATHNAME', 'create_scorer'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.create_scorer(text, regclass, text, jsonb) IS
	'scores every row inserted into source with the deployed version of model, in the same transaction, into a predictions table (options: into, key, features, group_by); returns the predictions table';

CREATE FUNCTION streamml.drop_scorer(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'drop_scorer'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.drop_scorer(text) IS
	'stops a scorer: removes its trigger and catalog row; the predictions table stays (owner only)';

-- The statement trigger create_scorer puts on the source.  Nobody but the
-- extension may attach it to a table: it writes as the scorer's owner.
CREATE FUNCTION streamml.scorer_trigger() RETURNS trigger
	AS 'MODULE_PATHNAME', 'scorer_trigger'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.scorer_trigger() IS
	'trigger: scores the rows of each statement that inserts into a scorer''s source';
REVOKE ALL ON FUNCTION streamml.scorer_trigger() FROM PUBLIC;

CREATE FUNCTION streamml.scorer_stats_raw(OUT scorer_id integer,
	OUT rows_processed bigint, OUT rows_unscorable bigint,
	OUT rows_per_second float8, OUT batches bigint, OUT mean_batch_ms float8,
	OUT last_batch_at timestamptz, OUT last_error text, OUT error_at timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'scorer_stats_raw'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION streamml.scorer_stats_raw() IS
	'live counters of the scorers of this database (the streamml.scorers view)';

CREATE VIEW streamml.scorers WITH (security_invoker = true) AS
SELECT d.name, d.owner, d.source, d.model, d.predictions, d.key_columns,
	   d.options, COALESCE(s.rows_processed, 0) AS rows_processed,
	   COALESCE(s.rows_unscorable, 0) AS rows_unscorable,
	   COALESCE(s.rows_per_second, 0) AS rows_per_second,
	   COALESCE(s.batches, 0) AS batches, s.mean_batch_ms,
	   s.last_batch_at, s.last_error, s.error_at, d.created_at
  FROM streamml.scorers_catalog d
  LEFT JOIN streamml.scorer_stats_raw() s ON s.scorer_id OPERATOR(pg_catalog.=) d.id;
COMMENT ON VIEW streamml.scorers IS
	'scorers with their live counters since the server started: rows processed, unscorable rows, rows per second, batches, mean time per batch, last error';
GRANT SELECT ON streamml.scorers TO PUBLIC;
