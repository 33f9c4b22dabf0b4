/* SPDX-License-Identifier: MIT */
/*
 * util.h - small internal helpers: cleanup attributes and typed wrappers
 * around libatomic_ops for the fixed-width fields of the shared layout.
 */
#ifndef ZB_UTIL_H
#define ZB_UTIL_H

#include <atomic_ops.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

_Static_assert(sizeof(AO_t) == sizeof(uint64_t), "AO_t must be 64-bit");
_Static_assert(sizeof(unsigned int) == sizeof(uint32_t), "32-bit int");

#define _zb_cleanup_(fn) __attribute__((cleanup(fn)))
#define ZB_DEFINE_CLEANUP(type, fn)                    \
	static inline void fn##p(type *p)              \
	{                                              \
		if (*p)                                \
			fn(*p);                        \
	}

static inline void zb_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _zb_cleanup_close_ _zb_cleanup_(zb_closep)

static inline void zb_freep(void *p)
{
	free(*(void **)p);
}
#define _zb_cleanup_free_ _zb_cleanup_(zb_freep)

#define ZB_LIKELY(x) __builtin_expect(!!(x), 1)
#define ZB_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* 64-bit shared words. Every access to shared memory goes through these. */
static inline uint64_t zb_load64(const uint64_t *p)
{
	return AO_load((const volatile AO_t *)p);
}
static inline uint64_t zb_load64_acquire(const uint64_t *p)
{
	return AO_load_acquire((const volatile AO_t *)p);
}
static inline void zb_store64(uint64_t *p, uint64_t v)
{
	AO_store((volatile AO_t *)p, v);
}
static inline void zb_store64_release(uint64_t *p, uint64_t v)
{
	AO_store_release((volatile AO_t *)p, v);
}
static inline int zb_cas64(uint64_t *p, uint64_t old, uint64_t new_)
{
	return AO_compare_and_swap_full((volatile AO_t *)p, old, new_);
}
static inline uint64_t zb_or64(uint64_t *p, uint64_t v)
{
	for (;;) { /* lock-free: only fails when another bit changed */
		uint64_t o = zb_load64(p);
		if ((o & v) == v || zb_cas64(p, o, o | v))
			return o;
	}
}
static inline uint64_t zb_and64(uint64_t *p, uint64_t v)
{
	for (;;) {
		uint64_t o = zb_load64(p);
		if ((o & v) == o || zb_cas64(p, o, o & v))
			return o;
	}
}

/* 32-bit shared words. */
static inline uint32_t zb_load32(const uint32_t *p)
{
	return AO_int_load((const volatile unsigned int *)p);
}
static inline uint32_t zb_load32_acquire(const uint32_t *p)
{
	return AO_int_load_acquire((const volatile unsigned int *)p);
}
static inline void zb_store32(uint32_t *p, uint32_t v)
{
	AO_int_store((volatile unsigned int *)p, v);
}
static inline void zb_store32_release(uint32_t *p, uint32_t v)
{
	AO_int_store_release((volatile unsigned int *)p, v);
}
static inline uint32_t zb_fetch_add32(uint32_t *p, uint32_t v)
{
	return AO_int_fetch_and_add_full((volatile unsigned int *)p, v);
}
static inline int zb_cas32(uint32_t *p, uint32_t old, uint32_t new_)
{
	return AO_int_compare_and_swap_full((volatile unsigned int *)p, old,
					    new_);
}

/* A full barrier: orders an earlier store before a later load (Dekker). */
static inline void zb_fence_full(void)
{
	AO_nop_full();
}
/* Orders earlier loads before later loads (seqlock read side). */
static inline void zb_fence_read(void)
{
	AO_nop_read();
}
/* Orders earlier stores before later stores (seqlock write side). */
static inline void zb_fence_write(void)
{
	AO_nop_write();
}

static inline void zb_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline int zb_is_pow2_64(uint64_t v)
{
	return v && !(v & (v - 1));
}

static inline uint64_t zb_round_pow2_64(uint64_t v)
{
	uint64_t r = 1;
	while (r < v)
		r <<= 1;
	return r;
}

static inline uint64_t zb_align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

#endif /* ZB_UTIL_H */
