/* SPDX-License-Identifier: MIT */
/*
 * tp_iceoryx.c - zbus-bench transport "iceoryx": Eclipse iceoryx 2.0 through
 * its C binding, zero-copy as zbus is: loan a chunk, write it in place,
 * publish; take a chunk, read it in place, release.
 *
 * iceoryx needs its daemon, RouDi: the first use of this transport starts
 * one (iox-roudi) on a configuration of our own in a private temporary
 * directory, under a small supervisor process that stops it when
 * zbus-bench exits or dies. iceoryx 2.0 allows one RouDi per machine (fixed
 * names in /dev/shm and /tmp): if another one runs, the transport says so
 * and is skipped.
 *
 * Who owns what, and why it differs from the other transports: iceoryx's
 * runtime is a C++ singleton that survives fork() and cannot be made again,
 * so a process forked from one that has a runtime (every session's child
 * after the first) cannot register a runtime of its own - iox_runtime_init()
 * hands it the parent's copy, whose requests to RouDi would race with the
 * parent's on the same channel. So only the parent talks to RouDi: @create
 * makes both ends of a link (publisher and subscriber, subscribed before
 * any message), and after fork() each process uses the end of its role.
 * Using a port is shared-memory work only (queues, mempools), which is what
 * iceoryx shares between processes anyway; only the parent deinits ports.
 * The runtime lives until exit, where its destructor unregisters it from
 * RouDi before our atexit handler stops RouDi (iceoryx 2.0 has no call to
 * end a runtime).
 *
 * No message may be lost: the publisher waits for a full subscriber queue
 * (WAIT_FOR_CONSUMER with BLOCK_PRODUCER) instead of discarding. That wait
 * is iceoryx's yield loop inside publish, which neither the alarm nor a
 * dead consumer can end (the parent owns the consumer's port, so RouDi
 * never unsubscribes it), so the sender also counts what the receiver has
 * released and never publishes into a full queue: it waits in the same
 * pause loop as every other shared-memory transport.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "transport.h"

#ifdef ZBUS_BENCH_ICEORYX

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <iceoryx_binding_c/config.h>
#include <iceoryx_binding_c/log.h>
#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/subscriber.h>

#ifndef ZBUS_BENCH_IOX_ROUDI
#define ZBUS_BENCH_IOX_ROUDI "iox-roudi"
#endif

/*
 * The mempools: one per power of two from 64 B to 16 MiB (zbus-bench's
 * largest size). Each holds what zbus-bench's throughput geometry keeps in
 * flight for the sizes it serves (8 MiB of messages over half the pool's
 * size: 16 MiB / pool, at least 8, at most a subscriber queue's 256) and
 * POOL_SPARE_CHUNKS more: the chunk the publisher has on loan, the one it
 * keeps for reuse, the one the subscriber holds and one a just-closed port
 * may hold until RouDi cleans it up. RouDi touches all of it at start:
 * about 465 MiB, and 63 MiB of its own management data.
 */
#define POOL_MIN_BYTES 64u
#define POOL_MAX_BYTES (16u * 1024 * 1024)
#define POOL_IN_FLIGHT_BYTES (16u * 1024 * 1024)
#define POOL_MIN_IN_FLIGHT 8u
#define POOL_SPARE_CHUNKS 4u

#define ROUDI_READY_TEXT "RouDi is ready for clients"
#define ROUDI_START_TIMEOUT_NS (10 * 1000000000ull)
#define ROUDI_STOP_TIMEOUT_NS (5 * 1000000000ull)
#define SUPERVISOR_EXIT_TIMEOUT_NS (ROUDI_STOP_TIMEOUT_NS + 2000000000ull)
#define SUBSCRIBE_TIMEOUT_NS (5 * 1000000000ull)
/* iceoryx 2.0's RouDi lock (platform_settings.hpp, iceoryx_posh_types.hpp). */
#define ROUDI_LOCK_FILE "/tmp/iox-unique-roudi.lock"

/* Written only by the receiver: messages it has taken and released. */
struct iox_credit {
	_Alignas(2 * CACHE_LINE) _Atomic uint64_t released;
};

struct iox_link {
	pid_t owner;			/* parent: made and ends both ports */
	iox_pub_storage_t pub_storage;
	iox_pub_t pub;
	iox_sub_storage_t sub_storage;
	iox_sub_t sub;
	struct iox_credit *credit;	/* shared with the forked child */
	uint64_t window;		/* subscriber queue capacity */
	uint64_t sent;			/* sender's own count */
	uint64_t released_seen;		/* sender's last read of credit */
	uint64_t released;		/* receiver's own count */
};

/*
 * RouDi runs under a supervisor of ours, in a session of its own, so that a
 * zbus-bench that crashes or is killed (even by a ^C to its process group)
 * still gets RouDi stopped and its files removed: the supervisor waits for
 * zbus-bench's end of the stop pipe to close. A parent-death signal to
 * RouDi alone is not enough: RouDi 2.0 handles SIGTERM only once its
 * discovery loop is free, and that loop hangs for good on a port's mutex
 * that a process killed in the middle of a publish still holds; the
 * supervisor kills it then and removes its shared memory itself.
 */
static struct {
	pid_t parent;			/* zbus-bench, which started it */
	pid_t supervisor;		/* 0: none */
	int stop_fd;			/* write end: closing it stops RouDi */
	int err;			/* 0, or why RouDi is not there */
	char why[160];
	char dir[256];			/* private: config and log */
	char config[300];
	char log[300];
} roudi = { .stop_fd = -1 };

static pid_t runtime_pid;		/* the process whose runtime is up */
static unsigned int link_serial;	/* unique event name per link */

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)ms * 1000000 };

	nanosleep(&ts, NULL);
}

/* Unique to the process: iceoryx names its socket and lock file after it. */
static void runtime_name(char *buf, size_t len, pid_t pid)
{
	snprintf(buf, len, "zbus-bench-%d", (int)pid);
}

/* ------------------------------------------------------------------------ */
/* RouDi                                                                    */
/* ------------------------------------------------------------------------ */

static uint32_t pool_count(uint32_t pool_bytes)
{
	uint32_t in_flight = POOL_IN_FLIGHT_BYTES / pool_bytes;

	if (in_flight < POOL_MIN_IN_FLIGHT)
		in_flight = POOL_MIN_IN_FLIGHT;
	if (in_flight > iox_cfg_max_subscriber_queue_capacity())
		in_flight = iox_cfg_max_subscriber_queue_capacity();
	return in_flight + POOL_SPARE_CHUNKS;
}

/* The smallest pool a message of @size bytes is loaned from. */
static uint32_t pool_for(size_t size)
{
	uint32_t pool = POOL_MIN_BYTES;

	while (pool < size)
		pool *= 2;
	return pool;
}

static int write_config(void)
{
	uint32_t pool;
	FILE *f;

	f = fopen(roudi.config, "w");
	if (!f)
		return -errno;
	fprintf(f, "# zbus-bench: one mempool per power of two\n"
		   "[general]\nversion = 1\n\n[[segment]]\n");
	for (pool = POOL_MIN_BYTES; pool <= POOL_MAX_BYTES; pool *= 2)
		fprintf(f, "\n[[segment.mempool]]\nsize = %" PRIu32 "\n"
			   "count = %" PRIu32 "\n", pool, pool_count(pool));
	return fclose(f) ? -errno : 0;
}

/* Another RouDi holds iceoryx's machine-wide lock. */
static bool other_roudi_running(void)
{
	int fd = open(ROUDI_LOCK_FILE, O_RDONLY | O_CLOEXEC);
	bool held;

	if (fd < 0)
		return false;
	held = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd);
	return held;
}

/*
 * The first line of RouDi's log that says Fatal or Error (else the last
 * one), without its colour codes: why it did not start, in a few words.
 * Quotes become apostrophes: the reason is printed inside a JSON string.
 */
static void log_excerpt(char *out, size_t len)
{
	char buf[4096], *line, *pick = NULL, *save = NULL;
	size_t n = 0, o = 0;
	FILE *f = fopen(roudi.log, "r");

	out[0] = '\0';
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strstr(line, "Fatal") || strstr(line, "Error")) {
			pick = line;
			break;
		}
		pick = line;
	}
	for (; pick && *pick && o + 1 < len; pick++) {
		if (*pick == '\033') {
			while (*pick && *pick != 'm')
				pick++;
			if (!*pick)
				break;
			continue;
		}
		out[o++] = *pick == '"' || *pick == '\\' ? '\'' : *pick;
	}
	out[o] = '\0';
}

static bool roudi_says_ready(void)
{
	char buf[4096];
	size_t n = 0;
	FILE *f = fopen(roudi.log, "r");

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, ROUDI_READY_TEXT) != NULL;
}

static void remove_dir(void)
{
	if (!roudi.dir[0])
		return;
	unlink(roudi.config);
	unlink(roudi.log);
	rmdir(roudi.dir);
	roudi.dir[0] = '\0';
}

static bool reap_within(pid_t pid, uint64_t timeout_ns)
{
	uint64_t deadline = bench_now_ns() + timeout_ns;
	pid_t r;

	while ((r = waitpid(pid, NULL, WNOHANG)) == 0 &&
	       bench_now_ns() < deadline)
		sleep_ms(10);
	return r == pid;
}

/*
 * What RouDi removes when it stops: its management segment and its payload
 * segment, which iceoryx 2.0 names after the writer group (ours).
 */
static void remove_roudi_shm(void)
{
	struct group *g = getgrgid(getegid());
	char name[300];

	shm_unlink("/iceoryx_mgmt");
	if (g) {
		snprintf(name, sizeof(name), "/%s", g->gr_name);
		shm_unlink(name);
	}
}

/* What a runtime removes when it ends, in case zbus-bench could not. */
static void remove_runtime_files(pid_t pid)
{
	char name[64], path[96];

	runtime_name(name, sizeof(name), pid);
	snprintf(path, sizeof(path), "/tmp/%s", name);
	unlink(path);
	snprintf(path, sizeof(path), "/tmp/%s.lock", name);
	unlink(path);
}

/* The supervisor's child: RouDi, its output in our log. */
static _Noreturn void roudi_exec(pid_t supervisor)
{
	cpu_set_t all;
	int fd, i;

	/* Best effort should the supervisor itself be killed. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != supervisor)
		_exit(127);
	/* Not on the producer's CPU, where the harness pinned zbus-bench. */
	CPU_ZERO(&all);
	for (i = 0; i < CPU_SETSIZE; i++)
		CPU_SET(i, &all);
	sched_setaffinity(0, sizeof(all), &all);
	fd = open(roudi.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		_exit(127);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		dup2(fd, STDIN_FILENO);
	/*
	 * Monitoring off: a keep-alive thread starved by two busy-polling
	 * processes on two CPUs must not get our ports torn down.
	 */
	execlp(ZBUS_BENCH_IOX_ROUDI, ZBUS_BENCH_IOX_ROUDI, "-c", roudi.config,
	       "-m", "off", "-l", "warning", (char *)NULL);
	dprintf(STDERR_FILENO, "[ Fatal ]: exec %s: %s\n",
		ZBUS_BENCH_IOX_ROUDI, strerror(errno));
	_exit(127);
}

/*
 * The supervisor: start RouDi, wait for zbus-bench to close its end of
 * @stop_rd (at exit, or by dying), then stop RouDi and clean up after it
 * and after zbus-bench's runtime. If RouDi exits on its own (it could not
 * start), leave its log to zbus-bench, which reports it.
 */
static _Noreturn void roudi_supervise(int stop_rd, pid_t bench)
{
	struct pollfd stop = { .fd = stop_rd, .events = POLLIN };
	pid_t self = getpid(), pid;

	setsid();
	pid = fork();
	if (pid < 0)
		_exit(127);
	if (pid == 0)
		roudi_exec(self);
	while (waitpid(pid, NULL, WNOHANG) == 0) {
		/* EOF (POLLHUP) is the only thing ever sent on it. */
		if (poll(&stop, 1, 100) <= 0)
			continue;
		kill(pid, SIGTERM);
		if (!reap_within(pid, ROUDI_STOP_TIMEOUT_NS)) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			remove_roudi_shm();
		}
		remove_runtime_files(bench);
		remove_dir();
		_exit(0);
	}
	_exit(1);
}

/*
 * Stop RouDi and wait for it. At exit this runs after iceoryx's runtime
 * has unregistered from RouDi (the runtime's destructor was registered
 * after this handler, so it ran first): RouDi would otherwise send
 * SIGTERM to a process still registered. Forked children leave through
 * _exit() and never get here.
 */
static void roudi_stop(void)
{
	if (getpid() != roudi.parent)
		return;
	if (roudi.stop_fd >= 0)
		close(roudi.stop_fd);
	roudi.stop_fd = -1;
	if (roudi.supervisor > 0)
		reap_within(roudi.supervisor, SUPERVISOR_EXIT_TIMEOUT_NS);
	roudi.supervisor = 0;
	remove_dir();
}

/* Record why RouDi is not there for every later call; return @err. */
__attribute__((format(printf, 2, 3)))
static int roudi_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(roudi.why, sizeof(roudi.why), fmt, ap);
	va_end(ap);
	roudi.err = err;
	return err;
}

static int roudi_wait_ready(void)
{
	uint64_t deadline = bench_now_ns() + ROUDI_START_TIMEOUT_NS;
	char excerpt[120];

	while (!roudi_says_ready()) {
		if (waitpid(roudi.supervisor, NULL, WNOHANG) ==
		    roudi.supervisor) {
			roudi.supervisor = 0;
			log_excerpt(excerpt, sizeof(excerpt));
			roudi_stop();
			return roudi_fail(-ECHILD,
					  "iox-roudi did not start: %s",
					  excerpt);
		}
		if (bench_now_ns() >= deadline) {
			roudi_stop();
			return roudi_fail(-ETIMEDOUT, "iox-roudi not ready "
					  "after %llu s",
					  ROUDI_START_TIMEOUT_NS / 1000000000);
		}
		sleep_ms(10);
	}
	return 0;
}

/*
 * Start RouDi once per run, at first use; later calls return how that
 * went (0, or -errno with the reason in roudi.why).
 */
static int roudi_ensure(void)
{
	static bool tried;
	const char *tmp = getenv("TMPDIR");
	int stop[2], ret;

	if (tried)
		return roudi.err;
	tried = true;
	if (other_roudi_running())
		return roudi_fail(-EBUSY, "another iox-roudi is running "
				  "(iceoryx 2.0 has one per machine)");
	if (!tmp || !tmp[0] || strlen(tmp) > 200)
		tmp = "/tmp";
	snprintf(roudi.dir, sizeof(roudi.dir), "%s/zbus-bench-iox.XXXXXX",
		 tmp);
	if (!mkdtemp(roudi.dir)) {
		roudi.dir[0] = '\0';
		return roudi_fail(-errno, "mkdtemp: %s", strerror(errno));
	}
	snprintf(roudi.config, sizeof(roudi.config), "%s/roudi.toml",
		 roudi.dir);
	snprintf(roudi.log, sizeof(roudi.log), "%s/roudi.log", roudi.dir);
	ret = write_config();
	if (ret < 0) {
		remove_dir();
		return roudi_fail(ret, "writing RouDi's config: %s",
				  strerror(-ret));
	}

	roudi.parent = getpid();
	if (atexit(roudi_stop) != 0) {
		remove_dir();
		return roudi_fail(-ENOMEM, "atexit failed");
	}
	if (pipe2(stop, O_CLOEXEC) < 0) {
		ret = -errno;
		remove_dir();
		return roudi_fail(ret, "pipe2: %s", strerror(-ret));
	}
	roudi.stop_fd = stop[1];
	fflush(stdout);
	fflush(stderr);
	roudi.supervisor = fork();
	if (roudi.supervisor < 0) {
		ret = -errno;
		roudi.supervisor = 0;
		close(stop[0]);
		roudi_stop();
		return roudi_fail(ret, "fork: %s", strerror(-ret));
	}
	if (roudi.supervisor == 0) {
		close(stop[1]);
		roudi_supervise(stop[0], roudi.parent);
	}
	close(stop[0]);
	return roudi_wait_ready();
}

/* The parent's runtime, once: the name is unique to this process. */
static void runtime_ensure(void)
{
	char name[64];

	if (runtime_pid == getpid())
		return;
	/* Its default level reports every registration on stderr. */
	iox_set_loglevel(Iceoryx_LogLevel_Warn);
	runtime_name(name, sizeof(name), getpid());
	iox_runtime_init(name);
	runtime_pid = getpid();
}

/* ------------------------------------------------------------------------ */
/* The transport                                                            */
/* ------------------------------------------------------------------------ */

static const char *iox_available(size_t size, char *why, size_t len)
{
	if (size > POOL_MAX_BYTES) {
		snprintf(why, len, "larger than RouDi's largest chunk here "
			 "(%u MiB)", POOL_MAX_BYTES >> 20);
		return why;
	}
	if (roudi_ensure() < 0)
		return roudi.why;
	return NULL;
}

/* Links that may be in flight at once from one pool: the fan scenarios
 * run a link per child (up to 4 in the standard suite), all loaning from
 * the same mempool. */
#define POOL_SHARERS 4u

static uint64_t window_for(const struct link *l)
{
	uint64_t w = l->geom.slots;
	uint64_t pool_room = (pool_count(pool_for(l->size)) -
			      POOL_SPARE_CHUNKS) / POOL_SHARERS;

	if (w > iox_cfg_max_subscriber_queue_capacity())
		w = iox_cfg_max_subscriber_queue_capacity();
	if (w > pool_room)
		w = pool_room;
	return w ? w : 1;
}

/* Subscribed and connected, checked from both ends, within a timeout. */
static int wait_subscribed(struct iox_link *x)
{
	uint64_t deadline = bench_now_ns() + SUBSCRIBE_TIMEOUT_NS;

	while (iox_sub_get_subscription_state(x->sub) !=
		       SubscribeState_SUBSCRIBED ||
	       !iox_pub_has_subscribers(x->pub)) {
		if (bench_now_ns() >= deadline)
			return bench_fail(-ETIMEDOUT, "iceoryx: subscriber "
					  "not connected after 5 s (state %d)",
					  (int)iox_sub_get_subscription_state(
						  x->sub));
		sleep_ms(1);
	}
	return 0;
}

static int iox_create(struct link *l)
{
	char instance[32], event[32];
	iox_pub_options_t po;
	iox_sub_options_t so;
	struct iox_link *x;
	int ret;

	x = calloc(1, sizeof(*x));
	if (!x)
		return bench_fail(-ENOMEM, "calloc");
	l->priv = x;
	x->owner = getpid();
	x->credit = bench_map_shared(sizeof(*x->credit));
	if (!x->credit)
		return -ENOMEM;
	ret = roudi_ensure();
	if (ret < 0)
		return bench_fail(ret, "iceoryx: %s", roudi.why);
	runtime_ensure();

	x->window = window_for(l);
	snprintf(instance, sizeof(instance), "pid-%d", (int)getpid());
	snprintf(event, sizeof(event), "link-%u", link_serial++);

	/* Wait for room rather than drop: see the top of this file. */
	iox_pub_options_init(&po);
	po.historyCapacity = 0;
	po.offerOnCreate = true;
	po.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
	x->pub = iox_pub_init(&x->pub_storage, "zbus-bench", instance, event,
			      &po);

	iox_sub_options_init(&so);
	so.queueCapacity = x->window;
	so.historyRequest = 0;
	so.subscribeOnCreate = true;
	so.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
	so.requirePublisherHistorySupport = false;
	x->sub = iox_sub_init(&x->sub_storage, "zbus-bench", instance, event,
			      &so);
	if (!x->pub || !x->sub)
		return bench_fail(-EPROTO, "iceoryx: iox_%s_init failed",
				  x->pub ? "sub" : "pub");
	return wait_subscribed(x);
}

/* Both ends exist already (see the top of this file): nothing to do. */
static int iox_open(struct link *l, enum role role)
{
	(void)l;
	(void)role;
	return 0;
}

static void iox_close(struct link *l)
{
	struct iox_link *x = l->priv;

	if (!x)
		return;
	/* A child only used the parent's ports: the parent ends them. */
	if (getpid() == x->owner) {
		if (x->sub)
			iox_sub_deinit(x->sub);
		if (x->pub)
			iox_pub_deinit(x->pub);
	}
	if (x->credit)
		munmap(x->credit, sizeof(*x->credit));
	free(x);
	l->priv = NULL;
}

static int credit_try_reserve(struct iox_link *x)
{
	if (x->sent - x->released_seen < x->window)
		return 0;
	/*
	 * Acquire pairs with the release in iox_recv(): the receiver has
	 * taken the message off the queue before we count its place free.
	 */
	x->released_seen = atomic_load_explicit(&x->credit->released,
						memory_order_acquire);
	return x->sent - x->released_seen < x->window ? 0 : -EAGAIN;
}

static const char *alloc_result_name(enum iox_AllocationResult r)
{
	switch (r) {
	case AllocationResult_NO_MEMPOOLS_AVAILABLE:
		return "no mempools available";
	case AllocationResult_RUNNING_OUT_OF_CHUNKS:
		return "running out of chunks";
	case AllocationResult_TOO_MANY_CHUNKS_ALLOCATED_IN_PARALLEL:
		return "too many chunks allocated in parallel";
	default:
		return "allocation failed";
	}
}

static int iox_send(struct link *l, uint64_t seq)
{
	struct iox_link *x = l->priv;
	enum iox_AllocationResult r;
	void *chunk;
	int ret;

	BENCH_SPIN(ret, credit_try_reserve(x), "iceoryx send");
	if (ret < 0)
		return ret;
	r = iox_pub_loan_chunk(x->pub, &chunk, (uint32_t)l->size);
	if (r != AllocationResult_SUCCESS)
		return bench_fail(-ENOMEM, "iox_pub_loan_chunk(%zu): %s (%d)",
				  l->size, alloc_result_name(r), (int)r);
	bench_payload_fill(chunk, l->size, seq);
	iox_pub_publish_chunk(x->pub, chunk);
	x->sent++;
	return 0;
}

static int sub_try_take(struct iox_link *x, const void **chunk,
			enum iox_ChunkReceiveResult *r)
{
	*r = iox_sub_take_chunk(x->sub, chunk);
	if (*r == ChunkReceiveResult_SUCCESS)
		return 0;
	return *r == ChunkReceiveResult_NO_CHUNK_AVAILABLE ? -EAGAIN : -EPROTO;
}

static int iox_recv(struct link *l, uint64_t seq)
{
	struct iox_link *x = l->priv;
	enum iox_ChunkReceiveResult r;
	const void *chunk = NULL;
	int ret;

	BENCH_SPIN(ret, sub_try_take(x, &chunk, &r), "iceoryx recv");
	if (ret == -EPROTO)
		return bench_fail(ret, "iox_sub_take_chunk failed (%d)",
				  (int)r);
	if (ret < 0)
		return ret;
	ret = bench_payload_check(chunk, l->size, seq);
	iox_sub_release_chunk(x->sub, chunk);
	/* Release pairs with the acquire in credit_try_reserve(). */
	atomic_store_explicit(&x->credit->released, ++x->released,
			      memory_order_release);
	return ret;
}

const struct transport tp_iceoryx = {
	.name = "iceoryx", .copies = false,
	.create = iox_create, .open = iox_open,
	.send = iox_send, .recv = iox_recv, .close = iox_close,
	.available = iox_available,
};

#else /* !ZBUS_BENCH_ICEORYX */

static const char *iox_unavailable(size_t size, char *why, size_t len)
{
	(void)size;
	(void)why;
	(void)len;
	return "iceoryx not built in (install iceoryx "
	       "libiceoryx-binding-c-dev and rebuild)";
}

/* Never opened: it always says why it cannot run. */
const struct transport tp_iceoryx = {
	.name = "iceoryx",
	.available = iox_unavailable,
};

#endif /* ZBUS_BENCH_ICEORYX */
