/*
 * citus_batch.h
 *		Writing rows into Citus tables through SQL (src/ingest/loader_citus.c),
 *		for the stream's loader and for the writers of feature tables and
 *		predictions (src/scoring/feature_citus.c makes and guards those).
 */
#ifndef STREAMML_CITUS_BATCH_H
#define STREAMML_CITUS_BATCH_H

#include "utils/relcache.h"

typedef struct CitusBatch CitusBatch;

extern bool LoaderIsCitusTable(Oid relid);
extern void LoaderCitusUse2PC(void);
extern CitusBatch *CitusBatchBegin(Relation rel);
extern void CitusBatchAdd(CitusBatch *b, Datum *values, bool *nulls);
extern void CitusBatchFlush(CitusBatch *b);
extern void CitusBatchEnd(CitusBatch *b);
extern bool CitusBatchFailed(void);

/* feature_citus.c: while true, pg_streamml itself writes a Citus table */
extern int	CitusWriterDepth;

#endif							/* STREAMML_CITUS_BATCH_H */
