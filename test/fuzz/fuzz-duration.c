/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Durations and timestamps: parse any text as a clients.conf duration and
 * as a D-Bus timestamp; format what parsed, and parse the formatted
 * timestamp back. */

#include "duration.h"
#include "fuzz.h"
#include "util.h"

/* 9999-12-31T23:59:59.999999: the last time with a four-digit year. */
#define TIMESTAMP_ISO_MAX (UINT64_C(253402300799) * USEC_PER_SEC + 999999)

static void check_formats(uint64_t usec) {
        char d[DURATION_PYTHON_MAX], iso[TIMESTAMP_MAX], py[TIMESTAMP_MAX];
        uint64_t back = 0;

        duration_format_python(usec, d);
        fuzz_assert(strlen(d) > 0 && strlen(d) < DURATION_PYTHON_MAX);
        timestamp_format_iso(usec, iso);
        timestamp_format_python(usec, py);
        fuzz_assert(strlen(iso) < TIMESTAMP_MAX && strlen(py) < TIMESTAMP_MAX);
        if (usec <= TIMESTAMP_ISO_MAX) {
                fuzz_assert(timestamp_parse_iso(iso, &back) == 0);
                fuzz_assert(back == usec);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = fuzz_string(data, size);
        uint64_t usec = 0;
        int r;

        r = duration_parse(s, &usec);
        fuzz_assert(r == 0 || r == -EINVAL || r == -ERANGE);
        if (r == 0)
                check_formats(usec);

        r = timestamp_parse_iso(s, &usec);
        fuzz_assert(r == 0 || r == -EINVAL);
        if (r == 0) {
                char iso[TIMESTAMP_MAX];
                uint64_t back = 0;

                /* What parsed formats back to the canonical form of itself. */
                fuzz_assert(usec <= TIMESTAMP_ISO_MAX);
                timestamp_format_iso(usec, iso);
                fuzz_assert(strncmp(iso, s, 19) == 0);
                fuzz_assert(timestamp_parse_iso(iso, &back) == 0 && back == usec);
                check_formats(usec);
        }

        /* Any 8 bytes as a time: the formatters take every uint64_t. */
        if (size >= 8) {
                memcpy(&usec, data, 8);
                check_formats(usec);
        }
        return 0;
}
