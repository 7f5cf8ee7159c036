#!/usr/bin/env bash
# The pg_streamml demos ("make demo", "make demo DEMO=games|classify"): the
# project's three seed pipelines, each end to end on real data, on a
# throw-away server and the dev Kafka broker (or the Kafka in
# KAFKA_BROKERS), each ending with a printed summary and a self-contained
# HTML report with charts (demo-report/<demo>.html).
#
#   crypto    (default, seed 004) real Binance trades replayed through Kafka,
#             quality gate, per-symbol features, a per-symbol model of the
#             price 60 s ahead scored on every arriving trade, outcomes and
#             live RMSE, a watcher that retrains (test/demo/crypto.sh)
#   games     (seed 003) the Kaggle video-game sales with their N/A rows as
#             CSV through Kafka, a sales model, each game scored on arrival
#             (test/demo/games.sh)
#   classify  (seed 000) the breast-cancer set row by row, a logistic
#             regression trained on the first rows, later rows scored on
#             arrival, labels after them, live accuracy (test/demo/classify.sh)
#
# Settings (environment): DEMO_SPEED (crypto: replay speed-up, default 120,
# the two hours in about a minute), DEMO_LIMIT (crypto: replay only so many
# real trades), DEMO_GAMES_RATE (games: games a second, default 250),
# DEMO_CLASSIFY_RATE (classify: messages a second, default 60),
# DEMO_OUT (report directory, default demo-report/), DEMO_TRACE=1 (trace
# every command with its time, to see where a run spends it),
# DEMO_NO_BUILD=1 (use the build in tmp_install as it is; for the tests),
# DEMO_AFTER (a command run against the demo's database at the end).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

demo=${1:-${DEMO:-crypto}}
case "$demo" in
crypto | games | classify) ;;
*)
	echo "demo: unknown demo \"$demo\" (crypto, games or classify)" >&2
	exit 2
	;;
esac
DEMO_OUT=${DEMO_OUT:-$top/demo-report}
mkdir -p "$DEMO_OUT"
DEMO_OUT=$(cd "$DEMO_OUT" && pwd)

say() { printf '\n== %s  [%d s]\n' "$*" "$((SECONDS - demo_started))"; }
sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
demo_started=$SECONDS
[ -n "${DEMO_TRACE:-}" ] && { PS4='+ ${EPOCHREALTIME} '; set -x; }

if [ -z "${DEMO_NO_BUILD:-}" ]; then
	bash test/install-deps.sh
	say "building pg_streamml and installing it into tmp_install/"
	# without the LLVM bitcode that PGXS builds beside every object for
	# JIT inlining (with_llvm=no): the demo does not need it, and it
	# doubles the build on 2 cores
	make -s -j"$(nproc)" with_llvm=no >/dev/null
	make -s tmp-install with_llvm=no >/dev/null
fi

source test/pg-env.sh
source test/kafka-env.sh
demo_bg_pids=()
demo_cleanup()
{
	local p
	for p in "${demo_bg_pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	pg_env_stop
	kafka_env_stop
}
trap demo_cleanup EXIT
pg_env_start 'track_commit_timestamp = on'
say "throw-away PostgreSQL server up (socket $PGHOST, port $PGPORT)"
echo "Kafka bootstrap: $KAFKA_BROKERS"
sql -c 'CREATE EXTENSION pg_streamml' -c 'CREATE EXTENSION pg_cron'

sql -f test/demo/common.sql >/dev/null
source test/demo/report.sh
source "test/demo/$demo.sh"

# DEMO_AFTER: a command run against the demo's database before it goes
# (test/t/070_demo_reports.pl checks the Grafana panels' SQL this way).
if [ -n "${DEMO_AFTER:-}" ]; then
	say "DEMO_AFTER: $DEMO_AFTER"
	bash -c "$DEMO_AFTER"
fi

say "demo $demo done in $((SECONDS - demo_started)) s; report: $DEMO_OUT/$demo.html"
