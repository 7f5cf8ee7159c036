/*
 * league.c
 *		streamml.train_league: trains several candidate models on one
 *		time-ordered holdout, ranks them by a holdout metric, records the
 *		leaderboard and deploys the champion if it beats the deployed
 *		version.  Seed 004's model selection, in the database.
 *
 * The candidates are ordinary training runs (train_linreg or train_logreg
 * with the seed's ElasticNet penalty, train_tree, train_forest,
 * train_gbt), each a version of the league's model, called through SPI
 * under the league statement's snapshot: they read the same rows, and
 * compute the same holdout (the same test_fraction and order_by), so their
 * metrics compare.  Each runs in a subtransaction: a candidate that fails
 * is reported with its error in the leaderboard, and is never deployed.
 * Candidates are trained with deploy 'never'; the league decides.
 *
 * The deployed version is scored on the same holdout rows before the
 * candidates run, by the row form of predict (so any kind of model), and
 * the champion is deployed only if it does better (deploy 'if_better', the
 * default).  With group_by, each group has its own league: when the
 * groups' champions are different versions, their rows are copied into
 * one new version (per-version kinds let one version hold a tree for one
 * group and a linear model for another), which is the one deployed.
 */
#include "postgres.h"

#include <math.h>

#include "access/stratnum.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "ml/group_key.h"
#include "ml/ml.h"
#include "ml/train.h"
#include "options.h"
#include "pg_streamml.h"

static const char *const LeagueOptions[] = {
	"candidates", "test_fraction", "order_by", "group_by", "weight", "metric",
	"deploy", "threads", "max_categories", "other_level", NULL
};

/* One candidate of the league: a name, a trainer, its own options. */
typedef struct Candidate
{
	char	   *name;
	char	   *trainer;		/* linreg, logreg, tree, forest, gbt */
	char	   *options;		/* JSON text */
} Candidate;

/* One leaderboard row: a candidate's result in one group. */
typedef struct Entry
{
	Candidate  *cand;
	char	   *group_key;
	int			version;		/* 0 when the candidate failed */
	char	   *metrics;
	double		score;
	double		rows;
	char	   *error;
	int			rank;
	bool		deployed;
	char	   *counts[4];		/* the trainer's rows_used, rows_skipped,
								 * iterations, converged (NULL: none) */
} Entry;

/* A group's deployed-version score on the holdout. */
typedef struct DeployedScore
{
	char	   *group_key;
	double		score;
	double		rows;
} DeployedScore;

/*
 * The notices about the source's rows (rows skipped for a NULL order_by or
 * group, malformed feature arrays, empty groups) that a league's candidates
 * have sent: every candidate reads the same rows, so each is sent once per
 * league, not once per candidate.  Active only while a league trains its
 * candidates; the texts live in the league's memory context.
 */
static bool LeagueNoticesActive = false;
static List *LeagueNoticesSent = NIL;
static MemoryContext LeagueNoticesCxt = NULL;

/*
 * True when a notice about the source's rows, identified by its text,
 * should be sent: always outside a league, the first time within one.
 */
bool
LeagueNoticeFirst(const char *text)
{
	ListCell   *lc;
	MemoryContext old;

	if (!LeagueNoticesActive)
		return true;
	foreach(lc, LeagueNoticesSent)
		if (strcmp((const char *) lfirst(lc), text) == 0)
			return false;
	old = MemoryContextSwitchTo(LeagueNoticesCxt);
	LeagueNoticesSent = lappend(LeagueNoticesSent, pstrdup(text));
	MemoryContextSwitchTo(old);
	return true;
}

/* The default candidates: the seed's four. */
static List *
DefaultCandidates(bool regression)
{
	List	   *l = NIL;
	Candidate  *c;

	/* Spark's ElasticNet regParam 0.1, elasticNetParam 0.8 */
	c = palloc0(sizeof(Candidate));
	c->name = "elasticnet";
	c->trainer = regression ? "linreg" : "logreg";
	c->options = "{\"l1\": 0.08, \"l2\": 0.02}";
	l = lappend(l, c);
	c = palloc0(sizeof(Candidate));
	c->name = "tree";
	c->trainer = "tree";
	c->options = "{}";
	l = lappend(l, c);
	c = palloc0(sizeof(Candidate));
	c->name = "forest";
	c->trainer = "forest";
	c->options = "{}";
	l = lappend(l, c);
	/* the seed's GBT: 15 iterations of depth 5 */
	c = palloc0(sizeof(Candidate));
	c->name = "gbt";
	c->trainer = "gbt";
	c->options = "{\"trees\": 15, \"max_depth\": 5}";
	l = lappend(l, c);
	return l;
}

/*
 * The candidates of option "candidates": an array of default names, or of
 * objects {"name", "trainer", "options"}.
 */
static List *
ParseCandidates(Jsonb *options, bool regression)
{
	JsonbValue *v = OptionGet(options, "candidates");
	List	   *defaults = DefaultCandidates(regression);
	List	   *l = NIL;
	Jsonb	   *arr;
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;

	if (v == NULL)
		return defaults;
	if (v->type != jbvBinary ||
		!JB_ROOT_IS_ARRAY(arr = JsonbValueToJsonb(v)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"candidates\" must be an array")));
	it = JsonbIteratorInit(&arr->root);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		Candidate  *c = NULL;
		ListCell   *lc;

		if (tok != WJB_ELEM)
			continue;
		if (e.type == jbvString)
		{
			char	   *name = pnstrdup(e.val.string.val, e.val.string.len);

			foreach(lc, defaults)
				if (strcmp(((Candidate *) lfirst(lc))->name, name) == 0)
					c = lfirst(lc);
			if (c == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown candidate \"%s\"", name),
						 errhint("The default candidates are elasticnet, tree, forest and gbt; others are objects {\"name\", \"trainer\", \"options\"}.")));
		}
		else if (e.type == jbvBinary)
		{
			Jsonb	   *obj = JsonbValueToJsonb(&e);
			static const char *const keys[] = {"name", "trainer", "options", NULL};
			JsonbValue *o;

			if (!JB_ROOT_IS_OBJECT(obj))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("a candidate must be a name or an object")));
			OptionCheckKeys(obj, keys, "candidate");
			c = palloc0(sizeof(Candidate));
			c->name = OptionString(obj, "name", NULL);
			c->trainer = OptionKeyword(obj, "trainer", NULL);
			if (c->name == NULL || c->trainer == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("a candidate object needs \"name\" and \"trainer\"")));
			if (strcmp(c->trainer, "linreg") != 0 && strcmp(c->trainer, "logreg") != 0 &&
				strcmp(c->trainer, "tree") != 0 && strcmp(c->trainer, "forest") != 0 &&
				strcmp(c->trainer, "gbt") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("candidate trainer must be 'linreg', 'logreg', 'tree', 'forest' or 'gbt', not \"%s\"",
								c->trainer)));
			o = OptionGet(obj, "options");
			c->options = o ? JsonbToCString(NULL, &JsonbValueToJsonb(o)->root, 64) : "{}";
			if (o != NULL && o->type == jbvBinary)
			{
				/* what every candidate must share is the league's */
				static const char *const league_keys[] = {"test_fraction", "order_by",
					"deploy", "deploy_metric", "group_by", "weight", "warm_start", NULL};
				Jsonb	   *own = JsonbValueToJsonb(o);

				for (int k = 0; league_keys[k] != NULL; k++)
					if (JB_ROOT_IS_OBJECT(own) && OptionGet(own, league_keys[k]) != NULL)
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								 errmsg("option \"%s\" of candidate \"%s\" is the league's",
										league_keys[k], c->name),
								 errdetail("Every candidate is trained on the same rows and holdout, and only the league deploys."),
								 errhint("Give it in the league's options.")));
			}
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a candidate must be a name or an object")));
		foreach(lc, l)
			if (strcmp(((Candidate *) lfirst(lc))->name, c->name) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("candidate \"%s\" is named twice", c->name)));
		l = lappend(l, c);
	}
	if (l == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"candidates\" must name at least one candidate")));
	return l;
}

/* The state of one league run. */
typedef struct League
{
	char	   *model;
	char	   *source;
	char	   *target;
	ArrayType  *features;
	Jsonb	   *options;
	char	   *from;
	char	   *order_by;
	char	   *group_by;
	char	   *weight;
	double		test_fraction;
	char	   *metric;
	char	   *deploy;
	int			threads;
	bool		regression;
	bool		binary;
	char	   *positive;		/* the positive class of a binary target */
	Oid			target_type;
	Oid			order_type;		/* the order_by column's */
	Snapshot	snapshot;
	List	   *candidates;
	List	   *entries;		/* Entry */
	List	   *deployed_scores;	/* DeployedScore */
	int			deployed_version;	/* 0 when none */
} League;

/* Reads the source's columns: the target's type, the task, the positive class. */
static void
LeagueResolveTarget(League *lg)
{
	StringInfoData sql;
	int			ret;
	SPIPlanPtr	plan;

	SourceCheckTrusted(lg->source, "training of a league");
	lg->from = SourceFromItem(lg->source);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT * FROM %s LIMIT 0", lg->from);
	plan = SPI_prepare(sql.data, 0, NULL);
	ret = SPI_execute_snapshot(plan, NULL, NULL, lg->snapshot, InvalidSnapshot,
							   true, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the source");
	lg->target_type = SourceColumnType(SPI_tuptable->tupdesc, lg->target,
									   "target", lg->source);
	lg->order_type = SourceColumnType(SPI_tuptable->tupdesc, lg->order_by, "order_by",
									  lg->source);
	/* the columns every candidate reads, under the league's option names */
	if (lg->group_by)
		GroupKeyCheckType(SourceColumnType(SPI_tuptable->tupdesc, lg->group_by, "group_by",
										   lg->source), lg->group_by);
	if (lg->weight && !TypeIsNumeric(SourceColumnType(SPI_tuptable->tupdesc, lg->weight,
													   "weight", lg->source)))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("weight column \"%s\" must be numeric", lg->weight)));
	lg->regression = TypeIsNumeric(lg->target_type);
	if (!lg->regression)
	{
		const char *qt = quote_identifier(lg->target);

		resetStringInfo(&sql);
		appendStringInfo(&sql,
						 "SELECT pg_catalog.count(DISTINCT (s.%s)::text), pg_catalog.max((s.%s)::text) FROM %s",
						 qt, qt, lg->from);
		plan = SPI_prepare(sql.data, 0, NULL);
		ret = SPI_execute_snapshot(plan, NULL, NULL, lg->snapshot,
								   InvalidSnapshot, true, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read the target's classes");
		lg->binary = strcmp(ResultText(0, 1), "2") == 0;
		if (lg->binary)
			lg->positive = ResultText(0, 2);
	}
	if (lg->metric == NULL)
		lg->metric = lg->regression ? "rmse" : lg->binary ? "roc_auc" : "log_loss";
	/* the user's metric, before any candidate trains and under its name */
	CheckMetricOption("metric", lg->metric,
					  lg->regression ? MODEL_LINEAR :
					  lg->binary ? MODEL_LOGISTIC : MODEL_MULTINOMIAL);
}

/*
 * Rethrows an error a subtransaction of the league caught when it ends the
 * league, as it ends any statement: a cancel or a lost connection.
 */
static void
RethrowIfEnding(ErrorData *edata)
{
	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
		edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
		ReThrowError(edata);
}

/*
 * Adds the scores of SPI's result (group key, score, rows per row) to the
 * league's deployed scores.
 */
static void
AddDeployedScores(League *lg)
{
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		DeployedScore *ds = palloc0(sizeof(DeployedScore));
		char	   *key = ResultText(r, 1);
		char	   *score = ResultText(r, 2);
		char	   *rows = ResultText(r, 3);

		ds->group_key = key ? pstrdup(key) : NULL;
		ds->score = score ? strtod(score, NULL) : NAN;
		ds->rows = rows ? strtod(rows, NULL) : 0;
		lg->deployed_scores = lappend(lg->deployed_scores, ds);
	}
}

/* The deployed version's scoring: its SQL and where the scores go. */
typedef struct DeployedRun
{
	League	   *lg;
	const char *sql;
	MemoryContext cxt;
} DeployedRun;

/* Scores the deployed version (in LeagueScoreDeployed's subtransaction). */
static void
ScoreDeployed(void *arg)
{
	DeployedRun *a = arg;
	SPIPlanPtr	plan = SPI_prepare(a->sql, 0, NULL);

	if (plan == NULL ||
		SPI_execute_snapshot(plan, NULL, NULL, a->lg->snapshot,
							 InvalidSnapshot, true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not score the deployed version");
	MemoryContextSwitchTo(a->cxt);
	AddDeployedScores(a->lg);
}

/*
 * Scores the deployed version on the league's holdout rows (the newest
 * test_fraction by order_by), per group, by the row form of predict; in a
 * subtransaction, so that a version that cannot score these rows only
 * leaves the comparison to its stored score.
 */
static void
LeagueScoreDeployed(League *lg)
{
	StringInfoData sql;
	const char *qo = quote_identifier(lg->order_by);
	const char *qt = quote_identifier(lg->target);
	const char *g = lg->group_by ?
		psprintf("streamml.group_key(s.%s)", quote_identifier(lg->group_by)) :
		"NULL::text";
	const char *agg;
	DeployedRun run;
	ErrorData  *edata;
	Datum		args[2];

	lg->deployed_version = ModelDeployedVersion(lg->model);
	if (lg->deployed_version == 0)
		return;
	if (lg->regression)
		agg = psprintf("streamml.regression_metrics((s.%s)::float8, streamml.predict(%s, s.*))",
					   qt, quote_literal_cstr(lg->model));
	else if (lg->binary)
		agg = psprintf("streamml.classification_metrics((s.%s)::text = %s, streamml.predict_proba(%s, s.*))",
					   qt, quote_literal_cstr(lg->positive),
					   quote_literal_cstr(lg->model));
	else
		return;
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "WITH c AS (SELECT pg_catalog.percentile_disc(%.17g) WITHIN GROUP (ORDER BY s.%s) AS cut FROM %s) "
					 "SELECT %s, (%s->>%s)::float8, (%s->>'rows')::float8 FROM %s, c WHERE s.%s %s c.cut%s%s%s",
					 1.0 - lg->test_fraction, qo, lg->from, g, agg,
					 quote_literal_cstr(lg->metric), agg, lg->from, qo,
					 OrderOperator(lg->order_type, BTGreaterStrategyNumber),
					 lg->group_by ? " AND " : "", lg->group_by ? g : "",
					 lg->group_by ? " IS NOT NULL GROUP BY 1" : "");
	run.lg = lg;
	run.sql = sql.data;
	run.cxt = CurrentMemoryContext;
	edata = TrySubtransaction(ScoreDeployed, &run);
	if (edata == NULL)
		return;
	RethrowIfEnding(edata);
	lg->deployed_scores = NIL;
	ereport(NOTICE,
			(errmsg("the deployed version %d of model \"%s\" cannot score the league's holdout; its stored metrics stand in",
					lg->deployed_version, lg->model)));
	/* its stored holdout score, per group */
	args[0] = CStringGetTextDatum(lg->model);
	args[1] = CStringGetTextDatum(lg->metric);
	CatalogExecute("SELECT v.group_key, (v.metrics->>$2)::float8, (v.metrics->>'rows')::float8 "
				   "FROM streamml.model_versions v, streamml.models m "
				   "WHERE m.name OPERATOR(pg_catalog.=) $1 AND v.model OPERATOR(pg_catalog.=) m.name "
				   "AND v.version OPERATOR(pg_catalog.=) m.deployed_version",
				   2, (Oid[]) {TEXTOID, TEXTOID}, args, NULL, SPI_OK_SELECT);
	AddDeployedScores(lg);
}

/* The options of a candidate's run: the league's common ones, then its own. */
static Datum
CandidateOptions(League *lg, Candidate *c)
{
	StringInfoData b;
	bool		tree = strcmp(c->trainer, "linreg") != 0 &&
		strcmp(c->trainer, "logreg") != 0;
	Datum		base;
	Datum		own;

	initStringInfo(&b);
	appendStringInfo(&b, "{\"test_fraction\": %.17g, \"deploy\": \"never\", \"order_by\": ",
					 lg->test_fraction);
	escape_json(&b, lg->order_by);
	appendStringInfoString(&b, ", \"deploy_metric\": ");
	escape_json(&b, lg->metric);
	if (lg->group_by)
	{
		appendStringInfoString(&b, ", \"group_by\": ");
		escape_json(&b, lg->group_by);
	}
	if (lg->weight)
	{
		appendStringInfoString(&b, ", \"weight\": ");
		escape_json(&b, lg->weight);
	}
	if (tree && lg->threads > 0)
		appendStringInfo(&b, ", \"threads\": %d", lg->threads);
	/* categorical columns: every candidate encodes them alike */
	if (OptionGet(lg->options, "max_categories") != NULL)
		appendStringInfo(&b, ", \"max_categories\": %d",
						 (int) OptionInteger(lg->options, "max_categories", 32,
											 2, 100000));
	if (OptionGet(lg->options, "other_level") != NULL)
		appendStringInfo(&b, ", \"other_level\": %s",
						 OptionBool(lg->options, "other_level", true) ? "true" : "false");
	appendStringInfoChar(&b, '}');
	base = DirectFunctionCall1(jsonb_in, CStringGetDatum(b.data));
	own = DirectFunctionCall1(jsonb_in, CStringGetDatum(c->options));
	return DirectFunctionCall2(jsonb_concat, base, own);
}

/* A candidate's run: its SQL, arguments, and where its entries go. */
typedef struct CandidateRun
{
	League	   *lg;
	Candidate  *c;
	const char *sql;
	Oid		   *types;
	Datum	   *values;
	MemoryContext cxt;
} CandidateRun;

/* Trains a candidate (in LeagueTrain's subtransaction); adds its entries. */
static void
TrainCandidate(void *arg)
{
	CandidateRun *a = arg;
	SPIPlanPtr	plan = SPI_prepare(a->sql, 5, a->types);

	if (plan == NULL)
		elog(ERROR, "could not plan candidate \"%s\"", a->c->name);
	/* read-only: the candidate reads under the league's snapshot */
	if (SPI_execute_snapshot(plan, a->values, NULL, a->lg->snapshot,
							 InvalidSnapshot, true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not train candidate \"%s\"", a->c->name);
	MemoryContextSwitchTo(a->cxt);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		Entry	   *e = palloc0(sizeof(Entry));
		char	   *key = ResultText(r, 2);
		char	   *score = ResultText(r, 4);
		char	   *rows = ResultText(r, 5);

		e->cand = a->c;
		e->version = atoi(ResultText(r, 1));
		e->group_key = key ? pstrdup(key) : NULL;
		e->metrics = pstrdup(ResultText(r, 3));
		e->score = score ? strtod(score, NULL) : NAN;
		e->rows = rows ? strtod(rows, NULL) : 0;
		/* the trainer's own counts, which streamml.retrain returns */
		for (int i = 0; i < 4; i++)
		{
			char	   *v = ResultText(r, 6 + i);

			e->counts[i] = v ? pstrdup(v) : NULL;
		}
		a->lg->entries = lappend(a->lg->entries, e);
	}
}

/*
 * Trains one candidate in a subtransaction, under the league's snapshot;
 * adds its leaderboard entries (one per group, or one with its error).
 */
static void
LeagueTrain(League *lg, Candidate *c)
{
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, JSONBOID};
	Datum		values[5];
	CandidateRun run;
	ErrorData  *edata;
	Entry	   *e;

	values[0] = CStringGetTextDatum(lg->model);
	values[1] = CStringGetTextDatum(lg->source);
	values[2] = CStringGetTextDatum(lg->target);
	values[3] = PointerGetDatum(lg->features);
	values[4] = CandidateOptions(lg, c);
	run.lg = lg;
	run.c = c;
	run.sql = psprintf("SELECT t.version, t.group_key, t.metrics::text, "
					   "(t.metrics->>%s)::float8, (t.metrics->>'rows')::float8, "
					   "t.rows_used, t.rows_skipped, t.iterations, t.converged "
					   "FROM streamml.train_%s($1, $2, $3, $4, $5) t",
					   quote_literal_cstr(lg->metric), c->trainer);
	run.types = types;
	run.values = values;
	run.cxt = CurrentMemoryContext;
	edata = TrySubtransaction(TrainCandidate, &run);
	if (edata == NULL)
		return;
	RethrowIfEnding(edata);
	e = palloc0(sizeof(Entry));
	e->cand = c;
	e->error = edata->message;
	e->score = NAN;
	lg->entries = lappend(lg->entries, e);
	ereport(NOTICE,
			(errmsg("candidate \"%s\" of league \"%s\" failed: %s",
					c->name, lg->model, edata->message)));
}

/* Orders entries: successful first, by score (the metric's direction). */
static bool LeagueHigherIsBetter;

static int
EntryCompare(const ListCell *a, const ListCell *b)
{
	const Entry *x = lfirst(a);
	const Entry *y = lfirst(b);
	bool		xs = x->error == NULL && isfinite(x->score);
	bool		ys = y->error == NULL && isfinite(y->score);

	if (xs != ys)
		return xs ? -1 : 1;
	if (!xs || x->score == y->score)
		return 0;
	if (LeagueHigherIsBetter)
		return x->score > y->score ? -1 : 1;
	return x->score < y->score ? -1 : 1;
}

/* True when two group keys are the same (NULL equals NULL). */
static bool
SameKey(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/*
 * Ranks each group's entries and deploys the champions: the version of
 * the first in every group, or one new version assembling the groups'
 * champions; by the deploy option.  Returns the deployed version, 0 when
 * none.
 */
static int
LeagueDecide(League *lg)
{
	List	   *keys = NIL;
	List	   *champions = NIL;
	ListCell   *lc;
	int			version = 0;
	bool		one_version = true;
	double		new_score = 0.0;
	double		old_score = 0.0;
	double		rows = 0.0;
	bool		have_old = false;
	bool		deploy;

	LeagueHigherIsBetter = MetricHigherIsBetter(lg->metric);
	list_sort(lg->entries, EntryCompare);
	/* the groups, in the order of their best entries */
	foreach(lc, lg->entries)
	{
		Entry	   *e = lfirst(lc);
		ListCell   *k;
		bool		seen = false;
		int			rank = 1;

		if (e->error)
			continue;
		foreach(k, lg->entries)
		{
			Entry	   *o = lfirst(k);

			if (o == e)
				break;
			if (!o->error && SameKey(o->group_key, e->group_key))
			{
				seen = true;
				rank++;
			}
		}
		e->rank = rank;
		if (seen)
			continue;
		keys = lappend(keys, e->group_key);
		champions = lappend(champions, e);
	}
	if (champions == NIL)
	{
		StringInfoData why;

		initStringInfo(&why);
		foreach(lc, lg->entries)
		{
			Entry	   *e = lfirst(lc);

			appendStringInfo(&why, "%s%s: %s", why.len > 0 ? "; " : "",
							 e->cand->name, e->error ? e->error : "no holdout score");
		}
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no candidate of league \"%s\" could be trained", lg->model),
				 errdetail("%s.", why.data)));
	}
	foreach(lc, champions)
	{
		Entry	   *e = lfirst(lc);
		ListCell   *d;

		if (version == 0)
			version = e->version;
		else if (e->version != version)
			one_version = false;
		if (!isfinite(e->score) || !(e->rows > 0))
			continue;
		rows += e->rows;
		new_score += e->rows * e->score;
		foreach(d, lg->deployed_scores)
		{
			DeployedScore *ds = lfirst(d);

			if (SameKey(ds->group_key, e->group_key) && isfinite(ds->score))
			{
				have_old = true;
				old_score += e->rows * ds->score;
			}
		}
	}
	if (strcmp(lg->deploy, "never") == 0)
		deploy = false;
	else if (strcmp(lg->deploy, "always") == 0 || !have_old)
		deploy = true;
	else
		deploy = LeagueHigherIsBetter ? new_score > old_score : new_score < old_score;
	/* both holdout scores, for the deployed or not_deployed event of a monitor */
	LastDeployDecision.valid = true;
	strlcpy(LastDeployDecision.metric, lg->metric, sizeof(LastDeployDecision.metric));
	LastDeployDecision.new_score = rows > 0 ? new_score / rows : NAN;
	LastDeployDecision.old_score = have_old && rows > 0 ? old_score / rows : NAN;
	if (!deploy)
	{
		if (strcmp(lg->deploy, "if_better") == 0)
			ereport(NOTICE,
					(errmsg("the champion of league \"%s\" is not deployed: its holdout %s %g is not better than the deployed version's %g",
							lg->model, lg->metric, rows > 0 ? new_score / rows : NAN,
							rows > 0 ? old_score / rows : NAN)));
		return 0;
	}
	if (!one_version)
	{
		/* one new version holding each group's champion */
		Datum		args[4];

		version = ModelNextVersion(lg->model);
		foreach(lc, champions)
		{
			Entry	   *e = lfirst(lc);

			args[0] = CStringGetTextDatum(lg->model);
			args[1] = Int32GetDatum(e->version);
			args[2] = e->group_key ? CStringGetTextDatum(e->group_key) : (Datum) 0;
			args[3] = Int32GetDatum(version);
			CatalogExecute("INSERT INTO streamml.model_versions (model, version, group_key, "
						   "intercepts, coefficients, std_errors, p_values, means, scales, features, "
						   "rows_used, rows_skipped, iterations, converged, metrics, l2, l1, df, "
						   "duration, data_cutoff, data_max, aliased, model_data, importance, kind) "
						   "SELECT model, $4, group_key, intercepts, coefficients, std_errors, "
						   "p_values, means, scales, features, rows_used, rows_skipped, iterations, "
						   "converged, metrics, l2, l1, df, duration, data_cutoff, data_max, aliased, "
						   "model_data, importance, kind FROM streamml.model_versions "
						   "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
						   "AND group_key IS NOT DISTINCT FROM $3",
						   4, (Oid[]) {TEXTOID, INT4OID, TEXTOID, INT4OID}, args,
						   e->group_key ? "   " : "  n ", SPI_OK_INSERT);
		}
	}
	ModelDeploy(lg->model, version);
	foreach(lc, champions)
		((Entry *) lfirst(lc))->deployed = true;
	return version;
}

/* The catalog kind of a candidate's trainer, for the leaderboard. */
static const char *
TrainerKind(League *lg, Candidate *c)
{
	if (strcmp(c->trainer, "linreg") == 0)
		return "linear";
	if (strcmp(c->trainer, "logreg") == 0)
		return lg->binary ? "logistic" : "multinomial";
	return c->trainer;
}

/*
 * Records the league: the model's spec (kind 'league', the league's
 * options, for retrain) and the leaderboard rows, which replace the
 * model's previous ones.
 */
static void
LeagueRecord(League *lg, int deployed_version)
{
	Datum		args[12];
	char		nulls[12];
	Oid			types[12] = {TEXTOID, TEXTOID, INT4OID, TEXTOID, TEXTOID, INT4OID,
	TEXTOID, FLOAT8OID, JSONBOID, BOOLOID, TEXTOID, INT4OID};
	ListCell   *lc;

	args[0] = CStringGetTextDatum(lg->model);
	args[1] = JsonbPGetDatum(lg->options);
	CatalogExecute("UPDATE streamml.models SET kind = 'league', options = $2 "
				   "WHERE name OPERATOR(pg_catalog.=) $1",
				   2, (Oid[]) {TEXTOID, JSONBOID}, args, NULL, SPI_OK_UPDATE);
	CatalogExecute("DELETE FROM streamml.leaderboard WHERE model OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {TEXTOID}, args, NULL, SPI_OK_DELETE);
	foreach(lc, lg->entries)
	{
		Entry	   *e = lfirst(lc);

		memset(nulls, ' ', sizeof(nulls));
		args[1] = e->group_key ? CStringGetTextDatum(e->group_key) : (Datum) 0;
		nulls[1] = e->group_key ? ' ' : 'n';
		args[2] = Int32GetDatum(e->rank);
		nulls[2] = e->rank > 0 ? ' ' : 'n';
		args[3] = CStringGetTextDatum(e->cand->name);
		args[4] = CStringGetTextDatum(TrainerKind(lg, e->cand));
		args[5] = Int32GetDatum(e->version);
		nulls[5] = e->version > 0 ? ' ' : 'n';
		args[6] = CStringGetTextDatum(lg->metric);
		args[7] = Float8GetDatum(e->score);
		nulls[7] = isfinite(e->score) ? ' ' : 'n';
		args[8] = e->metrics ? DirectFunctionCall1(jsonb_in, CStringGetDatum(e->metrics)) : (Datum) 0;
		nulls[8] = e->metrics ? ' ' : 'n';
		args[9] = BoolGetDatum(e->deployed);
		args[10] = e->error ? CStringGetTextDatum(e->error) : (Datum) 0;
		nulls[10] = e->error ? ' ' : 'n';
		args[11] = Int32GetDatum(deployed_version);
		nulls[11] = deployed_version > 0 ? ' ' : 'n';
		CatalogExecute("INSERT INTO streamml.leaderboard (model, group_key, rank, candidate, "
					   "kind, version, metric, score, metrics, deployed, error, deployed_version) "
					   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
					   12, types, args, nulls, SPI_OK_INSERT);
	}
}

/*
 * Runs a league and returns its leaderboard rows (rank, candidate, kind,
 * version, group_key, metric, score, metrics, deployed, error) into the
 * function's materialized result.
 */
void
LeagueRun(FunctionCallInfo fcinfo, text *model, text *source, text *target,
		  ArrayType *features, Jsonb *options, bool retrain_rows)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	League	   *lg = palloc0(sizeof(League));
	ListCell   *lc;
	int			deployed_version;
	char	   *order_by;
	int			text_nest;

	InitMaterializedSRF(fcinfo, 0);
	lg->model = text_to_cstring(model);
	lg->source = SourceCanonical(text_to_cstring(source));
	lg->target = text_to_cstring(target);
	lg->features = features;
	lg->options = options;
	OptionCheckKeys(options, LeagueOptions, "league");
	lg->test_fraction = OptionNumber(options, "test_fraction", 0.2, 0.01, 0.9);
	order_by = OptionString(options, "order_by", NULL);
	if (order_by == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a league needs option \"order_by\""),
				 errhint("The candidates are ranked on one time-ordered holdout: the newest test_fraction of the rows by order_by.")));
	lg->order_by = order_by;
	lg->group_by = OptionString(options, "group_by", NULL);
	lg->weight = OptionString(options, "weight", NULL);
	lg->metric = OptionKeyword(options, "metric", NULL);
	lg->deploy = OptionKeyword(options, "deploy", "if_better");
	lg->threads = (int) OptionInteger(options, "threads", 0, 0, 1024);
	if (strcmp(lg->deploy, "always") != 0 && strcmp(lg->deploy, "if_better") != 0 &&
		strcmp(lg->deploy, "never") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"deploy\" must be 'always', 'if_better' or 'never'")));
	if (lg->model[0] == '\0' || strlen(lg->model) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("model name must have between 1 and %d bytes",
						NAMEDATALEN - 1)));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	text_nest = TextSettingsPin();
	CatalogFirstPath();
	ModelCheckTrainOwner(lg->model);
	lg->snapshot = RegisterSnapshot(GetActiveSnapshot());
	LeagueResolveTarget(lg);
	lg->candidates = ParseCandidates(options, lg->regression);
	LeagueScoreDeployed(lg);
	/* the candidates' notices about the source's rows: once each */
	LeagueNoticesCxt = CurrentMemoryContext;
	LeagueNoticesSent = NIL;
	LeagueNoticesActive = true;
	PG_TRY();
	{
		foreach(lc, lg->candidates)
		{
			CHECK_FOR_INTERRUPTS();
			LeagueTrain(lg, lfirst(lc));
		}
	}
	PG_FINALLY();
	{
		LeagueNoticesActive = false;
		LeagueNoticesSent = NIL;
	}
	PG_END_TRY();
	deployed_version = LeagueDecide(lg);
	LeagueRecord(lg, deployed_version);

	foreach(lc, lg->entries)
	{
		Entry	   *e = lfirst(lc);
		Datum		values[10];
		bool		nulls[10] = {false};

		if (retrain_rows)
		{
			/* streamml.retrain's rows: the candidates' versions */
			char	   *m = e->metrics ? e->metrics : "{}";

			values[0] = CStringGetTextDatum(lg->model);
			values[1] = Int32GetDatum(e->version);
			nulls[1] = e->version == 0;
			values[2] = e->group_key ? CStringGetTextDatum(e->group_key) : (Datum) 0;
			nulls[2] = e->group_key == NULL;
			nulls[3] = e->counts[0] == NULL;
			nulls[4] = e->counts[1] == NULL;
			nulls[5] = e->counts[2] == NULL;
			if (!nulls[3])
				values[3] = DirectFunctionCall1(int8in, CStringGetDatum(e->counts[0]));
			if (!nulls[4])
				values[4] = DirectFunctionCall1(int8in, CStringGetDatum(e->counts[1]));
			if (!nulls[5])
				values[5] = DirectFunctionCall1(int4in, CStringGetDatum(e->counts[2]));
			values[6] = BoolGetDatum(e->error == NULL &&
									 (e->counts[3] == NULL || strcmp(e->counts[3], "t") == 0));
			values[7] = BoolGetDatum(e->deployed);
			values[8] = DirectFunctionCall2(jsonb_concat,
											DirectFunctionCall1(jsonb_in, CStringGetDatum(m)),
											DirectFunctionCall1(jsonb_in,
																CStringGetDatum(psprintf("{\"candidate\": \"%s\", \"rank\": %d}",
																						 e->cand->name, e->rank))));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			continue;
		}
		values[0] = Int32GetDatum(e->rank);
		nulls[0] = e->rank == 0;
		values[1] = CStringGetTextDatum(e->cand->name);
		values[2] = CStringGetTextDatum(TrainerKind(lg, e->cand));
		values[3] = Int32GetDatum(e->version);
		nulls[3] = e->version == 0;
		values[4] = e->group_key ? CStringGetTextDatum(e->group_key) : (Datum) 0;
		nulls[4] = e->group_key == NULL;
		values[5] = CStringGetTextDatum(lg->metric);
		values[6] = Float8GetDatum(e->score);
		nulls[6] = !isfinite(e->score);
		values[7] = e->metrics ? DirectFunctionCall1(jsonb_in, CStringGetDatum(e->metrics)) : (Datum) 0;
		nulls[7] = e->metrics == NULL;
		values[8] = BoolGetDatum(e->deployed);
		values[9] = e->error ? CStringGetTextDatum(e->error) : (Datum) 0;
		nulls[9] = e->error == NULL;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	UnregisterSnapshot(lg->snapshot);
	TextSettingsRestore(text_nest);
	SPI_finish();
}

PG_FUNCTION_INFO_V1(train_league);

/* SQL streamml.train_league(model, source, target, features, options). */
Datum
train_league(PG_FUNCTION_ARGS)
{
	LeagueRun(fcinfo, PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1),
			  PG_GETARG_TEXT_PP(2), PG_GETARG_ARRAYTYPE_P(3),
			  PG_GETARG_JSONB_P(4), false);
	return (Datum) 0;
}
