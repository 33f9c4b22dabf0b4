/* SPDX-License-Identifier: MIT */
/*
 * test_ref.c - messages published by reference, between real processes:
 * a producer child publishes a buffer of its own private memory, the test
 * pulls it with process_vm_readv. Sizes from 1 KiB to 256 MiB arrive whole
 * and the producer learns when they are done with; a producer killed before
 * or during a pull, a buffer unmapped or revoked after publishing, a range
 * beyond the message, a record naming a process that is no publisher, and
 * another user's process are each a clear error for that message, never a
 * partial or changed payload reported as success.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "layout.h"
#include "ring.h"
#include "testutil.h"
#include "zbus/zbus.h"

static struct zbus_channel *ch;

static void setup(void)
{
	struct zbus_channel_opts o = { .max_msg_size = 4096,
				       .ring_capacity = 64 };

	tu_leak_begin();
	cr_assert_eq(zbus_channel_create("refs", &o, &ch), 0);
}

static void teardown(void)
{
	ch = zbus_channel_free(ch);
	tu_leak_end();
}

TestSuite(ref, .init = setup, .fini = teardown, .timeout = 60);

/* Word @i of the stream of bytes a buffer filled for @seed holds. */
static uint64_t word_at(uint64_t i, uint64_t seed)
{
	return (i * 0x9e3779b97f4a7c15ull) ^ seed;
}

/* Bytes [@off, @off + @n) of that stream into @out: cheap enough for
 * 256 MiB (a store per word where aligned). */
static void stream(uint8_t *out, uint64_t off, size_t n, uint64_t seed)
{
	size_t i = 0;

	for (; i < n && (off + i) % 8; i++) {
		uint64_t w = word_at((off + i) / 8, seed);

		out[i] = ((uint8_t *)&w)[(off + i) % 8];
	}
	for (; i + 8 <= n; i += 8) {
		uint64_t w = word_at((off + i) / 8, seed);

		memcpy(out + i, &w, 8);
	}
	for (; i < n; i++) {
		uint64_t w = word_at((off + i) / 8, seed);

		out[i] = ((uint8_t *)&w)[(off + i) % 8];
	}
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	stream(p, 0, n, seed);
}

/* Does @p hold bytes [@off, @off + @n) of the stream for @seed? */
static int holds(const uint8_t *p, uint64_t off, size_t n, uint64_t seed)
{
	static uint8_t want[1 << 20];

	for (size_t done = 0; done < n; done += sizeof(want)) {
		size_t k = n - done < sizeof(want) ? n - done : sizeof(want);

		stream(want, off + done, k, seed);
		if (memcmp(p + done, want, k))
			return 0;
	}
	return 1;
}

/* A producer child and the two pipes to talk to it. */
struct producer {
	pid_t pid;
	int rd; /* what it says */
	int wr; /* what we tell it */
	uint64_t seq;
};

/*
 * Commands a producer child obeys, after publishing its buffer by
 * reference and saying its seq and what zbus_pub_ref_wait(0) said.
 */
enum { CMD_WAIT = 'w',   /* zbus_pub_ref_wait(-1), say its result */
       CMD_UNMAP = 'u',  /* munmap the buffer */
       CMD_REVOKE = 'r', /* revoke, then scribble over the buffer */
       CMD_REUSE = 'R',  /* zbus_pub_ref_wait(-1), then scribble */
       CMD_EXIT = 'x' };

static void say(int fd, int64_t v)
{
	if (write(fd, &v, sizeof(v)) != sizeof(v))
		_exit(90);
}

static int64_t hear(const struct producer *p)
{
	int64_t v = -1;

	cr_assert_eq(read(p->rd, &v, sizeof(v)), sizeof(v),
		     "the producer did not answer");
	return v;
}

static void tell(const struct producer *p, char c)
{
	cr_assert_eq(write(p->wr, &c, 1), 1);
}

static void producer_main(int rd, int wr, size_t size, uint64_t seed,
			  uint32_t pub_flags)
{
	struct zbus_pub_opts po = { .timeout_ms = -1, .flags = pub_flags };
	struct zbus_pub *pub;
	uint64_t seq = 0;
	uint8_t *buf;
	char c;

	buf = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED || zbus_pub_new(ch, &po, &pub))
		_exit(91);
	fill(buf, size, seed);
	if (zbus_pub_send_ref(pub, buf, size, &seq))
		_exit(92);
	say(wr, (int64_t)seq);
	say(wr, zbus_pub_ref_wait(pub, seq, 0));
	while (read(rd, &c, 1) == 1) {
		switch (c) {
		case CMD_WAIT:
			say(wr, zbus_pub_ref_wait(pub, seq, -1));
			break;
		case CMD_UNMAP:
			munmap(buf, size ? size : 1);
			say(wr, 0);
			break;
		case CMD_REVOKE:
			zbus_pub_ref_revoke(pub, seq);
			memset(buf, 0xee, size);
			say(wr, 0);
			break;
		case CMD_REUSE:
			say(wr, zbus_pub_ref_wait(pub, seq, -1));
			memset(buf, 0xee, size);
			break;
		case CMD_EXIT:
			zbus_pub_free(pub);
			_exit(0);
		}
	}
	_exit(0);
}

/* Fork a producer that publishes @size bytes by reference. */
static struct producer start_producer(size_t size, uint64_t seed)
{
	struct producer p;
	int up[2], down[2];

	cr_assert_eq(pipe(up), 0);
	cr_assert_eq(pipe(down), 0);
	p.pid = fork();
	cr_assert_geq(p.pid, 0);
	if (!p.pid) {
		close(up[0]);
		close(down[1]);
		producer_main(down[0], up[1], size, seed, 0);
	}
	close(up[1]);
	close(down[0]);
	p.rd = up[0];
	p.wr = down[1];
	p.seq = (uint64_t)hear(&p);
	return p;
}

static void stop_producer(struct producer *p)
{
	char c = CMD_EXIT;

	if (write(p->wr, &c, 1) != 1)
		kill(p->pid, SIGKILL);
	cr_assert_neq(tu_wait_child(p->pid, 30), -1, "producer did not end");
	close(p->rd);
	close(p->wr);
}

static void kill_producer(struct producer *p)
{
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	close(p->rd);
	close(p->wr);
}

static struct zbus_sub *subscribe(uint32_t policy)
{
	struct zbus_sub_opts so = { .policy = policy };
	struct zbus_sub *s;

	cr_assert_eq(zbus_sub_new(ch, &so, &s), 0);
	return s;
}

/* Receive the next message, which must be by reference, of @size. */
static void recv_ref(struct zbus_sub *s, struct zbus_msg *m, size_t size)
{
	cr_assert_eq(zbus_sub_recv_batch(s, m, 1, 2000), 1);
	cr_assert(m->flags & ZBUS_MSG_REF, "not a message by reference");
	cr_assert_null(m->data);
	cr_assert_eq(m->size, size);
}

static void *map_buffer(size_t size)
{
	void *p = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(p, MAP_FAILED);
	return p;
}

/* --- the normal case, at three sizes ---------------------------------- */

static void pull_whole(size_t size)
{
	struct zbus_sub *s = subscribe(ZBUS_RELIABLE);
	struct zbus_sub_stats st;
	struct producer p;
	struct zbus_msg m;
	uint8_t *dst = map_buffer(size);

	p = start_producer(size, size);
	/* Not done while we have not even received it. */
	cr_assert_eq(hear(&p), -EAGAIN, "done before anyone pulled");
	recv_ref(s, &m, size);
	cr_assert_eq(m.seq, p.seq);
	cr_assert_eq(zbus_sub_pull(s, &m, 0, dst, size), (ssize_t)size);
	cr_assert(holds(dst, 0, size, size), "the pulled bytes differ");
	cr_assert_eq(zbus_sub_release(s), 0);
	/* The completion notice reaches the producer. */
	tell(&p, CMD_WAIT);
	cr_assert_eq(hear(&p), 0);
	stop_producer(&p);
	cr_assert_eq(zbus_sub_stats(s, &st), 0);
	cr_assert_eq(st.pulled, 1);
	cr_assert_eq(st.pull_failed, 0);
	munmap(dst, size ? size : 1);
	zbus_sub_free(s);
}

Test(ref, a_1kib_pull_arrives_whole)
{
	pull_whole(1024);
}

Test(ref, a_1mib_pull_arrives_whole)
{
	pull_whole(1 << 20);
}

Test(ref, a_256mib_pull_arrives_whole)
{
	pull_whole(256u << 20);
}

Test(ref, pulls_in_pieces_and_of_nothing)
{
	const size_t size = 100000;
	struct zbus_sub *s = subscribe(ZBUS_RELIABLE);
	struct producer p;
	struct zbus_msg m;
	uint8_t piece[4099];

	p = start_producer(size, 7);
	hear(&p);
	recv_ref(s, &m, size);
	for (uint64_t off = 0; off < size; off += sizeof(piece)) {
		size_t n = size - off < sizeof(piece) ? size - off :
							sizeof(piece);

		cr_assert_eq(zbus_sub_pull(s, &m, off, piece, n), (ssize_t)n);
		cr_assert(holds(piece, off, n, 7), "piece at %lu differs",
			  (unsigned long)off);
	}
	cr_assert_eq(zbus_sub_pull(s, &m, size, NULL, 0), 0);
	zbus_sub_release(s);
	stop_producer(&p);
	zbus_sub_free(s);
}

Test(ref, recv_by_copy_pulls_by_itself)
{
	const size_t size = 300000;
	struct zbus_sub *s = subscribe(ZBUS_RELIABLE);
	uint8_t *dst = malloc(size), small[16];
	struct zbus_msg info;
	struct producer p;

	cr_assert(dst);
	p = start_producer(size, 3);
	hear(&p);
	cr_assert_eq(zbus_sub_recv(s, dst, size, &info, 2000), (int)size);
	cr_assert(info.flags & ZBUS_MSG_REF);
	cr_assert(holds(dst, 0, size, 3));
	tell(&p, CMD_WAIT);
	cr_assert_eq(hear(&p), 0, "recv did not release it");
	stop_producer(&p);
	/* Too small a buffer: consumed, -EMSGSIZE, as for any message. */
	p = start_producer(size, 4);
	hear(&p);
	cr_assert_eq(zbus_sub_recv(s, small, sizeof(small), &info, 2000),
		     -EMSGSIZE);
	cr_assert_eq(info.size, size);
	stop_producer(&p);
	free(dst);
	zbus_sub_free(s);
}

/* --- large sends take this path by themselves -------------------------- */

Test(ref, a_send_larger_than_max_msg_size_goes_by_reference_when_allowed)
{
	const size_t size = 8u << 20; /* the arena holds 8 KiB messages */
	struct zbus_pub_opts plain = { .timeout_ms = 1000 };
	struct zbus_sub *s = subscribe(ZBUS_RELIABLE);
	struct zbus_pub *pub;
	uint8_t *src = map_buffer(size), *dst = map_buffer(size);
	pid_t pid;

	cr_assert_eq(zbus_pub_new(ch, &plain, &pub), 0);
	cr_assert_eq(zbus_pub_send(pub, src, size), -EMSGSIZE);
	zbus_pub_free(pub);
	fill(src, size, 11);
	pid = fork();
	if (!pid) {
		struct zbus_pub_opts po = { .timeout_ms = 10000,
					    .flags = ZBUS_PUB_LARGE_BY_REF };

		if (zbus_pub_new(ch, &po, &pub))
			_exit(1);
		/* Returns once we pulled and released it. */
		if (zbus_pub_send(pub, src, size))
			_exit(2);
		memset(src, 0, size); /* its buffer is its own again */
		zbus_pub_free(pub);
		_exit(0);
	}
	cr_assert_eq(zbus_sub_recv(s, dst, size, NULL, 5000), (int)size);
	cr_assert(holds(dst, 0, size, 11));
	cr_assert_eq(tu_wait_child(pid, 10), 0);
	munmap(src, size);
	munmap(dst, size);
	zbus_sub_free(s);
}

/* --- failures, each for its message only ------------------------------ */

Test(ref, a_producer_killed_before_the_pull_is_esrch)
{
	struct zbus_sub *s = subscribe(ZBUS_RELIABLE);
	struct zbus_sub_stats st;
	struct producer p;
	struct zbus_msg m;
	uint8_t dst[4096];

	p = start_producer(sizeof(dst), 1);
	hear(&p);
	recv_ref(s, &m, sizeof(dst));
	kill_producer(&p);
	cr_assert_eq(zbus_sub_pull(s, &m, 0, dst, sizeof(dst)), -ESRCH);
	zbus_sub_release(s);
	cr_assert_eq(zbus_sub_stats(s, &st), 0);
	cr_assert_eq(st.pull_failed, 1);
	zbus_sub_free(s);
}

struct pull_job {
	struct zbus_sub *s;
	struct zbus_msg m;
	uint8_t *dst;
	ssize_t r;
};

static void *pull_thread(void *arg)
{
	struct pull_job *j = arg;

	j->r = zbus_sub_pull(j->s, &j->m, 0, j->dst, j->m.size);
	return NULL;
}

/* Kill the producer while a 256 MiB pull runs: an error, or (if the kill
 * came after the copy) the whole right payload; never a part. */
Test(ref, a_producer_killed_mid_pull_never_gives_a_partial_success)
{
	const size_t size = 256u << 20;
	struct pull_job j = { .dst = map_buffer(size) };
	int failed = 0;

	j.s = subscribe(ZBUS_RELIABLE);
	for (int round = 0; round < 4; round++) {
		struct producer p = start_producer(size, 100 + round);
		pthread_t th;

		hear(&p);
		recv_ref(j.s, &j.m, size);
		memset(j.dst, 0, size);
		cr_assert_eq(pthread_create(&th, NULL, pull_thread, &j), 0);
		usleep(1000 * (unsigned)(1 + round * 3));
		kill_producer(&p);
		pthread_join(th, NULL);
		zbus_sub_release(j.s);
		if (j.r < 0) {
			cr_assert(j.r == -ESRCH || j.r == -EFAULT,
				  "pull: %zd", j.r);
			failed++;
		} else {
			cr_assert_eq(j.r, (ssize_t)size);
			cr_assert(holds(j.dst, 0, size, 100 + round),
				  "a partial payload reported as whole");
		}
	}
	cr_log_info("%d of 4 pulls were cut by the kill", failed);
	munmap(j.dst, size);
	zbus_sub_free(j.s);
}

Test(ref, a_buffer_unmapped_after_publishing_is_efault)
{
	struct zbus_sub *s = subscribe(ZBUS_RELIABLE);
	struct producer p;
	struct zbus_msg m;
	uint8_t dst[8192];

	p = start_producer(sizeof(dst), 2);
	hear(&p);
	tell(&p, CMD_UNMAP);
	hear(&p);
	recv_ref(s, &m, sizeof(dst));
	cr_assert_eq(zbus_sub_pull(s, &m, 0, dst, sizeof(dst)), -EFAULT);
	zbus_sub_release(s);
	stop_producer(&p);
	zbus_sub_free(s);
}

Test(ref, a_pull_beyond_the_published_range_is_refused)
{
	struct zbus_sub *s = subscribe(ZBUS_RELIABLE);
	struct producer p;
	struct zbus_msg m, forged;
	uint8_t dst[2048];

	p = start_producer(1024, 5);
	hear(&p);
	recv_ref(s, &m, 1024);
	cr_assert_eq(zbus_sub_pull(s, &m, 0, dst, 1025), -EINVAL);
	cr_assert_eq(zbus_sub_pull(s, &m, 1, dst, 1024), -EINVAL);
	cr_assert_eq(zbus_sub_pull(s, &m, 1025, dst, 0), -EINVAL);
	cr_assert_eq(zbus_sub_pull(s, &m, UINT64_MAX, dst, 2), -EINVAL);
	/* A message claiming more than was published: the record says. */
	forged = m;
	forged.size = 2048;
	cr_assert_eq(zbus_sub_pull(s, &forged, 0, dst, 2048), -EBADMSG);
	/* Or one this subscription does not hold. */
	forged = m;
	forged.seq += 1;
	cr_assert_eq(zbus_sub_pull(s, &forged, 0, dst, 1), -EINVAL);
	/* Or a record's place the caller made up. */
	forged = m;
	forged.priv += 8;
	cr_assert_eq(zbus_sub_pull(s, &forged, 0, dst, 1), -EINVAL);
	cr_assert_eq(zbus_sub_pull(s, &m, 1000, dst, 24), 24);
	cr_assert(holds(dst, 1000, 24, 5));
	zbus_sub_release(s);
	cr_assert_eq(zbus_sub_pull(s, &m, 0, dst, 1), -EINVAL,
		     "a released message can still be pulled");
	stop_producer(&p);
	zbus_sub_free(s);
}

Test(ref, a_revoked_buffer_is_estale_never_a_changed_copy)
{
	struct zbus_sub *s = subscribe(ZBUS_RELIABLE);
	struct producer p;
	struct zbus_msg m;
	uint8_t dst[4096];

	p = start_producer(sizeof(dst), 6);
	hear(&p);
	recv_ref(s, &m, sizeof(dst));
	tell(&p, CMD_REVOKE);
	hear(&p);
	cr_assert_eq(zbus_sub_pull(s, &m, 0, dst, sizeof(dst)), -ESTALE);
	zbus_sub_release(s);
	stop_producer(&p);
	zbus_sub_free(s);
}

/* A lossy subscriber does not hold the producer back: once the producer's
 * wait returned and it reused the buffer, a late pull is -ESTALE, and the
 * copying receive counts the message as missed. */
Test(ref, a_lossy_subscriber_loses_a_buffer_reused_after_the_wait)
{
	struct zbus_sub *s = subscribe(ZBUS_LOSSY);
	struct zbus_sub_stats st;
	struct producer p;
	struct zbus_msg m;
	uint8_t dst[4096];

	p = start_producer(sizeof(dst), 8);
	cr_assert_eq(hear(&p), 0, "a lossy subscriber held the producer");
	recv_ref(s, &m, sizeof(dst));
	tell(&p, CMD_REUSE);
	cr_assert_eq(hear(&p), 0);
	cr_assert_eq(zbus_sub_pull(s, &m, 0, dst, sizeof(dst)), -ESTALE);
	zbus_sub_release(s);
	stop_producer(&p);
	cr_assert_eq(zbus_sub_stats(s, &st), 0);
	cr_assert_eq(st.pull_failed, 1);
	zbus_sub_free(s);
}

/*
 * A publisher that writes a record naming a slot whose process does not
 * map the channel (a pid the slot claims, of an unrelated process) gets
 * nothing read from that process.
 */
Test(ref, a_record_naming_a_process_that_is_no_publisher_is_ebadmsg)
{
	struct zbus_sub *s = subscribe(ZBUS_RELIABLE);
	struct zbus_pub *pub;
	struct zb_pub_slot *sl;
	struct zbus_msg m;
	uint8_t secret[64], dst[64];
	int unmapped[2];
	pid_t bystander;
	char c;
	int r;

	memset(secret, 0x5a, sizeof(secret));
	cr_assert_eq(pipe(unmapped), 0);
	bystander = fork();
	if (!bystander) {
		/* Holds the same bytes at the same address, maps nothing of
		 * the channel: a process we may read, but no publisher. */
		zbus_channel_free(ch);
		if (write(unmapped[1], "u", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(unmapped[1]);
	cr_assert_eq(read(unmapped[0], &c, 1), 1, "the bystander unmapped");
	close(unmapped[0]);
	cr_assert_eq(zbus_pub_new(ch, NULL, &pub), 0);
	cr_assert_eq(zbus_pub_send_ref(pub, secret, sizeof(secret), NULL), 0);
	/* The publisher lies about who it is. */
	sl = &ch->seg.pubs[0];
	cr_assert_eq(sl->state & ZB_SLOT_STATE_MASK, ZB_SLOT_ACTIVE);
	sl->pid = (uint32_t)bystander;
	recv_ref(s, &m, sizeof(secret));
	r = (int)zbus_sub_pull(s, &m, 0, dst, sizeof(dst));
	cr_assert_eq(r, -EBADMSG, "pull: %d", r);
	zbus_sub_release(s);
	kill(bystander, SIGKILL);
	waitpid(bystander, NULL, 0);
	zbus_pub_free(pub);
	zbus_sub_free(s);
}

/* --- across users -------------------------------------------------------- */

#define NOBODY 65534

/* Root may pull from another user's process; that user may not pull from
 * root's: the kernel's ptrace rules, reported as -EPERM. */
Test(ref, another_user_cannot_pull_directly)
{
	struct zbus_sub *s;
	struct producer p;
	struct zbus_msg m;
	uint8_t dst[4096];
	pid_t consumer;

	if (geteuid() != 0)
		cr_skip_test("needs root to run processes of two users");
	s = subscribe(ZBUS_RELIABLE);
	p = start_producer(sizeof(dst), 9); /* root's */
	hear(&p);
	recv_ref(s, &m, sizeof(dst));
	consumer = fork();
	if (!consumer) {
		/* The same subscription, from a process of another user. */
		if (setgid(NOBODY) || setuid(NOBODY))
			_exit(1);
		_exit(zbus_sub_pull(s, &m, 0, dst, sizeof(dst)) == -EPERM ?
			      0 : 2);
	}
	cr_assert_eq(tu_wait_child(consumer, 10), 0,
		     "nobody pulled from root's process");
	/* Root itself may. */
	cr_assert_eq(zbus_sub_pull(s, &m, 0, dst, sizeof(dst)),
		     (ssize_t)sizeof(dst));
	cr_assert(holds(dst, 0, sizeof(dst), 9));
	zbus_sub_release(s);
	stop_producer(&p);
	zbus_sub_free(s);
}

/* --- through the broker, for a subscriber of another user ----------------- */

static struct tu_broker bk;
static struct zbus_conn_opts bco;

static void broker_setup(void)
{
	int r;

	tu_leak_begin();
	if (geteuid() != 0)
		return; /* each test skips, saying why */
	r = tu_broker_start(&bk);
	cr_assert_eq(r, 0, "broker: %s", strerror(-r));
	bco = (struct zbus_conn_opts){ .socket_path = bk.sock,
				       .flags = ZBUS_CONN_NO_AUTOSTART |
						ZBUS_CONN_NO_RECONNECT };
}

static void broker_teardown(void)
{
	if (bk.pid)
		tu_broker_stop(&bk);
	tu_leak_end();
}

TestSuite(ref_broker, .init = broker_setup, .fini = broker_teardown,
	  .timeout = 60);

/* Root publishes @name (made with @mode) by reference and registers. */
struct root_side {
	struct zbus_conn *c;
	struct zbus_channel *ch;
	struct zbus_pub *pub;
};

static void root_publisher(struct root_side *r, const char *name,
			   uint32_t mode)
{
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 4096 },
					  .mode = mode };

	if (geteuid() != 0)
		cr_skip_test("needs root to run processes of two users");
	cr_assert_eq(zbus_conn_open(&bco, &r->c), 0);
	cr_assert_eq(zbus_conn_create(r->c, name, &cp, &r->ch), 0);
	cr_assert_eq(zbus_pub_new(r->ch, NULL, &r->pub), 0);
	cr_assert_eq(zbus_conn_register_pub(r->c, name, r->pub), 0, "%s",
		     zbus_conn_error(r->c));
}

static void root_done(struct root_side *r)
{
	zbus_pub_free(r->pub);
	zbus_channel_free(r->ch);
	zbus_conn_free(r->c);
}

/* A consumer child of uid nobody and its two pipes. */
struct consumer {
	pid_t pid;
	int ready; /* it says it subscribed */
	int go;    /* we say it may receive */
};

/*
 * Fork a consumer of uid nobody: it opens @name through the broker (or,
 * with @inherited, uses that mapping, made before it dropped root),
 * subscribes with its connection for pulls, says ready, waits for go,
 * receives one message and exits with 0 if it got @size bytes of @seed,
 * else with the negated error as its status.
 */
static struct consumer nobody_consumer(const char *name,
				       struct zbus_channel *inherited,
				       size_t size, uint64_t seed)
{
	struct consumer k;
	int up[2], down[2];
	char c;

	cr_assert_eq(pipe(up), 0);
	cr_assert_eq(pipe(down), 0);
	k.pid = fork();
	if (!k.pid) {
		struct zbus_sub_opts so = { .policy = ZBUS_RELIABLE };
		struct zbus_channel *mine = inherited;
		struct zbus_conn *conn;
		struct zbus_sub *s;
		uint8_t *dst = malloc(size);
		int r;

		close(up[0]);
		close(down[1]);
		if (!dst || setgid(NOBODY) || setuid(NOBODY))
			_exit(200);
		if (zbus_conn_open(&bco, &conn))
			_exit(201);
		if (!mine && zbus_conn_open_channel(conn, name,
						    ZBUS_ACCESS_SUBSCRIBE,
						    &mine))
			_exit(202);
		so.conn = conn;
		if (zbus_sub_new(mine, &so, &s) || write(up[1], "k", 1) != 1 ||
		    read(down[0], &c, 1) != 1)
			_exit(203);
		r = zbus_sub_recv(s, dst, size, NULL, 5000);
		if (r < 0)
			_exit(-r);
		_exit(r == (int)size && holds(dst, 0, size, seed) ? 0 : 204);
	}
	close(up[1]);
	close(down[0]);
	k.ready = up[0];
	k.go = down[1];
	cr_assert_eq(read(k.ready, &c, 1), 1, "the consumer did not start");
	close(k.ready);
	return k;
}

/* Let it receive; return its exit status. */
static int consumer_result(struct consumer *k)
{
	cr_assert_eq(write(k->go, "g", 1), 1);
	close(k->go);
	return tu_wait_child(k->pid, 20);
}

Test(ref_broker, another_user_pulls_through_the_broker_when_the_mode_allows)
{
	const size_t size = 3u << 20; /* more than one Pull request */
	struct root_side r;
	uint8_t *buf = map_buffer(size);
	struct consumer k;
	uint64_t seq;
	int st;

	root_publisher(&r, "shared", 0644);
	fill(buf, size, 21);
	k = nobody_consumer("shared", NULL, size, 21);
	cr_assert_eq(zbus_pub_send_ref(r.pub, buf, size, &seq), 0);
	st = consumer_result(&k);
	cr_assert_eq(st, 0, "the consumer failed: %d", st);
	/* And the producer hears it is done. */
	cr_assert_eq(zbus_pub_ref_wait(r.pub, seq, 2000), 0);
	munmap(buf, size);
	root_done(&r);
}

Test(ref_broker, another_user_without_the_right_to_subscribe_gets_eacces)
{
	struct root_side r;
	uint8_t buf[4096];
	struct consumer k;
	int st;

	root_publisher(&r, "private", 0600);
	fill(buf, sizeof(buf), 22);
	/* It has the mapping (forked before dropping root), not the right. */
	k = nobody_consumer(NULL, r.ch, sizeof(buf), 22);
	cr_assert_eq(zbus_pub_send_ref(r.pub, buf, sizeof(buf), NULL), 0);
	st = consumer_result(&k);
	cr_assert_eq(st, EACCES, "consumer exit %d, not EACCES", st);
	root_done(&r);
}

/*
 * Another publisher of the channel writes a record naming the registered
 * publisher's slot, at an address of its choosing: the broker, which may
 * read anything, reads only what that publisher's own table vouches for.
 */
Test(ref_broker, the_broker_pulls_only_what_the_publisher_vouches_for)
{
	static uint8_t secret[4096];
	struct root_side r;
	struct zbus_pub *liar;
	struct zb_ref *rec;
	const struct zb_desc *d;
	uint32_t slot, word;
	struct consumer k;
	uint64_t seq;
	int st;

	root_publisher(&r, "forged", 0644);
	memset(secret, 0x5e, sizeof(secret));
	cr_assert_eq(zbus_pub_new(r.ch, NULL, &liar), 0);
	k = nobody_consumer("forged", NULL, sizeof(secret), 0);
	/* The honest one's slot and word, as anyone mapping it reads them. */
	slot = 0;
	word = r.ch->seg.pubs[0].state;
	cr_assert_eq(zbus_pub_send_ref(liar, secret, sizeof(secret), &seq), 0);
	d = &r.ch->seg.ring[seq & (r.ch->seg.g.ring_capacity - 1)];
	rec = (struct zb_ref *)(r.ch->seg.arena +
				(d->pos & (r.ch->seg.g.arena_size - 1)));
	rec->slot = slot;
	rec->word = word;
	st = consumer_result(&k);
	cr_assert_eq(st, ESTALE, "consumer exit %d, not ESTALE", st);
	zbus_pub_free(liar);
	root_done(&r);
}
