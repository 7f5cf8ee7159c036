-- Seed 004, bronze: Binance trade events from Kafka into trades.  The
-- stream maps the event's short keys s/p/q/T to columns (T is epoch
-- milliseconds) and keeps Kafka's own timestamp, from which end-to-end
-- latency is measured.  The CHECK constraints are the quality gate: a row
-- breaking one is a dead letter (streamml.dead_letters, with the reason),
-- and the rest of its batch loads.
CREATE TABLE trades (
	trade_id    bigint NOT NULL,
	symbol      text NOT NULL,
	price       float8 NOT NULL CONSTRAINT price_positive CHECK (price > 0),
	quantity    float8 NOT NULL CONSTRAINT quantity_positive CHECK (quantity > 0),
	ts          timestamptz NOT NULL
	            CONSTRAINT ts_not_future CHECK (ts <= now() + interval '5 seconds'),
	buyer_maker boolean,
	kafka_ts    timestamptz NOT NULL,
	PRIMARY KEY (symbol, trade_id)
);
CREATE INDEX ON trades (symbol, ts);

SELECT streamml.create_stream('trades', 'trades', :'brokers', 'trades', 'json',
	'{"workers": 2, "flush_ms": 100, "epoch_unit": "ms",
	  "columns": {"symbol": "s", "price": "p", "quantity": "q", "ts": "T",
	              "trade_id": "t", "buyer_maker": "m", "kafka_ts": "$timestamp"}}');
