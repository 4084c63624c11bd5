/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "hashmap.h"

#include <stdint.h>

#include "util.h"

typedef struct Entry {
        const char *key;      /* NULL: empty */
        void *value;
} Entry;

struct Hashmap {
        Entry *entries;
        size_t n_buckets;     /* a power of two */
        size_t n_entries;
};

static uint64_t hash_string(const char *s) {
        uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
        for (; *s; s++)
                h = (h ^ (unsigned char) *s) * UINT64_C(1099511628211);
        return h;
}

Hashmap *hashmap_new(void) {
        Hashmap *h = calloc(1, sizeof(Hashmap));
        if (!h)
                return NULL;
        h->n_buckets = 16;
        h->entries = calloc(h->n_buckets, sizeof(Entry));
        if (!h->entries) {
                free(h);
                return NULL;
        }
        return h;
}

Hashmap *hashmap_free(Hashmap *h) {
        if (h) {
                free(h->entries);
                free(h);
        }
        return NULL;
}

static Entry *find(const Hashmap *h, const char *key) {
        size_t mask = h->n_buckets - 1;
        for (size_t i = hash_string(key) & mask;; i = (i + 1) & mask) {
                Entry *e = &h->entries[i];
                if (!e->key || streq(e->key, key))
                        return e;
        }
}

static int grow(Hashmap *h) {
        Hashmap bigger = { .n_buckets = h->n_buckets * 2 };

        bigger.entries = calloc(bigger.n_buckets, sizeof(Entry));
        if (!bigger.entries)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_buckets; i++)
                if (h->entries[i].key)
                        *find(&bigger, h->entries[i].key) = h->entries[i];
        free(h->entries);
        h->entries = bigger.entries;
        h->n_buckets = bigger.n_buckets;
        return 0;
}

int hashmap_put(Hashmap *h, const char *key, void *value) {
        Entry *e;

        /* Keep the load factor at or below one half. */
        if ((h->n_entries + 1) * 2 > h->n_buckets && grow(h) < 0)
                return -ENOMEM;
        e = find(h, key);
        if (e->key)
                return -EEXIST;
        *e = (Entry) { key, value };
        h->n_entries++;
        return 0;
}

void *hashmap_get(const Hashmap *h, const char *key) {
        return find(h, key)->value;
}

void *hashmap_remove(Hashmap *h, const char *key) {
        size_t mask = h->n_buckets - 1;
        Entry *e = find(h, key);
        void *value = e->value;

        if (!e->key)
                return NULL;
        /* Backward-shift deletion keeps probe chains intact without tombstones. */
        size_t hole = (size_t) (e - h->entries);
        for (size_t i = (hole + 1) & mask; h->entries[i].key; i = (i + 1) & mask) {
                size_t home = hash_string(h->entries[i].key) & mask;
                if (((i - home) & mask) >= ((i - hole) & mask)) {
                        h->entries[hole] = h->entries[i];
                        hole = i;
                }
        }
        h->entries[hole] = (Entry) {};
        h->n_entries--;
        return value;
}

size_t hashmap_size(const Hashmap *h) {
        return h->n_entries;
}
