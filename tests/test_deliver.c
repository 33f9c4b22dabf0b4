/* SPDX-License-Identifier: MIT */
/*
 * test_deliver.c - subscriptions the broker delivers (zbus_conn_subscribe()
 * for a process that maps nothing of the channel), with a real zbusd, real
 * producer processes and, across users, real processes of uid nobody.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conn.h"
#include "testutil.h"
#include "zbus/zbus.h"

#define NOBODY 65534
#define ZBD_TEST_MAX_DELIVERIES 16 /* broker/delivery.h, per user */

static struct tu_broker bk;
static struct zbus_conn_opts bco;

static void setup(void)
{
	int r;

	tu_leak_begin();
	r = tu_broker_start(&bk);
	cr_assert_eq(r, 0, "broker: %s", strerror(-r));
	bco = (struct zbus_conn_opts){ .socket_path = bk.sock,
				       .flags = ZBUS_CONN_NO_AUTOSTART |
						ZBUS_CONN_NO_RECONNECT };
}

static void teardown(void)
{
	if (bk.pid)
		tu_broker_stop(&bk);
	tu_leak_end();
}

TestSuite(deliver, .init = setup, .fini = teardown, .timeout = 60);

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to run processes of two users");
}

/* Make channel @name through the broker; the connection stays open. */
static struct zbus_conn *make_channel(const char *name, uint32_t max_msg,
				      uint32_t ring, uint32_t mode)
{
	struct zbus_channel_params cp = {
		.geometry = { .max_msg_size = max_msg, .ring_capacity = ring },
		.mode = mode,
	};
	struct zbus_channel *ch;
	struct zbus_conn *c;

	cr_assert_eq(zbus_conn_open(&bco, &c), 0);
	cr_assert_eq(zbus_conn_create(c, name, &cp, &ch), 0, "%s",
		     zbus_conn_error(c));
	zbus_channel_free(ch);
	return c;
}

/* Message @i of a stream: its size, then its bytes. */
static size_t msg_size(uint64_t i, size_t max)
{
	return (size_t)((i * 7919u) % (max + 1));
}

static uint8_t msg_byte(uint64_t i, size_t k)
{
	return (uint8_t)(i * 31 + k);
}

static void msg_fill(uint8_t *p, uint64_t i, size_t n)
{
	for (size_t k = 0; k < n; k++)
		p[k] = msg_byte(i, k);
}

static int msg_ok(const uint8_t *p, uint64_t i, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (p[k] != msg_byte(i, k))
			return 0;
	return 1;
}

/*
 * Fork a producer: it opens @name, waits for a byte on @go (if >= 0), and
 * publishes @n messages of msg_size(i, @max) bytes, blocking for room up to
 * 10 s each. Exit 0, or the negated error.
 */
static pid_t producer(const char *name, uint64_t n, size_t max, int go)
{
	pid_t pid = fork();

	cr_assert_neq(pid, -1);
	if (!pid) {
		struct zbus_pub_opts po = { .timeout_ms = 10000 };
		struct zbus_channel *ch;
		struct zbus_conn *c;
		struct zbus_pub *pub;
		uint8_t *buf = malloc(max ? max : 1);
		char b;

		if (!buf || zbus_conn_open(&bco, &c) ||
		    zbus_conn_open_channel(c, name, ZBUS_ACCESS_PUBLISH, &ch) ||
		    zbus_pub_new(ch, &po, &pub))
			_exit(100);
		if (go >= 0 && read(go, &b, 1) != 1)
			_exit(101);
		for (uint64_t i = 0; i < n; i++) {
			size_t sz = msg_size(i, max);
			int r;

			msg_fill(buf, i, sz);
			r = zbus_pub_send(pub, buf, sz);
			if (r < 0)
				_exit(-r);
		}
		_exit(0);
	}
	return pid;
}

/* Receive @n messages of the stream producer() sends, checking each. */
static void receive_stream(struct zbus_sub *s, uint64_t n, size_t max)
{
	struct zbus_msg m[16];
	uint64_t got = 0;

	while (got < n) {
		unsigned want = n - got < 16 ? (unsigned)(n - got) : 16;
		int k = zbus_sub_recv_batch(s, m, want, 5000);

		cr_assert_gt(k, 0, "receive after %llu: %s",
			     (unsigned long long)got, zbus_strerror(k));
		for (int i = 0; i < k; i++, got++) {
			cr_assert_eq(m[i].missed, 0);
			cr_assert_eq(m[i].size, msg_size(got, max));
			cr_assert(msg_ok(m[i].data, got, m[i].size),
				  "message %llu garbled", (unsigned long long)got);
			cr_assert_eq(m[i].flags & ZBUS_MSG_REF, 0);
		}
		cr_assert_eq(zbus_sub_validate(s), 0);
		cr_assert_eq(zbus_sub_release(s), 0);
	}
}

Test(deliver, a_delivered_subscription_reads_with_the_same_api)
{
	struct zbus_sub_opts so = { .rx_bytes = 64 << 10 };
	struct zbus_conn *c = make_channel("dl", 4096, 64, 0600);
	struct zbus_sub_stat *subs = NULL;
	struct zbus_sub_stats st;
	struct zbus_sub *s;
	uint8_t buf[4096];
	struct pollfd p;
	pid_t pid;
	int r;

	cr_assert_eq(zbus_conn_subscribe(c, "dl", &so, ZBUS_SUBSCRIBE_DELIVERED,
					 &s), 0, "%s", zbus_conn_error(c));
	/* Nothing to watch of ours: the broker's slot is the broker's. */
	cr_assert_eq(zbus_conn_register_sub(c, "dl", s), -EINVAL);
	cr_assert_eq(zbus_sub_recv_batch(s, (struct zbus_msg[1]){ 0 }, 1, 0),
		     -EAGAIN);
	/* More than the delivery ring holds: it is given back as we go. */
	pid = producer("dl", 3000, 4000, -1);
	receive_stream(s, 2000, 4000);
	/*
	 * The pollable fd, and the copying receive, as zbus_sub_fd() says:
	 * receive until -EAGAIN, then poll, read the fd, and again. (The
	 * blocking receives above may have read the fd with messages still
	 * in the ring: a poll first could wait for a signal already taken.)
	 */
	p = (struct pollfd){ .fd = zbus_sub_fd(s), .events = POLLIN };
	cr_assert_geq(p.fd, 0);
	for (uint64_t i = 2000; i < 3000;) {
		struct zbus_msg info;
		uint64_t ticks;

		r = zbus_sub_recv(s, buf, sizeof(buf), &info, 0);
		if (r == -EAGAIN) {
			cr_assert_eq(poll(&p, 1, 5000), 1, "message %llu",
				     (unsigned long long)i);
			cr_assert_eq(read(p.fd, &ticks, sizeof(ticks)),
				     (ssize_t)sizeof(ticks));
			continue;
		}
		cr_assert_eq(r, (int)msg_size(i, 4000), "message %llu: %d",
			     (unsigned long long)i, r);
		cr_assert(msg_ok(buf, i, (size_t)r));
		i++;
	}
	cr_assert_eq(tu_wait_child(pid, 10), 0);
	cr_assert_eq(zbus_sub_stats(s, &st), 0);
	cr_assert_eq(st.received, 3000);
	cr_assert_eq(st.missed, 0);
	/* Listed as ours, not as zbusd's: its slot is the broker's. */
	cr_assert_eq(zbus_conn_subscribers(c, "dl", &subs), 1, "%s",
		     zbus_conn_error(c));
	cr_expect_eq(subs[0].pid, (uint32_t)getpid());
	cr_expect_eq(subs[0].uid, (uint32_t)getuid());
	free(subs);
	zbus_sub_free(s);
	zbus_conn_free(c);
}

/* A child of uid nobody: subscribe to @name with @flags, receive @n of the
 * stream; exit 0, or the negated error, or 2xx for a failed check. */
static int nobody_receives(const char *name, uint64_t n, size_t max,
			   uint32_t flags, int expect_maps)
{
	int up[2], down[2];
	pid_t pid, prod;
	char b;

	cr_assert_eq(pipe(up), 0);
	cr_assert_eq(pipe(down), 0);
	pid = fork();
	if (!pid) {
		struct zbus_channel *ch;
		struct zbus_conn *c;
		struct zbus_sub *s;
		struct zbus_msg m;
		uint64_t got = 0;
		int r;

		if (setgid(NOBODY) || setuid(NOBODY))
			_exit(200);
		if (zbus_conn_open(&bco, &c))
			_exit(201);
		/* The fast path refuses it: no segment for this user. */
		if (!expect_maps &&
		    zbus_conn_open_channel(c, name, ZBUS_ACCESS_SUBSCRIBE,
					   &ch) != -EACCES)
			_exit(202);
		r = zbus_conn_subscribe(c, name, NULL, flags, &s);
		if (r < 0)
			_exit(-r);
		if ((tu_count_zbus_maps() > 0) != expect_maps)
			_exit(203);
		if (write(up[1], "k", 1) != 1)
			_exit(204);
		while (got < n) {
			r = zbus_sub_recv_batch(s, &m, 1, 5000);
			if (r < 0)
				_exit(-r);
			if (m.size != msg_size(got, max) ||
			    !msg_ok(m.data, got, m.size))
				_exit(205);
			zbus_sub_release(s);
			got++;
		}
		zbus_sub_free(s);
		zbus_conn_free(c);
		_exit(0);
	}
	close(up[1]);
	if (read(up[0], &b, 1) != 1) {
		close(up[0]);
		close(down[0]);
		close(down[1]);
		return tu_wait_child(pid, 10);
	}
	close(up[0]);
	prod = producer(name, n, max, down[0]);
	close(down[0]);
	cr_assert_eq(write(down[1], "g", 1), 1);
	close(down[1]);
	cr_assert_eq(tu_wait_child(prod, 20), 0, "the producer failed");
	return tu_wait_child(pid, 20);
}

Test(deliver, execute_only_gives_deliveries_and_no_segment)
{
	struct zbus_conn *c;

	need_root();
	c = make_channel("xonly", 8192, 64, 0601);
	cr_assert_eq(nobody_receives("xonly", 500, 8000, 0, 0), 0);
	zbus_conn_free(c);
}

Test(deliver, read_permission_maps_as_before)
{
	struct zbus_conn *c;

	need_root();
	c = make_channel("readable", 8192, 64, 0604);
	cr_assert_eq(nobody_receives("readable", 500, 8000, 0, 1), 0);
	zbus_conn_free(c);
}

Test(deliver, neither_read_nor_execute_is_eacces)
{
	struct zbus_conn *c;

	need_root();
	c = make_channel("closed", 4096, 64, 0600);
	cr_assert_eq(nobody_receives("closed", 1, 100,
				     ZBUS_SUBSCRIBE_DELIVERED, 0), EACCES);
	zbus_conn_free(c);
}

/*
 * A sandbox that forbids shared mappings (seccomp: mmap with MAP_SHARED is
 * EPERM): the mapping fails, the broker delivers instead.
 */
static void forbid_shared_mappings(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, args[3])),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MAP_SHARED, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]),
				   .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		_exit(210);
}

Test(deliver, a_mapping_that_fails_falls_back_to_delivery)
{
	struct zbus_conn *c = make_channel("sandbox", 4096, 64, 0600);
	pid_t prod, pid;
	int go[2];

	cr_assert_eq(pipe(go), 0);
	pid = fork();
	if (!pid) {
		struct zbus_channel *ch;
		struct zbus_conn *k;
		struct zbus_sub *s;
		int r;

		close(go[0]);
		forbid_shared_mappings();
		if (zbus_conn_open(&bco, &k))
			_exit(201);
		r = zbus_conn_open_channel(k, "sandbox", ZBUS_ACCESS_SUBSCRIBE,
					   &ch);
		if (r != -EPERM)
			_exit(202); /* the sandbox works as meant */
		r = zbus_conn_subscribe(k, "sandbox", NULL, 0, &s);
		if (r < 0)
			_exit(-r);
		if (tu_count_zbus_maps() != 0 || write(go[1], "g", 1) != 1)
			_exit(203);
		for (uint64_t i = 0; i < 300; i++) {
			struct zbus_msg m;

			r = zbus_sub_recv_batch(s, &m, 1, 5000);
			if (r < 0)
				_exit(-r);
			if (m.size != msg_size(i, 4000) ||
			    !msg_ok(m.data, i, m.size))
				_exit(205);
			zbus_sub_release(s);
		}
		zbus_sub_free(s);
		zbus_conn_free(k);
		_exit(0);
	}
	close(go[1]);
	prod = producer("sandbox", 300, 4000, go[0]);
	close(go[0]);
	cr_assert_eq(tu_wait_child(pid, 20), 0, "the sandboxed subscriber");
	cr_assert_eq(tu_wait_child(prod, 20), 0);
	zbus_conn_free(c);
}

Test(deliver, a_message_larger_than_the_ring_is_emsgsize_for_it_alone)
{
	struct zbus_sub_opts so = { .rx_bytes = 64 << 10 };
	struct zbus_conn *c = make_channel("big", 256 << 10, 64, 0600);
	struct zbus_channel *ch;
	struct zbus_pub *pub;
	struct zbus_sub_stats st;
	struct zbus_sub *s;
	static uint8_t big[200 << 10];
	struct zbus_msg m;

	cr_assert_eq(zbus_conn_subscribe(c, "big", &so,
					 ZBUS_SUBSCRIBE_DELIVERED, &s), 0);
	cr_assert_eq(zbus_conn_open_channel(c, "big", ZBUS_ACCESS_PUBLISH,
					    &ch), 0);
	cr_assert_eq(zbus_pub_new(ch, NULL, &pub), 0);
	cr_assert_eq(zbus_pub_send(pub, "one", 3), 0);
	cr_assert_eq(zbus_pub_send(pub, big, sizeof(big)), 0);
	cr_assert_eq(zbus_pub_send(pub, "three", 5), 0);
	cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 5000), 1);
	cr_assert_eq(m.size, 3);
	cr_assert_eq(memcmp(m.data, "one", 3), 0);
	zbus_sub_release(s);
	cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 5000), -EMSGSIZE);
	cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 5000), 1);
	cr_assert_eq(m.size, 5);
	cr_assert_eq(m.seq, 2);
	cr_assert_eq(memcmp(m.data, "three", 5), 0);
	zbus_sub_release(s);
	zbus_sub_stats(s, &st);
	cr_assert_eq(st.received, 2);
	cr_assert_eq(st.missed, 1);
	zbus_pub_free(pub);
	zbus_channel_free(ch);
	zbus_sub_free(s);
	zbus_conn_free(c);
}

Test(deliver, a_reliable_delivered_subscriber_holds_producers_back)
{
	struct zbus_sub_opts so = { .rx_bytes = 64 << 10 };
	struct zbus_conn *c = make_channel("slow", 4096, 8, 0600);
	struct zbus_channel *ch;
	struct zbus_pub_opts po = { .timeout_ms = 100 };
	struct zbus_pub *pub;
	struct zbus_sub *s;
	uint8_t buf[4000];
	int sent = 0, r = 0;

	cr_assert_eq(zbus_conn_subscribe(c, "slow", &so,
					 ZBUS_SUBSCRIBE_DELIVERED, &s), 0);
	cr_assert_eq(zbus_conn_open_channel(c, "slow", ZBUS_ACCESS_PUBLISH,
					    &ch), 0);
	cr_assert_eq(zbus_pub_new(ch, &po, &pub), 0);
	/* Nobody reads: the delivery ring (15 of these) and the channel's
	 * ring (8) fill, then the producer waits. */
	while (sent < 100) {
		msg_fill(buf, (uint64_t)sent, sizeof(buf));
		r = zbus_pub_send(pub, buf, sizeof(buf));
		if (r < 0)
			break;
		sent++;
	}
	cr_assert_eq(r, -ETIMEDOUT, "sent %d, then %d", sent, r);
	cr_assert_lt(sent, 30, "%d sent past a full delivery", sent);
	cr_assert_geq(sent, 15);
	/* Everything sent arrives, nothing lost. */
	for (int i = 0; i < sent; i++) {
		struct zbus_msg m;

		cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 5000), 1);
		cr_assert_eq(m.seq, (uint64_t)i);
		cr_assert_eq(m.missed, 0);
		cr_assert(msg_ok(m.data, (uint64_t)i, sizeof(buf)));
		zbus_sub_release(s);
	}
	/* And the producer goes on. */
	cr_assert_eq(zbus_pub_send(pub, buf, sizeof(buf)), 0);
	zbus_pub_free(pub);
	zbus_channel_free(ch);
	zbus_sub_free(s);
	zbus_conn_free(c);
}

Test(deliver, a_lossy_delivered_subscriber_counts_what_it_missed)
{
	struct zbus_sub_opts so = { .policy = ZBUS_LOSSY,
				    .rx_bytes = 64 << 10 };
	struct zbus_conn *c = make_channel("lossy", 4096, 8, 0600);
	struct zbus_channel *ch;
	struct zbus_pub *pub;
	struct zbus_sub *s;
	struct zbus_sub_stats st;
	struct zbus_msg m;
	uint8_t buf[4000];
	uint64_t last = 0, got = 0, missed = 0;
	int r;

	cr_assert_eq(zbus_conn_subscribe(c, "lossy", &so,
					 ZBUS_SUBSCRIBE_DELIVERED, &s), 0);
	cr_assert_eq(zbus_conn_open_channel(c, "lossy", ZBUS_ACCESS_PUBLISH,
					    &ch), 0);
	cr_assert_eq(zbus_pub_new(ch, NULL, &pub), 0);
	/* Never held back, though nobody reads. */
	for (uint64_t i = 0; i < 500; i++) {
		msg_fill(buf, i, sizeof(buf));
		cr_assert_eq(zbus_pub_send(pub, buf, sizeof(buf)), 0);
	}
	while ((r = zbus_sub_recv_batch(s, &m, 1, 1000)) == 1) {
		uint64_t want = (got ? last + 1 : 0) + m.missed;

		cr_assert(msg_ok(m.data, m.seq, sizeof(buf)),
			  "message %llu garbled", (unsigned long long)m.seq);
		cr_assert_eq(m.seq, want, "seq %llu after %llu with %llu "
			     "missed", (unsigned long long)m.seq,
			     (unsigned long long)last,
			     (unsigned long long)m.missed);
		missed += m.missed;
		last = m.seq;
		got++;
		zbus_sub_release(s);
		if (last == 499)
			break;
	}
	cr_assert_eq(last, 499, "last %llu (%d)", (unsigned long long)last, r);
	cr_assert_lt(got, 500, "nothing was lost: the test proves nothing");
	/* Every message is either received or counted as missed. */
	cr_assert_eq(got + missed, 500);
	zbus_sub_stats(s, &st);
	cr_assert_eq(st.received, got);
	cr_assert_eq(st.missed, missed);
	zbus_pub_free(pub);
	zbus_channel_free(ch);
	zbus_sub_free(s);
	zbus_conn_free(c);
}

/*
 * Fork a producer that publishes @size bytes of its private memory by
 * reference (registered with the broker when @registered, which is what
 * lets the broker pull it), once it reads a byte on @go, and waits until
 * the subscribers are done. Exit 0, or the negated error.
 */
static pid_t ref_producer(const char *name, size_t size, int registered,
			  int go)
{
	pid_t pid = fork();

	cr_assert_neq(pid, -1);
	if (!pid) {
		struct zbus_channel *ch;
		struct zbus_conn *c;
		struct zbus_pub *pub;
		uint8_t *buf = malloc(size);
		uint64_t seq;
		char b;
		int r;

		if (!buf || zbus_conn_open(&bco, &c) ||
		    zbus_conn_open_channel(c, name, ZBUS_ACCESS_PUBLISH, &ch) ||
		    zbus_pub_new(ch, NULL, &pub) ||
		    (registered && zbus_conn_register_pub(c, name, pub)))
			_exit(100);
		msg_fill(buf, 77, size);
		if (read(go, &b, 1) != 1)
			_exit(101);
		r = zbus_pub_send_ref(pub, buf, size, &seq);
		if (!r)
			r = zbus_pub_ref_wait(pub, seq, 10000);
		_exit(r < 0 ? -r : 0);
	}
	return pid;
}

Test(deliver, messages_by_reference_arrive_pulled_in_full)
{
	const size_t size = 1u << 20;
	struct zbus_sub_opts so = { .rx_bytes = 4u << 20 };
	struct zbus_conn *c = make_channel("byref", 4096, 64, 0600);
	struct zbus_sub_stats st;
	struct zbus_sub *s;
	struct zbus_msg m;
	int go[2];
	pid_t pid;

	cr_assert_eq(zbus_conn_subscribe(c, "byref", &so,
					 ZBUS_SUBSCRIBE_DELIVERED, &s), 0);
	/* A publisher the broker does not vouch for: an error for that
	 * message, and its producer still hears the subscriber is done. */
	cr_assert_eq(pipe(go), 0);
	pid = ref_producer("byref", 4096, 0, go[0]);
	cr_assert_eq(write(go[1], "g", 1), 1);
	cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 5000), -ESRCH);
	cr_assert_eq(tu_wait_child(pid, 10), 0);
	/* A registered one: the whole payload, in place, not by reference. */
	pid = ref_producer("byref", size, 1, go[0]);
	close(go[0]);
	cr_assert_eq(write(go[1], "g", 1), 1);
	close(go[1]);
	cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 5000), 1);
	cr_assert_eq(m.size, size);
	cr_assert_eq(m.flags & ZBUS_MSG_REF, 0);
	cr_assert(msg_ok(m.data, 77, size));
	cr_assert_eq(zbus_sub_pull(s, &m, 0, (uint8_t[1]){ 0 }, 1), -EINVAL);
	zbus_sub_release(s);
	/* The completion notice reached the producer. */
	cr_assert_eq(tu_wait_child(pid, 10), 0);
	zbus_sub_stats(s, &st);
	cr_assert_eq(st.received, 1);
	cr_assert_eq(st.pull_failed, 1);
	zbus_sub_free(s);
	zbus_conn_free(c);
}

/* Subscribers of @name the broker counts (its own slots included). */
static uint32_t subscribers(struct zbus_conn *c, const char *name)
{
	struct zbus_channel_stat st;

	cr_assert_eq(zbus_conn_stat(c, name, &st), 0, "%s",
		     zbus_conn_error(c));
	return st.subscribers;
}

/* Wait until the broker counts @want subscribers of @name (a connection
 * that reconnects may fail meanwhile). */
static int wait_subscribers(struct zbus_conn *c, const char *name,
			    uint32_t want)
{
	for (int i = 0; i < 500; i++) {
		struct zbus_channel_stat st;

		if (zbus_conn_stat(c, name, &st) == 0 &&
		    st.subscribers == want)
			return 0;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

Test(deliver, a_killed_delivered_subscriber_holds_nobody_back)
{
	struct zbus_conn *c = make_channel("killed", 4096, 8, 0600);
	struct zbus_pub_opts po = { .timeout_ms = 2000 };
	struct zbus_channel *ch;
	struct zbus_pub *pub;
	int up[2];
	pid_t pid;
	char b;

	cr_assert_eq(pipe(up), 0);
	pid = fork();
	if (!pid) {
		struct zbus_conn *k;
		struct zbus_sub *s;

		if (zbus_conn_open(&bco, &k) ||
		    zbus_conn_subscribe(k, "killed", NULL,
					ZBUS_SUBSCRIBE_DELIVERED, &s) ||
		    write(up[1], "k", 1) != 1)
			_exit(1);
		pause(); /* never reads: reliable, it holds the producer */
		_exit(0);
	}
	close(up[1]);
	cr_assert_eq(read(up[0], &b, 1), 1);
	close(up[0]);
	cr_assert_eq(subscribers(c, "killed"), 1);
	cr_assert_eq(zbus_conn_open_channel(c, "killed", ZBUS_ACCESS_PUBLISH,
					    &ch), 0);
	cr_assert_eq(zbus_pub_new(ch, &po, &pub), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	/* Its socket closed: the broker ends the delivery, frees its slot. */
	cr_assert_eq(wait_subscribers(c, "killed", 0), 0);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(zbus_pub_send(pub, "x", 1), 0, "message %d", i);
	zbus_pub_free(pub);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

Test(deliver, the_broker_ending_is_epipe_and_its_successor_frees_its_slot)
{
	struct zbus_conn_opts o = bco;
	struct zbus_sub_opts so = { .rx_bytes = 64 << 10 };
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 4096,
							.ring_capacity = 8 } };
	struct zbus_pub_opts po = { .timeout_ms = 2000 };
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_pub *pub;
	struct zbus_sub *s;
	struct zbus_msg m;
	int r;

	/* This connection brings the channel back to the next broker. */
	o.flags = ZBUS_CONN_NO_AUTOSTART;
	cr_assert_eq(zbus_conn_open(&o, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "after", &cp, &ch), 0);
	cr_assert_eq(zbus_pub_new(ch, &po, &pub), 0);
	cr_assert_eq(zbus_conn_subscribe(c, "after", &so,
					 ZBUS_SUBSCRIBE_DELIVERED, &s), 0);
	cr_assert_eq(zbus_pub_send(pub, "a", 1), 0);
	cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 5000), 1);
	zbus_sub_release(s);
	cr_assert_eq(tu_broker_restart(&bk), 0);
	/* Received before it went are still ours; then the end. */
	r = zbus_sub_recv_batch(s, &m, 1, 5000);
	cr_assert_eq(r, -EPIPE, "%d", r);
	zbus_sub_free(s);
	/* The dead broker's reliable slot would hold the producer for ever:
	 * the next broker frees it once the channel is back. */
	cr_assert_eq(wait_subscribers(c, "after", 0), 0);
	for (int i = 0; i < 50; i++)
		cr_assert_eq(zbus_pub_send(pub, "b", 1), 0, "message %d", i);
	zbus_pub_free(pub);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

/* A SubscribeDelivered of our own making, with @n fds. */
static int raw_deliver(struct zbus_conn *c, const char *name, uint64_t addr,
		       uint64_t bytes, const int *fd, unsigned n)
{
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	Zbusctl__SubscribeDelivered sd = ZBUSCTL__SUBSCRIBE_DELIVERED__INIT;
	struct zb_fds fds = { .n = n, .fd = { -1, -1 } };
	Zbusctl__Reply *rep;
	int r;

	for (unsigned i = 0; i < n; i++)
		fds.fd[i] = fd[i];
	sd.name = (char *)name;
	sd.rx_addr = addr;
	sd.rx_bytes = bytes;
	req.body_case = ZBUSCTL__REQUEST__BODY_SUBSCRIBE_DELIVERED;
	req.subscribe_delivered = &sd;
	r = zb_conn_request(c, &req, &fds, &rep, NULL);
	if (r == 0)
		zbusctl__reply__free_unpacked(rep, NULL);
	return r;
}

Test(deliver, malformed_deliveries_are_refused_and_quotas_hold)
{
	struct zbus_conn *c = make_channel("checked", 4096, 64, 0600);
	struct zbus_sub *subs[ZBD_TEST_MAX_DELIVERIES + 1];
	struct zbus_sub_opts so = { .rx_bytes = 64 << 10 };
	int sv[2], p[2], fds[2], n, r;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				sv), 0);
	cr_assert_eq(pipe(p), 0);
	/* No fds, the wrong fds, a ring that is not a power of two. */
	cr_assert_eq(raw_deliver(c, "checked", 4096, 65536, NULL, 0), -EINVAL);
	fds[0] = sv[1];
	fds[1] = p[1];
	cr_assert_eq(raw_deliver(c, "checked", 4096, 65536, fds, 2), -EINVAL);
	fds[0] = p[0];
	fds[1] = sv[1];
	cr_assert_eq(raw_deliver(c, "checked", 4096, 65536, fds, 2), -EINVAL);
	cr_assert_eq(raw_deliver(c, "checked", 4096, 65537, fds, 2), -EINVAL);
	cr_assert_eq(raw_deliver(c, "nosuch", 4096, 65536, fds, 2), -ENOENT);
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
	cr_assert_eq(subscribers(c, "checked"), 0);
	/* One user's deliveries are bounded; the next is -EDQUOT. */
	for (n = 0; n <= ZBD_TEST_MAX_DELIVERIES; n++) {
		r = zbus_conn_subscribe(c, "checked", &so,
					ZBUS_SUBSCRIBE_DELIVERED, &subs[n]);
		if (r < 0)
			break;
	}
	cr_assert_eq(n, ZBD_TEST_MAX_DELIVERIES);
	cr_assert_eq(r, -EDQUOT, "%d: %s", r, zbus_conn_error(c));
	while (n--)
		zbus_sub_free(subs[n]);
	cr_assert_eq(wait_subscribers(c, "checked", 0), 0);
	zbus_conn_free(c);
}
