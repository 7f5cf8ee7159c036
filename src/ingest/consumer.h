/*
 * consumer.h
 *		What the launcher hands a consumer worker in bgw_extra.
 */
#ifndef STREAMML_CONSUMER_H
#define STREAMML_CONSUMER_H

typedef struct ConsumerArgs
{
	Oid			database;
	int			worker;			/* index among the stream's workers */
	int			generation;		/* of the stream row it was started for */
	int			launcher_pid;	/* the workers of an old launcher exit */
} ConsumerArgs;

#endif							/* STREAMML_CONSUMER_H */
