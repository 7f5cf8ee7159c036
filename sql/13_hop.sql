-- hop(ts, size, slide, origin): starts of the hopping windows holding ts.
SET timezone = 'UTC';

-- One-minute windows every ten seconds: six of them.
SELECT streamml.hop('2024-01-01 00:00:25', '1 minute', '10 seconds');
-- On a boundary: the window starting at ts holds it, the one ending there not.
SELECT streamml.hop('2024-01-01 00:00:20', '30 seconds', '10 seconds');
-- Size not a multiple of slide.
SELECT streamml.hop('2024-01-01 00:00:25', '25 seconds', '10 seconds');
-- Slide larger than size: a row in a gap belongs to no window.
SELECT streamml.hop('2024-01-01 00:00:25', '5 seconds', '10 seconds');
SELECT streamml.hop('2024-01-01 00:00:21', '5 seconds', '10 seconds');
-- Tumbling windows agree with date_bin; an explicit origin; before it.
SELECT streamml.hop(ts, '15 minutes', '15 minutes') = date_bin('15 minutes', ts, '2000-01-01') AS same
FROM (VALUES ('2024-03-05 17:44:59.999'::timestamptz), ('1999-12-31 23:50:00'), ('1970-01-01')) v(ts);
SELECT streamml.hop('2024-01-01 00:07:00', '10 minutes', '5 minutes', '2024-01-01 00:01:00');
SELECT streamml.hop('1999-12-31 23:59:55', '15 seconds', '10 seconds');
-- Every window holds its row, and no other window does.
SELECT count(*) AS windows,
	   count(*) FILTER (WHERE NOT (w <= ts AND ts < w + interval '45 s')) AS wrong
FROM (SELECT ts FROM generate_series('2024-01-01'::timestamptz, '2024-01-01 00:10', '7 s') ts) t,
	 streamml.hop(ts, '45 s', '20 s') w;
-- A hopping average per window.
SELECT w, count(*), avg(x)
FROM (VALUES ('2024-01-01 00:00:01'::timestamptz, 1.0), ('2024-01-01 00:00:12', 2.0),
			 ('2024-01-01 00:00:25', 3.0)) v(ts, x),
	 streamml.hop(ts, '20 seconds', '10 seconds') w
GROUP BY w ORDER BY w;
-- NULL in, nothing out (STRICT).
SELECT count(*) FROM streamml.hop(NULL, '1 minute', '10 seconds');
-- Errors.
SELECT streamml.hop('2024-01-01', '1 month', '1 day');
SELECT streamml.hop('2024-01-01', '1 minute', '0 seconds');
SELECT streamml.hop('2024-01-01', '-1 minute', '10 seconds');
SELECT streamml.hop('infinity', '1 minute', '10 seconds');
