/* Time arithmetic shared by every layer: int64 nanoseconds (virtual or
 * Unix time), saturating instead of overflowing, and conversion between
 * nanoseconds and google.protobuf.Timestamp. */
#ifndef CAP_TIME_H
#define CAP_TIME_H

#include <stdint.h>

#include "google/protobuf/timestamp.pb-c.h"

#define CAP_NANOS_PER_SEC INT64_C(1000000000)

/* a + b, clamped to the int64 range. */
int64_t cap_sat_add(int64_t a, int64_t b);

/* A Timestamp in nanoseconds, saturating: anything beyond the int64 range
 * (about years 1678-2262) is clamped to INT64_MIN / INT64_MAX. */
int64_t cap_timestamp_nanos(const Google__Protobuf__Timestamp *t);

/* Fills t (seconds, nanos in [0, 1e9)) from nanoseconds. */
void cap_timestamp_from_nanos(int64_t ns, Google__Protobuf__Timestamp *t);

#endif
