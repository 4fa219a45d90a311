/* Replay and duplicate guard.
 *
 * A packet seen again within a TTL never causes a second side effect, and a
 * replayed signed packet whose signature metadata has expired is rejected.
 * For a decoded packet, its received bytes and `now`, ref_dedupe_check says
 * one of:
 *   REF_DEDUPE_FIRST      first sighting: act on it (it is now recorded);
 *   REF_DEDUPE_DUPLICATE  seen within the retention window: no second side
 *                         effect (ack it; a worker replays its recorded
 *                         result, see the entry tag);
 *   REF_DEDUPE_EXPIRED    signature_metadata.expires_at <= now - skew:
 *                         reject, whether seen before or not;
 *   REF_DEDUPE_CONFLICT   the same (tenant, audience, sender, message_id)
 *                         was seen with a different signed body: reject and
 *                         audit (cap-spec 19, replay store).
 *
 * Keys. A packet is recorded under up to three keys of 32 bytes each (so
 * entries have a fixed size whatever the strings are):
 *   BODY        the signed-body digest itself, which commits to sender_id
 *               (field 2 is part of the body). The signed-body digest is
 *               SHA-256 of the received bytes without their one field 14
 *               (the CAP-PRODUCTION replay-store digest, the value
 *               cap_production_verify returns), or of all the bytes when the
 *               packet carries no signature. Computed on the exact received
 *               bytes: never re-encoded.
 *   MESSAGE_ID  (identity.tenant_id, signature_metadata.audience, sender_id,
 *               signature_metadata.message_id), when message_id is non-empty.
 *   JOB_REQUEST (job_id, dispatch.dispatch_id, dispatch.attempt,
 *               labels["cordum.bus_msg_id"]), when job_id is non-empty: a
 *               broker redelivery keeps the dispatch identity and is caught
 *               even if re-signed; a retry with a new dispatch_id or attempt
 *               is a new delivery; a re-publish that sets the bus message-id
 *               label (Cordum's approval re-publish) is not a duplicate of
 *               the original submit.
 *   JOB_RESULT  (job_id, dispatch.dispatch_id, dispatch.attempt, status),
 *               when job_id is non-empty.
 * MESSAGE_ID, JOB_REQUEST and JOB_RESULT are each a SHA-256 over a
 * domain-separated, length-prefixed encoding of their parts. That encoding
 * begins with the domain's 'c' (0x63, a group-start tag, which the strict
 * decoder refuses at any position), so it is never the bytes of a packet,
 * and a body key never equals a key of another kind.
 * Missing strings count as empty, a missing dispatch as ("", 0). Logical
 * keys do not include the sender: the same job event from anyone is one
 * event (fencing who may send it is the caller's check).
 *
 * Order of the checks: expiry first (fail closed); then the keys in the
 * order above, the first live match deciding; otherwise FIRST.
 *
 * Retention. An entry lives until max(first_seen + ttl, expires_at + skew)
 * (the second term only for packets with signature metadata, so a signed
 * packet is remembered for as long as it could still be admitted). The
 * window is counted from the first sighting and a duplicate never extends
 * it. An entry whose time has come counts as absent whether or not it has
 * been purged yet, so purging never changes a verdict.
 *
 * Bounded memory. At most max_entries packets are held. When a new packet
 * finds the store full, expired entries are purged first; if it is still
 * full, REF_DEDUPE_EVICT_OLDEST (default) evicts the entry recorded first
 * (lowest sequence number) and reports it in the result, while
 * REF_DEDUPE_REFUSE records nothing and returns CAP_EFULL so that the
 * caller rejects the packet (fail closed). Either way the table never
 * grows past the bound.
 *
 * Determinism. Entries carry a sequence number from a per-store counter;
 * eviction and purging follow it. The hash index is used for exact-match
 * lookups only: no hash or pointer order reaches a verdict.
 *
 * Sans-I/O: `now` is the caller's clock in Unix-epoch nanoseconds (virtual
 * in the simulator), on the same scale as signature_metadata.expires_at.
 * Time going backwards is tolerated. See docs/reference-dedupe.md. */
#ifndef REF_DEDUPE_H
#define REF_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

#include "cap_error.h"
#include "cap_schema.h"

#define REF_DEDUPE_DEFAULT_TTL_NS (INT64_C(15) * 60 * INT64_C(1000000000))
#define REF_DEDUPE_DEFAULT_MAX_ENTRIES ((size_t)65536)
#define REF_DEDUPE_DEFAULT_SKEW_NS (INT64_C(60) * INT64_C(1000000000))
/* The largest max_entries accepted. */
#define REF_DEDUPE_MAX_ENTRIES_LIMIT ((size_t)1 << 24)
/* The label that names a re-publish as a distinct bus message. */
#define REF_DEDUPE_BUS_MSG_ID_LABEL "cordum.bus_msg_id"

typedef enum {
    REF_DEDUPE_EVICT_OLDEST = 0, /* make room by evicting the oldest entry */
    REF_DEDUPE_REFUSE = 1,       /* record nothing, return CAP_EFULL */
} ref_dedupe_full_policy;

typedef struct {
    int64_t ttl_ns;         /* retention from first sighting; > 0 (default 15 min) */
    size_t max_entries;     /* packets held; 1..REF_DEDUPE_MAX_ENTRIES_LIMIT (default 65536) */
    int64_t skew_ns;        /* clock skew allowed on expires_at; >= 0 (default 60 s) */
    ref_dedupe_full_policy on_full;
} ref_dedupe_config;

ref_dedupe_config ref_dedupe_config_default(void);

/* CAP_OK or CAP_EINVAL (a bound out of range, an unknown policy). */
int ref_dedupe_config_check(const ref_dedupe_config *cfg);

typedef enum {
    REF_DEDUPE_FIRST = 0,
    REF_DEDUPE_DUPLICATE = 1,
    REF_DEDUPE_EXPIRED = 2,
    REF_DEDUPE_CONFLICT = 3,
} ref_dedupe_verdict;

typedef enum {
    REF_DEDUPE_KEY_BODY = 0,
    REF_DEDUPE_KEY_MESSAGE_ID = 1,
    REF_DEDUPE_KEY_JOB_REQUEST = 2,
    REF_DEDUPE_KEY_JOB_RESULT = 3,
} ref_dedupe_key_kind;

#define REF_DEDUPE_MAX_KEYS 3

typedef struct {
    ref_dedupe_key_kind kind;
    uint8_t id[32]; /* SHA-256 of the kind and the key's parts */
} ref_dedupe_key;

/* What the store needs to know about one packet: computed once from the
 * packet, then admitted. A plain value; nothing in it points anywhere. */
typedef struct {
    uint8_t body_digest[32];
    ref_dedupe_key keys[REF_DEDUPE_MAX_KEYS]; /* BODY, then MESSAGE_ID, then the logical key */
    size_t n_keys;                            /* 1..REF_DEDUPE_MAX_KEYS */
    int has_expiry;                           /* signature_metadata.expires_at is present */
    int64_t expires_at;                       /* it, in Unix nanoseconds (saturating) */
} ref_dedupe_probe;

/* A handle on one stored entry: its slot and sequence number. It goes
 * stale when the entry is evicted, purged or forgotten (the functions that
 * take it then report so); never reused, since sequence numbers are not. */
typedef struct {
    uint64_t seq; /* 1, 2, 3, ... in recording order; 0 = none */
    uint32_t slot;
} ref_dedupe_entry;

typedef struct {
    ref_dedupe_verdict verdict;
    ref_dedupe_key_kind matched; /* DUPLICATE, CONFLICT: the key that matched */
    ref_dedupe_entry entry;      /* FIRST: the new entry; DUPLICATE, CONFLICT: the earlier
                                  * one; EXPIRED: {0, 0} */
    int64_t first_seen;          /* when entry was recorded (FIRST: now) */
    int64_t retained_until;      /* when entry stops counting */
    uint64_t tag;                /* the caller's tag on entry (0 until set) */
    int evicted;                 /* FIRST: 1 when a live entry was evicted to make room */
    uint64_t evicted_seq;        /* its sequence number */
} ref_dedupe_result;

typedef struct {
    uint64_t first, duplicate, expired, conflict; /* verdicts given */
    uint64_t evicted;   /* live entries evicted when full */
    uint64_t refused;   /* CAP_EFULL returned under REF_DEDUPE_REFUSE */
    uint64_t purged;    /* expired entries removed */
    uint64_t forgotten; /* entries removed by ref_dedupe_forget */
} ref_dedupe_stats;

typedef struct ref_dedupe ref_dedupe;

/* A store with cfg (NULL: the defaults). Memory grows with use up to the
 * bound. *out is freed with ref_dedupe_free. CAP_OK, CAP_EINVAL, CAP_ENOMEM. */
int ref_dedupe_new(const ref_dedupe_config *cfg, ref_dedupe **out);
void ref_dedupe_free(ref_dedupe *d);

/* The keys, body digest and expiry of packet p, which must be the decoding
 * of wire[0..len). CAP_OK; CAP_EMALFORMED when wire has a malformed or
 * repeated field 14 (cap_production_find); CAP_EINVAL for NULL arguments
 * or empty bytes. Allocates nothing. */
int ref_dedupe_probe_packet(const cap_packet *p, const uint8_t *wire, size_t len,
                            ref_dedupe_probe *out);

/* ref_dedupe_probe_packet that also asks the cache for the index cells of
 * the keys in d, for a caller that admits the probe a little later
 * (ref_dedupe_admit) and has other work to do meanwhile. */
int ref_dedupe_probe_packet_warm(const ref_dedupe *d, const cap_packet *p, const uint8_t *wire,
                                 size_t len, ref_dedupe_probe *out);

/* The same with a signed-body digest already in hand (for instance the one
 * cap_production_verify returned): no bytes needed. */
int ref_dedupe_probe_digest(const cap_packet *p, const uint8_t body_digest[32],
                            ref_dedupe_probe *out);

/* Decides on a probed packet at now and records it when it is FIRST.
 * Returns the verdict (>= 0) and fills *res (res may be NULL), or a
 * negative error: CAP_EFULL (REF_DEDUPE_REFUSE and full; nothing
 * recorded), CAP_ENOMEM (nothing recorded), CAP_EINVAL. */
int ref_dedupe_admit(ref_dedupe *d, const ref_dedupe_probe *probe, int64_t now,
                     ref_dedupe_result *res);

/* ref_dedupe_probe_packet + ref_dedupe_admit. */
int ref_dedupe_check(ref_dedupe *d, const cap_packet *p, const uint8_t *wire, size_t len,
                     int64_t now, ref_dedupe_result *res);

/* ref_dedupe_check that also hands back the probe it admitted (probe may
 * be NULL; it is zeroed when the packet could not be probed), for a caller
 * that journals the keys. */
int ref_dedupe_check_probe(ref_dedupe *d, const cap_packet *p, const uint8_t *wire, size_t len,
                           int64_t now, ref_dedupe_result *res, ref_dedupe_probe *probe);

/* Attaches a caller value to an entry (e.g. the index of the result a
 * worker recorded, so that a duplicate can replay it). CAP_OK, or
 * CAP_EINVAL when the entry is gone. */
int ref_dedupe_set_tag(ref_dedupe *d, ref_dedupe_entry e, uint64_t tag);

/* Removes an entry whose first sighting had no side effect after all (the
 * caller NAKed it for redelivery, or rejected it in a later check), so the
 * next delivery is FIRST again. Returns 1 when removed, 0 when it was
 * already gone, CAP_EINVAL for a NULL store. */
int ref_dedupe_forget(ref_dedupe *d, ref_dedupe_entry e);

/* Removes every entry whose retention has ended at now; returns how many. */
size_t ref_dedupe_expire(ref_dedupe *d, int64_t now);

/* Entries held (expired ones not yet purged included). */
size_t ref_dedupe_count(const ref_dedupe *d);

/* The earliest end of retention among held entries: *at and 1, or 0 when
 * empty. For a caller that purges on a timer. */
int ref_dedupe_next_expiry(const ref_dedupe *d, int64_t *at);

/* The oldest held entry (lowest sequence number): *e and 1, or 0. */
int ref_dedupe_oldest(const ref_dedupe *d, ref_dedupe_entry *e);

/* Counters since creation. A NULL store gives zeros. */
ref_dedupe_stats ref_dedupe_stats_get(const ref_dedupe *d);

/* "first", "duplicate", "expired", "conflict"; "unknown" otherwise. */
const char *ref_dedupe_verdict_name(ref_dedupe_verdict v);
/* "body", "message_id", "job_request", "job_result"; "unknown" otherwise. */
const char *ref_dedupe_key_kind_name(ref_dedupe_key_kind k);

#endif
