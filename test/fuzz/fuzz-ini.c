/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The INI reader: parse any text, then read every key of every section
 * (with interpolation) as clients.conf and mandos.conf readers do. */

#include "fuzz.h"
#include "ini.h"
#include "util.h"

static const char *const defaults[] = {
        "timeout", "PT5M",
        "checker", "fping -q -- %%(host)s",
        "host",    "",
        NULL,
};

static void read_section(const IniFile *f, const IniSection *s) {
        _cleanup_free_ const char **keys = ini_keys(f, s);

        fuzz_assert(keys);
        for (const char **k = keys; *k; k++) {
                _cleanup_free_ char *v = NULL, *error = NULL;
                const IniEntry *e = ini_lookup(f, s, *k);
                int r;

                /* Every key is visible, and lower case. */
                fuzz_assert(e && e->value);
                for (const char *c = *k; *c; c++)
                        fuzz_assert(!(*c >= 'A' && *c <= 'Z'));
                r = ini_get(f, s, *k, &v, &error);
                fuzz_assert(r == 0 || r == -EINVAL);
                if (r == 0)
                        fuzz_assert(v && !error);
                else
                        fuzz_assert(error && !v);
                (void) ini_parse_boolean(v ?: e->value);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(ini_file_freep) IniFile *f = NULL;

        if (ini_parse_string("fuzz.conf", (const char *) data, size, defaults, &f) < 0)
                return 0; /* ENOMEM */
        fuzz_assert(f->defaults.name && streq(f->defaults.name, "DEFAULT"));
        for (size_t i = 0; i < f->n_problems; i++)
                fuzz_assert(f->problems[i].message && f->problems[i].line > 0);
        read_section(f, &f->defaults);
        for (size_t i = 0; i < f->n_sections; i++) {
                fuzz_assert(f->sections[i].name && !streq(f->sections[i].name, "DEFAULT"));
                read_section(f, &f->sections[i]);
        }
        return 0;
}
