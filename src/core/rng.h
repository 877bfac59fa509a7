/*
** A small, seedable random number generator (splitmix64) with uniform and
** normal draws. Deterministic across platforms, unlike rand(); every user
** owns its own state, so there is no hidden global.
*/
#ifndef RN_RNG_H
#define RN_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct {
    uint64_t s;
} rn_rng;

/* Next 64 random bits (splitmix64). */
static inline uint64_t rn_rng_next(rn_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double rn_rng_uniform(rn_rng *r) { return (double)(rn_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

/* Standard normal draw (Box-Muller; one of the pair is discarded for simplicity). */
static inline double rn_rng_normal(rn_rng *r) {
    double u1 = 1.0 - rn_rng_uniform(r), u2 = rn_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
