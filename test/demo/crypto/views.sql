-- The scorer's predictions table, made ahead of the scorer (which the
-- watcher creates with the first model) so that the views below exist from
-- the start; create_scorer checks its shape and uses it.
CREATE TABLE price_predictions (
	symbol      text NOT NULL,
	trade_id    bigint NOT NULL,
	model       text NOT NULL,
	version     integer NOT NULL,
	prediction  float8,
	probability float8,
	class       text,
	role        text NOT NULL DEFAULT 'champion',
	scored_at   timestamptz NOT NULL,
	PRIMARY KEY (symbol, trade_id, model)
);

-- Views for the summary, the report and the dashboards.
-- Every trade with its features and its prediction, if it was scored;
-- committed_at is when the prediction was committed (track_commit_timestamp),
-- in the same transaction as the trade.
CREATE VIEW predictions AS
SELECT f.trade_id, f.symbol, f.ts, f.price, f.kafka_ts, p.prediction AS predicted, p.version,
       f.vol_30s, pg_xact_commit_timestamp(p.xmin) AS committed_at
  FROM trade_features f
  LEFT JOIN price_predictions p ON p.symbol = f.symbol AND p.trade_id = f.trade_id
                               AND p.model = 'price_60s';

-- The outcome of each scored trade: the symbol's price 60 s later, joined
-- by the outcome tracker (streamml.outcomes) in the transaction that
-- brought it.
CREATE VIEW outcomes AS
SELECT f.trade_id, f.symbol, f.ts, o.actual, o.labelled_at AS known_at, o.version, o.loss
  FROM streamml.outcomes o
  JOIN trade_features f ON f.symbol = o.key->>'symbol' AND f.trade_id = (o.key->>'trade_id')::bigint
 WHERE o.model = 'price_60s';

CREATE VIEW leaderboard AS
SELECT v.model, v.version, v.group_key AS symbol, v.kind, v.rows_used,
       round((v.metrics->>'rmse')::numeric, 3) AS holdout_rmse,
       round((v.metrics->>'mae')::numeric, 3) AS holdout_mae,
       round((v.metrics->>'r2')::numeric, 4) AS holdout_r2,
       v.version = m.deployed_version AS champion
  FROM streamml.model_versions v JOIN streamml.models m ON m.name = v.model
 ORDER BY v.group_key, v.version;

-- Live RMSE by symbol and version, from streamml.live_metrics (sums kept
-- per bucket by the outcome tracker), beside the naive forecast "the price
-- stays" on the same outcomes.
CREATE VIEW live_rmse AS
WITH naive AS (
	SELECT o.group_key AS symbol, o.version, sqrt(avg((f.price - o.actual) ^ 2)) AS rmse
	  FROM streamml.outcomes o
	  JOIN trade_features f ON f.symbol = o.key->>'symbol' AND f.trade_id = (o.key->>'trade_id')::bigint
	 WHERE o.model = 'price_60s' AND o.prediction IS NOT NULL
	 GROUP BY 1, 2)
SELECT l.group_key AS symbol, l.version, sum(l.labelled) AS outcomes,
       round(sqrt(sum(l.rmse ^ 2 * l.labelled) / nullif(sum(l.labelled), 0))::numeric, 3) AS live_rmse,
       round(n.rmse::numeric, 3) AS naive_rmse
  FROM streamml.live_metrics l
  LEFT JOIN naive n ON n.symbol = l.group_key AND n.version = l.version
 WHERE l.model = 'price_60s' AND l.group_key IS NOT NULL AND l.rmse IS NOT NULL
 GROUP BY l.group_key, l.version, n.rmse ORDER BY 1, 2;

CREATE VIEW latency AS
SELECT count(*) AS predictions,
       round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY s))::int AS p50_ms,
       round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY s))::int AS p99_ms,
       round(1000 * max(s))::int AS max_ms
  FROM (SELECT extract(epoch FROM committed_at - kafka_ts) AS s
          FROM predictions WHERE predicted IS NOT NULL) l;

-- Ingest samples, one a second during the replay.
CREATE TABLE ingest_samples (
	at    timestamptz PRIMARY KEY DEFAULT clock_timestamp(),
	rows  bigint NOT NULL,
	dead  bigint NOT NULL,
	lag   bigint
);
