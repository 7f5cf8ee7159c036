/*
 * scorerinsert.c
 *		The scorer's trigger: scores the rows of one statement that inserted
 *		into the source and writes their predictions in bulk.
 *
 * streamml.scorer_trigger() is an AFTER INSERT FOR EACH STATEMENT trigger
 * with a transition table, so it runs once per INSERT, COPY or stream
 * range (the loader fires statement triggers per range, as COPY does),
 * in the transaction that inserted the rows.  Per statement it takes the
 * scorer's catalog row (cached per backend, see ScorerDef), the deployed
 * model from the serving cache of predict.c (validated once per
 * statement: a deploy or rollback committed before the statement started
 * is used by it, one that commits later by the next statement), resolves
 * the attribute numbers of the features, the group column, the key
 * columns and the predictions table's columns, then, as the scorer's
 * owner, reads the transition tuplestore and writes the prediction rows up
 * to 10,000 at a time with table_multi_insert, their index entries (in key
 * order) and AFTER triggers, as COPY does.  Per row there is no SPI call,
 * no catalog look-up and no model look-up: a feature is read from the
 * tuple by attribute number, a grouped model's coefficients by one hash
 * look-up.
 *
 * A row with a NULL, NaN or infinite feature, a NULL group key or a group
 * the deployed version has no coefficients for gets a prediction row with
 * NULL prediction, probability and class, and is counted as unscorable.
 *
 * Errors: what is wrong with the scorer rather than with a row (the model
 * dropped or no longer usable by the owner, a privilege revoked, a
 * predictions table changed) is raised as object_not_in_prerequisite_state,
 * so that a stream treats it as it treats a target it cannot write: the
 * batch waits and is retried, no message becomes a dead letter.  An error
 * of one row (a prediction already stored under its key) keeps its own
 * code: the statement fails, and a stream makes the message a dead letter.
 */
#include "postgres.h"

#include <math.h>

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/sortsupport.h"
#include "utils/typcache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "ingest/citus_batch.h"

#include "ml/categorical.h"
#include "ml/group_key.h"
#include "ml/ml.h"
#include "number.h"
#include "pg_streamml.h"
#include "quality/predstash.h"
#include "scoring/scorer.h"

/*
 * Prediction rows buffered per table_multi_insert: a stream batch's whole
 * statement (10,000 rows by default), so that its index entries are
 * written in key order (KeyOrder).
 */
#define SCORER_BUFFERED_ROWS 10000

/* One statement's work: the scorer's definition and what it counted. */
typedef struct ScoreBatch
{
	TriggerData *td;
	int32		id;
	char	   *name;
	Oid			owner;
	Oid			sourceid;
	char	   *model;
	int			nchallengers;
	ScorerChallenger *challengers;	/* shadow-scored (role 'challenger') */
	Oid			predsid;
	int			nkeys;
	char	  **keys;
	Jsonb	   *options;
	bool		in_rows;		/* errors from here on may be a row's */
	int64		rows;
	int64		unscorable;
} ScoreBatch;

/* How each feature is read from the source's tuples. */
typedef struct FeatureReader
{
	AttrNumber	attnum;
	Oid			type;
	CatReader  *cat;			/* a categorical column, or NULL */
} FeatureReader;

/*
 * A scorer's catalog row, cached per backend so that a statement reads no
 * catalog: the statement trigger on scorers_catalog
 * (streamml.catalog_cache_invalidate) sends a relcache invalidation of the
 * catalog at every change, which drops every cached row when it commits
 * (in this backend, at its next command).  A promotion, new options or a
 * new owner so take effect at the next statement, as before.
 */
typedef struct ScorerDef
{
	int32		id;				/* hash key */
	bool		valid;
	MemoryContext cxt;			/* what follows, or NULL */
	char	   *name;
	Oid			owner;
	Oid			sourceid;
	char	   *model;
	Oid			predsid;
	int			nkeys;
	char	  **keys;
	Jsonb	   *options;
	int			nchallengers;
	ScorerChallenger *challengers;
} ScorerDef;

static HTAB *ScorerDefs = NULL;
static Oid	ScorersCatalogOid = InvalidOid;

/* Relcache callback: a change of the catalog drops every cached row. */
static void
ScorerRelcacheCallback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS hs;
	ScorerDef  *d;

	if (ScorerDefs == NULL || (relid != InvalidOid && relid != ScorersCatalogOid))
		return;
	hash_seq_init(&hs, ScorerDefs);
	while ((d = hash_seq_search(&hs)) != NULL)
		d->valid = false;
}

/* Reads the scorer's catalog row into the cache entry d (its memory). */
static void
ReadDefinition(ScoreBatch *b, ScorerDef *d)
{
	Datum		arg = Int32GetDatum(b->id);
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		dv;
	MemoryContext cxt;
	MemoryContext old;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CatalogExecute("SELECT s.name, s.owner, s.source, s.model, s.predictions, "
				   "s.key_columns, s.options FROM streamml.scorers_catalog s "
				   "WHERE s.id OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("scorer %d of trigger \"%s\" does not exist", b->id,
						b->td->tg_trigger->tgname),
				 errhint("Drop the trigger.")));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	cxt = AllocSetContextCreate(TopMemoryContext, "pg_streamml scorer definition",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		Datum	   *elems;

		d->name = SPI_getvalue(tup, desc, 1);
		d->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		d->sourceid = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		d->model = SPI_getvalue(tup, desc, 4);
		d->predsid = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
		dv = SPI_getbinval(tup, desc, 6, &isnull);
		deconstruct_array(DatumGetArrayTypePCopy(dv), TEXTOID, -1, false,
						  TYPALIGN_INT, &elems, NULL, &d->nkeys);
		d->keys = palloc(sizeof(char *) * Max(d->nkeys, 1));
		for (int k = 0; k < d->nkeys; k++)
			d->keys[k] = TextDatumGetCString(elems[k]);
		d->options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 7, &isnull));
		d->challengers = ScorerChallengers(d->options, &d->nchallengers);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	SPI_finish();
	d->cxt = cxt;
}

/*
 * Whether the definition LoadDefinition gave is still the catalog's: no
 * change of it has committed since (that this backend has heard of).
 */
static bool
DefinitionValid(int32 id)
{
	ScorerDef  *d = ScorerDefs ? hash_search(ScorerDefs, &id, HASH_FIND, NULL) : NULL;

	return d != NULL && d->valid;
}

/* Fills b with the scorer's definition, from the cache or the catalog. */
static void
LoadDefinition(ScoreBatch *b)
{
	ScorerDef  *d;
	bool		found;

	if (ScorerDefs == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int32);
		ctl.entrysize = sizeof(ScorerDef);
		ScorerDefs = hash_create("pg_streamml scorer definitions", 16, &ctl,
								 HASH_ELEM | HASH_BLOBS);
		ScorersCatalogOid = get_relname_relid("scorers_catalog",
											  get_namespace_oid("streamml", false));
		CacheRegisterRelcacheCallback(ScorerRelcacheCallback, (Datum) 0);
	}
	d = hash_search(ScorerDefs, &b->id, HASH_ENTER, &found);
	if (!found)
	{
		d->valid = false;
		d->cxt = NULL;
	}
	/* what invalidations are pending arrive now, before we look */
	AcceptInvalidationMessages();
	if (!d->valid)
	{
		/* a statement further up the stack may still use it: free it at commit */
		if (d->cxt)
			MemoryContextSetParent(d->cxt, TopTransactionContext);
		d->cxt = NULL;
		/* valid from before the read: a change committing meanwhile clears it */
		d->valid = true;
		PG_TRY();
		{
			ReadDefinition(b, d);
		}
		PG_CATCH();
		{
			d->valid = false;
			PG_RE_THROW();
		}
		PG_END_TRY();
		/*
		 * read under a transaction snapshot (REPEATABLE READ): right for
		 * this transaction only, so read again at the next statement
		 */
		if (IsolationUsesXactSnapshot())
			d->valid = false;
	}
	b->name = d->name;
	b->owner = d->owner;
	b->sourceid = d->sourceid;
	b->model = d->model;
	b->predsid = d->predsid;
	b->nkeys = d->nkeys;
	b->keys = d->keys;
	b->options = d->options;
	b->nchallengers = d->nchallengers;
	b->challengers = d->challengers;
}

/*
 * A feature value as a double; false when it makes the row unscorable:
 * infinite, or NULL or NaN unless the model takes missing values (trees,
 * which take NULL as NaN, as streamml.predict does).
 */
static inline bool
FeatureValue(TupleTableSlot *slot, const FeatureReader *f, bool missing_ok,
			 double *x)
{
	Datum		d = slot->tts_values[f->attnum - 1];

	if (slot->tts_isnull[f->attnum - 1])
	{
		*x = NAN;
		return missing_ok;
	}
	*x = NumberOrInf(d, f->type);
	return isfinite(*x) || (missing_ok && isnan(*x));
}

/*
 * How a statement's prediction rows reach the index: in the order of their
 * key.  A stream's batch arrives in the order of its Kafka partitions, so
 * its keys hop across the recent part of the primary key (key, model); in
 * key order consecutive entries land on the same leaf page, still in the
 * CPU's caches, and the pages split less.  The heap rows and the AFTER
 * triggers keep the arrival order.
 */
typedef struct KeyOrder
{
	int			nkeys;			/* 0: no ordering (a key type without one) */
	AttrNumber *att;			/* the key columns in the predictions table */
	SortSupport ssup;
	TupleTableSlot **slots;
	struct KeyItem *items;		/* room for SCORER_BUFFERED_ROWS */
} KeyOrder;

/*
 * A buffered row as the sort sees it: its first key column copied beside
 * its position, so that most comparisons read one array rather than two
 * slots each (10,000 separate allocations, a cache miss apiece).
 */
typedef struct KeyItem
{
	Datum		key;
	bool		isnull;
	int			row;
} KeyItem;

/* Sets up the comparison of the key columns (their default btree order). */
static void
KeyOrderInit(KeyOrder *ko, Relation preds, PredictionColumns *pc,
			 TupleTableSlot **slots)
{
	TupleDesc	pdesc = RelationGetDescr(preds);

	ko->nkeys = pc->nkeys;
	ko->att = pc->key;
	ko->slots = slots;
	ko->items = palloc(sizeof(KeyItem) * SCORER_BUFFERED_ROWS);
	ko->ssup = palloc0(sizeof(SortSupportData) * Max(pc->nkeys, 1));
	for (int k = 0; k < pc->nkeys; k++)
	{
		Form_pg_attribute a = TupleDescAttr(pdesc, pc->key[k] - 1);
		TypeCacheEntry *tc = lookup_type_cache(a->atttypid, TYPECACHE_LT_OPR);

		if (!OidIsValid(tc->lt_opr))
		{
			ko->nkeys = 0;		/* leave the arrival order */
			return;
		}
		ko->ssup[k].ssup_cxt = CurrentMemoryContext;
		ko->ssup[k].ssup_collation = a->attcollation;
		ko->ssup[k].ssup_nulls_first = false;
		PrepareSortSupportFromOrderingOp(tc->lt_opr, &ko->ssup[k]);
	}
}

/* qsort_arg comparator of KeyItems: by key, then in arrival order. */
static int
CompareByKey(const void *a, const void *b, void *arg)
{
	KeyOrder   *ko = arg;
	const KeyItem *ka = a;
	const KeyItem *kb = b;
	int			ia = ka->row;
	int			ib = kb->row;
	TupleTableSlot *sa = ko->slots[ia];
	TupleTableSlot *sb = ko->slots[ib];
	int			c0 = ApplySortComparator(ka->key, ka->isnull, kb->key, kb->isnull,
										 &ko->ssup[0]);

	if (c0 != 0)
		return c0;
	for (int k = 1; k < ko->nkeys; k++)
	{
		int			c = ApplySortComparator(sa->tts_values[ko->att[k] - 1],
											sa->tts_isnull[ko->att[k] - 1],
											sb->tts_values[ko->att[k] - 1],
											sb->tts_isnull[ko->att[k] - 1],
											&ko->ssup[k]);

		if (c != 0)
			return c;
	}
	return ia < ib ? -1 : ia > ib ? 1 : 0;
}

/*
 * Writes the buffered prediction rows, then their index entries (in key
 * order, see KeyOrder) and their AFTER ROW triggers (in arrival order).
 * perm and recheck have room for n.
 */
static void
FlushPredictions(ResultRelInfo *rri, EState *estate, TupleTableSlot **slots,
				 int n, BulkInsertState bistate, TransitionCaptureState *tcs,
				 bool triggers, CitusBatch *citus, KeyOrder *ko, int *perm,
				 List **recheck)
{
	if (n == 0)
		return;
	if (citus)
	{
		/* a Citus table: to the shards through SQL (feature_citus.c) */
		for (int i = 0; i < n; i++)
		{
			slot_getallattrs(slots[i]);
			CitusBatchAdd(citus, slots[i]->tts_values, slots[i]->tts_isnull);
			if (triggers)
				ExecARInsertTriggers(estate, rri, slots[i], NIL, tcs);
			ExecClearTuple(slots[i]);
		}
		return;
	}
	/* what a tracker of this statement takes of them (predstash.c) */
	PredStashAdd(slots, n);
	table_multi_insert(rri->ri_RelationDesc, slots, n, estate->es_output_cid,
					   0, bistate);
	for (int i = 0; i < n; i++)
	{
		perm[i] = i;
		recheck[i] = NIL;
	}
	if (rri->ri_NumIndices > 0)
	{
		if (ko->nkeys > 0)
		{
			AttrNumber	a = ko->att[0] - 1;

			for (int i = 0; i < n; i++)
			{
				ko->items[i].key = slots[i]->tts_values[a];
				ko->items[i].isnull = slots[i]->tts_isnull[a];
				ko->items[i].row = i;
			}
			qsort_arg(ko->items, n, sizeof(KeyItem), CompareByKey, ko);
			for (int i = 0; i < n; i++)
				perm[i] = ko->items[i].row;
		}
		for (int k = 0; k < n; k++)
			recheck[perm[k]] = ExecInsertIndexTuples(rri, slots[perm[k]], estate,
													 false, false, NULL, NIL);
	}
	for (int i = 0; i < n; i++)
	{
		if (triggers)
			ExecARInsertTriggers(estate, rri, slots[i], recheck[i], tcs);
		list_free(recheck[i]);
		ExecClearTuple(slots[i]);
	}
}

/* A group value seen in this statement and the model's parameters for it. */
typedef struct GroupMemo
{
	Datum		value;			/* hash key: a by-value group column's bits */
	const void *params;			/* ServedModelParams, NULL: no model */
} GroupMemo;

/* How one model (the champion or a challenger) scores the statement. */
typedef struct ModelReader
{
	const char *name;
	CachedModel *m;
	ServedModelInfo info;
	FeatureReader *features;
	double	   *x;
	AttrNumber	group_att;
	GroupKeyOut group_out;		/* the group key's text (group_key.c) */
	HTAB	   *group_memo;		/* by-value group types: GroupMemo per value */
	const void *params;
	Datum	   *class_text;
	Datum		model_text;
	Datum		role_text;
	int			maxatt;
	bool		skip;			/* a version another reader scores already */
} ModelReader;

/*
 * Sets up a model's reader: the served model (its deployed version, or
 * version when above 0), its feature columns.
 */
static void
ModelReaderInit(ScoreBatch *b, ModelReader *r, const char *model,
				int32 version, const char *role)
{
	Relation	source = b->td->tg_relation;
	TupleDesc	sdesc = RelationGetDescr(source);

	memset(r, 0, sizeof(ModelReader));
	r->name = model;
	/* the model, validated for this statement, as the owner may use it */
	r->m = ServedModelGetVersion(model, version, &r->info);
	r->features = palloc0(sizeof(FeatureReader) * Max(r->info.nfeatures, 1));
	r->x = palloc(sizeof(double) * Max(r->info.nfeatures, 1));
	/* categorical columns: one reader per column, filling its slots */
	for (int i = 0; r->info.encoding != NULL && i < r->info.ncolumns; i++)
	{
		char	   *col = ScorerFeatureColumn(b->options, r->info.columns[i]);
		const CatColumn *c = r->info.encoding->cols[i];
		FeatureReader *f = &r->features[i];

		f->attnum =
			ScorerSourceColumn(source, col,
							   psprintf("feature column \"%s\" of model \"%s\" version %d",
										r->info.columns[i], model, r->info.version),
							   c == NULL);
		f->type = TupleDescAttr(sdesc, f->attnum - 1)->atttypid;
		if (c != NULL)
		{
			if (!TypeIsCategorical(f->type))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column \"%s\" of table \"%s\" is of type %s, not text, varchar, char or an enum",
								col, RelationGetRelationName(source),
								format_type_be(f->type)),
						 errdetail("Model \"%s\" reads it as a categorical feature.", model)));
			f->cat = palloc(sizeof(CatReader));
			CatReaderInit(f->cat, c, f->type);
		}
		r->maxatt = Max(r->maxatt, f->attnum);
	}
	for (int j = 0; j < r->info.nfeatures && r->info.encoding == NULL; j++)
	{
		char	   *col = ScorerFeatureColumn(b->options, r->info.features[j]);

		r->features[j].attnum =
			ScorerSourceColumn(source, col,
							   psprintf("feature \"%s\" of model \"%s\" version %d",
										r->info.features[j], model, r->info.version),
							   true);
		r->features[j].type = TupleDescAttr(sdesc, r->features[j].attnum - 1)->atttypid;
		r->maxatt = Max(r->maxatt, r->features[j].attnum);
	}
	if (r->info.group_by != NULL)
	{
		char	   *col = ScorerGroupColumn(b->options, &r->info);
		Oid			group_type;

		r->group_att = ScorerSourceColumn(source, col, "the group key", false);
		group_type = TupleDescAttr(sdesc, r->group_att - 1)->atttypid;
		GroupKeyOutInit(&r->group_out, group_type, col, CurrentMemoryContext);
		r->maxatt = Max(r->maxatt, r->group_att);

		/*
		 * A by-value group column (integers, dates, timestamps...): its key
		 * text is made and looked up once per value and statement, then
		 * found by the value's bits (the same bits, the same text).  Text
		 * columns need no formatting: their bytes are the key.
		 */
		if (get_typbyval(group_type))
		{
			HASHCTL		ctl;

			ctl.keysize = sizeof(Datum);
			ctl.entrysize = sizeof(GroupMemo);
			ctl.hcxt = CurrentMemoryContext;
			r->group_memo = hash_create("pg_streamml scorer groups", 64, &ctl,
										HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		}
	}
	else
		r->params = ServedModelParams(r->m, NULL, 0);
	r->model_text = CStringGetTextDatum(model);
	r->role_text = CStringGetTextDatum(role);
	if (r->info.nclasses > 0)
	{
		r->class_text = palloc(sizeof(Datum) * r->info.nclasses);
		for (int c = 0; c < r->info.nclasses; c++)
			r->class_text[c] = CStringGetTextDatum(r->info.classes[c]);
	}
}

/*
 * Whether the models this statement scores with are still the scorer's: a
 * change may have committed while it waited for the predictions table's
 * lock.  The cached definition is still valid, or, read again, names the
 * same champion and challengers (any change of the catalog, a new scorer's
 * row included, drops every cached definition).
 */
static bool
ModelsStillServed(ScoreBatch *b)
{
	ScoreBatch	now;

	/* a transaction snapshot would read the definition as it was */
	if (IsolationUsesXactSnapshot())
		return false;
	if (DefinitionValid(b->id))
		return true;
	memset(&now, 0, sizeof(now));
	now.td = b->td;
	now.id = b->id;
	LoadDefinition(&now);
	if (strcmp(now.model, b->model) != 0 || now.nchallengers != b->nchallengers)
		return false;
	for (int i = 0; i < b->nchallengers; i++)
		if (strcmp(now.challengers[i].model, b->challengers[i].model) != 0 ||
			now.challengers[i].version != b->challengers[i].version)
			return false;
	return true;
}

/* Scores the statement's rows as the scorer's owner (see the top). */
static void
ScoreRows(void *arg)
{
	ScoreBatch *b = arg;
	Relation	source = b->td->tg_relation;
	TupleDesc	sdesc = RelationGetDescr(source);
	ModelReader *readers;
	int			nreaders = 1 + b->nchallengers;
	Relation	preds;
	TupleDesc	pdesc;
	PredictionColumns pc;
	AttrNumber *source_keys;
	ExprState **defaults;
	EState	   *estate;
	ResultRelInfo *rri;
	RangeTblEntry *rte;
	TransitionCaptureState *tcs = NULL;
	BulkInsertState bistate;
	bool		triggers;
	CitusBatch *citus = NULL;
	TupleTableSlot *src;
	TupleTableSlot **slots;
	TupleDesc	slotdesc;
	KeyOrder	ko;
	int		   *perm;
	List	  **recheck;
	Datum		now;
	int			nbuffered = 0;
	int			ptr;
	int			maxatt = 0;
	Tuplestorestate *ts = b->td->tg_newtable;
	PredStashWriter prev_writer = {InvalidOid, NULL};
	bool		fresh;

	if (!RelationIsPartOf(RelationGetRelid(source), b->sourceid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("trigger \"%s\" of scorer \"%s\" fired on table \"%s\", not on the scorer's source",
						b->td->tg_trigger->tgname, b->name,
						RelationGetRelationName(source))));
	if (pg_class_aclcheck(b->sourceid, b->owner, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the owner of scorer \"%s\" has no SELECT privilege on table \"%s\"",
						b->name, RelationGetRelationName(source))));
	CheckSourceRowSecurity(b->sourceid, b->owner, "scorer", b->name,
						   ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);

	/*
	 * The champion, then the challengers, as the owner may use them.  A
	 * challenger that is the version another reader serves (the champion's
	 * version, once deployed) would write the same rows: it is skipped.
	 */
	readers = palloc(sizeof(ModelReader) * nreaders);
	for (int i = 0; i < nreaders; i++)
	{
		ModelReaderInit(b, &readers[i], i == 0 ? b->model : b->challengers[i - 1].model,
						i == 0 ? 0 : b->challengers[i - 1].version,
						i == 0 ? SCORER_ROLE_CHAMPION : SCORER_ROLE_CHALLENGER);
		for (int j = 0; j < i; j++)
			readers[i].skip |= strcmp(readers[i].name, readers[j].name) == 0 &&
				readers[i].info.version == readers[j].info.version;
		maxatt = Max(maxatt, readers[i].maxatt);
	}

	/* the predictions table, as the owner may write it */
	preds = try_table_open(b->predsid, RowExclusiveLock);
	if (preds == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the predictions table of scorer \"%s\" was dropped", b->name),
				 errhint("Drop the scorer with streamml.drop_scorer and create it again.")));
	pdesc = RelationGetDescr(preds);
	if (pg_class_aclcheck(b->predsid, b->owner, ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the owner of scorer \"%s\" has no INSERT privilege on table \"%s\"",
						b->name, RelationGetRelationName(preds))));
	if (check_enable_rls(b->predsid, b->owner, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("predictions table \"%s\" has row-level security for the owner of scorer \"%s\"",
						RelationGetRelationName(preds), b->name)));
	ScorerCheckPredictions(preds, source, b->nkeys, b->keys, &pc,
						   ScorerNeedsVersionKey(b->model, b->challengers,
												 b->nchallengers));
	source_keys = palloc(sizeof(AttrNumber) * b->nkeys);
	for (int k = 0; k < b->nkeys; k++)
	{
		source_keys[k] = ScorerSourceColumn(source, b->keys[k], "a key column", false);
		maxatt = Max(maxatt, source_keys[k]);
	}

	/* an executor state for the inserts, as COPY has */
	estate = CreateExecutorState();
	estate->es_output_cid = GetCurrentCommandId(true);
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = b->predsid;
	rte->relkind = RELKIND_RELATION;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	rte->checkAsUser = b->owner;
	ExecInitRangeTable(estate, list_make1(rte));
	rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(estate, rri, 1);
	ExecOpenIndices(rri, false);
	triggers = rri->ri_TrigDesc != NULL;
	if (LoaderIsCitusTable(b->predsid))
		citus = CitusBatchBegin(preds);
	if (triggers)
	{
		AfterTriggerBeginQuery();
		tcs = MakeTransitionCaptureState(preds->trigdesc, b->predsid, CMD_INSERT);
		ExecBSInsertTriggers(estate, rri);
		/*
		 * A tracker's triggers know these rows are the scorer's, and its
		 * tracker may join them in memory (predstash.c), unless a change of
		 * the scorer committed while we waited for the table's lock (a
		 * promotion): its rows may then be of a model no longer served.
		 */
		fresh = ModelsStillServed(b);
		prev_writer = PredStashSetWriter(fresh ? b->predsid : InvalidOid, b->name);
		if (citus == NULL && fresh)
			PredStashBegin(preds, &pc, b->td, b->name);
	}

	/* the other columns of the predictions table get their defaults */
	defaults = palloc0(sizeof(ExprState *) * pdesc->natts);
	for (int i = 0; i < pdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(pdesc, i);
		AttrNumber	a = att->attnum;
		bool		ours = (a == pc.model || a == pc.version ||
							a == pc.prediction || a == pc.probability ||
							a == pc.class_label || a == pc.role ||
							a == pc.scored_at);
		Node	   *def;

		for (int k = 0; k < pc.nkeys; k++)
			ours |= (a == pc.key[k]);
		if (ours || att->attisdropped || att->attgenerated)
			continue;
		def = build_column_default(preds, a);
		if (def)
			defaults[i] = ExecInitExpr(expression_planner((Expr *) def), NULL);
	}

	/* the values that are the same for every row of the statement */
	now = TimestampTzGetDatum(GetCurrentTimestamp());

	slots = palloc0(sizeof(TupleTableSlot *) * SCORER_BUFFERED_ROWS);
	/* not reference-counted: see WriterBegin in featureinsert.c */
	slotdesc = CreateTupleDescCopy(pdesc);
	perm = palloc(sizeof(int) * SCORER_BUFFERED_ROWS);
	recheck = palloc(sizeof(List *) * SCORER_BUFFERED_ROWS);
	KeyOrderInit(&ko, preds, &pc, slots);
	src = MakeSingleTupleTableSlot(sdesc, &TTSOpsMinimalTuple);
	bistate = GetBulkInsertState();

	/* our own read pointer: other triggers may read the same rows */
	ptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(ts, ptr);

	b->in_rows = true;
	/* one pass per model: the champion's rows first, then each challenger's */
	for (int mi = 0; mi < nreaders; mi++)
	{
	ModelReader *mr = &readers[mi];

	if (mr->skip)
		continue;
	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, src))
	{
		ExprContext *econtext = GetPerTupleExprContext(estate);
		MemoryContext old;
		TupleTableSlot *out;
		bool		scorable = true;
		const void *p = mr->params;
		ServedPrediction r;

		CHECK_FOR_INTERRUPTS();
		/* the slots live as long as the statement, in its memory */
		if (slots[nbuffered] == NULL)
			slots[nbuffered] = MakeSingleTupleTableSlot(slotdesc,
														table_slot_callbacks(preds));
		out = slots[nbuffered];
		old = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
		slot_getsomeattrs(src, maxatt);
		ExecClearTuple(out);
		memset(out->tts_isnull, true, sizeof(bool) * pdesc->natts);

		if (mr->info.encoding == NULL)
			for (int j = 0; j < mr->info.nfeatures && scorable; j++)
				scorable = FeatureValue(src, &mr->features[j], mr->info.trees,
										&mr->x[j]);
		else
			for (int i = 0; i < mr->info.ncolumns && scorable; i++)
			{
				double	   *xi = mr->x + mr->info.encoding->first[i];
				int			a = mr->features[i].attnum - 1;

				/* a category missing (NULL, or unseen without an other level) is as a NULL feature */
				if (mr->features[i].cat)
					scorable = CatReadDatum(mr->features[i].cat, src->tts_values[a],
											src->tts_isnull[a], xi) != CAT_MISSING ||
						mr->info.trees;
				else
					scorable = FeatureValue(src, &mr->features[i], mr->info.trees,
											xi);
			}
		if (scorable && mr->group_att != InvalidAttrNumber)
		{
			if (src->tts_isnull[mr->group_att - 1])
				p = NULL;
			else
			{
				Datum		gv = src->tts_values[mr->group_att - 1];
				GroupMemo  *gm = NULL;
				bool		found = false;

				if (mr->group_memo)
					gm = hash_search(mr->group_memo, &gv, HASH_ENTER, &found);
				if (found)
					p = gm->params;
				else
				{
					int			glen;
					const char *g = GroupKeyText(&mr->group_out, gv, &glen);

					p = ServedModelParams(mr->m, g, glen);
					if (gm)
						gm->params = p;
				}
			}
			scorable = p != NULL;
		}
		if (scorable)
			scorable = ServedModelScore(mr->m, p, mr->x, &r);
		if (scorable)
		{
			out->tts_values[pc.prediction - 1] = Float8GetDatum(r.value);
			out->tts_isnull[pc.prediction - 1] = false;
			if (!isnan(r.probability))
			{
				out->tts_values[pc.probability - 1] = Float8GetDatum(r.probability);
				out->tts_isnull[pc.probability - 1] = false;
			}
			if (r.class_index >= 0 && r.class_index < mr->info.nclasses)
			{
				out->tts_values[pc.class_label - 1] = mr->class_text[r.class_index];
				out->tts_isnull[pc.class_label - 1] = false;
			}
		}
		else if (mi == 0)
			b->unscorable++;

		for (int k = 0; k < pc.nkeys; k++)
		{
			out->tts_values[pc.key[k] - 1] = src->tts_values[source_keys[k] - 1];
			out->tts_isnull[pc.key[k] - 1] = src->tts_isnull[source_keys[k] - 1];
		}
		out->tts_values[pc.model - 1] = mr->model_text;
		out->tts_isnull[pc.model - 1] = false;
		out->tts_values[pc.version - 1] = Int32GetDatum(mr->info.version);
		out->tts_isnull[pc.version - 1] = false;
		out->tts_values[pc.role - 1] = mr->role_text;
		out->tts_isnull[pc.role - 1] = false;
		out->tts_values[pc.scored_at - 1] = now;
		out->tts_isnull[pc.scored_at - 1] = false;
		for (int i = 0; i < pdesc->natts; i++)
			if (defaults[i])
				out->tts_values[i] = ExecEvalExpr(defaults[i], econtext,
												  &out->tts_isnull[i]);
		ExecStoreVirtualTuple(out);
		if (preds->rd_att->constr)
		{
			if (preds->rd_att->constr->has_generated_stored)
				ExecComputeStoredGenerated(rri, estate, out, CMD_INSERT);
			ExecConstraints(rri, out, estate);
		}
		/* the values point into the source tuple: copy them */
		ExecMaterializeSlot(out);
		MemoryContextSwitchTo(old);
		ResetPerTupleExprContext(estate);
		if (mi == 0)
			b->rows++;
		if (++nbuffered == SCORER_BUFFERED_ROWS)
		{
			FlushPredictions(rri, estate, slots, nbuffered, bistate, tcs,
							 triggers, citus, &ko, perm, recheck);
			nbuffered = 0;
		}
	}
	}
	FlushPredictions(rri, estate, slots, nbuffered, bistate, tcs, triggers,
					 citus, &ko, perm, recheck);
	tuplestore_select_read_pointer(ts, 0);
	if (citus)
	{
		CitusBatchFlush(citus);
		CitusBatchEnd(citus);
	}

	if (triggers)
	{
		ExecASInsertTriggers(estate, rri, tcs);
		AfterTriggerEndQuery(estate);
		PredStashRestoreWriter(prev_writer);
	}
	FreeBulkInsertState(bistate);
	for (int i = 0; i < SCORER_BUFFERED_ROWS && slots[i]; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	ExecDropSingleTupleTableSlot(src);
	ExecResetTupleTable(estate->es_tupleTable, false);
	ExecCloseResultRelations(estate);
	ExecCloseRangeTableRelations(estate);
	FreeExecutorState(estate);
	table_close(preds, NoLock);
}

/* Error context: which scorer was scoring. */
static void
ScorerErrorContext(void *arg)
{
	ScoreBatch *b = arg;

	if (b->name)
		errcontext("scorer \"%s\"", b->name);
}

/* Errors of the scorer's set-up whose code says "a row's fault". */
static bool
RowLikeError(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_TO_CATEGORY(ERRCODE_DATA_EXCEPTION) ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION) ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION) ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_FEATURE_NOT_SUPPORTED) ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_WITH_CHECK_OPTION_VIOLATION);
}

PG_FUNCTION_INFO_V1(scorer_trigger);

/* SQL streamml.scorer_trigger(): see the top of the file. */
Datum
scorer_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	ScoreBatch	b;
	ErrorContextCallback errcb;
	MemoryContext cxt = CurrentMemoryContext;
	TimestampTz start = GetCurrentTimestamp();
	long		secs;
	int			usecs;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(td->tg_event) || td->tg_newtable == NULL ||
		td->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("streamml.scorer_trigger must be an AFTER INSERT statement trigger with a transition table and the scorer's id")));
	/* no copy of an earlier statement's predictions outlives this call */
	PredStashReset();
	/* a statement that inserted nothing has nothing to score */
	if (tuplestore_tuple_count(td->tg_newtable) == 0)
		return PointerGetDatum(NULL);
	memset(&b, 0, sizeof(b));
	b.td = td;
	b.id = pg_strtoint32(td->tg_trigger->tgargs[0]);
	errcb.callback = ScorerErrorContext;
	errcb.arg = &b;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	PG_TRY();
	{
		LoadDefinition(&b);
		RunAsOwner(b.owner, ScoreRows, &b);
	}
	PG_CATCH();
	{
		ErrorData  *e;
		char	   *preds_name;

		error_context_stack = errcb.previous;
		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		ScorerStatsError(b.id, b.owner, e->message);
		if (!b.in_rows && RowLikeError(e->sqlerrcode))
		{
			/* the scorer's fault, not a row's: a stream retries the batch */
			FlushErrorState();
			e->sqlerrcode = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
			ReThrowError(e);
		}
		if (b.in_rows && e->sqlerrcode == ERRCODE_UNIQUE_VIOLATION && e->hint == NULL &&
			e->table_name && (preds_name = get_rel_name(b.predsid)) != NULL &&
			strcmp(e->table_name, preds_name) == 0)
		{
			/* a key scored before: say how that comes, and what to do */
			FlushErrorState();
			e->hint = pstrdup("A source row is scored once per key and model version: a row loaded again under the key of a row scored before (the source truncated, or rows deleted and loaded again) needs the old prediction deleted from the predictions table first.");
			ReThrowError(e);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	error_context_stack = errcb.previous;
	TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
	ScorerStatsBatch(b.id, b.owner, b.rows, b.unscorable, secs + usecs / 1e6);
	return PointerGetDatum(NULL);
}
