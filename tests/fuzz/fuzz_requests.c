/* SPDX-License-Identifier: MIT */
/*
 * fuzz_requests.c - libFuzzer target for the broker's decoder and request
 * handlers (broker/requests.c): arbitrary bytes as a stream of request
 * records from one client, whose identity the first byte picks (root, a
 * user, nobody). Whatever arrives, the broker must answer every record
 * with a reply that unpacks, echoes the request's id when there was one,
 * carries a sentence with any refusal, fits a record, and never crash or
 * leak (ASan); its registry stays within the quotas.
 *
 * Input: [identity byte] then records as [2-byte little-endian length]
 * [bytes]. seed_requests.bin holds a hello and a create.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdpass.h"
#include "fuzz.h"
#include "log.h"
#include "requests.h"
#include "zbus_ctl.pb-c.h"


static const uid_t uids[] = { 0, 1000, 65534 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct zbd_registry reg = { 0 };
	struct zbd_client c = { .id = 1, .pid = 1 };
	size_t records = 0;

	zbd_log_quiet = 1;
	if (!size)
		return 0;
	c.who.uid = uids[data[0] % 3];
	c.who.gid = c.who.uid;
	data++;
	size--;
	while (size >= 2 && records++ < 64) {
		size_t len = (size_t)(data[0] | data[1] << 8);
		Zbusctl__Request *req;
		Zbusctl__Reply *rep;
		uint8_t *out;
		size_t out_len;
		struct zb_fds fds, none = { .n = 0, .fd = { -1, -1 } };

		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		struct zbd_action act;

		CHECK(zbd_answer(&reg, &c, data, len, &none, &out, &out_len,
				 &fds, &act) == 0);
		CHECK(out_len <= ZB_CTL_MAX_RECORD);
		rep = zbusctl__reply__unpack(NULL, out_len, out);
		CHECK(rep);
		req = zbusctl__request__unpack(NULL, len, data);
		if (req) {
			CHECK(rep->id == req->id);
			zbusctl__request__free_unpacked(req, NULL);
		} else {
			CHECK(rep->status == -EBADMSG);
		}
		CHECK(rep->status <= 0);
		CHECK(!rep->status || (rep->message && *rep->message));
		CHECK(fds.n == 0 || rep->status == 0);
		zbusctl__reply__free_unpacked(rep, NULL);
		free(out);
		data += len;
		size -= len;
	}
	CHECK(reg.count <= ZBD_MAX_CHANNELS);
	CHECK(zbd_registry_count_owned(&reg, c.who.uid) <=
	      ZBD_MAX_CHANNELS_PER_UID);
	zbd_registry_clear(&reg);
	return 0;
}
