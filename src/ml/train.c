/*
 * train.c
 *		streamml.train_logreg and streamml.train_linreg: the training driver.
 *
 * A training run is a short sequence of SPI queries over the source, each a
 * parallel-safe aggregate that parallel workers can share:
 *
 *	1. streamml.ml_moments: means and co-moments of label and features, per
 *	   group.  This gives the standardisation, the whole solution of a linear
 *	   model (normal equations on centred, scaled data) and the first Newton
 *	   step of a logistic one (at β = 0 every weight is 1/4, so the Hessian is
 *	   the scaled covariance).
 *	2. streamml.irls_pass, once per Newton step, at the current coefficients
 *	   of every group, until the step is below tol (quadratic convergence:
 *	   usually 4 to 7 passes), with step halving when the objective rises.
 *	3. the evaluation aggregates on the holdout, for the new version and for
 *	   the deployed one (deploy 'if_better').
 *
 * All of them run with SPI_execute_snapshot under one registered snapshot,
 * the one of the calling statement, so rows inserted while training runs
 * (a Kafka stream) never mix into later passes.  The Newton systems are
 * solved in C on the standardised scale; coefficients, standard errors and
 * p-values are reported on the original scale.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "ml/ml.h"
#include "options.h"
#include "pg_streamml.h"
#include "ml/passes.h"
#include "ml/train.h"

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
	double	   *moments_comom;
	bool	   *aliased;		/* p, or NULL: exactly collinear with earlier features */
	int			naliased;	/* in those units */
	bool		moments_full;	/* every co-moment, or row 0 and the diagonal */
	double		yunit;			/* a linear model's label unit: its loss and
								 * covariance are in yunit² */
} GroupFit;

/*
 * Co-moment (i, j) of the moments pass, i <= j, in the units of columns i
 * and j (0 is the label, j the feature j - 1).  Without every co-moment
 * only row 0 and the diagonal are there.
 */
static inline double
GroupComom(const GroupFit *g, int i, int j)
{
	int			n1 = g->p + 1;

	if (g->moments_full)
		return g->moments_comom[PACKED_INDEX(n1, i, j)];
	if (i == 0)
		return g->moments_comom[j];
	Assert(i == j);
	return g->moments_comom[n1 + j];
}

/* Σ w zi zj of features i and j on the standardised scale. */
static inline double
GroupStdComom(const GroupFit *g, int i, int j)
{
	return GroupComom(g, i + 1, j + 1) * g->zs[i] * g->zs[j];
}

/* Σ w (y - ȳ) zi of feature i, y in the label's unit. */
static inline double
GroupStdComomY(const GroupFit *g, int i)
{
	return GroupComom(g, 0, i + 1) * g->zs[i];
}

/*
 * Sets up the standardisation of a group from its moments.  A column is
 * constant when its spread is lost in the rounding of its mean; the test
 * runs in the column's unit, so it does not depend on the column's scale
 * (a column varying around 1e-200 or 1e200 is not constant).  A column that
 * varies on a scale whose reciprocal is not a float8 is an error, never a
 * zero coefficient.
 */
static void
GroupInitScale(TrainRun *run, GroupFit *g, const double *mean,
			   const double *comom)
{
	int			p = g->p;

	g->mean = palloc(sizeof(double) * p);
	g->scale = palloc(sizeof(double) * p);
	g->invs = palloc(sizeof(double) * p);
	g->zs = palloc(sizeof(double) * p);
	g->pen = palloc(sizeof(double) * p);
	for (int j = 0; j < p; j++)
	{
		double		unit = g->moments_unit[j + 1];
		double		sdu = sqrt(Max(GroupComom(g, j + 1, j + 1) / g->w, 0.0));
		double		sd = sdu * unit;

		g->mean[j] = mean[j + 1];
		if (!(sdu > 1e-13 * fabs(g->mean[j] / unit)) || !isfinite(sdu))
			sd = sdu = 0.0;
		else if (!(sd >= DBL_MIN) || !isfinite(sd) || !isfinite(1.0 / sd))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("feature \"%s\" of model \"%s\" varies on a scale that float8 cannot standardize",
							FeatureName(run, j), run->model),
					 errdetail("Its standard deviation is %g.", sd),
					 errhint("Multiply the feature by a power of ten in the source query.")));
		g->scale[j] = sd;
		g->invs[j] = (sd > 0.0) ? 1.0 / sd : 0.0;
		g->zs[j] = (sdu > 0.0) ? 1.0 / sdu : 0.0;
		/* penalty on the standardised scale, or on the raw one */
		g->pen[j] = run->standardize ? 1.0 : g->invs[j] * g->invs[j];
	}
}

/* Penalty of coefficient index i (0 for intercepts and constant columns). */
static inline double
GroupPenalty(TrainRun *run, GroupFit *g, int i)
{
	int			j = i % (g->p + 1);

	/* (no ridge: 0, even where a raw-scale factor overflowed) */
	if (j == 0 || run->l2 == 0.0)
		return 0.0;
	return (double) g->count * run->l2 * g->pen[j - 1];
}

/*
 * True when coefficient index i is held at zero: a constant column, or the
 * last class of a multinomial model (the reference class, which makes the
 * softmax parameters identifiable).
 */
static inline bool
GroupFixed(GroupFit *g, int i)
{
	int			j = i % (g->p + 1);

	if (g->blocks > 1 && i / (g->p + 1) == g->blocks - 1)
		return true;

	return j > 0 && g->invs[j - 1] == 0.0;
}

/*
 * Solves the penalised system (H + P) d = rhs for a group, with the
 * coefficients of constant columns held at zero; optionally returns the
 * inverse (the covariance on the standardised scale, up to a factor).
 */
static void
GroupSolve(TrainRun *run, GroupFit *g, const double *hess, const double *rhs,
		   double *d, double *inverse)
{
	int			k = g->k;
	double	   *h = palloc(sizeof(double) * PACKED_SIZE(k));
	double	   *b = palloc(sizeof(double) * k);

	memcpy(h, hess, sizeof(double) * PACKED_SIZE(k));
	for (int i = 0; i < k; i++)
	{
		b[i] = rhs[i];
		if (GroupFixed(g, i))
		{
			for (int j = 0; j < k; j++)
				h[i <= j ? PACKED_INDEX(k, i, j) : PACKED_INDEX(k, j, i)] = 0.0;
			h[PACKED_INDEX(k, i, i)] = 1.0;
			b[i] = 0.0;
		}
		else
			h[PACKED_INDEX(k, i, i)] += GroupPenalty(run, g, i);
	}
	if (!CholeskySolve(k, h, b, d, inverse))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("could not solve the normal equations of model \"%s\"",
						run->model),
				 errdetail("The features are degenerate.")));
	if (inverse)
		for (int i = 0; i < k; i++)
			if (GroupFixed(g, i))
				inverse[i * k + i] = NAN;
	pfree(h);
	pfree(b);
}

static void GroupFindAliased(GroupFit *g);
static bool CoordinateDescent(int n, const double *a, const double *b,
							  const double *lam, double tol, int max_sweeps,
							  double *x);

/* Lasso penalty of coefficient index i, like GroupPenalty. */
static inline double
GroupL1Penalty(TrainRun *run, GroupFit *g, int i)
{
	int			j = i % (g->p + 1);

	if (j == 0 || run->l1 == 0.0 || GroupFixed(g, i))
		return 0.0;
	/* λ1|β_j| is λ1|γ_j| / s_j on the raw scale */
	return (double) g->count * run->l1 *
		(run->standardize ? 1.0 : g->invs[j - 1]);
}

/*
 * The proximal Newton step of an l1-penalised classification group: the
 * new coefficients minimise the quadratic model of loss and ridge at
 * g->gamma plus the l1 penalty, ½γ'ᵀ(H + P)γ' - (Hγ - g)ᵀγ' + Σ λ|γ'|,
 * by coordinate descent (as glmnet does); d is then γ - γ'.  No
 * covariance: lasso coefficients get no standard errors.
 */
static void
GroupProxNewton(TrainRun *run, GroupFit *g, const double *grad,
				const double *hess, double *d)
{
	int			k = g->k;
	double	   *a = palloc(sizeof(double) * PACKED_SIZE(k));
	double	   *b = palloc(sizeof(double) * k);
	double	   *lam = palloc(sizeof(double) * k);
	double	   *next = palloc(sizeof(double) * k);

	memcpy(a, hess, sizeof(double) * PACKED_SIZE(k));
	for (int i = 0; i < k; i++)
	{
		double		hg = 0.0;

		for (int j = 0; j < k; j++)
			hg += hess[i <= j ? PACKED_INDEX(k, i, j) : PACKED_INDEX(k, j, i)] *
				g->gamma[j];
		b[i] = hg - grad[i];
		lam[i] = GroupL1Penalty(run, g, i);
		a[PACKED_INDEX(k, i, i)] += GroupPenalty(run, g, i);
	}
	for (int i = 0; i < k; i++)
		if (GroupFixed(g, i))
		{
			for (int j = 0; j < k; j++)
				a[i <= j ? PACKED_INDEX(k, i, j) : PACKED_INDEX(k, j, i)] = 0.0;
			a[PACKED_INDEX(k, i, i)] = 1.0;
			b[i] = 0.0;
		}
	if (!CoordinateDescent(k, a, b, lam, 1e-3 * run->tol, 100000, next))
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("coordinate descent of model \"%s\" did not converge",
						run->model)));
	for (int i = 0; i < k; i++)
		d[i] = g->gamma[i] - next[i];
	pfree(a);
	pfree(b);
	pfree(lam);
	pfree(next);
}

static void GroupFirstStepFromMoments(TrainRun *run, GroupFit *g,
									  const double *mean, const double *comom);

/*
 * One Newton step of a classification group from the loss, gradient and
 * Hessian at g->gamma.  Halves the previous step instead when the objective
 * went up.  Marks the group converged or inactive as appropriate.
 */
static void
GroupNewtonStep(TrainRun *run, GroupFit *g, double loss, const double *grad,
				const double *hess)
{
	int			k = g->k;
	double		obj = loss;
	double	   *rhs = palloc(sizeof(double) * k);
	double	   *d = palloc(sizeof(double) * k);
	double		maxd = 0.0;
	double		maxg = 0.0;

	for (int i = 0; i < k; i++)
		obj += 0.5 * GroupPenalty(run, g, i) * g->gamma[i] * g->gamma[i] +
			GroupL1Penalty(run, g, i) * fabs(g->gamma[i]);
	g->loss = loss;

	if (g->lda_start)
	{
		g->lda_start = false;
		if (obj > g->prev_obj)
		{
			/* worse than β = 0: take the Newton step from zero instead */
			memset(g->gamma, 0, sizeof(double) * k);
			g->iterations = 0;
			GroupFirstStepFromMoments(run, g, g->moments_mean,
									  g->moments_comom);
			pfree(rhs);
			pfree(d);
			return;
		}
	}

	if (g->iterations > 0 && obj > g->prev_obj + 1e-12 * fabs(g->prev_obj) &&
		g->halvings < 40)
	{
		/* the full step overshot: go back half-way */
		for (int i = 0; i < k; i++)
			g->gamma[i] = 0.5 * (g->gamma[i] + g->prev_gamma[i]);
		g->halvings++;
		return;
	}
	g->halvings = 0;

	if (run->l1 > 0.0)
		GroupProxNewton(run, g, grad, hess, d);
	else
	{
		for (int i = 0; i < k; i++)
			rhs[i] = grad[i] + GroupPenalty(run, g, i) * g->gamma[i];
		if (g->cov == NULL)
			g->cov = palloc(sizeof(double) * k * k);
		GroupSolve(run, g, hess, rhs, d, g->cov);
	}

	memcpy(g->prev_gamma, g->gamma, sizeof(double) * k);
	g->prev_obj = obj;
	for (int i = 0; i < k; i++)
	{
		g->gamma[i] -= d[i];
		maxd = Max(maxd, fabs(d[i]));
		maxg = Max(maxg, fabs(g->gamma[i]));
	}
	g->iterations++;
	g->obj = obj;

	/*
	 * Newton converges quadratically: once a step is below sqrt(tol), the
	 * next one would be below tol, so the pass that would only confirm it
	 * is skipped (the step just taken already lands within tol).
	 */
	if (maxd <= run->tol * (1.0 + maxg) ||
		(g->iterations >= 2 && maxd * maxd <= run->tol * (1.0 + maxg)))
	{
		g->converged = true;
		g->active = false;
	}
	else if (run->l2 == 0.0 && run->l1 == 0.0 && loss <= 1e-7 * g->w)
	{
		/* every row classified with certainty: the optimum is at infinity */
		g->separable = true;
		g->active = false;
	}
	else if (g->iterations >= run->max_iter)
		g->active = false;
	pfree(rhs);
	pfree(d);
}

/*
 * Transforms coefficients and covariance from the standardised scale to the
 * original one: β_j = γ_j / s_j and b0 = γ0 - Σ γ_j m_j / s_j, per block.
 * Errors when a coefficient does not fit in a float8 (a target near 1e200
 * explained by a feature near 1e-200, or the reverse): never a zero slope
 * for a feature that varies.
 */
static void
GroupToOriginalScale(TrainRun *run, GroupFit *g, bool linear)
{
	int			n1 = g->p + 1;

	g->beta = palloc(sizeof(double) * g->k);
	g->se = palloc(sizeof(double) * g->k);
	g->pvalue = palloc(sizeof(double) * g->k);
	for (int b = 0; b < g->blocks; b++)
	{
		const double *gm = g->gamma + b * n1;
		double	   *bt = g->beta + b * n1;
		double	   *t = palloc0(sizeof(double) * n1 * n1);

		bt[0] = gm[0];
		t[0] = 1.0;
		for (int j = 1; j < n1; j++)
		{
			bt[j] = gm[j] * g->invs[j - 1];
			bt[0] -= gm[j] * g->invs[j - 1] * g->mean[j - 1];
			t[j] = -g->invs[j - 1] * g->mean[j - 1];
			t[j * n1 + j] = g->invs[j - 1];
		}
		for (int j = 0; j < n1; j++)
		{
			/* infinite, or a varying feature's slope lost to underflow */
			if (isfinite(bt[j]) &&
				!(j > 0 && gm[j] != 0.0 && fabs(bt[j]) < DBL_MIN))
				continue;
			if (j == 0)
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("intercept of model \"%s\" is out of the range of float8",
								run->model),
						 errhint("Rescale the features or the label in the source query.")));
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("coefficient of feature \"%s\" of model \"%s\" is out of the range of float8",
							FeatureName(run, j - 1), run->model),
					 errhint("Rescale the features or the label in the source query.")));
		}
		/*
		 * variance of row i of T γ: Σ_a Σ_c T[i,a] C[a,c] T[i,c], with row i
		 * of T divided by its largest entry (1/s_j of a feature near 1e200
		 * would underflow when squared) and C in the label's unit squared
		 */
		for (int i = 0; i < n1; i++)
		{
			double		v = 0.0;
			double		tmax = 0.0;

			CHECK_FOR_INTERRUPTS();
			if (g->cov == NULL || (i > 0 && g->invs[i - 1] == 0.0))
			{
				g->se[b * n1 + i] = NAN;
				continue;
			}
			for (int a = 0; a < n1; a++)
				if (a == 0 || g->invs[a - 1] != 0.0)
					tmax = Max(tmax, fabs(t[i * n1 + a]));
			for (int a = 0; a < n1; a++)
			{
				if (t[i * n1 + a] == 0.0 || (a > 0 && g->invs[a - 1] == 0.0))
					continue;
				for (int c = 0; c < n1; c++)
				{
					if (t[i * n1 + c] == 0.0 || (c > 0 && g->invs[c - 1] == 0.0))
						continue;
					v += (t[i * n1 + a] / tmax) *
						g->cov[(b * n1 + a) * g->k + (b * n1 + c)] *
						(t[i * n1 + c] / tmax);
				}
			}
			g->se[b * n1 + i] = sqrt(Max(v, 0.0)) * tmax * g->yunit;
		}
		for (int i = 0; i < n1; i++)
		{
			double		se = g->se[b * n1 + i];
			double		stat = bt[i] / se;

			if (!isfinite(se) || se <= 0.0)
				g->pvalue[b * n1 + i] = NAN;
			else
				g->pvalue[b * n1 + i] = linear ? StudentTwoSidedP(stat, g->df) :
					NormalTwoSidedP(stat);
		}
		pfree(t);
	}
}

/*
 * Creates a group from one row of the moments pass (layout in passes.h),
 * counting its rows with a malformed feature array in the run.
 */
static GroupFit *
GroupFromMoments(TrainRun *run, char *key, const double *m, int len)
{
	GroupFit   *g = palloc0(sizeof(GroupFit));
	int			p = (int) m[MOMENTS_OUT_P];

	g->key = key;
	g->w = m[MOMENTS_OUT_WEIGHT];
	g->count = (int64) m[MOMENTS_OUT_COUNT];
	g->skipped = (int64) m[MOMENTS_OUT_SKIPPED];
	run->malformed += (int64) m[MOMENTS_OUT_MALFORMED];
	g->p = p;
	g->active = true;
	if (p < 0 || g->count == 0 || g->w <= 0.0)
		return g;
	g->moments_full = (m[MOMENTS_OUT_FULL] != 0.0);
	if (p != run->p ||
		len != MOMENTS_OUT_HEADER + 2 * (p + 1) +
		(g->moments_full ? PACKED_SIZE(p + 1) : 2 * (p + 1)))
		elog(ERROR, "unexpected ml_moments result");
	g->blocks = (run->kind == MODEL_MULTINOMIAL) ? run->nclasses : 1;
	g->k = g->blocks * (p + 1);
	g->gamma = palloc0(sizeof(double) * g->k);
	g->prev_gamma = palloc0(sizeof(double) * g->k);
	g->moments_mean = (double *) m + MOMENTS_OUT_HEADER;
	g->moments_unit = g->moments_mean + p + 1;
	g->moments_comom = g->moments_unit + p + 1;
	g->yunit = (run->kind == MODEL_LINEAR) ? g->moments_unit[0] : 1.0;
	GroupInitScale(run, g, g->moments_mean, g->moments_comom);
	GroupFindAliased(g);
	return g;
}

/*
 * Finds the features that are exact linear combinations of earlier ones
 * (x2 = 2·x1) and holds their coefficients at zero, as R's lm reports NA
 * for them: an arbitrary split between collinear columns would be a
 * silently meaningless coefficient with a finite standard error.
 *
 * A Cholesky factorisation of the features' correlation matrix, in column
 * order, gives at pivot j the share of feature j's variance that the
 * features kept before it leave unexplained; below ALIAS_TOL (1 - R² <
 * 1e-12, where R's QR tolerance of 1e-7 on the pivot is 1e-14 on the
 * share) the feature is aliased and skipped.  Needs every co-moment.
 */
#define ALIAS_TOL 1e-12

static void
GroupFindAliased(GroupFit *g)
{
	int			p = g->p;
	double	   *l;

	if (!g->moments_full || p < 2)
		return;
	l = palloc0(sizeof(double) * p * p);
	g->aliased = palloc0(sizeof(bool) * p);
	for (int j = 0; j < p; j++)
	{
		double		d;

		CHECK_FOR_INTERRUPTS();
		if (g->zs[j] == 0.0)
			continue;			/* constant: held at zero already */
		d = GroupStdComom(g, j, j) / g->w;
		for (int k = 0; k < j; k++)
			d -= l[j * p + k] * l[j * p + k];
		if (!(d > ALIAS_TOL))
		{
			g->aliased[j] = true;
			g->naliased++;
			g->invs[j] = 0.0;
			g->zs[j] = 0.0;
			continue;
		}
		l[j * p + j] = sqrt(d);
		for (int i = j + 1; i < p; i++)
		{
			double		c;

			if (g->zs[i] == 0.0)
				continue;
			c = GroupStdComom(g, j, i) / g->w;
			for (int k = 0; k < j; k++)
				c -= l[i * p + k] * l[j * p + k];
			l[i * p + j] = c / l[j * p + j];
		}
	}
	pfree(l);
}

/*
 * Minimises ½ xᵀAx - bᵀx + Σ lam_j |x_j| for a packed positive
 * semi-definite A by cyclic coordinate descent on the covariance form
 * (glmnet's "covariance updates"): x_j = S(b_j - Σ_{k≠j} A_jk x_k, lam_j) /
 * A_jj with S the soft threshold, keeping Ax up to date as coordinates
 * move.  Stops when no coordinate moves by more than tol·(1 + max |x|).
 * Starts from x = 0; returns false when max_sweeps were not enough.
 */
static bool
CoordinateDescent(int n, const double *a, const double *b, const double *lam,
				  double tol, int max_sweeps, double *x)
{
	double	   *ax = palloc0(sizeof(double) * n);

	memset(x, 0, sizeof(double) * n);
	for (int sweep = 0; sweep < max_sweeps; sweep++)
	{
		double		maxmove = 0.0;
		double		maxx = 0.0;

		CHECK_FOR_INTERRUPTS();
		for (int j = 0; j < n; j++)
		{
			double		ajj = a[PACKED_INDEX(n, j, j)];
			double		r;
			double		xj;
			double		move;

			/* a sweep is O(n²): with thousands of coordinates, seconds */
			if ((j & 255) == 255)
				CHECK_FOR_INTERRUPTS();
			if (!(ajj > 0.0))
				continue;
			r = b[j] - (ax[j] - ajj * x[j]);
			xj = (r > lam[j]) ? (r - lam[j]) / ajj :
				(r < -lam[j]) ? (r + lam[j]) / ajj : 0.0;
			move = xj - x[j];
			if (move != 0.0)
			{
				for (int k = 0; k < n; k++)
					ax[k] += move * a[k <= j ? PACKED_INDEX(n, k, j) : PACKED_INDEX(n, j, k)];
				x[j] = xj;
			}
			maxmove = Max(maxmove, fabs(move) * sqrt(ajj));
			maxx = Max(maxx, fabs(xj) * sqrt(ajj));
		}
		if (maxmove <= tol * (1.0 + maxx))
		{
			pfree(ax);
			return true;
		}
	}
	pfree(ax);
	return false;
}

/*
 * Fits a linear model from its moments: the ridge normal equations on the
 * centred, scaled features; σ² from the residual sum of squares.  The
 * label stays in its unit (the moments pass's power of two) until the
 * coefficients are known, so that a label near 1e200 squares without
 * overflow: the system, the residual sum of squares and the covariance are
 * in that unit (squared), and the loss and the covariance stay so (yunit).
 */
static void
GroupFitLinear(TrainRun *run, GroupFit *g, const double *mean,
			   const double *comom)
{
	int			p = g->p;
	int			n1 = p + 1;
	double	   *szz = palloc0(sizeof(double) * PACKED_SIZE(p));
	double	   *szy = palloc0(sizeof(double) * p);
	double	   *gam = palloc0(sizeof(double) * Max(p, 1));
	double	   *inv = palloc(sizeof(double) * Max(p * p, 1));
	double		syy = GroupComom(g, 0, 0);
	double		sse;
	double		sigma2;
	int			rank = 0;

	for (int i = 0; i < p; i++)
	{
		szy[i] = GroupStdComomY(g, i);
		for (int j = i; j < p; j++)
			szz[PACKED_INDEX(p, i, j)] = GroupStdComom(g, i, j);
		if (g->invs[i] != 0.0)
			rank++;
	}
	/* solve on the slopes only */
	if (p > 0)
	{
		for (int i = 0; i < p; i++)
			if (g->invs[i] != 0.0 && run->l2 > 0.0)
				szz[PACKED_INDEX(p, i, i)] += (double) g->count * run->l2 *
					g->pen[i];
		for (int i = 0; i < p; i++)
			if (g->invs[i] == 0.0)
			{
				for (int j = 0; j < p; j++)
					szz[i <= j ? PACKED_INDEX(p, i, j) : PACKED_INDEX(p, j, i)] = 0.0;
				szz[PACKED_INDEX(p, i, i)] = 1.0;
				szy[i] = 0.0;
			}
		if (run->l1 > 0.0)
		{
			double	   *lam = palloc(sizeof(double) * p);

			/*
			 * λ1|β_j| is λ1|γ_j| / s_j on the raw scale; divided by the
			 * label's unit, like the rest of the objective
			 */
			for (int i = 0; i < p; i++)
				lam[i] = (double) g->count * run->l1 *
					(run->standardize ? 1.0 : g->invs[i]) / g->yunit;
			if (!CoordinateDescent(p, szz, szy, lam, run->tol, 100000, gam))
				ereport(WARNING,
						(errcode(ERRCODE_WARNING),
						 errmsg("coordinate descent of model \"%s\" did not converge",
								run->model)));
			rank = 0;
			for (int i = 0; i < p; i++)
				rank += (gam[i] != 0.0);
		}
		else if (!CholeskySolve(p, szz, szy, gam, inv))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("could not solve the normal equations of model \"%s\"",
							run->model)));
	}
	/* residual sum of squares, from the unpenalised cross-products */
	sse = syy;
	for (int i = 0; i < p; i++)
	{
		if (g->invs[i] == 0.0)
			continue;
		CHECK_FOR_INTERRUPTS();
		sse -= 2.0 * gam[i] * GroupStdComomY(g, i);
		for (int j = 0; j < p; j++)
		{
			if (g->invs[j] == 0.0)
				continue;
			sse += gam[i] * gam[j] * GroupStdComom(g, Min(i, j), Max(i, j));
		}
	}
	sse = Max(sse, 0.0);
	g->df = g->w - rank - 1;
	sigma2 = (g->df > 0) ? sse / g->df : NAN;
	g->r2 = (syy > 0.0) ? 1.0 - sse / syy : NAN;
	g->loss = sse;

	g->gamma[0] = mean[0];
	for (int i = 0; i < p; i++)
		g->gamma[i + 1] = gam[i] * g->yunit;
	g->iterations = 1;
	g->converged = true;
	g->active = false;
	/* the lasso has no standard errors of this kind */
	if (run->l1 > 0.0)
		return;
	g->cov = palloc0(sizeof(double) * n1 * n1);
	g->cov[0] = sigma2 / g->w;
	for (int i = 0; i < p; i++)
		for (int j = 0; j < p; j++)
			g->cov[(i + 1) * n1 + (j + 1)] = sigma2 * inv[i * p + j];
}

/*
 * Builds the params argument of streamml.irls_pass for the active groups:
 * per group [K, means, inv_scales, gamma]; a 2-D array when grouped.
 */
static Datum
BuildPassParams(TrainRun *run, List *groups, Datum *keys)
{
	int			ngroups = 0;
	int			len = 0;
	Datum	   *d;
	int			n = 0;
	ArrayType  *a;
	ListCell   *lc;
	int			dims[2];
	int			lbs[2] = {1, 1};
	Datum	   *kd;

	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);

		if (!g->active)
			continue;
		len = 1 + 2 * g->p + g->k;
		ngroups++;
	}
	d = palloc(sizeof(Datum) * ngroups * len);
	kd = palloc(sizeof(Datum) * Max(ngroups, 1));
	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);

		if (!g->active)
			continue;
		if (g->key)
			kd[n / len] = CStringGetTextDatum(g->key);
		/* K, or -2 for a binary pass without the Hessian (L-BFGS) */
		d[n++] = Float8GetDatum(run->lbfgs ? -2 : run->nclasses);
		for (int j = 0; j < g->p; j++)
			d[n++] = Float8GetDatum(g->mean[j]);
		for (int j = 0; j < g->p; j++)
			d[n++] = Float8GetDatum(g->invs[j]);
		for (int j = 0; j < g->k; j++)
			d[n++] = Float8GetDatum(g->gamma[j]);
	}
	dims[0] = ngroups;
	dims[1] = len;
	if (run->group_by)
	{
		a = construct_md_array(d, NULL, 2, dims, lbs, FLOAT8OID, 8,
							   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
		*keys = PointerGetDatum(construct_array(kd, ngroups, TEXTOID, -1,
												false, TYPALIGN_INT));
	}
	else
		a = construct_array(d, len, FLOAT8OID, 8, FLOAT8PASSBYVAL,
							TYPALIGN_DOUBLE);
	return PointerGetDatum(a);
}

/* Finds a group by key (NULL for the ungrouped model). */
static GroupFit *
FindGroup(List *groups, const char *key)
{
	ListCell   *lc;

	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);

		if ((g->key == NULL && key == NULL) ||
			(g->key && key && strcmp(g->key, key) == 0))
			return g;
	}
	return NULL;
}

/* Runs Newton passes until every group has converged or stopped. */
static void
FitClassification(TrainRun *run, List *groups)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT %s AS g, streamml.irls_pass(%s, %s, %s, $1, $2, %s) FROM %s WHERE %s%s%s%s%s",
					 run->gexpr, run->yexpr, run->xexpr, run->wexpr_fit,
					 run->gexpr, run->from, run->train_where,
					 run->group_by ? " AND " : "",
					 run->group_by ? run->gexpr : "",
					 run->group_by ? " = ANY ($2)" : "",
					 GroupByClause(run));
	for (;;)
	{
		Oid			types[2] = {FLOAT8ARRAYOID, TEXTARRAYOID};
		Datum		values[2];
		char		nulls[2] = {' ', run->group_by ? ' ' : 'n'};
		bool		any = false;
		ListCell   *lc;

		foreach(lc, groups)
			any |= ((GroupFit *) lfirst(lc))->active;
		if (!any)
			break;
		CHECK_FOR_INTERRUPTS();
		values[1] = (Datum) 0;
		values[0] = BuildPassParams(run, groups, &values[1]);
		RunQuery(run, sql.data, 2, types, values, nulls);
		run->passes++;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			char	   *key = ResultText(r, 1);
			GroupFit   *g = FindGroup(groups, key);
			int			n;
			double	   *out;

			if (g == NULL || !g->active)
				continue;
			out = ResultFloat8Array(r, 2, &n, CurrentMemoryContext);
			if (out == NULL || (int) out[IRLS_OUT_K] != g->k)
				elog(ERROR, "unexpected irls_pass result");
			memcpy(g->last, out, sizeof(g->last));
			GroupNewtonStep(run, g, out[IRLS_OUT_LOSS], out + IRLS_OUT_HEADER,
							out + IRLS_OUT_HEADER + g->k);
			pfree(out);
		}
		/* a result holds a Hessian per group: do not keep one per pass */
		SPI_freetuptable(SPI_tuptable);
	}
}

/*
 * The first Newton step of a binary model, from the moments alone: at γ = 0
 * every probability is 1/2, so the gradient is Σ w (1/2 - y) z and the
 * Hessian Σ w z zᵀ / 4, both functions of the means and co-moments.  When
 * the moments pass kept only the diagonal (L-BFGS with many features), the
 * start is the intercept alone, at the log-odds of the label.
 */
static void
GroupFirstStepFromMoments(TrainRun *run, GroupFit *g, const double *mean,
						  const double *comom)
{
	int			p = g->p;
	int			n1 = p + 1;
	double	   *grad;
	double	   *hess;

	if (!g->moments_full)
	{
		if (mean[0] > 0.0 && mean[0] < 1.0)
			g->gamma[0] = log(mean[0] / (1.0 - mean[0]));
		return;
	}
	grad = palloc0(sizeof(double) * n1);
	hess = palloc0(sizeof(double) * PACKED_SIZE(n1));
	grad[0] = g->w * (0.5 - mean[0]);
	hess[0] = 0.25 * g->w;
	for (int i = 0; i < p; i++)
	{
		CHECK_FOR_INTERRUPTS();
		grad[i + 1] = -GroupStdComomY(g, i) * g->moments_unit[0];
		for (int j = i; j < p; j++)
			hess[PACKED_INDEX(n1, i + 1, j + 1)] = 0.25 * GroupStdComom(g, i, j);
	}
	GroupNewtonStep(run, g, g->w * M_LN2, grad, hess);
	pfree(grad);
	pfree(hess);
}

/*
 * Starts a binary model from linear discriminant analysis, which the moments
 * give for free: with class means μ1, μ0 and the pooled within-class
 * covariance Σ, β = Σ⁻¹(μ1 - μ0) and, on centred features,
 * b0 = log(n1/n0) + βᵀ(μ1 - μ0)(n1 - n0)/(2n).  From the co-moments C of
 * (y, x): μ1 - μ0 = n C_xy / (n1 n0) and n Σ = C_xx - n C_xy C_xyᵀ/(n1 n0).
 *
 * The logistic optimum is usually much nearer to this than to the Newton
 * step from β = 0 (which undershoots large coefficients), so Newton needs
 * one pass fewer for the same accuracy.  The first pass checks it: if the
 * objective there is above the one at β = 0, training goes on from the
 * Newton step at zero instead (GroupNewtonStep).  Returns false when the
 * covariance cannot be factorised; the caller then steps from zero.
 */
static bool
GroupLdaStart(TrainRun *run, GroupFit *g, const double *mean,
			  const double *comom)
{
	int			p = g->p;
	double		w = g->w;
	double		w1 = w * mean[0];
	double		w0 = w - w1;
	double		f;
	double	   *s;
	double	   *delta;
	double	   *cxy;
	double	   *beta;
	double		b0;
	bool		ok;

	if (p == 0 || !(w1 > 0.0) || !(w0 > 0.0) || !g->moments_full)
		return false;
	s = palloc(sizeof(double) * PACKED_SIZE(p));
	delta = palloc(sizeof(double) * p);
	cxy = palloc(sizeof(double) * p);
	beta = palloc(sizeof(double) * p);
	f = w / (w1 * w0);
	for (int i = 0; i < p; i++)
	{
		cxy[i] = GroupStdComomY(g, i) * g->moments_unit[0];
		delta[i] = f * cxy[i];
	}
	for (int i = 0; i < p; i++)
	{
		CHECK_FOR_INTERRUPTS();
		for (int j = i; j < p; j++)
			s[PACKED_INDEX(p, i, j)] =
				(GroupStdComom(g, i, j) - f * cxy[i] * cxy[j]) / w;
	}
	/* constant columns stay at zero */
	for (int i = 0; i < p; i++)
		if (g->invs[i] == 0.0)
		{
			for (int j = 0; j < p; j++)
				s[i <= j ? PACKED_INDEX(p, i, j) : PACKED_INDEX(p, j, i)] = 0.0;
			s[PACKED_INDEX(p, i, i)] = 1.0;
			delta[i] = 0.0;
		}
	ok = CholeskySolve(p, s, delta, beta, NULL);
	if (ok)
	{
		b0 = log(w1 / w0);
		for (int i = 0; i < p; i++)
			b0 += beta[i] * delta[i] * (w1 - w0) / (2.0 * w);
		ok = isfinite(b0);
		for (int i = 0; i < p; i++)
			ok = ok && isfinite(beta[i]);
	}
	if (ok)
	{
		g->gamma[0] = b0;
		for (int i = 0; i < p; i++)
			g->gamma[i + 1] = beta[i];
		/* the objective at β = 0, for the check of the first pass */
		memset(g->prev_gamma, 0, sizeof(double) * g->k);
		g->prev_obj = w * M_LN2;
		g->iterations = 1;
		g->lda_start = true;
	}
	pfree(s);
	pfree(delta);
	pfree(cxy);
	pfree(beta);
	return ok;
}

/*
 * One gradient-only pass of the L-BFGS solver at x (standardised scale):
 * returns the objective (loss and ridge) and its gradient, with the
 * components of fixed coefficients zeroed.
 */
static double
LbfgsEvaluate(TrainRun *run, GroupFit *g, const char *sql, const double *x,
			  double *grad)
{
	Oid			types[2] = {FLOAT8ARRAYOID, TEXTARRAYOID};
	Datum		values[2] = {(Datum) 0, (Datum) 0};
	char		nulls[2] = {' ', 'n'};
	List	   *one = list_make1(g);
	double	   *out;
	int			n;
	double		f;

	memcpy(g->gamma, x, sizeof(double) * g->k);
	values[0] = BuildPassParams(run, one, &values[1]);
	RunQuery(run, sql, 2, types, values, nulls);
	run->passes++;
	g->iterations++;
	CHECK_FOR_INTERRUPTS();
	out = (SPI_processed == 1) ? ResultFloat8Array(0, 2, &n, CurrentMemoryContext) : NULL;
	if (out == NULL || (int) out[IRLS_OUT_K] != g->k || n != IRLS_OUT_HEADER + g->k)
		elog(ERROR, "unexpected irls_pass result");
	SPI_freetuptable(SPI_tuptable);
	memcpy(g->last, out, sizeof(g->last));
	g->loss = out[IRLS_OUT_LOSS];
	f = g->loss;
	for (int i = 0; i < g->k; i++)
	{
		double		pen = GroupPenalty(run, g, i);

		f += 0.5 * pen * x[i] * x[i];
		grad[i] = GroupFixed(g, i) ? 0.0 : out[IRLS_OUT_HEADER + i] + pen * x[i];
	}
	pfree(out);
	return f;
}

/*
 * Fits a binary model by L-BFGS (memory 10, Armijo backtracking): every
 * pass computes only the loss and the gradient, O(p) a row instead of the
 * O(p²) of a Newton pass and with no O(p³) solve, which pays for its more
 * passes when there are many features.  Starts from the LDA start (or
 * zero when that is worse); stops when the largest gradient component is
 * below tol times the sum of weights.  No standard errors.
 */
static void
FitLbfgs(TrainRun *run, GroupFit *g)
{
#define LBFGS_M 10
	int			k = g->k;
	double	   *x = palloc(sizeof(double) * k);
	double	   *xn = palloc(sizeof(double) * k);
	double	   *gc = palloc(sizeof(double) * k);
	double	   *gn = palloc(sizeof(double) * k);
	double	   *dir = palloc(sizeof(double) * k);
	double	   *sv = palloc(sizeof(double) * LBFGS_M * k);
	double	   *yv = palloc(sizeof(double) * LBFGS_M * k);
	double		rho[LBFGS_M];
	double		alpha[LBFGS_M];
	int			stored = 0;
	int			head = 0;
	double		f;
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT NULL::text AS g, streamml.irls_pass(%s, %s, %s, $1, $2, NULL::text) FROM %s WHERE %s",
					 run->yexpr, run->xexpr, run->wexpr_fit, run->from,
					 run->train_where);
	g->iterations = 0;
	g->lda_start = false;
	memcpy(x, g->gamma, sizeof(double) * k);
	f = LbfgsEvaluate(run, g, sql.data, x, gc);
	if (f > g->w * M_LN2)
	{
		/* the start is worse than β = 0 */
		memset(x, 0, sizeof(double) * k);
		f = LbfgsEvaluate(run, g, sql.data, x, gc);
	}
	for (int iter = 0;; iter++)
	{
		double		gmax = 0.0;
		double		gd = 0.0;
		double		t = 1.0;
		double		fn = f;
		int			ls;

		CHECK_FOR_INTERRUPTS();
		for (int i = 0; i < k; i++)
			gmax = Max(gmax, fabs(gc[i]));
		if (gmax <= run->tol * g->w)
		{
			g->converged = true;
			break;
		}
		if (iter >= run->max_iter)
			break;

		/* two-loop recursion: dir = -H gc */
		for (int i = 0; i < k; i++)
			dir[i] = -gc[i];
		for (int c = 0; c < stored; c++)
		{
			int			j = (head - 1 - c + LBFGS_M) % LBFGS_M;
			double		a = 0.0;

			for (int i = 0; i < k; i++)
				a += sv[j * k + i] * dir[i];
			alpha[j] = rho[j] * a;
			for (int i = 0; i < k; i++)
				dir[i] -= alpha[j] * yv[j * k + i];
		}
		{
			/* initial scaling sᵀy/yᵀy, or 4/n (the Hessian at zero) */
			double		h0 = 4.0 / Max(g->w, 1e-300);

			if (stored > 0)
			{
				int			j = (head - 1 + LBFGS_M) % LBFGS_M;
				double		yy = 0.0;

				for (int i = 0; i < k; i++)
					yy += yv[j * k + i] * yv[j * k + i];
				h0 = 1.0 / (rho[j] * yy);
			}
			for (int i = 0; i < k; i++)
				dir[i] *= h0;
		}
		for (int c = stored - 1; c >= 0; c--)
		{
			int			j = (head - 1 - c + LBFGS_M) % LBFGS_M;
			double		b = 0.0;

			for (int i = 0; i < k; i++)
				b += yv[j * k + i] * dir[i];
			b *= rho[j];
			for (int i = 0; i < k; i++)
				dir[i] += sv[j * k + i] * (alpha[j] - b);
		}
		for (int i = 0; i < k; i++)
			gd += gc[i] * dir[i];
		if (!(gd < 0.0))
		{
			/* not a descent direction: forget the history */
			stored = 0;
			for (int i = 0; i < k; i++)
				dir[i] = -gc[i] * 4.0 / Max(g->w, 1e-300);
			gd = 0.0;
			for (int i = 0; i < k; i++)
				gd += gc[i] * dir[i];
		}

		/* backtracking line search (Armijo) */
		for (ls = 0; ls < 30; ls++)
		{
			for (int i = 0; i < k; i++)
				xn[i] = x[i] + t * dir[i];
			fn = LbfgsEvaluate(run, g, sql.data, xn, gn);
			if (fn <= f + 1e-4 * t * gd)
				break;
			t *= 0.5;
		}
		if (ls == 30)
			break;
		{
			double		sy = 0.0;

			for (int i = 0; i < k; i++)
			{
				sv[head * k + i] = xn[i] - x[i];
				yv[head * k + i] = gn[i] - gc[i];
				sy += sv[head * k + i] * yv[head * k + i];
			}
			if (sy > 0.0)
			{
				rho[head] = 1.0 / sy;
				head = (head + 1) % LBFGS_M;
				stored = Min(stored + 1, LBFGS_M);
			}
		}
		memcpy(x, xn, sizeof(double) * k);
		memcpy(gc, gn, sizeof(double) * k);
		f = fn;
	}
	memcpy(g->gamma, x, sizeof(double) * k);
	g->obj = f;
	g->active = false;
	pfree(x);
	pfree(xn);
	pfree(gc);
	pfree(gn);
	pfree(dir);
	pfree(sv);
	pfree(yv);
}

/* In-sample metrics of a classification group, from its last pass. */
static char *
TrainingMetrics(TrainRun *run, GroupFit *g)
{
	StringInfoData b;
	double		n = g->last[IRLS_OUT_COUNT];
	double		wsum = g->last[IRLS_OUT_WEIGHT];

	initStringInfo(&b);
	appendStringInfoChar(&b, '{');
	if (run->kind == MODEL_LINEAR)
	{
		JsonAppendNumber(&b, "r2", g->r2);
		JsonAppendNumber(&b, "rmse", sqrt(g->loss / g->w) * g->yunit);
	}
	else
	{
		double		tp = g->last[IRLS_OUT_TP];
		double		fp = g->last[IRLS_OUT_FP];
		double		fn = g->last[IRLS_OUT_FN];

		JsonAppendNumber(&b, "accuracy", n > 0 ? g->last[IRLS_OUT_CORRECT] / n : NAN);
		JsonAppendNumber(&b, "log_loss", wsum > 0 ? g->loss / wsum : NAN);
		if (run->kind == MODEL_LOGISTIC)
		{
			double		prec = (tp + fp) > 0 ? tp / (tp + fp) : 0.0;
			double		rec = (tp + fn) > 0 ? tp / (tp + fn) : 0.0;

			JsonAppendNumber(&b, "precision", prec);
			JsonAppendNumber(&b, "recall", rec);
			JsonAppendNumber(&b, "f1", (prec + rec) > 0 ? 2 * prec * rec / (prec + rec) : 0.0);
		}
	}
	appendStringInfoString(&b, ", \"on\": \"training\"}");
	return b.data;
}

/* Builds the params argument of streamml.ml_score: [b0, b1..bp] per group. */
static Datum
BuildScoreParams(List *groups, bool deployed, Datum *keys, int *ngroups)
{
	ListCell   *lc;
	int			len = 0;
	int			n = 0;
	int			ng = 0;
	Datum	   *d;
	Datum	   *kd;
	int			dims[2];
	int			lbs[2] = {1, 1};

	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);
		double	   *b = deployed ? g->deployed_coef : g->beta;

		if (b == NULL)
			continue;
		len = g->k;
		ng++;
	}
	d = palloc(sizeof(Datum) * Max(ng * len, 1));
	kd = palloc(sizeof(Datum) * Max(ng, 1));
	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);
		double	   *b = deployed ? g->deployed_coef : g->beta;

		if (b == NULL)
			continue;
		kd[n / Max(len, 1)] = CStringGetTextDatum(g->key ? g->key : "");
		for (int j = 0; j < g->k; j++)
			d[n++] = Float8GetDatum(b[j]);
	}
	*ngroups = ng;
	dims[0] = ng;
	dims[1] = len;
	*keys = PointerGetDatum(construct_array(kd, ng, TEXTOID, -1, false,
											TYPALIGN_INT));
	return PointerGetDatum(construct_md_array(d, NULL, 2, dims, lbs, FLOAT8OID,
											  8, FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));
}

/* Reads a number out of a metrics jsonb result, NaN when absent or null. */
static double
JsonbGetNumber(Jsonb *j, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&j->root, key, strlen(key),
												 NULL);

	if (v == NULL || v->type != jbvNumeric)
		return NAN;
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8,
											  NumericGetDatum(v->val.numeric)));
}

/*
 * Refuses models whose matrices would exceed PASS_MAX_ORDER (64 MiB each,
 * a few of them at a time) before any pass.  Returns whether the moments
 * pass keeps every co-moment: not for L-BFGS beyond the bound, which needs
 * only the standardisation and starts from the intercept.
 */
static bool
CheckModelSize(TrainRun *run)
{
	int			blocks = (run->kind == MODEL_MULTINOMIAL) ? run->nclasses : 1;
	int64		order = (int64) blocks * (run->p + 1);

	if (order <= PASS_MAX_ORDER)
		return true;
	if (run->lbfgs && run->kind == MODEL_LOGISTIC)
		return false;
	if (run->kind == MODEL_LINEAR)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model \"%s\" has too many features for train_linreg",
						run->model),
				 errdetail("%d features need normal equations of order " INT64_FORMAT "; the limit is %d (a matrix of 64 MiB).",
						   run->p, order, PASS_MAX_ORDER),
				 errhint("Select at most %d features, or reduce them before training.",
						 PASS_MAX_ORDER - 1)));
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("model \"%s\" has too many coefficients for solver 'newton'",
					run->model),
			 errdetail("%d features and %d classes need a Newton system of order " INT64_FORMAT "; the limit is %d (a matrix of 64 MiB).",
					   run->p, run->nclasses, order, PASS_MAX_ORDER),
			 run->kind == MODEL_LOGISTIC ?
			 errhint("Use option \"solver\": \"lbfgs\", which needs memory linear in the number of features.") :
			 errhint("Use fewer features or classes.")));
	return false;
}

/*
 * Evaluates the groups on the rows in WHERE clause "where" with the
 * evaluation aggregates; when deployed is true, the coefficients evaluated
 * are the deployed version's (deployed_coef).  Fills metrics
 * (or deployed_score) per group.
 */
static void
EvaluateGroups(TrainRun *run, List *groups, const char *where, bool deployed)
{
	StringInfoData sql;
	Oid			types[2] = {FLOAT8ARRAYOID, TEXTARRAYOID};
	Datum		values[2];
	int			ng;
	const char *gkey = run->group_by ?
		psprintf("coalesce(%s, '')", run->gexpr) : "''::text";
	const char *xexpr = ScoreFeaturesExpr(run);

	values[0] = BuildScoreParams(groups, deployed, &values[1], &ng);
	if (ng == 0)
		return;
	initStringInfo(&sql);
	if (run->kind == MODEL_LINEAR)
		appendStringInfo(&sql,
						 "SELECT %s AS g, streamml.regression_metrics(%s, streamml.ml_score($1, $2, %s, %s, 'linear')) FROM %s WHERE %s%s",
						 gkey, run->yexpr, gkey, xexpr, run->from, where,
						 GroupByClause(run));
	else if (run->kind == MODEL_LOGISTIC)
		appendStringInfo(&sql,
						 "SELECT %s AS g, streamml.classification_metrics((%s)::int::boolean, streamml.ml_score($1, $2, %s, %s, 'logistic')) FROM %s WHERE %s%s",
						 gkey, run->yexpr, gkey, xexpr, run->from, where,
						 GroupByClause(run));
	else
		appendStringInfo(&sql,
						 "SELECT %s AS g, streamml.multiclass_metrics((%s)::int, streamml.ml_score_classes($1, $2, %s, %s)) FROM %s WHERE %s%s",
						 gkey, run->yexpr, gkey, xexpr, run->from, where,
						 GroupByClause(run));
	RunQuery(run, sql.data, 2, types, values, NULL);
	run->passes++;
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *key = ResultText(r, 1);
		char	   *json = ResultText(r, 2);
		GroupFit   *g = FindGroup(groups, run->group_by ? key : NULL);
		Jsonb	   *j;
		double		score;

		if (g == NULL || json == NULL)
			continue;
		j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
		score = JsonbGetNumber(j, run->deploy_metric);
		if (deployed)
			g->deployed_score = score;
		else
		{
			g->metrics = MemoryContextStrdup(run->cxt, json);
			g->holdout_score = score;
			g->holdout_rows = JsonbGetNumber(j, "rows");
		}
	}
}

/* The options each kind of model accepts. */
static const char *const LogregOptions[] = {
	"l1", "l2", "standardize", "max_iter", "tol", "class_weight", "weight",
	"group_by", "test_fraction", "order_by", "warm_start", "deploy",
	"deploy_metric", "solver", NULL
};
static const char *const LinregOptions[] = {
	"l1", "l2", "standardize", "weight", "group_by", "test_fraction", "order_by",
	"deploy", "deploy_metric", NULL
};

/* Parses and checks the options of a training run. */
static void
ParseOptions(TrainRun *run, Jsonb *options)
{
	OptionCheckKeys(options, run->kind == MODEL_LINEAR ? LinregOptions : LogregOptions,
					"training");
	run->l2 = OptionNumber(options, "l2", 0.0, 0.0, 1e12);
	run->l1 = OptionNumber(options, "l1", 0.0, 0.0, 1e12);
	run->standardize = OptionBool(options, "standardize", true);
	run->max_iter = (int) OptionInteger(options, "max_iter", 100, 1, 100000);
	run->tol = OptionNumber(options, "tol", 1e-8, 1e-15, 1.0);
	run->weight = OptionString(options, "weight", NULL);
	run->group_by = OptionString(options, "group_by", NULL);
	run->order_by = OptionString(options, "order_by", NULL);
	run->test_fraction = OptionNumber(options, "test_fraction", 0.0, 0.0, 0.9);
	run->warm_start = OptionBool(options, "warm_start", false);
	run->deploy = OptionString(options, "deploy", "always");
	run->deploy_metric = OptionString(options, "deploy_metric", NULL);
	{
		char	   *solver = OptionString(options, "solver", "newton");

		if (strcmp(solver, "lbfgs") == 0)
			run->lbfgs = true;
		else if (strcmp(solver, "newton") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"solver\" must be 'newton' or 'lbfgs'")));
		if (run->lbfgs && (run->group_by != NULL || run->l1 > 0.0))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("solver 'lbfgs' does not support options \"group_by\" and \"l1\" yet"),
					 errhint("Use solver 'newton'.")));
	}
	if (strcmp(run->deploy, "always") != 0 &&
		strcmp(run->deploy, "if_better") != 0 &&
		strcmp(run->deploy, "never") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"deploy\" must be 'always', 'if_better' or 'never'")));
	if (run->test_fraction > 0.0 && run->order_by == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"test_fraction\" needs option \"order_by\""),
				 errhint("The holdout is the latest rows by order_by.")));
	if (strcmp(run->deploy, "if_better") == 0 && run->test_fraction == 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("deploy 'if_better' needs a holdout"),
				 errhint("Set the options \"test_fraction\" and \"order_by\".")));
	run->class_weight = OptionGet(options, "class_weight");
}

/* Builds the weight expression of the Newton passes, class weights applied. */
static void
ResolveClassWeights(TrainRun *run, List *groups)
{
	JsonbValue *cw = run->class_weight;
	StringInfoData e;
	double	   *weights;

	run->wexpr_fit = run->wexpr;
	if (cw == NULL || cw->type == jbvNull || run->kind == MODEL_LINEAR)
		return;
	weights = palloc(sizeof(double) * run->nclasses);
	if (cw->type == jbvString &&
		cw->val.string.len == 8 && strncmp(cw->val.string.val, "balanced", 8) == 0)
	{
		/* n / (K · n_c), counting rows per class in one more query */
		StringInfoData sql;
		double		total = 0.0;

		initStringInfo(&sql);
		appendStringInfo(&sql,
						 "SELECT (%s)::int, pg_catalog.count(*)::float8 FROM %s WHERE %s AND (%s) IS NOT NULL GROUP BY 1",
						 run->yexpr, run->from, run->train_where, run->yexpr);
		RunQuery(run, sql.data, 0, NULL, NULL, NULL);
		for (int c = 0; c < run->nclasses; c++)
			weights[c] = 0.0;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			int			c = atoi(ResultText(r, 1));

			if (c >= 0 && c < run->nclasses)
			{
				weights[c] = strtod(ResultText(r, 2), NULL);
				total += weights[c];
			}
		}
		for (int c = 0; c < run->nclasses; c++)
			weights[c] = weights[c] > 0 ? total / (run->nclasses * weights[c]) : 0.0;
	}
	else if (cw->type == jbvBinary)
	{
		Jsonb	   *obj = JsonbValueToJsonb(cw);
		JsonbIterator *it;
		JsonbValue	kv;
		JsonbIteratorToken tok;

		if (!JB_ROOT_IS_OBJECT(obj))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"class_weight\" must be 'balanced' or an object of class weights")));
		it = JsonbIteratorInit(&obj->root);

		for (int c = 0; c < run->nclasses; c++)
			weights[c] = 1.0;
		while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
		{
			char	   *key;
			int			c;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(kv.val.string.val, kv.val.string.len);
			for (c = 0; c < run->nclasses; c++)
				if (strcmp(run->classes[c], key) == 0)
					break;
			/* binary labels also accept "0" and "1" as class names */
			if (c == run->nclasses && run->nclasses == 2 &&
				(strcmp(key, "0") == 0 || strcmp(key, "1") == 0))
				c = key[0] - '0';
			if (c == run->nclasses)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"class_weight\" names \"%s\", which is not a class of label \"%s\"",
								key, run->label)));
			tok = JsonbIteratorNext(&it, &kv, true);
			if (kv.type != jbvNumeric)
				weights[c] = -1.0;
			else
				weights[c] = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
																NumericGetDatum(kv.val.numeric)));
			if (!(weights[c] >= 0.0 && weights[c] <= 1e12))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("class weight of \"%s\" must be a number between 0 and 1e12",
								key)));
		}
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"class_weight\" must be 'balanced' or an object of class weights")));

	initStringInfo(&e);
	appendStringInfo(&e, "(%s) * (ARRAY[", run->wexpr);
	for (int c = 0; c < run->nclasses; c++)
		appendStringInfo(&e, "%s%.17g", c > 0 ? "," : "", weights[c]);
	appendStringInfo(&e, "]::float8[])[(%s)::int + 1]", run->yexpr);
	run->wexpr_fit = e.data;
	run->class_weights = weights;
}

/*
 * Loads the deployed version's coefficients (original scale) into each
 * group's deployed_coef for the champion/challenger comparison, and its
 * standardised-scale equivalent into gamma for warm_start.  Returns false
 * when the model has no deployed version with the same features.
 */
static bool
LoadDeployed(TrainRun *run, List *groups, bool for_warm_start)
{
	Oid			types[3] = {TEXTOID, TEXTARRAYOID, TEXTOID};
	Datum		values[3];
	int			ret;
	bool		found = false;

	values[0] = CStringGetTextDatum(run->model);
	values[1] = FeatureNamesArray(run);
	values[2] = CStringGetTextDatum(run->deploy_metric);
	ret = SPI_execute_with_args(
								"SELECT v.group_key, v.intercepts, v.coefficients, v.features = $2, "
								"(v.metrics->>$3)::float8 "
								"FROM streamml.models m JOIN streamml.model_versions v ON v.model = m.name AND v.version = m.deployed_version "
								"WHERE m.name = $1",
								3, types, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the deployed version");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *key = ResultText(r, 1);
		GroupFit   *g = FindGroup(groups, run->group_by ? key : NULL);
		int			ni;
		int			nc;
		double	   *ic;
		double	   *cf;
		char	   *same = ResultText(r, 4);

		if (g == NULL || g->gamma == NULL)
			continue;
		if (same == NULL || strcmp(same, "t") != 0)
		{
			/* other features: only its own holdout score can be compared */
			char	   *stored = ResultText(r, 5);

			if (!for_warm_start && stored != NULL)
				g->deployed_score = strtod(stored, NULL);
			continue;
		}
		ic = ResultFloat8Array(r, 2, &ni, CurrentMemoryContext);
		cf = ResultFloat8Array(r, 3, &nc, CurrentMemoryContext);
		if (ni != g->blocks || nc != g->blocks * g->p)
			continue;
		found = true;
		g->deployed_coef = palloc(sizeof(double) * g->k);
		for (int b = 0; b < g->blocks; b++)
		{
			double	   *dst = g->deployed_coef + b * (g->p + 1);

			dst[0] = ic[b];
			for (int j = 0; j < g->p; j++)
				dst[j + 1] = cf[b * g->p + j];
			if (for_warm_start)
			{
				/* γ_j = β_j s_j, γ0 = b0 + Σ β_j m_j */
				double	   *gm = g->gamma + b * (g->p + 1);

				gm[0] = dst[0];
				for (int j = 0; j < g->p; j++)
				{
					gm[j + 1] = (g->invs[j] != 0.0) ? dst[j + 1] * g->scale[j] : 0.0;
					gm[0] += (g->invs[j] != 0.0) ? dst[j + 1] * g->mean[j] : 0.0;
				}
			}
		}
	}
	return found;
}

/* True when a larger value of the metric is better. */
static bool
MetricHigherIsBetter(const char *metric)
{
	return !(strcmp(metric, "rmse") == 0 || strcmp(metric, "mae") == 0 ||
			 strcmp(metric, "log_loss") == 0);
}

/* Builds a text[] of the classes. */
static Datum
ClassesArray(TrainRun *run)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(run->nclasses, 1));

	for (int i = 0; i < run->nclasses; i++)
		d[i] = CStringGetTextDatum(run->classes[i]);
	return PointerGetDatum(construct_array(d, run->nclasses, TEXTOID, -1,
										   false, TYPALIGN_INT));
}

/* Array of k values of one group in the catalog's shape for that part. */
static Datum
GroupArray(GroupFit *g, const double *v, bool intercepts)
{
	int			n1 = g->p + 1;
	int			n = 0;
	Datum	   *d = palloc(sizeof(Datum) * Max(g->k, 1));

	for (int b = 0; b < g->blocks; b++)
		for (int j = intercepts ? 0 : 1; j < (intercepts ? 1 : n1); j++)
			d[n++] = Float8GetDatum(v ? v[b * n1 + j] : NAN);
	return PointerGetDatum(construct_array(d, n, FLOAT8OID, 8, FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

/* Array of the per-feature standardisation values of a group. */
static Datum
GroupVector(GroupFit *g, const double *v)
{
	return PointerGetDatum(Float8ArrayBuild(v, g->p));
}

/* The names of a group's aliased features as text[], or 0 when none. */
static Datum
AliasedArray(TrainRun *run, GroupFit *g)
{
	Datum	   *names;
	int			n = 0;

	if (g->naliased == 0)
		return (Datum) 0;
	names = palloc(sizeof(Datum) * g->naliased);
	for (int j = 0; j < g->p; j++)
		if (g->aliased[j])
			names[n++] = CStringGetTextDatum(FeatureName(run, j));
	return PointerGetDatum(construct_array(names, n, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

/* True when every group's fit converged and none is separable. */
static bool
RunConverged(List *groups)
{
	ListCell   *lc;

	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);

		if (!g->converged || g->separable)
			return false;
	}
	return true;
}

/*
 * Records the run in the catalog: creates or updates the model, inserts one
 * version row per group, and deploys according to the deploy option.
 * Returns the version number.
 */
static int
RecordRun(TrainRun *run, List *groups, Jsonb *options, bool *deployed)
{
	Oid			t1[10] = {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID,
	TEXTOID, JSONBOID, TEXTOID, TEXTARRAYOID, OIDOID};
	Datum		v1[10];
	char		n1[10] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	const char *kind = run->kind == MODEL_LINEAR ? "linear" :
		run->kind == MODEL_LOGISTIC ? "logistic" : "multinomial";
	int			version;
	bool		isnull;
	ListCell   *lc;
	Datum	   *fc = palloc(sizeof(Datum) * run->nfeaturecols);

	for (int i = 0; i < run->nfeaturecols; i++)
		fc[i] = CStringGetTextDatum(run->featurecols[i]);

	v1[0] = CStringGetTextDatum(run->model);
	v1[1] = CStringGetTextDatum(kind);
	v1[2] = CStringGetTextDatum(run->label);
	v1[3] = FeatureNamesArray(run);
	v1[4] = PointerGetDatum(construct_array(fc, run->nfeaturecols, TEXTOID, -1,
											false, TYPALIGN_INT));
	v1[5] = CStringGetTextDatum(run->source);
	v1[6] = JsonbPGetDatum(options);
	v1[7] = run->group_by ? CStringGetTextDatum(run->group_by) : (Datum) 0;
	n1[7] = run->group_by ? ' ' : 'n';
	v1[8] = run->nclasses > 0 ? ClassesArray(run) : (Datum) 0;
	n1[8] = run->nclasses > 0 ? ' ' : 'n';
	v1[9] = ObjectIdGetDatum(GetUserId());

	/* a new model is the caller's; an existing one must be */
	if (CatalogExecute("INSERT INTO streamml.models AS m (name, kind, label, features, feature_columns, source, options, group_by, classes, owner) "
					   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
					   "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, label = excluded.label, "
					   "features = excluded.features, feature_columns = excluded.feature_columns, "
					   "source = excluded.source, options = excluded.options, group_by = excluded.group_by, "
					   "classes = excluded.classes "
					   "WHERE pg_catalog.pg_has_role($10, m.owner, 'USAGE') RETURNING 1",
					   10, t1, v1, n1, SPI_OK_INSERT_RETURNING) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("model \"%s\" already exists", run->model),
				 errdetail("Another role owns it; only its owner (or a member of the owning role) can train it.")));

	/*
	 * The upsert holds the model's row lock, so a concurrent run of the same
	 * model has committed by now: its versions are seen by this statement's
	 * new snapshot (READ COMMITTED), and the numbers do not collide.
	 */
	CatalogExecute("SELECT coalesce(pg_catalog.max(version), 0) OPERATOR(pg_catalog.+) 1 "
				   "FROM streamml.model_versions WHERE model OPERATOR(pg_catalog.=) $1",
				   1, t1, v1, n1, SPI_OK_SELECT);
	version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));

	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);
		Oid			t2[22] = {TEXTOID, INT4OID, TEXTOID, FLOAT8ARRAYOID,
			FLOAT8ARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID,
			FLOAT8ARRAYOID, INT8OID, INT8OID, INT4OID, BOOLOID, JSONBOID,
			FLOAT8OID, TEXTOID, TEXTARRAYOID, FLOAT8OID, FLOAT8OID, TEXTOID,
		FLOAT8OID, TEXTARRAYOID};
		Datum		v2[22];
		char		n2[22];
		double	   *ints = g->beta;

		if (g->beta == NULL)
			continue;
		memset(n2, ' ', sizeof(n2));
		v2[0] = CStringGetTextDatum(run->model);
		v2[1] = Int32GetDatum(version);
		v2[2] = g->key ? CStringGetTextDatum(g->key) : (Datum) 0;
		n2[2] = g->key ? ' ' : 'n';
		v2[3] = GroupArray(g, ints, true);
		v2[4] = GroupArray(g, g->beta, false);
		v2[5] = PointerGetDatum(Float8ArrayBuild(g->se, g->k));
		v2[6] = PointerGetDatum(Float8ArrayBuild(g->pvalue, g->k));
		v2[7] = GroupVector(g, g->mean);
		v2[8] = GroupVector(g, g->scale);
		v2[9] = Int64GetDatum(g->count);
		v2[10] = Int64GetDatum(g->skipped + run->extra_skipped);
		v2[11] = Int32GetDatum(g->iterations);
		v2[12] = BoolGetDatum(g->converged);
		v2[13] = DirectFunctionCall1(jsonb_in, CStringGetDatum(g->metrics));
		v2[14] = Float8GetDatum(run->duration);
		v2[15] = run->cutoff ? CStringGetTextDatum(run->cutoff) : (Datum) 0;
		n2[15] = run->cutoff ? ' ' : 'n';
		v2[16] = FeatureNamesArray(run);
		v2[17] = Float8GetDatum(run->l2);
		v2[18] = Float8GetDatum(g->df);
		n2[18] = run->kind == MODEL_LINEAR ? ' ' : 'n';
		v2[19] = run->data_max ? CStringGetTextDatum(run->data_max) : (Datum) 0;
		n2[19] = run->data_max ? ' ' : 'n';
		v2[20] = Float8GetDatum(run->l1);
		v2[21] = AliasedArray(run, g);
		n2[21] = g->naliased > 0 ? ' ' : 'n';
		CatalogExecute("INSERT INTO streamml.model_versions (model, version, group_key, "
					   "intercepts, coefficients, std_errors, p_values, means, scales, "
					   "rows_used, rows_skipped, iterations, converged, metrics, duration, "
					   "data_cutoff, features, l2, df, data_max, l1, aliased) "
					   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
					   "pg_catalog.make_interval(secs => $15), $16, $17, $18, $19, $20, $21, $22)",
					   22, t2, v2, n2, SPI_OK_INSERT);
	}

	/* deploy */
	*deployed = false;
	if (!RunConverged(groups) && OptionGet(options, "deploy") == NULL)
	{
		/* the default "always" never deploys a run that did not converge */
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("version %d of model \"%s\" is not deployed: training did not converge",
						version, run->model),
				 errdetail("A model that did not converge can have arbitrarily large coefficients and standard errors."),
				 errhint("Deploy it with streamml.deploy or option \"deploy\": \"always\" if you want it anyway.")));
	}
	else if (strcmp(run->deploy, "always") == 0)
		*deployed = true;
	else if (strcmp(run->deploy, "if_better") == 0)
	{
		double		new_score = 0.0;
		double		old_score = 0.0;
		double		rows = 0.0;
		bool		have_old = false;

		foreach(lc, groups)
		{
			GroupFit   *g = lfirst(lc);

			if (!isfinite(g->holdout_score) || !(g->holdout_rows > 0))
				continue;
			rows += g->holdout_rows;
			new_score += g->holdout_rows * g->holdout_score;
			if (isfinite(g->deployed_score))
			{
				have_old = true;
				old_score += g->holdout_rows * g->deployed_score;
			}
		}
		if (!have_old)
			*deployed = true;
		else if (MetricHigherIsBetter(run->deploy_metric))
			*deployed = new_score > old_score;
		else
			*deployed = new_score < old_score;
		if (!*deployed)
			ereport(NOTICE,
					(errmsg("version %d of model \"%s\" is not deployed: its holdout %s %g is not better than the deployed version's %g",
							version, run->model, run->deploy_metric,
							rows > 0 ? new_score / rows : NAN,
							rows > 0 ? old_score / rows : NAN)));
	}
	if (*deployed)
		ModelDeploy(run->model, version);
	return version;
}

/* Checks a model name: not empty, not too long for the predict cache. */
static void
CheckModelName(const char *model)
{
	if (model[0] == '\0' || strlen(model) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("model name must have between 1 and %d bytes",
						NAMEDATALEN - 1)));
}

/* Errors unless deploy_metric is a metric the holdout reports for this kind. */
static void
CheckDeployMetric(TrainRun *run)
{
	static const char *const linear[] = {"rmse", "mae", "r2", NULL};
	static const char *const logistic[] = {"roc_auc", "pr_auc", "accuracy",
	"precision", "recall", "f1", "log_loss", NULL};
	static const char *const multinomial[] = {"accuracy", "log_loss", NULL};
	const char *const *known = run->kind == MODEL_LINEAR ? linear :
		run->kind == MODEL_LOGISTIC ? logistic : multinomial;
	StringInfoData list;

	initStringInfo(&list);
	for (int i = 0; known[i] != NULL; i++)
	{
		if (strcmp(known[i], run->deploy_metric) == 0)
			return;
		appendStringInfo(&list, "%s%s", i > 0 ? ", " : "", known[i]);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"deploy_metric\" names an unknown metric: \"%s\"",
					run->deploy_metric),
			 errhint("The metrics of this kind of model are: %s.", list.data)));
}

/*
 * Refuses, before any work, to train a model of a name another role owns
 * (RecordRun checks again, atomically, when it records the run).
 */
static void
CheckTrainOwner(const char *model)
{
	Datum		arg = CStringGetTextDatum(model);
	bool		isnull;
	Oid			owner;

	CatalogExecute("SELECT m.owner FROM streamml.models m "
				   "WHERE m.name OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return;
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("model \"%s\" already exists", model),
				 errdetail("Another role owns it; only its owner (or a member of the owning role) can train it.")));
}

/* Error context of a training run: "training model "m"". */
static void
TrainErrorContext(void *arg)
{
	errcontext("training model \"%s\"", (const char *) arg);
}

/*
 * The shared body of train_logreg and train_linreg: one row per group in
 * the result (model, version, group_key, rows_used, rows_skipped,
 * iterations, converged, deployed, metrics).
 */
static Datum
TrainModel(FunctionCallInfo fcinfo, ModelKind kind, text *model, text *source,
		   text *label, ArrayType *fa, Jsonb *options)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TrainRun   *run = palloc0(sizeof(TrainRun));
	StringInfoData sql;
	List	   *groups = NIL;
	ListCell   *lc;
	instr_time	start;
	instr_time	duration;
	int			version;
	bool		deployed;
	ErrorContextCallback errcallback;

	INSTR_TIME_SET_CURRENT(start);
	InitMaterializedSRF(fcinfo, 0);

	run->cxt = CurrentMemoryContext;
	run->kind = kind;
	run->model = text_to_cstring(model);
	run->source = text_to_cstring(source);
	run->label = text_to_cstring(label);
	run->p = -1;
	CheckModelName(run->model);
	/* every error of the run names the model it concerns */
	errcallback.callback = TrainErrorContext;
	errcallback.arg = run->model;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	SetFeatureColumns(run, fa);
	ParseOptions(run, options);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CheckTrainOwner(run->model);
	/* one snapshot, the calling statement's, for every pass of the run */
	run->snapshot = RegisterSnapshot(GetActiveSnapshot());

	ResolveSource(run);
	if (run->kind == MODEL_LINEAR && run->deploy_metric == NULL)
		run->deploy_metric = "rmse";
	else if (run->deploy_metric == NULL)
		run->deploy_metric = run->kind == MODEL_LOGISTIC ? "roc_auc" : "accuracy";
	CheckDeployMetric(run);
	ResolveSplit(run);

	/* pass 1: moments, of the expected number of features */
	ResolveFeatureLength(run);
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT %s AS g, streamml.ml_moments(%s, %s, %s, %d, %s) FROM %s WHERE %s%s",
					 run->gexpr, run->yexpr, run->xexpr, run->wexpr, run->p,
					 CheckModelSize(run) ? "true" : "false", run->from,
					 run->train_where,
					 run->group_by ? " GROUP BY 1 ORDER BY 1" : "");
	RunQuery(run, sql.data, 0, NULL, NULL, NULL);
	run->passes++;
	{
		SPITupleTable *tt = SPI_tuptable;
		uint64		nrows = SPI_processed;

		for (uint64 r = 0; r < nrows; r++)
		{
			char	   *key;
			int			len;
			double	   *m;
			GroupFit   *g;

			SPI_tuptable = tt;
			key = ResultText(r, 1);
			m = ResultFloat8Array(r, 2, &len, run->cxt);
			if (m == NULL)
				continue;
			g = GroupFromMoments(run, key ? pstrdup(key) : NULL, m, len);
			if (g->gamma == NULL)
			{
				run->extra_skipped += g->skipped;
				continue;
			}
			groups = lappend(groups, g);
			if (run->kind == MODEL_LINEAR)
				GroupFitLinear(run, g, g->moments_mean, g->moments_comom);
			else if (run->kind == MODEL_LOGISTIC)
			{
				double		ymean = g->moments_mean[0];

				if (ymean <= 0.0 || ymean >= 1.0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("label column \"%s\" has a single class%s%s",
									run->label,
									g->key ? " in group " : "",
									g->key ? quote_literal_cstr(g->key) : ""),
							 errdetail("Classification needs both classes in the training data.")));
			}
		}
		SPI_freetuptable(tt);
	}
	NoticeMalformedRows(run, run->malformed);
	if (groups == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no usable rows in \"%s\"", run->source),
				 errdetail("Rows whose label, weight or features are null or not finite are skipped.")));

	if (run->kind != MODEL_LINEAR)
	{
		ResolveClassWeights(run, groups);
		if (run->warm_start && LoadDeployed(run, groups, true))
			;
		else if (run->kind == MODEL_LOGISTIC && run->class_weights == NULL)
		{
			/* the moments give the first Newton step for free */
			foreach(lc, groups)
			{
				GroupFit   *g = lfirst(lc);

				if (!GroupLdaStart(run, g, g->moments_mean, g->moments_comom))
					GroupFirstStepFromMoments(run, g, g->moments_mean,
											  g->moments_comom);
			}
		}
		if (run->lbfgs && run->kind != MODEL_LOGISTIC)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("solver 'lbfgs' is for binary models only"),
					 errhint("Use solver 'newton'.")));
		if (run->lbfgs)
			FitLbfgs(run, linitial(groups));
		else
			FitClassification(run, groups);
	}

	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);

		GroupToOriginalScale(run, g, run->kind == MODEL_LINEAR);
		if (g->naliased > 0)
		{
			StringInfoData names;

			initStringInfo(&names);
			for (int j = 0; j < g->p; j++)
				if (g->aliased[j])
					appendStringInfo(&names, "%s%s", names.len > 0 ? ", " : "",
									 quote_identifier(FeatureName(run, j)));
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("model \"%s\"%s%s has aliased features: %s",
							run->model, g->key ? " in group " : "",
							g->key ? quote_literal_cstr(g->key) : "", names.data),
					 errdetail("Each is an exact linear combination of the features before it, so its coefficient is not identifiable; it is held at 0 with no standard error (R's lm reports NA)."),
					 errhint("Drop the aliased features; model_versions.aliased lists them.")));
		}
		if (g->separable)
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("the classes of model \"%s\"%s%s are perfectly separable",
							run->model, g->key ? " in group " : "",
							g->key ? quote_literal_cstr(g->key) : ""),
					 errdetail("The maximum likelihood coefficients are infinite; the reported ones are where training stopped."),
					 errhint("Set option \"l2\" to a positive value.")));
		else if (!g->converged && run->kind != MODEL_LINEAR)
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("model \"%s\"%s%s did not converge in %d iterations",
							run->model, g->key ? " in group " : "",
							g->key ? quote_literal_cstr(g->key) : "",
							g->iterations),
					 errhint("Raise option \"max_iter\" or \"tol\", or set option \"l2\".")));
		g->metrics = NULL;
		g->holdout_score = NAN;
		g->deployed_score = NAN;
	}

	if (run->test_where)
	{
		EvaluateGroups(run, groups, run->test_where, false);
		if (strcmp(run->deploy, "if_better") == 0 &&
			LoadDeployed(run, groups, false))
			EvaluateGroups(run, groups, run->test_where, true);
	}
	else if (run->kind == MODEL_LINEAR)
		EvaluateGroups(run, groups, run->train_where, false);
	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);

		if (g->metrics == NULL)
			g->metrics = TrainingMetrics(run, g);
		else if (!run->test_where)
		{
			/* in-sample metrics from the evaluation pass */
			g->metrics[strlen(g->metrics) - 1] = '\0';
			g->metrics = psprintf("%s, \"on\": \"training\"}", g->metrics);
		}
		else
		{
			g->metrics[strlen(g->metrics) - 1] = '\0';
			g->metrics = psprintf("%s, \"on\": \"holdout\"}", g->metrics);
		}
	}

	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	run->duration = INSTR_TIME_GET_DOUBLE(duration);
	version = RecordRun(run, groups, options, &deployed);

	foreach(lc, groups)
	{
		GroupFit   *g = lfirst(lc);
		Datum		values[9];
		bool		nulls[9] = {false};

		values[0] = CStringGetTextDatum(run->model);
		values[1] = Int32GetDatum(version);
		values[2] = g->key ? CStringGetTextDatum(g->key) : (Datum) 0;
		nulls[2] = (g->key == NULL);
		values[3] = Int64GetDatum(g->count);
		values[4] = Int64GetDatum(g->skipped + run->extra_skipped);
		values[5] = Int32GetDatum(g->iterations);
		values[6] = BoolGetDatum(g->converged);
		values[7] = BoolGetDatum(deployed);
		values[8] = DirectFunctionCall1(jsonb_in, CStringGetDatum(g->metrics));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	UnregisterSnapshot(run->snapshot);
	SPI_finish();
	error_context_stack = errcallback.previous;
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(train_logreg);

/* SQL streamml.train_logreg(model, source, label, features, options). */
Datum
train_logreg(PG_FUNCTION_ARGS)
{
	return TrainModel(fcinfo, MODEL_LOGISTIC, PG_GETARG_TEXT_PP(0),
					  PG_GETARG_TEXT_PP(1), PG_GETARG_TEXT_PP(2),
					  PG_GETARG_ARRAYTYPE_P(3), PG_GETARG_JSONB_P(4));
}

PG_FUNCTION_INFO_V1(train_linreg);

/* SQL streamml.train_linreg(model, source, target, features, options). */
Datum
train_linreg(PG_FUNCTION_ARGS)
{
	return TrainModel(fcinfo, MODEL_LINEAR, PG_GETARG_TEXT_PP(0),
					  PG_GETARG_TEXT_PP(1), PG_GETARG_TEXT_PP(2),
					  PG_GETARG_ARRAYTYPE_P(3), PG_GETARG_JSONB_P(4));
}

/* The options streamml.retrain accepts. */
static const char *const RetrainOptions[] = {"min_new_rows", NULL};

/* A retrain run as the model's owner (RetrainAsOwner). */
typedef struct RetrainArgs
{
	FunctionCallInfo fcinfo;
	text	   *model;
	double		min_new;
	ModelKind	kind;
	text	   *source;
	text	   *label;
	ArrayType  *features;
	Jsonb	   *spec;
	char	   *order_by;
	char	   *last;
	bool		trained;
} RetrainArgs;

/*
 * The body of retrain, run as the model's owner: counts the new rows for
 * min_new_rows, then trains from the stored spec.
 */
static void
RetrainAsOwner(void *arg)
{
	RetrainArgs *a = arg;
	char	   *name = text_to_cstring(a->model);

	if (a->min_new >= 0)
	{
		StringInfoData sql;
		int64		fresh;
		bool		isnull;

		if (a->order_by == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"min_new_rows\" needs a model trained with option \"order_by\""),
					 errdetail("New rows are those whose order_by value is above the newest one of the last run of model \"%s\".",
							   name)));
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		initStringInfo(&sql);
		appendStringInfo(&sql, "SELECT pg_catalog.count(*) FROM %s",
						 SourceFromItem(text_to_cstring(a->source)));
		if (a->last != NULL)
			appendStringInfo(&sql, " WHERE s.%s > %s",
							 quote_identifier(a->order_by),
							 quote_literal_cstr(a->last));
		if (SPI_execute(sql.data, true, 0) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not count the new rows of model \"%s\"", name);
		fresh = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
		if (fresh < a->min_new)
		{
			ereport(NOTICE,
					(errmsg("model \"%s\" is not retrained: " INT64_FORMAT " new rows since its last run, fewer than min_new_rows %.0f",
							name, fresh, a->min_new)));
			InitMaterializedSRF(a->fcinfo, 0);
			return;
		}
	}
	TrainModel(a->fcinfo, a->kind, a->model, a->source, a->label,
			   a->features, a->spec);
	a->trained = true;
}

PG_FUNCTION_INFO_V1(retrain);

/*
 * SQL streamml.retrain(model, options): trains the model again from its
 * stored spec (source, label, features, options), returning the rows of
 * train_logreg or train_linreg.  With option min_new_rows, only when at
 * least that many rows newer than the last run's newest (by the model's
 * order_by) have arrived; otherwise it returns no row and says why in a
 * NOTICE.  Scheduled by streamml.schedule_training through pg_cron.
 *
 * The stored source is SQL its owner wrote: it runs as the owner, in a
 * security-restricted operation, whoever calls retrain (a superuser,
 * pg_cron), so that it can never act with the caller's privileges.
 */
Datum
retrain(PG_FUNCTION_ARGS)
{
	RetrainArgs a;
	Jsonb	   *options = PG_GETARG_JSONB_P(1);
	char	   *name;
	Datum		arg;
	Datum		spec_datums[4];
	MemoryContext cxt = CurrentMemoryContext;
	Oid			owner;
	bool		isnull;

	memset(&a, 0, sizeof(a));
	a.fcinfo = fcinfo;
	a.model = PG_GETARG_TEXT_PP(0);
	name = text_to_cstring(a.model);
	OptionCheckKeys(options, RetrainOptions, "retrain");
	a.min_new = (double) OptionInteger(options, "min_new_rows", -1, 0,
									   INT64CONST(1000000000000000));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	owner = ModelCheckOwner(name, "retrain");
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the owner of model \"%s\" no longer exists", name),
				 errhint("Train the model again with streamml.train_logreg or streamml.train_linreg.")));
	arg = PointerGetDatum(a.model);
	CatalogExecute("SELECT m.kind, m.source, m.label, m.feature_columns, m.options, "
				   "m.options->>'order_by', "
				   "(SELECT v.data_max FROM streamml.model_versions v "
				   " WHERE v.model OPERATOR(pg_catalog.=) m.name "
				   " ORDER BY v.version DESC, v.data_max DESC NULLS LAST LIMIT 1) "
				   "FROM streamml.models m WHERE m.name OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	a.kind = strcmp(ResultText(0, 1), "linear") == 0 ? MODEL_LINEAR : MODEL_LOGISTIC;
	for (int i = 0; i < 4; i++)
		spec_datums[i] = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc,
														 i + 2, &isnull),
										   false, -1);
	{
		char	   *order_by = ResultText(0, 6);
		char	   *last = ResultText(0, 7);

		MemoryContextSwitchTo(cxt);
		a.order_by = order_by ? pstrdup(order_by) : NULL;
		a.last = last ? pstrdup(last) : NULL;
	}
	SPI_finish();
	MemoryContextSwitchTo(cxt);
	a.source = DatumGetTextPP(spec_datums[0]);
	a.label = DatumGetTextPP(spec_datums[1]);
	a.features = DatumGetArrayTypeP(spec_datums[2]);
	a.spec = DatumGetJsonbP(spec_datums[3]);
	RunAsOwner(owner, RetrainAsOwner, &a);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(ml_pg_cron_database);

/*
 * SQL streamml.ml_pg_cron_database(): the database pg_cron runs jobs from
 * (cron.database_name), NULL when pg_cron is not loaded.  pg_cron defines
 * that setting when, and only when, it is loaded (it refuses to load
 * outside shared_preload_libraries); a value set in postgresql.conf without
 * it is only a placeholder.  Read here because the setting is hidden from
 * users without pg_read_all_settings.
 */
Datum
ml_pg_cron_database(PG_FUNCTION_ARGS)
{
	const char *db = GetConfigOption("cron.database_name", true, false);

	if (db == NULL ||
		(GetConfigOptionFlags("cron.database_name", true) & GUC_CUSTOM_PLACEHOLDER))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(db));
}
