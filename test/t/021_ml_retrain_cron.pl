# Scheduled re-training: streamml.schedule_training creates a pg_cron job
# that runs streamml.retrain as the model's owner.  The job skips while
# fewer than min_new_rows new rows arrived, and trains a new version once
# enough did.  pg_cron 1.4 schedules by the minute, so this test waits for
# two job runs (up to about two minutes).  A server without pg_cron gets a
# clear error.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('ml_cron', conf => "cron.use_background_workers = on\n");
$node->start;
$node->safe_psql('postgres', <<'EOSQL');
CREATE EXTENSION pg_streamml;
CREATE EXTENSION pg_cron;
CREATE ROLE ml_owner LOGIN;
GRANT USAGE ON SCHEMA cron TO ml_owner;
CREATE TABLE events (id int PRIMARY KEY, x float8, y boolean);
GRANT SELECT ON events TO ml_owner;
SELECT setseed(0.3);
INSERT INTO events SELECT i, x, random() < 1 / (1 + exp(-2 * x))
  FROM (SELECT i, random() * 4 - 2 AS x FROM generate_series(1, 1000) i) s;
EOSQL

# The owner trains and schedules; the job runs as the owner.
$node->safe_psql('postgres', <<'EOSQL');
SET ROLE ml_owner;
SELECT * FROM streamml.train_logreg('events_model', 'events', 'y', ARRAY['x'],
	'{"order_by": "id"}');
SELECT streamml.schedule_training('events_model', '* * * * *', '{"min_new_rows": 100}');
EOSQL
my $jobid = $node->safe_psql('postgres',
	"SELECT jobid FROM cron.job WHERE jobname = 'streamml:train:events_model'");
ok($jobid =~ /^\d+$/, 'schedule_training created a pg_cron job');
is($node->safe_psql('postgres', "SELECT username FROM cron.job WHERE jobid = $jobid"),
	'ml_owner', 'the job runs as the owner of the model');

# Waits until a run of the job that started after $since has finished;
# returns its status.
sub wait_for_run
{
	my ($since) = @_;
	$node->poll_query_until('postgres', <<"EOSQL")
SELECT count(*) > 0 FROM cron.job_run_details
 WHERE jobid = $jobid AND start_time > '$since' AND status IN ('succeeded', 'failed')
EOSQL
	  or die "no run of the training job finished";
	return $node->safe_psql('postgres', <<"EOSQL");
SELECT status || coalesce(': ' || return_message, '') FROM cron.job_run_details
 WHERE jobid = $jobid AND start_time > '$since' ORDER BY start_time LIMIT 1
EOSQL
}

# Too few new rows: the run succeeds and trains nothing.
$node->safe_psql('postgres',
	"INSERT INTO events SELECT i, 0.5, i % 2 = 0 FROM generate_series(1001, 1010) i");
my $since = $node->safe_psql('postgres', 'SELECT now()');
like(wait_for_run($since), qr/^succeeded/, 'the job ran with 10 new rows');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM streamml.model_versions WHERE model = 'events_model'"),
	'1', 'min_new_rows 100: no new version after 10 new rows');

# Enough new rows: the next run trains version 2 on all of them.
$node->safe_psql('postgres', <<'EOSQL');
INSERT INTO events SELECT i, x, random() < 1 / (1 + exp(-2 * x))
  FROM (SELECT i, random() * 4 - 2 AS x FROM generate_series(1011, 1210) i) s;
EOSQL
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM streamml.model_versions WHERE model = 'events_model'"),
	'the scheduled job trained a new version after 200 new rows');
is($node->safe_psql('postgres', <<'EOSQL'),
SELECT v.rows_used || ' ' || v.data_max || ' ' || m.deployed_version || ' ' || m.owner::regrole
  FROM streamml.model_versions v JOIN streamml.models m ON m.name = v.model
 WHERE v.model = 'events_model' AND v.version = 2
EOSQL
	'1210 1210 2 ml_owner', 'version 2 used every row and was deployed');

# Unscheduling removes the job.
$node->safe_psql('postgres',
	"SET ROLE ml_owner; SELECT streamml.unschedule_training('events_model')");
is($node->safe_psql('postgres', "SELECT count(*) FROM cron.job"), '0',
	'unschedule_training removed the job');
$node->stop;

# Without pg_cron in shared_preload_libraries everything else works and
# scheduling says what is missing.
my $plain = streamml_node('ml_no_cron',
	conf => "shared_preload_libraries = 'pg_streamml'\n");
$plain->start;
$plain->safe_psql('postgres', <<'EOSQL');
CREATE EXTENSION pg_streamml;
CREATE TABLE t AS SELECT i AS id, i % 7 AS x, i % 3 = 0 AS y FROM generate_series(1, 300) i;
SELECT * FROM streamml.train_logreg('m', 't', 'y', ARRAY['x'], '{"order_by": "id"}');
EOSQL
my ($ret, $out, $err) = $plain->psql('postgres',
	"SELECT streamml.schedule_training('m', '* * * * *')");
like($err, qr/ERROR:  pg_cron is not loaded/, 'schedule_training without pg_cron: error');
like($err, qr/HINT:  Add pg_cron to shared_preload_libraries/, '... with a hint');
is($plain->safe_psql('postgres', "SELECT count(*) FROM streamml.retrain('m')"), '1',
	'retrain works without pg_cron');
$plain->stop;
done_testing();
