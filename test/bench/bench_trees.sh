#!/usr/bin/env bash
# Benchmarks of the tree models (issue #12), each figure printed beside its
# anchor measured in the same run:
#   - train_gbt on N rows (default 1M) x 10 features from a table, 100
#     rounds of depth 6, against python3-xgboost's train on the same
#     training rows already in memory (a numpy array) with the same
#     parameters and threads (goal <= 1.3x), and against scikit-learn's
#     HistGradientBoostingClassifier at the same rounds and depth (goal:
#     faster); holdout AUC of all three (goal: within 0.002);
#   - predict_proba over the N rows read from the table against
#     python3-xgboost's inplace_predict over the same rows in a numpy array;
#   - peak memory (VmHWM) of the training backend.
#   BENCH_ROWS=200000 bash test/bench/bench_trees.sh   for a quicker run.
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

# The data: 10 uniform features, a boolean label from a nonlinear logistic
# model, made inside PostgreSQL with a fixed seed.
psql -qX <<EOSQL
SELECT setseed(0.12);
CREATE TABLE bt AS
SELECT i AS id, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10,
	   random() < 1 / (1 + exp(-(sin(3 * x1) + x2 * x3 - abs(x4) + 0.5 * x5 - 0.3 * x6 * x7 + 0.2 * x8))) AS y
  FROM (SELECT i, random() * 2 - 1 AS x1, random() * 2 - 1 AS x2, random() * 2 - 1 AS x3,
			   random() * 2 - 1 AS x4, random() * 2 - 1 AS x5, random() * 2 - 1 AS x6,
			   random() * 2 - 1 AS x7, random() * 2 - 1 AS x8, random() * 2 - 1 AS x9,
			   random() * 2 - 1 AS x10
		  FROM generate_series(1, $rows) i) s;
VACUUM ANALYZE bt;
EOSQL
opts="{\"trees\": 100, \"max_depth\": 6, \"threads\": $threads, \"test_fraction\": 0.2, \"order_by\": \"id\"}"
feats="ARRAY['x1','x2','x3','x4','x5','x6','x7','x8','x9','x10']"

# The best of three runs of train_gbt as psql's \timing sees it, and the
# peak memory of that backend (read from /proc/self/status by the backend
# itself; it trained three times, the peak is one run's).
out=$(psql -qXAt -c '\timing on' \
	-c "SELECT 1 FROM streamml.train_gbt('bgbt', 'bt', 'y', $feats, '$opts')" \
	-c "SELECT 1 FROM streamml.train_gbt('bgbt', 'bt', 'y', $feats, '$opts')" \
	-c "SELECT 1 FROM streamml.train_gbt('bgbt', 'bt', 'y', $feats, '$opts')" \
	-c '\timing off' \
	-c "SELECT 'hwm', substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s*([0-9]+)')")
tdb=$(echo "$out" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -g | head -1 | awk '{ printf "%.3f", $1 / 1000 }')
hwm=$(echo "$out" | sed -n 's/^hwm|//p' | awk '{ printf "%.0f", $1 / 1024 }')
auc_db=$(psql -qXAt -c "SELECT round((metrics->>'roc_auc')::numeric, 4) FROM streamml.model_versions WHERE model = 'bgbt' AND version = 3")
cutoff=$(psql -qXAt -c "SELECT data_cutoff FROM streamml.model_versions WHERE model = 'bgbt' AND version = 3")

# Serving: predict_proba over every row of the table, the row form.
tp=$(psql -qXAt -c 'SET max_parallel_workers_per_gather = 0' -c '\timing on' \
	-c "SELECT sum(streamml.predict_proba('bgbt', b)) FROM bt b" \
	-c "SELECT sum(streamml.predict_proba('bgbt', b)) FROM bt b" |
	sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -g | head -1 | awk '{ printf "%.3f", $1 / 1000 }')

# The anchors, on the same rows read into numpy before timing.
csv=$(mktemp /tmp/bench_trees.XXXXXX.csv)
chmod 666 "$csv"
psql -qX -c "\\copy (SELECT id, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, y::int FROM bt ORDER BY id) TO '$csv' CSV"
anchors=$(OMP_NUM_THREADS=$threads /usr/bin/python3 - "$csv" "$cutoff" "$threads" <<'EOPY'
import sys, time
import numpy as np
import xgboost as xgb
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
data = np.loadtxt(sys.argv[1], delimiter=",", dtype=np.float64)
cutoff, threads = float(sys.argv[2]), int(sys.argv[3])
X = data[:, 1:11].astype(np.float32)
y = data[:, 11]
train, test = data[:, 0] <= cutoff, data[:, 0] > cutoff
params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6,
          "eta": 0.3, "nthread": threads, "verbosity": 0}
best = None
for i in range(3):
    t = time.perf_counter()
    d = xgb.DMatrix(X[train], label=y[train], nthread=threads)
    b = xgb.train(params, d, num_boost_round=100)
    e = time.perf_counter() - t
    best = e if best is None else min(best, e)
auc_xgb = roc_auc_score(y[test], b.predict(xgb.DMatrix(X[test])))
tsk = None
for i in range(3):
    t = time.perf_counter()
    h = HistGradientBoostingClassifier(max_iter=100, max_depth=6, max_leaf_nodes=None,
                                       learning_rate=0.3, early_stopping=False,
                                       max_bins=255).fit(X[train], y[train])
    e = time.perf_counter() - t
    tsk = e if tsk is None else min(tsk, e)
auc_sk = roc_auc_score(y[test], h.predict_proba(X[test])[:, 1])
tpred = None
for i in range(3):
    t = time.perf_counter()
    p = b.inplace_predict(X)
    s = float(p.sum())
    e = time.perf_counter() - t
    tpred = e if tpred is None else min(tpred, e)
print("%.3f %.3f %.3f %.4f %.4f" % (best, tsk, tpred, auc_xgb, auc_sk))
EOPY
)
rm -f "$csv"
read -r txgb tsk tpred auc_xgb auc_sk <<<"$anchors"

ratio() { echo "scale=2; $1 / $2" | bc -l; }
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; $rows rows, $threads threads)"
printf '%-62s %8.3f s   anchor %8.3f s   ratio %s (goal <= 1.3)\n' \
	"train_gbt ${rows} x 10, 100 rounds depth 6 vs xgboost.train" "$tdb" "$txgb" "$(ratio "$tdb" "$txgb")"
printf '%-62s %8.3f s   anchor %8.3f s   ratio %s (goal < 1.0)\n' \
	"train_gbt vs scikit-learn HistGradientBoosting" "$tdb" "$tsk" "$(ratio "$tdb" "$tsk")"
printf '%-62s %8s     anchors %s (xgboost), %s (scikit-learn) (goal: within 0.002)\n' \
	"holdout AUC" "$auc_db" "$auc_xgb" "$auc_sk"
printf '%-62s %8.3f s   anchor %8.3f s   ratio %s (goal <= 1.0)\n' \
	"predict_proba ${rows} rows from a table vs inplace_predict" "$tp" "$tpred" "$(ratio "$tp" "$tpred")"
echo "peak memory of the training backend (VmHWM): ${hwm} MB; the dense float matrix is"
echo " $(echo "$rows * 10 * 4 / 1048576" | bc) MB (n x p x 4 bytes), XGBoost's copy and its histogram index come on top"
echo "(each time the best of 3 runs; python3-xgboost's time includes building its DMatrix, as ours does)"
