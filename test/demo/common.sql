-- Shared by the demos: dead letters with a short reason (the constraint, the
-- column or the first clause of the error), for summaries and charts.
CREATE VIEW dead_letter_reasons AS
SELECT d.id, d.failed_at,
       CASE WHEN d.error ~ 'violates check constraint "(\w+)"'
            THEN 'CHECK ' || substring(d.error from 'violates check constraint "(\w+)"')
            WHEN d.error ~ 'not-null' THEN 'NOT NULL ' || substring(d.error from 'column "(\w+)"')
            ELSE regexp_replace(split_part(d.error, ':', 1), '\s+', ' ', 'g') END AS reason,
       d.error, convert_from(d.payload, 'UTF8') AS payload
  FROM streamml.dead_letters d;


-- One line for an event of streamml.model_events (what a monitor saw or
-- did), for the summaries.  A retrain of a league model gives no
-- rows_used or holdout figures in its events: the leaderboard has them.
CREATE FUNCTION event_what(event text, d jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT left(CASE event
	WHEN 'drift_detected' THEN
		CASE WHEN d ? 'position' THEN format('at outcome %s of the version: ', d->>'position') ELSE '' END
		|| coalesce(d->>'action', d->>'note', '')
	WHEN 'drift_warning' THEN format('at outcome %s of the version', d->>'position')
	WHEN 'new_rows' THEN format('%s new rows (min_rows %s)', d->>'new_rows', d->>'min_rows')
	WHEN 'retrain_started' THEN 'after ' || (d->>'after')
	WHEN 'retrain_finished' THEN format('version %s in %s s', d->>'version', round((d->>'seconds')::numeric, 2))
		|| CASE WHEN (d->>'rows_used')::bigint > 0 THEN format(', %s rows', d->>'rows_used') ELSE '' END
	WHEN 'deployed' THEN format('version %s replaces %s', d->>'version', d->>'previous_version')
		|| CASE WHEN d ? 'holdout' THEN format(': holdout %s %s, the served one %s', d->>'metric',
		        round((d->>'holdout')::numeric, 4), round((d->>'deployed_holdout')::numeric, 4)) ELSE '' END
	WHEN 'not_deployed' THEN format('version %s not deployed, %s stays', d->>'version', d->>'previous_version')
		|| CASE WHEN d ? 'holdout' THEN format(': holdout %s %s, the served one %s', d->>'metric',
		        round((d->>'holdout')::numeric, 4), round((d->>'deployed_holdout')::numeric, 4)) ELSE '' END
	WHEN 'monitor_error' THEN coalesce(d->>'during', '') || ': ' || coalesce(d->>'message', '')
	ELSE d::text END, 110)
$$;
