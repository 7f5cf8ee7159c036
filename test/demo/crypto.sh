# Seed 004 (sourced by test/demo.sh): a real-time crypto pipeline on real
# Binance trades.  The steps are SQL files in test/demo/crypto/, one per
# stage, so that each can be read (and later replaced) on its own.
speed=${DEMO_SPEED:-120}
limit=${DEMO_LIMIT:-0}
synthetic=${DEMO_SYNTHETIC:-1}
dir=test/demo/crypto

kafka_create_topic trades 4

say "bronze: a stream from Kafka topic 'trades' (Binance trade events) into trades; CHECKs are the quality gate"
sql -v brokers="$KAFKA_BROKERS" -f $dir/01_stream.sql >/dev/null
sql -c '\d trades'

say "silver: feature tables keep seed 004's features per symbol in the loading transaction"
sql -f $dir/02_features_scoring.sql >/dev/null
sql -c '\d trade_features'
say "gold: a league per symbol for the price 60 s ahead; a scorer and an outcome tracker once it is deployed"
sql -f $dir/views.sql >/dev/null
sql -f $dir/03_model_watcher.sql >/dev/null
# The watcher (watch_price_model in 03_model_watcher.sql) trains the first
# league and creates the scorer, the tracker and two monitors of price_60s:
# from then on the monitors retrain (every 3,000 new rows, or on drift of
# the outcomes' errors) and streamml.model_events says what they did.

# One sample a second of what has been loaded and the consumer lag.
(
	while :; do
		psql -X -q -c "INSERT INTO ingest_samples (rows, dead, lag)
			SELECT (SELECT count(*) FROM trades), (SELECT count(*) FROM streamml.dead_letters),
			       (SELECT sum(lag) FROM streamml.stream_stats WHERE stream = 'trades')" \
			>/dev/null 2>&1 || true
		# fresh statistics for the trigger's plans as the tables grow from empty
		[ $((SECONDS % 5)) -eq 0 ] && psql -X -q -c 'ANALYZE trades, trade_features_base, trade_features, price_predictions' >/dev/null 2>&1
		sleep 1
	done
) &
demo_bg_pids+=($!)
# The watcher until the first training (pg_cron runs it once a minute);
# the monitor worker takes over then.  The replay holds after its first 400
# trades until the first league is deployed (first_model: made here), so
# that the report does not depend on how fast this machine trains it.
first_model=$(mktemp -u /tmp/streamml-demo-first-model.XXXXXX)
(
	while :; do
		out=$(PGOPTIONS='-c client_min_messages=warning' psql -X -Atc 'SELECT watch_price_model()' 2>&1) || true
		case "$out" in
		"nothing to do") touch "$first_model"; break ;;
		waiting*) sleep 0.3 ;;
		*) echo "  watcher: $out"; sleep 0.3 ;;
		esac
	done
) &
demo_bg_pids+=($!)
say "replaying the real BTCUSDT trades at ${speed}x (plus $synthetic synthetic symbol(s) with a regime change half-way, and bad messages on purpose)"
replay_log=$(mktemp)
python3 test/demo/replay_trades.py --file test/data/binance-btcusdt-trades.csv \
	--speed "$speed" --limit "$limit" --synthetic "$synthetic" \
	--hold-after 400 --hold-file "$first_model" 2>"$replay_log" |
	kcat -q -b "$KAFKA_BROKERS" -t trades -P -K "$(printf '\t')" -X linger.ms=5 -X partitioner=murmur2_random
cat "$replay_log"
sent=$(sed -n 's/^replayed \([0-9]*\) messages.*/\1/p' "$replay_log")
rm -f "$replay_log" "$first_model"

say "waiting until all $sent messages are in trades or in streamml.dead_letters"
for _ in $(seq 1 300); do
	n=$(psql -X -Atc "SELECT (SELECT count(*) FROM trades) + (SELECT count(*) FROM streamml.dead_letters)")
	[ "$n" -ge "$sent" ] && break
	sleep 0.2
done
for p in "${demo_bg_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
demo_bg_pids=()
psql -X -q -c 'ANALYZE' >/dev/null

sql -c "SELECT stream, partition, next_offset, lag, rows_ingested, rows_rejected, error_count, left(last_error, 300) AS last_error FROM streamml.stream_stats ORDER BY partition"
[ -n "${DEMO_DEBUG:-}" ] && grep -E 'ERROR|WARNING' "$PG_ENV_DIR/server.log" | sort | uniq -c | sort -rn | head -20 || true

say "summary"
sql -f $dir/summary.sql | tee "$DEMO_OUT/crypto-summary.txt"

say "writing the report"
source $dir/report.sh
