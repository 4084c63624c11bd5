/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "clients-conf.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "checker.h"
#include "duration.h"
#include "hashmap.h"
#include "ini.h"
#include "secret-mem.h"
#include "shared-str.h"
#include "util.h"

/* The ConfFiles of the load under way (clients_conf_load_all_files), or
 * NULL: the parser reaches secfiles deep in a section. */
static ConfFiles *io;

int conf_files_add(ConfFiles *f, char kind, const char *path, int error, const char *why, const void *data,
                   size_t size) {
        ConfFile *e;

        /* Doubling: a configuration may hold 100,000 secfiles. */
        if (GREEDY_REALLOC(f->files, f->n_allocated, f->n + 1) < 0)
                return -ENOMEM;
        e = &f->files[f->n];
        *e = (ConfFile) { .kind = kind, .error = error, .size = size };
        /* kind and path in one string: the key of the replay index. */
        if (asprintf(&e->key, "%c%s", kind, path) < 0)
                e->key = NULL;
        else
                e->path = e->key + 1;
        e->why = why ? strdup(why) : NULL;
        e->data = malloc(size + 1);
        if (!e->key || (why && !e->why) || !e->data) {
                free(e->key);
                free(e->why);
                free(e->data);
                return -ENOMEM;
        }
        if (size)
                memcpy(e->data, data, size);
        e->data[size] = 0;
        f->n++;
        return 0;
}

void conf_files_done(ConfFiles *f) {
        for (size_t i = 0; i < f->n; i++) {
                free(f->files[i].key);
                free(f->files[i].why);
                erase_and_free(f->files[i].data, f->files[i].size + 1);
        }
        free(f->files);
        *f = (ConfFiles) { .replay = f->replay };
}

/* The replay index (io_index): a lookup per secfile must not scan all the
 * files, or 100,000 clients with secfiles cost 10^10 comparisons. */
static Hashmap *io_index;

static int io_index_build(void) {
        io_index = hashmap_new();
        if (!io_index)
                return -ENOMEM;
        for (size_t i = 0; i < io->n; i++) {
                /* A file read twice: the first reading counts, as before. */
                int r = hashmap_put(io_index, io->files[i].key, &io->files[i]);
                if (r < 0 && r != -EEXIST)
                        return r;
        }
        return 0;
}

static const ConfFile *io_find(char kind, const char *path) {
        _cleanup_free_ char *key = NULL;

        if (asprintf(&key, "%c%s", kind, path) < 0)
                return NULL;
        return hashmap_get(io_index, key);
}

/* Parse an ini file of kind 'c' or 'd' the current way (see io). */
static int io_parse(char kind, const char *path, const char *const *defaults, IniFile **ret) {
        char *text = NULL;
        size_t size = 0;
        int r;

        if (!io)
                return ini_parse_file(path, defaults, ret);
        if (io->replay) {
                const ConfFile *e = io_find(kind, path);
                if (!e)
                        return -ENOENT;
                if (e->error)
                        return -e->error;
                return ini_parse_string(path, (const char *) e->data, e->size, defaults, ret);
        }
        r = ini_read_file(path, &text, &size);
        if (r == -ENOMEM)
                return r;
        if (conf_files_add(io, kind, path, r < 0 ? -r : 0, NULL, text ?: "", size) < 0)
                r = -ENOMEM;
        else if (r >= 0)
                r = ini_parse_string(path, text, size, defaults, ret);
        if (text)
                erase_and_free(text, size + 1);
        return r;
}

/* configparser defaults of the reference's Client class
 * (mandos-clients.conf(5), OPTIONS): the table's, as key/value pairs. */
static const char *const *client_defaults(void) {
        static const char *v[2 * _CLIENT_SETTING_MAX + 1];

        if (!v[0]) {
                size_t n = 0;
                FOREACH_CLIENT_SETTING(row)
                        if (row->default_value) {
                                v[n++] = row->name;
                                v[n++] = row->default_value;
                        }
        }
        return v;
}

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

ClientsConf *clients_conf_free(ClientsConf *c) {
        if (!c)
                return NULL;
        hashmap_free(c->by_name);
        hashmap_free(c->by_key_id);
        for (size_t i = 0; i < c->n_clients; i++)
                client_settings_free(c->clients[i]);
        free(c->clients);
        strv_free(c->problems, c->n_problems);
        strv_free(c->warnings, c->n_warnings);
        for (size_t i = 0; i < ELEMENTSOF(c->last); i++)
                shared_str_free(c->last[i]);
        free(c);
        return NULL;
}

static int strv_push(char ***v, size_t *n, char *s) {
        char **nv = reallocarray(*v, *n + 1, sizeof(char *));
        if (!nv) {
                free(s);
                return -ENOMEM;
        }
        nv[(*n)++] = s;
        *v = nv;
        return 0;
}

/* "FILE:LINE: [SECTION] KEY: why", leaving out what is not known. */
_printf_(7, 8)
static int report(char ***v, size_t *n, const char *path, unsigned line, const char *section,
                  const char *key, const char *format, ...) {
        _cleanup_free_ char *why = NULL;
        char *s;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&why, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;

        char where[16] = "";
        if (line > 0)
                (void) snprintf(where, sizeof(where), ":%u", line);
        r = asprintf(&s, "%s%s: %s%s%s%s%s%s", path, where,
                     section ? "[" : "", strempty(section), section ? "] " : "",
                     strempty(key), key ? ": " : "", why);
        if (r < 0)
                return -ENOMEM;
        return strv_push(v, n, s);
}

#define problem(c, ...) report(&(c)->problems, &(c)->n_problems, __VA_ARGS__)
#define warning(c, ...) report(&(c)->warnings, &(c)->n_warnings, __VA_ARGS__)

char *normalize_key_id(const char *s) {
        char *ret = malloc(strlen(s) + 1), *d = ret;
        if (!ret)
                return NULL;
        for (; *s; s++)
                if (*s != ' ')
                        *d++ = (char) toupper((unsigned char) *s);
        *d = 0;
        return ret;
}

/* Each byte's value in the base64 alphabet plus one, 0 for the others: a
 * table, as branches on random characters are mispredicted (100,000
 * secrets are 80 MB of base64). */
static const uint8_t base64_values[256] = {
        ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
        ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
        ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
        ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
        ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
        ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
        ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
        ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

static int base64_value(char c) {
        return (int) base64_values[(unsigned char) c] - 1;
}

int base64_decode_lenient(const char *s, uint8_t **ret, size_t *ret_size, const char **ret_error) {
        size_t len = strlen(s), n = 0;
        unsigned quad_pos = 0, pads = 0, leftchar = 0;
        uint8_t *out = malloc(len / 4 * 3 + 3);

        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                int v;

                /* Four characters of the alphabet at a quantum's start: three bytes. */
                if (quad_pos == 0 && i + 4 <= len) {
                        int a = base64_value(s[i]), b = base64_value(s[i + 1]), c = base64_value(s[i + 2]),
                            d = base64_value(s[i + 3]);
                        if ((a | b | c | d) >= 0) {
                                uint32_t q = (uint32_t) a << 18 | (uint32_t) b << 12 | (uint32_t) c << 6 | (uint32_t) d;
                                out[n++] = (uint8_t) (q >> 16);
                                out[n++] = (uint8_t) (q >> 8);
                                out[n++] = (uint8_t) q;
                                pads = 0;
                                i += 3;
                                continue;
                        }
                }
                if (s[i] == '=') {
                        /* A complete pad sequence ends the data. */
                        if (quad_pos >= 2 && quad_pos + ++pads >= 4)
                                goto done;
                        continue;
                }
                v = base64_value(s[i]);
                if (v < 0)
                        continue;
                pads = 0;
                switch (quad_pos) {
                case 0:
                        leftchar = (unsigned) v;
                        break;
                case 1:
                        out[n++] = (uint8_t) ((leftchar << 2) | ((unsigned) v >> 4));
                        leftchar = (unsigned) v & 0x0f;
                        break;
                case 2:
                        out[n++] = (uint8_t) ((leftchar << 4) | ((unsigned) v >> 2));
                        leftchar = (unsigned) v & 0x03;
                        break;
                case 3:
                        out[n++] = (uint8_t) ((leftchar << 6) | (unsigned) v);
                        leftchar = 0;
                        break;
                }
                quad_pos = (quad_pos + 1) % 4;
        }
        if (quad_pos != 0) {
                *ret_error = quad_pos == 1
                        ? "invalid base64: one character more than a multiple of 4"
                        : "invalid base64: incorrect padding";
                erase_and_free(out, len / 4 * 3 + 3);
                return -EINVAL;
        }
done:
        *ret = out;
        *ret_size = n;
        return 0;
}

/* os.path.expandvars: $NAME and ${NAME} from the environment; unknown ones stay. */
static char *expand_vars(const char *s) {
        size_t size = strlen(s) + 1, n = 0;
        char *out = malloc(size);

        if (!out)
                return NULL;
        while (*s) {
                const char *name = NULL, *end = NULL, *value;
                size_t name_len = 0;

                if (s[0] == '$' && s[1] == '{' && (end = strchr(s + 2, '}'))) {
                        name = s + 2;
                        name_len = (size_t) (end - name);
                        end++;
                } else if (s[0] == '$' && (isalnum((unsigned char) s[1]) || s[1] == '_')) {
                        name = end = s + 1;
                        while (isalnum((unsigned char) *end) || *end == '_')
                                end++;
                        name_len = (size_t) (end - name);
                }
                _cleanup_free_ char *key = name ? strndup(name, name_len) : NULL;
                value = key ? getenv(key) : NULL;
                const char *piece = value ?: s;
                size_t piece_len = value ? strlen(value) : (name ? (size_t) (end - s) : 1);
                if (piece_len >= size - n) {
                        /* Grow by doubling: a realloc() per character is quadratic. */
                        char *bigger = realloc(out, size = 2 * (n + piece_len + 1));
                        if (!bigger) {
                                free(out);
                                return NULL;
                        }
                        out = bigger;
                }
                memcpy(out + n, piece, piece_len);
                n += piece_len;
                s = name ? end : s + 1;
        }
        out[n] = 0;
        return out;
}

/* os.path.expanduser: "~" and "~user" at the start. */
static char *expand_user(const char *s) {
        const char *slash, *home = NULL;
        char *ret;

        if (s[0] != '~')
                return strdup(s);
        slash = strchrnul(s, '/');
        if (slash == s + 1) {
                home = getenv("HOME");
                if (!home) {
                        struct passwd *pw = getpwuid(getuid());
                        home = pw ? pw->pw_dir : NULL;
                }
        } else {
                _cleanup_free_ char *user = strndup(s + 1, (size_t) (slash - s - 1));
                struct passwd *pw = user ? getpwnam(user) : NULL;
                home = pw ? pw->pw_dir : NULL;
        }
        if (!home)
                return strdup(s);
        if (asprintf(&ret, "%s%s", home, slash) < 0)
                return NULL;
        return ret;
}

static int secfile_check(const struct stat *st, const char **why) {
        if (S_ISDIR(st->st_mode))
                return -EISDIR;
        if (!S_ISREG(st->st_mode)) {
                *why = "not a regular file";
                return -EINVAL;
        }
        if (st->st_size > SECRET_SIZE_MAX) {
                *why = "larger than " STRINGIFY(SECRET_SIZE_MAX) " bytes";
                return -EFBIG;
        }
        return 0;
}

/* Read a secfile, refusing what cannot be a secret (a directory, a FIFO,
 * anything above SECRET_SIZE_MAX). Returns 0 or -errno with *why set. */
static int read_secfile(const char *path, uint8_t **ret, size_t *ret_size, const char **why) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        uint8_t *buf;
        size_t n = 0;
        int r;

        /* Look before opening, as root: opening a device can act (a
         * watchdog starts, a tape rewinds). fstat() again for a swap. */
        if (stat(path, &st) < 0)
                return -errno;
        if ((r = secfile_check(&st, why)) < 0)
                return r;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if ((r = secfile_check(&st, why)) < 0)
                return r;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + n, (size_t) st.st_size + 1 - n);
                if (k < 0) {
                        int e = errno;
                        erase_and_free(buf, (size_t) st.st_size + 1);
                        return -e;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > (size_t) st.st_size) { /* grew while we read it */
                        erase_and_free(buf, (size_t) st.st_size + 1);
                        *why = "changed while being read";
                        return -EIO;
                }
        }
        *ret = buf;
        *ret_size = n;
        return 0;
}

typedef struct SectionReader {
        ClientsConf *conf;
        const IniFile *file;
        const IniSection *section;
        bool failed;
} SectionReader;

static int io_read_secfile(const char *path, uint8_t **ret, size_t *ret_size, const char **why) {
        static char why_buf[128];
        const ConfFile *e;
        int r;

        if (!io)
                return read_secfile(path, ret, ret_size, why);
        if (io->replay) {
                e = io_find('s', path);
                if (!e) {
                        *why = "not among the files the launcher read";
                        return -ENOENT;
                }
                if (e->error) {
                        if (e->why) {
                                snprintf(why_buf, sizeof(why_buf), "%s", e->why);
                                *why = why_buf;
                        }
                        return -e->error;
                }
                *ret = malloc(e->size ?: 1);
                if (!*ret)
                        return -ENOMEM;
                if (e->size)
                        memcpy(*ret, e->data, e->size);
                *ret_size = e->size;
                return 0;
        }
        *ret = NULL;
        *ret_size = 0;
        r = read_secfile(path, ret, ret_size, why);
        if (r == -ENOMEM)
                return r;
        if (conf_files_add(io, 's', path, r < 0 ? -r : 0, r < 0 ? *why : NULL, r < 0 ? "" : (const void *) *ret,
                           r < 0 ? 0 : *ret_size) < 0) {
                if (r >= 0)
                        *ret = erase_and_free(*ret, *ret_size);
                return -ENOMEM;
        }
        return r;
}

static unsigned key_line(SectionReader *r, const char *key) {
        const IniEntry *e = ini_lookup(r->file, r->section, key);
        return e && e->line ? e->line : r->section->line;
}

/* The interpolated value of key; NULL (and a problem) when it is bad. */
static char *get_value(SectionReader *r, const char *key) {
        _cleanup_free_ char *error = NULL;
        char *v = NULL;
        int k;

        k = ini_get(r->file, r->section, key, &v, &error);
        if (k == -ENOENT)
                return NULL;
        if (k < 0) {
                (void) problem(r->conf, r->file->path, key_line(r, key), r->section->name, key, "%s",
                               error ?: strerror(-k));
                r->failed = true;
                return NULL;
        }
        return v;
}

static void get_duration(SectionReader *r, const char *key, uint64_t *ret) {
        _cleanup_free_ char *v = get_value(r, key);
        int k;

        if (!v)
                return;
        k = duration_parse(v, ret);
        if (k < 0) {
                (void) problem(r->conf, r->file->path, key_line(r, key), r->section->name, key,
                               k == -ERANGE ? "duration too long: '%s'" : "not a duration: '%s'", v);
                r->failed = true;
        }
}

static void get_boolean(SectionReader *r, const char *key, bool *ret) {
        _cleanup_free_ char *v = get_value(r, key);
        int k;

        if (!v)
                return;
        k = ini_parse_boolean(v);
        if (k < 0) {
                (void) problem(r->conf, r->file->path, key_line(r, key), r->section->name, key,
                               "not a boolean: '%s'", v);
                r->failed = true;
                return;
        }
        *ret = k;
}

static void get_secret(SectionReader *r, ClientSettings *c) {
        const char *why = NULL;
        int k;

        if (ini_lookup(r->file, r->section, "secret")) {
                _cleanup_free_ char *v = get_value(r, "secret");
                if (!v)
                        return;
                k = base64_decode_lenient(v, &c->secret, &c->secret_size, &why);
                explicit_bzero(v, strlen(v));
                if (k < 0) {
                        (void) problem(r->conf, r->file->path, key_line(r, "secret"), r->section->name,
                                       "secret", "%s", why ?: strerror(-k));
                        r->failed = true;
                }
                return;
        }
        if (ini_lookup(r->file, r->section, "secfile")) {
                _cleanup_free_ char *v = get_value(r, "secfile"), *vars = NULL, *path = NULL;
                if (!v)
                        return;
                vars = expand_vars(v);
                path = vars ? expand_user(vars) : NULL;
                k = path ? io_read_secfile(path, &c->secret, &c->secret_size, &why) : -ENOMEM;
                if (k < 0) {
                        (void) problem(r->conf, r->file->path, key_line(r, "secfile"), r->section->name,
                                       "secfile", "cannot read '%s': %s", path ?: v, why ?: strerror(-k));
                        r->failed = true;
                }
                return;
        }
        (void) problem(r->conf, r->file->path, r->section->line, r->section->name, NULL,
                       "no secret or secfile");
        r->failed = true;
}

/* One setting of the section into c, as its row's type says: a bad value is
 * a problem (r->failed); returns -ENOMEM only. */
static int read_setting(SectionReader *r, const ClientSettingInfo *row, ClientSettings *c) {
        char **field = CLIENT_SETTING_FIELD(c, row, char *);
        _cleanup_free_ char *v = NULL;

        if (client_setting_id(row) == CLIENT_SETTING_NAME)
                return 0; /* the section's, not a key */
        switch (row->type) {
        case CLIENT_SETTING_TYPE_DURATION: {
                uint64_t *usec = CLIENT_SETTING_FIELD(c, row, uint64_t);
                get_duration(r, row->name, usec);
                if ((row->flags & CLIENT_SETTING_NONZERO) && !r->failed && *usec == 0) {
                        (void) problem(r->conf, r->file->path, key_line(r, row->name), r->section->name, row->name,
                                       "must not be zero: checkers would run without pause");
                        r->failed = true;
                }
                return 0;
        }
        case CLIENT_SETTING_TYPE_BOOLEAN:
                get_boolean(r, row->name, CLIENT_SETTING_FIELD(c, row, bool));
                return 0;
        case CLIENT_SETTING_TYPE_SECRET:
                get_secret(r, c);
                /* Read into malloc()'d memory; kept in src/secret-mem.h's. */
                if (c->secret && !(c->secret = secret_take(c->secret, c->secret_size)))
                        return -ENOMEM;
                return 0;
        case CLIENT_SETTING_TYPE_STRING:
                /* A fleet's clients mostly have one checker command: one copy. */
                v = get_value(r, row->name);
                *field = shared_str_read(v ? TAKE_PTR(v) : strdup(""),
                                         &r->conf->last[client_setting_id(row)]);
                return *field ? 0 : -ENOMEM;
        case CLIENT_SETTING_TYPE_KEY:
                v = get_value(r, row->name);
                *field = shared_str_take(normalize_key_id(strempty(v)));
                return *field ? 0 : -ENOMEM;
        }
        return 0;
}

static bool is_hex_key_id(const char *s) {
        if (strlen(s) != 64)
                return false;
        for (; *s; s++)
                if (!isxdigit((unsigned char) *s))
                        return false;
        return true;
}

static int read_section(ClientsConf *conf, const IniFile *f, const IniSection *s, ClientSettings **ret) {
        SectionReader r = { .conf = conf, .file = f, .section = s };
        ClientSettings *c = calloc(1, sizeof(*c));
        _cleanup_free_ const char **keys = NULL;

        if (!c)
                return -ENOMEM;
        c->name = shared_str_dup(s->name);
        keys = ini_keys(f, s);
        if (!c->name || !keys) {
                client_settings_free(c);
                return -ENOMEM;
        }

        /* The reference interpolates every key, known or not, at start-up:
         * a bad one anywhere spoils the section. */
        for (const char **k = keys; *k; k++)
                if (!streq(*k, "secret")) {
                        char *v = get_value(&r, *k);
                        /* It may have interpolated the secret. */
                        if (v)
                                erase_and_free(v, strlen(v));
                }
        if (r.failed)
                goto fail;

        FOREACH_CLIENT_SETTING(row)
                if (read_setting(&r, row, c) < 0)
                        goto oom;
        if (r.failed)
                goto fail;
        FOREACH_CLIENT_SETTING(row) {
                const char *why = NULL;
                if (row->validate && row->validate(CLIENT_SETTING_CFIELD(c, row, void), &why) < 0) {
                        (void) problem(conf, f->path, key_line(&r, row->name), s->name, row->name, "%s: '%s'",
                                       why, *CLIENT_SETTING_CFIELD(c, row, char *));
                        goto fail;
                }
        }

        if (!is_hex_key_id(c->key_id))
                (void) warning(conf, f->path, key_line(&r, "key_id"), s->name, "key_id",
                               isempty(c->key_id) ? "missing: this client can never be served"
                                                  : "not 64 hexadecimal digits: this client can never be served");
        else if (streq(c->key_id, KEY_ID_BLACKLISTED))
                (void) warning(conf, f->path, key_line(&r, "key_id"), s->name, "key_id",
                               "the SHA-256 of nothing, which buggy clients send: never matched");
        *ret = c;
        return 0;

oom:
        client_settings_free(c);
        return -ENOMEM;
fail:
        client_settings_free(c);
        *ret = NULL;
        return 0;
}

const ClientSettings *clients_conf_find(const ClientsConf *conf, const char *name) {
        uintptr_t i = conf->by_name ? (uintptr_t) hashmap_get(conf->by_name, name) : 0;
        return i > 0 ? conf->clients[i - 1] : NULL;
}

ClientSettings *clients_conf_take(ClientsConf *conf, const char *name) {
        uintptr_t i = conf->by_name ? (uintptr_t) hashmap_get(conf->by_name, name) : 0;

        if (i == 0)
                return NULL;
        /* Both tables borrow its strings: neither may keep them. by_key_id
         * only serves the parse. */
        conf->by_key_id = hashmap_free(conf->by_key_id);
        (void) hashmap_remove(conf->by_name, name);
        return TAKE_PTR(conf->clients[i - 1]);
}

/* Hash maps, not scans: a fleet's clients.conf has thousands of sections. */
static int add_client(ClientsConf *conf, const IniFile *f, const IniSection *s, ClientSettings *c) {
        const ClientSettings *first;
        int r;

        if (!conf->by_name && !(conf->by_name = hashmap_new()))
                goto nomem;
        if (!conf->by_key_id && !(conf->by_key_id = hashmap_new()))
                goto nomem;
        if (clients_conf_find(conf, c->name)) {
                client_settings_free(c);
                return problem(conf, f->path, s->line, s->name, NULL,
                               "client already defined in an earlier file; this one is ignored");
        }

        /* Duplicate key IDs: the first client wins at connection time, as in the reference. */
        first = isempty(c->key_id) ? NULL : hashmap_get(conf->by_key_id, c->key_id);
        if (first) {
                const IniEntry *e = ini_lookup(f, s, "key_id");
                (void) warning(conf, f->path, e ? e->line : s->line, s->name, "key_id",
                               "same key ID as client '%s', which wins", first->name);
        }

        if (GREEDY_REALLOC(conf->clients, conf->n_allocated, conf->n_clients + 1) < 0)
                goto nomem;
        r = hashmap_put(conf->by_name, c->name, (void *) (uintptr_t) (conf->n_clients + 1));
        if (r >= 0 && !isempty(c->key_id) && !first)
                r = hashmap_put(conf->by_key_id, c->key_id, c);
        if (r < 0) {
                hashmap_remove(conf->by_name, c->name);
                goto nomem;
        }
        conf->clients[conf->n_clients++] = c;
        return 0;
nomem:
        client_settings_free(c);
        return -ENOMEM;
}

/* Each section is released once read (ini_sections_release()): the parse's
 * memory goes back to the system as convert() goes, so the start's peak is
 * about the parse's tree, and the settings kept are allocated packed. */
static int convert(IniFile *f, ClientsConf *conf) {
        int r;

        for (size_t i = 0; i < f->n_problems; i++) {
                const IniProblem *p = &f->problems[i];
                r = problem(conf, f->path, p->line, p->section, p->key, "%s", p->message);
                if (r < 0)
                        return r;
        }
        if (f->defaults.n_problems > 0) {
                /* Every client inherits [DEFAULT]: none can be trusted. */
                return problem(conf, f->path, f->defaults.line, "DEFAULT", NULL,
                               "broken, so no client is loaded");
        }

        for (size_t i = 0; i < f->n_sections; i++) {
                IniSection *s = &f->sections[i];
                ClientSettings *c = NULL;

                if (s->n_problems > 0)
                        continue; /* already reported */
                r = read_section(conf, f, s, &c);
                if (r < 0)
                        return r;
                if (c && (r = add_client(conf, f, s, c)) < 0)
                        return r;
                ini_sections_release(f, i);
        }
        return 0;
}

int clients_conf_parse(const char *path, const char *text, size_t size, ClientsConf **ret) {
        _cleanup_(ini_file_freep) IniFile *f = NULL;
        _cleanup_(clients_conf_freep) ClientsConf *conf = calloc(1, sizeof(ClientsConf));
        int r;

        if (!conf)
                return -ENOMEM;
        r = ini_parse_string(path, text, size, client_defaults(), &f);
        if (r < 0)
                return r;
        r = convert(f, conf);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(conf);
        return 0;
}

int clients_conf_load(const char *path, ClientsConf **ret) {
        _cleanup_(ini_file_freep) IniFile *f = NULL;
        _cleanup_(clients_conf_freep) ClientsConf *conf = calloc(1, sizeof(ClientsConf));
        int r;

        if (!conf)
                return -ENOMEM;
        r = ini_parse_file(path, client_defaults(), &f);
        if (r == -ENOENT) {
                *ret = TAKE_PTR(conf);
                return 0;
        }
        if (r < 0) {
                errno = -r;
                r = problem(conf, path, 0, NULL, NULL, "cannot read: %m");
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(conf);
                return 0;
        }
        r = convert(f, conf);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(conf);
        return 0;
}

static int conf_d_filter(const struct dirent *d) {
        size_t n = strlen(d->d_name);
        return d->d_name[0] != '.' && n > 5 && streq(d->d_name + n - 5, ".conf");
}

/* The drop-ins' built-in [DEFAULT]: clients.conf's, itself over ours. */
static const char **defaults_of(const IniFile *f) {
        const char **v = calloc(2 * f->defaults.n_entries + 1, sizeof(char *));

        if (!v)
                return NULL;
        for (size_t i = 0; i < f->defaults.n_entries; i++) {
                v[2 * i] = f->defaults.entries[i].key;
                v[2 * i + 1] = f->defaults.entries[i].value;
        }
        return v;
}

static int load_all(const char *dir, ClientsConf **ret) {
        _cleanup_(ini_file_freep) IniFile *main_file = NULL;
        _cleanup_(clients_conf_freep) ClientsConf *conf = calloc(1, sizeof(ClientsConf));
        _cleanup_free_ char *path = NULL, *ddir = NULL;
        _cleanup_free_ const char **defaults = NULL;
        struct dirent **names = NULL;
        int r, n;

        if (!conf || asprintf(&path, "%s/clients.conf", dir) < 0 || asprintf(&ddir, "%s/clients.d", dir) < 0)
                return -ENOMEM;
        r = io_parse('c', path, client_defaults(), &main_file);
        if (r == -ENOENT)
                r = ini_parse_string(path, "", 0, client_defaults(), &main_file);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                conf->unreadable = true;
                errno = -r;
                r = problem(conf, path, 0, NULL, NULL, "cannot read: %m");
        } else
                r = convert(main_file, conf);
        if (r < 0)
                return r;
        defaults = main_file ? defaults_of(main_file) : NULL;
        if (main_file && !defaults)
                return -ENOMEM;

        if (io && io->replay) {
                const ConfFile *l = io_find('l', ddir);
                n = 0;
                if (l) {
                        n = -1;
                        errno = l->error;
                } else {
                        names = calloc(io->n + 1, sizeof(struct dirent *));
                        if (!names)
                                return -ENOMEM;
                        /* Drop-ins in the launcher's order; only their base names matter. */
                        for (size_t i = 0; i < io->n; i++) {
                                const char *p = io->files[i].path;
                                size_t dl = strlen(ddir);
                                if (io->files[i].kind != 'd' || strncmp(p, ddir, dl) != 0 || p[dl] != '/' ||
                                    strchr(p + dl + 1, '/') || strlen(p + dl + 1) >= sizeof(names[0]->d_name))
                                        continue;
                                names[n] = calloc(1, sizeof(struct dirent));
                                if (!names[n])
                                        break;
                                strcpy(names[n]->d_name, p + dl + 1);
                                n++;
                        }
                }
        } else
                n = scandir(ddir, &names, conf_d_filter, alphasort);
        if (n < 0 && errno != ENOENT && r >= 0) {
                /* Missing is fine; there but not listable hides clients. */
                int e = errno;
                conf->unreadable = true;
                if (io && !io->replay && conf_files_add(io, 'l', ddir, e, NULL, "", 0) < 0)
                        return -ENOMEM;
                errno = e;
                r = problem(conf, ddir, 0, NULL, NULL, "cannot list: %m");
        }
        for (int i = 0; i < n; i++) {
                _cleanup_(ini_file_freep) IniFile *f = NULL;
                _cleanup_free_ char *p = NULL;

                if (r >= 0 && asprintf(&p, "%s/%s", ddir, names[i]->d_name) < 0)
                        r = -ENOMEM;
                if (r >= 0) {
                        int k = io_parse('d', p, defaults ? defaults : client_defaults(), &f);
                        if (k == -ENOMEM)
                                r = k;
                        else if (k < 0) {
                                conf->unreadable = true;
                                errno = -k;
                                r = problem(conf, p, 0, NULL, NULL, "cannot read: %m");
                        }
                        else
                                r = convert(f, conf);
                }
                free(names[i]);
        }
        free(names);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(conf);
        return 0;
}

int clients_conf_load_all_files(const char *dir, ConfFiles *files, ClientsConf **ret) {
        int r;

        io = files;
        r = io && io->replay ? io_index_build() : 0;
        if (r >= 0)
                r = load_all(dir, ret);
        io_index = hashmap_free(io_index);
        io = NULL;
        return r;
}

int clients_conf_load_all(const char *dir, ClientsConf **ret) {
        return clients_conf_load_all_files(dir, NULL, ret);
}
