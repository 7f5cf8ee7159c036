/*
 * rolling_slope.c
 *		rolling_slope(y, x): the least-squares slope, like regr_slope, with
 *		an inverse transition so that a sliding frame costs O(1) per row.
 *
 * The same technique as rolling.c, for two variables: double-double sums of
 * dx = x - sx and dy = y - sy and of dx^2, dy^2 and dx*dy, each formed
 * exactly; shifts that follow the means (moved exactly whenever a mean drifts
 * further from its shift than the spread), so that neither
 * Sxx = sum(dx^2) - sum(dx)^2/n nor Sxy cancels; and the trailing runs of
 * equal x and of equal y, which reset the sums exactly when a variable is
 * constant over the frame (x constant: no slope, NULL, as regr_slope says;
 * y constant: slope exactly 0).
 *
 * Rows with a NULL in either argument are skipped, as regr_slope's strict
 * transition skips them.  Rows with a NaN or infinite value are counted
 * apart: a non-finite x makes the slope NaN; a non-finite y makes it NaN too,
 * unless every x is the same (then regr_slope's Sxx is exactly 0, and the
 * result NULL).
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/float.h"

#include "features/ddouble.h"
#include "features/window_state.h"



/* The state passed in, or a new empty one in the aggregate's context. */
static SlopeState *
SlopeGetState(FunctionCallInfo fcinfo)
{
	MemoryContext aggcontext;

	if (!PG_ARGISNULL(0))
		return (SlopeState *) PG_GETARG_POINTER(0);

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "rolling_slope transition called in non-aggregate context");
	return (SlopeState *) MemoryContextAllocZero(aggcontext, sizeof(SlopeState));
}

/*
 * Moves the sums of one variable u from shift "from" to shift "to", exactly:
 * u1 = sum(du), uu = sum(du^2), and uv = sum(du * dv) where v1 = sum(dv).
 */
static void
SlopeMoveShift(DDouble *u1, DDouble *uu, DDouble *uv, DDouble v1, int64 n,
			   double from, double to)
{
	DDouble		delta = DDTwoSum(to, -from);
	DDouble		ndelta = DDMulD(delta, (double) n);

	*uu = DDSub(*uu, DDMulD(DDMul(delta, *u1), 2.0));
	*uu = DDAdd(*uu, DDMul(ndelta, delta));
	*uv = DDSub(*uv, DDMul(delta, v1));
	*u1 = DDSub(*u1, ndelta);
}

/* Keeps each shift near its mean; resets a constant variable exactly. */
static void
SlopeReanchor(SlopeState *st)
{
	if (st->n == 0)
		return;

	if (st->runx == SlopeCount(st) && isfinite(st->lastx))
	{
		st->sx = st->lastx;
		st->x1 = DDFromDouble(0.0);
		st->xx = DDFromDouble(0.0);
		st->xy = DDFromDouble(0.0);
	}
	else if (st->x1.hi * st->x1.hi > 0.5 * (double) st->n * st->xx.hi)
	{
		double		target = st->sx + st->x1.hi / (double) st->n;

		SlopeMoveShift(&st->x1, &st->xx, &st->xy, st->y1, st->n,
					   st->sx, target);
		st->sx = target;
	}

	if (st->runy == SlopeCount(st) && isfinite(st->lasty))
	{
		st->sy = st->lasty;
		st->y1 = DDFromDouble(0.0);
		st->yy = DDFromDouble(0.0);
		st->xy = DDFromDouble(0.0);
	}
	else if (st->y1.hi * st->y1.hi > 0.5 * (double) st->n * st->yy.hi)
	{
		double		target = st->sy + st->y1.hi / (double) st->n;

		SlopeMoveShift(&st->y1, &st->yy, &st->xy, st->x1, st->n,
					   st->sy, target);
		st->sy = target;
	}
}

/* Adds or (sign -1) removes the sums' terms of a row with finite x and y. */
static void
SlopeSums(SlopeState *st, double x, double y, double sign)
{
	DDouble		dx = DDTwoSum(x, -st->sx);
	DDouble		dy = DDTwoSum(y, -st->sy);
	DDouble		pxx = DDSquare(dx);
	DDouble		pyy = DDSquare(dy);
	DDouble		pxy = DDMul(dx, dy);

	if (sign < 0)
	{
		dx = DDNeg(dx);
		dy = DDNeg(dy);
		pxx = DDNeg(pxx);
		pyy = DDNeg(pyy);
		pxy = DDNeg(pxy);
	}
	st->x1 = DDAdd(st->x1, dx);
	st->y1 = DDAdd(st->y1, dy);
	st->xx = DDAdd(st->xx, pxx);
	st->yy = DDAdd(st->yy, pyy);
	st->xy = DDAdd(st->xy, pxy);
}

/* Adds a row with two non-NULL values. */
void
SlopeAdd(SlopeState *st, double x, double y)
{
	bool		any = SlopeCount(st) > 0;

	if (any && st->runx > 0 && x == st->lastx)
		st->runx++;
	else
	{
		st->runx = 1;
		st->lastx = x;
	}
	if (any && st->runy > 0 && y == st->lasty)
		st->runy++;
	else
	{
		st->runy = 1;
		st->lasty = y;
	}

	if (!isfinite(x))
		st->nxbad++;
	else if (!isfinite(y))
		st->nybad++;
	else if (st->n++ == 0)
	{
		st->sx = x;
		st->sy = y;
		st->x1 = st->y1 = st->xx = st->yy = st->xy = DDFromDouble(0.0);
	}
	else
	{
		SlopeSums(st, x, y, 1.0);
		if (!isfinite(st->xx.hi) || !isfinite(st->yy.hi) ||
			!isfinite(st->xy.hi))
			float_overflow_error();
	}
	SlopeReanchor(st);
}

/* Removes a row, the oldest in the frame. */
void
SlopeRemove(SlopeState *st, double x, double y)
{
	if (!isfinite(x))
		st->nxbad--;
	else if (!isfinite(y))
		st->nybad--;
	else if (--st->n == 0)
		st->x1 = st->y1 = st->xx = st->yy = st->xy = DDFromDouble(0.0);
	else
		SlopeSums(st, x, y, -1.0);

	st->runx = Min(st->runx, SlopeCount(st));
	st->runy = Min(st->runy, SlopeCount(st));
	SlopeReanchor(st);
}

PG_FUNCTION_INFO_V1(rolling_slope_accum);

/* SQL streamml.rolling_slope_accum(internal, float8, float8): forward. */
Datum
rolling_slope_accum(PG_FUNCTION_ARGS)
{
	SlopeState *st = SlopeGetState(fcinfo);

	if (!PG_ARGISNULL(1) && !PG_ARGISNULL(2))
		SlopeAdd(st, PG_GETARG_FLOAT8(2), PG_GETARG_FLOAT8(1));
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(rolling_slope_retract);

/* SQL streamml.rolling_slope_retract(internal, float8, float8): inverse. */
Datum
rolling_slope_retract(PG_FUNCTION_ARGS)
{
	SlopeState *st = SlopeGetState(fcinfo);

	if (!PG_ARGISNULL(1) && !PG_ARGISNULL(2))
	{
		if (SlopeCount(st) == 0)
			PG_RETURN_NULL();	/* nothing to remove: restart */
		SlopeRemove(st, PG_GETARG_FLOAT8(2), PG_GETARG_FLOAT8(1));
	}
	PG_RETURN_POINTER(st);
}

/* The run of a followed by b, for one variable. */
static int64
SlopeCombineRun(int64 arun, double alast, int64 acount,
				int64 brun, double blast, int64 bcount)
{
	if (brun == bcount && acount > 0 && alast == blast)
		return arun + brun;
	return brun;
}

PG_FUNCTION_INFO_V1(rolling_slope_combine);

/* SQL streamml.rolling_slope_combine(internal, internal): merges states. */
Datum
rolling_slope_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	SlopeState *a;
	SlopeState *b;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "rolling_slope_combine called in non-aggregate context");

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	b = (SlopeState *) PG_GETARG_POINTER(1);
	if (PG_ARGISNULL(0))
	{
		a = (SlopeState *) MemoryContextAlloc(aggcontext, sizeof(SlopeState));
		*a = *b;
		PG_RETURN_POINTER(a);
	}
	a = (SlopeState *) PG_GETARG_POINTER(0);
	if (SlopeCount(b) == 0)
		PG_RETURN_POINTER(a);

	a->runx = SlopeCombineRun(a->runx, a->lastx, SlopeCount(a),
							  b->runx, b->lastx, SlopeCount(b));
	a->runy = SlopeCombineRun(a->runy, a->lasty, SlopeCount(a),
							  b->runy, b->lasty, SlopeCount(b));
	a->lastx = b->lastx;
	a->lasty = b->lasty;

	if (b->n > 0 && a->n == 0)
	{
		a->sx = b->sx;
		a->sy = b->sy;
		a->x1 = b->x1;
		a->y1 = b->y1;
		a->xx = b->xx;
		a->yy = b->yy;
		a->xy = b->xy;
	}
	else if (b->n > 0)
	{
		SlopeState m = *b;

		SlopeMoveShift(&m.x1, &m.xx, &m.xy, m.y1, m.n, m.sx, a->sx);
		SlopeMoveShift(&m.y1, &m.yy, &m.xy, m.x1, m.n, m.sy, a->sy);
		a->x1 = DDAdd(a->x1, m.x1);
		a->y1 = DDAdd(a->y1, m.y1);
		a->xx = DDAdd(a->xx, m.xx);
		a->yy = DDAdd(a->yy, m.yy);
		a->xy = DDAdd(a->xy, m.xy);
		if (!isfinite(a->xx.hi) || !isfinite(a->yy.hi) ||
			!isfinite(a->xy.hi))
			float_overflow_error();
	}
	a->n += b->n;
	a->nxbad += b->nxbad;
	a->nybad += b->nybad;
	SlopeReanchor(a);
	PG_RETURN_POINTER(a);
}

PG_FUNCTION_INFO_V1(rolling_slope_serialize);

/* SQL streamml.rolling_slope_serialize(internal): the state as bytea. */
Datum
rolling_slope_serialize(PG_FUNCTION_ARGS)
{
	SlopeState *st = (SlopeState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint64(&buf, st->n);
	pq_sendint64(&buf, st->nxbad);
	pq_sendint64(&buf, st->nybad);
	pq_sendfloat8(&buf, st->sx);
	pq_sendfloat8(&buf, st->sy);
	pq_sendfloat8(&buf, st->x1.hi);
	pq_sendfloat8(&buf, st->x1.lo);
	pq_sendfloat8(&buf, st->y1.hi);
	pq_sendfloat8(&buf, st->y1.lo);
	pq_sendfloat8(&buf, st->xx.hi);
	pq_sendfloat8(&buf, st->xx.lo);
	pq_sendfloat8(&buf, st->yy.hi);
	pq_sendfloat8(&buf, st->yy.lo);
	pq_sendfloat8(&buf, st->xy.hi);
	pq_sendfloat8(&buf, st->xy.lo);
	pq_sendfloat8(&buf, st->lastx);
	pq_sendfloat8(&buf, st->lasty);
	pq_sendint64(&buf, st->runx);
	pq_sendint64(&buf, st->runy);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(rolling_slope_deserialize);

/* SQL streamml.rolling_slope_deserialize(bytea, internal): the state back. */
Datum
rolling_slope_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	SlopeState *st = (SlopeState *) palloc(sizeof(SlopeState));
	StringInfoData buf;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "rolling_slope_deserialize called in non-aggregate context");

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
	st->n = pq_getmsgint64(&buf);
	st->nxbad = pq_getmsgint64(&buf);
	st->nybad = pq_getmsgint64(&buf);
	st->sx = pq_getmsgfloat8(&buf);
	st->sy = pq_getmsgfloat8(&buf);
	st->x1.hi = pq_getmsgfloat8(&buf);
	st->x1.lo = pq_getmsgfloat8(&buf);
	st->y1.hi = pq_getmsgfloat8(&buf);
	st->y1.lo = pq_getmsgfloat8(&buf);
	st->xx.hi = pq_getmsgfloat8(&buf);
	st->xx.lo = pq_getmsgfloat8(&buf);
	st->yy.hi = pq_getmsgfloat8(&buf);
	st->yy.lo = pq_getmsgfloat8(&buf);
	st->xy.hi = pq_getmsgfloat8(&buf);
	st->xy.lo = pq_getmsgfloat8(&buf);
	st->lastx = pq_getmsgfloat8(&buf);
	st->lasty = pq_getmsgfloat8(&buf);
	st->runx = pq_getmsgint64(&buf);
	st->runy = pq_getmsgint64(&buf);
	pq_getmsgend(&buf);
	pfree(buf.data);
	PG_RETURN_POINTER(st);
}

/* Sxy / Sxx, like regr_slope; false for SQL NULL. */
bool
SlopeResult(SlopeState *st, double *result)
{
	double		n;
	double		sxx;
	double		sxy;

	if (SlopeCount(st) == 0)
		return false;
	if (st->nxbad > 0)
	{
		*result = get_float8_nan();
		return true;
	}
	if (st->runx == SlopeCount(st))
		return false;			/* a vertical line */
	if (st->nybad > 0)
	{
		*result = get_float8_nan();
		return true;
	}

	n = (double) st->n;
	sxx = DDToDouble(DDSub(st->xx, DDDivD(DDMul(st->x1, st->x1), n)));
	sxy = DDToDouble(DDSub(st->xy, DDDivD(DDMul(st->x1, st->y1), n)));
	if (sxx <= 0.0)
		return false;
	*result = sxy / sxx;
	return true;
}

PG_FUNCTION_INFO_V1(rolling_slope_final);

/* SQL streamml.rolling_slope_final(internal): Sxy / Sxx, like regr_slope. */
Datum
rolling_slope_final(PG_FUNCTION_ARGS)
{
	double		result;

	if (PG_ARGISNULL(0) ||
		!SlopeResult((SlopeState *) PG_GETARG_POINTER(0), &result))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(result);
}
