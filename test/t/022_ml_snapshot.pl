# One snapshot per training run: rows that another session commits while a
# training run is in progress do not mix into its later passes.
#
# Deterministic, with an advisory lock: the source of the training calls
# gate(), which waits for lock 42.  A second session holds that lock, so
# the run blocks inside its first pass; a third session then commits 1000
# rows whose labels say the opposite of the first 1000; the lock is
# released and the run goes on.  If any later pass saw the new rows its
# coefficients would move far; they must equal those of a fit on exactly
# the first 1000 rows, and rows_used must be the count at statement start.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('ml_snapshot');
$node->start;
$node->safe_psql('postgres', <<'EOSQL');
CREATE EXTENSION pg_streamml;
CREATE TABLE t (id int PRIMARY KEY, x float8, y boolean);
SELECT setseed(0.7);
INSERT INTO t SELECT i, x, random() < 1 / (1 + exp(-2 * x))
  FROM (SELECT i, random() * 4 - 2 AS x FROM generate_series(1, 1000) i) s;
-- waits while another session holds advisory lock 42
CREATE FUNCTION gate() RETURNS boolean LANGUAGE sql VOLATILE
	AS 'SELECT pg_advisory_lock_shared(42) IS NOT NULL AND pg_advisory_unlock_shared(42)';
EOSQL

my $holder = $node->background_psql('postgres');
$holder->query_safe('SELECT pg_advisory_lock(42)');

# The training run starts, takes its snapshot and blocks in its first pass.
my $trainer = $node->background_psql('postgres');
$trainer->query_until(qr/started/, <<'EOSQL');
\echo started
SELECT rows_used, converged FROM streamml.train_logreg('snap', 'SELECT * FROM t WHERE gate()',
	'y', ARRAY['x'], '{"l2": 0.001}');
\echo finished
EOSQL
ok($node->poll_query_until('postgres', <<'EOSQL'),
SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
EOSQL
	'the training run waits inside its first pass');

# Another session commits rows with the opposite labels meanwhile.
$node->safe_psql('postgres', <<'EOSQL');
INSERT INTO t SELECT id + 1000, x, NOT y FROM t;
EOSQL
is($node->safe_psql('postgres', 'SELECT count(*) FROM t'), '2000',
	'the new rows are committed while the run waits');
$holder->query_safe('SELECT pg_advisory_unlock(42)');

my $out = $trainer->query_until(qr/finished/, '');
like($out, qr/^1000\|t$/m, 'rows_used is the count at the start of the statement');
$trainer->quit;
$holder->quit;

# The same fit on exactly the first 1000 rows.
$node->safe_psql('postgres', <<'EOSQL');
SELECT * FROM streamml.train_logreg('first', 'SELECT * FROM t WHERE id <= 1000',
	'y', ARRAY['x'], '{"l2": 0.001}');
SELECT * FROM streamml.train_logreg('all', 't', 'y', ARRAY['x'], '{"l2": 0.001}');
EOSQL
is($node->safe_psql('postgres', <<'EOSQL'),
SELECT count(*) FROM streamml.coefficients a JOIN streamml.coefficients b USING (feature)
 WHERE a.model = 'snap' AND b.model = 'first'
   AND abs(a.coefficient - b.coefficient) <= 1e-12 * (1 + abs(b.coefficient))
EOSQL
	'2', 'every pass of the run saw only the rows of its snapshot');
# and the new rows would have mattered: a fit on all of them differs
is($node->safe_psql('postgres', <<'EOSQL'),
SELECT bool_and(abs(a.coefficient - b.coefficient) > 0.1)
  FROM streamml.coefficients a JOIN streamml.coefficients b USING (feature)
 WHERE a.model = 'snap' AND b.model = 'all' AND feature = 'x'
EOSQL
	't', 'a fit that saw the new rows would differ');

$node->stop;
done_testing();
