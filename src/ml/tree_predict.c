/*
 * tree_predict.c
 *		Scoring tree models (gradient-boosted trees, forests, single trees)
 *		in the backend, one row at a time, without XGBoost's threads, or
 *		many rows on threads of our own.
 *
 * A stored model (XGBoost's UBJSON bytes in model_versions.model_data) is
 * loaded once per cache load: XGBoost reads the bytes
 * (XGBoosterLoadModelFromBuffer) and writes them back as JSON, which is
 * read in one pass of PostgreSQL's JSON parser with callbacks that keep
 * only the header and the tree arrays, as numbers (building a jsonb of the
 * whole model took most of a load: a parallel worker loads its own copy),
 * into one flat array of nodes, each tree's in breadth-first
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
 *
 * Training predicts its holdout, many rows at once, with
 * TreeModelPredictRows: the same walk on the backend's thread and on
 * helper POSIX threads that call nothing of PostgreSQL's (the function's
 * comment says how interrupts and errors stay in the backend's thread).
 */
#include "postgres.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>

#include "common/jsonapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

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
	char	   *objective;		/* XGBoost's name of it */
	float		base_margin;
	int			ntrees;
	int			nblocks;		/* ceil(ntrees / TREE_BLOCK) */
	int32	   *roots;			/* nblocks × TREE_BLOCK; past ntrees, a 0 leaf */
	int32	   *groups;			/* ntrees: the output each tree adds to */
	int32	   *depths;			/* nblocks: steps to the block's deepest leaf */
	TreeNode   *nodes;
	float	   *leaves;			/* per node: the leaf value (0 for a split) */
};

/* The arrays of a tree read from the model's JSON, in this order. */
enum
{
	TA_LEFT,					/* left_children */
	TA_RIGHT,					/* right_children */
	TA_COND,					/* split_conditions */
	TA_FEATURE,					/* split_indices */
	TA_DEFAULT,					/* default_left */
	TA_TYPE,					/* split_type */
	TA_COUNT,
	TA_INFO = TA_COUNT,			/* the model's tree_info (one per tree) */
	TA_NONE
};

static const char *const TreeArrayNames[TA_COUNT] = {
	"left_children", "right_children", "split_conditions", "split_indices",
	"default_left", "split_type"
};

#define TREE_JSON_DEPTH 8

/* A number array of the JSON, every tree's one after another. */
typedef struct TreeArray
{
	float	   *v;
	int			n;
	int			cap;
	int		   *start;			/* per tree: where its elements begin */
	int		   *count;			/* per tree: how many; -1 when absent */
} TreeArray;

/*
 * What the callbacks of pg_parse_json collect from XGBoost's JSON model:
 * the keys on the way down (only the first TREE_JSON_DEPTH levels matter),
 * the header's few strings, and the tree arrays, as numbers.
 */
typedef struct TreeJson
{
	int			depth;
	char	   *keys[TREE_JSON_DEPTH];	/* the field being read, per level */
	int			index[TREE_JSON_DEPTH]; /* the element being read, per level */
	int			array;			/* TA_* of the innermost array, TA_NONE */
	char	   *num_class;
	char	   *num_feature;
	char	   *base_score;
	char	   *objective;
	int			ntrees;			/* elements of "trees" seen */
	int			cap;			/* trees the start/count arrays hold */
	TreeArray	a[TA_COUNT + 1];
} TreeJson;

/* True when the keys of levels 0..n-1 are the n given ones. */
static bool
TreeJsonPath(TreeJson *j, int n, const char *const *keys)
{
	if (j->depth < n)
		return false;
	for (int i = 0; i < n; i++)
		if (keys[i] != NULL &&
			(j->keys[i] == NULL || strcmp(j->keys[i], keys[i]) != 0))
			return false;
	return true;
}

/* Makes room for one more tree in every array's start/count. */
static void
TreeJsonGrowTrees(TreeJson *j)
{
	if (j->ntrees < j->cap)
		return;
	j->cap = Max(j->cap * 2, 64);
	for (int k = 0; k <= TA_COUNT; k++)
	{
		TreeArray  *a = &j->a[k];

		a->start = a->start ? repalloc(a->start, sizeof(int) * j->cap) :
			palloc(sizeof(int) * j->cap);
		a->count = a->count ? repalloc(a->count, sizeof(int) * j->cap) :
			palloc(sizeof(int) * j->cap);
	}
}

/* pg_parse_json callback: an object begins. */
static void
TreeJsonObjectStart(void *state)
{
	TreeJson   *j = state;

	if (j->depth < TREE_JSON_DEPTH)
	{
		j->keys[j->depth] = NULL;
		j->index[j->depth] = -1;
	}
	j->depth++;
	/* an element of learner.gradient_booster.model.trees: a new tree */
	if (j->depth == 6 &&
		TreeJsonPath(j, 4, (const char *const[]) {"learner", "gradient_booster", "model", "trees"}))
	{
		TreeJsonGrowTrees(j);
		for (int k = 0; k < TA_COUNT; k++)
			j->a[k].count[j->ntrees] = -1;
		j->ntrees++;
	}
}

/* pg_parse_json callback: an object or array ends. */
static void
TreeJsonEnd(void *state)
{
	TreeJson   *j = state;

	j->depth--;
	j->array = TA_NONE;
}

/* pg_parse_json callback: an array begins; is it one we read? */
static void
TreeJsonArrayStart(void *state)
{
	TreeJson   *j = state;
	int			d = j->depth;
	int			which = TA_NONE;

	if (d == 6 && j->keys[5] != NULL &&
		TreeJsonPath(j, 4, (const char *const[]) {"learner", "gradient_booster", "model", "trees"}))
	{
		for (int k = 0; k < TA_COUNT; k++)
			if (strcmp(j->keys[5], TreeArrayNames[k]) == 0)
				which = k;
	}
	else if (d == 4 &&
			 TreeJsonPath(j, 4, (const char *const[]) {"learner", "gradient_booster", "model", "tree_info"}))
		which = TA_INFO;
	if (which != TA_NONE && which != TA_INFO)
	{
		j->a[which].start[j->ntrees - 1] = j->a[which].n;
		j->a[which].count[j->ntrees - 1] = 0;
	}
	if (d < TREE_JSON_DEPTH)
	{
		j->keys[d] = NULL;
		j->index[d] = -1;
	}
	j->depth++;
	j->array = which;
}

/* pg_parse_json callback: the key of the next field of an object. */
static void
TreeJsonField(void *state, char *fname, bool isnull)
{
	TreeJson   *j = state;

	if (j->depth <= TREE_JSON_DEPTH)
		j->keys[j->depth - 1] = fname;
}

/* pg_parse_json callback: a scalar, kept when it is one we read. */
static void
TreeJsonScalar(void *state, char *token, JsonTokenType type)
{
	TreeJson   *j = state;

	if (j->array != TA_NONE)
	{
		TreeArray  *a = &j->a[j->array];

		if (a->n == a->cap)
		{
			a->cap = Max(a->cap * 2, 1024);
			a->v = a->v ? repalloc_huge(a->v, sizeof(float) * a->cap) :
				MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * a->cap);
		}
		/* numbers as XGBoost wrote them, rounded once to single precision */
		a->v[a->n++] = strtof(token, NULL);
		if (j->array != TA_INFO)
			a->count[j->ntrees - 1]++;
		pfree(token);
		return;
	}
	if (j->depth == 3 &&
		TreeJsonPath(j, 2, (const char *const[]) {"learner", "learner_model_param"}))
	{
		if (strcmp(j->keys[2], "num_class") == 0)
			j->num_class = token;
		else if (strcmp(j->keys[2], "num_feature") == 0)
			j->num_feature = token;
		else if (strcmp(j->keys[2], "base_score") == 0)
			j->base_score = token;
	}
	else if (j->depth == 3 &&
			 TreeJsonPath(j, 3, (const char *const[]) {"learner", "objective", "name"}))
		j->objective = token;
}

/* A header value the model must have. */
static const char *
TreeJsonNeed(const char *value, const char *key)
{
	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored tree model has no \"%s\"", key)));
	return value;
}

/* Bounds of what a stored model may declare (the walk's feature bits). */
#define TREE_MAX_FEATURES (1 << 24)
#define TREE_MAX_CLASSES 100000

/*
 * A count the model's JSON declares (num_feature, num_class): an integer
 * in [lo, hi], else the model is refused as corrupt, never read with a
 * wrapped-around value.
 */
static int
TreeJsonCount(const char *s, const char *what, long lo, long hi)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored tree model declares %s \"%s\", outside [%ld, %ld]",
						what, s, lo, hi)));
	return (int) v;
}

/*
 * Loads a stored model: XGBoost reads the bytes and writes its JSON, which
 * is read here in one pass of PostgreSQL's JSON parser (no jsonb is built:
 * the callbacks keep the header and the tree arrays as numbers), then the
 * nodes are built in the current memory context.
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
	TreeJson	j;
	JsonSemAction sem;
	JsonLexContext *lex;
	JsonParseErrorType err;
	const char *objective;
	int			nclass;
	float		base_score;
	int			total = 0;

	MemoryContextSwitchTo(tmp);
	{
		XgbBooster *b = XgbBoosterLoad(bytes, len);

		json = XgbBoosterSave(b, "json");
		XgbBoosterFree(b);
	}
	memset(&j, 0, sizeof(j));
	j.array = TA_NONE;
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &j;
	sem.object_start = TreeJsonObjectStart;
	sem.object_end = TreeJsonEnd;
	sem.array_start = TreeJsonArrayStart;
	sem.array_end = TreeJsonEnd;
	sem.object_field_start = TreeJsonField;
	sem.scalar = TreeJsonScalar;
	lex = makeJsonLexContextCstringLen(VARDATA(json), VARSIZE(json) - VARHDRSZ,
									   GetDatabaseEncoding(), true);
	err = pg_parse_json(lex, &sem);
	if (err != JSON_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored tree model is not valid JSON: %s",
						json_errdetail(err, lex))));
	nclass = TreeJsonCount(TreeJsonNeed(j.num_class, "num_class"), "num_class",
						   0, TREE_MAX_CLASSES);
	t->nfeatures = TreeJsonCount(TreeJsonNeed(j.num_feature, "num_feature"),
								 "num_feature", 0, TREE_MAX_FEATURES);
	base_score = strtof(TreeJsonNeed(j.base_score, "base_score"), NULL);
	objective = TreeJsonNeed(j.objective, "objective");
	t->objective = MemoryContextStrdup(cxt, objective);

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

	t->ntrees = j.ntrees;
	if (j.a[TA_INFO].n != t->ntrees)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored tree model has %d trees and %d tree_info entries",
						t->ntrees, j.a[TA_INFO].n)));
	for (int i = 0; i < t->ntrees; i++)
	{
		for (int k = 0; k < TA_COUNT; k++)
			if (j.a[k].count[i] != j.a[TA_LEFT].count[i])
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("stored tree model has a malformed tree"),
						 errdetail("Tree %d has %d %s for %d nodes.", i,
								   Max(j.a[k].count[i], 0), TreeArrayNames[k],
								   Max(j.a[TA_LEFT].count[i], 0))));
		total += j.a[TA_LEFT].count[i];
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
		const float *left = j.a[TA_LEFT].v + j.a[TA_LEFT].start[i];
		const float *right = j.a[TA_RIGHT].v + j.a[TA_RIGHT].start[i];
		const float *cond = j.a[TA_COND].v + j.a[TA_COND].start[i];
		const float *feat = j.a[TA_FEATURE].v + j.a[TA_FEATURE].start[i];
		const float *dflt = j.a[TA_DEFAULT].v + j.a[TA_DEFAULT].start[i];
		const float *stype = j.a[TA_TYPE].v + j.a[TA_TYPE].start[i];
		int			n = j.a[TA_LEFT].count[i];
		int			g = (int) j.a[TA_INFO].v[i];
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
			int			l = (int) left[o];
			int			r = (int) right[o];
			float		v = cond[o];
			int			f = (int) feat[o];

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
			if (stype[o] != 0.0f)
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
				(dflt[o] != 0.0f ? TREE_DEFAULT_LEFT : 0);
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

/* The model's objective, XGBoost's name (reg:squarederror, ...). */
const char *
TreeModelObjective(const TreeModel *t)
{
	return t->objective;
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
 * The outputs of one row whose features are already single precision (xf:
 * nfeatures values, then the constant 0 slot; missing: whether one is NaN),
 * into out[0..noutputs-1], with m (noutputs floats) as scratch.  Calls
 * nothing of PostgreSQL's, so TreeModelPredictRows's threads run it.
 */
static pg_attribute_always_inline void
TreePredictFloats(const TreeModel *t, const float *xf, bool missing,
				  float *m, double *out)
{
	int32		k[TREE_BLOCK];

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
}

/*
 * The outputs of one row (x: nfeatures values, NaN for missing): the value
 * of a regression, the probability of the positive class, or the class
 * probabilities, into out[0..noutputs-1].  The leaves are added in tree
 * order, in single precision, as XGBoost adds them.  False, with NaN
 * outputs, when a value is one the trees cannot take (TreeValueFits), as
 * training skips its row.
 */
bool
TreeModelPredict(const TreeModel *t, const double *x, double *out)
{
	float		margin[64];
	float		xbuf[256];
	float	   *m = t->noutputs <= 64 ? margin : palloc(sizeof(float) * t->noutputs);
	float	   *xf = t->nfeatures < 256 ? xbuf :
		palloc(sizeof(float) * (t->nfeatures + 1));
	bool		missing = false;
	bool		fits = true;

	for (int j = 0; j < t->nfeatures; j++)
	{
		fits &= TreeValueFits(x[j]);
		xf[j] = (float) x[j];
		missing |= isnan(xf[j]);
	}
	if (fits)
	{
		xf[t->nfeatures] = 0.0f;
		TreePredictFloats(t, xf, missing, m, out);
	}
	else
		for (int c = 0; c < t->noutputs; c++)
			out[c] = NAN;
	if (m != margin)
		pfree(m);
	if (xf != xbuf)
		pfree(xf);
	return fits;
}

/*
 * Many rows scored by several threads (TreeModelPredictRows): the rows are
 * taken in chunks of TREE_CHUNK_ROWS from a shared counter, so a thread
 * slowed by the machine's other work just takes fewer of them.  A chunk
 * taken is always finished; "stop" only keeps new ones from being taken.
 */
#define TREE_CHUNK_ROWS 8192

typedef struct TreeRowsJob
{
	const TreeModel *t;
	const float *x;				/* n rows, stride floats apart */
	int64		n;
	int			stride;
	double	   *out;			/* n × noutputs */
	pg_atomic_uint64 next;		/* the first row of the next chunk */
	pg_atomic_uint32 stop;
} TreeRowsJob;

/* One thread's part of a TreeRowsJob, with its scratch. */
typedef struct TreeRowsPart
{
	TreeRowsJob *job;
	float	   *xf;				/* nfeatures + 1 */
	float	   *m;				/* noutputs */
	pthread_t	thread;
	bool		started;
} TreeRowsPart;

/*
 * Scores the rows of one chunk, first .. first + TREE_CHUNK_ROWS - 1; a
 * row with an infinite feature gets NaN outputs, as in TreeModelPredict.
 * Calls nothing of PostgreSQL's.
 */
static void
TreeRowsChunk(TreeRowsPart *part, int64 first)
{
	TreeRowsJob *job = part->job;
	const TreeModel *t = job->t;
	int64		end = Min(first + TREE_CHUNK_ROWS, job->n);

	for (int64 i = first; i < end; i++)
	{
		const float *xi = job->x + i * job->stride;
		double	   *out = job->out + i * t->noutputs;
		bool		missing = false;
		bool		fits = true;

		for (int j = 0; j < t->nfeatures; j++)
		{
			part->xf[j] = xi[j];
			missing |= isnan(xi[j]);
			fits &= !isinf(xi[j]);
		}
		if (fits)
			TreePredictFloats(t, part->xf, missing, part->m, out);
		else
			for (int c = 0; c < t->noutputs; c++)
				out[c] = NAN;
	}
}

/*
 * The next chunk of a job for a thread to take, into *first; false when
 * the rows are all taken or the job stops.
 */
static bool
TreeRowsTake(TreeRowsJob *job, int64 *first)
{
	if (pg_atomic_read_u32(&job->stop) != 0)
		return false;
	*first = (int64) pg_atomic_fetch_add_u64(&job->next, TREE_CHUNK_ROWS);
	return *first < job->n;
}

/* The body of a helper thread: chunks until none is left.  No PostgreSQL. */
static void *
TreeRowsThread(void *arg)
{
	TreeRowsPart *part = arg;
	int64		first;

	while (TreeRowsTake(part->job, &first))
		TreeRowsChunk(part, first);
	return NULL;
}

/*
 * The outputs of n rows of single-precision features (row i's at x + i *
 * stride, the model's nfeatures of them, NaN for missing), into out (n ×
 * noutputs), each as TreeModelPredict gives it, on up to "threads" threads:
 * the calling backend's and threads - 1 POSIX threads of its own, which
 * only walk the trees (no palloc, no elog, no interrupt: their scratch is
 * allocated here, and they start with every signal blocked, as XGBoost's
 * threads do in xgb.c, so PostgreSQL's handlers only run in the backend's
 * own thread).  The backend's thread checks for interrupts between its
 * chunks: when one is pending, the helpers are stopped and joined first,
 * and only then is it served, so an error never leaves a thread reading
 * freed memory.  A thread that cannot be started leaves its share to the
 * others.
 */
void
TreeModelPredictRows(const TreeModel *t, const float *x, int64 n, int stride,
					 double *out, int threads)
{
	TreeRowsJob job;
	TreeRowsPart *parts;
	int64		first;
	int			nparts;
	sigset_t	all;
	sigset_t	old;

	nparts = (int) Max(1, Min((int64) threads, (n + TREE_CHUNK_ROWS - 1) / TREE_CHUNK_ROWS));
	job.t = t;
	job.x = x;
	job.n = n;
	job.stride = stride;
	job.out = out;
	pg_atomic_init_u64(&job.next, 0);
	pg_atomic_init_u32(&job.stop, 0);
	parts = palloc0(sizeof(TreeRowsPart) * nparts);
	for (int i = 0; i < nparts; i++)
	{
		parts[i].job = &job;
		parts[i].xf = palloc(sizeof(float) * (t->nfeatures + 1));
		parts[i].xf[t->nfeatures] = 0.0f;
		parts[i].m = palloc(sizeof(float) * Max(t->noutputs, 1));
	}
	/* the helpers inherit a mask that blocks every signal */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 1; i < nparts; i++)
		parts[i].started = pthread_create(&parts[i].thread, NULL,
										  TreeRowsThread, &parts[i]) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	while (TreeRowsTake(&job, &first))
	{
		TreeRowsChunk(&parts[0], first);
		if (InterruptPending)
			break;
	}
	/* stop the helpers (a no-op when the rows are all taken) and wait */
	pg_atomic_write_u32(&job.stop, 1);
	for (int i = 1; i < nparts; i++)
		if (parts[i].started)
			pthread_join(parts[i].thread, NULL);
	/* alone now: serve an interrupt, and finish what is left, if any */
	pg_atomic_write_u32(&job.stop, 0);
	do
	{
		CHECK_FOR_INTERRUPTS();
		if (!TreeRowsTake(&job, &first))
			break;
		TreeRowsChunk(&parts[0], first);
	} while (true);
	for (int i = 0; i < nparts; i++)
	{
		pfree(parts[i].xf);
		pfree(parts[i].m);
	}
	pfree(parts);
}
