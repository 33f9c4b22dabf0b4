/* SPDX-License-Identifier: MIT */
/*
 * layout.h - the on-memory format of a channel: two memfds.
 *
 * Everything every process maps lives here, and nowhere else. The format is
 * versioned: a change of any offset or meaning bumps ZB_LAYOUT_MAJOR and
 * readers reject a mismatch; additions carved from reserved space bump the
 * minor version or set a compat bit. Readers reject unknown incompat bits.
 *
 * A channel is split by who writes what, so that a process that may only
 * subscribe can map the messages read-only:
 *
 *   the data segment (written by producers only; subscribers map it
 *   read-only when they were handed a read-only fd or it is sealed)
 *   offset 0
 *   +--------------------------------------+
 *   | struct zb_shm_hdr          128 B     |  creator writes once, then
 *   |   magic, version, sizes, offsets     |  readers copy and validate it
 *   +--------------------------------------+  hdr.ctl_off
 *   | struct zb_ctl              128 B     |  claim {seq,pos}, publisher ids
 *   +--------------------------------------+  hdr.pubs_off
 *   | struct zb_pub_slot  × max_pubs 128 B |  each written by its publisher:
 *   |                                      |  the loans it holds, a count
 *   +--------------------------------------+  hdr.ring_off
 *   | struct zb_desc × ring_capacity  32 B |  message descriptors (seqlock)
 *   +--------------------------------------+  hdr.arena_off (page aligned)
 *   | payload arena        arena_size B    |  power of two; byte ring
 *   +--------------------------------------+  hdr.segment_size
 *
 *   the state segment (written by subscribers and producers alike)
 *   offset 0
 *   +--------------------------------------+
 *   | struct zb_state_hdr        128 B     |  names its data segment by
 *   |                                      |  channel_id
 *   +--------------------------------------+  shdr.sctl_off
 *   | struct zb_sub_ctl          128 B     |  sleepers bitmap, producer futex
 *   +--------------------------------------+  shdr.subs_off
 *   | struct zb_sub_slot  × max_subs 128 B |  each written by its subscriber
 *   +--------------------------------------+  shdr.state_size
 *
 * Positions. Two free-running 64-bit counters describe the stream: seq (one
 * per message) and pos (bytes of arena ever claimed). They never wrap in
 * practice (2^64) and are compared by unsigned difference only. Message seq
 * lives in descriptor slot seq & (ring_capacity - 1); its payload starts at
 * arena offset pos & (arena_size - 1) and never straddles the arena's end
 * (the claim pads to the next lap instead).
 *
 * Endianness: native; a segment never leaves its machine.
 */
#ifndef ZB_LAYOUT_H
#define ZB_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define ZB_FIELD(type, field, off, size)                                   \
	_Static_assert(offsetof(struct type, field) == (off) &&            \
			       sizeof(((struct type *)0)->field) == (size), \
		       #type "." #field)

#define ZB_LAYOUT_MAGIC 0x314e48435355425aull /* "ZBUSCHN1" little-endian */
#define ZB_STATE_MAGIC 0x314154535355425aull  /* "ZBUSSTA1" little-endian */
/* 2: publisher slots, and commit words that the broker may pad.
 * 3: what subscribers write moved to a state segment of its own; each
 *    publisher counts its messages in its slot, where the loans moved (and
 *    became 13); each subscriber counts its losses in its slot.
 * 4: messages published by reference (ZB_DESC_REF, struct zb_ref); a
 *    publisher slot records 12 loans and its ref_floor. */
#define ZB_LAYOUT_MAJOR 4
#define ZB_LAYOUT_MINOR 0
#define ZB_INCOMPAT_KNOWN 0ull /* no incompat feature defined yet */

#define ZB_CACHELINE 64
#define ZB_ARENA_ALIGN 64u       /* payload start alignment */
#define ZB_MAX_SUBS 256u         /* sleepers bitmap has 4 words */
#define ZB_MAX_PUBS 1024u
#define ZB_MAX_CAPACITY (1u << 24)
#define ZB_MAX_MSG_SIZE (1u << 30)
#define ZB_MAX_ARENA (1ull << 36)

/*
 * struct zb_shm_hdr - data segment header, written once by the creator
 * before sealing. Readers copy it with pread(), validate the copy and never
 * read the shared one again, so a peer rewriting it later changes nothing.
 *
 *  0       8       16      24      32      40      48      56      64
 *  | magic | maj|min|hsz | incompat | compat | seg_size | ctl_off|ctl_size
 *  64      72      80      88      96                             128
 *  | st_size|max_subs | ring_off|ring_cap | arena_off | arena_size |
 *  | max_msg|slot_sz | desc_sz|pubs_off | max_pubs|pslot_sz| chan_id| rsvd |
 */
struct zb_shm_hdr {
	uint64_t magic;             /*   0 ZB_LAYOUT_MAGIC */
	uint16_t version_major;     /*   8 change = incompatible */
	uint16_t version_minor;     /*  10 change = compatible addition */
	uint32_t hdr_size;          /*  12 sizeof at creation */
	uint64_t incompat_features; /*  16 reader must know every bit */
	uint64_t compat_features;   /*  24 reader may ignore unknown bits */
	uint64_t segment_size;      /*  32 bytes of the memfd */
	uint32_t ctl_off;           /*  40 struct zb_ctl */
	uint32_t ctl_size;          /*  44 */
	uint32_t state_size;        /*  48 bytes of the state segment */
	uint32_t max_subs;          /*  52 1..ZB_MAX_SUBS */
	uint32_t ring_off;          /*  56 struct zb_desc[ring_capacity] */
	uint32_t ring_capacity;     /*  60 power of two, 2..ZB_MAX_CAPACITY */
	uint64_t arena_off;         /*  64 page aligned */
	uint64_t arena_size;        /*  72 power of two, ≥ 2 × max msg */
	uint32_t max_msg_size;      /*  80 largest loan */
	uint32_t slot_size;         /*  84 sizeof(struct zb_sub_slot) */
	uint32_t desc_size;         /*  88 sizeof(struct zb_desc) */
	uint32_t pubs_off;          /*  92 struct zb_pub_slot[max_pubs] */
	uint32_t max_pubs;          /*  96 1..ZB_MAX_PUBS */
	uint32_t pub_slot_size;     /* 100 sizeof(struct zb_pub_slot) */
	uint64_t channel_id;        /* 104 random, non-zero: the state
				     *     segment names it too */
	uint8_t reserved[16];       /* 112 zero */
};
_Static_assert(sizeof(struct zb_shm_hdr) == 128, "zb_shm_hdr size");
ZB_FIELD(zb_shm_hdr, magic, 0, 8);
ZB_FIELD(zb_shm_hdr, version_major, 8, 2);
ZB_FIELD(zb_shm_hdr, version_minor, 10, 2);
ZB_FIELD(zb_shm_hdr, hdr_size, 12, 4);
ZB_FIELD(zb_shm_hdr, incompat_features, 16, 8);
ZB_FIELD(zb_shm_hdr, compat_features, 24, 8);
ZB_FIELD(zb_shm_hdr, segment_size, 32, 8);
ZB_FIELD(zb_shm_hdr, ctl_off, 40, 4);
ZB_FIELD(zb_shm_hdr, ctl_size, 44, 4);
ZB_FIELD(zb_shm_hdr, state_size, 48, 4);
ZB_FIELD(zb_shm_hdr, max_subs, 52, 4);
ZB_FIELD(zb_shm_hdr, ring_off, 56, 4);
ZB_FIELD(zb_shm_hdr, ring_capacity, 60, 4);
ZB_FIELD(zb_shm_hdr, arena_off, 64, 8);
ZB_FIELD(zb_shm_hdr, arena_size, 72, 8);
ZB_FIELD(zb_shm_hdr, max_msg_size, 80, 4);
ZB_FIELD(zb_shm_hdr, slot_size, 84, 4);
ZB_FIELD(zb_shm_hdr, desc_size, 88, 4);
ZB_FIELD(zb_shm_hdr, pubs_off, 92, 4);
ZB_FIELD(zb_shm_hdr, max_pubs, 96, 4);
ZB_FIELD(zb_shm_hdr, pub_slot_size, 100, 4);
ZB_FIELD(zb_shm_hdr, channel_id, 104, 8);
ZB_FIELD(zb_shm_hdr, reserved, 112, 16);

/*
 * struct zb_state_hdr - state segment header, written once by the creator
 * before sealing, copied and validated like the data header. channel_id
 * must equal the data header's: a state segment of another channel is
 * refused at attach.
 *
 *  0       8       16         24          32       40       48        128
 *  | magic | maj|min|hsz | chan_id | st_size | sctl_off|subs_off | max_subs|
 *  |                                         slot_sz | reserved        |
 */
struct zb_state_hdr {
	uint64_t magic;             /*   0 ZB_STATE_MAGIC */
	uint16_t version_major;     /*   8 as the data segment's */
	uint16_t version_minor;     /*  10 */
	uint32_t hdr_size;          /*  12 sizeof at creation */
	uint64_t channel_id;        /*  16 = zb_shm_hdr.channel_id */
	uint64_t state_size;        /*  24 bytes of this memfd */
	uint32_t sctl_off;          /*  32 struct zb_sub_ctl */
	uint32_t subs_off;          /*  36 struct zb_sub_slot[max_subs] */
	uint32_t max_subs;          /*  40 = zb_shm_hdr.max_subs */
	uint32_t slot_size;         /*  44 sizeof(struct zb_sub_slot) */
	uint8_t reserved[80];       /*  48 zero */
};
_Static_assert(sizeof(struct zb_state_hdr) == 128, "zb_state_hdr size");
ZB_FIELD(zb_state_hdr, magic, 0, 8);
ZB_FIELD(zb_state_hdr, version_major, 8, 2);
ZB_FIELD(zb_state_hdr, version_minor, 10, 2);
ZB_FIELD(zb_state_hdr, hdr_size, 12, 4);
ZB_FIELD(zb_state_hdr, channel_id, 16, 8);
ZB_FIELD(zb_state_hdr, state_size, 24, 8);
ZB_FIELD(zb_state_hdr, sctl_off, 32, 4);
ZB_FIELD(zb_state_hdr, subs_off, 36, 4);
ZB_FIELD(zb_state_hdr, max_subs, 40, 4);
ZB_FIELD(zb_state_hdr, slot_size, 44, 4);
ZB_FIELD(zb_state_hdr, reserved, 48, 80);

/*
 * struct zb_ctl - the producers' channel-wide words (data segment).
 *
 *  0               8               16                       128
 *  | claim_seq     | claim_pos     | pub_id|pubs| reserved    |
 *
 * claim_seq/claim_pos are one 16-byte word updated by a double-width CAS, so
 * a message's sequence number and its arena range are taken together and
 * the arena is filled in sequence order. Subscribers only ever load
 * claim_seq or claim_pos alone (8 bytes). Two cache lines: the claim is the
 * contended word and shares its line with nothing subscribers write.
 */
struct zb_ctl {
	uint64_t claim_seq;        /*   0 next seq to claim */
	uint64_t claim_pos;        /*   8 next arena byte to claim */
	uint32_t next_pub_id;      /*  16 fetch-and-add by new publishers */
	uint32_t publishers;       /*  20 count, or ZB_PUB_EXCLUSIVE_MARK */
	uint8_t reserved[104];     /*  24 */
};
_Static_assert(sizeof(struct zb_ctl) == 128, "zb_ctl size");
ZB_FIELD(zb_ctl, claim_seq, 0, 8);
ZB_FIELD(zb_ctl, claim_pos, 8, 8);
ZB_FIELD(zb_ctl, next_pub_id, 16, 4);
ZB_FIELD(zb_ctl, publishers, 20, 4);
ZB_FIELD(zb_ctl, reserved, 24, 104);

/*
 * struct zb_sub_ctl - the channel-wide words subscribers write (state
 * segment).
 *
 *  0               32        36        40                       128
 *  | sleepers[4]   | pwaiters| pfutex  | reserved                 |
 */
struct zb_sub_ctl {
	uint64_t sleepers[4];      /*   0 bit i: slot i may sleep */
	uint32_t prod_waiters;     /*  32 producers asleep for room */
	uint32_t prod_futex;       /*  36 bumped by releasing subscribers */
	uint8_t reserved[88];      /*  40 */
};
_Static_assert(sizeof(struct zb_sub_ctl) == 128, "zb_sub_ctl size");
ZB_FIELD(zb_sub_ctl, sleepers, 0, 32);
ZB_FIELD(zb_sub_ctl, prod_waiters, 32, 4);
ZB_FIELD(zb_sub_ctl, prod_futex, 36, 4);
ZB_FIELD(zb_sub_ctl, reserved, 40, 88);

/* zb_ctl.publishers while an exclusive publisher owns the claim: it then
 * advances claim_{seq,pos} with plain stores, so no other may claim. */
#define ZB_PUB_EXCLUSIVE_MARK 0x80000000u

/*
 * Subscriber slot states: zb_sub_slot.state holds the state in its low two
 * bits and a generation in the rest, bumped at each join. One 32-bit CAS on
 * (state, generation) lets the broker free exactly the subscription it
 * knows, never one that joined the slot since.
 */
#define ZB_SLOT_FREE 0u
#define ZB_SLOT_JOINING 1u /* being set up by its subscriber */
#define ZB_SLOT_ACTIVE 2u
#define ZB_SLOT_STATE_MASK 3u
#define ZB_SLOT_GEN_ONE 4u /* one generation step */

/*
 * struct zb_sub_slot - one subscription, written by its subscriber (the
 * producers only read cons_*; a waking producer CASes wait_seq to 0 and
 * bumps futex).
 *
 *  0      4       8      12     16         24         32        40     48
 *  | state|policy | pid  |futex | cons_seq | cons_pos | wait_seq | gen  |
 *  48       56                                                      128
 *  | missed | reserved                                                |
 *
 * missed is for the broker's statistics only: nobody acts on it.
 */
struct zb_sub_slot {
	uint32_t state;     /*   0 ZB_SLOT_* | generation (see above) */
	uint32_t policy;    /*   4 ZBUS_RELIABLE / ZBUS_LOSSY */
	uint32_t pid;       /*   8 informational only, never trusted */
	uint32_t futex;     /*  12 bumped by the producer that wakes it */
	uint64_t cons_seq;  /*  16 every seq below is released */
	uint64_t cons_pos;  /*  24 every arena byte below is released */
	uint64_t wait_seq;  /*  32 seq + 1 it sleeps for; 0: awake */
	uint64_t gen;       /*  40 bumped at each join */
	uint64_t missed;    /*  48 lost so far, stored at each release */
	uint8_t reserved[72]; /* 56 */
};
_Static_assert(sizeof(struct zb_sub_slot) == 128, "zb_sub_slot size");
ZB_FIELD(zb_sub_slot, state, 0, 4);
ZB_FIELD(zb_sub_slot, policy, 4, 4);
ZB_FIELD(zb_sub_slot, pid, 8, 4);
ZB_FIELD(zb_sub_slot, futex, 12, 4);
ZB_FIELD(zb_sub_slot, cons_seq, 16, 8);
ZB_FIELD(zb_sub_slot, cons_pos, 24, 8);
ZB_FIELD(zb_sub_slot, wait_seq, 32, 8);
ZB_FIELD(zb_sub_slot, gen, 40, 8);
ZB_FIELD(zb_sub_slot, missed, 48, 8);
ZB_FIELD(zb_sub_slot, reserved, 56, 72);

/*
 * Publisher slots. A publisher takes one at start (same state word and
 * generation scheme as subscriber slots) and records in it every loan it
 * holds, so that when it dies the broker pads exactly those sequence
 * numbers and the stream goes on (see reclaim.c).
 */
#define ZB_PUB_LOANS 12u           /* loans recorded per publisher */
#define ZB_PUB_SLOT_EXCLUSIVE 0x1u /* it holds ZB_PUB_EXCLUSIVE_MARK */

/*
 * struct zb_pub_slot - one publisher, written by it alone (the broker
 * reads it once the publisher is dead and frees it with a CAS on state).
 *
 *  0      4       8      12     16          24                  120       128
 *  | state| flags | pid  | id   | published | loans[12]: seq + 1 | ref_floor |
 *  |      |       |      |      |           | of a loan, 0 empty |           |
 *
 * published counts the messages it committed, for the broker's statistics
 * only: nobody acts on it.
 *
 * ref_floor: the publisher's messages by reference (ZB_DESC_REF) with a
 * seq below it may have had their buffer reused or freed: a subscriber that
 * pulled one checks it afterwards (a seqlock: the publisher raises it, then
 * fences, then lets its caller touch the buffer) and drops what it pulled.
 * Only ever raised.
 *
 * A loan is recorded before its claim becomes visible (exclusive
 * publishers) or right after the claim CAS succeeds (shared ones: a
 * publisher killed between the two leaves a claim no slot names, which
 * the broker's stuck-claim timeout pads), and cleared after its commit.
 */
struct zb_pub_slot {
	uint32_t state;   /*   0 ZB_SLOT_* | generation */
	uint32_t flags;   /*   4 ZB_PUB_SLOT_* */
	uint32_t pid;     /*   8 informational only, never trusted */
	uint32_t pub_id;  /*  12 the id in its descriptors */
	uint64_t published; /* 16 messages committed so far */
	uint64_t loans[ZB_PUB_LOANS]; /* 24 */
	uint64_t ref_floor; /* 120 refs below this seq may be stale */
};
_Static_assert(sizeof(struct zb_pub_slot) == 128, "zb_pub_slot size");
ZB_FIELD(zb_pub_slot, state, 0, 4);
ZB_FIELD(zb_pub_slot, flags, 4, 4);
ZB_FIELD(zb_pub_slot, pid, 8, 4);
ZB_FIELD(zb_pub_slot, pub_id, 12, 4);
ZB_FIELD(zb_pub_slot, published, 16, 8);
ZB_FIELD(zb_pub_slot, loans, 24, 96);
ZB_FIELD(zb_pub_slot, ref_floor, 120, 8);

/* Descriptor flags. */
#define ZB_DESC_ABANDONED 0x1u /* loan given back: no message */
#define ZB_DESC_REF 0x2u       /* the payload is a struct zb_ref */
#define ZB_DESC_KNOWN_FLAGS (ZB_DESC_ABANDONED | ZB_DESC_REF)

/*
 * struct zb_ref - a message published by reference: its payload stays in
 * the publisher's own memory, and subscribers pull it with
 * process_vm_readv(). This record is the message's arena payload (its
 * descriptor's length is exactly its size).
 *
 *  0        8          16       20       24         32
 *  | addr   | length   | slot   | word   | reserved |
 *
 * addr, length: the bytes, in the address space of the process holding
 * publisher slot @slot while that slot's state word is @word. Everything
 * here is a claim: a subscriber checks that the slot still holds @word,
 * that the process behind it maps this channel writable (a publisher of
 * it), pulls exactly [addr, addr + length) and nothing else, and checks
 * the slot's ref_floor and word again afterwards. reserved is zero.
 */
struct zb_ref {
	uint64_t addr;      /*  0 */
	uint64_t length;    /*  8 */
	uint32_t slot;      /* 16 publisher slot index */
	uint32_t word;      /* 20 its state word when published */
	uint64_t reserved;  /* 24 zero */
};
_Static_assert(sizeof(struct zb_ref) == 32, "zb_ref size");
ZB_FIELD(zb_ref, addr, 0, 8);
ZB_FIELD(zb_ref, length, 8, 8);
ZB_FIELD(zb_ref, slot, 16, 4);
ZB_FIELD(zb_ref, word, 20, 4);
ZB_FIELD(zb_ref, reserved, 24, 8);

/*
 * struct zb_ref_entry - what a publisher itself says it published by
 * reference: ZB_REF_TABLE_LEN entries in its own private memory (not in
 * the channel), entry seq % ZB_REF_TABLE_LEN for message seq. Only the
 * publisher writes them; it tells the broker where they are over its own
 * connection (RegisterPublisher), and the broker pulls for others only a
 * range that an entry vouches for. A record in the ring, which any
 * publisher could forge, is not enough for a process that may read
 * everyone's memory. An entry is cleared (seq_plus1 0) when its buffer is
 * revoked.
 *
 *  0           8      16       24
 *  | seq_plus1 | addr | length |
 */
#define ZB_REF_TABLE_LEN 64u
struct zb_ref_entry {
	uint64_t seq_plus1; /*  0 seq + 1; 0: empty or revoked */
	uint64_t addr;      /*  8 */
	uint64_t length;    /* 16 */
};
_Static_assert(sizeof(struct zb_ref_entry) == 24, "zb_ref_entry size");
ZB_FIELD(zb_ref_entry, seq_plus1, 0, 8);
ZB_FIELD(zb_ref_entry, addr, 8, 8);
ZB_FIELD(zb_ref_entry, length, 16, 8);

/*
 * struct zb_desc - one message descriptor; a seqlock around its fields.
 *
 *  0          8          16       20      24       28      32
 *  | commit   | pos      | length | flags | pub_id | rsvd  |
 *
 * commit is seq + 1 once message seq is published (0: never used), or
 * ZB_COMMIT_PADDED | (seq + 1) when the broker took the claim back from a
 * dead or stuck producer (then no other field means anything). A commit
 * only ever moves forward: a shared producer's publish and the broker's
 * pad race for it by CAS and exactly one wins; an exclusive producer, the
 * only one that claims, checks it and then stores it (ring_pub.c says why,
 * and the one outcome that allows: a pad overwritten by the message it
 * padded, so that readers see either). A reader that loads commit ==
 * e + 1 before and after reading the fields, and then finds claim_seq <=
 * e + ring_capacity (the slot not claimed again), has a consistent copy of
 * message e.
 */
#define ZB_COMMIT_PADDED (1ull << 63)
#define ZB_COMMIT_SEQ(c) ((c) & ~ZB_COMMIT_PADDED) /* seq + 1, or 0 */
struct zb_desc {
	uint64_t commit;   /*  0 seq + 1 once published */
	uint64_t pos;      /*  8 arena position of the payload's first byte */
	uint32_t length;   /* 16 payload bytes */
	uint32_t flags;    /* 20 ZB_DESC_* */
	uint32_t pub_id;   /* 24 publisher id */
	uint32_t reserved; /* 28 zero */
};
_Static_assert(sizeof(struct zb_desc) == 32, "zb_desc size");
ZB_FIELD(zb_desc, commit, 0, 8);
ZB_FIELD(zb_desc, pos, 8, 8);
ZB_FIELD(zb_desc, length, 16, 4);
ZB_FIELD(zb_desc, flags, 20, 4);
ZB_FIELD(zb_desc, pub_id, 24, 4);
ZB_FIELD(zb_desc, reserved, 28, 4);

/*
 * The delivery ring: how the broker hands messages to a subscriber that
 * does not map the channel (zbus_conn_subscribe()). Not in a memfd: a
 * buffer in the subscriber's own private memory, which only the broker
 * writes (process_vm_writev()) and only the subscriber reads. Its size is
 * a power of two; records are ZB_RX_ALIGN aligned, never straddle its end
 * (a ZB_RX_PAD record fills the rest of a lap instead) and follow each
 * other at free-running byte positions, like the arena's.
 *
 * A record is a 64-byte header and its payload:
 *
 *  0      8        16     20     24         28      32       36       64
 *  | pos1 | seq    | span | size | producer | flags | status | rsvd   |
 *
 * pos1 is the record's position + 1 and is written last, by a write of its
 * own: a reader takes the record at position P once pos1 == P + 1 (a stale
 * record of an earlier lap says P - size + 1). span is the bytes the record
 * takes, header included (a multiple of ZB_RX_ALIGN, at most the rest of
 * the lap). status 0 is a message of size bytes; a negative errno is a
 * message the broker could not deliver (larger than the buffer, a pull of
 * a message by reference that failed, a descriptor that failed
 * validation), reported to the receiver for that message alone. missed
 * counts messages lost right before this one. The reader gives bytes back
 * (all spans up to where it released) over the delivery's socket, 8 bytes
 * of count per message.
 */
#define ZB_RX_ALIGN 64u
#define ZB_RX_PAD 0x1u	   /* flags: nothing here, go to the next lap */
#define ZB_RX_MIN_BYTES (64u << 10)
#define ZB_RX_MAX_BYTES (1u << 30)
struct zb_rx_rec {
	uint64_t pos1;      /*  0 position + 1, written last */
	uint64_t seq;       /*  8 channel sequence number */
	uint32_t span;      /* 16 bytes taken, header included */
	uint32_t size;      /* 20 payload bytes */
	uint32_t producer;  /* 24 publisher id */
	uint32_t flags;     /* 28 ZB_RX_* */
	int32_t status;     /* 32 0, or -errno for this message */
	uint32_t reserved0; /* 36 zero */
	uint64_t missed;    /* 40 lost right before this one */
	uint64_t reserved[2]; /* 48 zero */
};
_Static_assert(sizeof(struct zb_rx_rec) == ZB_RX_ALIGN, "zb_rx_rec size");
ZB_FIELD(zb_rx_rec, pos1, 0, 8);
ZB_FIELD(zb_rx_rec, seq, 8, 8);
ZB_FIELD(zb_rx_rec, span, 16, 4);
ZB_FIELD(zb_rx_rec, size, 20, 4);
ZB_FIELD(zb_rx_rec, producer, 24, 4);
ZB_FIELD(zb_rx_rec, flags, 28, 4);
ZB_FIELD(zb_rx_rec, status, 32, 4);
ZB_FIELD(zb_rx_rec, missed, 40, 8);

/*
 * struct zb_geometry - a validated private copy of the header: what every
 * process uses after attach. Not part of the shared format.
 */
struct zb_geometry {
	uint64_t segment_size;
	uint64_t channel_id;
	uint64_t state_size;
	uint32_t sctl_off;   /* in the state segment */
	uint32_t subs_off;   /* in the state segment */
	uint64_t arena_off;
	uint64_t arena_size;
	uint32_t ctl_off;
	uint32_t max_subs;
	uint32_t ring_off;
	uint32_t ring_capacity;
	uint32_t max_msg_size;
	uint32_t pubs_off;
	uint32_t max_pubs;
	uint16_t version_major;
	uint16_t version_minor;
};

#endif /* ZB_LAYOUT_H */
