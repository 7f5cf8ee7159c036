/*
 * train.h
 *		The state of one training run (train.c).
 */
#ifndef STREAMML_TRAIN_H
#define STREAMML_TRAIN_H

#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/snapshot.h"

typedef enum ModelKind
{
	MODEL_LOGISTIC,
	MODEL_MULTINOMIAL,
	MODEL_LINEAR
} ModelKind;

typedef struct TrainRun
{
	MemoryContext cxt;
	ModelKind	kind;
	char	   *model;
	char	   *source;
	char	   *label;
	char	  **featurecols;
	int			nfeaturecols;
	bool		featarray;		/* one array column of features */
	int			p;				/* number of features, -1 until known */
	/* options */
	double		l2;
	double		l1;				/* lasso penalty (linear models) */
	bool		standardize;
	int			max_iter;
	double		tol;
	char	   *weight;
	char	   *group_by;
	char	   *order_by;
	double		test_fraction;
	bool		warm_start;
	bool		lbfgs;			/* solver 'lbfgs' (binary, ungrouped) */
	char	   *deploy;
	char	   *deploy_metric;
	JsonbValue *class_weight;
	double	   *class_weights;
	/* derived */
	char	   *from;
	char	   *yexpr;
	char	   *xexpr;
	char	   *wexpr;
	char	   *wexpr_fit;
	char	   *gexpr;
	char	   *order_type;
	char	   *train_where;
	char	   *test_where;
	char	   *cutoff;
	char	   *data_max;		/* newest order_by value of the run */
	char	  **classes;
	int			nclasses;
	int64		extra_skipped;
	int64		malformed;		/* rows whose feature array has another length */
	int			passes;
	double		duration;
	Snapshot	snapshot;
} TrainRun;

struct TupleDescData;

/* train_source.c: the source, its columns and the queries over it */
extern char *SourceFromItem(const char *source);
extern Oid	SourceColumnType(struct TupleDescData *desc, const char *column,
							 const char *role, const char *source);
extern bool TypeIsNumeric(Oid type);
extern char *Float8Expr(const char *column, Oid type);
extern void SetFeatureColumns(TrainRun *run, ArrayType *fa);
extern void ResolveSource(TrainRun *run);
extern void ResolveLabel(TrainRun *run, struct TupleDescData *desc);
extern void ResolveFeatures(TrainRun *run, struct TupleDescData *desc);
extern void ResolveColumns(TrainRun *run, struct TupleDescData *desc);
extern void ResolveSplit(TrainRun *run);
extern void ResolveFeatureLength(TrainRun *run);
extern const char *GroupByClause(TrainRun *run);
extern void RunQuery(TrainRun *run, const char *sql, int nargs, Oid *types,
					 Datum *values, const char *nulls);
extern char *ResultText(int row, int col);
extern double *ResultFloat8Array(int row, int col, int *n, MemoryContext cxt);
extern char *FeatureName(TrainRun *run, int j);
extern Datum FeatureNamesArray(TrainRun *run);
extern char *FeatureArrayFits(TrainRun *run);
extern char *ScoreFeaturesExpr(TrainRun *run);
extern void NoticeMalformedRows(TrainRun *run, int64 n);

#endif							/* STREAMML_TRAIN_H */
