/*
 * decode_csv.c
 *		Format csv: each line of a message is one row.
 *
 * Fields follow RFC 4180 as COPY's CSV mode reads them: separated by the
 * delimiter (option "delimiter", a comma by default), optionally quoted
 * with double quotes, a quote doubled inside a quoted field; an empty
 * unquoted field is NULL.  By default field N goes to the Nth column of
 * the table; option "columns" maps columns to field numbers (from 1) or to
 * metadata.  With option "header", the first line of every message names
 * the columns of the fields that follow it.
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "loader.h"

#define MAX_FIELDS 1600

/* Splits one line into fields; returns the field count. */
static int
SplitLine(const char *p, const char *end, char delim, char **fields,
		  int *lens)
{
	int			n = 0;
	StringInfoData buf;

	for (;;)
	{
		if (n >= MAX_FIELDS)
			ereport(ERROR,
					(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
					 errmsg("invalid csv in message: too many fields")));
		if (p < end && *p == '"')
		{
			initStringInfo(&buf);
			p++;
			for (;;)
			{
				if (p >= end)
					ereport(ERROR,
							(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
							 errmsg("invalid csv in message: unterminated quoted field")));
				if (*p == '"')
				{
					if (p + 1 < end && p[1] == '"')
					{
						appendStringInfoChar(&buf, '"');
						p += 2;
						continue;
					}
					p++;
					break;
				}
				appendStringInfoChar(&buf, *p++);
			}
			if (p < end && *p != delim)
				ereport(ERROR,
						(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
						 errmsg("invalid csv in message: data after a quoted field")));
			fields[n] = buf.data;
			lens[n] = buf.len;
		}
		else
		{
			const char *s = p;

			while (p < end && *p != delim)
			{
				if (*p == '"')
					ereport(ERROR,
							(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
							 errmsg("invalid csv in message: quote inside an unquoted field")));
				p++;
			}
			fields[n] = p > s ? (char *) s : NULL;
			lens[n] = p - s;
		}
		n++;
		if (p >= end)
			break;
		p++;					/* the delimiter */
	}
	return n;
}

/* Finds the end of the line at p (a newline outside quotes). */
static const char *
LineEnd(const char *p, const char *end)
{
	bool		quoted = false;

	for (; p < end; p++)
	{
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '\n' && !quoted)
			return p;
	}
	return end;
}

/* Decodes every line of a message and hands each row to emit. */
void
DecodeCsv(TargetState *ts, KafkaMessage *m, EmitRow emit)
{
	const char *p = m->payload;
	const char *end = p + m->payload_len;
	/* Scratch for the fields of a line: once per process, not per message. */
	static char *fields[MAX_FIELDS];
	static int	lens[MAX_FIELDS];
	int		   *field_of = NULL;	/* with a header: column -> field */
	Datum	   *values = palloc(sizeof(Datum) * ts->natts);
	bool	   *nulls = palloc(sizeof(bool) * ts->natts);
	bool	   *present = palloc(sizeof(bool) * ts->natts);
	bool		header = ts->cfg->csv_header;
	int			rows = 0;

	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
				 errmsg("invalid csv in message: empty message")));
	ValidateEncoding(p, m->payload_len);
	while (p < end)
	{
		const char *le = LineEnd(p, end);
		const char *lend = le;
		int			n,
					i;

		if (lend > p && lend[-1] == '\r')
			lend--;
		if (lend == p)			/* an empty line, e.g. the final newline */
		{
			p = le + 1;
			continue;
		}
		n = SplitLine(p, lend, ts->cfg->csv_delimiter, fields, lens);
		p = le + 1;
		if (header)
		{
			int			j;

			field_of = palloc(sizeof(int) * ts->ncols);
			for (i = 0; i < ts->ncols; i++)
			{
				field_of[i] = -1;
				for (j = 0; j < n; j++)
					if (fields[j] && lens[j] == strlen(ts->cols[i].attname) &&
						memcmp(fields[j], ts->cols[i].attname, lens[j]) == 0)
						field_of[i] = j;
			}
			header = false;
			continue;
		}
		memset(present, 0, sizeof(bool) * ts->natts);
		for (i = 0; i < ts->ncols; i++)
		{
			ColumnPlan *c = &ts->cols[i];
			int			a = c->attnum - 1;
			int			f;

			if (c->source != SRC_FIELD)
			{
				present[a] = true;
				SetFromMetadata(c, ts->cfg, m, &values[a], &nulls[a]);
				continue;
			}
			f = field_of ? field_of[i] : c->field;
			if (f < 0 || f >= n)
				continue;		/* no such field: the column default */
			present[a] = true;
			if (fields[f] == NULL)
				nulls[a] = true;
			else
				SetFromText(c, fields[f], lens[f], &values[a], &nulls[a]);
		}
		emit(ts, values, nulls, present);
		rows++;
	}
	if (rows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
				 errmsg("invalid csv in message: no rows")));
}
