/*
 * passes.h
 *		Helpers shared by the training pass aggregates (moments.c,
 *		irls_state.c) and the evaluation aggregates (metrics.c).
 */
#ifndef STREAMML_PASSES_H
#define STREAMML_PASSES_H

#include <math.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/memutils.h"

/* What PassReadRow found in a row. */
typedef enum PassRow
{
	PASS_ROW_OK,				/* usable */
	PASS_ROW_SKIP,				/* a NULL or non-finite label or weight, NULL features */
	PASS_ROW_MALFORMED			/* a feature array of another length or shape */
} PassRow;

extern PassRow PassReadRow(FunctionCallInfo fcinfo, int argno, int expected,
						   double *y, const char **x, int *p, double *w);
extern MemoryContext PassAggContext(FunctionCallInfo fcinfo, const char *name);

/*
 * A row weight is 0 (the row counts for nothing) or between 1e-12 and 1e12,
 * the bound of class weights: a fit depends only on the ratios of weights,
 * and weights far outside that range overflow or underflow the weighted
 * sums of squares (at 1e-200 a fit came out silently different).
 */
#define PASS_WEIGHT_MIN 1e-12
#define PASS_WEIGHT_MAX 1e12
#define PASS_WEIGHT_OK(w) ((w) == 0.0 || ((w) >= PASS_WEIGHT_MIN && (w) <= PASS_WEIGHT_MAX))
extern void PassWeightOutOfRange(double w) pg_attribute_noreturn();

/*
 * The largest order of the cross-product matrices a pass accumulates: the
 * co-moments of label and features (p + 1) and the Hessian of a Newton step
 * (K (p + 1)).  Packed, such a matrix takes 64 MiB, and a run holds a few
 * copies of it (the aggregate state, its result, the solver's factor and
 * the k × k covariance); larger models are refused before the first pass.
 */
#define PASS_MAX_ORDER 4096

/*
 * Columns are accumulated in units of a power of two, 2^e with e the binary
 * exponent of the largest magnitude seen so far (and never below
 * PASS_EXP_MIN), so that squares and cross-products stay finite and
 * nonzero for any finite data: a column near 1e200 or 1e-200 is as good as
 * one near 1.  Powers of two scale exactly.
 */
#define PASS_EXP_MIN (-1021)
#define PASS_EXP_MAX 1021

/* The binary exponent of a magnitude m >= 0, clamped to the range above. */
static inline int
PassExponent(double m)
{
	int			e = PASS_EXP_MIN;

	if (m > 0.0)
		(void) frexp(m, &e);
	return Max(PASS_EXP_MIN, Min(e, PASS_EXP_MAX));
}

/* Feature i of the values PassReadRow found, which may be unaligned. */
static inline double
PassFeature(const char *x, int i)
{
	double		v;

	memcpy(&v, x + i * sizeof(double), sizeof(double));
	return v;
}

/* Points a read-only StringInfo at the payload of a bytea. */
static inline void
PassReadBuffer(StringInfo buf, bytea *b)
{
	buf->data = VARDATA_ANY(b);
	buf->len = VARSIZE_ANY_EXHDR(b);
	buf->maxlen = buf->len;
	buf->cursor = 0;
}

/*
 * Flat states are bytea that SQL can hand to the aggregates' functions (an
 * initcond, a combine or final function called on any bytea, a state from
 * a Citus worker), so every deserialisation checks every field before it
 * allocates or reads by it (pass_state.c): the error of a state that no
 * aggregate of ours made, with a detail saying what is wrong with it.
 */
#define PASS_STATE_CHECK(cond, agg, ...) \
	do { \
		if (unlikely(!(cond))) \
			ereport(ERROR, \
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION), \
					 errmsg("invalid %s state", (agg)), \
					 errdetail(__VA_ARGS__))); \
	} while (0)

extern void PassStateCheckHeader(const char *agg, StringInfo buf, int header);
extern void PassStateCheckLength(const char *agg, StringInfo buf, uint64 rest);
extern void PassStateCheckFinite(const char *agg, const char *what,
								 const double *v, int64 n, bool nonnegative);

/*
 * Completes the C state a transition function is given when the aggregate's
 * state was flat, with what a flat state does not carry, from the row's
 * arguments (the transition's fcinfo); errors when they do not fit it.
 */
typedef void (*PassStateCompleteFn) (FunctionCallInfo fcinfo, void *state);
extern void MomentsComplete(FunctionCallInfo fcinfo, void *state);
extern void IrlsPassComplete(FunctionCallInfo fcinfo, void *state);

/*
 * Rows are buffered in blocks of PASS_BLOCK, feature-major (value i of row r
 * at [i * PASS_BLOCK + r]), and added to the packed cross-product matrices
 * a block at a time by PassBlockSyrk.
 */
#define PASS_BLOCK 32

/*
 * The most columns (label and features) a pass can buffer: a block of
 * rows must fit one allocation.  Checked on flat states, before allocating.
 */
#define PASS_MAX_COLUMNS ((int) (MaxAllocSize / (sizeof(double) * PASS_BLOCK)))

extern void PassBlockSyrk(double *packed, const double *z, const double *a,
						  int n);
extern void PassCheckOrder(int order);

/*
 * Σ_r a[r] b[r] over one block of rows.  Four partial sums: independent
 * chains the compiler can keep in flight (or in vector registers), where
 * one running sum would wait on every addition.
 */
static inline double
PassBlockDot(const double *a, const double *b)
{
	double		s0 = 0.0;
	double		s1 = 0.0;
	double		s2 = 0.0;
	double		s3 = 0.0;

	for (int r = 0; r < PASS_BLOCK; r += 4)
	{
		s0 += a[r] * b[r];
		s1 += a[r + 1] * b[r + 1];
		s2 += a[r + 2] * b[r + 2];
		s3 += a[r + 3] * b[r + 3];
	}
	return (s0 + s1) + (s2 + s3);
}

/*
 * Layout of the float8[] returned by streamml.ml_moments: this header, then
 * the means (label first, p + 1), the units 2^e of the columns (p + 1), and
 * the co-moments in those units (entry (i, j) is Σ w (v_i - m_i)(v_j - m_j)
 * / (unit_i unit_j)): the packed upper triangle of order p + 1, or with
 * MOMENTS_OUT_FULL 0 only row 0 (label with each column) then the diagonal.
 */
#define MOMENTS_OUT_WEIGHT		0
#define MOMENTS_OUT_COUNT		1
#define MOMENTS_OUT_SKIPPED		2
#define MOMENTS_OUT_P			3
#define MOMENTS_OUT_MALFORMED	4
#define MOMENTS_OUT_FULL		5
#define MOMENTS_OUT_HEADER		6

/* Layout of the float8[] returned by streamml.irls_pass. */
#define IRLS_OUT_COUNT		0
#define IRLS_OUT_SKIPPED	1
#define IRLS_OUT_WEIGHT		2
#define IRLS_OUT_LOSS		3
#define IRLS_OUT_CORRECT	4
#define IRLS_OUT_TP			5
#define IRLS_OUT_FP			6
#define IRLS_OUT_TN			7
#define IRLS_OUT_FN			8
#define IRLS_OUT_K			9
#define IRLS_OUT_HEADER		10

#endif							/* STREAMML_PASSES_H */
