/*
 * predict_row.h
 *		Reading a model's features from a composite row (the row forms of
 *		predict, predict_proba and predict_class) or from a row's columns
 *		passed one by one (their rewrite over a table's whole row), and
 *		float8[] features with missing values for tree models.
 */
#ifndef STREAMML_PREDICT_ROW_H
#define STREAMML_PREDICT_ROW_H

#include "postgres.h"

#include "access/htup.h"
#include "fmgr.h"
#include "utils/array.h"

/*
 * The columns forms' arguments: model, row type, the row's tableoid, then
 * the row's columns from this argument on.
 */
#define PREDICT_FIRST_COLUMN 3

typedef struct RowReader RowReader;
struct Encoding;

extern bool RowRead(RowReader **reader, MemoryContext cxt, HeapTupleHeader row,
					const char *model, char **columns, int ncolumns, int p,
					bool missing_ok, const char *group_by,
					const struct Encoding *enc, double **x,
					const char **group_key, int *group_len);
extern bool RowReadArgs(RowReader **reader, MemoryContext cxt,
						FunctionCallInfo fcinfo, Oid typid, int first,
						const char *model, char **columns, int ncolumns,
						int p, bool missing_ok, const char *group_by,
						const struct Encoding *enc, double **x,
						const char **group_key, int *group_len);
extern const double *FeaturesWithMissing(ArrayType *a, int n);

#endif							/* STREAMML_PREDICT_ROW_H */
