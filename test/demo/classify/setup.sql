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

CREATE TABLE model_events (id serial, at_label bigint, kind text, version int, detail text);
-- Trains on the first rows (and then creates the scorer and the tracker),
-- then retrains every N new labels.
-- MONITOR PLUG-IN POINT: once streamml.create_monitor lands, the retraining
-- below becomes a monitor of 'malignant' (every 100 new rows, or on drift
-- of its live errors), created right after the scorer and the tracker.
CREATE FUNCTION watch_classifier(first_rows int DEFAULT 100, every_rows int DEFAULT 100)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r record;
	n bigint := (SELECT count(*) FROM labelled);
	a bigint := (SELECT max(arrival) FROM labels);
	features text[] := (SELECT array_agg('x' || i ORDER BY i) FROM generate_series(1, 30) i);
BEGIN
	IF NOT EXISTS (SELECT 1 FROM streamml.models WHERE name = 'malignant') THEN
		IF n < first_rows THEN RETURN 'waiting'; END IF;
		SELECT * INTO r FROM streamml.train_logreg('malignant', 'labelled', 'malignant', features,
			'{"l2": 0.01, "test_fraction": 0.2, "order_by": "arrival"}');
		INSERT INTO model_events (at_label, kind, version, detail)
		VALUES (a, 'train', r.version, format('first training on %s labelled rows: holdout accuracy %s, roc_auc %s',
		        r.rows_used, round((r.metrics->>'accuracy')::numeric, 3), round((r.metrics->>'roc_auc')::numeric, 3)));
		-- every later row is scored on arrival, and its label joined with
		-- its prediction when it comes
		PERFORM streamml.create_scorer('malignant_scorer', 'patients', 'malignant',
		            '{"into": "patient_scores"}');
		PERFORM streamml.track_outcomes('malignant_scorer', 'labels',
		            '{"actual": "malignant", "bucket": "2 seconds"}');
		RETURN 'trained version ' || r.version || '; scorer and tracker created';
	END IF;
	FOR r IN SELECT * FROM streamml.retrain('malignant', jsonb_build_object('min_new_rows', every_rows)) LOOP
		INSERT INTO model_events (at_label, kind, version, detail)
		VALUES (a, CASE WHEN r.deployed THEN 'retrain+deploy' ELSE 'retrain' END, r.version,
		        format('%s labelled rows: holdout accuracy %s', r.rows_used, round((r.metrics->>'accuracy')::numeric, 3)));
		RETURN 'retrained: version ' || r.version;
	END LOOP;
	RETURN 'nothing to do';
END
$$;
