/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The small shared helpers: hex text (src/hex.h), the address a socket
 * is bound to (src/socket-util.h), on loopback sockets, and the hash
 * tables keyed by their values (src/hashmap.h), slabs (src/slab.h). */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

#include "hashmap.h"
#include "slab.h"
#include "util.h"
#include "hex.h"
#include "list.h"
#include "socket-util.h"
#include "thread-util.h"
#include "test.h"

static void test_hex_lower_and_upper(void) {
        static const unsigned char bytes[] = { 0x00, 0x0f, 0xa5, 0xff };
        char buf[2 * sizeof(bytes) + 1 + 3], *end;
        char *s = hexmem(bytes, sizeof(bytes));

        check_streq(s, "000fa5ff");
        free(s);
        end = hex_encode(buf, bytes, sizeof(bytes), true);
        check_streq(buf, "000FA5FF");
        check(end == buf + 8 && *end == 0);
        /* Text may follow, as after stpcpy(). */
        check(hex_encode(buf, bytes, 0, false) == buf && buf[0] == 0);
        check(hexchar(0x1a, false) == 'a' && hexchar(0x1a, true) == 'A');
}

static void test_hex_decode_exact(void) {
        unsigned char out[4];

        check(hex_decode("000fA5ff", out, sizeof(out)) == 0);
        check(out[0] == 0x00 && out[1] == 0x0f && out[2] == 0xa5 && out[3] == 0xff);
        check(hex_decode("", out, 0) == 0);
        /* Too short, too long, not digits, a sign or a space as sscanf takes them. */
        check(hex_decode("000fa5", out, sizeof(out)) == -EINVAL);
        check(hex_decode("000fa5ff0", out, sizeof(out)) == -EINVAL);
        check(hex_decode("000fa5fg", out, sizeof(out)) == -EINVAL);
        check(hex_decode("+f0fa5ff", out, sizeof(out)) == -EINVAL);
        check(hex_decode(" f0fa5ff", out, sizeof(out)) == -EINVAL);
        check(unhexchar('F') == 15 && unhexchar('/') == -EINVAL && unhexchar(':') == -EINVAL);
}

static int bound_socket(int family, const void *sa, socklen_t len) {
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd >= 0 && bind(fd, sa, len) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static void test_bound_address_ipv4_and_ipv6(void) {
        struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        SocketAddress a;
        int fd;

        fd = bound_socket(AF_INET, &in, sizeof(in));
        check(fd >= 0);
        check_int(socket_bound_address(fd, &a), 0);
        check_streq(a.host, "127.0.0.1");
        check(a.port > 0); /* the kernel's pick for port 0 */
        check_int(a.sockaddr.sa.sa_family, AF_INET);
        close(fd);

        fd = bound_socket(AF_INET6, &in6, sizeof(in6));
        if (fd < 0)
                return; /* no IPv6 here */
        check_int(socket_bound_address(fd, &a), 0);
        check_streq(a.host, "::1");
        check(a.port > 0);
        close(fd);
}

static void test_bound_address_refuses_other_sockets(void) {
        SocketAddress a;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        check(fd >= 0);
        check_int(socket_bound_address(fd, &a), -EAFNOSUPPORT);
        close(fd);
        check_int(socket_bound_address(-1, &a), -EBADF);
}

typedef struct Item Item;
struct Item {
        int value;
        LIST_FIELDS(Item, items);
};

static void test_list_prepend_remove_foreach(void) {
        Item a = { .value = 1 }, b = { .value = 2 }, c = { .value = 3 };
        LIST_HEAD(Item, head) = NULL;
        int sum = 0, order = 0;

        check(LIST_IS_EMPTY(head));
        LIST_PREPEND(items, head, &a);
        LIST_PREPEND(items, head, &b);
        LIST_PREPEND(items, head, &c);
        LIST_FOREACH(items, i, head)
                order = order * 10 + i->value;
        check_int(order, 321);
        /* The middle, then the head, then the last; removal inside the loop. */
        LIST_REMOVE(items, head, &b);
        check(head == &c && c.items_next == &a && a.items_prev == &c);
        check(!b.items_next && !b.items_prev);
        LIST_REMOVE(items, head, &c);
        check(head == &a && !a.items_prev);
        LIST_FOREACH(items, i, head) {
                sum += i->value;
                LIST_REMOVE(items, head, i);
        }
        check_int(sum, 1);
        check(LIST_IS_EMPTY(head));
}

/* A FIFO: a tail pointer beside the head, appending after it. */
static void test_list_insert_after_as_fifo(void) {
        Item a = { .value = 1 }, b = { .value = 2 }, c = { .value = 3 }, d = { .value = 4 };
        LIST_HEAD(Item, head) = NULL;
        Item *tail = NULL;
        int order = 0;

        LIST_INSERT_AFTER(items, head, tail, &a); /* after nothing: the head */
        tail = &a;
        LIST_INSERT_AFTER(items, head, tail, &b);
        tail = &b;
        LIST_INSERT_AFTER(items, head, tail, &c);
        tail = &c;
        LIST_INSERT_AFTER(items, head, &a, &d); /* in the middle */
        LIST_FOREACH(items, i, head)
                order = order * 10 + i->value;
        check_int(order, 1423);
        check(head == &a && !a.items_prev && d.items_prev == &a && b.items_prev == &d);
        check(!c.items_next && c.items_prev == &b);
}

static void *report_mask(void *userdata) {
        sigset_t *mask = userdata;

        (void) pthread_sigmask(SIG_SETMASK, NULL, mask);
        return NULL;
}

/* Enough entries to grow, and removals that shift probe chains back:
 * every key is still found, the removed ones no more. */
typedef struct KeyedItem {
        int n;
        char *key;
} KeyedItem;

static void test_hashmap_keyed_by_values(void) {
        Hashmap *h = hashmap_new_keyed(offsetof(KeyedItem, key));
        KeyedItem items[300];

        check(h != NULL);
        if (!h)
                return;
        for (int i = 0; i < 300; i++) {
                items[i].n = i;
                check(asprintf(&items[i].key, "/clients/c%d", i) > 0);
                check_int(hashmap_put(h, items[i].key, &items[i]), 0);
        }
        check_int(hashmap_put(h, items[7].key, &items[7]), -EEXIST);
        check_int(hashmap_size(h), 300);
        for (int i = 0; i < 300; i += 3)
                check(hashmap_remove(h, items[i].key) == &items[i]);
        check(hashmap_remove(h, "/clients/nosuch") == NULL);
        check_int(hashmap_size(h), 200);
        for (int i = 0; i < 300; i++)
                check(hashmap_get(h, items[i].key) == (i % 3 ? &items[i] : NULL));
        hashmap_free(h);
        for (int i = 0; i < 300; i++)
                free(items[i].key);
}

/* The same with keys computed from the values into one reused buffer (as
 * the bus's table of D-Bus paths from client names): growing, probing
 * and the backward shift never compare two computed keys. */
static char computed[64];

static const char *item_path(const void *value) {
        /* A negative number stands for a value whose key cannot be computed. */
        if (((const KeyedItem *) value)->n < 0)
                return NULL;
        snprintf(computed, sizeof(computed), "/clients/c%d", ((const KeyedItem *) value)->n);
        return computed;
}

static void test_hashmap_computed_keys(void) {
        Hashmap *h = hashmap_new_computed(item_path);
        KeyedItem items[300];
        char key[64];

        check(h != NULL);
        if (!h)
                return;
        for (int i = 0; i < 300; i++) {
                items[i] = (KeyedItem) { .n = i };
                snprintf(key, sizeof(key), "/clients/c%d", i);
                check_int(hashmap_put(h, key, &items[i]), 0);
        }
        check_int(hashmap_put(h, "/clients/c7", &items[7]), -EEXIST);
        /* A value whose key cannot be computed is refused, not stored where
         * no lookup would find it again. */
        KeyedItem keyless = { .n = -1 };
        check_int(hashmap_put(h, "/clients/keyless", &keyless), -ENOMEM);
        check(hashmap_get(h, "/clients/keyless") == NULL);
        check_int(hashmap_size(h), 300);
        for (int i = 0; i < 300; i += 3) {
                snprintf(key, sizeof(key), "/clients/c%d", i);
                check(hashmap_remove(h, key) == &items[i]);
        }
        check(hashmap_remove(h, "/clients/nosuch") == NULL);
        check_int(hashmap_size(h), 200);
        for (int i = 0; i < 300; i++) {
                snprintf(key, sizeof(key), "/clients/c%d", i);
                check(hashmap_get(h, key) == (i % 3 ? &items[i] : NULL));
        }
        hashmap_free(h);
}

/* Objects of one size (src/slab.h): zeroed, 8-aligned, distinct; a freed
 * slot is the next one given; many fill several pages. */
static void test_slab_reuses_slots(void) {
        Slab s = SLAB_INIT(44);
        uint8_t *a = slab_alloc(&s), *b = slab_alloc(&s), *c;
        uint8_t *many[5000];

        check_int(s.size, 48);
        check(a && b && a != b);
        check_int((uintptr_t) a % 8, 0);
        for (size_t i = 0; i < s.size; i++)
                check_int(a[i], 0);
        memset(a, 0xAA, s.size);
        slab_free(&s, a);
        c = slab_alloc(&s);
        check(c == a);
        for (size_t i = 0; i < s.size; i++)
                check_int(c[i], 0); /* zeroed again */
        for (size_t i = 0; i < ELEMENTSOF(many); i++) {
                many[i] = slab_alloc(&s);
                check(many[i] != NULL);
                memset(many[i], (int) i, s.size);
        }
        for (size_t i = 0; i < ELEMENTSOF(many); i++)
                check_int(many[i][s.size - 1], (uint8_t) i);
        for (size_t i = 0; i < ELEMENTSOF(many); i++)
                slab_free(&s, many[i]);
        slab_free(&s, b);
        slab_free(&s, c);
        /* Pages stay (linked from s.pages) for the next ones. */
        check(s.pages != NULL && *(void **) s.pages != NULL);
        slab_done(&s);
        check(s.pages == NULL && s.free == NULL);
}

static void test_thread_start_blocks_signals_in_the_thread_only(void) {
        sigset_t inside, before, after;
        pthread_t t;

        (void) sigemptyset(&inside);
        (void) pthread_sigmask(SIG_SETMASK, NULL, &before);
        check(!sigismember(&before, SIGTERM));
        check_int(thread_start(&t, report_mask, &inside), 0);
        check_int(pthread_join(t, NULL), 0);
        check(sigismember(&inside, SIGTERM) && sigismember(&inside, SIGCHLD) && sigismember(&inside, SIGHUP));
        (void) pthread_sigmask(SIG_SETMASK, NULL, &after);
        check(!sigismember(&after, SIGTERM));
}

TEST_MAIN(TEST(test_thread_start_blocks_signals_in_the_thread_only),
          TEST(test_hashmap_keyed_by_values),
          TEST(test_hashmap_computed_keys),
          TEST(test_slab_reuses_slots),
          TEST(test_list_prepend_remove_foreach),
          TEST(test_list_insert_after_as_fifo),
          TEST(test_hex_lower_and_upper),
          TEST(test_hex_decode_exact),
          TEST(test_bound_address_ipv4_and_ipv6),
          TEST(test_bound_address_refuses_other_sockets))
