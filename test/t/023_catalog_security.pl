# The catalog is written only by the extension's functions, stored SQL runs
# as its owner, owners are role oids, and the serving cache re-checks the
# deployed version and the caller's access at every statement.
#
# Each block is an attack or an accident that worked before:
#  1. DML on every catalog table as a non-superuser (tables found at run
#     time, so tables added later are covered too);
#  2. the retrain trojan: bob rewrites his model's stored source to call a
#     function that makes him superuser when run by someone else, then a
#     superuser retrains the model;
#  3. DROP ROLE / DROP OWNED / REASSIGN OWNED and a renamed role;
#  4. a stale cache: REVOKE of a role that carried a grant, and a deploy
#     inside another session's open READ COMMITTED transaction.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('catalog_security');
$node->start;
$node->safe_psql('postgres', <<'EOSQL');
CREATE EXTENSION pg_streamml;
CREATE ROLE bob LOGIN;
CREATE ROLE carol LOGIN;
CREATE ROLE team;
GRANT team TO carol;
CREATE TABLE public.d (x float8, y boolean);
INSERT INTO public.d SELECT i / 100.0, (i * 7919) % 100 < i FROM generate_series(1, 100) i;
GRANT SELECT ON public.d TO PUBLIC;
-- a stream owned by bob, so that streams and offsets have a row to attack
CREATE TABLE public.bobs (id int);
GRANT SELECT, INSERT ON public.bobs TO bob;
EOSQL
$node->safe_psql('postgres', <<'EOSQL');
SET ROLE bob;
SELECT streamml.create_stream('bs', 'public.bobs', '127.0.0.1:1', 'nowhere', 'json', '{"start": "earliest"}');
SELECT streamml.stop_stream('bs');
SELECT count(*) FROM streamml.train_logreg('m3', 'public.d', 'y', ARRAY['x']);
EOSQL

# 1. Every DML statement on every catalog table, as the owner of the rows.
my @tables = split /\n/, $node->safe_psql('postgres',
	"SELECT tablename FROM pg_tables WHERE schemaname = 'streamml' ORDER BY 1");
ok(scalar(@tables) >= 7, 'the catalog tables are found: ' . join(', ', @tables));
for my $t (@tables)
{
	my $col = $node->safe_psql('postgres', <<"EOSQL");
SELECT quote_ident(attname) FROM pg_attribute
 WHERE attrelid = 'streamml.$t'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum LIMIT 1
EOSQL
	my %dml = (
		insert => "INSERT INTO streamml.$t DEFAULT VALUES",
		insert_select => "INSERT INTO streamml.$t SELECT * FROM streamml.$t",
		update => "UPDATE streamml.$t SET $col = $col",
		delete => "DELETE FROM streamml.$t",
		truncate => "TRUNCATE streamml.$t",
	);
	for my $kind (sort keys %dml)
	{
		# users may delete their own dead letters: documented
		next if $t eq 'dead_letters' && $kind eq 'delete';
		my ($rc, $out, $err) = $node->psql('postgres',
			"SET ROLE bob; $dml{$kind}");
		like($err, qr/permission denied for table $t/,
			"bob cannot $kind streamml.$t");
	}
}
# and every sequence behind them
for my $seq (split /\n/, $node->safe_psql('postgres',
	"SELECT sequencename FROM pg_sequences WHERE schemaname = 'streamml' ORDER BY 1"))
{
	my ($rc, $out, $err) = $node->psql('postgres',
		"SET ROLE bob; SELECT setval('streamml.$seq', 1)");
	like($err, qr/permission denied for sequence $seq/, "bob cannot setval streamml.$seq");
}
is($node->safe_psql('postgres', <<'EOSQL'), 't', 'dead letters: bob may delete his own');
SET ROLE bob; DELETE FROM streamml.dead_letters; SELECT true;
EOSQL

# 2. The retrain trojan.
$node->safe_psql('postgres', <<'EOSQL');
CREATE FUNCTION public.trap() RETURNS TABLE (x float8, y boolean)
LANGUAGE plpgsql AS $$
BEGIN
	IF current_user <> 'bob' THEN
		EXECUTE 'ALTER ROLE bob SUPERUSER';
	END IF;
	RETURN QUERY SELECT d.x, d.y FROM public.d;
END $$;
GRANT EXECUTE ON FUNCTION public.trap() TO bob;
EOSQL
my ($rc, $out, $err) = $node->psql('postgres', <<'EOSQL');
SET ROLE bob;
UPDATE streamml.models SET source = 'SELECT * FROM public.trap()' WHERE name = 'm3';
EOSQL
like($err, qr/permission denied for table models/, 'bob cannot rewrite the stored source');
# Even a source that bob legitimately trains from runs as bob on retrain.
$node->safe_psql('postgres', <<'EOSQL');
SET ROLE bob;
SELECT count(*) FROM streamml.train_logreg('m3', 'SELECT * FROM public.trap()', 'y', ARRAY['x']);
EOSQL
$node->safe_psql('postgres', "SELECT count(*) FROM streamml.retrain('m3')");
is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'bob'"),
	'f', 'a superuser retraining bob\'s model does not make bob superuser');
# The same through pg_cron's path: retrain run as a superuser by a job.
($rc, $out, $err) = $node->psql('postgres', <<'EOSQL');
SET ROLE carol; SELECT * FROM streamml.retrain('m3');
EOSQL
like($err, qr/model "m3" does not exist/, 'carol cannot retrain a model she cannot see');
($rc, $out, $err) = $node->psql('postgres', <<'EOSQL');
SET ROLE carol; SELECT streamml.grant_model('m3', 'carol');
EOSQL
like($err, qr/model "m3" does not exist/, 'carol cannot grant herself bob\'s model');
$node->safe_psql('postgres', "SELECT streamml.grant_model('m3', 'carol')");
($rc, $out, $err) = $node->psql('postgres', <<'EOSQL');
SET ROLE carol; SELECT streamml.deploy('m3', 1);
EOSQL
like($err, qr/must be owner of model "m3"/, 'a grantee sees the model but cannot deploy it');

# The stored source runs in a security-restricted operation: even as its
# owner it cannot change role or leave settings behind.
$node->safe_psql('postgres', <<'EOSQL');
CREATE FUNCTION public.sneaky() RETURNS TABLE (x float8, y boolean)
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('search_path', 'evil', false);
	CREATE TEMP TABLE IF NOT EXISTS stash (i int);
	RETURN QUERY SELECT d.x, d.y FROM public.d;
END $$;
GRANT EXECUTE ON FUNCTION public.sneaky() TO bob;
SET ROLE bob;
SELECT count(*) FROM streamml.train_logreg('m4', 'public.d', 'y', ARRAY['x']);
EOSQL
$node->safe_psql('postgres', <<'EOSQL');
SET ROLE bob;
SELECT count(*) FROM streamml.train_logreg('m5', 'SELECT * FROM public.sneaky()', 'y', ARRAY['x']);
EOSQL
($rc, $out, $err) = $node->psql('postgres', "SELECT count(*) FROM streamml.retrain('m5'); SHOW search_path");
like($err, qr/cannot create temporary table within security-restricted operation/,
	'retrain runs the stored source as a security-restricted operation');
($rc, $out, $err) = $node->psql('postgres', "SELECT count(*) FROM streamml.retrain('m4')");
is($rc, 0, 'retrain by a superuser works');

# 3. Roles.  carol owns a model; her role is renamed, then dropped.
$node->safe_psql('postgres', <<'EOSQL');
SET ROLE carol;
SELECT count(*) FROM streamml.train_linreg('cm', 'SELECT x, x * 2 AS z FROM public.d', 'z', ARRAY['x']);
SELECT streamml.grant_model('cm', 'bob');
EOSQL
$node->safe_psql('postgres', 'ALTER ROLE carol RENAME TO carla');
is($node->safe_psql('postgres', <<'EOSQL'), 'carla|1', 'a renamed role keeps its model');
SET ROLE carla;
SELECT m.owner::regrole, m.deployed_version FROM streamml.models m WHERE name = 'cm';
EOSQL
$node->safe_psql('postgres', 'CREATE ROLE carol LOGIN');
is($node->safe_psql('postgres', <<'EOSQL'), '0', 'a new role of the old name gets nothing');
SET ROLE carol; SELECT count(*) FROM streamml.models WHERE name = 'cm';
EOSQL
($rc, $out, $err) = $node->psql('postgres', 'DROP ROLE carla');
like($err, qr/role "carla" cannot be dropped because some objects depend on it.*owner of model cm/s,
	'DROP ROLE is refused while the role owns a model');
$node->safe_psql('postgres', 'REASSIGN OWNED BY carla TO carol');
is($node->safe_psql('postgres', "SELECT owner::regrole FROM streamml.models WHERE name = 'cm'"),
	'carol', 'REASSIGN OWNED moves the model');
# PostgreSQL's own dependencies are checked first ...
($rc, $out, $err) = $node->psql('postgres', 'DROP ROLE bob');
like($err, qr/privileges for function trap\(\)/, 'PostgreSQL\'s own check comes first');
$node->safe_psql('postgres', 'REVOKE ALL ON FUNCTION public.trap(), public.sneaky() FROM bob; REVOKE ALL ON public.bobs FROM bob');
# ... and nobody without the right to drop a role learns what it owns here
($rc, $out, $err) = $node->psql('postgres', 'SET ROLE carol; DROP ROLE bob');
like($err, qr/permission denied to drop role/, 'DROP ROLE without the privilege says nothing of models');
unlike($err, qr/owner of/, 'and lists nothing');
($rc, $out, $err) = $node->psql('postgres', 'DROP ROLE bob');
like($err, qr/owner of model m3.*owner of model m4.*owner of model m5.*owner of stream bs/s,
	'DROP ROLE lists the streams and models the role owns');
$node->safe_psql('postgres', 'DROP OWNED BY bob');
is($node->safe_psql('postgres', <<'EOSQL'), '0|0|0', 'DROP OWNED drops the role\'s models, streams and grants');
SELECT (SELECT count(*) FROM streamml.models WHERE name IN ('m3', 'm4', 'm5')),
	   (SELECT count(*) FROM streamml.streams WHERE name = 'bs'),
	   (SELECT count(*) FROM streamml.model_grants WHERE grantee = 'bob'::regrole);
EOSQL
$node->safe_psql('postgres', 'DROP FUNCTION public.trap(); DROP FUNCTION public.sneaky(); DROP ROLE bob; DROP OWNED BY carla; DROP ROLE carla');
# A model whose owner is gone (dropped from another database, or by a
# superuser editing the catalog) leaves the views working for everyone.
$node->safe_psql('postgres', <<'EOSQL');
CREATE ROLE dave;
SET ROLE dave;
SELECT count(*) FROM streamml.train_linreg('dm', 'SELECT x, x * 3 AS z FROM public.d', 'z', ARRAY['x']);
SELECT streamml.grant_model('dm', 'public');
RESET ROLE;
SET session_replication_role = replica;
UPDATE streamml.models SET owner = 999999 WHERE name = 'dm';
EOSQL
is($node->safe_psql('postgres', <<'EOSQL'), '1|4', 'views work when an owner role is gone');
SET ROLE carol;
SELECT (SELECT count(*) FROM streamml.models WHERE name = 'dm'),
	   (SELECT count(*) FROM streamml.coefficients);
EOSQL

# 5. pg_cron jobs named like a model's.  Anyone can give a job of their own
# a model's job name, and a model's owner can rewrite the command of the
# job schedule_training made.  REASSIGN OWNED moves only a job that is what
# schedule_training wrote, paused, and stops the moved streams; drop_model
# unschedules only the owner's job.
$node->safe_psql('postgres', <<'EOSQL');
CREATE EXTENSION pg_cron;
CREATE ROLE eve LOGIN;
CREATE ROLE fay LOGIN;
CREATE ROLE admin SUPERUSER LOGIN;
CREATE ROLE staff;
GRANT USAGE ON SCHEMA cron TO eve, fay;
CREATE TABLE public.eves (id int);
GRANT SELECT, INSERT ON public.eves TO eve;
SET ROLE eve;
SELECT streamml.create_stream('es', 'public.eves', '127.0.0.1:1', 'nowhere');
SELECT count(*) FROM streamml.train_logreg('em', 'public.d', 'y', ARRAY['x']);
SELECT streamml.schedule_training('em', '0 0 1 1 *', '{"min_new_rows": 10}');
SELECT count(*) FROM streamml.train_logreg('em2', 'public.d', 'y', ARRAY['x']);
SELECT streamml.schedule_training('em2', '0 0 1 1 *');
SELECT cron.schedule(streamml.training_job_name('em2'), '0 0 1 1 *', 'ALTER ROLE eve SUPERUSER');
RESET ROLE;
SET ROLE fay;
SELECT cron.schedule(streamml.training_job_name('em'), '0 0 1 1 *', 'ALTER ROLE fay SUPERUSER');
EOSQL
($rc, $out, $err) = $node->psql('postgres', 'REASSIGN OWNED BY eve TO admin');
like($err, qr/1 streams stopped and 1 training jobs paused on moving them to role "admin"/,
	'REASSIGN OWNED says what it stopped');
is($node->safe_psql('postgres', <<'EOSQL'), "em|admin|f\nem|fay|t\nem2|eve|t", 'only the job schedule_training wrote moves, paused');
SELECT substr(jobname, 16), username, active FROM cron.job ORDER BY 1, 2;
EOSQL
is($node->safe_psql('postgres', "SELECT owner::regrole, enabled FROM streamml.streams WHERE name = 'es'"),
	'admin|f', 'the moved stream is stopped');
# a new owner that cannot log in: the job stays paused under the old user
$node->safe_psql('postgres', <<'EOSQL');
SELECT cron.alter_job(jobid, active => true) FROM cron.job WHERE username = 'admin';
REASSIGN OWNED BY admin TO staff;
EOSQL
is($node->safe_psql('postgres', "SELECT username, active FROM cron.job WHERE jobname = 'streamml:train:em' AND username <> 'fay'"),
	'admin|f', 'for a role that cannot log in the job stays, paused');
$node->safe_psql('postgres', "REASSIGN OWNED BY staff TO admin; SELECT streamml.drop_model('em')");
is($node->safe_psql('postgres', "SELECT string_agg(username, ',') FROM cron.job WHERE jobname = 'streamml:train:em'"),
	'fay', 'drop_model unschedules only the owner\'s job');
$node->safe_psql('postgres', <<'EOSQL');
SELECT cron.unschedule(jobid) FROM cron.job;
SELECT streamml.drop_stream('es');
SELECT streamml.drop_model('em2');
DROP EXTENSION pg_cron;
EOSQL

# 5b. Feature tables, scorers, outcome trackers and monitors act as their
# owner by themselves, on every row anyone inserts into their source or in
# the monitor worker.  Code of the old owner reaches them by many roads (a
# trigger, a domain over an output column, an operator in a constraint):
# moved, it would run as the new owner.  REASSIGN OWNED refuses while the
# roles own any of them, whatever their tables carry; once they are
# dropped, it moves the rest, and gil gains nothing.
$node->safe_psql('postgres', <<'EOSQL');
CREATE ROLE gil LOGIN;
GRANT CREATE ON SCHEMA public TO gil;
SET ROLE gil;
CREATE TABLE public.gsrc (id int PRIMARY KEY, x float8, y boolean);
INSERT INTO public.gsrc SELECT i, i, i % 2 = 0 FROM generate_series(1, 20) i;
SELECT count(*) FROM streamml.train_logreg('gm', 'public.gsrc', 'y', ARRAY['x']);
CREATE FUNCTION public.gtrap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF current_user <> 'gil' THEN EXECUTE 'ALTER ROLE gil SUPERUSER'; END IF;
	RETURN NULL;
END $$;
CREATE FUNCTION public.gcheck(int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	IF current_user <> 'gil' THEN EXECUTE 'ALTER ROLE gil SUPERUSER'; END IF;
	RETURN true;
END $$;
CREATE FUNCTION public.geq(float8, int) RETURNS boolean LANGUAGE sql
	AS 'SELECT public.gcheck(1)';
CREATE OPERATOR public.=== (LEFTARG = float8, RIGHTARG = int, FUNCTION = public.geq);
CREATE DOMAIN public.gdom AS int DEFAULT 1 CHECK (public.gcheck(VALUE));
SELECT streamml.create_scorer('gsc', 'public.gsrc', 'gm', '{"into": "gpreds"}');
CREATE TRIGGER gtrap AFTER INSERT ON public.gpreds FOR EACH STATEMENT
	EXECUTE FUNCTION public.gtrap();
EOSQL
($rc, $out, $err) = $node->psql('postgres', 'REASSIGN OWNED BY gil TO admin');
like($err, qr/cannot reassign scorer "gsc" to role "admin"/,
	'REASSIGN OWNED refuses to move a scorer whose output table has the old owner\'s trigger');
$node->safe_psql('postgres', q{
	SET ROLE gil;
	DROP TRIGGER gtrap ON public.gpreds;
	ALTER TABLE public.gpreds ADD COLUMN g public.gdom;
});
($rc, $out, $err) = $node->psql('postgres', 'REASSIGN OWNED BY gil TO admin');
like($err, qr/cannot reassign scorer "gsc"/, '... or a column of a domain calling a function');
$node->safe_psql('postgres', q{
	SET ROLE gil;
	ALTER TABLE public.gpreds DROP COLUMN g;
	ALTER TABLE public.gpreds ADD CONSTRAINT gop CHECK (prediction OPERATOR(public.===) 0);
});
($rc, $out, $err) = $node->psql('postgres', 'REASSIGN OWNED BY gil TO admin');
like($err, qr/cannot reassign scorer "gsc"/, '... or a constraint using an operator');
$node->safe_psql('postgres', q{
	SET ROLE gil;
	ALTER TABLE public.gpreds DROP CONSTRAINT gop;
});
($rc, $out, $err) = $node->psql('postgres', 'REASSIGN OWNED BY gil TO admin');
like($err, qr/cannot reassign scorer "gsc" to role "admin".*HINT:  Drop the old owner's scorers with streamml.drop_scorer/s,
	'... or nothing at all: a scorer is never moved');
is($node->safe_psql('postgres', "SELECT owner::regrole FROM streamml.scorers WHERE name = 'gsc'"),
	'gil', 'the scorer stays with its owner');
# An outcome tracker and a monitor, likewise.
$node->safe_psql('postgres', q{
	SET ROLE gil;
	SELECT streamml.drop_scorer('gsc');
	CREATE TABLE public.glab (id int, y boolean);
	SELECT streamml.create_scorer('gsc2', 'public.gsrc', 'gm', '{"into": "gpreds"}');
	SELECT streamml.track_outcomes('gsc2', 'public.glab', '{"actual": "y"}');
});
# (a tracker cannot outlive its scorer: drop_scorer refuses a tracked one)
($rc, $out, $err) = $node->psql('postgres', 'REASSIGN OWNED BY gil TO admin');
like($err, qr/cannot reassign (outcome tracker|scorer) "gsc2" to role "admin"/,
	'REASSIGN OWNED refuses to move an outcome tracker and its scorer');
$node->safe_psql('postgres', q{
	SET ROLE gil;
	SELECT streamml.untrack_outcomes('gsc2');
	SELECT streamml.drop_scorer('gsc2');
	SELECT streamml.create_monitor('gmon', 'gm', 'error');
});
($rc, $out, $err) = $node->psql('postgres', 'REASSIGN OWNED BY gil TO admin');
like($err, qr/cannot reassign monitor "gmon" to role "admin"/,
	'REASSIGN OWNED refuses to move a monitor');
$node->safe_psql('postgres', q{SET ROLE gil; SELECT streamml.drop_monitor('gmon')});
$node->safe_psql('postgres', 'REASSIGN OWNED BY gil TO admin');
$node->safe_psql('postgres', 'INSERT INTO public.gsrc VALUES (21, 21, false)');
is($node->safe_psql('postgres', q{
	SELECT (SELECT owner::regrole FROM streamml.models WHERE name = 'gm'),
		   (SELECT rolsuper FROM pg_roles WHERE rolname = 'gil')}),
	'admin|f', 'without them the rest moves, and gil gained nothing');
$node->safe_psql('postgres', q{
	SELECT streamml.drop_model('gm');
	DROP TABLE public.gsrc, public.gpreds, public.glab;
	DROP OPERATOR public.=== (float8, int);
	DROP DOMAIN public.gdom;
	DROP FUNCTION public.gtrap(), public.geq(float8, int), public.gcheck(int);
	REVOKE CREATE ON SCHEMA public FROM gil;
	DROP ROLE gil;
});

# 5c. Names a model's stored SQL resolves.  ivy works in schema analytics;
# jack may create objects in public.  A retrain run by someone else (a
# superuser here, pg_cron or a monitor worker elsewhere) must read the table
# ivy trained on, not jack's public.sales, and no operator of jack's may run
# as ivy: the extension's own SQL qualifies its operators (text[] = text[]
# has no exact match in pg_catalog, so jack's would win), a table source is
# stored schema-qualified, a query source keeps ivy's search_path.
$node->safe_psql('postgres', <<'EOSQL');
CREATE ROLE ivy LOGIN;
CREATE ROLE jack LOGIN;
GRANT CREATE ON SCHEMA public TO jack;
CREATE SCHEMA analytics AUTHORIZATION ivy;
CREATE TABLE public.loot (who text);
GRANT INSERT ON public.loot TO PUBLIC;
SET ROLE jack;
CREATE FUNCTION public.jeq(text[], text[]) RETURNS boolean LANGUAGE sql
	AS 'INSERT INTO public.loot VALUES (current_user) RETURNING true';
CREATE OPERATOR public.= (LEFTARG = text[], RIGHTARG = text[], FUNCTION = public.jeq);
CREATE FUNCTION public.spy() RETURNS int LANGUAGE sql
	AS 'INSERT INTO public.loot VALUES (current_user) RETURNING 1';
CREATE VIEW public.sales AS SELECT i AS id, public.spy()::float8 AS x, i % 2 = 0 AS y
	FROM generate_series(1, 100) i;
RESET ROLE;
SET ROLE ivy;
SET search_path = analytics, public;
CREATE TABLE analytics.sales (id int, x float8, y boolean);
INSERT INTO analytics.sales SELECT i, i % 7, i % 3 = 0 FROM generate_series(1, 200) i;
SELECT count(*) FROM streamml.train_logreg('ivym', 'sales', 'y', ARRAY['x'],
	'{"test_fraction": 0.2, "order_by": "id"}');
SELECT count(*) FROM streamml.train_logreg('ivym', 'sales', 'y', ARRAY['x'],
	'{"test_fraction": 0.2, "order_by": "id", "deploy": "if_better"}');
SELECT count(*) FROM streamml.train_gbt('ivyt', 'sales', 'y', ARRAY['x'],
	'{"test_fraction": 0.2, "order_by": "id", "trees": 3}');
SELECT count(*) FROM streamml.train_gbt('ivyt', 'sales', 'y', ARRAY['x'],
	'{"test_fraction": 0.2, "order_by": "id", "trees": 3, "deploy": "if_better"}');
SELECT count(*) FROM streamml.train_linreg('ivyq', 'SELECT id, x, id * 2.0 AS z FROM sales', 'z', ARRAY['x']);
EOSQL
is($node->safe_psql('postgres', q{SELECT source FROM streamml.models WHERE name = 'ivym'}),
	'analytics.sales', 'a table source is stored schema-qualified');
is($node->safe_psql('postgres', q{SELECT search_path FROM streamml.models WHERE name = 'ivyq'}),
	'analytics, public', 'a query source keeps the search_path it was trained under');
$node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.retrain('ivym');
	SELECT count(*) FROM streamml.retrain('ivyt');
	SELECT count(*) FROM streamml.retrain('ivyq');
});
is($node->safe_psql('postgres', q{
	SELECT (SELECT rows_used FROM streamml.model_versions WHERE model = 'ivym' ORDER BY version DESC LIMIT 1),
		   (SELECT rows_used FROM streamml.model_versions WHERE model = 'ivyq' ORDER BY version DESC LIMIT 1),
		   (SELECT count(*) FROM public.loot)}),
	'160|200|0', "a superuser's retrain reads ivy's tables, and nothing of jack's ran");
$node->safe_psql('postgres', q{
	SELECT streamml.drop_model('ivym'); SELECT streamml.drop_model('ivyt');
	SELECT streamml.drop_model('ivyq');
	DROP SCHEMA analytics CASCADE;
	DROP VIEW public.sales; DROP OPERATOR public.= (text[], text[]);
	DROP FUNCTION public.jeq(text[], text[]), public.spy();
	DROP TABLE public.loot;
	REVOKE CREATE ON SCHEMA public FROM jack;
	DROP ROLE ivy; DROP ROLE jack;
});

# 4. Stale caches.  team is granted the model; carol is in team.
$node->safe_psql('postgres', <<'EOSQL');
CREATE ROLE erin LOGIN;
CREATE ROLE analysts;
GRANT analysts TO carol;
SET ROLE erin;
SELECT count(*) FROM streamml.train_logreg('em', 'public.d', 'y', ARRAY['x']);
SELECT streamml.grant_model('em', 'analysts');
EOSQL
my $carol = $node->background_psql('postgres');
$carol->query_safe('SET ROLE carol');
like($carol->query_safe("SELECT streamml.predict_proba('em', ARRAY[0.5]) IS NOT NULL"),
	qr/t/, 'carol scores through her role analysts');
$node->safe_psql('postgres', 'REVOKE analysts FROM carol');
my $res = eval { $carol->query("SELECT streamml.predict_proba('em', ARRAY[0.5])") };
like($carol->{stderr}, qr/model "em" does not exist/, 'after REVOKE, her open session no longer scores');
$carol->quit;

# A deployment is seen by the next statement inside an open transaction.
my $a = $node->background_psql('postgres');
$a->query_safe('BEGIN ISOLATION LEVEL READ COMMITTED');
my $p1 = $a->query_safe("SELECT round(streamml.predict_proba('em', ARRAY[0.5])::numeric, 12)");
$node->safe_psql('postgres', <<'EOSQL');
SET ROLE erin;
SELECT count(*) FROM streamml.train_logreg('em', 'SELECT x, NOT y AS y FROM public.d', 'y', ARRAY['x']);
EOSQL
my $p2 = $a->query_safe("SELECT round(streamml.predict_proba('em', ARRAY[0.5])::numeric, 12)");
isnt($p2, $p1, "the next statement of an open transaction scores with the new version ($p1 -> $p2)");
my $expect = $node->safe_psql('postgres',
	"SELECT round(streamml.predict_proba('em', ARRAY[0.5])::numeric, 12)");
is($p2, $expect, 'and with exactly what a new session gets');
# one statement scores all its rows with one version: a deploy that commits
# while a statement runs is seen by the next statement, not mid-way
$a->query_safe('COMMIT');
$a->quit;

done_testing();
