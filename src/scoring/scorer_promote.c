/*
 * scorer_promote.c
 *		Champion and challengers: streamml.promote, set_challengers, the
 *		paired test behind the streamml.challengers view, and automatic
 *		promotion.
 *
 * A scorer serves its model (the champion, role 'champion' in the
 * predictions table) and shadow-scores its challengers (option
 * "challengers", other models, role 'challenger') into the same table in
 * the same statement (scorerinsert.c).  The predictions table's unique key
 * stays (key columns, model): a challenger is another model, so each model
 * has at most one prediction per key and exactly-once stays checkable per
 * model; the role says which one was served.
 *
 * The test.  When the scorer's outcomes are tracked, every labelled key
 * scored by the champion and a challenger gives a paired loss difference
 * d = loss(champion) - loss(challenger), with the tracker's per-row loss
 * (log loss for binary classifiers, 0/1 for other classifiers, squared
 * error for regressions); outcomewrite.c adds n, sum d and sum d^2 to the
 * challenger's bucket rows.  The challenger is better when E[d] > 0.  The
 * statistic is the Diebold-Mariano test of equal predictive accuracy
 * (Diebold and Mariano, "Comparing Predictive Accuracy", Journal of
 * Business & Economic Statistics 13(3), 1995), i.e. a paired t statistic
 * on the loss differential: z = mean(d) / sqrt(var(d) / n), var with n - 1,
 * compared with the standard normal (its asymptotic law; n >= 30 is
 * enforced), one-sided: p = P(Z >= z).  As used here the variance is the
 * plain one (horizon-1 forecasts: no autocorrelation correction), and the
 * test is repeated after every batch that adds pairs, so the chance of a
 * false promotion over a long run is larger than alpha: hence the strict
 * default alpha = 0.01 and the minimum of 1000 pairs.
 *
 * Option "auto_promote" {"min_rows": N (1000), "alpha": a (0.01)}: after
 * each outcome batch that adds pairs, the challenger with the smallest
 * p-value among those with at least N pairs is promoted when p < a, in the
 * batch's transaction.  Promoting (by hand or automatically) makes the
 * challenger the scorer's model from the next statement on, removes it
 * from the challengers (the former champion is not kept), starts the pairs
 * of the remaining challengers again (a baseline of their sums is stored,
 * since the champion they were compared with changed), and is recorded in
 * the scorer's catalog row (champion_since, last_promotion, shown by
 * streamml.scorers) and by a NOTICE.  streamml.model_events does not exist
 * in this build; last_promotion is what a later event log can copy.
 */
#include "postgres.h"

#include <math.h>

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/array.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

#include "ml/ml.h"
#include "options.h"
#include "pg_streamml.h"
#include "scoring/scorer.h"

/* The sums of a challenger's pairs since its baseline. */
typedef struct PairSums
{
	char	   *model;
	double		n;
	double		sum;
	double		sumsq;
} PairSums;

/*
 * One-sided p-value of the paired test (see the top): P(Z >= z) for
 * z = mean / sqrt(var / n); NaN below 2 pairs.  *z is set.
 */
static double
PairedPValue(double n, double sum, double sumsq, double *z)
{
	double		mean;
	double		var;

	*z = NAN;
	if (n < 2)
		return NAN;
	mean = sum / n;
	var = (sumsq - n * mean * mean) / (n - 1);
	if (var <= 0)
	{
		/* all differences equal: certain, one way or the other */
		*z = mean > 0 ? INFINITY : (mean < 0 ? -INFINITY : 0);
		return mean > 0 ? 0.0 : (mean < 0 ? 1.0 : 0.5);
	}
	*z = mean / sqrt(var / n);
	return 0.5 * erfc(*z / M_SQRT2);
}

PG_FUNCTION_INFO_V1(paired_loss_p_value);

/*
 * SQL streamml.paired_loss_p_value(n, diff_sum, diff_sq_sum) → float8:
 * the one-sided p-value that the mean loss difference (champion minus
 * challenger) is not positive; NULL below 2 pairs.
 */
Datum
paired_loss_p_value(PG_FUNCTION_ARGS)
{
	double		z;
	double		p = PairedPValue((double) PG_GETARG_INT64(0), PG_GETARG_FLOAT8(1),
								 PG_GETARG_FLOAT8(2), &z);

	if (isnan(p))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(p);
}

/*
 * The pair sums of a scorer's challengers, less their baseline (SPI
 * connected).  Returns the number of entries in *out.
 */
static int
ChallengerSums(const char *scorer, Jsonb *baseline, PairSums **out)
{
	Datum		arg = CStringGetTextDatum(scorer);
	uint64		n;
	SPITupleTable *tt;

	n = CatalogExecute("SELECT q.model, pg_catalog.sum(q.pair_n)::float8, "
					   "pg_catalog.sum(q.pair_diff_sum), pg_catalog.sum(q.pair_diff_sq_sum) "
					   "FROM streamml.quality_buckets q JOIN streamml.outcome_trackers t "
					   "ON t.id OPERATOR(pg_catalog.=) q.tracker "
					   "WHERE t.scorer OPERATOR(pg_catalog.=) $1 "
					   "AND q.role OPERATOR(pg_catalog.=) 'challenger' GROUP BY q.model",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	tt = SPI_tuptable;
	*out = palloc0(sizeof(PairSums) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		PairSums   *s = &(*out)[i];
		bool		isnull;
		JsonbValue *b;

		s->model = SPI_getvalue(tt->vals[i], tt->tupdesc, 1);
		s->n = DatumGetFloat8(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
		s->sum = DatumGetFloat8(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
		s->sumsq = DatumGetFloat8(SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull));
		b = baseline ? getKeyJsonValueFromContainer(&baseline->root, s->model,
													strlen(s->model), NULL) : NULL;
		if (b && b->type == jbvBinary && JsonContainerIsArray(b->val.binary.data) &&
			JsonContainerSize(b->val.binary.data) == 3)
		{
			double		v[3];

			for (int k = 0; k < 3; k++)
			{
				JsonbValue *e = getIthJsonbValueFromContainer(b->val.binary.data, k);

				v[k] = (e && e->type == jbvNumeric) ?
					DatumGetFloat8(DirectFunctionCall1(numeric_float8,
													   NumericGetDatum(e->val.numeric))) : 0;
			}
			s->n -= v[0];
			s->sum -= v[1];
			s->sumsq -= v[2];
		}
	}
	return (int) n;
}

/* The current pair sums of a scorer's challengers as a baseline (jsonb). */
static Datum
CurrentBaseline(const char *scorer)
{
	Datum		arg = CStringGetTextDatum(scorer);
	bool		isnull;

	CatalogExecute("SELECT COALESCE(pg_catalog.jsonb_object_agg(s.model, "
				   "pg_catalog.jsonb_build_array(s.n, s.d, s.d2)), '{}') FROM "
				   "(SELECT q.model, pg_catalog.sum(q.pair_n) AS n, pg_catalog.sum(q.pair_diff_sum) AS d, "
				   "pg_catalog.sum(q.pair_diff_sq_sum) AS d2 FROM streamml.quality_buckets q "
				   "JOIN streamml.outcome_trackers t ON t.id OPERATOR(pg_catalog.=) q.tracker "
				   "WHERE t.scorer OPERATOR(pg_catalog.=) $1 "
				   "AND q.role OPERATOR(pg_catalog.=) 'challenger' GROUP BY q.model) s",
				   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
}

/* The challengers option as a jsonb array text, without one of them. */
static char *
ChallengersWithout(char **ch, int n, const char *drop)
{
	StringInfoData s;
	bool		first = true;

	initStringInfo(&s);
	appendStringInfoChar(&s, '[');
	for (int i = 0; i < n; i++)
	{
		if (drop && strcmp(ch[i], drop) == 0)
			continue;
		if (!first)
			appendStringInfoString(&s, ", ");
		escape_json(&s, ch[i]);
		first = false;
	}
	appendStringInfoChar(&s, ']');
	return s.data;
}

/*
 * Promotes a challenger (SPI connected; privileges checked by the
 * caller): see the top of the file.  Returns false when the scorer's
 * champion is no longer old_model (a concurrent promotion won).
 */
static bool
PromoteTo(const char *scorer, const char *old_model, Jsonb *options,
		  const char *challenger, const char *how, PairSums *stats,
		  double alpha, int64 min_rows)
{
	int			n;
	char	  **ch = ScorerChallengers(options, &n);
	StringInfoData rec;
	Datum		args[5];
	double		z = NAN;
	double		p = NAN;
	uint64		done;

	initStringInfo(&rec);
	appendStringInfoString(&rec, "{\"from\": ");
	escape_json(&rec, old_model);
	appendStringInfoString(&rec, ", \"to\": ");
	escape_json(&rec, challenger);
	appendStringInfo(&rec, ", \"how\": \"%s\"", how);
	if (stats && stats->n > 0)
	{
		p = PairedPValue(stats->n, stats->sum, stats->sumsq, &z);
		appendStringInfo(&rec, ", \"pairs\": %.0f, \"mean_loss_difference\": %.17g",
						 stats->n, stats->sum / stats->n);
		if (isfinite(z))
			appendStringInfo(&rec, ", \"z\": %.17g", z);
		if (!isnan(p))
			appendStringInfo(&rec, ", \"p_value\": %.17g", p);
	}
	if (alpha > 0)
		appendStringInfo(&rec, ", \"alpha\": %.17g, \"min_rows\": " INT64_FORMAT,
						 alpha, min_rows);
	appendStringInfoChar(&rec, '}');

	args[0] = CStringGetTextDatum(scorer);
	args[1] = CStringGetTextDatum(challenger);
	args[2] = CStringGetTextDatum(ChallengersWithout(ch, n, challenger));
	args[3] = CStringGetTextDatum(rec.data);
	args[4] = CStringGetTextDatum(old_model);
	done = CatalogExecute("UPDATE streamml.scorers_catalog SET model = $2, "
						  "options = pg_catalog.jsonb_set(options, '{challengers}', $3::pg_catalog.jsonb), "
						  "champion_since = pg_catalog.now(), "
						  "last_promotion = $4::pg_catalog.jsonb OPERATOR(pg_catalog.||) "
						  "pg_catalog.jsonb_build_object('at', pg_catalog.now()) "
						  "WHERE name OPERATOR(pg_catalog.=) $1 AND model OPERATOR(pg_catalog.=) $5",
						  5, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID},
						  args, NULL, SPI_OK_UPDATE);
	if (done == 0)
		return false;
	/* the remaining challengers are compared with the new champion afresh */
	{
		Datum		bargs[2];

		bargs[0] = args[0];
		bargs[1] = CurrentBaseline(scorer);
		CatalogExecute("UPDATE streamml.scorers_catalog SET challenger_baseline = $2 "
					   "WHERE name OPERATOR(pg_catalog.=) $1",
					   2, (Oid[]) {TEXTOID, JSONBOID}, bargs, NULL, SPI_OK_UPDATE);
	}
	ereport(NOTICE,
			(errmsg("scorer \"%s\" promoted challenger \"%s\" over \"%s\"",
					scorer, challenger, old_model),
			 errdetail("%s", rec.data)));
	return true;
}

/* The scorer's catalog row (SPI connected); false when it does not exist. */
static bool
LoadScorer(const char *scorer, Oid *owner, char **model, Jsonb **options,
		   Jsonb **baseline, bool lock)
{
	Datum		arg = CStringGetTextDatum(scorer);
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;
	MemoryContext outer = CurrentMemoryContext;

	if (CatalogExecute(lock ?
					   "SELECT owner, model, options, challenger_baseline FROM streamml.scorers_catalog "
					   "WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE" :
					   "SELECT owner, model, options, challenger_baseline FROM streamml.scorers_catalog "
					   "WHERE name OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT) == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	MemoryContextSwitchTo(outer);
	*owner = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
	*model = SPI_getvalue(tup, desc, 2);
	*options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 3, &isnull));
	*baseline = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 4, &isnull));
	return true;
}

/*
 * After an outcome batch that added pairs (outcomewrite.c; SPI
 * connected): promotes the best challenger if the scorer's auto_promote
 * test says so.
 */
void
ScorerAutoPromote(const char *scorer, int32 tracker)
{
	Oid			owner;
	char	   *model;
	Jsonb	   *options;
	Jsonb	   *baseline;
	Jsonb	   *ap;
	JsonbValue *v;
	int64		min_rows;
	double		alpha;
	int			nch;
	char	  **ch;
	PairSums   *sums;
	int			ns;
	PairSums   *best = NULL;
	double		best_p = 1.0;

	if (!LoadScorer(scorer, &owner, &model, &options, &baseline, false))
		return;
	v = OptionGet(options, "auto_promote");
	if (v == NULL)
		return;
	ap = JsonbValueToJsonb(v);
	min_rows = OptionInteger(ap, "min_rows", 1000, 30, INT_MAX);
	alpha = OptionNumber(ap, "alpha", 0.01, 1e-12, 0.5);
	ch = ScorerChallengers(options, &nch);
	ns = ChallengerSums(scorer, baseline, &sums);
	for (int i = 0; i < ns; i++)
	{
		bool		current = false;
		double		z;
		double		p;

		for (int j = 0; j < nch; j++)
			current |= strcmp(ch[j], sums[i].model) == 0;
		if (!current || sums[i].n < min_rows)
			continue;
		p = PairedPValue(sums[i].n, sums[i].sum, sums[i].sumsq, &z);
		if (!isnan(p) && p < alpha && (best == NULL || p < best_p))
		{
			best = &sums[i];
			best_p = p;
		}
	}
	if (best)
		(void) PromoteTo(scorer, model, options, best->model, "auto", best,
						 alpha, min_rows);
}

PG_FUNCTION_INFO_V1(scorer_promote);

/*
 * SQL streamml.promote(scorer, challenger) → text: makes a challenger the
 * scorer's model; returns the former champion.
 */
Datum
scorer_promote(PG_FUNCTION_ARGS)
{
	char	   *scorer = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *challenger = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Oid			owner;
	char	   *model;
	Jsonb	   *options;
	Jsonb	   *baseline;
	int			nch;
	char	  **ch;
	bool		found = false;
	PairSums   *sums;
	PairSums   *stats = NULL;
	int			ns;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!LoadScorer(scorer, &owner, &model, &options, &baseline, true) ||
		!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("scorer \"%s\" does not exist", scorer)));
	ch = ScorerChallengers(options, &nch);
	for (int i = 0; i < nch; i++)
		found |= strcmp(ch[i], challenger) == 0;
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model \"%s\" is not a challenger of scorer \"%s\"",
						challenger, scorer),
				 errhint("Add it with streamml.set_challengers.")));
	{
		ServedModelInfo info;

		/* the caller may use it, and it has a deployed version */
		(void) ServedModelGet(challenger, &info);
	}
	ns = ChallengerSums(scorer, baseline, &sums);
	for (int i = 0; i < ns; i++)
		if (strcmp(sums[i].model, challenger) == 0)
			stats = &sums[i];
	(void) PromoteTo(scorer, model, options, challenger, "manual", stats, 0, 0);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(model));
}

PG_FUNCTION_INFO_V1(scorer_set_challengers);

/*
 * SQL streamml.set_challengers(scorer, challengers text[], auto_promote
 * jsonb DEFAULT NULL): replaces the challengers (an empty array: none) and
 * the auto_promote option (NULL: none); their pairs start afresh.
 */
Datum
scorer_set_challengers(PG_FUNCTION_ARGS)
{
	char	   *scorer;
	ArrayType  *arr;
	Oid			owner;
	char	   *model;
	Jsonb	   *options;
	Jsonb	   *baseline;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	StringInfoData s;
	Datum		args[4];
	char		argnulls[4] = {' ', ' ', ' ', ' '};
	Relation	source;
	Oid			sourceid;
	Jsonb	   *newopts;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("scorer and challengers must not be NULL"),
				 errhint("An empty array removes the challengers.")));
	scorer = text_to_cstring(PG_GETARG_TEXT_PP(0));
	arr = PG_GETARG_ARRAYTYPE_P(1);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!LoadScorer(scorer, &owner, &model, &options, &baseline, true) ||
		!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("scorer \"%s\" does not exist", scorer)));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	initStringInfo(&s);
	appendStringInfoChar(&s, '[');
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a challenger cannot be NULL")));
		if (i > 0)
			appendStringInfoString(&s, ", ");
		escape_json(&s, TextDatumGetCString(elems[i]));
	}
	appendStringInfoChar(&s, ']');

	/* the new options, checked as create_scorer checks them */
	args[0] = CStringGetTextDatum(scorer);
	args[1] = CStringGetTextDatum(s.data);
	if (PG_ARGISNULL(2))
		argnulls[2] = 'n';
	else
		args[2] = PointerGetDatum(PG_GETARG_JSONB_P(2));
	CatalogExecute("SELECT (pg_catalog.jsonb_set(s.options, '{challengers}', $2::pg_catalog.jsonb) "
				   "OPERATOR(pg_catalog.-) 'auto_promote') OPERATOR(pg_catalog.||) "
				   "CASE WHEN $3::pg_catalog.jsonb IS NULL THEN '{}'::pg_catalog.jsonb "
				   "ELSE pg_catalog.jsonb_build_object('auto_promote', $3::pg_catalog.jsonb) END, "
				   "s.source FROM streamml.scorers_catalog s WHERE s.name OPERATOR(pg_catalog.=) $1",
				   3, (Oid[]) {TEXTOID, TEXTOID, JSONBOID}, args, argnulls, SPI_OK_SELECT);
	{
		bool		isnull;

		newopts = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
		sourceid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 2, &isnull));
	}
	source = relation_open(sourceid, AccessShareLock);
	ScorerCheckChallengers(source, newopts, model);
	relation_close(source, AccessShareLock);

	args[1] = JsonbPGetDatum(newopts);
	args[2] = CurrentBaseline(scorer);
	CatalogExecute("UPDATE streamml.scorers_catalog SET options = $2, challenger_baseline = $3 "
				   "WHERE name OPERATOR(pg_catalog.=) $1",
				   3, (Oid[]) {TEXTOID, JSONBOID, JSONBOID}, args, NULL, SPI_OK_UPDATE);
	SPI_finish();
	PG_RETURN_VOID();
}
