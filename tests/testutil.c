/* SPDX-License-Identifier: MIT */
/*
 * testutil.c - shared test helpers.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zbus/zbus.h"

int tu_base_fds = -1, tu_base_maps = -1;

static int count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int tu_count_fds(void)
{
	int n = count_entries("/proc/self/fd");

	return n < 0 ? n : n - 1; /* the directory's own fd */
}

int tu_count_fds_of(pid_t pid)
{
	char p[64];

	snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
	return count_entries(p);
}

int tu_count_threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

int tu_count_zbus_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "/memfd:zbus:") ||
		    strstr(line, "/memfd:zbus-state:"))
			n++;
	fclose(f);
	return n;
}

void tu_leak_begin(void)
{
	tu_base_fds = tu_count_fds();
	tu_base_maps = tu_count_zbus_maps();
}

int tu_leak_delta(void)
{
	return (tu_count_fds() - tu_base_fds) +
	       (tu_count_zbus_maps() - tu_base_maps);
}

int tu_segment_copy(const struct zbus_channel_opts *o, uint8_t **buf,
		    size_t *size, uint8_t **state, size_t *state_size)
{
	struct zbus_channel *ch = NULL;
	uint8_t **bufs[2] = { buf, state };
	size_t *sizes[2] = { size, state_size };
	int fds[2], r;

	*buf = *state = NULL;
	r = zbus_channel_create("segment-copy", o, &ch);
	if (r < 0)
		return r;
	fds[0] = zbus_channel_fd(ch);
	fds[1] = zbus_channel_state_fd(ch);
	/* Both from one channel: each header names the channel_id and
	 * sizes of the other, so copies of two channels never attach. */
	for (int i = 0; i < 2 && !r; i++) {
		struct stat st;

		if (fstat(fds[i], &st) < 0) {
			r = -errno;
			break;
		}
		*sizes[i] = (size_t)st.st_size;
		*bufs[i] = malloc(*sizes[i]);
		if (!*bufs[i])
			r = -ENOMEM;
		else if (pread(fds[i], *bufs[i], *sizes[i], 0) !=
			 (ssize_t)*sizes[i])
			r = -EIO;
	}
	if (r < 0) {
		free(*buf);
		free(*state);
		*buf = *state = NULL;
	}
	zbus_channel_free(ch);
	return r;
}

int tu_sealed_memfd(const char *name, const void *buf, size_t len,
		    uint64_t file_size, unsigned mfd_flags, int seals)
{
	char label[64];
	int fd, r = 0;

	snprintf(label, sizeof(label), "zbus:%s", name);
	fd = memfd_create(label, MFD_CLOEXEC | mfd_flags);
	if (fd < 0)
		return -errno;
	if (len > file_size)
		len = (size_t)file_size;
	if (ftruncate(fd, (off_t)file_size) < 0 ||
	    (len && pwrite(fd, buf, len, 0) != (ssize_t)len) ||
	    (seals && fcntl(fd, F_ADD_SEALS, seals) < 0))
		r = errno ? -errno : -EIO;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

uint64_t tu_env_u64(const char *name, uint64_t dflt)
{
	const char *e = getenv(name);

	return e && *e ? strtoull(e, NULL, 0) : dflt;
}

uint64_t tu_hash(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

void tu_fill(void *buf, size_t len, uint32_t producer, uint64_t index)
{
	uint8_t *b = buf;
	uint64_t h;

	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(index * 131 + producer * 7 + i * 13);
	if (len < 20)
		return;
	memcpy(b, &producer, 4);
	memcpy(b + 4, &index, 8);
	h = tu_hash(b + 20, len - 20) ^ tu_hash(b, 12);
	memcpy(b + 12, &h, 8);
}

int tu_check(const void *buf, size_t len, uint32_t *producer,
	     uint64_t *index)
{
	const uint8_t *b = buf;
	uint64_t h;

	if (len < 20)
		return -1;
	memcpy(producer, b, 4);
	memcpy(index, b + 4, 8);
	memcpy(&h, b + 12, 8);
	return h == (tu_hash(b + 20, len - 20) ^ tu_hash(b, 12)) ? 0 : -1;
}

int tu_wait_child(pid_t pid, int timeout_s)
{
	struct timespec nap = { 0, 1000000 };
	int st;

	for (long i = 0; i < (long)timeout_s * 1000; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		if (r < 0 && errno != EINTR)
			return -1;
		nanosleep(&nap, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* Not instrumented by TSan: a lossy reader's seqlock read races with the
 * producer by design and is validated afterwards (zbus_sub_release). Plain
 * loops, not memcpy, which TSan intercepts. */
__attribute__((no_sanitize_thread)) int tu_check_racy(const void *buf,
							size_t len,
							uint32_t *producer,
							uint64_t *index)
{
	const volatile uint8_t *b = buf;
	uint64_t h = 1469598103934665603ull, h0 = 1469598103934665603ull;
	uint64_t stamped = 0;
	uint32_t prod = 0;
	uint64_t idx = 0;

	if (len < 20)
		return -1;
	for (int i = 0; i < 4; i++)
		prod |= (uint32_t)b[i] << (8 * i);
	for (int i = 0; i < 8; i++) {
		idx |= (uint64_t)b[4 + i] << (8 * i);
		stamped |= (uint64_t)b[12 + i] << (8 * i);
	}
	for (size_t i = 0; i < 12; i++) {
		h0 ^= b[i];
		h0 *= 1099511628211ull;
	}
	for (size_t i = 20; i < len; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	*producer = prod;
	*index = idx;
	return stamped == (h ^ h0) ? 0 : -1;
}

/* Start zbusd on @b's socket and wait until it answers. */
static int broker_exec(struct tu_broker *b)
{
	const char *build = getenv("ZBUS_BUILD_DIR");
	struct zbus_conn_opts co = { .flags = ZBUS_CONN_NO_AUTOSTART };
	char zbusd[512];

	if (!build)
		return -ENOENT;
	snprintf(zbusd, sizeof(zbusd), "%s/broker/zbusd", build);
	b->pid = fork();
	if (b->pid < 0)
		return -errno;
	if (!b->pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (!freopen(b->log, "a", stderr))
			_exit(126);
		execl(zbusd, "zbusd", "--socket", b->sock, (char *)NULL);
		_exit(127);
	}
	co.socket_path = b->sock;
	for (int i = 0; i < 500; i++) {
		struct zbus_conn *c;

		if (zbus_conn_open(&co, &c) == 0) {
			zbus_conn_free(c);
			return 0;
		}
		usleep(10000);
	}
	return -ETIMEDOUT;
}

int tu_broker_start(struct tu_broker *b)
{
	int r;

	if (!getenv("ZBUS_BUILD_DIR"))
		return -ENOENT;
	snprintf(b->dir, sizeof(b->dir), "/tmp/zbus-test.XXXXXX");
	if (!mkdtemp(b->dir))
		return -errno;
	/* Others (tests that drop to another user) must reach the socket. */
	chmod(b->dir, 0755);
	snprintf(b->sock, sizeof(b->sock), "%s/zbusd.sock", b->dir);
	snprintf(b->log, sizeof(b->log), "%s/zbusd.log", b->dir);
	r = broker_exec(b);
	if (r < 0)
		tu_broker_stop(b);
	return r;
}

int tu_broker_restart(struct tu_broker *b)
{
	if (b->pid > 0) {
		kill(b->pid, SIGKILL);
		waitpid(b->pid, NULL, 0);
		b->pid = 0;
	}
	return broker_exec(b);
}

void tu_broker_stop(struct tu_broker *b)
{
	char path[192];

	if (b->pid > 0) {
		kill(b->pid, SIGTERM);
		waitpid(b->pid, NULL, 0);
		b->pid = 0;
	}
	unlink(b->log);
	unlink(b->sock);
	snprintf(path, sizeof(path), "%s.lock", b->sock);
	unlink(path);
	snprintf(path, sizeof(path), "%s.state", b->sock);
	unlink(path);
	rmdir(b->dir);
}
