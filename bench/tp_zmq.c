/* SPDX-License-Identifier: MIT */
/*
 * tp_zmq.c - the zmq transport: ZeroMQ PAIR sockets over ipc://, one
 * direction per link, blocking zmq_send()/zmq_recv() of the whole payload.
 *
 * Built with ZeroMQ only when CMake finds libzmq (ZBUS_BENCH_ZMQ); without
 * it the transport still exists and says why it cannot run, so the output
 * has a skipped row rather than no row.
 *
 * How a link lives:
 *  - @create (parent, before fork()) only picks the endpoint: a private
 *    directory from mkdtemp() with one socket name in it. A ZeroMQ context
 *    has threads and must not cross fork(), so none exists yet.
 *  - @open (each process, after fork()) makes a context and a PAIR socket
 *    of its own: the receiver binds, the sender connects.
 *  - The sender's open returns once the connection is up: with
 *    ZMQ_IMMEDIATE the socket gets its pipe only when the handshake is
 *    done, so polling it for POLLOUT waits for exactly that, and no
 *    message can be queued for a peer that is not there yet. The
 *    receiver's open cannot wait as well: the latency scenario opens the
 *    receiving link first in both processes, so each would wait for a
 *    sender the other has not opened yet. It does not need to: its recv
 *    waits for the first message, and once the sender is connected PAIR
 *    delivers every message in order, the first one included.
 *  - @close frees what this process made. The creator also removes the
 *    socket file and the directory: it closes last, after the child was
 *    reaped, and a killed binder cannot remove its file itself.
 *
 * A dead or stuck peer: every blocking call gives up after
 * ZMQLINK_TIMEOUT_MS (ZMQ_SNDTIMEO, ZMQ_RCVTIMEO), before the harness's
 * alarms would; the alarm itself interrupts them too (EINTR).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "transport.h"

#ifdef ZBUS_BENCH_ZMQ

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

/* Longer than any message takes, shorter than the harness's alarm. */
#define ZMQLINK_TIMEOUT_MS 5000
/* A sender that connects before the receiver has bound retries this
 * often; libzmq's 100 ms would add up over the sessions of a run. */
#define ZMQLINK_RECONNECT_MS 10

/*
 * struct zmqlink - one link's ZeroMQ state, behind struct link.priv
 * @creator: the process that made @dir; only it removes it
 * @dir: private directory (mkdtemp), so no other program shares our name
 * @endpoint: "ipc://" @dir "/link", short enough for sun_path
 * @ctx: this process's context, made in @open (NULL: never opened here)
 * @sock: this process's PAIR socket
 * @failed: a send or recv failed: drop what is still queued at close
 */
struct zmqlink {
	pid_t creator;
	char dir[64];
	char endpoint[96];
	void *ctx;
	void *sock;
	bool failed;
};

static const char *zmqlink_path(const struct zmqlink *z)
{
	return z->endpoint + strlen("ipc://");
}

/*
 * zmqlink_fail() - record the failure of the zmq call just made (errno).
 * libzmq's own codes (ETERM, EFSM...) are unknown to strerror(), so they
 * are spelled by zmq_strerror() instead.
 */
__attribute__((format(printf, 1, 2)))
static int zmqlink_fail(const char *fmt, ...)
{
	char what[256];
	int err = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (err >= ZMQ_HAUSNUMERO)
		return bench_fail(-EPROTO, "%s: %s", what, zmq_strerror(err));
	return bench_fail(-err, "%s", what);
}

/*
 * zmqlink_retry() - after a blocking zmq call failed with @err: 0 to call
 * it again, else the error to return. EAGAIN means its timeout ran out.
 */
static int zmqlink_retry(struct zmqlink *z, int err, const char *what)
{
	/*
	 * SIGCHLD interrupts us when the child exits, which it does right
	 * after its last send: that message may still be on its way, so
	 * wait again; our own timeout bounds the wait if nothing comes.
	 */
	if (err == EINTR && !bench_timed_out)
		return 0;
	z->failed = true;
	/* Gave up on a peer known to be gone: its own reason is reported. */
	if (err == EINTR || (err == EAGAIN && bench_child_exited))
		return bench_stop_error(what);
	if (err == EAGAIN)
		return bench_fail(-ETIMEDOUT, "%s: no progress in %d ms, peer "
				  "stuck", what, ZMQLINK_TIMEOUT_MS);
	errno = err;
	return zmqlink_fail("%s", what);
}

static int zmqlink_create(struct link *l)
{
	struct zmqlink *z;

	z = calloc(1, sizeof(*z));
	if (!z)
		return bench_fail(-ENOMEM, "calloc");
	l->priv = z;
	z->creator = getpid();
	/* /tmp rather than $TMPDIR: the path must fit in sun_path. */
	snprintf(z->dir, sizeof(z->dir), "/tmp/zbus-bench-zmq.XXXXXX");
	if (!mkdtemp(z->dir)) {
		z->dir[0] = '\0';
		return bench_fail(-errno, "mkdtemp");
	}
	snprintf(z->endpoint, sizeof(z->endpoint), "ipc://%s/link", z->dir);
	return 0;
}

static int zmqlink_setopt(void *sock, int opt, int value, const char *name)
{
	if (zmq_setsockopt(sock, opt, &value, sizeof(value)) < 0)
		return zmqlink_fail("zmq_setsockopt(%s, %d)", name, value);
	return 0;
}

/* The sender: poll for room, which ZMQ_IMMEDIATE gives only once connected. */
static int zmqlink_wait_connected(struct zmqlink *z)
{
	zmq_pollitem_t item = { .socket = z->sock, .events = ZMQ_POLLOUT };
	int n, ret;

	for (;;) {
		n = zmq_poll(&item, 1, ZMQLINK_TIMEOUT_MS);
		if (n > 0)
			return 0;
		ret = zmqlink_retry(z, n == 0 ? EAGAIN : errno,
				    "zmq_poll(connected)");
		if (ret < 0)
			return ret;
	}
}

static int zmqlink_open(struct link *l, enum role role)
{
	struct zmqlink *z = l->priv;
	/*
	 * Let the sender run ahead as far as the rings do: the two queues
	 * (sender's and receiver's) together hold about geom.slots messages.
	 * The default of 1000 each would hold 2 GB of 1 MiB messages.
	 */
	int hwm = l->geom.slots / 2 > 0 ? (int)(l->geom.slots / 2) : 1;
	int ret;

	z->ctx = zmq_ctx_new();
	if (!z->ctx)
		return zmqlink_fail("zmq_ctx_new");
	z->sock = zmq_socket(z->ctx, ZMQ_PAIR);
	if (!z->sock)
		return zmqlink_fail("zmq_socket(ZMQ_PAIR)");

	if (role == ROLE_RX) {
		ret = zmqlink_setopt(z->sock, ZMQ_RCVHWM, hwm, "ZMQ_RCVHWM");
		if (!ret)
			ret = zmqlink_setopt(z->sock, ZMQ_RCVTIMEO,
					     ZMQLINK_TIMEOUT_MS,
					     "ZMQ_RCVTIMEO");
		if (!ret && zmq_bind(z->sock, z->endpoint) < 0)
			ret = zmqlink_fail("zmq_bind(%s)", z->endpoint);
		return ret;
	}

	ret = zmqlink_setopt(z->sock, ZMQ_SNDHWM, hwm, "ZMQ_SNDHWM");
	if (!ret)
		ret = zmqlink_setopt(z->sock, ZMQ_SNDTIMEO, ZMQLINK_TIMEOUT_MS,
				     "ZMQ_SNDTIMEO");
	if (!ret)
		ret = zmqlink_setopt(z->sock, ZMQ_IMMEDIATE, 1,
				     "ZMQ_IMMEDIATE");
	if (!ret)
		ret = zmqlink_setopt(z->sock, ZMQ_RECONNECT_IVL,
				     ZMQLINK_RECONNECT_MS, "ZMQ_RECONNECT_IVL");
	if (!ret && zmq_connect(z->sock, z->endpoint) < 0)
		ret = zmqlink_fail("zmq_connect(%s)", z->endpoint);
	if (!ret)
		ret = zmqlink_wait_connected(z);
	return ret;
}

static void zmqlink_close(struct link *l)
{
	struct zmqlink *z = l->priv;
	/*
	 * zmq_send() only queues: what a process sends last (the responder's
	 * last echo) may still be queued when it closes, and linger 0 drops
	 * it (seen: a 16 MiB echo cut short). So linger until the queue has
	 * gone, bounded; after a failure nobody waits for it. A peer that
	 * went away costs no wait: ZMQ_IMMEDIATE drops the queue of a lost
	 * connection.
	 */
	int linger;

	if (!z)
		return;
	if (z->sock) {
		linger = z->failed ? 0 : ZMQLINK_TIMEOUT_MS;
		zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof(linger));
		zmq_close(z->sock);
	}
	/* An alarm or SIGCHLD may interrupt the wait; the linger bounds it. */
	if (z->ctx)
		while (zmq_ctx_term(z->ctx) < 0 && errno == EINTR)
			;
	if (getpid() == z->creator && z->dir[0]) {
		/* The binder's zmq_close() removed the file unless killed. */
		unlink(zmqlink_path(z));
		rmdir(z->dir);
	}
	free(z);
	l->priv = NULL;
}

static int zmqlink_send(struct link *l, uint64_t seq)
{
	struct zmqlink *z = l->priv;
	int ret;

	bench_payload_fill(l->buf, l->size, seq);
	while (zmq_send(z->sock, l->buf, l->size, 0) < 0) {
		ret = zmqlink_retry(z, errno, "zmq_send");
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int zmqlink_recv(struct link *l, uint64_t seq)
{
	struct zmqlink *z = l->priv;
	int n, ret;

	/* A longer message is cut to l->size; n still says its length. */
	while ((n = zmq_recv(z->sock, l->buf, l->size, 0)) < 0) {
		ret = zmqlink_retry(z, errno, "zmq_recv");
		if (ret < 0)
			return ret;
	}
	if ((size_t)n != l->size)
		return bench_fail(-EBADMSG, "zmq message %" PRIu64 " has %d "
				  "bytes, expected %zu", seq, n, l->size);
	return bench_payload_check(l->buf, l->size, seq);
}

#endif /* ZBUS_BENCH_ZMQ */

static const char *zmqlink_available(size_t size, char *why, size_t len)
{
#ifdef ZBUS_BENCH_ZMQ
	return NULL;
#else
	return "ZeroMQ not built in (install libzmq3-dev and rebuild)";
#endif
}

/* Without ZeroMQ only .available is ever called: it says no. */
const struct transport tp_zmq = {
	.name = "zmq", .copies = true,
#ifdef ZBUS_BENCH_ZMQ
	.create = zmqlink_create, .open = zmqlink_open,
	.send = zmqlink_send, .recv = zmqlink_recv, .close = zmqlink_close,
#endif
	.available = zmqlink_available,
};
