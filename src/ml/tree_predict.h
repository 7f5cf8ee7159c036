/*
 * tree_predict.h
 *		Scoring tree models (gbt, forest, tree) in the backend: the model,
 *		loaded once per cache load, and one row's outputs.
 */
#ifndef STREAMML_TREE_PREDICT_H
#define STREAMML_TREE_PREDICT_H

#include "postgres.h"

typedef struct TreeModel TreeModel;

extern TreeModel *TreeModelLoad(const char *bytes, Size len);
extern int	TreeModelOutputs(const TreeModel *t);
extern int	TreeModelFeatures(const TreeModel *t);
extern char TreeModelTask(const TreeModel *t);
extern void TreeModelPredict(const TreeModel *t, const double *x, double *out);

#endif							/* STREAMML_TREE_PREDICT_H */
