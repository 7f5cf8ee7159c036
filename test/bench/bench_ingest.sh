#!/usr/bin/env bash
# Kafka ingestion beside COPY, measured in the same run on a throw-away
# server and the dev broker ("make bench BENCH=ingest").
#
# (a) Throughput.  N messages (1M by default) shaped
#     {"id", "symbol", "ts" (epoch seconds, float), "price", "qty",
#      "label" (0|1), "features" (10 floats)}
#     go to a topic with enough partitions that the dev broker's 5 MiB per
#     partition retention drops nothing (~4 MiB each), produced *before* the
#     stream starts, so the producer cannot be the bottleneck (its own time
#     is printed).  The stream's rate is taken from its own timeline: the
#     commit timestamps of its batches (track_commit_timestamp), rows after
#     the first batch divided by first-to-last commit.  The anchors run on
#     the same server into the same kind of table: COPY FROM the same rows as
#     CSV, and COPY of the JSON into a staging table + INSERT ... SELECT
#     jsonb_populate_record (both steps timed).
# (b) Latency at 5,000 messages/s: a paced producer writes the send time
#     into "ts"; latency = commit timestamp of the row's transaction - ts.
# (c) Flat as the table grows: one stream of BENCH_LARGE rows (10M by
#     default, ~2.5 GB of broker memory; 0 skips it), the rate of its first
#     N rows beside the rate of its last N (the table then holds 9M+).
# (d) Only with BENCH_PARTITIONED=1, right after (a): its rows into a range-
#     partitioned table (on "ts", 4 partitions), by a stream and by COPY FROM
#     into the same kind of partitioned table, in the same run.
#
# Goals: stream >= 0.8x COPY (aim 1.0x), >= 3x the jsonb staging path,
# p99 < 100 ms, flat.  The whole run takes about 6-8 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${BENCH_ROWS:-1000000}
LARGE=${BENCH_LARGE:-10000000}
WORKERS=${BENCH_WORKERS:-1}

source test/pg-env.sh
source test/kafka-env.sh || exit 1
source test/bench/lib_stream.sh
work=$(mktemp -d /tmp/streamml-bench.XXXXXX)
chmod 755 "$work"
cleanup() { pg_env_stop; kafka_env_stop; rm -rf "$work"; }
trap cleanup EXIT
# No checkpoint during the runs (10M rows write ~3 GB of WAL): its full-page
# writes would be measured in the middle of (c), not the stream.
pg_env_start "track_commit_timestamp = on
jit = off
max_wal_size = '20GB'
checkpoint_timeout = '30min'"

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# gen N FIRST_ID: the same rows as JSON lines, each after its key (the id)
# and a tab ($work/rows.json), and as CSV ($work/rows.csv), deterministic.
gen()
{
	perl -e '
		my ($n, $first, $dir) = @ARGV;
		open(my $j, ">", "$dir/rows.json") or die;
		open(my $c, ">", "$dir/rows.csv") or die;
		my $s = 12345;
		sub r { $s = ($s * 1103515245 + 12345) % 2147483648; $s / 2147483648 }
		for my $i ($first .. $first + $n - 1) {
			my @f = map { sprintf("%.6f", r() * 2 - 1) } 1 .. 10;
			my ($sym, $ts, $price, $qty, $label) = ("S" . ($i % 50),
				sprintf("%.3f", 1700000000 + $i * 0.001),
				sprintf("%.2f", 100 + r() * 50), sprintf("%.1f", 1 + int(r() * 100)),
				r() < 0.5 ? 0 : 1);
			print $j qq($i\t{"id": $i, "symbol": "$sym", "ts": $ts, "price": $price, )
				. qq("qty": $qty, "label": $label, "features": [) . join(", ", @f) . "]}\n";
			print $c "$i,$sym,$ts,$price,$qty,$label,\"{" . join(",", @f) . "}\"\n";
		}' "$1" "$2" "$work"
	chmod 644 "$work"/rows.*
}

# produce TOPIC FILE: every line a message, keyed by id (a key hashes each
# message to a partition, so partitions fill evenly: without keys librdkafka's
# sticky partitioner fills a few partitions past the broker's retention).
#
# In large record batches (up to 10,000 messages or 1 MB, linger 1 s): the
# dev broker (librdkafka 2.0.2's mock cluster) answers a Fetch with ONE
# record batch per partition ("FIXME: Multiple messageSets?" in its
# handler), where Kafka answers with up to max.partition.fetch.bytes (1 MB)
# of batches.  Large batches make the mock serve what Kafka would.
# BENCH_LINGER_MS=20 produces small batches instead (~100 messages).
produce()
{
	kcat -P -b "$KAFKA_BROKERS" -t "$1" -K $'\t' -X linger.ms="${BENCH_LINGER_MS:-1000}" \
		-X batch.num.messages=10000 -X batch.size=1000000 \
		-X queue.buffering.max.messages=2000000 -l "$2"
}

q <<'SQL'
CREATE EXTENSION pg_streamml;
CREATE FUNCTION bench_time(query text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	EXECUTE query;
	RETURN extract(epoch FROM clock_timestamp() - t0);
END
$$;
CREATE TABLE shape (id int, symbol text, ts float8, price float8, qty float8,
	label int, features float8[]);
SQL
stream_rate_create
# (d) makes its partitioned table beforehand; the others are made by stream_run.
STREAM_RUN_LIKE=shape STREAM_RUN_TIMEOUT=600

# partitions for N messages of ~200 bytes at <= ~4 MiB each
parts_for() { echo $(( ($1 + 15999) / 16000 )); }

echo "(a) $N JSON messages into a logged table (ts float8, features float8[]), $WORKERS worker(s)"
gen "$N" 1
printf '    messages: %s MB of JSON, %s MB as CSV\n' \
	"$(( $(stat -c %s "$work/rows.json") / 1000000 ))" "$(( $(stat -c %s "$work/rows.csv") / 1000000 ))"
p=$(parts_for "$N")
kafka_create_topic t1 "$p"
t0=$(date +%s.%N)
produce t1 "$work/rows.json"
t1=$(date +%s.%N)
produce_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
printf '    produced first (kcat, %d partitions): %.2f s = %.0f msg/s; the stream starts after\n' \
	"$p" "$produce_s" "$(awk -v n="$N" -v s="$produce_s" 'BEGIN { print n / s }')"

stream_run "$N" t1 s1
q -c "CREATE TABLE c1 (LIKE shape)"
copy_s=$(q -c "SELECT bench_time(\$q\$COPY c1 FROM '$work/rows.csv' (FORMAT csv)\$q\$)")
q -c "CREATE TABLE j1 (LIKE shape); CREATE TABLE staging (k text, doc jsonb)"
json_s=$(q -c "SELECT bench_time(\$q\$COPY staging FROM '$work/rows.json'\$q\$)
	+ bench_time(\$q\$INSERT INTO j1 SELECT (jsonb_populate_record(NULL::j1, doc)).* FROM staging\$q\$)")
[ "$(q -c 'SELECT (SELECT count(*) FROM c1) || $$ $$ || (SELECT count(*) FROM j1)')" = "$N $N" ] ||
	{ echo "anchor loads incomplete" >&2; exit 1; }
copy_rate=$(awk -v n="$N" -v s="$copy_s" 'BEGIN { printf "%.0f", n / s }')
json_rate=$(awk -v n="$N" -v s="$json_s" 'BEGIN { printf "%.0f", n / s }')
printf '    stream (commit timeline, %s batches over %s s): %8d rows/s\n' "$s_batches" "$s_secs" "$s_rate"
printf '    COPY FROM csv (same server):                      %8d rows/s (%.2f s)  -> stream = %sx COPY (goal >= 0.8x)\n' \
	"$copy_rate" "$copy_s" "$(ratio "$s_rate" "$copy_rate")"
printf '    JSON staging + INSERT jsonb_populate_record:      %8d rows/s (%.2f s)  -> stream = %sx (goal >= 3x)\n' \
	"$json_rate" "$json_s" "$(ratio "$s_rate" "$json_rate")"
printf '    anchors in ANCHORS.md (another run): COPY ~170k rows/s, jsonb_populate_record ~55k rows/s\n'
q -c "DROP TABLE c1, j1, staging"

# partitioned NAME N: a table like shape, range-partitioned on ts in 4
# partitions that share the N rows of gen evenly.
partitioned()
{
	q <<SQL
CREATE TABLE $1 (LIKE shape) PARTITION BY RANGE (ts);
DO \$\$
BEGIN
	FOR i IN 0 .. 3 LOOP
		EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)',
			'$1_' || i, '$1',
			CASE WHEN i = 0 THEN 'MINVALUE' ELSE (1700000000 + i * $2 * 0.00025)::text END,
			CASE WHEN i = 3 THEN 'MAXVALUE' ELSE (1700000000 + (i + 1) * $2 * 0.00025)::text END);
	END LOOP;
END
\$\$;
SQL
}

if [ "${BENCH_PARTITIONED:-0}" = 1 ]; then
	echo "(d) the $N messages of (a) into a table range-partitioned on ts, 4 partitions"
	plain_rate=$s_rate
	kafka_create_topic tp "$p"
	produce tp "$work/rows.json"
	partitioned sp "$N"
	stream_run "$N" tp sp
	partitioned cp "$N"
	pcopy_s=$(q -c "SELECT bench_time(\$q\$COPY cp FROM '$work/rows.csv' (FORMAT csv)\$q\$)")
	[ "$(q -c 'SELECT count(*) FROM cp')" = "$N" ] || { echo "partitioned COPY incomplete" >&2; exit 1; }
	pcopy_rate=$(awk -v n="$N" -v s="$pcopy_s" 'BEGIN { printf "%.0f", n / s }')
	printf '    stream (commit timeline, %s batches over %s s): %8d rows/s (%sx the plain-table stream of (a))\n' \
		"$s_batches" "$s_secs" "$s_rate" "$(ratio "$s_rate" "$plain_rate")"
	printf '    COPY FROM csv into the same partitioned table:    %8d rows/s (%.2f s)  -> stream = %sx COPY\n' \
		"$pcopy_rate" "$pcopy_s" "$(ratio "$s_rate" "$pcopy_rate")"
	printf '    rows per partition (stream): %s\n' \
		"$(q -c "SELECT string_agg(n::text, ' ' ORDER BY t) FROM (SELECT tableoid::regclass::text AS t, count(*) AS n FROM sp GROUP BY 1) x")"
	q -c "SELECT streamml.drop_stream('sp'); DROP TABLE sp, cp" >/dev/null
fi

echo "(b) latency at 5000 messages/s for 10 s, produce -> committed row"
kafka_create_topic lat 4
q -c "CREATE TABLE lat (LIKE shape)"
LAT_OPTS=${BENCH_LATENCY_OPTIONS:-'{"start": "latest"}'}
q -c "SELECT streamml.create_stream('lat', 'lat', '$KAFKA_BROKERS', 'lat', 'json', '$LAT_OPTS')" >/dev/null
until [ "$(q -c "SELECT count(*) FROM streamml.offsets o JOIN streamml.streams s ON s.id = o.stream_id WHERE s.name = 'lat'")" = 4 ]; do
	sleep 0.1
done
perl -MTime::HiRes=time,sleep -e '
	$| = 1;
	my ($rate, $secs) = @ARGV;
	my $t0 = time;
	my $sent = 0;
	my $total = $rate * $secs;
	while ($sent < $total) {
		my $due = int((time - $t0) * $rate) + 1;
		$due = $total if $due > $total;
		while ($sent < $due) {
			$sent++;
			printf qq({"id": %d, "symbol": "L", "ts": %.6f, "price": 1, "qty": 1, "label": 0, )
				. qq("features": [1,2,3,4,5,6,7,8,9,10]}\n), $sent, time;
		}
		sleep 0.001;
	}' 5000 10 |
	kcat -P -b "$KAFKA_BROKERS" -t lat -X linger.ms=1
until [ "$(q -c 'SELECT count(*) FROM lat')" = 50000 ]; do sleep 0.2; done
q -F ' ' -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l)::numeric, 1),
		round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l)::numeric, 1),
		round(max(l)::numeric, 1), count(*)
	FROM (SELECT 1000 * (extract(epoch FROM pg_xact_commit_timestamp(xmin)) - ts) AS l FROM lat) s" |
	{ read -r p50 p99 mx cnt
	  printf '    %s rows: p50 %s ms, p99 %s ms, max %s ms (goal p99 < 100 ms; producer linger.ms=1, stream options %s)\n' \
		"$cnt" "$p50" "$p99" "$mx" "$LAT_OPTS"; }
q -c "SELECT streamml.drop_stream('lat'); DROP TABLE lat" >/dev/null

if [ "$LARGE" -gt 0 ]; then
	echo "(c) one stream of $LARGE rows: the first $N rows beside the last $N"
	gen "$LARGE" 1
	p=$(parts_for "$LARGE")
	kafka_create_topic t2 "$p"
	produce t2 "$work/rows.json"
	stream_run "$LARGE" t2 s2
	# rows/s over the batches that brought rows (lo, hi] of the table, in
	# commit order: rows after the window's first batch / its duration.
	window()
	{
		q -c "WITH b AS (SELECT pg_xact_commit_timestamp(xmin) AS at, count(*) AS n
						 FROM s2 GROUP BY xmin),
				  c AS (SELECT at, n, sum(n) OVER (ORDER BY at) AS cum FROM b),
				  w AS (SELECT * FROM c WHERE cum > $1 AND cum <= $2)
			 SELECT round((sum(n) - (SELECT n FROM w ORDER BY at LIMIT 1))
						  / extract(epoch FROM max(at) - min(at))) FROM w"
	}
	first=$(window 0 "$N")
	last=$(window $((LARGE - N)) "$LARGE")
	printf '    %d rows in %s s (%s partitions, %s rows/s overall): first %d rows %d rows/s, last %d rows %d rows/s -> ratio %s (flat = 1.0)\n' \
		"$LARGE" "$s_secs" "$p" "$s_rate" "$N" "$first" "$N" "$last" "$(ratio "$last" "$first")"
fi
