# The owner's plpgsql triggers fire during a stream load, in every path of
# the loader: BEFORE ROW triggers that change, skip or reject rows (row by
# row, bisected down to the bad messages), AFTER ROW triggers, and a
# statement trigger with a transition table.  The rows and the triggers'
# effects are exactly those of the good messages, and no range leaves a
# resource to its subtransaction's resource owner: the server log has no
# "leak" warning (a missed ExecResetTupleTable once left the AFTER ROW
# triggers' slot pinning the table's descriptor in every range).
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { trg => 2 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('trigres');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE trg (id int PRIMARY KEY, v float8, tag text);
	CREATE TABLE trg_log (id int, tag text);
	CREATE TABLE trg_count (n bigint);
	CREATE FUNCTION trg_before() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.v < 0 THEN RAISE EXCEPTION 'negative v in %', NEW.id; END IF;
		IF NEW.id % 10 = 0 THEN RETURN NULL; END IF;
		NEW.tag := 'b' || NEW.id;
		RETURN NEW;
	END $$;
	CREATE TRIGGER trg_before BEFORE INSERT ON trg
		FOR EACH ROW EXECUTE FUNCTION trg_before();
	CREATE FUNCTION trg_after() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO trg_log VALUES (NEW.id, NEW.tag);
		RETURN NULL;
	END $$;
	CREATE TRIGGER trg_after AFTER INSERT ON trg
		FOR EACH ROW EXECUTE FUNCTION trg_after();
	CREATE FUNCTION trg_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO trg_count SELECT count(*) FROM new_rows;
		RETURN NULL;
	END $$;
	CREATE TRIGGER trg_stmt AFTER INSERT ON trg
		REFERENCING NEW TABLE AS new_rows
		FOR EACH STATEMENT EXECUTE FUNCTION trg_stmt();
});

# 100 messages; ids 25 and 63 are rejected by the BEFORE trigger, the
# multiples of 10 are skipped by it.
ok(produce($bootstrap, 'trg',
		[ map { [ "k$_", sprintf('{"id": %d, "v": %s}', $_,
					($_ == 25 || $_ == 63) ? '-1' : "$_.5") ] } 1 .. 100 ]),
	'produced the messages');
$node->safe_psql('postgres', qq{
	SELECT streamml.create_stream('trg', 'trg', '$bootstrap', 'trg', 'json',
		'{"batch_size": 32}')});
ok($node->poll_query_until('postgres',
		'SELECT sum(next_offset) FROM streamml.offsets', '100'),
	'every message was consumed');

is($node->safe_psql('postgres', q{
	SELECT count(*), sum(id), count(*) FILTER (WHERE tag = 'b' || id) FROM trg}),
	'88|4412|88', 'the BEFORE trigger changed and skipped rows, the bad ones are out');
is($node->safe_psql('postgres', q{
	SELECT count(*), count(*) FILTER (WHERE tag = 'b' || id) FROM trg_log}),
	'88|88', 'the AFTER ROW trigger saw each loaded row once, as changed');
is($node->safe_psql('postgres', 'SELECT sum(n) FROM trg_count'), '88',
	'the transition table held exactly the loaded rows');
is($node->safe_psql('postgres', q{
	SELECT count(*), string_agg(error, ',' ORDER BY error) FROM streamml.dead_letters}),
	'2|negative v in 25,negative v in 63', 'the rejected rows are dead letters');

$node->safe_psql('postgres', q{SELECT streamml.drop_stream('trg')});

# A main target loaded through SPI (row-level security forced on its
# owner) routing to a table on the fast path that has AFTER ROW triggers:
# a foreign key (an RI trigger) and a plpgsql one.  The routed table's
# events fire in the main target's executor state, which must close them.
$node->safe_psql('postgres', q{
	CREATE ROLE bob LOGIN;
	CREATE TABLE kinds (kind text PRIMARY KEY);
	INSERT INTO kinds VALUES ('a'), ('b');
	CREATE TABLE rls_main (id int, kind text);
	ALTER TABLE rls_main ENABLE ROW LEVEL SECURITY;
	ALTER TABLE rls_main FORCE ROW LEVEL SECURITY;
	CREATE POLICY all_rows ON rls_main USING (true) WITH CHECK (true);
	CREATE TABLE routed (id int, kind text REFERENCES kinds, tag text);
	CREATE TRIGGER trg_after AFTER INSERT ON routed
		FOR EACH ROW EXECUTE FUNCTION trg_after();
	ALTER TABLE rls_main OWNER TO bob;
	ALTER TABLE routed OWNER TO bob;
	GRANT SELECT, REFERENCES ON kinds TO bob;
	GRANT INSERT ON trg_log TO bob;
});
ok(produce($bootstrap, 'trg',
		[ map { [ "r$_", sprintf('{"id": %d, "kind": "%s"}', 1000 + $_,
					$_ % 3 == 0 ? 'x' : $_ % 2 ? 'a' : 'b') ] } 1 .. 60 ]),
	'produced messages for the routed table');
my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM trg_log');
$node->safe_psql('postgres', qq{
	SET ROLE bob;
	SELECT streamml.create_stream('mixed', 'rls_main', '$bootstrap', 'trg', 'json',
		'{"batch_size": 16, "route_field": "kind", "routes": {"a": "routed", "b": "routed"}}');
	RESET ROLE;});
ok($node->poll_query_until('postgres', q{
	SELECT sum(next_offset) FROM streamml.offsets o JOIN streamml.streams s ON s.id = o.stream_id
	WHERE s.name = 'mixed'}, '160'),
	'the mixed stream consumed the topic');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM routed WHERE id > 1000),
	       (SELECT count(*) FROM rls_main WHERE id > 1000)}),
	'40|20', 'routed rows in the routed table, the others in the main target');
is($node->safe_psql('postgres', 'SELECT count(*) FROM trg_log') - $before, 40,
	'the routed table\'s AFTER ROW trigger fired once a row');
$node->stop;

# Ranges that committed and ranges that were rolled back alike.
is(join('', grep { /leak/i } split /^/, slurp_file($node->logfile)), '',
	'no resource leak warning in the server log');

is($broker->stop, 0, 'broker stopped cleanly');
done_testing();
