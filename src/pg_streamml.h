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

#define STREAMML_VERSION "0.1.0"

/* The schema every SQL object of the extension lives in. */
#define STREAMML_SCHEMA "streamml"

#endif							/* PG_STREAMML_H */
