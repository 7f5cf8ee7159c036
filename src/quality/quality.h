/*
 * quality.h
 *		Outcomes and live quality (src/quality).
 *
 * outcomes.c creates and drops outcome trackers and keeps their catalog
 * (streamml.outcome_trackers); outcomeinsert.c holds the two statement
 * triggers that join outcomes with predictions and keep the bucket sums
 * of streamml.live_metrics; live_metrics.c the histograms the view reads.
 */
#ifndef STREAMML_QUALITY_H
#define STREAMML_QUALITY_H

#include "postgres.h"

/* live_metrics.c: the histograms of the buckets */
#define LAG_BINS 128
#define SCORE_BINS 100
extern int	LabelLagBin(double seconds);

/* What outcomeinsert.c needs to know of a tracker. */
typedef struct OutcomeTracker
{
	int32		id;
	char	   *scorer;
	Oid			owner;
	Oid			source;
	Oid			predictions;
	bool		horizon_mode;
	int			nkeys;
	char	  **key_columns;	/* in source */
	char	  **prediction_keys;	/* in the predictions table */
	char	   *actual;
	char	   *at;				/* NULL: the time of the insert */
	char	   *group_column;	/* NULL: no group */
	char	   *horizon;		/* literal of the order_by column's step type */
	char	   *partition_by;
	char	   *order_by;
	char	   *bucket;			/* interval literal */
	bool		has_role;		/* the predictions table has a role column */
	Oid			actual_type;
	Oid			order_type;
} OutcomeTracker;

/* outcomes.c */
extern bool OutcomeNumericType(Oid type);
extern OutcomeTracker *OutcomeTrackerLoad(int32 id);
extern void OutcomeTrackersDropOwned(Datum roles);
extern void OutcomeTrackersReassignOwned(Datum roles, Oid newowner);

/* outcomeinsert.c */
extern char *OutcomeActualNumberExpr(OutcomeTracker *t, const char *alias);
extern char *OutcomeActualTextExpr(OutcomeTracker *t, const char *alias);
extern char *OutcomeKeyExpr(OutcomeTracker *t, const char *alias, bool source_side);
extern void OutcomeCountPredictions(OutcomeTracker *t);

#endif							/* STREAMML_QUALITY_H */
