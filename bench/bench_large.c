/* SPDX-License-Identifier: MIT */
/*
 * bench_large.c - zbus-bench-large: large messages (64 KiB to 256 MiB)
 * moved six ways, side by side in one run (issue 4).
 *
 * Transports:
 *   pull         the producer publishes a private buffer by reference
 *                (zbus_pub_send_ref()); the consumer receives the record
 *                (zbus_sub_recv_batch()), zbus_sub_pull()s the payload into
 *                its own buffer and releases it; the producer waits with
 *                zbus_pub_ref_wait() before it writes the buffer again
 *   pull-broker  the same, but the consumer runs as another user (uid
 *                65534, after fork; needs root, else skipped saying so) and
 *                subscribes with zbus_sub_opts.conn: the kernel refuses
 *                its pull and the broker pulls for it. The broker is a
 *                zbusd started by this program on a private socket and
 *                pinned to the consumer's CPU (it copies while the
 *                consumer sleeps in its request; the producer's CPU is
 *                busy polling); the channel is made through it with mode
 *                0644 and the publisher registered with
 *                zbus_conn_register_pub()
 *   loan         the ring: the producer loans the whole size in the arena,
 *                writes the payload into the loan and publishes; the
 *                consumer receives it in place and copies it out. Each size
 *                gets a channel made for it (max_msg_size = size, an arena
 *                of at least two messages and 8 MiB); a size whose arena
 *                does not fit the memory budget is skipped, saying so
 *   unix         an AF_UNIX stream socketpair, blocking: the producer
 *                writes the whole buffer, the consumer reads all of it
 *   deliver      a subscriber that does not map the channel: the producer
 *                loans as in loan, the zbusd (as for pull-broker) copies
 *                each message into the consumer's delivery ring
 *                (zbus_conn_subscribe() with ZBUS_SUBSCRIBE_DELIVERED), the
 *                consumer sleeps in its receive and copies the message out
 *   readv        the floor for a pull: the consumer calls
 *                process_vm_readv() on the producer's buffer itself
 *                (looping on short counts), with pull's hand-shake made
 *                of two words in a shared page
 *
 * The same work on both sides, whatever the transport:
 *  - Before each message the producer writes the whole payload (a memset
 *    of the sequence number's low byte and a stamp at each end,
 *    bench_payload_fill()); the time counts it.
 *  - The consumer ends with the payload in a private buffer of its own:
 *    pull, pull-broker, readv and unix copy into it, and loan memcpy()s it
 *    out of the ring. A loan could be read in place; the copy out gives
 *    every consumer the same bytes to move (one read of the payload, one
 *    write of its own buffer), which is the comparison asked for. Then it
 *    checks the copy (both stamps and one byte per 4 KiB page), also
 *    timed, after handing the message back.
 *
 * Hand-shakes: a buffer published by reference must not change until the
 * consumer is done with it, so pull, pull-broker and readv's producers
 * cycle through two buffers (double buffering): the producer writes one
 * while the consumer copies the other, and before it writes a buffer again
 * it waits until the consumer is done with the message that last used it
 * (zbus_pub_ref_wait(), or readv's hand-shake word). Both sides busy-poll
 * (as in zbus-bench), except that pull-broker's consumer sleeps in its
 * request to the broker. loan and unix let the producer run ahead, up to
 * the arena and the socket buffer, which is how each is used.
 *
 * Method: producer and consumer are two processes pinned to two CPUs,
 * forked anew for each (transport, size) and kept for all its repetitions.
 * Every buffer is faulted in before anything is timed (first touch of
 * fresh memory is very slow on a VM), then one untimed round of a
 * repetition's messages (at least once round the loan's arena) warms
 * caches, the ring and the broker. Each repetition times from the moment
 * the producer starts writing its first message to the moment the
 * consumer is done with its last (CLOCK_MONOTONIC, shared by both) and
 * starts with nothing in flight.
 *
 * Output: per (transport, size), the median and the p90 rate over the
 * repetitions (p90: the rate 90% of them reached, i.e. the 90th percentile
 * of the time), then the ratios issue 4 targets, for sizes of 1 MiB and
 * more, and the size below which loan beats pull.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zbus/zbus.h>

#include "bench_util.h"

#ifndef ZBUS_BROKER_DEFAULT
#define ZBUS_BROKER_DEFAULT "/usr/local/bin/zbusd"
#endif

#define PAGE 4096u
#define NOBODY 65534		/* pull-broker's consumer: uid and gid */
#define MAX_SIZES 16
#define MIN_SIZE 64
#define MAX_SIZE GiB		/* a channel's max_msg_size limit */
#define MAX_REPS 1000
#define MAX_ROUNDS 20
#define LOAN_MIN_ARENA (8 * MiB) /* as zbus-bench's throughput rings */
#define PRODUCER_BUFS 2		/* pull's and readv's payloads in flight */

/* ------------------------------------------------------------------------ */
/* Links: one transport, as seen by one side                                */
/* ------------------------------------------------------------------------ */

enum role { ROLE_TX, ROLE_RX };

/*
 * readv's hand-shake, in a page both processes map: each word sits on its
 * own pair of cache lines, named after its only writer.
 */
struct vm_shake {
	/* seq + 1 of the last message written */
	_Alignas(2 * CACHE_LINE) _Atomic uint64_t prod_posted;
	_Atomic uint64_t prod_addr;	/* the producer's first buffer */
	_Atomic uint64_t prod_stride;	/* from one buffer to the next */
	/* seq + 1 of the last message copied */
	_Alignas(2 * CACHE_LINE) _Atomic uint64_t cons_done;
};

struct transport;

/*
 * struct link - what one side holds. @create runs in the parent before
 * fork(), so the child inherits a copy: whatever it did not make itself
 * (the parent's connection, channel, publisher) it must neither use nor
 * free; @own says what it made.
 */
struct link {
	const struct transport *tp;
	size_t size;
	enum role role;
	unsigned char *buf;		/* private: payload(s) or copy */
	size_t buf_bytes;
	size_t stride;			/* from one payload to the next */
	unsigned int nbufs;		/* payloads the producer cycles */
	pid_t producer;
	/* pull, pull-broker, loan */
	struct zbus_channel *ch;
	struct zbus_conn *conn;		/* pull-broker */
	struct zbus_pub *pub;
	struct zbus_sub *sub;
	bool own;			/* ch and conn are this process's */
	char name[64];			/* pull-broker's channel */
	uint64_t arena;			/* loan */
	/* unix */
	int fd[2];			/* [0] consumer's, [1] producer's */
	uint64_t zseq[PRODUCER_BUFS];	/* pull: message in each buffer */
	/* readv */
	struct vm_shake *shake;
};

/*
 * struct transport - @skip says why a size cannot run here (NULL: it can);
 * @create runs before fork() in the parent, @open after it in each process,
 * @close in each process for what it holds (also after a failed @create).
 * @send writes and sends message @seq, @recv receives it into the private
 * buffer and hands it back.
 */
struct transport {
	const char *name;
	const char *(*skip)(size_t size, char *why, size_t len);
	int (*create)(struct link *l);
	int (*open)(struct link *l);
	int (*send)(struct link *l, uint64_t seq);
	int (*recv)(struct link *l, uint64_t seq);
	void (*close)(struct link *l);
};

struct config {
	bool json;
	bool quick;
	unsigned int transports;	/* bit per transports[] entry */
	size_t sizes[MAX_SIZES];
	unsigned int nsizes;
	unsigned int reps;		/* per cell and round */
	unsigned int rounds;		/* times the whole matrix runs */
	uint64_t rep_bytes;		/* a repetition moves at least it */
	uint64_t budget;		/* bytes one cell may map */
	const char *zbusd;
	struct bench_cpus cpus;
};

static struct config cfg;

/* The broker pull-broker goes through, started at its first use. */
static struct {
	pid_t pid;
	char dir[64];
	char sock[128];
	char log[128];
	bool failed;
} g_broker = { .pid = -1 };

/* Producer's payload or consumer's copy, faulted in now: no timed loop
 * pays for the first touch. Not inherited: each side maps its own. */
static int buf_map(struct link *l)
{
	void *p;

	l->stride = bench_round_up(l->size, PAGE);
	if (!l->nbufs)
		l->nbufs = 1;
	l->buf_bytes = l->stride * l->nbufs;
	p = mmap(NULL, l->buf_bytes, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return bench_fail(-errno, "mmap(%zu)", l->buf_bytes);
	l->buf = p;
	memset(l->buf, 0, l->buf_bytes);
	return 0;
}

static void buf_unmap(struct link *l)
{
	if (l->buf)
		munmap(l->buf, l->buf_bytes);
	l->buf = NULL;
}

/*
 * The consumer's check of its copy: both stamps and one byte per page, so
 * that a message lost, repeated, torn or never copied shows.
 */
static int copy_check(const struct link *l, uint64_t seq)
{
	const unsigned char *p = l->buf;
	unsigned char b = (unsigned char)(seq & 0xff);
	uint64_t first, last;
	size_t i;

	memcpy(&first, p, 8);
	memcpy(&last, p + l->size - 8, 8);
	if (first != seq || last != ~seq)
		return bench_fail(-EBADMSG, "%s: message %" PRIu64 " arrived "
				  "with stamps %#" PRIx64 "/%#" PRIx64,
				  l->tp->name, seq, first, last);
	for (i = PAGE / 2; i + 8 < l->size; i += PAGE)
		if (p[i] != b)
			return bench_fail(-EBADMSG, "%s: message %" PRIu64
					  " has byte %#x at %zu", l->tp->name,
					  seq, p[i], i);
	return 0;
}

/* zbus, every flavour ---------------------------------------------------- */

static int zpub_open(struct link *l, struct zbus_channel *ch)
{
	struct zbus_pub_opts po;
	int ret;

	/* Never block in the library: we busy-poll, as zbus-bench does. */
	memset(&po, 0, sizeof(po));
	po.timeout_ms = 0;
	po.flags = ZBUS_PUB_EXCLUSIVE;
	ret = zbus_pub_new(ch, &po, &l->pub);
	if (ret < 0)
		return bench_zfail(ret, "zbus_pub_new");
	return 0;
}

static int zsub_open(struct link *l, struct zbus_conn *conn)
{
	struct zbus_sub_opts so;
	int ret;

	memset(&so, 0, sizeof(so));
	so.policy = ZBUS_RELIABLE;
	so.conn = conn;
	ret = zbus_sub_new(l->ch, &so, &l->sub);
	if (ret < 0)
		return bench_zfail(ret, "zbus_sub_new");
	return 0;
}

static int zchannel_create(struct link *l, uint32_t max_msg, uint32_t ring,
			   uint64_t arena)
{
	struct zbus_channel_opts opts;
	int ret;

	memset(&opts, 0, sizeof(opts));
	opts.max_msg_size = max_msg;
	opts.ring_capacity = ring;
	opts.arena_bytes = arena;
	ret = zbus_channel_create("zbus-bench-large", &opts, &l->ch);
	if (ret < 0)
		return bench_zfail(ret, "zbus_channel_create(max_msg_size %u, "
				   "ring %u, arena %" PRIu64 ")", max_msg,
				   ring, arena);
	l->own = true;
	return 0;
}

/*
 * The child maps the channel from its memfds as any other process would,
 * instead of using the inherited mapping; the producer keeps its own.
 */
static int zlink_open(struct link *l)
{
	struct zbus_channel *ch;
	int ret;

	if (l->role == ROLE_TX)
		return zpub_open(l, l->ch);
	ret = zbus_channel_attach_dup(zbus_channel_fd(l->ch),
				      zbus_channel_state_fd(l->ch), &ch);
	if (ret < 0)
		return bench_zfail(ret, "zbus_channel_attach_dup");
	zbus_channel_free(l->ch);
	l->ch = ch;
	return zsub_open(l, NULL);
}

static void zlink_close(struct link *l)
{
	l->sub = zbus_sub_free(l->sub);
	l->pub = zbus_pub_free(l->pub);
	if (l->own) {
		l->ch = zbus_channel_free(l->ch);
		l->conn = zbus_conn_free(l->conn);
	}
	buf_unmap(l);
}

/* Receive the next message, checking that it is @seq's size and kind. */
static int zrecv_one(struct link *l, struct zbus_msg *m, uint32_t flags)
{
	int ret;

	BENCH_SPIN(ret, zbus_sub_recv_batch(l->sub, m, 1, 0),
		   "zbus_sub_recv_batch");
	if (ret < 0)
		return bench_zfail(ret, "zbus_sub_recv_batch");
	if (m->size != l->size || (m->flags & ZBUS_MSG_REF) != flags)
		return bench_fail(-EBADMSG, "%s: message of %zu bytes, flags "
				  "%#x, expected %zu bytes", l->tp->name,
				  m->size, m->flags, l->size);
	return 0;
}

static int zrelease(struct link *l)
{
	int ret = zbus_sub_release(l->sub);

	return ret < 0 ? bench_zfail(ret, "zbus_sub_release") : 0;
}

/* pull, pull-broker ------------------------------------------------------ */

/* Only the record travels through the ring: a small channel does. */
static int pull_create(struct link *l)
{
	return zchannel_create(l, 4096, 8, 0);
}

/*
 * Both sides have buffers: the consumer one for its copy, the producer
 * PRODUCER_BUFS payloads it cycles through, so that it writes the next
 * message while the consumer pulls the last one (double buffering, as a
 * producer after throughput would).
 */
static int pull_open(struct link *l)
{
	int ret = zlink_open(l);

	l->nbufs = l->role == ROLE_TX ? PRODUCER_BUFS : 1;
	return ret < 0 ? ret : buf_map(l);
}

static unsigned char *payload_buf(const struct link *l, uint64_t seq)
{
	return l->buf + (seq % l->nbufs) * l->stride;
}

static int pull_send(struct link *l, uint64_t seq)
{
	unsigned char *buf = payload_buf(l, seq);
	int ret;

	/* The buffer is the consumer's until it is done with the message
	 * that last used it (zbus seqs are ours: one publisher, from 0). */
	if (seq >= l->nbufs) {
		BENCH_SPIN(ret, zbus_pub_ref_wait(l->pub, l->zseq[seq %
							  l->nbufs], 0),
			   "zbus_pub_ref_wait");
		if (ret < 0)
			return bench_zfail(ret, "zbus_pub_ref_wait");
	}
	bench_payload_fill(buf, l->size, seq);
	BENCH_SPIN(ret, zbus_pub_send_ref(l->pub, buf, l->size,
					  &l->zseq[seq % l->nbufs]),
		   "zbus_pub_send_ref");
	if (ret < 0)
		return bench_zfail(ret, "zbus_pub_send_ref(%zu)", l->size);
	return 0;
}

static int pull_recv(struct link *l, uint64_t seq)
{
	struct zbus_msg m;
	ssize_t n;
	int ret;

	ret = zrecv_one(l, &m, ZBUS_MSG_REF);
	if (ret < 0)
		return ret;
	n = zbus_sub_pull(l->sub, &m, 0, l->buf, l->size);
	if (n < 0)
		return bench_zfail((int)n, "%s: zbus_sub_pull(%zu)",
				   l->tp->name, l->size);
	if ((size_t)n != l->size)
		return bench_fail(-EPROTO, "%s: zbus_sub_pull copied %zd of "
				  "%zu bytes", l->tp->name, n, l->size);
	ret = zrelease(l);
	return ret < 0 ? ret : copy_check(l, seq);
}

static struct zbus_conn_opts broker_opts(void)
{
	/* No keeper thread: nothing here outlives its broker. */
	return (struct zbus_conn_opts){
		.socket_path = g_broker.sock,
		.flags = ZBUS_CONN_NO_AUTOSTART | ZBUS_CONN_NO_RECONNECT,
	};
}

/* Show what the broker said before it failed. */
static void broker_log_tail(void)
{
	char tail[1024];
	size_t n;
	FILE *f = fopen(g_broker.log, "re");

	if (!f)
		return;
	if (fseek(f, -(long)sizeof(tail) + 1, SEEK_END) < 0)
		rewind(f);
	n = fread(tail, 1, sizeof(tail) - 1, f);
	tail[n] = '\0';
	fclose(f);
	if (n)
		fprintf(stderr, "%s: zbusd's log ends with:\n%s", bench_prog,
			tail);
}

static void broker_stop(void)
{
	char path[192];

	if (g_broker.pid > 0) {
		kill(g_broker.pid, SIGTERM);
		while (waitpid(g_broker.pid, NULL, 0) < 0 && errno == EINTR)
			;
		g_broker.pid = -1;
	}
	if (!g_broker.dir[0])
		return;
	if (g_broker.failed)
		broker_log_tail();
	unlink(g_broker.log);
	unlink(g_broker.sock);
	snprintf(path, sizeof(path), "%s.lock", g_broker.sock);
	unlink(path);
	snprintf(path, sizeof(path), "%s.state", g_broker.sock);
	unlink(path);
	rmdir(g_broker.dir);
	g_broker.dir[0] = '\0';
}

/*
 * A zbusd on a socket in a directory of its own, which the consumer (of
 * another user) can reach; ready once a connection succeeds.
 */
static int broker_start(void)
{
	struct zbus_conn_opts co;
	struct zbus_conn *c;
	int i, ret = 0;

	if (g_broker.pid > 0)
		return 0;
	snprintf(g_broker.dir, sizeof(g_broker.dir),
		 "/tmp/zbus-bench-large.XXXXXX");
	if (!mkdtemp(g_broker.dir)) {
		g_broker.dir[0] = '\0';
		return bench_fail(-errno, "mkdtemp");
	}
	if (chmod(g_broker.dir, 0755) < 0)
		return bench_fail(-errno, "chmod(%s)", g_broker.dir);
	snprintf(g_broker.sock, sizeof(g_broker.sock), "%s/zbusd.sock",
		 g_broker.dir);
	snprintf(g_broker.log, sizeof(g_broker.log), "%s/zbusd.log",
		 g_broker.dir);
	fflush(stdout);
	fflush(stderr);
	g_broker.pid = fork();
	if (g_broker.pid < 0)
		return bench_fail(-errno, "fork");
	if (g_broker.pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (cfg.cpus.pin)
			bench_pin_cpu(cfg.cpus.cpu[1]);
		if (!freopen(g_broker.log, "a", stderr))
			_exit(126);
		execl(cfg.zbusd, "zbusd", "--socket", g_broker.sock,
		      (char *)NULL);
		_exit(127);
	}
	co = broker_opts();
	for (i = 0; i < 500; i++) {
		ret = zbus_conn_open(&co, &c);
		if (ret == 0) {
			zbus_conn_free(c);
			return 0;
		}
		if (waitpid(g_broker.pid, NULL, WNOHANG) == g_broker.pid) {
			g_broker.pid = -1;
			break;
		}
		usleep(10000);
	}
	g_broker.failed = true;
	return bench_zfail(ret, "%s did not start on %s", cfg.zbusd,
			   g_broker.sock);
}

/*
 * The producer's side is made before fork(): a connection, the channel
 * made through it (others may subscribe: 0644) and the publisher,
 * registered so that the broker may pull what it published.
 */
/*
 * The producer's connection to the bench's zbusd (started at first use)
 * and a channel made through it with @cp, under a name of its own.
 */
static int broker_channel(struct link *l, const struct zbus_channel_params *cp)
{
	static unsigned int n;
	struct zbus_conn_opts co;
	int ret;

	ret = broker_start();
	if (ret < 0)
		return ret;
	co = broker_opts();
	ret = zbus_conn_open(&co, &l->conn);
	if (ret < 0)
		return bench_zfail(ret, "zbus_conn_open(%s)", g_broker.sock);
	l->own = true;
	snprintf(l->name, sizeof(l->name), "bench-large-%d-%u", (int)getpid(),
		 n++);
	ret = zbus_conn_create(l->conn, l->name, cp, &l->ch);
	if (ret < 0)
		return bench_zfail(ret, "zbus_conn_create(%s): %s", l->name,
				   zbus_conn_error(l->conn));
	return 0;
}

static int broker_create(struct link *l)
{
	struct zbus_channel_params cp;
	int ret;

	memset(&cp, 0, sizeof(cp));
	cp.geometry.max_msg_size = 4096;
	cp.geometry.ring_capacity = 8;
	cp.mode = 0644;
	ret = broker_channel(l, &cp);
	if (ret < 0)
		return ret;
	ret = zpub_open(l, l->ch);
	if (ret < 0)
		return ret;
	ret = zbus_conn_register_pub(l->conn, l->name, l->pub);
	if (ret < 0)
		return bench_zfail(ret, "zbus_conn_register_pub: %s",
				   zbus_conn_error(l->conn));
	return 0;
}

static int become_nobody(const struct link *l)
{
	if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 ||
	    setuid(NOBODY) < 0)
		return bench_fail(-errno, "setuid(%d)", NOBODY);
	/*
	 * A change of uid clears the parent-death signal: set it again, or
	 * a consumer could outlive us. Not dumpable now, which the broker
	 * (root) does not mind when it writes into us.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != l->producer)
		return bench_fail(-ESRCH, "the producer went away");
	return 0;
}

static int broker_open(struct link *l)
{
	struct zbus_conn_opts co;
	int ret;

	if (l->role == ROLE_TX)
		return buf_map(l);
	/* The parent's objects are a copy here: leave them alone. */
	l->own = false;
	l->pub = NULL;
	ret = become_nobody(l);
	if (ret < 0)
		return ret;
	co = broker_opts();
	ret = zbus_conn_open(&co, &l->conn);
	if (ret < 0)
		return bench_zfail(ret, "zbus_conn_open as uid %d", NOBODY);
	l->own = true;
	l->ch = NULL;
	ret = zbus_conn_open_channel(l->conn, l->name, ZBUS_ACCESS_SUBSCRIBE,
				     &l->ch);
	if (ret < 0)
		return bench_zfail(ret, "zbus_conn_open_channel(%s): %s",
				   l->name, zbus_conn_error(l->conn));
	ret = zsub_open(l, l->conn);
	return ret < 0 ? ret : buf_map(l);
}

/* The publisher, then the channel's name, then the mapping and the
 * connection (zlink_close() frees the subscription before it). */
static void broker_close(struct link *l)
{
	l->pub = zbus_pub_free(l->pub);
	if (l->role == ROLE_TX && l->own && l->conn && l->name[0])
		zbus_conn_delete(l->conn, l->name);
	zlink_close(l);
}

/* loan ------------------------------------------------------------------- */

static uint64_t pow2_ceil(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p *= 2;
	return p;
}

/* As the library sizes it: a power of two of at least two messages. */
static uint64_t loan_arena(size_t size)
{
	uint64_t two = 2 * bench_round_up(size, CACHE_LINE);

	return pow2_ceil(two > LOAN_MIN_ARENA ? two : LOAN_MIN_ARENA);
}

static int loan_create(struct link *l)
{
	uint64_t ring = pow2_ceil(l->arena / l->size);

	return zchannel_create(l, (uint32_t)l->size,
			       (uint32_t)(ring < 2 ? 2 : ring), l->arena);
}

static int loan_open(struct link *l)
{
	int ret = zlink_open(l);

	/* The producer writes into the loan: no buffer of its own. */
	if (!ret && l->role == ROLE_RX)
		ret = buf_map(l);
	return ret;
}

static int loan_send(struct link *l, uint64_t seq)
{
	return bench_loan_send(l->pub, l->size, seq);
}

/* One message at a time, released at once: the producer gets its room
 * back as soon as it can. */
static int loan_recv(struct link *l, uint64_t seq)
{
	struct zbus_msg m;
	int ret;

	ret = zrecv_one(l, &m, 0);
	if (ret < 0)
		return ret;
	memcpy(l->buf, m.data, l->size);
	ret = zrelease(l);
	return ret < 0 ? ret : copy_check(l, seq);
}

/* deliver ---------------------------------------------------------------- */

/* The delivery ring for @size: two messages and their headers. */
static uint64_t deliver_ring(size_t size)
{
	uint64_t two = 2 * (bench_round_up(size, 64) + 64);

	return pow2_ceil(two > (1u << 20) ? two : (1u << 20));
}

/* As loan's channel, made through the broker: the producer loans in it. */
static int deliver_create(struct link *l)
{
	struct zbus_channel_params cp;
	uint64_t ring = pow2_ceil(l->arena / l->size);
	int ret;

	memset(&cp, 0, sizeof(cp));
	cp.geometry.max_msg_size = (uint32_t)l->size;
	cp.geometry.ring_capacity = (uint32_t)(ring < 2 ? 2 : ring);
	cp.geometry.arena_bytes = l->arena;
	ret = broker_channel(l, &cp);
	return ret < 0 ? ret : zpub_open(l, l->ch);
}

/* The consumer asks the broker to deliver (it could map the channel). */
static int deliver_open(struct link *l)
{
	struct zbus_sub_opts so = { .policy = ZBUS_RELIABLE };
	struct zbus_conn_opts co;
	int ret;

	if (l->role == ROLE_TX)
		return 0; /* it writes into its loans */
	l->own = false;
	l->pub = NULL;
	co = broker_opts();
	ret = zbus_conn_open(&co, &l->conn);
	if (ret < 0)
		return bench_zfail(ret, "zbus_conn_open");
	l->own = true;
	l->ch = NULL;
	so.rx_bytes = (uint32_t)deliver_ring(l->size);
	ret = zbus_conn_subscribe(l->conn, l->name, &so,
				  ZBUS_SUBSCRIBE_DELIVERED, &l->sub);
	if (ret < 0)
		return bench_zfail(ret, "zbus_conn_subscribe(%s): %s", l->name,
				   zbus_conn_error(l->conn));
	return buf_map(l);
}

/*
 * Sleeps in its receive: the broker copying for it runs on its CPU, and a
 * consumer spinning there would take the CPU from the copy it waits for.
 */
static int deliver_recv(struct link *l, uint64_t seq)
{
	struct zbus_msg m;
	int ret;

	do
		ret = zbus_sub_recv_batch(l->sub, &m, 1, 100);
	while (ret == -ETIMEDOUT && !bench_stop_requested());
	if (ret < 0)
		return bench_zfail(ret, "deliver: zbus_sub_recv_batch");
	if (m.size != l->size)
		return bench_fail(-EBADMSG, "deliver: message of %zu bytes, "
				  "expected %zu", m.size, l->size);
	memcpy(l->buf, m.data, l->size);
	ret = zrelease(l);
	return ret < 0 ? ret : copy_check(l, seq);
}

/* unix ------------------------------------------------------------------- */

static int unix_create(struct link *l)
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, l->fd) < 0)
		return bench_fail(-errno, "socketpair");
	return 0;
}

static int unix_open(struct link *l)
{
	int unused = l->role == ROLE_TX ? 0 : 1;

	/* Drop the other end: a dead peer reads as EOF or EPIPE, not a hang. */
	close(l->fd[unused]);
	l->fd[unused] = -1;
	return buf_map(l);
}

static void unix_close(struct link *l)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (l->fd[i] >= 0)
			close(l->fd[i]);
		l->fd[i] = -1;
	}
	buf_unmap(l);
}

static int unix_send(struct link *l, uint64_t seq)
{
	bench_payload_fill(l->buf, l->size, seq);
	return bench_write_full(l->fd[1], l->buf, l->size, "unix");
}

static int unix_recv(struct link *l, uint64_t seq)
{
	int ret = bench_read_full(l->fd[0], l->buf, l->size, "unix");

	return ret < 0 ? ret : copy_check(l, seq);
}

/* readv ------------------------------------------------------------------ */

static int readv_create(struct link *l)
{
	void *p;

	/* MAP_SHARED before fork(): both processes see the same page. */
	p = mmap(NULL, sizeof(*l->shake), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return bench_fail(-errno, "mmap");
	l->shake = p;
	/* Atomics shared between processes must be lock-free. */
	if (!atomic_is_lock_free(&l->shake->prod_posted))
		return bench_fail(-ENOTSUP, "readv: 64-bit atomics are not "
				  "lock-free");
	atomic_init(&l->shake->prod_posted, 0);
	atomic_init(&l->shake->prod_addr, 0);
	atomic_init(&l->shake->prod_stride, 0);
	atomic_init(&l->shake->cons_done, 0);
	return 0;
}

static int readv_open(struct link *l)
{
	int ret;

	l->nbufs = l->role == ROLE_TX ? PRODUCER_BUFS : 1;
	ret = buf_map(l);
	/* Read by the consumer after it sees prod_posted (acquire). */
	if (!ret && l->role == ROLE_TX) {
		atomic_store_explicit(&l->shake->prod_addr,
				      (uint64_t)(uintptr_t)l->buf,
				      memory_order_relaxed);
		atomic_store_explicit(&l->shake->prod_stride, l->stride,
				      memory_order_relaxed);
	}
	return ret;
}

static void readv_close(struct link *l)
{
	if (l->shake)
		munmap(l->shake, sizeof(*l->shake));
	l->shake = NULL;
	buf_unmap(l);
}

/* Has word @w reached @want? Acquire pairs with its writer's release. */
static int shake_reached(_Atomic uint64_t *w, uint64_t want)
{
	return atomic_load_explicit(w, memory_order_acquire) >= want ?
		       0 : -EAGAIN;
}

static int readv_send(struct link *l, uint64_t seq)
{
	int ret = 0;

	/* As pull: the buffer is free once the consumer is done with the
	 * message that last used it. */
	if (seq >= l->nbufs)
		BENCH_SPIN(ret, shake_reached(&l->shake->cons_done,
					      seq - l->nbufs + 1),
			   "readv: waiting for the consumer");
	if (ret < 0)
		return ret;
	bench_payload_fill(payload_buf(l, seq), l->size, seq);
	/* Release pairs with the acquire in readv_recv(): the payload (and
	 * prod_addr) are written before the consumer reads them. */
	atomic_store_explicit(&l->shake->prod_posted, seq + 1,
			      memory_order_release);
	return 0;
}

/* A bare process_vm_readv(), looping only on short counts. */
static int readv_copy(struct link *l, uint64_t addr)
{
	size_t done = 0;
	ssize_t n;

	while (done < l->size) {
		struct iovec lo = { l->buf + done, l->size - done };
		struct iovec re = { (void *)(uintptr_t)(addr + done),
				    l->size - done };

		n = process_vm_readv(l->producer, &lo, 1, &re, 1, 0);
		if (n < 0)
			return bench_fail(-errno, "process_vm_readv");
		if (n == 0)
			return bench_fail(-EFAULT, "process_vm_readv: 0 bytes");
		done += (size_t)n;
	}
	return 0;
}

static int readv_recv(struct link *l, uint64_t seq)
{
	uint64_t addr;
	int ret;

	BENCH_SPIN(ret, shake_reached(&l->shake->prod_posted, seq + 1),
		   "readv: waiting for the producer");
	if (ret < 0)
		return ret;
	addr = atomic_load_explicit(&l->shake->prod_addr,
				    memory_order_relaxed) +
	       (seq % PRODUCER_BUFS) *
		       atomic_load_explicit(&l->shake->prod_stride,
					    memory_order_relaxed);
	ret = readv_copy(l, addr);
	if (ret < 0)
		return ret;
	/* Release pairs with the acquire in readv_send(): we are done
	 * reading the buffer before the producer rewrites it. */
	atomic_store_explicit(&l->shake->cons_done, seq + 1,
			      memory_order_release);
	return copy_check(l, seq);
}

static const char *plain_skip(size_t size, char *why, size_t len);
static const char *broker_skip(size_t size, char *why, size_t len);
static const char *loan_skip(size_t size, char *why, size_t len);
static const char *deliver_skip(size_t size, char *why, size_t len);

static const struct transport transports[] = {
	{
		.name = "pull", .skip = plain_skip,
		.create = pull_create, .open = pull_open,
		.send = pull_send, .recv = pull_recv, .close = zlink_close,
	},
	{
		.name = "pull-broker", .skip = broker_skip,
		.create = broker_create, .open = broker_open,
		.send = pull_send, .recv = pull_recv, .close = broker_close,
	},
	{
		.name = "loan", .skip = loan_skip,
		.create = loan_create, .open = loan_open,
		.send = loan_send, .recv = loan_recv, .close = zlink_close,
	},
	{
		.name = "unix", .skip = plain_skip,
		.create = unix_create, .open = unix_open,
		.send = unix_send, .recv = unix_recv, .close = unix_close,
	},
	{
		.name = "readv", .skip = plain_skip,
		.create = readv_create, .open = readv_open,
		.send = readv_send, .recv = readv_recv, .close = readv_close,
	},
	{
		.name = "deliver", .skip = deliver_skip,
		.create = deliver_create, .open = deliver_open,
		.send = loan_send, .recv = deliver_recv, .close = broker_close,
	},
};

#define N_TRANSPORTS (sizeof(transports) / sizeof(transports[0]))
enum { T_PULL, T_BROKER, T_LOAN, T_UNIX, T_READV, T_DELIVER };

/* What a cell maps: a private buffer on each side, except that loan's
 * producer writes into the arena instead. */
static uint64_t cell_bytes(const struct transport *tp, size_t size)
{
	uint64_t buf = bench_round_up(size, PAGE);

	if (tp == &transports[T_LOAN])
		return loan_arena(size) + buf;
	if (tp == &transports[T_DELIVER])
		return loan_arena(size) + deliver_ring(size) + buf;
	if (tp == &transports[T_UNIX])
		return 2 * buf;
	return (PRODUCER_BUFS + 1) * buf;
}

static const char *budget_skip(const struct transport *tp, size_t size,
			       char *why, size_t len)
{
	uint64_t need = cell_bytes(tp, size);

	if (need <= cfg.budget)
		return NULL;
	snprintf(why, len, "needs %" PRIu64 " MiB, over the memory budget "
		 "of %" PRIu64 " MiB (half of MemAvailable)", need / MiB,
		 cfg.budget / MiB);
	return why;
}

static const char *plain_skip(size_t size, char *why, size_t len)
{
	return budget_skip(&transports[T_PULL], size, why, len);
}

static const char *loan_skip(size_t size, char *why, size_t len)
{
	return budget_skip(&transports[T_LOAN], size, why, len);
}

static const char *deliver_skip(size_t size, char *why, size_t len)
{
	if (access(cfg.zbusd, X_OK) < 0) {
		snprintf(why, len, "no zbusd at %s (--zbusd PATH or "
			 "$ZBUS_BROKER)", cfg.zbusd);
		return why;
	}
	if (deliver_ring(size) > (1u << 30))
		return "a delivery ring holds at most 1 GiB: two messages";
	return budget_skip(&transports[T_DELIVER], size, why, len);
}

static const char *broker_skip(size_t size, char *why, size_t len)
{
	if (geteuid() != 0)
		return "needs root: its consumer runs as another user";
	if (access(cfg.zbusd, X_OK) < 0) {
		snprintf(why, len, "no zbusd at %s (--zbusd PATH or "
			 "$ZBUS_BROKER)", cfg.zbusd);
		return why;
	}
	return budget_skip(&transports[T_BROKER], size, why, len);
}

/* ------------------------------------------------------------------------ */
/* Cells: one (transport, size), its processes and its repetitions          */
/* ------------------------------------------------------------------------ */

/*
 * struct cell - @msgs messages a repetition, @warmup in the untimed round
 * first; rep r (0: the untimed round) runs from t_start[r], taken by the
 * producer, to t_end[r], taken by the consumer.
 */
struct cell {
	const struct transport *tp;
	size_t size;
	uint64_t msgs;
	uint64_t warmup;
	unsigned int reps;
	unsigned int timeout_s;
	struct link link;
	struct bench_peer peer;
};

/* What the consumer tells the producer; shared, zeroed before each fork. */
struct shared_block {
	uint64_t t_end[MAX_REPS + 1];
};

static struct shared_block *g_shared;

/*
 * Counts: a repetition moves max(2 messages, 256 MiB), so that the default
 * run (4 sizes, 3 rounds of 5 repetitions) takes about a minute here;
 * --quick moves 4 MiB.
 */
static void cell_init(struct cell *c, const struct transport *tp,
		      size_t size)
{
	uint64_t bytes;

	memset(c, 0, sizeof(*c));
	c->tp = tp;
	c->size = size;
	c->msgs = cfg.rep_bytes / size;
	if (c->msgs < 2)
		c->msgs = 2;
	c->warmup = c->msgs;
	c->link.tp = tp;
	c->link.size = size;
	c->link.fd[0] = c->link.fd[1] = -1;
	c->link.producer = getpid();
	c->peer.pid = -1;
	c->peer.sync_fd = -1;
	if (tp == &transports[T_LOAN]) {
		c->link.arena = loan_arena(size);
		/* Every byte of the arena touched before any timing. */
		if (c->warmup < c->link.arena / size + 1)
			c->warmup = c->link.arena / size + 1;
	}
	c->reps = cfg.reps;
	/* Generous: 64 MiB/s would be 50× slower than any transport here;
	 * first touch costs about 1 s per 256 MiB on this VM. */
	bytes = (c->warmup + (uint64_t)c->reps * c->msgs) * size;
	c->timeout_s = (cfg.quick ? 20 : 60) + (unsigned int)(bytes >> 26) +
		       (unsigned int)(cell_bytes(tp, size) >> 26);
}

static void cell_child_close(void *arg)
{
	struct cell *c = arg;

	c->link.tp->close(&c->link);
}

static int cell_child(struct bench_peer *p, void *arg)
{
	struct cell *c = arg;
	struct link *l = &c->link;
	uint64_t seq = 0, i;
	unsigned int r;
	int ret;

	l->role = ROLE_RX;
	ret = l->tp->open(l);
	/* Subscribed, faulted in: nothing sent from now on is missed. */
	if (!ret)
		ret = bench_peer_notify(p);
	for (r = 0; !ret && r <= c->reps; r++) {
		uint64_t n = r ? c->msgs : c->warmup;

		for (i = 0; !ret && i < n; i++)
			ret = l->tp->recv(l, seq++);
		if (!ret) {
			g_shared->t_end[r] = bench_now_ns();
			ret = bench_peer_notify(p);
		}
	}
	return ret;
}

/* Run @c; @secs receives the time of each timed repetition. */
static int cell_run(struct cell *c, double *secs)
{
	struct link *l = &c->link;
	uint64_t seq = 0, i, t0;
	unsigned int r;
	int ret;

	ret = l->tp->create(l);
	if (!ret) {
		memset(g_shared, 0, sizeof(*g_shared));
		ret = bench_peer_start(&c->peer, c->timeout_s,
				       bench_consumer_cpu(&cfg.cpus),
				       cell_child, cell_child_close, c);
	}
	if (!ret) {
		l->role = ROLE_TX;
		ret = l->tp->open(l);
	}
	if (!ret)
		ret = bench_peer_wait(&c->peer, "waiting for the consumer");
	for (r = 0; !ret && r <= c->reps; r++) {
		uint64_t n = r ? c->msgs : c->warmup;

		t0 = bench_now_ns();
		for (i = 0; !ret && i < n; i++)
			ret = l->tp->send(l, seq++);
		/* The next one starts with nothing in flight. */
		if (!ret)
			ret = bench_peer_wait(&c->peer, "waiting for the "
					      "consumer to finish");
		if (!ret && g_shared->t_end[r] <= t0)
			ret = bench_fail(-EPROTO, "consumer finished at %"
					 PRIu64 " before the producer started "
					 "at %" PRIu64, g_shared->t_end[r],
					 t0);
		if (!ret && r)
			secs[r - 1] = (double)(g_shared->t_end[r] - t0) / 1e9;
	}
	if (c->peer.sync_fd >= 0 || c->peer.pid > 0)
		ret = bench_peer_end(&c->peer, ret);
	l->role = ROLE_TX;
	l->tp->close(l);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Results and output                                                       */
/* ------------------------------------------------------------------------ */

struct result {
	bool done;
	const char *skipped;		/* why not, when not done */
	char why[160];
	double median_gbs, p90_gbs;
	uint64_t msgs;
	unsigned int reps;
};

static struct result results[N_TRANSPORTS][MAX_SIZES];

/* Every timed repetition of every round, per (transport, size). */
static double *samples[N_TRANSPORTS][MAX_SIZES];
static unsigned int nsamples[N_TRANSPORTS][MAX_SIZES];

static void print_header(void)
{
	char sizes[160] = "", s[32];
	unsigned int i;

	bench_print_machine(stdout, cfg.cpus.ncpu);
	if (cfg.cpus.pin)
		printf("pinning: producer on CPU %d, consumer (and zbusd) on "
		       "CPU %d\n", cfg.cpus.cpu[0], cfg.cpus.cpu[1]);
	else
		printf("pinning: off (only 1 CPU available)\n");
	for (i = 0; i < cfg.nsizes; i++) {
		bench_size_label(s, sizeof(s), cfg.sizes[i]);
		snprintf(sizes + strlen(sizes), sizeof(sizes) - strlen(sizes),
			 "%s%s", i ? " " : "", s);
	}
	printf("payload: written in full by the producer before each "
	       "message; copied in full into\n  the consumer's own buffer "
	       "(loan: memcpy out of the ring) and checked; all timed\n");
	printf("each cell: %u timed reps of max(2 msgs, %" PRIu64 " MiB) "
	       "after one untimed round; sizes %s\n", cfg.reps,
	       cfg.rep_bytes / MiB, sizes);
	printf("rounds: %u, each running every cell once, transports in a "
	       "rotated order;\n  a cell's median and p90 pool the reps of "
	       "all rounds\n", cfg.rounds);
	printf("memory budget per cell: %" PRIu64 " MiB (half of "
	       "MemAvailable)\n", cfg.budget / MiB);
	printf("\n%-12s %7s %12s %10s %9s %5s\n", "transport", "size",
	       "median GB/s", "p90 GB/s", "msgs/rep", "reps");
	fflush(stdout);
}

static void print_result(const struct transport *tp, size_t size,
			 const struct result *res)
{
	char label[32];

	bench_size_label(label, sizeof(label), size);
	if (cfg.json) {
		if (res->done)
			printf("{\"scenario\":\"large\",\"transport\":\"%s\","
			       "\"size\":%zu,\"gbytes_per_s\":%.4f,"
			       "\"gbytes_per_s_p90\":%.4f,\"reps\":%u,"
			       "\"msgs_per_rep\":%" PRIu64 ",\"pinned\":%s}\n",
			       tp->name, size, res->median_gbs, res->p90_gbs,
			       res->reps, res->msgs,
			       cfg.cpus.pin ? "true" : "false");
		else
			printf("{\"scenario\":\"large\",\"transport\":\"%s\","
			       "\"size\":%zu,\"gbytes_per_s\":null,"
			       "\"gbytes_per_s_p90\":null,\"skipped\":\"%s\"}"
			       "\n", tp->name, size, res->skipped);
	} else if (res->done) {
		printf("%-12s %7s %12.3f %10.3f %9" PRIu64 " %5u\n", tp->name,
		       label, res->median_gbs, res->p90_gbs, res->msgs,
		       res->reps);
	} else {
		printf("%-12s %7s   skipped: %s\n", tp->name, label,
		       res->skipped);
	}
	fflush(stdout);
}

/* Ratio of two transports' medians at size index @si, or NAN. */
static double ratio(unsigned int a, unsigned int b, unsigned int si)
{
	const struct result *x = &results[a][si], *y = &results[b][si];

	if (!x->done || !y->done || y->median_gbs <= 0)
		return NAN;
	return x->median_gbs / y->median_gbs;
}

static void print_ratio(const char *name, unsigned int a, unsigned int b,
			unsigned int si, double target)
{
	double v = ratio(a, b, si);
	char label[32];

	bench_size_label(label, sizeof(label), cfg.sizes[si]);
	if (cfg.json) {
		printf("{\"scenario\":\"large\",\"ratio\":\"%s\",\"size\":%zu,",
		       name, cfg.sizes[si]);
		if (isnan(v))
			printf("\"value\":null,");
		else
			printf("\"value\":%.4f,", v);
		if (target > 0)
			printf("\"target\":%.2f,\"met\":%s}\n", target,
			       isnan(v) ? "null" : v >= target ? "true" :
							       "false");
		else
			printf("\"target\":null}\n");
	} else if (isnan(v)) {
		printf("  %-18s %7s  -  (not measured)\n", name, label);
	} else if (target > 0) {
		printf("  %-18s %7s %7.3fx  target >= %.1fx: %s\n", name,
		       label, v, target, v >= target ? "met" : "MISSED");
	} else {
		printf("  %-18s %7s %7.3fx\n", name, label, v);
	}
}

/*
 * Where loan stops beating pull: the first measured size at which
 * loan/pull is no longer above 1, interpolated against the size before it
 * on log(size) and log(ratio).
 */
static void print_crossover(void)
{
	double x[MAX_SIZES], r[MAX_SIZES], at = NAN;
	char lo[32], hi[32], msg[256];
	unsigned int si, n = 0, k;

	for (si = 0; si < cfg.nsizes; si++) {
		r[n] = ratio(T_LOAN, T_PULL, si);
		x[n] = (double)cfg.sizes[si];
		if (!isnan(r[n]))
			n++;
	}
	for (k = 0; k < n && r[k] > 1; k++)
		;
	if (!n) {
		snprintf(msg, sizeof(msg), "not measured (needs loan and "
			 "pull at one size at least)");
	} else if (k == n) {
		bench_size_label(hi, sizeof(hi), (size_t)x[n - 1]);
		snprintf(msg, sizeof(msg), "loan (the ring) wins at all "
			 "measured sizes up to %s", hi);
	} else if (k == 0) {
		bench_size_label(lo, sizeof(lo), (size_t)x[0]);
		snprintf(msg, sizeof(msg), "pull wins already at the "
			 "smallest measured size, %s (loan/pull %.2fx)", lo,
			 r[0]);
	} else {
		at = exp2(log2(x[k - 1]) + log2(x[k] / x[k - 1]) *
					   log(r[k - 1]) /
					   (log(r[k - 1]) - log(r[k])));
		bench_size_label(lo, sizeof(lo), (size_t)x[k - 1]);
		bench_size_label(hi, sizeof(hi), (size_t)x[k]);
		snprintf(msg, sizeof(msg), "loan beats pull below ~%.1f MiB "
			 "(loan/pull %.2fx at %s, %.2fx at %s; interpolated "
			 "on log scales)", at / (double)MiB, r[k - 1], lo,
			 r[k], hi);
	}
	/* Noise or a real second crossing: either way, say so. */
	while (++k < n && r[k] <= 1)
		;
	if (k < n) {
		bench_size_label(hi, sizeof(hi), (size_t)x[k]);
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg),
			 "; but loan wins again at %s (%.2fx)", hi, r[k]);
	}
	if (cfg.json) {
		printf("{\"scenario\":\"large\",\"crossover\":\"loan beats "
		       "pull below\",");
		if (isnan(at))
			printf("\"bytes\":null,");
		else
			printf("\"bytes\":%.0f,", at);
		printf("\"note\":\"%s\"}\n", msg);
	} else {
		printf("\ncrossover: %s\n", msg);
	}
}

static void print_summary(void)
{
	bool header = false;
	unsigned int si;

	for (si = 0; si < cfg.nsizes; si++) {
		if (cfg.sizes[si] < MiB)
			continue;
		if (!cfg.json && !header) {
			printf("\nratios of medians, sizes >= 1MiB (issue 4 "
			       "targets):\n");
			header = true;
		}
		print_ratio("pull/readv", T_PULL, T_READV, si, 0.9);
		print_ratio("pull/unix", T_PULL, T_UNIX, si, 3.0);
		print_ratio("pull-broker/pull", T_BROKER, T_PULL, si, 0);
		print_ratio("loan/pull", T_LOAN, T_PULL, si, 0);
		print_ratio("deliver/loan", T_DELIVER, T_LOAN, si, 0);
		print_ratio("deliver/unix", T_DELIVER, T_UNIX, si, 0);
	}
	print_crossover();
}

/* ------------------------------------------------------------------------ */
/* Command line and setup                                                   */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: zbus-bench-large [--json] [--quick] "
		"[--sizes 64k,1M,16M,256M] [--reps R]\n"
		"                        [--rounds N] "
		"[--transport NAME[,NAME...]] [--zbusd PATH]\n"
		"transports: pull, pull-broker, loan, unix, readv, deliver (or all); "
		"sizes take k/M/G\nsuffixes, 64..1G. --reps: per cell and round (default 5); --rounds:\n"
		"times the whole matrix runs, interleaving the transports in "
		"time (default 3).\n--quick: 64k,1M, 1 round of 3 reps "
		"of 4 MiB, for a smoke test.\npull-broker needs root and "
		"zbusd (--zbusd, else $ZBUS_BROKER, else\n%s).\n",
		ZBUS_BROKER_DEFAULT);
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

static const char *transport_name(size_t i)
{
	return transports[i].name;
}

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "quick", no_argument, NULL, 'q' },
		{ "sizes", required_argument, NULL, 'S' },
		{ "reps", required_argument, NULL, 'r' },
		{ "rounds", required_argument, NULL, 'R' },
		{ "transport", required_argument, NULL, 't' },
		{ "zbusd", required_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool reps_set = false, sizes_set = false, rounds_set = false;
	int c, ret = 0;

	cfg.transports = (1u << N_TRANSPORTS) - 1;
	cfg.reps = 5;
	cfg.rounds = 3;
	cfg.zbusd = getenv("ZBUS_BROKER");
	opterr = 0;
	while (!ret && (c = getopt_long(argc, argv, "jqS:r:R:t:z:h", opts,
					NULL)) != -1) {
		switch (c) {
		case 'j':
			cfg.json = true;
			break;
		case 'q':
			cfg.quick = true;
			break;
		case 'S':
			ret = bench_parse_sizes(optarg, cfg.sizes, MAX_SIZES,
						&cfg.nsizes, MIN_SIZE,
						MAX_SIZE);
			sizes_set = true;
			break;
		case 'r':
			ret = bench_parse_uint(optarg, "--reps", 1, MAX_REPS,
					       &cfg.reps);
			reps_set = true;
			break;
		case 'R':
			ret = bench_parse_uint(optarg, "--rounds", 1,
					       MAX_ROUNDS, &cfg.rounds);
			rounds_set = true;
			break;
		case 't':
			ret = bench_parse_names(optarg, transport_name,
						N_TRANSPORTS,
						&cfg.transports);
			break;
		case 'z':
			cfg.zbusd = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			ret = bench_usage_error("bad option '%s'",
						argv[optind - 1]);
			break;
		}
	}
	if (!ret && optind < argc)
		ret = bench_usage_error("unexpected argument '%s'",
					argv[optind]);
	if (!cfg.zbusd || !cfg.zbusd[0])
		cfg.zbusd = ZBUS_BROKER_DEFAULT;
	if (!sizes_set) {
		cfg.sizes[0] = 64 * KiB;
		cfg.sizes[1] = MiB;
		cfg.sizes[2] = 16 * MiB;
		cfg.sizes[3] = 256 * MiB;
		cfg.nsizes = cfg.quick ? 2 : 4;
	}
	/* Ascending: the crossover is looked for from small to large. */
	qsort(cfg.sizes, cfg.nsizes, sizeof(cfg.sizes[0]), cmp_size);
	/* Three keeps a real median while staying a smoke test. */
	if (cfg.quick && !reps_set)
		cfg.reps = 3;
	if (cfg.quick && !rounds_set)
		cfg.rounds = 1;
	cfg.rep_bytes = cfg.quick ? 4 * MiB : 256 * MiB;
	return ret;
}

static uint64_t mem_available(void)
{
	unsigned long long kb = 0;
	char line[128];
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb * KiB;
}

static int setup(void)
{
	int ret = bench_setup(&cfg.cpus);

	if (ret < 0)
		return ret;
	cfg.budget = mem_available() / 2;
	g_shared = bench_map_shared(sizeof(*g_shared));
	return g_shared ? 0 : -ENOMEM;
}

/* One round of (@tp, size @si): its timed reps join the cell's samples. */
static int run_one(const struct transport *tp, unsigned int si)
{
	size_t ti = (size_t)(tp - transports);
	struct result *res = &results[ti][si];
	size_t size = cfg.sizes[si];
	struct cell c;
	int ret;

	if (res->skipped)
		return 0;
	res->skipped = tp->skip(size, res->why, sizeof(res->why));
	if (res->skipped)
		return 0;
	cell_init(&c, tp, size);
	ret = cell_run(&c, samples[ti][si] + nsamples[ti][si]);
	if (ret < 0)
		return ret;
	nsamples[ti][si] += c.reps;
	res->msgs = c.msgs;
	return 0;
}

/* Median and p90 of a cell over all its rounds. */
static void summarize(size_t ti, unsigned int si)
{
	struct result *res = &results[ti][si];
	double *secs = samples[ti][si];
	unsigned int n = nsamples[ti][si];
	double bytes = (double)res->msgs * (double)cfg.sizes[si];

	if (res->skipped || !n)
		return;
	qsort(secs, n, sizeof(*secs), bench_cmp_double);
	res->done = true;
	res->reps = n;
	res->median_gbs = bytes / 1e9 / bench_percentile(secs, n, 0.5);
	res->p90_gbs = bytes / 1e9 / bench_percentile(secs, n, 0.9);
}

/*
 * Round @round: every size, every chosen transport, in an order rotated
 * by one each round, so that no transport always runs right after the
 * same other one, nor always first on a size (the machine is shared and
 * its speed drifts: interleaving spreads the drift over all of them).
 */
static int run_round(unsigned int round)
{
	char label[32];
	unsigned int si;
	size_t k, ti;
	int ret = 0;

	for (si = 0; !ret && si < cfg.nsizes; si++) {
		for (k = 0; !ret && k < N_TRANSPORTS; k++) {
			ti = (k + round) % N_TRANSPORTS;
			if (!(cfg.transports & (1u << ti)))
				continue;
			if (ti == T_BROKER && g_broker.failed)
				continue;
			ret = run_one(&transports[ti], si);
			if (ret < 0) {
				bench_size_label(label, sizeof(label),
						 cfg.sizes[si]);
				fprintf(stderr, "%s: %s %s: %s\n", bench_prog,
					transports[ti].name, label, bench_err);
				if (ti == T_BROKER)
					g_broker.failed = true;
			}
		}
	}
	return ret;
}

static void free_samples(void)
{
	for (size_t ti = 0; ti < N_TRANSPORTS; ti++)
		for (unsigned int si = 0; si < MAX_SIZES; si++)
			free(samples[ti][si]);
}

static int alloc_samples(void)
{
	for (size_t ti = 0; ti < N_TRANSPORTS; ti++)
		for (unsigned int si = 0; si < cfg.nsizes; si++) {
			samples[ti][si] = calloc((size_t)cfg.reps * cfg.rounds,
						 sizeof(double));
			if (!samples[ti][si])
				return -ENOMEM;
		}
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t t0 = bench_now_ns();
	unsigned int si, round;
	size_t ti;
	int ret = 0;

	bench_prog = "zbus-bench-large";
	if (parse_args(argc, argv) < 0)
		return 2;
	if (alloc_samples() < 0) {
		fprintf(stderr, "%s: out of memory\n", bench_prog);
		free_samples();
		return 1;
	}
	if (setup() < 0) {
		fprintf(stderr, "%s: %s\n", bench_prog, bench_err);
		free_samples();
		return 1;
	}
	if (!cfg.json)
		print_header();
	for (round = 0; !ret && round < cfg.rounds; round++)
		ret = run_round(round);
	broker_stop();
	if (ret < 0) {
		free_samples();
		return 1;
	}
	for (si = 0; si < cfg.nsizes; si++)
		for (ti = 0; ti < N_TRANSPORTS; ti++) {
			if (!(cfg.transports & (1u << ti)))
				continue;
			summarize(ti, si);
			print_result(&transports[ti], cfg.sizes[si],
				     &results[ti][si]);
		}
	free_samples();
	print_summary();
	if (!cfg.json)
		printf("\nrun took %.1f s\n",
		       (double)(bench_now_ns() - t0) / 1e9);
	return 0;
}
