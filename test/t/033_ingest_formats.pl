# Formats and options end to end: csv (delimiter, header, quoting, empty
# field as NULL, several rows a message), text (into text, jsonb, bytea, with
# metadata columns), json dotted paths, epoch seconds and milliseconds into
# timestamptz, JSON numbers read exactly as float8 input reads them;
# alter_stream on a running stream; reset_stream to offsets, 'earliest', 'latest' and
# a time.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { csv => 1, csvh => 1, txt => 1, nested => 1, epochs => 1,
		nums => 1, edge => 1, again => 2 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('formats');
$node->start;
my $psql = sub { $node->safe_psql('postgres', shift) };

# Messages with newlines (csv) go through produce() in SQL.
sub sql_produce
{
	my ($topic, @msgs) = @_;
	$psql->(join(";\n", map {
		my $v = $_;
		$v =~ s/'/''/g;
		"SELECT streamml.produce('$bootstrap', '$topic', E'$v')"
	} @msgs));
}

$psql->(q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE c1 (id int, name text, price float8, at timestamptz, tags text[],
		note text DEFAULT 'dflt');
	CREATE TABLE c2 (price float8, id int, part int);
	CREATE TABLE h (id int, name text, price float8, extra text DEFAULT 'd');
	CREATE TABLE t_text (body text, k text, off bigint);
	CREATE TABLE t_jsonb (doc jsonb);
	CREATE TABLE t_bytea (n int, raw bytea);
	CREATE TABLE nested (id int, px float8, dotted text, deep jsonb, missing text DEFAULT 'm');
	CREATE TABLE ep_s (id int, at timestamptz);
	CREATE TABLE ep_ms (id int, at timestamptz);
	CREATE TABLE nums (id int, x float8, xs float8[]);
	CREATE TABLE edge (id int, n int, b bigint, x float8, xs float8[], t text,
		ks int[], ss text[]);
	CREATE TABLE again (id int);
});

# --- csv: delimiter ';', quoting, empty field = NULL, two rows a message
sql_produce('csv',
	'1;apple;1.5;2024-01-01 00:00:00+00;{x,y}\n2;"semi;colon ""q""";2.25;;{}',
	'3;;-7;2024-06-30 12:00:00+00;"{a,""b c""}"\r\n',
	'4;bad;notanumber;;{}',
	'5;short');
$psql->(qq{
	SELECT streamml.create_stream('c1', 'c1', '$bootstrap', 'csv', 'csv',
		'{"delimiter": ";", "batch_size": 3}');
	SELECT streamml.create_stream('c2', 'c2', '$bootstrap', 'csv', 'csv',
		'{"delimiter": ";", "columns": {"id": "1", "price": "3", "part": "\$partition"}}');
});
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM c1) + (SELECT count(*) FROM c2)
		+ (SELECT count(*) FROM streamml.dead_letters WHERE stream IN ('c1', 'c2'))}, '10'),
	'csv streams loaded every message');
is($psql->(q{SELECT id, name, price, at, tags, note FROM c1 ORDER BY id}),
	join("\n",
		'1|apple|1.5|2024-01-01 00:00:00+00|{x,y}|dflt',
		'2|semi;colon "q"|2.25||{}|dflt',
		'3||-7|2024-06-30 12:00:00+00|{a,"b c"}|dflt',
		'5|short||||dflt'),
	'csv: fields in column order, quotes, empty field NULL, CRLF, missing fields take defaults');
is($psql->(q{SELECT stream, "offset", error FROM streamml.dead_letters ORDER BY stream}),
	join("\n",
		'c1|2|invalid input syntax for type double precision: "notanumber"',
		'c2|2|invalid input syntax for type double precision: "notanumber"'),
	'csv: a message with a bad field is a dead letter, whole');
is($psql->(q{SELECT id, price, part FROM c2 ORDER BY id}),
	"1|1.5|0\n2|2.25|0\n3|-7|0\n5||0",
	'csv: columns maps field numbers and metadata');

# --- csv with a header line in every message
sql_produce('csvh', 'price,name,id\n9.5,x,1\n8.5,y,2', 'id,name\n3,z');
$psql->(qq{SELECT streamml.create_stream('h', 'h', '$bootstrap', 'csvh', 'csv', '{"header": true}')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM h', '3'), 'csv header: loaded');
is($psql->(q{SELECT id, name, price, extra FROM h ORDER BY id}),
	"1|x|9.5|d\n2|y|8.5|d\n3|z||d",
	'csv header: fields matched by name, per message');

# --- text into text, jsonb and bytea
ok(produce($bootstrap, 'txt',
		[ [ 'k1', 'plain words' ], [ 'k2', '{"a": [1, 2]}' ], [ 'k3', 'not json' ],
		  [ 'k4', "\xff\xfe binary" ] ]),
	'produced text messages');
$psql->(qq{
	SELECT streamml.create_stream('t_text', 't_text', '$bootstrap', 'txt', 'text',
		'{"columns": {"k": "\$key", "off": "\$offset"}}');
	SELECT streamml.create_stream('t_jsonb', 't_jsonb', '$bootstrap', 'txt', 'text');
	SELECT streamml.create_stream('t_bytea', 't_bytea', '$bootstrap', 'txt', 'text',
		'{"columns": {"n": "\$offset"}}');
});
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM t_text) + (SELECT count(*) FROM t_jsonb) + (SELECT count(*) FROM t_bytea)
		+ (SELECT count(*) FROM streamml.dead_letters WHERE stream LIKE 't\_%')}, '12'),
	'text streams loaded every message');
is($psql->(q{SELECT off, k, body FROM t_text WHERE off < 3 ORDER BY off}),
	"0|k1|plain words\n1|k2|{\"a\": [1, 2]}\n2|k3|not json",
	'text: the whole message into text, key and offset into columns');
is($psql->(q{SELECT string_agg(stream || ':' || "offset", ',' ORDER BY stream, "offset")
	FROM streamml.dead_letters WHERE stream LIKE 't\_%'}),
	't_jsonb:0,t_jsonb:2,t_jsonb:3,t_text:3',
	'text: invalid JSON into jsonb and invalid UTF-8 into text are dead letters');
like($psql->(q{SELECT string_agg(error, E'\n' ORDER BY "offset") FROM streamml.dead_letters WHERE stream = 't_jsonb'}),
	qr/^invalid input syntax for type json\ninvalid input syntax for type json\ninvalid byte sequence for encoding "UTF8": 0xff/,
	'text: the errors name the problem');
is($psql->(q{SELECT doc->'a'->>1 FROM t_jsonb}), '2', 'text: a JSON message into jsonb');
is($psql->(q{SELECT n, encode(raw, 'hex') FROM t_bytea ORDER BY n}),
	"0|706c61696e20776f726473\n1|7b2261223a205b312c20325d7d\n2|6e6f74206a736f6e\n3|fffe2062696e617279",
	'text: bytea keeps every byte, invalid UTF-8 included');

# --- json: dotted paths, a key that itself contains a dot
ok(produce($bootstrap, 'nested', [
	'{"order": {"id": 7, "px": {"value": 101.25}}, "a.b": "literal", "a": {"b": "path"}, "deep": {"x": [1, {"y": null}]}}',
	'{"order": {"id": 8}, "a": {"b": "path only"}}',
	'{"order": 5}' ]), 'produced nested messages');
$psql->(qq{
	SELECT streamml.create_stream('nested', 'nested', '$bootstrap', 'nested', 'json',
		'{"columns": {"id": "order.id", "px": "order.px.value", "dotted": "a.b", "deep": "deep"}}');
});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM nested', '3'), 'nested: loaded');
is($psql->(q{SELECT id, px, dotted, deep, missing FROM nested ORDER BY id NULLS LAST}),
	"7|101.25|literal|{\"x\": [1, {\"y\": null}]}|m\n8||path only||m\n||||m",
	'json: dotted paths descend; a literal dotted key wins; absent paths take defaults');

# --- epoch seconds and milliseconds into timestamptz
ok(produce($bootstrap, 'epochs', [
	'{"id": 1, "at": 1700000000}', '{"id": 2, "at": 1700000000.25}',
	'{"id": 3, "at": "2024-01-01T00:00:00Z"}', '{"id": 4, "at": 1e300}' ]), 'produced epochs');
$psql->(qq{
	SELECT streamml.create_stream('ep_s', 'ep_s', '$bootstrap', 'epochs', 'json');
});
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM ep_s) + (SELECT count(*) FROM streamml.dead_letters WHERE stream = 'ep_s')}, '4'),
	'epoch seconds: loaded');
is($psql->(q{SELECT id, at FROM ep_s ORDER BY id}),
	"1|2023-11-14 22:13:20+00\n2|2023-11-14 22:13:20.25+00\n3|2024-01-01 00:00:00+00",
	'epoch seconds (also fractional) and timestamp strings into timestamptz');
like($psql->(q{SELECT error FROM streamml.dead_letters WHERE stream = 'ep_s'}),
	qr/epoch value out of range/, 'an epoch out of range is a dead letter');
ok(produce($bootstrap, 'epochs', [ '{"id": 5, "at": 1700000000250}' ]), 'produced an epoch in ms');
$psql->(qq{
	SELECT streamml.create_stream('ep_ms', 'ep_ms', '$bootstrap', 'epochs', 'json',
		'{"epoch_unit": "ms"}');
});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM ep_ms', '4'), 'epoch ms: loaded');
is($psql->(q{SELECT at FROM ep_ms WHERE id = 5}), '2023-11-14 22:13:20.25+00',
	'epoch milliseconds into timestamptz');

# --- JSON numbers become exactly the float8 that float8in makes of them
my @nums = ('0.1', '-0', '1e22', '1e23', '123456789012345678', '9007199254740993',
	'2.2250738585072014e-308', '5e-324', '1.7976931348623157e308', '0.000001234567',
	'-3.14159265358979', '1E+2', '100e-2', '4.35', '1700000000.123',
	'12345678901234567890123', '0.30000000000000004');
ok(produce($bootstrap, 'nums', [ map {
	my $i = $_ + 1;
	qq({"id": $i, "x": $nums[$_], "xs": [$nums[$_], 1.5]})
} 0 .. $#nums ]), 'produced numbers');
$psql->(qq{SELECT streamml.create_stream('nums', 'nums', '$bootstrap', 'nums', 'json')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM nums', scalar(@nums)),
	'numbers: loaded');
is($psql->(q{
	SELECT count(*) FROM nums n
	JOIN unnest(ARRAY['} . join("','", @nums) . q{']) WITH ORDINALITY u(s, i) ON n.id = u.i
	WHERE n.x = u.s::float8 AND n.xs[1] = u.s::float8
	  AND (n.x::text = u.s::float8::text)}),
	scalar(@nums), 'every number equals its float8 input, bit for bit');

# --- json: the one-pass conversions and the general way they fall back to
my @edge = (
	'{"id": 1, "n": -0, "b": 123456789012345678, "x": 1, "xs": [], "t": "a\"b"}',
	'{"id": 2, "n": 2147483647, "b": -9223372036854775808, "xs": [1, null, 3]}',
	'{"id": 3, "n": 2147483648}',
	'{"id": 4, "n": 1.5}',
	'{"id": 5, "x": 1e400}',
	'{"id": 6, "xs": [[1, 2], [3, 4]]}',
	'{"id": 7, "t": 5, "x": "2.5", "n": "7"}',
	'{"id": 8, "x": 1, "x": 2}',
	'{"id": 9, "xs": [1, 2,]}',
	'{"id": 10, "n": 012}',
	'{"\u0069d": 11, "x": 3}',
	'{"id": 12, "xs": [1 2]}',
	'{"x": -4.5e-1, "t": "\u00e9", "id": 13, "xs": [ -0.5 , 2E2 ]}',
	'{"id": 14, "n": -2147483648, "x": null, "xs": null, "t": null}',
	'{"id": 15, "n": 99999999999999999999}',
	'{"id": 16, "ks": [1, -2, null, 3], "ss": ["a", "b c", "q\\"x", "\\u00e9\\n", "NULL", null, "{}", ""]}',
	'{"id": 17, "ks": [[1, 2], [3, 4]], "ss": []}',
	'{"id": 18, "ks": [1.5]}',
	'{"id": 19, "ss": [{"a": 1}]}',
	'{"id": 20, "n": "x", "n": 1, "x": 1e400, "x": 2.5, "xs": [1e999], "xs": [1], "t": "\\u0000", "t": "ok", "ks": {"a": 1}, "ks": [2]}',
	'{"id": 21, "x": 1e400, "y": tru}');
ok(produce($bootstrap, 'edge', \@edge), 'produced json edge cases');
$psql->(qq{SELECT streamml.create_stream('edge', 'edge', '$bootstrap', 'edge', 'json')});
ok($node->poll_query_until('postgres', q{SELECT (SELECT count(*) FROM edge)
	+ (SELECT count(*) FROM streamml.dead_letters WHERE stream = 'edge')}, scalar(@edge)),
	'json edge cases: every message loaded or rejected');
is($psql->(q{SELECT id, n, b, x, xs, t, ks, ss FROM edge ORDER BY id}),
	join("\n",
		'1|0|123456789012345678|1|{}|a"b||',
		'2|2147483647|-9223372036854775808||{1,NULL,3}|||',
		'6||||{{1,2},{3,4}}|||',
		'7|7||2.5||5||',
		'8|||2||||',
		'11|||3||||',
		'13|||-0.45|{-0.5,200}|é||',
		'14|-2147483648||||||',
		'16||||||{1,-2,NULL,3}|{a,"b c","q\\"x","é' . "\n" . '","NULL",NULL,"{}",""}',
		'17||||||{{1,2},{3,4}}|{}',
		'20|1||2.5|{1}|ok|{2}|'),
	'json: integers, big and negative zero, empty and null-holding and 2-D arrays (float8[], int[], text[] with escapes), strings into numbers, the last duplicate key (the others may be invalid for the column), escaped keys, any key order');
is($psql->(q{SELECT string_agg(error, E'\n' ORDER BY "offset") FROM streamml.dead_letters
	WHERE stream = 'edge'}),
	join("\n",
		'value "2147483648" is out of range for type integer',
		'invalid input syntax for type integer: "1.5"',
		'"1e400" is out of range for type double precision',
		'invalid json in message: unexpected character',
		'invalid json in message: comma or } expected',
		'invalid json in message: comma or ] expected',
		'value "99999999999999999999" is out of range for type integer',
		'invalid input syntax for type integer: "1.5"',
		'cannot convert a json array of objects to an array',
		'invalid json in message: unexpected character'),
	'json: out of range, fractions into integers and malformed numbers and arrays are dead letters, named; a syntax error is named before a bad value');

# --- alter_stream on a running stream, reset_stream
ok(produce($bootstrap, 'again', [ map { qq({"id": $_}) } 1 .. 100 ]), 'produced 100');
$psql->(qq{SELECT streamml.create_stream('again', 'again', '$bootstrap', 'again', 'json')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM again', '100'), 'loaded 100');
my $pid_query = q{SELECT string_agg(DISTINCT worker_pid::text, ',')
	FROM streamml.stream_stats WHERE stream = 'again'};
my $pid = $psql->($pid_query);
$psql->(q{SELECT streamml.alter_stream('again', '{"batch_size": 7, "workers": 2}')});
is($psql->(q{SELECT options, generation FROM streamml.streams WHERE name = 'again'}),
	'{"workers": 2, "batch_size": 7}|2', 'alter_stream merges options and bumps the generation');
ok(produce($bootstrap, 'again', [ map { qq({"id": $_}) } 101 .. 200 ]), 'produced 100 more');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM again', '200'),
	'the altered stream loads what comes next');
is($psql->('SELECT count(DISTINCT id), sum(id) FROM again'), '200|20100',
	'nothing lost or loaded twice across alter_stream');
ok($node->poll_query_until('postgres', qq{
	SELECT count(DISTINCT worker_pid) = 2 AND bool_and(worker_pid <> $pid)
	FROM streamml.stream_stats WHERE stream = 'again' AND partition >= 0}),
	'two new workers after alter_stream');
is($psql->(q{SELECT max(n) <= 7 FROM (SELECT count(*) AS n FROM again WHERE id > 100 GROUP BY xmin) s}),
	't', 'the new batch_size applies: no batch over 7 rows');

$psql->(q{TRUNCATE again; SELECT streamml.reset_stream('again', 'earliest')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM again', '200'),
	"reset_stream 'earliest' loads the topic again");
sleep 1;
is($psql->('SELECT count(*), count(DISTINCT id), sum(id) FROM again'), '200|200|20100',
	"reset 'earliest': every message once, into the truncated table");

$psql->(q{TRUNCATE again; SELECT streamml.reset_stream('again', 'latest')});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) FROM streamml.offsets o JOIN streamml.streams s ON s.id = o.stream_id
	WHERE s.name = 'again'}, '2'),
	"reset 'latest': offsets stored again at the end");
is($psql->(q{SELECT sum(next_offset) FROM streamml.offsets o JOIN streamml.streams s ON s.id = o.stream_id
	WHERE s.name = 'again'}), '200', "reset 'latest' resolves to the end of every partition");
ok(produce($bootstrap, 'again', [ map { qq({"id": $_}) } 201 .. 210 ]), 'produced 10 more');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM again', '10'),
	"reset 'latest' loads only what comes after it");
sleep 1;
is($psql->('SELECT count(*), min(id), max(id) FROM again'), '10|201|210',
	"reset 'latest': nothing older is loaded");

# reset_stream to a time: the dev broker answers no offsetsForTimes (offset
# -1, "no message at or after", for any time); the last message's timestamp
# shows the answer wrong, so the offset is found by reading timestamps, and
# every message, newer than 2020, is loaded again.  (037 tests seek by time.)
my $log_offset = -s $node->logfile;
$psql->(q{TRUNCATE again; SELECT streamml.reset_stream('again', '2020-01-01 00:00:00+00')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM again', '210'),
	'reset to a time before every message loads them all again');
ok($node->poll_query_until('postgres', q{
	SELECT sum(next_offset) FROM streamml.offsets o JOIN streamml.streams s ON s.id = o.stream_id
	WHERE s.name = 'again'}, '210'),
	'reset to a time: every partition read to its end');
is($psql->('SELECT count(*), count(DISTINCT id), sum(id) FROM again'), '210|210|22155',
	'reset to a time: every message once');
ok($node->wait_for_log(qr/partition \d starts at offset 0 for 2020-01-01 00:00:00(?:\.0+)?\+00, found by reading message timestamps/,
		$log_offset),
	'the log says the broker\'s answer was wrong and how the offset was found');
is($psql->(q{SELECT options->>'start' FROM streamml.streams WHERE name = 'again'}),
	'2020-01-01 00:00:00.000000+00', 'the position is kept as the stream\'s start, as an instant in UTC');

# reset_stream to offsets: partition 0 goes back 5 messages, partition 1
# stays where it is; exactly those 5 are loaded again.
my $p0 = $psql->(q{SELECT next_offset FROM streamml.offsets o
	JOIN streamml.streams s ON s.id = o.stream_id WHERE s.name = 'again' AND partition = 0});
$psql->("TRUNCATE again; SELECT streamml.reset_stream('again', '{\"0\": " . ($p0 - 5) . "}')");
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM again', '5'),
	'reset to offsets loads what follows the given offset');
sleep 1;
is($psql->(q{SELECT count(*), count(DISTINCT id) FROM again}), '5|5',
	'only the 5 messages of partition 0 after its new offset, once each');
is($psql->(q{SELECT sum(next_offset) FROM streamml.offsets o JOIN streamml.streams s ON s.id = o.stream_id
	WHERE s.name = 'again'}), '210', 'both partitions end where they were');

$node->stop;
is($broker->stop, 0, 'broker stopped cleanly');
done_testing();
