#!/usr/bin/env bash
# Installs, from Debian 12's own archive, whatever pg_streamml needs to build,
# test and run its demo, and nothing that is already there.  Used by both
# README commands (make demo, make test) and by CI.  Runs apt-get as root, or
# through sudo for an ordinary user.
#
#   test/install-deps.sh            build, test and demo dependencies
#   test/install-deps.sh --bench    also scikit-learn, the benchmarks' anchor
set -euo pipefail

packages=(
	make gcc
	postgresql-15 postgresql-server-dev-15 postgresql-15-cron
	librdkafka-dev kcat
	libipc-run-perl
	libxgboost-dev python3-xgboost python3-sklearn
	python3 gnuplot-nox chromium docker-compose
)
# Citus's build dependencies, when its source is there for the scale-out
# tests (Makefile: make citus).
if ls "$(dirname "$0")"/../../shared/vendor/citus-*.tar.gz >/dev/null 2>&1; then
	packages+=(liblz4-dev libzstd-dev libkrb5-dev)
fi
if [ "${1:-}" = "--bench" ]; then
	packages+=(python3-sklearn python3-psycopg2 bc)
fi

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
	sudo=()
elif command -v sudo >/dev/null; then
	sudo=(sudo)
else
	echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
