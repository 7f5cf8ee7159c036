/*
 * train.c
 *		streamml.train_logreg and streamml.train_linreg: the training driver.
 *
 * A training run is a short sequence of SPI queries over the source, each a
 * parallel-safe aggregate that parallel workers can share:
 *
 *	1. streamml.ml_moments: means and co-moments of label and features, per
 *	   group.  This gives the standardisation, the whole solution of a linear
 *	   model (normal equations on centred, scaled data) and the first Newton
 *	   step of a logistic one (at β = 0 every weight is 1/4, so the Hessian is
 *	   the scaled covariance).
 *	2. streamml.irls_pass, once per Newton step, at the current coefficients
 *	   of every group, until the step is below tol (quadratic convergence:
 *	   usually 4 to 7 passes), with step halving when the objective rises.
 *	3. the evaluation aggregates on the holdout, for the new version and for
 *	   the deployed one (deploy 'if_better').
 *
 * All of them run with SPI_execute_snapshot under one registered snapshot,
 * the one of the calling statement, so rows inserted while training runs
 * (a Kafka stream) never mix into later passes.  The Newton systems are
 * solved in C on the standardised scale; coefficients, standard errors and
 * p-values are reported on the original scale.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "ml/ml.h"
#include "options.h"
#include "pg_streamml.h"
#include "ml/passes.h"
#include "ml/train.h"

/* The options each kind of model accepts. */
static const char *const LogregOptions[] = {
	"l1", "l2", "standardize", "max_iter", "tol", "class_weight", "weight",
	"group_by", "test_fraction", "order_by", "warm_start", "deploy",
	"deploy_metric", "solver", NULL
};
static const char *const LinregOptions[] = {
	"l1", "l2", "standardize", "weight", "group_by", "test_fraction", "order_by",
	"deploy", "deploy_metric", NULL
};

/* Parses and checks the options of a training run. */
static void
ParseOptions(TrainRun *run, Jsonb *options)
{
	OptionCheckKeys(options, run->kind == MODEL_LINEAR ? LinregOptions : LogregOptions,
					"training");
	run->l2 = OptionNumber(options, "l2", 0.0, 0.0, 1e12);
	run->l1 = OptionNumber(options, "l1", 0.0, 0.0, 1e12);
	run->standardize = OptionBool(options, "standardize", true);
	run->max_iter = (int) OptionInteger(options, "max_iter", 100, 1, 100000);
	run->tol = OptionNumber(options, "tol", 1e-8, 1e-15, 1.0);
	run->weight = OptionString(options, "weight", NULL);
	run->group_by = OptionString(options, "group_by", NULL);
	run->order_by = OptionString(options, "order_by", NULL);
	run->test_fraction = OptionNumber(options, "test_fraction", 0.0, 0.0, 0.9);
	run->warm_start = OptionBool(options, "warm_start", false);
	run->deploy = OptionString(options, "deploy", "always");
	run->deploy_metric = OptionString(options, "deploy_metric", NULL);
	{
		char	   *solver = OptionString(options, "solver", "newton");

		if (strcmp(solver, "lbfgs") == 0)
			run->lbfgs = true;
		else if (strcmp(solver, "newton") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"solver\" must be 'newton' or 'lbfgs'")));
		if (run->lbfgs && (run->group_by != NULL || run->l1 > 0.0))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("solver 'lbfgs' does not support options \"group_by\" and \"l1\" yet"),
					 errhint("Use solver 'newton'.")));
	}
	if (strcmp(run->deploy, "always") != 0 &&
		strcmp(run->deploy, "if_better") != 0 &&
		strcmp(run->deploy, "never") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"deploy\" must be 'always', 'if_better' or 'never'")));
	if (run->test_fraction > 0.0 && run->order_by == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"test_fraction\" needs option \"order_by\""),
				 errhint("The holdout is the latest rows by order_by.")));
	if (strcmp(run->deploy, "if_better") == 0 && run->test_fraction == 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("deploy 'if_better' needs a holdout"),
				 errhint("Set the options \"test_fraction\" and \"order_by\".")));
	run->class_weight = OptionGet(options, "class_weight");
}

/* Builds the weight expression of the Newton passes, class weights applied. */
static void
ResolveClassWeights(TrainRun *run, List *groups)
{
	JsonbValue *cw = run->class_weight;
	StringInfoData e;
	double	   *weights;

	run->wexpr_fit = run->wexpr;
	if (cw == NULL || cw->type == jbvNull || run->kind == MODEL_LINEAR)
		return;
	weights = palloc(sizeof(double) * run->nclasses);
	if (cw->type == jbvString &&
		cw->val.string.len == 8 && strncmp(cw->val.string.val, "balanced", 8) == 0)
	{
		/* n / (K · n_c), counting rows per class in one more query */
		StringInfoData sql;
		double		total = 0.0;

		initStringInfo(&sql);
		appendStringInfo(&sql,
						 "SELECT (%s)::int, pg_catalog.count(*)::float8 FROM %s WHERE %s AND (%s) IS NOT NULL GROUP BY 1",
						 run->yexpr, run->from, run->train_where, run->yexpr);
		RunQuery(run, sql.data, 0, NULL, NULL, NULL);
		for (int c = 0; c < run->nclasses; c++)
			weights[c] = 0.0;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			int			c = atoi(ResultText(r, 1));

			if (c >= 0 && c < run->nclasses)
			{
				weights[c] = strtod(ResultText(r, 2), NULL);
				total += weights[c];
			}
		}
		for (int c = 0; c < run->nclasses; c++)
			weights[c] = weights[c] > 0 ? total / (run->nclasses * weights[c]) : 0.0;
	}
	else if (cw->type == jbvBinary)
	{
		Jsonb	   *obj = JsonbValueToJsonb(cw);
		JsonbIterator *it;
		JsonbValue	kv;
		JsonbIteratorToken tok;

		if (!JB_ROOT_IS_OBJECT(obj))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"class_weight\" must be 'balanced' or an object of class weights")));
		it = JsonbIteratorInit(&obj->root);

		for (int c = 0; c < run->nclasses; c++)
			weights[c] = 1.0;
		while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
		{
			char	   *key;
			int			c;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(kv.val.string.val, kv.val.string.len);
			for (c = 0; c < run->nclasses; c++)
				if (strcmp(run->classes[c], key) == 0)
					break;
			/* binary labels also accept "0" and "1" as class names */
			if (c == run->nclasses && run->nclasses == 2 &&
				(strcmp(key, "0") == 0 || strcmp(key, "1") == 0))
				c = key[0] - '0';
			if (c == run->nclasses)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"class_weight\" names \"%s\", which is not a class of label \"%s\"",
								key, run->label)));
			tok = JsonbIteratorNext(&it, &kv, true);
			if (kv.type != jbvNumeric)
				weights[c] = -1.0;
			else
				weights[c] = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
																NumericGetDatum(kv.val.numeric)));
			if (!(weights[c] >= 0.0 && weights[c] <= 1e12))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("class weight of \"%s\" must be a number between 0 and 1e12",
								key)));
		}
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"class_weight\" must be 'balanced' or an object of class weights")));

	initStringInfo(&e);
	appendStringInfo(&e, "(%s) * (ARRAY[", run->wexpr);
	for (int c = 0; c < run->nclasses; c++)
		appendStringInfo(&e, "%s%.17g", c > 0 ? "," : "", weights[c]);
	appendStringInfo(&e, "]::float8[])[(%s)::int + 1]", run->yexpr);
	run->wexpr_fit = e.data;
	run->class_weights = weights;
}

/* Array of k values of one group in the catalog's shape for that part. */
static Datum
GroupArray(GroupFit *g, const double *v, bool intercepts)
{
	int			n1 = g->p + 1;
	int			n = 0;
	Datum	   *d = palloc(sizeof(Datum) * Max(g->k, 1));

	for (int b = 0; b < g->blocks; b++)
		for (int j = intercepts ? 0 : 1; j < (intercepts ? 1 : n1); j++)
			d[n++] = Float8GetDatum(v ? v[b * n1 + j] : NAN);
	return PointerGetDatum(construct_array(d, n, FLOAT8OID, 8, FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

/* Array of the per-feature standardisation values of a group. */
static Datum
GroupVector(GroupFit *g, const double *v)
{
	return PointerGetDatum(Float8ArrayBuild(v, g->p));
}

/* The names of a group's aliased features as text[], or 0 when none. */
static Datum
AliasedArray(TrainRun *run, GroupFit *g)
{
	Datum	   *names;
	int			n = 0;

	if (g->naliased == 0)
		return (Datum) 0;
	names = palloc(sizeof(Datum) * g->naliased);
	for (int j = 0; j < g->p; j++)
		if (g->aliased[j])
			names[n++] = CStringGetTextDatum(FeatureName(run, j));
	return PointerGetDatum(construct_array(names, n, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

/* True when every group's fit converged and none is separable. */
static bool
RunConverged(List *groups)
{
	ListCell   *lc;

	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);

		if (!g->converged || g->separable)
			return false;
	}
	return true;
}

/*
 * Records the run in the catalog: creates or updates the model, inserts one
 * version row per group, and deploys according to the deploy option.
 * Returns the version number.
 */
static int
RecordRun(TrainRun *run, List *groups, Jsonb *options, bool *deployed)
{
	int			version;
	ListCell   *lc;

	ModelUpsert(run, options);
	version = ModelNextVersion(run->model);
	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);
		ModelVersionRow row;

		if (g->beta == NULL)
			continue;
		row.group_key = g->key;
		row.intercepts = GroupArray(g, g->beta, true);
		row.coefficients = GroupArray(g, g->beta, false);
		row.std_errors = PointerGetDatum(Float8ArrayBuild(g->se, g->k));
		row.p_values = PointerGetDatum(Float8ArrayBuild(g->pvalue, g->k));
		row.means = GroupVector(g, g->mean);
		row.scales = GroupVector(g, g->scale);
		row.rows_used = g->count;
		row.rows_skipped = g->skipped + run->extra_skipped;
		row.iterations = g->iterations;
		row.converged = g->converged;
		row.metrics = g->metrics;
		row.df = g->df;
		row.has_df = (run->kind == MODEL_LINEAR);
		row.aliased = AliasedArray(run, g);
		ModelInsertVersion(run, version, &row);
	}

	/* deploy */
	*deployed = false;
	if (!RunConverged(groups) && OptionGet(options, "deploy") == NULL)
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
		*deployed = true;
	else if (strcmp(run->deploy, "if_better") == 0)
	{
		double		new_score = 0.0;
		double		old_score = 0.0;
		double		rows = 0.0;
		bool		have_old = false;

		foreach(lc, groups)
		{
			GroupFit   *g = lfirst(lc);

			if (!isfinite(g->holdout_score) || !(g->holdout_rows > 0))
				continue;
			rows += g->holdout_rows;
			new_score += g->holdout_rows * g->holdout_score;
			if (isfinite(g->deployed_score))
			{
				have_old = true;
				old_score += g->holdout_rows * g->deployed_score;
			}
		}
		if (!have_old)
			*deployed = true;
		else if (MetricHigherIsBetter(run->deploy_metric))
			*deployed = new_score > old_score;
		else
			*deployed = new_score < old_score;
		if (!*deployed)
			ereport(NOTICE,
					(errmsg("version %d of model \"%s\" is not deployed: its holdout %s %g is not better than the deployed version's %g",
							version, run->model, run->deploy_metric,
							rows > 0 ? new_score / rows : NAN,
							rows > 0 ? old_score / rows : NAN)));
	}
	if (*deployed)
		ModelDeploy(run->model, version);
	return version;
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
TrainModel(FunctionCallInfo fcinfo, ModelKind kind, text *model, text *source,
		   text *label, ArrayType *fa, Jsonb *options)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TrainRun   *run = palloc0(sizeof(TrainRun));
	StringInfoData sql;
	List	   *groups = NIL;
	ListCell   *lc;
	instr_time	start;
	instr_time	duration;
	int			version;
	bool		deployed;
	ErrorContextCallback errcallback;

	INSTR_TIME_SET_CURRENT(start);
	InitMaterializedSRF(fcinfo, 0);

	run->cxt = CurrentMemoryContext;
	run->kind = kind;
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
	SetFeatureColumns(run, fa);
	ParseOptions(run, options);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ModelCheckTrainOwner(run->model);
	/* one snapshot, the calling statement's, for every pass of the run */
	run->snapshot = RegisterSnapshot(GetActiveSnapshot());

	ResolveSource(run);
	ResolveDeployMetric(run);
	ResolveSplit(run);

	/* pass 1: moments, of the expected number of features */
	ResolveFeatureLength(run);
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT %s AS g, streamml.ml_moments(%s, %s, %s, %d, %s) FROM %s WHERE %s%s",
					 run->gexpr, run->yexpr, run->xexpr, run->wexpr, run->p,
					 CheckModelSize(run) ? "true" : "false", run->from,
					 run->train_where,
					 run->group_by ? " GROUP BY 1 ORDER BY 1" : "");
	RunQuery(run, sql.data, 0, NULL, NULL, NULL);
	run->passes++;
	{
		SPITupleTable *tt = SPI_tuptable;
		uint64		nrows = SPI_processed;

		for (uint64 r = 0; r < nrows; r++)
		{
			char	   *key;
			int			len;
			double	   *m;
			GroupFit   *g;

			SPI_tuptable = tt;
			key = ResultText(r, 1);
			m = ResultFloat8Array(r, 2, &len, run->cxt);
			if (m == NULL)
				continue;
			g = GroupFromMoments(run, key ? pstrdup(key) : NULL, m, len);
			if (g->gamma == NULL)
			{
				run->extra_skipped += g->skipped;
				continue;
			}
			groups = lappend(groups, g);
			if (run->kind == MODEL_LINEAR)
				GroupFitLinear(run, g, g->moments_mean, g->moments_comom);
			else if (run->kind == MODEL_LOGISTIC)
			{
				double		ymean = g->moments_mean[0];

				if (ymean <= 0.0 || ymean >= 1.0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("label column \"%s\" has a single class%s%s",
									run->label,
									g->key ? " in group " : "",
									g->key ? quote_literal_cstr(g->key) : ""),
							 errdetail("Classification needs both classes in the training data.")));
			}
		}
		SPI_freetuptable(tt);
	}
	NoticeMalformedRows(run, run->malformed);
	if (groups == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no usable rows in \"%s\"", run->source),
				 errdetail("Rows whose label, weight or features are null or not finite are skipped.")));

	if (run->kind != MODEL_LINEAR)
	{
		ResolveClassWeights(run, groups);
		if (run->warm_start && LoadDeployed(run, groups, true))
			;
		else if (run->kind == MODEL_LOGISTIC && run->class_weights == NULL)
		{
			/* the moments give the first Newton step for free */
			foreach(lc, groups)
			{
				GroupFit   *g = lfirst(lc);

				if (!GroupLdaStart(run, g, g->moments_mean, g->moments_comom))
					GroupFirstStepFromMoments(run, g, g->moments_mean,
											  g->moments_comom);
			}
		}
		if (run->lbfgs && run->kind != MODEL_LOGISTIC)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("solver 'lbfgs' is for binary models only"),
					 errhint("Use solver 'newton'.")));
		if (run->lbfgs)
			FitLbfgs(run, linitial(groups));
		else
			FitClassification(run, groups);
	}

	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);

		GroupToOriginalScale(run, g, run->kind == MODEL_LINEAR);
		if (g->naliased > 0)
		{
			StringInfoData names;

			initStringInfo(&names);
			for (int j = 0; j < g->p; j++)
				if (g->aliased[j])
					appendStringInfo(&names, "%s%s", names.len > 0 ? ", " : "",
									 quote_identifier(FeatureName(run, j)));
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("model \"%s\"%s%s has aliased features: %s",
							run->model, g->key ? " in group " : "",
							g->key ? quote_literal_cstr(g->key) : "", names.data),
					 errdetail("Each is an exact linear combination of the features before it, so its coefficient is not identifiable; it is held at 0 with no standard error (R's lm reports NA)."),
					 errhint("Drop the aliased features; model_versions.aliased lists them.")));
		}
		if (g->separable)
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("the classes of model \"%s\"%s%s are perfectly separable",
							run->model, g->key ? " in group " : "",
							g->key ? quote_literal_cstr(g->key) : ""),
					 errdetail("The maximum likelihood coefficients are infinite; the reported ones are where training stopped."),
					 errhint("Set option \"l2\" to a positive value.")));
		else if (!g->converged && run->kind != MODEL_LINEAR)
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("model \"%s\"%s%s did not converge in %d iterations",
							run->model, g->key ? " in group " : "",
							g->key ? quote_literal_cstr(g->key) : "",
							g->iterations),
					 errhint("Raise option \"max_iter\" or \"tol\", or set option \"l2\".")));
	}

	HoldoutScore(run, groups);

	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	run->duration = INSTR_TIME_GET_DOUBLE(duration);
	version = RecordRun(run, groups, options, &deployed);

	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);
		Datum		values[9];
		bool		nulls[9] = {false};

		values[0] = CStringGetTextDatum(run->model);
		values[1] = Int32GetDatum(version);
		values[2] = g->key ? CStringGetTextDatum(g->key) : (Datum) 0;
		nulls[2] = (g->key == NULL);
		values[3] = Int64GetDatum(g->count);
		values[4] = Int64GetDatum(g->skipped + run->extra_skipped);
		values[5] = Int32GetDatum(g->iterations);
		values[6] = BoolGetDatum(g->converged);
		values[7] = BoolGetDatum(deployed);
		values[8] = DirectFunctionCall1(jsonb_in, CStringGetDatum(g->metrics));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	UnregisterSnapshot(run->snapshot);
	SPI_finish();
	error_context_stack = errcallback.previous;
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(train_logreg);

/* SQL streamml.train_logreg(model, source, label, features, options). */
Datum
train_logreg(PG_FUNCTION_ARGS)
{
	return TrainModel(fcinfo, MODEL_LOGISTIC, PG_GETARG_TEXT_PP(0),
					  PG_GETARG_TEXT_PP(1), PG_GETARG_TEXT_PP(2),
					  PG_GETARG_ARRAYTYPE_P(3), PG_GETARG_JSONB_P(4));
}

PG_FUNCTION_INFO_V1(train_linreg);

/* SQL streamml.train_linreg(model, source, target, features, options). */
Datum
train_linreg(PG_FUNCTION_ARGS)
{
	return TrainModel(fcinfo, MODEL_LINEAR, PG_GETARG_TEXT_PP(0),
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
	text	   *source;
	text	   *label;
	ArrayType  *features;
	Jsonb	   *spec;
	char	   *order_by;
	char	   *last;
	bool		trained;
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
			appendStringInfo(&sql, " WHERE s.%s > %s",
							 quote_identifier(a->order_by),
							 quote_literal_cstr(a->last));
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
	TrainModel(a->fcinfo, a->kind, a->model, a->source, a->label,
			   a->features, a->spec);
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
 * pg_cron), so that it can never act with the caller's privileges.
 */
Datum
retrain(PG_FUNCTION_ARGS)
{
	RetrainArgs a;
	Jsonb	   *options = PG_GETARG_JSONB_P(1);
	char	   *name;
	Datum		arg;
	Datum		spec_datums[4];
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
				   " ORDER BY v.version DESC, v.data_max DESC NULLS LAST LIMIT 1) "
				   "FROM streamml.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	a.kind = strcmp(ResultText(0, 1), "linear") == 0 ? MODEL_LINEAR : MODEL_LOGISTIC;
	for (int i = 0; i < 4; i++)
		spec_datums[i] = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc,
														 i + 2, &isnull),
										   false, -1);
	{
		char	   *order_by = ResultText(0, 6);
		char	   *last = ResultText(0, 7);

		MemoryContextSwitchTo(cxt);
		a.order_by = order_by ? pstrdup(order_by) : NULL;
		a.last = last ? pstrdup(last) : NULL;
	}
	SPI_finish();
	MemoryContextSwitchTo(cxt);
	a.source = DatumGetTextPP(spec_datums[0]);
	a.label = DatumGetTextPP(spec_datums[1]);
	a.features = DatumGetArrayTypeP(spec_datums[2]);
	a.spec = DatumGetJsonbP(spec_datums[3]);
	RunAsOwner(owner, RetrainAsOwner, &a);
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
