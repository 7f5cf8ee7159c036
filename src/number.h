/*
 * number.h
 *		A numeric column's value as float8: the one conversion of the
 *		readers that take numbers from rows in C (feature tables, scorers,
 *		predict on a row, horizon outcomes), in two flavours.
 *
 * NumberCast gives what the SQL cast ::float8 gives, errors included (a
 * numeric beyond float8's range): the readers whose results must equal a
 * SQL query's (feature_sql, the outcomes' SQL path) use it.  NumberOrInf
 * gives ±infinity for such a numeric instead: the readers that treat a
 * non-finite value as unscorable (a scorer, predict on a row) use it, so
 * one out-of-range value costs one row its prediction, never the
 * statement.  Both take smallint, integer, bigint, real, double precision,
 * numeric and boolean (1 or 0); NaN stays NaN.
 */
#ifndef STREAMML_NUMBER_H
#define STREAMML_NUMBER_H

#include "catalog/pg_type_d.h"
#include "fmgr.h"
#include "utils/fmgrprotos.h"

/* The value of a by-value number type, or false for numeric. */
static inline bool
NumberSimple(Datum d, Oid type, double *x)
{
	switch (type)
	{
		case INT2OID:
			*x = DatumGetInt16(d);
			return true;
		case INT4OID:
			*x = DatumGetInt32(d);
			return true;
		case INT8OID:
			*x = (double) DatumGetInt64(d);
			return true;
		case FLOAT4OID:
			*x = DatumGetFloat4(d);
			return true;
		case FLOAT8OID:
			*x = DatumGetFloat8(d);
			return true;
		case BOOLOID:
			*x = DatumGetBool(d) ? 1.0 : 0.0;
			return true;
		case NUMERICOID:
			return false;
		default:
			elog(ERROR, "unexpected number type %u", type);
	}
	return false;
}

/* A non-NULL number as float8, as ::float8 casts it. */
static inline double
NumberCast(Datum d, Oid type)
{
	double		x;

	if (NumberSimple(d, type, &x))
		return x;
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));
}

/* A non-NULL number as float8, ±infinity for a numeric beyond float8. */
static inline double
NumberOrInf(Datum d, Oid type)
{
	double		x;

	if (NumberSimple(d, type, &x))
		return x;
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
}

/* An integer key column's value (smallint, integer or bigint) as int64. */
static inline int64
IntegerValue(Oid type, Datum d)
{
	switch (type)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		default:
			return DatumGetInt64(d);
	}
}

#endif							/* STREAMML_NUMBER_H */
