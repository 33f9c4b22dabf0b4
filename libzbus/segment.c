/* SPDX-License-Identifier: MIT */
/*
 * segment.c - a channel's two memfds: data (producers write) and state
 * (subscribers write too).
 *
 * The creator sizes each memfd, writes its header and seals it against
 * growing, shrinking and further sealing before anyone else can see it. An
 * attacher trusts nothing: it checks the seals (so nobody can truncate the
 * file under its mapping and raise SIGBUS), the file size, then a private
 * copy of the header read with pread(), and only then maps.
 *
 * Read-only subscribers. A memfd opened read-only cannot be mapped
 * writable, but can be reopened read-write through /proc/self/fd unless
 * its mode forbids it (the broker makes its data memfds 0600), and seals
 * are the only protection that holds against its own uid: a data memfd
 * sealed with F_SEAL_FUTURE_WRITE after its creator mapped it can never be
 * mapped writable again, by anyone.
 */
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "wait.h"
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
	if (o.reserved0 || !reserved_zero(o.reserved, 3) ||
	    (o.flags & ~ZBUS_CHANNEL_SEAL_WRITERS))
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
	g->pubs_off = g->ctl_off + sizeof(struct zb_ctl);
	g->ring_off = g->pubs_off + g->max_pubs * sizeof(struct zb_pub_slot);
	ring_end = g->ring_off + (uint64_t)g->ring_capacity *
					 sizeof(struct zb_desc);
	g->arena_off = zb_align_up(ring_end, PAGE);
	g->arena_size = arena;
	g->segment_size = g->arena_off + arena;

	g->sctl_off = sizeof(struct zb_state_hdr);
	g->subs_off = g->sctl_off + sizeof(struct zb_sub_ctl);
	g->state_size = zb_align_up(
		g->subs_off + (uint64_t)g->max_subs * sizeof(struct zb_sub_slot),
		PAGE);
	return 0;
}

/* Largest state segment a valid header can describe. */
#define MAX_STATE_SIZE                                                      \
	zb_align_up(sizeof(struct zb_state_hdr) + sizeof(struct zb_sub_ctl) + \
			    (uint64_t)ZB_MAX_SUBS * sizeof(struct zb_sub_slot), \
		    PAGE)

int zb_layout_validate(const struct zb_shm_hdr *h, uint64_t file_size,
		       struct zb_geometry *g)
{
	uint64_t pubs_end, ring_end;

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
	if (!h->channel_id || h->max_subs < 1 || h->max_subs > ZB_MAX_SUBS ||
	    h->state_size < PAGE || h->state_size > MAX_STATE_SIZE)
		return -EBADMSG;
	/* Regions in order, aligned, none overlapping the next. */
	if (h->ctl_off < h->hdr_size || h->ctl_off % ZB_CACHELINE ||
	    h->ctl_size < sizeof(struct zb_ctl))
		return -EBADMSG;
	if (h->max_pubs < 1 || h->max_pubs > ZB_MAX_PUBS ||
	    h->pubs_off % ZB_CACHELINE ||
	    h->pubs_off < (uint64_t)h->ctl_off + h->ctl_size)
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

	memset(g, 0, sizeof(*g));
	g->segment_size = h->segment_size;
	g->channel_id = h->channel_id;
	g->state_size = h->state_size;
	g->arena_off = h->arena_off;
	g->arena_size = h->arena_size;
	g->ctl_off = h->ctl_off;
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

int zb_state_validate(const struct zb_state_hdr *sh, uint64_t file_size,
		      struct zb_geometry *g)
{
	uint64_t subs_end;

	if (sh->magic != ZB_STATE_MAGIC)
		return -EBADMSG;
	if (sh->version_major != ZB_LAYOUT_MAJOR)
		return -EPROTO;
	if (sh->hdr_size < sizeof(*sh) || sh->slot_size != sizeof(struct zb_sub_slot))
		return -EBADMSG;
	/* The pair must belong together: same channel, same size. */
	if (sh->channel_id != g->channel_id || sh->state_size != file_size ||
	    sh->state_size != g->state_size || sh->max_subs != g->max_subs)
		return -EBADMSG;
	if (sh->sctl_off < sh->hdr_size || sh->sctl_off % ZB_CACHELINE ||
	    sh->subs_off % ZB_CACHELINE ||
	    sh->subs_off < (uint64_t)sh->sctl_off + sizeof(struct zb_sub_ctl))
		return -EBADMSG;
	subs_end = sh->subs_off + (uint64_t)sh->max_subs * sh->slot_size;
	if (subs_end > file_size)
		return -EBADMSG;
	g->sctl_off = sh->sctl_off;
	g->subs_off = sh->subs_off;
	return 0;
}

static void set_regions(struct zb_segment *seg)
{
	seg->ctl = (struct zb_ctl *)(seg->base + seg->g.ctl_off);
	seg->pubs = (struct zb_pub_slot *)(seg->base + seg->g.pubs_off);
	seg->ring = (struct zb_desc *)(seg->base + seg->g.ring_off);
	seg->arena = seg->base + seg->g.arena_off;
	seg->sctl = (struct zb_sub_ctl *)(seg->state_base + seg->g.sctl_off);
	seg->slots = (struct zb_sub_slot *)(seg->state_base + seg->g.subs_off);
}

static int memfd_new(const char *kind, const char *name)
{
	char label[64];
	int fd;

	snprintf(label, sizeof(label), "%s:%s", kind, name ? name : "channel");
	fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING |
					 MFD_NOEXEC_SEAL);
	if (fd < 0 && errno == EINVAL) /* kernels before 6.3 */
		fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return fd < 0 ? -errno : fd;
}

/* A sized, mapped memfd (read-write). Return: the fd; -errno. */
static int memfd_mapped(const char *kind, const char *name, uint64_t size,
			uint8_t **base)
{
	void *m;
	int fd, r;

	fd = memfd_new(kind, name);
	if (fd < 0)
		return fd;
	if (ftruncate(fd, (off_t)size) < 0)
		goto fail;
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		goto fail;
	*base = m;
	return fd;
fail:
	r = -errno;
	close(fd);
	return r;
}

static uint64_t new_channel_id(void)
{
	uint64_t id = 0;

	/* Not a secret: it only pairs the two memfds and catches a mix-up,
	 * so a short read falls back to the clock and the pid. */
	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
		id = zb_now_ns() ^ ((uint64_t)getpid() << 32);
	return id ? id : 1;
}

static void write_headers(struct zb_segment *seg)
{
	const struct zb_geometry *g = &seg->g;
	struct zb_shm_hdr *h = (struct zb_shm_hdr *)seg->base;
	struct zb_state_hdr *sh = (struct zb_state_hdr *)seg->state_base;

	/* A fresh memfd reads as zeros: every slot is FREE, every
	 * descriptor uncommitted, every counter 0. Only headers are set. */
	h->magic = ZB_LAYOUT_MAGIC;
	h->version_major = ZB_LAYOUT_MAJOR;
	h->version_minor = ZB_LAYOUT_MINOR;
	h->hdr_size = sizeof(*h);
	h->segment_size = g->segment_size;
	h->ctl_off = g->ctl_off;
	h->ctl_size = sizeof(struct zb_ctl);
	h->state_size = (uint32_t)g->state_size;
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
	h->channel_id = g->channel_id;

	sh->magic = ZB_STATE_MAGIC;
	sh->version_major = ZB_LAYOUT_MAJOR;
	sh->version_minor = ZB_LAYOUT_MINOR;
	sh->hdr_size = sizeof(*sh);
	sh->channel_id = g->channel_id;
	sh->state_size = g->state_size;
	sh->sctl_off = g->sctl_off;
	sh->subs_off = g->subs_off;
	sh->max_subs = g->max_subs;
	sh->slot_size = sizeof(struct zb_sub_slot);
}

int zb_segment_create(const char *name, const struct zb_geometry *g,
		      int seal_writers, struct zb_segment *seg)
{
	int data_seals = ZB_REQUIRED_SEALS;
	int r;

	memset(seg, 0, sizeof(*seg));
	seg->fd = seg->state_fd = -1;
	seg->g = *g;
	seg->g.channel_id = new_channel_id();
	r = memfd_mapped("zbus", name, g->segment_size, &seg->base);
	if (r < 0)
		goto fail;
	seg->fd = r;
	r = memfd_mapped("zbus-state", name, g->state_size, &seg->state_base);
	if (r < 0)
		goto fail;
	seg->state_fd = r;
	write_headers(seg);

	/* FUTURE_WRITE leaves our mapping writable and refuses every new
	 * one (FIELD-NOTES): from here on only this process publishes. */
	if (seal_writers)
		data_seals |= F_SEAL_FUTURE_WRITE;
	if (fcntl(seg->fd, F_ADD_SEALS, data_seals) < 0 ||
	    fcntl(seg->state_fd, F_ADD_SEALS, ZB_REQUIRED_SEALS) < 0) {
		r = -errno;
		goto fail;
	}
	seg->writable = 1;
	seg->sealed = !!seal_writers;
	set_regions(seg);
	return 0;
fail:
	zb_segment_destroy(seg);
	return r;
}

/* Check that @fd is a sealed memfd and read its first @len bytes (a
 * header) into @hdr. Return: 0; -errno. */
static int read_sealed(int fd, void *hdr, size_t len, int *seals,
		       uint64_t *size)
{
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return -EBADF;
	/* F_GET_SEALS fails with EINVAL on anything but a memfd (pipe,
	 * socket, disk file): that also checks the fd's type. */
	*seals = fcntl(fd, F_GET_SEALS);
	if (*seals < 0)
		return errno == EBADF ? -EBADF : -EINVAL;
	if ((*seals & ZB_REQUIRED_SEALS) != ZB_REQUIRED_SEALS)
		return -EPERM;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < len)
		return -EBADMSG;
	n = pread(fd, hdr, len, 0);
	if (n != (ssize_t)len)
		return n < 0 ? -errno : -EBADMSG;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int read_write(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_ACCMODE) == O_RDWR;
}

/* Map a duplicate of @fd. Return: the duplicate; -errno. */
static int map_dup(int fd, uint64_t size, int prot, uint8_t **base)
{
	void *m;
	int dup_fd, r;

	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return -errno;
	m = mmap(NULL, size, prot, MAP_SHARED, dup_fd, 0);
	if (m == MAP_FAILED) {
		r = -errno;
		close(dup_fd);
		return r;
	}
	*base = m;
	return dup_fd;
}

int zb_segment_attach_dup(const int fds[ZB_NFDS], struct zb_segment *seg)
{
	struct zb_shm_hdr hdr;
	struct zb_state_hdr shdr;
	struct zb_geometry g;
	uint64_t size = 0, state_size = 0; /* set by read_sealed() on success */
	int seals, state_seals, prot = PROT_READ, r;

	if (!fds)
		return -EBADF;
	r = read_sealed(fds[ZB_FD_DATA], &hdr, sizeof(hdr), &seals, &size);
	if (r < 0)
		return r;
	r = zb_layout_validate(&hdr, size, &g);
	if (r < 0)
		return r;
	r = read_sealed(fds[ZB_FD_STATE], &shdr, sizeof(shdr), &state_seals,
			&state_size);
	if (r < 0)
		return r;
	/* Everybody writes the state segment: it must stay writable. */
	if ((state_seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) ||
	    !read_write(fds[ZB_FD_STATE]))
		return -EACCES;
	r = zb_state_validate(&shdr, state_size, &g);
	if (r < 0)
		return r;

	memset(seg, 0, sizeof(*seg));
	seg->fd = seg->state_fd = -1;
	seg->g = g;
	seg->sealed = !!(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE));
	seg->writable = !seg->sealed && read_write(fds[ZB_FD_DATA]);
	if (seg->writable)
		prot |= PROT_WRITE;
	r = map_dup(fds[ZB_FD_DATA], g.segment_size, prot, &seg->base);
	if (r < 0)
		goto fail;
	seg->fd = r;
	r = map_dup(fds[ZB_FD_STATE], g.state_size, PROT_READ | PROT_WRITE,
		    &seg->state_base);
	if (r < 0)
		goto fail;
	seg->state_fd = r;
	set_regions(seg);
	return 0;
fail:
	zb_segment_destroy(seg);
	return r;
}

void zb_segment_destroy(struct zb_segment *seg)
{
	if (seg->base)
		munmap(seg->base, seg->g.segment_size);
	if (seg->state_base)
		munmap(seg->state_base, seg->g.state_size);
	if (seg->fd >= 0)
		close(seg->fd);
	if (seg->state_fd >= 0)
		close(seg->state_fd);
	seg->base = seg->state_base = NULL;
	seg->fd = seg->state_fd = -1;
}
