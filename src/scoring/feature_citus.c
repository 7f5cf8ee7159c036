/*
 * feature_citus.c
 *		Feature tables and scorers over Citus tables.
 *
 * A feature table's and a scorer's work is done by statement triggers on
 * their source (featureinsert.c, scorerinsert.c).  On a Citus table the
 * coordinator holds an empty shell and Citus writes the rows into shards
 * on the workers, where neither trigger runs (and where pg_streamml's
 * catalog is not).  So, on the coordinator:
 *
 *	- The triggers are made on the shell only (Citus's DDL propagation off
 *	  while they are created): Citus does not fire them, pg_streamml's own
 *	  writers do.  A stream's loader keeps the rows of each range it sends
 *	  to a Citus table and fires the shell's statement triggers with them as
 *	  the transition table (loader_citus.c); the feature table's and the
 *	  scorer's writers do the same for their output table, so a chain
 *	  stream -> source -> feature table -> scorer -> predictions runs at the
 *	  coordinator, in the batch's transaction.
 *	- Outputs that are Citus tables are written through SQL that Citus
 *	  routes to the shards (CitusBatch, loader_citus.c), with two-phase
 *	  commit, never with table_multi_insert into the shell.
 *	- A feature table or predictions table that create_feature_table or
 *	  create_scorer makes for a Citus source is distributed like it:
 *	  colocated with a distributed source by its distribution column when
 *	  the output keeps it (a feature table's partition_by, a predictions
 *	  table's key), a reference table for a reference source.
 *	- Other writes into such a Citus source (INSERT, UPDATE, DELETE, MERGE,
 *	  COPY FROM by users) are refused on the coordinator with an error that
 *	  says to load through a stream: Citus would write the shards without
 *	  the features and predictions.  Supporting them would take the
 *	  triggers on the shards (citus.enable_unsafe_triggers), running on
 *	  every worker with state and catalog that live on the coordinator.
 *
 * A window state is rebuilt from the feature table by SQL (featureinsert.c),
 * which Citus routes like any query; the partitions' advisory locks and
 * version counters stay on the coordinator, where every writer runs.
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "parser/parsetree.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "ingest/citus_batch.h"
#include "scoring/feature_citus.h"

static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/*
 * Starts making triggers on a Citus table's shell only: a GUC level with
 * citus.enable_ddl_propagation off.  Returns the level to end, or -1 when
 * relid is not a Citus table.
 */
int
FeatureCitusShellOnlyBegin(Oid relid)
{
	int			nest;

	if (!LoaderIsCitusTable(relid))
		return -1;
	nest = NewGUCNestLevel();
	(void) set_config_option("citus.enable_ddl_propagation", "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	return nest;
}

/* Ends what FeatureCitusShellOnlyBegin started. */
void
FeatureCitusShellOnlyEnd(int nest)
{
	if (nest >= 0)
		AtEOXact_GUC(true, nest);
}

/*
 * Distributes a table that create_feature_table or create_scorer just made
 * (empty) for Citus source like the source: a reference table for a
 * reference source; for a distributed one, by the source's distribution
 * column colocated with it when cols (the columns the output keeps and
 * may be distributed by) has it, else by cols[0].  SPI connected; nothing
 * for a source that is not a Citus table.
 */
void
FeatureCitusDistributeLike(Oid target, Oid source, char **cols, int ncols,
						   const char *what)
{
	Datum		arg = ObjectIdGetDatum(source);
	char	   *type;
	char	   *dist;
	char	   *sql = NULL;
	char	   *tname;
	bool		isnull;

	if (!LoaderIsCitusTable(source))
		return;
	if (SPI_execute_with_args("SELECT CASE WHEN partmethod OPERATOR(pg_catalog.=) 'h' THEN 'distributed' "
							  "WHEN repmodel OPERATOR(pg_catalog.=) 't' THEN 'reference' ELSE 'local' END, "
							  "pg_catalog.column_to_column_name(logicalrelid, partkey) "
							  "FROM pg_catalog.pg_dist_partition WHERE logicalrelid OPERATOR(pg_catalog.=) $1",
							  1, (Oid[]) {REGCLASSOID}, &arg, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "cannot read the Citus metadata of table %s", get_rel_name(source));
	type = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	dist = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	tname = quote_literal_cstr(quote_qualified_identifier(get_namespace_name(get_rel_namespace(target)),
														  get_rel_name(target)));
	if (strcmp(type, "reference") == 0)
		sql = psprintf("SELECT pg_catalog.create_reference_table(%s)", tname);
	else if (strcmp(type, "distributed") == 0 && !isnull)
	{
		for (int i = 0; i < ncols && sql == NULL; i++)
			if (strcmp(cols[i], dist) == 0)
				sql = psprintf("SELECT pg_catalog.create_distributed_table(%s, %s, colocate_with => %s)",
							   tname, quote_literal_cstr(quote_identifier(dist)),
							   quote_literal_cstr(quote_qualified_identifier(get_namespace_name(get_rel_namespace(source)),
																			 get_rel_name(source))));
		if (sql == NULL && ncols > 0)
			sql = psprintf("SELECT pg_catalog.create_distributed_table(%s, %s)",
						   tname, quote_literal_cstr(quote_identifier(cols[0])));
	}
	if (sql == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot make %s \"%s\" for Citus table \"%s\"",
						what, get_rel_name(target), get_rel_name(source)),
				 errdetail("The source is a %s Citus table; outputs follow distributed tables (by a partition_by or key column) and reference tables.",
						   type),
				 errhint("Give it a partition_by or key column, or use a local source.")));
	if (SPI_execute(sql, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not distribute %s", get_rel_name(target));
}

/*
 * Whether relid is a Citus table whose shell carries a feature table's or
 * a scorer's trigger; then the name of that trigger's feature table or
 * scorer trigger is returned, else NULL.
 */
static const char *
FedCitusTrigger(Oid relid)
{
	Relation	rel;
	const char *found = NULL;

	if (!OidIsValid(relid))
		return NULL;
	rel = RelationIdGetRelation(relid);
	if (rel == NULL)
		return NULL;
	if (rel->trigdesc)
		for (int i = 0; i < rel->trigdesc->numtriggers && found == NULL; i++)
		{
			const char *t = rel->trigdesc->triggers[i].tgname;

			if (strncmp(t, "streamml_features_", 18) == 0 ||
				strncmp(t, "streamml_scorer_", 16) == 0)
				found = pstrdup(t);
		}
	RelationClose(rel);
	if (found && !LoaderIsCitusTable(relid))
		found = NULL;
	return found;
}

/* Refuses a user's write into a Citus table that feeds feature tables or scorers. */
static void
RefuseWrite(Oid relid, const char *verb, const char *trigger)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot %s table \"%s\": it is a Citus table that feeds a pg_streamml feature table or scorer",
					verb, get_rel_name(relid)),
			 errdetail("Citus writes the shards without running trigger \"%s\", which computes the features or predictions.",
					   trigger),
			 errhint("Load the table with a pg_streamml stream (its loader computes them in the batch's transaction), or use a local table as the source.")));
}

/*
 * Refuses query, or a data-modifying WITH of it, when it writes a Citus
 * table that feeds feature tables or scorers.
 */
static void
CheckWrite(Query *query)
{
	ListCell   *lc;

	foreach(lc, query->cteList)
	{
		CommonTableExpr *cte = lfirst(lc);

		if (IsA(cte->ctequery, Query))
			CheckWrite((Query *) cte->ctequery);
	}
	if (query->resultRelation > 0 && query->commandType != CMD_SELECT &&
		query->commandType != CMD_UTILITY)
	{
		RangeTblEntry *rte = rt_fetch(query->resultRelation, query->rtable);
		const char *t = rte->rtekind == RTE_RELATION ? FedCitusTrigger(rte->relid) : NULL;

		if (t)
			RefuseWrite(rte->relid,
						query->commandType == CMD_INSERT ? "insert into" :
						query->commandType == CMD_UPDATE ? "update" :
						query->commandType == CMD_DELETE ? "delete from" : "merge into",
						t);
	}
}

/* post_parse_analyze_hook: INSERT, UPDATE, DELETE, MERGE of a fed Citus table. */
static void
FeatureCitusPostParse(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze)
		prev_post_parse_analyze(pstate, query, jstate);
	if (CitusWriterDepth == 0)
		CheckWrite(query);
}

/* ProcessUtility_hook: COPY FROM into a fed Citus table. */
static void
FeatureCitusProcessUtility(PlannedStmt *pstmt, const char *queryString,
						   bool readOnlyTree, ProcessUtilityContext context,
						   ParamListInfo params, QueryEnvironment *queryEnv,
						   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, CopyStmt) && ((CopyStmt *) parsetree)->is_from &&
		((CopyStmt *) parsetree)->relation && CitusWriterDepth == 0)
	{
		Oid			relid = RangeVarGetRelid(((CopyStmt *) parsetree)->relation,
											 NoLock, true);
		const char *t = FedCitusTrigger(relid);

		if (t)
			RefuseWrite(relid, "copy into", t);
	}
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/* Installs the guards; from _PG_init. */
void
FeatureCitusInit(void)
{
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = FeatureCitusPostParse;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = FeatureCitusProcessUtility;
}
