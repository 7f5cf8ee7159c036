#!/usr/bin/env bash
# Outcomes and live metrics: what they cost a scoring pipeline, and how soon
# an outcome shows in live_metrics ("make bench BENCH=outcomes").
#
#   - pipeline overhead: 50 symbols of ticks loaded in transactions of 1,000
#     rows (a stream's batches) into a table scored by a linear model (the
#     price 60 seconds later, seed 004's label), with and without an outcome
#     tracker in horizon mode on the same table (every batch labels the
#     ticks its prices reach 60 seconds after, joins them with their
#     predictions, keeps live_metrics).  Goal: at least 0.8x the rows/s of
#     the pipeline without outcomes.  The plain table is printed too.
#   - freshness: a writer commits 100 outcomes per transaction for scored
#     keys while a reader polls live_metrics in another session; the delay
#     from just before each COMMIT to the first read that shows it.  Goal:
#     p99 within 1 s.
#
# The scorer is streamml.create_scorer when this build has it; otherwise a
# stand-in statement trigger in PL/pgSQL that writes the same predictions
# (the line says which).
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/pg-env.sh
trap pg_env_stop EXIT
PGPORT=${PGPORT:-54847} pg_env_start "jit = off
max_parallel_workers_per_gather = 0"

ROWS=${ROWS:-200000}
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

q <<'SQL'
CREATE EXTENSION pg_streamml;
CREATE TABLE hist AS
SELECT i, (i % 50)::float8 AS x1, ((i * 7919) % 100)::float8 / 100 AS x2,
	   100 + (i % 50) + ((i * 7919) % 100)::float8 / 100 AS y
  FROM generate_series(1, 10000) i;
SELECT model FROM streamml.train_linreg('next_price', 'hist', 'y', ARRAY['x1', 'x2']);
-- 50 symbols, one tick a second each, a batch covers 20 seconds
CREATE FUNCTION tick_rows(lo bigint, hi bigint)
RETURNS TABLE (id bigint, symbol text, ts timestamptz, price float8, x1 float8, x2 float8)
LANGUAGE sql AS $$
	SELECT i, 'S' || (i % 50), '2026-01-01 00:00:00+00'::timestamptz + (i / 50) * interval '1 s',
		   100 + (i % 50) + ((i * 7919) % 100)::float8 / 100,
		   (i % 50)::float8, ((i * 7919) % 100)::float8 / 100
	  FROM generate_series(lo, hi) i
$$;
CREATE PROCEDURE load(tab regclass, n bigint, batch int) LANGUAGE plpgsql AS $$
BEGIN
	FOR b IN 0 .. (n - 1) / batch LOOP
		EXECUTE format('INSERT INTO %s SELECT * FROM tick_rows($1, $2)', tab)
			USING b * batch, least(n, (b + 1) * batch) - 1;
		COMMIT;
	END LOOP;
END
$$;
-- the stand-in scorer, when this build has no streamml.create_scorer
CREATE FUNCTION standin_score() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('INSERT INTO %I SELECT n.id, ''next_price'', 1, '
				   'streamml.predict(''next_price'', ARRAY[n.x1, n.x2]), NULL, NULL, '
				   '''champion'', clock_timestamp() FROM new_rows n', TG_ARGV[0]);
	RETURN NULL;
END
$$;
CREATE FUNCTION make_pipeline(name text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE %I (id bigint PRIMARY KEY, symbol text, ts timestamptz, '
				   'price float8, x1 float8, x2 float8)', name);
	EXECUTE format('CREATE INDEX ON %I (symbol, ts)', name);
	IF to_regproc('streamml.create_scorer') IS NOT NULL THEN
		EXECUTE format('SELECT streamml.create_scorer(%L, %L, ''next_price'', %L)',
					   name, name, jsonb_build_object('into', name || '_preds'));
		RETURN 'streamml.create_scorer';
	END IF;
	EXECUTE format('CREATE TABLE %I (id bigint NOT NULL, model text NOT NULL, '
				   'version int NOT NULL, prediction float8, probability float8, class text, '
				   'role text NOT NULL DEFAULT ''champion'', scored_at timestamptz NOT NULL, '
				   'PRIMARY KEY (id, model))', name || '_preds');
	EXECUTE format('CREATE TRIGGER score AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows '
				   'FOR EACH STATEMENT EXECUTE FUNCTION standin_score(%L)', name, name || '_preds');
	IF to_regclass('streamml.scorers_catalog') IS NULL THEN
		CREATE TABLE streamml.scorers_catalog (id serial, name text PRIMARY KEY,
			owner regrole NOT NULL, source regclass NOT NULL, model text NOT NULL,
			predictions regclass NOT NULL, key_columns text[] NOT NULL,
			options jsonb NOT NULL DEFAULT '{}');
	END IF;
	INSERT INTO streamml.scorers_catalog (name, owner, source, model, predictions, key_columns)
	VALUES (name, current_user::regrole, name::regclass, 'next_price',
			(name || '_preds')::regclass, ARRAY['id']);
	RETURN 'a PL/pgSQL stand-in scorer';
END
$$;
CREATE TABLE plain (id bigint PRIMARY KEY, symbol text, ts timestamptz, price float8,
	x1 float8, x2 float8);
CREATE INDEX ON plain (symbol, ts);
SQL

scorer=$(q -c "SELECT make_pipeline('scored')")
q -c "SELECT make_pipeline('tracked')" >/dev/null
q -c "SELECT streamml.track_outcomes('tracked', 'tracked', '{\"actual\": \"price\", \"horizon\": \"60 seconds\", \"partition_by\": \"symbol\", \"order_by\": \"ts\"}')" >/dev/null

# Seconds to load ROWS rows into a table in batches of 1,000.
load_time()
{
	q -c "VACUUM ANALYZE $1" >/dev/null
	local t0 t1
	t0=$(date +%s.%N)
	q -c "CALL load('$1', $ROWS, 1000)"
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

echo "pipeline: $ROWS ticks, 50 symbols, batches of 1,000, scorer: $scorer; $(uptime | sed 's/.*load/load/')"
tp=$(load_time plain)
ts=$(load_time scored)
tt=$(load_time tracked)
rate() { awk -v n="$ROWS" -v t="$1" 'BEGIN { printf "%.0f", n / t }'; }
printf '  plain table                          %9s rows/s\n' "$(rate "$tp")"
printf '  scored (anchor)                      %9s rows/s\n' "$(rate "$ts")"
printf '  scored + outcomes + live metrics     %9s rows/s  = %.2fx the anchor (goal >= 0.8x)\n' \
	"$(rate "$tt")" "$(awk -v a="$ts" -v b="$tt" 'BEGIN { print a / b }')"
q <<'SQL'
SELECT format('  outcomes joined: %s of %s ticks (the rest have no tick 60 s later yet), pending: %s',
	(SELECT count(*) FROM streamml.outcomes WHERE scorer = 'tracked'),
	(SELECT count(*) FROM tracked),
	(SELECT count(*) FROM streamml.pending_outcomes));
SELECT format('  live_metrics: %s bucket rows, read in %s ms',
	count(*), round(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000, 2))
  FROM streamml.live_metrics;
SQL

# Freshness: a writer commits outcomes, a reader polls live_metrics.
q <<'SQL'
CREATE TABLE labels (id bigint, price float8);
CREATE TABLE commits (n int, labelled bigint, at timestamptz);
CREATE TABLE seen (labelled bigint, at timestamptz);
SELECT make_pipeline('fresh');
CALL load('fresh', 20000, 1000);
SELECT streamml.track_outcomes('fresh', 'labels', '{"actual": "price"}');
CREATE PROCEDURE write_labels(k int) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_sleep(0.5);
	FOR i IN 0 .. k - 1 LOOP
		INSERT INTO labels SELECT j, 100 FROM generate_series(i * 100, i * 100 + 99) j;
		INSERT INTO commits VALUES (i, (i + 1) * 100, clock_timestamp());
		COMMIT;
		PERFORM pg_sleep(0.02);
	END LOOP;
END
$$;
CREATE PROCEDURE read_metrics(target bigint) LANGUAGE plpgsql AS $$
DECLARE
	last bigint := -1;
	cur bigint;
	t0 timestamptz := clock_timestamp();
BEGIN
	LOOP
		SELECT coalesce(sum(labelled), 0) INTO cur FROM streamml.live_metrics
		 WHERE scorer = 'fresh' AND group_key IS NULL;
		IF cur <> last THEN
			INSERT INTO seen VALUES (cur, clock_timestamp());
			COMMIT;
			last := cur;
		END IF;
		EXIT WHEN cur >= target OR clock_timestamp() - t0 > interval '60 s';
		PERFORM pg_sleep(0.001);
	END LOOP;
END
$$;
SQL
q -c "CALL read_metrics(20000)" &
reader=$!
q -c "CALL write_labels(200)"
wait "$reader"
q <<'SQL'
WITH d AS (SELECT c.n, extract(epoch FROM (SELECT min(s.at) FROM seen s
											 WHERE s.labelled >= c.labelled) - c.at) AS delay
			 FROM commits c)
SELECT format('freshness: %s commits of 100 outcomes; delay to live_metrics p50 %s ms, p99 %s ms, max %s ms (goal: p99 <= 1000 ms); never seen: %s',
	count(*), round((percentile_cont(0.5) WITHIN GROUP (ORDER BY delay) * 1000)::numeric, 1),
	round((percentile_cont(0.99) WITHIN GROUP (ORDER BY delay) * 1000)::numeric, 1),
	round((max(delay) * 1000)::numeric, 1), count(*) FILTER (WHERE delay IS NULL))
  FROM d;
SQL
