/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "hex.h"

#include <errno.h>
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

int unhexchar(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -EINVAL;
}

int hex_decode(const char *s, void *out, size_t size) {
        uint8_t *p = out;

        for (size_t i = 0; i < size; i++) {
                int hi, lo;

                /* A NUL stops at the first check: no read past the string. */
                if ((hi = unhexchar(s[2 * i])) < 0 || (lo = unhexchar(s[2 * i + 1])) < 0)
                        return -EINVAL;
                p[i] = (uint8_t) (hi << 4 | lo);
        }
        return s[2 * size] == '\0' ? 0 : -EINVAL;
}
