/*
 * irls_state.c
 *		One Newton (IRLS) pass of logistic regression as a parallel aggregate.
 *
 * streamml.irls_pass(label, features, weight, params, group_keys, group_key)
 * evaluates, at the coefficients given in params, the weighted negative
 * log-likelihood, its gradient and its Hessian (packed upper triangle) on
 * the standardised scale z = (x - mean) * inv_scale, plus the counts and the
 * confusion matrix at probability 0.5.  States are plain sums, so partial
 * aggregates from parallel workers (or Citus shards) just add up; only the
 * sums travel between processes, never the parameters.
 *
 * params is [K, means(p), inv_scales(p), coefficients], K = 2 for a binary
 * model (coefficients: intercept then p slopes) or the number of classes of
 * a multinomial (softmax) one (K blocks of intercept and p slopes); with
 * group_by it is a two-dimensional array, one such row per group, and the
 * row used is the one whose position in group_keys matches group_key.  It is
 * decoded once per state, not per row.  The parameters fix the number of
 * features: rows whose feature array has another length are skipped and
 * counted, like rows with a NULL or non-finite value.
 *
 * The loss is computed as softplus(eta) - y * eta with softplus written so
 * that it never overflows, so perfectly separated rows cost log(1+e^-|eta|)
 * instead of log(0).
 *
 * Binary rows are buffered in blocks of PASS_BLOCK (standardised features,
 * residual and Hessian weight), and each block is added to the gradient and
 * the Hessian as one rank-PASS_BLOCK update (PassBlockSyrk): this is where
 * a pass spends its time.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "ml/ml.h"
#include "ml/passes.h"

typedef struct IrlsState
{
	int			p;				/* features, -1 before the parameters are read */
	int			classes;		/* K */
	int			blocks;			/* 1 for binary, K for multinomial */
	int			k;				/* parameters: blocks * (p + 1) */
	bool		gradonly;		/* no Hessian (L-BFGS passes) */
	int64		count;
	int64		skipped;
	double		w;
	double		loss;
	double		correct;
	double		confusion[4];	/* tp, fp, tn, fn */
	double	   *grad;			/* k */
	double	   *hess;			/* packed, order k */
	/* the parameters, decoded from the params argument (not serialised) */
	double	   *mean;
	double	   *invs;
	double	   *coef;
	double	   *z;				/* scratch: 1, z1, ..., zp */
	double	   *prob;			/* scratch: K class probabilities */
	/* binary rows not yet added to grad and hess (IrlsFlush) */
	int			nblock;
	double	   *block;			/* (p + 1) × PASS_BLOCK, feature-major */
	double	   *bh;				/* PASS_BLOCK Hessian weights */
	double	   *br;				/* PASS_BLOCK residuals */
} IrlsState;

/*
 * Allocates the accumulators (gradient and Hessian) of a state for p
 * features and K classes, after checking that they fit: K (p + 1)
 * coefficients, a Hessian of that order at most PASS_MAX_ORDER, a block
 * of rows one allocation.
 */
static void
IrlsAlloc(IrlsState *state, int p, int classes, bool gradonly)
{
	int			blocks = (classes == 2) ? 1 : classes;
	int64		k = (int64) blocks * ((int64) p + 1);

	if (!gradonly)
		PassCheckOrder((int) Min(k, (int64) PG_INT32_MAX));
	if (p < 0 || classes < 2 || k >= PASS_MAX_COLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("irls_pass cannot accumulate %d features and %d classes",
						p, classes)));
	state->p = p;
	state->classes = classes;
	state->blocks = blocks;
	state->k = (int) k;
	state->gradonly = gradonly;
	state->grad = palloc0(sizeof(double) * state->k);
	state->hess = gradonly ? NULL :
		palloc0(sizeof(double) * PACKED_SIZE((Size) state->k));
}

/*
 * Decodes the parameters for this state's group from the params argument,
 * allocating the state's accumulators for them, or, for a state made from
 * a flat one (IrlsPassComplete), checking that they are of its size.
 */
static void
IrlsLoadParams(IrlsState *state, FunctionCallInfo fcinfo)
{
	ArrayType  *params;
	int			len;
	int			row = 0;
	int			classes;
	int			blocks;
	int			p;
	double	   *d;
	bool		gradonly;

	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("irls_pass parameters must not be null")));
	params = PG_GETARG_ARRAYTYPE_P(4);
	if (ARR_ELEMTYPE(params) != FLOAT8OID || ARR_NDIM(params) < 1 ||
		ARR_NDIM(params) > 2 || ARR_HASNULL(params))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("irls_pass parameters must be a float8 array without nulls")));
	len = ARR_DIMS(params)[ARR_NDIM(params) - 1];
	d = (double *) ARR_DATA_PTR(params);

	if (ARR_NDIM(params) == 2)
	{
		ArrayType  *keys;
		Datum	   *kd;
		bool	   *kn;
		int			nkeys;
		text	   *key;

		if (PG_ARGISNULL(5) || PG_ARGISNULL(6))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("irls_pass needs group keys with per-group parameters")));
		keys = PG_GETARG_ARRAYTYPE_P(5);
		key = PG_GETARG_TEXT_PP(6);
		deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &kd, &kn,
						  &nkeys);
		row = -1;
		for (int i = 0; i < nkeys; i++)
		{
			text	   *t = DatumGetTextPP(kd[i]);

			if (!kn[i] &&
				VARSIZE_ANY_EXHDR(t) == VARSIZE_ANY_EXHDR(key) &&
				memcmp(VARDATA_ANY(t), VARDATA_ANY(key),
					   VARSIZE_ANY_EXHDR(key)) == 0)
			{
				row = i;
				break;
			}
		}
		if (row < 0 || row >= ARR_DIMS(params)[0])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("irls_pass has no parameters for group \"%s\"",
							text_to_cstring(key))));
	}
	if (len < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("irls_pass parameters have an invalid length %d", len)));
	d += (int64) row * len;
	/* K = -2: a binary pass without the Hessian */
	gradonly = (d[0] == -2.0);
	if (!gradonly && !(d[0] >= 2.0 && d[0] <= PASS_MAX_ORDER && d[0] == rint(d[0])))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("irls_pass needs at least 2 classes")));
	classes = gradonly ? 2 : (int) d[0];
	blocks = (classes == 2) ? 1 : classes;
	p = (len - 1 - blocks) / (2 + blocks);
	if (p < 0 || 1 + 2 * (int64) p + blocks * ((int64) p + 1) != len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("irls_pass parameters have an invalid length %d", len)));

	if (state->grad == NULL)
		IrlsAlloc(state, p, classes, gradonly);
	else if (state->p != p || state->classes != classes ||
			 state->gradonly != gradonly)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("irls_pass state does not match its parameters"),
				 errdetail("The state is of %d features and %d classes%s, the parameters of %d features and %d classes%s.",
						   state->p, state->classes,
						   state->gradonly ? " without the Hessian" : "",
						   p, classes, gradonly ? " without the Hessian" : "")));
	state->mean = palloc(sizeof(double) * (len - 1));
	memcpy(state->mean, d + 1, sizeof(double) * (len - 1));
	state->invs = state->mean + p;
	state->coef = state->invs + p;
	state->z = palloc(sizeof(double) * (p + 1));
	state->prob = palloc(sizeof(double) * classes);
	state->nblock = 0;
	state->block = palloc0(sizeof(double) * (p + 1) * PASS_BLOCK);
	state->bh = palloc0(sizeof(double) * PASS_BLOCK);
	state->br = palloc0(sizeof(double) * PASS_BLOCK);
}

/*
 * Completes a state made from a flat one, which carries only the sums, for
 * a transition (pass_state.c): the parameters, from the row's arguments.
 */
void
IrlsPassComplete(FunctionCallInfo fcinfo, void *state)
{
	IrlsLoadParams((IrlsState *) state, fcinfo);
}

/*
 * Adds the buffered block of binary rows to the gradient and the Hessian:
 * Σ r_i z_i and Σ h_i z_i z_iᵀ, one rank-PASS_BLOCK update.
 */
static void
IrlsFlush(IrlsState *state)
{
	int			n1 = state->p + 1;

	if (state->nblock == 0)
		return;
	/* rows not in use weigh nothing (their z are stale but finite) */
	for (int r = state->nblock; r < PASS_BLOCK; r++)
	{
		state->bh[r] = 0.0;
		state->br[r] = 0.0;
	}
	state->nblock = 0;
	for (int i = 0; i < n1; i++)
		state->grad[i] += PassBlockDot(state->br, state->block + i * PASS_BLOCK);
	if (!state->gradonly)
		PassBlockSyrk(state->hess, state->block, state->bh, n1);
}

/*
 * Adds one binary row, z = 1, z1..zp: the loss and the confusion counts
 * now, the gradient and Hessian terms into the block buffer.
 */
static void
IrlsAddBinary(IrlsState *state, double y, double w)
{
	int			n1 = state->p + 1;
	const double *z = state->z;
	double	   *zb = state->block + state->nblock;
	double		eta0 = 0.0;
	double		eta1 = 0.0;
	double		eta;
	double		e;
	double		q;
	double		pr;
	int			pos;
	int			label;
	int			i;

	/* two partial sums: independent chains of additions */
	for (i = 0; i + 1 < n1; i += 2)
	{
		eta0 += state->coef[i] * z[i];
		eta1 += state->coef[i + 1] * z[i + 1];
	}
	if (i < n1)
		eta0 += state->coef[i] * z[i];
	eta = eta0 + eta1;
	for (i = 0; i < n1; i++)
		zb[i * PASS_BLOCK] = z[i];
	/*
	 * One exp for both σ(η) and softplus(η) - yη, without overflow, and no
	 * branch on the sign of η (it is as good as random): with e = exp(-|η|),
	 * σ(η) = 1/(1+e) for η >= 0 and e/(1+e) otherwise, max(η, 0) is
	 * (η + |η|)/2.
	 */
	e = exp(-fabs(eta));
	q = 1.0 / (1.0 + e);
	pos = (eta >= 0.0);
	pr = q * (pos + (1 - pos) * e);
	state->loss += w * (0.5 * (eta + fabs(eta)) + log1p(e) - y * eta);
	state->br[state->nblock] = w * (pr - y);
	state->bh[state->nblock] = w * pr * (1.0 - pr);
	if (++state->nblock == PASS_BLOCK)
		IrlsFlush(state);

	/* tp, fp, tn, fn at 0.5 (σ(η) >= 0.5 exactly when η >= 0) */
	label = (y >= 0.5);
	state->confusion[2 * (1 - pos) + (pos ^ label)] += 1.0;
	state->correct += (pos == label);
}

/* Adds one multinomial row: y is the class index. */
static void
IrlsAddMultinomial(IrlsState *state, double y, double w)
{
	int			n1 = state->p + 1;
	int			kk = state->classes;
	int			k = state->k;
	int			cls = (int) y;
	double	   *z = state->z;
	double	   *pr = state->prob;
	double		maxeta = -INFINITY;
	double		sum = 0.0;
	int			best = 0;

	if (cls < 0 || cls >= kk || cls != y)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("class index %g is out of range for %d classes", y, kk)));
	/* O(K² p²) a row: with many features, a row can take a while */
	if (k >= 256)
		CHECK_FOR_INTERRUPTS();
	for (int c = 0; c < kk; c++)
	{
		double		eta = 0.0;
		const double *b = state->coef + c * n1;

		for (int i = 0; i < n1; i++)
			eta += b[i] * z[i];
		pr[c] = eta;
		maxeta = Max(maxeta, eta);
	}
	for (int c = 0; c < kk; c++)
	{
		sum += exp(pr[c] - maxeta);
		if (pr[c] > pr[best])
			best = c;
	}
	/* -log softmax of the true class, computed with log-sum-exp */
	state->loss += w * (maxeta + log(sum) - pr[cls]);
	for (int c = 0; c < kk; c++)
		pr[c] = exp(pr[c] - maxeta) / sum;
	if (best == cls)
		state->correct += 1.0;

	for (int c = 0; c < kk; c++)
	{
		double		r = w * (pr[c] - (c == cls ? 1.0 : 0.0));

		for (int i = 0; i < n1; i++)
			state->grad[c * n1 + i] += r * z[i];
		for (int d = c; d < kk; d++)
		{
			double		h = w * pr[c] * ((c == d ? 1.0 : 0.0) - pr[d]);

			for (int i = 0; i < n1; i++)
			{
				int			row = c * n1 + i;
				double		a = h * z[i];
				double	   *hp = state->hess + PACKED_INDEX(k, row, 0);

				/* columns (d, j) with row <= column */
				for (int j = (d == c ? i : 0); j < n1; j++)
					hp[d * n1 + j] += a * z[j];
			}
		}
	}
}

PG_FUNCTION_INFO_V1(irls_pass_transfn);

/* Transition of streamml.irls_pass: adds one row at the given parameters. */
Datum
irls_pass_transfn(PG_FUNCTION_ARGS)
{
	IrlsState  *state;
	double		y;
	double		w;
	const char *x;
	int			p;
	double	   *z;

	if (PG_ARGISNULL(0))
	{
		MemoryContext old = MemoryContextSwitchTo(PassAggContext(fcinfo, "irls_pass_transfn"));

		state = palloc0(sizeof(IrlsState));
		IrlsLoadParams(state, fcinfo);
		MemoryContextSwitchTo(old);
	}
	else
		state = (IrlsState *) PG_GETARG_POINTER(0);

	/* the parameters fix the length: rows of another one are skipped */
	if (PassReadRow(fcinfo, 1, state->p, &y, &x, &p, &w) != PASS_ROW_OK)
	{
		state->skipped++;
		PG_RETURN_POINTER(state);
	}
	z = state->z;
	z[0] = 1.0;
	for (int i = 1; i <= p; i++)
	{
		double		v = PassFeature(x, i - 1);

		if (unlikely(!isfinite(v)))
		{
			state->skipped++;
			PG_RETURN_POINTER(state);
		}
		z[i] = (v - state->mean[i - 1]) * state->invs[i - 1];
	}
	state->count++;
	state->w += w;
	if (state->classes == 2)
	{
		if (y != 0.0 && y != 1.0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("binary label must be 0 or 1, not %g", y)));
		IrlsAddBinary(state, y, w);
	}
	else
		IrlsAddMultinomial(state, y, w);
	PG_RETURN_POINTER(state);
}

PG_FUNCTION_INFO_V1(irls_pass_combinefn);

/* Combine function of streamml.irls_pass: adds the sums. */
Datum
irls_pass_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = PassAggContext(fcinfo, "irls_pass_combinefn");
	IrlsState  *a;
	IrlsState  *b;

	if (PG_ARGISNULL(1))
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	b = (IrlsState *) PG_GETARG_POINTER(1);
	if (PG_ARGISNULL(0))
	{
		MemoryContext old = MemoryContextSwitchTo(aggcontext);

		a = palloc0(sizeof(IrlsState));
		IrlsAlloc(a, b->p, b->classes, b->gradonly);
		MemoryContextSwitchTo(old);
	}
	else
		a = (IrlsState *) PG_GETARG_POINTER(0);
	if (a->p != b->p || a->classes != b->classes || a->gradonly != b->gradonly)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot combine irls_pass states of different sizes")));
	IrlsFlush(a);
	IrlsFlush(b);
	a->count += b->count;
	a->skipped += b->skipped;
	a->w += b->w;
	a->loss += b->loss;
	a->correct += b->correct;
	for (int i = 0; i < 4; i++)
		a->confusion[i] += b->confusion[i];
	for (int i = 0; i < a->k; i++)
		a->grad[i] += b->grad[i];
	if (!a->gradonly)
		for (int i = 0; i < PACKED_SIZE(a->k); i++)
			a->hess[i] += b->hess[i];
	PG_RETURN_POINTER(a);
}

PG_FUNCTION_INFO_V1(irls_pass_serialfn);

/* Serialises the sums of an irls_pass state. */
Datum
irls_pass_serialfn(PG_FUNCTION_ARGS)
{
	IrlsState  *state = (IrlsState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	IrlsFlush(state);
	pq_begintypsend(&buf);
	pq_sendint32(&buf, state->p);
	pq_sendint32(&buf, state->classes);
	pq_sendbyte(&buf, state->gradonly ? 1 : 0);
	pq_sendint64(&buf, state->count);
	pq_sendint64(&buf, state->skipped);
	pq_sendfloat8(&buf, state->w);
	pq_sendfloat8(&buf, state->loss);
	pq_sendfloat8(&buf, state->correct);
	pq_sendbytes(&buf, (char *) state->confusion, sizeof(state->confusion));
	pq_sendbytes(&buf, (char *) state->grad, sizeof(double) * state->k);
	if (!state->gradonly)
		pq_sendbytes(&buf, (char *) state->hess,
					 sizeof(double) * PACKED_SIZE(state->k));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/*
 * Bytes of the header of a flat irls_pass state: p, classes, gradonly, two
 * counts, w, loss, correct, the confusion matrix.
 */
#define IRLS_FLAT_HEADER (4 + 4 + 1 + 2 * 8 + 3 * 8 + 4 * 8)

PG_FUNCTION_INFO_V1(irls_pass_deserialfn);

/*
 * Deserialises the sums of an irls_pass state, checking every field
 * (passes.h) before it allocates by them.  The state has no parameters:
 * a transition completes it (IrlsPassComplete).
 */
Datum
irls_pass_deserialfn(PG_FUNCTION_ARGS)
{
	const char *agg = "streamml.irls_pass";
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	IrlsState  *state;
	StringInfoData buf;
	int			p;
	int			classes;
	int			gradbyte;
	int64		k;
	int64		count;
	int64		skipped;

	PassAggContext(fcinfo, "irls_pass_deserialfn");
	PassReadBuffer(&buf, b);
	PassStateCheckHeader(agg, &buf, IRLS_FLAT_HEADER);
	p = (int) pq_getmsgint(&buf, 4);
	classes = (int) pq_getmsgint(&buf, 4);
	gradbyte = pq_getmsgbyte(&buf);
	count = pq_getmsgint64(&buf);
	skipped = pq_getmsgint64(&buf);
	PASS_STATE_CHECK(p >= 0 && p < PASS_MAX_COLUMNS, agg,
					 "It has %d features.", p);
	PASS_STATE_CHECK(classes >= 2 && classes <= PASS_MAX_ORDER, agg,
					 "It has %d classes.", classes);
	PASS_STATE_CHECK(gradbyte == 0 || (gradbyte == 1 && classes == 2), agg,
					 "Its gradient-only flag is %d with %d classes.",
					 gradbyte, classes);
	k = (int64) (classes == 2 ? 1 : classes) * ((int64) p + 1);
	PASS_STATE_CHECK(k < PASS_MAX_COLUMNS && (gradbyte == 1 || k <= PASS_MAX_ORDER),
					 agg, "It has " INT64_FORMAT " coefficients, above the limit of %d.",
					 k, gradbyte == 1 ? PASS_MAX_COLUMNS - 1 : PASS_MAX_ORDER);
	PASS_STATE_CHECK(count >= 0 && skipped >= 0, agg,
					 "It counts " INT64_FORMAT " rows used and " INT64_FORMAT " skipped.",
					 count, skipped);
	PassStateCheckLength(agg, &buf, 3 * sizeof(double) + 4 * sizeof(double) +
						 sizeof(double) * (uint64) (k + (gradbyte ? 0 : PACKED_SIZE(k))));

	state = palloc0(sizeof(IrlsState));
	IrlsAlloc(state, p, classes, gradbyte != 0);
	state->count = count;
	state->skipped = skipped;
	state->w = pq_getmsgfloat8(&buf);
	state->loss = pq_getmsgfloat8(&buf);
	state->correct = pq_getmsgfloat8(&buf);
	pq_copymsgbytes(&buf, (char *) state->confusion, sizeof(state->confusion));
	pq_copymsgbytes(&buf, (char *) state->grad, sizeof(double) * state->k);
	if (!state->gradonly)
		pq_copymsgbytes(&buf, (char *) state->hess,
						sizeof(double) * PACKED_SIZE((Size) state->k));
	PASS_STATE_CHECK(isfinite(state->w) && state->w >= 0.0, agg,
					 "Its sum of weights is %g.", state->w);
	PASS_STATE_CHECK(state->correct >= 0.0 && state->correct <= count, agg,
					 "It counts %g rows right of " INT64_FORMAT ".",
					 state->correct, count);
	PassStateCheckFinite(agg, "confusion counts", state->confusion, 4, true);
	PG_RETURN_POINTER(state);
}

PG_FUNCTION_INFO_V1(irls_pass_finalfn);

/*
 * Final function of streamml.irls_pass: a float8[] laid out as in passes.h
 * (counts, sum of weights, loss, correct, confusion, k), then the gradient
 * (k) and the packed Hessian.
 */
Datum
irls_pass_finalfn(PG_FUNCTION_ARGS)
{
	IrlsState  *state;
	int			len;
	double	   *out;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	state = (IrlsState *) PG_GETARG_POINTER(0);
	IrlsFlush(state);
	len = IRLS_OUT_HEADER + state->k +
		(state->gradonly ? 0 : PACKED_SIZE(state->k));
	out = palloc(sizeof(double) * len);
	out[IRLS_OUT_COUNT] = state->count;
	out[IRLS_OUT_SKIPPED] = state->skipped;
	out[IRLS_OUT_WEIGHT] = state->w;
	out[IRLS_OUT_LOSS] = state->loss;
	out[IRLS_OUT_CORRECT] = state->correct;
	memcpy(out + IRLS_OUT_TP, state->confusion, sizeof(state->confusion));
	out[IRLS_OUT_K] = state->k;
	memcpy(out + IRLS_OUT_HEADER, state->grad, sizeof(double) * state->k);
	if (!state->gradonly)
		memcpy(out + IRLS_OUT_HEADER + state->k, state->hess,
			   sizeof(double) * PACKED_SIZE(state->k));
	PG_RETURN_ARRAYTYPE_P(Float8ArrayBuild(out, len));
}
