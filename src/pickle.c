/* SPDX-License-Identifier: GPL-3.0-or-later */

/* A restricted pickle reader (pickle.h): an interpreter of the pickle
 * machine for the opcodes that build plain values, with no callable but the
 * three the reference server's clients.pickle needs. */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pickle.h"
#include "util.h"

/* Each value costs ~60 bytes: this bounds the tree to ~250 MB. The
 * reference's file for ten thousand clients has about a million. */
#define MAX_VALUES (4u * 1024 * 1024)
#define MAX_STACK MAX_VALUES
#define MAX_GLOBAL_NAME 256

struct Pickle {
        PickleValue **all; /* every value made, for freeing (and wiping) */
        size_t n_all, allocated_all;
        PickleValue *root;
};

typedef struct Parser {
        Pickle *p;
        const uint8_t *data;
        size_t size, pos, op_pos;
        PickleValue **stack;
        size_t n_stack, allocated_stack;
        size_t *marks;
        size_t n_marks, allocated_marks;
        PickleValue **memo;
        size_t n_memo, allocated_memo, memo_used;
        char *error;
} Parser;

static const char *const opcode_names[256] = {
        ['('] = "MARK", ['.'] = "STOP", ['0'] = "POP", ['1'] = "POP_MARK", ['2'] = "DUP", ['F'] = "FLOAT",
        ['I'] = "INT", ['J'] = "BININT", ['K'] = "BININT1", ['L'] = "LONG", ['M'] = "BININT2", ['N'] = "NONE",
        ['P'] = "PERSID", ['Q'] = "BINPERSID", ['R'] = "REDUCE", ['S'] = "STRING", ['T'] = "BINSTRING",
        ['U'] = "SHORT_BINSTRING", ['V'] = "UNICODE", ['X'] = "BINUNICODE", ['a'] = "APPEND", ['b'] = "BUILD",
        ['c'] = "GLOBAL", ['d'] = "DICT", ['}'] = "EMPTY_DICT", ['e'] = "APPENDS", ['g'] = "GET",
        ['h'] = "BINGET", ['i'] = "INST", ['j'] = "LONG_BINGET", ['l'] = "LIST", [']'] = "EMPTY_LIST",
        ['o'] = "OBJ", ['p'] = "PUT", ['q'] = "BINPUT", ['r'] = "LONG_BINPUT", ['s'] = "SETITEM", ['t'] = "TUPLE",
        [')'] = "EMPTY_TUPLE", ['u'] = "SETITEMS", ['G'] = "BINFLOAT", [0x80] = "PROTO", [0x81] = "NEWOBJ",
        [0x82] = "EXT1", [0x83] = "EXT2", [0x84] = "EXT4", [0x85] = "TUPLE1", [0x86] = "TUPLE2",
        [0x87] = "TUPLE3", [0x88] = "NEWTRUE", [0x89] = "NEWFALSE", [0x8a] = "LONG1", [0x8b] = "LONG4",
        ['B'] = "BINBYTES", ['C'] = "SHORT_BINBYTES", [0x8c] = "SHORT_BINUNICODE", [0x8d] = "BINUNICODE8",
        [0x8e] = "BINBYTES8", [0x8f] = "EMPTY_SET", [0x90] = "ADDITEMS", [0x91] = "FROZENSET",
        [0x92] = "NEWOBJ_EX", [0x93] = "STACK_GLOBAL", [0x94] = "MEMOIZE", [0x95] = "FRAME",
        [0x96] = "BYTEARRAY8", [0x97] = "NEXT_BUFFER", [0x98] = "READONLY_BUFFER",
};

static const char *const type_names[_PICKLE_TYPE_MAX] = {
        [PICKLE_NONE] = "None", [PICKLE_BOOL] = "bool", [PICKLE_INT] = "int", [PICKLE_FLOAT] = "float",
        [PICKLE_STR] = "str", [PICKLE_BYTES] = "bytes", [PICKLE_LIST] = "list", [PICKLE_TUPLE] = "tuple",
        [PICKLE_DICT] = "dict", [PICKLE_DATETIME] = "datetime", [PICKLE_TIMEDELTA] = "timedelta",
        [PICKLE_GLOBAL] = "global",
};

const char *pickle_type_name(PickleType t) {
        return t < _PICKLE_TYPE_MAX ? type_names[t] : "?";
}

_printf_(2, 3) static int fail(Parser *P, const char *fmt, ...) {
        va_list ap;

        if (!P->error) {
                va_start(ap, fmt);
                if (vasprintf(&P->error, fmt, ap) < 0)
                        P->error = NULL;
                va_end(ap);
        }
        return P->error ? -EBADMSG : -ENOMEM;
}

static int truncated(Parser *P) {
        return fail(P, "truncated at byte %zu", P->size);
}

static bool is_container(const PickleValue *v) {
        return v->type == PICKLE_LIST || v->type == PICKLE_TUPLE || v->type == PICKLE_DICT;
}

/* ---------------------------------------------------------------- values */

static void value_free(PickleValue *v) {
        if (v->type == PICKLE_STR || v->type == PICKLE_BYTES)
                erase_and_free(v->str.data, v->str.size + 1);
        else if (is_container(v))
                free(v->seq.items);
        free(v);
}

Pickle *pickle_free(Pickle *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_all; i++)
                value_free(p->all[i]);
        free(p->all);
        free(p);
        return NULL;
}

const PickleValue *pickle_root(const Pickle *p) {
        return p->root;
}

static int value_new(Parser *P, PickleType type, PickleValue **ret) {
        Pickle *p = P->p;
        PickleValue *v;

        if (p->n_all >= MAX_VALUES)
                return fail(P, "more than %u values at byte %zu", MAX_VALUES, P->op_pos);
        if (GREEDY_REALLOC(p->all, p->allocated_all, p->n_all + 1) < 0)
                return -ENOMEM;
        v = calloc(1, sizeof(PickleValue));
        if (!v)
                return -ENOMEM;
        v->type = type;
        p->all[p->n_all++] = v;
        *ret = v;
        return 0;
}

static int string_new(Parser *P, PickleType type, const uint8_t *src, size_t n, PickleValue **ret) {
        PickleValue *v;
        int r = value_new(P, type, &v);

        if (r < 0)
                return r;
        v->str.data = malloc(n + 1);
        if (!v->str.data)
                return -ENOMEM;
        if (n)
                memcpy(v->str.data, src, n);
        v->str.data[n] = 0;
        v->str.size = n;
        *ret = v;
        return 0;
}

/* The nesting rules that keep every walk of the tree short and finite: a
 * container goes into one container at most, never into itself or its own
 * descendant, and no chain is deeper than PICKLE_MAX_DEPTH. */
static int add_item(Parser *P, PickleValue *c, PickleValue *v) {
        unsigned depth = 0;

        if (is_container(v)) {
                if (v->parent)
                        return fail(P, "a %s is put in two containers at byte %zu", pickle_type_name(v->type),
                                    P->op_pos);
                for (const PickleValue *a = c; a; a = a->parent, depth++)
                        if (a == v)
                                return fail(P, "a %s is put inside itself at byte %zu", pickle_type_name(v->type),
                                            P->op_pos);
                if (depth + 1 + v->height > PICKLE_MAX_DEPTH)
                        return fail(P, "nested deeper than %u at byte %zu", PICKLE_MAX_DEPTH, P->op_pos);
                v->parent = c;
                for (unsigned h = v->height + 1; c && c->height < h; c = c->parent, h++)
                        c->height = h;
        }
        return 0;
}

static int seq_append(Parser *P, PickleValue *c, PickleValue *v) {
        int r;

        if (GREEDY_REALLOC(c->seq.items, c->seq.allocated, c->seq.n + 1) < 0)
                return -ENOMEM;
        r = add_item(P, c, v);
        if (r < 0)
                return r;
        c->seq.items[c->seq.n++] = v;
        return 0;
}

/* ---------------------------------------------------------------- stack */

static size_t frame_base(const Parser *P) {
        return P->n_marks ? P->marks[P->n_marks - 1] : 0;
}

static int push(Parser *P, PickleValue *v) {
        if (P->n_stack >= MAX_STACK)
                return fail(P, "stack deeper than %u at byte %zu", MAX_STACK, P->op_pos);
        if (GREEDY_REALLOC(P->stack, P->allocated_stack, P->n_stack + 1) < 0)
                return -ENOMEM;
        P->stack[P->n_stack++] = v;
        return 0;
}

static int pop(Parser *P, PickleValue **ret) {
        if (P->n_stack <= frame_base(P))
                return fail(P, "%s on an empty stack at byte %zu", opcode_names[P->data[P->op_pos]], P->op_pos);
        *ret = P->stack[--P->n_stack];
        return 0;
}

static int top(Parser *P, PickleValue **ret) {
        if (P->n_stack <= frame_base(P))
                return fail(P, "%s on an empty stack at byte %zu", opcode_names[P->data[P->op_pos]], P->op_pos);
        *ret = P->stack[P->n_stack - 1];
        return 0;
}

/* The items above the last mark: *ret_from is the index of the first. */
static int pop_mark(Parser *P, size_t *ret_from) {
        if (P->n_marks == 0)
                return fail(P, "%s without a MARK at byte %zu", opcode_names[P->data[P->op_pos]], P->op_pos);
        *ret_from = P->marks[--P->n_marks];
        return 0;
}

/* ---------------------------------------------------------------- reading */

static int need(Parser *P, size_t n) {
        return P->size - P->pos < n ? truncated(P) : 0;
}

static uint64_t read_le(Parser *P, size_t n) {
        uint64_t v = 0;

        for (size_t i = 0; i < n; i++)
                v |= (uint64_t) P->data[P->pos + i] << (8 * i);
        P->pos += n;
        return v;
}

/* One code point of strict UTF-8 (no surrogates, no overlong forms). */
static int utf8_next(const uint8_t *s, size_t n, size_t *i, uint32_t *ret) {
        uint8_t c = s[*i];
        size_t len;
        uint32_t cp, min;

        if (c < 0x80) {
                *ret = c;
                (*i)++;
                return 0;
        }
        if ((c & 0xE0) == 0xC0)
                len = 2, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0)
                len = 3, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0)
                len = 4, cp = c & 0x07, min = 0x10000;
        else
                return -EINVAL;
        if (n - *i < len)
                return -EINVAL;
        for (size_t k = 1; k < len; k++) {
                if ((s[*i + k] & 0xC0) != 0x80)
                        return -EINVAL;
                cp = (cp << 6) | (s[*i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return -EINVAL;
        *i += len;
        *ret = cp;
        return 0;
}

static int op_string(Parser *P, PickleType type, size_t len_size) {
        PickleValue *v;
        uint64_t n;
        int r;

        if ((r = need(P, len_size)) < 0)
                return r;
        n = read_le(P, len_size);
        if ((r = need(P, n > SIZE_MAX ? SIZE_MAX : (size_t) n)) < 0)
                return r;
        if (type == PICKLE_STR)
                for (size_t i = 0; i < n;) {
                        uint32_t cp;
                        if (utf8_next(P->data + P->pos, n, &i, &cp) < 0)
                                return fail(P, "a str that is not UTF-8 at byte %zu", P->op_pos);
                }
        r = string_new(P, type, P->data + P->pos, n, &v);
        if (r < 0)
                return r;
        P->pos += n;
        return push(P, v);
}

static int op_int(Parser *P, int64_t i) {
        PickleValue *v;
        int r = value_new(P, PICKLE_INT, &v);

        if (r < 0)
                return r;
        v->integer = i;
        return push(P, v);
}

static int op_long1(Parser *P) {
        uint64_t u;
        size_t n;
        int r;

        if ((r = need(P, 1)) < 0)
                return r;
        n = P->data[P->pos++];
        if (n > 8)
                return fail(P, "an integer of %zu bytes (more than 64 bits) at byte %zu", n, P->op_pos);
        if ((r = need(P, n)) < 0)
                return r;
        u = read_le(P, n);
        if (n > 0 && n < 8 && (u >> (8 * n - 1)) & 1)
                u |= UINT64_MAX << (8 * n); /* sign-extend */
        return op_int(P, (int64_t) u);
}

static int op_simple(Parser *P, PickleType type, bool b) {
        PickleValue *v;
        int r = value_new(P, type, &v);

        if (r < 0)
                return r;
        v->boolean = b;
        return push(P, v);
}

static int op_binfloat(Parser *P) {
        PickleValue *v;
        uint64_t u = 0;
        int r;

        if ((r = need(P, 8)) < 0)
                return r;
        for (int i = 0; i < 8; i++)
                u = (u << 8) | P->data[P->pos++];
        r = value_new(P, PICKLE_FLOAT, &v);
        if (r < 0)
                return r;
        memcpy(&v->real, &u, sizeof(v->real));
        return push(P, v);
}

static int op_container(Parser *P, PickleType type) {
        PickleValue *v;
        int r = value_new(P, type, &v);

        if (r < 0)
                return r;
        return push(P, v);
}

static int check_key(Parser *P, const PickleValue *k) {
        if (k->type == PICKLE_LIST || k->type == PICKLE_DICT)
                return fail(P, "a %s as a dict key at byte %zu", pickle_type_name(k->type), P->op_pos);
        return 0;
}

/* TUPLE, LIST, DICT: a new container of the items above the last mark;
 * TUPLE1-3: of the top n items. */
static int op_collect(Parser *P, PickleType type, size_t from) {
        PickleValue *c;
        int r;

        if (type == PICKLE_DICT && (P->n_stack - from) % 2)
                return fail(P, "DICT with an odd number of items at byte %zu", P->op_pos);
        r = value_new(P, type, &c);
        if (r < 0)
                return r;
        for (size_t i = from; i < P->n_stack; i++) {
                if (type == PICKLE_DICT && (i - from) % 2 == 0 && (r = check_key(P, P->stack[i])) < 0)
                        return r;
                if ((r = seq_append(P, c, P->stack[i])) < 0)
                        return r;
        }
        P->n_stack = from;
        return push(P, c);
}

static int op_tuple_n(Parser *P, size_t n) {
        if (P->n_stack - frame_base(P) < n)
                return fail(P, "%s on a stack of fewer than %zu items at byte %zu", opcode_names[P->data[P->op_pos]],
                            n, P->op_pos);
        return op_collect(P, PICKLE_TUPLE, P->n_stack - n);
}

/* APPEND(S), SETITEM(S): the items from `from` go into the container below them. */
static int op_add(Parser *P, PickleType type, size_t from) {
        PickleValue *c;
        int r;

        if (from <= frame_base(P))
                return fail(P, "%s with no %s below its items at byte %zu", opcode_names[P->data[P->op_pos]],
                            pickle_type_name(type), P->op_pos);
        c = P->stack[from - 1];
        if (c->type != type)
                return fail(P, "%s on a %s at byte %zu", opcode_names[P->data[P->op_pos]], pickle_type_name(c->type),
                            P->op_pos);
        if (type == PICKLE_DICT && (P->n_stack - from) % 2)
                return fail(P, "%s with an odd number of items at byte %zu", opcode_names[P->data[P->op_pos]],
                            P->op_pos);
        for (size_t i = from; i < P->n_stack; i++) {
                if (type == PICKLE_DICT && (i - from) % 2 == 0 && (r = check_key(P, P->stack[i])) < 0)
                        return r;
                if ((r = seq_append(P, c, P->stack[i])) < 0)
                        return r;
        }
        P->n_stack = from;
        return 0;
}

static int memo_put(Parser *P, uint64_t index) {
        PickleValue *v;
        int r;

        if ((r = top(P, &v)) < 0)
                return r;
        /* Pickles number their memo from 0 up: a far index is only an attack on memory. */
        if (index >= PICKLE_MAX_MEMO || index > P->p->n_all + 256)
                return fail(P, "memo index %" PRIu64 " out of bounds at byte %zu", index, P->op_pos);
        if (GREEDY_REALLOC(P->memo, P->allocated_memo, (size_t) index + 1) < 0)
                return -ENOMEM;
        for (; P->n_memo <= index; P->n_memo++)
                P->memo[P->n_memo] = NULL;
        if (!P->memo[index])
                P->memo_used++;
        P->memo[index] = v;
        return 0;
}

static int memo_get(Parser *P, uint64_t index) {
        if (index >= P->n_memo || !P->memo[index])
                return fail(P, "memo index %" PRIu64 " not set at byte %zu", index, P->op_pos);
        return push(P, P->memo[index]);
}

/* ---------------------------------------------------------------- globals */

static void printable(char *dst, size_t size, const char *src, size_t n) {
        size_t j = 0;

        for (size_t i = 0; i < n && j + 1 < size; i++)
                dst[j++] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
        dst[j] = 0;
}

static int global(Parser *P, const char *module, size_t module_size, const char *name, size_t name_size) {
        static const struct {
                const char *module, *name;
                PickleGlobal global;
        } allowed[] = {
                { "datetime", "datetime", PICKLE_GLOBAL_DATETIME },
                { "datetime", "timedelta", PICKLE_GLOBAL_TIMEDELTA },
                { "_codecs", "encode", PICKLE_GLOBAL_CODECS_ENCODE },
        };
        char m[80], n[80];
        PickleValue *v;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(allowed); i++)
                if (module_size == strlen(allowed[i].module) && memcmp(module, allowed[i].module, module_size) == 0 &&
                    name_size == strlen(allowed[i].name) && memcmp(name, allowed[i].name, name_size) == 0) {
                        r = value_new(P, PICKLE_GLOBAL, &v);
                        if (r < 0)
                                return r;
                        v->global = allowed[i].global;
                        return push(P, v);
                }
        printable(m, sizeof(m), module, module_size);
        printable(n, sizeof(n), name, name_size);
        return fail(P, "global %s.%s refused at byte %zu (%s)", m, n, P->op_pos, opcode_names[P->data[P->op_pos]]);
}

static int read_line(Parser *P, const char **ret, size_t *ret_size) {
        size_t avail = P->size - P->pos;
        const uint8_t *nl = memchr(P->data + P->pos, '\n', MIN(avail, (size_t) MAX_GLOBAL_NAME + 1));

        if (!nl) {
                if (avail <= MAX_GLOBAL_NAME)
                        return truncated(P);
                return fail(P, "a GLOBAL name longer than %d bytes at byte %zu", MAX_GLOBAL_NAME, P->op_pos);
        }
        *ret = (const char *) P->data + P->pos;
        *ret_size = (size_t) (nl - (P->data + P->pos));
        P->pos += *ret_size + 1;
        return 0;
}

static int op_global(Parser *P) {
        const char *module, *name;
        size_t module_size, name_size;
        int r;

        if ((r = read_line(P, &module, &module_size)) < 0 || (r = read_line(P, &name, &name_size)) < 0)
                return r;
        return global(P, module, module_size, name, name_size);
}

static int op_stack_global(Parser *P) {
        PickleValue *module, *name;
        int r;

        if ((r = pop(P, &name)) < 0 || (r = pop(P, &module)) < 0)
                return r;
        if (module->type != PICKLE_STR || name->type != PICKLE_STR)
                return fail(P, "STACK_GLOBAL of a %s and a %s at byte %zu", pickle_type_name(module->type),
                            pickle_type_name(name->type), P->op_pos);
        return global(P, module->str.data, module->str.size, name->str.data, name->str.size);
}

static bool all_ints(const PickleValue *args, size_t from) {
        for (size_t i = from; i < args->seq.n; i++)
                if (args->seq.items[i]->type != PICKLE_INT)
                        return false;
        return true;
}

static bool is_leap(int y) {
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m) {
        static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

static int set_datetime(Parser *P, PickleValue *v, const int64_t f[7]) {
        if (f[0] < 1 || f[0] > 9999 || f[1] < 1 || f[1] > 12 || f[2] < 1 ||
            f[2] > days_in_month((int) f[0], (int) f[1]) || f[3] < 0 || f[3] > 23 || f[4] < 0 || f[4] > 59 ||
            f[5] < 0 || f[5] > 59 || f[6] < 0 || f[6] > 999999)
                return fail(P, "datetime out of range at byte %zu", P->op_pos);
        v->datetime.year = (int) f[0];
        v->datetime.month = (int) f[1];
        v->datetime.day = (int) f[2];
        v->datetime.hour = (int) f[3];
        v->datetime.minute = (int) f[4];
        v->datetime.second = (int) f[5];
        v->datetime.microsecond = (int) f[6];
        return 0;
}

/* datetime(<10 bytes>) as datetime pickles itself, or datetime(y, m, d[, H, M, S, us]). */
static int call_datetime(Parser *P, const PickleValue *args, PickleValue *v) {
        int64_t f[7] = {};

        if (args->seq.n == 1 && args->seq.items[0]->type == PICKLE_BYTES && args->seq.items[0]->str.size == 10) {
                const uint8_t *b = (const uint8_t *) args->seq.items[0]->str.data;
                f[0] = b[0] * 256 + b[1];
                f[1] = b[2] & 0x7F; /* the high bit is `fold` */
                f[2] = b[3];
                f[3] = b[4];
                f[4] = b[5];
                f[5] = b[6];
                f[6] = (b[7] << 16) | (b[8] << 8) | b[9];
                return set_datetime(P, v, f);
        }
        if (args->seq.n >= 3 && args->seq.n <= 7 && all_ints(args, 0)) {
                for (size_t i = 0; i < args->seq.n; i++)
                        f[i] = args->seq.items[i]->integer;
                return set_datetime(P, v, f);
        }
        return fail(P, "datetime.datetime called with other arguments than a naive datetime's at byte %zu",
                    P->op_pos);
}

static int call_timedelta(Parser *P, const PickleValue *args, PickleValue *v) {
        int64_t d, s = 0, us = 0;

        if (args->seq.n < 1 || args->seq.n > 3 || !all_ints(args, 0))
                return fail(P, "datetime.timedelta called with other arguments than 3 ints at byte %zu", P->op_pos);
        d = args->seq.items[0]->integer;
        if (args->seq.n > 1)
                s = args->seq.items[1]->integer;
        if (args->seq.n > 2)
                us = args->seq.items[2]->integer;
        /* What timedelta pickles is normalised. */
        if (d < -999999999 || d > 999999999 || s < 0 || s >= 86400 || us < 0 || us >= 1000000)
                return fail(P, "timedelta out of range at byte %zu", P->op_pos);
        v->timedelta.days = d;
        v->timedelta.seconds = s;
        v->timedelta.microseconds = us;
        return 0;
}

/* _codecs.encode(str, 'latin1'): each code point (< 256) is one byte. */
static int call_encode(Parser *P, const PickleValue *args, PickleValue *v) {
        const PickleValue *s, *enc;
        size_t n = 0;

        if (args->seq.n != 2 || args->seq.items[0]->type != PICKLE_STR || args->seq.items[1]->type != PICKLE_STR)
                return fail(P, "_codecs.encode called with other arguments than (str, 'latin1') at byte %zu",
                            P->op_pos);
        s = args->seq.items[0];
        enc = args->seq.items[1];
        if (!streq(enc->str.data, "latin1") && !streq(enc->str.data, "latin-1"))
                return fail(P, "_codecs.encode to an encoding other than latin1 at byte %zu", P->op_pos);
        v->str.data = malloc(s->str.size + 1);
        if (!v->str.data)
                return -ENOMEM;
        for (size_t i = 0; i < s->str.size;) {
                uint32_t cp;
                if (utf8_next((const uint8_t *) s->str.data, s->str.size, &i, &cp) < 0 || cp > 0xFF)
                        return fail(P, "_codecs.encode of a str that is not latin1 at byte %zu", P->op_pos);
                v->str.data[n++] = (char) cp;
        }
        v->str.data[n] = 0;
        v->str.size = n;
        return 0;
}

static int op_reduce(Parser *P) {
        static const PickleType result[] = {
                [PICKLE_GLOBAL_DATETIME] = PICKLE_DATETIME,
                [PICKLE_GLOBAL_TIMEDELTA] = PICKLE_TIMEDELTA,
                [PICKLE_GLOBAL_CODECS_ENCODE] = PICKLE_BYTES,
        };
        PickleValue *callable, *args, *v;
        int r;

        if ((r = pop(P, &args)) < 0 || (r = pop(P, &callable)) < 0)
                return r;
        if (callable->type != PICKLE_GLOBAL || args->type != PICKLE_TUPLE)
                return fail(P, "REDUCE of a %s with a %s at byte %zu", pickle_type_name(callable->type),
                            pickle_type_name(args->type), P->op_pos);
        r = value_new(P, result[callable->global], &v);
        if (r < 0)
                return r;
        switch (callable->global) {
        case PICKLE_GLOBAL_DATETIME:
                r = call_datetime(P, args, v);
                break;
        case PICKLE_GLOBAL_TIMEDELTA:
                r = call_timedelta(P, args, v);
                break;
        case PICKLE_GLOBAL_CODECS_ENCODE:
                r = call_encode(P, args, v);
                break;
        }
        if (r < 0)
                return r;
        return push(P, v);
}

/* ---------------------------------------------------------------- machine */

static int step(Parser *P, bool *stop) {
        uint8_t op;
        size_t from;
        PickleValue *v;
        int r;

        P->op_pos = P->pos;
        op = P->data[P->pos++];
        switch (op) {
        case 0x80: /* PROTO */
                if ((r = need(P, 1)) < 0)
                        return r;
                if (P->data[P->pos] > 5)
                        return fail(P, "pickle protocol %u at byte %zu", P->data[P->pos], P->op_pos);
                P->pos++;
                return 0;
        case 0x95: /* FRAME: only a hint for buffering */
                if ((r = need(P, 8)) < 0)
                        return r;
                P->pos += 8;
                return 0;
        case '.':
                *stop = true;
                return 0;
        case '(':
                if (GREEDY_REALLOC(P->marks, P->allocated_marks, P->n_marks + 1) < 0)
                        return -ENOMEM;
                if (P->n_marks >= MAX_STACK)
                        return fail(P, "too many marks at byte %zu", P->op_pos);
                P->marks[P->n_marks++] = P->n_stack;
                return 0;
        case '0':
                if (P->n_marks && P->marks[P->n_marks - 1] == P->n_stack) {
                        P->n_marks--;
                        return 0;
                }
                return pop(P, &v);
        case '1':
                if ((r = pop_mark(P, &from)) < 0)
                        return r;
                P->n_stack = from;
                return 0;
        case '2':
                if ((r = top(P, &v)) < 0)
                        return r;
                return push(P, v);
        case 'N':
                return op_simple(P, PICKLE_NONE, false);
        case 0x88:
                return op_simple(P, PICKLE_BOOL, true);
        case 0x89:
                return op_simple(P, PICKLE_BOOL, false);
        case 'J':
                if ((r = need(P, 4)) < 0)
                        return r;
                return op_int(P, (int32_t) (uint32_t) read_le(P, 4));
        case 'K':
                if ((r = need(P, 1)) < 0)
                        return r;
                return op_int(P, (int64_t) read_le(P, 1));
        case 'M':
                if ((r = need(P, 2)) < 0)
                        return r;
                return op_int(P, (int64_t) read_le(P, 2));
        case 0x8a:
                return op_long1(P);
        case 'G':
                return op_binfloat(P);
        case 'X':
                return op_string(P, PICKLE_STR, 4);
        case 0x8c:
                return op_string(P, PICKLE_STR, 1);
        case 0x8d:
                return op_string(P, PICKLE_STR, 8);
        case 'B':
                return op_string(P, PICKLE_BYTES, 4);
        case 'C':
                return op_string(P, PICKLE_BYTES, 1);
        case 0x8e:
                return op_string(P, PICKLE_BYTES, 8);
        case ')':
                return op_container(P, PICKLE_TUPLE);
        case ']':
                return op_container(P, PICKLE_LIST);
        case '}':
                return op_container(P, PICKLE_DICT);
        case 't':
        case 'l':
        case 'd':
                if ((r = pop_mark(P, &from)) < 0)
                        return r;
                return op_collect(P, op == 't' ? PICKLE_TUPLE : op == 'l' ? PICKLE_LIST : PICKLE_DICT, from);
        case 0x85:
        case 0x86:
        case 0x87:
                return op_tuple_n(P, (size_t) (op - 0x84));
        case 'a':
                return op_add(P, PICKLE_LIST, P->n_stack > frame_base(P) ? P->n_stack - 1 : frame_base(P));
        case 's':
                return op_add(P, PICKLE_DICT, P->n_stack >= frame_base(P) + 2 ? P->n_stack - 2 : frame_base(P));
        case 'e':
        case 'u':
                if ((r = pop_mark(P, &from)) < 0)
                        return r;
                return op_add(P, op == 'e' ? PICKLE_LIST : PICKLE_DICT, from);
        case 'q':
                if ((r = need(P, 1)) < 0)
                        return r;
                return memo_put(P, read_le(P, 1));
        case 'r':
                if ((r = need(P, 4)) < 0)
                        return r;
                return memo_put(P, read_le(P, 4));
        case 0x94:
                return memo_put(P, P->memo_used);
        case 'h':
                if ((r = need(P, 1)) < 0)
                        return r;
                return memo_get(P, read_le(P, 1));
        case 'j':
                if ((r = need(P, 4)) < 0)
                        return r;
                return memo_get(P, read_le(P, 4));
        case 'c':
                return op_global(P);
        case 0x93:
                return op_stack_global(P);
        case 'R':
                return op_reduce(P);
        default:
                if (opcode_names[op])
                        return fail(P, "opcode %s (0x%02x) refused at byte %zu", opcode_names[op], op, P->op_pos);
                return fail(P, "unknown opcode 0x%02x at byte %zu", op, P->op_pos);
        }
}

int pickle_parse(const uint8_t *data, size_t size, Pickle **ret, char **ret_error) {
        Parser P = { .data = data, .size = size };
        bool stop = false;
        int r = 0;

        *ret = NULL;
        if (ret_error)
                *ret_error = NULL;
        if (size > PICKLE_MAX_SIZE) {
                r = fail(&P, "larger than %u bytes", PICKLE_MAX_SIZE);
                goto finish;
        }
        P.p = calloc(1, sizeof(Pickle));
        if (!P.p)
                return -ENOMEM;
        while (r >= 0 && !stop) {
                if (P.pos >= P.size)
                        r = truncated(&P);
                else
                        r = step(&P, &stop);
        }
        if (r >= 0 && (P.n_marks > 0 || P.n_stack != 1))
                r = fail(&P, "STOP with %zu values and %zu marks on the stack at byte %zu", P.n_stack, P.n_marks,
                         P.op_pos);
        if (r >= 0) {
                P.p->root = P.stack[0];
                *ret = TAKE_PTR(P.p);
        }
finish:
        pickle_free(P.p);
        free(P.stack);
        free(P.marks);
        free(P.memo);
        if (ret_error)
                *ret_error = TAKE_PTR(P.error);
        free(P.error);
        return r;
}

int pickle_parse_fd(int fd, Pickle **ret, char **ret_error) {
        uint8_t *buf = NULL;
        size_t n = 0, allocated = 0;
        int r;

        *ret = NULL;
        if (ret_error)
                *ret_error = NULL;
        for (;;) {
                ssize_t k;
                if (n == allocated) {
                        /* Grown by hand, not realloc(): the old copy is wiped. */
                        size_t m = allocated ? allocated * 2 : 64 * 1024;
                        uint8_t *b;
                        if (allocated >= PICKLE_MAX_SIZE) {
                                erase_and_free(buf, allocated);
                                if (ret_error && asprintf(ret_error, "larger than %u bytes", PICKLE_MAX_SIZE) < 0)
                                        *ret_error = NULL;
                                return -EBADMSG;
                        }
                        b = malloc(m);
                        if (!b) {
                                erase_and_free(buf, allocated);
                                return -ENOMEM;
                        }
                        if (n)
                                memcpy(b, buf, n);
                        erase_and_free(buf, allocated);
                        buf = b;
                        allocated = m;
                }
                k = read(fd, buf + n, allocated - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        erase_and_free(buf, allocated);
                        return r;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        r = pickle_parse(buf, n, ret, ret_error);
        erase_and_free(buf, allocated);
        return r;
}

/* ---------------------------------------------------------------- access */

const PickleValue *pickle_dict_get(const PickleValue *dict, const char *key) {
        size_t len = strlen(key);

        if (!dict || dict->type != PICKLE_DICT)
                return NULL;
        for (size_t i = dict->seq.n; i >= 2; i -= 2) {
                const PickleValue *k = dict->seq.items[i - 2];
                if (k->type == PICKLE_STR && k->str.size == len && memcmp(k->str.data, key, len) == 0)
                        return dict->seq.items[i - 1];
        }
        return NULL;
}

bool pickle_is_cstr(const PickleValue *v) {
        return v && v->type == PICKLE_STR && strlen(v->str.data) == v->str.size;
}

/* Days from 1970-01-01 to y-m-d, proleptic Gregorian (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d) {
        int64_t era, yoe, doy, doe;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = y - era * 400;
        doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

int pickle_datetime_usec(const PickleValue *v, uint64_t *ret) {
        int64_t days, s;

        if (!v || v->type != PICKLE_DATETIME)
                return -EINVAL;
        days = days_from_civil(v->datetime.year, v->datetime.month, v->datetime.day);
        s = days * 86400 + v->datetime.hour * 3600 + v->datetime.minute * 60 + v->datetime.second;
        if (s < 0)
                return -ERANGE;
        *ret = (uint64_t) s * USEC_PER_SEC + (uint64_t) v->datetime.microsecond;
        return 0;
}

int pickle_timedelta_usec(const PickleValue *v, uint64_t *ret) {
        if (!v || v->type != PICKLE_TIMEDELTA)
                return -EINVAL;
        if (v->timedelta.days < 0)
                return -ERANGE;
        /* 999999999 days do not fit in 64 bits of µs. */
        if ((uint64_t) v->timedelta.days > UINT64_MAX / (86400 * USEC_PER_SEC) - 1)
                return -ERANGE;
        *ret = ((uint64_t) v->timedelta.days * 86400 + (uint64_t) v->timedelta.seconds) * USEC_PER_SEC +
               (uint64_t) v->timedelta.microseconds;
        return 0;
}
