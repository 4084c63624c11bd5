/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* A string-keyed hash map of pointers (open addressing, linear probing).
 * Keys are borrowed: they must live as long as their entry. */

#include <stddef.h>

typedef struct Hashmap Hashmap;

Hashmap *hashmap_new(void);
/* A map of values that hold their own key, the char * at key_offset in
 * each (put's key must be that one): a bucket is one pointer, not two. */
Hashmap *hashmap_new_keyed(size_t key_offset);
/* A map of values whose key key() computes (a D-Bus path from a client's
 * name): one pointer a bucket, no key stored anywhere. key() may return
 * a buffer it reuses; the key given to put, get and remove must not be
 * that buffer. key() may fail (NULL) only the first time for a value
 * (growing its buffer): put computes the new value's key once and fails
 * with -ENOMEM if it cannot, so a stored value's key is always found. */
typedef const char *(*hashmap_key_fn)(const void *value);
Hashmap *hashmap_new_computed(hashmap_key_fn key);
Hashmap *hashmap_free(Hashmap *h);

/* Returns 0, -EEXIST if key is present (the old value stays), or -ENOMEM. */
int hashmap_put(Hashmap *h, const char *key, void *value);
void *hashmap_get(const Hashmap *h, const char *key);
/* Returns the removed value, or NULL. */
void *hashmap_remove(Hashmap *h, const char *key);
size_t hashmap_size(const Hashmap *h);
