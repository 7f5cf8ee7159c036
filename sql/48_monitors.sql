-- Monitors (src/monitor/monitor*.c): create_monitor and drop_monitor, their
-- errors, and 'error' monitors fed by outcomes in the outcome's
-- transaction.  Retraining, 'data' and 'rows' checks run in the monitor
-- worker and are tested by TAP 054.

-- A binary classifier on rows with a time column, and a regression.
CREATE TABLE mo_train AS
SELECT i AS id, '2026-01-01'::timestamptz + i * interval '1 second' AS ts,
	   (i % 7)::float8 AS x, (i % 7) > 3 AS y, 2.0 * (i % 7) + 1 AS v
  FROM generate_series(1, 300) i;
SELECT model, version FROM streamml.train_logreg('mo_clf', 'mo_train', 'y', ARRAY['x'],
	'{"order_by": "ts", "l2": 1}');
SELECT model, version FROM streamml.train_linreg('mo_reg', 'mo_train', 'v', ARRAY['x']);

-- Errors.
SELECT streamml.create_monitor('m', 'mo_clf', 'errors');
SELECT streamml.create_monitor('m', 'nope', 'error');
SELECT streamml.create_monitor('', 'mo_clf', 'error');
SELECT streamml.create_monitor('m', 'mo_clf', 'error', '{"colour": 1}');
SELECT streamml.create_monitor('m', 'mo_clf', 'rows', '{"detector": "ddm"}');
SELECT streamml.create_monitor('m', 'mo_clf', 'error', '{"action": "page"}');
SELECT streamml.create_monitor('m', 'mo_clf', 'error', '{"cooldown": "-1 hour"}');
SELECT streamml.create_monitor('m', 'mo_clf', 'error', '{"cooldown": "soon"}');
SELECT streamml.create_monitor('m', 'mo_clf', 'error', '{"detector": "adwin"}');
SELECT streamml.create_monitor('m', 'mo_clf', 'error', '{"detector": "lasso"}');
SELECT streamml.create_monitor('m', 'mo_clf', 'error', '{"detector": "ddm", "params": {"alpha": 1}}');
SELECT streamml.create_monitor('m', 'mo_clf', 'error', '{"params": [1]}');
SELECT streamml.create_monitor('m', 'mo_reg', 'error', '{"action": "retrain"}');
SELECT streamml.create_monitor('m', 'mo_reg', 'rows');
SELECT streamml.create_monitor('m', 'mo_clf', 'error', '{"action": "retrain", "test_fraction": 0}');
SELECT streamml.create_monitor('m', 'mo_clf', 'data', '{"method": "chi2"}');
SELECT streamml.create_monitor('m', 'mo_clf', 'data', '{"features": "x"}');
SELECT streamml.create_monitor('m', 'mo_clf', 'data', '{"interval": "0 seconds"}');
SELECT streamml.create_monitor('m', 'mo_clf', 'data', '{"interval": "0.5 seconds"}');
-- now() plus an interval or a cooldown must stay a timestamp (one such
-- monitor stopped the database's monitor worker at every check)
SELECT streamml.create_monitor('m', 'mo_clf', 'data', '{"interval": "100000000 years"}');
SELECT streamml.create_monitor('m', 'mo_clf', 'error', '{"cooldown": "1000 years"}');
SELECT streamml.create_monitor('m', 'mo_clf', 'data', '{"features": []}');
SELECT streamml.create_monitor('m', 'mo_clf', 'error', '{"channel": ""}');
SELECT streamml.create_monitor('m', 'mo_clf', 'error', jsonb_build_object('channel', repeat('c', 64)));
SELECT streamml.create_monitor(repeat('m', 64), 'mo_clf', 'error');
-- what a data or rows monitor reads is checked at creation, as its owner
-- would read it at each check, in PostgreSQL's words
SELECT streamml.create_monitor('m', 'mo_clf', 'rows', '{"order_by": "nosuchcol"}');
SELECT streamml.create_monitor('m', 'mo_clf', 'data', '{"source": "nosuch_table"}');
SELECT streamml.create_monitor('m', 'mo_clf', 'data', '{"features": ["nosuch"]}');
SELECT streamml.create_monitor('m', 'mo_clf', 'data', '{"features": [1]}');
SELECT streamml.create_monitor('m', 'mo_clf', 'rows', '{"order_by": ""}');
-- a "source" table is stored by its schema-qualified name, resolved with
-- the creator's search_path: the worker reads it under its own
CREATE SCHEMA mo_s;
CREATE TABLE mo_s.mo_src AS SELECT * FROM mo_train;
SET search_path = mo_s, public;
SELECT streamml.create_monitor('mo_canon', 'mo_clf', 'data', '{"source": "mo_src", "interval": "1 hour"}');
RESET search_path;
SELECT options->>'source' AS source FROM streamml.monitors WHERE name = 'mo_canon';
SELECT streamml.drop_monitor('mo_canon');
SELECT streamml.drop_monitor('nope');

-- Defaults: a one-sided CUSUM of the error indicator for classifiers,
-- River's PageHinkley on the absolute error (upward) for regressions.
SELECT streamml.create_monitor('mo_clf_default', 'mo_clf', 'error');
SELECT streamml.create_monitor('mo_reg_default', 'mo_reg', 'error', '{"action": "notify"}');
SELECT streamml.create_monitor('mo_clf_default', 'mo_clf', 'error');
SELECT name, model, kind, action, cooldown, detector, detector_params, observed,
	   last_event, owner = current_user::regrole AS mine
  FROM streamml.monitors ORDER BY name;
SELECT streamml.drop_monitor('mo_clf_default');
SELECT streamml.drop_monitor('mo_reg_default');

-- An error monitor with a quick CUSUM: live rows scored as they load,
-- labels joined as they arrive.
SELECT streamml.create_monitor('mo_err', 'mo_clf', 'error',
	'{"detector": "cusum", "params": {"mode": "up", "min_instances": 20, "slack": 0.2, "threshold": 4},
	  "cooldown": "1 hour"}');
CREATE TABLE mo_live (id int PRIMARY KEY, x float8);
SELECT streamml.create_scorer('mo_live_s', 'mo_live', 'mo_clf');
CREATE TABLE mo_labels (id int, y boolean);
SELECT streamml.track_outcomes('mo_live_s', 'mo_labels', '{"actual": "y"}');
INSERT INTO mo_live SELECT i, i % 7 FROM generate_series(1, 400) i;
-- 100 labels as the model learnt them: no drift
INSERT INTO mo_labels SELECT i, (i % 7) > 3 FROM generate_series(1, 100) i;
SELECT observed, detector_state->>'n' AS n, detector_state->>'reference' AS reference,
	   last_event, version FROM streamml.monitors WHERE name = 'mo_err';
-- a rolled-back batch leaves the detector as it was
BEGIN;
INSERT INTO mo_labels SELECT i, (i % 7) <= 3 FROM generate_series(101, 150) i;
SELECT observed FROM streamml.monitors WHERE name = 'mo_err';
ROLLBACK;
SELECT observed FROM streamml.monitors WHERE name = 'mo_err';
-- the concept flips: every label is now the other class
INSERT INTO mo_labels SELECT i, (i % 7) <= 3 FROM generate_series(101, 130) i;
SELECT observed, last_event, last_action, cooldown_until > now() + interval '59 minutes' AS cooling
  FROM streamml.monitors WHERE name = 'mo_err';
SELECT model, version, monitor, event, details->>'position' AS position,
	   details->>'action' AS action, details->>'note' AS note,
	   details->'state'->>'method' AS method
  FROM streamml.model_events WHERE model = 'mo_clf' ORDER BY id;
-- after a detection the detector starts again, its reference now the
-- drifted error rate: the same drift is not reported twice
INSERT INTO mo_labels SELECT i, (i % 7) <= 3 FROM generate_series(131, 200) i;
SELECT event, details->>'position' AS position, details->>'action' AS action,
	   details->>'note' AS note
  FROM streamml.model_events WHERE model = 'mo_clf' ORDER BY id;

-- A new deployed version starts a new detector; the old version's
-- outcomes are not fed to it.
SELECT version, deployed FROM streamml.retrain('mo_clf');
INSERT INTO mo_labels SELECT i, (i % 7) > 3 FROM generate_series(201, 210) i;
SELECT observed, version FROM streamml.monitors WHERE name = 'mo_err';
INSERT INTO mo_live SELECT i, i % 7 FROM generate_series(401, 420) i;
INSERT INTO mo_labels SELECT i, (i % 7) > 3 FROM generate_series(401, 420) i;
SELECT observed, version, detector_state->>'n' AS n FROM streamml.monitors WHERE name = 'mo_err';
-- a rollback is an event of the model
SELECT streamml.rollback('mo_clf');
SELECT model, version, monitor, event, details FROM streamml.model_events
 WHERE model = 'mo_clf' AND event = 'rolled_back';

-- A monitor sees only its owner's outcomes: another role's tracker, even of
-- a scorer of the model granted to it, feeds it nothing (its predictions
-- table, which it may write, could say anything).
CREATE ROLE mo_other;
GRANT CREATE ON SCHEMA public TO mo_other;
SELECT streamml.grant_model('mo_clf', 'mo_other');
SELECT observed AS observed_before FROM streamml.monitors WHERE name = 'mo_err' \gset
SET ROLE mo_other;
CREATE TABLE mo_o_live (id int PRIMARY KEY, x float8);
CREATE TABLE mo_o_labels (id int, y boolean);
SELECT streamml.create_scorer('mo_o_s', 'mo_o_live', 'mo_clf');
SELECT streamml.track_outcomes('mo_o_s', 'mo_o_labels', '{"actual": "y"}');
INSERT INTO mo_o_live SELECT i, i % 7 FROM generate_series(1, 50) i;
INSERT INTO mo_o_labels SELECT i, (i % 7) <= 3 FROM generate_series(1, 50) i;
SELECT count(*) AS other_outcomes FROM streamml.outcomes;
RESET ROLE;
SELECT observed = :observed_before AS unchanged FROM streamml.monitors WHERE name = 'mo_err';
-- Users read only their own monitors and events, and write neither.
SET ROLE mo_other;
SELECT count(*) FROM streamml.monitors;
SELECT count(*) FROM streamml.model_events;
SELECT streamml.create_monitor('m', 'mo_clf', 'error');
SELECT streamml.drop_monitor('mo_err');
INSERT INTO streamml.model_events (model, event, owner) VALUES ('mo_clf', 'deployed', 'mo_other');
UPDATE streamml.monitors_catalog SET cooldown = '0';
RESET ROLE;
DROP OWNED BY mo_other;
DROP ROLE mo_other;

-- Detections that cannot act (cooling down) are logged once, then
-- counted in detections_suppressed; the next that acts says how many.
SELECT streamml.create_monitor('mo_sup', 'mo_clf', 'error',
	'{"detector": "cusum", "params": {"mode": "up", "min_instances": 20, "slack": 0.2, "threshold": 4},
	  "cooldown": "1 hour"}');
INSERT INTO mo_live SELECT i, i % 7 FROM generate_series(2001, 2500) i;
CREATE FUNCTION mo_stretch(first int) RETURNS void LANGUAGE sql AS $$
	-- 60 labels as learnt, then 10 of the other class: CUSUM detects
	INSERT INTO mo_labels SELECT i, (i % 7) > 3 FROM generate_series(first, first + 59) i;
	INSERT INTO mo_labels SELECT i, (i % 7) <= 3 FROM generate_series(first + 60, first + 69) i;
$$;
SELECT mo_stretch(2001), mo_stretch(2071), mo_stretch(2141), mo_stretch(2211);
SELECT detections_suppressed, cooldown_until > now() AS cooling
  FROM streamml.monitors WHERE name = 'mo_sup';
SELECT event, details->>'action' AS action, details->>'note' AS note
  FROM streamml.model_events WHERE monitor = 'mo_sup' ORDER BY id;
-- the cooldown ends: the next detection acts, and tells of those before it
UPDATE streamml.monitors_catalog SET cooldown_until = now() - interval '1 second'
 WHERE name = 'mo_sup';
SELECT mo_stretch(2281);
SELECT detections_suppressed FROM streamml.monitors WHERE name = 'mo_sup';
SELECT event, details->>'action' AS action, details->>'suppressed_before' AS suppressed_before
  FROM streamml.model_events WHERE monitor = 'mo_sup' ORDER BY id;
SELECT streamml.drop_monitor('mo_sup');
DROP FUNCTION mo_stretch(int);

-- drop_monitor: the events stay.  drop_model drops its monitors.
SELECT streamml.drop_monitor('mo_err');
SELECT count(*) AS monitors FROM streamml.monitors;
SELECT count(*) > 0 AS events FROM streamml.model_events WHERE monitor = 'mo_err';
SELECT streamml.create_monitor('mo_err2', 'mo_reg', 'error');
SELECT streamml.drop_model('mo_reg');
SELECT count(*) AS monitors FROM streamml.monitors;
SELECT streamml.untrack_outcomes('mo_live_s');
SELECT streamml.drop_scorer('mo_live_s');
DELETE FROM streamml.model_events;
