/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One copy of a string many clients hold (src/shared-str.h): "" is always
 * shared; a value read twice in a row becomes shared; copies of a shared
 * string are the string itself and freeing one leaves it (ASan would see
 * a double or bad free); other strings stay their owner's; the registry
 * stops at SHARED_STR_MAX. */
#include <stdint.h>
#include <stdio.h>

#include "shared-str.h"
#include "test.h"
#include "util.h"

static void test_empty_is_shared(void) {
        char *a = shared_str_dup(""), *b = shared_str_dup("");

        check(a == b);
        check(shared_str_is(a));
        check(shared_str_take(strdup("")) == a);
        shared_str_free(a);
        shared_str_free(b);
        check_streq(shared_str_dup(""), "");
}

static void test_twice_in_a_row_is_registered(void) {
        char *last = NULL, *first, *second, *third, *copy, *other;

        first = shared_str_read(strdup("fping -q -- %(host)s"), &last);
        check(!shared_str_is(first));
        check(last != first);           /* the reader's copy, not the client's string */
        second = shared_str_read(strdup("fping -q -- %(host)s"), &last);
        check(shared_str_is(second));
        check(second != first);         /* the first client keeps its own */
        check_streq(second, first);
        third = shared_str_read(strdup("fping -q -- %(host)s"), &last);
        check(third == second);
        /* Anyone's equal copy now finds it. */
        check(shared_str_take(strdup("fping -q -- %(host)s")) == second);
        copy = shared_str_dup(second);
        check(copy == second);
        shared_str_free(copy);
        shared_str_free(third);
        check_streq(second, "fping -q -- %(host)s");
        /* A different value in between: not shared. */
        other = shared_str_read(strdup("true"), &last);
        check(!shared_str_is(other));
        copy = shared_str_dup(other);
        check(copy != other);
        check_streq(copy, "true");
        shared_str_free(copy);
        shared_str_free(other);
        shared_str_free(first);
        shared_str_free(last);
}

static void test_registry_is_bounded(void) {
        char *last = NULL, buf[32];
        unsigned shared = 0;
        bool final_shared = true;

        /* Each value twice in a row: all are registered until the table is full. */
        for (unsigned i = 0; i < 2 * SHARED_STR_MAX; i++) {
                snprintf(buf, sizeof(buf), "value %u", i);
                shared_str_free(shared_str_read(strdup(buf), &last));
                char *s = shared_str_read(strdup(buf), &last);
                check(s != NULL);
                check_streq(s, buf);
                final_shared = shared_str_is(s);
                shared += final_shared;
                shared_str_free(s);
        }
        /* "" and the earlier tests' take some of the places. */
        check(shared > SHARED_STR_MAX / 2);
        check(shared < SHARED_STR_MAX);
        /* Full: the later repeated values stay unshared, and correct. */
        check(!final_shared);
        shared_str_free(last);
}

/* Small strings take slots of a multiple of 8 bytes: a freed one goes to
 * the next string of its size class, not of another; long ones are
 * malloc()'s (ASan checks each is freed the way it was made). */
static void test_small_slots_are_reused(void) {
        char long_one[SHARED_STR_SMALL + 10];
        char *a = shared_str_dup("c00001"), *b = shared_str_dup("c00002"), *k, *l, *m;

        check(a != b);
        check_int((uintptr_t) a % 8, 0);
        check_int((uintptr_t) b % 8, 0);
        shared_str_free(a);
        k = shared_str_dup("A4F03EFD8543E4242EE4DFF312ED15380946911C47BFB258BBC12593A3A38641");
        check(k != a);                     /* 65 bytes: another class */
        m = shared_str_dup("c7");          /* 3 bytes: the same class as "c00001" (8) */
        check(m == a);
        check_streq(b, "c00002");
        memset(long_one, 'x', sizeof(long_one) - 1);
        long_one[sizeof(long_one) - 1] = 0;
        l = shared_str_dup(long_one);
        check_streq(l, long_one);
        shared_str_free(l);
        shared_str_free(k);
        shared_str_free(m);
        shared_str_free(b);
        /* Many, freed and made again: the same slots. */
        char *v[1000];
        for (unsigned i = 0; i < ELEMENTSOF(v); i++) {
                char buf[32];
                snprintf(buf, sizeof(buf), "host-%04u.example", i);
                v[i] = shared_str_dup(buf);
                check_streq(v[i], buf);
        }
        for (unsigned i = 0; i < ELEMENTSOF(v); i++)
                shared_str_free(v[i]);
        char *again = shared_str_dup("host-9999.example");
        check(again == v[ELEMENTSOF(v) - 1]); /* the last freed first */
        shared_str_free(again);
}

TEST_MAIN(TEST(test_empty_is_shared),
          TEST(test_small_slots_are_reused),
          TEST(test_twice_in_a_row_is_registered),
          TEST(test_registry_is_bounded))
