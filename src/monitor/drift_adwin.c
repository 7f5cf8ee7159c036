/*
 * drift_adwin.c
 *		ADWIN, adaptive windowing (Bifet and Gavalda, "Learning from
 *		time-changing data with adaptive windowing", SDM 2007), after
 *		River's drift.ADWIN and its Cython helper AdaptiveWindowing
 *		(river/drift/adwin_c.pyx, River main, 2025-2026, the version with
 *		C-array buckets that its test_adwin_regression.py pins).
 *
 * The window is kept compressed as rows of buckets (the exponential
 * histogram of ADWIN2): row r holds up to max_buckets buckets of 2^r
 * values each, as a total and a variance (sum of squared deviations);
 * when a row gets max_buckets + 1 buckets its two oldest merge into one
 * bucket of the next row.  Every clock values, once the window is wider
 * than grace_period, each cut of the window into an older part W0 and a
 * newer part W1 at a bucket boundary (oldest first) is tested:
 *		|mean(W0) - mean(W1)| > sqrt(2 m var delta') + 2/3 delta' m,
 *		m = 1 / (n0 - min_window_length + 1) + 1 / (n1 - min_window_length + 1),
 *		delta' = ln(2 ln(width) / delta), var = window variance / width,
 * with both parts at least min_window_length long.  A cut that holds drops
 * the oldest bucket and the test starts again; a drift is reported when
 * any cut held.  As in River, the whole detector resets at the update after
 * a drift.
 *
 * Arithmetic follows River's statement by statement (same operations in
 * the same order), so the same input gives the same detections.
 */
#include "postgres.h"

#include <math.h>

#include "options.h"
#include "monitor/drift.h"

/* More rows than any window can need: 2^62 values. */
#define ADWIN_MAX_ROWS 62

typedef struct AdwinRow
{
	int			count;			/* buckets in use; index 0 is the oldest */
	double	   *total;			/* max_buckets + 1 slots each */
	double	   *variance;
} AdwinRow;

typedef struct Adwin
{
	DriftDetector head;
	double		delta;
	int64		clock;
	int			max_buckets;
	int64		min_window_length;
	int64		grace_period;
	bool		drift;
	double		total;
	double		variance;
	double		width;
	int64		tick;
	int			nrows;			/* rows in use; row 0 the newest, finest */
	AdwinRow	rows[ADWIN_MAX_ROWS];
} Adwin;

/* River's ADWIN._reset: a new, empty AdaptiveWindowing. */
static void
AdwinReset(Adwin *a)
{
	a->drift = false;
	a->total = 0.0;
	a->variance = 0.0;
	a->width = 0.0;
	a->tick = 0;
	for (int r = 0; r < ADWIN_MAX_ROWS; r++)
		a->rows[r].count = 0;
	a->nrows = 1;
}

/* An ADWIN detector with River's defaults for absent parameters. */
static DriftDetector *
AdwinCreate(Jsonb *params)
{
	Adwin	   *a = palloc0(sizeof(Adwin));
	double	   *slots;

	a->head.method = &DriftAdwinMethod;
	a->delta = OptionNumber(params, "delta", 0.002, 0.0, 1.0);
	if (a->delta <= 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"delta\" must be greater than 0")));
	a->clock = OptionInteger(params, "clock", 32, 1, PG_INT32_MAX);
	a->max_buckets = (int) OptionInteger(params, "max_buckets", 5, 1, 1000);
	a->min_window_length = OptionInteger(params, "min_window_length", 5, 1, PG_INT64_MAX);
	a->grace_period = OptionInteger(params, "grace_period", 10, 0, PG_INT64_MAX);

	/* every row's slots at once: update() allocates nothing */
	slots = palloc0(sizeof(double) * 2 * (a->max_buckets + 1) * ADWIN_MAX_ROWS);
	for (int r = 0; r < ADWIN_MAX_ROWS; r++)
	{
		a->rows[r].total = slots + 2 * r * (a->max_buckets + 1);
		a->rows[r].variance = a->rows[r].total + (a->max_buckets + 1);
	}
	AdwinReset(a);
	return &a->head;
}

/* Bucket.insert_data */
static inline void
RowInsert(AdwinRow *row, double total, double variance)
{
	row->total[row->count] = total;
	row->variance[row->count] = variance;
	row->count++;
}

/* Bucket.compress: drops the n oldest buckets of a row. */
static inline void
RowCompress(AdwinRow *row, int n)
{
	int			remaining = row->count - n;

	if (remaining > 0)
	{
		memmove(row->total, row->total + n, remaining * sizeof(double));
		memmove(row->variance, row->variance + n, remaining * sizeof(double));
	}
	row->count -= n;
}

/* AdaptiveWindowing._compress_buckets */
static void
AdwinCompress(Adwin *a)
{
	for (int idx = 0; idx < a->nrows; idx++)
	{
		AdwinRow   *row = &a->rows[idx];
		AdwinRow   *next;
		double		n1,
					mu1,
					mu2,
					temp,
					total12,
					v12;

		if (row->count != a->max_buckets + 1)
			break;
		if (idx + 1 >= a->nrows)
		{
			if (a->nrows >= ADWIN_MAX_ROWS)
				elog(ERROR, "ADWIN window has too many rows");
			a->rows[a->nrows].count = 0;
			a->nrows++;
		}
		next = &a->rows[idx + 1];
		n1 = ldexp(1.0, idx);
		mu1 = row->total[0] / n1;
		mu2 = row->total[1] / n1;
		total12 = row->total[0] + row->total[1];
		temp = n1 * 0.5 * (mu1 - mu2) * (mu1 - mu2);
		v12 = row->variance[0] + row->variance[1] + temp;
		RowInsert(next, total12, v12);
		RowCompress(row, 2);
		if (next->count <= a->max_buckets)
			break;
	}
}

/* AdaptiveWindowing._insert_element(value, 0.0) */
static void
AdwinInsert(Adwin *a, double value)
{
	RowInsert(&a->rows[0], value, 0.0);
	a->width += 1;
	if (a->width > 1.0)
	{
		double		incremental = (a->width - 1.0)
			* (value - a->total / (a->width - 1.0))
			* (value - a->total / (a->width - 1.0))
			/ a->width;

		a->variance += incremental;
	}
	a->total += value;
	AdwinCompress(a);
}

/* AdaptiveWindowing._delete_element: drops the oldest bucket. */
static double
AdwinDeleteOldest(Adwin *a)
{
	AdwinRow   *row = &a->rows[a->nrows - 1];
	double		n = ldexp(1.0, a->nrows - 1);
	double		u = row->total[0];
	double		mu = u / n;
	double		v = row->variance[0];
	double		mu_window;

	a->width -= n;
	a->total -= u;
	mu_window = a->total / a->width;
	a->variance -= v + n * a->width * (mu - mu_window) * (mu - mu_window)
		/ (n + a->width);
	RowCompress(row, 1);
	if (row->count == 0)
		a->nrows--;
	return n;
}

/*
 * AdaptiveWindowing._evaluate_cut, with ln(2 ln(width) / delta) and
 * variance / width passed in: they change only when the window shrinks,
 * so the caller computes them once per pass over the cuts (the same
 * values, so the same result).
 */
static inline bool
AdwinCut(Adwin *a, double n0, double n1, double delta_mean,
		 double delta_prime, double variance_in_window)
{
	double		m_recip = (1.0 / (n0 - a->min_window_length + 1))
		+ (1.0 / (n1 - a->min_window_length + 1));
	double		epsilon = sqrt(2 * m_recip * variance_in_window * delta_prime)
		+ 2.0 / 3.0 * delta_prime * m_recip;

	return fabs(delta_mean) > epsilon;
}

/* AdaptiveWindowing._detect_change */
static bool
AdwinDetect(Adwin *a)
{
	bool		change = false;
	bool		reduce;

	a->tick++;
	if (a->tick % a->clock != 0 || !(a->width > (double) a->grace_period))
		return false;

	do
	{
		double		n0 = 0.0,
					n1 = a->width,
					u0 = 0.0,
					u1 = a->total;
		bool		exit_flag = false;
		double		delta_prime = log(2 * log(a->width) / a->delta);
		double		variance_in_window = a->variance / a->width;

		reduce = false;
		for (int idx = a->nrows - 1; idx >= 0 && !exit_flag; idx--)
		{
			AdwinRow   *row = &a->rows[idx];
			double		size = ldexp(1.0, idx);

			for (int k = 0; k < row->count; k++)
			{
				double		delta_mean;

				/* (River's v0 and v1 here are never read: left out) */
				n0 += size;
				n1 -= size;
				u0 += row->total[k];
				u1 -= row->total[k];
				if (idx == 0 && k == row->count - 1)
				{
					exit_flag = true;
					break;
				}
				delta_mean = (u0 / n0) - (u1 / n1);
				if (n1 >= a->min_window_length && n0 >= a->min_window_length &&
					AdwinCut(a, n0, n1, delta_mean, delta_prime, variance_in_window))
				{
					reduce = true;
					change = true;
					if (a->width > 0)
					{
						n0 -= AdwinDeleteOldest(a);
						exit_flag = true;
						break;
					}
				}
			}
		}
	} while (reduce);
	return change;
}

/* River's ADWIN.update. */
static DriftSignal
AdwinUpdate(DriftDetector *d, double x)
{
	Adwin	   *a = (Adwin *) d;

	if (a->drift)
		AdwinReset(a);
	AdwinInsert(a, x);
	a->drift = AdwinDetect(a);
	return a->drift ? DRIFT_DETECTED : DRIFT_NONE;
}

/* The parameters and the window's statistics, as JSON members. */
static void
AdwinState(DriftDetector *d, StringInfo buf)
{
	Adwin	   *a = (Adwin *) d;
	int			buckets = 0;

	for (int r = 0; r < a->nrows; r++)
		buckets += a->rows[r].count;
	DriftAppendNumber(buf, "delta", a->delta);
	appendStringInfo(buf, ", \"clock\": " INT64_FORMAT ", \"max_buckets\": %d"
					 ", \"min_window_length\": " INT64_FORMAT
					 ", \"grace_period\": " INT64_FORMAT,
					 a->clock, a->max_buckets, a->min_window_length,
					 a->grace_period);
	DriftAppendNumber(buf, "width", a->width);
	DriftAppendNumber(buf, "total", a->total);
	DriftAppendNumber(buf, "variance", a->variance);
	DriftAppendNumber(buf, "estimation", a->width > 0 ? a->total / a->width : 0.0);
	appendStringInfo(buf, ", \"buckets\": %d", buckets);
}

static const char *const AdwinParams[] =
{"delta", "clock", "max_buckets", "min_window_length", "grace_period", NULL};

/* Whether the window's total and variance are finite. */
static bool
AdwinFinite(DriftDetector *d)
{
	Adwin	   *a = (Adwin *) d;

	return isfinite(a->total) && isfinite(a->variance);
}

const DriftMethod DriftAdwinMethod = {
	"adwin", AdwinParams, AdwinCreate, AdwinUpdate, AdwinState, 0, AdwinFinite
};
