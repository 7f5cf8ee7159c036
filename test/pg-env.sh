# pg-env.sh — sourced by the demo and the benchmarks: starts a throw-away
# PostgreSQL server with pg_streamml and pg_cron preloaded, from the private
# install in tmp_install/ (made by "make tmp-install"), and stops it.
#
#   pg_env_start ["extra postgresql.conf lines"]
#       exports PGHOST, PGPORT, PGUSER, PGDATABASE for psql and friends
#   pg_env_stop
#
# The server runs as an unprivileged user when the caller is root (postgres,
# or STREAMML_TEST_USER): PostgreSQL refuses to run as root.

pg_env_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Runs a server-side command as the user that owns the data directory.
pg_env_as_owner()
{
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "${STREAMML_TEST_USER:-postgres}" -- "$@"
	else
		"$@"
	fi
}

# Initialises and starts the throw-away server.
pg_env_start()
{
	local bindir="$pg_env_top/tmp_install$(pg_config --bindir)"
	[ -x "$bindir/postgres" ] || bindir=$(pg_config --bindir)
	PG_ENV_BINDIR=$bindir
	PG_ENV_DIR=$(mktemp -d /tmp/pg_streamml-server.XXXXXX)
	chmod 755 "$PG_ENV_DIR"
	[ "$(id -u)" -eq 0 ] && chown "${STREAMML_TEST_USER:-postgres}" "$PG_ENV_DIR"
	export PGHOST=$PG_ENV_DIR PGPORT=${PGPORT:-54329} PGDATABASE=postgres
	PGUSER=$(pg_env_as_owner id -un)
	export PGUSER
	pg_env_as_owner "$bindir/initdb" -D "$PG_ENV_DIR/data" -A trust \
		--no-sync >"$PG_ENV_DIR/initdb.log" 2>&1 ||
		{ cat "$PG_ENV_DIR/initdb.log" >&2; return 1; }
	pg_env_as_owner tee -a "$PG_ENV_DIR/data/postgresql.conf" >/dev/null <<EOC
shared_preload_libraries = 'pg_streamml,pg_cron'
cron.database_name = 'postgres'
# no TCP (listen_addresses below), so pg_cron runs its jobs in background
# workers instead of connecting to localhost, which would fail every job
cron.use_background_workers = on
listen_addresses = ''
unix_socket_directories = '$PG_ENV_DIR'
port = $PGPORT
max_worker_processes = 32
${1:-}
EOC
	pg_env_as_owner "$bindir/pg_ctl" -D "$PG_ENV_DIR/data" -w \
		-l "$PG_ENV_DIR/server.log" start >/dev/null ||
		{ cat "$PG_ENV_DIR/server.log" >&2; return 1; }
}

# Stops the throw-away server and removes its files.
pg_env_stop()
{
	[ -n "${PG_ENV_DIR:-}" ] || return 0
	pg_env_as_owner "$PG_ENV_BINDIR/pg_ctl" -D "$PG_ENV_DIR/data" -m fast \
		stop >/dev/null 2>&1 || true
	rm -rf "$PG_ENV_DIR"
	PG_ENV_DIR=
}
