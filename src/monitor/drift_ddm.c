/*
 * drift_ddm.c
 *		DDM and EDDM: drift detectors over a stream of bits, 1 for an error
 *		(a wrong prediction) and 0 for a correct one, after River's
 *		drift.binary.DDM and drift.binary.EDDM (River main, 2025-2026).
 *
 * DDM (Gama et al., "Learning with Drift Detection", SBIA 2004) tracks the
 * error rate p_i and its binomial deviation s_i = sqrt(p_i (1 - p_i) / i),
 * remembers p_min and s_min where p + s was lowest, and after warm_start
 * values reports a warning while p_i + s_i > p_min + warning_threshold
 * s_min and a drift once p_i + s_i > p_min + drift_threshold s_min.
 *
 * EDDM (Baena-Garcia et al., 2006) tracks instead the distance between
 * consecutive errors: its mean p' and deviation s' (River's stats.Var,
 * ddof 1), and the maximum m of p' + 2 s'.  Once more than warm_start
 * values and more than warm_start errors were seen, at each error that does
 * not raise m, the level (p' + 2 s') / m below beta is a drift, below
 * alpha a warning; a level at or above alpha clears the warning.
 *
 * Both reset fully at the update after a drift, as River's do.  Input must
 * be 0 or 1: anything else is an error rather than a silently wrong rate.
 */
#include "postgres.h"

#include <math.h>

#include "options.h"
#include "monitor/drift.h"

/* Errors unless x is 0 or 1. */
static inline void
CheckBit(const char *method, double x)
{
	if (x != 0.0 && x != 1.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s takes 0 or 1, not %g", method, x),
				 errdetail("Each value is 1 for an error (a wrong prediction) and 0 for a correct one.")));
}

/* ---- DDM ---- */

typedef struct Ddm
{
	DriftDetector head;
	int64		warm_start;
	double		warning_threshold;
	double		drift_threshold;
	bool		drift;
	bool		warning;
	int64		n;				/* stats.Mean of the bits */
	double		p;
	double		p_min;
	double		s_min;
	double		ps_min;
} Ddm;

/* River's DDM._reset. */
static void
DdmReset(Ddm *d)
{
	d->drift = false;
	d->warning = false;
	d->n = 0;
	d->p = 0.0;
	d->p_min = NAN;
	d->s_min = NAN;
	d->ps_min = INFINITY;
}

/* A DDM detector with River's defaults for absent parameters. */
static DriftDetector *
DdmCreate(Jsonb *params)
{
	Ddm		   *d = palloc0(sizeof(Ddm));

	d->head.method = &DriftDdmMethod;
	d->warm_start = OptionInteger(params, "warm_start", 30, 0, PG_INT64_MAX);
	d->warning_threshold = OptionNumber(params, "warning_threshold", 2.0, 0.0, HUGE_VAL);
	d->drift_threshold = OptionNumber(params, "drift_threshold", 3.0, 0.0, HUGE_VAL);
	DdmReset(d);
	return &d->head;
}

/* River's DDM.update. */
static DriftSignal
DdmUpdate(DriftDetector *det, double x)
{
	Ddm		   *d = (Ddm *) det;
	double		s;

	CheckBit("ddm", x);
	if (d->drift)
		DdmReset(d);

	d->n++;
	d->p += (1.0 / (double) d->n) * (x - d->p);
	s = sqrt(d->p * (1 - d->p) / (double) d->n);

	if (d->n > d->warm_start)
	{
		if (d->p + s <= d->ps_min)
		{
			d->p_min = d->p;
			d->s_min = s;
			d->ps_min = d->p_min + d->s_min;
		}
		d->warning = d->p + s > d->p_min + d->warning_threshold * d->s_min;
		if (d->p + s > d->p_min + d->drift_threshold * d->s_min)
		{
			d->drift = true;
			d->warning = false;
		}
	}
	return d->drift ? DRIFT_DETECTED : d->warning ? DRIFT_WARNING : DRIFT_NONE;
}

/* The parameters and statistics, as JSON members. */
static void
DdmState(DriftDetector *det, StringInfo buf)
{
	Ddm		   *d = (Ddm *) det;

	appendStringInfo(buf, ", \"warm_start\": " INT64_FORMAT, d->warm_start);
	DriftAppendNumber(buf, "warning_threshold", d->warning_threshold);
	DriftAppendNumber(buf, "drift_threshold", d->drift_threshold);
	appendStringInfo(buf, ", \"n\": " INT64_FORMAT, d->n);
	DriftAppendNumber(buf, "p", d->p);
	DriftAppendNumber(buf, "s", d->n > 0 ? sqrt(d->p * (1 - d->p) / (double) d->n) : 0.0);
	DriftAppendNumber(buf, "p_min", d->p_min);
	DriftAppendNumber(buf, "s_min", d->s_min);
}

static const char *const DdmParams[] =
{"warm_start", "warning_threshold", "drift_threshold", NULL};

const DriftMethod DriftDdmMethod = {
	"ddm", DdmParams, DdmCreate, DdmUpdate, DdmState, sizeof(Ddm), NULL
};

/* ---- EDDM ---- */

typedef struct Eddm
{
	DriftDetector head;
	int64		warm_start;
	double		alpha;
	double		beta;
	bool		drift;
	bool		warning;
	int64		n;				/* values seen */
	int64		last_error;		/* n at the last error */
	int64		n_errors;
	int64		dist_n;			/* stats.Var of the distances */
	double		dist_mean;
	double		dist_s;
	double		p2s_max;
} Eddm;

/* River's EDDM._reset. */
static void
EddmReset(Eddm *e)
{
	e->drift = false;
	e->warning = false;
	e->n = 0;
	e->last_error = 0;
	e->n_errors = 0;
	e->dist_n = 0;
	e->dist_mean = 0.0;
	e->dist_s = 0.0;
	e->p2s_max = -1;
}

/* An EDDM detector with River's defaults for absent parameters. */
static DriftDetector *
EddmCreate(Jsonb *params)
{
	Eddm	   *e = palloc0(sizeof(Eddm));

	e->head.method = &DriftEddmMethod;
	e->warm_start = OptionInteger(params, "warm_start", 30, 0, PG_INT64_MAX);
	e->alpha = OptionNumber(params, "alpha", 0.95, 0.0, 1.0);
	e->beta = OptionNumber(params, "beta", 0.9, 0.0, 1.0);
	if (e->alpha < e->beta)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"alpha\" must be greater than or equal to option \"beta\""),
				 errdetail("alpha is %g and beta is %g.", e->alpha, e->beta)));
	EddmReset(e);
	return &e->head;
}

/* River's EDDM.update. */
static DriftSignal
EddmUpdate(DriftDetector *det, double x)
{
	Eddm	   *e = (Eddm *) det;

	CheckBit("eddm", x);
	if (e->drift)
		EddmReset(e);

	e->n++;
	if (x == 1.0)
	{
		double		dist = (double) (e->n - e->last_error);
		double		old_mean = e->dist_mean;

		e->n_errors++;
		e->dist_n++;
		e->dist_mean += (1.0 / (double) e->dist_n) * (dist - e->dist_mean);
		e->dist_s += (dist - old_mean) * (dist - e->dist_mean);

		if (e->n > e->warm_start)
		{
			double		var = e->dist_n > 1 ? e->dist_s / (double) (e->dist_n - 1) : 0.0;
			double		p2s = e->dist_mean + 2 * pow(var, 0.5);

			if (p2s > e->p2s_max)
				e->p2s_max = p2s;
			else if (e->n_errors > e->warm_start)
			{
				double		level = p2s / e->p2s_max;

				if (level < e->beta)
					e->drift = true;
				else if (level < e->alpha)
					e->warning = true;
				else
					e->warning = false;
			}
		}
		e->last_error = e->n;
	}
	return e->drift ? DRIFT_DETECTED : e->warning ? DRIFT_WARNING : DRIFT_NONE;
}

/* The parameters and statistics, as JSON members. */
static void
EddmState(DriftDetector *det, StringInfo buf)
{
	Eddm	   *e = (Eddm *) det;

	appendStringInfo(buf, ", \"warm_start\": " INT64_FORMAT, e->warm_start);
	DriftAppendNumber(buf, "alpha", e->alpha);
	DriftAppendNumber(buf, "beta", e->beta);
	appendStringInfo(buf, ", \"n\": " INT64_FORMAT ", \"n_errors\": " INT64_FORMAT,
					 e->n, e->n_errors);
	DriftAppendNumber(buf, "distance_mean", e->dist_mean);
	DriftAppendNumber(buf, "distance_std",
					  e->dist_n > 1 ? sqrt(e->dist_s / (double) (e->dist_n - 1)) : 0.0);
	DriftAppendNumber(buf, "p2s_max", e->p2s_max);
}

static const char *const EddmParams[] = {"warm_start", "alpha", "beta", NULL};

const DriftMethod DriftEddmMethod = {
	"eddm", EddmParams, EddmCreate, EddmUpdate, EddmState, sizeof(Eddm), NULL
};
