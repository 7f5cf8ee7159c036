/*
 * tree_predict.c
 *		Scoring tree models (gradient-boosted trees, forests, single trees)
 *		in the backend, one row at a time, without XGBoost's threads.
 *
 * A stored model (XGBoost's UBJSON bytes in model_versions.model_data) is
 * loaded once per cache load: XGBoost reads the bytes
 * (XGBoosterLoadModelFromBuffer) and writes them back as JSON, which is
 * parsed here into one flat array of nodes.  Scoring a row walks each tree
 * from its root and sums the leaves, exactly as XGBoost's CPU predictor
 * does: single-precision features and sums, in tree order, starting from
 * the base margin; a missing feature (NaN) follows the node's default
 * direction, otherwise "feature < split condition" goes left; then the
 * objective's transform (identity, exp, sigmoid or softmax, in single
 * precision).  So the predictions equal XGBoost's own (the regression tests
 * check them against python3-xgboost within 1e-6), at the cost of a few
 * hundred comparisons a row, with no call into the library per row.
 */
#include "postgres.h"

#include <math.h>

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "ml/tree_predict.h"
#include "ml/xgb.h"

typedef struct TreeNode
{
	float		value;			/* split condition, or leaf value */
	int32		left;			/* absolute index, -1 for a leaf */
	int32		right;
	int32		feature;
	bool		default_left;
} TreeNode;

struct TreeModel
{
	int			nfeatures;
	int			noutputs;		/* 1, or the number of classes */
	char		task;			/* 'l' regression, 'g' binary, 'm' multiclass */
	char		transform;		/* 'i' identity, 'e' exp, 's' sigmoid, 'x' softmax */
	float		base_margin;
	int			ntrees;
	int32	   *roots;			/* ntrees */
	int32	   *groups;			/* ntrees: the output each tree adds to */
	TreeNode   *nodes;
};

/* A key of a JSON object, or an error naming what the model lacks. */
static JsonbValue *
JsonKey(JsonbContainer *c, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(c, key, strlen(key), NULL);

	if (v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored tree model has no \"%s\"", key)));
	return v;
}

/* The container of an object or array value. */
static JsonbContainer *
JsonContainer(JsonbValue *v, const char *what)
{
	if (v->type != jbvBinary)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored tree model has a malformed \"%s\"", what)));
	return v->val.binary.data;
}

/* A number (JSON number or numeric string) as a float, rounded once. */
static float
JsonFloat(JsonbValue *v)
{
	char	   *s;

	if (v->type == jbvNumeric)
		s = DatumGetCString(DirectFunctionCall1(numeric_out,
												NumericGetDatum(v->val.numeric)));
	else if (v->type == jbvString)
		s = pnstrdup(v->val.string.val, v->val.string.len);
	else
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored tree model has a malformed number")));
	return strtof(s, NULL);
}

/* Element i of a JSON array. */
static JsonbValue *
JsonElem(JsonbContainer *a, int i)
{
	JsonbValue *v = getIthJsonbValueFromContainer(a, i);

	if (v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored tree model has a short array")));
	return v;
}

/* The string value of an object key. */
static char *
JsonString(JsonbContainer *c, const char *key)
{
	JsonbValue *v = JsonKey(c, key);

	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored tree model has a malformed \"%s\"", key)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * Loads a stored model: XGBoost reads the bytes and writes its JSON, from
 * which the nodes are built in the current memory context.
 */
TreeModel *
TreeModelLoad(const char *bytes, Size len)
{
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext,
											  "pg_streamml tree load",
											  ALLOCSET_DEFAULT_SIZES);
	TreeModel  *t = palloc0(sizeof(TreeModel));
	bytea	   *json;
	Jsonb	   *jb;
	JsonbContainer *learner;
	JsonbContainer *param;
	JsonbContainer *model;
	JsonbContainer *trees;
	JsonbContainer *info;
	char	   *objective;
	int			nclass;
	float		base_score;
	int			total = 0;

	MemoryContextSwitchTo(tmp);
	{
		XgbBooster *b = XgbBoosterLoad(bytes, len);

		json = XgbBoosterSave(b, "json");
		XgbBoosterFree(b);
	}
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											CStringGetDatum(text_to_cstring((text *) json))));
	learner = JsonContainer(JsonKey(&jb->root, "learner"), "learner");
	param = JsonContainer(JsonKey(learner, "learner_model_param"),
						  "learner_model_param");
	nclass = atoi(JsonString(param, "num_class"));
	t->nfeatures = atoi(JsonString(param, "num_feature"));
	base_score = JsonFloat(JsonKey(param, "base_score"));
	objective = JsonString(JsonContainer(JsonKey(learner, "objective"),
										 "objective"), "name");
	model = JsonContainer(JsonKey(JsonContainer(JsonKey(learner, "gradient_booster"),
												"gradient_booster"), "model"),
						  "model");
	trees = JsonContainer(JsonKey(model, "trees"), "trees");
	info = JsonContainer(JsonKey(model, "tree_info"), "tree_info");

	/* the objective's base margin (ProbToMargin) and transform */
	t->noutputs = 1;
	t->base_margin = base_score;
	if (strcmp(objective, "binary:logistic") == 0)
	{
		t->task = 'g';
		t->transform = 's';
		t->base_margin = -logf(1.0f / base_score - 1.0f);
	}
	else if (strcmp(objective, "multi:softprob") == 0 ||
			 strcmp(objective, "multi:softmax") == 0)
	{
		t->task = 'm';
		t->transform = 'x';
		t->noutputs = nclass;
	}
	else if (strcmp(objective, "count:poisson") == 0)
	{
		t->task = 'l';
		t->transform = 'e';
		t->base_margin = logf(base_score);
	}
	else if (strncmp(objective, "reg:", 4) == 0 &&
			 strcmp(objective, "reg:logistic") != 0)
	{
		t->task = 'l';
		t->transform = 'i';
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("stored tree model has objective \"%s\", which pg_streamml does not serve",
						objective)));
	if (t->noutputs < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored tree model has %d classes", t->noutputs)));

	t->ntrees = JsonContainerSize(trees);
	for (int i = 0; i < t->ntrees; i++)
	{
		JsonbContainer *tree = JsonContainer(JsonElem(trees, i), "trees");

		total += JsonContainerSize(JsonContainer(JsonKey(tree, "left_children"),
												 "left_children"));
	}
	t->roots = MemoryContextAlloc(cxt, sizeof(int32) * Max(t->ntrees, 1));
	t->groups = MemoryContextAlloc(cxt, sizeof(int32) * Max(t->ntrees, 1));
	t->nodes = MemoryContextAllocHuge(cxt, sizeof(TreeNode) * Max(total, 1));
	total = 0;
	for (int i = 0; i < t->ntrees; i++)
	{
		JsonbContainer *tree = JsonContainer(JsonElem(trees, i), "trees");
		JsonbContainer *left = JsonContainer(JsonKey(tree, "left_children"), "left_children");
		JsonbContainer *right = JsonContainer(JsonKey(tree, "right_children"), "right_children");
		JsonbContainer *cond = JsonContainer(JsonKey(tree, "split_conditions"), "split_conditions");
		JsonbContainer *feat = JsonContainer(JsonKey(tree, "split_indices"), "split_indices");
		JsonbContainer *dflt = JsonContainer(JsonKey(tree, "default_left"), "default_left");
		JsonbContainer *stype = JsonContainer(JsonKey(tree, "split_type"), "split_type");
		int			n = JsonContainerSize(left);
		int			g = (int) JsonFloat(JsonElem(info, i));

		t->roots[i] = total;
		t->groups[i] = (g >= 0 && g < t->noutputs) ? g : 0;
		for (int k = 0; k < n; k++)
		{
			TreeNode   *node = &t->nodes[total + k];
			int			l = (int) JsonFloat(JsonElem(left, k));
			int			r = (int) JsonFloat(JsonElem(right, k));

			node->value = JsonFloat(JsonElem(cond, k));
			node->feature = (int) JsonFloat(JsonElem(feat, k));
			node->default_left = JsonFloat(JsonElem(dflt, k)) != 0.0f;
			if (l < 0)
			{
				node->left = node->right = -1;
				continue;
			}
			if (JsonFloat(JsonElem(stype, k)) != 0.0f)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("stored tree model has categorical splits")));
			if (l >= n || r < 0 || r >= n || node->feature < 0 ||
				node->feature >= t->nfeatures)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("stored tree model has a malformed tree")));
			node->left = total + l;
			node->right = total + r;
		}
		total += n;
	}
	MemoryContextSwitchTo(cxt);
	MemoryContextDelete(tmp);
	return t;
}

/* The number of outputs of a row: 1, or the number of classes. */
int
TreeModelOutputs(const TreeModel *t)
{
	return t->noutputs;
}

/* The number of features the model reads. */
int
TreeModelFeatures(const TreeModel *t)
{
	return t->nfeatures;
}

/* 'l' regression, 'g' binary, 'm' multiclass. */
char
TreeModelTask(const TreeModel *t)
{
	return t->task;
}

/*
 * The outputs of one row (x: nfeatures values, NaN for missing): the value
 * of a regression, the probability of the positive class, or the class
 * probabilities, into out[0..noutputs-1].
 */
void
TreeModelPredict(const TreeModel *t, const double *x, double *out)
{
	float		margin[64];
	float	   *m = t->noutputs <= 64 ? margin : palloc(sizeof(float) * t->noutputs);

	for (int c = 0; c < t->noutputs; c++)
		m[c] = t->base_margin;
	for (int i = 0; i < t->ntrees; i++)
	{
		const TreeNode *node = &t->nodes[t->roots[i]];

		while (node->left >= 0)
		{
			double		v = x[node->feature];

			if (isnan(v))
				node = &t->nodes[node->default_left ? node->left : node->right];
			else
				node = &t->nodes[(float) v < node->value ? node->left : node->right];
		}
		m[t->groups[i]] += node->value;
	}
	switch (t->transform)
	{
		case 's':
			out[0] = 1.0f / (1.0f + expf(-m[0]));
			break;
		case 'e':
			out[0] = expf(m[0]);
			break;
		case 'x':
			{
				float		top = m[0];
				float		sum = 0.0f;

				for (int c = 1; c < t->noutputs; c++)
					top = Max(top, m[c]);
				for (int c = 0; c < t->noutputs; c++)
				{
					m[c] = expf(m[c] - top);
					sum += m[c];
				}
				for (int c = 0; c < t->noutputs; c++)
					out[c] = m[c] / sum;
			}
			break;
		default:
			out[0] = m[0];
			break;
	}
	if (m != margin)
		pfree(m);
}
