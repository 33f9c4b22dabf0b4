/* SPDX-License-Identifier: MIT */
/*
 * zbus.h - libzbus, a zero-copy shared-memory message bus.
 *
 * A channel is two sealed memfds: the data (a ring of message descriptors
 * and a payload arena, written by producers only) and the state (the
 * subscriptions). Producers loan a buffer inside the arena, write the payload
 * once and publish it; every subscriber reads it in place (broadcast).
 *
 * Conventions:
 *  - Functions return 0 or a non-negative count on success and -errno on
 *    failure; errno itself is never relied on. -EAGAIN means "full" or
 *    "empty" and is expected, not a failure. A corrupt segment or message
 *    gives -EBADMSG, an incompatible layout -EPROTO.
 *  - Constructors fill an out-pointer; destructors accept NULL and return
 *    NULL so that `x = zbus_x_free(x);` frees and clears.
 *  - Option structs are zero-initialised by the caller; reserved fields must
 *    stay zero (-EINVAL otherwise). A NULL option pointer means defaults.
 *  - Timeouts are in milliseconds: 0 never waits, -1 waits without limit
 *    (a blocked call can still be woken by freeing nothing: pick a timeout
 *    in programs that must shut down promptly).
 *  - No function prints, exits or raises signals. zbus_strerror() turns a
 *    return code into a readable message.
 */
#ifndef ZBUS_H
#define ZBUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ZBUS_BUILDING_LIBRARY)
#define ZBUS_EXPORT __attribute__((visibility("default")))
#else
#define ZBUS_EXPORT
#endif

#define ZBUS_VERSION_MAJOR 0
#define ZBUS_VERSION_MINOR 1

/* Delivery policy of one subscription. */
#define ZBUS_RELIABLE 0 /* producers never overwrite what it holds */
#define ZBUS_LOSSY 1    /* producers never wait for it; it may miss */

/* Flags of a received message (struct zbus_msg.flags). */
#define ZBUS_MSG_LOSSY 0x1u /* payload may be overwritten: validate it */
#define ZBUS_MSG_REF 0x2u   /* published by reference: zbus_sub_pull() it */

/* The largest message by reference (zbus_pub_send_ref()). */
#define ZBUS_REF_MAX (SIZE_MAX >> 1)

struct zbus_channel;
struct zbus_pub;
struct zbus_sub;
struct zbus_conn;

/**
 * struct zbus_channel_opts - geometry of a new channel
 * @max_msg_size: largest payload a producer may loan, in bytes
 *                (0: 64 KiB; at most 1 GiB)
 * @ring_capacity: message descriptors in the ring, rounded up to a power of
 *                 two (0: 1024; 2..2^24). Bounds the messages in flight.
 * @max_subscribers: subscriptions the channel can hold at once (0: 64; ≤256)
 * @max_publishers: publishers the channel can hold at once (0: 64; ≤1024)
 * @arena_bytes: payload arena, rounded up to a power of two and to at least
 *               twice the aligned max_msg_size (0: max(4 × max_msg_size,
 *               ring_capacity × 256)). Bounds the bytes in flight.
 * @flags: ZBUS_CHANNEL_SEAL_WRITERS: the creating process is the only one
 *         that can ever publish; every other process maps the messages
 *         read-only, whatever fd it holds (F_SEAL_FUTURE_WRITE). Needed to
 *         hand the channel to a broker with zbus_conn_offer().
 * @reserved0, @reserved: must be zero
 */
struct zbus_channel_opts {
	uint32_t max_msg_size;
	uint32_t ring_capacity;
	uint32_t max_subscribers;
	uint32_t max_publishers;
	uint64_t arena_bytes;
	uint32_t flags;
	uint32_t reserved0;
	uint64_t reserved[3];
};

/* Channel flags (struct zbus_channel_opts.flags, zbus_channel_info.flags). */
#define ZBUS_CHANNEL_SEAL_WRITERS 0x1u /* sealed: only its creator writes */
#define ZBUS_CHANNEL_READ_ONLY 0x2u    /* info only: mapped read-only here,
					* so no publisher can be made */

/**
 * struct zbus_channel_info - geometry of an attached channel
 */
struct zbus_channel_info {
	uint32_t max_msg_size;
	uint32_t ring_capacity;
	uint32_t max_subscribers;
	uint32_t version_major;
	uint32_t version_minor;
	uint32_t max_publishers;
	uint64_t arena_bytes;
	uint64_t segment_bytes;
	uint64_t state_bytes;  /* the state memfd (subscriber slots) */
	uint32_t flags;        /* ZBUS_CHANNEL_SEAL_WRITERS, _READ_ONLY */
	uint32_t reserved;
};

/**
 * zbus_channel_create() - create a channel in two new sealed memfds
 * @name: label shown in /proc/PID/fd and by tools (any string, may be NULL)
 * @opts: geometry, or NULL for defaults
 * @out: receives the channel
 *
 * A channel is two memfds: the data (descriptors and payloads, written by
 * publishers only) and the state (subscriptions, written by subscribers).
 * Both are sealed against growing and shrinking before this returns, so
 * nobody who later maps them can make a reader fault.
 *
 * Return: 0; -EINVAL for bad options; -ENOMEM; -EMFILE/-ENFILE; other
 * -errno from memfd_create(), ftruncate(), fcntl() or mmap().
 * Thread-safety: any thread.
 */
ZBUS_EXPORT int zbus_channel_create(const char *name,
				    const struct zbus_channel_opts *opts,
				    struct zbus_channel **out);

/**
 * zbus_channel_attach_dup() - map an existing channel from its two memfds
 * @data_fd: the channel's data memfd (zbus_channel_fd() of its creator,
 *           received by fork, SCM_RIGHTS or from a broker)
 * @state_fd: its state memfd (zbus_channel_state_fd())
 * @out: receives the channel
 *
 * Both fds are duplicated; the caller keeps its own. Before mapping,
 * checks that each fd is a memfd sealed with grow, shrink and seal, that
 * its size matches its header, the headers themselves (magic, version,
 * features, offsets and sizes), and that the two belong to one channel.
 * The data is mapped read-only when @data_fd was opened read-only or the
 * channel is sealed against writers (zbus_channel_info() then reports
 * ZBUS_CHANNEL_READ_ONLY): such a channel can be subscribed, not published.
 *
 * Return: 0; -EBADF; -EINVAL if an fd is not a memfd; -EPERM if one lacks
 * the grow, shrink or seal seals; -EACCES if the state memfd is not
 * writable; -EBADMSG for a corrupt header, a size that does not match it,
 * or memfds of two different channels; -EPROTO for an incompatible version
 * or unknown feature; -ENOMEM; other -errno from mmap().
 * Thread-safety: any thread.
 */
ZBUS_EXPORT int zbus_channel_attach_dup(int data_fd, int state_fd,
					struct zbus_channel **out);

/**
 * zbus_channel_fd() - the channel's data memfd, to pass to another process
 * Return: the fd, still owned by @ch (do not close it).
 */
ZBUS_EXPORT int zbus_channel_fd(const struct zbus_channel *ch);

/**
 * zbus_channel_state_fd() - the channel's state memfd, to pass along with
 * zbus_channel_fd()
 * Return: the fd, still owned by @ch (do not close it).
 */
ZBUS_EXPORT int zbus_channel_state_fd(const struct zbus_channel *ch);

/**
 * zbus_channel_info() - geometry of @ch
 * Return: 0.
 */
ZBUS_EXPORT int zbus_channel_info(const struct zbus_channel *ch,
				  struct zbus_channel_info *info);

/**
 * zbus_channel_free() - unmap @ch and close its fds
 *
 * Every publisher and subscriber made from @ch must be freed first.
 * Return: NULL.
 */
ZBUS_EXPORT struct zbus_channel *zbus_channel_free(struct zbus_channel *ch);

/* Publisher flags (struct zbus_pub_opts.flags). */
#define ZBUS_PUB_EXCLUSIVE 0x1u /* the channel's only publisher: faster */
/* zbus_pub_send() of more than max_msg_size bytes publishes by reference */
#define ZBUS_PUB_LARGE_BY_REF 0x2u

/**
 * struct zbus_pub_opts - options of a publisher
 * @timeout_ms: how long loan/send wait for a reliable subscriber to free
 *              room: 0 returns -EAGAIN at once, -1 waits without limit.
 *              Note: a zero-initialised struct means "non-blocking"; NULL
 *              options mean -1.
 * @flags: ZBUS_PUB_EXCLUSIVE: this publisher is the channel's only one
 *         for as long as it lives. It then claims without atomic
 *         read-modify-write instructions (about twice the message rate for
 *         small messages); other publishers get -EBUSY meanwhile.
 *         ZBUS_PUB_LARGE_BY_REF: zbus_pub_send() of a single buffer larger
 *         than the channel's max_msg_size publishes it by reference
 *         (zbus_pub_send_ref()) and returns once zbus_pub_ref_wait() says
 *         so, within @timeout_ms; instead of -EMSGSIZE.
 * @reserved: must be zero
 */
struct zbus_pub_opts {
	int32_t timeout_ms;
	uint32_t flags;
	uint32_t reserved[6];
};

/**
 * struct zbus_loan - a buffer loaned inside the channel's arena
 * @data: where to write the payload (may be NULL when @size is 0)
 * @size: bytes loaned
 * @seq: sequence number the message will carry
 * @priv: internal, do not touch
 */
struct zbus_loan {
	void *data;
	size_t size;
	uint64_t seq;
	uint64_t priv[2];
};

/**
 * zbus_pub_new() - make a publisher on @ch
 *
 * The publisher takes one of the channel's publisher slots, where it
 * records the loans it holds: if the process dies, a broker that watches
 * it (zbus_conn_register_pub()) takes those loans back so that the stream
 * goes on; subscribers count them in zbus_sub_stats.reclaimed.
 *
 * Return: 0; -EINVAL; -ENOMEM; -EACCES when @ch is mapped read-only
 * (ZBUS_CHANNEL_READ_ONLY); -EBUSY when ZBUS_PUB_EXCLUSIVE is asked
 * while another publisher exists, or another one holds it; -ENOSPC when
 * every publisher slot is taken.
 * Thread-safety: any thread; the publisher itself is used by one thread at
 * a time.
 */
ZBUS_EXPORT int zbus_pub_new(struct zbus_channel *ch,
			     const struct zbus_pub_opts *opts,
			     struct zbus_pub **out);

/**
 * zbus_pub_free() - free a publisher. Loans it still holds are abandoned.
 * Return: NULL.
 */
ZBUS_EXPORT struct zbus_pub *zbus_pub_free(struct zbus_pub *pub);

/**
 * zbus_pub_loan() - reserve @size bytes in the arena and a sequence number
 * @size: 0..max_msg_size
 * @loan: filled on success
 *
 * Several loans may be outstanding; consumers see messages in loan order,
 * so an old loan that is neither published nor abandoned holds them back
 * until the broker takes it back (after the channel's unblock timeout,
 * see struct zbus_channel_params). The first 12 loans outstanding at once
 * are recorded for the broker to take back at once if the process dies;
 * any beyond wait for the timeout.
 *
 * Return: 0; -EMSGSIZE if @size exceeds max_msg_size; -EAGAIN when a
 * reliable subscriber holds the room and the publisher does not wait;
 * -ETIMEDOUT when it waited @timeout_ms in vain; -EBUSY when the shared
 * claim keeps changing far beyond any real contention (a peer rewriting
 * it): the call gives up instead of spinning forever.
 * Progress: lock-free against other publishers.
 */
ZBUS_EXPORT int zbus_pub_loan(struct zbus_pub *pub, size_t size,
			      struct zbus_loan *loan);

/**
 * zbus_pub_publish() - publish the first @size bytes of @loan
 * @size: ≤ loan->size (a loan may be published shorter than reserved)
 *
 * Wakes sleeping subscribers with one syscall only when one is asleep.
 * Return: 0; -EINVAL for a bad loan or size; -ECANCELED when the loan was
 * taken back before this call (held past the channel's unblock timeout, or
 * overtaken a full ring later on a channel without reliable subscribers):
 * the message is lost and subscribers count it. A publish racing the
 * broker's take-back of that very loan may still reach the subscribers
 * that had not yet skipped it. Lock-free (one CAS; an exclusive
 * publisher: wait-free, plain stores).
 */
ZBUS_EXPORT int zbus_pub_publish(struct zbus_pub *pub, struct zbus_loan *loan,
				 size_t size);

/**
 * zbus_pub_abandon() - give a loan back unpublished; subscribers skip it
 * Return: 0; -EINVAL for a bad loan; -ECANCELED as zbus_pub_publish().
 * Lock-free.
 */
ZBUS_EXPORT int zbus_pub_abandon(struct zbus_pub *pub, struct zbus_loan *loan);

/**
 * zbus_pub_send() - copy @size bytes from @data into a new message
 * Return: as zbus_pub_loan().
 */
ZBUS_EXPORT int zbus_pub_send(struct zbus_pub *pub, const void *data,
			      size_t size);

/**
 * zbus_pub_sendv() - gather @iovcnt buffers into one message
 * Return: as zbus_pub_loan(); -EINVAL for a bad vector (NULL base with a
 * non-zero length).
 */
ZBUS_EXPORT int zbus_pub_sendv(struct zbus_pub *pub, const struct iovec *iov,
			       int iovcnt);

/**
 * zbus_pub_send_ref() - publish @size bytes at @data by reference
 * @data: in this process's own memory (any mapping, any size up to
 *        ZBUS_REF_MAX: it need not fit the channel's arena)
 * @seq: if not NULL, receives the message's sequence number
 *
 * The payload is not copied: the message names the range, and each
 * subscriber pulls it into its own buffer with process_vm_readv() (one
 * kernel copy; zbus_sub_pull()). So the buffer must stay mapped and
 * unchanged until zbus_pub_ref_wait() for @seq returns 0: every reliable
 * subscriber is done with it. A lossy subscriber that pulls it later, or
 * anyone after zbus_pub_ref_revoke() or the publisher's end, gets -ESTALE
 * for that message, never a buffer half rewritten.
 *
 * A subscriber can pull only from a process it may ptrace (the same user,
 * or it is root; see the README): the kernel says who.
 *
 * Return: 0; -EINVAL (NULL @data with a non-zero @size, a range that wraps
 * the address space, @size above ZBUS_REF_MAX); otherwise as
 * zbus_pub_loan() for the 32-byte record the message carries.
 * Thread-safety: as the other publisher calls.
 */
ZBUS_EXPORT int zbus_pub_send_ref(struct zbus_pub *pub, const void *data,
				  size_t size, uint64_t *seq);

/**
 * zbus_pub_ref_wait() - wait until every reliable subscriber is done with
 * message @seq (and so with every message before it)
 * @timeout_ms: 0 looks once, -1 waits without limit
 *
 * Done means released (zbus_sub_release()) or gone (a subscriber that
 * left, or died and was freed by the broker). On success the buffers of
 * this publisher's messages by reference up to @seq may be reused or
 * freed: a lossy subscriber that pulls one of them afterwards gets -ESTALE.
 *
 * Return: 0; -EAGAIN (@timeout_ms 0) or -ETIMEDOUT while a reliable
 * subscriber still holds it; -EINVAL.
 * Thread-safety: as the other publisher calls. Blocks on a futex.
 */
ZBUS_EXPORT int zbus_pub_ref_wait(struct zbus_pub *pub, uint64_t seq,
				  int timeout_ms);

/**
 * zbus_pub_ref_revoke() - take back the buffers of this publisher's
 * messages by reference up to @seq before everyone is done with them
 *
 * After it returns the buffers may change: whoever pulls one of those
 * messages from then on gets -ESTALE for it (the pull is checked after it
 * copies), so no subscriber ever takes a changed buffer for the message.
 * Return: 0; -EINVAL.
 */
ZBUS_EXPORT int zbus_pub_ref_revoke(struct zbus_pub *pub, uint64_t seq);

/**
 * zbus_pub_id() - this publisher's id, carried by each of its messages
 */
ZBUS_EXPORT uint32_t zbus_pub_id(const struct zbus_pub *pub);

/**
 * struct zbus_sub_opts - options of a subscription
 * @policy: ZBUS_RELIABLE or ZBUS_LOSSY
 * @spin_us: how long a blocking receive spins before it sleeps on a futex
 *           (0: 50 µs; -1: never spin, sleep at once)
 * @rx_bytes: for a subscription the broker delivers (zbus_conn_subscribe()):
 *            the bytes of its delivery ring, a message's payload plus 64
 *            each; 0: enough for two of the channel's largest messages,
 *            at least 1 MiB. Rounded up to a power of two, 64 KiB..1 GiB.
 *            Ignored by a subscription that maps the channel.
 * @reserved: must be zero
 * @conn: if not NULL, a connection to the broker the channel was opened or
 *        created through; a message by reference whose publisher this
 *        process may not read (another user) is then pulled by the broker
 *        on our behalf, when the channel's mode lets us subscribe. It must
 *        outlive the subscription.
 */
struct zbus_sub_opts {
	uint32_t policy;
	int32_t spin_us;
	uint32_t rx_bytes;
	uint32_t reserved[3];
	struct zbus_conn *conn;
};

/**
 * struct zbus_msg - a message received in place
 * @data: payload inside the shared arena, valid until zbus_sub_release();
 *        NULL for a message by reference (ZBUS_MSG_REF): pull it with
 *        zbus_sub_pull() before releasing it
 * @size: payload bytes
 * @seq: channel sequence number
 * @producer: id of the publisher
 * @flags: ZBUS_MSG_* flags
 * @missed: sequence numbers this subscriber lost right before this one:
 *          overwritten before it read them (lossy only), or loans the
 *          broker took back from a dead or stuck producer (any policy)
 * @priv: internal
 */
struct zbus_msg {
	const void *data;
	size_t size;
	uint64_t seq;
	uint32_t producer;
	uint32_t flags;
	uint64_t missed;
	uint64_t priv;
};

/**
 * struct zbus_sub_stats - counters of one subscription
 */
struct zbus_sub_stats {
	uint64_t received;  /* messages handed to the caller */
	uint64_t missed;    /* lossy: overwritten before they were read */
	uint64_t bad;       /* rejected descriptors (-EBADMSG) */
	uint64_t abandoned; /* abandoned loans skipped */
	uint64_t reclaimed; /* loans of dead or stuck producers, padded */
	uint64_t pulled;    /* messages by reference pulled in full */
	uint64_t pull_failed; /* pulls that failed (their message lost) */
	uint64_t reserved[1];
};

/**
 * zbus_sub_new() - subscribe to @ch; the subscription starts at the next
 * message published
 * Return: 0; -EINVAL; -ENOSPC if all subscriber slots are taken; -ENOMEM.
 */
ZBUS_EXPORT int zbus_sub_new(struct zbus_channel *ch,
			     const struct zbus_sub_opts *opts,
			     struct zbus_sub **out);

/**
 * zbus_sub_free() - unsubscribe; a reliable subscription stops holding
 * producers back at once. Return: NULL.
 */
ZBUS_EXPORT struct zbus_sub *zbus_sub_free(struct zbus_sub *sub);

/**
 * zbus_sub_recv_batch() - receive up to @n messages in place
 * @msgs: array of @n messages, filled in sequence order
 * @timeout_ms: 0 returns -EAGAIN when empty; >0 or -1 waits (spin, then
 *              futex sleep)
 *
 * The payloads stay valid (reliable) until zbus_sub_release(). A lossy
 * subscriber's payloads may be overwritten by then: check them with
 * zbus_sub_validate() after reading, or use zbus_sub_recv() which copies
 * and validates.
 *
 * A descriptor that fails validation is skipped and reported as -EBADMSG
 * by the call that meets it first (messages before it are returned first).
 *
 * Return: number of messages (≥1); -EAGAIN when empty and not waiting;
 * -ETIMEDOUT; -EBADMSG for one bad descriptor (the next call goes on).
 * Thread-safety: one thread at a time per subscription; wait-free when
 * not waiting.
 */
ZBUS_EXPORT int zbus_sub_recv_batch(struct zbus_sub *sub,
				    struct zbus_msg *msgs, unsigned n,
				    int timeout_ms);

/**
 * zbus_sub_validate() - for lossy subscriptions: are the payloads of all
 * messages received since the last release still intact?
 * Return: 0 if intact (always for reliable); -ESTALE if a producer may have
 * overwritten them (discard what was read from them).
 */
ZBUS_EXPORT int zbus_sub_validate(const struct zbus_sub *sub);

/**
 * zbus_sub_release() - give back every message received so far
 * Return: 0, or -ESTALE as zbus_sub_validate() for lossy subscriptions
 * (the messages are released either way).
 */
ZBUS_EXPORT int zbus_sub_release(struct zbus_sub *sub);

/**
 * zbus_sub_recv() - receive one message by copy
 * @buf: destination of up to @cap bytes
 * @info: if not NULL, the message's metadata (its @data is NULL)
 *
 * Never returns a torn payload: a lossy copy overwritten while copying is
 * counted as missed and the next message is tried.
 *
 * A message by reference is pulled into @buf (zbus_sub_pull()); if that
 * fails, its error is returned and the message is consumed: it is lost.
 *
 * Return: payload size; -EMSGSIZE if @cap is too small, or the message is
 * by reference and larger than INT_MAX (the message is consumed, info
 * filled); the errors of zbus_sub_pull() for a message by reference;
 * otherwise as zbus_sub_recv_batch().
 */
ZBUS_EXPORT int zbus_sub_recv(struct zbus_sub *sub, void *buf, size_t cap,
			      struct zbus_msg *info, int timeout_ms);

/**
 * zbus_sub_pull() - copy bytes [@offset, @offset + @len) of message by
 * reference @msg (ZBUS_MSG_REF, from zbus_sub_recv_batch()) into @buf
 *
 * One process_vm_readv() copy out of the publisher's memory, with the
 * publisher pinned by a pidfd (a reused pid is never read). Call it before
 * releasing @msg, as often as needed (in pieces, for a message larger than
 * any buffer). Nothing outside the published range is ever read, and the
 * publisher's memory is never written. What is copied is checked
 * afterwards: a publisher that revoked the buffer meanwhile (or ended)
 * makes the call fail, never succeed with part of a changed buffer.
 *
 * Return: @len; -EINVAL if @msg is not a message by reference this
 * subscription holds, or the range goes beyond @msg->size; -ESRCH when
 * the publisher is gone (it died, or left its slot); -ESTALE when it
 * revoked the buffer (zbus_pub_ref_revoke(), its zbus_pub_ref_wait()
 * returned, or it ended) before the copy was done; -EFAULT when the range
 * is not mapped in the publisher; -EPERM when this process may not read
 * the publisher's memory (another user, a non-dumpable process) and the
 * subscription has no connection to have the broker pull for it
 * (zbus_sub_opts.conn);
 * -EBADMSG when the reference is corrupt (the process behind the slot is
 * not a publisher of this channel); -ENOMEM. Through the broker also:
 * -EACCES when the channel's mode does not let this user subscribe;
 * -ESRCH when the publisher did not register (zbus_conn_register_pub());
 * -ESTALE when its own table does not vouch for the message; transport
 * errors.
 * Thread-safety: one thread at a time per subscription.
 */
ZBUS_EXPORT ssize_t zbus_sub_pull(struct zbus_sub *sub,
				  const struct zbus_msg *msg, uint64_t offset,
				  void *buf, size_t len);

/**
 * zbus_sub_fd() - a file descriptor that polls readable when messages
 * arrive, for poll/epoll/libuv loops
 *
 * The fd is an eventfd owned by @sub; read it (8 bytes) to reset it, then
 * receive with a timeout of 0 until -EAGAIN. A background thread of the
 * library watches the ring (asleep on a futex) to signal it. Blocking
 * receives must not be used on a subscription that has an fd.
 *
 * Return: the fd (≥0); -ENOMEM; -EMFILE; -EAGAIN if no thread can be made.
 */
ZBUS_EXPORT int zbus_sub_fd(struct zbus_sub *sub);

/**
 * zbus_sub_stats() - counters of @sub. Return: 0.
 */
ZBUS_EXPORT int zbus_sub_stats(const struct zbus_sub *sub,
			       struct zbus_sub_stats *stats);

/**
 * zbus_strerror() - readable text for a return code of this library
 * Return: a static string.
 */
ZBUS_EXPORT const char *zbus_strerror(int err);


/* ------------------------------------------------------------------------
 * The broker (zbusd): channels by name, permissions, fd hand-off.
 * The data path never goes through it; these calls are the control path.
 * ------------------------------------------------------------------------ */

struct zbus_conn;

/* Connection flags (struct zbus_conn_opts.flags). */
#define ZBUS_CONN_NO_AUTOSTART 0x1u /* never start a broker ourselves */
#define ZBUS_CONN_NO_RECONNECT 0x2u /* no keeper thread (see below) */

/**
 * struct zbus_conn_opts - how to reach the broker
 * @socket_path: NULL for the default: $ZBUS_SOCKET, else
 *               $XDG_RUNTIME_DIR/zbus/zbusd.sock, else /run/zbus/zbusd.sock
 * @timeout_ms: per request (0: 5000; -1: no limit)
 * @flags: ZBUS_CONN_NO_AUTOSTART. Without it, when no broker answers, the
 *         library starts one ($ZBUS_BROKER, else the installed zbusd) on
 *         the socket and connects to it; $ZBUS_NO_AUTOSTART=1 has the same
 *         effect as the flag.
 *         ZBUS_CONN_NO_RECONNECT. Without it, a keeper thread watches the
 *         connection: when the broker goes away it reconnects (starting a
 *         broker if allowed, retrying with a back-off up to 1 s), hands
 *         the new broker the channels this connection created or opened
 *         (up to 256, their memfds kept meanwhile) and registers again the
 *         subscriptions and publishers registered through it. Requests
 *         made while the broker is gone fail with -ENOTCONN. Keep the
 *         connection open for as long as you want that.
 * @reserved: must be zero
 */
struct zbus_conn_opts {
	const char *socket_path;
	int32_t timeout_ms;
	uint32_t flags;
	uint64_t reserved[4];
};

/**
 * zbus_conn_open() - connect to the broker (starting one if allowed)
 * Return: 0; -ENOENT or -ECONNREFUSED when no broker answers (and none
 * could be started); -ENAMETOOLONG for a socket path too long; -EPROTO
 * when the broker speaks another protocol version; -ETIMEDOUT; -errno.
 * Thread-safety: a connection is used by one thread at a time.
 */
ZBUS_EXPORT int zbus_conn_open(const struct zbus_conn_opts *opts,
			       struct zbus_conn **out);

/**
 * zbus_conn_free() - close the connection (and stop its keeper thread).
 * A child after fork() must neither use nor free its parent's connection:
 * open its own. Return: NULL.
 */
ZBUS_EXPORT struct zbus_conn *zbus_conn_free(struct zbus_conn *conn);

/**
 * zbus_conn_reconnects() - how many times @conn reconnected to a new broker
 * and gave it back what it held. Thread-safety: any thread.
 */
ZBUS_EXPORT uint64_t zbus_conn_reconnects(struct zbus_conn *conn);

/**
 * zbus_conn_error() - the broker's readable message for the last failed
 * request on @conn ("" if none). Valid until the next request.
 */
ZBUS_EXPORT const char *zbus_conn_error(const struct zbus_conn *conn);

/* Channel creation flags (struct zbus_channel_params.flags). */
#define ZBUS_CREATE_OPEN_EXISTING 0x1u /* an existing channel is fine */

/**
 * struct zbus_channel_params - a named channel
 * @geometry: as for zbus_channel_create()
 * @mode: permissions like a file's, for the owner, group, others: read
 *        (04) lets a principal subscribe, write (02) publish, execute
 *        (01) subscribe only through the broker, which delivers each
 *        message without handing out the channel (zbus_conn_subscribe()).
 *        0: 0600.
 * @default_policy: ZBUS_RELIABLE or ZBUS_LOSSY, for tools that subscribe
 *                  without saying
 * @flags: ZBUS_CREATE_OPEN_EXISTING
 * @unblock_timeout_ms: a loan neither published nor abandoned for this
 *                      long holds every subscriber back: the broker then
 *                      takes it back (the publisher's publish gets
 *                      -ECANCELED). 0: the broker's default (10 s unless
 *                      zbusd --unblock-timeout says otherwise).
 * @reserved: must be zero
 */
struct zbus_channel_params {
	struct zbus_channel_opts geometry;
	uint32_t mode;
	uint32_t default_policy;
	uint32_t flags;
	uint32_t unblock_timeout_ms;
	uint32_t reserved[4];
};

/* Access bits for zbus_conn_open_channel(). */
#define ZBUS_ACCESS_PUBLISH 0x1u
#define ZBUS_ACCESS_SUBSCRIBE 0x2u

/**
 * zbus_conn_create() - create a channel by name and map it
 * @name: 1..255 printable characters, no spaces
 * Return: 0; -EEXIST (without ZBUS_CREATE_OPEN_EXISTING); -EINVAL;
 * -EDQUOT when a quota is exhausted; -EACCES (opening an existing one);
 * as zbus_conn_open() for transport errors. zbus_conn_error() explains.
 */
ZBUS_EXPORT int zbus_conn_create(struct zbus_conn *conn, const char *name,
				 const struct zbus_channel_params *params,
				 struct zbus_channel **out);

/**
 * zbus_conn_open_channel() - map an existing channel by name
 * @access: ZBUS_ACCESS_PUBLISH and/or ZBUS_ACCESS_SUBSCRIBE, checked
 *          against the channel's mode for the connection's identity.
 *          Without ZBUS_ACCESS_PUBLISH the broker hands the data memfd
 *          read-only and the channel is mapped read-only
 *          (ZBUS_CHANNEL_READ_ONLY): it can be subscribed, not published.
 * Return: 0; -ENOENT; -EACCES (also: publishing on a sealed channel
 * someone offered); -EINVAL; transport errors.
 */
ZBUS_EXPORT int zbus_conn_open_channel(struct zbus_conn *conn,
				       const char *name, uint32_t access,
				       struct zbus_channel **out);

/**
 * zbus_conn_offer() - register under @name a channel this process made
 * @ch: made by zbus_channel_create() with ZBUS_CHANNEL_SEAL_WRITERS, so
 *      that this process is the only one that can ever publish on it
 * @params: mode and default_policy as for zbus_conn_create(); its geometry
 *          and unblock_timeout_ms must be 0 (NULL: mode 0600, reliable)
 *
 * The channel's memfds go to the broker, which checks them like any
 * attacher (seals, sizes, headers, that they belong together) and also
 * that the data memfd is sealed against new writers. Whoever opens the
 * channel by name then maps its messages read-only: a subscriber cannot
 * write them, whatever its uid. Opening it to publish is refused (-EACCES).
 * @ch stays this process's own; the connection keeps duplicates of its
 * memfds to hand a restarted broker. A sealed channel has one publisher
 * for life: its loans are not padded if it dies (nobody could publish
 * after them).
 *
 * Return: 0; -EINVAL (bad name or params, or @ch not sealed against
 * writers); -EEXIST; -EDQUOT; -EPERM, -EBADMSG from the broker's checks;
 * transport errors. zbus_conn_error() explains.
 */
ZBUS_EXPORT int zbus_conn_offer(struct zbus_conn *conn, const char *name,
				const struct zbus_channel_params *params,
				struct zbus_channel *ch);

/**
 * zbus_conn_delete() - remove a channel from the registry (its owner or
 * root). Processes that mapped it keep their mapping.
 * Return: 0; -ENOENT; -EPERM; transport errors.
 */
ZBUS_EXPORT int zbus_conn_delete(struct zbus_conn *conn, const char *name);

/**
 * zbus_conn_register_sub() - have the broker free @sub's slot when this
 * process dies
 * @name: the channel @sub was made on (opened through the broker)
 *
 * Without it, a killed reliable subscriber holds producers back until their
 * timeout. With it, the broker watches this process (a pidfd, not a pid)
 * and frees exactly this subscription when the process dies, waking any
 * producer that waited for room; the connection may be closed meanwhile.
 * Freeing @sub normally needs nothing more. The broker saves the watch
 * with its registry: a broker started after this one died watches this
 * process again, or, if it died meanwhile, frees @sub's slot as soon as
 * the channel is brought back.
 *
 * The broker watches the process that opened @conn, so only that process
 * may register its own @sub (not, say, a child it forked later).
 *
 * Return: 0; -ENOENT; -EACCES; -ESTALE if @sub's slot does not hold it;
 * -EPERM if another process holds @sub's slot; -EDQUOT when the user has
 * too many watched subscriptions; transport errors.
 */
ZBUS_EXPORT int zbus_conn_register_sub(struct zbus_conn *conn,
				       const char *name,
				       const struct zbus_sub *sub);

/* zbus_conn_subscribe() flags. */
#define ZBUS_SUBSCRIBE_DELIVERED 0x1u /* through the broker, even if this
				       * process could map the channel */

/**
 * zbus_conn_subscribe() - subscribe to channel @name, mapped where this
 * process may map it, delivered by the broker where it may not
 * @opts: as for zbus_sub_new() (NULL: reliable); its @conn is set to @conn
 * @flags: ZBUS_SUBSCRIBE_DELIVERED to skip the mapping
 *
 * First the fast path: the channel is opened and mapped (read-only), the
 * subscription made on it and registered (zbus_conn_register_sub()); the
 * subscription owns that channel and frees it with itself.
 *
 * When the channel's mode gives this user no segment (the execute bit, 01,
 * for its class: subscribe through the broker only) or the mapping fails
 * (a sandbox that forbids shared mappings, an address-space limit), the
 * broker subscribes in our place and copies each message, with
 * process_vm_writev(), into a delivery ring in this process's private
 * memory (@opts->rx_bytes). The subscription is then read with the same
 * calls as any other (zbus_sub_recv_batch(), zbus_sub_release(),
 * zbus_sub_recv(), zbus_sub_fd(), zbus_sub_stats()), with these
 * differences: a message's data is our own copy (zbus_sub_validate() is
 * always 0, even lossy); a message by reference arrives pulled in full
 * (zbus_sub_pull() is -EINVAL); a message that cannot be delivered is an
 * error for that message alone from the receive that meets it: -EMSGSIZE
 * when it is larger than the delivery ring, a pull's error (-ESRCH,
 * -ESTALE...) for a message by reference, -EBADMSG for a descriptor that
 * failed validation. A reliable delivered subscriber holds the producers
 * back while its ring is full, as a mapped one does. It costs a copy and a
 * wake-up through the broker per batch, and it ends with the broker: its
 * receives return -EPIPE once the broker is gone (subscribe again).
 * Freeing it ends the delivery. The broker needs what a Pull needs (see
 * the README): root or CAP_SYS_PTRACE to write another user's memory.
 *
 * Return: 0; -ENOENT; -EACCES (neither read nor execute for this user);
 * -EDQUOT (too many delivered subscriptions for this user); -ENOSPC (no
 * subscriber slot); -EINVAL; transport errors. zbus_conn_error() explains.
 */
ZBUS_EXPORT int zbus_conn_subscribe(struct zbus_conn *conn, const char *name,
				    const struct zbus_sub_opts *opts,
				    uint32_t flags, struct zbus_sub **out);

/**
 * zbus_conn_register_pub() - have the broker take back @pub's loans when
 * this process dies
 * @name: the channel @pub was made on (opened through the broker)
 *
 * Without it, a killed publisher's open loans hold every subscriber back
 * until the channel's unblock timeout. With it, the broker watches this
 * process (a pidfd) and, when it dies, pads the loans @pub recorded (its
 * first 12 outstanding), frees its publisher slot, and for an exclusive
 * publisher lets another one in. Subscribers count the padded messages as
 * lost (zbus_sub_stats.reclaimed). Freeing @pub normally needs nothing
 * more.
 *
 * As for zbus_conn_register_sub(), the watch outlives a broker restart,
 * and only the process that opened @conn may register its own @pub.
 *
 * It also tells the broker where @pub keeps its table of messages by
 * reference: only a registered publisher's messages by reference can be
 * pulled through the broker by subscribers of other users, and only what
 * that table vouches for.
 *
 * Return: 0; -ENOENT; -EACCES (no publish right); -ESTALE if @pub's slot
 * does not hold it; -EPERM if another process holds @pub's slot; -EDQUOT
 * when the user has too many watches; transport errors.
 */
ZBUS_EXPORT int zbus_conn_register_pub(struct zbus_conn *conn,
				       const char *name,
				       const struct zbus_pub *pub);

/* The uid in a stat of a slot whose process the broker does not watch. */
#define ZBUS_UID_UNKNOWN 0xffffffffu

/**
 * zbus_conn_unregister_sub() - end @sub's registration, and @sub with it
 * @name: as given to zbus_conn_register_sub()
 *
 * For a subscription that is over: the broker stops watching it, this
 * connection no longer registers it again after a broker restart, and
 * the broker frees @sub's slot at once, so that a reliable subscription
 * stops holding producers back even while this process lingers. Free
 * @sub next with zbus_sub_free(), without receiving from it in between.
 * Only needed for that promptness: freeing a registered @sub alone is
 * fine, the broker forgets its watch by itself.
 *
 * Only the connection that registered @sub, or one of the same user, may
 * unregister it.
 * Return: 0; -ENOENT for an unknown channel, or a subscription nobody
 * registered; -ESTALE if @sub's slot does not hold it; -EACCES when
 * another user registered it; transport errors.
 */
ZBUS_EXPORT int zbus_conn_unregister_sub(struct zbus_conn *conn,
					 const char *name,
					 const struct zbus_sub *sub);

/**
 * zbus_conn_unregister_pub() - end @pub's registration, and @pub with it
 *
 * As zbus_conn_unregister_sub(): the broker stops watching @pub and frees
 * its publisher slot as a dead publisher's. Publish or abandon its loans
 * first: any left are taken back (subscribers count them in
 * zbus_sub_stats.reclaimed). Free @pub next with zbus_pub_free(), without
 * loaning in between.
 * Return: as zbus_conn_unregister_sub().
 */
ZBUS_EXPORT int zbus_conn_unregister_pub(struct zbus_conn *conn,
					 const char *name,
					 const struct zbus_pub *pub);

/**
 * struct zbus_channel_stat - a channel as the broker sees it
 *
 * Rates are messages per second over the broker's last sampling interval
 * (about a second; 0 until it sampled twice).
 */
struct zbus_channel_stat {
	char name[256];
	uint32_t max_msg_size;
	uint32_t ring_capacity;
	uint32_t max_subscribers;
	uint32_t mode;
	uint64_t arena_bytes;
	uint64_t segment_bytes;
	uint64_t published;   /* messages claimed so far */
	uint32_t owner_uid;
	uint32_t owner_gid;
	uint32_t publishers;
	uint32_t subscribers;
	uint32_t default_policy;
	uint32_t max_publishers;
	uint64_t reclaimed;   /* claims of dead or stuck producers padded */
	uint32_t unblock_timeout_ms;
	uint32_t flags;       /* ZBUS_CHANNEL_SEAL_WRITERS: offered, sealed */
	uint64_t depth;       /* published, not yet released by the slowest
			       * reliable subscriber (0 without one) */
	double publish_rate;  /* claims per second */
};

/**
 * struct zbus_sub_stat - one subscription of a channel, as the broker reads
 * it from the channel (pid and missed are what the subscriber wrote:
 * informational). A subscription the broker delivers (zbus_conn_subscribe()
 * without a mapping) is the broker's own slot, shown with the pid and uid
 * of the subscriber it delivers to.
 */
struct zbus_sub_stat {
	uint32_t slot;
	uint32_t pid;
	uint32_t policy;   /* ZBUS_RELIABLE or ZBUS_LOSSY */
	uint32_t uid;      /* of the process the broker watches for it
			    * (zbus_conn_register_sub()), or ZBUS_UID_UNKNOWN */
	uint64_t lag;      /* messages published it has not released yet */
	uint64_t missed;   /* as zbus_sub_stats.missed, at its last release */
	double rate;       /* messages per second it took off the ring */
};

/**
 * struct zbus_pub_stat - one publisher of a channel, as the broker reads it
 * from the channel (pid and published are what the publisher wrote:
 * informational)
 */
struct zbus_pub_stat {
	uint32_t slot;
	uint32_t pid;
	uint32_t uid;       /* of the process the broker watches for it
			     * (zbus_conn_register_pub()), or ZBUS_UID_UNKNOWN */
	uint32_t flags;     /* ZBUS_PUB_EXCLUSIVE */
	uint64_t published; /* messages it published (abandoned loans aside) */
	double rate;        /* messages per second it published */
	uint64_t reserved[4];
};

/**
 * zbus_conn_subscribers() - the subscriptions of channel @name
 * @out: receives a malloc()ed array the caller free()s (NULL when none)
 * Return: the number of subscriptions; -ENOENT; -errno.
 */
ZBUS_EXPORT int zbus_conn_subscribers(struct zbus_conn *conn,
				      const char *name,
				      struct zbus_sub_stat **out);

/**
 * zbus_conn_publishers() - the publishers of channel @name
 * @out: receives a malloc()ed array the caller free()s (NULL when none)
 * Return: the number of publishers; -ENOENT; -errno.
 */
ZBUS_EXPORT int zbus_conn_publishers(struct zbus_conn *conn,
				     const char *name,
				     struct zbus_pub_stat **out);

/**
 * zbus_conn_list() - every channel the broker knows
 * @out: receives a malloc()ed array the caller free()s
 * Return: the number of channels; -errno.
 */
ZBUS_EXPORT int zbus_conn_list(struct zbus_conn *conn,
			       struct zbus_channel_stat **out);

/**
 * zbus_conn_stat() - one channel. Return: 0; -ENOENT; -errno.
 */
ZBUS_EXPORT int zbus_conn_stat(struct zbus_conn *conn, const char *name,
			       struct zbus_channel_stat *out);

#ifdef __cplusplus
}
#endif

#endif /* ZBUS_H */
