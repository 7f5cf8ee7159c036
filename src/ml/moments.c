/*
 * moments.c
 *		The first pass of every training run: weighted means and co-moments of
 *		the label and the features, as a parallel aggregate.
 *
 * streamml.ml_moments(label, features, weight) accumulates, for the vector
 * v = (label, x1, ..., xp), the weighted mean and the co-moment matrix
 * Σ w (v - mean)(v - mean)ᵀ.  Rows are buffered in blocks of PASS_BLOCK;
 * each block's mean and co-moments are computed centred on the block's own
 * mean and merged into the state with Chan's formula, as are the partial
 * states of parallel workers.  This stays accurate for features whose mean
 * dwarfs their spread (a column near 1e9 varying by units), where sums of
 * squares would cancel catastrophically, and the co-moments of a block are
 * one rank-PASS_BLOCK update (PassBlockSyrk) rather than a rank-1 update a
 * row.
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
	int			nblock;			/* rows in the block buffer */
	double	   *block;			/* (p + 1) × PASS_BLOCK: label, features */
	double	   *bw;				/* PASS_BLOCK weights */
} MomentsState;

/*
 * Reads the label, feature and weight arguments of a pass aggregate.
 * Returns false when the row must be skipped; errors when the number of
 * features differs from expected (when expected >= 0).  On success *x
 * points at the *p feature values, possibly unaligned: PassFeature
 * copies them out.
 *
 * This runs for every row of every pass, so it does not copy the array.
 * A float8[] stored in a table usually has a short (1-byte) varlena header,
 * and PG_GETARG_ARRAYTYPE_P would palloc an aligned copy of it per row.  The
 * payload after either header is laid out as in ArrayType (ndim,
 * dataoffset, elemtype, dims, lower bounds, data at the 8-byte aligned
 * offset of the 4-byte form), so the values are read in place.  Arrays with
 * a null bitmap and compressed or out-of-line values take the ordinary
 * path.
 */
bool
PassReadRow(FunctionCallInfo fcinfo, int argno, int expected,
			double *y, const char **x, int *p, double *w)
{
	struct varlena *v;
	const char *body;
	int			ndim;
	int32		dataoffset;
	Oid			elemtype;
	int			n = 0;

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

	v = (struct varlena *) DatumGetPointer(PG_GETARG_DATUM(argno + 1));
	/* (a TOAST pointer has a 1-byte header too: test for it, not for short) */
	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
		v = pg_detoast_datum_packed(v);
	body = VARDATA_ANY(v);
	memcpy(&ndim, body, sizeof(int));
	memcpy(&dataoffset, body + sizeof(int), sizeof(int32));
	memcpy(&elemtype, body + sizeof(int) + sizeof(int32), sizeof(Oid));
	if (elemtype != FLOAT8OID || ndim > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("features must be a one-dimensional float8 array")));
	if (ndim == 1)
		memcpy(&n, body + offsetof(ArrayType, elemtype) + sizeof(Oid) - VARHDRSZ,
			   sizeof(int));
	if (expected >= 0 && n != expected)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("feature array has %d elements, expected %d", n,
						expected)));
	if (dataoffset != 0)
	{
		/* a null bitmap: the ordinary, copying path */
		ArrayType  *a = DatumGetArrayTypeP(PointerGetDatum(v));

		if (array_contains_nulls(a))
			return false;
		*x = (const char *) ARR_DATA_PTR(a);
	}
	else
		*x = body + ARR_OVERHEAD_NONULLS(ndim) - VARHDRSZ;
	*p = n;
	return true;
}

/*
 * Adds Σ_r a[r] z_r z_rᵀ over one block of rows (z feature-major, n values
 * a row) to the packed upper triangle of order n.  Rows not in use must
 * have a[r] = 0 and finite z.  This is the inner loop of every pass: one
 * rank-PASS_BLOCK update instead of PASS_BLOCK rank-1 updates, so that each
 * matrix entry is read and written once a block, and the sums over rows,
 * of fixed length, run in registers.
 */
void
PassBlockSyrk(double *packed, const double *z, const double *a, int n)
{
	double		az[PASS_BLOCK];

	for (int i = 0; i < n; i++)
	{
		const double *zi = z + i * PASS_BLOCK;
		int			j = i;

		for (int r = 0; r < PASS_BLOCK; r++)
			az[r] = a[r] * zi[r];
		/* two columns at a time: each load of az serves both */
		for (; j + 1 < n; j += 2)
		{
			const double *z0 = z + j * PASS_BLOCK;
			const double *z1 = z0 + PASS_BLOCK;
			double		s00 = 0.0;
			double		s01 = 0.0;
			double		s10 = 0.0;
			double		s11 = 0.0;

			for (int r = 0; r < PASS_BLOCK; r += 2)
			{
				s00 += az[r] * z0[r];
				s01 += az[r + 1] * z0[r + 1];
				s10 += az[r] * z1[r];
				s11 += az[r + 1] * z1[r + 1];
			}
			packed[0] += s00 + s01;
			packed[1] += s10 + s11;
			packed += 2;
		}
		if (j < n)
			*packed++ += PassBlockDot(az, z + j * PASS_BLOCK);
	}
}

/* Allocates the arrays of a moments state for p features. */
static void
MomentsAlloc(MomentsState *state, int p)
{
	state->p = p;
	state->mean = palloc0(sizeof(double) * (p + 1));
	state->comom = palloc0(sizeof(double) * PACKED_SIZE(p + 1));
	state->delta = palloc0(sizeof(double) * (p + 1));
	state->nblock = 0;
	state->block = palloc0(sizeof(double) * (p + 1) * PASS_BLOCK);
	state->bw = palloc0(sizeof(double) * PASS_BLOCK);
}

/*
 * Merges the buffered block of rows into the state: the block's weighted
 * mean and co-moments (centred on the block's own mean, so two-pass
 * accurate), then Chan's formula, as for a partial state.
 */
static void
MomentsFlush(MomentsState *state)
{
	int			n1 = state->p + 1;
	double	   *v = state->block;
	double	   *bw = state->bw;
	double		wb = 0.0;
	double		wnew;
	double		f;
	double	   *delta = state->delta;
	double	   *cm = state->comom;

	if (state->nblock == 0)
		return;
	/* rows not in use weigh nothing */
	for (int r = state->nblock; r < PASS_BLOCK; r++)
		bw[r] = 0.0;
	state->nblock = 0;
	for (int r = 0; r < PASS_BLOCK; r++)
		wb += bw[r];
	if (wb == 0.0)
		return;
	wnew = state->w + wb;
	for (int i = 0; i < n1; i++)
	{
		double	   *vi = v + i * PASS_BLOCK;
		double		m = PassBlockDot(bw, vi) / wb;

		/* centre the block on its mean; unused rows become 0 or finite */
		for (int r = 0; r < PASS_BLOCK; r++)
			vi[r] = (bw[r] != 0.0) ? vi[r] - m : 0.0;
		delta[i] = m - state->mean[i];
		state->mean[i] += delta[i] * (wb / wnew);
	}
	f = state->w * wb / wnew;
	for (int i = 0; i < n1; i++)
	{
		double		a = f * delta[i];

		for (int j = i; j < n1; j++)
			*cm++ += a * delta[j];
	}
	PassBlockSyrk(state->comom, v, bw, n1);
	state->w = wnew;
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
	MomentsState *state;
	double		y;
	double		w;
	const char *x;
	int			p;
	int			r;
	double	   *col;

	if (PG_ARGISNULL(0))
	{
		state = MemoryContextAllocZero(PassAggContext(fcinfo, "ml_moments_transfn"),
									   sizeof(MomentsState));
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
		MemoryContext old = MemoryContextSwitchTo(PassAggContext(fcinfo, "ml_moments_transfn"));

		MomentsAlloc(state, p);
		MemoryContextSwitchTo(old);
	}

	/* into the block buffer, feature-major, if every feature is finite */
	r = state->nblock;
	col = state->block + r;
	col[0] = y;
	for (int i = 1; i <= p; i++)
	{
		double		v = PassFeature(x, i - 1);

		if (unlikely(!isfinite(v)))
		{
			state->skipped++;
			PG_RETURN_POINTER(state);
		}
		col[i * PASS_BLOCK] = v;
	}
	state->count++;
	if (w == 0.0)
		PG_RETURN_POINTER(state);
	state->bw[r] = w;
	if (++state->nblock == PASS_BLOCK)
		MomentsFlush(state);
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
	MomentsFlush(a);
	MomentsFlush(b);
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

	if (state->p >= 0)
		MomentsFlush(state);
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
	if (p >= 0)
		MomentsFlush(state);
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
