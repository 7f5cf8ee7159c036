# Worker-slot limits: one role cannot take every background worker slot.
#  - the streams of a role run at most streamml.max_workers_per_role
#    workers; a stream that finds the role's slots taken waits, and
#    stream_stats says so, while another role's stream starts and loads;
#  - a stream asking for more workers than a role may ever run is refused;
#  - parallel query still gets its workers;
#  - streamml.max_workers caps all streams together, changes on reload, and
#    a waiting stream starts once slots are given back;
#  - streams failing against an unreachable broker and streams waiting for
#    slots write a bounded number of log lines.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { events => 2 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

# max_worker_processes = 32 (TestNode), max_parallel_workers = 8: the
# streams may use 32 - 8 - 1 (supervisor) - 1 (launcher) = 22 slots.
my $node = streamml_node('limits', conf => "streamml.max_workers_per_role = 6\n");
$node->start;
ok($node->wait_for_log(
		qr/pg_streamml: stream consumers may use 22 background worker slots, 6 per role/),
	'the server log says what the streams may use');

$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE ROLE alice;
	CREATE ROLE bob;
	CREATE TABLE a (id int);
	CREATE TABLE b (id int);
	CREATE TABLE b2 (id int);
	GRANT INSERT ON a TO alice;
	GRANT INSERT ON b, b2 TO bob;
	CREATE TABLE big AS SELECT g AS x FROM generate_series(1, 200000) g;
	ANALYZE big;
});

# Counts the consumers of a role's streams (named <stream>/<worker>).
sub consumers
{
	my ($prefix) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'pg_streamml consumer'
		  AND application_name LIKE 'pg_streamml $prefix%'});
}

# alice asks for 12 workers at a broker that refuses: she gets 6.
foreach my $s (1 .. 3)
{
	$node->safe_psql('postgres', qq{
		SET ROLE alice;
		SELECT streamml.create_stream('a$s', 'a', '127.0.0.1:1', 'nowhere', 'json',
			'{"workers": 4}')});
}
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_streamml consumer'}, '4'),
	'the first stream of alice starts its 4 workers');
sleep 2;
is(consumers('a'), '4',
	'the others wait: a stream starts all its workers or none, and 4 + 4 > 6');
is($node->safe_psql('postgres', q{
	SELECT string_agg(stream || ': ' || last_error, E'\n' ORDER BY stream)
	FROM streamml.stream_stats WHERE partition IS NULL AND stream IN ('a2', 'a3')}),
	qq{a2: waiting for 4 worker slots: role "alice" runs 4 of its 6 workers (streamml.max_workers_per_role)\n}
	  . qq{a3: waiting for 4 worker slots: role "alice" runs 4 of its 6 workers (streamml.max_workers_per_role)},
	'stream_stats shows why the waiting streams wait');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.stream_stats WHERE stream = 'a3' AND worker_pid IS NOT NULL}),
	'0', 'a waiting stream has no worker');

# A stream that can never fit is refused.
my ($rc, $out, $err) = $node->psql('postgres', q{
	SET ROLE alice;
	SELECT streamml.create_stream('a4', 'a', '127.0.0.1:1', 'nowhere', 'json', '{"workers": 7}')});
like($err, qr/ERROR:  stream "a4" asks for 7 workers, but a role may run at most 6\n/,
	'create_stream refuses more workers than a role may run');
like($err, qr/HINT:  Lower option "workers", or ask a superuser to raise streamml.max_workers_per_role\./,
	'and says what to do');
($rc, $out, $err) = $node->psql('postgres', q{
	SET ROLE alice; SELECT streamml.alter_stream('a1', '{"workers": 8}')});
like($err, qr/ERROR:  stream "a1" asks for 8 workers, but a role may run at most 6\n/,
	'so does alter_stream');

# bob is not starved by alice.
$node->safe_psql('postgres', qq{
	SET ROLE bob;
	SELECT streamml.create_stream('b1', 'b', '$bootstrap', 'events', 'json', '{"workers": 2}')});
ok(produce($bootstrap, 'events', [ map { qq({"id": $_}) } 1 .. 50 ]), 'produced 50 messages');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM b', '50'),
	"another role's stream starts and loads while alice's wait");

# Parallel query gets its workers.
my $plan = $node->safe_psql('postgres', q{
	SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
	SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
	EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM big});
like($plan, qr/Workers Launched: 2/, 'parallel query launches its workers');

# The log stays quiet: alice's 4 workers fail every few seconds and two of
# her streams wait, yet no line repeats.
my $pos = -s $node->logfile;
sleep 6;
my @lines = split /\n/, substr(slurp_file($node->logfile), $pos);
cmp_ok(scalar @lines, '<=', 4, 'at most 4 log lines in 6 s of failing and waiting streams')
  or diag(join("\n", @lines));
my $log = slurp_file($node->logfile);
my @refused = $log =~ /(cannot reach broker "127\.0\.0\.1:1")/g;
is(scalar @refused, 4, 'each failing worker logged its error once');
my @waits = $log =~ /(stream "a\d" is waiting for)/g;
is(scalar @waits, 2, 'each waiting stream logged once that it waits');

# The total: reload a lower limit; a new stream of bob waits for it.
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET streamml.max_workers = 7;
	SELECT pg_reload_conf();
});
ok($node->poll_query_until('postgres', q{SHOW streamml.max_workers}, '7'),
	'streamml.max_workers reloaded');
$node->safe_psql('postgres', qq{
	SET ROLE bob;
	SELECT streamml.create_stream('b2', 'b2', '$bootstrap', 'events', 'json', '{"workers": 2}')});
ok($node->poll_query_until('postgres', q{
	SELECT last_error FROM streamml.stream_stats WHERE stream = 'b2' AND partition IS NULL},
	'waiting for 2 worker slots: pg_streamml runs 6 of its 7 workers (streamml.max_workers)'),
	'a stream beyond streamml.max_workers waits, and says which limit');
is(consumers('b2'), '0', 'without a worker');

# Slots given back: the waiting stream starts.  (Freed slots go to the
# first waiting stream that fits in what is free at that moment.)
$node->safe_psql('postgres', q{
	SET ROLE alice;
	SELECT streamml.drop_stream('a1');
	SELECT streamml.drop_stream('a2');
	SELECT streamml.drop_stream('a3');
});
ok($node->poll_query_until('postgres', q{SELECT count(*) FROM b2}, '50'),
	'once alice is gone, the waiting stream of bob starts and loads');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.stream_stats WHERE stream = 'b2' AND partition IS NULL}),
	'0', 'and its waiting row is gone');
is(consumers('b'), '4', 'bob runs his 4 workers');

$node->stop;
is($broker->stop, 0, 'broker stopped cleanly');
done_testing();
