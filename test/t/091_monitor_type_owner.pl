# A monitor's checks and retrains run as the model's owner over its
# source, whose columns another role may own the types of: the owner of a
# type can attach a cast to it, which the check's SQL would call as the
# model's owner.  Here the owner of the source (not a superuser) gives a
# feature column a type of its own, with a cast to float8 that makes it a
# superuser, after a superuser's data and rows monitors were created: the
# checks fail (monitor_error naming the type), the cast is never called,
# and the role stays what it was.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $node = streamml_node('monitor_type_owner');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE ROLE mallory;
	GRANT CREATE ON SCHEMA public TO mallory;
	SET ROLE mallory;
	CREATE TABLE feed (id int, ts timestamptz NOT NULL, x float8, y float8);
	INSERT INTO feed SELECT i, '2026-01-01'::timestamptz + i * interval '1 second',
		   i % 2, 3 * (i % 2) + (i % 3) * 0.1 FROM generate_series(1, 400) i;
	GRANT SELECT ON feed TO PUBLIC;
	CREATE TABLE pwned (who text);
	GRANT INSERT ON pwned TO PUBLIC;
	CREATE TYPE bit2 AS ENUM ('0', '1');
	CREATE FUNCTION bit2_float8(bit2) RETURNS float8 LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.pwned VALUES (current_user);
		EXECUTE 'ALTER ROLE mallory SUPERUSER';
		RETURN 1;
	END
	$$;
	CREATE CAST (bit2 AS float8) WITH FUNCTION bit2_float8(bit2);
	RESET ROLE;
	SELECT count(*) FROM streamml.train_linreg('fm', 'feed', 'y', ARRAY['x'],
		'{"order_by": "ts", "test_fraction": 0.2}');
});
$node->safe_psql('postgres', q{
	SELECT streamml.create_monitor('fm_data', 'fm', 'data',
		'{"window": 100, "min_rows": 10, "interval": "1 second"}');
});
ok($node->poll_query_until('postgres',
	q{SELECT last_value IS NOT NULL FROM streamml.monitors WHERE name = 'fm_data'}),
	'the data monitor checked');
$node->safe_psql('postgres', q{
	SET ROLE mallory;
	ALTER TABLE feed ALTER x TYPE bit2 USING x::int::text::bit2;
	INSERT INTO feed SELECT i, '2026-01-01'::timestamptz + i * interval '1 second',
		   (i % 2)::text::bit2, 1 FROM generate_series(401, 600) i;
	RESET ROLE;
	SELECT streamml.create_monitor('fm_rows', 'fm', 'rows',
		'{"min_rows": 50, "interval": "1 second", "action": "retrain"}');
});
ok($node->poll_query_until('postgres',
	q{SELECT count(DISTINCT monitor) = 2 FROM streamml.model_events
	   WHERE model = 'fm' AND event = 'monitor_error'}),
	'both monitors fail');
like($node->safe_psql('postgres', q{
	SELECT details::text FROM streamml.model_events
	 WHERE monitor = 'fm_data' AND event = 'monitor_error' ORDER BY id LIMIT 1}),
	qr/column \\"x\\" of \\"public\.feed\\" has type public\.bit2, owned by role mallory/,
	"the data check's error names the column, its type and the type's owner");
like($node->safe_psql('postgres', q{
	SELECT details::text FROM streamml.model_events
	 WHERE monitor = 'fm_rows' AND event = 'monitor_error' ORDER BY id LIMIT 1}),
	qr/owned by role mallory/, "the retrain's error too");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pwned UNION ALL
	SELECT count(*) FROM pg_roles WHERE rolname = 'mallory' AND rolsuper}),
	"0\n0", "the type owner's cast never ran, and the role is no superuser");

$node->stop;
done_testing();
