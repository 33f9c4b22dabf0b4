/* SPDX-License-Identifier: MIT */
/*
 * stress.c - concurrency scenarios shared by the Criterion tests and the
 * ThreadSanitizer runner (Criterion itself cannot run under TSan:
 * Snaipe/Criterion#274). Many producers and subscribers on one channel, with
 * per-message checksums: once as forked processes (the real deployment),
 * once as threads on one mapping (so ThreadSanitizer sees every access).
 *
 * Reliable subscribers must get every message exactly once, in each
 * producer's order. Lossy ones must get no duplicates, no reordering, no
 * torn payload, and received + missed must equal what was published.
 *
 * Parameters (environment): ZBUS_STRESS_MSGS messages per producer
 * (default 500000 with processes, 50000 with threads).
 */
#include "stress.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "testutil.h"
#include "zbus/zbus.h"

#define NPROD 4
#define NSUB 3
#define MAX_MSG 600

struct sub_result {
	uint64_t received, missed, bad, torn, order_errors, stale_batches;
	uint64_t missed_fields; /* sum of zbus_msg.missed handed to us */
	uint64_t stale_msgs;    /* handed, then discarded as overwritten */
	uint64_t next_index[NPROD + 1]; /* by producer id (1-based) */
	int done, ok;
};

struct shared {
	struct sub_result subs[NSUB];
	int nprod;            /* producers in this run, 1..NPROD */
	int exclusive;        /* a sole producer with ZBUS_PUB_EXCLUSIVE */
	volatile int ready;   /* subscribers subscribed */
	volatile int go;
};

struct run {
	struct zbus_channel *ch;
	struct shared *sh;
	uint64_t per_producer;
	int index;
	uint32_t policy;
};

static size_t size_of(uint64_t i, int prod)
{
	return 20 + (size_t)((i * 7919 + (uint64_t)prod * 104729) % (MAX_MSG - 19));
}

static int producer(struct run *r)
{
	struct zbus_pub *p;
	struct zbus_pub_opts o = {
		.timeout_ms = -1,
		.flags = r->sh->exclusive ? ZBUS_PUB_EXCLUSIVE : 0,
	};
	int ret = zbus_pub_new(r->ch, &o, &p);

	if (ret < 0)
		return 10;
	for (uint64_t i = 0; i < r->per_producer; i++) {
		size_t len = size_of(i, r->index);
		struct zbus_loan l;

		ret = zbus_pub_loan(p, len, &l);
		if (ret < 0) {
			fprintf(stderr, "loan: %s\n", zbus_strerror(ret));
			zbus_pub_free(p);
			return 11;
		}
		tu_fill(l.data, len, zbus_pub_id(p), i);
		zbus_pub_publish(p, &l, len);
	}
	zbus_pub_free(p);
	return 0;
}

/* Check one batch; for lossy subscribers only count it if the payloads
 * were intact after we read them (validate is the seqlock's second read). */
static void consume_batch(struct zbus_sub *s, struct sub_result *res,
			  struct zbus_msg *m, int n, uint32_t policy)
{
	uint64_t next[NPROD + 1];
	uint64_t torn = 0, order = 0, missed = 0;

	memcpy(next, res->next_index, sizeof(next));
	for (int i = 0; i < n; i++) {
		uint32_t prod;
		uint64_t idx;

		missed += m[i].missed;
		int bad = policy == ZBUS_LOSSY ?
			tu_check_racy(m[i].data, m[i].size, &prod, &idx) :
			tu_check(m[i].data, m[i].size, &prod, &idx);

		if (bad < 0 ||
		    prod == 0 || prod > NPROD) {
			torn++;
			continue;
		}
		if (policy == ZBUS_RELIABLE ? idx != next[prod]
					    : idx < next[prod])
			order++;
		next[prod] = idx + 1;
	}
	res->missed_fields += missed;
	if (zbus_sub_release(s) < 0) {
		res->stale_batches++; /* discarded: counted as missed */
		res->stale_msgs += (uint64_t)n;
		return;
	}
	memcpy(res->next_index, next, sizeof(next));
	res->torn += torn;
	res->order_errors += order;
}

/* Why did a subscriber time out? Print what the ring says. */
static void stress_dump(struct zbus_channel *ch, struct zbus_sub *s, int idx)
{
	struct zb_segment *seg = &ch->seg;
	uint64_t cs = seg->ctl->claim_seq;

	fprintf(stderr, "sub %d stuck: claim seq %lu pos %lu waiters %u\n", idx,
		(unsigned long)cs, (unsigned long)seg->ctl->claim_pos,
		seg->sctl->prod_waiters);
	for (uint32_t i = 0; i < 4; i++) {
		struct zb_sub_slot *sl = &seg->slots[i];

		fprintf(stderr, "  slot %u state %u pol %u cons %lu/%lu wait %lu\n",
			i, sl->state, sl->policy, (unsigned long)sl->cons_seq,
			(unsigned long)sl->cons_pos, (unsigned long)sl->wait_seq);
	}
	for (uint64_t q = cs - 4; q != cs; q++) {
		struct zb_desc *d = &seg->ring[q & (seg->g.ring_capacity - 1)];

		fprintf(stderr, "  desc %lu commit %lu pos %lu len %u\n",
			(unsigned long)q, (unsigned long)d->commit,
			(unsigned long)d->pos, d->length);
	}
	(void)s;
}

static int subscriber(struct run *r)
{
	struct sub_result *res = &r->sh->subs[r->index];
	struct zbus_sub_opts o = { .policy = r->policy };
	uint64_t total = r->per_producer * (uint64_t)r->sh->nprod;
	struct zbus_sub_stats st;
	struct zbus_msg m[32];
	struct zbus_sub *s;
	uint64_t batches = 0;

	if (zbus_sub_new(r->ch, &o, &s) < 0)
		return 20;
	__atomic_add_fetch(&r->sh->ready, 1, __ATOMIC_SEQ_CST);
	for (;;) {
		int n = zbus_sub_recv_batch(s, m, 32, 3000);

		if (n == -ETIMEDOUT) {
			zbus_sub_stats(s, &st);
			if (st.received + st.missed < total)
				stress_dump(r->ch, s, r->index);
			break; /* the stream has ended (or we are stuck) */
		}
		if (n == -EBADMSG)
			continue;
		if (n < 0)
			return 21;
		consume_batch(s, res, m, n, r->policy);
		zbus_sub_stats(s, &st);
		if (st.received + st.missed >= total)
			break;
		/* A lossy subscriber that dawdles now and then is overrun:
		 * that is the case under test. */
		if (r->policy == ZBUS_LOSSY && !(++batches % 256))
			nanosleep(&(struct timespec){ 0, 2000000 }, NULL);
	}
	zbus_sub_stats(s, &st);
	res->received = st.received;
	res->missed = st.missed;
	res->bad = st.bad;
	res->done = 1;
	zbus_sub_free(s);
	return 0;
}

static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -1;
}

static int check_results(struct shared *sh, uint64_t per_producer,
			 const uint32_t *policy, char *err, size_t len)
{
	uint64_t total = per_producer * (uint64_t)sh->nprod;

	for (int i = 0; i < NSUB; i++) {
		struct sub_result *res = &sh->subs[i];

		if (!res->done)
			return fail(err, len, "subscriber %d did not finish", i);
		if (res->torn || res->order_errors || res->bad)
			return fail(err, len,
				    "sub %d: %lu torn, %lu out of order, %lu bad",
				    i, (unsigned long)res->torn,
				    (unsigned long)res->order_errors,
				    (unsigned long)res->bad);
		if (policy[i] == ZBUS_RELIABLE) {
			if (res->received != total || res->missed)
				return fail(err, len,
					    "reliable sub %d got %lu of %lu",
					    i, (unsigned long)res->received,
					    (unsigned long)total);
			for (int p = 1; p <= sh->nprod; p++)
				if (res->next_index[p] != per_producer)
					return fail(err, len,
						    "sub %d: producer %d ends at %lu",
						    i, p,
						    (unsigned long)res->next_index[p]);
		} else {
			/* The dawdling must have been overrun, or this
			 * run did not test what it claims to. */
			if (!res->missed)
				return fail(err, len,
					    "lossy sub %d never missed", i);
			/* Told exactly: every miss was reported on the next
			 * message, or was a batch we discarded as stale. */
			if (res->missed != res->missed_fields + res->stale_msgs)
				return fail(err, len,
					    "lossy sub %d: missed %lu, but "
					    "reported %lu + stale %lu", i,
					    (unsigned long)res->missed,
					    (unsigned long)res->missed_fields,
					    (unsigned long)res->stale_msgs);
			if (res->received + res->missed != total)
				return fail(err, len,
					    "lossy sub %d: %lu + %lu != %lu", i,
					    (unsigned long)res->received,
					    (unsigned long)res->missed,
					    (unsigned long)total);
		}
	}
	return 0;
}

static const uint32_t mixed[NSUB] = { ZBUS_RELIABLE, ZBUS_LOSSY,
				      ZBUS_RELIABLE };

static int wait_ready(struct shared *sh)
{
	for (int i = 0; i < 10000 &&
			__atomic_load_n(&sh->ready, __ATOMIC_SEQ_CST) < NSUB;
	     i++)
		usleep(1000);
	return __atomic_load_n(&sh->ready, __ATOMIC_SEQ_CST) == NSUB ? 0 : -1;
}

static int run_processes(struct zbus_channel *ch, struct shared *sh,
			 uint64_t per, char *err, size_t len)
{
	pid_t subs[NSUB], prods[NPROD];
	int r = 0;

	for (int i = 0; i < NSUB; i++) {
		struct run rn = { ch, sh, per, i, mixed[i] };

		subs[i] = fork();
		if (!subs[i])
			_exit(subscriber(&rn));
	}
	if (wait_ready(sh) < 0)
		r = fail(err, len, "subscribers did not start");
	for (int i = 0; i < sh->nprod; i++) {
		struct run rn = { ch, sh, r < 0 ? 0 : per, i, 0 };

		prods[i] = fork();
		if (!prods[i]) {
			/* Each producer attaches by fd, as a real peer. */
			struct zbus_channel *mine;

			if (zbus_channel_attach_dup(zbus_channel_fd(ch),
						    zbus_channel_state_fd(ch), &mine))
				_exit(12);
			rn.ch = mine;
			_exit(producer(&rn));
		}
	}
	for (int i = 0; i < sh->nprod; i++) {
		int st = tu_wait_child(prods[i], 400);

		if (st && !r)
			r = fail(err, len, "producer %d exited %d", i, st);
	}
	for (int i = 0; i < NSUB; i++) {
		int st = tu_wait_child(subs[i], 60);

		if (st && !r)
			r = fail(err, len, "subscriber %d exited %d", i, st);
	}
	return r;
}

static void *thread_main(void *arg)
{
	struct run *r = arg;

	return (void *)(intptr_t)(r->policy == 99 ? producer(r)
						   : subscriber(r));
}

static int run_threads(struct zbus_channel *ch, struct shared *sh,
		       uint64_t per, char *err, size_t len)
{
	struct run runs[NPROD + NSUB];
	pthread_t th[NPROD + NSUB];
	int started = 0, r = 0;
	void *ret;

	for (int i = 0; i < NSUB; i++) {
		runs[i] = (struct run){ ch, sh, per, i, mixed[i] };
		if (pthread_create(&th[started], NULL, thread_main, &runs[i]))
			return fail(err, len, "pthread_create");
		started++;
	}
	if (wait_ready(sh) < 0)
		r = fail(err, len, "subscribers did not start");
	for (int i = 0; i < sh->nprod; i++) {
		runs[NSUB + i] = (struct run){ ch, sh, r < 0 ? 0 : per, i, 99 };
		if (pthread_create(&th[started], NULL, thread_main,
				   &runs[NSUB + i]))
			break;
		started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], &ret);
		if ((intptr_t)ret && !r)
			r = fail(err, len, "thread %d exited %d", i,
				 (int)(intptr_t)ret);
	}
	return r;
}

int stress_mixed(uint64_t per_producer, int producers, int exclusive,
		 int use_threads, char *err, size_t len)
{
	struct zbus_channel_opts o = { .max_msg_size = MAX_MSG,
				       .ring_capacity = 512,
				       .arena_bytes = 64 * 1024 };
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct zbus_channel *ch;
	int r;

	if (sh == MAP_FAILED)
		return fail(err, len, "mmap: %s", strerror(errno));
	if (producers < 1 || producers > NPROD || (exclusive && producers != 1)) {
		munmap(sh, sizeof(*sh));
		return fail(err, len, "bad producer count %d", producers);
	}
	sh->nprod = producers;
	sh->exclusive = exclusive;
	r = zbus_channel_create("stress", &o, &ch);
	if (r < 0) {
		munmap(sh, sizeof(*sh));
		return fail(err, len, "create: %s", zbus_strerror(r));
	}
	r = use_threads ? run_threads(ch, sh, per_producer, err, len)
			: run_processes(ch, sh, per_producer, err, len);
	if (!r)
		r = check_results(sh, per_producer, mixed, err, len);
	zbus_channel_free(ch);
	munmap(sh, sizeof(*sh));
	return r;
}

struct pingpong {
	struct zbus_channel *a, *b; /* a: initiator -> echo, b: back */
	uint64_t rounds;
	int spin_us;
	struct zbus_sub *sub_a;     /* made before the initiator starts */
};

static int echo(struct pingpong *pp)
{
	struct zbus_pub *p;
	uint64_t v;
	int r;

	if (zbus_pub_new(pp->b, NULL, &p) < 0)
		return 30;
	for (uint64_t i = 0; i < pp->rounds; i++) {
		r = zbus_sub_recv(pp->sub_a, &v, sizeof(v), NULL, 5000);
		if (r != sizeof(v) || v != i) {
			fprintf(stderr, "echo: round %lu: %s\n",
				(unsigned long)i, zbus_strerror(r));
			zbus_pub_free(p);
			return 31;
		}
		if (zbus_pub_send(p, &v, sizeof(v)) < 0) {
			zbus_pub_free(p);
			return 32;
		}
	}
	zbus_pub_free(p);
	return 0;
}

static void *echo_thread(void *arg)
{
	return (void *)(intptr_t)echo(arg);
}

int stress_pingpong(uint64_t rounds, int spin_us, int use_threads,
		    char *err, size_t len)
{
	struct zbus_sub_opts so = { .policy = ZBUS_RELIABLE,
				    .spin_us = spin_us };
	struct zbus_channel_opts co = { .max_msg_size = 64,
					.ring_capacity = 64 };
	/* The two commits race sleeping subscribers differently: the CAS of
	 * a shared publisher (the echo's) and the plain store of an
	 * exclusive one (ours). A lost wake-up on either shows. */
	struct zbus_pub_opts xo = { .timeout_ms = -1,
				    .flags = ZBUS_PUB_EXCLUSIVE };
	struct pingpong pp = { .rounds = rounds, .spin_us = spin_us };
	struct zbus_sub *sub_b = NULL;
	struct zbus_pub *pub_a = NULL;
	pthread_t th;
	pid_t pid = -1;
	int r = 0;

	if (zbus_channel_create("ping", &co, &pp.a) < 0 ||
	    zbus_channel_create("pong", &co, &pp.b) < 0 ||
	    zbus_sub_new(pp.a, &so, &pp.sub_a) < 0 ||
	    zbus_sub_new(pp.b, &so, &sub_b) < 0 ||
	    zbus_pub_new(pp.a, &xo, &pub_a) < 0) {
		r = fail(err, len, "setup failed");
		goto out;
	}
	if (use_threads) {
		if (pthread_create(&th, NULL, echo_thread, &pp)) {
			r = fail(err, len, "pthread_create");
			goto out;
		}
	} else {
		pid = fork();
		if (!pid)
			_exit(echo(&pp));
	}
	for (uint64_t i = 0; i < rounds && !r; i++) {
		uint64_t v = ~0ull;
		int n;

		zbus_pub_send(pub_a, &i, sizeof(i));
		n = zbus_sub_recv(sub_b, &v, sizeof(v), NULL, 5000);
		if (n != sizeof(v) || v != i)
			r = fail(err, len, "round %lu: %s (a lost wake-up?)",
				 (unsigned long)i,
				 n < 0 ? zbus_strerror(n) : "wrong value");
	}
	if (use_threads) {
		void *ret;

		/* On failure the echo thread gives up by its own timeout. */
		pthread_join(th, &ret);
		if ((intptr_t)ret && !r)
			r = fail(err, len, "echo thread exited %d",
				 (int)(intptr_t)ret);
	} else {
		int st = tu_wait_child(pid, r ? 10 : 60);

		if (st && !r)
			r = fail(err, len, "echo process exited %d", st);
	}
out:
	zbus_pub_free(pub_a);
	zbus_sub_free(sub_b);
	zbus_sub_free(pp.sub_a);
	zbus_channel_free(pp.b);
	zbus_channel_free(pp.a);
	return r;
}

struct fdmode {
	struct zbus_channel *ch;
	uint64_t msgs;
};

static int burst_publisher(struct fdmode *f)
{
	struct zbus_pub_opts o = { .timeout_ms = 5000 };
	struct zbus_pub *p;
	int r = 0;

	if (zbus_pub_new(f->ch, &o, &p) < 0)
		return 40;
	for (uint64_t i = 0; i < f->msgs && !r; i++) {
		if (zbus_pub_send(p, &i, sizeof(i)) < 0)
			r = 41;
		else if (!(i % 97)) /* bursts and pauses */
			usleep(50);
	}
	zbus_pub_free(p);
	return r;
}

static void *burst_thread(void *arg)
{
	return (void *)(intptr_t)burst_publisher(arg);
}

int stress_fdmode(uint64_t msgs, int use_threads, char *err, size_t len)
{
	struct zbus_channel_opts co = { .max_msg_size = 64,
					.ring_capacity = 128 };
	struct fdmode f = { .msgs = msgs };
	struct zbus_sub *sub = NULL;
	uint64_t next = 0;
	pthread_t th;
	pid_t pid = -1;
	int fd, r = 0;

	if (zbus_channel_create("fdmode", &co, &f.ch) < 0)
		return fail(err, len, "create failed");
	if (zbus_sub_new(f.ch, NULL, &sub) < 0 || (fd = zbus_sub_fd(sub)) < 0) {
		r = fail(err, len, "subscribe or fd failed");
		goto out;
	}
	if (use_threads) {
		if (pthread_create(&th, NULL, burst_thread, &f)) {
			r = fail(err, len, "pthread_create");
			goto out;
		}
	} else {
		pid = fork();
		if (!pid)
			_exit(burst_publisher(&f));
	}
	while (next < msgs && !r) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		struct zbus_msg m[32];
		uint64_t v;
		int n;

		if (poll(&pfd, 1, 5000) != 1) {
			r = fail(err, len, "lost notification at %lu of %lu",
				 (unsigned long)next, (unsigned long)msgs);
			break;
		}
		if (read(fd, &v, sizeof(v)) != sizeof(v))
			continue; /* spurious readability is allowed */
		while ((n = zbus_sub_recv_batch(sub, m, 32, 0)) > 0) {
			for (int i = 0; i < n && !r; i++, next++) {
				memcpy(&v, m[i].data, sizeof(v));
				if (m[i].size != sizeof(v) || v != next)
					r = fail(err, len, "message %lu wrong",
						 (unsigned long)next);
			}
			zbus_sub_release(sub);
		}
		if (n != -EAGAIN && !r)
			r = fail(err, len, "recv: %s", zbus_strerror(n));
	}
	if (use_threads) {
		void *ret;

		/* Unblock a publisher stuck on a full ring after a failure. */
		sub = zbus_sub_free(sub);
		pthread_join(th, &ret);
		if ((intptr_t)ret && !r)
			r = fail(err, len, "publisher exited %d",
				 (int)(intptr_t)ret);
	} else {
		int st;

		sub = zbus_sub_free(sub);
		st = tu_wait_child(pid, 30);
		if (st && !r)
			r = fail(err, len, "publisher exited %d", st);
	}
out:
	zbus_sub_free(sub);
	zbus_channel_free(f.ch);
	return r;
}
