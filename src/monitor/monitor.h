/*
 * monitor.h
 *		Monitors that act (src/monitor/monitor*.c).
 *
 * monitor.c		create_monitor, drop_monitor, events, role commands
 * monitorobserve.c	'error' monitors, updated in the outcome's transaction
 * monitorworker.c	the monitor worker: retrains, 'data' and 'rows' checks
 */
#ifndef STREAMML_MONITOR_H
#define STREAMML_MONITOR_H

#include "postgres.h"

#include "executor/spi.h"
#include "utils/array.h"
#include "utils/jsonb.h"

/* One new outcome, as the outcome writer hands it to the monitors. */
typedef struct MonitorOutcome
{
	const char *model;
	int32		version;
	const char *role;			/* 'champion' or a challenger's role */
	double		prediction;		/* a class index for classifiers */
	double		actual;			/* a class index for classifiers */
	bool		prediction_null;
	bool		actual_null;
} MonitorOutcome;

/*
 * monitorobserve.c: called by the outcome writer (SPI connected) with a
 * batch's new outcomes in arrival order, in the outcome's transaction, and
 * the tracker's owner: only that role's monitors see them.
 */
extern void MonitorsObserveOutcomes(const MonitorOutcome *outcomes, int n,
									Oid owner);

/* monitor.c */
extern void MonitorEvent(const char *model, int32 version, const char *monitor,
						 const char *event, const char *details, Oid owner);
extern void MonitorsDropOwned(Datum roles);
extern void MonitorEventsReassignOwned(Datum roles, Oid newowner);
extern void MonitorNotify(const char *channel, const char *payload);
extern bool MonitorRollbackOptions(Jsonb *options, int64 *min_rows,
								   double *alpha);
extern void MonitorProbeSource(const char *source, const char *order_by,
							   ArrayType *columns);

/* monitorworker.c */
extern int	MonitorDataSlots(ArrayType *columns, Jsonb *encoding, Jsonb *only,
							 char ***names, char ***exprs);
extern void MonitorWorkerStartAtCommit(void);
extern void MonitorWorkerStartIfMonitors(void);

#endif							/* STREAMML_MONITOR_H */
