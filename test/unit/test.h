/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* A minimal unit-test harness: each test is a function; failed checks are
 * printed with file and line; main() runs them all and prints the tally. */

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static unsigned test_checks_failed;

#define check(expr)                                                              \
        do {                                                                     \
                if (!(expr)) {                                                   \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,   \
                                __LINE__, #expr);                                \
                        test_checks_failed++;                                    \
                }                                                                \
        } while (0)

#define check_streq(a, b)                                                        \
        do {                                                                     \
                const char *_a = (a), *_b = (b);                                 \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                         \
                        fprintf(stderr, "%s:%d: check failed: %s == %s "         \
                                "(\"%s\" vs \"%s\")\n", __FILE__, __LINE__, #a,  \
                                #b, _a ?: "(null)", _b ?: "(null)");             \
                        test_checks_failed++;                                    \
                }                                                                \
        } while (0)

#define check_int(a, b)                                                          \
        do {                                                                     \
                long long _a = (long long) (a), _b = (long long) (b);            \
                if (_a != _b) {                                                  \
                        fprintf(stderr, "%s:%d: check failed: %s == %s "         \
                                "(%lld vs %lld)\n", __FILE__, __LINE__, #a, #b,  \
                                _a, _b);                                         \
                        test_checks_failed++;                                    \
                }                                                                \
        } while (0)

typedef struct TestCase {
        const char *name;
        void (*func)(void);
} TestCase;

#define TEST(n) {#n, n}

static inline int test_run_all(const TestCase *tests, size_t n) {
        unsigned failed = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned before = test_checks_failed;
                tests[i].func();
                bool ok = test_checks_failed == before;
                printf("%s %s\n", ok ? "ok  " : "FAIL", tests[i].name);
                if (!ok)
                        failed++;
        }
        printf("%zu passed, %u failed\n", n - failed, failed);
        return failed ? 1 : 0;
}

#define TEST_MAIN(...)                                                           \
        int main(void) {                                                         \
                static const TestCase tests[] = {__VA_ARGS__};                   \
                return test_run_all(tests, sizeof(tests) / sizeof(tests[0]));    \
        }
