-- Views for the summary, the report and the dashboards.
CREATE VIEW leaderboard AS
SELECT v.model, v.version, v.group_key AS symbol, v.rows_used,
       round((v.metrics->>'rmse')::numeric, 3) AS holdout_rmse,
       round((v.metrics->>'mae')::numeric, 3) AS holdout_mae,
       round((v.metrics->>'r2')::numeric, 4) AS holdout_r2,
       v.version = m.deployed_version AS champion,
       v.data_cutoff AS holdout_from
  FROM streamml.model_versions v JOIN streamml.models m ON m.name = v.model
 ORDER BY v.group_key, v.version;

CREATE VIEW live_rmse AS
SELECT p.symbol, p.version, count(*) AS outcomes,
       round(sqrt(avg((p.predicted - o.actual) ^ 2))::numeric, 3) AS live_rmse,
       round(sqrt(avg((p.price - o.actual) ^ 2))::numeric, 3) AS naive_rmse
  FROM predictions p JOIN outcomes o USING (symbol, trade_id)
 WHERE p.predicted IS NOT NULL
 GROUP BY p.symbol, p.version ORDER BY p.symbol, p.version;

CREATE VIEW latency AS
SELECT count(*) AS predictions,
       round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY s))::int AS p50_ms,
       round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY s))::int AS p99_ms,
       round(1000 * max(s))::int AS max_ms
  FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - kafka_ts) AS s
          FROM predictions WHERE predicted IS NOT NULL) l;

-- Ingest samples, one a second during the replay.
CREATE TABLE ingest_samples (
	at    timestamptz PRIMARY KEY DEFAULT clock_timestamp(),
	rows  bigint NOT NULL,
	dead  bigint NOT NULL,
	lag   bigint
);
