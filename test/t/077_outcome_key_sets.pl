# Duplicates of one-integer keys between concurrent loads: the tracker's
# key sets (streamml.outcome_key_sets, src/quality/outcomekeys.c) are what
# tells the first outcome of a key from a later one, no unique index entry
# does.  Two sessions label overlapping keys, the second while the first
# has not committed: when the sets do not exist yet (both insert them),
# when they exist (both lock them), and when the first rolls back.  Each
# key has exactly one outcome per model, the others are counted as
# duplicates, and live_metrics agrees.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('keysets');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE train AS SELECT i::float8 AS x, 2.0 * i + 1 AS y
	  FROM generate_series(1, 50) i;
	SELECT count(*) FROM streamml.train_linreg('km', 'train', 'y', ARRAY['x']);
	SELECT count(*) FROM streamml.train_linreg('km2', 'train', 'y', ARRAY['x'], '{"l2": 10}');
	CREATE TABLE rows (id bigint PRIMARY KEY, x float8);
	SELECT streamml.create_scorer('rows_km', 'rows', 'km', '{"challengers": ["km2"]}');
	CREATE TABLE labels (id bigint, y float8);
	SELECT streamml.track_outcomes('rows_km', 'labels', '{"actual": "y"}');
	INSERT INTO rows SELECT i, i % 10 FROM generate_series(1, 6000) i;
});

my $first = $node->background_psql('postgres');
my $second = $node->background_psql('postgres');

# The first session labels from .. to and keeps its transaction open; the
# second labels its keys and must wait; then the first ends (COMMIT or
# ROLLBACK) and the second finishes.
sub race
{
	my ($what, $a_from, $a_to, $b_from, $b_to, $end) = @_;
	$first->query_safe("BEGIN");
	$first->query_safe("INSERT INTO labels SELECT i, 1 FROM generate_series($a_from, $a_to) i");
	$second->query_until(qr/racing/,
		"\\echo racing\nINSERT INTO labels SELECT i, 2 FROM generate_series($b_from, $b_to) i;\n");
	ok( $node->poll_query_until('postgres', q{
			SELECT count(*) > 0 FROM pg_stat_activity
			 WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO labels%'}),
		"$what: the second load waits for the first");
	$first->query_safe($end);
	$second->query_safe("SELECT 1");
}

sub state
{
	return $node->safe_psql('postgres', q{
		SELECT count(*), count(DISTINCT (model, key_hash)),
			   (SELECT sum(labelled) FROM streamml.live_metrics
				 WHERE scorer = 'rows_km' AND group_key IS NULL),
			   (SELECT sum(duplicates) FROM streamml.live_metrics
				 WHERE scorer = 'rows_km' AND group_key IS NULL)
		  FROM streamml.outcomes WHERE scorer = 'rows_km'});
}

# no set exists yet: both loads insert sets 0 and 1, the second's
# insertion waits, finds them inserted, and reads them locked
race('new sets', 1, 2000, 1000, 3000, 'COMMIT');
is(state(), '6000|6000|6000|2002',
	'new sets: keys 1 to 3,000 labelled once per model, 1,001 duplicates per model');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE actual = 1), count(*) FILTER (WHERE actual = 2)
	  FROM streamml.outcomes WHERE scorer = 'rows_km'}),
	'4000|2000', 'the first load\'s labels won where both labelled');

# the sets exist: the second load waits for their row locks
race('existing sets', 2500, 4000, 3500, 5000, 'COMMIT');
is(state(), '10000|10000|10000|4006',
	'existing sets: keys 1 to 5,000 labelled once per model, 2,004 more duplicates');

# the first load rolls back: its bits go with it, the second's labels are
# all first outcomes
race('rolled back', 5001, 5500, 5200, 5600, 'ROLLBACK');
is(state(), '10802|10802|10802|4006',
	'rolled back: the second load labels 5,200 to 5,600, no duplicate');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.outcomes
	 WHERE scorer = 'rows_km' AND key_hash BETWEEN 5001 AND 5199}),
	'0', 'nothing of the rolled-back load is left');

# the sets say what the outcomes say: each set's offsets (two bytes each,
# or a bitmap of 1,024 bytes)
my $offsets = q{
	WITH offs AS (
		SELECT s.tracker, s.model, s.version, s.key_set, x.o
		  FROM streamml.outcome_key_sets s, LATERAL (
			SELECT b AS o FROM generate_series(0, 8191) b
			 WHERE length(s.bits) = 1024 AND get_bit(s.bits, b) = 1
			UNION ALL
			SELECT get_byte(s.bits, 2 * i) * 256 + get_byte(s.bits, 2 * i + 1)
			  FROM generate_series(0, length(s.bits) / 2 - 1) i
			 WHERE length(s.bits) < 1024) x)};
is($node->safe_psql('postgres', $offsets . q{
	SELECT count(*) FROM streamml.outcomes o
	  JOIN offs s ON s.tracker = o.tracker AND s.model = o.model
		   AND s.version = o.version AND s.key_set = floor(o.key_hash / 8192.0)
		   AND s.o = o.key_hash - 8192 * floor(o.key_hash / 8192.0)
	 WHERE o.scorer = 'rows_km'}),
	'10802', 'every outcome has its offset in its set');
is($node->safe_psql('postgres', $offsets . q{SELECT count(*) FROM offs}),
	'10802', 'and no other offset is there');

$first->quit;
$second->quit;
$node->stop;
done_testing();
