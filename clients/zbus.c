/* SPDX-License-Identifier: MIT */
/*
 * zbus.c - the zbus command-line tool: publish, subscribe and look at the
 * bus from a shell.
 *
 *   zbus [--socket PATH] pub CHANNEL [--file F | --records] [--mode M]
 *                                    [--max-size N]
 *   zbus [--socket PATH] sub CHANNEL [-n N] [--lossy] [--records]
 *                                    [--timeout MS]
 *   zbus [--socket PATH] ls
 *   zbus [--socket PATH] stat CHANNEL
 *
 * pub reads standard input: one message per line (without its newline) by
 * default, the whole of F as one message with --file (a file larger than
 * the channel's messages is published by reference: subscribers pull it
 * out of pub's mapping of it, and pub waits until every reliable one has
 * it), or binary records
 * (a 4-byte little-endian length, then that many bytes) with --records.
 * sub writes each message followed by a newline, or as such records.
 * Either creates the channel when it does not exist yet (mode 0600 unless
 * --mode), so the two can start in any order; a subscriber sees the
 * messages published after it subscribed.
 *
 * Errors are one line on stderr and exit status 1 (2 for usage).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zbus/zbus.h>

#define DEFAULT_MAX_SIZE (64u * 1024)

static volatile sig_atomic_t interrupted;

struct tool {
	const char *socket;
	struct zbus_conn *conn;
};

static int fail(const struct tool *t, const char *what, int err)
{
	const char *why = t && t->conn ? zbus_conn_error(t->conn) : "";

	fprintf(stderr, "zbus: %s: %s%s%s\n", what, zbus_strerror(err),
		*why ? ": " : "", why);
	return 1;
}

static int connect_broker(struct tool *t)
{
	struct zbus_conn_opts o = { .socket_path = t->socket };
	int r = zbus_conn_open(&o, &t->conn);

	return r < 0 ? fail(t, "cannot reach the broker", r) : 0;
}

/* Open @name, creating it with @mode and @max_size if it is missing. */
/* Open channel @name, creating it with these parameters if it is new. */
static int create_or_open(struct tool *t, const char *name, uint32_t mode,
			  uint32_t max_size, uint32_t policy,
			  struct zbus_channel **ch)
{
	struct zbus_channel_params p = {
		.geometry = { .max_msg_size = max_size },
		.mode = mode,
		.default_policy = policy,
		.flags = ZBUS_CREATE_OPEN_EXISTING,
	};

	return zbus_conn_create(t->conn, name, &p, ch);
}

static int open_channel(struct tool *t, const char *name, uint32_t mode,
			uint32_t max_size, uint32_t policy,
			struct zbus_channel **ch)
{
	int r = create_or_open(t, name, mode, max_size, policy, ch);

	if (r < 0) {
		char what[300];

		snprintf(what, sizeof(what), "channel '%s'", name);
		return fail(t, what, r);
	}
	return 0;
}

static int read_full(FILE *f, void *buf, size_t len)
{
	return fread(buf, 1, len, f) == len ? 0 : -1;
}

static int publish(struct zbus_pub *pub, const void *data, size_t len)
{
	int r = zbus_pub_send(pub, data, len);

	if (r < 0)
		fprintf(stderr, "zbus: publish: %s\n", zbus_strerror(r));
	return r;
}

static int pub_lines(struct zbus_pub *pub, size_t max)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int r = 0;

	while (!r && (n = getline(&line, &cap, stdin)) >= 0) {
		if (n && line[n - 1] == '\n')
			n--;
		if ((size_t)n > max) {
			fprintf(stderr, "zbus: a line of %zd bytes exceeds the "
				"channel's maximum message size (%zu)\n", n,
				max);
			r = -EMSGSIZE;
			break;
		}
		r = publish(pub, line, (size_t)n);
	}
	free(line);
	return r;
}

static int pub_records(struct zbus_pub *pub, size_t max)
{
	uint8_t hdr[4];
	uint8_t *buf = malloc(max ? max : 1);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	while (!r && read_full(stdin, hdr, 4) == 0) {
		uint32_t len = hdr[0] | hdr[1] << 8 | hdr[2] << 16 |
			       (uint32_t)hdr[3] << 24;

		if (len > max) {
			fprintf(stderr, "zbus: a record of %u bytes exceeds the "
				"channel's maximum message size (%zu)\n", len,
				max);
			r = -EMSGSIZE;
		} else if (read_full(stdin, buf, len) < 0) {
			fprintf(stderr, "zbus: truncated record on stdin\n");
			r = -EIO;
		} else {
			r = publish(pub, buf, len);
		}
	}
	free(buf);
	return r;
}

/*
 * A file larger than the channel's messages: map it and publish it by
 * reference; subscribers pull it straight out of the mapping (one copy),
 * and we stay until every reliable one has.
 */
static int pub_file_by_ref(struct zbus_pub *pub, int fd, size_t size)
{
	uint64_t seq;
	void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	int r;

	if (p == MAP_FAILED)
		return -errno;
	r = zbus_pub_send_ref(pub, p, size, &seq);
	if (r == 0)
		r = zbus_pub_ref_wait(pub, seq, -1);
	munmap(p, size);
	return r;
}

static int pub_file(struct zbus_pub *pub, const char *path, size_t max)
{
	FILE *f = fopen(path, "rb");
	struct zbus_loan loan;
	long size;
	int r;

	if (!f) {
		fprintf(stderr, "zbus: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) < 0) {
		fprintf(stderr, "zbus: %s: cannot size it\n", path);
		fclose(f);
		return -EIO;
	}
	if ((size_t)size > max) {
		r = pub_file_by_ref(pub, fileno(f), (size_t)size);
		fclose(f);
		if (r < 0)
			fprintf(stderr, "zbus: %s is %ld bytes, more than the "
				"channel's maximum message size (%zu), and "
				"publishing it by reference failed: %s\n",
				path, size, max, zbus_strerror(r));
		return r;
	}
	/* Read straight into the loan: the file is copied once. */
	r = zbus_pub_loan(pub, (size_t)size, &loan);
	if (r < 0) {
		fclose(f);
		fprintf(stderr, "zbus: publish: %s\n", zbus_strerror(r));
		return r;
	}
	if (size && read_full(f, loan.data, (size_t)size) < 0) {
		zbus_pub_abandon(pub, &loan);
		fclose(f);
		fprintf(stderr, "zbus: %s: read failed\n", path);
		return -EIO;
	}
	fclose(f);
	return zbus_pub_publish(pub, &loan, (size_t)size);
}

static int cmd_pub(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "records", no_argument, NULL, 'r' },
		{ "mode", required_argument, NULL, 'm' },
		{ "max-size", required_argument, NULL, 's' },
		{ 0 },
	};
	uint32_t mode = 0600, max_size = DEFAULT_MAX_SIZE;
	struct zbus_channel_info info;
	const char *file = NULL;
	struct zbus_channel *ch;
	struct zbus_pub *pub;
	int records = 0, c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:rm:s:", opts, NULL)) != -1) {
		switch (c) {
		case 'f': file = optarg; break;
		case 'r': records = 1; break;
		case 'm': mode = (uint32_t)strtoul(optarg, NULL, 8); break;
		case 's': max_size = (uint32_t)strtoul(optarg, NULL, 0); break;
		default: return 2;
		}
	}
	if (optind != argc - 1 || (file && records)) {
		fprintf(stderr, "usage: zbus pub CHANNEL [--file F | --records] "
				"[--mode M] [--max-size N]\n");
		return 2;
	}
	if (connect_broker(t) ||
	    open_channel(t, argv[optind], mode, max_size, ZBUS_RELIABLE, &ch))
		return 1;
	zbus_channel_info(ch, &info);
	r = zbus_pub_new(ch, NULL, &pub);
	if (r < 0) {
		zbus_channel_free(ch);
		return fail(t, "publisher", r);
	}
	/* If we are killed mid-message, the broker takes our loan back
	 * and the subscribers go on. */
	r = zbus_conn_register_pub(t->conn, argv[optind], pub);
	if (r < 0) {
		zbus_pub_free(pub);
		zbus_channel_free(ch);
		return fail(t, "register the publisher", r);
	}
	if (file)
		r = pub_file(pub, file, info.max_msg_size);
	else if (records)
		r = pub_records(pub, info.max_msg_size);
	else
		r = pub_lines(pub, info.max_msg_size);
	zbus_pub_free(pub);
	zbus_channel_free(ch);
	return r < 0 ? 1 : 0;
}

/* Write message by reference @m to stdout, pulled a piece at a time. */
static int write_pulled(struct zbus_sub *sub, const struct zbus_msg *m)
{
	static uint8_t piece[1 << 20];

	for (uint64_t off = 0; off < m->size; off += sizeof(piece)) {
		size_t n = m->size - off < sizeof(piece) ?
				   (size_t)(m->size - off) : sizeof(piece);
		ssize_t r = zbus_sub_pull(sub, m, off, piece, n);

		if (r < 0) {
			fprintf(stderr, "zbus: message %lu by reference: %s\n",
				(unsigned long)m->seq, zbus_strerror((int)r));
			return (int)r;
		}
		if (fwrite(piece, 1, n, stdout) != n)
			return -EIO;
	}
	return 0;
}

static int write_msg(struct zbus_sub *sub, const struct zbus_msg *m,
		     int records)
{
	int r;

	if (records) {
		uint8_t hdr[4] = { (uint8_t)m->size, (uint8_t)(m->size >> 8),
				   (uint8_t)(m->size >> 16),
				   (uint8_t)(m->size >> 24) };

		if (fwrite(hdr, 1, 4, stdout) != 4)
			return -1;
	}
	if (m->flags & ZBUS_MSG_REF) {
		r = write_pulled(sub, m);
		if (r == -EIO)
			return -1;
		/* A failed pull loses that message, not the stream. */
	} else if (m->size && fwrite(m->data, 1, m->size, stdout) != m->size) {
		return -1;
	}
	if (!records && putchar('\n') == EOF)
		return -1;
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int cmd_sub(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "lossy", no_argument, NULL, 'l' },
		{ "records", no_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{ "mode", required_argument, NULL, 'm' },
		{ "max-size", required_argument, NULL, 's' },
		{ 0 },
	};
	uint32_t mode = 0600, max_size = DEFAULT_MAX_SIZE;
	struct zbus_sub_opts so = { .policy = ZBUS_RELIABLE };
	struct sigaction sa = { .sa_handler = on_signal };
	uint64_t want = 0, got = 0;
	long timeout_ms = -1, idle_ms = 0;
	struct zbus_channel *ch;
	struct zbus_sub *sub;
	int records = 0, c, r = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "n:lrt:m:s:", opts, NULL)) != -1) {
		switch (c) {
		case 'n': want = strtoull(optarg, NULL, 10); break;
		case 'l': so.policy = ZBUS_LOSSY; break;
		case 'r': records = 1; break;
		case 't': timeout_ms = strtol(optarg, NULL, 10); break;
		case 'm': mode = (uint32_t)strtoul(optarg, NULL, 8); break;
		case 's': max_size = (uint32_t)strtoul(optarg, NULL, 0); break;
		default: return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: zbus sub CHANNEL [-n N] [--lossy] "
				"[--records] [--timeout MS]\n");
		return 2;
	}
	/* SIGINT/SIGTERM end the loop (each wait is 100 ms at most). */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (connect_broker(t))
		return 1;
	/* Made if it is new. A channel this user may not map (its mode's
	 * execute bit) is refused here and delivered by the broker below. */
	r = create_or_open(t, argv[optind], mode, max_size, so.policy, &ch);
	if (r == 0)
		zbus_channel_free(ch);
	else if (r != -EACCES)
		return open_channel(t, argv[optind], mode, max_size,
				    so.policy, &ch);
	/* Mapped and registered (the broker frees our slot if we are
	 * killed), or delivered by the broker; publishers of another user
	 * have their messages by reference pulled by the broker for us. */
	r = zbus_conn_subscribe(t->conn, argv[optind], &so, 0, &sub);
	if (r < 0)
		return fail(t, "subscribe", r);
	/* Tell a script we are subscribed: what is published from now on
	 * reaches us. */
	fprintf(stderr, "zbus: subscribed to '%s'\n", argv[optind]);
	while (!interrupted && (!want || got < want)) {
		struct zbus_msg m[32];
		int n = zbus_sub_recv_batch(sub, m, want && want - got < 32
							    ? (unsigned)(want - got)
							    : 32,
					    100);

		if (n == -ETIMEDOUT) {
			idle_ms += 100;
			if (timeout_ms >= 0 && idle_ms >= timeout_ms)
				break;
			continue;
		}
		if (n == -EBADMSG) {
			fprintf(stderr, "zbus: skipped a corrupt message\n");
			continue;
		}
		if (n < 0) {
			r = n;
			fprintf(stderr, "zbus: receive: %s\n", zbus_strerror(n));
			break;
		}
		idle_ms = 0;
		for (int i = 0; i < n && !r; i++) {
			if (m[i].missed)
				fprintf(stderr, "zbus: missed %lu message(s)\n",
					(unsigned long)m[i].missed);
			if (write_msg(sub, &m[i], records) < 0)
				r = -EIO;
		}
		if (zbus_sub_release(sub) < 0)
			fprintf(stderr, "zbus: messages overwritten while "
					"read: output may be torn\n");
		fflush(stdout);
		got += (uint64_t)n;
		if (r)
			break;
	}
	zbus_sub_free(sub);
	return r < 0 ? 1 : 0;
}

/* A uid, or "-" when the broker watches nobody for the slot. */
static const char *uid_text(uint32_t uid, char *buf, size_t len)
{
	if (uid == ZBUS_UID_UNKNOWN)
		return "-";
	snprintf(buf, len, "%u", uid);
	return buf;
}

/*
 * The publishers and subscribers of channel @name, indented under it: a
 * row each, after a header naming the columns. A channel deleted since it
 * was listed shows none.
 */
static void print_members(struct tool *t, const char *name)
{
	struct zbus_pub_stat *pubs = NULL;
	struct zbus_sub_stat *subs = NULL;
	int np = zbus_conn_publishers(t->conn, name, &pubs);
	int ns = zbus_conn_subscribers(t->conn, name, &subs);
	char uid[16];

	if (np > 0)
		printf("  %-3s %5s %8s %10s %-9s %12s %10s\n", "PUB", "SLOT",
		       "PID", "UID", "CLAIM", "PUBLISHED", "MSG/S");
	for (int i = 0; i < np; i++)
		printf("  %-3s %5u %8u %10s %-9s %12llu %10.1f\n", "pub",
		       pubs[i].slot, pubs[i].pid,
		       uid_text(pubs[i].uid, uid, sizeof(uid)),
		       pubs[i].flags & ZBUS_PUB_EXCLUSIVE ? "exclusive" :
							    "shared",
		       (unsigned long long)pubs[i].published, pubs[i].rate);
	if (ns > 0)
		printf("  %-3s %5s %8s %10s %-9s %12s %12s %10s\n", "SUB",
		       "SLOT", "PID", "UID", "POLICY", "LAG", "MISSED",
		       "MSG/S");
	for (int i = 0; i < ns; i++)
		printf("  %-3s %5u %8u %10s %-9s %12llu %12llu %10.1f\n",
		       "sub", subs[i].slot, subs[i].pid,
		       uid_text(subs[i].uid, uid, sizeof(uid)),
		       subs[i].policy == ZBUS_LOSSY ? "lossy" : "reliable",
		       (unsigned long long)subs[i].lag,
		       (unsigned long long)subs[i].missed, subs[i].rate);
	free(pubs);
	free(subs);
}

static void print_channel_header(void)
{
	printf("%-24s %11s %4s %4s %4s %8s %10s %12s %9s\n", "CHANNEL",
	       "OWNER", "MODE", "PUBS", "SUBS", "DEPTH", "MSG/S",
	       "PUBLISHED", "RECLAIMED");
}

static void print_channel(const struct zbus_channel_stat *st)
{
	char owner[24];

	snprintf(owner, sizeof(owner), "%u:%u", st->owner_uid,
		 st->owner_gid);
	printf("%-24s %11s %04o %4u %4u %8llu %10.1f %12llu %9llu\n",
	       st->name, owner, st->mode, st->publishers, st->subscribers,
	       (unsigned long long)st->depth, st->publish_rate,
	       (unsigned long long)st->published,
	       (unsigned long long)st->reclaimed);
}

static int cmd_ls(struct tool *t, int argc, char **argv)
{
	struct zbus_channel_stat *v;
	int n;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: zbus ls\n");
		return 2;
	}
	if (connect_broker(t))
		return 1;
	n = zbus_conn_list(t->conn, &v);
	if (n < 0)
		return fail(t, "list", n);
	print_channel_header();
	for (int i = 0; i < n; i++) {
		print_channel(&v[i]);
		print_members(t, v[i].name);
	}
	free(v);
	return 0;
}

static int cmd_stat(struct tool *t, int argc, char **argv)
{
	struct zbus_channel_stat st;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: zbus stat CHANNEL\n");
		return 2;
	}
	if (connect_broker(t))
		return 1;
	r = zbus_conn_stat(t->conn, argv[1], &st);
	if (r < 0)
		return fail(t, argv[1], r);
	printf("channel:          %s\n"
	       "owner:            uid %u gid %u, mode %03o\n"
	       "writers:          %s\n"
	       "max message:      %u bytes\n"
	       "ring:             %u descriptors\n"
	       "arena:            %llu bytes (segment %llu bytes)\n"
	       "max subscribers:  %u\n"
	       "max publishers:   %u\n"
	       "default policy:   %s\n"
	       "publishers:       %u\n"
	       "subscribers:      %u\n"
	       "published:        %llu messages\n"
	       "rate:             %.1f messages/s\n"
	       "depth:            %llu messages\n"
	       "reclaimed:        %llu messages\n\n",
	       st.name, st.owner_uid, st.owner_gid, st.mode,
	       (st.flags & ZBUS_CHANNEL_SEAL_WRITERS) ?
		       "sealed: only the process that offered it" :
		       "whoever the mode lets publish",
	       st.max_msg_size,
	       st.ring_capacity, (unsigned long long)st.arena_bytes,
	       (unsigned long long)st.segment_bytes, st.max_subscribers,
	       st.max_publishers,
	       st.default_policy == ZBUS_LOSSY ? "lossy" : "reliable",
	       st.publishers, st.subscribers,
	       (unsigned long long)st.published, st.publish_rate,
	       (unsigned long long)st.depth,
	       (unsigned long long)st.reclaimed);
	print_channel_header();
	print_channel(&st);
	print_members(t, argv[1]);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: zbus [--socket PATH] COMMAND ...\n"
		"  pub CHANNEL [--file F | --records] [--mode M] [--max-size N]\n"
		"        publish stdin: a message per line, F as one message, or\n"
		"        length-prefixed records (4-byte little-endian length)\n"
		"  sub CHANNEL [-n N] [--lossy] [--records] [--timeout MS]\n"
		"        print messages (a line each, or records); stop after N,\n"
		"        or after MS milliseconds without a message\n"
		"  ls    list channels with their publishers and subscribers:\n"
		"        pids, uids, counts, lag, losses, messages per second\n"
		"  stat CHANNEL\n"
		"        one channel in detail, and the same table for it\n"
		"The broker's socket: --socket, $ZBUS_SOCKET, "
		"$XDG_RUNTIME_DIR/zbus/zbusd.sock,\n"
		"or /run/zbus/zbusd.sock; a broker is started when none "
		"answers.\n");
}

int main(int argc, char **argv)
{
	struct tool t = { 0 };
	int i = 1, r;

	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			t.socket = argv[i + 1];
			i += 2;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[i], "pub"))
		r = cmd_pub(&t, argc - i, argv + i);
	else if (!strcmp(argv[i], "sub"))
		r = cmd_sub(&t, argc - i, argv + i);
	else if (!strcmp(argv[i], "ls"))
		r = cmd_ls(&t, argc - i, argv + i);
	else if (!strcmp(argv[i], "stat"))
		r = cmd_stat(&t, argc - i, argv + i);
	else {
		fprintf(stderr, "zbus: unknown command '%s'\n", argv[i]);
		usage(stderr);
		r = 2;
	}
	zbus_conn_free(t.conn);
	return r;
}
