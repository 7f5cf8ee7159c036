/*
 * split_scan.c
 *		The time-ordered holdout split of a run found from the rows of its
 *		one training scan, instead of a query of its own.
 *
 * train_source.c's ResolveSplit finds the cutoff with
 *
 *	SELECT percentile_disc(1 - test_fraction) WITHIN GROUP (ORDER BY order_by),
 *		   max(order_by), ... FROM source
 *
 * which costs a scan and a sort of the source before training reads it
 * again.  A learner that holds its rows in memory anyway (tree.c) can
 * instead hand every order_by value of its scan to SplitScanAdd, and split
 * its rows once the scan is over: SplitScanEnd takes the same order
 * statistic, by a selection in linear expected time (quickselect with
 * random pivots and a three-way partition, so ties cost nothing, and a
 * sort as the fallback against bad pivots), under the same ordering (the type's default btree
 * ordering, as ORDER BY uses), and sets the run's cutoff, newest value and
 * WHERE clauses exactly as ResolveSplit would have: a row is in the
 * holdout when its order_by value is above the cutoff, in training when it
 * is at or below it (ties at the cutoff all train), in neither when NULL.
 *
 * Only for runs whose split needs nothing else before the scan
 * (SplitInScanPossible): no group_by (its scan is sorted by group, and the
 * cutoff is the whole source's), no categorical columns (their levels come
 * from the training rows), no feature array column, and an order_by type
 * passed by value (its values cost 8 bytes a row here).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "fmgr.h"
#include "utils/lsyscache.h"
#include "utils/sortsupport.h"
#include "utils/typcache.h"

#include "ml/categorical.h"
#include "ml/ml.h"
#include "ml/train.h"

struct SplitScan
{
	Oid			type;
	SortSupportData ssup;
	Datum	   *values;			/* the non-NULL order_by values */
	int64		n;
	int64		cap;
	int64		nulls;			/* rows whose order_by is NULL */
	Datum		max;
	Datum		cutoff;
	bool		have_cutoff;
};

/*
 * True when run's holdout split can be found from its training scan (the
 * file's comment); the caller then leaves the split to its learner.
 */
bool
SplitInScanPossible(TrainRun *run)
{
	TypeCacheEntry *tc;

	if (run->family == FAMILY_GLM || run->order_by == NULL ||
		run->test_fraction <= 0.0 || run->group_by != NULL || run->featarray ||
		!OidIsValid(run->order_typid))
		return false;
	for (int i = 0; i < run->nfeaturecols; i++)
		if (TypeIsCategorical(run->coltypes[i]))
			return false;
	if (!get_typbyval(run->order_typid))
		return false;
	tc = lookup_type_cache(run->order_typid, TYPECACHE_LT_OPR);
	return OidIsValid(tc->lt_opr);
}

/* A new collector of the order_by values of a run's scan. */
SplitScan *
SplitScanBegin(TrainRun *run)
{
	SplitScan  *s = palloc0(sizeof(SplitScan));
	TypeCacheEntry *tc = lookup_type_cache(run->order_typid, TYPECACHE_LT_OPR);

	s->type = run->order_typid;
	s->ssup.ssup_cxt = CurrentMemoryContext;
	s->ssup.ssup_collation = run->order_collation;
	s->ssup.ssup_nulls_first = false;
	PrepareSortSupportFromOrderingOp(tc->lt_opr, &s->ssup);
	s->cap = 1024;
	s->values = MemoryContextAllocHuge(CurrentMemoryContext,
									   sizeof(Datum) * s->cap);
	return s;
}

/* Adds the order_by value of one row the scan read. */
void
SplitScanAdd(SplitScan *s, Datum v, bool isnull)
{
	if (isnull)
	{
		s->nulls++;
		return;
	}
	if (s->n == s->cap)
	{
		s->cap *= 2;
		s->values = repalloc_huge(s->values, sizeof(Datum) * s->cap);
	}
	if (s->n == 0 || ApplySortComparator(v, false, s->max, false, &s->ssup) > 0)
		s->max = v;
	s->values[s->n++] = v;
}

/* qsort_arg comparator of Datums by a SortSupport. */
static int
SplitCompare(const void *a, const void *b, void *arg)
{
	return ApplySortComparator(*(const Datum *) a, false,
							   *(const Datum *) b, false, (SortSupport) arg);
}

/*
 * The k-th smallest (0-based) of v[0 .. n-1], reordering v: quickselect
 * with the median of three random elements as the pivot (from a fixed
 * seed) and a three-way partition; after too many rounds (bad pivots), a
 * sort of what is left.
 */
static Datum
SplitSelect(Datum *v, int64 n, int64 k, SortSupport ssup)
{
	int64		lo = 0;
	int64		hi = n - 1;
	int			rounds = 0;

	pg_prng_state prng;

	/* random pivots: the partition leaves sorted input in bad orders */
	pg_prng_seed(&prng, 20261201);
	while (lo < hi)
	{
		Datum		a = v[pg_prng_uint64_range(&prng, lo, hi)];
		Datum		b = v[pg_prng_uint64_range(&prng, lo, hi)];
		Datum		c = v[pg_prng_uint64_range(&prng, lo, hi)];
		Datum		pivot;
		int64		lt = lo;
		int64		gt = hi;
		int64		i = lo;

		if (++rounds > 64)
		{
			qsort_arg(v + lo, hi - lo + 1, sizeof(Datum), SplitCompare, ssup);
			return v[k];
		}
		/* the median of a, b, c */
		if (ApplySortComparator(a, false, b, false, ssup) > 0)
		{
			Datum		t = a;

			a = b;
			b = t;
		}
		if (ApplySortComparator(b, false, c, false, ssup) > 0)
		{
			b = c;
			if (ApplySortComparator(a, false, b, false, ssup) > 0)
				b = a;
		}
		pivot = b;
		/* v[lo..lt-1] < pivot, v[lt..i-1] = pivot, v[gt+1..hi] > pivot */
		while (i <= gt)
		{
			int			cmp = ApplySortComparator(v[i], false, pivot, false, ssup);

			if (cmp < 0)
			{
				Datum		t = v[lt];

				v[lt++] = v[i];
				v[i++] = t;
			}
			else if (cmp > 0)
			{
				Datum		t = v[gt];

				v[gt--] = v[i];
				v[i] = t;
			}
			else
				i++;
		}
		if (k < lt)
			hi = lt - 1;
		else if (k > gt)
			lo = gt + 1;
		else
			return pivot;
	}
	return v[k];
}

/*
 * Ends the scan: the cutoff as percentile_disc(1 - test_fraction) would
 * find it (the value at 1-based position ceil(f × n) of the n non-NULL
 * values in order, the first when that is 0), the newest value, and the
 * run's split from them (SplitResolved, as ResolveSplit).  Returns false
 * when no row has an order_by value: the run then trains and scores on
 * every row, as ResolveSplit leaves it.
 */
bool
SplitScanEnd(SplitScan *s, TrainRun *run)
{
	double		percentile = 1.0 - run->test_fraction;
	int64		rownum;
	Oid			typoutput;
	bool		varlena;

	if (s->n == 0)
	{
		SplitResolved(run, NULL, NULL, 0, s->nulls);
		return false;
	}
	rownum = (int64) ceil(percentile * s->n);
	s->cutoff = SplitSelect(s->values, s->n, Max(rownum, 1) - 1, &s->ssup);
	s->have_cutoff = true;
	pfree(s->values);
	s->values = NULL;
	getTypeOutputInfo(s->type, &typoutput, &varlena);
	SplitResolved(run, OidOutputFunctionCall(typoutput, s->cutoff),
				  OidOutputFunctionCall(typoutput, s->max), 0, s->nulls);
	return true;
}

/*
 * The side of a row by its order_by value, once the scan has ended: 0 in
 * training, 1 in the holdout, -1 in neither (NULL).
 */
int
SplitScanSide(SplitScan *s, Datum v, bool isnull)
{
	Assert(s->have_cutoff);
	if (isnull)
		return -1;
	return ApplySortComparator(v, false, s->cutoff, false, &s->ssup) > 0 ? 1 : 0;
}
