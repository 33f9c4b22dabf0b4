/* SPDX-License-Identifier: MIT */
/*
 * bench_control.c - zbus-bench-control: the control path's costs against a
 * real broker: connecting (hello included), creating a channel, and
 * connecting + opening a channel by name + mapping it, which is what a
 * program pays before its first message; and the time from SIGKILL of a
 * reliable subscriber that holds a full ring to the moment a producer it
 * held back goes on (the broker's reclamation). Each is timed N times
 * (median, p99, max; reclamation N/10 times, a fork each) with a broker
 * started on a private socket by this program.
 *
 *   zbus-bench-control [--zbusd PATH] [-n N] [--json]
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zbus/zbus.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *v, int n, int json)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	if (json)
		printf("{\"scenario\":\"control\",\"transport\":\"zbus\","
		       "\"operation\":\"%s\",\"size\":null,\"p50_ns\":%llu,"
		       "\"p99_ns\":%llu,\"p999_ns\":null,\"max_ns\":%llu,"
		       "\"msgs_per_s\":null,\"gbytes_per_s\":null,"
		       "\"samples\":%d}\n", what,
		       (unsigned long long)v[n / 2],
		       (unsigned long long)v[(n * 99) / 100],
		       (unsigned long long)v[n - 1], n);
	else
		printf("%-34s p50 %8.1f us   p99 %8.1f us   max %8.1f us\n",
		       what, v[n / 2] / 1e3, v[(n * 99) / 100] / 1e3,
		       v[n - 1] / 1e3);
}

/*
 * One reclamation: a child subscribes reliably, registers with the broker
 * and holds a full ring; we SIGKILL it and time how long a non-waiting
 * producer keeps getting -EAGAIN. Return: ns, or 0 on failure.
 */
static uint64_t reclaim_once(const struct zbus_conn_opts *co, int i)
{
	struct zbus_channel_params p = {
		.geometry = { .max_msg_size = 64, .ring_capacity = 8 } };
	struct zbus_pub_opts po = { .timeout_ms = 0 };
	struct zbus_channel *ch = NULL;
	struct zbus_conn *conn = NULL;
	struct zbus_pub *pub = NULL;
	uint64_t t0, t = 0;
	char name[64], ok;
	int fds[2];
	pid_t pid;

	snprintf(name, sizeof(name), "reclaim-%d", i);
	if (pipe(fds) || zbus_conn_open(co, &conn) ||
	    zbus_conn_create(conn, name, &p, &ch))
		goto out;
	pid = fork();
	if (!pid) {
		struct zbus_conn *c;
		struct zbus_channel *mine;
		struct zbus_sub *s;

		if (zbus_conn_open(co, &c) ||
		    zbus_conn_open_channel(c, name, ZBUS_ACCESS_SUBSCRIBE,
					   &mine) ||
		    zbus_sub_new(mine, NULL, &s) ||
		    zbus_conn_register_sub(c, name, s) ||
		    write(fds[1], "k", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	if (read(fds[0], &ok, 1) != 1 || zbus_pub_new(ch, &po, &pub))
		goto kill_out;
	for (int k = 0; k < 8; k++)
		zbus_pub_send(pub, "x", 1);
	t0 = now_ns();
	kill(pid, SIGKILL);
	/* Bounded: 5 s of -EAGAIN is a failure, not a measurement. */
	while (zbus_pub_send(pub, "x", 1) == -EAGAIN &&
	       now_ns() - t0 < 5000000000ull)
		;
	t = now_ns() - t0;
	if (t >= 5000000000ull)
		t = 0;
kill_out:
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
out:
	zbus_pub_free(pub);
	zbus_channel_free(ch);
	if (conn)
		zbus_conn_delete(conn, name);
	zbus_conn_free(conn);
	close(fds[0]);
	close(fds[1]);
	return t;
}

static pid_t start_broker(const char *zbusd, const char *sock)
{
	pid_t pid = fork();

	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		freopen("/dev/null", "w", stderr);
		execl(zbusd, "zbusd", "--socket", sock, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		struct stat st;

		if (stat(sock, &st) == 0)
			return pid;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "zbusd", required_argument, NULL, 'z' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	const char *zbusd = getenv("ZBUS_BROKER");
	char dir[] = "/tmp/zbus-bench-ctl.XXXXXX", sock[128];
	struct zbus_conn_opts co = { .flags = ZBUS_CONN_NO_AUTOSTART };
	int n = 500, json = 0, c, r = 0;
	uint64_t *t_conn, *t_create, *t_open;
	pid_t broker;

	while ((c = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
		switch (c) {
		case 'z': zbusd = optarg; break;
		case 'j': json = 1; break;
		case 'n': n = atoi(optarg); break;
		default: return 2;
		}
	}
	if (!zbusd || n < 1 || !mkdtemp(dir)) {
		fprintf(stderr, "usage: zbus-bench-control --zbusd PATH [-n N] "
				"[--json] (or $ZBUS_BROKER)\n");
		return 2;
	}
	snprintf(sock, sizeof(sock), "%s/zbusd.sock", dir);
	co.socket_path = sock;
	broker = start_broker(zbusd, sock);
	if (broker < 0) {
		fprintf(stderr, "zbus-bench-control: %s did not start\n", zbusd);
		return 1;
	}
	t_conn = calloc((size_t)n, sizeof(uint64_t));
	t_create = calloc((size_t)n, sizeof(uint64_t));
	t_open = calloc((size_t)n, sizeof(uint64_t));
	for (int i = 0; i < n && !r; i++) {
		struct zbus_channel_params p = { .mode = 0600 };
		struct zbus_conn *conn;
		struct zbus_channel *ch;
		char name[64];
		uint64_t t0 = now_ns(), t1, t2, t3;

		snprintf(name, sizeof(name), "bench-%d", i);
		r = zbus_conn_open(&co, &conn);
		t1 = now_ns();
		if (!r)
			r = zbus_conn_create(conn, name, &p, &ch);
		t2 = now_ns();
		if (!r) {
			zbus_channel_free(ch);
			zbus_conn_free(conn);
			/* What a new program pays before its first message:
			 * connect, open by name, map. */
			t2 = now_ns();
			r = zbus_conn_open(&co, &conn);
			if (!r)
				r = zbus_conn_open_channel(conn, name,
							   ZBUS_ACCESS_SUBSCRIBE,
							   &ch);
			t3 = now_ns();
			if (!r) {
				zbus_channel_free(ch);
				zbus_conn_delete(conn, name);
				zbus_conn_free(conn);
			}
			t_open[i] = t3 - t2;
		}
		t_conn[i] = t1 - t0;
		t_create[i] = t2 - t1;
	}
	int nr = n / 10 > 0 ? n / 10 : 1;
	uint64_t *t_reclaim = calloc((size_t)nr, sizeof(uint64_t));

	for (int i = 0; i < nr && !r; i++) {
		t_reclaim[i] = reclaim_once(&co, i);
		if (!t_reclaim[i])
			r = -ETIMEDOUT;
	}
	if (r) {
		fprintf(stderr, "zbus-bench-control: %s\n", zbus_strerror(r));
	} else {
		if (!json)
			printf("control path, %d samples each, broker on a "
			       "private socket:\n", n);
		report("connect (with hello)", t_conn, n, json);
		report("create a channel", t_create, n, json);
		report("connect + open by name + map", t_open, n, json);
		report("SIGKILL of a subscriber -> reclaimed", t_reclaim, nr,
		       json);
	}
	free(t_reclaim);
	kill(broker, SIGTERM);
	waitpid(broker, NULL, 0);
	/* The broker removed its socket and state; its lock stays. */
	snprintf(sock, sizeof(sock), "%s/zbusd.sock.lock", dir);
	unlink(sock);
	rmdir(dir);
	free(t_conn);
	free(t_create);
	free(t_open);
	return r ? 1 : 0;
}
