#!/usr/bin/env bash
# Training on Citus (issue #14): train_logreg on ROWS rows (default 10M) x
# 10 features of a table distributed over a loopback cluster (a coordinator
# and two workers, each its own server on this machine), against the same
# rows in a local table of one server, each figure beside its anchor:
#   - the wall time, distributed against one node (this machine has few
#     cores, so the speed-up itself is for real clusters);
#   - the coordinator's share: the CPU time of the coordinator's backend over
#     the run's wall time, on ROWS and on ROWS/4 rows (the coordinator's work
#     must not grow with the rows);
#   - the bytes the workers send per pass (one state per shard) against the
#     bytes of the rows.
# Needs Citus in tmp_install (make citus; make tmp-install).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rows=${ROWS:-10000000}
source "$here/citus-cluster.sh"
citus_cluster_start || exit 0
trap citus_cluster_stop EXIT

# The data, as in bench_ml.sh: 10 features and a label drawn from a
# logistic model; the local table first, then the same rows distributed.
make_tables() { # suffix, rows
	q <<EOSQL >/dev/null
SELECT setseed(0.42);
CREATE TABLE local_$1 AS
SELECT i AS id, f, random() < 1 / (1 + exp(-(0.3 + f[1] - 0.5 * f[2] + 0.25 * f[3]
	- 0.1 * f[4] + 0.8 * f[5] - f[6] + 0.05 * f[7] + 0.4 * f[8] - 0.3 * f[9] + 0.2 * f[10]))) AS y
  FROM (SELECT i, ARRAY(SELECT random() * 2 - 1 + 0 * i FROM generate_series(1, 10)) AS f
		  FROM generate_series(1, $2) i) s;
VACUUM ANALYZE local_$1;
CREATE TABLE dist_$1 (LIKE local_$1);
SELECT create_distributed_table('dist_$1', 'id');
INSERT INTO dist_$1 SELECT * FROM local_$1;
VACUUM ANALYZE dist_$1;
EOSQL
}
make_tables big "$rows"
make_tables small $((rows / 4))

# Trains one model; prints wall seconds and the coordinator backend's CPU
# seconds (utime + stime from /proc/PID/stat, in clock ticks).
train() { # table
	local tck out
	tck=$(getconf CLK_TCK)
	out=$(q <<EOSQL
SELECT pg_backend_pid() AS pid \gset
SELECT pg_catalog.split_part(pg_read_file('/proc/' || :pid || '/stat'), ' ', 14)::bigint
	 + pg_catalog.split_part(pg_read_file('/proc/' || :pid || '/stat'), ' ', 15)::bigint AS c0,
	   extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) FROM streamml.train_logreg('m_$1', '$1', 'y', ARRAY['f'], '{"l2": 0}') \g /dev/null
SELECT extract(epoch FROM clock_timestamp()) - :t0,
	   (pg_catalog.split_part(pg_read_file('/proc/' || :pid || '/stat'), ' ', 14)::bigint
	  + pg_catalog.split_part(pg_read_file('/proc/' || :pid || '/stat'), ' ', 15)::bigint - :c0)::float8 / $tck;
EOSQL
)
	echo "$out" | tail -n1 | tr '|' ' '
}
read -r t_local c_local < <(train local_big)
read -r t_dist c_dist < <(train dist_big)
read -r t_dist_s c_dist_s < <(train dist_small)
iters=$(q -c "SELECT iterations FROM streamml.model_versions WHERE model = 'm_dist_big'")
same=$(q -c "SELECT max(abs(a - b) / greatest(abs(b), 1e-300)) FROM
	(SELECT intercepts || coefficients AS c FROM streamml.model_versions WHERE model = 'm_dist_big') x,
	(SELECT intercepts || coefficients AS c FROM streamml.model_versions WHERE model = 'm_local_big') y,
	unnest(x.c, y.c) AS u(a, b)")

# Bytes per Newton pass: one irls_pass state per shard, as the text the
# worker sends (the state's bytea output), against the rows' tuple data.
q -c "CREATE AGGREGATE irls_state(float8, float8[], float8, float8[], text[], text) (
	SFUNC = streamml.irls_pass_transfn, STYPE = bytea)" >/dev/null
params="ARRAY[2, 0,0,0,0,0,0,0,0,0,0, 1,1,1,1,1,1,1,1,1,1, 0,0,0,0,0,0,0,0,0,0,0]::float8[]"
pass_bytes=$(q -c "SELECT sum(result::bigint) FROM run_command_on_shards('dist_big',
	\$\$SELECT octet_length(public.irls_state(y::int::float8, f, 1, $params, NULL, NULL)::text) FROM %s\$\$)")
row_bytes=$(q -c "SELECT sum(result::bigint) FROM run_command_on_shards('dist_big',
	\$\$SELECT sum(pg_column_size(f) + 1) FROM %s\$\$)")

ratio() { echo "scale=3; $1 / $2" | bc -l; }
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; $rows rows x 10 features, 8 shards on 2 workers)"
printf '%-62s %9.3f s   anchor %9.3f s   ratio %s\n' \
	"train_logreg, distributed vs one node (local table)" "$t_dist" "$t_local" "$(ratio "$t_dist" "$t_local")"
printf '%-62s %9.3f s   of     %9.3f s   share %s\n' \
	"coordinator backend CPU, distributed, $rows rows" "$c_dist" "$t_dist" "$(ratio "$c_dist" "$t_dist")"
printf '%-62s %9.3f s   of     %9.3f s   share %s\n' \
	"coordinator backend CPU, distributed, $((rows / 4)) rows" "$c_dist_s" "$t_dist_s" "$(ratio "$c_dist_s" "$t_dist_s")"
printf '%-62s %9.3f s   (one node, for reference)\n' \
	"coordinator backend CPU, local table, $rows rows" "$c_local"
printf '%-62s %9d B   rows   %9d B   ratio %s\n' \
	"bytes per pass (8 shard states) vs the rows' feature arrays" "$pass_bytes" "$row_bytes" \
	"$(awk -v a="$pass_bytes" -v b="$row_bytes" 'BEGIN { printf "%.1e", a / b }')"
echo "(passes per run: $iters; largest relative coefficient difference distributed vs one node: $same)"
