/*
 * options.c
 *		The one reader of the jsonb options objects that streams, training
 *		and retraining take.
 *
 * One rule everywhere, so that an option means the same wherever it is
 * given: a number option takes a JSON number or a string holding a decimal
 * number ("42", "1e-3"; not hexadecimal, "inf" or "nan"), an integer option additionally refuses a fraction, a
 * boolean takes true/false (or a string PostgreSQL reads as a boolean:
 * "on", "off", "yes", "no"), a string option takes only a string, and a
 * JSON null means "not given".  Unknown keys are errors, with a hint
 * listing the known ones.  Errors say which option is wrong; the caller
 * names the stream or model in an error context.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/elog.h"

#include "options.h"
#include "pg_streamml.h"

/* The value of key in an options object, or NULL (also for JSON null). */
JsonbValue *
OptionGet(Jsonb *options, const char *key)
{
	JsonbValue *v;

	if (options == NULL || !JB_ROOT_IS_OBJECT(options))
		return NULL;
	v = getKeyJsonValueFromContainer(&options->root, key, strlen(key), NULL);
	if (v != NULL && v->type == jbvNull)
		return NULL;
	return v;
}

/*
 * Reads a number written in decimal (a JSON number, or a string such as
 * "42" or "1e-3"), erroring with the option's name on anything else:
 * hexadecimal, "inf", "nan", or a number beyond float8's range.
 */
static double
ParseNumber(const char *key, const char *s)
{
	char	   *end;
	double		d;

	errno = 0;
	d = (s[0] != '\0' && strspn(s, "0123456789+-.eE") == strlen(s)) ?
		strtod(s, &end) : 0.0;
	if (s[0] == '\0' || strspn(s, "0123456789+-.eE") != strlen(s) ||
		end == s || *end != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a number", key),
				 errdetail("\"%s\" is not a decimal number.", s)));
	if (errno == ERANGE && (d > 1.0 || d < -1.0))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("option \"%s\" is out of range", key),
				 errdetail("The value is beyond the range of float8.")));
	return d;
}

/* The number in an option's value; errors outside [min, max]. */
double
OptionValueNumber(JsonbValue *v, const char *key, double min, double max)
{
	double		d;

	if (v->type == jbvNumeric)
		d = ParseNumber(key, DatumGetCString(DirectFunctionCall1(numeric_out,
																 NumericGetDatum(v->val.numeric))));
	else if (v->type == jbvString)
		d = ParseNumber(key, pnstrdup(v->val.string.val, v->val.string.len));
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a number", key)));
	if (!(d >= min && d <= max))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be between %g and %g", key, min, max),
				 errdetail("The value given is %g.", d)));
	return d;
}

/* A number option, or dflt when absent; errors outside [min, max]. */
double
OptionNumber(Jsonb *options, const char *key, double dflt, double min,
			 double max)
{
	JsonbValue *v = OptionGet(options, key);

	return v == NULL ? dflt : OptionValueNumber(v, key, min, max);
}

/*
 * Errors for an integer option outside [min, max], saying only the bound
 * that exists: "at least 30", not "between 30 and 9223372036854775807".
 */
static void
IntegerRangeError(const char *key, int64 min, int64 max, const char *given)
{
	if (max == PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an integer of at least " INT64_FORMAT,
						key, min),
				 errdetail("The value given is %s.", given)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" must be an integer between " INT64_FORMAT " and " INT64_FORMAT,
					key, min, max),
			 errdetail("The value given is %s.", given)));
}

/*
 * The integer in an option's value; errors outside [min, max].  Read
 * exactly from the value's text (a JSON number, or a string holding one):
 * through float8, 2^63 would wrap to -2^63 and integers past 2^53 would
 * silently change.  A value written otherwise ("1e3", "3.0") is taken when
 * it is an integer float8 represents exactly.
 */
int64
OptionValueInteger(JsonbValue *v, const char *key, int64 min, int64 max)
{
	char	   *text;
	char	   *end;
	int64		i;
	double		d;

	if (v->type == jbvNumeric)
		text = DatumGetCString(DirectFunctionCall1(numeric_out,
												   NumericGetDatum(v->val.numeric)));
	else if (v->type == jbvString)
		text = pnstrdup(v->val.string.val, v->val.string.len);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a number", key)));
	errno = 0;
	i = strtoi64(text, &end, 10);
	if (end != text && *end == '\0' && errno == 0)
	{
		if (i < min || i > max)
			IntegerRangeError(key, min, max, text);
		return i;
	}
	d = ParseNumber(key, text);
	/* 2^53: the integers float8 holds exactly */
	if (d != floor(d) || fabs(d) > 9007199254740992.0 ||
		d < (double) min || d > (double) max)
		IntegerRangeError(key, min, max, text);
	return (int64) d;
}

/* An integer option, or dflt when absent; errors outside [min, max]. */
int64
OptionInteger(Jsonb *options, const char *key, int64 dflt, int64 min,
			  int64 max)
{
	JsonbValue *v = OptionGet(options, key);

	return v == NULL ? dflt : OptionValueInteger(v, key, min, max);
}

/* The string in an option's value. */
char *
OptionValueString(JsonbValue *v, const char *key)
{
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a string", key)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* A string option, or a copy of dflt (which may be NULL) when absent. */
char *
OptionString(Jsonb *options, const char *key, const char *dflt)
{
	JsonbValue *v = OptionGet(options, key);

	if (v == NULL)
		return dflt ? pstrdup(dflt) : NULL;
	return OptionValueString(v, key);
}

/*
 * A keyword option (deploy, solver, action, ...): a string read in any
 * case, as PostgreSQL reads keywords (COPY's FORMAT CSV), returned in lower
 * case; the caller checks it against its keywords.  Not for names of
 * columns or other objects, whose case matters.
 */
char *
OptionKeyword(Jsonb *options, const char *key, const char *dflt)
{
	char	   *s = OptionString(options, key, dflt);

	for (char *c = s; c != NULL && *c; c++)
		*c = pg_ascii_tolower((unsigned char) *c);
	return s;
}

/* The boolean in an option's value. */
bool
OptionValueBool(JsonbValue *v, const char *key)
{
	bool		b;

	if (v->type == jbvBool)
		return v->val.boolean;
	if (v->type == jbvString &&
		parse_bool_with_len(v->val.string.val, v->val.string.len, &b))
		return b;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" must be true or false", key)));
	return false;				/* keep the compiler quiet */
}

/* A boolean option, or dflt when absent. */
bool
OptionBool(Jsonb *options, const char *key, bool dflt)
{
	JsonbValue *v = OptionGet(options, key);

	return v == NULL ? dflt : OptionValueBool(v, key);
}

/*
 * Errors unless options is a JSON object whose keys are all in known
 * (NULL-terminated); what names the kind of options ("training").
 */
void
OptionCheckKeys(Jsonb *options, const char *const *known, const char *what)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (options == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s options must be a JSON object", what)));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		found = false;
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		for (int i = 0; known[i] != NULL; i++)
			if (strcmp(known[i], key) == 0)
				found = true;
		if (!found)
		{
			StringInfoData list;

			initStringInfo(&list);
			for (int i = 0; known[i] != NULL; i++)
				appendStringInfo(&list, "%s%s", i > 0 ? ", " : "", known[i]);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown %s option \"%s\"", what, key),
					 errhint("The %s options are: %s.", what, list.data)));
		}
	}
}

/* Error context callback of an OptionScope: which nested object is read. */
static void
OptionScopeContext(void *arg)
{
	OptionScope *scope = (OptionScope *) arg;

	errcontext("%s \"%s\"", scope->kind, scope->name);
}

/*
 * Names the nested object being read (kind "option", "feature",
 * "challenger", "candidate"; its name) in the context line of any error
 * raised until OptionScopePop: an option's own message names only its key,
 * which is ambiguous when several objects have it ("min_rows" of a
 * monitor and of its "rollback").
 */
void
OptionScopePush(OptionScope *scope, const char *kind, const char *name)
{
	scope->kind = kind;
	scope->name = name;
	scope->callback.callback = OptionScopeContext;
	scope->callback.arg = scope;
	scope->callback.previous = error_context_stack;
	error_context_stack = &scope->callback;
}

/* Ends an OptionScope; scopes end in the reverse order of their start. */
void
OptionScopePop(OptionScope *scope)
{
	Assert(error_context_stack == &scope->callback);
	error_context_stack = scope->callback.previous;
}
