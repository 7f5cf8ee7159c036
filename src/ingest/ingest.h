/*
 * ingest.h
 *		Kafka ingestion: declarations shared by the files of src/ingest.
 *
 * Only kafka.c includes rdkafka.h.  The rest of the code sees the small
 * interface below: an opaque consumer or producer handle and plain C
 * structs for the messages, so that no librdkafka type leaks into code that
 * also runs PostgreSQL's executor.
 */
#ifndef STREAMML_INGEST_H
#define STREAMML_INGEST_H

#include "postgres.h"

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/* Called once from _PG_init: GUCs, shared memory, the launcher. */
extern void IngestInit(void);

/* ---- GUCs (guc.c) ---- */
extern char *streamml_database;
extern int	streamml_launcher_naptime;
extern int	streamml_max_workers;
extern int	streamml_max_workers_per_role;
extern int	streamml_max_stat_slots;
extern int	streamml_produce_timeout;
extern int	streamml_debug_visible_partitions;
extern void IngestDefineGucs(void);

/* ---- Kafka interface (kafka.c) ---- */

/* Logical start positions, as Kafka numbers them. */
#define KAFKA_OFFSET_BEGINNING	(-2)
#define KAFKA_OFFSET_END		(-1)
/* KafkaOffsetsForTime: the broker cannot look offsets up by time. */
#define KAFKA_OFFSET_UNKNOWN	(-1001)

typedef struct KafkaClient KafkaClient;

/*
 * What librdkafka said about a partition instead of giving a message
 * (KafkaMessage.error); none of these is ever dropped by the worker.
 */
typedef enum KafkaMessageError
{
	KAFKA_MSG_OK = 0,			/* a message */
	KAFKA_MSG_OUT_OF_RANGE,		/* offset is not in the log; fetching stopped */
	KAFKA_MSG_TOO_LARGE,		/* the message at offset cannot be fetched */
	KAFKA_MSG_CORRUPT,			/* offset failed its CRC and was skipped */
	KAFKA_MSG_FETCH_ERROR		/* fetching failed; librdkafka retries */
} KafkaMessageError;

/* One consumed message; the pointers stay valid until KafkaMessageFree. */
typedef struct KafkaMessage
{
	int32		partition;
	int64		offset;
	KafkaMessageError error;	/* KAFKA_MSG_OK for a message */
	const char *errstr;			/* librdkafka's text, for an error */
	const char *key;			/* NULL when the message has no key */
	size_t		key_len;
	const char *payload;		/* NULL for a tombstone */
	size_t		payload_len;
	int64		timestamp_ms;	/* -1 when unknown */
	void	   *handle;			/* the librdkafka message */
} KafkaMessage;

/* A property for librdkafka: name = value. */
typedef struct KafkaProperty
{
	char	   *name;
	char	   *value;
} KafkaProperty;

extern KafkaClient *KafkaConsumerCreate(const char *brokers, List *props,
										const char *group, bool subscribe,
										char *errbuf, size_t errlen);
extern KafkaClient *KafkaProducerCreate(const char *brokers, List *props,
										char *errbuf, size_t errlen);
extern void KafkaClientDestroy(KafkaClient *kc);
extern int	KafkaPartitionCount(KafkaClient *kc, const char *topic,
								int timeout_ms, char *errbuf, size_t errlen);
extern bool KafkaSeek(KafkaClient *kc, const char *topic, int n,
					  const int32 *parts, const int64 *offsets, int timeout_ms,
					  char *errbuf, size_t errlen);
extern bool KafkaAssign(KafkaClient *kc, const char *topic, int n,
						const int32 *partitions, const int64 *offsets,
						char *errbuf, size_t errlen);
extern bool KafkaSubscribe(KafkaClient *kc, const char *topic,
						   char *errbuf, size_t errlen);
extern int	KafkaConsumeBatch(KafkaClient *kc, int timeout_ms,
							  KafkaMessage *out, int max,
							  char *errbuf, size_t errlen);
extern void KafkaMessageFree(KafkaMessage *m);
extern bool KafkaMessageHeader(KafkaMessage *m, const char *name,
							   const char **value, size_t *len);
extern bool KafkaWatermarks(KafkaClient *kc, const char *topic,
							int32 partition, int64 *low, int64 *high);
extern bool KafkaQueryWatermarks(KafkaClient *kc, const char *topic,
								 int32 partition, int64 *low, int64 *high,
								 int timeout_ms, char *errbuf, size_t errlen);
extern bool KafkaOffsetsForTime(KafkaClient *kc, const char *topic, int n,
								const int32 *partitions, int64 ts_ms,
								int64 *offsets, int timeout_ms,
								char *errbuf, size_t errlen);
extern bool KafkaMessageTimestampAt(KafkaClient *kc, const char *topic,
									int32 partition, int64 offset,
									int timeout_ms, int64 *found,
									int64 *ts_ms, char *errbuf,
									size_t errlen);
extern bool KafkaReadableEnd(KafkaClient *kc, const char *topic,
							 int32 partition, int64 offset, int timeout_ms,
							 int64 *end, char *errbuf, size_t errlen);
extern void KafkaCloseReader(KafkaClient *kc);
extern void KafkaCommitAsync(KafkaClient *kc, const char *topic, int n,
							 const int32 *partitions, const int64 *offsets);
extern bool KafkaTakeError(KafkaClient *kc, char *buf, size_t len);
extern void KafkaServe(KafkaClient *kc);

/* Group mode: a rebalance waiting for the main loop to answer it. */
typedef enum KafkaRebalance
{
	KAFKA_REBALANCE_NONE,
	KAFKA_REBALANCE_ASSIGN,
	KAFKA_REBALANCE_REVOKE
} KafkaRebalance;
extern KafkaRebalance KafkaPollRebalance(KafkaClient *kc, int32 **partitions,
										 int *n);
extern void KafkaAnswerRebalance(KafkaClient *kc, KafkaRebalance kind,
								 const char *topic, int n,
								 const int32 *partitions,
								 const int64 *offsets);

extern bool KafkaProduce(KafkaClient *kc, const char *topic,
						 const char *key, size_t key_len,
						 const char *value, size_t value_len,
						 int timeout_ms, char *errbuf, size_t errlen);

/* ---- Streams (catalog.c) ---- */

/* What a metadata column takes from the message. */
typedef enum IngestSource
{
	SRC_DEFAULT,				/* the format's default mapping */
	SRC_PATH,					/* a dotted path in the message (json) */
	SRC_FIELD,					/* a field number (csv) */
	SRC_TOPIC,
	SRC_PARTITION,
	SRC_OFFSET,
	SRC_KEY,
	SRC_TIMESTAMP,
	SRC_HEADER,
	SRC_VALUE					/* the whole message (text) */
} IngestSource;

/* A stream as the catalog records it, with its options parsed. */
typedef struct StreamConfig
{
	int32		id;
	char	   *name;
	Oid			owner;
	Oid			target;
	char	   *brokers;
	char	   *topic;
	char	   *format;
	Jsonb	   *options;
	int			generation;
	/* parsed options */
	char	   *start;			/* earliest, latest or a timestamp */
	int			workers;
	int			batch_size;
	int			flush_ms;
	char	   *group;			/* consumer-group mode when not NULL */
	List	   *kafka_props;	/* of KafkaProperty */
	List	   *column_map;		/* of ColumnSpec, from "columns" */
	char		csv_delimiter;
	bool		csv_header;
	bool		epoch_ms;		/* epoch numbers are milliseconds */
	char	   *route_field;	/* routing: field name, or NULL */
	List	   *routes;			/* of RouteSpec */
	int			metadata_refresh_ms;
	bool		fail_on_out_of_range;	/* else go on from the earliest */
} StreamConfig;

/* One entry of the "columns" option. */
typedef struct ColumnSpec
{
	char	   *column;
	IngestSource source;
	char	   *path;			/* dotted path, header name or field */
} ColumnSpec;

/* One entry of the "routes" option: messages whose field equals value. */
typedef struct RouteSpec
{
	char	   *value;
	Oid			target;
} RouteSpec;

extern StreamConfig *StreamConfigParse(int32 id, const char *name, Oid owner,
									   Oid target, const char *brokers,
									   const char *topic, const char *format,
									   Jsonb *options, int generation,
									   bool for_worker);
extern int64 ParseStartPosition(const char *pos, bool *is_time);

/* ---- Shared memory statistics (stats.c) ---- */
extern void StatsShmemRequest(void);
extern void StatsShmemStartup(void);
extern void WakeLauncherAtCommit(void);
extern void StatsBatch(int32 stream, int32 partition, int64 next_offset,
					   int64 high, int64 rows, int64 rejected, int pid);
extern void StatsError(int32 stream, int32 partition, const char *msg,
					   int pid);
extern void StatsClearError(int32 stream, int pid);
extern void StatsForgetStream(int32 stream);
extern void StatsForgetPartition(int32 stream, int32 partition);
extern void StatsSetOwner(Oid owner);

/* ---- Supervisor and launchers (launcher.c) ---- */
extern int	StatsGetLauncherPid(void);
extern void StatsWakeLauncher(void);
extern void LauncherCheckDatabase(void);
extern void LauncherCheckWorkers(const char *stream, int workers);

/* ---- Workers ---- */
extern PGDLLEXPORT void StreamSupervisorMain(Datum arg);
extern PGDLLEXPORT void StreamLauncherMain(Datum arg);
extern PGDLLEXPORT void StreamConsumerMain(Datum arg);
extern void LauncherRegister(void);

#endif							/* STREAMML_INGEST_H */
