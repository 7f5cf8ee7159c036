#!/usr/bin/env bash
# Feature tables, each figure beside its anchor measured in the same run on
# a throw-away server and the dev broker ("make bench BENCH=feature_table").
#
# (a) Stream alone vs stream -> feature table -> scorer.  N JSON trades
#     (200k by default), 50 symbols, each symbol keyed to one partition so
#     its rows load in order; the same messages into three topics.  One
#     stream loads a plain table (the anchor); one loads a table with a
#     feature table of the issue's 9 features (lag, pct_change, delta, mean
#     over 5 rows, stddev_pop over 30 s, sum over 1 min, count over 30 s,
#     ewma with a 10 s half-life, slope over 20 rows); one loads a table
#     with the same feature table and, on it, a scorer with a per-symbol
#     logistic model (50 groups) of three of the features, trained first on
#     the features of 20k other rows: the issue's whole chain.  Rates from
#     the commit timeline of each stream's batches, as bench_ingest.sh
#     measures them.  Goal (issue 10): the chain >= 0.5x the stream alone,
#     aim 0.7x; the features alone are shown beside it.  Also the stream
#     worker's CPU time per row (what the machine's load disturbs least),
#     and what PostgreSQL itself spends writing the chain's rows (the same
#     trades, feature rows and predictions written by COPY in binary,
#     backend CPU per row): the floor of what the chain can cost.
# (b) Windows of 300 s vs 30 s: the same rows inserted (batches of 5000
#     rows) into sources whose feature tables have the same six range
#     features (mean, stddev_pop, min, max, count, slope) over 30 s and over
#     300 s (some 600 vs 6000 rows per window).  Goal: 300 s <= 1.2x 30 s.
# (c) The obvious alternative: an AFTER INSERT statement trigger that
#     recomputes the window functions (pg_streamml's rolling_* and ewma)
#     over the source for the symbols of the new rows and inserts the new
#     rows' features.  BENCH_ALT_ROWS rows (40k by default) in batches of
#     1000 into both, timed, and the two results compared (max relative
#     difference).  Goal: feature table >= 10x faster.
# (d) Latency of the whole chain at 5,000 messages/s for 10 s: a paced
#     producer writes the send time into "ts"; stream -> feature table (the
#     9 features) -> scorer (a per-symbol logistic model of three features,
#     trained on (a)'s features); latency = commit time of the prediction's
#     transaction - ts.  Anchor: the same stream alone (commit of the row).
#     The model is (a)'s.
#     Goal: p99 < 100 ms.  Spark's 5 s micro-batch is the outer anchor.
#
# BENCH_ROWS of 600k or more does not fit the dev broker: keyed by symbol,
# some of the 25 partitions outgrow the 5 MiB it keeps of each and the
# streams stall (a real Kafka has no such limit).
#
# A few minutes on 2 cores with the defaults.  BENCH_LEGS (default "abcd")
# picks the legs to run.  BENCH_PERF=DIR records each of (a)'s stream
# workers with "perf record -g" into DIR/<table>.data (BENCH_PERF_FREQ
# samples per second, 499 by default): where the chain's time goes.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${BENCH_ROWS:-200000}
ALT=${BENCH_ALT_ROWS:-40000}
WORKERS=${BENCH_WORKERS:-1}
LEGS=${BENCH_LEGS:-abcd}

source test/pg-env.sh
source test/kafka-env.sh || exit 1
source test/bench/lib_stream.sh
work=$(mktemp -d /tmp/streamml-bench.XXXXXX)
chmod 755 "$work"
cleanup() { pg_env_stop; kafka_env_stop; rm -rf "$work"; }
trap cleanup EXIT
# shared_buffers large enough for every table of the run (as in
# bench_scorer.sh), so that no stream measures the eviction of its own pages
pg_env_start "track_commit_timestamp = on
shared_buffers = '1GB'
jit = off
max_wal_size = '10GB'
checkpoint_timeout = '30min'"

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# N trades as JSON lines keyed by symbol ($work/rows.json) and as CSV
# ($work/rows.csv): symbol i % 50, a trade every 1 ms, so each symbol has
# one every 50 ms (600 rows in 30 s, 6000 in 300 s).
perl -e '
	my ($n, $dir) = @ARGV;
	open(my $j, ">", "$dir/rows.json") or die;
	open(my $c, ">", "$dir/rows.csv") or die;
	my $s = 12345;
	sub r { $s = ($s * 1103515245 + 12345) % 2147483648; $s / 2147483648 }
	my @p = map { 100 + $_ } 0 .. 49;
	for my $i (1 .. $n) {
		my $k = $i % 50;
		$p[$k] += r() - 0.5;
		my ($ts, $price, $qty) = (sprintf("%.3f", 1767225600 + $i * 0.001),
			sprintf("%.4f", $p[$k]), sprintf("%.1f", 1 + int(r() * 100)));
		my $notional = sprintf("%.4f", $price * $qty);
		print $j qq(S$k\t{"id": $i, "symbol": "S$k", "ts": $ts, "price": $price, "qty": $qty, "notional": $notional}\n);
		print $c "$i,S$k,$ts,$price,$qty,$notional\n";
	}' "$N" "$work"
chmod 644 "$work"/rows.*

produce()
{
	kcat -P -b "$KAFKA_BROKERS" -t "$1" -K $'\t' -X linger.ms=1000 \
		-X batch.num.messages=10000 -X batch.size=1000000 \
		-X queue.buffering.max.messages=2000000 -l "$2"
}

SPEC9='{"partition_by": "symbol", "order_by": "ts", "keep": ["id", "symbol", "ts", "price"],
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
CREATE TABLE shape (id bigint, symbol text, ts timestamptz, price float8, qty float8, notional float8);
CREATE TABLE staging (LIKE shape);
SQL
# the CSV's ts is epoch seconds: load through a float column
q -c "CREATE TABLE staging_raw (id bigint, symbol text, ts float8, price float8, qty float8, notional float8)"
q -c "COPY staging_raw FROM '$work/rows.csv' (FORMAT csv)"
q -c "INSERT INTO staging SELECT id, symbol, to_timestamp(ts), price, qty, notional FROM staging_raw ORDER BY id"
# (b) and (c) read their batches by id: by index, so that neither side of a
# comparison is mostly a scan of staging
q -c "CREATE INDEX ON staging (id)" -c "ANALYZE staging"
stream_rate_create

# a per-symbol logistic model of three features, trained on the features of
# 20k trades that none of the legs loads (ids above N): does the next trade
# of the symbol go up.  (a)'s chain and (d) score with it.
q >/dev/null <<SQL
CREATE TABLE hist (LIKE shape);
SELECT streamml.create_feature_table('hist_f', 'hist', '$SPEC9');
INSERT INTO hist SELECT id + $N, symbol, ts - interval '1 day', price, qty, notional
  FROM staging WHERE id <= 20000 ORDER BY id;
CREATE TABLE train AS
SELECT symbol, ret_1, momentum, vol_30s, up FROM (
	SELECT symbol, ret_1, momentum, vol_30s,
		   lead(price) OVER (PARTITION BY symbol ORDER BY arrival_seq) > price AS up
	  FROM hist_f) x
 WHERE up IS NOT NULL AND ret_1 IS NOT NULL AND momentum IS NOT NULL AND vol_30s IS NOT NULL;
SELECT count(*) FROM streamml.train_logreg('up', 'train', 'up',
	ARRAY['ret_1', 'momentum', 'vol_30s'], '{"group_by": "symbol"}');
SQL

load() { cut -d' ' -f1-3 /proc/loadavg; }
if [[ $LEGS == *a* ]]; then
echo "(a) $N JSON trades, 50 symbols, $WORKERS worker(s): stream alone vs stream -> feature table (9 features) -> scorer (per-symbol logistic model)"
kafka_create_topic ta 25
kafka_create_topic tb 25
kafka_create_topic tc 25
produce ta "$work/rows.json"
produce tb "$work/rows.json"
produce tc "$work/rows.json"
q -c "CREATE TABLE plain (LIKE shape); CREATE TABLE trades (LIKE shape); CREATE TABLE trades_s (LIKE shape)"
q -c "SELECT streamml.create_feature_table('features', 'trades', '$SPEC9')" >/dev/null
q -c "SELECT streamml.create_feature_table('features_s', 'trades_s', '$SPEC9')" \
  -c "SELECT streamml.create_scorer('up_s', 'features_s', 'up', '{\"into\": \"preds_s\", \"key\": \"id\"}')" >/dev/null
# BENCH_PERF=DIR: perf record of each stream's worker into DIR/TABLE.data
# (to see where the chain's time goes; the figures then carry perf's cost)
perf_attach()
{
	[ -n "${BENCH_PERF:-}" ] || return 0
	mkdir -p "$BENCH_PERF"
	(
		local pid=
		until [ -n "$pid" ]; do
			sleep 0.1
			pid=$(q -c "SELECT worker_pid FROM streamml.stream_stats
				WHERE stream = '$1' AND worker_pid IS NOT NULL LIMIT 1")
		done
		perf record -q -F "${BENCH_PERF_FREQ:-499}" -g -p "$pid" -o "$BENCH_PERF/$1.data" >/dev/null 2>&1
	) &
}
perf_attach plain
stream_run "$N" ta plain
alone_rate=$s_rate alone_secs=$s_secs alone_batches=$s_batches alone_load=$(load) alone_cpu=$s_cpu_us
perf_attach trades
stream_run "$N" tb trades
feat_rate=$s_rate feat_secs=$s_secs feat_batches=$s_batches feat_load=$(load) feat_cpu=$s_cpu_us
perf_attach trades_s
stream_run "$N" tc trades_s
chain_rate=$s_rate chain_secs=$s_secs chain_batches=$s_batches chain_load=$(load) chain_cpu=$s_cpu_us
[ "$(q -c "SELECT count(*) FROM features")" = "$N" ] || { echo "feature table incomplete" >&2; exit 1; }
[ "$(q -c "SELECT count(*) FROM features_s")" = "$N" ] || { echo "chain's feature table incomplete" >&2; exit 1; }
[ "$(q -c "SELECT count(*) FROM preds_s")" = "$N" ] || { echo "predictions incomplete" >&2; exit 1; }
scored=$(q -c "SELECT count(prediction) FROM preds_s")
printf '    stream alone (anchor):                    %8d rows/s (%s s, %d rows per batch; load %s)\n' \
	"$alone_rate" "$alone_secs" "$((N / alone_batches))" "$alone_load"
printf '    stream -> feature table:                  %8d rows/s (%s s, %d rows per batch; load %s) -> %sx the stream alone\n' \
	"$feat_rate" "$feat_secs" "$((N / feat_batches))" "$feat_load" "$(ratio "$feat_rate" "$alone_rate")"
printf '    stream -> feature table -> scorer:        %8d rows/s (%s s, %d rows per batch; load %s) -> %sx the stream alone (goal >= 0.5x, aim 0.7x)\n' \
	"$chain_rate" "$chain_secs" "$((N / chain_batches))" "$chain_load" "$(ratio "$chain_rate" "$alone_rate")"
printf '    the stream worker'"'"'s CPU time per row (load disturbs it least): alone (anchor) %s us, with the feature table %s us (%sx the rate on a free core), with the chain %s us (%sx)\n' \
	"$alone_cpu" "$feat_cpu" "$(ratio "$alone_cpu" "$feat_cpu")" "$chain_cpu" "$(ratio "$alone_cpu" "$chain_cpu")"
printf '    predictions: %s rows, %s scored (the others: a NULL feature, as the first rows of each symbol have)\n' "$N" "$scored"
q -c "SELECT 'feature table: ' || rows_processed || ' rows, ' || round(mean_batch_time::numeric, 2) || ' ms per batch' FROM streamml.feature_tables WHERE name = 'features_s'" | sed 's/^/    /'

# What PostgreSQL itself spends writing the chain's rows, nothing
# computed, by its fastest path: the trades, the feature rows (with their
# unique index) and the predictions (with their primary key), each written
# by COPY (FORMAT binary, so hardly any parsing) into an empty table of the
# same shape and indexes, in the order the chain wrote them; the backend's
# CPU time per row.  The goal of 0.5x leaves the chain the stream's own
# CPU per row for everything it adds: a feature row and a prediction
# cannot cost less than COPY writing them.  Also the two rows written with
# no index at all (heap only), below any design that keeps them as rows.
write_cpu()
{
	local src=$1 like=$2 dest=${1}_w${3:-}
	q -c "CREATE TABLE $dest (LIKE $src $like)"
	[ -f "$work/$src.bin" ] ||
		q -c "\\copy (SELECT * FROM $src ORDER BY ctid) TO '$work/$src.bin' (FORMAT binary)"
	cat > "$work/write.sql" <<SQL
\o $work/pid
SELECT pg_backend_pid();
\o
\! awk '{ print \$14 + \$15 }' /proc/\$(cat $work/pid)/stat > $work/cpu0
\copy $dest FROM '$work/$src.bin' (FORMAT binary)
\! awk '{ print \$14 + \$15 }' /proc/\$(cat $work/pid)/stat > $work/cpu1
SQL
	q -f "$work/write.sql" >/dev/null
	awk -v a="$(cat "$work/cpu0")" -v b="$(cat "$work/cpu1")" -v hz="$(getconf CLK_TCK)" -v n="$N" \
		'BEGIN { printf "%.2f", (b - a) / hz * 1e6 / n }'
}
w_trades=$(write_cpu trades_s "INCLUDING INDEXES")
w_features=$(write_cpu features_s "INCLUDING INDEXES")
w_preds=$(write_cpu preds_s "INCLUDING INDEXES")
# and with no index at all: the heap rows alone
h_features=$(write_cpu features_s "" _heap)
h_preds=$(write_cpu preds_s "" _heap)
printf '    PostgreSQL writing the same rows by COPY (FORMAT binary), nothing computed (backend CPU per row): trades %s us, feature rows %s us, predictions %s us; the same two without any index: %s us, %s us\n' \
	"$w_trades" "$w_features" "$w_preds" "$h_features" "$h_preds"
printf '    so writing a feature row and a prediction per trade, at COPY'"'"'s cost, puts any chain at %sx the stream alone on a free core at best (%s us beside %s + %s + %s us); 0.5x leaves %s us for both\n' \
	"$(awk -v a="$alone_cpu" -v f="$w_features" -v p="$w_preds" 'BEGIN { printf "%.2f", a / (a + f + p) }')" \
	"$alone_cpu" "$alone_cpu" "$w_features" "$w_preds" "$alone_cpu"
printf '    without any index the two rows alone cost %s us per trade at COPY'"'"'s speed, %sx the %s us that 0.5x leaves for them\n' \
	"$(awk -v f="$h_features" -v p="$h_preds" 'BEGIN { printf "%.2f", f + p }')" \
	"$(awk -v a="$alone_cpu" -v f="$h_features" -v p="$h_preds" 'BEGIN { printf "%.2f", (f + p) / a }')" "$alone_cpu"
fi

if [[ $LEGS == *b* ]]; then
echo "(b) $N rows in batches of 5000, six range features: 300 s vs 30 s windows"
range_run()
{
	local name=$1 range=$2
	q -c "CREATE TABLE src_$name (LIKE shape)"
	q -c "SELECT streamml.create_feature_table('feat_$name', 'src_$name', '{\"partition_by\": \"symbol\", \"order_by\": \"ts\", \"keep\": [\"id\"], \"features\": {
		\"m\": {\"fn\": \"mean\", \"of\": \"price\", \"range\": \"$range\"},
		\"sd\": {\"fn\": \"stddev_pop\", \"of\": \"price\", \"range\": \"$range\"},
		\"lo\": {\"fn\": \"min\", \"of\": \"price\", \"range\": \"$range\"},
		\"hi\": {\"fn\": \"max\", \"of\": \"price\", \"range\": \"$range\"},
		\"n\": {\"fn\": \"count\", \"range\": \"$range\"},
		\"sl\": {\"fn\": \"slope\", \"of\": \"price\", \"range\": \"$range\"}}}')" >/dev/null
	q -c "SELECT bench_time(\$q\$DO \$d\$ BEGIN FOR b IN 0 .. ($N - 1) / 5000 LOOP
		INSERT INTO src_$name SELECT * FROM staging WHERE id > b * 5000 AND id <= (b + 1) * 5000 ORDER BY id;
		END LOOP; END \$d\$\$q\$)"
}
# the same inserts without a feature table: the part of the time that is not features
base_run()
{
	q -c "CREATE TABLE src_$1 (LIKE shape)" -c "SELECT bench_time(\$q\$DO \$d\$ BEGIN FOR b IN 0 .. ($N - 1) / 5000 LOOP
		INSERT INTO src_$1 SELECT * FROM staging WHERE id > b * 5000 AND id <= (b + 1) * 5000 ORDER BY id;
		END LOOP; END \$d\$\$q\$)"
}
base_s=$(base_run base)
base_s=$(awk -v a="$base_s" -v b="$(base_run base2)" 'BEGIN { print (a < b ? a : b) }')
# each twice, alternating, the faster of the two (the machine's noise)
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'; }
r30=$(range_run r30 "30 seconds")
r300=$(range_run r300 "300 seconds")
r30=$(min "$r30" "$(range_run r30b "30 seconds")")
r300=$(min "$r300" "$(range_run r300b "300 seconds")")
f30=$(awk -v a="$r30" -v b="$base_s" 'BEGIN { printf "%.3f", a - b }')
f300=$(awk -v a="$r300" -v b="$base_s" 'BEGIN { printf "%.3f", a - b }')
printf '    inserts alone: %.2f s; with features over 30 s: %.2f s, over 300 s: %.2f s\n' "$base_s" "$r30" "$r300"
printf '    feature time 30 s (anchor): %.2f s = %.2f us/row; 300 s: %.2f s = %.2f us/row -> %sx (goal <= 1.2x)\n' \
	"$f30" "$(awk -v s="$f30" -v n="$N" 'BEGIN { print s * 1e6 / n }')" \
	"$f300" "$(awk -v s="$f300" -v n="$N" 'BEGIN { print s * 1e6 / n }')" "$(ratio "$f300" "$f30")"
printf '    whole statements: %sx\n' "$(ratio "$r300" "$r30")"

fi

if [[ $LEGS == *c* ]]; then
echo "(c) $ALT rows in batches of 1000: feature table vs a statement trigger recomputing the window functions"
q <<SQL
CREATE TABLE src_ft (LIKE shape);
SELECT streamml.create_feature_table('ft_c', 'src_ft', '$SPEC9') \gset
CREATE TABLE src_alt (LIKE shape);
CREATE TABLE alt_features (id bigint, lag_1 float8, ret_1 float8, momentum float8, ma_5 float8,
	vol_30s float8, vwap_1m float8, n_30s float8, ewma_10s float8, trend_20 float8);
-- the obvious alternative: feature_sql's window query over the symbols of
-- the new rows, kept for the new rows
CREATE FUNCTION alt_trigger() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	INSERT INTO alt_features
	SELECT w.id, w.lag_1, w.ret_1, w.momentum, w.ma_5, w.vol_30s, w.vwap_1m, w.n_30s, w.ewma_10s, w.trend_20
	FROM (SELECT id,
		lag(price, 1) OVER (PARTITION BY symbol ORDER BY ts) AS lag_1,
		price / NULLIF(lag(price, 1) OVER (PARTITION BY symbol ORDER BY ts), 0) - 1 AS ret_1,
		price - lag(price, 3) OVER (PARTITION BY symbol ORDER BY ts) AS momentum,
		streamml.rolling_mean(price) OVER (PARTITION BY symbol ORDER BY ts ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) AS ma_5,
		streamml.rolling_stddev_pop(price) OVER (PARTITION BY symbol ORDER BY ts RANGE BETWEEN '30 seconds' PRECEDING AND CURRENT ROW) AS vol_30s,
		streamml.rolling_sum(notional) OVER (PARTITION BY symbol ORDER BY ts RANGE BETWEEN '1 minute' PRECEDING AND CURRENT ROW) AS vwap_1m,
		count(*) OVER (PARTITION BY symbol ORDER BY ts RANGE BETWEEN '30 seconds' PRECEDING AND CURRENT ROW)::float8 AS n_30s,
		streamml.ewma(price, ts, '10 seconds') OVER (PARTITION BY symbol ORDER BY ts ROWS UNBOUNDED PRECEDING) AS ewma_10s,
		streamml.rolling_slope(price, extract(epoch FROM ts)::float8) OVER (PARTITION BY symbol ORDER BY ts ROWS BETWEEN 19 PRECEDING AND CURRENT ROW) AS trend_20
		FROM src_alt WHERE symbol IN (SELECT DISTINCT symbol FROM new_rows)) w
	WHERE w.id IN (SELECT id FROM new_rows);
	RETURN NULL;
END \$\$;
CREATE TRIGGER alt AFTER INSERT ON src_alt REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION alt_trigger();
SQL
ft_s=$(q -c "SELECT bench_time(\$q\$DO \$d\$ BEGIN FOR b IN 0 .. ($ALT - 1) / 1000 LOOP
	INSERT INTO src_ft SELECT * FROM staging WHERE id > b * 1000 AND id <= (b + 1) * 1000 ORDER BY id;
	END LOOP; END \$d\$\$q\$)")
alt_s=$(q -c "SELECT bench_time(\$q\$DO \$d\$ BEGIN FOR b IN 0 .. ($ALT - 1) / 1000 LOOP
	INSERT INTO src_alt SELECT * FROM staging WHERE id > b * 1000 AND id <= (b + 1) * 1000 ORDER BY id;
	END LOOP; END \$d\$\$q\$)")
q -c "CREATE FUNCTION d(a float8, b float8) RETURNS float8 IMMUTABLE LANGUAGE sql AS
	\$\$ SELECT CASE WHEN a IS NULL AND b IS NULL THEN 0 WHEN a IS NULL OR b IS NULL THEN 1
		WHEN a = b THEN 0 ELSE abs(a - b) / greatest(abs(a), abs(b)) END \$\$"
same=$(q -c "SELECT count(*) || ' rows, max relative difference ' || coalesce(max(greatest(
	d(f.lag_1, a.lag_1), d(f.ret_1, a.ret_1), d(f.momentum, a.momentum), d(f.ma_5, a.ma_5),
	d(f.vol_30s, a.vol_30s), d(f.vwap_1m, a.vwap_1m), d(f.n_30s, a.n_30s),
	d(f.ewma_10s, a.ewma_10s), d(f.trend_20, a.trend_20))), 0)
	FROM ft_c f JOIN alt_features a USING (id)")
printf '    trigger recomputing window functions (anchor): %6.2f s = %8.0f rows/s\n' "$alt_s" \
	"$(awk -v n="$ALT" -v s="$alt_s" 'BEGIN { print n / s }')"
printf '    feature table:                                  %6.2f s = %8.0f rows/s -> %sx faster (goal >= 10x)\n' \
	"$ft_s" "$(awk -v n="$ALT" -v s="$ft_s" 'BEGIN { print n / s }')" "$(ratio "$alt_s" "$ft_s")"
printf '    same result: %s\n' "$same"

fi

if [[ $LEGS == *d* ]]; then
echo "(d) latency at 5000 messages/s for 10 s, produce -> committed prediction: stream -> feature table (9 features) -> scorer"
# latency_run NAME CHAIN: a stream of NAME at 5000 messages/s for 10 s into
# a table (LIKE shape) with, when CHAIN is 1, a feature table and a scorer
# on it; sets l_p50, l_p99, l_max (ms from the send time in "ts" to the
# commit of the prediction, or of the row without the chain).
latency_run()
{
	local name=$1 chain=$2 target=$1
	kafka_create_topic "$name" 4
	q -c "CREATE TABLE $name (LIKE shape)"
	if [ "$chain" = 1 ]; then
		q -c "SELECT streamml.create_feature_table('${name}_f', '$name', '$SPEC9')" \
		  -c "SELECT streamml.create_scorer('${name}_up', '${name}_f', 'up', '{\"into\": \"${name}_preds\", \"key\": \"id\"}')" >/dev/null
		target=${name}_preds
	fi
	q -c "SELECT streamml.create_stream('$name', '$name', '$KAFKA_BROKERS', '$name', 'json', '{\"start\": \"latest\"}')" >/dev/null
	until [ "$(q -c "SELECT count(*) FROM streamml.offsets o JOIN streamml.streams s ON s.id = o.stream_id WHERE s.name = '$name'")" = 4 ]; do
		sleep 0.1
	done
	perl -MTime::HiRes=time,sleep -e '
		$| = 1;
		my ($rate, $secs) = @ARGV;
		my $t0 = time;
		my ($sent, $total) = (0, $rate * $secs);
		my %p = map { $_ => 100 + $_ } 0 .. 49;
		while ($sent < $total) {
			my $due = int((time - $t0) * $rate) + 1;
			$due = $total if $due > $total;
			while ($sent < $due) {
				$sent++;
				my $k = $sent % 50;
				$p{$k} += rand() - 0.5;
				printf qq(S%d\t{"id": %d, "symbol": "S%d", "ts": %.6f, "price": %.4f, "qty": 1, "notional": %.4f}\n),
					$k, $sent, $k, time, $p{$k}, $p{$k};
			}
			sleep 0.001;
		}' 5000 10 |
		kcat -P -b "$KAFKA_BROKERS" -t "$name" -K $'\t' -X linger.ms=1
	until [ "$(q -c "SELECT count(*) FROM $target")" = 50000 ]; do sleep 0.2; done
	read -r l_p50 l_p99 l_max < <(q -F ' ' -c "
		SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY c)::numeric, 1),
			   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY c)::numeric, 1),
			   round(max(c)::numeric, 1)
		  FROM (SELECT 1000 * extract(epoch FROM pg_xact_commit_timestamp(p.xmin) - l.ts) AS c
				  FROM $target p JOIN $name l USING (id)) x")
	q -c "SELECT streamml.drop_stream('$name')" >/dev/null
}
latency_run lat0 0
printf '    stream alone (anchor), produce -> committed row:                 p50 %s ms, p99 %s ms, max %s ms\n' \
	"$l_p50" "$l_p99" "$l_max"
latency_run lat1 1
printf '    stream -> features -> scorer, produce -> committed prediction:   p50 %s ms, p99 %s ms, max %s ms (goal p99 < 100 ms)\n' \
	"$l_p50" "$l_p99" "$l_max"
q -F ' ' -c "SELECT round(mean_batch_time::numeric, 2) FROM streamml.feature_tables WHERE name = 'lat1_f'" |
	{ read -r ms; printf '    feature table: %s ms per statement (stream batch) on average\n' "$ms"; }
printf '    anchor: Spark micro-batch with a 5 s trigger (seeds 003/004): ~2500 ms on average, 5000 ms at worst, before processing\n'
fi
echo "    load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (2 shared cores: other work takes them)"
