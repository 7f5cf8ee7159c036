/*
 * decode_json.c
 *		Format json: one JSON object per message, its keys into columns.
 *
 * No jsonb is built per message.  A small scanner walks the top-level
 * object once (WalkMembers), validating all of it.  When every column is
 * fed by its own top-level key (a "flat" mapping, the usual case) each
 * value is converted as soon as its key is read, and numbers, integers,
 * float8[] arrays, epochs and plain strings in the same pass as they are
 * scanned; the column of the k-th key is remembered from the previous
 * message, so a key costs one comparison.  Otherwise the walk keeps for
 * each column the span of its value, and dotted paths descend into the
 * spans of nested objects.  Either way values become datums directly:
 * numbers exactly as float8in reads them, strings after unescaping, other
 * arrays element by element through array_in, objects into jsonb or json.
 * Anything malformed raises an error naming the problem, which makes the
 * message a dead letter.
 */
#include "postgres.h"

#include <float.h>

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "loader.h"

/* The kinds of JSON values. */
typedef enum JType
{
	JT_NONE,					/* key absent */
	JT_STRING,
	JT_NUMBER,
	JT_TRUE,
	JT_FALSE,
	JT_NULL,
	JT_OBJECT,
	JT_ARRAY
} JType;

/* A value found in the message: its type and its bytes. */
typedef struct JSpan
{
	JType		type;
	const char *start;			/* strings: after the opening quote */
	int			len;			/* strings: up to the closing quote */
	bool		escaped;		/* a string with backslashes */
} JSpan;

#define MAX_DEPTH 64

/* Reports malformed JSON. */
static void pg_attribute_noreturn()
BadJson(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid json in message: %s", what)));
}

/* An ASCII digit; cheaper than isdigit(), which looks the locale up. */
static inline bool
IsDigit(char c)
{
	return c >= '0' && c <= '9';
}

/* Skips white space. */
static inline const char *
SkipWs(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Scans a string after its opening quote; returns the closing quote. */
static const char *
ScanString(const char *p, const char *end, bool *escaped)
{
	*escaped = false;
	while (p < end)
	{
		unsigned char ch = *p;

		if (ch == '"')
			return p;
		if (ch == '\\')
		{
			*escaped = true;
			p++;
			if (p >= end)
				break;
			if (*p == 'u')
			{
				int			i;

				for (i = 1; i <= 4; i++)
					if (p + i >= end || !isxdigit((unsigned char) p[i]))
						BadJson("bad \\u escape");
				p += 4;
			}
			else if (strchr("\"\\/bfnrt", *p) == NULL)
				BadJson("bad escape in string");
		}
		else if (ch < 0x20)
			BadJson("control character in string");
		p++;
	}
	BadJson("unterminated string");
}

/* Whether the literal word (true, false, null) is at p; fills span. */
static inline bool
ScanLiteral(const char *p, const char *end, const char *word, JType type,
			JSpan *span)
{
	int			len = strlen(word);

	if (end - p < len || memcmp(p, word, len) != 0)
		return false;
	span->type = type;
	span->start = p;
	span->len = len;
	span->escaped = false;
	return true;
}

/* Scans any value; fills span and returns the byte after it. */
static const char *
ScanValue(const char *p, const char *end, JSpan *span, int depth)
{
	const char *s;

	p = SkipWs(p, end);
	if (p >= end)
		BadJson("value expected");
	s = p;
	switch (*p)
	{
		case '"':
			span->type = JT_STRING;
			span->start = p + 1;
			p = ScanString(p + 1, end, &span->escaped);
			span->len = p - span->start;
			return p + 1;
		case '{':
		case '[':
			{
				char		close = *p == '{' ? '}' : ']';
				bool		obj = *p == '{';
				JSpan		inner;

				if (depth >= MAX_DEPTH)
					BadJson("nesting too deep");
				p = SkipWs(p + 1, end);
				if (p < end && *p == close)
					p++;
				else
				{
					for (;;)
					{
						if (obj)
						{
							bool		esc;

							p = SkipWs(p, end);
							if (p >= end || *p != '"')
								BadJson("object key expected");
							p = ScanString(p + 1, end, &esc) + 1;
							p = SkipWs(p, end);
							if (p >= end || *p != ':')
								BadJson("colon expected");
							p++;
						}
						p = ScanValue(p, end, &inner, depth + 1);
						p = SkipWs(p, end);
						if (p < end && *p == ',')
						{
							p++;
							continue;
						}
						if (p < end && *p == close)
						{
							p++;
							break;
						}
						BadJson(obj ? "comma or } expected" : "comma or ] expected");
					}
				}
				span->type = obj ? JT_OBJECT : JT_ARRAY;
				span->start = s;
				span->len = p - s;
				span->escaped = false;
				return p;
			}
		case 't':
			if (ScanLiteral(p, end, "true", JT_TRUE, span))
				return p + span->len;
			break;
		case 'f':
			if (ScanLiteral(p, end, "false", JT_FALSE, span))
				return p + span->len;
			break;
		case 'n':
			if (ScanLiteral(p, end, "null", JT_NULL, span))
				return p + span->len;
			break;
		default:
			if (*p == '-' || IsDigit(*p))
			{
				/* JSON number grammar */
				if (*p == '-')
					p++;
				if (p >= end || !IsDigit(*p))
					break;
				if (*p == '0')
					p++;
				else
					while (p < end && IsDigit(*p))
						p++;
				if (p < end && *p == '.')
				{
					p++;
					if (p >= end || !IsDigit(*p))
						break;
					while (p < end && IsDigit(*p))
						p++;
				}
				if (p < end && (*p == 'e' || *p == 'E'))
				{
					p++;
					if (p < end && (*p == '+' || *p == '-'))
						p++;
					if (p >= end || !IsDigit(*p))
						break;
					while (p < end && IsDigit(*p))
						p++;
				}
				span->type = JT_NUMBER;
				span->start = s;
				span->len = p - s;
				return p;
			}
	}
	BadJson("unexpected character");
}

/* Reads four hex digits. */
static unsigned int
Hex4(const char *p)
{
	unsigned int v = 0;
	int			i;

	for (i = 0; i < 4; i++)
	{
		char		ch = p[i];

		v = v * 16 + (isdigit((unsigned char) ch) ? ch - '0' :
					  (pg_tolower((unsigned char) ch) - 'a' + 10));
	}
	return v;
}

/* The text of a string span with its escapes resolved (palloc'ed). */
static char *
Unescape(const JSpan *sp, int *outlen)
{
	char	   *out = palloc(sp->len * 2 + 1);
	char	   *o = out;
	const char *p = sp->start;
	const char *end = sp->start + sp->len;

	while (p < end)
	{
		if (*p != '\\')
		{
			*o++ = *p++;
			continue;
		}
		p++;
		switch (*p)
		{
			case 'b':
				*o++ = '\b';
				break;
			case 'f':
				*o++ = '\f';
				break;
			case 'n':
				*o++ = '\n';
				break;
			case 'r':
				*o++ = '\r';
				break;
			case 't':
				*o++ = '\t';
				break;
			case 'u':
				{
					pg_wchar	c = Hex4(p + 1);

					p += 4;
					if (c >= 0xD800 && c <= 0xDBFF)
					{
						if (p + 6 < end + 0 && p[1] == '\\' && p[2] == 'u')
						{
							pg_wchar	lo = Hex4(p + 3);

							if (lo < 0xDC00 || lo > 0xDFFF)
								BadJson("bad unicode surrogate pair");
							c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
							p += 6;
						}
						else
							BadJson("bad unicode surrogate pair");
					}
					else if (c >= 0xDC00 && c <= 0xDFFF)
						BadJson("bad unicode surrogate pair");
					if (c == 0)
						ereport(ERROR,
								(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
								 errmsg("invalid json in message: \\u0000 cannot be converted to text")));
					pg_unicode_to_server(c, (unsigned char *) o);
					o += pg_mblen(o);
					break;
				}
			default:
				*o++ = *p;		/* " \ / */
		}
		p++;
	}
	*o = '\0';
	*outlen = o - out;
	return out;
}

/* Compares a key span with a name. */
static inline bool
KeyIs(const JSpan *k, const char *name, int len)
{
	int			ulen;
	char	   *u;

	if (!k->escaped)
		return k->len == len && memcmp(k->start, name, len) == 0;
	u = Unescape(k, &ulen);
	return ulen == len && memcmp(u, name, len) == 0;
}

/* Finds key in the object span obj; JT_NONE when absent. */
static JSpan
FindKey(const JSpan *obj, const char *name, int len)
{
	const char *p = obj->start + 1;
	const char *end = obj->start + obj->len - 1;
	JSpan		found = {.type = JT_NONE};

	for (;;)
	{
		JSpan		key;
		JSpan		val;

		p = SkipWs(p, end);
		if (p >= end || *p != '"')
			break;
		key.start = p + 1;
		p = ScanString(p + 1, end, &key.escaped);
		key.len = p - key.start;
		p = SkipWs(p + 1, end) + 1; /* the colon */
		p = ScanValue(p, end, &val, 1);
		if (KeyIs(&key, name, len))
			found = val;		/* the last duplicate wins, as in jsonb */
		p = SkipWs(p, end);
		if (p < end && *p == ',')
			p++;
	}
	return found;
}

/*
 * The fast path of ScanFloat8 needs each double operation rounded once,
 * which x87 extended precision (FLT_EVAL_METHOD 2) does not give.
 */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define FAST_FLOAT_PATH true
#else
#define FAST_FLOAT_PATH false
#endif

/* Powers of ten that a double holds exactly. */
static const double exact_pow10[] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
	1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/*
 * Scans a JSON number at p (a '-' or a digit) and converts it to float8 in
 * the same pass; returns the byte after the number.  Most numbers in
 * messages have few digits: when the digits without the point form an
 * integer of at most 2^53 and the decimal exponent is within +-22, both
 * are exact doubles and one IEEE multiplication or division rounds
 * correctly, giving the same result as strtod for a fraction of its cost.
 * Everything else goes through float8in; a number out of its range sets
 * *ok to false instead of raising, so that a caller can defer the error.
 */
static const char *
ScanFloat8(const char *p, const char *end, double *out, bool *ok)
{
	const char *s = p;
	bool		neg = false;
	uint64		m = 0;
	int			ndigits = 0;
	int			e = 0;

	if (*p == '-')
	{
		neg = true;
		p++;
	}
	if (p >= end || !IsDigit(*p))
		BadJson("unexpected character");
	if (*p == '0')
		p++, ndigits++;
	else
		for (; p < end && IsDigit(*p); p++, ndigits++)
			m = m * 10 + (*p - '0');
	if (p < end && *p == '.')
	{
		p++;
		if (p >= end || !IsDigit(*p))
			BadJson("unexpected character");
		for (; p < end && IsDigit(*p); p++, ndigits++, e--)
			m = m * 10 + (*p - '0');
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		bool		eneg = false;
		int			x = 0;
		int			nx = 0;

		p++;
		if (p < end && (*p == '+' || *p == '-'))
			eneg = *p++ == '-';
		if (p >= end || !IsDigit(*p))
			BadJson("unexpected character");
		for (; p < end && IsDigit(*p); p++, nx++)
			if (nx < 5)
				x = x * 10 + (*p - '0');
		if (nx > 5)
			ndigits = 100;		/* a huge exponent: the slow way */
		e += eneg ? -x : x;
	}
	if (FAST_FLOAT_PATH && ndigits <= 19 && m <= (UINT64CONST(1) << 53) &&
		e >= -22 && e <= 22)
	{
		double		d = (double) m;

		d = e < 0 ? d / exact_pow10[-e] : d * exact_pow10[e];
		*out = neg ? -d : d;
	}
	else
	{
		char	   *str = pnstrdup(s, p - s);
		bool		have_error = false;

		*out = float8in_internal_opt_error(str, NULL, "double precision", str,
										   &have_error);
		if (have_error)
		{
			*ok = false;		/* out of range: the caller says so */
			return p;
		}
	}
	*ok = true;
	return p;
}

/* A JSON number of a span (see ScanFloat8) as a float8. */
static double
JsonNumberToFloat8(const JSpan *sp)
{
	double		d;
	bool		ok;

	(void) ScanFloat8(sp->start, sp->start + sp->len, &d, &ok);
	if (!ok)
	{
		char	   *str = pnstrdup(sp->start, sp->len);

		d = float8in_internal(str, NULL, "double precision", str);	/* raises */
	}
	return d;
}

/* A JSON array of numbers as a float8[], or false to take the slow way. */
static bool
Float8Array(const JSpan *sp, Datum *value)
{
	const char *p = sp->start + 1;
	const char *end = sp->start + sp->len - 1;
	Datum		buf[64];
	Datum	   *elems = buf;
	int			n = 0,
				cap = lengthof(buf);

	for (;;)
	{
		JSpan		v;

		p = SkipWs(p, end);
		if (p >= end)
			break;
		p = ScanValue(p, end, &v, 1);
		if (v.type != JT_NUMBER)
			return false;
		if (n == cap)
		{
			Datum	   *more = palloc(sizeof(Datum) * cap * 2);

			memcpy(more, elems, sizeof(Datum) * n);
			elems = more;
			cap *= 2;
		}
		elems[n++] = Float8GetDatum(JsonNumberToFloat8(&v));
		p = SkipWs(p, end);
		if (p < end && *p == ',')
			p++;
	}
	*value = PointerGetDatum(construct_array(elems, n, FLOAT8OID, 8,
											 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	return true;
}

/*
 * Scans a JSON integer at p ('-' or a digit) into an int64 of at most 18
 * digits.  Returns NULL, having read nothing for the caller, when the
 * number has a fraction, an exponent, a leading zero or more digits: the
 * general way then converts it or names the error.
 */
static const char *
ScanInteger(const char *p, const char *end, int64 *out)
{
	bool		neg = false;
	int64		v = 0;
	int			n = 0;

	if (*p == '-')
	{
		neg = true;
		p++;
	}
	if (p >= end || !IsDigit(*p) || (*p == '0' && p + 1 < end && IsDigit(p[1])))
		return NULL;
	for (; p < end && IsDigit(*p) && n < 18; p++, n++)
		v = v * 10 + (*p - '0');
	if (p < end && (*p == '.' || *p == 'e' || *p == 'E' || IsDigit(*p)))
		return NULL;
	*out = neg ? -v : v;
	return p;
}

/* Element buffer of ScanFloat8Array, kept for the life of the worker. */
static double *array_buf;
static int	array_cap;

/*
 * Scans a JSON array of numbers at p ('[') into a float8[] in one pass.
 * Returns NULL when an element is not a number or is out of range, so that
 * the caller takes the general way (nulls, nested arrays, errors).
 */
static const char *
ScanFloat8Array(const char *p, const char *end, Datum *value)
{
	ArrayType  *a;
	int			n = 0;
	Size		nbytes;

	p = SkipWs(p + 1, end);
	if (p < end && *p == ']')
	{
		*value = PointerGetDatum(construct_empty_array(FLOAT8OID));
		return p + 1;
	}
	for (;;)
	{
		bool		ok;

		if (p >= end || !(*p == '-' || IsDigit(*p)))
			return NULL;

		if (n == array_cap)
		{
			int			cap = Max(64, array_cap * 2);

			/* The size changes only once the allocation has succeeded. */
			array_buf = array_buf == NULL ?
				MemoryContextAlloc(TopMemoryContext, sizeof(double) * cap) :
				repalloc(array_buf, sizeof(double) * cap);
			array_cap = cap;
		}
		p = SkipWs(ScanFloat8(p, end, &array_buf[n++], &ok), end);
		if (!ok)
			return NULL;
		if (p < end && *p == ',')
		{
			p = SkipWs(p + 1, end);
			continue;
		}
		if (p < end && *p == ']')
			break;
		BadJson("comma or ] expected");
	}
	/* One dimension, no nulls: the header, then the doubles. */
	nbytes = ARR_OVERHEAD_NONULLS(1) + sizeof(double) * n;
	a = palloc0(nbytes);
	SET_VARSIZE(a, nbytes);
	a->ndim = 1;
	a->dataoffset = 0;
	a->elemtype = FLOAT8OID;
	ARR_DIMS(a)[0] = n;
	ARR_LBOUND(a)[0] = 1;
	memcpy(ARR_DATA_PTR(a), array_buf, sizeof(double) * n);
	*value = PointerGetDatum(a);
	return p + 1;
}

/*
 * Appends a JSON array as a PostgreSQL array literal, element by element:
 * strings unescaped and quoted for array_in, numbers and booleans as
 * written, null as NULL, nested arrays as sub-arrays.
 */
static void
AppendArrayLiteral(StringInfo buf, const JSpan *sp)
{
	const char *p = sp->start + 1;
	const char *end = sp->start + sp->len - 1;
	bool		first = true;

	appendStringInfoChar(buf, '{');
	for (;;)
	{
		JSpan		v;

		p = SkipWs(p, end);
		if (p >= end)
			break;
		p = ScanValue(p, end, &v, 1);
		if (!first)
			appendStringInfoChar(buf, ',');
		first = false;
		switch (v.type)
		{
			case JT_ARRAY:
				AppendArrayLiteral(buf, &v);
				break;
			case JT_OBJECT:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						 errmsg("cannot convert a json array of objects to an array")));
				break;
			case JT_NULL:
				appendStringInfoString(buf, "NULL");
				break;
			case JT_STRING:
				{
					const char *str = v.start;
					int			len = v.len;
					int			k;

					if (v.escaped)
						str = Unescape(&v, &len);
					appendStringInfoChar(buf, '"');
					for (k = 0; k < len; k++)
					{
						if (str[k] == '"' || str[k] == '\\')
							appendStringInfoChar(buf, '\\');
						appendStringInfoChar(buf, str[k]);
					}
					appendStringInfoChar(buf, '"');
					break;
				}
			default:
				appendBinaryStringInfo(buf, v.start, v.len);
		}
		p = SkipWs(p, end);
		if (p < end && *p == ',')
			p++;
	}
	appendStringInfoChar(buf, '}');
}

/* A JSON array as the text of a PostgreSQL array (palloc'ed). */
static char *
ArrayLiteral(const JSpan *sp)
{
	StringInfoData buf;

	initStringInfo(&buf);
	AppendArrayLiteral(&buf, sp);
	return buf.data;
}

/* Converts one JSON value into the column's type. */
static void
SetFromJson(ColumnPlan *c, StreamConfig *cfg, const JSpan *sp, Datum *value,
			bool *isnull)
{
	*isnull = false;
	switch (sp->type)
	{
		case JT_NULL:
		case JT_NONE:
			*isnull = true;
			return;
		case JT_STRING:
			if (c->kind == CK_JSONB || c->kind == CK_JSON)
				break;			/* keep the quotes: a JSON string */
			if (sp->escaped)
			{
				int			len;
				char	   *s = Unescape(sp, &len);

				SetFromText(c, s, len, value, isnull);
			}
			else
				SetFromText(c, sp->start, sp->len, value, isnull);
			return;
		case JT_NUMBER:
			if (c->kind == CK_TIMESTAMPTZ || c->typid == TIMESTAMPOID)
			{
				double		d = JsonNumberToFloat8(sp);

				*value = TimestampTzGetDatum(EpochToTimestamptz(d, cfg->epoch_ms));
				return;
			}
			if (c->kind == CK_FLOAT8)
			{
				*value = Float8GetDatum(JsonNumberToFloat8(sp));
				return;
			}
			if (c->kind == CK_BOOL)
			{
				if (sp->len == 1 && (sp->start[0] == '0' || sp->start[0] == '1'))
				{
					*value = BoolGetDatum(sp->start[0] == '1');
					return;
				}
			}
			if (c->kind != CK_JSONB && c->kind != CK_JSON)
			{
				SetFromText(c, sp->start, sp->len, value, isnull);
				return;
			}
			break;
		case JT_TRUE:
		case JT_FALSE:
			if (c->kind == CK_BOOL)
			{
				*value = BoolGetDatum(sp->type == JT_TRUE);
				return;
			}
			if (c->kind != CK_JSONB && c->kind != CK_JSON)
			{
				SetFromText(c, sp->start, sp->len, value, isnull);
				return;
			}
			break;
		case JT_ARRAY:
			if (c->kind == CK_FLOAT8_ARRAY && Float8Array(sp, value))
				return;
			if (c->kind != CK_JSONB && c->kind != CK_JSON && c->kind != CK_TEXT)
			{
				if (!type_is_array(c->typid))
					ereport(ERROR,
							(errcode(ERRCODE_DATATYPE_MISMATCH),
							 errmsg("cannot convert a json array into column \"%s\" of type %s",
									c->attname, format_type_be(c->typid))));
				*value = InputFunctionCall(&c->infunc, ArrayLiteral(sp),
										   c->ioparam, c->typmod);
				return;
			}
			break;
		case JT_OBJECT:
			if (c->kind != CK_JSONB && c->kind != CK_JSON && c->kind != CK_TEXT)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("cannot convert a json object into column \"%s\" of type %s",
								c->attname, format_type_be(c->typid))));
			break;
	}
	/* jsonb, json or text from any JSON value: its text as received. */
	if (c->kind == CK_TEXT)
		*value = PointerGetDatum(cstring_to_text_with_len(sp->start, sp->len));
	else
	{
		const char *s = sp->type == JT_STRING ? sp->start - 1 : sp->start;
		int			len = sp->type == JT_STRING ? sp->len + 2 : sp->len;

		*value = InputFunctionCall(&c->infunc, pnstrdup(s, len), c->ioparam,
								   c->typmod);
	}
}

/* Scans the top-level object of a message; checks the whole message. */
static JSpan
TopObject(KafkaMessage *m)
{
	JSpan		top;
	const char *end;

	if (m->payload == NULL)
		BadJson("empty message");
	ValidateEncoding(m->payload, m->payload_len);
	end = m->payload + m->payload_len;
	if (SkipWs(ScanValue(m->payload, end, &top, 0), end) != end)
		BadJson("data after the json value");
	if (top.type != JT_OBJECT)
		BadJson("not a json object");
	return top;
}

/* The column that a top-level key feeds (the k-th key), or -1. */
static inline int
ColumnOfKey(TargetState *ts, const JSpan *key, int k)
{
	int			i;

	if (k < JSON_KEY_HINTS && ts->json_hint[k] >= 0)
	{
		ColumnPlan *c = &ts->cols[ts->json_hint[k]];

		if (KeyIs(key, c->path, c->path_len))
			return ts->json_hint[k];
	}
	for (i = 0; i < ts->ncols; i++)
	{
		ColumnPlan *c = &ts->cols[i];

		if (c->source == SRC_PATH && KeyIs(key, c->path, c->path_len))
		{
			if (k < JSON_KEY_HINTS)
				ts->json_hint[k] = i;
			return i;
		}
	}
	return -1;
}

/*
 * Decodes the value at p into column c, scanning and converting in one
 * pass where the column's type allows and the conversion cannot fail;
 * returns the byte after the value.  Any other value is only scanned: its
 * span goes to *deferred, converted once the whole message has been read,
 * so that a later duplicate key replaces it without its errors and syntax
 * errors anywhere in the message come first.
 */
static const char *
DecodeMember(TargetState *ts, ColumnPlan *c, const char *p, const char *end,
			 Datum *values, bool *nulls, JSpan *deferred)
{
	int			a = c->attnum - 1;
	const char *q;

	deferred->type = JT_NONE;
	if (p < end)
	{
		bool		number = *p == '-' || IsDigit(*p);
		bool		ok;
		double		d;
		int64		v;
		TimestampTz t;

		switch (c->kind)
		{
			case CK_FLOAT8:
				if (!number || (q = ScanFloat8(p, end, &d, &ok), !ok))
					break;
				values[a] = Float8GetDatum(d);
				nulls[a] = false;
				return q;
			case CK_TIMESTAMPTZ:
				if (!number || (q = ScanFloat8(p, end, &d, &ok), !ok) ||
					!EpochToTimestamptzSafe(d, ts->cfg->epoch_ms, &t))
					break;
				values[a] = TimestampTzGetDatum(t);
				nulls[a] = false;
				return q;
			case CK_INT4:
				if (!number || (q = ScanInteger(p, end, &v)) == NULL ||
					v < PG_INT32_MIN || v > PG_INT32_MAX)
					break;
				values[a] = Int32GetDatum((int32) v);
				nulls[a] = false;
				return q;
			case CK_INT8:
				if (!number || (q = ScanInteger(p, end, &v)) == NULL)
					break;
				values[a] = Int64GetDatum(v);
				nulls[a] = false;
				return q;
			case CK_FLOAT8_ARRAY:
				if (*p != '[' || (q = ScanFloat8Array(p, end, &values[a])) == NULL)
					break;
				nulls[a] = false;
				return q;
			case CK_TEXT:
				if (*p == '"')
				{
					bool		esc;

					q = ScanString(p + 1, end, &esc);
					if (esc)
						break;	/* unescaping can fail: later */
					values[a] = PointerGetDatum(cstring_to_text_with_len(p + 1, q - p - 1));
					nulls[a] = false;
					return q + 1;
				}
				break;
			default:
				break;
		}
	}
	return ScanValue(p, end, deferred, 1);
}

/* The deferred values of a message, one per column, all absent. */
static JSpan *
DeferredSpans(int ncols)
{
	static JSpan *spans;
	static int	cap;

	if (ncols > cap)
	{
		JSpan	   *more = MemoryContextAlloc(TopMemoryContext, sizeof(JSpan) * ncols);

		if (spans)
			pfree(spans);
		spans = more;
		cap = ncols;
	}
	memset(spans, 0, sizeof(JSpan) * ncols);	/* JT_NONE */
	return spans;
}

/* The row a message is decoded into. */
typedef struct RowOut
{
	Datum	   *values;
	bool	   *nulls;
	bool	   *present;
	JSpan	   *deferred;		/* per column: converted after the walk */
} RowOut;

/* What to do with one top-level member; returns the byte after its value. */
typedef const char *(*MemberFn) (TargetState *ts, const JSpan *key, int k,
								 const char *p, const char *end, void *arg);

/*
 * Walks the members of the top-level object (p is after its opening
 * brace), checking the syntax around them, hands the k-th key and its
 * value to fn, and checks that nothing follows the object.
 */
static inline void
WalkMembers(TargetState *ts, const char *p, const char *end, MemberFn fn,
			void *arg)
{
	int			k;

	p = SkipWs(p, end);
	if (p < end && *p == '}')
		p++;
	else
		for (k = 0;; k++)
		{
			JSpan		key;

			if (p >= end || *p != '"')
				BadJson("object key expected");
			key.start = p + 1;
			p = ScanString(p + 1, end, &key.escaped);
			key.len = p - key.start;
			p = SkipWs(p + 1, end);
			if (p >= end || *p != ':')
				BadJson("colon expected");
			p = SkipWs(fn(ts, &key, k, SkipWs(p + 1, end), end, arg), end);
			if (p < end && *p == ',')
			{
				p = SkipWs(p + 1, end);
				continue;
			}
			if (p < end && *p == '}')
			{
				p++;
				break;
			}
			BadJson("comma or } expected");
		}
	if (SkipWs(p, end) != end)
		BadJson("data after the json value");
}

/*
 * For a flat mapping: converts a mapped value as soon as its key is read,
 * or defers it (a later duplicate key replaces either, as in jsonb), and
 * validates the others.
 */
static const char *
DecodeFlatMember(TargetState *ts, const JSpan *key, int k, const char *p,
				 const char *end, void *arg)
{
	RowOut	   *row = arg;
	int			i = ColumnOfKey(ts, key, k);
	JSpan		val;

	if (i < 0)
		return ScanValue(p, end, &val, 1);
	row->present[ts->cols[i].attnum - 1] = true;
	return DecodeMember(ts, &ts->cols[i], p, end, row->values, row->nulls,
						&row->deferred[i]);
}

/* The spans of the columns' first path parts, for the general way. */
typedef struct FoundSpans
{
	JSpan	   *found;
	bool	   *whole;			/* found by a whole dotted key */
} FoundSpans;

/*
 * For any mapping: validates a member's value and notes its span for every
 * column whose path starts with its key.
 */
static const char *
NoteMember(TargetState *ts, const JSpan *key, int k, const char *p,
		   const char *end, void *arg)
{
	FoundSpans *fs = arg;
	JSpan		val;
	int			i;

	p = ScanValue(p, end, &val, 1);
	for (i = 0; i < ts->ncols; i++)
	{
		ColumnPlan *c = &ts->cols[i];

		if (c->source != SRC_PATH)
			continue;
		/* A whole dotted key names the column before its path does. */
		if (KeyIs(key, c->path, c->path_len))
		{
			fs->found[i] = val;
			fs->whole[i] = true;
		}
		else if (c->nparts > 1 && !fs->whole[i] &&
				 KeyIs(key, c->parts[0], c->part_lens[0]))
			fs->found[i] = val;
	}
	return p;
}

/*
 * Checks that a message is valid in the database encoding and starts as
 * a JSON object; returns the byte after its brace and sets *end.
 */
static const char *
ObjectStart(KafkaMessage *m, const char **end)
{
	const char *p;

	if (m->payload == NULL)
		BadJson("empty message");
	ValidateEncoding(m->payload, m->payload_len);
	*end = m->payload + m->payload_len;
	p = SkipWs(m->payload, *end);
	if (p >= *end || *p != '{')
	{
		(void) TopObject(m);	/* names what is wrong */
		BadJson("not a json object");
	}
	return p + 1;
}

/*
 * Decodes a message into values: each mapped column's path is looked up,
 * metadata comes from the message; present[] marks the columns that got
 * a value (the others take their default).
 */
void
DecodeJson(TargetState *ts, KafkaMessage *m, Datum *values, bool *nulls,
		   bool *present)
{
	FoundSpans	fs = {NULL, NULL};
	const char *p;
	const char *end;
	int			i;

	p = ObjectStart(m, &end);
	if (ts->json_flat)
	{
		/* Values are decoded as their keys are read. */
		RowOut		row = {values, nulls, present, DeferredSpans(ts->ncols)};

		WalkMembers(ts, p, end, DecodeFlatMember, &row);
		for (i = 0; i < ts->ncols; i++)
			if (row.deferred[i].type != JT_NONE)
			{
				ColumnPlan *c = &ts->cols[i];

				SetFromJson(c, ts->cfg, &row.deferred[i], &values[c->attnum - 1],
							&nulls[c->attnum - 1]);
			}
	}
	else
	{
		/* One pass over the members finds every column's first path part. */
		fs.found = palloc0(sizeof(JSpan) * ts->ncols);
		fs.whole = palloc0(sizeof(bool) * ts->ncols);
		WalkMembers(ts, p, end, NoteMember, &fs);
	}

	for (i = 0; i < ts->ncols; i++)
	{
		ColumnPlan *c = &ts->cols[i];
		int			a = c->attnum - 1;

		if (c->source != SRC_PATH)
		{
			present[a] = true;
			SetFromMetadata(c, ts->cfg, m, &values[a], &nulls[a]);
			continue;
		}
		if (ts->json_flat)
			continue;			/* decoded during the walk */
		if (c->nparts > 1 && fs.found[i].type != JT_NONE && !fs.whole[i])
		{
			/* Descend into nested objects, part by part. */
			JSpan		cur = fs.found[i];
			int			k;

			for (k = 1; k < c->nparts && cur.type == JT_OBJECT; k++)
				cur = FindKey(&cur, c->parts[k], c->part_lens[k]);
			if (k < c->nparts)
				cur.type = JT_NONE;
			fs.found[i] = cur;
		}
		if (fs.found[i].type == JT_NONE)
			continue;			/* absent: the column default */
		present[a] = true;
		SetFromJson(c, ts->cfg, &fs.found[i], &values[a], &nulls[a]);
	}
}

/* The route field being looked for, and its last value. */
typedef struct RouteFind
{
	const char *field;
	int			len;
	JSpan		found;
} RouteFind;

/* Validates a member's value; notes it if its key is the route field. */
static const char *
NoteRouteField(TargetState *ts, const JSpan *key, int k, const char *p,
			   const char *end, void *arg)
{
	RouteFind  *rf = arg;
	JSpan		val;

	p = ScanValue(p, end, &val, 1);
	if (KeyIs(key, rf->field, rf->len))
		rf->found = val;		/* the last duplicate wins, as in jsonb */
	return p;
}

/* The value of a top-level field as text, for routing; one pass. */
bool
JsonRouteValue(KafkaMessage *m, const char *field, char **value)
{
	RouteFind	rf = {field, strlen(field), {.type = JT_NONE}};
	const char *end;
	const char *p;
	int			len;

	p = ObjectStart(m, &end);
	WalkMembers(NULL, p, end, NoteRouteField, &rf);
	if (rf.found.type == JT_NONE || rf.found.type == JT_NULL)
		return false;
	if (rf.found.type == JT_STRING)
		*value = rf.found.escaped ? Unescape(&rf.found, &len) :
			pnstrdup(rf.found.start, rf.found.len);
	else
		*value = pnstrdup(rf.found.start, rf.found.len);
	return true;
}
