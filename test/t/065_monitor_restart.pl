# Monitors resume after a clean restart.  A 'rows' monitor fires once and
# enters its cooldown, with the new rows still there; the server is then
# restarted cleanly (pg_ctl restart, no crash: dynamic workers are not
# restarted by the postmaster).  With no outcome batch and no
# create_monitor after the restart, the monitor worker must come back with
# the server (the database's launcher starts it) and the monitor must fire
# again once its cooldown is over.  A database without monitors gets no
# monitor worker.  Advisory locks another role holds cannot keep the
# worker out.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('monitor_restart');
$node->start;
# A hostile session takes advisory locks first, the key the worker once
# used among them: the worker's own lock is one SQL cannot take, so nobody
# keeps it out of a database.
$node->safe_psql('postgres', 'CREATE ROLE mallory LOGIN');
my $mallory = $node->background_psql('postgres', on_error_stop => 1);
$mallory->query_safe('SET ROLE mallory');
$mallory->query_safe('SELECT pg_advisory_lock(8319394728448491521), pg_advisory_lock(0), pg_advisory_lock(0, 0)');
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE src (id int PRIMARY KEY, ts timestamptz NOT NULL, x1 float8, y float8);
	INSERT INTO src SELECT i, '2026-01-01'::timestamptz + i * interval '1 second', i % 7, 2 * (i % 7) + 1
	  FROM generate_series(1, 100) i;
	SELECT count(*) FROM streamml.train_linreg('rm', 'src', 'y', ARRAY['x1'], '{"order_by": "ts"}');
	INSERT INTO src SELECT i, '2026-01-01'::timestamptz + i * interval '1 second', i % 7, 2 * (i % 7) + 1
	  FROM generate_series(101, 200) i;
	SELECT streamml.create_monitor('rm_rows', 'rm', 'rows',
		'{"min_rows": 50, "interval": "1 second", "cooldown": "20 seconds", "action": "log"}');
});
$node->safe_psql('postgres', q{CREATE DATABASE quiet});
$node->safe_psql('quiet', q{CREATE EXTENSION pg_streamml});

ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM streamml.model_events WHERE event = 'new_rows'}),
	'the rows monitor fired once, whatever advisory locks another role holds');
$mallory->quit;
is($node->safe_psql('postgres', q{
	SELECT details->>'new_rows', cooldown_until > now() FROM streamml.model_events, streamml.monitors
	 WHERE event = 'new_rows'}),
	'100|t', '100 new rows since training; the monitor is in its cooldown');

$node->restart;
is($node->safe_psql('postgres', q{SELECT count(*) FROM streamml.model_events}), '1',
	'no event while the server restarted');
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity
	   WHERE backend_type = 'pg_streamml monitor' AND datname = 'postgres'}),
	'the monitor worker is back after the clean restart, with no outcome batch nor create_monitor');
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 2 FROM streamml.model_events WHERE event = 'new_rows'}),
	'after its cooldown, the monitor fires again');
is($node->safe_psql('postgres', q{
	SELECT at > pg_postmaster_start_time(), details->>'new_rows' FROM streamml.model_events
	 WHERE event = 'new_rows' ORDER BY id DESC LIMIT 1}),
	't|100', 'the second event is from after the restart');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'pg_streamml monitor' AND datname = 'quiet'}),
	'0', 'a database without monitors has no monitor worker');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_streamml monitor'}),
	'1', 'one monitor worker in all');

$node->stop;
done_testing();
