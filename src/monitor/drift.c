/*
 * drift.c
 *		streamml.drift_detect(method, x [, params]): runs one drift detector
 *		over the rows of a group in the aggregate's ORDER BY, and returns
 *		{"detections": [...], "warnings": [...], "state": {...}}.
 *
 * The method and its parameters are read once, at the group's first row,
 * into the detector (drift.h); every row then costs one update() of a
 * small C struct and no allocation (the positions lists grow by doubling).
 * Positions are 1-based row numbers in input order, NULL rows included, so
 * that they match row_number() OVER (ORDER BY ...) of the same rows: a NULL
 * x takes its position but the detector does not see it.  "warnings" holds
 * every row that is in the warning zone after a row that was not.
 *
 * The result depends on the row order, so the aggregate has no combine
 * function and is never split across parallel workers.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "options.h"
#include "monitor/drift.h"
#include "pg_streamml.h"

static const DriftMethod *const DriftMethods[] = {
	&DriftAdwinMethod,
	&DriftDdmMethod,
	&DriftEddmMethod,
	&DriftKswinMethod,
	&DriftPageHinkleyMethod,
	&DriftCusumMethod,
	NULL
};

/* The method named name, or an error listing the methods. */
const DriftMethod *
DriftMethodLookup(const char *name)
{
	StringInfoData list;

	for (int i = 0; DriftMethods[i] != NULL; i++)
		if (pg_strcasecmp(DriftMethods[i]->name, name) == 0)
			return DriftMethods[i];
	initStringInfo(&list);
	for (int i = 0; DriftMethods[i] != NULL; i++)
		appendStringInfo(&list, "%s'%s'", i > 0 ? ", " : "", DriftMethods[i]->name);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown drift detection method \"%s\"", name),
			 errhint("The methods are %s.", list.data)));
	return NULL;				/* keep the compiler quiet */
}

/*
 * A detector of the named method, its parameters read from params (NULL
 * for the defaults), allocated in the current memory context.
 */
DriftDetector *
DriftDetectorCreate(const char *method, Jsonb *params)
{
	const DriftMethod *m = DriftMethodLookup(method);
	OptionCheckKeys(params, m->params, m->name);
	return m->create(params);
}

/* Appends ", "key": v" to a JSON object; null for NaN and infinities. */
void
DriftAppendNumber(StringInfo buf, const char *key, double v)
{
	if (isfinite(v))
	{
		char	   *s = Float8TextExact(v);

		appendStringInfo(buf, ", \"%s\": %s", key, s);
		pfree(s);
	}
	else
		appendStringInfo(buf, ", \"%s\": null", key);
}

/* A growing list of positions. */
typedef struct PositionList
{
	int64	   *items;
	int			count;
	int			size;
} PositionList;

/* Appends one position, doubling the array when full. */
static inline void
PositionAdd(MemoryContext cxt, PositionList *l, int64 pos)
{
	if (l->count == l->size)
	{
		l->size = l->size == 0 ? 16 : l->size * 2;
		l->items = l->items == NULL ?
			MemoryContextAlloc(cxt, sizeof(int64) * l->size) :
			repalloc(l->items, sizeof(int64) * l->size);
	}
	l->items[l->count++] = pos;
}

/* The aggregate's state. */
typedef struct DriftAggState
{
	DriftDetector *detector;
	int64		rows;			/* rows seen, NULLs included */
	int64		nulls;
	bool		in_warning;		/* the last non-NULL row was */
	PositionList detections;
	PositionList warnings;
} DriftAggState;

/*
 * drift_detect_accum(state, method, x [, params]): the transition
 * function of both drift_detect aggregates.
 */
PG_FUNCTION_INFO_V1(drift_detect_accum);
Datum
drift_detect_accum(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	DriftAggState *st;
	double		x;
	DriftSignal sig;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("drift_detect_accum called in non-aggregate context")));

	if (PG_ARGISNULL(0))
	{
		MemoryContext old;
		Jsonb	   *params = NULL;
		char	   *method;

		if (PG_ARGISNULL(1))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("drift detection method must not be null")));
		if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
			params = PG_GETARG_JSONB_P(3);
		method = text_to_cstring(PG_GETARG_TEXT_PP(1));

		old = MemoryContextSwitchTo(aggcxt);
		st = palloc0(sizeof(DriftAggState));
		st->detector = DriftDetectorCreate(method, params);
		MemoryContextSwitchTo(old);
	}
	else
		st = (DriftAggState *) PG_GETARG_POINTER(0);

	st->rows++;
	if (PG_ARGISNULL(2))
	{
		st->nulls++;
		PG_RETURN_POINTER(st);
	}
	x = PG_GETARG_FLOAT8(2);
	if (unlikely(!isfinite(x)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("drift_detect does not take %s", isnan(x) ? "NaN" : "infinite values"),
				 errdetail("Row " INT64_FORMAT " in the aggregate's order has x = %g.", st->rows, x)));

	sig = DriftUpdate(st->detector, x);
	if (unlikely(!DriftFinite(st->detector)))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value out of range: overflow"),
				 errdetail("The %s detector's sums overflow float8 at row " INT64_FORMAT " in the aggregate's order (x = %g).",
						   st->detector->method->name, st->rows, x),
				 errhint("Scale x down.")));
	if (sig == DRIFT_DETECTED)
		PositionAdd(aggcxt, &st->detections, st->rows);
	else if (sig == DRIFT_WARNING && !st->in_warning)
		PositionAdd(aggcxt, &st->warnings, st->rows);
	st->in_warning = sig == DRIFT_WARNING;
	PG_RETURN_POINTER(st);
}

/* Appends "[p1, p2, ...]". */
static void
AppendPositions(StringInfo buf, PositionList *l)
{
	appendStringInfoChar(buf, '[');
	for (int i = 0; i < l->count; i++)
		appendStringInfo(buf, "%s" INT64_FORMAT, i > 0 ? ", " : "", l->items[i]);
	appendStringInfoChar(buf, ']');
}

/* drift_detect_final(state): the jsonb result; NULL for no rows. */
PG_FUNCTION_INFO_V1(drift_detect_final);
Datum
drift_detect_final(PG_FUNCTION_ARGS)
{
	DriftAggState *st;
	StringInfoData buf;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (DriftAggState *) PG_GETARG_POINTER(0);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"detections\": ");
	AppendPositions(&buf, &st->detections);
	appendStringInfoString(&buf, ", \"warnings\": ");
	AppendPositions(&buf, &st->warnings);
	appendStringInfo(&buf, ", \"state\": {\"method\": \"%s\", \"rows\": " INT64_FORMAT
					 ", \"nulls\": " INT64_FORMAT ", \"n_detections\": %d"
					 ", \"in_warning\": %s",
					 st->detector->method->name, st->rows, st->nulls,
					 st->detections.count, st->in_warning ? "true" : "false");
	st->detector->method->state(st->detector, &buf);
	appendStringInfoString(&buf, "}}");
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}
