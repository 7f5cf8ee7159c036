# A batch made only of bad messages, all failing alike, still never stops
# the stream: each one becomes a dead letter and the good messages after
# them load.  So does a row that the target's row-level security rejects.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { prices => 1, secured => 1 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('badbatch');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE prices (id int PRIMARY KEY, price float8 CHECK (price > 0));
	CREATE ROLE alice LOGIN;
	CREATE TABLE secured (id int, region text);
	ALTER TABLE secured OWNER TO alice;
	ALTER TABLE secured ENABLE ROW LEVEL SECURITY;
	ALTER TABLE secured FORCE ROW LEVEL SECURITY;
	CREATE POLICY only_eu ON secured FOR INSERT WITH CHECK (region = 'eu');
	CREATE POLICY see_all ON secured FOR SELECT USING (true);
});

# Two bad messages alone in the topic: the first batch holds only them.
ok(produce($bootstrap, 'prices',
		[ '{"id": 1, "price": -1}', '{"id": 2, "price": -2}' ]),
	'produced two messages that fail the same CHECK');
$node->safe_psql('postgres', qq{
	SELECT streamml.create_stream('prices', 'prices', '$bootstrap', 'prices')});
ok($node->poll_query_until('postgres',
		'SELECT count(*) FROM streamml.dead_letters', '2'),
	'both became dead letters');
ok(produce($bootstrap, 'prices', [ map { qq({"id": $_, "price": $_}) } 3 .. 12 ]),
	'produced ten good messages after them');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM prices', '10'),
	'the good messages after them load');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM streamml.stream_stats
		   WHERE stream = 'prices' AND last_error IS NOT NULL}),
	'0', 'no stream-level error: the stream never stalled');

# Row-level security of the owner: rejected rows are dead letters.
ok(produce($bootstrap, 'secured',
		[ map { sprintf('{"id": %d, "region": "%s"}', $_, $_ % 2 ? 'us' : 'eu') } 1 .. 10 ]),
	'produced rows of two regions');
$node->safe_psql('postgres', qq{
	SET ROLE alice;
	SELECT streamml.create_stream('secured', 'secured', '$bootstrap', 'secured');
	RESET ROLE;});
ok( $node->poll_query_until('postgres', q{
			SELECT (SELECT count(*) FROM secured)
				 + (SELECT count(*) FROM streamml.dead_letters WHERE stream = 'secured')},
		'10'),
	'every message is in the table or a dead letter');
is($node->safe_psql('postgres',
		q{SELECT string_agg(DISTINCT region, ',') || ' ' || count(*) FROM secured}),
	'eu 5', 'the rows the policy accepts are loaded');
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM streamml.dead_letters
		 WHERE stream = 'secured' AND error LIKE '%row-level security policy%'}),
	'5', 'the rows it rejects are dead letters that say why');

$node->stop;
$broker->stop;
done_testing();
