-- Seed 000: labelled rows through Kafka, a logistic regression trained on
-- the first of them, every later row scored on arrival by a scorer, its
-- label arriving after it and joined by an outcome tracker, and live
-- accuracy (streamml.live_metrics).  One topic carries both kinds of
-- message, routed to two tables by their "type" field.
CREATE TABLE patients (id int PRIMARY KEY,
	x1 float8, x2 float8, x3 float8, x4 float8, x5 float8, x6 float8, x7 float8, x8 float8,
	x9 float8, x10 float8, x11 float8, x12 float8, x13 float8, x14 float8, x15 float8,
	x16 float8, x17 float8, x18 float8, x19 float8, x20 float8, x21 float8, x22 float8,
	x23 float8, x24 float8, x25 float8, x26 float8, x27 float8, x28 float8, x29 float8,
	x30 float8, kafka_ts timestamptz);
CREATE SEQUENCE label_arrival;
CREATE TABLE labels (id int PRIMARY KEY, malignant boolean NOT NULL,
                     arrival bigint DEFAULT nextval('label_arrival'));  -- order of arrival
SELECT streamml.create_stream('patients', 'patients', :'brokers', 'patients', 'json',
	'{"flush_ms": 50, "route_field": "type", "routes": {"label": "labels"},
	  "columns": {"kafka_ts": "$timestamp"}}');

-- The scorer's predictions table, made ahead of the scorer (created with
-- the first model) so that the views below exist from the start.
CREATE TABLE patient_scores (
	id int NOT NULL, model text NOT NULL, version int NOT NULL,
	prediction float8, probability float8, class text,
	role text NOT NULL DEFAULT 'champion', scored_at timestamptz NOT NULL,
	PRIMARY KEY (id, model));
CREATE VIEW scores AS
SELECT s.id, s.probability AS p_malignant, s.version, p.kafka_ts,
       pg_xact_commit_timestamp(s.xmin) AS committed_at
  FROM patient_scores s JOIN patients p USING (id);

-- The labelled rows, in the order their labels arrived.
CREATE VIEW labelled AS
SELECT p.*, l.malignant, l.arrival FROM patients p JOIN labels l USING (id);

-- Each scored row once its label is in (streamml.outcomes, joined by the
-- tracker in the label's transaction), with the running accuracy.
CREATE VIEW live_accuracy AS
SELECT l.arrival, (o.key->>'id')::int AS id, o.version, l.malignant, o.probability AS p_malignant,
       o.class = o.actual_class AS correct,
       avg((o.class = o.actual_class)::int) OVER (ORDER BY l.arrival) AS cumulative,
       avg((o.class = o.actual_class)::int) OVER (ORDER BY l.arrival ROWS 49 PRECEDING) AS last_50
  FROM streamml.outcomes o JOIN labels l ON l.id = (o.key->>'id')::int
 WHERE o.model = 'malignant';

-- The first training (the watcher's; the monitors' events are in
-- streamml.model_events from then on).
CREATE TABLE first_training (at_label bigint, version int, detail text);
-- What happened to the model, for the report: the first training, then
-- streamml.model_events with the newest label committed by each event.
CREATE VIEW model_events AS
SELECT 0::bigint AS id, at_label, 'train' AS kind, version, NULL::text AS monitor, detail
  FROM first_training
UNION ALL
SELECT e.id, (SELECT max(l.arrival) FROM labels l WHERE pg_xact_commit_timestamp(l.xmin) <= e.at),
       e.event, coalesce((e.details->>'version')::int, e.version), e.monitor, e.details::text
  FROM streamml.model_events e
 WHERE e.model = 'malignant';
-- Trains on the first rows, then creates the scorer, the tracker and the
-- monitors that retrain from then on; returns what it did.  (A monitor
-- watches a model that exists, so the first training stays here.)
CREATE FUNCTION watch_classifier(first_rows int DEFAULT 100, every_rows int DEFAULT 100)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r record;
	n bigint := (SELECT count(*) FROM labelled);
	a bigint := (SELECT max(arrival) FROM labels);
	features text[] := (SELECT array_agg('x' || i ORDER BY i) FROM generate_series(1, 30) i);
BEGIN
	IF EXISTS (SELECT 1 FROM streamml.models WHERE name = 'malignant') THEN
		RETURN 'nothing to do';
	END IF;
	IF n < first_rows THEN RETURN 'waiting'; END IF;
	SELECT * INTO r FROM streamml.train_logreg('malignant', 'labelled', 'malignant', features,
		'{"l2": 0.01, "test_fraction": 0.2, "order_by": "arrival"}');
	INSERT INTO first_training (at_label, version, detail)
	VALUES (a, r.version, format('first training on %s labelled rows: holdout accuracy %s, roc_auc %s',
	        r.rows_used, round((r.metrics->>'accuracy')::numeric, 3), round((r.metrics->>'roc_auc')::numeric, 3)));
	-- every later row is scored on arrival, and its label joined with
	-- its prediction when it comes
	PERFORM streamml.create_scorer('malignant_scorer', 'patients', 'malignant',
	            '{"into": "patient_scores"}');
	PERFORM streamml.track_outcomes('malignant_scorer', 'labels',
	            '{"actual": "malignant", "bucket": "2 seconds"}');
	-- The monitors.  Every 100 new labelled rows (rows of labelled newer,
	-- by arrival, than the last training's): retrain, deploy if better on
	-- the newest 20%.  And on drift of the live error rate: the default
	-- detector for a classifier (a one-sided CUSUM of the error indicator,
	-- README "Monitors"), but with its reference rate taken from the first
	-- 100 outcomes instead of 500: this data set has 569 rows, so the
	-- default would never start.  The intervals are short because the demo
	-- lasts seconds.
	PERFORM streamml.create_monitor('malignant_rows', 'malignant', 'rows',
	            jsonb_build_object('action', 'retrain', 'min_rows', every_rows,
	                               'interval', '1 second', 'cooldown', '1 second'));
	PERFORM streamml.create_monitor('malignant_error', 'malignant', 'error',
	            '{"action": "retrain", "min_rows": 100, "cooldown": "5 seconds",
	              "params": {"mode": "up", "min_instances": 100, "slack": 0.2, "threshold": 32}}');
	RETURN 'trained version ' || r.version || '; scorer, tracker and monitors created';
END
$$;
