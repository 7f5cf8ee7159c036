# A cancel while a tree run predicts its holdout, which the backend does on
# its own thread and on helper POSIX threads (tree_predict.c's
# TreeModelPredictRows): the backend stops and joins its helpers before it
# serves the interrupt, so the statement ends with the cancel's error
# within about a chunk of rows, the backend survives (the helpers never
# call PostgreSQL, and nothing they read is freed while they run), no
# helper thread is left behind, and the same session trains and serves
# afterwards.  The phases of a run are logged at DEBUG1, which tells this
# test when the prediction has begun.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use StreamML::TestNode;

my $node = streamml_node('tree_holdout_cancel');
$node->start;
$node->safe_psql('postgres', <<'EOSQL');
CREATE EXTENSION pg_streamml;
CREATE TABLE big AS
SELECT i, random() AS a, random() AS b, random() AS c, random() AS d,
	   (random() < 0.5) AS y
  FROM generate_series(1, 1000000) i;
EOSQL

# Threads of a backend, from /proc.
sub threads_of
{
	my ($pid) = @_;
	opendir(my $dh, "/proc/$pid/task") or die "no /proc/$pid/task: $!";
	my $n = grep { /^\d+$/ } readdir($dh);
	closedir($dh);
	return $n;
}

# 100,000 training rows, then 900,000 holdout rows through 200 trees of
# depth 10: more than a second of prediction on two threads, in chunks of
# 8,192 rows of a few hundredths of a second each.
my $trainer = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $trainer->query_safe('SELECT pg_backend_pid()');
$trainer->query_safe('SET log_min_messages = debug1');
my $offset = -s $node->logfile;
$trainer->query_until(qr/started/, <<'EOSQL');
\echo started
SELECT * FROM streamml.train_gbt('long', 'big', 'y', ARRAY['a','b','c','d'],
	'{"trees": 200, "max_depth": 10, "threads": 2, "test_fraction": 0.9, "order_by": "i"}');
EOSQL
$node->wait_for_log(qr/tree run phase model saved and loaded/, $offset);
my $t0 = time;
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$trainer->query_until(qr/cancelled/, "\\echo cancelled\n");
my $elapsed = time - $t0;
my $tasks_after_cancel = threads_of($pid);

like($trainer->{stderr}, qr/canceling statement due to user request/,
	'the run is cancelled');
# query_safe fails on anything left on stderr
$trainer->{stderr} = '';
my $log = slurp_file($node->logfile, $offset);
unlike($log, qr/tree run phase holdout prediction/,
	'the cancel came while the holdout was being predicted');
cmp_ok($elapsed, '<', 2.0,
	sprintf('the run ends within about a chunk of rows of the cancel (%.2f s)', $elapsed));
is($trainer->query_safe("SELECT count(*) FROM streamml.models WHERE name = 'long'"),
	'0', 'the cancelled run left no model behind');

# The same backend trains again, its holdout of 500,000 rows predicted on
# two threads, and serves the model.
is($trainer->query_safe(<<'EOSQL'), '500000|500000', 'the same backend trains a tree model afterwards');
SELECT rows_used, metrics->>'rows' FROM streamml.train_gbt('short', 'big', 'y', ARRAY['a','b','c','d'],
	'{"trees": 5, "threads": 2, "test_fraction": 0.5, "order_by": "i"}');
EOSQL
is($trainer->query_safe(
	"SELECT streamml.predict_proba('short', ARRAY[0.5, 0.5, 0.5, 0.5]) BETWEEN 0 AND 1"),
	't', 'and serves it');
is($tasks_after_cancel, threads_of($pid),
	"no helper thread outlives the cancel ($tasks_after_cancel threads, as after a whole run)");
$trainer->quit;

ok(!$node->log_contains('terminated by signal'), 'no backend crashed');
$node->stop;
done_testing();
