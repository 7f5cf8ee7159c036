/*
 * scorer_stats.c
 *		The counters of the streamml.scorers view, in shared memory.
 *
 * One slot per scorer (database, scorer id), found by linear search: a
 * server has a few scorers, and a slot is touched once per committed
 * transaction that scored rows, not per row.  The counts are those of
 * committed work only: a batch adds to a backend-local pending entry,
 * tagged with its subtransaction, which is published at commit and
 * dropped by the abort of that subtransaction (a stream range that is
 * rolled back and loaded again in halves is not counted twice).  The last
 * error is shown at once, commit or not: it is why the work did not
 * commit.  Counters start at zero when the server starts.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "ingest/ingest.h"
#include "pg_streamml.h"
#include "ratemeter.h"
#include "scoring/scorer.h"

typedef struct ScorerSlot
{
	Oid			dbid;			/* InvalidOid when free */
	int32		scorer;
	Oid			owner;
	int64		rows;
	int64		unscorable;
	int64		batches;
	double		seconds;		/* time spent scoring, all batches */
	RateMeter	rate;			/* rows per second */
	TimestampTz last_batch_at;
	TimestampTz error_at;
	char		last_error[256];
} ScorerSlot;

typedef struct ScorerStatsShared
{
	LWLock	   *lock;
	int			nslots;			/* streamml.max_stat_slots */
	ScorerSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} ScorerStatsShared;

/* The shared memory of nslots slots. */
#define SCORER_STATS_SIZE(nslots) \
	MAXALIGN(offsetof(ScorerStatsShared, slots) + sizeof(ScorerSlot) * (nslots))

/* Work of this transaction not yet published. */
typedef struct PendingBatch
{
	int32		scorer;
	Oid			owner;
	SubTransactionId subid;
	int64		rows;
	int64		unscorable;
	int64		batches;
	double		seconds;
} PendingBatch;

static ScorerStatsShared *Shared = NULL;
static PendingBatch *Pending = NULL;	/* in TopMemoryContext */
static int	npending = 0;
static int	maxpending = 0;
static bool callbacks_registered = false;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Asks for the slots and their lock. */
static void
ScorerShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(SCORER_STATS_SIZE(streamml_max_stat_slots));
	RequestNamedLWLockTranche("pg_streamml scorers", 1);
}

/* Creates or attaches the slots. */
static void
ScorerShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Shared = ShmemInitStruct("pg_streamml scorer stats",
							 SCORER_STATS_SIZE(streamml_max_stat_slots), &found);
	if (!found)
	{
		memset(Shared, 0, SCORER_STATS_SIZE(streamml_max_stat_slots));
		Shared->nslots = streamml_max_stat_slots;
		Shared->lock = &(GetNamedLWLockTranche("pg_streamml scorers"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init: the shared memory of the counters. */
void
ScorerInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ScorerShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ScorerShmemStartup;
}

/*
 * The slot of a scorer of this database, made if missing and create; lock
 * held.  A slot made for an error may be of a scorer whose creation rolls
 * back: ScorerStatsReclaim frees those when the slots run out.
 */
static ScorerSlot *
FindSlot(int32 scorer, Oid owner, bool create)
{
	ScorerSlot *free_slot = NULL;

	for (int i = 0; i < Shared->nslots; i++)
	{
		ScorerSlot *s = &Shared->slots[i];

		if (s->dbid == MyDatabaseId && s->scorer == scorer)
		{
			s->owner = owner;
			return s;
		}
		if (s->dbid == InvalidOid && free_slot == NULL)
			free_slot = s;
	}
	if (!create)
		return NULL;
	if (free_slot)
	{
		memset(free_slot, 0, sizeof(ScorerSlot));
		free_slot->dbid = MyDatabaseId;
		free_slot->scorer = scorer;
		free_slot->owner = owner;
	}
	else
	{
		static bool logged = false;

		/* once per backend: the scorer works, its view shows 0 */
		if (!logged)
			ereport(LOG,
					(errmsg("no statistics slot left for scorer %d: its live counters stay 0", scorer),
					 errhint("Raise streamml.max_stat_slots (%d; a restart is needed), or drop unused scorers.",
							 Shared->nslots)));
		logged = true;
	}
	return free_slot;
}

/* Adds one committed entry to its slot. */
static void
Publish(PendingBatch *p, TimestampTz now)
{
	ScorerSlot *s = FindSlot(p->scorer, p->owner, true);

	if (s == NULL)
		return;
	s->rows += p->rows;
	s->unscorable += p->unscorable;
	s->batches += p->batches;
	s->seconds += p->seconds;
	s->last_batch_at = now;
	/* a committed batch ends the error it follows */
	s->last_error[0] = '\0';
	s->error_at = 0;
	RateMeterAdd(&s->rate, p->rows, now);
}

/* Publishes the pending counts at commit, drops them at abort. */
static void
ScorerXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
	{
		if (npending > 0 && Shared != NULL)
		{
			TimestampTz now = GetCurrentTimestamp();

			LWLockAcquire(Shared->lock, LW_EXCLUSIVE);
			for (int i = 0; i < npending; i++)
				Publish(&Pending[i], now);
			LWLockRelease(Shared->lock);
		}
		npending = 0;
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		npending = 0;
}

/* A subtransaction's counts go with its abort, or to its parent. */
static void
ScorerSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	int			kept = 0;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	for (int i = 0; i < npending; i++)
	{
		PendingBatch *into = NULL;

		/* later subtransactions have larger ids: theirs end with ours */
		if (Pending[i].subid >= mySubid)
		{
			if (event == SUBXACT_EVENT_ABORT_SUB)
				continue;
			Pending[i].subid = parentSubid;
			/* one entry per scorer and subtransaction: merge */
			for (int j = 0; j < kept; j++)
				if (Pending[j].scorer == Pending[i].scorer &&
					Pending[j].subid == parentSubid)
					into = &Pending[j];
		}
		if (into != NULL)
		{
			into->rows += Pending[i].rows;
			into->unscorable += Pending[i].unscorable;
			into->batches += Pending[i].batches;
			into->seconds += Pending[i].seconds;
		}
		else
			Pending[kept++] = Pending[i];
	}
	npending = kept;
}

/*
 * Counts one batch (a statement's rows) of a scorer, published when the
 * transaction commits.
 */
void
ScorerStatsBatch(int32 scorer, Oid owner, int64 rows, int64 unscorable,
				 double seconds)
{
	SubTransactionId subid = GetCurrentSubTransactionId();
	PendingBatch *p = NULL;

	if (!callbacks_registered)
	{
		RegisterXactCallback(ScorerXactCallback, NULL);
		RegisterSubXactCallback(ScorerSubXactCallback, NULL);
		callbacks_registered = true;
	}
	for (int i = 0; i < npending; i++)
		if (Pending[i].scorer == scorer && Pending[i].subid == subid)
			p = &Pending[i];
	if (p == NULL)
	{
		if (npending == maxpending)
		{
			maxpending = Max(2 * maxpending, 16);
			Pending = Pending == NULL ?
				MemoryContextAlloc(TopMemoryContext, sizeof(PendingBatch) * maxpending) :
				repalloc(Pending, sizeof(PendingBatch) * maxpending);
		}
		p = &Pending[npending++];
		memset(p, 0, sizeof(PendingBatch));
		p->scorer = scorer;
		p->subid = subid;
	}
	p->owner = owner;
	p->rows += rows;
	p->unscorable += unscorable;
	p->batches++;
	p->seconds += seconds;
}

/* Shows the error that stopped a batch, at once. */
void
ScorerStatsError(int32 scorer, Oid owner, const char *msg)
{
	ScorerSlot *s;

	if (Shared == NULL)
		return;
	LWLockAcquire(Shared->lock, LW_EXCLUSIVE);
	s = FindSlot(scorer, owner, true);
	if (s)
	{
		strlcpy(s->last_error, msg, sizeof(s->last_error));
		s->error_at = GetCurrentTimestamp();
	}
	LWLockRelease(Shared->lock);
}

/*
 * When every slot is taken, frees those of this database's scorers that no
 * longer exist (their creation rolled back after an error made the slot).
 * create_scorer calls it, SPI connected, before the new scorer's first
 * batch needs a slot; the catalog is read without the lock held.
 */
void
ScorerStatsReclaim(void)
{
	Datum	   *ids;
	int			n = 0;
	bool		full = true;
	ArrayType  *arr;
	uint64		nlive;
	int32	   *live;

	if (Shared == NULL)
		return;
	ids = palloc(sizeof(Datum) * Shared->nslots);
	LWLockAcquire(Shared->lock, LW_SHARED);
	for (int i = 0; i < Shared->nslots; i++)
	{
		if (Shared->slots[i].dbid == InvalidOid)
			full = false;
		else if (Shared->slots[i].dbid == MyDatabaseId)
			ids[n++] = Int32GetDatum(Shared->slots[i].scorer);
	}
	LWLockRelease(Shared->lock);
	if (!full || n == 0)
		return;
	arr = construct_array(ids, n, INT4OID, 4, true, TYPALIGN_INT);
	nlive = CatalogExecute("SELECT id FROM streamml.scorers_catalog "
						   "WHERE id OPERATOR(pg_catalog.=) ANY ($1)",
						   1, (Oid[]) {INT4ARRAYOID},
						   (Datum[]) {PointerGetDatum(arr)}, NULL, SPI_OK_SELECT);
	live = palloc(sizeof(int32) * Max(nlive, 1));
	for (uint64 i = 0; i < nlive; i++)
	{
		bool		isnull;

		live[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
											  SPI_tuptable->tupdesc, 1, &isnull));
	}
	LWLockAcquire(Shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < Shared->nslots; i++)
	{
		ScorerSlot *s = &Shared->slots[i];
		bool		alive = false;

		if (s->dbid != MyDatabaseId)
			continue;
		for (uint64 j = 0; j < nlive && !alive; j++)
			alive = (live[j] == s->scorer);
		if (!alive)
			s->dbid = InvalidOid;
	}
	LWLockRelease(Shared->lock);
}

/* Frees the slot of a dropped scorer. */
void
ScorerStatsForget(int32 scorer)
{
	if (Shared == NULL)
		return;
	LWLockAcquire(Shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < Shared->nslots; i++)
		if (Shared->slots[i].dbid == MyDatabaseId &&
			Shared->slots[i].scorer == scorer)
			Shared->slots[i].dbid = InvalidOid;
	LWLockRelease(Shared->lock);
}

PG_FUNCTION_INFO_V1(scorer_stats_raw);

/*
 * SQL streamml.scorer_stats_raw(): the counters of this database's
 * scorers whose owner's privileges the caller has; the streamml.scorers
 * view joins them to the catalog.
 */
Datum
scorer_stats_raw(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	if (Shared == NULL)
		PG_RETURN_VOID();
	LWLockAcquire(Shared->lock, LW_SHARED);
	for (int i = 0; i < Shared->nslots; i++)
	{
		ScorerSlot *s = &Shared->slots[i];
		Datum		v[9];
		bool		n[9] = {0};

		if (s->dbid != MyDatabaseId)
			continue;
		if (!superuser() && !has_privs_of_role(GetUserId(), s->owner))
			continue;
		v[0] = Int32GetDatum(s->scorer);
		v[1] = Int64GetDatum(s->rows);
		v[2] = Int64GetDatum(s->unscorable);
		v[3] = Float8GetDatum(RateMeterRead(&s->rate, now));
		v[4] = Int64GetDatum(s->batches);
		v[5] = Float8GetDatum(s->batches > 0 ? 1000.0 * s->seconds / s->batches : 0.0);
		n[5] = s->batches == 0;
		v[6] = TimestampTzGetDatum(s->last_batch_at);
		n[6] = s->last_batch_at == 0;
		v[7] = CStringGetTextDatum(s->last_error);
		n[7] = s->last_error[0] == '\0';
		v[8] = TimestampTzGetDatum(s->error_at);
		n[8] = n[7];
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	LWLockRelease(Shared->lock);
	PG_RETURN_VOID();
}
