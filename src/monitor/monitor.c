/*
 * monitor.c
 *		Monitors that act: streamml.create_monitor and drop_monitor, the
 *		events they record, and what role commands do to them.
 *
 * A monitor watches one model and fires on one of three signals:
 *
 *	error	a drift detector (drift.h) over the error of the model's
 *			outcomes in arrival order, updated in the outcome's transaction
 *			(monitorobserve.c).  The default for classifiers is a one-sided
 *			CUSUM on the error indicator, tuned on the 0.5 -> 0.7 step of
 *			test/bench/bench_monitor.sh (River's DDM, the first
 *			idea, needs 334 rows there); for regressions River's
 *			PageHinkley on the absolute error, upward changes only.
 *	data	PSI (or KS) of each feature over the newest rows of the model's
 *			source, against the deployed version's training bins, checked
 *			by the monitor worker every "interval" (monitorworker.c).
 *	rows	at least min_rows rows newer (by order_by) than the newest row
 *			of the model's last training, checked likewise.
 *
 * and then acts: 'log' (the event is the log), 'notify' (pg_notify on a
 * channel with the event as JSON; sent at commit), or 'retrain' (the
 * monitor worker retrains the model as its owner, with deploy 'if_better'
 * on a holdout of the newest rows, outside the transaction that fired).
 * After an action the monitor waits "cooldown" before it acts again; it
 * still records what it sees.
 *
 * Any monitor may also guard deployments (option "rollback"): when a
 * version is deployed (by its retrain, streamml.deploy or a promotion), the
 * monitor worker compares its live quality with the version it replaced,
 * and deploys that one again if the new one is worse (see monitorworker.c
 * for the test), recording 'rolled_back'.
 *
 * Every event is a row of streamml.model_events.  Monitors are owned by
 * the model's owner, and go with the model (ON DELETE CASCADE); events
 * stay until DROP OWNED.
 */
#include "postgres.h"

#include "catalog/namespace.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "ml/categorical.h"
#include "ml/ml.h"
#include "ml/train.h"
#include "monitor/drift.h"
#include "monitor/monitor.h"
#include "options.h"
#include "pg_streamml.h"

/* Options every kind takes. */
#define COMMON_KEYS "action", "cooldown", "min_rows", "channel", \
	"test_fraction", "order_by", "deploy_metric", "rollback"

static const char *const ErrorKeys[] = {COMMON_KEYS, "detector", "params", NULL};
static const char *const DataKeys[] = {COMMON_KEYS, "method", "threshold",
	"window", "features", "interval", "source", NULL};
static const char *const RowsKeys[] = {COMMON_KEYS, "interval", NULL};

/*
 * The default detector of an 'error' monitor of a classifier: a one-sided
 * CUSUM of the error indicator (see the top of the file and the README).
 */
#define DEFAULT_CLASSIFIER_DETECTOR "cusum"
#define DEFAULT_CLASSIFIER_PARAMS \
	"{\"mode\": \"up\", \"min_instances\": 500, \"slack\": 0.2, \"threshold\": 32}"
#define DEFAULT_REGRESSION_DETECTOR "page_hinkley"
#define DEFAULT_REGRESSION_PARAMS "{\"mode\": \"up\"}"

/* An interval option, checked positive, as its text. */
static char *
IntervalOption(Jsonb *options, const char *key, const char *dflt)
{
	char	   *s = OptionString(options, key, dflt);
	Interval   *iv;

	iv = DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum(s),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
	if (iv->month < 0 || iv->day < 0 || iv->time < 0 ||
		(iv->month == 0 && iv->day == 0 && iv->time == 0 &&
		 strcmp(key, "cooldown") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a positive interval", key),
				 errdetail("The value given is '%s'.", s)));
	/* now() plus it must stay a timestamp: at most 100 years */
	if ((double) iv->month * DAYS_PER_MONTH * USECS_PER_DAY +
		(double) iv->day * USECS_PER_DAY + (double) iv->time >
		100.0 * DAYS_PER_YEAR * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be at most 100 years", key),
				 errdetail("The value given is '%s'.", s)));
	/* the monitor worker wakes at most once a second */
	if (strcmp(key, "interval") == 0 && iv->month == 0 && iv->day == 0 &&
		iv->time < USECS_PER_SEC)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"interval\" must be at least 1 second"),
				 errdetail("The value given is '%s'.", s)));
	return s;
}

/*
 * Option "rollback" of a monitor: false (absent), true, or {"min_rows": N
 * (500, at least 30), "alpha": a (0.01, in (0, 0.5])}.  Returns whether the
 * monitor checks newly deployed versions (monitorworker.c), with *min_rows
 * and *alpha; shape errors are raised here.
 */
bool
MonitorRollbackOptions(Jsonb *options, int64 *min_rows, double *alpha)
{
	JsonbValue *v = OptionGet(options, "rollback");
	Jsonb	   *o;
	static const char *const keys[] = {"min_rows", "alpha", NULL};
	OptionScope scope;

	*min_rows = 500;
	*alpha = 0.01;
	if (v == NULL || v->type == jbvNull)
		return false;
	if (v->type == jbvBool)
		return v->val.boolean;
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"rollback\" must be true, false or an object, for example {\"min_rows\": 500, \"alpha\": 0.01}")));
	o = JsonbValueToJsonb(v);
	OptionScopePush(&scope, "option", "rollback");
	OptionCheckKeys(o, keys, "rollback");
	*min_rows = OptionInteger(o, "min_rows", 500, 30, PG_INT64_MAX);
	*alpha = OptionNumber(o, "alpha", 0.01, 1e-12, 0.5);
	OptionScopePop(&scope);
	return true;
}

/* A jsonb from its text. */
static Jsonb *
JsonbFromText(const char *s)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s)));
}

/* What a probe of a monitor's source reads, and the columns it must have. */
typedef struct SourceProbe
{
	const char *sql;			/* SELECT * FROM the source LIMIT 0 */
	const char *source;			/* the source, as errors name it */
	const char *order_by;
	Datum	   *columns;		/* the model's feature columns (text), or */
	int			ncolumns;		/* none */
} SourceProbe;

/*
 * Reads the source's columns (a SourceProbe) and errors, in PostgreSQL's
 * words (undefined column, naming it and the source), unless it has the
 * order_by column and the feature columns.
 */
static void
RunProbe(void *arg)
{
	SourceProbe *p = (SourceProbe *) arg;
	TupleDesc	desc;

	SourceCheckTrusted(p->source, "monitor's check");
	if (SPI_execute(p->sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the monitor's source");
	desc = SPI_tuptable->tupdesc;
	(void) SourceColumnType(desc, p->order_by, "order_by", p->source);
	for (int i = 0; i < p->ncolumns; i++)
		(void) SourceColumnType(desc, TextDatumGetCString(p->columns[i]),
								"feature", p->source);
}

/*
 * RunProbe of a check of a monitor (the monitor worker's, as the owner):
 * the columns of source it reads, order_by and, when columns is not NULL,
 * the model's feature columns, are still there and of types the owner
 * trusts (SourceColumnType): another role that owns the source may have
 * changed a column's type since create_monitor.
 */
void
MonitorProbeSource(const char *source, const char *order_by, ArrayType *columns)
{
	SourceProbe probe;
	Datum	   *fc = NULL;
	int			nc = 0;

	if (columns != NULL)
		deconstruct_array(columns, TEXTOID, -1, false, TYPALIGN_INT, &fc, NULL, &nc);
	probe.source = source;
	probe.sql = psprintf("SELECT * FROM %s LIMIT 0", SourceFromItem(source));
	probe.order_by = order_by;
	probe.columns = fc;
	probe.ncolumns = nc;
	RunProbe(&probe);
}

/*
 * Checks, as the owner would read them at each check, what a monitor
 * reads: its source (the option's, resolved with the creator's
 * search_path, or the model's), the order_by column and, for 'data', the
 * model's feature columns there; and that option "features" names
 * features of the model.  A misspelt name fails here, in PostgreSQL's
 * words, rather than at every check afterwards.  An 'error' monitor reads
 * the model's source only to retrain: there, its order_by column.
 */
static void
ProbeMonitorSource(const char *kind, const char *model, Jsonb *options,
				   Oid owner, const char *order_by, const char *model_source,
				   const char *model_path, ArrayType *features,
				   ArrayType *columns)
{
	const char *opt_source = OptionString(options, "source", NULL);
	JsonbValue *only = OptionGet(options, "features");
	SourceProbe probe;
	Datum	   *fn,
			   *fc;
	int			nf;
	int			nc;

	/* a categorical column has a feature (one-hot slot) per level */
	deconstruct_array(features, TEXTOID, -1, false, TYPALIGN_INT, &fn, NULL, &nf);
	deconstruct_array(columns, TEXTOID, -1, false, TYPALIGN_INT, &fc, NULL, &nc);
	probe.source = opt_source ? opt_source : model_source;
	probe.sql = psprintf("SELECT * FROM %s LIMIT 0", SourceFromItem(probe.source));
	probe.order_by = order_by;
	probe.columns = fc;
	probe.ncolumns = strcmp(kind, "data") == 0 ? nc : 0;
	RunAsOwnerWithPath(owner, opt_source ? namespace_search_path : model_path,
					   RunProbe, &probe);
	if (only != NULL && only->type == jbvBinary)
	{
		JsonbIterator *it = JsonbIteratorInit(only->val.binary.data);
		JsonbValue	v;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			bool		known = false;
			char	   *f;

			if (tok != WJB_ELEM)
				continue;
			if (v.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"features\" must be an array of feature names")));
			f = pnstrdup(v.val.string.val, v.val.string.len);
			/* a feature, or a feature column (all its slots) */
			for (int i = 0; i < nf && !known; i++)
				known = strcmp(f, TextDatumGetCString(fn[i])) == 0;
			for (int i = 0; i < nc && !known; i++)
				known = strcmp(f, TextDatumGetCString(fc[i])) == 0;
			if (!known)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"features\" names \"%s\", which is not a feature of model \"%s\"",
								f, model)));
		}
	}
}

/* Whether string array only (option "features") has name. */
static bool
OnlyNames(Jsonb *only, const char *name)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) name;
	v.val.string.len = strlen(name);
	return findJsonbValueFromContainer(&only->root, JB_FARRAY, &v) != NULL;
}

/*
 * The features a 'data' monitor compares, and the SQL of each over the
 * source's rows s, as training encoded them: per feature column of the
 * model (columns), its value as float8, or for a categorical column of
 * the deployed version's encoding (model_versions.encoding, NULL: none)
 * each one-hot slot as CatSlotExpr has it, whose stored bins are then the
 * level's frequency.  only (option "features", or NULL) keeps the slots it
 * names, or all those of a column it names.  Returns how many, with
 * palloc'd arrays *names and *exprs.
 */
int
MonitorDataSlots(ArrayType *columns, Jsonb *encoding, Jsonb *only,
				 char ***names, char ***exprs)
{
	Datum	   *fc;
	int			nc;
	char	  **cols;
	Encoding   *e;
	int			n = 0;
	int			max;

	deconstruct_array(columns, TEXTOID, -1, false, TYPALIGN_INT, &fc, NULL, &nc);
	cols = palloc(sizeof(char *) * Max(nc, 1));
	for (int i = 0; i < nc; i++)
		cols[i] = TextDatumGetCString(fc[i]);
	e = encoding ? EncodingFromJsonb(encoding, cols, nc) : NULL;
	max = e ? e->p : nc;
	*names = palloc(sizeof(char *) * Max(max, 1));
	*exprs = palloc(sizeof(char *) * Max(max, 1));
	for (int i = 0; i < nc; i++)
	{
		CatColumn  *c = e ? e->cols[i] : NULL;
		bool		whole = only == NULL || OnlyNames(only, cols[i]);

		if (c == NULL)
		{
			if (!whole)
				continue;
			(*names)[n] = cols[i];
			(*exprs)[n++] = psprintf("(s.%s)::pg_catalog.float8",
									 quote_identifier(cols[i]));
			continue;
		}
		for (int k = 0; k < CatColumnWidth(c); k++)
		{
			char	   *slot = CatSlotName(cols[i], c, k);

			if (!whole && !OnlyNames(only, slot))
				continue;
			(*names)[n] = slot;
			(*exprs)[n++] = CatSlotExpr(cols[i], c, k);
		}
	}
	return n;
}

/*
 * An 'error' monitor sees the outcomes of its owner's trackers of scorers
 * that serve its model: created before any (a legitimate order), it would
 * otherwise wait in silence, its "observed" 0, for a tracker that the user
 * may not know it needs.  Says so once, at creation.
 */
static void
NoticeUnfedErrorMonitor(const char *name, const char *model, Oid owner)
{
	Datum		args[2];

	args[0] = CStringGetTextDatum(model);
	args[1] = ObjectIdGetDatum(owner);
	if (CatalogExecute("SELECT 1 FROM streamml.outcome_trackers t "
					   "JOIN streamml.scorers_catalog s "
					   "ON s.name OPERATOR(pg_catalog.=) t.scorer "
					   "WHERE s.model OPERATOR(pg_catalog.=) $1 "
					   "AND t.owner::pg_catalog.oid OPERATOR(pg_catalog.=) $2 LIMIT 1",
					   2, (Oid[]) {TEXTOID, OIDOID}, args, NULL, SPI_OK_SELECT) > 0)
		return;
	ereport(NOTICE,
			(errmsg("monitor \"%s\" has no outcomes of model \"%s\" to watch yet",
					name, model),
			 errdetail("An error monitor reads the outcomes that its owner's trackers join with the predictions of a scorer serving the model, and none tracks them."),
			 errhint("Create a scorer of the model with streamml.create_scorer and track its outcomes with streamml.track_outcomes.")));
}

PG_FUNCTION_INFO_V1(create_monitor);

/*
 * SQL streamml.create_monitor(name, model, kind, options): see the top of
 * the file.  The caller must have the privileges of the model's owner,
 * who owns the monitor.
 */
Datum
create_monitor(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *model = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(2));
	Jsonb	   *options = PG_GETARG_JSONB_P(3);
	char	   *action;
	char	   *cooldown;
	char	   *detector = NULL;
	char	   *params = NULL;
	char	   *model_order_by;
	char	   *model_source;
	char	   *model_path;
	ArrayType  *model_features;
	ArrayType  *model_columns;
	bool		classifier;
	int			nclasses = 0;
	Oid			owner;
	Datum		args[11];
	char		nulls[11];
	bool		isnull;

	if (strlen(name) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a monitor needs a name")));
	/* an identifier's length: the name travels in every NOTIFY payload */
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("monitor name \"%s\" is too long", name),
				 errdetail("A monitor name has at most %d bytes.", NAMEDATALEN - 1)));
	if (strcmp(kind, "error") == 0)
		OptionCheckKeys(options, ErrorKeys, "error monitor");
	else if (strcmp(kind, "data") == 0)
		OptionCheckKeys(options, DataKeys, "data monitor");
	else if (strcmp(kind, "rows") == 0)
		OptionCheckKeys(options, RowsKeys, "rows monitor");
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("monitor kind must be 'error', 'data' or 'rows'"),
				 errdetail("The kind given is '%s'.", kind)));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	owner = ModelCheckOwner(model, "monitor");
	args[0] = CStringGetTextDatum(model);
	CatalogExecute("SELECT m.classes IS NOT NULL, m.options->>'order_by', m.source, "
				   "m.search_path, m.features, m.feature_columns, "
				   "pg_catalog.cardinality(m.classes) "
				   "FROM streamml.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {TEXTOID}, args, NULL, SPI_OK_SELECT);
	classifier = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
	model_order_by = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	model_source = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	model_path = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
	model_features = DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0],
														  SPI_tuptable->tupdesc, 5, &isnull));
	model_columns = DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 6, &isnull));
	if (classifier)
		nclasses = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 7, &isnull));

	/*
	 * A 'rows' monitor counts the rows newer than the newest version's
	 * training data (its data_max): a version trained without order_by
	 * does not know it, and every row would count.
	 */
	if (strcmp(kind, "rows") == 0 &&
		CatalogExecute("SELECT CASE m.kind WHEN 'logistic' THEN 'train_logreg' "
					   "WHEN 'multinomial' THEN 'train_logreg' "
					   "WHEN 'linear' THEN 'train_linreg' "
					   "ELSE 'train_' OPERATOR(pg_catalog.||) m.kind END "
					   "FROM streamml.models m, (SELECT v.data_max FROM streamml.model_versions v "
					   "WHERE v.model OPERATOR(pg_catalog.=) $1 "
					   "ORDER BY v.version DESC, v.data_max DESC NULLS LAST LIMIT 1) l "
					   "WHERE m.name OPERATOR(pg_catalog.=) $1 AND l.data_max IS NULL",
					   1, (Oid[]) {TEXTOID}, args, NULL, SPI_OK_SELECT) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" was last trained without option \"order_by\"", model),
				 errdetail("A 'rows' monitor counts the rows newer than the training data, which a version knows only when trained with \"order_by\"."),
				 errhint("Train the model again with streamml.%s and option \"order_by\" (streamml.retrain takes no training options), then create the monitor.",
						 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1))));

	args[0] = CStringGetTextDatum(name);
	if (CatalogExecute("SELECT 1 FROM streamml.monitors_catalog "
					   "WHERE name OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, args, NULL, SPI_OK_SELECT) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("monitor \"%s\" already exists", name)));

	/* the action and its options */
	action = OptionKeyword(options, "action", "log");
	if (strcmp(action, "retrain") != 0 && strcmp(action, "notify") != 0 &&
		strcmp(action, "log") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"action\" must be 'retrain', 'notify' or 'log'"),
				 errdetail("The action given is '%s'.", action)));
	cooldown = IntervalOption(options, "cooldown", "10 minutes");
	(void) OptionInteger(options, "min_rows", 0, 0, PG_INT64_MAX);
	{
		/* pg_notify refuses these: at the first event, not here, otherwise */
		char	   *channel = OptionString(options, "channel", "streamml_monitors");

		if (channel[0] == '\0' || strlen(channel) >= NAMEDATALEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"channel\" must be a channel name of 1 to %d bytes",
							NAMEDATALEN - 1)));
	}
	{
		/* a metric of the model's task, now rather than at every retrain */
		char	   *metric = OptionKeyword(options, "deploy_metric", NULL);

		if (metric != NULL)
			CheckMetricOption("deploy_metric", metric,
							  !classifier ? MODEL_LINEAR :
							  nclasses == 2 ? MODEL_LOGISTIC : MODEL_MULTINOMIAL);
	}
	{
		int64		rb_rows;
		double		rb_alpha;

		(void) MonitorRollbackOptions(options, &rb_rows, &rb_alpha);
	}
	if (strcmp(action, "retrain") == 0 || strcmp(kind, "error") != 0)
	{
		char	   *ob = OptionString(options, "order_by", model_order_by);

		if (ob != NULL && ob[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"order_by\" must name a column")));
		if (ob == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("monitor \"%s\" needs option \"order_by\"", name),
					 errdetail("Model \"%s\" was trained without option \"order_by\"; %s.",
							   model, strcmp(kind, "error") != 0 ?
							   "the monitor finds the newest rows by it" :
							   "a retrain holds out the newest rows by it"),
					 errhint("Give the time column of the model's source as option \"order_by\".")));
	}
	if (OptionNumber(options, "test_fraction", 0.2, 0.0, 0.9) <= 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"test_fraction\" must be above 0"),
				 errdetail("A retrain deploys only a version better than the deployed one on a holdout of the newest rows.")));

	/* the kind's options */
	if (strcmp(kind, "error") == 0)
	{
		const DriftMethod *m;
		JsonbValue *p = OptionGet(options, "params");
		MemoryContext cxt = CurrentMemoryContext;

		detector = OptionKeyword(options, "detector", classifier ?
								DEFAULT_CLASSIFIER_DETECTOR :
								DEFAULT_REGRESSION_DETECTOR);
		m = DriftMethodLookup(detector);
		if (m->state_size == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("detector \"%s\" cannot be used by a monitor yet", detector),
					 errdetail("A monitor saves its detector after every batch; \"%s\" keeps a window of values.",
							   detector),
					 errhint("Use ddm, eddm, page_hinkley or cusum.")));
		if (p != NULL)
		{
			if (p->type != jbvBinary ||
				!JsonContainerIsObject(p->val.binary.data))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"params\" must be an object")));
			params = DatumGetCString(DirectFunctionCall1(jsonb_out,
														 JsonbPGetDatum(JsonbValueToJsonb(p))));
		}
		else if (OptionGet(options, "detector") == NULL)
			params = classifier ? DEFAULT_CLASSIFIER_PARAMS : DEFAULT_REGRESSION_PARAMS;
		else
			params = "{}";
		/* checks the parameters */
		(void) DriftDetectorCreate(detector, JsonbFromText(params));
		MemoryContextSwitchTo(cxt);
	}
	else if (strcmp(kind, "data") == 0)
	{
		char	   *method = OptionKeyword(options, "method", "psi");
		JsonbValue *f = OptionGet(options, "features");

		if (strcmp(method, "psi") != 0 && strcmp(method, "ks") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"method\" must be 'psi' or 'ks'"),
					 errdetail("The method given is '%s'.", method)));
		(void) OptionNumber(options, "threshold", 0.1, 0.0, HUGE_VAL);
		(void) OptionInteger(options, "window", 1000, 1, PG_INT32_MAX);
		(void) IntervalOption(options, "interval", "1 minute");
		(void) OptionString(options, "source", "");
		if (f != NULL && (f->type != jbvBinary ||
						  !JsonContainerIsArray(f->val.binary.data) ||
						  JsonContainerSize(f->val.binary.data) == 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"features\" must be a non-empty array of feature names")));
	}
	else
	{
		(void) IntervalOption(options, "interval", "1 minute");
	}
	/*
	 * a "source" table by its schema-qualified name, resolved now, as a
	 * model's is: the worker reads it under its own search_path
	 */
	if (OptionString(options, "source", NULL) != NULL)
	{
		StringInfoData b;

		initStringInfo(&b);
		appendStringInfoString(&b, "{\"source\": ");
		escape_json(&b, SourceCanonical(OptionString(options, "source", NULL)));
		appendStringInfoChar(&b, '}');
		options = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
													 JsonbPGetDatum(options),
													 DirectFunctionCall1(jsonb_in,
																		 CStringGetDatum(b.data))));
	}
	if (strcmp(kind, "error") != 0 || strcmp(action, "retrain") == 0)
		ProbeMonitorSource(kind, model, options, owner,
						   OptionString(options, "order_by", model_order_by),
						   model_source, model_path, model_features, model_columns);

	args[1] = CStringGetTextDatum(model);
	args[2] = CStringGetTextDatum(kind);
	args[3] = CStringGetTextDatum(action);
	args[4] = JsonbPGetDatum(options);
	args[5] = CStringGetTextDatum(cooldown);
	args[6] = detector ? CStringGetTextDatum(detector) : (Datum) 0;
	args[7] = params ? CStringGetTextDatum(params) : (Datum) 0;
	args[8] = ObjectIdGetDatum(owner);
	args[9] = BoolGetDatum(strcmp(kind, "error") != 0);
	memset(nulls, ' ', sizeof(nulls));
	nulls[6] = detector ? ' ' : 'n';
	nulls[7] = params ? ' ' : 'n';
	/* a "source" of the monitor's own resolves as its creator meant it */
	args[10] = CStringGetTextDatum(namespace_search_path);
	/* a rollback check guards the deployments after this one */
	CatalogExecute("INSERT INTO streamml.monitors_catalog (name, model, kind, "
				   "action, options, cooldown, detector, detector_params, owner, "
				   "next_check_at, search_path, rollback_version) VALUES ($1, $2, $3, $4, $5, "
				   "$6::interval, $7, $8::jsonb, $9, CASE WHEN $10 THEN pg_catalog.now() END, $11, "
				   "(SELECT m.deployed_version FROM streamml.models m "
				   "WHERE m.name OPERATOR(pg_catalog.=) $2))",
				   11, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID,
					   TEXTOID, TEXTOID, TEXTOID, OIDOID, BOOLOID, TEXTOID},
				   args, nulls, SPI_OK_INSERT);
	if (strcmp(kind, "error") == 0)
		NoticeUnfedErrorMonitor(name, model, owner);
	SPI_finish();
	MonitorWorkerStartAtCommit();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(drop_monitor);

/* SQL streamml.drop_monitor(name): owner only; events stay. */
Datum
drop_monitor(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Datum		arg = CStringGetTextDatum(name);
	Oid			owner;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CatalogExecute("SELECT owner FROM streamml.monitors_catalog "
				   "WHERE name OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	owner = SPI_processed == 0 ? InvalidOid :
		DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
	/* a monitor of another role does not exist for the caller (as RLS) */
	if (!OidIsValid(owner) || !has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("monitor \"%s\" does not exist", name)));
	CatalogExecute("DELETE FROM streamml.monitors_catalog "
				   "WHERE name OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_DELETE);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Records an event in streamml.model_events (SPI connected); details is
 * a JSON object's text or NULL.
 */
void
MonitorEvent(const char *model, int32 version, const char *monitor,
			 const char *event, const char *details, Oid owner)
{
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	args[0] = CStringGetTextDatum(model);
	args[1] = Int32GetDatum(version);
	nulls[1] = version > 0 ? ' ' : 'n';
	args[2] = monitor ? CStringGetTextDatum(monitor) : (Datum) 0;
	nulls[2] = monitor ? ' ' : 'n';
	args[3] = CStringGetTextDatum(event);
	args[4] = CStringGetTextDatum(details ? details : "{}");
	args[5] = ObjectIdGetDatum(owner);
	CatalogExecute("INSERT INTO streamml.model_events (model, version, monitor, "
				   "event, details, owner) VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
				   6, (Oid[]) {TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID, OIDOID},
				   args, nulls, SPI_OK_INSERT);
	if (monitor)
		CatalogExecute("UPDATE streamml.monitors_catalog SET last_event = $2, "
					   "last_event_at = pg_catalog.clock_timestamp() "
					   "WHERE name OPERATOR(pg_catalog.=) $1",
					   2, (Oid[]) {TEXTOID, TEXTOID}, (Datum[]) {args[2], args[3]},
					   NULL, SPI_OK_UPDATE);
}

/* NOTIFY channel, payload (SPI connected): sent at commit. */
void
MonitorNotify(const char *channel, const char *payload)
{
	Datum		args[2];

	/*
	 * pg_notify refuses payloads of 8000 bytes or more, and an error here
	 * would fail the outcome batch that raised the event: say less.
	 */
	if (strlen(payload) >= 8000)
		payload = "{\"truncated\": true, \"note\": \"the event's details are in streamml.model_events\"}";
	args[0] = CStringGetTextDatum(channel);
	args[1] = CStringGetTextDatum(payload);

	CatalogExecute("SELECT pg_catalog.pg_notify($1, $2)",
				   2, (Oid[]) {TEXTOID, TEXTOID}, args, NULL, SPI_OK_SELECT);
}

/* DROP OWNED (roles.c): the roles' monitors and events go. */
void
MonitorsDropOwned(Datum roles)
{
	CatalogExecute("DELETE FROM streamml.monitors_catalog WHERE owner OPERATOR(pg_catalog.=) ANY ($1)",
				   1, (Oid[]) {OIDARRAYOID}, &roles, NULL, SPI_OK_DELETE);
	CatalogExecute("DELETE FROM streamml.model_events WHERE owner OPERATOR(pg_catalog.=) ANY ($1)",
				   1, (Oid[]) {OIDARRAYOID}, &roles, NULL, SPI_OK_DELETE);
}

/*
 * REASSIGN OWNED (roles.c): the events of the roles' dropped monitors move
 * (REASSIGN is refused while the roles own a monitor).
 */
void
MonitorEventsReassignOwned(Datum roles, Oid newowner)
{
	Datum		args[2] = {roles, ObjectIdGetDatum(newowner)};

	CatalogExecute("UPDATE streamml.model_events SET owner = $2 "
				   "WHERE owner OPERATOR(pg_catalog.=) ANY ($1)",
				   2, (Oid[]) {OIDARRAYOID, OIDOID}, args, NULL, SPI_OK_UPDATE);
}
