/*
 * feature_table.c
 *		create_feature_table, drop_feature_table, feature_sql: the feature
 *		table's life, its catalog row and its trigger.
 *
 * A feature table is three things made together: a table (the kept
 * columns, one float8 column per feature, arrival_seq and late, a unique
 * index on the partition and arrival_seq, string partition columns
 * compared under "C" there), a row of
 * streamml.feature_tables_catalog (written only through CatalogExecute)
 * and triggers on the source: AFTER INSERT (the features), AFTER DELETE
 * (the feature rows go too), AFTER TRUNCATE (so does the feature table)
 * and BEFORE UPDATE of the kept columns (refused).  The triggers depend on the table, so dropping the table
 * also drops them.
 *
 * Creating one takes SELECT on the source (the features reveal its values)
 * and TRIGGER on it (the source's inserts will run the owner's feature
 * computation, and fail with it), and the right to create the table.  The
 * source is locked against inserts (SHARE ROW EXCLUSIVE, as CREATE TRIGGER
 * takes it) from before the trigger exists to commit, so the back-fill and
 * the trigger see every row exactly once.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/ruleutils.h"
#include "utils/rel.h"
#include "utils/regproc.h"
#include "utils/typcache.h"

#include "pg_streamml.h"
#include "scoring/features.h"
#include "scoring/feature_citus.h"
#include "ingest/citus_batch.h"

/* Rows per back-fill batch. */
#define BACKFILL_BATCH 10000

/* A relation's name, schema-qualified and quoted. */
static char *
QualifiedName(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* The catalog row of a feature table: false if there is none. */
static bool
LookUp(const char *name, Oid *owner, Oid *source, Oid *target,
	   char **trigger_name, Jsonb **spec)
{
	Datum		arg = CStringGetTextDatum(name);
	HeapTuple	tup;
	TupleDesc	td;
	bool		isnull;

	if (CatalogExecute("SELECT owner, source, target, trigger_name, spec "
					   "FROM streamml.feature_tables_catalog "
					   "WHERE name OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT) == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	td = SPI_tuptable->tupdesc;
	*owner = DatumGetObjectId(SPI_getbinval(tup, td, 1, &isnull));
	*source = DatumGetObjectId(SPI_getbinval(tup, td, 2, &isnull));
	*target = DatumGetObjectId(SPI_getbinval(tup, td, 3, &isnull));
	*trigger_name = SPI_getvalue(tup, td, 4);
	*spec = DatumGetJsonbPCopy(SPI_getbinval(tup, td, 5, &isnull));
	return true;
}

/* Errors unless the current user may use a source table as asked. */
static void
CheckSourcePrivilege(Oid source, AclMode mode, const char *what)
{
	if (pg_class_aclcheck(source, GetUserId(), mode) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(source)),
				 errdetail("Creating a feature table on a table takes %s privilege on it.",
						   what)));
}

/* Runs one statement as the current user; errors unless it returns expect. */
static void
Execute(const char *sql, int expect)
{
	int			rc = SPI_execute(sql, false, 0);

	if (rc != expect)
		elog(ERROR, "statement failed: %s: %s", SPI_result_code_string(rc), sql);
}

/* Back-fills the existing rows of source, in order_by order. */
static void
Backfill(Oid target, Relation source, FeatureSpec *spec)
{
	TupleDesc	desc = RelationGetDescr(source);
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);
	char	   *sql;
	Portal		portal;

	/*
	 * Whole rows keep the table's layout, dropped columns included: (s.*)
	 * cast to the table's own row type, which a column named s cannot
	 * hide, as it hides the whole-row reference s.  (A Citus table's rows
	 * have no order across shards beyond order_by.)
	 */
	sql = psprintf("SELECT (s.*)::%s FROM %s s ORDER BY s.%s%s",
				   QualifiedName(RelationGetRelid(source)),
				   QualifiedName(RelationGetRelid(source)),
				   quote_identifier(spec->order_name),
				   LoaderIsCitusTable(RelationGetRelid(source)) ? "" : ", s.ctid");
	portal = SPI_cursor_open_with_args(NULL, sql, 0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		Tuplestorestate *rows;
		MemoryContext old;

		SPI_cursor_fetch(portal, true, BACKFILL_BATCH);
		if (SPI_processed == 0)
			break;
		old = MemoryContextSwitchTo(TopTransactionContext);
		rows = tuplestore_begin_heap(false, false, work_mem);
		MemoryContextSwitchTo(old);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			HeapTupleHeader h = DatumGetHeapTupleHeader(SPI_getbinval(SPI_tuptable->vals[i],
																	  SPI_tuptable->tupdesc,
																	  1, &isnull));
			HeapTupleData tup;

			tup.t_len = HeapTupleHeaderGetDatumLength(h);
			ItemPointerSetInvalid(&tup.t_self);
			tup.t_tableOid = InvalidOid;
			tup.t_data = h;
			heap_deform_tuple(&tup, desc, values, nulls);
			tuplestore_putvalues(rows, desc, values, nulls);
		}
		SPI_freetuptable(SPI_tuptable);
		FeatureTableLoad(target, source, rows, desc);
		tuplestore_end(rows);
	}
	SPI_cursor_close(portal);
}

/*
 * The source's triggers for the other changes of its rows: a DELETE
 * deletes their feature rows (featureinsert.c's delete trigger), a
 * TRUNCATE truncates the feature table, an UPDATE that changes a kept
 * column (partition_by, order_by, the "of" columns and the other kept
 * ones) is refused.  All go with the feature table.
 */
static void
CreateChangeTriggers(Oid source, Oid target, const char *name,
					 const char *trigger_name, TupleDesc desc, FeatureSpec *spec)
{
	StringInfoData sql;
	StringInfoData cols;
	StringInfoData when;
	ObjectAddress tab;
	const char *suffixes[] = {FT_DELETE_SUFFIX, FT_TRUNCATE_SUFFIX, FT_UPDATE_SUFFIX};

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TRIGGER %s AFTER DELETE ON %s "
					 "REFERENCING OLD TABLE AS streamml_old_rows "
					 "FOR EACH STATEMENT EXECUTE FUNCTION streamml.feature_table_delete_trigger(%s)",
					 quote_identifier(psprintf("%s" FT_DELETE_SUFFIX, trigger_name)),
					 QualifiedName(source), quote_literal_cstr(name));
	Execute(sql.data, SPI_OK_UTILITY);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TRIGGER %s AFTER TRUNCATE ON %s "
					 "FOR EACH STATEMENT EXECUTE FUNCTION streamml.feature_table_truncate_trigger(%s)",
					 quote_identifier(psprintf("%s" FT_TRUNCATE_SUFFIX, trigger_name)),
					 QualifiedName(source), quote_literal_cstr(name));
	Execute(sql.data, SPI_OK_UTILITY);

	initStringInfo(&cols);
	initStringInfo(&when);
	for (int k = 0; k < spec->nkeep; k++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, spec->keep[k] - 1);
		const char *col = quote_identifier(spec->keep_names[k]);
		TypeCacheEntry *tc = lookup_type_cache(a->atttypid, TYPECACHE_EQ_OPR);

		if (a->attgenerated)
			continue;			/* follows the columns it is made of */
		appendStringInfo(&cols, "%s%s", cols.len ? ", " : "", col);
		if (OidIsValid(tc->eq_opr))
			appendStringInfo(&when, "%sOLD.%s IS DISTINCT FROM NEW.%s",
							 when.len ? " OR " : "", col, col);
		else
			appendStringInfo(&when, "%strue", when.len ? " OR " : "");
	}
	if (cols.len > 0)
	{
		resetStringInfo(&sql);
		appendStringInfo(&sql, "CREATE TRIGGER %s BEFORE UPDATE OF %s ON %s "
						 "FOR EACH ROW WHEN (%s) "
						 "EXECUTE FUNCTION streamml.feature_table_update_trigger(%s)",
						 quote_identifier(psprintf("%s" FT_UPDATE_SUFFIX, trigger_name)),
						 cols.data, QualifiedName(source), when.data,
						 quote_literal_cstr(name));
		Execute(sql.data, SPI_OK_UTILITY);
	}

	ObjectAddressSet(tab, RelationRelationId, target);
	for (int i = 0; i < lengthof(suffixes); i++)
	{
		Oid			t = get_trigger_oid(source, psprintf("%s%s", trigger_name, suffixes[i]), true);
		ObjectAddress trig;

		if (!OidIsValid(t))
			continue;
		ObjectAddressSet(trig, TriggerRelationId, t);
		recordDependencyOn(&trig, &tab, DEPENDENCY_AUTO);
	}
}

PG_FUNCTION_INFO_V1(create_feature_table);

/*
 * SQL streamml.create_feature_table(name text, source regclass, spec jsonb)
 * RETURNS regclass: makes the feature table, its trigger and its catalog
 * row, back-fills the source's rows (unless "backfill": false).
 */
Datum
create_feature_table(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			source = PG_GETARG_OID(1);
	Jsonb	   *specj = PG_GETARG_JSONB_P(2);
	Relation	rel;
	TupleDesc	desc;
	FeatureSpec *spec;
	RangeVar   *rv;
	char	   *qualified;
	Oid			target;
	char	   *trigger_name;
	StringInfoData sql;
	Oid			owner;
	Oid			s2;
	Oid			t2;
	char	   *tn;
	Jsonb	   *j2;
	ObjectAddress trig;
	ObjectAddress tab;
	int			nest;

	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("feature table name must not be empty")));
	CheckSourcePrivilege(source, ACL_SELECT, "SELECT");
	CheckSourcePrivilege(source, ACL_TRIGGER, "TRIGGER");
	CheckSourceRowSecurity(source, GetUserId(), "feature table", name,
						   ERRCODE_FEATURE_NOT_SUPPORTED);
	PartitionSourceCheck(source, "feature table");
	rel = table_open(source, ShareRowExclusiveLock);
	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("source \"%s\" of a feature table cannot be a partitioned table",
						RelationGetRelationName(rel)),
				 errdetail("A partition can be truncated, detached or dropped without the parent's triggers firing: the feature table would keep rows its source lost, and later features would be computed from them.")));
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("source \"%s\" of a feature table must be a table",
						RelationGetRelationName(rel))));
	desc = RelationGetDescr(rel);
	spec = FeatureSpecRead(specj, desc, name);

	/* names the table will have: kept columns, features, ours */
	for (int i = 0; i < spec->nfeatures; i++)
	{
		const char *f = spec->features[i].name;

		if (strcmp(f, FT_SEQ_COLUMN) == 0 || strcmp(f, FT_LATE_COLUMN) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("feature name \"%s\" is reserved", f),
					 errdetail("Feature tables have the columns %s and %s.",
							   FT_SEQ_COLUMN, FT_LATE_COLUMN)));
		for (int k = 0; k < spec->nkeep; k++)
			if (strcmp(f, spec->keep_names[k]) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("feature \"%s\" has the name of a kept column", f),
						 errhint("Rename the feature, or leave the column out of \"keep\".")));
	}
	for (int k = 0; k < spec->nkeep; k++)
		if (strcmp(spec->keep_names[k], FT_SEQ_COLUMN) == 0 ||
			strcmp(spec->keep_names[k], FT_LATE_COLUMN) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("source column \"%s\" has a name feature tables reserve",
							spec->keep_names[k]),
					 errhint("Leave it out with \"keep\".")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (LookUp(name, &owner, &s2, &t2, &tn, &j2))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("feature table \"%s\" already exists", name)));

	/* the table, as the current user */
	rv = makeRangeVarFromNameList(stringToQualifiedNameList(name));
	qualified = rv->schemaname ?
		quote_qualified_identifier(rv->schemaname, rv->relname) :
		pstrdup(quote_identifier(rv->relname));
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE %s (", qualified);
	for (int k = 0; k < spec->nkeep; k++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, spec->keep[k] - 1);

		appendStringInfo(&sql, "%s %s", quote_identifier(spec->keep_names[k]),
						 format_type_with_typemod(a->atttypid, a->atttypmod));
		if (OidIsValid(a->attcollation) &&
			a->attcollation != get_typcollation(a->atttypid))
			appendStringInfo(&sql, " COLLATE %s",
							 generate_collation_name(a->attcollation));
		appendStringInfoString(&sql, ", ");
	}
	for (int i = 0; i < spec->nfeatures; i++)
		appendStringInfo(&sql, "%s pg_catalog.float8, ",
						 quote_identifier(spec->features[i].name));
	appendStringInfo(&sql, "%s pg_catalog.int8 NOT NULL, %s pg_catalog.bool NOT NULL)",
					 FT_SEQ_COLUMN, FT_LATE_COLUMN);
	Execute(sql.data, SPI_OK_UTILITY);
	target = RangeVarGetRelid(rv, NoLock, false);

	/*
	 * The unique index on (partition, arrival_seq), which every feature row
	 * enters and catch-up and rebuild read.  A string partition column
	 * whose equality is byte equality is compared under "C" there: a
	 * memcmp where its own collation would call strcoll at every step of
	 * every insert's descent (AppendPartitionWhere matches it).
	 */
	resetStringInfo(&sql);
	appendStringInfo(&sql, "CREATE UNIQUE INDEX ON %s (", QualifiedName(target));
	for (int i = 0; i < spec->npart; i++)
		appendStringInfo(&sql, "%s%s, ", quote_identifier(spec->part_names[i]),
						 spec->part_bytewise[i] ? " COLLATE pg_catalog.\"C\"" : "");
	appendStringInfo(&sql, "%s)", FT_SEQ_COLUMN);
	Execute(sql.data, SPI_OK_UTILITY);
	trigger_name = psprintf("streamml_features_%u", target);
	/* for a Citus source: distributed like it, triggers on its shell */
	FeatureCitusDistributeLike(target, source, spec->part_names, spec->npart,
							   "feature table");
	nest = FeatureCitusShellOnlyBegin(source);

	/* the trigger, as the current user: it needs TRIGGER on the source */
	resetStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TRIGGER %s AFTER INSERT ON %s "
					 "REFERENCING NEW TABLE AS streamml_new_rows "
					 "FOR EACH STATEMENT EXECUTE FUNCTION streamml.feature_table_trigger(%s)",
					 quote_identifier(trigger_name), QualifiedName(source),
					 quote_literal_cstr(name));
	Execute(sql.data, SPI_OK_UTILITY);
	ObjectAddressSet(trig, TriggerRelationId, get_trigger_oid(source, trigger_name, false));
	ObjectAddressSet(tab, RelationRelationId, target);
	recordDependencyOn(&trig, &tab, DEPENDENCY_AUTO);
	CreateChangeTriggers(source, target, name, trigger_name, desc, spec);
	FeatureCitusShellOnlyEnd(nest);

	{
		Datum		args[6] = {
			CStringGetTextDatum(name), ObjectIdGetDatum(GetUserId()),
			ObjectIdGetDatum(source), ObjectIdGetDatum(target),
			JsonbPGetDatum(specj), CStringGetDatum(trigger_name)
		};

		CatalogExecute("INSERT INTO streamml.feature_tables_catalog "
					   "(name, owner, source, target, spec, trigger_name) "
					   "VALUES ($1, $2, $3, $4, $5, $6)",
					   6, (Oid[]) {TEXTOID, OIDOID, OIDOID, OIDOID, JSONBOID, NAMEOID},
					   args, NULL, SPI_OK_INSERT);
	}
	CommandCounterIncrement();

	if (spec->backfill)
		Backfill(target, rel, spec);
	SPI_finish();
	table_close(rel, NoLock);
	PG_RETURN_OID(target);
}

/*
 * Drops a feature table's table (when drop_table), triggers and catalog
 * row.  The caller has checked that the current user may (the owner, or
 * DROP OWNED), or the source or the table was dropped already.
 */
void
FeatureTableRemove(const char *name, bool drop_table)
{
	Oid			owner;
	Oid			source;
	Oid			target;
	char	   *trigger_name;
	Jsonb	   *spec;
	Datum		arg = CStringGetTextDatum(name);

	if (!LookUp(name, &owner, &source, &target, &trigger_name, &spec))
		return;
	/* first, so that the DROP's event trigger (relations.c) finds no row */
	CatalogExecute("DELETE FROM streamml.feature_tables_catalog "
				   "WHERE name OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_DELETE);
	/* the table, as the user; its trigger goes with it (DEPENDENCY_AUTO) */
	if (drop_table && get_rel_name(target) != NULL)
		Execute(psprintf("DROP TABLE %s", QualifiedName(target)), SPI_OK_UTILITY);
	if (get_rel_name(source) != NULL)
	{
		const char *names[] = {trigger_name,
			psprintf("%s" FT_DELETE_SUFFIX, trigger_name),
			psprintf("%s" FT_TRUNCATE_SUFFIX, trigger_name),
		psprintf("%s" FT_UPDATE_SUFFIX, trigger_name)};

		for (int i = 0; i < lengthof(names); i++)
		{
			Oid			trig = get_trigger_oid(source, names[i], true);

			if (OidIsValid(trig))
			{
				ObjectAddress obj;

				ObjectAddressSet(obj, TriggerRelationId, trig);
				performDeletion(&obj, DROP_RESTRICT, 0);
			}
		}
	}
	FeatureStatsForget(target);
}

PG_FUNCTION_INFO_V1(drop_feature_table);

/* SQL streamml.drop_feature_table(name text): drops it, as its owner. */
Datum
drop_feature_table(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			owner;
	Oid			source;
	Oid			target;
	char	   *trigger_name;
	Jsonb	   *spec;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!LookUp(name, &owner, &source, &target, &trigger_name, &spec))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("feature table \"%s\" does not exist", name)));
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of feature table \"%s\"", name),
				 errdetail("Only the owner of a feature table (or a member of the owning role) can drop it.")));
	FeatureTableRemove(name, true);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * DROP of tables (relations.c): the feature tables whose source or table
 * is one of the dropped relations (an oid[]) are forgotten, with a NOTICE
 * each.  A table whose source was dropped is kept, a plain table now: its
 * rows are the user's, and PostgreSQL drops no table the DROP did not
 * name.  SPI connected.
 */
void
FeatureTablesRelationsDropped(Datum relids)
{
	uint64		n;
	SPITupleTable *tt;

	n = CatalogExecute("SELECT f.name FROM streamml.feature_tables_catalog f "
					   "WHERE f.source OPERATOR(pg_catalog.=) ANY ($1) "
					   "OR f.target OPERATOR(pg_catalog.=) ANY ($1)",
					   1, (Oid[]) {OIDARRAYOID}, &relids, NULL, SPI_OK_SELECT);
	tt = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		char	   *name = SPI_getvalue(tt->vals[i], tt->tupdesc, 1);

		FeatureTableRemove(name, false);
		ereport(NOTICE,
				(errmsg("drop cascades to feature table \"%s\"", name),
				 errdetail("Its source or its table was dropped; a table left behind is kept as a plain table.")));
	}
}

PG_FUNCTION_INFO_V1(feature_sql);

/*
 * SQL streamml.feature_sql(name text) RETURNS text: the window query over
 * the source that computes the same features.
 */
Datum
feature_sql(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			owner = InvalidOid;
	Oid			source;
	Oid			target;
	char	   *trigger_name;
	Jsonb	   *spec;
	Relation	rel;
	char	   *result;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!LookUp(name, &owner, &source, &target, &trigger_name, &spec) ||
		(!has_privs_of_role(GetUserId(), owner) &&
		 pg_class_aclcheck(source, GetUserId(), ACL_SELECT) != ACLCHECK_OK))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("feature table \"%s\" does not exist", name)));
	if (get_rel_name(source) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("source of feature table \"%s\" no longer exists", name)));
	rel = table_open(source, AccessShareLock);
	result = FeatureSql(FeatureSpecRead(spec, RelationGetDescr(rel), name),
						QualifiedName(source));
	table_close(rel, AccessShareLock);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}
