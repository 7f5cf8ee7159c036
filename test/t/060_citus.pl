# pg_streamml on Citus, on a loopback cluster: a coordinator and two workers,
# each its own PostgreSQL instance.  The training passes and the metric
# aggregates run on the workers (EXPLAIN VERBOSE shows worker_partial_agg in
# the shard queries and coord_combine_agg on the coordinator), the bytes the
# coordinator receives per pass are a few states per shard, not the rows,
# and the models equal single-node training on the same rows.  With
# group_by equal to the distribution column each group's model is trained
# on its worker (the whole GROUP BY runs there).  predict() over the
# distributed table runs on the workers with the coordinator's models.
#
# Skipped when Citus is not installed in the server under test (make citus
# builds it from ../shared/vendor).
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::Citus;

my ($coord, $w1, $w2) = citus_cluster_or_skip('citus');
is($w1->safe_psql('postgres',
		"SELECT count(*) FROM pg_extension WHERE extname = 'pg_streamml'"),
	'1', 'CREATE EXTENSION pg_streamml on the coordinator reaches the workers');

# The same rows twice: distributed by id (8 shards over 2 workers), by the
# tenant g, and local to the coordinator.
$coord->safe_psql('postgres', <<'EOSQL');
SELECT setseed(0.25);
CREATE TABLE local_t AS
SELECT i AS id, (i % 4)::text AS g,
	   random() AS x1, random() * 10 AS x2, random() - 0.5 AS x3,
	   false AS y, 0::float8 AS t
  FROM generate_series(1, 20000) i;
UPDATE local_t SET y = (x1 + x2 / 10 + (g = '1')::int * 0.3 + random() > 1.3),
	t = 2 * x1 - x2 + 0.5 * x3 + random();
CREATE TABLE dist_t (LIKE local_t);
SELECT create_distributed_table('dist_t', 'id');
INSERT INTO dist_t SELECT * FROM local_t;
CREATE TABLE tenant_t (LIKE local_t);
SELECT create_distributed_table('tenant_t', 'g');
INSERT INTO tenant_t SELECT * FROM local_t;
EOSQL
is($coord->safe_psql('postgres', 'SELECT count(*) FROM dist_t'), '20000',
	'the distributed table holds the rows');

# EXPLAIN VERBOSE: every pass and metric aggregate runs on the shards.
my %aggs = (
	'ml_moments' => 'streamml.ml_moments(t, ARRAY[x1, x2, x3], 1, 3, true)',
	'irls_pass' =>
	  "streamml.irls_pass(y::int::float8, ARRAY[x1, x2, x3], 1, ARRAY[2,0,0,0,1,1,1,0,0,0,0]::float8[], NULL, NULL)",
	'classification_metrics' => 'streamml.classification_metrics(y, x1)',
	'regression_metrics' => 'streamml.regression_metrics(t, x2)',
	'multiclass_metrics' =>
	  'streamml.multiclass_metrics(g::int, ARRAY[0.25, 0.25, 0.25, 0.25])',
);
for my $name (sort keys %aggs)
{
	my $plan = $coord->safe_psql('postgres',
		"EXPLAIN VERBOSE SELECT $aggs{$name} FROM dist_t");
	like($plan, qr/worker_partial_agg\(.*$name/,
		"$name: EXPLAIN VERBOSE shows the partial aggregate on the workers");
	like($plan, qr/coord_combine_agg/,
		"$name: the coordinator combines the partial states");
	my $dist = $coord->safe_psql('postgres', "SELECT $aggs{$name}::text FROM dist_t");
	my $local = $coord->safe_psql('postgres', "SELECT $aggs{$name}::text FROM local_t");
	ok(same_numbers($dist, $local, 1e-10),
		"$name: distributed equals single-node within 1e-10 relative");
}

# feature_bins, the pass that records the training sample for drift, too:
# each shard sends its sample, not its rows.
like($coord->safe_psql('postgres',
		"EXPLAIN VERBOSE SELECT streamml.feature_bins(ARRAY[x1, x2, x3], ARRAY['x1', 'x2', 'x3']) FROM dist_t"),
	qr/worker_partial_agg\(.*feature_bins/,
	'feature_bins: EXPLAIN VERBOSE shows the partial aggregate on the workers');

# Bytes per pass: the tuple data the coordinator receives from the
# workers.  For a pass that is one partial state per shard, as text (the
# bytea output of the state): its size, shard by shard, is that of the
# aggregate's state without its final function.  (Citus's EXPLAIN ANALYZE,
# which counts the tuple data it receives, cannot run worker_partial_agg,
# whose result type is cstring.)  Gathering the rows instead, as Citus does
# for an aggregate whose state type is internal, receives all of them:
# EXPLAIN ANALYZE counts those.
$coord->safe_psql('postgres', <<'EOSQL');
CREATE AGGREGATE irls_state(float8, float8[], float8, float8[], text[], text) (
	SFUNC = streamml.irls_pass_transfn, STYPE = bytea);
EOSQL
my $pass_bytes = $coord->safe_psql('postgres', <<'EOSQL');
SELECT sum(result::bigint) FROM run_command_on_shards('dist_t',
	$$SELECT octet_length(public.irls_state(y::int::float8, ARRAY[x1, x2, x3], 1, ARRAY[2,0,0,0,1,1,1,0,0,0,0]::float8[], NULL, NULL)::text) FROM %s$$)
EOSQL
my $rows_plan = $coord->safe_psql('postgres',
	'EXPLAIN (ANALYZE, SUMMARY OFF, TIMING OFF) SELECT y, x1, x2, x3 FROM dist_t');
my ($row_bytes, $unit) = $rows_plan =~ /Tuple data received from nodes: (\d+) (bytes|kB|MB)/;
$row_bytes *= $unit eq 'kB' ? 1024 : $unit eq 'MB' ? 1024 * 1024 : 1;
note("tuple data received by the coordinator per Newton pass: $pass_bytes bytes (8 shards, 3 features); the rows themselves: $row_bytes bytes");
cmp_ok($pass_bytes, '<', 8 * 1000,
	"a pass moves O(shards x state) bytes ($pass_bytes for 8 shards)");
cmp_ok($pass_bytes * 20, '<', $row_bytes,
	"a pass moves far less than the rows ($pass_bytes against $row_bytes)");

# Training equals single-node training on the same rows.
for my $run (
	[ 'logreg', "train_logreg('M', 'T', 'y', ARRAY['x1', 'x2', 'x3'], '{\"l2\": 0.01}')" ],
	[ 'linreg', "train_linreg('M', 'T', 't', ARRAY['x1', 'x2', 'x3'])" ])
{
	my ($kind, $call) = @$run;
	for my $src ('dist_t', 'local_t')
	{
		(my $c = $call) =~ s/'M'/'${kind}_$src'/;
		$c =~ s/'T'/'$src'/;
		$coord->safe_psql('postgres', "SELECT * FROM streamml.$c");
	}
	ok(same_model("${kind}_dist_t", "${kind}_local_t", 1e-10),
		"train_$kind on the distributed table equals single-node within 1e-10");
}

# evaluate on the distributed table: the metrics aggregate runs on the
# workers and gives the single-node figures.
ok(same_numbers(
		$coord->safe_psql('postgres',
			"SELECT streamml.evaluate('logreg_dist_t', 'dist_t', 'y', ARRAY['x1', 'x2', 'x3'])::text"),
		$coord->safe_psql('postgres',
			"SELECT streamml.evaluate('logreg_dist_t', 'local_t', 'y', ARRAY['x1', 'x2', 'x3'])::text"),
		1e-10),
	'evaluate over the distributed table equals single-node');

# group_by the distribution column: the whole GROUP BY runs on the workers
# (no combine on the coordinator), and the per-tenant models equal the
# single-node ones.
my $plan = $coord->safe_psql('postgres',
	"EXPLAIN VERBOSE SELECT g, streamml.ml_moments(t, ARRAY[x1, x2, x3], 1, 3, true) FROM tenant_t GROUP BY 1");
like($plan, qr/GROUP BY .*g/, 'group_by the distribution column: the GROUP BY is in the shard queries');
unlike($plan, qr/coord_combine_agg/, 'group_by the distribution column: nothing is combined on the coordinator');
for my $src ('tenant_t', 'local_t')
{
	$coord->safe_psql('postgres',
		"SELECT * FROM streamml.train_logreg('g_$src', '$src', 'y', ARRAY['x1', 'x2', 'x3'], '{\"group_by\": \"g\", \"l2\": 0.01}')");
}
ok(same_model('g_tenant_t', 'g_local_t', 1e-10),
	'train_logreg with group_by the distribution column equals single-node');

# Serving: the coordinator copies its model catalog to the workers, so
# predict() pushed down to the workers by Citus gives the single-node
# figures (062_citus_predict.pl tests serving on the workers in full).
is($coord->safe_psql('postgres',
		"SELECT round(sum(streamml.predict_proba('logreg_dist_t', ARRAY[x1, x2, x3]))::numeric, 6) FROM dist_t"),
	$coord->safe_psql('postgres',
		"SELECT round(sum(streamml.predict_proba('logreg_dist_t', ARRAY[x1, x2, x3]))::numeric, 6) FROM local_t"),
	'predict over a distributed table, on the workers, equals single-node');

done_testing();

# True when the numbers in two texts agree within rel (relative).
sub same_numbers
{
	my ($a, $b, $rel) = @_;
	my @x = $a =~ /(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)/gi;
	my @y = $b =~ /(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)/gi;
	if (@x != @y || @x == 0)
	{
		diag("different shapes:\n$a\n$b");
		return 0;
	}
	for my $i (0 .. $#x)
	{
		if (abs($x[$i] - $y[$i]) > $rel * abs($y[$i]) + 1e-300)
		{
			diag("differ at $i: $x[$i] vs $y[$i]");
			return 0;
		}
	}
	return 1;
}

# True when two models' versions agree: coefficients, intercepts, errors.
sub same_model
{
	my ($m1, $m2, $rel) = @_;
	my $q = "SELECT string_agg(format('%s %s %s %s %s %s', group_key, intercepts, coefficients, std_errors, rows_used, iterations), ' ' ORDER BY group_key) FROM streamml.model_versions WHERE model = ";
	my $a = $coord->safe_psql('postgres', $q . "'$m1'");
	my $b = $coord->safe_psql('postgres', $q . "'$m2'");
	note("$m1: $a");
	return same_numbers($a, $b, $rel);
}
