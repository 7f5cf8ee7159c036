# The three demos end to end, short, and their reports as a browser shows
# them: each demo (test/demo.sh) must finish and print its summary; its HTML
# report is rendered by headless Chromium, which runs the page's check of
# every chart (a <figure class="chart"> whose gnuplot SVG series each drew
# something visible); the DOM Chromium dumps must say every chart has its
# expected number of series drawn and a size.  A screenshot of each report is
# kept in tmp_check/artifacts (run-tests.sh copies it to test-artifacts/).
# The crypto demo's database then answers every Grafana panel's SQL
# (test/demo/check_dashboards.sh), and docker/compose.yaml validates.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use File::Path qw(make_path);

# A program's path on PATH, or undef.
sub which
{
	my ($name) = @_;
	my ($path) = grep { -x } map { "$_/$name" } split /:/, $ENV{PATH};
	return $path;
}

my $chromium = which('chromium');
plan skip_all => 'chromium is not installed (test/install-deps.sh installs it)' unless $chromium;

my $out = "$ENV{TESTDIR}/tmp_check/artifacts";
make_path($out);
my $profile = PostgreSQL::Test::Utils::tempdir;

# Short runs: a quarter of the trades at 600x, the games at 3000/s.
my %env = (
	DEMO_NO_BUILD => 1, DEMO_OUT => $out, DEMO_SPEED => 600, DEMO_LIMIT => 2500,
	DEMO_GAMES_RATE => 3000, DEMO_CLASSIFY_RATE => 150, PGPORT => 54000 + $$ % 1000);

# Charts each demo must draw: id => series (0: at least one, as declared).
my %charts = (
	crypto => { 'price-BTCUSDT' => 3, 'price-SYN1USDT' => 3, rmse => 0, ingest => 2, dead => 1 },
	games => { scatter => 2, genre => 2, dead => 1 },
	classify => { accuracy => 2, proba => 2 });
my %summary = (
	crypto => qr/live RMSE by version.*the monitors \(streamml\.monitors\).*price_60s_rows.*streamml\.model_events.*end-to-end latency/s,
	games => qr/dead letters by reason.*invalid input syntax for type integer.*streamml\.model_events.*publisher +\| +31 \| t.*live: games scored/s,
	classify => qr/streamml\.model_events.*live accuracy on the rows scored on arrival/s);

for my $demo (qw(crypto games classify))
{
	local @ENV{ keys %env } = values %env;
	my $log = "$out/$demo.log";
	# the crypto demo's database also answers every Grafana panel's SQL
	local $ENV{DEMO_AFTER} = $demo eq 'crypto' ? 'bash test/demo/check_dashboards.sh' : '';
	my $rc = system("bash test/demo.sh $demo >$log 2>&1");
	is($rc, 0, "demo $demo ran") or diag(slurp_file($log));
	if ($demo eq 'crypto')
	{
		my $text = slurp_file($log);
		my ($ok, $all) = $text =~ /dashboards: (\d+) of (\d+) panel queries returned rows/;
		ok($all && $ok == $all, "every dashboard panel's SQL returned rows ($ok of $all)")
		  or diag(join "\n", grep { /^not ok/ } split /\n/, $text);
	}
	like(slurp_file("$out/$demo-summary.txt"), $summary{$demo}, "demo $demo printed its summary");

	my $url = "file://$out/$demo.html";
	my @flags = ('--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
		"--user-data-dir=$profile", '--virtual-time-budget=5000');
	my $dom = `timeout 120 $chromium @flags --dump-dom $url 2>/dev/null`;
	like($dom, qr/<body[^>]*data-checked="yes"/, "$demo report: the page's chart check ran");
	my %seen;
	while ($dom =~ /<figure class="chart" id="([^"]+)" data-series="(\d+)"([^>]*)>/g)
	{
		my ($id, $declared, $rest) = ($1, $2, $3);
		my ($drawn) = $rest =~ /data-drawn-series="(\d+)"/;
		my ($w) = $rest =~ /data-width="(\d+)"/;
		my ($h) = $rest =~ /data-height="(\d+)"/;
		$seen{$id} = 1;
		my $want = $charts{$demo}{$id};
		ok(defined $want, "$demo report: chart $id is expected");
		ok($declared >= 1 && (!$want || $declared == $want),
			"$demo report: chart $id has the series it should ($declared)");
		is($drawn, $declared, "$demo report: chart $id drew all its $declared series");
		ok($w > 300 && $h > 100, "$demo report: chart $id has a size (${w}x$h)");
	}
	is_deeply([ sort keys %seen ], [ sort keys %{ $charts{$demo} } ], "$demo report: every chart is there");

	system("timeout 120 $chromium @flags --window-size=1100,3600 --screenshot=$out/$demo.png $url >/dev/null 2>&1");
	ok(-s "$out/$demo.png" > 20_000, "$demo report: screenshot kept as $out/$demo.png");
}

# The compose file that runs the same pipeline with Grafana: no Docker engine
# runs here, so Debian's docker-compose validates it.
SKIP:
{
	skip 'docker-compose is not installed', 1 unless which('docker-compose');
	is(system('docker-compose -f docker/compose.yaml config -q'), 0, 'docker/compose.yaml is valid');
}

done_testing();
