# The floor of a horizon tracker's in-memory join (src/quality/predstash.c)
# is read again when the scorer's models change, under a lock that waits
# for the loads in progress: a load that scored rows with the old models
# and has not committed when set_challengers runs must end below the new
# floor, or a key it scored, loaded again and scored by the new models,
# would be joined with the new prediction alone.  A load holds its
# transaction open while set_challengers runs in another session: the
# change waits for it, and the floor is then the load's last key.  Then the
# key is loaded again after a promotion, and its outcome is joined with
# both models' predictions, as the SQL statement does.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('stashrace');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE train AS SELECT i::float8 AS x, 2.0 * i + 1 AS y
	  FROM generate_series(1, 50) i;
	SELECT count(*) FROM streamml.train_linreg('m1', 'train', 'y', ARRAY['x']);
	SELECT count(*) FROM streamml.train_linreg('m2', 'train', 'y', ARRAY['x'], '{"l2": 10}');
	CREATE TABLE ticks (id bigint, sym text, t int, x float8, price float8);
	CREATE INDEX ON ticks (sym, t);
	SELECT streamml.create_scorer('ticks_s', 'ticks', 'm1', '{"key": "id"}');
	SELECT streamml.track_outcomes('ticks_s', 'ticks',
		'{"actual": "price", "horizon": 2, "partition_by": "sym", "order_by": "t"}');
	INSERT INTO ticks SELECT i, 'A', i, i % 10, 100 + i FROM generate_series(1, 100) i;
});
is($node->safe_psql('postgres', 'SELECT stash_floor FROM streamml.outcome_trackers'),
	'-9223372036854775808', 'a tracker of an empty predictions table starts at the smallest key');

my $load = $node->background_psql('postgres');
my $change = $node->background_psql('postgres');
$load->query_safe('BEGIN');
$load->query_safe(
	q{INSERT INTO ticks SELECT i, 'A', i, i % 10, 100 + i FROM generate_series(101, 200) i});
$change->query_until(qr/changing/,
	"\\echo changing\nSELECT streamml.set_challengers('ticks_s', ARRAY['m2']);\n");
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) > 0 FROM pg_stat_activity
		 WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT streamml.set_challengers%'}),
	'set_challengers waits for the load in progress');
$load->query_safe('COMMIT');
$change->query_safe('SELECT 1');
is($node->safe_psql('postgres', 'SELECT stash_floor FROM streamml.outcome_trackers'),
	'200', 'then the floor is above every key the load scored with the old models');

$change->query_safe(q{SET client_min_messages = warning});
$change->query_safe(q{SELECT streamml.promote('ticks_s', 'm2')});
is($node->safe_psql('postgres', 'SELECT stash_floor FROM streamml.outcome_trackers'),
	'200', 'a promotion reads it again');

# key 150 again, scored by m2 alone now, and labelled in the same statement
$node->safe_psql('postgres', q{
	INSERT INTO ticks VALUES (150, 'B', 1, 1, 7), (151, 'B', 3, 1, 8)});
is($node->safe_psql('postgres', q{
	SELECT string_agg(model || ':' || actual, ',' ORDER BY model)
	  FROM streamml.outcomes WHERE key = '{"id": 150}'}),
	'm1:252,m2:8', 'the key loaded again is joined with both models\' predictions');
is($node->safe_psql('postgres', q{
	SELECT sum(duplicates) FROM streamml.quality_buckets WHERE model = 'm1'}),
	'1', 'the old model\'s prediction counted as a duplicate outcome, as the index gives it');

$load->quit;
$change->quit;
$node->stop;
done_testing();
