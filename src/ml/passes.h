/*
 * passes.h
 *		Helpers shared by the training pass aggregates (moments.c,
 *		irls_state.c) and the evaluation aggregates (metrics.c).
 */
#ifndef STREAMML_PASSES_H
#define STREAMML_PASSES_H

#include "fmgr.h"
#include "lib/stringinfo.h"

extern bool PassReadRow(FunctionCallInfo fcinfo, int argno, int expected,
						double *y, double **x, int *p, double *w);
extern MemoryContext PassAggContext(FunctionCallInfo fcinfo, const char *name);

/* Points a read-only StringInfo at the payload of a bytea. */
static inline void
PassReadBuffer(StringInfo buf, bytea *b)
{
	buf->data = VARDATA_ANY(b);
	buf->len = VARSIZE_ANY_EXHDR(b);
	buf->maxlen = buf->len;
	buf->cursor = 0;
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
