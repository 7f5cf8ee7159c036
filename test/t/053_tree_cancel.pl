# A long train_gbt can be cancelled: XGBoost trains one boosting round per
# call and the backend checks for interrupts between rounds, so
# statement_timeout stops training within about a round (here a few
# hundredths of a second) of its expiry; the booster and the matrix are
# freed with the statement's memory, and the backend stays healthy: the
# same session trains and serves a tree model afterwards.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('tree_cancel');
$node->start;
$node->safe_psql('postgres', <<'EOSQL');
CREATE EXTENSION pg_streamml;
CREATE TABLE big AS
SELECT i, random() AS a, random() AS b, random() AS c, random() AS d,
	   (random() < 0.5) AS y
  FROM generate_series(1, 200000) i;
EOSQL

# A run long enough to outlast the timeout many times over: 100,000 rounds
# of depth 10 on 200,000 rows.  The time of the cancelled statement is
# measured inside the session (clock_timestamp before and after), so that
# starting psql does not count; the same session then trains and serves.
my $sql = <<'EOSQL';
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SET statement_timeout = '3s';
SELECT * FROM streamml.train_gbt('long', 'big', 'y', ARRAY['a','b','c','d'],
	'{"trees": 100000, "max_depth": 10, "threads": 2}');
RESET statement_timeout;
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 2);
SELECT count(*) FROM streamml.models WHERE name = 'long';
SELECT rows_used FROM streamml.train_gbt('short', 'big', 'y', ARRAY['a','b','c','d'], '{"trees": 3}');
SELECT streamml.predict_proba('short', ARRAY[0.5, 0.5, 0.5, 0.5]) BETWEEN 0 AND 1;
EOSQL
my ($stdout, $stderr);
$node->psql('postgres', $sql, stdout => \$stdout, stderr => \$stderr,
	on_error_stop => 0);
my @lines = split /\n/, $stdout;

like($stderr, qr/canceling statement due to statement timeout/,
	'train_gbt is cancelled by statement_timeout');
# Loading 200,000 rows takes a fraction of the 3 s; the timeout fires while
# boosting, and the cancel is seen at the end of the current round (well
# under a second on an idle machine; the margin is for a loaded one).
cmp_ok($lines[0], '<', 5.0,
	"train_gbt stops within about a round of the timeout ($lines[0] s for a 3 s timeout)");
is($lines[1], '0', 'the cancelled run left no model behind');
is($lines[2], '200000', 'the same backend trains a tree model afterwards');
is($lines[3], 't', 'and serves it');

# The server did not restart: nothing crashed.
ok($node->log_contains('canceling statement due to statement timeout'),
	'the cancel is logged');
ok(!$node->log_contains('terminated by signal'), 'no backend crashed');

$node->stop;
done_testing();
