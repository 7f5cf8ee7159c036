#!/usr/bin/env bash
# The default 'error' monitor of a classifier, on a throw-away server
# ("make bench BENCH=monitor"): detection delay and false alarms, beside
# River's DDM (the issue's first idea for the default) in the same run.
#
#   - an error rate stepping from 0.5 to 0.7 at row 1001, 200 seeded
#     streams of 3000 bits: delay = first detection after row 1000, minus
#     1001; anchors: River's documented DDM delay (334 on its own example
#     stream, reproduced here) and the issue's goal, 1.5x the CUSUM bound
#     for the step, about 160 rows;
#   - a stationary stream of 1M bits (p = 0.5): detections (goal: none).
#
# The detector's parameters are read from a monitor created with the
# defaults (streamml.monitors.detector_params), so the figures are those
# of what create_monitor installs; a monitor runs the same detector code
# as drift_detect, one update per outcome.  Streams are drawn from
# hashint8: every run sees the same values.  A few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/pg-env.sh
trap pg_env_stop EXIT
pg_env_start "work_mem = '1GB'
jit = off
max_parallel_workers_per_gather = 0"

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

q <<'SQL'
CREATE EXTENSION pg_streamml;
CREATE FUNCTION u01(k bigint) RETURNS float8 IMMUTABLE LANGUAGE sql AS $$
	SELECT ((hashint8(k)::bigint + 2147483648) + 0.5) / 4294967296.0
$$;
CREATE TABLE step AS
SELECT s AS seed, i, (u01(s * 1000003 + i) < CASE WHEN i <= 1000 THEN 0.5 ELSE 0.7 END)::int::float8 AS x
FROM generate_series(1, 200) s, generate_series(1, 3000) i;
CREATE TABLE still AS
SELECT i, (u01(7000000000 + i) < 0.5)::int::float8 AS x FROM generate_series(1, 1000000) i;
CREATE TABLE drift_streams (stream text, i int, x float8);
-- the default monitor's detector
CREATE TABLE t AS SELECT i, (i % 7)::float8 AS x, ((i % 7) > 3) <> (i % 5 = 0) AS y FROM generate_series(1, 100) i;
DO $$ BEGIN
	PERFORM streamml.train_logreg('bench_clf', 't', 'y', ARRAY['x']);
	PERFORM streamml.create_monitor('bench_default', 'bench_clf', 'error');
END $$;
CREATE TABLE d AS SELECT detector, detector_params FROM streamml.monitors WHERE name = 'bench_default';
SELECT streamml.drop_model('bench_clf');
SQL
q -c "\\copy drift_streams FROM 'test/data/drift_streams.csv' CSV HEADER"
echo "default 'error' monitor of a classifier: $(q -c "SELECT detector || ' ' || detector_params FROM d")"
echo
echo "River's DDM example (error rate 0.5 -> 0.7 at index 1000, random.Random(42)):"
q -c "SELECT format('  ddm delay %s rows (River prints \"Change detected at index 1334\": 334)',
			(streamml.drift_detect('ddm', x ORDER BY i)->'detections'->>0)::int - 1001)
	  FROM drift_streams WHERE stream = 'bits_42'"
echo
echo "error rate 0.5 -> 0.7 at row 1001, 200 streams of 3000 bits (goal: delay <= ~160):"
q <<'SQL'
WITH r AS (
	SELECT 'default' AS m, seed, streamml.drift_detect(d.detector, x, d.detector_params ORDER BY i)->'detections' AS det
	  FROM step, d GROUP BY seed, d.detector, d.detector_params
	UNION ALL
	SELECT 'ddm (River)', seed, streamml.drift_detect('ddm', x ORDER BY i)->'detections'
	  FROM step GROUP BY seed
), per AS (
	SELECT m, seed,
		   (SELECT min(p::int) FROM jsonb_array_elements_text(det) p WHERE p::int > 1000) - 1001 AS delay,
		   (SELECT count(*) FROM jsonb_array_elements_text(det) p WHERE p::int <= 1000) AS false_alarms
	  FROM r
)
SELECT format('  %-12s delay mean %5s  median %5s  p90 %5s  (missed %s of 200)   false alarms before the change: %s in 200 x 1000 rows',
			  m, round(avg(delay)), percentile_disc(0.5) WITHIN GROUP (ORDER BY delay),
			  percentile_disc(0.9) WITHIN GROUP (ORDER BY delay),
			  count(*) FILTER (WHERE delay IS NULL), sum(false_alarms))
  FROM per GROUP BY m ORDER BY m;
SQL
echo
echo "stationary stream of 1M bits, p = 0.5 (goal: no detection):"
q <<'SQL'
SELECT format('  %-12s %s detections in 1M rows', 'default',
			  jsonb_array_length(streamml.drift_detect(d.detector, x, d.detector_params ORDER BY i)->'detections'))
  FROM still, d GROUP BY d.detector, d.detector_params;
SELECT format('  %-12s %s detections in 1M rows', 'ddm (River)',
			  jsonb_array_length(streamml.drift_detect('ddm', x ORDER BY i)->'detections'))
  FROM still;
SQL
echo "  (load average during the run: $(cut -d' ' -f1-3 /proc/loadavg))"
