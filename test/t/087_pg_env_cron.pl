# The throw-away server of the demo and the benchmarks (test/pg-env.sh)
# listens on no TCP port, so pg_cron cannot connect to localhost to run a
# job: the demo's watcher job and a schedule_training job failed every
# minute with "connection failed".  The server runs pg_cron's jobs in
# background workers; this starts it as the demo does, schedules a job and
# waits for its run (pg_cron 1.4 schedules by the minute: up to ~70 s).
use strict;
use warnings;
use lib 'test/perl';
use Cwd qw(getcwd);
use PostgreSQL::Test::Utils;
use Test::More;

my $top = getcwd();
my $dir = PostgreSQL::Test::Utils::tempdir;
my $script = <<"EOS";
set -e
cd '$top'
unset PGHOST PGPORT PGDATABASE PGUSER
export PGPORT=\$((50000 + \$\$ % 10000))
source test/pg-env.sh
trap pg_env_stop EXIT
pg_env_start
psql -XAtq -c 'CREATE EXTENSION pg_cron' \\
	-c "SELECT cron.schedule('pg_env probe', '* * * * *', 'CREATE TABLE IF NOT EXISTS pg_env_probe ()')" >/dev/null
for i in \$(seq 1 80); do
	status=\$(psql -XAtq -c "SELECT string_agg(status || ': ' || coalesce(return_message, ''), '; ') FROM cron.job_run_details WHERE status IN ('succeeded', 'failed')")
	[ -n "\$status" ] && break
	sleep 1
done
echo "job: \$status"
echo "table: \$(psql -XAtq -c "SELECT count(*) FROM pg_class WHERE relname = 'pg_env_probe'")"
EOS
open(my $fh, '>', "$dir/run.sh") or die;
print $fh $script;
close($fh);
my $out = `bash '$dir/run.sh' 2>&1`;
note($out);
like($out, qr/^job: succeeded/m, 'a pg_cron job runs on the pg-env.sh server');
unlike($out, qr/connection failed/, 'no job fails to connect');
like($out, qr/^table: 1$/m, 'the job did its work');
done_testing();
