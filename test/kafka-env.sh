# kafka-env.sh: a Kafka cluster for pg_streamml's shell scripts (demo,
# benchmarks).  Source it from bash, do not run it:
#
#   source test/kafka-env.sh || exit 1
#   trap kafka_env_stop EXIT        # done for you if no EXIT trap is set
#   kafka_create_topic orders 3
#   ... use "$KAFKA_BROKERS" ...
#
# If KAFKA_BROKERS is already set, that Kafka is used and nothing is started.
# Otherwise the dev broker (test/broker/streamml-dev-broker, or the binary
# named by STREAMML_BROKER) is started in the background on 127.0.0.1 and
# these are exported once it is ready:
#
#   KAFKA_BROKERS        its bootstrap list, 127.0.0.1:port,...
#   DEV_BROKER_CONTROL   its control FIFO (see test/broker/brokerctl)
#   DEV_BROKER_PID       its process id
#   DEV_BROKER_LOG       its output
#
# KAFKA_ENV_TIMEOUT (seconds, default 10) bounds the wait for it to start.

_kafka_env_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Print an error about the Kafka environment on stderr.
_kafka_env_error()
{
	echo "kafka-env: $*" >&2
}

# Stop the dev broker this shell started, if any, and remove its files.
# Safe to call more than once and from an EXIT trap.
kafka_env_stop()
{
	local pid=${_kafka_env_pid:-}
	local i

	[ -n "$pid" ] || return 0
	_kafka_env_pid=

	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		if kill -0 "$pid" 2>/dev/null; then
			_kafka_env_error "dev broker $pid did not stop in 5 s, killing it"
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	wait "$pid" 2>/dev/null
	rm -rf "$_kafka_env_dir"
	unset KAFKA_BROKERS DEV_BROKER_CONTROL DEV_BROKER_PID DEV_BROKER_LOG
	return 0
}

# Wait until the dev broker's log has a line after byte OFFSET matching the
# extended regular expression OK (return 0) or one of its error lines
# (print it, return 1), for at most KAFKA_ENV_TIMEOUT seconds.
_kafka_env_wait_log()
{
	local offset=$1 ok=$2
	local deadline=$((SECONDS + ${KAFKA_ENV_TIMEOUT:-10}))
	local new

	while ((SECONDS < deadline)); do
		new=$(tail -c +"$((offset + 1))" "$DEV_BROKER_LOG")
		if grep -Eq "$ok" <<<"$new"; then
			return 0
		fi
		if grep -q '^streamml-dev-broker: ' <<<"$new"; then
			grep '^streamml-dev-broker: ' <<<"$new" >&2
			return 1
		fi
		sleep 0.05
	done
	_kafka_env_error "no answer from the dev broker in ${KAFKA_ENV_TIMEOUT:-10} s (log: $DEV_BROKER_LOG)"
	return 1
}

# kafka_create_topic NAME PARTITIONS: make sure a topic exists.  On the dev
# broker it is created through the control FIFO (and must not exist yet).  A
# real Kafka is left alone: there are no Kafka CLI tools here, so the topic
# must exist already or be auto-created by the broker on first use.
kafka_create_topic()
{
	local name=$1 partitions=$2
	local offset

	if [ $# -ne 2 ]; then
		_kafka_env_error "usage: kafka_create_topic NAME PARTITIONS"
		return 2
	fi
	if [ -z "${DEV_BROKER_CONTROL:-}" ]; then
		echo "kafka-env: using the Kafka at $KAFKA_BROKERS: topic \"$name\" must exist with $partitions partitions, or be created by the broker's auto.create.topics.enable with its default partition count" >&2
		return 0
	fi

	offset=$(wc -c <"$DEV_BROKER_LOG")
	"$_kafka_env_repo/test/broker/brokerctl" "$DEV_BROKER_CONTROL" \
		topic "$name" "$partitions" || return 1
	_kafka_env_wait_log "$offset" "^topic $name created with "
}

# Start the dev broker unless KAFKA_BROKERS names a Kafka to use.
_kafka_env_start()
{
	local binary=${STREAMML_BROKER:-$_kafka_env_repo/test/broker/streamml-dev-broker}
	local deadline=$((SECONDS + ${KAFKA_ENV_TIMEOUT:-10}))

	if [ -n "${KAFKA_BROKERS:-}" ]; then
		return 0
	fi
	if [ ! -x "$binary" ]; then
		_kafka_env_error "dev broker \"$binary\" not found; build it with \"make\" or set KAFKA_BROKERS to use a real Kafka"
		return 1
	fi

	_kafka_env_dir=$(mktemp -d "${TMPDIR:-/tmp}/streamml-kafka.XXXXXX") || return 1
	DEV_BROKER_CONTROL=$_kafka_env_dir/control
	DEV_BROKER_LOG=$_kafka_env_dir/broker.log
	"$binary" --bootstrap-file "$_kafka_env_dir/bootstrap" \
		--control "$DEV_BROKER_CONTROL" </dev/null >"$DEV_BROKER_LOG" 2>&1 &
	_kafka_env_pid=$!
	DEV_BROKER_PID=$_kafka_env_pid

	# The bootstrap file is written last and atomically: once it is there,
	# the brokers, the topics and the FIFO are all ready.
	while [ ! -s "$_kafka_env_dir/bootstrap" ]; do
		if ! kill -0 "$_kafka_env_pid" 2>/dev/null; then
			_kafka_env_error "dev broker exited during start-up:"
			cat "$DEV_BROKER_LOG" >&2
			kafka_env_stop
			return 1
		fi
		if ((SECONDS >= deadline)); then
			_kafka_env_error "dev broker not ready after ${KAFKA_ENV_TIMEOUT:-10} s (log: $DEV_BROKER_LOG)"
			cat "$DEV_BROKER_LOG" >&2
			kafka_env_stop
			return 1
		fi
		sleep 0.05
	done
	KAFKA_BROKERS=$(cat "$_kafka_env_dir/bootstrap")
	export KAFKA_BROKERS DEV_BROKER_CONTROL DEV_BROKER_PID DEV_BROKER_LOG

	# Do not leave a broker behind, unless the caller manages EXIT itself.
	if [ -z "$(trap -p EXIT)" ]; then
		trap kafka_env_stop EXIT
	fi
	return 0
}

_kafka_env_start
