-- The league: candidates ranked on one time-ordered holdout, the champion
-- deployed only if it beats the deployed version.  league.csv (from
-- test/data/make_tree_fixtures.py) has a nonlinear target, where the trees
-- must beat the linear model, and a linear one, where they must not.
CREATE TABLE league (id int, t int, u float8, v float8, ynl float8, ylin float8);
\copy league FROM 'test/data/league.csv' CSV HEADER

SELECT rank, candidate, kind, version, metric, deployed, error,
	   metrics->>'on' AS "on", (metrics->>'rows')::int AS holdout_rows
  FROM streamml.train_league('nonlinear', 'league', 'ynl', ARRAY['u', 'v'],
	'{"order_by": "t", "threads": 1}') ORDER BY rank;
SELECT candidate FROM streamml.leaderboard
 WHERE model = 'nonlinear' AND rank = 4;
SELECT rank, candidate, kind, deployed
  FROM streamml.train_league('linear', 'league', 'ylin', ARRAY['u', 'v'],
	'{"order_by": "t", "threads": 1}') ORDER BY rank;
SELECT name, kind, deployed_version FROM streamml.models WHERE name IN ('linear', 'nonlinear') ORDER BY name;
-- the deployed champion serves rows of any kind
SELECT count(streamml.predict('nonlinear', l)) AS served, count(streamml.predict('linear', l)) AS served_linear
  FROM league l;
SELECT (streamml.regression_metrics(ynl, streamml.predict('nonlinear', l))->>'rmse')::float8 <
	   (streamml.regression_metrics(ynl, streamml.predict('linear', l))->>'rmse')::float8 AS trees_win
  FROM league l WHERE t > 960;

-- Run again: the same champion does not beat itself, so nothing is deployed.
SELECT rank, candidate, deployed
  FROM streamml.train_league('nonlinear', 'league', 'ynl', ARRAY['u', 'v'],
	'{"order_by": "t", "threads": 1}') ORDER BY rank;
SELECT deployed_version FROM streamml.models WHERE name = 'nonlinear';
-- retrain re-runs the league from its stored spec
SELECT version IS NOT NULL AS trained, deployed, metrics->>'candidate' AS candidate
  FROM streamml.retrain('linear') ORDER BY metrics->>'candidate';

-- A failing candidate is reported with its error and never deployed.
SELECT rank, candidate, kind, deployed, error
  FROM streamml.train_league('mixed', 'league', 'ynl', ARRAY['u', 'v'],
	'{"order_by": "t", "threads": 1, "candidates": ["tree",
	  {"name": "broken", "trainer": "gbt", "options": {"max_depth": 1000}}]}')
 ORDER BY rank NULLS LAST;

-- Per group: one league per group; the champions of the groups are put
-- together into one deployed version.
CREATE TABLE league2 AS
SELECT id, t, u, v, CASE WHEN id % 2 = 0 THEN 'nl' ELSE 'lin' END AS grp,
	   CASE WHEN id % 2 = 0 THEN ynl ELSE ylin END AS y
  FROM league;
SELECT group_key, rank, candidate, deployed
  FROM streamml.train_league('pergroup', 'league2', 'y', ARRAY['u', 'v'],
	'{"order_by": "t", "group_by": "grp", "threads": 1,
	  "candidates": ["elasticnet", "gbt"]}') WHERE rank = 1 ORDER BY group_key;
SELECT v.group_key, v.kind
  FROM streamml.model_versions v JOIN streamml.models m ON m.name = v.model
 WHERE m.name = 'pergroup' AND v.version = m.deployed_version ORDER BY 1;
SELECT grp, count(streamml.predict('pergroup', l)) AS served
  FROM league2 l GROUP BY grp ORDER BY grp;

-- Two failing candidates are each reported under their own name and
-- error; a league whose candidates all fail is an error (it was a crash).
SELECT rank, candidate, kind, deployed, error
  FROM streamml.train_league('mixed2', 'league', 'ynl', ARRAY['u', 'v'],
	'{"order_by": "t", "threads": 1, "candidates": [
	  {"name": "bad1", "trainer": "gbt", "options": {"max_depth": -5}}, "tree",
	  {"name": "bad2", "trainer": "linreg", "options": {"l2": -1}}]}')
 ORDER BY rank NULLS LAST, candidate;
SELECT * FROM streamml.train_league('e', 'league', 'ynl', ARRAY['ynl', 'u'],
	'{"order_by": "t", "threads": 1}');
SELECT * FROM streamml.train_league('e', 'league', 'ynl', ARRAY['ynl', 'u'],
	'{"order_by": "t", "threads": 1}');

-- The deployed version is scored on the holdout from the whole row, also
-- for a source with a column named like the query's alias (s).
CREATE TABLE league_s AS SELECT t, u, v, ynl, t AS s FROM league;
SELECT count(*) FROM streamml.train_league('alias_s', 'league_s', 'ynl', ARRAY['u', 'v'],
	'{"order_by": "t", "threads": 1, "candidates": ["tree"]}');
SELECT count(*) FROM streamml.train_league('alias_s', 'league_s', 'ynl', ARRAY['u', 'v'],
	'{"order_by": "t", "threads": 1, "candidates": ["tree"]}');

-- Errors.
SELECT * FROM streamml.train_league('e', 'league', 'ynl', ARRAY['u', 'v']);
-- what every candidate shares is the league's, not a candidate's
SELECT * FROM streamml.train_league('e', 'league', 'ynl', ARRAY['u', 'v'],
	'{"order_by": "t", "deploy": "never", "candidates": [
	  {"name": "sneaky", "trainer": "gbt", "options": {"deploy": "always"}}]}');
SELECT * FROM streamml.train_league('e', 'league', 'ynl', ARRAY['u', 'v'],
	'{"order_by": "t", "candidates": [
	  {"name": "own_holdout", "trainer": "gbt", "options": {"test_fraction": 0.01}}]}');
SELECT * FROM streamml.train_league('e', 'league', 'ynl', ARRAY['u', 'v'],
	'{"order_by": "t", "candidates": ["svm"]}');
SELECT * FROM streamml.train_league('e', 'league', 'ynl', ARRAY['u', 'v'],
	'{"order_by": "t", "trees": 3}');

-- Every function and view of the tree models and the league has a comment.
SELECT p.oid::regprocedure AS function, obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
  FROM pg_proc p WHERE p.pronamespace = 'streamml'::regnamespace
   AND p.proname IN ('train_gbt', 'train_forest', 'train_tree', 'train_league',
					 'predict', 'predict_proba', 'predict_class')
 ORDER BY 1::text;
SELECT c.relname, obj_description(c.oid, 'pg_class') IS NOT NULL AS commented
  FROM pg_class c WHERE c.relnamespace = 'streamml'::regnamespace
   AND c.relname IN ('feature_importance', 'leaderboard')
 ORDER BY 1;
