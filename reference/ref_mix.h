/* The bit mixer the reference's hash tables share. */
#ifndef REF_MIX_H
#define REF_MIX_H

#include <stdint.h>

/* splitmix64's finaliser: a bijection in which every input bit moves
 * every output bit, so any slice of the result can pick a table slot. */
static inline uint64_t ref_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

#endif
