/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* An INI reader with the semantics of Python's configparser.ConfigParser
 * (defaults: strict, empty_lines_in_values, '#'/';' full-line comments, no
 * inline comments, '=' or ':' separators, BasicInterpolation), which is what
 * the reference server uses for mandos.conf and clients.conf.
 *
 * Unlike configparser, a syntax problem does not throw the whole file away:
 * it is recorded (with its line and section) and parsing goes on, so a caller
 * can skip only the section that is broken. */

#include <stdbool.h>
#include <stddef.h>

typedef struct IniEntry {
        char *key;          /* folded to lower case */
        char *value;        /* raw (not interpolated); continuation lines joined with '\n' */
        unsigned line;      /* line of the key; 0 for built-in defaults */
} IniEntry;

typedef struct IniSection {
        char *name;         /* case-sensitive, as written between the brackets */
        unsigned line;      /* line of the header; 0 for built-in defaults */
        IniEntry *entries;  /* in file order */
        size_t n_entries;
        unsigned n_problems; /* problems recorded against this section */
        size_t n_allocated;  /* ini.c's own: room in entries */
        struct Hashmap *keys; /* ini.c's own: key → entry, once a scan would be slow */
} IniSection;

typedef struct IniProblem {
        char *section;      /* NULL: not inside a section (file level); "DEFAULT" for [DEFAULT] */
        char *key;          /* NULL unless the problem is about one key */
        unsigned line;
        char *message;      /* without file name or line, e.g. "duplicate section 'foo'" */
} IniProblem;

typedef struct IniFile {
        char *path;
        IniSection defaults;   /* [DEFAULT]: built-in defaults, then the file's own */
        IniSection *sections;  /* every other section, in file order */
        size_t n_sections;
        IniProblem *problems;  /* in the order found */
        size_t n_problems;
        struct IniArena *arena; /* ini.c's own: the sections' keys, values and entries */
        size_t n_released;     /* ini.c's own: sections[0..n_released) are released */
} IniFile;

/* Parse text. defaults is NULL or a NULL-terminated list "key", "value", ...
 * of built-in [DEFAULT] values (configparser's constructor defaults): the
 * file's [DEFAULT] may override them without a duplicate error.
 * Returns 0 (problems, if any, are in (*ret)->problems) or -ENOMEM. */
int ini_parse_string(const char *path, const char *text, size_t size,
                     const char *const *defaults, IniFile **ret);

/* Read and parse a file. Returns -errno if it cannot be read (-ENOENT if missing). */
int ini_parse_file(const char *path, const char *const *defaults, IniFile **ret);

/* Read a file as ini_parse_file() does (same size limit), without parsing:
 * *ret (NUL-terminated, *ret_size bytes before the NUL) is the caller's, to
 * erase_and_free(*ret, *ret_size + 1). Returns -errno. */
int ini_read_file(const char *path, char **ret, size_t *ret_size);

IniFile *ini_file_free(IniFile *f);

/* Sections [0, through] have been read and are needed no more: their keys
 * and values are wiped, their memory given back (the names stay, and their
 * problems), so that a reader going through a big file in order does not
 * hold it all. Idempotent. */
void ini_sections_release(IniFile *f, size_t through);

static inline void ini_file_freep(IniFile **f) {
        if (*f)
                ini_file_free(*f);
}

/* The section's own entry for key (case-insensitive), else [DEFAULT]'s; NULL if neither. */
const IniEntry *ini_lookup(const IniFile *f, const IniSection *s, const char *key);

/* The value of key in section s (NULL: [DEFAULT] itself) after
 * BasicInterpolation: "%(name)s" is replaced by the interpolated value of
 * name (case-insensitive) from s or [DEFAULT], "%%" by "%"; nesting deeper
 * than 10 levels, any other use of '%', or a missing name is an error.
 * Returns 0 and *ret (malloc'd), -ENOENT if key is absent, -EINVAL with
 * *ret_error (malloc'd, e.g. "bad interpolation: '%' must be followed by
 * '%' or '('") on an interpolation error, or -ENOMEM. */
int ini_get(const IniFile *f, const IniSection *s, const char *key, char **ret, char **ret_error);

/* Every key visible in s: its own, then [DEFAULT]'s that it does not
 * override. Returns a malloc'd NULL-terminated array of pointers into f
 * (free only the array), or NULL on ENOMEM. */
const char **ini_keys(const IniFile *f, const IniSection *s);

/* configparser's boolean words: 1/yes/true/on, 0/no/false/off, any case.
 * Returns 1, 0, or -EINVAL. */
int ini_parse_boolean(const char *s);
