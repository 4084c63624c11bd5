/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "hex.h"

#include <stdint.h>
#include <stdlib.h>

char hexchar(unsigned x, bool upper) {
        return (upper ? "0123456789ABCDEF" : "0123456789abcdef")[x & 15];
}

char *hex_encode(char *out, const void *data, size_t size, bool upper) {
        const uint8_t *p = data;

        for (size_t i = 0; i < size; i++) {
                *out++ = hexchar(p[i] >> 4, upper);
                *out++ = hexchar(p[i], upper);
        }
        *out = 0;
        return out;
}

char *hexmem(const void *data, size_t size) {
        char *s = malloc(2 * size + 1);

        if (s)
                hex_encode(s, data, size, false);
        return s;
}
