/*
 * monitorobserve.c
 *		'error' monitors: their detectors updated with a batch's new
 *		outcomes, in the outcome's transaction.
 *
 * The outcome writer (src/quality/outcomeinsert.c) hands each batch's new
 * outcomes, in arrival order, to MonitorsObserveOutcomes.  A monitor sees
 * only the outcomes of its owner's trackers: the model names of an outcome
 * come from a predictions table, which its owner may write, so another
 * role's outcomes (even of a model granted to it) could feed a monitor
 * forged errors, or lock its row.  Per batch, the 'error' monitors of the
 * batch's models that the tracker's owner owns are read and
 * locked (FOR UPDATE: concurrent batches of one model take turns, so that
 * the detector sees one sequence), and each monitor's detector is restored
 * from the bytes saved after the previous batch (drift.h: detectors
 * without pointers, state_size), fed the error of every outcome of the
 * model's deployed version (served as champion) in order, and saved again
 * with one UPDATE.  The error is the indicator prediction <> actual for
 * classifiers and |prediction - actual| for regressions.  A new deployed
 * version starts a new detector: the old version's error says nothing of
 * the new one's.
 *
 * On a warning (entered) or a detection the monitor records an event; on
 * a detection outside its cooldown, once at least min_rows outcomes of the
 * version were seen, it acts: 'notify' sends pg_notify at commit,
 * 'retrain' marks the monitor's retrain as requested and starts the
 * monitor worker at commit, which retrains outside this transaction.  A
 * rolled-back batch rolls all of it back, detector included.
 *
 * Per batch: one SELECT of the models' monitors and one SELECT ... FOR
 * UPDATE of the owner's (by an index on the model), and per
 * monitor one UPDATE and one row per event; per outcome, one detector
 * update and no allocation.
 *
 * A batch of models that have no 'error' monitor runs no statement: each
 * backend keeps, per model, whether it has one, and forgets all of it when
 * streamml.monitors_catalog gains, loses or re-targets a monitor (a
 * statement trigger there sends a relcache invalidation of the table,
 * which every backend receives after the commit, and this one at its next
 * command).  An answer is kept only when no invalidation arrived while it
 * was read, and not under a transaction-wide snapshot, which may predate
 * a monitor whose invalidation was already received.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "monitor/drift.h"
#include "monitor/monitor.h"
#include "options.h"
#include "pg_streamml.h"

/* An 'error' monitor as read for a batch. */
typedef struct ErrorMonitor
{
	int32		id;
	char	   *name;
	char	   *model;
	char	   *action;
	Jsonb	   *options;
	char	   *detector;
	Jsonb	   *params;
	bytea	   *state;			/* NULL: none saved */
	int32		state_version;
	int64		observed;
	bool		in_warning;
	bool		cooling;		/* cooldown_until is in the future */
	bool		retrain_pending;
	Oid			owner;
	int32		deployed;		/* 0: no deployed version */
	bool		classifier;
	char	   *cooldown;
	int64		suppressed;		/* detections that could not act since one did */
} ErrorMonitor;

/* Has this backend asked for the monitor worker yet? */
static bool WorkerAsked = false;

/* Per model name: does it have an 'error' monitor?  See the top of the file. */
typedef struct MonitoredModel
{
	char		name[NAMEDATALEN * 2];	/* hash key */
	bool		monitored;
} MonitoredModel;

static HTAB *MonitoredModels = NULL;
static Oid	MonitorsCatalogRelid = InvalidOid;
static uint64 MonitoredGeneration = 0;	/* bumped by every invalidation */

/* The plans of the statements run per batch, kept for the backend. */
static SPIPlanPtr LoadPlan = NULL;
static SPIPlanPtr SavePlan = NULL;
static SPIPlanPtr MonitoredPlan = NULL;

/* Relcache callback: a change of monitors_catalog (or of everything). */
static void
MonitoredModelsInvalidate(Datum arg, Oid relid)
{
	if (relid != InvalidOid && relid != MonitorsCatalogRelid)
		return;
	MonitoredGeneration++;
	if (MonitoredModels != NULL)
	{
		hash_destroy(MonitoredModels);
		MonitoredModels = NULL;
	}
}

/*
 * The cache's entry of a model: found (NULL when unknown) or made.  Names
 * too long for the key are never cached.
 */
static MonitoredModel *
MonitoredModelLookup(const char *model, bool create)
{
	static bool registered = false;
	char		key[NAMEDATALEN * 2];

	if (!registered)
	{
		CacheRegisterRelcacheCallback(MonitoredModelsInvalidate, (Datum) 0);
		registered = true;
	}
	if (strlen(model) >= sizeof(key))
		return NULL;
	if (MonitoredModels == NULL)
	{
		HASHCTL		ctl;

		if (!create)
			return NULL;
		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(MonitoredModel);
		MonitoredModels = hash_create("pg_streamml monitored models", 16, &ctl,
									  HASH_ELEM | HASH_STRINGS);
	}
	memset(key, 0, sizeof(key));
	strlcpy(key, model, sizeof(key));
	return hash_search(MonitoredModels, key, create ? HASH_ENTER : HASH_FIND,
					   NULL);
}

/* The text of column col of row 0.. of the SPI result, or NULL. */
static char *
Text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

/* The binary value of column col of row, or (Datum) 0 when NULL. */
static Datum
Value(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col,
						 isnull);
}

/*
 * Reads the 'error' monitors of the models that role owner owns, locked
 * (SPI connected).
 */
static ErrorMonitor *
LoadMonitors(Datum models, Oid owner, int *n)
{
	ErrorMonitor *ms;
	uint64		rows;

	rows = CatalogExecuteKept(&LoadPlan, "SELECT c.id, c.name, c.model, c.action, c.options, "
						  "c.detector, c.detector_params, c.state, "
						  "COALESCE(c.state_version, 0), c.observed, "
						  "c.in_warning, COALESCE(c.cooldown_until "
						  "OPERATOR(pg_catalog.>) pg_catalog.now(), false), "
						  "c.retrain_requested_at IS NOT NULL OR c.retrain_started_at IS NOT NULL, "
						  "c.owner, COALESCE(m.deployed_version, 0), "
						  "m.classes IS NOT NULL, c.cooldown::pg_catalog.text, "
						  "c.detections_suppressed "
						  "FROM streamml.monitors_catalog c JOIN streamml.models m "
						  "ON m.name OPERATOR(pg_catalog.=) c.model "
						  "WHERE c.kind OPERATOR(pg_catalog.=) 'error' "
						  "AND c.model OPERATOR(pg_catalog.=) ANY ($1) "
						  "AND c.owner OPERATOR(pg_catalog.=) $2 "
						  "ORDER BY c.id FOR UPDATE OF c",
						  2, (Oid[]) {TEXTARRAYOID, OIDOID},
						  (Datum[]) {models, ObjectIdGetDatum(owner)}, NULL,
						  SPI_OK_SELECT);
	*n = (int) rows;
	ms = palloc0(sizeof(ErrorMonitor) * Max(rows, 1));
	for (uint64 i = 0; i < rows; i++)
	{
		ErrorMonitor *m = &ms[i];
		bool		isnull;
		Datum		d;

		m->id = DatumGetInt32(Value(i, 1, &isnull));
		m->name = Text(i, 2);
		m->model = Text(i, 3);
		m->action = Text(i, 4);
		m->options = DatumGetJsonbPCopy(Value(i, 5, &isnull));
		m->detector = Text(i, 6);
		m->params = DatumGetJsonbPCopy(Value(i, 7, &isnull));
		d = Value(i, 8, &isnull);
		m->state = isnull ? NULL : DatumGetByteaPCopy(d);
		m->state_version = DatumGetInt32(Value(i, 9, &isnull));
		m->observed = DatumGetInt64(Value(i, 10, &isnull));
		m->in_warning = DatumGetBool(Value(i, 11, &isnull));
		m->cooling = DatumGetBool(Value(i, 12, &isnull));
		m->retrain_pending = DatumGetBool(Value(i, 13, &isnull));
		m->owner = DatumGetObjectId(Value(i, 14, &isnull));
		m->deployed = DatumGetInt32(Value(i, 15, &isnull));
		m->classifier = DatumGetBool(Value(i, 16, &isnull));
		m->cooldown = Text(i, 17);
		m->suppressed = DatumGetInt64(Value(i, 18, &isnull));
	}
	return ms;
}

/* The detector of a monitor, restored from its saved state if of this version. */
static DriftDetector *
RestoreDetector(ErrorMonitor *m)
{
	DriftDetector *d = DriftDetectorCreate(m->detector, m->params);
	Size		head = sizeof(DriftDetector);
	Size		size = d->method->state_size;

	if (m->state != NULL && m->state_version == m->deployed && size > head &&
		VARSIZE_ANY_EXHDR(m->state) == size - head)
		memcpy((char *) d + head, VARDATA_ANY(m->state), size - head);
	else
	{
		m->observed = 0;
		m->in_warning = false;
		m->suppressed = 0;
	}
	return d;
}

/* The details of an event of monitor m at the current position. */
static char *
EventDetails(ErrorMonitor *m, DriftDetector *d, const char *action,
			 const char *note)
{
	StringInfoData b;

	initStringInfo(&b);
	appendStringInfo(&b, "{\"position\": " INT64_FORMAT ", \"detector\": ",
					 m->observed);
	escape_json(&b, m->detector);
	appendStringInfoString(&b, ", \"state\": {\"method\": ");
	escape_json(&b, m->detector);
	d->method->state(d, &b);
	appendStringInfoChar(&b, '}');
	if (action)
	{
		appendStringInfoString(&b, ", \"action\": ");
		escape_json(&b, action);
	}
	if (note)
	{
		appendStringInfoString(&b, ", \"note\": ");
		escape_json(&b, note);
	}
	if (m->suppressed > 0)
		appendStringInfo(&b, ", \"suppressed_before\": " INT64_FORMAT,
						 m->suppressed);
	appendStringInfoChar(&b, '}');
	return b.data;
}

/*
 * A detection of monitor m: the event, and the action unless the monitor
 * is cooling down or has seen fewer than min_rows outcomes.  Returns
 * whether it acted.  Of the detections that cannot act (a detector on a
 * poorly fitting model may detect every few hundred outcomes), only the
 * first after an acting one is logged; the others are counted in
 * monitors.detections_suppressed, and the next acting detection's event
 * says how many there were ("suppressed_before").
 */
static bool
Detected(ErrorMonitor *m, DriftDetector *d)
{
	int64		min_rows = OptionInteger(m->options, "min_rows", 0, 0, PG_INT64_MAX);
	const char *note = NULL;
	bool		act = false;

	if (m->cooling)
		note = "cooling down: no action";
	else if (m->observed < min_rows)
		note = "fewer outcomes than min_rows: no action";
	else if (strcmp(m->action, "retrain") == 0 && m->retrain_pending)
		note = "a retrain of this monitor is already pending";
	else
		act = true;
	if (!act && m->suppressed > 0)
	{
		m->suppressed++;
		return false;
	}
	MonitorEvent(m->model, m->deployed, m->name, "drift_detected",
				 EventDetails(m, d, act ? m->action : NULL,
							  act ? note : psprintf("%s; until a detection acts, later ones are counted in monitors.detections_suppressed, not logged", note)),
				 m->owner);
	if (!act)
	{
		m->suppressed = 1;
		return false;
	}
	m->suppressed = 0;
	if (strcmp(m->action, "notify") == 0)
	{
		StringInfoData p;

		initStringInfo(&p);
		appendStringInfoString(&p, "{\"monitor\": ");
		escape_json(&p, m->name);
		appendStringInfoString(&p, ", \"model\": ");
		escape_json(&p, m->model);
		appendStringInfo(&p, ", \"version\": %d, \"event\": \"drift_detected\", "
						 "\"position\": " INT64_FORMAT "}", m->deployed, m->observed);
		MonitorNotify(OptionString(m->options, "channel", "streamml_monitors"),
					  p.data);
	}
	else if (strcmp(m->action, "retrain") == 0)
		m->retrain_pending = true;
	m->cooling = true;
	return true;
}

/* Saves a monitor's detector and what the batch changed (SPI connected). */
static void
SaveMonitor(ErrorMonitor *m, DriftDetector *d, bool acted)
{
	Size		head = sizeof(DriftDetector);
	Size		size = d->method->state_size;
	bytea	   *state = palloc(VARHDRSZ + size - head);
	StringInfoData js;
	Datum		args[8];

	SET_VARSIZE(state, VARHDRSZ + size - head);
	memcpy(VARDATA(state), (char *) d + head, size - head);
	initStringInfo(&js);
	appendStringInfoString(&js, "{\"method\": ");
	escape_json(&js, m->detector);
	d->method->state(d, &js);
	appendStringInfoChar(&js, '}');
	args[0] = Int32GetDatum(m->id);
	args[1] = PointerGetDatum(state);
	args[2] = Int32GetDatum(m->deployed);
	args[3] = CStringGetTextDatum(js.data);
	args[4] = Int64GetDatum(m->observed);
	args[5] = BoolGetDatum(m->in_warning);
	args[6] = BoolGetDatum(acted);
	args[7] = Int64GetDatum(m->suppressed);
	CatalogExecuteKept(&SavePlan, "UPDATE streamml.monitors_catalog SET state = $2, "
				   "state_version = $3, detector_state = $4::jsonb, observed = $5, "
				   "in_warning = $6, detections_suppressed = $8, "
				   "cooldown_until = CASE WHEN $7 THEN pg_catalog.now() "
				   "OPERATOR(pg_catalog.+) cooldown ELSE cooldown_until END, "
				   "last_action = CASE WHEN $7 THEN action ELSE last_action END, "
				   "last_action_at = CASE WHEN $7 THEN pg_catalog.now() ELSE last_action_at END, "
				   "retrain_requested_at = CASE WHEN $7 AND action OPERATOR(pg_catalog.=) 'retrain' "
				   "THEN pg_catalog.now() ELSE retrain_requested_at END "
				   "WHERE id OPERATOR(pg_catalog.=) $1",
				   8, (Oid[]) {INT4OID, BYTEAOID, INT4OID, TEXTOID, INT8OID,
					   BOOLOID, BOOLOID, INT8OID}, args, NULL, SPI_OK_UPDATE);
}

/*
 * Feeds a batch's new outcomes to the 'error' monitors of their models:
 * see the top of the file.  SPI must be connected.
 */
void
MonitorsObserveOutcomes(const MonitorOutcome *outcomes, int n, Oid owner)
{
	MemoryContext cxt;
	MemoryContext old;
	Datum	   *names;
	const char **models;
	int			nnames = 0;
	bool		maybe = false;
	uint64		generation;
	ErrorMonitor *ms;
	int			nm;
	bool		start_worker = false;
	Datum		marray;
	uint64		found;
	bool		mine = false;

	if (n <= 0)
		return;
	cxt = AllocSetContextCreate(CurrentMemoryContext, "pg_streamml monitors",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);

	/*
	 * The batch's models, each once; when none may have a monitor, nothing
	 * to do.
	 */
	names = palloc(sizeof(Datum) * n);
	models = palloc(sizeof(char *) * n);
	MonitorsCatalogRelid = get_relname_relid("monitors_catalog",
											 get_namespace_oid(STREAMML_SCHEMA, false));
	for (int i = 0; i < n; i++)
	{
		bool		seen = false;
		MonitoredModel *c;

		if (outcomes[i].model == NULL)
			continue;
		for (int j = nnames - 1; j >= 0 && !seen; j--)
			seen = strcmp(models[j], outcomes[i].model) == 0;
		if (seen)
			continue;
		c = MonitoredModelLookup(outcomes[i].model, false);
		if (c == NULL || c->monitored)
			maybe = true;
		models[nnames] = outcomes[i].model;
		names[nnames++] = CStringGetTextDatum(outcomes[i].model);
	}
	if (!maybe)
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		return;
	}
	generation = MonitoredGeneration;
	marray = PointerGetDatum(construct_array(names, nnames, TEXTOID, -1, false,
											 TYPALIGN_INT));
	/* which models have monitors at all, and whether any is the owner's */
	found = CatalogExecuteKept(&MonitoredPlan, "SELECT DISTINCT c.model, c.owner OPERATOR(pg_catalog.=) $2 "
						   "FROM streamml.monitors_catalog c "
						   "WHERE c.kind OPERATOR(pg_catalog.=) 'error' "
						   "AND c.model OPERATOR(pg_catalog.=) ANY ($1)",
						   2, (Oid[]) {TEXTARRAYOID, OIDOID},
						   (Datum[]) {marray, ObjectIdGetDatum(owner)}, NULL,
						   SPI_OK_SELECT);
	/* what the statement read, unless an invalidation came meanwhile */
	for (int j = 0; j < nnames; j++)
	{
		MonitoredModel *c = NULL;
		bool		monitored = false;

		for (uint64 r = 0; r < found; r++)
		{
			bool		isnull;

			if (strcmp(Text(r, 1), models[j]) != 0)
				continue;
			monitored = true;
			if (DatumGetBool(Value(r, 2, &isnull)))
				mine = true;
		}
		if (generation == MonitoredGeneration && !IsolationUsesXactSnapshot())
			c = MonitoredModelLookup(models[j], true);
		if (c != NULL)
			c->monitored = monitored;
	}
	if (!mine)
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		return;
	}
	ms = LoadMonitors(marray, owner, &nm);

	for (int k = 0; k < nm; k++)
	{
		ErrorMonitor *m = &ms[k];
		DriftDetector *d;
		bool		acted = false;
		Size		head = sizeof(DriftDetector);
		char	   *before = NULL;

		if (m->deployed == 0)
			continue;
		d = RestoreDetector(m);
		if (d->method->finite != NULL && d->method->state_size > head)
			before = palloc(d->method->state_size - head);
		for (int i = 0; i < n; i++)
		{
			const MonitorOutcome *o = &outcomes[i];
			double		x;
			DriftSignal sig;

			if (o->version != m->deployed || o->prediction_null || o->actual_null ||
				o->model == NULL || strcmp(o->model, m->model) != 0 ||
				(o->role != NULL && strcmp(o->role, "champion") != 0))
				continue;
			x = m->classifier ? (double) (o->prediction != o->actual) :
				fabs(o->prediction - o->actual);
			if (!isfinite(x))
				continue;
			if (before != NULL)
				memcpy(before, (char *) d + head, d->method->state_size - head);
			sig = DriftUpdate(d, x);
			/*
			 * An error so large that the detector's sums overflow is left
			 * out as an infinite one is: kept, it would leave the detector
			 * blind (or firing) for good, and failing the load is worse.
			 */
			if (!DriftFinite(d))
			{
				memcpy((char *) d + head, before, d->method->state_size - head);
				continue;
			}
			m->observed++;
			/* a warning is logged only where a detection could act */
			if (sig == DRIFT_WARNING && !m->in_warning && !m->cooling)
				MonitorEvent(m->model, m->deployed, m->name, "drift_warning",
							 EventDetails(m, d, NULL, NULL), m->owner);
			m->in_warning = (sig == DRIFT_WARNING);
			if (sig == DRIFT_DETECTED && Detected(m, d))
				acted = true;
		}
		SaveMonitor(m, d, acted);
		if (acted && strcmp(m->action, "retrain") == 0)
			start_worker = true;
	}
	/* after a restart, the first batch that feeds a monitor wakes the worker */
	if (start_worker || (nm > 0 && !WorkerAsked))
	{
		WorkerAsked = true;
		MonitorWorkerStartAtCommit();
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

