/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Checker command templates (mandos-clients.conf(5), EXPANSION) and shell
 * quoting.
 *
 * Input: TEMPLATE [NUL HOST]. A template that validates must expand for a
 * client (whose host is HOST, or a nasty fixed one); "%(host)s" must
 * expand to shell_quote(HOST); and shell_quote(x), read back the way
 * /bin/sh reads it, must give x again with nothing outside quotes but
 * harmless characters. */

#include "checker.h"
#include "client.h"
#include "fuzz.h"
#include "util.h"

#define SAFE_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-"

static char name[] = "fuzz client";
static char key_id[] = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";
static char fingerprint[] = "'; rm -rf / #";
static char default_host[] = "h'o\"s`t $(x) ${y} \\ ; | & \n*?[";

/* How /bin/sh reads a word made of '…' and "…" runs and bare characters,
 * for the shapes shell_quote() makes: a "…" run may hold only a single
 * quote, a bare character must be safe. Returns the word, or NULL if q is
 * not such a word. */
static char *sh_unquote(const char *q) {
        char *out = malloc(strlen(q) + 1), *d = out;

        fuzz_assert(out);
        while (*q) {
                if (*q == '\'' || *q == '"') {
                        const char *end = strchr(q + 1, *q);
                        if (!end)
                                goto bad;
                        if (*q == '"' && (end != q + 2 || q[1] != '\''))
                                goto bad;
                        memcpy(d, q + 1, (size_t) (end - q - 1));
                        d += end - q - 1;
                        q = end + 1;
                } else if (strchr(SAFE_CHARS, *q))
                        *d++ = *q++;
                else
                        goto bad;
        }
        *d = 0;
        return out;
bad:
        free(out);
        return NULL;
}

static void check_quote(const char *s) {
        _cleanup_free_ char *q = shell_quote(s), *back = NULL;
        size_t n;

        fuzz_assert(q);
        n = strlen(q);
        if (!strchr(s, '\''))
                fuzz_assert((*s && strspn(s, SAFE_CHARS) == strlen(s) && streq(q, s)) ||
                            (n >= 2 && q[0] == '\'' && q[n - 1] == '\''));
        back = sh_unquote(q);
        fuzz_assert(back && streq(back, s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *input = fuzz_string(data, size), *expanded = NULL, *host_only = NULL,
                           *quoted_host = NULL;
        size_t template_len = strlen(input);
        char *host = template_len < size ? input + template_len + 1 : default_host;
        const char *why = NULL;
        Client c = {
                .name = name,
                .key_id = key_id,
                .fingerprint = fingerprint,
                .host = host,
                .bus_exported = true,
                .timeout = UINT64_MAX,
                .extended_timeout = 15 * 60 * USEC_PER_SEC,
                .interval = 1,
                .approval_delay = 0,
                .approval_duration = 86399999999,
                .enabled = true,
                .created = 1,
                .last_enabled = UINT64_C(1700000000) * USEC_PER_SEC,
                .expires = UINT64_MAX,
                .last_checked_ok = 0,
                .last_approval_request = UINT64_C(253402300799999999),
        };
        int r;

        check_quote(input);
        check_quote(host);

        r = checker_template_validate(input, &why);
        fuzz_assert(r == 0 || (r == -EINVAL && why));
        if (r == 0) {
                fuzz_assert(checker_expand(&c, input, &expanded) == 0 && expanded);
                if (!strchr(input, '%'))
                        fuzz_assert(streq(expanded, input));
        }

        fuzz_assert(checker_expand(&c, "%(host)s", &host_only) == 0);
        quoted_host = shell_quote(host);
        fuzz_assert(quoted_host && streq(host_only, quoted_host));
        return 0;
}
