# lib_stream.sh: what the stream benchmarks share (bench_ingest.sh,
# bench_scorer.sh, bench_feature_table.sh, bench_outcomes_stream.sh).  Source it after pg_env_start
# and kafka-env.sh, with q() defined (psql -X -q -At -v ON_ERROR_STOP=1):
#
#   stream_rate_create     makes the SQL function stream_rate(table)
#   stream_run N TOPIC TABLE
#                          loads the (already produced) topic into TABLE with a
#                          stream of $WORKERS workers, waits for N rows, stops
#                          it, checks N rows with N distinct ids and no dead
#                          letter, sets s_rate (rows/s), s_secs, s_batches and
#                          s_cpu_us (the stream's workers' CPU time, user +
#                          system, per row in microseconds: what the machine's
#                          load disturbs least)
#
# STREAM_RUN_LIKE=shape makes TABLE (LIKE shape) first if it does not exist;
# STREAM_RUN_TIMEOUT (seconds, default 900) bounds the wait.

# stream_rate(t): rows/s of a stream's table from the commit times of its
# batches (track_commit_timestamp): rows after the first batch over the
# time from the first commit to the last.
stream_rate_create()
{
	q <<'SQL'
CREATE FUNCTION stream_rate(t regclass, OUT rows bigint, OUT batches bigint,
		OUT seconds float8, OUT rows_per_s float8) LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format($q$
		WITH b AS (SELECT pg_xact_commit_timestamp(xmin) AS at, count(*) AS n
				   FROM %s GROUP BY xmin)
		SELECT (SELECT sum(n) FROM b)::bigint, (SELECT count(*) FROM b),
			   extract(epoch FROM max(at) - min(at)),
			   (sum(n) - (SELECT n FROM b ORDER BY at LIMIT 1))
				/ extract(epoch FROM max(at) - min(at))
		FROM b$q$, t) INTO rows, batches, seconds, rows_per_s;
END
$$;
SQL
}

stream_run()
{
	local n=$1 topic=$2 table=$3
	if [ -n "${STREAM_RUN_LIKE:-}" ]; then
		q -c "SET client_min_messages = warning" \
			-c "CREATE TABLE IF NOT EXISTS $table (LIKE $STREAM_RUN_LIKE)"
	fi
	q -c "SELECT streamml.create_stream('$table', '$table', '$KAFKA_BROKERS', '$topic',
		'json', '{\"workers\": ${WORKERS:-1}}')" >/dev/null
	local deadline=$((SECONDS + ${STREAM_RUN_TIMEOUT:-900}))
	until [ "$(q -c "SELECT coalesce(sum(rows_ingested + rows_rejected), 0) >= $n
			FROM streamml.stream_stats WHERE stream = '$table'")" = t ]; do
		((SECONDS < deadline)) || { echo "stream $table stalled" >&2; exit 1; }
		sleep 0.2
	done
	# the workers' CPU time, read before they stop
	local pid ticks=0
	for pid in $(q -c "SELECT DISTINCT worker_pid FROM streamml.stream_stats
			WHERE stream = '$table' AND worker_pid IS NOT NULL"); do
		[ -r "/proc/$pid/stat" ] &&
			ticks=$((ticks + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
	done
	s_cpu_us=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$n" \
		'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
	q -c "SELECT streamml.stop_stream('$table')" >/dev/null
	local check
	check=$(q -c "SELECT count(*), count(DISTINCT id), (SELECT count(*) FROM streamml.dead_letters)
		FROM $table")
	[ "$check" = "$n|$n|0" ] || { echo "stream $table loaded $check, expected $n|$n|0" >&2; exit 1; }
	read -r s_rate s_secs s_batches < <(q -F ' ' -c "SELECT round(rows_per_s),
		round(seconds::numeric, 2), batches FROM stream_rate('$table')")
}
