#!/usr/bin/env bash
# Run once by the postgres image after 10-streamml.sql, when it initialises
# a new data directory: sets up seed 004's pipeline from the very SQL files
# "make demo" uses (test/demo/, mounted at /demo): the stream from Kafka
# topic "trades", the feature tables, the views the dashboards read and the
# model watcher (a pg_cron job, once a minute, which runs the first league
# and creates the scorer, the outcome tracker and the monitors that retrain
# the model from then on; their events are in streamml.model_events).
set -euo pipefail
run() { psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres "$@"; }
run -f /demo/common.sql
run -v brokers="$KAFKA_BROKERS" -f /demo/crypto/01_stream.sql
run -f /demo/crypto/02_features_scoring.sql
run -f /demo/crypto/views.sql
run -f /demo/crypto/03_model_watcher.sql
