/*
 * pg_streamml.h
 *		Declarations shared by every area of pg_streamml.
 *
 * Each area (ingest, features, ml) exposes one XxxInit() function that the
 * single _PG_init in pg_streamml.c calls while shared_preload_libraries is
 * being processed.
 */
#ifndef PG_STREAMML_H
#define PG_STREAMML_H

#include "nodes/parsenodes.h"

#define STREAMML_VERSION "0.1.0"

/* The schema every SQL object of the extension lives in. */
#define STREAMML_SCHEMA "streamml"

/* catalog.c: the one writer of the catalog tables */
struct _SPI_plan;
extern uint64 CatalogExecute(const char *sql, int nargs, Oid *types,
							 Datum *values, const char *nulls, int expect);
extern uint64 CatalogExecuteKept(struct _SPI_plan **plan, const char *sql,
								 int nargs, Oid *types, Datum *values,
								 const char *nulls, int expect);
extern void RunAsOwner(Oid owner, void (*f) (void *), void *arg);
extern int	TextSettingsPin(void);
extern char *Float8TextExact(double v);
extern Datum OidListArray(List *oids);
/* trust.c */
extern void CheckRelationTrusted(Oid relid, Oid reader, const char *what);
extern void CheckQueryTrusted(const char *sql, Oid reader, const char *what);
extern void CheckTypeTrusted(Oid type, Oid owner, const char *col, const char *relname,
							 const char *what);
extern void CheckColumnTypeTrusted(Oid rel, const char *col, Oid owner, const char *what);

/* relations.c */
extern bool StreammlEventTriggerBegin(FunctionCallInfo fcinfo, const char *fn);
extern List *RelationsDropTargets(DropStmt *stmt);
extern void RelationsDropCheck(Datum relids, Oid unused);

/* partitions.c */
extern bool RelationIsPartOf(Oid rel, Oid source);
extern void PartitionSourceCheck(Oid source, const char *kind);
extern void PredictionsTableCheck(Oid preds, const char *scorer);
extern void PartitionTriggersSync(Oid source, const char *trigname, const char *function,
								  const char *newtable, int32 id);
extern void PartitionTriggersDrop(const char *function, int32 id);
extern void CheckSourceRowSecurity(Oid source, Oid owner, const char *kind,
								   const char *name, int sqlstate);
extern void TextSettingsRestore(int nest);
extern void CatalogFirstPath(void);
extern struct ErrorData *TrySubtransaction(void (*f) (void *), void *arg);
extern char *StoredSearchPath(void);
extern void RunAsOwnerWithPath(Oid owner, const char *path,
							   void (*f) (void *), void *arg);

/* roles.c: DROP ROLE, DROP OWNED, REASSIGN OWNED */
extern void RolesInit(void);

#endif							/* PG_STREAMML_H */
