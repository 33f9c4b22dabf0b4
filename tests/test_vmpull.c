/* SPDX-License-Identifier: MIT */
/*
 * test_vmpull.c - zb_vmpull_read()/write() against real forked processes.
 *
 * A target child maps a private anonymous buffer, fills it with a pattern
 * that is a function of the byte's offset, reports the address through a
 * pipe and then serves commands until its command pipe closes (so a test
 * that fails half-way leaves no child behind). The parent pulls and
 * checks every byte against the same function.
 *
 * What zb_vmpull_read() guarantees, and what is tested: it returns the
 * full length, or fails; it never returns success when the pidfd's
 * process has exited by the end of the copy; given a (pidfd, pid) pair
 * that names one process, success means every byte came from it. The
 * pair itself is the caller's to get right, with zb_pidfd_pid() once.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "vmpull.h"

#define KiB (1024ul)
#define MiB (1024ul * KiB)
#define PAGE 4096ul

static void leak_init(void)
{
	tu_leak_begin();
}

static void leak_fini(void)
{
	tu_leak_end();
}

/*
 * One timeout for the whole suite, none per test: with --jobs 2, a test
 * carrying its own .timeout made Criterion 2.4.1's runner leak 48 bytes
 * (seen by LeakSanitizer in the ASan builds) whenever another test ended
 * while it ran. The 256 MiB tests take seconds here, mostly the VM
 * backing fresh pages.
 */
TestSuite(vmpull, .init = leak_init, .fini = leak_fini, .timeout = 60);
TestSuite(pidfd, .init = leak_init, .fini = leak_fini, .timeout = 30);

/* ------------------------------------------------------------------ */
/* The pattern                                                         */
/* ------------------------------------------------------------------ */

/* Word @i of the pattern @seed; bytes are in host order both when the
 * child fills and when the parent checks. */
static uint64_t pat_word(uint64_t seed, uint64_t i)
{
	return (i + seed) * 0x9E3779B97F4A7C15ull ^ (seed << 32);
}

static uint8_t pat_byte(uint64_t seed, uint64_t off)
{
	uint64_t w = pat_word(seed, off / 8);
	uint8_t b[8];

	memcpy(b, &w, 8);
	return b[off % 8];
}

/* Fill @len bytes that stand at offset @off of the pattern. */
static void pat_fill(void *buf, uint64_t off, size_t len, uint64_t seed)
{
	uint8_t *p = buf;
	size_t i = 0;

	for (; i < len && (off + i) % 8; i++)
		p[i] = pat_byte(seed, off + i);
	for (; i + 8 <= len; i += 8) {
		uint64_t w = pat_word(seed, (off + i) / 8);

		memcpy(p + i, &w, 8);
	}
	for (; i < len; i++)
		p[i] = pat_byte(seed, off + i);
}

/* Index of the first byte of @buf that is not the pattern at @off, or
 * -1 if every byte is. */
static long pat_check(const void *buf, uint64_t off, size_t len,
		      uint64_t seed)
{
	const uint8_t *p = buf;
	size_t i = 0;

	for (; i < len && (off + i) % 8; i++)
		if (p[i] != pat_byte(seed, off + i))
			return (long)i;
	for (; i + 8 <= len; i += 8) {
		uint64_t w = pat_word(seed, (off + i) / 8), v;

		memcpy(&v, p + i, 8);
		if (v != w)
			break; /* the byte loop below finds which */
	}
	for (; i < len; i++)
		if (p[i] != pat_byte(seed, off + i))
			return (long)i;
	return -1;
}

/* ------------------------------------------------------------------ */
/* The target child                                                    */
/* ------------------------------------------------------------------ */

#define SEED 0x5eed

struct target_opts {
	size_t len;		/* buffer, bytes (page multiple) */
	size_t unmap_tail;	/* munmap this many bytes at the end */
	size_t ro_tail;		/* mprotect(PROT_READ) this many at the end */
	uid_t uid;		/* 0: stay; else setgid/setuid to it */
	int dumpable;		/* with uid: PR_SET_DUMPABLE 1 after setuid */
};

struct target {
	pid_t pid;
	int pidfd;
	int cmd;	/* to the child; closing it ends the child */
	int rep;	/* from the child */
	uint64_t addr;
};

/* Commands, one byte each; the child answers each with one byte. */
#define CMD_UNMAP 'u'	/* munmap the whole buffer */
#define CMD_CHECK 'c'	/* answer 'y' if the buffer holds check_seed's
			 * pattern on [check_off, +check_len) and SEED's
			 * elsewhere, 'n' if not */
struct check_req {
	uint64_t seed, off, len;
};

static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : (ssize_t)got;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int child_checks(const uint8_t *buf, size_t len,
			const struct check_req *q)
{
	if (q->off > len || q->len > len - q->off)
		return 0;
	return pat_check(buf, 0, q->off, SEED) < 0 &&
	       pat_check(buf + q->off, q->off, q->len, q->seed) < 0 &&
	       pat_check(buf + q->off + q->len, q->off + q->len,
			 len - q->off - q->len, SEED) < 0;
}

static void drop_to(uid_t uid)
{
	if (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0)
		_exit(90);
}

static __attribute__((noreturn)) void target_main(const struct target_opts *o,
						  int cmd, int rep)
{
	uint8_t *buf;
	uint64_t addr;
	char c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	buf = mmap(NULL, o->len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		_exit(91);
	pat_fill(buf, 0, o->len, SEED);
	if (o->unmap_tail && munmap(buf + o->len - o->unmap_tail,
				    o->unmap_tail) < 0)
		_exit(92);
	if (o->ro_tail && mprotect(buf + o->len - o->ro_tail, o->ro_tail,
				   PROT_READ) < 0)
		_exit(93);
	if (o->uid) {
		drop_to(o->uid);
		/* setuid without exec leaves us non-dumpable (FIELD-NOTES) */
		if (o->dumpable && prctl(PR_SET_DUMPABLE, 1) < 0)
			_exit(94);
	}
	addr = (uint64_t)(uintptr_t)buf;
	if (write(rep, &addr, sizeof(addr)) != sizeof(addr))
		_exit(95);
	while (read_full(cmd, &c, 1) == 1) {
		struct check_req q;
		char a = 'y';

		if (c == CMD_UNMAP) {
			munmap(buf, o->len);
		} else if (c == CMD_CHECK) {
			if (read_full(cmd, &q, sizeof(q)) != sizeof(q))
				_exit(96);
			a = child_checks(buf, o->len, &q) ? 'y' : 'n';
		}
		if (write(rep, &a, 1) != 1)
			_exit(97);
	}
	_exit(0);
}

static void target_start(struct target *t, const struct target_opts *o)
{
	int cmd[2], rep[2];

	cr_assert_eq(pipe2(cmd, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(rep, O_CLOEXEC), 0);
	t->pid = fork();
	cr_assert_geq(t->pid, 0, "fork: %s", strerror(errno));
	if (t->pid == 0) {
		close(cmd[1]);
		close(rep[0]);
		target_main(o, cmd[0], rep[1]);
	}
	close(cmd[0]);
	close(rep[1]);
	t->cmd = cmd[1];
	t->rep = rep[0];
	t->pidfd = zb_pidfd_open(t->pid);
	cr_assert_geq(t->pidfd, 0, "zb_pidfd_open: %s", strerror(-t->pidfd));
	cr_assert_eq(read_full(t->rep, &t->addr, sizeof(t->addr)),
		     (ssize_t)sizeof(t->addr), "the target did not start");
}

static char target_cmd(struct target *t, char c, const void *arg,
		       size_t len)
{
	char a = 0;

	cr_assert_eq(write(t->cmd, &c, 1), 1);
	if (len)
		cr_assert_eq(write(t->cmd, arg, len), (ssize_t)len);
	cr_assert_eq(read_full(t->rep, &a, 1), 1, "no answer from target");
	return a;
}

/* Kill the target (if still there) and reap it; closes everything. */
static void target_stop(struct target *t)
{
	if (t->pid > 0) {
		syscall(SYS_pidfd_send_signal, t->pidfd, SIGKILL, NULL, 0);
		waitpid(t->pid, NULL, 0);
		t->pid = 0;
	}
	if (t->pidfd >= 0)
		close(t->pidfd);
	if (t->cmd >= 0)
		close(t->cmd);
	if (t->rep >= 0)
		close(t->rep);
	t->pidfd = t->cmd = t->rep = -1;
}

/* Kill the target and wait until its pidfd says it exited, without
 * reaping it: a zombie. */
static void target_kill_zombie(struct target *t)
{
	struct pollfd p = { .fd = t->pidfd, .events = POLLIN };

	cr_assert_eq(syscall(SYS_pidfd_send_signal, t->pidfd, SIGKILL, NULL,
			     0), 0);
	cr_assert_eq(poll(&p, 1, 10000), 1, "target did not die");
}

static void target_reap(struct target *t)
{
	int st;

	cr_assert_eq(syscall(SYS_pidfd_send_signal, t->pidfd, SIGKILL, NULL,
			     0), 0);
	cr_assert_eq(waitpid(t->pid, &st, 0), t->pid);
	t->pid = 0;
}

/* A destination outside the malloc heap: ASan and 256 MiB do not mix. */
static uint8_t *map_buf(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(p, MAP_FAILED, "mmap %zu: %s", len, strerror(errno));
	return p;
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------ */
/* Whole buffers                                                       */
/* ------------------------------------------------------------------ */

static void pull_whole(size_t len)
{
	struct target_opts o = { .len = len };
	struct target t;
	uint8_t *dst = map_buf(len);
	double t0, t1;
	ssize_t n;
	long bad;

	target_start(&t, &o);
	for (int round = 0; round < 2; round++) {
		t0 = now_ms();
		n = zb_vmpull_read(t.pidfd, t.pid, t.addr, dst, len);
		t1 = now_ms();
		cr_assert_eq(n, (ssize_t)len, "pull %zu: %zd", len, n);
		bad = pat_check(dst, 0, len, SEED);
		cr_assert_eq(bad, -1, "byte %ld of %zu differs", bad, len);
		/* The first round also faults our pages in, which a VM may
		 * have to back from the host first. */
		cr_log_info("vmpull %zu bytes into %s pages: %.2f ms", len,
			    round ? "warm" : "fresh", t1 - t0);
		memset(dst, 0, len);
	}
	target_stop(&t);
	munmap(dst, len);
}

Test(vmpull, pulls_1k)
{
	pull_whole(KiB);
}

Test(vmpull, pulls_1m)
{
	pull_whole(MiB);
}

/* Several chunks of ZB_VMPULL_CHUNK: the loop's seams are checked too. */
Test(vmpull, pulls_256m)
{
	pull_whole(256 * MiB);
}

/* ------------------------------------------------------------------ */
/* Odd ranges                                                          */
/* ------------------------------------------------------------------ */

Test(vmpull, unaligned_addresses_and_lengths)
{
	static const struct {
		size_t off, len;
	} cases[] = {
		{ 1, 1 },	  { 3, 4093 },	   { 4095, 2 },
		{ 4095, 4097 }, { 7, 65536 - 12 }, { 8191, 1 },
		{ 12345, 50000 }, { 0, 65536 },   { 65535, 1 },
	};
	struct target_opts o = { .len = 64 * KiB };
	struct target t;
	uint8_t *dst = map_buf(64 * KiB + 64);

	target_start(&t, &o);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t off = cases[i].off, len = cases[i].len;
		uint8_t *d = dst + 1 + i % 7; /* an odd destination */
		ssize_t n;

		memset(dst, 0xa5, 64 * KiB + 64);
		n = zb_vmpull_read(t.pidfd, t.pid, t.addr + off, d, len);
		cr_assert_eq(n, (ssize_t)len, "off %zu len %zu: %zd", off, len,
			     n);
		cr_assert_eq(pat_check(d, off, len, SEED), -1,
			     "off %zu len %zu: content", off, len);
		/* nothing written around it */
		for (uint8_t *p = dst; p < d; p++)
			cr_assert_eq(*p, 0xa5);
		cr_assert_eq(d[len], 0xa5, "off %zu len %zu: overrun", off,
			     len);
	}
	target_stop(&t);
	munmap(dst, 64 * KiB + 64);
}

Test(vmpull, len_zero_copies_nothing)
{
	struct target_opts o = { .len = PAGE };
	struct target t;
	uint8_t dst[16];

	memset(dst, 0xa5, sizeof(dst));
	target_start(&t, &o);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, dst, 0), 0);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, NULL, 0), 0);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, 0, NULL, 0), 0);
	cr_assert_eq(zb_vmpull_write(t.pidfd, t.pid, t.addr, NULL, 0), 0);
	for (size_t i = 0; i < sizeof(dst); i++)
		cr_assert_eq(dst[i], 0xa5);
	/* Even no bytes are no success from a dead process. */
	target_reap(&t);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, dst, 0), -ESRCH);
	target_stop(&t);
}

/*
 * The kernel answers a range that runs into an unmapped page with a short
 * count; the function must go on and report the fault, never the part.
 */
Test(vmpull, range_into_unmapped_page_is_efault)
{
	struct target_opts o = { .len = 16 * PAGE, .unmap_tail = 4 * PAGE };
	struct target t;
	uint8_t *dst = map_buf(16 * PAGE);
	size_t mapped = 12 * PAGE;
	struct iovec l = { dst, 16 * PAGE }, r;

	target_start(&t, &o);
	/* What the kernel does by itself: a short count, no error. */
	r.iov_base = (void *)(uintptr_t)t.addr;
	r.iov_len = 16 * PAGE;
	cr_assert_eq(process_vm_readv(t.pid, &l, 1, &r, 1, 0),
		     (ssize_t)mapped);

	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, dst, 16 * PAGE),
		     -EFAULT);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr + mapped - 1, dst,
				    2),
		     -EFAULT, "one byte over the edge");
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr + mapped, dst, 1),
		     -EFAULT, "starting in the hole");
	/* up to the edge is fine */
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr + 5, dst,
				    mapped - 5),
		     (ssize_t)(mapped - 5));
	cr_assert_eq(pat_check(dst, 5, mapped - 5, SEED), -1);
	target_stop(&t);
	munmap(dst, 16 * PAGE);
}

/* A publisher that unmaps what it published: the pull faults. */
Test(vmpull, unmapped_after_publish_is_efault)
{
	struct target_opts o = { .len = MiB };
	struct target t;
	uint8_t *dst = map_buf(MiB);

	target_start(&t, &o);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, dst, MiB),
		     (ssize_t)MiB);
	cr_assert_eq(target_cmd(&t, CMD_UNMAP, NULL, 0), 'y');
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, dst, MiB),
		     -EFAULT);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr + 100, dst, 1),
		     -EFAULT);
	cr_assert_eq(zb_vmpull_write(t.pidfd, t.pid, t.addr, dst, 1),
		     -EFAULT);
	target_stop(&t);
	munmap(dst, MiB);
}

Test(vmpull, address_overflow_is_einval)
{
	struct target_opts o = { .len = PAGE };
	struct target t;
	uint8_t dst[8];

	target_start(&t, &o);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, UINT64_MAX, dst, 2),
		     -EINVAL);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, UINT64_MAX - 6, dst, 8),
		     -EINVAL);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, dst, SIZE_MAX),
		     -EINVAL);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, dst,
				    (size_t)SSIZE_MAX + 1),
		     -EINVAL, "a count the return type cannot carry");
	cr_assert_eq(zb_vmpull_write(t.pidfd, t.pid, UINT64_MAX, dst, 2),
		     -EINVAL);
	/* A range that ends exactly at 2^64 does not overflow: it is
	 * kernel space, and faults. */
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, UINT64_MAX - 7, dst, 8),
		     -EFAULT);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, UINT64_MAX, dst, 1),
		     -EFAULT);
	target_stop(&t);
}

/* ------------------------------------------------------------------ */
/* Dead targets                                                        */
/* ------------------------------------------------------------------ */

Test(vmpull, killed_and_reaped_is_esrch)
{
	struct target_opts o = { .len = PAGE };
	struct target t;
	uint8_t dst[64];

	target_start(&t, &o);
	target_reap(&t);
	cr_assert_eq(zb_pidfd_alive(t.pidfd), 0);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, dst, 64), -ESRCH);
	cr_assert_eq(zb_vmpull_write(t.pidfd, t.pid, t.addr, dst, 64),
		     -ESRCH);
	target_stop(&t);
}

/*
 * A zombie keeps its pid (so nothing else can hold it) but has no memory
 * any more: the kernel itself says ESRCH, and the pidfd says exited.
 */
Test(vmpull, killed_zombie_is_esrch)
{
	struct target_opts o = { .len = PAGE };
	struct target t;
	uint8_t dst[64];
	struct iovec l = { dst, 64 }, r;
	pid_t p = 0;
	ssize_t n;

	target_start(&t, &o);
	target_kill_zombie(&t);
	cr_assert_eq(zb_pidfd_alive(t.pidfd), 0);
	cr_assert_eq(zb_pidfd_pid(t.pidfd, &p), 0, "a zombie keeps its pid");
	cr_assert_eq(p, t.pid);
	r.iov_base = (void *)(uintptr_t)t.addr;
	r.iov_len = 64;
	n = process_vm_readv(t.pid, &l, 1, &r, 1, 0);
	cr_log_info("process_vm_readv of a zombie: %zd (%s)", n,
		    n < 0 ? strerror(errno) : "read");
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, dst, 64), -ESRCH);
	cr_assert_eq(zb_vmpull_write(t.pidfd, t.pid, t.addr, dst, 64),
		     -ESRCH);
	target_stop(&t);
}

struct killer {
	int pidfd;
	long delay_us;
	atomic_int go;
};

static void *killer_main(void *arg)
{
	struct killer *k = arg;
	struct timespec d = { 0, k->delay_us * 1000 };

	while (!atomic_load(&k->go))
		;
	nanosleep(&d, NULL);
	syscall(SYS_pidfd_send_signal, k->pidfd, SIGKILL, NULL, 0);
	return NULL;
}

/*
 * SIGKILL while 256 MiB are being pulled. The kernel does not stop a
 * copy under way (it holds the mm) and may return the full count from a
 * dead process: only the pidfd check turns that into -ESRCH.
 */
Test(vmpull, killed_during_large_pull_never_succeeds)
{
	static const long delays_us[] = { 0, 2000, 10000 };
	const size_t len = 256 * MiB;
	uint8_t *dst = map_buf(len);
	int esrch = 0, efault = 0;

	for (size_t i = 0; i < sizeof(delays_us) / sizeof(delays_us[0]);
	     i++) {
		struct target_opts o = { .len = len };
		struct target t;
		struct killer k;
		pthread_t th;
		double t0, t1;
		ssize_t n;

		target_start(&t, &o);
		k.pidfd = t.pidfd;
		k.delay_us = delays_us[i];
		atomic_init(&k.go, 0);
		cr_assert_eq(pthread_create(&th, NULL, killer_main, &k), 0);
		t0 = now_ms();
		atomic_store(&k.go, 1);
		n = zb_vmpull_read(t.pidfd, t.pid, t.addr, dst, len);
		t1 = now_ms();
		pthread_join(th, NULL);
		/* a pull that outlasts the delay was hit while copying */
		cr_log_info("kill after %ld us: %zd after %.1f ms",
			    delays_us[i], n, t1 - t0);
		cr_assert(n == -ESRCH || n == -EFAULT,
			  "killed after %ld us: %zd", delays_us[i], n);
		esrch += n == -ESRCH;
		efault += n == -EFAULT;
		target_stop(&t);
	}
	cr_log_info("killed during pull: %d -ESRCH, %d -EFAULT", esrch,
		    efault);
	munmap(dst, len);
}

/*
 * Pid reuse cannot be forced, so it is simulated: the pidfd of a reaped
 * child beside the pid of another, live one, which holds the same pattern.
 * The kernel would read it; the function must not.
 */
Test(vmpull, dead_pidfd_with_live_foreign_pid_is_esrch)
{
	struct target_opts o = { .len = PAGE };
	struct target a, b;
	uint8_t dst[PAGE], src[64];
	struct iovec l = { dst, PAGE }, r;
	struct check_req q = { .seed = SEED, .off = 0, .len = 0 };
	pid_t p;

	target_start(&a, &o);
	target_start(&b, &o);
	/* Live and mismatched: the setup check sees it. */
	cr_assert_eq(zb_pidfd_pid(a.pidfd, &p), 0);
	cr_assert_eq(p, a.pid);
	cr_assert_neq(p, b.pid);

	target_reap(&a);
	r.iov_base = (void *)(uintptr_t)b.addr;
	r.iov_len = PAGE;
	cr_assert_eq(process_vm_readv(b.pid, &l, 1, &r, 1, 0), (ssize_t)PAGE,
		     "the stand-in for a recycled pid is readable");
	cr_assert_eq(zb_vmpull_read(a.pidfd, b.pid, b.addr, dst, PAGE),
		     -ESRCH);
	cr_assert_eq(zb_pidfd_pid(a.pidfd, &p), -ESRCH);
	/* A write is refused before it happens: b is untouched. */
	pat_fill(src, 0, sizeof(src), SEED + 1);
	cr_assert_eq(zb_vmpull_write(a.pidfd, b.pid, b.addr, src,
				     sizeof(src)),
		     -ESRCH);
	cr_assert_eq(target_cmd(&b, CMD_CHECK, &q, sizeof(q)), 'y',
		     "the foreign process was written");
	target_stop(&a);
	target_stop(&b);
}

/* ------------------------------------------------------------------ */
/* Users                                                               */
/* ------------------------------------------------------------------ */

#define UID_A 65534 /* nobody */
#define UID_B 65533 /* any other uid; nothing needs to exist */

/* In a child running as @uid: pull the first page of @t; exits 0 on
 * success, 1 on -EPERM, 2 on anything else. */
static int pull_as(uid_t uid, const struct target *t)
{
	pid_t c = fork();

	cr_assert_geq(c, 0);
	if (c == 0) {
		uint8_t dst[PAGE];
		ssize_t n;

		drop_to(uid);
		n = zb_vmpull_read(t->pidfd, t->pid, t->addr, dst, PAGE);
		if (n == (ssize_t)PAGE && pat_check(dst, 0, PAGE, SEED) < 0)
			_exit(0);
		_exit(n == -EPERM ? 1 : 2);
	}
	return tu_wait_child(c, 20);
}

Test(vmpull, other_uid_is_eperm)
{
	struct target_opts o = { .len = PAGE, .uid = UID_A, .dumpable = 1 };
	struct target t;
	uint8_t dst[PAGE];

	if (geteuid() != 0)
		cr_skip_test("needs root to run processes as two other uids");
	target_start(&t, &o);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, dst, PAGE),
		     (ssize_t)PAGE, "root reads anyone");
	cr_assert_eq(pat_check(dst, 0, PAGE, SEED), -1);
	cr_assert_eq(pull_as(UID_A, &t), 0, "the same uid reads");
	cr_assert_eq(pull_as(UID_B, &t), 1, "another uid gets -EPERM");
	target_stop(&t);
}

/* setuid without exec leaves a process non-dumpable: its own uid is then
 * refused as well, only CAP_SYS_PTRACE (root) still reads. */
Test(vmpull, non_dumpable_target_is_eperm)
{
	struct target_opts o = { .len = PAGE, .uid = UID_A, .dumpable = 0 };
	struct target t;
	uint8_t dst[PAGE];

	if (geteuid() != 0)
		cr_skip_test("needs root to make a non-dumpable target");
	target_start(&t, &o);
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, dst, PAGE),
		     (ssize_t)PAGE);
	cr_assert_eq(pull_as(UID_A, &t), 1, "non-dumpable: -EPERM");
	target_stop(&t);
}

/* ------------------------------------------------------------------ */
/* Writes                                                              */
/* ------------------------------------------------------------------ */

Test(vmpull, write_lands_in_target)
{
	const size_t len = MiB;
	struct target_opts o = { .len = len };
	struct check_req q = { .seed = SEED + 1, .off = 5, .len = 300001 };
	struct target t;
	uint8_t *src = map_buf(len);

	target_start(&t, &o);
	pat_fill(src, q.off, q.len, q.seed);
	cr_assert_eq(zb_vmpull_write(t.pidfd, t.pid, t.addr + q.off, src,
				     q.len),
		     (ssize_t)q.len);
	cr_assert_eq(target_cmd(&t, CMD_CHECK, &q, sizeof(q)), 'y',
		     "the target does not see what was written");
	/* and reading it back agrees */
	cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, src, len),
		     (ssize_t)len);
	cr_assert_eq(pat_check(src, 0, q.off, SEED), -1);
	cr_assert_eq(pat_check(src + q.off, q.off, q.len, q.seed), -1);
	cr_assert_eq(pat_check(src + q.off + q.len, q.off + q.len,
			       len - q.off - q.len, SEED),
		     -1);
	target_stop(&t);
	munmap(src, len);
}

/* Writes need a writable mapping: no FOLL_FORCE behind a read-only page. */
Test(vmpull, write_to_read_only_page_is_efault)
{
	struct target_opts o = { .len = 4 * PAGE, .ro_tail = 2 * PAGE };
	struct check_req q = { .seed = SEED, .off = 0, .len = 0 };
	struct target t;
	uint8_t src[2 * PAGE];

	target_start(&t, &o);
	pat_fill(src, 0, sizeof(src), SEED + 2);
	cr_assert_eq(zb_vmpull_write(t.pidfd, t.pid, t.addr + 2 * PAGE, src,
				     sizeof(src)),
		     -EFAULT);
	cr_assert_eq(target_cmd(&t, CMD_CHECK, &q, sizeof(q)), 'y',
		     "a read-only page was written");
	/* One writable page, then the read-only one: the kernel writes
	 * the first (a short count) before the fault. */
	cr_assert_eq(zb_vmpull_write(t.pidfd, t.pid, t.addr + PAGE, src,
				     sizeof(src)),
		     -EFAULT, "a write running into it");
	cr_assert_eq(target_cmd(&t, CMD_CHECK, &q, sizeof(q)), 'n',
		     "the writable page before it took its part");
	target_stop(&t);
}

/* ------------------------------------------------------------------ */
/* pidfd helpers                                                       */
/* ------------------------------------------------------------------ */

Test(pidfd, open_checks_its_pid)
{
	int fd;

	cr_assert_eq(zb_pidfd_open(0), -EINVAL);
	cr_assert_eq(zb_pidfd_open(-1), -EINVAL);
	fd = zb_pidfd_open(getpid());
	cr_assert_geq(fd, 0);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(zb_pidfd_alive(fd), 1);
	close(fd);
}

Test(pidfd, pid_names_the_process)
{
	struct target_opts o = { .len = PAGE };
	struct target t;
	pid_t p = 0;

	target_start(&t, &o);
	cr_assert_eq(zb_pidfd_pid(t.pidfd, &p), 0);
	cr_assert_eq(p, t.pid);
	cr_assert_eq(zb_pidfd_alive(t.pidfd), 1);
	target_reap(&t);
	cr_assert_eq(zb_pidfd_alive(t.pidfd), 0);
	cr_assert_eq(zb_pidfd_pid(t.pidfd, &p), -ESRCH, "reaped: Pid: -1");
	target_stop(&t);
}

Test(pidfd, refuses_what_is_not_a_pidfd)
{
	int pp[2];
	pid_t p;

	cr_assert_eq(pipe2(pp, O_CLOEXEC), 0);
	cr_assert_eq(zb_pidfd_pid(pp[0], &p), -EINVAL);
	close(pp[0]);
	close(pp[1]);
	cr_assert_eq(zb_pidfd_pid(pp[0], &p), -EBADF);
	cr_assert_eq(zb_pidfd_alive(pp[0]), -EBADF);
	cr_assert_eq(zb_pidfd_alive(-1), -EBADF);
	cr_assert_eq(zb_vmpull_read(-1, getpid(), 0, NULL, 0), -EBADF);
}

/* Thousands of calls open nothing that stays open (the .fini checks). */
Test(vmpull, many_calls_leak_no_fd)
{
	struct target_opts o = { .len = PAGE };
	struct target t;
	uint8_t dst[64];
	int fds;
	pid_t p;

	target_start(&t, &o);
	fds = tu_count_fds();
	for (int i = 0; i < 2000; i++) {
		cr_assert_eq(zb_vmpull_read(t.pidfd, t.pid, t.addr, dst, 64),
			     64);
		cr_assert_eq(zb_pidfd_pid(t.pidfd, &p), 0);
	}
	cr_assert_eq(tu_count_fds(), fds);
	target_stop(&t);
}
