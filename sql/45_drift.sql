-- streamml.drift_detect: River's detectors, on River's own documented
-- examples (streams drawn by test/data/make_drift_streams.py with Python's
-- random module, exactly as the examples draw them), hand-checked cases,
-- parameter errors, NULLs and the state object.  River prints 0-based
-- indexes; drift_detect gives 1-based positions: River's index + 1.
CREATE TABLE drift_streams (stream text, i int, x float8);
\copy drift_streams FROM 'test/data/drift_streams.csv' CSV HEADER
CREATE TABLE kswin_expected (stream text, params jsonb, detections jsonb);
\copy kswin_expected FROM 'test/data/kswin_expected.csv' CSV HEADER

-- ADWIN's example: "Change detected at index 1023, input value: 4".
SELECT r->'detections' AS detections, r->'warnings' AS warnings
FROM (SELECT streamml.drift_detect('adwin', x ORDER BY i) AS r
	  FROM drift_streams WHERE stream = 'two_dists_12345') s;
SELECT x FROM drift_streams WHERE stream = 'two_dists_12345' AND i = 1023;
-- River's test_adwin_regression.py, test_multiple_drifts: [1023, 2015, 3007].
SELECT streamml.drift_detect('adwin', x ORDER BY i)->'detections'
FROM drift_streams WHERE stream = 'four_segments_42';

-- PageHinkley's example: "Change detected at index 1006, input value: 5".
SELECT streamml.drift_detect('page_hinkley', x ORDER BY i)->'detections'
FROM drift_streams WHERE stream = 'two_dists_12345';

-- KSWIN(alpha=0.0001, seed=42)'s example: "Change detected at index 1016,
-- input value: 6".
SELECT streamml.drift_detect('kswin', x, '{"alpha": 0.0001, "seed": 42}' ORDER BY i)->'detections'
FROM drift_streams WHERE stream = 'two_dists_12345';
SELECT x FROM drift_streams WHERE stream = 'two_dists_12345' AND i = 1016;
-- KSWIN against River's code run with Python's random and scipy's ks_2samp
-- (kswin_expected.csv): the pool and the set branches of random.sample,
-- a seed above 2^32, several detections and resets.
SELECT e.params, e.detections AS river,
	   (SELECT jsonb_agg(p::int - 1) FROM jsonb_array_elements_text(
			(SELECT streamml.drift_detect('kswin', x, e.params ORDER BY i)->'detections'
			 FROM drift_streams s WHERE s.stream = e.stream)) p) AS ours
FROM kswin_expected e ORDER BY e.stream, e.params::text;

-- DDM's example prints the first warning, then each change and the first
-- warning after it: "Warning detected at index 1084", "Change detected at
-- index 1334", "Warning detected at index 1492".
SELECT r->'detections' AS detections, r->'warnings'->0 AS first_warning,
	   (SELECT min(w::int) FROM jsonb_array_elements_text(r->'warnings') w
		WHERE w::int > (r->'detections'->>0)::int) AS first_warning_after
FROM (SELECT streamml.drift_detect('ddm', x ORDER BY i) AS r
	  FROM drift_streams WHERE stream = 'bits_42') s;

-- EDDM(alpha=0.8, beta=0.75)'s example: "Warning detected at index 1059",
-- "Change detected at index 1278".
SELECT r->'detections' AS detections, r->'warnings' AS warnings
FROM (SELECT streamml.drift_detect('eddm', x, '{"alpha": 0.8, "beta": 0.75}' ORDER BY i) AS r
	  FROM drift_streams WHERE stream = 'bits_42') s;

-- CUSUM's example: "Change detected at index 201", "... at index 251".
SELECT streamml.drift_detect('cusum', x ORDER BY i)->'detections'
FROM drift_streams WHERE stream = 'gauss_12345';

-- Hand-checked Page-Hinkley (alpha 1, delta 0, threshold 5, from the first
-- value): values 0, 0, 0, 10: the mean after the 4th is 2.5, so the up sum
-- goes 0, 0, 0, 7.5 with minimum 0: 7.5 > 5 at position 4.  Position 5
-- resets: one value, mean 3, deviation 0: no drift.
SELECT streamml.drift_detect('page_hinkley', x,
		'{"min_instances": 1, "delta": 0, "threshold": 5, "alpha": 1}' ORDER BY i)
FROM (VALUES (1, 0.0), (2, 0.0), (3, 0.0), (4, 10.0), (5, 3.0)) v(i, x);
-- mode 'down' ignores the rise; 'up' sees it.
SELECT m, streamml.drift_detect('page_hinkley', x,
		jsonb_build_object('min_instances', 1, 'delta', 0, 'threshold', 5, 'alpha', 1, 'mode', m)
		ORDER BY i)->'detections'
FROM (VALUES (1, 0.0), (2, 0.0), (3, 0.0), (4, 10.0)) v(i, x), (VALUES ('up'), ('down')) mm(m)
GROUP BY m ORDER BY m;

-- Hand-checked DDM (warm_start 2): bits 0 1 0 1 then 1 1 1 1.  After the
-- 3rd value p = 1/3, s = sqrt(2/27) = 0.2722: p + s = 0.6055 is the minimum.
-- 4th: p = 1/2, s = 0.25, 0.75 > 0.3333 + 2 * 0.2722 = 0.8777? no: nothing.
-- 5th: p = 0.6, s = 0.2191: 0.8191: nothing.  6th: p = 0.6667, s =
-- 0.1925: 0.8591: nothing.  7th: p = 0.7143, s = 0.1707: 0.8850 > 0.8777:
-- warning.  8th: p = 0.75, s = 0.1531: 0.9031 < 0.3333 + 3 * 0.2722 =
-- 1.1499: still a warning, not a new entry.
SELECT streamml.drift_detect('ddm', x, '{"warm_start": 2}' ORDER BY i)
FROM (VALUES (1, 0), (2, 1), (3, 0), (4, 1), (5, 1), (6, 1), (7, 1), (8, 1)) v(i, x);

-- River's ADWIN tests: no drift on a constant stream of 5000; none within
-- the grace period (grace_period 100, clock 1: 50 zeros then 50 x 1000);
-- after a drift the next value resets the window to width 1.
SELECT streamml.drift_detect('adwin', 1.0 ORDER BY g)->'detections'
FROM generate_series(1, 5000) g;
SELECT streamml.drift_detect('adwin', CASE WHEN g <= 50 THEN 0 ELSE 1000 END,
		'{"grace_period": 100, "clock": 1}' ORDER BY g)->'detections'
FROM generate_series(1, 100) g;
SELECT r->'detections' AS detections, r->'state'->'width' AS width,
	   r->'state'->'estimation' AS estimation
FROM (SELECT streamml.drift_detect('adwin', x, '{"clock": 1}' ORDER BY g) AS r
	  FROM (SELECT g, CASE WHEN g <= 500 THEN 0.0 WHEN g = 501 THEN 100.0 ELSE 50.0 END AS x
			FROM generate_series(1, 502) g) s) q;

-- Groups run independent detectors.
SELECT stream, streamml.drift_detect('adwin', x ORDER BY i)->'detections'
FROM drift_streams WHERE stream IN ('two_dists_12345', 'four_segments_42')
GROUP BY stream ORDER BY stream;

-- NULL x: skipped by the detector, but it keeps its position, so positions
-- are row numbers of the aggregated rows.  A NULL before every value
-- doubles every position of the CUSUM example (201 + 1 -> 404 ...).
SELECT r->'detections' AS detections, r->'state'->'rows' AS rows, r->'state'->'nulls' AS nulls
FROM (SELECT streamml.drift_detect('cusum', x ORDER BY i, nul DESC) AS r
	  FROM (SELECT i, x, false AS nul FROM drift_streams WHERE stream = 'gauss_12345'
			UNION ALL SELECT i, NULL, true FROM drift_streams WHERE stream = 'gauss_12345') s) q;
-- No rows: NULL.  Only NULLs: no detections.
SELECT streamml.drift_detect('adwin', x) FROM drift_streams WHERE false;
SELECT streamml.drift_detect('ddm', NULL::float8 ORDER BY g)->'detections' FROM generate_series(1, 3) g;
-- NULL params: the defaults.
SELECT streamml.drift_detect('page_hinkley', x, NULL ORDER BY i)->'detections'
FROM drift_streams WHERE stream = 'two_dists_12345';

-- The state object of each method: the parameters (defaults filled in)
-- and the detector's statistics at the last row.  (KSWIN without a seed
-- draws differently at every run, as River's seed=None does.)
SELECT m, streamml.drift_detect(m, x, CASE WHEN m = 'kswin' THEN '{"seed": 1}'::jsonb END
								ORDER BY i)->'state'
FROM drift_streams, (VALUES ('adwin'), ('ddm'), ('eddm'), ('kswin'), ('page_hinkley'), ('cusum')) mm(m)
WHERE stream = 'bits_42' AND i < 120
GROUP BY m ORDER BY m;

-- Errors.
SELECT streamml.drift_detect('hddm', x) FROM drift_streams WHERE i < 3;
SELECT streamml.drift_detect(NULL, x) FROM drift_streams WHERE i < 3;
SELECT streamml.drift_detect('adwin', x, '{"delta": 0.002, "window": 3}') FROM drift_streams WHERE i < 3;
SELECT streamml.drift_detect('adwin', x, '{"delta": 2}') FROM drift_streams WHERE i < 3;
SELECT streamml.drift_detect('adwin', x, '{"delta": 0}') FROM drift_streams WHERE i < 3;
SELECT streamml.drift_detect('adwin', x, '{"clock": 0}') FROM drift_streams WHERE i < 3;
SELECT streamml.drift_detect('adwin', x, '{"clock": 1.5}') FROM drift_streams WHERE i < 3;
SELECT streamml.drift_detect('adwin', x, '[1, 2]') FROM drift_streams WHERE i < 3;
SELECT streamml.drift_detect('eddm', x, '{"alpha": 0.8, "beta": 0.9}') FROM drift_streams WHERE i < 3;
SELECT streamml.drift_detect('kswin', x, '{"window_size": 50, "stat_size": 30}') FROM drift_streams WHERE i < 3;
SELECT streamml.drift_detect('kswin', x, '{"alpha": -1}') FROM drift_streams WHERE i < 3;
SELECT streamml.drift_detect('page_hinkley', x, '{"mode": "sideways"}') FROM drift_streams WHERE i < 3;
SELECT streamml.drift_detect('cusum', x, '{"threshold": 0}') FROM drift_streams WHERE i < 3;
SELECT streamml.drift_detect('ddm', x ORDER BY i) FROM drift_streams WHERE stream = 'gauss_12345';
SELECT streamml.drift_detect('eddm', v) FROM (VALUES (1.0), (2.0)) t(v);
SELECT streamml.drift_detect('adwin', v) FROM (VALUES (1.0), ('NaN')) t(v);
SELECT streamml.drift_detect('adwin', v) FROM (VALUES (1.0), ('-Infinity')) t(v);

-- Data drift against reference bins: 4 bins [0, 1), [1, 2), [2, 3), [3, 4]
-- of a uniform reference (fractions are normalised: 1, 1, 1, 1 -> 0.25
-- each), new values 0.5 | 1.5 1.7 | 2.5 | 3.5 3.6 3.7 5 (5 is above the
-- last edge: the last bin): fractions 1/8, 2/8, 1/8, 4/8.
-- PSI = 2 (0.125 - 0.25) ln(0.5) + (0.5 - 0.25) ln(2) = 0.5 ln 2 = 0.34657;
-- KS at the edges 1, 2, 3: |0.125 - 0.25|, |0.375 - 0.5|, |0.5 - 0.75|:
-- 0.25; W1 = integral of |F_new - x / 4| over [0, 5] = 0.75 (checked by
-- numeric integration).  NULL values are skipped.
SELECT streamml.psi(v, '{0,1,2,3,4}', '{1,1,1,1}') AS psi, 0.5 * ln(2) AS expected,
	   streamml.ks_statistic(v, '{0,1,2,3,4}', '{1,1,1,1}') AS ks,
	   streamml.wasserstein_distance(v, '{0,1,2,3,4}', '{1,1,1,1}') AS wasserstein
FROM unnest('{0.5,1.5,1.7,NULL,2.5,3.5,3.6,3.7,5}'::float8[]) v;
-- An empty bin counts as 0.0001 (Evidently): all values in the first bin:
-- (1 - 0.25) ln(1 / 0.25) + 3 (0.0001 - 0.25) ln(0.0001 / 0.25).
SELECT round(streamml.psi(v, '{0,1,2,3,4}', '{1,1,1,1}')::numeric, 10) AS psi,
	   round((0.75 * ln(4) + 3 * (0.0001 - 0.25) * ln(0.0001 / 0.25))::numeric, 10) AS expected
FROM (VALUES (0.1), (0.2)) t(v);
-- The same distribution: 0; a shift by one bin width of a uniform [0, 10]
-- decile reference: W1 = 1, KS = 0.1.
SELECT round(streamml.psi(g / 100.0, b, f)::numeric, 12) AS psi,
	   round(streamml.ks_statistic(g / 100.0, b, f)::numeric, 12) AS ks,
	   round(streamml.wasserstein_distance(g / 100.0 + 1.005, b, f)::numeric, 12) AS w1_shifted,
	   round(streamml.ks_statistic(g / 100.0 + 1.005, b, f)::numeric, 12) AS ks_shifted
FROM generate_series(0, 999) g,
	 (SELECT array_agg(e::float8 ORDER BY e) b, array_fill(0.1::float8, ARRAY[10]) f
	  FROM generate_series(0, 10) e) r
GROUP BY b, f;
-- No values: NULL.
SELECT streamml.psi(v, '{0,1}', '{1}'), streamml.wasserstein_distance(v, '{0,1}', '{1}')
FROM (VALUES (NULL::float8)) t(v);
-- Parallel workers give the same numbers (combine, serialize).
CREATE TABLE drift_values AS SELECT g, (g * 7919 % 1000) / 100.0 AS v FROM generate_series(1, 200000) g;
ANALYZE drift_values;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT streamml.psi(v, '{0,2,4,6,8,10}', '{1,1,1,1,1}') FROM drift_values;
SELECT streamml.psi(v, '{0,2,4,6,8,10}', '{1,2,1,1,1}'),
	   streamml.ks_statistic(v, '{0,2,4,6,8,10}', '{1,2,1,1,1}'),
	   streamml.wasserstein_distance(v, '{0,2,4,6,8,10}', '{1,2,1,1,1}')
FROM drift_values;
-- feature_bins in parallel: workers' reservoirs combine into a uniform
-- sample of 10000 of the 200000 rows (which rows depends on the workers, so
-- only tolerances are checked): v is uniform on 0, 0.01, ..., 9.99, so its
-- deciles are near 1, 2, ..., 9 and every share near 0.1.
EXPLAIN (COSTS OFF) SELECT streamml.feature_bins(ARRAY[v], '{v}') FROM drift_values;
SELECT fb->'rows' AS rows, fb->'sample' AS sample,
	   (SELECT max(abs(e::float8 - (o - 1) * 0.999)) < 0.2
		FROM jsonb_array_elements_text(fb->'features'->'v'->'bins') WITH ORDINALITY b(e, o)) AS deciles_ok,
	   (SELECT max(abs(f::float8 - 0.1)) < 0.02
		FROM jsonb_array_elements_text(fb->'features'->'v'->'fractions') f) AS shares_ok
FROM (SELECT streamml.feature_bins(ARRAY[v], '{v}') AS fb FROM drift_values) s;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
SELECT streamml.psi(v, '{0,2,4,6,8,10}', '{1,2,1,1,1}'),
	   streamml.ks_statistic(v, '{0,2,4,6,8,10}', '{1,2,1,1,1}'),
	   streamml.wasserstein_distance(v, '{0,2,4,6,8,10}', '{1,2,1,1,1}')
FROM drift_values;
-- Errors.
SELECT streamml.psi(1, '{0,2,1}', '{1,1}');
SELECT streamml.psi(1, '{0,1,2}', '{1,1,1}');
SELECT streamml.psi(1, '{0}', '{}');
SELECT streamml.psi(1, '{0,1,2}', '{1,-1}');
SELECT streamml.psi(1, '{0,1,2}', '{0,0}');
SELECT streamml.psi(1, '{0,NULL,2}', '{1,1}');
SELECT streamml.psi(1, '{0,1,Infinity}', '{1,1}');
SELECT streamml.psi(1, NULL, '{1,1}');
SELECT streamml.psi(v, '{0,1,2}', '{1,1}') FROM (VALUES (1.0), ('NaN')) t(v);

-- Feature bins recorded at training time, and the (model, feature, value)
-- forms that read them.  a = g % 100 over g = 1..1000: every value 0..99
-- ten times; numpy.quantile(linear) gives the edges 0, 9.9, 19.8, ...,
-- 89.1, 99 and each bin holds 100 rows (0.1).  All 1000 rows are in the
-- sample (at most 10000), so the bins are exact.
CREATE TABLE drift_train AS
SELECT g AS id, (g % 100)::float8 AS a, (g % 7)::float8 AS b, (g % 100) + 3 * (g % 7) + (g % 13) > 60 AS y
FROM generate_series(1, 1000) g;
SELECT model, version, deployed FROM streamml.train_logreg('drift_m', 'drift_train', 'y', ARRAY['a', 'b']);
SELECT feature_bins->'rows' AS rows, feature_bins->'sample' AS sample,
	   feature_bins->'features'->'a' AS a, feature_bins->'features'->'b'->'fractions' AS b_fractions
FROM streamml.model_versions WHERE model = 'drift_m';
-- The training rows against their own bins: no drift; shifted values: drift.
SELECT round(streamml.psi('drift_m', 'a', a)::numeric, 12) AS psi,
	   round(streamml.ks_statistic('drift_m', 'a', a)::numeric, 12) AS ks,
	   round(streamml.psi('drift_m', 'a', a + 20)::numeric, 6) AS psi_shifted,
	   round(streamml.ks_statistic('drift_m', 'a', a + 20)::numeric, 6) AS ks_shifted,
	   round(streamml.wasserstein_distance('drift_m', 'a', a + 20)::numeric, 6) AS w1_shifted
FROM drift_train;
-- The same as the explicit form with the stored arrays.
SELECT streamml.psi('drift_m', 'b', b + (id % 3)) =
	   streamml.psi(b + (id % 3), ARRAY(SELECT jsonb_array_elements_text(v.feature_bins->'features'->'b'->'bins')::float8),
					ARRAY(SELECT jsonb_array_elements_text(v.feature_bins->'features'->'b'->'fractions')::float8)) AS same
FROM drift_train, streamml.model_versions v WHERE v.model = 'drift_m' AND v.version = 1
GROUP BY v.feature_bins;
SELECT streamml.psi('drift_m', 'a', a) FROM drift_train WHERE false;
-- Errors.
SELECT streamml.psi('no_such_model', 'a', a) FROM drift_train;
SELECT streamml.psi('drift_m', 'c', a) FROM drift_train;
SELECT streamml.psi('drift_m', NULL, a) FROM drift_train;
UPDATE streamml.model_versions SET feature_bins = NULL WHERE model = 'drift_m';
SELECT streamml.psi('drift_m', 'a', a) FROM drift_train;
SELECT streamml.drop_model('drift_m');

DROP TABLE drift_streams, kswin_expected, drift_values, drift_train;
