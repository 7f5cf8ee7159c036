# The chain of issue 10 on Citus (issue 14): a 2-worker stream loads
# trades, a table distributed by symbol; its feature table and the
# scorer's predictions table, made by create_feature_table and
# create_scorer, are distributed like it (colocated by symbol).  The
# stream's loader fires the feature table's trigger on the coordinator's
# shell with each range's rows, the feature table's writer sends the
# features to their shards through Citus and fires the scorer's trigger
# in turn: trades, features, predictions and offsets commit in one
# distributed transaction (two-phase commit).  kill -9 of the coordinator
# twice and of a worker once during the load; after restarts and Citus's
# recovery count(trades) = count(features) = count(predictions) = the
# messages, the keys are equal, every feature equals feature_sql over the
# distributed tables (the window states rebuilt from the distributed
# feature table after each crash), every prediction is predict_proba of
# its features, and the rows are in the shards, not in the shells.
# Users' INSERT and COPY into the distributed source are refused.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use StreamML::TestNode;
use StreamML::Citus;
use StreamML::DevBroker qw(produce);
use StreamML::Trades;

my ($coord, $w1, $w2) = citus_cluster_or_skip('citus_chain');

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { trades => 2 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $nsym = 20;
$coord->safe_psql('postgres', qq{
	CREATE TABLE trades (id bigint, symbol text NOT NULL, ts timestamptz NOT NULL,
						 price float8, notional float8, PRIMARY KEY (symbol, id));
	SELECT create_distributed_table('trades', 'symbol');
	SELECT streamml.create_feature_table('features', 'trades', \$\${
	  "partition_by": "symbol", "order_by": "ts", "keep": ["id", "symbol", "ts", "price"],
	  "features": {
		"lag_1":    {"fn": "lag",        "of": "price", "n": 1},
		"ret_1":    {"fn": "pct_change", "of": "price", "n": 1},
		"momentum": {"fn": "delta",      "of": "price", "n": 3},
		"ma_5":     {"fn": "mean",       "of": "price", "preceding": 5},
		"vol_30s":  {"fn": "stddev_pop", "of": "price", "range": "30 seconds"},
		"vwap_1m":  {"fn": "sum",        "of": "notional", "range": "1 minute"},
		"n_30s":    {"fn": "count",                       "range": "30 seconds"},
		"ewma_10s": {"fn": "ewma",       "of": "price", "half_life": "10 seconds"},
		"trend_20": {"fn": "slope",      "of": "price", "preceding": 19}}}\$\$);
	CREATE TABLE train AS
	SELECT 'S' || lpad((i % $nsym)::text, 2, '0') AS symbol,
		   sin(i) / 100 AS ret_1, cos(i * 1.7) AS momentum, sin(i * 0.3) AS vol_30s,
		   (sin(i) + 0.5 * cos(i * 1.7) + ((i * 7919) % 1000) / 1000.0 - 0.5) > 0 AS up
	  FROM generate_series(1, 4000) i;
	SELECT count(*) FROM streamml.train_logreg('up', 'train', 'up',
		ARRAY['ret_1', 'momentum', 'vol_30s'], '{"group_by": "symbol"}');
	SELECT streamml.create_scorer('features_up', 'features', 'up',
		'{"into": "preds", "key": ["symbol", "id"]}');
	SELECT streamml.create_stream('trades', 'trades', '$bootstrap', 'trades', 'json',
		'{"workers": 2, "batch_size": 300, "flush_ms": 20}');
});

is($coord->safe_psql('postgres', q{
	SELECT string_agg(logicalrelid::text || ':' || partmethod::text || ':' ||
		   column_to_column_name(logicalrelid, partkey), ' ' ORDER BY logicalrelid::text)
	  FROM pg_dist_partition WHERE logicalrelid::text IN ('trades', 'features', 'preds')}),
	'features:h:symbol preds:h:symbol trades:h:symbol',
	'the feature table and the predictions table are distributed by symbol like trades');
is($coord->safe_psql('postgres', q{
	SELECT count(DISTINCT colocationid) FROM pg_dist_partition
	 WHERE logicalrelid::text IN ('trades', 'features', 'preds')}),
	'1', 'and colocated with it');

# Outcome trackers do not run over Citus tables yet: a clear refusal.
my ($rc, $out, $err) = $coord->psql('postgres', q{
	CREATE TABLE labels (id bigint, symbol text, up bool);
	SELECT streamml.track_outcomes('features_up', 'labels', '{"key": ["symbol", "id"], "actual": "up"}')});
like($err, qr/cannot track the outcomes of scorer "features_up": table "preds" is a Citus table/,
	'tracking the outcomes of a Citus predictions table is refused');

# Users' writes into the distributed source would skip the features.
($rc, $out, $err) = $coord->psql('postgres',
	q{INSERT INTO trades VALUES (0, 'S00', now(), 1, 1)});
like($err, qr/cannot insert into table "trades": it is a Citus table that feeds a pg_streamml feature table.*HINT:  Load the table with a pg_streamml stream/s,
	'INSERT into the distributed source is refused, with the way out');
($rc, $out, $err) = $coord->psql('postgres', q{COPY trades FROM STDIN});
like($err, qr/cannot copy into table "trades"/, 'COPY into it too');
($rc, $out, $err) = $coord->psql('postgres',
	q{WITH x AS (DELETE FROM trades RETURNING id) SELECT count(*) FROM x});
like($err, qr/cannot delete from table "trades"/, 'a DELETE in a WITH too');

# Each symbol always in the same Kafka partition (so each is loaded in
# order by one worker), prices a random walk, 5% of prices NULL.
my $trades = StreamML::Trades->new(nsym => $nsym, seed => 68, bootstrap => $bootstrap);

# kill -9 of a node in the middle of the load, its restart, and Citus's
# recovery of the prepared transactions.
sub crash
{
	my ($node, $what, $before) = @_;
	$coord->poll_query_until('postgres', "SELECT count(*) > $before + 300 FROM preds")
	  or diag('no progress before the crash');
	diag('kill -9 of the ' . $what . ' with '
		  . $coord->safe_psql('postgres', 'SELECT count(*) FROM preds')
		  . " of " . $trades->total . " trades scored");
	streamml_kill9($node, "children exited after kill -9 of the $what");
	sleep 1;
	$node->start;
	$coord->poll_query_until('postgres', 'SELECT recover_prepared_transactions() >= 0')
	  or diag('recover_prepared_transactions failed');
}

my $per_round = 2000;
for my $victim ([ $coord, 'coordinator' ], [ $w1, 'worker node' ], [ $coord, 'coordinator' ])
{
	my $before = $trades->total;
	$trades->produce_chunk($per_round);
	crash(@$victim, $before);
}
$trades->produce_chunk(300);
my $total = $trades->total;
ok($coord->poll_query_until('postgres', 'SELECT count(*) FROM preds', $total),
	"all $total trades scored after the crashes");
$coord->safe_psql('postgres', 'SELECT recover_prepared_transactions()');

is($coord->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM trades), (SELECT count(*) FROM features),
		   (SELECT count(*) FROM preds), (SELECT count(DISTINCT id) FROM preds)}),
	"$total|$total|$total|$total",
	'count(trades) = count(features) = count(predictions) = messages produced');

# The distributed tables copied to the coordinator, compared there.
$coord->safe_psql('postgres', q{
	CREATE TABLE t_copy AS SELECT * FROM trades;
	CREATE TABLE f_copy AS SELECT * FROM features;
	CREATE TABLE p_copy AS SELECT * FROM preds;
	CREATE TABLE ref AS SELECT * FROM trades LIMIT 0;
});
$coord->safe_psql('postgres', q{
	DO $$ BEGIN
		EXECUTE 'DROP TABLE ref; CREATE TABLE ref AS ' || streamml.feature_sql('features');
	END $$});
is($coord->safe_psql('postgres', q{
	SELECT count(*) FROM t_copy t FULL JOIN p_copy p USING (id)
	 WHERE t.id IS NULL OR p.id IS NULL}), '0', "the predictions' keys are the trades' keys");
is($coord->safe_psql('postgres', q{
	SELECT count(*) FROM t_copy t FULL JOIN f_copy f USING (id)
	 WHERE t.id IS NULL OR f.id IS NULL OR f.late}), '0',
	"the features' keys are the trades' keys, none late");
is($coord->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT symbol FROM f_copy GROUP BY symbol
		HAVING min(arrival_seq) <> 1 OR max(arrival_seq) <> count(*)) x}),
	'0', 'arrival_seq numbers each symbol 1..n without gaps');
my @features = qw(lag_1 ret_1 momentum ma_5 vol_30s vwap_1m n_30s ewma_10s trend_20);
my $mismatch = join ' + ', map {
	"count(*) FILTER (WHERE NOT ((f.$_ IS NULL AND r.$_ IS NULL) OR "
	  . "abs(f.$_ - r.$_) <= 1e-9 * greatest(abs(f.$_), abs(r.$_))))"
} @features;
is($coord->safe_psql('postgres',
		"SELECT count(*) || ' rows, ' || ($mismatch) || ' mismatches' FROM f_copy f JOIN ref r USING (id)"),
	"$total rows, 0 mismatches",
	'every feature equals feature_sql over the distributed trades after the crashes');
my ($scored, $unscorable) = split /\|/, $coord->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE prediction IS NOT NULL),
		   count(*) FILTER (WHERE prediction IS NULL) FROM p_copy});
is($coord->safe_psql('postgres', q{
	SELECT count(*) FROM f_copy f JOIN p_copy p USING (id)
	 WHERE CASE WHEN f.ret_1 IS NULL OR f.momentum IS NULL OR f.vol_30s IS NULL
				THEN p.prediction IS NOT NULL
				ELSE p.probability IS DISTINCT FROM
					 streamml.predict_proba('up', f.symbol, ARRAY[f.ret_1, f.momentum, f.vol_30s]) END}),
	'0', "every prediction equals predict_proba of its features ($scored scored, $unscorable unscorable)");
ok($scored > $total * 0.8 && $unscorable > 0, 'most rows scorable, the NULL ones not');

is($coord->safe_psql('postgres',
		q{SELECT pg_relation_size('trades') + pg_relation_size('features') + pg_relation_size('preds')}),
	'0', "the coordinator's shells hold no row");
is($coord->safe_psql('postgres', q{
	SELECT sum(result::bigint) FROM run_command_on_shards('features', $$SELECT count(*) FROM %s$$)}),
	$total, 'the shards of the feature table hold every features row');
is($coord->safe_psql('postgres',
		"SELECT sum(next_offset) FROM streamml.offsets o JOIN streamml.streams s ON s.id = o.stream_id WHERE s.name = 'trades'"),
	$total, 'the stored offsets cover every message, no more');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM streamml.dead_letters'), '0',
	'no dead letters');
for my $n ([ $coord, 'coordinator' ], [ $w1, 'worker that crashed' ], [ $w2, 'other worker' ])
{
	is($n->[0]->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0',
		"no prepared transaction is left on the $n->[1]");
}

$coord->safe_psql('postgres', q{SELECT streamml.drop_stream('trades')});
$broker->stop;
done_testing();
