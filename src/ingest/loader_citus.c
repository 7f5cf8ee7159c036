/*
 * loader_citus.c
 *		Loading into Citus distributed and reference tables.
 *
 * On the coordinator a Citus table is an empty shell: its rows live in
 * shards on the worker nodes.  Writing it with table_multi_insert, as the
 * loader writes a local table, would put the rows into the shell, where no
 * query sees them.  So a stream whose target is a Citus table (found once,
 * when the stream's plan is made) loads through SQL, which Citus's planner
 * routes to the shards, in the batch's transaction (in batches: CitusBatch
 * below, which the writers of feature tables and predictions use too); and
 * the loader asks Citus for two-phase commit, so that the rows on the workers
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
 * Batched writing of a Citus table (CitusBatch), for the loader and for
 * the writers of feature tables and predictions.  One INSERT per row
 * would cost a round trip to a worker per row; instead the rows are kept
 * (up to CITUS_BATCH_ROWS) as one array per column and written by one
 *
 *	INSERT INTO target (columns) SELECT * FROM ROWS FROM (unnest($1), ...)
 *
 * which Citus runs as an INSERT ... SELECT through the coordinator: it
 * evaluates the SELECT locally and sends its rows to the shards with its
 * COPY path, in the current distributed transaction, which is asked to
 * commit with two-phase commit (so with the offsets, or with the local
 * rows the features or predictions were computed from).  A column whose
 * type has no array type (an array column) travels as text and is cast
 * back.
 *
 * Citus reports an error of a shard's COPY (a CHECK or unique violation
 * only the shard knows) with the shard's message but without its SQLSTATE
 * (internal_error): CitusBatchFlush remembers that the batch statement
 * failed, so that the stream can find the refused rows by loading them
 * one by one (CitusBatchFailed, LoaderCitusRowByRow).
 */

/*
 * Rows per INSERT ... SELECT: each statement costs Citus a plan and a COPY
 * per shard it reaches, so more rows than the local path buffers (a range
 * is usually the whole Kafka batch, flushed when it ends).
 */
#define CITUS_BATCH_ROWS 10000

struct CitusBatch
{
	Relation	rel;
	char	   *sql;			/* the INSERT ... SELECT */
	Oid		   *argtypes;
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
};

/* Set when a batch statement failed; read and cleared by CitusBatchFailed. */
static bool batch_failed = false;

/* Whether the stream loads Citus targets row by row (see consumer.c). */
bool		LoaderCitusRowByRow = false;

/*
 * Above 0 while pg_streamml itself writes a Citus table (feature_citus.c
 * refuses other writes into a Citus table that feeds feature tables).
 */
int			CitusWriterDepth = 0;

/*
 * Makes the batched INSERT into Citus table rel (open, locked), in the
 * caller's memory.  It is planned at each flush: Citus plans an INSERT
 * ... SELECT through the coordinator anew each time anyway, and a plan
 * kept across subtransactions would leak when one aborts.
 */
CitusBatch *
CitusBatchBegin(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	CitusBatch *b;
	StringInfoData sql;
	StringInfoData cols;
	StringInfoData args;
	StringInfoData select;
	Oid		   *argtypes;
	int			natts = desc->natts;

	b = palloc0(sizeof(CitusBatch));
	b->rel = rel;
	b->attnums = palloc(sizeof(AttrNumber) * natts);
	b->elemtypes = palloc(sizeof(Oid) * natts);
	b->typlens = palloc(sizeof(int16) * natts);
	b->typbyvals = palloc(sizeof(bool) * natts);
	b->typaligns = palloc(sizeof(char) * natts);
	b->out = palloc(sizeof(FmgrInfo) * natts);
	b->as_text = palloc0(sizeof(bool) * natts);
	argtypes = palloc(sizeof(Oid) * natts);
	initStringInfo(&sql);
	initStringInfo(&cols);
	initStringInfo(&args);
	initStringInfo(&select);
	for (int i = 0; i < natts; i++)
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
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												RelationGetRelationName(rel)),
					 cols.data, select.data, args.data);
	for (int c = 0; c < b->ncols; c++)
		appendStringInfo(&sql, "%sc%d", c ? ", " : "", c + 1);
	appendStringInfoChar(&sql, ')');
	b->sql = sql.data;
	b->argtypes = argtypes;
	b->values = palloc(sizeof(Datum *) * b->ncols);
	b->nulls = palloc(sizeof(bool *) * b->ncols);
	for (int c = 0; c < b->ncols; c++)
	{
		b->values[c] = palloc(sizeof(Datum) * CITUS_BATCH_ROWS);
		b->nulls[c] = palloc(sizeof(bool) * CITUS_BATCH_ROWS);
	}
	b->rows_cxt = AllocSetContextCreate(CurrentMemoryContext,
										"pg_streamml Citus batch",
										ALLOCSET_DEFAULT_SIZES);
	return b;
}

/*
 * Writes the batch's rows with one INSERT ... SELECT through Citus, in a
 * transaction that commits with two-phase commit.
 */
void
CitusBatchFlush(CitusBatch *b)
{
	Datum	   *args;
	int			dims[1];
	int			lbs[1] = {1};
	int			rc;

	if (b == NULL || b->nrows == 0)
		return;
	LoaderCitusUse2PC();
	args = palloc(sizeof(Datum) * b->ncols);
	dims[0] = b->nrows;
	for (int c = 0; c < b->ncols; c++)
		args[c] = PointerGetDatum(construct_md_array(b->values[c], b->nulls[c],
													 1, dims, lbs, b->elemtypes[c],
													 b->typlens[c], b->typbyvals[c],
													 b->typaligns[c]));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CitusWriterDepth++;
	PG_TRY();
	{
		rc = SPI_execute_with_args(b->sql, b->ncols, b->argtypes, args, NULL,
								   false, 0);
	}
	PG_CATCH();
	{
		batch_failed = true;
		CitusWriterDepth--;
		PG_RE_THROW();
	}
	PG_END_TRY();
	CitusWriterDepth--;
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "insert into %s failed: %s", RelationGetRelationName(b->rel),
			 SPI_result_code_string(rc));
	if (SPI_processed != (uint64) b->nrows)
		elog(ERROR, "insert into %s wrote " UINT64_FORMAT " rows of %d",
			 RelationGetRelationName(b->rel), SPI_processed, b->nrows);
	SPI_finish();
	for (int c = 0; c < b->ncols; c++)
		pfree(DatumGetPointer(args[c]));
	pfree(args);
	b->nrows = 0;
	MemoryContextReset(b->rows_cxt);
}

/*
 * Adds one row (in the relation's attribute layout, defaults filled in) to
 * the batch, copying its values; flushes a full batch.
 */
void
CitusBatchAdd(CitusBatch *b, Datum *values, bool *nulls)
{
	MemoryContext old = MemoryContextSwitchTo(b->rows_cxt);

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
		CitusBatchFlush(b);
}

/* Ends a batch whose rows were flushed (its memory is the caller's). */
void
CitusBatchEnd(CitusBatch *b)
{
	if (b && b->nrows > 0)
		elog(ERROR, "Citus batch of %s ended with %d rows unwritten",
			 RelationGetRelationName(b->rel), b->nrows);
}

/*
 * Whether a batch statement failed since the last call (the error may be
 * a row a shard refused, whose SQLSTATE Citus does not pass on).
 */
bool
CitusBatchFailed(void)
{
	bool		failed = batch_failed;

	batch_failed = false;
	return failed;
}

/*
 * Opens what the loader needs for a Citus target in a range: the batch
 * (unless row-level security applies to the stream's owner, or the stream
 * isolates a row a shard refused: then the row-by-row INSERT, which Citus
 * routes to one shard and whose errors keep their SQLSTATE), and a result
 * relation for the shell table's CHECK and NOT NULL constraints and its
 * statement triggers (a feature table's or a scorer's, which Citus does
 * not fire: LoaderRangeStart and LoaderRangeFinish fire them with the
 * range's rows as a transition table, as COPY into a local table would).
 */
void
LoaderCitusBegin(TargetState *ts)
{
	ts->citus_batch = NULL;
	ts->citus_rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(ts->estate, ts->citus_rri, 1);
	if (check_enable_rls(ts->relid, ts->cfg->owner, false) == RLS_ENABLED ||
		LoaderCitusRowByRow)
		return;
	ts->citus_batch = CitusBatchBegin(ts->rel);
}

/*
 * Takes one row for a Citus target (defaults filled in): checks it against
 * the shell's CHECK and NOT NULL constraints (the shards have them: a bad
 * row fails with its message here), keeps it for the shell's statement
 * triggers, and adds it to the batch unless the caller writes it row by
 * row.
 */
void
LoaderCitusAdd(TargetState *ts, Datum *values, bool *nulls)
{
	ResultRelInfo *rri = ts->citus_rri;

	if (ts->rel->rd_att->constr || ts->transition)
	{
		if (ts->citus_slot == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(ts->estate->es_query_cxt);

			ts->citus_slot = MakeSingleTupleTableSlot(CreateTupleDescCopy(RelationGetDescr(ts->rel)),
													  &TTSOpsVirtual);
			MemoryContextSwitchTo(old);
		}
		ExecClearTuple(ts->citus_slot);
		memcpy(ts->citus_slot->tts_values, values, sizeof(Datum) * ts->natts);
		memcpy(ts->citus_slot->tts_isnull, nulls, sizeof(bool) * ts->natts);
		ExecStoreVirtualTuple(ts->citus_slot);
		if (ts->rel->rd_att->constr)
			ExecConstraints(rri, ts->citus_slot, ts->estate);
		if (ts->transition)
			ExecARInsertTriggers(ts->estate, rri, ts->citus_slot, NIL,
								 ts->transition);
	}
	if (ts->citus_batch)
		CitusBatchAdd(ts->citus_batch, values, nulls);
}

/* Starts a range on a Citus target: the shell's statement triggers. */
void
LoaderCitusRangeStart(TargetState *ts)
{
	ts->transition = MakeTransitionCaptureState(ts->rel->trigdesc,
												ts->relid, CMD_INSERT);
	ExecBSInsertTriggers(ts->estate, ts->citus_rri);
}

/*
 * Ends a range on a Citus target: the last rows to the shards, then the
 * shell's AFTER statement triggers, queued with the range's rows (the
 * caller fires them).
 */
void
LoaderCitusRangeFinish(TargetState *ts)
{
	if (ts->citus_batch)
		CitusBatchFlush(ts->citus_batch);
	ExecASInsertTriggers(ts->estate, ts->citus_rri, ts->transition);
	ts->transition = NULL;
}

/* Ends a Citus target's range that loaded. */
void
LoaderCitusEnd(TargetState *ts)
{
	if (ts->citus_batch)
		CitusBatchEnd(ts->citus_batch);
	ts->citus_batch = NULL;
	if (ts->citus_slot)
		ExecDropSingleTupleTableSlot(ts->citus_slot);
	ts->citus_slot = NULL;
	ts->citus_rri = NULL;
}
