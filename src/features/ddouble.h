/*
 * ddouble.h
 *		Double-double arithmetic for the window aggregates' running sums.
 *
 * A DDouble holds a value as the unevaluated sum hi + lo of two doubles with
 * |lo| <= ulp(hi) / 2, about 106 bits of mantissa.  The window aggregates add
 * a row when it enters the frame and subtract it again when it leaves, often
 * millions of times over: with plain doubles every add/subtract pair leaves
 * a rounding residue of up to ulp(sum) behind and the residues pile up, while
 * in double-double arithmetic the residue is some 2^-53 times smaller, so the
 * sums stay exact to double precision for any realistic number of slides.
 *
 * The error-free transformations below (TwoSum, FastTwoSum, TwoProd) rely on
 * IEEE double arithmetic rounded to nearest.  TwoProd uses fma(), which stays
 * correct even where the compiler contracts other expressions into FMAs.
 */
#ifndef STREAMML_DDOUBLE_H
#define STREAMML_DDOUBLE_H

#include <math.h>

typedef struct DDouble
{
	double		hi;
	double		lo;
} DDouble;

/* s + e == a + b exactly, s == fl(a + b); no condition on a and b. */
static inline DDouble
DDTwoSum(double a, double b)
{
	DDouble		r;
	double		bb;

	r.hi = a + b;
	bb = r.hi - a;
	r.lo = (a - (r.hi - bb)) + (b - bb);
	return r;
}

/* As DDTwoSum, for |a| >= |b| (or a == 0). */
static inline DDouble
DDFastTwoSum(double a, double b)
{
	DDouble		r;

	r.hi = a + b;
	r.lo = b - (r.hi - a);
	return r;
}

/*
 * p + e == a * b exactly (barring underflow and overflow), p == fl(a * b).
 * With a hardware FMA that is one instruction; elsewhere (x86-64 built for
 * the baseline instruction set, where fma() is a library call several times
 * slower) Dekker's product, which is exact as long as the compiler does not
 * contract it into FMAs, and without FMA instructions it cannot.
 */
static inline DDouble
DDTwoProd(double a, double b)
{
	DDouble		r;

	r.hi = a * b;
#ifdef FP_FAST_FMA
	r.lo = fma(a, b, -r.hi);
#else
	{
		const double split = 134217729.0;	/* 2^27 + 1 */
		double		t,
					ah,
					al,
					bh,
					bl;

		t = split * a;
		ah = t - (t - a);
		al = a - ah;
		t = split * b;
		bh = t - (t - b);
		bl = b - bh;
		r.lo = ((ah * bh - r.hi) + ah * bl + al * bh) + al * bl;
	}
#endif
	return r;
}

/* A DDouble from a double. */
static inline DDouble
DDFromDouble(double a)
{
	DDouble		r = {a, 0.0};

	return r;
}

/* The double nearest to a. */
static inline double
DDToDouble(DDouble a)
{
	return a.hi + a.lo;
}

/* a + b. */
static inline DDouble
DDAdd(DDouble a, DDouble b)
{
	DDouble		s = DDTwoSum(a.hi, b.hi);
	DDouble		t = DDTwoSum(a.lo, b.lo);

	s.lo += t.hi;
	s = DDFastTwoSum(s.hi, s.lo);
	s.lo += t.lo;
	return DDFastTwoSum(s.hi, s.lo);
}

/* -a. */
static inline DDouble
DDNeg(DDouble a)
{
	DDouble		r = {-a.hi, -a.lo};

	return r;
}

/* a - b. */
static inline DDouble
DDSub(DDouble a, DDouble b)
{
	return DDAdd(a, DDNeg(b));
}

/* a * b. */
static inline DDouble
DDMul(DDouble a, DDouble b)
{
	DDouble		p = DDTwoProd(a.hi, b.hi);

	p.lo += a.hi * b.lo + a.lo * b.hi;
	return DDFastTwoSum(p.hi, p.lo);
}

/* a * b for a double b. */
static inline DDouble
DDMulD(DDouble a, double b)
{
	DDouble		p = DDTwoProd(a.hi, b);

	p.lo += a.lo * b;
	return DDFastTwoSum(p.hi, p.lo);
}

/* a / b for a double b: the double quotient and one correction. */
static inline DDouble
DDDivD(DDouble a, double b)
{
	double		q1 = a.hi / b;
	DDouble		p = DDTwoProd(q1, b);
	double		r = ((a.hi - p.hi) - p.lo + a.lo) / b;

	return DDFastTwoSum(q1, r);
}

/* The square of x - s as a DDouble, where d = x - s is itself a DDouble. */
static inline DDouble
DDSquare(DDouble d)
{
	DDouble		p = DDTwoProd(d.hi, d.hi);

	p.lo += 2.0 * d.hi * d.lo;
	return DDFastTwoSum(p.hi, p.lo);
}

#endif							/* STREAMML_DDOUBLE_H */
