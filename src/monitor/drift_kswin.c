/*
 * drift_kswin.c
 *		KSWIN, Kolmogorov-Smirnov windowing (Raab, Heusinger and Schleif,
 *		Neurocomputing 2020), after River's drift.KSWIN (River main,
 *		2025-2026), with the same random draws and the same test.
 *
 * KSWIN keeps the last window_size values.  Once the window is full, at
 * every value it draws stat_size positions among the window's first
 * window_size - stat_size (Python's random.Random(seed).sample), and runs
 * the two-sample Kolmogorov-Smirnov test of those values against the last
 * stat_size values; a p-value at most alpha with a statistic above 0.1 is
 * a drift.  As in River, the whole detector (window and random generator,
 * re-seeded) resets at the update after a drift.
 *
 * To give River's detections on the same input, this file reproduces:
 *	- Python's random module: the Mersenne Twister MT19937 seeded by
 *	  init_by_array with the seed's 32-bit words (random.Random(seed)),
 *	  getrandbits(k) as the top k bits of one 32-bit output,
 *	  _randbelow by rejection, and sample()'s two algorithms (a pool for
 *	  small populations, a set of selected positions for large ones);
 *	- scipy.stats.ks_2samp(method="auto") for two samples of the same size
 *	  n <= 10000: the statistic D = h / n from the largest gap h between the
 *	  two counts at or below each value, and the exact p-value
 *	  P(D_{n,n} >= h / n) of scipy's _compute_prob_outside_square.
 * The statistic and p-value were checked against scipy 1.10 (test data in
 * test/drift/).  Without a "seed" the generator is seeded from PostgreSQL's
 * random source, like River's seed=None: detections then vary between runs.
 */
#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"
#include "options.h"
#include "monitor/drift.h"

/* ks_2samp switches from the exact p-value to an asymptotic one above this. */
#define KS_MAX_EXACT_N 10000

/* ---- Python's random: MT19937 ---- */

#define MT_N 624
#define MT_M 397

typedef struct PyRandom
{
	uint32		mt[MT_N];
	int			mti;
} PyRandom;

/* init_genrand of the reference MT19937. */
static void
MtInitGenrand(PyRandom *r, uint32 s)
{
	r->mt[0] = s;
	for (r->mti = 1; r->mti < MT_N; r->mti++)
		r->mt[r->mti] = (1812433253U * (r->mt[r->mti - 1] ^ (r->mt[r->mti - 1] >> 30)) + r->mti);
}

/* init_by_array of the reference MT19937. */
static void
MtInitByArray(PyRandom *r, const uint32 *key, int len)
{
	int			i = 1,
				j = 0,
				k;

	MtInitGenrand(r, 19650218U);
	for (k = (MT_N > len ? MT_N : len); k; k--)
	{
		r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525U)) + key[j] + j;
		i++;
		j++;
		if (i >= MT_N)
		{
			r->mt[0] = r->mt[MT_N - 1];
			i = 1;
		}
		if (j >= len)
			j = 0;
	}
	for (k = MT_N - 1; k; k--)
	{
		r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941U)) - i;
		i++;
		if (i >= MT_N)
		{
			r->mt[0] = r->mt[MT_N - 1];
			i = 1;
		}
	}
	r->mt[0] = 0x80000000U;
}

/* random.Random(seed) for an integer seed: its |seed| as 32-bit words. */
static void
PyRandomSeed(PyRandom *r, uint64 seed)
{
	uint32		key[2];

	key[0] = (uint32) seed;
	key[1] = (uint32) (seed >> 32);
	MtInitByArray(r, key, key[1] != 0 ? 2 : 1);
}

/* genrand_uint32 of the reference MT19937. */
static uint32
MtNext(PyRandom *r)
{
	static const uint32 mag01[2] = {0x0U, 0x9908b0dfU};
	uint32		y;

	if (r->mti >= MT_N)
	{
		int			kk;

		for (kk = 0; kk < MT_N - MT_M; kk++)
		{
			y = (r->mt[kk] & 0x80000000U) | (r->mt[kk + 1] & 0x7fffffffU);
			r->mt[kk] = r->mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 0x1U];
		}
		for (; kk < MT_N - 1; kk++)
		{
			y = (r->mt[kk] & 0x80000000U) | (r->mt[kk + 1] & 0x7fffffffU);
			r->mt[kk] = r->mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 0x1U];
		}
		y = (r->mt[MT_N - 1] & 0x80000000U) | (r->mt[0] & 0x7fffffffU);
		r->mt[MT_N - 1] = r->mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 0x1U];
		r->mti = 0;
	}
	y = r->mt[r->mti++];
	y ^= (y >> 11);
	y ^= (y << 7) & 0x9d2c5680U;
	y ^= (y << 15) & 0xefc60000U;
	y ^= (y >> 18);
	return y;
}

/* random._randbelow_with_getrandbits(n), for 0 < n < 2^31. */
static int
PyRandBelow(PyRandom *r, int n)
{
	int			k = 0;
	uint32		v;

	while ((n >> k) != 0)
		k++;					/* n.bit_length() */
	do
		v = MtNext(r) >> (32 - k);	/* getrandbits(k) */
	while (v >= (uint32) n);
	return (int) v;
}

/*
 * random.sample(range(n), k) into out[k]; pool[n] and taken[n] are
 * scratch space.
 */
static void
PySampleRange(PyRandom *r, int n, int k, int *out, int *pool, bool *taken)
{
	int			setsize = 21;

	if (k > 5)
		setsize += (int) pow(4, ceil(log(k * 3) / log(4)));
	if (n <= setsize)
	{
		for (int i = 0; i < n; i++)
			pool[i] = i;
		for (int i = 0; i < k; i++)
		{
			int			j = PyRandBelow(r, n - i);

			out[i] = pool[j];
			pool[j] = pool[n - i - 1];
		}
	}
	else
	{
		memset(taken, 0, n * sizeof(bool));
		for (int i = 0; i < k; i++)
		{
			int			j = PyRandBelow(r, n);

			while (taken[j])
				j = PyRandBelow(r, n);
			taken[j] = true;
			out[i] = j;
		}
	}
}

/* ---- the two-sample Kolmogorov-Smirnov test ---- */

/*
 * scipy's _compute_prob_outside_square(n, h): P(D_{n,n} >= h / n), the
 * exact two-sided p-value for two samples of size n, in its Horner-like
 * form that avoids cancellation.
 */
static double
KsProbOutsideSquare(int n, int h)
{
	double		P = 0.0;

	for (int k = n / h; k >= 0; k--)
	{
		double		p1 = 1.0;

		for (int j = 0; j < h; j++)
			p1 = (n - k * h - j) * p1 / (n + k * h + j + 1);
		P = p1 * (1.0 - P);
	}
	return 2 * P;
}

/* The p-value of ks_2samp for two samples of size n and largest gap h. */
static double
KsPValue(int n, int h)
{
	double		p;

	if (h == 0)
		return 1.0;
	p = KsProbOutsideSquare(n, h);
	return p < 0.0 ? 0.0 : p > 1.0 ? 1.0 : p;
}

/* qsort comparator for doubles. */
static int
CompareDoubles(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * The largest gap |count(a <= v) - count(b <= v)| over the values v of
 * both samples, a and b of size n each, sorted here in place: n times
 * ks_2samp's statistic.
 */
static int
KsGap(double *a, double *b, int n)
{
	int			i = 0,
				j = 0,
				gap = 0;

	qsort(a, n, sizeof(double), CompareDoubles);
	qsort(b, n, sizeof(double), CompareDoubles);
	while (i < n || j < n)
	{
		double		v = (j >= n || (i < n && a[i] <= b[j])) ? a[i] : b[j];

		while (i < n && a[i] <= v)
			i++;
		while (j < n && b[j] <= v)
			j++;
		if (abs(i - j) > gap)
			gap = abs(i - j);
	}
	return gap;
}

/* ---- the detector ---- */

typedef struct Kswin
{
	DriftDetector head;
	double		alpha;
	int			window_size;
	int			stat_size;
	bool		seeded;
	uint64		seed;
	bool		drift;
	int64		n;
	int			count;			/* values in the window */
	int			start;			/* ring position of the oldest */
	double	   *window;			/* ring of window_size values */
	int		   *draw;			/* stat_size drawn positions */
	int		   *pool;			/* sample() scratch */
	bool	   *taken;
	double	   *old_values;		/* the drawn values, sorted for the test */
	double	   *new_values;		/* the last stat_size values, sorted */
	int			last_gap;		/* of the last test, -1 before any */
	PyRandom	rng;
} Kswin;

/* River's KSWIN._reset: an empty window, the generator re-seeded. */
static void
KswinReset(Kswin *k)
{
	k->drift = false;
	k->n = 0;
	k->count = 0;
	k->start = 0;
	k->last_gap = -1;
	PyRandomSeed(&k->rng, k->seed);
}

/* A KSWIN detector with River's defaults for absent parameters. */
static DriftDetector *
KswinCreate(Jsonb *params)
{
	Kswin	   *k = palloc0(sizeof(Kswin));
	int			n_old;

	k->head.method = &DriftKswinMethod;
	k->alpha = OptionNumber(params, "alpha", 0.005, 0.0, 1.0);
	k->window_size = (int) OptionInteger(params, "window_size", 100, 2, 10000000);
	k->stat_size = (int) OptionInteger(params, "stat_size", 30, 1, KS_MAX_EXACT_N);
	if (k->stat_size >= k->window_size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"stat_size\" must be smaller than option \"window_size\""),
				 errdetail("stat_size is %d and window_size is %d.",
						   k->stat_size, k->window_size)));
	n_old = k->window_size - k->stat_size;
	if (k->stat_size > n_old)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"stat_size\" must be at most half of option \"window_size\""),
				 errdetail("KSWIN draws stat_size values among the window's first window_size - stat_size.")));
	if (OptionGet(params, "seed") != NULL)
	{
		int64		s = OptionInteger(params, "seed", 0, PG_INT64_MIN + 1, PG_INT64_MAX);

		k->seeded = true;
		k->seed = (uint64) (s < 0 ? -s : s);
	}
	else
		k->seed = pg_prng_uint64(&pg_global_prng_state);

	k->window = palloc(sizeof(double) * k->window_size);
	k->draw = palloc(sizeof(int) * k->stat_size);
	k->pool = palloc(sizeof(int) * n_old);
	k->taken = palloc(sizeof(bool) * n_old);
	k->old_values = palloc(sizeof(double) * k->stat_size);
	k->new_values = palloc(sizeof(double) * k->stat_size);
	KswinReset(k);
	return &k->head;
}

/* River's KSWIN.update. */
static DriftSignal
KswinUpdate(DriftDetector *d, double x)
{
	Kswin	   *k = (Kswin *) d;
	int			n_old = k->window_size - k->stat_size;
	int			gap;

	if (k->drift)
		KswinReset(k);
	k->n++;

	/* deque(maxlen=window_size).append(x) */
	if (k->count < k->window_size)
		k->window[(k->start + k->count++) % k->window_size] = x;
	else
	{
		k->window[k->start] = x;
		k->start = (k->start + 1) % k->window_size;
	}
	if (k->count < k->window_size)
		return DRIFT_NONE;

	PySampleRange(&k->rng, n_old, k->stat_size, k->draw, k->pool, k->taken);
	for (int i = 0; i < k->stat_size; i++)
	{
		k->old_values[i] = k->window[(k->start + k->draw[i]) % k->window_size];
		k->new_values[i] = k->window[(k->start + n_old + i) % k->window_size];
	}
	gap = KsGap(k->old_values, k->new_values, k->stat_size);
	k->last_gap = gap;

	/* st > 0.1 first: the p-value is needed only then */
	k->drift = (double) gap / k->stat_size > 0.1 &&
		KsPValue(k->stat_size, gap) <= k->alpha;
	return k->drift ? DRIFT_DETECTED : DRIFT_NONE;
}

/* The parameters and the last test, as JSON members. */
static void
KswinState(DriftDetector *d, StringInfo buf)
{
	Kswin	   *k = (Kswin *) d;

	DriftAppendNumber(buf, "alpha", k->alpha);
	appendStringInfo(buf, ", \"window_size\": %d, \"stat_size\": %d",
					 k->window_size, k->stat_size);
	if (k->seeded)
		appendStringInfo(buf, ", \"seed\": " UINT64_FORMAT, k->seed);
	else
		appendStringInfoString(buf, ", \"seed\": null");
	appendStringInfo(buf, ", \"n\": " INT64_FORMAT ", \"window\": %d", k->n, k->count);
	if (k->last_gap >= 0)
	{
		DriftAppendNumber(buf, "statistic", (double) k->last_gap / k->stat_size);
		DriftAppendNumber(buf, "p_value", KsPValue(k->stat_size, k->last_gap));
	}
	else
		appendStringInfoString(buf, ", \"statistic\": null, \"p_value\": 0");
}

static const char *const KswinParams[] =
{"alpha", "window_size", "stat_size", "seed", NULL};

const DriftMethod DriftKswinMethod = {
	"kswin", KswinParams, KswinCreate, KswinUpdate, KswinState, 0, NULL
};
