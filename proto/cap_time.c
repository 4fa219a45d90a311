/* Saturating nanosecond arithmetic and Timestamp conversion. */
#include "cap_time.h"

int64_t cap_sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

int64_t cap_timestamp_nanos(const Google__Protobuf__Timestamp *t)
{
    const int64_t lim = INT64_MAX / CAP_NANOS_PER_SEC;
    if (t->seconds > lim)
        return INT64_MAX;
    if (t->seconds < -lim)
        return INT64_MIN;
    return cap_sat_add(t->seconds * CAP_NANOS_PER_SEC, t->nanos);
}

void cap_timestamp_from_nanos(int64_t ns, Google__Protobuf__Timestamp *t)
{
    int64_t s = ns / CAP_NANOS_PER_SEC, r = ns % CAP_NANOS_PER_SEC;
    if (r < 0) {  /* floor division: nanos stay in [0, 1e9) */
        s -= 1;
        r += CAP_NANOS_PER_SEC;
    }
    t->seconds = s;
    t->nanos = (int32_t)r;
}
