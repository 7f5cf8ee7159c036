# Seek by time, on a broker that cannot look offsets up by time (the dev
# broker answers "no message at or after" for any time): the consumer checks
# that answer against the last message's timestamp and, when it is wrong,
# finds the offset by reading timestamps.  Three waves of messages, over
# 1.1 s apart, on a topic of 2 partitions: a stream that starts between
# waves 1 and 2 loads waves 2 and 3; reset_stream between waves 2 and 3
# loads wave 3 again; a time after everything starts at the end; a time
# before everything loads all; group mode resolves the time inside its
# rebalance the same way.
use strict;
use warnings;
use lib 'test/perl';
use List::Util qw(min max);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use StreamML::TestNode;
use StreamML::DevBroker qw(produce consume);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { tt => 2 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('seektime');
$node->start;
my $psql = sub { $node->safe_psql('postgres', shift) };
$psql->(q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE tt (id int);
	CREATE TABLE tg (id int);
});

# Keyed messages, so that both partitions get some of every wave.
sub wave
{
	my ($from, $to) = @_;
	return [ map { [ "k$_", qq({"id": $_}) ] } $from .. $to ];
}

ok(produce($bootstrap, 'tt', wave(1, 10)), 'wave 1 produced');
sleep 1.1;
ok(produce($bootstrap, 'tt', wave(11, 20)), 'wave 2 produced');
sleep 1.1;
ok(produce($bootstrap, 'tt', wave(21, 30)), 'wave 3 produced');

# The waves' times, as the messages carry them (the producer's clock).
my @msgs = consume($bootstrap, 'tt', 30);
is(scalar(@msgs), 30, 'read back the 30 messages');
my %ts;
foreach my $m (@msgs)
{
	my ($id) = $m->{value} =~ /"id": (\d+)/;
	my $wave = int(($id - 1) / 10) + 1;
	push @{ $ts{$wave} }, $m->{timestamp};
}
my %parts = map { $_->{partition} => 1 } @msgs;
is(scalar(keys %parts), 2, 'the messages are spread over both partitions');
cmp_ok(min(@{ $ts{2} }) - max(@{ $ts{1} }), '>=', 1000, 'waves 1 and 2 are over a second apart');
cmp_ok(min(@{ $ts{3} }) - max(@{ $ts{2} }), '>=', 1000, 'waves 2 and 3 are over a second apart');

# A time in ms since 1970 as a timestamptz literal, from the server.
sub ts_text
{
	my ($ms) = @_;
	return $psql->("SELECT to_timestamp($ms / 1000.0)::text");
}
my $t12 = ts_text(int((max(@{ $ts{1} }) + min(@{ $ts{2} })) / 2));
my $t23 = ts_text(int((max(@{ $ts{2} }) + min(@{ $ts{3} })) / 2));
my $t_after = ts_text(max(@{ $ts{3} }) + 500);
note("between waves 1 and 2: $t12; between 2 and 3: $t23; after: $t_after");

my $offsets_query = q{SELECT count(*) || '|' || sum(next_offset)
	FROM streamml.offsets o JOIN streamml.streams s ON s.id = o.stream_id
	WHERE s.name = 'tt'};

# --- "start": a time between waves 1 and 2
my $log_offset = -s $node->logfile;
$psql->(qq{SELECT streamml.create_stream('tt', 'tt', '$bootstrap', 'tt', 'json',
	'{"start": "$t12"}')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM tt', '20'),
	'start between waves 1 and 2: 20 messages loaded');
# the start is stored as the instant in UTC, microseconds written out
my $t12_stored = $psql->("SELECT options->>'start' FROM streamml.streams WHERE name = 'tt'");
is($psql->("SELECT '$t12_stored'::timestamptz = '$t12'::timestamptz"), 't',
	'the stored start is the instant given');
sleep 1;
is($psql->('SELECT count(*), count(DISTINCT id), min(id), max(id) FROM tt'), '20|20|11|30',
	'start between waves 1 and 2: exactly waves 2 and 3');
is($psql->($offsets_query), '2|30', 'both partitions read to their end');
ok($node->wait_for_log(
		qr/partition \d starts at offset \d+ for \Q$t12_stored\E, found by reading message timestamps: Kafka found no message at or after that time, but there are/,
		$log_offset),
	'the log says the broker was wrong and the offset found by reading timestamps');

# --- reset_stream on the running stream: a time between waves 2 and 3
$psql->(qq{TRUNCATE tt; SELECT streamml.reset_stream('tt', '$t23')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM tt', '10'),
	'reset between waves 2 and 3: 10 messages loaded');
ok($node->poll_query_until('postgres', $offsets_query, '2|30'),
	'reset between waves 2 and 3: both partitions read to their end');
sleep 1;
is($psql->('SELECT count(*), count(DISTINCT id), min(id), max(id) FROM tt'), '10|10|21|30',
	'reset between waves 2 and 3: exactly wave 3, once');

# --- a time after every message: the end, then what comes next
$log_offset = -s $node->logfile;
$psql->(qq{TRUNCATE tt; SELECT streamml.reset_stream('tt', '$t_after')});
ok($node->poll_query_until('postgres', $offsets_query, '2|30'),
	'reset after every message: both partitions start at their end');
sleep 1;
is($psql->('SELECT count(*) FROM tt'), '0', 'reset after every message: nothing loaded');
ok(produce($bootstrap, 'tt', wave(31, 35)), 'wave 4 produced');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM tt', '5'),
	'reset after every message: what comes next is loaded');
sleep 1;
is($psql->('SELECT count(*), count(DISTINCT id), min(id), max(id) FROM tt'), '5|5|31|35',
	'reset after every message: exactly wave 4');
unlike(slurp_file($node->logfile, $log_offset),
	qr/found by reading message timestamps|check the broker/,
	'a correct "none at or after" is taken without a word in the log');

# --- a time before every message: everything
$psql->(q{TRUNCATE tt; SELECT streamml.reset_stream('tt', '2000-01-01 00:00:00+00')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM tt', '35'),
	'reset before every message: 35 messages loaded');
ok($node->poll_query_until('postgres', $offsets_query, '2|35'),
	'reset before every message: both partitions read to their end');
sleep 1;
is($psql->('SELECT count(*), count(DISTINCT id), min(id), max(id) FROM tt'), '35|35|1|35',
	'reset before every message: all of them, once');

# --- group mode: the time is resolved inside the rebalance
$psql->(qq{SELECT streamml.create_stream('tg', 'tg', '$bootstrap', 'tt', 'json',
	'{"start": "$t23", "group": "g037"}')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM tg', '15'),
	'group mode, start between waves 2 and 3: 15 messages loaded');
sleep 1;
is($psql->('SELECT count(*), count(DISTINCT id), min(id), max(id) FROM tg'), '15|15|21|35',
	'group mode: exactly waves 3 and 4');

$node->stop;
is($broker->stop, 0, 'broker stopped cleanly');
done_testing();
