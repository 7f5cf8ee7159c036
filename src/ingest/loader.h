/*
 * loader.h
 *		Decoding messages into rows of a target table and loading them.
 */
#ifndef STREAMML_LOADER_H
#define STREAMML_LOADER_H

#include "ingest.h"
#include "citus_batch.h"

#include "access/tupdesc.h"
#include "executor/tuptable.h"
#include "nodes/execnodes.h"
#include "utils/relcache.h"

/* How a column's value is made from text or from a JSON value. */
typedef enum ColumnKind
{
	CK_GENERIC,					/* the type's input function */
	CK_TEXT,
	CK_BYTEA,
	CK_JSONB,
	CK_JSON,
	CK_FLOAT8,
	CK_INT4,
	CK_INT8,
	CK_BOOL,
	CK_TIMESTAMPTZ,
	CK_FLOAT8_ARRAY
} ColumnKind;

/* How many top-level keys of a json message remember their column. */
#define JSON_KEY_HINTS 32

/* One target column fed from the message. */
typedef struct ColumnPlan
{
	AttrNumber	attnum;
	char	   *attname;
	IngestSource source;
	char	   *path;			/* json path, header name */
	int			path_len;
	char	  **parts;			/* json path split at dots */
	int			nparts;
	int		   *part_lens;
	int			field;			/* csv field, from 0 */
	ColumnKind	kind;
	Oid			typid;
	int32		typmod;
	Oid			ioparam;
	FmgrInfo	infunc;
} ColumnPlan;

/* The decoding and loading state of one target table of a stream. */
typedef struct TargetState
{
	Oid			relid;
	StreamConfig *cfg;
	int			natts;
	ColumnPlan *cols;
	int			ncols;
	/* json: every key names at most one column, no dotted paths */
	bool		json_flat;
	int16		json_hint[JSON_KEY_HINTS];	/* column of the k-th key last time */
	List	   *insert_cols;	/* attnums the row sets, for privileges */
	/* per transaction (loader.c) */
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	ExprState **defaults;		/* per attribute, NULL if none */
	bool		citus;			/* a Citus table: INSERT through Citus, 2PC */
	struct CitusBatch *citus_batch; /* its rows, batched (loader_citus.c) */
	ResultRelInfo *citus_rri;	/* its shell: constraints, statement triggers */
	TupleTableSlot *citus_slot;
	bool		use_spi;		/* RLS, foreign partition, Citus: go through INSERT */
	void	   *spi_plan;
	bool		multi;			/* no BEFORE ROW triggers: batch inserts */
	bool		volatile_defaults;	/* a default may read the table: no batches */
	TupleTableSlot **slots;
	TupleDesc	slot_desc;
	int			nbuffered;
	struct BulkInsertStateData *bistate;
	struct TransitionCaptureState *transition;	/* NULL: no transition tables */
	struct PartitionLoad *parts;	/* partitioned: tuple routing */
	bool	   *present;
	Datum	   *values;			/* the row being decoded, per attribute */
	bool	   *nulls;
	MemoryContext msg_cxt;		/* reset after each message */
	/* routing: the route value, or NULL for the default target */
	char	   *route_value;
} TargetState;

/* A row made by a decoder is handed to the loader through this. */
typedef void (*EmitRow) (TargetState *ts, Datum *values, bool *nulls,
						 bool *present);

/* loader_citus.c */
extern bool LoaderCitusRowByRow;
extern void LoaderCitusBegin(TargetState *ts);
extern void LoaderCitusAdd(TargetState *ts, Datum *values, bool *nulls);
extern void LoaderCitusRangeStart(TargetState *ts);
extern void LoaderCitusRangeFinish(TargetState *ts);
extern void LoaderCitusEnd(TargetState *ts);

/* decode.c */
extern TargetState *TargetStateCreate(StreamConfig *cfg, Oid relid,
									  const char *route_value);
extern void SetFromText(ColumnPlan *c, const char *s, int len, Datum *value,
						bool *isnull);
extern void SetFromMetadata(ColumnPlan *c, StreamConfig *cfg, KafkaMessage *m,
							Datum *value, bool *isnull);
extern void ValidateEncoding(const char *s, size_t len);
extern void DecodeText(TargetState *ts, KafkaMessage *m, Datum *values,
					   bool *nulls, bool *present);
extern TimestampTz EpochToTimestamptz(double epoch, bool ms);
extern bool EpochToTimestamptzSafe(double epoch, bool ms, TimestampTz *out);

/* decode_json.c */
extern void DecodeJson(TargetState *ts, KafkaMessage *m, Datum *values,
					   bool *nulls, bool *present);
extern bool JsonRouteValue(KafkaMessage *m, const char *field, char **value);

/* decode_csv.c */
extern void DecodeCsv(TargetState *ts, KafkaMessage *m, EmitRow emit);

/* loader.c */
extern void LoaderCheck(TargetState *ts);
extern void LoaderBegin(TargetState *ts);
extern void LoaderAddMessage(TargetState *ts, KafkaMessage *m);
extern void LoaderRangeStart(TargetState *ts);
extern void LoaderRangeFinish(TargetState *ts);
extern void LoaderRangeAbort(TargetState *ts);
extern void LoaderEnd(TargetState *ts);

/* Rows buffered before a multi-insert, in all of a target's buffers. */
#define MAX_BUFFERED_ROWS 1000

/* loader_partitions.c */
extern void PartitionsBegin(TargetState *ts);
extern void PartitionsEmit(TargetState *ts, Datum *values, bool *nulls);
extern void PartitionsFinish(TargetState *ts);
extern void PartitionsEnd(TargetState *ts);
extern void PartitionsAbort(TargetState *ts);

#endif							/* STREAMML_LOADER_H */
