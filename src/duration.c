/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "duration.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "util.h"

#define USEC_PER_MINUTE (60 * USEC_PER_SEC)
#define USEC_PER_HOUR (60 * USEC_PER_MINUTE)
#define USEC_PER_DAY (24 * USEC_PER_HOUR)
#define USEC_PER_WEEK (7 * USEC_PER_DAY)

/* The tokens of an RFC 3339 duration (RFC 3339 appendix A), as the
 * reference's state machine reads them. */
typedef enum DurationToken {
        TOKEN_YEAR,
        TOKEN_MONTH,
        TOKEN_DAY,
        TOKEN_WEEK,
        TOKEN_TIME,
        TOKEN_HOUR,
        TOKEN_MINUTE,
        TOKEN_SECOND,
        TOKEN_END,
        _TOKEN_MAX,
} DurationToken;

#define T(t) (1U << (t))

static const struct {
        char letter;
        uint64_t usec;      /* 0: no number before the letter */
        unsigned followers; /* tokens allowed next, as T() bits */
} duration_tokens[_TOKEN_MAX] = {
        /* T after Y or M is our addition: RFC 3339 allows it, the reference does not. */
        [TOKEN_YEAR]   = { 'Y', 52 * USEC_PER_WEEK, T(TOKEN_MONTH) | T(TOKEN_TIME) | T(TOKEN_END) },
        [TOKEN_MONTH]  = { 'M', 4 * USEC_PER_WEEK, T(TOKEN_DAY) | T(TOKEN_TIME) | T(TOKEN_END) },
        [TOKEN_DAY]    = { 'D', USEC_PER_DAY, T(TOKEN_TIME) | T(TOKEN_END) },
        [TOKEN_WEEK]   = { 'W', USEC_PER_WEEK, T(TOKEN_END) },
        [TOKEN_TIME]   = { 'T', 0, T(TOKEN_HOUR) | T(TOKEN_MINUTE) | T(TOKEN_SECOND) },
        [TOKEN_HOUR]   = { 'H', USEC_PER_HOUR, T(TOKEN_MINUTE) | T(TOKEN_END) },
        [TOKEN_MINUTE] = { 'M', USEC_PER_MINUTE, T(TOKEN_SECOND) | T(TOKEN_END) },
        [TOKEN_SECOND] = { 'S', USEC_PER_SEC, T(TOKEN_END) },
};

#define DURATION_AFTER_P (T(TOKEN_YEAR) | T(TOKEN_MONTH) | T(TOKEN_DAY) | T(TOKEN_TIME) | T(TOKEN_WEEK))

bool python_digits(const char **s, uint64_t *ret, bool *overflow) {
        const char *p = *s;
        uint64_t n = 0;

        for (; *p >= '0' && *p <= '9'; p++) {
                if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, (uint64_t) (*p - '0'), &n))
                        *overflow = true;
                /* One underscore between two digits, as in 1_000. */
                if (p[1] == '_' && p[2] >= '0' && p[2] <= '9')
                        p++;
        }
        if (p == *s)
                return false;
        *s = p;
        *ret = n;
        return true;
}

/* RFC 3339 numbers: plain decimal digits. On overflow keep going (a syntax
 * error later must still win) and set *overflow. */
static bool duration_number(const char **s, uint64_t *ret, bool *overflow) {
        const char *p = *s;
        uint64_t n = 0;

        for (; *p >= '0' && *p <= '9'; p++)
                if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, (uint64_t) (*p - '0'), &n))
                        *overflow = true;
        if (p == *s)
                return false;
        *s = p;
        *ret = n;
        return true;
}

static void duration_add(uint64_t *total, uint64_t n, uint64_t unit, bool *overflow) {
        if (__builtin_mul_overflow(n, unit, &n) || __builtin_add_overflow(*total, n, total))
                *overflow = true;
}

/* The token among followers that has this letter; Month and Minute share
 * 'M' but are never allowed at the same point. */
static int duration_token_for(unsigned followers, char letter) {
        for (int t = 0; t < TOKEN_END; t++)
                if ((followers & T(t)) && duration_tokens[t].letter == letter)
                        return t;
        return -1;
}

static int duration_parse_rfc3339(const char *s, uint64_t *ret) {
        unsigned followers = DURATION_AFTER_P;
        bool overflow = false;
        uint64_t total = 0, n = 0;
        int t;

        if (*s++ != 'P')
                return -EINVAL;
        while (!(*s == 0 && (followers & T(TOKEN_END)))) {
                if (*s == 'T' && (followers & T(TOKEN_TIME))) {
                        s++;
                        followers = duration_tokens[TOKEN_TIME].followers;
                        continue;
                }
                if (!duration_number(&s, &n, &overflow))
                        return -EINVAL;
                t = duration_token_for(followers & ~T(TOKEN_TIME), *s++);
                if (t < 0)
                        return -EINVAL;
                duration_add(&total, n, duration_tokens[t].usec, &overflow);
                followers = duration_tokens[t].followers;
        }
        if (overflow)
                return -ERANGE;
        *ret = total;
        return 0;
}

/* Python's str.split() separators, ASCII only: other Unicode spaces make a token invalid. */
static bool duration_is_space(char c) {
        return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f');
}

static uint64_t duration_legacy_unit(char c) {
        switch (c) {
        case 's': return USEC_PER_SEC;
        case 'm': return USEC_PER_MINUTE;
        case 'h': return USEC_PER_HOUR;
        case 'd': return USEC_PER_DAY;
        case 'w': return USEC_PER_WEEK;
        default:  return 0;
        }
}

/* Whitespace-separated tokens, each one or more <digits><unit>. */
static int duration_parse_legacy(const char *s, uint64_t *ret) {
        bool overflow = false;
        uint64_t total = 0, n = 0, unit;

        for (;;) {
                while (duration_is_space(*s))
                        s++;
                if (*s == 0)
                        break;
                /* A token's number is what Python's int() reads, so "+5m" is
                 * 5 minutes; a minus sign stays refused. */
                if (*s == '+')
                        s++;
                do {
                        if (!python_digits(&s, &n, &overflow))
                                return -EINVAL;
                        unit = duration_legacy_unit(*s++);
                        if (unit == 0)
                                return -EINVAL;
                        duration_add(&total, n, unit, &overflow);
                } while (*s != 0 && !duration_is_space(*s));
        }
        if (overflow)
                return -ERANGE;
        *ret = total;
        return 0;
}

int duration_parse(const char *s, uint64_t *ret) {
        int r = duration_parse_rfc3339(s, ret);
        return r == -EINVAL ? duration_parse_legacy(s, ret) : r;
}

char *duration_format_python(uint64_t usec, char *buf) {
        uint64_t days = usec / USEC_PER_DAY, secs = usec / USEC_PER_SEC % 86400, frac = usec % USEC_PER_SEC;
        int n = 0;

        if (days > 0)
                n = snprintf(buf, DURATION_PYTHON_MAX, "%" PRIu64 " day%s, ", days, days == 1 ? "" : "s");
        n += snprintf(buf + n, DURATION_PYTHON_MAX - (size_t) n, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64,
                      secs / 3600, secs / 60 % 60, secs % 60);
        if (frac > 0)
                (void) snprintf(buf + n, DURATION_PYTHON_MAX - (size_t) n, ".%06" PRIu64, frac);
        return buf;
}

/* sep: 'T' for ISO 8601, ' ' for Python's str(datetime); fraction: always, or only when non-zero. */
static char *timestamp_format(uint64_t usec, char *buf, char sep, bool always_fraction) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        unsigned frac = (unsigned) (usec % USEC_PER_SEC);
        struct tm tm;
        int n;

        if (!gmtime_r(&t, &tm)) {
                buf[0] = 0;
                return buf;
        }
        n = snprintf(buf, TIMESTAMP_MAX, "%04d-%02d-%02d%c%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, sep, tm.tm_hour, tm.tm_min, tm.tm_sec);
        if ((always_fraction || frac > 0) && n > 0 && n < TIMESTAMP_MAX)
                (void) snprintf(buf + n, TIMESTAMP_MAX - (size_t) n, ".%06u", frac);
        return buf;
}

char *timestamp_format_iso(uint64_t usec, char *buf) {
        return timestamp_format(usec, buf, 'T', true);
}

char *timestamp_format_python(uint64_t usec, char *buf) {
        return timestamp_format(usec, buf, ' ', false);
}

/* The value of the n digits at s (already checked to be digits). */
static int timestamp_number(const char *s, unsigned n) {
        int v = 0;

        for (unsigned i = 0; i < n; i++)
                v = v * 10 + (s[i] - '0');
        return v;
}

/* ".ffffff" with 1 to 6 digits, or nothing. */
static bool timestamp_fraction(const char *s, uint64_t *ret) {
        uint64_t v = 0;
        unsigned n = 0;

        *ret = 0;
        if (*s == 0)
                return true;
        if (*s++ != '.')
                return false;
        for (; *s >= '0' && *s <= '9' && n < 6; s++, n++)
                v = v * 10 + (uint64_t) (*s - '0');
        if (n == 0 || *s != 0)
                return false;
        for (; n < 6; n++)
                v *= 10;
        *ret = v;
        return true;
}

int timestamp_parse_iso(const char *s, uint64_t *ret) {
        static const char pattern[] = "dddd-dd-ddTdd:dd:dd"; /* 'd': a digit */
        struct tm tm, check;
        uint64_t frac;
        time_t t;

        /* Stops at the first mismatch, so never reads past the end of s. */
        for (size_t i = 0; pattern[i]; i++)
                if (pattern[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != pattern[i])
                        return -EINVAL;
        if (!timestamp_fraction(s + strlen(pattern), &frac))
                return -EINVAL;
        tm = (struct tm) {
                .tm_year = timestamp_number(s, 4) - 1900,
                .tm_mon = timestamp_number(s + 5, 2) - 1,
                .tm_mday = timestamp_number(s + 8, 2),
                .tm_hour = timestamp_number(s + 11, 2),
                .tm_min = timestamp_number(s + 14, 2),
                .tm_sec = timestamp_number(s + 17, 2),
        };
        check = tm;
        t = timegm(&tm);
        /* timegm() normalises out-of-range fields (Feb 30, 24:00:00, leap
         * seconds): any change means the text was not a valid time. */
        if (t < 0 || tm.tm_year != check.tm_year || tm.tm_mon != check.tm_mon || tm.tm_mday != check.tm_mday ||
            tm.tm_hour != check.tm_hour || tm.tm_min != check.tm_min || tm.tm_sec != check.tm_sec)
                return -EINVAL;
        *ret = (uint64_t) t * USEC_PER_SEC + frac;
        return 0;
}
