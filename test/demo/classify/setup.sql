-- Seed 000: labelled rows through Kafka, a logistic regression trained on
-- the first of them, every later row scored on arrival, its label arriving
-- after it, and live accuracy.  One topic carries both kinds of message,
-- routed to two tables by their "type" field.
--
-- PLUG-IN POINT: [scorer] the trigger becomes streamml.create_scorer('malignant', 'patients', ...).
CREATE TABLE patients (id int PRIMARY KEY, features float8[] NOT NULL, kafka_ts timestamptz);
CREATE SEQUENCE label_arrival;
CREATE TABLE labels (id int PRIMARY KEY, malignant boolean NOT NULL,
                     arrival bigint DEFAULT nextval('label_arrival'));  -- order of arrival
SELECT streamml.create_stream('patients', 'patients', :'brokers', 'patients', 'json',
	'{"flush_ms": 50, "route_field": "type", "routes": {"label": "labels"},
	  "columns": {"kafka_ts": "$timestamp"}}');

CREATE TABLE scores (
	id int PRIMARY KEY, p_malignant float8 NOT NULL, version int NOT NULL,
	kafka_ts timestamptz
);
CREATE FUNCTION on_patients_batch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	v int := (SELECT deployed_version FROM streamml.models WHERE name = 'malignant');
BEGIN
	IF v IS NOT NULL THEN
		INSERT INTO scores SELECT id, streamml.predict_proba('malignant', features), v, kafka_ts
		  FROM new_patients;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER patients_batch AFTER INSERT ON patients REFERENCING NEW TABLE AS new_patients
	FOR EACH STATEMENT EXECUTE FUNCTION on_patients_batch();

-- The labelled rows, in the order their labels arrived.
CREATE VIEW labelled AS
SELECT p.id, p.features, l.malignant, l.arrival FROM patients p JOIN labels l USING (id);

-- Each scored row once its label is in, with the running accuracy.
CREATE VIEW live_accuracy AS
SELECT l.arrival, s.id, s.version, l.malignant, s.p_malignant,
       (s.p_malignant >= 0.5) = l.malignant AS correct,
       avg(((s.p_malignant >= 0.5) = l.malignant)::int) OVER (ORDER BY l.arrival) AS cumulative,
       avg(((s.p_malignant >= 0.5) = l.malignant)::int) OVER (ORDER BY l.arrival ROWS 49 PRECEDING) AS last_50
  FROM scores s JOIN labels l USING (id);

CREATE TABLE model_events (id serial, at_label bigint, kind text, version int, detail text);
-- Trains on the first rows, then retrains (warm start) every N new labels.
CREATE FUNCTION watch_classifier(first_rows int DEFAULT 100, every_rows int DEFAULT 100)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r record;
	n bigint := (SELECT count(*) FROM labelled);
	a bigint := (SELECT max(arrival) FROM labels);
BEGIN
	IF NOT EXISTS (SELECT 1 FROM streamml.models WHERE name = 'malignant') THEN
		IF n < first_rows THEN RETURN 'waiting'; END IF;
		SELECT * INTO r FROM streamml.train_logreg('malignant', 'labelled', 'malignant', ARRAY['features'],
			'{"l2": 0.01, "test_fraction": 0.2, "order_by": "arrival"}');
		INSERT INTO model_events (at_label, kind, version, detail)
		VALUES (a, 'train', r.version, format('first training on %s labelled rows: holdout accuracy %s, roc_auc %s',
		        r.rows_used, round((r.metrics->>'accuracy')::numeric, 3), round((r.metrics->>'roc_auc')::numeric, 3)));
		RETURN 'trained version ' || r.version;
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
