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

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "ml/ml.h"
#include "ml/train.h"
#include "options.h"

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
void
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
