/*
 * hop.c
 *		hop(ts, size, slide, origin): the start of every hopping window that
 *		contains ts.
 *
 * Hopping windows have a fixed size and start every "slide", aligned on
 * origin like date_bin's bins: the windows are [origin + k slide,
 * origin + k slide + size) for every integer k.  When slide equals size they
 * are date_bin's tumbling windows; when slide is smaller they overlap and a
 * row belongs to ceil(size / slide) of them (or that minus one), so
 *
 *		SELECT w, avg(price) FROM ticks, streamml.hop(ts, '1 min', '10 s') w
 *		GROUP BY w
 *
 * gives one-minute averages every ten seconds.  When slide is larger than
 * size the windows leave gaps, and a row in a gap belongs to none.
 */
#include "postgres.h"

#include "common/int.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/timestamp.h"

typedef struct HopContext
{
	TimestampTz next;			/* the next start to return */
	int64		slide;			/* microseconds */
	int64		remaining;		/* starts still to return */
} HopContext;

/* An interval as microseconds; months are refused, as date_bin does. */
static int64
HopIntervalUsecs(Interval *span, const char *what)
{
	int64		usecs;

	if (span->month != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("hop %s must not contain months or years", what),
				 errhint("Write it in days or smaller units.")));
	if (pg_mul_s64_overflow(span->day, USECS_PER_DAY, &usecs) ||
		pg_add_s64_overflow(usecs, span->time, &usecs))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("hop %s out of range", what)));
	if (usecs <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hop %s must be positive", what)));
	return usecs;
}

/* Reports a window start that cannot be represented. */
static void
HopOutOfRange(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
			 errmsg("timestamp out of range")));
}

PG_FUNCTION_INFO_V1(hop);

/*
 * SQL streamml.hop(timestamptz, interval, interval, timestamptz): the window
 * starts, oldest first.
 */
Datum
hop(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	HopContext *hc;

	if (SRF_IS_FIRSTCALL())
	{
		TimestampTz ts = PG_GETARG_TIMESTAMPTZ(0);
		int64		size = HopIntervalUsecs(PG_GETARG_INTERVAL_P(1), "size");
		int64		slide = HopIntervalUsecs(PG_GETARG_INTERVAL_P(2), "slide");
		TimestampTz origin = PG_GETARG_TIMESTAMPTZ(3);
		int64		diff;
		int64		offset;
		TimestampTz latest;
		MemoryContext oldcontext;

		if (TIMESTAMP_NOT_FINITE(ts) || TIMESTAMP_NOT_FINITE(origin))
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("hop timestamps must be finite")));

		funcctx = SRF_FIRSTCALL_INIT();
		oldcontext = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		hc = (HopContext *) palloc(sizeof(HopContext));
		MemoryContextSwitchTo(oldcontext);
		funcctx->user_fctx = hc;

		/* the latest start at or before ts, and how far ts is past it */
		if (pg_sub_s64_overflow(ts, origin, &diff))
			HopOutOfRange();
		offset = diff % slide;
		if (offset < 0)
			offset += slide;
		latest = ts - offset;

		/* starts latest - k slide for k >= 0 while start + size > ts */
		hc->slide = slide;
		hc->remaining = size > offset ? (size - offset - 1) / slide + 1 : 0;
		if (hc->remaining > 0 &&
			(pg_mul_s64_overflow(hc->remaining - 1, slide, &diff) ||
			 pg_sub_s64_overflow(latest, diff, &hc->next) ||
			 !IS_VALID_TIMESTAMP(hc->next)))
			HopOutOfRange();
	}

	funcctx = SRF_PERCALL_SETUP();
	hc = (HopContext *) funcctx->user_fctx;
	if (hc->remaining > 0)
	{
		TimestampTz start = hc->next;

		if (--hc->remaining > 0)
			hc->next += hc->slide;	/* at most latest: no overflow */
		SRF_RETURN_NEXT(funcctx, TimestampTzGetDatum(start));
	}
	SRF_RETURN_DONE(funcctx);
}
