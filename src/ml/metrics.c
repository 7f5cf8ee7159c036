/*
 * metrics.c
 *		Evaluation aggregates: streamml.classification_metrics,
 *		streamml.multiclass_metrics and streamml.regression_metrics.
 *
 * They are ordinary parallel-safe aggregates that users call in SQL on any
 * (label, prediction) pairs, and that training and streamml.evaluate use on
 * the holdout.  Accuracy, precision, recall, F1, log-loss and the confusion
 * matrix are sums; the areas under the ROC and precision-recall curves are
 * exact, so the state keeps every (score, label) pair and the final function
 * sorts them once (16 bytes a row: 16 MB for a million rows, and as much
 * again while sorting), checking for interrupts as it goes.
 *
 * regression_metrics keeps its sums in units of a power of two that follows
 * the largest magnitude seen (passes.h), so that squared errors of values
 * near 1e200 do not overflow nor those near 1e-200 underflow.  A row whose
 * actual or prediction is NaN or infinite is left out like a NULL one
 * ("rows" counts the others); finite ones whose error is beyond float8's
 * range are an error, as their subtraction in SQL is (22003), never a
 * smaller RMSE.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "ml/ml.h"
#include "ml/passes.h"

/* Appends "key": number (null when not finite) to a JSON object. */
void
JsonAppendNumber(StringInfo buf, const char *key, double v)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	if (isfinite(v))
		appendStringInfo(buf, "\"%s\": %.15g", key, v);
	else
		appendStringInfo(buf, "\"%s\": null", key);
}

/* Converts JSON text to a jsonb Datum. */
static Datum
JsonbFromText(const char *s)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(s));
}

typedef struct ScoredRow
{
	double		score;
	double		label;
} ScoredRow;

typedef struct ClassState
{
	int64		n;
	int64		cap;
	ScoredRow  *rows;
	double		loss;
	double		confusion[4];	/* tp, fp, tn, fn at 0.5 */
} ClassState;

/* Makes room for more rows in a classification state. */
static void
ClassReserve(ClassState *s, int64 more, MemoryContext cxt)
{
	if (s->n + more <= s->cap)
		return;
	s->cap = Max(s->cap * 2, Max(s->n + more, 1024));
	if (s->rows == NULL)
		s->rows = MemoryContextAllocHuge(cxt, sizeof(ScoredRow) * s->cap);
	else
		s->rows = repalloc_huge(s->rows, sizeof(ScoredRow) * s->cap);
}

/* Adds one (label, probability) pair. */
static void
ClassAdd(ClassState *s, bool label, double prob)
{
	double		y = label ? 1.0 : 0.0;
	double		pc = Min(Max(prob, 1e-15), 1.0 - 1e-15);

	s->rows[s->n].score = prob;
	s->rows[s->n].label = y;
	s->n++;
	s->loss -= label ? log(pc) : log1p(-pc);
	if (prob >= 0.5)
		s->confusion[label ? 0 : 1] += 1.0;
	else
		s->confusion[label ? 3 : 2] += 1.0;
}

PG_FUNCTION_INFO_V1(classification_metrics_transfn);

/* Transition of streamml.classification_metrics(label, probability). */
Datum
classification_metrics_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = PassAggContext(fcinfo, "classification_metrics_transfn");
	ClassState *s;
	double		prob;

	if (PG_ARGISNULL(0))
		s = MemoryContextAllocZero(cxt, sizeof(ClassState));
	else
		s = (ClassState *) PG_GETARG_POINTER(0);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_POINTER(s);
	prob = PG_GETARG_FLOAT8(2);
	if (isnan(prob) || prob < 0.0 || prob > 1.0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("probability %g is not between 0 and 1", prob)));
	ClassReserve(s, 1, cxt);
	ClassAdd(s, PG_GETARG_BOOL(1), prob);
	PG_RETURN_POINTER(s);
}

PG_FUNCTION_INFO_V1(classification_metrics_combinefn);

/* Combine function of streamml.classification_metrics. */
Datum
classification_metrics_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = PassAggContext(fcinfo, "classification_metrics_combinefn");
	ClassState *a;
	ClassState *b;

	if (PG_ARGISNULL(1))
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	b = (ClassState *) PG_GETARG_POINTER(1);
	if (PG_ARGISNULL(0))
		a = MemoryContextAllocZero(cxt, sizeof(ClassState));
	else
		a = (ClassState *) PG_GETARG_POINTER(0);
	ClassReserve(a, b->n, cxt);
	if (b->n > 0)
		memcpy(a->rows + a->n, b->rows, sizeof(ScoredRow) * b->n);
	a->n += b->n;
	a->loss += b->loss;
	for (int i = 0; i < 4; i++)
		a->confusion[i] += b->confusion[i];
	PG_RETURN_POINTER(a);
}

PG_FUNCTION_INFO_V1(classification_metrics_serialfn);

/* Serialises a classification state. */
Datum
classification_metrics_serialfn(PG_FUNCTION_ARGS)
{
	ClassState *s = (ClassState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint64(&buf, s->n);
	pq_sendfloat8(&buf, s->loss);
	pq_sendbytes(&buf, (char *) s->confusion, sizeof(s->confusion));
	if (s->n > 0)
		pq_sendbytes(&buf, (char *) s->rows, sizeof(ScoredRow) * s->n);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(classification_metrics_deserialfn);

/*
 * Deserialises a classification state, checking every field (passes.h):
 * the number of rows against the length before anything is allocated, and
 * every row (a score between 0 and 1, a label 0 or 1, which the sort and
 * the areas under the curves rely on) against the confusion matrix.
 */
Datum
classification_metrics_deserialfn(PG_FUNCTION_ARGS)
{
	const char *agg = "streamml.classification_metrics";
	MemoryContext cxt = PassAggContext(fcinfo, "classification_metrics_deserialfn");
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	ClassState *s;
	StringInfoData buf;
	int64		n;
	double		confusion[4] = {0};

	PassReadBuffer(&buf, b);
	PassStateCheckHeader(agg, &buf, 8 + 8 + 4 * 8);
	n = pq_getmsgint64(&buf);
	PASS_STATE_CHECK(n >= 0 && n <= (buf.len - buf.cursor) / (int64) sizeof(ScoredRow),
					 agg, "It counts " INT64_FORMAT " rows in %d bytes.", n, buf.len);
	PassStateCheckLength(agg, &buf, sizeof(double) * 5 +
						 (uint64) n * sizeof(ScoredRow));
	s = MemoryContextAllocZero(cxt, sizeof(ClassState));
	s->loss = pq_getmsgfloat8(&buf);
	pq_copymsgbytes(&buf, (char *) s->confusion, sizeof(s->confusion));
	ClassReserve(s, n, cxt);
	if (n > 0)
		pq_copymsgbytes(&buf, (char *) s->rows, sizeof(ScoredRow) * n);
	s->n = n;
	PASS_STATE_CHECK(isfinite(s->loss) && s->loss >= 0.0, agg,
					 "Its log-loss is %g.", s->loss);
	for (int64 i = 0; i < n; i++)
	{
		double		score = s->rows[i].score;
		double		label = s->rows[i].label;

		PASS_STATE_CHECK(score >= 0.0 && score <= 1.0 &&
						 (label == 0.0 || label == 1.0), agg,
						 "Its row " INT64_FORMAT " has score %g and label %g.",
						 i + 1, score, label);
		/* tp, fp, tn, fn at 0.5, as ClassAdd counts them */
		confusion[score >= 0.5 ? (label == 1.0 ? 0 : 1) : (label == 1.0 ? 3 : 2)] += 1.0;
	}
	for (int i = 0; i < 4; i++)
		PASS_STATE_CHECK(s->confusion[i] == confusion[i], agg,
						 "Its confusion matrix does not count its rows.");
	PG_RETURN_POINTER(s);
}

/*
 * The sort key of a score: unsigned 64-bit integers in the order of the
 * scores, decreasing.  The bits of a double order as an integer's once the
 * sign bit of a non-negative value is set and every bit of a negative one
 * is flipped; the result is flipped again for the decreasing order.  NaN
 * never gets here (the transition refuses it); -0 and +0 end adjacent, and
 * the AUC's loop takes them as one threshold, as ScoredRowCompare does.
 */
static inline uint64
ScoreKey(double score)
{
	uint64		u;

	memcpy(&u, &score, sizeof(u));
	if (u & UINT64CONST(0x8000000000000000))
		u = ~u;
	else
		u |= UINT64CONST(0x8000000000000000);
	return ~u;
}

/* Orders scored rows by decreasing score. */
static int
ScoredRowCompare(const void *a, const void *b)
{
	double		x = ((const ScoredRow *) a)->score;
	double		y = ((const ScoredRow *) b)->score;

	return (x < y) ? 1 : (x > y) ? -1 : 0;
}

/* Fewer rows than this are sorted by qsort, without the radix's tables. */
#define SORT_RADIX_MIN 4096

/* Bits of the key sorted per pass of ScoredRowSort. */
#define SORT_DIGIT_BITS 11
#define SORT_DIGITS ((64 + SORT_DIGIT_BITS - 1) / SORT_DIGIT_BITS)
#define SORT_BUCKETS (1 << SORT_DIGIT_BITS)

/* Interrupts are checked every this many rows of a pass. */
#define SORT_CHECK_ROWS 65536

/*
 * Sorts scored rows by decreasing score, interruptibly: a least significant
 * digit radix sort of ScoreKey, SORT_DIGIT_BITS bits a pass, skipping the
 * passes whose digit is the same in every row (the high bits of
 * probabilities mostly are), with an interrupt check every SORT_CHECK_ROWS
 * rows.  Linear in n (a qsort of 200,000 rows took about 30 ms, this
 * takes a few); ties may end in any order.  Fewer than SORT_RADIX_MIN rows
 * (a qsort of them is quick) are sorted by qsort.
 */
static void
ScoredRowSort(ScoredRow *rows, int64 n, MemoryContext cxt)
{
	int64	   *count;
	ScoredRow  *src = rows;
	ScoredRow  *dst;

	if (n < SORT_RADIX_MIN)
	{
		qsort(rows, n, sizeof(ScoredRow), ScoredRowCompare);
		return;
	}
	count = MemoryContextAllocZero(cxt, sizeof(int64) * SORT_DIGITS * SORT_BUCKETS);
	for (int64 i = 0; i < n; i++)
	{
		uint64		key = ScoreKey(rows[i].score);

		if ((i & (SORT_CHECK_ROWS - 1)) == 0)
			CHECK_FOR_INTERRUPTS();
		for (int d = 0; d < SORT_DIGITS; d++)
			count[d * SORT_BUCKETS + ((key >> (d * SORT_DIGIT_BITS)) & (SORT_BUCKETS - 1))]++;
	}
	dst = MemoryContextAllocHuge(cxt, sizeof(ScoredRow) * n);
	for (int d = 0; d < SORT_DIGITS; d++)
	{
		int64	   *c = count + d * SORT_BUCKETS;
		int64		at = 0;
		bool		one = false;
		ScoredRow  *t;

		/* one digit value for every row: this pass would keep the order */
		for (int b = 0; b < SORT_BUCKETS; b++)
			if (c[b] == n)
				one = true;
		if (one)
			continue;
		for (int b = 0; b < SORT_BUCKETS; b++)
		{
			int64		k = c[b];

			c[b] = at;
			at += k;
		}
		for (int64 i = 0; i < n; i++)
		{
			uint64		key = ScoreKey(src[i].score);

			if ((i & (SORT_CHECK_ROWS - 1)) == 0)
				CHECK_FOR_INTERRUPTS();
			dst[c[(key >> (d * SORT_DIGIT_BITS)) & (SORT_BUCKETS - 1)]++] = src[i];
		}
		t = src;
		src = dst;
		dst = t;
	}
	if (src != rows)
	{
		memcpy(rows, src, sizeof(ScoredRow) * n);
		pfree(src);
	}
	else
		pfree(dst);
	pfree(count);
}

/*
 * The metrics of a non-empty classification state as JSON text.  ROC AUC
 * by the trapezoidal rule over distinct thresholds (ties count half); PR
 * AUC as average precision, Σ (R_k - R_k-1) P_k.
 */
static char *
ClassMetricsText(ClassState *s)
{
	StringInfoData b;
	double		tp;
	double		fp;
	double		tn;
	double		fn;
	double		pos;
	double		neg;
	double		prec;
	double		rec;
	double		auc = 0.0;
	double		ap = 0.0;

	tp = s->confusion[0];
	fp = s->confusion[1];
	tn = s->confusion[2];
	fn = s->confusion[3];
	pos = tp + fn;
	neg = fp + tn;

	ScoredRowSort(s->rows, s->n, CurrentMemoryContext);
	{
		double		ctp = 0.0;
		double		cfp = 0.0;

		for (int64 i = 0; i < s->n;)
		{
			double		ptp = ctp;
			double		pfp = cfp;
			int64		j = i;

			while (j < s->n && s->rows[j].score == s->rows[i].score)
			{
				ctp += s->rows[j].label;
				cfp += 1.0 - s->rows[j].label;
				j++;
			}
			auc += (cfp - pfp) * (ctp + ptp) / 2.0;
			if (pos > 0)
				ap += (ctp - ptp) / pos * (ctp / (ctp + cfp));
			i = j;
		}
	}

	prec = (tp + fp) > 0 ? tp / (tp + fp) : 0.0;
	rec = pos > 0 ? tp / pos : 0.0;
	initStringInfo(&b);
	appendStringInfoChar(&b, '{');
	JsonAppendNumber(&b, "rows", (double) s->n);
	JsonAppendNumber(&b, "accuracy", (tp + tn) / s->n);
	JsonAppendNumber(&b, "precision", prec);
	JsonAppendNumber(&b, "recall", rec);
	JsonAppendNumber(&b, "f1", (prec + rec) > 0 ? 2 * prec * rec / (prec + rec) : 0.0);
	JsonAppendNumber(&b, "roc_auc", (pos > 0 && neg > 0) ? auc / (pos * neg) : NAN);
	JsonAppendNumber(&b, "pr_auc", pos > 0 ? ap : NAN);
	JsonAppendNumber(&b, "log_loss", s->loss / s->n);
	appendStringInfo(&b, ", \"confusion_matrix\": {\"tp\": %.0f, \"fp\": %.0f, \"tn\": %.0f, \"fn\": %.0f}}",
					 tp, fp, tn, fn);
	return b.data;
}

PG_FUNCTION_INFO_V1(classification_metrics_finalfn);

/* Final function of streamml.classification_metrics: the metrics as jsonb. */
Datum
classification_metrics_finalfn(PG_FUNCTION_ARGS)
{
	ClassState *s;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (ClassState *) PG_GETARG_POINTER(0);
	if (s->n == 0)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(JsonbFromText(ClassMetricsText(s)));
}

/*
 * streamml.classification_metrics over n (label, probability) pairs held
 * in memory, as JSON text, without the query: the training of a model
 * that holds its holdout rows (tree.c) scores them with it.  Labels are
 * 0 or 1 (as label::int::boolean); NULL when n is 0.
 */
char *
ClassificationMetricsText(const float *label, const double *prob, int64 n)
{
	ClassState	s;
	char	   *text;

	if (n == 0)
		return NULL;
	memset(&s, 0, sizeof(s));
	ClassReserve(&s, n, CurrentMemoryContext);
	for (int64 i = 0; i < n; i++)
	{
		if (isnan(prob[i]) || prob[i] < 0.0 || prob[i] > 1.0)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("probability %g is not between 0 and 1", prob[i])));
		ClassAdd(&s, rint(label[i]) != 0.0, prob[i]);
	}
	text = ClassMetricsText(&s);
	pfree(s.rows);
	return text;
}

/*
 * State of streamml.regression_metrics: sums in the unit 2^e, e following
 * the largest magnitude of an actual value or an error.
 */
typedef struct RegState
{
	double		n;
	double		abs_err;
	double		sq_err;
	double		mean;			/* of the actual values */
	double		m2;
	int32		e;
} RegState;

/* Allocates a regression state in its smallest unit. */
static RegState *
RegAlloc(MemoryContext cxt)
{
	RegState   *s = MemoryContextAllocZero(cxt, sizeof(RegState));

	s->e = PASS_EXP_MIN;
	return s;
}

/* Moves a regression state to the larger unit 2^e, exactly. */
static void
RegRescale(RegState *s, int e)
{
	double		f = ldexp(1.0, s->e - e);

	s->e = e;
	s->abs_err *= f;
	s->mean *= f;
	s->sq_err *= f * f;
	s->m2 *= f * f;
}

PG_FUNCTION_INFO_V1(regression_metrics_transfn);

/* Transition of streamml.regression_metrics(actual, predicted). */
Datum
regression_metrics_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = PassAggContext(fcinfo, "regression_metrics_transfn");
	RegState   *s;
	double		y;
	double		p;
	double		e;
	double		d;

	int			ex;
	double		unit;

	if (PG_ARGISNULL(0))
		s = RegAlloc(cxt);
	else
		s = (RegState *) PG_GETARG_POINTER(0);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_POINTER(s);
	y = PG_GETARG_FLOAT8(1);
	p = PG_GETARG_FLOAT8(2);
	/* a NaN or infinite value has no error to add: left out, as NULL is */
	if (!isfinite(y) || !isfinite(p))
		PG_RETURN_POINTER(s);
	e = y - p;
	/* finite values whose error float8 cannot hold: its subtraction's error */
	if (!isfinite(e))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value out of range: overflow"),
				 errdetail("The error of prediction %g for actual %g is beyond float8's range.",
						   p, y)));
	ex = PassExponent(Max(fabs(y), fabs(e)));
	if (ex > s->e)
		RegRescale(s, ex);
	unit = ldexp(1.0, -s->e);
	y *= unit;
	e *= unit;
	s->n += 1.0;
	s->abs_err += fabs(e);
	s->sq_err += e * e;
	d = y - s->mean;
	s->mean += d / s->n;
	s->m2 += d * (y - s->mean);
	PG_RETURN_POINTER(s);
}

PG_FUNCTION_INFO_V1(regression_metrics_combinefn);

/* Combine function of streamml.regression_metrics (Chan's formula). */
Datum
regression_metrics_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = PassAggContext(fcinfo, "regression_metrics_combinefn");
	RegState   *a;
	RegState   *b;
	double		n;
	double		d;

	if (PG_ARGISNULL(1))
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	b = (RegState *) PG_GETARG_POINTER(1);
	if (PG_ARGISNULL(0))
		a = RegAlloc(cxt);
	else
		a = (RegState *) PG_GETARG_POINTER(0);
	if (b->n == 0)
		PG_RETURN_POINTER(a);
	if (b->e > a->e)
		RegRescale(a, b->e);
	else if (a->e > b->e)
		RegRescale(b, a->e);
	n = a->n + b->n;
	d = b->mean - a->mean;
	a->m2 += b->m2 + d * d * a->n * b->n / n;
	a->mean += d * b->n / n;
	a->n = n;
	a->abs_err += b->abs_err;
	a->sq_err += b->sq_err;
	PG_RETURN_POINTER(a);
}

PG_FUNCTION_INFO_V1(regression_metrics_serialfn);

/* Serialises a regression state. */
Datum
regression_metrics_serialfn(PG_FUNCTION_ARGS)
{
	RegState   *s = (RegState *) PG_GETARG_POINTER(0);
	bytea	   *b = palloc(VARHDRSZ + sizeof(RegState));

	SET_VARSIZE(b, VARHDRSZ + sizeof(RegState));
	memcpy(VARDATA(b), s, sizeof(RegState));
	PG_RETURN_BYTEA_P(b);
}

PG_FUNCTION_INFO_V1(regression_metrics_deserialfn);

/* Deserialises a regression state, checking every field (passes.h). */
Datum
regression_metrics_deserialfn(PG_FUNCTION_ARGS)
{
	const char *agg = "streamml.regression_metrics";
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	RegState   *s;

	PassAggContext(fcinfo, "regression_metrics_deserialfn");
	PASS_STATE_CHECK(VARSIZE_ANY_EXHDR(b) == sizeof(RegState), agg,
					 "The state has %d bytes instead of %d.",
					 (int) VARSIZE_ANY_EXHDR(b), (int) sizeof(RegState));
	s = palloc(sizeof(RegState));
	memcpy(s, VARDATA_ANY(b), sizeof(RegState));
	PASS_STATE_CHECK(s->n >= 0.0 && s->n <= 9007199254740992.0 && s->n == rint(s->n),
					 agg, "It counts %g rows.", s->n);
	PASS_STATE_CHECK(s->e >= PASS_EXP_MIN && s->e <= PASS_EXP_MAX, agg,
					 "Its unit is 2^%d.", s->e);
	PASS_STATE_CHECK(isfinite(s->mean), agg, "Its mean is %g.", s->mean);
	PASS_STATE_CHECK(isfinite(s->abs_err) && s->abs_err >= 0.0 &&
					 isfinite(s->sq_err) && s->sq_err >= 0.0, agg,
					 "Its sums of errors are %g and %g.", s->abs_err, s->sq_err);
	PASS_STATE_CHECK(isfinite(s->m2) && s->m2 >= 0.0, agg,
					 "Its sum of squared deviations is %g.", s->m2);
	PG_RETURN_POINTER(s);
}

PG_FUNCTION_INFO_V1(regression_metrics_finalfn);

/* Final function of streamml.regression_metrics: rmse, mae, r2 as jsonb. */
Datum
regression_metrics_finalfn(PG_FUNCTION_ARGS)
{
	RegState   *s;
	StringInfoData b;
	double		unit;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (RegState *) PG_GETARG_POINTER(0);
	if (s->n == 0)
		PG_RETURN_NULL();
	initStringInfo(&b);
	appendStringInfoChar(&b, '{');
	unit = ldexp(1.0, s->e);
	JsonAppendNumber(&b, "rows", s->n);
	JsonAppendNumber(&b, "rmse", sqrt(s->sq_err / s->n) * unit);
	JsonAppendNumber(&b, "mae", s->abs_err / s->n * unit);
	JsonAppendNumber(&b, "r2", s->m2 > 0 ? 1.0 - s->sq_err / s->m2 : NAN);
	appendStringInfoChar(&b, '}');
	PG_RETURN_DATUM(JsonbFromText(b.data));
}

/*
 * The most classes of streamml.multiclass_metrics, as of a model
 * (train_source.c): a state of k classes holds k² counts.
 */
#define MULTICLASS_MAX_CLASSES 1000

/* State of streamml.multiclass_metrics: counts, loss, confusion matrix. */
typedef struct MultiState
{
	int32		k;
	double		n;
	double		correct;
	double		loss;
	double		confusion[FLEXIBLE_ARRAY_MEMBER];	/* k × k, actual-major */
} MultiState;

/* Allocates a multiclass state for k classes. */
static MultiState *
MultiAlloc(MemoryContext cxt, int k)
{
	MultiState *s = MemoryContextAllocZero(cxt, offsetof(MultiState, confusion) +
										   sizeof(double) * k * k);

	s->k = k;
	return s;
}

PG_FUNCTION_INFO_V1(multiclass_metrics_transfn);

/* Transition of streamml.multiclass_metrics(class index, probabilities). */
Datum
multiclass_metrics_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = PassAggContext(fcinfo, "multiclass_metrics_transfn");
	MultiState *s = PG_ARGISNULL(0) ? NULL : (MultiState *) PG_GETARG_POINTER(0);
	int			y;
	int			k;
	double	   *pr;
	int			best = 0;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_POINTER(s);
	y = PG_GETARG_INT32(1);
	pr = Float8ArrayData(PG_GETARG_ARRAYTYPE_P(2), &k, "probabilities");
	if (s == NULL)
	{
		if (k > MULTICLASS_MAX_CLASSES)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("multiclass_metrics takes at most %d classes, not %d",
							MULTICLASS_MAX_CLASSES, k)));
		s = MultiAlloc(cxt, k);
	}
	if (k != s->k || y < 0 || y >= k)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("class %d and %d probabilities do not match %d classes",
						y, k, s->k)));
	/* as classification_metrics: a NaN never won the argmax, nor lost it */
	for (int c = 0; c < k; c++)
	{
		if (isnan(pr[c]) || pr[c] < 0.0 || pr[c] > 1.0)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("probability %g is not between 0 and 1", pr[c]),
					 errdetail("It is the probability of class %d.", c)));
		if (pr[c] > pr[best])
			best = c;
	}
	s->n += 1.0;
	s->correct += (best == y);
	s->loss -= log(Min(Max(pr[y], 1e-15), 1.0));
	s->confusion[y * k + best] += 1.0;
	PG_RETURN_POINTER(s);
}

PG_FUNCTION_INFO_V1(multiclass_metrics_combinefn);

/* Combine function of streamml.multiclass_metrics. */
Datum
multiclass_metrics_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = PassAggContext(fcinfo, "multiclass_metrics_combinefn");
	MultiState *a = PG_ARGISNULL(0) ? NULL : (MultiState *) PG_GETARG_POINTER(0);
	MultiState *b = PG_ARGISNULL(1) ? NULL : (MultiState *) PG_GETARG_POINTER(1);

	if (b == NULL)
		PG_RETURN_POINTER(a);
	if (a == NULL)
		a = MultiAlloc(cxt, b->k);
	if (a->k != b->k)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot combine metrics of %d and %d classes", a->k, b->k)));
	a->n += b->n;
	a->correct += b->correct;
	a->loss += b->loss;
	for (int i = 0; i < a->k * a->k; i++)
		a->confusion[i] += b->confusion[i];
	PG_RETURN_POINTER(a);
}

PG_FUNCTION_INFO_V1(multiclass_metrics_serialfn);

/* Serialises a multiclass state. */
Datum
multiclass_metrics_serialfn(PG_FUNCTION_ARGS)
{
	MultiState *s = (MultiState *) PG_GETARG_POINTER(0);
	Size		size = offsetof(MultiState, confusion) + sizeof(double) * s->k * s->k;
	bytea	   *b = palloc(VARHDRSZ + size);

	SET_VARSIZE(b, VARHDRSZ + size);
	memcpy(VARDATA(b), s, size);
	PG_RETURN_BYTEA_P(b);
}

PG_FUNCTION_INFO_V1(multiclass_metrics_deserialfn);

/*
 * Deserialises a multiclass state, checking every field (passes.h): the
 * number of classes against the length, the counts against each other.
 */
Datum
multiclass_metrics_deserialfn(PG_FUNCTION_ARGS)
{
	const char *agg = "streamml.multiclass_metrics";
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	MultiState *s;
	int32		k;
	double		total = 0.0;

	PassAggContext(fcinfo, "multiclass_metrics_deserialfn");
	PASS_STATE_CHECK(VARSIZE_ANY_EXHDR(b) >= offsetof(MultiState, confusion), agg,
					 "The state has %d bytes, fewer than its header of %d.",
					 (int) VARSIZE_ANY_EXHDR(b), (int) offsetof(MultiState, confusion));
	memcpy(&k, VARDATA_ANY(b), sizeof(int32));
	PASS_STATE_CHECK(k >= 1 && k <= MULTICLASS_MAX_CLASSES, agg,
					 "It has %d classes.", k);
	PASS_STATE_CHECK(VARSIZE_ANY_EXHDR(b) ==
					 offsetof(MultiState, confusion) + sizeof(double) * k * k, agg,
					 "The state has %d bytes where its header calls for %d.",
					 (int) VARSIZE_ANY_EXHDR(b),
					 (int) (offsetof(MultiState, confusion) + sizeof(double) * k * k));
	s = palloc(VARSIZE_ANY_EXHDR(b));
	memcpy(s, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
	PASS_STATE_CHECK(s->n >= 0.0 && s->n <= 9007199254740992.0 && s->n == rint(s->n),
					 agg, "It counts %g rows.", s->n);
	PASS_STATE_CHECK(s->correct >= 0.0 && s->correct <= s->n, agg,
					 "It counts %g rows right of %g.", s->correct, s->n);
	PASS_STATE_CHECK(isfinite(s->loss) && s->loss >= 0.0, agg,
					 "Its log-loss is %g.", s->loss);
	PassStateCheckFinite(agg, "confusion counts", s->confusion, (int64) k * k, true);
	for (int i = 0; i < k * k; i++)
		total += s->confusion[i];
	PASS_STATE_CHECK(total == s->n, agg,
					 "Its confusion matrix counts %g rows of %g.", total, s->n);
	PG_RETURN_POINTER(s);
}

PG_FUNCTION_INFO_V1(multiclass_metrics_finalfn);

/* Final function of streamml.multiclass_metrics: jsonb. */
Datum
multiclass_metrics_finalfn(PG_FUNCTION_ARGS)
{
	MultiState *s;
	StringInfoData b;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = (MultiState *) PG_GETARG_POINTER(0);
	if (s->n == 0)
		PG_RETURN_NULL();
	initStringInfo(&b);
	appendStringInfoChar(&b, '{');
	JsonAppendNumber(&b, "rows", s->n);
	JsonAppendNumber(&b, "accuracy", s->correct / s->n);
	JsonAppendNumber(&b, "log_loss", s->loss / s->n);
	appendStringInfoString(&b, ", \"confusion_matrix\": [");
	for (int i = 0; i < s->k; i++)
	{
		appendStringInfo(&b, "%s[", i > 0 ? ", " : "");
		for (int j = 0; j < s->k; j++)
			appendStringInfo(&b, "%s%.0f", j > 0 ? ", " : "", s->confusion[i * s->k + j]);
		appendStringInfoChar(&b, ']');
	}
	appendStringInfoString(&b, "]}");
	PG_RETURN_DATUM(JsonbFromText(b.data));
}
