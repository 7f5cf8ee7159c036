-- The narrow stored outcome (streamml.outcome_rows) behind the view
-- streamml.outcomes, and the horizon path's two ways of reading the
-- predictions of a batch's labelled keys (src/quality/outcomehorizon.c).
CREATE TABLE or_train AS
SELECT i::float8 AS x, 2.0 * i + 1 AS y FROM generate_series(1, 50) i;
SELECT model, version FROM streamml.train_linreg('or_reg', 'or_train', 'y', ARRAY['x']);
SELECT model, version FROM streamml.train_linreg('or_reg2', 'or_train', 'y', ARRAY['x'],
	'{"l2": 10}');

-- Sparse integer keys (a gap of 1,000 between consecutive ids): the C path
-- probes the predictions key by key instead of one range scan; the SQL
-- statement (a partial index, which the C path declines) is the reference.
-- Dense keys, which take the range scan, are 54_outcome_horizon's.
CREATE TABLE or_c (id bigint PRIMARY KEY, sym text, ts timestamptz, x float8, price float8);
CREATE INDEX ON or_c (sym, ts);
CREATE TABLE or_s (id bigint PRIMARY KEY, sym text, ts timestamptz, x float8, price float8);
CREATE INDEX ON or_s (sym, ts) WHERE sym IS NOT NULL;
SELECT streamml.create_scorer('or_c_s', 'or_c', 'or_reg', '{"challengers": ["or_reg2"]}');
SELECT streamml.create_scorer('or_s_s', 'or_s', 'or_reg', '{"challengers": ["or_reg2"]}');
SELECT streamml.track_outcomes(s, t, '{"actual": "price", "horizon": "30 seconds",
	"partition_by": "sym", "order_by": "ts"}')
  FROM (VALUES ('or_c_s', 'or_c'::regclass), ('or_s_s', 'or_s'::regclass)) v(s, t);
CREATE FUNCTION or_batch(q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE 'INSERT INTO or_c ' || q;
	EXECUTE 'INSERT INTO or_s ' || q;
END
$$;
SELECT or_batch($q$SELECT i * 1000, 'S' || (i % 3),
	'2026-01-01 10:00:00+00'::timestamptz + i * interval '7 s', i % 10, 100 + i
	FROM generate_series(1, 60) i$q$);
SELECT or_batch($q$SELECT i * 1000, 'S' || (i % 3),
	'2026-01-01 10:00:00+00'::timestamptz + i * interval '7 s', i % 10, 100 + i
	FROM generate_series(61, 120) i$q$);
-- then dense ones, keys descending in arrival order (sorted before the scan)
SELECT or_batch($q$SELECT 200000 - i, 'S' || (i % 3),
	'2026-01-01 10:00:00+00'::timestamptz + i * interval '7 s', i % 10, 100 + i
	FROM generate_series(121, 200) i$q$);
SELECT s.scorer, count(*) AS outcomes, count(DISTINCT s.key) AS keys
  FROM streamml.outcomes s WHERE s.scorer IN ('or_c_s', 'or_s_s')
 GROUP BY 1 ORDER BY 1;
SELECT count(*) AS compared,
	   count(*) FILTER (WHERE c.key IS NULL OR s.key IS NULL
						OR c.actual IS DISTINCT FROM s.actual
						OR c.prediction IS DISTINCT FROM s.prediction
						OR c.loss IS DISTINCT FROM s.loss
						OR c.role IS DISTINCT FROM s.role
						OR c.key_hash IS DISTINCT FROM s.key_hash) AS differing
  FROM (SELECT * FROM streamml.outcomes WHERE scorer = 'or_c_s') c
  FULL JOIN (SELECT * FROM streamml.outcomes WHERE scorer = 'or_s_s') s
	ON s.key = c.key AND s.model = c.model AND s.version = c.version;

-- The stored rows: a one-integer key is not stored (the view rebuilds it,
-- equal to and written as jsonb_build_object of the key), nor the scorer,
-- 'champion' or an empty group; a challenger's role is.
SELECT count(*) AS stored, count(r.key) AS keys_stored,
	   count(r.role) AS roles_stored, count(r.group_key) AS groups_stored
  FROM streamml.outcome_rows r JOIN streamml.outcome_trackers t ON t.id = r.tracker
 WHERE t.scorer = 'or_c_s';
SELECT count(*) FILTER (WHERE o.key::text <> jsonb_build_object('id', c.id)::text)
		   AS keys_differing,
	   count(*) FILTER (WHERE o.role = 'challenger') AS challengers
  FROM streamml.outcomes o JOIN or_c c ON o.key = jsonb_build_object('id', c.id)
 WHERE o.scorer = 'or_c_s';

-- A numeric key of an integer value is not stored either, whatever its
-- scale: 5.0 is equal to 5 as jsonb and reads {"id": 5}; 7.5 is stored.
CREATE TABLE or_n (id numeric PRIMARY KEY, x float8);
SELECT streamml.create_scorer('or_n_s', 'or_n', 'or_reg');
CREATE TABLE or_n_labels (id numeric, y float8);
SELECT streamml.track_outcomes('or_n_s', 'or_n_labels', '{"actual": "y"}');
INSERT INTO or_n VALUES (5.0, 1), (6, 2), (7.5, 3);
INSERT INTO or_n_labels VALUES (5.0, 10), (6, 20), (7.5, 30);
SELECT o.key, o.key_hash, r.key IS NULL AS key_not_stored, o.actual
  FROM streamml.outcomes o
  JOIN streamml.outcome_rows r ON r.tracker = o.tracker AND r.key_hash = o.key_hash
 WHERE o.scorer = 'or_n_s' ORDER BY o.actual;
-- a second label of 5 (written 5) is a duplicate of 5.0's, and 7.50 of 7.5's
INSERT INTO or_n_labels VALUES (7.50, 70);
INSERT INTO or_n_labels VALUES (5, 50);
SELECT count(*) AS outcomes,
	   (SELECT sum(duplicates) FROM streamml.live_metrics
		 WHERE scorer = 'or_n_s' AND group_key IS NULL) AS duplicates
  FROM streamml.outcomes WHERE scorer = 'or_n_s';

-- Nobody writes them but the extension; untrack_outcomes deletes them.
CREATE ROLE or_other;
SET ROLE or_other;
INSERT INTO streamml.outcome_rows (tracker, key_hash, version, model, predicted_at,
	labelled_at, owner) VALUES (1, 1, 1, 'x', now(), now(), 'or_other');
UPDATE streamml.outcome_rows SET loss = 0;
RESET ROLE;
SELECT streamml.untrack_outcomes(s) FROM unnest(ARRAY['or_c_s', 'or_s_s', 'or_n_s']) s;
SELECT count(*) AS left_behind FROM streamml.outcome_rows r
 WHERE NOT EXISTS (SELECT 1 FROM streamml.outcome_trackers t WHERE t.id = r.tracker);
DROP ROLE or_other;
SELECT streamml.drop_scorer(s) FROM unnest(ARRAY['or_c_s', 'or_s_s', 'or_n_s']) s;
SELECT streamml.drop_model(m) FROM unnest(ARRAY['or_reg', 'or_reg2']) m;
DROP TABLE or_c, or_s, or_n, or_n_labels, or_train;
DROP FUNCTION or_batch(text);
