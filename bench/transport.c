/* SPDX-License-Identifier: MIT */
/*
 * transport.c - what zbus-bench's transports share: the table of them
 * (tp_all[]), opening and closing a link over any of them, and the payload
 * check every receiving side makes (transport.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport.h"

static volatile uint64_t g_sink;		/* keeps payload reads alive */

/* Payload: written in full by every sender, read in full by every receiver. */
int bench_payload_check(const void *src, size_t size, uint64_t seq)
{
	const unsigned char *p = src;
	uint64_t sum = 0, w, first, last;
	size_t i;
	bool ok;

	/* Summing every word is the "consumer reads the payload" part. */
	for (i = 0; i + 8 <= size; i += 8) {
		memcpy(&w, p + i, 8);
		sum += w;
	}
	for (; i < size; i++)
		sum += p[i];
	g_sink += sum;

	if (size >= 8) {
		memcpy(&first, p, 8);
		ok = first == seq;
	} else {
		first = p[0];
		ok = first == (seq & 0xff);
	}
	if (size >= 16) {
		memcpy(&last, p + size - 8, 8);
		ok = ok && last == ~seq;
	}
	/* Past 16 bytes the middle byte is neither stamp. */
	if (size > 16)
		ok = ok && p[size / 2] == (unsigned char)(seq & 0xff);
	if (!ok)
		return bench_fail(-EBADMSG,
				  "message %" PRIu64 " arrived with a wrong "
				  "payload (first word %#" PRIx64 ")", seq,
				  first);
	return 0;
}

/* Every transport, in the order of the output. */
const struct transport *const tp_all[] = {
	&tp_zbus, &tp_zbus_mp, &tp_zbus_copy, &tp_zbus_block, &tp_shm_ring,
	&tp_unix, &tp_pipe, &tp_tcp, &tp_mq, &tp_zmq, &tp_iceoryx,
};

const size_t tp_count = sizeof(tp_all) / sizeof(tp_all[0]);

int link_open(struct link *l, enum role role)
{
	size_t bytes = bench_round_up(l->size, CACHE_LINE);

	if (l->tp->copies) {
		/* After fork(), faulted in now: no timed loop pays for it. */
		l->buf = aligned_alloc(CACHE_LINE, bytes);
		if (!l->buf)
			return bench_fail(-ENOMEM, "aligned_alloc(%zu)", bytes);
		memset(l->buf, 0, bytes);
	}
	return l->tp->open(l, role);
}

void link_close(struct link *l)
{
	l->tp->close(l);
	free(l->buf);
	l->buf = NULL;
}
