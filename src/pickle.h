/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* A restricted reader of Python pickles, for the reference server's
 * clients.pickle (docs/STATE.md, "Importing the reference server's
 * clients.pickle"). It builds a tree of plain values and never executes
 * anything: the file may have been written by whoever got the server's
 * unprivileged user, and unpickling it in Python would run any callable it
 * names.
 *
 * Accepted: the opcodes of protocols 2–4 that make plain values (None, bool,
 * int up to 64 bits, float, str, bytes, list, tuple, dict, the memo, marks,
 * frames) and exactly three globals, each only called with arguments of the
 * types it takes: datetime.datetime(<10 state bytes>) (naive),
 * datetime.timedelta(days, seconds, microseconds) and
 * _codecs.encode(<str of code points below 256>, 'latin1') (how protocol 2
 * writes a bytes object). Anything else — another global, INST, OBJ, NEWOBJ,
 * BUILD, PERSID, EXT*, the text opcodes of protocol 0 — is refused with
 * the opcode or global and the byte offset named.
 *
 * Bounded: the file size, the nesting depth (checked as values are put
 * together, so no walk of the tree can recurse deeply or loop: a container
 * has at most one parent and never contains itself), the memo, the stack,
 * the number of values. Every string and bytes value is wiped when the
 * tree is freed (clients.pickle holds plaintext secrets). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PICKLE_MAX_SIZE (64u * 1024 * 1024)
#define PICKLE_MAX_DEPTH 64
#define PICKLE_MAX_MEMO (4u * 1024 * 1024)

typedef enum PickleType {
        PICKLE_NONE,
        PICKLE_BOOL,
        PICKLE_INT,
        PICKLE_FLOAT,
        PICKLE_STR,       /* UTF-8, as in the file; may hold NUL bytes (size says) */
        PICKLE_BYTES,
        PICKLE_LIST,
        PICKLE_TUPLE,
        PICKLE_DICT,      /* items: key, value, key, value… in file order */
        PICKLE_DATETIME,  /* naive */
        PICKLE_TIMEDELTA,
        PICKLE_GLOBAL,    /* one of the three callables, not called */
        _PICKLE_TYPE_MAX,
} PickleType;

typedef enum PickleGlobal {
        PICKLE_GLOBAL_DATETIME,
        PICKLE_GLOBAL_TIMEDELTA,
        PICKLE_GLOBAL_CODECS_ENCODE,
} PickleGlobal;

typedef struct PickleValue PickleValue;
struct PickleValue {
        PickleType type;
        union {
                bool boolean;
                int64_t integer;
                double real;
                struct {
                        char *data; /* NUL-terminated too */
                        size_t size;
                } str;              /* STR and BYTES */
                struct {
                        PickleValue **items;
                        size_t n, allocated;
                } seq;              /* LIST, TUPLE, DICT (2 per entry) */
                struct {
                        int year, month, day, hour, minute, second, microsecond;
                } datetime;
                struct {
                        int64_t days, seconds, microseconds;
                } timedelta;
                PickleGlobal global;
        };
        /* For the bounds on nesting (containers only). */
        PickleValue *parent;
        unsigned height;
};

typedef struct Pickle Pickle;

/* Parse a whole pickle. Returns 0 and the tree (*ret), or -EBADMSG with
 * *ret_error saying why ("truncated at byte N", "opcode INST (0x69) refused
 * at byte N", "global posix.system refused at byte N", …), or -ENOMEM. */
int pickle_parse(const uint8_t *data, size_t size, Pickle **ret, char **ret_error);
/* Read FD (up to PICKLE_MAX_SIZE) and parse it; the bytes read are wiped. */
int pickle_parse_fd(int fd, Pickle **ret, char **ret_error);
const PickleValue *pickle_root(const Pickle *p);
Pickle *pickle_free(Pickle *p);
static inline void pickle_freep(Pickle **p) {
        if (*p)
                pickle_free(*p);
}

const char *pickle_type_name(PickleType t);
/* A dict's value for a str key (the last one, as Python keeps), or NULL. */
const PickleValue *pickle_dict_get(const PickleValue *dict, const char *key);
/* Whether v is a str without NUL bytes (usable as a C string). */
bool pickle_is_cstr(const PickleValue *v);
/* A naive datetime taken as UTC, in µs since 1970; -ERANGE before 1970. */
int pickle_datetime_usec(const PickleValue *v, uint64_t *ret);
/* A timedelta in µs; -ERANGE if negative or too long. */
int pickle_timedelta_usec(const PickleValue *v, uint64_t *ret);
