/* Sliding-window request counters for velocity rules: for each (rule, key
 * value) the times of the recent requests, on the caller's clock.
 *
 * Memory is bounded twice: at most max_keys windows, and at most
 * max_stamps stored times in all. When either bound would be passed, the
 * window hit least recently is dropped (ties: the smaller key), so the
 * store forgets the coldest traffic first; a dropped window restarts from
 * zero, which can only let a request through that an unbounded store would
 * have throttled. The order of everything is a function of the calls made,
 * never of addresses or hashing. */
#ifndef REF_VELOCITY_H
#define REF_VELOCITY_H

#include <stddef.h>
#include <stdint.h>

typedef struct ref_velocity_store ref_velocity_store;

/* Defaults: 65536 windows, 1 Mi stored times. NULL when out of memory. */
ref_velocity_store *ref_velocity_store_new(size_t max_keys, size_t max_stamps);
void ref_velocity_store_free(ref_velocity_store *s);

/* The number of requests for (rule_id, key) in the window (now - window_ns,
 * now], counting this one, but never more than max_requests + 1 (enough to
 * tell "exceeded"). With record set, this request is stored; without it
 * (a dry run, as explain does) nothing changes. A `now` earlier than the
 * window's latest time is taken as that time (clocks only move forward).
 * Returns the count, or CAP_ENOMEM. */
int64_t ref_velocity_hit(ref_velocity_store *s, const char *rule_id, const char *key,
                         int64_t window_ns, int64_t max_requests, int64_t now, int record);

/* The number of windows held. */
size_t ref_velocity_store_size(const ref_velocity_store *s);

#endif
