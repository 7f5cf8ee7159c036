# A batch made only of bad messages, all failing alike, still never stops
# the stream: each one becomes a dead letter and the good messages after
# them load.  So does a row that the target's row-level security rejects.
# But an error of the target's set-up that no message causes (a revoked
# privilege on a default's sequence, a missing function) stops the batch.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { prices => 1, secured => 1, numbered => 1, triggered => 1 },
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

# Errors of the target's set-up that no message causes stop the batch,
# wherever they happen: a privilege the owner lost on the sequence of a
# default, a trigger's function that is gone.  No dead letters; after the
# fix every message loads.
$node->safe_psql('postgres', q{
	CREATE ROLE bob LOGIN;
	CREATE SEQUENCE aseq;
	GRANT USAGE ON SEQUENCE aseq TO bob;
	CREATE TABLE numbered (id bigint DEFAULT nextval('aseq'), v int);
	ALTER TABLE numbered OWNER TO bob;
	CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS
		$$BEGIN NEW.v := NEW.v + 1; RETURN NEW; END$$;
	CREATE TABLE triggered (v int);
	CREATE TRIGGER t BEFORE INSERT ON triggered FOR EACH ROW EXECUTE FUNCTION stamp();
	REVOKE USAGE ON SEQUENCE aseq FROM bob;
});
ok(produce($bootstrap, 'numbered', [ map { qq({"v": $_}) } 1 .. 5 ]), 'produced five messages');
$node->safe_psql('postgres', qq{
	SET ROLE bob;
	SELECT streamml.create_stream('numbered', 'numbered', '$bootstrap', 'numbered');
	RESET ROLE;});
ok($node->poll_query_until('postgres', q{
		SELECT last_error LIKE '%permission denied for sequence aseq%' FROM streamml.stream_stats
		 WHERE stream = 'numbered' AND last_error IS NOT NULL LIMIT 1}),
	'a revoked sequence privilege stops the batch and shows');
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM streamml.dead_letters WHERE stream = 'numbered'}),
	'0', 'and makes no dead letters');
$node->safe_psql('postgres', 'GRANT USAGE ON SEQUENCE aseq TO bob');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM numbered', '5'),
	'after the GRANT every message loads');

$node->safe_psql('postgres', 'ALTER FUNCTION stamp() RENAME TO stamp_gone');
$node->safe_psql('postgres', 'DROP FUNCTION stamp_gone() CASCADE');
$node->safe_psql('postgres', q{
	CREATE FUNCTION check_v() RETURNS trigger LANGUAGE plpgsql AS
		$$BEGIN PERFORM no_such_function(NEW.v); RETURN NEW; END$$;
	CREATE TRIGGER t BEFORE INSERT ON triggered FOR EACH ROW EXECUTE FUNCTION check_v();
});
ok(produce($bootstrap, 'triggered', [ map { qq({"v": $_}) } 1 .. 5 ]), 'produced five more');
$node->safe_psql('postgres', qq{
	SELECT streamml.create_stream('triggered', 'triggered', '$bootstrap', 'triggered')});
ok($node->poll_query_until('postgres', q{
		SELECT last_error LIKE '%no_such_function%' FROM streamml.stream_stats
		 WHERE stream = 'triggered' AND last_error IS NOT NULL LIMIT 1}),
	'a trigger calling a function that does not exist stops the batch');
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM streamml.dead_letters WHERE stream = 'triggered'}),
	'0', 'and makes no dead letters');
$node->safe_psql('postgres', q{
	CREATE FUNCTION no_such_function(int) RETURNS int LANGUAGE sql RETURN $1;});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM triggered', '5'),
	'once it exists every message loads');

$node->stop;
$broker->stop;
done_testing();
