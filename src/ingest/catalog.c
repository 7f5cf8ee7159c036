/*
 * catalog.c
 *		The SQL functions that manage streams (create, stop, start, drop,
 *		alter, reset) and the parsing of a stream's options.
 *
 * The functions run as the caller and check what the caller may do: own
 * the stream, hold INSERT on the target.  They then write the catalog as
 * the bootstrap superuser (a local user id change, undone by the end of
 * the function or by the abort of the transaction), because the catalog
 * tables grant users nothing but SELECT: a user cannot write another
 * user's stream or move its offsets by hand.
 *
 * The launcher learns about a change when the transaction commits: a
 * transaction callback wakes it, so a stream starts within milliseconds.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/regproc.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "ingest.h"
#include "options.h"
#include "pg_streamml.h"

static bool wake_registered = false;
static bool wake_pending = false;

/* Wakes the launcher once the transaction that changed streams commits. */
static void
WakeAtCommit(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && wake_pending)
		StatsWakeLauncher();
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT)
		wake_pending = false;
}

/* Asks for the launcher to be woken at commit. */
void
WakeLauncherAtCommit(void)
{
	if (!wake_registered)
	{
		RegisterXactCallback(WakeAtCommit, NULL);
		wake_registered = true;
	}
	wake_pending = true;
}

/* Finds a stream the caller owns; errors if missing or not owned. */
static int32
LookupOwnedStream(const char *name)
{
	Datum		arg = CStringGetTextDatum(name);
	bool		isnull;
	int32		id;
	Oid			owner;

	CatalogExecute("SELECT id, owner FROM streamml.streams WHERE name = $1",
				1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("stream \"%s\" does not exist", name)));
	id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
									 SPI_tuptable->tupdesc, 1, &isnull));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 2, &isnull));
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of stream \"%s\"", name)));
	return id;
}

/* ---- option parsing ---- */

/* The scalar value of a jsonb value as text (for librdkafka properties). */
static char *
ScalarText(JsonbValue *v, const char *key)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("kafka property \"%s\" must be a string, number or boolean",
							key)));
	}
	return NULL;
}

/*
 * Lowest values of librdkafka properties for the streams of a user who is
 * not a superuser.  Below them one worker can keep a core busy: metadata
 * refreshed every millisecond, reconnects with no backoff, fetches that
 * return at once, heartbeats or statistics every millisecond.  Values at
 * or above the minimum, and the special value (off) where there is one,
 * are taken as given.
 */
typedef struct PropertyFloor
{
	const char *name;
	int			minimum;
	bool		has_off;		/* "off" is allowed below the minimum */
	int			off;
} PropertyFloor;

static const PropertyFloor property_floors[] = {
	{"topic.metadata.refresh.interval.ms", 1000, true, -1},
	{"topic.metadata.refresh.fast.interval.ms", 100, false, 0},
	{"metadata.max.age.ms", 1000, false, 0},
	{"reconnect.backoff.ms", 100, false, 0},
	{"reconnect.backoff.max.ms", 1000, false, 0},
	{"retry.backoff.ms", 100, false, 0},
	{"retry.backoff.max.ms", 1000, false, 0},
	{"fetch.wait.max.ms", 10, false, 0},
	{"fetch.error.backoff.ms", 100, false, 0},
	{"socket.timeout.ms", 1000, false, 0},
	{"api.version.request.timeout.ms", 1000, false, 0},
	{"session.timeout.ms", 1000, false, 0},
	{"heartbeat.interval.ms", 100, false, 0},
	{"max.poll.interval.ms", 1000, false, 0},
	{"statistics.interval.ms", 1000, true, 0},
	{"connections.max.idle.ms", 1000, true, 0},
	{NULL, 0, false, 0}
};

/*
 * Checks a librdkafka property of a stream whose owner is not a superuser.
 *
 * At creation (for_worker false) it refuses a property outside a list
 * known to be harmless.  The worker runs as a superuser, and many
 * properties make librdkafka run a command (sasl.kerberos.kinit.cmd), load
 * a library (plugin.library.paths, ssl.engine.location) or read a server
 * file (ssl.*.location, ssl.keystore.location, sasl.kerberos.keytab); an
 * allowlist also covers those added by later librdkafka versions.
 *
 * Always, creation and worker alike, it raises a value below its floor
 * (property_floors) to the floor, so a stream stored before a floor
 * existed is held to it too; creation says so with a notice.
 */
static void
CheckKafkaProperty(KafkaProperty *p, Oid owner, bool for_worker)
{
	static const char *const exact[] = {
		"security.protocol", "sasl.mechanism", "sasl.mechanisms",
		"sasl.username", "sasl.password", "ssl.ca.pem",
		"ssl.certificate.pem", "ssl.key.pem", "ssl.key.password",
		"ssl.endpoint.identification.algorithm",
		"enable.ssl.certificate.verification", "client.id", "client.rack",
		"session.timeout.ms", "heartbeat.interval.ms",
		"max.poll.interval.ms", "isolation.level", "broker.version.fallback",
		"statistics.interval.ms", "check.crcs", "message.max.bytes", "receive.message.max.bytes",
		"metadata.max.age.ms", "connections.max.idle.ms",
		"partition.assignment.strategy", "group.instance.id",
		"enable.partition.eof", "allow.auto.create.topics",
		"retry.backoff.ms", "retry.backoff.max.ms", NULL
	};
	static const char *const prefixes[] = {
		"fetch.", "queued.", "socket.", "reconnect.", "api.version.",
		"topic.metadata.", NULL
	};
	const char *name = p->name;
	const PropertyFloor *f;
	bool		allowed = false;
	int			i;

	if (superuser_arg(owner))
		return;
	for (i = 0; exact[i] && !allowed; i++)
		allowed = strcmp(name, exact[i]) == 0;
	for (i = 0; prefixes[i] && !allowed; i++)
		allowed = strncmp(name, prefixes[i], strlen(prefixes[i])) == 0;
	if (!allowed && !for_worker)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set kafka property \"%s\"", name),
				 errdetail("Only connection, authentication and tuning properties known to be harmless may be set by a user who is not a superuser."),
				 errhint("A superuser must set this property.")));

	for (f = property_floors; f->name; f++)
	{
		char	   *end;
		long		v;

		if (strcmp(name, f->name) != 0)
			continue;
		errno = 0;
		v = strtol(p->value, &end, 10);
		/* Not a whole number: librdkafka says what is wrong with it. */
		if (errno != 0 || end == p->value || *end != '\0')
			break;
		if (v >= f->minimum || (f->has_off && v == f->off))
			break;
		if (!for_worker)
			ereport(NOTICE,
					(errmsg("kafka property \"%s\" = %ld is below its minimum; %d is used",
							name, v, f->minimum),
					 errdetail("Streams of users who are not superusers run with %s of at least %d, so that one worker cannot keep a processor busy.",
							   name, f->minimum)));
		p->value = psprintf("%d", f->minimum);
		break;
	}
}

/*
 * Parses a start position: earliest, latest or a timestamp (returned as
 * milliseconds since the Unix epoch with *is_time set).
 */
int64
ParseStartPosition(const char *pos, bool *is_time)
{
	TimestampTz ts;

	*is_time = false;
	if (pg_strcasecmp(pos, "earliest") == 0)
		return KAFKA_OFFSET_BEGINNING;
	if (pg_strcasecmp(pos, "latest") == 0)
		return KAFKA_OFFSET_END;
	ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
												 CStringGetDatum(pos),
												 ObjectIdGetDatum(InvalidOid),
												 Int32GetDatum(-1)));
	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start position must be earliest, latest or a finite timestamp")));
	*is_time = true;
	/* PostgreSQL counts microseconds from 2000-01-01; Kafka ms from 1970. */
	return ts / 1000 +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
}

/*
 * The start position as stored: "earliest", "latest", or the timestamp
 * read now, in the caller's TimeZone and DateStyle, written back as ISO
 * 8601 in UTC ("2026-12-01 09:30:00.000000+00").  The worker reads the
 * option again later under the server's settings; only an absolute form
 * means the same instant there ("now" included).
 */
static char *
StartPositionCanonical(const char *pos)
{
	bool		is_time;
	int64		ms = ParseStartPosition(pos, &is_time);
	TimestampTz ts;
	struct pg_tm tm;
	fsec_t		fsec;

	if (!is_time)
		return pstrdup(ms == KAFKA_OFFSET_BEGINNING ? "earliest" : "latest");
	ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
												 CStringGetDatum(pos),
												 ObjectIdGetDatum(InvalidOid),
												 Int32GetDatum(-1)));
	/* no time zone argument: the fields of the instant in UTC */
	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0 || tm.tm_year < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start position \"%s\" is out of range", pos)));
	return psprintf("%04d-%02d-%02d %02d:%02d:%02d.%06d+00",
					tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min,
					tm.tm_sec, (int) fsec);
}

/* Options with "start" in its stored form (StartPositionCanonical). */
static Jsonb *
CanonicalStart(Jsonb *options)
{
	JsonbValue *o = OptionGet(options, "start");
	StringInfoData buf;
	Datum		patch;

	if (o == NULL)
		return options;
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"start\": ");
	escape_json(&buf, StartPositionCanonical(OptionValueString(o, "start")));
	appendStringInfoChar(&buf, '}');
	patch = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
											  JsonbPGetDatum(options), patch));
}

/* Parses one "columns" entry: a metadata name or a path. */
static ColumnSpec *
ParseColumnSpec(const char *column, const char *src, const char *format)
{
	ColumnSpec *c = palloc0(sizeof(ColumnSpec));

	c->column = pstrdup(column);
	c->path = pstrdup(src);
	if (src[0] == '$')
	{
		if (strcmp(src, "$topic") == 0)
			c->source = SRC_TOPIC;
		else if (strcmp(src, "$partition") == 0)
			c->source = SRC_PARTITION;
		else if (strcmp(src, "$offset") == 0)
			c->source = SRC_OFFSET;
		else if (strcmp(src, "$key") == 0)
			c->source = SRC_KEY;
		else if (strcmp(src, "$timestamp") == 0)
			c->source = SRC_TIMESTAMP;
		else if (strcmp(src, "$value") == 0)
			c->source = SRC_VALUE;
		else if (strncmp(src, "$headers.", 9) == 0 && src[9] != '\0')
		{
			c->source = SRC_HEADER;
			c->path = pstrdup(src + 9);
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown message metadata \"%s\" for column \"%s\"",
							src, column),
					 errhint("Use $topic, $partition, $offset, $key, $timestamp, $value or $headers.NAME.")));
	}
	else if (strcmp(format, "csv") == 0)
	{
		int			n = 0;
		const char *p;

		for (p = src; *p; p++)
		{
			if (!isdigit((unsigned char) *p) || n > 100000)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("csv field of column \"%s\" must be a field number from 1, not \"%s\"",
								column, src)));
			n = n * 10 + (*p - '0');
		}
		if (n < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("csv field of column \"%s\" must be a field number from 1, not \"%s\"",
							column, src)));
		c->source = SRC_FIELD;
	}
	else if (strcmp(format, "json") == 0)
	{
		if (src[0] == '\0' || src[0] == '.' || src[strlen(src) - 1] == '.' ||
			strstr(src, "..") != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid json path \"%s\" for column \"%s\"", src, column)));
		c->source = SRC_PATH;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("format text maps only message metadata and $value, not \"%s\"",
						src)));
	return c;
}

/* Returns the relation OID named by a routing entry; checks it. */
static Oid
RouteTarget(const char *relname)
{
	List	   *names = stringToQualifiedNameList(relname);

	return RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, false);
}

/* Error context: the stream whose configuration an error concerns. */
static void
StreamOptionsContext(void *arg)
{
	errcontext("stream \"%s\"", (const char *) arg);
}

/*
 * Parses and checks a stream's options.  for_worker skips the checks made
 * once at creation that need the caller's identity.
 */
StreamConfig *
StreamConfigParse(int32 id, const char *name, Oid owner, Oid target,
				  const char *brokers, const char *topic, const char *format,
				  Jsonb *options, int generation, bool for_worker)
{
	StreamConfig *cfg = palloc0(sizeof(StreamConfig));
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	JsonbValue *o;
	ErrorContextCallback errcallback;
	static const char *const known[] = {
		"start", "workers", "batch_size", "flush_ms", "columns", "kafka",
		"delimiter", "header", "epoch_unit", "group", "route_field",
		"routes", "metadata_refresh_ms", "on_offset_out_of_range", NULL
	};

	errcallback.callback = StreamOptionsContext;
	errcallback.arg = (void *) name;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	cfg->id = id;
	cfg->name = pstrdup(name);
	cfg->owner = owner;
	cfg->target = target;
	cfg->brokers = pstrdup(brokers);
	cfg->topic = pstrdup(topic);
	cfg->format = pstrdup(format);
	cfg->options = options;
	cfg->generation = generation;
	cfg->start = "earliest";
	cfg->workers = 1;
	cfg->batch_size = 10000;
	cfg->flush_ms = 50;
	cfg->csv_delimiter = ',';
	cfg->metadata_refresh_ms = 10000;

	if (strcmp(format, "json") != 0 && strcmp(format, "csv") != 0 &&
		strcmp(format, "text") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown format \"%s\"", format),
				 errhint("The formats are json, csv and text.")));
	/* Unknown keys are mistakes: say so rather than ignore them. */
	OptionCheckKeys(options, known, "stream");

	if ((o = OptionGet(options, "start")) != NULL)
	{
		bool		is_time;

		cfg->start = OptionValueString(o, "start");
		(void) ParseStartPosition(cfg->start, &is_time);
	}
	if ((o = OptionGet(options, "workers")) != NULL)
		cfg->workers = (int) OptionValueInteger(o, "workers", 1, 64);
	if ((o = OptionGet(options, "batch_size")) != NULL)
		cfg->batch_size = (int) OptionValueInteger(o, "batch_size", 1, 1000000);
	if ((o = OptionGet(options, "flush_ms")) != NULL)
		cfg->flush_ms = (int) OptionValueInteger(o, "flush_ms", 0, 600000);
	if ((o = OptionGet(options, "metadata_refresh_ms")) != NULL)
		cfg->metadata_refresh_ms = (int) OptionValueInteger(o, "metadata_refresh_ms", 100, 3600000);
	if ((o = OptionGet(options, "group")) != NULL)
		cfg->group = OptionValueString(o, "group");
	if ((o = OptionGet(options, "on_offset_out_of_range")) != NULL)
	{
		char	   *p = OptionValueString(o, "on_offset_out_of_range");

		if (pg_strcasecmp(p, "fail") == 0)
			cfg->fail_on_out_of_range = true;
		else if (pg_strcasecmp(p, "earliest") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"on_offset_out_of_range\" must be \"earliest\" or \"fail\""),
					 errdetail("It says what a stream does when Kafka no longer has the messages at its stored offset (retention, a re-created topic): go on from the earliest offset Kafka has, counting the messages lost, or stop the partition with an error.")));
	}
	if ((o = OptionGet(options, "header")) != NULL)
		cfg->csv_header = OptionValueBool(o, "header");
	if ((o = OptionGet(options, "delimiter")) != NULL)
	{
		char	   *d = OptionValueString(o, "delimiter");

		if (strlen(d) != 1 || d[0] == '"' || d[0] == '\n' || d[0] == '\r')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"delimiter\" must be one character other than a quote or a newline")));
		cfg->csv_delimiter = d[0];
	}
	if ((o = OptionGet(options, "epoch_unit")) != NULL)
	{
		char	   *u = OptionValueString(o, "epoch_unit");

		if (strcmp(u, "s") == 0)
			cfg->epoch_ms = false;
		else if (strcmp(u, "ms") == 0)
			cfg->epoch_ms = true;
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"epoch_unit\" must be \"s\" or \"ms\"")));
	}

	/* kafka: librdkafka properties, as given. */
	if ((o = OptionGet(options, "kafka")) != NULL)
	{
		if (o->type != jbvBinary || !JsonContainerIsObject(o->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"kafka\" must be an object of librdkafka properties")));
		it = JsonbIteratorInit(o->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				KafkaProperty *p = palloc(sizeof(KafkaProperty));

				p->name = pnstrdup(v.val.string.val, v.val.string.len);
				tok = JsonbIteratorNext(&it, &v, true);
				p->value = ScalarText(&v, p->name);
				if (strcmp(p->name, "bootstrap.servers") == 0 ||
					strcmp(p->name, "enable.auto.commit") == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("kafka property \"%s\" is set by pg_streamml", p->name)));
				/* The worker must hear of an offset out of range. */
				if (strcmp(p->name, "auto.offset.reset") == 0 && !for_worker)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("kafka property \"%s\" is set by pg_streamml", p->name),
							 errhint("Use the stream options \"start\" and \"on_offset_out_of_range\".")));
				/* The worker answers rebalances with whole assignments. */
				if (strcmp(p->name, "partition.assignment.strategy") == 0 &&
					strstr(p->value, "cooperative") != NULL)
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("cooperative partition assignment is not supported"),
							 errhint("Use \"range\" or \"roundrobin\".")));
				CheckKafkaProperty(p, owner, for_worker);
				cfg->kafka_props = lappend(cfg->kafka_props, p);
			}
		}
	}

	/* columns: target column -> path, field or metadata. */
	if ((o = OptionGet(options, "columns")) != NULL)
	{
		if (o->type != jbvBinary || !JsonContainerIsObject(o->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"columns\" must be an object mapping columns to sources")));
		it = JsonbIteratorInit(o->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				char	   *col = pnstrdup(v.val.string.val, v.val.string.len);
				char	   *src;

				tok = JsonbIteratorNext(&it, &v, true);
				if (v.type == jbvNumeric)
					src = ScalarText(&v, col);
				else if (v.type == jbvString)
					src = pnstrdup(v.val.string.val, v.val.string.len);
				else
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("source of column \"%s\" must be a string", col)));
				cfg->column_map = lappend(cfg->column_map,
										  ParseColumnSpec(col, src, format));
			}
		}
	}

	/* routes: one topic into several tables by the value of a field. */
	if ((o = OptionGet(options, "route_field")) != NULL)
		cfg->route_field = OptionValueString(o, "route_field");
	if ((o = OptionGet(options, "routes")) != NULL)
	{
		if (cfg->route_field == NULL || strcmp(format, "json") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"routes\" needs option \"route_field\" and format json")));
		if (o->type != jbvBinary || !JsonContainerIsObject(o->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"routes\" must be an object mapping field values to tables")));
		it = JsonbIteratorInit(o->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				RouteSpec  *r = palloc(sizeof(RouteSpec));

				r->value = pnstrdup(v.val.string.val, v.val.string.len);
				tok = JsonbIteratorNext(&it, &v, true);
				r->target = RouteTarget(OptionValueString(&v, "routes"));
				cfg->routes = lappend(cfg->routes, r);
			}
		}
	}
	else if (cfg->route_field)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"route_field\" needs option \"routes\"")));
	if (cfg->group && cfg->workers > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"workers\" must be 1 with option \"group\""),
				 errhint("Each server joins the group with one consumer; run the stream on several servers to spread partitions.")));
	error_context_stack = errcallback.previous;
	return cfg;
}

/* Checks that the caller may load into a table and that it is a table. */
static void
CheckTarget(Oid target, List *column_map)
{
	char		kind = get_rel_relkind(target);
	AclResult	acl;
	ListCell   *lc;

	if (kind == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target table does not exist"),
				 errdetail("The table with OID %u was dropped.", target),
				 errhint("Point the stream at a table with alter_stream(name, '{\"target\": \"table\"}').")));
	if (IsCatalogNamespace(get_rel_namespace(target)) ||
		IsToastNamespace(get_rel_namespace(target)) ||
		get_rel_namespace(target) == get_namespace_oid("streamml", false))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot load a stream into system table \"%s\"", get_rel_name(target))));
	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", get_rel_name(target))));
	if (get_rel_persistence(target) == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot load a stream into temporary table \"%s\"",
						get_rel_name(target)),
				 errdetail("A stream is loaded by background workers, which cannot see the temporary tables of other sessions.")));
	acl = pg_class_aclcheck(target, GetUserId(), ACL_INSERT);
	if (acl != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(target)),
				 errdetail("Creating a stream requires INSERT on its target table.")));
	foreach(lc, column_map)
	{
		ColumnSpec *c = lfirst(lc);

		if (get_attnum(target, c->column) == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							c->column, get_rel_name(target))));
	}
}

/* Checks a full configuration as the caller, for create and alter. */
static StreamConfig *
CheckConfig(const char *name, Oid target, const char *brokers,
			const char *topic, const char *format, Jsonb *options)
{
	StreamConfig *cfg;
	ListCell   *lc;

	if (name[0] == '\0' || strlen(name) > 63)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stream name must have 1 to 63 characters")));
	if (brokers[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("brokers must not be empty")));
	if (topic[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("topic must not be empty")));
	cfg = StreamConfigParse(0, name, GetUserId(), target, brokers, topic,
							format, options, 1, false);
	LauncherCheckWorkers(name, cfg->workers);
	CheckTarget(target, cfg->column_map);
	foreach(lc, cfg->routes)
		CheckTarget(((RouteSpec *) lfirst(lc))->target, NIL);
	return cfg;
}

/*
 * Rewrites the "routes" option with each routed table's schema-qualified,
 * quoted name, as the caller resolved it.  The worker resolves the names
 * again, with its own search_path: an unqualified name could then find
 * another table (or none) than the one the caller meant and was checked
 * for, where the target, a regclass, cannot move.
 */
static Jsonb *
QualifyRoutes(Jsonb *options, StreamConfig *cfg)
{
	StringInfoData buf;
	ListCell   *lc;
	Datum		patch;

	if (cfg->routes == NIL)
		return options;
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"routes\": {");
	foreach(lc, cfg->routes)
	{
		RouteSpec  *r = lfirst(lc);
		char	   *nsp = get_namespace_name(get_rel_namespace(r->target));

		if (foreach_current_index(lc) > 0)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, r->value);
		appendStringInfoString(&buf, ": ");
		escape_json(&buf, quote_qualified_identifier(nsp, get_rel_name(r->target)));
	}
	appendStringInfoString(&buf, "}}");
	patch = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
											  JsonbPGetDatum(options), patch));
}

PG_FUNCTION_INFO_V1(streamml_create_stream);

/* SQL streamml.create_stream(): records a stream; the launcher starts it. */
Datum
streamml_create_stream(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			target = PG_GETARG_OID(1);
	char	   *brokers = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *topic = text_to_cstring(PG_GETARG_TEXT_PP(3));
	char	   *format = text_to_cstring(PG_GETARG_TEXT_PP(4));
	Jsonb	   *options = PG_GETARG_JSONB_P(5);
	Datum		args[7];
	StreamConfig *cfg;

	/* a keyword, as COPY's FORMAT: any case, stored in lower case */
	for (char *c = format; *c; c++)
		*c = pg_tolower((unsigned char) *c);

	LauncherCheckDatabase();
	cfg = CheckConfig(name, target, brokers, topic, format, options);
	options = CanonicalStart(QualifyRoutes(options, cfg));

	SPI_connect();
	args[0] = CStringGetTextDatum(name);
	CatalogExecute("SELECT 1 FROM streamml.streams WHERE name = $1",
				1, (Oid[]) {TEXTOID}, args, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("stream \"%s\" already exists", name)));
	args[1] = ObjectIdGetDatum(GetUserId());
	args[2] = ObjectIdGetDatum(target);
	args[3] = CStringGetTextDatum(brokers);
	args[4] = CStringGetTextDatum(topic);
	args[5] = CStringGetTextDatum(format);
	args[6] = JsonbPGetDatum(options);
	CatalogExecute("INSERT INTO streamml.streams (name, owner, target, brokers, topic, format, options) "
				"VALUES ($1, $2, $3, $4, $5, $6, $7)",
				7, (Oid[]) {TEXTOID, OIDOID, REGCLASSOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID},
				args, NULL, SPI_OK_INSERT);
	SPI_finish();
	WakeLauncherAtCommit();
	PG_RETURN_VOID();
}

/* Sets enabled on a stream the caller owns. */
static void
SetEnabled(text *name, bool enabled)
{
	Datum		args[2];

	SPI_connect();
	args[0] = Int32GetDatum(LookupOwnedStream(text_to_cstring(name)));
	args[1] = BoolGetDatum(enabled);
	CatalogExecute("UPDATE streamml.streams SET enabled = $2 WHERE id = $1",
				2, (Oid[]) {INT4OID, BOOLOID}, args, NULL, SPI_OK_UPDATE);
	SPI_finish();
	WakeLauncherAtCommit();
}

PG_FUNCTION_INFO_V1(streamml_stop_stream);

/* SQL streamml.stop_stream(): the launcher stops the stream's workers. */
Datum
streamml_stop_stream(PG_FUNCTION_ARGS)
{
	SetEnabled(PG_GETARG_TEXT_PP(0), false);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(streamml_start_stream);

/* SQL streamml.start_stream(): starts a stopped stream again. */
Datum
streamml_start_stream(PG_FUNCTION_ARGS)
{
	SetEnabled(PG_GETARG_TEXT_PP(0), true);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(streamml_drop_stream);

/* SQL streamml.drop_stream(): forgets a stream and its offsets. */
Datum
streamml_drop_stream(PG_FUNCTION_ARGS)
{
	Datum		arg;

	SPI_connect();
	arg = Int32GetDatum(LookupOwnedStream(text_to_cstring(PG_GETARG_TEXT_PP(0))));
	CatalogExecute("DELETE FROM streamml.streams WHERE id = $1",
				1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_DELETE);
	SPI_finish();
	StatsForgetStream(DatumGetInt32(arg));
	WakeLauncherAtCommit();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(streamml_alter_stream);

/*
 * SQL streamml.alter_stream(): merges options into the stream's (a JSON
 * null removes a key), checks the result and restarts the workers.  The
 * key "target" is no option: it points the stream at another table (by
 * name, resolved as the caller), keeping the offsets, so that a stream
 * whose table was dropped can go on where it stopped.
 */
Datum
streamml_alter_stream(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *changes = PG_GETARG_JSONB_P(1);
	Datum		args[3];
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;
	Jsonb	   *merged;
	StreamConfig *cfg;
	JsonbValue *t;
	Oid			target;

	if (!JB_ROOT_IS_OBJECT(changes) || JB_ROOT_IS_SCALAR(changes))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a json object")));
	SPI_connect();
	args[0] = Int32GetDatum(LookupOwnedStream(name));
	args[1] = JsonbPGetDatum(changes);
	/* Merge, then drop the keys set to null. */
	CatalogExecute("SELECT (SELECT coalesce(jsonb_object_agg(key, value), '{}') "
				"        FROM jsonb_each(s.options || ($2 - 'target')) WHERE value <> 'null'), "
				"       target, brokers, topic, format "
				"FROM streamml.streams s WHERE id = $1",
				2, (Oid[]) {INT4OID, JSONBOID}, args, NULL, SPI_OK_SELECT);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	merged = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 1, &isnull));
	target = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	if ((t = OptionGet(changes, "target")) != NULL)
	{
		if (t->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("\"target\" must be the name of a table")));
		target = RouteTarget(pnstrdup(t->val.string.val, t->val.string.len));
	}
	cfg = CheckConfig(name, target,
					  SPI_getvalue(tup, desc, 3), SPI_getvalue(tup, desc, 4),
					  SPI_getvalue(tup, desc, 5), merged);
	merged = CanonicalStart(QualifyRoutes(merged, cfg));
	args[1] = JsonbPGetDatum(merged);
	args[2] = ObjectIdGetDatum(target);
	CatalogExecute("UPDATE streamml.streams SET options = $2, target = $3, "
				"generation = generation + 1 WHERE id = $1",
				3, (Oid[]) {INT4OID, JSONBOID, REGCLASSOID}, args, NULL,
				SPI_OK_UPDATE);
	SPI_finish();
	WakeLauncherAtCommit();
	PG_RETURN_VOID();
}

/* An offset given to reset_stream: a non-negative integer. */
static int64
OffsetValue(JsonbValue *v, const char *partition)
{
	char	   *text;
	int64		offset;

	/* a number, or a string of one ('{"0": "3"}'), as options are read */
	if (v->type == jbvString)
		text = pnstrdup(v->val.string.val, v->val.string.len);
	else if (v->type == jbvNumeric)
		text = DatumGetCString(DirectFunctionCall1(numeric_out,
												   NumericGetDatum(v->val.numeric)));
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("offset of partition %s must be a number", partition)));
	if (text[0] == '\0' || strspn(text, "0123456789") != strlen(text))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("offset of partition %s must be a whole number from 0: %s",
						partition, text)));
	offset = pg_strtoint64(text);
	return offset;
}

/*
 * Refuses offsets that Kafka does not have yet: a partition that does not
 * exist, or an offset beyond a partition's high watermark (the next offset
 * Kafka will give a message), which would otherwise make the stream skip
 * every message up to it.  Offsets below the log start are allowed: the
 * worker counts what retention removed.  If Kafka does not answer in time,
 * the offsets are taken as given, with a warning; the worker then treats
 * one beyond the end as any offset out of range.  The client is destroyed
 * before any error is raised, so no librdkafka thread outlives the call.
 */
static void
CheckOffsetsInKafka(int32 id, List *partitions, List *offsets)
{
	Datum		arg = Int32GetDatum(id);
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	StreamConfig *cfg;
	KafkaClient *kc;
	char		errbuf[512] = "";
	int			count;
	int32		bad_part = -1;
	int64		bad_offset = 0;
	int64		high = 0;
	ListCell   *lp,
			   *lo;

	CatalogExecute("SELECT name, owner, target, brokers, topic, format, options "
				"FROM streamml.streams WHERE id = $1",
				1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_SELECT);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	cfg = StreamConfigParse(id, SPI_getvalue(tup, desc, 1),
							DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull)),
							DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull)),
							SPI_getvalue(tup, desc, 4), SPI_getvalue(tup, desc, 5),
							SPI_getvalue(tup, desc, 6),
							DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 7, &isnull)),
							0, true);
	kc = KafkaConsumerCreate(cfg->brokers, cfg->kafka_props,
							 "pg_streamml.reset_stream", false,
							 errbuf, sizeof(errbuf));
	if (kc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("stream \"%s\": %s", cfg->name, errbuf)));
	errbuf[0] = '\0';
	count = KafkaPartitionCount(kc, cfg->topic, 5000, errbuf, sizeof(errbuf));
	forboth(lp, partitions, lo, offsets)
	{
		int64		low;

		if (count < 0)
			break;
		if (lfirst_int(lp) >= count)
		{
			bad_part = lfirst_int(lp);
			break;
		}
		if (!KafkaQueryWatermarks(kc, cfg->topic, lfirst_int(lp), &low, &high,
								  5000, errbuf, sizeof(errbuf)))
		{
			count = -1;
			break;
		}
		if (*(int64 *) lfirst(lo) > high)
		{
			bad_part = lfirst_int(lp);
			bad_offset = *(int64 *) lfirst(lo);
			break;
		}
	}
	KafkaClientDestroy(kc);
	/* a cancel that cut the checks short is a cancel, not a warning */
	CHECK_FOR_INTERRUPTS();
	if (count < 0)
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not check the offsets of stream \"%s\" against Kafka",
						cfg->name),
				 errdetail("%s", errbuf),
				 errhint("The offsets are stored as given; one beyond the end of its partition is handled by the option \"on_offset_out_of_range\".")));
	else if (bad_part >= 0 && bad_part >= count)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("partition %d does not exist in topic \"%s\"",
						bad_part, cfg->topic),
				 errdetail("The topic has %d partitions.", count)));
	else if (bad_part >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("offset " INT64_FORMAT " is beyond the end of partition %d of topic \"%s\"",
						bad_offset, bad_part, cfg->topic),
				 errdetail("The next offset Kafka will give a message in that partition (its high watermark) is " INT64_FORMAT ".",
						   high),
				 errhint("Give an offset up to the high watermark, or reset the stream to \"latest\".")));
}

/*
 * reset_stream with an object of partition numbers to offsets: stores
 * those offsets and leaves the other partitions where they are.  The
 * generation is bumped, so running workers start again from the catalog
 * and a batch in flight is given up.
 */
static void
ResetToOffsets(const char *name, const char *position)
{
	Jsonb	   *j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
													   CStringGetDatum(position)));
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	k,
				v;
	List	   *partitions = NIL;
	List	   *offsets = NIL;
	ListCell   *lp,
			   *lo;
	Datum		args[3];

	if (!JB_ROOT_IS_OBJECT(j) || JB_ROOT_COUNT(j) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("offsets must be a json object of partition numbers to offsets"),
				 errhint("For example '{\"0\": 1500, \"3\": 0}'.")));
	it = JsonbIteratorInit(&j->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *part;
		int64		offset;
		int64	   *cell;

		if (tok != WJB_KEY)
			continue;
		part = pnstrdup(k.val.string.val, k.val.string.len);
		if (part[0] == '\0' || strspn(part, "0123456789") != strlen(part) ||
			strlen(part) > 9)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("\"%s\" is not a partition number", part)));
		(void) JsonbIteratorNext(&it, &v, true);
		offset = OffsetValue(&v, part);
		partitions = lappend_int(partitions, atoi(part));
		cell = palloc(sizeof(int64));
		*cell = offset;
		offsets = lappend(offsets, cell);
	}

	SPI_connect();
	args[0] = Int32GetDatum(LookupOwnedStream(name));
	CheckOffsetsInKafka(DatumGetInt32(args[0]), partitions, offsets);
	CatalogExecute("UPDATE streamml.streams SET generation = generation + 1 WHERE id = $1",
				1, (Oid[]) {INT4OID}, args, NULL, SPI_OK_UPDATE);
	forboth(lp, partitions, lo, offsets)
	{
		args[1] = Int32GetDatum(lfirst_int(lp));
		args[2] = Int64GetDatum(*(int64 *) lfirst(lo));
		CatalogExecute("INSERT INTO streamml.offsets (stream_id, partition, next_offset) "
					"VALUES ($1, $2, $3) ON CONFLICT (stream_id, partition) "
					"DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()",
					3, (Oid[]) {INT4OID, INT4OID, INT8OID}, args, NULL, SPI_OK_INSERT);
	}
	SPI_finish();
	WakeLauncherAtCommit();
}

PG_FUNCTION_INFO_V1(streamml_reset_stream);

/*
 * SQL streamml.reset_stream(): forgets the stored offsets and makes the
 * position the stream's start.  A running worker whose batch would commit
 * after this finds its offsets gone and gives the batch up, so the reset
 * wins; the launcher then restarts the workers, which look the position up
 * in Kafka (by time for a timestamp).
 */
Datum
streamml_reset_stream(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *position = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Datum		args[2];
	const char *p = position;

	while (isspace((unsigned char) *p))
		p++;
	if (*p == '{')
	{
		ResetToOffsets(name, position);
		PG_RETURN_VOID();
	}
	position = StartPositionCanonical(position);
	SPI_connect();
	args[0] = Int32GetDatum(LookupOwnedStream(name));
	args[1] = CStringGetTextDatum(position);
	CatalogExecute("UPDATE streamml.streams "
				"SET options = options || jsonb_build_object('start', $2::text), "
				"    generation = generation + 1 WHERE id = $1",
				2, (Oid[]) {INT4OID, TEXTOID}, args, NULL, SPI_OK_UPDATE);
	CatalogExecute("DELETE FROM streamml.offsets WHERE stream_id = $1",
				1, (Oid[]) {INT4OID}, args, NULL, SPI_OK_DELETE);
	SPI_finish();
	WakeLauncherAtCommit();
	PG_RETURN_VOID();
}
