/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The protocol line a peer sends before TLS (docs/PROTOCOL.md, step 1): any
 * bytes are accepted or refused, never a crash; what is accepted has an
 * integer ≤ 1 as its first field. */

#include <ctype.h>

#include "fuzz.h"
#include "session.h"
#include "util.h"

/* An independent reading of "accepted": skip blanks, optional sign, then
 * digits (with single '_' between them) up to a blank or the end; the
 * value, if it fits, is ≤ 1. Only the shape is checked here. */
static bool looks_like_version(const char *line, size_t size) {
        size_t i = 0;
        bool digits = false;

        while (i < size && strchr(" \t\r\n\v\f", line[i]))
                i++;
        if (i < size && (line[i] == '+' || line[i] == '-'))
                i++;
        for (; i < size && !strchr(" \t\r\n\v\f", line[i]); i++) {
                if (isdigit((unsigned char) line[i]))
                        digits = true;
                else if (line[i] != '_')
                        return false;
        }
        return digits;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *line = (const char *) data;
        int r = protocol_line_parse(line, size);

        fuzz_assert(r == 0 || r == -EINVAL);
        if (r == 0) {
                fuzz_assert(size <= SESSION_LINE_MAX && !memchr(line, 0, size));
                fuzz_assert(looks_like_version(line, size));
        }
        return 0;
}
