/*
 * guc.c
 *		The settings of Kafka ingestion (streamml.*).
 */
#include "postgres.h"

#include "utils/guc.h"

#include "ingest.h"

char	   *streamml_database = NULL;
int			streamml_launcher_naptime = 1000;
int			streamml_max_stat_slots = 1024;
int			streamml_produce_timeout = 10000;
int			streamml_debug_visible_partitions = 0;

/* Defines the GUCs; called from IngestInit while preloading. */
void
IngestDefineGucs(void)
{
	DefineCustomStringVariable("streamml.database",
							   "Database in which the stream launcher runs.",
							   "Streams are read from streamml.streams in this database.",
							   &streamml_database,
							   "postgres",
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
	DefineCustomIntVariable("streamml.max_stat_slots",
							"Number of stream partitions whose statistics are kept in shared memory.",
							NULL,
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
