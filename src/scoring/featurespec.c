/*
 * featurespec.c
 *		Reading a feature table's spec (jsonb) against its source's columns,
 *		and writing the equivalent SQL window query (feature_sql).
 *
 * The spec is read again at every statement that loads rows, against the
 * source's current columns, so a renamed or dropped column is an error
 * naming the feature table rather than a feature read from the wrong
 * column.  Every key goes through the shared options reader (options.h).
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "options.h"
#include "scoring/features.h"

/*
 * Whether a partition_by column is a string whose equality is byte
 * equality though its collation is not "C": text, varchar or char under a
 * deterministic collation.  The feature table's index then compares it
 * under "C" (memcmp instead of strcoll, in every index insert's descent),
 * and the queries that read a partition back say COLLATE "C" to use it.
 */
static bool
PartitionIsBytewise(Form_pg_attribute att)
{
	Oid			base = getBaseType(att->atttypid);

	if (base != TEXTOID && base != VARCHAROID && base != BPCHAROID)
		return false;
	if (!OidIsValid(att->attcollation) || att->attcollation == C_COLLATION_OID)
		return false;
	return get_collation_isdeterministic(att->attcollation);
}

/* Seconds from the Unix epoch to PostgreSQL's, in microseconds. */
#define UNIX_TO_PG_USECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

/* An ewma's rows older than this many half-lives weigh below 2^-60. */
#define EWMA_HORIZON_HALF_LIVES 60.0

static const char *const spec_keys[] = {
	"partition_by", "order_by", "keep", "features", "late", "backfill", NULL
};
static const char *const feature_keys[] = {
	"fn", "of", "n", "preceding", "range", "alpha", "half_life", NULL
};

static const struct
{
	const char *name;
	FeatureFn	fn;
	const char *sql;			/* the window function */
}			fn_names[] = {
	{"lag", FN_LAG, "pg_catalog.lag"},
	{"delta", FN_DELTA, "pg_catalog.lag"},
	{"pct_change", FN_PCT_CHANGE, "pg_catalog.lag"},
	{"mean", FN_MEAN, "streamml.rolling_mean"},
	{"sum", FN_SUM, "streamml.rolling_sum"},
	{"min", FN_MIN, "streamml.rolling_min"},
	{"max", FN_MAX, "streamml.rolling_max"},
	{"var", FN_VAR, "streamml.rolling_var"},
	{"var_pop", FN_VAR_POP, "streamml.rolling_var_pop"},
	{"stddev", FN_STDDEV, "streamml.rolling_stddev"},
	{"stddev_pop", FN_STDDEV_POP, "streamml.rolling_stddev_pop"},
	{"count", FN_COUNT, "pg_catalog.count"},
	{"slope", FN_SLOPE, "streamml.rolling_slope"},
	{"ewma", FN_EWMA, "streamml.ewma"},
};

/* The attnum of a source column named by the spec; errors if none. */
static AttrNumber
SpecColumn(TupleDesc desc, const char *name, const char *key,
		   const char *table)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" named by \"%s\" of feature table \"%s\" does not exist in its source",
					name, key, table)));
	return InvalidAttrNumber;	/* keep the compiler quiet */
}

/* Whether a type is one whose values an "of" column can give as float8. */
static bool
IsNumericType(Oid type)
{
	return type == INT2OID || type == INT4OID || type == INT8OID ||
		type == FLOAT4OID || type == FLOAT8OID || type == NUMERICOID;
}

/* A nested JSON value as a Jsonb of its own. */
static Jsonb *
SubJsonb(JsonbValue *v)
{
	return JsonbValueToJsonb(v);
}

/* The strings of a key whose value is a string or an array of strings. */
static List *
StringList(Jsonb *spec, const char *key)
{
	JsonbValue *v = OptionGet(spec, key);
	List	   *out = NIL;

	if (v == NULL)
		return NIL;
	if (v->type == jbvString)
		return list_make1(OptionValueString(v, key));
	if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
		JsonbValue	e;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
			if (tok == WJB_ELEM)
				out = lappend(out, OptionValueString(&e, key));
		return out;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" must be a string or an array of strings", key)));
	return NIL;
}

/* Index of an "of" column, adding it to the spec's list if new. */
static int
OfIndex(FeatureSpec *spec, AttrNumber attnum, TupleDesc desc)
{
	Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);

	for (int i = 0; i < spec->nof; i++)
		if (spec->of[i] == attnum)
			return i;
	spec->of[spec->nof] = attnum;
	spec->of_names[spec->nof] = pstrdup(NameStr(att->attname));
	spec->of_types[spec->nof] = att->atttypid;
	return spec->nof++;
}

/*
 * An interval offset ("range", "half_life") in microseconds, refusing
 * months (no fixed length); days count as 24 hours, and the SQL equivalent
 * is written in seconds so that it means the same in every time zone.
 */
static double
IntervalUsecs(const char *text, const char *key, const char *feature,
			  char **sql)
{
	Interval   *iv = DatumGetIntervalP(DirectFunctionCall3(interval_in,
														   CStringGetDatum(text),
														   ObjectIdGetDatum(InvalidOid),
														   Int32GetDatum(-1)));
	int64		usecs;

	if (iv->month != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" of feature \"%s\" must not contain months or years",
						key, feature),
				 errhint("Write it in days or smaller units.")));
	/* 213503983 days wrapped around to 16 hours */
	if (pg_mul_s64_overflow((int64) iv->day, USECS_PER_DAY, &usecs) ||
		pg_add_s64_overflow(usecs, iv->time, &usecs))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("\"%s\" of feature \"%s\" is out of range", key, feature),
				 errdetail("It must be less than 106751991 days.")));
	if (usecs <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" of feature \"%s\" must be positive", key, feature)));
	*sql = psprintf("'%lld.%06lld seconds'::pg_catalog.interval",
					(long long) (usecs / USECS_PER_SEC),
					(long long) (usecs % USECS_PER_SEC));
	return (double) usecs;
}

/* Reads one entry of "features". */
static void
ReadFeature(FeatureSpec *spec, FeatureDef *f, Jsonb *fj, TupleDesc desc,
			const char *table)
{
	char	   *fn = OptionKeyword(fj, "fn", NULL);
	char	   *of = OptionString(fj, "of", NULL);
	JsonbValue *range = OptionGet(fj, "range");
	JsonbValue *preceding = OptionGet(fj, "preceding");
	JsonbValue *alpha = OptionGet(fj, "alpha");
	JsonbValue *half_life = OptionGet(fj, "half_life");
	bool		found = false;
	bool		windowed;

	OptionCheckKeys(fj, feature_keys, "feature");
	if (fn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature \"%s\" has no \"fn\"", f->name),
				 errhint("Give one of lag, delta, pct_change, mean, sum, min, max, var, var_pop, stddev, stddev_pop, count, slope, ewma.")));
	for (int i = 0; i < lengthof(fn_names); i++)
		if (strcmp(fn_names[i].name, fn) == 0)
		{
			f->fn = fn_names[i].fn;
			found = true;
		}
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown function \"%s\" in feature \"%s\"", fn, f->name),
				 errhint("Give one of lag, delta, pct_change, mean, sum, min, max, var, var_pop, stddev, stddev_pop, count, slope, ewma.")));

	f->of = -1;
	if (of != NULL)
	{
		AttrNumber	a = SpecColumn(desc, of, "of", table);

		if (!IsNumericType(TupleDescAttr(desc, a - 1)->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of feature \"%s\" must be a number", of, f->name),
					 errdetail("It is of type %s; features are computed in float8 from smallint, integer, bigint, real, double precision or numeric.",
							   format_type_be(TupleDescAttr(desc, a - 1)->atttypid))));
		f->of = OfIndex(spec, a, desc);
	}
	else if (f->fn != FN_COUNT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature \"%s\" has no \"of\" column", f->name),
				 errhint("Only count may leave \"of\" out, to count rows.")));

	windowed = !(f->fn == FN_LAG || f->fn == FN_DELTA ||
				 f->fn == FN_PCT_CHANGE || f->fn == FN_EWMA);
	if (windowed)
	{
		if ((range == NULL) == (preceding == NULL))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("feature \"%s\" needs exactly one of \"preceding\" and \"range\"",
							f->name),
					 errhint("\"preceding\": N is ROWS BETWEEN N PRECEDING AND CURRENT ROW; \"range\": \"30 seconds\" is RANGE BETWEEN that PRECEDING AND CURRENT ROW.")));
		if (OptionGet(fj, "n") || alpha || half_life)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("feature \"%s\" takes no \"n\", \"alpha\" or \"half_life\"", f->name)));
		if (preceding)
		{
			f->frame = FRAME_ROWS;
			f->preceding = OptionValueInteger(preceding, "preceding", 0, 100000000);
		}
		else
		{
			f->frame = FRAME_RANGE;
			if (spec->order_kind == ORDER_TIMESTAMP)
				f->range = IntervalUsecs(OptionValueString(range, "range"), "range",
										 f->name, &f->range_sql);
			else if (spec->order_kind == ORDER_INTEGER)
			{
				int64		r = OptionValueInteger(range, "range", 0,
												   (int64) 1 << 53);

				f->range = (double) r;
				f->range_sql = psprintf(INT64_FORMAT, r);
			}
			else
			{
				f->range = OptionValueNumber(range, "range", 0, DBL_MAX);
				f->range_sql = psprintf("'%.17g'::pg_catalog.float8", f->range);
			}
		}
		return;
	}

	if (range || preceding)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature \"%s\" runs over the whole partition and takes no \"preceding\" or \"range\"",
						f->name)));
	f->frame = FRAME_PARTITION;
	if (f->fn != FN_EWMA)
	{
		if (alpha || half_life)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("feature \"%s\" takes no \"alpha\" or \"half_life\"", f->name)));
		f->n = (int) OptionInteger(fj, "n", 1, 1, 1000000);
		return;
	}
	if (OptionGet(fj, "n"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature \"%s\" takes no \"n\"", f->name)));
	if ((alpha == NULL) == (half_life == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ewma feature \"%s\" needs exactly one of \"alpha\" and \"half_life\"",
						f->name)));
	if (alpha)
	{
		f->alpha = OptionValueNumber(alpha, "alpha", 0, 1);
		(void) EwmaAlphaRate(f->alpha);	/* checks 0 < alpha < 1 */
		return;
	}
	if (spec->order_kind != ORDER_TIMESTAMP)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ewma feature \"%s\" has a \"half_life\" but order_by \"%s\" is not a timestamp",
						f->name, spec->order_name),
				 errhint("Use \"alpha\" to decay by rows.")));
	f->half_life = IntervalUsecs(OptionValueString(half_life, "half_life"),
								 "half_life", f->name, &f->half_life_sql);
}

/*
 * Reads spec against the source's columns desc; table names the feature
 * table in errors.
 */
FeatureSpec *
FeatureSpecRead(Jsonb *specj, TupleDesc desc, const char *table)
{
	FeatureSpec *spec = palloc0(sizeof(FeatureSpec));
	List	   *parts = StringList(specj, "partition_by");
	List	   *keep = StringList(specj, "keep");
	char	   *order = OptionString(specj, "order_by", NULL);
	char	   *late = OptionKeyword(specj, "late", "null");
	JsonbValue *features = OptionGet(specj, "features");
	Jsonb	   *fj;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool	   *kept;
	ListCell   *lc;
	int			i;
	Oid			otype;

	OptionCheckKeys(specj, spec_keys, "feature table");
	if (order == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature table spec needs \"order_by\""),
				 errhint("Name the column that orders the rows of a partition, a timestamp or a number.")));
	spec->order = SpecColumn(desc, order, "order_by", table);
	spec->order_name = pstrdup(order);
	otype = TupleDescAttr(desc, spec->order - 1)->atttypid;
	spec->order_type = otype;
	if (otype == TIMESTAMPOID || otype == TIMESTAMPTZOID)
		spec->order_kind = ORDER_TIMESTAMP;
	else if (otype == INT2OID || otype == INT4OID || otype == INT8OID)
		spec->order_kind = ORDER_INTEGER;
	else if (otype == FLOAT4OID || otype == FLOAT8OID)
		spec->order_kind = ORDER_FLOAT;
	else
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("order_by column \"%s\" must be a timestamp, timestamptz, integer or float",
						order),
				 errdetail("It is of type %s.", format_type_be(otype))));

	spec->npart = list_length(parts);
	spec->part = palloc(sizeof(AttrNumber) * Max(spec->npart, 1));
	spec->part_names = palloc(sizeof(char *) * Max(spec->npart, 1));
	spec->part_types = palloc(sizeof(Oid) * Max(spec->npart, 1));
	spec->part_bytewise = palloc(sizeof(bool) * Max(spec->npart, 1));
	i = 0;
	foreach(lc, parts)
	{
		spec->part[i] = SpecColumn(desc, lfirst(lc), "partition_by", table);
		spec->part_names[i] = lfirst(lc);
		spec->part_types[i] = TupleDescAttr(desc, spec->part[i] - 1)->atttypid;
		spec->part_bytewise[i] =
			PartitionIsBytewise(TupleDescAttr(desc, spec->part[i] - 1));
		if (spec->part[i] == spec->order)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" cannot be both partition_by and order_by",
							spec->part_names[i])));
		i++;
	}

	if (strcmp(late, "null") == 0)
		spec->late_error = false;
	else if (strcmp(late, "error") == 0)
		spec->late_error = true;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"late\" must be \"null\" or \"error\""),
				 errdetail("The value given is \"%s\".", late)));
	spec->backfill = OptionBool(specj, "backfill", true);

	if (features == NULL || features->type != jbvBinary ||
		!JsonContainerIsObject(features->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature table spec needs \"features\", an object of features by name")));
	fj = SubJsonb(features);
	spec->nfeatures = JsonContainerSize(&fj->root);
	if (spec->nfeatures == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature table spec has no features")));
	spec->features = palloc0(sizeof(FeatureDef) * spec->nfeatures);
	spec->of = palloc(sizeof(AttrNumber) * spec->nfeatures);
	spec->of_names = palloc(sizeof(char *) * spec->nfeatures);
	spec->of_types = palloc(sizeof(Oid) * spec->nfeatures);
	it = JsonbIteratorInit(&fj->root);
	i = 0;
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			spec->features[i].name = pnstrdup(v.val.string.val, v.val.string.len);
			/* a column name: PostgreSQL would truncate a longer one */
			if (v.val.string.len == 0 || v.val.string.len >= NAMEDATALEN)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_NAME),
						 errmsg("feature name \"%s\" must be 1 to %d bytes",
								spec->features[i].name, NAMEDATALEN - 1),
						 errdetail("Each feature is a column of the feature table.")));
		}
		else if (tok == WJB_VALUE)
		{
			if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("feature \"%s\" must be a JSON object",
								spec->features[i].name)));
			{
				OptionScope scope;

				/* its option errors name it: "range" of which feature */
				OptionScopePush(&scope, "feature", spec->features[i].name);
				ReadFeature(spec, &spec->features[i], SubJsonb(&v), desc, table);
				OptionScopePop(&scope);
			}
			i++;
		}
	}

	/* kept columns: "keep" (default all), plus what a rebuild reads */
	kept = palloc0(sizeof(bool) * (desc->natts + 1));
	spec->keep = palloc(sizeof(AttrNumber) * desc->natts);
	spec->keep_names = palloc(sizeof(char *) * desc->natts);
	if (keep == NIL)
	{
		for (i = 0; i < desc->natts; i++)
			if (!TupleDescAttr(desc, i)->attisdropped)
				kept[i + 1] = true;
	}
	else
		foreach(lc, keep)
		{
			AttrNumber	a = SpecColumn(desc, lfirst(lc), "keep", table);

			if (!kept[a])
			{
				spec->keep[spec->nkeep] = a;
				spec->keep_names[spec->nkeep++] = lfirst(lc);
			}
			kept[a] = true;
		}
	for (i = 0; i < spec->npart; i++)
		kept[spec->part[i]] = true;
	kept[spec->order] = true;
	for (i = 0; i < spec->nof; i++)
		kept[spec->of[i]] = true;
	for (i = 1; i <= desc->natts; i++)
	{
		bool		listed = false;

		for (int k = 0; k < spec->nkeep; k++)
			if (spec->keep[k] == i)
				listed = true;
		if (kept[i] && !listed)
		{
			spec->keep[spec->nkeep] = i;
			spec->keep_names[spec->nkeep++] = pstrdup(NameStr(TupleDescAttr(desc, i - 1)->attname));
		}
	}

	/* what a rebuild must read back (featurestate.c) */
	spec->need_nonnull = palloc0(sizeof(int64) * Max(spec->nof, 1));
	spec->need_rows = 1;
	spec->need_range = 0;
	for (i = 0; i < spec->nfeatures; i++)
	{
		FeatureDef *f = &spec->features[i];

		if (f->frame == FRAME_ROWS)
			spec->need_rows = Max(spec->need_rows, f->preceding + 1);
		else if (f->frame == FRAME_RANGE)
			spec->need_range = Max(spec->need_range, f->range);
		else if (f->fn != FN_EWMA)
			spec->need_rows = Max(spec->need_rows, f->n + 1);
		else if (f->alpha > 0)
		{
			/* rows beyond weigh below 2^-60 of the newest */
			double		k = ceil(EWMA_HORIZON_HALF_LIVES * M_LN2 /
								 EwmaAlphaRate(f->alpha));

			spec->need_nonnull[f->of] = Max(spec->need_nonnull[f->of],
											(int64) Min(k, 1e12));
		}
		else
			spec->need_range = Max(spec->need_range,
								   EWMA_HORIZON_HALF_LIVES * f->half_life);
	}
	return spec;
}

/* A column name or list as SQL. */
static void
AppendColumns(StringInfo buf, char **names, int n)
{
	for (int i = 0; i < n; i++)
		appendStringInfo(buf, "%s%s", i ? ", " : "", quote_identifier(names[i]));
}

/* The "of" column of a feature as a float8 expression. */
static char *
OfSql(FeatureSpec *spec, FeatureDef *f)
{
	return psprintf("%s::pg_catalog.float8", quote_identifier(spec->of_names[f->of]));
}

/*
 * The SQL query over source (a quoted, qualified name) that computes the
 * same features with window functions: keep columns, then the features.
 */
char *
FeatureSql(FeatureSpec *spec, const char *source)
{
	StringInfoData buf;
	StringInfoData over;
	const char *ob = quote_identifier(spec->order_name);

	initStringInfo(&over);
	if (spec->npart > 0)
	{
		appendStringInfoString(&over, "PARTITION BY ");
		AppendColumns(&over, spec->part_names, spec->npart);
		appendStringInfoChar(&over, ' ');
	}
	appendStringInfo(&over, "ORDER BY %s", ob);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	AppendColumns(&buf, spec->keep_names, spec->nkeep);
	for (int i = 0; i < spec->nfeatures; i++)
	{
		FeatureDef *f = &spec->features[i];
		char	   *frame;
		char	   *call;

		if (f->frame == FRAME_ROWS)
			frame = psprintf("ROWS BETWEEN " INT64_FORMAT " PRECEDING AND CURRENT ROW",
							 f->preceding);
		else if (f->frame == FRAME_RANGE)
			frame = psprintf("RANGE BETWEEN %s PRECEDING AND CURRENT ROW", f->range_sql);
		else
			frame = "ROWS UNBOUNDED PRECEDING";

		switch (f->fn)
		{
			case FN_LAG:
				call = psprintf("pg_catalog.lag(%s, %d) OVER (%s)", OfSql(spec, f), f->n, over.data);
				break;
			case FN_DELTA:
				call = psprintf("%s - pg_catalog.lag(%s, %d) OVER (%s)", OfSql(spec, f),
								OfSql(spec, f), f->n, over.data);
				break;
			case FN_PCT_CHANGE:
				call = psprintf("%s / NULLIF(pg_catalog.lag(%s, %d) OVER (%s), 0) - 1",
								OfSql(spec, f), OfSql(spec, f), f->n, over.data);
				break;
			case FN_COUNT:
				call = psprintf("pg_catalog.count(%s) OVER (%s %s)::pg_catalog.float8",
								f->of >= 0 ? OfSql(spec, f) : "*", over.data, frame);
				break;
			case FN_SLOPE:
				call = psprintf("streamml.rolling_slope(%s, %s) OVER (%s %s)",
								OfSql(spec, f),
								spec->order_kind == ORDER_TIMESTAMP ?
								psprintf("extract(epoch FROM %s)::pg_catalog.float8", ob) :
								psprintf("%s::pg_catalog.float8", ob),
								over.data, frame);
				break;
			case FN_EWMA:
				if (f->alpha > 0)
					call = psprintf("streamml.ewma(%s, '%.17g'::pg_catalog.float8) OVER (%s %s)",
									OfSql(spec, f), f->alpha, over.data, frame);
				else
					call = psprintf("streamml.ewma(%s, %s%s, %s) OVER (%s %s)",
									OfSql(spec, f), ob,
									spec->order_type == TIMESTAMPOID ?
									" AT TIME ZONE 'UTC'" : "",
									f->half_life_sql, over.data, frame);
				break;
			default:
				{
					const char *agg = NULL;

					for (int k = 0; k < lengthof(fn_names); k++)
						if (fn_names[k].fn == f->fn)
							agg = fn_names[k].sql;
					call = psprintf("%s(%s) OVER (%s %s)", agg, OfSql(spec, f),
									over.data, frame);
				}
				break;
		}
		appendStringInfo(&buf, ",\n       %s AS %s", call, quote_identifier(f->name));
	}
	appendStringInfo(&buf, "\n  FROM %s", source);
	return buf.data;
}

/*
 * The order key of a row's order_by value: microseconds for timestamps,
 * the number otherwise.  Errors on values a window frame cannot place.
 */
double
OrderKey(FeatureSpec *spec, Datum d, const char *table)
{
	double		k;

	switch (spec->order_type)
	{
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			if (TIMESTAMP_NOT_FINITE(DatumGetTimestamp(d)))
				ereport(ERROR,
						(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
						 errmsg("order_by column \"%s\" of feature table \"%s\" must be finite",
								spec->order_name, table)));
			return (double) DatumGetTimestamp(d);
		case INT2OID:
			return (double) DatumGetInt16(d);
		case INT4OID:
			return (double) DatumGetInt32(d);
		case INT8OID:
			if (DatumGetInt64(d) > ((int64) 1 << 53) ||
				DatumGetInt64(d) < -((int64) 1 << 53))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("order_by value " INT64_FORMAT " of feature table \"%s\" is out of range",
								DatumGetInt64(d), table),
						 errdetail("Feature tables order rows by values up to 2^53 in magnitude.")));
			return (double) DatumGetInt64(d);
		case FLOAT4OID:
			k = (double) DatumGetFloat4(d);
			break;
		default:
			k = DatumGetFloat8(d);
			break;
	}
	if (!isfinite(k))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("order_by column \"%s\" of feature table \"%s\" must be finite",
						spec->order_name, table)));
	return k;
}

