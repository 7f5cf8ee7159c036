# streamml.max_stat_slots bounds the live statistics of feature tables and
# scorers as it does those of stream partitions (src/scoring/scorer_stats.c,
# src/scoring/featureinsert.c): with 16 slots, 17 scorers and 17 feature
# tables all work, the 17th of each shows no live statistics, and a drop
# frees a slot for the next.  Before, scorers had 256 fixed slots and
# feature tables 128, whatever the setting.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('stat_slots', conf => "streamml.max_stat_slots = 16\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE train AS SELECT (i % 10)::float8 AS x, (i % 10) * 2.0 + 1 AS y
	  FROM generate_series(1, 200) i;
	SELECT count(*) FROM streamml.train_linreg('m', 'train', 'y', ARRAY['x']);
	DO $$ BEGIN
	FOR i IN 1..17 LOOP
		EXECUTE format('CREATE TABLE r%s (id int PRIMARY KEY, s text, x float8)', i);
		PERFORM streamml.create_scorer('sc' || i, 'r' || i, 'm');
		PERFORM streamml.create_feature_table('f' || i, ('r' || i)::regclass,
			'{"partition_by": "s", "order_by": "id", "features": {"x_mean": {"fn": "mean", "of": "x", "preceding": 2}}}');
		EXECUTE format('INSERT INTO r%s SELECT j, ''a'', j %% 10 FROM generate_series(1, 10) j', i);
	END LOOP;
	END $$;
});

is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE rows_processed = 10) || ' ' || count(*) FILTER (WHERE rows_processed = 0)
	  FROM streamml.scorers}),
	'16 1', 'sixteen scorers have live statistics, the seventeenth none (0)');
like(slurp_file($node->logfile), qr/LOG:  no statistics slot left for scorer \d+: its live counters stay 0/,
	'the server log says why');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE rows_processed = 10) || ' ' || count(*) FILTER (WHERE rows_processed IS NULL)
	  FROM streamml.feature_tables}),
	'16 1', 'likewise the feature tables');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM r17) || ' ' || (SELECT count(prediction) FROM sc17)
	       || ' ' || (SELECT count(x_mean) FROM f17)}),
	'10 10 10', 'the seventeenth scores and keeps its features all the same');

# a drop frees a slot: the next scorer and feature table have statistics
$node->safe_psql('postgres', q{
	SELECT streamml.drop_scorer('sc1');
	SELECT streamml.drop_feature_table('f1');
	CREATE TABLE r18 (id int PRIMARY KEY, s text, x float8);
	SELECT streamml.create_scorer('sc18', 'r18', 'm');
	SELECT streamml.create_feature_table('f18', 'r18',
		'{"partition_by": "s", "order_by": "id", "features": {"x_mean": {"fn": "mean", "of": "x", "preceding": 2}}}');
	INSERT INTO r18 SELECT j, 'a', j % 10 FROM generate_series(1, 5) j;
});
is($node->safe_psql('postgres', q{
	SELECT (SELECT rows_processed FROM streamml.scorers WHERE name = 'sc18') || ' '
	    || (SELECT rows_processed FROM streamml.feature_tables WHERE name = 'f18')}),
	'5 5', 'a dropped one frees its slot');

# slots taken by transactions that rolled back (a feature table and a
# scorer made, loaded with a failing row, and rolled back) are reclaimed
# when the slots run out, not kept until a restart
$node->safe_psql('postgres', q{
	SELECT streamml.drop_scorer('sc' || i) FROM generate_series(2, 17) i;
	SELECT streamml.drop_feature_table('f' || i) FROM generate_series(2, 17) i;
	CREATE TABLE leak (id int PRIMARY KEY, s text, x float8 CHECK (x < 100));
});
for my $i (1 .. 20)
{
	$node->psql('postgres', qq{
		BEGIN;
		SELECT streamml.create_scorer('leak_s$i', 'leak', 'm');
		SELECT streamml.create_feature_table('leak_f$i', 'leak',
			'{"partition_by": "s", "order_by": "id", "features": {"x_mean": {"fn": "mean", "of": "x", "preceding": 2}}}');
		INSERT INTO leak VALUES (1, 'a', 1);
		INSERT INTO leak VALUES (2, 'a', 1000);
		ROLLBACK;});
}
$node->safe_psql('postgres', q{
	CREATE TABLE r19 (id int PRIMARY KEY, s text, x float8);
	SELECT streamml.create_scorer('sc19', 'r19', 'm');
	SELECT streamml.create_feature_table('f19', 'r19',
		'{"partition_by": "s", "order_by": "id", "features": {"x_mean": {"fn": "mean", "of": "x", "preceding": 2}}}');
	INSERT INTO r19 SELECT j, 'a', j % 10 FROM generate_series(1, 7) j;
});
is($node->safe_psql('postgres', q{
	SELECT (SELECT rows_processed FROM streamml.scorers WHERE name = 'sc19') || ' '
	    || (SELECT rows_processed FROM streamml.feature_tables WHERE name = 'f19')}),
	'7 7', 'slots of rolled-back work are reclaimed when the slots run out');

# a live feature table whose last statement rolled back keeps its slot
# when others fill the rest: only a table that no longer exists loses it
$node->safe_psql('postgres', q{
	BEGIN; INSERT INTO r19 VALUES (100, 'a', 1); ROLLBACK;
	DO $$ BEGIN
	FOR i IN 20..40 LOOP
		EXECUTE format('CREATE TABLE r%s (id int PRIMARY KEY, s text, x float8)', i);
		PERFORM streamml.create_feature_table('f' || i, ('r' || i)::regclass,
			'{"partition_by": "s", "order_by": "id", "features": {"x_mean": {"fn": "mean", "of": "x", "preceding": 2}}}');
		EXECUTE format('INSERT INTO r%s VALUES (1, ''a'', 1)', i);
	END LOOP;
	END $$;
});
is($node->safe_psql('postgres', q{
	SELECT rows_processed IS NOT NULL FROM streamml.feature_tables WHERE name = 'f19'}),
	't', 'a live feature table keeps its slot');

$node->stop;
done_testing();
