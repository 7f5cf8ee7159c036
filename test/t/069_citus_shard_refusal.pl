# Rows only a shard can refuse (issue 14): a CHECK constraint added to the
# shards of a distributed table only (the coordinator's shell does not
# have it, so the loader cannot check it before sending the batch) and a
# primary key that a message repeats.  Citus reports the shard's error of
# the batch's INSERT ... SELECT without its SQLSTATE; the stream bisects
# the batch as for a local table, loads the message left alone row by
# row (the shard's error then keeps its SQLSTATE) and makes it a dead
# letter with the shard's message: the rest of the batch loads, the
# offsets move past every message, the counts are exact.  An error of the
# environment (a worker down) still stops the batch, which is retried.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use StreamML::Citus;
use StreamML::DevBroker qw(produce);

my ($coord, $w1, $w2) = citus_cluster_or_skip('citus_refusal');

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { ticks => 2 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

$coord->safe_psql('postgres', q{
	CREATE TABLE ticks (id int PRIMARY KEY, price float8);
	SELECT create_distributed_table('ticks', 'id');
	SELECT count(*) FROM run_command_on_shards('ticks',
		$$ALTER TABLE %s ADD CONSTRAINT shard_only CHECK (price < 1000)$$);
});
is($coord->safe_psql('postgres',
		q{SELECT count(*) FROM pg_constraint WHERE conname = 'shard_only'}),
	'0', "the coordinator's shell does not know the CHECK");

# 2000 messages; every 100th from id 7 has a price the shards refuse, and
# id 5 comes twice (the second is refused by the shard's primary key).
my $n = 2000;
my @msgs = map {
	[ "k$_", sprintf('{"id": %d, "price": %d}', $_, $_ % 100 == 7 ? 5000 : $_ % 999) ]
} 1 .. $n;
push @msgs, [ 'again', '{"id": 5, "price": 1}' ];
ok(produce($bootstrap, 'ticks', \@msgs), 'produced the messages');
my $refused = grep { $_ % 100 == 7 } 1 .. $n;

$coord->safe_psql('postgres', qq{
	SELECT streamml.create_stream('ticks', 'ticks', '$bootstrap', 'ticks', 'json',
		'{"batch_size": 5000, "flush_ms": 50}');
});
ok($coord->poll_query_until('postgres',
		"SELECT count(*) FROM streamml.dead_letters WHERE stream = 'ticks'", $refused + 1),
	'the refused messages are dead letters');
ok($coord->poll_query_until('postgres', 'SELECT count(*) FROM ticks', $n - $refused),
	'the rest of their batches is loaded');
is($coord->safe_psql('postgres', q{
	SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE id % 100 = 7) FROM ticks}),
	($n - $refused) . '|' . ($n - $refused) . '|0', 'each good message exactly once, no refused one');
is($coord->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE error ~ '^new row for relation "ticks_\d+" violates check constraint "shard_only"'
							AND convert_from(payload, 'UTF8') ~ '"price": 5000'),
		   count(*) FILTER (WHERE error ~ '^duplicate key value violates unique constraint'
							AND convert_from(payload, 'UTF8') = '{"id": 5, "price": 1}')
	  FROM streamml.dead_letters WHERE stream = 'ticks'}),
	"$refused|1", "the dead letters carry the shards' reasons");
ok($coord->poll_query_until('postgres',
		"SELECT sum(next_offset) FROM streamml.offsets o JOIN streamml.streams s ON s.id = o.stream_id WHERE s.name = 'ticks'",
		$n + 1),
	'the offsets moved past every message');
is($coord->safe_psql('postgres', q{
	SELECT sum(rows_ingested), sum(rows_rejected) FROM streamml.stream_stats WHERE stream = 'ticks'}),
	($n - $refused) . '|' . ($refused + 1), 'stream_stats counts them');

# A worker down is no row's fault: the batch waits, nothing is dead-lettered.
$w2->stop('immediate');
my @more = map { [ "m$_", sprintf('{"id": %d, "price": 1}', 100000 + $_) ] } 1 .. 200;
ok(produce($bootstrap, 'ticks', \@more), 'produced 200 more with a worker down');
sleep 3;
is($coord->safe_psql('postgres',
		"SELECT count(*) FROM streamml.dead_letters WHERE stream = 'ticks'"),
	$refused + 1, 'no dead letter while a worker is down');
$w2->start;
ok($coord->poll_query_until('postgres', 'SELECT count(*) FROM ticks', $n - $refused + 200),
	'the batch loads once the worker is back');
is($coord->safe_psql('postgres',
		"SELECT count(*) FROM streamml.dead_letters WHERE stream = 'ticks'"),
	$refused + 1, 'and still no dead letter of its messages');

$coord->safe_psql('postgres', q{SELECT streamml.drop_stream('ticks')});
$broker->stop;
done_testing();
