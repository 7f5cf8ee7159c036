# Whose fault is an error (issue 9, items 8 and 11)?
#  - a message that fails on its own while the rest of its batch loads is
#    a dead letter whatever its SQLSTATE: an int[] of 7 dimensions (54000)
#    and a 9,000-character incompressible string into a btree-indexed
#    column (54000) no longer stop the stream;
#  - a dropped target is nobody's message's fault: the batch stops, no dead
#    letters, stream_stats names the table; alter_stream points the stream
#    at the table made again, and it goes on from its stored offsets.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { fault => 1, gone => 1 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('fault');
$node->start;
my $psql = sub { $node->safe_psql('postgres', $_[0]) };
$psql->(q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE fault (id int PRIMARY KEY, arr int[], s text);
	CREATE INDEX ON fault (s);
	CREATE TABLE gone (id int);
});

# --- item 8 ---
srand(42);
my $long = join('', map { ('a' .. 'z', 'A' .. 'Z', 0 .. 9)[ int(rand(62)) ] } 1 .. 9000);
my @msgs = (
	'{"id": 1, "arr": [[[[[[[1]]]]]]]}',
	qq({"id": 2, "s": "$long"}),
	map { qq({"id": $_, "arr": [$_], "s": "v$_"}) } 3 .. 20);
ok(produce($bootstrap, 'fault', \@msgs), 'produced 2 bad and 18 good messages');
$psql->(qq{SELECT streamml.create_stream('fault', 'fault', '$bootstrap', 'fault', 'json',
	'{"batch_size": 100}')});
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM fault) || ':' || (SELECT count(*) FROM streamml.dead_letters)},
	'18:2'), 'the 18 good messages load, the 2 bad ones are dead letters');
is($psql->(q{SELECT string_agg("offset" || ':' || (error ~ '(dimensions|index row)'), ',' ORDER BY "offset")
	FROM streamml.dead_letters}),
	'0:true,1:true', 'each dead letter has its own error');
is($psql->(q{SELECT next_offset FROM streamml.offsets}), '20', 'the stream moved past them');
ok(produce($bootstrap, 'fault', [ '{"id": 21}' ]), 'produced one more');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM fault', '19'),
	'the stream goes on');

# --- item 11 ---
$psql->(qq{SELECT streamml.create_stream('gone', 'gone', '$bootstrap', 'gone')});
ok(produce($bootstrap, 'gone', [ map { qq({"id": $_}) } 1 .. 5 ]), 'produced 5');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM gone', '5'), 'they load');
$psql->('DROP TABLE gone');
ok(produce($bootstrap, 'gone', [ map { qq({"id": $_}) } 6 .. 10 ]), 'produced 5 with the table gone');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM streamml.stream_stats
	WHERE stream = 'gone' AND partition IS NULL
	  AND last_error = 'target table public.gone of stream "gone" does not exist'}),
	'stream_stats names the missing table');
is($psql->(q{SELECT count(*) FROM streamml.dead_letters WHERE stream = 'gone'}), '0',
	'no dead letters for a missing table');
my ($rc, $out, $err) = $node->psql('postgres',
	q{SELECT streamml.alter_stream('gone', '{"batch_size": 10}')});
like($err, qr/target table does not exist\nDETAIL:  The table with OID \d+ was dropped\.\nHINT:  Point the stream at a table/,
	'alter_stream of options alone says how to re-point the stream');
$psql->(q{
	CREATE TABLE gone_again (id int);
	SELECT streamml.alter_stream('gone', '{"target": "gone_again"}');
});
ok($node->poll_query_until('postgres', 'SELECT count(*), min(id), max(id) FROM gone_again', '5|6|10'),
	'after alter_stream re-points it, the stream loads from its stored offsets');
is($psql->(q{SELECT target::text FROM streamml.streams WHERE name = 'gone'}), 'gone_again',
	'the catalog has the new target');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FROM streamml.stream_stats WHERE stream = 'gone' AND last_error IS NOT NULL}, '0'),
	'the error is gone');

$psql->(q{SELECT streamml.drop_stream(name) FROM streamml.streams});
is($broker->stop, 0, 'broker stopped cleanly');
done_testing();
