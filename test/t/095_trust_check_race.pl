# The trust checks (src/trust.c) hold what they checked until the read:
# another role's view checked, then replaced before the read planned it,
# would have run its new functions as the reader.  Mallory holds a lock on
# a table her view reads, so that alice's retrain waits inside its check
# of the view; mallory queues a CREATE OR REPLACE VIEW that calls her
# function, and lets go.  Once the check let the view go, the replacement
# took it first and the retrain read the new view, running mallory's
# function as alice; now the check keeps its lock to the end of the
# retrain's transaction, the retrain reads the view it checked, and the
# replacement waits for it.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('trustrace');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE ROLE alice;
	CREATE ROLE mallory;
	GRANT CREATE ON SCHEMA public TO alice, mallory;
	CREATE TABLE calls (who text);
	GRANT INSERT ON calls TO PUBLIC;
	SET ROLE mallory;
	CREATE FUNCTION spy() RETURNS boolean LANGUAGE plpgsql
		AS $$ BEGIN INSERT INTO public.calls VALUES (current_user); RETURN true; END $$;
	CREATE TABLE d (x float8, y float8);
	INSERT INTO d SELECT i, 2 * i + 1 FROM generate_series(1, 40) i;
	CREATE TABLE gate (g int);
	INSERT INTO gate VALUES (1);
	CREATE VIEW v AS SELECT d.x, d.y FROM d, gate;
	GRANT SELECT ON d, gate, v TO alice;
	RESET ROLE;
	SET ROLE alice;
	SELECT count(*) FROM streamml.train_linreg('m', 'v', 'y', ARRAY['x']);
});

my $gate = $node->background_psql('postgres');
my $victim = $node->background_psql('postgres');
my $swap = $node->background_psql('postgres');

$gate->query_safe("BEGIN");
$gate->query_safe("SET ROLE mallory");
$gate->query_safe("LOCK TABLE gate IN ACCESS EXCLUSIVE MODE");
$victim->query_until(qr/retraining/,
	"\\echo retraining\nSET ROLE alice;\nSELECT rows_used FROM streamml.retrain('m');\n");
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE wait_event_type = 'Lock' AND query LIKE '%retrain%'}),
	"alice's retrain waits inside its check of mallory's view");
$swap->query_until(qr/swapping/,
	"\\echo swapping\nSET ROLE mallory;\n"
	  . "CREATE OR REPLACE VIEW v AS SELECT d.x, d.y FROM d, gate WHERE spy();\n");
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE wait_event_type = 'Lock' AND query LIKE 'CREATE OR REPLACE VIEW%'}),
	"mallory's replacement of the view waits for the retrain");
$gate->query_safe("COMMIT");
my $rows = $victim->query_safe("SELECT 'done'");
$swap->query_safe("SELECT 1");
is($node->safe_psql('postgres', "SELECT count(*) FROM calls WHERE who = 'alice'"),
	'0', "mallory's function never ran as alice");
is($node->safe_psql('postgres', q{SELECT pg_get_viewdef('v') LIKE '%spy()%'}),
	't', 'the view was replaced after the retrain');

# the next retrain checks the new view and refuses it
my ($ret, $out, $err) = $node->psql('postgres',
	"SET ROLE alice; SELECT streamml.retrain('m')");
like($err, qr/view "v" of role mallory calls a function that is not built in/,
	'the next retrain refuses the replaced view');
is($node->safe_psql('postgres', "SELECT count(*) FROM calls WHERE who = 'alice'"),
	'0', "and mallory's function still never ran as alice");

$gate->quit;
$victim->quit;
$swap->quit;
$node->stop;
done_testing();
