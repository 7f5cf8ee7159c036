# The outcome writer's per-backend cache of which models have 'error'
# monitors (src/monitor/monitorobserve.c): a stream worker loads labels of
# a model without monitors (it caches "none" and runs no monitor statement),
# then a monitor is created from another session: the worker's next batches
# feed it, every outcome of them; after drop_monitor and a new monitor, the
# new one is fed too.  Broken invalidation shows as a monitor that observes
# nothing.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { labels => 1 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('monitor_cache');
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE train AS SELECT (i % 10)::float8 AS x, (i % 10) * 2.0 + 1 AS y
	  FROM generate_series(1, 200) i;
	SELECT count(*) FROM streamml.train_linreg('mc', 'train', 'y', ARRAY['x']);
	CREATE TABLE rows (id int PRIMARY KEY, x float8);
	SELECT streamml.create_scorer('rows_mc', 'rows', 'mc', '{"into": "preds"}');
	INSERT INTO rows SELECT i, i % 10 FROM generate_series(1, 3000) i;
	CREATE TABLE labels (id int, y float8);
	SELECT streamml.track_outcomes('rows_mc', 'labels', '{"actual": "y"}');
	SELECT streamml.create_stream('labels', 'labels', '$bootstrap', 'labels', 'json',
		'{"batch_size": 100, "flush_ms": 20}');
});

sub label_msgs
{
	my @ids = @_;
	return [ map { [ "k$_", sprintf('{"id": %d, "y": %d}', $_, ($_ % 10) * 2 + 1) ] } @ids ];
}

# 1. no monitor: the worker learns that the model has none
ok(produce($bootstrap, 'labels', label_msgs(1 .. 1000)), 'produced 1000 labels');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM streamml.outcomes', '1000'),
	'1000 outcomes without a monitor');

# 2. a monitor created by another backend is fed by the worker's next batches
$node->safe_psql('postgres',
	q{SELECT streamml.create_monitor('mc_err', 'mc', 'error', '{"action": "log"}')});
ok(produce($bootstrap, 'labels', label_msgs(1001 .. 2000)), 'produced 1000 more labels');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM streamml.outcomes', '2000'),
	'2000 outcomes');
is($node->safe_psql('postgres',
	q{SELECT observed FROM streamml.monitors WHERE name = 'mc_err'}), '1000',
	'the new monitor observed every outcome after its creation');

# 3. dropped and created again: the new monitor is fed as well
$node->safe_psql('postgres', q{
	SELECT streamml.drop_monitor('mc_err');
	SELECT streamml.create_monitor('mc_err2', 'mc', 'error', '{"action": "log"}');
});
ok(produce($bootstrap, 'labels', label_msgs(2001 .. 2500)), 'produced 500 more labels');
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM streamml.outcomes', '2500'),
	'2500 outcomes');
is($node->safe_psql('postgres',
	q{SELECT observed FROM streamml.monitors WHERE name = 'mc_err2'}), '500',
	'the monitor created after a drop observed every later outcome');

$node->stop;
$broker->stop;
done_testing();
