# Serving on Citus, on a loopback cluster (a coordinator and two workers):
# predict(), predict_proba() and predict_class() in a query over a
# distributed table run in the shard queries on the workers (EXPLAIN
# VERBOSE shows the call in the worker query; only predictions come back),
# with the coordinator's deployed version: the coordinator copies every
# change of the model catalog to the workers in the changing transaction
# (two-phase commit), so a deploy or a rollback is used by the next
# statement on every node, through the sessions' cached worker connections.
# Row-level security holds on the workers: a role without a grant cannot
# predict there, nor read the model's rows; the workers' catalog cannot be
# written there, not even by the model's owner, only by the coordinator's
# copy.
#
# Skipped when Citus is not installed in the server under test (make citus
# builds it from ../shared/vendor).
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::Citus;

my ($coord, $w1, $w2) = citus_cluster_or_skip('citus_predict');

# alice owns the models, bob is another role; Citus creates both roles and
# their table privileges on the workers.
$coord->safe_psql('postgres', <<'EOSQL');
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
SELECT setseed(0.5);
CREATE TABLE local_t AS
SELECT i AS id, (i % 3)::text AS g,
	   random() AS x1, random() * 10 AS x2, random() - 0.5 AS x3,
	   false AS y, 0::float8 AS t
  FROM generate_series(1, 4000) i;
UPDATE local_t SET y = (x1 + x2 / 10 + (g = '1')::int * 0.3 + random() > 1.3),
	t = 2 * x1 - x2 + 0.5 * x3 + random();
CREATE TABLE dist_t (LIKE local_t);
SELECT create_distributed_table('dist_t', 'id');
INSERT INTO dist_t SELECT * FROM local_t;
GRANT SELECT ON local_t, dist_t TO alice, bob;
EOSQL

my @alice = (extra_params => [ '-U', 'alice' ]);
my @bob = (extra_params => [ '-U', 'bob' ]);

# Two versions of a logistic model (different penalties), a linear model
# and a grouped one, trained by alice on the coordinator.
$coord->safe_psql('postgres', <<'EOSQL', @alice);
SELECT * FROM streamml.train_logreg('churn', 'local_t', 'y', ARRAY['x1', 'x2', 'x3'], '{"l2": 0.01}');
SELECT * FROM streamml.train_logreg('churn', 'local_t', 'y', ARRAY['x1', 'x2', 'x3'], '{"l2": 50}');
SELECT streamml.deploy('churn', 1);
SELECT * FROM streamml.train_linreg('spend', 'local_t', 't', ARRAY['x1', 'x2', 'x3']);
SELECT * FROM streamml.train_logreg('bygroup', 'local_t', 'y', ARRAY['x1', 'x2', 'x3'], '{"group_by": "g", "l2": 0.01}');
EOSQL

# The workers hold the coordinator's catalog rows.
my $catalog_q = <<'EOSQL';
SELECT (SELECT string_agg(format('%s %s %s %s', name, kind, deployed_version, owner), ',' ORDER BY name) FROM streamml.models)
	|| ' / ' || (SELECT string_agg(format('%s %s %s %s %s', model, version, group_key, intercepts, coefficients), ',' ORDER BY model, version, group_key) FROM streamml.model_versions)
	|| ' / ' || (SELECT string_agg(format('%s %s %s', id, model, version), ',' ORDER BY id) FROM streamml.deployments)
EOSQL
my $coord_catalog = $coord->safe_psql('postgres', $catalog_q);
is($w1->safe_psql('postgres', $catalog_q), $coord_catalog,
	'worker 1 holds the coordinator\'s models, versions and deployments');
is($w2->safe_psql('postgres', $catalog_q), $coord_catalog,
	'worker 2 holds the coordinator\'s models, versions and deployments');

# EXPLAIN VERBOSE: the serving calls are in the shard queries, and the
# coordinator's part of the plan only gathers their results.
for my $call (
	"streamml.predict_proba('churn'::text, ARRAY[x1, x2, x3])",
	"streamml.predict('spend'::text, ARRAY[x1, x2, x3])",
	"streamml.predict_class('churn'::text, ARRAY[x1, x2, x3])",
	"streamml.predict_proba('bygroup'::text, g, ARRAY[x1, x2, x3])")
{
	my $plan = $coord->safe_psql('postgres',
		"EXPLAIN VERBOSE SELECT id, $call FROM dist_t", @alice);
	(my $fn = $call) =~ s/\(.*//;
	my ($top, $tasks) = split /->\s+Task\b/, $plan, 2;
	like($tasks // '', qr/Query: SELECT .*\Q$fn\E\(/,
		"$fn: EXPLAIN VERBOSE shows the call inside the worker query");
	unlike($top, qr/\Q$fn\E\(/,
		"$fn: the coordinator does not call it (only the workers' results come back)");
}

# The same predictions as on the coordinator over the same rows (a local
# table), row by row.
my %score = (
	'predict_proba' => "round(streamml.predict_proba('churn', ARRAY[x1, x2, x3])::numeric, 12)",
	'predict' => "round(streamml.predict('spend', ARRAY[x1, x2, x3])::numeric, 9)",
	'predict_class' => "streamml.predict_class('churn', ARRAY[x1, x2, x3])",
	'grouped predict_proba' =>
	  "round(streamml.predict_proba('bygroup', g, ARRAY[x1, x2, x3])::numeric, 12)");
sub scores
{
	my ($table, $expr, @as) = @_;
	return $coord->safe_psql('postgres',
		"SELECT id, $expr FROM $table ORDER BY id", @as);
}
for my $name (sort keys %score)
{
	my $dist = scores('dist_t', $score{$name}, @alice);
	my $local = scores('local_t', $score{$name}, @alice);
	is(scalar(() = $dist =~ /\n/g) + 1, 4000, "$name: 4000 rows scored on the workers");
	ok($dist eq $local, "$name over the distributed table equals coordinator-local scoring");
}

# A deploy on the coordinator is used by the next statement on every node,
# in the same session (its cached connections to the workers, whose
# backends have the old version in their caches).
my $v1 = $coord->safe_psql('postgres',
	"SELECT sum(streamml.predict_proba('churn', ARRAY[x1, x2, x3]) ^ 2)::numeric(20,6) FROM local_t", @alice);
$coord->safe_psql('postgres', "SELECT streamml.deploy('churn', 2)", @alice);
my $v2 = $coord->safe_psql('postgres',
	"SELECT sum(streamml.predict_proba('churn', ARRAY[x1, x2, x3]) ^ 2)::numeric(20,6) FROM local_t", @alice);
$coord->safe_psql('postgres', "SELECT streamml.deploy('churn', 1)", @alice);
isnt($v1, $v2, 'the two versions score differently');

my $session = $coord->background_psql('postgres', @alice);
# (the sum of squares: the plain sum of a logistic model's probabilities
# is the number of positive labels, whatever the penalty)
my $sum = "SELECT sum(streamml.predict_proba('churn', ARRAY[x1, x2, x3]) ^ 2)::numeric(20,6) FROM dist_t";
is($session->query_safe($sum), $v1, 'the session scores with version 1 on the workers');
is($session->query_safe($sum), $v1, 'again, from the workers\' caches');
$session->query_safe("SELECT streamml.deploy('churn', 2)");
is($session->query_safe($sum), $v2, 'deploy: the next statement scores with version 2 on every worker');
# another session deploys: this one sees it at its next statement too
$coord->safe_psql('postgres', "SELECT streamml.rollback('churn')", @alice);
is($session->query_safe($sum), $v1, 'rollback in another session: the next statement scores with version 1');
# Inside a transaction the workers serve the committed version: the copy
# to the workers is made at commit (their shard queries run in other
# backends, which cannot see the deploying transaction's rows before).
$session->query_safe('BEGIN');
$session->query_safe("SELECT streamml.deploy('churn', 2)");
is($session->query_safe($sum), $v1,
	'a deploy inside an open transaction: the workers serve the committed version');
$session->query_safe('ROLLBACK');
is($w1->safe_psql('postgres', "SELECT deployed_version FROM streamml.models WHERE name = 'churn'"),
	'1', 'a rolled-back deploy never reaches the worker\'s catalog');
is($session->query_safe($sum), $v1, 'rolled back: version 1 on the workers');
$session->query_safe('BEGIN');
$session->query_safe("SELECT streamml.deploy('churn', 2)");
$session->query_safe('COMMIT');
is($session->query_safe($sum), $v2, 'committed: the next statement scores with version 2');
$session->query_safe("SELECT streamml.deploy('churn', 1)");
$session->quit;

# Row-level security on the workers: bob has no grant, so the worker
# refuses to serve him, and he sees none of alice's rows there.
my ($rc, $out, $err) = $coord->psql('postgres', $sum, @bob);
isnt($rc, 0, 'a role without a grant cannot predict over the distributed table');
like($err, qr/model "churn" does not exist/, 'the model does not exist for him');
like($err, qr/while executing command on 127\.0\.0\.1:(\d+)/,
	'the refusal comes from a worker node');
for my $w ($w1, $w2)
{
	is($w->safe_psql('postgres', 'SELECT count(*) FROM streamml.models', @bob), '0',
		'on a worker, bob sees none of alice\'s models');
	is($w->safe_psql('postgres', 'SELECT count(*) FROM streamml.models', @alice), '3',
		'on a worker, alice sees her three models');
}
$coord->safe_psql('postgres', "SELECT streamml.grant_model('churn', 'bob')", @alice);
is($coord->safe_psql('postgres', $sum, @bob), $v1, 'granted: bob scores on the workers');
$coord->safe_psql('postgres', "SELECT streamml.revoke_model('churn', 'bob')", @alice);
($rc, $out, $err) = $coord->psql('postgres', $sum, @bob);
isnt($rc, 0, 'revoked: bob cannot predict on the workers again');

# The workers' catalog is written only by the coordinator's copy.
($rc, $out, $err) = $w1->psql('postgres', "SELECT streamml.deploy('churn', 2)", @alice);
like($err, qr/cannot change the model catalog on a Citus worker node/,
	'the owner cannot deploy on a worker');
($rc, $out, $err) = $w1->psql('postgres',
	"UPDATE streamml.models SET deployed_version = 2", @alice);
like($err, qr/permission denied for table models/, 'nor write the worker\'s catalog table');
($rc, $out, $err) = $w1->psql('postgres',
	q{SELECT streamml.model_catalog_apply('{"name": "churn", "model": null}')}, @bob);
like($err, qr/permission denied for function model_catalog_apply/,
	'only superusers may apply catalog rows on a worker');
($rc, $out, $err) = $coord->psql('postgres',
	q{SELECT streamml.model_catalog_apply('{"name": "churn", "model": null}')});
like($err, qr/runs only on a Citus worker node/, 'the apply is refused on the coordinator');

# DROP OWNED, which Citus runs on the workers too, drops the role's models
# on every node (roles.c there, not a second copy from the coordinator).
$coord->safe_psql('postgres', 'CREATE ROLE carol LOGIN; GRANT SELECT ON local_t TO carol');
$coord->safe_psql('postgres',
	"SELECT count(*) FROM streamml.train_linreg('carols', 'local_t', 't', ARRAY['x1'])",
	extra_params => [ '-U', 'carol' ]);
is($w1->safe_psql('postgres', "SELECT count(*) FROM streamml.models WHERE name = 'carols'"),
	'1', 'carol\'s model is on the workers');
$coord->safe_psql('postgres', 'DROP OWNED BY carol');
is($coord->safe_psql('postgres', "SELECT count(*) FROM streamml.models WHERE name = 'carols'")
	  . $w1->safe_psql('postgres', "SELECT count(*) FROM streamml.models WHERE name = 'carols'")
	  . $w2->safe_psql('postgres', "SELECT count(*) FROM streamml.model_versions WHERE model = 'carols'"),
	'000', 'DROP OWNED drops the role\'s model on the coordinator and the workers');

# drop_model reaches the workers; sync_model_catalog repairs a worker
# whose copy was lost.
$coord->safe_psql('postgres', "SELECT streamml.drop_model('spend')", @alice);
is($w2->safe_psql('postgres', "SELECT count(*) FROM streamml.model_versions WHERE model = 'spend'"),
	'0', 'drop_model removes the versions on the workers');
$w2->safe_psql('postgres', <<'EOSQL');
SET session_replication_role = replica;
DELETE FROM streamml.model_versions;
DELETE FROM streamml.models;
EOSQL
is($coord->safe_psql('postgres', 'SELECT streamml.sync_model_catalog()'), '2',
	'sync_model_catalog copies the two models');
$coord_catalog = $coord->safe_psql('postgres', $catalog_q);
is($w2->safe_psql('postgres', $catalog_q), $coord_catalog,
	'sync_model_catalog restores the worker\'s catalog');
is($coord->safe_psql('postgres', $sum, @alice), $v1, 'and the workers serve again');

done_testing();
