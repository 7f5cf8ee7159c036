/*
 * decode.c
 *		The column mapping of a target table and the conversions shared by
 *		the decoders (json, csv, text).
 *
 * A stream's mapping is planned once per worker start (and again when the
 * table changes): for every column, where its value comes from (a key or
 * dotted path of a JSON message, a CSV field, the whole message, or Kafka
 * metadata) and how the text becomes a datum.  Common types get a direct
 * conversion (text, float8, int, bool, jsonb, epoch numbers into
 * timestamptz, JSON arrays into float8[]); every other type goes through
 * its input function, looked up once here.  A conversion that fails raises
 * an ordinary error, which the loader turns into a dead letter.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "loader.h"

/* Chooses the direct conversion for a type, if there is one. */
static ColumnKind
KindOf(Oid typid)
{
	switch (typid)
	{
		case TEXTOID:
		case VARCHAROID:
			return typid == TEXTOID ? CK_TEXT : CK_GENERIC;
		case BYTEAOID:
			return CK_BYTEA;
		case JSONBOID:
			return CK_JSONB;
		case JSONOID:
			return CK_JSON;
		case FLOAT8OID:
			return CK_FLOAT8;
		case INT4OID:
			return CK_INT4;
		case INT8OID:
			return CK_INT8;
		case BOOLOID:
			return CK_BOOL;
		case TIMESTAMPTZOID:
			return CK_TIMESTAMPTZ;
		case FLOAT8ARRAYOID:
			return CK_FLOAT8_ARRAY;
		default:
			return CK_GENERIC;
	}
}

/* Splits a dotted json path into its parts. */
static void
SplitPath(ColumnPlan *c)
{
	char	   *copy = pstrdup(c->path);
	char	   *p;
	int			n = 1;

	for (p = copy; *p; p++)
		if (*p == '.')
			n++;
	c->parts = palloc(sizeof(char *) * n);
	c->part_lens = palloc(sizeof(int) * n);
	c->nparts = 0;
	for (p = strtok(copy, "."); p; p = strtok(NULL, "."))
	{
		c->parts[c->nparts] = p;
		c->part_lens[c->nparts] = strlen(p);
		c->nparts++;
	}
}

/*
 * Whether every json column is fed by one top-level key that feeds no
 * other column: then a key can be decoded as soon as it is read.
 */
static bool
JsonMappingIsFlat(TargetState *ts)
{
	int			i,
				j;

	for (i = 0; i < ts->ncols; i++)
	{
		ColumnPlan *c = &ts->cols[i];

		if (c->source != SRC_PATH)
			continue;
		if (c->nparts > 1)
			return false;
		for (j = 0; j < i; j++)
			if (ts->cols[j].source == SRC_PATH &&
				strcmp(ts->cols[j].path, c->path) == 0)
				return false;
	}
	return true;
}

/* Plans the columns of one target: what feeds each and how. */
TargetState *
TargetStateCreate(StreamConfig *cfg, Oid relid, const char *route_value)
{
	TargetState *ts = palloc0(sizeof(TargetState));
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;
	int			field = 0;
	bool		value_mapped = false;
	ListCell   *lc;

	ts->relid = relid;
	ts->cfg = cfg;
	ts->citus = LoaderIsCitusTable(relid);
	ts->natts = desc->natts;
	ts->cols = palloc0(sizeof(ColumnPlan) * desc->natts);
	ts->route_value = route_value ? pstrdup(route_value) : NULL;
	foreach(lc, cfg->column_map)
		if (((ColumnSpec *) lfirst(lc))->source == SRC_VALUE)
			value_mapped = true;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		ColumnPlan *c = &ts->cols[ts->ncols];
		ColumnSpec *spec = NULL;
		Oid			infunc;

		if (att->attisdropped || att->attgenerated)
			continue;
		foreach(lc, cfg->column_map)
		{
			ColumnSpec *s = lfirst(lc);

			if (strcmp(s->column, NameStr(att->attname)) == 0)
				spec = s;
		}
		c->attnum = att->attnum;
		c->attname = pstrdup(NameStr(att->attname));
		c->typid = att->atttypid;
		c->typmod = att->atttypmod;
		c->kind = KindOf(att->atttypid);
		getTypeInputInfo(att->atttypid, &infunc, &c->ioparam);
		fmgr_info_cxt(infunc, &c->infunc, CurrentMemoryContext);
		if (spec)
		{
			c->source = spec->source;
			c->path = spec->path;
			if (spec->source == SRC_FIELD)
				c->field = atoi(spec->path) - 1;
		}
		else if (strcmp(cfg->format, "json") == 0)
		{
			c->source = SRC_PATH;
			c->path = c->attname;
		}
		else if (strcmp(cfg->format, "csv") == 0)
		{
			c->source = SRC_FIELD;
			c->field = field;
		}
		else
		{
			/* text: the whole message into the first text-like column. */
			if (!value_mapped &&
				(c->kind == CK_TEXT || c->kind == CK_JSONB ||
				 c->kind == CK_JSON || c->kind == CK_BYTEA))
			{
				c->source = SRC_VALUE;
				value_mapped = true;
			}
			else
				continue;		/* left to its default */
		}
		field++;
		if (c->source == SRC_PATH)
		{
			/* A key that is itself dotted is looked up as one key first. */
			SplitPath(c);
			c->path_len = strlen(c->path);
		}
		ts->insert_cols = lappend_int(ts->insert_cols, c->attnum);
		ts->ncols++;
	}
	if (strcmp(cfg->format, "text") == 0 && !value_mapped)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table \"%s\" has no text, json, jsonb or bytea column for format text",
						RelationGetRelationName(rel))));
	table_close(rel, AccessShareLock);
	ts->json_flat = JsonMappingIsFlat(ts);
	memset(ts->json_hint, -1, sizeof(ts->json_hint));
	return ts;
}

/* Fails unless s is valid in the database encoding (and has no NUL). */
void
ValidateEncoding(const char *s, size_t len)
{
	(void) pg_verify_mbstr(GetDatabaseEncoding(), s, len, false);
}

/*
 * Epoch seconds (or milliseconds) as a timestamptz; false, without an
 * error, when out of range.
 */
bool
EpochToTimestamptzSafe(double epoch, bool ms, TimestampTz *out)
{
	double		secs = ms ? epoch / 1000.0 : epoch;
	double		usecs;

	usecs = (secs - ((double) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY))
		* USECS_PER_SEC;
	if (isnan(usecs) || usecs < (double) MIN_TIMESTAMP ||
		usecs >= (double) END_TIMESTAMP)
		return false;
	*out = (TimestampTz) rint(usecs);
	return true;
}

/* Epoch seconds (or milliseconds) as a timestamptz. */
TimestampTz
EpochToTimestamptz(double epoch, bool ms)
{
	TimestampTz t;

	if (!EpochToTimestamptzSafe(epoch, ms, &t))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("epoch value out of range for timestamp with time zone")));
	return t;
}

/* Converts text (not NUL-terminated) into the column's type. */
void
SetFromText(ColumnPlan *c, const char *s, int len, Datum *value, bool *isnull)
{
	char	   *str;

	*isnull = false;
	switch (c->kind)
	{
		case CK_TEXT:
			*value = PointerGetDatum(cstring_to_text_with_len(s, len));
			return;
		case CK_BYTEA:
			{
				bytea	   *b = palloc(VARHDRSZ + len);

				SET_VARSIZE(b, VARHDRSZ + len);
				memcpy(VARDATA(b), s, len);
				*value = PointerGetDatum(b);
				return;
			}
		default:
			break;
	}
	str = pnstrdup(s, len);
	switch (c->kind)
	{
		case CK_FLOAT8:
			*value = Float8GetDatum(float8in_internal(str, NULL, "double precision", str));
			return;
		case CK_INT4:
			*value = Int32GetDatum(pg_strtoint32(str));
			return;
		case CK_INT8:
			*value = Int64GetDatum(pg_strtoint64(str));
			return;
		default:
			*value = InputFunctionCall(&c->infunc, str, c->ioparam, c->typmod);
	}
}

/* Renders a number as the text of a conversion. */
static void
SetFromInt64(ColumnPlan *c, int64 n, Datum *value, bool *isnull)
{
	char		buf[32];

	*isnull = false;
	if (c->kind == CK_INT8)
		*value = Int64GetDatum(n);
	else
	{
		snprintf(buf, sizeof(buf), INT64_FORMAT, n);
		SetFromText(c, buf, strlen(buf), value, isnull);
	}
}

/* A Kafka metadata value into a column. */
void
SetFromMetadata(ColumnPlan *c, StreamConfig *cfg, KafkaMessage *m,
				Datum *value, bool *isnull)
{
	const char *s;
	size_t		len;

	*isnull = false;
	switch (c->source)
	{
		case SRC_TOPIC:
			SetFromText(c, cfg->topic, strlen(cfg->topic), value, isnull);
			break;
		case SRC_PARTITION:
			SetFromInt64(c, m->partition, value, isnull);
			break;
		case SRC_OFFSET:
			SetFromInt64(c, m->offset, value, isnull);
			break;
		case SRC_TIMESTAMP:
			if (m->timestamp_ms < 0)
				*isnull = true;
			else if (c->kind == CK_TIMESTAMPTZ || c->typid == TIMESTAMPOID)
				*value = TimestampTzGetDatum(EpochToTimestamptz((double) m->timestamp_ms, true));
			else
				SetFromInt64(c, m->timestamp_ms, value, isnull);
			break;
		case SRC_KEY:
		case SRC_HEADER:
		case SRC_VALUE:
			if (c->source == SRC_KEY)
			{
				s = m->key;
				len = m->key_len;
			}
			else if (c->source == SRC_VALUE)
			{
				s = m->payload;
				len = m->payload_len;
			}
			else if (!KafkaMessageHeader(m, c->path, &s, &len))
				s = NULL;
			if (s == NULL)
			{
				*isnull = true;
				break;
			}
			if (c->kind != CK_BYTEA)
				ValidateEncoding(s, len);
			if (c->kind == CK_JSONB || c->kind == CK_JSON)
			{
				char	   *str = pnstrdup(s, len);

				*value = InputFunctionCall(&c->infunc, str, c->ioparam, c->typmod);
			}
			else
				SetFromText(c, s, len, value, isnull);
			break;
		default:
			*isnull = true;
	}
}

/* Format text: the whole message into a column, metadata into others. */
void
DecodeText(TargetState *ts, KafkaMessage *m, Datum *values, bool *nulls,
		   bool *present)
{
	int			i;

	for (i = 0; i < ts->ncols; i++)
	{
		ColumnPlan *c = &ts->cols[i];
		int			a = c->attnum - 1;

		present[a] = true;
		SetFromMetadata(c, ts->cfg, m, &values[a], &nulls[a]);
	}
}
