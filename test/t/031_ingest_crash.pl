# Exactly once through crashes: kill -9 of the postmaster three times while
# three workers load a four-partition topic; afterwards every message is in
# the table exactly once and the stored offsets cover all of them.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { ticks => 4 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('crash');
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE ticks (id int, price float8, features float8[]);
	SELECT streamml.create_stream('ticks', 'ticks', '$bootstrap', 'ticks', 'json',
		'{"workers": 3, "batch_size": 200, "flush_ms": 20}');
});

my $per_round = 5000;
my $total = 0;

# Produces the next chunk of messages, ids continuing.
sub produce_chunk
{
	my @msgs = map {
		my $id = $total + $_;
		[ "k$id", qq({"id": $id, "price": $id.25, "features": [1, 2, 3, 4, 5, 6, 7, 8, 9, $id]}) ]
	} 1 .. $per_round;
	ok(produce($bootstrap, 'ticks', \@msgs), "produced ids up to " . ($total + $per_round));
	$total += $per_round;
}

for my $round (1 .. 3)
{
	produce_chunk();
	# Let some batches commit, then crash in the middle of the load.
	$node->poll_query_until('postgres',
		"SELECT count(*) > " . ($total - $per_round) . " FROM ticks")
	  or diag('no progress before the crash');
	streamml_kill9($node, "children exited after kill -9 number $round");
	$node->start;
}

produce_chunk();
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM ticks', $total),
	"all $total messages loaded after three crashes");
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id), sum(id) FROM ticks'),
	"$total|$total|" . ($total * ($total + 1) / 2), 'each message exactly once');
is($node->safe_psql('postgres', 'SELECT sum(next_offset) FROM streamml.offsets'),
	$total, 'the stored offsets cover every message, no more');
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamml.dead_letters'),
	'0', 'no dead letters');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_streamml consumer'}),
	'3', 'three consumers run again');

$node->stop;
$broker->stop;
done_testing();
