# Consumer-group mode ("group"): two PostgreSQL servers, each with a stream
# in the same Kafka consumer group on one four-partition topic, each into
# its own table.  What README's "Consumer-group mode" promises, and no more:
#  - the group splits the partitions between the servers: each message is
#    loaded exactly once in the union of the two tables, and both load some;
#  - a partition that moves to the other server resumes there at that
#    server's own stored offset (or its start), not where the first server
#    stopped: each table holds every message of the partitions it was given
#    exactly once, and the union holds every message at least once;
#  - handing a partition's offset along with it (reset_stream with offsets)
#    moves it without loading anything twice;
#  - when a server dies without leaving the group (kill -9), the other takes
#    its partitions over after the session timeout;
#  - two streams of one server in a group split the partitions like two
#    servers, and one with "start": "latest" begins a partition new to it at
#    its end;
#  - a batch that fails for no message's fault is retried from the stored
#    offsets without the worker leaving the group, and nothing is lost.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { orders => 4 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my %node;
for my $n ('a', 'b')
{
	$node{$n} = streamml_node("group_$n");
	$node{$n}->start;
	$node{$n}->safe_psql('postgres', qq{
		CREATE EXTENSION pg_streamml;
		CREATE TABLE orders_$n (id int, part int);
	});
}
my ($A, $B) = @node{ 'a', 'b' };

# Creates the stream of a server: same group, its own table.
sub create_stream
{
	my ($n) = @_;
	$node{$n}->safe_psql('postgres', qq{
		SELECT streamml.create_stream('orders', 'orders_$n', '$bootstrap', 'orders', 'json',
			'{"group": "loaders", "batch_size": 100, "flush_ms": 20,
			  "columns": {"part": "\$partition"},
			  "kafka": {"session.timeout.ms": 3000, "heartbeat.interval.ms": 300}}')});
}

# Waits for a server to log that its stream (default "orders") got n
# partitions, after offset.
sub wait_assigned
{
	my ($node, $n, $offset, $stream) = @_;
	$stream //= 'orders';
	return $node->wait_for_log(
		qr/stream "$stream" was assigned $n partitions by group "loaders"/, $offset);
}

# The size of a server's log now, to wait for what comes after.
sub log_pos { return -s $_[0]->logfile; }

my $produced = 0;

# Produces ids produced+1 .. produced+count, keyed by id.
sub produce_ids
{
	my ($count) = @_;
	my @msgs = map {
		my $id = $produced + $_;
		[ "k$id", qq({"id": $id}) ]
	} 1 .. $count;
	ok(produce($bootstrap, 'orders', \@msgs), "produced ids up to " . ($produced + $count));
	$produced += $count;
}

# 1. Two members split the topic; A joins first and gets everything.
create_stream('a');
wait_assigned($A, 4, 0);
my $pos_a = log_pos($A);
create_stream('b');
wait_assigned($B, 2, 0);
wait_assigned($A, 2, $pos_a);
pass('the group split the four partitions two and two');

produce_ids(2000);
# Each server sees only its own table: wait on both.
my $count = sub {
	my ($node, $table) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) FROM $table");
};
my $ok = 0;
for (1 .. 600)
{
	last if $ok = ($count->($A, 'orders_a') + $count->($B, 'orders_b') >= 2000);
	select(undef, undef, undef, 0.1);
}
ok($ok, 'the two servers loaded 2000 messages between them');

# Pulls a server's rows into the other, to look at the union in one place.
sub copy_rows
{
	my ($from, $to, $table) = @_;
	my $rows = $from->safe_psql('postgres',
		"SELECT coalesce(string_agg(format('(%s,%s)', id, part), ','), '') FROM $table");
	$to->safe_psql('postgres', "CREATE TABLE copy_$table (id int, part int);"
		  . ($rows ne '' ? "INSERT INTO copy_$table VALUES $rows;" : ''));
}
copy_rows($A, $B, 'orders_a');
my $union_b = q{(SELECT id, part FROM copy_orders_a UNION ALL SELECT id, part FROM orders_b)};
is($B->safe_psql('postgres', "SELECT count(*), count(DISTINCT id), sum(id) FROM $union_b u"),
	'2000|2000|' . (2000 * 2001 / 2), 'each message exactly once in the union of the tables');
my $a1 = $count->($A, 'orders_a');
my $b1 = $count->($B, 'orders_b');
ok($a1 > 0 && $b1 > 0, "both servers loaded some ($a1 and $b1)");
is($B->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT DISTINCT part FROM copy_orders_a
		INTERSECT SELECT DISTINCT part FROM orders_b) x}),
	'0', 'no partition was loaded by both');

# 2. A's stream stops: A leaves the group and B gets all four partitions.
# B has no stored offset for A's partitions, so it loads them from its start
# ("earliest"): at least once across the servers, exactly once in B.
my $pos_b = log_pos($B);
$A->safe_psql('postgres', q{SELECT streamml.stop_stream('orders')});
wait_assigned($B, 4, $pos_b);
pass('B took all partitions over when A left the group');
produce_ids(1000);
ok($B->poll_query_until('postgres', 'SELECT count(*) FROM orders_b', '3000'),
	'B loads all 3000 messages: the moved partitions from its own start');
is($B->safe_psql('postgres', 'SELECT count(DISTINCT id), sum(id) FROM orders_b'),
	'3000|' . (3000 * 3001 / 2), 'each message once in B');
is($B->safe_psql('postgres', q{
	SELECT count(*), bool_and(a.part = b.part)
	FROM copy_orders_a a JOIN orders_b b USING (id)}),
	"$a1|t", "only A's messages are loaded twice across the servers, from the partitions that moved");
is($count->($A, 'orders_a'), $a1, 'A loaded nothing after its stream stopped');

# 3. Moving the partitions back with their offsets loads nothing twice:
# B stops, its offsets go to A's stream with reset_stream (the README's
# recipe), A starts.
$B->safe_psql('postgres', q{SELECT streamml.stop_stream('orders')});
ok($B->poll_query_until('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_streamml consumer'}, '0'),
	'B stopped');
produce_ids(500);
my $offsets = $B->safe_psql('postgres', q{
	SELECT jsonb_object_agg(partition, next_offset) FROM streamml.offsets});
$A->safe_psql('postgres', qq{SELECT streamml.reset_stream('orders', '$offsets')});
$pos_a = log_pos($A);
$A->safe_psql('postgres', q{SELECT streamml.start_stream('orders')});
wait_assigned($A, 4, $pos_a);
ok($A->poll_query_until('postgres', 'SELECT count(*) FROM orders_a', $a1 + 500),
	'A loads the 500 new messages');
is($A->safe_psql('postgres', 'SELECT count(*), min(id), max(id), count(DISTINCT id) FROM orders_a WHERE id > 3000'),
	'500|3001|3500|500', 'exactly the new ones, from the offsets handed over');
is($A->safe_psql('postgres', 'SELECT count(*) FROM orders_a'), $a1 + 500,
	'and nothing that B had loaded');

# 4. B joins again and A is killed: B takes A's partitions over after the
# session timeout, each from B's own stored offset.
$pos_a = log_pos($A);
$pos_b = log_pos($B);
$B->safe_psql('postgres', q{SELECT streamml.start_stream('orders')});
wait_assigned($B, 2, $pos_b);
wait_assigned($A, 2, $pos_a);
$pos_b = log_pos($B);
$A->kill9;
wait_assigned($B, 4, $pos_b);
pass('B took all partitions over after A died without leaving');
produce_ids(500);
ok($B->poll_query_until('postgres', 'SELECT count(*) FROM orders_b', $produced),
	"B holds all $produced messages");
is($B->safe_psql('postgres', 'SELECT count(DISTINCT id), sum(id) FROM orders_b'),
	"$produced|" . ($produced * ($produced + 1) / 2), 'each message once in B');

# 5. A second stream on the same server joins the group with "start":
# "latest": the two streams split the partitions like two servers, and the
# new one begins its partitions at their end, skipping what came before.
$pos_b = log_pos($B);
$B->safe_psql('postgres', qq{
	CREATE TABLE orders_c (id int, part int);
	SELECT streamml.create_stream('orders2', 'orders_c', '$bootstrap', 'orders', 'json',
		'{"group": "loaders", "start": "latest", "batch_size": 100, "flush_ms": 20,
		  "columns": {"part": "\$partition"},
		  "kafka": {"session.timeout.ms": 3000, "heartbeat.interval.ms": 300}}')});
wait_assigned($B, 2, $pos_b, 'orders2');
wait_assigned($B, 2, $pos_b, 'orders');
pass('two streams of one server split the partitions');
my $before = $produced;
produce_ids(400);
ok($B->poll_query_until('postgres', qq{
	SELECT (SELECT count(*) FROM orders_b WHERE id > $before)
	     + (SELECT count(*) FROM orders_c)}, '400'),
	'the two streams loaded the 400 new messages between them');
is($B->safe_psql('postgres', qq{
	SELECT count(DISTINCT id), min(id), max(id) FROM (
		SELECT id FROM orders_b WHERE id > $before UNION ALL SELECT id FROM orders_c) u}),
	'400|' . ($before + 1) . "|$produced", 'each new message once, in one of the two tables');
ok($B->safe_psql('postgres', 'SELECT count(*) FROM orders_c') > 0,
	'the new stream loaded some');
is($B->safe_psql('postgres', qq{SELECT count(*) FROM orders_c WHERE id <= $before}), '0',
	'and, starting at the end, none of the messages from before it joined');
is($B->safe_psql('postgres', 'SELECT count(*) FROM streamml.dead_letters'), '0',
	'no dead letters');
is($B->safe_psql('postgres', q{
	SELECT string_agg(stream || ':' || n, ',' ORDER BY stream) FROM (
		SELECT stream, count(*) AS n FROM streamml.stream_stats
		WHERE partition IS NOT NULL GROUP BY stream) s}),
	'orders:2,orders2:2', 'stream_stats shows only the partitions each stream holds now');

# 6. A batch fails for no message's fault (a statement trigger raises while
# "hold" has a row): the worker retries from its stored offsets, staying in
# the group (same process, no new assignment), and loses nothing.
my $pid_query = q{SELECT pid FROM pg_stat_activity
	WHERE application_name = 'pg_streamml orders2/0'};
my $pid2 = $B->safe_psql('postgres', $pid_query);
$B->safe_psql('postgres', q{
	CREATE TABLE hold (x int);
	INSERT INTO hold VALUES (1);
	CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF EXISTS (SELECT FROM public.hold) THEN
			RAISE EXCEPTION 'held' USING ERRCODE = 'object_not_in_prerequisite_state';
		END IF;
		RETURN NULL;
	END $$;
	CREATE TRIGGER hold BEFORE INSERT ON orders_c
		FOR EACH STATEMENT EXECUTE FUNCTION hold();
	CREATE TRIGGER hold BEFORE INSERT ON orders_b
		FOR EACH STATEMENT EXECUTE FUNCTION hold();
});
$pos_b = log_pos($B);
$before = $produced;
produce_ids(200);
ok($B->poll_query_until('postgres', q{
	SELECT count(*) = 2 FROM streamml.stream_stats
	WHERE partition IS NULL AND last_error LIKE '%held%'}),
	'both streams show the failing batch');
$B->safe_psql('postgres', 'DELETE FROM hold');
ok($B->poll_query_until('postgres', qq{
	SELECT (SELECT count(*) FROM orders_b WHERE id > $before)
	     + (SELECT count(*) FROM orders_c WHERE id > $before)}, '200'),
	'after the hold every message is loaded');
is($B->safe_psql('postgres', qq{
	SELECT count(DISTINCT id) FROM (
		SELECT id FROM orders_b WHERE id > $before UNION ALL
		SELECT id FROM orders_c WHERE id > $before) u}),
	'200', 'each once');
is($B->safe_psql('postgres', $pid_query), $pid2, 'the worker stayed the same process');
unlike(slurp_file($B->logfile, $pos_b), qr/was assigned/,
	'and the group did not rebalance');

$B->stop;
is($broker->stop, 0, 'broker stopped cleanly');
done_testing();
