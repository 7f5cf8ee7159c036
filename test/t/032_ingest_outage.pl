# A broker outage: the stream shows it in stream_stats while it lasts, does
# not crash-loop, reconnects by itself and loads everything, exactly once.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { events => 2, sparse => 3 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('outage');
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE events (id int PRIMARY KEY, body text);
	SELECT streamml.create_stream('events', 'events', '$bootstrap', 'events', 'json',
		'{"workers": 2}');
});

ok(produce($bootstrap, 'events', [ map { qq({"id": $_, "body": "b$_"}) } 1 .. 100 ]),
	'produced 100 messages');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM events', '100'),
	'loaded before the outage');
my $pids = $node->safe_psql('postgres',
	q{SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
	  WHERE backend_type = 'pg_streamml consumer'});

# stream_stats: a row per partition with a position, none for the stream.
is($node->safe_psql('postgres', q{
	SELECT string_agg(coalesce(partition::text, 'null') || ':' || lag, ',' ORDER BY partition)
	FROM streamml.stream_stats}),
	'0:0,1:0', 'stream_stats: one row per partition, no stream-wide row without an error');
$node->safe_psql('postgres', qq{
	CREATE TABLE sparse (id int);
	SELECT streamml.create_stream('sparse', 'sparse', '$bootstrap', 'sparse');
});
ok(produce($bootstrap, 'sparse', [ map { qq({"id": $_}) } 1 .. 5 ], partition => 1),
	'produced 5 messages into partition 1 of 3');
ok($node->poll_query_until('postgres', q{
	SELECT string_agg(partition || ':' || coalesce(next_offset::text, '?') || ':'
		|| coalesce(high_watermark::text, '?') || ':' || coalesce(lag::text, '?')
		|| ':' || rows_ingested, ',' ORDER BY partition)
	FROM streamml.stream_stats WHERE stream = 'sparse'}, '0:0:0:0:0,1:5:5:0:5,2:0:0:0:0'),
	'stream_stats: partitions without messages show their (empty) position, lag 0');
$node->safe_psql('postgres', q{SELECT streamml.drop_stream('sparse')});

$broker->down('all');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM streamml.stream_stats WHERE last_error IS NOT NULL}),
	'last_error shows the outage');
ok($node->poll_query_until('postgres', q{
	SELECT bool_and(rows_ingested IS NULL AND lag IS NULL) FROM streamml.stream_stats
	WHERE partition IS NULL AND last_error IS NOT NULL}),
	'a broker outage is a stream-wide error: a row with partition NULL and no counters');
sleep 3;
is($node->safe_psql('postgres',
		q{SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
		  WHERE backend_type = 'pg_streamml consumer'}),
	$pids, 'the consumers ride the outage out, no restarts');

$broker->up('all');
ok(produce($bootstrap, 'events', [ map { qq({"id": $_, "body": "b$_"}) } 101 .. 200 ]),
	'produced 100 more after the outage');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM events', '200'),
	'the stream reconnected and loaded the rest');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) FROM streamml.stream_stats WHERE last_error IS NOT NULL}, '0'),
	'last_error clears once batches load again');
is($node->safe_psql('postgres', q{SELECT count(*) FROM streamml.stream_stats WHERE partition IS NULL}),
	'0', 'and the stream-wide row goes with it');
is($node->safe_psql('postgres', 'SELECT count(DISTINCT id), sum(id) FROM events'),
	'200|20100', 'each message once');

$node->stop;
$broker->stop;
done_testing();
