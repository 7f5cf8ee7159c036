/*
 * predict_row.h
 *		Reading a model's features from a composite row (the row forms of
 *		predict, predict_proba and predict_class), and float8[] features
 *		with missing values for tree models.
 */
#ifndef STREAMML_PREDICT_ROW_H
#define STREAMML_PREDICT_ROW_H

#include "postgres.h"

#include "access/htup.h"
#include "utils/array.h"

typedef struct RowReader RowReader;
struct Encoding;

extern bool RowRead(RowReader **reader, MemoryContext cxt, HeapTupleHeader row,
					const char *model, char **columns, int ncolumns, int p,
					bool missing_ok, const char *group_by,
					const struct Encoding *enc, double **x,
					const char **group_key, int *group_len);
extern const double *FeaturesWithMissing(ArrayType *a, int n);

#endif							/* STREAMML_PREDICT_ROW_H */
