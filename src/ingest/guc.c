/*
 * guc.c
 *		The settings of Kafka ingestion (streamml.*).
 */
#include "postgres.h"

#include "postmaster/postmaster.h"
#include "utils/guc.h"

#include "ingest.h"

char	   *streamml_database = NULL;
int			streamml_launcher_naptime = 1000;
int			streamml_max_workers = -1;
int			streamml_max_workers_per_role = -1;
int			streamml_max_stat_slots = 1024;
int			streamml_produce_timeout = 10000;
int			streamml_debug_visible_partitions = 0;

/* Defines the GUCs; called from IngestInit while preloading. */
void
IngestDefineGucs(void)
{
	DefineCustomStringVariable("streamml.database",
							   "Restricts stream loading to one database.",
							   "Empty (the default) loads the streams of every database where the extension is installed.",
							   &streamml_database,
							   "",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("streamml.launcher_naptime",
							"Interval between two scans of the stream catalog by the launcher.",
							"Changes made through the SQL functions wake the launcher at once.",
							&streamml_launcher_naptime,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("streamml.max_workers",
							"Most consumer workers that pg_streamml runs at once, over all databases.",
							"-1 means max_worker_processes minus max_parallel_workers minus the pg_streamml launchers; a larger value is capped at that.",
							&streamml_max_workers,
							-1, -1, MAX_BACKENDS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("streamml.max_workers_per_role",
							"Most consumer workers that the streams of one role run at once, over all databases.",
							"-1 means no limit of its own: streamml.max_workers.",
							&streamml_max_workers_per_role,
							-1, -1, MAX_BACKENDS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("streamml.max_stat_slots",
							"Number of stream partitions whose statistics are kept in shared memory.",
							"As many feature tables, and as many scorers, have theirs kept too.",
							&streamml_max_stat_slots,
							1024, 16, 1000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("streamml.produce_timeout",
							"How long streamml.produce() waits for Kafka to acknowledge a message.",
							NULL,
							&streamml_produce_timeout,
							10000, 1, 3600 * 1000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/*
	 * The dev broker (librdkafka's mock cluster) cannot add partitions to a
	 * topic, so the tests hide some and show them later to see a running
	 * stream pick new partitions up.
	 */
	DefineCustomIntVariable("streamml.debug_visible_partitions",
							"Testing only: workers see at most this many partitions of a topic.",
							"0 shows them all.",
							&streamml_debug_visible_partitions,
							0, 0, 1000000,
							PGC_SIGHUP,
							GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							NULL, NULL, NULL);
}
