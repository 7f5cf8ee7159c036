/*
 * monitorworker.c
 *		The monitor worker: one background worker per database with
 *		monitors, which retrains the models whose monitors asked for it
 *		and checks the 'data' and 'rows' monitors on their schedule.
 *
 * Starting.  create_monitor, and an outcome batch whose monitor asks for a
 * retrain (or the first batch a backend feeds to a monitor), register the
 * worker at commit (a dynamic background worker, "pg_streamml monitor").
 * At server start the stream launcher of each database (launcher.c, which
 * the supervisor starts in every database it serves) registers it when
 * the database has monitors (MonitorWorkerStartIfMonitors), so a clean
 * restart resumes the checks without an outcome batch.
 * A worker that finds another one serving its database (a session
 * advisory lock) leaves at once, so asking twice is harmless.  It leaves
 * too when the database has no monitor left.  It is registered with a
 * restart time, so after a crash (kill -9 of any backend) the postmaster
 * starts it again with the server.
 *
 * Retraining.  A requested retrain runs in two transactions:
 *	1. records retrain_started and marks the monitor (retrain_started_at),
 *	   committed at once, so that an interrupted retrain is visible;
 *	2. runs streamml.retrain as the model's owner (RunAsOwner), with the
 *	   options "deploy": "if_better" and "test_fraction" (of the newest
 *	   rows by "order_by") set for this run only (the model's stored
 *	   options are put back in the same transaction), then records
 *	   retrain_finished and deployed or not_deployed, both with the two
 *	   holdout scores that were compared, and clears the mark.
 * An error in 2 rolls it back and records monitor_error; a crash in 2
 * leaves retrain_started without retrain_finished, and the mark, which the
 * next worker finds at its start: it records monitor_error ("interrupted")
 * and asks for the retrain again.  One worker runs one retrain at a time,
 * so a model is never retrained twice at once by its monitors, and the
 * retrain, in a transaction of its own, never holds a lock the loaders or
 * the scorers wait for (it reads the source; it writes the model's rows).
 *
 * Rollback checks.  A monitor with option "rollback" compares a newly
 * deployed version's live loss with the version it replaced, once the new
 * one has enough labelled outcomes, and deploys the old one again when
 * the new one is worse by a one-sided Welch test (CheckRollback).  It
 * reads the bucket sums of the outcome trackers, O(buckets), every round
 * until it has decided, and never trains: a rollback is a deploy.
 *
 * Checks.  'rows' counts the source's rows newer (by order_by) than the
 * newest row of the model's last training (as retrain's min_new_rows
 * does); 'data' computes streamml.psi (or streamml.ks_statistic and its
 * asymptotic p-value) of each feature over the newest "window" rows of the
 * source against the deployed version's training bins.  Both run the
 * source's SQL as the model's owner.  A check that fires outside the
 * monitor's cooldown records an event (new_rows, drift_detected) and acts.
 */
#include "postgres.h"

#include "storage/lock.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "ml/ml.h"
#include "ml/train.h"
#include "monitor/monitor.h"
#include "options.h"
#include "pg_streamml.h"

/* How often the worker looks for work (ms). */
#define MONITOR_NAPTIME_MS 1000

/*
 * The lock that makes the worker one per database: an advisory lock tag
 * whose fourth field SQL cannot make (pg_advisory_lock uses 1 and 2,
 * feature tables 3), so no session can take it and keep the worker out.
 */
#define MONITOR_LOCK_KIND 4

PGDLLEXPORT void MonitorWorkerMain(Datum arg);

static void AppendScore(StringInfo b, const char *key, double v);

static bool start_pending = false;
static bool start_registered = false;
static bool am_worker = false;

/* ---- starting the worker ---- */

/* Registers the worker of this database (it leaves if one runs). */
static void
StartWorker(void)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	strlcpy(w.bgw_library_name, "pg_streamml", BGW_MAXLEN);
	strlcpy(w.bgw_function_name, "MonitorWorkerMain", BGW_MAXLEN);
	snprintf(w.bgw_name, BGW_MAXLEN, "pg_streamml monitor %u", MyDatabaseId);
	strlcpy(w.bgw_type, "pg_streamml monitor", BGW_MAXLEN);
	w.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	w.bgw_notify_pid = 0;
	if (!RegisterDynamicBackgroundWorker(&w, NULL))
		ereport(LOG,
				(errmsg("pg_streamml could not start the monitor worker of database %u: no free worker slot",
						MyDatabaseId),
				 errhint("Raise max_worker_processes.")));
}

/* The transaction callback: starts the worker once the change is committed. */
static void
StartAtCommit(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && start_pending)
	{
		start_pending = false;
		StartWorker();
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		start_pending = false;
}

/* Asks for the monitor worker of this database at commit. */
void
MonitorWorkerStartAtCommit(void)
{
	if (am_worker)
		return;
	if (!start_registered)
	{
		RegisterXactCallback(StartAtCommit, NULL);
		start_registered = true;
	}
	start_pending = true;
}

/*
 * At server start (the stream launcher of the database calls it, outside a
 * transaction): starts the monitor worker when the database has the
 * extension and at least one monitor, so that 'data', 'rows' and rollback
 * checks resume after a clean restart without waiting for an outcome
 * batch or create_monitor.  Errors (an extension being dropped meanwhile)
 * are logged, never raised: the launcher's own work comes first.
 */
void
MonitorWorkerStartIfMonitors(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool wanted = false;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_execute("SELECT 1 FROM pg_catalog.pg_extension "
						"WHERE extname OPERATOR(pg_catalog.=) 'pg_streamml'",
						true, 0) == SPI_OK_SELECT && SPI_processed == 1 &&
			SPI_execute("SELECT 1 FROM streamml.monitors_catalog LIMIT 1",
						true, 0) == SPI_OK_SELECT && SPI_processed == 1)
			wanted = true;
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG,
				(errmsg("pg_streamml could not look for monitors at start: %s",
						e->message)));
		FreeErrorData(e);
		wanted = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	if (wanted)
		StartWorker();
}

/* ---- small helpers ---- */

static char *
Text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

static Datum
Value(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col,
						 isnull);
}

/* Starts a transaction with SPI and a snapshot. */
static void
Begin(const char *what)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

/* Commits what Begin started. */
static void
End(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* A JSON object {"message": ..., "during": ...} of an error. */
static char *
ErrorJson(ErrorData *e, const char *during)
{
	StringInfoData b;

	initStringInfo(&b);
	appendStringInfoString(&b, "{\"message\": ");
	escape_json(&b, e->message ? e->message : "?");
	if (e->detail)
	{
		appendStringInfoString(&b, ", \"detail\": ");
		escape_json(&b, e->detail);
	}
	appendStringInfoString(&b, ", \"sqlstate\": ");
	escape_json(&b, unpack_sql_state(e->sqlerrcode));
	appendStringInfoString(&b, ", \"during\": ");
	escape_json(&b, during);
	appendStringInfoChar(&b, '}');
	return b.data;
}

/* What RunFix runs in its subtransaction. */
typedef struct FixArgs
{
	const char *fix;
	Datum		arg;
} FixArgs;

/* Runs a fix statement with $1. */
static void
FixStatement(void *p)
{
	FixArgs    *a = p;

	CatalogExecute(a->fix, 1, (Oid[]) {INT4OID}, &a->arg, NULL, SPI_OK_UPDATE);
}

/*
 * Runs RecordFailure's fix of monitor name ($1 = arg) in a subtransaction:
 * one that fails too is logged, and the worker goes on with the other
 * monitors (the error of one monitor never stops the worker).
 */
static void
RunFix(const char *name, const char *fix, Datum arg)
{
	FixArgs		a = {fix, arg};
	ErrorData  *e = TrySubtransaction(FixStatement, &a);

	if (e != NULL)
	{
		ereport(LOG,
				(errmsg("pg_streamml monitor \"%s\": could not record the state after its error: %s",
						name, e->message)));
		FreeErrorData(e);
	}
}

/*
 * After an error in a transaction of the worker: rolls it back and
 * records monitor_error for monitor id, then runs fix (an UPDATE of the
 * monitor with $1 = id) in a new transaction.
 */
static void
RecordFailure(MemoryContext cxt, int32 id, const char *during, const char *fix)
{
	ErrorData  *e;
	Datum		arg = Int32GetDatum(id);

	MemoryContextSwitchTo(cxt);
	e = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	Begin("pg_streamml monitor: recording an error");
	CatalogExecute("SELECT model, name, owner FROM streamml.monitors_catalog "
				   "WHERE id OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		bool		isnull;
		char	   *model = Text(0, 1);
		char	   *name = Text(0, 2);
		Oid			owner = DatumGetObjectId(Value(0, 3, &isnull));

		char	   *details = ErrorJson(e, during);

		ereport(LOG,
				(errmsg("pg_streamml monitor \"%s\": %s failed: %s", name, during,
						e->message)));
		/*
		 * A check that fails the same way at every interval (a dropped
		 * column, say) records its error once: while the monitor is
		 * failing (no check succeeded since its last error), an error the
		 * same as its last event is not recorded again.  A monitor made
		 * anew, or one that recovered, records it.
		 */
		if (CatalogExecute("SELECT 1 FROM streamml.monitors_catalog c, LATERAL "
						   "(SELECT e.event, e.details FROM streamml.model_events e "
						   "WHERE e.model OPERATOR(pg_catalog.=) $1 AND e.monitor OPERATOR(pg_catalog.=) $2 "
						   "ORDER BY e.id DESC LIMIT 1) l "
						   "WHERE c.id OPERATOR(pg_catalog.=) $4 AND c.failing "
						   "AND l.event OPERATOR(pg_catalog.=) 'monitor_error' "
						   "AND l.details OPERATOR(pg_catalog.=) $3::jsonb",
						   4, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, INT4OID},
						   (Datum[]) {CStringGetTextDatum(model), CStringGetTextDatum(name),
							   CStringGetTextDatum(details), arg},
						   NULL, SPI_OK_SELECT) == 0)
			MonitorEvent(model, 0, name, "monitor_error", details, owner);
		CatalogExecute("UPDATE streamml.monitors_catalog SET failing = true "
					   "WHERE id OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_UPDATE);
		RunFix(name, fix, arg);
	}
	End();
	FreeErrorData(e);
}

/* ---- acting ---- */

/*
 * The action of monitor id after a check fired (SPI connected, the
 * monitor's row locked): notify or mark a retrain; cooldown starts.  A
 * notification names the deployed version the check read, as the error
 * monitors' and rollbacks' do.
 */
static void
Act(int32 id, const char *name, const char *model, int32 version,
	const char *action, Jsonb *options, const char *event, const char *details)
{
	Datum		arg = Int32GetDatum(id);

	if (strcmp(action, "notify") == 0)
	{
		StringInfoData p;

		initStringInfo(&p);
		appendStringInfoString(&p, "{\"monitor\": ");
		escape_json(&p, name);
		appendStringInfoString(&p, ", \"model\": ");
		escape_json(&p, model);
		appendStringInfo(&p, ", \"version\": %d, \"event\": \"%s\", \"details\": %s}",
						 version, event, details);
		MonitorNotify(OptionString(options, "channel", "streamml_monitors"), p.data);
	}
	CatalogExecute("UPDATE streamml.monitors_catalog SET "
				   "cooldown_until = pg_catalog.now() OPERATOR(pg_catalog.+) cooldown, "
				   "last_action = action, last_action_at = pg_catalog.now(), "
				   "retrain_requested_at = CASE WHEN action OPERATOR(pg_catalog.=) 'retrain' "
				   "THEN pg_catalog.now() ELSE retrain_requested_at END "
				   "WHERE id OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_UPDATE);
}

/* ---- checks of 'rows' and 'data' monitors ---- */

/* What a check runs as the model's owner. */
typedef struct CheckArgs
{
	const char *sql;
	int			nargs;
	Oid		   *types;
	Datum	   *values;
	/* when set, sql gets WHERE order_by is above newer_last */
	const char *newer_from;
	const char *newer_order_by;
	const char *newer_last;
	/* the source, order_by and feature columns the check reads (probed) */
	const char *probe_source;
	const char *probe_order_by;
	ArrayType  *probe_columns;
	/* results */
	int64		count;
	int			nvalues;
	double	   *results;
} CheckArgs;

/* Runs a check's query (one row: count, then numbers) as the owner. */
static void
RunCheck(void *arg)
{
	CheckArgs  *a = arg;
	bool		isnull;

	MonitorProbeSource(a->probe_source, a->probe_order_by, a->probe_columns);
	if (a->newer_last != NULL)
		a->sql = psprintf("%s WHERE %s", a->sql,
						  NewerRowsCondition(a->newer_from, a->newer_order_by,
											 a->newer_last));
	if (SPI_execute_with_args(a->sql, a->nargs, a->types, a->values, NULL,
							  true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "a monitor check returned no row");
	a->count = DatumGetInt64(Value(0, 1, &isnull));
	a->nvalues = SPI_tuptable->tupdesc->natts - 1;
	a->results = palloc(sizeof(double) * Max(a->nvalues, 1));
	for (int i = 0; i < a->nvalues; i++)
	{
		Datum		d = Value(0, i + 2, &isnull);

		a->results[i] = isnull ? NAN : DatumGetFloat8(d);
	}
}

/*
 * The asymptotic p-value of a one-sample Kolmogorov-Smirnov statistic d
 * over n values: Q(sqrt(n) d), Q(l) = 2 sum (-1)^(k-1) exp(-2 k^2 l^2).
 */
static double
KsPValue(double d, int64 n)
{
	double		l = sqrt((double) n) * d;
	double		q = 0.0;

	if (l < 0.2)
		return 1.0;
	for (int k = 1; k <= 100; k++)
		q += 2.0 * ((k % 2) ? 1.0 : -1.0) * exp(-2.0 * k * k * l * l);
	return fmin(1.0, fmax(0.0, q));
}

/* Checks one 'rows' or 'data' monitor, in its own transaction. */
static void
CheckMonitor(int32 id)
{
	Datum		arg = Int32GetDatum(id);
	bool		isnull;
	char	   *name,
			   *model,
			   *kind,
			   *action,
			   *source,
			   *order_by,
			   *last,
			   *search_path;
	Jsonb	   *options;
	Oid			owner;
	bool		cooling;
	int32		deployed;
	ArrayType  *columns;
	Jsonb	   *encoding;
	CheckArgs	a;
	StringInfoData sql;
	StringInfoData details;
	bool		fired = false;

	CatalogExecute("SELECT c.name, c.model, c.kind, c.action, c.options, c.owner, "
				   "COALESCE(c.cooldown_until OPERATOR(pg_catalog.>) pg_catalog.now(), false) "
				   "OR c.retrain_requested_at IS NOT NULL OR c.retrain_started_at IS NOT NULL, "
				   "COALESCE(c.options->>'source', m.source), "
				   "COALESCE(c.options->>'order_by', m.options->>'order_by'), "
				   "(SELECT v.data_max FROM streamml.model_versions v "
				   " WHERE v.model OPERATOR(pg_catalog.=) m.name "
				   " ORDER BY v.version DESC, v.data_max DESC NULLS LAST LIMIT 1), "
				   "COALESCE(m.deployed_version, 0), m.feature_columns, "
				   "CASE WHEN c.options OPERATOR(pg_catalog.?) 'source' THEN c.search_path ELSE m.search_path END, "
				   "(SELECT v.encoding FROM streamml.model_versions v "
				   " WHERE v.model OPERATOR(pg_catalog.=) m.name "
				   " AND v.version OPERATOR(pg_catalog.=) m.deployed_version "
				   " ORDER BY v.group_key NULLS FIRST LIMIT 1) "
				   "FROM streamml.monitors_catalog c JOIN streamml.models m "
				   "ON m.name OPERATOR(pg_catalog.=) c.model "
				   "WHERE c.id OPERATOR(pg_catalog.=) $1 FOR UPDATE OF c",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		return;
	name = Text(0, 1);
	model = Text(0, 2);
	kind = Text(0, 3);
	action = Text(0, 4);
	options = DatumGetJsonbPCopy(Value(0, 5, &isnull));
	owner = DatumGetObjectId(Value(0, 6, &isnull));
	cooling = DatumGetBool(Value(0, 7, &isnull));
	source = Text(0, 8);
	order_by = Text(0, 9);
	last = Text(0, 10);
	deployed = DatumGetInt32(Value(0, 11, &isnull));
	columns = DatumGetArrayTypePCopy(Value(0, 12, &isnull));
	search_path = Text(0, 13);
	{
		Datum		d = Value(0, 14, &isnull);

		encoding = isnull ? NULL : DatumGetJsonbPCopy(d);
	}
	/*
	 * The model's options are its last training run's: a retrain without
	 * order_by leaves a monitor that relied on them without one.  The
	 * check fails (a monitor_error event), as create_monitor would refuse.
	 */
	if (order_by == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("monitor \"%s\" has no \"order_by\"", name),
				 errdetail("Model \"%s\" was last trained without option \"order_by\", and the monitor's options name none; %s.",
						   model, strcmp(kind, "data") == 0 ?
						   "the monitor finds the newest rows by it" :
						   "the monitor counts the rows newer than the training data by it"),
				 errhint("Train the model again with option \"order_by\", or drop the monitor and create it with one.")));

	memset(&a, 0, sizeof(a));
	initStringInfo(&sql);
	initStringInfo(&details);
	if (strcmp(kind, "rows") == 0 && last == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" was last trained without option \"order_by\"", model),
				 errdetail("Monitor \"%s\" counts the rows newer than the training data, which a version knows only when trained with \"order_by\".",
						   name)));
	if (strcmp(kind, "rows") == 0)
	{
		int64		min_rows = OptionInteger(options, "min_rows", 1000, 0, PG_INT64_MAX);

		appendStringInfo(&sql, "SELECT pg_catalog.count(*) FROM %s",
						 SourceFromItem(source));
		a.sql = sql.data;
		a.probe_source = source;
		a.probe_order_by = order_by;
		if (last != NULL)
		{
			/* the rows above the newest of the last run (as its owner sees them) */
			a.newer_from = SourceFromItem(source);
			a.newer_order_by = order_by;
			a.newer_last = last;
		}
		RunAsOwnerWithPath(owner, search_path, RunCheck, &a);
		fired = a.count >= min_rows;
		appendStringInfo(&details, "{\"new_rows\": " INT64_FORMAT ", \"min_rows\": " INT64_FORMAT,
						 a.count, min_rows);
		if (last)
		{
			appendStringInfoString(&details, ", \"after\": ");
			escape_json(&details, last);
		}
		appendStringInfoChar(&details, '}');
		CatalogExecute("UPDATE streamml.monitors_catalog SET rows_since_training = $2, "
					   "last_value = $3::jsonb WHERE id OPERATOR(pg_catalog.=) $1",
					   3, (Oid[]) {INT4OID, INT8OID, TEXTOID},
					   (Datum[]) {arg, Int64GetDatum(a.count),
						   CStringGetTextDatum(details.data)},
					   NULL, SPI_OK_UPDATE);
	}
	else
	{
		char	   *method = OptionKeyword(options, "method", "psi");
		bool		ks = strcmp(method, "ks") == 0;
		double		threshold = OptionNumber(options, "threshold", ks ? 0.05 : 0.1,
											 0.0, HUGE_VAL);
		int64		window = OptionInteger(options, "window", 1000, 1, PG_INT32_MAX);
		int64		min_rows = OptionInteger(options, "min_rows", 100, 0, PG_INT64_MAX);
		JsonbValue *only = OptionGet(options, "features");
		List	   *used = NIL;
		char	  **names;
		char	  **exprs;
		int			nslots;
		int			k = 0;
		bool		first = true;

		if (deployed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("model \"%s\" has no deployed version", model)));
		nslots = MonitorDataSlots(columns, encoding,
								  only ? JsonbValueToJsonb(only) : NULL, &names, &exprs);
		appendStringInfoString(&sql, "SELECT pg_catalog.count(*)");
		for (int i = 0; i < nslots; i++)
		{
			used = lappend(used, names[i]);
			appendStringInfo(&sql, ", streamml.%s($1, %s, %s)",
							 ks ? "ks_statistic" : "psi", quote_literal_cstr(names[i]),
							 exprs[i]);
		}
		if (used == NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"features\" names no feature of model \"%s\"", model)));
		appendStringInfo(&sql, " FROM (SELECT s.* FROM %s ORDER BY s.%s DESC LIMIT %lld) s",
						 SourceFromItem(source), quote_identifier(order_by),
						 (long long) window);
		a.sql = sql.data;
		a.probe_source = source;
		a.probe_order_by = order_by;
		a.probe_columns = columns;
		a.nargs = 1;
		a.types = (Oid[]) {TEXTOID};
		a.values = (Datum[]) {CStringGetTextDatum(model)};
		RunAsOwnerWithPath(owner, search_path, RunCheck, &a);
		appendStringInfo(&details, "{\"method\": \"%s\", \"threshold\": %g, \"rows\": " INT64_FORMAT
						 ", \"version\": %d, \"features\": {",
						 method, threshold, a.count, deployed);
		{
			ListCell   *lc;
			StringInfoData drifted;

			initStringInfo(&drifted);
			foreach(lc, used)
			{
				double		v = a.results[k++];
				double		p = ks ? KsPValue(v, a.count) : NAN;
				bool		drift = isfinite(v) && a.count >= min_rows &&
					(ks ? p < threshold : v >= threshold);

				if (k > 1)
					appendStringInfoString(&details, ", ");
				escape_json(&details, lfirst(lc));
				if (ks)
					appendStringInfo(&details, ": {\"statistic\": %g, \"p_value\": %g}",
									 isfinite(v) ? v : 0.0, isfinite(p) ? p : 1.0);
				else
					appendStringInfo(&details, ": %g", isfinite(v) ? v : 0.0);
				if (drift)
				{
					if (!first)
						appendStringInfoString(&drifted, ", ");
					escape_json(&drifted, lfirst(lc));
					first = false;
					fired = true;
				}
			}
			appendStringInfo(&details, "}, \"drifted\": [%s]}", drifted.data);
		}
		CatalogExecute("UPDATE streamml.monitors_catalog SET last_value = $2::jsonb "
					   "WHERE id OPERATOR(pg_catalog.=) $1",
					   2, (Oid[]) {INT4OID, TEXTOID},
					   (Datum[]) {arg, CStringGetTextDatum(details.data)},
					   NULL, SPI_OK_UPDATE);
	}
	if (fired && !cooling)
	{
		const char *event = strcmp(kind, "rows") == 0 ? "new_rows" : "drift_detected";

		MonitorEvent(model, deployed, name, event, details.data, owner);
		Act(id, name, model, deployed, action, options, event, details.data);
	}
	CatalogExecute("UPDATE streamml.monitors_catalog SET next_check_at = "
				   "pg_catalog.now() OPERATOR(pg_catalog.+) "
				   "COALESCE(options->>'interval', '1 minute')::pg_catalog.interval "
				   "WHERE id OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_UPDATE);
}

/* ---- rollback checks ---- */

/* The live loss of one version as a champion: count, mean and variance. */
typedef struct LiveLoss
{
	double		n;
	double		mean;
	double		var;
} LiveLoss;

/*
 * The live loss of a version of model while it was the champion, from the
 * bucket sums of the trackers of role owner, the monitor's (SPI connected;
 * another role's predictions table may name any model): the 0/1 loss (error rate)
 * of a classifier, the absolute error of a regression.  newest_min above
 * 0: only its newest buckets, as few as hold at least that many labelled
 * outcomes (all of them when fewer).
 */
static void
VersionLiveLoss(const char *model, int32 version, Oid owner, bool classifier,
				int64 newest_min, LiveLoss *l)
{
	uint64		nb;
	double		n = 0,
				s1 = 0,
				s2 = 0;

	nb = CatalogExecute("SELECT pg_catalog.sum(b.cls_n)::pg_catalog.float8, "
						"pg_catalog.sum(b.correct)::pg_catalog.float8, "
						"pg_catalog.sum(b.reg_n)::pg_catalog.float8, "
						"pg_catalog.sum(b.abs_err_sum), pg_catalog.sum(b.sq_err_sum) "
						"FROM streamml.quality_buckets b "
						"WHERE b.model OPERATOR(pg_catalog.=) $1 "
						"AND b.version OPERATOR(pg_catalog.=) $2 "
						"AND b.role OPERATOR(pg_catalog.=) 'champion' "
						"AND b.owner OPERATOR(pg_catalog.=) $3 "
						"GROUP BY b.bucket ORDER BY b.bucket DESC",
						3, (Oid[]) {TEXTOID, INT4OID, OIDOID},
						(Datum[]) {CStringGetTextDatum(model), Int32GetDatum(version),
						ObjectIdGetDatum(owner)},
						NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < nb; i++)
	{
		bool		isnull;

		if (classifier)
		{
			double		cn = DatumGetFloat8(Value(i, 1, &isnull));
			double		wrong = cn - DatumGetFloat8(Value(i, 2, &isnull));

			n += cn;
			s1 += wrong;
			s2 += wrong;		/* a 0/1 loss is its own square */
		}
		else
		{
			n += DatumGetFloat8(Value(i, 3, &isnull));
			s1 += DatumGetFloat8(Value(i, 4, &isnull));
			s2 += DatumGetFloat8(Value(i, 5, &isnull));
		}
		if (newest_min > 0 && n >= newest_min)
			break;
	}
	l->n = n;
	l->mean = n > 0 ? s1 / n : NAN;
	l->var = n > 1 ? fmax(0.0, (s2 - n * l->mean * l->mean) / (n - 1)) : NAN;
}

/* A deployment run as the model's owner. */
typedef struct DeployCall
{
	const char *model;
	int32		version;
} DeployCall;

/* Calls streamml.deploy(model, version) as the owner (RunAsOwner). */
static void
RunDeploy(void *arg)
{
	DeployCall *c = arg;

	if (SPI_execute_with_args("SELECT streamml.deploy($1, $2)", 2,
							  (Oid[]) {TEXTOID, INT4OID},
							  (Datum[]) {CStringGetTextDatum(c->model),
								  Int32GetDatum(c->version)},
							  NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "streamml.deploy failed");
}

/*
 * The rollback check of monitor id (SPI connected, in its own
 * transaction), when the model's deployed version V is not the one the
 * monitor last accepted, P:
 *
 *	- V's live loss as champion (the error rate of a classifier, the
 *	  absolute error of a regression, over all its labelled outcomes) is
 *	  compared with P's over P's newest buckets holding at least min_rows
 *	  labelled outcomes (its recent record: a P that was degrading when it
 *	  was replaced is judged by that, not by its early days);
 *	- nothing is decided before V has min_rows labelled outcomes; then one
 *	  test decides, once: the one-sided Welch z test that V's mean loss
 *	  exceeds P's, z = (mean V - mean P) / sqrt(var V / n V + var P / n P),
 *	  p = P(Z >= z) (normal: min_rows >= 30).  p < alpha: P is deployed
 *	  again (streamml.deploy as the owner) and 'rolled_back' recorded with
 *	  both figures; otherwise V is accepted (the next deployment is
 *	  compared with it).  A P with fewer than min_rows labelled outcomes
 *	  leaves nothing to compare with: V is accepted.
 *
 * One decision per deployment, so the chance of a wrong rollback is alpha.
 * The figures of the last check are kept in rollback_check.
 */
static void
CheckRollback(int32 id)
{
	Datum		arg = Int32GetDatum(id);
	bool		isnull;
	char	   *name,
			   *model;
	Oid			owner;
	Jsonb	   *options;
	int32		previous,
				deployed;
	bool		classifier;
	int64		min_rows;
	double		alpha;
	LiveLoss	lv,
				lp;
	const char *status;
	double		z = NAN,
				p = NAN;
	int32		accept;
	StringInfoData b;
	Datum		d;
	char	   *action;
	char	   *last_status;
	double		last_labelled;
	int32		last_version;

	CatalogExecute("SELECT c.name, c.model, c.owner, c.options, c.rollback_version, "
				   "m.deployed_version, m.classes IS NOT NULL, c.action, "
				   "c.rollback_check OPERATOR(pg_catalog.->>) 'status', "
				   "(c.rollback_check OPERATOR(pg_catalog.->>) 'labelled')::pg_catalog.float8, "
				   "(c.rollback_check OPERATOR(pg_catalog.->>) 'version')::integer "
				   "FROM streamml.monitors_catalog c JOIN streamml.models m "
				   "ON m.name OPERATOR(pg_catalog.=) c.model "
				   "WHERE c.id OPERATOR(pg_catalog.=) $1 FOR UPDATE OF c",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		return;
	name = Text(0, 1);
	model = Text(0, 2);
	owner = DatumGetObjectId(Value(0, 3, &isnull));
	options = DatumGetJsonbPCopy(Value(0, 4, &isnull));
	d = Value(0, 5, &isnull);
	previous = isnull ? 0 : DatumGetInt32(d);
	d = Value(0, 6, &isnull);
	deployed = isnull ? 0 : DatumGetInt32(d);
	classifier = DatumGetBool(Value(0, 7, &isnull));
	action = Text(0, 8);
	last_status = Text(0, 9);
	d = Value(0, 10, &isnull);
	last_labelled = isnull ? -1 : DatumGetFloat8(d);
	d = Value(0, 11, &isnull);
	last_version = isnull ? 0 : DatumGetInt32(d);
	if (!MonitorRollbackOptions(options, &min_rows, &alpha) ||
		deployed == 0 || deployed == previous)
		return;
	if (previous == 0)
	{
		/* nothing was deployed when the monitor was created */
		CatalogExecute("UPDATE streamml.monitors_catalog SET rollback_version = $2 "
					   "WHERE id OPERATOR(pg_catalog.=) $1",
					   2, (Oid[]) {INT4OID, INT4OID},
					   (Datum[]) {arg, Int32GetDatum(deployed)}, NULL, SPI_OK_UPDATE);
		return;
	}

	VersionLiveLoss(model, deployed, owner, classifier, 0, &lv);
	VersionLiveLoss(model, previous, owner, classifier, min_rows, &lp);
	accept = previous;
	/* a non-finite loss (infinite predictions or actuals) judges nothing */
	if (lv.n < min_rows || isnan(lv.mean) || isinf(lv.mean) ||
		(lp.n >= min_rows && (isnan(lp.mean) || isinf(lp.mean) ||
							  isnan(lv.var) || isnan(lp.var))))
		status = "waiting";
	else if (lp.n < min_rows)
	{
		status = "not_compared";
		accept = deployed;
	}
	else
	{
		double		se = sqrt(lv.var / lv.n + lp.var / lp.n);

		if (se > 0)
		{
			z = (lv.mean - lp.mean) / se;
			p = 0.5 * erfc(z / M_SQRT2);
		}
		else
			p = lv.mean > lp.mean ? 0.0 : (lv.mean < lp.mean ? 1.0 : 0.5);
		if (p < alpha)
			status = "rolled_back";
		else
		{
			status = "kept";
			accept = deployed;
		}
	}

	/* still waiting, and no new outcome: nothing to write */
	if (strcmp(status, "waiting") == 0 && last_status &&
		strcmp(last_status, "waiting") == 0 && last_version == deployed &&
		last_labelled == lv.n)
		return;
	initStringInfo(&b);
	appendStringInfo(&b, "{\"status\": \"%s\", \"version\": %d, \"previous_version\": %d, "
					 "\"metric\": \"%s\", \"labelled\": %.0f",
					 status, deployed, previous,
					 classifier ? "error_rate" : "absolute_error", lv.n);
	AppendScore(&b, "live", lv.mean);
	appendStringInfo(&b, ", \"previous_labelled\": %.0f", lp.n);
	AppendScore(&b, "previous_live", lp.mean);
	if (!isnan(p))
	{
		AppendScore(&b, "z", z);
		AppendScore(&b, "p_value", p);
	}
	appendStringInfo(&b, ", \"alpha\": %g, \"min_rows\": " INT64_FORMAT "}",
					 alpha, min_rows);

	if (strcmp(status, "rolled_back") == 0)
	{
		DeployCall call = {model, previous};
		StringInfoData e;

		RunAsOwner(owner, RunDeploy, &call);
		initStringInfo(&e);
		appendStringInfo(&e, "{\"by\": \"monitor\", \"from_version\": %d, %s",
						 deployed, b.data + 1);
		MonitorEvent(model, previous, name, "rolled_back", e.data, owner);
		/* a notifying monitor tells its listeners too (sent at commit) */
		if (strcmp(action, "notify") == 0)
		{
			StringInfoData n;

			initStringInfo(&n);
			appendStringInfoString(&n, "{\"monitor\": ");
			escape_json(&n, name);
			appendStringInfoString(&n, ", \"model\": ");
			escape_json(&n, model);
			appendStringInfo(&n, ", \"version\": %d, \"event\": \"rolled_back\", \"details\": %s}",
							 previous, e.data);
			MonitorNotify(OptionString(options, "channel", "streamml_monitors"), n.data);
		}
		ereport(LOG,
				(errmsg("pg_streamml monitor \"%s\" rolled model \"%s\" back from version %d to version %d",
						name, model, deployed, previous),
				 errdetail("%s", b.data)));
	}
	CatalogExecute("UPDATE streamml.monitors_catalog SET rollback_version = $2, "
				   "rollback_check = $3::jsonb OPERATOR(pg_catalog.||) "
				   "pg_catalog.jsonb_build_object('at', pg_catalog.now()) "
				   "WHERE id OPERATOR(pg_catalog.=) $1",
				   3, (Oid[]) {INT4OID, INT4OID, TEXTOID},
				   (Datum[]) {arg, Int32GetDatum(accept), CStringGetTextDatum(b.data)},
				   NULL, SPI_OK_UPDATE);
}

/* ---- retraining ---- */

/* A retrain run as the model's owner. */
typedef struct RetrainCall
{
	const char *model;
	int32		version;
	bool		deployed;
	int64		rows_used;
} RetrainCall;

/* Calls streamml.retrain(model) as the owner (RunAsOwner). */
static void
RunRetrain(void *arg)
{
	RetrainCall *c = arg;
	Datum		m = CStringGetTextDatum(c->model);

	if (SPI_execute_with_args("SELECT version, deployed, rows_used "
							  "FROM streamml.retrain($1)",
							  1, (Oid[]) {TEXTOID}, &m, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "streamml.retrain failed");
	c->version = 0;
	c->deployed = false;
	c->rows_used = 0;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d;

		d = Value(i, 1, &isnull);
		if (!isnull)
			c->version = DatumGetInt32(d);
		d = Value(i, 2, &isnull);
		c->deployed |= !isnull && DatumGetBool(d);
		d = Value(i, 3, &isnull);
		c->rows_used += isnull ? 0 : DatumGetInt64(d);
	}
}

/* Appends "key": v, with null for NaN. */
static void
AppendScore(StringInfo b, const char *key, double v)
{
	if (isfinite(v))
		appendStringInfo(b, ", \"%s\": %.17g", key, v);
	else
		appendStringInfo(b, ", \"%s\": null", key);
}

/* Runs the retrain monitor id asked for: see the top of the file. */
static void
RetrainMonitor(int32 id, MemoryContext cxt)
{
	Datum		arg = Int32GetDatum(id);
	bool		isnull;
	char	   *name,
			   *model;
	Oid			owner;
	Jsonb	   *options;
	int32		previous;
	RetrainCall call;
	StringInfoData overrides;
	StringInfoData b;
	Datum		orig;
	TimestampTz t0;
	volatile bool started = false;

	/* 1. retrain_started, committed */
	Begin("pg_streamml monitor: starting a retrain");
	CatalogExecute("SELECT c.name, c.model, c.owner, c.options, c.last_event, "
				   "COALESCE(m.deployed_version, 0) "
				   "FROM streamml.monitors_catalog c JOIN streamml.models m "
				   "ON m.name OPERATOR(pg_catalog.=) c.model "
				   "WHERE c.id OPERATOR(pg_catalog.=) $1 "
				   "AND c.retrain_requested_at IS NOT NULL FOR UPDATE OF c",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
	{
		End();
		return;
	}
	MemoryContextSwitchTo(cxt);
	name = Text(0, 1);
	model = Text(0, 2);
	owner = DatumGetObjectId(Value(0, 3, &isnull));
	options = DatumGetJsonbPCopy(Value(0, 4, &isnull));
	initStringInfo(&b);
	appendStringInfoString(&b, "{\"after\": ");
	escape_json(&b, Text(0, 5) ? Text(0, 5) : "request");
	previous = DatumGetInt32(Value(0, 6, &isnull));
	appendStringInfo(&b, ", \"test_fraction\": %g, \"deploy\": \"if_better\"}",
					 OptionNumber(options, "test_fraction", 0.2, 0.0, 0.9));
	MonitorEvent(model, previous, name, "retrain_started", b.data, owner);
	/* this retrain answers every pending request for the model */
	CatalogExecute("UPDATE streamml.monitors_catalog SET retrain_requested_at = NULL, "
				   "retrain_started_at = CASE WHEN id OPERATOR(pg_catalog.=) $1 "
				   "THEN pg_catalog.now() ELSE retrain_started_at END "
				   "WHERE model OPERATOR(pg_catalog.=) $2 AND (id OPERATOR(pg_catalog.=) $1 "
				   "OR retrain_requested_at IS NOT NULL)",
				   2, (Oid[]) {INT4OID, TEXTOID},
				   (Datum[]) {arg, CStringGetTextDatum(model)}, NULL, SPI_OK_UPDATE);
	End();

	/* 2. the retrain, and its outcome */
	PG_TRY();
	{
		Begin("pg_streamml monitor: retraining");
		started = true;
		MemoryContextSwitchTo(cxt);
		initStringInfo(&overrides);
		appendStringInfo(&overrides, "{\"deploy\": \"if_better\", \"test_fraction\": %.17g",
						 OptionNumber(options, "test_fraction", 0.2, 0.0, 0.9));
		if (OptionGet(options, "order_by"))
		{
			appendStringInfoString(&overrides, ", \"order_by\": ");
			escape_json(&overrides, OptionString(options, "order_by", NULL));
		}
		CatalogExecute("SELECT options, kind OPERATOR(pg_catalog.=) 'league' FROM streamml.models "
					   "WHERE name OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(model)},
					   NULL, SPI_OK_SELECT);
		if (SPI_processed != 1)
			ModelDoesNotExist(model, NULL);
		/* a league compares its candidates by its option "metric" */
		if (OptionGet(options, "deploy_metric"))
		{
			appendStringInfo(&overrides, ", \"%s\": ",
							 DatumGetBool(Value(0, 2, &isnull)) ? "metric" : "deploy_metric");
			escape_json(&overrides, OptionString(options, "deploy_metric", NULL));
		}
		appendStringInfoChar(&overrides, '}');
		MemoryContextSwitchTo(cxt);
		orig = PointerGetDatum(DatumGetJsonbPCopy(Value(0, 1, &isnull)));
		CatalogExecute("UPDATE streamml.models SET options = options OPERATOR(pg_catalog.||) $2::jsonb "
					   "WHERE name OPERATOR(pg_catalog.=) $1",
					   2, (Oid[]) {TEXTOID, TEXTOID},
					   (Datum[]) {CStringGetTextDatum(model), CStringGetTextDatum(overrides.data)},
					   NULL, SPI_OK_UPDATE);
		memset(&LastDeployDecision, 0, sizeof(LastDeployDecision));
		call.model = model;
		t0 = GetCurrentTimestamp();
		RunAsOwner(owner, RunRetrain, &call);
		CatalogExecute("UPDATE streamml.models SET options = $2 "
					   "WHERE name OPERATOR(pg_catalog.=) $1",
					   2, (Oid[]) {TEXTOID, JSONBOID},
					   (Datum[]) {CStringGetTextDatum(model), orig},
					   NULL, SPI_OK_UPDATE);

		/*
		 * What the catalog says, not the last result row: a league's
		 * retrain returns a row per candidate, and its champion version is
		 * the one deployed (or the newest, when none was).
		 */
		CatalogExecute("SELECT COALESCE(m.deployed_version, 0), "
					   "(SELECT COALESCE(pg_catalog.max(v.version), 0) FROM streamml.model_versions v "
					   "WHERE v.model OPERATOR(pg_catalog.=) m.name) "
					   "FROM streamml.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(model)},
					   NULL, SPI_OK_SELECT);
		if (SPI_processed == 1)
		{
			int32		deployed_now = DatumGetInt32(Value(0, 1, &isnull));

			call.deployed = deployed_now != previous;
			call.version = call.deployed ? deployed_now :
				DatumGetInt32(Value(0, 2, &isnull));
		}
		/* the rows that version used, every group's (a league returns a row per candidate) */
		CatalogExecute("SELECT COALESCE(pg_catalog.sum(v.rows_used), 0)::pg_catalog.int8 "
					   "FROM streamml.model_versions v WHERE v.model OPERATOR(pg_catalog.=) $1 "
					   "AND v.version OPERATOR(pg_catalog.=) $2",
					   2, (Oid[]) {TEXTOID, INT4OID},
					   (Datum[]) {CStringGetTextDatum(model), Int32GetDatum(call.version)},
					   NULL, SPI_OK_SELECT);
		if (SPI_processed == 1)
			call.rows_used = DatumGetInt64(Value(0, 1, &isnull));
		MemoryContextSwitchTo(cxt);
		resetStringInfo(&b);
		appendStringInfo(&b, "{\"version\": %d, \"rows_used\": " INT64_FORMAT
						 ", \"seconds\": %.3f}", call.version, call.rows_used,
						 (double) (GetCurrentTimestamp() - t0) / 1e6);
		MonitorEvent(model, call.version, name, "retrain_finished", b.data, owner);
		resetStringInfo(&b);
		appendStringInfo(&b, "{\"version\": %d, \"previous_version\": %d",
						 call.version, previous);
		if (LastDeployDecision.valid)
		{
			appendStringInfoString(&b, ", \"metric\": ");
			escape_json(&b, LastDeployDecision.metric);
			AppendScore(&b, "holdout", LastDeployDecision.new_score);
			AppendScore(&b, "deployed_holdout", LastDeployDecision.old_score);
		}
		appendStringInfoChar(&b, '}');
		MonitorEvent(model, call.version, name,
					 call.deployed ? "deployed" : "not_deployed", b.data, owner);
		CatalogExecute("UPDATE streamml.monitors_catalog SET retrain_started_at = NULL "
					   "WHERE id OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_UPDATE);
		End();
	}
	PG_CATCH();
	{
		if (!started)
			PG_RE_THROW();
		RecordFailure(cxt, id, "retrain",
					  "UPDATE streamml.monitors_catalog SET retrain_started_at = NULL "
					  "WHERE id OPERATOR(pg_catalog.=) $1");
	}
	PG_END_TRY();
}

/* ---- the worker ---- */

/* Checks monitor id in a transaction; an error is recorded, not raised. */
static void
CheckOne(int32 id, MemoryContext cxt)
{
	PG_TRY();
	{
		Begin("pg_streamml monitor: checking");
		CheckMonitor(id);
		/* a check that succeeds ends a run of failures */
		CatalogExecute("UPDATE streamml.monitors_catalog SET failing = false "
					   "WHERE id OPERATOR(pg_catalog.=) $1 AND failing",
					   1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(id)},
					   NULL, SPI_OK_UPDATE);
		End();
	}
	PG_CATCH();
	{
		RecordFailure(cxt, id, "check",
					  "UPDATE streamml.monitors_catalog SET next_check_at = "
					  "pg_catalog.now() OPERATOR(pg_catalog.+) "
					  "COALESCE(options->>'interval', '1 minute')::pg_catalog.interval "
					  "WHERE id OPERATOR(pg_catalog.=) $1");
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
}

/*
 * Runs the rollback check of monitor id in a transaction.  An error is
 * recorded, and the deployed version accepted, so that it is not recorded
 * again every second.
 */
static void
CheckRollbackOne(int32 id, MemoryContext cxt)
{
	PG_TRY();
	{
		Begin("pg_streamml monitor: checking a deployment");
		CheckRollback(id);
		End();
	}
	PG_CATCH();
	{
		RecordFailure(cxt, id, "rollback check",
					  "UPDATE streamml.monitors_catalog c SET rollback_version = m.deployed_version, "
					  "rollback_check = '{\"status\": \"error\"}' FROM streamml.models m "
					  "WHERE c.id OPERATOR(pg_catalog.=) $1 AND m.name OPERATOR(pg_catalog.=) c.model");
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
}

/*
 * At the worker's start: retrains a crash interrupted are recorded and
 * asked for again.
 */
static void
ResumeInterrupted(void)
{
	uint64		n = CatalogExecute("UPDATE streamml.monitors_catalog SET retrain_started_at = NULL, "
					   "retrain_requested_at = pg_catalog.now() "
					   "WHERE retrain_started_at IS NOT NULL "
					   "RETURNING model, name, owner, retrain_started_at",
					   0, NULL, NULL, NULL, SPI_OK_UPDATE_RETURNING);
	SPITupleTable *tt = SPI_tuptable;

	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *model = SPI_getvalue(tt->vals[i], tt->tupdesc, 1);
		char	   *name = SPI_getvalue(tt->vals[i], tt->tupdesc, 2);
		Oid			owner = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
		char	   *at = SPI_getvalue(tt->vals[i], tt->tupdesc, 4);
		StringInfoData b;

		initStringInfo(&b);
		appendStringInfoString(&b, "{\"message\": ");
		escape_json(&b, psprintf("the retrain started at %s was interrupted", at));
		appendStringInfoString(&b, ", \"during\": \"retrain\", \"retry\": true}");
		MonitorEvent(model, 0, name, "monitor_error", b.data, owner);
	}
}

/* Entry point of the monitor worker of one database: arg is its oid. */
void
MonitorWorkerMain(Datum arg)
{
	MemoryContext loop_cxt;
	bool		first = true;

	am_worker = true;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(arg), InvalidOid, 0);
	pgstat_report_appname("pg_streamml monitor");

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "pg_streamml monitor loop",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		int32	   *retrains = NULL;
		int32	   *checks = NULL;
		int32	   *rollbacks = NULL;
		int			nretrains = 0;
		int			nchecks = 0;
		int			nrollbacks = 0;
		bool		isnull;

		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		Begin("pg_streamml monitor: looking for work");
		if (SPI_execute("SELECT 1 FROM pg_catalog.pg_extension "
						"WHERE extname OPERATOR(pg_catalog.=) 'pg_streamml'",
						true, 0) != SPI_OK_SELECT || SPI_processed == 0)
		{
			End();
			proc_exit(0);
		}
		if (first)
		{
			/* one worker a database */
			LOCKTAG		tag;

			SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, 0, MONITOR_LOCK_KIND);
			if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
			{
				End();
				proc_exit(0);
			}
			ResumeInterrupted();
			first = false;
		}
		CatalogExecute("SELECT c.id, c.retrain_requested_at IS NOT NULL, "
					   "c.kind OPERATOR(pg_catalog.<>) 'error' AND c.next_check_at "
					   "OPERATOR(pg_catalog.<=) pg_catalog.now(), "
					   "COALESCE(c.options OPERATOR(pg_catalog.->) 'rollback' "
					   "NOT IN ('false', 'null'), false) AND "
					   "(SELECT m.deployed_version FROM streamml.models m "
					   " WHERE m.name OPERATOR(pg_catalog.=) c.model) "
					   "IS DISTINCT FROM c.rollback_version "
					   "FROM streamml.monitors_catalog c ORDER BY c.retrain_requested_at, c.id",
					   0, NULL, NULL, NULL, SPI_OK_SELECT);
		if (SPI_processed == 0)
		{
			End();
			elog(LOG, "pg_streamml monitor worker exits: no monitor left");
			proc_exit(0);
		}
		MemoryContextSwitchTo(loop_cxt);
		retrains = palloc(sizeof(int32) * SPI_processed);
		checks = palloc(sizeof(int32) * SPI_processed);
		rollbacks = palloc(sizeof(int32) * SPI_processed);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			int32		id = DatumGetInt32(Value(i, 1, &isnull));

			if (DatumGetBool(Value(i, 2, &isnull)))
				retrains[nretrains++] = id;
			if (DatumGetBool(Value(i, 3, &isnull)))
				checks[nchecks++] = id;
			if (DatumGetBool(Value(i, 4, &isnull)))
				rollbacks[nrollbacks++] = id;
		}
		End();

		/* a worse deployment is undone before anything else */
		for (int i = 0; i < nrollbacks; i++)
			CheckRollbackOne(rollbacks[i], loop_cxt);
		for (int i = 0; i < nchecks; i++)
			CheckOne(checks[i], loop_cxt);
		for (int i = 0; i < nretrains; i++)
		{
			CHECK_FOR_INTERRUPTS();
			RetrainMonitor(retrains[i], loop_cxt);
			MemoryContextSwitchTo(loop_cxt);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 MONITOR_NAPTIME_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
