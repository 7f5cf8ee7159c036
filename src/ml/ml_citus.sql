
-- ==========================================================================
-- The model catalog on a Citus cluster (src/ml/model_catalog_citus.c)
-- ==========================================================================

-- On a Citus coordinator every change to the model catalog is copied to the
-- worker nodes in the changing transaction (two-phase commit), so that
-- predict() in the shard queries serves the coordinated deployed version.
-- Without Citus the triggers do nothing but one look-up per transaction.
CREATE FUNCTION streamml.model_catalog_track() RETURNS trigger
	AS 'MODULE_PATHNAME', 'model_catalog_track'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.model_catalog_track() IS
	'trigger: notes the models a transaction changed, for the copy to the Citus worker nodes';
REVOKE ALL ON FUNCTION streamml.model_catalog_track() FROM PUBLIC;

CREATE TRIGGER models_citus_track AFTER INSERT OR UPDATE OR DELETE
	ON streamml.models FOR EACH ROW
	EXECUTE FUNCTION streamml.model_catalog_track('name');
CREATE TRIGGER model_versions_citus_track AFTER INSERT OR UPDATE OR DELETE
	ON streamml.model_versions FOR EACH ROW
	EXECUTE FUNCTION streamml.model_catalog_track('model', 'version');
CREATE TRIGGER deployments_citus_track AFTER INSERT OR UPDATE OR DELETE
	ON streamml.deployments FOR EACH ROW
	EXECUTE FUNCTION streamml.model_catalog_track('model');
CREATE TRIGGER model_grants_citus_track AFTER INSERT OR UPDATE OR DELETE
	ON streamml.model_grants FOR EACH ROW
	EXECUTE FUNCTION streamml.model_catalog_track('model');

-- Run on a worker node by the coordinator (as the Citus extension owner):
-- replaces the node's rows of one model by the coordinator's.
CREATE FUNCTION streamml.model_catalog_apply(catalog jsonb) RETURNS void
	AS 'MODULE_PATHNAME', 'model_catalog_apply'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.model_catalog_apply(jsonb) IS
	'on a Citus worker node: applies the coordinator''s rows of one model (superusers only; sent by the coordinator)';
REVOKE ALL ON FUNCTION streamml.model_catalog_apply(jsonb) FROM PUBLIC;

CREATE FUNCTION streamml.sync_model_catalog() RETURNS bigint
	AS 'MODULE_PATHNAME', 'sync_model_catalog'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION streamml.sync_model_catalog() IS
	'on a Citus coordinator: copies the whole model catalog to every worker node (after adding a node); returns the number of models (superusers only)';
REVOKE ALL ON FUNCTION streamml.sync_model_catalog() FROM PUBLIC;
