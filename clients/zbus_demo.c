/* SPDX-License-Identifier: MIT */
/*
 * zbus_demo.c - the quick-start demo: producers and consumers in separate
 * processes stream messages through one channel, every payload checked,
 * then a report of what went through and how fast.
 *
 *   zbus-demo [-p PRODUCERS] [-c CONSUMERS] [-n MESSAGES] [-s SIZE]
 *             [--lossy N] [--socket PATH]
 *
 * The channel is created through the broker (which the library starts by
 * itself when none answers); every producer and consumer process connects
 * on its own and opens the channel by name, as separate programs would.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zbus/zbus.h>

#define MAX_PROCS 16

struct report {
	uint64_t received, missed, bad, corrupt;
	uint64_t first_ns, last_ns;
	int ready;
};

struct demo {
	int producers, consumers, lossy;
	uint64_t messages; /* per producer */
	size_t size;
	const char *socket;
	char name[64];      /* the channel, by name */
	struct report *rep; /* shared: consumers' reports */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Payload: producer id, index, then bytes derived from both. */
static void fill(uint8_t *b, size_t len, uint32_t prod, uint64_t idx)
{
	memcpy(b, &prod, 4);
	memcpy(b + 4, &idx, 8);
	for (size_t i = 12; i < len; i++)
		b[i] = (uint8_t)(idx + prod + i);
}

static int intact(const uint8_t *b, size_t len)
{
	uint32_t prod;
	uint64_t idx;

	memcpy(&prod, b, 4);
	memcpy(&idx, b + 4, 8);
	for (size_t i = 12; i < len; i++)
		if (b[i] != (uint8_t)(idx + prod + i))
			return 0;
	return 1;
}

static int die(const char *what, int err)
{
	fprintf(stderr, "zbus-demo: %s: %s\n", what, zbus_strerror(err));
	return 1;
}

/* Connect to the broker and open the channel by name, as a peer would. */
static int open_by_name(const struct demo *d, uint32_t access,
			struct zbus_conn **conn, struct zbus_channel **ch)
{
	struct zbus_conn_opts co = { .socket_path = d->socket };
	int r = zbus_conn_open(&co, conn);

	if (r < 0)
		return die("connect to the broker", r);
	r = zbus_conn_open_channel(*conn, d->name, access, ch);
	if (r < 0)
		fprintf(stderr, "zbus-demo: open '%s': %s: %s\n", d->name,
			zbus_strerror(r), zbus_conn_error(*conn));
	return r < 0 ? 1 : 0;
}

static int run_producer(struct demo *d)
{
	struct zbus_conn *conn;
	struct zbus_channel *ch;
	struct zbus_pub *p;
	int r;

	if (open_by_name(d, ZBUS_ACCESS_PUBLISH, &conn, &ch))
		return 1;
	r = zbus_pub_new(ch, NULL, &p);
	if (r < 0)
		return die("publisher", r);
	/* Should this producer be killed mid-loan, the broker takes the
	 * loan back and the consumers go on. */
	r = zbus_conn_register_pub(conn, d->name, p);
	conn = zbus_conn_free(conn); /* the mapping outlives it */
	if (r < 0)
		return die("register the publisher", r);
	for (uint64_t i = 0; i < d->messages; i++) {
		struct zbus_loan l;

		r = zbus_pub_loan(p, d->size, &l);
		if (r < 0)
			return die("loan", r);
		fill(l.data, d->size, zbus_pub_id(p), i);
		zbus_pub_publish(p, &l, d->size);
	}
	zbus_pub_free(p);
	zbus_channel_free(ch);
	return 0;
}

static int run_consumer(struct demo *d, int idx)
{
	struct zbus_sub_opts o = {
		.policy = idx < d->lossy ? ZBUS_LOSSY : ZBUS_RELIABLE,
	};
	uint64_t total = d->messages * (uint64_t)d->producers;
	struct report *rep = &d->rep[idx];
	struct zbus_sub_stats st;
	struct zbus_channel *ch;
	struct zbus_conn *conn;
	struct zbus_msg m[64];
	struct zbus_sub *s;
	int r;

	if (open_by_name(d, ZBUS_ACCESS_SUBSCRIBE, &conn, &ch))
		return 1;
	r = zbus_sub_new(ch, &o, &s);
	if (r < 0)
		return die("subscribe", r);
	/* Should this consumer be killed, the broker frees its slot and
	 * the producers go on. */
	r = zbus_conn_register_sub(conn, d->name, s);
	conn = zbus_conn_free(conn);
	if (r < 0)
		return die("register the subscription", r);
	__atomic_store_n(&rep->ready, 1, __ATOMIC_RELEASE);
	for (;;) {
		uint64_t bad = 0;

		r = zbus_sub_recv_batch(s, m, 64, 2000);
		if (r == -ETIMEDOUT)
			break;
		if (r == -EBADMSG)
			continue;
		if (r < 0)
			return die("receive", r);
		if (!rep->first_ns)
			rep->first_ns = now_ns();
		for (int i = 0; i < r; i++)
			bad += !intact(m[i].data, m[i].size);
		/* A lossy batch overwritten while read is discarded. */
		if (zbus_sub_release(s) == 0)
			rep->corrupt += bad;
		rep->last_ns = now_ns();
		zbus_sub_stats(s, &st);
		if (st.received + st.missed >= total)
			break;
	}
	zbus_sub_stats(s, &st);
	rep->received = st.received;
	rep->missed = st.missed;
	rep->bad = st.bad;
	zbus_sub_free(s);
	zbus_channel_free(ch);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: zbus-demo [-p PRODUCERS] [-c CONSUMERS] [-n MESSAGES]\n"
		"                 [-s SIZE] [--lossy N] [--socket PATH]\n"
		"  -p  producer processes (default 2)\n"
		"  -c  consumer processes (default 3)\n"
		"  -n  messages per producer (default 1000000)\n"
		"  -s  payload bytes (default 256, at least 12)\n"
		"  --lossy N  the first N consumers are lossy (default 0)\n"
		"  --socket PATH  the broker's socket (default: $ZBUS_SOCKET,\n"
		"             $XDG_RUNTIME_DIR/zbus/zbusd.sock, /run/zbus/zbusd.sock;\n"
		"             a broker is started there if none answers)\n");
}

static int parse(int argc, char **argv, struct demo *d)
{
	static const struct option opts[] = {
		{ "lossy", required_argument, NULL, 'l' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	*d = (struct demo){ .producers = 2, .consumers = 3,
			    .messages = 1000000, .size = 256 };
	while ((c = getopt_long(argc, argv, "p:c:n:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': d->producers = atoi(optarg); break;
		case 'c': d->consumers = atoi(optarg); break;
		case 'n': d->messages = strtoull(optarg, NULL, 10); break;
		case 's': d->size = strtoull(optarg, NULL, 10); break;
		case 'l': d->lossy = atoi(optarg); break;
		case 'S': d->socket = optarg; break;
		default: usage(); return -1;
		}
	}
	if (d->producers < 1 || d->producers > MAX_PROCS ||
	    d->consumers < 1 || d->consumers > MAX_PROCS || d->size < 12 ||
	    d->size > (1u << 26) || d->lossy < 0 ||
	    d->lossy > d->consumers) {
		usage();
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct zbus_channel_params cp = { .geometry.ring_capacity = 4096,
					  .mode = 0600 };
	struct zbus_conn_opts co = { 0 };
	pid_t pids[2 * MAX_PROCS];
	struct zbus_channel_info info;
	uint64_t start, end = 0, total;
	struct zbus_channel *ch;
	struct zbus_conn *conn;
	struct demo d;
	int n = 0, failed = 0, r;

	if (parse(argc, argv, &d) < 0)
		return 2;
	snprintf(d.name, sizeof(d.name), "demo-%d", (int)getpid());
	cp.geometry.max_msg_size = (uint32_t)d.size;
	cp.geometry.arena_bytes = d.size * 64 > (8u << 20) ? d.size * 64
							   : (8u << 20);
	co.socket_path = d.socket;
	r = zbus_conn_open(&co, &conn);
	if (r < 0)
		return die("connect to the broker (or start one)", r);
	r = zbus_conn_create(conn, d.name, &cp, &ch);
	if (r < 0) {
		fprintf(stderr, "zbus-demo: create '%s': %s: %s\n", d.name,
			zbus_strerror(r), zbus_conn_error(conn));
		return 1;
	}
	zbus_channel_info(ch, &info);
	zbus_channel_free(ch); /* the broker keeps it; peers open it */
	d.rep = mmap(NULL, sizeof(*d.rep) * MAX_PROCS, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (d.rep == MAP_FAILED)
		return die("mmap", -errno);
	memset(d.rep, 0, sizeof(*d.rep) * MAX_PROCS);

	printf("channel '%s' created through the broker: %u descriptors, "
	       "%lu KiB arena, max message %u B (layout v%u.%u, sealed data "
	       "and state memfds)\n", d.name,
	       info.ring_capacity, (unsigned long)(info.arena_bytes >> 10),
	       info.max_msg_size, info.version_major, info.version_minor);
	printf("running %d producer(s) x %lu messages of %zu B -> %d "
	       "consumer(s) (%d lossy), each its own process opening the "
	       "channel by name\n",
	       d.producers, (unsigned long)d.messages, d.size, d.consumers,
	       d.lossy);
	fflush(stdout);

	for (int i = 0; i < d.consumers; i++) {
		pids[n] = fork();
		if (!pids[n])
			_exit(run_consumer(&d, i));
		n++;
	}
	for (int i = 0; i < d.consumers; i++)
		for (int t = 0; t < 5000 &&
				!__atomic_load_n(&d.rep[i].ready,
						 __ATOMIC_ACQUIRE);
		     t++)
			usleep(1000);
	start = now_ns();
	for (int i = 0; i < d.producers; i++) {
		pids[n] = fork();
		if (!pids[n])
			_exit(run_producer(&d));
		n++;
	}
	for (int i = 0; i < n; i++) {
		int st;

		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st))
			failed = 1;
	}

	total = d.messages * (uint64_t)d.producers;
	printf("\n%-10s %-9s %12s %10s %8s %8s %10s %9s\n", "consumer",
	       "policy", "received", "missed", "bad", "corrupt", "Mmsg/s",
	       "GB/s");
	for (int i = 0; i < d.consumers; i++) {
		struct report *rp = &d.rep[i];
		double secs = (rp->last_ns - start) / 1e9;

		if (rp->last_ns > end)
			end = rp->last_ns;
		printf("%-10d %-9s %12lu %10lu %8lu %8lu %10.2f %9.2f\n", i,
		       i < d.lossy ? "lossy" : "reliable",
		       (unsigned long)rp->received,
		       (unsigned long)rp->missed, (unsigned long)rp->bad,
		       (unsigned long)rp->corrupt,
		       secs > 0 ? rp->received / secs / 1e6 : 0.0,
		       secs > 0 ? rp->received * d.size / secs / 1e9 : 0.0);
		if (rp->corrupt || rp->bad ||
		    (i >= d.lossy && rp->received != total) ||
		    rp->received + rp->missed != total)
			failed = 1;
	}
	printf("\n%lu messages published; every reliable consumer got all of "
	       "them, checked byte by byte: %s\n",
	       (unsigned long)total, failed ? "NO" : "yes");
	printf("wall time %.3f s for %.1f MB delivered in total\n",
	       (end - start) / 1e9,
	       (double)total * d.size * d.consumers / 1e6);
	zbus_conn_delete(conn, d.name);
	zbus_conn_free(conn);
	return failed;
}
