# Streams run with their owner's rights, never a superuser's: a
# non-superuser owner, row-level security (rows a policy rejects become dead
# letters), triggers see the owner as current_user, a revoked INSERT stops
# the stream with a permission error until it is granted again (nothing
# lost, no dead letters), create_stream needs INSERT on the target, other
# users cannot read a stream's options, and odd names cannot inject SQL.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { pay => 2, 'odd.topic' => 1 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('security');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	GRANT CREATE ON SCHEMA public TO alice, bob;
});
my $as = sub {
	my ($user, $sql) = @_;
	return $node->safe_psql('postgres', "SET ROLE $user; $sql");
};

# alice's table: RLS forced on its owner, a trigger stamping current_user.
$as->('alice', qq{
	CREATE TABLE pay (id int PRIMARY KEY, amount numeric, who text);
	ALTER TABLE pay ENABLE ROW LEVEL SECURITY;
	ALTER TABLE pay FORCE ROW LEVEL SECURITY;
	CREATE POLICY pay_visible ON pay FOR SELECT USING (true);
	CREATE POLICY pay_positive ON pay FOR INSERT WITH CHECK (amount >= 0);
	CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN NEW.who := current_user; RETURN NEW; END \$\$;
	CREATE TRIGGER stamp BEFORE INSERT ON pay FOR EACH ROW EXECUTE FUNCTION stamp();
	SELECT streamml.create_stream('pay', 'pay', '$bootstrap', 'pay', 'json',
		'{"kafka": {"sasl.username": "alice", "sasl.password": "s3cret"}}');
});
is($node->safe_psql('postgres', q{SELECT pg_get_userbyid(owner) FROM streamml.streams WHERE name = 'pay'}),
	'alice', 'the caller owns the stream');

ok(produce($bootstrap, 'pay', [ map {
	qq({"id": $_, "amount": ) . ($_ % 10 == 0 ? -$_ : $_) . '}' } 1 .. 100 ]),
	'produced 100 payments, 10 of them negative');
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM pay) + (SELECT count(*) FROM streamml.dead_letters)}, '100'),
	'every payment is in the table or a dead letter');
is($node->safe_psql('postgres', q{SELECT count(*), sum(amount), string_agg(DISTINCT who, ',') FROM pay}),
	'90|4500|alice', 'rows the policy accepts are loaded, and the trigger ran as alice');
is($node->safe_psql('postgres', q{
	SELECT count(*), bool_and(error LIKE 'new row violates row-level security policy for table "pay"')
	FROM streamml.dead_letters WHERE stream = 'pay'}),
	'10|t', 'rows the policy rejects are dead letters that say why');

# Revoking INSERT stops the stream with a permission error, no dead letters.
$as->('alice', 'REVOKE INSERT ON pay FROM alice');
ok(produce($bootstrap, 'pay', [ map { qq({"id": $_, "amount": 1}) } 101 .. 120 ]),
	'produced 20 more while INSERT is revoked');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM streamml.stream_stats
	WHERE stream = 'pay' AND last_error LIKE 'permission denied for table pay%'}),
	'stream_stats shows the permission error');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM pay), (SELECT count(*) FROM streamml.dead_letters)}),
	'90|10', 'nothing loaded and no dead letters while INSERT is revoked');
$as->('alice', 'GRANT INSERT ON pay TO alice');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM pay', '110'),
	'the stream resumes after GRANT');
is($node->safe_psql('postgres', q{
	SELECT count(DISTINCT id), sum(id) FILTER (WHERE id > 100), (SELECT count(*) FROM streamml.dead_letters)
	FROM pay}),
	'110|2210|10', 'nothing lost or loaded twice across the revoke');

# create_stream needs INSERT on the target; only the owner manages a stream.
my ($rc, $out, $err) = $node->psql('postgres', qq{SET ROLE bob;
	SELECT streamml.create_stream('bobs', 'pay', '$bootstrap', 'pay')});
like($err, qr/permission denied for table pay/, 'create_stream without INSERT on the target fails');
($rc, $out, $err) = $node->psql('postgres', q{SET ROLE bob; SELECT streamml.stop_stream('pay')});
like($err, qr/must be owner of stream "pay"/, 'another user cannot stop the stream');

# Other users do not see the stream, its options (passwords) or its offsets.
is($as->('bob', q{SELECT count(*) FROM streamml.streams}), '0', 'bob sees no streams of alice');
is($as->('bob', q{SELECT count(*) FROM streamml.offsets}), '0', 'nor their offsets');
is($as->('bob', q{SELECT count(*) FROM streamml.stream_stats}), '0', 'nor their statistics');
is($as->('bob', q{SELECT count(*) FROM streamml.dead_letters}), '0', 'nor their dead letters');
is($as->('alice', q{SELECT options->'kafka'->>'sasl.password' FROM streamml.streams}), 's3cret',
	'the owner sees her options');
($rc, $out, $err) = $node->psql('postgres',
	q{SET ROLE bob; UPDATE streamml.streams SET owner = 'bob'::regrole});
like($err, qr/permission denied for table streams/, 'nobody writes the catalog directly');

# Odd names: quotes, spaces, semicolons in stream, table and column names.
my $stream = q{it's a "stream"; DROP TABLE pay; --};
(my $stream_sql = $stream) =~ s/'/''/g;
$as->('alice', qq{
	CREATE TABLE "we""ird tab; x" ("i d" int, "na'me" text, "Sel""ect" text);
	ALTER TABLE "we""ird tab; x" ENABLE ROW LEVEL SECURITY;
	ALTER TABLE "we""ird tab; x" FORCE ROW LEVEL SECURITY;
	CREATE POLICY "p'ol" ON "we""ird tab; x" USING (true) WITH CHECK ("i d" > 0);
	SELECT streamml.create_stream('$stream_sql', '"we""ird tab; x"', '$bootstrap', 'odd.topic', 'json',
		'{"columns": {"Sel\\"ect": "\$topic"}}');
});
ok(produce($bootstrap, 'odd.topic', [
	q({"i d": 1, "na'me": "O'Brien; DROP TABLE pay"}), q({"i d": -1, "na'me": "x"}) ]),
	'produced to the odd topic');
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM "we""ird tab; x")
		+ (SELECT count(*) FROM streamml.dead_letters WHERE stream <> 'pay')}, '2'),
	'the odd stream loaded both messages');
is($node->safe_psql('postgres', q{SELECT "i d", "na'me", "Sel""ect" FROM "we""ird tab; x"}),
	q{1|O'Brien; DROP TABLE pay|odd.topic}, 'odd names load as values, not SQL');
is($node->safe_psql('postgres', q{SELECT stream, "offset" FROM streamml.dead_letters WHERE stream <> 'pay'}),
	qq{$stream|1}, 'the row the policy rejects is a dead letter of the odd stream');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pay}), '110', 'pay is still there');
$as->('alice', qq{SELECT streamml.drop_stream('$stream_sql')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM streamml.streams}), '1', 'the odd stream is dropped');

$node->stop;
is($broker->stop, 0, 'broker stopped cleanly');
done_testing();
