# The games demo's report (sourced by test/demo/games.sh).
report_begin games "pg_streamml — seed 003: real-time game sales analytics"
report_text "<p>The Kaggle video-game sales file (16,598 games, N/A rows included; test/data/SOURCES.md) streamed through Kafka one game per message as CSV with a header. Games with Year or Publisher 'N/A' became dead letters. A league of a random forest and a linear model of Global_Sales over Platform, Genre, Publisher (categorical features, one-hot encoded by the trainers and the scorer) and Year was trained on the first ${first} games and deployed its champion; two monitors run the league again every 4,000 new games or on drift of the live errors; every later game was scored as it arrived (a scorer), and joined with its actual sales by an outcome tracker.</p>"
report_data scatter.tsv "SELECT actual, predicted FROM game_predictions"
report_chart scatter "Predicted against actual Global_Sales (millions of units), each game scored on arrival" 2 "
set logscale xy; set xrange [0.01:100]; set yrange [0.01:100]
set xlabel 'actual Global\\_Sales'; set ylabel 'predicted'
plot 'scatter.tsv' using (\$1 < 0.01 ? 0.01 : \$1):(\$2 < 0.01 ? 0.01 : \$2) with points pt 7 ps 0.3 lc rgb '#3182bd' title 'games (values below 0.01 drawn at 0.01)', \
     x with lines lc rgb '#d62728' dt 2 title 'predicted = actual'"
report_data genre.tsv "SELECT genre, avg(actual), avg(predicted) FROM game_predictions GROUP BY genre ORDER BY genre"
report_chart genre "Mean actual and predicted Global_Sales by genre" 2 "
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8
set xtics rotate by -30 font ',9'; set yrange [0:*]; set ylabel 'millions'
plot 'genre.tsv' using 2:xticlabels(1) lc rgb '#3182bd' title 'actual', '' using 3 lc rgb '#e6550d' title 'predicted'"
report_data dead.tsv "SELECT reason, count(*) FROM dead_letter_reasons GROUP BY reason ORDER BY 2 DESC, 1"
report_chart dead "Dead letters by reason" 1 "
set style fill solid 0.8; set boxwidth 0.6; set yrange [0:*]; set ylabel 'games'
set offsets 0, 0, graph 0.15, 0
set xtics font ',9' noenhanced
plot 'dead.tsv' using 0:2:xticlabels(1) with boxes lc rgb '#d62728' title 'dead letters'"
report_table "Live metrics of the games scored on arrival" "SELECT * FROM live_metrics"
report_table "The league: a random forest and a linear model on the same holdout (streamml.leaderboard)" "SELECT rank, candidate, kind, version, round(score::numeric, 4) AS holdout_rmse, round((metrics->>'r2')::numeric, 4) AS holdout_r2, deployed FROM streamml.leaderboard WHERE model = 'global_sales' ORDER BY rank NULLS LAST"
report_table "Live metrics by time bucket (streamml.live_metrics)" "SELECT bucket, version, labelled, round(rmse::numeric, 4) AS rmse, round(mae::numeric, 4) AS mae, round(r2::numeric, 4) AS r2 FROM streamml.live_metrics WHERE model = 'global_sales' AND group_key IS NULL ORDER BY bucket"
report_table "Largest misses" "SELECT rank, name, platform, year, genre, publisher, actual, round(predicted::numeric, 3) AS predicted FROM game_predictions WHERE predicted IS NOT NULL ORDER BY abs(predicted - actual) DESC LIMIT 10"
report_table "Some dead letters" "SELECT reason, payload FROM (SELECT DISTINCT ON (reason) reason, payload FROM dead_letter_reasons ORDER BY reason, id) d"
report_end
