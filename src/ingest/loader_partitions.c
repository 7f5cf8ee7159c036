/*
 * loader_partitions.c
 *		Routing decoded rows to the partitions of a partitioned target.
 *
 * A partitioned target (without row-level security, which stays on the
 * prepared INSERT of loader.c) is loaded the way COPY FROM loads one:
 *
 * - LoaderBegin sets up tuple routing (ExecSetupPartitionTupleRouting) in
 *   the range's executor state, with a ModifyTableState that only carries
 *   what the routing code reads (no plan: no RETURNING, no ON CONFLICT).
 * - Each row is stored in a slot of the root's row type and routed by
 *   ExecFindPartition, which opens a leaf the first time a row goes to it:
 *   a ResultRelInfo with its indexes, constraints and triggers, and the map
 *   from the root's column order to the leaf's (ri_RootToPartitionMap).
 *   A row no partition accepts raises the executor's own error ("no
 *   partition of relation ... found for row"), so it is a dead letter.
 * - Leaves without BEFORE/INSTEAD OF ROW triggers get a buffer of their
 *   own (slots of the leaf's row type, a BulkInsertState), filled with
 *   converted rows; all buffers are written (table_multi_insert, index
 *   entries, AFTER ROW triggers) when they hold MAX_BUFFERED_ROWS rows in
 *   all, at the end of the range, and before a row goes to a leaf with
 *   BEFORE ROW triggers.  Such a leaf is written row by row, its triggers
 *   seeing every earlier row of the range, as in COPY.  At most
 *   MAX_LEAF_BUFFERS leaves keep a buffer; past that all are flushed and
 *   dropped.
 * - AFTER ROW triggers and the parent's transition tables get each row as
 *   stored in its leaf; the trigger code converts it back to the root's row
 *   type for the transition table through the leaf's child-to-root map,
 *   which is made here, in the executor state's memory, the first time a
 *   leaf is seen (made lazily by the trigger code it would live in the
 *   message's memory).
 *
 * Lifetimes follow loader.c: everything lives in the range's executor
 * state, made inside the range's subtransaction.  After a load,
 * PartitionsEnd (from LoaderEnd, after AfterTriggerEndQuery has fired the
 * leaves' AFTER ROW triggers through their ResultRelInfos) drops the
 * buffers' slots and closes the leaves with ExecCleanupTupleRouting.
 * After a rollback the subtransaction's resource owner has already
 * released the leaves, their indexes, the pins of the BulkInsertStates and
 * of the slots, and the partition directory's relation references, so
 * PartitionsAbort only forgets pointers: the memory goes with the executor
 * state's context, and nothing is released twice.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/tableam.h"
#include "access/tupconvert.h"
#include "commands/trigger.h"
#include "executor/execPartition.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "nodes/execnodes.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "loader.h"

/* Leaves that keep a multi-insert buffer at the same time. */
#define MAX_LEAF_BUFFERS 32

/* What the loader keeps for one leaf partition a row went to. */
typedef struct LeafBuffer
{
	ResultRelInfo *rri;
	bool		multi;			/* no BEFORE/INSTEAD OF ROW triggers */
	TupleDesc	desc;			/* copy of the leaf's, for the slots */
	TupleTableSlot **slots;		/* made on demand, MAX_BUFFERED_ROWS */
	int			nused;
	BulkInsertState bistate;
} LeafBuffer;

/* The routing state of a partitioned target for one range. */
typedef struct PartitionLoad
{
	ModifyTableState *mtstate;
	PartitionTupleRouting *proute;
	TupleTableSlot *root_slot;	/* the decoded row, root's row type */
	List	   *leaves;			/* LeafBuffer, most recently added last */
	int			nbuffered;		/* rows in all buffers */
	LeafBuffer *cur;			/* the leaf of the previous row */
} PartitionLoad;

/*
 * Sets up tuple routing for a partitioned target; called by LoaderBegin
 * in the executor state's memory, once ts->rri is open.
 */
void
PartitionsBegin(TargetState *ts)
{
	PartitionLoad *p = palloc0(sizeof(PartitionLoad));
	ModifyTableState *mtstate = makeNode(ModifyTableState);

	Assert(CurrentMemoryContext == ts->estate->es_query_cxt);
	mtstate->ps.plan = NULL;
	mtstate->ps.state = ts->estate;
	mtstate->operation = CMD_INSERT;
	mtstate->mt_nrels = 1;
	mtstate->resultRelInfo = ts->rri;
	mtstate->rootResultRelInfo = ts->rri;
	p->mtstate = mtstate;
	p->proute = ExecSetupPartitionTupleRouting(ts->estate, ts->rel);
	p->root_slot = MakeSingleTupleTableSlot(CreateTupleDescCopy(RelationGetDescr(ts->rel)),
											&TTSOpsVirtual);
	ts->parts = p;
}

/* Writes one leaf's buffered rows, then their index entries and triggers. */
static void
FlushLeaf(TargetState *ts, LeafBuffer *lb)
{
	ResultRelInfo *rri = lb->rri;
	int			i;

	if (lb->nused == 0)
		return;
	table_multi_insert(rri->ri_RelationDesc, lb->slots, lb->nused,
					   ts->estate->es_output_cid, 0, lb->bistate);
	for (i = 0; i < lb->nused; i++)
	{
		List	   *recheck = NIL;

		if (rri->ri_NumIndices > 0)
			recheck = ExecInsertIndexTuples(rri, lb->slots[i], ts->estate,
											false, false, NULL, NIL);
		ExecARInsertTriggers(ts->estate, rri, lb->slots[i], recheck,
							 ts->transition);
		list_free(recheck);
		ExecClearTuple(lb->slots[i]);
	}
	ts->parts->nbuffered -= lb->nused;
	lb->nused = 0;
}

/* Writes the rows buffered for every leaf. */
static void
FlushAll(TargetState *ts)
{
	ListCell   *lc;

	if (ts->parts->nbuffered == 0)
		return;
	/* Transition tables take each row from its leaf, converted. */
	if (ts->transition)
		ts->transition->tcs_original_insert_tuple = NULL;
	foreach(lc, ts->parts->leaves)
		FlushLeaf(ts, (LeafBuffer *) lfirst(lc));
	Assert(ts->parts->nbuffered == 0);
	ResetPerTupleExprContext(ts->estate);
}

/*
 * Releases a leaf buffer's slots, their descriptor and the bulk-insert
 * pin; the buffer must be empty.
 */
static void
DropLeafBuffer(LeafBuffer *lb)
{
	int			i;

	Assert(lb->nused == 0);
	if (lb->slots)
	{
		for (i = 0; i < MAX_BUFFERED_ROWS && lb->slots[i]; i++)
			ExecDropSingleTupleTableSlot(lb->slots[i]);
		pfree(lb->slots);
		FreeTupleDesc(lb->desc);
	}
	if (lb->bistate)
		FreeBulkInsertState(lb->bistate);
	pfree(lb);
}

/*
 * The loader's record of the leaf a row was routed to, made the first
 * time; flushes and drops every buffer when too many leaves have one.
 */
static LeafBuffer *
LeafFor(TargetState *ts, ResultRelInfo *rri)
{
	PartitionLoad *p = ts->parts;
	TriggerDesc *trig = rri->ri_TrigDesc;
	MemoryContext old;
	LeafBuffer *lb;
	ListCell   *lc;

	/* Rows in time order mostly go where the previous one went. */
	if (p->cur && p->cur->rri == rri)
		return p->cur;
	foreach(lc, p->leaves)
	{
		lb = lfirst(lc);
		if (lb->rri == rri)
			return lb;
	}

	/* A foreign partition attached since LoaderBegin looked: retry later. */
	if (rri->ri_FdwRoutine != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot route rows to foreign partition \"%s\" on the fast path",
						RelationGetRelationName(rri->ri_RelationDesc))));

	if (list_length(p->leaves) >= MAX_LEAF_BUFFERS)
	{
		FlushAll(ts);
		foreach(lc, p->leaves)
			DropLeafBuffer((LeafBuffer *) lfirst(lc));
		list_free(p->leaves);
		p->leaves = NIL;
		p->cur = NULL;
	}

	old = MemoryContextSwitchTo(ts->estate->es_query_cxt);
	lb = palloc0(sizeof(LeafBuffer));
	lb->rri = rri;
	lb->multi = !ts->volatile_defaults &&
		!(trig && (trig->trig_insert_before_row ||
				   trig->trig_insert_instead_row));
	if (lb->multi)
	{
		lb->desc = CreateTupleDescCopy(RelationGetDescr(rri->ri_RelationDesc));
		lb->slots = palloc0(sizeof(TupleTableSlot *) * MAX_BUFFERED_ROWS);
		lb->bistate = GetBulkInsertState();
	}
	/* Made now, in the query's memory, not lazily in a message's. */
	if (ts->transition)
		(void) ExecGetChildToRootMap(rri);
	p->leaves = lappend(p->leaves, lb);
	MemoryContextSwitchTo(old);
	return lb;
}

/*
 * Routes one decoded row (root's row type, defaults filled in) to its
 * leaf and buffers or inserts it there.
 */
void
PartitionsEmit(TargetState *ts, Datum *values, bool *nulls)
{
	PartitionLoad *p = ts->parts;
	EState	   *estate = ts->estate;
	TupleTableSlot *slot = p->root_slot;
	ResultRelInfo *rri;
	Relation	leaf;
	LeafBuffer *lb;
	TupleConversionMap *map;

	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, sizeof(Datum) * ts->natts);
	memcpy(slot->tts_isnull, nulls, sizeof(bool) * ts->natts);
	ExecStoreVirtualTuple(slot);

	rri = ExecFindPartition(p->mtstate, ts->rri, p->proute, slot, estate);
	leaf = rri->ri_RelationDesc;
	lb = LeafFor(ts, rri);
	if (lb != p->cur)
	{
		/* Row-by-row triggers see every earlier row of the range. */
		if (!lb->multi)
			FlushAll(ts);
		ReleaseBulkInsertStatePin(ts->bistate);
		p->cur = lb;
	}

	map = rri->ri_RootToPartitionMap;
	if (lb->multi)
	{
		TupleTableSlot *bslot;

		if (lb->slots[lb->nused] == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);

			lb->slots[lb->nused] =
				MakeSingleTupleTableSlot(lb->desc, table_slot_callbacks(leaf));
			MemoryContextSwitchTo(old);
		}
		bslot = lb->slots[lb->nused];
		if (map)
			slot = execute_attr_map_slot(map->attrMap, slot, bslot);
		else
		{
			ExecCopySlot(bslot, slot);
			slot = bslot;
		}
	}
	else if (map)
		slot = execute_attr_map_slot(map->attrMap, slot,
									 rri->ri_PartitionTupleSlot);
	slot->tts_tableOid = RelationGetRelid(leaf);

	if (rri->ri_TrigDesc && rri->ri_TrigDesc->trig_insert_before_row &&
		!ExecBRInsertTriggers(estate, rri, slot))
		return;					/* a BEFORE trigger skipped the row */
	if (leaf->rd_att->constr)
	{
		if (leaf->rd_att->constr->has_generated_stored)
			ExecComputeStoredGenerated(rri, estate, slot, CMD_INSERT);
		ExecConstraints(rri, slot, estate);
	}
	/* A BEFORE trigger may have moved the row out of its partition. */
	if (!lb->multi)
		ExecPartitionCheck(rri, slot, estate, true);

	if (lb->multi)
	{
		/* The values live in the message's memory; the buffer outlives it. */
		ExecMaterializeSlot(slot);
		ResetPerTupleExprContext(estate);
		lb->nused++;
		if (++p->nbuffered == MAX_BUFFERED_ROWS)
			FlushAll(ts);
	}
	else
	{
		List	   *recheck = NIL;

		table_tuple_insert(leaf, slot, estate->es_output_cid, 0, ts->bistate);
		if (rri->ri_NumIndices > 0)
			recheck = ExecInsertIndexTuples(rri, slot, estate,
											false, false, NULL, NIL);
		if (ts->transition)
			ts->transition->tcs_original_insert_tuple = NULL;
		ExecARInsertTriggers(estate, rri, slot, recheck, ts->transition);
		list_free(recheck);
		ExecClearTuple(slot);
		ResetPerTupleExprContext(estate);
	}
}

/*
 * Writes what the buffers hold at the end of a range that loaded, and
 * drops the bulk-insert pins while the range's resource owner holds them.
 */
void
PartitionsFinish(TargetState *ts)
{
	ListCell   *lc;

	FlushAll(ts);
	foreach(lc, ts->parts->leaves)
	{
		LeafBuffer *lb = lfirst(lc);

		if (lb->bistate)
			FreeBulkInsertState(lb->bistate);
		lb->bistate = NULL;
	}
}

/*
 * Releases the buffers and closes the leaves, after the range's AFTER
 * triggers have fired; called by LoaderEnd before it closes the root.
 */
void
PartitionsEnd(TargetState *ts)
{
	PartitionLoad *p = ts->parts;
	ListCell   *lc;

	foreach(lc, p->leaves)
		DropLeafBuffer((LeafBuffer *) lfirst(lc));
	list_free(p->leaves);
	ExecDropSingleTupleTableSlot(p->root_slot);
	ExecCleanupTupleRouting(p->mtstate, p->proute);
	ts->parts = NULL;
}

/*
 * Forgets the routing state of a range that was rolled back: the abort
 * released its relations, pins and descriptor references, and its memory
 * goes with the executor state's.
 */
void
PartitionsAbort(TargetState *ts)
{
	ts->parts = NULL;
}
