-- What happened, printed at the end of the crypto demo.
\echo 'rows, dead letters, features'
SELECT (SELECT count(*) FROM trades) AS trades,
       (SELECT count(DISTINCT symbol) FROM trades) AS symbols,
       (SELECT count(*) FROM streamml.dead_letters) AS dead_letters,
       (SELECT count(*) FROM trade_features WHERE vol_change IS NOT NULL) AS feature_rows,
       (SELECT count(*) FROM predictions WHERE predicted IS NOT NULL) AS predictions,
       (SELECT count(*) FROM outcomes) AS outcomes;
\echo 'dead letters by reason'
SELECT reason, count(*) FROM dead_letter_reasons GROUP BY reason ORDER BY count(*) DESC;
\echo 'features of the newest trades'
SELECT symbol, ts, price, round(lag_1::numeric, 2) AS lag_1, round(lag_3::numeric, 2) AS lag_3,
       round(ma_5::numeric, 2) AS ma_5, round(ma_10::numeric, 2) AS ma_10,
       round(momentum::numeric, 6) AS momentum, round(vol_30s::numeric, 3) AS vol_30s,
       round(vol_change::numeric, 3) AS vol_change
  FROM (SELECT DISTINCT ON (symbol) * FROM trade_features ORDER BY symbol, ts DESC, trade_id DESC) f
 ORDER BY symbol;
\echo 'models (the champion is the deployed version; holdout = latest 20% by ts)'
SELECT * FROM leaderboard;
\echo 'live RMSE by version (outcomes 60 s later) beside the naive forecast "price stays"'
SELECT * FROM live_rmse;
\echo 'model events'
SELECT id, to_char(data_ts, 'HH24:MI:SS') AS data_time, kind, version, detail
  FROM model_events ORDER BY id;
\echo 'end-to-end latency: Kafka timestamp -> committed prediction'
SELECT * FROM latency;
