# Streams in any database where the extension is installed, not only in
# streamml.database; a broker that cannot be reached says why at once.
#  - a database created after the server started, with the extension
#    created there, loads its stream without a restart, and again after one;
#  - a database whose streams are all dropped has no launcher, so it can be
#    dropped;
#  - stream_stats keeps each database's streams apart (their ids are
#    numbered per database);
#  - a broker name that does not resolve, or a port that refuses, shows in
#    stream_stats within about a second, saying so, and the error is logged
#    once and then counted (error_count, last_error_at);
#  - with streamml.database set, create_stream in another database fails
#    saying why and how to fix it.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { events => 2 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('databases');
$node->start;

# Created after the server started: nothing was looking at it.
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', qq{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE events (id int PRIMARY KEY);
	SELECT streamml.create_stream('events', 'events', '$bootstrap', 'events');
});
ok(produce($bootstrap, 'events', [ map { qq({"id": $_}) } 1 .. 100 ]),
	'produced 100 messages');
ok($node->poll_query_until('app', 'SELECT count(*) FROM events', '100'),
	'a stream in a database other than postgres loads');
is($node->safe_psql('postgres', q{
	SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity
	WHERE backend_type = 'pg_streamml launcher'}),
	'app', 'one launcher, in the database that has streams');
like(slurp_file($node->logfile), qr/pg_streamml launcher serves database "app"/,
	'the launcher says which database it serves');

# A restart: the supervisor finds the database again by itself.
$node->restart;
ok(produce($bootstrap, 'events', [ map { qq({"id": $_}) } 101 .. 150 ]),
	'produced after the restart');
ok($node->poll_query_until('app', 'SELECT count(*) FROM events', '150'),
	'the stream of database app resumed after a restart');

# A second database: served too, and droppable once its streams stop.
$node->safe_psql('postgres', 'CREATE DATABASE app2');
$node->safe_psql('app2', qq{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE events (id int PRIMARY KEY);
	SELECT streamml.create_stream('events2', 'events', '$bootstrap', 'events');
});
ok($node->poll_query_until('app2', 'SELECT count(*) FROM events', '150'),
	'a second database loads the same topic into its own table');
is($node->safe_psql('postgres', q{
	SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity
	WHERE backend_type = 'pg_streamml launcher'}),
	'app,app2', 'a launcher in each database with streams');
# Stream ids are numbered per database: both streams are stream 1, and
# each database's stream_stats shows its own.
my $stats = q{SELECT s.name, sum(t.rows_ingested) FROM streamml.stream_stats t
	JOIN streamml.streams s ON s.name = t.stream GROUP BY 1};
ok($node->poll_query_until('app2', $stats, 'events2|150'),
	'stream_stats of app2 counts its own rows only');
# (app's counters start at the restart: the 50 rows since)
is($node->safe_psql('app', $stats), 'events|50', 'and app its own');
$node->safe_psql('app2', q{SELECT streamml.drop_stream('events2')});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE datname = 'app2'}, '0'),
	'with its streams dropped, the database has no launcher and no consumer');
is($node->safe_psql('app', $stats), 'events|50',
	'dropping stream 1 of app2 leaves the statistics of stream 1 of app');
$node->safe_psql('postgres', 'DROP DATABASE app2');
pass('so it can be dropped');
ok($node->poll_query_until('app', 'SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = \'pg_streamml consumer\' AND datname = \'app\'', '1'),
	'the other database keeps its stream');

# Unreachable brokers: the reason, within about a second.
my $log_start = -s $node->logfile;
$node->safe_psql('app', q{CREATE TABLE nowhere (id int)});
my %case = (
	unresolved => [ 'broker1:9092',
		qr/^cannot reach broker "broker1:9092": its host name does not resolve \(Failed to resolve 'broker1:9092': .+\)$/ ],
	refused => [ '127.0.0.1:1',
		qr/^cannot reach broker "127.0\.0\.1:1": nothing accepts connections on its port \(Connect to ipv4#127\.0\.0\.1:1 failed: Connection refused\)$/ ],
);
foreach my $name (sort keys %case)
{
	my ($brokers, $expected) = @{ $case{$name} };
	my $start = time;
	$node->safe_psql('app', qq{
		SELECT streamml.create_stream('$name', 'nowhere', '$brokers', 'nowhere')});
	my $error = '';
	while (time - $start < 10)
	{
		$error = $node->safe_psql('app', qq{
			SELECT last_error FROM streamml.stream_stats
			WHERE stream = '$name' AND partition IS NULL});
		last if $error ne '';
		sleep 0.05;
	}
	my $elapsed = time - $start;
	note(sprintf("%s broker: error shown after %.2f s", $name, $elapsed));
	like($error, $expected, "$name broker: stream_stats says why");
	# About a second: the consumer starts, the first attempt fails, the
	# error shows.  3 s leaves room for a loaded machine.
	cmp_ok($elapsed, '<', 3, "$name broker: the error shows within 3 s of create_stream")
	  or diag("took $elapsed s");
}

# The consumer keeps trying (1 s, 2 s, 4 s apart): counted, logged once.
ok($node->poll_query_until('app', q{
	SELECT error_count >= 3 AND last_error_at > now() - interval '5 s'
	FROM streamml.stream_stats WHERE stream = 'unresolved' AND partition IS NULL}),
	'a repeated error is counted, with the time it last came');
my $log = substr(slurp_file($node->logfile), $log_start);
my @logged = $log =~ /(cannot reach broker "broker1:9092")/g;
is(scalar @logged, 1, 'and logged once');
like($log, qr/LOG:  pg_streamml consumer unresolved\/0: cannot reach broker "broker1:9092": its host name does not resolve/,
	'the log line names the stream and worker');
$node->safe_psql('app', q{
	SELECT streamml.drop_stream('unresolved');
	SELECT streamml.drop_stream('refused');
});
$node->stop;

# streamml.database restricts streams to one database, and create_stream
# elsewhere says so.
my $only = streamml_node('one_database', conf => "streamml.database = 'postgres'\n");
$only->start;
$only->safe_psql('postgres', 'CREATE DATABASE app');
$only->safe_psql('app', 'CREATE EXTENSION pg_streamml; CREATE TABLE t (id int)');
my ($rc, $out, $err) = $only->psql('app',
	qq{SELECT streamml.create_stream('s', 't', '$bootstrap', 'events')});
isnt($rc, 0, 'create_stream in a database that is not served fails');
like($err, qr/ERROR:  pg_streamml does not load streams in database "app"\n/,
	'it says which database is not served');
like($err, qr/DETAIL:  The database is not served because streamml.database is set to "postgres", so only the streams of that database are loaded\.\n/,
	'it says why');
like($err, qr/HINT:  Create the stream in database "postgres", or set streamml.database to '' \(every database\) or to "app" in postgresql.conf and restart the server\./,
	'and how to fix it');
is($only->safe_psql('app', 'SELECT count(*) FROM streamml.streams'), '0',
	'nothing was recorded');
$only->stop;

is($broker->stop, 0, 'broker stopped cleanly');
done_testing();
