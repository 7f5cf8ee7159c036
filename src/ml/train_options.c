/*
 * train_options.c
 *		The options of a training run: which each kind of model accepts,
 *		their checks, and the class weights, which need the classes the
 *		source holds and so are resolved after the source is read.
 *
 * The jsonb reader itself (OptionNumber, OptionString, ...) is shared with
 * the rest of the extension in src/options.c.
 */
#include "postgres.h"

#include <math.h>

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "ml/ml.h"
#include "ml/train.h"
#include "options.h"

/* The options each kind of model accepts. */
static const char *const LogregOptions[] = {
	"l1", "l2", "standardize", "max_iter", "tol", "class_weight", "weight",
	"group_by", "test_fraction", "order_by", "warm_start", "deploy",
	"deploy_metric", "solver", "max_categories", "other_level", "max_classes", NULL
};
static const char *const LinregOptions[] = {
	"l1", "l2", "standardize", "weight", "group_by", "test_fraction", "order_by",
	"deploy", "deploy_metric", "max_categories", "other_level", NULL
};

static const char *const TreeOptions[] = {
	"objective", "trees", "max_depth", "learning_rate", "min_child_weight",
	"subsample", "colsample_bytree", "colsample_bynode", "lambda", "alpha",
	"max_bin", "early_stopping", "seed", "threads", "weight", "group_by",
	"test_fraction", "order_by", "deploy", "deploy_metric", "warm_start",
	"max_categories", "other_level", "base_score", "max_classes", NULL
};

/*
 * The XGBoost parameters of a tree run.  Defaults are XGBoost's (its
 * scikit-learn interface's 100 rounds), except the forest's, which follow
 * XGBoost's random forest documentation (one round of num_parallel_tree
 * trees, learning_rate 1, subsample and colsample_bynode 0.8, XGBRF's
 * lambda 1e-5) with the seed's 20 trees of depth 10, and the single tree's:
 * one tree of depth 8 (the seed's), learning_rate 1.
 */
static void
ParseTreeOptions(TrainRun *run, Jsonb *options)
{
	TreeParams *t = palloc0(sizeof(TreeParams));
	bool		forest = run->family == FAMILY_FOREST;
	bool		single = run->family == FAMILY_TREE;
	int			threads;
	const char *gather = GetConfigOption("max_parallel_workers_per_gather",
										 false, false);

	if (!(run->family == FAMILY_GBT) && OptionGet(options, "early_stopping") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"early_stopping\" is for gradient-boosted trees only"),
				 errhint("Use streamml.train_gbt.")));
	if (single && OptionGet(options, "trees") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"trees\" is for gradient-boosted trees and random forests"),
				 errdetail("A decision tree is one tree."),
				 errhint("Use streamml.train_gbt or streamml.train_forest.")));
	t->objective = OptionString(options, "objective", NULL);
	if (forest)
	{
		t->rounds = 1;
		t->parallel_trees = (int) OptionInteger(options, "trees", 20, 1, 100000);
	}
	else
	{
		t->rounds = single ? 1 :
			(int) OptionInteger(options, "trees", 100, 1, 100000);
		t->parallel_trees = 1;
	}
	t->max_depth = (int) OptionInteger(options, "max_depth",
									   forest ? 10 : single ? 8 : 6, 0, 64);
	t->learning_rate = OptionNumber(options, "learning_rate",
									(forest || single) ? 1.0 : 0.3, 0.0, 1.0);
	t->min_child_weight = OptionNumber(options, "min_child_weight", 1.0, 0.0,
									   1e12);
	t->subsample = OptionNumber(options, "subsample", forest ? 0.8 : 1.0,
								1e-6, 1.0);
	t->colsample_bytree = OptionNumber(options, "colsample_bytree", 1.0,
									   1e-6, 1.0);
	t->colsample_bynode = OptionNumber(options, "colsample_bynode",
									   forest ? 0.8 : 1.0, 1e-6, 1.0);
	t->lambda = OptionNumber(options, "lambda", forest ? 1e-5 : 1.0, 0.0, 1e12);
	t->alpha = OptionNumber(options, "alpha", 0.0, 0.0, 1e12);
	t->max_bin = (int) OptionInteger(options, "max_bin", 256, 2, 65536);
	t->early_stopping = (int) OptionInteger(options, "early_stopping", 0, 0,
											100000);
	t->seed = (int) OptionInteger(options, "seed", 0, 0, PG_INT32_MAX);
	/* NaN: estimated from the training rows (tree.c, TreeBaseScore) */
	t->base_score = OptionGet(options, "base_score") ?
		OptionNumber(options, "base_score", 0.0, -1e30, 1e30) : NAN;
	threads = gather ? atoi(gather) + 1 : 1;
	t->threads = (int) OptionInteger(options, "threads", Max(threads, 1), 1,
									 1024);
	if (t->objective != NULL &&
		strcmp(t->objective, "reg:squarederror") != 0 &&
		strcmp(t->objective, "reg:absoluteerror") != 0 &&
		strcmp(t->objective, "reg:pseudohubererror") != 0 &&
		strcmp(t->objective, "count:poisson") != 0 &&
		strcmp(t->objective, "binary:logistic") != 0 &&
		strcmp(t->objective, "multi:softprob") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"objective\" must be one of 'reg:squarederror', 'reg:absoluteerror', 'reg:pseudohubererror', 'count:poisson', 'binary:logistic', 'multi:softprob'"),
				 errhint("Without it the objective follows the target: numeric is regression, boolean or two values binary, more values multiclass.")));
	if (t->early_stopping > 0 && run->test_fraction == 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"early_stopping\" needs a holdout"),
				 errhint("Set the options \"test_fraction\" and \"order_by\".")));
	run->tree = t;
}

/* Parses and checks the options of a training run. */
void
ParseOptions(TrainRun *run, Jsonb *options)
{
	OptionCheckKeys(options, run->family != FAMILY_GLM ? TreeOptions :
					run->kind == MODEL_LINEAR ? LinregOptions : LogregOptions,
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
	run->deploy = OptionKeyword(options, "deploy", "always");
	run->deploy_metric = OptionKeyword(options, "deploy_metric", NULL);
	{
		char	   *solver = OptionKeyword(options, "solver", "newton");

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
	/*
	 * Categorical columns (categorical.c): at most max_categories slots
	 * each, the last one "other" for rarer and unseen values (scikit-learn's
	 * OneHotEncoder max_categories, handle_unknown='infrequent_if_exist').
	 * scikit-learn's default is no cap; 32 is ours (README: it keeps all
	 * 31 platforms of seed 003's games and caps its 579 publishers).
	 */
	run->max_categories = (int) OptionInteger(options, "max_categories", 32,
											  2, 100000);
	run->other_level = OptionBool(options, "other_level", true);
	/*
	 * A classifier fits one class per distinct target value: a number with
	 * hundreds of values is a regression target, and a softmax over them
	 * takes minutes.  100 classes by default, up to 1000 when asked.
	 */
	run->max_classes = (int) OptionInteger(options, "max_classes", 100, 2, 1000);
	run->class_weight = OptionGet(options, "class_weight");
	if (run->family != FAMILY_GLM)
		ParseTreeOptions(run, options);
}

/* Builds the weight expression of the Newton passes, class weights applied. */
void
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
		cw->val.string.len == 8 && pg_strncasecmp(cw->val.string.val, "balanced", 8) == 0)
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
	{
		/* every class weighing zero: no row counts, nothing to learn */
		bool		any = false;

		for (int c = 0; c < run->nclasses; c++)
			any |= weights[c] > 0.0;
		if (!any)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"class_weight\" weighs every class zero"),
					 errdetail("No row would count: the model would learn nothing.")));
	}

	initStringInfo(&e);
	appendStringInfo(&e, "(%s) * (ARRAY[", run->wexpr);
	for (int c = 0; c < run->nclasses; c++)
		appendStringInfo(&e, "%s%.17g", c > 0 ? "," : "", weights[c]);
	appendStringInfo(&e, "]::float8[])[(%s)::int + 1]", run->yexpr);
	run->wexpr_fit = e.data;
	run->class_weights = weights;
}
