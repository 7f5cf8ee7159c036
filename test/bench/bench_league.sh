#!/usr/bin/env bash
# Benchmark of the league (issue #12): train_league with seed 004's four
# candidates (ElasticNet, tree, forest, gbt) on N rows (default 1M) x 4
# features, against its anchor measured in the same run: the sum of the four
# candidates' single runs (train_linreg, train_tree, train_forest, train_gbt
# with the league's options for them).  Goal: the league takes at most that
# sum + 10% (what it adds: the split, the leaderboard, its subtransactions).
#   BENCH_ROWS=200000 bash test/bench/bench_league.sh   for a quicker run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../pg-env.sh"
trap pg_env_stop EXIT
rows=${BENCH_ROWS:-1000000}
threads=${BENCH_THREADS:-$(nproc)}
pg_env_start "max_parallel_workers_per_gather = 2
shared_buffers = 512MB
work_mem = 64MB"
psql -qX -c 'CREATE EXTENSION pg_streamml'

# Seed 004's shape: a time-ordered series, four features, a numeric target.
psql -qX <<EOSQL
SELECT setseed(0.4);
CREATE TABLE bl AS
SELECT i AS ts, x1, x2, x3, x4,
	   sin(3 * x1) + x2 * x3 - abs(x4) + 0.5 * x1 + random() * 0.3 AS y
  FROM (SELECT i, random() * 2 - 1 AS x1, random() * 2 - 1 AS x2,
			   random() * 2 - 1 AS x3, random() * 2 - 1 AS x4
		  FROM generate_series(1, $rows) i) s;
VACUUM ANALYZE bl;
EOSQL
feats="ARRAY['x1','x2','x3','x4']"
common="\"test_fraction\": 0.2, \"order_by\": \"ts\", \"deploy\": \"never\", \"deploy_metric\": \"rmse\""

# One round: the four single runs, then the league (a new model each time,
# so that no deployed version is scored), each timed by psql.
round() {
	psql -qXAt -c '\timing on' \
		-c "SELECT 1 FROM streamml.train_linreg('s_en$1', 'bl', 'y', $feats, '{$common, \"l1\": 0.08, \"l2\": 0.02}')" \
		-c "SELECT 1 FROM streamml.train_tree('s_tree$1', 'bl', 'y', $feats, '{$common, \"threads\": $threads}')" \
		-c "SELECT 1 FROM streamml.train_forest('s_forest$1', 'bl', 'y', $feats, '{$common, \"threads\": $threads}')" \
		-c "SELECT 1 FROM streamml.train_gbt('s_gbt$1', 'bl', 'y', $feats, '{$common, \"threads\": $threads, \"trees\": 15, \"max_depth\": 5}')" \
		-c "SELECT count(*) FROM streamml.train_league('league$1', 'bl', 'y', $feats, '{\"order_by\": \"ts\", \"threads\": $threads}')" |
		sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{ printf "%.3f ", $1 / 1000 }'
}
r1=$(round 1)
r2=$(round 2)
read -r a1 b1 c1 d1 l1 <<<"$r1"
read -r a2 b2 c2 d2 l2 <<<"$r2"
min() { echo "$1 $2" | awk '{ print ($1 < $2) ? $1 : $2 }'; }
en=$(min "$a1" "$a2"); tr=$(min "$b1" "$b2"); fo=$(min "$c1" "$c2"); gb=$(min "$d1" "$d2")
lg=$(min "$l1" "$l2")
sum=$(echo "$en + $tr + $fo + $gb" | bc -l)

echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; $rows rows x 4 features, $threads threads)"
printf '%-52s %8.3f s\n' "train_linreg elasticnet (l1 0.08, l2 0.02)" "$en"
printf '%-52s %8.3f s\n' "train_tree (depth 8)" "$tr"
printf '%-52s %8.3f s\n' "train_forest (20 trees, depth 10)" "$fo"
printf '%-52s %8.3f s\n' "train_gbt (15 rounds, depth 5)" "$gb"
printf '%-52s %8.3f s   anchor (sum of the four) %8.3f s   ratio %s (goal <= 1.10)\n' \
	"train_league, the same four candidates" "$lg" "$sum" "$(echo "scale=3; $lg / $sum" | bc -l)"
echo "(each time the best of 2 rounds; a round runs the four single runs, then the league)"
