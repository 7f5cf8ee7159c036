/*
 * tree_predict.c
 *		Scoring tree models (gradient-boosted trees, forests, single trees)
 *		in the backend, one row at a time, without XGBoost's threads.
 *
 * A stored model (XGBoost's UBJSON bytes in model_versions.model_data) is
 * loaded once per cache load: XGBoost reads the bytes
 * (XGBoosterLoadModelFromBuffer) and writes them back as JSON, which is
 * parsed here into one flat array of nodes, each tree's in breadth-first
 * order with the two children of a split side by side, 12 bytes a node.
 * Scoring a row converts its features to single precision once, then walks
 * the trees sixteen at a time, one level of all sixteen per step (a leaf
 * points to itself, so a block runs its deepest tree's number of steps
 * without testing for leaves, and without a branch on the row's values:
 * the walks of different trees overlap in the processor).  The result is
 * what XGBoost's CPU predictor computes: single-precision features and
 * sums, leaves added in tree order starting from the base margin; a
 * missing feature (NaN) follows the node's default direction, otherwise
 * "feature < split condition" goes left; then the objective's transform
 * (identity, exp, sigmoid or softmax, in single precision).  So the
 * predictions equal XGBoost's own (the regression tests check them against
 * python3-xgboost within 1e-6), with no call into the library per row.
 */
#include "postgres.h"

#include <math.h>

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "ml/tree_predict.h"
#include "ml/xgb.h"

/*
 * A node, 12 bytes.  The two children of an internal node are adjacent
 * (the right one at child + 1) and each tree's nodes are in breadth-first
 * order, so the top levels of a tree share cache lines.  A leaf points to
 * itself: its feature is the constant 0 slot after the real features and
 * its condition +inf, so "go left" keeps it where it is, and a walk can run
 * a fixed number of steps (the tree's depth) without testing for leaves.
 */
typedef struct TreeNode
{
	float		cond;			/* split condition; +inf for a leaf */
	int32		child;			/* left child's index; a leaf's own */
	uint32		feature;		/* feature index | TREE_DEFAULT_LEFT */
} TreeNode;

#define TREE_DEFAULT_LEFT	0x80000000u
#define TREE_FEATURE_MASK	0x7fffffffu

/*
 * Trees are walked in blocks of this many, side by side, one level at a
 * time, so that the processor overlaps their loads: the steps of one tree
 * depend on each other, those of different trees do not.
 */
#define TREE_BLOCK 16

struct TreeModel
{
	int			nfeatures;
	int			noutputs;		/* 1, or the number of classes */
	char		task;			/* 'l' regression, 'g' binary, 'm' multiclass */
	char		transform;		/* 'i' identity, 'e' exp, 's' sigmoid, 'x' softmax */
	float		base_margin;
	int			ntrees;
	int			nblocks;		/* ceil(ntrees / TREE_BLOCK) */
	int32	   *roots;			/* nblocks × TREE_BLOCK; past ntrees, a 0 leaf */
	int32	   *groups;			/* ntrees: the output each tree adds to */
	int32	   *depths;			/* nblocks: steps to the block's deepest leaf */
	TreeNode   *nodes;
	float	   *leaves;			/* per node: the leaf value (0 for a split) */
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
	t->nblocks = (t->ntrees + TREE_BLOCK - 1) / TREE_BLOCK;
	t->roots = MemoryContextAlloc(cxt, sizeof(int32) * Max(t->nblocks, 1) * TREE_BLOCK);
	t->groups = MemoryContextAlloc(cxt, sizeof(int32) * Max(t->ntrees, 1));
	t->depths = MemoryContextAllocZero(cxt, sizeof(int32) * Max(t->nblocks, 1));
	/* one more node: the 0 leaf that pads the last block */
	t->nodes = MemoryContextAllocHuge(cxt, sizeof(TreeNode) * (total + 1));
	t->leaves = MemoryContextAllocHuge(cxt, sizeof(float) * (total + 1));
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
		int		   *order = palloc(sizeof(int) * Max(n, 1));	/* BFS: old index */
		int		   *level = palloc(sizeof(int) * Max(n, 1));
		int			next = 1;
		int			depth = 0;

		t->roots[i] = total;
		t->groups[i] = (g >= 0 && g < t->noutputs) ? g : 0;
		if (n < 1)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("stored tree model has an empty tree")));
		/*
		 * Breadth-first from the root: position k of the new layout holds
		 * XGBoost's node order[k]; a split's children go to the next two
		 * free positions.  Each position is filled once, so a malformed
		 * tree (a node reached twice, or a cycle) overflows n and errors.
		 */
		order[0] = 0;
		level[0] = 0;
		for (int k = 0; k < next; k++)
		{
			int			o = order[k];
			TreeNode   *node = &t->nodes[total + k];
			int			l = (int) JsonFloat(JsonElem(left, o));
			int			r = (int) JsonFloat(JsonElem(right, o));
			float		v = JsonFloat(JsonElem(cond, o));
			int			f = (int) JsonFloat(JsonElem(feat, o));

			depth = Max(depth, level[k]);
			if (l < 0)
			{
				/* a leaf: a self-loop on the constant slot, see TreeNode */
				node->cond = INFINITY;
				node->child = total + k;
				node->feature = (uint32) t->nfeatures | TREE_DEFAULT_LEFT;
				t->leaves[total + k] = v;
				continue;
			}
			if (JsonFloat(JsonElem(stype, o)) != 0.0f)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("stored tree model has categorical splits")));
			if (l >= n || r < 0 || r >= n || f < 0 || f >= t->nfeatures ||
				next + 2 > n)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("stored tree model has a malformed tree")));
			node->cond = v;
			node->child = total + next;
			node->feature = (uint32) f |
				(JsonFloat(JsonElem(dflt, o)) != 0.0f ? TREE_DEFAULT_LEFT : 0);
			t->leaves[total + k] = 0.0f;
			order[next] = l;
			level[next++] = level[k] + 1;
			order[next] = r;
			level[next++] = level[k] + 1;
		}
		t->depths[i / TREE_BLOCK] = Max(t->depths[i / TREE_BLOCK], depth);
		total += next;
		pfree(order);
		pfree(level);
	}
	t->nodes[total].cond = INFINITY;
	t->nodes[total].child = total;
	t->nodes[total].feature = (uint32) t->nfeatures | TREE_DEFAULT_LEFT;
	t->leaves[total] = 0.0f;
	for (int i = t->ntrees; i < t->nblocks * TREE_BLOCK; i++)
		t->roots[i] = total;
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
 * The leaf a row reaches in each tree of block b (xf: the features as
 * floats, then the constant 0 slot), into k[]: the block's trees are walked
 * side by side for its deepest tree's number of steps, a leaf staying where
 * it is (see TreeNode).  A missing value (NaN) follows the node's default
 * direction; otherwise "feature < condition" goes left, as in XGBoost.
 */
static pg_attribute_always_inline void
TreeWalkBlock(const TreeModel *t, int b, const float *xf, bool missing,
			  int32 *k)
{
	const TreeNode *nodes = t->nodes;
	int			depth = t->depths[b];

	memcpy(k, t->roots + b * TREE_BLOCK, sizeof(int32) * TREE_BLOCK);
	for (int d = 0; d < depth; d++)
		for (int l = 0; l < TREE_BLOCK; l++)
		{
			const TreeNode *node = &nodes[k[l]];
			uint32		f = node->feature;
			float		v = xf[f & TREE_FEATURE_MASK];
			int			left = (v < node->cond);

			if (missing)
				left |= isnan(v) & (f >> 31);

			k[l] = node->child + 1 - left;
		}
}

/*
 * The outputs of one row (x: nfeatures values, NaN for missing): the value
 * of a regression, the probability of the positive class, or the class
 * probabilities, into out[0..noutputs-1].  The leaves are added in tree
 * order, in single precision, as XGBoost adds them.
 */
void
TreeModelPredict(const TreeModel *t, const double *x, double *out)
{
	float		margin[64];
	float		xbuf[256];
	float	   *m = t->noutputs <= 64 ? margin : palloc(sizeof(float) * t->noutputs);
	float	   *xf = t->nfeatures < 256 ? xbuf :
		palloc(sizeof(float) * (t->nfeatures + 1));
	int32		k[TREE_BLOCK];
	bool		missing = false;

	for (int j = 0; j < t->nfeatures; j++)
	{
		xf[j] = (float) x[j];
		missing |= isnan(xf[j]);
	}
	xf[t->nfeatures] = 0.0f;
	if (t->noutputs == 1)
	{
		float		sum = t->base_margin;

		for (int b = 0; b < t->nblocks; b++)
		{
			int			n = Min(TREE_BLOCK, t->ntrees - b * TREE_BLOCK);

			if (missing)
				TreeWalkBlock(t, b, xf, true, k);
			else
				TreeWalkBlock(t, b, xf, false, k);
			for (int l = 0; l < n; l++)
				sum += t->leaves[k[l]];
		}
		m[0] = sum;
	}
	else
	{
		for (int c = 0; c < t->noutputs; c++)
			m[c] = t->base_margin;
		for (int b = 0; b < t->nblocks; b++)
		{
			int			n = Min(TREE_BLOCK, t->ntrees - b * TREE_BLOCK);

			if (missing)
				TreeWalkBlock(t, b, xf, true, k);
			else
				TreeWalkBlock(t, b, xf, false, k);
			for (int l = 0; l < n; l++)
				m[t->groups[b * TREE_BLOCK + l]] += t->leaves[k[l]];
		}
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
	if (xf != xbuf)
		pfree(xf);
}
