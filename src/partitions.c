/*
 * partitions.c
 *		The statement triggers of a scorer or outcome tracker on every
 *		partition of a partitioned source, kept in step with the partitions.
 *
 * A statement trigger fires for the table a statement names: an INSERT or
 * COPY into a partitioned table fires the parent's trigger, whose
 * transition table holds the rows of every partition, but an INSERT or
 * COPY straight into a partition fires only the partition's own triggers
 * (PostgreSQL clones row triggers to partitions, not statement triggers).
 * So a scorer or tracker on a partitioned source puts the same trigger
 * (name, function, argument) on every partition at every level, each of
 * which a statement can name, and its trigger function accepts a table
 * that is the source or one of its partitions (RelationIsPartOf).  A
 * statement through the parent fires the parent's trigger only, so no
 * row is seen twice.
 *
 * Partitions come and go: an event trigger at the end of CREATE TABLE,
 * CREATE FOREIGN TABLE, CREATE SCHEMA and ALTER TABLE
 * (streamml.partitions_changed()) brings the triggers of every scorer and
 * tracker whose source the command touched in step (PartitionTriggersSync):
 * a new or attached partition gets them, a detached one loses them.  A
 * dropped partition's go with it.  The partitions are listed without
 * locks: CREATE TRIGGER locks the one it changes, and nothing else is
 * locked where the triggers are in place (a partition's owner altering it
 * must not block inserts into its siblings).
 *
 * What cannot be watched is refused (PartitionSourceCheck, and the event
 * trigger, which then fails the DDL): a source that is itself a partition
 * (a statement naming its parent fires only the parent's triggers, so its
 * rows would be missed), a foreign partition (no transition tables), and a
 * plain table with inheritance children (CREATE TABLE ... INHERITS, ALTER
 * TABLE ... INHERIT): a SELECT of the source reads the children's rows,
 * but an INSERT into a child fires only the child's triggers, so the
 * scorer, tracker or feature table would miss those rows without a word.
 * An outcome tracker's predictions table is watched too (its pending
 * outcomes and in-memory join hear of every row written there by its
 * statement trigger): it may be neither a partition nor have inheritance
 * children (PredictionsTableCheck).
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "storage/lockdefs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "pg_streamml.h"
#include "quality/quality.h"

/* Errors: foreign partition rel of source cannot be watched. */
static void
ForeignPartitionError(Oid rel, Oid source)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("partition \"%s\" of table \"%s\" is a foreign table",
					get_rel_name(rel), get_rel_name(source)),
			 errdetail("A scorer or outcome tracker of \"%s\" must see the rows inserted into each partition, and a foreign table's triggers have no transition tables.",
					   get_rel_name(source))));
}

/*
 * Errors unless the rows inserted into table source can all be watched by
 * statement triggers, for the kind (scorer, outcome tracker, feature
 * table) name: source is no partition, none of its partitions is a
 * foreign table, and a plain table has no inheritance children.
 */
void
PartitionSourceCheck(Oid source, const char *kind)
{
	List	   *children;

	if (get_rel_relispartition(source))
	{
		Oid			parent = get_partition_parent(source, true);

		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" is a partition of \"%s\"",
						get_rel_name(source), get_rel_name(parent)),
				 errdetail("A statement that inserts through \"%s\" fires only its statement triggers: the %s would miss its rows.",
						   get_rel_name(parent), kind),
				 errhint("Give the %s the partitioned table%s.", kind,
						 strcmp(kind, "feature table") == 0 ?
						 " as its source, or a plain table (a feature table's source is neither partitioned nor a partition)" :
						 ": on a partitioned table it watches every partition")));
	}
	if (get_rel_relkind(source) == RELKIND_PARTITIONED_TABLE)
	{
		ListCell   *lc;

		foreach(lc, find_all_inheritors(source, NoLock, NULL))
			if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_FOREIGN_TABLE)
				ForeignPartitionError(lfirst_oid(lc), source);
	}
	/* relhassubclass may be stale (true after the last child went): ask pg_inherits */
	if (get_rel_relkind(source) == RELKIND_RELATION &&
		(children = find_inheritance_children(source, NoLock)) != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" has inheritance child \"%s\"",
						get_rel_name(source), get_rel_name(linitial_oid(children))),
				 errdetail("A SELECT of \"%s\" reads the rows of its children, but an INSERT into a child fires only the child's triggers: the %s would miss its rows.",
						   get_rel_name(source), kind),
				 errhint("Give the %s a table without inheritance children (a partitioned table is watched whole).",
						 kind)));
}

/*
 * Errors unless every row that reaches table preds, the predictions table
 * of an outcome tracker of scorer, fires preds' own statement triggers, as
 * the tracker's pending outcomes and in-memory join need (predstash.c):
 * preds is no partition (a statement through its parent fires only the
 * parent's triggers) and has no inheritance children (a read of preds
 * reads the children's rows, which an INSERT into a child brought without
 * preds' triggers).
 */
void
PredictionsTableCheck(Oid preds, const char *scorer)
{
	List	   *children;

	if (get_rel_relispartition(preds))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("predictions table \"%s\" is a partition of \"%s\"",
						get_rel_name(preds),
						get_rel_name(get_partition_parent(preds, true))),
				 errdetail("A statement that inserts through \"%s\" fires only its statement triggers: the outcome tracker of scorer \"%s\" would miss its rows.",
						   get_rel_name(get_partition_parent(preds, true)), scorer)));
	if ((children = find_inheritance_children(preds, NoLock)) != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("predictions table \"%s\" has inheritance child \"%s\"",
						get_rel_name(preds), get_rel_name(linitial_oid(children))),
				 errdetail("A read of \"%s\" reads the rows of its children, but an INSERT into a child fires only the child's triggers: the outcome tracker of scorer \"%s\" would miss its rows.",
						   get_rel_name(preds), scorer)));
}

/*
 * PredictionsTableCheck of the first outcome tracker whose predictions
 * table is one of relids (an oid[] datum).  SPI connected.
 */
static void
PredictionsTablesCheck(Datum relids)
{
	if (CatalogExecute("SELECT t.predictions, t.scorer FROM streamml.outcome_trackers t "
					   "WHERE t.predictions OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1",
					   1, (Oid[]) {OIDARRAYOID}, &relids, NULL, SPI_OK_SELECT) > 0)
	{
		bool		isnull;

		PredictionsTableCheck(DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
															 SPI_tuptable->tupdesc, 1,
															 &isnull)),
							  SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	}
}

/* True when relation rel is table source or one of its partitions. */
bool
RelationIsPartOf(Oid rel, Oid source)
{
	if (rel == source)
		return true;
	if (!get_rel_relispartition(rel))
		return false;
	return list_member_oid(get_partition_ancestors(rel), source);
}

/*
 * Puts the trigger of streamml.function('id') (AFTER INSERT, FOR EACH
 * STATEMENT, transition table newtable, named trigname) on every
 * partition of source that lacks one, and drops it from every other table
 * but source that has it (a detached partition).  A trigger is known by
 * its function and argument, not its name, which a table's owner may
 * change: a renamed one is not doubled, and goes when it should.  SPI
 * connected; as the bootstrap superuser, as the trigger on source was
 * made.
 */
void
PartitionTriggersSync(Oid source, const char *trigname, const char *function,
					  const char *newtable, int32 id)
{
	List	   *members = NIL;
	List	   *have = NIL;
	ListCell   *lc;
	Datum		args[2];
	uint64		n;
	SPITupleTable *tt;

	if (get_rel_relkind(source) == RELKIND_PARTITIONED_TABLE)
		members = find_all_inheritors(source, NoLock, NULL);

	/* the tables that have it, by function and argument */
	args[0] = ObjectIdGetDatum(LookupFuncName(list_make2(makeString(STREAMML_SCHEMA),
														 makeString(pstrdup(function))),
											  0, NULL, false));
	args[1] = CStringGetTextDatum(psprintf("%d\\000", id));
	n = CatalogExecute("SELECT t.tgrelid, t.tgname FROM pg_catalog.pg_trigger t "
					   "WHERE t.tgfoid OPERATOR(pg_catalog.=) $1 "
					   "AND t.tgnargs OPERATOR(pg_catalog.=) 1 "
					   "AND pg_catalog.encode(t.tgargs, 'escape') OPERATOR(pg_catalog.=) $2",
					   2, (Oid[]) {OIDOID, TEXTOID}, args, NULL, SPI_OK_SELECT);
	tt = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		Oid			rel = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));

		have = lappend_oid(have, rel);
		if (rel == source || list_member_oid(members, rel) || get_rel_name(rel) == NULL)
			continue;
		CatalogExecute(psprintf("DROP TRIGGER IF EXISTS %s ON %s",
								quote_identifier(SPI_getvalue(tt->vals[i], tt->tupdesc, 2)),
								quote_qualified_identifier(get_namespace_name(get_rel_namespace(rel)),
														   get_rel_name(rel))),
					   0, NULL, NULL, NULL, SPI_OK_UTILITY);
	}

	foreach(lc, members)
	{
		Oid			rel = lfirst_oid(lc);

		if (rel == source || get_rel_name(rel) == NULL || list_member_oid(have, rel))
			continue;
		if (get_rel_relkind(rel) == RELKIND_FOREIGN_TABLE)
			ForeignPartitionError(rel, source);
		CatalogExecute(psprintf("CREATE TRIGGER %s AFTER INSERT ON %s "
								"REFERENCING NEW TABLE AS %s FOR EACH STATEMENT "
								"EXECUTE FUNCTION streamml.%s('%d')",
								quote_identifier(trigname),
								quote_qualified_identifier(get_namespace_name(get_rel_namespace(rel)),
														   get_rel_name(rel)),
								quote_identifier(newtable), quote_identifier(function), id),
					   0, NULL, NULL, NULL, SPI_OK_UTILITY);
	}
}

/*
 * Drops the trigger of streamml.function('id') from every table that has
 * it (the source's partitions, and tables detached from it; the source's
 * own too).  SPI connected.
 */
void
PartitionTriggersDrop(const char *function, int32 id)
{
	PartitionTriggersSync(InvalidOid, NULL, function, NULL, id);
}

/*
 * Errors (through PartitionSourceCheck, PredictionsTableCheck) when one of
 * children, tables that a command made inheritance children or left so,
 * has an ancestor that a feature table, scorer or outcome tracker watches,
 * or that is an outcome tracker's predictions table.  SPI connected.
 */
static void
InheritanceChildrenCheck(List *children)
{
	Datum		arr = OidListArray(children);

	if (CatalogExecute("WITH RECURSIVE a(rel) AS ("
					   "SELECT i.inhparent FROM pg_catalog.pg_inherits i "
					   "WHERE i.inhrelid OPERATOR(pg_catalog.=) ANY ($1) "
					   "UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i "
					   "JOIN a ON i.inhrelid OPERATOR(pg_catalog.=) a.rel) "
					   "SELECT pg_catalog.array_agg(a.rel) FROM a",
					   1, (Oid[]) {OIDARRAYOID}, &arr, NULL, SPI_OK_SELECT) > 0)
	{
		bool		isnull;
		Datum		ancestors = SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			PredictionsTablesCheck(ancestors);
	}

	if (CatalogExecute("WITH RECURSIVE a(rel) AS ("
					   "SELECT i.inhparent FROM pg_catalog.pg_inherits i "
					   "WHERE i.inhrelid OPERATOR(pg_catalog.=) ANY ($1) "
					   "UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i "
					   "JOIN a ON i.inhrelid OPERATOR(pg_catalog.=) a.rel) "
					   "SELECT r.what, r.source FROM ("
					   "SELECT 'feature table' AS what, f.source FROM streamml.feature_tables_catalog f "
					   "UNION ALL SELECT 'scorer', s.source FROM streamml.scorers_catalog s "
					   "UNION ALL SELECT 'outcome tracker', t.source FROM streamml.outcome_trackers t) r "
					   "WHERE r.source OPERATOR(pg_catalog.=) ANY (SELECT a.rel FROM a) LIMIT 1",
					   1, (Oid[]) {OIDARRAYOID}, &arr, NULL, SPI_OK_SELECT) > 0)
	{
		bool		isnull;

		PartitionSourceCheck(DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc, 2,
															&isnull)),
							 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	}
}

PG_FUNCTION_INFO_V1(partitions_changed);

/*
 * SQL streamml.partitions_changed(): the event trigger at the end of
 * CREATE TABLE and ALTER TABLE (the file's comment).  Cheap when the
 * command made or changed no partition or partitioned table: one query.
 */
Datum
partitions_changed(PG_FUNCTION_ARGS)
{
	List	   *touched = NIL;
	List	   *partitions = NIL;
	List	   *children = NIL;
	ListCell   *lc;
	uint64		n;
	Datum		arr;

	if (!StreammlEventTriggerBegin(fcinfo, "streamml.partitions_changed()"))
		PG_RETURN_VOID();
	/* an ALTER TABLE of a tracker's predictions table may rewrite its rows */
	OutcomeTrackersPredictionsAltered();
	n = CatalogExecute("SELECT DISTINCT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c "
					   "JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) c.objid "
					   "WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
					   "AND (r.relispartition OR r.relkind OPERATOR(pg_catalog.=) 'p' "
					   "OR EXISTS (SELECT FROM pg_catalog.pg_inherits i "
					   "WHERE i.inhrelid OPERATOR(pg_catalog.=) r.oid))",
					   0, NULL, NULL, NULL, SPI_OK_SELECT);
	if (n == 0)
	{
		SPI_finish();
		PG_RETURN_VOID();
	}
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		Oid			rel = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1, &isnull));

		/* an inheritance child (CREATE TABLE ... INHERITS, ALTER TABLE ... INHERIT) */
		if (!get_rel_relispartition(rel) &&
			get_rel_relkind(rel) != RELKIND_PARTITIONED_TABLE)
		{
			children = lappend_oid(children, rel);
			continue;
		}
		touched = lappend_oid(touched, rel);
		if (get_rel_relispartition(rel))
			touched = list_concat(touched, get_partition_ancestors(rel));
		/* an attached table may hold sources: they are partitions now */
		foreach(lc, get_rel_relkind(rel) == RELKIND_PARTITIONED_TABLE ?
				find_all_inheritors(rel, NoLock, NULL) : list_make1_oid(rel))
			if (get_rel_relispartition(lfirst_oid(lc)))
				partitions = lappend_oid(partitions, lfirst_oid(lc));
	}
	if (children != NIL)
		InheritanceChildrenCheck(children);
	if (touched == NIL)
	{
		SPI_finish();
		PG_RETURN_VOID();
	}
	if (partitions != NIL)
	{
		Datum		parr = OidListArray(partitions);

		PredictionsTablesCheck(parr);

		if (CatalogExecute("SELECT r.what, r.source FROM ("
						   "SELECT 'feature table' AS what, f.source FROM streamml.feature_tables_catalog f "
						   "UNION ALL SELECT 'scorer', s.source FROM streamml.scorers_catalog s "
						   "UNION ALL SELECT 'outcome tracker', t.source FROM streamml.outcome_trackers t) r "
						   "WHERE r.source OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1",
						   1, (Oid[]) {OIDARRAYOID}, &parr, NULL, SPI_OK_SELECT) > 0)
		{
			bool		isnull;

			PartitionSourceCheck(DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
																SPI_tuptable->tupdesc, 2,
																&isnull)),
								 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		}
	}
	arr = OidListArray(touched);
	n = CatalogExecute("SELECT s.source, 'streamml_scorer_' OPERATOR(pg_catalog.||) s.id, "
					   "'scorer_trigger', 'streamml_new_rows', s.id "
					   "FROM streamml.scorers_catalog s WHERE s.source OPERATOR(pg_catalog.=) ANY ($1) "
					   "UNION ALL SELECT t.source, 'streamml_tracker_' OPERATOR(pg_catalog.||) t.id, "
					   "'outcome_trigger', 'streamml_new', t.id "
					   "FROM streamml.outcome_trackers t WHERE t.source OPERATOR(pg_catalog.=) ANY ($1)",
					   1, (Oid[]) {OIDARRAYOID}, &arr, NULL, SPI_OK_SELECT);
	if (n > 0)
	{
		SPITupleTable *tt = SPI_tuptable;

		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;

			PartitionTriggersSync(DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)),
								  SPI_getvalue(tt->vals[i], tt->tupdesc, 2),
								  SPI_getvalue(tt->vals[i], tt->tupdesc, 3),
								  SPI_getvalue(tt->vals[i], tt->tupdesc, 4),
								  DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 5, &isnull)));
		}
	}
	SPI_finish();
	PG_RETURN_VOID();
}
