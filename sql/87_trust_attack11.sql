-- Attacks on the trust checks of src/trust.c (attacker 11): code of
-- role mallory must never run as role alice when the extension reads as
-- alice.  Each attack that once ran mallory's function as alice is refused
-- (42501) and mallory's function never runs as alice.
CREATE ROLE at_alice;
CREATE ROLE at_mallory;
GRANT CREATE ON SCHEMA public TO at_alice, at_mallory;
CREATE TABLE at_calls (who text, how text);
GRANT INSERT ON at_calls TO PUBLIC;
SET ROLE at_mallory;
CREATE FUNCTION at_spy(how text) RETURNS boolean LANGUAGE plpgsql
	AS $$ BEGIN INSERT INTO at_calls VALUES (current_user, how); RETURN true; END $$;
-- a domain whose CHECK calls mallory's function
CREATE DOMAIN at_dom AS float8 CHECK (at_spy('domain'));
CREATE DOMAIN at_tdom AS text CHECK (at_spy('policy domain'));
CREATE TYPE at_comp AS (v at_dom);
CREATE TABLE at_data (x float8, y float8, tenant text);
INSERT INTO at_data SELECT i, 2 * i + 1, 'a' FROM generate_series(1, 40) i;
-- a view that coerces to mallory's domain and back to float8: built-in
-- functions only, the domain's CHECK runs as the reader
CREATE VIEW at_domview AS SELECT x, (y::at_dom)::float8 AS y FROM at_data;
-- the same through a row of mallory's composite type, read by a built-in
CREATE VIEW at_compview AS
SELECT x, (jsonb_populate_record(NULL::at_comp, jsonb_build_object('v', y))).v::float8 AS y
  FROM at_data;
-- through a column definition list of a built-in function
CREATE VIEW at_coldefview AS
SELECT d.x, (r.v)::float8 AS y
  FROM at_data d, jsonb_to_record(jsonb_build_object('v', d.y)) AS r(v at_dom);
-- a plain view of mallory's function, read by alice's query source
CREATE VIEW at_spyview AS SELECT x, y, at_spy('query source') AS s FROM at_data;
CREATE TABLE at_swap (x float8, y float8);
INSERT INTO at_swap SELECT i, 2 * i + 1 FROM generate_series(1, 40) i;
CREATE TABLE at_pol (x float8, y float8, tenant text);
INSERT INTO at_pol SELECT i, 2 * i + 1, 'a' FROM generate_series(1, 40) i;
ALTER TABLE at_pol ENABLE ROW LEVEL SECURITY;
CREATE POLICY at_pol_p ON at_pol FOR SELECT TO at_alice USING ((tenant::at_tdom)::text = 'a');
GRANT SELECT ON at_data, at_domview, at_compview, at_coldefview, at_spyview, at_swap, at_pol TO at_alice;
RESET ROLE;
REVOKE SELECT ON at_calls FROM at_alice;

SET ROLE at_alice;
SELECT rows_used FROM streamml.train_linreg('at_m1', 'at_domview', 'y', ARRAY['x']);
SELECT rows_used FROM streamml.train_linreg('at_m2', 'at_compview', 'y', ARRAY['x']);
SELECT rows_used FROM streamml.train_linreg('at_m3', 'at_coldefview', 'y', ARRAY['x']);
SELECT rows_used FROM streamml.train_linreg('at_m4', 'at_pol', 'y', ARRAY['x']);
-- a query source reading mallory's view
SELECT rows_used FROM streamml.train_linreg('at_m5', 'SELECT x, y FROM at_spyview', 'y', ARRAY['x']);
-- a query source reading mallory's table, which mallory then makes a view
SELECT rows_used FROM streamml.train_linreg('at_m6', 'SELECT x, y FROM at_swap', 'y', ARRAY['x']);
-- a table source mallory then makes a view
SELECT rows_used FROM streamml.train_linreg('at_m7', 'at_swap', 'y', ARRAY['x']);
RESET ROLE;
SET ROLE at_mallory;
DROP TABLE at_swap;
CREATE VIEW at_swap AS SELECT x, y FROM at_data WHERE at_spy('swapped');
GRANT SELECT ON at_swap TO at_alice;
RESET ROLE;
SET ROLE at_alice;
SELECT rows_used FROM streamml.retrain('at_m6');
SELECT rows_used FROM streamml.retrain('at_m7');
RESET ROLE;
SELECT who, how, count(*) FROM at_calls GROUP BY 1, 2 ORDER BY 1, 2;

-- built-in functions that run SQL given as text (query_to_xml, ts_stat),
-- read a relation given by name (table_to_xml), or act with the reader's
-- privileges (volatile: set_config, setval, lo_unlink): refused in
-- another role's view or policy
SET ROLE at_mallory;
CREATE VIEW at_xmlview AS SELECT x, y FROM at_data
 WHERE query_to_xml('SELECT at_spy(''query_to_xml'')', false, false, '') IS NOT NULL;
CREATE VIEW at_tabxmlview AS SELECT x, y FROM at_data
 WHERE table_to_xml('at_spyview'::regclass, false, false, '') IS NOT NULL;
CREATE VIEW at_tsview AS SELECT x, y FROM at_data
 WHERE EXISTS (SELECT FROM ts_stat('SELECT to_tsvector(at_spy(''ts_stat'')::text)'));
CREATE VIEW at_setview AS SELECT x, y FROM at_data
 WHERE set_config('work_mem', '64kB', true) IS NOT NULL;
CREATE TABLE at_pol2 (x float8, y float8);
INSERT INTO at_pol2 SELECT i, 2 * i + 1 FROM generate_series(1, 40) i;
ALTER TABLE at_pol2 ENABLE ROW LEVEL SECURITY;
CREATE POLICY at_pol2_p ON at_pol2 FOR SELECT TO at_alice
 USING (query_to_xml('SELECT at_spy(''policy query_to_xml'')', false, false, '') IS NOT NULL);
GRANT SELECT ON at_xmlview, at_tabxmlview, at_tsview, at_setview, at_pol2 TO at_alice;
RESET ROLE;
SET ROLE at_alice;
SELECT rows_used FROM streamml.train_linreg('at_m8', 'at_xmlview', 'y', ARRAY['x']);
SELECT rows_used FROM streamml.train_linreg('at_m8', 'at_tabxmlview', 'y', ARRAY['x']);
SELECT rows_used FROM streamml.train_linreg('at_m8', 'at_tsview', 'y', ARRAY['x']);
SELECT rows_used FROM streamml.train_linreg('at_m8', 'at_setview', 'y', ARRAY['x']);
SELECT rows_used FROM streamml.train_linreg('at_m8', 'at_pol2', 'y', ARRAY['x']);
RESET ROLE;
SELECT who, how, count(*) FROM at_calls GROUP BY 1, 2 ORDER BY 1, 2;

-- alice's own view, or query source, calling mallory's function: mallory
-- may replace its body at any time, so it is refused; alice's own
-- function is called
SET ROLE at_alice;
CREATE FUNCTION at_own(v float8) RETURNS float8 LANGUAGE sql AS 'SELECT v';
CREATE VIEW at_alice_calls AS SELECT x, y FROM at_data WHERE at_spy('alice view');
SELECT rows_used FROM streamml.train_linreg('at_m9', 'at_alice_calls', 'y', ARRAY['x']);
SELECT rows_used FROM streamml.train_linreg('at_m9',
	'SELECT x, y FROM at_data WHERE at_spy(''alice query'')', 'y', ARRAY['x']);
SELECT rows_used FROM streamml.train_linreg('at_m9',
	'SELECT x, at_own(y) AS y FROM at_data', 'y', ARRAY['x']);
RESET ROLE;
SELECT who, how, count(*) FROM at_calls GROUP BY 1, 2 ORDER BY 1, 2;

-- cleanup
SET ROLE at_alice;
SELECT streamml.drop_model(name) FROM streamml.models WHERE name LIKE 'at\_m%';
RESET ROLE;
DROP OWNED BY at_alice, at_mallory;
DROP TABLE at_calls;
REVOKE CREATE ON SCHEMA public FROM at_alice, at_mallory;
DROP ROLE at_alice, at_mallory;
