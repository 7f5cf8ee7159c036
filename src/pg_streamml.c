/*
 * pg_streamml.c
 *		Module entry point: the preload check and the initialisation of every
 *		area of the extension.
 *
 * pg_streamml starts background workers and reserves shared memory, which
 * PostgreSQL only allows while shared_preload_libraries is processed.  So the
 * library refuses to load any other way, with a hint saying what to add,
 * rather than half-working in a backend that loaded it on demand.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "pg_streamml.h"
#include "ingest/ingest.h"
#include "ml/ml.h"
#include "scoring/feature_citus.h"
#include "scoring/features.h"
#include "scoring/scorer.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Called once by the postmaster when it loads the library. */
void
_PG_init(void)
{
	/* pg_upgrade loads libraries only to check them: do nothing then. */
	if (IsBinaryUpgrade)
		return;

	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_streamml can only be loaded via shared_preload_libraries"),
				 errhint("Add pg_streamml to the shared_preload_libraries configuration variable in postgresql.conf and restart the server.")));

	IngestInit();
	MlInit();
	FeatureTablesInit();
	ScorerInit();
	RolesInit();
	ModelCatalogCitusInit();
	FeatureCitusInit();

	MarkGUCPrefixReserved("streamml");
}

PG_FUNCTION_INFO_V1(streamml_version);

/* SQL streamml.version(): the version of the loaded library. */
Datum
streamml_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(STREAMML_VERSION));
}
