/*
 * model_catalog_citus.c
 *		The model catalog on a Citus cluster: the coordinator's copy is the
 *		catalog, and every worker node holds a replica of it, so that
 *		predict() in the shard queries Citus runs on the workers serves the
 *		coordinator's deployed version.
 *
 * Citus creates pg_streamml on every node (CREATE EXTENSION is
 * propagated), so each worker has the catalog tables, their row-level
 * security and the serving code; what it lacks is the rows.  The tables
 * are not made Citus reference tables: their shell on the coordinator would
 * be empty (the rows would live in shard tables), and the extension's
 * functions read and write the tables by name.  Instead the coordinator
 * pushes each change to the workers inside the changing transaction:
 *
 *	- an AFTER ROW trigger on models, model_versions, deployments and
 *	  model_grants (model_catalog_track) notes, for the transaction, which
 *	  models changed and which of their versions;
 *	- just before the commit (a transaction callback, called before
 *	  Citus's, which prepares the workers), the rows of each changed model
 *	  (the model, its deployments and grants, the rows of the versions that
 *	  changed, the list of version numbers) are read and sent as one jsonb
 *	  to every worker with metadata through Citus's coordinated
 *	  transaction, as the Citus extension owner
 *	  (SendCommandToWorkersWithMetadataViaSuperUser).  Not a deferred
 *	  trigger: the catalog is written in security-restricted operations,
 *	  where PostgreSQL queues none;
 *	- each worker applies them with streamml.model_catalog_apply, which
 *	  only superusers may run, in replica mode (session_replication_role),
 *	  as logical replication applies rows: no foreign-key cascade, no
 *	  trigger, so it never syncs onwards.
 *
 * Citus commits the coordinator and the workers with two-phase commit, so
 * a deploy, rollback, grant, revoke, drop or training run is on every node
 * or on none, and is visible everywhere once the statement returns.  The
 * serving caches on the workers are told as on one node (the generation
 * counter of model_catalog.c): the apply marks the catalog changed; that
 * is published when Citus sends COMMIT PREPARED on the same connection,
 * and, for a prepared transaction that recovery commits from another
 * connection, by the utility hook below after any COMMIT PREPARED.
 *
 * On a worker node, catalog changes by anything else than the apply are
 * refused (they would make the worker's catalog differ from the
 * coordinator's), except the role commands Citus itself propagates (DROP
 * OWNED, REASSIGN OWNED and DROP ROLE run on every node, with DDL
 * propagation off, where roles.c changes the catalog as on the
 * coordinator; so the coordinator does not send those changes).
 * streamml.sync_model_catalog() copies the whole catalog, for a worker
 * added after models were made, or for a cluster made after them.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "ml/ml.h"
#include "pg_streamml.h"

/* What this node is in a Citus cluster, decided once per transaction. */
typedef enum CitusRole
{
	CITUS_NONE,					/* no citus extension in this database */
	CITUS_COORDINATOR,			/* the coordinator (or a lone Citus node) */
	CITUS_WORKER				/* a worker node */
} CitusRole;

/* A model changed by this transaction. */
typedef struct SyncEntry
{
	char		name[NAMEDATALEN];
	bool		dirty;			/* changed since last sent */
	List	   *versions;		/* version numbers whose rows changed */
} SyncEntry;

static LocalTransactionId SyncXact = InvalidLocalTransactionId;
static CitusRole SyncRole = CITUS_NONE;
static HTAB *SyncModels = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static bool callback_registered = false;
static bool SyncSuppressed = false;	/* a role command Citus propagates */

static void SyncXactCallback(XactEvent event, void *arg);

/* The Citus functions used, looked up once in the loaded library. */
static void (*citus_send_as_superuser) (const char *) = NULL;
static int32 (*citus_local_group) (void) = NULL;

/* Looks the Citus functions up (citus is preloaded wherever it is created). */
static void
CitusFunctionsLoad(void)
{
	if (citus_send_as_superuser != NULL)
		return;
	citus_local_group = (int32 (*) (void))
		load_external_function("citus", "GetLocalGroupId", true, NULL);
	citus_send_as_superuser = (void (*) (const char *))
		load_external_function("citus", "SendCommandToWorkersWithMetadataViaSuperUser",
							   true, NULL);
}

/* This node's role, without the per-transaction cache. */
static CitusRole
CitusRoleLookup(void)
{
	if (!OidIsValid(get_extension_oid("citus", true)))
		return CITUS_NONE;
	CitusFunctionsLoad();
	/* Citus's coordinator group is 0; so is a node not in a cluster */
	return citus_local_group() == 0 ? CITUS_COORDINATOR : CITUS_WORKER;
}

/*
 * The transaction's state: the node's role and the models changed so far
 * (in TopTransactionContext, so it goes with the transaction).
 */
static void
SyncStateCheck(void)
{
	HASHCTL		ctl;

	if (SyncXact == MyProc->lxid)
		return;
	SyncRole = CitusRoleLookup();
	ctl.keysize = NAMEDATALEN;
	ctl.entrysize = sizeof(SyncEntry);
	ctl.hcxt = TopTransactionContext;
	SyncModels = hash_create("pg_streamml models to sync", 16, &ctl,
							 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	SyncXact = MyProc->lxid;
}

/* The model name in column tgargs[0] of a trigger tuple, into buf. */
static void
TriggerModelName(TriggerData *td, HeapTuple tuple, char *buf)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	int			att = SPI_fnumber(desc, td->tg_trigger->tgargs[0]);
	bool		isnull;
	Datum		d;

	if (att <= 0)
		elog(ERROR, "model catalog trigger: no column \"%s\"",
			 td->tg_trigger->tgargs[0]);
	d = heap_getattr(tuple, att, desc, &isnull);
	if (isnull)
		elog(ERROR, "model catalog trigger: null model name");
	text_to_cstring_buffer(DatumGetTextPP(d), buf, NAMEDATALEN);
}

/* Notes one changed row of model "name" (and its version, or -1). */
static void
SyncNote(const char *name, int version)
{
	bool		found;
	SyncEntry  *e = hash_search(SyncModels, name, HASH_ENTER, &found);
	MemoryContext old;

	if (!found)
		e->versions = NIL;
	e->dirty = true;
	if (version >= 0)
	{
		old = MemoryContextSwitchTo(TopTransactionContext);
		e->versions = list_append_unique_int(e->versions, version);
		MemoryContextSwitchTo(old);
	}
}

/* The version in a model_versions tuple, -1 for the other tables. */
static int
TriggerVersion(TriggerData *td, HeapTuple tuple)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	int			att;
	bool		isnull;
	Datum		d;

	if (td->tg_trigger->tgnargs < 2)
		return -1;
	att = SPI_fnumber(desc, td->tg_trigger->tgargs[1]);
	if (att <= 0)
		return -1;
	d = heap_getattr(tuple, att, desc, &isnull);
	return isnull ? -1 : DatumGetInt32(d);
}

/* Refuses a change of the catalog on a worker, unless Citus sent it. */
static void
RefuseOnWorker(void)
{
	const char *ddl = GetConfigOption("citus.enable_ddl_propagation", true, false);

	/* DROP OWNED, REASSIGN OWNED propagated by the coordinator */
	if (ddl != NULL && strcmp(ddl, "off") == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot change the model catalog on a Citus worker node"),
			 errdetail("The coordinator's model catalog is copied to the worker nodes."),
			 errhint("Train, deploy, grant and drop models on the coordinator.")));
}

PG_FUNCTION_INFO_V1(model_catalog_track);

/*
 * AFTER ROW trigger on the model catalog tables: notes which models (and
 * versions) this transaction changed, for model_catalog_sync at commit.
 * Arguments: the model name column, and for model_versions the version
 * column.
 */
Datum
model_catalog_track(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	char		name[NAMEDATALEN];

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("model_catalog_track must be called as a trigger")));
	SyncStateCheck();
	if (SyncRole == CITUS_NONE)
		return PointerGetDatum(NULL);
	if (SyncRole == CITUS_WORKER)
	{
		RefuseOnWorker();
		return PointerGetDatum(NULL);
	}
	if (SyncSuppressed)
		return PointerGetDatum(NULL);
	if (!callback_registered)
	{
		/* after Citus's callback, so called before it */
		RegisterXactCallback(SyncXactCallback, NULL);
		callback_registered = true;
	}
	TriggerModelName(td, td->tg_trigtuple, name);
	SyncNote(name, TriggerVersion(td, td->tg_trigtuple));
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		TriggerModelName(td, td->tg_newtuple, name);
		SyncNote(name, TriggerVersion(td, td->tg_newtuple));
	}
	return PointerGetDatum(NULL);
}

/*
 * The catalog rows of one model as jsonb text: the model row (null once
 * dropped), its deployments and grants, the numbers of all its versions
 * and the rows of the versions asked for (versions NIL: all).
 */
static char *
ModelCatalogPayload(const char *name, List *versions, bool all)
{
	Oid			types[2] = {TEXTOID, INT4ARRAYOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	Datum	   *v;
	ListCell   *lc;
	int			i = 0;
	char	   *out;

	values[0] = CStringGetTextDatum(name);
	if (all)
	{
		values[1] = (Datum) 0;
		nulls[1] = 'n';
	}
	else
	{
		v = palloc(sizeof(Datum) * Max(list_length(versions), 1));
		foreach(lc, versions)
			v[i++] = Int32GetDatum(lfirst_int(lc));
		values[1] = PointerGetDatum(construct_array(v, i, INT4OID, 4, true,
													TYPALIGN_INT));
	}
	CatalogExecute("SELECT pg_catalog.jsonb_build_object("
				   "'name', $1, "
				   "'model', (SELECT pg_catalog.to_jsonb(m.*) FROM streamml.models m "
				   "  WHERE m.name OPERATOR(pg_catalog.=) $1), "
				   "'version_numbers', (SELECT COALESCE(pg_catalog.jsonb_agg(DISTINCT v.version), '[]') "
				   "  FROM streamml.model_versions v WHERE v.model OPERATOR(pg_catalog.=) $1), "
				   "'versions', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(v.*)), '[]') "
				   "  FROM streamml.model_versions v WHERE v.model OPERATOR(pg_catalog.=) $1 "
				   "  AND ($2 IS NULL OR v.version OPERATOR(pg_catalog.=) ANY ($2))), "
				   "'deployments', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(d.*)), '[]') "
				   "  FROM streamml.deployments d WHERE d.model OPERATOR(pg_catalog.=) $1), "
				   "'grants', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(g.*)), '[]') "
				   "  FROM streamml.model_grants g WHERE g.model OPERATOR(pg_catalog.=) $1)"
				   ")::pg_catalog.text",
				   2, types, values, nulls, SPI_OK_SELECT);
	out = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return out;
}

/*
 * Sends a payload to every worker with metadata, in the coordinated
 * transaction (two-phase commit), as the Citus extension owner.  SPI must
 * be connected; the command text is copied out of SPI's memory first.
 */
static void
SendToWorkers(const char *payload)
{
	StringInfoData cmd;

	initStringInfo(&cmd);
	appendStringInfo(&cmd, "SELECT streamml.model_catalog_apply(%s::jsonb)",
					 quote_literal_cstr(payload));
	CitusFunctionsLoad();
	citus_send_as_superuser(cmd.data);
}

/* Sends one model's changes to the workers (SPI connected). */
static void
SyncModel(const char *name, List *versions, bool all)
{
	MemoryContext caller = CurrentMemoryContext;
	char	   *payload = ModelCatalogPayload(name, versions, all);

	/* out of SPI's memory: Citus may use it after SPI_finish */
	payload = MemoryContextStrdup(caller, payload);
	SendToWorkers(payload);
}

/*
 * Transaction callback: just before the commit (and before Citus's own
 * callback, registered earlier at its load, prepares the workers), sends
 * each model this transaction changed to the worker nodes, once.
 */
static void
SyncXactCallback(XactEvent event, void *arg)
{
	HASH_SEQ_STATUS it;
	SyncEntry  *e;
	bool		any = false;

	if (event != XACT_EVENT_PRE_COMMIT || SyncXact != MyProc->lxid ||
		SyncRole != CITUS_COORDINATOR || SyncModels == NULL)
		return;
	hash_seq_init(&it, SyncModels);
	while ((e = hash_seq_search(&it)) != NULL)
	{
		if (!e->dirty)
			continue;
		if (!any)
		{
			PushActiveSnapshot(GetTransactionSnapshot());
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			any = true;
		}
		SyncModel(e->name, e->versions, false);
		e->dirty = false;
		e->versions = NIL;
	}
	if (any)
	{
		SPI_finish();
		PopActiveSnapshot();
	}
}

PG_FUNCTION_INFO_V1(model_catalog_apply);

/*
 * streamml.model_catalog_apply(catalog jsonb), on a worker node: replaces
 * this node's rows of one model by the coordinator's (the payload of
 * ModelCatalogPayload), or with {"keep": [names]} deletes every model not
 * named.  Runs in replica mode: no cascade, no trigger.
 */
Datum
model_catalog_apply(PG_FUNCTION_ARGS)
{
	Jsonb	   *catalog = PG_GETARG_JSONB_P(0);
	Oid			types[2] = {JSONBOID, TEXTOID};
	Datum		values[2];
	int			nest;
	JsonbValue	key;
	JsonbValue *name;

	if (CitusRoleLookup() != CITUS_WORKER)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("streamml.model_catalog_apply runs only on a Citus worker node"),
				 errdetail("The coordinator sends it the model catalog's changes.")));

	values[0] = JsonbPGetDatum(catalog);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	nest = NewGUCNestLevel();
	(void) set_config_option("session_replication_role", "replica",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	key.type = jbvString;
	key.val.string.val = "name";
	key.val.string.len = 4;
	name = findJsonbValueFromContainer(&catalog->root, JB_FOBJECT, &key);
	if (name == NULL)
	{
		/* the whole catalog's names: delete the models not among them */
		static const char *const prune[] = {
			"DELETE FROM streamml.model_grants WHERE NOT model OPERATOR(pg_catalog.=) ANY (%s)",
			"DELETE FROM streamml.deployments WHERE NOT model OPERATOR(pg_catalog.=) ANY (%s)",
			"DELETE FROM streamml.model_versions WHERE NOT model OPERATOR(pg_catalog.=) ANY (%s)",
			"DELETE FROM streamml.models WHERE NOT name OPERATOR(pg_catalog.=) ANY (%s)",
		};

		for (int i = 0; i < lengthof(prune); i++)
			CatalogExecute(psprintf(prune[i],
									"ARRAY(SELECT pg_catalog.jsonb_array_elements_text("
									"COALESCE($1 OPERATOR(pg_catalog.->) 'keep', '[]')))"),
						   1, types, values, NULL, SPI_OK_DELETE);
	}
	else
	{
		static const char *const apply[] = {
			"DELETE FROM streamml.model_grants WHERE model OPERATOR(pg_catalog.=) $2",
			"DELETE FROM streamml.deployments WHERE model OPERATOR(pg_catalog.=) $2",
			"DELETE FROM streamml.models WHERE name OPERATOR(pg_catalog.=) $2",
			/* versions gone on the coordinator, or sent again */
			"DELETE FROM streamml.model_versions v WHERE v.model OPERATOR(pg_catalog.=) $2 "
			"AND (NOT v.version OPERATOR(pg_catalog.=) ANY (ARRAY("
			"  SELECT pg_catalog.jsonb_array_elements_text(COALESCE("
			"    $1 OPERATOR(pg_catalog.->) 'version_numbers', '[]'))::pg_catalog.int4)) "
			"OR v.version OPERATOR(pg_catalog.=) ANY (ARRAY("
			"  SELECT (e OPERATOR(pg_catalog.->>) 'version')::pg_catalog.int4 "
			"  FROM pg_catalog.jsonb_array_elements(COALESCE("
			"    $1 OPERATOR(pg_catalog.->) 'versions', '[]')) e)))",
			"INSERT INTO streamml.models SELECT * FROM pg_catalog.jsonb_populate_record("
			"NULL::streamml.models, $1 OPERATOR(pg_catalog.->) 'model') "
			"WHERE pg_catalog.jsonb_typeof($1 OPERATOR(pg_catalog.->) 'model') OPERATOR(pg_catalog.=) 'object'",
			"INSERT INTO streamml.model_versions SELECT * FROM pg_catalog.jsonb_populate_recordset("
			"NULL::streamml.model_versions, COALESCE($1 OPERATOR(pg_catalog.->) 'versions', '[]'))",
			"INSERT INTO streamml.deployments SELECT * FROM pg_catalog.jsonb_populate_recordset("
			"NULL::streamml.deployments, COALESCE($1 OPERATOR(pg_catalog.->) 'deployments', '[]'))",
			"INSERT INTO streamml.model_grants SELECT * FROM pg_catalog.jsonb_populate_recordset("
			"NULL::streamml.model_grants, COALESCE($1 OPERATOR(pg_catalog.->) 'grants', '[]'))",
		};

		if (name->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("model catalog payload: \"name\" must be a string")));
		values[1] = PointerGetDatum(cstring_to_text_with_len(name->val.string.val,
															 name->val.string.len));
		for (int i = 0; i < lengthof(apply); i++)
			CatalogExecute(apply[i], 2, types, values, NULL,
						   strncmp(apply[i], "DELETE", 6) == 0 ? SPI_OK_DELETE : SPI_OK_INSERT);
	}
	AtEOXact_GUC(true, nest);
	SPI_finish();
	/* replica mode skipped the statement triggers: tell the caches here */
	ModelCatalogChanged();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(sync_model_catalog);

/*
 * streamml.sync_model_catalog(): copies the coordinator's whole model
 * catalog to every worker node (all versions of every model; models the
 * coordinator does not have are deleted there).  Returns the number of
 * models copied.
 */
Datum
sync_model_catalog(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;
	List	   *names = NIL;
	uint64		n;
	char	   *keep;

	if (CitusRoleLookup() != CITUS_COORDINATOR)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("streamml.sync_model_catalog runs only on a Citus coordinator"),
				 errhint("Create the citus extension and add the worker nodes first.")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	n = CatalogExecute("SELECT m.name FROM streamml.models m ORDER BY 1",
					   0, NULL, NULL, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < n; i++)
		names = lappend(names,
						MemoryContextStrdup(caller,
											SPI_getvalue(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1)));
	CatalogExecute("SELECT pg_catalog.jsonb_build_object('keep', "
				   "COALESCE(pg_catalog.jsonb_agg(m.name), '[]'))::pg_catalog.text "
				   "FROM streamml.models m", 0, NULL, NULL, NULL, SPI_OK_SELECT);
	keep = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1));
	SendToWorkers(keep);
	{
		ListCell   *lc;

		foreach(lc, names)
			SyncModel(lfirst(lc), NIL, true);
	}
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}

/*
 * After COMMIT PREPARED (as recovery runs it, from any connection) marks
 * the model catalog changed: the prepared transaction may have been a
 * model_catalog_apply whose own backend is gone.  Cheap: the serving
 * caches reload at their next statement.
 */
static void
ModelCatalogCitusProcessUtility(PlannedStmt *pstmt, const char *queryString,
								bool readOnlyTree, ProcessUtilityContext context,
								ParamListInfo params, QueryEnvironment *queryEnv,
								DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	bool		save = SyncSuppressed;

	/*
	 * Citus runs DROP OWNED, REASSIGN OWNED and DROP ROLE on the workers
	 * too, where roles.c makes the same catalog changes; sending them as
	 * well would have two worker transactions of one distributed
	 * transaction wait for each other's row locks.
	 */
	if (IsA(parsetree, DropOwnedStmt) || IsA(parsetree, ReassignOwnedStmt) ||
		IsA(parsetree, DropRoleStmt))
		SyncSuppressed = true;
	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		SyncSuppressed = save;
	}
	PG_END_TRY();
	if (IsA(parsetree, TransactionStmt) &&
		((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED &&
		OidIsValid(get_extension_oid("citus", true)))
		ModelCatalogChanged();
}

/*
 * Called from _PG_init, after RolesInit: the utility hook (COMMIT PREPARED;
 * the role commands), outside roles.c's, whose catalog changes it covers.
 */
void
ModelCatalogCitusInit(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = ModelCatalogCitusProcessUtility;
}
