# Routing: one JSON topic into several tables by a top-level field
# ("route_field", "routes").  Every message lands exactly once, in the table
# of its route or, matching none (no field, null, another value), in the
# stream's target; a message that a routed table rejects (a value its column
# type refuses, its CHECK, NOT NULL or unique constraint) becomes a dead
# letter and the rest of its batch is kept; routed tables may have names
# that need quoting, live in another schema or be partitioned; their row
# triggers and statement triggers with transition tables see each of their
# rows once, in small and big batches; a routed name is resolved once, by
# create_stream with the caller's search_path, never by the worker's;
# create_stream and alter_stream refuse a routed table the owner cannot
# INSERT into, and INSERT revoked on one later stops the batches until it is
# granted again (no dead letters, nothing lost); and kill -9 of the server
# during a routed load with two workers loses and duplicates nothing.
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
	topics => { market => 4, burst => 4, carol => 1, bulk => 1 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('routing');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE other (id int PRIMARY KEY, type text, note text);
	CREATE TABLE trades (id int PRIMARY KEY, type text,
		price numeric CHECK (price > 0), qty int);
	CREATE TABLE "Quote Table" (id int, type text, bid float8, ask float8)
		PARTITION BY RANGE (id);
	CREATE TABLE "Quote Table part" PARTITION OF "Quote Table" DEFAULT;
	CREATE SCHEMA mkt;
	CREATE TABLE mkt.halts (id int PRIMARY KEY, type text, reason text NOT NULL);
	-- A decoy of the same name on the default search_path.
	CREATE TABLE public.halts (id int, type text, reason text);
	-- Statement triggers with a transition table count the rows each
	-- table got, in the target and in two routed tables.
	CREATE TABLE audit (tbl text, n int);
	CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.audit SELECT TG_TABLE_NAME, count(*) FROM new_rows;
		RETURN NULL;
	END $$;
	CREATE TRIGGER audit AFTER INSERT ON other REFERENCING NEW TABLE AS new_rows
		FOR EACH STATEMENT EXECUTE FUNCTION audit();
	CREATE TRIGGER audit AFTER INSERT ON trades REFERENCING NEW TABLE AS new_rows
		FOR EACH STATEMENT EXECUTE FUNCTION audit();
	CREATE TRIGGER audit AFTER INSERT ON mkt.halts REFERENCING NEW TABLE AS new_rows
		FOR EACH STATEMENT EXECUTE FUNCTION audit();
});

# The messages: ids 1..400, five kinds in turn, keyed by id; the bad ones
# among them.
my @msgs;
my %want = (trades => 0, quotes => 0, halts => 0, other => 0);
my %other_type = (null => 0, news => 0, 7 => 0);
for my $i (1 .. 400)
{
	my $k = $i % 5;
	my $m;
	if ($k == 0)
	{
		$m = qq({"id": $i, "type": "trade", "price": $i.5, "qty": 3});
		$want{trades}++;
	}
	elsif ($k == 1)
	{
		$m = qq({"ask": $i.75, "type": "quote", "id": $i, "bid": $i.25});
		$want{quotes}++;
	}
	elsif ($k == 2)
	{
		$m = qq({"id": $i, "type": "halt", "reason": "r$i"});
		$want{halts}++;
	}
	elsif ($k == 3)
	{
		# No route: another value, null, or a number.
		my $t = ('"news"', 'null', '7')[ $i % 3 ];
		$m = qq({"id": $i, "type": $t, "note": "n$i"});
		$other_type{ $t =~ s/"//gr }++;
		$want{other}++;
	}
	else
	{
		$m = qq({"id": $i, "note": "untyped $i"});    # no field
		$other_type{null}++;
		$want{other}++;
	}
	push @msgs, [ "id$i", $m ];
}
my @bad = (
	[ 'bad1', '{"id": 1001, "type": "trade", "price": "cheap"}' ],    # numeric rejects
	[ 'bad2', '{"id": 1002, "type": "trade", "price": -1}' ],         # CHECK
	[ 'id5',  '{"id": 5, "type": "trade", "price": 1}' ],             # unique: after id 5, same partition
	[ 'bad4', '{"id": 1004, "type": "quote", "bid": "x"}' ],          # float8 rejects
	[ 'bad5', '{"id": 1005, "type": "halt"}' ],                       # NOT NULL reason
	[ 'bad6', '{"id": 1006, "type": "trade", "price": 1' ],           # invalid JSON
	[ 'bad7', '{"id": 1007, "type": "quote", "bid": {"a": 1}}' ],     # object into float8
);
# Spread the bad messages over the topic, among good ones.
my @all = @msgs;
splice(@all, 37 + 50 * $_, 0, $bad[$_]) for 0 .. $#bad;
ok(produce($bootstrap, 'market', \@all),
	'produced ' . scalar(@all) . ' messages of five kinds');

# Create the stream with mkt first on the search_path: "halts" means
# mkt.halts to the caller, and must stay so for the worker.
$node->safe_psql('postgres', qq{
	SET search_path = mkt, public;
	SELECT streamml.create_stream('market', 'other', '$bootstrap', 'market', 'json',
		'{"workers": 2, "batch_size": 50, "route_field": "type",
		  "routes": {"trade": "trades", "quote": "\\"Quote Table\\"", "halt": "halts"}}');
});
is($node->safe_psql('postgres',
		q{SELECT options->'routes' FROM streamml.streams WHERE name = 'market'}),
	'{"halt": "mkt.halts", "quote": "public.\"Quote Table\"", "trade": "public.trades"}',
	'routed tables are stored schema-qualified, as the caller resolved them');

my $total = @all;
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM trades) + (SELECT count(*) FROM "Quote Table")
	     + (SELECT count(*) FROM mkt.halts) + (SELECT count(*) FROM other)
	     + (SELECT count(*) FROM streamml.dead_letters)}, $total),
	"all $total messages are in a table or in dead_letters");
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) || ',' || count(DISTINCT id) FROM trades) || '|' ||
	       (SELECT count(*) || ',' || count(DISTINCT id) FROM "Quote Table") || '|' ||
	       (SELECT count(*) || ',' || count(DISTINCT id) FROM mkt.halts) || '|' ||
	       (SELECT count(*) || ',' || count(DISTINCT id) FROM other) || '|' ||
	       (SELECT count(*) FROM public.halts)}),
	"$want{trades},$want{trades}|$want{quotes},$want{quotes}|$want{halts},$want{halts}|"
	  . "$want{other},$want{other}|0",
	'exact counts per table, each message once, nothing in the decoy table');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
		SELECT id FROM trades UNION ALL SELECT id FROM "Quote Table"
		UNION ALL SELECT id FROM mkt.halts UNION ALL SELECT id FROM other) u
	WHERE id BETWEEN 1 AND 400}),
	'400', 'every good message is in exactly one table');
is($node->safe_psql('postgres', q{
	SELECT string_agg(tbl || '=' || n, ',' ORDER BY tbl) FROM (
		SELECT tbl, sum(n) AS n FROM audit GROUP BY tbl) a}),
	"halts=$want{halts},other=$want{other},trades=$want{trades}",
	'statement triggers with transition tables saw exactly the rows of their table');
is($node->safe_psql('postgres', q{
	SELECT bool_and(type = 'trade' AND price = id + 0.5 AND qty = 3) FROM trades}),
	't', 'trades hold trades, with their values');
is($node->safe_psql('postgres', q{
	SELECT bool_and(type = 'quote' AND bid = id + 0.25 AND ask = id + 0.75)
	FROM "Quote Table"}),
	't', 'the quoted, partitioned table holds the quotes');
is($node->safe_psql('postgres', q{SELECT count(*) FROM "Quote Table part"}),
	$want{quotes}, 'quotes went through the partitioned table into its partition');
is($node->safe_psql('postgres', q{
	SELECT bool_and(type = 'halt' AND reason = 'r' || id) FROM mkt.halts}),
	't', 'the other schema holds the halts');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE type IS NULL), count(*) FILTER (WHERE type = 'news'),
	       count(*) FILTER (WHERE type = '7') FROM other}),
	"$other_type{null}|$other_type{news}|$other_type{7}",
	'no field, null, another string and a number all go to the target');

is($node->safe_psql('postgres', q{
	SELECT count(*), count(DISTINCT "offset" || '/' || partition) FROM streamml.dead_letters
	WHERE stream = 'market'}),
	scalar(@bad) . '|' . scalar(@bad), 'each bad message is one dead letter');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.dead_letters d
	WHERE d.payload = ANY (ARRAY[} . join(',', map { "'\\x" . unpack('H*', $_->[1]) . "'::bytea" } @bad) . q{])}),
	scalar(@bad), 'the dead letters are exactly the bad messages');
my $errors = $node->safe_psql('postgres',
	q{SELECT string_agg(error, E'\n' ORDER BY error) FROM streamml.dead_letters});
like($errors, qr/invalid input syntax for type numeric: "cheap"/, 'numeric rejects "cheap"');
like($errors, qr/violates check constraint "trades_price_check"/, 'CHECK of the routed table');
like($errors, qr/duplicate key value violates unique constraint "trades_pkey"/,
	'unique of the routed table');
like($errors, qr/invalid input syntax for type double precision: "x"/,
	'float8 of the quoted table rejects "x"');
like($errors, qr/null value in column "reason" of relation "halts"/,
	'NOT NULL of the table in the other schema');
like($errors, qr/invalid json in message/, 'invalid JSON');
like($errors, qr/cannot convert a json object into column "bid"/, 'object into float8');
is($node->safe_psql('postgres', q{
	SELECT sum(next_offset) FROM streamml.offsets o JOIN streamml.streams s ON s.id = o.stream_id
	WHERE s.name = 'market'}),
	$total, 'stored offsets cover every message');

# The owner needs INSERT on every routed table, checked at creation.
$node->safe_psql('postgres', q{
	CREATE ROLE carol LOGIN;
	GRANT USAGE ON SCHEMA mkt TO carol;
	GRANT INSERT ON other, trades, mkt.halts TO carol;
	GRANT SELECT ON trades TO carol;
});
my ($rc, $out, $err) = $node->psql('postgres', qq{
	SET ROLE carol;
	SELECT streamml.create_stream('carol', 'other', '$bootstrap', 'market', 'json',
		'{"route_field": "type", "routes": {"trade": "trades", "quote": "\\"Quote Table\\""}}')});
like($err, qr/permission denied for table Quote Table/,
	'create_stream refuses a routed table the owner cannot insert into');
($rc, $out, $err) = $node->psql('postgres', qq{
	SET ROLE carol;
	SELECT streamml.create_stream('carol', 'other', '$bootstrap', 'market', 'json',
		'{"route_field": "type", "routes": {"trade": "no_such_table"}}')});
like($err, qr/relation "no_such_table" does not exist/, 'a missing routed table is an error');
($rc, $out, $err) = $node->psql('postgres', qq{
	SET ROLE carol;
	SELECT streamml.create_stream('carol', 'other', '$bootstrap', 'market', 'json',
		'{"route_field": "type"}')});
like($err, qr/option "route_field" needs option "routes"/, 'route_field alone is an error');
($rc, $out, $err) = $node->psql('postgres', qq{
	SET ROLE carol;
	SELECT streamml.create_stream('carol', 'other', '$bootstrap', 'market', 'csv',
		'{"route_field": "type", "routes": {"trade": "trades"}}')});
like($err, qr/option "routes" needs option "route_field" and format json/,
	'routing needs json');
$node->safe_psql('postgres', qq{
	CREATE TABLE c_other (id int, type text);
	CREATE TABLE c_trades (id int, type text);
	GRANT INSERT ON c_other, c_trades TO carol;
	SET ROLE carol;
	SELECT streamml.create_stream('carol', 'c_other', '$bootstrap', 'carol', 'json',
		'{"route_field": "type", "routes": {"trade": "c_trades"}}')});
($rc, $out, $err) = $node->psql('postgres', q{
	SET ROLE carol;
	SELECT streamml.alter_stream('carol', '{"routes": {"halt": "mkt.halts", "quote": "\"Quote Table\""}}')});
like($err, qr/permission denied for table Quote Table/,
	'alter_stream refuses it too');
is($node->safe_psql('postgres',
		q{SELECT options->'routes' FROM streamml.streams WHERE name = 'carol'}),
	'{"trade": "public.c_trades"}', 'and leaves the routes as they were');

# INSERT revoked on a routed table while the stream runs: the batches stop
# (no dead letters) until it is granted again, then nothing is lost.
my $carol_msgs = sub {
	my ($from, $to) = @_;
	return [ map { [ "c$_", sprintf('{"id": %d, "type": "%s"}', $_, $_ % 2 ? 'trade' : 'x') ] }
		  $from .. $to ];
};
my $carol_counts = q{SELECT (SELECT count(*) FROM c_trades) || '|' || (SELECT count(*) FROM c_other)};
ok(produce($bootstrap, 'carol', $carol_msgs->(1, 10)), 'produced 10 for carol');
ok($node->poll_query_until('postgres', $carol_counts, '5|5'), "carol's stream routes them");
$node->safe_psql('postgres', 'REVOKE INSERT ON c_trades FROM carol');
ok(produce($bootstrap, 'carol', $carol_msgs->(11, 20)), 'produced 10 more while INSERT is revoked');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM streamml.stream_stats
	WHERE stream = 'carol' AND last_error LIKE 'permission denied for table c_trades%'}),
	'the revoked INSERT on the routed table shows in stream_stats');
is($node->safe_psql('postgres', $carol_counts . q{ || '|' ||
	(SELECT count(*) FROM streamml.dead_letters WHERE stream = 'carol')}),
	'5|5|0', 'nothing loaded into either table and no dead letters while it is revoked');
$node->safe_psql('postgres', 'GRANT INSERT ON c_trades TO carol');
ok($node->poll_query_until('postgres', $carol_counts, '10|10'), 'after the GRANT the stream resumes');
is($node->safe_psql('postgres', q{
	SELECT count(DISTINCT id), sum(id) FROM (SELECT id FROM c_trades UNION ALL SELECT id FROM c_other) u}),
	'20|210', 'nothing lost or loaded twice across the revoke');
$node->safe_psql('postgres', q{SELECT streamml.drop_stream('carol')});

# Big batches: a routed table that is not the last one buffers more than
# the loader's 1000 rows, so it writes (and queues its row triggers) in the
# middle of the range; row and transition-table triggers still see each row
# once, in the right table.
$node->safe_psql('postgres', qq{
	CREATE TABLE k_other (id int, type text);
	CREATE TABLE k_halts (id int, type text);
	CREATE TABLE k_trades (id int, type text);
	CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN INSERT INTO public.audit VALUES (TG_TABLE_NAME || ' row', 1); RETURN NULL; END \$\$;
	CREATE TRIGGER audit AFTER INSERT ON k_other REFERENCING NEW TABLE AS new_rows
		FOR EACH STATEMENT EXECUTE FUNCTION audit();
	CREATE TRIGGER audit AFTER INSERT ON k_halts REFERENCING NEW TABLE AS new_rows
		FOR EACH STATEMENT EXECUTE FUNCTION audit();
	CREATE TRIGGER audit AFTER INSERT ON k_trades REFERENCING NEW TABLE AS new_rows
		FOR EACH STATEMENT EXECUTE FUNCTION audit();
	CREATE TRIGGER audit_row AFTER INSERT ON k_halts FOR EACH ROW EXECUTE FUNCTION audit_row();
	CREATE TRIGGER audit_row AFTER INSERT ON k_other FOR EACH ROW EXECUTE FUNCTION audit_row();
});
ok(produce($bootstrap, 'bulk', [ map {
	my $t = ('halt', 'halt', 'trade', 'x')[ $_ % 4 ];
	qq({"id": $_, "type": "$t"}) } 1 .. 6000 ]), 'produced 6000 for big batches');
$node->safe_psql('postgres', qq{
	SELECT streamml.create_stream('bulk', 'k_other', '$bootstrap', 'bulk', 'json',
		'{"batch_size": 6000, "flush_ms": 2000, "route_field": "type",
		  "routes": {"halt": "k_halts", "trade": "k_trades"}}')});
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM k_other) + (SELECT count(*) FROM k_halts)
	     + (SELECT count(*) FROM k_trades)}, '6000'),
	'the big batches loaded');
is($node->safe_psql('postgres', q{
	SELECT string_agg(tbl || '=' || n, ',' ORDER BY tbl) FROM (
		SELECT tbl, sum(n) AS n FROM audit WHERE tbl LIKE 'k\_%' GROUP BY tbl) a}),
	'k_halts=3000,k_halts row=3000,k_other=1500,k_other row=1500,k_trades=1500',
	'row and statement triggers saw each row once, in its table');

# kill -9 during a routed load with two workers on four partitions.
$node->safe_psql('postgres', qq{
	CREATE TABLE b_trades (id int, type text, price float8);
	CREATE TABLE b_quotes (id int, type text, bid float8);
	CREATE TABLE b_other (id int, type text);
	-- Slow every batch down, so that the crashes come in the middle of a load.
	CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN PERFORM pg_sleep(0.1); RETURN NULL; END \$\$;
	CREATE TRIGGER slow AFTER INSERT ON b_other FOR EACH STATEMENT EXECUTE FUNCTION slow();
	SELECT streamml.create_stream('burst', 'b_other', '$bootstrap', 'burst', 'json',
		'{"workers": 2, "batch_size": 200, "flush_ms": 20, "route_field": "type",
		  "routes": {"trade": "b_trades", "quote": "b_quotes"}}');
});
my $produced = 0;
my $per_round = 4000;

# Produces the next chunk of the burst topic, ids continuing.
sub produce_burst
{
	my @chunk = map {
		my $id = $produced + $_;
		my $t = ('trade', 'quote', 'other')[ $id % 3 ];
		[ "b$id", qq({"id": $id, "type": "$t", "price": $id.5, "bid": $id.25}) ]
	} 1 .. $per_round;
	ok(produce($bootstrap, 'burst', \@chunk), 'produced burst ids up to ' . ($produced + $per_round));
	$produced += $per_round;
}
my $burst_count = q{SELECT (SELECT count(*) FROM b_trades) + (SELECT count(*) FROM b_quotes)
	+ (SELECT count(*) FROM b_other)};

for my $round (1 .. 2)
{
	produce_burst();
	$node->poll_query_until('postgres',
		"SELECT ($burst_count) > " . ($produced - $per_round + 500))
	  or diag('no progress before the crash');
	my $loaded = $node->safe_psql('postgres', $burst_count);
	ok($loaded < $produced, "kill -9 number $round comes with $loaded of $produced loaded");
	streamml_kill9($node, "children exited after kill -9 number $round");
	$node->start;
}
produce_burst();
ok($node->poll_query_until('postgres', $burst_count, $produced),
	"all $produced burst messages loaded after two crashes");
my $third = $produced / 3;
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) || ',' || count(DISTINCT id) FROM b_trades) || '|' ||
	       (SELECT count(*) || ',' || count(DISTINCT id) FROM b_quotes) || '|' ||
	       (SELECT count(*) || ',' || count(DISTINCT id) FROM b_other)}),
	"$third,$third|$third,$third|$third,$third", 'each routed table has its third, once each');
is($node->safe_psql('postgres', q{
	SELECT count(DISTINCT id), sum(id) FROM (
		SELECT id FROM b_trades UNION ALL SELECT id FROM b_quotes
		UNION ALL SELECT id FROM b_other) u}),
	"$produced|" . ($produced * ($produced + 1) / 2), 'every message exactly once across the tables');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM b_trades WHERE id % 3 <> 0 OR type <> 'trade')
	     + (SELECT count(*) FROM b_quotes WHERE id % 3 <> 1 OR type <> 'quote')
	     + (SELECT count(*) FROM b_other WHERE id % 3 <> 2)}),
	'0', 'each message in the table of its route');
is($node->safe_psql('postgres', q{
	SELECT sum(next_offset) FROM streamml.offsets o JOIN streamml.streams s ON s.id = o.stream_id
	WHERE s.name = 'burst'}),
	$produced, 'the stored offsets cover every message, no more');
is($node->safe_psql('postgres', q{SELECT count(*) FROM streamml.dead_letters WHERE stream = 'burst'}),
	'0', 'no dead letters');

$node->stop;
is($broker->stop, 0, 'broker stopped cleanly');
done_testing();
