/* SPDX-License-Identifier: MIT */
/*
 * bench_ipc.c - zbus-bench: libzbus side by side with the IPC it competes with
 *
 * Transports, each moving one message of a fixed size at a time:
 *   zbus       loan, write in place, publish; receive a batch in place,
 *              release; the publisher is exclusive (ZBUS_PUB_EXCLUSIVE)
 *   zbus-mp    the same through the multi-producer claim (16-byte CAS)
 *   zbus-copy  zbus_pub_send() and zbus_sub_recv(): one copy on each side
 *   shm-ring   a bare single-producer single-consumer ring in a shared
 *              mapping, busy-polled: the floor the hardware allows
 *   unix       AF_UNIX stream socketpair
 *   pipe       pipe2()
 *   iceoryx    Eclipse iceoryx 2.0 through its C binding, zero-copy as zbus:
 *              loan, write in place, publish; take in place, release; its
 *              RouDi daemon is started on a private configuration at first
 *              use and stopped at exit (tp_iceoryx.c; optional at build)
 *
 * Scenarios:
 *   latency     ping-pong over two links (one per direction); one-way latency
 *               is half of each round trip, timed by the initiator
 *   throughput  one-way stream; the clock runs from the producer's first
 *               timed send to the consumer's last receive
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
#include <sys/socket.h>
#include <unistd.h>

#include <zbus/zbus.h>

#include "bench_util.h"
#include "transport.h"
#define MAX_SIZES 16
#define MAX_SIZE (16 * MiB)	/* rings hold several: keep memory sane */
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
		/* Never block in the library: we busy-poll like shm-ring. */
		memset(&po, 0, sizeof(po));
		po.timeout_ms = 0;
		po.flags = l->tp->pub_flags;
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

static int zc_recv(struct link *l, uint64_t seq)
{
	struct zlink *z = &l->z;
	const struct zbus_msg *m;
	int ret;

	if (z->idx == z->cnt) {
		BENCH_SPIN(ret, zbus_sub_recv_batch(z->sub, z->msgs,
						    RECV_BATCH, 0),
			   "zbus_sub_recv_batch");
		if (ret < 0)
			return bench_zfail(ret, "zbus_sub_recv_batch");
		if (ret == 0 || ret > RECV_BATCH)
			return bench_fail(-EPROTO, "zbus_sub_recv_batch "
					  "returned %d for at most %d", ret,
					  RECV_BATCH);
		z->cnt = (unsigned int)ret;
		z->idx = 0;
	}

	m = &z->msgs[z->idx++];
	if (m->size != l->size)
		return bench_fail(-EBADMSG, "zbus message %" PRIu64 " has "
				  "%zu bytes, expected %zu", seq, m->size,
				  l->size);
	ret = bench_payload_check(m->data, m->size, seq);
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

/* unix, pipe ------------------------------------------------------------- */

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

static int fd_open(struct link *l, enum role role)
{
	int unused = role == ROLE_TX ? 0 : 1;

	/* Drop the other end: a dead peer reads as EOF or EPIPE, not a hang. */
	close(l->f.fd[unused]);
	l->f.fd[unused] = -1;
	return 0;
}

static void fd_close(struct link *l)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (l->f.fd[i] >= 0)
			close(l->f.fd[i]);
		l->f.fd[i] = -1;
	}
}

static int fd_send(struct link *l, uint64_t seq)
{
	bench_payload_fill(l->buf, l->size, seq);
	return bench_write_full(l->f.fd[1], l->buf, l->size, l->tp->name);
}

static int fd_recv(struct link *l, uint64_t seq)
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
	},
	{
		/* The same, through the multi-producer claim (16-byte CAS). */
		.name = "zbus-mp", .copies = false,
		.create = zlink_create, .open = zlink_open,
		.send = zc_send, .recv = zc_recv, .close = zlink_close,
	},
	{
		.name = "zbus-copy", .copies = true,
		.pub_flags = ZBUS_PUB_EXCLUSIVE,
		.create = zlink_create, .open = zlink_open,
		.send = zcopy_send, .recv = zcopy_recv, .close = zlink_close,
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

enum scenario { SC_LATENCY, SC_THROUGHPUT, SC_COUNT };

static const char *const scenario_names[SC_COUNT] = {
	[SC_LATENCY] = "latency",
	[SC_THROUGHPUT] = "throughput",
};

struct config {
	bool json;
	bool quick;
	unsigned int scenarios;		/* bit per enum scenario */
	unsigned int transports;	/* bit per transports[] entry */
	size_t sizes[MAX_SIZES];
	unsigned int nsizes;
	unsigned int reps;		/* throughput repetitions */
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
};

struct result {
	uint64_t samples;
	unsigned int reps;
	bool has_latency;
	double p50_ns, p99_ns, p999_ns;
	bool has_rate;
	double mps, mps_min, mps_max;
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
 * Counts aim at about a minute for the whole default run on 2 cores, where
 * a socket or pipe round trip costs 25-70 µs (the hypervisor wakes the
 * other vCPU) and dominates; --quick only checks that everything works.
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
		c->count = cfg.quick ? clamp_u64(4 * MiB / size, 20, 200) :
				       clamp_u64(GiB / size, 1000, 50000);
		c->warmup = c->count / 10 > 10 ? c->count / 10 : 10;
		c->reps = 1;
		bytes = 2 * (c->count + c->warmup) * size;
	} else {
		c->count = cfg.quick ? clamp_u64(8 * MiB / size, 8, 2000) :
				       clamp_u64(512 * MiB / size, 64, 1000000);
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
};

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

static int run_latency(const struct cell *c, struct result *res)
{
	struct session s;
	uint64_t *rtt;
	int ret;

	rtt = calloc(c->count, sizeof(*rtt));
	if (!rtt)
		return bench_fail(-ENOMEM, "calloc");
	ret = session_start(&s, c, 2, latency_child);
	if (!ret)
		ret = latency_parent(&s, rtt);
	ret = session_end(&s, ret);
	if (!ret) {
		/* One way is half a round trip. */
		qsort(rtt, c->count, sizeof(*rtt), cmp_u64);
		res->has_latency = true;
		res->p50_ns = percentile(rtt, c->count, 0.50) / 2.0;
		res->p99_ns = percentile(rtt, c->count, 0.99) / 2.0;
		res->p999_ns = percentile(rtt, c->count, 0.999) / 2.0;
		res->samples = c->count;
		res->reps = 1;
	}
	free(rtt);
	return ret;
}

/* Consumer: drain the warm-up, say so, then time the rest to the end. */
static int stream_child(struct session *s)
{
	struct link *in = &s->link[0];
	const struct cell *c = s->cell;
	uint64_t i;
	int ret;

	ret = link_open(in, ROLE_RX);
	if (!ret)
		ret = notify_parent(s);
	for (i = 0; !ret && i < c->warmup; i++)
		ret = in->tp->recv(in, i);
	if (!ret)
		ret = notify_parent(s);
	for (; !ret && i < c->warmup + c->count; i++)
		ret = in->tp->recv(in, i);
	if (!ret)
		g_shared->t_end_ns = bench_now_ns();
	return ret;
}

static int stream_parent(struct session *s, uint64_t *t_start)
{
	struct link *out = &s->link[0];
	const struct cell *c = s->cell;
	uint64_t i;
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
	for (; !ret && i < c->warmup + c->count; i++)
		ret = out->tp->send(out, i);
	return ret;
}

static int run_throughput(const struct cell *c, struct result *res)
{
	struct session s;
	uint64_t t_start = 0, t_end;
	double *mps;
	unsigned int r, n = c->reps;
	int ret = 0;

	mps = calloc(n, sizeof(*mps));
	if (!mps)
		return bench_fail(-ENOMEM, "calloc");
	for (r = 0; !ret && r < n; r++) {
		ret = session_start(&s, c, 1, stream_child);
		if (!ret)
			ret = stream_parent(&s, &t_start);
		ret = session_end(&s, ret);
		/* The child has exited: its timestamp is final. */
		t_end = g_shared->t_end_ns;
		if (!ret && t_end <= t_start)
			ret = bench_fail(-EPROTO, "consumer finished at "
					 "%" PRIu64 " before the producer "
					 "started at %" PRIu64, t_end,
					 t_start);
		if (!ret)
			mps[r] = (double)c->count * 1e9 /
				 (double)(t_end - t_start);
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
	}
	free(mps);
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
	printf("\n%-10s %-9s %7s %10s %10s %10s %9s %8s %21s %4s %8s\n",
	       "scenario", "transport", "size", "p50(us)", "p99(us)",
	       "p99.9(us)", "Mmsg/s", "GB/s", "Mmsg/s min..max", "reps",
	       "samples");
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

/* A transport that cannot run here: said in the output, never silent. */
static void print_skip(enum scenario sc, const struct transport *tp,
		       size_t size, const char *why)
{
	char label[32];

	if (cfg.json) {
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
	char lo[32], hi[32], spread[80];

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
	if (res->has_rate)
		snprintf(spread, sizeof(spread), "%s..%s", lo, hi);
	else
		snprintf(spread, sizeof(spread), "-");
	printf("%-10s %-9s %7s %10s %10s %10s %9s %8s %21s %4u %8" PRIu64 "\n",
	       scenario_names[c->sc], c->tp->name, size, p50, p99, p999, mps,
	       gbs, spread, res->reps, res->samples);
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

	json_num(p50, sizeof(p50), res->has_latency, res->p50_ns, 1);
	json_num(p99, sizeof(p99), res->has_latency, res->p99_ns, 1);
	json_num(p999, sizeof(p999), res->has_latency, res->p999_ns, 1);
	json_num(mps, sizeof(mps), res->has_rate, res->mps, 0);
	json_num(gbs, sizeof(gbs), res->has_rate,
		 res->mps * (double)c->size / 1e9, 4);
	json_num(lo, sizeof(lo), res->has_rate, res->mps_min, 0);
	json_num(hi, sizeof(hi), res->has_rate, res->mps_max, 0);
	printf("{\"scenario\":\"%s\",\"transport\":\"%s\",\"size\":%zu,"
	       "\"p50_ns\":%s,\"p99_ns\":%s,\"p999_ns\":%s,"
	       "\"msgs_per_s\":%s,\"gbytes_per_s\":%s,"
	       "\"msgs_per_s_min\":%s,\"msgs_per_s_max\":%s,"
	       "\"reps\":%u,\"samples\":%" PRIu64 ",\"pinned\":%s}\n",
	       scenario_names[c->sc], c->tp->name, c->size, p50, p99, p999,
	       mps, gbs, lo, hi, res->reps, res->samples,
	       cfg.cpus.pin ? "true" : "false");
	fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Command line                                                             */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: zbus-bench [--json] [--quick] "
		"[--scenario latency|throughput|all]\n"
		"                  [--transport NAME[,NAME...]] "
		"[--sizes 64,4096,1048576] [--reps R]\n"
		"transports: zbus, zbus-mp, zbus-copy, shm-ring, unix, pipe, "
		"iceoryx (or all);\n"
		"sizes take k/M suffixes, 1..16M\n");
}

static const char *transport_name(size_t i)
{
	return transports[i]->name;
}

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "quick", no_argument, NULL, 'q' },
		{ "scenario", required_argument, NULL, 's' },
		{ "transport", required_argument, NULL, 't' },
		{ "sizes", required_argument, NULL, 'S' },
		{ "reps", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool reps_set = false;
	int c, ret = 0;

	cfg.scenarios = (1u << SC_COUNT) - 1;
	cfg.transports = (1u << N_TRANSPORTS) - 1;
	cfg.sizes[0] = 64;
	cfg.sizes[1] = 4096;
	cfg.sizes[2] = MiB;
	cfg.nsizes = 3;
	cfg.reps = 5;

	opterr = 0;
	while (!ret && (c = getopt_long(argc, argv, "jqs:t:S:r:h", opts,
					NULL)) != -1) {
		switch (c) {
		case 'j':
			cfg.json = true;
			break;
		case 'q':
			cfg.quick = true;
			break;
		case 's':
			if (!strcmp(optarg, "latency"))
				cfg.scenarios = 1u << SC_LATENCY;
			else if (!strcmp(optarg, "throughput"))
				cfg.scenarios = 1u << SC_THROUGHPUT;
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
	return ret;
}

static int setup(void)
{
	int ret = bench_setup(&cfg.cpus);

	if (ret < 0)
		return ret;
	g_shared = bench_map_shared(sizeof(*g_shared));
	return g_shared ? 0 : -ENOMEM;
}

static int run_cell(const struct cell *c, struct result *res)
{
	memset(res, 0, sizeof(*res));
	if (c->sc == SC_LATENCY)
		return run_latency(c, res);
	return run_throughput(c, res);
}

int main(int argc, char **argv)
{
	struct result res;
	struct cell c;
	char size[32], whybuf[160];
	const char *why;
	unsigned int sc, si;
	size_t ti;
	int ret;

	bench_prog = "zbus-bench";
	if (parse_args(argc, argv) < 0)
		return 2;
	if (setup() < 0) {
		fprintf(stderr, "zbus-bench: %s\n", bench_err);
		return 1;
	}
	if (!cfg.json)
		print_machine();

	for (sc = 0; sc < SC_COUNT; sc++) {
		if (!(cfg.scenarios & (1u << sc)))
			continue;
		for (si = 0; si < cfg.nsizes; si++) {
			for (ti = 0; ti < N_TRANSPORTS; ti++) {
				if (!(cfg.transports & (1u << ti)))
					continue;
				if (transports[ti]->available &&
				    (why = transports[ti]->available(
					     cfg.sizes[si], whybuf,
					     sizeof(whybuf)))) {
					print_skip(sc, transports[ti],
						   cfg.sizes[si], why);
					continue;
				}
				cell_init(&c, sc, transports[ti],
					  cfg.sizes[si]);
				ret = run_cell(&c, &res);
				if (ret < 0) {
					bench_size_label(size, sizeof(size),
							 c.size);
					fprintf(stderr, "zbus-bench: %s %s %s: "
						"%s\n", scenario_names[sc],
						c.tp->name, size, bench_err);
					return 1;
				}
				if (cfg.json)
					print_json(&c, &res);
				else
					print_row(&c, &res);
			}
		}
	}
	return 0;
}
