/*
 * options.h
 *		The one reader of the jsonb options objects (options.c).
 */
#ifndef STREAMML_OPTIONS_H
#define STREAMML_OPTIONS_H

#include "utils/jsonb.h"

/* A nested object named in error contexts while it is read (options.c). */
typedef struct OptionScope
{
	ErrorContextCallback callback;
	const char *kind;
	const char *name;
} OptionScope;

extern JsonbValue *OptionGet(Jsonb *options, const char *key);
extern double OptionNumber(Jsonb *options, const char *key, double dflt,
						   double min, double max);
extern int64 OptionInteger(Jsonb *options, const char *key, int64 dflt,
						   int64 min, int64 max);
extern char *OptionString(Jsonb *options, const char *key, const char *dflt);
extern char *OptionKeyword(Jsonb *options, const char *key, const char *dflt);
extern bool OptionBool(Jsonb *options, const char *key, bool dflt);
extern double OptionValueNumber(JsonbValue *v, const char *key, double min,
								double max);
extern int64 OptionValueInteger(JsonbValue *v, const char *key, int64 min,
								int64 max);
extern char *OptionValueString(JsonbValue *v, const char *key);
extern bool OptionValueBool(JsonbValue *v, const char *key);
extern void OptionCheckKeys(Jsonb *options, const char *const *known,
							const char *what);
extern void OptionScopePush(OptionScope *scope, const char *kind,
							const char *name);
extern void OptionScopePop(OptionScope *scope);

#endif							/* STREAMML_OPTIONS_H */
