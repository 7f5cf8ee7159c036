/*
 * feature_citus.h
 *		Feature tables and scorers over Citus tables (feature_citus.c).
 */
#ifndef STREAMML_FEATURE_CITUS_H
#define STREAMML_FEATURE_CITUS_H

extern int	FeatureCitusShellOnlyBegin(Oid relid);
extern void FeatureCitusShellOnlyEnd(int nest);
extern void FeatureCitusDistributeLike(Oid target, Oid source, char **cols,
									   int ncols, const char *what);
extern void FeatureCitusInit(void);

#endif							/* STREAMML_FEATURE_CITUS_H */
