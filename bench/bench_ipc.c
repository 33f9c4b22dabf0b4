/* SPDX-License-Identifier: MIT */
/*
 * bench_ipc.c - zbus-bench: libzbus side by side with the IPC it competes with
 *
 * Transports, each moving one message of a fixed size at a time:
 *   zbus       loan, write in place, publish; receive a batch in place,
 *              release; the publisher is exclusive (ZBUS_PUB_EXCLUSIVE)
 *   zbus-mp    the same through the multi-producer claim (16-byte CAS)
 *   zbus-copy  zbus_pub_send() and zbus_sub_recv(): one copy on each side
 *   zbus-block zbus with both sides waiting in the library (a short spin,
 *              then a futex), as a program that must not burn a core would
 *   shm-ring   a bare single-producer single-consumer ring in a shared
 *              mapping, busy-polled: the floor the hardware allows
 *   unix       AF_UNIX stream socketpair
 *   pipe       pipe2()
 *   tcp        TCP over loopback (127.0.0.1), TCP_NODELAY (tp_tcp.c)
 *   mq         POSIX message queue, one message per mq_send() (tp_mq.c);
 *              sizes over the kernel's limits are skipped, with the reason
 *   zmq        ZeroMQ PAIR sockets over ipc://, blocking (tp_zmq.c; a
 *              skipped row when built without libzmq)
 *   iceoryx    Eclipse iceoryx 2.0 through its C binding, zero-copy as zbus:
 *              loan, write in place, publish; take in place, release; its
 *              RouDi daemon is started on a private configuration at first
 *              use and stopped at exit (tp_iceoryx.c; optional at build)
 *
 * Scenarios:
 *   latency     ping-pong over two links (one per direction); one-way latency
 *               is half of each round trip, timed by the initiator
 *   throughput  one-way stream; the clock runs from the producer's first
 *               timed send to the consumer's last receive; CPU time of both
 *               processes per message beside it
 *   fanout      one producer, N consumers (--fan, default 2 and 4), each
 *               receiving every message: messages published per second
 *               and the CPU time of all processes per message
 *   fanin       N producers, one consumer: messages received per second
 *   idle        a consumer waiting a second for a message: the CPU it
 *               burns meanwhile (cpu/msg: ns per second waited)
 *   load        open-loop latency: messages due on a fixed schedule at 10%,
 *               50%, 80%, 95% and 100% of the rate the same consumer
 *               sustained flat out just before, each
 *               latency taken from its due time (no coordinated omission),
 *               in a histogram from ns to minutes (hist.h); p50, p99,
 *               p99.9, max and the consumer's CPU time per message
 *
 * Rules that keep the comparison honest:
 *  - Producer and consumer are separate processes, pinned to two CPUs, so
 *    every byte really crosses between cores as it would between programs.
 *  - Every transport writes the whole payload on the sending side and reads
 *    the whole payload on the receiving side; a zero-copy transport must not
 *    win by touching less memory than the program using it would.
 *  - Every shared-memory side busy-polls with the same pause loop; the socket
 *    and pipe sides block in the kernel, which is how they are used.
 *  - Rings are warmed (every slot touched) before any timed message.
 *  - A peer that dies or hangs fails the run: children have an alarm and
 *    die with their parent, the parent has an alarm too and reaps always.
 *
 * Output: one row per (scenario, transport, size). Latency rows give the
 * p50/p99/p99.9 of one-way latency over "samples" round trips; throughput
 * rows give the median over "reps" runs of "samples" messages each, with
 * the slowest and fastest run as the spread.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zbus/zbus.h>

#include "bench_util.h"
#include "hist.h"
#include "transport.h"
#define MAX_SIZES 16
#define MAX_SIZE (64 * MiB)	/* rings hold several: keep memory sane */
#define MAX_REPS 1000

/* ------------------------------------------------------------------------ */
/* Arithmetic                                                               */
/* ------------------------------------------------------------------------ */

static volatile uint64_t g_sink;		/* keeps payload reads alive */

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static uint64_t pow2_floor(uint64_t v)
{
	uint64_t p = 1;

	while (p <= v / 2)
		p *= 2;
	return p;
}

/* ------------------------------------------------------------------------ */
/* Payload: written in full by every sender, read in full by every receiver */
/* ------------------------------------------------------------------------ */

int bench_payload_check(const void *src, size_t size, uint64_t seq)
{
	const unsigned char *p = src;
	uint64_t sum = 0, w, first, last;
	size_t i;
	bool ok;

	/* Summing every word is the "consumer reads the payload" part. */
	for (i = 0; i + 8 <= size; i += 8) {
		memcpy(&w, p + i, 8);
		sum += w;
	}
	for (; i < size; i++)
		sum += p[i];
	g_sink += sum;

	if (size >= 8) {
		memcpy(&first, p, 8);
		ok = first == seq;
	} else {
		first = p[0];
		ok = first == (seq & 0xff);
	}
	if (size >= 16) {
		memcpy(&last, p + size - 8, 8);
		ok = ok && last == ~seq;
	}
	/* Past 16 bytes the middle byte is neither stamp. */
	if (size > 16)
		ok = ok && p[size / 2] == (unsigned char)(seq & 0xff);
	if (!ok)
		return bench_fail(-EBADMSG,
				  "message %" PRIu64 " arrived with a wrong "
				  "payload (first word %#" PRIx64 ")", seq,
				  first);
	return 0;
}

/* zbus, both flavours ---------------------------------------------------- */

static int zlink_create(struct link *l)
{
	struct zbus_channel_opts opts;
	int ret;

	memset(&opts, 0, sizeof(opts));
	opts.max_msg_size = (uint32_t)l->size;
	opts.ring_capacity = l->geom.ring;
	opts.arena_bytes = l->geom.arena;
	l->z.owner = getpid();
	ret = zbus_channel_create("zbus-bench", &opts, &l->z.ch);
	if (ret < 0)
		return bench_zfail(ret, "zbus_channel_create(max_msg_size %zu, "
				   "ring %u, arena %" PRIu64 ")", l->size,
				   l->geom.ring, l->geom.arena);
	return 0;
}

static int zlink_open(struct link *l, enum role role)
{
	struct zlink *z = &l->z;
	struct zbus_channel *ch;
	struct zbus_pub_opts po;
	struct zbus_sub_opts so;
	int ret;

	if (getpid() != z->owner) {
		/*
		 * The child maps the channel from its memfd as any other
		 * process would, instead of using the inherited mapping.
		 */
		ret = zbus_channel_attach_dup(zbus_channel_fd(z->ch),
					      zbus_channel_state_fd(z->ch), &ch);
		if (ret < 0)
			return bench_zfail(ret, "zbus_channel_attach_dup");
		zbus_channel_free(z->ch);
		z->ch = ch;
	}

	if (role == ROLE_TX) {
		/* Busy-poll like shm-ring, or (zbus-block) let the library
		 * wait: spin a little, then sleep on its futex. */
		memset(&po, 0, sizeof(po));
		po.timeout_ms = l->tp->blocking ? 10000 : 0;
		po.flags = l->tp->pub_flags;
		/* Several producers on one channel (fan-in) share the ring. */
		if (l->shared_tx)
			po.flags &= ~ZBUS_PUB_EXCLUSIVE;
		ret = zbus_pub_new(z->ch, &po, &z->pub);
		if (ret < 0)
			return bench_zfail(ret, "zbus_pub_new");
	} else {
		memset(&so, 0, sizeof(so));
		so.policy = ZBUS_RELIABLE;
		ret = zbus_sub_new(z->ch, &so, &z->sub);
		if (ret < 0)
			return bench_zfail(ret, "zbus_sub_new");
	}
	return 0;
}

static void zlink_close(struct link *l)
{
	struct zlink *z = &l->z;

	z->sub = zbus_sub_free(z->sub);
	z->pub = zbus_pub_free(z->pub);
	z->ch = zbus_channel_free(z->ch);
}

static int zc_send(struct link *l, uint64_t seq)
{
	return bench_loan_send(l->z.pub, l->size, seq);
}

/* A batch of messages to hand out, when the last one is all read: busy
 * polled, or (zbus-block) waited for in the library. */
static int zc_refill(struct link *l)
{
	struct zlink *z = &l->z;
	int ret;

	if (z->idx < z->cnt)
		return 0;
	if (l->tp->blocking) {
		/* The library's adaptive wait: 50 us of spinning, then its
		 * futex; a second at a time so that a stop is heard. */
		do
			ret = zbus_sub_recv_batch(z->sub, z->msgs, RECV_BATCH,
						  1000);
		while (ret == -ETIMEDOUT && !bench_stop_requested());
	} else {
		BENCH_SPIN(ret, zbus_sub_recv_batch(z->sub, z->msgs,
						    RECV_BATCH, 0),
			   "zbus_sub_recv_batch");
	}
	if (ret < 0)
		return bench_zfail(ret, "zbus_sub_recv_batch");
	if (ret == 0 || ret > RECV_BATCH)
		return bench_fail(-EPROTO, "zbus_sub_recv_batch returned %d "
				  "for at most %d", ret, RECV_BATCH);
	z->cnt = (unsigned int)ret;
	z->idx = 0;
	return 0;
}

/*
 * Take the next message and read it in full: message *@seq, or with
 * @any the next of any sender, whose stamp goes to *@seq (fan-in).
 */
static int zc_take(struct link *l, uint64_t *seq, bool any)
{
	struct zlink *z = &l->z;
	const struct zbus_msg *m;
	int ret;

	ret = zc_refill(l);
	if (ret < 0)
		return ret;
	m = &z->msgs[z->idx++];
	if (m->size != l->size || (any && m->size < 16))
		return bench_fail(-EBADMSG, "zbus message of %zu bytes, "
				  "expected %zu", m->size, l->size);
	if (any)
		memcpy(seq, m->data, sizeof(*seq));
	ret = bench_payload_check(m->data, m->size, *seq);
	if (ret < 0)
		return ret;

	/* Give the batch back once read: the producer may be waiting on it. */
	if (z->idx == z->cnt) {
		ret = zbus_sub_release(z->sub);
		if (ret < 0)
			return bench_zfail(ret, "zbus_sub_release");
	}
	return 0;
}

static int zc_recv(struct link *l, uint64_t seq)
{
	return zc_take(l, &seq, false);
}

/* The next message, whoever sent it: its stamp, checked (fan-in). */
static int zc_recv_any(struct link *l, uint64_t *stamp)
{
	return zc_take(l, stamp, true);
}

static int zcopy_send(struct link *l, uint64_t seq)
{
	int ret;

	bench_payload_fill(l->buf, l->size, seq);
	BENCH_SPIN(ret, zbus_pub_send(l->z.pub, l->buf, l->size),
		   "zbus_pub_send");
	if (ret < 0)
		return bench_zfail(ret, "zbus_pub_send(%zu)", l->size);
	return 0;
}

/* As zc_recv_any(), by copy. */
static int zcopy_recv_any(struct link *l, uint64_t *stamp)
{
	int ret;

	BENCH_SPIN(ret, zbus_sub_recv(l->z.sub, l->buf, l->size, NULL, 0),
		   "zbus_sub_recv");
	if (ret < 0)
		return bench_zfail(ret, "zbus_sub_recv");
	if ((size_t)ret != l->size || l->size < 16)
		return bench_fail(-EBADMSG, "zbus_sub_recv returned %d bytes, "
				  "expected %zu", ret, l->size);
	memcpy(stamp, l->buf, sizeof(*stamp));
	return bench_payload_check(l->buf, l->size, *stamp);
}

static int zcopy_recv(struct link *l, uint64_t seq)
{
	int ret;

	BENCH_SPIN(ret, zbus_sub_recv(l->z.sub, l->buf, l->size, NULL, 0),
		   "zbus_sub_recv");
	if (ret < 0)
		return bench_zfail(ret, "zbus_sub_recv");
	if ((size_t)ret != l->size)
		return bench_fail(-EBADMSG, "zbus_sub_recv returned %d bytes, "
				  "expected %zu", ret, l->size);
	return bench_payload_check(l->buf, l->size, seq);
}

/* shm-ring --------------------------------------------------------------- */

static int ring_create(struct link *l)
{
	struct rlink *r = &l->r;
	void *p;

	r->slot_bytes = bench_round_up(l->size, CACHE_LINE);
	r->mask = l->geom.slots - 1;
	r->map_bytes = sizeof(struct shm_ring) +
		       (size_t)l->geom.slots * r->slot_bytes;
	/* MAP_SHARED before fork(): both processes see the same pages. */
	p = mmap(NULL, r->map_bytes, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return bench_fail(-errno, "mmap(%zu)", r->map_bytes);
	r->ring = p;
	/* Atomics shared between processes must be lock-free (address-free). */
	if (!atomic_is_lock_free(&r->ring->prod_tail))
		return bench_fail(-ENOTSUP, "shm-ring: 64-bit atomics are not "
				  "lock-free");
	atomic_init(&r->ring->prod_tail, 0);
	atomic_init(&r->ring->cons_head, 0);
	return 0;
}

static int ring_open(struct link *l, enum role role)
{
	(void)role;
	l->r.pos = 0;
	l->r.peer = 0;
	return 0;
}

static void ring_close(struct link *l)
{
	if (l->r.ring)
		munmap(l->r.ring, l->r.map_bytes);
	l->r.ring = NULL;
}

static unsigned char *ring_slot(const struct rlink *r, uint64_t pos)
{
	return (unsigned char *)r->ring + sizeof(struct shm_ring) +
	       (pos & r->mask) * r->slot_bytes;
}

static int ring_try_reserve(struct rlink *r)
{
	if (r->pos - r->peer <= r->mask)
		return 0;
	/*
	 * Acquire pairs with the release of cons_head in ring_recv(): the
	 * consumer is done reading a slot before we overwrite it.
	 */
	r->peer = atomic_load_explicit(&r->ring->cons_head,
				       memory_order_acquire);
	return r->pos - r->peer <= r->mask ? 0 : -EAGAIN;
}

static int ring_try_peek(struct rlink *r)
{
	if (r->peer != r->pos)
		return 0;
	/*
	 * Acquire pairs with the release of prod_tail in ring_send(): the
	 * payload is visible once the index that announces it is.
	 */
	r->peer = atomic_load_explicit(&r->ring->prod_tail,
				       memory_order_acquire);
	return r->peer != r->pos ? 0 : -EAGAIN;
}

static int ring_send(struct link *l, uint64_t seq)
{
	struct rlink *r = &l->r;
	int ret;

	BENCH_SPIN(ret, ring_try_reserve(r), "shm-ring send");
	if (ret < 0)
		return ret;
	bench_payload_fill(ring_slot(r, r->pos), l->size, seq);
	r->pos++;
	/* Release pairs with the acquire in ring_try_peek(). */
	atomic_store_explicit(&r->ring->prod_tail, r->pos,
			      memory_order_release);
	return 0;
}

static int ring_recv(struct link *l, uint64_t seq)
{
	struct rlink *r = &l->r;
	int ret;

	BENCH_SPIN(ret, ring_try_peek(r), "shm-ring recv");
	if (ret < 0)
		return ret;
	ret = bench_payload_check(ring_slot(r, r->pos), l->size, seq);
	if (ret < 0)
		return ret;
	r->pos++;
	/* Release pairs with the acquire in ring_try_reserve(). */
	atomic_store_explicit(&r->ring->cons_head, r->pos,
			      memory_order_release);
	return 0;
}

/* unix, pipe (and tcp, in tp_tcp.c) -------------------------------------- */

static int unix_create(struct link *l)
{
	l->f.fd[0] = l->f.fd[1] = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, l->f.fd) < 0)
		return bench_fail(-errno, "socketpair");
	return 0;
}

static int pipe_create(struct link *l)
{
	l->f.fd[0] = l->f.fd[1] = -1;
	if (pipe2(l->f.fd, O_CLOEXEC) < 0)
		return bench_fail(-errno, "pipe2");
	return 0;
}

int fd_open(struct link *l, enum role role)
{
	int unused = role == ROLE_TX ? 0 : 1;

	/* Drop the other end: a dead peer reads as EOF or EPIPE, not a hang. */
	close(l->f.fd[unused]);
	l->f.fd[unused] = -1;
	return 0;
}

void fd_close(struct link *l)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (l->f.fd[i] >= 0)
			close(l->f.fd[i]);
		l->f.fd[i] = -1;
	}
}

int fd_send(struct link *l, uint64_t seq)
{
	bench_payload_fill(l->buf, l->size, seq);
	return bench_write_full(l->f.fd[1], l->buf, l->size, l->tp->name);
}

int fd_recv(struct link *l, uint64_t seq)
{
	int ret;

	ret = bench_read_full(l->f.fd[0], l->buf, l->size, l->tp->name);
	if (ret < 0)
		return ret;
	return bench_payload_check(l->buf, l->size, seq);
}

static const struct transport core[] = {
	{
		/* One producer per channel, as here: it says so and claims
		 * without atomic read-modify-writes. */
		.name = "zbus", .copies = false,
		.pub_flags = ZBUS_PUB_EXCLUSIVE,
		.create = zlink_create, .open = zlink_open,
		.send = zc_send, .recv = zc_recv, .close = zlink_close,
		.recv_any = zc_recv_any,
	},
	{
		/* The same, through the multi-producer claim (16-byte CAS). */
		.name = "zbus-mp", .copies = false,
		.create = zlink_create, .open = zlink_open,
		.send = zc_send, .recv = zc_recv, .close = zlink_close,
		.recv_any = zc_recv_any,
	},
	{
		.name = "zbus-copy", .copies = true,
		.pub_flags = ZBUS_PUB_EXCLUSIVE,
		.create = zlink_create, .open = zlink_open,
		.send = zcopy_send, .recv = zcopy_recv, .close = zlink_close,
		.recv_any = zcopy_recv_any,
	},
	{
		/* zbus as a program that must not burn a core when idle
		 * would use it: both sides wait in the library. */
		.name = "zbus-block", .copies = false,
		.pub_flags = ZBUS_PUB_EXCLUSIVE, .blocking = true,
		.create = zlink_create, .open = zlink_open,
		.send = zc_send, .recv = zc_recv, .close = zlink_close,
		.recv_any = zc_recv_any,
	},
	{
		.name = "shm-ring", .copies = false,
		.create = ring_create, .open = ring_open,
		.send = ring_send, .recv = ring_recv, .close = ring_close,
	},
	{
		.name = "unix", .copies = true,
		.create = unix_create, .open = fd_open,
		.send = fd_send, .recv = fd_recv, .close = fd_close,
	},
	{
		.name = "pipe", .copies = true,
		.create = pipe_create, .open = fd_open,
		.send = fd_send, .recv = fd_recv, .close = fd_close,
	},
};

/* Every transport, in the order of the output. */
static const struct transport *const transports[] = {
	&core[0], &core[1], &core[2], &core[3], &core[4], &core[5],
	&core[6], &tp_tcp, &tp_mq,
	&tp_zmq,
	&tp_iceoryx,
};

#define N_TRANSPORTS (sizeof(transports) / sizeof(transports[0]))

static int link_open(struct link *l, enum role role)
{
	size_t bytes = bench_round_up(l->size, CACHE_LINE);

	if (l->tp->copies) {
		/* After fork(), faulted in now: no timed loop pays for it. */
		l->buf = aligned_alloc(CACHE_LINE, bytes);
		if (!l->buf)
			return bench_fail(-ENOMEM, "aligned_alloc(%zu)", bytes);
		memset(l->buf, 0, bytes);
	}
	return l->tp->open(l, role);
}

static void link_close(struct link *l)
{
	l->tp->close(l);
	free(l->buf);
	l->buf = NULL;
}

/* ------------------------------------------------------------------------ */
/* Configuration and cells                                                  */
/* ------------------------------------------------------------------------ */

enum scenario {
	SC_LATENCY, SC_THROUGHPUT, SC_LOAD, SC_FANOUT, SC_FANIN, SC_IDLE,
	SC_COUNT
};

static const char *const scenario_names[SC_COUNT] = {
	[SC_LATENCY] = "latency",
	[SC_THROUGHPUT] = "throughput",
	[SC_LOAD] = "load",
	[SC_FANOUT] = "fanout",
	[SC_FANIN] = "fanin",
	[SC_IDLE] = "idle",
};

struct config {
	bool json;
	bool csv;
	bool quick;
	unsigned int scenarios;		/* bit per enum scenario */
	unsigned int transports;	/* bit per transports[] entry */
	size_t sizes[MAX_SIZES];
	unsigned int nsizes;
	unsigned int reps;		/* throughput repetitions */
	unsigned int fans[4];		/* fan-out/fan-in: children */
	unsigned int nfans;
	struct bench_cpus cpus;		/* [0] parent, [1] child */
};

static struct config cfg;

/*
 * struct cell - one (scenario, transport, size) measurement
 * @warmup: untimed messages (latency: round trips) first
 * @count: timed messages (latency: samples)
 * @timeout_s: alarm of each process; a stuck cell fails after it
 */
struct cell {
	enum scenario sc;
	const struct transport *tp;
	size_t size;
	struct geom geom;
	uint64_t warmup;
	uint64_t count;
	unsigned int reps;
	unsigned int timeout_s;
	double load;			/* SC_LOAD: fraction of saturation */
	unsigned int fan;		/* SC_FANOUT/SC_FANIN: children */
	double rate;			/* SC_LOAD: offered msgs/s */
};

struct result {
	uint64_t samples;
	unsigned int reps;
	bool has_latency;
	double p50_ns, p99_ns, p999_ns;
	bool has_rate;
	double mps, mps_min, mps_max;
	bool has_max;
	double max_ns;
	bool has_p50_spread;		/* latency: medians of its sessions */
	double p50_min_ns, p50_max_ns;
	bool has_cpu;
	double cpu_ns;			/* CPU time per message: both sides
					 * (throughput), the consumer (load) */
};

/*
 * Latency keeps one message in flight: zbus gets the ring the brief asks
 * for and its default arena, and shm-ring about the same bytes (64 KiB), so
 * neither cycles through more cache than the other.
 * Throughput lets either hold the same bytes in flight: 4096 small
 * messages, or up to 8 MiB of large ones (at least 8, at most 256).
 */
static struct geom cell_geom(enum scenario sc, size_t size)
{
	uint64_t slot = bench_round_up(size, CACHE_LINE);
	struct geom g;

	if (sc == SC_LATENCY) {
		g.ring = 256;
		g.arena = 0;
		g.slots = (uint32_t)pow2_floor(clamp_u64(64 * KiB / slot,
							 4, 256));
	} else if (size <= KiB) {
		g.ring = 4096;
		g.arena = 0;
		g.slots = 4096;
	} else {
		g.slots = (uint32_t)pow2_floor(clamp_u64(8 * MiB / slot,
							 8, 256));
		g.ring = g.slots;
		g.arena = g.slots * slot;
	}
	return g;
}

/*
 * Counts keep the standard suite (bench/suite.sh: ten transports, nine
 * sizes up to 64 MiB, five scenarios) within its ten minutes on 2 cores,
 * where a socket round trip costs 25-70 us (the hypervisor wakes the
 * other vCPU) and TCP moves 64-byte messages at about 0.15 M/s; --quick
 * only checks that everything works.
 */
static void cell_init(struct cell *c, enum scenario sc,
		      const struct transport *tp, size_t size)
{
	uint64_t bytes;

	memset(c, 0, sizeof(*c));
	c->sc = sc;
	c->tp = tp;
	c->size = size;
	c->geom = cell_geom(sc, size);
	if (sc == SC_LATENCY) {
		/* At least 1000 round trips, 50 from 1 MiB up: a pipe moves
		 * 64 MiB messages at under 1 GB/s. */
		c->count = cfg.quick ? clamp_u64(4 * MiB / size, 20, 200) :
				       clamp_u64(GiB / size,
						 size >= MiB ? 50 : 1000,
						 20000);
		c->warmup = c->count / 10 > 10 ? c->count / 10 : 10;
		c->reps = cfg.reps;
		bytes = 2 * (c->count + c->warmup) * size;
	} else {
		c->count = cfg.quick ? clamp_u64(8 * MiB / size, 8, 2000) :
				       clamp_u64(256 * MiB / size,
						 size >= 8 * MiB ? 16 : 64,
						 300000);
		/* Twice round the ring: every slot and arena page touched. */
		c->warmup = 2ull * (c->geom.slots > c->geom.ring ?
				    c->geom.slots : c->geom.ring);
		if (c->warmup > c->count)
			c->warmup = c->count;
		c->reps = cfg.reps;
		bytes = (c->count + c->warmup) * size;
	}
	/* Generous: no transport here is slower than ~128 MiB/s. */
	c->timeout_s = (cfg.quick ? 10 : 60) + (unsigned int)(bytes >> 27);
}

/* ------------------------------------------------------------------------ */
/* Sessions: one forked child and the links shared with it                  */
/* ------------------------------------------------------------------------ */

/* What the child tells the parent; shared, zeroed before each fork(). */
struct shared_block {
	uint64_t t_end_ns;
	uint64_t child_cpu_ns;		/* the child's CPU in the timed part */
	uint64_t t0_ns;			/* load: message 0's intended send */
	uint64_t t_warm_ns;		/* load: the consumer's timed start */
	struct hist hist;		/* load: the consumer's latencies */
};

/* CPU time of this process (all its threads), in ns. */
static uint64_t cpu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct shared_block *g_shared;

/*
 * struct session - @link[0] carries parent → child, @link[1] (latency only)
 * child → parent; @peer is the child, which writes one byte on its sync
 * pipe each time the parent may go on.
 */
struct session;
typedef int (*child_fn)(struct session *s);

struct session {
	const struct cell *cell;
	struct link link[2];
	unsigned int nlinks;
	struct bench_peer peer;
	child_fn fn;
};

static void session_close_links(void *arg)
{
	struct session *s = arg;
	unsigned int i;

	for (i = 0; i < s->nlinks; i++)
		link_close(&s->link[i]);
	s->nlinks = 0;
}

static int notify_parent(struct session *s)
{
	return bench_peer_notify(&s->peer);
}

static int wait_child(struct session *s, const char *what)
{
	return bench_peer_wait(&s->peer, what);
}

static int run_child_fn(struct bench_peer *p, void *arg)
{
	struct session *s = arg;

	(void)p;
	return s->fn(s);
}

static int session_start(struct session *s, const struct cell *c,
			 unsigned int nlinks, child_fn fn)
{
	int ret;
	unsigned int i;

	memset(s, 0, sizeof(*s));
	s->cell = c;
	s->fn = fn;
	s->peer.pid = -1;
	s->peer.sync_fd = -1;
	for (i = 0; i < nlinks; i++) {
		s->link[i].tp = c->tp;
		s->link[i].size = c->size;
		s->link[i].geom = c->geom;
		s->nlinks++;
		ret = c->tp->create(&s->link[i]);
		if (ret < 0)
			return ret;
	}
	memset(g_shared, 0, sizeof(*g_shared));
	return bench_peer_start(&s->peer, c->timeout_s,
				bench_consumer_cpu(&cfg.cpus),
				run_child_fn, session_close_links, s);
}

static int session_end(struct session *s, int ret)
{
	ret = bench_peer_end(&s->peer, ret);
	session_close_links(s);
	return ret;
}
/* ------------------------------------------------------------------------ */
/* Scenarios                                                                */
/* ------------------------------------------------------------------------ */

/* Responder: echo each message back, written in full again. */
static int latency_child(struct session *s)
{
	struct link *in = &s->link[0], *out = &s->link[1];
	uint64_t i, total = s->cell->warmup + s->cell->count;
	int ret;

	ret = link_open(in, ROLE_RX);
	if (!ret)
		ret = link_open(out, ROLE_TX);
	/* Subscribed: nothing the parent sends from now on can be missed. */
	if (!ret)
		ret = notify_parent(s);
	for (i = 0; !ret && i < total; i++) {
		ret = in->tp->recv(in, i);
		if (!ret)
			ret = out->tp->send(out, i);
	}
	return ret;
}

static int latency_parent(struct session *s, uint64_t *rtt)
{
	struct link *out = &s->link[0], *in = &s->link[1];
	const struct cell *c = s->cell;
	uint64_t i, t0;
	int ret;

	ret = link_open(in, ROLE_RX);
	if (!ret)
		ret = link_open(out, ROLE_TX);
	if (!ret)
		ret = wait_child(s, "waiting for the responder");
	for (i = 0; !ret && i < c->warmup + c->count; i++) {
		t0 = bench_now_ns();
		ret = out->tp->send(out, i);
		if (!ret)
			ret = in->tp->recv(in, i);
		if (!ret && i >= c->warmup)
			rtt[i - c->warmup] = bench_now_ns() - t0;
	}
	return ret;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least @p of them at or below. */
static uint64_t percentile(const uint64_t *sorted, uint64_t n, double p)
{
	uint64_t rank = (uint64_t)ceil(p * (double)n);

	return sorted[clamp_u64(rank, 1, n) - 1];
}

/*
 * Ping-pong in c->reps sessions of a share of the round trips each: the
 * percentiles pool them all, the spread of the sessions' medians says how
 * far one session is from the next (each starts processes anew, so it also
 * catches where the hypervisor put them).
 */
static int run_latency(const struct cell *c, struct result *res)
{
	unsigned int r, n = c->reps ? c->reps : 1;
	uint64_t done = 0, *rtt;
	struct session s;
	int ret = 0;

	rtt = calloc(c->count, sizeof(*rtt));
	if (!rtt)
		return bench_fail(-ENOMEM, "calloc");
	for (r = 0; !ret && r < n; r++) {
		struct cell part = *c;
		double p50;

		part.count = (c->count - done) / (n - r);
		if (!part.count)
			continue;
		ret = session_start(&s, &part, 2, latency_child);
		if (!ret)
			ret = latency_parent(&s, rtt + done);
		ret = session_end(&s, ret);
		if (ret)
			break;
		qsort(rtt + done, part.count, sizeof(*rtt), cmp_u64);
		/* One way is half a round trip. */
		p50 = percentile(rtt + done, part.count, 0.50) / 2.0;
		if (!res->has_p50_spread || p50 < res->p50_min_ns)
			res->p50_min_ns = p50;
		if (!res->has_p50_spread || p50 > res->p50_max_ns)
			res->p50_max_ns = p50;
		res->has_p50_spread = true;
		done += part.count;
	}
	if (!ret) {
		qsort(rtt, done, sizeof(*rtt), cmp_u64);
		res->has_latency = true;
		res->p50_ns = percentile(rtt, done, 0.50) / 2.0;
		res->p99_ns = percentile(rtt, done, 0.99) / 2.0;
		res->p999_ns = percentile(rtt, done, 0.999) / 2.0;
		res->samples = done;
		res->reps = n;
	}
	free(rtt);
	return ret;
}

/*
 * A consumer: open @in, tell @p it is ready, drain the warm-up, say so,
 * then receive the timed part; when it ended and the CPU it took.
 */
static int consume_stream(struct link *in, const struct cell *c,
			  struct bench_peer *p, uint64_t *t_end,
			  uint64_t *cpu)
{
	uint64_t i, cpu0;
	int ret;

	ret = link_open(in, ROLE_RX);
	if (!ret)
		ret = bench_peer_notify(p);
	for (i = 0; !ret && i < c->warmup; i++)
		ret = in->tp->recv(in, i);
	if (!ret)
		ret = bench_peer_notify(p);
	cpu0 = cpu_now_ns();
	for (; !ret && i < c->warmup + c->count; i++)
		ret = in->tp->recv(in, i);
	if (!ret) {
		*t_end = bench_now_ns();
		*cpu = cpu_now_ns() - cpu0;
	}
	return ret;
}

static int stream_child(struct session *s)
{
	return consume_stream(&s->link[0], s->cell, &s->peer,
			      &g_shared->t_end_ns, &g_shared->child_cpu_ns);
}

static int stream_parent(struct session *s, uint64_t *t_start,
			 uint64_t *cpu)
{
	struct link *out = &s->link[0];
	const struct cell *c = s->cell;
	uint64_t i, cpu0;
	int ret;

	ret = link_open(out, ROLE_TX);
	if (!ret)
		ret = wait_child(s, "waiting for the consumer");
	for (i = 0; !ret && i < c->warmup; i++)
		ret = out->tp->send(out, i);
	/* The timed part starts with an empty ring and an awake consumer. */
	if (!ret)
		ret = wait_child(s, "waiting for the warm-up to drain");
	*t_start = bench_now_ns();
	cpu0 = cpu_now_ns();
	for (; !ret && i < c->warmup + c->count; i++)
		ret = out->tp->send(out, i);
	*cpu = cpu_now_ns() - cpu0;
	return ret;
}

static int run_throughput(const struct cell *c, struct result *res)
{
	struct session s;
	uint64_t t_start = 0, t_end, cpu = 0;
	double *mps, *cpu_per_msg;
	unsigned int r, n = c->reps;
	int ret = 0;

	mps = calloc(2 * n, sizeof(*mps));
	if (!mps)
		return bench_fail(-ENOMEM, "calloc");
	cpu_per_msg = mps + n;
	for (r = 0; !ret && r < n; r++) {
		ret = session_start(&s, c, 1, stream_child);
		if (!ret)
			ret = stream_parent(&s, &t_start, &cpu);
		ret = session_end(&s, ret);
		/* The child has exited: its timestamp is final. */
		t_end = g_shared->t_end_ns;
		if (!ret && t_end <= t_start)
			ret = bench_fail(-EPROTO, "consumer finished at "
					 "%" PRIu64 " before the producer "
					 "started at %" PRIu64, t_end,
					 t_start);
		if (!ret) {
			mps[r] = (double)c->count * 1e9 /
				 (double)(t_end - t_start);
			cpu_per_msg[r] = (double)(cpu +
						  g_shared->child_cpu_ns) /
					 (double)c->count;
		}
	}
	if (!ret) {
		qsort(mps, n, sizeof(*mps), bench_cmp_double);
		res->has_rate = true;
		res->mps = n % 2 ? mps[n / 2] :
				   (mps[n / 2 - 1] + mps[n / 2]) / 2;
		res->mps_min = mps[0];
		res->mps_max = mps[n - 1];
		res->samples = c->count;
		res->reps = n;
		qsort(cpu_per_msg, n, sizeof(*cpu_per_msg), bench_cmp_double);
		res->has_cpu = true;
		res->cpu_ns = cpu_per_msg[n / 2];
	}
	free(mps);
	return ret;
}

/*
 * Open-loop latency under load: message i is due at t0 + i / rate, on a
 * schedule fixed in advance; the producer sends it as soon as it is due
 * (late if it fell behind, never skipped), and the consumer measures its
 * latency from when it was due, not from when it was sent. A stall of the
 * producer, the transport or the consumer so shows in every message it
 * delays, instead of pausing the clock (coordinated omission).
 */
static uint64_t due_ns(uint64_t t0, double period_ns, uint64_t i)
{
	return t0 + (uint64_t)((double)i * period_ns);
}

static int load_child(struct session *s)
{
	struct link *in = &s->link[0];
	const struct cell *c = s->cell;
	double period = 1e9 / c->rate;
	uint64_t i, t0 = 0, now, cpu0 = 0;
	int ret;

	ret = link_open(in, ROLE_RX);
	if (!ret)
		ret = notify_parent(s);
	for (i = 0; !ret && i < c->warmup + c->count; i++) {
		if (i == c->warmup) {
			cpu0 = cpu_now_ns();
			g_shared->t_warm_ns = bench_now_ns();
		}
		ret = in->tp->recv(in, i);
		now = bench_now_ns();
		/* Written before message 0 was sent. */
		if (i == 0)
			t0 = __atomic_load_n(&g_shared->t0_ns,
					     __ATOMIC_ACQUIRE);
		if (!ret && i >= c->warmup) {
			uint64_t due = due_ns(t0, period, i);

			hist_add(&g_shared->hist, now > due ? now - due : 0);
		}
	}
	if (!ret) {
		g_shared->child_cpu_ns = cpu_now_ns() - cpu0;
		g_shared->t_end_ns = bench_now_ns();
	}
	return ret;
}

/* Wait for @due, busy (a sleep would be later than the schedule). */
static int wait_until_due(uint64_t due)
{
	int ret;

	BENCH_SPIN(ret, bench_now_ns() >= due ? 0 : -EAGAIN,
		   "load: waiting to send");
	return ret;
}

static int load_parent(struct session *s)
{
	struct link *out = &s->link[0];
	const struct cell *c = s->cell;
	double period = 1e9 / c->rate;
	uint64_t i, t0;
	int ret;

	ret = link_open(out, ROLE_TX);
	if (!ret)
		ret = wait_child(s, "waiting for the consumer");
	t0 = bench_now_ns() + 1000000; /* a millisecond to get going */
	__atomic_store_n(&g_shared->t0_ns, t0, __ATOMIC_RELEASE);
	for (i = 0; !ret && i < c->warmup + c->count; i++) {
		ret = wait_until_due(due_ns(t0, period, i));
		if (!ret)
			ret = out->tp->send(out, i);
	}
	return ret;
}

static int run_load(const struct cell *c, struct result *res)
{
	struct session s;
	int ret;

	ret = session_start(&s, c, 1, load_child);
	if (!ret)
		ret = load_parent(&s);
	ret = session_end(&s, ret);
	if (!ret) {
		const struct hist *h = &g_shared->hist;

		res->has_latency = res->has_max = true;
		res->p50_ns = (double)hist_percentile(h, 0.50);
		res->p99_ns = (double)hist_percentile(h, 0.99);
		res->p999_ns = (double)hist_percentile(h, 0.999);
		res->max_ns = (double)h->max;
		res->has_rate = true;
		res->mps = res->mps_min = res->mps_max = c->rate;
		res->has_cpu = true;
		res->cpu_ns = (double)g_shared->child_cpu_ns / (double)c->count;
		res->samples = h->n;
		res->reps = 1;
	}
	return ret;
}

/*
 * Idle: what a consumer burns while nothing comes. It waits for a message
 * the producer sends only after IDLE_MS; the CPU time it took meanwhile,
 * per second, is the cost of waiting (a busy-polling consumer burns a
 * whole core, a blocking one next to nothing).
 */
#define IDLE_MS 1000

static int idle_child(struct session *s)
{
	struct link *in = &s->link[0];
	uint64_t cpu0;
	int ret;

	ret = link_open(in, ROLE_RX);
	if (!ret)
		ret = notify_parent(s);
	cpu0 = cpu_now_ns();
	if (!ret)
		ret = in->tp->recv(in, 0);
	if (!ret)
		g_shared->child_cpu_ns = cpu_now_ns() - cpu0;
	return ret;
}

static int run_idle(const struct cell *c, struct result *res)
{
	unsigned int ms = cfg.quick ? IDLE_MS / 10 : IDLE_MS;
	struct session s;
	uint64_t t0 = 0;
	int ret;

	ret = session_start(&s, c, 1, idle_child);
	if (!ret)
		ret = link_open(&s.link[0], ROLE_TX);
	if (!ret)
		ret = wait_child(&s, "waiting for the consumer");
	if (!ret) {
		t0 = bench_now_ns();
		usleep(ms * 1000u);
		ret = s.link[0].tp->send(&s.link[0], 0);
	}
	ret = session_end(&s, ret);
	if (!ret) {
		/* CPU nanoseconds per second waited: a fraction of a core. */
		res->has_cpu = true;
		res->cpu_ns = (double)g_shared->child_cpu_ns * 1e9 /
			      (double)(bench_now_ns() - t0);
		res->samples = 1;
		res->reps = 1;
	}
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Fan-out and fan-in: one parent, FAN children                             */
/* ------------------------------------------------------------------------ */

/*
 * A transport that one link can serve to several processes (a zbus
 * channel: one publish reaches every subscriber; several publishers claim
 * in one ring) uses a single link; any other gets a link per child, and
 * the parent sends each message on every link (fan-out) or takes them in
 * turn from each (fan-in), as a program using it would.
 */
#define MAX_FAN 8

struct fan_child {
	struct fan *f;
	unsigned int idx;
};

struct fan {
	const struct cell *cell;
	unsigned int n;			/* children */
	unsigned int nlinks;		/* 1 (shared) or n */
	struct link link[MAX_FAN];
	struct bench_peer peer[MAX_FAN];
	struct fan_child child[MAX_FAN];
};

/* What fan children tell the parent, in the shared block. */
struct fan_shared {
	uint64_t t_end_ns[MAX_FAN];
	uint64_t cpu_ns[MAX_FAN];
	/* Set by the parent: 1 warm-up (fan-in), 2 timed part (fan-in),
	 * 3 all done: children exit only then, since a child's exit stops
	 * the parent's waits (bench_stop_requested()) while it may still be
	 * moving messages of the others. */
	uint32_t go;
};

static struct fan_shared *g_fan;

static bool fan_shares_link(const struct transport *tp)
{
	return tp->recv_any != NULL;
}

static struct link *fan_link(struct fan *f, unsigned int idx)
{
	return &f->link[f->nlinks == 1 ? 0 : idx];
}

static void fan_close_links(struct fan *f)
{
	for (unsigned int i = 0; i < f->nlinks; i++)
		link_close(&f->link[i]);
	f->nlinks = 0;
}

static void fan_child_close(void *arg)
{
	struct fan_child *ch = arg;

	fan_close_links(ch->f);
}

/* Wait for g_fan->go to reach @v (set by the parent). */
static int fan_wait_go(uint32_t v)
{
	int ret;

	BENCH_SPIN(ret, __atomic_load_n(&g_fan->go, __ATOMIC_ACQUIRE) >= v ?
				0 : -EAGAIN,
		   "waiting for the start");
	return ret;
}

/* Fan-out child: receive everything, as stream_child does. */
static int fanout_child(struct bench_peer *p, void *arg)
{
	struct fan_child *ch = arg;
	int ret;

	ret = consume_stream(fan_link(ch->f, ch->idx), ch->f->cell, p,
			     &g_fan->t_end_ns[ch->idx], &g_fan->cpu_ns[ch->idx]);
	return ret ? ret : fan_wait_go(3);
}

/* Fan-in child @idx: a producer whose messages are stamped with its index
 * in the top bits, so that a shared link's consumer can check each
 * producer's order (recv_any). */
static uint64_t fan_stamp(unsigned int idx, uint64_t i)
{
	return ((uint64_t)idx << 40) | i;
}

static int fanin_child(struct bench_peer *p, void *arg)
{
	struct fan_child *ch = arg;
	const struct cell *c = ch->f->cell;
	struct link *out = fan_link(ch->f, ch->idx);
	bool shared = ch->f->nlinks == 1;
	uint64_t i, cpu0;
	int ret;

	ret = link_open(out, ROLE_TX);
	if (!ret)
		ret = bench_peer_notify(p);
	if (!ret)
		ret = fan_wait_go(1);
	for (i = 0; !ret && i < c->warmup; i++)
		ret = out->tp->send(out, shared ? fan_stamp(ch->idx, i) : i);
	if (!ret)
		ret = fan_wait_go(2);
	cpu0 = cpu_now_ns();
	for (; !ret && i < c->warmup + c->count; i++)
		ret = out->tp->send(out, shared ? fan_stamp(ch->idx, i) : i);
	if (!ret) {
		g_fan->cpu_ns[ch->idx] = cpu_now_ns() - cpu0;
		ret = fan_wait_go(3);
	}
	return ret;
}

static int fan_start(struct fan *f, const struct cell *c, unsigned int n,
		     bench_child_fn fn, bool in)
{
	int ret = 0;

	memset(f, 0, sizeof(*f));
	f->cell = c;
	f->n = n;
	for (unsigned int i = 0; i < MAX_FAN; i++) {
		f->peer[i].pid = -1;
		f->peer[i].sync_fd = -1;
	}
	for (unsigned int i = 0; !ret && i < (fan_shares_link(c->tp) ? 1 : n);
	     i++) {
		f->link[i].tp = c->tp;
		f->link[i].size = c->size;
		f->link[i].geom = c->geom;
		f->link[i].shared_tx = in && fan_shares_link(c->tp);
		f->nlinks++;
		ret = c->tp->create(&f->link[i]);
	}
	memset(g_fan, 0, sizeof(*g_fan));
	/* Children go where the scheduler puts them: with more of them than
	 * cores, pinning would only choose who waits. */
	for (unsigned int i = 0; !ret && i < n; i++) {
		f->child[i] = (struct fan_child){ f, i };
		ret = bench_peer_start(&f->peer[i], c->timeout_s, -1, fn,
				       fan_child_close, &f->child[i]);
	}
	return ret;
}

static int fan_wait_all(struct fan *f, const char *what)
{
	int ret = 0;

	for (unsigned int i = 0; !ret && i < f->n; i++)
		ret = bench_peer_wait(&f->peer[i], what);
	return ret;
}

static int fan_end(struct fan *f, int ret)
{
	for (unsigned int i = 0; i < f->n; i++)
		if (f->peer[i].pid > 0 || f->peer[i].sync_fd >= 0)
			ret = bench_peer_end(&f->peer[i], ret);
	fan_close_links(f);
	return ret;
}

/* Parent of a fan-out: send every message once per link. */
static int fanout_send(struct fan *f, uint64_t i)
{
	int ret = 0;

	for (unsigned int k = 0; !ret && k < f->nlinks; k++)
		ret = f->link[k].tp->send(&f->link[k], i);
	return ret;
}

static int run_fanout(const struct cell *c, unsigned int n,
		      struct result *res)
{
	uint64_t i, t0 = 0, t_end = 0, cpu0 = 0, cpu = 0;
	struct fan f;
	int ret;

	ret = fan_start(&f, c, n, fanout_child, false);
	for (unsigned int k = 0; !ret && k < f.nlinks; k++)
		ret = link_open(&f.link[k], ROLE_TX);
	if (!ret)
		ret = fan_wait_all(&f, "waiting for the consumers");
	for (i = 0; !ret && i < c->warmup; i++)
		ret = fanout_send(&f, i);
	if (!ret)
		ret = fan_wait_all(&f, "waiting for the warm-up to drain");
	t0 = bench_now_ns();
	cpu0 = cpu_now_ns();
	for (; !ret && i < c->warmup + c->count; i++)
		ret = fanout_send(&f, i);
	cpu = cpu_now_ns() - cpu0;
	__atomic_store_n(&g_fan->go, 3, __ATOMIC_RELEASE);
	ret = fan_end(&f, ret);
	for (unsigned int k = 0; !ret && k < n; k++) {
		if (g_fan->t_end_ns[k] > t_end)
			t_end = g_fan->t_end_ns[k];
		cpu += g_fan->cpu_ns[k];
	}
	if (!ret && t_end <= t0)
		ret = bench_fail(-EPROTO, "fan-out: consumers finished before "
				 "the producer started");
	if (!ret) {
		/* Messages published per second, each reaching every one. */
		res->has_rate = true;
		res->mps = res->mps_min = res->mps_max =
			(double)c->count * 1e9 / (double)(t_end - t0);
		res->has_cpu = true;
		res->cpu_ns = (double)cpu / (double)c->count;
		res->samples = c->count;
		res->reps = 1;
	}
	return ret;
}

/* Parent of a fan-in over a shared link: any producer's next message,
 * checked against that producer's own count. */
static int fanin_recv_shared(struct fan *f, uint64_t *next)
{
	struct link *l = &f->link[0];
	uint64_t stamp, idx, i;
	int ret = l->tp->recv_any(l, &stamp);

	if (ret < 0)
		return ret;
	idx = stamp >> 40;
	i = stamp & ((1ull << 40) - 1);
	if (idx >= f->n || i != next[idx])
		return bench_fail(-EBADMSG, "fan-in: message %" PRIu64 " of "
				  "producer %" PRIu64 " out of order",
				  i, idx);
	next[idx]++;
	return 0;
}

/* Receive @k messages from every producer, from @from on. */
static int fanin_recv(struct fan *f, uint64_t from, uint64_t k,
		      uint64_t *next)
{
	int ret = 0;

	if (f->nlinks == 1) {
		for (uint64_t j = 0; !ret && j < k * f->n; j++)
			ret = fanin_recv_shared(f, next);
		return ret;
	}
	/* A link per producer: in turn, as a reader of n sockets would. */
	for (uint64_t i = from; !ret && i < from + k; i++)
		for (unsigned int p = 0; !ret && p < f->n; p++)
			ret = f->link[p].tp->recv(&f->link[p], i);
	return ret;
}

static int run_fanin(const struct cell *c, unsigned int n,
		     struct result *res)
{
	uint64_t next[MAX_FAN] = { 0 }, t0 = 0, t_end = 0, cpu0, cpu = 0;
	struct fan f;
	int ret;

	ret = fan_start(&f, c, n, fanin_child, true);
	for (unsigned int k = 0; !ret && k < f.nlinks; k++)
		ret = link_open(&f.link[k], ROLE_RX);
	if (!ret)
		ret = fan_wait_all(&f, "waiting for the producers");
	__atomic_store_n(&g_fan->go, 1, __ATOMIC_RELEASE);
	if (!ret)
		ret = fanin_recv(&f, 0, c->warmup, next);
	t0 = bench_now_ns();
	cpu0 = cpu_now_ns();
	__atomic_store_n(&g_fan->go, 2, __ATOMIC_RELEASE);
	if (!ret)
		ret = fanin_recv(&f, c->warmup, c->count, next);
	t_end = bench_now_ns();
	cpu = cpu_now_ns() - cpu0;
	__atomic_store_n(&g_fan->go, 3, __ATOMIC_RELEASE);
	ret = fan_end(&f, ret);
	for (unsigned int k = 0; !ret && k < n; k++)
		cpu += g_fan->cpu_ns[k];
	if (!ret) {
		/* Messages received per second, from all producers. */
		res->has_rate = true;
		res->mps = res->mps_min = res->mps_max =
			(double)c->count * n * 1e9 / (double)(t_end - t0);
		res->has_cpu = true;
		res->cpu_ns = (double)cpu / (double)(c->count * n);
		res->samples = c->count * n;
		res->reps = 1;
	}
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */
/* ------------------------------------------------------------------------ */

static void print_machine(void)
{
	bench_print_machine(stdout, cfg.cpus.ncpu);
	if (cfg.cpus.pin)
		printf("pinning: producer/initiator on CPU %d, "
		       "consumer/responder on CPU %d\n",
		       cfg.cpus.cpu[0], cfg.cpus.cpu[1]);
	else
		printf("pinning: off (only 1 CPU available)\n");
	printf("latency: one way (half a round trip); load: open loop, from "
	       "each message's due time,\n  at a fraction of the rate it "
	       "sustained flat out just before (Mmsg/s is the rate offered)\n"
	       "cpu/msg: CPU time per message, both processes (throughput) "
	       "or the consumer's (load)\n");
	printf("\n%-10s %-10s %7s %9s %9s %9s %9s %9s %8s %21s %8s %4s %8s\n",
	       "scenario", "transport", "size", "p50(us)", "p99(us)",
	       "p99.9(us)", "max(us)", "Mmsg/s", "GB/s",
	       "min..max / load", "cpu/msg", "reps", "samples");
	fflush(stdout);
}

static void fmt_num(char *buf, size_t len, bool has, double v, int prec,
		    char conv)
{
	if (has)
		snprintf(buf, len, conv == 'g' ? "%.*g" : "%.*f", prec, v);
	else
		snprintf(buf, len, "-");
}

/* CSV: the JSON fields as columns, empty where JSON says null. */
static const char csv_header[] =
	"scenario,transport,size,p50_ns,p99_ns,p999_ns,max_ns,msgs_per_s,"
	"gbytes_per_s,msgs_per_s_min,msgs_per_s_max,load,fan,cpu_ns_per_msg,"
	"cpu_of,reps,samples,skipped,p50_min_ns,p50_max_ns";

static void print_csv_header(void)
{
	printf("%s\n", csv_header);
}

static void csv_num(char *buf, size_t len, bool has, double v, int prec)
{
	if (has)
		snprintf(buf, len, "%.*f", prec, v);
	else
		buf[0] = 0;
}

static void print_csv(const struct cell *c, const struct result *res)
{
	char p50[32], p99[32], p999[32], max[32], mps[32], gbs[32];
	char lo[32], hi[32], load[32], cpu[32], p50lo[32], p50hi[32];

	csv_num(p50lo, sizeof(p50lo), res->has_p50_spread, res->p50_min_ns, 1);
	csv_num(p50hi, sizeof(p50hi), res->has_p50_spread, res->p50_max_ns, 1);
	csv_num(p50, sizeof(p50), res->has_latency, res->p50_ns, 1);
	csv_num(p99, sizeof(p99), res->has_latency, res->p99_ns, 1);
	csv_num(p999, sizeof(p999), res->has_latency, res->p999_ns, 1);
	csv_num(max, sizeof(max), res->has_max, res->max_ns, 1);
	csv_num(mps, sizeof(mps), res->has_rate, res->mps, 0);
	csv_num(gbs, sizeof(gbs), res->has_rate,
		res->mps * (double)c->size / 1e9, 4);
	csv_num(lo, sizeof(lo), res->has_rate, res->mps_min, 0);
	csv_num(hi, sizeof(hi), res->has_rate, res->mps_max, 0);
	csv_num(load, sizeof(load), c->sc == SC_LOAD, c->load, 3);
	csv_num(cpu, sizeof(cpu), res->has_cpu, res->cpu_ns, 1);
	printf("%s,%s,%zu,%s,%s,%s,%s,%s,%s,%s,%s,%s,%u,%s,%s,%u,%" PRIu64
	       ",,%s,%s\n", scenario_names[c->sc], c->tp->name, c->size, p50,
	       p99, p999, max, mps, gbs, lo, hi, load, c->fan, cpu,
	       c->sc == SC_LOAD || c->sc == SC_IDLE ? "consumer" : "all",
	       res->reps, res->samples, p50lo, p50hi);
	fflush(stdout);
}

/* A transport that cannot run here: said in the output, never silent. */
static void print_skip(enum scenario sc, const struct transport *tp,
		       size_t size, const char *why)
{
	char label[32];

	if (cfg.csv) {
		/* Commas would split the reason: semicolons instead. */
		printf("%s,%s,%zu,,,,,,,,,,0,,,0,0,", scenario_names[sc],
		       tp->name, size);
		for (const char *p = why; *p; p++)
			putchar(*p == ',' ? ';' : *p);
		printf(",,\n");
	} else if (cfg.json) {
		printf("{\"scenario\":\"%s\",\"transport\":\"%s\","
		       "\"size\":%zu,\"skipped\":\"%s\"}\n",
		       scenario_names[sc], tp->name, size, why);
	} else {
		bench_size_label(label, sizeof(label), size);
		printf("%-10s %-9s %7s skipped: %s\n", scenario_names[sc],
		       tp->name, label, why);
	}
	fflush(stdout);
}

static void print_row(const struct cell *c, const struct result *res)
{
	char size[32], p50[32], p99[32], p999[32], mps[32], gbs[32];
	char lo[32], hi[32], spread[80], max[32], cpu[32];

	bench_size_label(size, sizeof(size), c->size);
	fmt_num(p50, sizeof(p50), res->has_latency, res->p50_ns / 1e3, 3,
		'f');
	fmt_num(p99, sizeof(p99), res->has_latency, res->p99_ns / 1e3, 3,
		'f');
	fmt_num(p999, sizeof(p999), res->has_latency, res->p999_ns / 1e3, 3,
		'f');
	/* Rates span 10^-3 (1 MiB) to 10^2 Mmsg/s: 4 significant digits. */
	fmt_num(mps, sizeof(mps), res->has_rate, res->mps / 1e6, 4, 'g');
	fmt_num(gbs, sizeof(gbs), res->has_rate,
		res->mps * (double)c->size / 1e9, 3, 'f');
	fmt_num(lo, sizeof(lo), res->has_rate, res->mps_min / 1e6, 4, 'g');
	fmt_num(hi, sizeof(hi), res->has_rate, res->mps_max / 1e6, 4, 'g');
	fmt_num(max, sizeof(max), res->has_max, res->max_ns / 1e3, 1, 'f');
	fmt_num(cpu, sizeof(cpu), res->has_cpu, res->cpu_ns / 1e3, 3, 'f');
	if (c->sc == SC_LOAD)
		snprintf(spread, sizeof(spread), "load %.0f%%",
			 c->load * 100);
	else if (c->sc == SC_FANOUT)
		snprintf(spread, sizeof(spread), "%u consumers", c->fan);
	else if (c->sc == SC_FANIN)
		snprintf(spread, sizeof(spread), "%u producers", c->fan);
	else if (c->sc == SC_IDLE)
		snprintf(spread, sizeof(spread), "idle: %.1f%% CPU",
			 res->cpu_ns / 1e7);
	else if (res->has_p50_spread)
		snprintf(spread, sizeof(spread), "p50 %.3f..%.3f",
			 res->p50_min_ns / 1e3, res->p50_max_ns / 1e3);
	else if (res->has_rate)
		snprintf(spread, sizeof(spread), "%s..%s", lo, hi);
	else
		snprintf(spread, sizeof(spread), "-");
	printf("%-10s %-10s %7s %9s %9s %9s %9s %9s %8s %21s %8s %4u %8"
	       PRIu64 "\n", scenario_names[c->sc], c->tp->name, size, p50, p99,
	       p999, max, mps, gbs, spread, cpu, res->reps, res->samples);
	fflush(stdout);
}

static void json_num(char *buf, size_t len, bool has, double v, int prec)
{
	if (has)
		snprintf(buf, len, "%.*f", prec, v);
	else
		snprintf(buf, len, "null");
}

static void print_json(const struct cell *c, const struct result *res)
{
	char p50[32], p99[32], p999[32], mps[32], gbs[32], lo[32], hi[32];
	char max[32], cpu[32], load[32], p50lo[32], p50hi[32];

	json_num(p50, sizeof(p50), res->has_latency, res->p50_ns, 1);
	json_num(p99, sizeof(p99), res->has_latency, res->p99_ns, 1);
	json_num(p999, sizeof(p999), res->has_latency, res->p999_ns, 1);
	json_num(mps, sizeof(mps), res->has_rate, res->mps, 0);
	json_num(gbs, sizeof(gbs), res->has_rate,
		 res->mps * (double)c->size / 1e9, 4);
	json_num(lo, sizeof(lo), res->has_rate, res->mps_min, 0);
	json_num(hi, sizeof(hi), res->has_rate, res->mps_max, 0);
	json_num(max, sizeof(max), res->has_max, res->max_ns, 1);
	json_num(cpu, sizeof(cpu), res->has_cpu, res->cpu_ns, 1);
	json_num(load, sizeof(load), c->sc == SC_LOAD, c->load, 3);
	json_num(p50lo, sizeof(p50lo), res->has_p50_spread, res->p50_min_ns, 1);
	json_num(p50hi, sizeof(p50hi), res->has_p50_spread, res->p50_max_ns, 1);
	printf("{\"scenario\":\"%s\",\"transport\":\"%s\",\"size\":%zu,"
	       "\"p50_min_ns\":%s,\"p50_max_ns\":%s,\"p50_ns\":%s,\"p99_ns\":%s,\"p999_ns\":%s,\"max_ns\":%s,"
	       "\"msgs_per_s\":%s,\"gbytes_per_s\":%s,"
	       "\"msgs_per_s_min\":%s,\"msgs_per_s_max\":%s,"
	       "\"load\":%s,\"fan\":%u,\"cpu_ns_per_msg\":%s,"
	       "\"cpu_of\":\"%s\","
	       "\"reps\":%u,\"samples\":%" PRIu64 ",\"pinned\":%s}\n",
	       scenario_names[c->sc], c->tp->name, c->size, p50lo, p50hi,
	       p50, p99, p999, max, mps, gbs, lo, hi, load, c->fan, cpu,
	       c->sc == SC_LOAD || c->sc == SC_IDLE ? "consumer" : "all",
	       res->reps,
	       res->samples, cfg.cpus.pin ? "true" : "false");
	fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Command line                                                             */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: zbus-bench [--json|--csv] [--quick] "
		"[--scenario latency|throughput|load|fanout|fanin|idle|all]\n"
		"                  [--transport NAME[,NAME...]] "
		"[--sizes 64,4096,1048576] [--reps R] [--fan 2,4]\n"
		"transports: zbus, zbus-mp, zbus-copy, zbus-block, shm-ring, unix, "
		"pipe, tcp, mq, zmq, iceoryx\n"
		"            (or all); sizes take k/M suffixes, 1..64M; mq skips "
		"the sizes the\n"
		"            kernel's limits refuse (fs.mqueue.msgsize_max, "
		"ulimit -q) and says so\n");
}

static const char *transport_name(size_t i)
{
	return transports[i]->name;
}

/* --fan N[,N...]: children of the fan-out and fan-in scenarios. */
static int parse_fans(const char *arg)
{
	char *copy = strdup(arg), *tok, *save = NULL;
	int ret = 0;

	if (!copy)
		return bench_usage_error("out of memory");
	cfg.nfans = 0;
	for (tok = strtok_r(copy, ",", &save); !ret && tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (cfg.nfans == sizeof(cfg.fans) / sizeof(cfg.fans[0]))
			ret = bench_usage_error("--fan: at most %zu values",
						sizeof(cfg.fans) /
							sizeof(cfg.fans[0]));
		else
			ret = bench_parse_uint(tok, "--fan", 1, MAX_FAN,
					       &cfg.fans[cfg.nfans++]);
	}
	free(copy);
	if (!ret && !cfg.nfans)
		ret = bench_usage_error("--fan needs a number");
	return ret;
}

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "csv", no_argument, NULL, 'c' },
		{ "quick", no_argument, NULL, 'q' },
		{ "scenario", required_argument, NULL, 's' },
		{ "transport", required_argument, NULL, 't' },
		{ "sizes", required_argument, NULL, 'S' },
		{ "reps", required_argument, NULL, 'r' },
		{ "fan", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool reps_set = false, fans_set = false;
	int c, ret = 0;

	cfg.scenarios = (1u << SC_COUNT) - 1;
	cfg.transports = (1u << N_TRANSPORTS) - 1;
	cfg.sizes[0] = 64;
	cfg.sizes[1] = 4096;
	cfg.sizes[2] = MiB;
	cfg.nsizes = 3;
	cfg.reps = 5;
	cfg.fans[0] = 2;
	cfg.fans[1] = 4;
	cfg.nfans = 2;

	opterr = 0;
	while (!ret && (c = getopt_long(argc, argv, "jcqs:t:S:r:F:h", opts,
					NULL)) != -1) {
		switch (c) {
		case 'j':
			cfg.json = true;
			break;
		case 'c':
			cfg.csv = true;
			break;
		case 'q':
			cfg.quick = true;
			break;
		case 's':
			if (!strcmp(optarg, "latency"))
				cfg.scenarios = 1u << SC_LATENCY;
			else if (!strcmp(optarg, "throughput"))
				cfg.scenarios = 1u << SC_THROUGHPUT;
			else if (!strcmp(optarg, "load"))
				cfg.scenarios = 1u << SC_LOAD;
			else if (!strcmp(optarg, "fanout"))
				cfg.scenarios = 1u << SC_FANOUT;
			else if (!strcmp(optarg, "fanin"))
				cfg.scenarios = 1u << SC_FANIN;
			else if (!strcmp(optarg, "idle"))
				cfg.scenarios = 1u << SC_IDLE;
			else if (!strcmp(optarg, "all"))
				cfg.scenarios = (1u << SC_COUNT) - 1;
			else
				ret = bench_usage_error("unknown scenario '%s'",
							optarg);
			break;
		case 't':
			ret = bench_parse_names(optarg, transport_name,
						N_TRANSPORTS,
						&cfg.transports);
			break;
		case 'S':
			ret = bench_parse_sizes(optarg, cfg.sizes, MAX_SIZES,
						&cfg.nsizes, 1, MAX_SIZE);
			break;
		case 'r':
			ret = bench_parse_uint(optarg, "--reps", 1, MAX_REPS,
					       &cfg.reps);
			reps_set = true;
			break;
		case 'F':
			ret = parse_fans(optarg);
			fans_set = true;
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
	/* Three keeps a real median while staying a smoke test. */
	if (cfg.quick && !reps_set)
		cfg.reps = 3;
	/* One fan is enough to see fan-out and fan-in work. */
	if (cfg.quick && !fans_set)
		cfg.nfans = 1;
	return ret;
}

static int setup(void)
{
	int ret = bench_setup(&cfg.cpus);

	if (ret < 0)
		return ret;
	g_shared = bench_map_shared(sizeof(*g_shared));
	g_fan = bench_map_shared(sizeof(*g_fan));
	return g_shared && g_fan ? 0 : -ENOMEM;
}

static int run_cell(const struct cell *c, struct result *res)
{
	memset(res, 0, sizeof(*res));
	if (c->sc == SC_LATENCY)
		return run_latency(c, res);
	if (c->sc == SC_LOAD)
		return run_load(c, res);
	if (c->sc == SC_FANOUT)
		return run_fanout(c, c->fan, res);
	if (c->sc == SC_FANIN)
		return run_fanin(c, c->fan, res);
	if (c->sc == SC_IDLE)
		return run_idle(c, res);
	return run_throughput(c, res);
}

/* Why (@sc, @tp, @size) cannot run, or NULL. */
static const char *fan_skip(enum scenario sc, const struct transport *tp,
			    size_t size)
{
	if (sc == SC_FANIN && fan_shares_link(tp) && size < 16)
		return "fan-in over one channel stamps each producer's "
		       "messages: 16 bytes or more";
	return NULL;
}

/* The fan rows of (@sc, @tp, @size): one per number of children. */
static int run_fans(enum scenario sc, const struct transport *tp,
		    size_t size,
		    void (*print)(const struct cell *, const struct result *))
{
	struct result res;
	struct cell c;
	int ret;

	for (unsigned int k = 0; k < cfg.nfans; k++) {
		cell_init(&c, SC_THROUGHPUT, tp, size);
		c.sc = sc;
		c.fan = cfg.fans[k];
		c.timeout_s *= c.fan;
		/* A socket moves each message once per child: keep the run
		 * about as long as a throughput cell. */
		if (c.count > 20000)
			c.count = 20000;
		ret = run_cell(&c, &res);
		if (ret < 0)
			return ret;
		print(&c, &res);
	}
	return 0;
}

/* The offered loads, as fractions of the saturation rate. */
static const double load_fractions[] = { 0.1, 0.5, 0.8, 0.95, 1.0 };
#define N_LOADS (sizeof(load_fractions) / sizeof(load_fractions[0]))

/* A load cell of about @count messages (a warm-up of a tenth first). */
static void cell_init_count(struct cell *c, uint64_t count, double secs)
{
	c->count = clamp_u64(count, 200, 2000000);
	c->warmup = c->count / 10 > 50 ? c->count / 10 : 50;
	c->timeout_s = 30 + (unsigned int)(4 * secs);
}

/*
 * The load scenario of (@tp, @size): its saturation first (the same
 * scenario, flat out), then a row per offered load up to it, each for a
 * fixed time.
 */
static int run_loads(const struct transport *tp, size_t size,
		     void (*print)(const struct cell *, const struct result *))
{
	double secs = cfg.quick ? 0.02 : 0.3;
	struct result res;
	struct cell c;
	double top;
	int ret;

	/*
	 * Saturation: the same load cell, everything due at once, so that
	 * the producer sends flat out and the consumer, clock and histogram
	 * included, takes what it can: the rate it sustained is the top.
	 * An uninstrumented throughput run would overstate it, and the 80-
	 * 100% rows would then measure a queue that only grows.
	 */
	cell_init(&c, SC_LOAD, tp, size);
	c.rate = 1e18;
	cell_init_count(&c, c.count, secs);
	ret = run_cell(&c, &res);
	if (ret < 0)
		return ret;
	if (g_shared->t_end_ns <= g_shared->t_warm_ns)
		return bench_fail(-EPROTO, "load: no time went by");
	top = (double)c.count * 1e9 /
	      (double)(g_shared->t_end_ns - g_shared->t_warm_ns);
	/* --quick: 80% and full load only, enough to see it work. */
	for (size_t k = cfg.quick ? N_LOADS - 3 : 0; k < N_LOADS;
	     k += cfg.quick ? 2 : 1) {
		cell_init(&c, SC_LOAD, tp, size);
		c.load = load_fractions[k];
		c.rate = top * c.load;
		cell_init_count(&c, (uint64_t)(c.rate * secs), secs);
		ret = run_cell(&c, &res);
		if (ret < 0)
			return ret;
		print(&c, &res);
	}
	return 0;
}

/* The output a row goes to: a table, JSON lines or CSV. */
static void print_result(const struct cell *c, const struct result *res)
{
	if (cfg.json)
		print_json(c, res);
	else if (cfg.csv)
		print_csv(c, res);
	else
		print_row(c, res);
}

/* The rows of (@sc, @tp, @size), or a line saying why it cannot run. */
static int run_one(enum scenario sc, const struct transport *tp,
		   size_t size)
{
	char whybuf[160], label[32];
	struct result res;
	const char *why = NULL;
	struct cell c;
	int ret;

	if (tp->available)
		why = tp->available(size, whybuf, sizeof(whybuf));
	if (!why && (sc == SC_FANOUT || sc == SC_FANIN))
		why = fan_skip(sc, tp, size);
	if (why) {
		print_skip(sc, tp, size, why);
		return 0;
	}
	if (sc == SC_LOAD) {
		ret = run_loads(tp, size, print_result);
	} else if (sc == SC_FANOUT || sc == SC_FANIN) {
		ret = run_fans(sc, tp, size, print_result);
	} else {
		cell_init(&c, sc, tp, size);
		ret = run_cell(&c, &res);
		if (!ret)
			print_result(&c, &res);
	}
	if (ret < 0) {
		bench_size_label(label, sizeof(label), size);
		fprintf(stderr, "zbus-bench: %s %s %s: %s\n",
			scenario_names[sc], tp->name, label, bench_err);
	}
	return ret;
}

int main(int argc, char **argv)
{
	unsigned int sc, si;
	size_t ti;

	bench_prog = "zbus-bench";
	if (parse_args(argc, argv) < 0)
		return 2;
	if (setup() < 0) {
		fprintf(stderr, "zbus-bench: %s\n", bench_err);
		return 1;
	}
	if (cfg.csv)
		print_csv_header();
	else if (!cfg.json)
		print_machine();

	for (sc = 0; sc < SC_COUNT; sc++) {
		if (!(cfg.scenarios & (1u << sc)))
			continue;
		for (si = 0; si < cfg.nsizes; si++)
			for (ti = 0; ti < N_TRANSPORTS; ti++)
				if ((cfg.transports & (1u << ti)) &&
				    run_one(sc, transports[ti],
					    cfg.sizes[si]) < 0)
					return 1;
	}
	return 0;
}
