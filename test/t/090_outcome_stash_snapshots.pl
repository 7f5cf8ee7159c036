# Caches and the in-memory join under a transaction snapshot (an attacker's
# findings): a REPEATABLE READ transaction reads the catalog as it was when
# it began, so what a scorer or tracker reads there must not outlive the
# statement, and its loads must not pass for the scorer's current models.
# Session C opens a REPEATABLE READ transaction; session B changes the
# scorer's models (set_challengers, promote), which sets the tracker's floor
# again.  C's load then writes the former models' rows: its trigger on the
# predictions table clears the floor, which B's change updated after C's
# snapshot, so C's load fails with a serialization failure, as any update
# of a row changed after the snapshot does, rather than leaving rows above
# the floor.  C's next transaction scores with the current models.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('stashsnap');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE train AS SELECT i::float8 AS x, 2.0 * i + 1 AS y
	  FROM generate_series(1, 50) i;
	SELECT count(*) FROM streamml.train_linreg('m1', 'train', 'y', ARRAY['x']);
	SELECT count(*) FROM streamml.train_linreg('m2', 'train', 'y', ARRAY['x'], '{"l2": 10}');
	SELECT count(*) FROM streamml.train_linreg('m3', 'train', 'y', ARRAY['x'], '{"l2": 100}');
	CREATE TABLE ticks (id bigint, sym text, t int, x float8, price float8);
	CREATE INDEX ON ticks (sym, t);
	SELECT streamml.create_scorer('ticks_s', 'ticks', 'm1', '{"key": "id", "challengers": ["m2"]}');
	SELECT streamml.track_outcomes('ticks_s', 'ticks',
		'{"actual": "price", "horizon": 2, "partition_by": "sym", "order_by": "t"}');
	INSERT INTO ticks SELECT i, 'A', i, i % 10, 100 + i FROM generate_series(1, 100) i;
});

my $c = $node->background_psql('postgres', on_error_stop => 0);
$c->query_safe('SET client_min_messages = warning');
$c->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$c->query_safe('SELECT count(*) FROM ticks');

$node->safe_psql('postgres', q{
	SET client_min_messages = warning;
	SELECT streamml.set_challengers('ticks_s', ARRAY['m3']);
	SELECT streamml.promote('ticks_s', 'm3');
});
is($node->safe_psql('postgres', 'SELECT stash_floor FROM streamml.outcome_trackers'),
	'100', 'the change of models sets the floor at the last key');

my ($out, $err) = ('', '');
$out = $c->query(q{INSERT INTO ticks VALUES (300, 'B', 1, 1, 7)});
like($c->{stderr}, qr/could not serialize access/,
	'a REPEATABLE READ load with the former models fails rather than pass for the scorer\'s');
$c->{stderr} = '';
$c->query_safe('ROLLBACK');

$c->query_safe(q{INSERT INTO ticks VALUES (310, 'B', 1, 1, 7)});
is($node->safe_psql('postgres',
	q{SELECT string_agg(model || ':' || role, ',' ORDER BY model) FROM ticks_s WHERE id = 310}),
	'm3:champion', 'the next transaction of that session scores with the current models');
is($node->safe_psql('postgres', 'SELECT stash_floor FROM streamml.outcome_trackers'),
	'100', 'and the floor stands');

# a REPEATABLE READ load before any change: its rows are not taken for the
# scorer's (the definition it read may be old), so the floor is cleared
$c->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$c->query_safe(q{INSERT INTO ticks VALUES (320, 'B', 5, 1, 7)});
$c->query_safe('COMMIT');
is($node->safe_psql('postgres', 'SELECT stash_floor IS NULL FROM streamml.outcome_trackers'),
	't', 'a REPEATABLE READ load clears the floor');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.outcomes WHERE key = '{"id": 310}'}),
	'1', 'its outcomes are joined as the table gives them');

$c->quit;
$node->stop;
done_testing();
