/* SPDX-License-Identifier: MIT */
/*
 * test_inject.c - syscall failures reach the caller as the documented
 * return codes, and an error path leaks no fd, mapping or thread.
 *
 * Interposition: this file defines memfd_create, ftruncate, mmap, fcntl,
 * eventfd and pthread_create with libc's prototypes. The library is a
 * static archive linked into this executable, so its calls bind to these
 * definitions; each one forwards to the next definition in lookup order
 * (libc, or a sanitizer's interceptor) found with dlsym(RTLD_NEXT), unless
 * a test armed it to fail once with a chosen errno. Each test checks the
 * failure was actually injected, so a call that stops going through here
 * fails the test instead of passing it vacuously.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"
#include "zbus/zbus.h"

/* The wrappers below must be the functions the library calls, not their
 * 64-bit-offset aliases (ftruncate64, mmap64, fcntl64). */
#if defined(_FILE_OFFSET_BITS) && _FILE_OFFSET_BITS == 64
#error "test_inject.c interposes the plain names: build without _FILE_OFFSET_BITS=64"
#endif

/* --- The failure knob ---------------------------------------------------- */

enum fn { FN_NONE, FN_MEMFD, FN_FTRUNCATE, FN_MMAP, FN_FCNTL, FN_EVENTFD,
	  FN_PTHREAD_CREATE };

static struct {
	enum fn fn;   /* fail the next call of this function... */
	int cmd;      /* ...(fcntl: only with this command)... */
	int err;      /* ...with this errno */
	int injected; /* failures injected since arm() */
} knob;

static void arm(enum fn fn, int err)
{
	knob.fn = fn;
	knob.cmd = 0;
	knob.err = err;
	knob.injected = 0;
}

static void arm_fcntl(int cmd, int err)
{
	arm(FN_FCNTL, err);
	knob.cmd = cmd;
}

/* Consume the knob if it is armed for @fn: return the errno to fail with,
 * or 0 to call the real function. */
static int take(enum fn fn)
{
	int err;

	if (knob.fn != fn)
		return 0;
	err = knob.err;
	knob.fn = FN_NONE;
	knob.injected++;
	return err;
}

static void *real(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (!p)
		abort(); /* cannot forward: nothing sensible to do */
	return p;
}

/* The next definition of @name, looked up once. Function pointers through
 * void * are a POSIX guarantee that dlsym() relies on. */
#define REAL(name)                                                   \
	({                                                           \
		static __typeof__(&name) real_##name;                \
		if (!real_##name)                                    \
			real_##name = (__typeof__(&name))real(#name); \
		real_##name;                                         \
	})

int memfd_create(const char *name, unsigned int flags)
{
	int err = take(FN_MEMFD);

	if (err) {
		errno = err;
		return -1;
	}
	return REAL(memfd_create)(name, flags);
}

int ftruncate(int fd, off_t length)
{
	int err = take(FN_FTRUNCATE);

	if (err) {
		errno = err;
		return -1;
	}
	return REAL(ftruncate)(fd, length);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int err = take(FN_MMAP);

	if (err) {
		errno = err;
		return MAP_FAILED;
	}
	return REAL(mmap)(addr, len, prot, flags, fd, off);
}

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	/* As glibc does: every fcntl argument, int or pointer, is passed in
	 * one word, and reading it when a command takes none is harmless. */
	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (knob.fn == FN_FCNTL && knob.cmd == cmd &&
	    (cmd == F_ADD_SEALS || cmd == F_GET_SEALS ||
	     cmd == F_DUPFD_CLOEXEC)) {
		errno = take(FN_FCNTL);
		return -1;
	}
	return REAL(fcntl)(fd, cmd, arg);
}

int eventfd(unsigned int count, int flags)
{
	int err = take(FN_EVENTFD);

	if (err) {
		errno = err;
		return -1;
	}
	return REAL(eventfd)(count, flags);
}

int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
		   void *(*start)(void *), void *arg)
{
	int err = take(FN_PTHREAD_CREATE);

	if (err)
		return err; /* pthread functions return the error */
	return REAL(pthread_create)(thread, attr, start, arg);
}

/* --- Fixture and helpers ------------------------------------------------- */

static struct zbus_channel *ch;

static void setup(void)
{
	tu_leak_begin();
}

static void teardown(void)
{
	arm(FN_NONE, 0);
	ch = zbus_channel_free(ch);
	tu_leak_end();
}

TestSuite(inject, .init = setup, .fini = teardown, .timeout = 30);

/* @r is the failure @want, it was injected exactly once, it has a text,
 * and the process holds no more fds or channel mappings than before. */
static void expect_failure(int r, int want, int fds, int maps)
{
	const char *text = zbus_strerror(r);

	cr_assert_eq(knob.injected, 1, "the failure was not injected");
	cr_assert_eq(r, want, "returned %d (%s), expected %d (%s)", r,
		     zbus_strerror(r), want, zbus_strerror(want));
	cr_assert_not_null(text);
	cr_assert_neq(text[0], '\0', "empty text for %d", r);
	cr_assert_eq(tu_count_fds(), fds, "fd leaked on the error path");
	cr_assert_eq(tu_count_zbus_maps(), maps,
		     "mapping leaked on the error path");
}

static void create_fails(enum fn fn, int err, int want)
{
	struct zbus_channel *c = NULL;
	int fds = tu_count_fds(), maps = tu_count_zbus_maps();
	int r;

	arm(fn, err);
	r = zbus_channel_create("inject", NULL, &c);
	expect_failure(r, want, fds, maps);
	cr_assert_null(c, "out-pointer set on failure");
}

static void create_fails_in_fcntl(int cmd, int err, int want)
{
	struct zbus_channel *c = NULL;
	int fds = tu_count_fds(), maps = tu_count_zbus_maps();
	int r;

	arm_fcntl(cmd, err);
	r = zbus_channel_create("inject", NULL, &c);
	expect_failure(r, want, fds, maps);
	cr_assert_null(c, "out-pointer set on failure");
}

static void make(void)
{
	struct zbus_channel_opts o = { .max_msg_size = 64,
				       .ring_capacity = 16 };
	int r = zbus_channel_create("inject", &o, &ch);

	cr_assert_eq(r, 0, "create: %s", zbus_strerror(r));
}

/* Attach to our own channel with @fn failing (fcntl: command @cmd);
 * nothing stays open or mapped beyond what the channel itself holds. */
static void attach_fails(enum fn fn, int cmd, int err, int want)
{
	struct zbus_channel *c = NULL;
	int fds, maps, r;

	make();
	fds = tu_count_fds();
	maps = tu_count_zbus_maps();
	if (fn == FN_FCNTL)
		arm_fcntl(cmd, err);
	else
		arm(fn, err);
	r = zbus_channel_attach_dup(zbus_channel_fd(ch),
				    zbus_channel_state_fd(ch), &c);
	expect_failure(r, want, fds, maps);
	cr_assert_null(c, "out-pointer set on failure");
}

/* --- Channel creation ---------------------------------------------------- */

Test(inject, memfd_create_emfile_is_returned)
{
	create_fails(FN_MEMFD, EMFILE, -EMFILE);
}

Test(inject, memfd_create_enomem_is_returned)
{
	create_fails(FN_MEMFD, ENOMEM, -ENOMEM);
}

Test(inject, memfd_create_einval_retries_without_noexec_seal)
{
	struct zbus_channel_info info;

	/* Kernels before 6.3 refuse MFD_NOEXEC_SEAL with EINVAL. */
	arm(FN_MEMFD, EINVAL);
	cr_assert_eq(zbus_channel_create("inject", NULL, &ch), 0);
	cr_assert_eq(knob.injected, 1);
	cr_assert_eq(zbus_channel_info(ch, &info), 0);
}

Test(inject, ftruncate_enospc_is_returned_without_leaking_the_memfd)
{
	create_fails(FN_FTRUNCATE, ENOSPC, -ENOSPC);
}

Test(inject, mmap_enomem_on_create_leaks_nothing)
{
	create_fails(FN_MMAP, ENOMEM, -ENOMEM);
}

Test(inject, sealing_eperm_on_create_unmaps_and_closes)
{
	create_fails_in_fcntl(F_ADD_SEALS, EPERM, -EPERM);
}

/* --- Attaching ----------------------------------------------------------- */

Test(inject, mmap_enomem_on_attach_closes_the_duplicate)
{
	attach_fails(FN_MMAP, 0, ENOMEM, -ENOMEM);
}

Test(inject, dup_emfile_on_attach_maps_nothing)
{
	attach_fails(FN_FCNTL, F_DUPFD_CLOEXEC, EMFILE, -EMFILE);
}

Test(inject, seal_query_failure_on_attach_is_einval_and_maps_nothing)
{
	/* F_GET_SEALS fails with EINVAL on anything but a memfd. */
	attach_fails(FN_FCNTL, F_GET_SEALS, EINVAL, -EINVAL);
}

Test(inject, attach_works_once_the_failure_is_gone)
{
	struct zbus_channel *c = NULL;

	attach_fails(FN_FCNTL, F_DUPFD_CLOEXEC, EMFILE, -EMFILE);
	cr_assert_eq(zbus_channel_attach_dup(zbus_channel_fd(ch),
				    zbus_channel_state_fd(ch), &c), 0);
	zbus_channel_free(c);
}

/* --- The pollable fd of a subscription ----------------------------------- */


/* Make zbus_sub_fd() fail once through @fn, then check the subscription
 * still receives and a second zbus_sub_fd() succeeds. */
static void sub_fd_fails(enum fn fn, int err, int want)
{
	struct zbus_pub_opts po = { .timeout_ms = 0 };
	int fds, maps, threads, r, fd;
	struct zbus_sub *s;
	struct zbus_pub *p;
	char buf[8] = { 0 };

	make();
	cr_assert_eq(zbus_sub_new(ch, NULL, &s), 0);
	cr_assert_eq(zbus_pub_new(ch, &po, &p), 0);
	fds = tu_count_fds();
	maps = tu_count_zbus_maps();
	threads = tu_count_threads();
	arm(fn, err);
	r = zbus_sub_fd(s);
	expect_failure(r, want, fds, maps);
	cr_assert_eq(tu_count_threads(), threads, "thread left behind");

	cr_assert_eq(zbus_pub_send(p, "hello", 5), 0);
	cr_assert_eq(zbus_sub_recv(s, buf, sizeof(buf), NULL, 0), 5,
		     "the subscription broke");
	cr_assert_str_eq(buf, "hello");

	fd = zbus_sub_fd(s);
	cr_assert_geq(fd, 0, "sub_fd after the failure: %s",
		      zbus_strerror(fd));
	cr_assert_eq(zbus_pub_send(p, "again", 5), 0);
	cr_assert_eq(poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1,
			  2000),
		     1, "the fd made after the failure never signalled");
	zbus_pub_free(p);
	zbus_sub_free(s);
}

Test(inject, eventfd_emfile_is_returned_and_the_subscription_survives)
{
	sub_fd_fails(FN_EVENTFD, EMFILE, -EMFILE);
}

Test(inject, pthread_create_eagain_is_returned_without_leaking_the_eventfd)
{
	sub_fd_fails(FN_PTHREAD_CREATE, EAGAIN, -EAGAIN);
}
