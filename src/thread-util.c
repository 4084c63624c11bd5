/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "thread-util.h"

#include <signal.h>

/* A new thread starts with its creator's vector registers, and the first
 * lazily bound call a library makes in it saves them all on the thread's
 * stack (glibc's _dl_runtime_resolve). The loop's thread has just moved
 * clients.conf, secrets included, through those registers (strlen, memcpy),
 * so a thread started after that would keep a copy of secret text for its
 * whole life. Zero them first. glibc's EVEX string functions also use
 * ymm16-31 on AVX-512 machines, which vzeroall does not touch.
 * Nothing vector is live across a call (they are all caller-saved). */
static __attribute__((noinline)) void clear_vector_registers(void) {
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f"))
                __asm__ volatile(
                        "vpxord %%zmm16, %%zmm16, %%zmm16\n\t"
                        "vpxord %%zmm17, %%zmm17, %%zmm17\n\t"
                        "vpxord %%zmm18, %%zmm18, %%zmm18\n\t"
                        "vpxord %%zmm19, %%zmm19, %%zmm19\n\t"
                        "vpxord %%zmm20, %%zmm20, %%zmm20\n\t"
                        "vpxord %%zmm21, %%zmm21, %%zmm21\n\t"
                        "vpxord %%zmm22, %%zmm22, %%zmm22\n\t"
                        "vpxord %%zmm23, %%zmm23, %%zmm23\n\t"
                        "vpxord %%zmm24, %%zmm24, %%zmm24\n\t"
                        "vpxord %%zmm25, %%zmm25, %%zmm25\n\t"
                        "vpxord %%zmm26, %%zmm26, %%zmm26\n\t"
                        "vpxord %%zmm27, %%zmm27, %%zmm27\n\t"
                        "vpxord %%zmm28, %%zmm28, %%zmm28\n\t"
                        "vpxord %%zmm29, %%zmm29, %%zmm29\n\t"
                        "vpxord %%zmm30, %%zmm30, %%zmm30\n\t"
                        "vpxord %%zmm31, %%zmm31, %%zmm31\n\t"
                        ::: "memory");
        if (__builtin_cpu_supports("avx"))
                __asm__ volatile("vzeroall" ::: "memory");
        else
                __asm__ volatile(
                        "pxor %%xmm0, %%xmm0\n\t"   "pxor %%xmm1, %%xmm1\n\t"
                        "pxor %%xmm2, %%xmm2\n\t"   "pxor %%xmm3, %%xmm3\n\t"
                        "pxor %%xmm4, %%xmm4\n\t"   "pxor %%xmm5, %%xmm5\n\t"
                        "pxor %%xmm6, %%xmm6\n\t"   "pxor %%xmm7, %%xmm7\n\t"
                        "pxor %%xmm8, %%xmm8\n\t"   "pxor %%xmm9, %%xmm9\n\t"
                        "pxor %%xmm10, %%xmm10\n\t" "pxor %%xmm11, %%xmm11\n\t"
                        "pxor %%xmm12, %%xmm12\n\t" "pxor %%xmm13, %%xmm13\n\t"
                        "pxor %%xmm14, %%xmm14\n\t" "pxor %%xmm15, %%xmm15\n\t"
                        ::: "memory");
#endif
}

int thread_start(pthread_t *ret, void *(*func)(void *), void *arg) {
        sigset_t all, saved;
        int r;

        /* The new thread inherits the mask in force when it is made. */
        (void) sigfillset(&all);
        r = -pthread_sigmask(SIG_SETMASK, &all, &saved);
        if (r < 0)
                return r;
        clear_vector_registers();
        r = -pthread_create(ret, NULL, func, arg);
        (void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
        return r;
}
