/* SPDX-License-Identifier: MIT */
/*
 * ref.c - pulling a message published by reference out of its publisher.
 *
 * The record in the ring (struct zb_ref) is written by a publisher, so it
 * is a claim: "publisher slot S, while it holds word W, has these bytes at
 * this address". Before a byte is read:
 *  - slot S must hold W now (the publisher is still there);
 *  - the process behind it is pinned by a pidfd, opened from the pid the
 *    slot states, and must map this channel's data memfd shared and
 *    writable: only publishers (and the broker) do, so a record cannot
 *    send us reading some unrelated process we happen to be allowed to
 *    read. The kernel decides whether we may read it at all (ptrace
 *    rules: the same user, or root).
 * After the copy, slot S must still hold W and its ref_floor must not have
 * passed the message: otherwise the publisher may have changed the buffer
 * while we copied (a seqlock, layout.h), and the copy is thrown away.
 * A resolved publisher is kept (one pidfd per slot) until its slot's word
 * changes, so the /proc reads are paid once per publisher, not per pull.
 */
#include "ref.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util.h"
#include "vmpull.h"
#include "zbus/zbus.h"

void zb_refs_init(struct zb_refs *r, struct zb_segment *seg)
{
	struct stat st;

	memset(r, 0, sizeof(*r));
	r->seg = seg;
	if (fstat(seg->fd, &st) == 0) {
		r->data_dev = (uint64_t)st.st_dev;
		r->data_ino = (uint64_t)st.st_ino;
	}
}

static void forget_peer(struct zb_ref_peer *p)
{
	if (p->word && p->pidfd >= 0)
		close(p->pidfd);
	*p = (struct zb_ref_peer){ .pidfd = -1 };
}

void zb_refs_fini(struct zb_refs *r)
{
	if (!r->peers)
		return;
	for (uint32_t i = 0; i < r->seg->g.max_pubs; i++)
		forget_peer(&r->peers[i]);
	free(r->peers);
	r->peers = NULL;
}

int zb_ref_check(const struct zb_segment *seg, const struct zb_ref *ref)
{
	if (ref->slot >= seg->g.max_pubs || ref->reserved ||
	    (ref->word & ZB_SLOT_STATE_MASK) != ZB_SLOT_ACTIVE ||
	    ref->length > ZBUS_REF_MAX ||
	    ref->addr > UINT64_MAX - ref->length)
		return -EBADMSG;
	return 0;
}

/*
 * Does process @pid map the memfd (@dev, @ino) shared and writable? One
 * pass over /proc/PID/maps. Return: 1; 0; -EPERM when we may not look
 * (another user's process: we could not pull from it either); -ESRCH
 * when it is gone or exiting.
 */
static int maps_channel_writable(pid_t pid, uint64_t dev, uint64_t ino)
{
	char path[64], *line = NULL;
	size_t cap = 0;
	FILE *f;
	int found = 0, lines = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH :
		       errno == EACCES ? -EPERM : -errno;
	while (!found && getline(&line, &cap, f) > 0) {
		unsigned long long lo, hi, offset, inode;
		unsigned int major, minor;
		char perms[5];

		lines++;
		if (sscanf(line, "%llx-%llx %4s %llx %x:%x %llu", &lo, &hi,
			   perms, &offset, &major, &minor, &inode) != 7)
			continue;
		found = inode == ino && makedev(major, minor) == dev &&
			perms[0] == 'r' && perms[1] == 'w' && perms[3] == 's';
	}
	/* Reading another user's maps fails at the first read, not open. */
	if (!found && ferror(f) && (errno == EACCES || errno == EPERM))
		found = -EPERM;
	/* A process has mappings until it exits: one killed a moment ago
	 * has none left before its pidfd says it died. */
	else if (!found && !lines)
		found = -ESRCH;
	free(line);
	fclose(f);
	return found;
}

/* How long a process seen without the channel's mapping gets to show it
 * is exiting. Generous: a killed producer of a 256 MiB buffer was seen
 * still tearing its memory down after 100 ms on a loaded machine (the
 * test suite at -j2), and only a forged record ever waits it out. */
#define EXIT_GRACE_MS 1000

/* Does the process of @pidfd exit within EXIT_GRACE_MS? */
static int exits_soon(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, EXIT_GRACE_MS);
	while (r < 0 && errno == EINTR);
	return r > 0;
}

/* The process behind publisher slot @slot holding @word, resolved and
 * checked. Return: the peer; NULL with *@err. */
static struct zb_ref_peer *peer_of(struct zb_refs *r, uint32_t slot,
				   uint32_t word, int *err)
{
	struct zb_pub_slot *sl = &r->seg->pubs[slot];
	struct zb_ref_peer *p;
	uint32_t pid;
	int fd, ok;

	if (!r->peers) {
		r->peers = calloc(r->seg->g.max_pubs, sizeof(*r->peers));
		if (!r->peers) {
			*err = -ENOMEM;
			return NULL;
		}
		for (uint32_t i = 0; i < r->seg->g.max_pubs; i++)
			r->peers[i].pidfd = -1;
	}
	p = &r->peers[slot];
	if (p->word == word)
		return p;
	forget_peer(p);
	pid = zb_load32(&sl->pid);
	if (!pid || pid > INT32_MAX) {
		*err = -EBADMSG;
		return NULL;
	}
	fd = zb_pidfd_open((pid_t)pid);
	if (fd < 0) {
		*err = fd == -EINVAL ? -EBADMSG : fd;
		return NULL;
	}
	ok = maps_channel_writable((pid_t)pid, r->data_dev, r->data_ino);
	/* The pid was the pidfd's process all along if it still runs (an
	 * exiting one shows no mappings: that is its death, not a lie); and
	 * the slot still that publisher's if its word did not move. */
	if (zb_pidfd_alive(fd) != 1)
		ok = -ESRCH;
	/* Or one killed just now: its mappings go (and a read of them stops
	 * short) a moment before its pidfd says so. A process that really
	 * does not map the channel is still running after that moment. */
	if (ok == 0 && exits_soon(fd))
		ok = -ESRCH;
	if (ok == 1 && zb_load32_acquire(&sl->state) != word)
		ok = -ESRCH;
	if (ok != 1) {
		close(fd);
		*err = ok == 0 ? -EBADMSG : ok;
		return NULL;
	}
	*p = (struct zb_ref_peer){ .word = word, .pid = (pid_t)pid,
				   .pidfd = fd };
	return p;
}

ssize_t zb_ref_pull(struct zb_refs *r, const struct zb_ref *ref, uint64_t seq,
		    uint64_t off, void *dst, size_t len)
{
	struct zb_pub_slot *sl = &r->seg->pubs[ref->slot];
	struct zb_ref_peer *p;
	ssize_t n;
	int err = 0;

	if (zb_load32_acquire(&sl->state) != ref->word)
		return -ESRCH; /* the publisher left its slot */
	p = peer_of(r, ref->slot, ref->word, &err);
	if (!p)
		return err;
	n = zb_vmpull_read(p->pidfd, p->pid, ref->addr + off, dst, len);
	if (n == -ESRCH)
		forget_peer(p);
	if (n < 0)
		return n;
	/* Our copy before these loads (the publisher fences between raising
	 * the floor, or freeing its slot, and touching the buffer). */
	zb_fence_full();
	if (zb_load32_acquire(&sl->state) != ref->word ||
	    (int64_t)(zb_load64(&sl->ref_floor) - seq) > 0)
		return -ESTALE;
	return n;
}
