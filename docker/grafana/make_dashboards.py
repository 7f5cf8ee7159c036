#!/usr/bin/env python3
"""Writes the seed 004 dashboards (pipeline, model quality, drift) into
docker/grafana/dashboards/ from the panel list below, so that their SQL is
in one readable place.  Run it after editing: python3 docker/grafana/make_dashboards.py
The panels read the tables and views of the crypto demo (test/demo/crypto/)
and pg_streamml's catalog; test/demo/check_dashboards.sh runs every panel's
SQL against the demo's database."""
import json
import os

DS = {"type": "postgres", "uid": "pg_streamml"}
TRADE_TIME = {"from": "2020-02-22T00:00:00.000Z", "to": "2020-02-22T02:06:00.000Z"}


def panel(pid, title, kind, sql, x, y, w=12, h=8, fmt=None):
    return {
        "id": pid, "title": title, "type": kind, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [{"refId": "A", "datasource": DS, "rawQuery": True, "editorMode": "code",
                     "format": fmt or ("time_series" if kind == "timeseries" else "table"),
                     "rawSql": " ".join(sql.split())}],
    }


def dashboard(uid, title, panels, time):
    return {"uid": uid, "title": title, "schemaVersion": 39, "version": 1, "refresh": "5s",
            "time": time, "tags": ["pg_streamml", "seed 004"], "panels": panels}


pipeline = dashboard("streamml-pipeline", "Seed 004: pipeline", [
    panel(1, "Trades loaded per 5 s (by Kafka time)", "timeseries",
          """SELECT date_bin('5 seconds', kafka_ts, 'epoch') AS time, symbol AS metric, count(*) AS value
             FROM trades GROUP BY 1, 2 ORDER BY 1""", 0, 0),
    panel(2, "Consumer lag and ingest rate by partition", "table",
          """SELECT partition, next_offset, high_watermark, lag, rows_ingested, rows_rejected,
                    rows_per_second, last_batch_at FROM streamml.stream_stats
             WHERE stream = 'trades' ORDER BY partition""", 12, 0),
    panel(3, "Dead letters by reason", "barchart",
          "SELECT reason, count(*) AS messages FROM dead_letter_reasons GROUP BY reason ORDER BY 2 DESC",
          0, 8),
    panel(4, "End-to-end latency (ms): Kafka timestamp to committed prediction", "stat",
          "SELECT p50_ms, p99_ms, max_ms FROM latency", 12, 8, h=4),
    panel(5, "Rows", "stat",
          """SELECT (SELECT count(*) FROM trades) AS trades, (SELECT count(*) FROM trade_features) AS features,
                    (SELECT count(*) FROM predictions WHERE predicted IS NOT NULL) AS predictions,
                    (SELECT count(*) FROM outcomes) AS outcomes,
                    (SELECT count(*) FROM streamml.dead_letters) AS dead_letters""", 12, 12, h=4),
    panel(6, "Latest dead letters", "table",
          "SELECT failed_at, reason, payload FROM dead_letter_reasons ORDER BY id DESC LIMIT 20",
          0, 16, w=24),
], {"from": "now-1h", "to": "now"})

quality = dashboard("streamml-model-quality", "Seed 004: model quality", [
    panel(1, "BTCUSDT: price and the price predicted 60 s earlier", "timeseries",
          """SELECT ts AS time, price, NULL::float8 AS predicted FROM predictions WHERE symbol = 'BTCUSDT'
             UNION ALL
             SELECT ts + interval '60 seconds', NULL, predicted FROM predictions
              WHERE symbol = 'BTCUSDT' AND predicted IS NOT NULL ORDER BY 1""", 0, 0, w=24),
    panel(2, "Live RMSE per minute by symbol and version", "timeseries",
          """SELECT date_bin('1 minute', p.ts, 'epoch') AS time, p.symbol || ' v' || p.version AS metric,
                    sqrt(avg((p.predicted - o.actual) ^ 2)) AS value
               FROM predictions p JOIN outcomes o USING (symbol, trade_id)
              WHERE p.version IS NOT NULL GROUP BY 1, 2 ORDER BY 1""", 0, 8),
    panel(3, "Live RMSE by version beside the naive forecast", "table", "SELECT * FROM live_rmse", 12, 8),
    panel(4, "Models: versions, holdout metrics, champion", "table", "SELECT * FROM leaderboard", 0, 16),
    panel(5, "Model events", "table",
          "SELECT id, data_ts, kind, version, detail FROM model_events ORDER BY id DESC", 12, 16),
    panel(6, "Live RMSE per 5 s of prediction time (streamml.live_metrics, kept by the outcome tracker)",
          "timeseries",
          """SELECT bucket AS time, group_key || ' v' || version AS metric, rmse AS value
               FROM streamml.live_metrics
              WHERE model = 'price_60s' AND group_key IS NOT NULL AND rmse IS NOT NULL
              ORDER BY 1""", 0, 24, w=24),
], TRADE_TIME)

drift = dashboard("streamml-drift", "Seed 004: drift", [
    panel(1, "30 s volatility (stddev_pop) by symbol", "timeseries",
          """SELECT date_bin('10 seconds', ts, 'epoch') AS time, symbol AS metric, avg(vol_30s) AS value
               FROM trade_features WHERE vol_30s IS NOT NULL GROUP BY 1, 2 ORDER BY 1""", 0, 0),
    panel(2, "Live RMSE over holdout RMSE of the version served", "timeseries",
          """SELECT date_bin('1 minute', p.ts, 'epoch') AS time, p.symbol AS metric,
                    sqrt(avg((p.predicted - o.actual) ^ 2)) / avg((v.metrics->>'rmse')::float8) AS value
               FROM predictions p JOIN outcomes o USING (symbol, trade_id)
               JOIN streamml.model_versions v ON v.model = 'price_60s' AND v.version = p.version
                                             AND v.group_key = p.symbol
              GROUP BY 1, 2 ORDER BY 1""", 12, 0),
    panel(3, "Drift and retraining events", "table",
          """SELECT data_ts, kind, version, detail FROM model_events
              WHERE kind IN ('drift', 'retrain', 'deploy', 'kept', 'train') ORDER BY id DESC""", 0, 8, w=24),
    panel(4, "Drift in each version's live errors: streamml.drift_detect (ADWIN) over |error| / price, in outcome order",
          "table",
          """SELECT group_key AS symbol, version, count(*) AS outcomes,
                    streamml.drift_detect('adwin', abs(prediction - actual) / actual
                                          ORDER BY labelled_at, predicted_at)->'detections' AS detected_at_outcome
               FROM streamml.outcomes WHERE model = 'price_60s' AND prediction IS NOT NULL
              GROUP BY 1, 2 ORDER BY 1, 2""", 0, 16, w=24),
], TRADE_TIME)

here = os.path.dirname(os.path.abspath(__file__))
for name, d in (("pipeline", pipeline), ("model-quality", quality), ("drift", drift)):
    with open(os.path.join(here, "dashboards", "seed004-%s.json" % name), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
