#!/usr/bin/env bash
# Runs every benchmark under test/bench (files named bench_*.sh), each on a
# throw-away server, and prints each figure beside its anchor.  Benchmarks
# are run by hand ("make bench"), never by the test suite.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash test/install-deps.sh --bench
make -s tmp-install
for b in test/bench/bench_*.sh; do
	if [ -n "${BENCH:-}" ] && [[ "$b" != *"$BENCH"* ]]; then continue; fi
	echo "=== $b"
	bash "$b"
done
