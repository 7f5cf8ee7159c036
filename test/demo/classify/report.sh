# The classify demo's report (sourced by test/demo/classify.sh).
report_begin classify "pg_streamml — seed 000: streaming logistic regression, live accuracy"
report_text "<p>The breast-cancer data set shipped with scikit-learn (569 rows, 30 features; test/data/SOURCES.md) produced row by row to Kafka, each row's label 15 messages after it. A logistic regression was trained on the first 100 labelled rows; two monitors (streamml.create_monitor) retrained it every 100 new labels or on drift of its live errors, deploying a new version only if it beat the served one on the newest labels; every row arriving after the first training was scored on arrival, before its label was known.</p>"
report_data acc.tsv "SELECT arrival, cumulative, last_50 FROM live_accuracy ORDER BY arrival"
arrows=$(psql -X -At -c "SELECT format('set arrow from %s, graph 0 to %s, graph 1 nohead dt 2 lc rgb ''#2ca02c''; set label ''%s v%s'' at %s, graph 0.05 rotate by 90 left font '',9''', at_label, at_label, kind, version, at_label) FROM model_events WHERE kind IN ('train', 'deployed', 'drift_detected') AND at_label IS NOT NULL ORDER BY id")
report_chart accuracy "Live accuracy of the rows scored on arrival, as their labels arrive; trainings marked" 2 "
set xlabel 'label arrival (message number)'; set ylabel 'accuracy'; set yrange [0.5:1.02]; set key bottom right
$arrows
plot 'acc.tsv' using 1:2 with lines lw 2 lc rgb '#08519c' title 'cumulative', '' using 1:3 with lines lw 1.2 lc rgb '#e6550d' title 'last 50 rows'"
report_data proba.tsv "SELECT p_malignant, malignant::int FROM live_accuracy"
report_chart proba "Predicted probability of malignant, by the true label" 2 "
set xlabel 'predicted probability of malignant'; set ylabel 'rows'; set style fill solid 0.5; set boxwidth 0.045
set xrange [0:1]; set yrange [0:*]; set key top center
bin(x) = 0.05 * floor(x / 0.05) + 0.025
plot 'proba.tsv' using (bin(\$1)):(\$2 == 0 ? 1 : 0) smooth frequency with boxes lc rgb '#3182bd' title 'benign', \
     '' using (bin(\$1)):(\$2 == 1 ? 1 : 0) smooth frequency with boxes lc rgb '#d62728' title 'malignant'"
report_table "Model versions" "SELECT version, rows_used, round((metrics->>'accuracy')::numeric, 4) AS holdout_accuracy, round((metrics->>'roc_auc')::numeric, 4) AS holdout_roc_auc FROM streamml.model_versions WHERE model = 'malignant' ORDER BY version"
report_table "Model events (streamml.model_events)" "SELECT id, at_label, kind, version, monitor, left(detail, 160) AS detail FROM model_events ORDER BY id"
report_table "Live metrics" "SELECT count(*) AS rows, round(avg(correct::int), 4) AS accuracy, streamml.classification_metrics(malignant, p_malignant)->'confusion_matrix' AS confusion_matrix FROM live_accuracy"
report_end
