/*
 * holdout.c
 *		Scoring a training run: the metrics of each group on the holdout
 *		(or in-sample), and the deployed version's on the same rows for
 *		deploy 'if_better'.
 *
 * With test_fraction and order_by, the latest rows of the source are held
 * out of training (train_source.c computes the cutoff).  After the fit, one
 * query scores them with the evaluation aggregate of the model's kind over
 * streamml.ml_score of the new coefficients, and, for deploy 'if_better',
 * a second one with the deployed version's coefficients (LoadDeployed), so
 * that champion and challenger are compared on the same rows under the same
 * snapshot.  A deployed version with other features cannot score these
 * rows: its own stored holdout score stands in.  Without a holdout, a
 * linear model is scored in-sample by the same query and a classification
 * model from its last Newton pass (TrainingMetrics).  LoadDeployed also
 * gives warm_start its starting point.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "ml/ml.h"
#include "ml/passes.h"
#include "ml/train.h"

/*
 * Errors unless metric, the value of option "option" (deploy_metric of a
 * training run, metric of a league), is one the holdout reports for models
 * of this kind; the hint lists them.  Every caller checks it before it
 * trains anything.
 */
void
CheckMetricOption(const char *option, const char *metric, ModelKind kind)
{
	static const char *const linear[] = {"rmse", "mae", "r2", NULL};
	static const char *const logistic[] = {"roc_auc", "pr_auc", "accuracy",
	"precision", "recall", "f1", "log_loss", NULL};
	static const char *const multinomial[] = {"accuracy", "log_loss", NULL};
	const char *const *known = kind == MODEL_LINEAR ? linear :
		kind == MODEL_LOGISTIC ? logistic : multinomial;
	StringInfoData list;

	initStringInfo(&list);
	for (int i = 0; known[i] != NULL; i++)
	{
		if (strcmp(known[i], metric) == 0)
			return;
		appendStringInfo(&list, "%s%s", i > 0 ? ", " : "", known[i]);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" names an unknown metric: \"%s\"",
					option, metric),
			 errhint("The metrics of %s are: %s.",
					 kind == MODEL_LINEAR ? "a regression (a numeric target)" :
					 kind == MODEL_LOGISTIC ? "a binary classification (a target of two classes)" :
					 "a multiclass classification (a target of more than two classes)",
					 list.data)));
}

/* True when a larger value of the metric is better. */
bool
MetricHigherIsBetter(const char *metric)
{
	return !(strcmp(metric, "rmse") == 0 || strcmp(metric, "mae") == 0 ||
			 strcmp(metric, "log_loss") == 0);
}

/* In-sample metrics of a classification group, from its last pass. */
static char *
TrainingMetrics(TrainRun *run, GroupFit *g)
{
	StringInfoData b;
	double		n = g->last[IRLS_OUT_COUNT];
	double		wsum = g->last[IRLS_OUT_WEIGHT];

	initStringInfo(&b);
	appendStringInfoChar(&b, '{');
	if (run->kind == MODEL_LINEAR)
	{
		JsonAppendNumber(&b, "r2", g->r2);
		JsonAppendNumber(&b, "rmse", sqrt(g->loss / g->w) * g->yunit);
	}
	else
	{
		double		tp = g->last[IRLS_OUT_TP];
		double		fp = g->last[IRLS_OUT_FP];
		double		fn = g->last[IRLS_OUT_FN];

		JsonAppendNumber(&b, "accuracy", n > 0 ? g->last[IRLS_OUT_CORRECT] / n : NAN);
		JsonAppendNumber(&b, "log_loss", wsum > 0 ? g->loss / wsum : NAN);
		if (run->kind == MODEL_LOGISTIC)
		{
			double		prec = (tp + fp) > 0 ? tp / (tp + fp) : 0.0;
			double		rec = (tp + fn) > 0 ? tp / (tp + fn) : 0.0;

			JsonAppendNumber(&b, "precision", prec);
			JsonAppendNumber(&b, "recall", rec);
			JsonAppendNumber(&b, "f1", (prec + rec) > 0 ? 2 * prec * rec / (prec + rec) : 0.0);
		}
	}
	appendStringInfoString(&b, ", \"on\": \"training\"}");
	return b.data;
}

/* Builds the params argument of streamml.ml_score: [b0, b1..bp] per group. */
static Datum
BuildScoreParams(List *groups, bool deployed, Datum *keys, int *ngroups)
{
	ListCell   *lc;
	int			len = 0;
	int			n = 0;
	int			ng = 0;
	Datum	   *d;
	Datum	   *kd;
	int			dims[2];
	int			lbs[2] = {1, 1};

	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);
		double	   *b = deployed ? g->deployed_coef : g->beta;

		if (b == NULL)
			continue;
		len = g->k;
		ng++;
	}
	d = palloc(sizeof(Datum) * Max(ng * len, 1));
	kd = palloc(sizeof(Datum) * Max(ng, 1));
	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);
		double	   *b = deployed ? g->deployed_coef : g->beta;

		if (b == NULL)
			continue;
		kd[n / Max(len, 1)] = CStringGetTextDatum(g->key ? g->key : "");
		for (int j = 0; j < g->k; j++)
			d[n++] = Float8GetDatum(b[j]);
	}
	*ngroups = ng;
	dims[0] = ng;
	dims[1] = len;
	*keys = PointerGetDatum(construct_array(kd, ng, TEXTOID, -1, false,
											TYPALIGN_INT));
	return PointerGetDatum(construct_md_array(d, NULL, 2, dims, lbs, FLOAT8OID,
											  8, FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));
}

/* Reads a number out of a metrics jsonb result, NaN when absent or null. */
static double
JsonbGetNumber(Jsonb *j, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&j->root, key, strlen(key),
												 NULL);

	if (v == NULL || v->type != jbvNumeric)
		return NAN;
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8,
											  NumericGetDatum(v->val.numeric)));
}

/*
 * Evaluates the groups on the rows in WHERE clause "where" with the
 * evaluation aggregates; when deployed is true, the coefficients evaluated
 * are the deployed version's (deployed_coef).  Fills metrics
 * (or deployed_score) per group.
 */
static void
EvaluateGroups(TrainRun *run, List *groups, const char *where, bool deployed)
{
	StringInfoData sql;
	Oid			types[2] = {FLOAT8ARRAYOID, TEXTARRAYOID};
	Datum		values[2];
	int			ng;
	const char *gkey = run->group_by ?
		psprintf("coalesce(%s, '')", run->gexpr) : "''::text";
	const char *xexpr = ScoreFeaturesExpr(run);

	values[0] = BuildScoreParams(groups, deployed, &values[1], &ng);
	if (ng == 0)
		return;
	initStringInfo(&sql);
	if (run->kind == MODEL_LINEAR)
		appendStringInfo(&sql,
						 "SELECT %s AS g, streamml.regression_metrics(%s, streamml.ml_score($1, $2, %s, %s, 'linear')) FROM %s WHERE %s%s",
						 gkey, run->yexpr, gkey, xexpr, run->from, where,
						 GroupByClause(run));
	else if (run->kind == MODEL_LOGISTIC)
		appendStringInfo(&sql,
						 "SELECT %s AS g, streamml.classification_metrics((%s)::int::boolean, streamml.ml_score($1, $2, %s, %s, 'logistic')) FROM %s WHERE %s%s",
						 gkey, run->yexpr, gkey, xexpr, run->from, where,
						 GroupByClause(run));
	else
		appendStringInfo(&sql,
						 "SELECT %s AS g, streamml.multiclass_metrics((%s)::int, streamml.ml_score_classes($1, $2, %s, %s)) FROM %s WHERE %s%s",
						 gkey, run->yexpr, gkey, xexpr, run->from, where,
						 GroupByClause(run));
	RunQuery(run, sql.data, 2, types, values, NULL);
	run->passes++;
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *key = ResultText(r, 1);
		char	   *json = ResultText(r, 2);
		GroupFit   *g = FindGroup(groups, run->group_by ? key : NULL);
		Jsonb	   *j;
		double		score;

		if (g == NULL || json == NULL)
			continue;
		j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
		score = JsonbGetNumber(j, run->deploy_metric);
		if (deployed)
			g->deployed_score = score;
		else
		{
			g->metrics = MemoryContextStrdup(run->cxt, json);
			g->holdout_score = score;
			g->holdout_rows = JsonbGetNumber(j, "rows");
		}
	}
}

/*
 * Loads the deployed version's coefficients (original scale) into each
 * group's deployed_coef for the champion/challenger comparison, and its
 * standardised-scale equivalent into gamma for warm_start.  Returns false
 * when the model has no deployed version with the same features.
 */
bool
LoadDeployed(TrainRun *run, List *groups, bool for_warm_start)
{
	Oid			types[3] = {TEXTOID, TEXTARRAYOID, TEXTOID};
	Datum		values[3];
	int			ret;
	bool		found = false;

	values[0] = CStringGetTextDatum(run->model);
	values[1] = FeatureNamesArray(run);
	values[2] = CStringGetTextDatum(run->deploy_metric);
	ret = SPI_execute_with_args(
								"SELECT v.group_key, v.intercepts, v.coefficients, v.features OPERATOR(pg_catalog.=) $2, "
								"(v.metrics->>$3)::float8 "
								"FROM streamml.models m JOIN streamml.model_versions v ON v.model = m.name AND v.version = m.deployed_version "
								"WHERE m.name = $1",
								3, types, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the deployed version");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *key = ResultText(r, 1);
		GroupFit   *g = FindGroup(groups, run->group_by ? key : NULL);
		int			ni;
		int			nc;
		double	   *ic;
		double	   *cf;
		char	   *same = ResultText(r, 4);

		if (g == NULL || g->gamma == NULL)
			continue;
		if (same == NULL || strcmp(same, "t") != 0)
		{
			/* other features: only its own holdout score can be compared */
			char	   *stored = ResultText(r, 5);

			if (!for_warm_start && stored != NULL)
				g->deployed_score = strtod(stored, NULL);
			continue;
		}
		ic = ResultFloat8Array(r, 2, &ni, CurrentMemoryContext);
		cf = ResultFloat8Array(r, 3, &nc, CurrentMemoryContext);
		if (ni != g->blocks || nc != g->blocks * g->p)
		{
			/* a tree version: its own holdout score stands in */
			char	   *stored = ResultText(r, 5);

			if (!for_warm_start && stored != NULL)
				g->deployed_score = strtod(stored, NULL);
			continue;
		}
		found = true;
		g->deployed_coef = palloc(sizeof(double) * g->k);
		for (int b = 0; b < g->blocks; b++)
		{
			double	   *dst = g->deployed_coef + b * (g->p + 1);

			dst[0] = ic[b];
			for (int j = 0; j < g->p; j++)
				dst[j + 1] = cf[b * g->p + j];
			if (for_warm_start)
			{
				/* γ_j = β_j s_j, γ0 = b0 + Σ β_j m_j */
				double	   *gm = g->gamma + b * (g->p + 1);

				gm[0] = dst[0];
				for (int j = 0; j < g->p; j++)
				{
					gm[j + 1] = (g->invs[j] != 0.0) ? dst[j + 1] * g->scale[j] : 0.0;
					gm[0] += (g->invs[j] != 0.0) ? dst[j + 1] * g->mean[j] : 0.0;
				}
			}
		}
	}
	return found;
}

/* Sets the run's deploy metric, by default the kind's, and checks it. */
void
ResolveDeployMetric(TrainRun *run)
{
	if (run->kind == MODEL_LINEAR && run->deploy_metric == NULL)
		run->deploy_metric = "rmse";
	else if (run->deploy_metric == NULL)
		run->deploy_metric = run->kind == MODEL_LOGISTIC ? "roc_auc" : "accuracy";
	CheckMetricOption("deploy_metric", run->deploy_metric, run->kind);
}

/*
 * Scores the fitted groups of a run: on the holdout when there is one (and
 * the deployed version on the same rows, for deploy 'if_better'), else
 * in-sample.  Sets each group's metrics, which say what rows they are on.
 */
void
HoldoutScore(TrainRun *run, List *groups)
{
	ListCell   *lc;

	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);

		g->metrics = NULL;
		g->holdout_score = NAN;
		g->deployed_score = NAN;
	}
	if (run->test_where)
	{
		EvaluateGroups(run, groups, run->test_where, false);
		if (strcmp(run->deploy, "if_better") == 0 &&
			LoadDeployed(run, groups, false))
			EvaluateGroups(run, groups, run->test_where, true);
	}
	else if (run->kind == MODEL_LINEAR)
		EvaluateGroups(run, groups, run->train_where, false);
	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);

		if (g->metrics == NULL)
			g->metrics = TrainingMetrics(run, g);
		else if (!run->test_where)
		{
			/* in-sample metrics from the evaluation pass */
			g->metrics[strlen(g->metrics) - 1] = '\0';
			g->metrics = psprintf("%s, \"on\": \"training\"}", g->metrics);
		}
		else
		{
			g->metrics[strlen(g->metrics) - 1] = '\0';
			g->metrics = psprintf("%s, \"on\": \"holdout\"}", g->metrics);
		}
	}
}
