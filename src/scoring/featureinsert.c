/*
 * featureinsert.c
 *		The statement trigger that gives every row inserted into a feature
 *		table's source its features row, in the same transaction.
 *
 * The trigger (AFTER INSERT FOR EACH STATEMENT, REFERENCING NEW TABLE)
 * fires for every path that inserts rows: INSERT, COPY, a stream's loader
 * (which fires statement triggers with transition tables as COPY does), a
 * trigger.  It reads the transition table directly, computes each row's
 * features from its partition's state (featurestate.c) and writes the
 * statement's feature rows in bulk as COPY does (FtWriter: multi-inserts,
 * then index entries, constraints and the feature table's own AFTER ROW
 * and statement triggers, so a scorer's trigger fires in turn), or, when
 * the feature table has BEFORE ROW triggers, row-level security or
 * volatile defaults, with one INSERT ... SELECT from an ephemeral named
 * relation.  It runs as the feature table's owner, in a
 * security-restricted operation, whoever inserted.
 *
 * Three more triggers follow the source's other changes: an AFTER DELETE
 * statement trigger deletes the deleted rows' feature rows (by the
 * source's primary key) and makes every backend rebuild those partitions'
 * states (a shared reset counter per partition, see 2. below); an AFTER
 * TRUNCATE statement trigger truncates the feature table in the same
 * transaction (see 6. below); a BEFORE UPDATE row trigger refuses changes
 * to the kept columns.
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
 *	   holds the lock, and a reset counter, bumped by a delete: a state
 *	   built before the last reset is rebuilt, not caught up.  A cached
 *	   state records the version after its own last write; if the counter
 *	   still has that value, nobody wrote since and the state is current.  Otherwise (or after a collision of
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
 *	   were decided; a late row newer than the newest non-late one (a
 *	   delete took the rows it was late behind) still raises the key below
 *	   which rows are late, so that no row kept before a row that is not
 *	   late has a greater order_by.  ewma's history is cut where the weights of older rows
 *	   fall below 2^-60 of the newest, far below the 1e-9 of the contract.
 *
 *	4. Any abort (of a transaction or a subtransaction: a stream bisecting a
 *	   bad batch) forgets every cached state, since they may hold rows that
 *	   are gone; the next statement rebuilds them.
 *
 *	5. The definition (the catalog row and the spec read against the
 *	   source's columns) is cached per backend too, so that a statement
 *	   reads no catalog.  A relcache invalidation drops it: of the catalog
 *	   table (its statement trigger, streamml.catalog_cache_invalidate,
 *	   sends one at every change, delivered to each backend when the change
 *	   commits), of the source (its columns changed) or of the feature
 *	   table; the next statement reads it again.
 *
 *	6. A TRUNCATE of the feature table (the source's, followed, or one by
 *	   hand) gives it a new relfilenode.  Each cache records the
 *	   relfilenode its states were built against and forgets them all
 *	   when a statement finds another one; the truncating backend forgets
 *	   its own at once (a table created in the same transaction is
 *	   truncated in place, keeping its relfilenode).
 *
 * arrival_seq numbers the rows of a partition 1, 2, 3... in arrival order;
 * a unique index on (partition_by, arrival_seq) (string partition columns
 * compared under "C": see AppendPartitionWhere) turns any violation of the
 * above (a row written into the feature table by hand) into an error
 * instead of a wrong feature.
 */
#include "postgres.h"

#include <math.h>

#include "access/heapam.h"
#include "access/hio.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "port/atomics.h"
#include "rewrite/rewriteHandler.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "pg_streamml.h"
#include "number.h"
#include "ratemeter.h"
#include "scoring/features.h"
#include "ingest/citus_batch.h"
#include "ingest/ingest.h"

/* Version counters in shared memory; a power of 2. */
#define FT_VERSION_SLOTS 8192
/* The advisory lock tag's fourth field for feature table partitions. */
#define FT_LOCK_KIND 3
/* Feature rows buffered per table_multi_insert, as COPY buffers them. */
#define FT_BUFFERED_ROWS 1000

typedef struct FtStat
{
	Oid			db;
	Oid			target;			/* InvalidOid: free */
	Oid			owner;			/* the feature table's, who may see it */
	int64		rows;
	int64		late;
	int64		batches;
	double		total_ms;
	RateMeter	rate;			/* rows per second */
	char		last_error[256];
} FtStat;

typedef struct FtShared
{
	LWLock	   *lock;			/* the statistics */
	pg_atomic_uint64 version[FT_VERSION_SLOTS];
	pg_atomic_uint64 reset[FT_VERSION_SLOTS];	/* bumped by deletes */
	int			nstats;			/* streamml.max_stat_slots */
	FtStat		stats[FLEXIBLE_ARRAY_MEMBER];
} FtShared;

/* The shared memory with nstats statistics slots. */
#define FT_SHARED_SIZE(nstats) \
	MAXALIGN(offsetof(FtShared, stats) + sizeof(FtStat) * (nstats))

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
	uint64		reset;			/* the shared reset counter it was built at */
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
	Oid			relnode;		/* the feature table's relfilenode (6.) */
	char	   *spec_text;
	MemoryContext cxt;
	HTAB	   *parts;
	SPIPlanPtr	catchup_plan;
	SPIPlanPtr	rebuild_plan;
} FtCache;

static HTAB *FtCaches = NULL;
static uint64 FtStatement = 0;

/*
 * A feature table's definition, cached per backend (design, 5.): its
 * catalog row and its spec read against the source's columns.
 */
typedef struct FtDef
{
	Oid			target;			/* hash key */
	bool		valid;			/* false: read the catalog again */
	MemoryContext cxt;			/* what follows, or NULL */
	char	   *name;
	Oid			owner;
	Oid			source;
	char	   *trigger_name;
	char	   *spec_text;
	FeatureSpec *spec;
} FtDef;

static HTAB *FtDefs = NULL;
/* streamml.feature_tables_catalog, once a definition was read */
static Oid	FtCatalogOid = InvalidOid;

/*
 * The feature table a trigger serves, by the trigger's oid.  A trigger
 * names its feature table by the catalog's name, not by an oid, so that it
 * survives pg_dump and pg_restore (which give the tables new oids but keep
 * names and the catalog's rows); the name is resolved once, then again
 * after any change of the catalog.
 */
typedef struct FtTrigger
{
	Oid			tgoid;			/* hash key */
	bool		valid;
	Oid			target;
} FtTrigger;

static HTAB *FtTriggers = NULL;

/* What one load works on. */
typedef struct FtLoad
{
	Oid			target;
	char	   *name;
	Oid			owner;
	Relation	source;
	char	   *spec_text;
	Tuplestorestate *rows;
	TupleDesc	desc;
	FeatureSpec *spec;			/* the cached definition's: read only */
	FtCache    *cache;
	FmgrInfo  **hash_fn;		/* per partition_by column, per statement */
	FmgrInfo  **eq_fn;
	Oid		   *colls;
	TriggerData *deleted;		/* a delete's trigger data, or NULL */
	int64		nrows;
	int64		nlate;
} FtLoad;

/*
 * How a statement writes its feature rows.  In bulk (table_multi_insert
 * with a BulkInsertState, then index entries and AFTER ROW triggers, as
 * COPY FROM does), unless the feature table has BEFORE ROW or INSTEAD OF
 * triggers, row-level security that applies to its owner, volatile column
 * defaults, or a column whose type is no longer the one we write: then
 * with one INSERT ... SELECT from the statement's rows (use_sql), which
 * fires and applies them all as an INSERT does.
 */
typedef struct FtWriter
{
	bool		use_sql;
	int			natts_out;		/* kept columns, arrival_seq, late, features */
	/* SQL path */
	TupleDesc	outdesc;
	Tuplestorestate *out;
	/* bulk path */
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	TransitionCaptureState *tcs;
	BulkInsertState bistate;
	bool		triggers;
	AttrNumber *col;			/* target attnum of each output column */
	ExprState **defaults;		/* per target column not written, or NULL */
	TupleDesc	slotdesc;		/* the table's, unpinned (see WriterBegin) */
	TupleTableSlot **slots;
	const void **part;			/* each buffered row's partition (PartEntry) */
	int		   *perm;			/* the buffered rows in index order */
	List	  **recheck;		/* each buffered row's ExecInsertIndexTuples */
	int			nbuffered;
	CitusBatch *citus;			/* a Citus table: its rows go through SQL */
} FtWriter;

/* Asks for the shared memory; from the shmem_request_hook. */
static void
FtShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(FT_SHARED_SIZE(streamml_max_stat_slots));
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
	Ft = ShmemInitStruct("pg_streamml feature tables",
						 FT_SHARED_SIZE(streamml_max_stat_slots), &found);
	if (!found)
	{
		memset(Ft, 0, FT_SHARED_SIZE(streamml_max_stat_slots));
		Ft->nstats = streamml_max_stat_slots;
		Ft->lock = &(GetNamedLWLockTranche("pg_streamml feature tables"))->lock;
		for (int i = 0; i < FT_VERSION_SLOTS; i++)
		{
			pg_atomic_init_u64(&Ft->version[i], 0);
			pg_atomic_init_u64(&Ft->reset[i], 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Forgets the cached states of one feature table: rebuilt before use. */
static void
FtForgetCache(FtCache *c)
{
	HASH_SEQ_STATUS ps;
	PartBucket *b;

	hash_seq_init(&ps, c->parts);
	while ((b = hash_seq_search(&ps)) != NULL)
		for (PartEntry *e = b->first; e; e = e->next)
			e->valid = false;
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
		FtForgetCache(c);
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

/*
 * Relcache invalidation callback: a change of the catalog table (or a
 * reset of all relcache entries) drops every cached definition, a change
 * of a source or of a feature table the definitions that name it.  Only
 * flags: no catalog access here.
 */
static void
FtRelcacheCallback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS hs;
	FtDef	   *d;

	if (FtTriggers != NULL && (relid == InvalidOid || relid == FtCatalogOid))
	{
		FtTrigger  *t;

		hash_seq_init(&hs, FtTriggers);
		while ((t = hash_seq_search(&hs)) != NULL)
			t->valid = false;
	}
	if (FtDefs == NULL)
		return;
	hash_seq_init(&hs, FtDefs);
	while ((d = hash_seq_search(&hs)) != NULL)
		if (relid == InvalidOid || relid == FtCatalogOid ||
			relid == d->source || relid == d->target)
			d->valid = false;
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
	CacheRegisterRelcacheCallback(FtRelcacheCallback, (Datum) 0);
}

/* The statistics slot of a feature table, made if needed; lock held. */
static FtStat *
FtStatSlot(Oid target, bool create)
{
	FtStat	   *free_slot = NULL;

	for (int i = 0; i < Ft->nstats; i++)
	{
		FtStat	   *s = &Ft->stats[i];

		if (s->target == target && s->db == MyDatabaseId)
			return s;
		if (s->target == InvalidOid && free_slot == NULL)
			free_slot = s;
	}
	if (create && free_slot == NULL)
	{
		static bool logged = false;

		/* once per backend: the table is kept, its live columns are NULL */
		if (!logged)
			ereport(LOG,
					(errmsg("no statistics slot left for feature table %u: its live columns stay NULL", target),
					 errhint("Raise streamml.max_stat_slots (%d; a restart is needed), or drop unused feature tables.",
							 Ft->nstats)));
		logged = true;
	}
	if (!create || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(FtStat));
	free_slot->db = MyDatabaseId;
	free_slot->target = target;
	return free_slot;
}

/*
 * Frees the slots of this database's feature tables that no longer exist:
 * made by a statement whose transaction (the one that created the feature
 * table, say) rolled back, or dropped without drop_feature_table.  Called
 * when the slots run out; the catalog is read without the lock held.
 */
static void
FtStatReclaim(void)
{
	Oid		   *targets = palloc(sizeof(Oid) * Ft->nstats);
	int			n = 0;
	int			ngone = 0;

	LWLockAcquire(Ft->lock, LW_SHARED);
	for (int i = 0; i < Ft->nstats; i++)
		if (Ft->stats[i].target != InvalidOid && Ft->stats[i].db == MyDatabaseId)
			targets[n++] = Ft->stats[i].target;
	LWLockRelease(Ft->lock);
	for (int i = 0; i < n; i++)
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(targets[i])))
			targets[ngone++] = targets[i];
	LWLockAcquire(Ft->lock, LW_EXCLUSIVE);
	for (int i = 0; i < Ft->nstats; i++)
		for (int j = 0; j < ngone; j++)
			if (Ft->stats[i].target == targets[j] && Ft->stats[i].db == MyDatabaseId)
				Ft->stats[i].target = InvalidOid;
	LWLockRelease(Ft->lock);
	pfree(targets);
}

/* Counts a statement's rows in the statistics. */
static void
FtStatCount(Oid target, Oid owner, int64 rows, int64 late, double ms)
{
	FtStat	   *s;
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(Ft->lock, LW_EXCLUSIVE);
	s = FtStatSlot(target, true);
	if (s == NULL)
	{
		LWLockRelease(Ft->lock);
		FtStatReclaim();
		LWLockAcquire(Ft->lock, LW_EXCLUSIVE);
		s = FtStatSlot(target, true);
	}
	if (s)
	{
		s->rows += rows;
		s->late += late;
		s->batches++;
		s->total_ms += ms;
		RateMeterAdd(&s->rate, rows, now);
		s->owner = owner;
	}
	LWLockRelease(Ft->lock);
}

/* Records the error a statement raised. */
static void
FtStatError(Oid target, Oid owner, const char *message)
{
	FtStat	   *s;

	/* a slot made here may be of a feature table that is rolling back:
	 * FtStatReclaim frees it when the slots run out */
	LWLockAcquire(Ft->lock, LW_EXCLUSIVE);
	s = FtStatSlot(target, true);
	if (s)
	{
		strlcpy(s->last_error, message, sizeof(s->last_error));
		s->owner = owner;
	}
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
	FtStat	   *copy = palloc(sizeof(FtStat) * Ft->nstats);
	int			ncopy = 0;

	InitMaterializedSRF(fcinfo, 0);
	/* copied under the lock; the privilege checks need the catalogs */
	LWLockAcquire(Ft->lock, LW_SHARED);
	for (int i = 0; i < Ft->nstats; i++)
		if (Ft->stats[i].target != InvalidOid && Ft->stats[i].db == MyDatabaseId)
			copy[ncopy++] = Ft->stats[i];
	LWLockRelease(Ft->lock);
	for (int i = 0; i < ncopy; i++)
	{
		FtStat	   *s = &copy[i];
		Datum		v[6];
		bool		n[6] = {0};

		/* a role sees its own feature tables' statistics, as for scorers */
		if (!superuser() && !has_privs_of_role(GetUserId(), s->owner))
			continue;
		v[0] = ObjectIdGetDatum(s->target);
		v[1] = Int64GetDatum(s->rows);
		v[2] = Int64GetDatum(s->late);
		v[3] = Float8GetDatum(RateMeterRead(&s->rate, GetCurrentTimestamp()));
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
	return (Datum) 0;
}

/*
 * Looks up, once per statement, the hash and equality functions of the
 * partition_by columns, so that rows need no type cache look-up.
 */
static void
ResolveKeyFunctions(FtLoad *ld)
{
	FeatureSpec *spec = ld->spec;
	int			n = Max(spec->npart, 1);

	ld->hash_fn = palloc(sizeof(FmgrInfo *) * n);
	ld->eq_fn = palloc(sizeof(FmgrInfo *) * n);
	ld->colls = palloc(sizeof(Oid) * n);
	for (int i = 0; i < spec->npart; i++)
	{
		TypeCacheEntry *tc = lookup_type_cache(spec->part_types[i],
											   TYPECACHE_HASH_PROC_FINFO |
											   TYPECACHE_EQ_OPR_FINFO);

		if (!OidIsValid(tc->hash_proc) || !OidIsValid(tc->eq_opr))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("partition_by column \"%s\" has a type without a hash function",
							spec->part_names[i])));
		/* type cache entries live as long as the backend */
		ld->hash_fn[i] = &tc->hash_proc_finfo;
		ld->eq_fn[i] = &tc->eq_opr_finfo;
		ld->colls[i] = TupleDescAttr(ld->desc, spec->part[i] - 1)->attcollation;
	}
}

/* Hash of a partition key (the row's partition_by values). */
static uint32
KeyHash(FtLoad *ld, Datum *key)
{
	uint32		h = 0;

	for (int i = 0; i < ld->spec->npart; i++)
		h = hash_combine(h, DatumGetUInt32(FunctionCall1Coll(ld->hash_fn[i],
															 ld->colls[i], key[i])));
	return h;
}

/* Whether two partition keys are equal. */
static bool
KeyEqual(FtLoad *ld, Datum *a, Datum *b)
{
	for (int i = 0; i < ld->spec->npart; i++)
		if (!DatumGetBool(FunctionCall2Coll(ld->eq_fn[i], ld->colls[i],
											a[i], b[i])))
			return false;
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
		c->relnode = InvalidOid;
	}
	return c;
}

/* The shared version counter of a partition. */
static pg_atomic_uint64 *
VersionOf(Oid target, uint32 hash)
{
	return &Ft->version[hash_combine(hash, (uint32) target) & (FT_VERSION_SLOTS - 1)];
}

/* The shared reset counter of a partition: a delete removed rows of it. */
static pg_atomic_uint64 *
ResetOf(Oid target, uint32 hash)
{
	return &Ft->reset[hash_combine(hash, (uint32) target) & (FT_VERSION_SLOTS - 1)];
}

/* Errors unless column name of feature table rel has type type. */
static void
FtCheckColumnType(Relation rel, const char *name, Oid type)
{
	AttrNumber	a = get_attnum(RelationGetRelid(rel), name);
	Oid			have = a == InvalidAttrNumber ? InvalidOid :
		TupleDescAttr(RelationGetDescr(rel), a - 1)->atttypid;

	if (a == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("feature table \"%s\" has no column \"%s\"",
						RelationGetRelationName(rel), name),
				 errhint("Drop the feature table and create it again.")));
	if (have != type)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of feature table \"%s\" is of type %s, not %s",
						name, RelationGetRelationName(rel),
						format_type_be(have), format_type_be(type)),
				 errhint("Alter it back, or drop the feature table and create it again.")));
}

/*
 * Errors unless the feature table's columns still have the types it was
 * made with: the kept columns the source's, arrival_seq bigint, late
 * boolean, the features double precision.  Rows are read back from it in
 * C by those types (Refresh, Replay), so a column an ALTER TABLE retyped
 * would be read as the wrong type.
 */
static void
FtCheckColumnTypes(FtLoad *ld, Relation rel)
{
	FeatureSpec *spec = ld->spec;

	for (int i = 0; i < spec->nkeep; i++)
		FtCheckColumnType(rel, spec->keep_names[i],
						  TupleDescAttr(ld->desc, spec->keep[i] - 1)->atttypid);
	FtCheckColumnType(rel, FT_SEQ_COLUMN, INT8OID);
	FtCheckColumnType(rel, FT_LATE_COLUMN, BOOLOID);
	for (int i = 0; i < spec->nfeatures; i++)
		FtCheckColumnType(rel, spec->features[i].name, FLOAT8OID);
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

/*
 * The WHERE clause matching a partition, $1.. $npart.  A string column
 * whose equality is byte equality is matched under "C" too, the collation
 * the feature table's index compares it in (feature_table.c), so that the
 * index serves the query; the plain equality beside it is what a
 * distributed table's router prunes shards by.
 */
static void
AppendPartitionWhere(StringInfo sql, FeatureSpec *spec)
{
	appendStringInfoString(sql, " WHERE true");
	for (int i = 0; i < spec->npart; i++)
	{
		const char *col = quote_identifier(spec->part_names[i]);

		appendStringInfo(sql, " AND %s OPERATOR(pg_catalog.=) $%d", col, i + 1);
		if (spec->part_bytewise[i])
			appendStringInfo(sql, " AND %s COLLATE pg_catalog.\"C\" OPERATOR(pg_catalog.=) $%d",
							 col, i + 1);
	}
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

				vals[j] = nulls[j] ? 0.0 : NumberCast(d, spec->of_types[j]);
			}
			PartStateAdd(ps, spec, key, vals, nulls, NULL, NULL);
		}
		PartStateSetSeq(ps, seq);
		if (r == to)
			break;
	}
}

/*
 * Runs a statement that reads a partition back (PreparePlans) by its
 * (partition, arrival_seq) index, newest first or from a point on, what
 * the statistics say: a kept plan made while the table was nearly empty
 * (a stream's first partitions) read a whole partition by bitmap and
 * sorted it, to take its newest rows.
 */
static int
ExecuteByIndex(SPIPlanPtr plan, Datum *args)
{
	int			nest = NewGUCNestLevel();
	int			rc;

	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	rc = SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
							  true, false, 0);
	AtEOXact_GUC(true, nest);
	return rc;
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
		rc = ExecuteByIndex(ld->cache->catchup_plan, args);
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
		bool		have_late = false;
		double		late_max = 0;

		args[spec->npart] = Int64GetDatum(limit);
		rc = ExecuteByIndex(ld->cache->rebuild_plan, args);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "feature table rebuild failed: %s", SPI_result_code_string(rc));
		tt = SPI_tuptable;
		n = SPI_processed;
		for (int64 r = 0; r < n && cut < 0; r++)
		{
			bool		isnull;
			double		key;
			bool		enough;

			key = OrderKey(spec, SPI_getbinval(tt->vals[r], tt->tupdesc, 3, &isnull),
						   ld->name);
			if (DatumGetBool(SPI_getbinval(tt->vals[r], tt->tupdesc, 2, &isnull)))
			{
				/* late rows change no state; see below for their keys */
				if (!have_newest && (!have_late || key > late_max))
				{
					late_max = key;
					have_late = true;
				}
				continue;
			}
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

		/*
		 * A late row above the newest non-late one is left only where a
		 * delete took the rows that made it late: a row is late below it
		 * too, so that every row kept before a row that is not late has an
		 * order_by at most its own (what outcomehorizon.c reads a feature
		 * table's partitions by).
		 */
		if (have_late)
			PartStateRaiseNewest(e->ps, late_max);
		SPI_freetuptable(tt);
		break;
	}
	e->valid = true;
}

/* Finds or makes the cached entry of a partition key. */
static PartEntry *
FindPartition(FtLoad *ld, Datum *key, bool *isnew)
{
	FeatureSpec *spec = ld->spec;
	uint32		h = KeyHash(ld, key);
	PartBucket *b;
	PartEntry  *e;
	bool		found;
	MemoryContext old;

	b = hash_search(ld->cache->parts, &h, HASH_ENTER, &found);
	if (!found)
		b->first = NULL;
	for (e = b->first; e; e = e->next)
		if (KeyEqual(ld, e->key, key))
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

/*
 * Takes the transaction-level locks of the partitions a statement touches,
 * in hash order (no deadlock between two statements), and tells for each
 * whether its state is current: a delete since it was built (the reset
 * counter moved) forces a rebuild, rows written by others a catch-up.
 * With refresh false (a delete) the states are only locked.
 */
static void
LockPartitions(FtLoad *ld, PartEntry **touched, int64 ntouched, bool refresh)
{
	qsort(touched, ntouched, sizeof(PartEntry *), CompareEntries);
	for (int64 t = 0; t < ntouched; t++)
	{
		PartEntry  *e = touched[t];
		LOCKTAG		tag;
		uint64		v;
		uint64		r;

		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) ld->target,
							 e->hash, FT_LOCK_KIND);
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
		if (!refresh)
			continue;
		v = pg_atomic_read_u64(VersionOf(ld->target, e->hash));
		r = pg_atomic_read_u64(ResetOf(ld->target, e->hash));
		if (e->reset != r)
			e->valid = false;
		if (!e->valid || e->version != v)
			Refresh(ld, e);
		e->version = v;
		e->reset = r;
	}
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

/*
 * Reads the statement's rows (from the selected read pointer, rewound) and
 * finds or makes the cached entry of each row's partition: *rowpart gets
 * one per row, *touched each partition once.  Returns the number of rows.
 */
static int64
CollectPartitions(FtLoad *ld, TupleTableSlot *slot, PartEntry ***rowpart_out,
				  PartEntry ***touched_out, int64 *ntouched_out)
{
	FeatureSpec *spec = ld->spec;
	Datum	   *key = palloc(sizeof(Datum) * Max(spec->npart, 1));
	int64		cap = 1024;
	int64		n = 0;
	int64		ntouched = 0;
	PartEntry **rowpart = palloc(sizeof(PartEntry *) * cap);
	PartEntry **touched = palloc(sizeof(PartEntry *) * cap);

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
		e = FindPartition(ld, key, &isnew);
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
	*rowpart_out = rowpart;
	*touched_out = touched;
	*ntouched_out = ntouched;
	return n;
}

/*
 * Whether the bulk path can write the feature table: see FtWriter.  rel is
 * open; outdesc is what we write, by column name.
 */
static bool
CanWriteInBulk(FtLoad *ld, Relation rel, TupleDesc outdesc, AttrNumber *col)
{
	TupleDesc	tdesc = RelationGetDescr(rel);
	TriggerDesc *trig = rel->trigdesc;

	if (rel->rd_rel->relkind != RELKIND_RELATION)
		return false;
	if (trig && (trig->trig_insert_before_row || trig->trig_insert_instead_row))
		return false;
	if (check_enable_rls(RelationGetRelid(rel), ld->owner, false) == RLS_ENABLED)
		return false;
	for (int i = 0; i < outdesc->natts; i++)
	{
		Form_pg_attribute o = TupleDescAttr(outdesc, i);
		AttrNumber	a = InvalidAttrNumber;

		for (int k = 0; k < tdesc->natts; k++)
		{
			Form_pg_attribute t = TupleDescAttr(tdesc, k);

			if (!t->attisdropped && strcmp(NameStr(t->attname), NameStr(o->attname)) == 0)
			{
				a = t->attnum;
				break;
			}
		}
		/* a column gone, retyped or generated: let INSERT say what is wrong */
		if (a == InvalidAttrNumber ||
			TupleDescAttr(tdesc, a - 1)->atttypid != o->atttypid ||
			TupleDescAttr(tdesc, a - 1)->attgenerated)
			return false;
		col[i] = a;
	}
	return true;
}

/*
 * Opens the feature table for a statement's rows: the bulk path's executor
 * state (privileges checked as INSERT checks them, for the owner), indexes,
 * defaults of the columns we do not write and statement triggers, or the
 * SQL path's tuplestore.
 */
static void
WriterBegin(FtLoad *ld, FtWriter *w, TupleDesc outdesc)
{
	RangeTblEntry *rte;
	TupleDesc	tdesc;
	bool	   *ours;
	bool		citus;

	memset(w, 0, sizeof(FtWriter));
	w->natts_out = outdesc->natts;
	w->outdesc = outdesc;
	w->rel = table_open(ld->target, RowExclusiveLock);
	w->col = palloc(sizeof(AttrNumber) * w->natts_out);
	tdesc = RelationGetDescr(w->rel);
	w->use_sql = !CanWriteInBulk(ld, w->rel, outdesc, w->col);

	/* the defaults of the other columns; volatile ones: the SQL path */
	ours = palloc0(sizeof(bool) * (tdesc->natts + 1));
	w->defaults = palloc0(sizeof(ExprState *) * tdesc->natts);
	if (!w->use_sql)
	{
		for (int i = 0; i < w->natts_out; i++)
			ours[w->col[i]] = true;
		for (int i = 0; i < tdesc->natts && !w->use_sql; i++)
		{
			Form_pg_attribute att = TupleDescAttr(tdesc, i);
			Node	   *def;

			if (ours[i + 1] || att->attisdropped || att->attgenerated)
				continue;
			def = build_column_default(w->rel, i + 1);
			if (def == NULL)
				continue;
			def = (Node *) expression_planner((Expr *) def);
			/* as in COPY: such a default might read rows not yet written */
			if (contain_volatile_functions_not_nextval(def))
				w->use_sql = true;
			else
				w->defaults[i] = ExecInitExpr((Expr *) def, NULL);
		}
	}
	citus = LoaderIsCitusTable(ld->target);
	if (w->use_sql && citus)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write Citus feature table \"%s\"", ld->name),
				 errdetail("It has row-level security, BEFORE ROW triggers, volatile defaults or changed columns.")));
	if (w->use_sql)
	{
		table_close(w->rel, NoLock);
		w->rel = NULL;
		w->out = tuplestore_begin_heap(false, false, work_mem);
		return;
	}

	w->estate = CreateExecutorState();
	w->estate->es_output_cid = GetCurrentCommandId(true);
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = ld->target;
	rte->relkind = RELKIND_RELATION;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	rte->checkAsUser = ld->owner;
	for (int i = 0; i < w->natts_out; i++)
		rte->insertedCols = bms_add_member(rte->insertedCols,
										   w->col[i] - FirstLowInvalidHeapAttributeNumber);
	ExecCheckRTPerms(list_make1(rte), true);
	ExecInitRangeTable(w->estate, list_make1(rte));
	w->rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(w->estate, w->rri, 1);
	ExecOpenIndices(w->rri, false);
	w->triggers = w->rri->ri_TrigDesc != NULL;
	if (w->triggers)
	{
		/* the feature table's triggers (a scorer's) fire as for COPY */
		AfterTriggerBeginQuery();
		w->tcs = MakeTransitionCaptureState(w->rel->trigdesc, ld->target,
											CMD_INSERT);
		ExecBSInsertTriggers(w->estate, w->rri);
	}
	w->slots = palloc0(sizeof(TupleTableSlot *) * FT_BUFFERED_ROWS);
	w->part = palloc(sizeof(void *) * FT_BUFFERED_ROWS);
	w->perm = palloc(sizeof(int) * FT_BUFFERED_ROWS);
	w->recheck = palloc(sizeof(List *) * FT_BUFFERED_ROWS);
	/* a Citus table: rows to the shards through SQL (feature_citus.c) */
	if (citus)
		w->citus = CitusBatchBegin(w->rel);

	/*
	 * The slots get a copy of the table's descriptor, which is not
	 * reference-counted: a slot made on the relcache's own pins it in the
	 * resource owner, and the owner forgets pins by a linear search, which
	 * for the 1000 slots of a statement cost more than their rows.
	 */
	w->slotdesc = CreateTupleDescCopy(RelationGetDescr(w->rel));
	/*
	 * A BulkInsertState keeps the page being filled pinned across rows.  Not
	 * GetBulkInsertState's ring of 16 MB (BAS_BULKWRITE), made for one big
	 * COPY: a feature table grows by a batch at a time, and with the ring
	 * each statement past the first 16 MB writes out the ring's pages
	 * itself, flushing WAL up to them, where an INSERT leaves its pages in
	 * shared buffers for the checkpointer and the next catch-up reads.
	 */
	w->bistate = palloc0(sizeof(BulkInsertStateData));
	w->bistate->strategy = NULL;
	w->bistate->current_buf = InvalidBuffer;
}

/* The FtWriter whose buffered rows CompareByPartition sorts. */
static FtWriter *SortingWriter = NULL;

/*
 * qsort comparator of buffered rows: by partition (the order of their
 * cache entries in memory: any order that groups a partition's rows), then
 * in arrival order, which within a partition is arrival_seq order.
 */
static int
CompareByPartition(const void *a, const void *b)
{
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;
	uintptr_t	pa = (uintptr_t) SortingWriter->part[ia];
	uintptr_t	pb = (uintptr_t) SortingWriter->part[ib];

	if (pa != pb)
		return pa < pb ? -1 : 1;
	return ia < ib ? -1 : ia > ib ? 1 : 0;
}

/*
 * Writes the buffered rows, then their index entries, grouped by partition,
 * and their AFTER ROW triggers, in arrival order.  A stream's batch
 * interleaves the partitions (each Kafka partition carries several); in
 * partition order consecutive entries of the (partition, arrival_seq)
 * index land on the same leaf page, still in the CPU's caches, as the
 * scorer's KeyOrder does for the predictions' primary key.
 */
static void
WriterFlush(FtWriter *w)
{
	if (w->nbuffered == 0)
		return;
	if (w->citus)
	{
		/* the rows to the shards; the shell's triggers see them (capture) */
		for (int i = 0; i < w->nbuffered; i++)
		{
			slot_getallattrs(w->slots[i]);
			CitusBatchAdd(w->citus, w->slots[i]->tts_values,
						  w->slots[i]->tts_isnull);
			if (w->triggers)
				ExecARInsertTriggers(w->estate, w->rri, w->slots[i], NIL,
									 w->tcs);
			ExecClearTuple(w->slots[i]);
		}
		w->nbuffered = 0;
		return;
	}
	table_multi_insert(w->rel, w->slots, w->nbuffered, w->estate->es_output_cid,
					   0, w->bistate);
	for (int i = 0; i < w->nbuffered; i++)
	{
		w->perm[i] = i;
		w->recheck[i] = NIL;
	}
	if (w->rri->ri_NumIndices > 0)
	{
		SortingWriter = w;
		qsort(w->perm, w->nbuffered, sizeof(int), CompareByPartition);
		SortingWriter = NULL;
		for (int k = 0; k < w->nbuffered; k++)
			w->recheck[w->perm[k]] = ExecInsertIndexTuples(w->rri, w->slots[w->perm[k]],
														   w->estate, false, false,
														   NULL, NIL);
	}
	for (int i = 0; i < w->nbuffered; i++)
	{
		if (w->triggers)
			ExecARInsertTriggers(w->estate, w->rri, w->slots[i], w->recheck[i],
								 w->tcs);
		list_free(w->recheck[i]);
		ExecClearTuple(w->slots[i]);
	}
	w->nbuffered = 0;
}

/*
 * Takes one feature row (values in output column order; they may point
 * into the source row, which the next row replaces).  Per row: no SPI, no
 * catalog look-up; the slot copies the values into its own memory.
 */
static void
WriterAdd(FtWriter *w, Datum *ov, bool *on, const void *part)
{
	TupleTableSlot *slot;
	TupleDesc	tdesc;
	ExprContext *econtext;
	MemoryContext old;

	if (w->use_sql)
	{
		tuplestore_putvalues(w->out, w->outdesc, ov, on);
		return;
	}
	tdesc = RelationGetDescr(w->rel);
	if (w->slots[w->nbuffered] == NULL)
		w->slots[w->nbuffered] = MakeSingleTupleTableSlot(w->slotdesc,
														  table_slot_callbacks(w->rel));
	slot = w->slots[w->nbuffered];
	econtext = GetPerTupleExprContext(w->estate);
	old = MemoryContextSwitchTo(GetPerTupleMemoryContext(w->estate));
	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, sizeof(bool) * tdesc->natts);
	for (int i = 0; i < w->natts_out; i++)
	{
		slot->tts_values[w->col[i] - 1] = ov[i];
		slot->tts_isnull[w->col[i] - 1] = on[i];
	}
	for (int i = 0; i < tdesc->natts; i++)
		if (w->defaults[i])
			slot->tts_values[i] = ExecEvalExpr(w->defaults[i], econtext,
											   &slot->tts_isnull[i]);
	ExecStoreVirtualTuple(slot);
	if (w->rel->rd_att->constr)
	{
		if (w->rel->rd_att->constr->has_generated_stored)
			ExecComputeStoredGenerated(w->rri, w->estate, slot, CMD_INSERT);
		ExecConstraints(w->rri, slot, w->estate);
	}
	if (w->rel->rd_rel->relispartition)
		ExecPartitionCheck(w->rri, slot, w->estate, true);
	ExecMaterializeSlot(slot);
	MemoryContextSwitchTo(old);
	ResetPerTupleExprContext(w->estate);
	w->part[w->nbuffered] = part;
	if (++w->nbuffered == FT_BUFFERED_ROWS)
		WriterFlush(w);
}

/*
 * Writes what is left and closes the feature table: the bulk path's last
 * rows, statement triggers and queued AFTER triggers, or the SQL path's
 * one INSERT ... SELECT from an ephemeral named relation.
 */
static void
WriterEnd(FtLoad *ld, FtWriter *w, int64 n)
{
	EphemeralNamedRelation enr;
	StringInfoData sql;
	int			rc;

	if (!w->use_sql)
	{
		WriterFlush(w);
		if (w->citus)
		{
			CitusBatchFlush(w->citus);
			CitusBatchEnd(w->citus);
		}
		if (w->triggers)
		{
			ExecASInsertTriggers(w->estate, w->rri, w->tcs);
			AfterTriggerEndQuery(w->estate);
		}
		FreeBulkInsertState(w->bistate);
		for (int i = 0; i < FT_BUFFERED_ROWS && w->slots[i]; i++)
			ExecDropSingleTupleTableSlot(w->slots[i]);
		ExecResetTupleTable(w->estate->es_tupleTable, false);
		ExecCloseResultRelations(w->estate);
		ExecCloseRangeTableRelations(w->estate);
		FreeExecutorState(w->estate);
		table_close(w->rel, NoLock);
		/* as SPI after an INSERT: a rebuild later in the transaction sees them */
		CommandCounterIncrement();
		return;
	}

	if (n > 0)
	{
		enr = palloc0(sizeof(EphemeralNamedRelationData));
		enr->md.name = "streamml_feature_rows";
		enr->md.reliddesc = InvalidOid;
		enr->md.tupdesc = w->outdesc;
		enr->md.enrtype = ENR_NAMED_TUPLESTORE;
		enr->md.enrtuples = n;
		enr->reldata = w->out;
		rc = SPI_register_relation(enr);
		if (rc != SPI_OK_REL_REGISTER)
			elog(ERROR, "cannot register feature rows: %s", SPI_result_code_string(rc));
		initStringInfo(&sql);
		appendStringInfo(&sql, "INSERT INTO %s (",
						 quote_qualified_identifier(get_namespace_name(get_rel_namespace(ld->target)),
													get_rel_name(ld->target)));
		for (int i = 0; i < w->natts_out; i++)
			appendStringInfo(&sql, "%s%s", i ? ", " : "",
							 quote_identifier(NameStr(TupleDescAttr(w->outdesc, i)->attname)));
		appendStringInfoString(&sql, ") SELECT * FROM streamml_feature_rows");
		rc = SPI_execute(sql.data, false, 0);
		if (rc != SPI_OK_INSERT || SPI_processed != (uint64) n)
			elog(ERROR, "feature rows not written: %s", SPI_result_code_string(rc));
		SPI_unregister_relation(enr->md.name);
	}
	tuplestore_end(w->out);
}

/* The work of a load, as the feature table's owner, SPI connected. */
static void
LoadAsOwner(void *arg)
{
	FtLoad	   *ld = (FtLoad *) arg;
	FeatureSpec *spec = ld->spec;
	TupleTableSlot *slot = MakeSingleTupleTableSlot(ld->desc, &TTSOpsMinimalTuple);
	int64		n;
	PartEntry **rowpart;
	PartEntry **touched;
	int64		ntouched;
	int			ptr;
	FtWriter	w;
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

	ld->cache = GetCache(ld);
	ResolveKeyFunctions(ld);
	FtStatement++;

	/* truncated since the states were built (6.): they are all gone */
	{
		Relation	rel = table_open(ld->target, RowExclusiveLock);

		FtCheckColumnTypes(ld, rel);
		if (ld->cache->relnode != rel->rd_node.relNode)
		{
			FtForgetCache(ld->cache);
			ld->cache->relnode = rel->rd_node.relNode;
		}
		table_close(rel, NoLock);
	}

	/* pass 1: the partitions of the rows */
	ptr = tuplestore_alloc_read_pointer(ld->rows, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(ld->rows, ptr);
	n = CollectPartitions(ld, slot, &rowpart, &touched, &ntouched);
	ld->nrows = n;
	if (n == 0)
	{
		ExecDropSingleTupleTableSlot(slot);
		tuplestore_select_read_pointer(ld->rows, 0);
		return;
	}

	/* lock the partitions, in hash order, then bring their states up */
	LockPartitions(ld, touched, ntouched, true);

	/* pass 2: the features of each row, written as they come */
	WriterBegin(ld, &w, OutputDesc(spec, ld->desc));
	tuplestore_rescan(ld->rows);
	for (int64 r = 0; r < n; r++)
	{
		PartState  *ps = rowpart[r]->ps;
		bool		isnull;
		Datum		ob;
		double		k;
		bool		late;
		int			c = 0;

		CHECK_FOR_INTERRUPTS();
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

			vals[j] = nulls[j] ? 0.0 : NumberCast(d, spec->of_types[j]);
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
		WriterAdd(&w, ov, on, rowpart[r]);
		MemoryContextReset(rowcxt);
	}
	ExecDropSingleTupleTableSlot(slot);
	tuplestore_select_read_pointer(ld->rows, 0);
	WriterEnd(ld, &w, n);

	/* tell other backends their states of these partitions are behind */
	for (int64 t = 0; t < ntouched; t++)
		touched[t]->version =
			pg_atomic_add_fetch_u64(VersionOf(ld->target, touched[t]->hash), 1);
}

/*
 * The work of a delete, as the feature table's owner, SPI connected: the
 * feature rows of the deleted source rows go, matched by the source's
 * primary key (which the feature table must keep), under the locks of
 * their partitions; every backend's state of those partitions is then
 * rebuilt from the rows left (the reset counters), so the rows that
 * arrive next get the features feature_sql gives them over what remains.
 * The features of rows that arrived after a deleted one keep the values
 * they were computed with (features are computed once, on arrival).
 */
static void
DeleteAsOwner(void *arg)
{
	FtLoad	   *ld = (FtLoad *) arg;
	Relation	source = ld->source;
	TupleTableSlot *slot = MakeSingleTupleTableSlot(ld->desc, &TTSOpsMinimalTuple);
	Bitmapset  *pk = RelationGetIndexAttrBitmap(source, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	PartEntry **rowpart;
	PartEntry **touched;
	int64		ntouched;
	int64		n;
	int			ptr;
	int			a = -1;
	int			rc;
	StringInfoData sql;

	/* the primary key, kept: how a source row names its feature row */
	if (bms_is_empty(pk))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot delete from table \"%s\": it has no primary key to find the rows of feature table \"%s\" by",
						RelationGetRelationName(source), ld->name),
				 errhint("Add a primary key to the source and keep its columns in the feature table, or drop the feature table first.")));
	initStringInfo(&sql);
	appendStringInfo(&sql, "DELETE FROM %s f USING streamml_old_rows o WHERE true",
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(ld->target)),
												get_rel_name(ld->target)));
	while ((a = bms_next_member(pk, a)) >= 0)
	{
		AttrNumber	att = a + FirstLowInvalidHeapAttributeNumber;
		bool		kept = false;
		const char *col = NameStr(TupleDescAttr(ld->desc, att - 1)->attname);

		for (int k = 0; k < ld->spec->nkeep; k++)
			kept |= ld->spec->keep[k] == att;
		if (!kept)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot delete from table \"%s\": feature table \"%s\" does not keep its primary key column \"%s\"",
							RelationGetRelationName(source), ld->name, col),
					 errhint("Re-create the feature table with the primary key's columns in \"keep\", or drop it first.")));
		appendStringInfo(&sql, " AND f.%s OPERATOR(pg_catalog.=) o.%s",
						 quote_identifier(col), quote_identifier(col));
	}

	ld->cache = GetCache(ld);
	ResolveKeyFunctions(ld);
	FtStatement++;
	ptr = tuplestore_alloc_read_pointer(ld->rows, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(ld->rows, ptr);
	n = CollectPartitions(ld, slot, &rowpart, &touched, &ntouched);
	ExecDropSingleTupleTableSlot(slot);
	tuplestore_select_read_pointer(ld->rows, 0);
	if (n == 0)
		return;
	LockPartitions(ld, touched, ntouched, false);

	if (SPI_register_trigger_data(ld->deleted) != SPI_OK_TD_REGISTER)
		elog(ERROR, "cannot register the deleted rows");
	rc = SPI_execute(sql.data, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "feature rows not deleted: %s", SPI_result_code_string(rc));

	/* every backend rebuilds these partitions' states before its next row */
	for (int64 t = 0; t < ntouched; t++)
	{
		pg_atomic_add_fetch_u64(ResetOf(ld->target, touched[t]->hash), 1);
		pg_atomic_add_fetch_u64(VersionOf(ld->target, touched[t]->hash), 1);
		touched[t]->valid = false;
	}
}

/*
 * The work of a TRUNCATE of the source, as the feature table's owner, SPI
 * connected: truncates the feature table and forgets this backend's
 * states of it (other backends see its new relfilenode, 6.).
 */
static void
TruncateAsOwner(void *arg)
{
	FtLoad	   *ld = (FtLoad *) arg;
	FtCache    *c;
	int			rc;

	rc = SPI_execute(psprintf("TRUNCATE %s",
							  quote_qualified_identifier(get_namespace_name(get_rel_namespace(ld->target)),
														 get_rel_name(ld->target))),
					 false, 0);
	if (rc != SPI_OK_UTILITY)
		elog(ERROR, "feature table not truncated: %s", SPI_result_code_string(rc));
	if (FtCaches != NULL &&
		(c = hash_search(FtCaches, &ld->target, HASH_FIND, NULL)) != NULL)
	{
		FtForgetCache(c);
		c->relnode = InvalidOid;
	}
}

/*
 * Makes this backend's caches of feature tables (definitions by target,
 * targets by trigger) and finds the catalog's oid, once.
 */
static void
FtCachesSetUp(void)
{
	HASHCTL		ctl;

	if (FtDefs == NULL)
	{
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(FtDef);
		FtDefs = hash_create("pg_streamml feature table definitions", 16, &ctl,
							 HASH_ELEM | HASH_BLOBS);
	}
	if (FtTriggers == NULL)
	{
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(FtTrigger);
		FtTriggers = hash_create("pg_streamml feature table triggers", 16, &ctl,
								 HASH_ELEM | HASH_BLOBS);
	}
	if (!OidIsValid(FtCatalogOid))
		FtCatalogOid = get_relname_relid("feature_tables_catalog",
										 get_namespace_oid("streamml", false));
}

/*
 * The definition of feature table target, from this backend's cache or
 * read from the catalog (SPI connected) and its spec read against desc,
 * the columns of table source, which must be the feature table's source:
 * a spec is only ever built from the source's own columns, so that a
 * trigger on another table that names the feature table (refused by
 * FtCheckTrigger) cannot leave a spec of its columns cached.  An error
 * leaves nothing cached.
 */
static FtDef *
FtDefGet(Oid target, Oid source, TupleDesc desc)
{
	FtDef	   *d;
	bool		found;
	Datum		arg = ObjectIdGetDatum(target);
	HeapTuple	tup;
	TupleDesc	td;
	bool		isnull;
	MemoryContext volatile cxt = NULL;
	MemoryContext old = CurrentMemoryContext;

	FtCachesSetUp();
	d = hash_search(FtDefs, &target, HASH_ENTER, &found);
	if (!found)
	{
		d->valid = false;
		d->cxt = NULL;
	}
	/* what invalidations are pending arrive now, before we look */
	AcceptInvalidationMessages();
	if (d->valid)
		return d;
	/* a load further up the stack may still use it: free it at commit */
	if (d->cxt)
		MemoryContextSetParent(d->cxt, TopTransactionContext);
	d->cxt = NULL;

	/*
	 * Valid from before the read: an invalidation that arrives while we
	 * read (a concurrent change committing) clears it again.
	 */
	d->valid = true;
	PG_TRY();
	{
		if (CatalogExecute("SELECT name, owner, source, spec, trigger_name "
						   "FROM streamml.feature_tables_catalog "
						   "WHERE target OPERATOR(pg_catalog.=) $1",
						   1, (Oid[]) {OIDOID}, &arg, NULL, SPI_OK_SELECT) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("feature table with oid %u does not exist", target),
					 errhint("Drop the trigger that names it.")));
		cxt = AllocSetContextCreate(TopMemoryContext,
									"pg_streamml feature table definition",
									ALLOCSET_SMALL_SIZES);
		MemoryContextSwitchTo(cxt);
		tup = SPI_tuptable->vals[0];
		td = SPI_tuptable->tupdesc;
		d->name = SPI_getvalue(tup, td, 1);
		d->owner = DatumGetObjectId(SPI_getbinval(tup, td, 2, &isnull));
		d->source = DatumGetObjectId(SPI_getbinval(tup, td, 3, &isnull));
		d->spec_text = SPI_getvalue(tup, td, 4);
		d->trigger_name = SPI_getvalue(tup, td, 5);
		if (d->source != source)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("trigger does not belong to feature table \"%s\"", d->name),
					 errdetail("Only the trigger create_feature_table made on its source may load it.")));
		d->spec = FeatureSpecRead(DatumGetJsonbP(SPI_getbinval(tup, td, 4, &isnull)),
								  desc, d->name);
		MemoryContextSwitchTo(old);
		d->cxt = cxt;
	}
	PG_CATCH();
	{
		/* a spec the source's columns no longer fit: nothing kept */
		MemoryContextSwitchTo(old);
		if (cxt)
			MemoryContextDelete(cxt);
		d->valid = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
	/* read under a transaction snapshot (REPEATABLE READ): this statement's */
	if (IsolationUsesXactSnapshot())
		d->valid = false;
	return d;
}

/*
 * Errors unless trigger_name (when not NULL) is the trigger of the
 * feature table's kind suffix that create_feature_table made on source.
 */
static void
FtCheckTrigger(FtDef *def, Relation source, const char *trigger_name,
			   const char *suffix)
{
	if (def->source != RelationGetRelid(source) ||
		(trigger_name &&
		 strcmp(trigger_name, psprintf("%s%s", def->trigger_name, suffix)) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("trigger does not belong to feature table \"%s\"", def->name),
				 errdetail("Only the trigger create_feature_table made on its source may load it.")));
}

/*
 * The feature table (its oid) that trigger td serves: its argument is the
 * feature table's name in the catalog.  Errors when there is none.
 */
static Oid
FtTriggerTarget(TriggerData *td)
{
	FtTrigger  *t;
	bool		found;
	const char *name = td->tg_trigger->tgargs[0];

	FtCachesSetUp();
	AcceptInvalidationMessages();
	t = hash_search(FtTriggers, &td->tg_trigger->tgoid, HASH_ENTER, &found);
	if (found && t->valid && OidIsValid(t->target))
		return t->target;
	/* valid from before the read, as FtDefGet's entries */
	t->valid = true;
	t->target = InvalidOid;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (CatalogExecute("SELECT target FROM streamml.feature_tables_catalog "
					   "WHERE name OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(name)},
					   NULL, SPI_OK_SELECT) == 1)
	{
		bool		isnull;

		t->target = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1,
												   &isnull));
	}
	SPI_finish();
	if (!OidIsValid(t->target))
	{
		t->valid = false;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("feature table \"%s\" does not exist", name),
				 errdetail("Trigger \"%s\" on table \"%s\" loads it.",
						   td->tg_trigger->tgname,
						   RelationGetRelationName(td->tg_relation)),
				 errhint("Drop the trigger.")));
	}
	/* read under a transaction snapshot: for this statement only */
	if (IsolationUsesXactSnapshot())
		t->valid = false;
	return t->target;
}

/*
 * Computes and writes the features of rows (each with source's columns,
 * desc) into feature table target, as its owner.  The rows are in arrival
 * order: a statement's transition table, or the back-fill's batches.
 * trigger_name, when not NULL, must be the trigger the catalog names.
 */
static void
FeatureTableLoadChecked(Oid target, Relation source, Tuplestorestate *rows,
						TupleDesc desc, const char *trigger_name,
						TriggerData *deleted)
{
	FtLoad		ld;
	FtDef	   *def;
	instr_time	start;
	instr_time	duration;

	INSTR_TIME_SET_CURRENT(start);
	memset(&ld, 0, sizeof(ld));
	ld.target = target;
	ld.source = source;
	ld.rows = rows;
	ld.desc = desc;
	ld.deleted = deleted;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	def = FtDefGet(target, RelationGetRelid(source), desc);
	ld.name = def->name;
	ld.owner = def->owner;
	FtCheckTrigger(def, source, trigger_name, deleted ? FT_DELETE_SUFFIX : "");
	/* the rows are the source's: read only while the owner may read it */
	if (pg_class_aclcheck(RelationGetRelid(source), def->owner, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the owner of feature table \"%s\" has no SELECT privilege on table \"%s\"",
						def->name, RelationGetRelationName(source)),
				 errhint("Grant SELECT on the table to the feature table's owner again, or drop the feature table.")));
	if (!deleted)
		CheckSourceRowSecurity(RelationGetRelid(source), def->owner, "feature table",
							   def->name, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE);
	ld.spec_text = def->spec_text;
	ld.spec = def->spec;

	PG_TRY();
	{
		RunAsOwner(ld.owner, deleted ? DeleteAsOwner : LoadAsOwner, &ld);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		MemoryContext cxt = MemoryContextSwitchTo(ErrorContext);

		edata = CopyErrorData();
		MemoryContextSwitchTo(cxt);
		FtStatError(target, ld.owner, edata->message);
		FreeErrorData(edata);
		PG_RE_THROW();
	}
	PG_END_TRY();

	SPI_finish();
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	if (ld.nrows > 0 && !deleted)
		FtStatCount(target, ld.owner, ld.nrows, ld.nlate, INSTR_TIME_GET_MILLISEC(duration));
}

/* Loads rows into a feature table (the back-fill of create_feature_table). */
void
FeatureTableLoad(Oid target, Relation source, Tuplestorestate *rows,
				 TupleDesc desc)
{
	FeatureTableLoadChecked(target, source, rows, desc, NULL, NULL);
}

PG_FUNCTION_INFO_V1(feature_table_trigger);

/*
 * SQL streamml.feature_table_trigger(): the AFTER INSERT statement trigger
 * on a feature table's source; its argument is the feature table's name.
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
	target = FtTriggerTarget(td);
	FeatureTableLoadChecked(target, td->tg_relation, td->tg_newtable,
							RelationGetDescr(td->tg_relation),
							td->tg_trigger->tgname, NULL);
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(feature_table_delete_trigger);

/*
 * SQL streamml.feature_table_delete_trigger(): the AFTER DELETE statement
 * trigger on a feature table's source (argument: the feature table's name);
 * deletes the feature rows of the deleted rows (DeleteAsOwner).
 */
Datum
feature_table_delete_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
		!TRIGGER_FIRED_BY_DELETE(td->tg_event) ||
		td->tg_oldtable == NULL || td->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("feature_table_delete_trigger must be an AFTER DELETE statement trigger with an OLD TABLE"),
				 errhint("Use streamml.create_feature_table.")));
	if (tuplestore_tuple_count(td->tg_oldtable) == 0)
		return PointerGetDatum(NULL);
	FeatureTableLoadChecked(FtTriggerTarget(td), td->tg_relation,
							td->tg_oldtable, RelationGetDescr(td->tg_relation),
							td->tg_trigger->tgname, td);
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(feature_table_truncate_trigger);

/*
 * SQL streamml.feature_table_truncate_trigger(): the AFTER TRUNCATE
 * statement trigger on a feature table's source (argument: the feature
 * table's name): truncates the feature table in the same transaction, as
 * its owner (TruncateAsOwner).  Rows loaded next start their partitions
 * over, arrival_seq from 1.
 */
Datum
feature_table_truncate_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	FtLoad		ld;
	FtDef	   *def;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
		!TRIGGER_FIRED_BY_TRUNCATE(td->tg_event) ||
		td->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("feature_table_truncate_trigger must be an AFTER TRUNCATE statement trigger"),
				 errhint("Use streamml.create_feature_table.")));
	memset(&ld, 0, sizeof(ld));
	ld.target = FtTriggerTarget(td);
	ld.source = td->tg_relation;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	def = FtDefGet(ld.target, RelationGetRelid(td->tg_relation),
				   RelationGetDescr(td->tg_relation));
	FtCheckTrigger(def, td->tg_relation, td->tg_trigger->tgname, FT_TRUNCATE_SUFFIX);
	ld.name = def->name;
	ld.owner = def->owner;
	RunAsOwner(ld.owner, TruncateAsOwner, &ld);
	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * The kept columns (the trigger's UPDATE OF list) whose value an UPDATE
 * changes, quoted and comma-separated, for the refusal's message: those
 * whose stored image differs, or all of them if none does (a change the
 * type's equality sees but its image does not, which no built-in type
 * has).
 */
static char *
ChangedKeptColumns(TriggerData *td, int *n)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	StringInfoData changed;
	StringInfoData all;
	int			nchanged = 0;

	initStringInfo(&changed);
	initStringInfo(&all);
	for (int i = 0; i < td->tg_trigger->tgnattr; i++)
	{
		AttrNumber	att = td->tg_trigger->tgattr[i];
		Form_pg_attribute a = TupleDescAttr(desc, att - 1);
		bool		oldnull,
					newnull;
		Datum		o = heap_getattr(td->tg_trigtuple, att, desc, &oldnull);
		Datum		n = heap_getattr(td->tg_newtuple, att, desc, &newnull);
		char	   *q = psprintf("\"%s\"", NameStr(a->attname));

		appendStringInfo(&all, "%s%s", all.len ? ", " : "", q);
		if (oldnull != newnull ||
			(!oldnull && !datum_image_eq(o, n, a->attbyval, a->attlen)))
		{
			appendStringInfo(&changed, "%s%s", changed.len ? ", " : "", q);
			nchanged++;
		}
	}
	*n = nchanged ? nchanged : td->tg_trigger->tgnattr;
	return nchanged ? changed.data : all.data;
}

PG_FUNCTION_INFO_V1(feature_table_update_trigger);

/*
 * SQL streamml.feature_table_update_trigger(): the BEFORE UPDATE row
 * trigger on a feature table's source, which fires (its WHEN clause) only
 * for an UPDATE that changes a column the feature table keeps: those
 * columns (partition_by, order_by and the "of" columns among them) made
 * the row's features and the features of the rows after it, so changing
 * them is refused.  Argument: the feature table's name.
 */
Datum
feature_table_update_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	char	   *cols;
	int			ncols;

	/* a statement trigger has no rows to name: refused like any misuse */
	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_UPDATE(td->tg_event) ||
		!TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		td->tg_trigger->tgnargs != 1 || td->tg_trigger->tgnattr < 1 ||
		td->tg_trigtuple == NULL || td->tg_newtuple == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("feature_table_update_trigger must be a BEFORE UPDATE OF row trigger"),
				 errhint("Use streamml.create_feature_table.")));
	cols = ChangedKeptColumns(td, &ncols);
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg_plural("cannot change column %s of table \"%s\": feature table \"%s\" keeps it",
						   "cannot change columns %s of table \"%s\": feature table \"%s\" keeps them",
						   ncols, cols,
						   RelationGetRelationName(td->tg_relation), td->tg_trigger->tgargs[0]),
			 errdetail("A row's features, and those of the rows after it in its partition, were computed from the values it had when it arrived."),
			 errhint("Delete the row and insert the corrected one (it arrives anew), or drop and re-create the feature table to compute every feature again.")));
	return PointerGetDatum(NULL);
}
