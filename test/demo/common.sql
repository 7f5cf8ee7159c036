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

