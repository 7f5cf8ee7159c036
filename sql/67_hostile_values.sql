-- Values of a role's own types run the role's own code only as that role,
-- and no session setting changes what the extension stores or compares.
--
-- An outcome tracker joins outcomes that arrived before their prediction
-- in a privileged statement (it writes the catalog).  The keys are values
-- of the owner's types, whose conversion to json may call a cast the
-- owner wrote: that conversion runs as the owner, never in the privileged
-- statement.
CREATE ROLE hv_user;
CREATE SCHEMA hv AUTHORIZATION hv_user;
CREATE TABLE hv_train AS SELECT i::float8 AS x, (i % 2 = 0) AS y FROM generate_series(1, 40) i;
SELECT version FROM streamml.train_logreg('hv_m', 'hv_train', 'y', ARRAY['x'], '{"l2": 1}');
SELECT streamml.grant_model('hv_m', 'hv_user');
SET ROLE hv_user;
CREATE TYPE hv.k AS ENUM ('a', 'b', 'c');
CREATE FUNCTION hv.k_json(v hv.k) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
	RAISE NOTICE 'cast to json as %', current_user;
	IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
		EXECUTE 'ALTER ROLE hv_user SUPERUSER';
	END IF;
	RETURN pg_catalog.to_json(v::text);
END $$;
CREATE CAST (hv.k AS json) WITH FUNCTION hv.k_json(hv.k);
CREATE TABLE hv.src (id hv.k PRIMARY KEY, x float8);
SELECT streamml.create_scorer('hv_s', 'hv.src', 'hv_m', '{"into": "hv.preds"}');
CREATE TABLE hv.labels (id hv.k, y boolean);
SELECT streamml.track_outcomes('hv_s', 'hv.labels', '{"actual": "y"}');
-- the outcomes first: they wait; then the predictions, which join them
INSERT INTO hv.labels VALUES ('a', true), ('b', false);
SELECT count(*) AS pending FROM streamml.pending_outcomes;
INSERT INTO hv.src VALUES ('a', 2), ('b', 3), ('c', 4);
RESET ROLE;
SELECT rolsuper FROM pg_roles WHERE rolname = 'hv_user';
SELECT key, actual FROM streamml.outcomes WHERE scorer = 'hv_s' ORDER BY key::text;
SELECT count(*) AS pending FROM streamml.pending_outcomes;

-- A numeric class label is matched as the text it prints as exactly,
-- whatever the inserting session's extra_float_digits (with -14, 10
-- printed as 1e+01 and matched no class).
CREATE TABLE hv_mc AS SELECT i AS id, sin(i)::float8 AS x1, cos(i * 1.7)::float8 AS x2,
	(CASE WHEN sin(i) + ((i * 31) % 10) / 20.0 < -0.3 THEN 10
		  WHEN sin(i) + ((i * 31) % 10) / 20.0 < 0.5 THEN 20 ELSE 30 END)::int AS cls
  FROM generate_series(1, 300) i;
SELECT version FROM streamml.train_logreg('hv_multi', 'hv_mc', 'cls', ARRAY['x1', 'x2']);
CREATE TABLE hv_mc_src (id int PRIMARY KEY, x1 float8, x2 float8);
SELECT streamml.create_scorer('hv_ms', 'hv_mc_src', 'hv_multi', '{"into": "hv_mc_preds"}');
CREATE TABLE hv_mc_lab (id int, cls int);
SELECT streamml.track_outcomes('hv_ms', 'hv_mc_lab', '{"actual": "cls"}');
INSERT INTO hv_mc_src SELECT id, x1, x2 FROM hv_mc WHERE id <= 200;
INSERT INTO hv_mc_lab SELECT id, cls FROM hv_mc WHERE id <= 100;
SET extra_float_digits = -14;
INSERT INTO hv_mc_lab SELECT id, cls FROM hv_mc WHERE id > 100 AND id <= 200;
-- and labels that arrive before their predictions
INSERT INTO hv_mc_lab SELECT id, cls FROM hv_mc WHERE id > 200 AND id <= 220;
INSERT INTO hv_mc_src SELECT id, x1, x2 FROM hv_mc WHERE id > 200 AND id <= 220;
RESET extra_float_digits;
SELECT (o.key->>'id')::int <= 100 AS default_digits, count(*),
	   pg_catalog.array_agg(DISTINCT o.actual_class ORDER BY o.actual_class) AS classes
  FROM streamml.outcomes o WHERE o.scorer = 'hv_ms' GROUP BY 1 ORDER BY 1;
SELECT (SELECT count(*) FROM streamml.outcomes o WHERE o.scorer = 'hv_ms'
		AND o.class = o.actual_class) =
	   (SELECT count(*) FROM hv_mc m JOIN hv_mc_preds p USING (id)
		 WHERE p.class = m.cls::text AND m.id <= 220) AS accuracy_counts_every_label;
-- evaluate reads labels the same way
SELECT (streamml.evaluate('hv_multi', 'hv_mc', 'cls', ARRAY['x1', 'x2'])->>'accuracy')::float8
	AS accuracy_default \gset
SET extra_float_digits = -14;
SELECT (streamml.evaluate('hv_multi', 'hv_mc', 'cls', ARRAY['x1', 'x2'])->>'accuracy')::float8
	= :accuracy_default AS same_accuracy;
RESET extra_float_digits;

-- cleanup
SELECT streamml.untrack_outcomes('hv_ms');
SELECT streamml.drop_scorer('hv_ms');
SELECT streamml.drop_model('hv_multi');
DROP TABLE hv_mc, hv_mc_src, hv_mc_lab, hv_mc_preds;
SET ROLE hv_user;
SELECT streamml.untrack_outcomes('hv_s');
SELECT streamml.drop_scorer('hv_s');
RESET ROLE;
DROP SCHEMA hv CASCADE;
SELECT streamml.drop_model('hv_m');
DROP TABLE hv_train;
DROP ROLE hv_user;

-- The histogram helpers refuse what no histogram holds.
SELECT streamml.label_lag_quantile(ARRAY[-5, 10]::bigint[], 0.5);
SELECT streamml.label_lag_quantile(ARRAY[9223372036854775807, 1]::bigint[], 0.5);
SELECT streamml.histogram_add(ARRAY[9223372036854775807]::bigint[], ARRAY[1]::bigint[]);
SELECT streamml.score_bin('NaN', true);
SELECT streamml.score_bin(1.5, false);
SELECT streamml.score_bin(1, true), streamml.score_bin(0, false);
