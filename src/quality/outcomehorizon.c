/*
 * outcomehorizon.c
 *		Horizon mode in C: a batch's outcomes found by one index range scan
 *		per partition of the batch, joined with their predictions by index.
 *
 * In horizon mode the outcome of row r is the "actual" of the first row of
 * r's partition whose order_by is at or after r's plus the horizon h.  A
 * batch labels the rows whose order_by + h falls in (prev, bmax] of their
 * partition, where bmax is the newest order_by of the batch's rows of it
 * and prev the newest before the batch (outcomeinsert.c's SQL statement
 * says the same with a probe of the table per labelled row).  Every such
 * row, and the row that labels it, has its order_by in (prev - h, bmax]:
 * so, per partition of the batch, one backward probe of the source's
 * (partition_by, order_by) index finds prev, and one forward range scan of
 * (prev - h, bmax] reads the labelled rows and their labels in index order
 * (rows of equal order_by in the order of their heap tuples, as the probe
 * does); a pointer that only moves forward pairs each row with its label.
 * The labelled rows are then put in arrival order (order_by, key: a merge
 * of the partitions' runs) and the predictions of their keys read by the
 * predictions table's primary key: for a key of one integer column, by
 * range scans over runs of nearby keys (MergePredictions), otherwise one
 * probe per key.
 *
 * A feature table needs no (partition_by, order_by) index when it is
 * partitioned by partition_by alone and ordered by order_by: its own
 * unique (partition, arrival_seq) index serves, read backwards from each
 * partition's newest row (LabelPartitionBySeq), because its late flags
 * bound the order_by of every older row; the rows read are then sorted
 * into the btree's order.  A source with its own (partition_by, order_by)
 * index is read by that one.
 *
 * What it reads, it reads with the statement's snapshot after a command
 * counter increment, as SPI would: the batch's rows and the predictions
 * the scorer wrote for them are visible.  It applies only where the SQL
 * statement's meaning is plain to reproduce: a plain table without
 * row-level security for the tracker's owner, a btree index on
 * (partition_by, order_by, ...) with the types' default operator classes
 * (or a feature table's, above),
 * order_by a timestamp (and for timestamptz a horizon without days, which
 * are calendar days there) or an integer or float8, number keys or text
 * keys, a number "actual" (a group column's key read from the labelled
 * row, as streamml.group_key makes it), and a predictions table whose
 * primary key starts with the key columns.  Elsewhere the caller runs the
 * SQL statement; so does a batch with a NaN float8 order_by (NaN sorts
 * above every number in SQL, and the C comparisons would disagree), and
 * one that meets an order_by within the horizon of its type's ends (an
 * infinite timestamp, which SQL's arithmetic keeps infinite, or a value
 * whose sum or difference with the horizon SQL refuses as out of range,
 * where int64 arithmetic would wrap around: ObExtreme).
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"

#include "ml/group_key.h"
#include "number.h"
#include "pg_streamml.h"
#include "quality/predstash.h"
#include "quality/quality.h"
#include "scoring/features.h"

#define MAX_KEYS INDEX_MAX_KEYS

/* The collation of a column of an open relation. */
static Oid
AttCollation(Relation rel, AttrNumber a)
{
	return TupleDescAttr(RelationGetDescr(rel), a - 1)->attcollation;
}

/* What the C path of a tracker uses, worked out per batch. */
typedef struct HorizonSetup
{
	Oid			src_index;
	Oid			pred_index;
	AttrNumber	a_part;
	AttrNumber	a_ob;
	AttrNumber	a_actual;
	AttrNumber	a_keys[MAX_KEYS];
	Oid			key_types[MAX_KEYS];
	Oid			key_colls[MAX_KEYS];
	bool		ob_float;		/* order_by compared as float8 */
	int64		h_int;			/* the horizon, integer order_by */
	double		h_float;		/* the horizon, float8 order_by */
	FmgrInfo	part_cmp;		/* btree order of partition_by */
	Oid			part_coll;
	bool		part_byval;
	int16		part_len;
	FmgrInfo	part_hash;		/* hash of partition_by (type cache) */
	RegProcedure part_eq;		/* = of the index's operator family */
	RegProcedure ob_lt;			/* <, >, <= of order_by */
	RegProcedure ob_gt;
	RegProcedure ob_le;
	RegProcedure key_eq[MAX_KEYS];
	RegProcedure key_ge;		/* >=, <= of the first key column */
	RegProcedure key_le;
	bool		by_seq;			/* src_index: a feature table's (partition, arrival_seq) */
	AttrNumber	a_late;			/* its late column */
	AttrNumber	a_group;		/* the group column, or InvalidAttrNumber */
	GroupKeyOut group_out;		/* its key text (group_key.c) */
	bool		group_byval;
	int16		group_len;
	MemoryContext group_cxt;	/* where the key texts live (the records') */
	bool		has_last_group; /* the last group value and its text */
	Datum		last_group;
	char	   *last_group_key;
} HorizonSetup;

/* A row of a partition's range, in index order. */
typedef struct RangeRow
{
	int64		oi;				/* order_by (integer or timestamp) */
	double		od;				/* order_by (float8) */
	ItemPointerData tid;		/* its heap tuple (LabelPartitionBySeq's sort) */
	bool		has_actual;
	double		actual;
	bool		keys_ok;		/* no NULL key column */
	char	   *group_key;		/* '' without a group */
	Datum		keys[FLEXIBLE_ARRAY_MEMBER];
} RangeRow;

/*
 * The group key of a source row (slot), as streamml.group_key gives it, ''
 * for NULL or without a group: the text made once per run of equal values.
 */
static char *
RowGroupKey(HorizonSetup *s, TupleTableSlot *slot)
{
	bool		isnull;
	Datum		d;
	MemoryContext old;

	if (s->a_group == InvalidAttrNumber)
		return "";
	d = slot_getattr(slot, s->a_group, &isnull);
	if (isnull)
		return "";
	if (s->has_last_group &&
		datumIsEqual(d, s->last_group, s->group_byval, s->group_len))
		return s->last_group_key;
	old = MemoryContextSwitchTo(s->group_cxt);
	s->last_group = datumCopy(d, s->group_byval, s->group_len);
	s->last_group_key = GroupKeyCString(&s->group_out, d);
	MemoryContextSwitchTo(old);
	s->has_last_group = true;
	return s->last_group_key;
}

/*
 * Fills a range row's actual, key and group columns from the source row in
 * slot (its order_by is the caller's); text keys are copied out of the slot.
 */
static void
RangeRowFill(OutcomeTracker *t, HorizonSetup *s, TupleTableSlot *slot, RangeRow *r)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, s->a_actual, &isnull);

	r->has_actual = !isnull;
	r->actual = isnull ? 0 : NumberCast(d, t->actual_type);
	r->keys_ok = true;
	for (int k = 0; k < t->nkeys; k++)
	{
		d = slot_getattr(slot, s->a_keys[k], &isnull);
		if (isnull)
			r->keys_ok = false;
		else if (s->key_types[k] == TEXTOID || s->key_types[k] == VARCHAROID)
			r->keys[k] = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
		else
			r->keys[k] = d;
	}
	r->group_key = RowGroupKey(s, slot);
}

/* A labelled row: its order_by, key values (in LabelSet.keys) and label. */
typedef struct Labelled
{
	int64		oi;
	double		od;
	double		actual;
	char	   *group_key;
	int			keys;			/* index of the first in LabelSet.keys */
} Labelled;

/* The batch's labelled rows; their key values in one array. */
typedef struct LabelSet
{
	Labelled   *rows;
	int			n;
	int			max;
	Datum	   *keys;
	int			nkeys;			/* used */
	int			maxkeys;
} LabelSet;

/* A partition of the batch: its oldest and newest order_by. */
typedef struct BatchPart
{
	bool		used;
	uint32		hash;
	Datum		part;
	int64		bmin_i;
	double		bmin_f;
	int64		bmax_i;
	double		bmax_f;
	int			nmin;			/* the batch's rows at bmin */
} BatchPart;

/* For the sort of labelled rows. */
static HorizonSetup *SortSetup;
static int	SortNKeys;
static Datum *SortKeys;

/*
 * Whether an integer or timestamp order_by value oi is within the horizon
 * of its type's ends (see the top of the file): oi + h or oi - h leaves the
 * type's range (for a timestamp, its finite range).
 */
static inline bool
ObExtreme(HorizonSetup *s, Oid type, int64 oi)
{
	int64		lo;
	int64		hi;

	switch (type)
	{
		case INT2OID:
			lo = PG_INT16_MIN;
			hi = PG_INT16_MAX;
			break;
		case INT4OID:
			lo = PG_INT32_MIN;
			hi = PG_INT32_MAX;
			break;
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			lo = MIN_TIMESTAMP;
			hi = END_TIMESTAMP - 1;
			break;
		default:
			lo = PG_INT64_MIN;
			hi = PG_INT64_MAX;
			break;
	}
	return s->h_int < 0 || oi < lo + s->h_int || oi > hi - s->h_int;
}

/* An order_by value as int64 or float8. */
static void
ObValue(HorizonSetup *s, Oid type, Datum d, int64 *oi, double *od)
{
	switch (type)
	{
		case INT2OID:
			*oi = DatumGetInt16(d);
			break;
		case INT4OID:
			*oi = DatumGetInt32(d);
			break;
		case FLOAT8OID:
			*od = DatumGetFloat8(d);
			break;
		default:				/* INT8, TIMESTAMP, TIMESTAMPTZ */
			*oi = DatumGetInt64(d);
			break;
	}
}

/* An order_by value as a Datum of the column's type, false when out of range. */
static bool
ObDatum(Oid type, int64 oi, double od, Datum *d)
{
	switch (type)
	{
		case INT2OID:
			if (oi < PG_INT16_MIN || oi > PG_INT16_MAX)
				return false;
			*d = Int16GetDatum((int16) oi);
			return true;
		case INT4OID:
			if (oi < PG_INT32_MIN || oi > PG_INT32_MAX)
				return false;
			*d = Int32GetDatum((int32) oi);
			return true;
		case FLOAT8OID:
			*d = Float8GetDatum(od);
			return true;
		default:
			*d = Int64GetDatum(oi);
			return true;
	}
}

/* Whether an index is a plain valid btree whose leading keys are cols, default opclasses. */
static bool
IndexLeads(Oid indexoid, int ncols, const AttrNumber *cols, const Oid *types)
{
	HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	Form_pg_index ix;
	bool		ok;
	Datum		d;
	bool		isnull;
	oidvector  *classes;

	if (!HeapTupleIsValid(tup))
		return false;
	ix = (Form_pg_index) GETSTRUCT(tup);
	ok = ix->indisvalid && ix->indisready && ix->indislive &&
		ix->indnkeyatts >= ncols &&
		heap_attisnull(tup, Anum_pg_index_indexprs, NULL) &&
		heap_attisnull(tup, Anum_pg_index_indpred, NULL);
	if (ok)
	{
		Relation	ir = index_open(indexoid, AccessShareLock);

		ok = ir->rd_rel->relam == BTREE_AM_OID;
		index_close(ir, AccessShareLock);
	}
	d = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indclass, &isnull);
	classes = (oidvector *) DatumGetPointer(d);
	for (int i = 0; ok && i < ncols; i++)
		ok = ix->indkey.values[i] == cols[i] &&
			classes->values[i] == GetDefaultOpClass(types[i], BTREE_AM_OID);
	ReleaseSysCache(tup);
	return ok;
}

/* The first index of rel that IndexLeads, or InvalidOid. */
static Oid
FindIndex(Relation rel, int ncols, const AttrNumber *cols, const Oid *types)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Oid			found = InvalidOid;

	foreach(lc, indexes)
		if (IndexLeads(lfirst_oid(lc), ncols, cols, types))
		{
			found = lfirst_oid(lc);
			break;
		}
	list_free(indexes);
	return found;
}

/*
 * The partition column of a feature table partitioned by one column, and
 * its order_by, from its catalog row (%s: the table's regclass), as a
 * subquery of two columns, no row when the table is no feature table.
 */
const char *OutcomeFeatureTableSql =
"SELECT CASE pg_catalog.jsonb_typeof(f.spec OPERATOR(pg_catalog.->) 'partition_by') "
"WHEN 'string' THEN f.spec OPERATOR(pg_catalog.->>) 'partition_by' "
"WHEN 'array' THEN CASE WHEN pg_catalog.jsonb_array_length(f.spec "
"OPERATOR(pg_catalog.->) 'partition_by') OPERATOR(pg_catalog.=) 1 "
"THEN f.spec OPERATOR(pg_catalog.->) 'partition_by' OPERATOR(pg_catalog.->>) 0 END END "
"AS ft_part, f.spec OPERATOR(pg_catalog.->>) 'order_by' AS ft_order "
"FROM streamml.feature_tables_catalog f WHERE f.target OPERATOR(pg_catalog.=) %s";

/*
 * The unique (partition, arrival_seq) index of rel when rel is a feature
 * table partitioned by column a_part alone and ordered by column a_ob (its
 * catalog says so: ft_part and ft_order, NULL when rel is no feature
 * table), or InvalidOid; its late column in *a_late.  Its late flags then
 * order the rows of a partition enough for LabelPartitionBySeq.
 */
static Oid
FeatureSeqIndex(Relation rel, AttrNumber a_part, AttrNumber a_ob,
				const char *ft_part, const char *ft_order, AttrNumber *a_late)
{
	Oid			relid = RelationGetRelid(rel);
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	cols[2];
	Oid			types[2];

	if (a_part <= 0 || a_ob <= 0 || ft_part == NULL || ft_order == NULL ||
		strcmp(NameStr(TupleDescAttr(desc, a_part - 1)->attname), ft_part) != 0 ||
		strcmp(NameStr(TupleDescAttr(desc, a_ob - 1)->attname), ft_order) != 0)
		return InvalidOid;
	cols[0] = a_part;
	cols[1] = get_attnum(relid, FT_SEQ_COLUMN);
	*a_late = get_attnum(relid, FT_LATE_COLUMN);
	if (cols[1] <= 0 || *a_late <= 0 ||
		TupleDescAttr(desc, cols[1] - 1)->atttypid != INT8OID ||
		TupleDescAttr(desc, *a_late - 1)->atttypid != BOOLOID)
		return InvalidOid;
	types[0] = TupleDescAttr(desc, a_part - 1)->atttypid;
	types[1] = INT8OID;
	return FindIndex(rel, 2, cols, types);
}

/*
 * Whether table relid has an index the C path reads a horizon tracker's
 * batches by: its own (partition_by, order_by) index, or, for a feature
 * table partitioned by partition_by and ordered by order_by, the feature
 * table's own.  track_outcomes warns without one.  SPI connected.
 */
bool
OutcomeHorizonIndexExists(Oid relid, const char *partition_by,
						  const char *order_by)
{
	Relation	rel = table_open(relid, AccessShareLock);
	AttrNumber	cols[2] = {get_attnum(relid, partition_by), get_attnum(relid, order_by)};
	Oid			types[2] = {get_atttype(relid, cols[0]), get_atttype(relid, cols[1])};
	AttrNumber	a_late;
	Datum		arg = ObjectIdGetDatum(relid);
	char	   *ft_part = NULL;
	char	   *ft_order = NULL;
	bool		found;

	if (CatalogExecute(psprintf(OutcomeFeatureTableSql, "$1"), 1, (Oid[]) {REGCLASSOID},
					   &arg, NULL, SPI_OK_SELECT) == 1)
	{
		ft_part = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		ft_order = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	}
	found = OidIsValid(FindIndex(rel, 2, cols, types)) ||
		OidIsValid(FeatureSeqIndex(rel, cols[0], cols[1], ft_part, ft_order, &a_late));

	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Whether the C path applies to a tracker (see the top of the file); fills
 * s.  Both relations are open.
 */
static bool
Setup(OutcomeTracker *t, Relation src, Relation preds, HorizonSetup *s)
{
	Oid			part_type;
	AttrNumber	cols[2];
	Oid			types[2];

	memset(s, 0, sizeof(HorizonSetup));
	if (src->rd_rel->relkind != RELKIND_RELATION || t->nkeys > MAX_KEYS ||
		check_enable_rls(t->source, t->owner, false) == RLS_ENABLED)
		return false;
	s->a_part = get_attnum(t->source, t->partition_by);
	s->a_ob = get_attnum(t->source, t->order_by);
	s->a_actual = get_attnum(t->source, t->actual);
	if (s->a_part <= 0 || s->a_ob <= 0 || s->a_actual <= 0)
		return false;
	/* a per-group model's group: each outcome's, as streamml.group_key has it */
	if (t->group_column != NULL)
	{
		Oid			gtype;

		s->a_group = get_attnum(t->source, t->group_column);
		if (s->a_group <= 0)
			return false;
		gtype = TupleDescAttr(RelationGetDescr(src), s->a_group - 1)->atttypid;
		GroupKeyOutInit(&s->group_out, gtype, t->group_column, CurrentMemoryContext);
		get_typlenbyval(gtype, &s->group_len, &s->group_byval);
	}
	switch (t->actual_type)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			break;
		default:
			return false;
	}

	/* the horizon */
	switch (t->order_type)
	{
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			{
				Interval   *iv = DatumGetIntervalP(DirectFunctionCall3(interval_in,
																	   CStringGetDatum(t->horizon),
																	   ObjectIdGetDatum(InvalidOid),
																	   Int32GetDatum(-1)));

				if (iv->month != 0 || (iv->day != 0 && t->order_type == TIMESTAMPTZOID))
					return false;
				s->h_int = iv->time + (int64) iv->day * USECS_PER_DAY;
				break;
			}
		case INT2OID:
		case INT4OID:
		case INT8OID:
			{
				double		h = strtod(t->horizon, NULL);

				/* (h)::int rounds half away from zero; h is positive */
				if (!(h < 1e15))
					return false;
				s->h_int = (int64) floor(h + 0.5);
				break;
			}
		case FLOAT8OID:
			s->ob_float = true;
			s->h_float = strtod(t->horizon, NULL);
			break;
		default:
			return false;
	}

	/* the source's (partition_by, order_by) index */
	part_type = get_atttype(t->source, s->a_part);
	cols[0] = s->a_part;
	cols[1] = s->a_ob;
	types[0] = part_type;
	types[1] = t->order_type;
	s->src_index = FindIndex(src, 2, cols, types);
	if (!OidIsValid(s->src_index))
	{
		/* a feature table's own index, in arrival order */
		s->src_index = FeatureSeqIndex(src, s->a_part, s->a_ob, t->source_ft_part,
									   t->source_ft_order, &s->a_late);
		if (!OidIsValid(s->src_index))
			return false;
		s->by_seq = true;
	}
	s->part_coll = AttCollation(src, s->a_part);
	get_typlenbyval(part_type, &s->part_len, &s->part_byval);
	{
		TypeCacheEntry *tc = lookup_type_cache(part_type, TYPECACHE_HASH_PROC_FINFO);
		Oid			opf = get_opclass_family(GetDefaultOpClass(part_type, BTREE_AM_OID));
		Oid			obf = get_opclass_family(GetDefaultOpClass(t->order_type, BTREE_AM_OID));
		Oid			ot = t->order_type;

		if (!OidIsValid(tc->hash_proc))
			return false;
		fmgr_info_copy(&s->part_hash, &tc->hash_proc_finfo, CurrentMemoryContext);
		s->part_eq = get_opcode(get_opfamily_member(opf, part_type, part_type,
													BTEqualStrategyNumber));
		s->ob_lt = get_opcode(get_opfamily_member(obf, ot, ot, BTLessStrategyNumber));
		s->ob_gt = get_opcode(get_opfamily_member(obf, ot, ot, BTGreaterStrategyNumber));
		s->ob_le = get_opcode(get_opfamily_member(obf, ot, ot, BTLessEqualStrategyNumber));
		if (!RegProcedureIsValid(s->part_eq) || !RegProcedureIsValid(s->ob_lt) ||
			!RegProcedureIsValid(s->ob_gt) || !RegProcedureIsValid(s->ob_le))
			return false;
	}
	{
		Relation	ir = index_open(s->src_index, AccessShareLock);
		Oid			icoll = ir->rd_indcollation[0];
		bool		same = icoll == s->part_coll;

		/*
		 * An index in another deterministic collation (COLLATE "C", whose
		 * comparisons are a memcmp) serves too: the batch only looks its
		 * partitions up by equality, which every deterministic collation
		 * decides bytewise, as the SQL statement's "=" does.
		 */
		if (!same && OidIsValid(icoll) && OidIsValid(s->part_coll) &&
			get_collation_isdeterministic(icoll) &&
			get_collation_isdeterministic(s->part_coll))
		{
			s->part_coll = icoll;
			same = true;
		}
		fmgr_info_copy(&s->part_cmp, index_getprocinfo(ir, 1, BTORDER_PROC),
					   CurrentMemoryContext);
		index_close(ir, AccessShareLock);
		if (!same)
			return false;
	}

	/* the keys: numbers or text, same types on both sides, the PK leads */
	{
		AttrNumber	pcols[MAX_KEYS];

		for (int i = 0; i < t->nkeys; i++)
		{
			AttrNumber	pa = get_attnum(t->predictions, t->prediction_keys[i]);

			s->a_keys[i] = get_attnum(t->source, t->key_columns[i]);
			if (s->a_keys[i] <= 0 || pa <= 0)
				return false;
			s->key_types[i] = get_atttype(t->source, s->a_keys[i]);
			s->key_colls[i] = AttCollation(src, s->a_keys[i]);
			if (get_atttype(t->predictions, pa) != s->key_types[i] ||
				AttCollation(preds, pa) != s->key_colls[i])
				return false;
			switch (s->key_types[i])
			{
				case INT2OID:
				case INT4OID:
				case INT8OID:
				case TEXTOID:
				case VARCHAROID:
					break;
				default:
					return false;
			}
			pcols[i] = pa;
			if (i == 0)
			{
				Oid			kf = get_opclass_family(GetDefaultOpClass(s->key_types[0],
																	  BTREE_AM_OID));

				s->key_ge = get_opcode(get_opfamily_member(kf, s->key_types[0], s->key_types[0],
														   BTGreaterEqualStrategyNumber));
				s->key_le = get_opcode(get_opfamily_member(kf, s->key_types[0], s->key_types[0],
														   BTLessEqualStrategyNumber));
			}
			s->key_eq[i] = get_opcode(get_opfamily_member(get_opclass_family(GetDefaultOpClass(s->key_types[i], BTREE_AM_OID)),
														  s->key_types[i], s->key_types[i],
														  BTEqualStrategyNumber));
		}
		s->pred_index = FindIndex(preds, t->nkeys, pcols, s->key_types);
		if (!OidIsValid(s->pred_index))
			return false;
	}
	return true;
}

/* Whether two partition_by values are equal (the index's equality). */
static bool
PartEqual(HorizonSetup *s, Datum a, Datum b)
{
	return DatumGetInt32(FunctionCall2Coll(&s->part_cmp, s->part_coll, a, b)) == 0;
}

/* Compares two key values of one key column. */
static int
CompareKey(Oid type, Oid coll, Datum a, Datum b)
{
	switch (type)
	{
		case INT2OID:
			return (DatumGetInt16(a) > DatumGetInt16(b)) - (DatumGetInt16(a) < DatumGetInt16(b));
		case INT4OID:
			return (DatumGetInt32(a) > DatumGetInt32(b)) - (DatumGetInt32(a) < DatumGetInt32(b));
		case INT8OID:
			return (DatumGetInt64(a) > DatumGetInt64(b)) - (DatumGetInt64(a) < DatumGetInt64(b));
		default:
			return DatumGetInt32(DirectFunctionCall2Coll(bttextcmp, coll, a, b));
	}
}

/* qsort of labelled rows in arrival order: order_by, then key. */
static int
CompareLabelled(const void *a, const void *b)
{
	const Labelled *x = a;
	const Labelled *y = b;
	int			c;

	if (SortSetup->ob_float)
		c = (x->od > y->od) - (x->od < y->od);
	else
		c = (x->oi > y->oi) - (x->oi < y->oi);
	for (int i = 0; c == 0 && i < SortNKeys; i++)
		c = CompareKey(SortSetup->key_types[i], SortSetup->key_colls[i],
					   SortKeys[x->keys + i], SortKeys[y->keys + i]);
	return c;
}

/* Whether run a's head comes after run b's (ArrivalOrder's heap). */
static inline bool
RunAfter(HorizonSetup *s, Labelled *rows, int *pos, int a, int b)
{
	Labelled   *x = &rows[pos[a]];
	Labelled   *y = &rows[pos[b]];

	return s->ob_float ? x->od > y->od : x->oi > y->oi;
}

/* Restores the heap property of ArrivalOrder's heap from slot i down. */
static void
RunSiftDown(HorizonSetup *s, Labelled *rows, int *pos, int *heap, int n, int i)
{
	for (;;)
	{
		int			c = 2 * i + 1;
		int			tmp;

		if (c >= n)
			break;
		if (c + 1 < n && RunAfter(s, rows, pos, heap[c], heap[c + 1]))
			c++;
		if (!RunAfter(s, rows, pos, heap[i], heap[c]))
			break;
		tmp = heap[i];
		heap[i] = heap[c];
		heap[c] = tmp;
		i = c;
	}
}

/*
 * Puts the labelled rows in arrival order (order_by, then key).  The rows
 * of each partition, runs[r] to runs[r + 1], are in order_by order already
 * (rows of equal order_by in heap order): a merge of the runs by order_by
 * (a binary heap of the runs' heads), then each group of equal order_by
 * sorted by key, is cheaper than sorting them all.
 */
static void
ArrivalOrder(HorizonSetup *s, LabelSet *lab, int *runs, int nruns)
{
	int		   *pos = palloc(sizeof(int) * Max(nruns, 1));
	int		   *heap = palloc(sizeof(int) * Max(nruns, 1));
	Labelled   *out = palloc(sizeof(Labelled) * Max(lab->n, 1));
	int			nheap = 0;
	int			n = 0;

	for (int r = 0; r < nruns; r++)
		if (runs[r] < runs[r + 1])
		{
			pos[r] = runs[r];
			heap[nheap++] = r;
		}
	for (int i = nheap / 2 - 1; i >= 0; i--)
		RunSiftDown(s, lab->rows, pos, heap, nheap, i);
	while (nheap > 0)
	{
		int			r = heap[0];

		out[n++] = lab->rows[pos[r]++];
		if (pos[r] == runs[r + 1])
			heap[0] = heap[--nheap];
		RunSiftDown(s, lab->rows, pos, heap, nheap, 0);
	}
	Assert(n == lab->n);
	memcpy(lab->rows, out, sizeof(Labelled) * n);

	/* ties of order_by: by key */
	for (int i = 0, j; i < n; i = j)
	{
		for (j = i + 1; j < n && (s->ob_float ? lab->rows[j].od == lab->rows[i].od :
								  lab->rows[j].oi == lab->rows[i].oi); j++)
			;
		if (j - i > 1)
			qsort(lab->rows + i, j - i, sizeof(Labelled), CompareLabelled);
	}
	pfree(out);
	pfree(heap);
	pfree(pos);
}


/* The key of a labelled row as jsonb, as jsonb_build_object makes it. */
static Jsonb *
KeyJsonb(OutcomeTracker *t, HorizonSetup *s, Datum *keys)
{
	JsonbParseState *state = NULL;
	JsonbValue	v;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < t->nkeys; i++)
	{
		v.type = jbvString;
		v.val.string.val = t->prediction_keys[i];
		v.val.string.len = strlen(t->prediction_keys[i]);
		pushJsonbValue(&state, WJB_KEY, &v);
		switch (s->key_types[i])
		{
			case INT2OID:
				v.type = jbvNumeric;
				v.val.numeric = int64_to_numeric(DatumGetInt16(keys[i]));
				break;
			case INT4OID:
				v.type = jbvNumeric;
				v.val.numeric = int64_to_numeric(DatumGetInt32(keys[i]));
				break;
			case INT8OID:
				v.type = jbvNumeric;
				v.val.numeric = int64_to_numeric(DatumGetInt64(keys[i]));
				break;
			default:
				{
					text	   *tx = DatumGetTextPP(keys[i]);

					v.type = jbvString;
					v.val.string.val = VARDATA_ANY(tx);
					v.val.string.len = VARSIZE_ANY_EXHDR(tx);
					break;
				}
		}
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/*
 * What the partitions of a batch reuse: the source's slot, its index scans
 * (begun once, rescanned per partition) and the array of range rows.
 */
typedef struct PartScans
{
	TupleTableSlot *slot;
	IndexScanDesc below;		/* partition = p AND order_by < x */
	IndexScanDesc range[4];		/* by number of keys: 2 or 3 */
	IndexScanDesc seq;			/* partition = p, by arrival_seq (by_seq) */
	char	   *rows;
	int			maxrows;
} PartScans;

/*
 * Makes a partition's slot and row buffer on first use (kept for the
 * batch's later partitions).
 */
static void
PartRowsBegin(PartScans *ps, Relation src, Size rowsize)
{
	if (ps->slot == NULL)
	{
		ps->slot = table_slot_create(src, NULL);
		ps->maxrows = 256;
		ps->rows = palloc(rowsize * ps->maxrows);
	}
}

/*
 * Row n of a partition's buffer of rows of rowsize bytes, the buffer grown
 * (doubled) when n is past its end.
 */
static RangeRow *
PartRowsAdd(PartScans *ps, Size rowsize, int n)
{
	if (n == ps->maxrows)
	{
		ps->maxrows *= 2;
		ps->rows = repalloc(ps->rows, rowsize * ps->maxrows);
	}
	return (RangeRow *) (ps->rows + (Size) n * rowsize);
}

/* An index scan of ps with nkeys keys, begun on first use. */
static IndexScanDesc
PartScan(PartScans *ps, IndexScanDesc *scan, Relation src, Relation sidx,
		 Snapshot snap, int nkeys)
{
	if (*scan == NULL)
		*scan = index_beginscan(src, sidx, snap, nkeys, 0);
	return *scan;
}

/* Ends the scans of a batch. */
static void
PartScansEnd(PartScans *ps)
{
	if (ps->below)
		index_endscan(ps->below);
	if (ps->seq)
		index_endscan(ps->seq);
	for (int i = 0; i < 4; i++)
		if (ps->range[i])
			index_endscan(ps->range[i]);
	if (ps->slot)
		ExecDropSingleTupleTableSlot(ps->slot);
}

/*
 * Appends to *out each row of a partition's range (nrows RangeRows of
 * rowsize bytes at rows, in order_by order, rows of equal order_by in the
 * order of their heap tuples) whose order_by is in (prev - h, bmax - h],
 * with its label: the first row of the range at or after its order_by + h,
 * and after it.
 */
static void
LabelRows(OutcomeTracker *t, HorizonSetup *s, char *rows, int nrows, Size rowsize,
		  int64 prev_i, double prev_f, int64 bmax_i, double bmax_f, LabelSet *out)
{
#define ROW(i) ((RangeRow *) (rows + (Size) (i) * rowsize))

	for (int i = 0, j = 0; i < nrows; i++)
	{
		RangeRow   *r = ROW(i);
		bool		in;
		Labelled   *l;

		if (s->ob_float)
			in = r->od > prev_f - s->h_float && r->od <= bmax_f - s->h_float;
		else
			in = r->oi > prev_i - s->h_int && r->oi <= bmax_i - s->h_int;
		if (!in || !r->keys_ok)
			continue;
		if (j <= i)
			j = i + 1;
		/* at or after r + h, and after r (as the SQL statement has it) */
		while (j < nrows && (s->ob_float ?
							 (ROW(j)->od < r->od + s->h_float || ROW(j)->od <= r->od) :
							 ROW(j)->oi < r->oi + s->h_int))
			j++;
		if (j >= nrows || !ROW(j)->has_actual)
			continue;
		if (out->n == out->max)
		{
			out->max *= 2;
			out->rows = repalloc(out->rows, sizeof(Labelled) * out->max);
		}
		if (out->nkeys + t->nkeys > out->maxkeys)
		{
			out->maxkeys = 2 * out->maxkeys + t->nkeys;
			out->keys = repalloc(out->keys, sizeof(Datum) * out->maxkeys);
		}
		l = &out->rows[out->n++];
		l->oi = r->oi;
		l->od = r->od;
		l->actual = ROW(j)->actual;
		l->group_key = r->group_key;
		l->keys = out->nkeys;
		memcpy(out->keys + out->nkeys, r->keys, sizeof(Datum) * t->nkeys);
		out->nkeys += t->nkeys;
	}
#undef ROW
}

/*
 * Labels the rows of one partition of the batch (see the top of the
 * file), appending them to *out; false, with out partly filled, when it
 * meets an order_by the SQL statement must read (ObExtreme).
 */
static bool
LabelPartition(OutcomeTracker *t, HorizonSetup *s, Relation src, Relation sidx,
			   Snapshot snap, BatchPart *bp, LabelSet *out, PartScans *ps)
{
	TupleTableSlot *slot;
	IndexScanDesc scan;
	ScanKeyData sk[3];
	Datum		part = bp->part;
	int64		bmin_i = bp->bmin_i;
	double		bmin_f = bp->bmin_f;
	int64		bmax_i = bp->bmax_i;
	double		bmax_f = bp->bmax_f;
	int			nmin = bp->nmin;
	bool		below = false;
	int64		below_i = 0;
	double		below_f = 0;
	int64		prev_i;
	double		prev_f;
	int			tmin = 0;
	char	   *rows;			/* RangeRows of rowsize bytes, one allocation */
	int			nrows = 0;
	Datum		bound = (Datum) 0;
	Size		rowsize = MAXALIGN(offsetof(RangeRow, keys) + sizeof(Datum) * t->nkeys);

#define ROW(i) ((RangeRow *) (rows + (Size) (i) * rowsize))

	PartRowsBegin(ps, src, rowsize);
	slot = ps->slot;
	rows = ps->rows;

	/* the newest order_by below the batch's oldest */
	ScanKeyInit(&sk[0], 1, BTEqualStrategyNumber, s->part_eq, part);
	sk[0].sk_collation = s->part_coll;
	ObDatum(t->order_type, bmin_i, bmin_f, &bound);
	ScanKeyInit(&sk[1], 2, BTLessStrategyNumber, s->ob_lt, bound);
	scan = PartScan(ps, &ps->below, src, sidx, snap, 2);
	index_rescan(scan, sk, 2, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, s->a_ob, &isnull);

		if (!isnull)
		{
			below = true;
			ObValue(s, t->order_type, d, &below_i, &below_f);
			if (!s->ob_float && ObExtreme(s, t->order_type, below_i))
				return false;
		}
	}

	/* the range (lower - h, bmax], in index order */
	{
		int64		lo_i = (below ? below_i : bmin_i);
		double		lo_f = (below ? below_f : bmin_f);
		int			nsk = 1;

		if (!s->ob_float && lo_i >= PG_INT64_MIN + s->h_int)
			lo_i -= s->h_int;
		else if (!s->ob_float)
			lo_i = PG_INT64_MIN;
		lo_f -= s->h_float;
		if (ObDatum(t->order_type, lo_i, lo_f, &bound))
			ScanKeyInit(&sk[nsk++], 2, BTGreaterStrategyNumber, s->ob_gt, bound);
		ObDatum(t->order_type, bmax_i, bmax_f, &bound);
		ScanKeyInit(&sk[nsk++], 2, BTLessEqualStrategyNumber, s->ob_le, bound);
		scan = PartScan(ps, &ps->range[nsk], src, sidx, snap, nsk);
		index_rescan(scan, sk, nsk, NULL, 0);
	}
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		RangeRow   *r;
		bool		isnull;
		Datum		d = slot_getattr(slot, s->a_ob, &isnull);

		if (isnull)
			continue;
		r = PartRowsAdd(ps, rowsize, nrows);
		rows = ps->rows;
		ObValue(s, t->order_type, d, &r->oi, &r->od);
		if (!s->ob_float && ObExtreme(s, t->order_type, r->oi))
			return false;
		if (s->ob_float ? r->od == bmin_f : r->oi == bmin_i)
			tmin++;
		RangeRowFill(t, s, slot, r);
		nrows++;
	}

	/* prev, as outcomeinsert.c's statement has it */
	if (tmin > nmin)
	{
		prev_i = bmin_i;
		prev_f = bmin_f;
	}
	else
	{
		prev_i = below ? below_i : bmin_i;
		prev_f = below ? below_f : bmin_f;
	}
	LabelRows(t, s, rows, nrows, rowsize, prev_i, prev_f, bmax_i, bmax_f, out);
	return true;
#undef ROW
}

/* The magnitude below which an int64 order_by is exact as a float8. */
#define EXACT_IN_DOUBLE (((int64) 1) << 53)

/* qsort_arg of RangeRows: order_by, then heap tuple (a btree's order). */
static int
CompareRangeRows(const void *a, const void *b, void *arg)
{
	const RangeRow *x = a;
	const RangeRow *y = b;
	HorizonSetup *s = arg;
	int			c;

	if (s->ob_float)
		c = (x->od > y->od) - (x->od < y->od);
	else
		c = (x->oi > y->oi) - (x->oi < y->oi);
	return c != 0 ? c : ItemPointerCompare((ItemPointer) &x->tid, (ItemPointer) &y->tid);
}

/*
 * LabelPartition for a feature table's partition, read by its own
 * (partition, arrival_seq) index (by_seq) backwards from its newest row.
 *
 * The feature trigger marks a row late when its order_by is below the
 * newest of its partition (featurestate.c; after a delete, the newest of
 * the rows left: featureinsert.c's Refresh), and keeps the flag; so every
 * row before (in arrival_seq) a row that is not late has an order_by at
 * most that row's.  (The trigger compares order_by as float8: exact for
 * every integer a feature table takes, and for a timestamp below 2^53
 * microseconds from 2000 in magnitude; a row beyond is not relied on.)
 * The backward scan so learns what the (partition_by, order_by) index
 * would tell: at the first row not late below the batch's oldest
 * order_by, bmin, no older row has bmin or more, so the count of rows at
 * bmin and the newest below it are known, hence prev; at the first row not
 * late at or below prev - h, no older row is in the range (prev - h,
 * bmax].  The rows read in the range are put in order_by order, rows of
 * equal order_by in the order of their heap tuples (as the btree has them)
 * and labelled as LabelPartition labels them.  The rows read are checked
 * against the same property (a feature table written by hand could break
 * it); false, having appended nothing, when it fails, or when a row read
 * is not exact in float8.
 */
static bool
LabelPartitionBySeq(OutcomeTracker *t, HorizonSetup *s, Relation src, Relation sidx,
					Snapshot snap, BatchPart *bp, LabelSet *out, PartScans *ps)
{
	TupleTableSlot *slot;
	IndexScanDesc scan;
	ScanKeyData sk;
	int64		bmin_i = bp->bmin_i;
	double		bmin_f = bp->bmin_f;
	int64		bmax_i = bp->bmax_i;
	double		bmax_f = bp->bmax_f;
	bool		have_prev = false;
	int64		prev_i = 0;
	double		prev_f = 0;
	int64		lo_i = 0;
	double		lo_f = 0;
	int			tmin = 0;		/* rows at bmin */
	bool		below = false;	/* the newest below bmin */
	int64		below_i = 0;
	double		below_f = 0;
	bool		have_nl = false;	/* the oldest row read that is not late */
	int64		nl_i = 0;
	double		nl_f = 0;
	char	   *rows;
	int			nrows = 0;
	Size		rowsize = MAXALIGN(offsetof(RangeRow, keys) + sizeof(Datum) * t->nkeys);

#define ROW(i) ((RangeRow *) (rows + (Size) (i) * rowsize))

	PartRowsBegin(ps, src, rowsize);
	slot = ps->slot;
	rows = ps->rows;

	ScanKeyInit(&sk, 1, BTEqualStrategyNumber, s->part_eq, bp->part);
	sk.sk_collation = s->part_coll;
	if (ps->seq == NULL)
		ps->seq = index_beginscan(src, sidx, snap, 1, 0);
	scan = ps->seq;
	index_rescan(scan, &sk, 1, NULL, 0);
	while (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, s->a_ob, &isnull);
		int64		oi = 0;
		double		od = 0;
		bool		late;
		RangeRow   *r;

		if (isnull)
			continue;
		ObValue(s, t->order_type, d, &oi, &od);
		if (!s->ob_float && (oi >= EXACT_IN_DOUBLE || oi <= -EXACT_IN_DOUBLE ||
							 ObExtreme(s, t->order_type, oi)))
			goto fail;
		d = slot_getattr(slot, s->a_late, &isnull);
		late = isnull || DatumGetBool(d);	/* no promise without a flag */

		/* what the trigger's flags promise, on the rows read */
		if (have_nl && (s->ob_float ? od > nl_f : oi > nl_i))
			goto fail;
		if (!late)
		{
			have_nl = true;
			nl_i = oi;
			nl_f = od;
		}

		if (!have_prev)
		{
			/* before prev is known: the rows at bmin and the newest below */
			if (s->ob_float ? od == bmin_f : oi == bmin_i)
				tmin++;
			else if ((s->ob_float ? od < bmin_f : oi < bmin_i) &&
					 (!below || (s->ob_float ? od > below_f : oi > below_i)))
			{
				below = true;
				below_i = oi;
				below_f = od;
			}
			if (!late && (s->ob_float ? od < bmin_f : oi < bmin_i))
			{
				/* no older row is at bmin or above: prev is known */
				have_prev = true;
				prev_i = tmin > bp->nmin ? bmin_i : below_i;
				prev_f = tmin > bp->nmin ? bmin_f : below_f;
				lo_i = prev_i >= PG_INT64_MIN + s->h_int ? prev_i - s->h_int : PG_INT64_MIN;
				lo_f = prev_f - s->h_float;
			}
		}
		if (have_prev && !late && (s->ob_float ? od <= lo_f : oi <= lo_i))
			break;				/* no older row is in the range */

		/* rows above bmax are in no range; the others are filtered below */
		if (s->ob_float ? od > bmax_f : oi > bmax_i)
			continue;
		r = PartRowsAdd(ps, rowsize, nrows);
		rows = ps->rows;
		r->oi = oi;
		r->od = od;
		r->tid = slot->tts_tid;
		RangeRowFill(t, s, slot, r);
		nrows++;
	}
	if (!have_prev)
	{
		/* every row read: prev as outcomeinsert.c's statement has it */
		prev_i = tmin > bp->nmin ? bmin_i : (below ? below_i : bmin_i);
		prev_f = tmin > bp->nmin ? bmin_f : (below ? below_f : bmin_f);
		lo_i = prev_i >= PG_INT64_MIN + s->h_int ? prev_i - s->h_int : PG_INT64_MIN;
		lo_f = prev_f - s->h_float;
	}

	/* the range (prev - h, bmax], in the btree's order */
	{
		int			n = 0;

		for (int i = 0; i < nrows; i++)
			if (s->ob_float ? ROW(i)->od > lo_f : ROW(i)->oi > lo_i)
			{
				if (n != i)
					memcpy(ROW(n), ROW(i), rowsize);
				n++;
			}
		nrows = n;
	}
	if (nrows > 1)
	{
		/* read newest first: reversed, the rows are mostly in order already */
		char	   *tmp = palloc(rowsize);

		for (int i = 0, j = nrows - 1; i < j; i++, j--)
		{
			memcpy(tmp, ROW(i), rowsize);
			memcpy(ROW(i), ROW(j), rowsize);
			memcpy(ROW(j), tmp, rowsize);
		}
		pfree(tmp);
		qsort_arg(rows, nrows, rowsize, CompareRangeRows, s);
	}
	LabelRows(t, s, rows, nrows, rowsize, prev_i, prev_f, bmax_i, bmax_f, out);
	return true;

fail:
	return false;
#undef ROW
}

/* Where a prediction row's columns are, and what its records share. */
typedef struct PredColumns
{
	AttrNumber	model;
	AttrNumber	version;
	AttrNumber	role;			/* InvalidAttrNumber: no role column */
	AttrNumber	pred;
	AttrNumber	prob;
	AttrNumber	class;
	AttrNumber	at;
	char	   *last_model;		/* the model and role of the last record */
	char	   *last_role;
	MemoryContext keep;			/* where the records' strings live */
	TimestampTz now;
} PredColumns;

/*
 * Fills the prediction side of a record from a row of the predictions
 * table (key and actual are the caller's); false when its model is NULL.
 * Consecutive rows nearly always share their model and role: one string
 * each until they change.
 */
static bool
PredictionRecord(PredColumns *pc, TupleTableSlot *pslot, OutcomeRecord *r)
{
	bool		isnull;
	Datum		d;
	text	   *tx;
	MemoryContext old;

	memset(r, 0, sizeof(OutcomeRecord));
	d = slot_getattr(pslot, pc->model, &isnull);
	if (isnull)
		return false;
	old = MemoryContextSwitchTo(pc->keep);
	tx = DatumGetTextPP(d);
	if (pc->last_model == NULL || strlen(pc->last_model) != VARSIZE_ANY_EXHDR(tx) ||
		memcmp(pc->last_model, VARDATA_ANY(tx), VARSIZE_ANY_EXHDR(tx)) != 0)
		pc->last_model = text_to_cstring(tx);
	r->model = pc->last_model;
	r->role = "champion";
	if (pc->role > 0)
	{
		d = slot_getattr(pslot, pc->role, &isnull);
		if (!isnull)
		{
			tx = DatumGetTextPP(d);
			if (pc->last_role == NULL || strlen(pc->last_role) != VARSIZE_ANY_EXHDR(tx) ||
				memcmp(pc->last_role, VARDATA_ANY(tx), VARSIZE_ANY_EXHDR(tx)) != 0)
				pc->last_role = text_to_cstring(tx);
			r->role = pc->last_role;
		}
	}
	d = slot_getattr(pslot, pc->class, &isnull);
	r->class_label = isnull ? NULL : TextDatumGetCString(d);
	MemoryContextSwitchTo(old);
	r->version = DatumGetInt32(slot_getattr(pslot, pc->version, &isnull));
	r->group_key = "";
	r->labelled_at = pc->now;
	r->predicted_at = DatumGetTimestampTz(slot_getattr(pslot, pc->at, &isnull));
	r->first = true;
	d = slot_getattr(pslot, pc->pred, &isnull);
	r->has_prediction = !isnull;
	r->prediction = isnull ? 0 : DatumGetFloat8(d);
	d = slot_getattr(pslot, pc->prob, &isnull);
	r->has_probability = !isnull;
	r->probability = isnull ? 0 : DatumGetFloat8(d);
	return true;
}

/*
 * PredictionRecord of a row of the statement's copy of its predictions
 * (predstash.c): the same record as from the row in the table.
 */
static void
StashRecord(PredColumns *pc, const PredStashRow *sr, OutcomeRecord *r)
{
	MemoryContext old;

	memset(r, 0, sizeof(OutcomeRecord));
	old = MemoryContextSwitchTo(pc->keep);
	if (pc->last_model == NULL || strcmp(pc->last_model, sr->model) != 0)
		pc->last_model = pstrdup(sr->model);
	r->model = pc->last_model;
	r->role = "champion";
	if (pc->role > 0)
	{
		if (pc->last_role == NULL || strcmp(pc->last_role, sr->role) != 0)
			pc->last_role = pstrdup(sr->role);
		r->role = pc->last_role;
	}
	r->class_label = sr->class_label ? pstrdup(sr->class_label) : NULL;
	MemoryContextSwitchTo(old);
	r->version = sr->version;
	r->group_key = "";
	r->labelled_at = pc->now;
	r->predicted_at = sr->scored_at;
	r->first = true;
	r->has_prediction = sr->has_prediction;
	r->prediction = sr->prediction;
	r->has_probability = sr->has_probability;
	r->probability = sr->probability;
}

/* Appends a record to a growing array. */
static void
AppendHit(OutcomeRecord **hits, int *n, int *max, OutcomeRecord *r)
{
	if (*n == *max)
	{
		*max = Max(2 * *max, 256);
		*hits = *hits ? repalloc(*hits, sizeof(OutcomeRecord) * *max) :
			palloc(sizeof(OutcomeRecord) * *max);
	}
	(*hits)[(*n)++] = *r;
}

/*
 * The prediction rows of the labelled rows, one probe of the predictions
 * table's index per labelled row: *hits grouped by labelled row, in
 * arrival order, those of row i from hit_start[i] to hit_start[i + 1].
 */
static void
ProbePredictions(OutcomeTracker *t, HorizonSetup *s, LabelSet *lab,
				 Relation preds, Relation pidx, Snapshot snap,
				 TupleTableSlot *pslot, PredColumns *pc,
				 OutcomeRecord **hits, int *nhits, int *hit_start)
{
	IndexScanDesc scan = index_beginscan(preds, pidx, snap, t->nkeys, 0);
	ScanKeyData sk[MAX_KEYS];
	OutcomeRecord r;
	int			max = 0;

	*hits = NULL;
	*nhits = 0;
	for (int i = 0; i < lab->n; i++)
	{
		Datum	   *lkeys = lab->keys + lab->rows[i].keys;

		hit_start[i] = *nhits;
		for (int k = 0; k < t->nkeys; k++)
		{
			ScanKeyInit(&sk[k], k + 1, BTEqualStrategyNumber, s->key_eq[k], lkeys[k]);
			sk[k].sk_collation = s->key_colls[k];
		}
		index_rescan(scan, sk, t->nkeys, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, pslot))
			if (PredictionRecord(pc, pslot, &r))
				AppendHit(hits, nhits, &max, &r);
	}
	hit_start[lab->n] = *nhits;
	index_endscan(scan);
}

/* The most keys between two labelled keys that one range scan steps over. */
#define MERGE_GAP 64

/* The span of keys above which a range scan is read without its upper bound. */
#define MERGE_OPEN_SPAN 4096

/* For the sort of MergePredictions: a labelled row's key and index. */
typedef struct KeyIndex
{
	int64		key;
	int			i;
} KeyIndex;

/* qsort of KeyIndex by key, then index. */
static int
CompareKeyIndex(const void *a, const void *b)
{
	const KeyIndex *x = a;
	const KeyIndex *y = b;

	if (x->key != y->key)
		return (x->key > y->key) - (x->key < y->key);
	return (x->i > y->i) - (x->i < y->i);
}

/*
 * ProbePredictions by range scans of the predictions table's index, for a
 * key that is one integer column: the labelled keys in key order, cut into
 * runs whose consecutive keys are at most MERGE_GAP apart, one range scan
 * per run, merged with the run's keys.  The keys come from the index
 * entries; the heap row is read only for a labelled key.  A batch labels
 * rows loaded close together, whose keys mostly are too: a few descents
 * per batch instead of one per labelled row, and a step over the entries
 * between two labelled keys, which costs less than a descent while they
 * are fewer than MERGE_GAP.  False, having done nothing, when it does not
 * apply.
 */
static bool
MergePredictions(OutcomeTracker *t, HorizonSetup *s, LabelSet *lab,
				 Relation preds, Relation pidx, Snapshot snap,
				 TupleTableSlot *pslot, PredColumns *pc, PredStash *stash,
				 OutcomeRecord **hits, int *nhits, int *hit_start)
{
	Oid			type = s->key_types[0];
	int			n = lab->n;
	KeyIndex   *order;
	OutcomeRecord *found = NULL;
	int		   *found_lab = NULL;
	int			nfound = 0;
	int			maxfound = 0;
	int			max = 0;
	int		   *next;
	IndexScanDesc scan;
	IndexScanDesc open_scan = NULL;
	IndexScanDesc closed_scan = NULL;
	ScanKeyData sk[2];
	OutcomeRecord r;
	int			p = 0;
	bool		sorted = true;

	if (t->nkeys != 1 || n == 0 || !OidIsValid(s->key_ge) || !OidIsValid(s->key_le) ||
		(type != INT2OID && type != INT4OID && type != INT8OID))
		return false;
	order = palloc(sizeof(KeyIndex) * n);
	n = 0;
	for (int i = 0; i < lab->n; i++)
	{
		int64		key = IntegerValue(type, lab->keys[lab->rows[i].keys]);
		const PredStashRow *sr;

		/* a key the statement scored, whose one row is in the copy */
		if (stash && key > t->stash_floor && (sr = PredStashLookup(stash, key)) != NULL)
		{
			StashRecord(pc, sr, &r);
			if (nfound == maxfound)
			{
				maxfound = Max(2 * maxfound, 256);
				found_lab = found_lab ? repalloc(found_lab, sizeof(int) * maxfound) :
					palloc(sizeof(int) * maxfound);
			}
			found_lab[nfound] = i;
			AppendHit(&found, &nfound, &max, &r);
			continue;
		}
		order[n].key = key;
		order[n].i = i;
		if (n > 0 && order[n].key < order[n - 1].key)
			sorted = false;
		n++;
	}
	if (!sorted)
		qsort(order, n, sizeof(KeyIndex), CompareKeyIndex);
	while (p < n)
	{
		int			last = p;
		ItemPointer tid;

		/* a run of keys no more than MERGE_GAP apart: one range scan */
		while (last + 1 < n &&
			   (uint64) order[last + 1].key - (uint64) order[last].key <= MERGE_GAP)
			last++;
		ScanKeyInit(&sk[0], 1, BTGreaterEqualStrategyNumber, s->key_ge,
					lab->keys[lab->rows[order[p].i].keys]);
		ScanKeyInit(&sk[1], 1, BTLessEqualStrategyNumber, s->key_le,
					lab->keys[lab->rows[order[last].i].keys]);

		/*
		 * A long run, read without its upper bound: every entry the scan
		 * reads is checked against each key of the scan (a function call
		 * apiece), and the merge below stops past the run's last key, at
		 * the cost of the rest of that leaf page.
		 */
		if ((uint64) order[last].key - (uint64) order[p].key > MERGE_OPEN_SPAN)
		{
			if (open_scan == NULL)
			{
				open_scan = index_beginscan(preds, pidx, snap, 1, 0);
				open_scan->xs_want_itup = true;
			}
			scan = open_scan;
			index_rescan(scan, sk, 1, NULL, 0);
		}
		else
		{
			if (closed_scan == NULL)
			{
				closed_scan = index_beginscan(preds, pidx, snap, 2, 0);
				closed_scan->xs_want_itup = true;	/* the key from the entry */
			}
			scan = closed_scan;
			index_rescan(scan, sk, 2, NULL, 0);
		}
		while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
		{
			bool		isnull;
			int64		k = IntegerValue(type, index_getattr(scan->xs_itup, 1,
													   scan->xs_itupdesc, &isnull));

			if (isnull)
				continue;
			while (p <= last && order[p].key < k)
				p++;
			if (p > last)
				break;
			/* the heap row only for a labelled key, and if visible */
			if (order[p].key != k || !index_fetch_heap(scan, pslot) ||
				!PredictionRecord(pc, pslot, &r))
				continue;
			for (int q = p; q <= last && order[q].key == k; q++)
			{
				if (nfound == maxfound)
				{
					maxfound = Max(2 * maxfound, 256);
					found_lab = found_lab ? repalloc(found_lab, sizeof(int) * maxfound) :
						palloc(sizeof(int) * maxfound);
				}
				found_lab[nfound] = order[q].i;
				AppendHit(&found, &nfound, &max, &r);
			}
		}
		p = last + 1;
	}
	if (open_scan)
		index_endscan(open_scan);
	if (closed_scan)
		index_endscan(closed_scan);

	/* grouped by labelled row, in arrival order; each row's in index order */
	n = lab->n;
	memset(hit_start, 0, sizeof(int) * (n + 1));
	for (int h = 0; h < nfound; h++)
		hit_start[found_lab[h] + 1]++;
	for (int i = 0; i < n; i++)
		hit_start[i + 1] += hit_start[i];
	next = palloc(sizeof(int) * Max(n, 1));
	memcpy(next, hit_start, sizeof(int) * n);
	*hits = palloc(sizeof(OutcomeRecord) * Max(nfound, 1));
	for (int h = 0; h < nfound; h++)
		(*hits)[next[found_lab[h]]++] = found[h];
	*nhits = nfound;
	pfree(next);
	pfree(order);
	if (found)
	{
		pfree(found);
		pfree(found_lab);
	}
	return true;
}

/*
 * Reads a batch's outcomes in horizon mode and adds them to b (see the top
 * of the file); false, having done nothing, where the C path does not
 * apply.  SPI connected; the caller checked the owner's privileges.
 */
bool
OutcomeHorizonBatch(OutcomeTracker *t, TriggerData *td, OutcomeBatch *b,
					TimestampTz now, PredStash *stash)
{
	Relation	src = td->tg_relation;
	Relation	preds;
	Relation	sidx;
	Relation	pidx;
	HorizonSetup setup;
	HorizonSetup *s = &setup;
	Tuplestorestate *ts = td->tg_newtable;
	TupleTableSlot *tslot;
	BatchPart  *parts;
	BatchPart  *last = NULL;
	int			nparts;
	int			nused = 0;
	int			ptr;
	LabelSet	lab;
	PartScans	ps;
	int			nlab;
	Snapshot	snap;
	OutcomeRecord *recs;
	int			nrec = 0;
	int			maxrec;
	PendingOutcome *pend;
	int			npend = 0;
	PredColumns pc;
	int		   *runs;
	int			nruns = 0;
	bool		int_key;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "pg_streamml horizon batch",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext scratch = AllocSetContextCreate(cxt, "pg_streamml horizon key",
												  ALLOCSET_SMALL_SIZES);
	MemoryContext old;
	bool		saw_nan = false;

	preds = table_open(t->predictions, AccessShareLock);
	old = MemoryContextSwitchTo(cxt);
	if (!Setup(t, src, preds, s))
	{
		MemoryContextSwitchTo(old);
		table_close(preds, AccessShareLock);
		MemoryContextDelete(cxt);
		return false;
	}
	/* group keys live as long as the records (the batch's sums keep them) */
	s->group_cxt = old;

	/*
	 * The batch's partitions, with their oldest and newest order_by: an
	 * open-addressing hash table by the partition's hash (the type cache's)
	 * and the index's equality; consecutive rows mostly share a partition.
	 */
	nparts = 64;
	parts = palloc0(sizeof(BatchPart) * nparts);
	tslot = MakeSingleTupleTableSlot(RelationGetDescr(src), &TTSOpsMinimalTuple);
	ptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(ts, ptr);
	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, tslot))
	{
		bool		pnull;
		bool		onull;
		Datum		p = slot_getattr(tslot, s->a_part, &pnull);
		Datum		o = slot_getattr(tslot, s->a_ob, &onull);
		int64		oi = 0;
		double		od = 0;
		uint32		h;
		BatchPart  *bp;

		if (pnull || onull)
			continue;
		ObValue(s, t->order_type, o, &oi, &od);
		/* NaN sorts above every number in SQL, not in C: SQL's statement */
		if (s->ob_float ? isnan(od) : ObExtreme(s, t->order_type, oi))
		{
			saw_nan = true;
			break;
		}
		if (last != NULL && PartEqual(s, last->part, p))
			bp = last;
		else
		{
			h = DatumGetUInt32(FunctionCall1Coll(&s->part_hash, s->part_coll, p));
			if (2 * (nused + 1) > nparts)
			{
				/* grow: rehash the partitions into twice the slots */
				BatchPart  *old_parts = parts;
				int			old_n = nparts;

				nparts *= 2;
				parts = palloc0(sizeof(BatchPart) * nparts);
				for (int k = 0; k < old_n; k++)
					if (old_parts[k].used)
					{
						int			x = old_parts[k].hash & (nparts - 1);

						while (parts[x].used)
							x = (x + 1) & (nparts - 1);
						parts[x] = old_parts[k];
					}
				pfree(old_parts);
			}
			bp = &parts[h & (nparts - 1)];
			while (bp->used && (bp->hash != h || !PartEqual(s, bp->part, p)))
				bp = &parts[((bp - parts) + 1) & (nparts - 1)];
			if (!bp->used)
			{
				bp->used = true;
				bp->hash = h;
				bp->part = datumCopy(p, s->part_byval, s->part_len);
				bp->bmin_i = bp->bmax_i = oi;
				bp->bmin_f = bp->bmax_f = od;
				bp->nmin = 0;
				nused++;
			}
		}
		last = bp;
		if (s->ob_float ? od < bp->bmin_f : oi < bp->bmin_i)
		{
			bp->bmin_i = oi;
			bp->bmin_f = od;
			bp->nmin = 0;
		}
		if (s->ob_float ? od == bp->bmin_f : oi == bp->bmin_i)
			bp->nmin++;
		if (s->ob_float ? od > bp->bmax_f : oi > bp->bmax_i)
		{
			bp->bmax_i = oi;
			bp->bmax_f = od;
		}
	}
	tuplestore_select_read_pointer(ts, 0);
	ExecDropSingleTupleTableSlot(tslot);
	if (saw_nan)
	{
		MemoryContextSwitchTo(old);
		table_close(preds, AccessShareLock);
		MemoryContextDelete(cxt);
		return false;
	}

	/* what SPI would see: the batch and its predictions */
	PushActiveSnapshot(GetTransactionSnapshot());
	CommandCounterIncrement();
	UpdateActiveSnapshotCommandId();
	snap = GetActiveSnapshot();

	sidx = index_open(s->src_index, AccessShareLock);
	lab.max = 1024;
	lab.n = 0;
	lab.rows = palloc(sizeof(Labelled) * lab.max);
	lab.maxkeys = 1024;
	lab.nkeys = 0;
	lab.keys = palloc(sizeof(Datum) * lab.maxkeys);
	memset(&ps, 0, sizeof(ps));
	runs = palloc(sizeof(int) * (nused + 1));
	for (int k = 0; k < nparts; k++)
		if (parts[k].used)
		{
			runs[nruns++] = lab.n;
			if (!(s->by_seq ?
				  LabelPartitionBySeq(t, s, src, sidx, snap, &parts[k], &lab, &ps) :
				  LabelPartition(t, s, src, sidx, snap, &parts[k], &lab, &ps)))
			{
				/* the SQL statement reads this batch */
				PartScansEnd(&ps);
				index_close(sidx, AccessShareLock);
				PopActiveSnapshot();
				MemoryContextSwitchTo(old);
				table_close(preds, AccessShareLock);
				MemoryContextDelete(cxt);
				return false;
			}
		}
	runs[nruns] = lab.n;
	PartScansEnd(&ps);
	index_close(sidx, AccessShareLock);
	SortSetup = s;
	SortNKeys = t->nkeys;
	SortKeys = lab.keys;
	ArrivalOrder(s, &lab, runs, nruns);

	/* the predictions of each labelled key, by the primary key */
	pc.model = get_attnum(t->predictions, "model");
	pc.version = get_attnum(t->predictions, "version");
	pc.role = t->has_role ? get_attnum(t->predictions, "role") : InvalidAttrNumber;
	pc.pred = get_attnum(t->predictions, "prediction");
	pc.prob = get_attnum(t->predictions, "probability");
	pc.class = get_attnum(t->predictions, "class");
	pc.at = get_attnum(t->predictions, "scored_at");
	pc.last_model = NULL;
	pc.last_role = NULL;
	pc.keep = old;
	pc.now = now;
	nlab = lab.n;
	pidx = index_open(s->pred_index, AccessShareLock);
	{
		TupleTableSlot *pslot = table_slot_create(preds, NULL);
		int		   *hit_start = palloc0(sizeof(int) * (nlab + 1));
		OutcomeRecord *hits;
		int			nhits;

		/* the prediction rows of each labelled row, in index order */
		if (!MergePredictions(t, s, &lab, preds, pidx, snap, pslot, &pc, stash,
							  &hits, &nhits, hit_start))
			ProbePredictions(t, s, &lab, preds, pidx, snap, pslot, &pc,
							 &hits, &nhits, hit_start);
		ExecDropSingleTupleTableSlot(pslot);

		/* in arrival order: records, or a pending outcome when none */
		int_key = t->nkeys == 1 && s->key_types[0] != TEXTOID &&
			s->key_types[0] != VARCHAROID;
		maxrec = Max(nhits, 1);
		MemoryContextSwitchTo(old);
		recs = palloc(sizeof(OutcomeRecord) * maxrec);
		pend = palloc(sizeof(PendingOutcome) * Max(nlab, 1));
		MemoryContextSwitchTo(cxt);
		for (int i = 0; i < nlab; i++)
		{
			Labelled   *l = &lab.rows[i];
			Datum		key = (Datum) 0;
			Jsonb	   *j;

			/*
			 * The key as jsonb, built in a scratch context, reset per row;
			 * the result kept.  Not for the records of a one-integer key:
			 * what they need of it is the integer (RecordKey).
			 */
			if (!int_key || hit_start[i] == hit_start[i + 1])
			{
				MemoryContextSwitchTo(scratch);
				j = KeyJsonb(t, s, lab.keys + l->keys);
				MemoryContextSwitchTo(old);
				key = PointerGetDatum(memcpy(palloc(VARSIZE(j)), j, VARSIZE(j)));
				MemoryContextSwitchTo(cxt);
				MemoryContextReset(scratch);
			}
			if (hit_start[i] == hit_start[i + 1])
			{
				PendingOutcome *p = &pend[npend++];

				p->key = key;
				p->has_number = true;
				p->actual_number = l->actual;
				p->actual_text = NULL;
				p->group_key = l->group_key;
				p->labelled_at = now;
				continue;
			}
			for (int h = hit_start[i]; h < hit_start[i + 1]; h++)
			{
				OutcomeRecord *r = &recs[nrec++];

				*r = hits[h];
				r->key = key;
				r->group_key = l->group_key;
				if (int_key)
				{
					r->key_is_int = true;
					r->key_int = IntegerValue(s->key_types[0], lab.keys[l->keys]);
					r->key_name = t->prediction_keys[0];
				}
				MemoryContextSwitchTo(old);
				OutcomeRecordFinish(b, r, true, l->actual);
				MemoryContextSwitchTo(cxt);
			}
		}
	}
	index_close(pidx, AccessShareLock);
	PopActiveSnapshot();
	MemoryContextSwitchTo(old);
	table_close(preds, AccessShareLock);
	OutcomeBatchAddRecords(b, recs, nrec, pend, npend);
	MemoryContextDelete(cxt);
	return true;
}
