-- What the extension reads as a role other than the table's owner must
-- not run the owner's code as the reader (src/trust.c): another role's
-- view (whose functions run as its reader, security_invoker or not) or
-- row-level security policy that calls a function that is not built in is
-- refused (42501), before anything is planned and at every statement, as
-- a column of another role's type is (80); and so is a view that reads
-- such a relation.  Views and policies of built-in expressions are read
-- as before.
CREATE ROLE tr_alice;
CREATE ROLE tr_mallory;
GRANT CREATE ON SCHEMA public TO tr_alice, tr_mallory;
-- who ran mallory's function, as whom
CREATE TABLE tr_calls (who text);
GRANT INSERT ON tr_calls TO PUBLIC;
SET ROLE tr_mallory;
CREATE FUNCTION tr_spy() RETURNS boolean LANGUAGE sql
	AS $$ INSERT INTO tr_calls VALUES (current_user) RETURNING true $$;
CREATE TABLE tr_data (x float8, y float8, tenant text);
INSERT INTO tr_data SELECT i, 2 * i + 1, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END
  FROM generate_series(1, 40) i;
CREATE VIEW tr_builtin AS SELECT x, abs(y) AS y FROM tr_data;
CREATE VIEW tr_plain AS SELECT x, y, tr_spy() AS spied FROM tr_data;
CREATE VIEW tr_invoker WITH (security_invoker = true) AS
SELECT x, y, tr_spy() AS spied FROM tr_data;
GRANT SELECT ON tr_data, tr_builtin, tr_plain, tr_invoker TO tr_alice;
-- a policy of built-in expressions that applies to alice
ALTER TABLE tr_data ENABLE ROW LEVEL SECURITY;
CREATE POLICY tr_tenant ON tr_data FOR SELECT TO tr_alice USING (tenant = 'a');
RESET ROLE;

SET ROLE tr_alice;
-- the policy's built-in expression: alice trains on tenant a's rows
SELECT rows_used FROM streamml.train_linreg('tr_m', 'tr_data', 'y', ARRAY['x']);
-- mallory's view of built-in functions: read (through the same policy)
SELECT rows_used FROM streamml.train_linreg('tr_m2', 'tr_builtin', 'y', ARRAY['x']);
-- mallory's views that would run mallory's function as alice, with or
-- without security_invoker: refused
SELECT rows_used FROM streamml.train_linreg('tr_m3', 'tr_plain', 'y', ARRAY['x']);
SELECT rows_used FROM streamml.train_linreg('tr_m3', 'tr_invoker', 'y', ARRAY['x']);
RESET ROLE;
SELECT count(*) AS calls FROM tr_calls;

-- mallory changes the policy after the model was trained: its retrain is
-- refused, and mallory's function never runs as alice
SET ROLE tr_mallory;
DROP POLICY tr_tenant ON tr_data;
CREATE POLICY tr_tenant ON tr_data FOR SELECT TO tr_alice USING (tenant = 'a' AND tr_spy());
RESET ROLE;
SET ROLE tr_alice;
SELECT rows_used FROM streamml.retrain('tr_m');
-- and through alice's own view of mallory's table
CREATE VIEW tr_alice_view AS SELECT x, y FROM tr_data;
SELECT rows_used FROM streamml.train_linreg('tr_m4', 'tr_alice_view', 'y', ARRAY['x']);
RESET ROLE;
SELECT count(*) AS calls_as_alice FROM tr_calls WHERE who = 'tr_alice';

-- an outcome tracker of alice's on mallory's labels: read through a
-- built-in policy; refused once the policy calls mallory's function
CREATE TABLE tr_rows (id int PRIMARY KEY, x float8);
GRANT SELECT, TRIGGER ON tr_rows TO tr_alice;
SET ROLE tr_mallory;
CREATE TABLE tr_labels (id int, y float8, tenant text);
GRANT SELECT, TRIGGER ON tr_labels TO tr_alice;
ALTER TABLE tr_labels ENABLE ROW LEVEL SECURITY;
CREATE POLICY tr_labels_tenant ON tr_labels FOR SELECT TO tr_alice USING (tenant = 'a');
CREATE POLICY tr_labels_write ON tr_labels FOR INSERT WITH CHECK (true);
RESET ROLE;
SET ROLE tr_alice;
SELECT streamml.create_scorer('tr_s', 'tr_rows', 'tr_m2');
SELECT streamml.track_outcomes('tr_s', 'tr_labels', '{"actual": "y"}');
RESET ROLE;
INSERT INTO tr_rows SELECT i, i FROM generate_series(1, 4) i;
SET ROLE tr_mallory;
INSERT INTO tr_labels VALUES (1, 3, 'a'), (2, 5, 'b');
RESET ROLE;
SELECT key->>'id' AS id FROM streamml.outcomes WHERE scorer = 'tr_s';
SET ROLE tr_mallory;
DROP POLICY tr_labels_tenant ON tr_labels;
CREATE POLICY tr_labels_tenant ON tr_labels FOR SELECT TO tr_alice USING (tenant = 'a' AND tr_spy());
INSERT INTO tr_labels VALUES (3, 7, 'a');
RESET ROLE;
SELECT count(*) AS calls_as_alice FROM tr_calls WHERE who = 'tr_alice';
SELECT count(*) AS outcomes FROM streamml.outcomes WHERE scorer = 'tr_s';

-- cleanup
SET ROLE tr_alice;
SELECT streamml.untrack_outcomes('tr_s');
SELECT streamml.drop_scorer('tr_s');
SELECT streamml.drop_model(m) FROM unnest(ARRAY['tr_m', 'tr_m2']) m;
RESET ROLE;
DROP OWNED BY tr_alice, tr_mallory;
DROP TABLE tr_rows, tr_calls;
REVOKE CREATE ON SCHEMA public FROM tr_alice, tr_mallory;
DROP ROLE tr_alice, tr_mallory;
