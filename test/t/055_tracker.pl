# Outcome trackers on streams: rows and their labels arrive by two
# streams, labels partly before their rows (pending outcomes joined when the
# prediction arrives), partly after, some twice, some for keys that are
# never scored.  kill -9 of the postmaster during each load; afterwards
# streamml.outcomes holds exactly one outcome per labelled, scored key, the
# duplicates are counted and not recorded, the unknown keys stay pending,
# and live_metrics agrees with the tables.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { rows => 4, labels => 2 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('tracker');
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE train AS SELECT (i % 10)::float8 AS x, (i % 10) * 2.0 + 1 AS y
	  FROM generate_series(1, 200) i;
	SELECT count(*) FROM streamml.train_linreg('tm', 'train', 'y', ARRAY['x']);
	CREATE TABLE rows (id int PRIMARY KEY, x float8);
	SELECT streamml.create_scorer('rows_tm', 'rows', 'tm', '{"into": "preds"}');
	CREATE TABLE labels (id int, y float8);
	SELECT streamml.track_outcomes('rows_tm', 'labels', '{"actual": "y"}');
	SELECT streamml.create_stream('rows', 'rows', '$bootstrap', 'rows', 'json',
		'{"workers": 2, "batch_size": 200, "flush_ms": 20}');
	SELECT streamml.create_stream('labels', 'labels', '$bootstrap', 'labels', 'json',
		'{"batch_size": 150, "flush_ms": 20}');
});

sub rows_msgs
{
	my ($from, $to) = @_;
	return [ map { [ "k$_", sprintf('{"id": %d, "x": %d}', $_, $_ % 10) ] } $from .. $to ];
}

sub label_msgs
{
	my @ids = @_;
	return [ map { [ "k$_", sprintf('{"id": %d, "y": %d}', $_, ($_ % 10) * 2 + 1) ] } @ids ];
}

# kill -9 of the postmaster once the query says the load is under way.
sub crash_during
{
	my ($what, $progress) = @_;
	$node->poll_query_until('postgres', $progress)
	  or diag("no progress before the crash during $what");
	streamml_kill9($node, "children exited after kill -9 during $what");
	$node->start;
}

# 1. labels before their rows: 3000 outcomes wait, a crash in the middle
ok(produce($bootstrap, 'labels', label_msgs(1 .. 3000)), 'produced 3000 labels first');
crash_during('the early labels', 'SELECT count(*) > 500 FROM labels');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM labels', '3000'),
	'3000 early labels loaded');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM streamml.pending_outcomes),
		   (SELECT count(*) FROM streamml.outcomes)}), '3000|0',
	'all pending: no prediction yet');

# 2. the rows (scored), a crash in the middle: pending outcomes are joined
ok(produce($bootstrap, 'rows', rows_msgs(1, 6000)), 'produced 6000 rows');
crash_during('the rows', 'SELECT count(*) > 1500 FROM rows');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM rows', '6000'),
	'6000 rows loaded');

# 3. the other labels, 500 duplicates, 10 unknown keys, a crash
ok(produce($bootstrap, 'labels', label_msgs(3001 .. 6000, 1 .. 250, 5001 .. 5250,
	9001 .. 9010)), 'produced 3000 late labels, 500 duplicates, 10 unknown keys');
crash_during('the late labels', 'SELECT count(*) > 4000 FROM labels');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM labels', '6510'),
	'6510 labels loaded');

is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM rows), (SELECT count(*) FROM preds),
		   (SELECT count(DISTINCT id) FROM preds)}), '6000|6000|6000',
	'one prediction per row after three crashes');
is($node->safe_psql('postgres', q{
	SELECT count(*), count(DISTINCT key) FROM streamml.outcomes}), '6000|6000',
	'outcomes = labelled scored keys, none twice');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.outcomes o
	  LEFT JOIN preds p ON o.key = jsonb_build_object('id', p.id)
	 WHERE p.id IS NULL OR o.prediction IS DISTINCT FROM p.prediction
		OR o.version <> p.version OR o.predicted_at <> p.scored_at}), '0',
	'each outcome carries its prediction');
is($node->safe_psql('postgres', q{
	SELECT count(*), min(key->>'id'), max(key->>'id') FROM streamml.pending_outcomes}),
	'10|9001|9010', 'the unknown keys stay pending');
is($node->safe_psql('postgres', q{
	SELECT sum(predictions), sum(labelled), sum(duplicates)
	  FROM streamml.live_metrics WHERE scorer = 'rows_tm' AND group_key IS NULL}),
	'6000|6000|500', 'live_metrics: predictions, labelled, duplicates');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.outcomes WHERE loss > 1e-9}), '0',
	'the exact model has no loss');
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamml.dead_letters'), '0',
	'no dead letters');

$node->stop;
done_testing();
