/*
 * scorer.c
 *		Scorers: streamml.create_scorer and drop_scorer, their catalog, and
 *		the checks of a source and a predictions table that creation and
 *		scoring share.
 *
 * A scorer is a row of streamml.scorers_catalog plus an AFTER INSERT
 * FOR EACH STATEMENT trigger with a transition table on its source
 * (scorerinsert.c), named streamml_scorer_<id>.  The trigger fires for
 * every statement that inserts rows, whatever the path: INSERT, COPY, a
 * stream's worker (which fires statement triggers per range, as COPY
 * does), another trigger.  So every row is scored in the transaction
 * that inserts it, and a rollback takes its predictions with it.
 *
 * Privileges: the caller becomes the owner, and needs SELECT and TRIGGER
 * on the source (a scorer puts a trigger on it, which can slow or fail
 * its owner's inserts), ownership of or INSERT on an existing predictions
 * table (or the right to create one), and the use of the model.  The
 * trigger is created by the extension (CatalogExecute): the trigger
 * function is not executable by users, so nobody can attach a scorer's
 * trigger to another table, and the trigger checks that it fires on its
 * scorer's source anyway.  Scoring runs as the owner (RunAsOwner), who
 * must keep SELECT on the source and INSERT on the predictions table.
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
#include "utils/regproc.h"
#include "utils/varlena.h"

#include "ml/categorical.h"
#include "ml/group_key.h"
#include "ml/ml.h"
#include "options.h"
#include "pg_streamml.h"
#include "scoring/feature_citus.h"
#include "scoring/scorer.h"

static const char *const ScorerOptionKeys[] = {
	"into", "key", "features", "group_by", "challengers", "auto_promote", NULL
};

/* Whether a column type can be read as a float8 feature. */
static bool
NumericType(Oid type)
{
	return type == FLOAT8OID || type == FLOAT4OID || type == INT2OID ||
		type == INT4OID || type == INT8OID || type == NUMERICOID ||
		type == BOOLOID;
}

/*
 * The attribute number of a column of the source, erroring when it does
 * not exist (or, with numeric, cannot be read as a number); what names the
 * use ("feature \"x\"", "key column").
 */
AttrNumber
ScorerSourceColumn(Relation source, const char *name, const char *what,
				   bool numeric)
{
	TupleDesc	desc = RelationGetDescr(source);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || strcmp(NameStr(att->attname), name) != 0)
			continue;
		if (numeric && !NumericType(att->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of table \"%s\" is of type %s, not a number",
							name, RelationGetRelationName(source),
							format_type_be(att->atttypid)),
					 errdetail("It is read as %s.", what)));
		return att->attnum;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" of table \"%s\" does not exist", name,
					RelationGetRelationName(source)),
			 errdetail("It is read as %s.", what),
			 numeric ? errhint("Map the model's names to the source's columns with the \"features\" option, {\"feature\": \"column\"}.") : 0));
	return InvalidAttrNumber;	/* keep the compiler quiet */
}

/* The attribute number of a column of a predictions table of this type. */
static AttrNumber
PredictionColumn(Relation preds, const char *name, Oid type, int32 typmod)
{
	TupleDesc	desc = RelationGetDescr(preds);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || strcmp(NameStr(att->attname), name) != 0)
			continue;
		if (att->attgenerated)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("column \"%s\" of predictions table \"%s\" is a generated column",
							name, RelationGetRelationName(preds)),
					 errdetail("The scorer writes this column itself.")));
		if (att->atttypid != type || (typmod >= 0 && att->atttypmod != typmod))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of predictions table \"%s\" is of type %s, not %s",
							name, RelationGetRelationName(preds),
							format_type_with_typemod(att->atttypid, att->atttypmod),
							format_type_with_typemod(type, typmod))));
		return att->attnum;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("predictions table \"%s\" has no column \"%s\"",
					RelationGetRelationName(preds), name),
			 errdetail("A predictions table has the key columns of the source and model text, version integer, prediction float8, probability float8, class text, role text, scored_at timestamptz.")));
	return InvalidAttrNumber;
}

/*
 * Errors unless a predictions table's own columns (all but the key) have
 * their types: the outcome trackers read them in C, and a column whose
 * type an ALTER TABLE changed would be read as the wrong type.  role may
 * be missing (a table made before challengers).
 */
void
ScorerCheckPredictionColumns(Relation preds)
{
	(void) PredictionColumn(preds, "model", TEXTOID, -1);
	(void) PredictionColumn(preds, "version", INT4OID, -1);
	(void) PredictionColumn(preds, "prediction", FLOAT8OID, -1);
	(void) PredictionColumn(preds, "probability", FLOAT8OID, -1);
	(void) PredictionColumn(preds, "class", TEXTOID, -1);
	(void) PredictionColumn(preds, "scored_at", TIMESTAMPTZOID, -1);
	if (get_attnum(RelationGetRelid(preds), "role") != InvalidAttrNumber)
		(void) PredictionColumn(preds, "role", TEXTOID, -1);
}

/*
 * Checks the shape of a predictions table against its source and finds
 * its columns: a plain table, the key columns with the source's types,
 * the prediction columns, a unique index on (key columns, model) or on
 * (key columns, model, version), and no BEFORE or INSTEAD OF row trigger
 * (rows are written in bulk).  by_version: the scorer serves one model at
 * two versions (a challenger that is a version of a model it also serves
 * otherwise), so the index must be the second, and no unique index on
 * (key columns, model) may exist (each key gets a row per version).
 */
void
ScorerCheckPredictions(Relation preds, Relation source, int nkeys,
					   char **keys, PredictionColumns *pc, bool by_version)
{
	TupleDesc	sdesc = RelationGetDescr(source);
	List	   *indexes;
	ListCell   *lc;
	bool		unique_model = false;
	bool		unique_version = false;

	if (RelationGetRelid(preds) == RelationGetRelid(source))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a scorer cannot write its predictions into its source \"%s\"",
						RelationGetRelationName(source))));
	if (preds->rd_rel->relkind != RELKIND_RELATION || preds->rd_rel->relispartition)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("predictions table \"%s\" is not a plain table",
						RelationGetRelationName(preds)),
				 errdetail("Scorers write to tables that are neither partitioned, partitions, foreign nor views.")));
	if (preds->trigdesc &&
		(preds->trigdesc->trig_insert_before_row ||
		 preds->trigdesc->trig_insert_instead_row))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("predictions table \"%s\" has a BEFORE INSERT row trigger",
						RelationGetRelationName(preds)),
				 errdetail("Scorers write their predictions in bulk; AFTER triggers are supported.")));
	pc->nkeys = nkeys;
	pc->key = palloc(sizeof(AttrNumber) * nkeys);
	for (int k = 0; k < nkeys; k++)
	{
		AttrNumber	sa = ScorerSourceColumn(source, keys[k], "a key column", false);
		Form_pg_attribute att = TupleDescAttr(sdesc, sa - 1);

		pc->key[k] = PredictionColumn(preds, keys[k], att->atttypid,
									  att->atttypmod);
	}
	pc->model = PredictionColumn(preds, "model", TEXTOID, -1);
	pc->version = PredictionColumn(preds, "version", INT4OID, -1);
	pc->prediction = PredictionColumn(preds, "prediction", FLOAT8OID, -1);
	pc->probability = PredictionColumn(preds, "probability", FLOAT8OID, -1);
	pc->class_label = PredictionColumn(preds, "class", TEXTOID, -1);
	pc->role = PredictionColumn(preds, "role", TEXTOID, -1);
	pc->scored_at = PredictionColumn(preds, "scored_at", TIMESTAMPTZOID, -1);

	/*
	 * Exactly once is checkable: (key columns, model) is unique, or (key
	 * columns, model, version).  An index matches when its columns are
	 * exactly those (in any order); a unique index on a subset would
	 * refuse rows the scorer writes, and is found too.
	 */
	indexes = RelationGetIndexList(preds);
	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID,
										  ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index ix;
		bool		usable;
		bool		has_version = false;
		bool		subset = true;

		if (!HeapTupleIsValid(tup))
			continue;
		ix = (Form_pg_index) GETSTRUCT(tup);
		usable = ix->indisunique && ix->indimmediate && ix->indisvalid &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(tup, Anum_pg_index_indexprs, NULL);
		for (int i = 0; usable && subset && i < ix->indnkeyatts; i++)
		{
			AttrNumber	a = ix->indkey.values[i];
			bool		found = (a == pc->model);

			if (a == pc->version)
				found = has_version = true;
			for (int k = 0; k < nkeys; k++)
				if (a == pc->key[k])
					found = true;
			subset = found;
		}
		if (usable && subset)
		{
			/* every column at most once: a count tells whether all are in */
			if (!has_version && ix->indnkeyatts == nkeys + 1)
				unique_model = true;
			else if (has_version && ix->indnkeyatts == nkeys + 2)
				unique_version = true;
			else if (by_version && !has_version)
				unique_model = true;	/* narrower still: refuses versions */
		}
		ReleaseSysCache(tup);
	}
	list_free(indexes);
	if (by_version && unique_model)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("predictions table \"%s\" has a unique index on its key columns and model",
						RelationGetRelationName(preds)),
				 errdetail("The scorer serves a model at two versions (a challenger that is a version), so each key gets one row per version."),
				 errhint("Make the primary key (key columns, model, version).")));
	if (by_version && !unique_version)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("predictions table \"%s\" has no unique index on its key columns, model and version",
						RelationGetRelationName(preds)),
				 errhint("Add PRIMARY KEY (key columns, model, version), so that a row scored twice by a version is an error.")));
	if (!unique_model && !unique_version)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("predictions table \"%s\" has no unique index on its key columns and model",
						RelationGetRelationName(preds)),
				 errhint("Add PRIMARY KEY (key columns, model), so that a row scored twice is an error.")));
}

/* The key columns: option "key" (a name or an array), or the primary key. */
static List *
KeyColumns(Relation source, Jsonb *options)
{
	JsonbValue *v = OptionGet(options, "key");
	List	   *keys = NIL;

	if (v == NULL)
	{
		Oid			pk = RelationGetPrimaryKeyIndex(source);
		HeapTuple	tup;
		Form_pg_index ix;

		if (!OidIsValid(pk))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("table \"%s\" has no primary key",
							RelationGetRelationName(source)),
					 errdetail("Each prediction is stored under the key of its row."),
					 errhint("Give the key columns with the \"key\" option.")));
		tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk));
		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for index %u", pk);
		ix = (Form_pg_index) GETSTRUCT(tup);
		for (int i = 0; i < ix->indnkeyatts; i++)
			keys = lappend(keys,
						   pstrdup(NameStr(TupleDescAttr(RelationGetDescr(source),
														 ix->indkey.values[i] - 1)->attname)));
		ReleaseSysCache(tup);
		return keys;
	}
	if (v->type == jbvString)
		return list_make1(OptionValueString(v, "key"));
	if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
		JsonbValue	e;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
			if (tok == WJB_ELEM)
			{
				if (e.type != jbvString)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("option \"key\" must be a column name or an array of column names")));
				{
					char	   *k = pnstrdup(e.val.string.val, e.val.string.len);
					ListCell   *lc;

					foreach(lc, keys)
						if (strcmp(lfirst(lc), k) == 0)
							ereport(ERROR,
									(errcode(ERRCODE_DUPLICATE_COLUMN),
									 errmsg("option \"key\" names column \"%s\" twice", k)));
					keys = lappend(keys, k);
				}
			}
		if (keys != NIL)
			return keys;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"key\" must be a column name or an array of column names")));
	return NIL;
}

/*
 * The source column of each of the model's features: the option
 * "features" {"feature": "column"} maps them, by default the same name.
 * Errors when a name of the mapping is not a feature of the model.
 */
static void
CheckFeatureMap(Relation source, Jsonb *options, ServedModelInfo *info,
				const char *model)
{
	JsonbValue *map = OptionGet(options, "features");

	if (map != NULL)
	{
		JsonbIterator *it;
		JsonbValue	e;
		JsonbIteratorToken tok;

		if (map->type != jbvBinary || !JsonContainerIsObject(map->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"features\" must be an object mapping the model's feature names to columns")));
		it = JsonbIteratorInit(map->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		{
			char	   *name;
			bool		known = false;

			if (tok == WJB_VALUE && e.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"features\" must map each feature name to a column name")));
			if (tok != WJB_KEY)
				continue;
			name = pnstrdup(e.val.string.val, e.val.string.len);
			for (int j = 0; j < info->nfeatures; j++)
				if (strcmp(info->features[j], name) == 0)
					known = true;
			if (!known)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("model \"%s\" has no feature \"%s\"", model, name),
						 errdetail("Option \"features\" maps the model's feature names to the source's columns.")));
		}
	}
	for (int j = 0; j < info->nfeatures && info->encoding == NULL; j++)
	{
		char	   *col = ScorerFeatureColumn(options, info->features[j]);
		char	   *what = psprintf("feature \"%s\" of model \"%s\"",
									info->features[j], model);

		(void) ScorerSourceColumn(source, col, what, true);
	}
	/* a model with categorical columns reads its columns (categorical.h) */
	for (int i = 0; info->encoding != NULL && i < info->ncolumns; i++)
	{
		char	   *col = ScorerFeatureColumn(options, info->columns[i]);
		char	   *what = psprintf("feature column \"%s\" of model \"%s\"",
									info->columns[i], model);
		bool		cat = info->encoding->cols[i] != NULL;
		AttrNumber	a = ScorerSourceColumn(source, col, what, !cat);
		Oid			t = TupleDescAttr(RelationGetDescr(source), a - 1)->atttypid;

		if (cat && !TypeIsCategorical(t))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of table \"%s\" is of type %s, not text, varchar, char or an enum",
							col, RelationGetRelationName(source), format_type_be(t)),
					 errdetail("It is read as %s, a categorical feature.", what)));
	}
}

/* The source column of a feature: mapped by option "features", or itself. */
char *
ScorerFeatureColumn(Jsonb *options, const char *feature)
{
	JsonbValue *map = OptionGet(options, "features");
	JsonbValue *v;

	if (map == NULL || map->type != jbvBinary)
		return (char *) feature;
	v = getKeyJsonValueFromContainer(map->val.binary.data, feature,
									 strlen(feature), NULL);
	if (v == NULL || v->type != jbvString)
		return (char *) feature;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* The group column: option "group_by", or the model's. */
char *
ScorerGroupColumn(Jsonb *options, ServedModelInfo *info)
{
	return OptionString(options, "group_by", info->group_by);
}

/* The error of a malformed option "challengers". */
static void
ChallengersShapeError(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"challengers\" must be an array of model names and {\"model\": name, \"version\": number} objects")));
}

/*
 * The challengers of a scorer: option "challengers", an array whose
 * elements are model names (served at their deployed version) or objects
 * {"model": name, "version": v} (that version of the model); none when
 * absent.  Shape errors are raised here.
 */
ScorerChallenger *
ScorerChallengers(Jsonb *options, int *n)
{
	JsonbValue *v = OptionGet(options, "challengers");
	ScorerChallenger *out;

	*n = 0;
	if (v == NULL)
		return NULL;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ChallengersShapeError();
	out = palloc0(sizeof(ScorerChallenger) *
				  Max(JsonContainerSize(v->val.binary.data), 1));
	for (int i = 0; i < JsonContainerSize(v->val.binary.data); i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(v->val.binary.data, i);
		ScorerChallenger *c = &out[(*n)++];

		if (e != NULL && e->type == jbvString)
			c->model = pnstrdup(e->val.string.val, e->val.string.len);
		else if (e != NULL && e->type == jbvBinary &&
				 JsonContainerIsObject(e->val.binary.data))
		{
			Jsonb	   *o = JsonbValueToJsonb(e);
			static const char *const keys[] = {"model", "version", NULL};

			OptionScope scope;

			OptionScopePush(&scope, "option", "challengers");
			OptionCheckKeys(o, keys, "challenger");
			c->model = OptionString(o, "model", NULL);
			if (c->model == NULL || OptionGet(o, "version") == NULL)
				ChallengersShapeError();
			c->version = (int32) OptionInteger(o, "version", 1, 1, PG_INT32_MAX);
			OptionScopePop(&scope);
		}
		else
			ChallengersShapeError();
	}
	return out;
}

/*
 * Whether a scorer serves some model at two versions: a challenger that is
 * a version of its champion's model, or of a model another challenger
 * names.  Its predictions table is then keyed by version too.
 */
bool
ScorerNeedsVersionKey(const char *champion, const ScorerChallenger *ch, int n)
{
	for (int i = 0; i < n; i++)
	{
		if (ch[i].version == 0)
			continue;
		if (strcmp(ch[i].model, champion) == 0)
			return true;
		for (int j = 0; j < n; j++)
			if (j != i && strcmp(ch[i].model, ch[j].model) == 0)
				return true;
	}
	return false;
}

/* A challenger as users read it: "model", or "model" version v. */
char *
ScorerChallengerName(const ScorerChallenger *c)
{
	if (c->version == 0)
		return psprintf("\"%s\"", c->model);
	return psprintf("\"%s\" version %d", c->model, c->version);
}

/*
 * Errors unless a challenger predicts what the champion predicts: both
 * regressions, or classifiers of the same classes in the same order.  A
 * prediction row's value is a class index for a classifier, so a logistic
 * challenger beside a linear champion (or classes in another order) would
 * be compared, and promoted, on numbers that mean different things.
 */
static void
CheckSameTask(const char *champion, const ServedModelInfo *info,
			  const char *challenger)
{
	ServedModelInfo cinfo;
	bool		same;

	(void) ServedModelGet(champion, &cinfo);
	same = cinfo.nclasses == info->nclasses;
	for (int c = 0; same && c < cinfo.nclasses; c++)
		same = strcmp(cinfo.classes[c], info->classes[c]) == 0;
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("challenger %s does not predict what model \"%s\" predicts",
						challenger, champion),
				 errdetail("A challenger of a regression is a regression; of a classifier, a classifier of the same classes in the same order.")));
}

/*
 * Checks a scorer's challengers (SPI connected): models the user may use,
 * none the champion or twice, a model named either as a model or by
 * versions, not both, versions that exist, their features in the source;
 * and option "auto_promote": {"min_rows": integer >= 30, "alpha": number
 * in (0, 0.5)}.  A version challenger of the champion's own model is
 * welcome: that is how a version is tried before it is deployed.
 */
void
ScorerCheckChallengers(Relation source, Jsonb *options, const char *champion)
{
	int			n;
	ScorerChallenger *ch = ScorerChallengers(options, &n);
	JsonbValue *ap = OptionGet(options, "auto_promote");
	OptionScope scope;

	for (int i = 0; i < n; i++)
	{
		ServedModelInfo info;
		Datum		arg = CStringGetTextDatum(ch[i].model);
		bool		isnull;
		Oid			mowner = InvalidOid;

		if (ch[i].version == 0 && strcmp(ch[i].model, champion) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("model \"%s\" is the scorer's champion", ch[i].model),
					 errdetail("A challenger is another model, or a version of a model: {\"model\": \"%s\", \"version\": n}.",
							   ch[i].model)));
		for (int j = 0; j < i; j++)
		{
			if (strcmp(ch[i].model, ch[j].model) != 0)
				continue;
			if (ch[i].version == ch[j].version)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("challenger %s is given twice",
								ScorerChallengerName(&ch[i]))));
			if (ch[i].version == 0 || ch[j].version == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("model \"%s\" is a challenger both as a model and by version",
								ch[i].model),
						 errdetail("A model is a challenger at its deployed version, or at the versions given, not both.")));
		}
		CatalogExecute("SELECT m.owner FROM streamml.models m "
					   "WHERE m.name OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
			mowner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1,
													&isnull));
		if (!OidIsValid(mowner) || !ModelVisible(ch[i].model, mowner))
			ModelDoesNotExist(ch[i].model, "It was given as a challenger.");
		/* "model has no version 9" and the like: of which challenger */
		OptionScopePush(&scope, "challenger", ch[i].model);
		(void) ServedModelGetVersion(ch[i].model, ch[i].version, &info);
		CheckFeatureMap(source, options, &info, ch[i].model);
		CheckSameTask(champion, &info, ScorerChallengerName(&ch[i]));
		OptionScopePop(&scope);
	}
	if (ap != NULL)
	{
		if (ap->type != jbvBinary || !JsonContainerIsObject(ap->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"auto_promote\" must be an object, for example {\"min_rows\": 1000, \"alpha\": 0.01}")));
		{
			Jsonb	   *apj = JsonbValueToJsonb(ap);
			static const char *const keys[] = {"min_rows", "alpha", NULL};

			OptionScopePush(&scope, "option", "auto_promote");
			OptionCheckKeys(apj, keys, "auto_promote");
			(void) OptionInteger(apj, "min_rows", 1000, 30, INT_MAX);
			(void) OptionNumber(apj, "alpha", 0.01, 1e-12, 0.5);
			OptionScopePop(&scope);
		}
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"auto_promote\" needs \"challengers\"")));
		/* promoting a version deploys it: its model's owner only */
		for (int i = 0; i < n; i++)
			if (ch[i].version > 0)
				(void) ModelCheckOwner(ch[i].model, "deploy");
	}
}

/*
 * Creates a predictions table of the standard shape, owned by the caller,
 * with the source's key columns; returns its oid.  Its primary key is
 * (key columns, model), and version too when the scorer serves a model
 * at two versions (ScorerNeedsVersionKey).
 */
static Oid
CreatePredictions(RangeVar *rv, Relation source, List *keys, bool by_version)
{
	StringInfoData sql;
	StringInfoData pk;
	ListCell   *lc;

	initStringInfo(&sql);
	initStringInfo(&pk);
	appendStringInfo(&sql, "CREATE TABLE %s (",
					 rv->schemaname ?
					 quote_qualified_identifier(rv->schemaname, rv->relname) :
					 quote_identifier(rv->relname));
	foreach(lc, keys)
	{
		char	   *k = lfirst(lc);
		AttrNumber	a = ScorerSourceColumn(source, k, "a key column", false);
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(source), a - 1);

		appendStringInfo(&sql, "%s %s NOT NULL, ", quote_identifier(k),
						 format_type_extended(att->atttypid, att->atttypmod,
											  FORMAT_TYPE_TYPEMOD_GIVEN |
											  FORMAT_TYPE_FORCE_QUALIFY));
		appendStringInfo(&pk, "%s, ", quote_identifier(k));
	}
	appendStringInfo(&sql,
					 "model pg_catalog.text NOT NULL, version pg_catalog.int4 NOT NULL, "
					 "prediction pg_catalog.float8, probability pg_catalog.float8, "
					 "class pg_catalog.text, "
					 "role pg_catalog.text NOT NULL DEFAULT '" SCORER_ROLE_CHAMPION "', "
					 "scored_at pg_catalog.timestamptz NOT NULL, "
					 "PRIMARY KEY (%smodel%s))", pk.data,
					 by_version ? ", version" : "");
	if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create the predictions table");
	{
		Oid			predsid = RangeVarGetRelid(rv, NoLock, false);
		char	  **keyv = palloc(sizeof(char *) * Max(list_length(keys), 1));
		int			n = 0;

		/* for a Citus source: distributed like it (feature_citus.c) */
		foreach(lc, keys)
			keyv[n++] = lfirst(lc);
		FeatureCitusDistributeLike(predsid, RelationGetRelid(source), keyv, n,
								   "predictions table");
		return predsid;
	}
}

PG_FUNCTION_INFO_V1(create_scorer);

/*
 * SQL streamml.create_scorer(name, source, model, options): see the top
 * of the file.  Returns the predictions table.
 */
Datum
create_scorer(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			sourceid = PG_GETARG_OID(1);
	char	   *model = text_to_cstring(PG_GETARG_TEXT_PP(2));
	Jsonb	   *options = PG_GETARG_JSONB_P(3);
	Oid			user = GetUserId();
	Relation	source;
	Relation	preds;
	ServedModelInfo info;
	List	   *keys;
	char	  **keyv;
	int			nch;
	ScorerChallenger *ch;
	bool		by_version;
	char	   *into;
	char	   *group;
	RangeVar   *rv;
	Oid			predsid;
	PredictionColumns pc;
	int32		id;
	ListCell   *lc;
	int			k;
	int			nest;

	OptionCheckKeys(options, ScorerOptionKeys, "scorer");
	if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid scorer name \"%s\"", name),
				 errdetail("A scorer name has 1 to %d bytes.", NAMEDATALEN - 1)));

	/* the source: SELECT, and TRIGGER since a trigger goes on it */
	source = table_open(sourceid, ShareRowExclusiveLock);
	if (source->rd_rel->relkind != RELKIND_RELATION &&
		source->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(source)),
				 errdetail("A scorer scores the rows inserted into a table.")));
	if (pg_class_aclcheck(sourceid, user, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", RelationGetRelationName(source)),
				 errdetail("Creating a scorer requires SELECT on its source.")));
	if (pg_class_aclcheck(sourceid, user, ACL_TRIGGER) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", RelationGetRelationName(source)),
				 errdetail("A scorer puts a trigger on its source, which requires the TRIGGER privilege on it (or ownership).")));
	CheckSourceRowSecurity(sourceid, user, "scorer", name, ERRCODE_FEATURE_NOT_SUPPORTED);
	PartitionSourceCheck(sourceid, "scorer");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* slots of scorers that rolled back are freed if the slots ran out */
	ScorerStatsReclaim();

	/* the model, as the caller may use it (errors as predict does) */
	{
		Datum		arg = CStringGetTextDatum(model);
		bool		isnull;
		Oid			mowner = InvalidOid;

		CatalogExecute("SELECT m.owner FROM streamml.models m "
					   "WHERE m.name OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
			mowner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1,
													&isnull));
		if (!OidIsValid(mowner) || !ModelVisible(model, mowner))
			ModelDoesNotExist(model, NULL);
		(void) ServedModelGet(model, &info);
	}
	CheckFeatureMap(source, options, &info, model);
	ScorerCheckChallengers(source, options, model);
	ch = ScorerChallengers(options, &nch);
	by_version = ScorerNeedsVersionKey(model, ch, nch);
	group = ScorerGroupColumn(options, &info);
	if (group != NULL && info.group_by == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model \"%s\" is not grouped", model),
				 errdetail("Option \"group_by\" names the column of the group key of a model trained with group_by.")));
	if (group != NULL)
	{
		AttrNumber	ga;
		Oid			gt;
		Oid			trained;

		if (get_attnum(RelationGetRelid(source), group) == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of table \"%s\" does not exist", group,
							RelationGetRelationName(source)),
					 errdetail("Model \"%s\" was trained per group of \"%s\": the scorer reads each row's group from it.",
							   model, group),
					 errhint("Name the source's column that holds the group with option \"group_by\", e.g. {\"group_by\": \"sym\"}.")));
		ga = ScorerSourceColumn(source, group, "the group key", false);
		gt = TupleDescAttr(RelationGetDescr(source), ga - 1)->atttypid;
		trained = ModelGroupType(model);

		/* keys of another type would find no group: every row unscorable */
		if (OidIsValid(trained) && !GroupKeyTypesAgree(gt, trained))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("group column \"%s\" of table \"%s\" is of type %s, but model \"%s\" was trained on groups of type %s",
							group, RelationGetRelationName(source),
							format_type_be(gt), model, format_type_be(trained)),
					 errdetail("A group's key is the text of its value, which differs between the two types."),
					 errhint("Give the source a group column of type %s, or train the model on the type of this one.",
							 format_type_be(trained))));
	}

	/* the key columns */
	keys = KeyColumns(source, options);
	keyv = palloc(sizeof(char *) * list_length(keys));
	k = 0;
	foreach(lc, keys)
	{
		keyv[k] = lfirst(lc);
		(void) ScorerSourceColumn(source, keyv[k], "a key column", false);
		k++;
	}

	/* the predictions table: found (and checked) or created */
	into = OptionString(options, "into", name);
	rv = makeRangeVarFromNameList(stringToQualifiedNameList(into));
	predsid = RangeVarGetRelid(rv, NoLock, true);
	if (!OidIsValid(predsid))
		predsid = CreatePredictions(rv, source, keys, by_version);
	else if (!pg_class_ownercheck(predsid, user) &&
			 pg_class_aclcheck(predsid, user, ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(predsid)),
				 errdetail("A scorer writes into a predictions table its owner owns or may insert into.")));
	preds = table_open(predsid, ShareRowExclusiveLock);
	ScorerCheckPredictions(preds, source, list_length(keys), keyv, &pc,
						   by_version);
	table_close(preds, NoLock);

	/* the catalog row, then the trigger */
	{
		Datum		args[7];
		Datum	   *kd = palloc(sizeof(Datum) * list_length(keys));
		bool		isnull;
		StringInfoData sql;

		args[0] = CStringGetTextDatum(name);
		if (CatalogExecute("SELECT 1 FROM streamml.scorers_catalog "
						   "WHERE name OPERATOR(pg_catalog.=) $1",
						   1, (Oid[]) {TEXTOID}, args, NULL, SPI_OK_SELECT) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("scorer \"%s\" already exists", name)));
		for (int i = 0; i < list_length(keys); i++)
			kd[i] = CStringGetTextDatum(keyv[i]);
		args[1] = ObjectIdGetDatum(user);
		args[2] = ObjectIdGetDatum(sourceid);
		args[3] = CStringGetTextDatum(model);
		args[4] = ObjectIdGetDatum(predsid);
		args[5] = PointerGetDatum(construct_array(kd, list_length(keys), TEXTOID,
												  -1, false, TYPALIGN_INT));
		args[6] = JsonbPGetDatum(options);
		CatalogExecute("INSERT INTO streamml.scorers_catalog "
					   "(name, owner, source, model, predictions, key_columns, options) "
					   "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
					   7, (Oid[]) {TEXTOID, OIDOID, OIDOID, TEXTOID, OIDOID,
					   TEXTARRAYOID, JSONBOID}, args, NULL,
					   SPI_OK_INSERT_RETURNING);
		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
		initStringInfo(&sql);
		appendStringInfo(&sql,
						 "CREATE TRIGGER streamml_scorer_%d AFTER INSERT ON %s "
						 "REFERENCING NEW TABLE AS streamml_new_rows "
						 "FOR EACH STATEMENT EXECUTE FUNCTION streamml.scorer_trigger('%d')",
						 id,
						 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(source)),
													RelationGetRelationName(source)),
						 id);
		/* on a Citus table's shell only (feature_citus.c) */
		nest = FeatureCitusShellOnlyBegin(sourceid);
		CatalogExecute(sql.data, 0, NULL, NULL, NULL, SPI_OK_UTILITY);
		FeatureCitusShellOnlyEnd(nest);
		/* and on every partition, which a statement can name (partitions.c) */
		PartitionTriggersSync(sourceid, psprintf("streamml_scorer_%d", id),
							  "scorer_trigger", "streamml_new_rows", id);
	}
	SPI_finish();
	table_close(source, NoLock);
	PG_RETURN_OID(predsid);
}

/*
 * Deletes a scorer: its trigger (when the source still exists) and its
 * catalog row.  SPI connected; the caller checked the privileges.
 */
static void
ScorerDelete(int32 id, Oid sourceid)
{
	Datum		arg = Int32GetDatum(id);
	char	   *nsp;
	char	   *rel;

	rel = get_rel_name(sourceid);
	nsp = rel ? get_namespace_name(get_rel_namespace(sourceid)) : NULL;
	/* its trigger may have gone with a dropped predictions table */
	if (rel && nsp &&
		OidIsValid(get_trigger_oid(sourceid, psprintf("streamml_scorer_%d", id), true)))
	{
		Relation	source = table_open(sourceid, ShareRowExclusiveLock);
		int			nest = FeatureCitusShellOnlyBegin(sourceid);

		CatalogExecute(psprintf("DROP TRIGGER IF EXISTS streamml_scorer_%d ON %s",
								id, quote_qualified_identifier(nsp, rel)),
					   0, NULL, NULL, NULL, SPI_OK_UTILITY);
		FeatureCitusShellOnlyEnd(nest);
		table_close(source, NoLock);
	}
	PartitionTriggersDrop("scorer_trigger", id);
	CatalogExecute("DELETE FROM streamml.scorers_catalog "
				   "WHERE id OPERATOR(pg_catalog.=) $1",
				   1, (Oid[]) {INT4OID}, &arg, NULL, SPI_OK_DELETE);
	ScorerStatsForget(id);
}

PG_FUNCTION_INFO_V1(drop_scorer);

/* SQL streamml.drop_scorer(name): the predictions table stays. */
Datum
drop_scorer(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Datum		arg = CStringGetTextDatum(name);
	bool		isnull;
	Oid			owner;
	int32		id;
	Oid			sourceid;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CatalogExecute("SELECT s.id, s.owner, s.source FROM streamml.scorers_catalog s "
				   "WHERE s.name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
				   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT);
	owner = SPI_processed == 0 ? InvalidOid :
		DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 2, &isnull));
	/* a scorer the caller cannot see does not exist for the caller */
	if (!OidIsValid(owner) || !has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("scorer \"%s\" does not exist", name)));
	id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
									 SPI_tuptable->tupdesc, 1, &isnull));
	sourceid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 3, &isnull));
	/* a tracker left behind would fail every insert into its labels */
	if (CatalogExecute("SELECT 1 FROM streamml.outcome_trackers "
					   "WHERE scorer OPERATOR(pg_catalog.=) $1",
					   1, (Oid[]) {TEXTOID}, &arg, NULL, SPI_OK_SELECT) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop scorer \"%s\" because its outcomes are tracked", name),
				 errhint("Stop tracking them first: SELECT streamml.untrack_outcomes('%s').",
						 name)));
	ScorerDelete(id, sourceid);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Deletes the scorers a condition on scorers_catalog s ($1 the oid[] arg)
 * selects; with a NOTICE each when notice.  SPI connected.
 */
static void
ScorersDeleteWhere(const char *where, Datum arg, bool notice)
{
	uint64		n;
	SPITupleTable *tt;

	n = CatalogExecute(psprintf("SELECT s.id, s.source, s.name FROM streamml.scorers_catalog s "
								"WHERE %s", where),
					   1, (Oid[]) {OIDARRAYOID}, &arg, NULL, SPI_OK_SELECT);
	tt = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		ScorerDelete(DatumGetInt32(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)),
					 DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull)));
		if (notice)
			ereport(NOTICE,
					(errmsg("drop cascades to scorer \"%s\"",
							SPI_getvalue(tt->vals[i], tt->tupdesc, 3)),
					 errdetail("Its source or predictions table was dropped; the predictions table, if any is left, is kept.")));
	}
}

/*
 * DROP of tables (relations.c): the scorers reading or writing one of the
 * dropped relations (an oid[]) go; their outcome trackers went first.
 */
void
ScorersRelationsDropped(Datum relids)
{
	ScorersDeleteWhere("s.source OPERATOR(pg_catalog.=) ANY ($1) "
					   "OR s.predictions OPERATOR(pg_catalog.=) ANY ($1)", relids, true);
}

/* DROP OWNED (roles.c): the roles' scorers go.  SPI connected. */
void
ScorersDropOwned(Datum roles)
{
	ScorersDeleteWhere("s.owner OPERATOR(pg_catalog.=) ANY ($1)", roles, false);
}
