/* SPDX-License-Identifier: MIT */
/*
 * bench_util.c - the harness the benchmarks share (see bench_util.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "bench_util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zbus/zbus.h>

char bench_err[512];
volatile sig_atomic_t bench_timed_out;
volatile sig_atomic_t bench_child_exited;
const char *bench_prog = "zbus-bench";

/* Where a failed child leaves its reason; shared, cleared at each fork. */
struct peer_report {
	char err[400];		/* fits in bench_err behind "child: " */
};

static struct peer_report *g_report;

static void set_err(const char *fmt, va_list ap, const char *reason)
{
	size_t n;

	if (bench_err[0])
		return;
	vsnprintf(bench_err, sizeof(bench_err), fmt, ap);
	n = strlen(bench_err);
	if (reason && n < sizeof(bench_err))
		snprintf(bench_err + n, sizeof(bench_err) - n, ": %s", reason);
}

int bench_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_err(fmt, ap, strerror(-err));
	va_end(ap);
	return err;
}

int bench_zfail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_err(fmt, ap, zbus_strerror(err));
	va_end(ap);
	return err;
}

int bench_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", bench_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see --help)\n");
	return -EINVAL;
}

static void on_alarm(int sig)
{
	(void)sig;
	bench_timed_out = 1;
}

static void on_child(int sig)
{
	(void)sig;
	bench_child_exited = 1;
}

static int setup_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/*
	 * No SA_RESTART: a read() or write() blocked on a peer that hangs
	 * must return EINTR so that the alarm is noticed.
	 */
	sa.sa_handler = on_alarm;
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		return bench_fail(-errno, "sigaction(SIGALRM)");
	sa.sa_handler = on_child;
	sa.sa_flags = SA_NOCLDSTOP;
	if (sigaction(SIGCHLD, &sa, NULL) < 0)
		return bench_fail(-errno, "sigaction(SIGCHLD)");
	/* A peer that died must give EPIPE, not kill us silently. */
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = 0;
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return bench_fail(-errno, "sigaction(SIGPIPE)");
	return 0;
}

void *bench_map_shared(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p != MAP_FAILED)
		return p;
	bench_fail(-errno, "mmap(%zu)", bytes);
	return NULL;
}

/* Producer and consumer go on the first two CPUs we may run on. */
static int pick_cpus(struct bench_cpus *c)
{
	cpu_set_t set;
	int i, n = 0;

	memset(c, 0, sizeof(*c));
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return bench_fail(-errno, "sched_getaffinity");
	c->ncpu = CPU_COUNT(&set);
	for (i = 0; i < CPU_SETSIZE && n < 2; i++)
		if (CPU_ISSET(i, &set))
			c->cpu[n++] = i;
	c->pin = n == 2;
	return c->pin ? bench_pin_cpu(c->cpu[0]) : 0;
}

int bench_setup(struct bench_cpus *cpus)
{
	int ret;

	ret = setup_signals();
	if (ret < 0)
		return ret;
	g_report = bench_map_shared(sizeof(*g_report));
	if (!g_report)
		return -ENOMEM;
	return pick_cpus(cpus);
}

bool bench_stop_requested(void)
{
	bool stop = bench_timed_out || bench_child_exited;

	/*
	 * Keep the compiler from moving the flag read after the poll that
	 * follows: a poll made after the flag was seen must see everything
	 * the peer published before it exited.
	 */
	atomic_signal_fence(memory_order_seq_cst);
	return stop;
}

int bench_stop_error(const char *where)
{
	if (bench_timed_out)
		return bench_fail(-ETIMEDOUT, "%s: gave up waiting", where);
	return bench_fail(-EPIPE, "%s: peer exited", where);
}

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bench_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t bench_cpu_ns(void)
{
	return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

uint64_t bench_round_up(uint64_t v, uint64_t align)
{
	return (v + align - 1) / align * align;
}

int bench_write_full(int fd, const void *buf, size_t len, const char *where)
{
	const unsigned char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR && !bench_timed_out)
				continue;
			if (errno == EINTR)
				return bench_fail(-ETIMEDOUT, "%s: write",
						  where);
			/* TCP resets a connection closed with data unread. */
			if (errno == EPIPE || errno == ECONNRESET)
				return bench_fail(-EPIPE, "%s: peer exited",
						  where);
			return bench_fail(-errno, "%s: write", where);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int bench_read_full(int fd, void *buf, size_t len, const char *where)
{
	unsigned char *p = buf;
	ssize_t n;

	while (len) {
		n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR && !bench_timed_out)
				continue;
			if (errno == EINTR)
				return bench_fail(-ETIMEDOUT, "%s: read",
						  where);
			if (errno == ECONNRESET)
				return bench_fail(-EPIPE, "%s: peer exited",
						  where);
			return bench_fail(-errno, "%s: read", where);
		}
		if (n == 0)
			return bench_fail(-EPIPE, "%s: peer exited", where);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void bench_payload_fill(void *dst, size_t size, uint64_t seq)
{
	unsigned char *p = dst;
	uint64_t inv = ~seq;

	memset(p, (int)(seq & 0xff), size);
	if (size >= 8)
		memcpy(p, &seq, 8);
	if (size >= 16)
		memcpy(p + size - 8, &inv, 8);
}

int bench_pin_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		return bench_fail(-errno, "sched_setaffinity(CPU %d)", cpu);
	return 0;
}

int bench_consumer_cpu(const struct bench_cpus *c)
{
	return c->pin ? c->cpu[1] : -1;
}

int bench_loan_send(struct zbus_pub *pub, size_t size, uint64_t seq)
{
	struct zbus_loan loan;
	int ret;

	BENCH_SPIN(ret, zbus_pub_loan(pub, size, &loan), "zbus_pub_loan");
	if (ret < 0)
		return bench_zfail(ret, "zbus_pub_loan(%zu)", size);
	if (loan.size < size || !loan.data)
		return bench_fail(-EPROTO, "zbus_pub_loan(%zu) loaned %zu "
				  "bytes at %p", size, loan.size, loan.data);
	bench_payload_fill(loan.data, size, seq);
	ret = zbus_pub_publish(pub, &loan, size);
	if (ret < 0)
		return bench_zfail(ret, "zbus_pub_publish");
	return 0;
}

int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_percentile(const double *sorted, unsigned int n, double p)
{
	long rank = (long)ceil(p * (double)n);

	if (rank < 1)
		rank = 1;
	if (rank > (long)n)
		rank = (long)n;
	return sorted[rank - 1];
}

int bench_parse_size(const char *s, uint64_t max, size_t *out)
{
	unsigned long long v, mult = 1;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end == 'k' || *end == 'K')
		mult = KiB;
	else if (*end == 'm' || *end == 'M')
		mult = MiB;
	else if (*end == 'g' || *end == 'G')
		mult = GiB;
	if (mult != 1) {
		end++;
		if (!strcmp(end, "iB"))
			end += 2;
	}
	if (*end == 'B')
		end++;
	if (*end || v == 0 || v > max / mult)
		return -EINVAL;
	*out = (size_t)(v * mult);
	return 0;
}

int bench_parse_sizes(char *arg, size_t *sizes, unsigned int cap,
		      unsigned int *n, uint64_t min, uint64_t max)
{
	char *tok;

	*n = 0;
	while ((tok = strsep(&arg, ","))) {
		if (*n == cap)
			return bench_usage_error("at most %u sizes", cap);
		if (bench_parse_size(tok, max, &sizes[*n]) < 0 ||
		    sizes[*n] < min)
			return bench_usage_error("bad size '%s'", tok);
		(*n)++;
	}
	return 0;
}

int bench_parse_names(char *arg, const char *(*name)(size_t i),
		      size_t count, unsigned int *mask)
{
	char *tok;
	size_t i;

	*mask = 0;
	while ((tok = strsep(&arg, ","))) {
		if (!strcmp(tok, "all")) {
			*mask = (1u << count) - 1;
			continue;
		}
		for (i = 0; i < count; i++)
			if (!strcmp(tok, name(i)))
				break;
		if (i == count)
			return bench_usage_error("unknown transport '%s'",
						 tok);
		*mask |= 1u << i;
	}
	return 0;
}

int bench_parse_uint(const char *arg, const char *opt, unsigned int min,
		     unsigned int max, unsigned int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < (long)min || v > (long)max)
		return bench_usage_error("%s wants %u..%u", opt, min, max);
	*out = (unsigned int)v;
	return 0;
}

void bench_size_label(char *buf, size_t len, size_t size)
{
	if (size >= MiB && size % MiB == 0)
		snprintf(buf, len, "%zuMiB", size / (size_t)MiB);
	else if (size >= KiB && size % KiB == 0)
		snprintf(buf, len, "%zuKiB", size / (size_t)KiB);
	else
		snprintf(buf, len, "%zuB", size);
}

static void cpu_model(char *buf, size_t len)
{
	char line[256], *v;
	FILE *f;

	snprintf(buf, len, "unknown CPU");
	f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10))
			continue;
		v = strchr(line, ':');
		if (!v)
			break;
		v += strspn(v, ": \t");
		v[strcspn(v, "\n")] = '\0';
		snprintf(buf, len, "%s", v);
		break;
	}
	fclose(f);
}

void bench_print_machine(FILE *f, int ncpu)
{
	struct utsname u;
	char model[160];

	if (uname(&u) < 0)
		snprintf(u.release, sizeof(u.release), "unknown");
	cpu_model(model, sizeof(model));
	fprintf(f, "machine: Linux %s, nproc %d, %s\n", u.release, ncpu,
		model);
#ifndef __OPTIMIZE__
	fprintf(f, "warning: built without optimisation, timings are not "
		   "representative\n");
#endif
}

static _Noreturn void child_run(struct bench_peer *p, int cpu,
				bench_child_fn fn, void (*cleanup)(void *),
				void *arg)
{
	int ret;

	/* Die with the parent rather than poll a ring nobody serves. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != p->parent)
		_exit(2);
	alarm(p->timeout_s);
	ret = cpu >= 0 ? bench_pin_cpu(cpu) : 0;
	if (ret == 0)
		ret = fn(p, arg);
	/* Before closing anything: the parent learns of us by EOF or exit. */
	if (ret < 0)
		snprintf(g_report->err, sizeof(g_report->err), "%.*s",
			 (int)sizeof(g_report->err) - 1,
			 bench_err[0] ? bench_err : "failed");
	if (cleanup)
		cleanup(arg);
	close(p->sync_fd);
	_exit(ret < 0 ? 1 : 0);
}

int bench_peer_start(struct bench_peer *p, unsigned int timeout_s, int cpu,
		     bench_child_fn fn, void (*cleanup)(void *arg), void *arg)
{
	int syncp[2];
	int ret;

	p->pid = -1;
	p->sync_fd = -1;
	p->timeout_s = timeout_s;
	if (pipe2(syncp, O_CLOEXEC) < 0)
		return bench_fail(-errno, "pipe2");

	memset(g_report, 0, sizeof(*g_report));
	bench_timed_out = 0;
	bench_child_exited = 0;
	fflush(stdout);
	fflush(stderr);
	p->parent = getpid();
	/* Longer than the child's, so a stuck child reports itself first. */
	alarm(timeout_s + 2);
	p->pid = fork();
	if (p->pid < 0) {
		ret = -errno;
		close(syncp[0]);
		close(syncp[1]);
		return bench_fail(ret, "fork");
	}
	if (p->pid == 0) {
		close(syncp[0]);
		p->sync_fd = syncp[1];
		child_run(p, cpu, fn, cleanup, arg);
	}
	close(syncp[1]);
	p->sync_fd = syncp[0];
	return 0;
}

int bench_peer_notify(struct bench_peer *p)
{
	return bench_write_full(p->sync_fd, "k", 1, "sync pipe");
}

int bench_peer_wait(struct bench_peer *p, const char *what)
{
	char b;

	return bench_read_full(p->sync_fd, &b, 1, what);
}

int bench_peer_end(struct bench_peer *p, int ret)
{
	bool killed = false;
	int status = 0;

	if (p->pid > 0) {
		if (ret < 0 && ret != -EPIPE) {
			kill(p->pid, SIGKILL);
			killed = true;
		}
		while (waitpid(p->pid, &status, 0) < 0) {
			if (errno != EINTR) {
				ret = bench_fail(-errno, "waitpid");
				break;
			}
			if (bench_timed_out && !killed) {
				kill(p->pid, SIGKILL);
				killed = true;
				if (!ret)
					ret = bench_fail(-ETIMEDOUT,
							 "child still running "
							 "after %u s, killed",
							 p->timeout_s + 2);
			}
		}
		if ((ret == 0 || ret == -EPIPE) &&
		    !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			if (g_report->err[0])
				snprintf(bench_err, sizeof(bench_err),
					 "child: %s", g_report->err);
			else if (WIFSIGNALED(status))
				snprintf(bench_err, sizeof(bench_err),
					 "child killed by signal %d (%s)",
					 WTERMSIG(status),
					 strsignal(WTERMSIG(status)));
			else
				snprintf(bench_err, sizeof(bench_err),
					 "child exited with status %d",
					 WEXITSTATUS(status));
			ret = -ECHILD;
		}
		p->pid = -1;
	}
	alarm(0);
	if (p->sync_fd >= 0)
		close(p->sync_fd);
	p->sync_fd = -1;
	return ret;
}
