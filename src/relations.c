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
 * Streams are not removed: a stream whose table was dropped keeps its
 * offsets, and alter_stream can point it at a new table to go on where it
 * stopped.  Models and monitors name their tables by text, and report an
 * error when they next read one that is gone.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"

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
