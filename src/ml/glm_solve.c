/*
 * glm_solve.c
 *		The solvers of the generalised linear models: a group's setup from
 *		the moments pass, Newton/IRLS, coordinate descent, the linear fit
 *		and L-BFGS, and the way back to the original scale.
 *
 * Every model is fitted on the standardised scale, per group (GroupFit):
 *
 *	1. streamml.ml_moments gives means and co-moments of label and features.
 *	   They give the standardisation, the aliased features, the whole
 *	   solution of a linear model (normal equations on centred, scaled data;
 *	   coordinate descent with l1) and the start of a logistic one: the LDA
 *	   coefficients, or the first Newton step (at β = 0 every weight is 1/4,
 *	   so the Hessian is the scaled covariance).
 *	2. streamml.irls_pass, once per Newton step, at the current coefficients
 *	   of every group, until the step is below tol (quadratic convergence:
 *	   usually 4 to 7 passes), with step halving when the objective rises;
 *	   a proximal Newton step (coordinate descent on the quadratic model)
 *	   with l1.  Solver 'lbfgs' asks the same aggregate for the gradient
 *	   alone, O(p) a row instead of O(p²).
 *
 * The Newton systems are solved in C; coefficients, standard errors and
 * p-values are then reported on the original scale.  The passes are built
 * from the expressions of train_source.c and run under the run's snapshot.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "ml/ml.h"
#include "ml/passes.h"
#include "ml/train.h"

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
 * Creates a group from one row of the moments pass (layout in passes.h),
 * counting its rows with a malformed feature array in the run.
 */
GroupFit *
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
 * The first Newton step of a binary model, from the moments alone: at γ = 0
 * every probability is 1/2, so the gradient is Σ w (1/2 - y) z and the
 * Hessian Σ w z zᵀ / 4, both functions of the means and co-moments.  When
 * the moments pass kept only the diagonal (L-BFGS with many features), the
 * start is the intercept alone, at the log-odds of the label.
 */
void
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
bool
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
 * Fits a linear model from its moments: the ridge normal equations on the
 * centred, scaled features; σ² from the residual sum of squares.  The
 * label stays in its unit (the moments pass's power of two) until the
 * coefficients are known, so that a label near 1e200 squares without
 * overflow: the system, the residual sum of squares and the covariance are
 * in that unit (squared), and the loss and the covariance stay so (yunit).
 */
void
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
GroupFit *
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
void
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
void
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

/*
 * Transforms coefficients and covariance from the standardised scale to the
 * original one: β_j = γ_j / s_j and b0 = γ0 - Σ γ_j m_j / s_j, per block.
 * Errors when a coefficient does not fit in a float8 (a target near 1e200
 * explained by a feature near 1e-200, or the reverse): never a zero slope
 * for a feature that varies.
 */
void
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
 * Refuses models whose matrices would exceed PASS_MAX_ORDER (64 MiB each,
 * a few of them at a time) before any pass.  Returns whether the moments
 * pass keeps every co-moment: not for L-BFGS beyond the bound, which needs
 * only the standardisation and starts from the intercept.
 */
bool
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
