
-- ==========================================================================
-- Tree models: gradient-boosted trees, random forests and decision trees
-- with XGBoost (src/ml/tree.c, xgb.c, tree_predict.c), row-form serving
-- (src/ml/predict_row.c) and feature importance.
-- ==========================================================================

CREATE FUNCTION streamml.train_gbt(model text, source text, target text,
	features text[], options jsonb DEFAULT '{}')
	RETURNS TABLE (model text, version integer, group_key text,
		rows_used bigint, rows_skipped bigint, iterations integer,
		converged boolean, deployed boolean, metrics jsonb)
	AS 'MODULE_PATHNAME', 'train_gbt'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.train_gbt(text, text, text, text[], jsonb) IS
	'trains gradient-boosted trees (XGBoost, histogram method) and records a new model version';

CREATE FUNCTION streamml.train_forest(model text, source text, target text,
	features text[], options jsonb DEFAULT '{}')
	RETURNS TABLE (model text, version integer, group_key text,
		rows_used bigint, rows_skipped bigint, iterations integer,
		converged boolean, deployed boolean, metrics jsonb)
	AS 'MODULE_PATHNAME', 'train_forest'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.train_forest(text, text, text, text[], jsonb) IS
	'trains a random forest (XGBoost''s forest mode) and records a new model version';

CREATE FUNCTION streamml.train_tree(model text, source text, target text,
	features text[], options jsonb DEFAULT '{}')
	RETURNS TABLE (model text, version integer, group_key text,
		rows_used bigint, rows_skipped bigint, iterations integer,
		converged boolean, deployed boolean, metrics jsonb)
	AS 'MODULE_PATHNAME', 'train_tree'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.train_tree(text, text, text, text[], jsonb) IS
	'trains a single decision tree (XGBoost) and records a new model version';

-- Serving a whole row: the model's feature columns read by name.  Over a
-- table's whole row the planner calls the columns forms instead, which take
-- the row's columns (src/ml/predict_support.c); they are internal.
CREATE FUNCTION streamml.predict_columns(model text, row_type regtype,
	row_table oid, VARIADIC "columns" "any") RETURNS float8
	AS 'MODULE_PATHNAME', 'predict_columns'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.predict_columns(text, regtype, oid, "any") IS
	'internal: streamml.predict(model, row) over a table''s whole row, as the planner rewrites it; call the row form';
CREATE FUNCTION streamml.predict_proba_columns(model text, row_type regtype,
	row_table oid, VARIADIC "columns" "any") RETURNS float8
	AS 'MODULE_PATHNAME', 'predict_proba_columns'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.predict_proba_columns(text, regtype, oid, "any") IS
	'internal: streamml.predict_proba(model, row) over a table''s whole row, as the planner rewrites it; call the row form';
CREATE FUNCTION streamml.predict_class_columns(model text, row_type regtype,
	row_table oid, VARIADIC "columns" "any") RETURNS text
	AS 'MODULE_PATHNAME', 'predict_class_columns'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.predict_class_columns(text, regtype, oid, "any") IS
	'internal: streamml.predict_class(model, row) over a table''s whole row, as the planner rewrites it; call the row form';
CREATE FUNCTION streamml.predict_row_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'predict_row_support'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION streamml.predict_row_support(internal) IS
	'internal: planner support function of the row forms of predict, predict_proba and predict_class (calls over a table''s whole row take its columns)';

CREATE FUNCTION streamml.predict(model text, "row" record) RETURNS float8
	AS 'MODULE_PATHNAME', 'predict_row'
	LANGUAGE C STABLE STRICT PARALLEL SAFE
	SUPPORT streamml.predict_row_support;
COMMENT ON FUNCTION streamml.predict(text, record) IS
	'prediction of the deployed version for a composite row, reading the model''s feature (and group) columns by name';
CREATE FUNCTION streamml.predict_proba(model text, "row" record) RETURNS float8
	AS 'MODULE_PATHNAME', 'predict_proba_row'
	LANGUAGE C STABLE STRICT PARALLEL SAFE
	SUPPORT streamml.predict_row_support;
COMMENT ON FUNCTION streamml.predict_proba(text, record) IS
	'probability of the positive class for a composite row, reading the model''s feature (and group) columns by name';
CREATE FUNCTION streamml.predict_class(model text, "row" record) RETURNS text
	AS 'MODULE_PATHNAME', 'predict_class_row'
	LANGUAGE C STABLE STRICT PARALLEL SAFE
	SUPPORT streamml.predict_row_support;
COMMENT ON FUNCTION streamml.predict_class(text, record) IS
	'most probable class label for a composite row, reading the model''s feature (and group) columns by name';

-- Feature importance: XGBoost's gain, weight and cover for tree models;
-- the absolute standardised coefficient (|coefficient| × the feature's
-- standard deviation, summed over the classes of a multinomial model)
-- for linear models.
CREATE VIEW streamml.feature_importance WITH (security_invoker = true) AS
SELECT v.model, v.version, v.group_key, f.feature,
	   (v.importance->'gain'->>(f.ord::integer - 1))::float8 AS gain,
	   (v.importance->'weight'->>(f.ord::integer - 1))::float8 AS weight,
	   (v.importance->'cover'->>(f.ord::integer - 1))::float8 AS cover,
	   NULL::float8 AS abs_std_coefficient
  FROM streamml.model_versions v
 CROSS JOIN LATERAL pg_catalog.unnest(v.features) WITH ORDINALITY AS f(feature, ord)
 WHERE v.importance IS NOT NULL
UNION ALL
SELECT v.model, v.version, v.group_key, f.feature, NULL, NULL, NULL,
	   (SELECT pg_catalog.sum(pg_catalog.abs(
				   v.coefficients[(b.i - 1) * pg_catalog.cardinality(v.features) + f.ord::integer]
				   * v.scales[f.ord::integer]))
		  FROM pg_catalog.generate_series(1, pg_catalog.cardinality(v.intercepts)) AS b(i))
  FROM streamml.model_versions v
 CROSS JOIN LATERAL pg_catalog.unnest(v.features) WITH ORDINALITY AS f(feature, ord)
 WHERE v.model_data IS NULL;
COMMENT ON VIEW streamml.feature_importance IS
	'feature importance of every model version and group: gain, weight and cover (tree models), absolute standardised coefficient (linear models)';
GRANT SELECT ON streamml.feature_importance TO PUBLIC;

-- The league (src/ml/league.c): candidates ranked on one holdout.
CREATE TABLE streamml.leaderboard (
	model text NOT NULL REFERENCES streamml.models (name) ON DELETE CASCADE
		ON UPDATE CASCADE,
	group_key text,
	rank integer,
	candidate text NOT NULL,
	kind text NOT NULL,
	version integer,
	metric text NOT NULL,
	score float8,
	metrics jsonb,
	deployed boolean NOT NULL,
	error text,
	deployed_version integer,
	run_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE streamml.leaderboard IS
	'the last league run of each league model: every candidate per group, its holdout metric and rank, or its error';
COMMENT ON COLUMN streamml.leaderboard.deployed_version IS
	'the version this league run deployed (its champion, or the one version its groups'' champions were copied into); NULL when it deployed none, the deployed version then staying streamml.models.deployed_version';
SELECT pg_catalog.pg_extension_config_dump('streamml.leaderboard', '');
ALTER TABLE streamml.leaderboard ENABLE ROW LEVEL SECURITY;
CREATE POLICY leaderboard_read ON streamml.leaderboard FOR SELECT
	USING (EXISTS (SELECT 1 FROM streamml.models m
				   WHERE m.name OPERATOR(pg_catalog.=) model));
GRANT SELECT ON streamml.leaderboard TO PUBLIC;

CREATE FUNCTION streamml.train_league(model text, source text, target text,
	features text[], options jsonb DEFAULT '{}')
	RETURNS TABLE (rank integer, candidate text, kind text, version integer,
		group_key text, metric text, score float8, metrics jsonb,
		deployed boolean, error text)
	AS 'MODULE_PATHNAME', 'train_league'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.train_league(text, text, text, text[], jsonb) IS
	'trains candidate models (by default the seed''s ElasticNet, tree, forest and gbt) on one time-ordered holdout, ranks them and deploys the champion if it beats the deployed version';

-- Evaluating tree models (src/ml/evaluate.c): the outputs of the trees of
-- a group of a model version, read from the catalog as the caller.
CREATE FUNCTION streamml.ml_score_tree(model text, version integer,
	group_key text, features float8[]) RETURNS float8[]
	AS 'MODULE_PATHNAME', 'ml_score_tree'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION streamml.ml_score_tree(text, integer, text, float8[]) IS
	'outputs (value, positive-class probability or class probabilities) of the trees of a group of a model version, NULL features as missing; used by streamml.evaluate';

-- Categorical features at serving (src/ml/predict_row.c).
CREATE FUNCTION streamml.unseen_categories()
	RETURNS TABLE (model text, feature_column text, as_other bigint,
		as_missing bigint)
	AS 'MODULE_PATHNAME', 'unseen_categories'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION streamml.unseen_categories() IS
	'per model and categorical feature column, the values this backend served through the row forms that are not one of the column''s levels: encoded as the "other" level (unseen or rare in training), or as missing (unseen, no other level)';
