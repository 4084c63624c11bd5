/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Shared by the fuzz targets. Each target defines LLVMFuzzerTestOneInput();
 * it is linked either with libFuzzer (-Dfuzz=true, clang) or with
 * fuzz-main.c, which runs it once over each input of its corpus (the
 * regression test of every build). */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: a violation is a crash, with or
 * without NDEBUG. */
#define fuzz_assert(expr)                                                              \
        do {                                                                           \
                if (!(expr)) {                                                         \
                        fprintf(stderr, "%s:%d: fuzz assertion failed: %s\n", __FILE__, \
                                __LINE__, #expr);                                      \
                        abort();                                                       \
                }                                                                      \
        } while (0)

/* The input as a NUL-terminated string (up to its first NUL byte), malloc'd. */
static inline char *fuzz_string(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);
        if (!s)
                abort();
        memcpy(s, data, size);
        s[size] = 0;
        return s;
}
