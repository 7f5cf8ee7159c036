/*
 * kafka.c
 *		The only file of pg_streamml that includes rdkafka.h: a small
 *		interface over librdkafka for the consumer workers and produce().
 *
 * librdkafka runs its own threads, which must never call into the backend
 * (no elog, no palloc).  So nothing here is registered as a callback that
 * librdkafka threads could run: logs are sent to the client's main queue
 * (log.queue) and errors, logs, delivery reports and rebalances are served
 * by KafkaServe() from the backend's own thread, where the callbacks only
 * copy text into a fixed buffer of the client.  The worker's main loop then
 * picks the last error up with KafkaTakeError() and reports it.
 *
 * Errors are reported so that a user can act on them and a server log
 * stays readable: a broker that cannot be reached says whether its name
 * does not resolve or its port refuses, and librdkafka's variable suffix
 * ("after 3ms in state CONNECT") is cut, so that the same failure has the
 * same text each time.  A worker logs a text once, and then only counts it
 * until another one comes (stream_stats counts it too).
 *
 * Memory: the client struct is malloc'ed (it outlives transactions and
 * memory contexts, and librdkafka keeps a pointer to it as opaque); every
 * array handed to librdkafka is its own (topic partition lists).
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/timestamp.h"

#include "ingest.h"

static bool ReaderFirstAt(KafkaClient *kc, const char *topic,
						  int32 partition, int64 offset, int timeout_ms,
						  int64 *found, int64 *ts_ms, int64 *eof,
						  char *errbuf, size_t errlen);

struct KafkaClient
{
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue;	/* consumer queue (messages) */
	rd_kafka_queue_t *main_queue;	/* logs, errors, rebalances */
	bool		has_error;
	char		error[512];		/* last error from a callback */
	char		cause[512];		/* why a broker cannot be reached, until one
								 * answers again */
	bool		all_down;		/* librdkafka said every broker is down */
	char		logged[512];	/* the error last written to the server log */
	int			repeats;		/* how often it came again since */
	int			delivery_err;	/* last delivery report error */
	bool		delivered;
	/* pending rebalance (group mode) */
	KafkaRebalance rebalance;
	rd_kafka_topic_partition_list_t *rebalance_parts;
	/* reads single messages (KafkaMessageTimestampAt); consumers only */
	rd_kafka_conf_t *reader_conf;	/* template, made with the client */
	rd_kafka_t *reader;			/* started on first use */
	rd_kafka_queue_t *reader_queue;
};

/* Cuts librdkafka's variable suffix, "(after 3ms in state CONNECT...)". */
static void
StripSuffix(char *text)
{
	char	   *p = strstr(text, " (after ");

	if (p)
		*p = '\0';
}

/*
 * Says why a broker cannot be reached, from an error of librdkafka such as
 * "kafka1:9092/bootstrap: Failed to resolve 'kafka1:9092': Name or service
 * not known (after 1ms in state CONNECT)".
 */
static void
DescribeBrokerError(int err, const char *reason, char *buf, size_t len)
{
	const char *colon = strstr(reason, ": ");
	const char *slash = strchr(reason, '/');
	const char *detail = colon ? colon + 2 : reason;
	int			namelen;
	const char *what;

	if (slash == NULL || (colon && slash > colon))
		slash = colon;
	namelen = slash ? (int) (slash - reason) : (int) strlen(reason);
	if (err == RD_KAFKA_RESP_ERR__RESOLVE)
		what = "its host name does not resolve";
	else if (strstr(reason, "Connection refused") != NULL)
		what = "nothing accepts connections on its port";
	else
		what = "the connection failed";
	snprintf(buf, len, "cannot reach broker \"%.*s\": %s (%s)",
			 namelen, reason, what, detail);
	StripSuffix(buf);
	/* the detail lost its closing parenthesis with the suffix */
	if (strchr(buf, '(') != NULL && buf[strlen(buf) - 1] != ')' &&
		strlen(buf) + 1 < len)
		strcat(buf, ")");
}

/* Records an error seen by librdkafka; runs in the backend's thread. */
static void
ErrorCallback(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	KafkaClient *kc = opaque;

	if (kc == NULL)
		return;
	if (err == RD_KAFKA_RESP_ERR__RESOLVE || err == RD_KAFKA_RESP_ERR__TRANSPORT)
	{
		DescribeBrokerError(err, reason, kc->cause, sizeof(kc->cause));
		strlcpy(kc->error, kc->cause, sizeof(kc->error));
	}
	else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && kc->cause[0])
	{
		/* Follows the broker errors: the cause says more. */
		kc->all_down = true;
		strlcpy(kc->error, kc->cause, sizeof(kc->error));
	}
	else
	{
		if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
			kc->all_down = true;
		snprintf(kc->error, sizeof(kc->error), "%s: %s",
				 rd_kafka_err2str((rd_kafka_resp_err_t) err), reason);
		StripSuffix(kc->error);
	}
	kc->has_error = true;
}

/*
 * Keeps warnings and errors from librdkafka's log as the last error.  A
 * broker's failures ("FAIL") also come as errors, which say more.
 */
static void
LogCallback(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	KafkaClient *kc = rd_kafka_opaque(rk);

	if (kc == NULL || level > 4 || strcmp(fac, "FAIL") == 0)
		return;
	snprintf(kc->error, sizeof(kc->error), "%s: %s", fac, buf);
	StripSuffix(kc->error);
	kc->has_error = true;
}

/*
 * Writes an error to the server log, from a worker: once, and then only
 * counts it while it comes again, so that a broker down for an hour does
 * not fill the log.  The next other error says how often the last came.
 */
static void
LogOnce(KafkaClient *kc, const char *text)
{
	if (MyBgworkerEntry == NULL)
		return;					/* produce(): its caller gets the error */
	if (strcmp(kc->logged, text) == 0)
	{
		kc->repeats++;
		return;
	}
	ereport(LOG,
			(errmsg("%s: %s", MyBgworkerEntry->bgw_name, text),
			 kc->repeats > 0 ?
			 errdetail("The previous error, \"%s\", came %d more times.",
					   kc->logged, kc->repeats) : 0));
	strlcpy(kc->logged, text, sizeof(kc->logged));
	kc->repeats = 0;
}

/* Delivery report of produce(): remembers the outcome of the message. */
static void
DeliveryCallback(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	KafkaClient *kc = opaque;

	kc->delivered = true;
	kc->delivery_err = m->err;
	if (m->err)
		snprintf(kc->error, sizeof(kc->error), "%s", rd_kafka_err2str(m->err));
}

/* Rebalance in group mode: stash it for the main loop to answer. */
static void
RebalanceCallback(rd_kafka_t *rk, rd_kafka_resp_err_t err,
				  rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	KafkaClient *kc = opaque;

	if (kc->rebalance_parts)
		rd_kafka_topic_partition_list_destroy(kc->rebalance_parts);
	kc->rebalance_parts = rd_kafka_topic_partition_list_copy(parts);
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
		kc->rebalance = KAFKA_REBALANCE_ASSIGN;
	else
	{
		/* Revocation needs no catalog lookup: answer it here. */
		rd_kafka_assign(rk, NULL);
		kc->rebalance = KAFKA_REBALANCE_REVOKE;
	}
}

/* Builds a configuration from the broker list and user properties. */
static rd_kafka_conf_t *
MakeConf(KafkaClient *kc, const char *brokers, List *props,
		 char *errbuf, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	ListCell   *lc;

	rd_kafka_conf_set_opaque(conf, kc);
	rd_kafka_conf_set_error_cb(conf, ErrorCallback);
	rd_kafka_conf_set_log_cb(conf, LogCallback);
	if (rd_kafka_conf_set(conf, "log.queue", "true", errbuf, errlen) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errbuf, errlen) != RD_KAFKA_CONF_OK)
	{
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	foreach(lc, props)
	{
		KafkaProperty *p = lfirst(lc);

		if (rd_kafka_conf_set(conf, p->name, p->value, errbuf, errlen) != RD_KAFKA_CONF_OK)
		{
			rd_kafka_conf_destroy(conf);
			return NULL;
		}
	}
	return conf;
}

/* Finishes a client: logs to the main queue, which KafkaServe() serves. */
static KafkaClient *
FinishClient(KafkaClient *kc, rd_kafka_conf_t *conf, rd_kafka_type_t type,
			 char *errbuf, size_t errlen)
{
	kc->rk = rd_kafka_new(type, conf, errbuf, errlen);
	if (kc->rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		free(kc);
		return NULL;
	}
	kc->main_queue = rd_kafka_queue_get_main(kc->rk);
	rd_kafka_set_log_queue(kc->rk, kc->main_queue);
	return kc;
}

/*
 * Creates a consumer.  Without a group the caller assigns partitions itself
 * (KafkaAssign); with subscribe it joins the consumer group.
 */
KafkaClient *
KafkaConsumerCreate(const char *brokers, List *props, const char *group,
					bool subscribe, char *errbuf, size_t errlen)
{
	KafkaClient *kc = calloc(1, sizeof(KafkaClient));
	rd_kafka_conf_t *conf;

	if (kc == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	/* Our defaults first, so that the user's properties override them. */
	{
		List	   *all = NIL;
		KafkaProperty d[] = {
			{"enable.auto.commit", "false"},
			{"enable.auto.offset.store", "false"},
			{"enable.partition.eof", "false"},
			{"auto.offset.reset", "earliest"},
			{"fetch.wait.max.ms", "20"},

			/*
			 * The partitions' fetch queues all feed the one consumer
			 * queue, and librdkafka stops fetching every partition while
			 * that queue holds queued.min.messages (100000 by default):
			 * fetching then went in bursts and the worker waited for
			 * messages most of the time (0.4x COPY's rate).  Prefetch is
			 * still bounded by queued.max.messages.kbytes (64 MB).
			 */
			{"queued.min.messages", "10000000"},
			{"socket.keepalive.enable", "true"},
			{"reconnect.backoff.max.ms", "2000"},

			/*
			 * Kafka's default, said out loud: messages of open or aborted
			 * transactions are never loaded, and the end of a partition
			 * is its last stable offset (see KafkaReadableEnd).
			 */
			{"isolation.level", "read_committed"},
		};

		/*
		 * Last, over the user's: an offset out of range (retention, a
		 * re-created topic) reaches the worker as an error and stops the
		 * partition's fetching, instead of a silent jump that would skip
		 * or reload messages; the worker decides by the stream's option
		 * on_offset_out_of_range.
		 */
		static KafkaProperty reset_error = {"auto.offset.reset", "error"};
		int			i;

		for (i = 0; i < lengthof(d); i++)
			all = lappend(all, &d[i]);
		if (group)
		{
			static KafkaProperty g = {"group.id", NULL};

			g.value = (char *) group;
			all = lappend(all, &g);
		}
		all = list_concat(all, props);
		all = lappend(all, &reset_error);
		conf = MakeConf(kc, brokers, all, errbuf, errlen);

		/*
		 * The reader's configuration: the same, so that it reaches the
		 * brokers the same way (security), but never part of a group and
		 * told of the end of a partition; it needs a group.id for
		 * rd_kafka_assign only.  Its callbacks get no client: what it
		 * reports is lost, and its reads fail by their timeout.
		 */
		if (conf != NULL)
		{
			KafkaProperty r[] = {
				{"group.id", (char *) (group ? group : "pg_streamml.reader")},
				{"enable.partition.eof", "true"},
				{"auto.offset.reset", "error"},
				{"enable.auto.commit", "false"},
				{"enable.auto.offset.store", "false"},
				{"queued.min.messages", "1"},
			};

			if (group == NULL)
				all = lappend(all, &r[0]);
			for (i = 1; i < lengthof(r); i++)
				all = lappend(all, &r[i]);
			kc->reader_conf = MakeConf(NULL, brokers, all, errbuf, errlen);
			if (kc->reader_conf == NULL)
			{
				rd_kafka_conf_destroy(conf);
				conf = NULL;
			}
		}
		list_free(all);
	}
	if (conf == NULL)
	{
		free(kc);
		return NULL;
	}
	if (subscribe)
		rd_kafka_conf_set_rebalance_cb(conf, RebalanceCallback);
	{
		rd_kafka_conf_t *reader_conf = kc->reader_conf;

		kc = FinishClient(kc, conf, RD_KAFKA_CONSUMER, errbuf, errlen);
		if (kc == NULL)
		{
			rd_kafka_conf_destroy(reader_conf);
			return NULL;
		}
	}
	kc->queue = rd_kafka_queue_get_consumer(kc->rk);
	return kc;
}

/* Creates a producer with our defaults and the user's properties. */
KafkaClient *
KafkaProducerCreate(const char *brokers, List *props, char *errbuf,
					size_t errlen)
{
	KafkaClient *kc = calloc(1, sizeof(KafkaClient));
	rd_kafka_conf_t *conf;

	if (kc == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	{
		List	   *all = NIL;
		KafkaProperty d[] = {
			{"linger.ms", "0"},
			{"enable.idempotence", "false"},
		};
		int			i;

		for (i = 0; i < lengthof(d); i++)
			all = lappend(all, &d[i]);
		all = list_concat(all, props);
		conf = MakeConf(kc, brokers, all, errbuf, errlen);
		list_free(all);
	}
	if (conf == NULL)
	{
		free(kc);
		return NULL;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, DeliveryCallback);
	return FinishClient(kc, conf, RD_KAFKA_PRODUCER, errbuf, errlen);
}

/*
 * Closes a client and frees everything it holds.  The consumer is closed
 * first: in group mode closing revokes the assignment through
 * RebalanceCallback, which replaces kc->rebalance_parts, so that list may
 * be freed only afterwards.
 */
void
KafkaClientDestroy(KafkaClient *kc)
{
	if (kc == NULL)
		return;
	KafkaCloseReader(kc);
	if (kc->reader_conf)
		rd_kafka_conf_destroy(kc->reader_conf);
	if (rd_kafka_type(kc->rk) == RD_KAFKA_CONSUMER)
		rd_kafka_consumer_close(kc->rk);
	if (kc->queue)
		rd_kafka_queue_destroy(kc->queue);
	if (kc->main_queue)
		rd_kafka_queue_destroy(kc->main_queue);
	if (kc->rebalance_parts)
		rd_kafka_topic_partition_list_destroy(kc->rebalance_parts);
	kc->rebalance_parts = NULL;
	rd_kafka_destroy(kc->rk);
	free(kc);
}

/* Serves the main queue: logs, errors, rebalances, delivery reports. */
void
KafkaServe(KafkaClient *kc)
{
	rd_kafka_poll(kc->rk, 0);
}

/*
 * The partition count of a topic from fresh metadata, or -1 on error.
 *
 * While no broker is up, librdkafka waits for one as long as it is let;
 * so the metadata is asked for in short slices, serving librdkafka's
 * errors in between, and once every broker is known down the error says
 * why (a name that does not resolve, a port that refuses) within a slice
 * rather than after the whole timeout.  Once a broker took the request,
 * its answer is waited for.
 */
int
KafkaPartitionCount(KafkaClient *kc, const char *topic, int timeout_ms,
					char *errbuf, size_t errlen)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(kc->rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   timeout_ms);
	bool		sent = false;
	int			n = -1;

	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
														   deadline);

		if (left <= 0)
		{
			err = RD_KAFKA_RESP_ERR__TIMED_OUT;
			break;
		}
		/* a cancel or statement_timeout is served by the caller */
		if (InterruptPending)
		{
			err = RD_KAFKA_RESP_ERR__INTR;
			break;
		}
		err = rd_kafka_metadata(kc->rk, 0, rkt, &md,
								(int) Min(left, sent ? 500 : 200));
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
			break;
		if (err == RD_KAFKA_RESP_ERR__TIMED_OUT)
			sent = true;
		else if (err != RD_KAFKA_RESP_ERR__TRANSPORT)
			break;
		rd_kafka_poll(kc->rk, 0);
		if (kc->all_down && kc->cause[0])
			break;
	}
	if (err)
	{
		if (kc->cause[0] && (kc->all_down || err == RD_KAFKA_RESP_ERR__TRANSPORT))
		{
			snprintf(errbuf, errlen, "%s", kc->cause);
			LogOnce(kc, kc->cause);
		}
		else
			snprintf(errbuf, errlen, "cannot read metadata of topic \"%s\": %s",
					 topic, rd_kafka_err2str(err));
	}
	else
	{
		/* A broker answered: what was wrong is over. */
		kc->cause[0] = '\0';
		kc->all_down = false;
		if (md->topic_cnt == 1 && md->topics[0].err == 0)
			n = md->topics[0].partition_cnt;
		else
			snprintf(errbuf, errlen, "topic \"%s\": %s", topic,
					 rd_kafka_err2str(md->topic_cnt == 1 ? md->topics[0].err
									  : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
		rd_kafka_metadata_destroy(md);
	}
	rd_kafka_topic_destroy(rkt);
	return n;
}

/* Builds a topic partition list; offsets may be NULL. */
static rd_kafka_topic_partition_list_t *
MakeList(const char *topic, int n, const int32 *parts, const int64 *offsets)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
	int			i;

	for (i = 0; i < n; i++)
	{
		rd_kafka_topic_partition_t *tp =
			rd_kafka_topic_partition_list_add(l, topic, parts[i]);

		if (offsets)
			tp->offset = offsets[i];
	}
	return l;
}

/*
 * Moves the fetch position of partitions this consumer holds (group mode,
 * where the group owns the assignment); messages already fetched for them
 * are dropped by librdkafka.
 */
bool
KafkaSeek(KafkaClient *kc, const char *topic, int n, const int32 *parts,
		  const int64 *offsets, int timeout_ms, char *errbuf, size_t errlen)
{
	rd_kafka_topic_partition_list_t *l = MakeList(topic, n, parts, offsets);
	rd_kafka_error_t *error = rd_kafka_seek_partitions(kc->rk, l, timeout_ms);
	bool		ok = error == NULL;
	int			i;

	if (error)
	{
		snprintf(errbuf, errlen, "cannot seek: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
	for (i = 0; ok && i < n; i++)
		if (l->elems[i].err)
		{
			snprintf(errbuf, errlen, "cannot seek partition %d: %s",
					 parts[i], rd_kafka_err2str(l->elems[i].err));
			ok = false;
		}
	rd_kafka_topic_partition_list_destroy(l);
	return ok;
}

/* Replaces the assignment with these partitions at these offsets. */
bool
KafkaAssign(KafkaClient *kc, const char *topic, int n, const int32 *parts,
			const int64 *offsets, char *errbuf, size_t errlen)
{
	rd_kafka_topic_partition_list_t *l = MakeList(topic, n, parts, offsets);
	rd_kafka_resp_err_t err = rd_kafka_assign(kc->rk, l);

	rd_kafka_topic_partition_list_destroy(l);
	if (err)
		snprintf(errbuf, errlen, "cannot assign partitions: %s",
				 rd_kafka_err2str(err));
	return err == 0;
}

/* Joins the consumer group for one topic (group mode). */
bool
KafkaSubscribe(KafkaClient *kc, const char *topic, char *errbuf,
			   size_t errlen)
{
	rd_kafka_topic_partition_list_t *l =
		MakeList(topic, 1, (int32[]) {RD_KAFKA_PARTITION_UA}, NULL);
	rd_kafka_resp_err_t err = rd_kafka_subscribe(kc->rk, l);

	rd_kafka_topic_partition_list_destroy(l);
	if (err)
		snprintf(errbuf, errlen, "cannot subscribe to topic \"%s\": %s",
				 topic, rd_kafka_err2str(err));
	return err == 0;
}

/* A rebalance waiting for an answer, with its partitions (palloc'ed). */
KafkaRebalance
KafkaPollRebalance(KafkaClient *kc, int32 **parts, int *n)
{
	KafkaRebalance r = kc->rebalance;
	int			i;

	if (r == KAFKA_REBALANCE_NONE)
		return r;
	*n = kc->rebalance_parts->cnt;
	*parts = palloc(sizeof(int32) * (*n + 1));
	for (i = 0; i < *n; i++)
		(*parts)[i] = kc->rebalance_parts->elems[i].partition;
	return r;
}

/* Answers a pending assignment with the offsets read from the catalog. */
void
KafkaAnswerRebalance(KafkaClient *kc, KafkaRebalance kind, const char *topic,
					 int n, const int32 *parts, const int64 *offsets)
{
	if (kind == KAFKA_REBALANCE_ASSIGN)
	{
		rd_kafka_topic_partition_list_t *l = MakeList(topic, n, parts, offsets);

		rd_kafka_assign(kc->rk, l);
		rd_kafka_topic_partition_list_destroy(l);
	}
	kc->rebalance = KAFKA_REBALANCE_NONE;
}

/* What a message error from librdkafka means for the worker. */
static KafkaMessageError
MessageErrorKind(rd_kafka_resp_err_t err)
{
	switch (err)
	{
		case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
		case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
			return KAFKA_MSG_OUT_OF_RANGE;
		case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
			return KAFKA_MSG_TOO_LARGE;
		case RD_KAFKA_RESP_ERR__BAD_MSG:
			/* a CRC mismatch: librdkafka goes on after the message */
			return KAFKA_MSG_CORRUPT;
		default:
			return KAFKA_MSG_FETCH_ERROR;
	}
}

/*
 * Fetches up to max messages, waiting at most timeout_ms.  An error of a
 * partition (an offset out of range, a message too large or corrupt, a
 * failed fetch) comes back as a KafkaMessage with error set, in its place
 * among the messages, so that the worker accounts for it; an error of the
 * client as a whole (no partition) is freed here and returned in errbuf.
 */
int
KafkaConsumeBatch(KafkaClient *kc, int timeout_ms, KafkaMessage *out,
				  int max, char *errbuf, size_t errlen)
{
	rd_kafka_message_t *msgs[1024];
	ssize_t		got;
	int			n = 0;
	int			i;

	if (max > lengthof(msgs))
		max = lengthof(msgs);
	/*
	 * rd_kafka_consume_batch_queue waits until it has max messages or the
	 * timeout has passed, so under a light load every batch would wait the
	 * whole timeout.  Take what is queued now; if nothing is, wait for one
	 * message at most timeout_ms, then take what came with it.
	 */
	got = rd_kafka_consume_batch_queue(kc->queue, 0, msgs, max);
	if (got == 0 && timeout_ms > 0)
	{
		rd_kafka_message_t *first = rd_kafka_consume_queue(kc->queue,
														   timeout_ms);

		if (first != NULL)
		{
			msgs[0] = first;
			got = max > 1 ?
				rd_kafka_consume_batch_queue(kc->queue, 0, msgs + 1, max - 1) : 0;
			got = got < 0 ? 1 : got + 1;
		}
	}
	if (got < 0)
	{
		snprintf(errbuf, errlen, "%s", rd_kafka_err2str(rd_kafka_last_error()));
		return -1;
	}
	for (i = 0; i < got; i++)
	{
		rd_kafka_message_t *m = msgs[i];
		rd_kafka_timestamp_type_t tstype;

		memset(&out[n], 0, sizeof(KafkaMessage));
		if (m->err)
		{
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			{
				rd_kafka_message_destroy(m);
				continue;
			}
			if (m->rkt == NULL || m->partition < 0 || m->offset < 0)
			{
				snprintf(errbuf, errlen, "%s", rd_kafka_message_errstr(m));
				rd_kafka_message_destroy(m);
				continue;
			}
			out[n].partition = m->partition;
			out[n].offset = m->offset;
			out[n].error = MessageErrorKind(m->err);
			out[n].errstr = rd_kafka_message_errstr(m);
			out[n].timestamp_ms = -1;
			out[n].handle = m;
			n++;
			continue;
		}
		out[n].partition = m->partition;
		out[n].offset = m->offset;
		out[n].key = m->key;
		out[n].key_len = m->key_len;
		out[n].payload = m->payload;
		out[n].payload_len = m->len;
		out[n].timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
		out[n].handle = m;
		n++;
	}
	return n;
}

/* Gives a message back to librdkafka. */
void
KafkaMessageFree(KafkaMessage *m)
{
	if (m->handle)
		rd_kafka_message_destroy((rd_kafka_message_t *) m->handle);
	m->handle = NULL;
}

/* The last value of header name, if the message has one. */
bool
KafkaMessageHeader(KafkaMessage *m, const char *name, const char **value,
				   size_t *len)
{
	rd_kafka_headers_t *hdrs;
	const void *v;

	if (rd_kafka_message_headers(m->handle, &hdrs) != 0)
		return false;
	if (rd_kafka_header_get_last(hdrs, name, &v, len) != 0)
		return false;
	*value = v;
	return true;
}

/* Cached watermarks from the last fetch (no broker round trip). */
bool
KafkaWatermarks(KafkaClient *kc, const char *topic, int32 partition,
				int64 *low, int64 *high)
{
	int64_t		l,
				h;

	if (rd_kafka_get_watermark_offsets(kc->rk, topic, partition, &l, &h) != 0)
		return false;
	*low = l;
	*high = h;
	return h >= 0;
}

/* Watermarks asked of the partition's leader. */
bool
KafkaQueryWatermarks(KafkaClient *kc, const char *topic, int32 partition,
					 int64 *low, int64 *high, int timeout_ms,
					 char *errbuf, size_t errlen)
{
	int64_t		l,
				h;
	rd_kafka_resp_err_t err;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   timeout_ms);

	/* in slices, so that a cancel is served within about 200 ms */
	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
														   deadline);

		if (InterruptPending)
		{
			err = RD_KAFKA_RESP_ERR__INTR;
			break;
		}
		err = rd_kafka_query_watermark_offsets(kc->rk, topic, partition, &l, &h,
											   (int) Max(Min(left, 200), 1));
		if (err != RD_KAFKA_RESP_ERR__TIMED_OUT || left <= 200)
			break;
	}
	if (err)
	{
		snprintf(errbuf, errlen, "cannot read watermarks of partition %d: %s",
				 partition, rd_kafka_err2str(err));
		return false;
	}
	*low = l;
	*high = h;
	return true;
}

/* Does this error say that the broker cannot look offsets up by time? */
static bool
IsUnsupported(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
		err == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION ||
		err == RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
}

/*
 * The first offset of each partition whose timestamp is at or after ts_ms
 * (Kafka's offsetsForTimes), as the broker answers it: KAFKA_OFFSET_END
 * where it found none, KAFKA_OFFSET_UNKNOWN where it says it cannot look
 * offsets up by time (an old broker or message format).  The broker can be
 * wrong: see KafkaMessageTimestampAt.
 */
bool
KafkaOffsetsForTime(KafkaClient *kc, const char *topic, int n,
					const int32 *parts, int64 ts_ms, int64 *offsets,
					int timeout_ms, char *errbuf, size_t errlen)
{
	rd_kafka_topic_partition_list_t *l = MakeList(topic, n, parts, NULL);
	rd_kafka_resp_err_t err;
	int			i;

	for (i = 0; i < n; i++)
		l->elems[i].offset = ts_ms;
	err = rd_kafka_offsets_for_times(kc->rk, l, timeout_ms);
	if (IsUnsupported(err))
	{
		for (i = 0; i < n; i++)
			offsets[i] = KAFKA_OFFSET_UNKNOWN;
		rd_kafka_topic_partition_list_destroy(l);
		return true;
	}
	if (err)
		snprintf(errbuf, errlen, "cannot look offsets up by time: %s",
				 rd_kafka_err2str(err));
	for (i = 0; !err && i < n; i++)
	{
		offsets[i] = l->elems[i].offset;
		if (IsUnsupported(l->elems[i].err))
			offsets[i] = KAFKA_OFFSET_UNKNOWN;
		else if (l->elems[i].err)
		{
			err = l->elems[i].err;
			snprintf(errbuf, errlen, "cannot look offsets up by time in partition %d: %s",
					 parts[i], rd_kafka_err2str(err));
		}
	}
	rd_kafka_topic_partition_list_destroy(l);
	return err == 0;
}

/*
 * Reads one message: the first at or after offset in the partition, with
 * the reader, a consumer handle of its own (so the client's assignment,
 * which may be in the middle of a rebalance, is never touched).  The
 * reader is started on first use and kept for the next reads, until
 * KafkaCloseReader.  On success *found is the message's offset and *ts_ms
 * its timestamp (-1 if it has none), or *found is -1 if the partition has
 * no message from offset to its end.  Waits at most timeout_ms; false with
 * errbuf set on a timeout or an error.
 */
bool
KafkaMessageTimestampAt(KafkaClient *kc, const char *topic, int32 partition,
						int64 offset, int timeout_ms, int64 *found,
						int64 *ts_ms, char *errbuf, size_t errlen)
{
	int64		eof;

	return ReaderFirstAt(kc, topic, partition, offset, timeout_ms, found,
						 ts_ms, &eof, errbuf, errlen);
}

/*
 * Where the messages a read_committed consumer can read end, if none is
 * left from offset on: *end is then the offset at which the reader met the
 * end of the partition, past any transaction markers and aborted messages
 * between offset and there (which a consumer never receives), so storing
 * it skips nothing; a message produced later gets a higher offset.  *end
 * is -1 if a message is there to read.  False with errbuf set if Kafka did
 * not answer within timeout_ms.
 */
bool
KafkaReadableEnd(KafkaClient *kc, const char *topic, int32 partition,
				 int64 offset, int timeout_ms, int64 *end, char *errbuf,
				 size_t errlen)
{
	int64		found,
				ts;

	*end = -1;
	if (!ReaderFirstAt(kc, topic, partition, offset, timeout_ms, &found, &ts,
					   end, errbuf, errlen))
		return false;
	if (found >= 0)
		*end = -1;
	return true;
}

/*
 * The reading behind KafkaMessageTimestampAt and KafkaReadableEnd; *eof is
 * the offset of the end of the partition when *found is -1.
 */
static bool
ReaderFirstAt(KafkaClient *kc, const char *topic, int32 partition,
			  int64 offset, int timeout_ms, int64 *found, int64 *ts_ms,
			  int64 *eof, char *errbuf, size_t errlen)
{
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_resp_err_t err;
	TimestampTz start = GetCurrentTimestamp();
	char		last[256] = "";

	*found = -1;
	*ts_ms = -1;
	if (kc->reader_conf == NULL)
	{
		snprintf(errbuf, errlen, "cannot read messages with a producer");
		return false;
	}
	if (kc->reader == NULL)
	{
		rd_kafka_conf_t *conf = rd_kafka_conf_dup(kc->reader_conf);
		char		msg[256];

		kc->reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, msg, sizeof(msg));
		if (kc->reader == NULL)
		{
			rd_kafka_conf_destroy(conf);
			snprintf(errbuf, errlen, "cannot start a reader: %s", msg);
			return false;
		}
		kc->reader_queue = rd_kafka_queue_get_consumer(kc->reader);
	}

	/*
	 * A new assignment makes librdkafka drop whatever the previous one had
	 * fetched (its messages carry an older version), so what comes next
	 * is from this offset on; the checks below are for safety only.
	 */
	l = MakeList(topic, 1, &partition, &offset);
	err = rd_kafka_assign(kc->reader, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (err)
	{
		snprintf(errbuf, errlen, "cannot read partition %d at offset " INT64_FORMAT ": %s",
				 partition, offset, rd_kafka_err2str(err));
		return false;
	}
	for (;;)
	{
		long		left = timeout_ms -
			TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());
		rd_kafka_message_t *m;
		bool		ours;

		if (left <= 0)
			break;
		m = rd_kafka_consume_queue(kc->reader_queue, (int) left);
		if (m == NULL)
			continue;
		ours = m->rkt != NULL && m->partition == partition &&
			strcmp(rd_kafka_topic_name(m->rkt), topic) == 0;
		if (ours && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF &&
			m->offset >= offset)
		{
			*eof = m->offset;
			rd_kafka_message_destroy(m);
			return true;		/* no message from offset on */
		}
		if (ours && (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
					 m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE))
		{
			snprintf(errbuf, errlen, "cannot read partition %d at offset " INT64_FORMAT ": %s",
					 partition, offset, rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			return false;
		}
		if (m->err)
			snprintf(last, sizeof(last), ": %s", rd_kafka_message_errstr(m));
		else if (ours && m->offset >= offset)
		{
			rd_kafka_timestamp_type_t tstype;

			*found = m->offset;
			*ts_ms = rd_kafka_message_timestamp(m, &tstype);
			if (tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || *ts_ms < 0)
				*ts_ms = -1;
			rd_kafka_message_destroy(m);
			return true;
		}
		rd_kafka_message_destroy(m);
	}
	snprintf(errbuf, errlen, "cannot read partition %d at offset " INT64_FORMAT " within %d ms%s",
			 partition, offset, timeout_ms, last);
	return false;
}

/* Stops the reader of KafkaMessageTimestampAt, if it runs. */
void
KafkaCloseReader(KafkaClient *kc)
{
	if (kc->reader == NULL)
		return;
	rd_kafka_queue_destroy(kc->reader_queue);
	kc->reader_queue = NULL;

	/*
	 * Nothing to leave or commit: it never joined a group.  Without the
	 * consumer close, destroying does not wait for a coordinator.
	 */
	rd_kafka_destroy_flags(kc->reader, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	kc->reader = NULL;
}

/* Tells Kafka how far we are, for outside lag monitors only. */
void
KafkaCommitAsync(KafkaClient *kc, const char *topic, int n,
				 const int32 *parts, const int64 *offsets)
{
	rd_kafka_topic_partition_list_t *l = MakeList(topic, n, parts, offsets);

	(void) rd_kafka_commit(kc->rk, l, 1);
	rd_kafka_topic_partition_list_destroy(l);
}

/*
 * Takes the last error recorded by a callback, if any, and writes it to
 * the server log unless it is the one logged last.
 */
bool
KafkaTakeError(KafkaClient *kc, char *buf, size_t len)
{
	if (!kc->has_error)
		return false;
	snprintf(buf, len, "%s", kc->error);
	kc->has_error = false;
	LogOnce(kc, kc->error);
	return true;
}

/* Produces one message and waits for its delivery report. */
bool
KafkaProduce(KafkaClient *kc, const char *topic, const char *key,
			 size_t key_len, const char *value, size_t value_len,
			 int timeout_ms, char *errbuf, size_t errlen)
{
	rd_kafka_resp_err_t err;

	kc->delivered = false;
	err = rd_kafka_producev(kc->rk,
							RD_KAFKA_V_TOPIC(topic),
							RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
							RD_KAFKA_V_KEY((void *) key, key_len),
							RD_KAFKA_V_VALUE((void *) value, value_len),
							RD_KAFKA_V_END);
	if (err)
	{
		snprintf(errbuf, errlen, "%s", rd_kafka_err2str(err));
		return false;
	}
	/*
	 * Wait in slices, so that a cancel or statement_timeout is served within
	 * about 100 ms: the message is then purged (it goes out now or never),
	 * and the caller's CHECK_FOR_INTERRUPTS raises the cancel.
	 */
	{
		TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   timeout_ms);

		for (;;)
		{
			long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
															   deadline);

			rd_kafka_flush(kc->rk, (int) Max(Min(left, 100), 0));
			rd_kafka_poll(kc->rk, 0);
			if (kc->delivered || left <= 100)
				break;
			if (InterruptPending)
			{
				rd_kafka_purge(kc->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
				rd_kafka_poll(kc->rk, 0);
				snprintf(errbuf, errlen, "canceled");
				return false;
			}
		}
	}
	if (!kc->delivered)
	{
		snprintf(errbuf, errlen, "no delivery report within %d ms%s%s",
				 timeout_ms, kc->has_error ? ": " : "",
				 kc->has_error ? kc->error : "");
		kc->has_error = false;
		/* Do not let the message go out later, unreported. */
		rd_kafka_purge(kc->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_poll(kc->rk, 0);
		return false;
	}
	if (kc->delivery_err)
	{
		snprintf(errbuf, errlen, "%s", kc->error);
		return false;
	}
	return true;
}
