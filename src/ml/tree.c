/*
 * tree.c
 *		The tree learner: gradient-boosted trees, random forests and single
 *		decision trees with XGBoost (xgb.c), as the training driver
 *		(train.c) sees them through TrainLearner.
 *
 * fit reads the source once, under the run's snapshot, through a cursor
 * whose rows the executor hands to a DestReceiver of ours (TreeBatch) in
 * fetches of TREE_FETCH_ROWS: one row per source row with the group key,
 * the target, the weight, whether it is in the holdout, and the features
 * as float8 (NULL and NaN become XGBoost's missing value).  Rows go into a dense single-precision
 * matrix per group (n × p × 4 bytes; with group_by the scan is sorted by
 * group so that only one group's matrix is held at a time), holdout rows
 * into a second one.  Each group is then trained with XGBoost's
 * histogram method, one boosting round per call, checking for interrupts
 * between rounds, so a cancel stops training within about a round; with
 * early_stopping the holdout's metric is evaluated after each round and
 * the model cut back to its best round.  With warm_start, a group whose
 * deployed version is of the same family, task and features continues
 * from that version's trees (XGBoost's continued training, as python's
 * xgb.train(..., xgb_model=...)): "trees" more rounds, and iterations
 * counts them all.  XGBoost reads the training matrix once into its
 * quantile matrix (xgb.c's XgbTrainMatrixCreate: each value's histogram
 * bin, as python's QuantileDMatrix; the same trees as from a DMatrix, which
 * would first copy the rows and bin that copy in the first round), so ours
 * is freed once the library has it, after its rows are sampled for the
 * drift bins (feature_bins.c), which thus take no pass of their own.
 * score predicts the holdout with the walk that serves the model
 * (tree_predict.c, over the bytes record stores, on the run's "threads":
 * the backend's and helper threads of its own; without a holdout,
 * XGBoost predicts the training rows) and scores it with the metrics
 * aggregates of metrics.c against the targets as read (kept in double
 * precision beside the single-precision ones XGBoost trains on, so the
 * metrics equal evaluate's and a league's score of a deployed version;
 * against the rounded targets they differed by about 1e-8, enough to make
 * an identical champion "better"), and the deployed version on the same holdout
 * rows for deploy 'if_better' (a tree version through tree_predict.c, a
 * linear one from its coefficients); record stores XGBoost's binary model
 * and the feature importance in model_versions.
 *
 * With a time-ordered holdout and no group_by, the scan also reads the
 * order_by value of every row, and the cutoff is found from them once it
 * is over (split_scan.c), instead of by a query of its own before it.
 *
 * Rows whose target or weight is NULL or not finite, whose weight is
 * negative, or which have an infinite feature are skipped and counted.
 *
 * At DEBUG1, each phase of a run (the scan, the split, XGBoost's matrix,
 * the rounds, the holdout's prediction and metrics, recording) logs its
 * wall and CPU seconds (every thread of the process).
 */
#include "postgres.h"

#include <float.h>
#include <math.h>
#include <sys/resource.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "tcop/pquery.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/snapmgr.h"

#include "ml/ml.h"
#include "ml/passes.h"
#include "ml/train.h"
#include "ml/tree_predict.h"
#include "ml/xgb.h"

#define TREE_FETCH_ROWS 10000

/* The clocks of a phase of a run, for the DEBUG1 timing of its phases. */
typedef struct TreeClock
{
	instr_time	wall;
	double		cpu;			/* CPU seconds of the process, every thread */
} TreeClock;

/* The clocks of the current phase of a tree run. */
static TreeClock tree_clock;

/* Starts a phase's clocks. */
static void
TreeClockStart(TreeClock *c)
{
	struct rusage ru;

	INSTR_TIME_SET_CURRENT(c->wall);
	getrusage(RUSAGE_SELF, &ru);
	c->cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/*
 * Logs at DEBUG1 the wall and CPU seconds of a phase since its clocks
 * started, and starts them again for the next one.
 */
static void
TreeClockLog(TreeClock *c, const char *phase)
{
	TreeClock	now;

	if (!message_level_is_interesting(DEBUG1))
		return;
	TreeClockStart(&now);
	INSTR_TIME_SUBTRACT(now.wall, c->wall);
	elog(DEBUG1, "tree run phase %s: %.3f s, %.3f CPU s", phase,
		 INSTR_TIME_GET_DOUBLE(now.wall), now.cpu - c->cpu);
	TreeClockStart(c);
}

/* Rows of one part (training or holdout) of a group, in single precision. */
typedef struct TreeRows
{
	int64		n;
	int64		cap;
	float	   *x;				/* n × p, row-major, NaN for missing */
	float	   *y;				/* the target as XGBoost takes it */
	double	   *yd;				/* the target itself, for the metrics */
	float	   *w;
} TreeRows;

/* One group of a tree run. */
typedef struct TreeGroup
{
	char	   *key;			/* group value, NULL without group_by */
	int64		count;			/* training rows */
	int64		skipped;
	TreeRows	test;			/* the holdout rows */
	float	   *train_pred;		/* in-sample predictions, without a holdout */
	double	   *train_y;
	int64		ntrain;
	XgbBooster *booster;
	int			rounds;
	int			warm_rounds;	/* rounds of the deployed version continued */
	char	   *metrics;
	bytea	   *model_data;		/* the model's bytes, once saved */
	double		holdout_score;
	double		holdout_rows;
	double		deployed_score;
} TreeGroup;

/* The catalog kind of a run's family. */
const char *
FamilyName(TrainRun *run)
{
	switch (run->family)
	{
		case FAMILY_GBT:
			return "gbt";
		case FAMILY_FOREST:
			return "forest";
		case FAMILY_TREE:
			return "tree";
		default:
			return "glm";
	}
}

/*
 * Sets the task of a tree run from its target's type, or from option
 * "objective": numeric is a regression, boolean binary, text or an enum
 * binary or multiclass by the number of values (train_source.c's
 * ResolveLabel then finds the classes).
 */
void
TreeResolveTask(TrainRun *run, Oid type)
{
	const char *objective = run->tree->objective;
	bool		numeric = TypeIsNumeric(type);
	bool		categorical = type == BOOLOID || type == TEXTOID ||
		type == VARCHAROID || type == BPCHAROID || type_is_enum(type);

	if (!numeric && !categorical)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("target column \"%s\" must be numeric, boolean, text or an enum, not %s",
						run->label, format_type_be(type))));
	if (objective == NULL)
		run->kind = numeric ? MODEL_LINEAR : MODEL_LOGISTIC;
	else if (strncmp(objective, "binary:", 7) == 0)
		run->kind = MODEL_LOGISTIC;
	else if (strncmp(objective, "multi:", 6) == 0)
		run->kind = MODEL_MULTINOMIAL;
	else
	{
		if (!numeric)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("target column \"%s\" must be numeric for objective \"%s\", not %s",
							run->label, objective, format_type_be(type))));
		run->kind = MODEL_LINEAR;
	}
}

/*
 * Appends one row to a part, growing it by doubling.  The target is kept
 * in double precision too: the metrics compare the predictions with the
 * target itself, as evaluate and predict do, not with its float rounding.
 */
static inline void
TreeRowsAdd(TreeRows *r, int p, const float *x, double y, float w)
{
	if (r->n == r->cap)
	{
		int64		cap = Max(r->cap * 2, 1024);

		if (r->x == NULL)
		{
			r->x = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * cap * p);
			r->y = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * cap);
			r->yd = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * cap);
			r->w = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * cap);
		}
		else
		{
			r->x = repalloc_huge(r->x, sizeof(float) * cap * p);
			r->y = repalloc_huge(r->y, sizeof(float) * cap);
			r->yd = repalloc_huge(r->yd, sizeof(double) * cap);
			r->w = repalloc_huge(r->w, sizeof(float) * cap);
		}
		r->cap = cap;
	}
	memcpy(r->x + r->n * p, x, sizeof(float) * p);
	r->y[r->n] = (float) y;
	r->yd[r->n] = y;
	r->w[r->n] = w;
	r->n++;
}

/* Frees a part's arrays. */
static void
TreeRowsFree(TreeRows *r)
{
	if (r->x)
	{
		pfree(r->x);
		pfree(r->y);
		if (r->yd)
			pfree(r->yd);
		pfree(r->w);
	}
	memset(r, 0, sizeof(TreeRows));
}

/* The objective of a run: the option's, or the one its target implies. */
static const char *
TreeObjective(TrainRun *run)
{
	if (run->tree->objective != NULL)
		return run->tree->objective;
	return run->kind == MODEL_LINEAR ? "reg:squarederror" :
		run->kind == MODEL_LOGISTIC ? "binary:logistic" : "multi:softprob";
}

/*
 * The prediction the first tree starts from (XGBoost's base_score), for
 * rows (n labels y, weights w or NULL): the option's, else estimated from
 * the rows as XGBoost 2.0 and scikit-learn's gradient boosting do: the
 * weighted mean of the target for squared error, pseudo-Huber error and
 * Poisson counts, the share of positives (clipped to [1e-6, 1 - 1e-6]) for
 * a binary model.  XGBoost 1.7 starts every objective but absolute error
 * (whose median it estimates itself) at 0.5, and trees must then climb to
 * a target of, say, a price of 60,000 through their shrunken leaves: far
 * worse models in few rounds, and a single tree or a forest biased towards
 * 0.5.  NaN leaves XGBoost's default (absolute error, multiclass, no rows).
 */
static double
TreeBaseScore(TrainRun *run, const float *y, const float *w, int64 n)
{
	const char *objective = TreeObjective(run);
	double		sy = 0.0;
	double		sw = 0.0;
	double		mean;

	if (!isnan(run->tree->base_score))
	{
		double		b = run->tree->base_score;

		/* a start the objective cannot take, or does not use */
		if (strcmp(objective, "reg:absoluteerror") == 0 ||
			strcmp(objective, "multi:softprob") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"base_score\" is not used by objective \"%s\"", objective),
					 errdetail(strcmp(objective, "multi:softprob") == 0 ?
							   "The same start for every class cancels in the class probabilities." :
							   "XGBoost starts absolute error at the target's median itself.")));
		if (strcmp(objective, "count:poisson") == 0 && !(b > 0.0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"base_score\" must be above 0 for objective \"count:poisson\"")));
		if (strcmp(objective, "binary:logistic") == 0 && !(b > 0.0 && b < 1.0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"base_score\" must be between 0 and 1 for objective \"binary:logistic\""),
					 errdetail("It is the probability of the positive class the trees start from.")));
		return b;
	}
	if (strcmp(objective, "reg:squarederror") != 0 &&
		strcmp(objective, "reg:pseudohubererror") != 0 &&
		strcmp(objective, "count:poisson") != 0 &&
		strcmp(objective, "binary:logistic") != 0)
		return NAN;
	for (int64 i = 0; i < n; i++)
	{
		double		wi = w ? w[i] : 1.0;

		sy += wi * (double) y[i];
		sw += wi;
	}
	if (!(sw > 0.0))
		return NAN;
	mean = sy / sw;
	if (strcmp(objective, "binary:logistic") == 0)
		return Min(Max(mean, 1e-6), 1.0 - 1e-6);
	if (strcmp(objective, "count:poisson") == 0 && !(mean > 0.0))
		return NAN;
	return mean;
}

/* Sets the XGBoost parameters of a run on a booster. */
static void
TreeSetParams(TrainRun *run, XgbBooster *b)
{
	TreeParams *t = run->tree;
	XgbBoosterSetParam(b, "objective", TreeObjective(run));
	if (run->kind == MODEL_MULTINOMIAL)
		XgbBoosterSetParam(b, "num_class", psprintf("%d", run->nclasses));
	XgbBoosterSetParam(b, "tree_method", "hist");
	XgbBoosterSetParam(b, "max_depth", psprintf("%d", t->max_depth));
	XgbBoosterSetParam(b, "eta", psprintf("%.17g", t->learning_rate));
	XgbBoosterSetParam(b, "min_child_weight", psprintf("%.17g", t->min_child_weight));
	XgbBoosterSetParam(b, "subsample", psprintf("%.17g", t->subsample));
	XgbBoosterSetParam(b, "colsample_bytree", psprintf("%.17g", t->colsample_bytree));
	XgbBoosterSetParam(b, "colsample_bynode", psprintf("%.17g", t->colsample_bynode));
	XgbBoosterSetParam(b, "lambda", psprintf("%.17g", t->lambda));
	XgbBoosterSetParam(b, "alpha", psprintf("%.17g", t->alpha));
	XgbBoosterSetParam(b, "max_bin", psprintf("%d", t->max_bin));
	XgbBoosterSetParam(b, "num_parallel_tree", psprintf("%d", t->parallel_trees));
	XgbBoosterSetParam(b, "seed", psprintf("%d", t->seed));
	XgbBoosterSetParam(b, "nthread", psprintf("%d", t->threads));
	XgbBoosterSetParam(b, "verbosity", "0");
}

/*
 * The deployed version's XGBoost model of a group, for warm_start, copied
 * into the current context: NULL unless it is of the same family, task and
 * features (names, so a categorical column's levels too).
 */
static bytea *
TreeDeployedBooster(TrainRun *run, TreeGroup *g)
{
	Oid			types[4] = {TEXTOID, TEXTARRAYOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
	Datum		d;
	bytea	   *bytes;
	TreeModel  *tm;
	int			nout = run->kind == MODEL_MULTINOMIAL ? run->nclasses : 1;

	values[0] = CStringGetTextDatum(run->model);
	values[1] = FeatureNamesArray(run);
	values[2] = CStringGetTextDatum(FamilyName(run));
	values[3] = g->key ? CStringGetTextDatum(g->key) : (Datum) 0;
	nulls[3] = g->key ? ' ' : 'n';
	if (SPI_execute_with_args("SELECT v.model_data FROM streamml.models m "
							  "JOIN streamml.model_versions v "
							  "ON v.model = m.name AND v.version = m.deployed_version "
							  "WHERE m.name = $1 AND v.features OPERATOR(pg_catalog.=) $2 AND v.kind = $3 "
							  "AND v.model_data IS NOT NULL "
							  "AND v.group_key IS NOT DISTINCT FROM $4",
							  4, types, values, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the deployed version");
	if (SPI_processed == 0)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	bytes = DatumGetByteaPCopy(d);
	SPI_freetuptable(SPI_tuptable);
	tm = TreeModelLoad(VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes));
	if (TreeModelOutputs(tm) != nout ||
		(TreeModelTask(tm) == 'l') != (run->kind == MODEL_LINEAR) ||
		strcmp(TreeModelObjective(tm), TreeObjective(run)) != 0)
		return NULL;
	return bytes;
}

/*
 * Trains one group on its training rows, which are freed as soon as
 * XGBoost has binned them; keeps the holdout rows for score.
 */
static void
TreeTrainGroup(TrainRun *run, TreeGroup *g, TreeRows *train)
{
	TreeParams *t = run->tree;
	XgbMatrix  *dtrain;
	XgbMatrix  *dtest = NULL;
	double		best = INFINITY;
	int			best_round = 0;
	bool		in_sample = run->test_where == NULL;
	double		base_score = TreeBaseScore(run, train->y,
										   run->weight ? train->w : NULL,
										   train->n);
	bytea	   *prev = NULL;

	/* warm_start: more rounds on the deployed version's trees */
	if (run->warm_start)
	{
		prev = TreeDeployedBooster(run, g);
		if (prev == NULL)
			ereport(NOTICE,
					(errmsg("model \"%s\"%s%s has no deployed %s version with the same features, task and objective: warm_start trains it from scratch",
							run->model, g->key ? " group " : "",
							g->key ? quote_literal_cstr(g->key) : "",
							FamilyName(run))));
	}

	/*
	 * A quantile matrix bins the rows by its own cuts, which are the split
	 * values of the trees trained on it; the trees of a deployed version have
	 * other split values, which only the rows themselves answer exactly (the
	 * first round predicts them on the training rows): then a DMatrix.
	 */
	if (prev == NULL)
		dtrain = XgbTrainMatrixCreate(train->x, train->n, run->p, train->y,
									  run->weight ? train->w : NULL,
									  t->threads, t->max_bin);
	else
		dtrain = XgbMatrixCreate(train->x, train->n, run->p, train->y,
								 run->weight ? train->w : NULL, t->threads);
	TreeClockLog(&tree_clock, "XGBoost's matrix");
	g->count = train->n;
	/* the drift bins sample the rows the model trains on */
	FeatureBinsAddFloats(run->bins, train->x, train->n);
	TreeClockLog(&tree_clock, "drift bins");
	if (in_sample)
	{
		/* metrics on the training rows: keep their labels */
		g->ntrain = train->n;
		g->train_y = train->yd;
		train->yd = NULL;
		pfree(train->x);
		pfree(train->y);
		pfree(train->w);
		memset(train, 0, sizeof(TreeRows));
	}
	else
		TreeRowsFree(train);
	if (t->early_stopping > 0 && g->test.n > 0)
		dtest = XgbMatrixCreate(g->test.x, g->test.n, run->p, g->test.y,
								run->weight ? g->test.w : NULL, t->threads);
	g->booster = NULL;
	g->warm_rounds = 0;
	if (prev != NULL)
	{
		g->booster = XgbBoosterLoadFrom(dtrain, VARDATA_ANY(prev),
										VARSIZE_ANY_EXHDR(prev));
		g->warm_rounds = XgbBoosterRounds(g->booster);
		pfree(prev);
	}
	if (g->booster == NULL)
	{
		g->booster = XgbBoosterCreate(dtrain);
		/* a continued model keeps the base_score it was trained from */
		if (!isnan(base_score))
			XgbBoosterSetParam(g->booster, "base_score",
							   psprintf("%.17g", base_score));
	}
	TreeSetParams(run, g->booster);
	g->rounds = g->warm_rounds;
	best_round = g->warm_rounds;
	for (int i = 0; i < t->rounds; i++)
	{
		int			done = g->warm_rounds + i + 1;

		CHECK_FOR_INTERRUPTS();
		XgbBoosterUpdate(g->booster, i, dtrain);
		if (i == 0)
			TreeClockLog(&tree_clock, "first round");
		g->rounds = done;
		if (dtest != NULL)
		{
			double		score = XgbBoosterEval(g->booster, i, dtest);

			if (score < best)
			{
				best = score;
				best_round = done;
			}
			else if (done - best_round >= t->early_stopping)
				break;
		}
	}
	CHECK_FOR_INTERRUPTS();
	TreeClockLog(&tree_clock, "other rounds");
	if (dtest != NULL)
	{
		XgbBoosterSlice(g->booster, best_round);
		g->rounds = best_round;
		XgbMatrixFree(dtest);
	}
	if (in_sample)
	{
		int			nout = run->kind == MODEL_MULTINOMIAL ? run->nclasses : 1;

		g->train_pred = MemoryContextAllocHuge(CurrentMemoryContext,
											   sizeof(float) * Max(g->ntrain, 1) * nout);
		XgbBoosterPredict(g->booster, dtrain, g->ntrain, nout, g->train_pred);
	}
	XgbMatrixFree(dtrain);
}

/*
 * The query of the one scan: group key, target, weight, holdout flag (or,
 * when the learner finds the split, the order_by value) and the features,
 * each as float8 (or the one float8[] column).
 */
static char *
TreeScanQuery(TrainRun *run)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s, %s, %s, %s", run->gexpr, run->yexpr,
					 run->wexpr,
					 run->split_in_scan ? psprintf("s.%s", quote_identifier(run->order_by)) :
					 run->test_where ? run->test_where : "false");
	if (run->featarray)
		appendStringInfo(&sql, ", CASE WHEN %s THEN %s END",
						 FeatureArrayFits(run), run->xexpr);
	else
		for (int j = 0; j < run->p; j++)
			appendStringInfo(&sql, ", %s", run->slotexpr[j]);
	appendStringInfo(&sql, " FROM %s WHERE (%s)", run->from, run->train_where);
	if (run->test_where)
		appendStringInfo(&sql, " OR (%s)", run->test_where);
	if (run->group_by)
		appendStringInfoString(&sql, " ORDER BY 1");
	return sql.data;
}

/*
 * Reads one row's features into x (NaN for NULL or NaN); false when one is
 * infinite or the feature array does not fit.
 */
static bool
TreeRowFeatures(TrainRun *run, Datum *values, bool *nulls, float *x)
{
	if (run->featarray)
	{
		ArrayType  *a;
		Datum	   *elems;
		bool	   *enulls;
		int			n;

		if (nulls[4])
		{
			run->malformed++;
			return false;
		}
		a = DatumGetArrayTypeP(values[4]);
		deconstruct_array(a, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &elems, &enulls, &n);
		if (n != run->p)
		{
			run->malformed++;
			return false;
		}
		for (int j = 0; j < n; j++)
		{
			double		v = enulls[j] ? NAN : DatumGetFloat8(elems[j]);

			if (!TreeValueFits(v))
				return false;
			x[j] = (float) v;
		}
		pfree(elems);
		pfree(enulls);
		return true;
	}
	for (int j = 0; j < run->p; j++)
	{
		double		v = nulls[4 + j] ? NAN : DatumGetFloat8(values[4 + j]);

		if (!TreeValueFits(v))
			return false;
		x[j] = (float) v;
	}
	return true;
}

/* True when a group key (text datum, not NULL) is the group's. */
static bool
SameGroup(const char *key, Datum d)
{
	text	   *t = DatumGetTextPP(d);
	int			len = VARSIZE_ANY_EXHDR(t);
	bool		same = (int) strlen(key) == len &&
		memcmp(key, VARDATA_ANY(t), len) == 0;

	if ((Pointer) t != DatumGetPointer(d))
		pfree(t);
	return same;
}

/*
 * The order_by values of the rows of a scan that finds its own split
 * (split_scan.c): of each row kept, in the order of the matrix, and of the
 * rows skipped, whose training side counts them.
 */
typedef struct TreeOrders
{
	SplitScan  *split;
	Datum	   *kept;
	bool	   *kept_null;
	int64		nkept;
	int64		cap;
	Datum	   *skipped;		/* non-NULL values of skipped rows */
	int64		nskipped;
	int64		skipped_cap;
	int64		skipped_all;	/* every skipped row */
} TreeOrders;

/* Remembers the order_by value of a row kept (kept) or skipped. */
static void
TreeOrdersAdd(TreeOrders *o, Datum v, bool isnull, bool kept)
{
	if (kept)
	{
		if (o->nkept == o->cap)
		{
			o->cap = Max(o->cap * 2, 1024);
			o->kept = o->kept ? repalloc_huge(o->kept, sizeof(Datum) * o->cap) :
				MemoryContextAllocHuge(CurrentMemoryContext, sizeof(Datum) * o->cap);
			o->kept_null = o->kept_null ? repalloc_huge(o->kept_null, o->cap) :
				MemoryContextAllocHuge(CurrentMemoryContext, o->cap);
		}
		o->kept[o->nkept] = v;
		o->kept_null[o->nkept++] = isnull;
		return;
	}
	o->skipped_all++;
	if (isnull)
		return;
	if (o->nskipped == o->skipped_cap)
	{
		o->skipped_cap = Max(o->skipped_cap * 2, 64);
		o->skipped = o->skipped ? repalloc_huge(o->skipped, sizeof(Datum) * o->skipped_cap) :
			MemoryContextAllocHuge(CurrentMemoryContext, sizeof(Datum) * o->skipped_cap);
	}
	o->skipped[o->nskipped++] = v;
}

/*
 * Splits the rows of a scan that found its own cutoff (there is one group):
 * rows above it move to the holdout, rows at or below it stay in training,
 * in the order of the scan, rows without an order_by value go; skipped
 * rows count on their side, as the split by query counts them.  Without
 * any order_by value, every row trains and is scored (ResolveSplit's rule).
 */
static void
TreeSplitRows(TrainRun *run, TreeOrders *o, TreeGroup *g, TreeRows *train)
{
	int			p = run->p;
	int64		t = 0;

	if (!SplitScanEnd(o->split, run))
	{
		g->skipped += o->skipped_all;
		return;
	}
	for (int64 i = 0; i < o->nskipped; i++)
		if (SplitScanSide(o->split, o->skipped[i], false) == 0)
			g->skipped++;
	for (int64 i = 0; i < train->n; i++)
	{
		int			side = SplitScanSide(o->split, o->kept[i], o->kept_null[i]);

		if (side == 1)
			TreeRowsAdd(&g->test, p, train->x + i * p, train->yd[i], train->w[i]);
		else if (side == 0)
		{
			if (t != i)
			{
				memcpy(train->x + t * p, train->x + i * p, sizeof(float) * p);
				train->y[t] = train->y[i];
				train->yd[t] = train->yd[i];
				train->w[t] = train->w[i];
			}
			t++;
		}
	}
	train->n = t;
	if (o->kept)
	{
		pfree(o->kept);
		pfree(o->kept_null);
	}
	if (o->skipped)
		pfree(o->skipped);
}

/* A group ends: trains it, or drops it when it has no training rows. */
static List *
TreeEndGroup(TrainRun *run, List *groups, TreeGroup *g, TreeRows *train)
{
	double		wsum = 0;

	if (g == NULL)
		return groups;
	/* rows that all weigh zero teach nothing: as no rows, as a GLM has it */
	if (run->weight)
		for (int64 i = 0; i < train->n && wsum == 0; i++)
			wsum += train->w[i];
	if (train->n == 0 || (run->weight && wsum == 0))
	{
		int64		dropped = g->skipped + (train->n > 0 ? train->n + g->test.n : 0);

		run->extra_skipped += dropped;
		run->empty_groups++;
		run->empty_group_rows += dropped;
		TreeRowsFree(train);
		TreeRowsFree(&g->test);
		return groups;
	}
	TreeTrainGroup(run, g, train);
	return lappend(groups, g);
}

/*
 * The rows of one fetch of the scan, as the executor hands them over (a
 * DestReceiver, instead of SPI's copy of each row as a heap tuple that
 * would then be taken apart again): each row's features already in single
 * precision, its target and weight, whether it is usable, its holdout flag
 * or order_by value, and where a new group starts.
 */
typedef struct TreeBatch
{
	DestReceiver pub;
	TrainRun   *run;
	MemoryContext cxt;			/* the run's: group keys */
	MemoryContext rowcxt;		/* reset after each fetch */
	int			n;				/* rows in the batch */
	float	   *x;				/* TREE_FETCH_ROWS × p */
	double	   *y;
	float	   *w;
	bool	   *usable;			/* target, weight and features are */
	bool	   *test;			/* the holdout flag of the query */
	Datum	   *ord;			/* or the order_by value (split_in_scan) */
	bool	   *ord_null;
	char	  **new_group;		/* the key where a group starts, else NULL */
	bool		started;
	char	   *last_key;
} TreeBatch;

static const char TreeNoGroup[] = "";

/*
 * receiveSlot of a TreeBatch: one row of the scan into the batch (the
 * file's comment says which rows are usable).
 */
static bool
TreeBatchReceive(TupleTableSlot *slot, DestReceiver *self)
{
	TreeBatch  *b = (TreeBatch *) self;
	TrainRun   *run = b->run;
	int			r = b->n++;
	Datum	   *values;
	bool	   *nulls;
	double		y;
	double		w;
	MemoryContext old = MemoryContextSwitchTo(b->rowcxt);

	slot_getallattrs(slot);
	values = slot->tts_values;
	nulls = slot->tts_isnull;
	b->new_group[r] = NULL;
	if (!b->started || (run->group_by && !SameGroup(b->last_key, values[0])))
	{
		b->last_key = run->group_by ?
			MemoryContextStrdup(b->cxt, TextDatumGetCString(values[0])) :
			(char *) TreeNoGroup;
		b->new_group[r] = b->last_key;
		b->started = true;
	}
	b->ord[r] = values[3];
	b->ord_null[r] = nulls[3];
	b->test[r] = !run->split_in_scan && !nulls[3] && DatumGetBool(values[3]);
	y = nulls[1] ? NAN : DatumGetFloat8(values[1]);
	w = nulls[2] ? NAN : DatumGetFloat8(values[2]);
	if (isfinite(w) && w >= 0.0 && !PASS_WEIGHT_OK(w))
		PassWeightOutOfRange(w);
	b->usable[r] = isfinite(y) && TreeValueFits(y) && isfinite(w) &&
		TreeValueFits(w) && w >= 0.0 &&
		TreeRowFeatures(run, values, nulls, b->x + (int64) r * run->p);
	b->y[r] = y;
	b->w[r] = (float) w;
	MemoryContextSwitchTo(old);
	return true;
}

/* rStartup of a TreeBatch: nothing to do. */
static void
TreeBatchStartup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

/* rShutdown and rDestroy of a TreeBatch: nothing to do. */
static void
TreeBatchShutdown(DestReceiver *self)
{
}

/* A batch of the scan of a run, with room for TREE_FETCH_ROWS rows. */
static TreeBatch *
TreeBatchCreate(TrainRun *run)
{
	TreeBatch  *b = palloc0(sizeof(TreeBatch));
	int			n = TREE_FETCH_ROWS;

	b->pub.receiveSlot = TreeBatchReceive;
	b->pub.rStartup = TreeBatchStartup;
	b->pub.rShutdown = TreeBatchShutdown;
	b->pub.rDestroy = TreeBatchShutdown;
	b->pub.mydest = DestNone;
	b->run = run;
	b->cxt = CurrentMemoryContext;
	b->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "tree scan rows",
									  ALLOCSET_DEFAULT_SIZES);
	b->x = palloc(sizeof(float) * n * Max(run->p, 1));
	b->y = palloc(sizeof(double) * n);
	b->w = palloc(sizeof(float) * n);
	b->usable = palloc(sizeof(bool) * n);
	b->test = palloc(sizeof(bool) * n);
	b->ord = palloc(sizeof(Datum) * n);
	b->ord_null = palloc(sizeof(bool) * n);
	b->new_group = palloc(sizeof(char *) * n);
	return b;
}

/*
 * Fits every group of a tree run from one scan of the source.  Returns the
 * groups (TreeGroup), in the order of their keys.
 */
static List *
TreeFit(TrainRun *run)
{
	List	   *groups = NIL;
	TreeGroup  *g = NULL;
	TreeRows	train;
	SPIPlanPtr	plan;
	Portal		portal;
	TreeBatch  *b;
	TreeOrders	orders;

	if (run->tree->objective != NULL &&
		strncmp(run->tree->objective, "binary:", 7) == 0 && run->nclasses > 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("objective \"%s\" needs two classes, but target column \"%s\" has %d",
						run->tree->objective, run->label, run->nclasses),
				 errhint("Use objective 'multi:softprob', or leave the objective out.")));
	TreeClockStart(&tree_clock);
	ResolveFeatureLength(run);
	run->bins = FeatureBinsBegin(run->p, FeatureNamesArray(run));
	memset(&train, 0, sizeof(train));
	memset(&orders, 0, sizeof(orders));
	if (run->split_in_scan)
		orders.split = SplitScanBegin(run);
	b = TreeBatchCreate(run);

	plan = SPI_prepare_cursor(TreeScanQuery(run), 0, NULL, 0);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare_cursor failed: %s",
			 SPI_result_code_string(SPI_result));
	/* a read-only cursor runs under the active snapshot: the run's */
	PushActiveSnapshot(run->snapshot);
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	PopActiveSnapshot();
	run->passes++;
	for (;;)
	{
		b->n = 0;
		/* SPI_cursor_fetch, with the batch as the destination */
		PortalRunFetch(portal, FETCH_FORWARD, TREE_FETCH_ROWS,
					   (DestReceiver *) b);
		if (b->n == 0)
			break;
		for (int r = 0; r < b->n; r++)
		{
			if (b->new_group[r] != NULL)
			{
				groups = TreeEndGroup(run, groups, g, &train);
				g = palloc0(sizeof(TreeGroup));
				g->key = run->group_by ? b->new_group[r] : NULL;
				g->holdout_score = NAN;
				g->deployed_score = NAN;
			}
			/* with split_in_scan, the side is known once the scan is over */
			if (run->split_in_scan)
				SplitScanAdd(orders.split, b->ord[r], b->ord_null[r]);
			if (!b->usable[r])
			{
				if (run->split_in_scan)
					TreeOrdersAdd(&orders, b->ord[r], b->ord_null[r], false);
				else if (!b->test[r])
					g->skipped++;
				continue;
			}
			TreeRowsAdd(b->test[r] ? &g->test : &train, run->p,
						b->x + (int64) r * run->p, b->y[r], b->w[r]);
			if (run->split_in_scan)
				TreeOrdersAdd(&orders, b->ord[r], b->ord_null[r], true);
		}
		MemoryContextReset(b->rowcxt);
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	MemoryContextDelete(b->rowcxt);
	TreeClockLog(&tree_clock, "scan");
	if (run->split_in_scan)
	{
		if (g != NULL)
			TreeSplitRows(run, &orders, g, &train);
		else
			SplitScanEnd(orders.split, run);
		TreeClockLog(&tree_clock, "cutoff and split");
	}
	groups = TreeEndGroup(run, groups, g, &train);
	NoticeMalformedRows(run, run->malformed);
	if (groups == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no usable rows in \"%s\"", run->source),
				 errdetail("Rows whose target or weight is null, negative or not finite, or with an infinite feature, are skipped, and so are training rows that all weigh zero.")));
	return groups;
}

/*
 * The metrics JSON of predictions pred (n × nout) against labels y, by the
 * evaluation aggregate of the task (classification_metrics by a direct
 * call, the others by a query over the arrays); on: "holdout" or
 * "training".
 */
static char *
TreeMetrics(TrainRun *run, int64 n, const double *y, const double *pred,
			int nout, const char *on)
{
	Datum	   *yd;
	Datum	   *pd;
	Oid			types[2] = {FLOAT8ARRAYOID, FLOAT8ARRAYOID};
	Datum		values[2];
	const char *sql;
	char	   *json;

	if (run->kind == MODEL_LOGISTIC)
	{
		/* the aggregate's own code, without passing the rows through SQL */
		float	   *label = palloc(sizeof(float) * Max(n, 1));

		for (int64 i = 0; i < n; i++)
			label[i] = (float) y[i];
		json = ClassificationMetricsText(label, pred, n);
		pfree(label);
		json[strlen(json) - 1] = '\0';
		return psprintf("%s, \"on\": \"%s\"}", json, on);
	}
	yd = palloc(sizeof(Datum) * Max(n, 1));
	pd = palloc(sizeof(Datum) * Max(n * nout, 1));
	for (int64 i = 0; i < n; i++)
		yd[i] = Float8GetDatum(y[i]);
	for (int64 i = 0; i < n * nout; i++)
		pd[i] = Float8GetDatum(pred[i]);
	values[0] = PointerGetDatum(construct_array(yd, n, FLOAT8OID, 8,
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(pd, n * nout, FLOAT8OID, 8,
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (run->kind == MODEL_LINEAR)
		sql = "SELECT streamml.regression_metrics(y, p)::text "
			"FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS t(y, p)";
	else if (run->kind == MODEL_LOGISTIC)
		sql = "SELECT streamml.classification_metrics(y::int::boolean, p)::text "
			"FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS t(y, p)";
	else
		sql = psprintf("SELECT streamml.multiclass_metrics(($1)[i]::int, ($2)[(i - 1) * %d + 1 : i * %d])::text "
					   "FROM pg_catalog.generate_series(1, pg_catalog.cardinality($1)) AS i",
					   nout, nout);
	RunQuery(run, sql, 2, types, values, NULL);
	json = ResultText(0, 1);
	/* no finite prediction at all (a base_score the objective cannot take) */
	if (json == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("model \"%s\" gives no finite prediction on its %s rows", run->model, on),
				 errhint("Check the options base_score and objective.")));
	json[strlen(json) - 1] = '\0';
	json = psprintf("%s, \"on\": \"%s\"}", json, on);
	pfree(yd);
	pfree(pd);
	return json;
}

/* Reads a number out of metrics JSON text, NaN when absent or null. */
static double
MetricsNumber(const char *json, const char *key)
{
	Jsonb	   *j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
													   CStringGetDatum(json)));
	JsonbValue *v = getKeyJsonValueFromContainer(&j->root, key, strlen(key),
												 NULL);

	if (v == NULL || v->type != jbvNumeric)
		return NAN;
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8,
											  NumericGetDatum(v->val.numeric)));
}

/*
 * Predictions of the deployed version of a group on its holdout rows, into
 * pred (n × nout); false when it cannot score them (other features or
 * task, a linear version and missing values), and then *stored is its own
 * stored holdout score, or NaN.
 */
static bool
TreeDeployedPredict(TrainRun *run, TreeGroup *g, int nout, double *pred,
					double *stored)
{
	Oid			types[4] = {TEXTOID, TEXTARRAYOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
	Datum		d;
	char	   *kind;

	*stored = NAN;
	values[0] = CStringGetTextDatum(run->model);
	values[1] = FeatureNamesArray(run);
	values[2] = CStringGetTextDatum(run->deploy_metric);
	values[3] = g->key ? CStringGetTextDatum(g->key) : (Datum) 0;
	nulls[3] = g->key ? ' ' : 'n';
	if (SPI_execute_with_args("SELECT m.kind, v.features OPERATOR(pg_catalog.=) $2, (v.metrics->>$3)::float8, "
							  "v.model_data, v.intercepts, v.coefficients, "
							  "pg_catalog.cardinality(m.classes) "
							  "FROM streamml.models m JOIN streamml.model_versions v "
							  "ON v.model = m.name AND v.version = m.deployed_version "
							  "WHERE m.name = $1 AND v.group_key IS NOT DISTINCT FROM $4",
							  4, types, values, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the deployed version");
	if (SPI_processed == 0)
		return false;
	kind = ResultText(0, 1);
	if (ResultText(0, 3) != NULL)
		*stored = strtod(ResultText(0, 3), NULL);
	if (ResultText(0, 2) == NULL || strcmp(ResultText(0, 2), "t") != 0)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	if (!isnull)
	{
		bytea	   *bytes = DatumGetByteaPP(d);
		TreeModel  *tm = TreeModelLoad(VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes));

		if (TreeModelOutputs(tm) != nout || TreeModelFeatures(tm) > run->p ||
			(TreeModelTask(tm) == 'l') != (run->kind == MODEL_LINEAR))
			return false;
		TreeModelPredictRows(tm, g->test.x, g->test.n, run->p, pred,
							 run->tree->threads);
		return true;
	}
	else
	{
		/* a linear version of the same task: its linear predictor */
		int			ni;
		int			nc;
		double	   *ic = ResultFloat8Array(0, 5, &ni, CurrentMemoryContext);
		double	   *cf = ResultFloat8Array(0, 6, &nc, CurrentMemoryContext);
		bool		same_task = (run->kind == MODEL_LINEAR) ? strcmp(kind, "linear") == 0 :
			(run->kind == MODEL_LOGISTIC) ? strcmp(kind, "logistic") == 0 :
			strcmp(kind, "multinomial") == 0;

		if (!same_task || ic == NULL || cf == NULL || ni != nout ||
			nc != nout * run->p)
			return false;
		for (int64 i = 0; i < g->test.n; i++)
		{
			const float *xi = g->test.x + i * run->p;
			double		top = -INFINITY;
			double		sum = 0.0;

			for (int j = 0; j < run->p; j++)
				if (isnan(xi[j]))
					return false;
			for (int c = 0; c < nout; c++)
			{
				double		eta = ic[c];

				for (int j = 0; j < run->p; j++)
					eta += cf[c * run->p + j] * xi[j];
				pred[i * nout + c] = eta;
				top = Max(top, eta);
			}
			if (run->kind == MODEL_LOGISTIC)
				pred[i] = Sigmoid(pred[i]);
			else if (run->kind == MODEL_MULTINOMIAL)
			{
				for (int c = 0; c < nout; c++)
				{
					pred[i * nout + c] = exp(pred[i * nout + c] - top);
					sum += pred[i * nout + c];
				}
				for (int c = 0; c < nout; c++)
					pred[i * nout + c] /= sum;
			}
		}
		return true;
	}
}

/*
 * Predictions of a group's new model on its holdout rows, into pred
 * (n × nout), by the walk that serves it (tree_predict.c) over the bytes
 * that record will store: the same sums in the same order as XGBoost's,
 * on the run's "threads" (about half the CPU time of the library's own
 * prediction).
 */
static void
TreeHoldoutPredict(TrainRun *run, TreeGroup *g, double *pred)
{
	TreeModel  *tm;

	g->model_data = XgbBoosterSave(g->booster, "ubj");
	tm = TreeModelLoad(VARDATA(g->model_data), VARSIZE(g->model_data) - VARHDRSZ);
	TreeClockLog(&tree_clock, "model saved and loaded");
	TreeModelPredictRows(tm, g->test.x, g->test.n, run->p, pred,
						 run->tree->threads);
}

/*
 * Scores each group: on its holdout rows (and the deployed version on the
 * same rows, for deploy 'if_better'), else on its training rows.
 */
static void
TreeScore(TrainRun *run, List *groups)
{
	ListCell   *lc;
	int			nout = run->kind == MODEL_MULTINOMIAL ? run->nclasses : 1;

	foreach(lc, groups)
	{
		TreeGroup  *g = lfirst(lc);
		double	   *pred;

		if (run->test_where == NULL)
		{
			pred = MemoryContextAllocHuge(CurrentMemoryContext,
										  sizeof(double) * Max(g->ntrain, 1) * nout);
			for (int64 i = 0; i < g->ntrain * nout; i++)
				pred[i] = g->train_pred[i];
			g->metrics = TreeMetrics(run, g->ntrain, g->train_y, pred, nout,
									 "training");
			pfree(pred);
			continue;
		}
		if (g->test.n == 0)
		{
			g->metrics = "{\"rows\": 0, \"on\": \"holdout\"}";
			continue;
		}
		pred = MemoryContextAllocHuge(CurrentMemoryContext,
									  sizeof(double) * g->test.n * nout);
		TreeHoldoutPredict(run, g, pred);
		TreeClockLog(&tree_clock, "holdout prediction");
		g->metrics = TreeMetrics(run, g->test.n, g->test.yd, pred, nout, "holdout");
		g->holdout_score = MetricsNumber(g->metrics, run->deploy_metric);
		g->holdout_rows = MetricsNumber(g->metrics, "rows");
		TreeClockLog(&tree_clock, "holdout metrics");
		if (strcmp(run->deploy, "if_better") == 0)
		{
			double		stored;

			if (TreeDeployedPredict(run, g, nout, pred, &stored))
				g->deployed_score =
					MetricsNumber(TreeMetrics(run, g->test.n, g->test.yd, pred,
											  nout, "holdout"),
								  run->deploy_metric);
			else
				g->deployed_score = stored;
			TreeClockLog(&tree_clock, "deployed version's holdout");
		}
		pfree(pred);
	}
}

/* The feature importance of a group as JSON: gain, weight, cover arrays. */
static char *
TreeImportance(TrainRun *run, TreeGroup *g)
{
	static const char *const types[3] = {"gain", "weight", "cover"};
	double	   *v = palloc(sizeof(double) * Max(run->p, 1));
	StringInfoData b;

	initStringInfo(&b);
	appendStringInfoChar(&b, '{');
	for (int k = 0; k < 3; k++)
	{
		XgbFeatureScore(g->booster, types[k], run->p, v);
		appendStringInfo(&b, "%s\"%s\": [", k > 0 ? ", " : "", types[k]);
		for (int j = 0; j < run->p; j++)
			appendStringInfo(&b, "%s%.9g", j > 0 ? ", " : "", v[j]);
		appendStringInfoChar(&b, ']');
	}
	appendStringInfoChar(&b, '}');
	return b.data;
}

/* Inserts the model_versions row of every group of a tree run. */
static void
TreeRecord(TrainRun *run, List *groups, int version)
{
	ListCell   *lc;
	Datum		empty = PointerGetDatum(construct_empty_array(FLOAT8OID));

	foreach(lc, groups)
	{
		TreeGroup  *g = lfirst(lc);
		ModelVersionRow row;

		memset(&row, 0, sizeof(row));
		row.group_key = g->key;
		row.intercepts = empty;
		row.coefficients = empty;
		row.std_errors = empty;
		row.p_values = empty;
		row.means = empty;
		row.scales = empty;
		row.rows_used = g->count;
		row.rows_skipped = g->skipped + RUN_SKIPPED(run);
		row.iterations = g->rounds;
		row.converged = true;
		row.metrics = g->metrics;
		row.has_df = false;
		row.model_data = g->model_data ? g->model_data :
			XgbBoosterSave(g->booster, "ubj");
		row.importance = TreeImportance(run, g);
		ModelInsertVersion(run, version, &row);
	}
	TreeClockLog(&tree_clock, "record");
}

/* What the driver reports and decides deployment on, of a tree group. */
static void
TreeOutcome(TrainRun *run, void *group, TrainOutcome *out)
{
	TreeGroup  *g = group;

	out->key = g->key;
	out->rows_used = g->count;
	out->rows_skipped = g->skipped + RUN_SKIPPED(run);
	out->iterations = g->rounds;
	out->converged = true;
	out->separable = false;
	out->metrics = g->metrics;
	out->holdout_score = g->holdout_score;
	out->holdout_rows = g->holdout_rows;
	out->deployed_score = g->deployed_score;
}

/* The tree learner: gbt, forest and tree, by XGBoost. */
const TrainLearner TreeLearner = {
	.name = "tree",
	.fit = TreeFit,
	.score = TreeScore,
	.record = TreeRecord,
	.outcome = TreeOutcome,
};
