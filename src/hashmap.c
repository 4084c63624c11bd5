/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "hashmap.h"

#include <assert.h>
#include <stdint.h>

#include "util.h"

/* Each bucket is a key and a value, or (keyed by its values) a value
 * alone whose key is the char * at key_offset in it: half the memory,
 * for the tables of clients. NULL: empty. */
struct Hashmap {
        void **slots;
        size_t n_buckets;     /* a power of two */
        size_t n_entries;
        size_t width;         /* pointers a bucket: 2, or 1 when keyed */
        size_t key_offset;
        hashmap_key_fn key_fn; /* keyed by what it computes, not by key_offset */
};

static uint64_t hash_string(const char *s) {
        uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * UINT64_C(1099511628211);
        return h;
}

static Hashmap *new_map(size_t width, size_t key_offset) {
        Hashmap *h = calloc(1, sizeof(Hashmap));
        if (!h)
                return NULL;
        *h = (Hashmap) { .n_buckets = 16, .width = width, .key_offset = key_offset };
        h->slots = calloc(h->n_buckets * width, sizeof(void *));
        if (!h->slots) {
                free(h);
                return NULL;
        }
        return h;
}

Hashmap *hashmap_new(void) {
        return new_map(2, 0);
}

Hashmap *hashmap_new_keyed(size_t key_offset) {
        return new_map(1, key_offset);
}

Hashmap *hashmap_new_computed(hashmap_key_fn key) {
        Hashmap *h = new_map(1, 0);

        if (h)
                h->key_fn = key;
        return h;
}

Hashmap *hashmap_free(Hashmap *h) {
        if (h) {
                free(h->slots);
                free(h);
        }
        return NULL;
}

static const char *key_at(const Hashmap *h, size_t i) {
        void **b = h->slots + i * h->width;
        if (h->width == 2)
                return b[0];
        if (!b[0])
                return NULL;
        if (h->key_fn)
                return h->key_fn(b[0]);
        return *(const char *const *) ((const uint8_t *) b[0] + h->key_offset);
}

static void *value_at(const Hashmap *h, size_t i) {
        return h->slots[i * h->width + h->width - 1];
}

static void set_at(Hashmap *h, size_t i, const char *key, void *value) {
        void **b = h->slots + i * h->width;
        if (h->width == 2)
                b[0] = (void *) key;
        b[h->width - 1] = value;
}

/* key's bucket, or the empty one where it would go. */
static size_t find(const Hashmap *h, const char *key) {
        size_t mask = h->n_buckets - 1;
        for (size_t i = hash_string(key) & mask;; i = (i + 1) & mask) {
                const char *k = key_at(h, i);
                if (!k || streq(k, key))
                        return i;
        }
}

static int grow(Hashmap *h) {
        Hashmap bigger = *h;

        bigger.n_buckets = h->n_buckets * 2;
        bigger.slots = calloc(bigger.n_buckets * h->width, sizeof(void *));
        if (!bigger.slots)
                return -ENOMEM;
        /* The keys are distinct: each goes to the first empty bucket from
         * its hash, without comparing keys (a computed key would be
         * overwritten by the next one computed). */
        for (size_t i = 0; i < h->n_buckets; i++) {
                const char *k = key_at(h, i);
                if (!k)
                        continue;
                size_t mask = bigger.n_buckets - 1, j = hash_string(k) & mask;
                while (bigger.slots[j * bigger.width])
                        j = (j + 1) & mask;
                set_at(&bigger, j, k, value_at(h, i));
        }
        free(h->slots);
        h->slots = bigger.slots;
        h->n_buckets = bigger.n_buckets;
        return 0;
}

int hashmap_put(Hashmap *h, const char *key, void *value) {
        size_t i;

        /* Keyed: the key is the value's own. */
        assert(h->width == 2 || h->key_fn ||
               (value && *(const char *const *) ((const uint8_t *) value + h->key_offset) == key));
        /* Its key computed once now: every later computation of it succeeds. */
        if (h->key_fn && !h->key_fn(value))
                return -ENOMEM;
        /* Keep the load factor at or below one half. */
        if ((h->n_entries + 1) * 2 > h->n_buckets && grow(h) < 0)
                return -ENOMEM;
        i = find(h, key);
        if (key_at(h, i))
                return -EEXIST;
        set_at(h, i, key, value);
        h->n_entries++;
        return 0;
}

void *hashmap_get(const Hashmap *h, const char *key) {
        size_t i = find(h, key);
        return key_at(h, i) ? value_at(h, i) : NULL;
}

void *hashmap_remove(Hashmap *h, const char *key) {
        size_t mask = h->n_buckets - 1, hole = find(h, key);
        void *value;

        if (!key_at(h, hole))
                return NULL;
        value = value_at(h, hole);
        /* Backward-shift deletion keeps probe chains intact without tombstones. */
        for (size_t i = (hole + 1) & mask; key_at(h, i); i = (i + 1) & mask) {
                size_t home = hash_string(key_at(h, i)) & mask;
                if (((i - home) & mask) >= ((i - hole) & mask)) {
                        set_at(h, hole, key_at(h, i), value_at(h, i));
                        hole = i;
                }
        }
        set_at(h, hole, NULL, NULL);
        h->n_entries--;
        return value;
}

size_t hashmap_size(const Hashmap *h) {
        return h->n_entries;
}
