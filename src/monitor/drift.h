/*
 * drift.h
 *		Concept-drift detectors: small C structs with update(x), the
 *		building blocks of streamml.drift_detect (drift.c) and of later
 *		monitors that run in the outcome's transaction.
 *
 * Each detector follows River's implementation of the same name, with its
 * parameter names and defaults, its warm-up and its reset: a detector that
 * reported a drift resets itself at its next update, as River's do.
 * Parameters are read once, when the detector is created, from a jsonb
 * options object (src/options.h).  All memory of a detector is allocated in
 * the memory context current at creation; update() allocates nothing.
 */
#ifndef STREAMML_DRIFT_H
#define STREAMML_DRIFT_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/* What one update tells. */
typedef enum DriftSignal
{
	DRIFT_NONE = 0,				/* in control */
	DRIFT_WARNING,				/* in the warning zone (ddm, eddm) */
	DRIFT_DETECTED				/* a drift: the next update resets */
} DriftSignal;

typedef struct DriftDetector DriftDetector;

/* One detection method: its name, parameters and operations. */
typedef struct DriftMethod
{
	const char *name;			/* 'adwin', 'ddm', ... */
	const char *const *params;	/* known parameter names, NULL-terminated */
	DriftDetector *(*create) (Jsonb *params);
	DriftSignal (*update) (DriftDetector *d, double x);
	/* appends the state as JSON object members ("\"k\": v, ...") */
	void		(*state) (DriftDetector *d, StringInfo buf);
	/*
	 * The size of the detector's struct when it holds no pointer (it can
	 * then be saved as its bytes past the head: monitors), else 0.
	 */
	Size		state_size;
	/*
	 * Whether the detector's statistics are finite after an update (NULL:
	 * they always are).  Finite inputs of great magnitude overflow sums
	 * and variances, and a detector with an infinite or NaN statistic
	 * never detects again (or always does): it must not go on silently.
	 */
	bool		(*finite) (DriftDetector *d);
} DriftMethod;

/* The common head of every detector struct. */
struct DriftDetector
{
	const DriftMethod *method;
};

/* drift.c */
extern const DriftMethod *DriftMethodLookup(const char *name);
extern DriftDetector *DriftDetectorCreate(const char *method, Jsonb *params);
extern void DriftAppendNumber(StringInfo buf, const char *key, double v);

/* One update of any detector. */
static inline DriftSignal
DriftUpdate(DriftDetector *d, double x)
{
	return d->method->update(d, x);
}

/* Whether a detector's statistics are finite (DriftMethod.finite). */
static inline bool
DriftFinite(DriftDetector *d)
{
	return d->method->finite == NULL || d->method->finite(d);
}

/* data_drift.c: PSI of counts per bin against reference fractions */
extern double DataDriftPsi(const int64 *counts, int64 n,
						   const double *fractions, int k);

/* The methods, one per file. */
extern const DriftMethod DriftAdwinMethod;		/* drift_adwin.c */
extern const DriftMethod DriftDdmMethod;		/* drift_ddm.c */
extern const DriftMethod DriftEddmMethod;		/* drift_ddm.c */
extern const DriftMethod DriftPageHinkleyMethod;	/* drift_page_hinkley.c */
extern const DriftMethod DriftCusumMethod;		/* drift_page_hinkley.c */
extern const DriftMethod DriftKswinMethod;		/* drift_kswin.c */

#endif							/* STREAMML_DRIFT_H */
