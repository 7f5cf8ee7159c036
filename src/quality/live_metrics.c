/*
 * live_metrics.c
 *		The histograms behind streamml.live_metrics: label lags and scores.
 *
 * live_metrics is a view over additive sums (streamml.quality_buckets):
 * every metric is a ratio of sums, so a bucket row is updated by adding a
 * batch's sums (one INSERT ... ON CONFLICT DO UPDATE per batch) and the
 * view reads O(buckets) rows.  Two metrics are not ratios of sums, and
 * are read from histograms kept as bigint[] counts, added bin by bin:
 *
 *	label lag quantiles	 128 bins on a log scale: bin 0 holds lags below
 *						 1 ms, bin i (1..126) [2^((i-1)/4), 2^(i/4)) ms, bin
 *						 127 the rest (over 36 days).  A quantile is the
 *						 geometric middle of the bin holding its rank, so
 *						 it is within a factor 2^(1/8) (9.1%) of the exact
 *						 nearest-rank quantile (bin 0 reads 0, bin 127 its
 *						 lower edge).
 *	ROC AUC				 score histogram of the binary classifiers: 100
 *						 bins of width 0.01 of the positive class's
 *						 probability, for the negatives (bins 0..99) and
 *						 the positives (100..199).  AUC is the share of
 *						 (positive, negative) pairs ranked right, a pair
 *						 in the same bin counting one half; the exact AUC
 *						 (ties counting one half, as scikit-learn) differs
 *						 from it by at most half the share of pairs that
 *						 share a bin, which live_metrics shows beside it
 *						 (roc_auc_error_bound).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/int.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "quality/quality.h"

/*
 * The counts of a histogram argument, checked: none negative, and their
 * sum within bigint, so that no sum over them overflows; *n is set.
 */
static int64 *
HistogramData(ArrayType *a, int *n)
{
	int64	   *v;
	int64		total = 0;

	if (ARR_NDIM(a) > 1 || ARR_HASNULL(a) || ARR_ELEMTYPE(a) != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a histogram must be a one-dimensional bigint[] without NULLs")));
	*n = ARR_NDIM(a) == 0 ? 0 : ARR_DIMS(a)[0];
	v = (int64 *) ARR_DATA_PTR(a);
	for (int i = 0; i < *n; i++)
		if (v[i] < 0 || pg_add_s64_overflow(total, v[i], &total))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a histogram's counts must not be negative, nor sum beyond bigint")));
	return v;
}

/* A new histogram of n bins, all zero. */
static ArrayType *
HistogramNew(int n)
{
	Datum	   *zeros = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		zeros[i] = Int64GetDatum(0);
	return construct_array(zeros, n, INT8OID, sizeof(int64), true,
						   TYPALIGN_DOUBLE);
}

PG_FUNCTION_INFO_V1(histogram_add);

/*
 * SQL streamml.histogram_add(a, b): the bin-by-bin sum; NULL is the empty
 * histogram.  Adds into a in place when called as an aggregate's function.
 */
Datum
histogram_add(PG_FUNCTION_ARGS)
{
	ArrayType  *a;
	ArrayType  *b;
	int64	   *av;
	int64	   *bv;
	int			na;
	int			nb;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	if (PG_ARGISNULL(0))
	{
		/* an aggregate's executor copies a new state into its context */
		(void) HistogramData(PG_GETARG_ARRAYTYPE_P(1), &nb);
		PG_RETURN_DATUM(PG_GETARG_DATUM(1));
	}
	a = AggCheckCallContext(fcinfo, NULL) ? PG_GETARG_ARRAYTYPE_P(0)
		: PG_GETARG_ARRAYTYPE_P_COPY(0);
	b = PG_GETARG_ARRAYTYPE_P(1);
	av = HistogramData(a, &na);
	bv = HistogramData(b, &nb);
	if (na != nb)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("cannot add histograms of %d and %d bins", na, nb)));
	for (int i = 0; i < na; i++)
		if (pg_add_s64_overflow(av[i], bv[i], &av[i]))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("histogram count out of range")));
	PG_RETURN_ARRAYTYPE_P(a);
}

PG_FUNCTION_INFO_V1(histogram_count_transfn);

/* Transition function of streamml.histogram_count(bin, nbins). */
Datum
histogram_count_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext agg;
	ArrayType  *h;
	int64	   *v;
	int			n;
	int			bin;

	if (!AggCheckCallContext(fcinfo, &agg))
		elog(ERROR, "histogram_count_transfn called in non-aggregate context");
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	if (PG_ARGISNULL(0))
	{
		int			nbins = PG_GETARG_INT32(2);
		MemoryContext old;

		if (nbins < 1 || nbins > 100000)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a histogram has 1 to 100000 bins, not %d", nbins)));
		old = MemoryContextSwitchTo(agg);
		h = HistogramNew(nbins);
		MemoryContextSwitchTo(old);
	}
	else
		h = PG_GETARG_ARRAYTYPE_P(0);
	v = HistogramData(h, &n);
	bin = PG_GETARG_INT32(1);
	if (bin < 0 || bin >= n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("bin %d is outside a histogram of %d bins", bin, n)));
	v[bin]++;
	PG_RETURN_ARRAYTYPE_P(h);
}

/* The label lag bin of a lag in seconds (see the top of the file). */
int
LabelLagBin(double seconds)
{
	double		ms = seconds * 1000.0;
	double		b;

	if (isnan(ms) || ms < 1.0)
		return 0;
	b = floor(4.0 * log2(ms)) + 1.0;
	if (b >= LAG_BINS - 1)
		return LAG_BINS - 1;
	return (int) b;
}

PG_FUNCTION_INFO_V1(label_lag_bin);

/* SQL streamml.label_lag_bin(seconds float8) → int. */
Datum
label_lag_bin(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(LabelLagBin(PG_GETARG_FLOAT8(0)));
}

PG_FUNCTION_INFO_V1(label_lag_quantile);

/*
 * SQL streamml.label_lag_quantile(hist, q) → float8 seconds: the
 * nearest-rank q-quantile, as the geometric middle of its bin; NULL for
 * an empty histogram.
 */
Datum
label_lag_quantile(PG_FUNCTION_ARGS)
{
	int			n;
	int64	   *v = HistogramData(PG_GETARG_ARRAYTYPE_P(0), &n);
	double		q = PG_GETARG_FLOAT8(1);
	int64		total = 0;
	int64		rank;
	int64		seen = 0;

	if (!(q >= 0.0 && q <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quantile must be between 0 and 1")));
	for (int i = 0; i < n; i++)
		total += v[i];
	if (total == 0)
		PG_RETURN_NULL();
	rank = (int64) ceil(q * (double) total);
	if (rank < 1)
		rank = 1;
	for (int i = 0; i < n; i++)
	{
		seen += v[i];
		if (seen >= rank)
		{
			if (i == 0)
				PG_RETURN_FLOAT8(0.0);
			if (i == LAG_BINS - 1)
				PG_RETURN_FLOAT8(pow(2.0, (i - 1) / 4.0) / 1000.0);
			PG_RETURN_FLOAT8(pow(2.0, (i - 0.5) / 4.0) / 1000.0);
		}
	}
	PG_RETURN_NULL();
}

/* The bin of a probability in a score histogram (0..199). */
int
ScoreBin(double p, bool positive)
{
	int			b;

	if (isnan(p))
		p = 0.5;
	b = (int) floor(p * SCORE_BINS);
	if (b < 0)
		b = 0;
	if (b > SCORE_BINS - 1)
		b = SCORE_BINS - 1;
	return positive ? SCORE_BINS + b : b;
}

PG_FUNCTION_INFO_V1(score_bin);

/*
 * SQL streamml.score_bin(probability, positive) → int (0..199); errors for
 * a probability outside [0, 1].
 */
Datum
score_bin(PG_FUNCTION_ARGS)
{
	double		p = PG_GETARG_FLOAT8(0);

	if (!(p >= 0.0 && p <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("probability must be between 0 and 1, not %g", p)));
	PG_RETURN_INT32(ScoreBin(p, PG_GETARG_BOOL(1)));
}

/*
 * The share of (positive, negative) pairs ranked right by a score
 * histogram, same-bin pairs counting one half, and the share of pairs in
 * the same bin; false when a class is missing.
 */
static bool
ScoreHistogramAuc(ArrayType *h, double *auc, double *same)
{
	int			n;
	int64	   *v = HistogramData(h, &n);
	double		neg_below = 0;
	double		right = 0;
	double		tied = 0;
	double		npos = 0;
	double		nneg = 0;

	if (n != 2 * SCORE_BINS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a score histogram has %d bins, not %d", 2 * SCORE_BINS, n)));
	for (int b = 0; b < SCORE_BINS; b++)
	{
		double		neg = (double) v[b];
		double		pos = (double) v[SCORE_BINS + b];

		right += pos * neg_below;
		tied += pos * neg;
		neg_below += neg;
		npos += pos;
		nneg += neg;
	}
	if (npos == 0 || nneg == 0)
		return false;
	*auc = (right + 0.5 * tied) / (npos * nneg);
	*same = tied / (npos * nneg);
	return true;
}

PG_FUNCTION_INFO_V1(score_histogram_roc_auc);

/* SQL streamml.score_histogram_roc_auc(hist) → float8. */
Datum
score_histogram_roc_auc(PG_FUNCTION_ARGS)
{
	double		auc;
	double		same;

	if (!ScoreHistogramAuc(PG_GETARG_ARRAYTYPE_P(0), &auc, &same))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(auc);
}

PG_FUNCTION_INFO_V1(score_histogram_roc_auc_bound);

/* SQL streamml.score_histogram_roc_auc_bound(hist) → float8. */
Datum
score_histogram_roc_auc_bound(PG_FUNCTION_ARGS)
{
	double		auc;
	double		same;

	if (!ScoreHistogramAuc(PG_GETARG_ARRAYTYPE_P(0), &auc, &same))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(0.5 * same);
}
