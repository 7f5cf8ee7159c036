/*
 * dev_broker.c
 *		The pg_streamml development Kafka broker: librdkafka's mock cluster
 *		behind a small command-line interface.
 *
 * Tests, the demo and the benchmarks need a Kafka cluster they can start in
 * well under a second, break on purpose and throw away.  librdkafka ships a
 * mock cluster (rdkafka_mock.h) that speaks enough of the Kafka protocol for
 * any librdkafka client, kcat included; this program keeps one alive and
 * lets a script steer it.
 *
 * Start-up.  The brokers get ids 1..N and listen on 127.0.0.1 only, on
 * ports the kernel picks.  Topics given with --topic are created, then the
 * control FIFO, then the pid file, and the bootstrap file is written last,
 * through a temporary file and rename(), so a reader that sees the file sees
 * all of it and may use the cluster, the topics and the FIFO at once.
 *
 * Control.  --control makes a FIFO that accepts one command a line:
 *
 *		down ID | down all		stop accepting connections, drop open ones
 *		up ID | up all			accept connections again
 *		topic NAME PARTITIONS	create a topic
 *		stop					exit cleanly (status 0)
 *
 * Each result is one line on stdout ("broker 1 down", "all brokers up",
 * "topic t created with 3 partitions"); a failed command is one line on
 * stderr starting with the program name.  A command has taken effect when
 * its line is printed: the mock cluster applies it synchronously.  The FIFO
 * is opened without blocking and opened again each time its last writer
 * closes it, so any number of "echo ... > fifo" can follow each other.
 *
 * Signals.  SIGTERM, SIGINT and SIGHUP stop the program like "stop".  They
 * are blocked before librdkafka starts its threads, which inherit that mask,
 * and only the main thread takes them, inside ppoll(), so there is no race
 * between checking the flag and going to sleep.
 *
 * Pacing.  In 2.0.2 the mock cluster's thread serves its request queue
 * before it drains its wake-up pipe, so a request made within microseconds
 * of the previous one's reply can lose its wake-up and wait for the thread's
 * one-second poll timeout.  We keep MOCK_REQUEST_GAP_MS between the end of
 * one request and the start of the next, which makes that rare; when it
 * still happens a command is late by up to a second, never lost.
 *
 * Exit status: 0 after "stop" or a signal, 1 when the cluster or one of our
 * files cannot be set up or the FIFO fails, 2 for a bad command line.
 *
 * What the librdkafka 2.0.2 mock cluster does, read in its code and tried
 * with kcat and a small librdkafka client (headers, ports and leadership are
 * also asserted by test/t/001_dev_broker.pl); the ingestion code depends on
 * it:
 *
 * - Consumer groups: yes.  JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
 *	 OffsetCommit and OffsetFetch are implemented; committed offsets are kept
 *	 per group and partition for the life of the process.
 * - ListOffsets by timestamp (offsetsForTimes): no.  Only the logical
 *	 offsets "beginning" and "end" are answered; any real timestamp gets
 *	 offset -1 (no such message), and the reply's timestamp is always -1.
 * - Message headers: yes.  The mock stores each produced record batch as
 *	 bytes and serves it back unchanged, so keys, headers and producer
 *	 timestamps come back as sent.
 * - More partitions for an existing topic: no.  There is no CreatePartitions
 *	 (nor CreateTopics) handler, and rd_kafka_mock_topic_create() refuses an
 *	 existing topic with TOPIC_ALREADY_EXISTS; "topic" reports that.  An
 *	 admin-API CreatePartitions request goes unanswered until it times out.
 * - Auto-creation: always, for every client.  The mock speaks Metadata
 *	 v0..v2 only, which has no "allow auto-creation" flag, so any metadata
 *	 request that names an unknown topic creates it, with 4 partitions and
 *	 replication factor min(3, brokers): producers, and consumers too, even
 *	 with allow.auto.create.topics=false (checked with kcat -C and -G).  It
 *	 cannot be turned off; listing all topics creates nothing.  So a
 *	 consumer of a misspelt topic waits on an empty topic instead of
 *	 failing, and a topic whose partition count matters must be created
 *	 before any client names it.
 * - Stable ports: not possible.  Each broker binds port 0 in the mock's own
 *	 code, and 2.0.2 has no option or hook to choose the port, so there is
 *	 no --port-base; read the bootstrap file instead.  A broker keeps its
 *	 port across "down" and "up".
 * - Leadership: partition leaders are spread over the brokers from a random
 *	 first one when the topic is created, and "down" does not move them, so
 *	 with one broker down the partitions it leads (which ones varies from
 *	 run to run) are unavailable and the others still serve.
 * - Retention: each partition keeps at most 100000 record batches or 5 MiB,
 *	 whichever comes first; older batches are dropped and the log start
 *	 offset moves on.  Long benchmarks must consume while they produce.
 */
#define _GNU_SOURCE				/* ppoll() */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define PROGNAME			"streamml-dev-broker"

#define EXIT_USAGE			2

#define DEFAULT_BROKERS		3
#define MAX_BROKERS			64
#define MAX_PARTITIONS		1000
#define MAX_TOPIC_NAME		249
#define MAX_REPLICATION		3
#define CONTROL_LINE_MAX	1024
#define MOCK_REQUEST_GAP_MS	10

/* A topic to create at start-up, from --topic NAME:PARTITIONS. */
typedef struct TopicSpec
{
	char	   *name;
	int			partitions;
} TopicSpec;

/* Everything the running broker owns, so one function can release it. */
typedef struct DevBroker
{
	int			nbrokers;
	bool		quiet;
	const char *bootstrap_file;
	const char *control_path;
	const char *pid_file;

	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mcluster;
	struct timespec last_request;	/* when the last mock request ended */

	/* Which of our files exist now and must be removed at exit. */
	bool		control_created;
	bool		pid_written;
	bool		bootstrap_written;

	/* The control FIFO's read end and the command line being assembled. */
	int			control_fd;
	char		line[CONTROL_LINE_MAX];
	size_t		linelen;
	bool		line_too_long;

	/* Set by the "stop" command. */
	bool		stop_requested;
} DevBroker;

/* The signal that asked us to stop, or 0. */
static volatile sig_atomic_t stop_signal = 0;

static void LogInfo(const DevBroker *broker, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
static void LogError(const char *fmt,...)
			__attribute__((format(printf, 1, 2)));

/* Print an informational line on stdout, unless --quiet. */
static void
LogInfo(const DevBroker *broker, const char *fmt,...)
{
	va_list		ap;

	if (broker->quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

/* Print an error line on stderr, prefixed with the program name. */
static void
LogError(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", PROGNAME);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

/* Print the command-line help on the given stream. */
static void
Usage(FILE *out)
{
	fprintf(out,
			"%s runs a throw-away Kafka cluster (librdkafka's mock cluster) on 127.0.0.1.\n"
			"\n"
			"Usage:\n"
			"  %s [OPTION]...\n"
			"\n"
			"Options:\n"
			"  -n, --brokers=N              number of brokers, 1..%d (default %d)\n"
			"  -t, --topic=NAME:PARTITIONS  create a topic at start-up (repeatable)\n"
			"  -B, --bootstrap-file=PATH    write the bootstrap list there when ready\n"
			"  -c, --control=PATH           create a FIFO there and read commands from it\n"
			"  -p, --pid-file=PATH          write the process id there\n"
			"  -q, --quiet                  print only errors\n"
			"  -h, --help                   show this help and exit\n"
			"\n"
			"Control commands, one a line: down ID|all, up ID|all,\n"
			"topic NAME PARTITIONS, stop.\n"
			"\n"
			"Exit status: 0 after \"stop\" or SIGTERM/SIGINT/SIGHUP, 1 on a runtime\n"
			"error, 2 on a bad command line.\n",
			PROGNAME, PROGNAME, MAX_BROKERS, DEFAULT_BROKERS);
}

/* Parse a decimal integer within [min, max]; false if it is not one. */
static bool
ParseInt(const char *str, int min, int max, int *result)
{
	char	   *end;
	long		val;

	if (*str == '\0')
		return false;
	errno = 0;
	val = strtol(str, &end, 10);
	if (errno != 0 || *end != '\0' || val < min || val > max)
		return false;
	*result = (int) val;
	return true;
}

/*
 * Check a topic name the way Kafka does: 1..249 characters from
 * [A-Za-z0-9._-], and not "." or "..".  The mock accepts anything, which
 * would only hide a caller's mistake until it meets a real cluster.
 */
static bool
ValidTopicName(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > MAX_TOPIC_NAME)
		return false;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return strspn(name,
				  "abcdefghijklmnopqrstuvwxyz"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "0123456789._-") == len;
}

/*
 * Wait until MOCK_REQUEST_GAP_MS have passed since the last request to the
 * mock cluster ended (see "Pacing" above).
 */
static void
BeginMockRequest(const DevBroker *broker)
{
	struct timespec now;
	long long	elapsed_ns;
	long long	gap_ns = MOCK_REQUEST_GAP_MS * 1000000LL;

	clock_gettime(CLOCK_MONOTONIC, &now);
	elapsed_ns = (now.tv_sec - broker->last_request.tv_sec) * 1000000000LL +
		(now.tv_nsec - broker->last_request.tv_nsec);
	if (elapsed_ns >= 0 && elapsed_ns < gap_ns)
	{
		struct timespec pause;

		pause.tv_sec = 0;
		pause.tv_nsec = (long) (gap_ns - elapsed_ns);
		while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
			;
	}
}

/* Remember when a request to the mock cluster ended. */
static void
EndMockRequest(DevBroker *broker)
{
	clock_gettime(CLOCK_MONOTONIC, &broker->last_request);
}

/* Create a topic in the mock cluster and report the result. */
static bool
CreateTopic(DevBroker *broker, const char *name, int partitions)
{
	rd_kafka_resp_err_t err;
	int			replication;

	if (!ValidTopicName(name))
	{
		LogError("invalid topic name \"%s\": use 1 to %d characters from [A-Za-z0-9._-]",
				 name, MAX_TOPIC_NAME);
		return false;
	}
	if (partitions < 1 || partitions > MAX_PARTITIONS)
	{
		LogError("invalid partition count %d for topic \"%s\": use 1 to %d",
				 partitions, name, MAX_PARTITIONS);
		return false;
	}

	replication = broker->nbrokers < MAX_REPLICATION ?
		broker->nbrokers : MAX_REPLICATION;
	BeginMockRequest(broker);
	err = rd_kafka_mock_topic_create(broker->mcluster, name, partitions,
									 replication);
	EndMockRequest(broker);
	if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
	{
		LogError("topic \"%s\" already exists: the mock cluster cannot change the partition count of an existing topic",
				 name);
		return false;
	}
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		LogError("could not create topic \"%s\": %s", name,
				 rd_kafka_err2str(err));
		return false;
	}

	LogInfo(broker, "topic %s created with %d partition%s", name, partitions,
			partitions == 1 ? "" : "s");
	return true;
}

/* Take one broker (id >= 1) or all of them (id -1) down or up. */
static bool
SetBrokerState(DevBroker *broker, int id, bool up)
{
	rd_kafka_resp_err_t err;
	const char *state = up ? "up" : "down";

	BeginMockRequest(broker);
	if (up)
		err = rd_kafka_mock_broker_set_up(broker->mcluster, id);
	else
		err = rd_kafka_mock_broker_set_down(broker->mcluster, id);
	EndMockRequest(broker);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		if (id == -1)
			LogError("could not set all brokers %s: %s", state,
					 rd_kafka_err2str(err));
		else
			LogError("could not set broker %d %s: %s", id, state,
					 rd_kafka_err2str(err));
		return false;
	}

	if (id == -1)
		LogInfo(broker, "all brokers %s", state);
	else
		LogInfo(broker, "broker %d %s", id, state);
	return true;
}

/*
 * Run one control command.  The line is split in place on blanks; empty
 * lines and lines starting with '#' are ignored.
 */
static void
ExecuteCommand(DevBroker *broker, char *line)
{
	char	   *words[4];
	int			nwords = 0;
	char	   *save = NULL;
	char	   *word;

	for (word = strtok_r(line, " \t\r", &save); word != NULL;
		 word = strtok_r(NULL, " \t\r", &save))
	{
		if (nwords == (int) (sizeof(words) / sizeof(words[0])))
		{
			LogError("too many words in command \"%s ...\"", words[0]);
			return;
		}
		words[nwords++] = word;
	}
	if (nwords == 0 || words[0][0] == '#')
		return;

	if (strcmp(words[0], "down") == 0 || strcmp(words[0], "up") == 0)
	{
		bool		up = (words[0][0] == 'u');
		int			id;

		if (nwords != 2)
		{
			LogError("usage: %s ID|all", words[0]);
			return;
		}
		if (strcmp(words[1], "all") == 0)
			id = -1;
		else if (!ParseInt(words[1], 1, broker->nbrokers, &id))
		{
			LogError("no broker \"%s\": brokers are numbered 1 to %d",
					 words[1], broker->nbrokers);
			return;
		}
		SetBrokerState(broker, id, up);
	}
	else if (strcmp(words[0], "topic") == 0)
	{
		int			partitions;

		if (nwords != 3)
		{
			LogError("usage: topic NAME PARTITIONS");
			return;
		}
		if (!ParseInt(words[2], 1, MAX_PARTITIONS, &partitions))
		{
			LogError("invalid partition count \"%s\" for topic \"%s\": use 1 to %d",
					 words[2], words[1], MAX_PARTITIONS);
			return;
		}
		CreateTopic(broker, words[1], partitions);
	}
	else if (strcmp(words[0], "stop") == 0)
	{
		if (nwords != 1)
		{
			LogError("usage: stop");
			return;
		}
		broker->stop_requested = true;
	}
	else
		LogError("unknown command \"%s\": use down, up, topic or stop",
				 words[0]);
}

/*
 * Add bytes read from the FIFO to the current line, running each complete
 * line.  A line longer than CONTROL_LINE_MAX is reported and skipped.
 */
static void
FeedControl(DevBroker *broker, const char *buf, size_t len)
{
	size_t		i;

	for (i = 0; i < len && !broker->stop_requested; i++)
	{
		if (buf[i] == '\n')
		{
			if (broker->line_too_long)
				LogError("control line longer than %d bytes ignored",
						 CONTROL_LINE_MAX - 1);
			else
			{
				broker->line[broker->linelen] = '\0';
				ExecuteCommand(broker, broker->line);
			}
			broker->linelen = 0;
			broker->line_too_long = false;
		}
		else if (broker->linelen < CONTROL_LINE_MAX - 1)
			broker->line[broker->linelen++] = buf[i];
		else
			broker->line_too_long = true;
	}
}

/*
 * Open the control FIFO for reading, without waiting for a writer.  When
 * called again after the last writer has gone, the new descriptor is opened
 * before the old one is closed: a FIFO with neither readers nor writers
 * drops whatever is buffered in it, which would lose a command written just
 * after we saw the end of the previous one.
 */
static bool
OpenControl(DevBroker *broker)
{
	int			fd = open(broker->control_path,
						  O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
	{
		LogError("could not open control FIFO \"%s\": %s",
				 broker->control_path, strerror(errno));
		return false;
	}
	if (broker->control_fd >= 0)
		close(broker->control_fd);
	broker->control_fd = fd;
	return true;
}

/*
 * Read whatever the FIFO holds.  When the last writer has gone (read
 * returns 0) an unterminated last line is run as it is and the FIFO is
 * opened again, otherwise poll() would report the hang-up forever.
 */
static bool
ReadControl(DevBroker *broker)
{
	char		buf[4096];

	for (;;)
	{
		ssize_t		n = read(broker->control_fd, buf, sizeof(buf));

		if (n > 0)
		{
			FeedControl(broker, buf, (size_t) n);
			if (broker->stop_requested)
				return true;
		}
		else if (n == 0)
		{
			if (broker->linelen > 0 || broker->line_too_long)
				FeedControl(broker, "\n", 1);
			return broker->stop_requested || OpenControl(broker);
		}
		else if (errno == EINTR)
			continue;
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			return true;
		else
		{
			LogError("could not read control FIFO \"%s\": %s",
					 broker->control_path, strerror(errno));
			return false;
		}
	}
}

/*
 * Make the control FIFO.  A FIFO left at the path by a killed run is
 * replaced; anything else there is an error, we do not delete user files.
 */
static bool
CreateControl(DevBroker *broker)
{
	struct stat st;

	if (lstat(broker->control_path, &st) == 0)
	{
		if (!S_ISFIFO(st.st_mode))
		{
			LogError("control path \"%s\" exists and is not a FIFO",
					 broker->control_path);
			return false;
		}
		if (unlink(broker->control_path) != 0)
		{
			LogError("could not remove old control FIFO \"%s\": %s",
					 broker->control_path, strerror(errno));
			return false;
		}
	}
	if (mkfifo(broker->control_path, 0600) != 0)
	{
		LogError("could not create control FIFO \"%s\": %s",
				 broker->control_path, strerror(errno));
		return false;
	}
	broker->control_created = true;
	return OpenControl(broker);
}

/*
 * Write a one-line file so that readers see it whole or not at all: write
 * a temporary file next to it, then rename it over the target.
 */
static bool
WriteFileAtomically(const char *path, const char *contents)
{
	char		tmppath[PATH_MAX];
	size_t		len = strlen(contents);
	size_t		done = 0;
	int			fd;

	if (snprintf(tmppath, sizeof(tmppath), "%s.tmp.%d", path,
				 (int) getpid()) >= (int) sizeof(tmppath))
	{
		LogError("path \"%s\" is too long", path);
		return false;
	}
	fd = open(tmppath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
	{
		LogError("could not create \"%s\": %s", tmppath, strerror(errno));
		return false;
	}
	while (done < len)
	{
		ssize_t		n = write(fd, contents + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
		{
			LogError("could not write \"%s\": %s", tmppath, strerror(errno));
			close(fd);
			unlink(tmppath);
			return false;
		}
		done += (size_t) n;
	}
	if (close(fd) != 0 || rename(tmppath, path) != 0)
	{
		LogError("could not write \"%s\": %s", path, strerror(errno));
		unlink(tmppath);
		return false;
	}
	return true;
}

/* Remove a file we made, complaining only if it is there and stays. */
static void
RemoveFile(const char *what, const char *path)
{
	if (unlink(path) != 0 && errno != ENOENT)
		LogError("could not remove %s \"%s\": %s", what, path,
				 strerror(errno));
}

/*
 * Release everything, in the reverse order of start-up: the bootstrap file
 * first, so nobody starts using a cluster that is going away.
 */
static void
Shutdown(DevBroker *broker)
{
	if (broker->bootstrap_written)
		RemoveFile("bootstrap file", broker->bootstrap_file);
	if (broker->control_fd >= 0)
		close(broker->control_fd);
	if (broker->control_created)
		RemoveFile("control FIFO", broker->control_path);
	if (broker->mcluster != NULL)
	{
		BeginMockRequest(broker);
		rd_kafka_mock_cluster_destroy(broker->mcluster);
	}
	if (broker->rk != NULL)
		rd_kafka_destroy(broker->rk);
	if (broker->pid_written)
		RemoveFile("pid file", broker->pid_file);
}

/* Record the stop signal; the main loop does the rest. */
static void
HandleStopSignal(int signo)
{
	stop_signal = signo;
}

/*
 * Create the rd_kafka_t handle the mock cluster needs for its bookkeeping,
 * and the cluster itself.  The handle never connects anywhere; its log
 * level hides the notice that it has no bootstrap.servers.
 */
static bool
StartCluster(DevBroker *broker)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char		errstr[512];

	if (rd_kafka_conf_set(conf, "client.id", PROGNAME,
						  errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "log_level", broker->quiet ? "3" : "4",
						  errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		LogError("could not configure librdkafka: %s", errstr);
		rd_kafka_conf_destroy(conf);
		return false;
	}

	/* On success rd_kafka_new() takes ownership of conf. */
	broker->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (broker->rk == NULL)
	{
		LogError("could not create librdkafka handle: %s", errstr);
		rd_kafka_conf_destroy(conf);
		return false;
	}

	broker->mcluster = rd_kafka_mock_cluster_new(broker->rk, broker->nbrokers);
	EndMockRequest(broker);
	if (broker->mcluster == NULL)
	{
		LogError("could not create a mock cluster of %d brokers (see librdkafka's messages above)",
				 broker->nbrokers);
		return false;
	}
	return true;
}

/*
 * Wait for control commands or a stop signal until told to stop.  Returns
 * false if the control FIFO failed.
 */
static bool
MainLoop(DevBroker *broker, const sigset_t *waitmask)
{
	while (!broker->stop_requested && stop_signal == 0)
	{
		struct pollfd pfd;
		int			rc;

		pfd.fd = broker->control_fd;
		pfd.events = POLLIN;
		pfd.revents = 0;

		rc = ppoll(&pfd, broker->control_fd >= 0 ? 1 : 0, NULL, waitmask);
		if (rc < 0)
		{
			if (errno == EINTR)
				continue;
			LogError("could not wait for commands: %s", strerror(errno));
			return false;
		}
		if (pfd.revents & (POLLERR | POLLNVAL))
		{
			LogError("control FIFO \"%s\" failed", broker->control_path);
			return false;
		}
		if ((pfd.revents & (POLLIN | POLLHUP)) && !ReadControl(broker))
			return false;
	}
	return true;
}

/* Parses the command line, starts the cluster, serves commands until stopped. */
int
main(int argc, char **argv)
{
	static const struct option long_options[] = {
		{"brokers", required_argument, NULL, 'n'},
		{"topic", required_argument, NULL, 't'},
		{"bootstrap-file", required_argument, NULL, 'B'},
		{"control", required_argument, NULL, 'c'},
		{"pid-file", required_argument, NULL, 'p'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	DevBroker	broker;
	TopicSpec  *topics = NULL;
	int			ntopics = 0;
	sigset_t	stopmask;
	sigset_t	waitmask;
	struct sigaction sa;
	const char *bootstraps;
	int			status = EXIT_FAILURE;
	int			opt;
	int			i;

	memset(&broker, 0, sizeof(broker));
	broker.nbrokers = DEFAULT_BROKERS;
	broker.control_fd = -1;

	while ((opt = getopt_long(argc, argv, "n:t:B:c:p:qh",
							  long_options, NULL)) != -1)
	{
		switch (opt)
		{
			case 'n':
				if (!ParseInt(optarg, 1, MAX_BROKERS, &broker.nbrokers))
				{
					LogError("invalid broker count \"%s\": use 1 to %d",
							 optarg, MAX_BROKERS);
					return EXIT_USAGE;
				}
				break;
			case 't':
				{
					char	   *colon = strrchr(optarg, ':');
					TopicSpec  *spec;

					topics = realloc(topics, (ntopics + 1) * sizeof(TopicSpec));
					if (topics == NULL)
					{
						LogError("out of memory");
						return EXIT_FAILURE;
					}
					spec = &topics[ntopics++];
					spec->name = optarg;
					if (colon == NULL ||
						!ParseInt(colon + 1, 1, MAX_PARTITIONS, &spec->partitions))
					{
						LogError("invalid --topic \"%s\": use NAME:PARTITIONS with 1 to %d partitions",
								 optarg, MAX_PARTITIONS);
						return EXIT_USAGE;
					}
					*colon = '\0';
					if (!ValidTopicName(spec->name))
					{
						LogError("invalid topic name \"%s\": use 1 to %d characters from [A-Za-z0-9._-]",
								 spec->name, MAX_TOPIC_NAME);
						return EXIT_USAGE;
					}
					break;
				}
			case 'B':
				broker.bootstrap_file = optarg;
				break;
			case 'c':
				broker.control_path = optarg;
				break;
			case 'p':
				broker.pid_file = optarg;
				break;
			case 'q':
				broker.quiet = true;
				break;
			case 'h':
				Usage(stdout);
				return EXIT_SUCCESS;
			default:
				fprintf(stderr, "Try \"%s --help\" for more information.\n",
						PROGNAME);
				return EXIT_USAGE;
		}
	}
	if (optind < argc)
	{
		LogError("unexpected argument \"%s\"", argv[optind]);
		fprintf(stderr, "Try \"%s --help\" for more information.\n", PROGNAME);
		return EXIT_USAGE;
	}

	/*
	 * Block the stop signals before librdkafka creates threads, so that they
	 * are delivered to this thread only, inside ppoll().  A reader that has
	 * gone away must not kill us through SIGPIPE on stdout.
	 */
	sigemptyset(&stopmask);
	sigaddset(&stopmask, SIGTERM);
	sigaddset(&stopmask, SIGINT);
	sigaddset(&stopmask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &stopmask, &waitmask) != 0)
	{
		LogError("could not block signals: %s", strerror(errno));
		return EXIT_FAILURE;
	}
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGHUP);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = HandleStopSignal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* A bootstrap file from an earlier run must not look like readiness. */
	if (broker.bootstrap_file != NULL)
		RemoveFile("old bootstrap file", broker.bootstrap_file);

	if (!StartCluster(&broker))
		goto done;
	bootstraps = rd_kafka_mock_cluster_bootstraps(broker.mcluster);
	LogInfo(&broker, "%d broker%s listening on %s", broker.nbrokers,
			broker.nbrokers == 1 ? "" : "s", bootstraps);

	for (i = 0; i < ntopics; i++)
	{
		if (!CreateTopic(&broker, topics[i].name, topics[i].partitions))
			goto done;
	}

	if (broker.control_path != NULL && !CreateControl(&broker))
		goto done;

	if (broker.pid_file != NULL)
	{
		char		pidline[32];

		snprintf(pidline, sizeof(pidline), "%d\n", (int) getpid());
		if (!WriteFileAtomically(broker.pid_file, pidline))
			goto done;
		broker.pid_written = true;
	}

	if (broker.bootstrap_file != NULL)
	{
		char	   *contents = malloc(strlen(bootstraps) + 2);

		if (contents == NULL)
		{
			LogError("out of memory");
			goto done;
		}
		sprintf(contents, "%s\n", bootstraps);
		broker.bootstrap_written = WriteFileAtomically(broker.bootstrap_file,
													   contents);
		free(contents);
		if (!broker.bootstrap_written)
			goto done;
	}
	else if (broker.quiet)
	{
		/* Without a bootstrap file, stdout is the only way to learn it. */
		printf("%s\n", bootstraps);
		fflush(stdout);
	}
	LogInfo(&broker, "ready");

	if (!MainLoop(&broker, &waitmask))
		goto done;

	if (stop_signal != 0)
		LogInfo(&broker, "stopping on signal %d (%s)", (int) stop_signal,
				strsignal(stop_signal));
	else
		LogInfo(&broker, "stopping on command");
	status = EXIT_SUCCESS;

done:
	Shutdown(&broker);
	free(topics);
	if (status == EXIT_SUCCESS)
		LogInfo(&broker, "stopped");
	return status;
}
