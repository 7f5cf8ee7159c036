/*
 * predict_row.c
 *		The row forms of serving: streamml.predict(model, row) and its
 *		predict_proba and predict_class twins read the model's feature
 *		columns by name from a composite row (a table's row, a ROW(...)
 *		with a named type), and its group column for a per-group model.
 *
 * The columns are found once per call site and row type (a RowReader in
 * the call's memory; made again when the type's definition changes, as a
 * column renamed in a transaction whose PL/pgSQL keeps the call site), then
 * each row is deformed once, up to the last
 * column the model reads (slot_getsomeattrs on a slot of the reader): the
 * columns after it are never looked at.  Over a table's whole row the
 * planner passes the columns themselves instead of the row
 * (predict_support.c): the reader then maps the row type's columns to the
 * call's arguments once, by name as for a row, and takes each row's
 * values from the arguments, with no row to form or deform.  A NULL feature
 * makes the prediction NULL for a linear model and is a missing value
 * (NaN) for a tree model, as in training; an infinite one makes it NULL.
 *
 * A categorical column (text, varchar, char, enum: the model's encoding,
 * categorical.c) fills its one-hot slots: a value that is not one of its
 * levels (unseen in training, or too rare to keep) is the "other" level
 * when the column has one, else missing (NULL prediction for a linear
 * model, missing for a tree); both are counted per model and column in
 * this backend (streamml.unseen_categories()).  Enum values are matched
 * by oid, text by bytes: no palloc per row.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

#include "ml/categorical.h"
#include "ml/group_key.h"
#include "ml/predict_row.h"
#include "number.h"

/* Rows of this backend with an unseen category, by model and column. */
typedef struct UnseenKey
{
	char		model[NAMEDATALEN];
	char		column[NAMEDATALEN];
} UnseenKey;
typedef struct UnseenEntry
{
	UnseenKey	key;
	int64		other;			/* not a kept level: the "other" level */
	int64		missing;		/* unseen, no other level: missing */
} UnseenEntry;
static HTAB *UnseenCounts = NULL;

struct RowReader
{
	Oid			typid;
	int32		typmod;
	TypeCacheEntry *tce;		/* the row type's typcache entry; NULL: record */
	uint64		desc_id;		/* its tupDesc_identifier when built */
	char	  **columns;		/* the model's, to tell a new model */
	const char *group_by;
	int			ncolumns;
	int		   *attnums;		/* 0-based, per feature column */
	Oid		   *types;
	const Encoding *enc;		/* NULL: every column numeric */
	CatReader  *cats;			/* per categorical column, its reader */
	UnseenEntry **unseen;		/* per categorical column, its counter */
	int			group_att;		/* -1 without group */
	GroupKeyOut group_out;		/* its key text (group_key.c) */
	TupleDesc	desc;
	TupleTableSlot *slot;		/* holds the row being read (a row) */
	int			natts;			/* columns deformed: up to the last one read */
	int		   *argnos;			/* per attribute, its argument (columns), or -1 */
	Datum	   *values;			/* the slot's, or copied from the arguments */
	bool	   *nulls;
	double	   *x;				/* p values */
};


/*
 * Whether the definition of the reader's row type changed since it was
 * built: any ALTER of the type or its table (a column renamed included)
 * clears the typcache entry's tupDesc_identifier (entries live as long as
 * the backend), and its next load gives a new one.  A record type's
 * registered descriptor never changes.  One load per row: no lookup.
 */
static inline bool
RowTypeChanged(RowReader *r)
{
	return r->tce != NULL && r->tce->tupDesc_identifier != r->desc_id;
}

/*
 * Finds the attribute of a column name in a row type, or errors (also
 * when a record names two columns so: which one is meant is unknown).
 */
static int
RowAttribute(TupleDesc desc, const char *column, const char *model,
			 Oid typid)
{
	int			found = -1;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || strcmp(NameStr(att->attname), column) != 0)
			continue;
		if (found >= 0)
			ereport(ERROR,
					(errcode(ERRCODE_AMBIGUOUS_COLUMN),
					 errmsg("row of type %s has two columns \"%s\", which model \"%s\" reads",
							format_type_be(typid), column, model)));
		found = i;
	}
	if (found < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("row of type %s has no column \"%s\", which model \"%s\" reads",
						format_type_be(typid), column, model)));
	return found;
}

/* The unseen-category counter of a model's column, created at zero. */
static UnseenEntry *
UnseenCounter(const char *model, const char *column)
{
	UnseenKey	key;
	UnseenEntry *e;
	bool		found;

	if (UnseenCounts == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(UnseenKey);
		ctl.entrysize = sizeof(UnseenEntry);
		ctl.hcxt = TopMemoryContext;
		UnseenCounts = hash_create("pg_streamml unseen categories", 16, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	strlcpy(key.model, model, NAMEDATALEN);
	strlcpy(key.column, column, NAMEDATALEN);
	e = hash_search(UnseenCounts, &key, HASH_ENTER, &found);
	if (!found)
	{
		e->other = 0;
		e->missing = 0;
	}
	return e;
}

/*
 * Encodes categorical column i of the deformed row into x (its slots);
 * false when the value is missing.  Counts an unseen value.
 */
static bool
RowReadCategory(RowReader *r, int i, double *x)
{
	int			att = r->attnums[i];
	CatResult	res = CatReadDatum(&r->cats[i], r->values[att], r->nulls[att], x);

	/* a NULL is not counted: it is missing in training too */
	if (res == CAT_OTHER)
		r->unseen[i]->other++;
	else if (res == CAT_MISSING && !r->nulls[att])
		r->unseen[i]->missing++;
	return res != CAT_MISSING;
}

/*
 * Maps the columns of a row type to the arguments of a call that passes
 * them (from argument first on: every column not dropped, in order), and
 * gives the reader arrays for the values of the columns it reads.
 */
static void
RowReaderMapArguments(RowReader *r, FunctionCallInfo fcinfo, int first)
{
	int			argno = first;
	bool		match = true;

	r->argnos = palloc(sizeof(int) * Max(r->desc->natts, 1));
	for (int i = 0; i < r->desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(r->desc, i);

		r->argnos[i] = -1;
		if (att->attisdropped)
			continue;
		/* the planner passes these columns; a plan is remade when they change */
		if (argno >= PG_NARGS() ||
			get_fn_expr_argtype(fcinfo->flinfo, argno) != att->atttypid)
			match = false;
		r->argnos[i] = argno++;
	}
	if (!match || argno != PG_NARGS())
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the arguments are not the columns of row type %s",
						format_type_be(r->typid)),
				 errhint("Call the row form: streamml.predict(model, row).")));
	r->values = palloc0(sizeof(Datum) * Max(r->desc->natts, 1));
	r->nulls = palloc0(sizeof(bool) * Max(r->desc->natts, 1));
}

/*
 * Builds the reader of a row type for a model's columns: over a row, or
 * (fcinfo not NULL) over a call's arguments from argument first on.
 */
static RowReader *
RowReaderBuild(MemoryContext cxt, Oid typid, int32 typmod, const char *model,
			   char **columns, int ncolumns, int p, const char *group_by,
			   const Encoding *enc, FunctionCallInfo fcinfo, int first)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	RowReader  *r = palloc0(sizeof(RowReader));
	TupleDesc	desc = lookup_rowtype_tupdesc(typid, typmod);

	r->desc = CreateTupleDescCopy(desc);
	ReleaseTupleDesc(desc);
	r->typid = typid;
	r->typmod = typmod;
	if (typid != RECORDOID)
	{
		r->tce = lookup_type_cache(typid, TYPECACHE_TUPDESC);
		r->desc_id = r->tce->tupDesc_identifier;
	}
	r->columns = columns;
	r->group_by = group_by;
	r->ncolumns = ncolumns;
	r->attnums = palloc(sizeof(int) * ncolumns);
	r->types = palloc(sizeof(Oid) * ncolumns);
	r->enc = enc;
	r->cats = palloc0(sizeof(CatReader) * ncolumns);
	r->unseen = palloc0(sizeof(UnseenEntry *) * ncolumns);
	for (int i = 0; i < ncolumns; i++)
	{
		Oid			t;

		r->attnums[i] = RowAttribute(r->desc, columns[i], model, typid);
		t = TupleDescAttr(r->desc, r->attnums[i])->atttypid;
		r->types[i] = t;
		if (enc != NULL && enc->cols[i] != NULL)
		{
			const CatColumn *c = enc->cols[i];

			if (!TypeIsCategorical(t))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column \"%s\" of the row must be text, varchar, char or an enum, not %s",
								columns[i], format_type_be(t)),
						 errdetail("Model \"%s\" reads it as a categorical feature.", model)));
			r->unseen[i] = UnseenCounter(model, columns[i]);
			CatReaderInit(&r->cats[i], c, t);
			continue;
		}
		if (ncolumns == 1 && p > 1)
		{
			if (t != FLOAT8ARRAYOID)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column \"%s\" of the row must be float8[], not %s",
								columns[i], format_type_be(t)),
						 errdetail("Model \"%s\" reads its %d features from that one array column.",
								   model, p)));
		}
		else if (!(t == INT2OID || t == INT4OID || t == INT8OID ||
				   t == FLOAT4OID || t == FLOAT8OID || t == NUMERICOID ||
				   t == BOOLOID))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of the row must be numeric or boolean, not %s",
							columns[i], format_type_be(t)),
					 errdetail("Model \"%s\" reads it as a feature.", model)));
	}
	r->group_att = -1;
	if (group_by)
	{
		r->group_att = RowAttribute(r->desc, group_by, model, typid);
		GroupKeyOutInit(&r->group_out,
						TupleDescAttr(r->desc, r->group_att)->atttypid,
						group_by, cxt);
	}
	r->natts = r->group_att + 1;
	for (int i = 0; i < ncolumns; i++)
		r->natts = Max(r->natts, r->attnums[i] + 1);
	if (fcinfo != NULL)
		RowReaderMapArguments(r, fcinfo, first);
	else
	{
		r->slot = MakeSingleTupleTableSlot(r->desc, &TTSOpsHeapTuple);
		r->values = r->slot->tts_values;
		r->nulls = r->slot->tts_isnull;
	}
	r->x = palloc(sizeof(double) * Max(p, 1));
	MemoryContextSwitchTo(old);
	return r;
}

/*
 * Reads the features of the row whose columns the reader holds (values,
 * nulls) into *xp (p values, the reader's buffer) and its group key (NULL
 * when the group column is NULL).  Returns false when the prediction is
 * NULL: a NULL feature of a model without missing values (missing_ok
 * false), an infinite one, or a feature array that does not fit.
 */
static bool
RowReadValues(RowReader *r, int ncolumns, int p, bool missing_ok,
			  const Encoding *enc, double **xp, const char **group_key,
			  int *group_len)
{
	double	   *x = r->x;
	bool		ok = true;

	*xp = x;
	*group_key = NULL;
	*group_len = 0;
	/* the key as training wrote it, the same in every session */
	if (r->group_att >= 0 && !r->nulls[r->group_att])
		*group_key = GroupKeyText(&r->group_out, r->values[r->group_att],
								  group_len);
	if (enc != NULL)
	{
		for (int i = 0; i < ncolumns; i++)
		{
			int			att = r->attnums[i];
			double	   *xi = x + enc->first[i];

			if (enc->cols[i] != NULL)
			{
				if (!RowReadCategory(r, i, xi) && !missing_ok)
					ok = false;
				continue;
			}
			*xi = r->nulls[att] ? NAN : NumberOrInf(r->values[att], r->types[i]);
			if (r->nulls[att] && !missing_ok)
				ok = false;
		}
		if (!ok)
			return false;
	}
	else if (ncolumns == 1 && p > 1)
	{
		const double *v;
		ArrayType  *a;

		if (r->nulls[r->attnums[0]])
			return false;
		a = DatumGetArrayTypeP(r->values[r->attnums[0]]);
		if (ARR_NDIM(a) != 1 || ARR_DIMS(a)[0] != p)
			return false;
		if (missing_ok)
			v = FeaturesWithMissing(a, p);
		else
		{
			if (ARR_HASNULL(a) && array_contains_nulls(a))
				return false;
			v = (const double *) ARR_DATA_PTR(a);
		}
		if (v == NULL)
			return false;
		memcpy(x, v, sizeof(double) * p);
	}
	else
		for (int i = 0; i < ncolumns; i++)
		{
			int			att = r->attnums[i];

			x[i] = r->nulls[att] ? NAN : NumberOrInf(r->values[att], r->types[i]);
			if (r->nulls[att] && !missing_ok)
				ok = false;
		}
	for (int j = 0; j < p; j++)
		if (isinf(x[j]) || (isnan(x[j]) && !missing_ok))
			ok = false;
	return ok;
}

/*
 * Reads the features of a composite row into *xp and its group key (a
 * palloc'd string, NULL when the group column is NULL), as RowReadValues.
 */
bool
RowRead(RowReader **reader, MemoryContext cxt, HeapTupleHeader row,
		const char *model, char **columns, int ncolumns, int p,
		bool missing_ok, const char *group_by, const Encoding *enc,
		double **xp, const char **group_key, int *group_len)
{
	RowReader  *r = *reader;
	Oid			typid = HeapTupleHeaderGetTypeId(row);
	int32		typmod = HeapTupleHeaderGetTypMod(row);
	HeapTupleData tuple;

	/*
	 * A reader kept across statements (a PL/pgSQL simple expression, a
	 * cursor) must not outlive its type's definition: columns renamed in
	 * the transaction would be read by their old names' positions.
	 */
	if (r == NULL || r->slot == NULL || r->typid != typid ||
		r->typmod != typmod || r->columns != columns ||
		r->group_by != group_by || r->enc != enc || RowTypeChanged(r))
		*reader = r = RowReaderBuild(cxt, typid, typmod, model, columns,
									 ncolumns, p, group_by, enc, NULL, 0);
	tuple.t_len = HeapTupleHeaderGetDatumLength(row);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = row;
	ExecStoreHeapTuple(&tuple, r->slot, false);
	slot_getsomeattrs(r->slot, r->natts);
	return RowReadValues(r, ncolumns, p, missing_ok, enc, xp, group_key,
						 group_len);
}

/*
 * Reads the features of a row of type typid whose columns are the call's
 * arguments from argument first on (every column not dropped, in order),
 * as RowRead reads a composite row of that type: the same columns by name,
 * the same errors, the same values.
 */
bool
RowReadArgs(RowReader **reader, MemoryContext cxt, FunctionCallInfo fcinfo,
			Oid typid, int first, const char *model, char **columns,
			int ncolumns, int p, bool missing_ok, const char *group_by,
			const Encoding *enc, double **xp, const char **group_key,
			int *group_len)
{
	RowReader  *r = *reader;

	if (r == NULL || r->argnos == NULL || r->typid != typid ||
		r->columns != columns || r->group_by != group_by || r->enc != enc ||
		RowTypeChanged(r))
		*reader = r = RowReaderBuild(cxt, typid, -1, model, columns, ncolumns,
									 p, group_by, enc, fcinfo, first);
	for (int i = 0; i < ncolumns; i++)
	{
		int			att = r->attnums[i];

		r->values[att] = fcinfo->args[r->argnos[att]].value;
		r->nulls[att] = fcinfo->args[r->argnos[att]].isnull;
	}
	if (r->group_att >= 0)
	{
		r->values[r->group_att] = fcinfo->args[r->argnos[r->group_att]].value;
		r->nulls[r->group_att] = fcinfo->args[r->argnos[r->group_att]].isnull;
	}
	return RowReadValues(r, ncolumns, p, missing_ok, enc, xp, group_key,
						 group_len);
}

/*
 * The values of a float8[] feature argument of a tree model: NULL and NaN
 * are missing values (NaN); NULL when one is infinite.
 */
const double *
FeaturesWithMissing(ArrayType *a, int n)
{
	double	   *x;
	Datum	   *elems;
	bool	   *nulls;
	int			count;

	if (!(ARR_HASNULL(a) && array_contains_nulls(a)))
	{
		const double *v = (const double *) ARR_DATA_PTR(a);

		for (int j = 0; j < n; j++)
			if (isinf(v[j]))
				return NULL;
		return v;
	}
	deconstruct_array(a, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, &count);
	x = palloc(sizeof(double) * Max(n, 1));
	for (int j = 0; j < n && j < count; j++)
	{
		x[j] = nulls[j] ? NAN : DatumGetFloat8(elems[j]);
		if (isinf(x[j]))
			return NULL;
	}
	return x;
}

PG_FUNCTION_INFO_V1(unseen_categories);

/*
 * SQL streamml.unseen_categories(): for each model and categorical column
 * this backend has served through the row forms, how many values were not
 * one of the column's levels and became the "other" level (as_other:
 * unseen in training, or too rare to keep), and how many became missing
 * (as_missing: unseen, and the column has no other level).
 */
Datum
unseen_categories(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS seq;
	UnseenEntry *e;

	InitMaterializedSRF(fcinfo, 0);
	if (UnseenCounts == NULL)
		return (Datum) 0;
	hash_seq_init(&seq, UnseenCounts);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		Datum		values[4];
		bool		nulls[4] = {false};

		values[0] = CStringGetTextDatum(e->key.model);
		values[1] = CStringGetTextDatum(e->key.column);
		values[2] = Int64GetDatum(e->other);
		values[3] = Int64GetDatum(e->missing);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
