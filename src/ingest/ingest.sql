
-- ---------------------------------------------------------------------------
-- Kafka ingestion (src/ingest): the stream catalog, offsets kept with the
-- rows, dead letters, live statistics and produce().
--
-- Users create and manage streams only through the functions below, which
-- check ownership and privileges and then write the catalog themselves;
-- the tables are readable by the owners of the streams (row-level
-- security), so that librdkafka options such as passwords stay private.
-- ---------------------------------------------------------------------------

CREATE TABLE streamml.streams (
	id serial NOT NULL UNIQUE,
	name text PRIMARY KEY CHECK (name OPERATOR(pg_catalog.<>) ''),
	owner regrole NOT NULL,
	target regclass NOT NULL,
	brokers text NOT NULL,
	topic text NOT NULL,
	format text NOT NULL,
	options jsonb NOT NULL DEFAULT '{}',
	enabled boolean NOT NULL DEFAULT true,
	generation integer NOT NULL DEFAULT 1,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE streamml.streams IS
	'Kafka streams loaded into tables by pg_streamml background workers';
ALTER TABLE streamml.streams ENABLE ROW LEVEL SECURITY;
CREATE POLICY streams_owner ON streamml.streams
	FOR SELECT USING (pg_catalog.pg_has_role(owner, 'USAGE'));
GRANT SELECT ON streamml.streams TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('streamml.streams', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.streams_id_seq', '');

CREATE TABLE streamml.offsets (
	stream_id integer NOT NULL
		REFERENCES streamml.streams (id) ON DELETE CASCADE,
	partition integer NOT NULL,
	next_offset bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	messages_lost bigint NOT NULL DEFAULT 0,
	last_gap_start bigint,
	last_gap_end bigint,
	PRIMARY KEY (stream_id, partition)
);
COMMENT ON TABLE streamml.offsets IS
	'next Kafka offset to load per stream and partition, advanced in the transaction that writes the rows (-2 means the earliest offset)';
COMMENT ON COLUMN streamml.offsets.messages_lost IS
	'messages Kafka removed (retention) before the stream read them, counted when the stream went on from the earliest offset';
COMMENT ON COLUMN streamml.offsets.last_gap_start IS
	'first offset of the last gap of lost messages';
COMMENT ON COLUMN streamml.offsets.last_gap_end IS
	'offset after the last gap of lost messages: where the stream went on';
ALTER TABLE streamml.offsets ENABLE ROW LEVEL SECURITY;
CREATE POLICY offsets_owner ON streamml.offsets
	USING (EXISTS (SELECT 1 FROM streamml.streams s
		WHERE s.id OPERATOR(pg_catalog.=) stream_id));
GRANT SELECT ON streamml.offsets TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('streamml.offsets', '');

CREATE TABLE streamml.dead_letters (
	id bigserial PRIMARY KEY,
	stream text NOT NULL,
	owner regrole NOT NULL,
	topic text NOT NULL,
	partition integer NOT NULL,
	"offset" bigint NOT NULL,
	key bytea,
	payload bytea,
	error text NOT NULL,
	failed_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX ON streamml.dead_letters (stream, partition, "offset");
COMMENT ON TABLE streamml.dead_letters IS
	'messages that could not be loaded, exactly as received, with the error';
ALTER TABLE streamml.dead_letters ENABLE ROW LEVEL SECURITY;
-- By the owner of the stream that made the row, not by name: a stream
-- dropped and created again by someone else does not hand its rows over.
CREATE POLICY dead_letters_owner ON streamml.dead_letters
	USING (pg_catalog.pg_has_role(owner, 'USAGE'));
GRANT SELECT, DELETE ON streamml.dead_letters TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('streamml.dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.dead_letters_id_seq', '');

CREATE FUNCTION streamml.create_stream(name text, target regclass,
		brokers text, topic text, format text DEFAULT 'json',
		options jsonb DEFAULT '{}')
	RETURNS void
	AS 'MODULE_PATHNAME', 'streamml_create_stream'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.create_stream(text, regclass, text, text, text, jsonb) IS
	'records a Kafka stream into a table and starts loading it';

CREATE FUNCTION streamml.stop_stream(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'streamml_stop_stream'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.stop_stream(text) IS
	'stops the workers of a stream; its offsets are kept';

CREATE FUNCTION streamml.start_stream(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'streamml_start_stream'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.start_stream(text) IS
	'starts a stopped stream again from its stored offsets';

CREATE FUNCTION streamml.drop_stream(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'streamml_drop_stream'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.drop_stream(text) IS
	'stops a stream and forgets it and its offsets (dead letters are kept)';

CREATE FUNCTION streamml.alter_stream(name text, options jsonb) RETURNS void
	AS 'MODULE_PATHNAME', 'streamml_alter_stream'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.alter_stream(text, jsonb) IS
	'changes options of a stream (merged into the current ones; null removes a key) and restarts its workers';

CREATE FUNCTION streamml.reset_stream(name text, "position" text) RETURNS void
	AS 'MODULE_PATHNAME', 'streamml_reset_stream'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.reset_stream(text, text) IS
	'starts a stream again at earliest, latest or a timestamp, or moves partitions to given offsets ({"0": 1500})';

CREATE FUNCTION streamml.produce(brokers text, topic text, value text,
		key text DEFAULT NULL)
	RETURNS void
	AS 'MODULE_PATHNAME', 'streamml_produce'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.produce(text, text, text, text) IS
	'writes one message to a Kafka topic and waits until Kafka acknowledges it';
REVOKE ALL ON FUNCTION streamml.produce(text, text, text, text) FROM PUBLIC;

CREATE FUNCTION streamml.stream_stats_raw(
		OUT stream_id integer, OUT partition integer, OUT next_offset bigint,
		OUT high_watermark bigint, OUT rows_ingested bigint,
		OUT rows_rejected bigint, OUT rows_per_second float8,
		OUT last_error text, OUT last_error_at timestamptz,
		OUT last_batch_at timestamptz, OUT worker_pid integer,
		OUT error_count bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'streamml_stream_stats_raw'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION streamml.stream_stats_raw() IS
	'live counters of the streams the caller owns, from shared memory';

CREATE VIEW streamml.stream_stats WITH (security_invoker = true) AS
	SELECT s.name AS stream, st.partition, st.next_offset, st.high_watermark,
		st.high_watermark OPERATOR(pg_catalog.-) st.next_offset AS lag,
		st.rows_ingested, st.rows_rejected, st.rows_per_second,
		st.last_error, st.last_error_at, st.last_batch_at, st.worker_pid,
		st.error_count,
		CASE WHEN st.partition IS NOT NULL
			THEN COALESCE(o.messages_lost, 0::bigint)
		END AS messages_lost,
		o.last_gap_start, o.last_gap_end
	FROM streamml.stream_stats_raw() st
	JOIN streamml.streams s ON s.id OPERATOR(pg_catalog.=) st.stream_id
	LEFT JOIN streamml.offsets o
		ON o.stream_id OPERATOR(pg_catalog.=) st.stream_id
		AND o.partition OPERATOR(pg_catalog.=) st.partition;
COMMENT ON VIEW streamml.stream_stats IS
	'per stream and partition: progress, lag (negative: the stored offset is beyond the end of the partition), counters, rate, last error (error_count: how often it came in a row, last_error_at: when last) and messages lost to retention; a row with partition NULL shows an error of the whole stream while it lasts, or that it waits for a worker slot';
GRANT SELECT ON streamml.stream_stats TO PUBLIC;
