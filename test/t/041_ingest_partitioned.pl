# A partitioned target loads on the fast path, routed the way COPY FROM
# routes rows: each leaf with its own indexes, constraints and triggers, a
# leaf whose columns are in another order (dropped column, ATTACHed) gets
# its rows converted, a leaf with a BEFORE ROW trigger goes row by row, the
# parent's statement trigger sees every routed row in its transition
# table.  A row that fits no partition, a duplicate key, a leaf's CHECK and
# trigger errors each make one dead letter and the rest of the batch loads;
# ranges rolled back and committed leave no resource leak in the log.  A
# sub-partitioned table gets its rows too.  A row a BEFORE trigger moves out
# of its partition is a dead letter; a volatile default makes rows go one
# by one, as in COPY.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { ev => 2, ml => 1, wide => 1, sec => 1, rt => 1, mv => 1, vd => 1 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('partitioned');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_streamml;
	CREATE TABLE ev (id int, ts timestamptz NOT NULL, v float8, tag text,
		PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
	-- January: a CHECK of its own.
	CREATE TABLE ev_2024_01 PARTITION OF ev
		FOR VALUES FROM ('2024-01-01 00:00+00') TO ('2024-02-01 00:00+00');
	ALTER TABLE ev_2024_01 ADD CHECK (v < 1000);
	-- February: other column order and a dropped column, ATTACHed, with
	-- an AFTER ROW trigger.
	CREATE TABLE ev_2024_02 (tag text, junk int, v float8, ts timestamptz NOT NULL, id int NOT NULL);
	ALTER TABLE ev_2024_02 DROP COLUMN junk;
	ALTER TABLE ev ATTACH PARTITION ev_2024_02
		FOR VALUES FROM ('2024-02-01 00:00+00') TO ('2024-03-01 00:00+00');
	-- March: a BEFORE ROW trigger.
	CREATE TABLE ev_2024_03 PARTITION OF ev
		FOR VALUES FROM ('2024-03-01 00:00+00') TO ('2024-04-01 00:00+00');

	CREATE TABLE ev_log (id int, tag text, leaf text);
	CREATE TABLE ev_seen (id int, ts timestamptz, v float8, tag text);
	CREATE TABLE ev_stmts (n bigint);
	CREATE FUNCTION ev_after() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.tag = 'EVIL' THEN RAISE EXCEPTION 'evil row %', NEW.id; END IF;
		INSERT INTO ev_log VALUES (NEW.id, NEW.tag, TG_TABLE_NAME);
		RETURN NULL;
	END $$;
	CREATE TRIGGER ev_after AFTER INSERT ON ev_2024_02
		FOR EACH ROW EXECUTE FUNCTION ev_after();
	CREATE FUNCTION ev_before() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.v < 0 THEN RAISE EXCEPTION 'negative v in %', NEW.id; END IF;
		IF NEW.id % 50 = 0 THEN RETURN NULL; END IF;
		NEW.tag := 'b' || NEW.id;
		RETURN NEW;
	END $$;
	CREATE TRIGGER ev_before BEFORE INSERT ON ev_2024_03
		FOR EACH ROW EXECUTE FUNCTION ev_before();
	CREATE FUNCTION ev_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO ev_seen SELECT id, ts, v, tag FROM new_rows;
		INSERT INTO ev_stmts SELECT count(*) FROM new_rows;
		RETURN NULL;
	END $$;
	CREATE TRIGGER ev_stmt AFTER INSERT ON ev
		REFERENCING NEW TABLE AS new_rows
		FOR EACH STATEMENT EXECUTE FUNCTION ev_stmt();
});

# Month m (0, 1, 2 for January to March) of id: id % 3.
my @month = (1704067200, 1706745600, 1709251200);
sub ev_msg
{
	my ($id, $v, $tag, $ts) = @_;
	$ts //= $month[ $id % 3 ] + $id * 60;
	return [ "k$id", sprintf('{"id": %d, "ts": %d, "v": %s, "tag": "%s"}',
			$id, $ts, $v, $tag) ];
}

# 300 good rows; ids 50 and 200 (March) are skipped by the BEFORE trigger.
# The bad ones are spread among them; the duplicate of 7 has 7's key, so
# it comes after 7 in the same Kafka partition.
my @msgs = map { ev_msg($_, "$_.5", "t$_") } 1 .. 300;
splice @msgs, 40, 0, ev_msg(1001, 1, 'x', 1735689600);	# no partition
splice @msgs, 90, 0, ev_msg(7, '7.5', 't7');			# duplicate key
splice @msgs, 140, 0, ev_msg(1002, 5000, 'x');			# January's CHECK
splice @msgs, 190, 0, ev_msg(1003, 1, 'EVIL');			# February's AFTER trigger
splice @msgs, 240, 0, ev_msg(1004, -1, 'x');			# March's BEFORE trigger
ok(produce($bootstrap, 'ev', \@msgs), 'produced good and bad messages');

$node->safe_psql('postgres', qq{
	SELECT streamml.create_stream('ev', 'ev', '$bootstrap', 'ev', 'json',
		'{"workers": 2, "batch_size": 64}')});
ok($node->poll_query_until('postgres',
		'SELECT sum(next_offset) FROM streamml.offsets', '305'),
	'every message was consumed');

is($node->safe_psql('postgres', q{
	SELECT tableoid::regclass, count(*), sum(id) FROM ev GROUP BY 1 ORDER BY 1}),
	"ev_2024_01|100|15150\nev_2024_02|100|14950\nev_2024_03|98|14800",
	'each leaf has exactly its good rows');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM ev_2024_02
	WHERE v = id + 0.5 AND tag = 't' || id AND ts = to_timestamp(1706745600 + id * 60)}),
	'100', 'rows converted to the column order of the ATTACHed leaf');
is($node->safe_psql('postgres', q{
	SELECT count(*), count(*) FILTER (WHERE tag = 'b' || id) FROM ev_2024_03}),
	'98|98', 'the leaf BEFORE trigger changed and skipped rows');
is($node->safe_psql('postgres', q{
	SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE tag = 't' || id AND leaf = 'ev_2024_02')
	FROM ev_log}),
	'100|100|100', 'the leaf AFTER ROW trigger saw each of its rows once');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM ev_seen),
		(SELECT count(*) FROM (SELECT * FROM ev EXCEPT ALL SELECT * FROM ev_seen) a),
		(SELECT count(*) FROM (SELECT * FROM ev_seen EXCEPT ALL SELECT * FROM ev) b)}),
	'298|0|0', 'the transition table held exactly the loaded rows, as the root sees them');
# One statement per range (bisection makes a few dozen), as COPY, not one
# per row as the INSERT path made (298).
is($node->safe_psql('postgres', q{SELECT sum(n), count(*) < 150 FROM ev_stmts}),
	'298|t', 'the statement trigger fired once per range');
is($node->safe_psql('postgres', q{
	SELECT string_agg(convert_from(key, 'UTF8') || ': ' || error, E'\n'
		ORDER BY convert_from(key, 'UTF8'))
	FROM streamml.dead_letters}),
	join("\n",
		'k1001: no partition of relation "ev" found for row',
		'k1002: new row for relation "ev_2024_01" violates check constraint "ev_2024_01_v_check"',
		'k1003: evil row 1003',
		'k1004: negative v in 1004',
		'k7: duplicate key value violates unique constraint "ev_2024_02_pkey"'),
	'each bad message is a dead letter with its error');
is($node->safe_psql('postgres', q{
	SELECT sum(rows_ingested), sum(rows_rejected), count(DISTINCT worker_pid)
	FROM streamml.stream_stats WHERE stream = 'ev' AND partition >= 0}),
	'300|5|2', 'two workers loaded the two Kafka partitions');

# Larger batches: more than one buffer flush per range, rows of the three
# leaves interleaved, one bad row in the middle of a batch.
$node->safe_psql('postgres', q{SELECT streamml.alter_stream('ev', '{"batch_size": 5000}')});
my @big = map { ev_msg($_, 1, "t$_") } 10001 .. 13000;
splice @big, 1500, 0, ev_msg(20001, 1, 'x', 1735689600);
ok(produce($bootstrap, 'ev', \@big), 'produced 3001 more messages');
ok($node->poll_query_until('postgres',
		'SELECT sum(next_offset) FROM streamml.offsets', '3306'),
	'the larger batches were consumed');
is($node->safe_psql('postgres', q{
	SELECT tableoid::regclass, count(*) FROM ev WHERE id > 10000 GROUP BY 1 ORDER BY 1}),
	"ev_2024_01|1000\nev_2024_02|1000\nev_2024_03|980",
	'the larger batches were routed to their leaves');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM ev), (SELECT count(*) FROM ev_seen),
		(SELECT count(*) FROM ev_log), (SELECT count(*) FROM streamml.dead_letters)}),
	'3278|3278|1100|6', 'triggers and dead letters agree with the larger batches');

# A sub-partitioned table: a mid level with its own column order.
$node->safe_psql('postgres', q{
	CREATE TABLE ml (id int, ts timestamptz, tag text) PARTITION BY RANGE (ts);
	CREATE TABLE ml_a (tag text, gone int, ts timestamptz, id int) PARTITION BY RANGE (id);
	ALTER TABLE ml_a DROP COLUMN gone;
	CREATE TABLE ml_a_lo PARTITION OF ml_a FOR VALUES FROM (MINVALUE) TO (100);
	CREATE TABLE ml_a_hi (id int, ts timestamptz, tag text);
	ALTER TABLE ml_a ATTACH PARTITION ml_a_hi FOR VALUES FROM (100) TO (MAXVALUE);
	ALTER TABLE ml ATTACH PARTITION ml_a
		FOR VALUES FROM (MINVALUE) TO ('2024-06-01 00:00+00');
	CREATE TABLE ml_b PARTITION OF ml FOR VALUES FROM ('2024-06-01 00:00+00') TO (MAXVALUE);
});
ok(produce($bootstrap, 'ml', [ map {
	[ "m$_", sprintf('{"id": %d, "ts": %d, "tag": "m%d"}', $_,
		$_ % 2 ? 1704067200 : 1719792000, $_) ] } 1 .. 200 ]),
	'produced to the sub-partitioned table');
$node->safe_psql('postgres', qq{
	SELECT streamml.create_stream('ml', 'ml', '$bootstrap', 'ml', 'json', '{"batch_size": 64}')});
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM ml', '200'),
	'the sub-partitioned table got every row');
is($node->safe_psql('postgres', q{
	SELECT tableoid::regclass, count(*), count(*) FILTER (WHERE tag = 'm' || id)
	FROM ml GROUP BY 1 ORDER BY 1}),
	"ml_a_lo|50|50\nml_a_hi|50|50\nml_b|100|100",
	'rows went down both levels, converted at each');

# More leaves than keep a buffer at once (32): every row goes to another
# leaf of 40, and a duplicate key in the middle is bisected out.
$node->safe_psql('postgres', q{
	CREATE TABLE wide (id int PRIMARY KEY, v int) PARTITION BY RANGE (id);
	DO $$
	BEGIN
		FOR i IN 0 .. 39 LOOP
			EXECUTE format('CREATE TABLE wide_%s PARTITION OF wide FOR VALUES FROM (%s) TO (%s)',
				i, i * 100, i * 100 + 100);
		END LOOP;
	END $$;
});
my @wide = map { my $id = ($_ % 40) * 100 + int($_ / 40); [ "w$id", qq({"id": $id, "v": $_}) ] } 0 .. 3999;
splice @wide, 2222, 0, [ 'wdup', '{"id": 1234, "v": -1}' ];
ok(produce($bootstrap, 'wide', \@wide), 'produced rows for 40 leaves in turn');
$node->safe_psql('postgres', qq{
	SELECT streamml.create_stream('wide', 'wide', '$bootstrap', 'wide', 'json', '{"batch_size": 5000}')});
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM wide)
		+ (SELECT count(*) FROM streamml.dead_letters WHERE stream = 'wide')}, '4001'),
	'the rows for 40 leaves were consumed');
is($node->safe_psql('postgres', q{
	SELECT count(*), count(DISTINCT tableoid), sum(v), count(*) FILTER (WHERE id / 100 <> v % 40)
	FROM wide}),
	'4000|40|7998000|0', 'every row is in its leaf once');
is($node->safe_psql('postgres', q{
	SELECT error FROM streamml.dead_letters WHERE stream = 'wide'}),
	'duplicate key value violates unique constraint "wide_12_pkey"', 'the duplicate is a dead letter');

# A partitioned table as a routed target of a stream whose main target is
# a plain table: its leaves' AFTER ROW triggers fire from the one
# after-trigger level of the range, its statement trigger sees its rows.
$node->safe_psql('postgres', q{
	CREATE TABLE rt_other (id int, kind text);
	CREATE TABLE rt_p (id int, kind text, ts timestamptz) PARTITION BY RANGE (ts);
	CREATE TABLE rt_p_a PARTITION OF rt_p
		FOR VALUES FROM ('2024-01-01 00:00+00') TO ('2024-02-01 00:00+00');
	CREATE TABLE rt_p_b (ts timestamptz, kind text, id int);
	ALTER TABLE rt_p ATTACH PARTITION rt_p_b
		FOR VALUES FROM ('2024-02-01 00:00+00') TO ('2024-03-01 00:00+00');
	CREATE TABLE rt_log (id int, leaf text);
	CREATE TABLE rt_stmts (n bigint);
	CREATE FUNCTION rt_after() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO rt_log VALUES (NEW.id, TG_TABLE_NAME);
		RETURN NULL;
	END $$;
	CREATE TRIGGER rt_after AFTER INSERT ON rt_p_b
		FOR EACH ROW EXECUTE FUNCTION rt_after();
	CREATE FUNCTION rt_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO rt_stmts SELECT count(*) FROM new_rows;
		RETURN NULL;
	END $$;
	CREATE TRIGGER rt_stmt AFTER INSERT ON rt_p
		REFERENCING NEW TABLE AS new_rows
		FOR EACH STATEMENT EXECUTE FUNCTION rt_stmt();
});
my @rt = map { [ "r$_", sprintf('{"id": %d, "kind": "%s", "ts": %d}', $_,
		$_ % 2 ? 'o' : 'p', $_ % 4 ? 1706745600 + $_ : 1704067200 + $_) ] } 1 .. 20;
splice @rt, 10, 0, [ 'r99', '{"id": 99, "kind": "p", "ts": 1735689600}' ];
ok(produce($bootstrap, 'rt', \@rt), 'produced rows for two routed targets');
$node->safe_psql('postgres', qq{
	SELECT streamml.create_stream('rt', 'rt_other', '$bootstrap', 'rt', 'json',
		'{"route_field": "kind", "routes": {"p": "rt_p"}}')});
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM rt_other) + (SELECT count(*) FROM rt_p)
		+ (SELECT count(*) FROM streamml.dead_letters WHERE stream = 'rt')}, '21'),
	'every routed message is loaded or a dead letter');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM rt_other), (SELECT count(*) FROM rt_p_a),
		(SELECT string_agg(id::text, ',' ORDER BY id) FROM rt_p_b WHERE kind = 'p'),
		(SELECT string_agg(id || leaf, ',' ORDER BY id) FROM rt_log),
		(SELECT sum(n) FROM rt_stmts),
		(SELECT string_agg(error, ',') FROM streamml.dead_letters WHERE stream = 'rt')}),
	'10|5|2,6,10,14,18|2rt_p_b,6rt_p_b,10rt_p_b,14rt_p_b,18rt_p_b|10|no partition of relation "rt_p" found for row',
	'the routed partitioned target got its rows, triggers and dead letter');

# Row-level security on a partitioned table still applies (such tables stay
# on the INSERT path): rows the policy rejects are dead letters.
$node->safe_psql('postgres', qq{
	CREATE ROLE alice LOGIN;
	GRANT CREATE ON SCHEMA public TO alice;
	SET ROLE alice;
	CREATE TABLE sec (id int, region text) PARTITION BY LIST (region);
	CREATE TABLE sec_eu PARTITION OF sec FOR VALUES IN ('eu');
	CREATE TABLE sec_us PARTITION OF sec FOR VALUES IN ('us');
	ALTER TABLE sec ENABLE ROW LEVEL SECURITY;
	ALTER TABLE sec FORCE ROW LEVEL SECURITY;
	CREATE POLICY only_eu ON sec FOR INSERT WITH CHECK (region = 'eu');
	CREATE POLICY see_all ON sec FOR SELECT USING (true);
	SELECT streamml.create_stream('sec', 'sec', '$bootstrap', 'sec', 'json');
});
ok(produce($bootstrap, 'sec', [ map {
	qq({"id": $_, "region": ") . ($_ % 3 ? 'eu' : 'us') . '"}' } 1 .. 9 ]),
	'produced rows for the secured partitioned table');
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM sec)
		+ (SELECT count(*) FROM streamml.dead_letters WHERE stream = 'sec')}, '9'),
	'every secured row is loaded or a dead letter');
is($node->safe_psql('postgres', q{
	SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM sec_eu),
		(SELECT count(*) FROM sec_us),
		(SELECT count(*) FILTER (WHERE error = 'new row violates row-level security policy for table "sec"')
		 FROM streamml.dead_letters WHERE stream = 'sec')}),
	'1,2,4,5,7,8|0|3', 'the policy of the partitioned table applied to every row');

# A parent BEFORE ROW trigger that moves a row out of its partition is an
# error of that row (SQLSTATE 0A000): a dead letter, the rest loads.
$node->safe_psql('postgres', qq{
	CREATE TABLE mv (id int, k int) PARTITION BY LIST (k);
	CREATE TABLE mv_1 PARTITION OF mv FOR VALUES IN (1);
	CREATE TABLE mv_2 PARTITION OF mv FOR VALUES IN (2);
	CREATE FUNCTION mv_move() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN
		IF NEW.id = 5 THEN NEW.k := 2; END IF;
		RETURN NEW;
	END \$\$;
	CREATE TRIGGER mv_move BEFORE INSERT ON mv FOR EACH ROW EXECUTE FUNCTION mv_move();
	SELECT streamml.create_stream('mv', 'mv', '$bootstrap', 'mv', 'json');
});
ok(produce($bootstrap, 'mv', [ map { qq({"id": $_, "k": 1}) } 1 .. 10 ]),
	'produced rows, one of which a trigger moves');
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM mv)
		+ (SELECT count(*) FROM streamml.dead_letters WHERE stream = 'mv')}, '10'),
	'the moved row does not stall the stream');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM mv_1),
		(SELECT string_agg("offset" || ':' || error, ',') FROM streamml.dead_letters WHERE stream = 'mv')}),
	'9|4:moving row to another partition during a BEFORE FOR EACH ROW trigger is not supported',
	'it is a dead letter that says why, the others load');

# A volatile default may read the table: as in COPY, rows are then written
# one by one, so each sees the rows before it.
$node->safe_psql('postgres', qq{
	CREATE TABLE vd (id int, k int, seq int) PARTITION BY LIST (k);
	CREATE TABLE vd_1 PARTITION OF vd FOR VALUES IN (1);
	CREATE FUNCTION vd_next() RETURNS int LANGUAGE sql VOLATILE
		AS 'SELECT coalesce(max(seq), 0) + 1 FROM public.vd';
	ALTER TABLE vd ALTER seq SET DEFAULT vd_next();
	CREATE TABLE vd_plain (id int, seq int DEFAULT 0);
	CREATE FUNCTION vdp_next() RETURNS int LANGUAGE sql VOLATILE
		AS 'SELECT coalesce(max(seq), 0) + 1 FROM public.vd_plain';
	ALTER TABLE vd_plain ALTER seq SET DEFAULT vdp_next();
	SELECT streamml.create_stream('vd', 'vd', '$bootstrap', 'vd', 'json');
	SELECT streamml.create_stream('vd_plain', 'vd_plain', '$bootstrap', 'vd', 'json');
});
ok(produce($bootstrap, 'vd', [ map { qq({"id": $_, "k": 1}) } 1 .. 20 ]),
	'produced rows for tables with a volatile default');
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT count(*) FROM vd) + (SELECT count(*) FROM vd_plain)}, '40'),
	'both loaded');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(DISTINCT seq) || ':' || max(seq) FROM vd),
		(SELECT count(DISTINCT seq) || ':' || max(seq) FROM vd_plain)}),
	'20:20|20:20', 'each row saw the ones before it, partitioned or not');

$node->safe_psql('postgres', q{SELECT streamml.drop_stream('ev')});
$node->safe_psql('postgres', q{SELECT streamml.drop_stream('ml')});
$node->safe_psql('postgres', q{SELECT streamml.drop_stream('rt')});
$node->safe_psql('postgres', q{SET ROLE alice; SELECT streamml.drop_stream('sec')});
$node->safe_psql('postgres', q{SELECT streamml.drop_stream('wide')});
$node->safe_psql('postgres', q{SELECT streamml.drop_stream('mv'); SELECT streamml.drop_stream('vd');
	SELECT streamml.drop_stream('vd_plain')});
$node->stop;

is(join('', grep { /leak/i } split /^/, slurp_file($node->logfile)), '',
	'no resource leak warning in the server log');

is($broker->stop, 0, 'broker stopped cleanly');
done_testing();
