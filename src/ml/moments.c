/*
 * moments.c
 *		The first pass of every training run: weighted means and co-moments of
 *		the label and the features, as a parallel aggregate.
 *
 * streamml.ml_moments(label, features, weight, nfeatures, comoments)
 * accumulates, for the vector v = (label, x1, ..., xp), the weighted mean
 * and the co-moment matrix Σ w (v - mean)(v - mean)ᵀ.  Rows are buffered in
 * blocks of PASS_BLOCK; each block's mean and co-moments are computed
 * centred on the block's own mean and merged into the state with Chan's
 * formula, as are the partial states of parallel workers.  This stays
 * accurate for features whose mean dwarfs their spread (a column near 1e9
 * varying by units), where sums of squares would cancel catastrophically,
 * and the co-moments of a block are one rank-PASS_BLOCK update
 * (PassBlockSyrk) rather than a rank-1 update a row.
 *
 * Every column is kept in units of a power of two that follows the largest
 * magnitude seen in it (passes.h), so that a column near 1e200 does not
 * overflow its squares and one near 1e-200 does not underflow them to zero
 * (which would make it look constant).  When a block brings a larger
 * magnitude, the column's mean and co-moments are rescaled, exactly.
 *
 * nfeatures is the number of features the driver expects (the model's, or
 * the most common length of a feature array column); rows with a feature
 * array of another length or shape are skipped and counted apart, so that
 * one odd row neither aborts the run nor, scanned first, decides the
 * length.  Without comoments only the label's co-moments with each column
 * and the diagonal are kept: O(p) a row and O(p) memory, for solvers that
 * need only the standardisation (L-BFGS with many features).
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
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "ml/ml.h"
#include "ml/passes.h"

typedef struct MomentsState
{
	int			p;				/* number of features, -1 until known */
	bool		full;			/* the whole co-moment matrix, or row 0 and
								 * the diagonal */
	int64		count;			/* rows used */
	int64		skipped;		/* rows skipped, malformed ones included */
	int64		malformed;		/* rows with a feature array of another length */
	double		w;				/* sum of weights */
	int		   *exps;			/* p + 1: the unit of column i is 2^exps[i] */
	double	   *mean;			/* p + 1, label first, in the units */
	double	   *comom;			/* in the units: packed upper triangle of
								 * order p + 1, or row 0 then the diagonal */
	double	   *delta;			/* scratch, p + 1 */
	int			nblock;			/* rows in the block buffer */
	double	   *block;			/* (p + 1) × PASS_BLOCK: label, features */
	double	   *bw;				/* PASS_BLOCK weights */
} MomentsState;

/* Number of co-moments a state keeps for p features. */
static inline Size
MomentsComomSize(int p, bool full)
{
	return full ? PACKED_SIZE((Size) p + 1) : 2 * ((Size) p + 1);
}

/* The error of a row weight outside PASS_WEIGHT_OK (a skip would bias the fit). */
void
PassWeightOutOfRange(double w)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("row weight %g is out of range", w),
			 errdetail("A row weight must be 0 or between 1e-12 and 1e12, as class weights are at most 1e12; a fit depends only on the ratios of the weights."),
			 errhint("Scale the weight column by a constant in the source query.")));
}

/*
 * Reads the label, feature and weight arguments of a pass aggregate.
 * Returns PASS_ROW_SKIP when the row must be skipped for a NULL or
 * non-finite label or weight or NULL features, PASS_ROW_MALFORMED when the
 * feature array is not one-dimensional with expected elements (when
 * expected >= 0; otherwise any non-empty one-dimensional array will do).
 * On PASS_ROW_OK *x points at the *p feature values, possibly unaligned:
 * PassFeature copies them out; NULL elements make the row PASS_ROW_SKIP.
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
PassRow
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
		return PASS_ROW_SKIP;
	*y = PG_GETARG_FLOAT8(argno);
	if (!isfinite(*y))
		return PASS_ROW_SKIP;
	*w = 1.0;
	if (PG_NARGS() > argno + 2)
	{
		if (PG_ARGISNULL(argno + 2))
			return PASS_ROW_SKIP;
		*w = PG_GETARG_FLOAT8(argno + 2);
		if (!isfinite(*w) || *w < 0.0)
			return PASS_ROW_SKIP;
		if (!PASS_WEIGHT_OK(*w))
			PassWeightOutOfRange(*w);
	}

	v = (struct varlena *) DatumGetPointer(PG_GETARG_DATUM(argno + 1));
	/* (a TOAST pointer has a 1-byte header too: test for it, not for short) */
	if (VARATT_IS_EXTERNAL(v) || VARATT_IS_COMPRESSED(v))
		v = pg_detoast_datum_packed(v);
	body = VARDATA_ANY(v);
	memcpy(&ndim, body, sizeof(int));
	memcpy(&dataoffset, body + sizeof(int), sizeof(int32));
	memcpy(&elemtype, body + sizeof(int) + sizeof(int32), sizeof(Oid));
	if (elemtype != FLOAT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("features must be a float8 array")));
	if (ndim != 1)
		return PASS_ROW_MALFORMED;
	memcpy(&n, body + offsetof(ArrayType, elemtype) + sizeof(Oid) - VARHDRSZ,
		   sizeof(int));
	if (expected >= 0 ? n != expected : n <= 0)
		return PASS_ROW_MALFORMED;
	if (dataoffset != 0)
	{
		/* a null bitmap: the ordinary, copying path */
		ArrayType  *a = DatumGetArrayTypeP(PointerGetDatum(v));

		if (array_contains_nulls(a))
			return PASS_ROW_SKIP;
		*x = (const char *) ARR_DATA_PTR(a);
	}
	else
		*x = body + ARR_OVERHEAD_NONULLS(ndim) - VARHDRSZ;
	*p = n;
	return PASS_ROW_OK;
}

/*
 * Adds Σ_r a[r] z_r z_rᵀ over one block of rows (z feature-major, n values
 * a row) to the packed upper triangle of order n.  Rows not in use must
 * have a[r] = 0 and finite z.  This is the inner loop of every pass: one
 * rank-PASS_BLOCK update instead of PASS_BLOCK rank-1 updates, so that each
 * matrix entry is read and written once a block, and the sums over rows,
 * of fixed length, run in registers.  With thousands of features one block
 * takes a second or more, so it checks for interrupts as it goes.
 */
void
PassBlockSyrk(double *packed, const double *z, const double *a, int n)
{
	double		az[PASS_BLOCK];

	for (int i = 0; i < n; i++)
	{
		const double *zi = z + i * PASS_BLOCK;
		int			j = i;

		if ((i & 63) == 63)
			CHECK_FOR_INTERRUPTS();
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

/*
 * Errors when a pass would accumulate a matrix of more than PASS_MAX_ORDER
 * rows (the driver refuses such models before the first pass, with advice;
 * this guards direct calls of the aggregates).
 */
void
PassCheckOrder(int order)
{
	if (order > PASS_MAX_ORDER)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a training pass cannot accumulate a matrix of order %d",
						order),
				 errdetail("The limit is %d: label and features, or coefficients of a Newton step.",
						   PASS_MAX_ORDER)));
}

/* Allocates the arrays of a moments state for p features. */
static void
MomentsAlloc(MomentsState *state, int p, bool full)
{
	if (full)
		PassCheckOrder(p + 1);
	state->p = p;
	state->full = full;
	state->exps = palloc(sizeof(int) * (p + 1));
	for (int i = 0; i <= p; i++)
		state->exps[i] = PASS_EXP_MIN;
	state->mean = palloc0(sizeof(double) * (p + 1));
	state->comom = palloc0(sizeof(double) * MomentsComomSize(p, full));
	state->delta = palloc0(sizeof(double) * (p + 1));
	state->nblock = 0;
	state->block = palloc0(sizeof(double) * (p + 1) * PASS_BLOCK);
	state->bw = palloc0(sizeof(double) * PASS_BLOCK);
}

/* Multiplies co-moment (i, j) of a state by f, if the state keeps it. */
static inline void
MomentsScaleEntry(MomentsState *state, int i, int j, double f)
{
	int			n1 = state->p + 1;

	if (state->full)
		state->comom[i <= j ? PACKED_INDEX(n1, i, j) : PACKED_INDEX(n1, j, i)] *= f;
	else if (i == 0 || j == 0)
		state->comom[Max(i, j)] *= f;
	else if (i == j)
		state->comom[n1 + i] *= f;
}

/*
 * Moves column i of a state to the larger unit 2^e: its mean and its
 * co-moments are multiplied by a power of two, exactly (values far below
 * the new unit may underflow, which is below the precision of the sums).
 */
static void
MomentsRescale(MomentsState *state, int i, int e)
{
	double		f = ldexp(1.0, state->exps[i] - e);

	state->exps[i] = e;
	if (state->w == 0.0)
		return;
	state->mean[i] *= f;
	for (int j = 0; j <= state->p; j++)
		MomentsScaleEntry(state, i, j, j == i ? f * f : f);
}

/*
 * Merges the buffered block of rows into the state: the block's weighted
 * mean and co-moments (centred on the block's own mean, so two-pass
 * accurate), then Chan's formula, as for a partial state.  Columns first
 * move to a larger unit if the block holds a larger magnitude.
 */
static void
MomentsFlush(MomentsState *state)
{
	int			n1 = state->p + 1;
	int			nb = state->nblock;
	double	   *v = state->block;
	double	   *bw = state->bw;
	double		wb = 0.0;
	double		wnew;
	double		f;
	double	   *delta = state->delta;
	double	   *cm = state->comom;

	if (nb == 0)
		return;
	/* rows not in use weigh nothing */
	for (int r = nb; r < PASS_BLOCK; r++)
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
		double		big = 0.0;
		double		unit;
		double		m;
		int			e;

		for (int r = 0; r < nb; r++)
			big = Max(big, fabs(vi[r]));
		e = PassExponent(big);
		if (e > state->exps[i])
			MomentsRescale(state, i, e);
		/* into the column's unit; unused rows become 0 */
		unit = ldexp(1.0, -state->exps[i]);
		for (int r = 0; r < PASS_BLOCK; r++)
			vi[r] = (r < nb) ? vi[r] * unit : 0.0;
		m = PassBlockDot(bw, vi) / wb;
		/* centre the block on its mean */
		for (int r = 0; r < nb; r++)
			vi[r] -= m;
		delta[i] = m - state->mean[i];
		state->mean[i] += delta[i] * (wb / wnew);
	}
	f = state->w * wb / wnew;
	if (state->full)
	{
		for (int i = 0; i < n1; i++)
		{
			double		a = f * delta[i];

			for (int j = i; j < n1; j++)
				*cm++ += a * delta[j];
		}
		PassBlockSyrk(state->comom, v, bw, n1);
	}
	else
	{
		/* row 0 (label with each column), then the diagonal */
		double		bv0[PASS_BLOCK];

		for (int r = 0; r < PASS_BLOCK; r++)
			bv0[r] = bw[r] * v[r];
		for (int i = 0; i < n1; i++)
		{
			const double *vi = v + i * PASS_BLOCK;
			double		s = 0.0;

			cm[i] += f * delta[0] * delta[i] + PassBlockDot(bv0, vi);
			for (int r = 0; r < PASS_BLOCK; r++)
				s += bw[r] * vi[r] * vi[r];
			cm[n1 + i] += f * delta[i] * delta[i] + s;
		}
	}
	state->w = wnew;
}

/*
 * Returns the aggregate's memory context, or errors when the function was
 * called from SQL outside an aggregate (any role can: the bytea-state
 * functions of the aggregates are SQL functions).
 */
MemoryContext
PassAggContext(FunctionCallInfo fcinfo, const char *name)
{
	MemoryContext aggcontext;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s called in non-aggregate context", name)));
	return aggcontext;
}

/*
 * Allocates a state for the nfeatures and comoments arguments of the
 * six-argument form of streamml.ml_moments, or checks that a state made
 * from a flat one (MomentsComplete) is of them.
 */
static void
MomentsStart(FunctionCallInfo fcinfo, MomentsState *state)
{
	int			p;
	bool		full;

	if (PG_ARGISNULL(4) || PG_GETARG_INT32(4) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ml_moments needs the number of features")));
	p = PG_GETARG_INT32(4);
	full = PG_ARGISNULL(5) || PG_GETARG_BOOL(5);
	if (p >= PASS_MAX_COLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("ml_moments cannot accumulate %d features", p),
				 errdetail("The limit is %d.", PASS_MAX_COLUMNS - 1)));
	if (state->p < 0)
		MomentsAlloc(state, p, full);
	else if (state->p != p || state->full != full)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ml_moments state does not match its arguments"),
				 errdetail("The state is of %d features%s, the arguments of %d%s.",
						   state->p, state->full ? " with co-moments" : "",
						   p, full ? " with co-moments" : "")));
}

/*
 * Completes a state made from a flat one for a transition (pass_state.c):
 * in the six-argument form, the state must be of nfeatures and comoments.
 */
void
MomentsComplete(FunctionCallInfo fcinfo, void *state)
{
	if (PG_NARGS() > 4)
		MomentsStart(fcinfo, (MomentsState *) state);
}

PG_FUNCTION_INFO_V1(ml_moments_transfn);

/*
 * Transition of streamml.ml_moments: adds one row.  With the arguments
 * nfeatures and comoments (the form training uses) the state is allocated
 * for nfeatures at once; in the three-argument form, by the first row with
 * a non-empty feature array.
 */
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
	PassRow		row;

	if (PG_ARGISNULL(0))
	{
		MemoryContext old = MemoryContextSwitchTo(PassAggContext(fcinfo, "ml_moments_transfn"));

		state = palloc0(sizeof(MomentsState));
		state->p = -1;
		if (PG_NARGS() > 4)
			MomentsStart(fcinfo, state);
		MemoryContextSwitchTo(old);
	}
	else
		state = (MomentsState *) PG_GETARG_POINTER(0);

	row = PassReadRow(fcinfo, 1, state->p, &y, &x, &p, &w);
	if (row != PASS_ROW_OK)
	{
		state->skipped++;
		if (row == PASS_ROW_MALFORMED)
			state->malformed++;
		PG_RETURN_POINTER(state);
	}
	if (state->p < 0)
	{
		MemoryContext old = MemoryContextSwitchTo(PassAggContext(fcinfo, "ml_moments_transfn"));

		MomentsAlloc(state, p, true);
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

	a->count += b->count;
	a->skipped += b->skipped;
	a->malformed += b->malformed;
	if (b->p < 0)
		return;
	if (a->p < 0)
		MomentsAlloc(a, b->p, b->full);
	else if (a->p != b->p || a->full != b->full)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot combine ml_moments states of %d and %d features",
						a->p, b->p),
				 errhint("Pass the number of features to ml_moments.")));
	MomentsFlush(a);
	MomentsFlush(b);
	if (b->w == 0.0)
		return;
	n1 = a->p + 1;
	/* both states in the larger unit of every column */
	for (int i = 0; i < n1; i++)
	{
		if (b->exps[i] > a->exps[i])
			MomentsRescale(a, i, b->exps[i]);
		else if (a->exps[i] > b->exps[i])
			MomentsRescale(b, i, a->exps[i]);
	}
	w = a->w + b->w;
	delta = a->delta;
	for (int i = 0; i < n1; i++)
		delta[i] = b->mean[i] - a->mean[i];
	for (int i = 0; i < n1; i++)
		a->mean[i] += delta[i] * (b->w / w);
	f = a->w * b->w / w;
	if (a->full)
	{
		double	   *cm = a->comom;
		const double *bm = b->comom;

		for (int i = 0; i < n1; i++)
		{
			if ((i & 63) == 63)
				CHECK_FOR_INTERRUPTS();
			for (int j = i; j < n1; j++)
				*cm++ += *bm++ + f * delta[i] * delta[j];
		}
	}
	else
		for (int i = 0; i < n1; i++)
		{
			a->comom[i] += b->comom[i] + f * delta[0] * delta[i];
			a->comom[n1 + i] += b->comom[n1 + i] + f * delta[i] * delta[i];
		}
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
	pq_sendbyte(&buf, state->full ? 1 : 0);
	pq_sendint64(&buf, state->count);
	pq_sendint64(&buf, state->skipped);
	pq_sendint64(&buf, state->malformed);
	pq_sendfloat8(&buf, state->w);
	if (state->p >= 0)
	{
		pq_sendbytes(&buf, (char *) state->exps, sizeof(int) * (state->p + 1));
		pq_sendbytes(&buf, (char *) state->mean, sizeof(double) * (state->p + 1));
		pq_sendbytes(&buf, (char *) state->comom,
					 sizeof(double) * MomentsComomSize(state->p, state->full));
	}
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* Bytes of the header of a flat moments state: p, full, 3 counts, w. */
#define MOMENTS_FLAT_HEADER (4 + 1 + 3 * 8 + 8)

PG_FUNCTION_INFO_V1(ml_moments_deserialfn);

/*
 * Deserialises a moments state, checking every field (passes.h) before it
 * allocates by them.
 */
Datum
ml_moments_deserialfn(PG_FUNCTION_ARGS)
{
	const char *agg = "streamml.ml_moments";
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	MomentsState *state;
	StringInfoData buf;
	int			p;
	int			fullbyte;
	int64		count;
	int64		skipped;
	int64		malformed;
	double		w;
	uint64		rest = 0;

	PassAggContext(fcinfo, "ml_moments_deserialfn");
	PassReadBuffer(&buf, b);
	PassStateCheckHeader(agg, &buf, MOMENTS_FLAT_HEADER);
	p = (int) pq_getmsgint(&buf, 4);
	fullbyte = pq_getmsgbyte(&buf);
	count = pq_getmsgint64(&buf);
	skipped = pq_getmsgint64(&buf);
	malformed = pq_getmsgint64(&buf);
	w = pq_getmsgfloat8(&buf);
	PASS_STATE_CHECK(p >= -1 && p < PASS_MAX_COLUMNS, agg,
					 "It has %d features.", p);
	PASS_STATE_CHECK(fullbyte == 0 || fullbyte == 1, agg,
					 "Its co-moments flag is %d.", fullbyte);
	PASS_STATE_CHECK(p < 0 || fullbyte == 0 || p < PASS_MAX_ORDER, agg,
					 "It keeps the co-moments of %d columns, above the limit of %d.",
					 p + 1, PASS_MAX_ORDER);
	PASS_STATE_CHECK(count >= 0 && skipped >= 0 && malformed >= 0 &&
					 malformed <= skipped, agg,
					 "It counts " INT64_FORMAT " rows used, " INT64_FORMAT " skipped and " INT64_FORMAT " malformed.",
					 count, skipped, malformed);
	PASS_STATE_CHECK(isfinite(w) && w >= 0.0, agg,
					 "Its sum of weights is %g.", w);
	PASS_STATE_CHECK(p >= 0 || (count == 0 && w == 0.0), agg,
					 "It has rows but no features.");
	if (p >= 0)
		rest = ((uint64) p + 1) * (sizeof(int) + sizeof(double)) +
			sizeof(double) * (uint64) MomentsComomSize(p, fullbyte != 0);
	PassStateCheckLength(agg, &buf, rest);

	state = palloc0(sizeof(MomentsState));
	state->p = -1;
	if (p >= 0)
		MomentsAlloc(state, p, fullbyte != 0);
	state->count = count;
	state->skipped = skipped;
	state->malformed = malformed;
	state->w = w;
	if (p >= 0)
	{
		pq_copymsgbytes(&buf, (char *) state->exps, sizeof(int) * (p + 1));
		pq_copymsgbytes(&buf, (char *) state->mean, sizeof(double) * (p + 1));
		pq_copymsgbytes(&buf, (char *) state->comom,
						sizeof(double) * MomentsComomSize(p, state->full));
		for (int i = 0; i <= p; i++)
			PASS_STATE_CHECK(state->exps[i] >= PASS_EXP_MIN &&
							 state->exps[i] <= PASS_EXP_MAX, agg,
							 "The unit of its column %d is 2^%d.", i, state->exps[i]);
		PassStateCheckFinite(agg, "means", state->mean, p + 1, false);
		PassStateCheckFinite(agg, "co-moments", state->comom,
							 MomentsComomSize(p, state->full), false);
	}
	PG_RETURN_POINTER(state);
}

PG_FUNCTION_INFO_V1(ml_moments_finalfn);

/*
 * Final function of streamml.ml_moments: a float8[] laid out as in
 * passes.h (MOMENTS_OUT_*): the header, the means (label first), the units
 * of the columns and the co-moments in those units.
 */
Datum
ml_moments_finalfn(PG_FUNCTION_ARGS)
{
	MomentsState *state;
	int			p;
	Size		len;
	Size		ncm;
	double	   *out;
	ArrayType  *result;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	state = (MomentsState *) PG_GETARG_POINTER(0);
	p = state->p;
	if (p >= 0)
		MomentsFlush(state);
	ncm = (p >= 0) ? MomentsComomSize(p, state->full) : 0;
	len = MOMENTS_OUT_HEADER + (p >= 0 ? 2 * (p + 1) + ncm : 0);
	out = palloc(sizeof(double) * len);
	out[MOMENTS_OUT_WEIGHT] = state->w;
	out[MOMENTS_OUT_COUNT] = (double) state->count;
	out[MOMENTS_OUT_SKIPPED] = (double) state->skipped;
	out[MOMENTS_OUT_P] = p;
	out[MOMENTS_OUT_MALFORMED] = (double) state->malformed;
	out[MOMENTS_OUT_FULL] = (p < 0 || state->full) ? 1.0 : 0.0;
	if (p >= 0)
	{
		double	   *mean = out + MOMENTS_OUT_HEADER;
		double	   *unit = mean + p + 1;

		for (int i = 0; i <= p; i++)
		{
			unit[i] = ldexp(1.0, state->exps[i]);
			mean[i] = state->mean[i] * unit[i];
		}
		memcpy(unit + p + 1, state->comom, sizeof(double) * ncm);
	}
	result = Float8ArrayBuild(out, len);
	pfree(out);
	PG_RETURN_ARRAYTYPE_P(result);
}
