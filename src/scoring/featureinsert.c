/*
 * featureinsert.c
 *		The statement trigger that gives every row inserted into a feature
 *		table's source its features row, in the same transaction.
 *
 * The trigger (AFTER INSERT FOR EACH STATEMENT, REFERENCING NEW TABLE)
 * fires for every path that inserts rows: INSERT, COPY, a stream's loader
 * (which fires statement triggers with transition tables as COPY does), a
 * trigger.  It reads the transition table directly, computes each row's
 * features from its partition's state (featurestate.c) and writes all the
 * statement's feature rows with one INSERT ... SELECT from an ephemeral
 * named relation, so the feature table's own triggers, constraints and
 * indexes apply (a scorer's trigger fires in turn).  It runs as the feature
 * table's owner, in a security-restricted operation, whoever inserted.
 *
 * Design: states cached per backend, validated per partition.
 *
 * Each backend caches, per feature table and partition, the window state
 * built from the rows it has seen.  Another backend may have inserted into
 * the same partition since (two stream workers, concurrent INSERTs), and a
 * state that missed those rows would give wrong features.  So:
 *
 *	1. Before it computes anything, a statement takes a transaction-level
 *	   lock on each partition it touches, in the order of their hashes (no
 *	   deadlock between two statements), an advisory lock tag (database,
 *	   feature table, hash of the partition key, 3).  Writers of a partition
 *	   are so serialized until commit: when the lock is granted, every
 *	   earlier writer of the partition has committed or aborted.
 *
 *	2. Shared memory holds a version counter per (feature table, partition
 *	   hash), bumped by every statement that wrote the partition, while it
 *	   holds the lock.  A cached state records the version after its own
 *	   last write; if the counter still has that value, nobody wrote since
 *	   and the state is current.  Otherwise (or after a collision of
 *	   hashes, which only costs a query) the state catches up: it reads the
 *	   partition's rows with arrival_seq above its newest, in arrival_seq
 *	   order, from the feature table, with a fresh snapshot taken after the
 *	   lock (so in READ COMMITTED and REPEATABLE READ alike it sees the rows
 *	   committed by the writers it waited for), and replays them.
 *
 *	3. A backend with no state for a partition (first use, after a restart
 *	   or crash, after an abort) rebuilds it from the feature table: the
 *	   newest rows of the partition, newest first, back to the oldest row a
 *	   frame, a lag or an ewma can still use (featurespec.c's need_*), then
 *	   replayed in arrival order.  Stored late flags are replayed as they
 *	   were decided.  ewma's history is cut where the weights of older rows
 *	   fall below 2^-60 of the newest, far below the 1e-9 of the contract.
 *
 *	4. Any abort (of a transaction or a subtransaction: a stream bisecting a
 *	   bad batch) forgets every cached state, since they may hold rows that
 *	   are gone; the next statement rebuilds them.
 *
 * arrival_seq numbers the rows of a partition 1, 2, 3... in arrival order;
 * a unique index on (partition_by, arrival_seq) turns any violation of the
 * above (a row written into the feature table by hand) into an error
 * instead of a wrong feature.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "pg_streamml.h"
#include "scoring/features.h"

/* Version counters in shared memory; a power of 2. */
#define FT_VERSION_SLOTS 8192
/* Feature tables with statistics in shared memory. */
#define FT_STAT_SLOTS 128
/* The advisory lock tag's fourth field for feature table partitions. */
#define FT_LOCK_KIND 3

typedef struct FtStat
{
	Oid			db;
	Oid			target;			/* InvalidOid: free */
	int64		rows;
	int64		late;
	int64		batches;
	double		total_ms;
	double		rate;			/* rows per second, last full second */
	TimestampTz rate_at;
	int64		rate_rows;
	char		last_error[256];
} FtStat;

typedef struct FtShared
{
	LWLock	   *lock;			/* the statistics */
	pg_atomic_uint64 version[FT_VERSION_SLOTS];
	FtStat		stats[FT_STAT_SLOTS];
} FtShared;

static FtShared *Ft = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* One partition's cached state. */
typedef struct PartEntry
{
	struct PartEntry *next;		/* same hash */
	uint32		hash;
	Datum	   *key;
	PartState  *ps;
	bool		valid;			/* false: rebuild before use */
	uint64		version;		/* the shared counter after our last look */
	uint64		stmt;			/* the statement that last touched it */
} PartEntry;

typedef struct PartBucket
{
	uint32		hash;
	PartEntry  *first;
} PartBucket;

/* A feature table's cached states in this backend. */
typedef struct FtCache
{
	Oid			target;
	Oid			source;
	char	   *spec_text;
	MemoryContext cxt;
	HTAB	   *parts;
	SPIPlanPtr	catchup_plan;
	SPIPlanPtr	rebuild_plan;
} FtCache;

static HTAB *FtCaches = NULL;
static uint64 FtStatement = 0;

/* What one load works on. */
typedef struct FtLoad
{
	Oid			target;
	char	   *name;
	Oid			owner;
	Relation	source;
	Jsonb	   *spec_json;
	char	   *spec_text;
	Tuplestorestate *rows;
	TupleDesc	desc;
	FeatureSpec *spec;
	FtCache    *cache;
	int64		nrows;
	int64		nlate;
} FtLoad;

/* Asks for the shared memory; from the shmem_request_hook. */
static void
FtShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sizeof(FtShared));
	RequestNamedLWLockTranche("pg_streamml feature tables", 1);
}

/* Creates or attaches the shared struct; from the shmem_startup_hook. */
static void
FtShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Ft = ShmemInitStruct("pg_streamml feature tables", sizeof(FtShared), &found);
	if (!found)
	{
		memset(Ft, 0, sizeof(FtShared));
		Ft->lock = &(GetNamedLWLockTranche("pg_streamml feature tables"))->lock;
		for (int i = 0; i < FT_VERSION_SLOTS; i++)
			pg_atomic_init_u64(&Ft->version[i], 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Forgets every cached state: after an abort they may hold lost rows. */
static void
FtForgetStates(void)
{
	HASH_SEQ_STATUS hs;
	FtCache    *c;

	if (FtCaches == NULL)
		return;
	hash_seq_init(&hs, FtCaches);
	while ((c = hash_seq_search(&hs)) != NULL)
	{
		HASH_SEQ_STATUS ps;
		PartBucket *b;

		hash_seq_init(&ps, c->parts);
		while ((b = hash_seq_search(&ps)) != NULL)
			for (PartEntry *e = b->first; e; e = e->next)
				e->valid = false;
	}
}

/* Transaction callback: an abort invalidates the states. */
static void
FtXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		FtForgetStates();
}

/* Subtransaction callback: so does the abort of a subtransaction. */
static void
FtSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
				  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		FtForgetStates();
}

/* Called from _PG_init: shared memory and the abort callbacks. */
void
FeatureTablesInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = FtShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = FtShmemStartup;
	RegisterXactCallback(FtXactCallback, NULL);
	RegisterSubXactCallback(FtSubXactCallback, NULL);
}

/* The statistics slot of a feature table, made if needed; lock held. */
static FtStat *
FtStatSlot(Oid target, bool create)
{
	FtStat	   *free_slot = NULL;

	for (int i = 0; i < FT_STAT_SLOTS; i++)
	{
		FtStat	   *s = &Ft->stats[i];

		if (s->target == target && s->db == MyDatabaseId)
			return s;
		if (s->target == InvalidOid && free_slot == NULL)
			free_slot = s;
	}
	if (!create || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(FtStat));
	free_slot->db = MyDatabaseId;
	free_slot->target = target;
	return free_slot;
}

/* Counts a statement's rows in the statistics. */
static void
FtStatCount(Oid target, int64 rows, int64 late, double ms)
{
	FtStat	   *s;
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(Ft->lock, LW_EXCLUSIVE);
	s = FtStatSlot(target, true);
	if (s)
	{
		s->rows += rows;
		s->late += late;
		s->batches++;
		s->total_ms += ms;
		s->rate_rows += rows;
		if (s->rate_at == 0)
			s->rate_at = now;
		else if (now - s->rate_at >= USECS_PER_SEC)
		{
			s->rate = (double) s->rate_rows * USECS_PER_SEC / (double) (now - s->rate_at);
			s->rate_at = now;
			s->rate_rows = 0;
		}
	}
	LWLockRelease(Ft->lock);
}

/* Records the error a statement raised. */
static void
FtStatError(Oid target, const char *message)
{
	FtStat	   *s;

	LWLockAcquire(Ft->lock, LW_EXCLUSIVE);
	s = FtStatSlot(target, true);
	if (s)
		strlcpy(s->last_error, message, sizeof(s->last_error));
	LWLockRelease(Ft->lock);
}

/* Drops a feature table's statistics (drop_feature_table). */
void
FeatureStatsForget(Oid target)
{
	FtStat	   *s;

	LWLockAcquire(Ft->lock, LW_EXCLUSIVE);
	s = FtStatSlot(target, false);
	if (s)
		s->target = InvalidOid;
	LWLockRelease(Ft->lock);
}

PG_FUNCTION_INFO_V1(feature_table_stats);

/*
 * SQL streamml.feature_table_stats(): per feature table of this database,
 * rows, late rows, rows per second, last error, mean time per statement.
 */
Datum
feature_table_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	LWLockAcquire(Ft->lock, LW_SHARED);
	for (int i = 0; i < FT_STAT_SLOTS; i++)
	{
		FtStat	   *s = &Ft->stats[i];
		Datum		v[6];
		bool		n[6] = {0};

		if (s->target == InvalidOid || s->db != MyDatabaseId)
			continue;
		v[0] = ObjectIdGetDatum(s->target);
		v[1] = Int64GetDatum(s->rows);
		v[2] = Int64GetDatum(s->late);
		v[3] = Float8GetDatum(s->rate);
		if (s->last_error[0])
			v[4] = CStringGetTextDatum(s->last_error);
		else
			n[4] = true;
		if (s->batches > 0)
			v[5] = Float8GetDatum(s->total_ms / (double) s->batches);
		else
			n[5] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	LWLockRelease(Ft->lock);
	return (Datum) 0;
}

/* Hash of a partition key (the row's partition_by values). */
static uint32
KeyHash(FeatureSpec *spec, Datum *key, Oid *colls)
{
	uint32		h = 0;

	for (int i = 0; i < spec->npart; i++)
	{
		TypeCacheEntry *tc = lookup_type_cache(spec->part_types[i],
											   TYPECACHE_HASH_PROC_FINFO);

		if (!OidIsValid(tc->hash_proc))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("partition_by column \"%s\" has a type without a hash function",
							spec->part_names[i])));
		h = hash_combine(h, DatumGetUInt32(FunctionCall1Coll(&tc->hash_proc_finfo,
															 colls[i], key[i])));
	}
	return h;
}

/* Whether two partition keys are equal. */
static bool
KeyEqual(FeatureSpec *spec, Datum *a, Datum *b, Oid *colls)
{
	for (int i = 0; i < spec->npart; i++)
	{
		TypeCacheEntry *tc = lookup_type_cache(spec->part_types[i],
											   TYPECACHE_EQ_OPR_FINFO);

		if (!DatumGetBool(FunctionCall2Coll(&tc->eq_opr_finfo, colls[i],
											a[i], b[i])))
			return false;
	}
	return true;
}

/* The cache of a feature table, made or remade for its current spec. */
static FtCache *
GetCache(FtLoad *ld)
{
	FtCache    *c;
	bool		found;

	if (FtCaches == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(FtCache);
		FtCaches = hash_create("pg_streamml feature tables", 16, &ctl,
							   HASH_ELEM | HASH_BLOBS);
	}
	c = hash_search(FtCaches, &ld->target, HASH_ENTER, &found);
	if (found && (c->source != RelationGetRelid(ld->source) ||
				  strcmp(c->spec_text, ld->spec_text) != 0))
	{
		if (c->catchup_plan)
			SPI_freeplan(c->catchup_plan);
		if (c->rebuild_plan)
			SPI_freeplan(c->rebuild_plan);
		MemoryContextDelete(c->cxt);
		found = false;
	}
	if (!found)
	{
		HASHCTL		ctl;

		c->source = RelationGetRelid(ld->source);
		c->cxt = AllocSetContextCreate(TopMemoryContext,
									   "pg_streamml feature table states",
									   ALLOCSET_DEFAULT_SIZES);
		c->spec_text = MemoryContextStrdup(c->cxt, ld->spec_text);
		ctl.keysize = sizeof(uint32);
		ctl.entrysize = sizeof(PartBucket);
		ctl.hcxt = c->cxt;
		c->parts = hash_create("pg_streamml feature table partitions", 256,
							   &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		c->catchup_plan = NULL;
		c->rebuild_plan = NULL;
	}
	return c;
}

/* The shared version counter of a partition. */
static pg_atomic_uint64 *
VersionOf(Oid target, uint32 hash)
{
	return &Ft->version[hash_combine(hash, (uint32) target) & (FT_VERSION_SLOTS - 1)];
}

/* The SELECT list that reads a partition's rows back. */
static void
AppendReadColumns(StringInfo sql, FeatureSpec *spec)
{
	appendStringInfo(sql, "SELECT %s, %s, %s", FT_SEQ_COLUMN, FT_LATE_COLUMN,
					 quote_identifier(spec->order_name));
	for (int j = 0; j < spec->nof; j++)
		appendStringInfo(sql, ", %s", quote_identifier(spec->of_names[j]));
}

/* The WHERE clause matching a partition, $1.. $npart. */
static void
AppendPartitionWhere(StringInfo sql, FeatureSpec *spec)
{
	appendStringInfoString(sql, " WHERE true");
	for (int i = 0; i < spec->npart; i++)
		appendStringInfo(sql, " AND %s OPERATOR(pg_catalog.=) $%d",
						 quote_identifier(spec->part_names[i]), i + 1);
}

/* Prepares the two queries that read a partition back. */
static void
PreparePlans(FtLoad *ld)
{
	FeatureSpec *spec = ld->spec;
	FtCache    *c = ld->cache;
	Oid		   *types = palloc(sizeof(Oid) * (spec->npart + 1));
	char	   *target = quote_qualified_identifier(get_namespace_name(get_rel_namespace(ld->target)),
													get_rel_name(ld->target));
	StringInfoData sql;

	if (c->catchup_plan)
		return;
	memcpy(types, spec->part_types, sizeof(Oid) * spec->npart);
	types[spec->npart] = INT8OID;

	initStringInfo(&sql);
	AppendReadColumns(&sql, spec);
	appendStringInfo(&sql, " FROM %s", target);
	AppendPartitionWhere(&sql, spec);
	appendStringInfo(&sql, " AND %s OPERATOR(pg_catalog.>) $%d ORDER BY %s",
					 FT_SEQ_COLUMN, spec->npart + 1, FT_SEQ_COLUMN);
	c->catchup_plan = SPI_prepare(sql.data, spec->npart + 1, types);
	if (c->catchup_plan == NULL)
		elog(ERROR, "cannot prepare feature table catch-up: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(c->catchup_plan);

	resetStringInfo(&sql);
	AppendReadColumns(&sql, spec);
	appendStringInfo(&sql, " FROM %s", target);
	AppendPartitionWhere(&sql, spec);
	appendStringInfo(&sql, " ORDER BY %s DESC LIMIT $%d", FT_SEQ_COLUMN,
					 spec->npart + 1);
	c->rebuild_plan = SPI_prepare(sql.data, spec->npart + 1, types);
	if (c->rebuild_plan == NULL)
		elog(ERROR, "cannot prepare feature table rebuild: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(c->rebuild_plan);
}

/* Replays rows [from, to] (or [to, from] backwards) of an SPI result. */
static void
Replay(FtLoad *ld, PartState *ps, SPITupleTable *tt, int64 from, int64 to,
	   int step)
{
	FeatureSpec *spec = ld->spec;
	double	   *vals = palloc(sizeof(double) * Max(spec->nof, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(spec->nof, 1));

	for (int64 r = from;; r += step)
	{
		HeapTuple	tup = tt->vals[r];
		bool		isnull;
		int64		seq = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 1, &isnull));
		bool		late = DatumGetBool(SPI_getbinval(tup, tt->tupdesc, 2, &isnull));

		if (!late)
		{
			Datum		ob = SPI_getbinval(tup, tt->tupdesc, 3, &isnull);
			double		key = OrderKey(spec, ob, ld->name);

			for (int j = 0; j < spec->nof; j++)
			{
				Datum		d = SPI_getbinval(tup, tt->tupdesc, 4 + j, &nulls[j]);

				vals[j] = nulls[j] ? 0.0 : OfValue(spec->of_types[j], d);
			}
			PartStateAdd(ps, spec, key, vals, nulls, NULL, NULL);
		}
		PartStateSetSeq(ps, seq);
		if (r == to)
			break;
	}
}

/*
 * Brings a partition's state up to date with the feature table: replays
 * the rows written since (catch up) or, when it has none, rebuilds it.
 */
static void
Refresh(FtLoad *ld, PartEntry *e)
{
	FeatureSpec *spec = ld->spec;
	Datum	   *args = palloc(sizeof(Datum) * (spec->npart + 1));
	int			rc;

	PreparePlans(ld);
	memcpy(args, e->key, sizeof(Datum) * spec->npart);
	if (e->valid)
	{
		args[spec->npart] = Int64GetDatum(PartStateSeq(e->ps));
		rc = SPI_execute_snapshot(ld->cache->catchup_plan, args, NULL,
								  GetLatestSnapshot(), InvalidSnapshot,
								  true, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "feature table catch-up failed: %s", SPI_result_code_string(rc));
		if (SPI_processed > 0)
			Replay(ld, e->ps, SPI_tuptable, 0, SPI_processed - 1, 1);
		SPI_freetuptable(SPI_tuptable);
		return;
	}

	/* rebuild: newest first, as far back as the frames need, doubling */
	for (int64 limit = Max(64, 2 * spec->need_rows);; limit *= 2)
	{
		SPITupleTable *tt;
		int64		n;
		int64		cut = -1;
		int64		rows = 0;
		int64	   *nonnull = palloc0(sizeof(int64) * Max(spec->nof, 1));
		bool		have_newest = false;
		double		newest = 0;

		args[spec->npart] = Int64GetDatum(limit);
		rc = SPI_execute_snapshot(ld->cache->rebuild_plan, args, NULL,
								  GetLatestSnapshot(), InvalidSnapshot,
								  true, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "feature table rebuild failed: %s", SPI_result_code_string(rc));
		tt = SPI_tuptable;
		n = SPI_processed;
		for (int64 r = 0; r < n && cut < 0; r++)
		{
			bool		isnull;
			double		key;
			bool		enough;

			if (DatumGetBool(SPI_getbinval(tt->vals[r], tt->tupdesc, 2, &isnull)))
				continue;		/* late rows change no state */
			key = OrderKey(spec, SPI_getbinval(tt->vals[r], tt->tupdesc, 3, &isnull),
						   ld->name);
			if (!have_newest)
			{
				newest = key;
				have_newest = true;
			}
			rows++;
			for (int j = 0; j < spec->nof; j++)
			{
				(void) SPI_getbinval(tt->vals[r], tt->tupdesc, 4 + j, &isnull);
				if (!isnull)
					nonnull[j]++;
			}
			enough = rows >= spec->need_rows &&
				(spec->need_range <= 0 || key < newest - spec->need_range);
			for (int j = 0; j < spec->nof; j++)
				if (nonnull[j] < spec->need_nonnull[j])
					enough = false;
			if (enough)
				cut = r;
		}
		if (cut < 0 && n == limit)
		{
			SPI_freetuptable(tt);
			continue;			/* not far enough back yet */
		}
		PartStateReset(e->ps, spec);
		if (n > 0)
			Replay(ld, e->ps, tt, cut >= 0 ? cut : n - 1, 0, -1);
		SPI_freetuptable(tt);
		break;
	}
	e->valid = true;
}

/* Finds or makes the cached entry of a partition key. */
static PartEntry *
FindPartition(FtLoad *ld, Datum *key, Oid *colls, bool *isnew)
{
	FeatureSpec *spec = ld->spec;
	uint32		h = KeyHash(spec, key, colls);
	PartBucket *b;
	PartEntry  *e;
	bool		found;
	MemoryContext old;

	b = hash_search(ld->cache->parts, &h, HASH_ENTER, &found);
	if (!found)
		b->first = NULL;
	for (e = b->first; e; e = e->next)
		if (KeyEqual(spec, e->key, key, colls))
			return e;

	old = MemoryContextSwitchTo(ld->cache->cxt);
	e = palloc0(sizeof(PartEntry));
	e->hash = h;
	e->key = palloc(sizeof(Datum) * Max(spec->npart, 1));
	for (int i = 0; i < spec->npart; i++)
	{
		int16		len;
		bool		byval;

		get_typlenbyval(spec->part_types[i], &len, &byval);
		e->key[i] = datumCopy(key[i], byval, len);
	}
	e->ps = PartStateCreate(spec, ld->cache->cxt);
	e->valid = false;
	e->next = b->first;
	b->first = e;
	MemoryContextSwitchTo(old);
	*isnew = true;
	return e;
}

/* qsort comparator: partitions in the order of their lock hashes. */
static int
CompareEntries(const void *a, const void *b)
{
	uint32		ha = (*(PartEntry *const *) a)->hash;
	uint32		hb = (*(PartEntry *const *) b)->hash;

	return ha < hb ? -1 : ha > hb ? 1 : 0;
}

/* The output row's descriptor: kept columns, arrival_seq, late, features. */
static TupleDesc
OutputDesc(FeatureSpec *spec, TupleDesc src)
{
	TupleDesc	d = CreateTemplateTupleDesc(spec->nkeep + 2 + spec->nfeatures);
	int			k = 1;

	for (int i = 0; i < spec->nkeep; i++)
	{
		Form_pg_attribute a = TupleDescAttr(src, spec->keep[i] - 1);

		TupleDescInitEntry(d, k++, NameStr(a->attname), a->atttypid,
						   a->atttypmod, 0);
	}
	TupleDescInitEntry(d, k++, FT_SEQ_COLUMN, INT8OID, -1, 0);
	TupleDescInitEntry(d, k++, FT_LATE_COLUMN, BOOLOID, -1, 0);
	for (int i = 0; i < spec->nfeatures; i++)
		TupleDescInitEntry(d, k++, spec->features[i].name, FLOAT8OID, -1, 0);
	return d;
}

/* The work of a load, as the feature table's owner, SPI connected. */
static void
LoadAsOwner(void *arg)
{
	FtLoad	   *ld = (FtLoad *) arg;
	FeatureSpec *spec = ld->spec;
	TupleTableSlot *slot = MakeSingleTupleTableSlot(ld->desc, &TTSOpsMinimalTuple);
	Oid		   *colls = palloc(sizeof(Oid) * Max(spec->npart, 1));
	Datum	   *key = palloc(sizeof(Datum) * Max(spec->npart, 1));
	int64		cap = 1024;
	int64		n = 0;
	PartEntry **rowpart = palloc(sizeof(PartEntry *) * cap);
	PartEntry **touched = palloc(sizeof(PartEntry *) * cap);
	int64		ntouched = 0;
	int			ptr;
	TupleDesc	outdesc;
	Tuplestorestate *out;
	int			natts_out = spec->nkeep + 2 + spec->nfeatures;
	Datum	   *ov = palloc(sizeof(Datum) * natts_out);
	bool	   *on = palloc(sizeof(bool) * natts_out);
	double	   *vals = palloc(sizeof(double) * Max(spec->nof, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(spec->nof, 1));
	double	   *fv = palloc(sizeof(double) * spec->nfeatures);
	bool	   *fn = palloc(sizeof(bool) * spec->nfeatures);
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext,
												 "pg_streamml feature row",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	EphemeralNamedRelation enr;
	StringInfoData sql;
	int			rc;

	ld->cache = GetCache(ld);
	FtStatement++;
	for (int i = 0; i < spec->npart; i++)
		colls[i] = TupleDescAttr(ld->desc, spec->part[i] - 1)->attcollation;

	/* pass 1: the partitions of the rows */
	ptr = tuplestore_alloc_read_pointer(ld->rows, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(ld->rows, ptr);
	tuplestore_rescan(ld->rows);
	while (tuplestore_gettupleslot(ld->rows, true, false, slot))
	{
		PartEntry  *e;
		bool		isnew = false;

		for (int i = 0; i < spec->npart; i++)
		{
			bool		isnull;

			key[i] = slot_getattr(slot, spec->part[i], &isnull);
			if (isnull)
				ereport(ERROR,
						(errcode(ERRCODE_NOT_NULL_VIOLATION),
						 errmsg("partition_by column \"%s\" of feature table \"%s\" is null",
								spec->part_names[i], ld->name),
						 errdetail("Every row of a feature table's source needs a partition.")));
		}
		e = FindPartition(ld, key, colls, &isnew);
		if (n == cap)
		{
			cap *= 2;
			rowpart = repalloc(rowpart, sizeof(PartEntry *) * cap);
			touched = repalloc(touched, sizeof(PartEntry *) * cap);
		}
		rowpart[n++] = e;
		if (e->stmt != FtStatement)
		{
			e->stmt = FtStatement;
			touched[ntouched++] = e;
		}
	}

	/* lock the partitions, in hash order, then bring their states up */
	qsort(touched, ntouched, sizeof(PartEntry *), CompareEntries);
	for (int64 t = 0; t < ntouched; t++)
	{
		LOCKTAG		tag;
		uint64		v;

		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) ld->target,
							 touched[t]->hash, FT_LOCK_KIND);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		v = pg_atomic_read_u64(VersionOf(ld->target, touched[t]->hash));
		if (!touched[t]->valid || touched[t]->version != v)
			Refresh(ld, touched[t]);
		touched[t]->version = v;
	}

	/* pass 2: the features of each row, into the output */
	outdesc = OutputDesc(spec, ld->desc);
	out = tuplestore_begin_heap(false, false, work_mem);
	tuplestore_rescan(ld->rows);
	for (int64 r = 0; r < n; r++)
	{
		PartState  *ps = rowpart[r]->ps;
		bool		isnull;
		Datum		ob;
		double		k;
		bool		late;
		int			c = 0;

		if (!tuplestore_gettupleslot(ld->rows, true, false, slot))
			elog(ERROR, "transition table changed while read");
		old = MemoryContextSwitchTo(rowcxt);
		ob = slot_getattr(slot, spec->order, &isnull);
		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("order_by column \"%s\" of feature table \"%s\" is null",
							spec->order_name, ld->name),
					 errdetail("Every row of a feature table's source needs an order_by value.")));
		k = OrderKey(spec, ob, ld->name);
		for (int j = 0; j < spec->nof; j++)
		{
			Datum		d = slot_getattr(slot, spec->of[j], &nulls[j]);

			vals[j] = nulls[j] ? 0.0 : OfValue(spec->of_types[j], d);
		}
		late = PartStateIsLate(ps, k);
		if (late)
		{
			if (spec->late_error)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("late row for feature table \"%s\"", ld->name),
						 errdetail("Its order_by value is below the newest of its partition."),
						 errhint("With \"late\": \"null\" such rows get NULL features and late = true.")));
			for (int i = 0; i < spec->nfeatures; i++)
				fn[i] = true;
			ld->nlate++;
		}
		else
			PartStateAdd(ps, spec, k, vals, nulls, fv, fn);
		PartStateSetSeq(ps, PartStateSeq(ps) + 1);

		for (int i = 0; i < spec->nkeep; i++, c++)
			ov[c] = slot_getattr(slot, spec->keep[i], &on[c]);
		ov[c] = Int64GetDatum(PartStateSeq(ps));
		on[c++] = false;
		ov[c] = BoolGetDatum(late);
		on[c++] = false;
		for (int i = 0; i < spec->nfeatures; i++, c++)
		{
			ov[c] = Float8GetDatum(fv[i]);
			on[c] = fn[i];
		}
		MemoryContextSwitchTo(old);
		tuplestore_putvalues(out, outdesc, ov, on);
		MemoryContextReset(rowcxt);
	}
	ExecDropSingleTupleTableSlot(slot);
	ld->nrows = n;
	if (n == 0)
		return;

	/* one INSERT for the statement's rows */
	enr = palloc0(sizeof(EphemeralNamedRelationData));
	enr->md.name = "streamml_feature_rows";
	enr->md.reliddesc = InvalidOid;
	enr->md.tupdesc = outdesc;
	enr->md.enrtype = ENR_NAMED_TUPLESTORE;
	enr->md.enrtuples = n;
	enr->reldata = out;
	rc = SPI_register_relation(enr);
	if (rc != SPI_OK_REL_REGISTER)
		elog(ERROR, "cannot register feature rows: %s", SPI_result_code_string(rc));
	initStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO %s (",
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(ld->target)),
												get_rel_name(ld->target)));
	for (int i = 0; i < natts_out; i++)
		appendStringInfo(&sql, "%s%s", i ? ", " : "",
						 quote_identifier(NameStr(TupleDescAttr(outdesc, i)->attname)));
	appendStringInfoString(&sql, ") SELECT * FROM streamml_feature_rows");
	rc = SPI_execute(sql.data, false, 0);
	if (rc != SPI_OK_INSERT || SPI_processed != (uint64) n)
		elog(ERROR, "feature rows not written: %s", SPI_result_code_string(rc));
	SPI_unregister_relation(enr->md.name);
	tuplestore_end(out);

	/* tell other backends their states of these partitions are behind */
	for (int64 t = 0; t < ntouched; t++)
		touched[t]->version =
			pg_atomic_add_fetch_u64(VersionOf(ld->target, touched[t]->hash), 1);
}

/*
 * Computes and writes the features of rows (each with source's columns,
 * desc) into feature table target, as its owner.  The rows are in arrival
 * order: a statement's transition table, or the back-fill's batches.
 * trigger_name, when not NULL, must be the trigger the catalog names.
 */
static void
FeatureTableLoadChecked(Oid target, Relation source, Tuplestorestate *rows,
						TupleDesc desc, const char *trigger_name)
{
	FtLoad		ld;
	Datum		arg = ObjectIdGetDatum(target);
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	td;
	instr_time	start;
	instr_time	duration;

	INSTR_TIME_SET_CURRENT(start);
	memset(&ld, 0, sizeof(ld));
	ld.target = target;
	ld.source = source;
	ld.rows = rows;
	ld.desc = desc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (CatalogExecute("SELECT name, owner, source, spec, trigger_name "
					   "FROM streamml.feature_tables_catalog "
					   "WHERE target OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {OIDOID}, &arg, NULL, SPI_OK_SELECT) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("feature table with oid %u does not exist", target),
				 errhint("Drop the trigger that names it.")));
	tup = SPI_tuptable->vals[0];
	td = SPI_tuptable->tupdesc;
	ld.name = SPI_getvalue(tup, td, 1);
	ld.owner = DatumGetObjectId(SPI_getbinval(tup, td, 2, &isnull));
	if (DatumGetObjectId(SPI_getbinval(tup, td, 3, &isnull)) != RelationGetRelid(source) ||
		(trigger_name && strcmp(trigger_name, SPI_getvalue(tup, td, 5)) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("trigger does not belong to feature table \"%s\"", ld.name),
				 errdetail("Only the trigger create_feature_table made on its source may load it.")));
	ld.spec_json = DatumGetJsonbP(SPI_getbinval(tup, td, 4, &isnull));
	ld.spec_text = SPI_getvalue(tup, td, 4);
	ld.spec = FeatureSpecRead(ld.spec_json, desc, ld.name);

	PG_TRY();
	{
		RunAsOwner(ld.owner, LoadAsOwner, &ld);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		MemoryContext cxt = MemoryContextSwitchTo(ErrorContext);

		edata = CopyErrorData();
		MemoryContextSwitchTo(cxt);
		FtStatError(target, edata->message);
		FreeErrorData(edata);
		PG_RE_THROW();
	}
	PG_END_TRY();

	SPI_finish();
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	if (ld.nrows > 0)
		FtStatCount(target, ld.nrows, ld.nlate, INSTR_TIME_GET_MILLISEC(duration));
}

/* Loads rows into a feature table (the back-fill of create_feature_table). */
void
FeatureTableLoad(Oid target, Relation source, Tuplestorestate *rows,
				 TupleDesc desc)
{
	FeatureTableLoadChecked(target, source, rows, desc, NULL);
}

PG_FUNCTION_INFO_V1(feature_table_trigger);

/*
 * SQL streamml.feature_table_trigger(): the AFTER INSERT statement trigger
 * on a feature table's source; its argument is the feature table's oid.
 */
Datum
feature_table_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Oid			target;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		td->tg_newtable == NULL || td->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("feature_table_trigger must be an AFTER INSERT statement trigger with a NEW TABLE"),
				 errhint("Use streamml.create_feature_table.")));
	target = atooid(td->tg_trigger->tgargs[0]);
	FeatureTableLoadChecked(target, td->tg_relation, td->tg_newtable,
							RelationGetDescr(td->tg_relation),
							td->tg_trigger->tgname);
	return PointerGetDatum(NULL);
}
