# What each backend caches for feature tables and scorers follows what other
# backends change and commit.  One session keeps loading rows (so it holds
# cached partition states and cached definitions) while other sessions:
# truncate the source (the feature table follows; the loading session's
# states must start over, not go on from the rows truncated away), try to
# give the feature table's owner's objects to another role (refused: the
# loading session goes on as the owner), and set a scorer's challengers
# (the loading session's next statement must shadow-score them).
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('caches');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE ROLE alice;
	CREATE ROLE bob;
	GRANT CREATE ON SCHEMA public TO alice, bob;
	CREATE TABLE src (id int PRIMARY KEY, s text, ts int, v float8);
	GRANT SELECT, INSERT, TRUNCATE, TRIGGER ON src TO alice;
	SET ROLE alice;
	SELECT streamml.create_feature_table('f', 'src', $${
	  "partition_by": "s", "order_by": "ts", "keep": ["id", "s", "ts", "v"],
	  "features": {"l": {"fn": "lag", "of": "v"},
				   "m": {"fn": "mean", "of": "v", "preceding": 3},
				   "c": {"fn": "count", "range": 100}}}$$);
	RESET ROLE;
	GRANT SELECT, INSERT, TRUNCATE, TRIGGER ON src TO bob;
	-- feature rows against feature_sql: rows, mismatches
	CREATE FUNCTION check_f() RETURNS text LANGUAGE plpgsql AS $f$
	DECLARE
		n bigint;
		bad bigint;
	BEGIN
		EXECUTE 'SELECT count(*), count(*) FILTER (WHERE (t.l, t.m, t.c) IS DISTINCT FROM (r.l, r.m, r.c))
				   FROM f t JOIN (' || streamml.feature_sql('f') || ') r USING (id)' INTO n, bad;
		RETURN n || ' rows, ' || bad || ' mismatches';
	END $f$;
});

my $loader = $node->background_psql('postgres');
# rows id from .. to, two partitions, ts = id
my $insert = sub {
	my ($from, $to) = @_;
	return "INSERT INTO src SELECT i, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, i, i * 1.5 "
	  . "FROM generate_series($from, $to) i";
};

# The loading session caches states of both partitions.
$loader->query_safe($insert->(1, 40));
$loader->query_safe($insert->(41, 60));
is($node->safe_psql('postgres', 'SELECT check_f()'), '60 rows, 0 mismatches',
	'the loading session gives every row its features');

# Another session truncates the source and loads new rows.
$node->safe_psql('postgres', 'TRUNCATE src; ' . $insert->(1001, 1010));
is($node->safe_psql('postgres', 'SELECT count(*), min(id), max(arrival_seq) FROM f'),
	'10|1001|5', 'TRUNCATE of the source truncated the feature table; the partitions started over');

# The loading session's next rows follow those, not the truncated ones.
$loader->query_safe($insert->(1011, 1020));
is($node->safe_psql('postgres', 'SELECT check_f()'), '20 rows, 0 mismatches',
	'a session that cached states before the TRUNCATE rebuilt them');
is($node->safe_psql('postgres', 'SELECT l, arrival_seq FROM f WHERE id = 1011'),
	'1513.5|6', 'its first row after the TRUNCATE lags the other session\'s row, not a truncated one');

# A TRUNCATE rolled back in another session changes nothing.
$node->safe_psql('postgres', 'BEGIN; TRUNCATE src; ' . $insert->(2001, 2004) . '; ROLLBACK');
$loader->query_safe($insert->(1021, 1024));
is($node->safe_psql('postgres', 'SELECT check_f()'), '24 rows, 0 mismatches',
	'a rolled-back TRUNCATE elsewhere leaves the states as they were');

# REASSIGN OWNED in another session is refused (a feature table acts as
# its owner by itself): the catalog and the loading session's cached
# definition still name alice, and the loading session goes on as her.
my ($rc, $out, $err) = $node->psql('postgres', 'REASSIGN OWNED BY alice TO bob');
like($err, qr/cannot reassign feature table "f" to role "bob"/,
	'REASSIGN OWNED of the feature table\'s owner is refused');
is($node->safe_psql('postgres', q{SELECT owner FROM streamml.feature_tables_catalog WHERE name = 'f'}),
	'alice', 'the catalog names the owner still');
$loader->query_safe($insert->(1025, 1030));
is($node->safe_psql('postgres', 'SELECT check_f()'), '30 rows, 0 mismatches',
	'the loading session goes on writing the features as alice');

# A scorer on the feature table; another session sets its challengers: the
# loading session's next statement shadow-scores them.
$node->safe_psql('postgres', q{
	CREATE TABLE train AS SELECT i AS id, sin(i)::float8 AS l, cos(i)::float8 AS m,
		(sin(i) + cos(i * 1.3)) > 0 AS y FROM generate_series(1, 300) i;
	SELECT count(*) FROM streamml.train_logreg('champ', 'train', 'y', ARRAY['l', 'm']);
	SELECT count(*) FROM streamml.train_logreg('chall', 'train', 'y', ARRAY['l']);
	SELECT streamml.create_scorer('sc', 'f', 'champ', '{"into": "preds", "key": "id"}');
});
$loader->query_safe($insert->(1101, 1104));
is($node->safe_psql('postgres', 'SELECT role, count(*) FROM preds GROUP BY role ORDER BY role'),
	'champion|4', 'the loading session scores with the champion');
$node->safe_psql('postgres', q{SELECT streamml.set_challengers('sc', ARRAY['chall'])});
$loader->query_safe($insert->(1105, 1108));
is($node->safe_psql('postgres', 'SELECT role, count(*) FROM preds GROUP BY role ORDER BY role'),
	"challenger|4\nchampion|8", 'its next statement shadow-scores the challenger set elsewhere');
$node->safe_psql('postgres', q{SELECT streamml.promote('sc', 'chall')});
$loader->query_safe($insert->(1109, 1110));
is($node->safe_psql('postgres',
	q{SELECT model, role, count(*) FROM preds WHERE id > 1108 GROUP BY 1, 2 ORDER BY 1, 2}),
	'chall|champion|2', 'and follows a promotion made elsewhere (the former champion is not kept)');

$loader->quit;
done_testing();
