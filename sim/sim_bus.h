/* The simulated NATS bus (cap-spec 09: subjects, queue groups, broadcast,
 * request/reply) with fault injection. Semantics in docs/sim-core.md.
 *
 * Wire fidelity: every packet is encoded to bytes at publish (cap_encode)
 * and every delivery is decoded from bytes by the strict decoder
 * (cap_packet_decode_in) before the receiver sees it; bytes that do not decode
 * are a delivery failure (counted, returned with the decoder's error), not
 * a delivery. So a wire bug, or a corrupted byte, surfaces where it would
 * on a real bus.
 *
 * Event loop: the bus owns none. The caller (the simulator core) calls
 * sim_bus_publish(from, subject, packet, now, queue); the bus routes the
 * packet and pushes one event per delivery into the caller's sim_queue,
 * at now + latency, with kind = config.event_kind and data = a
 * sim_delivery the event owns. When the core pops such an event it calls
 * sim_bus_deliver(bus, &ev, now, &msg, &diag) to get the decoded packet
 * (or the drop / decode failure), hands it to the receiving actor, then
 * frees the event's data with sim_delivery_free. Deliveries due at the
 * same time leave the queue in push order (sim_queue's seq), and the bus
 * pushes them in a fixed order (subscriptions in the order they were
 * made, copies in order), so one seed gives one delivery sequence.
 *
 * Randomness: the bus draws only from its own streams of the seed it is
 * given (sim_rng_stream): "bus.route" (queue-group choice), "bus.latency"
 * (the default latency) and "bus.fault.<n>" for the n-th fault rule added
 * (0, 1, ...). Adding a fault rule never changes another rule's draws.
 *
 * Ownership: sim_bus_new returns a bus freed with sim_bus_free. Strings
 * passed in are copied. A sim_delivery belongs to its queue event: free it
 * with sim_delivery_free (or sim_bus_event_release when clearing a queue).
 *
 * Delivered packets are lent, not given: sim_bus_deliver unpacks into an
 * arena the bus keeps across deliveries (one block reused, no allocation
 * per packet), and the caller hands the message back with sim_bus_release
 * once the receiver's handler has returned and its effects are carried
 * out. The arena is reset when every packet handed out has been released,
 * so after sim_bus_release nothing may point into that packet: a receiver
 * copies what it keeps (the scheduler clones a request, the worker copies
 * job and dispatch ids, the registry copies heartbeat strings). Never
 * cap_packet_free a delivered packet. */
#ifndef SIM_BUS_H
#define SIM_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "cap_decode.h"
#include "cap_error.h"
#include "cap_schema.h"
#include "sim_queue.h"
#include "sim_rng.h"

/* Bounds. */
#define SIM_BUS_ARENA_KEEP ((size_t)64 << 10) /* bytes of decode arena (and of encode buffer) kept between packets */
#define SIM_BUS_MAX_SUBJECT 256   /* bytes of a subject or pattern */
#define SIM_BUS_MAX_NAME 128      /* bytes of an actor or queue-group name */
#define SIM_BUS_MAX_ACTORS 8192
#define SIM_BUS_MAX_SUBS 65536
#define SIM_BUS_MAX_FAULTS 1024
#define SIM_BUS_MAX_BYTES ((size_t)64 << 20) /* one published packet */
#define SIM_BUS_MAX_DELAY INT64_C(1000000000000000) /* 1e15 ns (~11.6 days) */
#define SIM_FOREVER INT64_MAX

/* The default kind tag of delivery events in the caller's queue. */
#define SIM_BUS_EVENT_KIND 1

/* ---- subjects (NATS rules) ----
 * A subject is tokens separated by '.', at least one token, no empty token,
 * no whitespace or control character, at most SIM_BUS_MAX_SUBJECT bytes.
 * In a pattern, a token that is exactly "*" matches one token, and a final
 * token that is exactly ">" matches one or more tokens; '*' or '>' inside a
 * longer token is an ordinary character. Publish subjects have no
 * wildcard tokens. */

/* 1 when s is a valid subject (allow_wildcards 0) or pattern (1), else 0. */
int sim_subject_valid(const char *s, int allow_wildcards);

/* 1 when the (valid) subject matches the (valid) pattern, else 0. */
int sim_subject_match(const char *pattern, const char *subject);

/* ---- latency distributions (nanoseconds) ---- */

typedef enum {
    SIM_DIST_FIXED = 0,       /* a */
    SIM_DIST_UNIFORM = 1,     /* integer uniform in [a, b] */
    SIM_DIST_EXPONENTIAL = 2, /* mean a */
    SIM_DIST_LOGNORMAL = 3,   /* median a (> 0), shape sigma b: a * exp(b * N(0,1)) */
} sim_dist_kind;

typedef struct {
    sim_dist_kind kind;
    double a, b;
} sim_dist;

/* CAP_OK when the parameters fit the kind (all finite, a >= 0, a <= b for
 * UNIFORM, a > 0 and b >= 0 for LOGNORMAL, a <= SIM_BUS_MAX_DELAY). */
int sim_dist_check(const sim_dist *d);

/* One draw, rounded to the nearest ns and clamped to [0, SIM_BUS_MAX_DELAY].
 * FIXED draws nothing; the others draw from r. */
int64_t sim_dist_draw(const sim_dist *d, sim_rng *r);

/* ---- faults ---- */

typedef enum {
    SIM_FAULT_LATENCY = 1,   /* replace the default latency by `latency` */
    SIM_FAULT_LOSS = 2,      /* drop with probability p */
    SIM_FAULT_DUPLICATE = 3, /* one extra copy: the next `count` packets, and/or with probability p */
    SIM_FAULT_REORDER = 4,   /* add an extra delay uniform in [0, window] ns */
    SIM_FAULT_CORRUPT = 5,   /* with probability p, XOR one random byte with a random nonzero value */
    SIM_FAULT_PARTITION = 6, /* drop everything between `from` and `to`, both ways */
    SIM_FAULT_REPLAY = 7,    /* the next `count` packets are delivered once more, `after` later */
} sim_fault_kind;

/* One fault rule. It applies to a delivery (one packet to one receiving
 * actor) when start <= time < end, the subject matches `subject` (NULL:
 * any), the sender is `from` and the receiver is `to` (NULL: any actor).
 * PARTITION is symmetric: from and to are the two sides (from required;
 * to NULL: every other actor), and an actor is never cut from itself.
 * Names are actor names, compared as strings (the actor need not exist
 * yet). The time tested is the publish time, and for PARTITION also the
 * delivery time.
 * DUPLICATE and REPLAY `count`: each publish on a matching subject from a
 * matching sender while the rule is active uses up one unit, and every
 * delivery of that publish (to a matching receiver) gets the extra copy.
 * A REPLAY copy carries the exact bytes and goes to the same subscription,
 * `after` ns later than its own drawn latency; it is counted in `replayed`
 * and flagged `replay` in its sim_delivery. */
typedef struct {
    sim_fault_kind kind;
    const char *subject;
    const char *from;
    const char *to;
    int64_t start, end; /* end SIM_FOREVER: until ended */
    sim_dist latency;   /* LATENCY */
    double p;           /* LOSS, DUPLICATE, CORRUPT: in [0, 1] */
    uint64_t count;     /* DUPLICATE, REPLAY: the next `count` published packets */
    int64_t window;     /* REORDER: >= 0, <= SIM_BUS_MAX_DELAY */
    int64_t after;      /* REPLAY: the replay's extra delay, > 0, <= SIM_BUS_MAX_DELAY */
} sim_fault;

/* The scenario's word for a fault kind ("duplicate", "loss", ...; "unknown"). */
const char *sim_fault_kind_name(sim_fault_kind k);

/* ---- the bus ---- */

typedef enum {
    SIM_DROP_NO_SUBSCRIBER = 0, /* a publish nobody subscribed to (counted per publish) */
    SIM_DROP_LOSS = 1,
    SIM_DROP_PARTITION = 2,
    SIM_DROP_UNSUBSCRIBED = 3,  /* the subscription was removed while in flight */
    SIM_DROP__COUNT = 4,
} sim_drop_reason;

/* "no_subscriber", "loss", "partition", "unsubscribed" (or "unknown"). */
const char *sim_drop_reason_name(sim_drop_reason r);

typedef struct {
    uint64_t published;       /* publish calls accepted */
    uint64_t routed;          /* deliveries scheduled (copies included) */
    uint64_t delivered;       /* deliveries decoded and handed out */
    uint64_t duplicated;      /* extra copies scheduled */
    uint64_t replayed;        /* replay copies scheduled (REPLAY rules) */
    uint64_t corrupted;       /* copies with a flipped byte */
    uint64_t decode_failures; /* deliveries whose bytes did not decode */
    uint64_t dropped[SIM_DROP__COUNT];
} sim_bus_stats;

/* Observers (optional). Pointers are valid during the call only. */
/* A publish's sender (actor name), subject and reply subject ("" none),
 * with their lengths (strlen of each), which the bus knows already, and
 * its number (the msg_id of its deliveries: 1, 2, ... in publish order). */
typedef struct {
    const char *from, *subject, *reply;
    size_t from_len, subject_len, reply_len;
    uint64_t msg_id;
} sim_publish_strings;
typedef void (*sim_bus_publish_fn)(void *ctx, int64_t now, const sim_publish_strings *s,
                                   const uint8_t *bytes, size_t len);
/* A dropped delivery of publish msg_id (to NULL: it had no subscriber). */
typedef void (*sim_bus_drop_fn)(void *ctx, int64_t now, uint64_t msg_id, const char *from,
                                const char *to, const char *subject, sim_drop_reason reason);

typedef struct {
    uint64_t seed;
    sim_dist latency;          /* every delivery's latency unless a LATENCY rule matches */
    cap_decode_mode decode_mode; /* the receivers' decoder mode (default STRICT) */
    cap_bounds bounds;         /* the receivers' decoder bounds */
    int event_kind;            /* kind of the delivery events pushed */
    sim_bus_publish_fn on_publish; /* once per accepted publish, with the exact bytes */
    sim_bus_drop_fn on_drop;       /* once per dropped delivery (to NULL: no subscriber) */
    void *ctx;                     /* borrowed, passed to the observers */
} sim_bus_config;

/* Defaults: seed 0, latency fixed 0, STRICT, cap_bounds_default(),
 * SIM_BUS_EVENT_KIND, no observers. */
void sim_bus_config_default(sim_bus_config *c);

typedef struct sim_bus sim_bus;

/* A new bus; *out freed with sim_bus_free. CAP_EINVAL (bad config),
 * CAP_ENOMEM. */
int sim_bus_new(const sim_bus_config *cfg, sim_bus **out);
void sim_bus_free(sim_bus *b);

/* The id of actor `name`, adding it if new (ids 0, 1, ... in order of
 * first mention). CAP_EINVAL for an empty name, one over SIM_BUS_MAX_NAME
 * or with a control character; CAP_EFULL past SIM_BUS_MAX_ACTORS. */
int sim_bus_actor(sim_bus *b, const char *name, uint32_t *id);

/* The actor's name (owned by the bus), or NULL for an unknown id. */
const char *sim_bus_actor_name(const sim_bus *b, uint32_t id);

/* Clock skew: the actor's local time is virtual time + skew (default 0). */
int sim_bus_set_skew(sim_bus *b, uint32_t actor, int64_t skew);
int64_t sim_bus_local_time(const sim_bus *b, uint32_t actor, int64_t now);

/* Subscribes actor to pattern. queue_group NULL or "": a plain
 * subscription (every matching publish is delivered to it); otherwise
 * each matching publish goes to exactly one member of the group, chosen
 * uniformly. max_msgs > 0: removed after that many deliveries were routed
 * to it (request inboxes use 1). *sub_id (may be NULL) identifies it. */
int sim_bus_subscribe(sim_bus *b, uint32_t actor, const char *pattern, const char *queue_group,
                      uint64_t max_msgs, uint32_t *sub_id);

/* Removes a subscription; deliveries already in flight to it are dropped
 * (SIM_DROP_UNSUBSCRIBED). CAP_EINVAL for an unknown or removed id. */
int sim_bus_unsubscribe(sim_bus *b, uint32_t sub_id);

/* Writes a fresh reply inbox subject "_INBOX.<actor id>.<n>" into buf
 * (n: a bus-wide counter). CAP_EINVAL when buf is too small. */
int sim_bus_new_inbox(sim_bus *b, uint32_t actor, char *buf, size_t n);

/* Publishes packet (borrowed; encoded canonically here) from actor `from`
 * on `subject` (no wildcards) with an optional reply subject, at `now`;
 * pushes the deliveries into q. CAP_EINVAL (bad actor, subject or reply),
 * CAP_ENOMEM, CAP_EFULL when q might not hold every delivery (checked
 * before anything happens: 2 events per target, 3 once a REPLAY rule has
 * been added), or the encoder's error. */
int sim_bus_publish(sim_bus *b, uint32_t from, const char *subject, const char *reply,
                    const cap_packet *packet, int64_t now, sim_queue *q);

/* The same with bytes as they are (copied): to put a vendor's or a
 * deliberately broken packet on the bus. len <= SIM_BUS_MAX_BYTES. */
int sim_bus_publish_bytes(sim_bus *b, uint32_t from, const char *subject, const char *reply,
                          const uint8_t *bytes, size_t len, int64_t now, sim_queue *q);

/* Request: makes an inbox (written to inbox, SIM_BUS_MAX_SUBJECT + 1
 * bytes), subscribes `from` to it for one message, and publishes with the
 * inbox as reply subject. The responder answers with sim_bus_publish on
 * the delivery's reply subject. */
int sim_bus_request(sim_bus *b, uint32_t from, const char *subject, const cap_packet *packet,
                    int64_t now, sim_queue *q, char *inbox);

struct sim_delivery_pool;

/* What a delivery event carries (owned by the event). */
typedef struct {
    uint64_t msg_id;  /* 1, 2, ...: which publish this is a copy of */
    uint32_t from, to, sub_id;
    int64_t sent_at;  /* publish time (virtual) */
    int duplicate;    /* 1 for the extra copy of a DUPLICATE rule */
    int replay;       /* 1 for the late copy of a REPLAY rule */
    int corrupted;    /* 1 when a CORRUPT rule flipped a byte */
    char *subject;    /* NUL-terminated */
    char *reply;      /* NUL-terminated, "" when none */
    uint8_t *bytes;   /* the bytes on the wire (after corruption) */
    size_t len;
    struct sim_delivery_pool *pool; /* the bus's: where the block goes back (NULL: freed) */
} sim_delivery;

/* Frees a delivery (NULL accepted). The bus keeps a bounded number of
 * small delivery blocks for reuse; a delivery may outlive its bus. */
void sim_delivery_free(sim_delivery *d);

/* A sim_queue release callback: frees ev->data when ev->kind is the
 * event kind of the bus passed as ctx (sim_bus *), else does nothing. */
void sim_bus_event_release(sim_event *ev, void *ctx);

/* Result of sim_bus_deliver besides CAP_OK and negative errors. */
#define SIM_BUS_DROPPED 1

typedef struct {
    const sim_delivery *d;  /* borrowed from the event */
    cap_packet *packet;     /* CAP_OK: the decoded packet, lent until sim_bus_release */
    int64_t local_time;     /* the receiver's clock at delivery */
    sim_drop_reason reason; /* SIM_BUS_DROPPED: why */
} sim_msg;

/* Carries out the delivery event ev (popped from the queue at `now`):
 *  CAP_OK           msg->packet decoded (strictly, with the configured
 *                   bounds), counted as delivered;
 *  SIM_BUS_DROPPED  the receiver is cut off by a partition active at `now`
 *                   or unsubscribed; msg->reason says which;
 *  negative         the bytes did not decode: the decoder's error, with
 *                   diag (counted as a decode failure); CAP_EINVAL when ev
 *                   is not a delivery event of this bus.
 * Does not free ev->data. A CAP_OK message must be handed back with
 * sim_bus_release. */
int sim_bus_deliver(sim_bus *b, const sim_event *ev, int64_t now, sim_msg *msg, cap_diag *diag);

/* Hands back a delivered message: msg->packet becomes NULL and, once
 * every delivered packet is back, the decode arena is reset (within
 * SIM_BUS_ARENA_KEEP bytes kept). Nothing may point into the packet
 * afterwards. A message without a packet (a drop, a failure, one already
 * released) is accepted and ignored. */
void sim_bus_release(sim_bus *b, sim_msg *msg);

/* Bytes the bus keeps now for the packets' trips: the decode arena and
 * the encode buffer (for tests of their bound). */
size_t sim_bus_held(const sim_bus *b);

/* Adds a fault rule (strings copied); *fault_id (may be NULL) names it.
 * CAP_EINVAL for a rule out of range, CAP_EFULL past SIM_BUS_MAX_FAULTS. */
int sim_bus_add_fault(sim_bus *b, const sim_fault *f, uint32_t *fault_id);

/* Ends a rule at `now` (its end becomes min(end, now)). */
int sim_bus_end_fault(sim_bus *b, uint32_t fault_id, int64_t now);

/* Shorthands: a partition between actors a and b (b NULL: everyone) over
 * [start, end); heal ends at `now` every partition rule between a and b
 * (either orientation; b NULL: every rule naming a). heal returns the
 * number of rules ended. */
int sim_bus_partition(sim_bus *b, const char *a, const char *other, int64_t start, int64_t end,
                      uint32_t *fault_id);
int sim_bus_heal(sim_bus *b, const char *a, const char *other, int64_t now);

/* Counters (owned by the bus). */
const sim_bus_stats *sim_bus_get_stats(const sim_bus *b);

#endif
