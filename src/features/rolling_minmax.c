/*
 * rolling_minmax.c
 *		Moving-aggregate support of rolling_min and rolling_max: the minimum
 *		or maximum of a sliding window frame in amortized O(1) per row.
 *
 * A minimum cannot be "un-added", but it does not have to be: rows leave a
 * window frame in the order they entered it (nodeWindowAgg.c removes rows
 * from the frame head forward, RANGE and GROUPS frames included, and never
 * uses the inverse transition for frames with EXCLUDE), so the frame is a
 * queue and the classic monotonic deque applies.  The state keeps, oldest
 * first, only the rows that can still become the extreme: for min, a row is
 * useless once a newer row at least as small has arrived, since the newer
 * one stays in the frame longer.  So the kept values increase strictly from
 * front to back (decrease, for max); adding a row drops the useless ones
 * from the back, and the extreme is the front.  Each row is pushed and
 * dropped at most once, hence amortized O(1).
 *
 * Rows are numbered as they arrive, and a removal takes away row number
 * "removed", the oldest in the frame: the front is dropped if and only if it
 * is that row.  Matching by number rather than by value keeps duplicates
 * right.  Values are ordered like float8's btree opclass (NaN above
 * everything, as in min(float8) and max(float8)).
 *
 * GROUP BY and frames that start at UNBOUNDED PRECEDING use the plain
 * transition float8smaller/float8larger, which needs no deque.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/float.h"

#include "features/window_state.h"



#define MINMAX_INITIAL_CAPACITY 64

/* The entry i places from the front of the deque. */
#define MinMaxAt(st, i) \
	((st)->ring[((st)->head + (i)) & ((st)->capacity - 1)])

/* Makes st an empty state whose ring lives in context. */
void
MinMaxInit(MinMaxState *st, MemoryContext context)
{
	memset(st, 0, sizeof(MinMaxState));
	st->capacity = MINMAX_INITIAL_CAPACITY;
	st->ring = (MinMaxEntry *) MemoryContextAlloc(context,
												  sizeof(MinMaxEntry) * st->capacity);
	st->context = context;
}

/* Removes the oldest row added (with a non-NULL value). */
void
MinMaxRemoveOldest(MinMaxState *st)
{
	if (st->count > 0 && st->ring[st->head].seq == st->removed)
	{
		st->head = (st->head + 1) & (st->capacity - 1);
		st->count--;
	}
	st->removed++;
}

/* The state passed in, or a new empty one in the aggregate's context. */
static MinMaxState *
MinMaxGetState(FunctionCallInfo fcinfo)
{
	MemoryContext aggcontext;
	MinMaxState *st;

	if (!PG_ARGISNULL(0))
		return (MinMaxState *) PG_GETARG_POINTER(0);

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "rolling_min/max transition called in non-aggregate context");
	st = (MinMaxState *) MemoryContextAllocZero(aggcontext, sizeof(MinMaxState));
	st->capacity = MINMAX_INITIAL_CAPACITY;
	st->ring = (MinMaxEntry *) MemoryContextAlloc(aggcontext,
												  sizeof(MinMaxEntry) * st->capacity);
	st->context = aggcontext;
	return st;
}

/* Doubles the ring, keeping the entries in order from index 0. */
static void
MinMaxGrow(MinMaxState *st)
{
	MinMaxEntry *ring;
	int			i;

	ring = (MinMaxEntry *) MemoryContextAlloc(st->context,
											  sizeof(MinMaxEntry) * st->capacity * 2);
	for (i = 0; i < st->count; i++)
		ring[i] = MinMaxAt(st, i);
	pfree(st->ring);
	st->ring = ring;
	st->head = 0;
	st->capacity *= 2;
}

/*
 * Adds a row: drops the newer rows it makes useless, then queues it.  For
 * min, a kept row must be smaller than x; for max, larger.
 */
void
MinMaxAdd(MinMaxState *st, double x, bool is_max)
{
	while (st->count > 0)
	{
		double		back = MinMaxAt(st, st->count - 1).value;

		if (is_max ? float8_gt(back, x) : float8_lt(back, x))
			break;
		st->count--;
	}
	if (st->count == st->capacity)
		MinMaxGrow(st);
	MinMaxAt(st, st->count).value = x;
	MinMaxAt(st, st->count).seq = st->added++;
	st->count++;
}

PG_FUNCTION_INFO_V1(rolling_min_accum);

/* SQL streamml.rolling_min_accum(internal, float8): forward transition. */
Datum
rolling_min_accum(PG_FUNCTION_ARGS)
{
	MinMaxState *st = MinMaxGetState(fcinfo);

	if (!PG_ARGISNULL(1))
		MinMaxAdd(st, PG_GETARG_FLOAT8(1), false);
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(rolling_max_accum);

/* SQL streamml.rolling_max_accum(internal, float8): forward transition. */
Datum
rolling_max_accum(PG_FUNCTION_ARGS)
{
	MinMaxState *st = MinMaxGetState(fcinfo);

	if (!PG_ARGISNULL(1))
		MinMaxAdd(st, PG_GETARG_FLOAT8(1), true);
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(rolling_minmax_retract);

/*
 * SQL streamml.rolling_minmax_retract(internal, float8): inverse transition
 * of both, removing the oldest row of the frame.
 */
Datum
rolling_minmax_retract(PG_FUNCTION_ARGS)
{
	MinMaxState *st = MinMaxGetState(fcinfo);

	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);

	/* nothing to remove: not the queue we were promised, so restart */
	if (st->removed >= st->added)
		PG_RETURN_NULL();

	if (st->count > 0 && st->ring[st->head].seq == st->removed)
	{
		/* likewise if the row leaving is not the one that came first */
		if (float8_cmp_internal(st->ring[st->head].value,
								PG_GETARG_FLOAT8(1)) != 0)
			PG_RETURN_NULL();
		st->head = (st->head + 1) & (st->capacity - 1);
		st->count--;
	}
	st->removed++;
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(rolling_minmax_final);

/* SQL streamml.rolling_minmax_final(internal): the front of the deque. */
Datum
rolling_minmax_final(PG_FUNCTION_ARGS)
{
	MinMaxState *st;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (MinMaxState *) PG_GETARG_POINTER(0);
	if (st->count == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(st->ring[st->head].value);
}
