-- ml_score with parameters that change from row to row (no constant or
-- query parameter): each row is scored with its own coefficients.
SELECT i, streamml.ml_score(ARRAY[[i::float8, 2 * i]], ARRAY['g'], 'g',
                            ARRAY[1.0::float8], 'linear') AS score
  FROM generate_series(1, 3) i;
-- Group keys that change from row to row.
SELECT k, streamml.ml_score(ARRAY[[1.0::float8, 1], [10, 1]], ARRAY[k, 'other'], 'a',
                            ARRAY[2.0::float8], 'linear') AS score
  FROM (VALUES ('a'), ('b'), ('a')) v(k);
-- Constant parameters, features from the rows.
SELECT i, streamml.ml_score('{{1,2}}', '{g}', 'g', ARRAY[i::float8], 'linear') AS score
  FROM generate_series(1, 3) i;
-- ml_score_classes likewise.
SELECT i, streamml.ml_score_classes(ARRAY[[0::float8, 0, i::float8, 0]], ARRAY['g'], 'g',
                                    ARRAY[1.0::float8]) AS probs
  FROM generate_series(0, 1) i;
-- The model cache follows the catalog after the extension is dropped and
-- created again (its tables get new oids).
CREATE TABLE tiny (x float8, y float8);
INSERT INTO tiny SELECT i, 2 * i + 1 FROM generate_series(1, 20) i;
SELECT version FROM streamml.train_linreg('tiny', 'tiny', 'y', ARRAY['x'], '{"test_fraction": 0}');
SELECT round(streamml.predict('tiny', ARRAY[10]::float8[])::numeric, 6) AS v0;
DROP EXTENSION pg_streamml CASCADE;
CREATE EXTENSION pg_streamml;
SELECT version FROM streamml.train_linreg('tiny', 'tiny', 'y', ARRAY['x'], '{"test_fraction": 0}');
SELECT round(streamml.predict('tiny', ARRAY[10]::float8[])::numeric, 6) AS v1;
UPDATE tiny SET y = 3 * x;
SELECT version FROM streamml.train_linreg('tiny', 'tiny', 'y', ARRAY['x'], '{"test_fraction": 0}');
SELECT round(streamml.predict('tiny', ARRAY[10]::float8[])::numeric, 6) AS v2;
DROP TABLE tiny;
