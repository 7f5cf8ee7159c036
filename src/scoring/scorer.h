/*
 * scorer.h
 *		Scorers: every row inserted into a source table gets its prediction
 *		in the same transaction (src/scoring/scorer*.c).
 *
 * scorer.c creates and drops scorers and keeps their catalog
 * (streamml.scorers_catalog); scorerinsert.c is the statement trigger
 * that scores the rows of each INSERT, COPY or stream batch; scorer_stats.c
 * keeps the counters of the streamml.scorers view in shared memory.
 */
#ifndef STREAMML_SCORER_H
#define STREAMML_SCORER_H

#include "postgres.h"

#include "utils/jsonb.h"

/* The columns a predictions table has besides the key columns. */
#define SCORER_ROLE_CHAMPION "champion"
#define SCORER_ROLE_CHALLENGER "challenger"

/* Where each column of a predictions table is (scorer.c checks them). */
typedef struct PredictionColumns
{
	int			nkeys;
	AttrNumber *key;			/* the key columns, as in the source */
	AttrNumber	model;
	AttrNumber	version;
	AttrNumber	prediction;
	AttrNumber	probability;
	AttrNumber	class_label;
	AttrNumber	role;
	AttrNumber	scored_at;
} PredictionColumns;

/*
 * A challenger of a scorer (option "challengers"): another model, served
 * at its deployed version (version 0), or a version of a model, given as
 * {"model": m, "version": v}, served at that version whatever is deployed.
 */
typedef struct ScorerChallenger
{
	char	   *model;
	int32		version;		/* 0: the model's deployed version */
} ScorerChallenger;

/* scorer.c */
struct RelationData;
extern void ScorerCheckPredictionColumns(Relation preds);
extern void ScorerCheckPredictions(struct RelationData *preds,
								   struct RelationData *source, int nkeys,
								   char **keys, PredictionColumns *pc,
								   bool by_version);
extern AttrNumber ScorerSourceColumn(struct RelationData *source,
									 const char *name, const char *what,
									 bool numeric);
struct ServedModelInfo;
extern char *ScorerFeatureColumn(Jsonb *options, const char *feature);
extern char *ScorerGroupColumn(Jsonb *options, struct ServedModelInfo *info);
extern ScorerChallenger *ScorerChallengers(Jsonb *options, int *n);
extern bool ScorerNeedsVersionKey(const char *champion,
								  const ScorerChallenger *ch, int n);
extern char *ScorerChallengerName(const ScorerChallenger *c);
extern void ScorerCheckChallengers(struct RelationData *source, Jsonb *options,
								   const char *champion);
extern void ScorersDropOwned(Datum roles);
extern void ScorersRelationsDropped(Datum relids);

/* scorer_promote.c */
extern void ScorerAutoPromote(const char *scorer, int32 tracker);

/* scorer_stats.c */
extern void ScorerInit(void);
extern void ScorerStatsBatch(int32 scorer, Oid owner, int64 rows,
							 int64 unscorable, double seconds);
extern void ScorerStatsError(int32 scorer, Oid owner, const char *msg);
extern void ScorerStatsForget(int32 scorer);
extern void ScorerStatsReclaim(void);

#endif							/* STREAMML_SCORER_H */
