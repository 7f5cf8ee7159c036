-- An outcome's key is the same jsonb whatever the session's settings and
-- whichever side wrote it (src/quality/outcomeinsert.c, OutcomeKeyExpr): a
-- timestamptz key is written in UTC, not in the session's TimeZone, and a
-- char(n) key without its padding, as it compares with text.  Before, an
-- outcome written from one time zone never met its prediction written from
-- another (pending for ever), and a duplicate label from another time zone
-- was recorded twice.  And the tracker's intervals are bounded, rather than
-- wrapping around in microseconds.
CREATE TABLE kt_train AS
SELECT i::float8 AS x, 2.0 * i + 1 AS y FROM generate_series(1, 50) i;
SELECT model, version FROM streamml.train_linreg('kt_m', 'kt_train', 'y', ARRAY['x']);

-- a timestamptz key
CREATE TABLE kt_src (ts timestamptz PRIMARY KEY, x float8);
CREATE TABLE kt_out (ts timestamptz, y float8);
SELECT streamml.create_scorer('kt_s', 'kt_src', 'kt_m', '{"key": "ts"}');
SELECT streamml.track_outcomes('kt_s', 'kt_out', '{"actual": "y"}');
SET timezone = 'UTC';
-- the outcome first, from UTC; the prediction from Tokyo
INSERT INTO kt_out VALUES ('2026-02-01 00:00+00', 5.5);
SET timezone = 'Asia/Tokyo';
INSERT INTO kt_src VALUES ('2026-02-01 00:00+00', 2), ('2026-01-01 00:00+00', 3);
-- the prediction first, labelled from Tokyo, then again from UTC: a duplicate
INSERT INTO kt_out VALUES ('2026-01-01 00:00+00', 9.5);
SET timezone = 'UTC';
INSERT INTO kt_out VALUES ('2026-01-01 00:00+00', 7.5);
SET timezone = 'America/New_York';
SELECT key, actual FROM streamml.outcomes WHERE scorer = 'kt_s' ORDER BY actual;
SELECT count(*) AS pending FROM streamml.pending_outcomes p
  JOIN streamml.outcome_trackers t ON t.id = p.tracker WHERE t.scorer = 'kt_s';
SELECT sum(labelled) AS labelled, sum(duplicates) AS duplicates
  FROM streamml.live_metrics WHERE scorer = 'kt_s' AND group_key IS NULL;
RESET timezone;

-- a char(4) key labelled by a text key
CREATE TABLE kc_src (k char(4) PRIMARY KEY, x float8);
CREATE TABLE kc_out (k text, y float8);
SELECT streamml.create_scorer('kc_s', 'kc_src', 'kt_m', '{"key": "k"}');
SELECT streamml.track_outcomes('kc_s', 'kc_out', '{"actual": "y"}');
INSERT INTO kc_out VALUES ('cd', 1.5);			-- outcome first
INSERT INTO kc_src VALUES ('ab', 1), ('cd', 2);
INSERT INTO kc_out VALUES ('ab', 2.5);			-- prediction first
SELECT key, actual FROM streamml.outcomes WHERE scorer = 'kc_s' ORDER BY actual;
SELECT count(*) AS pending FROM streamml.pending_outcomes p
  JOIN streamml.outcome_trackers t ON t.id = p.tracker WHERE t.scorer = 'kc_s';

-- intervals beyond 100 years are refused, not wrapped around
SELECT streamml.untrack_outcomes('kc_s');
SELECT streamml.track_outcomes('kc_s', 'kc_out', '{"actual": "y", "bucket": "213503983 days"}');
SELECT streamml.track_outcomes('kc_s', 'kc_out', '{"actual": "y", "grace": "2562047788 hours"}');
SELECT streamml.track_outcomes('kc_s', 'kc_out', '{"actual": "y", "bucket": "36525 days"}');
SELECT bucket FROM streamml.outcome_trackers WHERE scorer = 'kc_s';
CREATE TABLE kh (id bigint, sym text, ts timestamp, x float8, price float8);
CREATE INDEX ON kh (sym, ts);
SELECT streamml.create_scorer('kh_s', 'kh', 'kt_m', '{"key": "id"}');
SELECT streamml.track_outcomes('kh_s', 'kh', '{"actual": "price", "horizon": "36526 days",
	"partition_by": "sym", "order_by": "ts"}');

-- an "at" column of type timestamp (without time zone) is read as UTC,
-- whatever the loading session's TimeZone: the same label is known at the
-- same time
CREATE TABLE ka_src (id int PRIMARY KEY, x float8);
CREATE TABLE ka_out (id int, y float8, known timestamp);
SELECT streamml.create_scorer('ka_s', 'ka_src', 'kt_m');
SELECT streamml.track_outcomes('ka_s', 'ka_out', '{"actual": "y", "at": "known"}');
INSERT INTO ka_src VALUES (1, 1), (2, 2);
SET timezone = 'America/New_York';
INSERT INTO ka_out VALUES (1, 1.5, '2026-06-01 12:00');
SET timezone = 'Asia/Tokyo';
INSERT INTO ka_out VALUES (2, 2.5, '2026-06-01 12:00');
SET timezone = 'UTC';
SELECT key->>'id' AS id, labelled_at FROM streamml.outcomes WHERE scorer = 'ka_s' ORDER BY 1;
RESET timezone;
SELECT streamml.untrack_outcomes('ka_s');
SELECT streamml.drop_scorer('ka_s');
DROP TABLE ka_src, ka_out, ka_s;

SELECT streamml.untrack_outcomes(s) FROM unnest(ARRAY['kt_s', 'kc_s']) s;
SELECT streamml.drop_scorer(s) FROM unnest(ARRAY['kt_s', 'kc_s', 'kh_s']) s;
DROP TABLE kt_src, kt_out, kt_s, kc_src, kc_out, kc_s, kh, kh_s, kt_train;
SELECT streamml.drop_model('kt_m');
