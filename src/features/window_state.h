/*
 * window_state.h
 *		The states of the window aggregates (rolling.c, rolling_minmax.c,
 *		rolling_slope.c, ewma.c), shared with the feature tables of
 *		src/scoring, which keep the same states per partition so that their
 *		features are the aggregates' values to the last bit of the method.
 */
#ifndef STREAMML_WINDOW_STATE_H
#define STREAMML_WINDOW_STATE_H

#include "features/ddouble.h"
#include "datatype/timestamp.h"

typedef struct RollingState
{
	int64		n;				/* finite values in the frame */
	int64		nnan;			/* NaN values */
	int64		nposinf;		/* +Infinity values */
	int64		nneginf;		/* -Infinity values */
	double		shift;			/* s: the sums are over x - s */
	DDouble		s1;				/* sum(x - s) over the finite values */
	DDouble		s2;				/* sum((x - s)^2) over the finite values */
	double		last;			/* the value added last */
	int64		run;			/* how many values at the end equal last */
} RollingState;

/* Every non-NULL value in the frame, finite or not. */
#define RollingCount(st) \
	((st)->n + (st)->nnan + (st)->nposinf + (st)->nneginf)

/* Which of the rolling aggregates a result is for. */
typedef enum RollingKind
{
	ROLLING_SUM,
	ROLLING_MEAN,
	ROLLING_VAR,
	ROLLING_VAR_POP,
	ROLLING_STDDEV,
	ROLLING_STDDEV_POP
} RollingKind;

extern void RollingAdd(RollingState *st, double x);
extern void RollingRemove(RollingState *st, double x);
extern bool RollingResult(RollingState *st, RollingKind kind, double *result);

typedef struct MinMaxEntry
{
	double		value;
	int64		seq;			/* arrival number of the row */
} MinMaxEntry;

typedef struct MinMaxState
{
	int64		added;			/* arrival number of the next row */
	int64		removed;		/* arrival number of the oldest row */
	int			head;			/* deque: first entry in the ring */
	int			count;			/* deque: entries in use */
	int			capacity;		/* deque: size of the ring, a power of 2 */
	MinMaxEntry *ring;
	MemoryContext context;		/* where the ring lives */
} MinMaxState;

extern void MinMaxInit(MinMaxState *st, MemoryContext context);
extern void MinMaxAdd(MinMaxState *st, double x, bool is_max);
extern void MinMaxRemoveOldest(MinMaxState *st);

typedef struct SlopeState
{
	int64		n;				/* rows with finite x and y: in the sums */
	int64		nxbad;			/* rows whose x is NaN or infinite */
	int64		nybad;			/* rows with a finite x and a non-finite y */
	double		sx;				/* shift of x */
	double		sy;				/* shift of y */
	DDouble		x1;				/* sum(x - sx) */
	DDouble		y1;				/* sum(y - sy) */
	DDouble		xx;				/* sum((x - sx)^2) */
	DDouble		yy;				/* sum((y - sy)^2) */
	DDouble		xy;				/* sum((x - sx) * (y - sy)) */
	double		lastx;			/* x of the row added last */
	double		lasty;			/* y of the row added last */
	int64		runx;			/* how many rows at the end have x == lastx */
	int64		runy;			/* how many rows at the end have y == lasty */
} SlopeState;

/* Every row in the frame with two non-NULL values. */
#define SlopeCount(st) ((st)->n + (st)->nxbad + (st)->nybad)

extern void SlopeAdd(SlopeState *st, double x, double y);
extern void SlopeRemove(SlopeState *st, double x, double y);
extern bool SlopeResult(SlopeState *st, double *result);

typedef struct EwmaState
{
	double		param;			/* alpha, or half-life in microseconds */
	double		rate;			/* log-weight gained per unit of position */
	int64		count;			/* non-NULL rows in the frame */
	int64		nfinite;		/* of which finite */
	int64		nnan;			/* of which NaN */
	int64		nposinf;		/* of which +Infinity */
	int64		nneginf;		/* of which -Infinity */
	int64		added;			/* by row: position of the next row */
	int64		removed;		/* by row: position of the oldest row */
	int64		anchor;			/* the position whose weight is 1 */
	DDouble		num;			/* sum(w x) over the finite values */
	DDouble		den;			/* sum(w) over the finite values */
} EwmaState;

extern void EwmaAdd(EwmaState *st, double x, int64 p);
extern double EwmaAlphaRate(double alpha);
extern double EwmaHalfLife(Interval *half_life);
extern bool EwmaResult(EwmaState *st, double *result);

#endif							/* STREAMML_WINDOW_STATE_H */
