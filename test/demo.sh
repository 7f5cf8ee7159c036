#!/usr/bin/env bash
# The pg_streamml demo ("make demo"): on a throw-away PostgreSQL server and
# the dev Kafka broker (or the real Kafka in KAFKA_BROKERS), it creates the
# extension and round-trips a message through Kafka, saying what it does.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

say() { printf '\n== %s\n' "$*"; }

bash test/install-deps.sh
say "building pg_streamml and installing it into tmp_install/"
make -s -j"$(nproc)" >/dev/null
make -s tmp-install >/dev/null

source test/pg-env.sh
source test/kafka-env.sh
trap 'pg_env_stop; kafka_env_stop' EXIT
pg_env_start
say "throw-away PostgreSQL server up (socket $PGHOST, port $PGPORT)"
echo "Kafka bootstrap: $KAFKA_BROKERS"

say "CREATE EXTENSION pg_streamml"
psql -X -q -c "CREATE EXTENSION pg_streamml" \
	-c "SELECT streamml.version() AS pg_streamml_version"

say "round trip: produce a message with kcat, read it back with a librdkafka consumer"
kafka_create_topic streamml_demo 1
msg="{\"hello\": \"pg_streamml\", \"at\": $(date +%s)}"
printf '%s\n' "$msg" | kcat -q -b "$KAFKA_BROKERS" -t streamml_demo -P
got=$(kcat -q -b "$KAFKA_BROKERS" -t streamml_demo -C -o beginning -c 1 -e)
echo "produced: $msg"
echo "consumed: $got"
[ "$got" = "$msg" ] || { echo "demo: the message did not come back" >&2; exit 1; }

say "demo complete"
