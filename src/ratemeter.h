/*
 * ratemeter.h
 *		The rows_per_second of streams, feature tables and scorers: one
 *		rule for the three views.
 *
 * Each committed batch adds its rows.  The rate is smoothed over about the
 * last second: a batch that comes dt seconds after the previous one moves
 * the rate towards its own rows / dt with weight min(dt, 1), so a steady
 * flow reads its rows per second, whatever its batch size.  Nothing is
 * known from the first batch alone (0), and a meter with no batch for 3 s
 * reads 0: the flow stopped.  The meter lives in shared memory, updated
 * and read under its owner's lock.
 */
#ifndef STREAMML_RATEMETER_H
#define STREAMML_RATEMETER_H

#include "utils/timestamp.h"

typedef struct RateMeter
{
	double		rate;			/* rows per second, smoothed */
	TimestampTz at;				/* the last batch; 0: none yet */
} RateMeter;

/* Accounts for a batch of rows committed at now. */
static inline void
RateMeterAdd(RateMeter *m, int64 rows, TimestampTz now)
{
	if (m->at != 0 && now > m->at)
	{
		double		dt = (double) (now - m->at) / USECS_PER_SEC;
		double		w = dt >= 1.0 ? 1.0 : dt;

		m->rate = m->rate * (1.0 - w) + ((double) rows / dt) * w;
	}
	m->at = now;
}

/* The rate at now: 0 once no batch came for 3 s. */
static inline double
RateMeterRead(const RateMeter *m, TimestampTz now)
{
	return (m->at == 0 || now - m->at > 3 * USECS_PER_SEC) ? 0.0 : m->rate;
}

#endif							/* STREAMML_RATEMETER_H */
