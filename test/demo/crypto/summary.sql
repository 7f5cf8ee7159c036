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
\echo 'the monitors (streamml.monitors)'
SELECT name, kind, action, detector, observed, rows_since_training, last_event, last_action,
       to_char(last_action_at, 'HH24:MI:SS') AS last_action_at
  FROM streamml.monitors WHERE model = 'price_60s' ORDER BY name;
\echo 'what happened to the model: streamml.model_events (written by the monitors; trade time = newest trade delivered then)'
SELECT e.id, to_char(e.at, 'HH24:MI:SS.MS') AS at, to_char(m.data_ts, 'HH24:MI:SS') AS trade_time,
       e.monitor, e.event, e.version,
       event_what(e.event, e.details) AS what
  FROM streamml.model_events e LEFT JOIN model_events m ON m.id = e.id
 WHERE e.model = 'price_60s' ORDER BY e.id;
\echo 'the first league (the watcher, before the monitors)'
SELECT to_char(data_ts, 'HH24:MI:SS') AS trade_time, version, detail FROM first_league;
\echo 'drift in the live errors of each version, per symbol (streamml.drift_detect adwin over |error| / price, in outcome order; the error monitor sees both symbols as one sequence)'
SELECT symbol, version, outcomes, d->'detections' AS detected_at_outcome
  FROM (SELECT group_key AS symbol, version, count(*) AS outcomes,
               streamml.drift_detect('adwin', abs(prediction - actual) / actual
                                     ORDER BY labelled_at, predicted_at) AS d
          FROM streamml.outcomes WHERE model = 'price_60s' AND prediction IS NOT NULL
         GROUP BY 1, 2) x
 ORDER BY 1, 2;
\echo 'end-to-end latency: Kafka timestamp -> committed prediction'
SELECT * FROM latency;
