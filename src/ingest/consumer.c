/*
 * consumer.c
 *		The consumer background worker: loads the partitions of one stream
 *		that belong to it into the target table, exactly once.
 *
 * Worker i of a stream with N workers owns the partitions p with
 * p % N = i, assigned by hand (rd_kafka_assign) at the offsets stored in
 * streamml.offsets; no consumer group is involved, so nothing but the
 * catalog decides where a partition resumes.  Partitions without a stored
 * offset get one before anything is read: the start position (earliest,
 * latest, or the first offset at a timestamp) is resolved once and written
 * down, so a restart never resolves "latest" to a later place.
 *
 * One transaction per batch: the batch's rows, its dead letters and the
 * new offsets commit together, so after any crash the stream resumes
 * exactly after the last committed batch.  The offset update is
 * conditional on the stored value being the one this worker read: if a
 * reset (or, by mistake, another worker) moved it, the batch is given up.
 * Messages below the stored offset are skipped, whatever Kafka sends.
 *
 * Inside the transaction the batch is loaded in a subtransaction, as the
 * stream's owner; if it fails, the batch is split in halves and each
 * loaded again, down to the single messages that fail on their own, which
 * become dead letters whatever the error, unless it is one of the
 * environment (IsEnvironmentalError).  A clean batch pays one
 * subtransaction.  What would fail for every message (a dropped target, a
 * revoked privilege, another session's temporary table) is checked once,
 * before the first message, and like environmental errors aborts the
 * batch: the worker shows the error in stream_stats, rewinds to the stored
 * offsets and tries again later.
 *
 * Nothing librdkafka reports about a partition is dropped: an offset out
 * of range (retention, a re-created topic) is answered by the option
 * on_offset_out_of_range, counting what was lost (HandleOutOfRange); a
 * message too large to fetch shows on its partition; a corrupt one is a
 * dead letter.
 *
 * In group mode (option "group") the worker joins a Kafka consumer group
 * instead, and answers each assignment with the offsets this stream stored
 * in its own catalog (its start position for a partition it never had).
 * So each stream's table gets every message of the partitions assigned to
 * it exactly once; a partition that moves to another stream, on another
 * server or not, resumes at that stream's offsets: loaded again there from
 * earliest (at least once across the streams), or skipped ahead with a
 * start of "latest" or a time.  See the README and test/t/039_ingest_group.pl.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/pmsignal.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/rls.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "consumer.h"
#include "loader.h"

static bool HandleRebalance(void);

/* What this worker knows about one partition. */
typedef struct PartState
{
	bool		mine;
	int64		next;			/* stored next offset (-2: earliest) */
	int64		batch_next;		/* next offset after this batch */
	int64		rows;
	int64		rejected;
	int64		high;
	int64		out_of_range;	/* offset Kafka said is out of range, or -1 */
	int64		failed_at;		/* stopped there (on_offset_out_of_range
								 * "fail"), or -1 */
	bool		stalled;		/* a fetch error shows; cleared by progress */
	int64		seen_next;		/* position and end at the last report */
	int64		seen_high;
	bool		probed;			/* KafkaReadableEnd asked at that place */
} PartState;

static StreamConfig *cfg;
static KafkaClient *kc;
static TargetState *main_target;
static List *route_targets;		/* of TargetState */
static PartState *parts;
static int	nparts;
static ConsumerArgs args;
static KafkaMessage *msgs;		/* the batch; handle NULL when not held */
static int	nmsgs;
static KafkaMessage *bad;		/* the batch's unreadable offsets */
static int	nbad;
static SPIPlanPtr dead_letter_plan;
static SPIPlanPtr offset_update_plan;
static char *target_name;		/* as it was when the worker started */
static bool relcache_changed = false;
static MemoryContext plan_cxt;	/* holds the TargetStates */
static MemoryContext next_plan_cxt; /* a planning in progress (or failed) */
static char errbuf[512];

/* The dead letters of the batch being loaded, and whether they agree. */

/* Notes that a target table changed, so its mapping is planned again. */
static void
RelcacheCallback(Datum arg, Oid relid)
{
	ListCell   *lc;

	if (cfg == NULL || relid == InvalidOid || relid == cfg->target)
	{
		relcache_changed = true;
		return;
	}
	foreach(lc, cfg->routes)
		if (((RouteSpec *) lfirst(lc))->target == relid)
			relcache_changed = true;
}

/* Runs a catalog query through SPI; errors if it fails. */
static void
Exec(const char *sql, int nargs, Oid *types, Datum *values, int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, NULL,
										   false, 0);

	if (rc != expect)
		elog(ERROR, "catalog query failed: %s", SPI_result_code_string(rc));
}

/* Exits when the stream's row is gone, disabled or changed. */
static void
CheckGeneration(void)
{
	Datum		id = Int32GetDatum(cfg->id);
	bool		isnull;
	bool		same;
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	Exec("SELECT generation FROM streamml.streams "
		 "WHERE id OPERATOR(pg_catalog.=) $1 AND enabled",
		 1, (Oid[]) {INT4OID}, &id, SPI_OK_SELECT);
	same = SPI_processed == 1 &&
		DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
									SPI_tuptable->tupdesc, 1, &isnull)) == args.generation;
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	if (!same)
		proc_exit(0);
}

/* Reads the stream's row; exits when it is gone, disabled or changed. */
static void
LoadStream(void)
{
	Datum		id = Int32GetDatum(DatumGetInt32(MyBgworkerEntry->bgw_main_arg));
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	MemoryContext old;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	Exec("SELECT name, owner, target, brokers, topic, format, options, "
		 "enabled, generation FROM streamml.streams "
		 "WHERE id OPERATOR(pg_catalog.=) $1",
		 1, (Oid[]) {INT4OID}, &id, SPI_OK_SELECT);
	if (SPI_processed == 0)
		proc_exit(0);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	if (!DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull)) ||
		DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull)) != args.generation)
		proc_exit(0);
	old = MemoryContextSwitchTo(TopMemoryContext);
	cfg = StreamConfigParse(DatumGetInt32(id),
							SPI_getvalue(tup, desc, 1),
							DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull)),
							DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull)),
							SPI_getvalue(tup, desc, 4),
							SPI_getvalue(tup, desc, 5),
							SPI_getvalue(tup, desc, 6),
							DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 7, &isnull)),
							args.generation, true);
	MemoryContextSwitchTo(old);
	StatsSetOwner(cfg->owner);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

/*
 * Plans the targets' mappings (again after a table change), in a memory
 * context of their own; the old plans go only once the new ones exist.
 */
static void
PlanTargets(void)
{
	MemoryContext old;
	ListCell   *lc;
	TargetState *mt;
	List	   *routes = NIL;

	if (next_plan_cxt)
		MemoryContextDelete(next_plan_cxt);
	next_plan_cxt = AllocSetContextCreate(TopMemoryContext,
										  "pg_streamml targets",
										  ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(next_plan_cxt);
	mt = TargetStateCreate(cfg, cfg->target, NULL);
	foreach(lc, cfg->routes)
	{
		RouteSpec  *r = lfirst(lc);

		routes = lappend(routes, TargetStateCreate(cfg, r->target, r->value));
	}
	MemoryContextSwitchTo(old);
	if (plan_cxt)
		MemoryContextDelete(plan_cxt);
	plan_cxt = next_plan_cxt;
	next_plan_cxt = NULL;
	main_target = mt;
	route_targets = routes;
	relcache_changed = false;
}

/* Makes room for partitions up to n - 1. */
static void
GrowParts(int n)
{
	if (n <= nparts)
		return;
	if (parts == NULL)
		parts = MemoryContextAllocZero(TopMemoryContext, sizeof(PartState) * n);
	else
	{
		parts = repalloc(parts, sizeof(PartState) * n);
		memset(parts + nparts, 0, sizeof(PartState) * (n - nparts));
	}
	for (int i = nparts; i < n; i++)
	{
		parts[i].out_of_range = -1;
		parts[i].failed_at = -1;
		parts[i].seen_next = -1;
	}
	nparts = n;
}

/*
 * The first offset in [low, high) of a partition whose message is at or
 * after ts_ms, found by reading single messages' timestamps (a binary
 * search); high if every message is older.  Assumes that timestamps do not
 * decrease along the partition, as Kafka's own time index nearly does: a
 * producer that sets older times by hand can make it start too early or
 * too late.  The first read is the last message, so an answer of "none"
 * costs one read.  False if a message has no timestamp (old message
 * format): then nothing can be found this way.  Errors if Kafka does not
 * answer.
 */
static bool
SearchOffsetByTime(int32 partition, int64 ts_ms, int64 low, int64 high,
				   int64 *offset)
{
	int64		lo = low;
	int64		hi = high;
	int64		probe = high - 1;

	/*
	 * Every message below lo is older than ts_ms; starting at hi skips none
	 * that is not.  Reading at probe gives the first message at or after
	 * it (offsets can have no message: compaction, transaction markers).
	 */
	while (lo < hi)
	{
		int64		found,
					ts;

		CHECK_FOR_INTERRUPTS();
		if (!KafkaMessageTimestampAt(kc, cfg->topic, partition, probe, 10000,
									 &found, &ts, errbuf, sizeof(errbuf)))
		{
			KafkaCloseReader(kc);
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("stream \"%s\": %s", cfg->name, errbuf)));
		}
		if (found < 0 || found >= hi)
			hi = probe;			/* nothing from probe to hi */
		else if (ts < 0)
			return false;
		else if (ts >= ts_ms)
			hi = probe;
		else
			lo = found + 1;
		probe = lo + (hi - lo) / 2;
	}
	*offset = hi;
	return true;
}

/*
 * Where a partition starts for a time, given the broker's answer (from
 * KafkaOffsetsForTime).  An offset is taken as it is.  "None at or after
 * the time" is what Kafka answers when every message is older, but also
 * what a broker that cannot look offsets up by time answers (librdkafka's
 * mock cluster, the dev broker, does so for any time); so it is checked
 * against the timestamp of the last message, and if that one is not older,
 * the offset is searched by reading timestamps, as it is where the broker
 * says it cannot answer.
 */
static int64
OffsetForTime(int32 partition, int64 ts_ms, int64 answer)
{
	int64		low,
				high,
				offset;
	bool		unsupported = answer == KAFKA_OFFSET_UNKNOWN;

	if (answer >= 0)
		return answer;
	if (!KafkaQueryWatermarks(kc, cfg->topic, partition, &low, &high,
							  10000, errbuf, sizeof(errbuf)))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("%s", errbuf)));
	if (low >= high)
		return high;			/* empty: start at its end */
	if (!SearchOffsetByTime(partition, ts_ms, low, high, &offset))
	{
		/* No timestamps to read: the broker's word is all there is. */
		ereport(LOG,
				(errmsg("pg_streamml: stream \"%s\": %s no message at or after %s in partition %d, whose messages have no timestamps, so it starts at its end (offset " INT64_FORMAT ", skipping " INT64_FORMAT " messages)",
						cfg->name,
						unsupported ? "Kafka cannot look offsets up by time and found" : "Kafka found",
						cfg->start, partition, high, high - low),
				 errhint("A broker that cannot look offsets up by time answers the same way; check the broker if the messages are newer.")));
		return high;
	}
	if (unsupported || offset < high)
		ereport(LOG,
				(errmsg("pg_streamml: stream \"%s\": partition %d starts at offset " INT64_FORMAT " for %s, found by reading message timestamps: %s",
						cfg->name, partition, offset, cfg->start,
						unsupported ? "Kafka cannot look offsets up by time"
						: "Kafka found no message at or after that time, but there are")));
	return offset;
}

/*
 * Resolves where partitions without a stored offset start, and stores it
 * as a real offset (earliest and latest are looked up).  Partitions found
 * after the stream started begin at their earliest offset: everything in
 * them is new.
 */
static void
StoreStartOffsets(int32 *list, int n, bool later)
{
	int64	   *offs = palloc(sizeof(int64) * n);
	bool		is_time;
	int64		pos = later ? KAFKA_OFFSET_BEGINNING
		: ParseStartPosition(cfg->start, &is_time);
	int			i;

	for (i = 0; i < n; i++)
		offs[i] = pos;
	if (!later && is_time)
	{
		if (!KafkaOffsetsForTime(kc, cfg->topic, n, list, pos, offs, 10000,
								 errbuf, sizeof(errbuf)))
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("%s", errbuf)));
		for (i = 0; i < n; i++)
			offs[i] = OffsetForTime(list[i], pos, offs[i]);
		KafkaCloseReader(kc);
	}
	else
	{
		/*
		 * "earliest" too becomes a real offset: a stream that stored the
		 * logical one could not tell, later, that retention removed
		 * messages before it read them.
		 */
		for (i = 0; i < n; i++)
		{
			int64		low,
						high;

			if (!KafkaQueryWatermarks(kc, cfg->topic, list[i], &low, &high,
									  10000, errbuf, sizeof(errbuf)))
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("%s", errbuf)));
			offs[i] = pos == KAFKA_OFFSET_END ? high : low;
		}
	}
	for (i = 0; i < n; i++)
	{
		Datum		a[3];

		a[0] = Int32GetDatum(cfg->id);
		a[1] = Int32GetDatum(list[i]);
		a[2] = Int64GetDatum(offs[i]);
		Exec("INSERT INTO streamml.offsets (stream_id, partition, next_offset) "
			 "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
			 3, (Oid[]) {INT4OID, INT4OID, INT8OID}, a, SPI_OK_INSERT);
	}
}

/*
 * Reads the stored offsets of the given partitions (storing start offsets
 * where there are none) into parts[], in a transaction of its own.
 */
static void
ReadOffsets(int32 *list, int n, bool later)
{
	Datum		id = Int32GetDatum(cfg->id);
	MemoryContext cxt = CurrentMemoryContext;
	int32	   *missing = palloc(sizeof(int32) * (n + 1));
	int			nmissing = 0;
	int			i;
	uint64		r;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	for (i = 0; i < n; i++)
		parts[list[i]].next = PG_INT64_MIN;
	for (int pass = 0; pass < 2; pass++)
	{
		Exec("SELECT partition, next_offset FROM streamml.offsets "
			 "WHERE stream_id OPERATOR(pg_catalog.=) $1",
			 1, (Oid[]) {INT4OID}, &id, SPI_OK_SELECT);
		for (r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			int32		p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r],
														SPI_tuptable->tupdesc, 1, &isnull));

			if (p >= 0 && p < nparts)
				parts[p].next = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
															SPI_tuptable->tupdesc, 2, &isnull));
		}
		if (pass == 1)
			break;
		for (i = 0; i < n; i++)
			if (parts[list[i]].next == PG_INT64_MIN)
				missing[nmissing++] = list[i];
		if (nmissing == 0)
			break;
		StoreStartOffsets(missing, nmissing, later);
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);	/* the commit left TopMemoryContext */
}

/*
 * The partitions this worker holds and their stored offsets, read again
 * from the catalog; returns how many.
 */
static int
StoredPositions(int32 **list, int64 **offs)
{
	int			n = 0;
	int			i;

	*list = palloc(sizeof(int32) * (nparts + 1));
	*offs = palloc(sizeof(int64) * (nparts + 1));
	for (i = 0; i < nparts; i++)
		if (parts[i].mine)
			(*list)[n++] = i;
	ReadOffsets(*list, n, false);
	for (i = 0; i < n; i++)
		(*offs)[i] = parts[(*list)[i]].next;
	return n;
}

/* Assigns all partitions of this worker at their stored offsets. */
static void
AssignAll(void)
{
	int32	   *list;
	int64	   *offs;
	int			n = StoredPositions(&list, &offs);
	int			i;

	if (!KafkaAssign(kc, cfg->topic, n, list, offs, errbuf, sizeof(errbuf)))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("%s", errbuf)));
	for (i = 0; i < n; i++)
		StatsBatch(cfg->id, list[i], offs[i] >= 0 ? offs[i] : -1, -1, 0, 0,
				   MyProcPid);
}

/*
 * Reads the topic's partition count and takes this worker's share; new
 * partitions are assigned from their earliest offset.  Returns false
 * while Kafka cannot be reached.
 */
static bool
RefreshPartitions(bool first)
{
	int			n = KafkaPartitionCount(kc, cfg->topic, 5000, errbuf,
										sizeof(errbuf));
	int			old = nparts;
	int			i;
	bool		grew = false;

	if (n < 0)
	{
		StatsError(cfg->id, -1, errbuf, MyProcPid);
		return false;
	}
	if (streamml_debug_visible_partitions > 0 &&
		n > Max(streamml_debug_visible_partitions, old))
	{
		static int	hidden = 0;

		if (hidden != n - Max(streamml_debug_visible_partitions, old))
			elog(LOG, "pg_streamml: stream \"%s\" sees %d of its %d partitions (streamml.debug_visible_partitions)",
				 cfg->name, Max(streamml_debug_visible_partitions, old), n);
		hidden = n - Max(streamml_debug_visible_partitions, old);
		n = Max(streamml_debug_visible_partitions, old);
	}
	GrowParts(n);
	for (i = old; i < n; i++)
	{
		parts[i].mine = (i % cfg->workers) == args.worker;
		grew |= parts[i].mine;
	}
	if (first || grew)
	{
		if (!first)
			elog(LOG, "pg_streamml: stream \"%s\" has %d partitions now, was %d",
				 cfg->name, n, old);
		if (!first)
		{
			int32	   *list = palloc(sizeof(int32) * n);
			int			k = 0;

			for (i = old; i < n; i++)
				if (parts[i].mine)
					list[k++] = i;
			ReadOffsets(list, k, true);
		}
		AssignAll();
	}
	return true;
}

/*
 * Is this an error of the environment rather than of the data: a lost
 * connection, a transaction rolled back (deadlock, serialization), resources
 * (memory, disk, locks), an operator's cancel or shutdown, a system or
 * internal error, or the set-up of the target (a privilege the owner
 * lacks on a sequence a default uses or on a trigger's function, 42501; a
 * function, table, column, object or schema a trigger or default names
 * that is gone, 42883, 42P01, 42703, 42704, 3F000)?  Those stop the batch,
 * which is retried.  Any other error raised while one message's rows are
 * decoded or written, with the rest of its batch loading (bisection
 * isolates it), is that message's fault, whatever its SQLSTATE: bad data, a
 * constraint, a trigger's RAISE, a value past a limit of the type or of an
 * index (54000), a value of the wrong JSON shape (42804).  A row-level
 * security policy's WITH CHECK raises the SQLSTATE of a missing privilege
 * for one row; so when a policy applies to the owner on a target (rls),
 * 42501 is the message's.  What would fail for every message (the target
 * missing, the owner's INSERT privilege, another session's temporary
 * table) is checked before the first message, so it stops the batch
 * whatever its SQLSTATE.
 */
static bool
IsEnvironmentalError(int sqlerrcode, bool rls)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	if (sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE)
		return !rls;
	if (sqlerrcode == ERRCODE_UNDEFINED_FUNCTION ||
		sqlerrcode == ERRCODE_UNDEFINED_TABLE ||
		sqlerrcode == ERRCODE_UNDEFINED_COLUMN ||
		sqlerrcode == ERRCODE_UNDEFINED_OBJECT ||
		sqlerrcode == ERRCODE_INVALID_SCHEMA_NAME)
		return true;
	return category == ERRCODE_TO_CATEGORY(ERRCODE_CONNECTION_EXCEPTION) ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_INVALID_TRANSACTION_STATE) ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_TRANSACTION_ROLLBACK) ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_INSUFFICIENT_RESOURCES) ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE) ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_OPERATOR_INTERVENTION) ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_SYSTEM_ERROR) ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_CONFIG_FILE_ERROR) ||
		category == ERRCODE_TO_CATEGORY(ERRCODE_INTERNAL_ERROR);
}

/* Whether row-level security applies to the current user on a target. */
static bool
TargetHasRls(TargetState *ts)
{
	return check_enable_rls(ts->relid, InvalidOid, true) == RLS_ENABLED;
}

/* Whether row-level security applies to the current user on any target. */
static bool
AnyTargetHasRls(void)
{
	ListCell   *lc;

	if (TargetHasRls(main_target))
		return true;
	foreach(lc, route_targets)
		if (TargetHasRls(lfirst(lc)))
			return true;
	return false;
}

/* The target of a message (routing), inside the range's subtransaction. */
static TargetState *
TargetOf(KafkaMessage *m)
{
	char	   *v;
	ListCell   *lc;

	TargetState *found = main_target;

	if (route_targets == NIL || !JsonRouteValue(m, cfg->route_field, &v))
		return main_target;
	foreach(lc, route_targets)
	{
		TargetState *ts = lfirst(lc);

		if (strcmp(ts->route_value, v) == 0)
		{
			found = ts;
			break;
		}
	}
	pfree(v);					/* one a message, for the whole range */
	return found;
}

/* Locks a target for the transaction, as an INSERT would. */
static void
LockTarget(TargetState *ts)
{
	LockRelationOid(ts->relid, RowExclusiveLock);
}

/* Applies f to every target. */
static void
ForTargets(void (*f) (TargetState *))
{
	ListCell   *lc;

	f(main_target);
	foreach(lc, route_targets)
		f(lfirst(lc));
}

/* Records a message that could not be loaded. */
static void
DeadLetter(KafkaMessage *m, const char *error)
{
	Datum		v[8];
	char		n[8] = "        ";
	bytea	   *b;
	int			rc;

	if (dead_letter_plan == NULL)
	{
		dead_letter_plan = SPI_prepare("INSERT INTO streamml.dead_letters "
									   "(stream, topic, partition, \"offset\", key, payload, error, owner) "
									   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", 8,
									   (Oid[]) {TEXTOID, TEXTOID, INT4OID, INT8OID,
									   BYTEAOID, BYTEAOID, TEXTOID, OIDOID});
		if (dead_letter_plan == NULL || SPI_keepplan(dead_letter_plan) != 0)
			elog(ERROR, "cannot prepare the dead letter insert");
	}
	v[0] = CStringGetTextDatum(cfg->name);
	v[1] = CStringGetTextDatum(cfg->topic);
	v[2] = Int32GetDatum(m->partition);
	v[3] = Int64GetDatum(m->offset);
	if (m->key)
	{
		b = palloc(VARHDRSZ + m->key_len);
		SET_VARSIZE(b, VARHDRSZ + m->key_len);
		memcpy(VARDATA(b), m->key, m->key_len);
		v[4] = PointerGetDatum(b);
	}
	else
		n[4] = 'n';
	if (m->payload)
	{
		b = palloc(VARHDRSZ + m->payload_len);
		SET_VARSIZE(b, VARHDRSZ + m->payload_len);
		memcpy(VARDATA(b), m->payload, m->payload_len);
		v[5] = PointerGetDatum(b);
	}
	else
		n[5] = 'n';
	v[6] = CStringGetTextDatum(error);
	v[7] = ObjectIdGetDatum(cfg->owner);
	rc = SPI_execute_plan(dead_letter_plan, v, n, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "cannot insert a dead letter: %s", SPI_result_code_string(rc));
	parts[m->partition].rejected++;
}

/*
 * Loads msgs[lo, hi) in a subtransaction as the stream's owner; on an
 * error a message can cause, bisects down to the bad messages.
 *
 * The owner's code (triggers, defaults) runs as a security-restricted
 * operation, like an index expression: its GUC changes are undone at the
 * end of the range, so the worker's own statements never resolve names
 * through a search_path the owner set, and all constraints are made
 * IMMEDIATE, so no deferred trigger is left to fire at commit as the
 * superuser.
 */
static void
LoadRange(KafkaMessage *msgs, int lo, int hi)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;
	volatile bool in_message = false;
	volatile bool rls = false;
	ConstraintsSetStmt *immediate = makeNode(ConstraintsSetStmt);
	Oid			save_user;
	int			save_sec;
	int			i;
	bool		shard;

	(void) CitusBatchFailed();
	GetUserIdAndSecContext(&save_user, &save_sec);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		int			nest;

		SetUserIdAndSecContext(cfg->owner, save_sec |
							   SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		nest = NewGUCNestLevel();
		immediate->constraints = NIL;
		immediate->deferred = false;
		AfterTriggerSetState(immediate);
		ForTargets(LoaderBegin);
		rls = AnyTargetHasRls();
		/* One after-trigger level for every target (see LoaderRangeStart). */
		AfterTriggerBeginQuery();
		ForTargets(LoaderRangeStart);
		/* Errors from here on can come from the messages' rows. */
		in_message = true;
		for (i = lo; i < hi; i++)
			LoaderAddMessage(TargetOf(&msgs[i]), &msgs[i]);
		ForTargets(LoaderRangeFinish);
		AfterTriggerEndQuery(main_target->estate);
		in_message = false;
		ForTargets(LoaderEnd);
		AtEOXact_GUC(false, nest);
		SetUserIdAndSecContext(save_user, save_sec);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		ForTargets(LoaderRangeAbort);
	}
	PG_END_TRY();

	if (edata == NULL)
	{
		for (i = lo; i < hi; i++)
			parts[msgs[i].partition].rows++;
		return;
	}
	/*
	 * An error before the first message (opening the table, the owner's
	 * INSERT privilege) or one of the environment stops the batch.  But a
	 * row a shard of a Citus table refused comes out of the batch's INSERT
	 * ... SELECT as an internal error (Citus drops the shard's SQLSTATE):
	 * that one is bisected like a message's error, and a single message is
	 * then loaded again row by row, whose error keeps its SQLSTATE and is
	 * judged as for a local table.
	 */
	shard = CitusBatchFailed() && edata->sqlerrcode == ERRCODE_INTERNAL_ERROR;
	if (!in_message || (IsEnvironmentalError(edata->sqlerrcode, rls) && !shard))
		ReThrowError(edata);
	if (hi - lo == 1 && shard && !LoaderCitusRowByRow)
	{
		LoaderCitusRowByRow = true;
		PG_TRY();
		{
			LoadRange(msgs, lo, hi);
		}
		PG_FINALLY();
		{
			LoaderCitusRowByRow = false;
		}
		PG_END_TRY();
	}
	else if (hi - lo == 1)
		DeadLetter(&msgs[lo], edata->message);
	else
	{
		int			mid = lo + (hi - lo) / 2;

		LoadRange(msgs, lo, mid);
		LoadRange(msgs, mid, hi);
	}
	FreeErrorData(edata);
}

/* Moves the stored offset of a partition, if nobody moved it meanwhile. */
static void
UpdateOffset(int32 p, int64 next, int64 expected)
{
	Datum		v[4];
	int			rc;

	if (offset_update_plan == NULL)
	{
		offset_update_plan = SPI_prepare("UPDATE streamml.offsets SET next_offset = $3, "
										 "updated_at = pg_catalog.now() "
										 "WHERE stream_id OPERATOR(pg_catalog.=) $1 "
										 "AND partition OPERATOR(pg_catalog.=) $2 "
										 "AND next_offset OPERATOR(pg_catalog.=) $4", 4,
										 (Oid[]) {INT4OID, INT4OID, INT8OID, INT8OID});
		if (offset_update_plan == NULL || SPI_keepplan(offset_update_plan) != 0)
			elog(ERROR, "cannot prepare the offset update");
	}
	v[0] = Int32GetDatum(cfg->id);
	v[1] = Int32GetDatum(p);
	v[2] = Int64GetDatum(next);
	v[3] = Int64GetDatum(expected);
	rc = SPI_execute_plan(offset_update_plan, v, NULL, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "cannot update offsets: %s", SPI_result_code_string(rc));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("stored offset of partition %d of stream \"%s\" changed under the worker",
						p, cfg->name),
				 errdetail("The stream was reset, or another worker loads the partition.")));
}

/*
 * Stops the batch if a target table is gone (dropped while the stream
 * runs): every message would fail, and the error names the table and the
 * way out, which keeps the offsets.
 */
static void
CheckTargetsExist(void)
{
	ListCell   *lc;

	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(cfg->target)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target table %s of stream \"%s\" does not exist",
						target_name, cfg->name),
				 errdetail("The table with OID %u was dropped; the stream keeps its offsets.",
						   cfg->target),
				 errhint("Create the table again and point the stream at it with alter_stream('%s', '{\"target\": \"table\"}').",
						 cfg->name)));
	foreach(lc, cfg->routes)
	{
		RouteSpec  *r = lfirst(lc);

		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(r->target)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("routed table of value \"%s\" of stream \"%s\" does not exist",
							r->value, cfg->name),
					 errdetail("The table with OID %u was dropped; the stream keeps its offsets.",
							   r->target),
					 errhint("Create the table again and give the stream its route again with alter_stream.")));
	}
}

/*
 * Loads one batch: rows, dead letters and offsets in one transaction.
 * bad[] are offsets librdkafka could not read (a failed CRC) and went past:
 * each becomes a dead letter with librdkafka's error and no payload.
 */
static void
ProcessBatch(KafkaMessage *msgs, int n, KafkaMessage *bad, int nbad)
{
	int			i;
	int32	   *cp;
	int64	   *co;
	int			nc = 0;

	/* In the batch's memory: these outlive the transaction. */
	cp = palloc(sizeof(int32) * nparts);
	co = palloc(sizeof(int64) * nparts);
	for (i = 0; i < n + nbad; i++)
	{
		KafkaMessage *m = i < n ? &msgs[i] : &bad[i - n];
		PartState  *ps = &parts[m->partition];

		ps->batch_next = Max(ps->batch_next, m->offset + 1);
		ps->rows = ps->rejected = 0;
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "loading a batch");
	/*
	 * Lock the targets for the whole transaction first: DDL can change them
	 * no more, and the invalidations it sent before arrive now, so the
	 * mappings are planned again before anything is decoded with them.
	 */
	ForTargets(LockTarget);
	CheckTargetsExist();
	if (relcache_changed)
		PlanTargets();

	/*
	 * What would fail for every message fails here, once, outside the
	 * ranges' subtransactions: the batch is retried, never dead-lettered.
	 */
	ForTargets(LoaderCheck);
	for (i = 0; i < nbad; i++)
		DeadLetter(&bad[i], bad[i].errstr);
	if (n > 0)
		LoadRange(msgs, 0, n);

	for (i = 0; i < nparts; i++)
	{
		PartState  *ps = &parts[i];

		if (ps->batch_next == 0)
			continue;
		UpdateOffset(i, ps->batch_next, ps->next);
		cp[nc] = i;
		co[nc++] = ps->batch_next;
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	/* Committed: now the batch counts, and Kafka may hear about it. */
	for (i = 0; i < nc; i++)
	{
		PartState  *ps = &parts[cp[i]];
		int64		low,
					high = -1;

		ps->next = ps->batch_next;
		ps->batch_next = 0;
		if (!KafkaWatermarks(kc, cfg->topic, cp[i], &low, &high))
			high = -1;
		StatsBatch(cfg->id, cp[i], ps->next, high, ps->rows, ps->rejected,
				   MyProcPid);
	}
	if (nc > 0)
		KafkaCommitAsync(kc, cfg->topic, nc, cp, co);
}

/*
 * Kafka said a partition's offset is out of range: retention removed the
 * messages there before the stream read them, or the offset is beyond the
 * end (the topic was deleted and created again, its log truncated, or the
 * offset was stored by hand).  librdkafka stopped fetching the partition
 * (auto.offset.reset is "error").  Following on_offset_out_of_range, the
 * stream either goes on from the earliest offset Kafka has, counting the
 * messages lost in streamml.offsets in the transaction that moves the
 * offset, or stops the partition with an error that stays in stream_stats
 * while the cause does (it is found again after any restart).  Returns
 * true when the partition must be positioned again.
 */
static bool
HandleOutOfRange(int32 p)
{
	PartState  *ps = &parts[p];
	int64		o = ps->out_of_range;
	int64		low,
				high,
				lost;
	Datum		a[5];
	bool		moved;
	MemoryContext cxt = CurrentMemoryContext;

	ps->out_of_range = -1;
	if (o != ps->next)
		return true;			/* stale: ask Kafka again from the catalog */
	if (!KafkaQueryWatermarks(kc, cfg->topic, p, &low, &high, 10000,
							  errbuf, sizeof(errbuf)))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("stream \"%s\": %s", cfg->name, errbuf)));
	if (o >= low && o <= high)
		return true;			/* back in range (a leader change) */
	if (cfg->fail_on_out_of_range)
	{
		char	   *msg;

		if (o < low)
			msg = psprintf("offset " INT64_FORMAT " of partition %d is no longer in Kafka, whose log now starts at offset " INT64_FORMAT ": " INT64_FORMAT " messages were removed before the stream read them; stopped (on_offset_out_of_range \"fail\")",
						   o, p, low, low - o);
		else
			msg = psprintf("offset " INT64_FORMAT " of partition %d is beyond its end, offset " INT64_FORMAT ": stopped (on_offset_out_of_range \"fail\")",
						   o, p, high);
		if (ps->failed_at != o)
			ereport(WARNING,
					(errmsg("pg_streamml: stream \"%s\": %s", cfg->name, msg),
					 errhint("Set the option on_offset_out_of_range to \"earliest\" to go on from offset " INT64_FORMAT " (what is lost is counted in stream_stats), or move the partition with reset_stream.",
							 low)));
		ps->failed_at = o;
		StatsBatch(cfg->id, p, o, high, 0, 0, MyProcPid);
		StatsError(cfg->id, p, msg, MyProcPid);
		return false;
	}

	lost = o < low ? low - o : 0;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	a[0] = Int32GetDatum(cfg->id);
	a[1] = Int32GetDatum(p);
	a[2] = Int64GetDatum(low);
	a[3] = Int64GetDatum(o);
	a[4] = Int64GetDatum(lost);
	Exec("UPDATE streamml.offsets SET next_offset = $3, updated_at = pg_catalog.now(), "
		 "messages_lost = messages_lost OPERATOR(pg_catalog.+) $5, "
		 "last_gap_start = CASE WHEN $5 OPERATOR(pg_catalog.>) 0 THEN $4 ELSE last_gap_start END, "
		 "last_gap_end = CASE WHEN $5 OPERATOR(pg_catalog.>) 0 THEN $3 ELSE last_gap_end END "
		 "WHERE stream_id OPERATOR(pg_catalog.=) $1 AND partition OPERATOR(pg_catalog.=) $2 "
		 "AND next_offset OPERATOR(pg_catalog.=) $4",
		 5, (Oid[]) {INT4OID, INT4OID, INT8OID, INT8OID, INT8OID}, a,
		 SPI_OK_UPDATE);
	moved = SPI_processed == 1;
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	if (!moved)
		return true;			/* reset meanwhile: the catalog decides */
	if (lost > 0)
		ereport(WARNING,
				(errmsg("pg_streamml: stream \"%s\": messages at offsets " INT64_FORMAT " to " INT64_FORMAT " of partition %d were removed by Kafka before the stream read them",
						cfg->name, o, low - 1, p),
				 errdetail("The stored offset was " INT64_FORMAT " and the partition now starts at offset " INT64_FORMAT "; " INT64_FORMAT " messages are lost, as stream_stats.messages_lost counts.  The stream goes on from offset " INT64_FORMAT " (on_offset_out_of_range \"earliest\").",
						   o, low, lost, low),
				 errhint("Retention removes messages a stream has not read when it is stopped or behind for longer than the topic's retention.")));
	else
		ereport(WARNING,
				(errmsg("pg_streamml: stream \"%s\": stored offset " INT64_FORMAT " of partition %d is beyond the end of the partition, offset " INT64_FORMAT,
						cfg->name, o, p, high),
				 errdetail("The topic was deleted and created again, or its log was truncated.  The stream starts the partition over from its earliest offset, " INT64_FORMAT " (on_offset_out_of_range \"earliest\").",
						   low)));
	ps->next = low;
	ps->failed_at = -1;
	StatsError(cfg->id, p, NULL, MyProcPid);
	StatsBatch(cfg->id, p, low, high, 0, 0, MyProcPid);
	return true;
}

/*
 * Loads the batch (msgs[0, kept) and bad[0, nbad)) and then answers the
 * offsets Kafka said are out of range.  On an error, shows it, logs it and
 * returns false: the caller goes back to the stored offsets.
 */
static bool
RunBatch(int kept, bool *reposition, MemoryContext batch_cxt)
{
	volatile bool ok = true;
	volatile bool again = false;

	PG_TRY();
	{
		if (kept > 0 || nbad > 0)
			ProcessBatch(msgs, kept, bad, nbad);
		for (int i = 0; i < nparts; i++)
			if (parts[i].out_of_range >= 0 && HandleOutOfRange(i))
				again = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(batch_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		StatsError(cfg->id, -1, edata->message, MyProcPid);
		ereport(LOG,
				(errmsg("pg_streamml: stream \"%s\" could not load a batch: %s",
						cfg->name, edata->message)));
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(batch_cxt);
	*reposition = again;
	return ok;
}

/* At start-up: a dropped target shows in stream_stats, then the worker exits. */
static void
CheckTargetsAtStart(void)
{
	PG_TRY();
	{
		CheckTargetsExist();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		StatsError(cfg->id, -1, edata->message, MyProcPid);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * After a failed batch: forget its progress and go back to the stored
 * offsets, so the same messages are read again.  In group mode the worker
 * seeks within the assignment the group gave it, and stays a member; if
 * even that fails it exits, and the launcher starts a fresh member.
 */
static void
Rewind(void)
{
	int32	   *list;
	int64	   *offs;
	int			n;
	int			i;

	for (i = 0; i < nparts; i++)
	{
		parts[i].batch_next = 0;
		parts[i].out_of_range = -1;
	}
	CheckGeneration();
	if (cfg->group == NULL)
	{
		AssignAll();
		return;
	}
	if (HandleRebalance())
		return;					/* just assigned at the stored offsets */
	n = StoredPositions(&list, &offs);
	if (n > 0 && !KafkaSeek(kc, cfg->topic, n, list, offs, 10000, errbuf,
							sizeof(errbuf)))
	{
		elog(LOG, "pg_streamml: stream \"%s\": %s; leaving the group",
			 cfg->name, errbuf);
		proc_exit(1);
	}
}

/*
 * Answers a group rebalance with the offsets of the catalog; returns true
 * when it assigned partitions (which positions them at those offsets).
 */
static bool
HandleRebalance(void)
{
	int32	   *list;
	int			n,
				i;
	KafkaRebalance r = KafkaPollRebalance(kc, &list, &n);
	int64	   *offs;

	if (r == KAFKA_REBALANCE_NONE)
		return false;
	if (r == KAFKA_REBALANCE_REVOKE)
	{
		for (i = 0; i < nparts; i++)
			parts[i].mine = false;
		KafkaAnswerRebalance(kc, r, cfg->topic, 0, NULL, NULL);
		return false;
	}
	for (i = 0; i < n; i++)
		GrowParts(list[i] + 1);
	for (i = 0; i < nparts; i++)
		parts[i].mine = false;
	for (i = 0; i < n; i++)
		parts[list[i]].mine = true;
	/*
	 * stream_stats shows the partitions the stream holds now.  The eager
	 * protocol revokes every partition before each assignment, so the ones
	 * kept keep their counters: only the others are forgotten.
	 */
	for (i = 0; i < nparts; i++)
		if (!parts[i].mine)
			StatsForgetPartition(cfg->id, i);
	ReadOffsets(list, n, false);
	offs = palloc(sizeof(int64) * (n + 1));
	for (i = 0; i < n; i++)
		offs[i] = parts[list[i]].next;
	KafkaAnswerRebalance(kc, r, cfg->topic, n, list, offs);
	elog(LOG, "pg_streamml: stream \"%s\" was assigned %d partitions by group \"%s\"",
		 cfg->name, n, cfg->group);
	return true;
}

/*
 * A partition idle for a second with lag: if nothing readable is left from
 * its stored offset (transaction markers, aborted messages: records that a
 * read_committed consumer never receives), store the offset where the
 * readable part ends, as Kafka's own consumers commit, so that lag is 0
 * after a transaction and not 1 forever.  Asks once per place (a message
 * still on its way answers "a message is there", and nothing moves).
 */
static void
SkipToReadableEnd(int32 p, int64 high)
{
	int64		end;
	Datum		a[4];
	bool		moved;
	MemoryContext cxt = CurrentMemoryContext;

	if (!KafkaReadableEnd(kc, cfg->topic, p, parts[p].next, 2000, &end,
						  errbuf, sizeof(errbuf)))
	{
		errbuf[0] = '\0';
		KafkaCloseReader(kc);
		return;
	}
	KafkaCloseReader(kc);
	if (end <= parts[p].next)
		return;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	a[0] = Int32GetDatum(cfg->id);
	a[1] = Int32GetDatum(p);
	a[2] = Int64GetDatum(end);
	a[3] = Int64GetDatum(parts[p].next);
	Exec("UPDATE streamml.offsets SET next_offset = $3, updated_at = pg_catalog.now() "
		 "WHERE stream_id OPERATOR(pg_catalog.=) $1 AND partition OPERATOR(pg_catalog.=) $2 "
		 "AND next_offset OPERATOR(pg_catalog.=) $4",
		 4, (Oid[]) {INT4OID, INT4OID, INT8OID, INT8OID}, a, SPI_OK_UPDATE);
	moved = SPI_processed == 1;
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	if (!moved)
		return;
	elog(DEBUG1, "pg_streamml: stream \"%s\": partition %d has nothing readable from offset " INT64_FORMAT " to " INT64_FORMAT ", moved past it",
		 cfg->name, p, parts[p].next, end);
	parts[p].next = end;
	StatsBatch(cfg->id, p, end, high, 0, 0, MyProcPid);
	KafkaCommitAsync(kc, cfg->topic, 1, &p, &end);
}

/*
 * Shows the position and high watermark of every partition of this worker
 * in stream_stats, from librdkafka's cached watermarks (no round trip), so
 * that lag is current for partitions that get no batches.  A partition
 * still at "earliest" shows the low watermark, where reading will begin.
 */
static void
ReportPositions(void)
{
	int			i;

	for (i = 0; i < nparts; i++)
	{
		int64		low = -1,
					high = -1;

		if (!parts[i].mine || !KafkaWatermarks(kc, cfg->topic, i, &low, &high))
			continue;
		/* librdkafka knows the low watermark only with statistics on */
		if (parts[i].next < 0 && low < 0 && high == 0)
			low = 0;			/* an empty partition */
		StatsBatch(cfg->id, i, parts[i].next >= 0 ? parts[i].next : low,
				   high, 0, 0, MyProcPid);
		if (parts[i].next >= 0 && high > parts[i].next &&
			parts[i].failed_at < 0 && !parts[i].stalled &&
			parts[i].seen_next == parts[i].next &&
			parts[i].seen_high == high && !parts[i].probed)
		{
			parts[i].probed = true;
			SkipToReadableEnd(i, high);
		}
		else if (parts[i].seen_next != parts[i].next ||
				 parts[i].seen_high != high)
		{
			parts[i].seen_next = parts[i].next;
			parts[i].seen_high = high;
			parts[i].probed = false;
		}
	}
}

/* Sleeps on the latch, waking for signals and postmaster death. */
static void
Nap(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/* Checks signals, the postmaster, the launcher and the configuration. */
static void
Interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
	if (!PostmasterIsAlive())
		proc_exit(1);
	if (StatsGetLauncherPid() != args.launcher_pid)
		proc_exit(0);			/* a new launcher owns the workers now */
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/*
 * At exit, gives back the messages still held (the worker was told to stop
 * in the middle of a batch): rd_kafka_destroy() waits for them forever.
 * Then closes the client only where that helps someone: a member of a
 * consumer group leaves it, so that its partitions move at once rather than
 * after the session timeout.  Otherwise the client dies with the process:
 * a worker stuck joining librdkafka's threads after a kill -9 of the
 * postmaster would keep the shared memory attached, so the server could not
 * restart.  Nothing needs flushing: the offsets live in the database.
 */
static void
CloseClient(int code, Datum arg)
{
	int			i;

	for (i = 0; i < nmsgs; i++)
		KafkaMessageFree(&msgs[i]);
	for (i = 0; i < nbad; i++)
		KafkaMessageFree(&bad[i]);
	if (kc && cfg && cfg->group && PostmasterIsAlive())
		KafkaClientDestroy(kc);
	kc = NULL;
}

/* Entry point of a consumer worker: arg is the stream id. */
void
StreamConsumerMain(Datum arg)
{
	MemoryContext batch_cxt;
	TimestampTz last_refresh;
	volatile TimestampTz last_report = 0;
	volatile long backoff = 1000;
	volatile int have_error = 0;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(ConsumerArgs));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(args.database, InvalidOid, 0);
	pgstat_report_appname("pg_streamml consumer");

	LoadStream();
	/* pg_stat_activity tells the streams' workers apart. */
	pgstat_report_appname(psprintf("pg_streamml %s/%d", cfg->name, args.worker));
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		char	   *rel = get_rel_name(cfg->target);

		if (rel)
			target_name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(cfg->target)),
													 rel);
		else
			target_name = psprintf("with OID %u", cfg->target);
		MemoryContextSwitchTo(old);
	}
	CheckTargetsAtStart();
	PlanTargets();
	CommitTransactionCommand();
	CacheRegisterRelcacheCallback(RelcacheCallback, (Datum) 0);
	elog(LOG, "pg_streamml: consumer %d of stream \"%s\" started",
		 args.worker, cfg->name);

	{
		char	   *group = cfg->group;

		if (group == NULL)
			group = psprintf("pg_streamml.%s", cfg->name);
		kc = KafkaConsumerCreate(cfg->brokers, cfg->kafka_props, group,
								 cfg->group != NULL, errbuf, sizeof(errbuf));
	}
	if (kc)
		errbuf[0] = '\0';		/* librdkafka leaves notes there on success */
	if (kc == NULL)
	{
		StatsError(cfg->id, -1, errbuf, MyProcPid);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("stream \"%s\": %s", cfg->name, errbuf)));
	}
	before_shmem_exit(CloseClient, (Datum) 0);

	/* Until Kafka answers, show why and try again. */
	if (cfg->group)
	{
		if (!KafkaSubscribe(kc, cfg->topic, errbuf, sizeof(errbuf)))
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("stream \"%s\": %s", cfg->name, errbuf)));
	}
	else
	{
		while (!RefreshPartitions(true))
		{
			Interrupts();
			Nap(backoff);
			backoff = Min(backoff * 2, 10000);
		}
	}
	StatsError(cfg->id, -1, NULL, MyProcPid);
	last_refresh = GetCurrentTimestamp();

	msgs = MemoryContextAllocZero(TopMemoryContext, sizeof(KafkaMessage) * cfg->batch_size);
	nmsgs = cfg->batch_size;
	bad = MemoryContextAllocZero(TopMemoryContext, sizeof(KafkaMessage) * cfg->batch_size);
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "pg_streamml batch",
									  ALLOCSET_DEFAULT_SIZES);
	backoff = 1000;
	for (;;)
	{
		int			n = 0;
		int			kept = 0;
		TimestampTz first = 0;
		int			i;
		bool		oor;

		Interrupts();
		MemoryContextReset(batch_cxt);
		MemoryContextSwitchTo(batch_cxt);

		/* Collect a batch: batch_size messages or flush_ms after the first. */
		while (n < cfg->batch_size)
		{
			int			wait = 100;
			int			got;

			if (n > 0)
			{
				long		secs;
				int			usecs;

				TimestampDifference(first, GetCurrentTimestamp(), &secs, &usecs);
				wait = cfg->flush_ms - (int) (secs * 1000 + usecs / 1000);
				if (wait <= 0)
					break;
				/* Short waits: a SIGTERM does not wake librdkafka. */
				wait = Min(wait, 100);
			}
			got = KafkaConsumeBatch(kc, wait, msgs + n,
									Min(cfg->batch_size - n, 1024),
									errbuf, sizeof(errbuf));
			if (got < 0 || errbuf[0])
			{
				StatsError(cfg->id, -1, errbuf, MyProcPid);
				errbuf[0] = '\0';
				have_error = 1;
				got = Max(got, 0);
			}
			if (n == 0 && got > 0)
				first = GetCurrentTimestamp();
			n += got;
			if (n == 0)
				break;			/* idle: look at signals again */
			CHECK_FOR_INTERRUPTS();
		}
		KafkaServe(kc);
		if (KafkaTakeError(kc, errbuf, sizeof(errbuf)))
		{
			StatsError(cfg->id, -1, errbuf, MyProcPid);
			have_error = 1;
		}
		errbuf[0] = '\0';
		if (cfg->group)
			HandleRebalance();

		/*
		 * Drop what the catalog says is loaded already, what is not ours,
		 * and what this batch has already: after a rebalance gave a
		 * partition back, the same offsets can come twice in one batch.
		 * What librdkafka says instead of a message is never dropped
		 * unseen: an offset out of range is handled after the batch, a
		 * message too large or a failed fetch shows on the partition
		 * (librdkafka tries again at the same offset), an offset that
		 * failed its CRC becomes a dead letter.
		 */
		for (i = 0; i < nparts; i++)
			parts[i].batch_next = parts[i].next;
		oor = false;
		nbad = 0;
		for (i = 0; i < n; i++)
		{
			int32		p = msgs[i].partition;

			if (p >= nparts || !parts[p].mine)
				KafkaMessageFree(&msgs[i]);
			else if (msgs[i].error == KAFKA_MSG_OUT_OF_RANGE)
			{
				parts[p].out_of_range = msgs[i].offset;
				oor = true;
				KafkaMessageFree(&msgs[i]);
			}
			else if (parts[p].batch_next >= 0 && msgs[i].offset < parts[p].batch_next)
				KafkaMessageFree(&msgs[i]);
			else if (msgs[i].error == KAFKA_MSG_TOO_LARGE ||
					 msgs[i].error == KAFKA_MSG_FETCH_ERROR)
			{
				char	   *msg;

				if (msgs[i].error == KAFKA_MSG_TOO_LARGE)
					msg = psprintf("message at offset " INT64_FORMAT " of partition %d is too large to fetch: raise the kafka properties \"receive.message.max.bytes\" and \"fetch.max.bytes\" with alter_stream (%s)",
								   msgs[i].offset, p, msgs[i].errstr);
				else
					msg = psprintf("partition %d at offset " INT64_FORMAT ": %s",
								   p, msgs[i].offset, msgs[i].errstr);
				if (!parts[p].stalled)
					ereport(WARNING,
							(errmsg("pg_streamml: stream \"%s\": %s", cfg->name, msg)));
				parts[p].stalled = true;
				StatsError(cfg->id, p, msg, MyProcPid);
				KafkaMessageFree(&msgs[i]);
			}
			else
			{
				parts[p].batch_next = msgs[i].offset + 1;
				if (parts[p].stalled)
				{
					parts[p].stalled = false;
					StatsError(cfg->id, p, NULL, MyProcPid);
				}
				if (msgs[i].error == KAFKA_MSG_CORRUPT)
				{
					bad[nbad++] = msgs[i];
					msgs[i].handle = NULL;	/* held once, in bad */
				}
				else if (kept != i)
				{
					msgs[kept] = msgs[i];
					msgs[i].handle = NULL;	/* held once, at kept */
					kept++;
				}
				else
					kept++;
			}
		}
		for (i = 0; i < nparts; i++)
			parts[i].batch_next = 0;

		if (kept > 0 || nbad > 0 || oor)
		{
			bool		reposition = false;
			bool		failed = !RunBatch(kept, &reposition, batch_cxt);

			for (i = 0; i < kept; i++)
				KafkaMessageFree(&msgs[i]);
			for (i = 0; i < nbad; i++)
				KafkaMessageFree(&bad[i]);
			nbad = 0;
			if (failed)
			{
				Nap(backoff);
				backoff = Min(backoff * 2, 30000);
				Rewind();
				continue;
			}
			if (reposition)
				Rewind();
			backoff = 1000;
			if (have_error && (kept > 0 || nbad > 0))
			{
				StatsClearError(cfg->id, MyProcPid);
				have_error = 0;
			}
		}

		if (n == 0 &&
			TimestampDifferenceExceeds(last_report, GetCurrentTimestamp(), 1000))
		{
			ReportPositions();
			last_report = GetCurrentTimestamp();
		}

		/* New partitions appear without a restart. */
		if (cfg->group == NULL &&
			TimestampDifferenceExceeds(last_refresh, GetCurrentTimestamp(),
									   cfg->metadata_refresh_ms))
		{
			if (RefreshPartitions(false) && have_error && n == 0)
			{
				/* Kafka answers again; an idle stream shows no outage. */
				StatsClearError(cfg->id, MyProcPid);
				have_error = 0;
			}
			last_refresh = GetCurrentTimestamp();
		}
	}
}
