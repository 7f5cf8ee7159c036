/*
 * relations.c
 *		What dropping a table does to the feature tables, scorers and
 *		outcome trackers that use it: they go with it.
 *
 * The catalog names the tables these objects read and write by oid
 * (regclass), and PostgreSQL's dependency tracking knows only their
 * triggers, which go with the table they are on.  Without more, a DROP
 * TABLE would leave catalog rows naming a relation that no longer exists:
 * listed by number, holding their names, and in the case of a scorer
 * whose predictions table was dropped, a trigger on the source failing
 * every insert.  So an event trigger on sql_drop (as Citus keeps its
 * metadata) reads pg_event_trigger_dropped_objects() at the end of every
 * DROP, whoever runs it and however the table went (DROP TABLE, DROP
 * SCHEMA ... CASCADE, DROP OWNED), and removes, in the same transaction:
 *
 *	outcome trackers	whose source or predictions table was dropped, or
 *						whose scorer goes (below): as untrack_outcomes;
 *	scorers				whose source or predictions table was dropped: as
 *						drop_scorer (a predictions table left is kept);
 *	feature tables		whose source or table was dropped: the catalog row
 *						and the source's triggers (a table left behind
 *						is kept, a plain table: a DROP drops nothing it did
 *						not name or cascade to).
 *
 * each with a NOTICE, as PostgreSQL reports what a drop cascades to.
 *
 * As for PostgreSQL's own dependencies, a plain DROP TABLE (RESTRICT) of
 * a table these objects depend on is refused, naming them
 * (RelationsDropCheck, from the utility hook, before the drop): the
 * source or predictions table of a scorer or tracker, a feature table's
 * source.  Only for the table's owner (anyone else gets PostgreSQL's own
 * "must be owner"), and only for DROP TABLE: DROP ... CASCADE, DROP SCHEMA
 * ... CASCADE and DROP OWNED reach the event trigger.  A feature table's
 * own table is not a dependency: dropping it is dropping the feature
 * table.
 * Streams are not removed: a stream whose table was dropped keeps its
 * offsets, and alter_stream can point it at a new table to go on where it
 * stopped.  Models and monitors name their tables by text, and report an
 * error when they next read one that is gone.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "pg_streamml.h"
#include "quality/quality.h"
#include "scoring/features.h"
#include "scoring/scorer.h"

/*
 * Checks that fcinfo is an event trigger's call of function fn, and says
 * whether the extension's event trigger has work: not while the extension
 * is created or dropped (its catalog may be gone).  Connects SPI when so.
 */
bool
StreammlEventTriggerBegin(FunctionCallInfo fcinfo, const char *fn)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be called as an event trigger", fn)));
	if (creating_extension || !OidIsValid(get_extension_oid("pg_streamml", true)))
		return false;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	return true;
}

PG_FUNCTION_INFO_V1(relations_dropped);

/*
 * SQL streamml.relations_dropped(): the sql_drop event trigger (the
 * file's comment).  Cheap when no dropped object is a relation the
 * catalog names: one query.
 */
Datum
relations_dropped(PG_FUNCTION_ARGS)
{
	Datum		relids;
	bool		isnull;

	if (!StreammlEventTriggerBegin(fcinfo, "streamml.relations_dropped()"))
		PG_RETURN_VOID();
	CatalogExecute("SELECT pg_catalog.array_agg(d.objid) FROM "
				   "pg_catalog.pg_event_trigger_dropped_objects() d "
				   "WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
				   "AND d.objsubid OPERATOR(pg_catalog.=) 0 "
				   "AND (d.objid OPERATOR(pg_catalog.=) ANY (SELECT f.source FROM streamml.feature_tables_catalog f "
				   "UNION ALL SELECT f.target FROM streamml.feature_tables_catalog f "
				   "UNION ALL SELECT s.source FROM streamml.scorers_catalog s "
				   "UNION ALL SELECT s.predictions FROM streamml.scorers_catalog s "
				   "UNION ALL SELECT t.source FROM streamml.outcome_trackers t "
				   "UNION ALL SELECT t.predictions FROM streamml.outcome_trackers t))",
				   0, NULL, NULL, NULL, SPI_OK_SELECT);
	relids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		/* trackers before their scorers (drop_scorer refuses a tracked one) */
		OutcomeTrackersRelationsDropped(relids);
		ScorersRelationsDropped(relids);
		FeatureTablesRelationsDropped(relids);
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * The tables a DROP TABLE without CASCADE removes that the current user
 * owns (a partitioned table's partitions with it), for RelationsDropCheck;
 * NIL when there is nothing to check.
 */
List *
RelationsDropTargets(DropStmt *stmt)
{
	List	   *rels = NIL;
	ListCell   *lc;

	if (stmt->removeType != OBJECT_TABLE || stmt->behavior == DROP_CASCADE ||
		creating_extension)
		return NIL;
	foreach(lc, stmt->objects)
	{
		Oid			rel = RangeVarGetRelid(makeRangeVarFromNameList(lfirst(lc)),
										   NoLock, true);

		if (!OidIsValid(rel) || !pg_class_ownercheck(rel, GetUserId()))
			continue;
		if (get_rel_relkind(rel) == RELKIND_PARTITIONED_TABLE)
			rels = list_concat(rels, find_all_inheritors(rel, NoLock, NULL));
		else
			rels = lappend_oid(rels, rel);
	}
	return rels;
}

/*
 * Refuses the drop of tables relids (an oid[], from RelationsDropTargets)
 * when a feature table, scorer or outcome tracker depends on one (the
 * file's comment), as PostgreSQL refuses one that a view depends on.  SPI
 * connected (roles.c's WithCatalog).
 */
void
RelationsDropCheck(Datum relids, Oid unused)
{
	uint64		n;

	n = CatalogExecute("SELECT r.rel, r.what FROM ("
					   "SELECT f.source AS rel, 'feature table \"' OPERATOR(pg_catalog.||) f.name "
					   "OPERATOR(pg_catalog.||) '\"' AS what FROM streamml.feature_tables_catalog f "
					   "UNION ALL SELECT s.source, 'scorer \"' OPERATOR(pg_catalog.||) s.name "
					   "OPERATOR(pg_catalog.||) '\"' FROM streamml.scorers_catalog s "
					   "UNION ALL SELECT s.predictions, 'scorer \"' OPERATOR(pg_catalog.||) s.name "
					   "OPERATOR(pg_catalog.||) '\"' FROM streamml.scorers_catalog s "
					   "UNION ALL SELECT t.source, 'the outcome tracker of scorer \"' "
					   "OPERATOR(pg_catalog.||) t.scorer OPERATOR(pg_catalog.||) '\"' "
					   "FROM streamml.outcome_trackers t "
					   "UNION ALL SELECT t.predictions, 'the outcome tracker of scorer \"' "
					   "OPERATOR(pg_catalog.||) t.scorer OPERATOR(pg_catalog.||) '\"' "
					   "FROM streamml.outcome_trackers t) r "
					   "WHERE r.rel OPERATOR(pg_catalog.=) ANY ($1) ORDER BY 2",
					   1, (Oid[]) {OIDARRAYOID}, &relids, NULL, SPI_OK_SELECT);
	if (n > 0)
	{
		StringInfoData detail;
		bool		isnull;
		Oid			first = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1, &isnull));

		initStringInfo(&detail);
		for (uint64 i = 0; i < n; i++)
			appendStringInfo(&detail, "%s%s depends on table %s", i > 0 ? "\n" : "",
							 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2),
							 get_rel_name(DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																		 SPI_tuptable->tupdesc,
																		 1, &isnull))));
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop table %s because other objects depend on it",
						get_rel_name(first)),
				 errdetail("%s", detail.data),
				 errhint("Drop them first (streamml.untrack_outcomes, drop_scorer, drop_feature_table), or use DROP ... CASCADE to drop them too.")));
	}
}
