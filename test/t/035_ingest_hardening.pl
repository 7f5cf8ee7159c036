# A stream keeps data out of dead_letters when no message is at fault:
# a revoked INSERT privilege pauses the stream with the error in
# stream_stats, and after GRANT every message loads, once.  Triggers with
# transition tables see the loaded rows.  The owner's triggers cannot run
# code as the superuser: a deferred constraint trigger fires as the owner,
# and a search_path the owner sets does not reach the worker's statements.
# A table changed under a running stream is planned again.  CSV messages
# of several rows load intact.  A worker waiting for a long flush_ms
# stops at once.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use IO::Socket::INET;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { hard => 2, hard_csv => 1, slow => 1, dl => 1, clock => 1 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('hardening');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE ROLE alice LOGIN;
	GRANT CREATE ON SCHEMA public TO alice;
	SET ROLE alice;
	CREATE TABLE hard (id int PRIMARY KEY, v float8);
	CREATE TABLE hard_audit (n bigint);
	CREATE FUNCTION hard_count() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO hard_audit SELECT count(*) FROM new_rows;
		RETURN NULL;
	END $$;
	CREATE TRIGGER hard_count AFTER INSERT ON hard
		REFERENCING NEW TABLE AS new_rows
		FOR EACH STATEMENT EXECUTE FUNCTION hard_count();
});

sub msgs
{
	my ($from, $to) = @_;
	return [ map { [ "k$_", sprintf('{"id": %d, "v": %d.5}', $_, $_) ] } $from .. $to ];
}

ok(produce($bootstrap, 'hard', msgs(1, 50)), 'produced the first messages');
$node->safe_psql('postgres', qq{
	SET ROLE alice;
	SELECT streamml.create_stream('hard', 'hard', '$bootstrap', 'hard', 'json',
		'{"batch_size": 20}')
});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM hard', '50'),
	'the first messages load');
is($node->safe_psql('postgres', 'SELECT sum(n) FROM hard_audit'), '50',
	'a trigger with a transition table sees every loaded row');

# The owner loses INSERT: nothing is dead-lettered, the error shows.
$node->safe_psql('postgres', 'SET ROLE alice; REVOKE INSERT ON hard FROM alice');
ok(produce($bootstrap, 'hard', msgs(51, 100)), 'produced while INSERT is revoked');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM streamml.stream_stats
	WHERE last_error LIKE '%permission denied for table hard%'}),
	'stream_stats shows the permission error');
is($node->safe_psql('postgres', 'SELECT count(*) FROM hard'), '50',
	'nothing loads without the privilege');
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamml.dead_letters'), '0',
	'a revoked privilege makes no dead letters');

# GRANT again: the stream resumes and nothing is lost.
$node->safe_psql('postgres', 'SET ROLE alice; GRANT INSERT ON hard TO alice');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM hard', '100'),
	'the stream resumes after GRANT');
is($node->safe_psql('postgres', q{
	SELECT count(DISTINCT id), sum(id), (SELECT count(*) FROM streamml.dead_letters)
	FROM hard}),
	'100|5050|0', 'every message loaded once, none dead-lettered');
is($node->safe_psql('postgres', 'SELECT sum(next_offset) FROM streamml.offsets'),
	'100', 'stored offsets cover every message');

# The owner's code stays the owner's.
$node->safe_psql('postgres', q{
	SET ROLE alice;
	CREATE TABLE who (u text);
	CREATE TABLE pwned (u text);
	CREATE FUNCTION note_user() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.who VALUES (current_user);
		RETURN NULL;
	END $$;
	CREATE CONSTRAINT TRIGGER note_user AFTER INSERT ON hard
		DEFERRABLE INITIALLY DEFERRED
		FOR EACH ROW EXECUTE FUNCTION note_user();
	CREATE FUNCTION evil_eq(int4, int4) RETURNS bool LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.pwned VALUES (current_user);
		RETURN $1 OPERATOR(pg_catalog.=) $2;
	END $$;
	CREATE OPERATOR public.= (LEFTARG = int4, RIGHTARG = int4,
		FUNCTION = evil_eq);
	CREATE FUNCTION set_path() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM pg_catalog.set_config('search_path', 'public, pg_catalog', false);
		RETURN NULL;
	END $$;
	CREATE TRIGGER set_path AFTER INSERT ON hard
		FOR EACH ROW EXECUTE FUNCTION set_path();
});
ok(produce($bootstrap, 'hard', msgs(101, 140)), 'produced for the owner\'s triggers');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM hard', '140'),
	'the rows load with the triggers');
ok(produce($bootstrap, 'hard', msgs(141, 160)), 'produced another batch');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM hard', '160'),
	'the next batch loads too');
is($node->safe_psql('postgres', q{SELECT count(*), string_agg(DISTINCT u, ',') FROM who}),
	'60|alice', 'a deferred constraint trigger fires as the owner');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pwned}), '0',
	'the worker never resolves an operator through the owner\'s search_path');

# A column added while the stream runs is loaded by the next batch.
$node->safe_psql('postgres', q{
	SET ROLE alice;
	DROP TRIGGER set_path ON hard;
	ALTER TABLE hard ADD COLUMN w int, DROP COLUMN v;
});
ok(produce($bootstrap, 'hard',
		[ map { [ "k$_", sprintf('{"id": %d, "v": 1.5, "w": %d}', $_, $_) ] } 161 .. 170 ]),
	'produced messages with the new column');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM hard', '170'),
	'the stream loads after the table changed');
is($node->safe_psql('postgres', q{SELECT count(w), sum(w) FROM hard}), '10|1655',
	'the new column is filled: the mapping was planned again');

# CSV messages of several rows each, decoded in per-message memory.
$node->safe_psql('postgres', qq{
	CREATE TABLE hard_csv (id int, name text, n float8 DEFAULT 7);
	SELECT streamml.create_stream('hard_csv', 'hard_csv', '$bootstrap', 'hard_csv', 'csv',
		'{"header": true, "batch_size": 7}');
});
# Messages of several lines: produced from SQL, as the dev broker's
# produce() takes one line per message.
$node->safe_psql('postgres', qq{
	SELECT streamml.produce('$bootstrap', 'hard_csv',
		pg_catalog.format(E'name,id\\na%s,%s\\n"x,%s",%s\\r\\nc%s,%s\\n',
			i, 3 * i, i, 3 * i + 1, i, 3 * i + 2), 'c' || i)
	FROM generate_series(0, 99) i
});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM hard_csv', '300'),
	'every csv row loads');
is($node->safe_psql('postgres', q{
	SELECT count(DISTINCT id), sum(id), sum(n), count(*) FILTER (WHERE name LIKE 'x,%'),
		(SELECT name FROM hard_csv WHERE id = 299)
	FROM hard_csv}),
	'300|44850|2100|100|c99', 'csv rows keep their values after the message memory is reset');
$node->safe_psql('postgres', q{SELECT streamml.drop_stream('hard_csv')});

$node->safe_psql('postgres', q{SELECT streamml.drop_stream('hard')});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_streamml consumer'}, '0'),
	'the streams are dropped');

# A worker in the middle of a batch with a long flush_ms stops at once.
$node->safe_psql('postgres', qq{
	CREATE TABLE slow (id int, v float8);
	SELECT streamml.create_stream('slow', 'slow', '$bootstrap', 'slow', 'json',
		'{"flush_ms": 60000, "batch_size": 100000}');
});
ok(produce($bootstrap, 'slow', msgs(1, 5)), 'produced to the slow stream');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_streamml consumer'}, '1'),
	'the slow stream runs');
sleep 3;    # it reads the messages and waits for more until flush_ms
my $t0 = time;
$node->safe_psql('postgres', q{SELECT streamml.stop_stream('slow')});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_streamml consumer'}, '0'),
	'stop_stream stops the slow stream');
cmp_ok(time - $t0, '<', 10, 'a worker waiting for flush_ms stops within seconds');
is($node->safe_psql('postgres', 'SELECT count(*) FROM slow'), '0',
	'the unfinished batch was not loaded');
$node->safe_psql('postgres', q{
	SELECT streamml.alter_stream('slow', '{"flush_ms": 50}');
	SELECT streamml.start_stream('slow');
});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM slow', '5'),
	'the messages load after the restart');
$node->safe_psql('postgres', q{SELECT streamml.drop_stream('slow')});

# Dead letters belong to the owner, not to the stream's name.
ok(produce($bootstrap, 'dl', [ [ 'a', '{"id": 1}' ], [ 'b', '{"id": "bad"}' ] ]),
	'produced a good and a bad message');
$node->safe_psql('postgres', qq{
	CREATE ROLE bob LOGIN;
	GRANT CREATE ON SCHEMA public TO bob;
	SET ROLE alice;
	CREATE TABLE dl_a (id int);
	SELECT streamml.create_stream('dl', 'dl_a', '$bootstrap', 'dl', 'json');
});
ok($node->poll_query_until('postgres',
		'SELECT (SELECT count(*) FROM dl_a) + (SELECT count(*) FROM streamml.dead_letters)', '2'),
	'alice\'s stream loads a row and makes a dead letter');
$node->safe_psql('postgres', q{SET ROLE alice; SELECT streamml.drop_stream('dl')});
$node->safe_psql('postgres', qq{
	SET ROLE bob;
	CREATE TABLE dl_b (id int);
	SELECT streamml.create_stream('dl', 'dl_b', '$bootstrap', 'slow', 'json');
});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM dl_b', '5'),
	'bob\'s stream of the same name loads');
is($node->safe_psql('postgres', q{SET ROLE bob; SELECT count(*) FROM streamml.dead_letters}),
	'0', 'a new stream of the same name does not see the old dead letters');
is($node->safe_psql('postgres', q{SET ROLE alice; SELECT count(*), string_agg(stream, ',') FROM streamml.dead_letters}),
	'1|dl', 'the owner still sees them, with the stream name');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.dead_letters WHERE owner = 'alice'::regrole}),
	'1', 'dead letters record the owner');
$node->safe_psql('postgres', q{SET ROLE bob; SELECT streamml.drop_stream('dl')});

# Calls that wait on Kafka serve a cancel: with a broker that accepts
# connections and never answers (a listening socket nobody reads), produce
# (whose own timeout is 20 s) and a reset_stream that checks its offsets
# against Kafka stop within about a second of statement_timeout.
my $mute = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
	LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
  or die "cannot listen: $!";
my $mute_broker = '127.0.0.1:' . $mute->sockport;
$node->safe_psql('postgres', qq{
	SELECT streamml.create_stream('nobroker', 'hard', '$mute_broker', 'none');
	SELECT streamml.stop_stream('nobroker');
});
for my $call (
	[ 'produce', qq{SELECT streamml.produce('$mute_broker', 'none', 'v')} ],
	[ 'reset_stream with offsets', q{SELECT streamml.reset_stream('nobroker', '{"0": 5}')} ])
{
	my ($name, $sql) = @$call;
	my $t0 = time;
	my ($ret, $out, $err) = $node->psql('postgres',
		"SET streamml.produce_timeout = 20000; SET statement_timeout = '500ms'; $sql");
	my $took = time - $t0;
	like($err, qr/canceling statement due to statement timeout/,
		"$name is cancelled by statement_timeout");
	cmp_ok($took, '<', 4, "$name returns within a second or so of the timeout (" . sprintf("%.1f", $took) . " s with psql)");
}
$node->safe_psql('postgres', q{SELECT streamml.drop_stream('nobroker')});

# now() in a worker's transactions is the time of that transaction, as in a
# session's, not the time the worker started: a DEFAULT now() or a CHECK
# against now() on the target sees the load's time.
$node->safe_psql('postgres', qq{
	CREATE TABLE clock (id int, at timestamptz DEFAULT now());
	SELECT streamml.create_stream('clock', 'clock', '$bootstrap', 'clock', 'json',
		'{"flush_ms": 0}');
});
ok(produce($bootstrap, 'clock', [ [ 'a', '{"id": 1}' ] ]), 'produced a first message');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM clock', '1'), 'it loads');
sleep 2;
ok(produce($bootstrap, 'clock', [ [ 'b', '{"id": 2}' ] ]), 'produced a second message, 2 s later');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM clock', '2'), 'it loads');
is($node->safe_psql('postgres', q{
	SELECT max(at) - min(at) >= interval '1.5 seconds' AND max(at) <= now() FROM clock}),
	't', 'each batch sees its own now()');
$node->safe_psql('postgres', q{SELECT streamml.drop_stream('clock'); DROP TABLE clock});

$node->stop;

# The loads fired the owner's triggers in the ranges' subtransactions; none
# left a resource (tuple descriptor, buffer, relation, snapshot, plan) for a
# resource owner to warn about.
is(join('', grep { /leak/i } split /^/, slurp_file($node->logfile)), '',
	'no resource leak warning in the server log');

is($broker->stop, 0, 'broker stopped cleanly');
done_testing();
