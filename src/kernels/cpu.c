/*
** CPU feature detection and the kernels' dispatch table (see cpu.h).
*/
#include "cpu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The process's dispatch table, filled once by fill_table. */
static rn_dispatch table;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

/* Highest level this CPU (and its OS, which must save the wide registers)
** supports. */
static rn_cpu_level detect(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
        return RN_CPU_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return RN_CPU_AVX2;
#endif
    return RN_CPU_GENERIC;
}

/* Whether the CPU has the bf16 dot product (vdpbf16ps). */
static int detect_bf16(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    return __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

/* Fills the table: the detected level, lowered by RN_CPU if set. */
static void fill_table(void) {
    rn_cpu_level lvl = detect();
    const char *env = getenv("RN_CPU");
    if (env && !strcmp(env, "generic"))
        lvl = RN_CPU_GENERIC;
    if (env && !strcmp(env, "avx2") && lvl > RN_CPU_AVX2)
        lvl = RN_CPU_AVX2;
    memset(&table, 0, sizeof table);
    if (lvl == RN_CPU_AVX512) {
        rn_gemm_fill_avx512(&table);
        if (detect_bf16() && !(env && !strcmp(env, "avx512")))
            rn_gemm_fill_bf16(&table);
    }
    else if (lvl == RN_CPU_AVX2)
        rn_gemm_fill_avx2(&table);
    else
        rn_gemm_fill_generic(&table);
}

/* The dispatch table for this process. */
const rn_dispatch *rn_cpu_dispatch(void) {
    pthread_once(&table_once, fill_table);
    return &table;
}

/* Whether bf16 convolutions run on this process's kernels. */
int rn_cpu_has_bf16(void) { return rn_cpu_dispatch()->bf16; }
