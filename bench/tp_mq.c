/* SPDX-License-Identifier: MIT */
/*
 * tp_mq.c - zbus-bench's "mq" transport: one POSIX message queue per link,
 * each message one mq_send() and one mq_receive(), blocking.
 *
 * The kernel bounds queues (mq_overview(7)):
 *  - a message may not be larger than fs.mqueue.msgsize_max (8 KiB by
 *    default), nor a queue deeper than fs.mqueue.msg_max (10), unless the
 *    process has CAP_SYS_RESOURCE: then 16 MiB and 65536;
 *  - the bytes of all of a user's queues count against its
 *    RLIMIT_MSGQUEUE (800 KiB by default), privileged or not.
 * mqlink_available() therefore makes the queues a cell will hold and, if
 * the kernel refuses them, says which limit that was, so that the size is
 * skipped with a reason instead of failing the run.
 *
 * A queue has no end of file: a peer that died leaves the other side
 * blocked. The harness's SIGCHLD and alarm cut a blocked call short (it
 * installs them without SA_RESTART), but one that came just before we
 * blocked would be missed; so each wait is also bounded (MQ_WAIT_NS), and
 * BENCH_SPIN looks at the stop flags between waits as it does for the
 * busy-polled transports.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"

/*
 * Queue depth: 10 is what Linux lets every user have (the default
 * fs.mqueue.msg_max), so root and other users measure the same queue. It
 * is less if msg_max was lowered, and for large messages no more than
 * MQ_INFLIGHT_BYTES queued, the bytes cell_geom() gives the rings.
 * Latency keeps one message in flight and never sees the depth; in a
 * throughput run of small messages the producer blocks once 10 are queued
 * where a pipe or socket buffers hundreds: that is how a queue is used.
 */
#define MQ_DEPTH 10
#define MQ_INFLIGHT_BYTES (8 * MiB)
/*
 * What RLIMIT_MSGQUEUE counts per message besides its bytes: the kernel's
 * bookkeeping is about 100 bytes on 64-bit (mq_treesize in ipc/mqueue.c).
 */
#define MQ_MSG_OVERHEAD 128
/* A latency cell holds two queues at once, one each way. */
#define MQ_QUEUES_PER_CELL 2
/* The longest a send or receive blocks before the stop flags are seen. */
#define MQ_WAIT_NS 100000000L

struct mqlink {
	mqd_t q;		/* shared with the peer through fork() */
};

/* A value of /proc/sys/fs/mqueue, or -1 if it cannot be read. */
static long mqlink_sysctl(const char *name)
{
	char path[64];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/sys/fs/mqueue/%s", name);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static long mqlink_depth(size_t size)
{
	long depth = MQ_DEPTH, msg_max = mqlink_sysctl("msg_max");

	if (msg_max > 0 && msg_max < depth)
		depth = msg_max;
	if ((uint64_t)depth * size > MQ_INFLIGHT_BYTES)
		depth = (long)(MQ_INFLIGHT_BYTES / size);
	return depth > 0 ? depth : 1;
}

/*
 * RLIMIT_MSGQUEUE is 800 KiB by default: less than one 1 MiB message. Any
 * process may raise its soft limit up to the hard one, and one with
 * CAP_SYS_RESOURCE the hard one too, so ask for what the queues need. If
 * that is refused, mq_open() fails with EMFILE and says so.
 */
static void mqlink_raise_rlimit(size_t size, long depth)
{
	rlim_t need = (rlim_t)MQ_QUEUES_PER_CELL * (rlim_t)depth *
		      (size + MQ_MSG_OVERHEAD);
	struct rlimit rl;

	if (getrlimit(RLIMIT_MSGQUEUE, &rl) < 0 ||
	    rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = need;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		rl.rlim_max = need;
	(void)setrlimit(RLIMIT_MSGQUEUE, &rl);
}

/*
 * mqlink_new_queue() - a new queue of @depth messages of @size bytes in
 * @q, read-write. Its name is unlinked at once: the peer shares the open
 * queue through fork(), and a run that crashes leaves nothing behind.
 * Return: 0; -errno, not recorded (a refusal may only mean "skip").
 */
static int mqlink_new_queue(size_t size, long depth, mqd_t *q)
{
	static unsigned int serial;
	struct mq_attr attr;
	char name[64];
	int err;

	memset(&attr, 0, sizeof(attr));
	attr.mq_maxmsg = depth;
	attr.mq_msgsize = (long)size;
	snprintf(name, sizeof(name), "/zbus-bench-%ld-%u", (long)getpid(),
		 serial++);
	/* glibc adds O_CLOEXEC itself. */
	*q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
	if (*q == (mqd_t)-1)
		return -errno;
	if (mq_unlink(name) < 0) {
		err = -errno;
		mq_close(*q);
		*q = (mqd_t)-1;
		return err;
	}
	return 0;
}

/* Why the kernel refused a queue of @depth x @size bytes with @err. */
static const char *mqlink_why(int err, size_t size, long depth, char *why,
			      size_t len)
{
	long msgsize_max = mqlink_sysctl("msgsize_max");
	char have[32], limit[32];
	struct rlimit rl;

	bench_size_label(have, sizeof(have), size);
	if (err == -EINVAL && msgsize_max > 0 && size > (size_t)msgsize_max) {
		bench_size_label(limit, sizeof(limit), (size_t)msgsize_max);
		snprintf(why, len, "POSIX mq: message size %s over the "
			 "kernel's limit of %s (fs.mqueue.msgsize_max)",
			 have, limit);
	} else if (err == -EMFILE &&
		   getrlimit(RLIMIT_MSGQUEUE, &rl) == 0 &&
		   rl.rlim_cur != RLIM_INFINITY) {
		bench_size_label(limit, sizeof(limit), (size_t)rl.rlim_cur);
		snprintf(why, len, "POSIX mq: %d queues of %ld x %s over this "
			 "user's limit of %s (RLIMIT_MSGQUEUE, ulimit -q)",
			 MQ_QUEUES_PER_CELL, depth, have, limit);
	} else {
		snprintf(why, len, "POSIX mq: mq_open(%ld x %s): %s", depth,
			 have, strerror(-err));
	}
	return why;
}

/* The queues a cell will hold, made and dropped: NULL if they fit. */
static const char *mqlink_available(size_t size, char *why, size_t len)
{
	long depth = mqlink_depth(size);
	mqd_t q[MQ_QUEUES_PER_CELL];
	int n, err = 0;

	/* zbus-bench never asks for 0 bytes, but a queue could not carry it. */
	if (size == 0)
		return "POSIX mq: a message has at least 1 byte";
	mqlink_raise_rlimit(size, depth);
	for (n = 0; n < MQ_QUEUES_PER_CELL; n++) {
		err = mqlink_new_queue(size, depth, &q[n]);
		if (err < 0)
			break;
	}
	while (n > 0)
		mq_close(q[--n]);
	return err < 0 ? mqlink_why(err, size, depth, why, len) : NULL;
}

static int mqlink_create(struct link *l)
{
	long depth = mqlink_depth(l->size);
	struct mqlink *m;
	int ret;

	m = malloc(sizeof(*m));
	if (!m)
		return bench_fail(-ENOMEM, "malloc");
	m->q = (mqd_t)-1;
	l->priv = m;
	mqlink_raise_rlimit(l->size, depth);
	ret = mqlink_new_queue(l->size, depth, &m->q);
	if (ret < 0)
		return bench_fail(ret, "mq_open(%ld x %zu bytes)", depth,
				  l->size);
	return 0;
}

/* One queue descriptor is both ends: there is no unused one to close. */
static int mqlink_open(struct link *l, enum role role)
{
	(void)l;
	(void)role;
	return 0;
}

static void mqlink_close(struct link *l)
{
	struct mqlink *m = l->priv;

	if (!m)
		return;
	if (m->q != (mqd_t)-1)
		mq_close(m->q);
	free(m);
	l->priv = NULL;
}

/* The deadline of one wait: mq_timed*() take CLOCK_REALTIME. */
static struct timespec mqlink_deadline(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_nsec += MQ_WAIT_NS;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

/* One bounded wait; -EAGAIN if it ran out or a signal cut it short. */
static int mqlink_try_send(const struct mqlink *m, const void *buf,
			   size_t size)
{
	struct timespec until = mqlink_deadline();

	if (mq_timedsend(m->q, buf, size, 0, &until) == 0)
		return 0;
	return errno == ETIMEDOUT || errno == EINTR ? -EAGAIN : -errno;
}

/* As mqlink_try_send(); the size of the message received. */
static int mqlink_try_recv(const struct mqlink *m, void *buf, size_t size)
{
	struct timespec until = mqlink_deadline();
	ssize_t n;

	n = mq_timedreceive(m->q, buf, size, NULL, &until);
	if (n >= 0)
		return (int)n;
	return errno == ETIMEDOUT || errno == EINTR ? -EAGAIN : -errno;
}

static int mqlink_send(struct link *l, uint64_t seq)
{
	int ret;

	bench_payload_fill(l->buf, l->size, seq);
	BENCH_SPIN(ret, mqlink_try_send(l->priv, l->buf, l->size),
		   "mq_send");
	if (ret < 0)
		return bench_fail(ret, "mq_send(%zu)", l->size);
	return 0;
}

static int mqlink_recv(struct link *l, uint64_t seq)
{
	int ret;

	/* The queue's message size is l->size: the buffer is just enough. */
	BENCH_SPIN(ret, mqlink_try_recv(l->priv, l->buf, l->size),
		   "mq_receive");
	if (ret < 0)
		return bench_fail(ret, "mq_receive");
	if ((size_t)ret != l->size)
		return bench_fail(-EBADMSG, "mq_receive returned %d bytes, "
				  "expected %zu", ret, l->size);
	return bench_payload_check(l->buf, l->size, seq);
}

const struct transport tp_mq = {
	.name = "mq", .copies = true,
	.create = mqlink_create, .open = mqlink_open,
	.send = mqlink_send, .recv = mqlink_recv, .close = mqlink_close,
	.available = mqlink_available,
};
