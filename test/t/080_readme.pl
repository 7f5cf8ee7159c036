# The README works as pasted: every ```sh and ```sql block of README.md runs,
# in the order of the file, on a fresh server with the library preloaded
# (the sh blocks with bash from the top of the repository, the sql blocks
# with psql, each continuing the earlier ones as a user's session would:
# psql variables set with \set carry over).  A block preceded by the line
# "<!-- readme-test: skip (why) -->" is not run (the install and test
# commands themselves, a real Kafka cluster, a Docker engine); one preceded
# by "<!-- readme-test: last -->" runs after all the others (stopping the
# tour's broker).
use strict;
use warnings;
use lib 'test/perl';
use Cwd qw(getcwd);
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $top = getcwd();
open(my $fh, '<', "$top/README.md") or die "README.md: $!";
my @lines = <$fh>;
close($fh);

# The blocks, in order: { lang, code, line, mode }.
my (@blocks, $cur, $mode, $prev);
for my $i (0 .. $#lines)
{
	my $l = $lines[$i];
	if ($cur)
	{
		if ($l =~ /^```\s*$/) { push @blocks, $cur; undef $cur; }
		else { $cur->{code} .= $l; }
		next;
	}
	if ($l =~ /^```(\w*)\s*$/)
	{
		my $lang = $1;
		my $m = (defined $prev && $prev =~ /<!-- readme-test: (\w+)/) ? $1 : 'run';
		$cur = { lang => $lang, code => '', line => $i + 1, mode => $m };
	}
	$prev = $l;
}
my @run = grep { ($_->{lang} eq 'sh' || $_->{lang} eq 'sql') && $_->{mode} ne 'skip' } @blocks;
my @order = ((grep { $_->{mode} ne 'last' } @run), (grep { $_->{mode} eq 'last' } @run));
ok(scalar(@order) >= 10, scalar(@order) . ' README blocks to run');

my $node = streamml_node('readme');
$node->start;
$ENV{PGHOST} = $node->host;
$ENV{PGPORT} = $node->port;
$ENV{PGDATABASE} = 'postgres';
$ENV{PGUSER} = $ENV{USER} // getpwuid($<);
my $dir = PostgreSQL::Test::Utils::tempdir;
my $psql_vars = '';

for my $b (@order)
{
	my $file = "$dir/block$b->{line}";
	my $out = "$file.out";
	my $rc;
	if ($b->{lang} eq 'sh')
	{
		open(my $w, '>', "$file.sh") or die;
		print $w "set -euo pipefail\n$b->{code}";
		close($w);
		$rc = system("cd '$top' && timeout 180 bash '$file.sh' > '$out' 2>&1");
	}
	else
	{
		open(my $w, '>', "$file.sql") or die;
		print $w "$psql_vars$b->{code}";
		close($w);
		$rc = system("cd '$top' && timeout 180 psql -X -v ON_ERROR_STOP=1 -f '$file.sql' > '$out' 2>&1");
		$psql_vars .= join('', grep { /^\\set / } split(/^/, $b->{code}));
	}
	my $log = slurp_file($out);
	ok($rc == 0, "README line $b->{line} ($b->{lang}) runs as pasted")
	  or diag("--- block:\n$b->{code}--- output:\n$log");
	note($log);
}

# The tour really got somewhere: its rows, its dead letter, its model.
is($node->safe_psql('postgres', 'SELECT count(*) FROM trades'), '1000', 'the tour loaded its trades');
is($node->safe_psql('postgres', 'SELECT count(*) FROM streamml.dead_letters'), '1', 'and kept its bad message');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM streamml.models WHERE name IN ('up_next', 'churn') AND deployed_version IS NOT NULL"),
	'2', 'and deployed its models');

$node->stop;
done_testing();
