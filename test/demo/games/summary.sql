\echo 'rows, dead letters'
SELECT (SELECT count(*) FROM games) AS games, (SELECT count(*) FROM streamml.dead_letters) AS dead_letters,
       (SELECT count(*) FROM game_predictions) AS scored_on_arrival;
\echo 'dead letters by reason'
SELECT reason, count(*) FROM dead_letter_reasons GROUP BY reason ORDER BY 2 DESC;
\echo 'the league (holdout: the latest 20% of the training games by arrival; lowest RMSE wins)'
SELECT rank, candidate, kind, version, round(score::numeric, 4) AS holdout_rmse,
       round((metrics->>'r2')::numeric, 4) AS holdout_r2, deployed
  FROM streamml.leaderboard WHERE model = 'global_sales' ORDER BY rank NULLS LAST;
\echo 'champion (the deployed version)'
SELECT v.version, v.kind, v.rows_used, array_length(v.features, 1) AS features,
       round((v.metrics->>'rmse')::numeric, 4) AS holdout_rmse, round((v.metrics->>'mae')::numeric, 4) AS holdout_mae,
       round((v.metrics->>'r2')::numeric, 4) AS holdout_r2
  FROM streamml.model_versions v JOIN streamml.models m ON m.name = v.model AND m.deployed_version = v.version
 WHERE v.model = 'global_sales';
\echo 'what happened to the model: streamml.model_events (written by the monitors)'
SELECT id, to_char(at, 'HH24:MI:SS.MS') AS at, monitor, event, version,
       event_what(event, details) AS what
  FROM streamml.model_events WHERE model = 'global_sales' ORDER BY id;
\echo 'categorical features of the deployed version (model_versions.encoding: levels one-hot encoded, the rest as "(other)")'
SELECT e.key AS column, jsonb_array_length(e.value->'levels') AS levels, (e.value->>'other')::boolean AS other_level
  FROM streamml.model_versions v JOIN streamml.models m ON m.name = v.model AND m.deployed_version = v.version,
       jsonb_each(v.encoding) e
 WHERE v.model = 'global_sales' ORDER BY 1;
\echo 'live: games scored on arrival, predicted against actual Global_Sales (millions)'
SELECT * FROM live_metrics;
\echo 'a few games scored on arrival'
SELECT rank, name, platform, year, genre, publisher, actual, round(predicted::numeric, 3) AS predicted
  FROM game_predictions ORDER BY arrival LIMIT 8;
\echo 'end-to-end latency: Kafka timestamp -> committed prediction'
SELECT count(*) AS predictions,
       round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY s))::int AS p50_ms,
       round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY s))::int AS p99_ms
  FROM (SELECT extract(epoch FROM committed_at - kafka_ts) AS s FROM game_predictions) l;
