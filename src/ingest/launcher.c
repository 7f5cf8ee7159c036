/*
 * launcher.c
 *		The supervisor, one background worker per server, and the stream
 *		launchers, one per database that has streams, which keep a consumer
 *		worker running for every enabled stream and worker index.
 *
 * Databases.  Streams live in the database where the extension was
 * created, and a background worker reads one database only.  So the
 * supervisor, connected to no database (it reads the shared catalog
 * pg_database only, as autovacuum's and TimescaleDB's launchers do), starts
 * a launcher in every database that may have streams: once for each
 * database at server start (at most two at a time, as most databases have
 * none), and later whenever a SQL function that changes streams asks for
 * one, at the commit of that change, so a database that creates the
 * extension later is served without a restart.  A launcher that finds no
 * enabled stream (or no extension) exits, so that a database without
 * streams holds no worker slot and no connection.  streamml.database, when
 * set, restricts all this to one database.
 *
 * Worker slots.  Every worker of every extension comes from one pool,
 * max_worker_processes, which parallel query and logical replication use
 * too (autovacuum has a pool of its own).  So consumers are counted, over
 * all databases, in shared memory: a launcher claims a slot there before it
 * starts a consumer and gives it back when the consumer is gone.  At most
 * streamml.max_workers claims exist at once, never more than what
 * max_parallel_workers and the launchers leave of max_worker_processes,
 * and at most streamml.max_workers_per_role for the streams of one owner
 * (no limit of its own by default: a server with one application role and
 * many streams is the common case; a shared server sets it).
 * A consumer that gets no slot waits: its stream shows why in stream_stats
 * (a row with partition NULL) and the launcher tries again every round.
 * create_stream and alter_stream refuse a stream that asks for more workers
 * than one role may ever run.
 *
 * A launcher reads streamml.streams every streamml.launcher_naptime and
 * whenever the SQL functions wake it (at the commit of a change), and
 * reconciles: it starts the consumers that should run, stops those whose
 * stream was stopped, dropped or changed (a new generation), and starts
 * dead ones again after a delay that doubles up to a minute while they keep
 * failing, so a stream whose broker is gone or whose table is broken does
 * not crash-loop.  A consumer of a changed stream is started only once its
 * predecessor has exited.
 *
 * A launcher also starts the database's monitor worker once, as it starts,
 * when the database has monitors (monitorworker.c): the supervisor starts a
 * launcher in every database at server start, so monitors resume with the
 * server even in a database without streams.
 *
 * The supervisor is a static worker restarted by the postmaster; a launcher
 * that fails is started again by the supervisor after a delay, unless its
 * database is gone.  Consumers are started with their launcher's pid and
 * exit if another launcher takes over, so no two consumers ever serve the
 * same partitions for long (and the conditional offset update stops even
 * that short overlap from loading a batch twice).
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "consumer.h"
#include "ingest.h"
#include "monitor/monitor.h"

/* A database as the supervisor and its launcher share it. */
typedef struct LauncherDb
{
	Oid			dboid;			/* InvalidOid: a free entry */
	int			launcher_pid;	/* 0 while no launcher serves it */
	bool		requested;		/* a change asks its launcher to look */
	bool		serving;		/* the launcher found streams to run */
	int			failures;		/* launchers that failed in a row */
	TimestampTz retry_at;		/* after a failure: start one again then */
} LauncherDb;

/* A worker slot claimed for a consumer. */
typedef struct WorkerClaim
{
	Oid			role;			/* the stream's owner; InvalidOid: free */
	int			launcher_pid;	/* who claimed it */
} WorkerClaim;

typedef struct LauncherShared
{
	LWLock	   *lock;
	int			supervisor_pid;
	int			parallel_workers;	/* max_parallel_workers as configured */
	int			ndbs;
	int			nclaims;
	/* LauncherDb dbs[ndbs], then WorkerClaim claims[nclaims] */
} LauncherShared;

/* One consumer the launcher looks after. */
typedef struct WorkerSlot
{
	bool		used;
	int32		stream;
	int			worker;
	int			generation;
	BackgroundWorkerHandle *handle;
	int			claim;			/* index in claims, or -1 */
	bool		stopping;		/* terminated on purpose */
	bool		wanted;
	bool		waiting;		/* wants a worker slot it did not get */
	TimestampTz started_at;
	TimestampTz next_start;
	long		delay_ms;
} WorkerSlot;

#define MAX_SLOTS 1024
/* Databases probed at once at server start. */
#define MAX_PROBES 2

static LauncherShared *Launcher = NULL;
static LauncherDb *dbs;
static WorkerClaim *claims;

static WorkerSlot *slots;
static Oid	my_db = InvalidOid;

static void ReleaseClaim(int claim);
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Entries for databases: one per possible launcher, and some to spare. */
static int
LauncherDbCount(void)
{
	return max_worker_processes + 8;
}

/* Size of the shared struct. */
static Size
LauncherSize(void)
{
	Size		size = MAXALIGN(sizeof(LauncherShared));

	size = add_size(size, mul_size(LauncherDbCount(), sizeof(LauncherDb)));
	return add_size(size, mul_size(max_worker_processes, sizeof(WorkerClaim)));
}

/* Requests shared memory for the statistics and the launchers. */
static void
IngestShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	StatsShmemRequest();
	RequestAddinShmemSpace(LauncherSize());
	RequestNamedLWLockTranche("pg_streamml launcher", 1);
}

/* Attaches the shared statistics and the launchers' struct. */
static void
IngestShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	StatsShmemStartup();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Launcher = ShmemInitStruct("pg_streamml launchers", LauncherSize(), &found);
	if (!found)
	{
		memset(Launcher, 0, LauncherSize());
		Launcher->lock = &(GetNamedLWLockTranche("pg_streamml launcher"))->lock;
		Launcher->ndbs = LauncherDbCount();
		Launcher->nclaims = max_worker_processes;
	}
	dbs = (LauncherDb *) ((char *) Launcher + MAXALIGN(sizeof(LauncherShared)));
	claims = (WorkerClaim *) (dbs + Launcher->ndbs);
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init: settings, shared memory, the supervisor. */
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

/* Registers the supervisor with the postmaster. */
void
LauncherRegister(void)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	strlcpy(w.bgw_library_name, "pg_streamml", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "StreamSupervisorMain", BGW_MAXLEN);
	strlcpy(w.bgw_name, "pg_streamml supervisor", BGW_MAXLEN);
	strlcpy(w.bgw_type, "pg_streamml supervisor", BGW_MAXLEN);
	RegisterBackgroundWorker(&w);
}

/* ---- shared state ---- */

/* The entry of a database, made if make is set and one is free; lock held. */
static LauncherDb *
FindDb(Oid dboid, bool make)
{
	LauncherDb *free_entry = NULL;
	int			i;

	for (i = 0; i < Launcher->ndbs; i++)
	{
		if (dbs[i].dboid == dboid)
			return &dbs[i];
		if (dbs[i].dboid == InvalidOid && free_entry == NULL)
			free_entry = &dbs[i];
	}
	if (!make || free_entry == NULL)
		return NULL;
	memset(free_entry, 0, sizeof(LauncherDb));
	free_entry->dboid = dboid;
	return free_entry;
}

/*
 * The worker limits in force: the total for pg_streamml and the one per
 * role.  The total never exceeds what max_worker_processes leaves once
 * max_parallel_workers (as configured for the server, not as a session may
 * have set it) and the supervisor and launchers have theirs.
 */
static void
WorkerLimits(int *total, int *per_role, int *cap)
{
	int			parallel = max_parallel_workers;
	int			launchers = 0;
	int			i;

	if (Launcher)
	{
		LWLockAcquire(Launcher->lock, LW_SHARED);
		if (Launcher->supervisor_pid != 0)
			parallel = Launcher->parallel_workers;
		for (i = 0; i < Launcher->ndbs; i++)
			if (dbs[i].launcher_pid != 0)
				launchers++;
		LWLockRelease(Launcher->lock);
	}
	*cap = Max(max_worker_processes - parallel - 1 - Max(launchers, 1), 0);
	*total = streamml_max_workers < 0 ? *cap : Min(streamml_max_workers, *cap);
	if (streamml_max_workers_per_role < 0)
		*per_role = *total;
	else
		*per_role = Min(streamml_max_workers_per_role, *total);
}

/*
 * Claims n worker slots for consumers of role, all or none: a stream runs
 * all its workers or waits, as each worker loads its own share of the
 * partitions.  Returns whether it got them (their indexes in out), or says
 * why not in why.
 */
static bool
ClaimWorkers(Oid role, int n, int *out, char *why, size_t len)
{
	int			total,
				per_role,
				cap;
	int			used = 0,
				mine = 0,
				got = 0;
	int			i;

	WorkerLimits(&total, &per_role, &cap);
	LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
	for (i = 0; i < Launcher->nclaims; i++)
	{
		if (claims[i].role == InvalidOid)
			continue;
		used++;
		if (claims[i].role == role)
			mine++;
	}
	if (used + n <= total && mine + n <= per_role)
	{
		for (i = 0; i < Launcher->nclaims && got < n; i++)
			if (claims[i].role == InvalidOid)
			{
				claims[i].role = role;
				claims[i].launcher_pid = MyProcPid;
				out[got++] = i;
			}
	}
	LWLockRelease(Launcher->lock);
	if (got == n)
		return true;
	/* Cannot happen (total is at most nclaims), but give them back. */
	for (i = 0; i < got; i++)
		ReleaseClaim(out[i]);
	if (mine + n > per_role)
	{
		char	   *rolname = GetUserNameFromId(role, true);

		snprintf(why, len, "role \"%s\" runs %d of its %d workers (streamml.max_workers_per_role)",
				 rolname ? rolname : "?", mine, per_role);
	}
	else
		snprintf(why, len, "pg_streamml runs %d of its %d workers (streamml.max_workers)",
				 used, total);
	return false;
}

/* Gives a claimed worker slot back. */
static void
ReleaseClaim(int claim)
{
	if (claim < 0)
		return;
	LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
	claims[claim].role = InvalidOid;
	claims[claim].launcher_pid = 0;
	LWLockRelease(Launcher->lock);
}

/*
 * The pid of the launcher of the current database, or 0.  Consumers exit
 * when it is no longer the one that started them.
 */
int
StatsGetLauncherPid(void)
{
	LauncherDb *db;
	int			pid = 0;

	if (!Launcher)
		return 0;
	LWLockAcquire(Launcher->lock, LW_SHARED);
	db = FindDb(MyDatabaseId, false);
	if (db)
		pid = db->launcher_pid;
	LWLockRelease(Launcher->lock);
	return pid;
}

/*
 * Asks the launcher of the current database to read the catalog now; the
 * supervisor starts one if none runs.  Called at the commit of a change.
 */
void
StatsWakeLauncher(void)
{
	LauncherDb *db;
	int			pid = 0;

	if (!Launcher)
		return;
	LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
	db = FindDb(MyDatabaseId, true);
	if (db)
	{
		db->requested = true;
		pid = db->launcher_pid;
	}
	if (pid == 0)
		pid = Launcher->supervisor_pid;
	LWLockRelease(Launcher->lock);
	if (pid > 0)
		kill(pid, SIGUSR1);
}

/*
 * Why pg_streamml does not serve a database, or NULL if it does; the hint
 * says how to change that.
 */
static const char *
NotServed(const char *dbname, bool datistemplate, bool datallowconn,
		  char **hint)
{
	*hint = NULL;
	if (datistemplate)
	{
		*hint = psprintf("Create the stream in a database made from template \"%s\".", dbname);
		return "it is a template";
	}
	if (!datallowconn)
	{
		*hint = psprintf("Allow connections with ALTER DATABASE %s ALLOW_CONNECTIONS true.",
						 quote_identifier(dbname));
		return "it does not allow connections";
	}
	if (streamml_database[0] != '\0' && strcmp(streamml_database, dbname) != 0)
	{
		*hint = psprintf("Create the stream in database \"%s\", or set streamml.database to '' (every database) or to \"%s\" in postgresql.conf and restart the server.",
						 streamml_database, dbname);
		return psprintf("streamml.database is set to \"%s\", so only the streams of that database are loaded",
						streamml_database);
	}
	return NULL;
}

/*
 * Errors unless the current database is one where pg_streamml loads
 * streams; create_stream calls it, so a stream that would never load is
 * refused with the reason.
 */
void
LauncherCheckDatabase(void)
{
	HeapTuple	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
	Form_pg_database db;
	const char *why;
	char	   *hint;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for database %u", MyDatabaseId);
	db = (Form_pg_database) GETSTRUCT(tup);
	why = NotServed(NameStr(db->datname), db->datistemplate, db->datallowconn,
					&hint);
	if (why)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_streamml does not load streams in database \"%s\"",
						NameStr(db->datname)),
				 errdetail("The database is not served because %s.", why),
				 errhint("%s", hint)));
	ReleaseSysCache(tup);
}

/*
 * Errors if a stream asks for more workers than one role may ever run;
 * create_stream and alter_stream call it.  A stream within the limit that
 * finds the slots taken waits for them instead (see ClaimWorker).
 */
void
LauncherCheckWorkers(const char *stream, int workers)
{
	int			total,
				per_role,
				cap;

	WorkerLimits(&total, &per_role, &cap);
	if (workers <= per_role)
		return;
	/* name the limit that binds: the server's, pg_streamml's, the role's */
	if (workers > cap)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg_plural("stream \"%s\" asks for %d worker, but the server leaves pg_streamml only %d",
							   "stream \"%s\" asks for %d workers, but the server leaves pg_streamml only %d",
							   workers, stream, workers, cap),
				 errdetail("max_worker_processes = %d, less max_parallel_workers and the pg_streamml supervisor and launchers, leaves %d.",
						   max_worker_processes, cap),
				 cap > 0 ?
				 errhint("Lower option \"workers\", or ask a superuser to raise max_worker_processes by %d (a restart is needed).",
						 workers - cap) :
				 errhint("Ask a superuser to raise max_worker_processes (a restart is needed) or to lower max_parallel_workers.")));
	if (workers > total)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg_plural("stream \"%s\" asks for %d worker, but streamml.max_workers allows %d",
							   "stream \"%s\" asks for %d workers, but streamml.max_workers allows %d",
							   workers, stream, workers, total),
				 errhint("Lower option \"workers\", or ask a superuser to raise streamml.max_workers.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg_plural("stream \"%s\" asks for %d worker, but a role may run at most %d",
						   "stream \"%s\" asks for %d workers, but a role may run at most %d",
						   workers, stream, workers, per_role),
			 errdetail("streamml.max_workers_per_role allows %d, of the %d workers of streamml.max_workers.",
					   per_role, total),
			 errhint("Lower option \"workers\", or ask a superuser to raise streamml.max_workers_per_role.")));
}

/* ---- the launcher of one database ---- */

/* At exit: no launcher for this database, and its worker slots are free. */
static void
LauncherExit(int code, Datum arg)
{
	LauncherDb *db;
	int			i;

	LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
	for (i = 0; i < Launcher->nclaims; i++)
		if (claims[i].launcher_pid == MyProcPid)
		{
			claims[i].role = InvalidOid;
			claims[i].launcher_pid = 0;
		}
	db = FindDb(my_db, false);
	if (db && db->launcher_pid == MyProcPid)
	{
		db->launcher_pid = 0;
		db->serving = false;
		if (code != 0)
		{
			/* Failed: the supervisor tries again later, if the db exists. */
			db->failures++;
			db->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   Min(5000L << Min(db->failures - 1, 4), 60000));
		}
		else
			db->failures = 0;
	}
	LWLockRelease(Launcher->lock);
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

/*
 * Starts the consumer of a slot, whose worker slot is claimed; false, with
 * the reason in why, when the postmaster has no free slot.
 */
static bool
StartConsumer(WorkerSlot *s, const char *name, char *why, size_t len)
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
		snprintf(why, len, "no background worker slot is free (max_worker_processes = %d, used by all extensions and parallel query)",
				 max_worker_processes);
		return false;
	}
	s->started_at = GetCurrentTimestamp();
	return true;
}

/*
 * Shows in stream_stats and the server log, once, that a stream waits for
 * worker slots, or that it waits no more.
 */
static void
ShowWaiting(int32 id, const char *name, Oid owner, bool waiting, int n,
			const char *why, bool no_slot)
{
	char		msg[256];

	StatsSetOwner(owner);
	if (!waiting)
	{
		StatsError(id, -1, NULL, 0);
		ereport(LOG,
				(errmsg("pg_streamml: stream \"%s\" got its worker slots", name)));
		return;
	}
	if (n == 1)
		snprintf(msg, sizeof(msg), "waiting for a worker slot: %s", why);
	else
		snprintf(msg, sizeof(msg), "waiting for %d worker slots: %s", n, why);
	StatsError(id, -1, msg, 0);
	ereport(no_slot ? WARNING : LOG,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("pg_streamml: stream \"%s\" is %s", name, msg),
			 no_slot ? errhint("Increase max_worker_processes.") : 0));
}

/*
 * Reads the catalog and starts, stops and restarts consumers.  Returns how
 * long the launcher may sleep before something is due, or -1 when it has
 * nothing left to do: no enabled stream and no consumer.
 */
static long
Reconcile(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		sleep_ms = streamml_launcher_naptime;
	uint64		n = 0,
				r;
	int			i;
	bool		busy = false;
	MemoryContext cxt = CurrentMemoryContext;
	LauncherDb *db;

	/* Changes committed before this point are seen by the reads below. */
	LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
	db = FindDb(my_db, false);
	if (db)
		db->requested = false;
	LWLockRelease(Launcher->lock);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "reading streamml.streams");
	for (i = 0; i < MAX_SLOTS; i++)
		slots[i].wanted = false;
	if (SPI_execute("SELECT 1 FROM pg_catalog.pg_extension "
					"WHERE extname OPERATOR(pg_catalog.=) 'pg_streamml'",
					true, 0) == SPI_OK_SELECT && SPI_processed == 1 &&
		SPI_execute("SELECT id, name, generation, owner, "
					"coalesce((options OPERATOR(pg_catalog.->>) 'workers')::int, 1) "
					"FROM streamml.streams WHERE enabled ORDER BY id",
					true, 0) == SPI_OK_SELECT)
	{
		SPITupleTable *tt = SPI_tuptable;

		n = SPI_processed;
		for (r = 0; r < n; r++)
		{
			HeapTuple	t = tt->vals[r];
			TupleDesc	d = tt->tupdesc;
			bool		isnull;
			int32		id = DatumGetInt32(SPI_getbinval(t, d, 1, &isnull));
			char	   *name = MemoryContextStrdup(cxt, SPI_getvalue(t, d, 2));
			int			gen = DatumGetInt32(SPI_getbinval(t, d, 3, &isnull));
			Oid			owner = DatumGetObjectId(SPI_getbinval(t, d, 4, &isnull));
			int			nw = DatumGetInt32(SPI_getbinval(t, d, 5, &isnull));
			char		why[200] = "";
			bool		was_waiting = false,
						no_slot = false;
			int			nwaiting = 0;
			WorkerSlot *due[64];
			int			ndue = 0;
			int			cl[64];
			int			w;

			nw = Min(nw, lengthof(due));
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
					s->claim = -1;
					s->delay_ms = 1000;
					s->next_start = now;
				}
				s->wanted = true;
				was_waiting |= s->waiting;
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
					due[ndue++] = s;
			}

			/* Start what is due, if it gets its worker slots. */
			if (ndue > 0 && !ClaimWorkers(owner, ndue, cl, why, sizeof(why)))
			{
				for (w = 0; w < ndue; w++)
					due[w]->waiting = true;
				nwaiting = ndue;
				ndue = 0;
			}
			for (w = 0; w < ndue; w++)
			{
				WorkerSlot *s = due[w];

				s->claim = cl[w];
				s->waiting = false;
				if (!StartConsumer(s, name, why, sizeof(why)))
				{
					ReleaseClaim(s->claim);
					s->claim = -1;
					s->waiting = true;
					nwaiting++;
					no_slot = true;
				}
			}
			if (nwaiting > 0 && !was_waiting)
				ShowWaiting(id, name, owner, true, nwaiting, why, no_slot);
			else if (was_waiting && nwaiting == 0)
				ShowWaiting(id, name, owner, false, 0, NULL, false);
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
			ReleaseClaim(s->claim);
			s->claim = -1;
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
			{
				/* A stopped stream waits for nothing any more. */
				if (s->waiting)
				{
					StatsSetOwner(InvalidOid);
					StatsError(s->stream, -1, NULL, 0);
				}
				s->used = false;
			}
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
		busy |= s->used;
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	if (n == 0 && !busy)
	{
		bool		requested;

		/* Nothing to run: exit, unless a change came in meanwhile. */
		LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
		db = FindDb(my_db, false);
		requested = db && db->requested;
		if (db && !requested)
			db->serving = false;
		LWLockRelease(Launcher->lock);
		return requested ? 10 : -1;
	}
	LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
	db = FindDb(my_db, false);
	if (db)
		db->serving = true;
	LWLockRelease(Launcher->lock);
	return Max(sleep_ms, 10);
}

/* Entry point of the launcher of one database: arg is its oid. */
void
StreamLauncherMain(Datum arg)
{
	MemoryContext loop_cxt;
	LauncherDb *db;
	bool		mine = false;
	bool		serving = false;
	char	   *dbname;

	my_db = DatumGetObjectId(arg);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* One launcher a database: leave if another one serves it. */
	LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
	db = FindDb(my_db, true);
	if (db && db->launcher_pid == 0)
	{
		db->launcher_pid = MyProcPid;
		mine = true;
	}
	LWLockRelease(Launcher->lock);
	if (!mine)
		proc_exit(0);
	before_shmem_exit(LauncherExit, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(my_db, InvalidOid, 0);
	pgstat_report_appname("pg_streamml launcher");
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(my_db));
	CommitTransactionCommand();
	/* the database's monitors resume with the server (monitorworker.c) */
	MonitorWorkerStartIfMonitors();
	slots = MemoryContextAllocZero(TopMemoryContext, sizeof(WorkerSlot) * MAX_SLOTS);

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
		if (nap < 0)
		{
			if (serving)
				elog(LOG, "pg_streamml launcher of database \"%s\" exits: no stream to load",
					 dbname);
			proc_exit(0);
		}
		if (!serving)
			elog(LOG, "pg_streamml launcher serves database \"%s\"", dbname);
		serving = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 nap, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---- the supervisor ---- */

/* The databases whose streams pg_streamml loads, from pg_database. */
static List *
ServedDatabases(void)
{
	List	   *result = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);
		char	   *hint;

		if (NotServed(NameStr(d->datname), d->datistemplate, d->datallowconn,
					  &hint) == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			result = lappend_oid(result, d->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return result;
}

/* Starts the launcher of a database. */
static BackgroundWorkerHandle *
StartLauncher(Oid dboid)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;
	MemoryContext old;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(w.bgw_library_name, "pg_streamml", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "StreamLauncherMain", BGW_MAXLEN);
	snprintf(w.bgw_name, BGW_MAXLEN, "pg_streamml launcher %u", dboid);
	strlcpy(w.bgw_type, "pg_streamml launcher", BGW_MAXLEN);
	w.bgw_main_arg = ObjectIdGetDatum(dboid);
	w.bgw_notify_pid = MyProcPid;
	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&w, &handle))
		handle = NULL;
	MemoryContextSwitchTo(old);
	return handle;
}

/* Publishes the server's settings that the worker limits depend on. */
static void
PublishSettings(void)
{
	int			total,
				per_role,
				cap;

	LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
	Launcher->parallel_workers = max_parallel_workers;
	LWLockRelease(Launcher->lock);
	WorkerLimits(&total, &per_role, &cap);
	ereport(LOG,
			(errmsg("pg_streamml: stream consumers may use %d background worker slots, %d per role",
					total, per_role),
			 errdetail("streamml.max_workers = %d, streamml.max_workers_per_role = %d; max_worker_processes = %d less max_parallel_workers = %d and the pg_streamml launchers leaves %d.",
					   streamml_max_workers, streamml_max_workers_per_role,
					   max_worker_processes, max_parallel_workers, cap)));
}

/*
 * One round of the supervisor: starts a launcher for every database that
 * asked for one, or whose launcher failed a while ago, and probes the
 * databases of *probe (at most MAX_PROBES at once).  Returns how long it
 * may sleep.
 */
static long
Supervise(BackgroundWorkerHandle **handles, List **probe)
{
	TimestampTz now = GetCurrentTimestamp();
	long		sleep_ms = 60000;
	List	   *want = NIL;
	List	   *served = NIL;
	ListCell   *lc;
	int			probing = 0;
	int			i;

	LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
	for (i = 0; i < Launcher->ndbs; i++)
	{
		LauncherDb *db = &dbs[i];
		pid_t		pid;
		bool		present = db->launcher_pid != 0;

		if (handles[i])
		{
			if (GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED)
			{
				pfree(handles[i]);
				handles[i] = NULL;
			}
			else
				present = true;
		}
		if (db->dboid == InvalidOid)
			continue;
		if (present)
		{
			if (!db->serving)
				probing++;
			continue;
		}
		if (db->requested || (db->retry_at != 0 && now >= db->retry_at))
			want = lappend_int(want, i);
		else if (db->retry_at != 0)
		{
			long		secs;
			int			usecs;

			TimestampDifference(now, db->retry_at, &secs, &usecs);
			sleep_ms = Min(sleep_ms, secs * 1000 + usecs / 1000 + 1);
		}
		else
			db->dboid = InvalidOid; /* nothing asked for: forget it */
	}

	/* Probe more databases while few launchers are looking around. */
	while (*probe != NIL && probing < MAX_PROBES)
	{
		Oid			dboid = linitial_oid(*probe);
		LauncherDb *db = FindDb(dboid, true);

		if (db == NULL)
			break;
		*probe = list_delete_first(*probe);
		if (db->launcher_pid != 0 || db->requested)
			continue;
		db->requested = true;
		want = lappend_int(want, db - dbs);
		probing++;
	}
	LWLockRelease(Launcher->lock);

	if (want != NIL)
		served = ServedDatabases();
	foreach(lc, want)
	{
		int			idx = lfirst_int(lc);
		LauncherDb *db = &dbs[idx];
		Oid			dboid = db->dboid;

		if (!list_member_oid(served, dboid))
		{
			/* Gone, or not ours to serve: forget it. */
			LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
			if (db->dboid == dboid && db->launcher_pid == 0)
				db->dboid = InvalidOid;
			LWLockRelease(Launcher->lock);
			continue;
		}
		handles[idx] = StartLauncher(dboid);
		LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
		if (handles[idx] == NULL)
		{
			/* No slot: keep the request and try again soon. */
			db->retry_at = TimestampTzPlusMilliseconds(now, 1000);
			sleep_ms = Min(sleep_ms, 1000);
		}
		else
			db->retry_at = 0;
		LWLockRelease(Launcher->lock);
		if (handles[idx] == NULL)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("pg_streamml: cannot start the launcher of database %u: no background worker slot is free",
							dboid),
					 errhint("Increase max_worker_processes.")));
	}
	if (*probe != NIL)
		sleep_ms = Min(sleep_ms, 100);
	return sleep_ms;
}

/* At exit: the supervisor is gone. */
static void
SupervisorExit(int code, Datum arg)
{
	LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
	if (Launcher->supervisor_pid == MyProcPid)
		Launcher->supervisor_pid = 0;
	LWLockRelease(Launcher->lock);
}

/* Entry point of the supervisor. */
void
StreamSupervisorMain(Datum arg)
{
	BackgroundWorkerHandle **handles;
	List	   *probe;
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* No database: the shared catalogs (pg_database) only. */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("pg_streamml supervisor");

	handles = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(BackgroundWorkerHandle *) * Launcher->ndbs);
	LWLockAcquire(Launcher->lock, LW_EXCLUSIVE);
	Launcher->supervisor_pid = MyProcPid;
	LWLockRelease(Launcher->lock);
	before_shmem_exit(SupervisorExit, (Datum) 0);
	PublishSettings();

	/* Any database served may have streams from before the restart. */
	probe = ServedDatabases();

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "pg_streamml supervisor loop",
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
			PublishSettings();
		}
		nap = Supervise(handles, &probe);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 nap, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
