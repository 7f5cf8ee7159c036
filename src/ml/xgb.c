/*
 * xgb.c
 *		The only file that includes XGBoost's C API: matrices, boosters,
 *		training rounds, prediction, model bytes, feature importance.
 *
 * XGBoost runs its own OpenMP threads inside each call; they never call
 * back into PostgreSQL (no log callback is registered: the library's
 * messages go to its own stderr, and its errors come back as return codes
 * read here with XGBGetLastError).  Each handle is a small palloc'd struct
 * with a memory context reset callback that frees the library object, so
 * whatever error ends the statement (a cancel between rounds, an XGBoost
 * failure, out of memory) frees the booster and the matrix when their
 * memory context goes; the normal path frees them at once with
 * XgbMatrixFree and XgbBoosterFree.
 *
 * Every call into the library runs with all signals blocked in the calling
 * thread, so the OpenMP threads it starts inherit a mask that blocks them
 * all: PostgreSQL's signal handlers (a cancel, a termination) only ever run
 * in the backend's own thread, after the call, where the next
 * CHECK_FOR_INTERRUPTS sees what they set.
 */
#include "postgres.h"

#include <math.h>
#include <ctype.h>
#include <pthread.h>
#include <signal.h>

#include <xgboost/c_api.h>

#include "utils/memutils.h"

#include "ml/xgb.h"

/* the array interface's name of a native float */
#ifdef WORDS_BIGENDIAN
#define XGB_FLOAT_TYPESTR ">f4"
#else
#define XGB_FLOAT_TYPESTR "<f4"
#endif

struct XgbMatrix
{
	DMatrixHandle handle;
	MemoryContextCallback cb;
};

struct XgbBooster
{
	BoosterHandle handle;
	MemoryContextCallback cb;
};

/* Blocks every signal of the calling thread, saving its mask in *old. */
static void
XgbBlockSignals(sigset_t *old)
{
	sigset_t	all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, old);
}

/* Restores the signal mask saved by XgbBlockSignals. */
static void
XgbRestoreSignals(sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

/*
 * Runs one library call with every signal blocked (see the file's
 * comment), then turns a failure into an ERROR.
 */
#define XGB_CHECK(call, what) \
	do { \
		sigset_t	xgb_old_mask; \
		int			xgb_ret; \
		XgbBlockSignals(&xgb_old_mask); \
		xgb_ret = (call); \
		XgbRestoreSignals(&xgb_old_mask); \
		XgbCheck(xgb_ret, (what)); \
	} while (0)

/* Turns a failed XGBoost call into an ERROR with the library's message. */
static void
XgbCheck(int ret, const char *what)
{
	const char *msg;

	if (ret == 0)
		return;
	msg = XGBGetLastError();
	/*
	 * Without the library's stack trace: its addresses would tell any role
	 * where the libraries are mapped (and it is no use to a user)
	 */
	if (msg != NULL)
	{
		char	   *copy = pstrdup(msg);
		char	   *trace = strstr(copy, "Stack trace:");

		if (trace != NULL)
		{
			*trace = '\0';
			while (trace > copy && isspace((unsigned char) trace[-1]))
				*--trace = '\0';
		}
		msg = copy;
	}
	/* bad_alloc inside the library is an out-of-memory, as PostgreSQL's */
	if (msg != NULL && strstr(msg, "bad_alloc") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory in XGBoost while %s", what),
				 errdetail("%s", msg)));
	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("XGBoost failed while %s", what),
			 errdetail("%s", msg ? msg : "no message")));
}

/* Reset callback: frees the library's matrix. */
static void
XgbMatrixRelease(void *arg)
{
	XgbMatrix  *m = arg;

	if (m->handle != NULL)
		XGDMatrixFree(m->handle);
	m->handle = NULL;
}

/* Reset callback: frees the library's booster. */
static void
XgbBoosterRelease(void *arg)
{
	XgbBooster *b = arg;

	if (b->handle != NULL)
		XGBoosterFree(b->handle);
	b->handle = NULL;
}

/*
 * A matrix of nrow × ncol floats, row-major, NaN for missing, with labels
 * and weights (either may be NULL).  XGBoost copies the data, with nthread
 * threads: the path of python's DMatrix over a numpy array (the array
 * interface, XGDMatrixCreateFromDense).
 */
XgbMatrix *
XgbMatrixCreate(const float *data, int64 nrow, int ncol, const float *label,
				const float *weight, int nthread)
{
	XgbMatrix  *m = palloc0(sizeof(XgbMatrix));
	char	   *array;
	char	   *config;

	m->cb.func = XgbMatrixRelease;
	m->cb.arg = m;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &m->cb);
	array = psprintf("{\"data\": [%lu, true], \"shape\": [" INT64_FORMAT ", %d], "
					 "\"typestr\": \"%s\", \"version\": 3}",
					 (unsigned long) (uintptr_t) data, nrow, ncol, XGB_FLOAT_TYPESTR);
	config = psprintf("{\"missing\": NaN, \"nthread\": %d}", Max(nthread, 1));
	XGB_CHECK(XGDMatrixCreateFromDense(array, config, &m->handle),
			 "building the training matrix");
	pfree(array);
	pfree(config);
	if (label != NULL)
		XGB_CHECK(XGDMatrixSetFloatInfo(m->handle, "label", label,
									   (bst_ulong) nrow),
				 "setting the labels");
	if (weight != NULL)
		XGB_CHECK(XGDMatrixSetFloatInfo(m->handle, "weight", weight,
									   (bst_ulong) nrow),
				 "setting the weights");
	return m;
}

/*
 * The one batch that XGBoost's data iterator hands to the proxy matrix of
 * XgbTrainMatrixCreate: our rows, and the first failure of a library call
 * made in the callbacks (they run inside the library's C++ frames, where
 * no ereport may jump through: the caller reports it once the library has
 * returned).
 */
typedef struct XgbBatch
{
	DMatrixHandle proxy;
	char	   *array;			/* array interface of the rows */
	const float *label;
	const float *weight;
	bst_ulong	nrow;
	bool		given;			/* the batch was handed over since the reset */
	int			failed;			/* a callback's failing library call, or 0 */
} XgbBatch;

/* next callback of the iterator: hands the one batch over, then ends. */
static int
XgbBatchNext(DataIterHandle handle)
{
	XgbBatch   *b = handle;
	int			ret;

	if (b->given || b->failed)
		return 0;
	b->given = true;
	ret = XGProxyDMatrixSetDataDense(b->proxy, b->array);
	if (ret == 0 && b->label != NULL)
		ret = XGDMatrixSetFloatInfo(b->proxy, "label", b->label, b->nrow);
	if (ret == 0 && b->weight != NULL)
		ret = XGDMatrixSetFloatInfo(b->proxy, "weight", b->weight, b->nrow);
	if (ret != 0)
	{
		b->failed = ret;
		return 0;
	}
	return 1;
}

/* reset callback of the iterator: the batch is to be handed over again. */
static void
XgbBatchReset(DataIterHandle handle)
{
	XgbBatch   *b = handle;

	b->given = false;
}

/*
 * The training matrix of a booster of the histogram method: nrow × ncol
 * floats, row-major, NaN for missing, with labels and weights (either may
 * be NULL), as python's xgboost.QuantileDMatrix over a numpy array builds
 * it.  XGBoost reads our rows through a one-batch iterator, sketches their
 * quantiles and keeps only each value's bin (max_bin bins per feature, the
 * booster's max_bin), instead of first copying the rows (XgbMatrixCreate,
 * python's DMatrix) and binning that copy in the first round: the same
 * cuts, bins and so the same trees, with one pass and one copy fewer.  The
 * matrix serves training from scratch and the prediction of its own rows
 * by the trees trained on it (whose split values are its cuts); not the
 * continued training of other trees, whose split values its bins do not
 * answer exactly.
 */
XgbMatrix *
XgbTrainMatrixCreate(const float *data, int64 nrow, int ncol,
					 const float *label, const float *weight, int nthread,
					 int max_bin)
{
	XgbMatrix  *m = palloc0(sizeof(XgbMatrix));
	XgbMatrix  *proxy = palloc0(sizeof(XgbMatrix));
	XgbBatch	batch;
	char	   *config;

	m->cb.func = XgbMatrixRelease;
	m->cb.arg = m;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &m->cb);
	proxy->cb.func = XgbMatrixRelease;
	proxy->cb.arg = proxy;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &proxy->cb);
	XGB_CHECK(XGProxyDMatrixCreate(&proxy->handle), "building the training matrix");
	memset(&batch, 0, sizeof(batch));
	batch.proxy = proxy->handle;
	batch.array = psprintf("{\"data\": [%lu, true], \"shape\": [" INT64_FORMAT ", %d], "
						   "\"typestr\": \"%s\", \"version\": 3}",
						   (unsigned long) (uintptr_t) data, nrow, ncol,
						   XGB_FLOAT_TYPESTR);
	batch.label = label;
	batch.weight = weight;
	batch.nrow = (bst_ulong) nrow;
	config = psprintf("{\"missing\": NaN, \"nthread\": %d, \"max_bin\": %d}",
					  Max(nthread, 1), max_bin);
	XGB_CHECK(XGQuantileDMatrixCreateFromCallback(&batch, proxy->handle, NULL,
												  XgbBatchReset, XgbBatchNext,
												  config, &m->handle),
			  "building the training matrix");
	XgbCheck(batch.failed, "building the training matrix");
	XgbMatrixRelease(proxy);
	pfree(batch.array);
	pfree(config);
	return m;
}

/* Frees a matrix now (its memory context would later). */
void
XgbMatrixFree(XgbMatrix *m)
{
	XgbMatrixRelease(m);
}

/* A new booster that trains on one matrix. */
XgbBooster *
XgbBoosterCreate(XgbMatrix *train)
{
	XgbBooster *b = palloc0(sizeof(XgbBooster));

	b->cb.func = XgbBoosterRelease;
	b->cb.arg = b;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &b->cb);
	XGB_CHECK(XGBoosterCreate(train ? &train->handle : NULL, train ? 1 : 0,
							 &b->handle),
			 "creating a booster");
	return b;
}

/* A booster loaded from stored model bytes (UBJSON or JSON). */
XgbBooster *
XgbBoosterLoad(const char *bytes, Size len)
{
	XgbBooster *b = XgbBoosterCreate(NULL);

	XGB_CHECK(XGBoosterLoadModelFromBuffer(b->handle, bytes, (bst_ulong) len),
			 "loading a stored model");
	return b;
}

/*
 * A booster for continued training: created with the training matrix, as
 * for a new model, then given a stored model's trees (python's
 * xgb.train(..., xgb_model=...)); its rounds continue from theirs.
 */
XgbBooster *
XgbBoosterLoadFrom(XgbMatrix *train, const char *bytes, Size len)
{
	XgbBooster *b = XgbBoosterCreate(train);

	XGB_CHECK(XGBoosterLoadModelFromBuffer(b->handle, bytes, (bst_ulong) len),
			 "loading the deployed model to continue training");
	return b;
}

/* Frees a booster now. */
void
XgbBoosterFree(XgbBooster *b)
{
	XgbBoosterRelease(b);
}

/* Sets one parameter, by XGBoost's name. */
void
XgbBoosterSetParam(XgbBooster *b, const char *name, const char *value)
{
	XGB_CHECK(XGBoosterSetParam(b->handle, name, value),
			 psprintf("setting parameter \"%s\" to \"%s\"", name, value));
}

/* One boosting round (with num_parallel_tree, that many trees). */
void
XgbBoosterUpdate(XgbBooster *b, int iter, XgbMatrix *train)
{
	XGB_CHECK(XGBoosterUpdateOneIter(b->handle, iter, train->handle),
			 "training");
}

/* Keeps the first "rounds" rounds of the model (early stopping). */
void
XgbBoosterSlice(XgbBooster *b, int rounds)
{
	BoosterHandle sliced;

	if (rounds >= XgbBoosterRounds(b))
		return;
	XGB_CHECK(XGBoosterSlice(b->handle, 0, rounds, 1, &sliced),
			 "keeping the best rounds");
	XGBoosterFree(b->handle);
	b->handle = sliced;
}

/* The number of boosting rounds of the model. */
int
XgbBoosterRounds(XgbBooster *b)
{
	int			n;

	XGB_CHECK(XGBoosterBoostedRounds(b->handle, &n), "counting rounds");
	return n;
}

/* The number of features the model was trained on. */
int
XgbBoosterNumFeatures(XgbBooster *b)
{
	bst_ulong	n;

	XGB_CHECK(XGBoosterGetNumFeature(b->handle, &n), "counting features");
	return (int) n;
}

/*
 * Predictions (transformed: values, probabilities) of the rows of a
 * matrix: nrow × nout floats into out.
 */
void
XgbBoosterPredict(XgbBooster *b, XgbMatrix *m, int64 nrow, int nout,
				  float *out)
{
	bst_ulong const *shape;
	bst_ulong	dim;
	const float *res;
	bst_ulong	total = 1;

	XGB_CHECK(XGBoosterPredictFromDMatrix(b->handle, m->handle,
										 "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, \"strict_shape\": true}",
										 &shape, &dim, &res),
			 "predicting the holdout");
	for (bst_ulong i = 0; i < dim; i++)
		total *= shape[i];
	if (total != (bst_ulong) (nrow * nout))
		elog(ERROR, "XGBoost returned %lu predictions, expected " INT64_FORMAT,
			 (unsigned long) total, nrow * nout);
	memcpy(out, res, sizeof(float) * nrow * nout);
}

/* The model's bytes, in "ubj" or "json" format, as a bytea. */
bytea *
XgbBoosterSave(XgbBooster *b, const char *format)
{
	bst_ulong	len;
	const char *buf;
	bytea	   *out;

	XGB_CHECK(XGBoosterSaveModelToBuffer(b->handle,
										psprintf("{\"format\": \"%s\"}", format),
										&len, &buf),
			 "saving the model");
	out = palloc(VARHDRSZ + len);
	SET_VARSIZE(out, VARHDRSZ + len);
	memcpy(VARDATA(out), buf, len);
	return out;
}

/*
 * Feature importance of one type (gain, weight, cover, total_gain,
 * total_cover) for the p features, 0 for a feature no split uses.
 */
void
XgbFeatureScore(XgbBooster *b, const char *type, int p, double *out)
{
	bst_ulong	nf;
	char const **names;
	bst_ulong	dim;
	bst_ulong const *shape;
	float const *scores;
	bst_ulong	per = 1;

	XGB_CHECK(XGBoosterFeatureScore(b->handle,
								   psprintf("{\"importance_type\": \"%s\"}", type),
								   &nf, &names, &dim, &shape, &scores),
			 "computing feature importance");
	for (int j = 0; j < p; j++)
		out[j] = 0.0;
	/* a multiclass model scores per class: sum them */
	for (bst_ulong i = 1; i < dim; i++)
		per *= shape[i];
	for (bst_ulong i = 0; i < nf; i++)
	{
		int			j;

		if (names[i][0] != 'f' || sscanf(names[i] + 1, "%d", &j) != 1 ||
			j < 0 || j >= p)
			continue;
		for (bst_ulong c = 0; c < per; c++)
			out[j] += scores[i * per + c];
	}
}

/*
 * The value of the booster's evaluation metric (the last one XGBoost
 * reports: the objective's default) on a matrix with labels, after round
 * iter.
 */
double
XgbBoosterEval(XgbBooster *b, int iter, XgbMatrix *m)
{
	const char *names[1] = {"holdout"};
	const char *out;
	const char *colon;

	XGB_CHECK(XGBoosterEvalOneIter(b->handle, iter, &m->handle, names, 1,
								  &out),
			 "evaluating the holdout");
	colon = strrchr(out, ':');
	if (colon == NULL)
		elog(ERROR, "unexpected evaluation result from XGBoost: \"%s\"", out);
	return strtod(colon + 1, NULL);
}
