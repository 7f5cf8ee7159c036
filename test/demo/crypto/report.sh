# The crypto demo's report (sourced by test/demo/crypto.sh, after the run).
report_begin crypto "pg_streamml — seed 004: real-time crypto pipeline on real Binance trades"
# The predictions with their outcomes, read once for all the charts (the
# views join four tables).
psql -X -q -c "CREATE TABLE report_rows AS
	SELECT p.*, o.actual FROM predictions p LEFT JOIN outcomes o USING (symbol, trade_id);
	CREATE INDEX ON report_rows (symbol, version, ts); ANALYZE report_rows"
report_text "<p>Real Binance USDT-M futures BTCUSDT trades of 2020-02-22 00:00–02:05 UTC (test/data/SOURCES.md), replayed through Kafka as Binance trade events at ${speed}x, beside a synthetic symbol whose volatility and drift change half-way. Trades pass a quality gate (CHECK constraints), get seed 004's per-symbol features from feature tables, are scored on arrival (a scorer) by the champion of a per-symbol league for the price 60 s ahead, learn their outcome 60 s later (an outcome tracker, live metrics), and two monitors (streamml.create_monitor) run the league again: one every 3,000 new rows, one at once when its Page-Hinkley detector finds drift in the live errors; streamml.model_events says what they did.</p>"

for sym in $(psql -X -Atc 'SELECT DISTINCT symbol FROM trades ORDER BY 1'); do
	report_data "price-$sym.tsv" "SELECT extract(epoch FROM ts), price, price - vol_30s, price + vol_30s
		FROM report_rows WHERE symbol = '$sym' ORDER BY ts, trade_id"
	report_data "pred-$sym.tsv" "SELECT extract(epoch FROM ts + interval '60 seconds'), predicted
		FROM report_rows WHERE symbol = '$sym' AND predicted IS NOT NULL ORDER BY ts, trade_id"
	report_chart "price-$sym" "$sym: price, predicted price (plotted at the time it predicts) and the 30 s volatility band" 3 "
set xdata time; set timefmt '%s'; set format x '%H:%M'
set xlabel 'trade time (UTC)'; set ylabel 'USDT'
plot 'price-$sym.tsv' using 1:3:4 with filledcurves lc rgb '#c6dbef' title 'price ± 30 s volatility (stddev\\_pop)', \
     '' using 1:2 with lines lw 1.2 lc rgb '#08519c' title 'price', \
     'pred-$sym.tsv' using 1:2 with lines lw 1 lc rgb '#e6550d' title 'predicted 60 s earlier'"
done

# Live RMSE over the latest 100 outcomes, one series per symbol and version.
plot=""
n=0
while IFS=$'\t' read -r sym ver; do
	report_data "rmse-$sym-$ver.tsv" "SELECT extract(epoch FROM ts),
		sqrt(avg((predicted - actual) ^ 2) OVER (ORDER BY ts, trade_id ROWS 99 PRECEDING))
		FROM report_rows WHERE symbol = '$sym' AND version = $ver AND actual IS NOT NULL ORDER BY ts, trade_id"
	plot+="${plot:+, }'rmse-$sym-$ver.tsv' using 1:2 with lines lw 1.5 title '$sym v$ver'"
	n=$((n + 1))
# (only the versions that served an eighth of the replay or more: with
# retrains by two monitors a version may serve a few seconds, too short
# for a line; the table below has them all. When none did, as in a short
# replay on a loaded machine whose first league came late, every version
# with outcomes: an empty plot would stop the demo)
done < <(psql -X -At -F $'\t' -c 'WITH v AS (SELECT symbol, version,
		max(ts) - min(ts) >= (SELECT (max(ts) - min(ts)) / 8 FROM report_rows) AS long
	FROM report_rows WHERE version IS NOT NULL AND actual IS NOT NULL GROUP BY 1, 2)
	SELECT symbol, version FROM v WHERE long OR NOT EXISTS (SELECT 1 FROM v WHERE long) ORDER BY 1, 2')
arrows=$(psql -X -At -c "SELECT format('set arrow from %s, graph 0 to %s, graph 1 nohead dt 2 lc rgb ''%s''; set label ''%s'' at %s, graph 0.97 rotate by 90 right font '',9'' tc rgb ''%s''',
		e, e, c, k, e, c, c)
	FROM (SELECT extract(epoch FROM data_ts) AS e, kind || coalesce(' v' || version, '') AS k,
	             CASE kind WHEN 'drift' THEN '#d62728' WHEN 'deploy' THEN '#2ca02c' ELSE '#777777' END AS c
	        FROM model_events WHERE kind IN ('drift', 'deploy', 'kept') ORDER BY id) e")
if [ "$n" -eq 0 ]; then
	report_text "<p>No prediction has its outcome yet (the price 60 s later): no live RMSE to chart.</p>"
else
	report_chart rmse "Live RMSE (latest 100 outcomes) by symbol and model version (those that served an eighth of the time or more); deploy and drift events marked" "$n" "
set xdata time; set timefmt '%s'; set format x '%H:%M'
set xlabel 'trade time (UTC)'; set ylabel 'RMSE (USDT)'
$arrows
plot $plot"
fi

report_data ingest.tsv "SELECT extract(epoch FROM at) - extract(epoch FROM min(at) OVER ()),
		(rows + dead - lag(rows + dead) OVER w) / extract(epoch FROM at - lag(at) OVER w), coalesce(lag, 0)
	FROM ingest_samples WINDOW w AS (ORDER BY at) ORDER BY at OFFSET 1"
report_chart ingest "Ingest rate and consumer lag during the replay" 2 "
set xlabel 'seconds since the replay began'; set ylabel 'messages/s'; set y2label 'lag (messages)'
set ytics nomirror; set y2tics; set yrange [0:*]; set y2range [0:*]
plot 'ingest.tsv' using 1:2 with lines lw 1.5 lc rgb '#08519c' title 'ingested (rows + dead letters)/s', \
     '' using 1:3 axes x1y2 with lines lw 1.5 lc rgb '#e6550d' title 'lag'"

report_data dead.tsv "SELECT reason, count(*) FROM dead_letter_reasons GROUP BY reason ORDER BY 2 DESC, 1"
report_chart dead "Dead letters by reason (bad messages injected on purpose)" 1 "
set style fill solid 0.8; set boxwidth 0.6; set yrange [0:*]; set ylabel 'messages'
set offsets 0, 0, graph 0.15, 0
set xtics rotate by -15 font ',9' noenhanced
plot 'dead.tsv' using 0:2:xticlabels(1) with boxes lc rgb '#d62728' title 'dead letters'"

report_table "The last league per symbol (streamml.leaderboard): candidates ranked by holdout RMSE" "SELECT group_key AS symbol, rank, candidate, kind, version, round(score::numeric, 3) AS holdout_rmse, deployed, deployed_version AS served FROM streamml.leaderboard WHERE model = 'price_60s' ORDER BY group_key, rank NULLS LAST"
report_table "Models: every version, its holdout metrics, the champion (deployed)" "SELECT * FROM leaderboard"
report_table "Live RMSE by version, beside the naive forecast (the price stays)" "SELECT * FROM live_rmse"
report_table "Model events (the first league, then streamml.model_events)" "SELECT id, data_ts, kind, version, monitor, left(detail, 200) AS detail FROM model_events ORDER BY id"
report_table "End-to-end latency: Kafka timestamp to committed prediction" "SELECT * FROM latency"
report_table "Dead letters" "SELECT id, reason, left(payload, 120) AS payload FROM dead_letter_reasons ORDER BY id"
report_end
