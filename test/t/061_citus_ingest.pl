# A Kafka stream into Citus tables, exactly once through crashes: a stream
# loads a distributed table (rows reach their shards on the workers, the
# coordinator's shell stays empty) and a second one a reference table; kill
# -9 of the coordinator, then of a worker, in the middle of the load; after
# restarts and Citus's two-phase-commit recovery every message is in the
# table exactly once and the stored offsets cover all of them.  The rows
# go in batches (one INSERT ... SELECT through Citus per up to 1000 rows):
# a bad message in a batch (it does not decode, or breaks a CHECK
# constraint) becomes a dead letter and the rest of the batch is loaded
# once.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use StreamML::TestNode;
use StreamML::Citus;
use StreamML::DevBroker qw(produce);

my ($coord, $w1, $w2) = citus_cluster_or_skip('citus_ingest');

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { ticks => 4, tags => 1 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

$coord->safe_psql('postgres', qq{
	CREATE TABLE ticks (id int, price float8);
	SELECT create_distributed_table('ticks', 'id');
	CREATE TABLE tags (id int, tag text);
	SELECT create_reference_table('tags');
	SELECT streamml.create_stream('ticks', 'ticks', '$bootstrap', 'ticks', 'json',
		'{"workers": 2, "batch_size": 200, "flush_ms": 20}');
	SELECT streamml.create_stream('tags', 'tags', '$bootstrap', 'tags', 'json',
		'{"batch_size": 100, "flush_ms": 20}');
});

my $per_round = 3000;
my $total = 0;

# Produces the next chunk of messages to both topics, ids continuing.
sub produce_chunk
{
	my @ticks = map {
		my $id = $total + $_;
		[ "k$id", qq({"id": $id, "price": $id.25}) ]
	} 1 .. $per_round;
	my @tags = map {
		my $id = $total + $_;
		[ "k$id", qq({"id": $id, "tag": "t$id"}) ]
	} 1 .. $per_round;
	ok(produce($bootstrap, 'ticks', \@ticks) && produce($bootstrap, 'tags', \@tags),
		"produced ids up to " . ($total + $per_round));
	$total += $per_round;
}

# kill -9 of a node in the middle of the load, and its restart.
sub crash
{
	my ($node, $what) = @_;
	$coord->poll_query_until('postgres',
		"SELECT count(*) > " . ($total - $per_round) . " FROM ticks")
	  or diag('no progress before the crash');
	streamml_kill9($node, "children exited after kill -9 of the $what");
	sleep 1;
	$node->start;
	# Citus's maintenance daemon recovers prepared transactions every
	# citus.recover_2pc_interval; do it now.
	$coord->poll_query_until('postgres',
		'SELECT recover_prepared_transactions() >= 0')
	  or diag('recover_prepared_transactions failed');
}

produce_chunk();
crash($coord, 'coordinator');
produce_chunk();
crash($w1, 'worker node');
produce_chunk();

ok($coord->poll_query_until('postgres', 'SELECT count(*) FROM ticks', $total),
	"all $total messages in the distributed table after the crashes");
$coord->safe_psql('postgres', 'SELECT recover_prepared_transactions()');
is($coord->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id), sum(id) FROM ticks'),
	"$total|$total|" . ($total * ($total + 1) / 2),
	'the distributed table has each message exactly once');
ok($coord->poll_query_until('postgres', 'SELECT count(*) FROM tags', $total),
	"all $total messages in the reference table");
is($coord->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id) FROM tags'),
	"$total|$total", 'the reference table has each message exactly once');
is($w2->safe_psql('postgres', 'SELECT count(*) FROM tags'), $total,
	'a worker has every row of the reference table');
is($coord->safe_psql('postgres',
		"SELECT sum(next_offset) FROM streamml.offsets o JOIN streamml.streams s ON s.id = o.stream_id WHERE s.name = 'ticks'"),
	$total, 'the stored offsets cover every message, no more');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM streamml.dead_letters'),
	'0', 'no dead letters');
# The rows are in the shards: the coordinator's shell table holds none.
is($coord->safe_psql('postgres', "SELECT pg_relation_size('ticks')"), '0',
	"the coordinator's shell of the distributed table is empty");
my $w1rows = $coord->safe_psql('postgres',
	q{SELECT sum(result::bigint) FROM run_command_on_shards('ticks', $$SELECT count(*) FROM %s$$)});
is($w1rows, $total, 'the shards hold every row');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0',
	'no prepared transaction is left on the coordinator');
is($w1->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0',
	'no prepared transaction is left on the worker that crashed');

# Bad messages in a batch loaded through Citus: a message that does not
# decode and rows that break a CHECK constraint (checked on the
# coordinator against the shell table's constraints before the batch goes
# to the shards, where the error would abort the distributed transaction)
# go to dead_letters; the rest of their batch is loaded, once.
$coord->safe_psql('postgres', qq{
	CREATE TABLE checked (id int, price float8 CHECK (price >= 0));
	SELECT create_distributed_table('checked', 'id');
	SELECT streamml.create_stream('checked', 'checked', '$bootstrap', 'ticks', 'json',
		'{"batch_size": 5000, "flush_ms": 20}');
});
my @bad = (
	[ 'b1', '{"id": 1000001, "price": -1}' ],
	[ 'b2', '{"id": "not a number", "price": 1}' ],
	[ 'b3', '{"id": 1000003, "price": -3}' ]);
ok(produce($bootstrap, 'ticks', \@bad), 'produced three bad messages after the others');
ok($coord->poll_query_until('postgres',
		"SELECT count(*) FROM streamml.dead_letters WHERE stream = 'checked'", '3'),
	'the three bad messages are dead letters');
ok($coord->poll_query_until('postgres', 'SELECT count(*) FROM checked', $total),
	"the $total good messages are loaded");
is($coord->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id), max(id) FROM checked'),
	"$total|$total|$total", 'each good message exactly once, no bad one');
is($coord->safe_psql('postgres', <<'EOSQL'),
SELECT count(*) FILTER (WHERE error ~ 'violates check constraint'),
	   count(*) FILTER (WHERE error ~ 'type integer')
  FROM streamml.dead_letters WHERE stream = 'checked'
EOSQL
	'2|1', 'the errors: two CHECK violations, one decoding error');

$broker->stop;
done_testing();
