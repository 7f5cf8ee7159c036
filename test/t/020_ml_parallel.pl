# Training passes and evaluation aggregates run as parallel aggregates:
# EXPLAIN shows Partial Aggregate under Gather, training's own SPI queries
# launch parallel workers (seen through auto_explain), and a parallel run
# gives the same model as a serial one.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('ml_parallel', conf => <<'EOC');
max_parallel_workers_per_gather = 2
parallel_setup_cost = 0
parallel_tuple_cost = 0
min_parallel_table_scan_size = 0
EOC
$node->start;
$node->safe_psql('postgres', <<'EOSQL');
CREATE EXTENSION pg_streamml;
SELECT setseed(0.5);
CREATE TABLE t AS
SELECT i AS id, ARRAY[random(), random() * 10, random() - 0.5] AS f,
	   random() < 0.5 AS y, (i % 3)::text AS g
  FROM generate_series(1, 50000) i;
UPDATE t SET y = (f[1] + f[2] / 10 + random() > 1.2);
VACUUM ANALYZE t;
EOSQL

my %aggs = (
	'ml_moments' => 'streamml.ml_moments(y::int::float8, f, 1)',
	'irls_pass' => "streamml.irls_pass(y::int::float8, f, 1, ARRAY[2,0,0,0,1,1,1,0,0,0,0]::float8[], NULL, NULL)",
	'classification_metrics' => 'streamml.classification_metrics(y, f[1] / 1.0)',
	'regression_metrics' => 'streamml.regression_metrics(f[2], f[1])',
	'multiclass_metrics' => 'streamml.multiclass_metrics(y::int, ARRAY[0.5, 0.5])',
);
for my $name (sort keys %aggs)
{
	my $plan = $node->safe_psql('postgres', "EXPLAIN SELECT $aggs{$name} FROM t");
	like($plan, qr/Partial Aggregate/, "$name: EXPLAIN shows Partial Aggregate");
	like($plan, qr/Gather/, "$name: EXPLAIN shows Gather");
}

# The aggregates agree with their serial runs.
for my $name (sort keys %aggs)
{
	my $par = $node->safe_psql('postgres', "SELECT $aggs{$name}::text FROM t");
	my $ser = $node->safe_psql('postgres',
		"SET max_parallel_workers_per_gather = 0; SELECT $aggs{$name}::text FROM t");
	ok(length($par) > 0, "$name returns a result in parallel");
	if ($name =~ /metrics/)
	{
		# the same numbers, up to the order of floating-point summation
		my @p = $par =~ /(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)/g;
		my @s = $ser =~ /(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)/g;
		my $same = @p == @s && @p > 0;
		for my $i (0 .. $#p)
		{
			$same = 0 if abs($p[$i] - $s[$i]) > 1e-9 * (1 + abs($s[$i]));
		}
		ok($same, "$name: parallel and serial results are equal");
	}
}

# ml_moments with its expected length, on columns near 1e200 and 1e-200
# and a few rows of another length: the rescaling of partial states in the
# combine function gives the serial result.
{
	my $agg = "streamml.ml_moments(y::int::float8, CASE WHEN id % 997 = 0 THEN f[1:2] ELSE ARRAY[f[1] * 1e200, f[2] * 1e-200, f[3]] END, 1, 3, true)";
	my $par = $node->safe_psql('postgres', "SELECT ($agg)::text FROM t");
	my $ser = $node->safe_psql('postgres',
		"SET max_parallel_workers_per_gather = 0; SELECT ($agg)::text FROM t");
	my @p = $par =~ /(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)/g;
	my @s = $ser =~ /(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)/g;
	my $same = @p == @s && @p > 0;
	for my $i (0 .. $#p)
	{
		$same = 0 if abs($p[$i] - $s[$i]) > 1e-9 * abs($s[$i]) + 1e-9;
	}
	ok($same, 'ml_moments at extreme scales: parallel and serial results are equal');
	like($par, qr/^\{[^,]+,49950,50,3,50,1,/,
		'ml_moments skips and counts the rows of another length');
}

# Training itself uses the workers: auto_explain logs its nested queries.
$node->safe_psql('postgres', <<'EOSQL');
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SELECT * FROM streamml.train_logreg('par', 't', 'y', ARRAY['f'],
	'{"group_by": "g", "test_fraction": 0.1, "order_by": "id"}');
EOSQL
my $log = slurp_file($node->logfile);
like($log, qr/irls_pass.*?Workers Launched: [12]/s,
	'the Newton passes of train_logreg ran with parallel workers');
like($log, qr/Partial \w*Aggregate/, 'training plans use partial aggregation');

# Parallel and serial training give the same coefficients.
$node->safe_psql('postgres',
	"SET max_parallel_workers_per_gather = 0; SELECT * FROM streamml.train_logreg('ser', 't', 'y', ARRAY['f'], '{\"group_by\": \"g\", \"test_fraction\": 0.1, \"order_by\": \"id\"}')");
is($node->safe_psql('postgres', <<'EOSQL'),
SELECT count(*) FROM streamml.coefficients p
  JOIN streamml.coefficients s USING (group_key, feature)
 WHERE p.model = 'par' AND s.model = 'ser'
   AND abs(p.coefficient - s.coefficient) <= 1e-9 * (1 + abs(s.coefficient))
EOSQL
	'12', 'parallel and serial training agree on every coefficient');

# The gradient-only passes of solver lbfgs combine across workers too.
$node->safe_psql('postgres', <<'EOSQL');
SELECT * FROM streamml.train_logreg('par_lb', 't', 'y', ARRAY['f'], '{"solver": "lbfgs"}');
SET max_parallel_workers_per_gather = 0;
SELECT * FROM streamml.train_logreg('ser_lb', 't', 'y', ARRAY['f'], '{"solver": "lbfgs"}');
EOSQL
is($node->safe_psql('postgres', <<'EOSQL'),
SELECT count(*) FROM streamml.coefficients p
  JOIN streamml.coefficients s USING (feature)
 WHERE p.model = 'par_lb' AND s.model = 'ser_lb'
   AND abs(p.coefficient - s.coefficient) <= 1e-6 * (1 + abs(s.coefficient))
EOSQL
	'4', 'parallel and serial lbfgs training agree');

# predict_proba is parallel safe: it runs inside the workers.
my $plan = $node->safe_psql('postgres',
	"EXPLAIN SELECT sum(streamml.predict_proba('par', g, f)) FROM t");
like($plan, qr/Partial Aggregate/, 'predict_proba can run under Gather');
my $psum = $node->safe_psql('postgres',
	"SELECT round(sum(streamml.predict_proba('par', g, f))::numeric, 6) FROM t");
my $ssum = $node->safe_psql('postgres',
	"SET max_parallel_workers_per_gather = 0; SELECT round(sum(streamml.predict_proba('par', g, f))::numeric, 6) FROM t");
is($psum, $ssum, 'predict_proba gives the same sum in a parallel plan');

$node->stop;
done_testing();
