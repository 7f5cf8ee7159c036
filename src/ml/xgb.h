/*
 * xgb.h
 *		A small interface of ours over XGBoost's C API (xgb.c is the only
 *		file that includes xgboost/c_api.h).
 *
 * Handles are palloc'd in the current memory context with a reset callback
 * that frees the library's object, so an error anywhere (a cancel, an
 * XGBoost failure, out of memory) frees the booster and the matrix when
 * that context goes.  Every library error becomes an ereport.
 */
#ifndef STREAMML_XGB_H
#define STREAMML_XGB_H

#include "postgres.h"

typedef struct XgbMatrix XgbMatrix;
typedef struct XgbBooster XgbBooster;

extern XgbMatrix *XgbMatrixCreate(const float *data, int64 nrow, int ncol,
								  const float *label, const float *weight,
								  int nthread);
extern XgbMatrix *XgbTrainMatrixCreate(const float *data, int64 nrow, int ncol,
									   const float *label, const float *weight,
									   int nthread, int max_bin);
extern void XgbMatrixFree(XgbMatrix *m);
extern XgbBooster *XgbBoosterCreate(XgbMatrix *train);
extern XgbBooster *XgbBoosterLoad(const char *bytes, Size len);
extern XgbBooster *XgbBoosterLoadFrom(XgbMatrix *train, const char *bytes,
									  Size len);
extern void XgbBoosterFree(XgbBooster *b);
extern void XgbBoosterSetParam(XgbBooster *b, const char *name,
							   const char *value);
extern void XgbBoosterUpdate(XgbBooster *b, int iter, XgbMatrix *train);
extern double XgbBoosterEval(XgbBooster *b, int iter, XgbMatrix *m);
extern void XgbBoosterSlice(XgbBooster *b, int rounds);
extern int	XgbBoosterRounds(XgbBooster *b);
extern int	XgbBoosterNumFeatures(XgbBooster *b);
extern void XgbBoosterPredict(XgbBooster *b, XgbMatrix *m, int64 nrow,
							  int nout, float *out);
extern bytea *XgbBoosterSave(XgbBooster *b, const char *format);
extern void XgbFeatureScore(XgbBooster *b, const char *type, int p,
							double *out);

#endif							/* STREAMML_XGB_H */
