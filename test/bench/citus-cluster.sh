# citus-cluster.sh: a loopback Citus cluster for the Citus benchmarks (a
# coordinator and two workers, each its own server of tmp_install on this
# machine, citus, pg_streamml and pg_cron preloaded, pg_streamml created).
# Source it from bash, do not run it:
#
#   source test/bench/citus-cluster.sh
#   citus_cluster_start || exit 0    # 1 (and a line saying why) without Citus
#   q -c "SELECT ..."                # psql on the coordinator
#   trap citus_cluster_stop EXIT
#
# Exports PGHOST, PGDATABASE and PGUSER; CITUS_PORTS holds the three ports
# (coordinator first; CITUS_PORT_BASE, default 54431, and the next two),
# CITUS_DIR the data directories' parent.
_citus_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
_citus_bindir="$_citus_top/tmp_install$(pg_config --bindir)"
_citus_base=${CITUS_PORT_BASE:-54431}
CITUS_PORTS=($_citus_base $((_citus_base + 1)) $((_citus_base + 2)))

# Runs a command as the servers' owner (root cannot run PostgreSQL).
citus_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u "${STREAMML_TEST_USER:-postgres}" -- "$@"; else "$@"; fi
}

# psql on the coordinator, unaligned, quiet.
q() { psql -qXAt -v ON_ERROR_STOP=1 -p "${CITUS_PORTS[0]}" "$@"; }

# Starts the three servers and makes the cluster; EXTRA_CONF lines are
# added to each postgresql.conf.
citus_cluster_start() {
	if [ ! -f "$_citus_top/tmp_install$(pg_config --pkglibdir)/citus.so" ]; then
		echo "$(basename "$0"): skipped: no Citus in tmp_install (make citus, then make tmp-install)"
		return 1
	fi
	CITUS_DIR=$(mktemp -d /tmp/pg_streamml-citus-bench.XXXXXX)
	chmod 755 "$CITUS_DIR"
	[ "$(id -u)" -eq 0 ] && chown "${STREAMML_TEST_USER:-postgres}" "$CITUS_DIR"
	for i in 0 1 2; do
		citus_as_owner "$_citus_bindir/initdb" -D "$CITUS_DIR/n$i" -A trust --no-sync >/dev/null
		citus_as_owner tee -a "$CITUS_DIR/n$i/postgresql.conf" >/dev/null <<EOC
shared_preload_libraries = 'citus,pg_streamml,pg_cron'
cron.database_name = 'postgres'
listen_addresses = '127.0.0.1'
unix_socket_directories = '$CITUS_DIR'
port = ${CITUS_PORTS[$i]}
max_worker_processes = 32
max_prepared_transactions = 20
shared_buffers = 256MB
work_mem = 64MB
max_parallel_workers_per_gather = 0
citus.shard_count = 8
${EXTRA_CONF:-}
EOC
		citus_as_owner "$_citus_bindir/pg_ctl" -D "$CITUS_DIR/n$i" -w -l "$CITUS_DIR/n$i.log" start >/dev/null
	done
	export PGHOST=$CITUS_DIR PGDATABASE=postgres
	PGUSER=$(citus_as_owner id -un)
	export PGUSER
	for i in 0 1 2; do psql -qX -p "${CITUS_PORTS[$i]}" -c 'CREATE EXTENSION citus' >/dev/null; done
	q -c "SELECT citus_set_coordinator_host('127.0.0.1', ${CITUS_PORTS[0]})" \
		-c "SELECT citus_add_node('127.0.0.1', ${CITUS_PORTS[1]})" \
		-c "SELECT citus_add_node('127.0.0.1', ${CITUS_PORTS[2]})" \
		-c 'CREATE EXTENSION pg_streamml' >/dev/null
}

# Stops the servers and removes their directories.
citus_cluster_stop() {
	[ -n "${CITUS_DIR:-}" ] || return 0
	for i in 0 1 2; do
		citus_as_owner "$_citus_bindir/pg_ctl" -D "$CITUS_DIR/n$i" -m fast stop >/dev/null 2>&1 || true
	done
	rm -rf "$CITUS_DIR"
	CITUS_DIR=
}
