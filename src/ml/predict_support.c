/*
 * predict_support.c
 *		The planner support function of the row forms of serving:
 *		streamml.predict(model, row), predict_proba and predict_class over
 *		a table's whole row become calls that take the row's columns.
 *
 * `SELECT streamml.predict_proba('m', t) FROM t t` makes the executor form
 * a composite datum of every row (a copy of the tuple, ExecEvalWholeRowVar)
 * only for the function to take it apart again.  When the row argument is
 * a whole-row Var of a table (plain, partitioned, or a materialized view)
 * of the query itself, SupportRequestSimplify replaces the call by its
 * columns form (predict_columns, predict_proba_columns,
 * predict_class_columns): the model, the row type, the row's tableoid,
 * then a Var of every column not dropped, in order.  The columns form reads
 * the model's columns by name from them at execution, with the reader of
 * the row form (predict_row.c), so nothing the model reads is fixed at
 * planning: a model retrained on other columns between two executions of
 * a prepared statement is served as by the row form.
 *
 * The row forms are strict; the columns forms cannot be (a column may be
 * NULL), so the row's nullness travels in the tableoid: NULL only where
 * the whole row is, on the nullable side of an outer join.  Every other
 * row argument (ROW(...), a subquery's or a function's row, a Var of an
 * outer query level, a foreign table's row, any row of a query with
 * grouping sets or LATERAL) keeps the row form, as does a table with more columns
 * than a call can take, and a row form whose privileges or settings were
 * changed (its EXECUTE privilege is checked only where it is called; such
 * a change replans).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/pathnodes.h"
#include "nodes/supportnodes.h"
#include "optimizer/planmain.h"
#include "parser/parse_func.h"
#include "parser/parsetree.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "ml/predict_row.h"

/*
 * Whether calling a function goes as its CREATE FUNCTION made it: default
 * privileges (EXECUTE for PUBLIC), not SECURITY DEFINER, no SET options.
 * The columns form may stand in for the row form only then: a REVOKE on
 * the row form must still refuse the call.
 */
static bool
FunctionAsCreated(Oid funcid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	bool		plain;

	if (!HeapTupleIsValid(tup))
		return false;
	plain = heap_attisnull(tup, Anum_pg_proc_proacl, NULL) &&
		heap_attisnull(tup, Anum_pg_proc_proconfig, NULL) &&
		!((Form_pg_proc) GETSTRUCT(tup))->prosecdef;
	ReleaseSysCache(tup);
	return plain;
}

/*
 * The columns form of a row form (by its name, in its schema), or
 * InvalidOid.
 */
static Oid
ColumnsFunction(Oid rowform)
{
	char	   *name = get_func_name(rowform);
	char	   *schema = get_namespace_name(get_func_namespace(rowform));
	Oid			argtypes[PREDICT_FIRST_COLUMN + 1] = {
		TEXTOID, REGTYPEOID, OIDOID, ANYOID
	};

	if (name == NULL || schema == NULL)
		return InvalidOid;
	return LookupFuncName(list_make2(makeString(schema),
									 makeString(psprintf("%s_columns", name))),
						  PREDICT_FIRST_COLUMN + 1, argtypes, true);
}

/*
 * The columns form of a row-form call whose row is a whole-row Var of a
 * table of this query level, or NULL to keep the call as it is.
 */
static Node *
PredictSimplify(SupportRequestSimplify *req)
{
	FuncExpr   *call = req->fcall;
	Var		   *row;
	RangeTblEntry *rte;
	Relation	rel;
	TupleDesc	desc;
	List	   *args;
	Oid			target;
	int			ncolumns = 0;
	FuncExpr   *result;

	/*
	 * Grouping sets null a grouped row in the sets without it, not its
	 * columns: there the columns are not the row.
	 */
	if (req->root == NULL || req->root->parse->groupingSets != NIL ||
		list_length(call->args) != 2 || !IsA(lsecond(call->args), Var))
		return NULL;

	/*
	 * Nor in a query with LATERAL: a subquery pulled up into this level
	 * (a UNION ALL leg) can reach here after the columns its lateral
	 * references need from the row's relation were settled, and the
	 * columns would not be there to read.
	 */
	for (PlannerInfo *r = req->root; r != NULL; r = r->parent_root)
		if (r->hasLateralRTEs)
			return NULL;
	row = (Var *) lsecond(call->args);
	/* an outer level's row: its relation may not be planned to give columns */
	if (row->varattno != InvalidAttrNumber || row->varlevelsup != 0 ||
		row->varno < 1 || row->varno > list_length(req->root->parse->rtable))
		return NULL;
	rte = planner_rt_fetch(row->varno, req->root);
	if (rte->rtekind != RTE_RELATION ||
		!(rte->relkind == RELKIND_RELATION ||
		  rte->relkind == RELKIND_PARTITIONED_TABLE ||
		  rte->relkind == RELKIND_MATVIEW))
		return NULL;
	target = ColumnsFunction(call->funcid);
	/* a GRANT, REVOKE or ALTER of the row form replans */
	record_plan_function_dependency(req->root, call->funcid);
	if (!OidIsValid(target) || !FunctionAsCreated(call->funcid) ||
		!FunctionAsCreated(target))
		return NULL;

	/* the planner holds a lock on every relation of the query */
	rel = table_open(rte->relid, NoLock);
	desc = RelationGetDescr(rel);
	for (int i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			ncolumns++;
	if (row->vartype != rel->rd_rel->reltype || ncolumns == 0 ||
		PREDICT_FIRST_COLUMN + ncolumns > FUNC_MAX_ARGS)
	{
		table_close(rel, NoLock);
		return NULL;
	}
	args = list_make3(linitial(call->args),
					  makeConst(REGTYPEOID, -1, InvalidOid, sizeof(Oid),
								ObjectIdGetDatum(row->vartype), false, true),
					  makeVar(row->varno, TableOidAttributeNumber, OIDOID, -1,
							  InvalidOid, 0));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped)
			args = lappend(args, makeVar(row->varno, att->attnum,
										 att->atttypid, att->atttypmod,
										 att->attcollation, 0));
	}
	table_close(rel, NoLock);

	result = makeFuncExpr(target, call->funcresulttype, args,
						  call->funccollid, call->inputcollid,
						  COERCE_EXPLICIT_CALL);
	result->location = call->location;
	return (Node *) result;
}

PG_FUNCTION_INFO_V1(predict_row_support);

/*
 * SQL streamml.predict_row_support(internal): the planner support function
 * of the row forms; answers SupportRequestSimplify.
 */
Datum
predict_row_support(PG_FUNCTION_ARGS)
{
	Node	   *req = (Node *) PG_GETARG_POINTER(0);

	if (IsA(req, SupportRequestSimplify))
		PG_RETURN_POINTER(PredictSimplify((SupportRequestSimplify *) req));
	PG_RETURN_POINTER(NULL);
}
