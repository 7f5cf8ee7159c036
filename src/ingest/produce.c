/*
 * produce.c
 *		SQL streamml.produce(): write a message to Kafka from SQL.
 *
 * Each backend keeps one producer per broker list, made on first use and
 * kept for the life of the backend, so that publishing many rows (say,
 * predictions) does not pay a connection per call.  A call returns once
 * Kafka has acknowledged the message, or fails with the reason after
 * streamml.produce_timeout.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "ingest.h"

typedef struct CachedProducer
{
	char	   *brokers;
	KafkaClient *kc;
} CachedProducer;

static List *producers = NIL;

/* The backend's producer for a broker list. */
static KafkaClient *
GetProducer(const char *brokers)
{
	ListCell   *lc;
	CachedProducer *cp;
	char		err[512];
	KafkaClient *kc;
	MemoryContext old;

	foreach(lc, producers)
	{
		cp = lfirst(lc);
		if (strcmp(cp->brokers, brokers) == 0)
			return cp->kc;
	}
	kc = KafkaProducerCreate(brokers, NIL, err, sizeof(err));
	if (kc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot create a kafka producer for \"%s\": %s", brokers, err)));
	old = MemoryContextSwitchTo(TopMemoryContext);
	cp = palloc(sizeof(CachedProducer));
	cp->brokers = pstrdup(brokers);
	cp->kc = kc;
	producers = lappend(producers, cp);
	MemoryContextSwitchTo(old);
	return kc;
}

PG_FUNCTION_INFO_V1(streamml_produce);

/* SQL streamml.produce(brokers, topic, value, key): one message, acknowledged. */
Datum
streamml_produce(PG_FUNCTION_ARGS)
{
	char	   *brokers;
	char	   *topic;
	text	   *value;
	text	   *key = PG_ARGISNULL(3) ? NULL : PG_GETARG_TEXT_PP(3);
	char		err[512];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("brokers and topic must not be null")));
	brokers = text_to_cstring(PG_GETARG_TEXT_PP(0));
	topic = text_to_cstring(PG_GETARG_TEXT_PP(1));
	value = PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2);
	if (!KafkaProduce(GetProducer(brokers), topic,
					  key ? VARDATA_ANY(key) : NULL,
					  key ? VARSIZE_ANY_EXHDR(key) : 0,
					  value ? VARDATA_ANY(value) : NULL,
					  value ? VARSIZE_ANY_EXHDR(value) : 0,
					  streamml_produce_timeout, err, sizeof(err)))
	{
		/* a cancel or statement_timeout that stopped the wait */
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("cannot produce to kafka topic \"%s\": %s", topic, err)));
	}
	PG_RETURN_VOID();
}
