-- A model trained on a query keeps the search_path it was trained under,
-- and its retrain (by anyone: a superuser, pg_cron, a monitor) runs under
-- it as the owner.  The extension's own SQL around the query must not pick
-- up another role's operator from a schema on that path: one on varchar
-- matches a varchar order_by column more closely than pg_catalog's on
-- text.  op_bob's operators say when they run, and as whom.
CREATE ROLE op_alice;
CREATE ROLE op_bob;
GRANT CREATE ON SCHEMA public TO op_bob;
SET ROLE op_bob;
CREATE FUNCTION public.bob_le(varchar, varchar) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	RAISE NOTICE 'op_bob''s <= ran as %', current_user;
	RETURN $1::text <= $2::text;
END $$;
CREATE FUNCTION public.bob_gt(varchar, varchar) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	RAISE NOTICE 'op_bob''s > ran as %', current_user;
	RETURN $1::text > $2::text;
END $$;
CREATE FUNCTION public.bob_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	RAISE NOTICE 'op_bob''s = ran as %', current_user;
	RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.bob_eq);
CREATE OPERATOR public.<= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.bob_le);
CREATE OPERATOR public.> (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.bob_gt);
RESET ROLE;
CREATE SCHEMA op_a AUTHORIZATION op_alice;
SET ROLE op_alice;
CREATE TABLE op_a.vt AS
SELECT lpad(i::text, 4, '0')::varchar AS ord, i::float8 AS x, 2.0 * i + 1 AS y,
	   (ARRAY['a', 'b'])[1 + i % 2] AS c
  FROM generate_series(1, 50) i;
-- op_alice's path lists public, and even pg_catalog after it
SET search_path = op_a, public, pg_catalog;
SELECT version, (metrics->>'rows')::int AS holdout_rows
  FROM streamml.train_linreg('op_q', 'SELECT * FROM op_a.vt', 'y', ARRAY['x'],
	'{"order_by": "ord", "test_fraction": 0.2}');
-- a categorical feature: the slots compare text with = (an exact match,
-- which a path listing pg_catalog last would have found in public first)
SELECT version FROM streamml.train_gbt('op_c', 'SELECT * FROM op_a.vt', 'y', ARRAY['x', 'c'],
	'{"order_by": "ord", "test_fraction": 0.2, "trees": 3, "threads": 1}');
SELECT count(*) FROM streamml.train_league('op_l', 'SELECT * FROM op_a.vt', 'y', ARRAY['x'],
	'{"order_by": "ord", "candidates": ["tree"], "threads": 1}');
SELECT count(*) FROM streamml.train_league('op_l', 'SELECT * FROM op_a.vt', 'y', ARRAY['x'],
	'{"order_by": "ord", "candidates": ["tree"], "threads": 1}');
RESET search_path;
RESET ROLE;
-- a superuser's retrain, and one that counts the new rows first
SELECT version, deployed FROM streamml.retrain('op_q');
INSERT INTO op_a.vt VALUES ('0051', 51, 103);
SELECT version FROM streamml.retrain('op_q', '{"min_new_rows": 1}');
SELECT count(*) FROM streamml.retrain('op_l');
SELECT version FROM streamml.retrain('op_c');
SELECT count(*) > 0 AS evaluated FROM streamml.evaluate('op_c', 'SELECT * FROM op_a.vt', 'y', ARRAY['x', 'c']);

-- cleanup
SET ROLE op_alice;
SELECT streamml.drop_model('op_q');
SELECT streamml.drop_model('op_l');
SELECT streamml.drop_model('op_c');
RESET ROLE;
DROP SCHEMA op_a CASCADE;
DROP OPERATOR public.<= (varchar, varchar);
DROP OPERATOR public.> (varchar, varchar);
DROP OPERATOR public.= (text, text);
DROP FUNCTION public.bob_le(varchar, varchar), public.bob_gt(varchar, varchar),
	public.bob_eq(text, text);
REVOKE CREATE ON SCHEMA public FROM op_bob;
DROP ROLE op_alice, op_bob;
