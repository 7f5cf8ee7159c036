-- Seed 004, silver: seed 004's features per symbol, kept by feature tables
-- in the stream's own transaction (each loaded batch of trades commits
-- with its features, and later with its predictions and outcomes).
--
--   trades -> trade_features_base (lag_1, lag_3, ma_5, ma_10, momentum,
--             vol_30s: streamml.create_feature_table over trades)
--          -> trade_features (the same columns, plus vol_change: the change
--             of vol_30s from the symbol's previous trade, a feature table
--             over the first one, since a feature of a feature needs the
--             first one's column)
--
-- The scorer (created by the watcher once the first model is deployed, in
-- 03_model_watcher.sql) scores every row inserted into trade_features, and
-- the outcome tracker labels each one with the symbol's price 60 s later.
SELECT streamml.create_feature_table('trade_features_base', 'trades', $${
  "partition_by": "symbol", "order_by": "ts",
  "keep": ["trade_id", "symbol", "ts", "price", "kafka_ts"],
  "features": {
    "lag_1":    {"fn": "lag",        "of": "price", "n": 1},
    "lag_3":    {"fn": "lag",        "of": "price", "n": 3},
    "ma_5":     {"fn": "mean",       "of": "price", "preceding": 4},
    "ma_10":    {"fn": "mean",       "of": "price", "preceding": 9},
    "momentum": {"fn": "pct_change", "of": "price", "n": 3},
    "vol_30s":  {"fn": "stddev_pop", "of": "price", "range": "30 seconds"}}}$$);

SELECT streamml.create_feature_table('trade_features', 'trade_features_base', $${
  "partition_by": "symbol", "order_by": "ts",
  "keep": ["trade_id", "symbol", "ts", "price", "kafka_ts",
           "lag_1", "lag_3", "ma_5", "ma_10", "momentum", "vol_30s"],
  "features": {
    "vol_change": {"fn": "delta", "of": "vol_30s", "n": 1}}}$$);

-- The outcome tracker's horizon mode reads the price 60 s later with this.
CREATE INDEX ON trade_features (symbol, ts);
CREATE UNIQUE INDEX ON trade_features (symbol, trade_id);
