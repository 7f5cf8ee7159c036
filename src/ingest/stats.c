/*
 * stats.c
 *		Live statistics of the streams, in shared memory, and the SRF under
 *		the streamml.stream_stats view.
 *
 * One slot per (database, stream, partition), found by linear search
 * (stream ids are numbered per database, and each database may run its
 * own streams; every process that writes a slot is connected to the
 * stream's database): a server runs
 * a few streams with a few hundred partitions at most, and each worker
 * updates its slots once per batch, not per message, and about once a
 * second while idle (watermarks, so that lag stays current).  Partition -1
 * is the stream-wide slot, where errors that belong to no partition (a
 * broker outage, a target that cannot be written) are kept.
 *
 * What the view shows, pg_stat style: a row per partition that a worker
 * has a position for (an offset, a high watermark or counted rows), so
 * partitions assigned but never heard of make no empty rows; and a row
 * with partition NULL for the stream as a whole, only while it has an
 * error, with NULL counters so that sums over the view stay right.  An
 * error reported again with the same text is counted (error_count) rather
 * than replaced, so a broker that stays unreachable shows one message, how
 * often it came and when it came last.
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "ingest.h"
#include "ratemeter.h"

typedef struct StatSlot
{
	Oid			dbid;			/* the stream's database */
	int32		stream;			/* 0 when free */
	int32		partition;
	Oid			owner;			/* the stream's owner, who may see it */
	int64		next_offset;
	int64		high_watermark;
	int64		rows_ingested;
	int64		rows_rejected;
	RateMeter	rate;			/* rows (and dead letters) per second */
	TimestampTz last_batch_at;
	TimestampTz error_at;
	int64		error_count;	/* times last_error was reported in a row */
	int			pid;
	char		last_error[256];
} StatSlot;

typedef struct StatsShared
{
	LWLock	   *lock;
	int			nslots;
	StatSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} StatsShared;

static StatsShared *Stats = NULL;
static Oid	stats_owner = InvalidOid;

/* Size of the shared struct. */
static Size
StatsSize(void)
{
	return add_size(offsetof(StatsShared, slots),
					mul_size(streamml_max_stat_slots, sizeof(StatSlot)));
}

/* Asks for our shared memory and lock; from the shmem_request_hook. */
void
StatsShmemRequest(void)
{
	RequestAddinShmemSpace(StatsSize());
	RequestNamedLWLockTranche("pg_streamml", 1);
}

/* Creates or attaches the shared struct; from the shmem_startup_hook. */
void
StatsShmemStartup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Stats = ShmemInitStruct("pg_streamml stats", StatsSize(), &found);
	if (!found)
	{
		memset(Stats, 0, StatsSize());
		Stats->lock = &(GetNamedLWLockTranche("pg_streamml"))->lock;
		Stats->nslots = streamml_max_stat_slots;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Sets the owner recorded with the slots this process updates. */
void
StatsSetOwner(Oid owner)
{
	stats_owner = owner;
}

/* The slot of (stream, partition), made if missing; lock held. */
static StatSlot *
FindSlot(int32 stream, int32 partition)
{
	StatSlot   *free_slot = NULL;
	int			i;

	for (i = 0; i < Stats->nslots; i++)
	{
		StatSlot   *s = &Stats->slots[i];

		if (s->stream == stream && s->partition == partition &&
			s->dbid == MyDatabaseId)
		{
			if (OidIsValid(stats_owner))
				s->owner = stats_owner;
			return s;
		}
		if (s->stream == 0 && free_slot == NULL)
			free_slot = s;
	}
	if (free_slot)
	{
		memset(free_slot, 0, sizeof(StatSlot));
		free_slot->dbid = MyDatabaseId;
		free_slot->stream = stream;
		free_slot->partition = partition;
		free_slot->owner = stats_owner;
		free_slot->next_offset = -1;
		free_slot->high_watermark = -1;
	}
	return free_slot;
}

/* Accounts for one committed batch of one partition. */
void
StatsBatch(int32 stream, int32 partition, int64 next_offset, int64 high,
		   int64 rows, int64 rejected, int pid)
{
	StatSlot   *s;
	TimestampTz now = GetCurrentTimestamp();

	if (!Stats)
		return;
	LWLockAcquire(Stats->lock, LW_EXCLUSIVE);
	s = FindSlot(stream, partition);
	if (s)
	{
		/* A partition's own error lasts until the partition moves on. */
		if (next_offset >= 0 && next_offset > s->next_offset &&
			s->next_offset >= 0)
			s->last_error[0] = '\0';
		if (next_offset >= 0)
			s->next_offset = next_offset;
		if (high >= 0)
			s->high_watermark = high;
		s->rows_ingested += rows;
		s->rows_rejected += rejected;
		s->pid = pid;
		if (rows + rejected > 0)
			s->last_batch_at = now;
		RateMeterAdd(&s->rate, rows + rejected, now);
	}
	LWLockRelease(Stats->lock);
}

/* Shows an error on a partition, or on the stream (partition -1). */
void
StatsError(int32 stream, int32 partition, const char *msg, int pid)
{
	StatSlot   *s;

	if (!Stats)
		return;
	LWLockAcquire(Stats->lock, LW_EXCLUSIVE);
	s = FindSlot(stream, partition);
	if (s)
	{
		if (msg && s->last_error[0] != '\0' &&
			strncmp(s->last_error, msg, sizeof(s->last_error) - 1) == 0)
			s->error_count++;
		else
		{
			strlcpy(s->last_error, msg ? msg : "", sizeof(s->last_error));
			s->error_count = msg ? 1 : 0;
		}
		s->error_at = msg ? GetCurrentTimestamp() : 0;
		s->pid = pid;
	}
	LWLockRelease(Stats->lock);
}

/*
 * Clears the stream-wide error after a successful batch.  An error of one
 * partition (an offset out of range, a message too large to fetch) stays
 * until that partition moves on (StatsBatch) or is cleared by name.
 */
void
StatsClearError(int32 stream, int pid)
{
	int			i;

	if (!Stats)
		return;
	LWLockAcquire(Stats->lock, LW_EXCLUSIVE);
	for (i = 0; i < Stats->nslots; i++)
	{
		StatSlot   *s = &Stats->slots[i];

		if (s->stream == stream && s->dbid == MyDatabaseId &&
			s->last_error[0] != '\0' && s->partition == -1)
		{
			s->last_error[0] = '\0';
			s->error_count = 0;
		}
	}
	LWLockRelease(Stats->lock);
}

/* Frees the slots of a stream: one partition's, or all (partition NULL). */
static void
ForgetSlots(int32 stream, const int32 *partition)
{
	int			i;

	if (!Stats)
		return;
	LWLockAcquire(Stats->lock, LW_EXCLUSIVE);
	for (i = 0; i < Stats->nslots; i++)
		if (Stats->slots[i].stream == stream &&
			Stats->slots[i].dbid == MyDatabaseId &&
			(partition == NULL || Stats->slots[i].partition == *partition))
			Stats->slots[i].stream = 0;
	LWLockRelease(Stats->lock);
}

/* Frees the slot of a partition that a stream no longer holds. */
void
StatsForgetPartition(int32 stream, int32 partition)
{
	ForgetSlots(stream, &partition);
}

/* Frees the slots of a dropped stream. */
void
StatsForgetStream(int32 stream)
{
	ForgetSlots(stream, NULL);
}

PG_FUNCTION_INFO_V1(streamml_stream_stats_raw);

/*
 * SQL streamml.stream_stats_raw(): one row per slot in use.  The view joins
 * it with streamml.streams, whose row-level security hides other users'
 * streams.
 */
Datum
streamml_stream_stats_raw(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;
	TimestampTz now = GetCurrentTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	if (!Stats)
		PG_RETURN_VOID();
	LWLockAcquire(Stats->lock, LW_SHARED);
	for (i = 0; i < Stats->nslots; i++)
	{
		StatSlot   *s = &Stats->slots[i];
		Datum		v[12];
		bool		n[12] = {0};

		if (s->stream == 0 || s->dbid != MyDatabaseId)
			continue;
		if (!superuser() && !has_privs_of_role(GetUserId(), s->owner))
			continue;
		if (s->partition < 0)
		{
			/* The stream-wide slot is a row only while it has an error. */
			if (s->last_error[0] == '\0')
				continue;
		}
		else if (s->next_offset < 0 && s->high_watermark < 0 &&
				 s->rows_ingested == 0 && s->rows_rejected == 0 &&
				 s->last_error[0] == '\0')
			continue;			/* assigned, but nothing known about it yet */
		v[0] = Int32GetDatum(s->stream);
		v[1] = Int32GetDatum(s->partition);
		n[1] = s->partition < 0;
		v[2] = Int64GetDatum(s->next_offset);
		n[2] = s->next_offset < 0;
		v[3] = Int64GetDatum(s->high_watermark);
		n[3] = s->high_watermark < 0;
		v[4] = Int64GetDatum(s->rows_ingested);
		n[4] = s->partition < 0;
		v[5] = Int64GetDatum(s->rows_rejected);
		n[5] = s->partition < 0;
		v[6] = Float8GetDatum(RateMeterRead(&s->rate, now));
		n[6] = s->partition < 0;
		v[7] = CStringGetTextDatum(s->last_error);
		n[7] = s->last_error[0] == '\0';
		v[8] = TimestampTzGetDatum(s->error_at);
		n[8] = s->error_at == 0 || n[7];
		v[9] = TimestampTzGetDatum(s->last_batch_at);
		n[9] = s->last_batch_at == 0;
		v[10] = Int32GetDatum(s->pid);
		n[10] = s->pid == 0;
		v[11] = Int64GetDatum(s->error_count);
		n[11] = n[7];
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	LWLockRelease(Stats->lock);
	PG_RETURN_VOID();
}
