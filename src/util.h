/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Small helpers shared by every module: ownership via cleanup attributes,
 * and a few string utilities. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define USEC_PER_SEC  UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)

/* CLOCK_MONOTONIC now, in µs (the loop's own clock is sd_event_now()). */
static inline uint64_t now_monotonic(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0)
                (void) close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Hand a pointer on: the local cleanup then sees NULL. */
#define TAKE_PTR(p)                         \
        ({                                  \
                __typeof__(p) _p_ = (p);    \
                (p) = NULL;                 \
                _p_;                        \
        })

#define TAKE_FD(fd)                         \
        ({                                  \
                int _fd_ = (fd);            \
                (fd) = -1;                  \
                _fd_;                       \
        })

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Make *array (of elements of size bytes, *allocated of them) hold at least
 * need, with room for as many again (at least 64 bytes), as systemd's
 * greedy_realloc() does, so that appending one at a time costs amortized
 * O(1) and a small array stays small (an IniSection's handful of keys, for
 * each of 100,000 clients). Returns 0, or -ENOMEM with *array unchanged. */
static inline int greedy_realloc(void **array, size_t *allocated, size_t need, size_t size) {
        size_t n;
        void *a;

        if (need <= *allocated)
                return 0;
        if (need > SIZE_MAX / 2 / size)
                return -ENOMEM;
        n = MAX(need * 2, (64 + size - 1) / size);
        a = reallocarray(*array, n, size);
        if (!a)
                return -ENOMEM;
        *array = a;
        *allocated = n;
        return 0;
}

/* The struct of type that has member at ptr. */
#define container_of(ptr, type, member) ((type *) ((char *) (ptr) - offsetof(type, member)))

#define GREEDY_REALLOC(array, allocated, need) \
        greedy_realloc((void **) &(array), &(allocated), (need), sizeof((array)[0]))

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return streq(a, b);
}

static inline const char *strempty(const char *s) {
        return s ?: "";
}

static inline const char *strna(const char *s) {
        return s ?: "n/a";
}

static inline bool isempty(const char *s) {
        return !s || !*s;
}

/* Wipe and free a buffer that held secret material. */
static inline void *erase_and_free(void *p, size_t n) {
        if (p) {
                explicit_bzero(p, n);
                free(p);
        }
        return NULL;
}

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

#define _noreturn_ __attribute__((noreturn))

/* s starts with prefix (NULL s: no). */
static inline bool startswith(const char *s, const char *prefix) {
        return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* s ends with suffix (NULL s: no). */
static inline bool endswith(const char *s, const char *suffix) {
        size_t n = s ? strlen(s) : 0, m = strlen(suffix);
        return s && n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

