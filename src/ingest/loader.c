/*
 * loader.c
 *		Writing decoded rows into a target table the way COPY FROM does.
 *
 * A transaction loads one batch of messages, in ranges, each in a
 * subtransaction (so that a bad message can be isolated by bisection).
 * For each range, inside its subtransaction: LoaderBegin opens the table
 * with an executor state, its indexes and the default expressions of its
 * columns, and checks the stream owner's INSERT privilege on the columns
 * the stream writes; then LoaderRangeStart, LoaderAddMessage for each
 * message, LoaderRangeFinish and LoaderEnd (or LoaderRangeAbort after a
 * rollback).  The consumer opens one after-trigger level around a range
 * for all the targets of a stream (routing).
 *
 * Rows go through table_multi_insert with a BulkInsertState, 1000 at a
 * time, then get their index entries and AFTER ROW triggers, as in
 * copyfrom.c; CHECK and NOT NULL constraints are checked per row before
 * buffering.  A table with BEFORE ROW triggers is written row by row so
 * the triggers see each row first.  Partitioned tables route each row to
 * its partition the same way (loader_partitions.c).  Tables with
 * row-level security, and partitioned tables with a foreign partition, go
 * through a prepared INSERT instead, which applies the policies, at the
 * price of speed.  Citus tables go through SQL too, whose shards Citus's
 * planner finds: a batched INSERT ... SELECT (loader_citus.c).
 *
 * The BulkInsertState keeps a pin on the last page it wrote; a pin taken
 * in a subtransaction is released by its abort, so the state lives only as
 * long as one range and is dropped without unpinning after an abort.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/hio.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "loader.h"

/*
 * Locks the target for the transaction and checks that it can be loaded
 * (not another session's temporary table) and the owner's INSERT
 * privilege, at the top level of the batch: a failure here is no
 * message's fault, so it aborts the batch instead of making dead letters.
 */
void
LoaderCheck(TargetState *ts)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	Relation	rel = table_open(ts->relid, RowExclusiveLock);
	ListCell   *lc;

	/* Only a table made before temporary tables were refused can be one. */
	if (RELATION_IS_OTHER_TEMP(rel))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot load stream \"%s\" into temporary table \"%s\" of another session",
						ts->cfg->name, RelationGetRelationName(rel)),
				 errhint("Point the stream at a permanent table with alter_stream.")));
	rte->rtekind = RTE_RELATION;
	rte->relid = ts->relid;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	rte->checkAsUser = ts->cfg->owner;
	foreach(lc, ts->insert_cols)
		rte->insertedCols = bms_add_member(rte->insertedCols,
										   lfirst_int(lc) - FirstLowInvalidHeapAttributeNumber);
	ExecCheckRTPerms(list_make1(rte), true);
	table_close(rel, NoLock);
}

/*
 * Whether a partitioned table has a foreign partition at any level, which
 * the prepared INSERT loads through its foreign data wrapper.
 */
static bool
HasForeignPartition(Oid relid)
{
	List	   *parts = find_all_inheritors(relid, NoLock, NULL);
	ListCell   *lc;

	foreach(lc, parts)
		if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_FOREIGN_TABLE)
			return true;
	return false;
}

/* Opens the target for one transaction; checks the owner's privileges. */
void
LoaderBegin(TargetState *ts)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	TupleDesc	desc;
	MemoryContext old;
	ListCell   *lc;
	int			i;

	ts->rel = table_open(ts->relid, RowExclusiveLock);
	desc = RelationGetDescr(ts->rel);
	rte->rtekind = RTE_RELATION;
	rte->relid = ts->relid;
	rte->relkind = ts->rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	rte->checkAsUser = ts->cfg->owner;
	foreach(lc, ts->insert_cols)
		rte->insertedCols = bms_add_member(rte->insertedCols,
										   lfirst_int(lc) - FirstLowInvalidHeapAttributeNumber);
	ExecCheckRTPerms(list_make1(rte), true);

	ts->use_spi = ts->citus ||
		(rte->relkind != RELKIND_RELATION &&
		 rte->relkind != RELKIND_PARTITIONED_TABLE) ||
		check_enable_rls(ts->relid, ts->cfg->owner, false) == RLS_ENABLED ||
		(rte->relkind == RELKIND_PARTITIONED_TABLE &&
		 HasForeignPartition(ts->relid));

	ts->estate = CreateExecutorState();
	ts->estate->es_output_cid = GetCurrentCommandId(true);
	old = MemoryContextSwitchTo(ts->estate->es_query_cxt);
	ExecInitRangeTable(ts->estate, list_make1(rte));
	ts->present = palloc(sizeof(bool) * ts->natts);
	ts->volatile_defaults = false;
	ts->values = palloc(sizeof(Datum) * ts->natts);
	ts->nulls = palloc(sizeof(bool) * ts->natts);
	ts->msg_cxt = AllocSetContextCreate(ts->estate->es_query_cxt,
										"pg_streamml message",
										ALLOCSET_DEFAULT_SIZES);

	/* Defaults of the columns a message may leave out. */
	ts->defaults = palloc0(sizeof(ExprState *) * ts->natts);
	for (i = 0; i < ts->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Node	   *def;

		if (att->attisdropped || att->attgenerated)
			continue;
		def = build_column_default(ts->rel, i + 1);
		if (def)
		{
			Expr	   *planned = expression_planner((Expr *) def);

			ts->defaults[i] = ExecInitExpr(planned, NULL);
			/* As in COPY: such a default might look at rows not yet written. */
			if (contain_volatile_functions_not_nextval((Node *) planned))
				ts->volatile_defaults = true;
		}
	}

	ts->citus_batch = NULL;
	ts->citus_rri = NULL;
	ts->citus_slot = NULL;
	if (ts->citus)
	{
		LoaderCitusUse2PC();
		LoaderCitusBegin(ts);
	}
	if (ts->use_spi && ts->citus_batch == NULL)
	{
		/* row by row: row-level security, or Citus isolating a row */
		StringInfoData sql;
		StringInfoData vals;
		Oid		   *types = palloc(sizeof(Oid) * ts->natts);
		int			n = 0;

		initStringInfo(&sql);
		initStringInfo(&vals);
		appendStringInfo(&sql, "INSERT INTO %s (",
						 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(ts->rel)),
													RelationGetRelationName(ts->rel)));
		for (i = 0; i < ts->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (att->attisdropped || att->attgenerated)
				continue;
			appendStringInfo(&sql, "%s%s", n ? ", " : "",
							 quote_identifier(NameStr(att->attname)));
			appendStringInfo(&vals, "%s$%d", n ? ", " : "", n + 1);
			types[n++] = att->atttypid;
		}
		appendStringInfo(&sql, ") VALUES (%s)", vals.data);
		CitusWriterDepth++;
		PG_TRY();
		{
			ts->spi_plan = SPI_prepare(sql.data, n, types);
		}
		PG_FINALLY();
		{
			CitusWriterDepth--;
		}
		PG_END_TRY();
		if (ts->spi_plan == NULL)
			elog(ERROR, "cannot prepare insert into target: %s",
				 SPI_result_code_string(SPI_result));
		MemoryContextSwitchTo(old);
		return;
	}
	if (ts->use_spi)
	{
		MemoryContextSwitchTo(old);
		return;
	}

	ts->rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(ts->estate, ts->rri, 1);
	ExecOpenIndices(ts->rri, false);
	ts->multi = !ts->volatile_defaults &&
		!(ts->rri->ri_TrigDesc &&
		  (ts->rri->ri_TrigDesc->trig_insert_before_row ||
		   ts->rri->ri_TrigDesc->trig_insert_instead_row));
	ts->slots = palloc0(sizeof(TupleTableSlot *) * MAX_BUFFERED_ROWS);
	ts->nbuffered = 0;
	if (ts->rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		PartitionsBegin(ts);
	MemoryContextSwitchTo(old);
}

/*
 * Starts a range: statement triggers, transition tables.  The caller has
 * opened the after-trigger query level that the range's events go to, one
 * for all the targets of a stream, as one INSERT into a partitioned table
 * has one for all its partitions.
 */
void
LoaderRangeStart(TargetState *ts)
{
	if (ts->citus)
		LoaderCitusRangeStart(ts);
	if (ts->use_spi)
		return;
	/* Triggers with transition tables see the range's rows, as in COPY. */
	ts->transition = MakeTransitionCaptureState(ts->rel->trigdesc,
												ts->relid, CMD_INSERT);
	ExecBSInsertTriggers(ts->estate, ts->rri);
	ts->bistate = GetBulkInsertState();
}

/* Writes the buffered rows, then their index entries and triggers. */
static void
FlushBuffer(TargetState *ts)
{
	int			i;

	if (ts->nbuffered == 0)
		return;
	table_multi_insert(ts->rel, ts->slots, ts->nbuffered,
					   ts->estate->es_output_cid, 0, ts->bistate);
	for (i = 0; i < ts->nbuffered; i++)
	{
		List	   *recheck = NIL;

		if (ts->rri->ri_NumIndices > 0)
			recheck = ExecInsertIndexTuples(ts->rri, ts->slots[i], ts->estate,
											false, false, NULL, NIL);
		ExecARInsertTriggers(ts->estate, ts->rri, ts->slots[i], recheck,
							 ts->transition);
		list_free(recheck);
		ExecClearTuple(ts->slots[i]);
	}
	ts->nbuffered = 0;
	ResetPerTupleExprContext(ts->estate);
}

/* Takes one decoded row: defaults, constraints, then into the table. */
static void
EmitRowFast(TargetState *ts, Datum *values, bool *nulls, bool *present)
{
	ExprContext *econtext = GetPerTupleExprContext(ts->estate);
	TupleTableSlot *slot;
	int			i;

	for (i = 0; i < ts->natts; i++)
	{
		if (present[i])
			continue;
		if (ts->defaults[i])
			values[i] = ExecEvalExpr(ts->defaults[i], econtext, &nulls[i]);
		else
		{
			values[i] = (Datum) 0;
			nulls[i] = true;
		}
	}

	if (ts->citus)
		LoaderCitusAdd(ts, values, nulls);
	if (ts->citus_batch)
	{
		ResetPerTupleExprContext(ts->estate);
		return;
	}
	if (ts->use_spi)
	{
		Datum	   *args = palloc(sizeof(Datum) * ts->natts);
		char	   *argn = palloc(ts->natts + 1);
		TupleDesc	desc = RelationGetDescr(ts->rel);
		int			n = 0;
		int			rc;

		for (i = 0; i < ts->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (att->attisdropped || att->attgenerated)
				continue;
			args[n] = values[i];
			argn[n++] = nulls[i] ? 'n' : ' ';
		}
		CitusWriterDepth++;
		PG_TRY();
		{
			rc = SPI_execute_plan(ts->spi_plan, args, argn, false, 0);
		}
		PG_FINALLY();
		{
			CitusWriterDepth--;
		}
		PG_END_TRY();
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "insert into target failed: %s", SPI_result_code_string(rc));
		ResetPerTupleExprContext(ts->estate);
		return;
	}
	if (ts->parts)
	{
		PartitionsEmit(ts, values, nulls);
		return;
	}

	if (ts->slots[ts->nbuffered] == NULL)
	{
		/*
		 * Slots are made on demand, maybe inside a subtransaction: over a
		 * copy of the descriptor, which no resource owner tracks.
		 */
		MemoryContext old = MemoryContextSwitchTo(ts->estate->es_query_cxt);

		if (ts->slot_desc == NULL)
			ts->slot_desc = CreateTupleDescCopy(RelationGetDescr(ts->rel));
		ts->slots[ts->nbuffered] =
			MakeSingleTupleTableSlot(ts->slot_desc, table_slot_callbacks(ts->rel));
		MemoryContextSwitchTo(old);
	}
	slot = ts->slots[ts->nbuffered];
	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, sizeof(Datum) * ts->natts);
	memcpy(slot->tts_isnull, nulls, sizeof(bool) * ts->natts);
	ExecStoreVirtualTuple(slot);

	if (ts->rri->ri_TrigDesc && ts->rri->ri_TrigDesc->trig_insert_before_row &&
		!ExecBRInsertTriggers(ts->estate, ts->rri, slot))
		return;					/* a BEFORE trigger skipped the row */
	if (ts->rel->rd_att->constr)
	{
		if (ts->rel->rd_att->constr->has_generated_stored)
			ExecComputeStoredGenerated(ts->rri, ts->estate, slot, CMD_INSERT);
		ExecConstraints(ts->rri, slot, ts->estate);
	}
	if (ts->multi)
	{
		/* The values live in the message's memory; the buffer outlives it. */
		ExecMaterializeSlot(slot);
		ResetPerTupleExprContext(ts->estate);
		if (++ts->nbuffered == MAX_BUFFERED_ROWS)
			FlushBuffer(ts);
	}
	else
	{
		List	   *recheck = NIL;

		table_tuple_insert(ts->rel, slot, ts->estate->es_output_cid, 0,
						   ts->bistate);
		if (ts->rri->ri_NumIndices > 0)
			recheck = ExecInsertIndexTuples(ts->rri, slot, ts->estate,
											false, false, NULL, NIL);
		ExecARInsertTriggers(ts->estate, ts->rri, slot, recheck,
							 ts->transition);
		list_free(recheck);
		ExecClearTuple(slot);
		ResetPerTupleExprContext(ts->estate);
	}
}

/*
 * Decodes one message into row(s) of the target, in memory that is reset
 * after the message, as COPY FROM does with its per-tuple context.
 */
void
LoaderAddMessage(TargetState *ts, KafkaMessage *m)
{
	StreamConfig *cfg = ts->cfg;
	MemoryContext old = MemoryContextSwitchTo(ts->msg_cxt);

	if (cfg->format[0] == 'c')	/* csv */
		DecodeCsv(ts, m, EmitRowFast);
	else
	{
		memset(ts->nulls, 0, sizeof(bool) * ts->natts);
		memset(ts->present, 0, sizeof(bool) * ts->natts);
		if (cfg->format[0] == 'j')
			DecodeJson(ts, m, ts->values, ts->nulls, ts->present);
		else
			DecodeText(ts, m, ts->values, ts->nulls, ts->present);
		EmitRowFast(ts, ts->values, ts->nulls, ts->present);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(ts->msg_cxt);
}

/*
 * Ends a range that loaded: the last rows, the statement triggers.  The
 * caller then fires the queued after triggers (AfterTriggerEndQuery).
 */
void
LoaderRangeFinish(TargetState *ts)
{
	if (ts->citus)
		LoaderCitusRangeFinish(ts);
	if (ts->use_spi)
		return;
	if (ts->parts)
		PartitionsFinish(ts);
	else
		FlushBuffer(ts);
	ExecASInsertTriggers(ts->estate, ts->rri, ts->transition);
	FreeBulkInsertState(ts->bistate);
	ts->bistate = NULL;
	ts->transition = NULL;
}

/*
 * Forgets a range whose subtransaction was rolled back.  The abort has
 * released the relation, its indexes, locks, pins and tuple descriptors;
 * what is left is memory.
 */
void
LoaderRangeAbort(TargetState *ts)
{
	if (ts->estate)
		MemoryContextDelete(ts->estate->es_query_cxt);
	ts->estate = NULL;
	ts->rri = NULL;
	if (ts->parts)
		PartitionsAbort(ts);
	ts->slots = NULL;
	ts->slot_desc = NULL;
	ts->nbuffered = 0;
	ts->bistate = NULL;
	ts->transition = NULL;
	ts->msg_cxt = NULL;
	ts->spi_plan = NULL;
	ts->citus_batch = NULL;
	ts->citus_rri = NULL;
	ts->citus_slot = NULL;
	ts->rel = NULL;
}

/* Closes the target at the end of the transaction. */
void
LoaderEnd(TargetState *ts)
{
	if (ts->rri)
	{
		int			i;

		for (i = 0; i < MAX_BUFFERED_ROWS && ts->slots[i]; i++)
			ExecDropSingleTupleTableSlot(ts->slots[i]);
		ts->slot_desc = NULL;
	}
	if (ts->estate)
	{
		/*
		 * The executor's own slots: AFTER ROW triggers fetch each row into
		 * ExecGetTriggerOldSlot's slot when AfterTriggerEndQuery fires them,
		 * a slot in es_tupleTable over the relation's descriptor, which it
		 * pins with the range's resource owner.  FreeExecutorState only
		 * frees their memory, so release them here, as CopyFrom does after
		 * AfterTriggerEndQuery; otherwise the subtransaction's commit warns
		 * of a TupleDesc reference leak.  After an abort the resource owner
		 * has already dropped the pins: LoaderRangeAbort must not do this.
		 *
		 * The main target's executor state also fires the AFTER triggers of
		 * routed tables (one after-trigger level for all targets), opening
		 * those tables as trigger result relations: so this is done even
		 * when the main target itself is loaded through SPI (no rri).
		 */
		ExecResetTupleTable(ts->estate->es_tupleTable, false);
		/* The leaves, before the result relations, as CopyFrom does. */
		if (ts->parts)
			PartitionsEnd(ts);
		ExecCloseResultRelations(ts->estate);
		ExecCloseRangeTableRelations(ts->estate);
	}
	if (ts->spi_plan)
		SPI_freeplan(ts->spi_plan);
	ts->spi_plan = NULL;
	LoaderCitusEnd(ts);
	FreeExecutorState(ts->estate);
	ts->estate = NULL;
	ts->msg_cxt = NULL;
	ts->rri = NULL;
	ts->slots = NULL;
	table_close(ts->rel, NoLock);
	ts->rel = NULL;
}
