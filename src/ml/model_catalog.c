/*
 * model_catalog.c
 *		The model catalog: its writes (deploy, rollback, drop, grants, the
 *		record of a training run), the ownership checks before them, the
 *		checks of the model-row reads that serving and evaluation share, and
 *		the generation counter that tells every backend's predict cache that
 *		something changed.
 *
 * Users cannot write streamml.models, model_versions, deployments or
 * model_grants: they hold only SELECT, under row-level security.  Every
 * change goes through a function here, which checks the caller against
 * the model's owner (a role oid, so that renaming a role keeps its models
 * and a new role of an old name gets nothing) and then writes through
 * CatalogExecute.
 *
 * Freshness of the serving cache (predict.c): a shared generation counter
 * is bumped after the commit of every transaction that changed the model
 * catalog (a statement trigger on the tables) or role memberships (the
 * utility hook in roles.c).  Bumping after commit, not at the change,
 * matters: a backend that saw the new number before the commit would load
 * the old rows and keep them as current.  A backend compares the counter
 * with the one its cache was built at, once per statement, and reloads with
 * a snapshot taken after reading the counter; its own uncommitted changes
 * mark its cache stale at once.
 */
#include "postgres.h"

#include "catalog/namespace.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "ml/categorical.h"
#include "ml/ml.h"
#include "ml/train.h"
#include "monitor/monitor.h"
#include "pg_streamml.h"

typedef struct ModelCatalogShared
{
	pg_atomic_uint64 generation;
} ModelCatalogShared;

static ModelCatalogShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool callback_registered = false;
static bool bump_at_commit = false;
static bool local_stale = false;

/* Requests the shared generation counter. */
static void
ModelCatalogShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ModelCatalogShared)));
}

/* Attaches (or creates) the shared generation counter. */
static void
ModelCatalogShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("pg_streamml model catalog",
							 sizeof(ModelCatalogShared), &found);
	if (!found)
		pg_atomic_init_u64(&shared->generation, 1);
	LWLockRelease(AddinShmemInitLock);
}

/* Called from MlInit: the shared memory of the counter. */
void
ModelCatalogInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ModelCatalogShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ModelCatalogShmemStartup;
}

/* Transaction callback: publishes this transaction's changes at commit. */
static void
ModelCatalogXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (bump_at_commit && shared != NULL)
				pg_atomic_fetch_add_u64(&shared->generation, 1);
			bump_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (bump_at_commit)
				local_stale = true;
			bump_at_commit = false;
			break;
		default:
			break;
	}
}

/* Subtransaction callback: an undone change leaves the cache stale too. */
static void
ModelCatalogSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
							SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && bump_at_commit)
		local_stale = true;
}

/*
 * Records that this transaction changed what predict may serve: this
 * backend's cache is stale now, every other backend's once it commits.
 */
void
ModelCatalogChanged(void)
{
	if (!callback_registered)
	{
		RegisterXactCallback(ModelCatalogXactCallback, NULL);
		RegisterSubXactCallback(ModelCatalogSubXactCallback, NULL);
		callback_registered = true;
	}
	bump_at_commit = true;
	local_stale = true;
}

/*
 * The generation the cache must be at; *stale is set when this backend's
 * own changes (or their abort) made its cache stale, and is then cleared.
 */
uint64
ModelCatalogGeneration(bool *stale)
{
	*stale = local_stale;
	local_stale = false;
	return shared ? pg_atomic_read_u64(&shared->generation) : 0;
}

PG_FUNCTION_INFO_V1(model_cache_invalidate);

/*
 * Statement trigger on the model catalog tables: every change, whoever
 * makes it, reaches the serving caches.
 */
Datum
model_cache_invalidate(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("model_cache_invalidate must be called as a trigger")));
	ModelCatalogChanged();
	return PointerGetDatum(NULL);
}

/* ---- ownership ---- */

/*
 * The error of a model name that names no model the current user may see
 * (one owner of its words and hint); detail, when not NULL, says where the
 * name was given.
 */
void
ModelDoesNotExist(const char *name, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("model \"%s\" does not exist", name),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errhint("Train it with streamml.train_logreg, train_linreg, train_gbt, train_forest, train_tree or train_league, or ask its owner for access.")));
}

/*
 * Looks a model up for a change by the caller (SPI connected): errors
 * unless it exists, the caller can see it and has the privileges of its
 * owner.  Returns the owner.  A model the caller cannot see does not
 * exist for the caller, as with a table in a schema it cannot use.
 */
Oid
ModelCheckOwner(const char *name, const char *action)
{
	Datum		arg = CStringGetTextDatum(name);
	bool		isnull;
	Oid			owner;
	bool		visible;

	CatalogExecute("SELECT m.owner FROM streamml.models m "
				   "WHERE m.name OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	owner = SPI_processed == 0 ? InvalidOid :
		DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
	visible = OidIsValid(owner) && ModelVisible(name, owner);
	if (!visible)
		ModelDoesNotExist(name, NULL);
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of model \"%s\"", name),
				 errdetail("Only the owner of a model (or a member of the owning role) can %s it.",
						   action)));
	return owner;
}

/* The error of training a model of a name another role owns. */
static void
ReportOwnedByAnother(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_DUPLICATE_OBJECT),
			 errmsg("model \"%s\" already exists", name),
			 errdetail("Another role owns it; only its owner (or a member of the owning role) can train it.")));
}

/*
 * Refuses, before any work, to train a model of a name another role owns
 * (ModelUpsert checks again, atomically, when it records the run).
 */
void
ModelCheckTrainOwner(const char *model)
{
	Datum		arg = CStringGetTextDatum(model);
	bool		isnull;
	Oid			owner;

	CatalogExecute("SELECT m.owner FROM streamml.models m "
				   "WHERE m.name OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return;
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	if (!has_privs_of_role(GetUserId(), owner))
		ReportOwnedByAnother(model);
}

/*
 * Whether the calling user may see and use a model of this owner: owner,
 * member of the owner, or granted (directly, through a role, or PUBLIC).
 * The C twin of SQL streamml.model_visible, which row-level security uses.
 */
bool
ModelVisible(const char *name, Oid owner)
{
	Oid			user = GetUserId();
	Datum		args[2];
	bool		isnull;

	if (has_privs_of_role(user, owner))
		return true;
	args[0] = CStringGetTextDatum(name);
	args[1] = ObjectIdGetDatum(user);
	CatalogExecute("SELECT pg_catalog.array_agg(g.grantee::pg_catalog.oid) FROM streamml.model_grants g "
				   "WHERE g.model OPERATOR(pg_catalog.=) $1",
				   2, (Oid[]) {TEXTOID, OIDOID}, args, NULL, SPI_OK_SELECT);
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull);
		Datum	   *grantees;
		int			n;

		if (isnull)
			return false;
		deconstruct_array(DatumGetArrayTypeP(d), OIDOID, sizeof(Oid), true,
						  TYPALIGN_INT, &grantees, NULL, &n);
		for (int i = 0; i < n; i++)
		{
			Oid			g = DatumGetObjectId(grantees[i]);

			if (g == InvalidOid || has_privs_of_role(user, g))
				return true;
		}
	}
	return false;
}

PG_FUNCTION_INFO_V1(model_visible);

/* SQL streamml.model_visible(model, owner), for row-level security. */
Datum
model_visible(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			owner = PG_GETARG_OID(1);
	bool		visible;

	if (has_privs_of_role(GetUserId(), owner))
		PG_RETURN_BOOL(true);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	visible = ModelVisible(name, owner);
	SPI_finish();
	PG_RETURN_BOOL(visible);
}

/* ---- reads ---- */

/*
 * Checks the last result, a model's row joined to its deployed version's
 * (as predict and evaluate read them, with the caller's privileges): errors
 * when the model does not exist for the caller or has no deployed version.
 * Returns the deployed version, column version_col of the result.
 */
int
ModelCheckDeployedRead(const char *name, int version_col)
{
	bool		isnull;
	Datum		version;

	if (SPI_processed == 0)
		ModelDoesNotExist(name, NULL);
	version = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							version_col, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no deployed version", name),
				 errhint("Deploy one with streamml.deploy.")));
	return DatumGetInt32(version);
}

/*
 * Reads the classes column (text[]) of the first row of the last result
 * into *classes and *n, palloc'd in the current context.  Returns false,
 * setting nothing, when it is NULL (a linear model).
 */
bool
ModelResultClasses(int col, char ***classes, int *n)
{
	bool		isnull;
	Datum		cd = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								   col, &isnull);
	Datum	   *elems;
	int			count;

	if (isnull)
		return false;
	deconstruct_array(DatumGetArrayTypeP(cd), TEXTOID, -1, false,
					  TYPALIGN_INT, &elems, NULL, &count);
	*n = count;
	*classes = palloc(sizeof(char *) * count);
	for (int i = 0; i < count; i++)
		(*classes)[i] = TextDatumGetCString(elems[i]);
	return true;
}

/* ---- writes ---- */

/*
 * The type of the group column model name was trained on (SPI connected);
 * InvalidOid when it is not grouped or was trained before types were kept.
 */
Oid
ModelGroupType(const char *name)
{
	Datum		arg = CStringGetTextDatum(name);
	bool		isnull;
	Datum		d;

	if (CatalogExecute("SELECT group_type FROM streamml.models "
					   "WHERE name OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT) == 0)
		return InvalidOid;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? InvalidOid : DatumGetObjectId(d);
}

/* The deployed version of model name, 0 when none (SPI connected). */
int32
ModelDeployedVersion(const char *name)
{
	Datum		arg = CStringGetTextDatum(name);
	bool		isnull;
	Datum		d;

	if (CatalogExecute("SELECT deployed_version FROM streamml.models "
					   "WHERE name OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT) != 1)
		return 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt32(d);
}

/*
 * Makes a version the deployed one and records the deployment by the
 * current user; the caller has checked the privileges.  Errors when the
 * version does not exist.
 */
void
ModelDeploy(const char *name, int version)
{
	ModelDeployBy(name, version, GetUserId());
}

/*
 * ModelDeploy recorded as done by role by: a scorer's automatic promotion
 * acts for the scorer's owner, whoever inserted the outcomes that
 * triggered it.
 */
void
ModelDeployBy(const char *name, int version, Oid by)
{
	Datum		args[3];

	args[0] = CStringGetTextDatum(name);
	args[1] = Int32GetDatum(version);
	args[2] = ObjectIdGetDatum(by);
	if (CatalogExecute("SELECT 1 FROM streamml.model_versions v "
					   "WHERE v.model OPERATOR(pg_catalog.=) $1 "
					   "AND v.version OPERATOR(pg_catalog.=) $2 LIMIT 1",
					   2, (Oid[]) {TEXTOID, INT4OID}, args, NULL,
					   SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" has no version %d", name, version)));
	CatalogExecute("UPDATE streamml.models SET deployed_version = $2 "
				   "WHERE name OPERATOR(pg_catalog.=) $1",
				   2, (Oid[]) {TEXTOID, INT4OID}, args, NULL, SPI_OK_UPDATE);
	CatalogExecute("INSERT INTO streamml.deployments (model, version, deployed_by) "
				   "VALUES ($1, $2, $3)",
				   3, (Oid[]) {TEXTOID, INT4OID, OIDOID}, args, NULL,
				   SPI_OK_INSERT);
}

PG_FUNCTION_INFO_V1(model_deploy);

/* SQL streamml.deploy(model, version): serves that version; returns it. */
Datum
model_deploy(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			version = PG_GETARG_INT32(1);

	SPI_connect();
	ModelCheckOwner(name, "deploy");
	ModelDeploy(name, version);
	SPI_finish();
	PG_RETURN_INT32(version);
}

PG_FUNCTION_INFO_V1(model_rollback);

/*
 * SQL streamml.rollback(model): deploys again the version deployed before
 * the current one; returns it.
 */
Datum
model_rollback(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Datum		arg = CStringGetTextDatum(name);
	bool		isnull;
	int			previous;
	Oid			owner;

	SPI_connect();
	owner = ModelCheckOwner(name, "roll back");
	if (CatalogExecute("SELECT d.version FROM streamml.deployments d, streamml.models m "
					   "WHERE m.name OPERATOR(pg_catalog.=) $1 "
					   "AND d.model OPERATOR(pg_catalog.=) $1 "
					   "AND d.version IS DISTINCT FROM m.deployed_version "
					   "AND d.id OPERATOR(pg_catalog.<) (SELECT pg_catalog.max(d2.id) "
					   "  FROM streamml.deployments d2 WHERE d2.model OPERATOR(pg_catalog.=) $1 "
					   "  AND d2.version OPERATOR(pg_catalog.=) m.deployed_version) "
					   "ORDER BY d.id DESC LIMIT 1",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no earlier deployment to roll back to",
						name)));
	previous = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	ModelDeploy(name, previous);
	MonitorEvent(name, previous, NULL, "rolled_back",
				 "{\"by\": \"streamml.rollback\"}", owner);
	SPI_finish();
	PG_RETURN_INT32(previous);
}

/*
 * Deletes a model with its versions, deployments and grants, and its
 * pg_cron training job (the owner's job of that name: anyone may give a
 * job of their own that name) when pg_cron is installed here.  No privilege
 * check: drop_model and DROP OWNED (roles.c) check before.
 */
void
ModelDelete(const char *name, Oid owner)
{
	Datum		args[2];

	args[0] = CStringGetTextDatum(name);
	args[1] = ObjectIdGetDatum(owner);
	CatalogExecute("DELETE FROM streamml.models WHERE name OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {TEXTOID}, args, NULL, SPI_OK_DELETE);
	if (CatalogExecute("SELECT 1 FROM pg_catalog.pg_extension "
					   "WHERE extname OPERATOR(pg_catalog.=) 'pg_cron'",
					   0, NULL, NULL, NULL, SPI_OK_SELECT) > 0)
		CatalogExecute("SELECT cron.unschedule(j.jobid) FROM cron.job j "
					   "WHERE j.jobname OPERATOR(pg_catalog.=) streamml.training_job_name($1) "
					   "AND j.username OPERATOR(pg_catalog.=) pg_catalog.pg_get_userbyid($2)",
					   2, (Oid[]) {TEXTOID, OIDOID}, args, NULL, SPI_OK_SELECT);
}

PG_FUNCTION_INFO_V1(model_drop);

/* SQL streamml.drop_model(model). */
Datum
model_drop(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			owner;

	SPI_connect();
	owner = ModelCheckOwner(name, "drop");
	ModelDelete(name, owner);
	SPI_finish();
	PG_RETURN_VOID();
}

/* The role a grant names: a role name, or "public" (InvalidOid). */
static Oid
GranteeOid(Name grantee)
{
	if (strcmp(NameStr(*grantee), "public") == 0)
		return InvalidOid;
	return get_role_oid(NameStr(*grantee), false);
}

PG_FUNCTION_INFO_V1(model_grant);

/* SQL streamml.grant_model(model, grantee): lets a role use a model. */
Datum
model_grant(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Datum		args[2];

	SPI_connect();
	ModelCheckOwner(name, "grant");
	args[0] = CStringGetTextDatum(name);
	args[1] = ObjectIdGetDatum(GranteeOid(PG_GETARG_NAME(1)));
	CatalogExecute("INSERT INTO streamml.model_grants (model, grantee) "
				   "VALUES ($1, $2) ON CONFLICT DO NOTHING",
				   2, (Oid[]) {TEXTOID, OIDOID}, args, NULL, SPI_OK_INSERT);
	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(model_revoke);

/* SQL streamml.revoke_model(model, grantee): withdraws a grant. */
Datum
model_revoke(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Datum		args[2];

	SPI_connect();
	ModelCheckOwner(name, "revoke");
	args[0] = CStringGetTextDatum(name);
	args[1] = ObjectIdGetDatum(GranteeOid(PG_GETARG_NAME(1)));
	CatalogExecute("DELETE FROM streamml.model_grants "
				   "WHERE model OPERATOR(pg_catalog.=) $1 AND grantee OPERATOR(pg_catalog.=) $2",
				   2, (Oid[]) {TEXTOID, OIDOID}, args, NULL, SPI_OK_DELETE);
	SPI_finish();
	PG_RETURN_VOID();
}

/* ---- the record of a training run ---- */

/* The classes of a run as text[]. */
static Datum
ClassesArray(TrainRun *run)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(run->nclasses, 1));

	for (int i = 0; i < run->nclasses; i++)
		d[i] = CStringGetTextDatum(run->classes[i]);
	return PointerGetDatum(construct_array(d, run->nclasses, TEXTOID, -1,
										   false, TYPALIGN_INT));
}

/*
 * Refuses to create model name (no model has it) while a scorer of a role
 * whose privileges the caller lacks still names it, as its model or a
 * challenger: model names are free again once dropped, and the scorer
 * would go on serving, under the same name and version numbers, the model
 * of whoever takes the name next.  SPI connected.
 */
static void
ModelCheckNameFree(const char *name)
{
	Datum		args[2] = {CStringGetTextDatum(name), ObjectIdGetDatum(GetUserId())};

	if (CatalogExecute("SELECT s.name FROM streamml.scorers_catalog s "
					   "WHERE NOT EXISTS (SELECT 1 FROM streamml.models m "
					   "  WHERE m.name OPERATOR(pg_catalog.=) $1) "
					   "AND NOT pg_catalog.pg_has_role($2, s.owner, 'USAGE') "
					   "AND (s.model OPERATOR(pg_catalog.=) $1 OR EXISTS ("
					   "  SELECT 1 FROM pg_catalog.jsonb_array_elements(CASE WHEN "
					   "  pg_catalog.jsonb_typeof(s.options OPERATOR(pg_catalog.->) 'challengers') "
					   "  OPERATOR(pg_catalog.=) 'array' THEN s.options OPERATOR(pg_catalog.->) 'challengers' "
					   "  ELSE '[]'::pg_catalog.jsonb END) c "
					   "  WHERE c OPERATOR(pg_catalog.=) pg_catalog.to_jsonb($1) "
					   "  OR c OPERATOR(pg_catalog.->>) 'model' OPERATOR(pg_catalog.=) $1)) "
					   "LIMIT 1",
					   2, (Oid[]) {TEXTOID, OIDOID}, args, NULL, SPI_OK_SELECT) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("model name \"%s\" is still used by a scorer of another role", name),
				 errdetail("Scorer \"%s\" serves a model of that name, which was dropped; a new model of that name would be served in its place.",
						   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
				 errhint("Choose another name, or ask the scorer's owner to drop it with streamml.drop_scorer.")));
}

/*
 * Creates the model of a training run, or updates its spec (kind, label,
 * features, source, options, grouping, classes) when the caller may train
 * it: a new model is the caller's; an existing one must be.  The upsert
 * holds the model's row lock until the transaction ends.
 */
void
ModelUpsert(TrainRun *run, Jsonb *options)
{
	Oid			t1[12] = {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID,
	TEXTOID, JSONBOID, TEXTOID, TEXTARRAYOID, OIDOID, TEXTOID, OIDOID};
	Datum		v1[12];
	char		n1[12] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	const char *kind = run->family != FAMILY_GLM ? FamilyName(run) :
		run->kind == MODEL_LINEAR ? "linear" :
		run->kind == MODEL_LOGISTIC ? "logistic" : "multinomial";
	Datum	   *fc = palloc(sizeof(Datum) * run->nfeaturecols);

	for (int i = 0; i < run->nfeaturecols; i++)
		fc[i] = CStringGetTextDatum(run->featurecols[i]);

	ModelCheckNameFree(run->model);
	v1[0] = CStringGetTextDatum(run->model);
	v1[1] = CStringGetTextDatum(kind);
	v1[2] = CStringGetTextDatum(run->label);
	v1[3] = FeatureNamesArray(run);
	v1[4] = PointerGetDatum(construct_array(fc, run->nfeaturecols, TEXTOID, -1,
											false, TYPALIGN_INT));
	v1[5] = CStringGetTextDatum(run->source);
	v1[6] = JsonbPGetDatum(options);
	v1[7] = run->group_by ? CStringGetTextDatum(run->group_by) : (Datum) 0;
	n1[7] = run->group_by ? ' ' : 'n';
	v1[8] = run->nclasses > 0 ? ClassesArray(run) : (Datum) 0;
	n1[8] = run->nclasses > 0 ? ' ' : 'n';
	v1[9] = ObjectIdGetDatum(GetUserId());
	/* a query source keeps the path it was written for (RunAsOwnerWithPath) */
	v1[10] = SourceNeedsSearchPath(run->source) ?
		CStringGetTextDatum(StoredSearchPath()) : (Datum) 0;
	n1[10] = SourceNeedsSearchPath(run->source) ? ' ' : 'n';
	v1[11] = ObjectIdGetDatum(run->group_type);
	n1[11] = run->group_by ? ' ' : 'n';

	if (CatalogExecute("INSERT INTO streamml.models AS m (name, kind, label, features, feature_columns, source, options, group_by, classes, owner, search_path, group_type) "
					   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
					   "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, label = excluded.label, "
					   "features = excluded.features, feature_columns = excluded.feature_columns, "
					   "source = excluded.source, options = excluded.options, group_by = excluded.group_by, "
					   "classes = excluded.classes, search_path = excluded.search_path, "
					   "group_type = excluded.group_type "
					   "WHERE pg_catalog.pg_has_role($10, m.owner, 'USAGE') RETURNING 1",
					   12, t1, v1, n1, SPI_OK_INSERT_RETURNING) != 1)
		ReportOwnedByAnother(run->model);
}

/*
 * The number of the next version of a model, after ModelUpsert.  The
 * upsert holds the model's row lock, so a concurrent run of the same model
 * has committed by now: its versions are seen by this statement's new
 * snapshot (READ COMMITTED), and the numbers do not collide.
 */
int
ModelNextVersion(const char *model)
{
	Datum		arg = CStringGetTextDatum(model);
	bool		isnull;

	CatalogExecute("SELECT coalesce(pg_catalog.max(version), 0) OPERATOR(pg_catalog.+) 1 "
				   "FROM streamml.model_versions WHERE model OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Inserts one row of streamml.model_versions: a group's part of version
 * "version" of the run's model, with the run's own columns (duration,
 * cutoff, features, penalties).
 */
void
ModelInsertVersion(TrainRun *run, int version, const ModelVersionRow *row)
{
	Oid			t2[26] = {TEXTOID, INT4OID, TEXTOID, FLOAT8ARRAYOID,
		FLOAT8ARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID,
		FLOAT8ARRAYOID, INT8OID, INT8OID, INT4OID, BOOLOID, JSONBOID,
		FLOAT8OID, TEXTOID, TEXTARRAYOID, FLOAT8OID, FLOAT8OID, TEXTOID,
	FLOAT8OID, TEXTARRAYOID, BYTEAOID, JSONBOID, TEXTOID, JSONBOID};
	Datum		v2[26];
	char		n2[26];
	char	   *encoding = EncodingToJson(run->enc, run->featurecols);
	const char *kind = run->family != FAMILY_GLM ? FamilyName(run) :
		run->kind == MODEL_LINEAR ? "linear" :
		run->kind == MODEL_LOGISTIC ? "logistic" : "multinomial";

	memset(n2, ' ', sizeof(n2));
	v2[0] = CStringGetTextDatum(run->model);
	v2[1] = Int32GetDatum(version);
	v2[2] = row->group_key ? CStringGetTextDatum(row->group_key) : (Datum) 0;
	n2[2] = row->group_key ? ' ' : 'n';
	v2[3] = row->intercepts;
	v2[4] = row->coefficients;
	v2[5] = row->std_errors;
	v2[6] = row->p_values;
	v2[7] = row->means;
	v2[8] = row->scales;
	v2[9] = Int64GetDatum(row->rows_used);
	v2[10] = Int64GetDatum(row->rows_skipped);
	v2[11] = Int32GetDatum(row->iterations);
	v2[12] = BoolGetDatum(row->converged);
	v2[13] = DirectFunctionCall1(jsonb_in, CStringGetDatum(row->metrics));
	v2[14] = Float8GetDatum(run->duration);
	v2[15] = run->cutoff ? CStringGetTextDatum(run->cutoff) : (Datum) 0;
	n2[15] = run->cutoff ? ' ' : 'n';
	v2[16] = FeatureNamesArray(run);
	v2[17] = Float8GetDatum(run->l2);
	v2[18] = Float8GetDatum(row->df);
	n2[18] = row->has_df ? ' ' : 'n';
	v2[19] = run->data_max ? CStringGetTextDatum(run->data_max) : (Datum) 0;
	n2[19] = run->data_max ? ' ' : 'n';
	v2[20] = Float8GetDatum(run->l1);
	v2[21] = row->aliased;
	n2[21] = row->aliased != (Datum) 0 ? ' ' : 'n';
	v2[22] = PointerGetDatum(row->model_data);
	n2[22] = row->model_data ? ' ' : 'n';
	v2[23] = row->importance ?
		DirectFunctionCall1(jsonb_in, CStringGetDatum(row->importance)) : (Datum) 0;
	n2[23] = row->importance ? ' ' : 'n';
	v2[24] = CStringGetTextDatum(kind);
	v2[25] = encoding ?
		DirectFunctionCall1(jsonb_in, CStringGetDatum(encoding)) : (Datum) 0;
	n2[25] = encoding ? ' ' : 'n';
	CatalogExecute("INSERT INTO streamml.model_versions (model, version, group_key, "
				   "intercepts, coefficients, std_errors, p_values, means, scales, "
				   "rows_used, rows_skipped, iterations, converged, metrics, duration, "
				   "data_cutoff, features, l2, df, data_max, l1, aliased, model_data, "
				   "importance, kind, encoding) "
				   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
				   "pg_catalog.make_interval(secs => $15), $16, $17, $18, $19, $20, $21, $22, "
				   "$23, $24, $25, $26)",
				   26, t2, v2, n2, SPI_OK_INSERT);
}
