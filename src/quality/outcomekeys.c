/*
 * outcomekeys.c
 *		Which one-integer keys already have an outcome, per tracker, model
 *		and version: sets of 8,192 keys, one row per set, instead of one
 *		unique index entry per outcome.
 *
 * The first outcome of a key (per model version that scored it) wins.
 * For a key that is one integer (its key_hash is the key itself, so equal
 * key_hash is equal key: quality.sql), whether it already has an outcome
 * is whether offset (key mod 8192) is in the row (tracker, version, model,
 * key div 8192) of streamml.outcome_key_sets.  A stream's keys are mostly
 * dense (ids), so a batch of 10,000 outcomes touches a few such rows (a
 * few per Kafka partition whose keys interleave with the others'): per
 * batch, one SELECT ... FOR UPDATE of the batch's rows, one UPDATE of
 * those that exist and one INSERT ... ON CONFLICT DO NOTHING of those that
 * do not, where the unique index of outcome_rows made one btree entry and
 * WAL record per outcome.  Other keys (jsonb hashed) keep that unique
 * index (partial: key IS NOT NULL), whose hashes may collide.
 *
 * A set is stored as Roaring bitmaps store a container: the offsets in it,
 * sorted, two bytes each (big-endian), while there are at most 511 of
 * them (sparse keys: a row of a few bytes); else a bitmap of 1,024 bytes,
 * bit (offset mod 8) of byte (offset div 8).  Its length tells which: 1,024
 * bytes, a bitmap; fewer (even), offsets.  In memory a set is a bitmap.
 *
 * Exactness.  The rows are locked in one order (model, version, set) by
 * every batch (the order of the arrays the lock probes by), so concurrent
 * batches of one tracker take turns on a set and do not deadlock with one
 * another: the second reads the bits the first committed (READ COMMITTED
 * re-reads a row that changed while it waited; a transaction snapshot gets
 * a serialization failure instead, as a unique index would give).  (Two
 * transactions of several batches each can still lock two sets in
 * opposite orders, one batch each, and one of them gets a deadlock error,
 * nothing lost: as two unique index entries would.)  A set that a
 * concurrent batch inserted first is not inserted (ON CONFLICT DO NOTHING
 * waits for that batch's end) and is read again, locked, in the next
 * round.  Bits are set in arrival order within the batch, so the earliest
 * outcome of a key wins, as with the index; a
 * rolled-back batch rolls its bits back.  The rows are written only here
 * (as the bootstrap superuser) and deleted with their tracker.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "port/pg_bitutils.h"
#include "storage/itemptr.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "quality/quality.h"

#define SET_KEYS 8192
#define SET_BYTES (SET_KEYS / 8)	/* a set as a bitmap */
#define SET_MAX_OFFSETS (SET_BYTES / 2 - 1) /* a set as offsets, at most */
#define MAX_ROUNDS 8

/* A key to check: its model version, value, and the record's flag. */
typedef struct KeyItem
{
	const char *model;
	int32		version;
	int64		key;
	int64		set;			/* key div 8192 (rounded down) */
	int			offset;			/* key mod 8192, in [0, 8192) */
	int			order;			/* arrival order in the batch */
	bool	   *first;
} KeyItem;

/* A set the batch touches: its items are items[start .. end). */
typedef struct KeySet
{
	int			start;
	int			end;
	bool		found;			/* read (and locked) in this round */
	bool		done;
	ItemPointerData tid;		/* where, when found */
	uint8		bits[SET_BYTES];
} KeySet;

static SPIPlanPtr LockPlan = NULL;
static SPIPlanPtr UpdatePlan = NULL;
static SPIPlanPtr InsertPlan = NULL;

/* qsort order of items: model (bytewise), version, key, arrival. */
static int
CompareItems(const void *a, const void *b)
{
	const KeyItem *x = a;
	const KeyItem *y = b;
	int			c = strcmp(x->model, y->model);

	if (c != 0)
		return c;
	if (x->version != y->version)
		return x->version < y->version ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (x->order > y->order) - (x->order < y->order);
}

/* Whether sorted item i is the first of its set. */
static inline bool
StartsSet(const KeyItem *items, int i)
{
	return i == 0 || strcmp(items[i].model, items[i - 1].model) != 0 ||
		items[i].version != items[i - 1].version ||
		items[i].set != items[i - 1].set;
}

/*
 * Prepares the three statements, once per backend.  Each reaches the rows
 * of the batch's sets only, whatever plan the planner makes of statistics
 * taken while the table was small: a row's lock is a LATERAL subquery with
 * FOR UPDATE (which the planner does not pull up into a join, so it stays
 * one index probe per set), in the order of the arrays (sorted: model,
 * version, set); the update goes by the locked rows' ctids (a TID scan),
 * joined with their new bits by hash (UpdateSets).
 * A join of the arrays with the table was once planned as a merge join
 * over all the tracker's sets, read at every batch: linear in the keys the
 * tracker ever saw.
 */
static void
PreparePlans(void)
{
	if (LockPlan != NULL)
		return;
	LockPlan = OutcomePrepare("SELECT k.model, k.version, k.key_set, k.bits, k.ctid "
							  "FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.text[]), "
							  "pg_catalog.unnest($3::pg_catalog.int4[]), "
							  "pg_catalog.unnest($4::pg_catalog.int8[])) u(m, v, s) "
							  "CROSS JOIN LATERAL (SELECT k.model, k.version, k.key_set, "
							  "k.bits, k.ctid FROM streamml.outcome_key_sets k "
							  "WHERE k.tracker OPERATOR(pg_catalog.=) $1 "
							  "AND k.model OPERATOR(pg_catalog.=) (u.m COLLATE \"C\") "
							  "AND k.version OPERATOR(pg_catalog.=) u.v "
							  "AND k.key_set OPERATOR(pg_catalog.=) u.s FOR UPDATE) k",
							  4, (Oid[]) {INT4OID, TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID});
	UpdatePlan = OutcomePrepare("UPDATE streamml.outcome_key_sets k SET bits = u.b "
								"FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.tid[]), "
								"pg_catalog.unnest($2::pg_catalog.bytea[])) u(t, b) "
								"WHERE k.ctid OPERATOR(pg_catalog.=) ANY ($1) "
								"AND k.ctid OPERATOR(pg_catalog.=) u.t",
								2, (Oid[]) {TIDARRAYOID, BYTEAARRAYOID});
	InsertPlan = OutcomePrepare("INSERT INTO streamml.outcome_key_sets (tracker, model, "
								"version, key_set, bits, owner) "
								"SELECT $1, u.m, u.v, u.s, u.b, $6 "
								"FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.text[]), "
								"pg_catalog.unnest($3::pg_catalog.int4[]), "
								"pg_catalog.unnest($4::pg_catalog.int8[]), "
								"pg_catalog.unnest($5::pg_catalog.bytea[])) u(m, v, s, b) "
								"ORDER BY u.m COLLATE \"C\", u.v, u.s "
								"ON CONFLICT DO NOTHING RETURNING model, version, key_set",
								6, (Oid[]) {INT4OID, TEXTARRAYOID, INT4ARRAYOID,
								INT8ARRAYOID, BYTEAARRAYOID, REGROLEOID});
}

/*
 * A set's bits as stored (see the top of the file): its offsets, sorted,
 * two bytes each, when there are few; else its bitmap.
 */
static Datum
SetBits(KeySet *set)
{
	int			n = 0;
	bytea	   *bits;
	uint8	   *out;

	for (int i = 0; i < SET_BYTES; i++)
		n += pg_popcount32(set->bits[i]);
	if (n > SET_MAX_OFFSETS)
	{
		bits = palloc(VARHDRSZ + SET_BYTES);
		SET_VARSIZE(bits, VARHDRSZ + SET_BYTES);
		memcpy(VARDATA(bits), set->bits, SET_BYTES);
		return PointerGetDatum(bits);
	}
	bits = palloc(VARHDRSZ + 2 * n);
	SET_VARSIZE(bits, VARHDRSZ + 2 * n);
	out = (uint8 *) VARDATA(bits);
	for (int i = 0; i < SET_BYTES; i++)
		for (int b = 0; set->bits[i] != 0 && b < 8; b++)
			if (set->bits[i] & (1 << b))
			{
				int			offset = i * 8 + b;

				*out++ = (uint8) (offset >> 8);
				*out++ = (uint8) (offset & 0xff);
			}
	return PointerGetDatum(bits);
}

/*
 * Errors for a stored set of the items' set that is malformed (detail:
 * how): the rows are written here only, so a superuser edited or damaged
 * it, and a key of its set can neither be found a duplicate nor recorded.
 */
static void
MalformedSet(const KeyItem *it, OutcomeTracker *t, const char *how)
{
	const char *source = get_rel_name(t->source);

	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("outcome key set " INT64_FORMAT " of model \"%s\" version %d is malformed, in the outcomes of scorer \"%s\" labelled by \"%s\"",
					it->set, it->model, it->version, t->scorer,
					source ? source : "?"),
			 errdetail("Its bits %s; a set is either a bitmap of %d bytes or up to %d offsets below %d, two bytes each (big-endian).",
					   how, SET_BYTES, SET_MAX_OFFSETS, SET_KEYS),
			 errhint("Rows of streamml.outcome_key_sets are written by the extension only: restore the row (the offsets of the keys of the model version's outcomes in streamml.outcome_rows, key_hash - 8192 * key_set) or the database.")));
}

/*
 * Reads a stored set into the bitmap of s (see the top of the file); the
 * items and tracker for the error of a malformed one (MalformedSet).
 */
static void
ReadSetBits(KeySet *s, const KeyItem *items, bytea *bits, OutcomeTracker *t)
{
	int			len = VARSIZE_ANY_EXHDR(bits);
	const uint8 *in = (const uint8 *) VARDATA_ANY(bits);

	if (len == SET_BYTES)
	{
		memcpy(s->bits, in, SET_BYTES);
		return;
	}
	if (len % 2 != 0 || len / 2 > SET_MAX_OFFSETS)
		MalformedSet(&items[s->start], t,
					 psprintf("have %d bytes", len));
	memset(s->bits, 0, SET_BYTES);
	for (int i = 0; i < len; i += 2)
	{
		int			offset = (in[i] << 8) | in[i + 1];

		if (offset >= SET_KEYS)
			MalformedSet(&items[s->start], t,
						 psprintf("hold offset %d", offset));
		s->bits[offset / 8] |= 1 << (offset % 8);
	}
}

/* The arrays of sets (model, version, set[, bits]) chosen by pick. */
static int
SetArrays(KeyItem *items, KeySet *sets, int nsets, bool (*pick) (KeySet *s),
		  Datum *args, bool with_bits)
{
	Datum	   *m = palloc(sizeof(Datum) * nsets);
	Datum	   *v = palloc(sizeof(Datum) * nsets);
	Datum	   *s = palloc(sizeof(Datum) * nsets);
	Datum	   *b = palloc(sizeof(Datum) * nsets);
	int			n = 0;

	for (int i = 0; i < nsets; i++)
	{
		KeyItem    *it = &items[sets[i].start];

		if (!pick(&sets[i]))
			continue;
		m[n] = CStringGetTextDatum(it->model);
		v[n] = Int32GetDatum(it->version);
		s[n] = Int64GetDatum(it->set);
		if (with_bits)
			b[n] = SetBits(&sets[i]);
		n++;
	}
	args[1] = PointerGetDatum(construct_array(m, n, TEXTOID, -1, false, TYPALIGN_INT));
	args[2] = PointerGetDatum(construct_array(v, n, INT4OID, 4, true, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(s, n, INT8OID, 8, FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));
	if (with_bits)
		args[4] = PointerGetDatum(construct_array(b, n, BYTEAOID, -1, false,
												  TYPALIGN_INT));
	return n;
}

/* pick(): sets not yet done. */
static bool
PickTodo(KeySet *s)
{
	return !s->done;
}

/* pick(): sets read and locked in this round. */
static bool
PickFound(KeySet *s)
{
	return !s->done && s->found;
}

/* pick(): sets that do not exist yet. */
static bool
PickMissing(KeySet *s)
{
	return !s->done && !s->found;
}

/*
 * The update's arguments: the ctids and new bits of the sets found (and
 * locked) in this round; their number.
 */
static int
UpdateArrays(KeySet *sets, int nsets, Datum *args)
{
	Datum	   *t = palloc(sizeof(Datum) * nsets);
	Datum	   *b = palloc(sizeof(Datum) * nsets);
	int			n = 0;

	for (int i = 0; i < nsets; i++)
	{
		if (!PickFound(&sets[i]))
			continue;
		t[n] = PointerGetDatum(&sets[i].tid);
		b[n] = SetBits(&sets[i]);
		n++;
	}
	args[0] = PointerGetDatum(construct_array(t, n, TIDOID, sizeof(ItemPointerData),
											  false, TYPALIGN_SHORT));
	args[1] = PointerGetDatum(construct_array(b, n, BYTEAOID, -1, false, TYPALIGN_INT));
	return n;
}

/*
 * Writes the new bits of the sets found (and locked) in this round; their
 * rows are reached by ctid, and matched with their bits by a hash join
 * (planned so whatever the estimates: a nested loop would compare every
 * row with every set, quadratic in a batch of sparse keys).
 */
static void
UpdateSets(OutcomeTracker *t, KeySet *sets, int nsets)
{
	Datum		args[2];
	int			n = UpdateArrays(sets, nsets, args);
	int			nest = NewGUCNestLevel();

	(void) set_config_option("enable_nestloop", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_mergejoin", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	OutcomeExecute(UpdatePlan, args, NULL, SPI_OK_UPDATE);
	AtEOXact_GUC(true, nest);
	if (SPI_processed != (uint64) n)
		elog(ERROR, "updated " UINT64_FORMAT " outcome key sets of tracker %d, not %d",
			 SPI_processed, t->id, n);
}

/* The set of a (model, version, set) read back, by bisection. */
static KeySet *
FindSet(KeyItem *items, KeySet *sets, int nsets, const char *model,
		int32 version, int64 set)
{
	int			lo = 0;
	int			hi = nsets - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		KeyItem    *it = &items[sets[mid].start];
		int			c = strcmp(model, it->model);

		if (c == 0)
			c = version < it->version ? -1 : version > it->version;
		if (c == 0)
			c = set < it->set ? -1 : set > it->set;
		if (c == 0)
			return &sets[mid];
		if (c < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	elog(ERROR, "outcome key set %s/%d/" INT64_FORMAT " not asked for", model,
		 version, set);
	return NULL;
}

/* The set of row r of SPI's result: (model, version, key_set, ...). */
static KeySet *
SetOfRow(KeyItem *items, KeySet *sets, int nsets, uint64 r)
{
	HeapTuple	tup = SPI_tuptable->vals[r];
	TupleDesc	desc = SPI_tuptable->tupdesc;
	bool		isnull;

	return FindSet(items, sets, nsets,
				   TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)),
				   DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull)),
				   DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull)));
}

/*
 * Marks the items of a set whose key already has an outcome (its bit is
 * set in bits, or an earlier item of the batch has the same key) as not
 * first, and sets the bits of the others.  The caller marks it done once
 * the bits are written.
 */
static void
ApplySet(KeyItem *items, KeySet *s)
{
	for (int i = s->start; i < s->end; i++)
	{
		uint8		mask = 1 << (items[i].offset % 8);

		if (s->bits[items[i].offset / 8] & mask)
			*items[i].first = false;
		else
			s->bits[items[i].offset / 8] |= mask;
	}
}

/*
 * Marks the first outcomes of a batch whose one-integer key already has an
 * outcome of the same model version (recorded here or by an earlier
 * batch) as duplicates (*first = false), and records the others.  The n
 * outcomes come in arrival order: model, version, key (the integer) and
 * the record's first flag.  SPI must be connected.
 */
void
OutcomeKeySetsCheck(OutcomeTracker *t, const char **models, const int32 *versions,
					const int64 *keys, bool **firsts, int n)
{
	KeyItem    *items;
	KeySet	   *sets;
	int			nsets = 0;
	Datum		args[6];

	if (n == 0)
		return;
	PreparePlans();
	items = palloc(sizeof(KeyItem) * n);
	for (int i = 0; i < n; i++)
	{
		/* two's complement: key & 8191 is key mod 8192, in [0, 8192) */
		int			off = (int) (keys[i] & (SET_KEYS - 1));

		items[i].model = models[i];
		items[i].version = versions[i];
		items[i].key = keys[i];
		items[i].offset = off;
		items[i].set = (keys[i] - off) / SET_KEYS;
		items[i].order = i;
		items[i].first = firsts[i];
	}
	qsort(items, n, sizeof(KeyItem), CompareItems);
	/* as many sets as items that start one (a dense batch has a few) */
	for (int i = 0; i < n; i++)
		nsets += StartsSet(items, i);
	sets = palloc0(sizeof(KeySet) * nsets);
	nsets = 0;
	for (int i = 0; i < n; i++)
	{
		if (StartsSet(items, i))
			sets[nsets++].start = i;
		sets[nsets - 1].end = i + 1;
	}
	args[0] = Int32GetDatum(t->id);
	args[5] = ObjectIdGetDatum(t->owner);
	for (int round = 0;; round++)
	{
		int			left = 0;
		uint64		got;

		if (round == MAX_ROUNDS)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not record the outcomes of tracker %d: concurrent batches kept inserting its key sets",
							t->id)));
		/* lock the sets that exist, and read their bits */
		if (SetArrays(items, sets, nsets, PickTodo, args, false) == 0)
			break;
		OutcomeExecute(LockPlan, args, NULL, SPI_OK_SELECT);
		got = SPI_processed;
		for (int i = 0; i < nsets; i++)
			sets[i].found = false;
		for (uint64 r = 0; r < got; r++)
		{
			bool		isnull;
			KeySet	   *s = SetOfRow(items, sets, nsets, r);
			bytea	   *bits = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[r],
															 SPI_tuptable->tupdesc,
															 4, &isnull));

			ReadSetBits(s, items, bits, t);
			s->tid = *(ItemPointer) DatumGetPointer(SPI_getbinval(SPI_tuptable->vals[r],
													   SPI_tuptable->tupdesc,
													   5, &isnull));
			s->found = true;
		}
		/* existing sets: duplicates are their set bits; write the new ones */
		for (int i = 0; i < nsets; i++)
			if (PickFound(&sets[i]))
				ApplySet(items, &sets[i]);
		if (got > 0)
		{
			UpdateSets(t, sets, nsets);
			for (int i = 0; i < nsets; i++)
				if (sets[i].found)
					sets[i].done = true;
		}
		/* new sets: inserted unless a concurrent batch inserted them first */
		for (int i = 0; i < nsets; i++)
		{
			if (!PickMissing(&sets[i]))
				continue;
			memset(sets[i].bits, 0, SET_BYTES);
			for (int j = sets[i].start; j < sets[i].end; j++)
				sets[i].bits[items[j].offset / 8] |= 1 << (items[j].offset % 8);
			left++;
		}
		if (left == 0)
			break;
		SetArrays(items, sets, nsets, PickMissing, args, true);
		OutcomeExecute(InsertPlan, args, NULL, SPI_OK_INSERT_RETURNING);
		got = SPI_processed;
		for (uint64 r = 0; r < got; r++)
		{
			KeySet	   *s = SetOfRow(items, sets, nsets, r);

			/* inserted: from no bits, only the batch's own repeats */
			memset(s->bits, 0, SET_BYTES);
			ApplySet(items, s);
			s->done = true;
		}
		if (got == (uint64) left)
			break;
	}
}
