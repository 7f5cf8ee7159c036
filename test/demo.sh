#!/usr/bin/env bash
# The pg_streamml demo ("make demo"): simulated trades go through Kafka (the
# dev broker, or the real Kafka in KAFKA_BROKERS) into a table, exactly once,
# with the bad ones kept in streamml.dead_letters; windowed features are
# computed per symbol; a logistic model is trained on the streamed rows,
# evaluated on a time-ordered holdout and served with predict_proba(); its
# predictions are published back to Kafka; pg_cron re-trains it on a
# schedule.  Everything runs on a throw-away server; the script says what it
# does at each step.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

TRADES=${DEMO_TRADES:-20000}

say() { printf '\n== %s\n' "$*"; }
sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

bash test/install-deps.sh
say "building pg_streamml and installing it into tmp_install/"
make -s -j"$(nproc)" >/dev/null
make -s tmp-install >/dev/null

source test/pg-env.sh
source test/kafka-env.sh
trap 'pg_env_stop; kafka_env_stop' EXIT
pg_env_start
say "throw-away PostgreSQL server up (socket $PGHOST, port $PGPORT)"
echo "Kafka bootstrap: $KAFKA_BROKERS"
kafka_create_topic trades 4
kafka_create_topic predictions 1

say "CREATE EXTENSION pg_streamml, a trades table whose CHECKs are the quality gate"
sql <<'EOF'
CREATE EXTENSION pg_streamml;
SELECT streamml.version() AS pg_streamml_version;
CREATE TABLE trades (
	id       bigint PRIMARY KEY,
	symbol   text NOT NULL,
	ts       timestamptz NOT NULL,
	price    float8 NOT NULL CHECK (price > 0),
	qty      float8 NOT NULL CHECK (qty > 0),
	label    int,
	features float8[]
);
EOF

say "create_stream: Kafka topic 'trades' -> table trades (json, 2 workers)"
sql -v brokers="$KAFKA_BROKERS" <<'EOF'
SELECT streamml.create_stream('trades', 'trades', :'brokers', 'trades', 'json',
	'{"workers": 2, "flush_ms": 50}');
EOF

say "producing $TRADES simulated trades (4 symbols) and 3 bad messages with kcat"
# A random walk per symbol; the label says whether a hidden logistic model of
# the ten features fires, so the trained model has something to find.  The
# symbol is the message key, so each symbol's trades stay in order.
awk -v n="$TRADES" -v t0="$(date +%s)" 'BEGIN {
	srand(42);
	split("AAPL MSFT NVDA TSLA", sym, " ");
	for (s = 1; s <= 4; s++) px[s] = 100 + 50 * s;
	for (i = 1; i <= n; i++) {
		s = 1 + (i % 4);
		px[s] *= exp(0.001 * (rand() + rand() + rand() - 1.5));
		z = 0; f = "";
		for (k = 1; k <= 10; k++) {
			v[k] = rand() + rand() + rand() - 1.5;
			f = f (k > 1 ? "," : "") sprintf("%.6f", v[k]);
		}
		z = 1.5 * v[1] - 1.0 * v[2] + 0.5 * v[3];
		label = (rand() < 1 / (1 + exp(-z))) ? 1 : 0;
		printf "%s\t{\"id\": %d, \"symbol\": \"%s\", \"ts\": %.3f, \"price\": %.4f, \"qty\": %d, \"label\": %d, \"features\": [%s]}\n",
			sym[s], i, sym[s], t0 - n * 0.05 + i * 0.05, px[s], 1 + int(rand() * 100), label, f;
	}
	print "AAPL\t{\"id\": " n + 1 ", \"symbol\": \"AAPL\", \"ts\": " t0 ", \"price\": -5, \"qty\": 1}";
	print "MSFT\t{\"id\": " n + 2 ", \"symbol\": \"MSFT\", \"ts\": " t0 ", \"price\": \"cheap\", \"qty\": 1}";
	print "TSLA\t{\"id\": " n + 3 ", \"symbol\": "
}' | kcat -q -b "$KAFKA_BROKERS" -t trades -P -K "$(printf '\t')"

say "waiting until every message is in trades or in streamml.dead_letters"
for _ in $(seq 1 600); do
	done_count=$(psql -X -Atc "SELECT (SELECT count(*) FROM trades) + (SELECT count(*) FROM streamml.dead_letters)")
	[ "$done_count" -ge $((TRADES + 3)) ] && break
	sleep 0.1
done
sql <<'EOF'
SELECT count(*) AS rows_in_trades FROM trades;
SELECT "partition", "offset", convert_from(payload, 'UTF8') AS payload, error
  FROM streamml.dead_letters ORDER BY "partition", "offset";
SELECT stream, "partition", next_offset, lag, rows_ingested, rows_rejected
  FROM streamml.stream_stats ORDER BY "partition";
EOF

say "windowed features per symbol: returns, moving average, 30 s volatility, momentum, EWMA"
sql <<'EOF'
CREATE VIEW trade_features AS
SELECT id, symbol, ts, price,
       price / lag(price) OVER w - 1                                AS ret,
       streamml.rolling_mean(price) OVER (w ROWS 19 PRECEDING)      AS ma_20,
       streamml.rolling_stddev(price) OVER (w RANGE '30 seconds' PRECEDING) AS vol_30s,
       price - lag(price, 10) OVER w                                AS momentum_10,
       streamml.ewma(price, 0.1) OVER (w ROWS UNBOUNDED PRECEDING)  AS ewma_01
  FROM trades
WINDOW w AS (PARTITION BY symbol ORDER BY ts);
SELECT * FROM trade_features ORDER BY id DESC LIMIT 8;
EOF

say "train_logreg on the streamed rows: the latest 20% by ts held out"
sql <<'EOF'
SELECT model, version, rows_used, rows_skipped, iterations, converged,
       round((metrics->>'roc_auc')::numeric, 4) AS holdout_roc_auc,
       round((metrics->>'accuracy')::numeric, 4) AS holdout_accuracy,
       round((metrics->>'log_loss')::numeric, 4) AS holdout_log_loss
  FROM streamml.train_logreg('trade_signal', 'trades', 'label', ARRAY['features'],
       '{"l2": 0.001, "test_fraction": 0.2, "order_by": "ts"}');
SELECT feature, round(coefficient::numeric, 4) AS coefficient,
       round(std_error::numeric, 4) AS std_error, round(p_value::numeric, 6) AS p_value,
       round(odds_ratio::numeric, 4) AS odds_ratio
  FROM streamml.coefficients WHERE model = 'trade_signal' ORDER BY feature <> '(intercept)', length(feature), feature;
EOF

say "one model per symbol (group_by)"
sql <<'EOF'
SELECT model, group_key, rows_used, converged
  FROM streamml.train_logreg('trade_signal_by_symbol', 'trades', 'label', ARRAY['features'],
       '{"l2": 0.001, "group_by": "symbol"}') ORDER BY group_key;
EOF

say "predict_proba() on the newest trades, and the per-symbol models beside it"
sql <<'EOF'
SELECT id, symbol, label,
       round(streamml.predict_proba('trade_signal', features)::numeric, 4) AS p_up,
       round(streamml.predict_proba('trade_signal_by_symbol', symbol, features)::numeric, 4) AS p_up_symbol
  FROM trades ORDER BY id DESC LIMIT 8;
SELECT round((m->>'roc_auc')::numeric, 4) AS roc_auc, round((m->>'pr_auc')::numeric, 4) AS pr_auc,
       round((m->>'accuracy')::numeric, 4) AS accuracy, round((m->>'f1')::numeric, 4) AS f1,
       m->'confusion_matrix' AS confusion_matrix
  FROM (SELECT streamml.classification_metrics(label = 1,
               streamml.predict_proba('trade_signal', features)) AS m
          FROM trades) all_rows;
EOF

say "evaluate() the deployed model on the newest 2,000 trades; re-train every 5 minutes with pg_cron"
sql <<'EOF'
SELECT jsonb_pretty(streamml.evaluate('trade_signal',
		'SELECT * FROM trades ORDER BY id DESC LIMIT 2000', 'label', ARRAY['features'])
		- 'confusion_matrix') AS evaluation;
CREATE EXTENSION pg_cron;
SELECT streamml.schedule_training('trade_signal', '*/5 * * * *', '{"min_new_rows": 1000}') AS cron_job;
SELECT jobname, schedule, command FROM cron.job;
EOF

say "publishing the newest predictions to Kafka topic 'predictions' with streamml.produce()"
sql -v brokers="$KAFKA_BROKERS" <<'EOF'
SELECT count(streamml.produce(:'brokers', 'predictions',
		json_build_object('id', id, 'symbol', symbol,
			'p_up', round(streamml.predict_proba('trade_signal', features)::numeric, 4))::text,
		symbol)) AS published
  FROM (SELECT * FROM trades ORDER BY id DESC LIMIT 5) newest;
EOF
echo "read back with kcat:"
kcat -q -b "$KAFKA_BROKERS" -t predictions -C -o beginning -c 5 -e -f '  key %k: %s\n'

say "demo complete: Kafka -> table (exactly once, bad messages kept) -> features -> model -> predictions -> Kafka"
