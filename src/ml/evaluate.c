/*
 * evaluate.c
 *		streamml.evaluate: the metrics of a model's deployed version on any
 *		labelled rows.
 *
 * evaluate(model, source, label, features) reads the deployed coefficients
 * from the catalog (with the caller's privileges, so row-level security
 * decides what may be evaluated), then runs one query over the source: the
 * evaluation aggregate of the model's kind (classification_metrics,
 * multiclass_metrics or regression_metrics, all parallel safe) over the
 * scores of streamml.ml_score.  One query means one snapshot, and the scan
 * can be shared by parallel workers.  A grouped model is scored with each
 * row's group; a second query under the same registered snapshot gives the
 * metrics of every group (GROUPING SETS would give both in one scan, but
 * PostgreSQL does not run them as partial aggregates).
 *
 * Labels are matched to the model's classes by their text form, the way
 * training found them: a boolean as true/false, a number as its float8
 * text, anything else as text.  Rows whose label is not one of the classes,
 * or whose features are NULL or not finite, or whose group the model does
 * not know, are skipped and counted in rows_skipped, as are rows whose
 * feature array (one float8[] column) has another length than the model's:
 * those are counted apart, for one NOTICE, as training does.
 *
 * Tree models (gbt, forest, tree, and a league's tree champion) are scored
 * by streamml.ml_score_tree, given the model's name and deployed version: it
 * reads the version's XGBoost bytes from the catalog, as the caller, and
 * parses them once per query (per parallel worker), never bytes a caller
 * passes (XGBoost's loader is not made for hostile input); NULL
 * features are missing values for them, as in training.  Categorical
 * feature columns are encoded with the version's stored encoding
 * (categorical.c); rows with a value outside a column's levels are
 * counted: "rows_other_level" (encoded as the other level: infrequent in
 * training, or new) and "rows_unseen_missing" (new to a column without the
 * other level: encoded as missing).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "ml/categorical.h"
#include "ml/group_key.h"
#include "ml/ml.h"
#include "ml/predict_row.h"
#include "ml/train.h"
#include "ml/tree_predict.h"
#include "pg_streamml.h"

/*
 * Reads the model's kind, classes, grouping and deployed coefficients into
 * run, and the ml_score parameters (one row [b0, b1..bp] per group, K
 * blocks for a multinomial model) with their group keys into params and
 * keys.  Returns the deployed version.
 */
static int
EvaluateLoadModel(TrainRun *run, Datum *params, Datum *keys, bool *trees,
				  Encoding **enc)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(run->model)};
	int			ret;
	bool		isnull;
	char	   *kind;
	int			version;
	int			p;
	int			blocks;
	int			ngroups = 0;
	Datum	   *pd;
	Datum	   *kd;
	int			dims[2];
	int			lbs[2] = {1, 1};

	ret = SPI_execute_with_args(
								"SELECT m.kind, m.classes, m.group_by, m.deployed_version, "
								"pg_catalog.cardinality(v.features), v.group_key, v.intercepts, v.coefficients, "
								"v.model_data, v.encoding, v.kind, m.feature_columns "
								"FROM streamml.models m LEFT JOIN streamml.model_versions v "
								"ON v.model = m.name AND v.version = m.deployed_version "
								"WHERE m.name = $1 ORDER BY v.group_key",
								1, types, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read model \"%s\"", run->model);
	version = ModelCheckDeployedRead(run->model, 4);
	SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 7, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("deployed version %d of model \"%s\" does not exist",
						version, run->model)));

	/* a version's own kind: a league's champion may be linear or trees */
	kind = ResultText(0, 11) ? ResultText(0, 11) : ResultText(0, 1);
	*trees = !heap_attisnull(SPI_tuptable->vals[0], 9, SPI_tuptable->tupdesc);
	ModelResultClasses(2, &run->classes, &run->nclasses);
	if (*trees)
		run->kind = run->nclasses == 0 ? MODEL_LINEAR :
			run->nclasses == 2 ? MODEL_LOGISTIC : MODEL_MULTINOMIAL;
	else
		run->kind = strcmp(kind, "linear") == 0 ? MODEL_LINEAR :
			strcmp(kind, "logistic") == 0 ? MODEL_LOGISTIC : MODEL_MULTINOMIAL;
	*enc = NULL;
	if (!heap_attisnull(SPI_tuptable->vals[0], 10, SPI_tuptable->tupdesc))
	{
		Datum		fc = SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 12, &isnull);
		Datum	   *elems;
		int			nfc;
		char	  **cols;

		deconstruct_array(DatumGetArrayTypeP(fc), TEXTOID, -1, false,
						  TYPALIGN_INT, &elems, NULL, &nfc);
		if (nfc != run->nfeaturecols)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("model \"%s\" reads %d feature columns, got %d",
							run->model, nfc, run->nfeaturecols)));
		cols = palloc(sizeof(char *) * nfc);
		for (int i = 0; i < nfc; i++)
			cols[i] = TextDatumGetCString(elems[i]);
		/* the stored levels, by position onto the columns given here */
		*enc = EncodingFromJsonb(DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0],
															  SPI_tuptable->tupdesc,
															  10, &isnull)),
								 cols, nfc);
	}
	run->group_by = ResultText(0, 3);
	p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
									SPI_tuptable->tupdesc, 5, &isnull));
	blocks = (run->kind == MODEL_MULTINOMIAL) ? run->nclasses : 1;

	pd = palloc(sizeof(Datum) * SPI_processed * blocks * (p + 1));
	kd = palloc(sizeof(Datum) * SPI_processed);
	if (*trees)
	{
		/* ml_score_tree reads the version's trees itself */
		*params = CStringGetTextDatum(run->model);
		*keys = Int32GetDatum(version);
		run->p = p;
		return version;
	}
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *key = ResultText(r, 6);
		int			ni;
		int			nc;
		double	   *ic = ResultFloat8Array(r, 7, &ni, CurrentMemoryContext);
		double	   *cf = ResultFloat8Array(r, 8, &nc, CurrentMemoryContext);

		if (ni != blocks || nc != blocks * p)
			elog(ERROR, "model \"%s\" has coefficients of the wrong size",
				 run->model);
		kd[ngroups] = CStringGetTextDatum(key ? key : "");
		for (int b = 0; b < blocks; b++)
		{
			Datum	   *row = pd + (ngroups * blocks + b) * (p + 1);

			row[0] = Float8GetDatum(ic[b]);
			for (int j = 0; j < p; j++)
				row[j + 1] = Float8GetDatum(cf[b * p + j]);
		}
		ngroups++;
	}
	dims[0] = ngroups;
	dims[1] = blocks * (p + 1);
	*params = PointerGetDatum(construct_md_array(pd, NULL, 2, dims, lbs,
												 FLOAT8OID, 8, FLOAT8PASSBYVAL,
												 TYPALIGN_DOUBLE));
	*keys = PointerGetDatum(construct_array(kd, ngroups, TEXTOID, -1, false,
											TYPALIGN_INT));
	run->p = p;
	return version;
}

/*
 * The label as the models' aggregates want it: a float8 for a regression,
 * the 0-based class index otherwise (NULL for a value that is not a class).
 */
static char *
EvaluateLabelExpr(TrainRun *run, Oid type)
{
	const char *ql = quote_identifier(run->label);
	StringInfoData e;

	if (run->kind == MODEL_LINEAR)
	{
		if (!TypeIsNumeric(type) && type != BOOLOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("target column \"%s\" must be numeric, not %s",
							run->label, format_type_be(type))));
		return Float8Expr(run->label, type);
	}
	initStringInfo(&e);
	appendStringInfoString(&e, "(pg_catalog.array_position(ARRAY[");
	for (int i = 0; i < run->nclasses; i++)
		appendStringInfo(&e, "%s%s", i > 0 ? "," : "",
						 quote_literal_cstr(run->classes[i]));
	appendStringInfo(&e, "]::text[], (s.%s)::%stext) - 1)", ql,
					 TypeIsNumeric(type) ? "float8::" : "");
	return e.data;
}

/*
 * Appends the metrics of result row r (columns: group, metrics, rows) to
 * an open JSON object, without its closing brace, with rows_skipped and,
 * when version >= 0, the version evaluated.
 */
static void
EvaluateAppend(StringInfo out, uint64 r, int version)
{
	char	   *metrics = ResultText(r, 2);
	int64		rows = strtoll(ResultText(r, 3), NULL, 10);
	int64		used = 0;

	if (metrics != NULL)
	{
		Jsonb	   *j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
														   CStringGetDatum(metrics)));
		JsonbValue *v = getKeyJsonValueFromContainer(&j->root, "rows", 4, NULL);

		if (v != NULL && v->type == jbvNumeric)
			used = DatumGetInt64(DirectFunctionCall1(numeric_int8,
													 NumericGetDatum(v->val.numeric)));
		/* drop the closing brace to append to the object */
		metrics[strlen(metrics) - 1] = '\0';
	}
	else
		metrics = "{\"rows\": 0";
	appendStringInfo(out, "%s, \"rows_skipped\": " INT64_FORMAT, metrics,
					 rows - used);
	if (version >= 0)
		appendStringInfo(out, ", \"version\": %d", version);
}

PG_FUNCTION_INFO_V1(evaluate);

/*
 * SQL streamml.evaluate(model, source, label, features): the metrics of the
 * deployed version on the source as jsonb, with the version evaluated and
 * the rows skipped; for a grouped model the overall metrics and a "groups"
 * object with the metrics of every group.
 */
Datum
evaluate(PG_FUNCTION_ARGS)
{
	TrainRun   *run = palloc0(sizeof(TrainRun));
	ArrayType  *fa = PG_GETARG_ARRAYTYPE_P(3);
	int			version;
	StringInfoData sql;
	StringInfoData out;
	Oid			types[2] = {FLOAT8ARRAYOID, TEXTARRAYOID};
	bool		trees;
	Encoding   *enc;
	const char *unseen = NULL;
	Datum		values[2];
	const char *gexpr;
	const char *agg;
	const char *xexpr;
	const char *malformed = "0::int8";
	Datum		result;
	int			text_nest;

	run->cxt = CurrentMemoryContext;
	run->model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	run->source = text_to_cstring(PG_GETARG_TEXT_PP(1));
	run->label = text_to_cstring(PG_GETARG_TEXT_PP(2));
	run->p = -1;
	SetFeatureColumns(run, fa);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* a label's text (float8::text) is matched with the classes' exact text */
	text_nest = TextSettingsPin();
	CatalogFirstPath();
	run->snapshot = RegisterSnapshot(GetActiveSnapshot());
	version = EvaluateLoadModel(run, &values[0], &values[1], &trees, &enc);
	if (trees)
	{
		types[0] = TEXTOID;
		types[1] = INT4OID;
	}

	SourceCheckTrusted(run->source, "evaluation of a model");
	run->from = SourceFromItem(run->source);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT * FROM %s LIMIT 0", run->from);
	RunQuery(run, sql.data, 0, NULL, NULL, NULL);
	{
		TupleDesc	desc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
		int			p = run->p;

		run->yexpr = EvaluateLabelExpr(run,
									   SourceColumnType(desc, run->label,
														run->kind == MODEL_LINEAR ? "target" : "label",
														run->source));
		run->p = -1;
		ResolveFeatures(run, desc);
		if (!run->featarray && (enc != NULL || run->xexpr == NULL))
			ApplyEncoding(run, enc);
		if (run->p >= 0 && run->p != p)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("model \"%s\" expects %d features, got %d",
							run->model, p, run->p)));
		/* the model fixes the length of a feature array */
		run->p = p;
		gexpr = "''::text";
		if (run->group_by)
		{
			GroupKeyCheckType(SourceColumnType(desc, run->group_by, "group_by",
											   run->source), run->group_by);
			/* a NULL group has no model: the row is skipped, never scored */
			gexpr = psprintf("streamml.group_key(s.%s)",
							 quote_identifier(run->group_by));
		}
	}

	xexpr = ScoreFeaturesExpr(run);
	if (run->featarray)
		malformed = psprintf("pg_catalog.count(*) FILTER (WHERE (%s) IS NOT NULL AND s.%s IS NOT NULL AND %s IS NOT TRUE)",
							 run->yexpr, quote_identifier(run->featurecols[0]),
							 FeatureArrayFits(run));
	if (enc != NULL)
	{
		StringInfoData o;
		StringInfoData m;

		/* values outside the levels: the other level, or else missing */
		initStringInfo(&o);
		initStringInfo(&m);
		for (int i = 0; i < enc->ncolumns; i++)
			if (enc->cols[i])
			{
				StringInfo	b = enc->cols[i]->other ? &o : &m;

				appendStringInfo(b, "%s%s", b->len > 0 ? " OR " : "",
								 CatUnseenExpr(run->featurecols[i], enc->cols[i]));
			}
		unseen = psprintf("pg_catalog.count(*) FILTER (WHERE %s), pg_catalog.count(*) FILTER (WHERE %s)",
						  o.len > 0 ? o.data : "false", m.len > 0 ? m.data : "false");
	}
	if (trees)
		agg = psprintf(run->kind == MODEL_LINEAR ?
					   "streamml.regression_metrics(%s, (streamml.ml_score_tree($1, $2, %s, %s))[1])" :
					   run->kind == MODEL_LOGISTIC ?
					   "streamml.classification_metrics((%s)::int::boolean, (streamml.ml_score_tree($1, $2, %s, %s))[1])" :
					   "streamml.multiclass_metrics(%s, streamml.ml_score_tree($1, $2, %s, %s))",
					   run->yexpr, gexpr, xexpr);
	else if (run->kind == MODEL_LINEAR)
		agg = psprintf("streamml.regression_metrics(%s, streamml.ml_score($1, $2, %s, %s, 'linear'))",
					   run->yexpr, gexpr, xexpr);
	else if (run->kind == MODEL_LOGISTIC)
		agg = psprintf("streamml.classification_metrics((%s)::int::boolean, streamml.ml_score($1, $2, %s, %s, 'logistic'))",
					   run->yexpr, gexpr, xexpr);
	else
		agg = psprintf("streamml.multiclass_metrics(%s, streamml.ml_score_classes($1, $2, %s, %s))",
					   run->yexpr, gexpr, xexpr);

	/* overall: a plain aggregate, which parallel workers can share */
	resetStringInfo(&sql);
	appendStringInfo(&sql, "SELECT NULL::text, %s, pg_catalog.count(*), %s, %s FROM %s",
					 agg, malformed, unseen ? unseen : "0::int8, 0::int8", run->from);
	RunQuery(run, sql.data, 2, types, values, NULL);
	initStringInfo(&out);
	EvaluateAppend(&out, 0, version);
	if (unseen)
		appendStringInfo(&out, ", \"rows_other_level\": %s, \"rows_unseen_missing\": %s",
						 ResultText(0, 5), ResultText(0, 6));
	NoticeMalformedRows(run, strtoll(ResultText(0, 4), NULL, 10));
	SPI_freetuptable(SPI_tuptable);

	/* per group, under the same snapshot (GROUPING SETS would not run in parallel) */
	if (run->group_by)
	{
		resetStringInfo(&sql);
		appendStringInfo(&sql,
						 "SELECT %s, %s, pg_catalog.count(*) FROM %s WHERE %s IS NOT NULL GROUP BY 1 ORDER BY 1",
						 gexpr, agg, run->from, gexpr);
		RunQuery(run, sql.data, 2, types, values, NULL);
		appendStringInfoString(&out, ", \"groups\": {");
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			if (r > 0)
				appendStringInfoString(&out, ", ");
			escape_json(&out, ResultText(r, 1));
			appendStringInfoString(&out, ": ");
			EvaluateAppend(&out, r, -1);
			appendStringInfoChar(&out, '}');
		}
		appendStringInfoChar(&out, '}');
	}
	appendStringInfoChar(&out, '}');
	result = SPI_datumTransfer(DirectFunctionCall1(jsonb_in,
												   CStringGetDatum(out.data)),
							   false, -1);
	TextSettingsRestore(text_nest);
	UnregisterSnapshot(run->snapshot);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/* The tree models of an ml_score_tree call site, parsed once. */
typedef struct ScoreTreeCache
{
	char	   *model;			/* the model and version they are of */
	int32		version;
	int			n;
	char	  **keys;
	TreeModel **models;
	int			last;
	double	   *out;
} ScoreTreeCache;

/*
 * The trees of each group of version version of model, read as the caller
 * (row-level security: only a model the caller may use) into c.
 */
static void
ScoreTreeLoad(ScoreTreeCache *c, MemoryContext cxt, const char *model,
			  int32 version)
{
	MemoryContext old;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT v.group_key, v.model_data FROM streamml.model_versions v "
							  "WHERE v.model OPERATOR(pg_catalog.=) $1 "
							  "AND v.version OPERATOR(pg_catalog.=) $2 "
							  "AND v.model_data IS NOT NULL",
							  2, (Oid[]) {TEXTOID, INT4OID},
							  (Datum[]) {CStringGetTextDatum(model), Int32GetDatum(version)},
							  NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the trees of model \"%s\"", model);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("version %d of model \"%s\" has no trees", version, model)));
	old = MemoryContextSwitchTo(cxt);
	c->model = pstrdup(model);
	c->version = version;
	c->n = (int) SPI_processed;
	c->keys = palloc(sizeof(char *) * c->n);
	c->models = palloc(sizeof(TreeModel *) * c->n);
	for (int i = 0; i < c->n; i++)
	{
		bool		isnull;
		char	   *key = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		bytea	   *b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i],
													  SPI_tuptable->tupdesc, 2,
													  &isnull));

		c->keys[i] = pstrdup(key ? key : "");
		c->models[i] = TreeModelLoad(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
	}
	c->last = 0;
	c->out = palloc(sizeof(double) * 1024);
	MemoryContextSwitchTo(old);
	SPI_finish();
}

PG_FUNCTION_INFO_V1(ml_score_tree);

/*
 * SQL streamml.ml_score_tree(model, version, group_key, features): the
 * outputs (value, probability of the positive class, or the class
 * probabilities) of the trees of group group_key ('' without groups) of a
 * version of a model.  NULL and NaN features are missing values; NULL for
 * an infinite one, one beyond float4's range, or an unknown group.  Used
 * by evaluate.  The trees are read and parsed once per call site.
 */
Datum
ml_score_tree(PG_FUNCTION_ARGS)
{
	ScoreTreeCache *c = fcinfo->flinfo->fn_extra;
	text	   *g;
	int			glen;
	int			k = -1;
	ArrayType  *fa;
	const double *x;
	int			n;
	text	   *model;
	int32		version;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_NULL();
	model = PG_GETARG_TEXT_PP(0);
	version = PG_GETARG_INT32(1);
	/* the same model and version on every row: compared, not copied */
	if (c == NULL || c->version != version ||
		strlen(c->model) != VARSIZE_ANY_EXHDR(model) ||
		memcmp(c->model, VARDATA_ANY(model), VARSIZE_ANY_EXHDR(model)) != 0)
	{
		c = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ScoreTreeCache));
		ScoreTreeLoad(c, fcinfo->flinfo->fn_mcxt, text_to_cstring(model), version);
		fcinfo->flinfo->fn_extra = c;
	}
	g = PG_GETARG_TEXT_PP(2);
	glen = VARSIZE_ANY_EXHDR(g);
	if (c->last < c->n && (int) strlen(c->keys[c->last]) == glen &&
		memcmp(c->keys[c->last], VARDATA_ANY(g), glen) == 0)
		k = c->last;
	else
		for (int i = 0; i < c->n; i++)
			if ((int) strlen(c->keys[i]) == glen &&
				memcmp(c->keys[i], VARDATA_ANY(g), glen) == 0)
			{
				k = c->last = i;
				break;
			}
	if (k < 0)
		PG_RETURN_NULL();
	fa = PG_GETARG_ARRAYTYPE_P(3);
	n = ARR_NDIM(fa) == 1 ? ARR_DIMS(fa)[0] : 0;
	if (ARR_ELEMTYPE(fa) != FLOAT8OID || n != TreeModelFeatures(c->models[k]))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the tree model reads %d features, got %d",
						TreeModelFeatures(c->models[k]), n)));
	x = FeaturesWithMissing(fa, n);
	if (x == NULL || TreeModelOutputs(c->models[k]) > 1024)
		PG_RETURN_NULL();
	/* NULL for a value the trees cannot take, as predict gives */
	if (!TreeModelPredict(c->models[k], x, c->out))
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(Float8ArrayBuild(c->out, TreeModelOutputs(c->models[k])));
}
