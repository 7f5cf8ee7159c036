-- A feature table's or scorer's trigger reads every row an INSERT brings
-- (the statement's transition table, which no policy filters): neither is
-- made, nor runs, for an owner that row-level security of its source
-- applies to.  (An outcome tracker checks each row instead: 47.)
CREATE ROLE rs_user;
GRANT CREATE ON SCHEMA public TO rs_user;
CREATE TABLE rs_src (id int PRIMARY KEY, who text, ts timestamptz, x float8, secret text);
GRANT SELECT, TRIGGER ON rs_src TO rs_user;
CREATE TABLE rs_train AS SELECT i::float8 AS x, 2.0 * i AS y FROM generate_series(1, 20) i;
GRANT SELECT ON rs_train TO rs_user;
ALTER TABLE rs_src ENABLE ROW LEVEL SECURITY;
CREATE POLICY rs_mine ON rs_src FOR SELECT USING (who = current_user);
SET ROLE rs_user;
SELECT version FROM streamml.train_linreg('rs_m', 'rs_train', 'y', ARRAY['x']);
SELECT streamml.create_feature_table('rs_f', 'rs_src',
	'{"order_by": "ts", "features": {"n": {"fn": "count", "preceding": 0}}}');
SELECT streamml.create_scorer('rs_s', 'rs_src', 'rs_m', '{"into": "rs_p"}');
RESET ROLE;

-- made before the policy applied to the owner: the loads stop with the
-- error (a stream would wait and retry), no row reaches the owner
ALTER TABLE rs_src DISABLE ROW LEVEL SECURITY;
SET ROLE rs_user;
SELECT streamml.create_feature_table('rs_f', 'rs_src',
	'{"order_by": "ts", "keep": ["id", "secret"], "features": {"n": {"fn": "count", "preceding": 0}}}');
SELECT streamml.create_scorer('rs_s', 'rs_src', 'rs_m', '{"into": "rs_p"}');
RESET ROLE;
ALTER TABLE rs_src ENABLE ROW LEVEL SECURITY;
INSERT INTO rs_src VALUES (1, current_user, now(), 1, 'hidden');
SELECT streamml.drop_feature_table('rs_f');
INSERT INTO rs_src VALUES (1, current_user, now(), 1, 'hidden');
SELECT count(*) AS predictions FROM rs_p;
-- the table's owner is exempt: its own scorer runs
SELECT streamml.drop_scorer('rs_s');
SELECT streamml.grant_model('rs_m', current_user::text);
SELECT streamml.create_scorer('rs_s2', 'rs_src', 'rs_m', '{"into": "rs_p2"}');
INSERT INTO rs_src VALUES (2, current_user, now(), 1, 'mine');
SELECT count(*) AS predictions FROM rs_p2;

-- A feature table whose owner lost SELECT on its source stops loading
-- with the error (the revoke must hold, as for a scorer); granted again,
-- it loads.
ALTER TABLE rs_src DISABLE ROW LEVEL SECURITY;
SET ROLE rs_user;
SELECT streamml.create_feature_table('rs_f2', 'rs_src',
	'{"order_by": "ts", "keep": ["id", "secret"], "features": {"n": {"fn": "count", "preceding": 0}}}');
RESET ROLE;
REVOKE SELECT ON rs_src FROM rs_user;
INSERT INTO rs_src VALUES (3, current_user, now(), 1, 'after the revoke');
DELETE FROM rs_src WHERE id = 2;
GRANT SELECT ON rs_src TO rs_user;
INSERT INTO rs_src VALUES (3, current_user, now(), 1, 'granted again');
SET ROLE rs_user;
SELECT id, secret FROM rs_f2 ORDER BY id;
SELECT streamml.drop_feature_table('rs_f2');
RESET ROLE;

-- cleanup
SELECT streamml.drop_scorer('rs_s2');
SET ROLE rs_user;
SELECT streamml.drop_model('rs_m');
DROP TABLE rs_p;
RESET ROLE;
DROP TABLE rs_src, rs_train, rs_p2;
REVOKE CREATE ON SCHEMA public FROM rs_user;
DROP ROLE rs_user;
