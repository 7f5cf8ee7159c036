-- Challengers that are versions of a model (src/scoring/scorer_promote.c):
-- {"model": m, "version": v} in option "challengers", set_challengers'
-- versions, promote(scorer, model, version), auto_promote deploying it.

-- Model vc: version 1 is poor (trained on noise), version 2 fits
-- y = 2x + 1 exactly; version 1 is deployed.
CREATE TABLE vc_good AS
SELECT i AS id, (i % 10)::float8 AS x, (i % 10) * 2.0 + 1 AS y
  FROM generate_series(1, 200) i;
CREATE TABLE vc_bad AS
SELECT i AS id, (i % 10)::float8 AS x, ((i * 7) % 13)::float8 AS y
  FROM generate_series(1, 200) i;
SELECT version FROM streamml.train_linreg('vc', 'vc_bad', 'y', ARRAY['x']);
SELECT version FROM streamml.train_linreg('vc', 'vc_good', 'y', ARRAY['x']);
SELECT streamml.deploy('vc', 1);
-- another model with two versions
SELECT version FROM streamml.train_linreg('vc_other', 'vc_bad', 'y', ARRAY['x']);
SELECT version FROM streamml.train_linreg('vc_other', 'vc_good', 'y', ARRAY['x']);
CREATE TABLE vc_rows (id int PRIMARY KEY, x float8);

-- Errors.
SELECT streamml.create_scorer('vc_e1', 'vc_rows', 'vc', '{"challengers": [{"model": "vc"}]}');
SELECT streamml.create_scorer('vc_e2', 'vc_rows', 'vc', '{"challengers": [{"model": "vc", "version": 0}]}');
SELECT streamml.create_scorer('vc_e3', 'vc_rows', 'vc', '{"challengers": [{"model": "vc", "version": 9}]}');
SELECT streamml.create_scorer('vc_e4', 'vc_rows', 'vc', '{"challengers": [{"model": "vc", "version": 2}, {"model": "vc", "version": 2}]}');
SELECT streamml.create_scorer('vc_e5', 'vc_rows', 'vc', '{"challengers": ["vc_other", {"model": "vc_other", "version": 1}]}');
SELECT streamml.create_scorer('vc_e6', 'vc_rows', 'vc', '{"challengers": [{"model": "vc", "version": 2, "as": "x"}]}');
SELECT streamml.create_scorer('vc_e7', 'vc_rows', 'vc', '{"challengers": [3]}');
SELECT streamml.create_scorer('vc_e8', 'vc_rows', 'vc', '{"challengers": ["vc"]}');
-- a predictions table keyed (id, model) cannot take two versions of vc
CREATE TABLE vc_narrow (id int NOT NULL, model text NOT NULL, version int NOT NULL,
	prediction float8, probability float8, class text, role text NOT NULL,
	scored_at timestamptz NOT NULL, PRIMARY KEY (id, model));
SELECT streamml.create_scorer('vc_e9', 'vc_rows', 'vc',
	'{"into": "vc_narrow", "challengers": [{"model": "vc", "version": 2}]}');
-- a version of another model needs no version key: vc_narrow takes it
SELECT streamml.create_scorer('vc_n', 'vc_rows', 'vc',
	'{"into": "vc_narrow", "challengers": [{"model": "vc_other", "version": 1}]}');
INSERT INTO vc_rows VALUES (1, 1), (2, 2);
SELECT id, model, version, role, round(prediction::numeric, 3) AS prediction
  FROM vc_narrow ORDER BY id, role;
SELECT challenger, challenger_version, pairs FROM streamml.challengers WHERE scorer = 'vc_n';
SELECT streamml.set_challengers('vc_n', ARRAY['vc'], versions => ARRAY[2]);
SELECT streamml.set_challengers('vc_n', ARRAY['vc_other'], versions => ARRAY[1, 2]);
SELECT streamml.set_challengers('vc_n', ARRAY['vc_other'], versions => ARRAY[-1]);
SELECT streamml.drop_scorer('vc_n');
TRUNCATE vc_rows;

-- Champion vc (version 1), challenger vc version 2, promoted automatically
-- once 100 labelled keys show it better: the promotion deploys version 2.
SELECT streamml.create_scorer('vc_s', 'vc_rows', 'vc',
	'{"challengers": [{"model": "vc", "version": 2}], "auto_promote": {"min_rows": 100, "alpha": 0.01}}');
-- the predictions table it made is keyed by version too
SELECT array_agg(a.attname ORDER BY k.ord) AS primary_key
  FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(att, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.att
 WHERE i.indrelid = 'vc_s'::regclass AND i.indisprimary;
CREATE TABLE vc_labels (id int, y float8);
SELECT streamml.track_outcomes('vc_s', 'vc_labels', '{"actual": "y"}');
INSERT INTO vc_rows SELECT i, i % 10 FROM generate_series(1, 300) i;
SELECT model, version, role, count(*) FROM vc_s GROUP BY 1, 2, 3 ORDER BY 3;
-- a row scored twice by a version is still an error
INSERT INTO vc_s (id, model, version, role, scored_at) VALUES (1, 'vc', 2, 'challenger', now());
-- 50 labels: fewer pairs than min_rows, no promotion
INSERT INTO vc_labels SELECT i, (i % 10) * 2 + 1 FROM generate_series(1, 50) i;
SELECT scorer, champion, challenger, challenger_version, pairs,
	   mean_loss_difference > 0 AS challenger_better, p_value < 0.01 AS significant
  FROM streamml.challengers WHERE scorer = 'vc_s';
-- the pairs equal a from-scratch computation over streamml.outcomes
SELECT count(*) AS pairs, round(avg(c.loss - g.loss)::numeric, 9) AS mean_loss_difference
  FROM streamml.outcomes c JOIN streamml.outcomes g
	ON g.scorer = c.scorer AND g.key = c.key AND g.role = 'challenger'
 WHERE c.scorer = 'vc_s' AND c.role = 'champion';
SELECT round(mean_loss_difference::numeric, 9) FROM streamml.challengers WHERE scorer = 'vc_s';
-- live_metrics shows the two versions side by side
SELECT model, version, role, predictions, labelled, round(rmse::numeric, 6) AS rmse
  FROM streamml.live_metrics WHERE scorer = 'vc_s' AND group_key IS NULL ORDER BY role;
-- 100 more labels: the batch that reaches min_rows promotes, i.e. deploys, version 2;
-- another role inserts them, but the deployment is the scorer owner's doing
CREATE ROLE vc_labeller;
GRANT INSERT ON vc_labels TO vc_labeller;
SET ROLE vc_labeller;
INSERT INTO vc_labels SELECT i, (i % 10) * 2 + 1 FROM generate_series(51, 150) i;
RESET ROLE;
REVOKE ALL ON vc_labels FROM vc_labeller;
DROP ROLE vc_labeller;
SELECT model, challengers, last_promotion->>'how' AS how,
	   last_promotion->>'from' AS "from", last_promotion->>'from_version' AS from_version,
	   last_promotion->>'to' AS "to", last_promotion->>'to_version' AS to_version,
	   (last_promotion->>'pairs')::int AS pairs,
	   (last_promotion->>'p_value')::float8 < 0.01 AS significant
  FROM streamml.scorers WHERE name = 'vc_s';
SELECT deployed_version FROM streamml.models WHERE name = 'vc';
SELECT model, version, deployed_by = current_user::regrole AS by_scorer_owner
  FROM streamml.deployments WHERE model = 'vc' ORDER BY id;
-- new rows are served by version 2
INSERT INTO vc_rows SELECT i, i % 10 FROM generate_series(301, 310) i;
SELECT model, version, role, count(*) FROM vc_s WHERE id > 300 GROUP BY 1, 2, 3;

-- By hand: version 1 back as a challenger (set_challengers' versions),
-- then promoted with promote(scorer, model, version), which deploys it.
SELECT streamml.set_challengers('vc_s', ARRAY['vc'], versions => ARRAY[1]);
SELECT challenger, challenger_version, pairs FROM streamml.challengers WHERE scorer = 'vc_s';
SELECT options->'challengers' AS challengers FROM streamml.scorers WHERE name = 'vc_s';
INSERT INTO vc_rows SELECT i, i % 10 FROM generate_series(311, 312) i;
SELECT model, version, role, count(*) FROM vc_s WHERE id > 310 GROUP BY 1, 2, 3 ORDER BY 3;
SELECT streamml.promote('vc_s', 'vc');
SELECT streamml.promote('vc_s', 'vc', 3);
SELECT streamml.promote('vc_s', 'vc', 1);
SELECT deployed_version FROM streamml.models WHERE name = 'vc';
SELECT model, challengers, last_promotion->>'how' AS how,
	   last_promotion->>'from_version' AS from_version, last_promotion->>'to_version' AS to_version
  FROM streamml.scorers WHERE name = 'vc_s';
-- a version challenger that is the deployed version is not scored twice
SELECT streamml.set_challengers('vc_s', ARRAY['vc'], versions => ARRAY[1]);
INSERT INTO vc_rows SELECT i, i % 10 FROM generate_series(313, 314) i;
SELECT model, version, role, count(*) FROM vc_s WHERE id > 312 GROUP BY 1, 2, 3;
SELECT streamml.untrack_outcomes('vc_s');
SELECT streamml.drop_scorer('vc_s');

-- Promoting a version deploys it: the model's owner only.  A role that may
-- use vc (granted) shadow-scores its versions, but cannot have them
-- promoted automatically, nor promote one by hand.
CREATE ROLE vc_user;
GRANT CREATE ON SCHEMA public TO vc_user;
CREATE TABLE vc_user_rows (id int PRIMARY KEY, x float8);
GRANT SELECT, TRIGGER ON vc_user_rows TO vc_user;
SELECT streamml.grant_model('vc', 'vc_user');
SET ROLE vc_user;
SELECT streamml.create_scorer('vc_u', 'vc_user_rows', 'vc',
	'{"challengers": [{"model": "vc", "version": 2}], "auto_promote": {"min_rows": 100}}');
SELECT streamml.create_scorer('vc_u', 'vc_user_rows', 'vc',
	'{"challengers": [{"model": "vc", "version": 2}]}');
SELECT streamml.promote('vc_u', 'vc', 2);
SELECT streamml.drop_scorer('vc_u');
DROP TABLE vc_u;
RESET ROLE;
SELECT deployed_version FROM streamml.models WHERE name = 'vc';
DROP TABLE vc_user_rows;
REVOKE CREATE ON SCHEMA public FROM vc_user;
SELECT streamml.revoke_model('vc', 'vc_user');
DROP ROLE vc_user;
