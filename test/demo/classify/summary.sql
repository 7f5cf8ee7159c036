\echo 'rows, labels, scores, dead letters'
SELECT (SELECT count(*) FROM patients) AS patients, (SELECT count(*) FROM labels) AS labels,
       (SELECT count(*) FROM scores) AS scored_on_arrival, (SELECT count(*) FROM streamml.dead_letters) AS dead_letters;
\echo 'model versions (holdout: the latest 20% of labels)'
SELECT version, rows_used, round((metrics->>'accuracy')::numeric, 4) AS holdout_accuracy,
       round((metrics->>'roc_auc')::numeric, 4) AS holdout_roc_auc,
       version = (SELECT deployed_version FROM streamml.models WHERE name = 'malignant') AS deployed
  FROM streamml.model_versions WHERE model = 'malignant' ORDER BY version;
\echo 'the first training (the watcher, before the monitors)'
SELECT at_label, version, detail FROM first_training;
\echo 'what happened to the model: streamml.model_events (written by the monitors; at_label = newest label committed then)'
SELECT e.id, m.at_label, e.monitor, e.event, e.version,
       event_what(e.event, e.details) AS what
  FROM streamml.model_events e LEFT JOIN model_events m ON m.id = e.id
 WHERE e.model = 'malignant' ORDER BY e.id;
\echo 'live accuracy on the rows scored on arrival (labels arrived after them)'
SELECT count(*) AS scored_and_labelled, round(avg(correct::int), 4) AS live_accuracy,
       round((SELECT last_50 FROM live_accuracy ORDER BY arrival DESC LIMIT 1), 4) AS last_50_accuracy,
       round((streamml.classification_metrics(malignant, p_malignant)->>'roc_auc')::numeric, 4) AS live_roc_auc
  FROM live_accuracy;
\echo 'streamml.live_metrics (the sums kept by the tracker), all buckets together, by version'
SELECT version, sum(labelled) AS labelled,
       round((sum(accuracy * labelled) / nullif(sum(labelled), 0))::numeric, 4) AS live_accuracy,
       round((sum(log_loss * labelled) / nullif(sum(labelled), 0))::numeric, 4) AS live_log_loss
  FROM streamml.live_metrics WHERE model = 'malignant' AND group_key IS NULL AND labelled > 0
 GROUP BY version ORDER BY version;
\echo 'end-to-end latency: Kafka timestamp -> committed prediction'
SELECT count(*) AS predictions,
       round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY s))::int AS p50_ms,
       round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY s))::int AS p99_ms
  FROM (SELECT extract(epoch FROM committed_at - kafka_ts) AS s FROM scores) l;
