/*
 * predstash.h
 *		The predictions a scorer wrote in the loading statement, kept in
 *		memory for the horizon tracker that labels them in that statement
 *		(predstash.c).
 */
#ifndef STREAMML_PREDSTASH_H
#define STREAMML_PREDSTASH_H

#include "postgres.h"

#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"

#include "scoring/scorer.h"

typedef struct PredStash PredStash;

/* One kept prediction row: what an outcome record takes from it. */
typedef struct PredStashRow
{
	int64		key;
	int32		version;
	bool		has_prediction;
	bool		has_probability;
	double		prediction;
	double		probability;
	TimestampTz scored_at;
	const char *model;
	const char *role;
	const char *class_label;	/* NULL: none */
} PredStashRow;

/* the scorer's side (scorerinsert.c) */
extern void PredStashReset(void);
extern void PredStashBegin(Relation preds, const PredictionColumns *pc,
						   TriggerData *td, const char *scorer);
extern void PredStashAdd(TupleTableSlot **slots, int n);
/* Which scorer is writing which predictions table now. */
typedef struct PredStashWriter
{
	Oid			predsid;
	const char *scorer;
} PredStashWriter;
extern PredStashWriter PredStashSetWriter(Oid predsid, const char *scorer);
extern void PredStashRestoreWriter(PredStashWriter w);

/* the tracker's side (outcomeinsert.c, outcomehorizon.c, outcomes.c) */
extern PredStash *PredStashTake(TriggerData *td, const char *scorer, Oid predsid);
extern const PredStashRow *PredStashLookup(PredStash *st, int64 key);
extern bool PredStashScorerWriting(Relation preds, const char *scorer);
extern Datum PredStashFloor(Relation preds, AttrNumber keyatt, AttrNumber modelatt,
							bool *isnull);

#endif							/* STREAMML_PREDSTASH_H */
