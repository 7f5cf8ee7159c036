# A database with a feature table and a scorer survives pg_dump and
# pg_restore into another database: the restored tables have new oids, and
# the triggers on the source find their feature table by its name in the
# catalog, so loading into the restored source computes features and
# predictions as before (inserts, a DELETE, an UPDATE refused, a TRUNCATE).
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('dump_restore');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE ticks (id bigint PRIMARY KEY, sym text NOT NULL, ts timestamptz NOT NULL, price float8);
	SELECT streamml.create_feature_table('tick_f', 'ticks', '{"partition_by": "sym", "order_by": "ts",
		"features": {"lag_1": {"fn": "lag", "of": "price", "n": 1},
		             "ma_3": {"fn": "mean", "of": "price", "preceding": 2}}}');
	INSERT INTO ticks SELECT i, 's' || i % 3, '2026-01-01'::timestamptz + i * interval '1 s', 100 + sin(i)
	  FROM generate_series(1, 300) i;
	SELECT count(*) FROM streamml.train_linreg('next', 'tick_f', 'price', ARRAY['lag_1', 'ma_3']);
	SELECT streamml.create_scorer('tick_s', 'tick_f', 'next', '{"key": "id"}');
	INSERT INTO ticks SELECT i, 's' || i % 3, '2026-01-01'::timestamptz + i * interval '1 s', 100 + sin(i)
	  FROM generate_series(301, 400) i;
});

my $dump = PostgreSQL::Test::Utils::tempdir() . '/db.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ],
	'pg_dump of the database');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('restored'), $dump ],
	'pg_restore into another database');
isnt($node->safe_psql('restored', q{SELECT 'tick_f'::regclass::oid}),
	$node->safe_psql('postgres', q{SELECT 'tick_f'::regclass::oid}),
	'the restored feature table has another oid');

# loading into the restored source: features and predictions as before
$node->safe_psql('restored', q{
	INSERT INTO ticks SELECT i, 's' || i % 3, '2026-01-01'::timestamptz + i * interval '1 s', 100 + sin(i)
	  FROM generate_series(401, 500) i;
});
is($node->safe_psql('restored', q{
	SELECT (SELECT count(*) FROM ticks), (SELECT count(*) FROM tick_f),
		   (SELECT count(*) FROM tick_s WHERE id > 300), (SELECT count(prediction) FROM tick_s WHERE id > 400)}),
	'500|500|200|100', 'every restored and new row has its features, every new one its prediction');
is($node->safe_psql('restored', q{
	SELECT count(*) FROM tick_f f JOIN (SELECT id,
		lag(price) OVER w AS lag_1, avg(price) OVER (w ROWS 2 PRECEDING) AS ma_3
		FROM ticks WINDOW w AS (PARTITION BY sym ORDER BY ts)) q USING (id)
	 WHERE f.id > 400 AND (f.lag_1 IS DISTINCT FROM q.lag_1 OR abs(f.ma_3 - q.ma_3) > 1e-9)}),
	'0', 'the new rows\' features continue the restored partitions');
my ($rc, $out, $err) = $node->psql('restored', q{UPDATE ticks SET price = 0 WHERE id = 1});
like($err, qr/cannot change column "price" of table "ticks": feature table "tick_f" keeps it/,
	'an UPDATE of a kept column is refused, naming the feature table');
$node->safe_psql('restored', q{DELETE FROM tick_s WHERE id IN (SELECT id FROM ticks WHERE id > 490);
	DELETE FROM ticks WHERE id > 490});
is($node->safe_psql('restored', q{SELECT count(*) FROM tick_f}), '490',
	'a DELETE deletes the feature rows');
$node->safe_psql('restored', q{TRUNCATE ticks CASCADE});
is($node->safe_psql('restored', q{SELECT count(*) FROM tick_f}), '0', 'a TRUNCATE truncates them');

# the original database is untouched
is($node->safe_psql('postgres', q{SELECT count(*) FROM tick_f}), '400', 'the original keeps its rows');

$node->stop;
done_testing();
