# A 'notify' monitor's payload is {"monitor", "model", "version", "event",
# ...} whatever its kind, as the README promises and a listener reads it:
# the 'data' and 'rows' monitors' notifications (sent by the monitor
# worker) lacked "version", which only the 'error' monitors' and the
# rollbacks' carried.  A listener sees both kinds fire on a real source
# and reads the deployed version from each payload.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(sleep time);
use StreamML::TestNode;

my $node = streamml_node('notify_version');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE nv (id int PRIMARY KEY, ts timestamptz NOT NULL, x float8, y float8);
	INSERT INTO nv SELECT i, '2026-01-01'::timestamptz + i * interval '1 second',
		   (i % 10)::float8, 2 * (i % 10) + (i % 3)
	  FROM generate_series(1, 1000) i;
	SELECT count(*) FROM streamml.train_linreg('nv_m', 'nv', 'y', ARRAY['x'], '{"order_by": "ts"}');
	-- version 2 deployed: the payload must name it, not 1
	SELECT count(*) FROM streamml.train_linreg('nv_m', 'nv', 'y', ARRAY['x'], '{"order_by": "ts"}');
});

my $listener = streamml_listen($node, 'nv_events');

# new rows far from the training data: the 'rows' monitor fires on their
# number, the 'data' monitor on their distribution
$node->safe_psql('postgres', q{
	INSERT INTO nv SELECT i, '2026-01-01'::timestamptz + i * interval '1 second',
		   100 + (i % 10)::float8, 0
	  FROM generate_series(1001, 1300) i;
	SELECT streamml.create_monitor('nv_rows', 'nv_m', 'rows',
		'{"action": "notify", "channel": "nv_events", "min_rows": 100, "interval": "1 second"}');
	SELECT streamml.create_monitor('nv_data', 'nv_m', 'data',
		'{"action": "notify", "channel": "nv_events", "window": 300, "interval": "1 second"}');
});

my $listen_out = streamml_listened($listener,
	sub { $_[0] =~ /"event": "new_rows"/ && $_[0] =~ /"event": "drift_detected"/ }, 90);
like($listen_out,
	qr/payload "\{"monitor": "nv_rows", "model": "nv_m", "version": 2, "event": "new_rows", "details": \{/,
	'the rows monitor\'s payload names the deployed version');
like($listen_out,
	qr/payload "\{"monitor": "nv_data", "model": "nv_m", "version": 2, "event": "drift_detected", "details": \{/,
	'the data monitor\'s payload names the deployed version');
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT version::text, ',') FROM streamml.model_events
	 WHERE monitor IN ('nv_rows', 'nv_data')}),
	'2', 'and so do their events');

$node->stop;
done_testing();
