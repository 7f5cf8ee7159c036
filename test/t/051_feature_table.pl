# Feature tables through every path, crashes and restarts: a 2-worker
# stream loads trades while the postmaster is killed -9 three times; the
# feature table has a row for each trade and nothing else, and every
# feature equals feature_sql's window query, so the states rebuilt after
# each crash gave the next rows exactly the features they would have had.
# Then INSERT and COPY, concurrent writers of the same partitions, a bad
# message (a dead letter, the rest loads), late rows, a clean restart, and
# privileges: the feature table acts as its owner, the catalog is the
# extension's alone.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep);
use StreamML::TestNode;
use StreamML::DevBroker qw(produce);

my $broker = StreamML::DevBroker->start(
	brokers => 1,
	topics => { trades => 2 },
	dir => PostgreSQL::Test::Utils::tempdir);
my $bootstrap = $broker->bootstrap;

my $node = streamml_node('features');
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
		"trend_20": {"fn": "slope",      "of": "price", "preceding": 19},
		"min_1m":   {"fn": "min",        "of": "price", "range": "1 minute"}}}\$\$);
	-- every feature against feature_sql: rows compared, mismatches
	-- (rows with id above "after" only)
	CREATE FUNCTION check_features(ft text, after bigint DEFAULT 0) RETURNS text LANGUAGE plpgsql AS \$f\$
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
				FROM %2\$I t JOIN ref r USING (id) WHERE t.id > %3\$s', f, ft, after) INTO n;
			bad := bad + n;
		END LOOP;
		EXECUTE format('SELECT count(*) FROM %I t JOIN ref r USING (id) WHERE t.id > %s', ft, after) INTO total;
		DROP TABLE ref;
		RETURN total || ' rows, ' || bad || ' mismatches';
	END \$f\$;
	SELECT streamml.create_stream('trades', 'trades', '$bootstrap', 'trades', 'json',
		'{"workers": 2, "batch_size": 300, "flush_ms": 20}');
});

# 20 symbols, each always in the same Kafka partition (so each is loaded in
# order by one worker), prices a random walk, a trade every ~0.4 s.
my $nsym = 20;
my $total = 0;
my %last_ts = map { $_ => 0 } 0 .. $nsym - 1;
my %price = map { $_ => 100 + $_ } 0 .. $nsym - 1;
srand(51);

# The JSON of the next trade of symbol s.
sub trade
{
	my ($s) = @_;
	my $id = ++$total;
	$last_ts{$s} += 0.001 + int(rand(800)) / 1000 + (rand() < 0.01 ? 70 : 0);
	$price{$s} += rand() - 0.5;
	my $p = sprintf('%.4f', $price{$s});
	my $price = rand() < 0.05 ? 'null' : $p;
	return [ sprintf('S%02d', $s),
		sprintf('{"id": %d, "symbol": "S%02d", "ts": %.3f, "price": %s, "notional": %s}',
			$id, $s, 1767225600 + $last_ts{$s}, $price, $p * 3) ];
}

# Epoch seconds (3 decimals) as an ISO timestamp.
sub iso
{
	my ($e) = @_;
	my $ms = sprintf('%.3f', $e);
	my ($sec, $frac) = split /\./, $ms;
	return POSIX::strftime('%Y-%m-%d %H:%M:%S', gmtime($sec)) . ".$frac+00";
}

# Produces n trades per partition, round robin over the symbols.
sub produce_chunk
{
	my ($n) = @_;
	for my $part (0, 1)
	{
		my @msgs;
		for my $i (1 .. $n)
		{
			push @msgs, trade(2 * ($i % ($nsym / 2)) + $part);
		}
		ok(produce($bootstrap, 'trades', \@msgs, partition => $part),
			"produced $n trades into partition $part");
	}
}

my $per_round = 2500;
for my $round (1 .. 3)
{
	my $before = $total;
	produce_chunk($per_round);
	$node->poll_query_until('postgres', "SELECT count(*) > $before + 500 FROM trades")
	  or diag('no progress before the crash');
	streamml_kill9($node, "children exited after kill -9 number $round");
	$node->start;
}
produce_chunk(500);
ok($node->poll_query_until('postgres', 'SELECT count(*) FROM trades', $total),
	"all $total trades loaded after three crashes");
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM trades), (SELECT count(*) FROM features),
		   (SELECT count(*) FROM trades t FULL JOIN features f USING (id)
			WHERE t.id IS NULL OR f.id IS NULL),
		   (SELECT count(*) FROM features WHERE late)}),
	"$total|$total|0|0", 'one features row per trade, the same keys, none late');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT symbol FROM features GROUP BY symbol
		HAVING min(arrival_seq) <> 1 OR max(arrival_seq) <> count(*)) x}),
	'0', 'arrival_seq numbers each symbol 1..n without gaps');
is($node->safe_psql('postgres', q{SELECT check_features('features')}),
	"$total rows, 0 mismatches", 'every feature equals feature_sql after the crashes');
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamml.dead_letters'), '0',
	'no dead letters');

# A message whose row has no partition: a dead letter, the rest loads.
{
	my $before = $total;
	my @msgs = (trade(0), [ 'bad', '{"id": 999999, "symbol": null, "ts": 1767225600, "price": 1}' ],
		trade(2));
	ok(produce($bootstrap, 'trades', \@msgs, partition => 0), 'produced a bad message');
	ok($node->poll_query_until('postgres', 'SELECT count(*) FROM streamml.dead_letters', '1'),
		'the bad message became a dead letter');
	ok($node->poll_query_until('postgres', 'SELECT count(*) FROM trades', $total),
		'the others loaded');
	like($node->safe_psql('postgres', 'SELECT error FROM streamml.dead_letters'),
		qr/partition_by column "symbol" of feature table "features" is null/,
		'the dead letter says why');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM features'), $total,
		'and the feature table has the others');
}

# A late trade from the stream: NULL features, late = true, counted.
{
	my $late = $total + 1;
	$total++;
	ok(produce($bootstrap, 'trades',
			[ [ 'S00', qq({"id": $late, "symbol": "S00", "ts": 1767225600.5, "price": 1, "notional": 1}) ] ],
			partition => 0), 'produced a late trade');
	ok($node->poll_query_until('postgres', "SELECT count(*) FROM features WHERE id = $late", '1'),
		'the late trade has its row');
	is($node->safe_psql('postgres',
			"SELECT late, ma_5 IS NULL, lag_1 IS NULL FROM features WHERE id = $late"),
		't|t|t', 'flagged late, with NULL features');
	is($node->safe_psql('postgres',
			q{SELECT late_rows FROM streamml.feature_tables WHERE name = 'features'}),
		'1', 'counted in the view');
	$node->safe_psql('postgres', "DELETE FROM features WHERE id = $late; DELETE FROM trades WHERE id = $late");
	$total--;
}

# A DELETE while the stream's worker holds the partitions' states: the
# feature rows go with the trades, and the worker rebuilds the states, so
# the next trades get feature_sql's features over the trades that remain.
my $deleted = 0;
{
	my $boundary = $total;
	$deleted = $node->safe_psql('postgres', q{
		WITH d AS (DELETE FROM trades WHERE id IN (SELECT max(id) FROM trades GROUP BY symbol)
				   RETURNING 1)
		SELECT count(*) FROM d});
	is($deleted, $nsym, "deleted the newest trade of each of the $nsym symbols");
	produce_chunk(100);
	ok($node->poll_query_until('postgres', 'SELECT count(*) FROM trades', $total - $deleted),
		'the trades after the delete loaded');
	is($node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FROM trades), (SELECT count(*) FROM features),
			   (SELECT count(*) FROM trades t FULL JOIN features f USING (id)
				WHERE t.id IS NULL OR f.id IS NULL)}),
		($total - $deleted) . "|" . ($total - $deleted) . "|0",
		'the deleted trades took their feature rows with them');
	is($node->safe_psql('postgres', "SELECT check_features('features', $boundary)"),
		($total - $boundary) . " rows, 0 mismatches",
		'the trades after the delete have feature_sql\'s features over what remains');
}

# Stop the stream; INSERT and COPY after a clean restart (states rebuilt).
$node->safe_psql('postgres', q{SELECT streamml.drop_stream('trades')});
$node->restart;
{
	my @rows;
	for (1 .. 300)
	{
		my $t = trade($_ % $nsym);
		push @rows, $t->[1];
	}
	my $copy = join("\n", map {
		my ($id, $s, $ts, $p, $n) =
		  /"id": (\d+), "symbol": "(\w+)", "ts": ([\d.]+), "price": ([\w.-]+), "notional": ([\d.eE+-]+)/;
		join(',', $id, $s, iso($ts), $p eq 'null' ? '' : $p, $n)
	} @rows[150 .. 299]);
	my $values = join(",\n", map {
		my ($id, $s, $ts, $p, $n) =
		  /"id": (\d+), "symbol": "(\w+)", "ts": ([\d.]+), "price": ([\w.-]+), "notional": ([\d.eE+-]+)/;
		"($id, '$s', '" . iso($ts) . "', $p, $n)"
	} @rows[0 .. 149]);
	$node->safe_psql('postgres', "INSERT INTO trades VALUES $values");
	$node->safe_psql('postgres', "COPY trades FROM STDIN (FORMAT csv);\n$copy\n\\.\n");
	is($node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FROM trades) - (SELECT count(*) FROM features)}),
		'0', 'INSERT and COPY after a restart: a features row each');
	is($node->safe_psql('postgres', q{SELECT check_features('features')}),
		($total - $deleted) . " rows, 0 mismatches", 'and their features equal feature_sql');
}

# Concurrent writers of the same partitions (pgbench, 2 clients): the
# states never miss a row another session wrote.
{
	$node->safe_psql('postgres', q{
		CREATE TABLE ticks (id bigserial PRIMARY KEY, s int, ts timestamptz, v float8);
		SELECT streamml.create_feature_table('tick_features', 'ticks', '{
		  "partition_by": "s", "order_by": "ts",
		  "features": {"l": {"fn": "lag", "of": "v"}, "m": {"fn": "mean", "of": "v", "preceding": 4},
					   "c": {"fn": "count", "range": "1 hour"}, "mx": {"fn": "max", "of": "v", "preceding": 9}}}');
	});
	my $script = PostgreSQL::Test::Utils::tempdir . '/ticks.sql';
	open my $fh, '>', $script or die;
	print $fh "INSERT INTO ticks (s, ts, v) SELECT (random() * 2)::int, clock_timestamp(), random() FROM generate_series(1, 3);\n";
	close $fh;
	my ($ok) = PostgreSQL::Test::Utils::run_log(
		[ 'pgbench', '-n', '-c', '2', '-t', '400', '-f', $script,
		  '-h', $node->host, '-p', $node->port, 'postgres' ]);
	ok($ok, 'two clients inserted concurrently');
	is($node->safe_psql('postgres', q{
		SELECT count(*), count(DISTINCT (s, arrival_seq)),
			   bool_and(arrival_seq BETWEEN 1 AND 2400) FROM tick_features}),
		'2400|2400|t', 'every row once, arrival_seq unique per partition');
	# rows that are not late arrived in ts order: their features are the
	# window functions over them in that order.  Two clients can take the
	# same clock_timestamp(): rows of equal ts are taken in arrival order,
	# so a RANGE frame's later peers are not counted.
	is($node->safe_psql('postgres', q{
		WITH r AS (SELECT id, l, m, c, mx,
			lag(v) OVER w AS rl, streamml.rolling_mean(v) OVER (w ROWS 4 PRECEDING) AS rm,
			count(*) OVER (PARTITION BY s ORDER BY ts RANGE '1 hour' PRECEDING)::float8
			  - count(*) OVER (PARTITION BY s, ts ORDER BY arrival_seq
							   ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS rc,
			streamml.rolling_max(v) OVER (w ROWS 9 PRECEDING) AS rmx
			FROM tick_features t JOIN ticks USING (id, s, ts, v) WHERE NOT late
			WINDOW w AS (PARTITION BY s ORDER BY ts, arrival_seq))
		SELECT count(*), count(*) FILTER (WHERE l IS DISTINCT FROM rl OR abs(m - rm) > 1e-9
			OR c <> rc OR mx <> rmx) FROM r}),
		(2400 - $node->safe_psql('postgres', 'SELECT count(*) FROM tick_features WHERE late')) . '|0',
		'the features of concurrent writers are those of one writer');
}

# Privileges.
$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE mallory LOGIN;
	GRANT CREATE ON SCHEMA public TO alice, mallory;
	SET ROLE alice;
	CREATE TABLE a_src (s text, ts int, v float8);
	CREATE TABLE a_secret (x int);
	SELECT streamml.create_feature_table('a_feat', 'a_src',
		'{"partition_by": "s", "order_by": "ts", "features": {"m": {"fn": "mean", "of": "v", "preceding": 2}}}');
	GRANT INSERT ON a_src TO mallory;
	RESET ROLE;
});
my ($rc, $out, $err);
($rc, $out, $err) = $node->psql('postgres', q{
	SET ROLE mallory;
	INSERT INTO a_src VALUES ('x', 1, 1), ('x', 2, 3);
	SELECT count(*) FROM a_feat;});
like($err, qr/permission denied for table a_feat/, 'mallory cannot read the feature table');
is($node->safe_psql('postgres', 'SELECT s, ts, m FROM a_feat ORDER BY ts'), "x|1|1\nx|2|2",
	'but her inserts got their features, written as alice');
for my $sql (
	q{INSERT INTO streamml.feature_tables_catalog (name, owner, source, target, spec, trigger_name) VALUES ('x', 'mallory', 'a_src', 'a_secret', '{}', 't')},
	q{UPDATE streamml.feature_tables_catalog SET owner = 'mallory'},
	q{DELETE FROM streamml.feature_tables_catalog})
{
	($rc, $out, $err) = $node->psql('postgres', "SET ROLE mallory; $sql");
	like($err, qr/permission denied for table feature_tables_catalog/,
		'mallory cannot write the catalog: ' . substr($sql, 0, 6));
}
($rc, $out, $err) = $node->psql('postgres', q{SET ROLE mallory;
	SELECT streamml.create_feature_table('m_feat', 'a_src',
		'{"order_by": "ts", "features": {"m": {"fn": "lag", "of": "v"}}}')});
like($err, qr/permission denied for table a_src/, 'no feature table on a table one cannot read');
($rc, $out, $err) = $node->psql('postgres', qq{SET ROLE mallory;
	CREATE TABLE m_src (s text, ts int, v float8);
	CREATE TRIGGER steal AFTER INSERT ON m_src REFERENCING NEW TABLE AS n
		FOR EACH STATEMENT EXECUTE FUNCTION streamml.feature_table_trigger('a_feat');
	INSERT INTO m_src VALUES ('x', 9, 99);});
like($err, qr/trigger does not belong to feature table "a_feat"/,
	"a trigger of mallory's cannot write alice's feature table");
($rc, $out, $err) = $node->psql('postgres', q{SET ROLE mallory; SELECT streamml.drop_feature_table('a_feat')});
like($err, qr/must be owner of feature table "a_feat"/, 'nor drop it');
is($node->safe_psql('postgres', q{SET ROLE mallory; SELECT count(*) FROM streamml.feature_tables}),
	'0', "mallory's view shows none of alice's feature tables");
is($node->safe_psql('postgres', q{SET ROLE alice; SELECT name FROM streamml.feature_tables}),
	'a_feat', "alice's shows hers");
# the feature table acts as its owner, in a security-restricted operation
($rc, $out, $err) = $node->psql('postgres', q{
	REVOKE INSERT ON a_feat FROM alice;
	INSERT INTO a_src VALUES ('x', 3, 5);});
like($err, qr/permission denied for table a_feat/, 'without the owner\'s INSERT the load fails');
$node->safe_psql('postgres', 'GRANT INSERT ON a_feat TO alice');
($rc, $out, $err) = $node->psql('postgres', 'DROP ROLE alice');
like($err, qr/owner of table a_feat/, 'DROP ROLE refused while alice owns the feature table');
($rc, $out, $err) = $node->psql('postgres', 'REASSIGN OWNED BY alice TO mallory');
like($err, qr/cannot reassign feature table "a_feat" to role "mallory"/,
	'REASSIGN OWNED refuses to move a feature table: it acts as its owner by itself');
is($node->safe_psql('postgres', q{SELECT owner FROM streamml.feature_tables_catalog WHERE name = 'a_feat'}),
	'alice', 'the feature table stays with alice');
$node->safe_psql('postgres', 'DROP OWNED BY alice, mallory');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM streamml.feature_tables_catalog WHERE name = 'a_feat'}),
	'0', 'DROP OWNED drops it');
$node->safe_psql('postgres', 'DROP ROLE alice; DROP ROLE mallory');

$node->stop;
$broker->stop;
done_testing();
