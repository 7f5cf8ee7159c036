/*
 * loader_citus.c
 *		Loading into Citus distributed and reference tables.
 *
 * On the coordinator a Citus table is an empty shell: its rows live in
 * shards on the worker nodes.  Writing it with table_multi_insert, as the
 * loader writes a local table, would put the rows into the shell, where no
 * query sees them.  So a stream whose target is a Citus table (found once,
 * when the stream's plan is made) loads through a prepared INSERT, which
 * Citus's planner routes to the shards, in the batch's transaction; and the
 * loader asks Citus for two-phase commit, so that the rows on the workers
 * and the offsets on the coordinator commit together.  Citus would choose
 * one-phase commit for a batch whose rows all go to one worker, and a crash
 * of the coordinator between that worker's commit and its own would load
 * the batch twice.  With two-phase commit the workers prepare first, the
 * coordinator's commit decides, and Citus's recovery (the maintenance
 * daemon, every citus.recover_2pc_interval, or recover_prepared_transactions)
 * finishes the prepared transactions after a crash.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"

#include "loader.h"

/*
 * True when relid is a table in Citus's metadata (distributed, reference
 * or Citus local): a row for it in pg_dist_partition.  Without the citus
 * extension in the database this is one catalog look-up.
 */
bool
LoaderIsCitusTable(Oid relid)
{
	Oid			dist;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	bool		found;

	if (!OidIsValid(get_extension_oid("citus", true)))
		return false;
	dist = get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE);
	if (!OidIsValid(dist))
		return false;
	rel = table_open(dist, AccessShareLock);
	/* logicalrelid, the first column */
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Asks Citus to commit the current transaction with two-phase commit (its
 * Use2PCForCoordinatedTransaction, looked up once in the loaded library).
 */
void
LoaderCitusUse2PC(void)
{
	static void (*use2pc) (void) = NULL;

	if (use2pc == NULL)
		use2pc = (void (*) (void))
			load_external_function("citus", "Use2PCForCoordinatedTransaction",
								   true, NULL);
	use2pc();
}
