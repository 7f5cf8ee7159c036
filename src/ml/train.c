/*
 * train.c
 *		streamml.train_logreg, streamml.train_linreg and streamml.retrain:
 *		the training driver.
 *
 * A training run is a short sequence of SPI queries over the source, each a
 * parallel-safe aggregate that parallel workers can share, all run with
 * SPI_execute_snapshot under one registered snapshot, the one of the
 * calling statement, so rows inserted while training runs (a Kafka stream)
 * never mix into later passes.  The driver goes through the phases, each in
 * its own file:
 *
 *	options		train_options.c: the options of the kind, checked before
 *				anything is read;
 *	source		train_source.c: the columns the run names, the SQL over them,
 *				the holdout split by order_by;
 *	fit			the learner (TrainLearner, train.h): for the GLMs, glm.c and
 *				its solvers in glm_solve.c (moments, Newton/IRLS, coordinate
 *				descent, L-BFGS);
 *	holdout		the learner's score, holdout.c for the GLMs: the new version
 *				and the deployed one on the same held-out rows;
 *	record		model_catalog.c, the one writer of the model catalog: the
 *				model, then a version row per group (the learner's record);
 *				then the driver deploys by the deploy option.
 *
 * A new family of models (trees) is a new TrainLearner: the driver, the
 * source, the split and the deploy decision stay as they are.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "ml/ml.h"
#include "ml/train.h"
#include "options.h"
#include "pg_streamml.h"

/* True when every group's fit converged and none is separable. */
static bool
RunConverged(TrainOutcome *outcomes, int n)
{
	for (int i = 0; i < n; i++)
		if (!outcomes[i].converged || outcomes[i].separable)
			return false;
	return true;
}

/* The scores the last deploy 'if_better' compared (train.h). */
DeployDecision LastDeployDecision;

/*
 * Decides whether version "version" of the run is deployed, by the deploy
 * option: 'always' (unless it did not converge and the option was not
 * given), 'never', or 'if_better' than the deployed version on the same
 * holdout, weighting each group's score by its holdout rows.  With no
 * holdout row scored, 'if_better' deploys only a model's first version.
 */
static bool
DecideDeploy(TrainRun *run, TrainOutcome *outcomes, int n, Jsonb *options,
			 int version)
{
	bool		deployed = false;

	if (!RunConverged(outcomes, n) && OptionGet(options, "deploy") == NULL)
	{
		/* the default "always" never deploys a run that did not converge */
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("version %d of model \"%s\" is not deployed: training did not converge",
						version, run->model),
				 errdetail("A model that did not converge can have arbitrarily large coefficients and standard errors."),
				 errhint("Deploy it with streamml.deploy or option \"deploy\": \"always\" if you want it anyway.")));
	}
	else if (strcmp(run->deploy, "always") == 0)
		deployed = true;
	else if (strcmp(run->deploy, "if_better") == 0)
	{
		double		new_score = 0.0;
		double		old_score = 0.0;
		double		rows = 0.0;
		bool		have_old = false;

		for (int i = 0; i < n; i++)
		{
			TrainOutcome *o = &outcomes[i];

			if (!isfinite(o->holdout_score) || !(o->holdout_rows > 0))
				continue;
			rows += o->holdout_rows;
			new_score += o->holdout_rows * o->holdout_score;
			if (isfinite(o->deployed_score))
			{
				have_old = true;
				old_score += o->holdout_rows * o->deployed_score;
			}
		}
		/* both scores, for the monitors' not_deployed events */
		LastDeployDecision.valid = true;
		strlcpy(LastDeployDecision.metric, run->deploy_metric, sizeof(LastDeployDecision.metric));
		LastDeployDecision.new_score = rows > 0 ? new_score / rows : NAN;
		LastDeployDecision.old_score = have_old && rows > 0 ? old_score / rows : NAN;
		if (rows == 0 && ModelDeployedVersion(run->model) > 0)
		{
			/* nothing to compare on: the version served stays */
			ereport(NOTICE,
					(errmsg("version %d of model \"%s\" is not deployed: no holdout row was scored to compare it with the deployed version",
							version, run->model),
					 errhint("Give option \"test_fraction\" a value that leaves holdout rows.")));
			deployed = false;
		}
		else if (!have_old)
			deployed = true;
		else if (MetricHigherIsBetter(run->deploy_metric))
			deployed = new_score > old_score;
		else
			deployed = new_score < old_score;
		if (!deployed && rows > 0)
			ereport(NOTICE,
					(errmsg("version %d of model \"%s\" is not deployed: its holdout %s %g is not better than the deployed version's %g",
							version, run->model, run->deploy_metric,
							rows > 0 ? new_score / rows : NAN,
							rows > 0 ? old_score / rows : NAN)));
	}
	return deployed;
}

/*
 * Records the run in the catalog: creates or updates the model, has the
 * learner insert one version row per group, and deploys according to the
 * deploy option.  Returns the version number.
 */
static int
RecordRun(TrainRun *run, const TrainLearner *learner, List *groups,
		  TrainOutcome *outcomes, Jsonb *options, bool *deployed)
{
	int			version;

	ModelUpsert(run, options);
	version = ModelNextVersion(run->model);
	learner->record(run, groups, version);
	RecordFeatureBins(run, version);
	*deployed = DecideDeploy(run, outcomes, list_length(groups), options,
							 version);
	if (*deployed)
		ModelDeploy(run->model, version);
	return version;
}

/* The learner of a family of models. */
static const TrainLearner *
LearnerFor(ModelFamily family)
{
	return family == FAMILY_GLM ? &GlmLearner : &TreeLearner;
}

/* The family of a model from its catalog kind. */
static ModelFamily
FamilyFromKind(const char *kind)
{
	if (strcmp(kind, "gbt") == 0)
		return FAMILY_GBT;
	if (strcmp(kind, "forest") == 0)
		return FAMILY_FOREST;
	if (strcmp(kind, "tree") == 0)
		return FAMILY_TREE;
	return FAMILY_GLM;
}

/* Checks a model name: not empty, not too long for the predict cache. */
static void
CheckModelName(const char *model)
{
	if (model[0] == '\0' || strlen(model) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("model name must have between 1 and %d bytes",
						NAMEDATALEN - 1)));
}

/* Error context of a training run: "training model "m"". */
static void
TrainErrorContext(void *arg)
{
	errcontext("training model \"%s\"", (const char *) arg);
}

/*
 * The shared body of train_logreg and train_linreg: one row per group in
 * the result (model, version, group_key, rows_used, rows_skipped,
 * iterations, converged, deployed, metrics).
 */
static Datum
TrainModel(FunctionCallInfo fcinfo, ModelKind kind, ModelFamily family,
		   text *model, text *source, text *label, ArrayType *fa,
		   Jsonb *options)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TrainRun   *run = palloc0(sizeof(TrainRun));
	const TrainLearner *learner = LearnerFor(family);
	List	   *groups;
	TrainOutcome *outcomes;
	int			ngroups;
	instr_time	start;
	instr_time	duration;
	int			version;
	bool		deployed;
	ErrorContextCallback errcallback;
	int			text_nest;

	INSTR_TIME_SET_CURRENT(start);
	InitMaterializedSRF(fcinfo, 0);

	run->cxt = CurrentMemoryContext;
	run->kind = kind;
	run->family = family;
	run->model = text_to_cstring(model);
	run->source = text_to_cstring(source);
	run->label = text_to_cstring(label);
	run->p = -1;
	CheckModelName(run->model);
	/* every error of the run names the model it concerns */
	errcallback.callback = TrainErrorContext;
	errcallback.arg = run->model;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	run->source = SourceCanonical(run->source);
	SetFeatureColumns(run, fa);
	ParseOptions(run, options);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	text_nest = TextSettingsPin();
	CatalogFirstPath();
	ModelCheckTrainOwner(run->model);
	/* one snapshot, the calling statement's, for every pass of the run */
	run->snapshot = RegisterSnapshot(GetActiveSnapshot());

	ResolveSource(run);
	ResolveDeployMetric(run);
	ResolveSplit(run);
	ResolveCategories(run);

	groups = learner->fit(run);
	/* a group without one usable training row gets no model: say so */
	if (run->group_by && run->empty_groups > 0 &&
		LeagueNoticeFirst(psprintf("empty groups " INT64_FORMAT " " INT64_FORMAT,
								   run->empty_groups, run->empty_group_rows)))
		ereport(NOTICE,
				(errmsg_plural(INT64_FORMAT " group of model \"%s\" has no training row to learn from: no model for it",
							   INT64_FORMAT " groups of model \"%s\" have no training row to learn from: no model for them",
							   run->empty_groups, run->empty_groups, run->model),
				 errdetail("Their " INT64_FORMAT " skipped rows are in no group's rows_skipped.",
						   run->empty_group_rows)));
	learner->score(run, groups);
	ngroups = list_length(groups);
	outcomes = palloc(sizeof(TrainOutcome) * ngroups);
	for (int i = 0; i < ngroups; i++)
		learner->outcome(run, list_nth(groups, i), &outcomes[i]);

	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	run->duration = INSTR_TIME_GET_DOUBLE(duration);
	version = RecordRun(run, learner, groups, outcomes, options, &deployed);

	for (int i = 0; i < ngroups; i++)
	{
		TrainOutcome *o = &outcomes[i];
		Datum		values[9];
		bool		nulls[9] = {false};

		values[0] = CStringGetTextDatum(run->model);
		values[1] = Int32GetDatum(version);
		values[2] = o->key ? CStringGetTextDatum(o->key) : (Datum) 0;
		nulls[2] = (o->key == NULL);
		values[3] = Int64GetDatum(o->rows_used);
		values[4] = Int64GetDatum(o->rows_skipped);
		values[5] = Int32GetDatum(o->iterations);
		values[6] = BoolGetDatum(o->converged);
		values[7] = BoolGetDatum(deployed);
		values[8] = DirectFunctionCall1(jsonb_in, CStringGetDatum(o->metrics));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	UnregisterSnapshot(run->snapshot);
	TextSettingsRestore(text_nest);
	SPI_finish();
	error_context_stack = errcallback.previous;
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(train_logreg);

/* SQL streamml.train_logreg(model, source, label, features, options). */
Datum
train_logreg(PG_FUNCTION_ARGS)
{
	return TrainModel(fcinfo, MODEL_LOGISTIC, FAMILY_GLM, PG_GETARG_TEXT_PP(0),
					  PG_GETARG_TEXT_PP(1), PG_GETARG_TEXT_PP(2),
					  PG_GETARG_ARRAYTYPE_P(3), PG_GETARG_JSONB_P(4));
}

PG_FUNCTION_INFO_V1(train_linreg);

/* SQL streamml.train_linreg(model, source, target, features, options). */
Datum
train_linreg(PG_FUNCTION_ARGS)
{
	return TrainModel(fcinfo, MODEL_LINEAR, FAMILY_GLM, PG_GETARG_TEXT_PP(0),
					  PG_GETARG_TEXT_PP(1), PG_GETARG_TEXT_PP(2),
					  PG_GETARG_ARRAYTYPE_P(3), PG_GETARG_JSONB_P(4));
}

PG_FUNCTION_INFO_V1(train_gbt);

/* SQL streamml.train_gbt(model, source, target, features, options). */
Datum
train_gbt(PG_FUNCTION_ARGS)
{
	return TrainModel(fcinfo, MODEL_LINEAR, FAMILY_GBT, PG_GETARG_TEXT_PP(0),
					  PG_GETARG_TEXT_PP(1), PG_GETARG_TEXT_PP(2),
					  PG_GETARG_ARRAYTYPE_P(3), PG_GETARG_JSONB_P(4));
}

PG_FUNCTION_INFO_V1(train_forest);

/* SQL streamml.train_forest(model, source, target, features, options). */
Datum
train_forest(PG_FUNCTION_ARGS)
{
	return TrainModel(fcinfo, MODEL_LINEAR, FAMILY_FOREST, PG_GETARG_TEXT_PP(0),
					  PG_GETARG_TEXT_PP(1), PG_GETARG_TEXT_PP(2),
					  PG_GETARG_ARRAYTYPE_P(3), PG_GETARG_JSONB_P(4));
}

PG_FUNCTION_INFO_V1(train_tree);

/* SQL streamml.train_tree(model, source, target, features, options). */
Datum
train_tree(PG_FUNCTION_ARGS)
{
	return TrainModel(fcinfo, MODEL_LINEAR, FAMILY_TREE, PG_GETARG_TEXT_PP(0),
					  PG_GETARG_TEXT_PP(1), PG_GETARG_TEXT_PP(2),
					  PG_GETARG_ARRAYTYPE_P(3), PG_GETARG_JSONB_P(4));
}

/* The options streamml.retrain accepts. */
static const char *const RetrainOptions[] = {"min_new_rows", NULL};

/* A retrain run as the model's owner (RetrainAsOwner). */
typedef struct RetrainArgs
{
	FunctionCallInfo fcinfo;
	text	   *model;
	double		min_new;
	ModelKind	kind;
	ModelFamily family;
	text	   *source;
	text	   *label;
	ArrayType  *features;
	Jsonb	   *spec;
	char	   *order_by;
	char	   *last;
	bool		trained;
	bool		league;
} RetrainArgs;

/*
 * The body of retrain, run as the model's owner: counts the new rows for
 * min_new_rows, then trains from the stored spec.
 */
static void
RetrainAsOwner(void *arg)
{
	RetrainArgs *a = arg;
	char	   *name = text_to_cstring(a->model);

	if (a->min_new >= 0)
	{
		StringInfoData sql;
		int64		fresh;
		bool		isnull;

		if (a->order_by == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"min_new_rows\" needs a model trained with option \"order_by\""),
					 errdetail("New rows are those whose order_by value is above the newest one of the last run of model \"%s\".",
							   name)));
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		initStringInfo(&sql);
		appendStringInfo(&sql, "SELECT pg_catalog.count(*) FROM %s",
						 SourceFromItem(text_to_cstring(a->source)));
		if (a->last != NULL)
			appendStringInfo(&sql, " WHERE %s",
							 NewerRowsCondition(SourceFromItem(text_to_cstring(a->source)),
												a->order_by, a->last));
		if (SPI_execute(sql.data, true, 0) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not count the new rows of model \"%s\"", name);
		fresh = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
		if (fresh < a->min_new)
		{
			ereport(NOTICE,
					(errmsg("model \"%s\" is not retrained: " INT64_FORMAT " new rows since its last run, fewer than min_new_rows %.0f",
							name, fresh, a->min_new)));
			InitMaterializedSRF(a->fcinfo, 0);
			return;
		}
	}
	if (a->league)
		LeagueRun(a->fcinfo, a->model, a->source, a->label, a->features,
				  a->spec, true);
	else
		TrainModel(a->fcinfo, a->kind, a->family, a->model, a->source,
				   a->label, a->features, a->spec);
	a->trained = true;
}

PG_FUNCTION_INFO_V1(retrain);

/*
 * SQL streamml.retrain(model, options): trains the model again from its
 * stored spec (source, label, features, options), returning the rows of
 * train_logreg or train_linreg.  With option min_new_rows, only when at
 * least that many rows newer than the last run's newest (by the model's
 * order_by) have arrived; otherwise it returns no row and says why in a
 * NOTICE.  Scheduled by streamml.schedule_training through pg_cron.
 *
 * The stored source is SQL its owner wrote: it runs as the owner, in a
 * security-restricted operation, whoever calls retrain (a superuser,
 * pg_cron), so that it can never act with the caller's privileges, and
 * under the owner's search_path of training time for a query source (a
 * table source is stored schema-qualified; it runs with pg_catalog only),
 * never the caller's.
 */
Datum
retrain(PG_FUNCTION_ARGS)
{
	RetrainArgs a;
	Jsonb	   *options = PG_GETARG_JSONB_P(1);
	char	   *name;
	Datum		arg;
	Datum		spec_datums[4];
	char	   *search_path;
	MemoryContext cxt = CurrentMemoryContext;
	Oid			owner;
	bool		isnull;

	memset(&a, 0, sizeof(a));
	a.fcinfo = fcinfo;
	a.model = PG_GETARG_TEXT_PP(0);
	name = text_to_cstring(a.model);
	OptionCheckKeys(options, RetrainOptions, "retrain");
	a.min_new = (double) OptionInteger(options, "min_new_rows", -1, 0,
									   INT64CONST(1000000000000000));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	owner = ModelCheckOwner(name, "retrain");
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the owner of model \"%s\" no longer exists", name),
				 errhint("Train the model again with streamml.train_logreg or streamml.train_linreg.")));
	arg = PointerGetDatum(a.model);
	CatalogExecute("SELECT m.kind, m.source, m.label, m.feature_columns, m.options, "
				   "m.options->>'order_by', "
				   "(SELECT v.data_max FROM streamml.model_versions v "
				   " WHERE v.model OPERATOR(pg_catalog.=) m.name "
				   " ORDER BY v.version DESC, v.data_max DESC NULLS LAST LIMIT 1), "
				   "m.search_path "
				   "FROM streamml.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	a.kind = strcmp(ResultText(0, 1), "linear") == 0 ? MODEL_LINEAR : MODEL_LOGISTIC;
	a.family = FamilyFromKind(ResultText(0, 1));
	a.league = strcmp(ResultText(0, 1), "league") == 0;
	for (int i = 0; i < 4; i++)
		spec_datums[i] = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc,
														 i + 2, &isnull),
										   false, -1);
	{
		char	   *order_by = ResultText(0, 6);
		char	   *last = ResultText(0, 7);
		char	   *path = ResultText(0, 8);

		MemoryContextSwitchTo(cxt);
		a.order_by = order_by ? pstrdup(order_by) : NULL;
		a.last = last ? pstrdup(last) : NULL;
		search_path = path ? pstrdup(path) : NULL;
	}
	SPI_finish();
	MemoryContextSwitchTo(cxt);
	a.source = DatumGetTextPP(spec_datums[0]);
	a.label = DatumGetTextPP(spec_datums[1]);
	a.features = DatumGetArrayTypeP(spec_datums[2]);
	a.spec = DatumGetJsonbP(spec_datums[3]);
	RunAsOwnerWithPath(owner, search_path, RetrainAsOwner, &a);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(ml_pg_cron_database);

/*
 * SQL streamml.ml_pg_cron_database(): the database pg_cron runs jobs from
 * (cron.database_name), NULL when pg_cron is not loaded.  pg_cron defines
 * that setting when, and only when, it is loaded (it refuses to load
 * outside shared_preload_libraries); a value set in postgresql.conf without
 * it is only a placeholder.  Read here because the setting is hidden from
 * users without pg_read_all_settings.
 */
Datum
ml_pg_cron_database(PG_FUNCTION_ARGS)
{
	const char *db = GetConfigOption("cron.database_name", true, false);

	if (db == NULL ||
		(GetConfigOptionFlags("cron.database_name", true) & GUC_CUSTOM_PLACEHOLDER))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(db));
}
