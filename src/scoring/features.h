/*
 * features.h
 *		Feature tables: the windowed features of every row inserted into a
 *		source table, written in the same transaction (src/scoring).
 *
 *	feature_table.c		create/drop, the catalog, feature_sql, the view
 *	featurespec.c		the spec (jsonb) read against the source's columns
 *	featurestate.c		per-partition window state, O(1) per row and feature
 *	featureinsert.c		the statement triggers: locks, state validation,
 *						rebuild from the feature table, the bulk insert,
 *						deletes, truncates, the refusal of updates
 */
#ifndef STREAMML_FEATURES_H
#define STREAMML_FEATURES_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/tuplestore.h"

#include "features/window_state.h"

/* The columns a feature table adds after the kept ones and the features. */
#define FT_SEQ_COLUMN "arrival_seq"
#define FT_LATE_COLUMN "late"
/* The source's other triggers: the insert trigger's name and these. */
#define FT_DELETE_SUFFIX "_delete"
#define FT_UPDATE_SUFFIX "_update"
#define FT_TRUNCATE_SUFFIX "_truncate"

typedef enum FeatureFn
{
	FN_LAG,
	FN_DELTA,
	FN_PCT_CHANGE,
	FN_MEAN,
	FN_SUM,
	FN_MIN,
	FN_MAX,
	FN_VAR,
	FN_VAR_POP,
	FN_STDDEV,
	FN_STDDEV_POP,
	FN_COUNT,
	FN_SLOPE,
	FN_EWMA
} FeatureFn;

/* The frame a feature is computed over. */
typedef enum FrameKind
{
	FRAME_PARTITION,			/* lag-like and ewma: the partition so far */
	FRAME_ROWS,					/* ROWS BETWEEN n PRECEDING AND CURRENT ROW */
	FRAME_RANGE					/* RANGE BETWEEN r PRECEDING AND CURRENT ROW */
} FrameKind;

/* How the order_by column is compared and turned into a number. */
typedef enum OrderKind
{
	ORDER_TIMESTAMP,			/* timestamp or timestamptz: microseconds */
	ORDER_INTEGER,
	ORDER_FLOAT
} OrderKind;

typedef struct FeatureDef
{
	char	   *name;
	FeatureFn	fn;
	int			of;				/* index in FeatureSpec.of, -1: count(*) */
	FrameKind	frame;
	int64		preceding;		/* FRAME_ROWS */
	double		range;			/* FRAME_RANGE, in order key units */
	char	   *range_sql;		/* the offset as SQL, for feature_sql */
	int			n;				/* lag, delta, pct_change */
	double		alpha;			/* ewma by rows; 0 if by time */
	double		half_life;		/* ewma by time, microseconds */
	char	   *half_life_sql;
} FeatureDef;

/* A spec read against the source's current columns. */
typedef struct FeatureSpec
{
	int			npart;
	AttrNumber *part;			/* source attnums of partition_by */
	char	  **part_names;
	Oid		   *part_types;
	bool	   *part_bytewise;	/* equality is byte equality: COLLATE "C" */
	AttrNumber	order;			/* source attnum of order_by */
	char	   *order_name;
	Oid			order_type;
	OrderKind	order_kind;
	int			nof;			/* distinct "of" columns */
	AttrNumber *of;
	char	  **of_names;
	Oid		   *of_types;
	int			nkeep;			/* columns copied into the feature table */
	AttrNumber *keep;
	char	  **keep_names;
	int			nfeatures;
	FeatureDef *features;
	bool		late_error;		/* "late": "error" rather than "null" */
	bool		backfill;
	/* how much history a rebuild needs (featurestate.c) */
	int64		need_rows;		/* the last rows, late ones not counted */
	double		need_range;		/* rows within this of the newest order key */
	int64	   *need_nonnull;	/* per "of" column: non-NULL values (ewma) */
} FeatureSpec;

/* The window state of one partition (featurestate.c). */
typedef struct PartState PartState;

/* featurespec.c */
extern FeatureSpec *FeatureSpecRead(Jsonb *spec, TupleDesc desc,
									const char *table);
extern char *FeatureSql(FeatureSpec *spec, const char *source);
extern double OrderKey(FeatureSpec *spec, Datum d, const char *table);

/* featurestate.c */
extern PartState *PartStateCreate(FeatureSpec *spec, MemoryContext cxt);
extern void PartStateReset(PartState *ps, FeatureSpec *spec);
extern bool PartStateIsLate(PartState *ps, double key);
extern void PartStateAdd(PartState *ps, FeatureSpec *spec, double key,
						 double *vals, bool *nulls, double *out,
						 bool *outnull);
extern int64 PartStateSeq(PartState *ps);
extern void PartStateSetSeq(PartState *ps, int64 seq);
extern void PartStateRaiseNewest(PartState *ps, double key);

/* featureinsert.c */
extern void FeatureTablesInit(void);
extern void FeatureTableLoad(Oid target, Relation source,
							 Tuplestorestate *rows, TupleDesc desc);
extern void FeatureStatsForget(Oid target);

/* feature_table.c */
extern void FeatureTableRemove(const char *name, bool drop_table);
extern void FeatureTablesRelationsDropped(Datum relids);

#endif							/* STREAMML_FEATURES_H */
