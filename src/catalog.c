/*
 * catalog.c
 *		The one way pg_streamml writes its catalog tables.
 *
 * The catalog tables (streams, offsets, dead_letters, models,
 * model_versions, deployments, model_grants) grant users nothing but
 * SELECT, so that no user can write a row that another role's code will
 * later trust: a model's stored source query, a stream's target, an offset.
 * The extension's functions check what the calling user may do (own the
 * object, hold a privilege), then write through CatalogExecute, which runs
 * one fixed, parameterised statement as the bootstrap superuser with the
 * search_path pinned to pg_catalog, inside a security-restricted operation.
 * The user id change is local: it is undone at the end of the statement or
 * by the abort of the (sub)transaction.
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/shortest_dec.h"
#include "catalog/pg_authid.h"
#include "commands/trigger.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/resowner.h"
#include "utils/rls.h"

#include "pg_streamml.h"

/*
 * Runs one catalog statement (SPI must be connected) as the bootstrap
 * superuser, from its text or, when cache is given, from the plan kept
 * there (prepared from the text first if *cache is NULL); errors unless SPI
 * returns expect.  Returns SPI_processed.
 */
static uint64
CatalogRun(const char *sql, SPIPlanPtr *cache, int nargs, Oid *types,
		   Datum *values, const char *nulls, int expect)
{
	Oid			save_user;
	int			save_sec;
	int			save_nest;
	int			rc;

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	/* a superuser must not resolve names through the caller's path */
	save_nest = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	if (cache != NULL && *cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare catalog statement: %s",
				 SPI_result_code_string(SPI_result));
		*cache = plan;
	}
	/* reads in a parallel worker must not advance the command counter */
	if (cache != NULL)
		rc = SPI_execute_plan(*cache, values, nulls, IsInParallelMode(), 0);
	else
		rc = SPI_execute_with_args(sql, nargs, types, values, nulls,
								   IsInParallelMode(), 0);
	AtEOXact_GUC(true, save_nest);
	SetUserIdAndSecContext(save_user, save_sec);
	if (rc != expect)
		elog(ERROR, "catalog statement failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * Runs one catalog statement (SPI must be connected) as the bootstrap
 * superuser; errors unless SPI returns expect.  Returns SPI_processed.
 */
uint64
CatalogExecute(const char *sql, int nargs, Oid *types, Datum *values,
			   const char *nulls, int expect)
{
	return CatalogRun(sql, NULL, nargs, types, values, nulls, expect);
}

/*
 * CatalogExecute of a statement run per batch: prepared on first use, its
 * plan kept in *plan for the backend (sql, nargs and types the same at
 * every call with that plan).
 */
uint64
CatalogExecuteKept(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
				   Datum *values, const char *nulls, int expect)
{
	return CatalogRun(sql, plan, nargs, types, values, nulls, expect);
}

/*
 * Runs f(arg) in a subtransaction.  Returns NULL when it succeeded; when it
 * raised an error, rolls the subtransaction back and returns the error,
 * copied into memory context cxt (the caller decides: rethrow it with
 * ReThrowError, log it, or go on).  The caller's memory context and
 * resource owner are current again either way.
 */
ErrorData *
TrySubtransaction(void (*f) (void *), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile e = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		f(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		/* out of ErrorContext first: FlushErrorState resets it */
		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_END_TRY();
	return e;
}

/* A search_path with pg_catalog put first (unchanged when it is). */
static char *
PathCatalogFirst(const char *path)
{
	const char *p = path + strspn(path, " \t\n");

	if (*p == '\0')
		return "pg_catalog";
	if (strncmp(p, "pg_catalog", 10) == 0 &&
		(p[10] == ',' || p[10] == ' ' || p[10] == '\0'))
		return pstrdup(path);
	return psprintf("pg_catalog, %s", path);
}

/*
 * The session's search_path as a model stores it: without the leading
 * pg_catalog that CatalogFirstPath put first (pg_catalog is searched
 * first anyway when a path does not name it).
 */
char *
StoredSearchPath(void)
{
	const char *p = namespace_search_path + strspn(namespace_search_path, " \t\n");

	if (strncmp(p, "pg_catalog,", 11) == 0)
		return pstrdup(p + 11 + strspn(p + 11, " \t\n"));
	return pstrdup(namespace_search_path);
}

/*
 * Runs f(arg) as role owner inside a security-restricted operation, with
 * the search_path pinned to path (pg_catalog and pg_temp when NULL) and
 * the GUC changes f makes undone afterwards: how stored SQL (a model's
 * source, a stream's triggers, a feature table's or scorer's reads and
 * writes) runs as its owner, never as the caller, whoever the caller is (a
 * superuser, pg_cron, a monitor worker, another role inserting into the
 * source).  The caller's search_path must not apply: a role could put an
 * operator or function of its own ahead of the ones the owner's SQL means,
 * and it would run as the owner.  A model's source query keeps the path
 * its owner trained it under (models.search_path).
 */
void
RunAsOwnerWithPath(Oid owner, const char *path, void (*f) (void *), void *arg)
{
	Oid			save_user;
	int			save_sec;
	int			nest;

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	nest = NewGUCNestLevel();
	/*
	 * A stored path gets pg_catalog first, explicitly: the extension's own
	 * SQL around the owner's (its operators between built-in types) then
	 * finds pg_catalog's before any of a schema another role can write,
	 * even where the path listed pg_catalog after it.
	 */
	(void) set_config_option("search_path",
							 path == NULL ? "pg_catalog, pg_temp" : PathCatalogFirst(path),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	f(arg);
	AtEOXact_GUC(false, nest);
	SetUserIdAndSecContext(save_user, save_sec);
}

/*
 * Pins the settings that change how values print as text (floats'
 * digits, dates' order, intervals' style) to ones that print every value
 * exactly and unambiguously, until TextSettingsRestore(the returned
 * level).  Training keeps values as text (the holdout cutoff, the newest
 * order_by value, group keys) and reads them back, maybe in another
 * session: with extra_float_digits 0 a float8 cutoff printed rounded and
 * split the rows elsewhere than the run did.
 */
int
TextSettingsPin(void)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("extra_float_digits", "1", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("DateStyle", "ISO, MDY", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("IntervalStyle", "postgres", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

/*
 * Puts pg_catalog first in the session's search_path, at the GUC nest
 * level of the last TextSettingsPin (its TextSettingsRestore undoes it):
 * for a run in the caller's own session (training, a league, evaluate)
 * whose SQL wraps the caller's query source, so that the extension's
 * operators between built-in types are pg_catalog's even when the path
 * lists pg_catalog after a schema another role can write (as
 * RunAsOwnerWithPath does for a stored path).
 */
void
CatalogFirstPath(void)
{
	(void) set_config_option("search_path", PathCatalogFirst(namespace_search_path),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
}

/* Ends TextSettingsPin: the session's own settings again. */
void
TextSettingsRestore(int nest)
{
	AtEOXact_GUC(true, nest);
}

/*
 * The text of a float8 as float8::text gives it under TextSettingsPin
 * (the shortest text that reads back exactly; NaN, Infinity, -Infinity),
 * whatever the session's extra_float_digits: for text that is compared
 * with text printed elsewhere (class labels) or stored (JSON numbers).
 */
char *
Float8TextExact(double v)
{
	char	   *s = palloc(DOUBLE_SHORTEST_DECIMAL_LEN);

	double_to_shortest_decimal_buf(v, s);
	return s;
}

/*
 * Errors (with sqlstate) when row-level security of table source applies to
 * role owner, the owner of the feature table or scorer (kind) name: its
 * trigger reads the statement's transition table, which no policy
 * filters, so it would see the rows a policy hides from its owner.  (An
 * outcome tracker instead checks each row against the table:
 * outcomeinsert.c.)
 */
void
CheckSourceRowSecurity(Oid source, Oid owner, const char *kind,
					   const char *name, int sqlstate)
{
	if (check_enable_rls(source, owner, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("row-level security of table \"%s\" applies to the owner of %s \"%s\"",
						get_rel_name(source), kind, name),
				 errdetail("The %s reads every row inserted into the table, also those a policy hides from its owner.",
						   kind),
				 errhint("Let a role the policies do not apply to (the table's owner, or one with BYPASSRLS) own the %s.",
						 kind)));
}

/* A list of oids as an oid[] datum, for a catalog statement's ANY ($1). */
Datum
OidListArray(List *oids)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(list_length(oids), 1));
	int			k = 0;
	ListCell   *lc;

	foreach(lc, oids)
		d[k++] = ObjectIdGetDatum(lfirst_oid(lc));
	return PointerGetDatum(construct_array(d, k, OIDOID, sizeof(Oid), true,
										   TYPALIGN_INT));
}

/* RunAsOwnerWithPath with the search_path pinned to pg_catalog, pg_temp. */
void
RunAsOwner(Oid owner, void (*f) (void *), void *arg)
{
	RunAsOwnerWithPath(owner, NULL, f, arg);
}

PG_FUNCTION_INFO_V1(catalog_cache_invalidate);

/*
 * SQL streamml.catalog_cache_invalidate(): the statement trigger on the
 * catalog tables whose rows backends cache (feature_tables_catalog,
 * scorers_catalog, monitors_catalog).  A relcache invalidation of the catalog table reaches
 * every backend's relcache callback when the change commits (this
 * backend's at its next command), so none goes on with a definition that
 * changed.
 */
Datum
catalog_cache_invalidate(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("catalog_cache_invalidate must be called as a trigger")));
	CacheInvalidateRelcache(td->tg_relation);
	return PointerGetDatum(NULL);
}
