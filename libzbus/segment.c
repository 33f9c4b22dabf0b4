/* SPDX-License-Identifier: MIT */
/*
 * segment.c - a channel's memfd.
 *
 * The creator sizes the memfd, writes the header and seals it against
 * growing, shrinking and further sealing before anyone else can see it. An
 * attacher trusts nothing: it checks the seals (so nobody can truncate the
 * file under its mapping and raise SIGBUS), the file size, then a private
 * copy of the header read with pread(), and only then maps.
 */
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "zbus/zbus.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

#define PAGE 4096u
#define DEFAULT_MAX_MSG (64u * 1024)
#define DEFAULT_CAPACITY 1024u
#define DEFAULT_SUBS 64u
#define DEFAULT_PUBS 64u

static int reserved_zero(const uint64_t *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i])
			return 0;
	return 1;
}

int zb_geometry_from_opts(const struct zbus_channel_opts *opts,
			  struct zb_geometry *g)
{
	struct zbus_channel_opts o = { 0 };
	uint64_t msg_aligned, arena, ring_end;

	if (opts)
		o = *opts;
	if (!reserved_zero(o.reserved, 4))
		return -EINVAL;
	if (!o.max_msg_size)
		o.max_msg_size = DEFAULT_MAX_MSG;
	if (!o.ring_capacity)
		o.ring_capacity = DEFAULT_CAPACITY;
	if (!o.max_subscribers)
		o.max_subscribers = DEFAULT_SUBS;
	if (!o.max_publishers)
		o.max_publishers = DEFAULT_PUBS;
	if (o.max_msg_size > ZB_MAX_MSG_SIZE ||
	    o.ring_capacity > ZB_MAX_CAPACITY || o.ring_capacity < 2 ||
	    o.max_subscribers > ZB_MAX_SUBS ||
	    o.max_publishers > ZB_MAX_PUBS || o.arena_bytes > ZB_MAX_ARENA)
		return -EINVAL;

	msg_aligned = zb_align_up(o.max_msg_size, ZB_ARENA_ALIGN);
	arena = o.arena_bytes;
	if (!arena) {
		arena = 4 * msg_aligned;
		if (arena < (uint64_t)o.ring_capacity * 256)
			arena = (uint64_t)o.ring_capacity * 256;
	}
	/*
	 * Twice the largest message: a claim that does not fit before the
	 * arena's end pads to the next lap, and pad + message must still fit
	 * in an empty arena or the producer could never make progress.
	 */
	if (arena < 2 * msg_aligned)
		arena = 2 * msg_aligned;
	if (arena < PAGE)
		arena = PAGE;
	arena = zb_round_pow2_64(arena);
	if (arena > ZB_MAX_ARENA)
		return -EINVAL;

	memset(g, 0, sizeof(*g));
	g->version_major = ZB_LAYOUT_MAJOR;
	g->version_minor = ZB_LAYOUT_MINOR;
	g->max_msg_size = o.max_msg_size;
	g->ring_capacity = (uint32_t)zb_round_pow2_64(o.ring_capacity);
	g->max_subs = o.max_subscribers;
	g->max_pubs = o.max_publishers;
	g->ctl_off = sizeof(struct zb_shm_hdr);
	g->subs_off = g->ctl_off + sizeof(struct zb_ctl);
	g->pubs_off = g->subs_off + g->max_subs * sizeof(struct zb_sub_slot);
	g->ring_off = g->pubs_off + g->max_pubs * sizeof(struct zb_pub_slot);
	ring_end = g->ring_off + (uint64_t)g->ring_capacity *
					 sizeof(struct zb_desc);
	g->arena_off = zb_align_up(ring_end, PAGE);
	g->arena_size = arena;
	g->segment_size = g->arena_off + arena;
	return 0;
}

int zb_layout_validate(const struct zb_shm_hdr *h, uint64_t file_size,
		       struct zb_geometry *g)
{
	uint64_t subs_end, pubs_end, ring_end;

	if (h->magic != ZB_LAYOUT_MAGIC)
		return -EBADMSG;
	if (h->version_major != ZB_LAYOUT_MAJOR)
		return -EPROTO;
	if (h->incompat_features & ~ZB_INCOMPAT_KNOWN)
		return -EPROTO;
	if (h->hdr_size < sizeof(*h) || h->segment_size != file_size)
		return -EBADMSG;
	if (h->slot_size != sizeof(struct zb_sub_slot) ||
	    h->pub_slot_size != sizeof(struct zb_pub_slot) ||
	    h->desc_size != sizeof(struct zb_desc))
		return -EBADMSG;
	/* Regions in order, aligned, none overlapping the next. */
	if (h->ctl_off < h->hdr_size || h->ctl_off % ZB_CACHELINE ||
	    h->ctl_size < sizeof(struct zb_ctl))
		return -EBADMSG;
	if (h->max_subs < 1 || h->max_subs > ZB_MAX_SUBS ||
	    h->subs_off % ZB_CACHELINE ||
	    h->subs_off < (uint64_t)h->ctl_off + h->ctl_size)
		return -EBADMSG;
	subs_end = h->subs_off + (uint64_t)h->max_subs * h->slot_size;
	if (h->max_pubs < 1 || h->max_pubs > ZB_MAX_PUBS ||
	    h->pubs_off % ZB_CACHELINE || h->pubs_off < subs_end)
		return -EBADMSG;
	pubs_end = h->pubs_off + (uint64_t)h->max_pubs * h->pub_slot_size;
	if (!zb_is_pow2_64(h->ring_capacity) || h->ring_capacity < 2 ||
	    h->ring_capacity > ZB_MAX_CAPACITY || h->ring_off % ZB_CACHELINE ||
	    h->ring_off < pubs_end)
		return -EBADMSG;
	ring_end = h->ring_off + (uint64_t)h->ring_capacity * h->desc_size;
	if (!zb_is_pow2_64(h->arena_size) || h->arena_size > ZB_MAX_ARENA ||
	    h->arena_off % PAGE || h->arena_off < ring_end ||
	    h->arena_off > file_size ||
	    h->arena_size != file_size - h->arena_off)
		return -EBADMSG;
	if (h->max_msg_size > ZB_MAX_MSG_SIZE ||
	    2 * zb_align_up(h->max_msg_size, ZB_ARENA_ALIGN) > h->arena_size)
		return -EBADMSG;

	g->segment_size = h->segment_size;
	g->arena_off = h->arena_off;
	g->arena_size = h->arena_size;
	g->ctl_off = h->ctl_off;
	g->subs_off = h->subs_off;
	g->max_subs = h->max_subs;
	g->pubs_off = h->pubs_off;
	g->max_pubs = h->max_pubs;
	g->ring_off = h->ring_off;
	g->ring_capacity = h->ring_capacity;
	g->max_msg_size = h->max_msg_size;
	g->version_major = h->version_major;
	g->version_minor = h->version_minor;
	return 0;
}

static void set_regions(struct zb_segment *seg)
{
	seg->ctl = (struct zb_ctl *)(seg->base + seg->g.ctl_off);
	seg->slots = (struct zb_sub_slot *)(seg->base + seg->g.subs_off);
	seg->pubs = (struct zb_pub_slot *)(seg->base + seg->g.pubs_off);
	seg->ring = (struct zb_desc *)(seg->base + seg->g.ring_off);
	seg->arena = seg->base + seg->g.arena_off;
}

static int memfd_new(const char *name)
{
	char label[64];
	int fd;

	snprintf(label, sizeof(label), "zbus:%s", name ? name : "channel");
	fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING |
					 MFD_NOEXEC_SEAL);
	if (fd < 0 && errno == EINVAL) /* kernels before 6.3 */
		fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return fd < 0 ? -errno : fd;
}

int zb_segment_create(const char *name, const struct zb_geometry *g,
		      struct zb_segment *seg)
{
	struct zb_shm_hdr *h;
	void *base;
	int fd, r;

	fd = memfd_new(name);
	if (fd < 0)
		return fd;
	if (ftruncate(fd, (off_t)g->segment_size) < 0)
		goto fail_errno;
	base = mmap(NULL, g->segment_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, 0);
	if (base == MAP_FAILED)
		goto fail_errno;

	/* A fresh memfd reads as zeros: every slot is FREE, every
	 * descriptor uncommitted, every counter 0. Only the header is set. */
	h = base;
	h->magic = ZB_LAYOUT_MAGIC;
	h->version_major = ZB_LAYOUT_MAJOR;
	h->version_minor = ZB_LAYOUT_MINOR;
	h->hdr_size = sizeof(*h);
	h->segment_size = g->segment_size;
	h->ctl_off = g->ctl_off;
	h->ctl_size = sizeof(struct zb_ctl);
	h->subs_off = g->subs_off;
	h->max_subs = g->max_subs;
	h->pubs_off = g->pubs_off;
	h->max_pubs = g->max_pubs;
	h->pub_slot_size = sizeof(struct zb_pub_slot);
	h->ring_off = g->ring_off;
	h->ring_capacity = g->ring_capacity;
	h->arena_off = g->arena_off;
	h->arena_size = g->arena_size;
	h->max_msg_size = g->max_msg_size;
	h->slot_size = sizeof(struct zb_sub_slot);
	h->desc_size = sizeof(struct zb_desc);

	if (fcntl(fd, F_ADD_SEALS, ZB_REQUIRED_SEALS) < 0) {
		r = -errno;
		munmap(base, g->segment_size);
		close(fd);
		return r;
	}
	seg->fd = fd;
	seg->base = base;
	seg->g = *g;
	set_regions(seg);
	return 0;

fail_errno:
	r = -errno;
	close(fd);
	return r;
}

int zb_segment_attach_dup(int fd, struct zb_segment *seg)
{
	_zb_cleanup_close_ int dup_fd = -1;
	struct zb_shm_hdr hdr;
	struct zb_geometry g;
	struct stat st;
	void *base;
	ssize_t n;
	int seals, r;

	if (fd < 0)
		return -EBADF;
	/* F_GET_SEALS fails with EINVAL on anything but a memfd (pipe,
	 * socket, disk file): that also checks the fd's type. */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return errno == EBADF ? -EBADF : -EINVAL;
	if ((seals & ZB_REQUIRED_SEALS) != ZB_REQUIRED_SEALS)
		return -EPERM;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < sizeof(hdr))
		return -EBADMSG;
	n = pread(fd, &hdr, sizeof(hdr), 0);
	if (n != (ssize_t)sizeof(hdr))
		return n < 0 ? -errno : -EBADMSG;
	r = zb_layout_validate(&hdr, (uint64_t)st.st_size, &g);
	if (r < 0)
		return r;

	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return -errno;
	base = mmap(NULL, g.segment_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		    dup_fd, 0);
	if (base == MAP_FAILED)
		return -errno;
	seg->fd = dup_fd;
	dup_fd = -1;
	seg->base = base;
	seg->g = g;
	set_regions(seg);
	return 0;
}

void zb_segment_destroy(struct zb_segment *seg)
{
	if (seg->base)
		munmap(seg->base, seg->g.segment_size);
	if (seg->fd >= 0)
		close(seg->fd);
	seg->base = NULL;
	seg->fd = -1;
}
