/*
 * roles.c
 *		What role commands do to streams and models: they behave like
 *		objects the role owns.
 *
 * Streams and models are rows of the extension's catalog, owned by a role
 * oid, so PostgreSQL's dependency tracking (pg_shdepend) does not know
 * them.  A ProcessUtility hook makes the role commands treat them as owned
 * objects of the current database:
 *
 *	DROP ROLE		 refused while the role owns a stream or a model here,
 *					 as for a table ("owner of model m"); the role's model
 *					 grants go with it.
 *	DROP OWNED		 drops the role's streams (their workers stop; dead
 *					 letters stay, visible to superusers) and models (with
 *					 versions and pg_cron training jobs) and its model grants.
 *	REASSIGN OWNED	 gives the role's streams (workers restart as the new
 *					 owner), dead letters, models and the models' pg_cron
 *					 training jobs to the new owner.
 *
 * Feature tables, scorers, outcome trackers and monitors are owned the
 * same way: DROP ROLE is refused while the role owns one, DROP OWNED drops
 * them (their tables go with PostgreSQL's own DROP OWNED), and REASSIGN
 * OWNED is refused while the role owns one: they act as their owner by
 * themselves (CheckReassignActors).
 *
 * Like PostgreSQL's own DROP OWNED and REASSIGN OWNED, these act on the
 * current database only; DROP ROLE sees only the current database's
 * streams and models (PostgreSQL's shared dependencies would cover every
 * database: ours cannot), so a role dropped from another database leaves
 * its objects here orphaned: they keep working for superusers, show the
 * owner's oid, and REASSIGN OWNED cannot reach them (a superuser can
 * drop them).
 *
 * Every statement that can change what a role may use (GRANT or REVOKE of
 * a role, ALTER ROLE of INHERIT, SUPERUSER or members, DROP ROLE, DROP
 * OWNED, REASSIGN OWNED) also marks the model catalog changed, so the
 * serving caches re-check access (model_catalog.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "ingest/ingest.h"
#include "ml/ml.h"
#include "monitor/monitor.h"
#include "pg_streamml.h"
#include "scoring/features.h"
#include "scoring/scorer.h"
#include "quality/quality.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* The names of the roles a DROP ROLE drops, read before they are gone. */
static List *DroppedRoleNames = NIL;
static List *DroppedRoleOids = NIL;

/* The oids of a list of RoleSpecs, those that exist, as an oid[]. */
static ArrayType *
RoleOids(List *roles, int *n)
{
	Datum	   *oids = palloc(sizeof(Datum) * Max(list_length(roles), 1));
	ListCell   *lc;

	*n = 0;
	foreach(lc, roles)
	{
		Oid			r = get_rolespec_oid(lfirst(lc), true);

		if (OidIsValid(r))
			oids[(*n)++] = ObjectIdGetDatum(r);
	}
	return construct_array(oids, *n, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
}

/* Refuses to drop a role that owns streams or models in this database. */
static void
CheckDropRole(Datum roles)
{
	StringInfoData detail;

	CatalogExecute("SELECT 'owner of stream ' || pg_catalog.quote_ident(s.name), s.owner "
				   "FROM streamml.streams s WHERE s.owner OPERATOR(pg_catalog.=) ANY ($1) "
				   "UNION ALL SELECT 'owner of model ' || pg_catalog.quote_ident(m.name), m.owner "
				   "FROM streamml.models m WHERE m.owner OPERATOR(pg_catalog.=) ANY ($1) "
				   "UNION ALL SELECT 'owner of feature table ' || pg_catalog.quote_ident(f.name), f.owner "
				   "FROM streamml.feature_tables_catalog f WHERE f.owner OPERATOR(pg_catalog.=) ANY ($1) "
				   "UNION ALL SELECT 'owner of scorer ' || pg_catalog.quote_ident(s.name), s.owner "
				   "FROM streamml.scorers_catalog s WHERE s.owner OPERATOR(pg_catalog.=) ANY ($1) "
				   "UNION ALL SELECT 'owner of outcome tracker ' || pg_catalog.quote_ident(t.scorer), t.owner "
				   "FROM streamml.outcome_trackers t WHERE t.owner OPERATOR(pg_catalog.=) ANY ($1) "
				   "UNION ALL SELECT 'owner of monitor ' || pg_catalog.quote_ident(c.name), c.owner "
				   "FROM streamml.monitors_catalog c WHERE c.owner OPERATOR(pg_catalog.=) ANY ($1) "
				   "ORDER BY 1",
				   1, (Oid[]) {OIDARRAYOID}, &roles, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return;
	initStringInfo(&detail);
	for (uint64 i = 0; i < SPI_processed; i++)
		appendStringInfo(&detail, "%s%s", i > 0 ? "\n" : "",
						 SPI_getvalue(SPI_tuptable->vals[i],
									  SPI_tuptable->tupdesc, 1));
	{
		bool		isnull;
		Oid			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc,
														   2, &isnull));
		char	   *name = "?";
		ListCell   *lo;
		ListCell   *ln;

		forboth(lo, DroppedRoleOids, ln, DroppedRoleNames)
			if (lfirst_oid(lo) == owner)
				name = lfirst(ln);

		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("role \"%s\" cannot be dropped because some objects depend on it",
						name),
				 errdetail("%s", detail.data),
				 errhint("Drop them with streamml.drop_stream, streamml.drop_model, streamml.drop_feature_table, streamml.drop_scorer, streamml.untrack_outcomes or streamml.drop_monitor, or use DROP OWNED first (REASSIGN OWNED moves streams and models, not the objects that act as their owner).")));
	}
}

/* DROP OWNED: the roles' streams, models and model grants go. */
static void
DropOwned(Datum roles)
{
	uint64		n;

	n = CatalogExecute("DELETE FROM streamml.streams WHERE owner OPERATOR(pg_catalog.=) ANY ($1) "
					   "RETURNING id",
					   1, (Oid[]) {OIDARRAYOID}, &roles, NULL,
					   SPI_OK_DELETE_RETURNING);
	if (n > 0)
	{
		SPITupleTable *tt = SPI_tuptable;

		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;

			StatsForgetStream(DatumGetInt32(SPI_getbinval(tt->vals[i],
														  tt->tupdesc, 1,
														  &isnull)));
		}
		WakeLauncherAtCommit();
	}
	n = CatalogExecute("SELECT m.name, m.owner FROM streamml.models m "
					   "WHERE m.owner OPERATOR(pg_catalog.=) ANY ($1)",
					   1, (Oid[]) {OIDARRAYOID}, &roles, NULL, SPI_OK_SELECT);
	{
		SPITupleTable *tt = SPI_tuptable;

		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;

			ModelDelete(SPI_getvalue(tt->vals[i], tt->tupdesc, 1),
						DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc,
													   2, &isnull)));
		}
	}
	CatalogExecute("DELETE FROM streamml.model_grants WHERE grantee OPERATOR(pg_catalog.=) ANY ($1)",
				   1, (Oid[]) {OIDARRAYOID}, &roles, NULL, SPI_OK_DELETE);
	/* feature tables: their tables (and triggers) went with DROP OWNED */
	n = CatalogExecute("SELECT f.name FROM streamml.feature_tables_catalog f "
					   "WHERE f.owner OPERATOR(pg_catalog.=) ANY ($1)",
					   1, (Oid[]) {OIDARRAYOID}, &roles, NULL, SPI_OK_SELECT);
	{
		SPITupleTable *tt = SPI_tuptable;

		for (uint64 i = 0; i < n; i++)
			FeatureTableRemove(SPI_getvalue(tt->vals[i], tt->tupdesc, 1), true);
	}
	OutcomeTrackersDropOwned(roles);
	ScorersDropOwned(roles);
	MonitorsDropOwned(roles);
}

/*
 * Refuses REASSIGN OWNED while the old roles own a feature table, scorer,
 * outcome tracker or monitor in this database.  These act as their owner
 * by themselves: on every row any session inserts into their source, or
 * in the monitor worker.  What they touch carries code the old owner
 * controls, and no list of it can be complete: triggers and rules,
 * constraints and defaults calling functions, domains over the output's
 * columns, operators, casts, row-level security policies on the tables
 * they read.  Once moved, that code would run as the new owner (a
 * superuser, often) without anyone calling it.  So they are not moved: the
 * new owner creates them again, having looked.  Streams are stopped
 * instead and training jobs paused (ReassignOwned), since both wait for an
 * explicit start.
 */
static void
CheckReassignActors(Datum roles, Oid newowner)
{
	const char *kind;
	const char *name;
	const char *drop;

	if (CatalogExecute("SELECT 'feature table', f.name, 'streamml.drop_feature_table' "
					   "FROM streamml.feature_tables_catalog f "
					   "WHERE f.owner OPERATOR(pg_catalog.=) ANY ($1) "
					   "UNION ALL SELECT 'scorer', s.name, 'streamml.drop_scorer' "
					   "FROM streamml.scorers_catalog s "
					   "WHERE s.owner OPERATOR(pg_catalog.=) ANY ($1) "
					   "UNION ALL SELECT 'outcome tracker', t.scorer, 'streamml.untrack_outcomes' "
					   "FROM streamml.outcome_trackers t "
					   "WHERE t.owner OPERATOR(pg_catalog.=) ANY ($1) "
					   "UNION ALL SELECT 'monitor', m.name, 'streamml.drop_monitor' "
					   "FROM streamml.monitors_catalog m "
					   "WHERE m.owner OPERATOR(pg_catalog.=) ANY ($1) "
					   "ORDER BY 1, 2 LIMIT 1",
					   1, (Oid[]) {OIDARRAYOID}, &roles, NULL, SPI_OK_SELECT) == 0)
		return;
	kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	drop = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_IN_USE),
			 errmsg("cannot reassign %s \"%s\" to role \"%s\"",
					kind, name, GetUserNameFromId(newowner, false)),
			 errdetail("Feature tables, scorers, outcome trackers and monitors act as their owner by themselves; moved, they would run code the old owner controls (triggers, constraints, domains, operators, policies on their tables, a model's source) as the new owner."),
			 errhint("Drop the old owner's %ss with %s (or use DROP OWNED), run REASSIGN OWNED, then create them again as the new owner.",
					 kind, drop)));
}

/*
 * REASSIGN OWNED: the roles' streams, dead letters and models move.
 *
 * PostgreSQL's REASSIGN OWNED never runs the code it moves; stream workers
 * and pg_cron jobs would, at once and as the new owner: the target's
 * triggers and defaults, the models' stored source queries, all written by
 * the old owner.  So the moved streams are stopped and the moved training
 * jobs paused, with a NOTICE, until the new owner starts them.  And only
 * jobs that are what schedule_training wrote move: named for a model of the
 * old owner, run by the old owner, and whose command is nothing but a
 * retrain call of that model with one standard string literal (anyone can
 * give a job of their own a model's job name, or change the command of
 * their own job).  pg_cron runs jobs only as roles that can log in: for a
 * new owner that cannot, the job stays paused under the old user.
 */
static void
ReassignOwned(Datum roles, Oid newowner)
{
	Datum		args[2] = {roles, ObjectIdGetDatum(newowner)};
	Oid			types[2] = {OIDARRAYOID, OIDOID};
	uint64		streams;
	uint64		jobs = 0;

	CheckReassignActors(roles, newowner);

	streams = CatalogExecute("UPDATE streamml.streams SET owner = $2, enabled = false, "
							 "generation = generation OPERATOR(pg_catalog.+) 1 "
							 "WHERE owner OPERATOR(pg_catalog.=) ANY ($1)",
							 2, types, args, NULL, SPI_OK_UPDATE);
	if (streams > 0)
		WakeLauncherAtCommit();
	CatalogExecute("UPDATE streamml.dead_letters SET owner = $2 "
				   "WHERE owner OPERATOR(pg_catalog.=) ANY ($1)",
				   2, types, args, NULL, SPI_OK_UPDATE);
	if (CatalogExecute("SELECT 1 FROM pg_catalog.pg_extension "
					   "WHERE extname OPERATOR(pg_catalog.=) 'pg_cron'",
					   0, NULL, NULL, NULL, SPI_OK_SELECT) > 0)
		jobs = CatalogExecute("SELECT cron.alter_job(j.jobid, active => false, "
							  "username => (SELECT r.rolname FROM pg_catalog.pg_roles r "
							  "WHERE r.oid OPERATOR(pg_catalog.=) $2 AND r.rolcanlogin)) "
							  "FROM cron.job j, streamml.models m, "
							  "LATERAL (SELECT 'SELECT * FROM streamml.retrain(' "
							  "OPERATOR(pg_catalog.||) pg_catalog.quote_literal(m.name) "
							  "OPERATOR(pg_catalog.||) ', ' AS prefix) c "
							  "WHERE m.owner OPERATOR(pg_catalog.=) ANY ($1) "
							  "AND j.jobname OPERATOR(pg_catalog.=) streamml.training_job_name(m.name) "
							  "AND j.username OPERATOR(pg_catalog.=) pg_catalog.pg_get_userbyid(m.owner) "
							  "AND pg_catalog.starts_with(j.command, c.prefix) "
							  "AND pg_catalog.substr(j.command, pg_catalog.length(c.prefix) OPERATOR(pg_catalog.+) 1) "
							  "OPERATOR(pg_catalog.~) '^''(?:[^'']|'''')*''\\)$'",
							  2, types, args, NULL, SPI_OK_SELECT);
	CatalogExecute("UPDATE streamml.models SET owner = $2 "
				   "WHERE owner OPERATOR(pg_catalog.=) ANY ($1)",
				   2, types, args, NULL, SPI_OK_UPDATE);
	MonitorEventsReassignOwned(roles, newowner);
	if (streams > 0 || jobs > 0)
		ereport(NOTICE,
				(errmsg("%llu streams stopped and %llu training jobs paused on moving them to role \"%s\"",
						(unsigned long long) streams, (unsigned long long) jobs,
						GetUserNameFromId(newowner, false)),
				 errdetail("Started, they would run code written by the old owner as the new owner."),
				 errhint("Review the streams' targets and the models' sources, then call streamml.start_stream and cron.alter_job(jobid, active => true).")));
}

/*
 * Runs f on this database's catalog when the extension is installed here,
 * with SPI connected and a snapshot.
 */
static void
WithCatalog(void (*f) (Datum, Oid), Datum roles, Oid arg)
{
	bool		pushed = false;

	if (!OidIsValid(get_extension_oid("pg_streamml", true)))
		return;
	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	f(roles, arg);
	SPI_finish();
	if (pushed)
		PopActiveSnapshot();
}

/* Adapters of the three actions to WithCatalog. */
static void
CheckDropRoleAction(Datum roles, Oid unused)
{
	CheckDropRole(roles);
}

static void
DropGrantsAction(Datum roles, Oid unused)
{
	CatalogExecute("DELETE FROM streamml.model_grants WHERE grantee OPERATOR(pg_catalog.=) ANY ($1)",
				   1, (Oid[]) {OIDARRAYOID}, &roles, NULL, SPI_OK_DELETE);
}

static void
DropOwnedAction(Datum roles, Oid unused)
{
	DropOwned(roles);
}

static void
ReassignOwnedAction(Datum roles, Oid newowner)
{
	ReassignOwned(roles, newowner);
}

/*
 * Whether an ALTER ROLE can change what the role may use: INHERIT,
 * SUPERUSER, or members added or dropped (ALTER GROUP), not a password.
 */
static bool
ChangesAccess(AlterRoleStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, "inherit") == 0 ||
			strcmp(d->defname, "superuser") == 0 ||
			strcmp(d->defname, "rolemembers") == 0)
			return true;
	}
	return false;
}

/* The utility hook: see the comment at the top of the file. */
static void
StreammlProcessUtility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	Datum		roles = (Datum) 0;
	int			n = 0;

	switch (nodeTag(stmt))
	{
		case T_DropRoleStmt:
			roles = PointerGetDatum(RoleOids(((DropRoleStmt *) stmt)->roles, &n));
			DroppedRoleOids = NIL;
			DroppedRoleNames = NIL;
			{
				ListCell   *lc;

				foreach(lc, ((DropRoleStmt *) stmt)->roles)
				{
					Oid			r = get_rolespec_oid(lfirst(lc), true);

					if (!OidIsValid(r))
						continue;
					DroppedRoleOids = lappend_oid(DroppedRoleOids, r);
					DroppedRoleNames = lappend(DroppedRoleNames,
											   GetUserNameFromId(r, false));
				}
			}
			break;
		case T_DropOwnedStmt:
			roles = PointerGetDatum(RoleOids(((DropOwnedStmt *) stmt)->roles, &n));
			break;
		case T_ReassignOwnedStmt:
			roles = PointerGetDatum(RoleOids(((ReassignOwnedStmt *) stmt)->roles, &n));
			break;
		default:
			break;
	}

	/* a table a scorer, tracker or feature table depends on (relations.c) */
	if (IsA(stmt, DropStmt))
	{
		List	   *rels = RelationsDropTargets((DropStmt *) stmt);

		if (rels != NIL)
			WithCatalog(RelationsDropCheck, OidListArray(rels), InvalidOid);
	}

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	switch (nodeTag(stmt))
	{
		case T_DropRoleStmt:
			/*
			 * After PostgreSQL's own checks (privileges, its own owned
			 * objects), so that nobody learns what a role owns here without
			 * the right to drop it; the error undoes the DROP ROLE.
			 */
			if (n > 0)
			{
				WithCatalog(CheckDropRoleAction, roles, InvalidOid);
				WithCatalog(DropGrantsAction, roles, InvalidOid);
			}
			ModelCatalogChanged();
			break;
		case T_DropOwnedStmt:
			if (n > 0)
				WithCatalog(DropOwnedAction, roles, InvalidOid);
			ModelCatalogChanged();
			break;
		case T_ReassignOwnedStmt:
			if (n > 0)
				WithCatalog(ReassignOwnedAction, roles,
							get_rolespec_oid(((ReassignOwnedStmt *) stmt)->newrole,
											 false));
			ModelCatalogChanged();
			break;
		case T_GrantRoleStmt:
			/* a membership: access may have changed */
			ModelCatalogChanged();
			break;
		case T_AlterRoleStmt:
			if (ChangesAccess((AlterRoleStmt *) stmt))
				ModelCatalogChanged();
			break;
		default:
			break;
	}
}

/* Called from _PG_init: installs the utility hook. */
void
RolesInit(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = StreammlProcessUtility;
}
