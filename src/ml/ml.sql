
-- ==========================================================================
-- Machine learning: training, model catalog, serving, evaluation (src/ml)
-- ==========================================================================

-- The model catalog.  A model is a name with a training spec; every
-- training run adds a version (one row per group with group_by); one
-- version is deployed and served by streamml.predict*.
--
-- Users hold only SELECT on these tables (row-level security shows each
-- role the models it owns or was granted): every write goes through the
-- functions below (src/ml/model_catalog.c), which check the caller first.
-- Owners and grantees are regrole: stored as role oids, so a renamed role
-- keeps its models and a new role of an old name gets nothing, and dumped
-- as role names, so pg_dump and restore into another cluster map them to
-- the roles of the same names (pg_upgrade keeps role oids).  See
-- src/roles.c for DROP ROLE, DROP OWNED and REASSIGN OWNED.
CREATE TABLE streamml.models (
	name text PRIMARY KEY,
	kind text NOT NULL CHECK (kind IN ('logistic', 'multinomial', 'linear',
		'gbt', 'forest', 'tree', 'league')),
	label text NOT NULL,
	features text[] NOT NULL,
	feature_columns text[] NOT NULL,
	classes text[],
	group_by text,
	group_type oid,			-- the group column's type, whose text the keys are
	source text NOT NULL,
	search_path text,
	options jsonb NOT NULL DEFAULT '{}',
	deployed_version integer,
	owner regrole NOT NULL,
	created timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE streamml.models IS
	'models trained in the database: training spec and deployed version';

CREATE TABLE streamml.model_versions (
	model text NOT NULL REFERENCES streamml.models (name) ON DELETE CASCADE
		ON UPDATE CASCADE,
	version integer NOT NULL,
	group_key text,
	intercepts float8[] NOT NULL,
	coefficients float8[] NOT NULL,
	std_errors float8[],
	p_values float8[],
	means float8[] NOT NULL,
	scales float8[] NOT NULL,
	features text[] NOT NULL,
	rows_used bigint NOT NULL,
	rows_skipped bigint NOT NULL,
	iterations integer NOT NULL,
	converged boolean NOT NULL,
	metrics jsonb NOT NULL DEFAULT '{}',
	l2 float8 NOT NULL DEFAULT 0,
	l1 float8 NOT NULL DEFAULT 0,
	df float8,
	duration interval,
	data_cutoff text,
	data_max text,
	trained_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	aliased text[],
	model_data bytea,			-- a tree model: XGBoost's binary (UBJSON) model
	importance jsonb,			-- a tree model: gain, weight, cover per feature
	kind text,					-- the kind of this version (a league's vary)
	encoding jsonb,				-- categorical feature columns: their one-hot
								-- levels, {"column": {"levels": [...], "other": bool}}
	UNIQUE NULLS NOT DISTINCT (model, version, group_key)
);
COMMENT ON TABLE streamml.model_versions IS
	'one row per training run and group: coefficients, standardisation, statistics and metrics';

CREATE TABLE streamml.deployments (
	id bigserial PRIMARY KEY,
	model text NOT NULL REFERENCES streamml.models (name) ON DELETE CASCADE
		ON UPDATE CASCADE,
	version integer NOT NULL,
	deployed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	deployed_by regrole NOT NULL
);
COMMENT ON TABLE streamml.deployments IS
	'history of deployments, for streamml.rollback';

CREATE TABLE streamml.model_grants (
	model text NOT NULL REFERENCES streamml.models (name) ON DELETE CASCADE
		ON UPDATE CASCADE,
	grantee regrole NOT NULL,
	PRIMARY KEY (model, grantee)
);
COMMENT ON TABLE streamml.model_grants IS
	'roles allowed to see and use a model they do not own (grantee - , oid 0, is PUBLIC)';

SELECT pg_catalog.pg_extension_config_dump('streamml.models', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.model_versions', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.deployments', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.deployments_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('streamml.model_grants', '');

-- True when the current user may see and use a model owned by owner.  In C
-- (src/ml/model_catalog.c) because it reads model_grants past its own
-- row-level security, which refers back to streamml.models.
CREATE FUNCTION streamml.model_visible(model text, owner oid) RETURNS boolean
	AS 'MODULE_PATHNAME', 'model_visible'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION streamml.model_visible(text, oid) IS
	'whether the current user has the privileges of the owner of a model, or was granted it (directly, through a role, or as PUBLIC); the row-level security of the model catalog';

-- Row-level security: users see the models they own or were granted.
-- There are no write policies: users have no write privilege to use them.
ALTER TABLE streamml.models ENABLE ROW LEVEL SECURITY;
CREATE POLICY models_read ON streamml.models FOR SELECT
	USING (streamml.model_visible(name, owner));

ALTER TABLE streamml.model_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY model_versions_read ON streamml.model_versions FOR SELECT
	USING (EXISTS (SELECT 1 FROM streamml.models m
				   WHERE m.name OPERATOR(pg_catalog.=) model));

ALTER TABLE streamml.deployments ENABLE ROW LEVEL SECURITY;
CREATE POLICY deployments_read ON streamml.deployments FOR SELECT
	USING (EXISTS (SELECT 1 FROM streamml.models m
				   WHERE m.name OPERATOR(pg_catalog.=) model));

ALTER TABLE streamml.model_grants ENABLE ROW LEVEL SECURITY;
CREATE POLICY model_grants_read ON streamml.model_grants FOR SELECT
	USING (EXISTS (SELECT 1 FROM streamml.models m
				   WHERE m.name OPERATOR(pg_catalog.=) model));

GRANT SELECT ON streamml.models, streamml.model_versions,
	streamml.deployments, streamml.model_grants TO PUBLIC;

-- Every change to the catalog, by whoever makes it, tells all backends to
-- drop their cached deployments once it commits (src/ml/model_catalog.c).
CREATE FUNCTION streamml.model_cache_invalidate() RETURNS trigger
	AS 'MODULE_PATHNAME', 'model_cache_invalidate'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.model_cache_invalidate() IS
	'trigger: invalidates the per-backend cache of deployed models';
REVOKE ALL ON FUNCTION streamml.model_cache_invalidate() FROM PUBLIC;
CREATE TRIGGER models_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON streamml.models FOR EACH STATEMENT
	EXECUTE FUNCTION streamml.model_cache_invalidate();
CREATE TRIGGER model_versions_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON streamml.model_versions FOR EACH STATEMENT
	EXECUTE FUNCTION streamml.model_cache_invalidate();
CREATE TRIGGER model_grants_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON streamml.model_grants FOR EACH STATEMENT
	EXECUTE FUNCTION streamml.model_cache_invalidate();

-- The coefficients of every version with their statistics, intercept first
-- under the feature name '(intercept)'.
CREATE VIEW streamml.coefficients WITH (security_invoker = true) AS
SELECT c.model, c.version, c.group_key, c.class, c.feature, c.coefficient,
	   c.std_error,
	   CASE WHEN c.kind <> 'linear' THEN c.coefficient / NULLIF(c.std_error, 0) END
		   AS z_value,
	   CASE WHEN c.kind = 'linear' THEN c.coefficient / NULLIF(c.std_error, 0) END
		   AS t_value,
	   c.p_value,
	   CASE WHEN c.kind = 'linear' THEN NULL
			WHEN c.coefficient < -708 THEN 0
			WHEN c.coefficient > 709 THEN 'Infinity'::float8
			ELSE pg_catalog.exp(c.coefficient) END AS odds_ratio
  FROM (SELECT v.model, v.version, v.group_key, m.kind,
			   CASE WHEN m.kind = 'multinomial' THEN m.classes[b.i] END AS class,
			   f.feature,
			   CASE WHEN f.ord = 1 THEN v.intercepts[b.i]
					ELSE v.coefficients[(b.i - 1) * pg_catalog.cardinality(v.features)
										+ f.ord::integer - 1] END AS coefficient,
			   NULLIF(v.std_errors[(b.i - 1) * (pg_catalog.cardinality(v.features) + 1)
								   + f.ord::integer], 'NaN') AS std_error,
			   NULLIF(v.p_values[(b.i - 1) * (pg_catalog.cardinality(v.features) + 1)
								 + f.ord::integer], 'NaN') AS p_value
		  FROM streamml.model_versions v
		  JOIN streamml.models m ON m.name = v.model
		 CROSS JOIN LATERAL pg_catalog.generate_series(1,
				pg_catalog.cardinality(v.intercepts)) AS b(i)
		 CROSS JOIN LATERAL pg_catalog.unnest(ARRAY['(intercept)'] || v.features)
			   WITH ORDINALITY AS f(feature, ord)) c;
COMMENT ON VIEW streamml.coefficients IS
	'coefficients of every model version and group, with standard errors, z or t values, p-values and odds ratios';
GRANT SELECT ON streamml.coefficients TO PUBLIC;

-- Training passes: parallel-safe aggregates (src/ml/moments.c, irls_state.c).
CREATE FUNCTION streamml.ml_moments_transfn(bytea, float8, float8[], float8)
	RETURNS bytea AS 'MODULE_PATHNAME', 'ml_moments_state_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ml_moments_transfn(bytea, float8, float8[], float8) IS
	'transition function of streamml.ml_moments';
CREATE FUNCTION streamml.ml_moments_combinefn(bytea, bytea)
	RETURNS bytea AS 'MODULE_PATHNAME', 'ml_moments_state_combinefn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ml_moments_combinefn(bytea, bytea) IS
	'combine function of streamml.ml_moments';
CREATE FUNCTION streamml.ml_moments_finalfn(bytea) RETURNS float8[]
	AS 'MODULE_PATHNAME', 'ml_moments_state_finalfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ml_moments_finalfn(bytea) IS
	'final function of streamml.ml_moments';
CREATE AGGREGATE streamml.ml_moments(label float8, features float8[], weight float8) (
	SFUNC = streamml.ml_moments_transfn,
	STYPE = bytea,
	COMBINEFUNC = streamml.ml_moments_combinefn,
	FINALFUNC = streamml.ml_moments_finalfn,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.ml_moments(float8, float8[], float8) IS
	'weighted means and co-moments of label and features: [sum of weights, rows used, rows skipped, p, rows malformed, 1, means, units, packed co-moments in the units]';
CREATE FUNCTION streamml.ml_moments_transfn(bytea, float8, float8[], float8,
	int4, boolean)
	RETURNS bytea AS 'MODULE_PATHNAME', 'ml_moments_state_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ml_moments_transfn(bytea, float8, float8[], float8, int4, boolean) IS
	'transition function of streamml.ml_moments with the number of features';
CREATE AGGREGATE streamml.ml_moments(label float8, features float8[], weight float8,
	nfeatures int4, comoments boolean) (
	SFUNC = streamml.ml_moments_transfn,
	STYPE = bytea,
	COMBINEFUNC = streamml.ml_moments_combinefn,
	FINALFUNC = streamml.ml_moments_finalfn,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.ml_moments(float8, float8[], float8, int4, boolean) IS
	'weighted means and co-moments of label and nfeatures features (rows with another number are skipped and counted as malformed); without comoments only the label row and the diagonal';

CREATE FUNCTION streamml.irls_pass_transfn(bytea, float8, float8[], float8,
	float8[], text[], text)
	RETURNS bytea AS 'MODULE_PATHNAME', 'irls_pass_state_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.irls_pass_transfn(bytea, float8, float8[], float8, float8[], text[], text) IS
	'transition function of streamml.irls_pass';
CREATE FUNCTION streamml.irls_pass_combinefn(bytea, bytea)
	RETURNS bytea AS 'MODULE_PATHNAME', 'irls_pass_state_combinefn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.irls_pass_combinefn(bytea, bytea) IS
	'combine function of streamml.irls_pass';
CREATE FUNCTION streamml.irls_pass_finalfn(bytea) RETURNS float8[]
	AS 'MODULE_PATHNAME', 'irls_pass_state_finalfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.irls_pass_finalfn(bytea) IS
	'final function of streamml.irls_pass';
CREATE AGGREGATE streamml.irls_pass(label float8, features float8[], weight float8,
	params float8[], group_keys text[], group_key text) (
	SFUNC = streamml.irls_pass_transfn,
	STYPE = bytea,
	COMBINEFUNC = streamml.irls_pass_combinefn,
	FINALFUNC = streamml.irls_pass_finalfn,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.irls_pass(float8, float8[], float8, float8[], text[], text) IS
	'one Newton pass of logistic regression: loss, gradient and Hessian at the given coefficients';

-- Scoring explicit coefficients (training's holdout evaluation).
CREATE FUNCTION streamml.ml_score(params float8[], group_keys text[],
	group_key text, features float8[], kind text) RETURNS float8
	AS 'MODULE_PATHNAME', 'ml_score'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ml_score(float8[], text[], text, float8[], text) IS
	'prediction (linear) or probability (logistic) of explicit per-group coefficients';
CREATE FUNCTION streamml.ml_score_classes(params float8[], group_keys text[],
	group_key text, features float8[]) RETURNS float8[]
	AS 'MODULE_PATHNAME', 'ml_score_classes'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ml_score_classes(float8[], text[], text, float8[]) IS
	'class probabilities of explicit per-group multinomial coefficients';

-- Evaluation aggregates (src/ml/metrics.c).
CREATE FUNCTION streamml.classification_metrics_transfn(bytea, boolean, float8)
	RETURNS bytea AS 'MODULE_PATHNAME', 'classification_metrics_state_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.classification_metrics_transfn(bytea, boolean, float8) IS
	'transition function of streamml.classification_metrics';
CREATE FUNCTION streamml.classification_metrics_combinefn(bytea, bytea)
	RETURNS bytea AS 'MODULE_PATHNAME', 'classification_metrics_state_combinefn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.classification_metrics_combinefn(bytea, bytea) IS
	'combine function of streamml.classification_metrics';
CREATE FUNCTION streamml.classification_metrics_finalfn(bytea) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'classification_metrics_state_finalfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.classification_metrics_finalfn(bytea) IS
	'final function of streamml.classification_metrics';
CREATE AGGREGATE streamml.classification_metrics(label boolean, probability float8) (
	SFUNC = streamml.classification_metrics_transfn,
	STYPE = bytea,
	COMBINEFUNC = streamml.classification_metrics_combinefn,
	FINALFUNC = streamml.classification_metrics_finalfn,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.classification_metrics(boolean, float8) IS
	'binary classification metrics: accuracy, precision, recall, f1, roc_auc, pr_auc, log_loss, confusion matrix';

CREATE FUNCTION streamml.regression_metrics_transfn(bytea, float8, float8)
	RETURNS bytea AS 'MODULE_PATHNAME', 'regression_metrics_state_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.regression_metrics_transfn(bytea, float8, float8) IS
	'transition function of streamml.regression_metrics';
CREATE FUNCTION streamml.regression_metrics_combinefn(bytea, bytea)
	RETURNS bytea AS 'MODULE_PATHNAME', 'regression_metrics_state_combinefn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.regression_metrics_combinefn(bytea, bytea) IS
	'combine function of streamml.regression_metrics';
CREATE FUNCTION streamml.regression_metrics_finalfn(bytea) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'regression_metrics_state_finalfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.regression_metrics_finalfn(bytea) IS
	'final function of streamml.regression_metrics';
CREATE AGGREGATE streamml.regression_metrics(actual float8, predicted float8) (
	SFUNC = streamml.regression_metrics_transfn,
	STYPE = bytea,
	COMBINEFUNC = streamml.regression_metrics_combinefn,
	FINALFUNC = streamml.regression_metrics_finalfn,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.regression_metrics(float8, float8) IS
	'regression metrics: rmse, mae, r2';

CREATE FUNCTION streamml.multiclass_metrics_transfn(bytea, integer, float8[])
	RETURNS bytea AS 'MODULE_PATHNAME', 'multiclass_metrics_state_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.multiclass_metrics_transfn(bytea, integer, float8[]) IS
	'transition function of streamml.multiclass_metrics';
CREATE FUNCTION streamml.multiclass_metrics_combinefn(bytea, bytea)
	RETURNS bytea AS 'MODULE_PATHNAME', 'multiclass_metrics_state_combinefn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.multiclass_metrics_combinefn(bytea, bytea) IS
	'combine function of streamml.multiclass_metrics';
CREATE FUNCTION streamml.multiclass_metrics_finalfn(bytea) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'multiclass_metrics_state_finalfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.multiclass_metrics_finalfn(bytea) IS
	'final function of streamml.multiclass_metrics';
CREATE AGGREGATE streamml.multiclass_metrics(class integer, probabilities float8[]) (
	SFUNC = streamml.multiclass_metrics_transfn,
	STYPE = bytea,
	COMBINEFUNC = streamml.multiclass_metrics_combinefn,
	FINALFUNC = streamml.multiclass_metrics_finalfn,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE streamml.multiclass_metrics(integer, float8[]) IS
	'multiclass metrics from the class index (0-based) and the class probabilities: accuracy, log_loss, confusion matrix';

-- Evaluation of the deployed version (src/ml/evaluate.c).
CREATE FUNCTION streamml.evaluate(model text, source text, label text,
	features text[]) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'evaluate'
	LANGUAGE C STABLE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.evaluate(text, text, text, text[]) IS
	'metrics of the deployed version of a model on a table, view or query (overall and per group)';

-- Training (src/ml/train.c).
CREATE FUNCTION streamml.train_logreg(model text, source text, label text,
	features text[], options jsonb DEFAULT '{}')
	RETURNS TABLE (model text, version integer, group_key text,
		rows_used bigint, rows_skipped bigint, iterations integer,
		converged boolean, deployed boolean, metrics jsonb)
	AS 'MODULE_PATHNAME', 'train_logreg'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.train_logreg(text, text, text, text[], jsonb) IS
	'trains a logistic (binary or multinomial) regression and records a new model version';

CREATE FUNCTION streamml.train_linreg(model text, source text, target text,
	features text[], options jsonb DEFAULT '{}')
	RETURNS TABLE (model text, version integer, group_key text,
		rows_used bigint, rows_skipped bigint, iterations integer,
		converged boolean, deployed boolean, metrics jsonb)
	AS 'MODULE_PATHNAME', 'train_linreg'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.train_linreg(text, text, text, text[], jsonb) IS
	'trains a linear (least squares or ridge) regression and records a new model version';

-- Re-training (src/ml/train.c) and its schedule through pg_cron, which
-- stays optional: only schedule_training and unschedule_training need it.
CREATE FUNCTION streamml.retrain(model text, options jsonb DEFAULT '{}')
	RETURNS TABLE (model text, version integer, group_key text,
		rows_used bigint, rows_skipped bigint, iterations integer,
		converged boolean, deployed boolean, metrics jsonb)
	AS 'MODULE_PATHNAME', 'retrain'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.retrain(text, jsonb) IS
	'trains a model again from its stored spec; with {"min_new_rows": N} only once N rows newer than the last run (by order_by) arrived';

-- The pg_cron job name of a model's scheduled training.
CREATE FUNCTION streamml.training_job_name(model text) RETURNS text
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN 'streamml:train:' || model;
COMMENT ON FUNCTION streamml.training_job_name(text) IS
	'name of the pg_cron job that streamml.schedule_training creates for a model';

CREATE FUNCTION streamml.ml_pg_cron_database() RETURNS text
	AS 'MODULE_PATHNAME', 'ml_pg_cron_database'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ml_pg_cron_database() IS
	'the database pg_cron runs jobs from (cron.database_name), null when pg_cron is not loaded';

-- Errors unless pg_cron is loaded and installed in this database.
CREATE FUNCTION streamml.require_pg_cron() RETURNS void
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF streamml.ml_pg_cron_database() IS NULL THEN
		RAISE EXCEPTION 'pg_cron is not loaded'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = 'Scheduled training runs as a pg_cron job.',
				  HINT = 'Add pg_cron to shared_preload_libraries and restart the server.';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
		RAISE EXCEPTION 'extension "pg_cron" is not installed in database "%"',
				current_database()
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  -- pg_cron keeps its jobs in one database: from another one,
				  -- installing it there does not help; say what does
				  DETAIL = CASE WHEN streamml.ml_pg_cron_database() = current_database()
								THEN 'Scheduled training runs as a pg_cron job.'
								ELSE format('Scheduled training runs as a pg_cron job, and pg_cron keeps its jobs in database %I (cron.database_name).',
											streamml.ml_pg_cron_database()) END,
				  HINT = CASE WHEN streamml.ml_pg_cron_database() = current_database()
							  THEN format('Run CREATE EXTENSION pg_cron in database %I (cron.database_name).',
										  current_database())
							  ELSE format('Set cron.database_name = %L in postgresql.conf, restart the server and run CREATE EXTENSION pg_cron here; or, from database %I, schedule SELECT * FROM streamml.retrain(''<model>'') with cron.schedule_in_database(..., database => %L).',
										  current_database(), streamml.ml_pg_cron_database(),
										  current_database()) END;
	END IF;
END
$$;
COMMENT ON FUNCTION streamml.require_pg_cron() IS
	'errors with a hint unless pg_cron is preloaded and installed in this database';

CREATE FUNCTION streamml.schedule_training(model text, schedule text,
	options jsonb DEFAULT '{}') RETURNS bigint
	LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m_owner name;
	k text;
	command text;
BEGIN
	PERFORM streamml.require_pg_cron();
	SELECT pg_get_userbyid(m.owner) INTO m_owner FROM streamml.models m
	 WHERE m.name = schedule_training.model;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'model "%" does not exist', schedule_training.model
			USING ERRCODE = 'undefined_object';
	END IF;
	IF m_owner <> CURRENT_USER AND NOT (SELECT rolsuper FROM pg_roles
										   WHERE rolname = CURRENT_USER) THEN
		RAISE EXCEPTION 'permission denied for model "%"', schedule_training.model
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'Only the owner of a model can schedule its training: the job runs as the user who scheduled it.';
	END IF;
	IF jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION 'options must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOR k IN SELECT jsonb_object_keys(options) LOOP
		IF k <> 'min_new_rows' THEN
			RAISE EXCEPTION 'unknown training option "%"', k
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END LOOP;
	command := format('SELECT * FROM streamml.retrain(%L, %L)',
					  schedule_training.model, options);
	-- pg_cron runs a job as the user who scheduled it: the owner, so that
	-- the run sees and writes what a training by the owner would
	IF m_owner = CURRENT_USER THEN
		RETURN cron.schedule(streamml.training_job_name(schedule_training.model),
							 schedule_training.schedule, command);
	END IF;
	RETURN cron.schedule_in_database(streamml.training_job_name(schedule_training.model),
									 schedule_training.schedule, command,
									 current_database(), m_owner, true);
END
$$;
COMMENT ON FUNCTION streamml.schedule_training(text, text, jsonb) IS
	'creates (or changes) the pg_cron job that runs streamml.retrain for a model as its owner; returns the job id';

CREATE FUNCTION streamml.unschedule_training(model text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m_owner name;
	job bigint;
BEGIN
	PERFORM streamml.require_pg_cron();
	SELECT pg_get_userbyid(m.owner) INTO m_owner FROM streamml.models m
	 WHERE m.name = unschedule_training.model;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'model "%" does not exist', unschedule_training.model
			USING ERRCODE = 'undefined_object';
	END IF;
	IF m_owner <> CURRENT_USER AND NOT (SELECT rolsuper FROM pg_roles
										   WHERE rolname = CURRENT_USER) THEN
		RAISE EXCEPTION 'permission denied for model "%"', unschedule_training.model
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'Only the owner of a model can unschedule its training.';
	END IF;
	EXECUTE 'SELECT j.jobid FROM cron.job j WHERE j.jobname = $1 AND j.username = $2'
		INTO job USING streamml.training_job_name(unschedule_training.model), m_owner;
	IF job IS NULL THEN
		RETURN false;
	END IF;
	PERFORM cron.unschedule(job);
	RETURN true;
END
$$;
COMMENT ON FUNCTION streamml.unschedule_training(text) IS
	'removes the pg_cron job of streamml.schedule_training; false when there was none';

-- Group keys (src/ml/group_key.c).
CREATE FUNCTION streamml.group_key(value anyelement) RETURNS text
	AS 'MODULE_PATHNAME', 'group_key'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.group_key(anyelement) IS
	'the text of a value as a per-group model stores it, the same in every session: timestamptz in UTC ISO 8601, dates ISO, floats shortest exact';

-- Serving (src/ml/predict.c).
CREATE FUNCTION streamml.predict(model text, features float8[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'predict'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.predict(text, float8[]) IS
	'prediction of the deployed version: the value of a regression, the class 0/1 of a binary model';
CREATE FUNCTION streamml.predict(model text, group_key anyelement, features float8[])
	RETURNS float8 AS 'MODULE_PATHNAME', 'predict_group'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.predict(text, anyelement, float8[]) IS
	'prediction of the deployed version for one group of a grouped model';
CREATE FUNCTION streamml.predict(model text, group_key text, features float8[])
	RETURNS float8 AS 'MODULE_PATHNAME', 'predict_group'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.predict(text, text, float8[]) IS
	'prediction of the deployed version for one group of a grouped model (text key)';
CREATE FUNCTION streamml.predict_proba(model text, features float8[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'predict_proba'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.predict_proba(text, float8[]) IS
	'probability of the positive class (true, 1, or the second class) by the deployed version';
CREATE FUNCTION streamml.predict_proba(model text, group_key anyelement,
	features float8[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'predict_proba_group'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.predict_proba(text, anyelement, float8[]) IS
	'probability of the positive class for one group of a grouped model';
CREATE FUNCTION streamml.predict_proba(model text, group_key text, features float8[])
	RETURNS float8 AS 'MODULE_PATHNAME', 'predict_proba_group'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.predict_proba(text, text, float8[]) IS
	'probability of the positive class for one group of a grouped model (text key)';
CREATE FUNCTION streamml.predict_class(model text, features float8[]) RETURNS text
	AS 'MODULE_PATHNAME', 'predict_class'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.predict_class(text, float8[]) IS
	'most probable class label by the deployed version';
CREATE FUNCTION streamml.predict_class(model text, group_key anyelement,
	features float8[]) RETURNS text
	AS 'MODULE_PATHNAME', 'predict_class_group'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.predict_class(text, anyelement, float8[]) IS
	'most probable class label for one group of a grouped model';
CREATE FUNCTION streamml.predict_class(model text, group_key text, features float8[])
	RETURNS text AS 'MODULE_PATHNAME', 'predict_class_group'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.predict_class(text, text, float8[]) IS
	'most probable class label for one group of a grouped model (text key)';

-- Deployment and access (src/ml/model_catalog.c).
CREATE FUNCTION streamml.deploy(model text, version integer) RETURNS integer
	AS 'MODULE_PATHNAME', 'model_deploy'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.deploy(text, integer) IS
	'makes a version the one served by streamml.predict*; returns it (owner only)';

CREATE FUNCTION streamml.rollback(model text) RETURNS integer
	AS 'MODULE_PATHNAME', 'model_rollback'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.rollback(text) IS
	'deploys again the version that was deployed before the current one; returns it (owner only)';

CREATE FUNCTION streamml.drop_model(model text) RETURNS void
	AS 'MODULE_PATHNAME', 'model_drop'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.drop_model(text) IS
	'deletes a model with all its versions, grants and its scheduled training (owner only)';

CREATE FUNCTION streamml.grant_model(model text, grantee name) RETURNS void
	AS 'MODULE_PATHNAME', 'model_grant'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.grant_model(text, name) IS
	'lets a role (or public) see and use a model (owner only)';

CREATE FUNCTION streamml.revoke_model(model text, grantee name) RETURNS void
	AS 'MODULE_PATHNAME', 'model_revoke'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.revoke_model(text, name) IS
	'withdraws a grant made by streamml.grant_model (owner only)';
