-- Champion and challengers (src/scoring/scorer_promote.c), and row-level
-- security on a tracker's source (src/quality/outcomeinsert.c).

-- Two regressions of the same feature: ch_good fits y = 2x + 1 exactly,
-- ch_bad is poor.
CREATE TABLE ch_train AS
SELECT i AS id, (i % 10)::float8 AS x, (i % 10) * 2.0 + 1 AS y,
	   ((i * 7) % 13)::float8 AS noise
  FROM generate_series(1, 200) i;
SELECT version FROM streamml.train_linreg('ch_good', 'ch_train', 'y', ARRAY['x']);
CREATE TABLE ch_bad_train AS SELECT x, noise AS y FROM ch_train;
SELECT version FROM streamml.train_linreg('ch_bad', 'ch_bad_train', 'y', ARRAY['x']);
CREATE TABLE ch_rows (id int PRIMARY KEY, x float8);

-- Errors.
SELECT streamml.create_scorer('ch_e1', 'ch_rows', 'ch_bad', '{"challengers": ["ch_bad"]}');
SELECT streamml.create_scorer('ch_e2', 'ch_rows', 'ch_bad', '{"challengers": "ch_good"}');
SELECT streamml.create_scorer('ch_e3', 'ch_rows', 'ch_bad', '{"challengers": ["nope"]}');
SELECT streamml.create_scorer('ch_e4', 'ch_rows', 'ch_bad', '{"challengers": ["ch_good", "ch_good"]}');
SELECT streamml.create_scorer('ch_e5', 'ch_rows', 'ch_bad', '{"auto_promote": {}}');
SELECT streamml.create_scorer('ch_e6', 'ch_rows', 'ch_bad', '{"challengers": ["ch_good"], "auto_promote": {"min_rows": 5}}');
SELECT streamml.create_scorer('ch_e7', 'ch_rows', 'ch_bad', '{"challengers": ["ch_good"], "auto_promote": {"alfa": 0.1}}');
-- a challenger predicts what the champion predicts: not a classifier beside a regression
CREATE TABLE ch_clf_train AS SELECT x, x > 4 AS big FROM ch_train;
SELECT version FROM streamml.train_logreg('ch_clf', 'ch_clf_train', 'big', ARRAY['x'], '{"l2": 1}');
SELECT streamml.create_scorer('ch_e8', 'ch_rows', 'ch_bad', '{"challengers": ["ch_clf"]}');
SELECT streamml.drop_model('ch_clf');
DROP TABLE ch_clf_train;

-- The paired test by hand: all differences 1 (p 0), mean 0.5 with
-- variance 1 over 4 pairs (z = 1, p = 1 - Phi(1)), fewer than 2 pairs.
SELECT streamml.paired_loss_p_value(3, 3, 3) AS all_equal,
	   round(streamml.paired_loss_p_value(4, 2, 4)::numeric, 6) AS z_one,
	   streamml.paired_loss_p_value(1, 1, 1) AS one_pair;

-- Champion ch_bad, challenger ch_good, promoted automatically once 100
-- labelled keys show the challenger better.
SELECT streamml.create_scorer('ch_s', 'ch_rows', 'ch_bad',
	'{"challengers": ["ch_good"], "auto_promote": {"min_rows": 100, "alpha": 0.01}}');
CREATE TABLE ch_labels (id int, y float8);
SELECT streamml.track_outcomes('ch_s', 'ch_labels', '{"actual": "y"}');
INSERT INTO ch_rows SELECT i, i % 10 FROM generate_series(1, 300) i;
SELECT model, role, count(*) FROM ch_s GROUP BY 1, 2 ORDER BY 1;
-- 50 labels: fewer pairs than min_rows, no promotion
INSERT INTO ch_labels SELECT i, (i % 10) * 2 + 1 FROM generate_series(1, 50) i;
SELECT scorer, champion, challenger, pairs, mean_loss_difference > 0 AS challenger_better,
	   p_value < 0.01 AS significant FROM streamml.challengers;
-- the pairs equal a from-scratch computation over streamml.outcomes
SELECT count(*) AS pairs, round(avg(c.loss - g.loss)::numeric, 9) AS mean_loss_difference
  FROM streamml.outcomes c JOIN streamml.outcomes g
	ON g.scorer = c.scorer AND g.key = c.key AND g.role = 'challenger'
 WHERE c.scorer = 'ch_s' AND c.role = 'champion';
SELECT round(mean_loss_difference::numeric, 9) FROM streamml.challengers;
-- live_metrics shows them side by side
SELECT model, role, predictions, labelled, round(rmse::numeric, 6) AS rmse
  FROM streamml.live_metrics WHERE scorer = 'ch_s' AND group_key IS NULL ORDER BY role;
-- 100 more labels: the batch that reaches min_rows promotes ch_good
INSERT INTO ch_labels SELECT i, (i % 10) * 2 + 1 FROM generate_series(51, 150) i;
SELECT model, challengers, champion_since IS NOT NULL AS since,
	   last_promotion->>'how' AS how, last_promotion->>'from' AS "from",
	   last_promotion->>'to' AS "to", (last_promotion->>'pairs')::int AS pairs,
	   (last_promotion->>'p_value')::float8 < 0.01 AS significant
  FROM streamml.scorers WHERE name = 'ch_s';
-- new rows are served by the new champion
INSERT INTO ch_rows SELECT i, i % 10 FROM generate_series(301, 310) i;
SELECT model, role, count(*) FROM ch_s WHERE id > 300 GROUP BY 1, 2;

-- By hand: ch_bad back as a challenger (its pairs start afresh), promoted.
SELECT streamml.set_challengers('ch_s', ARRAY['ch_bad']);
SELECT challenger, pairs FROM streamml.challengers WHERE scorer = 'ch_s';
SELECT streamml.promote('ch_s', 'ch_good');
SELECT streamml.promote('nope', 'ch_bad');
SELECT streamml.set_challengers('ch_s', ARRAY['ch_good']);
SELECT streamml.set_challengers('ch_s', NULL);
SELECT streamml.promote('ch_s', 'ch_bad');
SELECT model, challengers, last_promotion->>'how' AS how, last_promotion->>'from' AS "from"
  FROM streamml.scorers WHERE name = 'ch_s';
SELECT streamml.set_challengers('ch_s', ARRAY[]::text[]);
SELECT count(*) AS challengers FROM streamml.challengers WHERE scorer = 'ch_s';
SELECT streamml.untrack_outcomes('ch_s');
SELECT streamml.drop_scorer('ch_s');

-- Row-level security: the tracker reads its source as its owner, so a
-- label the owner's policy hides is not an outcome.
CREATE ROLE ch_rls;
GRANT CREATE ON SCHEMA public TO ch_rls;
CREATE TABLE ch_rls_rows (id int PRIMARY KEY, x float8);
CREATE TABLE ch_rls_labels (id int, y float8, tenant text);
GRANT SELECT, TRIGGER ON ch_rls_rows TO ch_rls;
GRANT SELECT, TRIGGER ON ch_rls_labels TO ch_rls;
GRANT SELECT ON ch_train TO ch_rls;
ALTER TABLE ch_rls_labels ENABLE ROW LEVEL SECURITY;
CREATE POLICY ch_rls_tenant ON ch_rls_labels FOR SELECT TO ch_rls USING (tenant = 'a');
SET ROLE ch_rls;
SELECT version FROM streamml.train_linreg('ch_rls_m', 'ch_train', 'y', ARRAY['x']);
SELECT streamml.create_scorer('ch_rls_s', 'ch_rls_rows', 'ch_rls_m');
SELECT streamml.track_outcomes('ch_rls_s', 'ch_rls_labels', '{"actual": "y"}');
RESET ROLE;
INSERT INTO ch_rls_rows SELECT i, i % 10 FROM generate_series(1, 10) i;
INSERT INTO ch_rls_labels SELECT i, (i % 10) * 2 + 1, CASE WHEN i % 2 = 1 THEN 'a' ELSE 'b' END
  FROM generate_series(1, 10) i;
-- only tenant a's labels (the odd keys) are outcomes; nothing pending
SELECT key->>'id' AS id FROM streamml.outcomes WHERE scorer = 'ch_rls_s' ORDER BY 1;
SELECT count(*) AS pending FROM streamml.pending_outcomes;
-- without the policy for the owner, every label counts
ALTER TABLE ch_rls_labels DISABLE ROW LEVEL SECURITY;
INSERT INTO ch_rls_labels VALUES (2, 5, 'b');
SELECT count(*) AS outcomes FROM streamml.outcomes WHERE scorer = 'ch_rls_s';
SET ROLE ch_rls;
SELECT streamml.untrack_outcomes('ch_rls_s');
SELECT streamml.drop_scorer('ch_rls_s');
RESET ROLE;
DROP OWNED BY ch_rls;
DROP ROLE ch_rls;
