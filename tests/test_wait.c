/* SPDX-License-Identifier: MIT */
/*
 * test_wait.c - every way of waiting: receive timeouts, futex sleeps woken
 * from another process, producers waiting for room, and the pollable fd
 * (poll, epoll, a bursty stream that must never lose a notification).
 *
 * Peers are forked processes sharing the channel's mapping. A subscription
 * only sees messages published after it was made, so the parent always
 * subscribes before forking. Time is checked only as lower bounds (a
 * timeout did wait) or as a generous CPU-versus-wall ratio (a wait sleeps),
 * never as a speed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "testutil.h"
#include "zbus/zbus.h"

static struct zbus_channel *ch;

static void setup(void)
{
	tu_leak_begin();
}

static void teardown(void)
{
	ch = zbus_channel_free(ch);
	tu_leak_end();
}

TestSuite(wait, .init = setup, .fini = teardown, .timeout = 60);

static void make(uint32_t max_msg, uint32_t cap)
{
	struct zbus_channel_opts o = { .max_msg_size = max_msg,
				       .ring_capacity = cap };
	int r = zbus_channel_create("wait", &o, &ch);

	cr_assert_eq(r, 0, "create: %s", zbus_strerror(r));
}

static struct zbus_sub *sub_of(uint32_t policy, int32_t spin_us)
{
	struct zbus_sub_opts o = { .policy = policy, .spin_us = spin_us };
	struct zbus_sub *s;
	int r = zbus_sub_new(ch, &o, &s);

	cr_assert_eq(r, 0, "subscribe: %s", zbus_strerror(r));
	return s;
}

static struct zbus_pub *pub_with_timeout(int32_t timeout_ms)
{
	struct zbus_pub_opts o = { .timeout_ms = timeout_ms };
	struct zbus_pub *p;
	int r = zbus_pub_new(ch, &o, &p);

	cr_assert_eq(r, 0, "publisher: %s", zbus_strerror(r));
	return p;
}

static uint64_t ns_of(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ms(void)
{
	return ns_of(CLOCK_MONOTONIC) / 1000000;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Run @fn in a forked child and return its pid; the child exits with what
 * @fn returns. The child shares the channel's mapping (MAP_SHARED) and
 * must not touch the parent's subscriptions: freeing one would free the
 * parent's slot in shared memory. No Criterion assertions in there.
 */
static pid_t spawn(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* Never outlive a parent whose test failed: a blocked
		 * child would keep the runner waiting. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(30);
		_exit(fn(arg));
	}
	return pid;
}

static void reap_ok(pid_t pid)
{
	int st = tu_wait_child(pid, 10);

	cr_assert_eq(st, 0, "child failed (status %d)", st);
}

/* Child side: tell the parent we are about to block, over a pipe. */
static int signal_parent(int wfd)
{
	char c = 'x';

	return write(wfd, &c, 1) == 1 ? 0 : -1;
}

static void wait_for_child(int rfd)
{
	char c;

	cr_assert_eq(read(rfd, &c, 1), 1, "child never got ready");
}

/* Child side: publish @n filled messages of 20..83 bytes, indices from 0. */
static int publish_filled(struct zbus_pub *p, uint64_t n)
{
	uint8_t buf[128];

	for (uint64_t i = 0; i < n; i++) {
		size_t len = 20 + (size_t)(i * 7 % 64);

		tu_fill(buf, len, 1, i);
		if (zbus_pub_send(p, buf, len) != 0)
			return 1;
	}
	return 0;
}

static void check_filled(const struct zbus_msg *m, uint64_t idx)
{
	uint32_t prod;
	uint64_t got;

	cr_assert_eq(m->size, 20 + idx * 7 % 64, "message %lu: size %zu",
		     (unsigned long)idx, m->size);
	cr_assert_eq(tu_check(m->data, m->size, &prod, &got), 0,
		     "message %lu torn", (unsigned long)idx);
	cr_assert_eq(got, idx, "message %lu arrived as %lu",
		     (unsigned long)idx, (unsigned long)got);
}

/* --- Receive timeouts on an empty channel ------------------------------- */

Test(wait, empty_recv_with_timeout_zero_is_eagain)
{
	struct zbus_sub *s;
	struct zbus_msg m;

	make(64, 16);
	s = sub_of(ZBUS_RELIABLE, 0);
	cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 0), -EAGAIN);
	cr_assert_eq(zbus_sub_recv(s, NULL, 0, NULL, 0), -EAGAIN);
	zbus_sub_free(s);
}

static void expect_timeout_after(int32_t spin_us, int timeout_ms)
{
	struct zbus_sub *s;
	struct zbus_msg m;
	uint64_t t0, waited;
	int r;

	make(64, 16);
	s = sub_of(ZBUS_RELIABLE, spin_us);
	t0 = now_ms();
	r = zbus_sub_recv_batch(s, &m, 1, timeout_ms);
	waited = now_ms() - t0;
	cr_assert_eq(r, -ETIMEDOUT, "recv: %s", zbus_strerror(r));
	/* A lower bound: the timeout was honoured, not cut short. */
	cr_assert_geq(waited, (uint64_t)timeout_ms - 1,
		      "timed out after %lu ms of %d", (unsigned long)waited,
		      timeout_ms);
	zbus_sub_free(s);
}

Test(wait, empty_recv_times_out_after_the_timeout)
{
	expect_timeout_after(0, 100);
}

Test(wait, sleeping_recv_times_out_after_the_timeout)
{
	expect_timeout_after(-1, 100);
}

/* --- A sleeping receiver woken from another process ---------------------- */

static int late_publisher(void *arg)
{
	struct zbus_pub *p;
	int r;

	(void)arg;
	sleep_us(50000); /* the parent is asleep on its futex by then */
	if (zbus_pub_new(ch, NULL, &p) != 0)
		return 2;
	r = publish_filled(p, 1);
	zbus_pub_free(p);
	return r;
}

Test(wait, sleeping_recv_is_woken_by_a_publish_from_another_process)
{
	struct zbus_sub *s;
	struct zbus_msg m;
	pid_t pid;
	int r;

	make(256, 16);
	s = sub_of(ZBUS_RELIABLE, -1);
	pid = spawn(late_publisher, NULL);
	r = zbus_sub_recv_batch(s, &m, 1, 5000);
	cr_assert_eq(r, 1, "recv: %s", zbus_strerror(r));
	check_filled(&m, 0);
	cr_assert_eq(m.seq, 0);
	cr_assert_eq(zbus_sub_release(s), 0);
	reap_ok(pid);
	zbus_sub_free(s);
}

Test(wait, idle_blocking_recv_sleeps_instead_of_spinning)
{
	struct zbus_sub *s;
	struct zbus_msg m;
	uint64_t wall0, cpu0, wall, cpu;
	int r;

	make(64, 16);
	s = sub_of(ZBUS_RELIABLE, 0); /* default spin: 50 µs, then sleep */
	wall0 = ns_of(CLOCK_MONOTONIC);
	cpu0 = ns_of(CLOCK_THREAD_CPUTIME_ID);
	r = zbus_sub_recv_batch(s, &m, 1, 300);
	cpu = ns_of(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	wall = ns_of(CLOCK_MONOTONIC) - wall0;
	cr_assert_eq(r, -ETIMEDOUT, "recv: %s", zbus_strerror(r));
	cr_assert_geq(wall, 299000000ull);
	/* Behaviour, not speed: a spinning wait would burn ~300 ms. */
	cr_assert_lt(cpu, 30000000ull,
		     "idle wait burnt %lu µs of CPU in %lu µs",
		     (unsigned long)(cpu / 1000), (unsigned long)(wall / 1000));
	zbus_sub_free(s);
}

/* --- Producers waiting for room ------------------------------------------ */

/* A reliable subscriber holding a full ring of 8. */
static struct zbus_sub *hold_full_ring(void)
{
	struct zbus_pub *p;
	struct zbus_sub *s;

	make(128, 8);
	s = sub_of(ZBUS_RELIABLE, 0);
	p = pub_with_timeout(0);
	for (uint64_t i = 0; i < 8; i++) {
		uint8_t buf[128];

		tu_fill(buf, 20 + i * 7 % 64, 1, i);
		cr_assert_eq(zbus_pub_send(p, buf, 20 + i * 7 % 64), 0);
	}
	cr_assert_eq(zbus_pub_send(p, "x", 1), -EAGAIN, "ring not full");
	zbus_pub_free(p);
	return s;
}

Test(wait, producer_times_out_waiting_for_room)
{
	struct zbus_sub *s = hold_full_ring();
	struct zbus_pub *p = pub_with_timeout(100);
	struct zbus_loan l;
	uint64_t t0, waited;
	int r;

	t0 = now_ms();
	r = zbus_pub_loan(p, 10, &l);
	waited = now_ms() - t0;
	cr_assert_eq(r, -ETIMEDOUT, "loan: %s", zbus_strerror(r));
	cr_assert_geq(waited, 99, "loan gave up after %lu ms",
		      (unsigned long)waited);

	t0 = now_ms();
	r = zbus_pub_send(p, "abc", 3);
	waited = now_ms() - t0;
	cr_assert_eq(r, -ETIMEDOUT, "send: %s", zbus_strerror(r));
	cr_assert_geq(waited, 99, "send gave up after %lu ms",
		      (unsigned long)waited);
	zbus_pub_free(p);
	zbus_sub_free(s);
}

Test(wait, non_waiting_producer_gets_eagain_on_a_full_ring)
{
	struct zbus_sub *s = hold_full_ring();
	struct zbus_pub *p = pub_with_timeout(0);
	struct zbus_loan l;

	cr_assert_eq(zbus_pub_loan(p, 10, &l), -EAGAIN);
	cr_assert_eq(zbus_pub_send(p, "abc", 3), -EAGAIN);
	zbus_pub_free(p);
	zbus_sub_free(s);
}

/* Child: announce, then send one message with no timeout. */
static int blocked_sender(void *arg)
{
	int wfd = *(int *)arg;
	struct zbus_pub *p;
	uint8_t buf[64];
	int r;

	if (zbus_pub_new(ch, NULL, &p) != 0) /* NULL opts: waits forever */
		return 2;
	if (signal_parent(wfd) < 0)
		return 3;
	tu_fill(buf, 40, 2, 8);
	r = zbus_pub_send(p, buf, 40);
	zbus_pub_free(p);
	return r == 0 ? 0 : 4;
}

/* Start blocked_sender() and make sure it is blocked: it can only exit
 * after its send succeeded, and the ring is full. */
static pid_t start_blocked_sender(void)
{
	int fds[2];
	pid_t pid;

	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	pid = spawn(blocked_sender, &fds[1]);
	close(fds[1]);
	wait_for_child(fds[0]);
	close(fds[0]);
	sleep_us(50000); /* long enough to be asleep on the futex */
	cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0,
		     "the producer did not wait for room");
	return pid;
}

Test(wait, waiting_producer_resumes_when_the_subscriber_releases)
{
	struct zbus_sub *s = hold_full_ring();
	struct zbus_msg m[8];
	pid_t pid = start_blocked_sender();
	int r;

	cr_assert_eq(zbus_sub_recv_batch(s, m, 8, 0), 8);
	for (uint64_t i = 0; i < 8; i++)
		check_filled(&m[i], i);
	cr_assert_eq(zbus_sub_release(s), 0);
	reap_ok(pid);
	r = zbus_sub_recv_batch(s, m, 8, 0);
	cr_assert_eq(r, 1, "the blocked message: %s", zbus_strerror(r));
	cr_assert_eq(m[0].seq, 8);
	cr_assert_eq(m[0].size, 40);
	cr_assert_eq(zbus_sub_release(s), 0);
	zbus_sub_free(s);
}

Test(wait, freeing_the_holding_subscriber_unblocks_a_sleeping_producer)
{
	struct zbus_sub *s = hold_full_ring();
	pid_t pid = start_blocked_sender();

	zbus_sub_free(s);
	reap_ok(pid);
}

/* --- The pollable fd ----------------------------------------------------- */

static int readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int r;

	while ((r = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	cr_assert_geq(r, 0, "poll: %s", strerror(errno));
	cr_assert_eq(pfd.revents & ~POLLIN, 0, "poll revents %#x",
		     pfd.revents);
	return r == 1;
}

static void reset_fd(int fd)
{
	uint64_t v = 0;

	cr_assert_eq(read(fd, &v, 8), 8, "eventfd read: %s", strerror(errno));
	cr_assert_gt(v, 0);
}

/* Drain with timeout 0 until -EAGAIN; check indices from *next on. */
static uint64_t drain(struct zbus_sub *s, uint64_t *next)
{
	struct zbus_msg m[64];
	uint64_t got = 0;
	int r;

	while ((r = zbus_sub_recv_batch(s, m, 64, 0)) > 0) {
		for (int i = 0; i < r; i++, (*next)++) {
			cr_assert_eq(m[i].seq, *next, "seq %lu, expected %lu",
				     (unsigned long)m[i].seq,
				     (unsigned long)*next);
			check_filled(&m[i], *next);
		}
		got += (uint64_t)r;
		cr_assert_eq(zbus_sub_release(s), 0);
	}
	cr_assert_eq(r, -EAGAIN, "drain: %s", zbus_strerror(r));
	return got;
}

/*
 * After everything was drained, the fd settles unreadable. A signal the
 * notifier sent for messages we already took may still arrive: each such
 * readability must be followed by -EAGAIN, and there can be no more of
 * them than messages.
 */
static void expect_fd_settles(struct zbus_sub *s, int fd, int max_spurious)
{
	struct zbus_msg m;

	for (int i = 0; readable(fd, 0); i++) {
		cr_assert_leq(i, max_spurious, "fd stays readable");
		reset_fd(fd);
		cr_assert_eq(zbus_sub_recv_batch(s, &m, 1, 0), -EAGAIN,
			     "readable fd, yet a message was not drained");
		sleep_us(10000);
	}
}

static int publish_n(void *arg)
{
	struct zbus_pub *p;
	int r;

	if (zbus_pub_new(ch, NULL, &p) != 0)
		return 2;
	r = publish_filled(p, *(uint64_t *)arg);
	zbus_pub_free(p);
	return r;
}

Test(wait, sub_fd_is_stable_and_unreadable_while_idle)
{
	struct zbus_sub *s;
	int fd;

	make(256, 16);
	s = sub_of(ZBUS_RELIABLE, 0);
	fd = zbus_sub_fd(s);
	cr_assert_geq(fd, 0, "sub_fd: %s", zbus_strerror(fd));
	cr_assert_eq(zbus_sub_fd(s), fd, "a second call made another fd");
	cr_assert_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	cr_assert_not(readable(fd, 0));
	sleep_us(20000);
	cr_assert_not(readable(fd, 0), "idle fd became readable");
	zbus_sub_free(s);
}

Test(wait, sub_fd_polls_readable_when_another_process_publishes)
{
	uint64_t three = 3, next = 0;
	struct zbus_sub *s;
	int fd;

	make(256, 16);
	s = sub_of(ZBUS_RELIABLE, 0);
	fd = zbus_sub_fd(s);
	cr_assert_geq(fd, 0, "sub_fd: %s", zbus_strerror(fd));
	cr_assert_not(readable(fd, 0));
	/* Reaped before polling: all three are published by then, so one
	 * drain must find exactly them. */
	reap_ok(spawn(publish_n, &three));
	cr_assert(readable(fd, 2000), "no notification");
	reset_fd(fd);
	cr_assert_eq(drain(s, &next), 3);
	expect_fd_settles(s, fd, 3);
	zbus_sub_free(s);
}

Test(wait, sub_fd_works_with_epoll)
{
	struct epoll_event ev = { .events = EPOLLIN }, out[2];
	uint64_t one = 1, next = 0;
	struct zbus_sub *s;
	int fd, ep;
	pid_t pid;

	make(256, 16);
	s = sub_of(ZBUS_RELIABLE, 0);
	fd = zbus_sub_fd(s);
	cr_assert_geq(fd, 0, "sub_fd: %s", zbus_strerror(fd));
	ep = epoll_create1(EPOLL_CLOEXEC);
	cr_assert_geq(ep, 0);
	ev.data.u64 = 42;
	cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	cr_assert_eq(epoll_wait(ep, out, 2, 0), 0, "idle fd ready");
	pid = spawn(publish_n, &one);
	cr_assert_eq(epoll_wait(ep, out, 2, 2000), 1, "no notification");
	cr_assert_eq(out[0].data.u64, 42);
	cr_assert(out[0].events & EPOLLIN);
	reap_ok(pid);
	reset_fd(fd);
	cr_assert_eq(drain(s, &next), 1);
	close(ep);
	zbus_sub_free(s);
}


Test(wait, freeing_the_subscription_stops_the_notifier_and_closes_the_fd)
{
	struct zbus_sub *s;
	int fd, threads = tu_count_threads(), n = 0;

	make(256, 16);
	s = sub_of(ZBUS_RELIABLE, 0);
	fd = zbus_sub_fd(s);
	cr_assert_geq(fd, 0, "sub_fd: %s", zbus_strerror(fd));
	cr_assert_eq(tu_count_threads(), threads + 1, "no notifier thread");
	zbus_sub_free(s);
	errno = 0;
	cr_assert_eq(fcntl(fd, F_GETFD), -1, "fd %d still open", fd);
	cr_assert_eq(errno, EBADF);
	/* pthread_join() returns once the thread cleared its tid; the
	 * kernel may list it a moment longer. */
	while (tu_count_threads() != threads && n++ < 1000)
		sleep_us(1000);
	cr_assert_eq(tu_count_threads(), threads, "notifier thread still runs");
}

/* Child: STRESS_MSGS messages in bursts of 1..256 with pauses of up to
 * ~300 µs, so the parent's notifier falls asleep and is woken many times
 * at random phases. Waits for room when the parent lags (reliable). */
#define STRESS_MSGS 20000u

static int bursty_publisher(void *arg)
{
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	struct zbus_pub *p;
	uint8_t buf[128];

	(void)arg;
	if (zbus_pub_new(ch, NULL, &p) != 0)
		return 2;
	for (uint64_t i = 0; i < STRESS_MSGS;) {
		uint64_t burst;

		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		burst = 1 + (rng >> 33) % 256;
		for (; burst-- && i < STRESS_MSGS; i++) {
			size_t len = 20 + (size_t)(i * 7 % 64);

			tu_fill(buf, len, 1, i);
			if (zbus_pub_send(p, buf, len) != 0) {
				zbus_pub_free(p);
				return 1;
			}
		}
		if ((rng >> 20) & 1)
			sleep_us((long)((rng >> 40) % 300));
	}
	zbus_pub_free(p);
	return 0;
}

Test(wait, fd_mode_never_loses_a_notification_under_bursts)
{
	uint64_t next = 0, wakeups = 0;
	struct zbus_sub *s;
	pid_t pid;
	int fd;

	make(256, 256);
	s = sub_of(ZBUS_RELIABLE, 0);
	fd = zbus_sub_fd(s);
	cr_assert_geq(fd, 0, "sub_fd: %s", zbus_strerror(fd));
	pid = spawn(bursty_publisher, NULL);
	while (next < STRESS_MSGS) {
		/* An expiry here is a lost notification: the publisher
		 * never pauses for more than a fraction of a millisecond. */
		if (!readable(fd, 5000)) {
			const struct zb_sub_slot *sl = &ch->seg.slots[0];
			uint64_t ws = sl->wait_seq;

			/* What the notifier thread sleeps for, next to what
			 * the producers have claimed. */
			cr_assert_fail("lost notification: received %lu of "
				       "%u; claim_seq %lu; the notifier "
				       "waits for seq %ld",
				       (unsigned long)next, STRESS_MSGS,
				       (unsigned long)ch->seg.ctl->claim_seq,
				       (long)ws - 1);
		}
		reset_fd(fd);
		drain(s, &next);
		wakeups++;
	}
	cr_assert_eq(next, STRESS_MSGS);
	reap_ok(pid);
	expect_fd_settles(s, fd, (int)wakeups + 1);
	cr_assert_eq(drain(s, &next), 0, "messages beyond the stream");
	zbus_sub_free(s);
}

/* --- Lossy subscribers ---------------------------------------------------- */

static int late_flood(void *arg)
{
	sleep_us(50000); /* the parent is asleep on its futex by then */
	return publish_n(arg);
}

Test(wait, sleeping_lossy_recv_is_woken_and_accounts_for_every_message)
{
	uint64_t total = 10 * 16, got = 0, missed = 0, stale = 0;
	struct zbus_sub_stats st;
	struct zbus_sub *s;
	struct zbus_msg m[4];
	uint64_t last = 0;
	pid_t pid;
	int r, first = 1;

	make(256, 16);
	s = sub_of(ZBUS_LOSSY, -1);
	pid = spawn(late_flood, &total);
	r = zbus_sub_recv_batch(s, m, 4, 5000);
	cr_assert_gt(r, 0, "blocking lossy recv: %s", zbus_strerror(r));
	/* Drain only once the child is done: -EAGAIN then means the end. */
	reap_ok(pid);
	for (;;) {
		int intact = 1;

		for (int i = 0; i < r; i++) {
			uint32_t prod;
			uint64_t idx;

			cr_assert(first || m[i].seq > last, "reordered");
			cr_assert(m[i].flags & ZBUS_MSG_LOSSY);
			missed += m[i].missed;
			last = m[i].seq;
			first = 0;
			if (tu_check_racy(m[i].data, m[i].size, &prod, &idx) ||
			    idx != m[i].seq)
				intact = 0;
		}
		/* The producer may overwrite what we hold: what we read
		 * counts only if the release finds it was intact. */
		if (zbus_sub_release(s) == 0) {
			cr_assert(intact, "torn payload reported intact");
			got += (uint64_t)r;
		} else {
			stale += (uint64_t)r; /* released as missed */
		}
		r = zbus_sub_recv_batch(s, m, 4, 0);
		if (r == -EAGAIN)
			break;
		cr_assert_gt(r, 0, "lossy recv: %s", zbus_strerror(r));
	}
	cr_assert_eq(last, total - 1, "the newest message was not received");
	cr_assert_eq(got + stale + missed, total,
		     "received %lu + stale %lu + missed %lu != published %lu",
		     (unsigned long)got, (unsigned long)stale,
		     (unsigned long)missed, (unsigned long)total);
	cr_assert_eq(zbus_sub_stats(s, &st), 0);
	cr_assert_eq(st.received, got);
	cr_assert_eq(st.missed, missed + stale);
	zbus_sub_free(s);
}
