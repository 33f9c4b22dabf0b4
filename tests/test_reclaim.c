/* SPDX-License-Identifier: MIT */
/*
 * test_reclaim.c - liveness around the broker. It frees what a dead
 * subscriber held: SIGKILL of a reliable subscriber that holds the ring
 * frees the producers it was holding back within 100 ms (the issue's
 * deadline, not a speed claim), while a live subscriber goes on; a slot
 * freed cleanly and taken by someone else is never freed by the first
 * owner's death. SIGKILL of a producer holding a loan, and a producer stuck
 * on one past the channel's unblock timeout, cost the subscribers that one
 * message, never the stream. A client killed mid-handshake leaves nothing
 * behind. And the broker's own death is no data-path outage: a new broker
 * watches again the processes the old one watched, and reclaims at once
 * what those that died in between left. A process registers only the
 * slots it holds itself.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "fdpass.h"
#include "testutil.h"
#include "zbus/zbus.h"
#include "zbus_ctl.pb-c.h"

static char dir[64], sock[128], logpath[128];
static pid_t broker;
static struct zbus_conn_opts co;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Start zbusd on @sock (a stale socket there is replaced) with
 * --recovery-window @window_ms (0: the default) and wait until it
 * listens. */
static pid_t spawn_broker_window(unsigned window_ms)
{
	const char *build = getenv("ZBUS_BUILD_DIR");
	char zbusd[512];
	pid_t pid;

	cr_assert_not_null(build, "ZBUS_BUILD_DIR is not set (run via ctest)");
	snprintf(zbusd, sizeof(zbusd), "%s/broker/zbusd", build);
	pid = fork();
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (!freopen(logpath, "a", stderr))
			_exit(126);
		if (window_ms) {
			char w[16];

			snprintf(w, sizeof(w), "%u", window_ms);
			execl(zbusd, "zbusd", "--socket", sock,
			      "--recovery-window", w, (char *)NULL);
		} else {
			execl(zbusd, "zbusd", "--socket", sock, (char *)NULL);
		}
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		struct zbus_conn *c;

		if (zbus_conn_open(&co, &c) == 0) {
			zbus_conn_free(c);
			return pid;
		}
		usleep(10000);
	}
	cr_assert_fail("the broker did not start");
	return -1;
}

static pid_t spawn_broker(void)
{
	return spawn_broker_window(0);
}

static void start_broker(void)
{
	tu_leak_begin();
	setenv("ZBUS_NO_AUTOSTART", "1", 1);
	snprintf(dir, sizeof(dir), "/tmp/zbus-reclaim.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/zbusd.sock", dir);
	snprintf(logpath, sizeof(logpath), "%s/zbusd.log", dir);
	co = (struct zbus_conn_opts){ .socket_path = sock,
				      .flags = ZBUS_CONN_NO_AUTOSTART };
	broker = spawn_broker();
}

static void stop_broker(void)
{
	kill(broker, SIGTERM);
	waitpid(broker, NULL, 0);
	unlink(logpath);
	unlink(sock);
	snprintf(logpath, sizeof(logpath), "%s/zbusd.sock.lock", dir);
	unlink(logpath);
	snprintf(logpath, sizeof(logpath), "%s/zbusd.sock.state", dir);
	unlink(logpath);
	rmdir(dir);
	tu_leak_end();
}

TestSuite(reclaim, .init = start_broker, .fini = stop_broker, .timeout = 60);

static int log_says(const char *text)
{
	char path[160], line[512];
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "%s/zbusd.log", dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

/* What a holding subscriber does once registered, before it holds. */
enum then { THEN_HOLD, THEN_LEAVE, THEN_UNREGISTER };

/* log_says(), waiting up to 2 s: the broker logs after it acts, so a
 * client may see the effect before the line is written. */
static int log_says_soon(const char *text)
{
	for (int i = 0; i < 200; i++) {
		if (log_says(text))
			return 1;
		usleep(10000);
	}
	return 0;
}

/* A child that subscribes reliably, registers, says so, then holds. */
static pid_t holding_subscriber(const char *name, int *ready_fd,
				enum then then)
{
	int p[2];
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	if (!pid) {
		struct zbus_conn *c;
		struct zbus_channel *ch;
		struct zbus_sub *s;
		char ok = 'k';

		close(p[0]);
		if (zbus_conn_open(&co, &c) ||
		    zbus_conn_open_channel(c, name, ZBUS_ACCESS_SUBSCRIBE, &ch) ||
		    zbus_sub_new(ch, NULL, &s) ||
		    zbus_conn_register_sub(c, name, s))
			_exit(1);
		/* Lingers on with its subscription, ended for the broker. */
		if (then == THEN_UNREGISTER &&
		    zbus_conn_unregister_sub(c, name, s))
			_exit(3);
		zbus_conn_free(c); /* the broker watches the process */
		if (then == THEN_LEAVE)
			zbus_sub_free(s);
		if (write(p[1], &ok, 1) != 1)
			_exit(2);
		for (;;)
			pause(); /* hold, never receive */
	}
	close(p[1]);
	*ready_fd = p[0];
	return pid;
}

static void wait_ready(int fd)
{
	char c;

	cr_assert_eq(read(fd, &c, 1), 1, "the subscriber did not start");
	close(fd);
}

struct blocked_send {
	struct zbus_pub *pub;
	volatile int done;
	int ret;
	uint64_t at_ms;
};

static void *send_blocked(void *arg)
{
	struct blocked_send *b = arg;

	b->ret = zbus_pub_send(b->pub, "ninth", 6);
	b->at_ms = now_ms();
	__atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * @b->pub's ring is full, held by @holder: a send blocks until SIGKILL of
 * @holder, and goes on within 100 ms of it (the deadline).
 */
static void sigkill_frees_the_producer(struct blocked_send *b, pid_t holder)
{
	pthread_t th;
	uint64_t t0;

	cr_assert_eq(pthread_create(&th, NULL, send_blocked, b), 0);
	usleep(50000);
	cr_assert_eq(__atomic_load_n(&b->done, __ATOMIC_ACQUIRE), 0,
		     "the producer was not held back (ret %d)", b->ret);
	t0 = now_ms();
	kill(holder, SIGKILL);
	pthread_join(th, NULL);
	waitpid(holder, NULL, 0);
	cr_assert_eq(b->ret, 0, "send: %s", zbus_strerror(b->ret));
	cr_assert_leq(b->at_ms - t0, 100, "reclaimed %lu ms after SIGKILL",
		      (unsigned long)(b->at_ms - t0));
	cr_log_info("producer went on %lu ms after SIGKILL of the holder",
		    (unsigned long)(b->at_ms - t0));
}

Test(reclaim, sigkill_of_a_holding_subscriber_frees_its_producers_within_100ms)
{
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 64,
							 .ring_capacity = 8 } };
	struct zbus_pub_opts po = { .timeout_ms = 5000 };
	struct blocked_send b = { 0 };
	struct zbus_sub_opts so = { .policy = ZBUS_RELIABLE };
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_sub *live;
	struct zbus_msg m[16];
	int fd, got = 0, n;
	pid_t holder;

	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "held", &cp, &ch), 0);
	cr_assert_eq(zbus_sub_new(ch, &so, &live), 0);
	holder = holding_subscriber("held", &fd, THEN_HOLD);
	wait_ready(fd);
	cr_assert_eq(zbus_pub_new(ch, &po, &b.pub), 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(zbus_pub_send(b.pub, "x", 1), 0);
	/* The live subscriber takes everything; the holder takes nothing,
	 * so the ring is full for the producer. */
	while (got < 8 && (n = zbus_sub_recv_batch(live, m, 16, 1000)) > 0) {
		got += n;
		zbus_sub_release(live);
	}
	cr_assert_eq(got, 8);
	sigkill_frees_the_producer(&b, holder);
	/* The others carry on: the live subscriber gets the ninth. */
	cr_assert_eq(zbus_sub_recv_batch(live, m, 16, 1000), 1);
	cr_assert_str_eq(m[0].data, "ninth");
	zbus_sub_release(live);
	cr_assert(log_says("freed its subscription"), "the log does not say");
	zbus_pub_free(b.pub);
	zbus_sub_free(live);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

/*
 * The first owner of a channel's only subscriber slot registers, ends its
 * subscription per @then (frees it, or unregisters it and lingers) and
 * lives on. The slot is free at once; we take it, a new generation of it,
 * and register it. The first owner's death must free nothing of ours.
 */
static void a_later_death_frees_nothing(enum then then)
{
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 64,
							 .ring_capacity = 8,
							 .max_subscribers = 1 } };
	struct zbus_pub_opts po = { .timeout_ms = 0 };
	struct zbus_sub_stat *subs;
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_pub *pub;
	struct zbus_sub *mine;
	int fd;
	pid_t first;

	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "reused", &cp, &ch), 0);
	first = holding_subscriber("reused", &fd, then);
	wait_ready(fd);
	cr_assert_eq(zbus_conn_subscribers(c, "reused", &subs), 0,
		     "the slot was not freed at once");
	cr_assert(then != THEN_UNREGISTER ||
		  log_says_soon("unregistered and freed subscriber slot 0"));
	cr_assert_eq(zbus_sub_new(ch, NULL, &mine), 0);
	cr_assert_eq(zbus_conn_register_sub(c, "reused", mine), 0);
	kill(first, SIGKILL);
	waitpid(first, NULL, 0);
	usleep(100000); /* the broker has had its chance to get it wrong */
	cr_assert_eq(zbus_pub_new(ch, &po, &pub), 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(zbus_pub_send(pub, "x", 1), 0);
	cr_assert_eq(zbus_pub_send(pub, "x", 1), -EAGAIN,
		     "our subscription was freed by another's death");
	cr_assert(!log_says("freed its subscription"));
	zbus_pub_free(pub);
	zbus_sub_free(mine);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

Test(reclaim, a_slot_taken_again_is_not_freed_by_the_first_owner_death)
{
	a_later_death_frees_nothing(THEN_LEAVE);
}

Test(reclaim, unregistering_frees_the_slot_at_once_and_a_later_death_nothing)
{
	a_later_death_frees_nothing(THEN_UNREGISTER);
}

Test(reclaim, unregistering_a_publisher_frees_its_slot_and_takes_its_loans_back)
{
	struct zbus_channel_stat st;
	struct zbus_sub_stats ss;
	struct zbus_pub_stat *pubs;
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_pub *pub;
	struct zbus_sub *sub;
	struct zbus_loan l;

	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "unpub", NULL, &ch), 0);
	cr_assert_eq(zbus_sub_new(ch, NULL, &sub), 0);
	cr_assert_eq(zbus_pub_new(ch, NULL, &pub), 0);
	cr_assert_eq(zbus_conn_register_pub(c, "unpub", pub), 0);
	cr_assert_eq(zbus_pub_loan(pub, 8, &l), 0);
	cr_assert_eq(zbus_conn_unregister_pub(c, "unpub", pub), 0, "%s",
		     zbus_conn_error(c));
	cr_assert_eq(zbus_conn_publishers(c, "unpub", &pubs), 0);
	cr_assert_eq(zbus_conn_stat(c, "unpub", &st), 0);
	cr_assert_eq(st.publishers, 0);
	cr_assert_eq(st.reclaimed, 1, "the open loan was not taken back");
	cr_assert_eq(zbus_sub_recv(sub, NULL, 0, NULL, 0), -EAGAIN);
	cr_assert_eq(zbus_sub_stats(sub, &ss), 0);
	cr_assert_eq(ss.reclaimed, 1);
	/* Done: nothing is left to unregister. */
	cr_assert_eq(zbus_conn_unregister_pub(c, "unpub", pub), -ESTALE);
	zbus_pub_free(pub);
	zbus_sub_free(sub);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

Test(reclaim, registering_what_the_slot_does_not_hold_is_estale)
{
	struct zbus_channel *a, *b;
	struct zbus_conn *c;
	struct zbus_sub *s;

	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "a", NULL, &a), 0);
	cr_assert_eq(zbus_conn_create(c, "b", NULL, &b), 0);
	cr_assert_eq(zbus_sub_new(a, NULL, &s), 0);
	cr_assert_eq(zbus_conn_register_sub(c, "b", s), -ESTALE);
	cr_assert(strstr(zbus_conn_error(c), "does not hold"),
		  "message: %s", zbus_conn_error(c));
	cr_assert_eq(zbus_conn_register_sub(c, "nope", s), -ENOENT);
	cr_assert_eq(zbus_conn_register_sub(c, "a", s), 0);
	zbus_sub_free(s);
	zbus_channel_free(a);
	zbus_channel_free(b);
	zbus_conn_free(c);
}

/* In a child: @name opened to publish, or made sealed and offered. */
static int publisher_channel(struct zbus_conn *c, const char *name,
			     int offer, struct zbus_channel **ch)
{
	struct zbus_channel_opts o = { .max_msg_size = 64,
				       .ring_capacity = 8,
				       .flags = ZBUS_CHANNEL_SEAL_WRITERS };
	struct zbus_channel_params cp = { .mode = 0644 };

	if (!offer)
		return zbus_conn_open_channel(c, name, ZBUS_ACCESS_PUBLISH,
					      ch);
	return zbus_channel_create(name, &o, ch) ||
	       zbus_conn_offer(c, name, &cp, *ch);
}

/*
 * A child that publishes on @name with @flags (or on a sealed channel it
 * offers as @name, with @offer), registers (or not), takes a loan and says
 * so on *@ready_fd; then, told to on *@go_fd, publishes it and exits 0 if
 * that failed with -ECANCELED (the loan was taken back).
 */
static pid_t loan_holder(const char *name, uint32_t flags, int do_register,
			 int offer, int *ready_fd, int *go_fd)
{
	int r_pipe[2], g_pipe[2];
	pid_t pid;

	cr_assert_eq(pipe(r_pipe), 0);
	cr_assert_eq(pipe(g_pipe), 0);
	pid = fork();
	if (!pid) {
		struct zbus_pub_opts po = { .timeout_ms = 1000,
					    .flags = flags };
		struct zbus_conn *c;
		struct zbus_channel *ch;
		struct zbus_pub *p;
		struct zbus_loan l;
		char ok = 'k';

		close(r_pipe[0]);
		close(g_pipe[1]);
		if (zbus_conn_open(&co, &c) ||
		    publisher_channel(c, name, offer, &ch) ||
		    zbus_pub_new(ch, &po, &p) ||
		    (do_register && zbus_conn_register_pub(c, name, p)))
			_exit(1);
		zbus_conn_free(c); /* the broker watches the process */
		if (zbus_pub_loan(p, 8, &l))
			_exit(2);
		memcpy(l.data, "orphan", 7); /* half done, never published */
		if (write(r_pipe[1], &ok, 1) != 1 ||
		    read(g_pipe[0], &ok, 1) != 1)
			_exit(3);
		_exit(zbus_pub_publish(p, &l, 7) == -ECANCELED ? 0 : 4);
	}
	close(r_pipe[1]);
	close(g_pipe[0]);
	*ready_fd = r_pipe[0];
	*go_fd = g_pipe[1];
	return pid;
}

/* Publish "after" behind the held loan; the subscriber must not see it. */
static void publish_behind(struct zbus_channel *ch, struct zbus_sub *sub,
			   uint32_t flags)
{
	struct zbus_pub_opts po = { .timeout_ms = 0, .flags = flags };
	struct zbus_pub *p;
	struct zbus_msg m;

	cr_assert_eq(zbus_pub_new(ch, &po, &p), 0);
	cr_assert_eq(zbus_pub_send(p, "after", 6), 0);
	zbus_pub_free(p);
	cr_assert_eq(zbus_sub_recv_batch(sub, &m, 1, 50), -ETIMEDOUT,
		     "a message got past an open loan");
}

/* Receive "after" with one loss before it; return when it came. */
static uint64_t expect_after(struct zbus_sub *sub, int timeout_ms)
{
	struct zbus_sub_stats st;
	struct zbus_msg m;
	uint64_t at;

	cr_assert_eq(zbus_sub_recv_batch(sub, &m, 1, timeout_ms), 1,
		     "the stream did not go on");
	at = now_ms();
	cr_assert_str_eq(m.data, "after");
	cr_assert_eq(m.seq, 1);
	cr_assert_eq(m.missed, 1, "the lost loan is counted");
	zbus_sub_release(sub);
	cr_assert_eq(zbus_sub_stats(sub, &st), 0);
	cr_assert_eq(st.reclaimed, 1);
	return at;
}

static void sigkill_mid_loan(uint32_t flags)
{
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 64,
							 .ring_capacity = 8 } };
	struct zbus_channel_stat st;
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_sub *sub;
	struct zbus_pub *next;
	struct zbus_pub_opts po = { .flags = flags };
	int ready, go;
	uint64_t t0, at;
	pid_t holder;

	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "loans", &cp, &ch), 0);
	cr_assert_eq(zbus_sub_new(ch, NULL, &sub), 0);
	holder = loan_holder("loans", flags, 1, 0, &ready, &go);
	wait_ready(ready);
	if (flags & ZBUS_PUB_EXCLUSIVE)
		cr_assert_eq(zbus_pub_new(ch, &po, &next), -EBUSY);
	else
		publish_behind(ch, sub, 0);

	t0 = now_ms();
	kill(holder, SIGKILL);
	if (flags & ZBUS_PUB_EXCLUSIVE) {
		/* Its successor gets in once the broker cleared its mark. */
		while (zbus_pub_new(ch, &po, &next) == -EBUSY &&
		       now_ms() - t0 < 2000)
			usleep(1000);
		cr_assert_eq(zbus_pub_send(next, "after", 6), 0);
		zbus_pub_free(next);
	}
	at = expect_after(sub, 2000);
	waitpid(holder, NULL, 0);
	close(go);
	cr_assert_leq(at - t0, 100, "the stream went on %lu ms after SIGKILL",
		      (unsigned long)(at - t0));
	cr_log_info("stream went on %lu ms after SIGKILL of the producer",
		    (unsigned long)(at - t0));
	cr_assert(log_says_soon("padded 1 open loan"),
		  "the log does not say");
	cr_assert_eq(zbus_conn_stat(c, "loans", &st), 0);
	cr_assert_eq(st.reclaimed, 1);
	cr_assert_eq(st.publishers, 0, "the dead producer is not counted");
	zbus_sub_free(sub);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

Test(reclaim, sigkill_of_a_producer_mid_loan_costs_one_message_within_100ms)
{
	sigkill_mid_loan(0);
}

Test(reclaim, sigkill_of_an_exclusive_producer_mid_loan_lets_another_in)
{
	sigkill_mid_loan(ZBUS_PUB_EXCLUSIVE);
}

Test(reclaim, a_producer_stuck_past_the_unblock_timeout_loses_its_loan)
{
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 64,
							 .ring_capacity = 8 },
					  .unblock_timeout_ms = 300 };
	struct zbus_channel_stat st;
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_sub *sub;
	int ready, go;
	uint64_t t0, at;
	pid_t holder;

	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "stuck", &cp, &ch), 0);
	cr_assert_eq(zbus_sub_new(ch, NULL, &sub), 0);
	/* Not registered: only the timer can help, as for a producer killed
	 * between its claim and its record. */
	holder = loan_holder("stuck", 0, 0, 0, &ready, &go);
	wait_ready(ready);
	t0 = now_ms();
	publish_behind(ch, sub, 0);
	at = expect_after(sub, 5000);
	cr_assert_geq(at - t0, 250, "taken back after %lu ms, before the "
		      "300 ms timeout", (unsigned long)(at - t0));
	cr_log_info("stuck loan taken back %lu ms after it was reported "
		    "(timeout 300 ms)", (unsigned long)(at - t0));
	/* The stuck producer wakes up: its publish says it lost. */
	cr_assert_eq(write(go, "g", 1), 1);
	close(go);
	cr_assert_eq(tu_wait_child(holder, 10), 0,
		     "the late publish did not fail with -ECANCELED");
	cr_assert(log_says_soon("held open longer than 300 ms"));
	cr_assert_eq(zbus_conn_stat(c, "stuck", &st), 0);
	cr_assert_eq(st.reclaimed, 1);
	cr_assert_eq(st.unblock_timeout_ms, 300);
	zbus_sub_free(sub);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

static int broker_fds(void)
{
	return tu_count_fds_of(broker);
}

Test(reclaim, clients_killed_mid_handshake_leave_nothing_behind)
{
	struct zbus_conn *c;
	struct zbus_channel *ch;
	int base, now = 0;

	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "handshake", NULL, &ch), 0);
	base = broker_fds();
	cr_assert_gt(base, 0);
	/* Each child connects, says hello, opens, and registers a
	 * subscription and a publisher in a loop; it dies at a different
	 * point of it each time. */
	for (int i = 0; i < 40; i++) {
		pid_t pid = fork();

		if (!pid) {
			for (;;) {
				struct zbus_conn *k;
				struct zbus_channel *kc = NULL;
				struct zbus_sub *s = NULL;
				struct zbus_pub *p = NULL;

				if (zbus_conn_open(&co, &k))
					continue;
				if (!zbus_conn_open_channel(
					    k, "handshake",
					    ZBUS_ACCESS_SUBSCRIBE |
						    ZBUS_ACCESS_PUBLISH,
					    &kc) &&
				    !zbus_sub_new(kc, NULL, &s) &&
				    !zbus_pub_new(kc, NULL, &p)) {
					zbus_conn_register_sub(k, "handshake",
							       s);
					zbus_conn_register_pub(k, "handshake",
							       p);
				}
				zbus_pub_free(p);
				zbus_sub_free(s);
				zbus_channel_free(kc);
				zbus_conn_free(k);
			}
		}
		usleep((useconds_t)(200 + (i * 397) % 3000));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	/* Every connection and watch of the dead is closed. */
	for (int i = 0; i < 200 && (now = broker_fds()) != base; i++)
		usleep(10000);
	cr_assert_eq(now, base, "broker fds: %d, baseline %d", now, base);
	zbus_channel_free(ch);
	cr_assert_eq(zbus_conn_create(c, "after-handshakes", NULL, &ch), 0,
		     "the broker still serves");
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

Test(reclaim, registrations_of_freed_subscriptions_do_not_count_to_the_quota)
{
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 64,
							 .max_subscribers = 256 } };
	struct zbus_channel *ch, *other;
	struct zbus_sub *live[256], *s;
	struct zbus_conn *c;

	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "quota", &cp, &ch), 0);
	cr_assert_eq(zbus_conn_create(c, "quota2", NULL, &other), 0);
	/* Made and freed one after the other, far past the 256 watches a
	 * user may hold. */
	for (int i = 0; i < 600; i++) {
		cr_assert_eq(zbus_sub_new(ch, NULL, &s), 0);
		cr_assert_eq(zbus_conn_register_sub(c, "quota", s), 0,
			     "registration %d: %s", i, zbus_conn_error(c));
		zbus_sub_free(s);
	}
	/* Held at once, the quota binds. */
	for (int i = 0; i < 256; i++) {
		cr_assert_eq(zbus_sub_new(ch, NULL, &live[i]), 0);
		cr_assert_eq(zbus_conn_register_sub(c, "quota", live[i]), 0,
			     "live registration %d", i);
	}
	cr_assert_eq(zbus_sub_new(other, NULL, &s), 0);
	cr_assert_eq(zbus_conn_register_sub(c, "quota2", s), -EDQUOT);
	cr_assert(strstr(zbus_conn_error(c), "too many watched"), "%s",
		  zbus_conn_error(c));
	zbus_sub_free(live[0]);
	cr_assert_eq(zbus_conn_register_sub(c, "quota2", s), 0,
		     "one freed, one more fits");
	zbus_sub_free(s);
	for (int i = 1; i < 256; i++)
		zbus_sub_free(live[i]);
	zbus_channel_free(other);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

/* A child that streams @n numbered messages on @name, one every 20 us. */
static pid_t streamer(const char *name, uint64_t n)
{
	pid_t pid = fork();

	if (!pid) {
		struct zbus_pub_opts po = { .timeout_ms = 5000 };
		struct zbus_conn *c;
		struct zbus_channel *ch;
		struct zbus_pub *p;

		if (zbus_conn_open(&co, &c) ||
		    zbus_conn_open_channel(c, name, ZBUS_ACCESS_PUBLISH, &ch) ||
		    zbus_pub_new(ch, &po, &p))
			_exit(1);
		for (uint64_t i = 0; i < n; i++) {
			if (zbus_pub_send(p, &i, sizeof(i)))
				_exit(2);
			usleep(20);
		}
		_exit(0);
	}
	return pid;
}

/*
 * A child that subscribes (lossy: it holds nobody back) and registers
 * through a connection it keeps, says 'k', then 'r' once that connection
 * has reconnected to a new broker, then holds until killed.
 */
static pid_t kept_subscriber(const char *name, int *ready_fd)
{
	int p[2];
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	if (!pid) {
		struct zbus_sub_opts so = { .policy = ZBUS_LOSSY };
		struct zbus_conn *c;
		struct zbus_channel *ch;
		struct zbus_sub *s;

		close(p[0]);
		if (zbus_conn_open(&co, &c) ||
		    zbus_conn_open_channel(c, name, ZBUS_ACCESS_SUBSCRIBE, &ch) ||
		    zbus_sub_new(ch, &so, &s) ||
		    zbus_conn_register_sub(c, name, s) ||
		    write(p[1], "k", 1) != 1)
			_exit(1);
		while (!zbus_conn_reconnects(c))
			usleep(1000);
		if (write(p[1], "r", 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	close(p[1]);
	*ready_fd = p[0];
	return pid;
}

/* The subscriber count of @name as the broker reads it. */
static uint32_t subscribers_of(struct zbus_conn *c, const char *name)
{
	struct zbus_channel_stat st;

	cr_assert_eq(zbus_conn_stat(c, name, &st), 0, "stat: %s",
		     zbus_conn_error(c));
	return st.subscribers;
}

Test(reclaim, sigkill_of_the_broker_does_not_stop_the_data_path)
{
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 64 },
					  .mode = 0600 };
	struct zbus_channel_stat *list;
	struct zbus_channel *ch;
	struct zbus_conn *c, *c2;
	struct zbus_sub *sub;
	uint64_t next = 0, v, t0;
	const uint64_t n = 20000;
	pid_t pid, kept;
	int r, kept_fd;
	char said;

	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "flow", &cp, &ch), 0);
	cr_assert_eq(zbus_sub_new(ch, NULL, &sub), 0);
	kept = kept_subscriber("flow", &kept_fd);
	cr_assert_eq(read(kept_fd, &said, 1), 1);
	cr_assert_eq(said, 'k');
	pid = streamer("flow", n);
	/* Let the stream start, then take the broker away mid-flow. */
	while (next < 1000) {
		cr_assert_eq(zbus_sub_recv(sub, &v, sizeof(v), NULL, 2000),
			     sizeof(v));
		cr_assert_eq(v, next++);
	}
	kill(broker, SIGKILL);
	waitpid(broker, NULL, 0);
	/* The data path goes on without it, every message intact. */
	while (next < n) {
		cr_assert_eq(zbus_sub_recv(sub, &v, sizeof(v), NULL, 2000),
			     sizeof(v), "stream stopped at %lu without the broker",
			     (unsigned long)next);
		cr_assert_eq(v, next++);
	}
	cr_assert_eq(tu_wait_child(pid, 10), 0);
	/* Control calls fail with a clear error, new connections too. */
	r = zbus_conn_list(c, &list);
	cr_assert(r == -ENOTCONN || r == -ECONNRESET || r == -EPIPE,
		  "list: %d", r);
	cr_assert_lt(zbus_conn_open(&co, &c2), 0);

	/* A new broker takes the (stale) socket over; the connections
	 * reconnect by themselves and bring the channel back. */
	broker = spawn_broker();
	t0 = now_ms();
	while (!zbus_conn_reconnects(c) && now_ms() - t0 < 5000)
		usleep(1000);
	cr_assert_eq(zbus_conn_reconnects(c), 1, "no reconnection");
	cr_assert_eq(read(kept_fd, &said, 1), 1);
	cr_assert_eq(said, 'r', "the child did not reconnect");
	close(kept_fd);
	cr_assert_eq(zbus_conn_open(&co, &c2), 0);
	r = zbus_conn_list(c2, &list);
	cr_assert_eq(r, 1, "the channel was not recovered");
	cr_assert_str_eq(list[0].name, "flow");
	cr_assert_eq(list[0].published, n, "the same segment, not a new one");
	cr_assert_eq(list[0].mode, 0600);
	free(list);
	cr_assert(log_says("brought channel 'flow' back"));
	/* The child registered again: its death is noticed by the new
	 * broker, which frees its slot. */
	cr_assert_eq(subscribers_of(c2, "flow"), 2);
	kill(kept, SIGKILL);
	waitpid(kept, NULL, 0);
	t0 = now_ms();
	while (subscribers_of(c2, "flow") != 1 && now_ms() - t0 < 2000)
		usleep(1000);
	cr_assert_eq(subscribers_of(c2, "flow"), 1,
		     "the new broker did not free the dead one's slot");
	/* And the data path still works across it all. */
	pid = streamer("flow", 10);
	for (uint64_t i = 0; i < 10; i++) {
		cr_assert_eq(zbus_sub_recv(sub, &v, sizeof(v), NULL, 2000),
			     sizeof(v));
		cr_assert_eq(v, i);
	}
	cr_assert_eq(tu_wait_child(pid, 10), 0);
	zbus_conn_free(c2);
	zbus_sub_free(sub);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

/*
 * Adopt @name with memfds @data and @state (-1: none sent) over a raw
 * connection, as a client that lies would: the library only ever sends the
 * memfds it was given. Return the status, the broker's sentence in @msg.
 */
static int raw_adopt(const char *name, int data, int state, char *msg,
		     size_t cap)
{
	struct zb_fds fds = { .n = data >= 0 ? 2 : 0, .fd = { data, state } };
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	Zbusctl__Hello h = ZBUSCTL__HELLO__INIT;
	Zbusctl__Adopt ad = ZBUSCTL__ADOPT__INIT;
	Zbusctl__Reply *rep;
	uint8_t buf[4096];
	ssize_t n;
	int s, status;

	cr_assert_lt(strlen(sock), sizeof(((struct sockaddr_un *)0)->sun_path));
	s = zb_ctl_connect(sock);
	cr_assert_geq(s, 0, "connect: %s", strerror(-s));
	h.version = ZB_CTL_VERSION;
	req.body_case = ZBUSCTL__REQUEST__BODY_HELLO;
	req.hello = &h;
	cr_assert_eq(zb_ctl_send(s, &req.base, NULL), 0);
	cr_assert_gt(recv(s, buf, sizeof(buf), 0), 0);
	ad.name = (char *)name;
	req.body_case = ZBUSCTL__REQUEST__BODY_ADOPT;
	req.adopt = &ad;
	cr_assert_eq(zb_ctl_send(s, &req.base, &fds), 0);
	n = recv(s, buf, sizeof(buf), 0);
	cr_assert_gt(n, 0);
	rep = zbusctl__reply__unpack(NULL, (size_t)n, buf);
	cr_assert_not_null(rep);
	status = rep->status;
	snprintf(msg, cap, "%s", rep->message ? rep->message : "");
	zbusctl__reply__free_unpacked(rep, NULL);
	close(s);
	return status;
}

Test(reclaim, a_restarted_broker_takes_back_only_the_very_memfd)
{
	struct zbus_conn_opts lone = co;
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 64 },
					  .mode = 0640 };
	struct zbus_channel *ch, *fake, *again;
	struct zbus_channel_stat st;
	struct zbus_conn *c;
	char msg[256];

	/* No keeper: this test hands the memfd back itself. */
	lone.flags |= ZBUS_CONN_NO_RECONNECT;
	cr_assert_eq(zbus_conn_open(&lone, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "kept", &cp, &ch), 0);
	zbus_conn_free(c);
	kill(broker, SIGKILL);
	waitpid(broker, NULL, 0);
	broker = spawn_broker_window(60000);
	cr_assert(log_says("recovering 1 channel"));

	cr_assert_eq(zbus_conn_open(&lone, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "kept", &cp, &again), -EAGAIN);
	cr_assert(strstr(zbus_conn_error(c), "being recovered"), "%s",
		  zbus_conn_error(c));
	cr_assert_eq(zbus_conn_open_channel(c, "kept", ZBUS_ACCESS_SUBSCRIBE,
					    &again), -EAGAIN);
	/* A look-alike: same geometry, same header, another memfd. */
	cr_assert_eq(zbus_channel_create("kept", &cp.geometry, &fake), 0);
	cr_assert_eq(raw_adopt("kept", zbus_channel_fd(fake),
			       zbus_channel_state_fd(fake), msg, sizeof(msg)),
		     -EBADF);
	cr_assert(strstr(msg, "not the memfds"), "%s", msg);
	/* Half of it real is no better. */
	cr_assert_eq(raw_adopt("kept", zbus_channel_fd(ch),
			       zbus_channel_state_fd(fake), msg, sizeof(msg)),
		     -EBADF);
	cr_assert_eq(raw_adopt("kept", zbus_channel_fd(fake),
			       zbus_channel_state_fd(ch), msg, sizeof(msg)),
		     -EBADF);
	cr_assert_eq(raw_adopt("nothing", zbus_channel_fd(ch),
			       zbus_channel_state_fd(ch), msg, sizeof(msg)),
		     -ENOENT);
	cr_assert_eq(raw_adopt("kept", -1, -1, msg, sizeof(msg)), -EINVAL);
	/* The real one, twice: the second is a no-op success. */
	cr_assert_eq(raw_adopt("kept", zbus_channel_fd(ch),
			       zbus_channel_state_fd(ch), msg, sizeof(msg)),
		     0, "%s", msg);
	cr_assert_eq(raw_adopt("kept", zbus_channel_fd(ch),
			       zbus_channel_state_fd(ch), msg, sizeof(msg)),
		     0, "%s", msg);
	cr_assert_eq(raw_adopt("kept", zbus_channel_fd(fake),
			       zbus_channel_state_fd(fake), msg, sizeof(msg)),
		     -EEXIST);
	cr_assert_eq(zbus_conn_stat(c, "kept", &st), 0);
	cr_assert_eq(st.mode, 0640, "owner and mode come from the state");
	cr_assert_eq(zbus_conn_open_channel(c, "kept", ZBUS_ACCESS_SUBSCRIBE,
					    &again), 0);
	zbus_channel_free(again);
	zbus_channel_free(fake);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

Test(reclaim, channels_nobody_brings_back_are_forgotten_after_the_window)
{
	struct zbus_conn_opts lone = co;
	struct zbus_channel *ch;
	struct zbus_conn *c;
	uint64_t t0;
	int r;

	lone.flags |= ZBUS_CONN_NO_RECONNECT;
	cr_assert_eq(zbus_conn_open(&lone, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "orphan", NULL, &ch), 0);
	zbus_channel_free(ch);
	zbus_conn_free(c);
	kill(broker, SIGKILL);
	waitpid(broker, NULL, 0);
	broker = spawn_broker_window(300);
	cr_assert_eq(zbus_conn_open(&lone, &c), 0);
	t0 = now_ms();
	while ((r = zbus_conn_create(c, "orphan", NULL, &ch)) == -EAGAIN &&
	       now_ms() - t0 < 5000)
		usleep(10000);
	cr_assert_eq(r, 0, "create after the window: %s", zbus_strerror(r));
	cr_assert_geq(now_ms() - t0, 200, "forgotten before the window");
	cr_assert(log_says("1 channel not brought back, forgotten"));
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

/*
 * A sealed channel's producer dies mid-loan: the broker, which maps that
 * channel read-only, must not try to pad it (it would fault), and nothing
 * is lost that anyone else could have published.
 */
Test(reclaim, sigkill_of_a_sealed_channels_producer_leaves_the_broker_standing)
{
	struct zbus_channel_stat st;
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_sub *sub;
	struct zbus_msg m;
	int ready, go;
	pid_t holder;

	holder = loan_holder("sealed", 0, 1, 1, &ready, &go);
	wait_ready(ready);
	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_open_channel(c, "sealed", ZBUS_ACCESS_SUBSCRIBE,
					    &ch), 0);
	cr_assert_eq(zbus_sub_new(ch, NULL, &sub), 0);
	kill(holder, SIGKILL);
	waitpid(holder, NULL, 0);
	close(go);
	/* Past a tick of the timer, with the death seen. */
	usleep(200 * 1000);
	cr_assert_eq(kill(broker, 0), 0, "the broker died");
	cr_assert_eq(zbus_conn_stat(c, "sealed", &st), 0);
	cr_assert_eq(st.flags, ZBUS_CHANNEL_SEAL_WRITERS);
	cr_assert_eq(st.reclaimed, 0);
	cr_assert_eq(zbus_sub_recv_batch(sub, &m, 1, 10), -ETIMEDOUT);
	zbus_sub_free(sub);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

/*
 * After a restart, the broker takes a channel back from a client that may
 * only subscribe (its data memfd is read-only: the broker reopens it
 * read-write, and so can still pad stuck claims) and a sealed channel
 * from its producer (kept read-only).
 */
Test(reclaim, a_restarted_broker_recovers_read_only_and_sealed_channels)
{
	struct zbus_channel_opts so = { .max_msg_size = 64,
					.ring_capacity = 8,
					.flags = ZBUS_CHANNEL_SEAL_WRITERS };
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 64,
							 .ring_capacity = 8 },
					  .mode = 0644,
					  .unblock_timeout_ms = 200 };
	struct zbus_channel_params sp = { .mode = 0644 };
	struct zbus_channel *plain, *ro, *sealed, *again;
	struct zbus_conn_opts lone = co;
	struct zbus_channel_stat st;
	struct zbus_channel_info info;
	struct zbus_pub *p;
	struct zbus_sub *sub;
	struct zbus_loan l;
	struct zbus_conn *c;
	char msg[256];

	lone.flags |= ZBUS_CONN_NO_RECONNECT;
	cr_assert_eq(zbus_conn_open(&lone, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "plain", &cp, &plain), 0);
	cr_assert_eq(zbus_conn_open_channel(c, "plain", ZBUS_ACCESS_SUBSCRIBE,
					    &ro), 0);
	cr_assert_eq(zbus_channel_create("sealed", &so, &sealed), 0);
	cr_assert_eq(zbus_conn_offer(c, "sealed", &sp, sealed), 0);
	zbus_conn_free(c);
	kill(broker, SIGKILL);
	waitpid(broker, NULL, 0);
	broker = spawn_broker_window(60000);
	cr_assert(log_says("recovering 2 channel"));

	/* Only the read-only memfd of "plain" comes back. */
	cr_assert_eq(raw_adopt("plain", zbus_channel_fd(ro),
			       zbus_channel_state_fd(ro), msg, sizeof(msg)),
		     0, "%s", msg);
	cr_assert_eq(raw_adopt("sealed", zbus_channel_fd(sealed),
			       zbus_channel_state_fd(sealed), msg,
			       sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(zbus_conn_open(&lone, &c), 0);
	cr_assert_eq(zbus_conn_stat(c, "sealed", &st), 0);
	cr_assert_eq(st.flags, ZBUS_CHANNEL_SEAL_WRITERS);
	cr_assert_eq(zbus_conn_open_channel(c, "sealed", ZBUS_ACCESS_PUBLISH,
					    &again), -EACCES);
	cr_assert_eq(zbus_conn_open_channel(c, "sealed",
					    ZBUS_ACCESS_SUBSCRIBE, &again), 0);
	zbus_channel_info(again, &info);
	cr_assert(info.flags & ZBUS_CHANNEL_READ_ONLY);
	zbus_channel_free(again);

	/* The broker can write "plain": a stuck loan is padded. */
	cr_assert_eq(zbus_sub_new(ro, NULL, &sub), 0);
	cr_assert_eq(zbus_pub_new(plain, NULL, &p), 0);
	cr_assert_eq(zbus_pub_loan(p, 8, &l), 0);
	publish_behind(plain, sub, 0);
	expect_after(sub, 5000);
	cr_assert_eq(zbus_pub_publish(p, &l, 8), -ECANCELED);
	zbus_pub_free(p);
	zbus_sub_free(sub);
	zbus_channel_free(sealed);
	zbus_channel_free(ro);
	zbus_channel_free(plain);
	zbus_conn_free(c);
}

/*
 * Kill the broker, then (while none runs) @victim if not 0, and start a
 * new broker; wait until @c, which holds the channel, has reconnected and
 * brought it back. The new broker knows @victim from the saved registry
 * only.
 */
static void restart_broker_killing(struct zbus_conn *c, pid_t victim)
{
	uint64_t t0;

	kill(broker, SIGKILL);
	waitpid(broker, NULL, 0);
	if (victim) {
		kill(victim, SIGKILL);
		waitpid(victim, NULL, 0);
	}
	broker = spawn_broker();
	t0 = now_ms();
	while (!zbus_conn_reconnects(c) && now_ms() - t0 < 5000)
		usleep(1000);
	cr_assert_eq(zbus_conn_reconnects(c), 1, "no reconnection");
}

/* A reliable subscriber killed while no broker runs holds producers back
 * only until its channel comes back to a new broker. */
Test(reclaim, a_subscriber_dead_while_no_broker_ran_is_freed_at_recovery)
{
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 64,
							 .ring_capacity = 8 } };
	struct zbus_pub_opts po = { .timeout_ms = 100 };
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_pub *p;
	int fd;
	pid_t holder;

	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "orphaned", &cp, &ch), 0);
	holder = holding_subscriber("orphaned", &fd, THEN_HOLD);
	wait_ready(fd);
	cr_assert_eq(zbus_pub_new(ch, &po, &p), 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(zbus_pub_send(p, "x", 1), 0);
	cr_assert_lt(zbus_pub_send(p, "x", 1), 0, "the holder holds nothing");

	restart_broker_killing(c, holder);
	/* The stale slot went when the channel came back: no timeout. */
	cr_assert(log_says_soon("died while no broker watched it: freed its "
				"subscription"), "the log does not say");
	cr_assert_eq(subscribers_of(c, "orphaned"), 0);
	cr_assert_eq(zbus_pub_send(p, "x", 1), 0,
		     "the dead subscriber still holds the producer back");
	zbus_pub_free(p);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

/* A producer killed mid-loan while no broker runs costs one message when
 * its channel comes back, not the channel's unblock timeout. */
Test(reclaim, a_producer_dead_mid_loan_while_no_broker_ran_is_padded_at_recovery)
{
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 64,
							 .ring_capacity = 8 },
					  .unblock_timeout_ms = 60000 };
	struct zbus_channel_stat st;
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_sub *sub;
	int ready, go;
	pid_t holder;

	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "orphaned", &cp, &ch), 0);
	cr_assert_eq(zbus_sub_new(ch, NULL, &sub), 0);
	holder = loan_holder("orphaned", 0, 1, 0, &ready, &go);
	wait_ready(ready);
	publish_behind(ch, sub, 0);

	restart_broker_killing(c, holder);
	close(go);
	expect_after(sub, 2000);
	cr_assert(log_says_soon("died while no broker watched it: freed its "
				"publisher slot 0 on 'orphaned' and padded 1 "
				"open loan"), "the log does not say");
	cr_assert_eq(zbus_conn_stat(c, "orphaned", &st), 0);
	cr_assert_eq(st.publishers, 0, "the dead producer is still counted");
	zbus_sub_free(sub);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

/*
 * A subscriber whose connection is closed (it relies on the broker's watch)
 * outlives the broker: the new one watches it again from the saved
 * registry, and frees it within 100 ms of its death.
 */
Test(reclaim, a_new_broker_watches_again_what_the_old_one_watched)
{
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 64,
							 .ring_capacity = 8 } };
	struct zbus_pub_opts po = { .timeout_ms = 5000 };
	struct blocked_send b = { 0 };
	struct zbus_channel *ch;
	struct zbus_conn *c;
	int fd;
	pid_t holder;

	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "outlived", &cp, &ch), 0);
	holder = holding_subscriber("outlived", &fd, THEN_HOLD);
	wait_ready(fd);
	restart_broker_killing(c, 0);
	cr_assert_eq(subscribers_of(c, "outlived"), 1, "freed while alive");
	cr_assert(log_says_soon("still runs: watching its subscriber slot"));

	cr_assert_eq(zbus_pub_new(ch, &po, &b.pub), 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(zbus_pub_send(b.pub, "x", 1), 0);
	sigkill_frees_the_producer(&b, holder);
	cr_assert(log_says_soon("freed its subscription"));
	zbus_pub_free(b.pub);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

/*
 * A process may only ask the broker to watch a slot that it holds itself:
 * its death must never free another's subscription or publisher slot.
 */
Test(reclaim, registering_another_process_slot_is_refused)
{
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 64 } };
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_sub *sub;
	struct zbus_pub *pub;
	pid_t pid;

	cr_assert_eq(zbus_conn_open(&co, &c), 0);
	cr_assert_eq(zbus_conn_create(c, "mine", &cp, &ch), 0);
	cr_assert_eq(zbus_sub_new(ch, NULL, &sub), 0);
	cr_assert_eq(zbus_pub_new(ch, NULL, &pub), 0);
	pid = fork();
	if (!pid) {
		/* Same user, its own connection, our slots. */
		struct zbus_conn *cc;

		if (zbus_conn_open(&co, &cc))
			_exit(1);
		if (zbus_conn_register_sub(cc, "mine", sub) != -EPERM ||
		    !strstr(zbus_conn_error(cc), "not to the process"))
			_exit(2);
		if (zbus_conn_register_pub(cc, "mine", pub) != -EPERM)
			_exit(3);
		zbus_conn_free(cc);
		_exit(0);
	}
	cr_assert_eq(tu_wait_child(pid, 10), 0, "the other process was "
		     "allowed to register our slots (exit code)");
	/* The owner itself may. */
	cr_assert_eq(zbus_conn_register_sub(c, "mine", sub), 0, "%s",
		     zbus_conn_error(c));
	cr_assert_eq(zbus_conn_register_pub(c, "mine", pub), 0, "%s",
		     zbus_conn_error(c));
	zbus_pub_free(pub);
	zbus_sub_free(sub);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}
