/*
 * launcher.c
 *		The stream launcher: one background worker per server that keeps a
 *		consumer worker running for every enabled stream and worker index.
 *
 * The launcher connects to streamml.database, reads streamml.streams every
 * streamml.launcher_naptime and whenever the SQL functions wake it (at the
 * commit of a change), and reconciles: it starts the consumers that should
 * run, stops those whose stream was stopped, dropped or changed (a new
 * generation), and starts dead ones again after a delay that doubles up
 * to a minute while they keep failing, so a stream whose broker is gone or
 * whose table is broken does not crash-loop.  A consumer of a changed
 * stream is started only once its predecessor has exited.
 *
 * The launcher itself is a static worker restarted by the postmaster, so
 * streams come back by themselves after a restart or a crash.  Consumers
 * are started with the launcher's pid and exit if another launcher takes
 * over, so no two consumers ever serve the same partitions for long (and
 * the conditional offset update stops even that short overlap from
 * loading a batch twice).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "consumer.h"
#include "ingest.h"

/* One consumer the launcher looks after. */
typedef struct WorkerSlot
{
	bool		used;
	int32		stream;
	int			worker;
	int			generation;
	BackgroundWorkerHandle *handle;
	bool		stopping;		/* terminated on purpose */
	bool		wanted;
	TimestampTz started_at;
	TimestampTz next_start;
	long		delay_ms;
} WorkerSlot;

#define MAX_SLOTS 1024

static WorkerSlot *slots;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Requests shared memory for the statistics. */
static void
IngestShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	StatsShmemRequest();
}

/* Attaches the shared statistics. */
static void
IngestShmemStartup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	StatsShmemStartup();
}

/* Called from _PG_init: settings, shared memory, the launcher. */
void
IngestInit(void)
{
	IngestDefineGucs();
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = IngestShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = IngestShmemStartup;
	LauncherRegister();
}

/* Registers the launcher with the postmaster. */
void
LauncherRegister(void)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	strlcpy(w.bgw_library_name, "pg_streamml", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "StreamLauncherMain", BGW_MAXLEN);
	strlcpy(w.bgw_name, "pg_streamml launcher", BGW_MAXLEN);
	strlcpy(w.bgw_type, "pg_streamml launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&w);
}

/* Clears the launcher's pid at exit, which makes its consumers exit. */
static void
LauncherExit(int code, Datum arg)
{
	StatsSetLauncherPid(0);
}

/* Finds the slot of (stream, worker), or NULL. */
static WorkerSlot *
FindSlot(int32 stream, int worker)
{
	int			i;

	for (i = 0; i < MAX_SLOTS; i++)
		if (slots[i].used && slots[i].stream == stream && slots[i].worker == worker)
			return &slots[i];
	return NULL;
}

/* Starts the consumer of a slot. */
static void
StartConsumer(WorkerSlot *s, const char *name)
{
	BackgroundWorker w;
	ConsumerArgs a;
	MemoryContext old;
	bool		registered;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(w.bgw_library_name, "pg_streamml", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "StreamConsumerMain", BGW_MAXLEN);
	snprintf(w.bgw_name, BGW_MAXLEN, "pg_streamml consumer %s/%d", name, s->worker);
	strlcpy(w.bgw_type, "pg_streamml consumer", BGW_MAXLEN);
	w.bgw_main_arg = Int32GetDatum(s->stream);
	w.bgw_notify_pid = MyProcPid;
	a.database = MyDatabaseId;
	a.worker = s->worker;
	a.generation = s->generation;
	a.launcher_pid = MyProcPid;
	memcpy(w.bgw_extra, &a, sizeof(a));

	/*
	 * The handle is palloc'ed in the current context, which here is SPI's
	 * (freed at SPI_finish), yet it must live as long as the consumer.
	 */
	old = MemoryContextSwitchTo(TopMemoryContext);
	registered = RegisterDynamicBackgroundWorker(&w, &s->handle);
	MemoryContextSwitchTo(old);
	if (!registered)
	{
		s->handle = NULL;
		s->next_start = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 5000);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("pg_streamml: cannot start a consumer for stream \"%s\"", name),
				 errhint("Increase max_worker_processes.")));
		return;
	}
	s->started_at = GetCurrentTimestamp();
}

/*
 * Reads the catalog and starts, stops and restarts consumers.  Returns how
 * long the launcher may sleep before something is due.
 */
static long
Reconcile(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		sleep_ms = streamml_launcher_naptime;
	char	  **names = NULL;
	uint64		n = 0,
				r;
	int			i;
	MemoryContext cxt = CurrentMemoryContext;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "reading streamml.streams");
	if (SPI_execute("SELECT 1 FROM pg_catalog.pg_extension "
					"WHERE extname OPERATOR(pg_catalog.=) 'pg_streamml'",
					true, 0) == SPI_OK_SELECT && SPI_processed == 1 &&
		SPI_execute("SELECT id, name, generation, "
					"coalesce((options OPERATOR(pg_catalog.->>) 'workers')::int, 1) "
					"FROM streamml.streams WHERE enabled", true, 0) == SPI_OK_SELECT)
	{
		n = SPI_processed;
		names = MemoryContextAlloc(cxt, sizeof(char *) * (n + 1));
		for (i = 0; i < MAX_SLOTS; i++)
			slots[i].wanted = false;
		for (r = 0; r < n; r++)
		{
			HeapTuple	t = SPI_tuptable->vals[r];
			TupleDesc	d = SPI_tuptable->tupdesc;
			bool		isnull;
			int32		id = DatumGetInt32(SPI_getbinval(t, d, 1, &isnull));
			int			gen = DatumGetInt32(SPI_getbinval(t, d, 3, &isnull));
			int			nw = DatumGetInt32(SPI_getbinval(t, d, 4, &isnull));
			int			w;

			names[r] = MemoryContextStrdup(cxt, SPI_getvalue(t, d, 2));
			for (w = 0; w < nw; w++)
			{
				WorkerSlot *s = FindSlot(id, w);

				if (s == NULL)
				{
					for (i = 0; i < MAX_SLOTS && slots[i].used; i++)
						;
					if (i == MAX_SLOTS)
						break;
					s = &slots[i];
					memset(s, 0, sizeof(*s));
					s->used = true;
					s->stream = id;
					s->worker = w;
					s->generation = gen;
					s->delay_ms = 1000;
					s->next_start = now;
				}
				s->wanted = true;
				if (s->generation != gen)
				{
					/* Changed: stop the old consumer, then start anew. */
					if (s->handle)
						s->stopping = true;
					else
					{
						s->generation = gen;
						s->next_start = now;
					}
				}
				if (s->handle == NULL && s->generation == gen &&
					now >= s->next_start)
					StartConsumer(s, names[r]);
			}
		}
		/* Stop what is not wanted; notice the consumers that died. */
		for (i = 0; i < MAX_SLOTS; i++)
		{
			WorkerSlot *s = &slots[i];
			pid_t		pid;

			if (!s->used)
				continue;
			if (s->handle &&
				GetBackgroundWorkerPid(s->handle, &pid) == BGWH_STOPPED)
			{
				pfree(s->handle);
				s->handle = NULL;
				if (s->stopping)
				{
					/* stopped on purpose: the new one may start now */
					s->stopping = false;
					s->next_start = now;
					sleep_ms = 10;
				}
				else
				{
					/* Died: a consumer that ran a while restarts at once. */
					if (TimestampDifferenceExceeds(s->started_at, now, 60000))
						s->delay_ms = 1000;
					else
						s->delay_ms = Min(s->delay_ms * 2, 60000);
					s->next_start = TimestampTzPlusMilliseconds(now, s->delay_ms);
				}
			}
			if (!s->wanted)
			{
				if (s->handle)
				{
					s->stopping = true;
					TerminateBackgroundWorker(s->handle);
				}
				else
					s->used = false;
			}
			else if (s->stopping && s->handle)
				TerminateBackgroundWorker(s->handle);
			else if (s->handle == NULL)
			{
				long		secs;
				int			usecs;

				TimestampDifference(now, s->next_start, &secs, &usecs);
				sleep_ms = Min(sleep_ms, secs * 1000 + usecs / 1000 + 1);
			}
		}
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return Max(sleep_ms, 10);
}

/* Entry point of the launcher. */
void
StreamLauncherMain(Datum arg)
{
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(streamml_database, NULL, 0);
	pgstat_report_appname("pg_streamml launcher");

	slots = MemoryContextAllocZero(TopMemoryContext, sizeof(WorkerSlot) * MAX_SLOTS);
	StatsSetLauncherPid(MyProcPid);
	before_shmem_exit(LauncherExit, (Datum) 0);
	elog(LOG, "pg_streamml launcher started in database \"%s\"", streamml_database);

	/* What one round allocates (the stream names) goes with the round. */
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "pg_streamml launcher loop",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		long		nap;

		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		nap = Reconcile();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 nap, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
