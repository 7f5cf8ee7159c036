# A stream loads a JSON topic into a table: every message produced ends up
# either in the table or in streamml.dead_letters, exactly once, whatever is
# wrong with it (bad JSON, bad UTF-8, a value the type rejects, NOT NULL,
# CHECK, unique, a failing trigger); metadata columns; a restart resumes.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { trades => 3 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('ingest');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE trades (
		id int PRIMARY KEY,
		symbol text NOT NULL,
		ts timestamptz,
		price float8 CHECK (price > 0),
		qty float8,
		label int,
		features float8[],
		extra jsonb,
		note text DEFAULT 'none',
		src_topic text, src_partition int, src_offset bigint, src_key text
	);
	CREATE FUNCTION no_evil() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.symbol = 'EVIL' THEN RAISE EXCEPTION 'evil symbol'; END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER no_evil AFTER INSERT ON trades
		FOR EACH ROW EXECUTE FUNCTION no_evil();
});

my @good;
for my $i (1 .. 300)
{
	push @good, sprintf('{"id": %d, "symbol": "S%d", "ts": %.1f, "price": %d.5, '
		  . '"qty": 2, "label": %d, "features": [1.5, 2, %d], "extra": {"a": [1, {"b": 2}]}, "unknown": true}',
		$i, $i % 7, 1700000000 + $i, $i, $i % 2, $i);
}
my @bad = (
	'{"id": 1001, "symbol": "X", "price": 1',                # invalid JSON
	"{\"id\": 1002, \"symbol\": \"\xff\xfe\", \"price\": 1}",   # invalid UTF-8
	'{"id": 1003, "symbol": "X", "price": "cheap"}',         # type rejects
	'{"id": 1004, "price": 1}',                              # NOT NULL
	'{"id": 1005, "symbol": "X", "price": -3}',              # CHECK
	'{"id": 7, "symbol": "X", "price": 1}',                  # unique
	'{"id": 1007, "symbol": "EVIL", "price": 1}',            # trigger
	'[1, 2, 3]',                                             # not an object
	'{"id": 1009, "symbol": "X", "features": {"a": 1}}',     # object into float8[]
);

# Good messages first, then the bad ones spread among more good ones.
ok(produce($bootstrap, 'trades', [ map { [ "k$_", $good[$_ - 1] ] } 1 .. 150 ]),
	'produced the first good messages');
my @mixed;
my $j = 151;
foreach my $b (@bad)
{
	push @mixed, [ "bad", $b ];
	push @mixed, [ "k$_", $good[ $_ - 1 ] ] for $j .. $j + 2;
	$j += 3;
}
push @mixed, [ "k$_", $good[ $_ - 1 ] ] for $j .. 300;
ok(produce($bootstrap, 'trades', \@mixed), 'produced good and bad messages');

$node->safe_psql('postgres', qq{
	SELECT streamml.create_stream('trades', 'trades', '$bootstrap', 'trades', 'json',
		'{"workers": 2, "batch_size": 64, "columns": {"src_topic": "\$topic",
		  "src_partition": "\$partition", "src_offset": "\$offset", "src_key": "\$key"}}')
});

ok($node->poll_query_until('postgres',
		q{SELECT (SELECT count(*) FROM trades) + (SELECT count(*) FROM streamml.dead_letters)},
		'309'),
	'every message is in the table or in dead_letters');
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id), sum(id) FROM trades'),
	'300|300|45150', 'all 300 good rows, once each');
is($node->safe_psql('postgres',
		q{SELECT string_agg(convert_from(key, 'UTF8'), ',') FROM streamml.dead_letters}),
	join(',', ('bad') x 9), '9 dead letters, all the bad ones');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.dead_letters d
	WHERE d.payload = ANY (ARRAY[} . join(',', map { "'\\x" . unpack('H*', $_) . "'::bytea" } @bad) . q{])}),
	'9', 'dead letters keep the payload exactly as received');
my $errors = $node->safe_psql('postgres',
	q{SELECT string_agg(error, E'\n' ORDER BY error) FROM streamml.dead_letters});
like($errors, qr/invalid json in message/, 'invalid json is named');
like($errors, qr/invalid byte sequence for encoding "UTF8"/, 'invalid utf-8 is named');
like($errors, qr/invalid input syntax for type double precision: "cheap"/, 'type error is named');
like($errors, qr/null value in column "symbol"/, 'not null is named');
like($errors, qr/violates check constraint "trades_price_check"/, 'check is named');
like($errors, qr/duplicate key value violates unique constraint "trades_pkey"/, 'unique is named');
like($errors, qr/evil symbol/, 'trigger error is named');
like($errors, qr/cannot convert a json object into column "features"/, 'object into array is named');

is($node->safe_psql('postgres', q{
	SELECT symbol, ts, price, label, features, extra, note, src_topic, src_key
	FROM trades WHERE id = 42}),
	'S0|2023-11-14 22:14:02+00|42.5|0|{1.5,2,42}|{"a": [1, {"b": 2}]}|none|trades|k42',
	'values convert to the column types; defaults fill missing keys');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM trades t
	WHERE src_offset IS NULL OR src_partition NOT BETWEEN 0 AND 2}),
	'0', 'partition and offset metadata are recorded');
is($node->safe_psql('postgres', q{
	SELECT sum(next_offset) FROM streamml.offsets}),
	'309', 'stored offsets cover every message');
is($node->safe_psql('postgres', q{
	SELECT sum(rows_ingested), sum(rows_rejected), sum(lag), count(DISTINCT worker_pid)
	FROM streamml.stream_stats WHERE partition >= 0}),
	'300|9|0|2', 'stream_stats counts rows, rejects and lag per partition');

is($node->safe_psql('postgres', q{
	SELECT string_agg(application_name, ',' ORDER BY application_name)
	FROM pg_stat_activity WHERE backend_type = 'pg_streamml consumer'}),
	'pg_streamml trades/0,pg_streamml trades/1', 'workers name their stream in pg_stat_activity');

# A restart: the stream starts again by itself and resumes where it was.
$node->restart;
ok(produce($bootstrap, 'trades',
		[ map { [ "k$_", sprintf('{"id": %d, "symbol": "R", "price": 1}', $_) ] } 2001 .. 2050 ]),
	'produced after the restart');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM trades', '350'),
	'the stream resumed after a restart');
is($node->safe_psql('postgres',
		'SELECT count(DISTINCT id), (SELECT count(*) FROM streamml.dead_letters) FROM trades'),
	'350|9', 'no duplicates and no new dead letters after the restart');

# stop_stream stops the workers; start_stream resumes from the offsets.
$node->safe_psql('postgres', q{SELECT streamml.stop_stream('trades')});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_streamml consumer'}, '0'),
	'stop_stream stops the consumers');
ok(produce($bootstrap, 'trades',
		[ map { [ "k$_", sprintf('{"id": %d, "symbol": "P", "price": 1}', $_) ] } 3001 .. 3010 ]),
	'produced while stopped');
sleep 1;
is($node->safe_psql('postgres', 'SELECT count(*) FROM trades'), '350', 'nothing loads while stopped');
$node->safe_psql('postgres', q{SELECT streamml.start_stream('trades')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM trades', '360'),
	'start_stream resumes');

# produce() writes to Kafka from SQL; the stream reads it back.
$node->safe_psql('postgres', qq{
	SELECT streamml.produce('$bootstrap', 'trades', '{"id": 5000, "symbol": "SQL", "price": 2}', 'sqlkey')});
ok($node->poll_query_until('postgres',
		q{SELECT src_key FROM trades WHERE id = 5000}, 'sqlkey'),
	'produce() publishes a message that the stream loads');

$node->safe_psql('postgres', q{SELECT streamml.drop_stream('trades')});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_streamml consumer'}, '0'),
	'drop_stream stops the consumers');
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamml.offsets'), '0',
	'drop_stream forgets the offsets');

$node->stop;

# The loads fired the owner's triggers in the ranges' subtransactions; none
# left a resource (tuple descriptor, buffer, relation, snapshot, plan) for a
# resource owner to warn about.
is(join('', grep { /leak/i } split /^/, slurp_file($node->logfile)), '',
	'no resource leak warning in the server log');

is($broker->stop, 0, 'broker stopped cleanly');
done_testing();
