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

extern bool PassReadRow(FunctionCallInfo fcinfo, int argno, int expected,
						double *y, const char **x, int *p, double *w);
extern MemoryContext PassAggContext(FunctionCallInfo fcinfo, const char *name);

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
 * Rows are buffered in blocks of PASS_BLOCK, feature-major (value i of row r
 * at [i * PASS_BLOCK + r]), and added to the packed cross-product matrices
 * a block at a time by PassBlockSyrk.
 */
#define PASS_BLOCK 32

extern void PassBlockSyrk(double *packed, const double *z, const double *a,
						  int n);

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
