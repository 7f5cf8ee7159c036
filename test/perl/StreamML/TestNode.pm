# StreamML::TestNode — a PostgreSQL::Test::Cluster node set up for
# pg_streamml: the library and pg_cron preloaded, enough worker slots, logs
# kept by the TAP framework.  Every TAP test that needs a server starts here.
package StreamML::TestNode;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use IPC::Run;
use Test::More;
use Time::HiRes qw(sleep time);

our @EXPORT = qw(streamml_node streamml_kill9 streamml_listen streamml_listened);

# streamml_node(NAME, preload => 0|1, conf => "extra postgresql.conf lines")
# returns an initialised (not yet started) node.
sub streamml_node
{
	my ($name, %opts) = @_;
	my $preload = exists $opts{preload} ? $opts{preload} : 1;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', <<"EOC");
max_worker_processes = 32
cron.database_name = 'postgres'
EOC
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'pg_streamml,pg_cron'\n")
	  if $preload;
	$node->append_conf('postgresql.conf', $opts{conf}) if $opts{conf};
	return $node;
}


# streamml_kill9(NODE, MESSAGE): kill -9 of the node's postmaster, then a
# test (named MESSAGE) that every process it had (backends, stream and
# monitor workers) exited, so that the node can start again on a clean
# shared memory.  The crash tests' one way to break a server for real.
sub streamml_kill9
{
	my ($node, $message) = @_;
	my @children = split /\n/, $node->safe_psql('postgres',
		'SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()');
	$node->kill9;
	for (1 .. 100)
	{
		last unless grep { kill 0, $_ } @children;
		sleep 0.1;
	}
	ok(!(grep { kill 0, $_ } @children), $message);
	return;
}

# streamml_listen(NODE, CHANNEL): a psql session that LISTENs on CHANNEL
# and looks for notifications every half second for 2 minutes, once a test
# (named "the listener listens") saw it listen.  For streamml_listened.
sub streamml_listen
{
	my ($node, $channel) = @_;
	my $out = '';
	my $err = '';
	my $in = "LISTEN $channel;\n" . ("SELECT pg_sleep(0.5);\n" x 240);
	my $handle = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres') ],
		'<', \$in, '>', \$out, '2>', \$err);
	my $listening = time() + 60;
	while ($out !~ /^LISTEN/m && time() < $listening)
	{
		$handle->pump_nb;
		sleep 0.1;
	}
	like($out, qr/^LISTEN/m, 'the listener listens');
	return { handle => $handle, out => \$out };
}

# streamml_listened(LISTENER, DONE, SECONDS): what the listener printed
# once DONE (a sub given that text) says so, or SECONDS have passed; the
# listener then stops.
sub streamml_listened
{
	my ($listener, $done, $seconds) = @_;
	my $deadline = time() + $seconds;
	while (!$done->(${ $listener->{out} }) && time() < $deadline)
	{
		$listener->{handle}->pump_nb;
		sleep 0.2;
	}
	$listener->{handle}->kill_kill;
	return ${ $listener->{out} };
}

1;
