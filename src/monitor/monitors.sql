
-- ---------------------------------------------------------------------------
-- Monitors that act (src/monitor/monitor*.c): a monitor watches one model
-- (the error of its outcomes, the drift of its features, or the rows that
-- arrived since its training) and, when it fires, logs, notifies or
-- retrains.  Every event goes to streamml.model_events.
--
-- As for the other catalog tables, users hold only SELECT (row-level
-- security shows each role its own rows); the functions below and the
-- monitor worker write them through CatalogExecute.  Owners are regrole.
-- ---------------------------------------------------------------------------

CREATE TABLE streamml.monitors_catalog (
	id serial PRIMARY KEY,
	name text NOT NULL UNIQUE,
	model text NOT NULL REFERENCES streamml.models (name) ON DELETE CASCADE
		ON UPDATE CASCADE,
	kind text NOT NULL CHECK (kind IN ('error', 'data', 'rows')),
	action text NOT NULL CHECK (action IN ('retrain', 'notify', 'log')),
	options jsonb NOT NULL DEFAULT '{}',
	search_path text,			-- the creator's, for an options "source"
	cooldown interval NOT NULL,
	detector text,				-- error: the drift_detect method
	detector_params jsonb,		-- error: its parameters
	state bytea,				-- error: the detector, as saved after a batch
	state_version integer,		-- error: the model version the state is of
	detector_state jsonb,		-- error: the detector's state, readable
	in_warning boolean NOT NULL DEFAULT false,
	observed bigint NOT NULL DEFAULT 0,	-- values seen since state_version
	detections_suppressed bigint NOT NULL DEFAULT 0,	-- error: could not act since one did
	failing boolean NOT NULL DEFAULT false,	-- its last check or retrain failed: the same error is not recorded again
	rows_since_training bigint,	-- rows: the last count
	last_value jsonb,			-- data, rows: the last check's figures
	next_check_at timestamptz,	-- data, rows: when the worker checks next
	last_event text,
	last_event_at timestamptz,
	last_action text,
	last_action_at timestamptz,
	cooldown_until timestamptz,
	retrain_requested_at timestamptz,
	retrain_started_at timestamptz,
	owner regrole NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	-- option "rollback": the version the monitor last accepted (deployed
	-- when it was created, or a newer one that passed its rollback check)
	-- and the figures of its last rollback check
	rollback_version integer,
	rollback_check jsonb
);
CREATE INDEX monitors_catalog_model ON streamml.monitors_catalog (model);
COMMENT ON TABLE streamml.monitors_catalog IS
	'monitors of models and their state (read streamml.monitors)';

CREATE TABLE streamml.model_events (
	id bigserial PRIMARY KEY,
	at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	model text NOT NULL,
	version integer,
	monitor text,
	event text NOT NULL CHECK (event IN ('drift_warning', 'drift_detected',
		'new_rows', 'retrain_started', 'retrain_finished', 'deployed',
		'not_deployed', 'rolled_back', 'monitor_error')),
	details jsonb NOT NULL DEFAULT '{}',
	owner regrole NOT NULL
);
CREATE INDEX model_events_model ON streamml.model_events (model, id);
COMMENT ON TABLE streamml.model_events IS
	'what monitors saw and did to models: drift warnings and detections, retrains, deployments, errors';

ALTER TABLE streamml.monitors_catalog ENABLE ROW LEVEL SECURITY;
CREATE POLICY monitors_catalog_owner ON streamml.monitors_catalog
	FOR SELECT USING (pg_catalog.pg_has_role(owner, 'USAGE'));
ALTER TABLE streamml.model_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY model_events_owner ON streamml.model_events
	FOR SELECT USING (pg_catalog.pg_has_role(owner, 'USAGE'));
GRANT SELECT ON streamml.monitors_catalog, streamml.model_events TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('streamml.monitors_catalog', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.monitors_catalog_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.model_events', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.model_events_id_seq', '');

CREATE VIEW streamml.monitors WITH (security_invoker = true) AS
SELECT c.name, c.model, c.kind, c.action, c.options, c.cooldown,
	c.detector, c.detector_params, c.detector_state, c.in_warning,
	c.state_version AS version, c.observed, c.detections_suppressed,
	c.rows_since_training,
	c.last_value, c.next_check_at, c.last_event, c.last_event_at,
	c.last_action, c.last_action_at, c.cooldown_until,
	c.retrain_requested_at, c.retrain_started_at, c.owner, c.created_at,
	c.rollback_version, c.rollback_check
FROM streamml.monitors_catalog c;
COMMENT ON VIEW streamml.monitors IS
	'monitors with their state: detector state, last event, last action, cooldown, pending retrain, rollback check';
GRANT SELECT ON streamml.monitors TO PUBLIC;

CREATE FUNCTION streamml.create_monitor(name text, model text, kind text,
	options jsonb DEFAULT '{}') RETURNS void
	AS 'MODULE_PATHNAME', 'create_monitor'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.create_monitor(text, text, text, jsonb) IS
	'creates a monitor of a model: kind error (a drift detector over its outcomes), data (PSI or KS of its features) or rows (new rows since training); action retrain, notify or log; option rollback: redeploy the previous version when a newly deployed one is worse live';

CREATE FUNCTION streamml.drop_monitor(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'drop_monitor'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.drop_monitor(text) IS
	'drops a monitor (owner only); its events stay in streamml.model_events';
