# The whole chain under kill -9: a 2-worker stream loads trades, a feature
# table computes each trade's 9 windowed features, a scorer scores each
# features row with a per-symbol logistic model, all in the transaction
# that loads the batch with its Kafka offsets.  The postmaster is killed -9
# three times during the load.  After recovery count(trades) =
# count(features) = count(predictions) = the messages produced, the
# predictions' keys are the trades' keys, every feature equals
# feature_sql's window query (the states rebuilt after each crash gave the
# next rows exactly the features they would have had) and every prediction
# equals streamml.predict_proba of its features.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);
use StreamML::Trades;

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { trades => 2 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $nsym = 20;
my $node = streamml_node('chain');
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE trades (id bigint PRIMARY KEY, symbol text, ts timestamptz,
						 price float8, notional float8);
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
	-- a per-symbol logistic model of three of the features
	CREATE TABLE train AS
	SELECT 'S' || lpad((i % $nsym)::text, 2, '0') AS symbol,
		   sin(i) / 100 AS ret_1, cos(i * 1.7) AS momentum, sin(i * 0.3) AS vol_30s,
		   (sin(i) + 0.5 * cos(i * 1.7) + ((i * 7919) % 1000) / 1000.0 - 0.5) > 0 AS up
	  FROM generate_series(1, 4000) i;
	SELECT count(*) FROM streamml.train_logreg('up', 'train', 'up',
		ARRAY['ret_1', 'momentum', 'vol_30s'], '{"group_by": "symbol"}');
	SELECT streamml.create_scorer('features_up', 'features', 'up',
		'{"into": "preds", "key": "id"}');
	-- every feature against feature_sql: rows compared, mismatches
	CREATE FUNCTION check_features(ft text) RETURNS text LANGUAGE plpgsql AS \$f\$
	DECLARE
		f text;
		n bigint;
		bad bigint := 0;
		total bigint;
	BEGIN
		EXECUTE 'CREATE TEMP TABLE ref AS ' || streamml.feature_sql(ft);
		FOR f IN SELECT jsonb_object_keys(spec->'features') FROM streamml.feature_tables_catalog
				 WHERE name = ft LOOP
			EXECUTE format('SELECT count(*) FILTER (WHERE NOT ((t.%1\$I IS NULL AND r.%1\$I IS NULL)
				OR abs(t.%1\$I - r.%1\$I) <= 1e-9 * greatest(abs(t.%1\$I), abs(r.%1\$I))))
				FROM %2\$I t JOIN ref r USING (id)', f, ft) INTO n;
			bad := bad + n;
		END LOOP;
		EXECUTE format('SELECT count(*) FROM %I t JOIN ref r USING (id)', ft) INTO total;
		DROP TABLE ref;
		RETURN total || ' rows, ' || bad || ' mismatches';
	END \$f\$;
	SELECT streamml.create_stream('trades', 'trades', '$bootstrap', 'trades', 'json',
		'{"workers": 2, "batch_size": 300, "flush_ms": 20}');
});

# Each symbol always in the same Kafka partition (so each is loaded in
# order by one worker), prices a random walk, a trade every ~0.4 s, a gap
# longer than the windows now and then, 5% of prices NULL (unscorable rows).
my $trades = StreamML::Trades->new(nsym => $nsym, seed => 54, bootstrap => $bootstrap);

my $per_round = 2500;
for my $round (1 .. 3)
{
	my $before = $trades->total;
	$trades->produce_chunk($per_round);
	$node->poll_query_until('postgres', "SELECT count(*) > $before + 500 FROM preds")
	  or diag('no progress before the crash');
	streamml_kill9($node, "children exited after kill -9 number $round");
	$node->start;
}
$trades->produce_chunk(500);
my $total = $trades->total;
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM preds', $total),
	"all $total trades scored after three crashes");

is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM trades), (SELECT count(*) FROM features),
		   (SELECT count(*) FROM preds), (SELECT count(DISTINCT id) FROM preds)}),
	"$total|$total|$total|$total",
	'count(trades) = count(features) = count(predictions) = messages produced');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM trades t FULL JOIN preds p USING (id)
	 WHERE t.id IS NULL OR p.id IS NULL}), '0', "the predictions' keys are the trades' keys");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM trades t FULL JOIN features f USING (id)
	 WHERE t.id IS NULL OR f.id IS NULL OR f.late}), '0',
	"the features' keys are the trades' keys, none late");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT symbol FROM features GROUP BY symbol
		HAVING min(arrival_seq) <> 1 OR max(arrival_seq) <> count(*)) x}),
	'0', 'arrival_seq numbers each symbol 1..n without gaps');
is($node->safe_psql('postgres', q{SELECT check_features('features')}),
	"$total rows, 0 mismatches", 'every feature equals feature_sql after the crashes');

# Each prediction is the model's for its features row; NULL features: NULL.
my ($scored, $unscorable) = split /\|/, $node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE p.prediction IS NOT NULL),
		   count(*) FILTER (WHERE p.prediction IS NULL) FROM preds p});
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM features f JOIN preds p USING (id)
	 WHERE CASE WHEN f.ret_1 IS NULL OR f.momentum IS NULL OR f.vol_30s IS NULL
				THEN p.prediction IS NOT NULL
				ELSE p.probability IS DISTINCT FROM
					 streamml.predict_proba('up', f.symbol, ARRAY[f.ret_1, f.momentum, f.vol_30s]) END}),
	'0', "every prediction equals predict_proba of its features ($scored scored, $unscorable unscorable)");
ok($scored > $total * 0.8 && $unscorable > 0, 'most rows scorable, the NULL ones not');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT t.xmin FROM trades t JOIN features f USING (id)
		JOIN preds p USING (id) WHERE t.xmin <> f.xmin OR f.xmin <> p.xmin) x}),
	'0', 'each trade, its features and its prediction committed in one transaction');
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamml.dead_letters'), '0',
	'no dead letters');

$node->safe_psql('postgres', q{SELECT streamml.drop_stream('trades')});
$node->stop;
done_testing();
