/* SPDX-License-Identifier: MIT */
/*
 * test_broker.c - zbusd as its clients see it: channels by name between
 * processes, the registry (list, stat, delete), statistics (publishers and
 * subscribers with their pids, uids, counts and rates), permissions across
 * users, quotas, the wire protocol spoken raw (hello, garbage, truncated
 * and oversized records, unasked fds, clients that do not read or that
 * flood), and the broker's lifecycle (stale sockets, SIGTERM, autostart).
 *
 * Each test gets a private directory under /tmp and, in the "broker"
 * suite, its own zbusd in the foreground (stderr to DIR/zbusd.log),
 * killed with the test's process if it dies (PR_SET_PDEATHSIG). The
 * "autostart" suite has no broker of its own: the library starts one in
 * the background, which the test finds by its command line and stops,
 * and the fixture kills any left behind.
 *
 * Peers are forked processes; they report by exit status (a step number)
 * and never use Criterion assertions. Tests that switch users run as
 * root and are skipped, loudly, otherwise.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../broker/requests.h"
#include "../broker/server.h"
#include "channel.h"
#include "conn.h"
#include "ctl.h"
#include "fdpass.h"
#include "testutil.h"
#include "zbus/zbus.h"
#include "zbus_ctl.pb-c.h"

#define NOBODY 65534 /* the unprivileged uid and gid of the tests */

static char tmp_dir[64];
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char log_path[128];
static char zbusd_path[PATH_MAX];
static pid_t broker_pid = -1;
static uint8_t rec_buf[ZB_CTL_MAX_RECORD]; /* one received record */

/* --- small helpers ---------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void path_in(char *buf, size_t len, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", tmp_dir, name);

	cr_assert(n > 0 && (size_t)n < len, "path too long: %s/%s", tmp_dir,
		  name);
}

/* Print the last lines of @path (a broker's log) to stderr. */
static void dump_file(const char *path)
{
	enum { KEEP = 40 };
	static char ring[KEEP][200];
	char line[200];
	FILE *f = fopen(path, "r");
	long n = 0;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		memcpy(ring[n++ % KEEP], line, sizeof(line));
	fclose(f);
	fprintf(stderr, "---- %s%s ----\n", path,
		n > KEEP ? " (last lines)" : "");
	for (long i = n > KEEP ? n - KEEP : 0; i < n; i++)
		fputs(ring[i % KEEP], stderr);
	fprintf(stderr, "---- end of %s ----\n", path);
}

static void dump_log(void)
{
	if (log_path[0])
		dump_file(log_path);
}

/* cr_assert() that prints the broker's log first when it fails. */
#define bk_assert(cond, ...)                                                  \
	do {                                                                  \
		if (!(cond))                                                  \
			dump_log();                                           \
		cr_assert(cond, __VA_ARGS__);                                 \
	} while (0)

static int file_contains(const char *path, const char *needle)
{
	char line[1024];
	FILE *f = fopen(path, "r");
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/* Is @n written in @s as a number of its own (not inside another)? */
static int has_number(const char *s, unsigned n)
{
	char want[16];
	size_t len = (size_t)snprintf(want, sizeof(want), "%u", n);

	for (const char *p = s; (p = strstr(p, want)); p++)
		if ((p == s || p[-1] < '0' || p[-1] > '9') &&
		    (p[len] < '0' || p[len] > '9'))
			return 1;
	return 0;
}

/* 1 when @fd is ready for @events within @ms, else 0. */
static int wait_fd(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	return r > 0;
}

static int fd_count_of(pid_t pid)
{
	return tu_count_fds_of(pid);
}

/* Poll @pid's fd count until it is @want, for up to @ms; the last count. */
static int settle_fds(pid_t pid, int want, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	int n;

	while ((n = fd_count_of(pid)) != want && now_ms() < end)
		sleep_ms(5);
	return n;
}

static long rss_kib_of(pid_t pid)
{
	char p[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	f = fopen(p, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* --- brokers ---------------------------------------------------------- */

/* Child side: become uid/gid NOBODY with exactly @groups. */
static int drop_to_nobody(const gid_t *groups, size_t n)
{
	if (setgroups(n, groups) < 0 || setgid(NOBODY) < 0 ||
	    setuid(NOBODY) < 0)
		return -1;
	if (getuid() != NOBODY || geteuid() != NOBODY || getgid() != NOBODY)
		return -1;
	return 0;
}

/*
 * Fork and exec "zbusd --socket @sock" in the foreground, stdout and
 * stderr appended to @logfile. It dies with this process. With @nofile,
 * it runs as uid NOBODY with RLIMIT_NOFILE @nofile (as root only).
 */
static pid_t spawn_zbusd(const char *sock, const char *logfile,
			 unsigned nofile)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		sigset_t none;
		int fd;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close_range(3, ~0u, 0); /* none of the runner's fds */
		fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			  0644);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		if (nofile && (setrlimit(RLIMIT_NOFILE,
					 &(struct rlimit){ nofile, nofile }) ||
			       drop_to_nobody(NULL, 0)))
			_exit(125);
		execl(zbusd_path, "zbusd", "--socket", sock, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/*
 * Wait until something answers on @sock, for up to @ms, while @pid lives.
 * Return: 0; -ECHILD when @pid exited (reaped, *@status set); -ETIMEDOUT.
 */
static int wait_answering(const char *sock, pid_t pid, int ms, int *status)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	for (;;) {
		int fd = zb_ctl_connect(sock);

		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (waitpid(pid, status, WNOHANG) == pid)
			return -ECHILD;
		if (now_ms() >= end)
			return -ETIMEDOUT;
		sleep_ms(2);
	}
}

/* Start the test's broker on sock_path, logging to DIR/@logname. */
static void start_broker(const char *logname)
{
	int st = 0, r;

	path_in(log_path, sizeof(log_path), logname);
	broker_pid = spawn_zbusd(sock_path, log_path, 0);
	r = wait_answering(sock_path, broker_pid, 5000, &st);
	if (r == -ECHILD)
		broker_pid = -1;
	bk_assert(r == 0, "zbusd did not come up on %s: %s (status %d)",
		  sock_path, strerror(-r), st);
}

/* SIGTERM the test's broker and reap it. Return: its exit status, -1 on
 * a signal or a timeout (it is then killed). */
static int stop_broker(void)
{
	pid_t pid = broker_pid;

	if (pid <= 0)
		return 0;
	broker_pid = -1;
	kill(pid, SIGTERM);
	return tu_wait_child(pid, 5);
}

/*
 * Pids of live zbusd processes (argv[0] ending in "zbusd") one of whose
 * arguments contains @needle. Zombies have no command line: not counted.
 */
static int find_zbusd(const char *needle, pid_t *pids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char p[300], cmd[4096];
		const char *base;
		ssize_t len;
		int fd, match = 0;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "/proc/%s/cmdline", e->d_name);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (len <= 0)
			continue;
		cmd[len] = 0;
		base = strrchr(cmd, '/');
		base = base ? base + 1 : cmd;
		if (strcmp(base, "zbusd"))
			continue;
		for (ssize_t i = 0; i < len; i += (ssize_t)strlen(cmd + i) + 1)
			match |= strstr(cmd + i, needle) != NULL;
		if (match && n < max)
			pids[n++] = (pid_t)atoi(e->d_name);
		else if (match)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * Signal a process that is not our child and wait, up to @ms, until it
 * has exited (through a pidfd: no pid reuse, no reaping needed).
 * Return: 0 when it is gone; -ETIMEDOUT; -errno.
 */
static int kill_foreign(pid_t pid, int sig, int ms)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int r = 0;

	if (pfd < 0)
		return errno == ESRCH ? 0 : -errno;
	if (syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0) < 0 &&
	    errno != ESRCH)
		r = -errno;
	else if (!wait_fd(pfd, POLLIN, ms))
		r = -ETIMEDOUT;
	close(pfd);
	return r;
}

/* Kill every zbusd whose command line names our directory. */
static int kill_strays(void)
{
	pid_t pids[16];
	int n;

	if (!tmp_dir[0])
		return 0;
	n = find_zbusd(tmp_dir, pids, 16);
	for (int i = 0; i < n && i < 16; i++)
		kill_foreign(pids[i], SIGKILL, 2000);
	return n;
}

static void remove_dir(void)
{
	DIR *d;
	struct dirent *e;

	if (!tmp_dir[0] || !(d = opendir(tmp_dir)))
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(tmp_dir);
	tmp_dir[0] = 0;
}

/* --- fixtures --------------------------------------------------------- */

static void setup_dir(void)
{
	const char *build = getenv("ZBUS_BUILD_DIR");

	tu_leak_begin();
	log_path[0] = 0;
	broker_pid = -1;
	cr_assert(build && *build,
		  "ZBUS_BUILD_DIR is not set: run through ctest, or set it to "
		  "the build directory");
	snprintf(zbusd_path, sizeof(zbusd_path), "%s/broker/zbusd", build);
	cr_assert_eq(access(zbusd_path, X_OK), 0, "no broker at %s: %s",
		     zbusd_path, strerror(errno));
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/zbus-broker-XXXXXX");
	if (!mkdtemp(tmp_dir)) {
		int e = errno;

		tmp_dir[0] = 0;
		cr_assert_fail("mkdtemp: %s", strerror(e));
	}
	/* Others must reach the socket (the tests that switch users). */
	chmod(tmp_dir, 0755);
	path_in(sock_path, sizeof(sock_path), "zbusd.sock");
	/* No test starts a broker by accident (the autostart ones say so). */
	setenv("ZBUS_NO_AUTOSTART", "1", 1);
	unsetenv("ZBUS_SOCKET");
	unsetenv("ZBUS_BROKER");
}

static void setup(void)
{
	setup_dir();
	start_broker("zbusd.log");
}

/* Stop every broker of the test and remove its directory. Return: 1 if
 * the test's own broker was still running (then *@status is its exit
 * status on SIGTERM, *@sock_left whether its socket file stayed). */
static int cleanup(int *status, int *sock_left)
{
	int had = broker_pid > 0;

	*status = stop_broker();
	*sock_left = had && access(sock_path, F_OK) == 0;
	kill_strays();
	if (had && (*status != 0 || *sock_left))
		dump_log();
	remove_dir();
	return had;
}

static void teardown(void)
{
	int st, sock_left, had = cleanup(&st, &sock_left);

	cr_assert(!had || st == 0, "zbusd exited with %d on SIGTERM", st);
	cr_assert(!sock_left, "zbusd left its socket behind on SIGTERM");
	tu_leak_end();
}

TestSuite(broker, .init = setup, .fini = teardown, .timeout = 30);

static void setup_no_broker(void)
{
	setup_dir();
}

TestSuite(autostart, .init = setup_no_broker, .fini = teardown,
	  .timeout = 30);

/* --- clients ---------------------------------------------------------- */

static int conn_open_at(const char *path, struct zbus_conn **c)
{
	struct zbus_conn_opts o = { .socket_path = path,
				    .flags = ZBUS_CONN_NO_AUTOSTART };

	return zbus_conn_open(&o, c);
}

static struct zbus_conn *conn(void)
{
	struct zbus_conn *c;
	int r = conn_open_at(sock_path, &c);

	bk_assert(r == 0, "connect: %s", zbus_strerror(r));
	return c;
}

static struct zbus_channel *create(struct zbus_conn *c, const char *name,
				   uint32_t mode)
{
	struct zbus_channel_params p = { .geometry = { .max_msg_size = 256,
						       .ring_capacity = 64 },
					 .mode = mode };
	struct zbus_channel *ch;
	int r = zbus_conn_create(c, name, &p, &ch);

	bk_assert(r == 0, "create %s: %s (%s)", name, zbus_strerror(r),
		  zbus_conn_error(c));
	return ch;
}

static struct zbus_pub *pub_of(struct zbus_channel *ch)
{
	struct zbus_pub_opts o = { .timeout_ms = 0 };
	struct zbus_pub *p;
	int r = zbus_pub_new(ch, &o, &p);

	cr_assert_eq(r, 0, "publisher: %s", zbus_strerror(r));
	return p;
}

static struct zbus_sub *sub_of(struct zbus_channel *ch)
{
	struct zbus_sub_opts o = { .policy = ZBUS_RELIABLE };
	struct zbus_sub *s;
	int r = zbus_sub_new(ch, &o, &s);

	cr_assert_eq(r, 0, "subscribe: %s", zbus_strerror(r));
	return s;
}

static void send_filled(struct zbus_pub *p, size_t len, uint64_t idx)
{
	uint8_t buf[256];
	int r;

	tu_fill(buf, len, zbus_pub_id(p), idx);
	r = zbus_pub_send(p, buf, len);
	cr_assert_eq(r, 0, "send %zu: %s", len, zbus_strerror(r));
}

static void recv_filled(struct zbus_sub *s, size_t len, uint64_t idx)
{
	uint8_t buf[256];
	uint32_t prod;
	uint64_t got;
	int r = zbus_sub_recv(s, buf, sizeof(buf), NULL, 1000);

	cr_assert_eq(r, (int)len, "recv: %d (%s)", r, zbus_strerror(r));
	cr_assert_eq(tu_check(buf, len, &prod, &got), 0, "corrupt payload");
	cr_assert_eq(got, idx, "message %llu instead of %llu",
		     (unsigned long long)got, (unsigned long long)idx);
}

/* --- forked peers ----------------------------------------------------- */

/* Run @fn in a child that dies with us; it exits with what @fn returns. */
static pid_t spawn(int (*fn)(void *), void *arg)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		alarm(25);
		_exit(fn(arg));
	}
	return pid;
}

static void check_child(int st, const char *who)
{
	bk_assert(st == 0, "%s failed at step %d (-1: killed or hung)", who,
		  st);
}

static void reap_ok(pid_t pid, const char *who)
{
	check_child(tu_wait_child(pid, 25), who);
}

static int put_byte(int fd)
{
	char c = 'x';

	return write(fd, &c, 1) == 1 ? 0 : -1;
}

/* Child side: 0 once a byte arrives, -1 at EOF or on error. */
static int get_byte(int fd)
{
	char c;
	ssize_t n;

	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

/* A failed step of a child: say which, exit with its number. */
#define STEP(n, cond)                                                         \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "child %d: step %d failed: %s\n",     \
				(int)getpid(), n, #cond);                     \
			return n;                                             \
		}                                                             \
	} while (0)

/* Skip, loudly (the reason is printed even without --verbose). A skipped
 * test gets no .fini: clean up first. */
static void skip_unless_root(void)
{
	int st, sock_left;

	if (geteuid() == 0)
		return;
	cleanup(&st, &sock_left);
	fprintf(stderr, "SKIPPED %s: needs root to switch to uid %d; this "
		"check across users is NOT run\n",
		criterion_current_test->name, NOBODY);
	cr_skip_test("needs root to switch to uid %d: this test checks "
		     "permissions across users and is NOT run", NOBODY);
}

/* --- the raw protocol ------------------------------------------------- */

static void req_hello(Zbusctl__Request *req, Zbusctl__Hello *h,
		      uint64_t id, uint32_t version)
{
	zbusctl__request__init(req);
	zbusctl__hello__init(h);
	h->version = version;
	h->client_name = "test_broker";
	req->id = id;
	req->body_case = ZBUSCTL__REQUEST__BODY_HELLO;
	req->hello = h;
}

static void req_list(Zbusctl__Request *req, Zbusctl__List *l, uint64_t id)
{
	zbusctl__request__init(req);
	zbusctl__list__init(l);
	req->id = id;
	req->body_case = ZBUSCTL__REQUEST__BODY_LIST;
	req->list = l;
}

/* Send @req (with @fd if >= 0), waiting up to @ms for room. */
static int raw_send(int s, const Zbusctl__Request *req, int fd, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	struct zb_fds fds = { .n = fd >= 0, .fd = { fd, -1 } };
	int r;

	while ((r = zb_ctl_send(s, &req->base, &fds)) == -EAGAIN &&
	       now_ms() < end)
		wait_fd(s, POLLOUT, 10);
	return r;
}

/*
 * One reply within @ms; fds that come with it are closed.
 * Return: 1 and *@out (NULL if it does not parse); 0 when the broker
 * closed the connection; -ETIMEDOUT; -errno.
 */
static int raw_recv(int s, int ms, Zbusctl__Reply **out)
{
	ssize_t n;

	*out = NULL;
	if (!wait_fd(s, POLLIN, ms))
		return -ETIMEDOUT;
	n = zb_fdpass_recv(s, rec_buf, sizeof(rec_buf), NULL);
	if (n <= 0)
		return (int)n;
	*out = zbusctl__reply__unpack(NULL, (size_t)n, rec_buf);
	return 1;
}

/* Child side: send @req, receive its reply. Return: as raw_recv(). */
static int raw_exchange(int s, const Zbusctl__Request *req,
			Zbusctl__Reply **out)
{
	int r = raw_send(s, req, -1, 5000);

	*out = NULL;
	return r < 0 ? r : raw_recv(s, 5000, out);
}

static Zbusctl__Reply *raw_call(int s, const Zbusctl__Request *req)
{
	Zbusctl__Reply *rep;
	int r = raw_exchange(s, req, &rep);

	bk_assert(r == 1, "no reply: %s",
		  r ? strerror(-r) : "connection closed");
	cr_assert_not_null(rep, "the reply does not parse");
	return rep;
}

/* A raw connection that said hello. */
static int raw_open(void)
{
	Zbusctl__Request req;
	Zbusctl__Hello h;
	Zbusctl__Reply *rep;
	int s = zb_ctl_connect(sock_path);

	bk_assert(s >= 0, "connect: %s", strerror(-s));
	req_hello(&req, &h, 1, ZB_CTL_VERSION);
	rep = raw_call(s, &req);
	cr_assert_eq(rep->status, 0, "hello: %d %s", rep->status,
		     rep->message);
	zbusctl__reply__free_unpacked(rep, NULL);
	return s;
}

/* ====================================================================== */
/* Channels between processes                                             */
/* ====================================================================== */

#define N_TELEMETRY 1000

struct telemetry {
	int created[2]; /* A -> B: "telemetry" exists */
	int ready[2];   /* B -> A: subscribed */
};

static size_t telemetry_size(uint64_t i)
{
	return 20 + (size_t)(i * 37 % 200);
}

static int telemetry_publisher(void *arg)
{
	struct telemetry *t = arg;
	struct zbus_channel_params p = { .geometry = { .max_msg_size = 256,
						       .ring_capacity = 64 },
					 .mode = 0644 };
	struct zbus_pub_opts po = { .timeout_ms = 5000 };
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_pub *pub;

	close(t->created[0]);
	close(t->ready[1]);
	STEP(1, conn_open_at(sock_path, &c) == 0);
	STEP(2, zbus_conn_create(c, "telemetry", &p, &ch) == 0);
	STEP(3, put_byte(t->created[1]) == 0);
	STEP(4, get_byte(t->ready[0]) == 0);
	STEP(5, zbus_pub_new(ch, &po, &pub) == 0);
	for (uint64_t i = 0; i < N_TELEMETRY; i++) {
		struct zbus_loan l;
		size_t len = telemetry_size(i);

		STEP(6, zbus_pub_loan(pub, len, &l) == 0);
		tu_fill(l.data, len, 0xA, i);
		STEP(7, zbus_pub_publish(pub, &l, len) == 0);
	}
	zbus_pub_free(pub);
	zbus_channel_free(ch);
	zbus_conn_free(c);
	return 0;
}

static int telemetry_subscriber(void *arg)
{
	struct telemetry *t = arg;
	struct zbus_sub_opts so = { .policy = ZBUS_RELIABLE };
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_sub *sub;
	uint64_t last_seq = 0;
	uint8_t buf[256];

	close(t->created[1]);
	close(t->ready[0]);
	STEP(11, get_byte(t->created[0]) == 0);
	STEP(12, conn_open_at(sock_path, &c) == 0);
	STEP(13, zbus_conn_open_channel(c, "telemetry",
					ZBUS_ACCESS_SUBSCRIBE, &ch) == 0);
	STEP(14, zbus_sub_new(ch, &so, &sub) == 0);
	STEP(15, put_byte(t->ready[1]) == 0);
	for (uint64_t i = 0; i < N_TELEMETRY; i++) {
		struct zbus_msg info;
		uint32_t prod;
		uint64_t idx;
		int n = zbus_sub_recv(sub, buf, sizeof(buf), &info, 5000);

		STEP(16, n == (int)telemetry_size(i));
		STEP(17, tu_check(buf, (size_t)n, &prod, &idx) == 0);
		STEP(18, prod == 0xA && idx == i); /* all, in order */
		STEP(19, i == 0 || info.seq > last_seq);
		last_seq = info.seq;
	}
	STEP(20, zbus_sub_recv(sub, buf, sizeof(buf), NULL, 0) == -EAGAIN);
	zbus_sub_free(sub);
	zbus_channel_free(ch);
	zbus_conn_free(c);
	return 0;
}

Test(broker, two_clients_find_a_channel_by_name_and_exchange_messages)
{
	struct telemetry t;
	struct zbus_channel_stat st;
	struct zbus_conn *c;
	pid_t a, b;
	int r;

	cr_assert_eq(pipe2(t.created, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(t.ready, O_CLOEXEC), 0);
	b = spawn(telemetry_subscriber, &t);
	a = spawn(telemetry_publisher, &t);
	for (int i = 0; i < 2; i++) {
		close(t.created[i]);
		close(t.ready[i]);
	}
	reap_ok(a, "publisher A");
	reap_ok(b, "subscriber B");

	c = conn();
	r = zbus_conn_stat(c, "telemetry", &st);
	bk_assert(r == 0, "stat: %s", zbus_strerror(r));
	cr_assert_eq(st.published, N_TELEMETRY);
	cr_assert_eq(st.mode, 0644);
	cr_assert_eq(st.publishers, 0, "A freed its publisher");
	cr_assert_eq(st.subscribers, 0, "B freed its subscription");
	zbus_conn_free(c);
}

Test(broker, create_existing_is_eexist_and_open_existing_flag_maps_it)
{
	struct zbus_channel_params again = { .mode = 0644,
					     .flags =
						     ZBUS_CREATE_OPEN_EXISTING };
	struct zbus_conn *c = conn();
	struct zbus_channel *ch = create(c, "dup", 0644), *ch2 = NULL;
	struct zbus_pub *p;
	struct zbus_sub *s;
	const char *err;
	int r;

	cr_assert_str_empty(zbus_conn_error(c), "no error after a success");
	r = zbus_conn_create(c, "dup", NULL, &ch2);
	err = zbus_conn_error(c);
	cr_assert_eq(r, -EEXIST, "create twice: %s", zbus_strerror(r));
	cr_assert_null(ch2);
	cr_assert(strstr(err, "'dup'") && strstr(err, "exists"),
		  "unreadable error: \"%s\"", err);

	/* The flag maps the very channel that exists. */
	r = zbus_conn_create(c, "dup", &again, &ch2);
	cr_assert_eq(r, 0, "open existing: %s (%s)", zbus_strerror(r),
		     zbus_conn_error(c));
	cr_assert_str_empty(zbus_conn_error(c));
	s = sub_of(ch2);
	p = pub_of(ch);
	send_filled(p, 64, 7);
	recv_filled(s, 64, 7);
	zbus_pub_free(p);
	zbus_sub_free(s);
	zbus_channel_free(ch2);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

Test(broker, open_missing_is_enoent)
{
	struct zbus_conn *c = conn();
	struct zbus_channel *ch = NULL;
	struct zbus_channel_stat st;
	const char *err;
	int r;

	r = zbus_conn_open_channel(c, "nowhere", ZBUS_ACCESS_SUBSCRIBE, &ch);
	err = zbus_conn_error(c);
	cr_assert_eq(r, -ENOENT, "open missing: %s", zbus_strerror(r));
	cr_assert_null(ch);
	cr_assert(strstr(err, "'nowhere'") && strlen(err) > 12,
		  "unreadable error: \"%s\"", err);
	r = zbus_conn_stat(c, "nowhere", &st);
	cr_assert_eq(r, -ENOENT, "stat missing: %s", zbus_strerror(r));
	cr_assert(strstr(zbus_conn_error(c), "'nowhere'"), "\"%s\"",
		  zbus_conn_error(c));
	r = zbus_conn_delete(c, "nowhere");
	cr_assert_eq(r, -ENOENT, "delete missing: %s", zbus_strerror(r));
	cr_assert(strstr(zbus_conn_error(c), "'nowhere'"), "\"%s\"",
		  zbus_conn_error(c));
	zbus_conn_free(c);
}

/* ====================================================================== */
/* The registry                                                           */
/* ====================================================================== */

struct geo_case {
	const char *name;
	struct zbus_channel_params p;
	/* as the broker must resolve it */
	uint32_t max_msg, ring, subs, mode, policy;
	uint64_t arena;
};

static const struct zbus_channel_stat *
stat_named(const struct zbus_channel_stat *v, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return &v[i];
	return NULL;
}

static void check_stat(const struct zbus_channel_stat *st,
		       const struct geo_case *g,
		       const struct zbus_channel_info *info)
{
	cr_assert_eq(st->max_msg_size, g->max_msg, "%s", g->name);
	cr_assert_eq(st->ring_capacity, g->ring, "%s: ring %u", g->name,
		     st->ring_capacity);
	cr_assert_eq(st->max_subscribers, g->subs, "%s", g->name);
	cr_assert_eq(st->arena_bytes, g->arena, "%s: arena %llu", g->name,
		     (unsigned long long)st->arena_bytes);
	cr_assert_eq(st->mode, g->mode, "%s: mode %o", g->name, st->mode);
	cr_assert_eq(st->default_policy, g->policy, "%s", g->name);
	cr_assert_eq(st->owner_uid, geteuid(), "%s", g->name);
	cr_assert_eq(st->owner_gid, getegid(), "%s", g->name);
	/* What the broker says matches the mapping it handed out. */
	cr_assert_eq(st->segment_bytes, info->segment_bytes, "%s", g->name);
	cr_assert_eq(st->arena_bytes, info->arena_bytes, "%s", g->name);
	cr_assert_eq(st->ring_capacity, info->ring_capacity, "%s", g->name);
	cr_assert_eq(st->max_msg_size, info->max_msg_size, "%s", g->name);
	cr_assert_eq(st->max_subscribers, info->max_subscribers, "%s",
		     g->name);
}

Test(broker, list_and_stat_report_channels)
{
	static const struct geo_case geo[] = {
		{ "geo-small",
		  { .geometry = { .max_msg_size = 100, .ring_capacity = 20 } },
		  100, 32, 64, 0600, ZBUS_RELIABLE, 8192 },
		{ "geo-mid",
		  { .geometry = { .max_msg_size = 3000,
				  .ring_capacity = 100,
				  .max_subscribers = 8,
				  .arena_bytes = 10000 },
		    .mode = 0644,
		    .default_policy = ZBUS_LOSSY },
		  3000, 128, 8, 0644, ZBUS_LOSSY, 16384 },
		{ "geo-big",
		  { .geometry = { .max_subscribers = 256 }, .mode = 0660 },
		  65536, 1024, 256, 0660, ZBUS_RELIABLE, 262144 },
	};
	struct zbus_channel_info info[3];
	struct zbus_channel *ch[3];
	struct zbus_channel_stat *v, st;
	struct zbus_conn *c = conn();
	struct zbus_pub *p;
	struct zbus_sub *s;
	int n, r;

	for (int i = 0; i < 3; i++) {
		struct stat fst;

		r = zbus_conn_create(c, geo[i].name, &geo[i].p, &ch[i]);
		bk_assert(r == 0, "create %s: %s (%s)", geo[i].name,
			  zbus_strerror(r), zbus_conn_error(c));
		zbus_channel_info(ch[i], &info[i]);
		cr_assert_eq(fstat(zbus_channel_fd(ch[i]), &fst), 0);
		cr_assert_eq((uint64_t)fst.st_size, info[i].segment_bytes);
	}

	n = zbus_conn_list(c, &v);
	bk_assert(n == 3, "list: %d (%s)", n, zbus_strerror(n));
	for (int i = 0; i < 3; i++) {
		const struct zbus_channel_stat *e =
			stat_named(v, n, geo[i].name);

		cr_assert_not_null(e, "%s is not listed", geo[i].name);
		check_stat(e, &geo[i], &info[i]);
		cr_assert_eq(e->published, 0);
		cr_assert_eq(e->publishers, 0);
		cr_assert_eq(e->subscribers, 0);
	}
	free(v);

	/* Live numbers: one publisher and one subscriber on geo-mid. */
	p = pub_of(ch[1]);
	s = sub_of(ch[1]);
	for (uint64_t i = 0; i < 5; i++)
		send_filled(p, 100, i);
	r = zbus_conn_stat(c, "geo-mid", &st);
	bk_assert(r == 0, "stat: %s", zbus_strerror(r));
	check_stat(&st, &geo[1], &info[1]);
	cr_assert_str_eq(st.name, "geo-mid");
	cr_assert_eq(st.publishers, 1);
	cr_assert_eq(st.subscribers, 1);
	cr_assert_eq(st.published, 5);
	cr_assert_eq(st.depth, 5, "the reliable subscriber holds 5");
	for (uint64_t i = 0; i < 5; i++)
		recv_filled(s, 100, i);
	r = zbus_conn_stat(c, "geo-mid", &st);
	cr_assert_eq(r, 0);
	cr_assert_eq(st.depth, 0);
	zbus_pub_free(p);
	zbus_sub_free(s);
	r = zbus_conn_stat(c, "geo-mid", &st);
	cr_assert_eq(r, 0);
	cr_assert_eq(st.publishers, 0);
	cr_assert_eq(st.subscribers, 0);
	cr_assert_eq(st.published, 5);

	for (int i = 0; i < 3; i++)
		zbus_channel_free(ch[i]);
	zbus_conn_free(c);
}

Test(broker, delete_removes_from_registry_but_mappings_live_on)
{
	struct zbus_conn *c = conn(), *c2 = conn();
	struct zbus_channel *ch = create(c, "ephemeral", 0644), *ch2, *ch3;
	struct zbus_channel_stat st, *v;
	struct zbus_pub *p, *p3;
	struct zbus_sub *s;
	int r;

	r = zbus_conn_open_channel(c2, "ephemeral", ZBUS_ACCESS_SUBSCRIBE,
				   &ch2);
	bk_assert(r == 0, "open: %s", zbus_strerror(r));
	s = sub_of(ch2);
	p = pub_of(ch);

	r = zbus_conn_delete(c, "ephemeral");
	bk_assert(r == 0, "delete: %s (%s)", zbus_strerror(r),
		  zbus_conn_error(c));
	cr_assert_str_empty(zbus_conn_error(c));
	r = zbus_conn_open_channel(c2, "ephemeral", ZBUS_ACCESS_SUBSCRIBE,
				   &ch3);
	cr_assert_eq(r, -ENOENT, "open after delete: %s", zbus_strerror(r));
	cr_assert_eq(zbus_conn_stat(c2, "ephemeral", &st), -ENOENT);
	cr_assert_eq(zbus_conn_delete(c, "ephemeral"), -ENOENT);
	r = zbus_conn_list(c, &v);
	cr_assert_eq(r, 0, "list after delete: %d", r);
	free(v);

	/* Both mappings outlive the name. */
	for (uint64_t i = 0; i < 100; i++) {
		send_filled(p, 24 + i, i);
		recv_filled(s, 24 + i, i);
	}

	/* The name is free again, for a new channel the old mapping does
	 * not see. */
	ch3 = create(c, "ephemeral", 0644);
	p3 = pub_of(ch3);
	send_filled(p3, 64, 1);
	cr_assert_eq(zbus_sub_recv(s, NULL, 0, NULL, 0), -EAGAIN,
		     "the old mapping saw the new channel's message");
	r = zbus_conn_stat(c, "ephemeral", &st);
	cr_assert_eq(r, 0);
	cr_assert_eq(st.published, 1);

	zbus_pub_free(p3);
	zbus_pub_free(p);
	zbus_sub_free(s);
	zbus_channel_free(ch3);
	zbus_channel_free(ch2);
	zbus_channel_free(ch);
	zbus_conn_free(c2);
	zbus_conn_free(c);
}

/* ====================================================================== */
/* Statistics: who publishes and subscribes, how much, how fast           */
/* ====================================================================== */

#define TRAFFIC "traffic"

/* A child of the traffic test: commands come in as bytes, reports go out
 * as a byte or a count. */
struct traffic_peer {
	int cmd[2];
	int report[2];
	uint64_t count;  /* publisher: messages to send; subscriber: to read */
	uint32_t policy; /* subscriber */
	int as_nobody;   /* publisher */
	pid_t pid;
};

static int report_count(struct traffic_peer *t, uint64_t n)
{
	return write(t->report[1], &n, sizeof(n)) == sizeof(n) ? 0 : -1;
}

/* Child side: @t->count messages, then a stream until told to stop. */
static int traffic_publisher(void *arg)
{
	struct zbus_pub_opts po = { .timeout_ms = 5000 };
	struct traffic_peer *t = arg;
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_pub *p;

	close(t->cmd[1]);
	close(t->report[0]);
	STEP(1, !t->as_nobody || drop_to_nobody(NULL, 0) == 0);
	STEP(2, conn_open_at(sock_path, &c) == 0);
	STEP(3, zbus_conn_open_channel(c, TRAFFIC, ZBUS_ACCESS_PUBLISH,
				       &ch) == 0);
	STEP(4, zbus_pub_new(ch, &po, &p) == 0);
	STEP(5, zbus_conn_register_pub(c, TRAFFIC, p) == 0);
	STEP(6, put_byte(t->report[1]) == 0);
	STEP(7, get_byte(t->cmd[0]) == 0);
	for (uint64_t i = 0; i < t->count; i++)
		STEP(8, zbus_pub_send(p, "counted", 8) == 0);
	STEP(9, put_byte(t->report[1]) == 0);
	STEP(10, get_byte(t->cmd[0]) == 0);
	while (!wait_fd(t->cmd[0], POLLIN, 2))
		STEP(11, zbus_pub_send(p, "streamed", 9) == 0);
	zbus_pub_free(p);
	zbus_channel_free(ch);
	zbus_conn_free(c);
	return 0;
}

/*
 * Child side: a reliable subscriber reads @t->count messages as they
 * come; a lossy one reads nothing until told, and is overrun meanwhile.
 * Either reports its missed count, then takes the stream off the ring
 * until told to stop.
 */
static int traffic_subscriber(void *arg)
{
	struct traffic_peer *t = arg;
	struct zbus_sub_opts so = { .policy = t->policy };
	int lossy = t->policy == ZBUS_LOSSY;
	struct zbus_sub_stats st;
	struct zbus_channel *ch;
	struct zbus_msg m[16];
	struct zbus_conn *c;
	struct zbus_sub *s;
	uint64_t got = 0;
	int n;

	close(t->cmd[1]);
	close(t->report[0]);
	STEP(1, conn_open_at(sock_path, &c) == 0);
	STEP(2, zbus_conn_open_channel(c, TRAFFIC, ZBUS_ACCESS_SUBSCRIBE,
				       &ch) == 0);
	STEP(3, zbus_sub_new(ch, &so, &s) == 0);
	STEP(4, zbus_conn_register_sub(c, TRAFFIC, s) == 0);
	STEP(5, put_byte(t->report[1]) == 0);
	STEP(6, !lossy || get_byte(t->cmd[0]) == 0);
	while (lossy || got < t->count) {
		n = zbus_sub_recv_batch(s, m, 16, lossy ? 0 : 5000);
		if (lossy && n == -EAGAIN)
			break;
		STEP(7, n > 0);
		got += (uint64_t)n;
		zbus_sub_release(s); /* -ESTALE: overrun while held, counted */
	}
	STEP(8, zbus_sub_stats(s, &st) == 0 && report_count(t, st.missed) == 0);
	while (!wait_fd(t->cmd[0], POLLIN, 0)) {
		n = zbus_sub_recv_batch(s, m, 16, 20);
		STEP(9, n > 0 || n == -ETIMEDOUT);
		if (n > 0)
			zbus_sub_release(s);
	}
	zbus_sub_free(s);
	zbus_channel_free(ch);
	zbus_conn_free(c);
	return 0;
}

static void traffic_start(struct traffic_peer *t, int (*fn)(void *))
{
	cr_assert_eq(pipe2(t->cmd, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(t->report, O_CLOEXEC), 0);
	t->pid = spawn(fn, t);
	close(t->cmd[0]);
	close(t->report[1]);
}

static void traffic_tell(struct traffic_peer *t)
{
	cr_assert_eq(put_byte(t->cmd[1]), 0);
}

/* Parent side: @t's next report (a byte, or a count into @count). */
static void traffic_expect(struct traffic_peer *t, uint64_t *count)
{
	size_t want = count ? sizeof(*count) : 1;
	uint8_t buf[sizeof(*count)];
	int got = wait_fd(t->report[0], POLLIN, 10000) &&
		  read(t->report[0], buf, want) == (ssize_t)want;

	bk_assert(got, "child %d did not report", (int)t->pid);
	if (count)
		memcpy(count, buf, sizeof(*count));
}

static void traffic_stop(struct traffic_peer *t, const char *who)
{
	traffic_tell(t);
	reap_ok(t->pid, who);
	close(t->cmd[1]);
	close(t->report[0]);
}

static const struct zbus_pub_stat *pub_stat_of(const struct zbus_pub_stat *v,
						int n, pid_t pid)
{
	for (int i = 0; i < n; i++)
		if (v[i].pid == (uint32_t)pid)
			return &v[i];
	cr_assert_fail("no publisher of pid %d in the stat", (int)pid);
	return NULL;
}

static const struct zbus_sub_stat *sub_stat_of(const struct zbus_sub_stat *v,
						int n, pid_t pid)
{
	for (int i = 0; i < n; i++)
		if (v[i].pid == (uint32_t)pid)
			return &v[i];
	cr_assert_fail("no subscriber of pid %d in the stat", (int)pid);
	return NULL;
}

/* Every rate the traffic test looks at is above zero. */
static int traffic_rates_seen(struct zbus_conn *c, const pid_t *pids)
{
	struct zbus_channel_stat st;
	struct zbus_pub_stat *pubs;
	struct zbus_sub_stat *subs;
	int np = zbus_conn_publishers(c, TRAFFIC, &pubs);
	int ns = zbus_conn_subscribers(c, TRAFFIC, &subs);
	int seen = np == 2 && ns == 3 && zbus_conn_stat(c, TRAFFIC, &st) == 0 &&
		   st.publish_rate > 0;

	for (int i = 0; seen && i < 4; i++)
		seen = i < 2 ? pub_stat_of(pubs, np, pids[i])->rate > 0 :
			       sub_stat_of(subs, ns, pids[i])->rate > 0;
	free(pubs);
	free(subs);
	return seen;
}

Test(broker, stat_names_publishers_and_subscribers_with_counts_and_rates)
{
	struct zbus_channel_params cp = { .geometry = { .max_msg_size = 64,
						       .ring_capacity = 16 },
					  .mode = 0666 };
	struct traffic_peer pa = { .count = 100 },
			    pb = { .count = 200, .as_nobody = !geteuid() },
			    rel = { .count = 300, .policy = ZBUS_RELIABLE },
			    lossy = { .policy = ZBUS_LOSSY };
	struct zbus_sub_opts so = { .policy = ZBUS_LOSSY };
	uint32_t me = (uint32_t)geteuid(), uid_b = pb.as_nobody ? NOBODY : me;
	const struct zbus_pub_stat *ps;
	const struct zbus_sub_stat *ss;
	struct zbus_channel_stat st;
	struct zbus_pub_stat *pubs;
	struct zbus_sub_stat *subs;
	uint64_t rel_missed, lossy_missed, end;
	struct zbus_channel *ch;
	struct zbus_conn *c = conn();
	struct zbus_sub *mine;
	pid_t pids[4];
	int n, r;

	r = zbus_conn_create(c, TRAFFIC, &cp, &ch);
	bk_assert(r == 0, "create: %s", zbus_strerror(r));
	/* Ours is not registered: nobody's uid is known for it. */
	cr_assert_eq(zbus_sub_new(ch, &so, &mine), 0);
	traffic_start(&rel, traffic_subscriber);
	traffic_start(&lossy, traffic_subscriber);
	traffic_expect(&rel, NULL);
	traffic_expect(&lossy, NULL);
	traffic_start(&pa, traffic_publisher);
	traffic_start(&pb, traffic_publisher);
	traffic_expect(&pa, NULL);
	traffic_expect(&pb, NULL);
	traffic_tell(&pa);
	traffic_tell(&pb);
	traffic_expect(&pa, NULL);
	traffic_expect(&pb, NULL);
	traffic_expect(&rel, &rel_missed);
	traffic_tell(&lossy);
	traffic_expect(&lossy, &lossy_missed);
	cr_assert_eq(rel_missed, 0);
	cr_assert_gt(lossy_missed, 0, "a ring of 16 did not overrun it");

	n = zbus_conn_publishers(c, TRAFFIC, &pubs);
	bk_assert(n == 2, "publishers: %d (%s)", n, zbus_strerror(n));
	ps = pub_stat_of(pubs, n, pa.pid);
	cr_expect_eq(ps->published, 100);
	cr_expect_eq(ps->uid, me);
	cr_expect_eq(ps->flags, 0);
	ps = pub_stat_of(pubs, n, pb.pid);
	cr_expect_eq(ps->published, 200);
	cr_expect_eq(ps->uid, uid_b, "uid %u, not %u", ps->uid, uid_b);
	free(pubs);

	n = zbus_conn_subscribers(c, TRAFFIC, &subs);
	bk_assert(n == 3, "subscribers: %d (%s)", n, zbus_strerror(n));
	ss = sub_stat_of(subs, n, rel.pid);
	cr_expect_eq(ss->policy, ZBUS_RELIABLE);
	cr_expect_eq(ss->uid, me);
	cr_expect_eq(ss->missed, 0);
	cr_expect_eq(ss->lag, 0);
	ss = sub_stat_of(subs, n, lossy.pid);
	cr_expect_eq(ss->policy, ZBUS_LOSSY);
	cr_expect_eq(ss->uid, me);
	cr_expect_eq(ss->missed, lossy_missed);
	cr_expect_eq(ss->lag, 0, "it read up to the end");
	ss = sub_stat_of(subs, n, getpid());
	cr_expect_eq(ss->uid, ZBUS_UID_UNKNOWN);
	cr_expect_eq(ss->lag, 300);
	free(subs);

	cr_assert_eq(zbus_conn_stat(c, TRAFFIC, &st), 0);
	cr_expect_eq(st.published, 300);
	cr_expect_eq(st.publishers, 2);
	cr_expect_eq(st.subscribers, 3);
	cr_expect_eq(st.depth, 0, "only a lossy subscriber lags");

	/* A stream: the broker samples once a second, a rate needs two. */
	traffic_tell(&pa);
	traffic_tell(&pb);
	pids[0] = pa.pid;
	pids[1] = pb.pid;
	pids[2] = rel.pid;
	pids[3] = lossy.pid;
	end = now_ms() + 5000;
	while (!traffic_rates_seen(c, pids) && now_ms() < end)
		sleep_ms(100);
	cr_expect(traffic_rates_seen(c, pids),
		  "some rate stayed 0 for 5 s of traffic");

	traffic_stop(&pa, "publisher A");
	traffic_stop(&pb, "publisher B");
	traffic_stop(&rel, "the reliable subscriber");
	traffic_stop(&lossy, "the lossy subscriber");
	zbus_sub_free(mine);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

/* ====================================================================== */
/* Permissions                                                            */
/* ====================================================================== */

/* Child side: a raw hello; the identity the broker reports. */
static int hello_identity(uint32_t *uid, uint32_t *gid)
{
	Zbusctl__Request req;
	Zbusctl__Hello h;
	Zbusctl__Reply *rep;
	int s = zb_ctl_connect(sock_path), r, ok;

	if (s < 0)
		return -1;
	req_hello(&req, &h, 42, ZB_CTL_VERSION);
	r = raw_exchange(s, &req, &rep);
	close(s);
	ok = r == 1 && rep && rep->status == 0 && rep->id == 42 &&
	     rep->body_case == ZBUSCTL__REPLY__BODY_HELLO;
	if (ok) {
		*uid = rep->hello->uid;
		*gid = rep->hello->gid;
	}
	if (rep)
		zbusctl__reply__free_unpacked(rep, NULL);
	return ok ? 0 : -1;
}

static int nobody_tries(void *arg)
{
	struct zbus_channel_params both = { .flags =
						    ZBUS_CREATE_OPEN_EXISTING };
	struct zbus_channel *ch = NULL;
	struct zbus_conn *c;
	struct zbus_sub *s;
	struct zbus_pub *p;
	const char *err;
	uint32_t uid = 0, gid = 0;
	int ok;

	(void)arg;
	STEP(1, drop_to_nobody(NULL, 0) == 0);
	STEP(2, conn_open_at(sock_path, &c) == 0);

	/* 0600: nothing for others, and the message says why. */
	STEP(3, zbus_conn_open_channel(c, "private", ZBUS_ACCESS_SUBSCRIBE,
				       &ch) == -EACCES);
	err = zbus_conn_error(c);
	ok = has_number(err, NOBODY) && strstr(err, "600") &&
	     strstr(err, "'private'");
	if (!ok)
		fprintf(stderr, "uid %d was told: %s\n", NOBODY, err);
	STEP(4, ok);
	STEP(5, zbus_conn_open_channel(c, "private", ZBUS_ACCESS_PUBLISH,
				       &ch) == -EACCES);
	STEP(6, ch == NULL);

	/* 0644: others may subscribe, not publish. */
	STEP(7, zbus_conn_open_channel(c, "readable", ZBUS_ACCESS_SUBSCRIBE,
				       &ch) == 0);
	STEP(8, zbus_sub_new(ch, NULL, &s) == 0);
	zbus_sub_free(s);
	ch = zbus_channel_free(ch);
	STEP(9, zbus_conn_open_channel(c, "readable", ZBUS_ACCESS_PUBLISH,
				       &ch) == -EACCES);
	STEP(10, has_number(zbus_conn_error(c), NOBODY) &&
			 strstr(zbus_conn_error(c), "644"));
	/* Creating with "an existing one is fine" asks for both. */
	STEP(11, zbus_conn_create(c, "readable", &both, &ch) == -EACCES);

	/* 0646: others may publish. */
	STEP(12, zbus_conn_open_channel(c, "writable", ZBUS_ACCESS_PUBLISH,
					&ch) == 0);
	STEP(13, zbus_pub_new(ch, NULL, &p) == 0);
	STEP(14, zbus_pub_send(p, "from nobody", 12) == 0);
	zbus_pub_free(p);
	ch = zbus_channel_free(ch);

	/* Only the owner or root deletes. */
	STEP(15, zbus_conn_delete(c, "private") == -EPERM);
	err = zbus_conn_error(c);
	STEP(16, strstr(err, "'private'") && has_number(err, 0));
	zbus_conn_free(c);

	/* The broker sees who the kernel says we are. */
	STEP(17, hello_identity(&uid, &gid) == 0);
	STEP(18, uid == NOBODY && gid == NOBODY);
	return 0;
}

Test(broker, access_is_refused_across_users)
{
	struct zbus_conn *c;
	struct zbus_channel *priv, *rd, *wr;
	struct zbus_channel_stat st;
	struct zbus_sub *s;
	char buf[64];
	int r, child, gone;

	skip_unless_root();
	c = conn();
	priv = create(c, "private", 0600);
	rd = create(c, "readable", 0644);
	wr = create(c, "writable", 0646);
	s = sub_of(wr);
	child = tu_wait_child(spawn(nobody_tries, NULL), 25);

	r = zbus_sub_recv(s, buf, sizeof(buf), NULL, child ? 0 : 1000);
	gone = zbus_conn_stat(c, "private", &st);
	zbus_sub_free(s);
	zbus_channel_free(wr);
	zbus_channel_free(rd);
	zbus_channel_free(priv);
	zbus_conn_free(c);
	check_child(child, "the uid 65534 child");
	cr_assert_eq(r, 12, "nobody's message: %s", zbus_strerror(r));
	cr_assert_str_eq(buf, "from nobody");
	cr_assert_eq(gone, 0, "root's channel was deleted by another user");
}

static int group_member_tries(void *arg)
{
	const gid_t group0 = 0;
	struct zbus_channel *ch = NULL;
	struct zbus_conn *c;

	(void)arg;
	STEP(1, drop_to_nobody(&group0, 1) == 0);
	STEP(2, conn_open_at(sock_path, &c) == 0);
	/* A supplementary group matches the owner's group... */
	STEP(3, zbus_conn_open_channel(c, "group-rw", ZBUS_ACCESS_PUBLISH |
						 ZBUS_ACCESS_SUBSCRIBE,
				       &ch) == 0);
	ch = zbus_channel_free(ch);
	/* ...and then the group's bits apply, not the others' (a file's
	 * rule). */
	STEP(4, zbus_conn_open_channel(c, "others-only",
				       ZBUS_ACCESS_SUBSCRIBE, &ch) == -EACCES);
	zbus_conn_free(c);
	return 0;
}

/* Child side: the same, with 70 supplementary groups, group 0 last. */
static int member_of_many_groups_tries(void *arg)
{
	struct zbus_channel *ch = NULL;
	struct zbus_conn *c;
	gid_t groups[70];
	int r;

	(void)arg;
	for (int i = 0; i < 69; i++)
		groups[i] = (gid_t)(20000 + i);
	groups[69] = 0;
	STEP(1, drop_to_nobody(groups, 70) == 0);
	STEP(2, conn_open_at(sock_path, &c) == 0);
	r = zbus_conn_open_channel(c, "group-rw", ZBUS_ACCESS_SUBSCRIBE, &ch);
	if (r)
		fprintf(stderr, "a member of 70 groups, 0 among them, was "
			"told: %s\n", zbus_conn_error(c));
	STEP(3, r == 0);
	zbus_channel_free(ch);
	zbus_conn_free(c);
	return 0;
}

Test(broker, group_bits_apply_to_supplementary_groups)
{
	struct zbus_conn *c;
	struct zbus_channel *a, *b;
	int few, many;

	skip_unless_root();
	c = conn();
	a = create(c, "group-rw", 0660);
	b = create(c, "others-only", 0606);
	few = tu_wait_child(spawn(group_member_tries, NULL), 25);
	/* However many groups a user is in (NGROUPS_MAX is 65536). */
	many = tu_wait_child(spawn(member_of_many_groups_tries, NULL), 25);
	zbus_channel_free(b);
	zbus_channel_free(a);
	zbus_conn_free(c);
	check_child(few, "the group 0 child");
	check_child(many, "the child in 70 groups");
}

/* ====================================================================== */
/* Unregistering                                                          */
/* ====================================================================== */

Test(broker, unregistering_is_for_what_the_asker_or_its_user_registered)
{
	struct zbus_conn *c = conn(), *c2 = conn();
	struct zbus_channel *a = create(c, "unreg-a", 0600),
			    *b = create(c, "unreg-b", 0600);
	struct zbus_sub *s = sub_of(a), *t = sub_of(a);
	struct zbus_channel_stat st;
	size_t held;

	cr_assert_eq(zbus_conn_unregister_sub(c, "nowhere", s), -ENOENT);
	cr_assert_eq(zbus_conn_unregister_sub(c, "unreg-a", s), -ENOENT,
		     "nobody registered it");
	cr_assert(strstr(zbus_conn_error(c), "not registered"), "%s",
		  zbus_conn_error(c));
	cr_assert_eq(zbus_conn_register_sub(c, "unreg-a", s), 0);
	/* Slot 0 of the other channel holds nothing of that word. */
	cr_assert_eq(zbus_conn_unregister_sub(c, "unreg-b", s), -ESTALE);
	cr_assert(strstr(zbus_conn_error(c), "does not hold"), "%s",
		  zbus_conn_error(c));
	/* Another connection of the same user may. */
	cr_assert_eq(zbus_conn_unregister_sub(c2, "unreg-a", s), 0, "%s",
		     zbus_conn_error(c2));
	cr_assert_eq(zbus_conn_stat(c, "unreg-a", &st), 0);
	cr_assert_eq(st.subscribers, 1, "only t is left");
	cr_assert_eq(zbus_conn_unregister_sub(c, "unreg-a", s), -ESTALE,
		     "once over, it stays over");
	/* What is unregistered is not registered again after a restart. */
	cr_assert_eq(zbus_conn_register_sub(c, "unreg-a", t), 0);
	held = c->nwatches;
	cr_assert_eq(zbus_conn_unregister_sub(c, "unreg-a", t), 0);
	cr_assert_eq(c->nwatches, held - 1, "the keeper still holds it");
	zbus_sub_free(t);
	zbus_sub_free(s);
	zbus_channel_free(b);
	zbus_channel_free(a);
	zbus_conn_free(c2);
	zbus_conn_free(c);
}

/* Child side: try to end root's registered subscription @arg. */
static int nobody_unregisters(void *arg)
{
	const struct zbus_sub *s = arg; /* our copy of the parent's */
	struct zbus_conn *c;

	STEP(1, drop_to_nobody(NULL, 0) == 0);
	STEP(2, conn_open_at(sock_path, &c) == 0);
	STEP(3, zbus_conn_unregister_sub(c, "root-sub", s) == -EACCES);
	STEP(4, has_number(zbus_conn_error(c), NOBODY));
	zbus_conn_free(c);
	return 0;
}

Test(broker, another_users_registration_cannot_be_unregistered)
{
	struct zbus_sub_stat *subs;
	struct zbus_channel *ch;
	struct zbus_conn *c;
	struct zbus_sub *s;
	int child, n;

	skip_unless_root();
	c = conn();
	ch = create(c, "root-sub", 0666);
	s = sub_of(ch);
	cr_assert_eq(zbus_conn_register_sub(c, "root-sub", s), 0);
	child = tu_wait_child(spawn(nobody_unregisters, s), 25);
	n = zbus_conn_subscribers(c, "root-sub", &subs);
	check_child(child, "the uid 65534 child");
	cr_assert_eq(n, 1, "root's subscription was freed by another user");
	cr_assert_eq(subs[0].uid, 0, "and is still watched for root");
	free(subs);
	zbus_sub_free(s);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

/* ====================================================================== */
/* The raw protocol                                                       */
/* ====================================================================== */

Test(broker, request_before_hello_is_eproto)
{
	Zbusctl__Request req;
	Zbusctl__List l;
	Zbusctl__Hello h;
	Zbusctl__Reply *rep;
	int s = zb_ctl_connect(sock_path);

	bk_assert(s >= 0, "connect: %s", strerror(-s));
	req_list(&req, &l, 7);
	rep = raw_call(s, &req);
	cr_assert_eq(rep->status, -EPROTO, "list before hello: %d",
		     rep->status);
	cr_assert_eq(rep->id, 7, "the reply names its request");
	cr_assert(rep->message && strstr(rep->message, "hello"),
		  "unhelpful message: %s", rep->message);
	zbusctl__reply__free_unpacked(rep, NULL);

	/* The connection is still good for a hello, then for the rest. */
	req_hello(&req, &h, 8, ZB_CTL_VERSION);
	rep = raw_call(s, &req);
	cr_assert_eq(rep->status, 0, "hello: %s", rep->message);
	cr_assert_eq(rep->id, 8);
	cr_assert_eq(rep->body_case, ZBUSCTL__REPLY__BODY_HELLO);
	cr_assert_eq(rep->hello->version, ZB_CTL_VERSION);
	cr_assert_eq(rep->hello->uid, geteuid(), "SO_PEERCRED uid");
	cr_assert_eq(rep->hello->gid, getegid(), "SO_PEERCRED gid");
	cr_assert_eq(rep->hello->pid, (uint32_t)getpid(), "SO_PEERCRED pid");
	cr_assert(rep->hello->broker &&
			  !strncmp(rep->hello->broker, "zbusd", 5),
		  "broker: %s", rep->hello->broker);
	zbusctl__reply__free_unpacked(rep, NULL);
	req_list(&req, &l, 9);
	rep = raw_call(s, &req);
	cr_assert_eq(rep->status, 0, "list after hello: %s", rep->message);
	cr_assert_eq(rep->body_case, ZBUSCTL__REPLY__BODY_LIST);
	zbusctl__reply__free_unpacked(rep, NULL);
	close(s);
}

Test(broker, hello_with_wrong_version_is_eproto)
{
	Zbusctl__Request req;
	Zbusctl__List l;
	Zbusctl__Hello h;
	Zbusctl__Reply *rep;
	int s = zb_ctl_connect(sock_path);

	bk_assert(s >= 0, "connect: %s", strerror(-s));
	req_hello(&req, &h, 3, 99);
	rep = raw_call(s, &req);
	cr_assert_eq(rep->status, -EPROTO, "hello v99: %d", rep->status);
	cr_assert_eq(rep->id, 3);
	cr_assert(rep->message && has_number(rep->message, 99) &&
			  has_number(rep->message, ZB_CTL_VERSION),
		  "the reply does not say which version zbusd speaks: %s",
		  rep->message);
	zbusctl__reply__free_unpacked(rep, NULL);

	/* A refused hello is no hello. */
	req_list(&req, &l, 4);
	rep = raw_call(s, &req);
	cr_assert_eq(rep->status, -EPROTO, "list after a refused hello: %d",
		     rep->status);
	zbusctl__reply__free_unpacked(rep, NULL);
	close(s);
}

static uint64_t prng_state;

static uint64_t prng(void)
{
	prng_state ^= prng_state << 13;
	prng_state ^= prng_state >> 7;
	prng_state ^= prng_state << 17;
	return prng_state;
}

/* Does @len bytes of @buf parse as a Request? Its id if so. */
static int parses(const uint8_t *buf, size_t len, uint64_t *id)
{
	Zbusctl__Request *req = zbusctl__request__unpack(NULL, len, buf);

	if (!req)
		return 0;
	*id = req->id;
	zbusctl__request__free_unpacked(req, NULL);
	return 1;
}

/*
 * Send @len bytes as one record and check the reply: -EBADMSG with a
 * message when they do not parse, else any well-formed reply to that id.
 * Return: 1 when they parsed.
 */
static int send_bytes_checked(int s, const uint8_t *buf, size_t len)
{
	Zbusctl__Reply *rep;
	uint64_t id = 0;
	int valid = parses(buf, len, &id), r;

	r = zb_fdpass_send(s, buf, len, NULL);
	bk_assert(r == 0, "send %zu bytes: %s", len, strerror(-r));
	r = raw_recv(s, 5000, &rep);
	bk_assert(r == 1, "no reply to a %zu-byte record: %s", len,
		  r ? strerror(-r) : "connection closed");
	cr_assert_not_null(rep, "the reply does not parse");
	if (!valid) {
		cr_assert_eq(rep->status, -EBADMSG,
			     "%zu malformed bytes got status %d", len,
			     rep->status);
		cr_assert(rep->message && *rep->message,
			  "no message with -EBADMSG");
	} else {
		cr_assert_eq(rep->id, id, "reply to the wrong id");
		cr_assert(rep->status <= 0, "status %d", rep->status);
	}
	zbusctl__reply__free_unpacked(rep, NULL);
	return valid;
}

/* The broker is alive and a normal client gets served. */
static void still_serves(void)
{
	struct zbus_channel_stat *v;
	struct zbus_conn *c;
	int n;

	bk_assert(kill(broker_pid, 0) == 0, "zbusd died");
	c = conn();
	n = zbus_conn_list(c, &v);
	bk_assert(n >= 0, "list: %s", zbus_strerror(n));
	free(v);
	zbus_conn_free(c);
}

Test(broker, garbage_records_get_ebadmsg_and_the_broker_stays_up)
{
	uint8_t buf[500];
	int s = raw_open(), valid = 0;
	Zbusctl__Request req;
	Zbusctl__List l;
	Zbusctl__Reply *rep;

	prng_state = 0x5eed2bad0ddf00dull;
	for (int i = 0; i < 200; i++) {
		size_t len = 1 + prng() % sizeof(buf);

		for (size_t j = 0; j < len; j++)
			buf[j] = (uint8_t)prng();
		valid += send_bytes_checked(s, buf, len);
	}
	cr_log_info("%d of 200 random records happened to parse", valid);

	/* The same connection still works, and so does a new client. */
	req_list(&req, &l, 1000);
	rep = raw_call(s, &req);
	cr_assert_eq(rep->status, 0, "list: %s", rep->message);
	zbusctl__reply__free_unpacked(rep, NULL);
	close(s);
	still_serves();
}

Test(broker, truncated_frames)
{
	Zbusctl__ChannelParams cp = ZBUSCTL__CHANNEL_PARAMS__INIT;
	Zbusctl__Create cr = ZBUSCTL__CREATE__INIT;
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	uint8_t buf[256];
	size_t len;
	int s = raw_open(), valid = 0;
	struct zbus_channel_stat st;
	struct zbus_conn *c;

	cp.max_msg_size = 512;
	cp.ring_capacity = 16;
	cp.arena_bytes = 65536;
	cp.max_subscribers = 4;
	cp.default_policy = ZBUS_LOSSY;
	cp.mode = 0640;
	cr.name = "truncated-frames";
	cr.params = &cp;
	cr.open_existing = 1;
	req.id = 0x123456789ull;
	req.body_case = ZBUSCTL__REQUEST__BODY_CREATE;
	req.create = &cr;
	len = zbusctl__request__get_packed_size(&req);
	cr_assert_leq(len, sizeof(buf));
	zbusctl__request__pack(&req, buf);

	for (size_t cut = 1; cut < len; cut++)
		valid += send_bytes_checked(s, buf, cut);
	cr_log_info("%d of %zu truncations still parsed", valid, len - 1);
	/* The whole record creates the channel as asked. */
	cr_assert_eq(send_bytes_checked(s, buf, len), 1);
	close(s);

	still_serves();
	c = conn();
	cr_assert_eq(zbus_conn_stat(c, "truncated-frames", &st), 0);
	cr_assert_eq(st.mode, 0640);
	cr_assert_eq(st.ring_capacity, 16);
	cr_assert_eq(st.default_policy, ZBUS_LOSSY);
	zbus_conn_free(c);
}

Test(broker, oversized_record_disconnects_only_that_client)
{
	struct zbus_channel_stat *v;
	struct zbus_conn *c = conn();
	Zbusctl__Reply *rep;
	uint8_t *big = malloc(70000);
	int s = raw_open(), r, n;

	cr_assert_not_null(big);
	memset(big, 0xff, 70000); /* never a valid protobuf */
	/* A full record is still a record: malformed, answered. */
	r = zb_fdpass_send(s, big, ZB_CTL_MAX_RECORD, NULL);
	cr_assert_eq(r, 0, "send 64 KiB: %s", strerror(-r));
	r = raw_recv(s, 5000, &rep);
	bk_assert(r == 1 && rep, "no reply to a %u-byte record: %d",
		  ZB_CTL_MAX_RECORD, r);
	cr_assert_eq(rep->status, -EBADMSG);
	zbusctl__reply__free_unpacked(rep, NULL);

	/* One more byte than a record: that client is cut off. */
	r = zb_fdpass_send(s, big, 70000, NULL);
	cr_assert_eq(r, 0, "send 70000 bytes: %s", strerror(-r));
	r = raw_recv(s, 5000, &rep);
	bk_assert(r == 0 || r == -ECONNRESET,
		  "the oversized sender was not disconnected: %d (%s)", r,
		  r < 0 ? strerror(-r) : "a reply");
	free(big);
	close(s);

	n = zbus_conn_list(c, &v);
	bk_assert(n == 0, "the other client: %s", zbus_strerror(n));
	free(v);
	cr_assert(file_contains(log_path, "oversized"),
		  "the log does not say why");
	zbus_conn_free(c);
	still_serves();
}

/* Send @len bytes with @nfds copies of @fd (SCM_RIGHTS). */
static int send_with_fds(int s, const void *buf, size_t len, int fd,
			 int nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(32 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl.buf,
			      .msg_controllen = CMSG_SPACE(nfds * sizeof(int)) };
	struct cmsghdr *cm;

	memset(&ctl, 0, sizeof(ctl));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	for (int i = 0; i < nfds; i++)
		memcpy(CMSG_DATA(cm) + i * sizeof(int), &fd, sizeof(int));
	return sendmsg(s, &msg, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

Test(broker, unasked_fds_are_closed_by_the_broker)
{
	uint8_t packed[64];
	Zbusctl__Request req;
	Zbusctl__List l;
	Zbusctl__Reply *rep;
	int s = raw_open(), p[2], base, n, r, s2;
	size_t len;

	base = fd_count_of(broker_pid);
	cr_assert_gt(base, 0, "cannot read /proc/%d/fd", (int)broker_pid);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);

	/* One fd with each of 50 requests. */
	for (uint64_t i = 0; i < 50; i++) {
		req_list(&req, &l, 100 + i);
		r = raw_send(s, &req, p[1], 5000);
		cr_assert_eq(r, 0, "send with an fd: %s", strerror(-r));
		r = raw_recv(s, 5000, &rep);
		bk_assert(r == 1 && rep, "request %llu: no reply (%d)",
			  (unsigned long long)i, r);
		cr_assert_eq(rep->status, 0, "%s", rep->message);
		cr_assert_eq(rep->id, 100 + i);
		zbusctl__reply__free_unpacked(rep, NULL);
	}
	/* Three at once. */
	req_list(&req, &l, 200);
	len = zbusctl__request__pack(&req, packed);
	cr_assert_eq(send_with_fds(s, packed, len, p[1], 3), 0);
	r = raw_recv(s, 5000, &rep);
	bk_assert(r == 1 && rep, "3 fds: no reply (%d)", r);
	cr_assert_eq(rep->status, 0, "%s", rep->message);
	zbusctl__reply__free_unpacked(rep, NULL);
	n = settle_fds(broker_pid, base, 2000);
	bk_assert(n == base, "zbusd kept fds: %d open, %d before", n, base);

	/* More than the broker's control buffer holds, on a connection of
	 * its own: answered or cut off, but nothing kept. */
	s2 = raw_open();
	req_list(&req, &l, 300);
	len = zbusctl__request__pack(&req, packed);
	cr_assert_eq(send_with_fds(s2, packed, len, p[1], 20), 0);
	r = raw_recv(s2, 5000, &rep);
	cr_assert(r == 1 || r == 0 || r == -ECONNRESET, "20 fds: %d", r);
	cr_log_info("a record with 20 fds: %s", r == 1 ? "answered" :
		    "the sender was cut off");
	if (rep)
		zbusctl__reply__free_unpacked(rep, NULL);
	close(s2);
	n = settle_fds(broker_pid, base, 2000);
	bk_assert(n == base, "zbusd kept fds: %d open, %d before", n, base);

	/* The proof: with our write end closed, the pipe has no writer. */
	close(p[1]);
	cr_assert(wait_fd(p[0], POLLIN, 2000), "the broker holds a copy of "
						"the pipe's write end");
	cr_assert_eq(read(p[0], packed, 1), 0, "EOF expected");
	close(p[0]);
	close(s);
}

Test(broker, a_client_that_never_reads_replies_is_disconnected)
{
	struct zbus_channel_stat st;
	struct zbus_conn *c = conn();
	Zbusctl__Request req;
	Zbusctl__Hello h;
	Zbusctl__Reply *rep;
	uint64_t end = now_ms() + 10000;
	long sent = 0, checks = 0, replies = 0;
	int s = raw_open(), gone = 0, full, r;

	req_hello(&req, &h, 5, ZB_CTL_VERSION);
	while (!gone && now_ms() < end) {
		r = zb_ctl_send(s, &req.base, NULL);
		if (r == -EPIPE || r == -ECONNRESET) {
			gone = 1;
			break;
		}
		cr_assert(r == 0 || r == -EAGAIN, "send: %s", strerror(-r));
		full = r == -EAGAIN;
		sent += !full;
		if (!full && sent % 64)
			continue;
		/* Every 64 requests and whenever our queue is full, the
		 * other client is served. */
		r = zbus_conn_stat(c, "none", &st);
		bk_assert(r == -ENOENT, "the other client got: %s",
			  zbus_strerror(r));
		checks++;
		if (full)
			sleep_ms(1); /* let the broker work */
	}
	bk_assert(gone, "still connected after %ld unread replies", sent);
	cr_log_info("cut off after %ld requests; %ld checks in between",
		    sent, checks);

	/* What it had queued can still be read, then the end. */
	while ((r = raw_recv(s, 5000, &rep)) == 1) {
		cr_assert_not_null(rep);
		zbusctl__reply__free_unpacked(rep, NULL);
		replies++;
	}
	cr_assert(r == 0 || r == -ECONNRESET, "after %ld replies: %s",
		  replies, strerror(-r));
	close(s);
	cr_assert(file_contains(log_path, "does not read its replies"),
		  "the log does not say why");
	r = zbus_conn_stat(c, "none", &st);
	cr_assert_eq(r, -ENOENT, "the other client: %s", zbus_strerror(r));
	zbus_conn_free(c);
}

#define FLOOD_WINDOW 200     /* requests in flight: replies this small
			      * fit a socket's buffer many times over */
#define FLOOD_MAX_LOG (1 << 20) /* replies whose send time is kept */
#define QUIET_MAX 4096

/* Shared with the flooding child: when zbusd sent each of its replies. */
struct flood_log {
	uint64_t n;
	int64_t sent_ns[FLOOD_MAX_LOG];
};

struct flood {
	int started[2];
	int stop[2];
	struct flood_log *log;
};

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Receive one record without waiting, with the time its sender queued it
 * (SO_TIMESTAMPNS must be on: the kernel stamps it at sendmsg()).
 * Return: its length; 0 when the peer closed; -errno.
 */
static ssize_t recv_stamped(int s, void *buf, size_t cap, int64_t *sent_ns)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(struct timespec)) +
			 CMSG_SPACE(16 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf) };
	ssize_t n = recvmsg(s, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	*sent_ns = -1;
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c;
	     c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_TIMESTAMPNS) {
			struct timespec ts;

			memcpy(&ts, CMSG_DATA(c), sizeof(ts));
			*sent_ns = (int64_t)ts.tv_sec * 1000000000 +
				   ts.tv_nsec;
		} else if (c->cmsg_type == SCM_RIGHTS) {
			size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < nfd; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int),
				       sizeof(fd));
				close(fd);
			}
		}
	}
	return n;
}

static int stamp_replies(int s)
{
	int on = 1;

	return setsockopt(s, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
}

/* Child side: read the replies there are, logging when each was sent. */
static int flood_drain(int s, struct flood_log *log, int *inflight)
{
	int64_t t;
	ssize_t n;

	while ((n = recv_stamped(s, rec_buf, sizeof(rec_buf), &t)) > 0) {
		uint64_t i = log->n;

		(*inflight)--;
		if (i < FLOOD_MAX_LOG) {
			log->sent_ns[i] = t;
			__atomic_store_n(&log->n, i + 1, __ATOMIC_RELEASE);
		}
	}
	return n == -EAGAIN ? 0 : -1; /* 0: the broker cut us off */
}

/*
 * Child side: keep FLOOD_WINDOW requests in flight (reading every reply,
 * so it is never cut off for not reading) until told to stop, then read
 * what is still coming.
 */
static int flood_requests(void *arg)
{
	struct flood *f = arg;
	Zbusctl__Request req;
	Zbusctl__Hello h;
	Zbusctl__Reply *rep;
	uint64_t end = now_ms() + 20000;
	int s = zb_ctl_connect(sock_path), inflight = 0, told = 0;

	close(f->started[0]);
	close(f->stop[1]);
	STEP(1, s >= 0);
	req_hello(&req, &h, 1, ZB_CTL_VERSION);
	STEP(2, raw_exchange(s, &req, &rep) == 1 && rep && !rep->status);
	zbusctl__reply__free_unpacked(rep, NULL);
	STEP(3, stamp_replies(s) == 0);
	while (now_ms() < end) {
		struct pollfd pf[2] = { { .fd = s, .events = POLLIN },
					{ .fd = f->stop[0], .events = POLLIN } };

		while (inflight < FLOOD_WINDOW &&
		       zb_ctl_send(s, &req.base, NULL) == 0)
			inflight++;
		if (!told && inflight == FLOOD_WINDOW) {
			STEP(4, put_byte(f->started[1]) == 0);
			told = 1;
		}
		poll(pf, 2, 100);
		if (pf[1].revents)
			break;
		STEP(5, flood_drain(s, f->log, &inflight) == 0);
	}
	while (inflight > 0 && wait_fd(s, POLLIN, 2000))
		STEP(6, flood_drain(s, f->log, &inflight) == 0);
	return inflight ? 7 : 0;
}

/* Replies logged in (from, to]: the log is in the order zbusd sent them. */
static uint64_t sent_between(const struct flood_log *log, int64_t from,
			     int64_t to)
{
	uint64_t n = log->n < FLOOD_MAX_LOG ? log->n : FLOOD_MAX_LOG;
	uint64_t lo = 0, hi = n, first;

	while (lo < hi) { /* first one after @from */
		uint64_t mid = lo + (hi - lo) / 2;

		if (log->sent_ns[mid] <= from)
			lo = mid + 1;
		else
			hi = mid;
	}
	first = lo;
	hi = n;
	while (lo < hi) { /* first one after @to */
		uint64_t mid = lo + (hi - lo) / 2;

		if (log->sent_ns[mid] <= to)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - first;
}

/*
 * Fairness is counted on the broker's side, not timed: the kernel stamps
 * each reply when zbusd sends it, so we know how many replies zbusd sent
 * the flooder between a quiet request's arrival and its answer, however
 * late either client gets the CPU. A fair broker answers the quiet
 * client within a turn or two of the flooder's (ZBD_MAX_REQUESTS_PER_TURN
 * requests each).
 */
Test(broker, a_flooding_client_does_not_starve_the_others)
{
	const uint64_t fair = 4 * ZBD_MAX_REQUESTS_PER_TURN;
	static int64_t asked[QUIET_MAX], answered[QUIET_MAX];
	Zbusctl__Request req;
	Zbusctl__Stat sreq;
	Zbusctl__Reply *rep;
	struct flood f;
	uint64_t worst = 0, start;
	int64_t worst_ns = 0;
	int s = raw_open(), n = 0, bad = 0, worst_at = -1, st;
	pid_t pid;

	f.log = mmap(NULL, sizeof(*f.log), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(f.log, MAP_FAILED);
	cr_assert_eq(stamp_replies(s), 0, "SO_TIMESTAMPNS: %s",
		     strerror(errno));
	cr_assert_eq(pipe2(f.started, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(f.stop, O_CLOEXEC), 0);
	pid = spawn(flood_requests, &f);
	close(f.started[1]);
	close(f.stop[0]);
	cr_assert(wait_fd(f.started[0], POLLIN, 5000),
		  "the flooding child did not start");

	/* A quiet client's requests, one at a time, for a second. */
	zbusctl__request__init(&req);
	zbusctl__stat__init(&sreq);
	sreq.name = "none";
	req.body_case = ZBUSCTL__REQUEST__BODY_STAT;
	req.stat = &sreq;
	for (start = now_ms(); n < QUIET_MAX && now_ms() - start < 1000;
	     n++) {
		ssize_t len;

		req.id = 1000 + (uint64_t)n;
		/* Stamped once queued: our own delays never count. */
		if (raw_send(s, &req, -1, 5000) < 0)
			bad = 1;
		asked[n] = realtime_ns();
		if (bad || !wait_fd(s, POLLIN, 5000) ||
		    (len = recv_stamped(s, rec_buf, sizeof(rec_buf),
					&answered[n])) <= 0) {
			bad = 1;
			break;
		}
		rep = zbusctl__reply__unpack(NULL, (size_t)len, rec_buf);
		bad = !rep || rep->id != req.id || rep->status != -ENOENT ||
		      answered[n] < 0;
		if (rep)
			zbusctl__reply__free_unpacked(rep, NULL);
		if (bad)
			break;
	}
	put_byte(f.stop[1]);
	close(f.stop[1]);
	close(f.started[0]);
	st = tu_wait_child(pid, 10);
	close(s);

	for (int i = 0; i < n; i++) {
		uint64_t during = sent_between(f.log, asked[i], answered[i]);

		if (during > worst) {
			worst = during;
			worst_at = i;
			worst_ns = answered[i] - asked[i];
		}
	}
	cr_log_info("%d quiet requests; at worst %llu flood replies sent "
		    "while one waited (%.1f ms); %llu flood replies in all", n,
		    (unsigned long long)worst, worst_ns / 1e6,
		    (unsigned long long)f.log->n);
	munmap(f.log, sizeof(*f.log));
	check_child(st, "the flooding client");
	bk_assert(!bad, "quiet request %d was not answered properly", n);
	cr_assert_leq(worst, fair, "the quiet client starved: zbusd answered "
		      "%llu requests of the flooder while quiet request %d "
		      "waited %.1f ms; a fair turn is %d",
		      (unsigned long long)worst, worst_at, worst_ns / 1e6,
		      ZBD_MAX_REQUESTS_PER_TURN);
}

/*
 * Every memfd a reply carries is charged, while unread, to the sending
 * user (the broker's): past its RLIMIT_NOFILE the kernel refuses to pass
 * more (ETOOMANYREFS) unless the broker is privileged (FIELD-NOTES). A
 * broker of one's own session runs unprivileged: here, uid 65534 with a
 * small limit. One client that asks for channels and never reads must
 * not make the broker unable to hand channels to the others.
 */
Test(broker, fds_in_flight_to_a_client_that_does_not_read_block_no_one_else)
{
	struct zbus_conn *c;
	struct zbus_channel *ch = NULL;
	Zbusctl__Request req;
	Zbusctl__Open op;
	int s, r, st, hup, sent = 0;

	skip_unless_root();
	/* Our broker, again, but unprivileged: 64 fds. */
	st = stop_broker();
	cr_assert_eq(st, 0, "the root broker: status %d", st);
	cr_assert_eq(chown(tmp_dir, NOBODY, NOBODY), 0);
	path_in(sock_path, sizeof(sock_path), "nobody.sock");
	path_in(log_path, sizeof(log_path), "nobody.log");
	broker_pid = spawn_zbusd(sock_path, log_path, 64);
	r = wait_answering(sock_path, broker_pid, 5000, &st);
	if (r == -ECHILD)
		broker_pid = -1;
	bk_assert(r == 0, "zbusd as uid %d: %s (status %d)", NOBODY,
		  strerror(-r), st);
	c = conn();
	ch = create(c, "shared", 0666);
	ch = zbus_channel_free(ch);

	/* Ask 200 times for the channel; read nothing. */
	s = raw_open();
	zbusctl__request__init(&req);
	zbusctl__open__init(&op);
	op.name = "shared";
	op.access = ZBUS_ACCESS_SUBSCRIBE;
	req.body_case = ZBUSCTL__REQUEST__BODY_OPEN;
	req.open = &op;
	for (int i = 0; i < 200; i++) {
		req.id = 10 + (uint64_t)i;
		r = zb_ctl_send(s, &req.base, NULL);
		if (r == -EAGAIN) {
			wait_fd(s, POLLOUT, 10);
			continue;
		}
		if (r < 0)
			break; /* it was cut off */
		sent++;
	}
	/* Let it answer them all: this broker hangs up on it at the
	 * first reply it cannot send (one that would stop reading from it
	 * instead may not: then go on after a while). */
	hup = wait_fd(s, POLLRDHUP, 2000);
	cr_log_info("sent %d unread opens; %s", sent,
		    hup ? "the broker hung up" : "still connected");

	/* Another client still gets its channel. */
	zbus_conn_free(c);
	c = conn();
	r = zbus_conn_open_channel(c, "shared", ZBUS_ACCESS_SUBSCRIBE, &ch);
	close(s);
	zbus_channel_free(ch);
	zbus_conn_free(c);
	bk_assert(r == 0, "with a non-reading client holding its memfds in "
		  "flight, another client's open got: %s", zbus_strerror(r));
}

/* ====================================================================== */
/* Quotas                                                                 */
/* ====================================================================== */

static int nobody_creates(void *arg)
{
	struct zbus_channel *ch;
	struct zbus_conn *c;

	(void)arg;
	STEP(1, drop_to_nobody(NULL, 0) == 0);
	STEP(2, conn_open_at(sock_path, &c) == 0);
	STEP(3, zbus_conn_create(c, "theirs", NULL, &ch) == 0);
	zbus_channel_free(ch);
	zbus_conn_free(c);
	return 0;
}

static int create_geo(struct zbus_conn *c, const char *name,
		      uint64_t arena)
{
	struct zbus_channel_params p = { .geometry = { .max_msg_size = 64,
						       .ring_capacity = 2,
						       .arena_bytes = arena } };
	struct zbus_channel *ch = NULL;
	int r = zbus_conn_create(c, name, &p, &ch);

	zbus_channel_free(ch);
	return r;
}

Test(broker, quotas_give_edquot)
{
	struct zbus_conn *c = conn();
	char name[32];
	const char *err;
	long rss0, rss1;
	int fds0, fds1, r;

	/* More segment bytes than a user may own: refused up front. */
	fds0 = fd_count_of(broker_pid);
	rss0 = rss_kib_of(broker_pid);
	r = create_geo(c, "huge", 16ull << 30);
	err = zbus_conn_error(c);
	bk_assert(r == -EDQUOT, "16 GiB channel: %s (%s)", zbus_strerror(r),
		  err);
	cr_assert(strstr(err, "quota"), "unreadable error: \"%s\"", err);
	fds1 = fd_count_of(broker_pid);
	rss1 = rss_kib_of(broker_pid);
	cr_assert_eq(fds1, fds0, "zbusd's fds went from %d to %d", fds0, fds1);
	cr_assert_lt(rss1 - rss0, 8192, "zbusd's RSS went from %ld to %ld KiB",
		     rss0, rss1);
	cr_assert(!file_contains(log_path, "created channel 'huge'"));

	/* The byte quota adds up what the user owns (4 GiB arenas are
	 * sparse: nothing is touched). */
	r = create_geo(c, "four-a", 4ull << 30);
	bk_assert(r == 0, "4 GiB: %s (%s)", zbus_strerror(r),
		  zbus_conn_error(c));
	r = create_geo(c, "four-b", 4ull << 30);
	bk_assert(r == -EDQUOT, "a second 4 GiB: %s", zbus_strerror(r));
	cr_assert_eq(zbus_conn_delete(c, "four-a"), 0);
	r = create_geo(c, "four-b", 4ull << 30);
	bk_assert(r == 0, "4 GiB after a delete: %s", zbus_strerror(r));
	cr_assert_eq(zbus_conn_delete(c, "four-b"), 0);

	/* The channel count. */
	for (int i = 0; i < ZBD_MAX_CHANNELS_PER_UID; i++) {
		snprintf(name, sizeof(name), "q%03d", i);
		r = create_geo(c, name, 0);
		bk_assert(r == 0, "channel %d: %s (%s)", i, zbus_strerror(r),
			  zbus_conn_error(c));
	}
	r = create_geo(c, "one-too-many", 0);
	err = zbus_conn_error(c);
	bk_assert(r == -EDQUOT, "channel %d: %s", ZBD_MAX_CHANNELS_PER_UID + 1,
		  zbus_strerror(r));
	cr_assert(strstr(err, "quota") &&
			  has_number(err, ZBD_MAX_CHANNELS_PER_UID),
		  "unreadable error: \"%s\"", err);
	cr_assert_eq(zbus_conn_delete(c, "q000"), 0);
	r = create_geo(c, "one-too-many", 0);
	bk_assert(r == 0, "after a delete: %s", zbus_strerror(r));

	/* It is per user: another one still creates. */
	zbus_conn_free(c);
	if (geteuid() == 0)
		reap_ok(spawn(nobody_creates, NULL), "the uid 65534 child");
	else
		cr_log_warn("not root: the per-user part is not checked");
}

Test(broker, list_reports_every_channel_even_past_one_record)
{
	struct zbus_channel_stat *v = NULL, st;
	struct zbus_conn *c = conn();
	char name[ZB_CTL_NAME_MAX + 1];
	int n, r;

	/* One user's quota of channels with the longest names: their
	 * list no longer fits one 64 KiB record. */
	for (int i = 0; i < ZBD_MAX_CHANNELS_PER_UID; i++) {
		snprintf(name, sizeof(name), "long-%03d-", i);
		memset(name + 9, 'x', ZB_CTL_NAME_MAX - 9);
		name[ZB_CTL_NAME_MAX] = 0;
		r = create_geo(c, name, 0);
		bk_assert(r == 0, "channel %d: %s (%s)", i, zbus_strerror(r),
			  zbus_conn_error(c));
	}
	n = zbus_conn_list(c, &v);
	if (n >= 0)
		free(v);
	zbus_conn_free(c);
	bk_assert(n == ZBD_MAX_CHANNELS_PER_UID, "list of %d channels with "
		  "%d-character names: %d (%s)", ZBD_MAX_CHANNELS_PER_UID,
		  ZB_CTL_NAME_MAX, n, n < 0 ? zbus_strerror(n) : "channels");
	c = conn();
	r = zbus_conn_stat(c, name, &st);
	cr_assert_eq(r, 0, "stat: %s", zbus_strerror(r));
	zbus_conn_free(c);
}

/* ====================================================================== */
/* Lifecycle                                                              */
/* ====================================================================== */

Test(broker, stale_socket_is_replaced_and_a_live_broker_is_never_stolen)
{
	char log2[128];
	struct zbus_channel_stat *v;
	struct zbus_conn *c;
	struct zbus_channel *ch;
	pid_t second;
	int st, n;

	/* A second broker leaves the live one alone. */
	path_in(log2, sizeof(log2), "second.log");
	second = spawn_zbusd(sock_path, log2, 0);
	st = tu_wait_child(second, 5);
	if (st != 3)
		dump_file(log2);
	cr_assert_eq(st, 3, "a second zbusd on a live socket: status %d", st);
	cr_assert(file_contains(log2, "already serves"), "its log says why");
	c = conn();
	n = zbus_conn_list(c, &v);
	bk_assert(n == 0, "the first broker: %s", zbus_strerror(n));
	free(v);
	zbus_conn_free(c);

	/* A killed broker leaves its socket; the next one replaces it. */
	kill(broker_pid, SIGKILL);
	tu_wait_child(broker_pid, 5);
	broker_pid = -1;
	cr_assert_eq(access(sock_path, F_OK), 0, "the socket file is gone");
	cr_assert_eq(zb_ctl_connect(sock_path), -ECONNREFUSED);
	start_broker("third.log");
	bk_assert(file_contains(log_path, "replacing the stale socket"),
		  "the new broker does not say it replaced the socket");
	c = conn();
	ch = create(c, "after-restart", 0);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

Test(broker, sigterm_shuts_down_cleanly)
{
	struct zbus_conn *c = conn();
	struct zbus_channel *ch = create(c, "survivor", 0600);
	struct zbus_channel_stat *v = NULL;
	struct zbus_pub *p = pub_of(ch);
	struct zbus_sub *s = sub_of(ch);
	pid_t pid = broker_pid;
	int st, r;

	broker_pid = -1;
	kill(pid, SIGTERM);
	st = tu_wait_child(pid, 5);
	if (st != 0)
		dump_log();
	cr_assert_eq(st, 0, "exit status on SIGTERM: %d", st);
	cr_assert(access(sock_path, F_OK) < 0 && errno == ENOENT,
		  "the socket file is still there");
	cr_assert(file_contains(log_path, "stopped"), "the log does not say "
						      "it stopped");

	/* The data path never needed the broker. */
	send_filled(p, 100, 1);
	recv_filled(s, 100, 1);
	/* The control path knows it is gone. */
	r = zbus_conn_list(c, &v);
	cr_assert_lt(r, 0, "a request to a stopped broker: %d", r);
	cr_assert_null(v);
	zbus_pub_free(p);
	zbus_sub_free(s);
	zbus_channel_free(ch);
	zbus_conn_free(c);
}

/* ====================================================================== */
/* Autostart                                                              */
/* ====================================================================== */

static void allow_autostart(void)
{
	unsetenv("ZBUS_NO_AUTOSTART");
	setenv("ZBUS_BROKER", zbusd_path, 1);
}

/* The one broker autostarted on @path; stop it with SIGTERM. */
static void stop_autostarted(const char *path)
{
	pid_t pids[4];
	int n = find_zbusd(path, pids, 4), r;

	cr_assert_eq(n, 1, "%d brokers serve %s", n, path);
	r = kill_foreign(pids[0], SIGTERM, 5000);
	cr_assert_eq(r, 0, "the autostarted zbusd %d: %s", (int)pids[0],
		     strerror(-r));
	cr_assert(access(path, F_OK) < 0, "it left its socket behind");
}

Test(autostart, autostart_starts_a_broker_when_none_answers)
{
	struct zbus_conn_opts o = { .socket_path = sock_path,
				    .flags = ZBUS_CONN_NO_AUTOSTART };
	struct zbus_channel_stat st;
	struct zbus_conn *c = NULL, *c2;
	struct zbus_channel *ch;
	pid_t pids[4];
	int r;

	setenv("ZBUS_BROKER", zbusd_path, 1);
	/* Not allowed by the flag... */
	unsetenv("ZBUS_NO_AUTOSTART");
	r = zbus_conn_open(&o, &c);
	cr_assert_eq(r, -ENOENT, "with the flag: %s", zbus_strerror(r));
	cr_assert_null(c);
	/* ...nor by the environment. */
	o.flags = 0;
	setenv("ZBUS_NO_AUTOSTART", "1", 1);
	r = zbus_conn_open(&o, &c);
	cr_assert_eq(r, -ENOENT, "with ZBUS_NO_AUTOSTART=1: %s",
		     zbus_strerror(r));
	cr_assert_eq(find_zbusd(sock_path, pids, 4), 0, "a broker started");

	allow_autostart();
	r = zbus_conn_open(&o, &c);
	cr_assert_eq(r, 0, "autostart: %s", zbus_strerror(r));
	cr_assert_eq(find_zbusd(sock_path, pids, 4), 1);
	ch = create(c, "auto", 0644);
	/* A second client finds the same broker. */
	r = zbus_conn_open(&o, &c2);
	cr_assert_eq(r, 0, "second client: %s", zbus_strerror(r));
	cr_assert_eq(zbus_conn_stat(c2, "auto", &st), 0);
	cr_assert_eq(find_zbusd(sock_path, pids, 4), 1, "a second broker");
	zbus_conn_free(c2);
	zbus_channel_free(ch);
	zbus_conn_free(c);
	stop_autostarted(sock_path);
}

Test(autostart, an_autostarted_broker_keeps_none_of_the_clients_fds)
{
	struct zbus_conn_opts o = { .socket_path = sock_path };
	struct zbus_conn *c;
	char b;
	int p[2], r, eof;

	/* A pipe as a careless application makes it: no O_CLOEXEC. */
	cr_assert_eq(pipe(p), 0);
	allow_autostart();
	r = zbus_conn_open(&o, &c);
	cr_assert_eq(r, 0, "autostart: %s", zbus_strerror(r));
	close(p[1]);
	/* The only write end left would be in the daemon. */
	eof = wait_fd(p[0], POLLIN, 1000) && read(p[0], &b, 1) == 0;
	close(p[0]);
	zbus_conn_free(c);
	stop_autostarted(sock_path);
	cr_assert(eof, "the autostarted broker inherited the client's fds "
		       "(here a pipe's write end, so the reader never sees "
		       "EOF)");
}

struct racer {
	int gate[2];
	char path[sizeof(sock_path)];
	char errlog[128];
	int id;
};

static int race_to_autostart(void *arg)
{
	struct racer *r = arg;
	struct zbus_conn_opts o = { .socket_path = r->path };
	struct zbus_channel_params p = { .mode = 0644 };
	struct zbus_channel *ch;
	struct zbus_conn *c;
	char name[16];
	int fd, e;

	fd = open(r->errlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0)
		dup2(fd, 2);
	close(r->gate[1]);
	get_byte(r->gate[0]); /* EOF: go */
	e = zbus_conn_open(&o, &c);
	if (e)
		fprintf(stderr, "racer %d: connect: %s\n", r->id,
			zbus_strerror(e));
	STEP(1, e == 0);
	snprintf(name, sizeof(name), "race-%d", r->id);
	STEP(2, zbus_conn_create(c, name, &p, &ch) == 0);
	zbus_channel_free(ch);
	zbus_conn_free(c);
	return 0;
}

Test(autostart, two_clients_autostarting_at_once_share_one_broker)
{
	allow_autostart();
	for (int round = 0; round < 5; round++) {
		struct racer r[2];
		struct zbus_channel_stat *v;
		struct zbus_conn *c;
		pid_t pid[2];
		int gate[2], st[2], n;

		cr_assert_eq(pipe2(gate, O_CLOEXEC), 0);
		for (int i = 0; i < 2; i++) {
			char f[32];

			r[i].gate[0] = gate[0];
			r[i].gate[1] = gate[1];
			r[i].id = i;
			snprintf(f, sizeof(f), "race%d.sock", round);
			path_in(r[i].path, sizeof(r[i].path), f);
			snprintf(f, sizeof(f), "race%d-%d.err", round, i);
			path_in(r[i].errlog, sizeof(r[i].errlog), f);
			pid[i] = spawn(race_to_autostart, &r[i]);
		}
		close(gate[0]);
		close(gate[1]); /* both go at once */
		for (int i = 0; i < 2; i++)
			st[i] = tu_wait_child(pid[i], 20);
		if (st[0] || st[1]) {
			dump_file(r[0].errlog);
			dump_file(r[1].errlog);
		}
		cr_assert(st[0] == 0 && st[1] == 0,
			  "round %d: racers exited %d and %d", round, st[0],
			  st[1]);
		/* One broker holds both channels. */
		cr_assert_eq(conn_open_at(r[0].path, &c), 0);
		n = zbus_conn_list(c, &v);
		cr_assert_eq(n, 2, "round %d: %d channels", round, n);
		cr_assert(stat_named(v, n, "race-0") &&
				  stat_named(v, n, "race-1"),
			  "round %d: not one broker", round);
		free(v);
		zbus_conn_free(c);
		stop_autostarted(r[0].path);
	}
}

/* ====================================================================== */
/* Read-only subscribers and sealed channels                             */
/* ====================================================================== */

/* Child side: write to the channel's data mapping. Dies of SIGSEGV if the
 * mapping is read-only, as it must be. */
static int write_into(void *arg)
{
	struct zbus_channel *ch = arg;

	/* Die of the fault itself: sanitizers turn it into an exit code. */
	signal(SIGSEGV, SIG_DFL);
	/* The first byte of the arena: a payload, nothing we need. */
	((volatile uint8_t *)ch->seg.arena)[0] = 0x5a;
	return 0;
}

/* Publish @text on @pub, receive it on @sub. */
static void one_message(struct zbus_pub *pub, struct zbus_sub *sub,
			const char *text)
{
	char buf[64] = { 0 };
	int r;

	cr_assert_eq(zbus_pub_send(pub, text, strlen(text) + 1), 0);
	r = zbus_sub_recv(sub, buf, sizeof(buf), NULL, 2000);
	cr_assert_eq(r, (int)strlen(text) + 1, "recv: %s", zbus_strerror(r));
	cr_assert_str_eq(buf, text);
}

Test(broker, a_subscribe_only_open_maps_the_messages_read_only)
{
	struct zbus_pub_opts po = { .timeout_ms = 1000 };
	struct zbus_channel *mine, *ro;
	struct zbus_channel_info info;
	struct zbus_conn *c = conn();
	struct zbus_pub *pub, *none = NULL;
	struct zbus_sub *sub;
	int st;

	mine = create(c, "ro", 0644);
	cr_assert_eq(zbus_conn_open_channel(c, "ro", ZBUS_ACCESS_SUBSCRIBE,
					    &ro), 0, "%s", zbus_conn_error(c));
	cr_assert_eq(zbus_channel_info(ro, &info), 0);
	cr_assert(info.flags & ZBUS_CHANNEL_READ_ONLY);
	cr_assert_eq(fcntl(zbus_channel_fd(ro), F_GETFL) & O_ACCMODE,
		     O_RDONLY, "the broker handed a writable data memfd");
	cr_assert_eq(zbus_pub_new(ro, &po, &none), -EACCES);
	cr_assert_null(none);
	/* Neither a new writable mapping nor the existing one. */
	cr_assert_eq(mmap(NULL, info.segment_bytes, PROT_READ | PROT_WRITE,
			  MAP_SHARED, zbus_channel_fd(ro), 0), MAP_FAILED);
	cr_assert_eq(errno, EACCES);
	cr_assert_eq(waitpid(spawn(write_into, ro), &st, 0) > 0, 1);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
		  "a write into a subscriber's mapping did not fault "
		  "(status %#x)", st);

	/* And it still subscribes: its state memfd is writable. */
	sub = sub_of(ro);
	cr_assert_eq(zbus_pub_new(mine, &po, &pub), 0);
	one_message(pub, sub, "read-only works");
	zbus_pub_free(pub);
	zbus_sub_free(sub);
	zbus_channel_free(ro);
	zbus_channel_free(mine);
	zbus_conn_free(c);
}

/* Child side: as uid 65534, subscribe to "ro" and try to get write access
 * to its messages the ways a process can. */
static int nobody_tries_to_write(void *arg)
{
	struct zbus_channel *ch = NULL;
	struct zbus_sub *sub = NULL;
	struct zbus_sub_opts so = { .policy = ZBUS_LOSSY };
	struct zbus_conn *c;
	char path[64];
	int fd;

	(void)arg;
	STEP(1, drop_to_nobody(NULL, 0) == 0);
	STEP(2, conn_open_at(sock_path, &c) == 0);
	STEP(3, zbus_conn_open_channel(c, "ro", ZBUS_ACCESS_PUBLISH, &ch) ==
			-EACCES);
	STEP(4, zbus_conn_open_channel(c, "ro", ZBUS_ACCESS_SUBSCRIBE,
				       &ch) == 0);
	/* The reopen through /proc that defeats an O_RDONLY fd. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", zbus_channel_fd(ch));
	fd = open(path, O_RDWR);
	STEP(5, fd < 0 && errno == EACCES);
	STEP(6, fchmod(zbus_channel_fd(ch), 0666) < 0 && errno == EPERM);
	STEP(7, ftruncate(zbus_channel_fd(ch), 0) < 0);
	STEP(8, fallocate(zbus_channel_fd(ch), FALLOC_FL_PUNCH_HOLE |
			  FALLOC_FL_KEEP_SIZE, 0, 4096) < 0);
	/* Subscribing still works. */
	STEP(9, zbus_sub_new(ch, &so, &sub) == 0);
	zbus_sub_free(sub);
	zbus_channel_free(ch);
	zbus_conn_free(c);
	return 0;
}

Test(broker, another_uid_cannot_reopen_a_subscribers_memfd_read_write)
{
	struct zbus_conn *c;
	struct zbus_channel *ch;
	int child;

	skip_unless_root();
	c = conn();
	ch = create(c, "ro", 0644);
	child = tu_wait_child(spawn(nobody_tries_to_write, NULL), 25);
	zbus_channel_free(ch);
	zbus_conn_free(c);
	check_child(child, "the uid 65534 child");
}

static struct zbus_channel *sealed_channel(void)
{
	struct zbus_channel_opts o = { .max_msg_size = 256,
				       .ring_capacity = 64,
				       .flags = ZBUS_CHANNEL_SEAL_WRITERS };
	struct zbus_channel *ch;

	cr_assert_eq(zbus_channel_create("sealed", &o, &ch), 0);
	return ch;
}

Test(broker, an_offered_channel_is_published_by_its_producer_alone)
{
	struct zbus_channel_params cp = { .mode = 0666 };
	struct zbus_pub_opts po = { .timeout_ms = 1000 };
	struct zbus_channel *mine = sealed_channel(), *ro, *none = NULL;
	struct zbus_channel_info info;
	struct zbus_channel_stat st;
	struct zbus_conn *c = conn(), *other = conn();
	struct zbus_pub *pub, *no_pub = NULL;
	struct zbus_sub *sub;
	char path[64];
	int fd;

	cr_assert_eq(zbus_conn_offer(c, "offered", &cp, mine), 0, "%s",
		     zbus_conn_error(c));
	cr_assert_eq(zbus_conn_stat(other, "offered", &st), 0);
	cr_assert_eq(st.flags, ZBUS_CHANNEL_SEAL_WRITERS);
	cr_assert_eq(st.owner_uid, getuid());
	cr_assert_eq(st.mode, 0666);
	cr_assert_eq(st.max_msg_size, 256);

	/* Even root, even asking to publish, gets no writer. */
	cr_assert_eq(zbus_conn_open_channel(other, "offered",
					    ZBUS_ACCESS_PUBLISH, &none),
		     -EACCES);
	cr_assert(strstr(zbus_conn_error(other), "sealed"), "%s",
		  zbus_conn_error(other));
	cr_assert_eq(zbus_conn_open_channel(other, "offered",
					    ZBUS_ACCESS_SUBSCRIBE, &ro), 0);
	zbus_channel_info(ro, &info);
	cr_assert_eq(info.flags, ZBUS_CHANNEL_SEAL_WRITERS |
					 ZBUS_CHANNEL_READ_ONLY);
	cr_assert_eq(zbus_pub_new(ro, &po, &no_pub), -EACCES);
	/* The seal holds where file modes do not: root reopening it. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", zbus_channel_fd(ro));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		cr_assert_eq(mmap(NULL, info.segment_bytes,
				  PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
			     MAP_FAILED);
		cr_assert_eq(errno, EPERM);
		cr_assert_eq(pwrite(fd, "x", 1, 0), -1);
		close(fd);
	}

	sub = sub_of(ro);
	cr_assert_eq(zbus_pub_new(mine, &po, &pub), 0);
	one_message(pub, sub, "only mine");
	zbus_pub_free(pub);
	zbus_sub_free(sub);
	zbus_channel_free(ro);
	zbus_conn_free(other);
	zbus_channel_free(mine);
	zbus_conn_free(c);
}

/* Offer @name with @data and @state (-1: not sent) raw; the status. */
static int raw_offer(const char *name, int data, int state,
		     const Zbusctl__ChannelParams *cp)
{
	Zbusctl__Request req = ZBUSCTL__REQUEST__INIT;
	Zbusctl__Offer of = ZBUSCTL__OFFER__INIT;
	struct zb_fds fds = { .n = (data >= 0) + (state >= 0),
			      .fd = { data >= 0 ? data : state, state } };
	Zbusctl__Reply *rep;
	int s = raw_open(), status;

	of.name = (char *)name;
	of.params = (Zbusctl__ChannelParams *)cp;
	req.id = 2;
	req.body_case = ZBUSCTL__REQUEST__BODY_OFFER;
	req.offer = &of;
	cr_assert_eq(zb_ctl_send(s, &req.base, &fds), 0);
	cr_assert_eq(raw_recv(s, 5000, &rep), 1);
	cr_assert_not_null(rep);
	status = rep->status;
	zbusctl__reply__free_unpacked(rep, NULL);
	close(s);
	return status;
}

Test(broker, offers_the_broker_refuses)
{
	struct zbus_channel_opts plain_opts = { .max_msg_size = 256 };
	Zbusctl__ChannelParams geometry = ZBUSCTL__CHANNEL_PARAMS__INIT;
	struct zbus_channel *sealed = sealed_channel(), *other, *plain;
	struct zbus_conn *c = conn();
	int data, state;

	cr_assert_eq(zbus_channel_create("plain", &plain_opts, &plain), 0);
	other = sealed_channel();
	data = zbus_channel_fd(sealed);
	state = zbus_channel_state_fd(sealed);
	/* The library refuses what it can tell is wrong... */
	cr_assert_eq(zbus_conn_offer(c, "plain", NULL, plain), -EINVAL);
	/* ...the broker whatever a raw client sends. */
	cr_assert_eq(raw_offer("plain", zbus_channel_fd(plain),
			       zbus_channel_state_fd(plain), NULL), -EPERM);
	cr_assert_eq(raw_offer("x", data, -1, NULL), -EINVAL);
	cr_assert_eq(raw_offer("x", -1, -1, NULL), -EINVAL);
	cr_assert_eq(raw_offer("x", data, zbus_channel_state_fd(other), NULL),
		     -EBADMSG);
	cr_assert_eq(raw_offer("x", state, data, NULL), -EPERM);
	geometry.max_msg_size = 64;
	cr_assert_eq(raw_offer("x", data, state, &geometry), -EINVAL);
	cr_assert_eq(raw_offer("bad name", data, state, NULL), -EINVAL);
	/* Right, then its name is taken. */
	cr_assert_eq(raw_offer("x", data, state, NULL), 0);
	cr_assert_eq(raw_offer("x", zbus_channel_fd(other),
			       zbus_channel_state_fd(other), NULL), -EEXIST);
	zbus_channel_free(other);
	zbus_channel_free(plain);
	zbus_channel_free(sealed);
	zbus_conn_free(c);
}
