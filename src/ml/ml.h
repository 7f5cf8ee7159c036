/*
 * ml.h
 *		Declarations shared by the in-database training and serving code.
 *
 * Training runs as a few passes of parallel-safe aggregates over the data
 * (moments.c, irls_state.c), driven from C by train.c and its learners
 * (glm.c, solvers in glm_solve.c); the dense linear algebra and the
 * distribution functions the statistics need live in linalg.c; predict.c
 * serves the deployed versions from a per-backend cache.
 */
#ifndef STREAMML_ML_H
#define STREAMML_ML_H

#include "postgres.h"

#include "utils/array.h"

/* Index of (i, j), i <= j, in a packed upper triangle of order n. */
#define PACKED_INDEX(n, i, j) ((i) * (n) - ((i) * ((i) - 1)) / 2 + ((j) - (i)))
#define PACKED_SIZE(n) ((n) * ((n) + 1) / 2)

extern void MlInit(void);

/* model_catalog.c */
extern void ModelCatalogInit(void);
extern void ModelCatalogChanged(void);
extern uint64 ModelCatalogGeneration(bool *stale);
extern Oid	ModelCheckOwner(const char *name, const char *action);
extern void ModelDoesNotExist(const char *name, const char *detail) pg_attribute_noreturn();
extern void ModelCheckTrainOwner(const char *model);
extern bool ModelVisible(const char *name, Oid owner);
extern void ModelDeploy(const char *name, int version);
extern void ModelDeployBy(const char *name, int version, Oid by);
extern int32 ModelDeployedVersion(const char *name);
extern Oid	ModelGroupType(const char *name);
extern void ModelDelete(const char *name, Oid owner);
extern int	ModelCheckDeployedRead(const char *name, int version_col);
extern bool ModelResultClasses(int col, char ***classes, int *n);

/* model_catalog_citus.c */
extern void ModelCatalogCitusInit(void);

/* linalg.c */
extern bool CholeskySolve(int n, const double *packed, const double *b,
						  double *x, double *inverse);
extern double NormalTwoSidedP(double z);
extern double StudentTwoSidedP(double t, double df);
extern double Sigmoid(double eta);

/* Helpers for float8[] arguments. */
extern double *Float8ArrayData(ArrayType *a, int *n, const char *what);
extern ArrayType *Float8ArrayBuild(const double *v, int n);

/* predict.c: the deployed models served to C callers (src/scoring) */
typedef struct CachedModel CachedModel;
typedef struct ServedModelInfo
{
	char		kind;			/* 'g' logistic, 'm' multinomial, 'l' linear */
	int			version;		/* the deployed version */
	int			nfeatures;
	char	  **features;		/* names, as trained */
	const char *group_by;		/* the group column, NULL when not grouped */
	bool		trees;			/* has trees: a NULL or NaN feature is a
								 * missing value, not unscorable */
	int			nclasses;		/* 0 for a regression */
	char	  **classes;		/* labels, by class index */
	/* categorical feature columns (categorical.h), NULL when none: then
	 * read the ncolumns columns, each into its slots of the features */
	const struct Encoding *encoding;
	int			ncolumns;
	char	  **columns;
} ServedModelInfo;
typedef struct ServedPrediction
{
	double		value;			/* regression value or class index */
	double		probability;	/* positive class of a binary model, or NaN */
	int			class_index;	/* -1 for a regression */
} ServedPrediction;
extern CachedModel *ServedModelGet(const char *name, ServedModelInfo *info);
extern CachedModel *ServedModelGetVersion(const char *name, int32 version,
										  ServedModelInfo *info);
extern const void *ServedModelParams(CachedModel *m, const char *group_key,
									 int len);
extern bool ServedModelScore(CachedModel *m, const void *params,
							 const double *x, ServedPrediction *r);

/* metrics.c */
struct StringInfoData;
extern void JsonAppendNumber(struct StringInfoData *buf, const char *key, double v);
extern char *ClassificationMetricsText(const float *label, const double *prob,
									   int64 n);

#endif							/* STREAMML_ML_H */
