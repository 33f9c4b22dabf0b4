/* SPDX-License-Identifier: MIT */
/*
 * main.c - zbusd, the libzbus broker: command line, socket, lifecycle.
 *
 *   zbusd [--socket PATH] [--background] [--unblock-timeout MS]
 *         [--recovery-window MS]
 *
 * The socket is PATH, else $ZBUS_SOCKET, else
 * $XDG_RUNTIME_DIR/zbus/zbusd.sock, else /run/zbus/zbusd.sock. A lock file
 * beside it (PATH.lock, flock) is held for the broker's life: a second
 * broker finds it taken and leaves the live one alone (exit status 3); a
 * socket left by a dead broker (nobody holds the lock, nobody answers) is
 * replaced. --background returns once the socket listens, leaving the
 * broker in its own session: that is how libzbus starts one by itself.
 *
 * The registry is saved beside the socket (PATH.state) at every change. A
 * broker that finds one recovers: for --recovery-window its channels wait
 * for their clients to bring their memfds back (they reconnect by
 * themselves); those nobody brings back are then forgotten. The state is
 * for a broker that died: a clean stop (SIGTERM, SIGINT) removes it, so
 * that the next broker starts empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "persist.h"
#include "server.h"
#include "wait.h"
#include "sockpath.h"

#define EXIT_ALREADY_RUNNING 3
/* Like Aeron's publication unblock timeout (15 s): far above any
 * legitimate hold of a loan, well below a human's patience. */
#define DEFAULT_UNBLOCK_MS 10000
#define DEFAULT_RECOVERY_MS 30000

/* Load what a previous broker on @path saved; its channels wait
 * @window_ms for their memfds. A bad file is set aside, not fatal. */
static void recover(struct zbd_server *s, const char *path,
		    unsigned long window_ms)
{
	struct zbd_saved_state st;
	int r;

	if (snprintf(s->state_path, sizeof(s->state_path), "%s.state",
		     path) >= (int)sizeof(s->state_path)) {
		zbd_log("socket path too long for a state file: no recovery");
		s->state_path[0] = 0;
		return;
	}
	r = zbd_persist_load(s->state_path, &st);
	if (r < 0) {
		zbd_log("ignoring the saved registry %s: %s", s->state_path,
			strerror(-r));
		return;
	}
	s->reg.next_id = st.next_id;
	if (!st.nchannels)
		return; /* and so no watches */
	s->reg.pending = st.channels;
	s->reg.npending = st.nchannels;
	s->reg.pending_watches = st.watches;
	s->reg.npending_watches = st.nwatches;
	s->reg.pending_until_ns = zb_now_ns() + window_ms * 1000000ull;
	zbd_log("recovering %zu channel%s and %zu watched process%s of the "
		"previous broker (for %lu ms)", st.nchannels,
		st.nchannels == 1 ? "" : "s", st.nwatches,
		st.nwatches == 1 ? "" : "es", window_ms);
}

/* --@opt's value (optarg): milliseconds up to a day. Return: 0; -1 with
 * a message. */
static int parse_ms(const char *opt, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(optarg, &end, 10);
	if (errno || end == optarg || *end || *out > 86400000ul) {
		fprintf(stderr, "zbusd: --%s: milliseconds, 0..86400000\n",
			opt);
		return -1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: zbusd [--socket PATH] [--background] "
		   "[--unblock-timeout MS]\n"
		   "  --socket PATH  listen on PATH (default: $ZBUS_SOCKET, "
		   "$XDG_RUNTIME_DIR/zbus/zbusd.sock, /run/zbus/zbusd.sock)\n"
		   "  --background   detach once listening (logs go to "
		   "/dev/null)\n"
		   "  --unblock-timeout MS\n"
		   "                 take back a loan held open this long, for "
		   "channels that\n"
		   "                 do not set their own (default %d; 0: "
		   "never)\n"
		   "  --recovery-window MS\n"
		   "                 after a restart, how long channels wait "
		   "for a client to\n"
		   "                 bring them back (default %d)\n",
		DEFAULT_UNBLOCK_MS, DEFAULT_RECOVERY_MS);
}

/* mkdir -p the directory of @path (mode 0755: others must reach the
 * socket; what they may do there is the broker's to decide). */
static int make_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int answers(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	int ok;

	if (fd < 0)
		return 0;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/*
 * Take the lock, replace a stale socket, bind and listen.
 * Return: the listening fd; -EADDRINUSE when a live broker has it.
 */
static int listen_on(const char *path, int *lock_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char lock_path[sizeof(sa.sun_path) + 8];
	int fd, r;

	r = make_parent(path);
	if (r < 0)
		return r;
	snprintf(lock_path, sizeof(lock_path), "%s.lock", path);
	*lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (*lock_fd < 0)
		return -errno;
	if (flock(*lock_fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
	/* We hold the lock: a socket still there belongs to a dead broker,
	 * unless something else answers on it (never steal that). */
	if (access(path, F_OK) == 0) {
		if (answers(path))
			return -EADDRINUSE;
		zbd_log("replacing the stale socket %s", path);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0666) < 0 || listen(fd, 128) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* Detach once listening: the parent's exit tells the starter we are up. */
static int background(void)
{
	pid_t pid = fork();
	int null;

	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	setsid();
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		close(null);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "background", no_argument, NULL, 'b' },
		{ "unblock-timeout", required_argument, NULL, 'u' },
		{ "recovery-window", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *want = NULL;
	struct zbd_server s;
	int bg = 0, c, fd, lock_fd = -1, r;
	unsigned long unblock_ms = DEFAULT_UNBLOCK_MS;
	unsigned long recovery_ms = DEFAULT_RECOVERY_MS;

	/*
	 * A broker started by a library inherits whatever its client had
	 * open without CLOEXEC (pipes, sockets); holding them for the
	 * broker's life would keep the client's peers from seeing EOF.
	 */
	syscall(SYS_close_range, 3, ~0U, 0);
	while ((c = getopt_long(argc, argv, "s:bu:r:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': want = optarg; break;
		case 'b': bg = 1; break;
		case 'u':
			if (parse_ms("unblock-timeout", &unblock_ms))
				return 2;
			break;
		case 'r':
			if (parse_ms("recovery-window", &recovery_ms))
				return 2;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (zb_socket_path(want, path, sizeof(path)) < 0) {
		fprintf(stderr, "zbusd: socket path too long\n");
		return 2;
	}
	fd = listen_on(path, &lock_fd);
	if (fd == -EADDRINUSE) {
		fprintf(stderr, "zbusd: a live broker already serves %s\n",
			path);
		return EXIT_ALREADY_RUNNING;
	}
	if (fd < 0) {
		fprintf(stderr, "zbusd: cannot listen on %s: %s\n", path,
			strerror(-fd));
		return 1;
	}
	if (bg && background() < 0) {
		fprintf(stderr, "zbusd: fork: %s\n", strerror(errno));
		return 1;
	}
	r = zbd_server_init(&s, fd);
	if (r < 0) {
		zbd_log("cannot start: %s", strerror(-r));
		return 1;
	}
	s.reg.default_unblock_ms = (uint32_t)unblock_ms;
	zbd_log("listening on %s", path);
	recover(&s, path, recovery_ms);
	r = zbd_server_run(&s);
	zbd_server_fini(&s);
	/* Still ours: no successor can replace it while we hold the lock. */
	unlink(path);
	if (s.state_path[0])
		unlink(s.state_path);
	close(fd);
	close(lock_fd);
	zbd_log("stopped");
	return r < 0 ? 1 : 0;
}
