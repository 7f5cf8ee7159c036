/*
 * moments.c
 *		The first pass of every training run: weighted means and co-moments of
 *		the label and the features, as a parallel aggregate.
 *
 * streamml.ml_moments(label, features, weight) accumulates, for the vector
 * v = (label, x1, ..., xp), the weighted mean and the co-moment matrix
 * Σ w (v - mean)(v - mean)ᵀ with West's weighted update of Welford's method;
 * partial states from parallel workers are merged with Chan's formula.  This
 * stays accurate for features whose mean dwarfs their spread (a column near
 * 1e9 varying by units), where sums of squares would cancel catastrophically.
 *
 * From this one pass the driver gets the standardisation (means and scales),
 * the exact least-squares solution of a linear model, and the first Newton
 * step of a logistic one.  Rows whose label, weight or any feature is NULL or
 * not finite are skipped and counted, by the same rule in every pass.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "ml/ml.h"
#include "ml/passes.h"

typedef struct MomentsState
{
	int			p;				/* number of features, -1 until known */
	int64		count;			/* rows used */
	int64		skipped;		/* rows skipped */
	double		w;				/* sum of weights */
	double	   *mean;			/* p + 1: label first */
	double	   *comom;			/* packed upper triangle of order p + 1 */
	double	   *delta;			/* scratch, p + 1 */
} MomentsState;

/*
 * Reads the label, feature and weight arguments of a pass aggregate.
 * Returns false when the row must be skipped; errors when the number of
 * features differs from expected (when expected >= 0).
 */
bool
PassReadRow(FunctionCallInfo fcinfo, int argno, int expected,
			double *y, double **x, int *p, double *w)
{
	ArrayType  *a;
	int			n;
	double	   *d;

	if (PG_ARGISNULL(argno) || PG_ARGISNULL(argno + 1))
		return false;
	*y = PG_GETARG_FLOAT8(argno);
	if (!isfinite(*y))
		return false;
	*w = 1.0;
	if (PG_NARGS() > argno + 2)
	{
		if (PG_ARGISNULL(argno + 2))
			return false;
		*w = PG_GETARG_FLOAT8(argno + 2);
		if (!isfinite(*w) || *w < 0.0)
			return false;
	}

	a = PG_GETARG_ARRAYTYPE_P(argno + 1);
	if (ARR_ELEMTYPE(a) != FLOAT8OID || ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("features must be a one-dimensional float8 array")));
	n = (ARR_NDIM(a) == 0) ? 0 : ARR_DIMS(a)[0];
	if (expected >= 0 && n != expected)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("feature array has %d elements, expected %d", n,
						expected)));
	if (ARR_HASNULL(a) && array_contains_nulls(a))
		return false;
	d = (double *) ARR_DATA_PTR(a);
	for (int i = 0; i < n; i++)
		if (!isfinite(d[i]))
			return false;
	*x = d;
	*p = n;
	return true;
}

/* Allocates the arrays of a moments state for p features. */
static void
MomentsAlloc(MomentsState *state, int p)
{
	state->p = p;
	state->mean = palloc0(sizeof(double) * (p + 1));
	state->comom = palloc0(sizeof(double) * PACKED_SIZE(p + 1));
	state->delta = palloc0(sizeof(double) * (p + 1));
}

/* Returns the aggregate's memory context or errors. */
MemoryContext
PassAggContext(FunctionCallInfo fcinfo, const char *name)
{
	MemoryContext aggcontext;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "%s called in non-aggregate context", name);
	return aggcontext;
}

PG_FUNCTION_INFO_V1(ml_moments_transfn);

/* Transition of streamml.ml_moments: adds one row. */
Datum
ml_moments_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = PassAggContext(fcinfo, "ml_moments_transfn");
	MomentsState *state;
	double		y;
	double		w;
	double	   *x;
	int			p;
	int			n1;
	double		wnew;
	double		f;
	double	   *delta;
	double	   *cm;

	if (PG_ARGISNULL(0))
	{
		state = MemoryContextAllocZero(aggcontext, sizeof(MomentsState));
		state->p = -1;
	}
	else
		state = (MomentsState *) PG_GETARG_POINTER(0);

	if (!PassReadRow(fcinfo, 1, state->p, &y, &x, &p, &w))
	{
		state->skipped++;
		PG_RETURN_POINTER(state);
	}
	if (state->p < 0)
	{
		MemoryContext old = MemoryContextSwitchTo(aggcontext);

		MomentsAlloc(state, p);
		MemoryContextSwitchTo(old);
	}
	state->count++;
	if (w == 0.0)
		PG_RETURN_POINTER(state);

	n1 = p + 1;
	wnew = state->w + w;
	delta = state->delta;
	delta[0] = y - state->mean[0];
	for (int i = 0; i < p; i++)
		delta[i + 1] = x[i] - state->mean[i + 1];
	for (int i = 0; i < n1; i++)
		state->mean[i] += delta[i] * (w / wnew);
	f = w * state->w / wnew;
	cm = state->comom;
	for (int i = 0; i < n1; i++)
	{
		double		a = f * delta[i];

		for (int j = i; j < n1; j++)
			*cm++ += a * delta[j];
	}
	state->w = wnew;
	PG_RETURN_POINTER(state);
}

/* Merges state b into state a (Chan et al.); a may have no rows yet. */
static void
MomentsMerge(MomentsState *a, MomentsState *b)
{
	int			n1;
	double		w;
	double	   *delta;
	double		f;
	double	   *cm;

	a->count += b->count;
	a->skipped += b->skipped;
	if (b->p < 0)
		return;
	if (a->p < 0)
		MomentsAlloc(a, b->p);
	else if (a->p != b->p)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("feature array has %d elements, expected %d", b->p,
						a->p)));
	if (b->w == 0.0)
		return;
	n1 = a->p + 1;
	w = a->w + b->w;
	delta = a->delta;
	for (int i = 0; i < n1; i++)
		delta[i] = b->mean[i] - a->mean[i];
	for (int i = 0; i < n1; i++)
		a->mean[i] += delta[i] * (b->w / w);
	f = a->w * b->w / w;
	cm = a->comom;
	for (int i = 0; i < n1; i++)
		for (int j = i; j < n1; j++)
			*cm++ += b->comom[PACKED_INDEX(n1, i, j)] + f * delta[i] * delta[j];
	a->w = w;
}

PG_FUNCTION_INFO_V1(ml_moments_combinefn);

/* Combine function of streamml.ml_moments. */
Datum
ml_moments_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = PassAggContext(fcinfo, "ml_moments_combinefn");
	MemoryContext old;
	MomentsState *a;

	if (PG_ARGISNULL(1))
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	old = MemoryContextSwitchTo(aggcontext);
	if (PG_ARGISNULL(0))
	{
		a = palloc0(sizeof(MomentsState));
		a->p = -1;
	}
	else
		a = (MomentsState *) PG_GETARG_POINTER(0);
	MomentsMerge(a, (MomentsState *) PG_GETARG_POINTER(1));
	MemoryContextSwitchTo(old);
	PG_RETURN_POINTER(a);
}

PG_FUNCTION_INFO_V1(ml_moments_serialfn);

/* Serialises a moments state for a parallel worker. */
Datum
ml_moments_serialfn(PG_FUNCTION_ARGS)
{
	MomentsState *state = (MomentsState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint32(&buf, state->p);
	pq_sendint64(&buf, state->count);
	pq_sendint64(&buf, state->skipped);
	pq_sendfloat8(&buf, state->w);
	if (state->p >= 0)
	{
		pq_sendbytes(&buf, (char *) state->mean, sizeof(double) * (state->p + 1));
		pq_sendbytes(&buf, (char *) state->comom,
					 sizeof(double) * PACKED_SIZE(state->p + 1));
	}
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(ml_moments_deserialfn);

/* Deserialises a moments state. */
Datum
ml_moments_deserialfn(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	MomentsState *state = palloc0(sizeof(MomentsState));
	StringInfoData buf;

	PassAggContext(fcinfo, "ml_moments_deserialfn");
	PassReadBuffer(&buf, b);
	state->p = pq_getmsgint(&buf, 4);
	state->count = pq_getmsgint64(&buf);
	state->skipped = pq_getmsgint64(&buf);
	state->w = pq_getmsgfloat8(&buf);
	if (state->p >= 0)
	{
		MomentsAlloc(state, state->p);
		pq_copymsgbytes(&buf, (char *) state->mean,
						sizeof(double) * (state->p + 1));
		pq_copymsgbytes(&buf, (char *) state->comom,
						sizeof(double) * PACKED_SIZE(state->p + 1));
	}
	PG_RETURN_POINTER(state);
}

PG_FUNCTION_INFO_V1(ml_moments_finalfn);

/*
 * Final function of streamml.ml_moments: a float8[] laid out as
 * [sum of weights, rows used, rows skipped, p, means (label first, p+1),
 * co-moments (packed upper triangle of order p+1)].
 */
Datum
ml_moments_finalfn(PG_FUNCTION_ARGS)
{
	MomentsState *state;
	int			p;
	int			len;
	double	   *out;
	ArrayType  *result;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	state = (MomentsState *) PG_GETARG_POINTER(0);
	p = state->p;
	len = 4 + (p >= 0 ? (p + 1) + PACKED_SIZE(p + 1) : 0);
	out = palloc(sizeof(double) * len);
	out[0] = state->w;
	out[1] = (double) state->count;
	out[2] = (double) state->skipped;
	out[3] = p;
	if (p >= 0)
	{
		memcpy(out + 4, state->mean, sizeof(double) * (p + 1));
		memcpy(out + 5 + p, state->comom, sizeof(double) * PACKED_SIZE(p + 1));
	}
	result = Float8ArrayBuild(out, len);
	PG_RETURN_ARRAYTYPE_P(result);
}
