# The main job end to end, as the demo runs it: trades go through Kafka
# into a table by a stream, windowed features are computed over them, a
# logistic model is trained on the streamed rows and recovers the hidden
# coefficients, predict_proba() serves it, and predictions are published
# back to Kafka with produce().
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce consume);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { trades => 2, predictions => 1 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('pipeline');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE trades (
		id bigint PRIMARY KEY,
		symbol text NOT NULL,
		ts timestamptz NOT NULL,
		price float8 NOT NULL CHECK (price > 0),
		label int,
		features float8[]
	);
});

# Trades whose label follows a known logistic model of three features,
# drawn with a fixed seed: 2 symbols, one price each rising by one cent.
srand(7);
my $n = 4000;
my @messages;
my %price = (A => 100, B => 200);
for my $i (1 .. $n)
{
	my $sym = $i % 2 ? 'A' : 'B';
	my @f = map { rand() * 2 - 1 } 1 .. 3;
	my $z = 2 * $f[0] - 1 * $f[1] + 0.5 * $f[2];
	my $label = rand() < 1 / (1 + exp(-$z)) ? 1 : 0;
	$price{$sym} += 0.01;
	push @messages,
	  [
		$sym,
		sprintf('{"id": %d, "symbol": "%s", "ts": %d, "price": %.2f, '
			  . '"label": %d, "features": [%.6f, %.6f, %.6f]}',
			$i, $sym, 1700000000 + $i, $price{$sym}, $label, @f)
	  ];
}
push @messages, [ 'A', '{"id": 99999, "symbol": "A", "ts": 1, "price": -1}' ];
ok(produce($bootstrap, 'trades', \@messages), "produced $n trades and one bad one");

$node->safe_psql('postgres', qq{
	SELECT streamml.create_stream('trades', 'trades', '$bootstrap', 'trades', 'json',
		'{"workers": 2, "flush_ms": 20}')
});
ok( $node->poll_query_until('postgres', q{
			SELECT (SELECT count(*) FROM trades)
				 + (SELECT count(*) FROM streamml.dead_letters)
		}, $n + 1),
	'every message reached the table or the dead letters');
is($node->safe_psql('postgres', 'SELECT count(*) FROM trades'), $n, "$n trades loaded");
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM streamml.dead_letters WHERE error LIKE '%trades_price_check%'}),
	'1', 'the negative price is a dead letter');

# Features over the streamed rows: trade 4000 is symbol B's 2000th, at
# 220.00, so its 10-row moving average is the mean of 219.91 .. 220.00.
is( $node->safe_psql('postgres', q{
		SELECT round(ma::numeric, 4) FROM (
			SELECT id, streamml.rolling_mean(price)
					 OVER (PARTITION BY symbol ORDER BY ts ROWS 9 PRECEDING) AS ma
			  FROM trades) f
		 WHERE id = 4000}),
	'219.9550', 'moving average per symbol over the streamed rows');

# Training on the streamed rows recovers the hidden coefficients.
my $trained = $node->safe_psql('postgres', q{
	SELECT rows_used, converged
	  FROM streamml.train_logreg('signal', 'trades', 'label', ARRAY['features'])});
is($trained, "$n|t", 'trained on every streamed row and converged');
my %coef = split /[|\n]/, $node->safe_psql('postgres', q{
	SELECT feature, coefficient FROM streamml.coefficients WHERE model = 'signal'});
cmp_ok(abs($coef{'features[1]'} - 2), '<', 0.4, 'coefficient 1 near 2');
cmp_ok(abs($coef{'features[2]'} + 1), '<', 0.4, 'coefficient 2 near -1');
cmp_ok(abs($coef{'features[3]'} - 0.5), '<', 0.4, 'coefficient 3 near 0.5');

# Serving: predict_proba agrees with the coefficients written out by hand.
is( $node->safe_psql('postgres', q{
		WITH c AS (SELECT feature, coefficient FROM streamml.coefficients
					WHERE model = 'signal')
		SELECT count(*) FROM trades t
		 WHERE abs(streamml.predict_proba('signal', t.features)
				 - 1 / (1 + exp(-((SELECT coefficient FROM c WHERE feature = '(intercept)')
					+ (SELECT coefficient FROM c WHERE feature = 'features[1]') * t.features[1]
					+ (SELECT coefficient FROM c WHERE feature = 'features[2]') * t.features[2]
					+ (SELECT coefficient FROM c WHERE feature = 'features[3]') * t.features[3]))))
			   > 1e-9}),
	'0', 'predict_proba equals the logistic function of the coefficients');

# Predictions go back to Kafka.
is( $node->safe_psql('postgres', qq{
		SELECT count(streamml.produce('$bootstrap', 'predictions',
				json_build_object('id', id,
					'p', round(streamml.predict_proba('signal', features)::numeric, 3))::text,
				symbol))
		  FROM trades WHERE id > $n - 5}),
	'5', 'five predictions produced from SQL');
my @published = consume($bootstrap, 'predictions', 5);
is(scalar @published, 5, 'five predictions read back from Kafka');
like($published[0]{value}, qr/^\{"id" : \d+, "p" : 0\.\d+\}$/, 'a prediction is JSON');

$node->stop;
$broker->stop;
done_testing();
