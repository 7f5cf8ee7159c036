/*
 * categorical.c
 *		Categorical features: text, varchar, char and enum feature columns,
 *		one-hot encoded for every family of models.
 *
 * At training time (ResolveCategories, after the holdout split is known)
 * one scan of the training rows counts each categorical column's values.
 * A column with at most max_categories distinct values gets one slot per
 * value; a column with more keeps its max_categories - 1 most frequent
 * values and adds an "other" level for the rest, which also takes values
 * first seen at serving.  That is scikit-learn's OneHotEncoder with
 * max_categories and handle_unknown='infrequent_if_exist': ties in
 * frequency keep the later value (scikit-learn's stable argsort over the
 * sorted categories), the levels are in byte order and "other" comes last.
 * Without the other level (option other_level false) a column with too
 * many values is an error.
 *
 * Trees get the same one-hot slots (XGBoost 1.7's native categorical
 * splits would need the model walker of tree_predict.c to read category
 * bitsets; one-hot keeps one encoding for every family).
 *
 * A NULL value fills the column's slots with NULL: a missing value for a
 * tree, a skipped row (training) or NULL prediction (serving) for a linear
 * model.  A value unseen in training is the "other" level when the column
 * has one, else missing like NULL; serving counts both
 * (streamml.unseen_categories), never an error per row.
 *
 * The encoding is stored with every version (model_versions.encoding:
 * {"column": {"levels": [...], "other": bool}} for the categorical
 * columns) and read back by serving (predict.c, predict_row.c) and
 * evaluate.c.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "ml/categorical.h"
#include "ml/ml.h"
#include "ml/train.h"

/* True for the types encoded as categories: text, varchar, char, enums. */
bool
TypeIsCategorical(Oid type)
{
	return type == TEXTOID || type == VARCHAROID || type == BPCHAROID ||
		type_is_enum(type);
}

/* The number of slots of a categorical column. */
int
CatColumnWidth(const CatColumn *c)
{
	return c->nlevels + (c->other ? 1 : 0);
}

/* Compares a counted string with a level, in byte order (strcmp's). */
static int
CatCompare(const char *v, int len, const char *level, int llen)
{
	int			r = memcmp(v, level, Min(len, llen));

	if (r != 0)
		return r;
	return len - llen;
}

/* The index of value v (len bytes) among the levels, or -1. */
int
CatLevelIndex(const CatColumn *c, const char *v, int len)
{
	int			lo = 0;
	int			hi = c->nlevels - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			r = CatCompare(v, len, c->levels[mid], c->lens[mid]);

		if (r == 0)
			return mid;
		if (r < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return -1;
}

/*
 * Writes the slots of value v (NULL for a NULL value) into x: 1 for its
 * level, 0 for the others; NaN in every slot when it is missing.
 */
CatResult
CatEncode(const CatColumn *c, const char *v, int len, double *x)
{
	return CatEncodeIndex(c, v ? CatLevelIndex(c, v, len) : -1, v == NULL, x);
}

/*
 * CatEncode of a value already looked up: level k, or -1 for a value that
 * is not a level; isnull for NULL.
 */
CatResult
CatEncodeIndex(const CatColumn *c, int k, bool isnull, double *x)
{
	int			w = CatColumnWidth(c);

	if (!isnull && (k >= 0 || c->other))
	{
		for (int j = 0; j < w; j++)
			x[j] = 0.0;
		x[k >= 0 ? k : c->nlevels] = 1.0;
		return k >= 0 ? CAT_LEVEL : CAT_OTHER;
	}
	for (int j = 0; j < w; j++)
		x[j] = NAN;
	return CAT_MISSING;
}

/*
 * Prepares the reader of a categorical column of type "type" (a type for
 * which TypeIsCategorical holds), in the current memory context.
 */
void
CatReaderInit(CatReader *r, const CatColumn *c, Oid type)
{
	r->col = c;
	r->type = type;
	r->enum_oids = NULL;
	if (!type_is_enum(type))
		return;
	r->enum_oids = palloc(sizeof(Oid) * Max(c->nlevels, 1));
	for (int k = 0; k < c->nlevels; k++)
	{
		HeapTuple	tup = SearchSysCache2(ENUMTYPOIDNAME, ObjectIdGetDatum(type),
										  CStringGetDatum(c->levels[k]));

		r->enum_oids[k] = InvalidOid;
		if (HeapTupleIsValid(tup))
		{
			r->enum_oids[k] = ((Form_pg_enum) GETSTRUCT(tup))->oid;
			ReleaseSysCache(tup);
		}
	}
}

/* CatEncode of a datum of the reader's type (isnull: NULL). */
CatResult
CatReadDatum(const CatReader *r, Datum d, bool isnull, double *x)
{
	const CatColumn *c = r->col;
	int			k = -1;

	if (isnull)
		return CatEncodeIndex(c, -1, true, x);
	if (r->enum_oids != NULL)
	{
		Oid			o = DatumGetObjectId(d);

		for (int j = 0; j < c->nlevels; j++)
			if (r->enum_oids[j] == o)
			{
				k = j;
				break;
			}
	}
	else
	{
		text	   *t = DatumGetTextPP(d);
		const char *v = VARDATA_ANY(t);
		int			len = VARSIZE_ANY_EXHDR(t);

		/* char(n) as its text cast: without the trailing blanks */
		if (r->type == BPCHAROID)
			while (len > 0 && v[len - 1] == ' ')
				len--;
		k = CatLevelIndex(c, v, len);
	}
	return CatEncodeIndex(c, k, false, x);
}

/* qsort comparator of C strings. */
static int
StrPtrCompare(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Builds a column of n levels (sorted here) and the other flag. */
static CatColumn *
CatColumnMake(char **levels, int n, bool other)
{
	CatColumn  *c = palloc0(sizeof(CatColumn));

	qsort(levels, n, sizeof(char *), StrPtrCompare);
	c->nlevels = n;
	c->levels = levels;
	c->lens = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
		c->lens[i] = strlen(levels[i]);
	c->other = other;
	return c;
}

/* Sets the slot offsets of an encoding from its columns. */
static void
EncodingLayout(Encoding *e)
{
	int			p = 0;

	e->first = palloc(sizeof(int) * Max(e->ncolumns, 1));
	for (int i = 0; i < e->ncolumns; i++)
	{
		e->first[i] = p;
		p += e->cols[i] ? CatColumnWidth(e->cols[i]) : 1;
	}
	e->p = p;
}

/*
 * Reads a stored encoding (model_versions.encoding) for the model's
 * feature columns; NULL when none of them is categorical.
 */
Encoding *
EncodingFromJsonb(Jsonb *j, char **columns, int ncolumns)
{
	Encoding   *e = palloc0(sizeof(Encoding));
	bool		any = false;

	e->ncolumns = ncolumns;
	e->cols = palloc0(sizeof(CatColumn *) * Max(ncolumns, 1));
	for (int i = 0; i < ncolumns; i++)
	{
		JsonbValue *v = getKeyJsonValueFromContainer(&j->root, columns[i],
													 strlen(columns[i]), NULL);
		JsonbValue *lv;
		JsonbValue *ov;
		JsonbValue	obj;
		char	  **levels;
		int			n;

		if (v == NULL)
			continue;
		if (v->type != jbvBinary)
			elog(ERROR, "malformed encoding of feature column \"%s\"", columns[i]);
		obj = *v;
		lv = getKeyJsonValueFromContainer(obj.val.binary.data, "levels", 6, NULL);
		ov = getKeyJsonValueFromContainer(obj.val.binary.data, "other", 5, NULL);
		if (lv == NULL || lv->type != jbvBinary || ov == NULL || ov->type != jbvBool)
			elog(ERROR, "malformed encoding of feature column \"%s\"", columns[i]);
		n = JsonContainerSize(lv->val.binary.data);
		levels = palloc(sizeof(char *) * Max(n, 1));
		for (int k = 0; k < n; k++)
		{
			JsonbValue *s = getIthJsonbValueFromContainer(lv->val.binary.data, k);

			if (s == NULL || s->type != jbvString)
				elog(ERROR, "malformed encoding of feature column \"%s\"", columns[i]);
			levels[k] = pnstrdup(s->val.string.val, s->val.string.len);
		}
		e->cols[i] = CatColumnMake(levels, n, ov->val.boolean);
		any = true;
	}
	if (!any)
		return NULL;
	EncodingLayout(e);
	return e;
}

/* The stored form of an encoding: JSON text, NULL when there is none. */
char *
EncodingToJson(const Encoding *e, char **columns)
{
	StringInfoData b;
	bool		first = true;

	if (e == NULL)
		return NULL;
	initStringInfo(&b);
	appendStringInfoChar(&b, '{');
	for (int i = 0; i < e->ncolumns; i++)
	{
		CatColumn  *c = e->cols[i];

		if (c == NULL)
			continue;
		if (!first)
			appendStringInfoString(&b, ", ");
		first = false;
		escape_json(&b, columns[i]);
		appendStringInfoString(&b, ": {\"levels\": [");
		for (int k = 0; k < c->nlevels; k++)
		{
			if (k > 0)
				appendStringInfoString(&b, ", ");
			escape_json(&b, c->levels[k]);
		}
		appendStringInfo(&b, "], \"other\": %s}", c->other ? "true" : "false");
	}
	appendStringInfoChar(&b, '}');
	return b.data;
}

/* ARRAY['l1', ...]::text[] of a column's levels. */
static char *
CatLevelsArray(const CatColumn *c)
{
	StringInfoData b;

	initStringInfo(&b);
	appendStringInfoString(&b, "ARRAY[");
	for (int k = 0; k < c->nlevels; k++)
		appendStringInfo(&b, "%s%s", k > 0 ? "," : "",
						 quote_literal_cstr(c->levels[k]));
	appendStringInfoString(&b, "]::text[]");
	return b.data;
}

/*
 * The SQL expression of slot k of a categorical column of the source (s),
 * as serving reads the column (CatReadDatum): 1 when the value is that
 * level (k < nlevels) or not any level (the other slot), 0 otherwise, NULL
 * for NULL; without an other slot, NULL in every slot for a value that is
 * not a level (missing, as serving has it).  A constant array of nine
 * levels or more is looked up by hash (PostgreSQL's hashed ScalarArrayOp).
 */
char *
CatSlotExpr(const char *column, const CatColumn *c, int k)
{
	const char *qc = quote_identifier(column);

	if (k < c->nlevels && c->other)
		return psprintf("((s.%s)::text COLLATE \"C\" = %s)::int::float8", qc,
						quote_literal_cstr(c->levels[k]));
	if (k < c->nlevels)
		return psprintf("CASE WHEN (s.%s)::text COLLATE \"C\" = ANY (%s) THEN ((s.%s)::text COLLATE \"C\" = %s)::int::float8 END",
						qc, CatLevelsArray(c), qc, quote_literal_cstr(c->levels[k]));
	return psprintf("((s.%s)::text COLLATE \"C\" <> ALL (%s))::int::float8", qc,
					CatLevelsArray(c));
}

/* SQL: true when the column's value is not NULL and not one of its levels. */
char *
CatUnseenExpr(const char *column, const CatColumn *c)
{
	return psprintf("((s.%s)::text COLLATE \"C\" <> ALL (%s))", quote_identifier(column),
					CatLevelsArray(c));
}

/* The feature name of slot k: column=level, or column=(other). */
char *
CatSlotName(const char *column, const CatColumn *c, int k)
{
	return psprintf("%s=%s", column,
					k < c->nlevels ? c->levels[k] : CAT_OTHER_NAME);
}

/* qsort of strings. */
static int
CompareNames(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Errors when two features of an encoding have one name (a column "c=a"
 * beside a column "c" with a level "a"): the catalog, the coefficients and
 * the feature bins name each feature, and would mix the two up.
 */
static void
CheckSlotNames(TrainRun *run, Encoding *e)
{
	char	  **names;
	int			p;

	if (e == NULL)
		return;
	p = e->p;
	names = palloc(sizeof(char *) * Max(p, 1));
	for (int i = 0; i < run->nfeaturecols; i++)
	{
		if (e->cols[i] == NULL)
			names[e->first[i]] = run->featurecols[i];
		else
			for (int k = 0; k < CatColumnWidth(e->cols[i]); k++)
				names[e->first[i] + k] = CatSlotName(run->featurecols[i], e->cols[i], k);
	}
	qsort(names, p, sizeof(char *), CompareNames);
	for (int j = 1; j < p; j++)
		if (strcmp(names[j - 1], names[j]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("two features would be named \"%s\"", names[j]),
					 errdetail("A categorical column's features are named column=level, and another feature column or level gives the same name."),
					 errhint("Rename a column, or leave one of them out.")));
	pfree(names);
}

/*
 * Builds the run's feature expressions from an encoding (NULL: every
 * column numeric): one SQL expression per slot (run->slotexpr), the
 * float8[] of them (run->xexpr), and run->p.
 */
void
ApplyEncoding(TrainRun *run, Encoding *e)
{
	StringInfoData x;
	int			p = e ? e->p : run->nfeaturecols;
	int			s = 0;

	run->enc = e;
	run->slotexpr = palloc(sizeof(char *) * Max(p, 1));
	for (int i = 0; i < run->nfeaturecols; i++)
	{
		CatColumn  *c = e ? e->cols[i] : NULL;

		if (c == NULL)
		{
			if (TypeIsCategorical(run->coltypes[i]))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("feature column \"%s\" is %s, but the model reads it as a number",
								run->featurecols[i], format_type_be(run->coltypes[i]))));
			run->slotexpr[s++] = Float8Expr(run->featurecols[i], run->coltypes[i]);
			continue;
		}
		if (!TypeIsCategorical(run->coltypes[i]))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("feature column \"%s\" must be text, varchar, char or an enum, not %s",
							run->featurecols[i], format_type_be(run->coltypes[i])),
					 errdetail("The model reads it as a categorical feature.")));
		for (int k = 0; k < CatColumnWidth(c); k++)
			run->slotexpr[s++] = CatSlotExpr(run->featurecols[i], c, k);
	}
	CheckSlotNames(run, e);
	initStringInfo(&x);
	appendStringInfoString(&x, "ARRAY[");
	for (int j = 0; j < p; j++)
		appendStringInfo(&x, "%s%s", j > 0 ? "," : "", run->slotexpr[j]);
	appendStringInfoString(&x, "]::float8[]");
	run->xexpr = x.data;
	run->p = p;
}

/*
 * The encoding of the deployed version of the run's model when it reads
 * the same feature columns, for warm_start; else NULL.
 */
static Encoding *
DeployedEncoding(TrainRun *run)
{
	Oid			types[2] = {TEXTOID, TEXTARRAYOID};
	Datum		values[2];
	Datum	   *cols = palloc(sizeof(Datum) * run->nfeaturecols);
	bool		isnull;
	Datum		d;

	for (int i = 0; i < run->nfeaturecols; i++)
		cols[i] = CStringGetTextDatum(run->featurecols[i]);
	values[0] = CStringGetTextDatum(run->model);
	values[1] = PointerGetDatum(construct_array(cols, run->nfeaturecols, TEXTOID,
												-1, false, TYPALIGN_INT));
	if (SPI_execute_with_args("SELECT v.encoding FROM streamml.models m "
							  "JOIN streamml.model_versions v "
							  "ON v.model = m.name AND v.version = m.deployed_version "
							  "WHERE m.name = $1 AND m.feature_columns OPERATOR(pg_catalog.=) $2 "
							  "AND v.encoding IS NOT NULL LIMIT 1",
							  2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the deployed version");
	if (SPI_processed == 0)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return EncodingFromJsonb(DatumGetJsonbPCopy(d), run->featurecols,
							 run->nfeaturecols);
}

/*
 * Finds the levels of the run's categorical feature columns on its
 * training rows (those with a target), in one scan, and sets the run's
 * feature expressions.  Nothing to do without categorical columns.  With
 * warm_start, the deployed version's levels are kept instead (the model
 * continues with the features it has), when it reads the same columns.
 */
void
ResolveCategories(TrainRun *run)
{
	StringInfoData sql;
	Encoding   *e;
	int			ncat = 0;
	char	 ***kept;
	int		   *nkept;
	int64	   *distinct;

	if (run->featarray || run->coltypes == NULL)
		return;
	for (int i = 0; i < run->nfeaturecols; i++)
		if (TypeIsCategorical(run->coltypes[i]))
			ncat++;
	if (ncat == 0)
		return;
	if (run->warm_start && (e = DeployedEncoding(run)) != NULL)
	{
		bool		same = true;

		/* the same columns are categorical (their types may have changed) */
		for (int i = 0; i < run->nfeaturecols; i++)
			same &= (e->cols[i] != NULL) == TypeIsCategorical(run->coltypes[i]);
		if (same)
		{
			ApplyEncoding(run, e);
			return;
		}
	}

	initStringInfo(&sql);
	appendStringInfoString(&sql,
						   "SELECT t.i, t.v, t.d FROM (SELECT c.i, c.v, "
						   "pg_catalog.count(*) OVER w AS d, "
						   "pg_catalog.row_number() OVER (w ORDER BY c.n DESC, c.v COLLATE \"C\" DESC) AS r "
						   "FROM (SELECT k.i, k.v, pg_catalog.count(*) AS n FROM ");
	appendStringInfo(&sql, "%s CROSS JOIN LATERAL (VALUES ", run->from);
	for (int i = 0, first = 1; i < run->nfeaturecols; i++)
		if (TypeIsCategorical(run->coltypes[i]))
		{
			appendStringInfo(&sql, "%s(%d, (s.%s)::text COLLATE \"C\")", first ? "" : ", ", i,
							 quote_identifier(run->featurecols[i]));
			first = 0;
		}
	appendStringInfo(&sql,
					 ") k(i, v) WHERE (%s) AND (%s) IS NOT NULL AND k.v IS NOT NULL "
					 "GROUP BY 1, 2) c WINDOW w AS (PARTITION BY c.i)) t "
					 "WHERE t.r <= %d ORDER BY t.i, t.r",
					 run->train_where, run->yexpr, run->max_categories);
	RunQuery(run, sql.data, 0, NULL, NULL, NULL);
	run->passes++;

	kept = palloc0(sizeof(char **) * run->nfeaturecols);
	nkept = palloc0(sizeof(int) * run->nfeaturecols);
	distinct = palloc0(sizeof(int64) * run->nfeaturecols);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		int			i = atoi(ResultText(r, 1));

		if (kept[i] == NULL)
			kept[i] = palloc(sizeof(char *) * run->max_categories);
		distinct[i] = strtoll(ResultText(r, 3), NULL, 10);
		kept[i][nkept[i]++] = MemoryContextStrdup(run->cxt, ResultText(r, 2));
	}
	SPI_freetuptable(SPI_tuptable);

	e = palloc0(sizeof(Encoding));
	e->ncolumns = run->nfeaturecols;
	e->cols = palloc0(sizeof(CatColumn *) * run->nfeaturecols);
	for (int i = 0; i < run->nfeaturecols; i++)
	{
		bool		other;

		if (!TypeIsCategorical(run->coltypes[i]))
			continue;
		if (distinct[i] == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("categorical feature column \"%s\" has no value in the training rows",
							run->featurecols[i])));
		other = distinct[i] > run->max_categories;
		if (other && !run->other_level)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("categorical feature column \"%s\" has " INT64_FORMAT " distinct values, more than max_categories %d",
							run->featurecols[i], distinct[i], run->max_categories),
					 errhint("Raise option \"max_categories\", or set option \"other_level\" to true to keep the most frequent values and group the rest.")));
		if (other)
			nkept[i] = run->max_categories - 1;
		e->cols[i] = CatColumnMake(kept[i], nkept[i], other);
	}
	EncodingLayout(e);
	ApplyEncoding(run, e);
}
