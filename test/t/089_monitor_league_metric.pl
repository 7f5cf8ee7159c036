# A monitor's deploy_metric reaches a league model's retrain as the
# league's metric.  A league takes no deploy_metric option: the monitor
# passed it under that name, and every retrain of a league model by a
# monitor with deploy_metric failed (a monitor_error event), while
# create_monitor had accepted it.  Here a 'rows' monitor retrains a league
# with deploy_metric 'mae': the retrain finishes, its leaderboard ranks by
# mae, and the model's stored options are left as they were.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('monitor_league_metric');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE src (id int PRIMARY KEY, ts timestamptz NOT NULL, x1 float8, x2 float8, y float8);
	INSERT INTO src SELECT i, '2026-01-01'::timestamptz + i * interval '1 second', i % 7, i % 5,
		   2 * (i % 7) + (i % 5) + (i % 3) * 0.1
	  FROM generate_series(1, 300) i;
	SELECT count(*) FROM streamml.train_league('lm', 'src', 'y', ARRAY['x1', 'x2'],
		'{"order_by": "ts", "threads": 1, "candidates": ["elasticnet", "tree"]}');
	INSERT INTO src SELECT i, '2026-01-01'::timestamptz + i * interval '1 second', i % 7, i % 5,
		   2 * (i % 7) + (i % 5) + (i % 3) * 0.1
	  FROM generate_series(301, 400) i;
});
is($node->safe_psql('postgres', q{SELECT DISTINCT metric FROM streamml.leaderboard WHERE model = 'lm'}),
	'rmse', 'the league ranked by its default metric');
# a metric of another task is refused at creation
my ($rc, $out, $err) = $node->psql('postgres', q{
	SELECT streamml.create_monitor('lm_bad', 'lm', 'rows',
		'{"min_rows": 50, "interval": "1 second", "action": "retrain", "deploy_metric": "roc_auc"}')});
like($err, qr/option "deploy_metric" names an unknown metric: "roc_auc"/,
	'create_monitor refuses a deploy_metric of another task');
$node->safe_psql('postgres', q{
	SELECT streamml.create_monitor('lm_rows', 'lm', 'rows',
		'{"min_rows": 50, "interval": "1 second", "cooldown": "1 hour", "action": "retrain",
		  "deploy_metric": "mae"}');
});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM streamml.model_events
	   WHERE model = 'lm' AND event IN ('retrain_finished', 'monitor_error')}),
	'the monitor retrained the league');
is($node->safe_psql('postgres', q{
	SELECT string_agg(event, ',' ORDER BY id) FROM streamml.model_events
	 WHERE model = 'lm' AND event IN ('retrain_started', 'retrain_finished', 'monitor_error')}),
	'retrain_started,retrain_finished', 'the retrain finished, no monitor_error');
is($node->safe_psql('postgres', q{SELECT DISTINCT metric FROM streamml.leaderboard WHERE model = 'lm'}),
	'mae', "the retrain's leaderboard ranks by the monitor's deploy_metric");
is($node->safe_psql('postgres', q{
	SELECT options ? 'deploy_metric', options ? 'metric' FROM streamml.models WHERE name = 'lm'}),
	'f|f', "the model's stored options are as they were");

$node->stop;
done_testing();
