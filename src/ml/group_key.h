/*
 * group_key.h
 *		The one text form of a group key, the same in every session
 *		(see group_key.c).
 */
#ifndef STREAMML_GROUP_KEY_H
#define STREAMML_GROUP_KEY_H

#include "fmgr.h"

/* How values of one type become key text; made once per batch or call site. */
typedef struct GroupKeyOut
{
	Oid			type;			/* the column's type */
	Oid			base;			/* its base type (domains resolved) */
	FmgrInfo	out;			/* output function, for the other types */
} GroupKeyOut;

extern bool GroupKeyTypesAgree(Oid a, Oid b);
extern void GroupKeyCheckType(Oid type, const char *column);
extern void GroupKeyOutInit(GroupKeyOut *o, Oid type, const char *column,
							MemoryContext cxt);
extern const char *GroupKeyText(GroupKeyOut *o, Datum value, int *len);
extern char *GroupKeyCString(GroupKeyOut *o, Datum value);

#endif
