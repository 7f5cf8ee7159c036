/*
 * linalg.c
 *		Small dense linear algebra and distribution functions for training.
 *
 * The systems solved here are the Newton (or normal) equations of one model:
 * order p+1 for p features, symmetric positive (semi)definite, stored as a
 * packed upper triangle.  Cholesky is the right tool; when a pivot collapses
 * (collinear columns) a tiny ridge proportional to the largest diagonal entry
 * is added and the factorisation retried, which picks the minimum-norm-like
 * solution among the equivalent ones instead of failing.
 *
 * With thousands of features a factorisation or an inverse takes seconds to
 * minutes, so the loops check for interrupts (statement_timeout, cancel)
 * once per row or column: each step is O(n²) at most.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

#include "ml/ml.h"

/* Factorises a packed symmetric matrix in place (row-major upper U). */
static bool
CholeskyFactor(int n, double *u, double jitter)
{
	for (int i = 0; i < n; i++)
		u[PACKED_INDEX(n, i, i)] += jitter;

	for (int i = 0; i < n; i++)
	{
		double		d = u[PACKED_INDEX(n, i, i)];

		CHECK_FOR_INTERRUPTS();
		for (int k = 0; k < i; k++)
		{
			double		v = u[PACKED_INDEX(n, k, i)];

			d -= v * v;
		}
		if (!(d > 0.0) || !isfinite(d))
			return false;
		d = sqrt(d);
		u[PACKED_INDEX(n, i, i)] = d;
		for (int j = i + 1; j < n; j++)
		{
			double		s = u[PACKED_INDEX(n, i, j)];

			for (int k = 0; k < i; k++)
				s -= u[PACKED_INDEX(n, k, i)] * u[PACKED_INDEX(n, k, j)];
			u[PACKED_INDEX(n, i, j)] = s / d;
		}
	}
	return true;
}

/* Solves UᵀU x = b given the factor U. */
static void
CholeskyBacksolve(int n, const double *u, const double *b, double *x)
{
	for (int i = 0; i < n; i++)
	{
		double		s = b[i];

		for (int k = 0; k < i; k++)
			s -= u[PACKED_INDEX(n, k, i)] * x[k];
		x[i] = s / u[PACKED_INDEX(n, i, i)];
	}
	for (int i = n - 1; i >= 0; i--)
	{
		double		s = x[i];

		for (int k = i + 1; k < n; k++)
			s -= u[PACKED_INDEX(n, i, k)] * x[k];
		x[i] = s / u[PACKED_INDEX(n, i, i)];
	}
}

/*
 * Solves A x = b for a packed symmetric A and, when inverse is not NULL, also
 * returns A⁻¹ as a full n×n row-major matrix.  Returns false when A could not
 * be factorised even with a ridge.
 */
bool
CholeskySolve(int n, const double *packed, const double *b, double *x,
			  double *inverse)
{
	int			size = PACKED_SIZE(n);
	double	   *u = palloc(sizeof(double) * size);
	double		maxdiag = 0.0;
	double		jitter = 0.0;
	bool		ok = false;

	for (int i = 0; i < n; i++)
		maxdiag = Max(maxdiag, fabs(packed[PACKED_INDEX(n, i, i)]));
	if (maxdiag == 0.0)
		maxdiag = 1.0;

	for (int attempt = 0; attempt < 12 && !ok; attempt++)
	{
		memcpy(u, packed, sizeof(double) * size);
		/* Reject pivots that lost all their digits to cancellation. */
		ok = CholeskyFactor(n, u, jitter);
		if (ok)
		{
			for (int i = 0; i < n; i++)
			{
				double		d = u[PACKED_INDEX(n, i, i)];

				if (d * d < maxdiag * 1e-13)
					ok = false;
			}
		}
		jitter = (jitter == 0.0) ? maxdiag * 1e-12 : jitter * 10.0;
	}
	if (!ok)
	{
		pfree(u);
		return false;
	}

	if (b != NULL)
		CholeskyBacksolve(n, u, b, x);
	if (inverse != NULL)
	{
		double	   *e = palloc0(sizeof(double) * n);
		double	   *col = palloc(sizeof(double) * n);

		for (int j = 0; j < n; j++)
		{
			CHECK_FOR_INTERRUPTS();
			e[j] = 1.0;
			CholeskyBacksolve(n, u, e, col);
			e[j] = 0.0;
			for (int i = 0; i < n; i++)
				inverse[i * n + j] = col[i];
		}
		pfree(e);
		pfree(col);
	}
	pfree(u);
	return true;
}

/* Two-sided p-value of a standard normal statistic. */
double
NormalTwoSidedP(double z)
{
	return erfc(fabs(z) / M_SQRT2);
}

/*
 * Continued fraction of the regularised incomplete beta function, evaluated
 * with the modified Lentz method; converges fast for x < (a+1)/(a+b+2).
 */
static double
BetaContinuedFraction(double a, double b, double x)
{
	const double tiny = 1e-300;
	double		c = 1.0;
	double		d = 1.0 - (a + b) * x / (a + 1.0);
	double		f;

	if (fabs(d) < tiny)
		d = tiny;
	d = 1.0 / d;
	f = d;
	for (int m = 1; m <= 10000; m++)
	{
		double		num;
		double		delta;

		/* even step */
		num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
		d = 1.0 + num * d;
		d = (fabs(d) < tiny) ? 1.0 / tiny : 1.0 / d;
		c = 1.0 + num / c;
		if (fabs(c) < tiny)
			c = tiny;
		f *= c * d;
		/* odd step */
		num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
		d = 1.0 + num * d;
		d = (fabs(d) < tiny) ? 1.0 / tiny : 1.0 / d;
		c = 1.0 + num / c;
		if (fabs(c) < tiny)
			c = tiny;
		delta = c * d;
		f *= delta;
		if (fabs(delta - 1.0) < 1e-15)
			break;
	}
	return f;
}

/* Regularised incomplete beta function I_x(a, b). */
static double
IncompleteBeta(double a, double b, double x)
{
	double		front;

	if (x <= 0.0)
		return 0.0;
	if (x >= 1.0)
		return 1.0;
	front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) +
				a * log(x) + b * log1p(-x));
	if (x < (a + 1.0) / (a + b + 2.0))
		return front * BetaContinuedFraction(a, b, x) / a;
	return 1.0 - front * BetaContinuedFraction(b, a, 1.0 - x) / b;
}

/* Two-sided p-value of a Student t statistic with df degrees of freedom. */
double
StudentTwoSidedP(double t, double df)
{
	if (!(df > 0.0) || !isfinite(t))
		return isfinite(t) ? NAN : 0.0;
	return IncompleteBeta(df / 2.0, 0.5, df / (df + t * t));
}

/* The logistic function, without overflow for large |eta|. */
double
Sigmoid(double eta)
{
	if (eta >= 0.0)
		return 1.0 / (1.0 + exp(-eta));
	else
	{
		double		e = exp(eta);

		return e / (1.0 + e);
	}
}

/*
 * Returns the data of a one-dimensional float8[] without NULLs, or errors
 * naming what it is.  The result points into the array: no copy.
 */
double *
Float8ArrayData(ArrayType *a, int *n, const char *what)
{
	if (ARR_ELEMTYPE(a) != FLOAT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s must be a float8 array", what)));
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	if (ARR_HASNULL(a) && array_contains_nulls(a))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain nulls", what)));
	*n = (ARR_NDIM(a) == 0) ? 0 : ARR_DIMS(a)[0];
	return (double *) ARR_DATA_PTR(a);
}

/* Builds a one-dimensional float8[] from n doubles. */
ArrayType *
Float8ArrayBuild(const double *v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	ArrayType  *a;

	for (int i = 0; i < n; i++)
		d[i] = Float8GetDatum(v[i]);
	a = construct_array(d, n, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
						TYPALIGN_DOUBLE);
	pfree(d);
	return a;
}
