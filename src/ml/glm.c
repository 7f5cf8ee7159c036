/*
 * glm.c
 *		The GLM learner: logistic, multinomial and linear regression, as the
 *		training driver (train.c) sees them through TrainLearner.
 *
 * fit runs the moments pass (streamml.ml_moments, one row per group),
 * which is the whole fit of a linear model, then the Newton or L-BFGS
 * passes of a classification model from the LDA start, the first Newton
 * step or the deployed version (warm_start), all in glm_solve.c, and takes
 * the coefficients back to the original scale with a WARNING per group for
 * aliased features, separation or no convergence.  score is the holdout
 * scoring of holdout.c; record writes a model_versions row per group
 * through model_catalog.c; outcome tells the driver what to report and
 * deploy on.  A group is a GroupFit.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "ml/ml.h"
#include "ml/train.h"

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

/*
 * Fits every group of a GLM run: the moments pass, then, for a
 * classification model, the start and the Newton or L-BFGS passes; then
 * the coefficients on the original scale, with the warnings of each group.
 * Returns the groups (GroupFit), in the order of their keys.
 */
static List *
GlmFit(TrainRun *run)
{
	StringInfoData sql;
	List	   *groups = NIL;
	ListCell   *lc;

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
				run->empty_groups++;
				run->empty_group_rows += g->skipped;
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
			bool		levels = run->enc != NULL;

			initStringInfo(&names);
			for (int j = 0; j < g->p; j++)
				if (g->aliased[j])
				{
					appendStringInfo(&names, "%s%s", names.len > 0 ? ", " : "",
									 quote_identifier(FeatureName(run, j)));
					levels &= FeatureIsLevel(run, j);
				}
			/* a categorical column's levels sum to 1, as the intercept does */
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("model \"%s\"%s%s has aliased features: %s",
							run->model, g->key ? " in group " : "",
							g->key ? quote_literal_cstr(g->key) : "", names.data),
					 errdetail("Each is an exact linear combination of the features before it, so its coefficient is not identifiable; it is held at 0 with no standard error (R's lm reports NA)."),
					 levels ?
					 errhint("They are levels of categorical columns, whose one-hot features sum to 1 beside the intercept: one level per column is held at 0 as the reference level, and predictions are unaffected.") :
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
	return groups;
}

/* Inserts the model_versions row of every fitted group of a GLM run. */
static void
GlmRecord(TrainRun *run, List *groups, int version)
{
	ListCell   *lc;

	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);
		ModelVersionRow row;

		if (g->beta == NULL)
			continue;
		memset(&row, 0, sizeof(row));
		row.group_key = g->key;
		row.intercepts = GroupArray(g, g->beta, true);
		row.coefficients = GroupArray(g, g->beta, false);
		row.std_errors = PointerGetDatum(Float8ArrayBuild(g->se, g->k));
		row.p_values = PointerGetDatum(Float8ArrayBuild(g->pvalue, g->k));
		row.means = GroupVector(g, g->mean);
		row.scales = GroupVector(g, g->scale);
		row.rows_used = g->count;
		row.rows_skipped = g->skipped + RUN_SKIPPED(run);
		row.iterations = g->iterations;
		row.converged = g->converged;
		row.metrics = g->metrics;
		row.df = g->df;
		row.has_df = (run->kind == MODEL_LINEAR);
		row.aliased = AliasedArray(run, g);
		ModelInsertVersion(run, version, &row);
	}
}

/* What the driver reports and decides deployment on, of a GLM group. */
static void
GlmOutcome(TrainRun *run, void *group, TrainOutcome *out)
{
	GroupFit   *g = group;

	out->key = g->key;
	out->rows_used = g->count;
	out->rows_skipped = g->skipped + RUN_SKIPPED(run);
	out->iterations = g->iterations;
	out->converged = g->converged;
	out->separable = g->separable;
	out->metrics = g->metrics;
	out->holdout_score = g->holdout_score;
	out->holdout_rows = g->holdout_rows;
	out->deployed_score = g->deployed_score;
}

/* The GLM learner: logistic, multinomial and linear regression. */
const TrainLearner GlmLearner = {
	.name = "glm",
	.fit = GlmFit,
	.score = HoldoutScore,
	.record = GlmRecord,
	.outcome = GlmOutcome,
};
