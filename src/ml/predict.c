/*
 * predict.c
 *		Serving: streamml.predict, predict_proba and predict_class, with a
 *		per-backend cache of the deployed versions.
 *
 * Scoring a row is a dot product; what costs is finding the model.  So the
 * deployed coefficients of a model (all its groups) are read once per backend
 * and user, through SPI with the caller's privileges (row-level security on
 * the catalog decides what a user may use), into a hash table; each call
 * site then keeps a pointer to its model in fn_extra and revalidates it with
 * one comparison of a generation counter, with no catalog access and no
 * palloc per row.
 *
 * Freshness: every change to the model catalog or to role memberships
 * bumps a shared generation counter when it commits (model_catalog.c).  The
 * first call of each statement (a top-level statement, counted by executor
 * hooks, or a new transaction or statement start time) compares it with the generation the cache
 * was built at and drops the cache when they differ, so a deployment (or a
 * revoked grant) is seen by the very next statement everywhere, even inside
 * an open transaction, and one statement scores all its rows with one
 * version.  Models are read with a snapshot taken after the counter, so a
 * reload can never keep rows older than the generation it is labelled with.
 *
 * NULL, NaN and infinite features make every serving function return NULL:
 * a number computed from them would be silently wrong.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "ml/categorical.h"
#include "ml/group_key.h"
#include "ml/ml.h"
#include "ml/predict_row.h"
#include "ml/tree_predict.h"
#include "pg_streamml.h"

/* A deployed model as served: coefficients on the original scale. */
typedef struct CachedModel
{
	char		kind;			/* 'g' logistic, 'm' multinomial, 'l' linear */
	int			p;
	int			blocks;
	int			nclasses;
	char	  **classes;
	bool		grouped;
	double	   *coef;			/* ungrouped: blocks × (p + 1) */
	TreeModel  *tree;			/* ungrouped tree model (gbt, forest, tree) */
	bool		trees;			/* a tree model: tree, not coef */
	HTAB	   *groups;			/* grouped: key → coefficients */
	char	  **columns;		/* feature columns, for the row forms */
	int			ncolumns;
	char	   *group_by;
	char		name[NAMEDATALEN];
	int			version;		/* the deployed version */
	char	  **features;		/* its feature names, p of them */
	Encoding   *enc;			/* categorical columns' encoding, or NULL */
} CachedModel;

typedef struct ModelCacheKey
{
	Oid			userid;
	int32		version;		/* a pinned version, 0: the deployed one */
	char		name[NAMEDATALEN];
} ModelCacheKey;

typedef struct ModelCacheEntry
{
	ModelCacheKey key;
	CachedModel *model;
} ModelCacheEntry;

/*
 * A group key of any length (group_key.c makes its text): the hash table of
 * a grouped model is keyed by this pair, hashed and compared by its bytes,
 * so that a lookup needs neither a copy nor a terminating NUL.
 */
typedef struct GroupKeyRef
{
	const char *data;
	int			len;
} GroupKeyRef;

typedef struct GroupEntry
{
	GroupKeyRef key;			/* data in the model cache's context */
	double	   *coef;
	TreeModel  *tree;
} GroupEntry;

/* What one call site remembers between rows. */
typedef struct PredictCallCache
{
	uint64		generation;
	Oid			userid;
	int			namelen;
	char		name[NAMEDATALEN];
	CachedModel *model;
	GroupKeyRef group;			/* the previous row's group, in the model */
	const double *coef;
	const TreeModel *tree;
	GroupKeyOut group_out;		/* the group argument's key text */
	RowReader  *row;			/* the row forms' reader */
	uint64		row_generation; /* of the model cache it was built for */
} PredictCallCache;

static MemoryContext ModelCacheContext = NULL;

/* dynahash support for GroupKeyRef keys */
static uint32
GroupKeyHash(const void *key, Size keysize)
{
	const GroupKeyRef *k = key;

	return hash_bytes((const unsigned char *) k->data, k->len);
}

static int
GroupKeyMatch(const void *key1, const void *key2, Size keysize)
{
	const GroupKeyRef *a = key1;
	const GroupKeyRef *b = key2;

	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0 ? 0 : 1;
}

/* Finds the entry of a group key in a grouped model, NULL when none. */
static GroupEntry *
GroupFind(CachedModel *m, const char *key, int len)
{
	GroupKeyRef k;

	k.data = key;
	k.len = len;
	return hash_search(m->groups, &k, HASH_FIND, NULL);
}

/* Adds a group to a grouped model, its key copied into the cache. */
static GroupEntry *
GroupEnter(CachedModel *m, const char *key)
{
	GroupKeyRef k;
	GroupEntry *e;
	bool		found;

	k.data = key;
	k.len = strlen(key);
	e = hash_search(m->groups, &k, HASH_ENTER, &found);
	if (!found)
		e->key.data = MemoryContextStrdup(ModelCacheContext, key);
	return e;
}

static HTAB *ModelCache = NULL;
static uint64 ModelCacheGeneration = 1;	/* bumped whenever the cache is dropped */
static uint64 SharedGenerationSeen = 0;
static TimestampTz ValidatedStatement = 0;
static LocalTransactionId ValidatedXact = InvalidLocalTransactionId;
static uint64 ValidatedSeq = 0;

/*
 * Statement boundaries: the executor hooks count the statements run at the
 * top level (not those nested in a function), so that the statements of
 * one multi-statement query string, which share a start time and a
 * transaction, are told apart.
 */
static uint64 StatementSeq = 0;
static int	ExecNestLevel = 0;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;

/* Counts a statement that starts at the top level. */
static void
PredictExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (ExecNestLevel == 0)
		StatementSeq++;
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/* Runs a plan one nesting level down. */
static void
PredictExecutorRun(QueryDesc *queryDesc, ScanDirection direction,
				   uint64 count, bool execute_once)
{
	ExecNestLevel++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		ExecNestLevel--;
	}
	PG_END_TRY();
}

/* Finishes a plan (its AFTER triggers) one nesting level down. */
static void
PredictExecutorFinish(QueryDesc *queryDesc)
{
	ExecNestLevel++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		ExecNestLevel--;
	}
	PG_END_TRY();
}
static bool LoadedInParallelMode = false;	/* with a possibly older snapshot */

/* Called from _PG_init: the shared generation counter. */
void
MlInit(void)
{
	ModelCatalogInit();
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = PredictExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = PredictExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = PredictExecutorFinish;
}

/*
 * Drops the cache when the catalog changed since it was built: checked
 * once per statement (and at once after this backend's own changes).
 */
static void
ModelCacheValidate(void)
{
	TimestampTz stmt = GetCurrentStatementStartTimestamp();
	LocalTransactionId lxid = MyProc->lxid;
	bool		own_change;
	uint64		generation;

	generation = ModelCatalogGeneration(&own_change);
	if (!own_change && stmt == ValidatedStatement && lxid == ValidatedXact &&
		StatementSeq == ValidatedSeq)
		return;
	ValidatedStatement = stmt;
	ValidatedXact = lxid;
	ValidatedSeq = StatementSeq;
	if (!own_change && generation == SharedGenerationSeen &&
		!LoadedInParallelMode)
		return;
	LoadedInParallelMode = false;
	SharedGenerationSeen = generation;
	ModelCacheGeneration++;
	if (ModelCacheContext != NULL)
		MemoryContextReset(ModelCacheContext);
	ModelCache = NULL;
}

/*
 * The deployed version and the feature names of the first row of
 * ModelLoad's result, for C callers (ServedModelGet).
 */
static void
ModelLoadServedColumns(CachedModel *m)
{
	HeapTuple	tup = SPI_tuptable->vals[0];
	bool		isnull;
	Datum		d;

	m->version = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 5,
											 &isnull));
	d = SPI_getbinval(tup, SPI_tuptable->tupdesc, 12, &isnull);
	m->features = palloc0(sizeof(char *) * Max(m->p, 1));
	if (!isnull)
	{
		Datum	   *elems;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false,
						  TYPALIGN_INT, &elems, NULL, &n);
		for (int j = 0; j < n && j < m->p; j++)
			m->features[j] = TextDatumGetCString(elems[j]);
	}
}

/*
 * Reads the deployed version of a model (or version pinned, when above 0:
 * a scorer's challenger) into the cache's memory.
 */
static CachedModel *
ModelLoad(const char *name, int32 pinned)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int32GetDatum(pinned)};
	char		nulls[2] = {' ', pinned > 0 ? ' ' : 'n'};
	CachedModel *m;
	MemoryContext old;
	int			ret;
	bool		isnull;
	char	   *kind;

	SPIPlanPtr	plan;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare("SELECT m.kind, m.classes, pg_catalog.cardinality(v.features), m.group_by IS NOT NULL, "
					   "COALESCE($2, m.deployed_version), v.group_key, v.intercepts, v.coefficients, "
					   "v.model_data, m.feature_columns, m.group_by, v.features, v.encoding "
					   "FROM streamml.models m LEFT JOIN streamml.model_versions v "
					   "ON v.model OPERATOR(pg_catalog.=) m.name "
					   "AND v.version OPERATOR(pg_catalog.=) COALESCE($2, m.deployed_version) "
					   "WHERE m.name OPERATOR(pg_catalog.=) $1",
					   2, types);
	if (plan == NULL)
		elog(ERROR, "could not plan the read of model \"%s\"", name);
	/*
	 * Newer than the generation read before (see ModelCacheValidate); a
	 * parallel query cannot take one and reads with the statement's, so
	 * what it loads is checked again at the next statement.
	 */
	if (IsInParallelMode())
		LoadedInParallelMode = true;
	ret = SPI_execute_snapshot(plan, values, nulls,
							   IsInParallelMode() ? GetActiveSnapshot() : GetLatestSnapshot(),
							   InvalidSnapshot, true, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read model \"%s\"", name);
	ModelCheckDeployedRead(name, 5);
	if (pinned > 0 && heap_attisnull(SPI_tuptable->vals[0], 7, SPI_tuptable->tupdesc))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" has no version %d", name, pinned)));

	old = MemoryContextSwitchTo(ModelCacheContext);
	m = palloc0(sizeof(CachedModel));
	strlcpy(m->name, name, NAMEDATALEN);
	kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	ModelResultClasses(2, &m->classes, &m->nclasses);
	/* tree and league models: the task follows the classes */
	m->kind = strcmp(kind, "linear") == 0 ? 'l' :
		strcmp(kind, "logistic") == 0 ? 'g' :
		strcmp(kind, "multinomial") == 0 ? 'm' :
		m->nclasses == 0 ? 'l' : m->nclasses == 2 ? 'g' : 'm';
	m->group_by = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 11);
	{
		Datum		fc = SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 10, &isnull);
		Datum	   *elems;

		deconstruct_array(DatumGetArrayTypeP(fc), TEXTOID, -1, false,
						  TYPALIGN_INT, &elems, NULL, &m->ncolumns);
		m->columns = palloc(sizeof(char *) * Max(m->ncolumns, 1));
		for (int i = 0; i < m->ncolumns; i++)
			m->columns[i] = TextDatumGetCString(elems[i]);
	}
	m->p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 3, &isnull));
	m->grouped = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 4, &isnull));
	ModelLoadServedColumns(m);
	{
		Datum		enc = SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 13, &isnull);

		if (!isnull)
			m->enc = EncodingFromJsonb(DatumGetJsonbP(enc), m->columns,
									   m->ncolumns);
		if (m->enc != NULL && m->enc->p != m->p)
			elog(ERROR, "model \"%s\" has an encoding of %d features for %d",
				 name, m->enc->p, m->p);
	}
	m->blocks = (m->kind == 'm') ? m->nclasses : 1;
	if (m->grouped)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(GroupKeyRef);
		ctl.entrysize = sizeof(GroupEntry);
		ctl.hash = GroupKeyHash;
		ctl.match = GroupKeyMatch;
		ctl.hcxt = ModelCacheContext;
		m->groups = hash_create("pg_streamml model groups",
								Max(SPI_processed, 16), &ctl,
								HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
								HASH_CONTEXT);
	}
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		Datum		ic = SPI_getbinval(tup, SPI_tuptable->tupdesc, 7, &isnull);
		Datum		cf;
		double	   *coef;
		int			ni;
		int			nc;
		double	   *di;
		double	   *dc;

		if (isnull)
			continue;
		if (!heap_attisnull(tup, 9, SPI_tuptable->tupdesc))
		{
			/* a tree model: its outputs tell the task */
			Datum		md = SPI_getbinval(tup, SPI_tuptable->tupdesc, 9, &isnull);
			bytea	   *bytes;
			TreeModel  *tree;

			m->trees = true;
			bytes = DatumGetByteaPP(md);
			tree = TreeModelLoad(VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes));
			m->kind = TreeModelTask(tree);
			m->blocks = TreeModelOutputs(tree);
			if (TreeModelFeatures(tree) > m->p)
				elog(ERROR, "model \"%s\" reads more features than it has", name);
			if (m->grouped)
			{
				char	   *key = SPI_getvalue(tup, SPI_tuptable->tupdesc, 6);
				GroupEntry *e;

				if (key == NULL)
					continue;
				e = GroupEnter(m, key);
				e->coef = NULL;
				e->tree = tree;
			}
			else
				m->tree = tree;
			continue;
		}
		cf = SPI_getbinval(tup, SPI_tuptable->tupdesc, 8, &isnull);
		di = Float8ArrayData(DatumGetArrayTypeP(ic), &ni, "intercepts");
		dc = Float8ArrayData(DatumGetArrayTypeP(cf), &nc, "coefficients");
		if (ni != m->blocks || nc != m->blocks * m->p)
			elog(ERROR, "model \"%s\" has coefficients of the wrong size", name);
		coef = palloc(sizeof(double) * m->blocks * (m->p + 1));
		for (int b = 0; b < m->blocks; b++)
		{
			coef[b * (m->p + 1)] = di[b];
			for (int j = 0; j < m->p; j++)
				coef[b * (m->p + 1) + j + 1] = dc[b * m->p + j];
		}
		if (m->grouped)
		{
			char	   *key = SPI_getvalue(tup, SPI_tuptable->tupdesc, 6);
			GroupEntry *e;

			if (key == NULL)
				continue;
			e = GroupEnter(m, key);
			e->coef = coef;
			e->tree = NULL;
		}
		else
			m->coef = coef;
	}
	MemoryContextSwitchTo(old);
	SPI_finish();
	return m;
}

/*
 * Finds (or loads) the deployed model of this name for the current user;
 * pinned (above 0) asks for that version instead.
 */
static CachedModel *
ModelLookupVersion(const char *name, int len, int32 pinned)
{
	ModelCacheKey key;
	ModelCacheEntry *e;
	bool		found;

	if (len >= NAMEDATALEN)
		ModelDoesNotExist(psprintf("%.*s", len, name), NULL);
	if (ModelCacheContext == NULL)
		ModelCacheContext = AllocSetContextCreate(TopMemoryContext,
												  "pg_streamml model cache",
												  ALLOCSET_DEFAULT_SIZES);
	if (ModelCache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(ModelCacheKey);
		ctl.entrysize = sizeof(ModelCacheEntry);
		ctl.hcxt = ModelCacheContext;
		ModelCache = hash_create("pg_streamml model cache", 16, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	key.userid = GetUserId();
	key.version = Max(pinned, 0);
	memcpy(key.name, name, len);
	e = hash_search(ModelCache, &key, HASH_FIND, &found);
	if (found)
		return e->model;
	{
		CachedModel *m = ModelLoad(key.name, key.version);

		e = hash_search(ModelCache, &key, HASH_ENTER, &found);
		e->model = m;
		return m;
	}
}

/* Finds (or loads) the deployed model of this name for the current user. */
static CachedModel *
ModelLookup(const char *name, int len)
{
	return ModelLookupVersion(name, len, 0);
}

/* Returns the call site's cache, creating it on first use. */
static PredictCallCache *
CallCache(FunctionCallInfo fcinfo)
{
	if (fcinfo->flinfo->fn_extra == NULL)
		fcinfo->flinfo->fn_extra =
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt,
								   sizeof(PredictCallCache));
	return (PredictCallCache *) fcinfo->flinfo->fn_extra;
}

static const double *ResolveParams(FunctionCallInfo fcinfo, bool grouped,
								   const char *gkey, int gkeylen,
								   CachedModel **model, const TreeModel **tree);

/*
 * Resolves the coefficients (or the tree model, *tree) for a call: model
 * name in argument 0, group key in argument 1 when grouped is true.
 */
static const double *
ResolveCoefficients(FunctionCallInfo fcinfo, bool grouped, CachedModel **model,
					const TreeModel **tree)
{
	PredictCallCache *cc = CallCache(fcinfo);
	const char *gkey = NULL;
	int			gkeylen = 0;

	ModelCacheValidate();

	if (grouped)
	{
		Oid			type = get_fn_expr_argtype(fcinfo->flinfo, 1);

		/* an unknown literal is text */
		if (type == UNKNOWNOID)
			type = TEXTOID;
		if (cc->group_out.type != type)
			GroupKeyOutInit(&cc->group_out, type, "group_key",
							fcinfo->flinfo->fn_mcxt);
		gkey = GroupKeyText(&cc->group_out, PG_GETARG_DATUM(1), &gkeylen);
	}
	return ResolveParams(fcinfo, grouped, gkey, gkeylen, model, tree);
}

/*
 * The model of a call (name in argument 0), before its group is known:
 * the row forms read the group key from the row by the model's group_by.
 */
static CachedModel *
ResolveModel(FunctionCallInfo fcinfo)
{
	PredictCallCache *cc = CallCache(fcinfo);
	text	   *name = PG_GETARG_TEXT_PP(0);
	int			namelen = VARSIZE_ANY_EXHDR(name);

	ModelCacheValidate();
	if (cc->model != NULL && cc->generation == ModelCacheGeneration &&
		cc->userid == GetUserId() && cc->namelen == namelen &&
		memcmp(cc->name, VARDATA_ANY(name), namelen) == 0)
		return cc->model;
	return ModelLookup(VARDATA_ANY(name), namelen);
}

/*
 * Resolves the coefficients or tree model of a group (gkey, when grouped)
 * of the model named in argument 0.  Fast path: same model, same group,
 * same generation as the previous row.
 */
static const double *
ResolveParams(FunctionCallInfo fcinfo, bool grouped, const char *gkey,
			  int gkeylen, CachedModel **model, const TreeModel **tree)
{
	PredictCallCache *cc = CallCache(fcinfo);
	text	   *name = PG_GETARG_TEXT_PP(0);
	int			namelen = VARSIZE_ANY_EXHDR(name);
	Oid			userid = GetUserId();

	if (cc->model != NULL && cc->generation == ModelCacheGeneration &&
		cc->userid == userid && cc->namelen == namelen &&
		memcmp(cc->name, VARDATA_ANY(name), namelen) == 0 &&
		(!grouped || (cc->group.len == gkeylen &&
					  memcmp(cc->group.data, gkey, gkeylen) == 0)))
	{
		*model = cc->model;
		*tree = cc->tree;
		return cc->coef;
	}

	/* slow path: look the model (and group) up */
	{
		uint64		generation = ModelCacheGeneration;
		CachedModel *m;
		const double *coef;
		const TreeModel *t;

		if (cc->model == NULL || cc->generation != generation ||
			cc->userid != userid || cc->namelen != namelen ||
			memcmp(cc->name, VARDATA_ANY(name), namelen) != 0)
		{
			cc->model = NULL;
			m = ModelLookup(VARDATA_ANY(name), namelen);
		}
		else
			m = cc->model;

		if (m->grouped && !grouped)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("model \"%s\" has one version per group", m->name),
					 errhint("Pass the group key: streamml.predict(model, group_key, features).")));
		if (!m->grouped && grouped)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("model \"%s\" is not grouped", m->name),
					 errhint("Call it without a group key.")));
		if (grouped)
		{
			GroupEntry *e = GroupFind(m, gkey, gkeylen);

			if (e == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("model \"%s\" has no group \"%.*s\"", m->name,
								Min(gkeylen, 200), gkey),
						 gkeylen > 200 ? errdetail("The key is %d bytes long; the message shows its first 200.", gkeylen) : 0));
			coef = e->coef;
			t = e->tree;
			/* the entry's own copy: valid as long as the model is */
			cc->group = e->key;
		}
		else
		{
			coef = m->coef;
			t = m->tree;
		}
		if (coef == NULL && t == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("model \"%s\" has no deployed version", m->name)));

		cc->generation = generation;
		cc->userid = userid;
		cc->namelen = namelen;
		memcpy(cc->name, VARDATA_ANY(name), namelen);
		cc->model = m;
		cc->coef = coef;
		cc->tree = t;
		*model = m;
		*tree = t;
		return coef;
	}
}

/*
 * Reads the feature array argument; returns NULL (the prediction is then
 * NULL) when it holds a NULL, a NaN or an infinity.
 */
static const double *
FeatureArgument(FunctionCallInfo fcinfo, int argno, CachedModel *m)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(argno);
	const double *x;
	int			n;

	if (ARR_ELEMTYPE(a) != FLOAT8OID || ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("features must be a one-dimensional float8 array")));
	n = (ARR_NDIM(a) == 0) ? 0 : ARR_DIMS(a)[0];
	if (n != m->p)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model \"%s\" expects %d features, got %d", m->name,
						m->p, n)));
	if (m->trees)
		return FeaturesWithMissing(a, n);
	if (ARR_HASNULL(a) && array_contains_nulls(a))
		return NULL;
	x = (const double *) ARR_DATA_PTR(a);
	for (int j = 0; j < n; j++)
		if (!isfinite(x[j]))
			return NULL;
	return x;
}

/* b0 + Σ bj xj */
static inline double
LinearPredictor(const double *coef, const double *x, int p)
{
	double		eta = coef[0];

	for (int j = 0; j < p; j++)
		eta += coef[j + 1] * x[j];
	/*
	 * Finite features whose sum overflows: an error, as float8 arithmetic
	 * raises, never an infinite or NaN prediction.  A NaN feature is a
	 * missing value (the row forms of a league's linear group): NaN, which
	 * the callers turn into NULL.
	 */
	if (unlikely(!isfinite(eta)))
	{
		for (int j = 0; j < p; j++)
			if (isnan(x[j]))
				return NAN;
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value out of range: overflow"),
				 errdetail("The linear predictor of these features is beyond the range of float8.")));
	}
	return eta;
}

/*
 * The one scoring function: the outputs of a row (x, p values) by the
 * model of its group, a small switch on the kind of model.  out[0] is the
 * value of a regression or the probability of the positive class;
 * out[0..K-1] the class probabilities of a multiclass model.
 */
static void
ModelScore(CachedModel *m, const double *coef, const TreeModel *tree,
		   const double *x, double *out)
{
	if (tree != NULL)
	{
		/* NaN outputs for a value the tree cannot take */
		(void) TreeModelPredict(tree, x, out);
		return;
	}
	switch (m->kind)
	{
		case 'l':
			out[0] = LinearPredictor(coef, x, m->p);
			break;
		case 'g':
			out[0] = Sigmoid(LinearPredictor(coef, x, m->p));
			break;
		default:
			{
				double		top = -INFINITY;
				double		sum = 0.0;

				for (int c = 0; c < m->blocks; c++)
				{
					out[c] = LinearPredictor(coef + c * (m->p + 1), x, m->p);
					top = Max(top, out[c]);
				}
				for (int c = 0; c < m->blocks; c++)
				{
					out[c] = exp(out[c] - top);
					sum += out[c];
				}
				for (int c = 0; c < m->blocks; c++)
					out[c] /= sum;
			}
			break;
	}
}

/*
 * Errors when what ('v' predict, 'p' predict_proba, 'c' predict_class)
 * does not fit the model's kind, before any row is looked at: a row with
 * a NULL feature must not make a wrong call look right.
 */
static void
CheckOutputKind(CachedModel *m, char what)
{
	if (what == 'v' && m->kind == 'm')
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model \"%s\" has more than two classes", m->name),
				 errhint("Use streamml.predict_class.")));
	if (what == 'p' && m->kind != 'g')
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model \"%s\" is not a binary classifier", m->name),
				 errhint(m->kind == 'l' ? "Use streamml.predict for a regression." :
						 "Use streamml.predict_class for a multinomial model.")));
	if (what == 'c' && m->kind == 'l')
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model \"%s\" is a regression", m->name),
				 errhint("Use streamml.predict.")));
}

/*
 * The result of predict ('v': value of a regression, 0/1 of a binary
 * model), predict_proba ('p': probability of the positive class) or
 * predict_class ('c': the label of the most probable class) for one row.
 */
static Datum
PredictOutput(FunctionCallInfo fcinfo, char what, CachedModel *m,
			  const double *coef, const TreeModel *tree, const double *x)
{
	double		buf[64];
	double	   *out;
	int			c = 0;

	CheckOutputKind(m, what);
	if (x == NULL)
		PG_RETURN_NULL();
	out = m->blocks <= 64 ? buf : palloc(sizeof(double) * m->blocks);
	ModelScore(m, coef, tree, x, out);
	/* a linear group of a league model given a missing value */
	if (isnan(out[0]))
		PG_RETURN_NULL();
	if (what == 'p' || (what == 'v' && m->kind == 'l'))
		PG_RETURN_FLOAT8(out[0]);
	if (m->kind == 'g')
		c = out[0] >= 0.5 ? 1 : 0;
	else
		for (int k = 1; k < m->blocks; k++)
			if (out[k] > out[c])
				c = k;
	if (what == 'v')
		PG_RETURN_FLOAT8((double) c);
	PG_RETURN_TEXT_P(cstring_to_text(m->classes[c]));
}

/* Shared body of the float8[] forms of predict, predict_proba, predict_class. */
static Datum
PredictArray(FunctionCallInfo fcinfo, bool grouped, char what)
{
	CachedModel *m;
	const TreeModel *tree;
	const double *coef = ResolveCoefficients(fcinfo, grouped, &m, &tree);
	const double *x = FeatureArgument(fcinfo, grouped ? 2 : 1, m);

	return PredictOutput(fcinfo, what, m, coef, tree, x);
}

/* Shared body of predict: value of a regression, 0/1 of a binary model. */
static Datum
PredictValue(FunctionCallInfo fcinfo, bool grouped)
{
	return PredictArray(fcinfo, grouped, 'v');
}

/* Shared body of predict_proba: probability of the positive class. */
static Datum
PredictProba(FunctionCallInfo fcinfo, bool grouped)
{
	return PredictArray(fcinfo, grouped, 'p');
}

/* Shared body of predict_class: the label of the most probable class. */
static Datum
PredictClass(FunctionCallInfo fcinfo, bool grouped)
{
	return PredictArray(fcinfo, grouped, 'c');
}

/*
 * Shared body of the row forms: the model's feature columns (and group
 * column) read by name from the composite row in argument 1, or, for the
 * columns forms (rowtype valid), from the columns of a row of that type
 * passed from argument PREDICT_FIRST_COLUMN on.
 */
static Datum
PredictRowOrColumns(FunctionCallInfo fcinfo, char what, Oid rowtype)
{
	PredictCallCache *cc = CallCache(fcinfo);
	CachedModel *m = ResolveModel(fcinfo);
	const TreeModel *tree;
	const double *coef;
	double	   *x;
	const char *gkey = NULL;
	int			gkeylen = 0;
	bool		ok;

	if (m->enc == NULL && m->ncolumns != m->p && !(m->ncolumns == 1 && m->p > 1))
		elog(ERROR, "model \"%s\" has %d feature columns for %d features",
			 m->name, m->ncolumns, m->p);

	/*
	 * The reader knows its model's columns by their address; a model cache
	 * emptied since (a retrain, a deploy) may have put another version's
	 * columns at the same one: build it again.
	 */
	if (cc->row_generation != ModelCacheGeneration)
	{
		cc->row = NULL;
		cc->row_generation = ModelCacheGeneration;
	}
	if (OidIsValid(rowtype))
		ok = RowReadArgs(&cc->row, fcinfo->flinfo->fn_mcxt, fcinfo, rowtype,
						 PREDICT_FIRST_COLUMN, m->name, m->columns,
						 m->ncolumns, m->p, m->trees,
						 m->grouped ? m->group_by : NULL, m->enc, &x, &gkey,
						 &gkeylen);
	else
		ok = RowRead(&cc->row, fcinfo->flinfo->fn_mcxt,
					 PG_GETARG_HEAPTUPLEHEADER(1), m->name, m->columns,
					 m->ncolumns, m->p, m->trees,
					 m->grouped ? m->group_by : NULL, m->enc, &x, &gkey,
					 &gkeylen);
	if (m->grouped && gkey == NULL)
	{
		CheckOutputKind(m, what);
		PG_RETURN_NULL();
	}
	coef = ResolveParams(fcinfo, m->grouped, gkey, gkeylen, &m, &tree);
	return PredictOutput(fcinfo, what, m, coef, tree, ok ? x : NULL);
}

PG_FUNCTION_INFO_V1(predict_row);

/* SQL streamml.predict(model, row). */
Datum
predict_row(PG_FUNCTION_ARGS)
{
	return PredictRowOrColumns(fcinfo, 'v', InvalidOid);
}

PG_FUNCTION_INFO_V1(predict_proba_row);

/* SQL streamml.predict_proba(model, row). */
Datum
predict_proba_row(PG_FUNCTION_ARGS)
{
	return PredictRowOrColumns(fcinfo, 'p', InvalidOid);
}

PG_FUNCTION_INFO_V1(predict_class_row);

/* SQL streamml.predict_class(model, row). */
Datum
predict_class_row(PG_FUNCTION_ARGS)
{
	return PredictRowOrColumns(fcinfo, 'c', InvalidOid);
}

/*
 * Shared body of the columns forms, which the planner puts in place of a
 * row form over a table's whole row (predict_support.c): model, row type,
 * the row's tableoid, then the row's columns.  Not strict, as the columns
 * may be NULL: the row form's strictness by hand, where a NULL tableoid is
 * a NULL row (the nullable side of an outer join).
 */
static Datum
PredictColumns(FunctionCallInfo fcinfo, char what)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	/* InvalidOid means the row form to PredictRowOrColumns */
	if (!OidIsValid(PG_GETARG_OID(1)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("row_type must be a row type"),
				 errhint("Call the row form: streamml.predict(model, row).")));
	return PredictRowOrColumns(fcinfo, what, PG_GETARG_OID(1));
}

PG_FUNCTION_INFO_V1(predict_columns);

/* SQL streamml.predict_columns(model, row_type, row_table, columns). */
Datum
predict_columns(PG_FUNCTION_ARGS)
{
	return PredictColumns(fcinfo, 'v');
}

PG_FUNCTION_INFO_V1(predict_proba_columns);

/* SQL streamml.predict_proba_columns(model, row_type, row_table, columns). */
Datum
predict_proba_columns(PG_FUNCTION_ARGS)
{
	return PredictColumns(fcinfo, 'p');
}

PG_FUNCTION_INFO_V1(predict_class_columns);

/* SQL streamml.predict_class_columns(model, row_type, row_table, columns). */
Datum
predict_class_columns(PG_FUNCTION_ARGS)
{
	return PredictColumns(fcinfo, 'c');
}

PG_FUNCTION_INFO_V1(predict);

/* SQL streamml.predict(model, features). */
Datum
predict(PG_FUNCTION_ARGS)
{
	return PredictValue(fcinfo, false);
}

PG_FUNCTION_INFO_V1(predict_group);

/* SQL streamml.predict(model, group_key, features). */
Datum
predict_group(PG_FUNCTION_ARGS)
{
	return PredictValue(fcinfo, true);
}

PG_FUNCTION_INFO_V1(predict_proba);

/* SQL streamml.predict_proba(model, features). */
Datum
predict_proba(PG_FUNCTION_ARGS)
{
	return PredictProba(fcinfo, false);
}

PG_FUNCTION_INFO_V1(predict_proba_group);

/* SQL streamml.predict_proba(model, group_key, features). */
Datum
predict_proba_group(PG_FUNCTION_ARGS)
{
	return PredictProba(fcinfo, true);
}

PG_FUNCTION_INFO_V1(predict_class);

/* SQL streamml.predict_class(model, features). */
Datum
predict_class(PG_FUNCTION_ARGS)
{
	return PredictClass(fcinfo, false);
}

PG_FUNCTION_INFO_V1(predict_class_group);

/* SQL streamml.predict_class(model, group_key, features). */
Datum
predict_class_group(PG_FUNCTION_ARGS)
{
	return PredictClass(fcinfo, true);
}

/* Parameters of streamml.ml_score decoded once per call site. */
typedef struct ScoreCache
{
	ArrayType  *params;			/* the array these were decoded from */
	ArrayType  *keys;			/* and the group keys */
	int			len;
	int			nrows;
	double	   *data;
	HTAB	   *rows;			/* key → row */
} ScoreCache;

typedef struct ScoreRowEntry
{
	GroupKeyRef key;			/* data in the call site's context */
	int			row;
} ScoreRowEntry;

/* Finds the coefficient row of a group for streamml.ml_score*. */
static const double *
ScoreCoefficients(FunctionCallInfo fcinfo, int *len)
{
	ScoreCache *sc = (ScoreCache *) fcinfo->flinfo->fn_extra;
	text	   *key = PG_GETARG_TEXT_PP(2);
	GroupKeyRef k;
	ScoreRowEntry *e;

	/*
	 * Parameters that are no constant or query parameter may change from
	 * row to row: decode them again when they differ from the cached ones.
	 */
	if (sc != NULL && !(get_fn_expr_arg_stable(fcinfo->flinfo, 0) &&
						get_fn_expr_arg_stable(fcinfo->flinfo, 1)))
	{
		ArrayType  *params = PG_GETARG_ARRAYTYPE_P(0);
		ArrayType  *keys = PG_GETARG_ARRAYTYPE_P(1);

		if (VARSIZE(params) != VARSIZE(sc->params) ||
			memcmp(params, sc->params, VARSIZE(params)) != 0 ||
			VARSIZE(keys) != VARSIZE(sc->keys) ||
			memcmp(keys, sc->keys, VARSIZE(keys)) != 0)
		{
			hash_destroy(sc->rows);
			pfree(sc->params);
			pfree(sc->keys);
			pfree(sc);
			sc = NULL;
			fcinfo->flinfo->fn_extra = NULL;
		}
	}
	if (sc == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		ArrayType  *params = PG_GETARG_ARRAYTYPE_P_COPY(0);
		ArrayType  *keys = PG_GETARG_ARRAYTYPE_P_COPY(1);
		Datum	   *kd;
		int			nkeys;
		HASHCTL		ctl;

		sc = palloc0(sizeof(ScoreCache));
		if (ARR_NDIM(params) != 2 || ARR_HASNULL(params) ||
			ARR_ELEMTYPE(params) != FLOAT8OID)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("ml_score parameters must be a two-dimensional float8 array")));
		sc->params = params;
		sc->keys = keys;
		sc->nrows = ARR_DIMS(params)[0];
		sc->len = ARR_DIMS(params)[1];
		sc->data = (double *) ARR_DATA_PTR(params);
		deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &kd, NULL,
						  &nkeys);
		ctl.keysize = sizeof(GroupKeyRef);
		ctl.entrysize = sizeof(ScoreRowEntry);
		ctl.hash = GroupKeyHash;
		ctl.match = GroupKeyMatch;
		ctl.hcxt = fcinfo->flinfo->fn_mcxt;
		sc->rows = hash_create("pg_streamml ml_score", Max(nkeys, 16), &ctl,
							   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
							   HASH_CONTEXT);
		for (int i = 0; i < nkeys && i < sc->nrows; i++)
		{
			/* the array lives in fn_mcxt: its elements can be the keys */
			text	   *kt = DatumGetTextPP(kd[i]);

			k.data = VARDATA_ANY(kt);
			k.len = VARSIZE_ANY_EXHDR(kt);
			e = hash_search(sc->rows, &k, HASH_ENTER, NULL);
			e->row = i;
		}
		fcinfo->flinfo->fn_extra = sc;
		MemoryContextSwitchTo(old);
	}
	*len = sc->len;
	k.data = VARDATA_ANY(key);
	k.len = VARSIZE_ANY_EXHDR(key);
	e = hash_search(sc->rows, &k, HASH_FIND, NULL);
	return e ? sc->data + e->row * sc->len : NULL;
}

/* Reads the features of ml_score and checks their count. */
static const double *
ScoreFeatures(FunctionCallInfo fcinfo, int p)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(3);
	int			n;

	if (ARR_ELEMTYPE(a) != FLOAT8OID || ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("features must be a one-dimensional float8 array")));
	n = (ARR_NDIM(a) == 0) ? 0 : ARR_DIMS(a)[0];
	if (n != p)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expected %d features, got %d", p, n)));
	if (ARR_HASNULL(a) && array_contains_nulls(a))
		return NULL;
	for (int i = 0; i < n; i++)
		if (!isfinite(((double *) ARR_DATA_PTR(a))[i]))
			return NULL;
	return (const double *) ARR_DATA_PTR(a);
}

PG_FUNCTION_INFO_V1(ml_score);

/*
 * SQL streamml.ml_score(params, group_keys, group_key, features, kind):
 * the prediction of explicit coefficients (one row [b0, b1..bp] per group),
 * 'linear' or 'logistic'.  Used by training on the holdout.
 */
Datum
ml_score(PG_FUNCTION_ARGS)
{
	int			len;
	const double *coef = ScoreCoefficients(fcinfo, &len);
	const double *x;
	double		eta;

	if (coef == NULL)
		PG_RETURN_NULL();
	x = ScoreFeatures(fcinfo, len - 1);
	if (x == NULL)
		PG_RETURN_NULL();
	eta = LinearPredictor(coef, x, len - 1);
	if (strcmp(text_to_cstring(PG_GETARG_TEXT_PP(4)), "logistic") == 0)
		eta = Sigmoid(eta);
	PG_RETURN_FLOAT8(eta);
}

PG_FUNCTION_INFO_V1(ml_score_classes);

/*
 * SQL streamml.ml_score_classes(params, group_keys, group_key, features):
 * the class probabilities (softmax) of explicit multinomial coefficients,
 * K blocks of [b0, b1..bp] per group row; NULL when a linear predictor is
 * beyond float8 (its softmax would be NaN).
 */
Datum
ml_score_classes(PG_FUNCTION_ARGS)
{
	int			len;
	const double *coef = ScoreCoefficients(fcinfo, &len);
	const double *x;
	int			p;
	int			k;
	double	   *pr;
	double		maxeta = -INFINITY;
	double		sum = 0.0;

	if (coef == NULL)
		PG_RETURN_NULL();
	/* len = K (p + 1): the feature count tells p */
	{
		ArrayType  *a = PG_GETARG_ARRAYTYPE_P(3);

		p = (ARR_NDIM(a) == 0) ? 0 : ARR_DIMS(a)[0];
	}
	if (len % (p + 1) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parameters do not match %d features", p)));
	x = ScoreFeatures(fcinfo, p);
	if (x == NULL)
		PG_RETURN_NULL();
	k = len / (p + 1);
	pr = palloc(sizeof(double) * k);
	for (int c = 0; c < k; c++)
	{
		pr[c] = LinearPredictor(coef + c * (p + 1), x, p);
		maxeta = Max(maxeta, pr[c]);
	}
	/* a linear predictor beyond float8 (huge features) scores no class */
	if (!isfinite(maxeta))
		PG_RETURN_NULL();
	for (int c = 0; c < k; c++)
	{
		pr[c] = exp(pr[c] - maxeta);
		sum += pr[c];
	}
	for (int c = 0; c < k; c++)
		pr[c] /= sum;
	PG_RETURN_ARRAYTYPE_P(Float8ArrayBuild(pr, k));
}

/* ---- serving from C (the scorer, src/scoring) ---- */

/*
 * The deployed model of a name as the current user may use it, validated
 * for this statement (a deployment or rollback committed since the last
 * statement is seen here), with what a caller needs to score rows itself:
 * see ServedModelInfo in ml.h.  The model stays valid until the next
 * statement; errors as streamml.predict does (unknown model, no deployed
 * version).
 */
CachedModel *
ServedModelGet(const char *name, ServedModelInfo *info)
{
	return ServedModelGetVersion(name, 0, info);
}

/*
 * As ServedModelGet, of a given version of the model (above 0; 0: the
 * deployed one), deployed or not: a scorer's challenger that is a version.
 * Errors when the model has no such version.
 */
CachedModel *
ServedModelGetVersion(const char *name, int32 version, ServedModelInfo *info)
{
	CachedModel *m;

	ModelCacheValidate();
	m = ModelLookupVersion(name, strlen(name), version);
	if (!m->grouped && m->coef == NULL && m->tree == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no deployed version", m->name)));
	info->kind = m->kind;
	info->version = m->version;
	info->nfeatures = m->p;
	info->features = m->features;
	info->group_by = m->grouped ? m->group_by : NULL;
	info->nclasses = m->nclasses;
	info->classes = m->classes;
	info->encoding = m->enc;
	info->ncolumns = m->ncolumns;
	info->columns = m->columns;
	info->trees = m->trees;
	return m;
}

/*
 * The parameters of one group of a served model (of the model itself when
 * it is not grouped), or NULL when the deployed version has no such group.
 */
const void *
ServedModelParams(CachedModel *m, const char *group_key, int len)
{
	if (!m->grouped)
		return m;
	return GroupFind(m, group_key, len);
}

/*
 * Scores one feature vector (nfeatures values: finite, or NaN for a missing
 * value when info->trees) with the parameters of ServedModelParams,
 * whatever the kind of model: the value of a regression or the class index
 * of a classifier in r->value, the probability of the positive class of a
 * binary model (NaN otherwise) and the class index (-1 for a regression).
 * False, with r unset, when the row has no prediction, as streamml.predict
 * gives NULL: a missing value in a linear group of a league's version, a
 * value beyond the range a tree takes.  The one place a new kind of model
 * needs a case to be served to C callers.
 */
bool
ServedModelScore(CachedModel *m, const void *params, const double *x,
				 ServedPrediction *r)
{
	const double *coef;
	const TreeModel *tree;
	double		buf[64];
	double	   *out;

	/* ServedModelParams gives the model itself, or the group's entry */
	if (m->grouped)
	{
		coef = ((const GroupEntry *) params)->coef;
		tree = ((const GroupEntry *) params)->tree;
	}
	else
	{
		coef = m->coef;
		tree = m->tree;
	}
	out = m->blocks <= 64 ? buf : palloc(sizeof(double) * m->blocks);
	ModelScore(m, coef, tree, x, out);
	if (isnan(out[0]))
	{
		if (out != buf)
			pfree(out);
		return false;
	}
	switch (m->kind)
	{
		case 'l':
			r->value = out[0];
			r->probability = NAN;
			r->class_index = -1;
			break;
		case 'g':
			r->probability = out[0];
			r->class_index = out[0] >= 0.5 ? 1 : 0;
			r->value = r->class_index;
			break;
		default:
			r->class_index = 0;
			for (int k = 1; k < m->blocks; k++)
				if (out[k] > out[r->class_index])
					r->class_index = k;
			r->value = r->class_index;
			r->probability = NAN;
			break;
	}
	if (out != buf)
		pfree(out);
	return true;
}
