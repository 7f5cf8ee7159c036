# Monitors that act.  A classifier is scored as rows load and its outcomes
# arrive; its concept changes in the middle of the stream:
#   - a short blip of flipped labels is detected, the retrain it asks for
#     is worse than the deployed version on the holdout and is not
#     deployed (both holdout metrics recorded); a second monitor notifies;
#   - the real change is detected (the notifying monitor, in its cooldown,
#     records the detection and does nothing), the retrain deploys a
#     better version, and live accuracy recovers;
#   - model_events tells the story in order;
#   - kill -9 of the monitor worker during a (slow) retrain leaves the
#     catalog consistent: retrain_started without retrain_finished, no
#     partial version, the model's options untouched; the worker comes
#     back, records the interruption and retrains again; loading into the
#     source goes on during the retrain.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(sleep time);
use StreamML::TestNode;

my $node = streamml_node('monitors', conf => "restart_after_crash = on\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE live (id int PRIMARY KEY, ts timestamptz NOT NULL, x1 float8);
	CREATE TABLE labels (id int, y boolean);
	-- rows lo..hi scored, then labelled by concept A (y = x1 > 0) or B
	-- (the opposite), 10% of labels flipped either way
	CREATE FUNCTION load(lo int, hi int, concept text) RETURNS void LANGUAGE sql AS $$
		INSERT INTO live SELECT i, '2026-01-01'::timestamptz + i * interval '1 second', sin(i * 0.7)
		  FROM generate_series(lo, hi) i;
		INSERT INTO labels SELECT i, ((sin(i * 0.7) > 0) <> (concept = 'B')) <> ((i * 7919) % 10 = 0)
		  FROM generate_series(lo, hi) i;
	$$;
	-- batches of 100, each its own statements
	CREATE FUNCTION load_batches(lo int, hi int, concept text) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		FOR b IN 0 .. (hi - lo) / 100 LOOP
			PERFORM load(lo + b * 100, least(hi, lo + b * 100 + 99), concept);
		END LOOP;
	END $$;
	SELECT load(1, 1000, 'A');
	-- the model learns from the newest 300 labelled rows
	SELECT count(*) FROM streamml.train_logreg('cm',
		'SELECT l.id, l.ts, l.x1, b.y FROM live l JOIN labels b USING (id) ORDER BY l.ts DESC LIMIT 300',
		'y', ARRAY['x1'], '{"order_by": "ts"}');
	TRUNCATE live, labels;
	SELECT streamml.create_scorer('live_s', 'live', 'cm');
	SELECT streamml.track_outcomes('live_s', 'labels', '{"actual": "y"}');
	SELECT load_batches(1, 1000, 'A');
	SELECT streamml.create_monitor('cm_err', 'cm', 'error', '{"action": "retrain",
		"cooldown": "3 seconds", "deploy_metric": "log_loss",
		"detector": "cusum", "params": {"mode": "up", "min_instances": 100, "slack": 0.5, "threshold": 20}}');
	SELECT streamml.create_monitor('cm_notify', 'cm', 'error', '{"action": "notify",
		"channel": "cm_drift", "cooldown": "1 hour",
		"detector": "cusum", "params": {"mode": "up", "min_instances": 100, "slack": 0.5, "threshold": 20}}');
});

ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_streamml monitor'}),
	'create_monitor started the monitor worker');

# --- stationary: no event ---
$node->safe_psql('postgres', q{SELECT load_batches(1001, 1300, 'A')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM streamml.model_events}), '0',
	'1300 outcomes of the learnt concept: no event');
is($node->safe_psql('postgres', q{SELECT string_agg(observed::text, ',' ORDER BY name) FROM streamml.monitors}),
	'300,300', 'both monitors saw every outcome since their creation');

# --- a blip: detected; its retrain is worse and not deployed ---
my ($listen_out, $listen_err) = ('', '');
# a listener that looks for notifications every half second, for 2 minutes
my $listen_in = "LISTEN cm_drift;\n" . ("SELECT pg_sleep(0.5);\n" x 240);
my $listener = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres') ],
	'<', \$listen_in, '>', \$listen_out, '2>', \$listen_err);
# IPC::Run feeds psql's input only while pumped: until LISTEN has run
my $listening = time() + 60;
while ($listen_out !~ /^LISTEN/m && time() < $listening)
{
	$listener->pump_nb;
	sleep(0.1);
}
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT load_batches(1301, 1350, 'B');
	SELECT load_batches(1351, 1600, 'A');
	COMMIT;
});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM streamml.model_events WHERE event IN ('deployed', 'not_deployed')}),
	'the retrain after the blip finished');
is($node->safe_psql('postgres', q{
	SELECT event, version, details->>'metric',
		   (details->>'holdout')::float8 > (details->>'deployed_holdout')::float8
	  FROM streamml.model_events WHERE event IN ('deployed', 'not_deployed')}),
	'not_deployed|2|log_loss|t', 'the worse version 2 is not deployed; both holdout log losses are recorded');
is($node->safe_psql('postgres', q{SELECT deployed_version FROM streamml.models WHERE name = 'cm'}),
	'1', 'version 1 still serves');
is($node->safe_psql('postgres', q{SELECT options FROM streamml.models WHERE name = 'cm'}),
	'{"order_by": "ts"}', 'the model\'s stored options are as trained');
my $deadline = time() + 60;
while ($listen_out !~ /Asynchronous notification/ && time() < $deadline)
{
	$listener->pump_nb;
	sleep(0.2);
}
$listener->kill_kill;
like($listen_out, qr/Asynchronous notification "cm_drift" with payload "\{"monitor": "cm_notify", "model": "cm", "version": 1, "event": "drift_detected", "position": \d+\}"/,
	'the notify monitor sent its JSON payload');

# --- the concept changes for good, after cm_err's cooldown ---
ok($node->poll_query_until('postgres',
	q{SELECT cooldown_until < now() FROM streamml.monitors WHERE name = 'cm_err'}),
	'cm_err\'s cooldown is over');
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT load_batches(1601, 2200, 'B');
	COMMIT;
});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 2 FROM streamml.model_events WHERE event IN ('deployed', 'not_deployed')}),
	'the retrain after the change finished');
is($node->safe_psql('postgres', q{
	SELECT event, version, (details->>'holdout')::float8 < (details->>'deployed_holdout')::float8
	  FROM streamml.model_events WHERE event IN ('deployed', 'not_deployed') ORDER BY id DESC LIMIT 1}),
	'deployed|3|t', 'the better version 3 is deployed');
is($node->safe_psql('postgres', q{
	SELECT details->>'action' IS NULL, split_part(details->>'note', ';', 1)
	  FROM streamml.model_events WHERE monitor = 'cm_notify' AND event = 'drift_detected'
	 ORDER BY id DESC LIMIT 1}),
	't|cooling down: no action', 'cooldown holds: cm_notify records the change and does not act');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.model_events WHERE monitor = 'cm_notify' AND details->>'action' = 'notify'}),
	'1', 'cm_notify notified once');

# live accuracy recovers
$node->safe_psql('postgres', q{SELECT load_batches(2201, 2600, 'B')});
my ($acc1, $acc3) = split /\|/, $node->safe_psql('postgres', q{
	SELECT round(avg((class = actual_class)::int) FILTER (WHERE version = 1 AND (key->>'id')::int BETWEEN 1601 AND 2200), 3),
		   round(avg((class = actual_class)::int) FILTER (WHERE version = 3), 3)
	  FROM streamml.outcomes WHERE scorer = 'live_s'});
ok($acc1 < 0.3 && $acc3 > 0.8,
	"live accuracy recovers: version 1 on the new concept $acc1, version 3 $acc3");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.live_metrics
	 WHERE scorer = 'live_s' AND version = 3 AND group_key IS NULL AND accuracy > 0.8}) > 0 ? 1 : 0,
	1, 'live_metrics shows version 3\'s recovered accuracy');
is($node->safe_psql('postgres', q{
	SELECT string_agg(event || coalesce('/v' || version, ''), ' ' ORDER BY id)
	  FROM streamml.model_events WHERE monitor = 'cm_err'}),
	'drift_detected/v1 retrain_started/v1 retrain_finished/v2 not_deployed/v2 '
	. 'drift_detected/v1 retrain_started/v1 retrain_finished/v3 deployed/v3',
	'model_events tells the story');
note($node->safe_psql('postgres', q{
	SELECT string_agg(format('%s %s %s v%s %s', id, monitor, event, version, details), E'\n' ORDER BY id)
	  FROM streamml.model_events}));

# --- kill -9 during a retrain ---
$node->safe_psql('postgres', q{
	CREATE TABLE slowflag (slow boolean);
	INSERT INTO slowflag VALUES (false);
	SELECT count(*) FROM streamml.train_logreg('slow',
		'SELECT l.id, l.ts, l.x1, b.y FROM live l JOIN labels b USING (id) '
		'WHERE NOT (SELECT slow FROM slowflag) OR pg_sleep(0.002) IS NOT NULL ORDER BY l.ts DESC LIMIT 300',
		'y', ARRAY['x1'], '{"order_by": "ts"}');
	UPDATE slowflag SET slow = true;
	SELECT streamml.create_monitor('slow_rows', 'slow', 'rows',
		'{"min_rows": 5, "action": "retrain", "interval": "1 second"}');
});
$node->safe_psql('postgres', q{SELECT load(2601, 2610, 'B')});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM streamml.model_events WHERE model = 'slow' AND event = 'retrain_started'}),
	'the rows monitor started a (slow) retrain');
my $t0 = time();
$node->safe_psql('postgres', q{SELECT load(2611, 2620, 'B')});
my $took = time() - $t0;
ok($took < 5, sprintf('loading goes on during the retrain (%.2f s)', $took));
sleep(1);
my $pid = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_streamml monitor'});
ok($pid =~ /^\d+$/, "the monitor worker runs the retrain (pid $pid)");
kill 'KILL', $pid;
sleep(1);
ok($node->poll_query_until('postgres', q{SELECT true}), 'the server is back after the crash');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM streamml.model_versions WHERE model = 'slow'),
		   (SELECT options FROM streamml.models WHERE name = 'slow'),
		   (SELECT count(*) FROM streamml.model_events WHERE model = 'slow' AND event = 'retrain_finished')}),
	'1|{"order_by": "ts"}|0',
	'after kill -9: no partial version, options untouched, retrain_started without retrain_finished');
# the retry may be quick
$node->safe_psql('postgres', q{UPDATE slowflag SET slow = false});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM streamml.model_events WHERE model = 'slow' AND event = 'retrain_finished'}),
	'the worker came back and retrained again');
like($node->safe_psql('postgres', q{
	SELECT string_agg(event, ' ' ORDER BY id) FROM streamml.model_events WHERE model = 'slow'}),
	qr/^new_rows retrain_started monitor_error retrain_started retrain_finished (deployed|not_deployed)$/,
	'the events tell the interruption and the retry');
is($node->safe_psql('postgres', q{
	SELECT details->>'retry', details->>'message' LIKE 'the retrain started at % was interrupted'
	  FROM streamml.model_events WHERE model = 'slow' AND event = 'monitor_error'}),
	'true|t', 'the interruption is recorded');
is($node->safe_psql('postgres', q{
	SELECT retrain_requested_at IS NULL AND retrain_started_at IS NULL,
		   (SELECT count(*) FROM streamml.model_versions WHERE model = 'slow')
	  FROM streamml.monitors WHERE name = 'slow_rows'}),
	't|2', 'the monitor is idle again, version 2 recorded');

# the monitors resume: cm_err keeps observing after the crash
my $before = $node->safe_psql('postgres', q{SELECT observed FROM streamml.monitors WHERE name = 'cm_err'});
$node->safe_psql('postgres', q{SELECT load(2621, 2700, 'B')});
is($node->safe_psql('postgres', q{SELECT observed FROM streamml.monitors WHERE name = 'cm_err'}),
	$before + 80, 'cm_err resumes from its saved detector after the crash');

# --- a data monitor: PSI of x1 over the newest 1000 scored rows against the
# deployed version's training bins ---
$node->safe_psql('postgres', q{
	SELECT streamml.create_monitor('cm_data', 'cm', 'data',
		'{"source": "live", "window": 1000, "interval": "1 second"}')});
ok($node->poll_query_until('postgres',
	q{SELECT last_value IS NOT NULL FROM streamml.monitors WHERE name = 'cm_data'}),
	'the data monitor checked');
is($node->safe_psql('postgres', q{
	SELECT count(*), max((last_value->'features'->>'x1')::float8) < 0.1 FROM streamml.monitors m
	  LEFT JOIN streamml.model_events e ON e.monitor = m.name WHERE m.name = 'cm_data'}),
	'1|t', 'x1 as in training: PSI below 0.1, no event');
# x1 shifts by 3 (labels as the deployed version expects, so that the
# error monitor stays quiet)
$node->safe_psql('postgres', q{
	INSERT INTO live SELECT i, '2026-01-01'::timestamptz + i * interval '1 second', 3 + sin(i * 0.7)
	  FROM generate_series(2701, 3100) i;
	INSERT INTO labels SELECT i, (i * 7919) % 10 = 0 FROM generate_series(2701, 3100) i;
});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM streamml.model_events WHERE monitor = 'cm_data' AND event = 'drift_detected'}),
	'the shift of x1 is detected');
is($node->safe_psql('postgres', q{
	SELECT details->>'method', details->'drifted', (details->'features'->>'x1')::float8 >= 0.1,
		   details->>'rows', version
	  FROM streamml.model_events WHERE monitor = 'cm_data'}),
	'psi|["x1"]|t|1000|3', 'the event names the drifted feature, its PSI and the version');

# --- a retrain without order_by takes the order_by the data monitor relied
# on (the model's options are its last run's): the check fails with a
# monitor_error event, recorded once however often it fails, and nothing
# crashes ---
my $started = $node->safe_psql('postgres', q{SELECT pg_postmaster_start_time()});
$node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.train_logreg('cm',
		'SELECT l.id, l.ts, l.x1, b.y FROM live l JOIN labels b USING (id) ORDER BY l.ts DESC LIMIT 300',
		'y', ARRAY['x1'], '{"deploy": "never"}')});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM streamml.model_events WHERE monitor = 'cm_data' AND event = 'monitor_error'}),
	'the data monitor without order_by records an error');
sleep 3.5;	# three more checks, at intervals of 1 second
is($node->safe_psql('postgres', q{
	SELECT count(*), min(details->>'message'), min(details->>'sqlstate')
	  FROM streamml.model_events WHERE monitor = 'cm_data' AND event = 'monitor_error'}),
	'1|monitor "cm_data" has no "order_by"|55000', 'the same error is recorded once');
is($node->safe_psql('postgres', q{SELECT pg_postmaster_start_time()}), $started,
	'no crash: the server was not restarted');
# recovery (a retrain with order_by: the checks succeed again), then the
# same failure again: recorded again, as a new run of failures
$node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.train_logreg('cm',
		'SELECT l.id, l.ts, l.x1, b.y FROM live l JOIN labels b USING (id) ORDER BY l.ts DESC LIMIT 300',
		'y', ARRAY['x1'], '{"deploy": "never", "order_by": "ts"}')});
ok($node->poll_query_until('postgres',
	q{SELECT NOT failing FROM streamml.monitors_catalog WHERE name = 'cm_data'}),
	'a successful check ends the run of failures');
$node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.train_logreg('cm',
		'SELECT l.id, l.ts, l.x1, b.y FROM live l JOIN labels b USING (id) ORDER BY l.ts DESC LIMIT 300',
		'y', ARRAY['x1'], '{"deploy": "never"}')});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 2 FROM streamml.model_events WHERE monitor = 'cm_data' AND event = 'monitor_error'}),
	'the same error after a recovery is recorded again');

# --- a data monitor of a model with a categorical feature: each one-hot
# slot is compared as training encoded it (the level's frequency), beside
# the numeric feature after it, and a shift of the categories is detected ---
$node->safe_psql('postgres', q{
	CREATE TABLE shop (id int PRIMARY KEY, ts timestamptz NOT NULL, channel text, amount float8, y float8);
	INSERT INTO shop SELECT i, '2026-01-01'::timestamptz + i * interval '1 second',
		   (ARRAY['web', 'app', 'store'])[1 + i % 3], 10 + sin(i), i % 7
	  FROM generate_series(1, 900) i;
	SELECT count(*) FROM streamml.train_linreg('shop_m', 'shop', 'y', ARRAY['channel', 'amount'],
		'{"order_by": "ts", "test_fraction": 0.2}');
	SELECT streamml.create_monitor('shop_data', 'shop_m', 'data',
		'{"window": 300, "min_rows": 100, "interval": "1 second"}');
	SELECT streamml.create_monitor('shop_one', 'shop_m', 'data',
		'{"window": 300, "interval": "1 second", "features": ["amount", "channel=web"]}');
});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 2 FROM streamml.monitors WHERE name LIKE 'shop%' AND last_value IS NOT NULL}),
	'the data monitors of a categorical model checked');
is($node->safe_psql('postgres', q{
	SELECT string_agg(f, ',' ORDER BY f), bool_and((last_value->'features'->>f)::float8 < 0.1)
	  FROM streamml.monitors m, jsonb_object_keys(m.last_value->'features') f
	 WHERE m.name = 'shop_data'}),
	'amount,channel=app,channel=store,channel=web|t',
	'every slot compared, as in training: PSI below 0.1');
is($node->safe_psql('postgres', q{
	SELECT string_agg(f, ',' ORDER BY f) FROM streamml.monitors m,
		   jsonb_object_keys(m.last_value->'features') f WHERE m.name = 'shop_one'}),
	'amount,channel=web', 'option features picks slots and columns by name');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.model_events WHERE monitor LIKE 'shop%'}),
	'0', 'no event: no drift, no error');
$node->safe_psql('postgres', q{
	INSERT INTO shop SELECT i, '2026-01-01'::timestamptz + i * interval '1 second',
		   CASE WHEN i % 10 = 0 THEN 'app' ELSE 'web' END, 10 + sin(i), i % 7
	  FROM generate_series(901, 1200) i;
});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM streamml.model_events WHERE monitor = 'shop_data' AND event = 'drift_detected'}),
	'the shift of the categories is detected');
is($node->safe_psql('postgres', q{
	SELECT details->'drifted' FROM streamml.model_events
	 WHERE monitor = 'shop_data' AND event = 'drift_detected'}),
	'["channel=app", "channel=store", "channel=web"]', 'the event names the drifted levels');

# --- a rows monitor retraining a league: its events carry the rows the
# champion used and both holdout scores, as for any model ---
$node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.train_league('shop_l', 'shop', 'y', ARRAY['amount'],
		'{"order_by": "ts", "candidates": ["tree", "gbt"], "threads": 1}');
	SELECT streamml.create_monitor('shop_rows', 'shop_l', 'rows',
		'{"action": "retrain", "min_rows": 20, "interval": "1 second", "cooldown": "1 hour"}');
	INSERT INTO shop SELECT i, '2026-01-01'::timestamptz + i * interval '1 second',
		   'web', 10 + sin(i), i % 7 FROM generate_series(1201, 1260) i;
});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM streamml.model_events
	   WHERE monitor = 'shop_rows' AND event IN ('deployed', 'not_deployed')}),
	'the league retrained');
is($node->safe_psql('postgres', q{
	SELECT (f.details->>'rows_used')::int > 0, d.details ? 'metric',
		   (d.details->>'holdout')::float8 IS NOT NULL, d.details ? 'deployed_holdout'
	  FROM streamml.model_events f, streamml.model_events d
	 WHERE f.monitor = 'shop_rows' AND f.event = 'retrain_finished'
	   AND d.monitor = 'shop_rows' AND d.event IN ('deployed', 'not_deployed')}),
	't|t|t|t', 'retrain_finished has the rows used; the decision both holdout scores');

$node->stop;
done_testing();
