/*
 * tree_predict.h
 *		Scoring tree models (gbt, forest, tree) in the backend: the model,
 *		loaded once per cache load, and one row's outputs.
 */
#ifndef STREAMML_TREE_PREDICT_H
#define STREAMML_TREE_PREDICT_H

#include "postgres.h"

#include <float.h>
#include <math.h>

typedef struct TreeModel TreeModel;

extern TreeModel *TreeModelLoad(const char *bytes, Size len);
extern int	TreeModelOutputs(const TreeModel *t);
extern int	TreeModelFeatures(const TreeModel *t);
extern char TreeModelTask(const TreeModel *t);
extern const char *TreeModelObjective(const TreeModel *t);
extern bool TreeModelPredict(const TreeModel *t, const double *x, double *out);
extern void TreeModelPredictRows(const TreeModel *t, const float *x, int64 n,
								 int stride, double *out, int threads);

/*
 * Whether a feature value is one a tree model takes: NaN (a missing value)
 * is; an infinity, or a finite double beyond float's range that XGBoost's
 * single precision would make one, is not.  Training skips such a row and
 * serving gives it no prediction, so the two agree.
 */
static inline bool
TreeValueFits(double v)
{
	return isnan(v) || fabs(v) <= FLT_MAX;
}

#endif							/* STREAMML_TREE_PREDICT_H */
