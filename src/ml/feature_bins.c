/*
 * feature_bins.c
 *		The reference distribution of each feature, stored with a model
 *		version at training time (streamml.model_versions.feature_bins), for
 *		the data-drift aggregates (src/monitor/data_drift.c).
 *
 * One pass over the training rows of the run, under the run's snapshot,
 * with the aggregate streamml.feature_bins(features, names): it keeps a
 * uniform random sample of at most FEATURE_BINS_SAMPLE rows (reservoir
 * sampling, Vitter's algorithm R, from a fixed seed so that the same rows
 * in the same order give the same bins; fewer rows for a model so wide
 * that the sample would hold more than FEATURE_BINS_MAX_VALUES values),
 * then for each feature sorts the sample's values and takes the deciles
 * (FEATURE_BINS bins: 11 edges from the minimum to the maximum, linear
 * interpolation between order statistics, numpy's default) and each bin's
 * share of the sample (ties can make shares differ from 0.1).  With fewer
 * rows than the sample size the bins are exact.  Rows with a NULL or
 * non-finite feature are skipped, as training skips them; a row of another
 * width than names (distinct, one per feature) is an error.
 *
 * Parallel workers each keep a reservoir; combining two draws a uniform
 * sample of their union: each pick comes from a side with probability
 * proportional to that side's rows not yet picked, and is a random
 * not-yet-picked row of that side's reservoir.  The result, keyed by
 * feature name:
 *
 *	{"rows": n, "sample": k,
 *	 "features": {"x1": {"bins": [11 edges], "fractions": [10 shares]}, ...}}
 *
 * Grouped models get the bins of all their training rows, on every group's
 * row of the version.
 *
 * Tree models (tree.c) skip that pass: they hold their training rows in
 * single precision, and feed each row of the matrix XGBoost trains on to a
 * reservoir of the same kind (FeatureBinsBegin, FeatureBinsAddFloats,
 * FeatureBinsText) as they hand it over.  Their bins are thus of the rows
 * the model trained on (not rows skipped for their target or weight), in
 * the order of the training scan (by group with group_by), and each
 * sampled value is the shortest decimal that reads back as its single
 * precision value (0.1, not 0.100000001490116), so that data of a few
 * significant digits falls in the bins it fell in at training time.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "common/shortest_dec.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "mb/pg_wchar.h"
#include "ml/ml.h"
#include "ml/passes.h"
#include "ml/train.h"
#include "pg_streamml.h"

/*
 * Bins per feature (deciles), the most rows sampled, and the most values
 * the sample holds (32 MB: wide models sample fewer rows).
 */
#define FEATURE_BINS 10
#define FEATURE_BINS_SAMPLE 10000
#define FEATURE_BINS_MAX_VALUES (4 * 1024 * 1024)
#define FEATURE_BINS_SEED 20240601

typedef struct FeatureBinsState
{
	int			p;				/* features, from the first row */
	int64		rows;			/* rows seen (complete ones) */
	int			size;			/* the most rows sampled */
	int			k;				/* rows in the sample */
	int			capacity;		/* rows the sample array has room for */
	double	   *sample;			/* capacity x p, row-major, grown by doubling */
	ArrayType  *names;			/* a copy of the names */
	bool		floats;			/* sampled from single-precision rows */
	pg_prng_state prng;
} FeatureBinsState;

/* Makes room for capacity rows in the sample (in its own context). */
static void
FeatureBinsGrow(FeatureBinsState *st, int capacity)
{
	st->sample = repalloc_huge(st->sample, sizeof(double) * capacity * Max(st->p, 1));
	st->capacity = capacity;
}

/* The most rows sampled for p features. */
static inline int
FeatureBinsSize(int p)
{
	return Max(1, Min(FEATURE_BINS_SAMPLE, FEATURE_BINS_MAX_VALUES / Max(p, 1)));
}

/* A new, empty state for p features in the aggregate context. */
static FeatureBinsState *
FeatureBinsCreate(MemoryContext aggcxt, int p, ArrayType *names)
{
	MemoryContext old = MemoryContextSwitchTo(aggcxt);
	FeatureBinsState *st = palloc0(sizeof(FeatureBinsState));

	st->p = p;
	st->size = FeatureBinsSize(p);
	st->capacity = Min(st->size, 64);
	st->sample = MemoryContextAllocHuge(aggcxt, sizeof(double) * st->capacity * Max(p, 1));
	st->names = names ? DatumGetArrayTypePCopy(PointerGetDatum(names)) : NULL;
	pg_prng_seed(&st->prng, FEATURE_BINS_SEED);
	MemoryContextSwitchTo(old);
	return st;
}

/*
 * Counts one more complete row and returns the sample slot it goes to, or
 * -1 when the reservoir keeps its rows (algorithm R: row i, 0-based,
 * replaces a random slot with probability k / (i + 1)).
 */
static inline int64
FeatureBinsSlot(FeatureBinsState *st)
{
	int64		slot;

	if (st->rows < st->size)
	{
		if (st->k == st->capacity)
			FeatureBinsGrow(st, Min(st->size, st->capacity * 2));
		slot = st->k++;
	}
	else
	{
		slot = (int64) pg_prng_uint64_range(&st->prng, 0, st->rows);
		if (slot >= st->size)
			slot = -1;
	}
	st->rows++;
	return slot;
}

/* qsort comparator for C strings, by pointer. */
static int
CompareNames(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * The number of features that names (text[]) names, which every row must
 * have: errors unless it is a one-dimensional array of distinct, non-NULL
 * names, so that no feature's bins are dropped or named twice.
 */
static int
FeatureBinsWidth(ArrayType *names)
{
	Datum	   *d;
	bool	   *nulls;
	int			n;
	char	  **sorted;

	if (ARR_NDIM(names) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature_bins names must be a one-dimensional array of at least one name")));
	deconstruct_array(names, TEXTOID, -1, false, TYPALIGN_INT, &d, &nulls, &n);
	sorted = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("feature_bins name %d is NULL", i + 1)));
		sorted[i] = TextDatumGetCString(d[i]);
	}
	qsort(sorted, n, sizeof(char *), CompareNames);
	for (int i = 1; i < n; i++)
		if (strcmp(sorted[i - 1], sorted[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("feature_bins names \"%s\" twice", sorted[i]),
					 errdetail("The bins are keyed by feature name: one of the two would be lost.")));
	pfree(sorted);
	return n;
}

/*
 * feature_bins_accum(state, features float8[], names text[]): adds one
 * training row to the reservoir.  Every row has as many features as names
 * names (without names, as the first row): a row of another width is an
 * error, not a row left out.  A row with a NULL or non-finite feature is
 * left out, as training leaves it out.
 */
PG_FUNCTION_INFO_V1(feature_bins_accum);
Datum
feature_bins_accum(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	FeatureBinsState *st;
	ArrayType  *x;
	double	   *xs;
	int			n;
	int64		slot;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "feature_bins_accum called in non-aggregate context");
	st = PG_ARGISNULL(0) ? NULL : (FeatureBinsState *) PG_GETARG_POINTER(0);
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st);
	x = PG_GETARG_ARRAYTYPE_P(1);
	n = ARR_NDIM(x) == 1 ? ARR_DIMS(x)[0] : 0;
	if (st == NULL)
	{
		ArrayType  *names = PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2);
		int			p = names ? FeatureBinsWidth(names) : n;

		if (p == 0)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("feature_bins needs at least one feature")));
		/* a sample of one row must fit its bound, and a flat state's */
		if (p > FEATURE_BINS_MAX_VALUES)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("feature_bins takes at most %d features, not %d",
							FEATURE_BINS_MAX_VALUES, p)));
		st = FeatureBinsCreate(aggcxt, p, names);
	}
	if (ARR_NDIM(x) > 1 || n != st->p)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("feature_bins row has %d features, not %d", ARR_NDIM(x) > 1 ?
						ArrayGetNItems(ARR_NDIM(x), ARR_DIMS(x)) : n, st->p),
				 st->names ?
				 errdetail("Its names name %d features.", st->p) :
				 errdetail("The first row had %d.", st->p)));
	if (ARR_HASNULL(x))
		PG_RETURN_POINTER(st);
	xs = (double *) ARR_DATA_PTR(x);
	for (int j = 0; j < n; j++)
		if (!isfinite(xs[j]))
			PG_RETURN_POINTER(st);
	slot = FeatureBinsSlot(st);
	if (slot >= 0)
		memcpy(st->sample + slot * st->p, xs, sizeof(double) * st->p);
	PG_RETURN_POINTER(st);
}

/*
 * feature_bins_combine(a, b): a uniform sample of the rows of both, drawn
 * from their two reservoirs (each a uniform sample of its side).
 */
PG_FUNCTION_INFO_V1(feature_bins_combine);
Datum
feature_bins_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	FeatureBinsState *a = PG_ARGISNULL(0) ? NULL : (FeatureBinsState *) PG_GETARG_POINTER(0);
	FeatureBinsState *b = PG_ARGISNULL(1) ? NULL : (FeatureBinsState *) PG_GETARG_POINTER(1);
	FeatureBinsState *c;
	FeatureBinsState *side[2];
	int64		left[2];
	int			avail[2];
	int		   *slots[2];
	int			k;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "feature_bins_combine called in non-aggregate context");
	if (b == NULL || b->rows == 0)
		PG_RETURN_POINTER(a);
	if (a == NULL || a->rows == 0)
	{
		c = FeatureBinsCreate(aggcxt, b->p, b->names);
		FeatureBinsGrow(c, Max(b->k, 1));
		c->rows = b->rows;
		c->k = b->k;
		memcpy(c->sample, b->sample, sizeof(double) * b->k * b->p);
		PG_RETURN_POINTER(c);
	}
	/* without names, parallel workers' first rows may differ */
	if (a->p != b->p)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("feature_bins rows have %d and %d features", a->p, b->p),
				 errhint("Give the features' names: every row must have as many.")));

	c = FeatureBinsCreate(aggcxt, a->p, a->names ? a->names : b->names);
	FeatureBinsGrow(c, c->size);
	side[0] = a;
	side[1] = b;
	for (int s = 0; s < 2; s++)
	{
		left[s] = side[s]->rows;
		avail[s] = side[s]->k;
		slots[s] = palloc(sizeof(int) * side[s]->k);
		for (int i = 0; i < side[s]->k; i++)
			slots[s][i] = i;
	}
	k = (int) Min((int64) c->size, a->rows + b->rows);
	for (int t = 0; t < k; t++)
	{
		int			s = pg_prng_uint64_range(&c->prng, 0, left[0] + left[1] - 1) < (uint64) left[0] ? 0 : 1;
		int			j = (int) pg_prng_uint64_range(&c->prng, 0, avail[s] - 1);

		memcpy(c->sample + (int64) t * c->p,
			   side[s]->sample + (int64) slots[s][j] * c->p, sizeof(double) * c->p);
		slots[s][j] = slots[s][--avail[s]];
		left[s]--;
	}
	c->k = k;
	c->rows = a->rows + b->rows;
	PG_RETURN_POINTER(c);
}

/* feature_bins_serialize(state) */
PG_FUNCTION_INFO_V1(feature_bins_serialize);
Datum
feature_bins_serialize(PG_FUNCTION_ARGS)
{
	FeatureBinsState *st = (FeatureBinsState *) PG_GETARG_POINTER(0);
	StringInfoData buf;
	int64		n = (int64) st->k * st->p;

	pq_begintypsend(&buf);
	pq_sendint32(&buf, st->p);
	pq_sendint64(&buf, st->rows);
	pq_sendint32(&buf, st->k);
	for (int64 i = 0; i < n; i++)
		pq_sendfloat8(&buf, st->sample[i]);
	/*
	 * the names, as a count and strings (array_send needs an flinfo), in
	 * the server encoding: pq_sendstring would convert them to the
	 * client's
	 */
	if (st->names)
	{
		Datum	   *names;
		bool	   *nulls;
		int			nnames;

		deconstruct_array(st->names, TEXTOID, -1, false, TYPALIGN_INT,
						  &names, &nulls, &nnames);
		pq_sendint32(&buf, nnames);
		for (int i = 0; i < nnames; i++)
		{
			char	   *name = nulls[i] ? "" : TextDatumGetCString(names[i]);

			pq_sendbytes(&buf, name, strlen(name) + 1);
		}
	}
	else
		pq_sendint32(&buf, -1);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/*
 * feature_bins_deserialize(bytes, internal), which checks every field
 * (passes.h) before it allocates or reads by them: p between 1 and the
 * bound on the values sampled, as the transition takes; a sample of
 * min(rows, size) rows, as algorithm R and the combine function keep
 * (which rely on it: a side whose sample ran out before its rows would be
 * read past its end); finite values, as the transition keeps; the names
 * as strings of the server encoding; and nothing after them.
 */
PG_FUNCTION_INFO_V1(feature_bins_deserialize);
Datum
feature_bins_deserialize(PG_FUNCTION_ARGS)
{
	const char *agg = "streamml.feature_bins";
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	StringInfoData buf;
	FeatureBinsState *st;
	int			p;
	int64		rows;
	int			k;
	int			len;

	PassAggContext(fcinfo, "feature_bins_deserialize");
	PassReadBuffer(&buf, b);
	PassStateCheckHeader(agg, &buf, 4 + 8 + 4);
	p = (int) pq_getmsgint(&buf, 4);
	rows = pq_getmsgint64(&buf);
	k = (int) pq_getmsgint(&buf, 4);
	PASS_STATE_CHECK(p >= 1 && p <= FEATURE_BINS_MAX_VALUES, agg,
					 "It has %d features.", p);
	PASS_STATE_CHECK(rows >= 0 && k == Min(rows, (int64) FeatureBinsSize(p)), agg,
					 "It samples %d rows of " INT64_FORMAT ".", k, rows);
	PASS_STATE_CHECK((uint64) (buf.len - buf.cursor) >=
					 (uint64) k * p * sizeof(double) + 4, agg,
					 "The state has %d bytes, fewer than its sample of %d rows of %d values.",
					 buf.len, k, p);
	st = FeatureBinsCreate(CurrentMemoryContext, p, NULL);
	st->rows = rows;
	if (k > st->capacity)
		FeatureBinsGrow(st, k);
	st->k = k;
	for (int64 i = 0; i < (int64) k * p; i++)
	{
		st->sample[i] = pq_getmsgfloat8(&buf);
		PASS_STATE_CHECK(isfinite(st->sample[i]), agg,
						 "Its sample holds %g.", st->sample[i]);
	}
	len = (int) pq_getmsgint(&buf, 4);
	PASS_STATE_CHECK(len >= -1 && len <= buf.len - buf.cursor, agg,
					 "It has %d names in %d bytes.", len, buf.len - buf.cursor);
	/* the transition takes its width from its names */
	PASS_STATE_CHECK(len == -1 || len == p, agg,
					 "It has %d names for %d features.", len, p);
	if (len >= 0)
	{
		Datum	   *names = palloc(sizeof(Datum) * Max(len, 1));

		for (int i = 0; i < len; i++)
		{
			const char *name = buf.data + buf.cursor;
			const char *end = memchr(name, '\0', buf.len - buf.cursor);

			PASS_STATE_CHECK(end != NULL, agg, "Its name %d is not terminated.", i + 1);
			pg_verifymbstr(name, end - name, false);
			names[i] = CStringGetTextDatum(name);
			buf.cursor += end - name + 1;
		}
		st->names = construct_array(names, len, TEXTOID, -1, false, TYPALIGN_INT);
	}
	PASS_STATE_CHECK(buf.cursor == buf.len, agg,
					 "It has %d bytes after its names.", buf.len - buf.cursor);
	PG_RETURN_POINTER(st);
}

/* qsort comparator for doubles. */
static int
CompareDoubles(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Appends a JSON number. */
static void
AppendNumber(StringInfo buf, double v)
{
	char	   *s = Float8TextExact(v);

	appendStringInfoString(buf, s);
	pfree(s);
}

/* The JSON text of the bins of a non-empty sample (the file's comment). */
static char *
FeatureBinsJson(FeatureBinsState *st)
{
	Datum	   *names;
	bool	   *nulls;
	int			nnames;
	double	   *col;
	StringInfoData buf;

	nnames = 0;
	if (st->names)
		deconstruct_array(st->names, TEXTOID, -1, false, TYPALIGN_INT,
						  &names, &nulls, &nnames);
	col = palloc(sizeof(double) * st->k);
	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"rows\": " INT64_FORMAT ", \"sample\": %d, \"features\": {",
					 st->rows, st->k);
	for (int j = 0; j < st->p; j++)
	{
		double		edges[FEATURE_BINS + 1];
		int64		counts[FEATURE_BINS] = {0};
		int			b = 0;

		for (int i = 0; i < st->k; i++)
			col[i] = st->sample[i * st->p + j];
		qsort(col, st->k, sizeof(double), CompareDoubles);
		for (int q = 0; q <= FEATURE_BINS; q++)
		{
			/* numpy.quantile, method 'linear' */
			double		h = (st->k - 1) * (double) q / FEATURE_BINS;
			int			lo = (int) floor(h);
			int			hi = Min(lo + 1, st->k - 1);
			double		t = h - lo;
			double		span = col[hi] - col[lo];

			/*
			 * Values of both signs near DBL_MAX: their difference is
			 * infinite and 0 times it NaN, which no JSON number holds.
			 */
			edges[q] = isinf(span) ? col[lo] * (1 - t) + col[hi] * t :
				col[lo] + t * span;
		}
		/* shares: bin i is [e_i, e_i+1), the last closed (data_drift.c) */
		for (int i = 0; i < st->k; i++)
		{
			while (b < FEATURE_BINS - 1 && col[i] >= edges[b + 1])
				b++;
			counts[b]++;
		}
		if (j > 0)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, j < nnames && !nulls[j] ? TextDatumGetCString(names[j]) :
					psprintf("x%d", j + 1));
		appendStringInfoString(&buf, ": {\"bins\": [");
		for (int q = 0; q <= FEATURE_BINS; q++)
		{
			if (q > 0)
				appendStringInfoString(&buf, ", ");
			AppendNumber(&buf, edges[q]);
		}
		appendStringInfoString(&buf, "], \"fractions\": [");
		for (int q = 0; q < FEATURE_BINS; q++)
		{
			if (q > 0)
				appendStringInfoString(&buf, ", ");
			AppendNumber(&buf, (double) counts[q] / st->k);
		}
		appendStringInfoString(&buf, "]}");
	}
	appendStringInfoString(&buf, "}}");
	return buf.data;
}

/* feature_bins_final(state): the jsonb above; NULL without rows. */
PG_FUNCTION_INFO_V1(feature_bins_final);
Datum
feature_bins_final(PG_FUNCTION_ARGS)
{
	FeatureBinsState *st = PG_ARGISNULL(0) ? NULL : (FeatureBinsState *) PG_GETARG_POINTER(0);

	if (st == NULL || st->k == 0)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in,
										CStringGetDatum(FeatureBinsJson(st))));
}

/*
 * A reservoir for a learner that holds its training rows (tree.c): p
 * features named by names (text[]), in the current memory context.
 */
FeatureBinsState *
FeatureBinsBegin(int p, Datum names)
{
	FeatureBinsState *st = FeatureBinsCreate(CurrentMemoryContext, p,
											 DatumGetArrayTypeP(names));

	st->floats = true;
	return st;
}

/*
 * Adds n rows of single-precision features (n × p, row-major, NaN for
 * missing); rows with a missing value are left out, as the pass leaves out
 * rows with a NULL feature.
 */
void
FeatureBinsAddFloats(FeatureBinsState *st, const float *x, int64 n)
{
	int			p = st->p;

	for (int64 i = 0; i < n; i++)
	{
		const float *xi = x + i * p;
		bool		complete = true;
		int64		slot;

		for (int j = 0; j < p; j++)
			if (isnan(xi[j]))
			{
				complete = false;
				break;
			}
		if (!complete)
			continue;
		slot = FeatureBinsSlot(st);
		if (slot >= 0)
			for (int j = 0; j < p; j++)
				st->sample[slot * p + j] = xi[j];
	}
}

/*
 * The bins of the rows added, as JSON text, or NULL without a complete
 * row.  Each sampled single-precision value is first read back from its
 * shortest decimal form (the file's comment).
 */
char *
FeatureBinsText(FeatureBinsState *st)
{
	if (st == NULL || st->k == 0)
		return NULL;
	if (st->floats)
	{
		char		digits[32];

		for (int64 i = 0; i < (int64) st->k * st->p; i++)
		{
			float_to_shortest_decimal_buf((float) st->sample[i], digits);
			st->sample[i] = strtod(digits, NULL);
		}
		st->floats = false;
	}
	return FeatureBinsJson(st);
}

/*
 * Computes the feature bins of a run's training rows and stores them on
 * the rows of version "version" (called from the driver's record step).
 */
void
RecordFeatureBins(TrainRun *run, int version)
{
	StringInfoData sql;
	Oid			types[1] = {TEXTARRAYOID};
	Datum		values[1];
	char	   *bins;

	if (run->bins != NULL)
		bins = FeatureBinsText(run->bins);	/* the learner's own rows */
	else
	{
		values[0] = FeatureNamesArray(run);
		initStringInfo(&sql);
		/*
		 * the rows training reads: a feature array of another length is
		 * NULL here (skipped, as training skips it), not an error
		 */
		appendStringInfo(&sql, "SELECT streamml.feature_bins(%s, $1)::text FROM %s WHERE %s",
						 ScoreFeaturesExpr(run), run->from, run->train_where);
		RunQuery(run, sql.data, 1, types, values, NULL);
		run->passes++;
		bins = ResultText(0, 1);
	}
	if (bins == NULL)
		return;
	{
		Oid			t[3] = {JSONBOID, TEXTOID, INT4OID};
		Datum		v[3];

		v[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(bins));
		v[1] = CStringGetTextDatum(run->model);
		v[2] = Int32GetDatum(version);
		CatalogExecute("UPDATE streamml.model_versions SET feature_bins = $1 "
					   "WHERE model = $2 AND version = $3",
					   3, t, v, NULL, SPI_OK_UPDATE);
	}
}
