/*
 * train.h
 *		The state of one training run, and the interfaces between the
 *		phases of training: the driver (train.c), options (train_options.c),
 *		source (train_source.c), the GLM learner (glm.c) and its solvers
 *		(glm_solve.c), holdout scoring (holdout.c) and the record of a run
 *		in the model catalog (model_catalog.c).  evaluate.c shares the
 *		source helpers.
 */
#ifndef STREAMML_TRAIN_H
#define STREAMML_TRAIN_H

#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/snapshot.h"

typedef enum ModelKind
{
	MODEL_LOGISTIC,
	MODEL_MULTINOMIAL,
	MODEL_LINEAR
} ModelKind;

/* The family of a training run: its learner (train.c LearnerFor). */
typedef enum ModelFamily
{
	FAMILY_GLM,
	FAMILY_GBT,
	FAMILY_FOREST,
	FAMILY_TREE
} ModelFamily;

/* The XGBoost parameters of a tree run (train_options.c), XGBoost's names. */
typedef struct TreeParams
{
	int			rounds;			/* boosting rounds */
	int			parallel_trees; /* num_parallel_tree */
	int			max_depth;
	double		learning_rate;
	double		min_child_weight;
	double		subsample;
	double		colsample_bytree;
	double		colsample_bynode;
	double		lambda;
	double		alpha;
	int			max_bin;
	int			early_stopping; /* rounds, 0 for none */
	int			seed;
	int			threads;
	char	   *objective;		/* NULL: follows the target */
	double		base_score;		/* the trees' starting prediction; NaN:
								 * estimated from the training rows */
} TreeParams;

typedef struct TrainRun
{
	MemoryContext cxt;
	ModelKind	kind;			/* the task: regression, binary, multiclass */
	ModelFamily family;
	TreeParams *tree;			/* tree families only */
	char	   *model;
	char	   *source;
	char	   *label;
	char	  **featurecols;
	int			nfeaturecols;
	bool		featarray;		/* one array column of features */
	int			p;				/* number of features, -1 until known */
	Oid		   *coltypes;		/* type of each feature column */
	struct Encoding *enc;		/* categorical columns' one-hot encoding, or
								 * NULL (categorical.c) */
	char	  **slotexpr;		/* SQL of each of the p features */
	int			max_categories; /* options of the categorical encoding */
	int			max_classes;	/* most classes of a classifier's target */
	bool		other_level;
	/* options */
	double		l2;
	double		l1;				/* lasso penalty (linear models) */
	bool		standardize;
	int			max_iter;
	double		tol;
	char	   *weight;
	char	   *group_by;
	Oid			group_type;		/* the group column's type, InvalidOid without */
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
	Oid			order_typid;	/* order_by's type and collation */
	Oid			order_collation;
	bool		split_in_scan;	/* the learner finds the split (split_scan.c) */
	char	   *train_where;
	char	   *test_where;
	char	   *cutoff;
	char	   *data_max;		/* newest order_by value of the run */
	char	  **classes;
	int			nclasses;
	int64		extra_skipped;	/* skipped outside any group's rows: a NULL
								 * group or order_by, a group left without
								 * training rows; see RUN_SKIPPED */
	int64		malformed;		/* rows whose feature array has another length */
	int64		empty_groups;	/* groups left without training rows */
	int64		empty_group_rows;	/* and their skipped rows */
	struct FeatureBinsState *bins;	/* the learner's sample for the drift
									 * bins, or NULL: a pass of their own */
	int			passes;
	double		duration;
	Snapshot	snapshot;
} TrainRun;

/*
 * The run-level skips a group's rows_skipped includes: all of them when
 * the run has one group; none in a per-group run, where they belong to no
 * group (the run's NOTICEs count them) and adding them to every group
 * would count them once per group.
 */
#define RUN_SKIPPED(run) ((run)->group_by ? 0 : (run)->extra_skipped)

/* One model being fitted: the whole source, or one group of it. */
typedef struct GroupFit
{
	char	   *key;			/* group value as text, NULL without group_by */
	int			p;
	int			blocks;			/* coefficient blocks: 1, or K (multinomial) */
	int			k;				/* blocks * (p + 1) */
	double		w;				/* sum of weights */
	int64		count;
	int64		skipped;
	double	   *mean;			/* p */
	double	   *scale;			/* p, 0 for a constant column */
	double	   *invs;			/* p, 1/scale or 0 */
	double	   *zs;				/* p, unit/scale or 0: from the moments' units
								 * to the standardised scale */
	double	   *pen;			/* p, penalty factor on the standardised scale */
	double	   *gamma;			/* k, standardised scale */
	double	   *prev_gamma;
	double		obj;
	double		prev_obj;
	int			halvings;
	int			iterations;
	bool		converged;
	bool		active;
	bool		separable;
	bool		lda_start;		/* gamma is the LDA start, not yet evaluated */
	double		loss;			/* at the last pass */
	double		last[9];		/* header of the last irls_pass output */
	double	   *cov;			/* k × k, standardised scale */
	double		df;				/* residual degrees of freedom (linear) */
	double		r2;
	/* results on the original scale */
	double	   *beta;			/* k: per block, intercept then slopes */
	double	   *se;				/* k */
	double	   *pvalue;			/* k */
	char	   *metrics;		/* JSON text */
	double		holdout_score;	/* the deploy metric on the holdout */
	double		deployed_score; /* the deployed version's, same holdout */
	double		holdout_rows;
	double	   *deployed_coef;	/* the deployed version's, original scale */
	double	   *moments_mean;	/* the first pass's output, p + 1 */
	double	   *moments_unit;	/* p + 1: units of the co-moments */
	double	   *moments_comom;	/* the co-moments, in those units */
	bool	   *aliased;		/* p, or NULL: exactly collinear with earlier
								 * features */
	int			naliased;		/* how many are */
	bool		moments_full;	/* every co-moment, or row 0 and the diagonal */
	double		yunit;			/* a linear model's label unit: its loss and
								 * covariance are in yunit² */
} GroupFit;

/*
 * One row of streamml.model_versions: what a learner records of one group
 * (model_catalog.c adds the run's own columns).  The arrays are Datums of
 * float8[]; aliased is a text[], or 0 for NULL.
 */
typedef struct ModelVersionRow
{
	const char *group_key;		/* NULL without group_by */
	Datum		intercepts;
	Datum		coefficients;
	Datum		std_errors;
	Datum		p_values;
	Datum		means;
	Datum		scales;
	int64		rows_used;
	int64		rows_skipped;
	int			iterations;
	bool		converged;
	const char *metrics;		/* JSON text */
	double		df;				/* residual degrees of freedom */
	bool		has_df;			/* false: df is NULL */
	Datum		aliased;
	bytea	   *model_data;		/* a tree model's XGBoost bytes, or NULL */
	const char *importance;		/* JSON text, or NULL */
} ModelVersionRow;

/*
 * What the driver needs of one fitted group, whatever the learner: the row
 * it returns, and what deploy 'if_better' compares.
 */
typedef struct TrainOutcome
{
	char	   *key;			/* group value, NULL without group_by */
	int64		rows_used;
	int64		rows_skipped;
	int			iterations;
	bool		converged;
	bool		separable;		/* stopped where the optimum is at infinity */
	char	   *metrics;		/* JSON text */
	double		holdout_score;	/* the deploy metric on the holdout, or NaN */
	double		holdout_rows;
	double		deployed_score; /* the deployed version's, same rows, or NaN */
} TrainOutcome;

/*
 * A learner: one family of models, as the training driver (train.c) runs
 * it.  The driver checks the name and the options, takes the snapshot,
 * resolves the source and the holdout split; then the learner fits, scores
 * and records, and the driver decides deployment and returns a row per
 * group from each group's outcome.  Groups are the learner's own (GroupFit
 * for the GLMs): the driver never looks inside them.
 */
typedef struct TrainLearner
{
	const char *name;
	/* fits the training rows: a List of groups, never empty (else errors) */
	List	   *(*fit) (TrainRun *run);
	/* sets each group's metrics: holdout (and deployed version), in-sample */
	void		(*score) (TrainRun *run, List *groups);
	/* inserts each group's model_versions row of version "version" */
	void		(*record) (TrainRun *run, List *groups, int version);
	/* fills *out for one group */
	void		(*outcome) (TrainRun *run, void *group, TrainOutcome *out);
} TrainLearner;

struct TupleDescData;

/* train_options.c: the options of a run */
extern void ParseOptions(TrainRun *run, Jsonb *options);
extern void ResolveClassWeights(TrainRun *run, List *groups);

/* train_source.c: the source, its columns and the queries over it */
extern void SourceCheckTrusted(const char *source, const char *what);
extern char *SourceFromItem(const char *source);
extern char *OrderOperator(Oid type, int strategy);
extern char *NewerRowsCondition(const char *from, const char *order_by,
								const char *last);
extern char *SourceCanonical(const char *source);
extern bool SourceNeedsSearchPath(const char *source);
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
extern void SplitResolved(TrainRun *run, const char *cutoff, const char *max,
						  int64 null_groups, int64 null_orders);
extern void ResolveFeatureLength(TrainRun *run);
extern const char *GroupByClause(TrainRun *run);
extern void RunQuery(TrainRun *run, const char *sql, int nargs, Oid *types,
					 Datum *values, const char *nulls);
extern char *ResultText(int row, int col);
extern double *ResultFloat8Array(int row, int col, int *n, MemoryContext cxt);
extern char *FeatureName(TrainRun *run, int j);
extern bool FeatureIsLevel(TrainRun *run, int j);
extern Datum FeatureNamesArray(TrainRun *run);
extern char *FeatureArrayFits(TrainRun *run);
extern char *ScoreFeaturesExpr(TrainRun *run);
extern void NoticeMalformedRows(TrainRun *run, int64 n);

/* split_scan.c: the holdout split from the rows of the training scan */
typedef struct SplitScan SplitScan;
extern bool SplitInScanPossible(TrainRun *run);
extern SplitScan *SplitScanBegin(TrainRun *run);
extern void SplitScanAdd(SplitScan *s, Datum v, bool isnull);
extern bool SplitScanEnd(SplitScan *s, TrainRun *run);
extern int	SplitScanSide(SplitScan *s, Datum v, bool isnull);

/* glm_solve.c: the solvers of the generalised linear models */
extern bool CheckModelSize(TrainRun *run);
extern GroupFit *GroupFromMoments(TrainRun *run, char *key, const double *m,
								  int len);
extern GroupFit *FindGroup(List *groups, const char *key);
extern void GroupFitLinear(TrainRun *run, GroupFit *g, const double *mean,
						   const double *comom);
extern bool GroupLdaStart(TrainRun *run, GroupFit *g, const double *mean,
						  const double *comom);
extern void GroupFirstStepFromMoments(TrainRun *run, GroupFit *g,
									  const double *mean, const double *comom);
extern void FitClassification(TrainRun *run, List *groups);
extern void FitLbfgs(TrainRun *run, GroupFit *g);
extern void GroupToOriginalScale(TrainRun *run, GroupFit *g, bool linear);

/* glm.c: the GLM learner */
extern const TrainLearner GlmLearner;

/* tree.c: the tree learner (XGBoost) */
extern const TrainLearner TreeLearner;
extern void TreeResolveTask(TrainRun *run, Oid type);
extern const char *FamilyName(TrainRun *run);

/* What the last deploy 'if_better' of this backend compared (train.c). */
typedef struct DeployDecision
{
	bool		valid;			/* reset it before the run */
	char		metric[64];		/* the deploy_metric compared */
	double		new_score;
	double		old_score;		/* NaN: no deployed version to compare */
} DeployDecision;
extern DeployDecision LastDeployDecision;

/* holdout.c: scoring a run, and the deployed version for comparison */
extern void ResolveDeployMetric(TrainRun *run);
extern void CheckMetricOption(const char *option, const char *metric,
							  ModelKind kind);
extern bool MetricHigherIsBetter(const char *metric);
extern bool LoadDeployed(TrainRun *run, List *groups, bool for_warm_start);
extern void HoldoutScore(TrainRun *run, List *groups);

/* league.c: the league of candidates */
struct FunctionCallInfoBaseData;
extern void LeagueRun(struct FunctionCallInfoBaseData *fcinfo, text *model,
					  text *source, text *target, ArrayType *features,
					  Jsonb *options, bool retrain_rows);
extern bool LeagueNoticeFirst(const char *text);

/* model_catalog.c: the record of a training run */
extern void ModelUpsert(TrainRun *run, Jsonb *options);
extern int	ModelNextVersion(const char *model);
extern void ModelInsertVersion(TrainRun *run, int version,
							   const ModelVersionRow *row);

/* categorical.c: the one-hot encoding of categorical feature columns */
struct Encoding;
extern void ResolveCategories(TrainRun *run);
extern void ApplyEncoding(TrainRun *run, struct Encoding *e);

/* feature_bins.c: the reference bins of each feature, for drift */
extern void RecordFeatureBins(TrainRun *run, int version);
extern struct FeatureBinsState *FeatureBinsBegin(int p, Datum names);
extern void FeatureBinsAddFloats(struct FeatureBinsState *st, const float *x,
								 int64 n);
extern char *FeatureBinsText(struct FeatureBinsState *st);

#endif							/* STREAMML_TRAIN_H */
