# New partitions are picked up by a running stream, without a restart, and
# loaded from their earliest offset, exactly once.
#
# The dev broker (librdkafka 2.0.2's mock cluster) cannot add partitions to
# a topic: it answers no CreatePartitions request.  So the topic has four
# partitions from the start and the test hook streamml.debug_visible_partitions
# hides two of them from the workers; showing them (a reload) is, to the
# workers, a topic that grew from two partitions to four.  Everything from
# the metadata refresh on is the code that serves a real Kafka topic.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { grow => 4 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('partitions',
	conf => "streamml.debug_visible_partitions = 2\n");
$node->start;
my $psql = sub { $node->safe_psql('postgres', shift) };

# produce_waves(FIRST, N): N messages into each of the four partitions,
# ids partition * 1000 + FIRST .. + N - 1.
sub produce_waves
{
	my ($first, $n) = @_;
	foreach my $p (0 .. 3)
	{
		ok(produce($bootstrap, 'grow',
				[ map { sprintf('{"id": %d}', $p * 1000 + $_) } $first .. $first + $n - 1 ],
				partition => $p),
			"produced ids $first.." . ($first + $n - 1) . " into partition $p");
	}
}

$psql->(q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE grow (id int PRIMARY KEY, part int);
});
produce_waves(1, 40);
$psql->(qq{SELECT streamml.create_stream('grow', 'grow', '$bootstrap', 'grow', 'json',
	'{"workers": 2, "metadata_refresh_ms": 200, "columns": {"part": "\$partition"}}')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM grow', '80'),
	'the two visible partitions are loaded');

produce_waves(41, 10);
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM grow', '100'),
	'the visible partitions keep loading');
sleep 1;
is($psql->('SELECT part, count(*) FROM grow GROUP BY part ORDER BY part'),
	"0|50\n1|50", 'nothing of the hidden partitions yet');
is($psql->(q{SELECT string_agg(partition::text, ',' ORDER BY partition)
	FROM streamml.stream_stats WHERE stream = 'grow' AND partition IS NOT NULL}),
	'0,1', 'stream_stats knows two partitions');

# The topic "grows": the workers see four partitions at their next refresh.
my $log_offset = -s $node->logfile;
$psql->(q{ALTER SYSTEM SET streamml.debug_visible_partitions = 0; SELECT pg_reload_conf()});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM grow', '200'),
	'the new partitions are loaded from their earliest offset, without a restart');
is($psql->('SELECT part, count(*), min(id) - part * 1000, max(id) - part * 1000 FROM grow GROUP BY part ORDER BY part'),
	"0|50|1|50\n1|50|1|50\n2|50|1|50\n3|50|1|50", 'every message of every partition, once');
is($psql->(q{SELECT string_agg(partition || ':' || next_offset, ',' ORDER BY partition)
	FROM streamml.offsets}),
	'0:50,1:50,2:50,3:50', 'stored offsets cover all four partitions');
my $log = slurp_file($node->logfile, $log_offset);
my @grew = $log =~ /stream "grow" has 4 partitions now, was 2/g;
is(scalar(@grew), 2, 'each worker logged the new partitions it took');
is($psql->(q{SELECT count(DISTINCT worker_pid) FROM streamml.stream_stats
	WHERE stream = 'grow' AND partition IN (2, 3)}),
	'2', 'the new partitions are split between the two workers');

# After a restart the new partitions resume where they were.
$node->restart;
produce_waves(51, 5);
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM grow', '220'),
	'after a restart every partition resumes');
is($psql->('SELECT count(DISTINCT id), count(*) FROM grow'), '220|220',
	'nothing loaded twice');

$node->stop;
unlike(slurp_file($node->logfile), qr/leak/i, 'no resource leak warnings');
done_testing();
