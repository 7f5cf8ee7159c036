/*
 * predstash.c
 *		The predictions a scorer wrote in the loading statement, kept in
 *		memory for the horizon tracker that labels them in that statement.
 *
 * A horizon tracker on a scored table labels, in each batch, the rows its
 * newest rows reach: nearly all of them loaded by the same statement, whose
 * scorer has just written their predictions.  Reading those back by the
 * predictions table's primary key costs an index step and a heap fetch per
 * row, and many more steps when the keys of several Kafka partitions
 * interleave in the index.  The scorer keeps instead what an outcome takes
 * of each prediction row it writes (PredStashAdd), and the tracker takes a
 * labelled key's prediction from that copy when the copy is certainly all
 * the index would give for the key:
 *
 * - The predictions table has a unique, immediate index on exactly (key,
 *   model), the key one integer column: the scorer's row (K, m) is then
 *   the only row of K and m.  A row of K by another model is older: K was
 *   loaded before and scored by a model the scorer no longer serves, or
 *   written by hand.  The tracker's catalog row keeps a floor
 *   (outcome_trackers.stash_floor): every such row has a key at or below
 *   it.  It is the index's last key (live or not), read under a lock that
 *   keeps every writer of the table out until the reader commits: by
 *   track_outcomes (CREATE TRIGGER's lock), and again when the scorer's
 *   models change (promote, set_challengers: OutcomeTrackersRearm), after
 *   which every row written comes from the new models, or from a load that
 *   took the table's lock after the change and so heard of it: a load whose
 *   scorer read its definition before the change and the lock after it
 *   finds its models changed (scorerinsert.c, ModelsStillServed) and writes
 *   rows the tracker's trigger on the predictions table takes as not the
 *   scorer's (PredStashSetWriter is not told).  The floor becomes NULL,
 *   and the copy unused, when rows that are not the scorer's are inserted
 *   into the predictions table (its tracker trigger sees them:
 *   PredStashScorerWriting), at any UPDATE of it, and at an automatic
 *   promotion that cannot take the lock at once.  So a key above the floor,
 *   with one row in the copy, has no other row.  Keys at or below it, or
 *   with two rows (a champion and its challengers), are read from the
 *   index.
 * - The copy is of this statement and complete: made by the scorer whose
 *   trigger fires before the tracker's on the same transition table, in
 *   the same (sub)transaction, every trigger between them the extension's
 *   (none writes the predictions table), the predictions table without
 *   rules and with the extension's triggers only (nothing changes a row
 *   after the scorer wrote it).  The scorer's trigger drops any older copy
 *   first thing, and the tracker takes the copy away, so no copy outlives
 *   its statement's tracker.  Not under SERIALIZABLE (the index read takes
 *   the predicate locks).
 *
 * What a tracker reads from the copy is what its index read would give
 * under the statement's snapshot after a command counter increment: the
 * rows the statement wrote.  A row of the key that another session deleted
 * and committed after that snapshot was taken (the scorer's unique check
 * let the new row in) would be read by the index and not here: as if the
 * snapshot were taken just after that commit.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/itup.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_opfamily.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "catalog/namespace.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "number.h"
#include "pg_streamml.h"
#include "quality/predstash.h"

/*
 * An entry of a copy's index by key (its row in rows): what is sorted, not
 * the rows themselves, four times as wide.
 */
typedef struct StashOrder
{
	int64		key;
	int32		row;
} StashOrder;

/* sort_stash_order(): sort_template's quicksort with the comparison inlined */
#define ST_SORT sort_stash_order
#define ST_ELEMENT_TYPE StashOrder
#define ST_COMPARE(a, b) (((a)->key > (b)->key) - ((a)->key < (b)->key))
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/* A statement writing more rows keeps none (10 MB of rows or so). */
#define STASH_MAX_ROWS (256 * 1024)

/* Distinct model, role and class strings a copy holds at most. */
#define STASH_MAX_STRINGS 256

struct PredStash
{
	MemoryContext cxt;
	Oid			predsid;
	Oid			sourceid;
	char	   *scorer;
	Oid			scorer_trigger; /* the trigger that made it */
	Oid			ext_namespace;	/* the extension's schema */
	const void *newtable;		/* the statement's transition table */
	int			nest_level;
	AttrNumber	key;
	Oid			keytype;
	PredictionColumns pc;		/* where the other columns are */
	bool		sorted;			/* rows came in key order */
	int			n;
	int			max;
	PredStashRow *rows;
	StashOrder *order;			/* else: the rows by key, made by the tracker */
	int			nstrings;
	char	   *strings[STASH_MAX_STRINGS];
	Datum		last_datum[3];	/* the last model, role and class datum */
	const char *last_string[3]; /* and their strings */
};

static PredStash *Stash = NULL;
static PredStash *Taken = NULL;
static PredStashWriter Writer = {InvalidOid, NULL};
static bool CallbacksRegistered = false;

/* Transaction end: the copies lived in the transaction's memory. */
static void
StashXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		Stash = NULL;
		Taken = NULL;
		Writer.predsid = InvalidOid;
	}
}

/* Subtransaction abort: the rows it wrote are no longer there. */
static void
StashSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		PredStashReset();
		Writer.predsid = InvalidOid;
	}
}

/* Frees a copy. */
static void
StashFree(PredStash *st)
{
	if (st != NULL)
		MemoryContextDelete(st->cxt);
}

/* Drops the copy, and the one a tracker took, if any. */
void
PredStashReset(void)
{
	PredStash  *st = Stash;
	PredStash  *tk = Taken;

	Stash = NULL;
	Taken = NULL;
	StashFree(st);
	StashFree(tk);
}

/* Whether a trigger fires in this session (as TriggerEnabled has it). */
static bool
TriggerFires(const Trigger *tg)
{
	if (tg->tgqual != NULL)
		return false;			/* a WHEN clause: maybe not */
	if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		return tg->tgenabled == TRIGGER_FIRES_ON_REPLICA ||
			tg->tgenabled == TRIGGER_FIRES_ALWAYS;
	return tg->tgenabled == TRIGGER_FIRES_ON_ORIGIN ||
		tg->tgenabled == TRIGGER_FIRES_ALWAYS;
}

/*
 * Whether triggers [from, to) of trig all call the extension's functions
 * (its schema is ns: none can write the predictions table), and, when
 * firing is asked for, all fire in this session.
 */
static bool
ExtensionTriggersOnly(const TriggerDesc *trig, int from, int to, Oid ns, bool firing)
{
	for (int i = from; i < to; i++)
		if (get_func_namespace(trig->triggers[i].tgfoid) != ns ||
			(firing && !TriggerFires(&trig->triggers[i])))
			return false;
	return true;
}

/*
 * The unique, immediate, valid index of rel on exactly (keyatt, modelatt),
 * without predicate, keyatt an integer in the default ascending order, or
 * InvalidOid.
 */
static Oid
KeyModelIndex(Relation rel, AttrNumber keyatt, AttrNumber modelatt)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Oid			found = InvalidOid;

	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ix = idx->rd_index;

		if (ix->indisunique && ix->indimmediate && ix->indisvalid &&
			ix->indnkeyatts == 2 && ix->indkey.values[0] == keyatt &&
			ix->indkey.values[1] == modelatt &&
			idx->rd_rel->relam == BTREE_AM_OID &&
			(idx->rd_indoption[0] & INDOPTION_DESC) == 0 &&
			idx->rd_opfamily[0] == INTEGER_BTREE_FAM_OID &&
			RelationGetIndexPredicate(idx) == NIL)
			found = RelationGetRelid(idx);
		index_close(idx, AccessShareLock);
		if (OidIsValid(found))
			break;
	}
	list_free(indexes);
	return found;
}

/*
 * The floor of a new tracker (see the top of the file): the last key of
 * preds' unique (key, model) index, live or not, or the smallest bigint when
 * it has no entry; *isnull when preds has no such index.
 */
Datum
PredStashFloor(Relation preds, AttrNumber keyatt, AttrNumber modelatt, bool *isnull)
{
	Oid			ixoid = (keyatt > 0 && modelatt > 0) ?
		KeyModelIndex(preds, keyatt, modelatt) : InvalidOid;
	Relation	idx;
	IndexScanDesc scan;
	int64		floor = PG_INT64_MIN;

	*isnull = !OidIsValid(ixoid);
	if (*isnull)
		return (Datum) 0;
	idx = index_open(ixoid, AccessShareLock);
	scan = index_beginscan(preds, idx, GetActiveSnapshot(), 0, 0);
	scan->xs_want_itup = true;
	index_rescan(scan, NULL, 0, NULL, 0);
	if (index_getnext_tid(scan, BackwardScanDirection) != NULL)
	{
		bool		knull;
		Datum		d = index_getattr(scan->xs_itup, 1, scan->xs_itupdesc, &knull);

		if (!knull)
			floor = IntegerValue(TupleDescAttr(RelationGetDescr(preds), keyatt - 1)->atttypid, d);
	}
	index_endscan(scan);
	index_close(idx, AccessShareLock);
	return Int64GetDatum(floor);
}

/*
 * Starts the copy of scorer's statement into predictions table preds (open,
 * locked; its columns pc); td is the scorer's trigger call.  Drops any older
 * copy.  Keeps none where no tracker could use it (see the top of the file),
 * or where no tracker reads the table (it has no trigger).
 */
void
PredStashBegin(Relation preds, const PredictionColumns *pc, TriggerData *td,
			   const char *scorer)
{
	TriggerDesc *trig = preds->trigdesc;
	Oid			ns = get_func_namespace(td->tg_trigger->tgfoid);
	Oid			keytype;
	MemoryContext cxt;
	PredStash  *st;

	if (!CallbacksRegistered)
	{
		RegisterXactCallback(StashXactCallback, NULL);
		RegisterSubXactCallback(StashSubXactCallback, NULL);
		CallbacksRegistered = true;
	}
	PredStashReset();
	if (pc->nkeys != 1 || trig == NULL || preds->rd_rules != NULL ||
		IsolationUsesXactSnapshot() || pc->model <= 0)
		return;
	keytype = TupleDescAttr(RelationGetDescr(preds), pc->key[0] - 1)->atttypid;
	if (keytype != INT2OID && keytype != INT4OID && keytype != INT8OID)
		return;
	/* the extension's triggers only, all firing (a tracker's sees writers) */
	if (!ExtensionTriggersOnly(trig, 0, trig->numtriggers, ns, true))
		return;
	if (!OidIsValid(KeyModelIndex(preds, pc->key[0], pc->model)))
		return;
	cxt = AllocSetContextCreate(TopTransactionContext, "pg_streamml prediction stash",
								ALLOCSET_DEFAULT_SIZES);
	st = MemoryContextAllocZero(cxt, sizeof(PredStash));
	st->cxt = cxt;
	st->predsid = RelationGetRelid(preds);
	st->sourceid = RelationGetRelid(td->tg_relation);
	st->scorer = MemoryContextStrdup(cxt, scorer);
	st->scorer_trigger = td->tg_trigger->tgoid;
	st->ext_namespace = ns;
	st->newtable = td->tg_newtable;
	st->nest_level = GetCurrentTransactionNestLevel();
	st->key = pc->key[0];
	st->keytype = keytype;
	st->pc = *pc;
	st->pc.key = NULL;			/* (the scorer's memory) */
	st->sorted = true;
	st->max = 1024;
	st->rows = MemoryContextAlloc(cxt, sizeof(PredStashRow) * st->max);
	Stash = st;
}

/* The copy's string equal to text datum d, added if new; NULL when full. */
static const char *
StashString(PredStash *st, Datum d)
{
	text	   *tx = DatumGetTextPP(d);
	int			len = VARSIZE_ANY_EXHDR(tx);

	for (int i = st->nstrings - 1; i >= 0; i--)
		if (strncmp(st->strings[i], VARDATA_ANY(tx), len) == 0 &&
			st->strings[i][len] == '\0')
			return st->strings[i];
	if (st->nstrings == STASH_MAX_STRINGS)
		return NULL;
	st->strings[st->nstrings] = MemoryContextAlloc(st->cxt, len + 1);
	memcpy(st->strings[st->nstrings], VARDATA_ANY(tx), len);
	st->strings[st->nstrings][len] = '\0';
	return st->strings[st->nstrings++];
}

/*
 * StashString of the datum of column c (0 model, 1 role, 2 class): the
 * scorer passes one datum per model, role and class to all their rows.
 */
static inline const char *
StashColumnString(PredStash *st, int c, Datum d)
{
	if (st->last_string[c] == NULL || st->last_datum[c] != d)
	{
		st->last_string[c] = StashString(st, d);
		st->last_datum[c] = d;
	}
	return st->last_string[c];
}

/*
 * Copies the prediction rows the scorer is about to write (virtual slots of
 * the predictions table); a row it cannot keep drops the copy.
 */
void
PredStashAdd(TupleTableSlot **slots, int n)
{
	PredStash  *st = Stash;

	if (st == NULL)
		return;
	if (st->n + n > STASH_MAX_ROWS)
	{
		PredStashReset();
		return;
	}
	if (st->n + n > st->max)
	{
		st->max = Max(2 * st->max, st->n + n);
		st->rows = repalloc(st->rows, sizeof(PredStashRow) * st->max);
	}
	for (int i = 0; i < n; i++)
	{
		TupleTableSlot *slot = slots[i];
		PredStashRow *r = &st->rows[st->n];
		Datum	   *v;
		bool	   *nulls;

		slot_getallattrs(slot);
		v = slot->tts_values;
		nulls = slot->tts_isnull;
		if (nulls[st->key - 1] || nulls[st->pc.model - 1] || nulls[st->pc.version - 1] ||
			nulls[st->pc.scored_at - 1] || (st->pc.role > 0 && nulls[st->pc.role - 1]))
		{
			PredStashReset();
			return;
		}
		r->key = IntegerValue(st->keytype, v[st->key - 1]);
		r->version = DatumGetInt32(v[st->pc.version - 1]);
		r->has_prediction = !nulls[st->pc.prediction - 1];
		r->prediction = r->has_prediction ? DatumGetFloat8(v[st->pc.prediction - 1]) : 0;
		r->has_probability = !nulls[st->pc.probability - 1];
		r->probability = r->has_probability ? DatumGetFloat8(v[st->pc.probability - 1]) : 0;
		r->scored_at = DatumGetTimestampTz(v[st->pc.scored_at - 1]);
		r->model = StashColumnString(st, 0, v[st->pc.model - 1]);
		r->role = st->pc.role > 0 ? StashColumnString(st, 1, v[st->pc.role - 1]) : "champion";
		r->class_label = nulls[st->pc.class_label - 1] ? NULL :
			StashColumnString(st, 2, v[st->pc.class_label - 1]);
		if (r->model == NULL || r->role == NULL ||
			(!nulls[st->pc.class_label - 1] && r->class_label == NULL))
		{
			PredStashReset();
			return;
		}
		if (st->n > 0 && r->key < st->rows[st->n - 1].key)
			st->sorted = false;
		st->n++;
	}
}

/*
 * Says which scorer is writing which predictions table now (its statement
 * triggers included; predsid InvalidOid: none); returns what was said
 * before, for PredStashRestoreWriter.
 */
PredStashWriter
PredStashSetWriter(Oid predsid, const char *scorer)
{
	PredStashWriter prev = Writer;

	Writer.predsid = predsid;
	Writer.scorer = scorer;
	return prev;
}

/* Puts back what PredStashSetWriter returned. */
void
PredStashRestoreWriter(PredStashWriter w)
{
	Writer = w;
}

/*
 * Whether the rows being inserted into preds are scorer's own: scorer is
 * writing them, and no trigger or rule but the extension's can be adding
 * rows of its own meanwhile (a user's trigger on the table inserting into
 * it).
 */
bool
PredStashScorerWriting(Relation preds, const char *scorer)
{
	TriggerDesc *trig = preds->trigdesc;

	if (!OidIsValid(Writer.predsid) || Writer.predsid != RelationGetRelid(preds) ||
		Writer.scorer == NULL || strcmp(Writer.scorer, scorer) != 0)
		return false;
	if (trig != NULL &&
		!ExtensionTriggersOnly(trig, 0, trig->numtriggers,
							   get_namespace_oid(STREAMML_SCHEMA, false), false))
		return false;
	return preds->rd_rules == NULL;
}

/*
 * Takes the copy of scorer's statement into predsid for the tracker whose
 * trigger call is td, or NULL when there is none it may read (see the top
 * of the file).  Either way no copy is left for a later call.  The copy
 * lives until the next one starts or the transaction ends.
 */
PredStash *
PredStashTake(TriggerData *td, const char *scorer, Oid predsid)
{
	PredStash  *st = Stash;
	TriggerDesc *trig = td->tg_relation->trigdesc;
	int			mine = -1;
	int			me = -1;

	Stash = NULL;
	if (st == NULL)
		return NULL;
	StashFree(Taken);
	Taken = st;
	if (st->predsid != predsid || strcmp(st->scorer, scorer) != 0 ||
		st->sourceid != RelationGetRelid(td->tg_relation) ||
		st->newtable != (const void *) td->tg_newtable ||
		st->nest_level != GetCurrentTransactionNestLevel() || trig == NULL ||
		IsolationUsesXactSnapshot())
		return NULL;
	/* the triggers fire in this order (by name) */
	for (int i = 0; i < trig->numtriggers; i++)
	{
		if (trig->triggers[i].tgoid == st->scorer_trigger)
			mine = i;
		if (trig->triggers[i].tgoid == td->tg_trigger->tgoid)
			me = i;
	}
	if (mine < 0 || me <= mine || !TriggerFires(&trig->triggers[mine]) ||
		!ExtensionTriggersOnly(trig, mine + 1, me, st->ext_namespace, false))
		return NULL;
	if (!st->sorted && st->order == NULL)
	{
		st->order = MemoryContextAlloc(st->cxt, sizeof(StashOrder) * Max(st->n, 1));
		for (int i = 0; i < st->n; i++)
		{
			st->order[i].key = st->rows[i].key;
			st->order[i].row = i;
		}
		sort_stash_order(st->order, st->n);
	}
	return st;
}

/* The one row of key in the copy, or NULL: none, or two or more. */
const PredStashRow *
PredStashLookup(PredStash *st, int64 key)
{
	int			lo = 0;
	int			hi = st->n;

#define STASH_KEY(i) (st->sorted ? st->rows[i].key : st->order[i].key)
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (STASH_KEY(mid) < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == st->n || STASH_KEY(lo) != key ||
		(lo + 1 < st->n && STASH_KEY(lo + 1) == key))
		return NULL;
#undef STASH_KEY
	return st->sorted ? &st->rows[lo] : &st->rows[st->order[lo].row];
}
