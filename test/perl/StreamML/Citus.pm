# StreamML::Citus — a loopback Citus cluster for the scale-out TAP tests: a
# coordinator and two workers, each its own PostgreSQL instance with citus
# (first), pg_streamml and pg_cron preloaded, the workers added to the
# coordinator's metadata, and pg_streamml created (Citus creates it on the
# workers too).  Tests skip when the server under test has no Citus.
package StreamML::Citus;

use strict;
use warnings;
use Exporter 'import';
use Test::More;
use StreamML::TestNode;

our @EXPORT = qw(citus_cluster_or_skip);

# citus_cluster_or_skip(PREFIX) returns ($coordinator, $worker1, $worker2),
# started; or ends the test file with skip_all when Citus is not installed.
sub citus_cluster_or_skip
{
	my ($prefix) = @_;
	my $probe = streamml_node("${prefix}_probe", preload => 0);
	$probe->start;
	my $have = $probe->safe_psql('postgres',
		"SELECT count(*) FROM pg_available_extensions WHERE name = 'citus'");
	$probe->stop;
	plan skip_all =>
	  'Citus is not installed (make citus builds it from ../shared/vendor/citus-*.tar.gz)'
	  if $have ne '1';

	my @nodes;
	for my $name ('coord', 'worker1', 'worker2')
	{
		my $n = streamml_node("${prefix}_$name", preload => 0, conf => <<'EOC');
listen_addresses = '127.0.0.1'
max_prepared_transactions = 50
citus.shard_count = 8
max_parallel_workers_per_gather = 0
shared_preload_libraries = 'citus,pg_streamml,pg_cron'
EOC
		$n->start;
		$n->safe_psql('postgres', 'CREATE EXTENSION citus');
		push @nodes, $n;
	}
	my ($coord, $w1, $w2) = @nodes;
	$coord->safe_psql('postgres', sprintf(<<'EOSQL', $coord->port, $w1->port, $w2->port));
SELECT citus_set_coordinator_host('127.0.0.1', %d);
SELECT citus_add_node('127.0.0.1', %d);
SELECT citus_add_node('127.0.0.1', %d);
EOSQL
	$coord->safe_psql('postgres', 'CREATE EXTENSION pg_streamml');
	return @nodes;
}

1;
