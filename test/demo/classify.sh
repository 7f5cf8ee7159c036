# Seed 000 (sourced by test/demo.sh): the breast-cancer set (scikit-learn's
# copy, test/data/breast_cancer.csv) produced row by row with its label a
# few messages later; a logistic regression trained on the first labelled
# rows, every later row scored on arrival, live accuracy as it converges.
dir=test/demo/classify
kafka_create_topic patients 1
say "one stream from Kafka topic 'patients', routed by type: rows into patients, labels into labels"
sql -v brokers="$KAFKA_BROKERS" -f $dir/setup.sql >/dev/null
(
	while :; do
		out=$(psql -X -Atc 'SELECT watch_classifier()' 2>&1) || true
		case "$out" in "nothing to do") break ;; waiting | *NOTICE*) ;; *) echo "  watcher: $out" ;; esac
		sleep 1
	done
) &
demo_bg_pids+=($!)
rate=${DEMO_CLASSIFY_RATE:-60}
say "producing 569 rows and their labels (each 15 messages after its row) at $rate messages/s"
python3 test/demo/produce_rows.py classify test/data/breast_cancer.csv --rate "$rate" |
	kcat -q -b "$KAFKA_BROKERS" -t patients -P -K "$(printf '\t')" -X linger.ms=5
for _ in $(seq 1 150); do
	[ "$(psql -X -Atc 'SELECT count(*) FROM labels')" -ge 569 ] && break
	sleep 0.2
done
sleep 1
for p in "${demo_bg_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
demo_bg_pids=()
say "summary"
sql -f $dir/summary.sql | tee "$DEMO_OUT/classify-summary.txt"
say "writing the report"
source $dir/report.sh
