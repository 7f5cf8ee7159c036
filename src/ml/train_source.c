/*
 * train_source.c
 *		Reading the source of a training run: the columns it names (label,
 *		features, weight, group_by, order_by), the SQL expressions over them,
 *		the holdout split, and the queries themselves.
 *
 * Every query of a run goes through RunQuery, under the run's registered
 * snapshot (the calling statement's), so rows that arrive while a model
 * trains (a Kafka stream) never mix into later passes.  The source is a
 * relation name or a query; either way the passes read it as "FROM ... s",
 * and the expressions built here refer to its columns as s.column.  The
 * solvers (glm_solve.c) and the holdout scoring (holdout.c) only put these
 * expressions together; evaluate.c shares them to score a deployed model
 * the way training scored its holdout.
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "pg_streamml.h"
#include "ml/categorical.h"
#include "ml/ml.h"
#include "ml/group_key.h"
#include "ml/train.h"

/* Returns true when the source text is a query rather than a relation name. */
static bool
SourceIsQuery(const char *source)
{
	const char *s = source;

	while (*s && isspace((unsigned char) *s))
		s++;
	return *s == '(' ||
		pg_strncasecmp(s, "select", 6) == 0 ||
		pg_strncasecmp(s, "with", 4) == 0 ||
		pg_strncasecmp(s, "values", 6) == 0 ||
		pg_strncasecmp(s, "table", 5) == 0;
}

/*
 * The source as a model stores it: a query as written, a relation by its
 * schema-qualified name, resolved now, under the caller's search_path, so
 * that a retrain (by pg_cron, a monitor, a superuser) reads the same table
 * whatever path it runs under.
 */
char *
SourceCanonical(const char *source)
{
	Oid			relid;

	if (SourceIsQuery(source))
		return pstrdup(source);
	relid = DatumGetObjectId(DirectFunctionCall1(regclassin,
												 CStringGetDatum(source)));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* True when a model's source is a query, which keeps its search_path. */
bool
SourceNeedsSearchPath(const char *source)
{
	return SourceIsQuery(source);
}

/*
 * Errors when the source relation would run another role's code as the
 * current user, who is about to read it (CheckRelationTrusted: another
 * role's view or policies that call functions that are not built in):
 * before anything reads it, since planning may already run such code.  A
 * query source is the current user's own SQL, but the relations it reads
 * are checked the same way (CheckQueryTrusted).
 */
void
SourceCheckTrusted(const char *source, const char *what)
{
	if (SourceIsQuery(source))
		CheckQueryTrusted(source, GetUserId(), what);
	else
		CheckRelationTrusted(DatumGetObjectId(DirectFunctionCall1(regclassin,
																  CStringGetDatum(source))),
							 GetUserId(), what);
}

/*
 * Builds the FROM item for the source: a quoted relation or a subquery (on
 * a line of its own, so that a comment ending the query cannot take the
 * closing parenthesis and what callers append after it).
 */
char *
SourceFromItem(const char *source)
{
	if (SourceIsQuery(source))
		return psprintf("(%s\n) s", source);
	return psprintf("%s s", SourceCanonical(source));
}

/*
 * Finds a column of the source by name; errors naming it when absent, or
 * when its type is another role's (CheckTypeTrusted): the run's SQL casts
 * it, and a retrain runs as the model's owner, by pg_cron or a monitor.
 */
Oid
SourceColumnType(TupleDesc desc, const char *column, const char *role,
				 const char *source)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), column) == 0)
		{
			CheckTypeTrusted(att->atttypid, GetUserId(), column, source,
							 "training or evaluation of a model");
			return att->atttypid;
		}
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("%s column \"%s\" does not exist in \"%s\"", role, column,
					source)));
	return InvalidOid;
}

/* True for the types a feature or a regression target may have. */
bool
TypeIsNumeric(Oid type)
{
	switch (type)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			return true;
		default:
			return false;
	}
}

/* An SQL expression converting column c of type t to float8. */
char *
Float8Expr(const char *column, Oid type)
{
	if (type == BOOLOID)
		return psprintf("(s.%s)::int::float8", quote_identifier(column));
	return psprintf("(s.%s)::float8", quote_identifier(column));
}

/* Appends a SQL string literal. */
static void
AppendLiteral(StringInfo buf, const char *s)
{
	appendStringInfoString(buf, quote_literal_cstr(s));
}

/*
 * The GROUP BY of a pass: one aggregate per group with group_by, else none
 * (a plain aggregate; grouping by a constant would cost a comparison per
 * row, about a sixth of a pass).
 */
const char *
GroupByClause(TrainRun *run)
{
	return run->group_by ? " GROUP BY 1" : "";
}

/* Runs a read-only query under the run's snapshot, parallel plans allowed. */
void
RunQuery(TrainRun *run, const char *sql, int nargs, Oid *types,
		 Datum *values, const char *nulls)
{
	SPIPlanPtr	plan;
	int			ret;

	plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_PARALLEL_OK);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	ret = SPI_execute_snapshot(plan, values, nulls, run->snapshot,
							   InvalidSnapshot, true, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_snapshot failed for \"%s\": %s", sql,
			 SPI_result_code_string(ret));
	SPI_freeplan(plan);
}

/* Returns column col of row row of the last result as a C string or NULL. */
char *
ResultText(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

/* Returns a float8[] result column, copied into the caller's context. */
double *
ResultFloat8Array(int row, int col, int *n, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
								  col, &isnull);
	ArrayType  *a;
	double	   *data;
	double	   *copy;

	if (isnull)
	{
		*n = 0;
		return NULL;
	}
	a = DatumGetArrayTypeP(d);
	data = Float8ArrayData(a, n, "pass result");
	copy = MemoryContextAlloc(cxt, sizeof(double) * Max(*n, 1));
	memcpy(copy, data, sizeof(double) * *n);
	return copy;
}

/* The most classes run's target may have: option max_classes (100). */
static int
MaxClasses(TrainRun *run)
{
	return run->max_classes > 0 ? run->max_classes : 100;
}

/*
 * Resolves the label: its SQL expression as float8 (0/1, or the class index
 * of a multinomial model) and the classes, by a DISTINCT query when the type
 * does not say.
 */
void
ResolveLabel(TrainRun *run, TupleDesc desc)
{
	Oid			type = SourceColumnType(desc, run->label, "label", run->source);
	const char *ql = quote_identifier(run->label);
	StringInfoData sql;

	/* a model that reads its target scores perfectly and predicts nothing */
	for (int i = 0; i < run->nfeaturecols; i++)
		if (strcmp(run->featurecols[i], run->label) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" is both the target and a feature", run->label),
					 errdetail("A model that reads its target scores perfectly on every holdout and predicts nothing.")));
	/* nor one per value of its target: each group's target is constant */
	if (run->group_by && strcmp(run->group_by, run->label) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("column \"%s\" is both the target and the group_by column", run->label),
				 errdetail("Each group's target would be one value: a model per value of the target predicts it from itself.")));
	if (run->family != FAMILY_GLM)
		TreeResolveTask(run, type);
	if (run->kind == MODEL_LINEAR)
	{
		if (!TypeIsNumeric(type) && type != BOOLOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("target column \"%s\" must be numeric, not %s",
							run->label, format_type_be(type))));
		run->yexpr = Float8Expr(run->label, type);
		return;
	}
	if (type == BOOLOID)
	{
		run->nclasses = 2;
		run->classes = palloc(sizeof(char *) * 2);
		run->classes[0] = "false";
		run->classes[1] = "true";
		run->yexpr = Float8Expr(run->label, type);
		return;
	}

	initStringInfo(&sql);
	if (TypeIsNumeric(type))
		appendStringInfo(&sql,
						 "SELECT v::text FROM (SELECT DISTINCT (s.%s)::float8 AS v FROM %s WHERE (s.%s) IS NOT NULL) d ORDER BY v LIMIT %d",
						 ql, run->from, ql, MaxClasses(run) + 1);
	else
		appendStringInfo(&sql,
						 "SELECT v FROM (SELECT DISTINCT (s.%s)::text AS v FROM %s WHERE (s.%s) IS NOT NULL) d ORDER BY v LIMIT %d",
						 ql, run->from, ql, MaxClasses(run) + 1);
	RunQuery(run, sql.data, 0, NULL, NULL, NULL);
	run->nclasses = SPI_processed;
	if (run->nclasses < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("label column \"%s\" has a single class", run->label),
				 errdetail("Classification needs at least two distinct label values in the training data.")));
	if (run->nclasses > MaxClasses(run))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("label column \"%s\" has more than %d classes",
						run->label, MaxClasses(run)),
				 errdetail("A classifier fits one class per distinct value of its target."),
				 TypeIsNumeric(type) ?
				 errhint("To predict a number, train a regression (streamml.train_linreg, or train_gbt and the other tree trainers with a numeric target); for more classes, raise option \"max_classes\" (at most 1000).") :
				 errhint("For more classes, raise option \"max_classes\" (at most 1000).")));
	run->classes = palloc(sizeof(char *) * run->nclasses);
	for (int i = 0; i < run->nclasses; i++)
		run->classes[i] = MemoryContextStrdup(run->cxt, ResultText(i, 1));

	if (run->nclasses == 2 && TypeIsNumeric(type) &&
		strcmp(run->classes[0], "0") == 0 && strcmp(run->classes[1], "1") == 0)
		run->yexpr = Float8Expr(run->label, type);
	else if (run->nclasses == 2)
	{
		/* the second class in sort order is the positive one */
		StringInfoData e;

		initStringInfo(&e);
		appendStringInfo(&e, "((s.%s)::%s = ", ql,
						 TypeIsNumeric(type) ? "float8" : "text");
		AppendLiteral(&e, run->classes[1]);
		appendStringInfo(&e, "%s)::int::float8",
						 TypeIsNumeric(type) ? "::float8" : "");
		run->yexpr = e.data;
	}
	else
	{
		StringInfoData e;

		run->kind = MODEL_MULTINOMIAL;
		initStringInfo(&e);
		appendStringInfo(&e, "(pg_catalog.array_position(ARRAY[");
		for (int i = 0; i < run->nclasses; i++)
		{
			if (i > 0)
				appendStringInfoChar(&e, ',');
			AppendLiteral(&e, run->classes[i]);
		}
		appendStringInfo(&e, "]::%s[], (s.%s)::%s) - 1)::float8",
						 TypeIsNumeric(type) ? "float8" : "text", ql,
						 TypeIsNumeric(type) ? "float8" : "text");
		run->yexpr = e.data;
	}
}

/* Sets the run's feature columns from the features text[] argument. */
void
SetFeatureColumns(TrainRun *run, ArrayType *fa)
{
	Datum	   *fd;
	bool	   *fn;
	int			nf;

	deconstruct_array(fa, TEXTOID, -1, false, TYPALIGN_INT, &fd, &fn, &nf);
	if (nf == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("features must name at least one column")));
	run->featurecols = palloc(sizeof(char *) * nf);
	for (int i = 0; i < nf; i++)
	{
		if (fn[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("feature names must not be null")));
		run->featurecols[i] = TextDatumGetCString(fd[i]);
		for (int j = 0; j < i; j++)
			if (strcmp(run->featurecols[j], run->featurecols[i]) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("feature column \"%s\" is named twice", run->featurecols[i])));
	}
	run->nfeaturecols = nf;
}

/* Resolves the features: the float8[] expression and the feature names. */
void
ResolveFeatures(TrainRun *run, TupleDesc desc)
{
	bool		categorical = false;

	if (run->nfeaturecols == 1)
	{
		Oid			type = SourceColumnType(desc, run->featurecols[0], "feature",
											run->source);
		Oid			elem = get_element_type(type);

		if (OidIsValid(elem))
		{
			if (!TypeIsNumeric(elem))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("feature column \"%s\" must be a numeric array, not %s",
								run->featurecols[0], format_type_be(type))));
			run->featarray = true;
			run->xexpr = psprintf("(s.%s)::float8[]",
								  quote_identifier(run->featurecols[0]));
			return;
		}
	}

	run->coltypes = palloc(sizeof(Oid) * run->nfeaturecols);
	for (int i = 0; i < run->nfeaturecols; i++)
	{
		Oid			type = SourceColumnType(desc, run->featurecols[i], "feature",
											run->source);

		if (!TypeIsNumeric(type) && type != BOOLOID && !TypeIsCategorical(type))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("feature column \"%s\" must be numeric, boolean, text or an enum, not %s",
							run->featurecols[i], format_type_be(type)),
					 errhint("Pass a single float8[] column, or numeric, boolean and categorical columns.")));
		run->coltypes[i] = type;
		if (TypeIsCategorical(type))
			categorical = true;
	}
	/* categorical columns: their levels come with the split (categorical.c) */
	if (categorical)
		return;
	ApplyEncoding(run, NULL);
}

/* Resolves weight, group and order columns and the holdout split. */
void
ResolveColumns(TrainRun *run, TupleDesc desc)
{
	run->wexpr = "1::float8";
	if (run->weight)
	{
		Oid			type = SourceColumnType(desc, run->weight, "weight",
											run->source);

		if (!TypeIsNumeric(type))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("weight column \"%s\" must be numeric", run->weight)));
		run->wexpr = Float8Expr(run->weight, type);
	}
	run->gexpr = "NULL::text";
	if (run->group_by)
	{
		run->group_type = SourceColumnType(desc, run->group_by, "group_by",
										   run->source);
		GroupKeyCheckType(run->group_type, run->group_by);
		/* the key as every session serves it (group_key.c) */
		run->gexpr = psprintf("streamml.group_key(s.%s)",
							  quote_identifier(run->group_by));
	}
	if (run->order_by)
	{
		Oid			type = SourceColumnType(desc, run->order_by, "order_by",
											run->source);

		/* a split in time needs an order with more than two places */
		if (getBaseType(type) == BOOLOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("order_by column \"%s\" is boolean", run->order_by),
					 errdetail("The holdout is the newest rows by order_by: a time, a number or a sequence.")));
		run->order_type = format_type_be_qualified(type);
		run->order_typid = type;
		for (int i = 0; i < desc->natts; i++)
			if (strcmp(NameStr(TupleDescAttr(desc, i)->attname), run->order_by) == 0)
				run->order_collation = TupleDescAttr(desc, i)->attcollation;
	}
}

/*
 * Counts the rows that no pass reads, in rows_skipped, with a NOTICE each
 * (once per league, LeagueNoticeFirst):
 * ng rows of a NULL group (a group_by run has no model for them) and, with
 * a holdout by order_by, no rows of a NULL order_by (in neither side of
 * the split).
 */
static void
NoticeUnreadRows(TrainRun *run, int64 ng, int64 no)
{
	char	   *text;

	if (ng > 0)
	{
		text = psprintf("skipped " INT64_FORMAT " rows of \"%s\" whose group_by column \"%s\" is null",
						ng, run->source, run->group_by);
		if (LeagueNoticeFirst(text))
			ereport(NOTICE,
					(errmsg_internal("%s", text),
					 errdetail("A per-group model has no group for them; no group's rows_skipped counts them.")));
	}
	if (no > 0)
	{
		text = psprintf("skipped " INT64_FORMAT " rows of \"%s\" whose order_by column \"%s\" is null",
						no, run->source, run->order_by);
		if (LeagueNoticeFirst(text))
			ereport(NOTICE,
					(errmsg_internal("%s", text),
					 run->group_by ?
					 errdetail("The holdout split by order_by cannot place them; no group's rows_skipped counts them.") :
					 errdetail("The holdout split by order_by cannot place them; they are counted in rows_skipped.")));
	}
	run->extra_skipped += ng + no;
}

/*
 * The counts of unread rows in columns col and col + 1 of the current
 * result (0 when the run has no such rows to count): of a NULL group and
 * of a NULL order_by.
 */
static void
UnreadCounts(TrainRun *run, int col, int64 *ng, int64 *no)
{
	char	   *g = run->group_by ? ResultText(0, col) : NULL;
	char	   *o = run->order_by && run->test_fraction > 0.0 ?
		ResultText(0, col + 1) : NULL;

	*ng = g ? pg_strtoint64(g) : 0;
	*no = o ? pg_strtoint64(o) : 0;
}

/* UnreadCounts, told to NoticeUnreadRows. */
static void
CountUnreadRows(TrainRun *run, int col)
{
	int64		ng;
	int64		no;

	UnreadCounts(run, col, &ng, &no);
	NoticeUnreadRows(run, ng, no);
}

/*
 * Computes the holdout cutoff and the WHERE clauses of training and test,
 * and counts the rows that neither reads (CountUnreadRows), in the scan
 * that finds the cutoff or, without order_by, in one count of its own.
 */
void
ResolveSplit(TrainRun *run)
{
	const char *qo;
	StringInfoData sql;
	char	   *counts;
	int64		ng;
	int64		no;

	run->train_where = run->group_by ?
		psprintf("%s IS NOT NULL", run->gexpr) : "true";
	run->test_where = NULL;
	counts = psprintf("(pg_catalog.count(*) FILTER (WHERE %s))::text, "
					  "(pg_catalog.count(*) FILTER (WHERE %s))::text",
					  run->group_by ? psprintf("%s IS NULL", run->gexpr) : "false",
					  run->order_by && run->test_fraction > 0.0 ?
					  psprintf("%s AND s.%s IS NULL", run->train_where,
							   quote_identifier(run->order_by)) : "false");
	if (run->order_by == NULL)
	{
		if (run->group_by)
		{
			RunQuery(run, psprintf("SELECT %s FROM %s", counts, run->from),
					 0, NULL, NULL, NULL);
			CountUnreadRows(run, 1);
		}
		return;
	}
	/* a learner that holds its rows finds the cutoff in its one scan */
	if (SplitInScanPossible(run))
	{
		run->split_in_scan = true;
		return;
	}
	qo = quote_identifier(run->order_by);
	initStringInfo(&sql);
	if (run->test_fraction > 0.0)
		appendStringInfo(&sql,
						 "SELECT (pg_catalog.percentile_disc(%.17g) WITHIN GROUP (ORDER BY s.%s))::text, (pg_catalog.max(s.%s))::text, %s FROM %s",
						 1.0 - run->test_fraction, qo, qo, counts, run->from);
	else
		appendStringInfo(&sql, "SELECT (pg_catalog.max(s.%s))::text, (pg_catalog.max(s.%s))::text, %s FROM %s",
						 qo, qo, counts, run->from);
	RunQuery(run, sql.data, 0, NULL, NULL, NULL);
	UnreadCounts(run, 3, &ng, &no);
	SplitResolved(run, ResultText(0, 1), ResultText(0, 2), ng, no);
}

/*
 * Sets the split of a run by order_by from its cutoff and newest value
 * (text, NULL when no row has one), counting ng rows of a NULL group and
 * no rows of a NULL order_by as unread: the WHERE clauses of training
 * (order_by at or below the cutoff) and of the holdout (above it).
 */
void
SplitResolved(TrainRun *run, const char *cutoff, const char *max, int64 ng,
			  int64 no)
{
	const char *qo = quote_identifier(run->order_by);

	/*
	 * Rows, but none with an order_by value: there is no split to make,
	 * and training on them while counting them skipped (and scoring the
	 * "holdout" on the training rows) would report wrong figures.
	 */
	if (cutoff == NULL && no > 0 && run->test_fraction > 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("every row of \"%s\" has a NULL order_by column \"%s\"",
						run->source, run->order_by),
				 errdetail("The holdout split by order_by needs rows with a value."),
				 errhint("Fill the column, or set option \"test_fraction\" to 0 to train on every row without a holdout.")));
	NoticeUnreadRows(run, ng, no);
	if (cutoff == NULL)
		return;
	run->cutoff = MemoryContextStrdup(run->cxt, cutoff);
	/* the newest row seen, from which retrain counts new rows */
	run->data_max = MemoryContextStrdup(run->cxt, max);
	if (run->test_fraction > 0.0)
	{
		StringInfoData w;

		initStringInfo(&w);
		appendStringInfo(&w, "%s AND s.%s %s ", run->train_where, qo,
						 OrderOperator(run->order_typid, BTLessEqualStrategyNumber));
		AppendLiteral(&w, run->cutoff);
		appendStringInfo(&w, "::%s", run->order_type);
		run->train_where = w.data;
		initStringInfo(&w);
		appendStringInfo(&w, "%s AND s.%s %s ",
						 run->group_by ? psprintf("%s IS NOT NULL", run->gexpr) : "true",
						 qo, OrderOperator(run->order_typid, BTGreaterStrategyNumber));
		AppendLiteral(&w, run->cutoff);
		appendStringInfo(&w, "::%s", run->order_type);
		run->test_where = w.data;
	}
}

/* Whether feature j is a one-hot slot of a categorical column. */
bool
FeatureIsLevel(TrainRun *run, int j)
{
	Encoding   *e = run->enc;

	if (e == NULL || run->featarray)
		return false;
	for (int i = e->ncolumns - 1; i >= 0; i--)
		if (e->first[i] <= j)
			return e->cols[i] != NULL;
	return false;
}

/*
 * The name of feature j, as the catalog records it: the column, name[j]
 * of one array column, or column=level of a categorical column.
 */
char *
FeatureName(TrainRun *run, int j)
{
	if (run->featarray)
		return psprintf("%s[%d]", run->featurecols[0], j + 1);
	if (run->enc != NULL)
	{
		Encoding   *e = run->enc;

		for (int i = e->ncolumns - 1; i >= 0; i--)
			if (e->first[i] <= j)
				return e->cols[i] ?
					CatSlotName(run->featurecols[i], e->cols[i], j - e->first[i]) :
					run->featurecols[i];
	}
	return run->featurecols[j];
}

/* Feature names, by FeatureName. */
Datum
FeatureNamesArray(TrainRun *run)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(run->p, 1));

	for (int i = 0; i < run->p; i++)
		d[i] = CStringGetTextDatum(FeatureName(run, i));
	return PointerGetDatum(construct_array(d, run->p, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

/*
 * An SQL condition on a row of the source: true when its feature array has
 * the shape of the model's (one dimension, run->p elements), NULL when the
 * array is NULL, false otherwise.  On the column itself, before any cast.
 */
char *
FeatureArrayFits(TrainRun *run)
{
	const char *col = quote_identifier(run->featurecols[0]);

	return psprintf("(pg_catalog.array_ndims(s.%s) = 1 AND pg_catalog.array_length(s.%s, 1) = %d)",
					col, col, run->p);
}

/*
 * The comparison operator of strategy (BTLessStrategyNumber ...) of the
 * default btree ordering of a type (a domain's, its base type's), as
 * OPERATOR(schema.op): what the extension's own SQL compares order_by
 * values with.  Qualified, so that a source read under its owner's
 * search_path never finds another role's operator of the same name first
 * (one on varchar or an enum would match a varchar or enum column more
 * closely than pg_catalog's on text or anyenum).  Errors for a type
 * without a default btree ordering.
 */
char *
OrderOperator(Oid type, int strategy)
{
	Oid			base = getBaseType(type);
	Oid			opclass = GetDefaultOpClass(base, BTREE_AM_OID);
	Oid			input;
	Oid			op;
	HeapTuple	tup;
	Form_pg_operator form;
	char	   *sql;

	if (!OidIsValid(opclass))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("type %s has no default ordering", format_type_be(type)),
				 errdetail("An order_by column is compared by its type's default btree operator class.")));
	input = get_opclass_input_type(opclass);
	/* a polymorphic class (anyenum, anyarray) has its operators there */
	op = get_opfamily_member(get_opclass_family(opclass), input, input, strategy);
	if (!OidIsValid(op))
		elog(ERROR, "no btree operator of strategy %d for type %s", strategy,
			 format_type_be(type));
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(op));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", op);
	form = (Form_pg_operator) GETSTRUCT(tup);
	sql = psprintf("OPERATOR(%s.%s)",
				   quote_identifier(get_namespace_name(form->oprnamespace)),
				   NameStr(form->oprname));
	ReleaseSysCache(tup);
	return sql;
}

/*
 * The condition "order_by is above last" over the rows s of source from
 * (SourceFromItem's), with the column's type read from the source (SPI
 * connected): how new rows are counted.
 */
char *
NewerRowsCondition(const char *from, const char *order_by, const char *last)
{
	const char *qo = quote_identifier(order_by);
	Oid			type;
	int			ret;

	ret = SPI_execute(psprintf("SELECT s.%s FROM %s LIMIT 0", qo, from), true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the order_by column of the source");
	type = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
	return psprintf("s.%s %s %s::%s", qo, OrderOperator(type, BTGreaterStrategyNumber),
					quote_literal_cstr(last), format_type_be_qualified(type));
}

/*
 * The features argument of ml_score for the rows of a run.  With a feature
 * array column, arrays of another length or shape become NULL, so that the
 * row is skipped (and counted in rows_skipped), as training skips it,
 * instead of ending the scan with an error.
 */
char *
ScoreFeaturesExpr(TrainRun *run)
{
	if (!run->featarray)
		return run->xexpr;
	return psprintf("CASE WHEN %s THEN %s END", FeatureArrayFits(run),
					run->xexpr);
}

/* The one NOTICE of a run about rows skipped for a malformed feature array. */
void
NoticeMalformedRows(TrainRun *run, int64 n)
{
	char	   *text;

	if (n <= 0)
		return;
	text = psprintf("skipped " INT64_FORMAT " rows of \"%s\" whose feature array \"%s\" does not have %d elements",
					n, run->source, run->featurecols[0], run->p);
	/* once per league: its candidates read the same rows */
	if (LeagueNoticeFirst(text))
		ereport(NOTICE,
				(errmsg_internal("%s", text),
				 errdetail("They are counted in rows_skipped.")));
}

/*
 * Sets run->p for a feature array column, before the first pass: the most
 * common length of the non-empty one-dimensional arrays of the training
 * rows.  Rows of another length are then skipped and counted by every
 * pass, whichever row the scan meets first.  A tie has no answer: error.
 */
void
ResolveFeatureLength(TrainRun *run)
{
	const char *col;
	StringInfoData sql;
	int64		top;

	if (!run->featarray)
		return;
	col = quote_identifier(run->featurecols[0]);
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT pg_catalog.array_length(s.%s, 1), pg_catalog.count(*) FROM %s "
					 "WHERE %s AND pg_catalog.array_ndims(s.%s) = 1 "
					 "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 2",
					 col, run->from, run->train_where, col);
	RunQuery(run, sql.data, 0, NULL, NULL, NULL);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no usable rows in \"%s\"", run->source),
				 errdetail("No row has a non-empty feature array in column \"%s\".",
						   run->featurecols[0])));
	run->p = atoi(ResultText(0, 1));
	top = strtoll(ResultText(0, 2), NULL, 10);
	if (SPI_processed == 2 && strtoll(ResultText(1, 2), NULL, 10) == top)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature arrays in column \"%s\" have no most common length",
						run->featurecols[0]),
				 errdetail(INT64_FORMAT " rows have %d elements and as many have %s.",
						   top, run->p, ResultText(1, 1)),
				 errhint("Filter the rows with arrays of the wrong length out of the source.")));
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Resolves what the run reads from its source: the FROM item, then label,
 * features, weight, group and order columns, from the source's columns.
 */
void
ResolveSource(TrainRun *run)
{
	StringInfoData sql;
	TupleDesc	desc;

	SourceCheckTrusted(run->source, "training of a model");
	run->from = SourceFromItem(run->source);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT * FROM %s LIMIT 0", run->from);
	RunQuery(run, sql.data, 0, NULL, NULL, NULL);
	desc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
	ResolveLabel(run, desc);
	ResolveFeatures(run, desc);
	ResolveColumns(run, desc);
}
