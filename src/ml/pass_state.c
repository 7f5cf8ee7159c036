/*
 * pass_state.c
 *		The states of the pass and metric aggregates as bytea, so that Citus
 *		computes the passes on the worker nodes.
 *
 * Citus runs a custom aggregate on the shards and combines the partial
 * states on the coordinator (worker_partial_agg, coord_combine_agg) only
 * when the aggregate's state type is a real type with input and output
 * functions; for state type internal it ships every row to the coordinator
 * instead.  So ml_moments, irls_pass and the metric aggregates declare
 * their state as bytea.  A bytea that is rebuilt and copied at every row
 * would cost a pass its speed; instead the state is an expanded object
 * (utils/expandeddatum.h): a read-write pointer to a small header that
 * holds the aggregate's C state (moments.c, irls_state.c, metrics.c,
 * unchanged), and whose "flat" form is that state's serialisation.  The
 * executor keeps a read-write expanded transition value as it is (no copy
 * per row, as for array_append), and flattens it only when the value
 * leaves the backend: to a parallel leader, or through the bytea output
 * function to the Citus coordinator, which reads it back with the bytea
 * input function and hands it to the combine function, which deserialises
 * it.  The wrappers below turn each (transition, combine, final) function
 * of an internal-state aggregate into one of a bytea-state aggregate.
 *
 * A flat state is a bytea that any role can hand to these functions: the
 * initcond of an aggregate of its own over them, rows fed to a combine
 * function used as a transition, any bytea given to a final function.  So
 * every deserialiser checks every field before it allocates or reads by it
 * (PASS_STATE_CHECK, passes.h), a state made from a flat one is completed
 * before a transition adds a row to it (PassStateFromFlat), the functions
 * error outside an aggregate before they read a state, and an object is
 * used only by the functions of the aggregate that made it.  The checks
 * run when a state is read, never per row.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "utils/expandeddatum.h"
#include "utils/memutils.h"

#include "ml/passes.h"

/* The functions of an aggregate whose C state is wrapped. */
typedef struct PassStateFuncs
{
	const char *name;			/* the aggregate's, for errors */
	PGFunction	combinefn;		/* combine(internal, internal) */
	PGFunction	serialfn;		/* internal -> bytea */
	PGFunction	deserialfn;		/* bytea -> internal, checking every field */
	PassStateCompleteFn complete;	/* or NULL: PassStateFromFlat */
} PassStateFuncs;

/* The expanded object: the C state of the aggregate, and its flat form. */
typedef struct PassStateObject
{
	ExpandedObjectHeader hdr;
	void	   *state;			/* the aggregate's C state, never NULL */
	const PassStateFuncs *funcs;
	bytea	   *flat;			/* serialisation, between size and flatten */
} PassStateObject;

/* Serialises the state (once) and returns the size of its flat form. */
static Size
PassStateFlatSize(ExpandedObjectHeader *eohptr)
{
	PassStateObject *obj = (PassStateObject *) eohptr;

	if (obj->flat == NULL)
		obj->flat = DatumGetByteaPP(DirectFunctionCall1(obj->funcs->serialfn,
														PointerGetDatum(obj->state)));
	return VARSIZE(obj->flat);
}

/* Writes the flat form: the serialisation PassStateFlatSize made. */
static void
PassStateFlatten(ExpandedObjectHeader *eohptr, void *result, Size size)
{
	PassStateObject *obj = (PassStateObject *) eohptr;

	if (obj->flat == NULL || VARSIZE(obj->flat) != size)
		elog(ERROR, "pass state flattened without its size");
	memcpy(result, obj->flat, size);
	pfree(obj->flat);
	obj->flat = NULL;
}

static const ExpandedObjectMethods PassStateMethods = {
	PassStateFlatSize,
	PassStateFlatten
};

/*
 * Wraps a C state into a new expanded object in a context of its own under
 * the aggregate's context: there the executor keeps it without a copy.
 */
static Datum
PassStateWrap(FunctionCallInfo fcinfo, void *state, const PassStateFuncs *funcs)
{
	MemoryContext aggcontext = PassAggContext(fcinfo, "pass state");
	MemoryContext cxt = AllocSetContextCreate(aggcontext, "pass state",
											  ALLOCSET_SMALL_SIZES);
	PassStateObject *obj = MemoryContextAllocZero(cxt, sizeof(PassStateObject));

	EOH_init_header(&obj->hdr, &PassStateMethods, cxt);
	obj->state = state;
	obj->funcs = funcs;
	return EOHPGetRWDatum(&obj->hdr);
}

/*
 * The expanded object behind a state datum, or NULL for a flat bytea.  An
 * object made by the functions of another aggregate (a user's aggregate
 * can pair the transition function of one with the final function of
 * another) is refused: its C state is of another type.
 */
static PassStateObject *
PassStateObjectOf(Datum d, const PassStateFuncs *funcs)
{
	if (VARATT_IS_EXTERNAL_EXPANDED(DatumGetPointer(d)))
	{
		ExpandedObjectHeader *eoh = DatumGetEOHP(d);
		PassStateObject *obj = (PassStateObject *) eoh;

		if (eoh->eoh_methods != &PassStateMethods)
			elog(ERROR, "unexpected expanded object as a pass state");
		if (obj->funcs != funcs)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("a state of %s cannot be used as a state of %s",
							obj->funcs->name, funcs->name)));
		return obj;
	}
	return NULL;
}

/* Calls one of the wrapped functions with up to two arguments. */
static Datum
PassStateCall(FunctionCallInfo fcinfo, PGFunction fn, int nargs,
			  Datum a, bool anull, Datum b, bool bnull, bool *isnull)
{
	LOCAL_FCINFO(inner, 2);
	Datum		result;

	InitFunctionCallInfoData(*inner, NULL, nargs, fcinfo->fncollation,
							 fcinfo->context, NULL);
	inner->args[0].value = a;
	inner->args[0].isnull = anull;
	inner->args[1].value = b;
	inner->args[1].isnull = bnull;
	result = fn(inner);
	*isnull = inner->isnull;
	return result;
}

/*
 * The C state of a state datum: the object's, or a flat bytea deserialised
 * (and checked) into the current memory context.
 */
static void *
PassStateOf(FunctionCallInfo fcinfo, Datum d, const PassStateFuncs *funcs)
{
	PassStateObject *obj = PassStateObjectOf(d, funcs);
	bool		isnull;

	if (obj != NULL)
		return obj->state;
	return DatumGetPointer(PassStateCall(fcinfo, funcs->deserialfn, 1, d, false,
										 (Datum) 0, true, &isnull));
}

/*
 * The aggregate's memory context, or the error of a function fn (transfn,
 * combinefn, finalfn) of the aggregate called from SQL outside it, before
 * it reads its arguments.
 */
static MemoryContext
PassStateAggContext(FunctionCallInfo fcinfo, const PassStateFuncs *funcs,
					const char *fn)
{
	MemoryContext aggcontext;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s_%s called in non-aggregate context", funcs->name, fn)));
	return aggcontext;
}

/*
 * The C state of a flat state (an initcond, a copy of the state, a partial
 * state from a parallel worker or a Citus worker node), or NULL for an
 * empty one: deserialised, which checks every field, merged into a new
 * state in the aggregate's context, so that it has every array the
 * aggregate's functions use, and for a transition (fn "transfn") completed
 * with what a flat state does not carry, from the row's arguments
 * (irls_pass: its parameters).  So a transition function is given a
 * whole state, or the call errors; outside an aggregate it errors first.
 */
static void *
PassStateFromFlat(FunctionCallInfo fcinfo, Datum d, const PassStateFuncs *funcs,
				  const char *fn)
{
	MemoryContext old = MemoryContextSwitchTo(PassStateAggContext(fcinfo, funcs, fn));
	bool		complete = (strcmp(fn, "transfn") == 0);
	bool		isnull;
	void	   *c;

	c = DatumGetPointer(PassStateCall(fcinfo, funcs->combinefn, 2,
									  (Datum) 0, true,
									  PointerGetDatum(PassStateOf(fcinfo, d, funcs)),
									  false, &isnull));
	if (isnull)
		c = NULL;
	if (complete && c != NULL && funcs->complete != NULL)
		funcs->complete(fcinfo, c);
	MemoryContextSwitchTo(old);
	return c;
}

/*
 * Transition: runs the internal-state transition function on the wrapped
 * state (a first call wraps what it made) and returns the same read-write
 * pointer, so the executor neither copies nor flattens it.  An object
 * never holds a NULL state: no state is a NULL datum.
 */
static Datum
PassStateTransition(FunctionCallInfo fcinfo, PGFunction transfn,
					const PassStateFuncs *funcs)
{
	PassStateObject *obj = NULL;
	void	   *cur = NULL;
	Datum		state;

	if (!PG_ARGISNULL(0))
	{
		obj = PassStateObjectOf(PG_GETARG_DATUM(0), funcs);
		if (obj != NULL)
			cur = obj->state;
		else
			cur = PassStateFromFlat(fcinfo, PG_GETARG_DATUM(0), funcs, "transfn");
	}
	fcinfo->args[0].value = PointerGetDatum(cur);
	fcinfo->args[0].isnull = (cur == NULL);
	state = transfn(fcinfo);
	if (fcinfo->isnull || DatumGetPointer(state) == NULL)
		PG_RETURN_NULL();		/* no state yet (rows of NULLs) */
	if (obj == NULL)
		return PassStateWrap(fcinfo, DatumGetPointer(state), funcs);
	obj->state = DatumGetPointer(state);
	if (unlikely(obj->flat != NULL))
	{
		pfree(obj->flat);
		obj->flat = NULL;
	}
	return EOHPGetRWDatum(&obj->hdr);
}

/*
 * Combine: merges the second state (a flat bytea from a parallel worker or
 * a Citus worker node, or an object) into the first with the internal-state
 * combine function.  Not strict: a NULL state is an empty one.
 */
static Datum
PassStateCombine(FunctionCallInfo fcinfo, const PassStateFuncs *funcs)
{
	PassStateObject *obj = NULL;
	void	   *a = NULL;
	void	   *b;
	void	   *c;
	bool		isnull;

	(void) PassStateAggContext(fcinfo, funcs, "combinefn");
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		(void) PassStateObjectOf(PG_GETARG_DATUM(0), funcs);
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	b = PassStateOf(fcinfo, PG_GETARG_DATUM(1), funcs);
	if (!PG_ARGISNULL(0))
	{
		obj = PassStateObjectOf(PG_GETARG_DATUM(0), funcs);
		if (obj != NULL)
			a = obj->state;
		else
			a = PassStateFromFlat(fcinfo, PG_GETARG_DATUM(0), funcs, "combinefn");
	}
	c = DatumGetPointer(PassStateCall(fcinfo, funcs->combinefn, 2,
									  PointerGetDatum(a), a == NULL,
									  PointerGetDatum(b), false, &isnull));
	if (isnull || c == NULL)
		PG_RETURN_NULL();
	if (obj == NULL)
		return PassStateWrap(fcinfo, c, funcs);
	obj->state = c;
	if (unlikely(obj->flat != NULL))
	{
		pfree(obj->flat);
		obj->flat = NULL;
	}
	return EOHPGetRWDatum(&obj->hdr);
}

/*
 * Final: the internal-state final function on the unwrapped state (NULL
 * for an empty one).
 */
static Datum
PassStateFinal(FunctionCallInfo fcinfo, PGFunction finalfn,
			   const PassStateFuncs *funcs)
{
	if (!PG_ARGISNULL(0))
	{
		PassStateObject *obj = PassStateObjectOf(PG_GETARG_DATUM(0), funcs);
		void	   *s;

		if (obj != NULL)
			s = obj->state;
		else
			s = PassStateFromFlat(fcinfo, PG_GETARG_DATUM(0), funcs, "finalfn");
		fcinfo->args[0].value = PointerGetDatum(s);
		fcinfo->args[0].isnull = (s == NULL);
	}
	return finalfn(fcinfo);
}

/*
 * The bytea-state entry points of one aggregate NAME, wrapping its
 * internal-state functions NAME_transfn, _combinefn, _serialfn,
 * _deserialfn and _finalfn: NAME_state_transfn, _state_combinefn and
 * _state_finalfn.  COMPLETE completes a state made from a flat one for a
 * transition (PassStateFromFlat), or is NULL.
 */
#define PASS_STATE_AGGREGATE(name, complete) \
extern Datum name##_transfn(PG_FUNCTION_ARGS); \
extern Datum name##_combinefn(PG_FUNCTION_ARGS); \
extern Datum name##_serialfn(PG_FUNCTION_ARGS); \
extern Datum name##_deserialfn(PG_FUNCTION_ARGS); \
extern Datum name##_finalfn(PG_FUNCTION_ARGS); \
static const PassStateFuncs name##_funcs = { \
	"streamml." #name, name##_combinefn, name##_serialfn, \
	name##_deserialfn, complete \
}; \
PG_FUNCTION_INFO_V1(name##_state_transfn); \
Datum \
name##_state_transfn(PG_FUNCTION_ARGS) \
{ \
	return PassStateTransition(fcinfo, name##_transfn, &name##_funcs); \
} \
PG_FUNCTION_INFO_V1(name##_state_combinefn); \
Datum \
name##_state_combinefn(PG_FUNCTION_ARGS) \
{ \
	return PassStateCombine(fcinfo, &name##_funcs); \
} \
PG_FUNCTION_INFO_V1(name##_state_finalfn); \
Datum \
name##_state_finalfn(PG_FUNCTION_ARGS) \
{ \
	return PassStateFinal(fcinfo, name##_finalfn, &name##_funcs); \
}

PASS_STATE_AGGREGATE(ml_moments, MomentsComplete)
PASS_STATE_AGGREGATE(irls_pass, IrlsPassComplete)
PASS_STATE_AGGREGATE(classification_metrics, NULL)
PASS_STATE_AGGREGATE(regression_metrics, NULL)
PASS_STATE_AGGREGATE(multiclass_metrics, NULL)

/*
 * feature_bins (feature_bins.c), the reservoir sample training records for
 * drift: its functions are named otherwise.  Its state on a shard is at
 * most the sample (10,000 rows), whatever the rows.
 */
extern Datum feature_bins_accum(PG_FUNCTION_ARGS);
extern Datum feature_bins_combine(PG_FUNCTION_ARGS);
extern Datum feature_bins_serialize(PG_FUNCTION_ARGS);
extern Datum feature_bins_deserialize(PG_FUNCTION_ARGS);
extern Datum feature_bins_final(PG_FUNCTION_ARGS);
static const PassStateFuncs feature_bins_funcs = {
	"streamml.feature_bins", feature_bins_combine, feature_bins_serialize,
	feature_bins_deserialize, NULL
};

PG_FUNCTION_INFO_V1(feature_bins_state_transfn);
/* streamml.feature_bins_transfn(bytea, float8[], text[]) */
Datum
feature_bins_state_transfn(PG_FUNCTION_ARGS)
{
	return PassStateTransition(fcinfo, feature_bins_accum, &feature_bins_funcs);
}

PG_FUNCTION_INFO_V1(feature_bins_state_combinefn);
/* streamml.feature_bins_combinefn(bytea, bytea) */
Datum
feature_bins_state_combinefn(PG_FUNCTION_ARGS)
{
	return PassStateCombine(fcinfo, &feature_bins_funcs);
}

PG_FUNCTION_INFO_V1(feature_bins_state_finalfn);
/* streamml.feature_bins_finalfn(bytea) */
Datum
feature_bins_state_finalfn(PG_FUNCTION_ARGS)
{
	return PassStateFinal(fcinfo, feature_bins_final, &feature_bins_funcs);
}

/* Errors unless a flat state holds at least its header of header bytes. */
void
PassStateCheckHeader(const char *agg, StringInfo buf, int header)
{
	PASS_STATE_CHECK(buf->len - buf->cursor >= header, agg,
					 "The state has %d bytes, fewer than its header of %d.",
					 buf->len - buf->cursor, header);
}

/*
 * Errors unless what follows the header already read is exactly rest bytes,
 * which the caller computes in 64 bits from checked fields (so that it
 * cannot wrap around).
 */
void
PassStateCheckLength(const char *agg, StringInfo buf, uint64 rest)
{
	PASS_STATE_CHECK((uint64) (buf->len - buf->cursor) == rest, agg,
					 "The state has %d bytes where its header calls for " UINT64_FORMAT ".",
					 buf->len, (uint64) buf->cursor + rest);
}

/* Errors unless the n values of a state are finite (and >= 0 if asked). */
void
PassStateCheckFinite(const char *agg, const char *what, const double *v,
					 int64 n, bool nonnegative)
{
	for (int64 i = 0; i < n; i++)
		PASS_STATE_CHECK(isfinite(v[i]) && (!nonnegative || v[i] >= 0.0), agg,
						 "Its %s hold %g.", what, v[i]);
}
