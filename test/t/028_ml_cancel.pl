# Training can be cancelled: with 3,000 features and 40 rows the O(p³)
# solves (Cholesky, the covariance), the O(p²) passes and the aggregates'
# block updates take tens of seconds, and statement_timeout must stop them
# within a second of its expiry, as it stops any query.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use StreamML::TestNode;

my $node = streamml_node('ml_cancel');
$node->start;
$node->safe_psql('postgres', <<'EOSQL');
CREATE EXTENSION pg_streamml;
CREATE TABLE wide AS
SELECT i, i % 2 = 0 AS y, i + (i % 3)::float8 AS t,
	   (SELECT array_agg(sin(i * j + (i % 2) * j * 0.01)) FROM generate_series(1, 3000) j) AS f
  FROM generate_series(1, 40) i;
EOSQL

# Runs sql with statement_timeout = 2s; returns the wall time and stderr.
sub timed
{
	my ($sql) = @_;
	my ($stdout, $stderr);
	my $start = time();
	$node->psql('postgres', "SET statement_timeout = '2s'; $sql",
		stdout => \$stdout, stderr => \$stderr);
	return (time() - $start, $stderr);
}

my %runs = (
	'train_logreg' =>
	  "SELECT * FROM streamml.train_logreg('wide_log', 'wide', 'y', ARRAY['f'])",
	'train_linreg' =>
	  "SELECT * FROM streamml.train_linreg('wide_lin', 'wide', 't', ARRAY['f'])",
	'train_logreg with l1' =>
	  "SELECT * FROM streamml.train_logreg('wide_l1', 'wide', 'y', ARRAY['f'], '{\"l1\": 0.0001}')",
	'ml_moments over many rows' =>
	  "SELECT streamml.ml_moments(t, f, 1, 3000, true) IS NULL FROM wide, generate_series(1, 1000)",
);
for my $name (sort keys %runs)
{
	my ($elapsed, $stderr) = timed($runs{$name});
	like($stderr, qr/canceling statement due to statement timeout/,
		"$name is cancelled by statement_timeout");
	cmp_ok($elapsed, '<', 3.0,
		sprintf("$name stops within 1 s of the timeout (%.2f s)", $elapsed));
}

# The session is usable afterwards, and nothing was recorded.
is($node->safe_psql('postgres',
		"SELECT count(*) FROM streamml.models WHERE name LIKE 'wide%'"),
	'0', 'cancelled runs leave no model behind');

$node->stop;
done_testing();
