
# The dev Kafka broker: librdkafka clients (kcat) get back exactly what they
# produced, keyed messages are spread over partitions by key, an outage
# refuses service and recovery restores it, and stopping leaves nothing
# behind.  No PostgreSQL server is needed.

use strict;
use warnings;

use Compress::Zlib ();
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

use StreamML::DevBroker qw(produce consume);

my $binary = $ENV{STREAMML_BROKER}
  or BAIL_OUT('STREAMML_BROKER is not set: run the tests with "make prove"');

# Whether something accepts TCP connections on 127.0.0.1:$port.
sub accepts
{
	my ($port) = @_;
	my $sock = IO::Socket::INET->new(
		PeerAddr => '127.0.0.1',
		PeerPort => $port,
		Proto => 'tcp',
		Timeout => 2);

	return 0 unless $sock;
	close($sock);
	return 1;
}

# Messages grouped by partition: { partition => [ value, ... ] }.
sub values_by_partition
{
	my %by;

	push @{ $by{ $_->{partition} } }, $_->{value} foreach @_;
	return \%by;
}

# Offsets grouped by partition: { partition => [ offset, ... ] }.
sub offsets_by_partition
{
	my %by;

	push @{ $by{ $_->{partition} } }, $_->{offset} foreach @_;
	return \%by;
}

# A bad command line is refused with status 2 and a message.
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ $binary, '--topic', 'no-partition-count' ],
		'>', \$out, '2>', \$err);
	is($? >> 8, 2, 'bad --topic: exit status 2');
	like(
		$err,
		qr/^streamml-dev-broker: invalid --topic "no-partition-count"/,
		'bad --topic: says what is wrong');
}

my $dir = PostgreSQL::Test::Utils::tempdir;
my $broker = StreamML::DevBroker->start(
	brokers => 3,
	topics => { plain => 3, keyed => 3 },
	dir => $dir);
my $bootstrap = $broker->bootstrap;
my @ports = map { (split /:/)[1] } split /,/, $bootstrap;

is(scalar @ports, 3, 'bootstrap list names three brokers');
ok(-p $broker->control, 'control FIFO exists');
is(slurp_file($broker->pid_file), $broker->pid . "\n",
	'pid file holds the broker process id');

# (a) Per partition, a consumer reads back exactly what was produced, in
# order, from offset 0, headers included.
my %sent;
foreach my $p (0 .. 2)
{
	$sent{$p} = [ map { "p$p-m$_" } 1 .. 10 ];
	ok( produce(
			$bootstrap, 'plain', $sent{$p},
			partition => $p,
			headers => { source => "tap-$p" }),
		"produced 10 messages to plain [$p]");
}
my @got = consume($bootstrap, 'plain', 30);
is(scalar @got, 30, 'read back 30 messages from plain');
is_deeply(values_by_partition(@got), \%sent,
	'each partition holds exactly its messages, in order');
is_deeply(
	offsets_by_partition(@got),
	{ map { $_ => [ 0 .. 9 ] } 0 .. 2 },
	'offsets are 0..9 in each partition');
is(scalar(grep { defined $_->{key} } @got), 0, 'no message has a key');
is(scalar(grep { $_->{headers}{source} ne "tap-$_->{partition}" } @got),
	0, 'every message kept its header');

# (b) Keyed messages: 12 keys, 4 messages each, interleaved.  librdkafka's
# default partitioner puts a key on partition crc32(key) % partitions, so
# each key stays on one partition and its messages keep their order.
my @keys = map { "key$_" } 0 .. 11;
my @keyed;
foreach my $round (1 .. 4)
{
	push @keyed, [ $_, "$_-v$round" ] foreach @keys;
}
ok(produce($bootstrap, 'keyed', \@keyed), 'produced 48 keyed messages');
@got = consume($bootstrap, 'keyed', 48);
is(scalar @got, 48, 'read back 48 keyed messages');

my (%partitions_of_key, %values_of_key, %used);
foreach my $msg (@got)
{
	$partitions_of_key{ $msg->{key} }{ $msg->{partition} } = 1;
	push @{ $values_of_key{ $msg->{key} } }, $msg->{value};
	$used{ $msg->{partition} } = 1;
}
is_deeply(
	{ map { $_ => [ keys %{ $partitions_of_key{$_} } ] } keys %partitions_of_key },
	{ map { $_ => [ Compress::Zlib::crc32($_) % 3 ] } @keys },
	'each key is on partition crc32(key) % 3, and only there');
is_deeply(
	\%values_of_key,
	{ map { my $k = $_; $k => [ map { "$k-v$_" } 1 .. 4 ] } @keys },
	'each key has its 4 values, in order');
cmp_ok(scalar keys %used, '>', 1, 'the keys use more than one partition');

# (c) An outage.  One broker down refuses connections while the others
# still accept them.
$broker->down(2);
is_deeply([ map { accepts($_) } @ports ], [ 1, 0, 1 ],
	'broker 2 down: only its port refuses connections');
$broker->up(2);
is_deeply([ map { accepts($_) } @ports ], [ 1, 1, 1 ],
	'broker 2 up: all ports accept connections');

# All brokers down: nothing is served, not even what is already stored.
$broker->down('all');
is_deeply([ map { accepts($_) } @ports ], [ 0, 0, 0 ],
	'all brokers down: every port refuses connections');
my ($ok, $err) =
  produce($bootstrap, 'plain', ['lost'], partition => 0, timeout => 2);
ok(!$ok, 'all brokers down: a produce fails within its timeout');
note("kcat said: $err");
@got = consume($bootstrap, 'plain', 1, partition => 0, timeout => 2);
is(scalar @got, 0, 'all brokers down: a consumer reads nothing');

# Back up, on the same ports: old and new messages are served.
$broker->up('all');
is_deeply([ map { accepts($_) } @ports ], [ 1, 1, 1 ],
	'all brokers up: every port accepts connections again');
my @after = map { "after-$_" } 1 .. 3;
ok(produce($bootstrap, 'plain', \@after, partition => 0),
	'produced 3 messages after recovery');
@got = consume($bootstrap, 'plain', 13, partition => 0);
is_deeply(
	[ map { $_->{value} } @got ],
	[ @{ $sent{0} }, @after ],
	'plain [0] holds its 10 old messages then the 3 new ones, not the lost one'
);
is_deeply([ map { $_->{offset} } @got ], [ 0 .. 12 ], 'offsets 0..12');

# A topic created through the control FIFO can be used at once.
$broker->create_topic('late', 2);
ok(produce($bootstrap, 'late', ['one'], partition => 1),
	'produced to a topic created by command');
@got = consume($bootstrap, 'late', 1);
is_deeply([ map { [ $_->{partition}, $_->{value} ] } @got ],
	[ [ 1, 'one' ] ], 'read it back from late [1]');

# (d) "stop" ends the process with status 0 and removes its files.
is($broker->stop, 0, 'stop command: exit status 0');
ok(!-e $broker->bootstrap_file, 'stop command: bootstrap file removed');
ok(!-e $broker->control, 'stop command: control FIFO removed');
ok(!-e $broker->pid_file, 'stop command: pid file removed');
ok(!accepts($ports[0]), 'stop command: nothing listens any more');

# SIGTERM does the same.
my $dir2 = PostgreSQL::Test::Utils::tempdir;
my $broker2 = StreamML::DevBroker->start(brokers => 1, dir => $dir2);
is($broker2->kill('TERM'), 0, 'SIGTERM: exit status 0');
ok(!-e $broker2->bootstrap_file && !-e $broker2->control
	  && !-e $broker2->pid_file,
	'SIGTERM: files removed');

done_testing();
