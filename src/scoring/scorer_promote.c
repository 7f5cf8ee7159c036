/*
 * scorer_promote.c
 *		Champion and challengers: streamml.promote, set_challengers, the
 *		paired test behind the streamml.challengers view, and automatic
 *		promotion.
 *
 * A scorer serves its model (the champion, role 'champion' in the
 * predictions table) and shadow-scores its challengers (option
 * "challengers", role 'challenger') into the same table in the same
 * statement (scorerinsert.c).  A challenger is another model, named by a
 * string and served at its deployed version, or a version of a model, an
 * object {"model": m, "version": v}, served at that version whatever is
 * deployed: the champion's own model included, which is how a new version
 * is tried on live rows before it is deployed.  An object rather than a
 * spelling such as 'm@3' because a model name may contain any character.
 * A model is a challenger in one form or the other, not both.
 *
 * The predictions table's unique key is (key columns, model) while every
 * model is served at one version: each model has at most one prediction
 * per key, exactly-once is checkable per model, and the role says which
 * one was served.  A scorer that serves a model at two versions (a version
 * challenger of the champion's model, or of a model another challenger
 * names) needs (key columns, model, version) instead, and no unique index
 * on (key columns, model): exactly-once is then checkable per version
 * (create_scorer makes that key when the challengers ask for it).  A
 * version challenger whose version is the one the champion serves (once
 * deployed) is not scored twice: its rows are the champion's.
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
 * streamml.scorers) and by a NOTICE.  Promoting a version challenger
 * deploys that version (ModelDeploy, as streamml.deploy: every user of the
 * model is served it, and streamml.rollback can undo it) and makes its
 * model the scorer's; last_promotion then has from_version and to_version.
 * Only the model's owner may do that: promote checks the caller, and
 * auto_promote with a version challenger is refused unless the scorer's
 * owner owns its model (checked again before each automatic promotion).
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
#include "quality/quality.h"
#include "scoring/scorer.h"

/* The sums of a challenger's pairs since its baseline. */
typedef struct PairSums
{
	ScorerChallenger ch;
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
 * The baseline entry of a challenger: baseline->model, an array [n, sum,
 * sumsq], for a model; baseline->model->version for a version (a model is
 * a challenger in one of the two forms only, so the keys never clash).
 */
static JsonbValue *
BaselineEntry(Jsonb *baseline, const ScorerChallenger *c)
{
	JsonbValue *b;
	char	   *v;

	if (baseline == NULL)
		return NULL;
	b = getKeyJsonValueFromContainer(&baseline->root, c->model,
									 strlen(c->model), NULL);
	if (b == NULL || c->version == 0)
		return b;
	if (b->type != jbvBinary || !JsonContainerIsObject(b->val.binary.data))
		return NULL;
	v = psprintf("%d", c->version);
	return getKeyJsonValueFromContainer(b->val.binary.data, v, strlen(v), NULL);
}

/*
 * The pair sums of each of a scorer's challengers ch (SPI connected),
 * less their baseline when one is given: a model's over all its versions
 * scored as a challenger, a version's over that version.  Returns an array
 * of n entries.
 */
static PairSums *
ChallengerSums(const char *scorer, Jsonb *baseline, ScorerChallenger *ch, int n)
{
	Datum		arg = CStringGetTextDatum(scorer);
	uint64		rows;
	SPITupleTable *tt;
	PairSums   *out = palloc0(sizeof(PairSums) * Max(n, 1));

	rows = CatalogExecute("SELECT q.model, q.version, pg_catalog.sum(q.pair_n)::float8, "
						  "pg_catalog.sum(q.pair_diff_sum), pg_catalog.sum(q.pair_diff_sq_sum) "
						  "FROM streamml.quality_buckets q JOIN streamml.outcome_trackers t "
						  "ON t.id OPERATOR(pg_catalog.=) q.tracker "
						  "WHERE t.scorer OPERATOR(pg_catalog.=) $1 "
						  "AND q.role OPERATOR(pg_catalog.=) 'challenger' "
						  "GROUP BY q.model, q.version",
						  1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	tt = SPI_tuptable;
	for (int i = 0; i < n; i++)
	{
		PairSums   *s = &out[i];
		JsonbValue *b;

		s->ch = ch[i];
		for (uint64 r = 0; r < rows; r++)
		{
			bool		isnull;
			char	   *model = SPI_getvalue(tt->vals[r], tt->tupdesc, 1);
			int32		version = DatumGetInt32(SPI_getbinval(tt->vals[r], tt->tupdesc, 2, &isnull));

			if (strcmp(model, ch[i].model) != 0 ||
				(ch[i].version != 0 && version != ch[i].version))
				continue;
			s->n += DatumGetFloat8(SPI_getbinval(tt->vals[r], tt->tupdesc, 3, &isnull));
			s->sum += DatumGetFloat8(SPI_getbinval(tt->vals[r], tt->tupdesc, 4, &isnull));
			s->sumsq += DatumGetFloat8(SPI_getbinval(tt->vals[r], tt->tupdesc, 5, &isnull));
		}
		b = BaselineEntry(baseline, &ch[i]);
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
	return out;
}

/*
 * The current pair sums of challengers ch as a baseline (jsonb, see
 * BaselineEntry): their comparison starts afresh from here.
 */
static Datum
CurrentBaseline(const char *scorer, ScorerChallenger *ch, int n)
{
	PairSums   *sums = ChallengerSums(scorer, NULL, ch, n);
	StringInfoData b;
	bool		first = true;

	initStringInfo(&b);
	appendStringInfoChar(&b, '{');
	for (int i = 0; i < n; i++)
	{
		bool		seen = false;

		/* a model's versions go in one object, written at its first */
		for (int j = 0; j < i; j++)
			seen |= strcmp(ch[i].model, ch[j].model) == 0;
		if (seen)
			continue;
		if (!first)
			appendStringInfoString(&b, ", ");
		first = false;
		escape_json(&b, ch[i].model);
		if (ch[i].version == 0)
		{
			appendStringInfo(&b, ": [%.0f, %.17g, %.17g]", sums[i].n,
							 sums[i].sum, sums[i].sumsq);
			continue;
		}
		appendStringInfoString(&b, ": {");
		for (int j = i; j < n; j++)
			if (strcmp(ch[i].model, ch[j].model) == 0)
				appendStringInfo(&b, "%s\"%d\": [%.0f, %.17g, %.17g]",
								 j > i ? ", " : "", ch[j].version, sums[j].n,
								 sums[j].sum, sums[j].sumsq);
		appendStringInfoChar(&b, '}');
	}
	appendStringInfoChar(&b, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(b.data));
}

/* Appends a challenger as an element of option "challengers". */
static void
AppendChallenger(StringInfo s, const ScorerChallenger *c)
{
	if (c->version == 0)
	{
		escape_json(s, c->model);
		return;
	}
	appendStringInfoString(s, "{\"model\": ");
	escape_json(s, c->model);
	appendStringInfo(s, ", \"version\": %d}", c->version);
}

/*
 * The challengers without one of them (drop, or NULL): *n is updated, and
 * the option "challengers" is returned as a jsonb array's text.
 */
static char *
ChallengersWithout(ScorerChallenger *ch, int *n, const ScorerChallenger *drop)
{
	StringInfoData s;
	int			kept = 0;

	initStringInfo(&s);
	appendStringInfoChar(&s, '[');
	for (int i = 0; i < *n; i++)
	{
		if (drop && strcmp(ch[i].model, drop->model) == 0 &&
			ch[i].version == drop->version)
			continue;
		if (kept > 0)
			appendStringInfoString(&s, ", ");
		AppendChallenger(&s, &ch[i]);
		ch[kept++] = ch[i];
	}
	appendStringInfoChar(&s, ']');
	*n = kept;
	return s.data;
}

/*
 * Promotes a challenger (SPI connected; privileges checked by the
 * caller): see the top of the file.  A version is deployed first
 * (ModelDeployBy, as streamml.deploy does), recorded as deployed by role
 * by (the caller, or the scorer's owner when the promotion is automatic).
 * Returns false when the
 * scorer's champion is no longer old_model (a concurrent promotion won).
 */
static bool
PromoteTo(const char *scorer, const char *old_model, Jsonb *options,
		  const ScorerChallenger *challenger, const char *how, PairSums *stats,
		  double alpha, int64 min_rows, Oid by)
{
	int			n;
	ScorerChallenger *ch = ScorerChallengers(options, &n);
	StringInfoData rec;
	Datum		args[5];
	double		z = NAN;
	double		p = NAN;
	uint64		done;
	int32		from_version = 0;

	if (challenger->version > 0)
		from_version = ModelDeployedVersion(old_model);
	initStringInfo(&rec);
	appendStringInfoString(&rec, "{\"from\": ");
	escape_json(&rec, old_model);
	if (challenger->version > 0 && from_version > 0)
		appendStringInfo(&rec, ", \"from_version\": %d", from_version);
	appendStringInfoString(&rec, ", \"to\": ");
	escape_json(&rec, challenger->model);
	if (challenger->version > 0)
		appendStringInfo(&rec, ", \"to_version\": %d", challenger->version);
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

	/*
	 * Its trackers' predictions tables hold the former champion's rows:
	 * the floors of their in-memory joins move above them (a lock taken
	 * before the scorer's row is, as a load takes them)
	 */
	OutcomeTrackersRearm(scorer, strcmp(how, "auto") != 0);
	args[0] = CStringGetTextDatum(scorer);
	args[1] = CStringGetTextDatum(challenger->model);
	args[2] = CStringGetTextDatum(ChallengersWithout(ch, &n, challenger));
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
	/* a version is served once deployed: by every user of the model */
	if (challenger->version > 0)
		ModelDeployBy(challenger->model, challenger->version, by);
	/* the remaining challengers are compared with the new champion afresh */
	{
		Datum		bargs[2];

		bargs[0] = args[0];
		bargs[1] = CurrentBaseline(scorer, ch, n);
		CatalogExecute("UPDATE streamml.scorers_catalog SET challenger_baseline = $2 "
					   "WHERE name OPERATOR(pg_catalog.=) $1",
					   2, (Oid[]) {TEXTOID, JSONBOID}, bargs, NULL, SPI_OK_UPDATE);
	}
	ereport(NOTICE,
			(errmsg("scorer \"%s\" promoted challenger %s over \"%s\"",
					scorer, ScorerChallengerName(challenger), old_model),
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

/* Whether role may deploy a model: it has the privileges of its owner. */
static bool
MayDeploy(const char *model, Oid role)
{
	Datum		arg = CStringGetTextDatum(model);
	bool		isnull;

	if (CatalogExecute("SELECT m.owner FROM streamml.models m "
					   "WHERE m.name OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT) != 1)
		return false;
	return has_privs_of_role(role,
							 DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc,
															1, &isnull)));
}

/*
 * After an outcome batch that added pairs (outcomewrite.c; SPI
 * connected): promotes the best challenger if the scorer's auto_promote
 * test says so.  A version is promoted only while the scorer's owner may
 * deploy its model (checked when auto_promote was set, and again here).
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
	ScorerChallenger *ch;
	PairSums   *sums;
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
	sums = ChallengerSums(scorer, baseline, ch, nch);
	for (int i = 0; i < nch; i++)
	{
		double		z;
		double		p;

		if (sums[i].n < min_rows)
			continue;
		p = PairedPValue(sums[i].n, sums[i].sum, sums[i].sumsq, &z);
		if (!isnan(p) && p < alpha && (best == NULL || p < best_p) &&
			(ch[i].version == 0 || MayDeploy(ch[i].model, owner)))
		{
			best = &sums[i];
			best_p = p;
		}
	}
	if (best)
		(void) PromoteTo(scorer, model, options, &best->ch, "auto", best,
						 alpha, min_rows, owner);
}

PG_FUNCTION_INFO_V1(scorer_promote);

/*
 * SQL streamml.promote(scorer, challenger, version DEFAULT NULL) → text:
 * makes a challenger the scorer's model (a version challenger is deployed
 * first: the caller must own its model); returns the former champion.
 */
Datum
scorer_promote(PG_FUNCTION_ARGS)
{
	char	   *scorer;
	ScorerChallenger want;
	Oid			owner;
	char	   *model;
	Jsonb	   *options;
	Jsonb	   *baseline;
	int			nch;
	ScorerChallenger *ch;
	int			found = -1;
	PairSums   *sums;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("scorer and challenger must not be NULL")));
	scorer = text_to_cstring(PG_GETARG_TEXT_PP(0));
	want.model = text_to_cstring(PG_GETARG_TEXT_PP(1));
	want.version = (PG_NARGS() > 2 && !PG_ARGISNULL(2)) ? PG_GETARG_INT32(2) : 0;
	if (PG_NARGS() > 2 && !PG_ARGISNULL(2) && want.version <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("version must be above 0")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!LoadScorer(scorer, &owner, &model, &options, &baseline, true) ||
		!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("scorer \"%s\" does not exist", scorer)));
	ch = ScorerChallengers(options, &nch);
	for (int i = 0; i < nch; i++)
		if (strcmp(ch[i].model, want.model) == 0 && ch[i].version == want.version)
			found = i;
	if (found < 0 && want.version == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model \"%s\" is not a challenger of scorer \"%s\"",
						want.model, scorer),
				 errhint("Add it with streamml.set_challengers; a version challenger is promoted with its version.")));
	if (found < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not a challenger of scorer \"%s\"",
						ScorerChallengerName(&want), scorer),
				 errhint("Add it with streamml.set_challengers.")));
	{
		ServedModelInfo info;

		/* the caller may use it, and it has that (or a deployed) version */
		(void) ServedModelGetVersion(want.model, want.version, &info);
		/* promoting a version deploys it: the model's owner only */
		if (want.version > 0)
			(void) ModelCheckOwner(want.model, "deploy");
	}
	sums = ChallengerSums(scorer, baseline, ch, nch);
	(void) PromoteTo(scorer, model, options, &want, "manual", &sums[found], 0, 0,
					 GetUserId());
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(model));
}

PG_FUNCTION_INFO_V1(scorer_set_challengers);

/*
 * SQL streamml.set_challengers(scorer, challengers text[], auto_promote
 * jsonb DEFAULT NULL, versions integer[] DEFAULT NULL): replaces the
 * challengers (an empty array: none) and the auto_promote option (NULL:
 * none); versions[i], when given and not NULL, makes challengers[i] that
 * version of the model.  Their pairs start afresh.
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
	Datum	   *velems = NULL;
	bool	   *vnulls = NULL;
	int			nv = 0;
	StringInfoData s;
	Datum		args[4];
	char		argnulls[4] = {' ', ' ', ' ', ' '};
	Relation	source;
	Oid			sourceid;
	Oid			predsid;
	Datum		keys;
	Jsonb	   *newopts;
	int			nch;
	ScorerChallenger *ch;

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
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), INT4OID, sizeof(int32), true,
						  TYPALIGN_INT, &velems, &vnulls, &nv);
		if (nv != n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("versions has %d elements and challengers %d", nv, n),
					 errdetail("versions[i] is the version of challengers[i] (NULL: its deployed version).")));
	}
	initStringInfo(&s);
	appendStringInfoChar(&s, '[');
	for (int i = 0; i < n; i++)
	{
		ScorerChallenger c;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("a challenger cannot be NULL")));
		c.model = TextDatumGetCString(elems[i]);
		c.version = (velems && !vnulls[i]) ? DatumGetInt32(velems[i]) : 0;
		if (velems && !vnulls[i] && c.version <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the version of challenger \"%s\" must be above 0", c.model)));
		if (i > 0)
			appendStringInfoString(&s, ", ");
		AppendChallenger(&s, &c);
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
				   "s.source, s.predictions, s.key_columns "
				   "FROM streamml.scorers_catalog s WHERE s.name OPERATOR(pg_catalog.=) $1",
				   3, (Oid[]) {TEXTOID, TEXTOID, JSONBOID}, args, argnulls, SPI_OK_SELECT);
	{
		bool		isnull;

		newopts = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
		sourceid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 2, &isnull));
		predsid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 3, &isnull));
		keys = PointerGetDatum(DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0],
																	SPI_tuptable->tupdesc,
																	4, &isnull)));
	}
	source = relation_open(sourceid, AccessShareLock);
	ScorerCheckChallengers(source, newopts, model);
	ch = ScorerChallengers(newopts, &nch);
	/* a model served at two versions needs a predictions table keyed so */
	if (ScorerNeedsVersionKey(model, ch, nch))
	{
		Relation	preds = relation_open(predsid, AccessShareLock);
		Datum	   *kd;
		int			nk;
		char	  **kv;
		PredictionColumns pc;

		deconstruct_array(DatumGetArrayTypeP(keys), TEXTOID, -1, false,
						  TYPALIGN_INT, &kd, NULL, &nk);
		kv = palloc(sizeof(char *) * nk);
		for (int k = 0; k < nk; k++)
			kv[k] = TextDatumGetCString(kd[k]);
		ScorerCheckPredictions(preds, source, nk, kv, &pc, true);
		relation_close(preds, AccessShareLock);
	}
	relation_close(source, AccessShareLock);

	/* its trackers' predictions tables may hold rows of models it drops */
	OutcomeTrackersRearm(scorer, true);
	args[1] = JsonbPGetDatum(newopts);
	args[2] = CurrentBaseline(scorer, ch, nch);
	CatalogExecute("UPDATE streamml.scorers_catalog SET options = $2, challenger_baseline = $3 "
				   "WHERE name OPERATOR(pg_catalog.=) $1",
				   3, (Oid[]) {TEXTOID, JSONBOID, JSONBOID}, args, NULL, SPI_OK_UPDATE);
	SPI_finish();
	PG_RETURN_VOID();
}
