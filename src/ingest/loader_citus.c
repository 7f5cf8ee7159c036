/*
 * loader_citus.c
 *		Loading into Citus distributed and reference tables.
 *
 * On the coordinator a Citus table is an empty shell: its rows live in
 * shards on the worker nodes.  Writing it with table_multi_insert, as the
 * loader writes a local table, would put the rows into the shell, where no
 * query sees them.  So a stream whose target is a Citus table (found once,
 * when the stream's plan is made) loads through SQL, which Citus's planner
 * routes to the shards, in the batch's transaction (in batches, see
 * LoaderCitusBegin below); and the
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
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"

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

/*
 * Batched loading of a Citus table.  One INSERT per row would cost a
 * round trip to a worker per row; instead the rows of a range are kept
 * (up to CITUS_BATCH_ROWS) as one array per column and written by one
 *
 *	INSERT INTO target (columns) SELECT * FROM ROWS FROM (unnest($1), ...)
 *
 * which Citus runs as an INSERT ... SELECT through the coordinator: it
 * evaluates the SELECT locally and sends its rows to the shards with its
 * COPY path, in the batch's distributed transaction (two-phase commit, so
 * with the offsets).  Rows are checked against the CHECK and NOT NULL
 * constraints on the coordinator first (the shell table has them): a row
 * a shard refuses would abort the whole distributed transaction, where a
 * row refused here is a dead letter like on a local table; what only a
 * shard can refuse (a unique or foreign key violation, a trigger on the
 * shards) fails the batch, which is retried.  A column whose type has no
 * array type (an array column) travels as text and is cast back.  A table with row-level
 * security for the stream's owner keeps the row-by-row INSERT, which
 * applies the policies.
 */
/*
 * Rows per INSERT ... SELECT: each statement costs Citus a plan and a COPY
 * per shard it reaches, so more rows than the local path buffers (a range
 * is usually the whole Kafka batch, flushed when it ends).
 */
#define CITUS_BATCH_ROWS 10000

typedef struct CitusBatch
{
	SPIPlanPtr	plan;
	int			ncols;
	AttrNumber *attnums;		/* the columns written, by position */
	Oid		   *elemtypes;
	int16	   *typlens;
	bool	   *typbyvals;
	char	   *typaligns;
	FmgrInfo   *out;			/* a column without an array type: as text */
	bool	   *as_text;
	Datum	  **values;			/* [column][row] */
	bool	  **nulls;
	int			nrows;
	MemoryContext rows_cxt;		/* the rows' copies, reset at each flush */
	ResultRelInfo *rri;			/* the shell's CHECK and NOT NULL constraints */
	TupleTableSlot *slot;
} CitusBatch;

/*
 * Prepares the batched INSERT for a Citus target (in the caller's memory,
 * the range's); leaves ts->citus_batch NULL when row-level security
 * applies, for the row-by-row INSERT.
 */
void
LoaderCitusBegin(TargetState *ts)
{
	TupleDesc	desc = RelationGetDescr(ts->rel);
	CitusBatch *b;
	StringInfoData sql;
	StringInfoData cols;
	StringInfoData args;
	StringInfoData select;
	Oid		   *argtypes;

	ts->citus_batch = NULL;
	if (check_enable_rls(ts->relid, ts->cfg->owner, false) == RLS_ENABLED)
		return;
	b = palloc0(sizeof(CitusBatch));
	b->attnums = palloc(sizeof(AttrNumber) * ts->natts);
	b->elemtypes = palloc(sizeof(Oid) * ts->natts);
	b->typlens = palloc(sizeof(int16) * ts->natts);
	b->typbyvals = palloc(sizeof(bool) * ts->natts);
	b->typaligns = palloc(sizeof(char) * ts->natts);
	b->out = palloc(sizeof(FmgrInfo) * ts->natts);
	b->as_text = palloc0(sizeof(bool) * ts->natts);
	argtypes = palloc(sizeof(Oid) * ts->natts);
	initStringInfo(&sql);
	initStringInfo(&cols);
	initStringInfo(&args);
	initStringInfo(&select);
	for (int i = 0; i < ts->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		int			n = b->ncols;

		if (att->attisdropped || att->attgenerated)
			continue;
		b->attnums[n] = i;
		b->elemtypes[n] = att->atttypid;
		argtypes[n] = get_array_type(att->atttypid);
		if (!OidIsValid(argtypes[n]))
		{
			/*
			 * An array column (arrays have no array type, and unnest of a
			 * 2-D array would flatten it): sent as text, cast back.
			 */
			Oid			outfn;
			bool		varlena;

			getTypeOutputInfo(att->atttypid, &outfn, &varlena);
			fmgr_info(outfn, &b->out[n]);
			b->as_text[n] = true;
			b->elemtypes[n] = TEXTOID;
			argtypes[n] = TEXTARRAYOID;
		}
		get_typlenbyvalalign(b->elemtypes[n], &b->typlens[n], &b->typbyvals[n],
							 &b->typaligns[n]);
		appendStringInfo(&cols, "%s%s", n ? ", " : "",
						 quote_identifier(NameStr(att->attname)));
		appendStringInfo(&args, "%spg_catalog.unnest($%d)", n ? ", " : "", n + 1);
		if (b->as_text[n])
			appendStringInfo(&select, "%sc%d::%s", n ? ", " : "", n + 1,
							 format_type_with_typemod(att->atttypid, att->atttypmod));
		else
			appendStringInfo(&select, "%sc%d", n ? ", " : "", n + 1);
		b->ncols++;
	}
	appendStringInfo(&sql, "INSERT INTO %s (%s) SELECT %s FROM ROWS FROM (%s) AS u (",
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(ts->rel)),
												RelationGetRelationName(ts->rel)),
					 cols.data, select.data, args.data);
	for (int c = 0; c < b->ncols; c++)
		appendStringInfo(&sql, "%sc%d", c ? ", " : "", c + 1);
	appendStringInfoChar(&sql, ')');
	b->plan = SPI_prepare(sql.data, b->ncols, argtypes);
	if (b->plan == NULL)
		elog(ERROR, "cannot prepare insert into target: %s",
			 SPI_result_code_string(SPI_result));
	b->values = palloc(sizeof(Datum *) * b->ncols);
	b->nulls = palloc(sizeof(bool *) * b->ncols);
	for (int c = 0; c < b->ncols; c++)
	{
		b->values[c] = palloc(sizeof(Datum) * CITUS_BATCH_ROWS);
		b->nulls[c] = palloc(sizeof(bool) * CITUS_BATCH_ROWS);
	}
	/* over a copy of the descriptor, which no resource owner tracks */
	if (desc->constr)
	{
		b->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(b->rri, ts->rel, 1, NULL, 0);
		b->slot = MakeSingleTupleTableSlot(CreateTupleDescCopy(desc),
										   &TTSOpsVirtual);
	}
	b->rows_cxt = AllocSetContextCreate(CurrentMemoryContext,
										"pg_streamml Citus batch",
										ALLOCSET_DEFAULT_SIZES);
	ts->citus_batch = b;
}

/* Writes the batch's rows with one INSERT ... SELECT through Citus. */
void
LoaderCitusFlush(TargetState *ts)
{
	CitusBatch *b = ts->citus_batch;
	Datum	   *args;
	int			dims[1];
	int			lbs[1] = {1};
	int			rc;

	if (b == NULL || b->nrows == 0)
		return;
	args = palloc(sizeof(Datum) * b->ncols);
	dims[0] = b->nrows;
	for (int c = 0; c < b->ncols; c++)
		args[c] = PointerGetDatum(construct_md_array(b->values[c], b->nulls[c],
													 1, dims, lbs, b->elemtypes[c],
													 b->typlens[c], b->typbyvals[c],
													 b->typaligns[c]));
	rc = SPI_execute_plan(b->plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "insert into target failed: %s", SPI_result_code_string(rc));
	if (SPI_processed != (uint64) b->nrows)
		elog(ERROR, "insert into target wrote " UINT64_FORMAT " rows of %d",
			 SPI_processed, b->nrows);
	for (int c = 0; c < b->ncols; c++)
		pfree(DatumGetPointer(args[c]));
	pfree(args);
	b->nrows = 0;
	MemoryContextReset(b->rows_cxt);
}

/* Adds one row (defaults filled in) to the batch; flushes a full one. */
void
LoaderCitusAdd(TargetState *ts, Datum *values, bool *nulls)
{
	CitusBatch *b = ts->citus_batch;
	MemoryContext old;

	/*
	 * The shell table has the shards' CHECK and NOT NULL constraints:
	 * checked here, a bad row fails with its message, not with the batch
	 * on a shard (where the error would abort the distributed transaction).
	 */
	if (b->rri)
	{
		ExecClearTuple(b->slot);
		memcpy(b->slot->tts_values, values, sizeof(Datum) * ts->natts);
		memcpy(b->slot->tts_isnull, nulls, sizeof(bool) * ts->natts);
		ExecStoreVirtualTuple(b->slot);
		ExecConstraints(b->rri, b->slot, ts->estate);
	}
	old = MemoryContextSwitchTo(b->rows_cxt);
	/* the values live in the message's memory: the batch outlives it */
	for (int c = 0; c < b->ncols; c++)
	{
		AttrNumber	a = b->attnums[c];

		b->nulls[c][b->nrows] = nulls[a];
		if (nulls[a])
			b->values[c][b->nrows] = (Datum) 0;
		else if (b->as_text[c])
			b->values[c][b->nrows] =
				CStringGetTextDatum(OutputFunctionCall(&b->out[c], values[a]));
		else
			b->values[c][b->nrows] = datumCopy(values[a], b->typbyvals[c],
											   b->typlens[c]);
	}
	MemoryContextSwitchTo(old);
	if (++b->nrows == CITUS_BATCH_ROWS)
		LoaderCitusFlush(ts);
}

/* Frees the batch's plan at the end of the range (its memory is the range's). */
void
LoaderCitusEnd(TargetState *ts)
{
	if (ts->citus_batch)
		SPI_freeplan(ts->citus_batch->plan);
	ts->citus_batch = NULL;
}
