/*
 * quality.h
 *		Outcomes and live quality (src/quality).
 *
 * outcomes.c creates and drops outcome trackers and keeps their catalog
 * (streamml.outcome_trackers); outcomeinsert.c holds the two statement
 * triggers that read a batch's outcomes joined with their predictions;
 * outcomewrite.c writes them (outcomes, pending outcomes, the bucket sums
 * of streamml.live_metrics) and is where a batch's new outcomes are known
 * in arrival order; live_metrics.c the histograms the view reads.
 */
#ifndef STREAMML_QUALITY_H
#define STREAMML_QUALITY_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* live_metrics.c: the histograms of the buckets */
#define LAG_BINS 128
#define SCORE_BINS 100
extern int	LabelLagBin(double seconds);
extern int	ScoreBin(double probability, bool positive);

/* What outcomeinsert.c needs to know of a tracker. */
typedef struct OutcomeTracker
{
	int32		id;
	uint64		generation;		/* which read of the catalog row (plans) */
	char	   *scorer;
	Datum		scorer_datum;	/* the scorer's name as text */
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
	bool		regression;		/* the scorer's model has no classes */
	Oid			order_type;
	char	   *source_ft_part;	/* source a feature table: its one partition */
	char	   *source_ft_order;	/* column and order_by (else NULL) */
	bool		stash_armed;	/* stash_floor is set (predstash.c): */
	int64		stash_floor;
} OutcomeTracker;

/*
 * One outcome of a batch joined with one prediction of its key, as
 * outcomewrite.c writes it (what the monitors observe).  first is false
 * for a duplicate (the key already had an outcome for this model version).
 */
typedef struct OutcomeRecord
{
	Datum		key;			/* jsonb; 0 when key_is_int: RecordKey makes it */
	bool		key_is_int;		/* the key is one integer column: */
	int64		key_int;		/* its value (key_hash without a look at key) */
	const char *key_name;		/* and its name in the key */
	bool		hashed;			/* key_hash and key_plain are known: */
	bool		key_plain;		/* the key is one integer, key_hash */
	int64		key_hash;		/* streamml.outcome_rows.key_hash */
	char	   *model;
	int32		version;
	char	   *role;			/* 'champion' or 'challenger' */
	char	   *group_key;		/* '' without groups */
	bool		first;
	bool		is_cls;			/* a classifier's prediction */
	bool		is_bin;			/* a binary classifier's, with a probability */
	bool		has_prediction;
	double		prediction;		/* value, or class index */
	bool		has_probability;
	double		probability;
	char	   *class_label;	/* NULL for a regression */
	char	   *actual_text;
	char	   *actual_class;	/* classifiers: the actual label */
	bool		has_actual;
	double		actual;			/* value, or class index */
	bool		has_loss;
	double		loss;
	TimestampTz predicted_at;
	TimestampTz labelled_at;
} OutcomeRecord;

/* An outcome without a prediction yet, for streamml.pending_outcomes. */
typedef struct PendingOutcome
{
	Datum		key;			/* jsonb */
	bool		has_number;
	double		actual_number;
	char	   *actual_text;	/* NULL: the text of actual_number */
	char	   *group_key;
	TimestampTz labelled_at;
} PendingOutcome;

/* outcomewrite.c */
typedef struct OutcomeBatch OutcomeBatch;
struct SPITupleTable;
extern OutcomeBatch *OutcomeBatchBegin(OutcomeTracker *t, TimestampTz now);
extern void OutcomeBatchCountPredictions(OutcomeBatch *b, const char *model,
										 int32 version, const char *role,
										 TimestampTz scored_at, int64 n,
										 int64 conf_n, double conf_sum);
extern void OutcomeBatchAddJoined(OutcomeBatch *b, struct SPITupleTable *tt,
								  uint64 n, bool pending_ok);
extern void OutcomeRecordFinish(OutcomeBatch *b, OutcomeRecord *r,
								bool has_number, double actual_number);
extern void OutcomeBatchAddRecords(OutcomeBatch *b, OutcomeRecord *records,
								   int n, PendingOutcome *pending, int npending);
extern OutcomeRecord *OutcomeBatchRecords(OutcomeBatch *b, int *n);
extern Datum RecordKey(OutcomeRecord *r, MemoryContext cxt);
extern void OutcomeBatchFinish(OutcomeBatch *b);

/* outcomekeys.c */
extern void OutcomeKeySetsCheck(OutcomeTracker *t, const char **models,
								const int32 *versions, const int64 *keys,
								bool **firsts, int n);

/* outcomes.c */
extern bool OutcomeNumericType(Oid type);
extern OutcomeTracker *OutcomeTrackerLoad(int32 id);
extern OutcomeTracker *OutcomeTrackerCached(int32 id);
extern void OutcomeTrackersDropOwned(Datum roles);
extern void OutcomeTrackersRelationsDropped(Datum relids);
extern void OutcomeTrackersDisarm(int32 id);
extern void OutcomeTrackersPredictionsAltered(void);
extern void OutcomeTrackersRearm(const char *scorer, bool wait);

/* outcomehorizon.c */
struct TriggerData;
struct PredStash;
extern bool OutcomeHorizonBatch(OutcomeTracker *t, struct TriggerData *td,
								OutcomeBatch *b, TimestampTz now,
								struct PredStash *stash);
extern const char *OutcomeFeatureTableSql;
extern bool OutcomeHorizonIndexExists(Oid relid, const char *partition_by,
									  const char *order_by);

/* outcomeinsert.c */
extern char *OutcomeActualNumberExpr(OutcomeTracker *t, const char *alias);
extern char *OutcomeActualTextExpr(OutcomeTracker *t, const char *alias);
extern char *OutcomeKeyExpr(OutcomeTracker *t, const char *alias, bool source_side);
extern void OutcomeTrackerTypesCheck(OutcomeTracker *t);
extern void OutcomeTrackerColumnsCheck(OutcomeTracker *t);
extern void OutcomeKeyTypesCheck(Oid source, char **skeys, Oid preds, char **pkeys, int n,
								 const char *scorer);
extern void OutcomeCountPredictions(OutcomeTracker *t);
struct _SPI_plan;
extern struct _SPI_plan *OutcomePrepare(const char *sql, int nargs, Oid *types);
extern void OutcomeExecute(struct _SPI_plan *plan, Datum *values,
						   const char *nulls, int expect);
extern Oid	OutcomesRelid(void);
extern Oid	PendingOutcomesRelid(void);

#endif							/* STREAMML_QUALITY_H */
