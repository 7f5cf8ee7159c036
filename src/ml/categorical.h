/*
 * categorical.h
 *		Categorical features: the one-hot encoding of text, varchar, char
 *		and enum feature columns, found at training time, stored with the
 *		version (model_versions.encoding) and applied at serving.
 */
#ifndef STREAMML_CATEGORICAL_H
#define STREAMML_CATEGORICAL_H

#include "postgres.h"

#include "utils/jsonb.h"

/* The levels of one categorical column. */
typedef struct CatColumn
{
	int			nlevels;		/* kept levels, in strcmp order */
	char	  **levels;
	int		   *lens;			/* strlen of each level */
	bool		other;			/* has the "other" level, after the levels */
} CatColumn;

/*
 * The encoding of a model's feature columns: column i fills slots
 * first[i] .. first[i] + width - 1 of the feature vector: one for a numeric
 * column (cols[i] NULL), nlevels (+ 1 for "other") for a categorical one.
 */
typedef struct Encoding
{
	int			ncolumns;
	CatColumn **cols;
	int		   *first;
	int			p;
} Encoding;

/* What a categorical value became. */
typedef enum CatResult
{
	CAT_LEVEL,					/* one of the levels */
	CAT_OTHER,					/* unseen, encoded as the "other" level */
	CAT_MISSING					/* NULL, or unseen without "other": missing */
} CatResult;

#define CAT_OTHER_NAME "(other)"

/*
 * Reads one categorical column of one type from tuples: text, varchar and
 * char (without its padding, as its text cast) by bytes, an enum by the
 * oids of the levels, found once.  No palloc per value.
 */
typedef struct CatReader
{
	const CatColumn *col;
	Oid			type;
	Oid		   *enum_oids;		/* an enum: the oid of each level, or NULL */
} CatReader;

extern bool TypeIsCategorical(Oid type);
extern int	CatColumnWidth(const CatColumn *c);
extern int	CatLevelIndex(const CatColumn *c, const char *v, int len);
extern CatResult CatEncode(const CatColumn *c, const char *v, int len,
						   double *x);
extern CatResult CatEncodeIndex(const CatColumn *c, int k, bool isnull,
								double *x);
extern void CatReaderInit(CatReader *r, const CatColumn *c, Oid type);
extern CatResult CatReadDatum(const CatReader *r, Datum d, bool isnull,
							  double *x);
extern Encoding *EncodingFromJsonb(Jsonb *j, char **columns, int ncolumns);
extern char *EncodingToJson(const Encoding *e, char **columns);
extern char *CatSlotExpr(const char *column, const CatColumn *c, int k);
extern char *CatUnseenExpr(const char *column, const CatColumn *c);
extern char *CatSlotName(const char *column, const CatColumn *c, int k);

#endif							/* STREAMML_CATEGORICAL_H */
