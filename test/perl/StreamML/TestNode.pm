# StreamML::TestNode — a PostgreSQL::Test::Cluster node set up for
# pg_streamml: the library and pg_cron preloaded, enough worker slots, logs
# kept by the TAP framework.  Every TAP test that needs a server starts here.
package StreamML::TestNode;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw(streamml_node);

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

1;
