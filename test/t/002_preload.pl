# The library loads only through shared_preload_libraries: any other way
# fails with a message saying so and a hint saying what to add.
use strict;
use warnings;
use lib 'test/perl';
use PostgreSQL::Test::Utils;
use Test::More;
use StreamML::TestNode;

my $plain = streamml_node('plain', preload => 0);
$plain->start;

my ($rc, $out, $err) = $plain->psql('postgres', "LOAD 'pg_streamml'");
isnt($rc, 0, 'LOAD without preload fails');
like($err, qr/ERROR:  pg_streamml can only be loaded via shared_preload_libraries/,
	'LOAD says the library must be preloaded');
like($err, qr/HINT:  Add pg_streamml to the shared_preload_libraries configuration variable/,
	'LOAD hints at what to add');

($rc, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION pg_streamml');
isnt($rc, 0, 'CREATE EXTENSION without preload fails');
like($err, qr/can only be loaded via shared_preload_libraries/,
	'CREATE EXTENSION says why');
is($plain->safe_psql('postgres',
		"SELECT count(*) FROM pg_extension WHERE extname = 'pg_streamml'"),
	'0', 'nothing was left behind');
$plain->stop;

my $node = streamml_node('preloaded');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_streamml');
is($node->safe_psql('postgres', 'SELECT streamml.version()'),
	'0.1.0', 'preloaded library serves the extension');
$node->restart;
is($node->safe_psql('postgres', 'SELECT streamml.version()'),
	'0.1.0', 'extension works after a restart');
$node->stop;

done_testing();
