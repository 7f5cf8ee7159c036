/*
 * group_key.c
 *		The one text form of a group key: what training stores in
 *		model_versions.group_key and what every serving path looks up.
 *
 * A per-group model is found by the text of its group column.  PostgreSQL's
 * output functions make that text under the session's settings: a
 * timestamptz under TimeZone and DateStyle, a date or timestamp under
 * DateStyle, an interval under IntervalStyle, a float under
 * extra_float_digits, a bytea under bytea_output.  A key made by a cast to
 * text in one session is then not the key of the same value in another,
 * and a model trained in UTC is "not found" by a scorer whose session runs
 * in Asia/Tokyo.  So the text of a key is made here, the same for every
 * session:
 *
 *	boolean				true / false (as boolean::text)
 *	text, varchar		the string; char(n) without its trailing blanks
 *						(as bpchar::text)
 *	float4, float8		the shortest text that reads back exactly
 *						(extra_float_digits = 1, the default; -0 as 0)
 *	timestamptz			ISO 8601 in UTC: 2024-01-01 09:00:00+00
 *	timestamp, date		ISO 8601 (DateStyle ISO)
 *	interval			IntervalStyle postgres
 *	bytea				hex (bytea_output hex)
 *	other scalar types	the type's output function, whose text does not
 *						depend on settings (integers, numeric, uuid, enums,
 *						inet, time, ...)
 *
 * These equal the cast to text under PostgreSQL's default settings with
 * TimeZone UTC, so keys stored before this file existed still match.  Types
 * whose text depends on settings in ways a key cannot pin (money on
 * lc_monetary; regclass and the other object identifier types on the
 * search_path; arrays, composites, ranges and geometric types, whose
 * elements may be any of the above) are refused as group columns.
 *
 * Training uses the SQL function streamml.group_key(anyelement); C callers
 * (the row forms of predict, scorers) use GroupKeyText with a GroupKeyOut
 * made once per batch or call site.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "ml/group_key.h"

/* Refuses a group column type whose text cannot be made the same everywhere. */
static void
GroupKeyCheckBase(Oid type, Oid base, const char *column)
{
	char		category;
	bool		preferred;

	if (base == CASHOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("group column \"%s\" cannot be of type money", column),
				 errdetail("The text of a money value depends on lc_monetary, so a group key made in one session would not be found in another."),
				 errhint("Cast it to numeric in the source query.")));
	switch (base)
	{
		case REGCLASSOID:
		case REGPROCOID:
		case REGPROCEDUREOID:
		case REGOPEROID:
		case REGOPERATOROID:
		case REGTYPEOID:
		case REGCONFIGOID:
		case REGDICTIONARYOID:
		case REGNAMESPACEOID:
		case REGROLEOID:
		case REGCOLLATIONOID:
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("group column \"%s\" cannot be of type %s", column,
							format_type_be(type)),
					 errdetail("The text of an object identifier type depends on the search_path, so a group key made in one session would not be found in another."),
					 errhint("Cast it to oid, or to text qualified as you mean it, in the source query.")));
			break;
		default:
			break;
	}
	get_type_category_preferred(base, &category, &preferred);
	if (category == TYPCATEGORY_ARRAY || category == TYPCATEGORY_COMPOSITE ||
		category == TYPCATEGORY_RANGE || category == TYPCATEGORY_GEOMETRIC ||
		category == TYPCATEGORY_PSEUDOTYPE || type_is_rowtype(base))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("group column \"%s\" cannot be of type %s", column,
						format_type_be(type)),
				 errdetail("A group key is the text of one scalar value; the text of arrays, composites, ranges and geometric values depends on session settings."),
				 errhint("Group by a scalar column, or cast it to text in the source query.")));
}

/*
 * True when values of types a and b that are equal have the same key: the
 * same base type, or both integers, or both character strings.  A numeric
 * 1.0 is "1.0" where an integer 1 is "1", a float4 0.1 is not a float8 0.1:
 * groups trained on one type are not found by keys of another.
 */
bool
GroupKeyTypesAgree(Oid a, Oid b)
{
	Oid			ba = getBaseType(a);
	Oid			bb = getBaseType(b);

	if (ba == bb)
		return true;
	if ((ba == INT2OID || ba == INT4OID || ba == INT8OID) &&
		(bb == INT2OID || bb == INT4OID || bb == INT8OID))
		return true;
	if ((ba == TEXTOID || ba == VARCHAROID || ba == BPCHAROID) &&
		(bb == TEXTOID || bb == VARCHAROID || bb == BPCHAROID))
		return true;
	return false;
}

/* Checks that a column of this type can be a group key (errors if not). */
void
GroupKeyCheckType(Oid type, const char *column)
{
	GroupKeyCheckBase(type, getBaseType(type), column);
}

/* Prepares the conversion of values of one type to their key text. */
void
GroupKeyOutInit(GroupKeyOut *o, Oid type, const char *column,
				MemoryContext cxt)
{
	Oid			base = getBaseType(type);

	GroupKeyCheckBase(type, base, column);
	o->type = type;
	o->base = base;
	switch (base)
	{
		case BOOLOID:
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case FLOAT4OID:
		case FLOAT8OID:
		case TIMESTAMPTZOID:
		case TIMESTAMPOID:
		case DATEOID:
		case INTERVALOID:
		case BYTEAOID:
			break;
		default:
			{
				Oid			out;
				bool		varlena;

				getTypeOutputInfo(base, &out, &varlena);
				fmgr_info_cxt(out, &o->out, cxt);
			}
	}
}

/* The ISO text of a timestamp (in UTC when with_tz). */
static void
TimestampKey(Timestamp ts, bool with_tz, char *buf)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(ts))
	{
		EncodeSpecialTimestamp(ts, buf);
		return;
	}
	/* no time zone argument: the fields of the instant in UTC */
	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	/* EncodeDateTime prints no offset for fields of unknown DST */
	tm.tm_isdst = 0;
	EncodeDateTime(&tm, fsec, with_tz, 0, NULL, USE_ISO_DATES, buf);
}

/*
 * The key text of a value (not NULL) and its length in *len.  Text-like
 * values point into the datum (not NUL-terminated); others are palloc'd in
 * the current memory context.
 */
const char *
GroupKeyText(GroupKeyOut *o, Datum value, int *len)
{
	char		buf[MAXDATELEN + 1];
	char	   *s;

	switch (o->base)
	{
		case BOOLOID:
			s = DatumGetBool(value) ? "true" : "false";
			*len = strlen(s);
			return s;
		case TEXTOID:
		case VARCHAROID:
			{
				text	   *t = DatumGetTextPP(value);

				*len = VARSIZE_ANY_EXHDR(t);
				return VARDATA_ANY(t);
			}
		case BPCHAROID:
			{
				text	   *t = DatumGetTextPP(value);
				const char *d = VARDATA_ANY(t);
				int			n = VARSIZE_ANY_EXHDR(t);

				while (n > 0 && d[n - 1] == ' ')
					n--;
				*len = n;
				return d;
			}
		case FLOAT4OID:
			{
				float		f = DatumGetFloat4(value);

				/* -0 equals 0: one group, one key */
				s = palloc(32);
				*len = float_to_shortest_decimal_buf(f == 0.0f ? 0.0f : f, s);
				return s;
			}
		case FLOAT8OID:
			{
				double		f = DatumGetFloat8(value);

				s = palloc(32);
				*len = double_to_shortest_decimal_buf(f == 0.0 ? 0.0 : f, s);
				return s;
			}
		case TIMESTAMPTZOID:
			TimestampKey(DatumGetTimestampTz(value), true, buf);
			break;
		case TIMESTAMPOID:
			TimestampKey(DatumGetTimestamp(value), false, buf);
			break;
		case DATEOID:
			{
				DateADT		d = DatumGetDateADT(value);
				struct pg_tm tm;

				if (DATE_NOT_FINITE(d))
					EncodeSpecialDate(d, buf);
				else
				{
					j2date(d + POSTGRES_EPOCH_JDATE,
						   &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
					EncodeDateOnly(&tm, USE_ISO_DATES, buf);
				}
			}
			break;
		case INTERVALOID:
			{
				struct pg_itm itm;

				interval2itm(*DatumGetIntervalP(value), &itm);
				EncodeInterval(&itm, INTSTYLE_POSTGRES, buf);
			}
			break;
		case BYTEAOID:
			{
				bytea	   *b = DatumGetByteaPP(value);
				int			n = VARSIZE_ANY_EXHDR(b);

				s = palloc(n * 2 + 3);
				s[0] = '\\';
				s[1] = 'x';
				*len = 2 + hex_encode(VARDATA_ANY(b), n, s + 2);
				s[*len] = '\0';
				return s;
			}
		default:
			s = OutputFunctionCall(&o->out, value);
			*len = strlen(s);
			return s;
	}
	*len = strlen(buf);
	return pstrdup(buf);
}

/* GroupKeyText as a NUL-terminated palloc'd string. */
char *
GroupKeyCString(GroupKeyOut *o, Datum value)
{
	int			len;
	const char *s = GroupKeyText(o, value, &len);

	return pnstrdup(s, len);
}

PG_FUNCTION_INFO_V1(group_key);

/*
 * SQL streamml.group_key(anyelement) RETURNS text: the key of a value, the
 * same in every session (see the comment atop this file).
 */
Datum
group_key(PG_FUNCTION_ARGS)
{
	GroupKeyOut *o = (GroupKeyOut *) fcinfo->flinfo->fn_extra;
	Oid			type = get_fn_expr_argtype(fcinfo->flinfo, 0);
	const char *s;
	int			len;

	if (!OidIsValid(type))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not determine the type of the group key")));
	if (o == NULL || o->type != type)
	{
		o = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(GroupKeyOut));
		GroupKeyOutInit(o, type, "group_key", fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = o;
	}
	s = GroupKeyText(o, PG_GETARG_DATUM(0), &len);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(s, len));
}
