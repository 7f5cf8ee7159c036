/*
 * outcomeinsert.c
 *		The statement triggers of an outcome tracker: outcomes joined with
 *		their predictions, and the bucket sums of streamml.live_metrics,
 *		in the transaction of each batch.
 *
 * Each trigger runs one statement per batch, whatever its size: the batch
 * is the statement's transition table (SPI_register_trigger_data), and
 * the statement, built from the tracker's definition and prepared once
 * per backend and tracker (SPI_prepare, SPI_keepplan), is a chain of
 * data-modifying CTEs:
 *
 *	source trigger		the batch's outcomes (key mode: its rows; horizon
 *						mode: the earlier rows of the same partitions whose
 *						order_by + horizon the batch reached) are joined
 *						with the predictions of their key, for every model
 *						that scored it, by the predictions table's primary
 *						key; those without a prediction go to
 *						streamml.pending_outcomes.
 *	predictions trigger	the batch's predictions are counted, and the
 *						pending outcomes of their keys are joined with them
 *						(checked first with one index probe, so that a
 *						tracker without pending outcomes costs one grouped
 *						count per batch).
 *
 * Joined outcomes go to streamml.outcomes (the first outcome of a key
 * wins: ON CONFLICT DO NOTHING; within a batch, the earliest by its time),
 * and the sums of the batch, per model, version, role, group and bucket of
 * prediction time, are added to streamml.quality_buckets by one INSERT ...
 * ON CONFLICT DO UPDATE, into the rows of this backend's shard, so that
 * concurrent loads never wait on one another.
 *
 * Loss of an outcome: binary classifiers (a probability and two classes):
 * log loss with the probability clipped to [1e-15, 1 - 1e-15]; other
 * classifiers: 0/1 loss; regressions: squared error.  An actual value is
 * matched to a classifier's classes by its text form, as evaluate does
 * (numbers as float8 text, booleans as true/false).
 *
 * The statements run as the bootstrap superuser with search_path pinned
 * to pg_catalog (they write catalog tables), after checking, per batch,
 * that the tracker's owner has SELECT on the source and on the predictions
 * table; only the transition table, the predictions table and (horizon
 * mode) the source are read.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/backendid.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "monitor/monitor.h"
#include "pg_streamml.h"
#include "quality/quality.h"

#define OUTCOME_NPARAMS 5

/* The prepared statements of one tracker, kept for the backend's life. */
typedef struct TrackerPlans
{
	int32		id;				/* hash key */
	SPIPlanPtr	source_plan;
	SPIPlanPtr	pending_plan;	/* are there pending outcomes? */
	SPIPlanPtr	predictions_plan;	/* count predictions, join pending */
	SPIPlanPtr	count_plan;		/* count predictions only */
	SPIPlanPtr	owner_plan;		/* the tracker's owner and scorer */
} TrackerPlans;

static HTAB *Plans = NULL;

static const Oid ParamTypes[OUTCOME_NPARAMS] = {
	INT4OID, TIMESTAMPTZOID, INT4OID, REGROLEOID, TEXTOID
};

/* ---- pieces of SQL ---- */

/* The quoted name of a relation, schema-qualified. */
static char *
QualifiedName(Oid rel)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(rel)),
									  get_rel_name(rel));
}

/*
 * The key of a row as jsonb, named by the predictions table's key
 * columns, from the source's key columns (source_side) or the predictions
 * table's.
 */
char *
OutcomeKeyExpr(OutcomeTracker *t, const char *alias, bool source_side)
{
	StringInfoData e;

	initStringInfo(&e);
	appendStringInfoString(&e, "jsonb_build_object(");
	for (int i = 0; i < t->nkeys; i++)
		appendStringInfo(&e, "%s%s, %s.%s", i > 0 ? ", " : "",
						 quote_literal_cstr(t->prediction_keys[i]), alias,
						 quote_identifier(source_side ? t->key_columns[i] :
										  t->prediction_keys[i]));
	appendStringInfoChar(&e, ')');
	return e.data;
}

/* The actual value as a float8, NULL when it is not a number. */
char *
OutcomeActualNumberExpr(OutcomeTracker *t, const char *alias)
{
	const char *col = quote_identifier(t->actual);

	if (t->actual_type == BOOLOID)
		return psprintf("(%s.%s)::int4::float8", alias, col);
	if (OutcomeNumericType(t->actual_type))
		return psprintf("(%s.%s)::float8", alias, col);
	return pstrdup("NULL::float8");
}

/* The actual value as the text a class label is matched with. */
char *
OutcomeActualTextExpr(OutcomeTracker *t, const char *alias)
{
	const char *col = quote_identifier(t->actual);

	if (OutcomeNumericType(t->actual_type) && t->actual_type != BOOLOID)
		return psprintf("(%s.%s)::float8::text", alias, col);
	return psprintf("(%s.%s)::text", alias, col);
}

/* The group of an outcome row, '' when the tracker has no group. */
static char *
GroupExpr(OutcomeTracker *t, const char *alias)
{
	if (t->group_column == NULL)
		return pstrdup("''::text");
	return psprintf("coalesce((%s.%s)::text, '')", alias,
					quote_identifier(t->group_column));
}

/* The role column of a predictions row. */
static char *
RoleExpr(OutcomeTracker *t, const char *alias)
{
	if (!t->has_role)
		return pstrdup("'champion'::text");
	return psprintf("coalesce(%s.role::text, 'champion')", alias);
}

/* The bucket of a prediction time. */
static char *
BucketExpr(OutcomeTracker *t, const char *col)
{
	return psprintf("date_bin(%s::interval, %s, '2000-01-01 00:00:00+00'::timestamptz)",
					quote_literal_cstr(t->bucket), col);
}

/* The columns of a bucket row after its key, in the order of the deltas. */
static const char *const SumColumns[] = {
	"predictions", "scored_conf_n", "scored_conf_sum", "labelled",
	"duplicates", "labelled_conf_n", "labelled_conf_sum", "cls_n", "correct",
	"tp", "fp", "fn", "prob_n", "log_loss_sum", "brier_sum", "reg_n",
	"err_sum", "abs_err_sum", "sq_err_sum", "actual_sum", "actual_sq_sum",
	NULL
};

/*
 * Appends the CTEs that follow "j" (the outcomes joined with predictions:
 * key, actual_number, actual_text, group_key, labelled_at, rn, model,
 * version, role, prediction, probability, class, scored_at): the loss,
 * the insert into outcomes, and "od", the bucket sums of the outcomes.
 */
static void
AppendOutcomeCtes(StringInfo s, OutcomeTracker *t)
{
	appendStringInfoString(s,
						   ", x AS (SELECT j.*, "
						   "(m.classes IS NOT NULL OR j.class IS NOT NULL) AS is_cls, "
						   "(j.probability IS NOT NULL AND cardinality(m.classes) = 2) AS is_bin, "
						   "CASE WHEN m.classes IS NOT NULL "
						   "THEN array_position(m.classes, j.actual_text)::float8 - 1 "
						   "WHEN j.class IS NULL THEN j.actual_number END AS actual, "
						   "CASE WHEN m.classes IS NOT NULL OR j.class IS NOT NULL "
						   "THEN j.actual_text END AS actual_class "
						   "FROM j LEFT JOIN streamml.models m ON m.name = j.model)"
						   ", y AS (SELECT x.*, CASE "
						   "WHEN x.prediction IS NULL OR x.actual IS NULL THEN NULL "
						   "WHEN x.is_bin THEN -(x.actual * ln(greatest(1e-15, least(1 - 1e-15, x.probability))) "
						   "+ (1 - x.actual) * ln(greatest(1e-15, least(1 - 1e-15, 1 - x.probability)))) "
						   "WHEN x.is_cls THEN (x.prediction <> x.actual)::int4::float8 "
						   "ELSE (x.prediction - x.actual) * (x.prediction - x.actual) END AS loss "
						   "FROM x)"
						   ", ins AS (INSERT INTO streamml.outcomes AS o (tracker, scorer, model, "
						   "version, role, group_key, key, key_hash, prediction, probability, class, actual, "
						   "actual_class, loss, predicted_at, labelled_at, owner) "
						   "SELECT $1, $5, y.model, y.version, y.role, y.group_key, y.key, "
						   "jsonb_hash_extended(y.key, 0), "
						   "y.prediction, y.probability, y.class, y.actual, y.actual_class, y.loss, "
						   "y.scored_at, y.labelled_at, $4 FROM y WHERE y.rn = 1 "
						   "ON CONFLICT (tracker, key_hash, model, key) DO NOTHING "
						   "RETURNING o.model, o.key, o.version, o.role, o.prediction, o.actual, o.labelled_at)"
						   ", f AS MATERIALIZED (SELECT y.*, (y.rn = 1 AND i.key IS NOT NULL) AS first "
						   "FROM y LEFT JOIN ins i ON y.rn = 1 AND i.model = y.model AND i.key = y.key)"
						   ", d AS MATERIALIZED (SELECT f.*, "
						   "f.first AND f.is_cls AND f.prediction IS NOT NULL AND f.actual_class IS NOT NULL AS ok_cls, "
						   "f.first AND f.is_bin AND f.prediction IS NOT NULL AND f.actual IS NOT NULL AS ok_bin, "
						   "f.first AND NOT f.is_cls AND f.prediction IS NOT NULL AND f.actual IS NOT NULL AS ok_reg "
						   "FROM f)");
	appendStringInfo(s,
					 ", od AS (SELECT d.model, d.version, d.role, d.group_key, %s AS bucket, "
					 "0::int8 AS predictions, 0::int8 AS scored_conf_n, 0::float8 AS scored_conf_sum, "
					 "count(*) FILTER (WHERE d.first) AS labelled, "
					 "count(*) FILTER (WHERE NOT d.first) AS duplicates, "
					 "count(*) FILTER (WHERE d.first AND d.probability IS NOT NULL) AS labelled_conf_n, "
					 "coalesce(sum(greatest(d.probability, 1 - d.probability)) FILTER (WHERE d.first), 0) AS labelled_conf_sum, "
					 "count(*) FILTER (WHERE d.ok_cls) AS cls_n, "
					 "count(*) FILTER (WHERE d.ok_cls AND d.class = d.actual_class) AS correct, "
					 "count(*) FILTER (WHERE d.ok_bin AND d.prediction = 1 AND d.actual = 1) AS tp, "
					 "count(*) FILTER (WHERE d.ok_bin AND d.prediction = 1 AND d.actual = 0) AS fp, "
					 "count(*) FILTER (WHERE d.ok_bin AND d.prediction = 0 AND d.actual = 1) AS fn, "
					 "count(*) FILTER (WHERE d.ok_bin) AS prob_n, "
					 "coalesce(sum(d.loss) FILTER (WHERE d.ok_bin), 0) AS log_loss_sum, "
					 "coalesce(sum((d.probability - d.actual) * (d.probability - d.actual)) FILTER (WHERE d.ok_bin), 0) AS brier_sum, "
					 "count(*) FILTER (WHERE d.ok_reg) AS reg_n, "
					 "coalesce(sum(d.prediction - d.actual) FILTER (WHERE d.ok_reg), 0) AS err_sum, "
					 "coalesce(sum(abs(d.prediction - d.actual)) FILTER (WHERE d.ok_reg), 0) AS abs_err_sum, "
					 "coalesce(sum(d.loss) FILTER (WHERE d.ok_reg), 0) AS sq_err_sum, "
					 "coalesce(sum(d.actual) FILTER (WHERE d.ok_reg), 0) AS actual_sum, "
					 "coalesce(sum(d.actual * d.actual) FILTER (WHERE d.ok_reg), 0) AS actual_sq_sum, "
					 "streamml.histogram_count(streamml.label_lag_bin(extract(epoch FROM d.labelled_at - d.scored_at)::float8), %d) "
					 "FILTER (WHERE d.first) AS lag_hist, "
					 "streamml.histogram_count(streamml.score_bin(d.probability, d.actual = 1), %d) "
					 "FILTER (WHERE d.ok_bin) AS score_hist "
					 "FROM d GROUP BY 1, 2, 3, 4, 5)",
					 BucketExpr(t, "d.scored_at"), LAG_BINS, 2 * SCORE_BINS);
}

/* The bucket sums of the predictions of "n" (the batch), as "pd". */
static void
AppendPredictionCte(StringInfo s, OutcomeTracker *t)
{
	appendStringInfo(s,
					 "pd AS (SELECT n.model, n.version, %s AS role, ''::text AS group_key, "
					 "%s AS bucket, count(*) AS predictions, "
					 "count(n.probability) AS scored_conf_n, "
					 "coalesce(sum(greatest(n.probability, 1 - n.probability)), 0) AS scored_conf_sum",
					 RoleExpr(t, "n"), BucketExpr(t, "n.scored_at"));
	for (int i = 3; SumColumns[i]; i++)
		appendStringInfo(s, ", 0 AS %s", SumColumns[i]);
	appendStringInfoString(s, ", NULL::int8[] AS lag_hist, NULL::int8[] AS score_hist "
						   "FROM streamml_new n GROUP BY 1, 2, 3, 4, 5)");
}

/* The upsert of the bucket sums of the CTEs "deltas" into the buckets. */
static void
AppendBucketUpsert(StringInfo s, const char *deltas)
{
	appendStringInfoString(s,
						   " INSERT INTO streamml.quality_buckets AS q (tracker, model, version, "
						   "role, group_key, bucket, shard");
	for (int i = 0; SumColumns[i]; i++)
		appendStringInfo(s, ", %s", SumColumns[i]);
	appendStringInfo(s, ", lag_hist, score_hist, owner, updated_at) "
					 "SELECT $1, u.model, u.version, u.role, u.group_key, u.bucket, $3");
	for (int i = 0; SumColumns[i]; i++)
		appendStringInfo(s, ", sum(u.%s)::%s", SumColumns[i],
						 strstr(SumColumns[i], "_sum") ? "float8" : "int8");
	appendStringInfo(s, ", streamml.histogram_sum(u.lag_hist), "
					 "streamml.histogram_sum(u.score_hist), $4, $2 "
					 "FROM (%s) u GROUP BY u.model, u.version, u.role, u.group_key, u.bucket "
					 "ON CONFLICT (tracker, model, version, role, group_key, bucket, shard) "
					 "DO UPDATE SET ", deltas);
	for (int i = 0; SumColumns[i]; i++)
		appendStringInfo(s, "%s = q.%s + excluded.%s, ", SumColumns[i],
						 SumColumns[i], SumColumns[i]);
	appendStringInfoString(s,
						   "lag_hist = streamml.histogram_add(q.lag_hist, excluded.lag_hist), "
						   "score_hist = streamml.histogram_add(q.score_hist, excluded.score_hist), "
						   "owner = excluded.owner, updated_at = excluded.updated_at");
}

/*
 * The bucket upsert as a CTE, and the new outcomes ("ins") as the
 * statement's result, for the monitors (src/monitor/monitor.h).
 */
static void
AppendUpsertReturningOutcomes(StringInfo s, const char *deltas)
{
	appendStringInfoString(s, ", qb AS (");
	AppendBucketUpsert(s, deltas);
	appendStringInfoString(s, ") SELECT i.model, i.version, i.role, i.prediction, "
						   "i.actual FROM ins i ORDER BY i.labelled_at");
}

/* The join of outcomes "b" with the predictions of their key, as "j". */
static void
AppendPredictionJoin(StringInfo s, OutcomeTracker *t)
{
	appendStringInfo(s,
					 ", j AS (SELECT b.key, b.actual_number, b.actual_text, b.group_key, "
					 "b.labelled_at, b.rn, p.model, p.version, %s AS role, p.prediction, "
					 "p.probability, p.class, p.scored_at FROM b JOIN %s p ON ",
					 RoleExpr(t, "p"), QualifiedName(t->predictions));
	for (int i = 0; i < t->nkeys; i++)
		appendStringInfo(s, "%sp.%s = b.k%d", i > 0 ? " AND " : "",
						 quote_identifier(t->prediction_keys[i]), i + 1);
	appendStringInfoString(s, ")"
						   ", pend AS (INSERT INTO streamml.pending_outcomes (tracker, key, "
						   "actual_number, actual_text, group_key, labelled_at, owner) "
						   "SELECT $1, b.key, b.actual_number, b.actual_text, b.group_key, "
						   "b.labelled_at, $4 FROM b WHERE NOT EXISTS "
						   "(SELECT 1 FROM j WHERE j.key = b.key))");
}

/*
 * The outcome rows of a source row alias r (its key columns k1.., key,
 * actual, group, time) with the actual read from alias a.
 */
static void
AppendOutcomeColumns(StringInfo s, OutcomeTracker *t, const char *r,
					 const char *a, const char *at)
{
	StringInfoData part;

	initStringInfo(&part);
	for (int i = 0; i < t->nkeys; i++)
	{
		appendStringInfo(s, "%s.%s AS k%d, ", r, quote_identifier(t->key_columns[i]),
						 i + 1);
		appendStringInfo(&part, "%s%s.%s", i > 0 ? ", " : "", r,
						 quote_identifier(t->key_columns[i]));
	}
	appendStringInfo(s, "%s AS key, %s AS actual_number, %s AS actual_text, "
					 "%s AS group_key, %s AS labelled_at, "
					 "row_number() OVER (PARTITION BY %s ORDER BY %s) AS rn",
					 OutcomeKeyExpr(t, r, true), OutcomeActualNumberExpr(t, a),
					 OutcomeActualTextExpr(t, a), GroupExpr(t, r), at, part.data, at);
}

/* The statement of the source trigger, key mode. */
static char *
SourceSqlKey(OutcomeTracker *t)
{
	StringInfoData s;
	char	   *at = t->at ?
		psprintf("coalesce((a.%s)::timestamptz, $2)", quote_identifier(t->at)) :
		pstrdup("$2");

	initStringInfo(&s);
	appendStringInfoString(&s, "WITH b AS (SELECT ");
	AppendOutcomeColumns(&s, t, "a", "a", at);
	appendStringInfo(&s, " FROM streamml_new a WHERE a.%s IS NOT NULL",
					 quote_identifier(t->actual));
	for (int i = 0; i < t->nkeys; i++)
		appendStringInfo(&s, " AND a.%s IS NOT NULL", quote_identifier(t->key_columns[i]));
	appendStringInfoChar(&s, ')');
	AppendPredictionJoin(&s, t);
	AppendOutcomeCtes(&s, t);
	AppendUpsertReturningOutcomes(&s, "SELECT * FROM od");
	return s.data;
}

/*
 * The statement of the source trigger, horizon mode: per partition of
 * the batch, the rows whose order_by + horizon lies in (the partition's
 * newest order_by before the batch, its newest in the batch] are labelled
 * by the first row at or after that point.  The newest before the batch
 * is read from the table: the newest below the batch's oldest, or the
 * batch's oldest itself when older rows share it or when the partition is
 * new (its rows are then all in the batch).  The batch's partitions are
 * materialized first, so that each is read by index ranges; rows of equal
 * order_by are taken in index order, which is the order of their heap
 * tuples, i.e. of arrival.
 */
static char *
SourceSqlHorizon(OutcomeTracker *t)
{
	StringInfoData s;
	const char *src = QualifiedName(t->source);
	const char *part = quote_identifier(t->partition_by);
	const char *ob = quote_identifier(t->order_by);
	const char *act = quote_identifier(t->actual);
	char	   *h;

	if (t->order_type == TIMESTAMPTZOID || t->order_type == TIMESTAMPOID)
		h = psprintf("%s::interval", quote_literal_cstr(t->horizon));
	else
		h = psprintf("(%s)::%s", t->horizon, format_type_be_qualified(t->order_type));

	initStringInfo(&s);
	appendStringInfo(&s,
					 "WITH bp AS (SELECT n.%s AS part, min(n.%s) AS bmin, max(n.%s) AS bmax "
					 "FROM streamml_new n WHERE n.%s IS NOT NULL AND n.%s IS NOT NULL GROUP BY 1)"
					 ", bc AS (SELECT bp.part, count(*) AS nmin FROM bp JOIN streamml_new n "
					 "ON n.%s = bp.part AND n.%s = bp.bmin GROUP BY 1)"
					 ", bo AS MATERIALIZED (SELECT bp.part, bp.bmax, coalesce(CASE WHEN "
					 "(SELECT count(*) FROM %s s WHERE s.%s = bp.part AND s.%s = bp.bmin) > bc.nmin "
					 "THEN bp.bmin ELSE (SELECT max(s.%s) FROM %s s WHERE s.%s = bp.part "
					 "AND s.%s < bp.bmin) END, bp.bmin) AS prev FROM bp JOIN bc ON bc.part = bp.part)",
					 part, ob, ob, part, ob, part, ob, src, part, ob, ob, src, part, ob);
	appendStringInfoString(&s, ", b AS (SELECT ");
	AppendOutcomeColumns(&s, t, "r", "l", "$2::timestamptz");
	/* with no row before the batch, prev is the batch's oldest: all rows */
	appendStringInfo(&s,
					 " FROM bo CROSS JOIN LATERAL (SELECT * FROM %s r WHERE r.%s = bo.part "
					 "AND r.%s > bo.prev - %s AND r.%s <= bo.bmax - %s) r "
					 "CROSS JOIN LATERAL (SELECT s.%s AS %s FROM %s s WHERE s.%s = r.%s "
					 "AND s.%s >= r.%s + %s ORDER BY s.%s LIMIT 1) l "
					 "WHERE l.%s IS NOT NULL",
					 src, part, ob, h, ob, h, act, act, src, part, part, ob, ob, h, ob,
					 act);
	for (int i = 0; i < t->nkeys; i++)
		appendStringInfo(&s, " AND r.%s IS NOT NULL", quote_identifier(t->key_columns[i]));
	appendStringInfoChar(&s, ')');
	AppendPredictionJoin(&s, t);
	AppendOutcomeCtes(&s, t);
	AppendUpsertReturningOutcomes(&s, "SELECT * FROM od");
	return s.data;
}

/*
 * The statement of the predictions trigger: the batch's predictions
 * counted, and (join) the pending outcomes of their keys joined.
 */
static char *
PredictionsSql(OutcomeTracker *t, bool join)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoString(&s, "WITH ");
	AppendPredictionCte(&s, t);
	if (!join)
	{
		AppendBucketUpsert(&s, "SELECT * FROM pd");
		return s.data;
	}
	appendStringInfo(&s,
					 ", n AS (SELECT %s AS key, n.model, n.version, %s AS role, n.prediction, "
					 "n.probability, n.class, n.scored_at FROM streamml_new n)"
					 ", pdel AS (DELETE FROM streamml.pending_outcomes o WHERE o.tracker = $1 "
					 "AND o.key IN (SELECT n.key FROM n) RETURNING o.key, o.actual_number, "
					 "o.actual_text, o.group_key, o.labelled_at)"
					 ", b AS (SELECT pdel.*, row_number() OVER (PARTITION BY pdel.key "
					 "ORDER BY pdel.labelled_at) AS rn FROM pdel)"
					 ", j AS (SELECT b.key, b.actual_number, b.actual_text, b.group_key, "
					 "b.labelled_at, b.rn, n.model, n.version, n.role, n.prediction, "
					 "n.probability, n.class, n.scored_at FROM b JOIN n ON n.key = b.key)",
					 OutcomeKeyExpr(t, "n", false), RoleExpr(t, "n"));
	AppendOutcomeCtes(&s, t);
	AppendUpsertReturningOutcomes(&s, "SELECT * FROM pd UNION ALL SELECT * FROM od");
	return s.data;
}

/* ---- execution ---- */

/*
 * Prepares (qualified names, pinned search_path) or executes a statement
 * as the bootstrap superuser: see the top of the file.
 */
static SPIPlanPtr
RunPrivileged(const char *sql, SPIPlanPtr plan, Datum *values, int expect)
{
	Oid			save_user;
	int			save_sec;
	int			nest;
	int			rc = 0;

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	nest = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	/*
	 * A batch is small beside the tables it is joined with: look its keys
	 * up by index (the predictions table's primary key, the source's
	 * (partition_by, order_by) index), also when a plan made while the
	 * tables were small is made again.
	 */
	(void) set_config_option("enable_seqscan", "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	if (plan == NULL)
	{
		plan = SPI_prepare(sql, OUTCOME_NPARAMS, (Oid *) ParamTypes);
		if (plan == NULL)
			elog(ERROR, "could not prepare an outcome statement: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
	}
	else
		rc = SPI_execute_plan(plan, values, NULL, false, 0);
	AtEOXact_GUC(true, nest);
	SetUserIdAndSecContext(save_user, save_sec);
	if (values != NULL && rc != expect)
		elog(ERROR, "outcome statement failed: %s", SPI_result_code_string(rc));
	return plan;
}

/* The kept plans of a tracker, prepared on first use. */
static TrackerPlans *
GetPlans(OutcomeTracker *t)
{
	TrackerPlans *p;
	bool		found;

	if (Plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int32);
		ctl.entrysize = sizeof(TrackerPlans);
		Plans = hash_create("pg_streamml outcome plans", 16, &ctl,
							HASH_ELEM | HASH_BLOBS);
	}
	p = hash_search(Plans, &t->id, HASH_ENTER, &found);
	if (!found)
	{
		p->source_plan = NULL;
		p->pending_plan = NULL;
		p->predictions_plan = NULL;
		p->count_plan = NULL;
	}
	return p;
}

/* The tracker of a trigger, checked: right table, owner's privileges. */
static OutcomeTracker *
TriggerTracker(TriggerData *td, const char *fn, bool on_source)
{
	OutcomeTracker *t;
	int32		id;
	Oid			rel;

	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || td->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be an AFTER INSERT FOR EACH STATEMENT trigger of an outcome tracker", fn)));
	id = pg_strtoint32(td->tg_trigger->tgargs[0]);
	t = OutcomeTrackerLoad(id);
	rel = RelationGetRelid(td->tg_relation);
	if (t == NULL || rel != (on_source ? t->source : t->predictions))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on \"%s\" belongs to no outcome tracker of this table",
						td->tg_trigger->tgname, get_rel_name(rel))));
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(t->predictions)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the predictions table of the outcomes of scorer \"%s\" was dropped",
						t->scorer),
				 errhint("Stop tracking them with streamml.untrack_outcomes('%s').",
						 t->scorer)));
	if (pg_class_aclcheck(t->source, t->owner, ACL_SELECT) != ACLCHECK_OK ||
		pg_class_aclcheck(t->predictions, t->owner, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to track outcomes into \"%s\"",
						get_rel_name(t->source)),
				 errdetail("The owner of the tracker, role %s, needs SELECT on \"%s\" and on \"%s\".",
						   GetUserNameFromId(t->owner, true) ?
						   GetUserNameFromId(t->owner, true) : "?",
						   get_rel_name(t->source), get_rel_name(t->predictions))));
	return t;
}

/* The parameters of every statement: tracker, now, shard, owner, scorer. */
static void
TrackerParams(OutcomeTracker *t, Datum *values)
{
	values[0] = Int32GetDatum(t->id);
	values[1] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[2] = Int32GetDatum(MyBackendId);
	values[3] = ObjectIdGetDatum(t->owner);
	values[4] = CStringGetTextDatum(t->scorer);
}

/*
 * Counts the predictions already in a new tracker's predictions table
 * into its buckets (track_outcomes; SPI connected).
 */
void
OutcomeCountPredictions(OutcomeTracker *t)
{
	StringInfoData s;
	Datum		values[OUTCOME_NPARAMS];
	SPIPlanPtr	plan;
	char	   *sql;

	TrackerParams(t, values);
	initStringInfo(&s);
	appendStringInfoString(&s, "WITH ");
	AppendPredictionCte(&s, t);
	AppendBucketUpsert(&s, "SELECT * FROM pd");
	/* the same statement, over the whole table instead of a batch */
	sql = s.data;
	{
		StringInfoData r;
		const char *from = "FROM streamml_new n";
		char	   *pos = strstr(sql, from);

		initStringInfo(&r);
		appendBinaryStringInfo(&r, sql, pos - sql);
		appendStringInfo(&r, "FROM %s n", QualifiedName(t->predictions));
		appendStringInfoString(&r, pos + strlen(from));
		sql = r.data;
	}
	plan = RunPrivileged(sql, NULL, NULL, 0);
	RunPrivileged(NULL, plan, values, SPI_OK_INSERT);
	SPI_freeplan(plan);
}

PG_FUNCTION_INFO_V1(outcome_trigger);

/* Trigger on a tracker's source: see the top of the file. */
Datum
outcome_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	OutcomeTracker *t;
	TrackerPlans *p;
	Datum		values[OUTCOME_NPARAMS];

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outcome_trigger must be called as a trigger")));
	if (td->tg_newtable == NULL || tuplestore_tuple_count(td->tg_newtable) == 0)
		return PointerGetDatum(NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	t = TriggerTracker(td, "outcome_trigger", true);
	if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");
	TrackerParams(t, values);
	p = GetPlans(t);
	if (p->source_plan == NULL)
		p->source_plan = RunPrivileged(t->horizon_mode ? SourceSqlHorizon(t) :
									   SourceSqlKey(t), NULL, NULL, 0);
	RunPrivileged(NULL, p->source_plan, values, SPI_OK_SELECT);
	MonitorsObserveSpi(SPI_tuptable, SPI_processed);
	SPI_finish();
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(outcome_prediction_trigger);

/* Trigger on a tracker's predictions table: see the top of the file. */
Datum
outcome_prediction_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	OutcomeTracker *t;
	TrackerPlans *p;
	Datum		values[OUTCOME_NPARAMS];
	bool		pending;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outcome_prediction_trigger must be called as a trigger")));
	if (td->tg_newtable == NULL || tuplestore_tuple_count(td->tg_newtable) == 0)
		return PointerGetDatum(NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	t = TriggerTracker(td, "outcome_prediction_trigger", false);
	if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");
	TrackerParams(t, values);
	p = GetPlans(t);
	if (p->pending_plan == NULL)
		p->pending_plan = RunPrivileged("SELECT 1 FROM streamml.pending_outcomes "
										"WHERE tracker = $1 LIMIT 1",
										NULL, NULL, 0);
	RunPrivileged(NULL, p->pending_plan, values, SPI_OK_SELECT);
	pending = SPI_processed > 0;
	if (pending)
	{
		if (p->predictions_plan == NULL)
			p->predictions_plan = RunPrivileged(PredictionsSql(t, true), NULL, NULL, 0);
		RunPrivileged(NULL, p->predictions_plan, values, SPI_OK_SELECT);
		MonitorsObserveSpi(SPI_tuptable, SPI_processed);
	}
	else
	{
		if (p->count_plan == NULL)
			p->count_plan = RunPrivileged(PredictionsSql(t, false), NULL, NULL, 0);
		RunPrivileged(NULL, p->count_plan, values, SPI_OK_INSERT);
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}
