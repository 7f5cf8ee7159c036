#!/usr/bin/env bash
# The chain of issue 10 on Citus (issue 14): N JSON trades (50k by
# default, 50 symbols, each symbol keyed to one Kafka partition), produced
# before the streams start, through stream -> trades -> feature table (the
# 9 features of issue 10) -> scorer (a per-symbol logistic model), with
# every table distributed by symbol over a loopback cluster (a coordinator
# and two workers on this machine), beside, in the same run, the same
# chain into local tables of the coordinator and the same stream into the
# distributed trades alone.  A stream's time runs from create_stream until
# every prediction (or row) is in; rows/s = N / that time.  BENCH_BATCH
# sets batch_size (default 5000).  Needs Citus in tmp_install (make citus;
# make tmp-install) and kcat.  The dev broker keeps 5 MiB per partition,
# about 45,000 of these messages: with it, BENCH_ROWS stays under 90,000.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${BENCH_ROWS:-50000}
source test/bench/citus-cluster.sh
source test/kafka-env.sh || exit 1
EXTRA_CONF=${EXTRA_CONF:-citus.max_cached_conns_per_worker = 8} citus_cluster_start || exit 0
work=$(mktemp -d /tmp/streamml-bench.XXXXXX)
chmod 755 "$work"
trap 'citus_cluster_stop; kafka_env_stop; rm -rf "$work"' EXIT

perl -e '
	my ($n, $dir) = @ARGV;
	open(my $j, ">", "$dir/trades.json") or die;
	my $s = 12345;
	sub r { $s = ($s * 1103515245 + 12345) % 2147483648; $s / 2147483648 }
	my (%t, %p);
	for my $i (1 .. $n) {
		my $sym = sprintf("S%02d", $i % 50);
		$t{$sym} += 0.001 + r();
		$p{$sym} = ($p{$sym} // 100) + r() - 0.5;
		printf $j "%s\t{\"id\": %d, \"symbol\": \"%s\", \"ts\": %.3f, \"price\": %.4f, \"notional\": %.4f}\n",
			$sym, $i, $sym, 1767225600 + $t{$sym}, $p{$sym}, 3 * $p{$sym};
	}' "$N" "$work"
chmod 644 "$work"/trades.json
kafka_create_topic trades 2
kcat -P -b "$KAFKA_BROKERS" -t trades -K $'\t' -X linger.ms=1000 -X batch.num.messages=10000 \
	-X batch.size=1000000 -X queue.buffering.max.messages=2000000 -l "$work/trades.json"

spec='{"partition_by": "symbol", "order_by": "ts", "keep": ["id", "symbol", "ts", "price"],
  "features": {
	"lag_1":    {"fn": "lag",        "of": "price", "n": 1},
	"ret_1":    {"fn": "pct_change", "of": "price", "n": 1},
	"momentum": {"fn": "delta",      "of": "price", "n": 3},
	"ma_5":     {"fn": "mean",       "of": "price", "preceding": 5},
	"vol_30s":  {"fn": "stddev_pop", "of": "price", "range": "30 seconds"},
	"vwap_1m":  {"fn": "sum",        "of": "notional", "range": "1 minute"},
	"n_30s":    {"fn": "count",                       "range": "30 seconds"},
	"ewma_10s": {"fn": "ewma",       "of": "price", "half_life": "10 seconds"},
	"trend_20": {"fn": "slope",      "of": "price", "preceding": 19}}}'
q <<EOSQL >/dev/null
CREATE TABLE train AS
SELECT 'S' || lpad((i % 50)::text, 2, '0') AS symbol,
	   sin(i) / 100 AS ret_1, cos(i * 1.7) AS momentum, sin(i * 0.3) AS vol_30s,
	   (sin(i) + 0.5 * cos(i * 1.7) + ((i * 7919) % 1000) / 1000.0 - 0.5) > 0 AS up
  FROM generate_series(1, 10000) i;
SELECT count(*) FROM streamml.train_logreg('up', 'train', 'up',
	ARRAY['ret_1', 'momentum', 'vol_30s'], '{"group_by": "symbol"}');
CREATE TABLE shape (id bigint, symbol text NOT NULL, ts timestamptz NOT NULL, price float8,
					notional float8, PRIMARY KEY (symbol, id));
CREATE TABLE l_trades (LIKE shape INCLUDING ALL);
CREATE TABLE d_trades (LIKE shape INCLUDING ALL);
SELECT create_distributed_table('d_trades', 'symbol');
CREATE TABLE d_alone (LIKE shape INCLUDING ALL);
SELECT create_distributed_table('d_alone', 'symbol');
SELECT streamml.create_feature_table('l_features', 'l_trades', '$spec');
SELECT streamml.create_feature_table('d_features', 'd_trades', '$spec');
SELECT streamml.create_scorer('l_up', 'l_features', 'up', '{"into": "l_preds", "key": ["symbol", "id"]}');
SELECT streamml.create_scorer('d_up', 'd_features', 'up', '{"into": "d_preds", "key": ["symbol", "id"]}');
EOSQL

# chain_secs STREAM_TARGET LAST_TABLE: loads the topic into STREAM_TARGET
# until LAST_TABLE has N rows; seconds.
chain_secs() {
	local t0 t1 deadline=$((SECONDS + 1800))
	t0=$(date +%s.%N)
	q -c "SELECT streamml.create_stream('$1', '$1', '$KAFKA_BROKERS', 'trades', 'json',
		'{\"workers\": 2, \"batch_size\": ${BENCH_BATCH:-5000}}')" >/dev/null
	until [ "$(q -c "SELECT count(*) >= $N FROM $2")" = t ]; do
		((SECONDS < deadline)) || { echo "stream $1 stalled" >&2; exit 1; }
		sleep 0.1
	done
	t1=$(date +%s.%N)
	q -c "SELECT streamml.stop_stream('$1')" >/dev/null
	[ "$(q -c "SELECT count(*) FROM streamml.dead_letters")" = 0 ] || { echo "dead letters" >&2; exit 1; }
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
s_local=$(chain_secs l_trades l_preds)
s_dist=$(chain_secs d_trades d_preds)
s_alone=$(chain_secs d_alone d_alone)
check=$(q -c "SELECT (SELECT count(*) FROM d_trades), (SELECT count(*) FROM d_features), (SELECT count(*) FROM d_preds)")
[ "$check" = "$N|$N|$N" ] || { echo "the distributed chain has $check rows" >&2; exit 1; }
same=$(q -c "SELECT (SELECT sum(hashtext(format('%s %s %s %s', id, lag_1, vol_30s, trend_20))) FROM l_features)
	= (SELECT sum(hashtext(format('%s %s %s %s', id, lag_1, vol_30s, trend_20))) FROM d_features),
	(SELECT sum(hashtext(format('%s %s', id, probability))) FROM l_preds)
	= (SELECT sum(hashtext(format('%s %s', id, probability))) FROM d_preds)")
[ "$same" = "t|t" ] || { echo "the distributed chain's features or predictions differ from the local ones" >&2; exit 1; }

rate() { awk -v n="$N" -v s="$1" 'BEGIN { printf "%8.0f", n / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; $N trades, 50 symbols, 2 partitions, 2 workers a stream, 8 shards on 2 Citus workers)"
printf '%-62s %s rows/s (%6.2f s)\n' "chain on Citus: stream -> trades -> features -> predictions" "$(rate "$s_dist")" "$s_dist"
printf '%-62s %s rows/s (%6.2f s)   Citus chain = %sx local chain\n' "anchor: the same chain into local tables (one node)" \
	"$(rate "$s_local")" "$s_local" "$(ratio "$s_local" "$s_dist")"
printf '%-62s %s rows/s (%6.2f s)   Citus chain = %sx Citus stream alone\n' "anchor: the stream alone into a distributed table" \
	"$(rate "$s_alone")" "$s_alone" "$(ratio "$s_alone" "$s_dist")"
