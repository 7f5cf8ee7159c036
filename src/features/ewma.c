/*
 * ewma.c
 *		ewma(x, alpha) and ewma(x, ts, half_life): exponentially weighted
 *		means over a window frame, O(1) per row over a sliding frame.
 *
 * Both are the weighted mean sum(w_i x_i) / sum(w_i) of the frame's rows,
 * with weights falling exponentially with the distance to the newest row:
 * w = (1 - alpha)^k for the row k rows before the newest (the definition of
 * pandas' ewm(alpha=...).mean(), "adjust=True"), or w = 2^(-dt / half_life)
 * for a row dt older than the newest row.  Row distance depends on the
 * order rows arrive in, so ewma(x, alpha) needs ORDER BY (in the window, or
 * inside the aggregate call under GROUP BY) and has no combine function; the
 * time-decayed one depends only on the timestamps, so it combines.
 *
 * Weights are kept relative to an anchor position p0 (a row number, or a
 * timestamp in microseconds): w(p) = exp(rate * (p - p0)), rate = -ln(1 -
 * alpha) or ln 2 / half_life.  A row is added with its weight and removed
 * with the very same weight, recomputed from the same p and p0, so in the
 * double-double sums the removal cancels the addition exactly.  As the
 * newest position runs ahead, weights grow; before they could overflow the
 * sums are rescaled onto a new anchor (the newest row, weight 1), so old
 * rows' weights shrink towards zero and underflow harmlessly.  Only the rows
 * present at a rescale see their weights rounded once, which leaves a
 * residue of the order of 1e-16 of the mean that then fades away as newer
 * rows' weights grow.
 *
 * NaN and infinities are counted apart, as in rolling.c: the result is NaN
 * or infinite while such a value is in the frame, like avg(float8).
 */
#include "postgres.h"

#include <math.h>

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/float.h"
#include "utils/timestamp.h"

#include "features/ddouble.h"
#include "features/window_state.h"

/* Rescale the sums before any weight exceeds exp(EWMA_MAX_LOG_WEIGHT). */
#define EWMA_MAX_LOG_WEIGHT 64.0


/* The state passed in, or a new empty one in the aggregate's context. */
static EwmaState *
EwmaGetState(FunctionCallInfo fcinfo, double param, double rate)
{
	MemoryContext aggcontext;
	EwmaState  *st;

	if (!PG_ARGISNULL(0))
	{
		st = (EwmaState *) PG_GETARG_POINTER(0);
		if (st->param != param)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("ewma decay parameter must be the same for every row")));
		return st;
	}

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "ewma transition called in non-aggregate context");
	st = (EwmaState *) MemoryContextAllocZero(aggcontext, sizeof(EwmaState));
	st->param = param;
	st->rate = rate;
	return st;
}

/* The weight of the row at position p. */
static inline double
EwmaWeight(EwmaState *st, int64 p)
{
	return exp(st->rate * (double) (p - st->anchor));
}

/* Multiplies the sums by exp(rate * (anchor - p)) and makes p the anchor. */
static void
EwmaRescale(EwmaState *st, int64 p)
{
	double		f = exp(st->rate * (double) (st->anchor - p));

	st->num = DDMulD(st->num, f);
	st->den = DDMulD(st->den, f);
	st->anchor = p;
}

/* Adds a non-NULL value at position p. */
void
EwmaAdd(EwmaState *st, double x, int64 p)
{
	if (st->count == 0)
	{
		st->anchor = p;
		st->num = DDFromDouble(0.0);
		st->den = DDFromDouble(0.0);
	}
	else if (st->rate * (double) (p - st->anchor) > EWMA_MAX_LOG_WEIGHT)
		EwmaRescale(st, p);

	st->count++;
	if (isnan(x))
		st->nnan++;
	else if (isinf(x))
	{
		if (x > 0)
			st->nposinf++;
		else
			st->nneginf++;
	}
	else
	{
		double		w = EwmaWeight(st, p);

		st->nfinite++;
		st->num = DDAdd(st->num, DDTwoProd(w, x));
		st->den = DDAdd(st->den, DDFromDouble(w));
		if (!isfinite(st->num.hi))
			float_overflow_error();
	}
}

/* Removes a non-NULL value at position p. */
static void
EwmaRemove(EwmaState *st, double x, int64 p)
{
	st->count--;
	if (isnan(x))
		st->nnan--;
	else if (isinf(x))
	{
		if (x > 0)
			st->nposinf--;
		else
			st->nneginf--;
	}
	else if (--st->nfinite == 0)
	{
		st->num = DDFromDouble(0.0);
		st->den = DDFromDouble(0.0);
	}
	else
	{
		double		w = EwmaWeight(st, p);

		st->num = DDSub(st->num, DDTwoProd(w, x));
		st->den = DDSub(st->den, DDFromDouble(w));
	}
}

/* The rate of ewma(x, alpha), checking alpha. */
double
EwmaAlphaRate(double alpha)
{
	if (!(alpha > 0.0 && alpha < 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ewma alpha must be between 0 and 1, exclusive"),
				 errdetail("The alpha given is %g.", alpha),
				 alpha >= 1.0 ?
				 errhint("With alpha = 1 only the newest row would count: use the value itself.") : 0));
	return -log1p(-alpha);
}

/* The half-life in microseconds, checking it. */
double
EwmaHalfLife(Interval *half_life)
{
	double		usecs;

	if (half_life->month != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ewma half-life must not contain months or years"),
				 errhint("Write the half-life in days or smaller units.")));
	usecs = (double) half_life->day * USECS_PER_DAY + (double) half_life->time;
	if (usecs <= 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ewma half-life must be positive")));
	return usecs;
}

PG_FUNCTION_INFO_V1(ewma_accum);

/* SQL streamml.ewma_accum(internal, float8, float8): forward transition. */
Datum
ewma_accum(PG_FUNCTION_ARGS)
{
	EwmaState  *st;
	double		alpha;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	alpha = PG_GETARG_FLOAT8(2);
	st = EwmaGetState(fcinfo, alpha,
					  PG_ARGISNULL(0) ? EwmaAlphaRate(alpha) : 0.0);
	EwmaAdd(st, PG_GETARG_FLOAT8(1), st->added++);
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(ewma_retract);

/* SQL streamml.ewma_retract(internal, float8, float8): inverse transition. */
Datum
ewma_retract(PG_FUNCTION_ARGS)
{
	EwmaState  *st;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();	/* nothing was added: restarting is free */
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (EwmaState *) PG_GETARG_POINTER(0);
	if (st->count == 0)
		PG_RETURN_NULL();		/* not the queue we were promised: restart */
	EwmaRemove(st, PG_GETARG_FLOAT8(1), st->removed++);
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(ewma_time_accum);

/*
 * SQL streamml.ewma_time_accum(internal, float8, timestamptz, interval):
 * forward transition of the time-decayed ewma.
 */
Datum
ewma_time_accum(PG_FUNCTION_ARGS)
{
	EwmaState  *st;
	TimestampTz ts;
	double		half_life;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	ts = PG_GETARG_TIMESTAMPTZ(2);
	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("ewma timestamp must be finite")));
	half_life = EwmaHalfLife(PG_GETARG_INTERVAL_P(3));
	st = EwmaGetState(fcinfo, half_life, M_LN2 / half_life);
	EwmaAdd(st, PG_GETARG_FLOAT8(1), ts);
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(ewma_time_retract);

/*
 * SQL streamml.ewma_time_retract(internal, float8, timestamptz, interval):
 * inverse transition of the time-decayed ewma.
 */
Datum
ewma_time_retract(PG_FUNCTION_ARGS)
{
	EwmaState  *st;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (EwmaState *) PG_GETARG_POINTER(0);
	if (st->count == 0)
		PG_RETURN_NULL();
	EwmaRemove(st, PG_GETARG_FLOAT8(1), PG_GETARG_TIMESTAMPTZ(2));
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(ewma_combine);

/* SQL streamml.ewma_combine(internal, internal): merges time-decayed states. */
Datum
ewma_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	EwmaState  *a;
	EwmaState  *b;
	DDouble		num;
	DDouble		den;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "ewma_combine called in non-aggregate context");

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_POINTER(PG_GETARG_POINTER(0));
	}
	b = (EwmaState *) PG_GETARG_POINTER(1);
	if (PG_ARGISNULL(0))
	{
		a = (EwmaState *) MemoryContextAlloc(aggcontext, sizeof(EwmaState));
		*a = *b;
		PG_RETURN_POINTER(a);
	}
	a = (EwmaState *) PG_GETARG_POINTER(0);
	if (b->count == 0)
		PG_RETURN_POINTER(a);
	if (a->count == 0)
	{
		*a = *b;
		PG_RETURN_POINTER(a);
	}
	if (a->param != b->param)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ewma decay parameter must be the same for every row")));

	/* bring both onto the later anchor, then add */
	num = b->num;
	den = b->den;
	if (b->anchor > a->anchor)
		EwmaRescale(a, b->anchor);
	else if (b->anchor < a->anchor)
	{
		double		f = exp(b->rate * (double) (b->anchor - a->anchor));

		num = DDMulD(num, f);
		den = DDMulD(den, f);
	}
	a->num = DDAdd(a->num, num);
	a->den = DDAdd(a->den, den);
	a->count += b->count;
	a->nfinite += b->nfinite;
	a->nnan += b->nnan;
	a->nposinf += b->nposinf;
	a->nneginf += b->nneginf;
	PG_RETURN_POINTER(a);
}

PG_FUNCTION_INFO_V1(ewma_serialize);

/* SQL streamml.ewma_serialize(internal): the state as bytea. */
Datum
ewma_serialize(PG_FUNCTION_ARGS)
{
	EwmaState  *st = (EwmaState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendfloat8(&buf, st->param);
	pq_sendfloat8(&buf, st->rate);
	pq_sendint64(&buf, st->count);
	pq_sendint64(&buf, st->nfinite);
	pq_sendint64(&buf, st->nnan);
	pq_sendint64(&buf, st->nposinf);
	pq_sendint64(&buf, st->nneginf);
	pq_sendint64(&buf, st->added);
	pq_sendint64(&buf, st->removed);
	pq_sendint64(&buf, st->anchor);
	pq_sendfloat8(&buf, st->num.hi);
	pq_sendfloat8(&buf, st->num.lo);
	pq_sendfloat8(&buf, st->den.hi);
	pq_sendfloat8(&buf, st->den.lo);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(ewma_deserialize);

/* SQL streamml.ewma_deserialize(bytea, internal): the state back. */
Datum
ewma_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	EwmaState  *st = (EwmaState *) palloc(sizeof(EwmaState));
	StringInfoData buf;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "ewma_deserialize called in non-aggregate context");

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
	st->param = pq_getmsgfloat8(&buf);
	st->rate = pq_getmsgfloat8(&buf);
	st->count = pq_getmsgint64(&buf);
	st->nfinite = pq_getmsgint64(&buf);
	st->nnan = pq_getmsgint64(&buf);
	st->nposinf = pq_getmsgint64(&buf);
	st->nneginf = pq_getmsgint64(&buf);
	st->added = pq_getmsgint64(&buf);
	st->removed = pq_getmsgint64(&buf);
	st->anchor = pq_getmsgint64(&buf);
	st->num.hi = pq_getmsgfloat8(&buf);
	st->num.lo = pq_getmsgfloat8(&buf);
	st->den.hi = pq_getmsgfloat8(&buf);
	st->den.lo = pq_getmsgfloat8(&buf);
	pq_getmsgend(&buf);
	pfree(buf.data);
	PG_RETURN_POINTER(st);
}

/* The weighted mean, as ewma's final function gives it; false for NULL. */
bool
EwmaResult(EwmaState *st, double *result)
{
	if (st->count == 0)
		return false;
	if (st->nnan > 0 || (st->nposinf > 0 && st->nneginf > 0))
		*result = get_float8_nan();
	else if (st->nposinf > 0)
		*result = get_float8_infinity();
	else if (st->nneginf > 0)
		*result = -get_float8_infinity();

	/*
	 * Every weight underflowed: only possible when the frame's rows are all
	 * some 1000 half-lives older than a row that has left it (a window not
	 * ordered by time).  There is no meaningful mean to give.
	 */
	else if (!(st->den.hi > 0.0))
		return false;
	else
		*result = DDToDouble(DDDivD(st->num, DDToDouble(st->den)));
	return true;
}

PG_FUNCTION_INFO_V1(ewma_final);

/* SQL streamml.ewma_final(internal): the weighted mean. */
Datum
ewma_final(PG_FUNCTION_ARGS)
{
	double		result;

	if (PG_ARGISNULL(0) ||
		!EwmaResult((EwmaState *) PG_GETARG_POINTER(0), &result))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(result);
}
