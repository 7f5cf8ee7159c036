-- Seed 004, silver and in-flight inference, in the stream's own
-- transaction: a statement trigger on trades sees each loaded batch (its
-- transition table) and
--   1. computes seed 004's features per symbol into trade_features,
--   2. scores every arriving trade with the deployed per-symbol model
--      (price 60 s ahead: the model predicts the change from the trade's
--      price) into predictions, committed with the batch,
--   3. records outcomes: a prediction made at ts learns its actual price
--      once the symbol's first trade at or after ts + 60 s arrives.
--
-- PLUG-IN POINTS, for when they land on main:
--   [feature table] step 1 becomes
--       SELECT streamml.create_feature_table('trade_features', 'trades', ...)
--     with the same feature definitions (the window expressions below);
--   [scorer] step 2 becomes
--       SELECT streamml.create_scorer('price_60s', 'trade_features', ...)
--     writing into predictions; the trigger then keeps only step 3 (or the
--     scorer's outcome join replaces it).
CREATE TABLE trade_features (
	trade_id   bigint NOT NULL,
	symbol     text NOT NULL,
	ts         timestamptz NOT NULL,
	price      float8 NOT NULL,
	lag_1      float8,   -- previous trade's price
	lag_3      float8,   -- price three trades back
	ma_5       float8,   -- mean of the last 5 prices (this one included)
	ma_10      float8,   -- mean of the last 10 prices
	momentum   float8,   -- price / lag_3 - 1
	vol_30s    float8,   -- stddev_pop of the prices of the last 30 seconds
	vol_change float8,   -- vol_30s - the previous trade's vol_30s
	PRIMARY KEY (symbol, trade_id)
);

-- Append-only, so that each row's xmin is the transaction that scored it:
-- pg_xact_commit_timestamp(xmin) is when the prediction was committed
-- (track_commit_timestamp), the end of the end-to-end latency.
CREATE TABLE predictions (
	trade_id   bigint NOT NULL,
	symbol     text NOT NULL,
	ts         timestamptz NOT NULL,       -- trade time
	price      float8 NOT NULL,
	kafka_ts   timestamptz NOT NULL,       -- when Kafka got the trade
	predicted  float8,                     -- price 60 s after ts (NULL: no model yet)
	version    int,                        -- model version that predicted
	vol_30s    float8,
	PRIMARY KEY (symbol, trade_id)
);
CREATE INDEX ON predictions (symbol, ts);

-- The outcome of each prediction: the first price at or after ts + 60 s.
CREATE TABLE outcomes (
	trade_id   bigint NOT NULL,
	symbol     text NOT NULL,
	ts         timestamptz NOT NULL,       -- the predicted trade's time
	actual     float8 NOT NULL,
	known_at   timestamptz NOT NULL,       -- the trade time that revealed it
	PRIMARY KEY (symbol, trade_id)
);
CREATE INDEX ON outcomes (symbol, ts);

-- Steps 1-3 for one loaded batch.
CREATE FUNCTION on_trades_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	WITH batch AS (
		-- per symbol: the batch's first trade, and the time from which the
		-- context must be read so that the first trade's lags and the
		-- previous trade's 30 s window are complete
		SELECT b.symbol, b.min_ts,
		       least(b.min_ts, coalesce((SELECT t.ts FROM trades t
		                                  WHERE t.symbol = b.symbol AND t.ts <= b.min_ts
		                                    AND NOT EXISTS (SELECT 1 FROM new_trades n
		                                                     WHERE n.symbol = t.symbol
		                                                       AND n.trade_id = t.trade_id)
		                                  ORDER BY t.ts DESC, t.trade_id DESC
		                                  OFFSET 9 LIMIT 1), b.min_ts))
		         - interval '30 seconds' AS from_ts
		  FROM (SELECT symbol, min(ts) AS min_ts FROM new_trades GROUP BY symbol) b
	), context AS (
		SELECT t.trade_id, t.symbol, t.ts, t.price
		  FROM batch b JOIN trades t ON t.symbol = b.symbol AND t.ts >= b.from_ts
	), windowed AS (
		SELECT trade_id, symbol, ts, price,
		       lag(price, 1) OVER w AS lag_1,
		       lag(price, 3) OVER w AS lag_3,
		       CASE WHEN count(*) OVER (w ROWS 4 PRECEDING) = 5
		            THEN streamml.rolling_mean(price) OVER (w ROWS 4 PRECEDING) END AS ma_5,
		       CASE WHEN count(*) OVER (w ROWS 9 PRECEDING) = 10
		            THEN streamml.rolling_mean(price) OVER (w ROWS 9 PRECEDING) END AS ma_10,
		       streamml.rolling_stddev_pop(price)
		         OVER (PARTITION BY symbol ORDER BY ts RANGE interval '30 seconds' PRECEDING) AS vol_30s
		  FROM context
		WINDOW w AS (PARTITION BY symbol ORDER BY ts, trade_id)
	), features AS (
		-- only the batch's own trades: the context before them has its
		-- features already
		INSERT INTO trade_features
		SELECT f.* FROM (
			SELECT trade_id, symbol, ts, price, lag_1, lag_3, ma_5, ma_10,
			       price / lag_3 - 1, vol_30s,
			       vol_30s - lag(vol_30s) OVER (PARTITION BY symbol ORDER BY ts, trade_id)
			  FROM windowed) f
		 WHERE EXISTS (SELECT 1 FROM new_trades n
		                WHERE n.symbol = f.symbol AND n.trade_id = f.trade_id)
		RETURNING *
	), deployed AS (
		SELECT v.group_key, v.version
		  FROM streamml.models m
		  JOIN streamml.model_versions v ON v.model = m.name AND v.version = m.deployed_version
		 WHERE m.name = 'price_60s'
	)
	INSERT INTO predictions (trade_id, symbol, ts, price, kafka_ts, predicted, version, vol_30s)
	SELECT f.trade_id, f.symbol, f.ts, f.price, n.kafka_ts,
	       CASE WHEN d.version IS NOT NULL THEN f.price +
	            streamml.predict('price_60s', f.symbol,
	                ARRAY[f.price, f.lag_1, f.lag_3, f.ma_5, f.ma_10, f.momentum,
	                      f.vol_30s, f.vol_change]) END,
	       d.version, f.vol_30s
	  FROM features f
	  JOIN new_trades n USING (symbol, trade_id)
	  LEFT JOIN deployed d ON d.group_key = f.symbol;

	-- outcomes are resolved in time order per symbol, so the pending
	-- predictions are those from the symbol's last outcome on
	INSERT INTO outcomes (trade_id, symbol, ts, actual, known_at)
	SELECT p.trade_id, p.symbol, p.ts, o.price, o.ts
	  FROM (SELECT symbol, max(ts) AS max_ts FROM new_trades GROUP BY symbol) b
	  JOIN predictions p ON p.symbol = b.symbol
	                    AND p.ts <= b.max_ts - interval '60 seconds'
	                    AND p.ts >= coalesce((SELECT max(ts) FROM outcomes x
	                                           WHERE x.symbol = b.symbol), '-infinity')
	                    AND NOT EXISTS (SELECT 1 FROM outcomes x
	                                     WHERE x.symbol = p.symbol AND x.trade_id = p.trade_id)
	 CROSS JOIN LATERAL (SELECT t.price, t.ts FROM trades t
	                      WHERE t.symbol = p.symbol AND t.ts >= p.ts + interval '60 seconds'
	                      ORDER BY t.ts, t.trade_id LIMIT 1) o;
	RETURN NULL;
END
$$;

CREATE TRIGGER trades_batch AFTER INSERT ON trades
	REFERENCING NEW TABLE AS new_trades
	FOR EACH STATEMENT EXECUTE FUNCTION on_trades_batch();
