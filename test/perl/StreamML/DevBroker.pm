
=pod

=head1 NAME

StreamML::DevBroker - the dev Kafka broker and kcat, for pg_streamml's TAP tests

=head1 SYNOPSIS

  use StreamML::DevBroker qw(produce consume);

  my $broker = StreamML::DevBroker->start(
	  brokers => 3,
	  topics  => { orders => 3 },
	  dir     => PostgreSQL::Test::Utils::tempdir);

  ok(produce($broker->bootstrap, 'orders', [ 'a', [ 'key', 'b' ] ]));
  my @msgs = consume($broker->bootstrap, 'orders', 2);

  $broker->down('all');     # or a broker id
  $broker->up('all');
  $broker->create_topic('late', 2);
  is($broker->stop, 0, 'broker exited cleanly');

=head1 DESCRIPTION

Runs test/broker/streamml-dev-broker (the binary named by
C<$ENV{STREAMML_BROKER}>, which C<make prove> sets) with its files in a
directory of the test's, and steers it through its control FIFO.  Every
control method waits until the broker has printed the command's result, so
when it returns the change has taken effect.  Every wait is bounded by the
C<timeout> given to C<start> (10 seconds by default); a broker that does not
answer in time is a test failure, reported with C<croak>.

The broker is stopped when the object goes away, so a test that dies does not
leave one behind.

=cut

package StreamML::DevBroker;

use strict;
use warnings;

use Carp;
use Exporter 'import';
use Fcntl qw(O_WRONLY O_NONBLOCK);
use File::Temp ();
use IPC::Run;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

our @EXPORT_OK = qw(produce consume);

# How often a wait looks again, in seconds.
my $POLL_INTERVAL = 0.02;

=pod

=head1 METHODS

=over

=item StreamML::DevBroker->start(%args)

Start a broker and wait until it is ready.  C<dir> (required) receives its
bootstrap file, control FIFO, pid file and log (F<broker.log>); C<brokers>
defaults to 3; C<topics> is a hash of topic names to partition counts to
create at start-up; C<timeout> bounds every wait, in seconds (default 10);
C<binary> overrides C<$ENV{STREAMML_BROKER}>.

=cut

sub start
{
	my ($class, %args) = @_;
	my $binary = $args{binary} // $ENV{STREAMML_BROKER}
	  or croak "STREAMML_BROKER is not set: run the tests with \"make prove\"";
	my $dir = $args{dir} or croak "start: dir is required";
	my $topics = $args{topics} // {};

	croak "dev broker \"$binary\" is not an executable; build it with \"make\""
	  unless -x $binary;
	croak "start: directory \"$dir\" does not exist" unless -d $dir;

	my $self = bless {
		binary => $binary,
		dir => $dir,
		brokers => $args{brokers} // 3,
		timeout => $args{timeout} // 10,
		bootstrap_file => "$dir/bootstrap",
		control => "$dir/control",
		pid_file => "$dir/broker.pid",
		log_file => "$dir/broker.log",
		owner => $$,
	}, $class;

	# The bootstrap file of an earlier broker must not look like readiness.
	unlink $self->{bootstrap_file};

	my @cmd = (
		$binary,
		'--brokers' => $self->{brokers},
		'--bootstrap-file' => $self->{bootstrap_file},
		'--control' => $self->{control},
		'--pid-file' => $self->{pid_file},
		map { ('--topic' => "$_:$topics->{$_}") } sort keys %$topics);

	my $pid = fork;
	croak "could not fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null') or POSIX::_exit(127);
		open(STDOUT, '>', $self->{log_file}) or POSIX::_exit(127);
		open(STDERR, '>&', \*STDOUT) or POSIX::_exit(127);
		exec { $cmd[0] } @cmd
		  or print STDERR "could not run \"$cmd[0]\": $!\n";
		POSIX::_exit(127);
	}
	$self->{pid} = $pid;

	# The broker writes the bootstrap file last, through a rename: once it
	# is there, it is whole and the cluster, topics and FIFO are ready.
	$self->_wait_for(
		sub { -s $self->{bootstrap_file} },
		"the bootstrap file \"$self->{bootstrap_file}\"");

	open(my $fh, '<', $self->{bootstrap_file})
	  or croak "could not read \"$self->{bootstrap_file}\": $!";
	my $bootstrap = <$fh>;
	close($fh);
	chomp $bootstrap;
	croak "bad bootstrap list \"$bootstrap\""
	  unless $bootstrap =~ /^127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+)*$/;
	$self->{bootstrap} = $bootstrap;

	return $self;
}

=pod

=item $broker->bootstrap

The bootstrap list, C<127.0.0.1:port,...>.

=item $broker->pid, ->control, ->bootstrap_file, ->pid_file, ->log_file

The process id and the broker's files.

=cut

sub bootstrap      { return $_[0]->{bootstrap}; }
sub pid            { return $_[0]->{pid}; }
sub control        { return $_[0]->{control}; }
sub bootstrap_file { return $_[0]->{bootstrap_file}; }
sub pid_file       { return $_[0]->{pid_file}; }
sub log_file       { return $_[0]->{log_file}; }

=pod

=item $broker->down($id), $broker->up($id)

Take broker C<$id> (1..brokers), or every broker with C<'all'>, down or up.
A broker that is down refuses connections and has dropped the ones it had.

=cut

sub down
{
	my ($self, $id) = @_;

	return $self->command("down $id", _state_line($id, 'down'));
}

sub up
{
	my ($self, $id) = @_;

	return $self->command("up $id", _state_line($id, 'up'));
}

# The line the broker prints once broker $id (or all) is in $state.
sub _state_line
{
	my ($id, $state) = @_;

	return $id eq 'all'
	  ? qr/^all brokers \Q$state\E$/m
	  : qr/^broker \Q$id\E \Q$state\E$/m;
}

=pod

=item $broker->create_topic($name, $partitions)

Create a topic.  The mock cluster cannot add partitions to an existing topic,
so creating one twice fails.

=cut

sub create_topic
{
	my ($self, $name, $partitions) = @_;

	return $self->command("topic $name $partitions",
		qr/^topic \Q$name\E created with \Q$partitions\E partitions?$/m);
}

=pod

=item $broker->command($line, $expected)

Send a control command and wait until the broker's log shows a line
matching the regular expression C<$expected>.  Croaks if the broker prints
an error instead, exits, or says nothing in time.

=cut

sub command
{
	my ($self, $line, $expected) = @_;
	my $offset = -s $self->{log_file} // 0;

	$self->_send($line);
	my $new;
	$self->_wait_for(
		sub {
			$new = $self->_log_since($offset);
			croak "dev broker refused \"$line\": $1"
			  if $new =~ /^streamml-dev-broker: (.*)$/m;
			return $new =~ $expected;
		},
		"the answer to \"$line\"");
	return 1;
}

# Write one command line to the control FIFO.  Opening without blocking
# fails at once, rather than hanging, if no broker reads the FIFO.
sub _send
{
	my ($self, $line) = @_;

	sysopen(my $fifo, $self->{control}, O_WRONLY | O_NONBLOCK)
	  or croak "could not open control FIFO \"$self->{control}\": $!";
	my $written = syswrite($fifo, "$line\n");
	close($fifo);
	croak "could not write \"$line\" to the control FIFO: $!"
	  unless defined $written && $written == length($line) + 1;
	return;
}

# What the broker has logged after byte $offset.
sub _log_since
{
	my ($self, $offset) = @_;

	open(my $fh, '<', $self->{log_file})
	  or croak "could not read \"$self->{log_file}\": $!";
	seek($fh, $offset, 0);
	local $/;
	my $text = <$fh> // '';
	close($fh);
	return $text;
}

# Poll $check until it returns true.  Croak, with the broker's log, if the
# broker exits first or the timeout passes.
sub _wait_for
{
	my ($self, $check, $what) = @_;
	my $deadline = time + $self->{timeout};

	while (1)
	{
		return if $check->();
		if (!$self->_alive)
		{
			croak "dev broker exited (status $self->{status}) while waiting for $what; its log:\n"
			  . $self->_log_since(0);
		}
		if (time > $deadline)
		{
			croak "dev broker gave no $what in $self->{timeout} s; its log:\n"
			  . $self->_log_since(0);
		}
		sleep $POLL_INTERVAL;
	}
}

# Whether the broker process still runs; records its exit status if not.
sub _alive
{
	my ($self) = @_;

	return 0 if defined $self->{status};
	my $res = waitpid($self->{pid}, WNOHANG);
	return 1 if $res == 0;

	# -1 means someone else reaped it; the status is then unknown.
	$self->{status} = $res == $self->{pid} ? ($? >> 8) | ($? & 127) << 8 : -1;
	return 0;
}

=pod

=item $broker->stop

Send C<stop> and wait for the broker to exit.  Returns its exit status (0 for
a clean stop; signal N gives N * 256).

=item $broker->kill($signal)

Send a signal (a name such as C<'TERM'>) and wait for the broker to exit.
Returns its exit status.

=cut

sub stop
{
	my ($self) = @_;

	return $self->{status} unless $self->_alive;
	$self->_send('stop');
	return $self->_wait_exit;
}

sub kill
{
	my ($self, $signal) = @_;

	return $self->{status} unless $self->_alive;
	CORE::kill($signal, $self->{pid});
	return $self->_wait_exit;
}

# Wait for the broker process to exit and return its status.
sub _wait_exit
{
	my ($self) = @_;

	$self->_wait_for(sub { !$self->_alive }, 'exit')
	  if $self->_alive;
	return $self->{status};
}

# Do not leave a broker behind: SIGTERM, then SIGKILL if it lingers.
sub DESTROY
{
	my ($self) = @_;

	return unless $self->{pid} && $$ == $self->{owner};
	local ($@, $!, $?);
	return unless $self->_alive;
	CORE::kill('TERM', $self->{pid});
	my $deadline = time + $self->{timeout};
	sleep $POLL_INTERVAL while $self->_alive && time < $deadline;
	if ($self->_alive)
	{
		CORE::kill('KILL', $self->{pid});
		waitpid($self->{pid}, 0);
	}
	return;
}

=pod

=back

=head1 FUNCTIONS

Both run kcat, under a time limit, and never croak for a Kafka failure: a
test of an outage needs the failure as a value.

=over

=item produce($bootstrap, $topic, \@messages, %opts)

Produce each element of C<@messages>, in order: a string is a value without
key, C<[$key, $value]> a keyed message.  Values and keys must not contain
newlines or tabs, and must not be empty.  Options: C<partition> (default:
librdkafka's partitioner, which hashes the key), C<headers> (a hash, added to
every message), C<timeout> (seconds, default 10: how long a message may wait
for a broker).

Returns true when kcat reports every message delivered.  In list context
returns also kcat's stderr, for diagnostics.

=cut

sub produce
{
	my ($bootstrap, $topic, $messages, %opts) = @_;
	my $timeout = $opts{timeout} // 10;
	my $keyed = grep { ref $_ } @$messages;
	my $input = '';

	croak "produce: mix of keyed and unkeyed messages"
	  if $keyed && $keyed != @$messages;
	foreach my $msg (@$messages)
	{
		my @parts = ref $msg ? @$msg : ($msg);

		croak "produce: a message needs a key and a value"
		  unless @parts == (ref $msg ? 2 : 1);
		croak "produce: empty, or with a tab or newline: \"@parts\""
		  if grep { !defined $_ || $_ eq '' || /[\t\n]/ } @parts;
		$input .= join("\t", @parts) . "\n";
	}

	my @cmd = (
		'kcat', '-P',
		'-b' => $bootstrap,
		'-t' => $topic,
		'-X' => 'message.timeout.ms=' . int($timeout * 1000));
	push @cmd, '-K' => '\t' if $keyed;
	push @cmd, '-p' => $opts{partition} if defined $opts{partition};
	push @cmd, map { ('-H' => "$_=$opts{headers}{$_}") }
	  sort keys %{ $opts{headers} // {} };

	# kcat exits 1 if any message was not delivered in time.
	my ($ok, $out, $err) = _run_kcat(\@cmd, $input, $timeout + 5);

	return wantarray ? ($ok, $err) : $ok;
}

=pod

=item consume($bootstrap, $topic, $count, %opts)

Read up to C<$count> messages from the start of C<$topic> (all partitions, or
C<partition>), stopping at the end of the log or after C<timeout> seconds
(default 10).  Returns a list of hashes with C<partition>, C<offset>,
C<key> (undef if none), C<value>, C<timestamp> and C<headers> (a hash).
Messages of one partition come in offset order.

=back

=cut

sub consume
{
	my ($bootstrap, $topic, $count, %opts) = @_;
	my $timeout = $opts{timeout} // 10;
	my @cmd = (
		'kcat', '-C', '-J', '-q', '-e',
		'-b' => $bootstrap,
		'-t' => $topic,
		'-o' => $opts{offset} // 'beginning',
		'-c' => $count);
	push @cmd, '-p' => $opts{partition} if defined $opts{partition};

	my ($ok, $out, $err) = _run_kcat(\@cmd, '', $timeout);
	my @messages;

	foreach my $line (split /\n/, $out)
	{
		my $rec = eval { decode_json($line) };

		next unless ref $rec eq 'HASH' && exists $rec->{payload};
		my %headers = @{ $rec->{headers} // [] };
		push @messages,
		  {
			partition => $rec->{partition},
			offset => $rec->{offset},
			key => $rec->{key},
			value => $rec->{payload},
			timestamp => $rec->{ts},
			headers => \%headers,
		  };
	}
	return @messages;
}

# Run kcat with $input on stdin for at most $timeout seconds.  Returns
# (success, stdout, stderr); a kcat that runs out of time is killed at once
# (it takes seconds to obey SIGTERM while it cannot reach a broker).  The
# input goes through a file: a started IPC::Run harness keeps a scalar
# stdin open, and kcat -P only finishes at end of input.
sub _run_kcat
{
	my ($cmd, $input, $timeout) = @_;
	my ($out, $err) = ('', '');
	my $timer = IPC::Run::timer($timeout);
	my $infile = File::Temp->new;

	print $infile $input;
	close($infile) or croak "could not write kcat's input: $!";
	my $h = IPC::Run::start($cmd, '<', $infile->filename, '>', \$out,
		'2>', \$err, $timer);

	$h->pump while $h->pumpable && !$timer->is_expired;
	if ($timer->is_expired && $h->pumpable)
	{
		$h->signal('KILL');
		$h->finish;
		$err .= "kcat did not finish in $timeout s\n";
		return (0, $out, $err);
	}
	$h->finish;
	return ($h->result == 0 ? 1 : 0, $out, $err);
}

1;
