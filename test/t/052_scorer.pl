# Scorers on a stream: every loaded row is scored in the transaction that
# loads it.  A deploy in the middle of a load switches versions at a batch
# boundary with no row unscored; kill -9 of the postmaster three times
# during a 2-worker load leaves exactly one prediction per row; a scorer
# writes as its owner, not as the stream's, a scorer its owner can no
# longer run stops the stream without dead letters until it can again, and
# a hostile role can neither create a scorer on a table it may only read
# nor touch another role's scorer.
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
	topics => { trades => 2, crash => 4, sec => 1 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('scorer');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE train AS
	SELECT i AS id, (ARRAY['A', 'B', 'C'])[i % 3 + 1] AS symbol,
		   sin(i)::float8 AS x1, cos(i * 1.7)::float8 AS x2,
		   (sin(i) + 0.5 * cos(i * 1.7) + ((i * 7919) % 1000) / 1000.0 - 0.5) > 0 AS y
	  FROM generate_series(1, 3000) i;
	SELECT count(*) FROM streamml.train_logreg('tm', 'train', 'y', ARRAY['x1', 'x2'],
		'{"group_by": "symbol"}');
	SELECT count(*) FROM streamml.train_logreg('tm', 'train', 'y', ARRAY['x1', 'x2'],
		'{"group_by": "symbol", "l2": 1, "deploy": "never"}');
});
is($node->safe_psql('postgres', q{SELECT deployed_version FROM streamml.models WHERE name = 'tm'}),
	'1', 'version 1 deployed, version 2 trained');

# JSON trades, ids from $from to $to.
sub trades
{
	my ($from, $to) = @_;
	return [ map {
		my $s = (qw(A B C))[ $_ % 3 ];
		[ "k$_", sprintf('{"id": %d, "symbol": "%s", "x1": %.6f, "x2": %.6f}',
			$_, $s, sin($_ * 0.37), cos($_ * 0.91)) ] } $from .. $to ];
}

# --- a deploy in the middle of a stream load ---
$node->safe_psql('postgres', qq{
	CREATE TABLE trades (id int PRIMARY KEY, symbol text, x1 float8, x2 float8);
	SELECT streamml.create_scorer('trades_tm', 'trades', 'tm', '{"into": "preds"}');
	SELECT streamml.create_stream('trades', 'trades', '$bootstrap', 'trades', 'json',
		'{"batch_size": 100, "flush_ms": 10}');
});
ok(produce($bootstrap, 'trades', trades(1, 6000)), 'produced 6000 trades');
ok($node->poll_query_until('postgres', 'SELECT count(*) >= 1500 FROM trades'),
	'the load is under way');
$node->safe_psql('postgres', q{SELECT streamml.deploy('tm', 2)});
ok(produce($bootstrap, 'trades', trades(6001, 8000)), 'produced 2000 more');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM trades', '8000'),
	'all 8000 trades loaded');
is($node->safe_psql('postgres', q{
	SELECT count(*), count(DISTINCT id) FROM preds}), '8000|8000',
	'one prediction per trade');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM trades t FULL JOIN preds p USING (id)
	 WHERE t.id IS NULL OR p.id IS NULL OR p.prediction IS NULL}), '0',
	'no trade unscored, no prediction without its trade');
my ($v1, $v2) = split /\|/, $node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE version = 1), count(*) FILTER (WHERE version = 2) FROM preds});
ok($v1 >= 1500 && $v2 >= 2000, "both versions served ($v1 by 1, $v2 by 2)");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT xmin::text FROM preds GROUP BY 1
						   HAVING count(DISTINCT version) > 1) b}), '0',
	'each batch (transaction) scored with one version');
is($node->safe_psql('postgres', q{
	SELECT max(scored_at) FILTER (WHERE version = 1) < min(scored_at) FILTER (WHERE version = 2)
	  FROM preds}), 't', 'the versions switch once, at a batch boundary');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE p.probability = streamml.predict_proba('tm', t.symbol, ARRAY[t.x1, t.x2]))
	  FROM trades t JOIN preds p USING (id) WHERE p.version = 2}), $v2,
	'version 2 predictions equal streamml.predict_proba');
is($node->safe_psql('postgres', q{
	SELECT rows_processed, rows_unscorable, last_error IS NULL FROM streamml.scorers}),
	'8000|0|t', 'streamml.scorers counts the committed rows');

# --- kill -9 of the postmaster three times during a 2-worker load ---
$node->safe_psql('postgres', qq{
	SELECT streamml.drop_stream('trades');
	CREATE TABLE ctrades (id int PRIMARY KEY, symbol text, x1 float8, x2 float8);
	SELECT streamml.create_scorer('ctrades_tm', 'ctrades', 'tm', '{"into": "cpreds"}');
	SELECT streamml.create_stream('crash', 'ctrades', '$bootstrap', 'crash', 'json',
		'{"workers": 2, "batch_size": 200, "flush_ms": 20}');
});
my $per_round = 4000;
my $total = 0;
for my $round (1 .. 3)
{
	ok(produce($bootstrap, 'crash', trades($total + 1, $total + $per_round)),
		"produced ids up to " . ($total + $per_round));
	$total += $per_round;
	$node->poll_query_until('postgres',
		"SELECT count(*) > " . ($total - $per_round + 500) . " FROM ctrades")
	  or diag('no progress before the crash');
	streamml_kill9($node, "children exited after kill -9 number $round");
	$node->start;
}
ok(produce($bootstrap, 'crash', trades($total + 1, $total + $per_round)), 'produced the last chunk');
$total += $per_round;
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM ctrades', $total),
	"all $total trades loaded after three crashes");
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM ctrades), (SELECT count(*) FROM cpreds),
		   (SELECT count(DISTINCT id) FROM cpreds)}), "$total|$total|$total",
	'count(trades) = count(predictions), each once');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM ctrades t FULL JOIN cpreds p USING (id)
	 WHERE t.id IS NULL OR p.id IS NULL}), '0', "the predictions' keys are the trades' keys");
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamml.dead_letters'), '0',
	'no dead letters');
$node->safe_psql('postgres', q{SELECT streamml.drop_stream('crash')});

# --- privileges ---
$node->safe_psql('postgres', q{
	CREATE ROLE loader LOGIN;
	CREATE ROLE analyst LOGIN;
	CREATE ROLE mallory LOGIN;
	GRANT CREATE ON SCHEMA public TO loader, analyst, mallory;
	SELECT streamml.grant_model('tm', 'analyst');
});
my $as = sub {
	my ($user, $sql) = @_;
	return $node->safe_psql('postgres', "SET ROLE $user; $sql");
};
my $as_err = sub {
	my ($user, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "SET ROLE $user; $sql");
	return $err;
};
$as->('loader', qq{
	CREATE TABLE strades (id int PRIMARY KEY, symbol text, x1 float8, x2 float8);
	GRANT SELECT, TRIGGER ON strades TO analyst;
	GRANT SELECT ON strades TO mallory;
	SELECT streamml.create_stream('sec', 'strades', '$bootstrap', 'sec', 'json',
		'{"batch_size": 50, "flush_ms": 10}');
});
$as->('analyst', q{
	SELECT streamml.create_scorer('spreds', 'strades', 'tm')});

# The stream's owner cannot write the predictions; the scorer's owner can.
ok(produce($bootstrap, 'sec', trades(1, 300)), 'produced 300 trades');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM strades', '300'),
	'loaded by the stream of loader');
is($node->safe_psql('postgres', q{
	SELECT count(*), count(prediction), pg_get_userbyid(min(c.relowner)) FROM spreds, pg_class c
	 WHERE c.oid = 'spreds'::regclass}), '300|300|analyst',
	'scored as analyst, into her table, which loader may not write');
like($as_err->('loader', 'INSERT INTO spreds (id, model, version, scored_at) VALUES (0, $$x$$, 1, now())'),
	qr/permission denied for table spreds/, 'loader cannot write the predictions himself');

# A scorer its owner can no longer run stops the stream: no dead letter,
# nothing lost, and the rows load and get scored once it can run again.
$node->safe_psql('postgres', q{SELECT streamml.revoke_model('tm', 'analyst')});
ok(produce($bootstrap, 'sec', trades(301, 400)), 'produced 100 more');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM streamml.stream_stats
	 WHERE stream = 'sec' AND last_error LIKE '%model "tm" does not exist%'}),
	'the stream shows the scorer error');
ok($node->poll_query_until('postgres', q{
	SELECT last_error LIKE '%model "tm" does not exist%' FROM streamml.scorers
	 WHERE name = 'spreds'}), 'so does streamml.scorers');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM strades), (SELECT count(*) FROM streamml.dead_letters)}),
	'300|0', 'nothing loaded meanwhile, no dead letter');
$node->safe_psql('postgres', q{SELECT streamml.grant_model('tm', 'analyst')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM spreds', '400'),
	'after the grant, the waiting rows are loaded and scored');
is($node->safe_psql('postgres', 'SELECT count(*) FROM strades'), '400', 'each row once');

# mallory may read strades but not put a trigger on it
like($as_err->('mallory', q{SELECT streamml.create_scorer('m1', 'strades', 'tm')}),
	qr/permission denied for table strades/, 'no scorer on a table mallory can only read');
like($as_err->('mallory', q{
	INSERT INTO streamml.scorers_catalog (name, owner, source, model, predictions, key_columns)
	VALUES ('m2', 'analyst', 'strades', 'tm', 'spreds', '{id}')}),
	qr/permission denied for table scorers_catalog/, 'mallory cannot write the catalog');
like($as_err->('mallory', q{SELECT streamml.drop_scorer('spreds')}),
	qr/scorer "spreds" does not exist/, "mallory cannot drop analyst's scorer");
is($as->('mallory', 'SELECT count(*) FROM streamml.scorers'), '0',
	"mallory does not see analyst's scorer");
$as->('mallory', 'CREATE TABLE mine (id int PRIMARY KEY, symbol text, x1 float8, x2 float8)');
like($as_err->('mallory', q{
	CREATE TRIGGER steal AFTER INSERT ON mine REFERENCING NEW TABLE AS n
		FOR EACH STATEMENT EXECUTE FUNCTION streamml.scorer_trigger('3')}),
	qr/permission denied for function streamml.scorer_trigger/,
	"mallory cannot attach a scorer's trigger to her table");
like($as_err->('mallory', q{SELECT streamml.create_scorer('m3', 'mine', 'tm')}),
	qr/model "tm" does not exist/, 'nor use a model she was not granted');

$node->stop;
$broker->stop;
done_testing();
