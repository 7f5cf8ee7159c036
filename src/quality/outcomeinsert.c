/*
 * outcomeinsert.c
 *		The statement triggers of an outcome tracker: a batch's outcomes
 *		joined with their predictions, in the transaction of the batch.
 *
 * Each trigger reads the batch (the statement's transition table,
 * SPI_register_trigger_data) with one statement, built from the tracker's
 * definition and prepared once per backend and tracker (SPI_prepare,
 * SPI_keepplan), and hands the rows to outcomewrite.c, which computes the
 * losses and bucket sums in C and writes them:
 *
 *	source trigger		the batch's outcomes (key mode: its rows; horizon
 *						mode: the earlier rows of the same partitions whose
 *						order_by + horizon the batch reached, read in C by
 *						outcomehorizon.c wherever it applies, else by the
 *						statement below) are joined
 *						with the predictions of their key, for every model
 *						that scored it, by one index probe of the
 *						predictions table's primary key per outcome (a
 *						LATERAL subquery, so that no plan turns it into a
 *						scan of the table); those without a prediction go
 *						to streamml.pending_outcomes.
 *	predictions trigger	the batch's predictions are counted in C, per
 *						model, version, role and bucket; only when the
 *						tracker has pending outcomes (one index probe) are
 *						the pending outcomes of their keys joined with them.
 *
 * Privileges.  The statements that read user tables (the source, the
 * predictions table) run as the tracker's owner inside a security-
 * restricted operation with search_path pinned, so that the owner's
 * privileges and row-level security apply to what the tracker reads: a row
 * of the source that a policy hides from the owner is not an outcome.  In
 * key mode the batch is the transition table, which row-level security
 * does not filter: when the owner is subject to a policy of the source,
 * each outcome row must also be visible in the source to the owner (same
 * key, actual and time columns).  What writes the catalog tables (outcomes,
 * pending outcomes, buckets) runs as the bootstrap superuser
 * (OutcomeExecute), as CatalogExecute does, or in C.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "parser/parse_coerce.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/backendid.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "pg_streamml.h"
#include "quality/predstash.h"
#include "quality/quality.h"
#include "scoring/scorer.h"

#define OUTCOME_NPARAMS 5

/* The prepared statements of one tracker, kept for the backend's life. */
typedef struct TrackerPlans
{
	int32		id;				/* hash key */
	uint64		generation;		/* of the tracker they were made for */
	SPIPlanPtr	source_plan;	/* the batch's outcomes, joined */
	SPIPlanPtr	source_rls_plan;	/* the same, filtered by the source's RLS */
	SPIPlanPtr	pending_plan;	/* are there pending outcomes? */
	SPIPlanPtr	pending_batch_plan;	/* the batch's predictions, as arrays */
	SPIPlanPtr	pending_join_plan;	/* pending outcomes of the batch's keys */
} TrackerPlans;

/* The arrays PendingBatchSql makes, the parameters after the common ones. */
#define PENDING_NARRAYS 8
static const Oid PendingArrayTypes[PENDING_NARRAYS] = {
	JSONBARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID,
	FLOAT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID
};

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
 * table's.  The jsonb depends on the key's values alone, so that a key
 * written in one session meets the same key written in another, and on
 * either side: a timestamptz is written in UTC (to_jsonb would use the
 * session's TimeZone), a char(n) without its padding, as it compares with
 * text, an interval as justify_interval gives it (1 day and 24 hours are
 * equal intervals), a bytea in hex (bytea_output would choose); the other
 * settings that reach to_jsonb are pinned (RunAs), and key types whose text
 * still differs between equal values are refused (OutcomeKeyTypesCheck).
 */
char *
OutcomeKeyExpr(OutcomeTracker *t, const char *alias, bool source_side)
{
	StringInfoData e;

	initStringInfo(&e);
	appendStringInfoString(&e, "pg_catalog.jsonb_build_object(");
	for (int i = 0; i < t->nkeys; i++)
	{
		Oid			rel = source_side ? t->source : t->predictions;
		const char *col = source_side ? t->key_columns[i] : t->prediction_keys[i];
		Oid			type = getBaseType(get_atttype(rel, get_attnum(rel, col)));
		char	   *ref = psprintf("%s.%s", alias, quote_identifier(col));

		if (type == TIMESTAMPTZOID)
			ref = psprintf("pg_catalog.timezone('UTC', %s)", ref);
		else if (type == BPCHAROID)
			ref = psprintf("(%s)::pg_catalog.text", ref);
		else if (type == INTERVALOID)
			ref = psprintf("pg_catalog.justify_interval(%s)", ref);
		else if (type == BYTEAOID)
			ref = psprintf("pg_catalog.encode(%s, 'hex')", ref);
		appendStringInfo(&e, "%s%s, %s", i > 0 ? ", " : "",
						 quote_literal_cstr(t->prediction_keys[i]), ref);
	}
	appendStringInfoChar(&e, ')');
	return e.data;
}

/*
 * Whether OutcomeKeyExpr writes equal values of type (a base type) as the
 * same jsonb whatever the session's settings: scalars but money (its text
 * follows lc_monetary), and arrays of scalars that to_jsonb writes as they
 * are (not timestamptz, char(n), interval, bytea or money, which
 * OutcomeKeyExpr converts only alone).  Not composites, ranges or
 * multiranges, whose members' text is not converted either.
 */
static bool
OutcomeKeyTypeCanonical(Oid type, bool element)
{
	Oid			elem = get_element_type(type);
	char		typtype = get_typtype(type);

	if (OidIsValid(elem))
		return !element && OutcomeKeyTypeCanonical(getBaseType(elem), true);
	if (typtype != TYPTYPE_BASE && typtype != TYPTYPE_ENUM)
		return false;
	if (type == CASHOID)
		return false;
	return !element || (type != TIMESTAMPTZOID && type != BPCHAROID &&
						type != INTERVALOID && type != BYTEAOID);
}

/*
 * Errors when key column col of table rel has a nondeterministic collation:
 * strings it holds equal (abc and ABC, case-insensitive) have different
 * texts, so an outcome would meet its prediction in one order (the SQL
 * join by the column) and not in the other (the pending outcome's key).
 */
static void
KeyCollationCheck(Oid rel, const char *col, const char *scorer)
{
	Oid			type;
	int32		typmod;
	Oid			coll;

	get_atttypetypmodcoll(rel, get_attnum(rel, col), &type, &typmod, &coll);
	if (OidIsValid(coll) && !get_collation_isdeterministic(coll))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("key column \"%s\" of table \"%s\" has nondeterministic collation \"%s\"",
						col, get_rel_name(rel), get_collation_name(coll)),
				 errdetail("An outcome meets its prediction by the text of its key, and strings this collation holds equal can differ in text."),
				 errhint("Key scorer \"%s\" and its outcomes by a column of a deterministic collation, such as \"C\".",
						 scorer)));
}

/*
 * Errors unless the key columns skeys of table source can carry the keys of
 * the n key columns pkeys of scorer's predictions table preds: each of a
 * type whose jsonb is the same for equal values (OutcomeKeyTypeCanonical),
 * and of the predictions key's type, or both numbers or both strings, so
 * that the two compare and give the same jsonb.
 */
void
OutcomeKeyTypesCheck(Oid source, char **skeys, Oid preds, char **pkeys, int n,
					 const char *scorer)
{
	for (int i = 0; i < n; i++)
	{
		Oid			stype;
		Oid			ptype;
		char		scat;
		char		pcat;

		if (get_attnum(preds, pkeys[i]) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of table \"%s\" does not exist",
							pkeys[i], get_rel_name(preds)),
					 errdetail("It is a key column of the predictions of scorer \"%s\".",
							   scorer)));
		stype = getBaseType(get_atttype(source, get_attnum(source, skeys[i])));
		ptype = getBaseType(get_atttype(preds, get_attnum(preds, pkeys[i])));
		scat = TypeCategory(stype);
		pcat = TypeCategory(ptype);
		KeyCollationCheck(source, skeys[i], scorer);
		KeyCollationCheck(preds, pkeys[i], scorer);

		if (!OutcomeKeyTypeCanonical(ptype, false) || !OutcomeKeyTypeCanonical(stype, false))
		{
			bool		preds_side = !OutcomeKeyTypeCanonical(ptype, false);

			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("key column \"%s\" of table \"%s\" has type %s, which an outcome key cannot have",
							preds_side ? pkeys[i] : skeys[i],
							get_rel_name(preds_side ? preds : source),
							format_type_be(preds_side ? ptype : stype)),
					 errdetail("An outcome meets its prediction by the text of its key, and equal values of this type can have different texts (by the session's settings, or inside an array or record)."),
					 errhint("Key scorer \"%s\" and its outcomes by a column of a scalar type, such as an integer, text, uuid, date or timestamp.",
							 scorer)));
		}
		if (stype != ptype &&
			!(scat == pcat && (scat == TYPCATEGORY_NUMERIC || scat == TYPCATEGORY_STRING)))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("key column \"%s\" of table \"%s\" has type %s, but key column \"%s\" of scorer \"%s\" has type %s",
							skeys[i], get_rel_name(source), format_type_be(stype),
							pkeys[i], scorer, format_type_be(ptype)),
					 errdetail("An outcome's key must compare equal to its prediction's, and be written alike.")));
	}
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
	return psprintf("coalesce(streamml.group_key(%s.%s), '')", alias,
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

/*
 * The end of a statement that reads outcomes "b" (k1.., key, actual_number,
 * actual_text, group_key, labelled_at, rn, ord): each joined with the
 * predictions of its key, one index probe per outcome, NULLs when its key
 * has none; in arrival order.
 */
static void
AppendPredictionJoin(StringInfo s, OutcomeTracker *t)
{
	appendStringInfo(s,
					 " SELECT b.key, b.actual_number, b.actual_text, b.group_key, "
					 "b.labelled_at, b.rn, p.model, p.version, p.role, p.prediction, "
					 "p.probability, p.class, p.scored_at FROM b LEFT JOIN LATERAL "
					 "(SELECT p.model, p.version, %s AS role, p.prediction, p.probability, "
					 "p.class, p.scored_at FROM %s p WHERE ",
					 RoleExpr(t, "p"), QualifiedName(t->predictions));
	for (int i = 0; i < t->nkeys; i++)
		appendStringInfo(s, "%sp.%s = b.k%d", i > 0 ? " AND " : "",
						 quote_identifier(t->prediction_keys[i]), i + 1);
	/* OFFSET 0: kept a subquery, i.e. a parameterized index scan */
	appendStringInfoString(s, " OFFSET 0) p ON true ORDER BY b.ord");
	for (int i = 0; i < t->nkeys; i++)
		appendStringInfo(s, ", b.k%d", i + 1);
	appendStringInfoString(s, ", p.model, p.version");
}

/*
 * The statement of the source trigger, key mode; rls: only the batch's
 * rows that the owner can see in the source (see the top of the file).
 */
static char *
SourceSqlKey(OutcomeTracker *t, bool rls)
{
	StringInfoData s;
	char	   *at = pstrdup("$2");

	/*
	 * a timestamp without time zone is read as UTC, not in the loading
	 * session's TimeZone: the same row is known at the same time whoever
	 * loads it
	 */
	if (t->at && getBaseType(get_atttype(t->source, get_attnum(t->source, t->at))) ==
		TIMESTAMPOID)
		at = psprintf("coalesce(pg_catalog.timezone('UTC', (a.%s)::timestamp), $2)",
					  quote_identifier(t->at));
	else if (t->at)
		at = psprintf("coalesce((a.%s)::timestamptz, $2)", quote_identifier(t->at));

	initStringInfo(&s);
	appendStringInfo(&s, "WITH na AS (SELECT a.*, row_number() OVER () AS ord "
					 "FROM streamml_new a WHERE a.%s IS NOT NULL",
					 quote_identifier(t->actual));
	for (int i = 0; i < t->nkeys; i++)
		appendStringInfo(&s, " AND a.%s IS NOT NULL", quote_identifier(t->key_columns[i]));
	if (rls)
	{
		appendStringInfo(&s, " AND EXISTS (SELECT 1 FROM %s s WHERE s.%s IS NOT DISTINCT FROM a.%s",
						 QualifiedName(t->source), quote_identifier(t->actual),
						 quote_identifier(t->actual));
		for (int i = 0; i < t->nkeys; i++)
			appendStringInfo(&s, " AND s.%s = a.%s", quote_identifier(t->key_columns[i]),
							 quote_identifier(t->key_columns[i]));
		if (t->at)
			appendStringInfo(&s, " AND s.%s IS NOT DISTINCT FROM a.%s",
							 quote_identifier(t->at), quote_identifier(t->at));
		if (t->group_column)
			appendStringInfo(&s, " AND s.%s IS NOT DISTINCT FROM a.%s",
							 quote_identifier(t->group_column),
							 quote_identifier(t->group_column));
		appendStringInfoChar(&s, ')');
	}
	appendStringInfoString(&s, "), b AS (SELECT ");
	AppendOutcomeColumns(&s, t, "a", "a", at);
	appendStringInfoString(&s, ", a.ord FROM na a)");
	AppendPredictionJoin(&s, t);
	return s.data;
}

/*
 * The statement of the source trigger, horizon mode: per partition of
 * the batch, the rows whose order_by + horizon lies in (the partition's
 * newest order_by before the batch, its newest in the batch] are labelled
 * by the first row at or after that point, and after the row itself (an
 * infinite order_by, or one so large that adding the horizon leaves it
 * as it is, is not its own label).  The newest before the batch
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
	/*
	 * with no row before the batch, prev is the batch's oldest: all rows;
	 * OFFSET 0 keeps each partition's range a parameterized index scan, not
	 * a join the planner may make a merge join over the whole source
	 */
	appendStringInfo(&s,
					 ", r.%s AS ord FROM bo CROSS JOIN LATERAL (SELECT * FROM %s r WHERE r.%s = bo.part "
					 "AND r.%s > bo.prev - %s AND r.%s <= bo.bmax - %s OFFSET 0) r "
					 "CROSS JOIN LATERAL (SELECT s.%s AS %s FROM %s s WHERE s.%s = r.%s "
					 "AND s.%s >= r.%s + %s AND s.%s > r.%s ORDER BY s.%s LIMIT 1) l "
					 "WHERE l.%s IS NOT NULL",
					 ob, src, part, ob, h, ob, h, act, act, src, part, part, ob, ob, h, ob,
					 ob, ob, act);
	for (int i = 0; i < t->nkeys; i++)
		appendStringInfo(&s, " AND r.%s IS NOT NULL", quote_identifier(t->key_columns[i]));
	appendStringInfoChar(&s, ')');
	AppendPredictionJoin(&s, t);
	return s.data;
}

/*
 * The statement of the predictions trigger, as the tracker's owner, when
 * the tracker has pending outcomes: the batch's predictions as arrays of
 * built-in types (PendingArrayTypes), their keys as jsonb.  The keys are
 * values of the owner's types, whose conversion to json may call the
 * owner's code (a cast to json): it runs as the owner, never in the
 * privileged statement below.
 */
static char *
PendingBatchSql(OutcomeTracker *t)
{
	return psprintf("SELECT array_agg(%s), array_agg(n.model), array_agg(n.version), "
					"array_agg(%s), array_agg(n.prediction), array_agg(n.probability), "
					"array_agg(n.class), array_agg(n.scored_at) FROM streamml_new n",
					OutcomeKeyExpr(t, "n", false), RoleExpr(t, "n"));
}

/*
 * Then, privileged (catalog rows), over those arrays and nothing of the
 * user's: the pending outcomes of the batch's keys are taken out of
 * pending_outcomes and joined with the batch's predictions.  They are
 * found by one probe of the (tracker, key) index per key of the batch (a
 * LATERAL subquery that OFFSET 0 keeps one), and deleted by ctid (a TID
 * scan), whatever plan the planner makes of statistics taken while the
 * table was small: a semi-join with the batch was planned as a hash join
 * over all the tracker's pending outcomes, read at every batch.
 */
static char *
PendingJoinSql(void)
{
	return psprintf("WITH n AS (SELECT * FROM unnest($6, $7, $8, $9, $10, $11, $12, $13) "
					"AS n(key, model, version, role, prediction, probability, class, scored_at))"
					", pdel AS (DELETE FROM streamml.pending_outcomes o WHERE o.ctid = ANY (ARRAY("
					"SELECT p.ctid FROM (SELECT DISTINCT k.key FROM unnest($6) k(key)) k "
					"CROSS JOIN LATERAL (SELECT p.ctid FROM streamml.pending_outcomes p "
					"WHERE p.tracker = $1 AND p.key = k.key OFFSET 0) p)) "
					"RETURNING o.key, o.actual_number, "
					"o.actual_text, o.group_key, o.labelled_at)"
					", b AS (SELECT pdel.*, row_number() OVER (PARTITION BY pdel.key "
					"ORDER BY pdel.labelled_at) AS rn FROM pdel)"
					" SELECT b.key, b.actual_number, b.actual_text, b.group_key, "
					"b.labelled_at, b.rn, n.model, n.version, n.role, n.prediction, "
					"n.probability, n.class, n.scored_at FROM b JOIN n ON n.key = b.key "
					"ORDER BY b.labelled_at, b.key, n.model, n.version");
}

/* ---- execution ---- */

/*
 * Prepares (plan NULL) or executes a statement as role user, inside a
 * security-restricted operation with search_path pinned to pg_catalog
 * (the statements qualify every name): the tracker's owner for reads of
 * user tables, the bootstrap superuser for catalog writes.
 */
static SPIPlanPtr
RunAs(Oid user, const char *sql, int nargs, Oid *types, SPIPlanPtr plan,
	  Datum *values, const char *nulls, int expect)
{
	Oid			save_user;
	int			save_sec;
	int			nest;
	int			text_nest;
	int			rc = 0;
	bool		execute = plan != NULL;

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(user, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	nest = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	/*
	 * A batch is small beside the tables it is joined with: look its keys
	 * up by index (the source's (partition_by, order_by) index), also when
	 * a plan made while the tables were small is made again.
	 */
	(void) set_config_option("enable_seqscan", "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	/* and one row per probe: a plain index scan, not a bitmap */
	(void) set_config_option("enable_bitmapscan", "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	/*
	 * and no JIT: the disabled scans' cost penalty lifts a plan that no
	 * index serves far above jit_above_cost, and compiling a batch's
	 * statement costs far more than running it (about half a second per
	 * statement where the source of a horizon tracker had no index)
	 */
	(void) set_config_option("jit", "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	/* an actual's text (a class label) must not follow the session's digits */
	text_nest = TextSettingsPin();
	if (plan == NULL)
	{
		plan = SPI_prepare(sql, nargs, types);
		if (plan == NULL)
			elog(ERROR, "could not prepare an outcome statement: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
	}
	else
		rc = SPI_execute_plan(plan, values, nulls, false, 0);
	TextSettingsRestore(text_nest);
	AtEOXact_GUC(true, nest);
	SetUserIdAndSecContext(save_user, save_sec);
	if (execute && rc != expect)
		elog(ERROR, "outcome statement failed: %s", SPI_result_code_string(rc));
	return plan;
}

/* Prepares a catalog statement of outcomewrite.c, kept for the backend. */
SPIPlanPtr
OutcomePrepare(const char *sql, int nargs, Oid *types)
{
	return RunAs(BOOTSTRAP_SUPERUSERID, sql, nargs, types, NULL, NULL, NULL, 0);
}

/* Executes a catalog statement of outcomewrite.c (privileged). */
void
OutcomeExecute(SPIPlanPtr plan, Datum *values, const char *nulls, int expect)
{
	RunAs(BOOTSTRAP_SUPERUSERID, NULL, 0, NULL, plan, values, nulls, expect);
}

/* The oid of streamml.outcome_rows (the table behind streamml.outcomes). */
Oid
OutcomesRelid(void)
{
	return get_relname_relid("outcome_rows", get_namespace_oid(STREAMML_SCHEMA, false));
}

/* The oid of streamml.pending_outcomes. */
Oid
PendingOutcomesRelid(void)
{
	return get_relname_relid("pending_outcomes",
							 get_namespace_oid(STREAMML_SCHEMA, false));
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
	/*
	 * made for an older read of the tracker: their SQL may follow columns
	 * as they were (an actual value read as the type it had)
	 */
	if (found && p->generation != t->generation)
	{
		SPIPlanPtr	plans[] = {p->source_plan, p->source_rls_plan, p->pending_plan,
		p->pending_batch_plan, p->pending_join_plan};

		for (int i = 0; i < lengthof(plans); i++)
			if (plans[i] != NULL)
				SPI_freeplan(plans[i]);
		found = false;
	}
	p->generation = t->generation;
	if (!found)
	{
		p->source_plan = NULL;
		p->source_rls_plan = NULL;
		p->pending_plan = NULL;
		p->pending_batch_plan = NULL;
		p->pending_join_plan = NULL;
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
	t = OutcomeTrackerCached(id);
	rel = RelationGetRelid(td->tg_relation);
	if (t == NULL || (on_source ? !RelationIsPartOf(rel, t->source) : rel != t->predictions))
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
	/* its columns are read in C as their types: an ALTER may have changed one */
	{
		Relation	preds = table_open(t->predictions, AccessShareLock);

		ScorerCheckPredictionColumns(preds);
		table_close(preds, AccessShareLock);
	}
	OutcomeTrackerColumnsCheck(t);
	OutcomeTrackerTypesCheck(t);
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

/*
 * Errors unless the tracker's owner can trust the types of the columns its
 * statements read (CheckColumnTypeTrusted) and the policies of its tables
 * (CheckRelationTrusted): they run as the owner at every
 * insert, and another role that owns the source (or one of those types)
 * could otherwise have them call its code, as the owner, by a cast on a
 * type of its own, given to a column after the tracker was made.
 */
void
OutcomeTrackerTypesCheck(OutcomeTracker *t)
{
	const char *what = psprintf("outcome tracker of scorer \"%s\"", t->scorer);
	const char *cols[] = {t->actual, t->at, t->group_column, t->partition_by,
	t->order_by};

	for (int i = 0; i < t->nkeys; i++)
	{
		CheckColumnTypeTrusted(t->source, t->key_columns[i], t->owner, what);
		CheckColumnTypeTrusted(t->predictions, t->prediction_keys[i], t->owner, what);
	}
	for (int i = 0; i < lengthof(cols); i++)
		if (cols[i] != NULL)
			CheckColumnTypeTrusted(t->source, cols[i], t->owner, what);
	/* nor policies that call another role's code (the source is a table) */
	CheckRelationTrusted(t->source, t->owner, what);
	CheckRelationTrusted(t->predictions, t->owner, what);
}

/* The parameters of every statement: tracker, now, shard, owner, scorer. */
static void
TrackerParams(OutcomeTracker *t, Datum *values, TimestampTz now)
{
	values[0] = Int32GetDatum(t->id);
	values[1] = TimestampTzGetDatum(now);
	values[2] = Int32GetDatum(MyBackendId);
	values[3] = ObjectIdGetDatum(t->owner);
	values[4] = CStringGetTextDatum(t->scorer);
}

/*
 * Counts the predictions already in a new tracker's predictions table
 * into its buckets (track_outcomes; SPI connected), read as the owner.
 */
void
OutcomeCountPredictions(OutcomeTracker *t)
{
	OutcomeBatch *b = OutcomeBatchBegin(t, GetCurrentTimestamp());
	SPIPlanPtr	plan;
	Datum		values[OUTCOME_NPARAMS];
	char	   *sql;

	TrackerParams(t, values, GetCurrentTimestamp());
	sql = psprintf("SELECT n.model, n.version, %s, n.scored_at, count(*), "
				   "count(n.probability), coalesce(sum(greatest(n.probability, "
				   "1 - n.probability)), 0) FROM %s n GROUP BY 1, 2, 3, 4",
				   RoleExpr(t, "n"), QualifiedName(t->predictions));
	plan = RunAs(t->owner, sql, OUTCOME_NPARAMS, (Oid *) ParamTypes, NULL,
				 NULL, NULL, 0);
	RunAs(t->owner, NULL, 0, NULL, plan, values, NULL, SPI_OK_SELECT);
	SPI_freeplan(plan);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		OutcomeBatchCountPredictions(b, SPI_getvalue(tup, desc, 1),
									 DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull)),
									 SPI_getvalue(tup, desc, 3),
									 DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull)),
									 DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull)),
									 DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull)),
									 DatumGetFloat8(SPI_getbinval(tup, desc, 7, &isnull)));
	}
	OutcomeBatchFinish(b);
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
	TimestampTz now = GetCurrentTimestamp();
	OutcomeBatch *b;
	SPIPlanPtr	plan;
	PredStash  *stash;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outcome_trigger must be called as a trigger")));
	if (td->tg_newtable == NULL || tuplestore_tuple_count(td->tg_newtable) == 0)
		return PointerGetDatum(NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	t = TriggerTracker(td, "outcome_trigger", true);
	/* the statement's own predictions, which the scorer kept (predstash.c) */
	stash = PredStashTake(td, t->scorer, t->predictions);
	if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");
	TrackerParams(t, values, now);
	p = GetPlans(t);
	if (t->horizon_mode)
	{
		/* one index range scan per partition of the batch, where it applies */
		b = OutcomeBatchBegin(t, now);
		if (OutcomeHorizonBatch(t, td, b, now, t->stash_armed ? stash : NULL))
		{
			OutcomeBatchFinish(b);
			SPI_finish();
			return PointerGetDatum(NULL);
		}

		if (p->source_plan == NULL)
			p->source_plan = RunAs(t->owner, SourceSqlHorizon(t), OUTCOME_NPARAMS,
								   (Oid *) ParamTypes, NULL, NULL, NULL, 0);
		plan = p->source_plan;
	}
	else if (check_enable_rls(t->source, t->owner, false) == RLS_ENABLED)
	{
		if (p->source_rls_plan == NULL)
			p->source_rls_plan = RunAs(t->owner, SourceSqlKey(t, true), OUTCOME_NPARAMS,
									   (Oid *) ParamTypes, NULL, NULL, NULL, 0);
		plan = p->source_rls_plan;
	}
	else
	{
		if (p->source_plan == NULL)
			p->source_plan = RunAs(t->owner, SourceSqlKey(t, false), OUTCOME_NPARAMS,
								   (Oid *) ParamTypes, NULL, NULL, NULL, 0);
		plan = p->source_plan;
	}
	RunAs(t->owner, NULL, 0, NULL, plan, values, NULL, SPI_OK_SELECT);
	b = OutcomeBatchBegin(t, now);
	OutcomeBatchAddJoined(b, SPI_tuptable, SPI_processed, true);
	OutcomeBatchFinish(b);
	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * Whether text t (NULL: the role "champion" of a NULL role) has the bytes
 * of string str.
 */
static bool
TextEquals(text *t, const char *str)
{
	const char *d = t ? VARDATA_ANY(t) : "champion";
	size_t		len = t ? VARSIZE_ANY_EXHDR(t) : strlen("champion");

	return strlen(str) == len && memcmp(d, str, len) == 0;
}

/*
 * Counts the batch's predictions (the transition table) into the batch's
 * sums, in C: per model, version, role and bucket.
 */
static void
CountBatchPredictions(OutcomeBatch *b, OutcomeTracker *t, TriggerData *td)
{
	Relation	rel = td->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	a_model = get_attnum(t->predictions, "model");
	AttrNumber	a_version = get_attnum(t->predictions, "version");
	AttrNumber	a_prob = get_attnum(t->predictions, "probability");
	AttrNumber	a_at = get_attnum(t->predictions, "scored_at");
	AttrNumber	a_role = get_attnum(t->predictions, "role");
	AttrNumber	maxatt = Max(Max(a_model, a_version), Max(a_prob, Max(a_at, a_role)));
	Tuplestorestate *ts = td->tg_newtable;
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	char	   *model = NULL;
	char	   *role = NULL;
	int32		version = 0;
	TimestampTz at = 0;
	int64		n = 0;
	int64		conf_n = 0;
	double		conf_sum = 0;
	int			ptr;

	ptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(ts, ptr);
	tuplestore_rescan(ts);

	/*
	 * Runs of rows of the same model, version, role and time are summed;
	 * a row's model and role are compared as bytes with the run's, and
	 * copied out only when a new run starts.
	 */
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		text	   *m;
		text	   *r = NULL;
		int32		v;
		TimestampTz s;

		slot_getsomeattrs(slot, maxatt);
		if (slot->tts_isnull[a_model - 1] || slot->tts_isnull[a_version - 1] ||
			slot->tts_isnull[a_at - 1])
			continue;
		m = DatumGetTextPP(slot->tts_values[a_model - 1]);
		if (a_role > 0 && !slot->tts_isnull[a_role - 1])
			r = DatumGetTextPP(slot->tts_values[a_role - 1]);
		v = DatumGetInt32(slot->tts_values[a_version - 1]);
		s = DatumGetTimestampTz(slot->tts_values[a_at - 1]);
		if (model == NULL || v != version || s != at ||
			!TextEquals(m, model) || !TextEquals(r, role))
		{
			if (model != NULL)
				OutcomeBatchCountPredictions(b, model, version, role, at, n, conf_n, conf_sum);
			model = text_to_cstring(m);
			role = r ? text_to_cstring(r) : pstrdup("champion");
			version = v;
			at = s;
			n = conf_n = 0;
			conf_sum = 0;
		}
		n++;
		if (!slot->tts_isnull[a_prob - 1])
		{
			double		pr = DatumGetFloat8(slot->tts_values[a_prob - 1]);

			conf_n++;
			conf_sum += Max(pr, 1 - pr);
		}
		/* a value that had to be detoasted */
		if ((Pointer) m != DatumGetPointer(slot->tts_values[a_model - 1]))
			pfree(m);
		if (r && (Pointer) r != DatumGetPointer(slot->tts_values[a_role - 1]))
			pfree(r);
	}
	if (model != NULL)
		OutcomeBatchCountPredictions(b, model, version, role, at, n, conf_n, conf_sum);
	tuplestore_select_read_pointer(ts, 0);
	ExecDropSingleTupleTableSlot(slot);
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
	TimestampTz now = GetCurrentTimestamp();
	OutcomeBatch *b;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outcome_prediction_trigger must be called as a trigger")));
	/* an UPDATE of the predictions: the in-memory join stops (predstash.c) */
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		if (!TRIGGER_FIRED_AFTER(td->tg_event) ||
			!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || td->tg_trigger->tgnargs != 1)
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("outcome_prediction_trigger must be an AFTER FOR EACH STATEMENT trigger of an outcome tracker")));
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		t = OutcomeTrackerLoad(pg_strtoint32(td->tg_trigger->tgargs[0]));
		if (t != NULL)
			OutcomeTrackersDisarm(t->id);
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	if (td->tg_newtable == NULL || tuplestore_tuple_count(td->tg_newtable) == 0)
		return PointerGetDatum(NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	t = TriggerTracker(td, "outcome_prediction_trigger", false);
	/*
	 * rows another writer than the scorer inserted: the same (whatever the
	 * cached tracker says: it may have been read under an older snapshot)
	 */
	if (!PredStashScorerWriting(td->tg_relation, t->scorer))
		OutcomeTrackersDisarm(t->id);
	if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");
	TrackerParams(t, values, now);
	p = GetPlans(t);
	b = OutcomeBatchBegin(t, now);
	CountBatchPredictions(b, t, td);
	if (p->pending_plan == NULL)
		p->pending_plan = OutcomePrepare("SELECT 1 FROM streamml.pending_outcomes "
										 "WHERE tracker = $1 LIMIT 1",
										 OUTCOME_NPARAMS, (Oid *) ParamTypes);
	OutcomeExecute(p->pending_plan, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		Datum		jv[OUTCOME_NPARAMS + PENDING_NARRAYS];
		char		jn[OUTCOME_NPARAMS + PENDING_NARRAYS + 1];
		Oid			jt[OUTCOME_NPARAMS + PENDING_NARRAYS];

		memcpy(jt, ParamTypes, sizeof(Oid) * OUTCOME_NPARAMS);
		memcpy(jt + OUTCOME_NPARAMS, PendingArrayTypes, sizeof(PendingArrayTypes));
		memcpy(jv, values, sizeof(Datum) * OUTCOME_NPARAMS);
		memset(jn, ' ', sizeof(jn) - 1);
		jn[sizeof(jn) - 1] = '\0';
		if (p->pending_batch_plan == NULL)
			p->pending_batch_plan = RunAs(t->owner, PendingBatchSql(t), 0, NULL,
										  NULL, NULL, NULL, 0);
		RunAs(t->owner, NULL, 0, NULL, p->pending_batch_plan, NULL, NULL, SPI_OK_SELECT);
		if (SPI_processed != 1)
			elog(ERROR, "could not read the predictions of a batch");
		for (int i = 0; i < PENDING_NARRAYS; i++)
		{
			bool		isnull;

			if (SPI_gettypeid(SPI_tuptable->tupdesc, i + 1) != PendingArrayTypes[i])
				elog(ERROR, "the predictions of a batch have an unexpected type");
			jv[OUTCOME_NPARAMS + i] = SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, i + 1, &isnull);
			if (isnull)
				jn[OUTCOME_NPARAMS + i] = 'n';
		}
		if (p->pending_join_plan == NULL)
			p->pending_join_plan = OutcomePrepare(PendingJoinSql(),
												  OUTCOME_NPARAMS + PENDING_NARRAYS, jt);
		OutcomeExecute(p->pending_join_plan, jv, jn, SPI_OK_SELECT);
		OutcomeBatchAddJoined(b, SPI_tuptable, SPI_processed, false);
	}
	OutcomeBatchFinish(b);
	SPI_finish();
	return PointerGetDatum(NULL);
}
