-- What happened, printed at the end of the crypto demo.
\echo 'rows, dead letters, features'
SELECT (SELECT count(*) FROM trades) AS trades,
       (SELECT count(DISTINCT symbol) FROM trades) AS symbols,
       (SELECT count(*) FROM streamml.dead_letters) AS dead_letters,
       (SELECT count(*) FROM trade_features WHERE vol_change IS NOT NULL) AS feature_rows,
       (SELECT count(*) FROM predictions WHERE predicted IS NOT NULL) AS predictions,
       (SELECT count(*) FROM streamml.outcomes WHERE model = 'price_60s') AS outcomes;
\echo 'dead letters by reason'
SELECT reason, count(*) FROM dead_letter_reasons GROUP BY reason ORDER BY count(*) DESC;
\echo 'features of the newest trades'
SELECT symbol, ts, price, round(lag_1::numeric, 2) AS lag_1, round(lag_3::numeric, 2) AS lag_3,
       round(ma_5::numeric, 2) AS ma_5, round(ma_10::numeric, 2) AS ma_10,
       round(momentum::numeric, 6) AS momentum, round(vol_30s::numeric, 3) AS vol_30s,
       round(vol_change::numeric, 3) AS vol_change
  FROM (SELECT DISTINCT ON (symbol) * FROM trade_features ORDER BY symbol, ts DESC, trade_id DESC) f
 ORDER BY symbol;
\echo 'the last league per symbol (streamml.leaderboard; holdout = latest 20% by ts, lowest RMSE wins, deployed only if it beats the version served)'
SELECT group_key AS symbol, rank, candidate, kind, version, round(score::numeric, 3) AS holdout_rmse,
       deployed, deployed_version AS served, coalesce(left(error, 60), '') AS error
  FROM streamml.leaderboard WHERE model = 'price_60s' ORDER BY group_key, rank NULLS LAST;
\echo 'the versions that served (scored trades), with their holdout metrics; the champion is the deployed one'
SELECT * FROM leaderboard
 WHERE version IN (SELECT DISTINCT version FROM streamml.outcomes WHERE model = 'price_60s') OR champion;
\echo 'live RMSE by version (streamml.live_metrics: outcomes 60 s later) beside the naive forecast "price stays"'
SELECT * FROM live_rmse;
\echo 'drift in the live errors of each version (streamml.drift_detect adwin over |error| / price, in outcome order)'
SELECT symbol, version, outcomes, d->'detections' AS detected_at_outcome
  FROM (SELECT group_key AS symbol, version, count(*) AS outcomes,
               streamml.drift_detect('adwin', abs(prediction - actual) / actual
                                     ORDER BY labelled_at, predicted_at) AS d
          FROM streamml.outcomes WHERE model = 'price_60s' AND prediction IS NOT NULL
         GROUP BY 1, 2) x
 ORDER BY 1, 2;
\echo 'model events'
SELECT id, to_char(data_ts, 'HH24:MI:SS') AS data_time, kind, version, detail
  FROM model_events ORDER BY id;
\echo 'end-to-end latency: Kafka timestamp -> committed prediction'
SELECT * FROM latency;
