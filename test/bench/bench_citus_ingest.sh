#!/usr/bin/env bash
# Loading a Citus table from Kafka (issue #14): N JSON messages (100k by
# default), produced before the streams start, loaded by a stream into a
# table distributed over a loopback cluster (a coordinator and two workers,
# each its own server on this machine), beside, in the same run:
#   - the same messages by a stream into a local table of the coordinator
#     (one node's loader, table_multi_insert);
#   - the same rows by COPY FROM into another distributed table (Citus's
#     COPY path, the fastest way into its shards).
# The streams' times run from create_stream until every row is in (their
# worker's start, about 0.5 s, included).  A Citus target is loaded in
# batches (the Kafka batch, up to 10,000 rows), each one INSERT ... SELECT
# FROM ROWS FROM (unnest(...), ...) that Citus sends to the shards with
# COPY, with two-phase commit.  BENCH_BATCH sets the streams' batch_size
# (default 5000); EXTRA_CONF adds postgresql.conf lines to every node.
# Needs Citus in tmp_install (make citus; make tmp-install) and kcat.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${BENCH_ROWS:-100000}
source test/bench/citus-cluster.sh
source test/kafka-env.sh || exit 1
citus_cluster_start || exit 0
work=$(mktemp -d /tmp/streamml-bench.XXXXXX)
chmod 755 "$work"
trap 'citus_cluster_stop; kafka_env_stop; rm -rf "$work"' EXIT

# N messages {"id", "symbol", "price", "qty", "f" (3 floats)}, each after
# its key and a tab, and the same rows as CSV, deterministic.
perl -e '
	my ($n, $dir) = @ARGV;
	open(my $j, ">", "$dir/rows.json") or die;
	open(my $c, ">", "$dir/rows.csv") or die;
	my $s = 12345;
	sub r { $s = ($s * 1103515245 + 12345) % 2147483648; $s / 2147483648 }
	for my $i (1 .. $n) {
		my @f = map { sprintf("%.6f", r() * 2 - 1) } 1 .. 3;
		my ($sym, $price, $qty) = ("S" . ($i % 50), sprintf("%.2f", 100 + r() * 50), int(r() * 100));
		print $j qq($i\t{"id": $i, "symbol": "$sym", "price": $price, "qty": $qty, "f": [) . join(", ", @f) . "]}\n";
		print $c "$i,$sym,$price,$qty,\"{" . join(",", @f) . "}\"\n";
	}' "$N" "$work"
chmod 644 "$work"/rows.*
parts=$(( (N + 39999) / 40000 ))
kafka_create_topic ticks "$parts"
kcat -P -b "$KAFKA_BROKERS" -t ticks -K $'\t' -X linger.ms=1000 -X batch.num.messages=10000 \
	-X batch.size=1000000 -X queue.buffering.max.messages=2000000 -l "$work/rows.json"

q <<'EOSQL' >/dev/null
CREATE TABLE shape (id int, symbol text, price float8, qty int, f float8[]);
CREATE TABLE local_t (LIKE shape);
CREATE TABLE dist_t (LIKE shape);
SELECT create_distributed_table('dist_t', 'id');
CREATE TABLE dist_copy (LIKE shape);
SELECT create_distributed_table('dist_copy', 'id');
EOSQL

# stream_secs TABLE: loads the topic into TABLE with a stream; seconds.
stream_secs() {
	local t0 t1 deadline=$((SECONDS + 1200))
	t0=$(date +%s.%N)
	q -c "SELECT streamml.create_stream('$1', '$1', '$KAFKA_BROKERS', 'ticks', 'json',
		'{\"batch_size\": ${BENCH_BATCH:-5000}}')" >/dev/null
	until [ "$(q -c "SELECT count(*) >= $N FROM $1")" = t ]; do
		((SECONDS < deadline)) || { echo "stream $1 stalled" >&2; exit 1; }
		sleep 0.1
	done
	t1=$(date +%s.%N)
	q -c "SELECT streamml.stop_stream('$1')" >/dev/null
	local check
	check=$(q -c "SELECT count(*), count(DISTINCT id) FROM $1")"|$(q -c "SELECT count(*) FROM streamml.dead_letters")"
	[ "$check" = "$N|$N|0" ] || { echo "stream $1 loaded $check, expected $N|$N|0" >&2; exit 1; }
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
s_local=$(stream_secs local_t)
s_dist=$(stream_secs dist_t)
t0=$(date +%s.%N)
q -c "\\copy dist_copy FROM '$work/rows.csv' (FORMAT csv)"
t1=$(date +%s.%N)
s_copy=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
[ "$(q -c 'SELECT count(*) FROM dist_copy')" = "$N" ] || { echo "COPY incomplete" >&2; exit 1; }
[ "$(q -c "SELECT pg_relation_size('dist_t')")" = 0 ] || { echo "rows in the coordinator's shell" >&2; exit 1; }
same=$(q -c "SELECT (SELECT sum(hashtext(format('%s %s %s %s %s', id, symbol, price, qty, f))) FROM local_t)
	= (SELECT sum(hashtext(format('%s %s %s %s %s', id, symbol, price, qty, f))) FROM dist_t)")
[ "$same" = t ] || { echo "the distributed table's rows differ from the local table's" >&2; exit 1; }

rate() { awk -v n="$N" -v s="$1" 'BEGIN { printf "%8.0f", n / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; $N messages, $parts partitions, 8 shards on 2 workers)"
printf '%-58s %s rows/s (%6.2f s)\n' "stream into the distributed table (batched INSERT ... SELECT)" "$(rate "$s_dist")" "$s_dist"
printf '%-58s %s rows/s (%6.2f s)   distributed = %sx local\n' "anchor: stream into a local table (one node)" \
	"$(rate "$s_local")" "$s_local" "$(ratio "$s_local" "$s_dist")"
printf '%-58s %s rows/s (%6.2f s)   distributed stream = %sx COPY\n' "anchor: COPY FROM csv into a distributed table" \
	"$(rate "$s_copy")" "$s_copy" "$(ratio "$s_copy" "$s_dist")"
