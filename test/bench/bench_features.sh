#!/usr/bin/env bash
# Windowed-feature aggregates against the built-ins, measured in the same
# run on a throw-away server ("make bench BENCH=features").
#
#   - sliding ROWS frame of 1000 rows over 1M rows: rolling_mean beside
#     avg(float8), rolling_stddev beside stddev_samp(float8) (both restart
#     for every row: no inverse transition), count() as the floor that the
#     window machinery itself costs;
#   - a 30-second RANGE frame over 1M timestamped ticks (~300 rows a frame);
#   - rolling_max beside max(float8) over 200k rows;
#   - exactness after sliding over 1M rows of 1e9 plus 23-bit noise (exact
#     in float8 and in numeric), against the numeric aggregates: the maximum
#     relative error of ours and of the built-in float8 aggregate.
#
# The built-ins take minutes here (that is the point); the whole run ~4 min.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/pg-env.sh
trap pg_env_stop EXIT
pg_env_start "work_mem = '256MB'
jit = off
max_parallel_workers_per_gather = 0"

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

q <<'SQL'
CREATE EXTENSION pg_streamml;
-- Seconds taken by a query, its result discarded.
CREATE FUNCTION bench_time(query text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	EXECUTE query;
	RETURN extract(epoch FROM clock_timestamp() - t0);
END
$$;
-- 1M prices: 1e9 plus noise k * 2^-23, k < 2^23: 53 bits, exact in float8.
CREATE TABLE prices AS
SELECT i AS id, xn, xn::float8 AS x
FROM (SELECT i, 1e9 + ((i::bigint * 2654435761) % 8388608) * 0.00000011920928955078125 AS xn
	  FROM generate_series(1, 1000000) i) s;
-- 1M ticks of 10 symbols, 10 ticks a second in all, irregular spacing.
CREATE TABLE ticks AS
SELECT i AS id, 'S' || (i % 10) AS symbol,
	   '2024-01-01 00:00:00+00'::timestamptz + (i * 100 + (i::bigint * 7919) % 97) * interval '1 ms' AS ts,
	   100 + ((i::bigint * 2654435761) % 10000) / 100.0 AS price
FROM generate_series(1, 1000000) i;
VACUUM ANALYZE prices;
VACUUM ANALYZE ticks;
SQL

# Times one window aggregate over a frame; prints seconds.
wtime()
{
	local agg=$1 table=$2 frame=$3 limit=${4:-}
	q -c "SELECT round(bench_time(\$q\$SELECT sum(r) FROM (SELECT $agg OVER w AS r FROM $table
		WINDOW w AS ($frame) $limit) s\$q\$)::numeric, 3)"
}

# Prints ours beside the built-in and the ratio.
line()
{
	local what=$1 ours=$2 theirs=$3
	printf '%-58s %9.3f s  vs %9.3f s  = %6.1fx\n' "$what" "$ours" "$theirs" \
		"$(awk -v a="$theirs" -v b="$ours" 'BEGIN { print a / b }')"
}

rows='ORDER BY id ROWS BETWEEN 999 PRECEDING AND CURRENT ROW'
range="PARTITION BY symbol ORDER BY ts RANGE BETWEEN '30 seconds' PRECEDING AND CURRENT ROW"

echo "sliding frame of 1000 rows over 1M rows (ours vs built-in):"
floor=$(wtime 'count(x)' prices "$rows")
m=$(wtime 'streamml.rolling_mean(x)' prices "$rows")
a=$(wtime 'avg(x)' prices "$rows")
line "  rolling_mean vs avg(float8)" "$m" "$a"
s=$(wtime 'streamml.rolling_stddev(x)' prices "$rows")
b=$(wtime 'stddev_samp(x)' prices "$rows")
line "  rolling_stddev vs stddev_samp(float8)" "$s" "$b"
printf '  (count(), which has an inverse: %.3f s)\n' "$floor"

echo "30-second RANGE frame per symbol over 1M ticks (~30 rows a frame):"
m=$(wtime 'streamml.rolling_mean(price)' ticks "$range")
a=$(wtime 'avg(price)' ticks "$range")
line "  rolling_mean vs avg(float8)" "$m" "$a"
s=$(wtime 'streamml.rolling_stddev(price)' ticks "$range")
b=$(wtime 'stddev_samp(price)' ticks "$range")
line "  rolling_stddev vs stddev_samp(float8)" "$s" "$b"
range_all="ORDER BY ts RANGE BETWEEN '30 seconds' PRECEDING AND CURRENT ROW"
echo "30-second RANGE frame over all 1M ticks (~300 rows a frame):"
s=$(wtime 'streamml.rolling_stddev(price)' ticks "$range_all")
b=$(wtime 'stddev_samp(price)' ticks "$range_all")
line "  rolling_stddev vs stddev_samp(float8)" "$s" "$b"

echo "sliding frame of 1000 rows over 200k rows:"
m=$(wtime 'streamml.rolling_max(x)' prices "$rows" 'LIMIT 200000')
a=$(wtime 'max(x)' prices "$rows" 'LIMIT 200000')
line "  rolling_max vs max(float8)" "$m" "$a"
m=$(wtime 'streamml.rolling_slope(x, id::float8)' prices "$rows" 'LIMIT 200000')
a=$(wtime 'regr_slope(x, id::float8)' prices "$rows" 'LIMIT 200000')
line "  rolling_slope vs regr_slope(float8, float8)" "$m" "$a"

echo "max relative error after sliding a 1000-row frame over 1M rows of 1e9 + noise,"
echo "against numeric (ours, then the built-in float8 aggregate):"
q <<SQL | sed 's/^/  /'
SELECT unnest(ARRAY[
	   format('rolling_mean   %s    avg(float8)         %s',
			  to_char(o.me, '9.99EEEE'), to_char(b.me, '9.99EEEE')),
	   format('rolling_stddev %s    stddev_samp(float8) %s',
			  to_char(o.se, '9.99EEEE'), to_char(b.se, '9.99EEEE'))])
FROM (SELECT max(abs(m - mn) / mn) AS me, max(abs(s - sn) / sn) AS se
	  FROM (SELECT streamml.rolling_mean(x) OVER w AS m, avg(xn) OVER w AS mn,
				   streamml.rolling_stddev(x) OVER w AS s, stddev_samp(xn) OVER w AS sn
			FROM prices WINDOW w AS ($rows)) r
	  WHERE sn > 0) o,
	 -- the built-ins restart for every row, so their error does not grow
	 -- with the slide: 20000 rows show it
	 (SELECT max(abs(m - mn) / mn) AS me, max(abs(s - sn) / sn) AS se
	  FROM (SELECT avg(x) OVER w AS m, avg(xn) OVER w AS mn,
				   stddev_samp(x) OVER w AS s, stddev_samp(xn) OVER w AS sn
			FROM prices WHERE id <= 20000 WINDOW w AS ($rows)) r
	  WHERE sn > 0) b;
SQL
