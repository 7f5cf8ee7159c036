
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
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	champion_since timestamptz,
	last_promotion jsonb,
	challenger_baseline jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE streamml.scorers_catalog IS
	'scorers: the model that scores every row inserted into a source table, and the table its predictions go to';
ALTER TABLE streamml.scorers_catalog ENABLE ROW LEVEL SECURITY;
CREATE POLICY scorers_catalog_owner ON streamml.scorers_catalog
	FOR SELECT USING (pg_catalog.pg_has_role(owner, 'USAGE'));
GRANT SELECT ON streamml.scorers_catalog TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('streamml.scorers_catalog', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.scorers_catalog_id_seq', '');
-- every change drops the definitions backends cache (scorerinsert.c)
CREATE TRIGGER scorers_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON streamml.scorers_catalog FOR EACH STATEMENT
	EXECUTE FUNCTION streamml.catalog_cache_invalidate();

CREATE FUNCTION streamml.create_scorer(name text, source regclass, model text,
	options jsonb DEFAULT '{}') RETURNS regclass
	AS 'MODULE_PATHNAME', 'create_scorer'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.create_scorer(text, regclass, text, jsonb) IS
	'scores every row inserted into source with the deployed version of model, in the same transaction, into a predictions table (options: into, key, features, group_by, challengers: model names and {"model", "version"} objects, auto_promote); returns the predictions table';

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
	   s.last_batch_at, s.last_error, s.error_at, d.created_at,
	   COALESCE(d.options OPERATOR(pg_catalog.->) 'challengers', '[]') AS challengers,
	   d.champion_since, d.last_promotion
  FROM streamml.scorers_catalog d
  LEFT JOIN streamml.scorer_stats_raw() s ON s.scorer_id OPERATOR(pg_catalog.=) d.id;
COMMENT ON VIEW streamml.scorers IS
'scorers with their live counters since the server started: rows processed, unscorable rows, rows per second, batches, mean time per batch, last error; their challengers and last promotion';
GRANT SELECT ON streamml.scorers TO PUBLIC;

-- Champion and challengers (src/scoring/scorer_promote.c).  A challenger is
-- another model (its deployed version) or a version of a model, the
-- champion's own included: option "challengers" holds model names and
-- {"model": m, "version": v} objects.
CREATE FUNCTION streamml.promote(scorer text, challenger text,
	version integer DEFAULT NULL) RETURNS text
	AS 'MODULE_PATHNAME', 'scorer_promote'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.promote(text, text, integer) IS
	'makes a challenger of a scorer its champion (the model it serves) from the next statement on; a version challenger (version given) is deployed first, as streamml.deploy does; returns the former champion (owner only)';

CREATE FUNCTION streamml.set_challengers(scorer text, challengers text[],
	auto_promote jsonb DEFAULT NULL, versions integer[] DEFAULT NULL) RETURNS void
	AS 'MODULE_PATHNAME', 'scorer_set_challengers'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.set_challengers(text, text[], jsonb, integer[]) IS
	'replaces the models a scorer shadow-scores beside its champion (versions[i], when not NULL, makes challengers[i] that version of the model), and its auto_promote option ({"min_rows": 1000, "alpha": 0.01}; NULL: none); their paired comparison starts afresh (owner only)';

CREATE FUNCTION streamml.paired_loss_p_value(n bigint, diff_sum float8,
	diff_sq_sum float8) RETURNS float8
	AS 'MODULE_PATHNAME', 'paired_loss_p_value'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.paired_loss_p_value(bigint, float8, float8) IS
	'one-sided p-value of the Diebold-Mariano (paired) test that the mean of n loss differences (champion minus challenger) with the given sum and sum of squares is not positive; NULL below 2 pairs';

-- Each challenger beside its scorer's champion: the labelled keys both
-- scored (pairs, since the challengers were last set or promoted), the mean
-- loss difference (champion minus challenger: positive when the challenger
-- is better) and the one-sided p-value of the paired test.  A model
-- challenger counts its pairs at every version it served; a version
-- challenger (challenger_version not NULL) at that version.
CREATE VIEW streamml.challengers WITH (security_invoker = true) AS
WITH c AS (
	SELECT s.name AS scorer, s.model AS champion, ch.challenger, ch.challenger_version,
		   s.options OPERATOR(pg_catalog.->) 'auto_promote' AS auto_promote,
		   CASE WHEN ch.challenger_version IS NULL
				THEN s.challenger_baseline OPERATOR(pg_catalog.->) ch.challenger
				ELSE s.challenger_baseline OPERATOR(pg_catalog.->) ch.challenger
					 OPERATOR(pg_catalog.->) ch.challenger_version::pg_catalog.text
		   END AS base
	  FROM streamml.scorers_catalog s
	 CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(
		   COALESCE(s.options OPERATOR(pg_catalog.->) 'challengers', '[]')) AS e(v)
	 CROSS JOIN LATERAL (SELECT
		   CASE WHEN pg_catalog.jsonb_typeof(e.v) OPERATOR(pg_catalog.=) 'object'
				THEN e.v OPERATOR(pg_catalog.->>) 'model'
				ELSE e.v OPERATOR(pg_catalog.#>>) '{}' END AS challenger,
		   (e.v OPERATOR(pg_catalog.->>) 'version')::integer AS challenger_version) ch),
q AS (
	SELECT t.scorer, b.model, b.version, pg_catalog.sum(b.pair_n) AS n,
		   pg_catalog.sum(b.pair_diff_sum) AS d, pg_catalog.sum(b.pair_diff_sq_sum) AS d2
	  FROM streamml.quality_buckets b
	  JOIN streamml.outcome_trackers t ON t.id OPERATOR(pg_catalog.=) b.tracker
	 WHERE b.role OPERATOR(pg_catalog.=) 'challenger'
	 GROUP BY t.scorer, b.model, b.version),
x AS (
	SELECT c.*,
		   (COALESCE(q.n, 0) OPERATOR(pg_catalog.-)
			COALESCE((c.base OPERATOR(pg_catalog.->>) 0)::numeric, 0))::bigint AS n,
		   COALESCE(q.d, 0) OPERATOR(pg_catalog.-)
			COALESCE((c.base OPERATOR(pg_catalog.->>) 1)::float8, 0) AS d,
		   COALESCE(q.d2, 0) OPERATOR(pg_catalog.-)
			COALESCE((c.base OPERATOR(pg_catalog.->>) 2)::float8, 0) AS d2
	  FROM c LEFT JOIN LATERAL (
		   SELECT pg_catalog.sum(q.n) AS n, pg_catalog.sum(q.d) AS d,
				  pg_catalog.sum(q.d2) AS d2
			 FROM q WHERE q.scorer OPERATOR(pg_catalog.=) c.scorer
			  AND q.model OPERATOR(pg_catalog.=) c.challenger
			  AND (c.challenger_version IS NULL
				   OR q.version OPERATOR(pg_catalog.=) c.challenger_version)) q ON true)
SELECT x.scorer, x.champion, x.challenger, x.challenger_version, x.n AS pairs,
	   CASE WHEN x.n OPERATOR(pg_catalog.>) 0 THEN x.d OPERATOR(pg_catalog./) x.n END
		   AS mean_loss_difference,
	   streamml.paired_loss_p_value(x.n, x.d, x.d2) AS p_value,
	   x.auto_promote
  FROM x;
COMMENT ON VIEW streamml.challengers IS
	'challengers beside their scorer''s champion (challenger_version: a version challenger; NULL: the model''s deployed version): labelled keys scored by both, mean loss difference (champion minus challenger), one-sided p-value of the paired (Diebold-Mariano) test, auto_promote option';
GRANT SELECT ON streamml.challengers TO PUBLIC;
