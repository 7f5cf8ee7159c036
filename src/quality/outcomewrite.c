/*
 * outcomewrite.c
 *		The write side of an outcome tracker's batch, in C: outcomes into
 *		streamml.outcomes, unjoined ones into streamml.pending_outcomes,
 *		and the batch's sums into streamml.quality_buckets.
 *
 * outcomeinsert.c reads a batch's outcomes joined with their predictions
 * (one SPI statement, as the tracker's owner) and hands the rows here, in
 * arrival order.  Per row there is no SPI call and no catalog look-up: the
 * loss and the bucket sums are computed in C, the rows are written with
 * table_multi_insert and their index entries as COPY does, and the sums
 * of the batch, per model, version, role, group and bucket of prediction
 * time (a short list: consecutive rows nearly always share their bucket),
 * are added to the buckets by one prepared INSERT ... ON CONFLICT DO
 * UPDATE per bucket row, into this backend's shard.
 *
 * The first outcome of a key wins.  A key that is one integer is looked
 * up in the tracker's bit sets first (outcomekeys.c): those already
 * labelled are duplicates and are not written.  Other keys have a unique
 * key in streamml.outcome_rows (the table behind the view
 * streamml.outcomes): (tracker, key_hash, version, model, key), where key
 * is stored.  The batch is written in a subtransaction; when such a key
 * already has an outcome (a duplicate label, or a concurrent load that
 * labelled it first) the unique index errors, the subtransaction is
 * rolled back, and the batch is written again row by row with INSERT ...
 * ON CONFLICT DO NOTHING, which tells the first outcomes from the
 * duplicates.  A batch without duplicates, the normal case, never takes
 * that path.
 *
 * Loss of an outcome: binary classifiers (a probability and two classes):
 * log loss with the probability clipped to [1e-15, 1 - 1e-15]; other
 * classifiers: 0/1 loss; regressions: squared error.  An actual value is
 * matched to a classifier's classes by its text form, as evaluate does.
 */
#include "postgres.h"

#include <math.h>

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/backendid.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "monitor/monitor.h"
#include "pg_streamml.h"
#include "quality/quality.h"
#include "scoring/scorer.h"

#define OUTCOME_BUFFERED_ROWS 2000

/* The plan of the classes' look-up, kept for the backend. */
static SPIPlanPtr ClassesPlan = NULL;

/* The columns of a bucket row after its key, in the order of the sums. */
static const char *const SumColumns[] = {
	"predictions", "scored_conf_n", "scored_conf_sum", "labelled",
	"duplicates", "labelled_conf_n", "labelled_conf_sum", "cls_n", "correct",
	"tp", "fp", "fn", "prob_n", "log_loss_sum", "brier_sum", "reg_n",
	"err_sum", "abs_err_sum", "sq_err_sum", "actual_sum", "actual_sq_sum",
	"pair_n", "pair_diff_sum", "pair_diff_sq_sum",
	NULL
};
#define NSUMS 24

/* The sums of one bucket row of the batch. */
typedef struct BucketSums
{
	char	   *model;
	int32		version;
	char	   *role;
	char	   *group_key;
	TimestampTz bucket;
	double		sums[NSUMS];	/* in the order of SumColumns */
	int64	   *lag_hist;		/* NULL: empty */
	int64	   *score_hist;
} BucketSums;

enum
{
	S_PREDICTIONS, S_SCORED_CONF_N, S_SCORED_CONF_SUM, S_LABELLED,
	S_DUPLICATES, S_LABELLED_CONF_N, S_LABELLED_CONF_SUM, S_CLS_N,
	S_CORRECT, S_TP, S_FP, S_FN, S_PROB_N, S_LOG_LOSS_SUM, S_BRIER_SUM,
	S_REG_N, S_ERR_SUM, S_ABS_ERR_SUM, S_SQ_ERR_SUM, S_ACTUAL_SUM,
	S_ACTUAL_SQ_SUM, S_PAIR_N, S_PAIR_DIFF_SUM, S_PAIR_DIFF_SQ_SUM
};

/* The classes of a model, looked up once per batch. */
typedef struct ModelClasses
{
	char	   *model;
	int			n;				/* -1: not a classifier */
	char	  **classes;
} ModelClasses;

/* A string and its text datum (TextOnce). */
typedef struct TextCache
{
	const char *str;
	Datum		datum;
} TextCache;

struct OutcomeBatch
{
	OutcomeTracker *t;
	TimestampTz now;
	int64		stride;			/* the bucket width, microseconds */
	List	   *buckets;		/* of BucketSums */
	BucketSums *last;
	List	   *models;			/* of ModelClasses */
	int			nrecords;
	int64		npairs;			/* challenger pairs counted */
	OutcomeRecord *records;		/* the first outcomes, in arrival order */
	MemoryContext cxt;			/* the batch's: where TextOnce's datums live */
	TextCache	text_model;		/* for OutcomeValues */
	TextCache	text_role;
	TextCache	text_group;
};

/* Prepared once per backend (catalog statements, no tracker in them). */
static SPIPlanPtr UpsertPlan = NULL;
static SPIPlanPtr InsertOnePlan = NULL;

/* ---- buckets ---- */

/* The start of the bucket of a time: date_bin(stride, ts, 2000-01-01). */
static TimestampTz
BucketOf(OutcomeBatch *b, TimestampTz ts)
{
	/* 2000-01-01 00:00:00+00 is TimestampTz 0 */
	int64		delta = ts - ts % b->stride;

	if (ts < 0 && delta != ts)
		delta -= b->stride;
	return delta;
}

/* The sums of a bucket row of the batch, made on first use. */
static BucketSums *
GetBucket(OutcomeBatch *b, const char *model, int32 version, const char *role,
		  const char *group_key, TimestampTz scored_at)
{
	TimestampTz bucket = BucketOf(b, scored_at);
	BucketSums *s = b->last;
	ListCell   *lc;

#define SAME(x) ((x) != NULL && (x)->version == version && (x)->bucket == bucket && \
				 strcmp((x)->model, model) == 0 && strcmp((x)->role, role) == 0 && \
				 strcmp((x)->group_key, group_key) == 0)
	if (SAME(s))
		return s;
	foreach(lc, b->buckets)
	{
		s = lfirst(lc);
		if (SAME(s))
			return b->last = s;
	}
#undef SAME
	s = palloc0(sizeof(BucketSums));
	s->model = pstrdup(model);
	s->version = version;
	s->role = pstrdup(role);
	s->group_key = pstrdup(group_key);
	s->bucket = bucket;
	b->buckets = lappend(b->buckets, s);
	return b->last = s;
}

/* Starts a batch of a tracker. */
OutcomeBatch *
OutcomeBatchBegin(OutcomeTracker *t, TimestampTz now)
{
	OutcomeBatch *b = palloc0(sizeof(OutcomeBatch));
	Interval   *iv;

	b->t = t;
	b->now = now;
	b->cxt = CurrentMemoryContext;
	iv = DatumGetIntervalP(DirectFunctionCall3(interval_in,
											   CStringGetDatum(t->bucket),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
	b->stride = iv->time + (int64) iv->day * USECS_PER_DAY;
	if (b->stride <= 0)
		b->stride = USECS_PER_MINUTE;
	return b;
}

/* Counts scored rows (predictions) into the batch's sums. */
void
OutcomeBatchCountPredictions(OutcomeBatch *b, const char *model, int32 version,
							 const char *role, TimestampTz scored_at,
							 int64 n, int64 conf_n, double conf_sum)
{
	BucketSums *s = GetBucket(b, model, version, role, "", scored_at);

	s->sums[S_PREDICTIONS] += n;
	s->sums[S_SCORED_CONF_N] += conf_n;
	s->sums[S_SCORED_CONF_SUM] += conf_sum;
}

/* ---- outcomes ---- */

/* The classes of a model (n = -1 when it has none), cached per batch. */
static ModelClasses *
GetClasses(OutcomeBatch *b, const char *model)
{
	ListCell   *lc;
	ModelClasses *c;
	Datum		arg;
	bool		isnull;
	Datum		d;

	foreach(lc, b->models)
	{
		c = lfirst(lc);
		if (strcmp(c->model, model) == 0)
			return c;
	}
	c = palloc0(sizeof(ModelClasses));
	c->model = pstrdup(model);
	c->n = -1;
	arg = CStringGetTextDatum(model);
	if (CatalogExecuteKept(&ClassesPlan, "SELECT classes FROM streamml.models WHERE name OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT) > 0)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;

			deconstruct_array(DatumGetArrayTypePCopy(d), TEXTOID, -1, false,
							  TYPALIGN_INT, &elems, &nulls, &c->n);
			c->classes = palloc(sizeof(char *) * Max(c->n, 1));
			for (int i = 0; i < c->n; i++)
				c->classes[i] = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
		}
	}
	b->models = lappend(b->models, c);
	return c;
}

/*
 * The key of a record as jsonb.  A record whose key is one integer column
 * (key_is_int) may come without it: it is made here, on first use, as
 * jsonb_build_object(the key's name, the integer) makes it, in cxt (which
 * must live as long as the record).
 */
Datum
RecordKey(OutcomeRecord *r, MemoryContext cxt)
{
	if (r->key == (Datum) 0)
	{
		JsonbParseState *state = NULL;
		JsonbValue	v;
		MemoryContext old = MemoryContextSwitchTo(cxt);

		Assert(r->key_is_int && r->key_name != NULL);
		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		v.type = jbvString;
		v.val.string.val = (char *) r->key_name;
		v.val.string.len = strlen(r->key_name);
		pushJsonbValue(&state, WJB_KEY, &v);
		v.type = jbvNumeric;
		v.val.numeric = int64_to_numeric(r->key_int);
		pushJsonbValue(&state, WJB_VALUE, &v);
		r->key = JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT,
																  NULL)));
		MemoryContextSwitchTo(old);
	}
	return r->key;
}

/* The columns of a joined row (outcomeinsert.c's statements). */
enum
{
	J_KEY = 1, J_ACTUAL_NUMBER, J_ACTUAL_TEXT, J_GROUP_KEY, J_LABELLED_AT,
	J_RN, J_MODEL, J_VERSION, J_ROLE, J_PREDICTION, J_PROBABILITY, J_CLASS,
	J_SCORED_AT
};

/* A float8 column of a joined row; false when NULL. */
static inline bool
GetFloat(HeapTuple tup, TupleDesc desc, int col, double *v)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		return false;
	*v = DatumGetFloat8(d);
	return true;
}

/* A text column of a joined row as a C string, NULL when NULL. */
static inline char *
GetText(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Completes a record whose prediction side is filled: the actual as a
 * value or class, and the loss.  actual_text NULL: the text of the number
 * (float8::text), made only when a classifier needs it.
 */
void
OutcomeRecordFinish(OutcomeBatch *b, OutcomeRecord *r, bool has_number,
					double actual_number)
{
	ModelClasses *c = GetClasses(b, r->model);

	r->is_cls = c->n >= 0 || r->class_label != NULL;
	r->is_bin = r->has_probability && c->n == 2;
	if (r->is_cls && r->actual_text == NULL && has_number)
		r->actual_text = Float8TextExact(actual_number);
	if (c->n >= 0)
	{
		for (int i = 0; i < c->n && r->actual_text; i++)
			if (c->classes[i] && strcmp(c->classes[i], r->actual_text) == 0)
			{
				r->actual = i;
				r->has_actual = true;
				break;
			}
	}
	else if (r->class_label == NULL && has_number)
	{
		r->actual = actual_number;
		r->has_actual = true;
	}
	r->actual_class = r->is_cls ? r->actual_text : NULL;
	if (r->has_prediction && r->has_actual)
	{
		r->has_loss = true;
		if (r->is_bin)
		{
			double		p = Max(1e-15, Min(1 - 1e-15, r->probability));

			r->loss = -(r->actual * log(p) + (1 - r->actual) * log(1 - p));
		}
		else if (r->is_cls)
			r->loss = r->prediction != r->actual ? 1.0 : 0.0;
		else
			r->loss = (r->prediction - r->actual) * (r->prediction - r->actual);
	}
}

/*
 * Computes the record (actual, loss, ...) of a joined row; rows without
 * a prediction row (model NULL) return false.
 */
static bool
MakeRecord(OutcomeBatch *b, HeapTuple tup, TupleDesc desc, OutcomeRecord *r)
{
	bool		isnull;
	double		actual_number = 0;
	bool		has_number;

	memset(r, 0, sizeof(OutcomeRecord));
	r->model = GetText(tup, desc, J_MODEL);
	if (r->model == NULL)
		return false;
	r->key = SPI_getbinval(tup, desc, J_KEY, &isnull);
	r->version = DatumGetInt32(SPI_getbinval(tup, desc, J_VERSION, &isnull));
	r->role = GetText(tup, desc, J_ROLE);
	r->group_key = GetText(tup, desc, J_GROUP_KEY);
	if (r->group_key == NULL)
		r->group_key = "";
	r->labelled_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, J_LABELLED_AT, &isnull));
	r->predicted_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, J_SCORED_AT, &isnull));
	r->first = DatumGetInt64(SPI_getbinval(tup, desc, J_RN, &isnull)) == 1;
	r->has_prediction = GetFloat(tup, desc, J_PREDICTION, &r->prediction);
	r->has_probability = GetFloat(tup, desc, J_PROBABILITY, &r->probability);
	r->class_label = GetText(tup, desc, J_CLASS);
	has_number = GetFloat(tup, desc, J_ACTUAL_NUMBER, &actual_number);
	r->actual_text = GetText(tup, desc, J_ACTUAL_TEXT);
	OutcomeRecordFinish(b, r, has_number, actual_number);
	return true;
}

/* Adds a first outcome (or counts a duplicate) into the batch's sums. */
static void
CountOutcome(OutcomeBatch *b, OutcomeRecord *r)
{
	BucketSums *s = GetBucket(b, r->model, r->version, r->role, r->group_key,
							  r->predicted_at);
	bool		ok_cls;
	bool		ok_bin;
	bool		ok_reg;

	if (!r->first)
	{
		s->sums[S_DUPLICATES] += 1;
		return;
	}
	s->sums[S_LABELLED] += 1;
	if (r->has_probability)
	{
		s->sums[S_LABELLED_CONF_N] += 1;
		s->sums[S_LABELLED_CONF_SUM] += Max(r->probability, 1 - r->probability);
	}
	if (s->lag_hist == NULL)
		s->lag_hist = palloc0(sizeof(int64) * LAG_BINS);
	s->lag_hist[LabelLagBin((r->labelled_at - r->predicted_at) / 1e6)]++;
	ok_cls = r->is_cls && r->has_prediction && r->actual_class != NULL;
	ok_bin = r->is_bin && r->has_prediction && r->has_actual;
	ok_reg = !r->is_cls && r->has_prediction && r->has_actual;
	if (ok_cls)
	{
		s->sums[S_CLS_N] += 1;
		if (r->class_label && strcmp(r->class_label, r->actual_class) == 0)
			s->sums[S_CORRECT] += 1;
	}
	if (ok_bin)
	{
		int			bin = ScoreBin(r->probability, r->actual == 1);

		s->sums[S_TP] += (r->prediction == 1 && r->actual == 1);
		s->sums[S_FP] += (r->prediction == 1 && r->actual == 0);
		s->sums[S_FN] += (r->prediction == 0 && r->actual == 1);
		s->sums[S_PROB_N] += 1;
		s->sums[S_LOG_LOSS_SUM] += r->loss;
		s->sums[S_BRIER_SUM] += (r->probability - r->actual) * (r->probability - r->actual);
		if (s->score_hist == NULL)
			s->score_hist = palloc0(sizeof(int64) * 2 * SCORE_BINS);
		s->score_hist[bin]++;
	}
	if (ok_reg)
	{
		double		e = r->prediction - r->actual;

		s->sums[S_REG_N] += 1;
		s->sums[S_ERR_SUM] += e;
		s->sums[S_ABS_ERR_SUM] += fabs(e);
		s->sums[S_SQ_ERR_SUM] += r->loss;
		s->sums[S_ACTUAL_SUM] += r->actual;
		s->sums[S_ACTUAL_SQ_SUM] += r->actual * r->actual;
	}
}

/* Whether two records of a batch have the same key. */
static bool
SameKey(OutcomeBatch *b, OutcomeRecord *x, OutcomeRecord *y)
{
	if (x->key_is_int && y->key_is_int)
		return x->key_int == y->key_int;
	return DatumGetBool(DirectFunctionCall2(jsonb_eq, RecordKey(x, b->cxt),
											RecordKey(y, b->cxt)));
}

/*
 * The paired differences of challengers: for each first outcome of a
 * challenger whose key has a first outcome of the champion in the same
 * batch (they are scored by the same statement, so they are joined in the
 * same batch, next to each other), d = champion's loss - challenger's
 * loss, summed into the challenger's bucket (pair_n, pair_diff_sum,
 * pair_diff_sq_sum): what promote's paired test reads.
 */
static void
CountPairs(OutcomeBatch *b)
{
	int			start = 0;
	bool		challengers = false;

	for (int i = 0; i < b->nrecords && !challengers; i++)
		challengers = strcmp(b->records[i].role, "challenger") == 0;
	if (!challengers)
		return;
	while (start < b->nrecords)
	{
		int			end = start + 1;
		OutcomeRecord *champ = NULL;

		while (end < b->nrecords && SameKey(b, &b->records[start], &b->records[end]))
			end++;
		for (int i = start; i < end; i++)
			if (b->records[i].first && b->records[i].has_loss &&
				strcmp(b->records[i].role, "champion") == 0)
				champ = &b->records[i];
		for (int i = start; champ && i < end; i++)
		{
			OutcomeRecord *r = &b->records[i];
			BucketSums *s;
			double		d;

			if (r == champ || !r->first || !r->has_loss ||
				strcmp(r->role, "challenger") != 0)
				continue;
			d = champ->loss - r->loss;
			s = GetBucket(b, r->model, r->version, r->role, r->group_key,
						  r->predicted_at);
			s->sums[S_PAIR_N] += 1;
			b->npairs++;
			s->sums[S_PAIR_DIFF_SUM] += d;
			s->sums[S_PAIR_DIFF_SQ_SUM] += d * d;
		}
		start = end;
	}
}

/* The bounds of int8 as numerics, for KeyHash. */
static Numeric KeyMin = NULL;
static Numeric KeyMax = NULL;

/*
 * The key_hash of an outcome's key: the key's integer when the key is one
 * integer (keys that grow then insert at the right edge of the unique
 * key), otherwise jsonb_hash_extended(key, 0).  Equal keys have equal
 * key_hash, which is all the unique key (that ends with the key) needs.
 * *plain is set when the key is one integer: jsonb_build_object(its name,
 * key_hash) gives back a key equal to it (written without a fraction: a
 * numeric 5.0 comes back as 5), so the stored row leaves it out (NULL;
 * streamml.outcomes rebuilds it).
 */
static int64
KeyHash(Datum key, bool *plain)
{
	Jsonb	   *j = DatumGetJsonbP(key);

	*plain = false;
	if (JB_ROOT_IS_OBJECT(j) && JB_ROOT_COUNT(j) == 1)
	{
		JsonbIterator *it = JsonbIteratorInit(&j->root);
		JsonbValue	v;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok != WJB_VALUE)
				continue;
			if (v.type == jbvNumeric && !numeric_is_nan(v.val.numeric) &&
				!numeric_is_inf(v.val.numeric))
			{
				Datum		n = NumericGetDatum(v.val.numeric);
				int64		i;

				if (KeyMin == NULL)
				{
					MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

					KeyMin = int64_to_numeric(PG_INT64_MIN);
					KeyMax = int64_to_numeric(PG_INT64_MAX);
					MemoryContextSwitchTo(old);
				}
				if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, n,
													  NumericGetDatum(KeyMin))) < 0 ||
					DatumGetInt32(DirectFunctionCall2(numeric_cmp, n,
													  NumericGetDatum(KeyMax))) > 0)
					break;
				/* an integer: its int8 gives back the same numeric */
				i = DatumGetInt64(DirectFunctionCall1(numeric_int8, n));
				if (DatumGetBool(DirectFunctionCall2(numeric_eq, n,
													 NumericGetDatum(int64_to_numeric(i)))))
				{
					/*
					 * Plain whatever its scale: keys equal as jsonb (5 and
					 * 5.0) must be stored alike for the unique key to
					 * find the duplicate.
					 */
					*plain = true;
					return i;
				}
			}
			break;
		}
	}
	return DatumGetInt64(DirectFunctionCall2(jsonb_hash_extended, key,
											 Int64GetDatum(0)));
}

/* The key_hash of a record (KeyHash), and key_plain, worked out once. */
static int64
RecordKeyHash(OutcomeBatch *b, OutcomeRecord *r)
{
	if (!r->hashed)
	{
		if (r->key_is_int)
		{
			/* KeyHash's answer for jsonb_build_object(name, an integer) */
			r->key_hash = r->key_int;
			r->key_plain = true;
		}
		else
			r->key_hash = KeyHash(RecordKey(r, b->cxt), &r->key_plain);
		r->hashed = true;
	}
	return r->key_hash;
}

/*
 * The text datum of a string that consecutive rows nearly always share
 * (model, role, group): made again only when the string changes.
 */
static Datum
TextOnce(OutcomeBatch *b, TextCache *c, const char *str)
{
	if (c->str == NULL || (c->str != str && strcmp(c->str, str) != 0))
	{
		MemoryContext old = MemoryContextSwitchTo(b->cxt);

		c->str = str;
		c->datum = CStringGetTextDatum(str);
		MemoryContextSwitchTo(old);
	}
	return c->datum;
}

/* The number of columns of streamml.outcome_rows, and where key_hash is. */
#define OUTCOME_COLUMNS 16
#define OUTCOME_KEY_HASH 1

/*
 * The values of a streamml.outcome_rows row of a record, in the table's
 * column order (quality.sql says what is left NULL and why).
 */
static void
OutcomeValues(OutcomeBatch *b, OutcomeRecord *r, Datum *v, bool *n)
{
	OutcomeTracker *t = b->t;

	memset(n, false, sizeof(bool) * OUTCOME_COLUMNS);
	v[0] = Int32GetDatum(t->id);
	v[1] = Int64GetDatum(RecordKeyHash(b, r));
	v[2] = Int32GetDatum(r->version);
	v[3] = TextOnce(b, &b->text_model, r->model);
	if (!r->key_plain)
		v[4] = RecordKey(r, b->cxt);
	n[4] = r->key_plain;
	n[5] = strcmp(r->role, "champion") == 0;
	if (!n[5])
		v[5] = TextOnce(b, &b->text_role, r->role);
	n[6] = r->group_key[0] == '\0';
	if (!n[6])
		v[6] = TextOnce(b, &b->text_group, r->group_key);
	v[7] = Float8GetDatum(r->prediction);
	n[7] = !r->has_prediction;
	v[8] = Float8GetDatum(r->probability);
	n[8] = !r->has_probability;
	if (r->class_label)
		v[9] = CStringGetTextDatum(r->class_label);
	n[9] = r->class_label == NULL;
	v[10] = Float8GetDatum(r->actual);
	n[10] = !r->has_actual;
	if (r->actual_class)
		v[11] = CStringGetTextDatum(r->actual_class);
	n[11] = r->actual_class == NULL;
	v[12] = Float8GetDatum(r->loss);
	n[12] = !r->has_loss;
	v[13] = TimestampTzGetDatum(r->predicted_at);
	v[14] = TimestampTzGetDatum(r->labelled_at);
	v[15] = ObjectIdGetDatum(t->owner);
}

/*
 * The memory of MultiInsert: kept for the backend's life with one large
 * block that a reset keeps, so that writing a batch touches the same pages
 * as the batch before instead of new ones from the kernel (a page fault per
 * 4 kB: 5% of a stream worker's time with outcomes).
 */
static MemoryContext
InsertContext(void)
{
	static MemoryContext cxt = NULL;

	if (cxt == NULL)
		cxt = AllocSetContextCreate(TopMemoryContext, "pg_streamml outcome writes",
									4 * 1024 * 1024, 4 * 1024 * 1024,
									8 * 1024 * 1024);
	return cxt;
}

/* For the sort of MultiInsert: the int8 column the index entries go in order of. */
static int	SortAtt;

/* qsort of slots by an int8 column (SortAtt). */
static int
CompareSlots(const void *a, const void *b)
{
	int64		x = DatumGetInt64((*(TupleTableSlot *const *) a)->tts_values[SortAtt]);
	int64		y = DatumGetInt64((*(TupleTableSlot *const *) b)->tts_values[SortAtt]);

	return (x > y) - (x < y);
}

/*
 * Writes rows into a catalog table with table_multi_insert and its indexes.
 * sort_att >= 0: the index entries of each buffer of rows are inserted in
 * the order of that int8 column (the heap keeps the rows' order), so that
 * consecutive entries land on the same index pages.
 */
static void
MultiInsertRows(Oid relid, int nrows, int natts, int sort_att,
				void (*fill) (void *arg, int i, Datum *v, bool *n), void *arg)
{
	Relation	rel = table_open(relid, RowExclusiveLock);

	/* a copy without reference count: no resource owner entry per slot */
	TupleDesc	desc = CreateTupleDescCopy(RelationGetDescr(rel));
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	BulkInsertState bistate = GetBulkInsertState();
	TupleTableSlot **slots = palloc0(sizeof(TupleTableSlot *) * OUTCOME_BUFFERED_ROWS);
	TupleTableSlot **sorted = palloc(sizeof(TupleTableSlot *) * OUTCOME_BUFFERED_ROWS);
	int			nbuf = 0;

	Assert(desc->natts == natts);
	estate->es_output_cid = GetCurrentCommandId(true);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	for (int i = 0; i <= nrows; i++)
	{
		if (i < nrows)
		{
			TupleTableSlot *slot;

			if (slots[nbuf] == NULL)
				slots[nbuf] = MakeSingleTupleTableSlot(desc, table_slot_callbacks(rel));
			slot = slots[nbuf];
			ExecClearTuple(slot);
			fill(arg, i, slot->tts_values, slot->tts_isnull);
			ExecStoreVirtualTuple(slot);
			nbuf++;
		}
		if (nbuf == OUTCOME_BUFFERED_ROWS || (i == nrows && nbuf > 0))
		{
			table_multi_insert(rel, slots, nbuf, estate->es_output_cid, 0, bistate);
			if (sort_att >= 0 && rri->ri_NumIndices > 0)
			{
				memcpy(sorted, slots, sizeof(TupleTableSlot *) * nbuf);
				SortAtt = sort_att;
				qsort(sorted, nbuf, sizeof(TupleTableSlot *), CompareSlots);
			}
			for (int j = 0; j < nbuf; j++)
			{
				List	   *recheck = NIL;

				if (rri->ri_NumIndices > 0)
					recheck = ExecInsertIndexTuples(rri, sort_att >= 0 ? sorted[j] : slots[j],
													estate, false, false, NULL, NIL);
				list_free(recheck);
			}
			for (int j = 0; j < nbuf; j++)
				ExecClearTuple(slots[j]);
			nbuf = 0;
		}
	}
	FreeBulkInsertState(bistate);
	for (int i = 0; i < OUTCOME_BUFFERED_ROWS && slots[i]; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
}

/* MultiInsertRows in InsertContext, emptied before and after. */
static void
MultiInsert(Oid relid, int nrows, int natts, int sort_att,
			void (*fill) (void *arg, int i, Datum *v, bool *n), void *arg)
{
	MemoryContext old;

	/* before too: a write that failed (a duplicate key) left its memory */
	MemoryContextReset(InsertContext());
	old = MemoryContextSwitchTo(InsertContext());
	MultiInsertRows(relid, nrows, natts, sort_att, fill, arg);
	MemoryContextSwitchTo(old);
	MemoryContextReset(InsertContext());
}

/* The first outcomes of a batch, by index. */
typedef struct FirstRows
{
	OutcomeBatch *b;
	int		   *rows;
	int			nfirst;
} FirstRows;

/* fill() of the first outcomes of a batch. */
static void
FillOutcome(void *arg, int i, Datum *v, bool *n)
{
	FirstRows  *f = arg;

	OutcomeValues(f->b, &f->b->records[f->rows[i]], v, n);
}

/* Inserts the first outcomes of a batch one by one, ON CONFLICT DO NOTHING. */
static void
InsertOutcomesOneByOne(OutcomeBatch *b)
{
	Datum		v[OUTCOME_COLUMNS];
	bool		n[OUTCOME_COLUMNS];
	char		nulls[OUTCOME_COLUMNS];

	if (InsertOnePlan == NULL)
	{
		static const Oid types[OUTCOME_COLUMNS] = {INT4OID, INT8OID, INT4OID,
			TEXTOID, JSONBOID, TEXTOID, TEXTOID, FLOAT8OID, FLOAT8OID, TEXTOID,
		FLOAT8OID, TEXTOID, FLOAT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, REGROLEOID};

		InsertOnePlan = OutcomePrepare("INSERT INTO streamml.outcome_rows (tracker, key_hash, "
									   "version, model, key, role, group_key, prediction, "
									   "probability, class, actual, actual_class, loss, "
									   "predicted_at, labelled_at, owner) VALUES ($1, $2, $3, "
									   "$4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
									   "$16) ON CONFLICT DO NOTHING",
									   OUTCOME_COLUMNS, (Oid *) types);
	}
	for (int j = 0; j < b->nrecords; j++)
	{
		OutcomeRecord *r = &b->records[j];

		if (!r->first)
			continue;
		OutcomeValues(b, r, v, n);
		for (int i = 0; i < OUTCOME_COLUMNS; i++)
			nulls[i] = n[i] ? 'n' : ' ';
		OutcomeExecute(InsertOnePlan, v, nulls, SPI_OK_INSERT);
		if (SPI_processed == 0)
			r->first = false;	/* a duplicate: the key had its outcome */
	}
}

/*
 * Marks the first outcomes whose key is one integer and already has an
 * outcome of the same model version as duplicates (first = false), by
 * the tracker's key sets (outcomekeys.c); returns how many first outcomes
 * are left.
 */
static int
CheckKeySets(OutcomeBatch *b, int count)
{
	const char **models = palloc(sizeof(char *) * count);
	int32	   *versions = palloc(sizeof(int32) * count);
	int64	   *keys = palloc(sizeof(int64) * count);
	bool	  **firsts = palloc(sizeof(bool *) * count);
	int			n = 0;
	int			left = 0;

	for (int j = 0; j < b->nrecords; j++)
	{
		OutcomeRecord *r = &b->records[j];

		if (!r->first)
			continue;
		RecordKeyHash(b, r);
		if (!r->key_plain)
			continue;
		models[n] = r->model;
		versions[n] = r->version;
		keys[n] = r->key_hash;
		firsts[n++] = &r->first;
	}
	OutcomeKeySetsCheck(b->t, models, versions, keys, firsts, n);
	for (int j = 0; j < b->nrecords; j++)
		left += b->records[j].first;
	return left;
}

/* Writes the f->nfirst first outcomes in bulk (InsertOutcomes). */
static void
InsertFirstRows(void *arg)
{
	FirstRows  *f = arg;

	MultiInsert(OutcomesRelid(), f->nfirst, OUTCOME_COLUMNS, OUTCOME_KEY_HASH,
				FillOutcome, f);
}

/*
 * Writes the first outcomes, once those of one-integer keys that were
 * labelled before are told apart (CheckKeySets): in one subtransaction
 * with table_multi_insert; on a unique violation (another key already
 * labelled), one by one instead.
 */
static void
InsertOutcomes(OutcomeBatch *b, int count)
{
	FirstRows	f;
	int			nfirst = 0;
	ErrorData  *e;

	if (count == 0)
		return;
	count = CheckKeySets(b, count);
	if (count == 0)
		return;
	f.b = b;
	f.rows = palloc(sizeof(int) * count);
	for (int j = 0; j < b->nrecords; j++)
		if (b->records[j].first)
			f.rows[nfirst++] = j;
	f.nfirst = nfirst;
	e = TrySubtransaction(InsertFirstRows, &f);
	if (e != NULL)
	{
		/* the subtransaction went first, whatever the error */
		if (e->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
			ReThrowError(e);
		InsertOutcomesOneByOne(b);
	}
}

/* The pending outcomes of a batch. */
typedef struct PendingRows
{
	OutcomeBatch *b;
	PendingOutcome *rows;
} PendingRows;

/* fill() of pending_outcomes rows. */
static void
FillPending(void *arg, int i, Datum *v, bool *n)
{
	PendingRows *p = arg;
	PendingOutcome *o = &p->rows[i];

	/* tracker, key, actual_number, actual_text, group_key, labelled_at, owner */
	memset(n, false, sizeof(bool) * 7);
	v[0] = Int32GetDatum(p->b->t->id);
	v[1] = o->key;
	v[2] = Float8GetDatum(o->actual_number);
	n[2] = !o->has_number;
	if (o->actual_text)
		v[3] = CStringGetTextDatum(o->actual_text);
	else if (o->has_number)
		v[3] = CStringGetTextDatum(Float8TextExact(o->actual_number));
	else
		n[3] = true;
	v[4] = CStringGetTextDatum(o->group_key ? o->group_key : "");
	v[5] = TimestampTzGetDatum(o->labelled_at);
	v[6] = ObjectIdGetDatum(p->b->t->owner);
}

/*
 * Takes the joined rows of a statement (SPI_tuptable, the columns J_*, in
 * arrival order): rows without a prediction go to pending_outcomes when
 * pending_ok, the others are written as outcomes and counted.
 */
void
OutcomeBatchAddJoined(OutcomeBatch *b, SPITupleTable *tt, uint64 n,
					  bool pending_ok)
{
	PendingOutcome *pending = palloc(sizeof(PendingOutcome) * Max(n, 1));
	OutcomeRecord *records = palloc(sizeof(OutcomeRecord) * Max(n, 1));
	int			npending = 0;
	int			nrecords = 0;

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = tt->vals[i];
		TupleDesc	desc = tt->tupdesc;

		if (MakeRecord(b, tup, desc, &records[nrecords]))
			nrecords++;
		else if (pending_ok)
		{
			PendingOutcome *o = &pending[npending++];
			bool		isnull;

			o->key = SPI_getbinval(tup, desc, J_KEY, &isnull);
			o->has_number = GetFloat(tup, desc, J_ACTUAL_NUMBER, &o->actual_number);
			o->actual_text = GetText(tup, desc, J_ACTUAL_TEXT);
			o->group_key = GetText(tup, desc, J_GROUP_KEY);
			o->labelled_at = DatumGetTimestampTz(SPI_getbinval(tup, desc,
															   J_LABELLED_AT, &isnull));
		}
	}
	OutcomeBatchAddRecords(b, records, nrecords, pending, npending);
}

/*
 * Takes a batch's outcomes joined with their predictions, in arrival order
 * (records: the first of a key has first set), and those without a
 * prediction (pending): writes them, counts them, shows the new ones to
 * the monitors.
 */
void
OutcomeBatchAddRecords(OutcomeBatch *b, OutcomeRecord *records, int n,
					   PendingOutcome *pending, int npending)
{
	int			nfirst = 0;

	b->records = records;
	b->nrecords = n;
	for (int j = 0; j < n; j++)
		nfirst += records[j].first;
	if (npending > 0)
	{
		PendingRows p;

		p.b = b;
		p.rows = pending;
		MultiInsert(PendingOutcomesRelid(), npending, 7, -1, FillPending, &p);
	}
	InsertOutcomes(b, nfirst);
	for (int j = 0; j < b->nrecords; j++)
		CountOutcome(b, &b->records[j]);
	CountPairs(b);

	/*
	 * Here the batch's new outcomes are known, in arrival order (duplicates
	 * have first = false): the monitors' detectors see them, in this
	 * transaction (src/monitor/monitorobserve.c).
	 */
	if (nfirst > 0)
	{
		MonitorOutcome *o = palloc(sizeof(MonitorOutcome) * nfirst);
		int			no = 0;

		for (int j = 0; j < b->nrecords; j++)
		{
			OutcomeRecord *r = &b->records[j];

			if (!r->first)
				continue;
			o[no].model = r->model;
			o[no].version = r->version;
			o[no].role = r->role;
			o[no].prediction = r->has_prediction ? r->prediction : 0.0;
			o[no].prediction_null = !r->has_prediction;
			o[no].actual = r->has_actual ? r->actual : 0.0;
			o[no].actual_null = !r->has_actual;
			no++;
		}
		MonitorsObserveOutcomes(o, no, b->t->owner);
		pfree(o);
	}
}

/* The batch's first outcomes, in arrival order (duplicates: first false). */
OutcomeRecord *
OutcomeBatchRecords(OutcomeBatch *b, int *n)
{
	*n = b->nrecords;
	return b->records;
}

/* A histogram as a bigint[] datum. */
static Datum
HistogramDatum(int64 *h, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(h[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

/* Adds the batch's sums to streamml.quality_buckets: one upsert per row. */
void
OutcomeBatchFinish(OutcomeBatch *b)
{
	ListCell   *lc;
	int			nparams = 7 + NSUMS + 4;

	if (UpsertPlan == NULL)
	{
		StringInfoData s;
		Oid		   *types = palloc(sizeof(Oid) * nparams);
		int			k = 0;

		types[k++] = INT4OID;
		types[k++] = TEXTOID;
		types[k++] = INT4OID;
		types[k++] = TEXTOID;
		types[k++] = TEXTOID;
		types[k++] = TIMESTAMPTZOID;
		types[k++] = INT4OID;
		for (int i = 0; SumColumns[i]; i++)
			types[k++] = strstr(SumColumns[i], "_sum") ? FLOAT8OID : INT8OID;
		types[k++] = INT8ARRAYOID;
		types[k++] = INT8ARRAYOID;
		types[k++] = REGROLEOID;
		types[k++] = TIMESTAMPTZOID;
		initStringInfo(&s);
		appendStringInfoString(&s, "INSERT INTO streamml.quality_buckets AS q (tracker, model, "
							   "version, role, group_key, bucket, shard");
		for (int i = 0; SumColumns[i]; i++)
			appendStringInfo(&s, ", %s", SumColumns[i]);
		appendStringInfoString(&s, ", lag_hist, score_hist, owner, updated_at) VALUES ($1");
		for (int i = 2; i <= nparams; i++)
			appendStringInfo(&s, ", $%d", i);
		appendStringInfoString(&s, ") ON CONFLICT (tracker, model, version, role, group_key, "
							   "bucket, shard) DO UPDATE SET ");
		for (int i = 0; SumColumns[i]; i++)
			appendStringInfo(&s, "%s = q.%s + excluded.%s, ", SumColumns[i],
							 SumColumns[i], SumColumns[i]);
		appendStringInfoString(&s,
							   "lag_hist = streamml.histogram_add(q.lag_hist, excluded.lag_hist), "
							   "score_hist = streamml.histogram_add(q.score_hist, excluded.score_hist), "
							   "owner = excluded.owner, updated_at = excluded.updated_at");
		UpsertPlan = OutcomePrepare(s.data, nparams, types);
	}
	foreach(lc, b->buckets)
	{
		BucketSums *s = lfirst(lc);
		Datum	   *v = palloc(sizeof(Datum) * nparams);
		char	   *nulls = palloc(nparams);
		int			k = 0;

		memset(nulls, ' ', nparams);
		v[k++] = Int32GetDatum(b->t->id);
		v[k++] = CStringGetTextDatum(s->model);
		v[k++] = Int32GetDatum(s->version);
		v[k++] = CStringGetTextDatum(s->role);
		v[k++] = CStringGetTextDatum(s->group_key);
		v[k++] = TimestampTzGetDatum(s->bucket);
		v[k++] = Int32GetDatum(MyBackendId);
		for (int i = 0; SumColumns[i]; i++, k++)
			v[k] = strstr(SumColumns[i], "_sum") ? Float8GetDatum(s->sums[i]) :
				Int64GetDatum((int64) s->sums[i]);
		if (s->lag_hist)
			v[k] = HistogramDatum(s->lag_hist, LAG_BINS);
		else
			nulls[k] = 'n';
		k++;
		if (s->score_hist)
			v[k] = HistogramDatum(s->score_hist, 2 * SCORE_BINS);
		else
			nulls[k] = 'n';
		k++;
		v[k++] = ObjectIdGetDatum(b->t->owner);
		v[k++] = TimestampTzGetDatum(b->now);
		OutcomeExecute(UpsertPlan, v, nulls, SPI_OK_INSERT);
	}
	/* new pairs: the scorer's auto_promote test, if it has one */
	if (b->npairs > 0)
		ScorerAutoPromote(b->t->scorer, b->t->id);
}
