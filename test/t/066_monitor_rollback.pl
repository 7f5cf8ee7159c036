# Automatic rollback (option "rollback" of a monitor).  A regression is
# scored as rows load and its outcomes arrive:
#   - version 1 (good) serves 200 labelled rows;
#   - version 2 (trained on noise) is deployed by hand; while it has fewer
#     than min_rows labelled outcomes nothing is decided (status waiting);
#   - once it has them, its live absolute error is compared with version
#     1's (one-sided Welch test): version 1 is deployed again,
#     'rolled_back' records both figures, new rows are served by version 1;
#   - version 3 (as good as version 1) is deployed: it passes the check and
#     is kept; the next deployment is compared with it.
# The monitor notifies: the rollback is sent on its channel too.  Then a
# classifier's worse version is rolled back on its live error rate.
# Nothing else (no outcome batch, no SQL call) triggers the rollback: the
# monitor worker does it.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(sleep time);
use StreamML::TestNode;

my $node = streamml_node('monitor_rollback');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE good AS SELECT i AS id, '2026-01-01'::timestamptz + i * interval '1 second' AS ts,
		(i % 10)::float8 AS x, (i % 10) * 2.0 + 1 AS y FROM generate_series(1, 200) i;
	CREATE TABLE noise AS SELECT id, ts, x, ((id * 7) % 13)::float8 AS y FROM good;
	SELECT count(*) FROM streamml.train_linreg('rb', 'good', 'y', ARRAY['x'], '{"order_by": "ts"}');
	CREATE TABLE live (id int PRIMARY KEY, ts timestamptz NOT NULL, x float8);
	CREATE TABLE labels (id int, y float8);
	SELECT streamml.create_scorer('rb_s', 'live', 'rb');
	SELECT streamml.track_outcomes('rb_s', 'labels', '{"actual": "y"}');
	-- rows lo..hi scored, then labelled y = 2x + 1 with noise in [-1, 1]
	CREATE FUNCTION load(lo int, hi int) RETURNS void LANGUAGE sql AS $$
		INSERT INTO live SELECT i, '2026-02-01'::timestamptz + i * interval '1 second', i % 10
		  FROM generate_series(lo, hi) i;
		INSERT INTO labels SELECT i, (i % 10) * 2 + 1 + ((i * 7919) % 21 - 10) / 10.0
		  FROM generate_series(lo, hi) i;
	$$;
	-- a rows monitor that never fires (order_by ts), guarding deployments
	SELECT streamml.create_monitor('rb_guard', 'rb', 'rows',
		'{"min_rows": 1000000000, "interval": "1 hour", "action": "notify", "channel": "rb_events",
		  "rollback": {"min_rows": 100, "alpha": 0.01}}');
	SELECT load(1, 200);
});
is($node->safe_psql('postgres', q{SELECT rollback_version FROM streamml.monitors}), '1',
	'the monitor accepts the version deployed when it was created');

my $listener = streamml_listen($node, 'rb_events');

# --- a worse version is deployed by hand ---
$node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.train_linreg('rb', 'noise', 'y', ARRAY['x'], '{"order_by": "ts", "deploy": "always"}');
});
is($node->safe_psql('postgres', q{SELECT deployed_version FROM streamml.models WHERE name = 'rb'}),
	'2', 'version 2 is deployed');
$node->safe_psql('postgres', q{SELECT load(201, 260)});
ok($node->poll_query_until('postgres',
	q{SELECT rollback_check->>'status' = 'waiting' AND (rollback_check->>'labelled')::int = 60
	    FROM streamml.monitors}),
	'60 labelled outcomes of version 2: the check waits for min_rows');
is($node->safe_psql('postgres', q{
	SELECT m.deployed_version, (SELECT count(*) FROM streamml.model_events WHERE event = 'rolled_back')
	  FROM streamml.models m WHERE m.name = 'rb'}),
	'2|0', 'version 2 still serves: no decision below min_rows');

$node->safe_psql('postgres', q{SELECT load(261, 320)});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM streamml.model_events WHERE event = 'rolled_back'}),
	'120 labelled outcomes of version 2: rolled back');
is($node->safe_psql('postgres', q{
	SELECT version, monitor, details->>'by', details->>'from_version', details->>'metric',
		   (details->>'labelled')::int, (details->>'previous_labelled')::int >= 100,
		   (details->>'live')::float8 > (details->>'previous_live')::float8,
		   (details->>'p_value')::float8 < 0.01
	  FROM streamml.model_events WHERE event = 'rolled_back'}),
	'1|rb_guard|monitor|2|absolute_error|120|t|t|t',
	'rolled_back: version 1 again, from version 2, both live absolute errors and the test');
# the event's figures are those of streamml.outcomes
is($node->safe_psql('postgres', q{
	SELECT round((e.details->>'live')::numeric, 9) = round(avg(abs(o.prediction - o.actual))::numeric, 9)
	  FROM streamml.model_events e, streamml.outcomes o
	 WHERE e.event = 'rolled_back' AND o.model = 'rb' AND o.version = 2 AND o.role = 'champion'
	 GROUP BY e.details}),
	't', 'its live mean absolute error is that of version 2\'s outcomes');
is($node->safe_psql('postgres', q{
	SELECT m.deployed_version, (SELECT version FROM streamml.deployments ORDER BY id DESC LIMIT 1),
		   c.rollback_version, c.rollback_check->>'status'
	  FROM streamml.models m, streamml.monitors c WHERE m.name = 'rb'}),
	'1|1|1|rolled_back', 'version 1 is deployed again (a deployment), and stays the accepted one');
my $listen_out = streamml_listened($listener, sub { $_[0] =~ /Asynchronous notification/ }, 60);
like($listen_out, qr/Asynchronous notification "rb_events" with payload "\{"monitor": "rb_guard", "model": "rb", "version": 1, "event": "rolled_back", "details": \{"by": "monitor", "from_version": 2, "status": "rolled_back"/,
	'the notifying monitor sent the rollback on its channel');
$node->safe_psql('postgres', q{SELECT load(321, 330)});
is($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT version::text, ',') FROM rb_s WHERE id > 320}),
	'1', 'new rows are served by version 1');

# --- a version as good as version 1 passes the check ---
$node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.train_linreg('rb', 'good', 'y', ARRAY['x'], '{"order_by": "ts", "deploy": "always"}');
	SELECT load(331, 460);
});
ok($node->poll_query_until('postgres',
	q{SELECT rollback_check->>'status' = 'kept' FROM streamml.monitors}),
	'version 3 is kept');
is($node->safe_psql('postgres', q{
	SELECT m.deployed_version, c.rollback_version, (c.rollback_check->>'version')::int,
		   (c.rollback_check->>'p_value')::float8 >= 0.01,
		   (SELECT count(*) FROM streamml.model_events WHERE event = 'rolled_back')
	  FROM streamml.models m, streamml.monitors c WHERE m.name = 'rb'}),
	'3|3|3|t|1', 'version 3 serves and is the accepted version; no second rollback');

# --- another role's forged outcomes do not count ---
# mallory's own scorer and tracker; she writes rows naming alice's model
# into her own predictions table (its model column is free text) and labels
# them with errors of a million: the check of version 4 must not see them.
$node->safe_psql('postgres', q{
	CREATE ROLE mallory;
	GRANT CREATE ON SCHEMA public TO mallory;
	SET ROLE mallory;
	CREATE TABLE mtrain AS SELECT i AS id, i::float8 AS x, 2.0 * i AS y FROM generate_series(1, 50) i;
	SELECT count(*) FROM streamml.train_linreg('mm', 'mtrain', 'y', ARRAY['x']);
	CREATE TABLE mlive (id int PRIMARY KEY, x float8);
	CREATE TABLE mlabels (id int, y float8);
	SELECT streamml.create_scorer('m_s', 'mlive', 'mm');
	SELECT streamml.track_outcomes('m_s', 'mlabels', '{"actual": "y"}');
	RESET ROLE;
	SELECT count(*) FROM streamml.train_linreg('rb', 'good', 'y', ARRAY['x'], '{"order_by": "ts", "deploy": "always"}');
	SET ROLE mallory;
	INSERT INTO m_s (id, model, version, prediction, role, scored_at)
	  SELECT i, 'rb', 4, 1e6, 'champion', now() FROM generate_series(1, 200) i;
	INSERT INTO mlabels SELECT i, 0 FROM generate_series(1, 200) i;
	RESET ROLE;
	SELECT load(461, 590);
});
ok($node->poll_query_until('postgres',
	q{SELECT rollback_check->>'status' = 'kept' AND (rollback_check->>'version')::int = 4
	    FROM streamml.monitors}),
	'version 4 is judged on its owner\'s outcomes only, and kept');
is($node->safe_psql('postgres', q{
	SELECT m.deployed_version, (c.rollback_check->>'labelled')::int,
		   (SELECT count(*) FROM streamml.model_events WHERE event = 'rolled_back')
	  FROM streamml.models m, streamml.monitors c WHERE m.name = 'rb'}),
	'4|130|1', 'mallory\'s 200 forged outcomes were not counted: no rollback');

# --- a classifier: the error rate is compared ---
$node->safe_psql('postgres', q{
	CREATE TABLE ctrain AS SELECT i AS id, sin(i * 0.7) AS x1,
		(sin(i * 0.7) > 0) <> ((i * 7919) % 10 = 0) AS y FROM generate_series(1, 300) i;
	CREATE TABLE cflip AS SELECT id, x1, NOT y AS y FROM ctrain;
	SELECT count(*) FROM streamml.train_logreg('rc', 'ctrain', 'y', ARRAY['x1']);
	CREATE TABLE clive (id int PRIMARY KEY, x1 float8);
	CREATE TABLE clabels (id int, y boolean);
	SELECT streamml.create_scorer('rc_s', 'clive', 'rc');
	SELECT streamml.track_outcomes('rc_s', 'clabels', '{"actual": "y"}');
	-- rows lo..hi scored, then labelled y = x1 > 0 with 10% flipped
	CREATE FUNCTION cload(lo int, hi int) RETURNS void LANGUAGE sql AS $$
		INSERT INTO clive SELECT i, sin(i * 0.7) FROM generate_series(lo, hi) i;
		INSERT INTO clabels SELECT i, (sin(i * 0.7) > 0) <> ((i * 7919) % 10 = 0)
		  FROM generate_series(lo, hi) i;
	$$;
	SELECT streamml.create_monitor('rc_guard', 'rc', 'error', '{"rollback": {"min_rows": 100}}');
	SELECT cload(1, 200);
	SELECT count(*) FROM streamml.train_logreg('rc', 'cflip', 'y', ARRAY['x1'], '{"deploy": "always"}');
	SELECT cload(201, 350);
});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM streamml.model_events WHERE event = 'rolled_back' AND model = 'rc'}),
	'the classifier\'s worse version 2 is rolled back');
is($node->safe_psql('postgres', q{
	SELECT e.version, e.details->>'from_version', e.details->>'metric', (e.details->>'labelled')::int,
		   round((e.details->>'live')::numeric, 6) = round(
			 (SELECT avg((o.prediction <> o.actual)::int) FROM streamml.outcomes o
			   WHERE o.model = 'rc' AND o.version = 2 AND o.role = 'champion')::numeric, 6),
		   (e.details->>'previous_live')::float8 < 0.2, m.deployed_version
	  FROM streamml.model_events e, streamml.models m
	 WHERE e.event = 'rolled_back' AND e.model = 'rc' AND m.name = 'rc'}),
	'1|2|error_rate|150|t|t|1',
	'its live error rate (that of streamml.outcomes) against version 1\'s; version 1 serves again');

$node->stop;
done_testing();
