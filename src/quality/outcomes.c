/*
 * outcomes.c
 *		Outcome trackers: streamml.track_outcomes and untrack_outcomes,
 *		their catalog, and what role commands do to them.
 *
 * A tracker is a row of streamml.outcome_trackers plus two AFTER INSERT
 * FOR EACH STATEMENT triggers with transition tables, both named
 * streamml_tracker_<id> (outcomeinsert.c): one on the source, where
 * the actual values arrive, and one on the scorer's predictions table, so
 * that an outcome that arrived first is joined when its prediction does,
 * and the predictions are counted in the live metrics; the scorer itself
 * needs no change.  One tracker per scorer.  PostgreSQL fires the
 * triggers of one event in the order of their names, and
 * "streamml_tracker_" sorts after the scorer's "streamml_scorer_": when the
 * source is the scored table (horizon mode), the batch's own predictions
 * are written before its outcomes are read, so an outcome whose prediction
 * came in the same batch is joined at once, not through pending_outcomes.
 *
 * Two modes:
 *	key		 each source row carries the actual value ("actual") of the
 *			 scored row whose key equals its "key" columns (by default the
 *			 scorer's key column names); "at" names its outcome time
 *			 (default: the time of the insert).
 *	horizon	 the source is a scored table itself, and the outcome of row r
 *			 is the value of "actual" in the first row of the same
 *			 "partition_by" value whose "order_by" is at or after r's plus
 *			 "horizon" (seed 004's label: the price 60 seconds later).
 *
 * Privileges: the caller must have the privileges of the scorer's owner,
 * who becomes the tracker's owner and must have SELECT on the source.
 * The triggers are created by the extension (their functions are not
 * executable by users) and check at every batch that the owner still has
 * SELECT on the source and on the predictions table.
 */
#include "postgres.h"

#include "access/table.h"
#include "storage/lmgr.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "ingest/citus_batch.h"
#include "options.h"
#include "pg_streamml.h"
#include "quality/predstash.h"
#include "quality/quality.h"

static const char *const TrackOptionKeys[] = {
	"key", "actual", "at", "group", "horizon", "partition_by", "order_by",
	"bucket", "grace", NULL
};

/* The type of a column of rel, erroring when there is no such column. */
static Oid
SourceColumnType(Oid rel, const char *col, const char *what)
{
	AttrNumber	a = get_attnum(rel, col);

	if (a <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						col, get_rel_name(rel)),
				 errdetail("It was given as %s.", what)));
	return get_atttype(rel, a);
}

/* Whether values of a type are read as numbers (float8). */
bool
OutcomeNumericType(Oid type)
{
	switch (type)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
		case BOOLOID:
			return true;
		default:
			return false;
	}
}

/* The strings of a text[] datum. */
static char **
TextArrayStrings(Datum d, int *n)
{
	Datum	   *elems;
	char	  **out;

	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, NULL, n);
	out = palloc(sizeof(char *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
		out[i] = TextDatumGetCString(elems[i]);
	return out;
}

/* A text[] datum of n strings. */
static Datum
TextArrayDatum(char **v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(v[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

/* The "key" option: a column name or an array of them; NULL when absent. */
static char **
OptionKeyColumns(Jsonb *options, int *n)
{
	JsonbValue *v = OptionGet(options, "key");
	char	  **out;

	if (v == NULL)
		return NULL;
	if (v->type == jbvString)
	{
		*n = 1;
		out = palloc(sizeof(char *));
		out[0] = OptionValueString(v, "key");
		return out;
	}
	if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
	{
		JsonbContainer *c = v->val.binary.data;
		int			count = JsonContainerSize(c);

		out = palloc(sizeof(char *) * Max(count, 1));
		*n = 0;
		for (int i = 0; i < count; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(c, i);

			if (e == NULL || e->type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"key\" must be a column name or an array of column names")));
			out[(*n)++] = pnstrdup(e->val.string.val, e->val.string.len);
		}
		if (*n > 0)
			return out;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"key\" must be a column name or an array of column names")));
	return NULL;
}

/* The longest bucket, horizon or grace: 100 years, in days. */
#define OUTCOME_MAX_DAYS INT64CONST(36525)

/* An interval option, positive; returns its canonical text. */
static char *
OptionInterval(Jsonb *options, const char *key, const char *dflt)
{
	char	   *s = OptionString(options, key, dflt);
	Interval   *iv;

	iv = DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum(s),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
	if (iv->month != 0 || iv->day < 0 || iv->time < 0 ||
		(iv->day == 0 && iv->time <= 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a positive interval of days, hours, minutes or seconds", key),
				 errdetail("\"%s\" was given.", s)));
	/* in microseconds, as the batches use it, without overflow */
	if (iv->day > OUTCOME_MAX_DAYS || iv->time > OUTCOME_MAX_DAYS * USECS_PER_DAY ||
		iv->time + iv->day * USECS_PER_DAY > OUTCOME_MAX_DAYS * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be at most 36525 days (100 years)", key),
				 errdetail("\"%s\" was given.", s)));
	return DatumGetCString(DirectFunctionCall1(interval_out,
											   IntervalPGetDatum(iv)));
}

/* The horizon of the horizon mode, as a literal of the step of order_by. */
static char *
HorizonLiteral(Jsonb *options, Oid order_type)
{
	JsonbValue *v = OptionGet(options, "horizon");

	if (order_type == TIMESTAMPTZOID || order_type == TIMESTAMPOID)
	{
		if (v->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"horizon\" must be an interval when \"order_by\" is a timestamp")));
		return OptionInterval(options, "horizon", NULL);
	}
	if (OutcomeNumericType(order_type) && order_type != BOOLOID)
	{
		double		h = OptionValueNumber(v, "horizon", 0.0, 1e300);

		return psprintf("%.17g", h);
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("column \"order_by\" must be a timestamp, timestamptz or number, not %s",
					format_type_be(order_type))));
	return NULL;
}

/* Numbers OutcomeTrackerLoad's results: a new read, a new number. */
static uint64 TrackerGeneration = 0;

/*
 * Errors when column col of t's source, which the tracker reads as what,
 * is gone (dropped or renamed since track_outcomes); returns its type.
 */
static Oid
TrackerColumnType(OutcomeTracker *t, const char *col, const char *what)
{
	AttrNumber	att = get_attnum(t->source, col);

	if (att <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" does not exist",
						col, get_rel_name(t->source)),
				 errdetail("The outcome tracker of scorer \"%s\" reads it as %s.",
						   t->scorer, what),
				 errhint("Give the table the column back, or track its outcomes again: streamml.untrack_outcomes('%s'), then streamml.track_outcomes.",
						 t->scorer)));
	return get_atttype(t->source, att);
}

/*
 * Errors unless the columns of t's source that the tracker reads are still
 * there and of types its statements can read, as track_outcomes checked
 * them: an ALTER TABLE of the source since (a column dropped, renamed or
 * given another type) otherwise failed every insert with the tracker's
 * own SQL in the message, or read the actual value as its old type.
 */
void
OutcomeTrackerColumnsCheck(OutcomeTracker *t)
{
	Oid			type;

	for (int i = 0; i < t->nkeys; i++)
		(void) TrackerColumnType(t, t->key_columns[i], "a key column");
	OutcomeKeyTypesCheck(t->source, t->key_columns, t->predictions,
						 t->prediction_keys, t->nkeys, t->scorer);
	type = getBaseType(TrackerColumnType(t, t->actual, "option \"actual\""));
	if (!OutcomeNumericType(type) && type != TEXTOID && type != VARCHAROID &&
		type != BPCHAROID && !type_is_enum(type))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" must be a number, boolean, text or enum, not %s",
						t->actual, format_type_be(type)),
				 errdetail("The outcome tracker of scorer \"%s\" reads the actual value from it.",
						   t->scorer)));
	if (t->regression && !OutcomeNumericType(type))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" must be a number or boolean, not %s",
						t->actual, format_type_be(type)),
				 errdetail("Scorer \"%s\" serves a regression model, whose outcomes are numbers: the actual value of every outcome would be NULL.",
						   t->scorer)));
	if (t->at)
	{
		type = getBaseType(TrackerColumnType(t, t->at, "option \"at\""));
		if (type != TIMESTAMPTZOID && type != TIMESTAMPOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" must be a timestamptz or timestamp, not %s",
							t->at, format_type_be(type)),
					 errdetail("The outcome tracker of scorer \"%s\" reads the time of an outcome from it.",
							   t->scorer)));
	}
	if (t->group_column)
		(void) TrackerColumnType(t, t->group_column, "option \"group\"");
	if (t->partition_by)
		(void) TrackerColumnType(t, t->partition_by, "option \"partition_by\"");
	if (t->order_by)
	{
		char	   *end;
		bool		numeric_horizon;

		type = getBaseType(TrackerColumnType(t, t->order_by, "option \"order_by\""));
		(void) strtod(t->horizon, &end);
		numeric_horizon = end != t->horizon && *end == '\0';
		if (numeric_horizon ? !(OutcomeNumericType(type) && type != BOOLOID) :
			(type != TIMESTAMPTZOID && type != TIMESTAMPOID))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" must be %s, not %s", t->order_by,
							numeric_horizon ? "a number" : "a timestamp or timestamptz",
							format_type_be(type)),
					 errdetail("The outcome tracker of scorer \"%s\" orders its rows by it, with a horizon of %s.",
							   t->scorer, t->horizon)));
	}
}

/*
 * Reads a tracker's catalog row by id (SPI connected), or NULL when it is
 * gone.  Allocated in the current memory context.
 */
OutcomeTracker *
OutcomeTrackerLoad(int32 id)
{
	Datum		arg = Int32GetDatum(id);
	OutcomeTracker *t;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int			n;
	MemoryContext cxt = CurrentMemoryContext;

	if (CatalogExecute(psprintf("SELECT owner, source, predictions, mode, key_columns, "
								"prediction_keys, actual, at, group_column, horizon, "
								"partition_by, order_by, bucket::text, scorer, stash_floor, ft.*, "
								"(SELECT m.classes IS NULL FROM streamml.scorers_catalog s "
								"JOIN streamml.models m ON m.name OPERATOR(pg_catalog.=) s.model "
								"WHERE s.name OPERATOR(pg_catalog.=) t.scorer) "
								"FROM streamml.outcome_trackers t LEFT JOIN LATERAL (%s) ft ON true "
								"WHERE id OPERATOR(pg_catalog.=) $1",
								psprintf(OutcomeFeatureTableSql, "t.source")),
					   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_SELECT) == 0)
		return NULL;
	/* (SPI returns in its own context) */
	MemoryContextSwitchTo(cxt);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	t = palloc0(sizeof(OutcomeTracker));
	t->id = id;
	t->generation = ++TrackerGeneration;
	t->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
	t->source = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	t->predictions = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
	t->horizon_mode = strcmp(SPI_getvalue(tup, desc, 4), "horizon") == 0;
	t->key_columns = TextArrayStrings(SPI_getbinval(tup, desc, 5, &isnull),
									  &t->nkeys);
	t->prediction_keys = TextArrayStrings(SPI_getbinval(tup, desc, 6, &isnull),
										  &n);
	t->actual = SPI_getvalue(tup, desc, 7);
	t->at = SPI_getvalue(tup, desc, 8);
	t->group_column = SPI_getvalue(tup, desc, 9);
	t->horizon = SPI_getvalue(tup, desc, 10);
	t->partition_by = SPI_getvalue(tup, desc, 11);
	t->order_by = SPI_getvalue(tup, desc, 12);
	t->bucket = SPI_getvalue(tup, desc, 13);
	t->scorer = SPI_getvalue(tup, desc, 14);
	t->scorer_datum = CStringGetTextDatum(t->scorer);
	{
		Datum		f = SPI_getbinval(tup, desc, 15, &isnull);

		t->stash_armed = !isnull;
		t->stash_floor = isnull ? 0 : DatumGetInt64(f);
	}
	t->source_ft_part = SPI_getvalue(tup, desc, 16);
	t->source_ft_order = SPI_getvalue(tup, desc, 17);
	{
		Datum		r = SPI_getbinval(tup, desc, 18, &isnull);

		t->regression = !isnull && DatumGetBool(r);
	}
	t->has_role = get_attnum(t->predictions, "role") > 0;
	t->actual_type = get_atttype(t->source, get_attnum(t->source, t->actual));
	if (t->order_by)
		t->order_type = get_atttype(t->source,
									get_attnum(t->source, t->order_by));
	return t;
}

/*
 * Trackers read by the outcome triggers, cached per backend so that a
 * batch reads no catalog: the statement trigger on outcome_trackers (and
 * on feature_tables_catalog, which a tracker's load reads too) sends a
 * relcache invalidation at every change, as does an ALTER of a tracker's
 * source or predictions table, which drops the entry when it commits (in
 * this backend, at its next command).  A change of stash_floor so reaches
 * the next statement of every backend (predstash.c), as a new read would.
 */
typedef struct TrackerCacheEntry
{
	int32		id;				/* hash key */
	bool		valid;
	MemoryContext cxt;			/* t's memory, or NULL */
	OutcomeTracker *t;
} TrackerCacheEntry;

static HTAB *TrackerCache = NULL;
static Oid	TrackersCatalogOid = InvalidOid;
static Oid	FeatureCatalogOid = InvalidOid;

/* Relcache callback: a change of a catalog or relation a tracker reads. */
static void
TrackerRelcacheCallback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS hs;
	TrackerCacheEntry *e;

	if (TrackerCache == NULL)
		return;
	hash_seq_init(&hs, TrackerCache);
	while ((e = hash_seq_search(&hs)) != NULL)
		if (relid == InvalidOid || relid == TrackersCatalogOid ||
			relid == FeatureCatalogOid ||
			(e->t != NULL && (relid == e->t->source || relid == e->t->predictions)))
			e->valid = false;
}

/*
 * OutcomeTrackerLoad through the backend's cache (SPI connected): the
 * result is the cache's, not to be changed, valid until the transaction
 * ends at least.
 */
OutcomeTracker *
OutcomeTrackerCached(int32 id)
{
	TrackerCacheEntry *e;
	bool		found;

	if (TrackerCache == NULL)
	{
		HASHCTL		ctl;
		Oid			ns = get_namespace_oid(STREAMML_SCHEMA, false);

		ctl.keysize = sizeof(int32);
		ctl.entrysize = sizeof(TrackerCacheEntry);
		TrackerCache = hash_create("pg_streamml outcome trackers", 16, &ctl,
								   HASH_ELEM | HASH_BLOBS);
		TrackersCatalogOid = get_relname_relid("outcome_trackers", ns);
		FeatureCatalogOid = get_relname_relid("feature_tables_catalog", ns);
		CacheRegisterRelcacheCallback(TrackerRelcacheCallback, (Datum) 0);
	}
	e = hash_search(TrackerCache, &id, HASH_ENTER, &found);
	if (!found)
	{
		e->valid = false;
		e->cxt = NULL;
		e->t = NULL;
	}
	/* what invalidations are pending arrive now, before we look */
	AcceptInvalidationMessages();
	if (!e->valid)
	{
		MemoryContext cxt;
		MemoryContext old;

		/* a caller further up the stack may still use it: free it at commit */
		if (e->cxt)
			MemoryContextSetParent(e->cxt, TopTransactionContext);
		e->cxt = NULL;
		e->t = NULL;
		cxt = AllocSetContextCreate(TopMemoryContext, "pg_streamml outcome tracker",
									ALLOCSET_SMALL_SIZES);
		/* valid from before the read: a change committing meanwhile clears it */
		e->valid = true;
		old = MemoryContextSwitchTo(cxt);
		PG_TRY();
		{
			e->t = OutcomeTrackerLoad(id);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(old);
			MemoryContextDelete(cxt);
			e->valid = false;
			PG_RE_THROW();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);
		if (e->t == NULL)
		{
			MemoryContextDelete(cxt);
			e->valid = false;
			return NULL;
		}
		e->cxt = cxt;
		/* read under a transaction snapshot: for this statement only */
		if (IsolationUsesXactSnapshot())
			e->valid = false;
	}
	return e->t;
}

/* The schema-qualified, quoted name of a relation. */
static char *
RelQualifiedName(Oid rel)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(rel)),
									  get_rel_name(rel));
}

/* Drops trigger streamml_tracker_<id><suffix> from a table, if both still exist. */
static void
DropTrackerTrigger(Oid rel, int32 id, const char *suffix)
{
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(rel)))
		return;
	CatalogExecute(psprintf("DROP TRIGGER IF EXISTS streamml_tracker_%d%s ON %s",
							id, suffix, RelQualifiedName(rel)),
				   0, NULL, NULL, NULL, SPI_OK_UTILITY);
}

/*
 * After a change of scorer's models (promote, set_challengers), sets the
 * floor of its trackers' in-memory joins again (predstash.c): to their
 * predictions table's last key, under a lock that keeps every writer of
 * the table out until the change commits, waited for (wait) or taken only
 * when free (an automatic promotion, inside a load: waiting could
 * deadlock with another load); NULL when it is not taken.  SPI connected.
 */
void
OutcomeTrackersRearm(const char *scorer, bool wait)
{
	Datum		arg = CStringGetTextDatum(scorer);
	uint64		n;
	int32	   *ids;
	Oid		   *preds;
	char	  **keys;

	n = CatalogExecute("SELECT id, predictions, prediction_keys FROM streamml.outcome_trackers "
					   "WHERE scorer OPERATOR(pg_catalog.=) $1 ORDER BY id",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	ids = palloc(sizeof(int32) * Max(n, 1));
	preds = palloc(sizeof(Oid) * Max(n, 1));
	keys = palloc(sizeof(char *) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			nk;
		char	  **kv;

		ids[i] = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		preds[i] = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		kv = TextArrayStrings(SPI_getbinval(tup, desc, 3, &isnull), &nk);
		keys[i] = nk == 1 ? kv[0] : NULL;
	}
	for (uint64 i = 0; i < n; i++)
	{
		Datum		fargs[2];
		char		fnulls[3] = "n ";
		bool		fnull = true;

		if (keys[i] != NULL &&
			(wait ? (LockRelationOid(preds[i], ShareRowExclusiveLock), true) :
			 ConditionalLockRelationOid(preds[i], ShareRowExclusiveLock)))
		{
			Relation	rel = table_open(preds[i], NoLock);

			fargs[0] = PredStashFloor(rel, get_attnum(preds[i], keys[i]),
									  get_attnum(preds[i], "model"), &fnull);
			table_close(rel, NoLock);
		}
		if (!fnull)
			fnulls[0] = ' ';
		fargs[1] = Int32GetDatum(ids[i]);
		CatalogExecute("UPDATE streamml.outcome_trackers SET stash_floor = $1 "
					   "WHERE id OPERATOR(pg_catalog.=) $2",
					   2, (Oid[]) {INT8OID, INT4OID}, fargs, fnulls, SPI_OK_UPDATE);
	}
}

/*
 * In the event trigger at the end of CREATE and ALTER TABLE: stops the
 * in-memory join of the trackers whose predictions table the command
 * changed (ALTER ... TYPE ... USING rewrites rows without a trigger).
 * SPI connected.
 */
void
OutcomeTrackersPredictionsAltered(void)
{
	CatalogExecute("UPDATE streamml.outcome_trackers t SET stash_floor = NULL "
				   "FROM pg_catalog.pg_event_trigger_ddl_commands() c "
				   "WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
				   "AND c.objid OPERATOR(pg_catalog.=) t.predictions "
				   "AND t.stash_floor IS NOT NULL",
				   0, NULL, NULL, NULL, SPI_OK_UPDATE);
}

/*
 * Stops the in-memory join of tracker id with its loading statement's
 * predictions: the predictions table may now hold rows its floor does not
 * cover (predstash.c).  SPI connected.
 */
void
OutcomeTrackersDisarm(int32 id)
{
	Datum		arg = Int32GetDatum(id);

	CatalogExecute("UPDATE streamml.outcome_trackers SET stash_floor = NULL "
				   "WHERE id OPERATOR(pg_catalog.=) $1 AND stash_floor IS NOT NULL",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_UPDATE);
}

/* Removes a tracker: its triggers and every row of it (SPI connected). */
static void
TrackerRemove(int32 id, Oid source, Oid predictions)
{
	Datum		arg = Int32GetDatum(id);

	DropTrackerTrigger(source, id, "");
	DropTrackerTrigger(predictions, id, "");
	DropTrackerTrigger(predictions, id, "_update");
	PartitionTriggersDrop("outcome_trigger", id);
	CatalogExecute("DELETE FROM streamml.outcome_rows WHERE tracker OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_DELETE);
	CatalogExecute("DELETE FROM streamml.outcome_key_sets WHERE tracker OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_DELETE);
	CatalogExecute("DELETE FROM streamml.pending_outcomes WHERE tracker OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_DELETE);
	CatalogExecute("DELETE FROM streamml.quality_buckets WHERE tracker OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_DELETE);
	CatalogExecute("DELETE FROM streamml.outcome_trackers WHERE id OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_DELETE);
}

/* Errors unless the predictions table has the columns of a scorer's. */
static void
CheckPredictionsTable(Oid preds)
{
	static const char *const cols[] = {
		"model", "version", "prediction", "probability", "class", "scored_at", NULL
	};

	for (int i = 0; cols[i]; i++)
		if (get_attnum(preds, cols[i]) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("table \"%s\" is not a predictions table: it has no column \"%s\"",
							get_rel_name(preds), cols[i]),
					 errdetail("A predictions table has the key columns and model, version, prediction, probability, class, scored_at.")));
}

PG_FUNCTION_INFO_V1(track_outcomes);

/*
 * Errors unless role owner may create a trigger on table relid (owns it or
 * holds TRIGGER on it): a tracker's triggers run on every insert into the
 * table, whoever inserts, so nobody may put one on a table by SELECT alone.
 */
static void
CheckTriggerPrivilege(Oid relid, Oid owner, const char *scorer)
{
	if (pg_class_aclcheck(relid, owner, ACL_TRIGGER) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(relid)),
				 errdetail("The owner of scorer \"%s\" needs TRIGGER on the source of its outcomes and on its predictions table: an outcome tracker puts a trigger on both.",
						   scorer)));
}

/*
 * Creates the statement trigger streamml_tracker_<id><suffix> AFTER event
 * ON rel (a qualified name), calling streamml.func(id); an INSERT trigger
 * reads the statement's rows as the transition table streamml_new.
 */
static void
CreateTrackerTrigger(int32 id, const char *suffix, const char *event,
					 const char *rel, const char *func)
{
	CatalogExecute(psprintf("CREATE TRIGGER streamml_tracker_%d%s AFTER %s ON %s %s"
							"FOR EACH STATEMENT EXECUTE FUNCTION streamml.%s('%d')",
							id, suffix, event, rel,
							strcmp(event, "INSERT") == 0 ?
							"REFERENCING NEW TABLE AS streamml_new " : "",
							func, id),
				   0, NULL, NULL, NULL, SPI_OK_UTILITY);
}

/*
 * SQL streamml.track_outcomes(scorer, source, options): see the top of
 * the file.
 */
Datum
track_outcomes(PG_FUNCTION_ARGS)
{
	char	   *scorer = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			source = PG_GETARG_OID(1);
	Jsonb	   *options = PG_GETARG_JSONB_P(2);
	Datum		arg;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Oid			owner;
	Oid			preds;
	char	   *model;
	char	  **pkeys;
	int			npkeys;
	char	  **skeys;
	int			nskeys;
	char	   *actual;
	char	   *at;
	char	   *group;
	char	   *horizon = NULL;
	char	   *partition_by = NULL;
	char	   *order_by = NULL;
	char	   *bucket;
	char	   *grace;
	char		relkind = get_rel_relkind(source);
	int32		id;
	OutcomeTracker *t;

	OptionCheckKeys(options, TrackOptionKeys, "track_outcomes");
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", get_rel_name(source)),
				 errdetail("Outcomes are read from the rows inserted into a table.")));
	PartitionSourceCheck(source, "outcome tracker");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* the scorer: owner, predictions table, key */
	if (!OidIsValid(get_relname_relid("scorers_catalog",
									  get_namespace_oid(STREAMML_SCHEMA, false))))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("scorer \"%s\" does not exist", scorer)));
	arg = CStringGetTextDatum(scorer);
	if (CatalogExecute("SELECT owner, predictions, key_columns, model "
					   "FROM streamml.scorers_catalog WHERE name OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("scorer \"%s\" does not exist", scorer)));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	owner = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
	preds = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	pkeys = TextArrayStrings(SPI_getbinval(tup, desc, 3, &isnull), &npkeys);
	model = SPI_getvalue(tup, desc, 4);
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of scorer \"%s\"", scorer)));
	if (pg_class_aclcheck(source, owner, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(source)),
				 errdetail("The owner of scorer \"%s\" needs SELECT on the source of its outcomes.",
						   scorer)));
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(preds)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the predictions table of scorer \"%s\" does not exist", scorer)));
	/* a tracker puts a trigger on both tables, as CREATE TRIGGER would */
	CheckTriggerPrivilege(source, owner, scorer);
	CheckTriggerPrivilege(preds, owner, scorer);
	if (source == preds)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the source of outcomes cannot be the predictions table of scorer \"%s\"",
						scorer)));
	CheckPredictionsTable(preds);
	PredictionsTableCheck(preds, scorer);
	/* its statements are written for one node (a LATERAL probe per outcome) */
	if (LoaderIsCitusTable(preds) || LoaderIsCitusTable(source))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot track the outcomes of scorer \"%s\": table \"%s\" is a Citus table",
						scorer, get_rel_name(LoaderIsCitusTable(preds) ? preds : source)),
				 errdetail("Outcome trackers do not run over Citus tables yet."),
				 errhint("Give the scorer a local predictions table (option \"into\") and track outcomes from a local table.")));

	/* options */
	skeys = OptionKeyColumns(options, &nskeys);
	if (skeys == NULL)
	{
		/* the scorer's key columns, by name: say so when one is missing */
		for (int i = 0; i < npkeys; i++)
			if (get_attnum(source, pkeys[i]) == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("table \"%s\" has no column \"%s\" of the key of scorer \"%s\"",
								get_rel_name(source), pkeys[i], scorer),
						 errdetail("Without option \"key\", an outcome's key columns are named as the scorer's (%d of them).",
								   npkeys),
						 errhint("Name the table's columns that hold the scorer's key with option \"key\", e.g. {\"key\": [\"%s\"]}.",
								 pkeys[0])));
		skeys = pkeys;
		nskeys = npkeys;
	}
	if (nskeys != npkeys)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"key\" names %d columns, and the key of scorer \"%s\" has %d",
						nskeys, scorer, npkeys)));
	for (int i = 0; i < nskeys; i++)
		(void) SourceColumnType(source, skeys[i], "a key column");
	OutcomeKeyTypesCheck(source, skeys, preds, pkeys, nskeys, scorer);
	actual = OptionString(options, "actual", NULL);
	if (actual == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"actual\" is required"),
				 errhint("Name the column of the source that holds the actual value (the label).")));
	{
		Oid			type = SourceColumnType(source, actual, "option \"actual\"");

		if (!OutcomeNumericType(type) && type != TEXTOID && type != VARCHAROID &&
			type != BPCHAROID && !type_is_enum(type))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" must be a number, boolean, text or enum, not %s",
							actual, format_type_be(type))));
	}
	at = OptionString(options, "at", NULL);
	if (at)
	{
		Oid			type = SourceColumnType(source, at, "option \"at\"");

		if (type != TIMESTAMPTZOID && type != TIMESTAMPOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" must be a timestamptz or timestamp, not %s",
							at, format_type_be(type))));
	}
	group = OptionString(options, "group", NULL);
	if (group)
		(void) SourceColumnType(source, group, "option \"group\"");
	else
	{
		/* the model's group column, when the source has it */
		arg = CStringGetTextDatum(model);
		if (CatalogExecute("SELECT group_by FROM streamml.models "
						   "WHERE name OPERATOR(pg_catalog.=) $1",
						   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT) > 0)
		{
			char	   *g = SPI_getvalue(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1);

			if (g && get_attnum(source, g) > 0)
				group = g;
			else if (g)
				ereport(NOTICE,
						(errmsg("the live metrics of scorer \"%s\" will not be split by group",
								scorer),
						 errdetail("Model \"%s\" is trained per value of \"%s\", and table \"%s\" has no such column.",
								   model, g, get_rel_name(source)),
						 errhint("Add the column to the outcomes' table, or name the one that holds the group with option \"group\".")));
		}
	}
	if (OptionGet(options, "horizon"))
	{
		partition_by = OptionString(options, "partition_by", NULL);
		order_by = OptionString(options, "order_by", NULL);
		if (partition_by == NULL || order_by == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"horizon\" needs \"partition_by\" and \"order_by\"")));
		if (at)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"at\" cannot be used with \"horizon\""),
					 errdetail("With a horizon the outcome time is the time of the insert that brings it.")));
		(void) SourceColumnType(source, partition_by, "option \"partition_by\"");
		horizon = HorizonLiteral(options,
								 SourceColumnType(source, order_by, "option \"order_by\""));
		if (!OutcomeHorizonIndexExists(source, partition_by, order_by))
			ereport(WARNING,
					(errmsg("table \"%s\" has no index on (%s, %s)",
							get_rel_name(source), quote_identifier(partition_by),
							quote_identifier(order_by)),
					 errdetail("Each batch then finds the rows it labels by scanning the table, slower as the table grows."),
					 errhint("CREATE INDEX ON %s (%s, %s);",
							 quote_qualified_identifier(get_namespace_name(get_rel_namespace(source)),
														get_rel_name(source)),
							 quote_identifier(partition_by), quote_identifier(order_by))));
	}
	else if (OptionGet(options, "partition_by") || OptionGet(options, "order_by"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options \"partition_by\" and \"order_by\" need \"horizon\"")));
	bucket = OptionInterval(options, "bucket", "1 minute");
	/* a bucket is a row of quality_buckets per model and group: not per microsecond */
	if (DatumGetBool(DirectFunctionCall2(interval_lt,
										 DirectFunctionCall3(interval_in, CStringGetDatum(bucket),
															 ObjectIdGetDatum(InvalidOid),
															 Int32GetDatum(-1)),
										 DirectFunctionCall3(interval_in, CStringGetDatum("1 second"),
															 ObjectIdGetDatum(InvalidOid),
															 Int32GetDatum(-1)))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"bucket\" must be at least 1 second"),
				 errdetail("\"%s\" was given.", bucket)));
	grace = OptionInterval(options, "grace", "1 hour");

	/* the catalog row */
	arg = CStringGetTextDatum(scorer);
	if (CatalogExecute("SELECT 1 FROM streamml.outcome_trackers WHERE scorer OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("the outcomes of scorer \"%s\" are already tracked", scorer),
				 errhint("Call streamml.untrack_outcomes first.")));
	{
		Datum		values[16];
		char		nulls[16];
		Oid			types[16] = {TEXTOID, REGROLEOID, REGCLASSOID, REGCLASSOID,
			TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID, TEXTOID, TEXTOID,
		TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID};
		const char *strs[8] = {actual, at, group, horizon, partition_by,
		order_by, bucket, grace};

		memset(nulls, ' ', sizeof(nulls));
		values[0] = CStringGetTextDatum(scorer);
		values[1] = ObjectIdGetDatum(owner);
		values[2] = ObjectIdGetDatum(source);
		values[3] = ObjectIdGetDatum(preds);
		values[4] = CStringGetTextDatum(horizon ? "horizon" : "key");
		values[5] = TextArrayDatum(skeys, nskeys);
		values[6] = TextArrayDatum(pkeys, npkeys);
		for (int i = 0; i < 8; i++)
		{
			if (strs[i])
				values[7 + i] = CStringGetTextDatum(strs[i]);
			else
				nulls[7 + i] = 'n';
		}
		values[15] = JsonbPGetDatum(options);
		CatalogExecute("INSERT INTO streamml.outcome_trackers (scorer, owner, source, "
					   "predictions, mode, key_columns, prediction_keys, actual, at, "
					   "group_column, horizon, partition_by, order_by, bucket, grace, options) "
					   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
					   "$14::pg_catalog.interval, $15::pg_catalog.interval, $16) RETURNING id",
					   16, types, values, nulls, SPI_OK_INSERT_RETURNING);
		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	}

	/* the triggers, then the predictions already made */
	CreateTrackerTrigger(id, "", "INSERT", RelQualifiedName(source), "outcome_trigger");
	CreateTrackerTrigger(id, "", "INSERT", RelQualifiedName(preds),
						 "outcome_prediction_trigger");
	CreateTrackerTrigger(id, "_update", "UPDATE", RelQualifiedName(preds),
						 "outcome_prediction_trigger");
	/*
	 * Both fire whatever session_replication_role is: they are what tells
	 * the in-memory join that rows were written by hand (predstash.c)
	 */
	CatalogExecute(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER streamml_tracker_%d, "
							"ENABLE ALWAYS TRIGGER streamml_tracker_%d_update",
							RelQualifiedName(preds), id, id),
				   0, NULL, NULL, NULL, SPI_OK_UTILITY);
	/*
	 * The floor of the in-memory join (predstash.c): CREATE TRIGGER's lock
	 * keeps every writer of the predictions table out until we commit.
	 */
	{
		Relation	prel = table_open(preds, AccessShareLock);
		bool		fnull;
		Datum		fargs[2];

		fargs[0] = PredStashFloor(prel, npkeys == 1 ? get_attnum(preds, pkeys[0]) :
								  InvalidAttrNumber, get_attnum(preds, "model"), &fnull);
		fargs[1] = Int32GetDatum(id);
		table_close(prel, AccessShareLock);
		if (!fnull)
			CatalogExecute("UPDATE streamml.outcome_trackers SET stash_floor = $1 "
						   "WHERE id OPERATOR(pg_catalog.=) $2",
						   2, (Oid[]) {INT8OID, INT4OID}, fargs, NULL, SPI_OK_UPDATE);
	}
	/* and on every partition of the source (partitions.c) */
	PartitionTriggersSync(source, psprintf("streamml_tracker_%d", id),
						  "outcome_trigger", "streamml_new", id);
	t = OutcomeTrackerLoad(id);
	OutcomeTrackerColumnsCheck(t);
	OutcomeTrackerTypesCheck(t);
	OutcomeCountPredictions(t);
	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(untrack_outcomes);

/* SQL streamml.untrack_outcomes(scorer): see the top of the file. */
Datum
untrack_outcomes(PG_FUNCTION_ARGS)
{
	char	   *scorer = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Datum		arg = CStringGetTextDatum(scorer);
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Oid			owner;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (CatalogExecute("SELECT id, owner, source, predictions FROM streamml.outcome_trackers "
					   "WHERE scorer OPERATOR(pg_catalog.=) $1 FOR UPDATE",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the outcomes of scorer \"%s\" are not tracked", scorer)));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	owner = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of scorer \"%s\"", scorer)));
	TrackerRemove(DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull)),
				  DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull)),
				  DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull)));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Removes the trackers a condition on outcome_trackers t ($1 the oid[]
 * arg) selects, as untrack_outcomes does; with a NOTICE each when notice.
 * SPI connected.
 */
static void
TrackersRemoveWhere(const char *where, Datum arg, bool notice)
{
	uint64		n;
	SPITupleTable *tt;

	n = CatalogExecute(psprintf("SELECT t.id, t.source, t.predictions, t.scorer "
								"FROM streamml.outcome_trackers t WHERE %s", where),
					   1, (Oid[]) {OIDARRAYOID}, &arg, NULL, SPI_OK_SELECT);
	tt = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		TrackerRemove(DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)),
					  DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull)),
					  DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull)));
		if (notice)
			ereport(NOTICE,
					(errmsg("drop cascades to the outcome tracker of scorer \"%s\"",
							SPI_getvalue(tt->vals[i], tt->tupdesc, 4)),
					 errdetail("A table it reads or writes, or its scorer's source, was dropped; its outcomes went with it, as with streamml.untrack_outcomes.")));
	}
}

/*
 * DROP of tables (relations.c): the trackers whose source or predictions
 * table is one of the dropped relations (an oid[]), and those of a scorer
 * that goes with them (its source dropped), go with their outcomes.
 */
void
OutcomeTrackersRelationsDropped(Datum relids)
{
	TrackersRemoveWhere("t.source OPERATOR(pg_catalog.=) ANY ($1) "
						"OR t.predictions OPERATOR(pg_catalog.=) ANY ($1) "
						"OR t.scorer IN (SELECT s.name FROM streamml.scorers_catalog s "
						"WHERE s.source OPERATOR(pg_catalog.=) ANY ($1) "
						"OR s.predictions OPERATOR(pg_catalog.=) ANY ($1))",
						relids, true);
}

/* DROP OWNED (roles.c): the roles' trackers go.  SPI connected. */
void
OutcomeTrackersDropOwned(Datum roles)
{
	TrackersRemoveWhere("t.owner OPERATOR(pg_catalog.=) ANY ($1)", roles, false);
}
