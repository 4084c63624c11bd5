/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The restricted pickle reader (src/pickle.c): the reference's format, in
 * protocols 2 and 4 (pickles/ref*.pickle, written by Python's pickle from
 * the same values), plain values, and what it refuses. */

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "pickle.h"
#include "test.h"
#include "util.h"

static int parse_file(const char *path, Pickle **ret, char **ret_error) {
        int fd = open(path, O_RDONLY | O_CLOEXEC), r;

        if (fd < 0)
                return -errno;
        r = pickle_parse_fd(fd, ret, ret_error);
        close(fd);
        return r;
}

static uint8_t *read_file(const char *path, size_t *ret_size) {
        static uint8_t buf[4096];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return NULL;
        n = read(fd, buf, sizeof(buf));
        close(fd);
        if (n < 0)
                return NULL;
        *ret_size = (size_t) n;
        return buf;
}

static uint64_t usec_of(const PickleValue *d, const char *key, bool datetime) {
        uint64_t u = UINT64_MAX;
        const PickleValue *v = pickle_dict_get(d, key);
        int r = datetime ? pickle_datetime_usec(v, &u) : pickle_timedelta_usec(v, &u);
        return r < 0 ? UINT64_MAX : u;
}

/* What test/unit/pickles/ref{2,4}.pickle hold: the shape of the reference's
 * (clients, client_settings). */
static void check_reference(const char *path) {
        _cleanup_(pickle_freep) Pickle *p = NULL;
        _cleanup_free_ char *error = NULL;
        const PickleValue *root, *clients, *settings, *alpha, *v;

        check_int(parse_file(path, &p, &error), 0);
        if (!p) {
                fprintf(stderr, "%s: %s\n", path, strempty(error));
                return;
        }
        root = pickle_root(p);
        check_int(root->type, PICKLE_TUPLE);
        check_int(root->seq.n, 2);
        clients = root->seq.items[0];
        settings = root->seq.items[1];
        check_int(clients->type, PICKLE_DICT);
        check_int(settings->type, PICKLE_DICT);
        alpha = pickle_dict_get(clients, "alpha");
        check(alpha && alpha->type == PICKLE_DICT);
        check(pickle_is_cstr(pickle_dict_get(alpha, "host")));
        check_streq(pickle_dict_get(alpha, "host")->str.data, "alpha");
        check_streq(pickle_dict_get(alpha, "checker_command")->str.data, "fping -q -- %%(host)s");
        check_int(pickle_dict_get(alpha, "enabled")->type, PICKLE_BOOL);
        check(!pickle_dict_get(alpha, "enabled")->boolean);
        check_int(pickle_dict_get(alpha, "last_checker_status")->integer, 3);
        check_int(pickle_dict_get(alpha, "expires")->type, PICKLE_NONE);
        check_int(usec_of(alpha, "timeout", false), 7 * 3600 * USEC_PER_SEC);
        check_int(usec_of(alpha, "interval", false), 20 * 86400 * USEC_PER_SEC);
        check_int(usec_of(alpha, "approval_delay", false), 0);
        check_int(usec_of(alpha, "created", true), UINT64_C(1796065342568115));
        check_int(usec_of(alpha, "last_enabled", true), UINT64_C(1000005));
        v = pickle_dict_get(alpha, "encrypted_secret");
        check(v && v->type == PICKLE_BYTES && v->str.size == 8 && memcmp(v->str.data, "\x8c\x0d\x00\xff\x80" "abc", 8) == 0);
        v = pickle_dict_get(alpha, "client_structure");
        check(v && v->type == PICKLE_LIST && v->seq.n == 2);
        /* The removed client's plaintext secret, with a NUL and a byte above 127. */
        v = pickle_dict_get(pickle_dict_get(settings, "bravo"), "secret");
        check(v && v->type == PICKLE_BYTES && v->str.size == 13 && memcmp(v->str.data, "plain\0secret\xe9", 13) == 0);
        check_int(usec_of(pickle_dict_get(settings, "alpha"), "timeout", false), 300 * USEC_PER_SEC);
        check(!pickle_dict_get(settings, "charlie"));
}

static void test_reference_protocol_2(void) {
        check_reference("pickles/ref2.pickle");
}

static void test_reference_protocol_4(void) {
        check_reference("pickles/ref4.pickle");
}

static void test_plain_values(void) {
        _cleanup_(pickle_freep) Pickle *p = NULL;
        _cleanup_free_ char *error = NULL;
        const PickleValue *l;

        check_int(parse_file("pickles/misc4.pickle", &p, &error), 0);
        if (!p)
                return;
        l = pickle_root(p);
        check_int(l->type, PICKLE_LIST);
        check_int(l->seq.n, 12);
        if (l->seq.n != 12)
                return;
        check(l->seq.items[0]->type == PICKLE_FLOAT && l->seq.items[0]->real == 1.5);
        check_int(l->seq.items[1]->integer, -1);
        check_int(l->seq.items[2]->integer, -70000);
        check_int(l->seq.items[3]->integer, INT64_C(1) << 40);
        check_int(l->seq.items[4]->integer, -(INT64_C(1) << 40));
        check(l->seq.items[5]->type == PICKLE_BOOL && l->seq.items[5]->boolean);
        check_int(l->seq.items[6]->type, PICKLE_NONE);
        check(l->seq.items[7]->type == PICKLE_TUPLE && l->seq.items[7]->seq.n == 0);
        check(l->seq.items[8]->type == PICKLE_TUPLE && l->seq.items[8]->seq.n == 1);
        check(l->seq.items[9]->type == PICKLE_BYTES && l->seq.items[9]->str.size == 300);
        check(l->seq.items[10]->type == PICKLE_STR && l->seq.items[10]->str.size == 400);
        check(l->seq.items[11]->type == PICKLE_DICT && l->seq.items[11]->seq.n == 2);
}

/* Every proper prefix of a good pickle is "truncated at byte <its length>". */
static void test_truncated(void) {
        size_t size = 0;
        const uint8_t *data = read_file("pickles/ref2.pickle", &size);

        check(data && size > 100);
        for (size_t n = 0; data && n < size; n++) {
                _cleanup_(pickle_freep) Pickle *p = NULL;
                _cleanup_free_ char *error = NULL, *want = NULL;
                check_int(pickle_parse(data, n, &p, &error), -EBADMSG);
                check(asprintf(&want, "truncated at byte %zu", n) > 0);
                check_streq(error, want);
        }
}

static void test_refused(void) {
        static const struct {
                const char *data;
                size_t size;
                const char *error;
        } cases[] = {
#define C(s, e) { s, sizeof(s) - 1, e }
                C("\x80\x02" "cos\nsystem\nX\x01\x00\x00\x00" "a\x85R.", "global os.system refused at byte 2 (GLOBAL)"),
                C("\x80\x04\x8c\x05posix\x8c\x06system\x93.", "global posix.system refused at byte 17 (STACK_GLOBAL)"),
                C("\x80\x02" "c__builtin__\neval\n.", "global __builtin__.eval refused at byte 2 (GLOBAL)"),
                C("\x80\x02" "cdatetime\ntimezone\n.", "global datetime.timezone refused at byte 2 (GLOBAL)"),
                C("\x80\x02N}b.", "opcode BUILD (0x62) refused at byte 4"),
                C("\x80\x02(iposix\nsystem\n.", "opcode INST (0x69) refused at byte 3"),
                C("\x80\x02(o.", "opcode OBJ (0x6f) refused at byte 3"),
                C("\x80\x02N)\x81.", "opcode NEWOBJ (0x81) refused at byte 4"),
                C("Pfoo\n.", "opcode PERSID (0x50) refused at byte 0"),
                C("\x80\x02\x82\x01.", "opcode EXT1 (0x82) refused at byte 2"),
                C("S'a'\n.", "opcode STRING (0x53) refused at byte 0"),
                C("\x80\x02\xff.", "unknown opcode 0xff at byte 2"),
                C("\x80\x06N.", "pickle protocol 6 at byte 0"),
                C("\x80\x02" "cdatetime\ndatetime\nX\x01\x00\x00\x00" "a\x85R.",
                  "datetime.datetime called with other arguments than a naive datetime's at byte 28"),
                C("\x80\x02" "cdatetime\ntimedelta\nK\x00J\x80Q\x01\x00K\x00\x87R.", "timedelta out of range at byte 32"),
                C("\x80\x02" "c_codecs\nencode\nX\x01\x00\x00\x00" "aX\x05\x00\x00\x00utf-8\x86R.",
                  "_codecs.encode to an encoding other than latin1 at byte 35"),
                C("\x80\x02" "c_codecs\nencode\nX\x02\x00\x00\x00\xc4\x80X\x06\x00\x00\x00latin1\x86R.",
                  "_codecs.encode of a str that is not latin1 at byte 37"),
                C("\x80\x02N)R.", "REDUCE of a None with a tuple at byte 4"),
                C("\x80\x02]q\x00h\x00" "a.", "a list is put inside itself at byte 7"),
                C("\x80\x02]q\x00](h\x00h\x00" "e.", "a list is put in two containers at byte 11"),
                C("\x80\x02h\x05.", "memo index 5 not set at byte 2"),
                C("\x80\x02Nr\x00\x00\x00\x10.", "memo index 268435456 out of bounds at byte 3"),
                C("\x80\x02.", "STOP with 0 values and 0 marks on the stack at byte 2"),
                C("\x80\x02NN.", "STOP with 2 values and 0 marks on the stack at byte 4"),
                C("\x80\x02X\x01\x00\x00\x00\xff.", "a str that is not UTF-8 at byte 2"),
                C("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.",
                  "an integer of 9 bytes (more than 64 bits) at byte 2"),
                C("\x80\x02}]]s.", "a list as a dict key at byte 5"),
                C("\x80\x02(}Nd.", "a dict as a dict key at byte 5"),
                C("\x80\x02Na.", "APPEND with no list below its items at byte 3"),
                C("\x80\x02" "e.", "APPENDS without a MARK at byte 2"),
#undef C
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(pickle_freep) Pickle *p = NULL;
                _cleanup_free_ char *error = NULL;
                check_int(pickle_parse((const uint8_t *) cases[i].data, cases[i].size, &p, &error), -EBADMSG);
                check(!p);
                check_streq(error, cases[i].error);
        }
}

/* Nesting is bounded as values are put together, whatever the order. */
static void test_depth(void) {
        uint8_t buf[2 + 2 * (PICKLE_MAX_DEPTH + 1) + 1];
        size_t n = 0;

        for (unsigned depth = PICKLE_MAX_DEPTH; depth <= PICKLE_MAX_DEPTH + 1; depth++) {
                _cleanup_(pickle_freep) Pickle *p = NULL;
                _cleanup_free_ char *error = NULL;
                n = 0;
                buf[n++] = 0x80;
                buf[n++] = 2;
                /* depth lists, each appended to the one below it. */
                for (unsigned i = 0; i < depth; i++)
                        buf[n++] = ']';
                for (unsigned i = 1; i < depth; i++)
                        buf[n++] = 'a';
                buf[n++] = '.';
                if (depth == PICKLE_MAX_DEPTH)
                        check_int(pickle_parse(buf, n, &p, &error), 0);
                else {
                        check_int(pickle_parse(buf, n, &p, &error), -EBADMSG);
                        check(error && strstr(error, "nested deeper than"));
                }
        }
}

int main(void) {
        static const TestCase tests[] = {
                TEST(test_reference_protocol_2),
                TEST(test_reference_protocol_4),
                TEST(test_plain_values),
                TEST(test_truncated),
                TEST(test_refused),
                TEST(test_depth),
        };
        return test_run_all(tests, ELEMENTSOF(tests));
}
