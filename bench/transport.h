/* SPDX-License-Identifier: MIT */
/*
 * transport.h - what zbus-bench asks of a transport: one direction of one
 * link between two processes, one message at a time.
 *
 * A transport lives in a file of its own (tp_*.c) and is listed in
 * transport.c's table (tp_all[]). State of its own goes behind struct
 * link.priv (allocated in @create or @open, freed in @close), unless it is
 * one of the core ones whose state struct link holds itself (zbus,
 * shm-ring); one that is a pair of descriptors uses struct flink and the
 * fd_* ops below (tp_fd.c).
 */
#ifndef ZBUS_BENCH_TRANSPORT_H
#define ZBUS_BENCH_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <zbus/zbus.h>

#include "bench_util.h"

#define RECV_BATCH 64		/* messages per zbus_sub_recv_batch() */


enum role { ROLE_TX, ROLE_RX };

/*
 * struct geom - how much a link may hold in flight
 * @ring: zbus ring_capacity
 * @arena: zbus arena_bytes (0: library default)
 * @slots: shm-ring slots, a power of two
 */
struct geom {
	uint32_t ring;
	uint64_t arena;
	uint32_t slots;
};

/*
 * The bare ring: each index sits on its own pair of cache lines, named
 * after its only writer, so the two sides never share (or prefetch) a line.
 * Slots of the message size rounded to a cache line follow the struct.
 */
struct shm_ring {
	_Alignas(2 * CACHE_LINE) _Atomic uint64_t prod_tail; /* next to fill */
	_Alignas(2 * CACHE_LINE) _Atomic uint64_t cons_head; /* next to read */
};

struct zlink {
	struct zbus_channel *ch;
	pid_t owner;			/* process that created @ch */
	struct zbus_pub *pub;
	struct zbus_sub *sub;
	unsigned int idx;		/* next of msgs[] to hand out */
	unsigned int cnt;		/* valid entries of msgs[] */
	struct zbus_msg msgs[RECV_BATCH];
};

struct rlink {
	struct shm_ring *ring;
	size_t map_bytes;
	size_t slot_bytes;
	uint64_t mask;
	uint64_t pos;			/* this side's own index */
	uint64_t peer;			/* peer's index, last read */
};

struct flink {
	int fd[2];			/* [0] read end, [1] write end */
};

struct transport;

struct link {
	const struct transport *tp;
	size_t size;
	struct geom geom;
	unsigned char *buf;		/* copying transports: own buffer */
	bool shared_tx;			/* several senders share this link */
	union {
		struct zlink z;
		struct rlink r;
		struct flink f;
		void *priv;		/* a transport of its own file */
	};
};

/*
 * struct transport - what a transport does; @create runs before fork() in
 * the parent, @open after it in each process for the role it plays there,
 * @close in each process for whatever it holds (also after a failed
 * @create, and in a child for what the parent created before fork()).
 * @send writes message @seq's payload in full (bench_payload_fill()) and
 * sends it; @recv receives message @seq and reads it in full
 * (bench_payload_check()). @copies says the transport needs a private
 * buffer (struct link.buf) to write into or read from. @available, if
 * set, says why the transport cannot run here at @size (NULL: it can),
 * in @why (@len bytes) or a static string.
 */
struct transport {
	const char *name;
	bool copies;
	uint32_t pub_flags;		/* zbus: struct zbus_pub_opts.flags */
	bool blocking;			/* zbus: wait in the library */
	int (*create)(struct link *l);
	int (*open)(struct link *l, enum role role);
	int (*send)(struct link *l, uint64_t seq);
	int (*recv)(struct link *l, uint64_t seq);
	void (*close)(struct link *l);
	const char *(*available)(size_t size, char *why, size_t len);
	/* If set, one link serves several processes (fan-out, fan-in): it
	 * receives the next message of any sender and returns its stamp
	 * (what the sender gave @send as seq), its payload checked. */
	int (*recv_any)(struct link *l, uint64_t *stamp);
};

/*
 * The ops of the transports that move bytes through a pair of descriptors
 * (struct flink: unix, pipe, tcp): @open closes the end its role does not
 * use, so that a dead peer reads as EOF or EPIPE instead of a hang; @send
 * and @recv write and read the whole payload through struct link.buf.
 */
int fd_open(struct link *l, enum role role);
int fd_send(struct link *l, uint64_t seq);
int fd_recv(struct link *l, uint64_t seq);
void fd_close(struct link *l);

/*
 * The transports, each in a file of its own; tp_all[] lists them, in the
 * order of the output.
 */
extern const struct transport tp_zbus;		/* tp_zbus.c */
extern const struct transport tp_zbus_mp;
extern const struct transport tp_zbus_copy;
extern const struct transport tp_zbus_block;
extern const struct transport tp_shm_ring;	/* tp_ring.c */
extern const struct transport tp_unix;		/* tp_fd.c */
extern const struct transport tp_pipe;
extern const struct transport tp_tcp;
extern const struct transport tp_mq;
extern const struct transport tp_zmq;

/* tp_iceoryx.c: Eclipse iceoryx 2.0 (skipped, saying why, if not built in) */
extern const struct transport tp_iceoryx;

/* transport.c: every transport, in the order of the output (@tp_count). */
extern const struct transport *const tp_all[];
extern const size_t tp_count;

/*
 * link_open() - open @l (created before fork()) for @role in this process,
 * with a buffer of its own first if the transport copies; link_close()
 * closes it and frees that buffer.
 */
int link_open(struct link *l, enum role role);
void link_close(struct link *l);

/*
 * bench_payload_check() - read every byte of message @seq's payload (as a
 * consumer would) and check its stamps. Return: 0; -EBADMSG (with
 * bench_fail()'s message).
 */
int bench_payload_check(const void *src, size_t size, uint64_t seq);

#endif /* ZBUS_BENCH_TRANSPORT_H */

