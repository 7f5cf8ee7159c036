/*
 * featurestate.c
 *		The window state of one partition of a feature table: O(1) amortized
 *		per row and feature, however long the window.
 *
 * A partition keeps a ring of its recent rows (order key and "of" values,
 * numbered from 0 in arrival order, late rows left out) and, per feature,
 * the state of the window aggregate that computes it (window_state.h: the
 * very states of rolling_*, rolling_min/max's monotonic deque,
 * rolling_slope and ewma) with the number of the oldest row in its frame.
 * A new row first takes out of each frame the rows that leave it, then
 * goes in, as nodeWindowAgg.c moves a frame head before it aggregates the
 * new row, so each feature equals the window function's value:
 *
 *	ROWS frame n	the frame holds the last n + 1 rows
 *	RANGE frame r	the frame holds the rows whose key >= key(current) - r,
 *					computed as in_range_* computes it
 *	lag n			the row n rows back in the ring (NULL before it)
 *	ewma			added once, never taken out (ROWS UNBOUNDED PRECEDING)
 *
 * Rows with equal keys go in by arrival: the frame of a row holds the rows
 * that arrived before it, never later ones.  The ring is trimmed after each
 * row to the oldest row any frame or lag can still need.
 */
#include "postgres.h"

#include <math.h>

#include "utils/float.h"

#include "scoring/features.h"

/* Microseconds from the Unix epoch to PostgreSQL's. */
#define UNIX_TO_PG_USECS_D 946684800000000.0

typedef struct FeatureAcc
{
	int64		start;			/* number of the oldest row in the frame */
	int64		count;			/* non-NULL values in the frame */
	union
	{
		RollingState r;
		MinMaxState m;
		SlopeState s;
		EwmaState e;
	}			u;
} FeatureAcc;

struct PartState
{
	int64		seq;			/* arrival_seq of the newest row, late ones too */
	bool		any;			/* a non-late row has come */
	double		newest;			/* its key */
	int64		head;			/* number of the oldest row in the ring */
	int64		next;			/* number the next row gets */
	int			cap;			/* ring size, a power of 2 */
	int			nof;
	double	   *keys;
	double	   *vals;			/* cap * nof */
	bool	   *nulls;
	FeatureAcc *acc;
	MemoryContext cxt;
};

#define RingKey(ps, no) ((ps)->keys[(no) & ((ps)->cap - 1)])
#define RingVal(ps, no, j) ((ps)->vals[((no) & ((ps)->cap - 1)) * (ps)->nof + (j)])
#define RingNull(ps, no, j) ((ps)->nulls[((no) & ((ps)->cap - 1)) * (ps)->nof + (j)])

/* An empty state for spec's features, in memory of context cxt. */
PartState *
PartStateCreate(FeatureSpec *spec, MemoryContext cxt)
{
	PartState  *ps = MemoryContextAllocZero(cxt, sizeof(PartState));

	ps->cxt = cxt;
	ps->nof = Max(spec->nof, 1);
	ps->cap = 16;
	ps->keys = MemoryContextAlloc(cxt, sizeof(double) * ps->cap);
	ps->vals = MemoryContextAlloc(cxt, sizeof(double) * ps->cap * ps->nof);
	ps->nulls = MemoryContextAlloc(cxt, sizeof(bool) * ps->cap * ps->nof);
	ps->acc = MemoryContextAllocZero(cxt, sizeof(FeatureAcc) * spec->nfeatures);
	PartStateReset(ps, spec);
	return ps;
}

/* Forgets every row: the state of a partition with no rows yet. */
void
PartStateReset(PartState *ps, FeatureSpec *spec)
{
	ps->seq = 0;
	ps->any = false;
	ps->head = ps->next = 0;
	for (int i = 0; i < spec->nfeatures; i++)
	{
		FeatureDef *f = &spec->features[i];
		FeatureAcc *a = &ps->acc[i];

		if ((f->fn == FN_MIN || f->fn == FN_MAX) && a->u.m.ring)
			pfree(a->u.m.ring);
		memset(a, 0, sizeof(FeatureAcc));
		if (f->fn == FN_MIN || f->fn == FN_MAX)
			MinMaxInit(&a->u.m, ps->cxt);
		else if (f->fn == FN_EWMA)
		{
			a->u.e.param = f->alpha > 0 ? f->alpha : f->half_life;
			a->u.e.rate = f->alpha > 0 ? EwmaAlphaRate(f->alpha) :
				M_LN2 / f->half_life;
		}
	}
}

/* The arrival_seq of the partition's newest row (0: none). */
int64
PartStateSeq(PartState *ps)
{
	return ps->seq;
}

/* Records that a row (a late one) took arrival_seq seq. */
void
PartStateSetSeq(PartState *ps, int64 seq)
{
	ps->seq = seq;
}

/* Whether a row with this key is late: below the partition's newest. */
bool
PartStateIsLate(PartState *ps, double key)
{
	return ps->any && key < ps->newest;
}

/*
 * Raises the partition's newest key to key if it is below (a rebuild found
 * late rows above its newest non-late one: see featureinsert.c's Refresh),
 * so that a row is late exactly when its key is below that of some row
 * kept before it.
 */
void
PartStateRaiseNewest(PartState *ps, double key)
{
	if (!ps->any || key > ps->newest)
	{
		ps->any = true;
		ps->newest = key;
	}
}

/* Makes room for one more row in the ring. */
static void
RingGrow(PartState *ps)
{
	int			cap = ps->cap * 2;
	double	   *keys = MemoryContextAlloc(ps->cxt, sizeof(double) * cap);
	double	   *vals = MemoryContextAlloc(ps->cxt, sizeof(double) * cap * ps->nof);
	bool	   *nulls = MemoryContextAlloc(ps->cxt, sizeof(bool) * cap * ps->nof);

	for (int64 no = ps->head; no < ps->next; no++)
	{
		keys[no & (cap - 1)] = RingKey(ps, no);
		for (int j = 0; j < ps->nof; j++)
		{
			vals[(no & (cap - 1)) * ps->nof + j] = RingVal(ps, no, j);
			nulls[(no & (cap - 1)) * ps->nof + j] = RingNull(ps, no, j);
		}
	}
	pfree(ps->keys);
	pfree(ps->vals);
	pfree(ps->nulls);
	ps->keys = keys;
	ps->vals = vals;
	ps->nulls = nulls;
	ps->cap = cap;
}

/* Slope's x: the order key in seconds (epoch seconds for timestamps). */
static inline double
SlopeX(FeatureSpec *spec, double key)
{
	if (spec->order_kind == ORDER_TIMESTAMP)
		return (key + UNIX_TO_PG_USECS_D) / 1000000.0;
	return key;
}

/* Takes row number no out of feature i's frame. */
static void
FrameRemove(PartState *ps, FeatureSpec *spec, int i, int64 no)
{
	FeatureDef *f = &spec->features[i];
	FeatureAcc *a = &ps->acc[i];
	double		x;

	if (f->of >= 0 && RingNull(ps, no, f->of))
		return;
	a->count--;
	x = f->of >= 0 ? RingVal(ps, no, f->of) : 0.0;
	switch (f->fn)
	{
		case FN_MIN:
		case FN_MAX:
			MinMaxRemoveOldest(&a->u.m);
			break;
		case FN_SLOPE:
			SlopeRemove(&a->u.s, SlopeX(spec, RingKey(ps, no)), x);
			break;
		case FN_COUNT:
			break;
		default:
			RollingRemove(&a->u.r, x);
			break;
	}
}

/* Puts row number no into feature i's frame. */
static void
FrameAdd(PartState *ps, FeatureSpec *spec, int i, int64 no)
{
	FeatureDef *f = &spec->features[i];
	FeatureAcc *a = &ps->acc[i];
	double		x;

	if (f->of >= 0 && RingNull(ps, no, f->of))
		return;
	a->count++;
	x = f->of >= 0 ? RingVal(ps, no, f->of) : 0.0;
	switch (f->fn)
	{
		case FN_MIN:
			MinMaxAdd(&a->u.m, x, false);
			break;
		case FN_MAX:
			MinMaxAdd(&a->u.m, x, true);
			break;
		case FN_SLOPE:
			SlopeAdd(&a->u.s, SlopeX(spec, RingKey(ps, no)), x);
			break;
		case FN_EWMA:
			if (f->alpha > 0)
				EwmaAdd(&a->u.e, x, a->u.e.added++);
			else
				EwmaAdd(&a->u.e, x, (int64) RingKey(ps, no));
			break;
		case FN_COUNT:
			break;
		default:
			RollingAdd(&a->u.r, x);
			break;
	}
}

/* Feature i's value for the newest row; false for NULL. */
static bool
FeatureValue(PartState *ps, FeatureSpec *spec, int i, double *out)
{
	FeatureDef *f = &spec->features[i];
	FeatureAcc *a = &ps->acc[i];
	int64		cur = ps->next - 1;
	int64		back;
	double		x;
	double		lag;

	switch (f->fn)
	{
		case FN_LAG:
		case FN_DELTA:
		case FN_PCT_CHANGE:
			back = cur - f->n;
			if (back < 0 || RingNull(ps, back, f->of))
				return false;
			lag = RingVal(ps, back, f->of);
			if (f->fn == FN_LAG)
			{
				*out = lag;
				return true;
			}
			if (RingNull(ps, cur, f->of))
				return false;
			x = RingVal(ps, cur, f->of);
			if (f->fn == FN_DELTA)
				*out = float8_mi(x, lag);
			else
			{
				if (lag == 0.0)
					return false;	/* NULLIF(lag, 0) */
				*out = float8_mi(float8_div(x, lag), 1.0);
			}
			return true;
		case FN_MEAN:
			return RollingResult(&a->u.r, ROLLING_MEAN, out);
		case FN_SUM:
			return RollingResult(&a->u.r, ROLLING_SUM, out);
		case FN_VAR:
			return RollingResult(&a->u.r, ROLLING_VAR, out);
		case FN_VAR_POP:
			return RollingResult(&a->u.r, ROLLING_VAR_POP, out);
		case FN_STDDEV:
			return RollingResult(&a->u.r, ROLLING_STDDEV, out);
		case FN_STDDEV_POP:
			return RollingResult(&a->u.r, ROLLING_STDDEV_POP, out);
		case FN_MIN:
		case FN_MAX:
			if (a->u.m.count == 0)
				return false;
			*out = a->u.m.ring[a->u.m.head].value;
			return true;
		case FN_COUNT:
			*out = (double) a->count;
			return true;
		case FN_SLOPE:
			return SlopeResult(&a->u.s, out);
		case FN_EWMA:
			return EwmaResult(&a->u.e, out);
	}
	return false;
}

/*
 * Adds a row that is not late (key, "of" values vals/nulls) and, when out
 * is not NULL, sets its features (out/outnull, one per feature).
 */
void
PartStateAdd(PartState *ps, FeatureSpec *spec, double key, double *vals,
			 bool *nulls, double *out, bool *outnull)
{
	int64		no;
	int64		keep_from;

	if (ps->next - ps->head == ps->cap)
		RingGrow(ps);
	no = ps->next++;
	RingKey(ps, no) = key;
	for (int j = 0; j < spec->nof; j++)
	{
		RingVal(ps, no, j) = vals[j];
		RingNull(ps, no, j) = nulls[j];
	}
	ps->any = true;
	ps->newest = key;

	keep_from = no;
	for (int i = 0; i < spec->nfeatures; i++)
	{
		FeatureDef *f = &spec->features[i];
		FeatureAcc *a = &ps->acc[i];

		if (f->frame == FRAME_ROWS)
		{
			while (a->start < no - f->preceding)
				FrameRemove(ps, spec, i, a->start++);
		}
		else if (f->frame == FRAME_RANGE)
		{
			double		lo = key - f->range;

			while (a->start < no && RingKey(ps, a->start) < lo)
				FrameRemove(ps, spec, i, a->start++);
		}
		if (f->fn != FN_LAG && f->fn != FN_DELTA && f->fn != FN_PCT_CHANGE)
			FrameAdd(ps, spec, i, no);
		if (out)
			outnull[i] = !FeatureValue(ps, spec, i, &out[i]);

		if (f->frame != FRAME_PARTITION)
			keep_from = Min(keep_from, a->start);
		else if (f->fn != FN_EWMA)
			keep_from = Min(keep_from, no + 1 - f->n);
	}
	if (keep_from > ps->head)
		ps->head = keep_from;
}
