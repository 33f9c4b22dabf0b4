/* SPDX-License-Identifier: MIT */
/*
 * testutil.c - shared test helpers.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int tu_base_fds = -1, tu_base_maps = -1;

int tu_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

int tu_count_zbus_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "/memfd:zbus:"))
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
