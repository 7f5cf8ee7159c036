/*
 * drift_page_hinkley.c
 *		The Page-Hinkley test and the tabular CUSUM: detectors of a change
 *		in the mean of a stream, after River's drift.PageHinkley and
 *		drift.CUSUM (River main, 2025-2026; both reference E. S. Page,
 *		"Continuous Inspection Schemes", Biometrika 41, 1954).
 *
 * Page-Hinkley keeps the running mean of all values since the last reset
 * and two faded cumulative sums of the deviations from it:
 *		up_i   = alpha up_{i-1}   + (x_i - mean_i) - delta
 *		down_i = alpha down_{i-1} + (x_i - mean_i) + delta
 * and reports a drift when up_i - min(up) or max(down) - down_i exceeds
 * threshold, from min_instances values on (mode says which sides count).
 *
 * CUSUM freezes a reference mean and standard deviation over the first
 * min_instances values (a running mean would chase the very shift it is
 * looking for), then keeps
 *		S+_i = max(0, S+_{i-1} + (x_i - ref) - slack sigma)
 *		S-_i = max(0, S-_{i-1} - (x_i - ref) - slack sigma)
 * and reports a drift when one exceeds threshold sigma.
 *
 * Neither has a warning zone.  Both reset fully at the update after a drift.
 * The running mean and variance are River's stats.Mean and stats.Var
 * (Welford, ddof 1), computed in the same order so that the same input
 * gives the same detections.
 */
#include "postgres.h"

#include <math.h>

#include "options.h"
#include "monitor/drift.h"

typedef enum DriftMode
{
	MODE_BOTH,
	MODE_UP,
	MODE_DOWN
} DriftMode;

/* Reads the "mode" parameter: 'up', 'down' or 'both' (the default). */
static DriftMode
ReadMode(Jsonb *params)
{
	char	   *mode = OptionKeyword(params, "mode", "both");

	if (strcmp(mode, "both") == 0)
		return MODE_BOTH;
	if (strcmp(mode, "up") == 0)
		return MODE_UP;
	if (strcmp(mode, "down") == 0)
		return MODE_DOWN;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"mode\" must be 'up', 'down' or 'both'"),
			 errdetail("The value given is '%s'.", mode)));
	return MODE_BOTH;			/* keep the compiler quiet */
}

static const char *const ModeNames[] = {"both", "up", "down"};

/* ---- Page-Hinkley ---- */

typedef struct PageHinkley
{
	DriftDetector head;
	int64		min_instances;
	double		delta;
	double		threshold;
	double		alpha;
	DriftMode	mode;
	bool		drift;			/* the last update detected a drift */
	int64		n;				/* stats.Mean */
	double		mean;
	double		sum_increase;
	double		sum_decrease;
	double		min_increase;
	double		max_decrease;
} PageHinkley;

/* River's PageHinkley._reset. */
static void
PageHinkleyReset(PageHinkley *ph)
{
	ph->drift = false;
	ph->n = 0;
	ph->mean = 0.0;
	ph->sum_increase = 0.0;
	ph->sum_decrease = 0.0;
	ph->min_increase = INFINITY;
	ph->max_decrease = -1.0;
}

/* A Page-Hinkley detector with River's defaults for absent parameters. */
static DriftDetector *
PageHinkleyCreate(Jsonb *params)
{
	PageHinkley *ph = palloc0(sizeof(PageHinkley));

	ph->head.method = &DriftPageHinkleyMethod;
	ph->min_instances = OptionInteger(params, "min_instances", 30, 0, PG_INT64_MAX);
	ph->delta = OptionNumber(params, "delta", 0.005, 0.0, HUGE_VAL);
	ph->threshold = OptionNumber(params, "threshold", 50.0, 0.0, HUGE_VAL);
	ph->alpha = OptionNumber(params, "alpha", 1 - 0.0001, 0.0, 1.0);
	ph->mode = ReadMode(params);
	PageHinkleyReset(ph);
	return &ph->head;
}

/* River's PageHinkley.update. */
static DriftSignal
PageHinkleyUpdate(DriftDetector *d, double x)
{
	PageHinkley *ph = (PageHinkley *) d;
	double		dev;

	if (ph->drift)
		PageHinkleyReset(ph);

	ph->n++;
	ph->mean += (1.0 / (double) ph->n) * (x - ph->mean);
	dev = x - ph->mean;

	ph->sum_increase = ph->alpha * ph->sum_increase + dev - ph->delta;
	ph->sum_decrease = ph->alpha * ph->sum_decrease + dev + ph->delta;
	if (ph->sum_increase < ph->min_increase)
		ph->min_increase = ph->sum_increase;
	if (ph->sum_decrease > ph->max_decrease)
		ph->max_decrease = ph->sum_decrease;

	if (ph->n >= ph->min_instances)
	{
		bool		up = ph->sum_increase - ph->min_increase > ph->threshold;
		bool		down = ph->max_decrease - ph->sum_decrease > ph->threshold;

		ph->drift = ph->mode == MODE_UP ? up :
			ph->mode == MODE_DOWN ? down : (up || down);
	}
	return ph->drift ? DRIFT_DETECTED : DRIFT_NONE;
}

/* The parameters and running sums, as JSON members. */
static void
PageHinkleyState(DriftDetector *d, StringInfo buf)
{
	PageHinkley *ph = (PageHinkley *) d;

	appendStringInfo(buf, ", \"min_instances\": " INT64_FORMAT, ph->min_instances);
	DriftAppendNumber(buf, "delta", ph->delta);
	DriftAppendNumber(buf, "threshold", ph->threshold);
	DriftAppendNumber(buf, "alpha", ph->alpha);
	appendStringInfo(buf, ", \"mode\": \"%s\"", ModeNames[ph->mode]);
	appendStringInfo(buf, ", \"n\": " INT64_FORMAT, ph->n);
	DriftAppendNumber(buf, "mean", ph->mean);
	DriftAppendNumber(buf, "sum_increase", ph->sum_increase);
	DriftAppendNumber(buf, "sum_decrease", ph->sum_decrease);
	DriftAppendNumber(buf, "test_increase", ph->sum_increase - ph->min_increase);
	DriftAppendNumber(buf, "test_decrease", ph->max_decrease - ph->sum_decrease);
}

static const char *const PageHinkleyParams[] =
{"min_instances", "delta", "threshold", "alpha", "mode", NULL};

/* Whether the mean and the sums are finite (min_increase starts infinite). */
static bool
PageHinkleyFinite(DriftDetector *d)
{
	PageHinkley *ph = (PageHinkley *) d;

	return isfinite(ph->mean) && isfinite(ph->sum_increase) &&
		isfinite(ph->sum_decrease);
}

const DriftMethod DriftPageHinkleyMethod = {
	"page_hinkley", PageHinkleyParams,
	PageHinkleyCreate, PageHinkleyUpdate, PageHinkleyState, sizeof(PageHinkley),
	PageHinkleyFinite
};

/* ---- CUSUM ---- */

typedef struct Cusum
{
	DriftDetector head;
	int64		min_instances;
	double		slack;
	double		threshold;
	DriftMode	mode;
	bool		drift;
	int64		n;
	double		mean;			/* stats.Mean */
	double		var_mean;		/* stats.Var: its own Mean and sigma */
	double		var_s;
	bool		has_reference;
	double		reference;
	double		sigma;
	double		sum_increase;
	double		sum_decrease;
} Cusum;

/* River's CUSUM._reset. */
static void
CusumReset(Cusum *c)
{
	c->drift = false;
	c->n = 0;
	c->mean = 0.0;
	c->var_mean = 0.0;
	c->var_s = 0.0;
	c->has_reference = false;
	c->reference = 0.0;
	c->sigma = 0.0;
	c->sum_increase = 0.0;
	c->sum_decrease = 0.0;
}

/* A CUSUM detector with River's defaults for absent parameters. */
static DriftDetector *
CusumCreate(Jsonb *params)
{
	Cusum	   *c = palloc0(sizeof(Cusum));

	c->head.method = &DriftCusumMethod;
	c->min_instances = OptionInteger(params, "min_instances", 30, 1, PG_INT64_MAX);
	c->slack = OptionNumber(params, "slack", 0.5, 0.0, HUGE_VAL);
	c->threshold = OptionNumber(params, "threshold", 5.0, 0.0, HUGE_VAL);
	if (c->threshold <= 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"threshold\" must be greater than 0")));
	c->mode = ReadMode(params);
	CusumReset(c);
	return &c->head;
}

/* River's CUSUM.update. */
static DriftSignal
CusumUpdate(DriftDetector *d, double x)
{
	Cusum	   *c = (Cusum *) d;
	double		old_mean;
	double		k,
				limit,
				deviation;
	bool		up,
				down;

	if (c->drift)
		CusumReset(c);

	c->n++;
	/* stats.Mean and stats.Var (which keeps a Mean of its own) */
	c->mean += (1.0 / (double) c->n) * (x - c->mean);
	old_mean = c->var_mean;
	c->var_mean += (1.0 / (double) c->n) * (x - c->var_mean);
	c->var_s += (x - old_mean) * (x - c->var_mean);

	if (c->n < c->min_instances)
		return DRIFT_NONE;

	if (!c->has_reference)
	{
		double		var = c->n > 1 ? c->var_s / (double) (c->n - 1) : 0.0;

		c->has_reference = true;
		c->reference = c->mean;
		c->sigma = sqrt(var > 0.0 ? var : 0.0);
	}

	k = c->slack * c->sigma;
	limit = c->threshold * c->sigma;
	deviation = x - c->reference;
	c->sum_increase = fmax(0.0, c->sum_increase + deviation - k);
	c->sum_decrease = fmax(0.0, c->sum_decrease - deviation - k);

	up = c->sum_increase > limit;
	down = c->sum_decrease > limit;
	c->drift = c->mode == MODE_UP ? up : c->mode == MODE_DOWN ? down : (up || down);
	return c->drift ? DRIFT_DETECTED : DRIFT_NONE;
}

/* The parameters, the frozen reference and the sums, as JSON members. */
static void
CusumState(DriftDetector *d, StringInfo buf)
{
	Cusum	   *c = (Cusum *) d;

	appendStringInfo(buf, ", \"min_instances\": " INT64_FORMAT, c->min_instances);
	DriftAppendNumber(buf, "slack", c->slack);
	DriftAppendNumber(buf, "threshold", c->threshold);
	appendStringInfo(buf, ", \"mode\": \"%s\"", ModeNames[c->mode]);
	appendStringInfo(buf, ", \"n\": " INT64_FORMAT, c->n);
	if (c->has_reference)
	{
		DriftAppendNumber(buf, "reference", c->reference);
		DriftAppendNumber(buf, "sigma", c->sigma);
	}
	else
		appendStringInfoString(buf, ", \"reference\": null, \"sigma\": null");
	DriftAppendNumber(buf, "sum_increase", c->sum_increase);
	DriftAppendNumber(buf, "sum_decrease", c->sum_decrease);
}

static const char *const CusumParams[] =
{"min_instances", "slack", "threshold", "mode", NULL};

/* Whether the means, the variance, the reference's sigma and the sums are finite. */
static bool
CusumFinite(DriftDetector *d)
{
	Cusum	   *c = (Cusum *) d;

	return isfinite(c->mean) && isfinite(c->var_mean) && isfinite(c->var_s) &&
		isfinite(c->sigma) && isfinite(c->sum_increase) &&
		isfinite(c->sum_decrease);
}

const DriftMethod DriftCusumMethod = {
	"cusum", CusumParams, CusumCreate, CusumUpdate, CusumState, sizeof(Cusum),
	CusumFinite
};
