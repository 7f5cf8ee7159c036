# Seed 003 (sourced by test/demo.sh): the Kaggle video-game sales file, N/A
# rows included, through Kafka as CSV; cleaned by the table's types and
# CHECKs; a sales model trained on the first games; every later game scored
# as it arrives; predicted against actual.
dir=test/demo/games
first=${DEMO_GAMES_FIRST:-4000}
kafka_create_topic games 1

say "a stream from Kafka topic 'games' (CSV with a header line) into games; types and CHECKs are the cleaning step"
sql -v brokers="$KAFKA_BROKERS" -f $dir/01_stream.sql >/dev/null
sql -f $dir/02_model_scoring.sql >/dev/null
sql -c '\d games'

produce_games()
{
	python3 test/demo/produce_rows.py games test/data/vgsales-with-na.csv "$@" |
		kcat -q -b "$KAFKA_BROKERS" -t games -P -K "$(printf '\t')" -D '\x1e' -X linger.ms=5
}
wait_loaded()
{
	local n
	for _ in $(seq 1 300); do
		n=$(psql -X -Atc "SELECT (SELECT count(*) FROM games) + (SELECT count(*) FROM streamml.dead_letters)")
		[ "$n" -ge "$1" ] && return 0
		sleep 0.2
	done
	echo "demo: only $n of $1 messages arrived" >&2
	return 1
}

say "producing the first $first games"
produce_games --count "$first"
wait_loaded "$first"
sql -c "SELECT count(*) AS games, (SELECT count(*) FROM streamml.dead_letters) AS dead_letters FROM games"

say "a league on them (random forest, linear): Global_Sales from Platform, Genre, Publisher (categorical features) and Year; then a scorer, an outcome tracker and two monitors (retrain every 4,000 new games, or on drift of the live errors)"
sql -c "SELECT * FROM train_sales_model()"

total=$(($(wc -l <test/data/vgsales-with-na.csv) - 1))
# 250 games/s by default: the outcome tracker writes each outcome with its
# own INSERT (README, Outcomes and live quality: Benchmark), about 0.4 ms a
# game on a busy 2-core machine, and a faster producer only queues games in
# Kafka (the latency then grows to seconds)
say "producing the other $((total - first)) games at ${DEMO_GAMES_RATE:-250}/s: each is scored as it arrives"
produce_games --skip "$first" --rate "${DEMO_GAMES_RATE:-250}"
wait_loaded "$total"

say "summary"
sql -f $dir/summary.sql | tee "$DEMO_OUT/games-summary.txt"
say "writing the report"
source $dir/report.sh
