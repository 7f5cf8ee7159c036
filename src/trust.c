/*
 * trust.c
 *		What the extension reads as a role other than the one that wrote
 *		it: checks that another role's objects cannot run code of theirs
 *		as the reader.
 *
 * Outcome trackers, training runs, evaluations and monitors read tables
 * as their owner, automatically and again and again (at every insert into
 * a tracked source, at every retrain or monitor check), long after the
 * owner set them up.  A table's owner, or a type's, can attach code that
 * such a read runs as the reader:
 *
 *	a column's type		a cast from a type of its own (to text, to json,
 *						which to_jsonb calls; an implicit cast a
 *						comparison takes): CheckTypeTrusted;
 *	a view				whose functions run as the reader, whether or not
 *						it has security_invoker (only its tables are read
 *						with the view owner's privileges);
 *	row-level security	policies, whose expressions run as the reader;
 *	a domain			whose CHECK constraints run at a coercion to it.
 *
 * CheckRelationTrusted refuses another role's view or policy that calls a
 * function or operator that is not built in (a policy with a sublink, or a
 * view with security_invoker, whatever it calls), and checks what a view
 * reads, relation by relation.
 *
 * Each is refused (42501) unless the object is built in, or belongs to the
 * reader or to a superuser; the checks run at every statement, since a
 * column's type, a view's options and a table's policies may change after
 * the tracker, model or monitor was made, and before anything is planned
 * (the planner inlines SQL functions and folds immutable ones).  What was
 * checked stays locked until the reader's transaction ends, so that what
 * is read is what was checked (TAP 095).
 *
 * A view's or policy's expressions, anyone's, may not make a value of a
 * type the reader cannot trust either (UntrustedValueType): a domain's
 * CHECK constraints run at a coercion to it, or at the input of a row or
 * array holding it, with built-in functions only.  A query source is the
 * reader's own SQL, but what it reads is another role's and may change:
 * CheckQueryTrusted checks its relations as CheckRelationTrusted does.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/analyze.h"
#include "rewrite/rewriteHandler.h"
#include "rewrite/rowsecurity.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "pg_streamml.h"

/*
 * The first type in type or what it is made of (a domain's base type, an
 * array's element, a record's attributes, a range's subtype) that role
 * owner cannot trust, or InvalidOid: one that is not built in and that
 * another role than owner owns (a superuser's are trusted).  The owner of
 * a type may attach code to its values: a cast from it (to text, to json,
 * which to_jsonb calls), implicit casts that a comparison takes.
 */
static Oid
UntrustedType(Oid type, Oid owner, int depth)
{
	HeapTuple	tup;
	Form_pg_type t;
	Oid			found = InvalidOid;

	if (type < FirstNormalObjectId || depth > 16)
		return depth > 16 ? type : InvalidOid;
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	t = (Form_pg_type) GETSTRUCT(tup);
	if (t->typowner != owner && !superuser_arg(t->typowner))
		found = type;
	else if (t->typtype == TYPTYPE_DOMAIN)
		found = UntrustedType(t->typbasetype, owner, depth + 1);
	else if (OidIsValid(t->typelem) && IsTrueArrayType(t))
		found = UntrustedType(t->typelem, owner, depth + 1);
	else if (t->typtype == TYPTYPE_RANGE)
		found = UntrustedType(get_range_subtype(type), owner, depth + 1);
	else if (t->typtype == TYPTYPE_MULTIRANGE)
		found = UntrustedType(get_multirange_range(type), owner, depth + 1);
	else if (t->typtype == TYPTYPE_COMPOSITE)
	{
		TupleDesc	desc = lookup_rowtype_tupdesc(type, -1);

		for (int i = 0; i < desc->natts && !OidIsValid(found); i++)
			if (!TupleDescAttr(desc, i)->attisdropped)
				found = UntrustedType(TupleDescAttr(desc, i)->atttypid, owner, depth + 1);
		ReleaseTupleDesc(desc);
	}
	ReleaseSysCache(tup);
	return found;
}

/* The name of role, or "?" when it is gone. */
static const char *
RoleName(Oid role)
{
	const char *name = GetUserNameFromId(role, true);

	return name ? name : "?";
}

/* The owner of type. */
static Oid
TypeOwner(Oid type)
{
	HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
	Oid			owner = InvalidOid;

	if (HeapTupleIsValid(tup))
	{
		owner = ((Form_pg_type) GETSTRUCT(tup))->typowner;
		ReleaseSysCache(tup);
	}
	return owner;
}

/*
 * Errors unless role owner, whose statements read column col of table (or
 * query) relname, of type type (what: the kind and name of the object that
 * reads it), can trust the type (UntrustedType): otherwise the type's
 * owner could have the statements, run as owner whoever inserts or
 * whenever a retrain runs, call code of theirs.
 */
void
CheckTypeTrusted(Oid type, Oid owner, const char *col, const char *relname,
				 const char *what)
{
	Oid			bad = UntrustedType(type, owner, 0);

	if (OidIsValid(bad))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("column \"%s\" of \"%s\" has type %s, owned by role %s",
						col, relname, format_type_be(bad), RoleName(TypeOwner(bad))),
				 errdetail("The %s reads it as role %s, and the owner of a type can attach functions to its values (casts).",
						   what, RoleName(owner)),
				 errhint("Give the column a built-in type, or a type owned by role %s.",
						 RoleName(owner))));
}

/* CheckTypeTrusted of column col of table rel (none: no error). */
void
CheckColumnTypeTrusted(Oid rel, const char *col, Oid owner, const char *what)
{
	AttrNumber	att = get_attnum(rel, col);

	if (att > 0)
		CheckTypeTrusted(get_atttype(rel, att), owner, col, get_rel_name(rel), what);
}

/*
 * check_functions_in_node callback: a function that another role's view or
 * policy may not have its reader call, one that is not built in, or a
 * built-in one that acts as its caller beyond computing a value (its oid
 * then set in *(Oid *) context): a volatile one (set_config, setval,
 * lo_unlink, pg_terminate_backend act with the reader's privileges) or
 * one that runs SQL or reads a relation given as a value (query_to_xml,
 * ts_stat, which are volatile; table_to_xml and its kin, which are
 * stable), whose code no walk of the view sees.
 */
static bool
UntrustedCall(Oid func, void *context)
{
	if (func >= FirstNormalObjectId)
		return true;
	switch (func)
	{
		case F_TABLE_TO_XML:
		case F_TABLE_TO_XMLSCHEMA:
		case F_TABLE_TO_XML_AND_XMLSCHEMA:
		case F_SCHEMA_TO_XML:
		case F_SCHEMA_TO_XMLSCHEMA:
		case F_SCHEMA_TO_XML_AND_XMLSCHEMA:
		case F_DATABASE_TO_XML:
		case F_DATABASE_TO_XMLSCHEMA:
		case F_DATABASE_TO_XML_AND_XMLSCHEMA:
			break;
		default:
			if (func_volatile(func) != PROVOLATILE_VOLATILE)
				return false;
	}
	*(Oid *) context = func;
	return true;
}

/*
 * Whether expression node calls a function that another role's policy may
 * not (UntrustedCall; context as there).
 */
static bool
CallsUserFunction(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, UntrustedCall, context))
		return true;
	return expression_tree_walker(node, CallsUserFunction, context);
}

static void CheckRelation(Oid relid, Oid reader, const char *what, int depth);

/*
 * Errors for built-in function func (UntrustedCall) that another role's
 * object (a view, a policy) calls, read by what as role reader.
 */
static void
BuiltInCallError(Oid func, const char *object, Oid reader, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s calls function %s, which acts as its caller",
					object, format_procedure(func)),
			 errdetail("The %s reads it as role %s: a volatile function, or one that runs SQL or reads a relation it is given, would act as role %s on behalf of the object's owner.",
					   what, RoleName(reader), RoleName(reader)),
			 errhint("Another role's views and policies read by role %s may call stable or immutable built-in functions only.",
					 RoleName(reader))));
}

/* A walk of a view's query (ViewWalker). */
typedef struct ViewWalk
{
	Oid			view;
	Oid			reader;
	const char *what;
	int			depth;
	bool		foreign;		/* the view is another role's */
	bool		calls;			/* found: a call UntrustedCall refuses */
	Oid			func;			/* found: such a built-in function */
	Oid			type;			/* found: a value of an untrusted type made */
	Oid			other;			/* found: another role's function called */
} ViewWalk;

/*
 * check_functions_in_node callback: a function of another role than the
 * reader (not built in, not a superuser's), called by the reader's own
 * view or query source, whose owner may replace its body at any time; set
 * in ((ViewWalk *) context)->other.
 */
static bool
OtherRolesFunction(Oid func, void *context)
{
	ViewWalk   *w = (ViewWalk *) context;
	HeapTuple	tup;
	Oid			owner;

	if (func < FirstNormalObjectId)
		return false;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(func));
	if (!HeapTupleIsValid(tup))
		return false;
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	if (owner == w->reader || superuser_arg(owner))
		return false;
	w->other = func;
	return true;
}

/*
 * Errors for function func of another role that object (the reader's own
 * view, or query source) calls, read by what as role reader.
 */
static void
OtherRolesFunctionError(Oid func, const char *object, Oid reader, const char *what)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(func));
	Oid			owner = InvalidOid;

	if (HeapTupleIsValid(tup))
	{
		owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
		ReleaseSysCache(tup);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s calls function %s, owned by role %s",
					object, format_procedure(func), RoleName(owner)),
			 errdetail("The %s runs it as role %s, again and again, and the function's owner may replace its body at any time.",
					   what, RoleName(reader)),
			 errhint("Call built-in functions, or functions owned by role %s.",
					 RoleName(reader))));
}

/*
 * The first type that reader cannot trust (UntrustedType) of a value that
 * expression node makes by running code of its type, or InvalidOid: a
 * domain's CHECK constraints run at a coercion to it (CoerceToDomain), and
 * at the input of a row or an array that holds it (a cast from text, a
 * built-in that fills a row of the type, as jsonb_populate_record does; a
 * function's or XMLTABLE's column definition list), all as the reader,
 * whoever wrote the expression.
 */
static Oid
UntrustedValueType(Node *node, Oid reader)
{
	Oid			found = InvalidOid;
	ListCell   *lc;

	switch (nodeTag(node))
	{
		case T_CoerceToDomain:
		case T_CoerceViaIO:
		case T_ArrayCoerceExpr:
		case T_ConvertRowtypeExpr:
		case T_FuncExpr:
		case T_OpExpr:
		case T_Aggref:
		case T_WindowFunc:
		case T_SubscriptingRef:
			return UntrustedType(exprType(node), reader, 0);
		case T_RangeTblFunction:
			foreach(lc, ((RangeTblFunction *) node)->funccoltypes)
				if (!OidIsValid(found))
					found = UntrustedType(lfirst_oid(lc), reader, 0);
			return found;
		case T_TableFunc:
			foreach(lc, ((TableFunc *) node)->coltypes)
				if (!OidIsValid(found))
					found = UntrustedType(lfirst_oid(lc), reader, 0);
			return found;
		default:
			return InvalidOid;
	}
}

/* expression_tree_walker callback: UntrustedValueType anywhere in node. */
static bool
MakesUntrustedValue(Node *node, ViewWalk *w)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, MakesUntrustedValue, w, 0);
	w->type = UntrustedValueType(node, w->reader);
	if (OidIsValid(w->type))
		return true;
	return expression_tree_walker(node, MakesUntrustedValue, w);
}

/*
 * The first row-level security policy of rel that may run code of another
 * role than reader as reader, or NULL: when the table is another role's
 * (foreign), one that calls a function or operator that is not built in,
 * or has a sublink (which reads other tables with their own rules); and
 * whoever owns the table, one that makes a value of a type reader cannot
 * trust (UntrustedValueType, set in *type).  *func: the built-in
 * function refused (UntrustedCall), if that was the reason.
 */
static const char *
UntrustedPolicy(Relation rel, Oid reader, bool foreign, Oid *type, Oid *func)
{
	ListCell   *lc;

	*type = InvalidOid;
	*func = InvalidOid;
	if (rel->rd_rsdesc == NULL)
		return NULL;
	foreach(lc, rel->rd_rsdesc->policies)
	{
		RowSecurityPolicy *p = lfirst(lc);
		ViewWalk	w = {InvalidOid, reader, NULL, 0, foreign, false, InvalidOid, InvalidOid, InvalidOid};

		if (foreign &&
			(p->hassublinks || CallsUserFunction((Node *) p->qual, func) ||
			 CallsUserFunction((Node *) p->with_check_qual, func)))
			return p->policy_name;
		if (MakesUntrustedValue((Node *) p->qual, &w) ||
			MakesUntrustedValue((Node *) p->with_check_qual, &w))
		{
			*type = w.type;
			return p->policy_name;
		}
	}
	return NULL;
}

/*
 * Errors for a value of type type, which role reader cannot trust, that
 * the expressions of object (a view, a policy, a query) make, read by
 * what.
 */
static void
UntrustedValueError(Oid type, const char *object, Oid reader, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s makes a value of type %s, owned by role %s",
					object, format_type_be(type), RoleName(TypeOwner(type))),
			 errdetail("The %s reads it as role %s, and the owner of a type can attach functions to its values (a domain's CHECK constraints), which run as the reader.",
					   what, RoleName(reader)),
			 errhint("Use built-in types, or types owned by role %s.",
					 RoleName(reader))));
}

/*
 * Checks what a view's query reads (CheckRelation of each relation but the
 * view itself, its rule's OLD and NEW) and, for another role's view, notes
 * a call of a function that is not built in.
 */
static bool
ViewWalker(Node *node, ViewWalk *w)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION && rte->relid != w->view)
			CheckRelation(rte->relid, w->reader, w->what, w->depth + 1);
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, ViewWalker, w, QTW_EXAMINE_RTES_BEFORE);
	if (!OidIsValid(w->type))
		w->type = UntrustedValueType(node, w->reader);
	if (w->foreign && check_functions_in_node(node, UntrustedCall, &w->func))
		w->calls = true;
	else if (!w->foreign && !OidIsValid(w->other))
		(void) check_functions_in_node(node, OtherRolesFunction, w);
	return expression_tree_walker(node, ViewWalker, w);
}

/*
 * Errors for another role's object (a view, a policy) that calls a
 * function that is not built in, read by what as role reader: reads, what
 * of the object is read; runs, as whom its code runs; kind, whose owner;
 * hint, what to do instead.
 */
static void
ForeignCodeError(const char *object, const char *reads, const char *runs,
				 const char *kind, const char *hint, Oid reader, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s calls a function that is not built in", object),
			 errdetail("The %s reads %s as role %s, and %s: the %s's owner could have them run code of theirs as role %s.",
					   what, reads, RoleName(reader), runs, kind, RoleName(reader)),
			 errhint("%s", hint)));
}

/*
 * CheckRelationTrusted at a depth of views (a view's query is checked too,
 * each relation it reads, to a depth of 32).
 */
static void
CheckRelation(Oid relid, Oid reader, const char *what, int depth)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	Oid			owner = rel->rd_rel->relowner;
	bool		foreign = owner != reader && !superuser_arg(owner);
	char	   *name = pstrdup(RelationGetRelationName(rel));
	const char *policy = NULL;
	ViewWalk	w = {relid, reader, what, depth, foreign, false, InvalidOid, InvalidOid, InvalidOid};
	Oid			policytype = InvalidOid;
	Oid			policyfunc = InvalidOid;

	if (depth > 32)
		ereport(ERROR,
				(errcode(ERRCODE_STATEMENT_TOO_COMPLEX),
				 errmsg("views nested too deeply to check, at \"%s\"", name)));
	if (rel->rd_rel->relkind == RELKIND_VIEW)
	{
		if (foreign && RelationHasSecurityInvoker(rel))
			w.calls = true;
		else
			(void) ViewWalker((Node *) get_view_query(rel), &w);
	}
	else if (rel->rd_rel->relrowsecurity)
		policy = UntrustedPolicy(rel, reader, foreign, &policytype, &policyfunc);
	if (policy)
		policy = pstrdup(policy);
	/*
	 * Keep the lock to the end of the transaction: released, another role
	 * could replace the view (or change the policies) checked here before
	 * the read plans it.
	 */
	relation_close(rel, NoLock);
	if (OidIsValid(w.type))
		UntrustedValueError(w.type, psprintf("view \"%s\"", name), reader, what);
	if (policy && OidIsValid(policytype))
		UntrustedValueError(policytype,
							psprintf("policy \"%s\" of table \"%s\"", policy, name),
							reader, what);
	if (OidIsValid(w.other))
		OtherRolesFunctionError(w.other, psprintf("view \"%s\"", name), reader, what);
	if (w.calls && OidIsValid(w.func))
		BuiltInCallError(w.func, psprintf("view \"%s\" of role %s", name, RoleName(owner)),
						 reader, what);
	if (policy && OidIsValid(policyfunc))
		BuiltInCallError(policyfunc,
						 psprintf("policy \"%s\" of table \"%s\", owned by role %s,",
								  policy, name, RoleName(owner)),
						 reader, what);
	if (w.calls)
		ForeignCodeError(psprintf("view \"%s\" of role %s", name, RoleName(owner)),
						 "it", "a view's functions run as its reader", "view",
						 psprintf("Read a view of role %s, or one that calls built-in functions only (and without security_invoker).",
								  RoleName(reader)),
						 reader, what);
	if (policy)
		ForeignCodeError(psprintf("policy \"%s\" of table \"%s\", owned by role %s,",
								  policy, name, RoleName(owner)),
						 "the table", "a policy's expressions run as the reader", "table",
						 psprintf("Policies of another role's table read by role %s may use built-in functions and operators only, without subqueries.",
								  RoleName(reader)),
						 reader, what);
}

/*
 * Errors unless role reader can read relation relid without running code
 * of another role as itself (see the top of the file): another role's
 * view that calls a function that is not built in (or has
 * security_invoker), another role's table with a row-level security policy
 * that does, or a view that reads such a relation.  Another role: not the
 * reader, not a superuser.  what: the kind and name of the object that
 * reads it.
 */
void
CheckRelationTrusted(Oid relid, Oid reader, const char *what)
{
	CheckRelation(relid, reader, what, 0);
}

/*
 * Errors unless role reader can run query sql (a model's, league's or
 * monitor's query source, the reader's own SQL) without running code of
 * another role as itself: each relation it reads is checked as
 * CheckRelationTrusted checks it (another role may change its view or
 * policies, or replace its table by a view, after the query was written),
 * and it may not make a value of a type reader cannot trust.  The query is
 * parsed and analysed only, which runs none of its functions.
 */
void
CheckQueryTrusted(const char *sql, Oid reader, const char *what)
{
	ListCell   *lc;

	foreach(lc, pg_parse_query(sql))
	{
		Query	   *q = parse_analyze_fixedparams(lfirst_node(RawStmt, lc), sql,
												  NULL, 0, NULL);
		ViewWalk	w = {InvalidOid, reader, what, 0, false, false, InvalidOid, InvalidOid, InvalidOid};

		(void) ViewWalker((Node *) q, &w);
		if (OidIsValid(w.type))
			UntrustedValueError(w.type, "the query source", reader, what);
		if (OidIsValid(w.other))
			OtherRolesFunctionError(w.other, "the query source", reader, what);
	}
}
