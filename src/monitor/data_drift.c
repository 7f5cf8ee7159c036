/*
 * data_drift.c
 *		Data drift of one feature: aggregates comparing a window of new
 *		values with a reference distribution given as quantile bins (the
 *		bins stored with a model version at training time: deciles by
 *		default), after Evidently's drift tests.
 *
 *	psi(value, bins, fractions)
 *		Population Stability Index, sum over bins of
 *		(c_i - r_i) ln(c_i / r_i), c_i the new values' fraction in bin i and
 *		r_i the reference's, a fraction of 0 counting as 0.0001 (Evidently's
 *		psi_stat_test does the same).
 *	ks_statistic(value, bins, fractions)
 *		Kolmogorov-Smirnov distance between the two distributions at the
 *		bin edges: max_i |C_cur(e_i) - C_ref(e_i)| over the inner edges.
 *		With the reference known only by its bins, this is the KS statistic
 *		of the binned data (a lower bound of the raw-sample statistic).
 *	wasserstein_distance(value, bins, fractions)
 *		Earth mover's (W1) distance, the integral of |F_cur - F_ref|, with
 *		F_cur the new values' empirical distribution and F_ref spread
 *		uniformly within each reference bin (linear between edges).  It
 *		keeps every value (8 bytes a row) and sorts them at the end.
 *
 * bins holds the k + 1 bin edges in ascending order (k >= 1) and
 * fractions the reference's k fractions (non-negative, summing to 1; they
 * are normalised).  Bin i is [e_i, e_{i+1}), the last one closed; values
 * below e_0 or above e_k count in the first and the last bin, as the
 * reference's outer bins stand for its tails.  NULL values are skipped;
 * NaN and infinities are errors.  Bins and fractions are read at a group's
 * first row (they must be the same for every row); each row then costs one
 * binary search among the edges.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/memutils.h"

#include "ml/ml.h"
#include "ml/passes.h"
#include "monitor/drift.h"

/* A fraction of 0 counts as this much in PSI (Evidently's value). */
#define PSI_EMPTY_FRACTION 0.0001

/* The most bins a reference may have. */
#define DATA_DRIFT_MAX_BINS 10000

typedef struct DataDriftState
{
	int			k;				/* bins */
	double	   *edges;			/* k + 1 */
	double	   *fractions;		/* k, normalised */
	int64	   *counts;			/* k */
	int64		n;				/* values counted */
	bool		keep_values;	/* wasserstein: keeps every value */
	int64		nvalues;
	int64		maxvalues;
	double	   *values;
} DataDriftState;

/* The float8 elements of a one-dimensional array without NULLs. */
static double *
ReadFloatArray(ArrayType *a, const char *what, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	double	   *out;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	deconstruct_array(a, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, n);
	out = palloc(sizeof(double) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", what)));
		out[i] = DatumGetFloat8(elems[i]);
		if (!isfinite(out[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must hold finite numbers", what)));
	}
	return out;
}

/*
 * Checks and normalises a reference: k + 1 ascending edges, k
 * non-negative fractions of positive sum.  Errors name the arguments.
 */
static void
CheckReference(double *edges, int nedges, double *fractions, int nfractions)
{
	double		sum = 0.0;
	double		max = 0.0;

	if (nedges < 2 || nedges > DATA_DRIFT_MAX_BINS + 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bins must hold between 2 and %d bin edges", DATA_DRIFT_MAX_BINS + 1),
				 errdetail("It holds %d.", nedges)));
	if (nfractions != nedges - 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fractions must hold one number per bin"),
				 errdetail("bins holds %d edges, so %d bin%s, and fractions holds %d numbers.",
						   nedges, nedges - 1, nedges - 1 == 1 ? "" : "s", nfractions)));
	for (int i = 1; i < nedges; i++)
		if (edges[i] < edges[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bins must be in ascending order"),
					 errdetail("Edge %d (%g) is below edge %d (%g).",
							   i + 1, edges[i], i, edges[i - 1])));
	for (int i = 0; i < nfractions; i++)
	{
		if (fractions[i] < 0.0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("fractions must not be negative"),
					 errdetail("Fraction %d is %g.", i + 1, fractions[i])));
		max = fmax(max, fractions[i]);
	}
	if (!(max > 0.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fractions must not all be 0")));
	/*
	 * Scaled by the largest first: the sum of fractions near DBL_MAX would
	 * be infinite, and every fraction 0 after the division.
	 */
	for (int i = 0; i < nfractions; i++)
	{
		fractions[i] /= max;
		sum += fractions[i];
	}
	for (int i = 0; i < nfractions; i++)
		fractions[i] /= sum;
}

/* A new state in the aggregate context for the given reference. */
static DataDriftState *
DataDriftStateCreate(MemoryContext aggcxt, ArrayType *bins, ArrayType *fractions,
					 bool keep_values)
{
	MemoryContext old = MemoryContextSwitchTo(aggcxt);
	DataDriftState *st = palloc0(sizeof(DataDriftState));
	int			nedges,
				nfractions;

	st->edges = ReadFloatArray(bins, "bins", &nedges);
	st->fractions = ReadFloatArray(fractions, "fractions", &nfractions);
	CheckReference(st->edges, nedges, st->fractions, nfractions);
	st->k = nedges - 1;
	st->counts = palloc0(sizeof(int64) * st->k);
	st->keep_values = keep_values;
	MemoryContextSwitchTo(old);
	return st;
}

/* The bin of x: the number of inner edges at or below x. */
static inline int
BinOf(const DataDriftState *st, double x)
{
	int			lo = 1,
				hi = st->k;		/* inner edges are edges[1 .. k - 1] */

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (st->edges[mid] <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - 1;
}

/* Keeps one value, the array doubling when full. */
static inline void
KeepValue(MemoryContext aggcxt, DataDriftState *st, double x)
{
	if (st->nvalues == st->maxvalues)
	{
		st->maxvalues = st->maxvalues == 0 ? 1024 : st->maxvalues * 2;
		if ((Size) st->maxvalues * sizeof(double) > MaxAllocHugeSize)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many values for wasserstein_distance")));
		st->values = st->values == NULL ?
			MemoryContextAllocHuge(aggcxt, st->maxvalues * sizeof(double)) :
			repalloc_huge(st->values, st->maxvalues * sizeof(double));
	}
	st->values[st->nvalues++] = x;
}

/* Adds one value. */
static inline void
DataDriftAdd(MemoryContext aggcxt, DataDriftState *st, double x)
{
	if (unlikely(!isfinite(x)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("data drift aggregates do not take %s", isnan(x) ? "NaN" : "infinite values")));
	st->counts[BinOf(st, x)]++;
	st->n++;
	if (st->keep_values)
		KeepValue(aggcxt, st, x);
}

/* Shared transition: (state, value, bins, fractions). */
static Datum
DataDriftAccum(FunctionCallInfo fcinfo, bool keep_values)
{
	MemoryContext aggcxt;
	DataDriftState *st;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "data drift transition called in non-aggregate context");
	if (PG_ARGISNULL(0))
	{
		if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("bins and fractions must not be null")));
		st = DataDriftStateCreate(aggcxt, PG_GETARG_ARRAYTYPE_P(2),
								  PG_GETARG_ARRAYTYPE_P(3), keep_values);
	}
	else
		st = (DataDriftState *) PG_GETARG_POINTER(0);
	if (!PG_ARGISNULL(1))
		DataDriftAdd(aggcxt, st, PG_GETARG_FLOAT8(1));
	PG_RETURN_POINTER(st);
}

/*
 * A state for the reference bins of a feature of a model's deployed
 * version (model_versions.feature_bins, src/ml/feature_bins.c), read with
 * the caller's privileges (row-level security shows only the models the
 * caller may use).
 */
static DataDriftState *
ModelFeatureState(MemoryContext aggcxt, text *model, text *feature, bool keep_values)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {PointerGetDatum(model), PointerGetDatum(feature)};
	char	   *m = text_to_cstring(model);
	char	   *f = text_to_cstring(feature);
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int32		version;
	DataDriftState *st;
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args(
		"SELECT m.deployed_version, v.feature_bins IS NOT NULL, "
		"pg_catalog.jsonb_exists(v.feature_bins->'features', $2), "
		"ARRAY(SELECT pg_catalog.jsonb_array_elements_text(v.feature_bins->'features'->$2->'bins')::pg_catalog.float8), "
		"ARRAY(SELECT pg_catalog.jsonb_array_elements_text(v.feature_bins->'features'->$2->'fractions')::pg_catalog.float8), "
		"(SELECT pg_catalog.string_agg(k, ', ') FROM pg_catalog.jsonb_object_keys(v.feature_bins->'features') k) "
		"FROM streamml.models m LEFT JOIN streamml.model_versions v "
		"ON v.model = m.name AND v.version = m.deployed_version "
		"WHERE m.name = $1 LIMIT 1",
		2, types, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the feature bins of model \"%s\" failed: %s", m,
			 SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ModelDoesNotExist(m, NULL);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	version = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no deployed version", m)));
	if (!DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("version %d of model \"%s\" has no feature bins", version, m),
				 errhint("Versions trained before feature bins were recorded have none: retrain the model.")));
	if (!DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("model \"%s\" has no feature \"%s\"", m, f),
				 errhint("Its features are %s.", SPI_getvalue(tup, desc, 6))));
	st = DataDriftStateCreate(aggcxt,
							  DatumGetArrayTypeP(SPI_getbinval(tup, desc, 4, &isnull)),
							  DatumGetArrayTypeP(SPI_getbinval(tup, desc, 5, &isnull)),
							  keep_values);
	SPI_finish();
	return st;
}

/* Shared transition: (state, model, feature, value). */
static Datum
ModelDriftAccum(FunctionCallInfo fcinfo, bool keep_values)
{
	MemoryContext aggcxt;
	DataDriftState *st;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "data drift transition called in non-aggregate context");
	if (PG_ARGISNULL(0))
	{
		if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("model and feature must not be null")));
		st = ModelFeatureState(aggcxt, PG_GETARG_TEXT_PP(1), PG_GETARG_TEXT_PP(2),
							   keep_values);
	}
	else
		st = (DataDriftState *) PG_GETARG_POINTER(0);
	if (!PG_ARGISNULL(3))
		DataDriftAdd(aggcxt, st, PG_GETARG_FLOAT8(3));
	PG_RETURN_POINTER(st);
}

/* psi / ks_statistic (model, feature, value): counts per stored bin. */
PG_FUNCTION_INFO_V1(model_drift_accum);
Datum
model_drift_accum(PG_FUNCTION_ARGS)
{
	return ModelDriftAccum(fcinfo, false);
}

/* wasserstein_distance(model, feature, value): and every value. */
PG_FUNCTION_INFO_V1(model_drift_values_accum);
Datum
model_drift_values_accum(PG_FUNCTION_ARGS)
{
	return ModelDriftAccum(fcinfo, true);
}

/* psi_accum / ks_statistic_accum: counts per bin. */
PG_FUNCTION_INFO_V1(data_drift_accum);
Datum
data_drift_accum(PG_FUNCTION_ARGS)
{
	return DataDriftAccum(fcinfo, false);
}

/* wasserstein_distance_accum: counts per bin and every value. */
PG_FUNCTION_INFO_V1(data_drift_values_accum);
Datum
data_drift_values_accum(PG_FUNCTION_ARGS)
{
	return DataDriftAccum(fcinfo, true);
}

/* data_drift_combine(a, b): adds b's counts (and values) to a. */
PG_FUNCTION_INFO_V1(data_drift_combine);
Datum
data_drift_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	DataDriftState *a,
			   *b;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "data_drift_combine called in non-aggregate context");
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(PG_ARGISNULL(0) ? NULL : PG_GETARG_POINTER(0));
	b = (DataDriftState *) PG_GETARG_POINTER(1);
	if (PG_ARGISNULL(0))
	{
		MemoryContext old = MemoryContextSwitchTo(aggcxt);

		a = palloc0(sizeof(DataDriftState));
		a->k = b->k;
		a->edges = palloc(sizeof(double) * (b->k + 1));
		memcpy(a->edges, b->edges, sizeof(double) * (b->k + 1));
		a->fractions = palloc(sizeof(double) * b->k);
		memcpy(a->fractions, b->fractions, sizeof(double) * b->k);
		a->counts = palloc0(sizeof(int64) * b->k);
		a->keep_values = b->keep_values;
		MemoryContextSwitchTo(old);
	}
	else
		a = (DataDriftState *) PG_GETARG_POINTER(0);

	if (a->k != b->k || memcmp(a->edges, b->edges, sizeof(double) * (a->k + 1)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bins must be the same for every row of a group")));
	/* (normalised alike: the same numbers give the same bytes) */
	if (memcmp(a->fractions, b->fractions, sizeof(double) * a->k) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fractions must be the same for every row of a group")));
	for (int i = 0; i < a->k; i++)
		a->counts[i] += b->counts[i];
	a->n += b->n;
	for (int64 i = 0; i < b->nvalues; i++)
		KeepValue(aggcxt, a, b->values[i]);
	PG_RETURN_POINTER(a);
}

/* data_drift_serialize(state) */
PG_FUNCTION_INFO_V1(data_drift_serialize);
Datum
data_drift_serialize(PG_FUNCTION_ARGS)
{
	DataDriftState *st = (DataDriftState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint32(&buf, st->k);
	pq_sendbyte(&buf, st->keep_values);
	pq_sendint64(&buf, st->n);
	for (int i = 0; i <= st->k; i++)
		pq_sendfloat8(&buf, st->edges[i]);
	for (int i = 0; i < st->k; i++)
	{
		pq_sendfloat8(&buf, st->fractions[i]);
		pq_sendint64(&buf, st->counts[i]);
	}
	pq_sendint64(&buf, st->nvalues);
	for (int64 i = 0; i < st->nvalues; i++)
		pq_sendfloat8(&buf, st->values[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/*
 * data_drift_deserialize(bytes, internal).  Only a parallel worker's state
 * reaches it (an internal-state aggregate is a superuser's to define, and
 * the function is strict in its internal argument), but it checks the
 * state as the bytea-state aggregates do (ml/passes.h): the number of bins
 * and of values against the length before it allocates by them, ascending
 * edges, counts that add up, finite values.
 */
PG_FUNCTION_INFO_V1(data_drift_deserialize);
Datum
data_drift_deserialize(PG_FUNCTION_ARGS)
{
	const char *agg = "data drift";
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	StringInfoData buf;
	DataDriftState *st = palloc0(sizeof(DataDriftState));
	int64		total = 0;
	int			keep;
	uint64		bins;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "data_drift_deserialize called in non-aggregate context");
	PassReadBuffer(&buf, b);
	PassStateCheckHeader(agg, &buf, 4 + 1 + 8);
	st->k = (int) pq_getmsgint(&buf, 4);
	keep = pq_getmsgbyte(&buf);
	st->n = pq_getmsgint64(&buf);
	PASS_STATE_CHECK(st->k >= 1 && st->k <= DATA_DRIFT_MAX_BINS, agg,
					 "It has %d bins.", st->k);
	PASS_STATE_CHECK(keep == 0 || keep == 1, agg,
					 "Its keep-values flag is %d.", keep);
	st->keep_values = (keep == 1);
	bins = sizeof(double) * ((uint64) st->k + 1) +
		(sizeof(double) + sizeof(int64)) * (uint64) st->k;
	PASS_STATE_CHECK((uint64) (buf.len - buf.cursor) >= bins + sizeof(int64), agg,
					 "The state has %d bytes, fewer than its %d bins take.",
					 buf.len, st->k);
	st->edges = palloc(sizeof(double) * (st->k + 1));
	st->fractions = palloc(sizeof(double) * st->k);
	st->counts = palloc(sizeof(int64) * st->k);
	for (int i = 0; i <= st->k; i++)
	{
		st->edges[i] = pq_getmsgfloat8(&buf);
		/* as CheckReference has them */
		PASS_STATE_CHECK(i == 0 || !(st->edges[i] < st->edges[i - 1]), agg,
						 "Its edge %d is %g.", i + 1, st->edges[i]);
	}
	for (int i = 0; i < st->k; i++)
	{
		st->fractions[i] = pq_getmsgfloat8(&buf);
		st->counts[i] = pq_getmsgint64(&buf);
		PASS_STATE_CHECK(st->counts[i] >= 0 && st->counts[i] <= st->n, agg,
						 "Its bin %d counts " INT64_FORMAT " values.",
						 i + 1, st->counts[i]);
		total += st->counts[i];
	}
	PASS_STATE_CHECK(st->n >= 0 && total == st->n, agg,
					 "Its bins count " INT64_FORMAT " values of " INT64_FORMAT ".",
					 total, st->n);
	st->nvalues = st->maxvalues = pq_getmsgint64(&buf);
	PASS_STATE_CHECK(st->nvalues >= 0 &&
					 st->nvalues <= (buf.len - buf.cursor) / (int64) sizeof(double) &&
					 (st->keep_values || st->nvalues == 0), agg,
					 "It keeps " INT64_FORMAT " values.", st->nvalues);
	PassStateCheckLength(agg, &buf, sizeof(double) * (uint64) st->nvalues);
	if (st->nvalues > 0)
	{
		st->values = palloc_extended(sizeof(double) * st->nvalues, MCXT_ALLOC_HUGE);
		for (int64 i = 0; i < st->nvalues; i++)
		{
			st->values[i] = pq_getmsgfloat8(&buf);
			PASS_STATE_CHECK(isfinite(st->values[i]), agg,
							 "It keeps the value %g.", st->values[i]);
		}
	}
	PG_RETURN_POINTER(st);
}

/* The PSI of a state's counts against its reference. */
double
DataDriftPsi(const int64 *counts, int64 n, const double *fractions, int k)
{
	double		psi = 0.0;

	for (int i = 0; i < k; i++)
	{
		double		c = (double) counts[i] / (double) n;
		double		r = fractions[i];

		if (c == 0.0)
			c = PSI_EMPTY_FRACTION;
		if (r == 0.0)
			r = PSI_EMPTY_FRACTION;
		psi += (c - r) * log(c / r);
	}
	return psi;
}

/* psi_final(state): NULL without values. */
PG_FUNCTION_INFO_V1(psi_final);
Datum
psi_final(PG_FUNCTION_ARGS)
{
	DataDriftState *st = PG_ARGISNULL(0) ? NULL : (DataDriftState *) PG_GETARG_POINTER(0);

	if (st == NULL || st->n == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(DataDriftPsi(st->counts, st->n, st->fractions, st->k));
}

/* ks_statistic_final(state): NULL without values. */
PG_FUNCTION_INFO_V1(ks_statistic_final);
Datum
ks_statistic_final(PG_FUNCTION_ARGS)
{
	DataDriftState *st = PG_ARGISNULL(0) ? NULL : (DataDriftState *) PG_GETARG_POINTER(0);
	int64		cum = 0;
	double		ref = 0.0,
				d = 0.0;

	if (st == NULL || st->n == 0)
		PG_RETURN_NULL();
	for (int i = 0; i < st->k - 1; i++)
	{
		cum += st->counts[i];
		ref += st->fractions[i];
		d = fmax(d, fabs((double) cum / (double) st->n - ref));
	}
	PG_RETURN_FLOAT8(d);
}

/* qsort comparator for doubles. */
static int
CompareDoubles(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * The reference's distribution function on (a, b), an interval without
 * edges inside: linear there, evaluated at x in [a, b].
 */
static double
RefCdfOn(const DataDriftState *st, const double *cum, double a, double b, double x)
{
	double		m = isinf(b - a) ? a / 2 + b / 2 : a + (b - a) / 2;
	double		lo,
				width;
	int			j;

	if (m < st->edges[0])
		return 0.0;
	if (m >= st->edges[st->k])
		return 1.0;
	/* the bin j with e_j <= m < e_{j+1}, so e_j < e_{j+1} */
	j = BinOf(st, m);
	lo = st->edges[j];
	width = st->edges[j + 1] - lo;
	/* a bin wider than DBL_MAX (edges of both signs): its halves */
	if (isinf(width))
		return cum[j] + st->fractions[j] * (x / 2 - lo / 2) /
			(st->edges[j + 1] / 2 - lo / 2);
	return cum[j] + st->fractions[j] * (x - lo) / width;
}

/* The integral over [a, b] of |c - f|, f linear from fa to fb. */
static double
AbsLinearArea(double a, double b, double c, double fa, double fb)
{
	double		da = c - fa,
				db = c - fb;
	double		width = b - a;
	double		scale = 1.0;

	/*
	 * An interval wider than DBL_MAX (ends of both signs) by its half: the
	 * area (at most the width) is then finite unless it truly overflows.
	 */
	if (isinf(width))
	{
		width = b / 2 - a / 2;
		scale = 2.0;
	}
	if ((da >= 0 && db >= 0) || (da <= 0 && db <= 0))
		return fabs(da + db) / 2 * width * scale;
	/* crossing at t in (0, 1) */
	{
		double		t = da / (da - db);

		return width * (t * fabs(da) + (1 - t) * fabs(db)) / 2 * scale;
	}
}

/* wasserstein_distance_final(state): NULL without values. */
PG_FUNCTION_INFO_V1(wasserstein_distance_final);
Datum
wasserstein_distance_final(PG_FUNCTION_ARGS)
{
	DataDriftState *st = PG_ARGISNULL(0) ? NULL : (DataDriftState *) PG_GETARG_POINTER(0);
	double	   *cum;
	double		w = 0.0,
				prev;
	int64		i = 0;
	int			e = 0;
	double		n;

	if (st == NULL || st->n == 0)
		PG_RETURN_NULL();
	n = (double) st->nvalues;
	qsort(st->values, st->nvalues, sizeof(double), CompareDoubles);
	cum = palloc(sizeof(double) * (st->k + 1));
	cum[0] = 0.0;
	for (int j = 0; j < st->k; j++)
		cum[j + 1] = cum[j] + st->fractions[j];

	/*
	 * Walk the merged breakpoints (edges and values) from the lowest; on
	 * each open interval between two, F_cur is the constant i / n (values
	 * at or below its start) and F_ref is linear.
	 */
	prev = fmin(st->values[0], st->edges[0]);
	while (i < st->nvalues && st->values[i] <= prev)
		i++;
	while (e <= st->k && st->edges[e] <= prev)
		e++;
	while (i < st->nvalues || e <= st->k)
	{
		double		next;

		if (e > st->k || (i < st->nvalues && st->values[i] < st->edges[e]))
			next = st->values[i];
		else
			next = st->edges[e];
		if (next > prev)
		{
			double		c = (double) i / n;

			w += AbsLinearArea(prev, next, c,
							   RefCdfOn(st, cum, prev, next, prev),
							   RefCdfOn(st, cum, prev, next, next));
		}
		prev = next;
		while (i < st->nvalues && st->values[i] <= prev)
			i++;
		while (e <= st->k && st->edges[e] <= prev)
			e++;
	}
	/* a distance beyond DBL_MAX, as float8 arithmetic reports one */
	if (isinf(w))
		float_overflow_error();
	PG_RETURN_FLOAT8(w);
}
