/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The parse loop follows configparser.RawConfigParser._read (Python 3.11)
 * line by line, so that every file the reference accepts gives the same
 * sections, keys and values here. Where configparser raises, we record a
 * problem and go on. Known differences: key names are folded to lower case
 * in ASCII only (str.lower() folds all of Unicode), and a line holding a
 * NUL byte is a problem (C strings cannot carry it). */

#include "ini.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "hashmap.h"
#include "util.h"

#define INI_DEFAULT_SECTION "DEFAULT"
/* A clients.conf of 100,000 clients with OpenPGP secrets is about 130 MB;
 * mandos-clients.conf(5) documents this limit. */
#define INI_MAX_FILE_SIZE (1024 * 1024 * 1024)
#define INI_MAX_INTERPOLATION_DEPTH 10 /* configparser.MAX_INTERPOLATION_DEPTH */
/* configparser has no such limits: a few hundred bytes of "%(a)s%(a)s…",
 * nested ten deep, would expand to gigabytes and hang the server. */
#define INI_MAX_REFERENCES 1000
#define INI_MAX_VALUE_SIZE (4 * 1024 * 1024)
#define INI_READ_CHUNK (64 * 1024)

/* The keys, values and entry arrays of the sections ([DEFAULT]'s aside)
 * are carved, in file order, out of big blocks mapped for them, not
 * malloc'd. A reader that releases the sections it has read
 * (ini_sections_release()) gives back whole blocks as it goes, and what it
 * keeps of them (100,000 clients' settings) is malloc'd packed, instead of
 * into the holes that a freed tree of small chunks would leave among it:
 * at 100,000 clients some 250 bytes a client of resident memory. */
typedef struct IniBlock {
        struct IniBlock *next;
        size_t size;          /* of the mapping */
        size_t used;          /* from its start, this header included */
        size_t last_section;  /* the highest section index with memory here */
} IniBlock;

typedef struct IniArena {
        IniBlock *first, *last;
        size_t next_size;     /* of the next block: 64 KiB, doubling up to 1 MiB */
} IniArena;

#define INI_BLOCK_SIZE_MIN ((size_t) 64 * 1024)
#define INI_BLOCK_SIZE_MAX ((size_t) 1024 * 1024)
#define INI_ALIGN(n) (((n) + 15) & ~(size_t) 15)

static void ini_block_unmap(IniBlock *b) {
        size_t size = b->size;

        /* Values may be secrets (the header goes too: size is read first). */
        explicit_bzero(b, b->used);
        (void) munmap(b, size);
}

/* n bytes for section i, or NULL (ENOMEM). */
static void *ini_arena_alloc(IniFile *f, size_t i, size_t n) {
        IniArena *a = f->arena;
        IniBlock *b = a->last;
        void *p;

        if (n > SIZE_MAX / 2)
                return NULL;
        n = INI_ALIGN(n);
        if (!b || b->size - b->used < n) {
                size_t size = MAX(a->next_size ?: INI_BLOCK_SIZE_MIN, INI_ALIGN(sizeof(IniBlock)) + n);
                /* Populated at once: written at once, and cheaper than a fault a page. */
                void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

                if (m == MAP_FAILED)
                        return NULL;
                b = m;
                *b = (IniBlock) { .size = size, .used = INI_ALIGN(sizeof(IniBlock)), .last_section = i };
                if (a->last)
                        a->last->next = b;
                else
                        a->first = b;
                a->last = b;
                a->next_size = MIN(2 * (a->next_size ?: INI_BLOCK_SIZE_MIN), INI_BLOCK_SIZE_MAX);
        }
        p = (char *) b + b->used;
        b->used += n;
        b->last_section = MAX(b->last_section, i);
        return p;
}

static char *ini_arena_strndup(IniFile *f, size_t i, const char *s, size_t n) {
        char *d = ini_arena_alloc(f, i, n + 1);

        if (d) {
                memcpy(d, s, n);
                d[n] = 0;
        }
        return d;
}

/* Whether s keeps its keys, values and entries in the arena: every section but [DEFAULT]. */
static bool ini_in_arena(const IniFile *f, const IniSection *s) {
        return s != &f->defaults;
}

/* A growable, always NUL-terminated byte string. Values may be secrets
 * (clients.conf): it never leaves a copy behind, neither when it grows (no
 * realloc) nor when it is freed (ini_buf_erase). */
typedef struct IniBuf {
        char *data;
        size_t len, cap;
} IniBuf;

static void ini_buf_erase(IniBuf *b) {
        b->data = erase_and_free(b->data, b->cap);
        *b = (IniBuf) {};
}

static int ini_buf_append(IniBuf *b, const char *p, size_t n) {
        if (n > SIZE_MAX / 4 - b->len)
                return -ENOMEM;
        if (b->cap - b->len <= n) {
                size_t cap = (b->len + n + 1) * 2;
                char *d = malloc(cap);
                if (!d)
                        return -ENOMEM;
                if (b->data)
                        memcpy(d, b->data, b->len + 1);
                erase_and_free(b->data, b->cap);
                b->data = d;
                b->cap = cap;
        }
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;
        return 0;
}

static char ini_ascii_lower(char c) {
        return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static bool ini_key_eq(const char *a, const char *b) {
        for (; *a && ini_ascii_lower(*a) == ini_ascii_lower(*b); a++, b++)
                ;
        return ini_ascii_lower(*a) == ini_ascii_lower(*b);
}

/* Everything str.isspace() is true for, as UTF-8. configparser strips lines
 * and measures indentation with these, not just ASCII blanks. */
static const char *const ini_wide_spaces[] = {
        "\xc2\x85", "\xc2\xa0", "\xe1\x9a\x80",
        "\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82", "\xe2\x80\x83",
        "\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86", "\xe2\x80\x87",
        "\xe2\x80\x88", "\xe2\x80\x89", "\xe2\x80\x8a", "\xe2\x80\xa8",
        "\xe2\x80\xa9", "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80",
};

static bool ini_ascii_space(char c) {
        return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f');
}

/* Length of the whitespace character at the start (at_end: the end) of p[0..n), or 0. */
static size_t ini_space_len(const char *p, size_t n, bool at_end) {
        if (n == 0)
                return 0;
        if (ini_ascii_space(at_end ? p[n - 1] : p[0]))
                return 1;
        /* Every wide space is non-ASCII at both ends: most lines stop here. */
        if (!((unsigned char) (at_end ? p[n - 1] : p[0]) & 0x80))
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(ini_wide_spaces); i++) {
                size_t l = strlen(ini_wide_spaces[i]);
                if (l <= n && memcmp(at_end ? p + n - l : p, ini_wide_spaces[i], l) == 0)
                        return l;
        }
        return 0;
}

/* Strip leading whitespace; returns how many characters were stripped (configparser's indentation). */
static unsigned ini_lstrip(const char **p, size_t *n) {
        unsigned chars = 0;
        size_t l;

        while ((l = ini_space_len(*p, *n, false)) > 0) {
                *p += l;
                *n -= l;
                chars++;
        }
        return chars;
}

static void ini_rstrip(const char *p, size_t *n) {
        size_t l;

        while ((l = ini_space_len(p, *n, true)) > 0)
                *n -= l;
}

/* Section names (while parsing) and the keys of [DEFAULT] and of every
 * section with more than INI_SECTION_SCAN_MAX keys are in hashmaps, so that
 * duplicate checks and lookups stay linear in the file size (a clients.conf
 * may hold ten thousand clients, and a broken one a million keys in one
 * section). The hashmaps borrow the names from the IniFile (keys are folded
 * to lower case there) and map them to an array index plus one, as a
 * pointer: NULL is "absent". */
#define INI_SECTION_SCAN_MAX 8

static void *ini_index_value(size_t i) {
        return (void *) (uintptr_t) (i + 1);
}

static bool ini_index_get(const Hashmap *h, const char *name, size_t *ret) {
        uintptr_t v = (uintptr_t) hashmap_get(h, name);

        if (v == 0)
                return false;
        *ret = v - 1;
        return true;
}

static bool ini_has_upper(const char *s) {
        for (; *s; s++)
                if (*s >= 'A' && *s <= 'Z')
                        return true;
        return false;
}

/* A section's entry for key by a scan: a client's section has a handful of
 * keys, and a scan of them beats a hash table that holds the keys of
 * 100,000 sections, a cache miss each. */
static const IniEntry *ini_section_scan(const IniSection *s, const char *key) {
        for (size_t i = 0; i < s->n_entries; i++)
                if (ini_key_eq(s->entries[i].key, key))
                        return &s->entries[i];
        return NULL;
}

/* s's own entry for key (any case; the index holds folded keys only). */
static IniEntry *ini_section_find(const IniSection *s, const char *key) {
        size_t i;

        if (!s->keys || ini_has_upper(key))
                return (IniEntry *) ini_section_scan(s, key);
        return ini_index_get(s->keys, key, &i) ? &s->entries[i] : NULL;
}

/* Entry i of s is new: index it, or all of s once it has outgrown a scan. */
static int ini_section_index_entry(IniSection *s, size_t i) {
        int r;

        if (s->keys)
                return hashmap_put(s->keys, s->entries[i].key, ini_index_value(i));
        if (s->n_entries <= INI_SECTION_SCAN_MAX)
                return 0;
        s->keys = hashmap_new();
        if (!s->keys)
                return -ENOMEM;
        for (size_t j = 0; j < s->n_entries; j++) {
                r = hashmap_put(s->keys, s->entries[j].key, ini_index_value(j));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* configparser's state while reading (the locals of _read). */
typedef struct IniParser {
        IniFile *f;
        Hashmap *sections;   /* section name → index in f->sections, plus one */
        size_t n_sections_allocated, n_problems_allocated;
        IniSection *section; /* cursect; NULL before the first header */
        bool discard;        /* inside a duplicate section: its entries are dropped */
        unsigned line;       /* lineno */
        unsigned indent;     /* indent_level */
        bool in_value;       /* optname is set: deeper and blank lines extend the value */
        IniEntry *entry;     /* where the value goes when it ends; NULL: dropped */
        IniBuf value;        /* the value so far, lines joined with '\n' */
} IniParser;

static void ini_parser_done(IniParser *p) {
        hashmap_free(p->sections);
        ini_buf_erase(&p->value);
}

_printf_(3, 4)
static int ini_problem(IniParser *p, const char *key, const char *format, ...) {
        IniFile *f = p->f;
        IniProblem *q;
        va_list ap;
        int r;

        if (GREEDY_REALLOC(f->problems, p->n_problems_allocated, f->n_problems + 1) < 0)
                return -ENOMEM;
        q = &f->problems[f->n_problems];
        *q = (IniProblem) { .line = p->line };
        va_start(ap, format);
        r = vasprintf(&q->message, format, ap);
        va_end(ap);
        if (r < 0) {
                q->message = NULL;
                return -ENOMEM;
        }
        f->n_problems++; /* from here on ini_file_free() frees q's strings */
        if (p->section && !(q->section = strdup(p->section->name)))
                return -ENOMEM;
        if (key && !(q->key = strdup(key)))
                return -ENOMEM;
        if (p->section)
                p->section->n_problems++;
        return 0;
}

/* The value's lines are complete: configparser's _join_multiline_values. */
static int ini_value_end(IniParser *p) {
        IniBuf *v = &p->value;
        char *s;

        if (!p->in_value)
                return 0;
        p->in_value = false;
        if (!p->entry) {
                v->len = 0;
                return 0;
        }
        /* Lines were stripped, so rstrip() of the joined value drops just the trailing empty lines. */
        while (v->len > 0 && v->data[v->len - 1] == '\n')
                v->len--;
        if (p->section && ini_in_arena(p->f, p->section)) {
                /* A new entry (a key given twice is dropped): no value yet;
                 * one in the arena would only be wiped. */
                if (p->entry->value)
                        explicit_bzero(p->entry->value, strlen(p->entry->value));
                s = ini_arena_strndup(p->f, (size_t) (p->section - p->f->sections), v->data, v->len);
                if (!s)
                        return -ENOMEM;
        } else {
                s = strndup(v->data, v->len);
                if (!s)
                        return -ENOMEM;
                if (p->entry->value)
                        erase_and_free(p->entry->value, strlen(p->entry->value));
        }
        p->entry->value = s;
        ini_buf_erase(v);
        p->entry = NULL;
        return 0;
}

static int ini_value_add_line(IniParser *p, const char *s, size_t n) {
        int r = ini_buf_append(&p->value, "\n", 1);
        return r < 0 ? r : ini_buf_append(&p->value, s, n);
}

static int ini_add_section(IniParser *p, char *name) {
        IniFile *f = p->f;
        IniSection *s;

        if (GREEDY_REALLOC(f->sections, p->n_sections_allocated, f->n_sections + 1) < 0) {
                free(name);
                return -ENOMEM;
        }
        s = &f->sections[f->n_sections];
        *s = (IniSection) { .name = name, .line = p->line };
        f->n_sections++;
        p->section = s;
        return hashmap_put(p->sections, s->name, ini_index_value(f->n_sections - 1));
}

static int ini_start_section(IniParser *p, const char *name, size_t n) {
        _cleanup_free_ char *s = strndup(name, n);
        size_t old;
        int r;

        if (!s)
                return -ENOMEM;
        r = ini_value_end(p);
        if (r < 0)
                return r;
        p->discard = false;
        if (streq(s, INI_DEFAULT_SECTION)) {
                /* Not in configparser's list of sections, so never a duplicate. */
                p->section = &p->f->defaults;
                if (p->section->line == 0)
                        p->section->line = p->line;
                return 0;
        }
        if (!ini_index_get(p->sections, s, &old))
                return ini_add_section(p, TAKE_PTR(s));
        p->section = &p->f->sections[old];
        p->discard = true;
        return ini_problem(p, NULL, "duplicate section '%s'", s);
}

static int ini_append_entry(IniSection *s, char *key, unsigned line) {
        if (GREEDY_REALLOC(s->entries, s->n_allocated, s->n_entries + 1) < 0) {
                free(key);
                return -ENOMEM;
        }
        s->entries[s->n_entries++] = (IniEntry) { .key = key, .line = line };
        return ini_section_index_entry(s, s->n_entries - 1);
}

/* The same for a section in the arena: key (malloc'd) is copied there and freed. */
static int ini_append_entry_arena(IniFile *f, IniSection *s, char *key, unsigned line) {
        _cleanup_free_ char *k = key;
        size_t i = (size_t) (s - f->sections);

        if (s->n_entries == s->n_allocated) {
                size_t n = MAX((size_t) 4, 2 * s->n_allocated);
                IniEntry *e;

                if (n > SIZE_MAX / 2 / sizeof(IniEntry))
                        return -ENOMEM;
                /* The old array stays behind, unused, until its block goes. */
                e = ini_arena_alloc(f, i, n * sizeof(IniEntry));
                if (!e)
                        return -ENOMEM;
                if (s->n_entries)
                        memcpy(e, s->entries, s->n_entries * sizeof(IniEntry));
                s->entries = e;
                s->n_allocated = n;
        }
        char *d = ini_arena_strndup(f, i, k, strlen(k));
        if (!d)
                return -ENOMEM;
        s->entries[s->n_entries++] = (IniEntry) { .key = d, .line = line };
        return ini_section_index_entry(s, s->n_entries - 1);
}

/* Point p->entry at the entry for key (lower case, owned), creating it unless it is a duplicate. */
static int ini_start_entry(IniParser *p, char *key) {
        IniSection *s = p->section;
        IniEntry *e;
        int r;

        p->entry = NULL;
        if (p->discard) {
                free(key);
                return 0;
        }
        e = ini_section_find(s, key);
        if (e && e->line != 0) {
                r = ini_problem(p, key, "duplicate key '%s'", key);
                free(key);
                return r;
        }
        if (e) {
                /* Line 0: a built-in default, which the file's [DEFAULT] overrides in place. */
                free(key);
                p->entry = e;
                p->entry->line = p->line;
                return 0;
        }
        r = ini_in_arena(p->f, s) ? ini_append_entry_arena(p->f, s, key, p->line) : ini_append_entry(s, key, p->line);
        if (r < 0)
                return r;
        p->entry = &s->entries[s->n_entries - 1];
        return 0;
}

/* configparser's OPTCRE: "(?P<option>.*?)\s*(?P<vi>[=:])\s*(?P<value>.*)$",
 * i.e. the first '=' or ':' splits. */
static int ini_start_option(IniParser *p, const char *s, size_t n) {
        const char *eq = memchr(s, '=', n), *colon = memchr(s, ':', n);
        const char *sep = !eq ? colon : !colon ? eq : eq < colon ? eq : colon;
        const char *value;
        size_t name_len, value_len;
        char *key;
        int r;

        if (!sep)
                return ini_problem(p, NULL, "neither a [section] header nor a key = value line");
        r = ini_value_end(p);
        if (r < 0)
                return r;
        name_len = (size_t) (sep - s);
        ini_rstrip(s, &name_len);
        value = sep + 1;
        value_len = n - (size_t) (value - s);
        (void) ini_lstrip(&value, &value_len);
        if (name_len == 0)
                /* configparser's optname is then "", which no later line continues. */
                return ini_problem(p, NULL, "empty key name");

        key = strndup(s, name_len);
        if (!key)
                return -ENOMEM;
        for (char *c = key; *c; c++)
                *c = ini_ascii_lower(*c);
        r = ini_start_entry(p, key);
        if (r < 0)
                return r;
        p->in_value = true;
        p->value.len = 0;
        return ini_buf_append(&p->value, value, value_len);
}

/* configparser's SECTCRE "\[(?P<header>.+)\]" with re.match: anchored at
 * the start only, and greedy, so the name runs to the last ']'. */
static bool ini_match_header(const char *s, size_t n, size_t *ret_len) {
        const char *close;

        if (n < 3 || s[0] != '[')
                return false;
        close = memrchr(s + 2, ']', n - 2);
        if (!close)
                return false;
        *ret_len = (size_t) (close - s - 1);
        return true;
}

static int ini_parse_line(IniParser *p, const char *line, size_t n) {
        const char *s = line;
        size_t len = n, name_len;
        unsigned indent;

        if (memchr(line, 0, n))
                return ini_problem(p, NULL, "NUL byte in line");
        indent = ini_lstrip(&s, &len);
        ini_rstrip(s, &len);
        if (len > 0 && (s[0] == '#' || s[0] == ';'))
                return 0; /* a comment neither ends nor extends a value */
        if (len == 0)
                return p->in_value ? ini_value_add_line(p, "", 0) : 0;
        if (p->in_value && indent > p->indent)
                return ini_value_add_line(p, s, len);

        p->indent = indent;
        if (ini_match_header(s, len, &name_len))
                return ini_start_section(p, s + 1, name_len);
        if (!p->section)
                return ini_problem(p, NULL, "text before the first [section] header");
        return ini_start_option(p, s, len);
}

/* Python reads the file in text mode: "\n", "\r\n" and "\r" all end a line.
 * Returns the length of the line at text, and in *ret_eol that of its end. */
static size_t ini_line_length(const char *text, size_t size, size_t *ret_eol) {
        size_t i;

        for (i = 0; i < size && text[i] != '\n' && text[i] != '\r'; i++)
                ;
        if (i == size)
                *ret_eol = 0;
        else if (text[i] == '\r' && i + 1 < size && text[i + 1] == '\n')
                *ret_eol = 2;
        else
                *ret_eol = 1;
        return i;
}

static int ini_add_builtin_defaults(IniSection *d, const char *const *defaults) {
        int r;

        for (const char *const *kv = defaults; kv && kv[0] && kv[1]; kv += 2) {
                char *key = strdup(kv[0]), *value = strdup(kv[1]);
                IniEntry *e;

                if (!key || !value) {
                        free(key);
                        free(value);
                        return -ENOMEM;
                }
                for (char *c = key; *c; c++)
                        *c = ini_ascii_lower(*c);
                e = ini_section_find(d, key);
                if (e) {
                        /* A key given twice: the last one counts, as in a Python dict. */
                        free(key);
                        free(e->value);
                        e->value = value;
                        continue;
                }
                r = ini_append_entry(d, key, 0);
                if (r < 0) {
                        free(value);
                        return r;
                }
                d->entries[d->n_entries - 1].value = value;
        }
        return 0;
}

/* An IniFile with only [DEFAULT]'s built-in values, and p's state to parse into it. */
static int ini_parse_begin(IniParser *p, const char *path, const char *const *defaults) {
        IniFile *f = calloc(1, sizeof(IniFile));

        if (!f)
                return -ENOMEM;
        *p = (IniParser) { .f = f };
        f->arena = calloc(1, sizeof(IniArena));
        if (!f->arena)
                return -ENOMEM;
        f->path = path ? strdup(path) : NULL;
        f->defaults.name = strdup(INI_DEFAULT_SECTION);
        if ((path && !f->path) || !f->defaults.name)
                return -ENOMEM;
        /* [DEFAULT]'s keys are always in the index. */
        f->defaults.keys = hashmap_new();
        p->sections = hashmap_new();
        if (!f->defaults.keys || !p->sections)
                return -ENOMEM;
        return ini_add_builtin_defaults(&f->defaults, defaults);
}

/* Parse the whole lines of text; at_end: the text ends there. Returns the
 * bytes parsed (a line cut short, or a "\r" that a "\n" may follow,
 * waits for more text), or a negative errno. */
static ssize_t ini_parse_lines(IniParser *p, const char *text, size_t size, bool at_end) {
        size_t i = 0, n, eol;
        int r;

        while (i < size) {
                n = ini_line_length(text + i, size - i, &eol);
                if (!at_end && (eol == 0 || (eol == 1 && text[i + n] == '\r' && i + n + 1 == size)))
                        break;
                p->line++;
                r = ini_parse_line(p, text + i, n);
                if (r < 0)
                        return r;
                i += n + eol;
        }
        return (ssize_t) i;
}

static void ini_parse_abort(IniParser *p) {
        ini_parser_done(p);
        p->f = ini_file_free(p->f);
}

static int ini_parse_end(IniParser *p, IniFile **ret) {
        int r = ini_value_end(p);

        if (r < 0) {
                ini_parse_abort(p);
                return r;
        }
        ini_parser_done(p);
        *ret = TAKE_PTR(p->f);
        return 0;
}

int ini_parse_string(const char *path, const char *text, size_t size,
                     const char *const *defaults, IniFile **ret) {
        IniParser p = {};
        ssize_t k;
        int r;

        r = ini_parse_begin(&p, path, defaults);
        if (r >= 0 && (k = ini_parse_lines(&p, text, size, true)) < 0)
                r = (int) k;
        if (r < 0) {
                ini_parse_abort(&p);
                return r;
        }
        return ini_parse_end(&p, ret);
}

/* The file may hold secrets (clients.conf): wipe the copy we made. */
static void ini_erase_bufp(IniBuf *b) {
        b->data = erase_and_free(b->data, b->cap);
}

/* Make room for a chunk more (for a file whose size we know, all of it at
 * once). A plain realloc() could leave a copy of secrets behind. */
static int ini_reserve_chunk(IniBuf *b, size_t expected) {
        size_t cap = MAX(2 * b->len, expected) + INI_READ_CHUNK + 1;
        char *d;

        if (b->cap - b->len > INI_READ_CHUNK)
                return 0;
        d = malloc(cap);
        if (!d)
                return -ENOMEM;
        if (b->len > 0)
                memcpy(d, b->data, b->len);
        erase_and_free(b->data, b->cap);
        b->data = d;
        b->cap = cap;
        return 0;
}

/* fstat() of fd, and -EFBIG for a file over the limit (a pipe is checked as it is read). */
static int ini_stat(int fd, struct stat *ret) {
        if (fstat(fd, ret) < 0)
                return -errno;
        if (S_ISREG(ret->st_mode) && ret->st_size > INI_MAX_FILE_SIZE)
                return -EFBIG;
        return 0;
}

static int ini_read_all(int fd, IniBuf *b) {
        struct stat st;
        ssize_t n;
        int r;

        r = ini_stat(fd, &st);
        if (r < 0)
                return r;
        for (;;) {
                r = ini_reserve_chunk(b, S_ISREG(st.st_mode) ? (size_t) st.st_size : 0);
                if (r < 0)
                        return r;
                n = read(fd, b->data + b->len, INI_READ_CHUNK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return 0;
                b->len += (size_t) n;
                if (b->len > INI_MAX_FILE_SIZE)
                        return -EFBIG;
        }
}

/* The whole file at path into text (the caller erases it). */
static int ini_read_path(const char *path, IniBuf *text) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

        if (fd < 0)
                return -errno;
        return ini_read_all(fd, text);
}

/* Read and parse a chunk at a time: the whole text of a large
 * clients.conf (130 MB for 100,000 clients) next to its parse would be
 * the server's peak of memory. */
static int ini_parse_fd(IniParser *p, int fd) {
        _cleanup_(ini_erase_bufp) IniBuf b = {};
        size_t total = 0;
        ssize_t n, k;
        int r;

        for (;;) {
                /* Room for a chunk more (more than that only for a line longer than the rest). */
                r = ini_reserve_chunk(&b, 0);
                if (r < 0)
                        return r;
                n = read(fd, b.data + b.len, INI_READ_CHUNK);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                total += (size_t) n;
                if (total > INI_MAX_FILE_SIZE)
                        return -EFBIG;
                b.len += (size_t) n;
                k = ini_parse_lines(p, b.data, b.len, n == 0);
                if (k < 0)
                        return (int) k;
                /* What is left: a line not yet whole. */
                memmove(b.data, b.data + k, b.len - (size_t) k);
                explicit_bzero(b.data + b.len - (size_t) k, (size_t) k);
                b.len -= (size_t) k;
                if (n == 0)
                        return 0;
        }
}

int ini_parse_file(const char *path, const char *const *defaults, IniFile **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        IniParser p = {};
        struct stat st;
        int r;

        if (fd < 0)
                return -errno;
        r = ini_stat(fd, &st);
        if (r < 0)
                return r;
        r = ini_parse_begin(&p, path, defaults);
        if (r >= 0)
                r = ini_parse_fd(&p, fd);
        if (r < 0) {
                ini_parse_abort(&p);
                return r;
        }
        return ini_parse_end(&p, ret);
}

int ini_read_file(const char *path, char **ret, size_t *ret_size) {
        _cleanup_(ini_erase_bufp) IniBuf text = {};
        char *d;
        int r;

        r = ini_read_path(path, &text);
        if (r < 0)
                return r;
        /* An exact copy, so that the caller knows what to erase. */
        d = malloc(text.len + 1);
        if (!d)
                return -ENOMEM;
        if (text.len)
                memcpy(d, text.data, text.len);
        d[text.len] = 0;
        *ret = d;
        *ret_size = text.len;
        return 0;
}

/* s's entries, wiped and freed (in the arena: wiped, and left to their blocks). */
static void ini_section_entries_done(const IniFile *f, IniSection *s) {
        bool arena = ini_in_arena(f, s);

        for (size_t i = 0; i < s->n_entries; i++) {
                char *v = s->entries[i].value;
                /* Values may be secrets. */
                if (v)
                        explicit_bzero(v, strlen(v));
                if (!arena) {
                        free(s->entries[i].key);
                        free(v);
                }
        }
        if (!arena)
                free(s->entries);
        s->keys = hashmap_free(s->keys);
        s->entries = NULL;
        s->n_entries = s->n_allocated = 0;
}

void ini_sections_release(IniFile *f, size_t through) {
        IniArena *a;

        if (!f)
                return;
        for (; f->n_released <= through && f->n_released < f->n_sections; f->n_released++)
                ini_section_entries_done(f, &f->sections[f->n_released]);
        /* Every block but the last whose sections are all released. */
        a = f->arena;
        while (a && a->first && a->first != a->last && a->first->last_section < f->n_released) {
                IniBlock *b = a->first;
                a->first = b->next;
                ini_block_unmap(b);
        }
}

IniFile *ini_file_free(IniFile *f) {
        if (!f)
                return NULL;
        ini_section_entries_done(f, &f->defaults);
        free(f->defaults.name);
        for (size_t i = 0; i < f->n_sections; i++) {
                ini_section_entries_done(f, &f->sections[i]);
                free(f->sections[i].name);
        }
        if (f->arena)
                for (IniBlock *b = f->arena->first, *next; b; b = next) {
                        next = b->next;
                        ini_block_unmap(b);
                }
        free(f->arena);
        free(f->sections);
        for (size_t i = 0; i < f->n_problems; i++) {
                free(f->problems[i].section);
                free(f->problems[i].key);
                free(f->problems[i].message);
        }
        free(f->problems);
        free(f->path);
        free(f);
        return NULL;
}

const IniEntry *ini_lookup(const IniFile *f, const IniSection *s, const char *key) {
        _cleanup_free_ char *folded = NULL;
        const IniEntry *e;

        /* The index holds folded keys: fold key once (on ENOMEM, scan). */
        if (ini_has_upper(key) && (folded = strdup(key))) {
                for (char *c = folded; *c; c++)
                        *c = ini_ascii_lower(*c);
                key = folded;
        }
        e = s ? ini_section_find(s, key) : NULL;
        return e ?: ini_section_find(&f->defaults, key);
}

/* configparser's BasicInterpolation._interpolate_some. */
typedef struct IniInterpolation {
        const IniFile *f;
        const IniSection *s;
        const char *key; /* the key asked for, named in errors */
        IniBuf out;
        unsigned n_references;
        char *error;
} IniInterpolation;

_printf_(2, 3)
static int ini_interpolation_error(IniInterpolation *c, const char *format, ...) {
        _cleanup_free_ char *m = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&m, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        if (asprintf(&c->error, "bad interpolation in '%s': %s", c->key, m) < 0) {
                c->error = NULL;
                return -ENOMEM;
        }
        return -EINVAL;
}

/* How much of s to quote in an error: one line, at most 40 bytes. */
static int ini_quote_len(const char *s) {
        size_t n = strcspn(s, "\n");
        return n > 40 ? 40 : (int) n;
}

static int ini_interpolate(IniInterpolation *c, const char *rest, unsigned depth);

static int ini_interpolation_append(IniInterpolation *c, const char *p, size_t n) {
        if (n > INI_MAX_VALUE_SIZE - c->out.len)
                return ini_interpolation_error(c, "longer than %d bytes once expanded", INI_MAX_VALUE_SIZE);
        return ini_buf_append(&c->out, p, n);
}

/* rest starts with "%(": the _KEYCRE reference "%\(([^)]+)\)s". */
static int ini_interpolate_reference(IniInterpolation *c, const char **rest, unsigned depth) {
        const char *name = *rest + 2;
        size_t n = strcspn(name, ")");
        _cleanup_free_ char *var = NULL;
        const IniEntry *e;

        if (n == 0 || name[n] != ')' || name[n + 1] != 's')
                return ini_interpolation_error(c, "bad variable reference '%.*s'", ini_quote_len(*rest), *rest);
        if (++c->n_references > INI_MAX_REFERENCES)
                return ini_interpolation_error(c, "more than %d references to expand", INI_MAX_REFERENCES);
        var = strndup(name, n);
        if (!var)
                return -ENOMEM;
        *rest = name + n + 2;
        e = ini_lookup(c->f, c->s, var);
        if (!e)
                return ini_interpolation_error(c, "no key '%s' to substitute", var);
        if (strchr(e->value, '%'))
                return ini_interpolate(c, e->value, depth + 1);
        return ini_interpolation_append(c, e->value, strlen(e->value));
}

static int ini_interpolate(IniInterpolation *c, const char *rest, unsigned depth) {
        int r;

        if (depth > INI_MAX_INTERPOLATION_DEPTH)
                return ini_interpolation_error(c, "references nested more than %d deep",
                                               INI_MAX_INTERPOLATION_DEPTH);
        while (*rest) {
                const char *pct = strchr(rest, '%');
                if (!pct)
                        return ini_interpolation_append(c, rest, strlen(rest));
                r = ini_interpolation_append(c, rest, (size_t) (pct - rest));
                if (r < 0)
                        return r;
                rest = pct;
                if (rest[1] == '%') {
                        r = ini_interpolation_append(c, "%", 1);
                        rest += 2;
                } else if (rest[1] == '(')
                        r = ini_interpolate_reference(c, &rest, depth);
                else
                        r = ini_interpolation_error(c, "'%%' must be followed by '%%' or '(', found: '%.*s'",
                                                    ini_quote_len(rest), rest);
                if (r < 0)
                        return r;
        }
        return 0;
}

int ini_get(const IniFile *f, const IniSection *s, const char *key, char **ret, char **ret_error) {
        IniInterpolation c = { .f = f, .s = s, .key = key };
        const IniEntry *e = ini_lookup(f, s, key);
        int r;

        if (ret_error)
                *ret_error = NULL;
        if (!e)
                return -ENOENT;
        r = ini_interpolate(&c, e->value, 1);
        if (r >= 0)
                r = ini_buf_append(&c.out, "", 0); /* an empty value is "", not NULL */
        if (r < 0) {
                ini_buf_erase(&c.out);
                if (ret_error)
                        *ret_error = c.error;
                else
                        free(c.error);
                return r;
        }
        *ret = c.out.data;
        return 0;
}

const char **ini_keys(const IniFile *f, const IniSection *s) {
        const IniSection *own = s == &f->defaults ? NULL : s;
        size_t n_own = own ? own->n_entries : 0, n = 0;
        const char **keys = calloc(n_own + f->defaults.n_entries + 1, sizeof(char *));

        if (!keys)
                return NULL;
        for (size_t i = 0; i < n_own; i++)
                keys[n++] = own->entries[i].key;
        for (size_t i = 0; i < f->defaults.n_entries; i++)
                if (!own || !ini_section_find(own, f->defaults.entries[i].key))
                        keys[n++] = f->defaults.entries[i].key;
        return keys;
}

int ini_parse_boolean(const char *s) {
        static const char *const yes[] = { "1", "yes", "true", "on" }, *const no[] = { "0", "no", "false", "off" };

        for (size_t i = 0; s && i < ELEMENTSOF(yes); i++) {
                if (ini_key_eq(s, yes[i]))
                        return 1;
                if (ini_key_eq(s, no[i]))
                        return 0;
        }
        return -EINVAL;
}
