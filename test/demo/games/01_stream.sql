-- Seed 003: video-game sales arriving through Kafka as CSV with a header
-- line.  The CHECKs and the types are the cleaning step: a game whose Year
-- is "N/A" fails the int input of year, one whose Publisher is "N/A" fails
-- publisher_known; either is a dead letter with its reason.
CREATE TABLE games (
	rank         int PRIMARY KEY,
	name         text NOT NULL,
	platform     text NOT NULL,
	year         int NOT NULL CONSTRAINT year_plausible CHECK (year BETWEEN 1970 AND 2030),
	genre        text NOT NULL,
	publisher    text NOT NULL CONSTRAINT publisher_known CHECK (publisher <> 'N/A'),
	na_sales     float8, eu_sales float8, jp_sales float8, other_sales float8,
	global_sales float8 NOT NULL CHECK (global_sales >= 0),
	arrival      bigint,                -- Kafka offset: the order of arrival
	kafka_ts     timestamptz
);
SELECT streamml.create_stream('games', 'games', :'brokers', 'games', 'csv',
	'{"header": true, "flush_ms": 100,
	  "columns": {"arrival": "$offset", "kafka_ts": "$timestamp"}}');
