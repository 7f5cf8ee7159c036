/*
 * rolling.c
 *		rolling_sum, rolling_mean, rolling_var(_pop), rolling_stddev(_pop):
 *		float8 moment aggregates that can also take rows back out, so that a
 *		sliding window frame costs O(1) per row instead of a restart.
 *
 * PostgreSQL's float8 aggregates have no inverse transition function, so a
 * window whose frame head moves recomputes them over the whole frame for
 * every row.  These aggregates share one state and one forward (accum) and
 * one inverse (retract) transition; they differ only in the final function.
 *
 * Exactness.  A sliding frame adds and removes each value once, a million
 * times over on a long series, and the result must still be the exact value
 * for the frame to about 1e-9 relative: that rules out plain float sums
 * (residues of every add/remove pair pile up) and the textbook
 * sum-of-squares formula (catastrophic cancellation when the mean is large
 * compared to the spread, as for prices around 1e9).  So the state keeps
 *
 *	- a shift s, and the sums S1 = sum(x - s) and S2 = sum((x - s)^2) in
 *	  double-double arithmetic (ddouble.h), each x - s and its square formed
 *	  exactly, so that an add followed by the matching remove leaves a
 *	  residue some 2^-106 of the sums;
 *	- the shift close to the frame's mean: whenever (mean - s)^2 grows beyond
 *	  the variance, the sums are moved to s' = mean (exactly, in double-double),
 *	  so the variance S2 - S1^2/n never cancels more than one bit.  Because
 *	  removal recomputes x - s with the current shift and the moved sums are
 *	  exact to double-double precision, moving the shift is invisible;
 *	- the length of the trailing run of equal values.  When it covers the
 *	  frame, every value in the frame is the same: the sums are reset to
 *	  exactly zero around that value, so a constant stretch has variance
 *	  exactly 0 and mean exactly the value, whatever came before it;
 *	- NaN and infinities counted apart, never added into the sums, so that
 *	  the result is NaN or infinite exactly while such a value is in the
 *	  frame (as the built-ins have it), and exact again once it has left.
 *
 * Rows leave a window frame in the order they entered it (nodeWindowAgg.c
 * removes from the frame head forward, and restarts the aggregate instead
 * when a frame has exclusions), which the run-length bookkeeping relies on.
 * NULL inputs are skipped both ways, as by a strict transition function.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/float.h"

#include "features/ddouble.h"
#include "features/window_state.h"



/* The state passed in, or a new empty one in the aggregate's context. */
static RollingState *
RollingGetState(FunctionCallInfo fcinfo)
{
	MemoryContext aggcontext;

	if (!PG_ARGISNULL(0))
		return (RollingState *) PG_GETARG_POINTER(0);

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "rolling aggregate transition called in non-aggregate context");
	return (RollingState *) MemoryContextAllocZero(aggcontext,
												   sizeof(RollingState));
}

/* Moves the sums of n values from shift "from" to shift "to", exactly. */
static void
RollingMoveShift(DDouble *s1, DDouble *s2, int64 n, double from, double to)
{
	DDouble		delta = DDTwoSum(to, -from);
	DDouble		ndelta = DDMulD(delta, (double) n);

	/* sum((x - to)^2) = S2 - 2 delta S1 + n delta^2 */
	*s2 = DDSub(*s2, DDMulD(DDMul(delta, *s1), 2.0));
	*s2 = DDAdd(*s2, DDMul(ndelta, delta));
	/* sum(x - to) = S1 - n delta */
	*s1 = DDSub(*s1, ndelta);
}

/*
 * Keeps the shift near the mean: resets the sums exactly when every value in
 * the frame is the same, and moves them when the mean has drifted away.
 */
static void
RollingReanchor(RollingState *st)
{
	double		h;

	if (st->n == 0)
		return;
	if (st->run == RollingCount(st) && isfinite(st->last))
	{
		st->shift = st->last;
		st->s1 = DDFromDouble(0.0);
		st->s2 = DDFromDouble(0.0);
		return;
	}

	/* (mean - s)^2 > variance, i.e. S1^2 / n > S2 / 2 */
	h = st->s1.hi;
	if (h * h > 0.5 * (double) st->n * st->s2.hi)
	{
		double		target = st->shift + h / (double) st->n;

		RollingMoveShift(&st->s1, &st->s2, st->n, st->shift, target);
		st->shift = target;
	}
}

/* Adds one non-NULL value. */
void
RollingAdd(RollingState *st, double x)
{
	if (RollingCount(st) > 0 && st->run > 0 && x == st->last)
		st->run++;
	else
	{
		st->run = 1;
		st->last = x;
	}

	if (isnan(x))
		st->nnan++;
	else if (isinf(x))
	{
		if (x > 0)
			st->nposinf++;
		else
			st->nneginf++;
	}
	else if (st->n == 0)
	{
		st->n = 1;
		st->shift = x;
		st->s1 = DDFromDouble(0.0);
		st->s2 = DDFromDouble(0.0);
	}
	else
	{
		DDouble		d = DDTwoSum(x, -st->shift);

		st->n++;
		st->s1 = DDAdd(st->s1, d);
		st->s2 = DDAdd(st->s2, DDSquare(d));
		/* finite inputs gave infinite sums: report it as float8_accum does */
		if (!isfinite(st->s1.hi) || !isfinite(st->s2.hi))
			float_overflow_error();
	}
	RollingReanchor(st);
}

/* Removes one non-NULL value, the oldest one in the frame. */
void
RollingRemove(RollingState *st, double x)
{
	if (isnan(x))
		st->nnan--;
	else if (isinf(x))
	{
		if (x > 0)
			st->nposinf--;
		else
			st->nneginf--;
	}
	else if (--st->n == 0)
	{
		st->s1 = DDFromDouble(0.0);
		st->s2 = DDFromDouble(0.0);
	}
	else
	{
		DDouble		d = DDTwoSum(x, -st->shift);

		st->s1 = DDSub(st->s1, d);
		st->s2 = DDSub(st->s2, DDSquare(d));
	}

	/* the run is the newest values; removal takes the oldest */
	st->run = Min(st->run, RollingCount(st));
	RollingReanchor(st);
}

/*
 * If the frame holds NaN or an infinity, the sum or mean the built-ins give
 * (NaN, or the infinity): sets *result and returns true.
 */
static bool
RollingNonFinite(RollingState *st, double *result)
{
	if (st->nnan > 0 || (st->nposinf > 0 && st->nneginf > 0))
		*result = get_float8_nan();
	else if (st->nposinf > 0)
		*result = get_float8_infinity();
	else if (st->nneginf > 0)
		*result = -get_float8_infinity();
	else
		return false;
	return true;
}

/* The sum of squared deviations from the mean, never negative. */
static double
RollingM2(RollingState *st)
{
	DDouble		m2;
	double		r;

	if (st->n < 2)
		return 0.0;
	m2 = DDSub(st->s2, DDDivD(DDMul(st->s1, st->s1), (double) st->n));
	r = DDToDouble(m2);
	return r > 0.0 ? r : 0.0;
}

PG_FUNCTION_INFO_V1(rolling_accum);

/* SQL streamml.rolling_accum(internal, float8): forward transition. */
Datum
rolling_accum(PG_FUNCTION_ARGS)
{
	RollingState *st = RollingGetState(fcinfo);

	if (!PG_ARGISNULL(1))
		RollingAdd(st, PG_GETARG_FLOAT8(1));
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(rolling_retract);

/* SQL streamml.rolling_retract(internal, float8): inverse transition. */
Datum
rolling_retract(PG_FUNCTION_ARGS)
{
	RollingState *st = RollingGetState(fcinfo);

	if (!PG_ARGISNULL(1))
	{
		/* the value must have been added: else ask for a restart */
		if (RollingCount(st) == 0)
			PG_RETURN_NULL();
		RollingRemove(st, PG_GETARG_FLOAT8(1));
	}
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(rolling_combine);

/* SQL streamml.rolling_combine(internal, internal): merges partial states. */
Datum
rolling_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	RollingState *a;
	RollingState *b;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "rolling_combine called in non-aggregate context");

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	b = (RollingState *) PG_GETARG_POINTER(1);
	if (PG_ARGISNULL(0))
	{
		a = (RollingState *) MemoryContextAlloc(aggcontext,
												sizeof(RollingState));
		*a = *b;
		PG_RETURN_POINTER(a);
	}
	a = (RollingState *) PG_GETARG_POINTER(0);

	if (RollingCount(b) == 0)
		PG_RETURN_POINTER(a);

	/* the trailing run of a followed by b */
	if (b->run == RollingCount(b) && RollingCount(a) > 0 &&
		a->last == b->last)
		a->run += b->run;
	else
		a->run = b->run;
	a->last = b->last;

	if (b->n > 0)
	{
		if (a->n == 0)
		{
			a->shift = b->shift;
			a->s1 = b->s1;
			a->s2 = b->s2;
		}
		else
		{
			DDouble		s1 = b->s1;
			DDouble		s2 = b->s2;

			RollingMoveShift(&s1, &s2, b->n, b->shift, a->shift);
			a->s1 = DDAdd(a->s1, s1);
			a->s2 = DDAdd(a->s2, s2);
			if (!isfinite(a->s1.hi) || !isfinite(a->s2.hi))
				float_overflow_error();
		}
	}
	a->n += b->n;
	a->nnan += b->nnan;
	a->nposinf += b->nposinf;
	a->nneginf += b->nneginf;
	RollingReanchor(a);
	PG_RETURN_POINTER(a);
}

PG_FUNCTION_INFO_V1(rolling_serialize);

/* SQL streamml.rolling_serialize(internal): the state as bytea. */
Datum
rolling_serialize(PG_FUNCTION_ARGS)
{
	RollingState *st = (RollingState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint64(&buf, st->n);
	pq_sendint64(&buf, st->nnan);
	pq_sendint64(&buf, st->nposinf);
	pq_sendint64(&buf, st->nneginf);
	pq_sendfloat8(&buf, st->shift);
	pq_sendfloat8(&buf, st->s1.hi);
	pq_sendfloat8(&buf, st->s1.lo);
	pq_sendfloat8(&buf, st->s2.hi);
	pq_sendfloat8(&buf, st->s2.lo);
	pq_sendfloat8(&buf, st->last);
	pq_sendint64(&buf, st->run);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(rolling_deserialize);

/* SQL streamml.rolling_deserialize(bytea, internal): the state back. */
Datum
rolling_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	RollingState *st = (RollingState *) palloc(sizeof(RollingState));
	StringInfoData buf;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "rolling_deserialize called in non-aggregate context");

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
	st->n = pq_getmsgint64(&buf);
	st->nnan = pq_getmsgint64(&buf);
	st->nposinf = pq_getmsgint64(&buf);
	st->nneginf = pq_getmsgint64(&buf);
	st->shift = pq_getmsgfloat8(&buf);
	st->s1.hi = pq_getmsgfloat8(&buf);
	st->s1.lo = pq_getmsgfloat8(&buf);
	st->s2.hi = pq_getmsgfloat8(&buf);
	st->s2.lo = pq_getmsgfloat8(&buf);
	st->last = pq_getmsgfloat8(&buf);
	st->run = pq_getmsgint64(&buf);
	pq_getmsgend(&buf);
	pfree(buf.data);
	PG_RETURN_POINTER(st);
}

/*
 * The value of one of the rolling aggregates over the state's frame, as its
 * final function gives it; false for SQL NULL (an empty frame, too few
 * values for a variance).  Shared with the feature tables (src/scoring).
 */
bool
RollingResult(RollingState *st, RollingKind kind, double *result)
{
	int			ddof = (kind == ROLLING_VAR || kind == ROLLING_STDDEV) ? 1 : 0;

	if (st == NULL || RollingCount(st) == 0)
		return false;
	if (kind == ROLLING_SUM || kind == ROLLING_MEAN)
	{
		if (RollingNonFinite(st, result))
			return true;
		if (kind == ROLLING_SUM)
		{
			*result = DDToDouble(DDAdd(DDTwoProd((double) st->n, st->shift),
									   st->s1));
			/* finite values: an infinite or NaN (inf - inf) sum overflowed */
			if (!isfinite(*result))
				float_overflow_error();
		}
		else
			*result = DDToDouble(DDAdd(DDFromDouble(st->shift),
									   DDDivD(st->s1, (double) st->n)));
		return true;
	}
	/* variances: NULL below ddof + 1 values, NaN with NaN or Inf in the frame */
	if (RollingCount(st) <= ddof)
		return false;
	if (st->n < RollingCount(st))
		*result = get_float8_nan();
	else
		*result = RollingM2(st) / (double) (st->n - ddof);
	if (kind == ROLLING_STDDEV || kind == ROLLING_STDDEV_POP)
		*result = sqrt(*result);
	return true;
}

/* The result of a final function call for kind. */
static Datum
RollingFinal(FunctionCallInfo fcinfo, RollingKind kind)
{
	double		result;

	if (PG_ARGISNULL(0) ||
		!RollingResult((RollingState *) PG_GETARG_POINTER(0), kind, &result))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(result);
}

PG_FUNCTION_INFO_V1(rolling_sum_final);

/* SQL streamml.rolling_sum_final(internal): the sum, like sum(float8). */
Datum
rolling_sum_final(PG_FUNCTION_ARGS)
{
	return RollingFinal(fcinfo, ROLLING_SUM);
}

PG_FUNCTION_INFO_V1(rolling_mean_final);

/* SQL streamml.rolling_mean_final(internal): the mean, like avg(float8). */
Datum
rolling_mean_final(PG_FUNCTION_ARGS)
{
	return RollingFinal(fcinfo, ROLLING_MEAN);
}

PG_FUNCTION_INFO_V1(rolling_var_final);

/* SQL streamml.rolling_var_final(internal): like var_samp(float8). */
Datum
rolling_var_final(PG_FUNCTION_ARGS)
{
	return RollingFinal(fcinfo, ROLLING_VAR);
}

PG_FUNCTION_INFO_V1(rolling_var_pop_final);

/* SQL streamml.rolling_var_pop_final(internal): like var_pop(float8). */
Datum
rolling_var_pop_final(PG_FUNCTION_ARGS)
{
	return RollingFinal(fcinfo, ROLLING_VAR_POP);
}

PG_FUNCTION_INFO_V1(rolling_stddev_final);

/* SQL streamml.rolling_stddev_final(internal): like stddev_samp(float8). */
Datum
rolling_stddev_final(PG_FUNCTION_ARGS)
{
	return RollingFinal(fcinfo, ROLLING_STDDEV);
}

PG_FUNCTION_INFO_V1(rolling_stddev_pop_final);

/* SQL streamml.rolling_stddev_pop_final(internal): like stddev_pop(float8). */
Datum
rolling_stddev_pop_final(PG_FUNCTION_ARGS)
{
	return RollingFinal(fcinfo, ROLLING_STDDEV_POP);
}
