/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Intrusive doubly-linked lists, after systemd's src/basic/list.h: an item
 * holds LIST_FIELDS(Type, name), the owner a LIST_HEAD(Type, name); adding
 * and removing are O(1) and need no allocation. */

#include <assert.h>
#include <stddef.h>

#define LIST_HEAD(t, name) t *name

#define LIST_FIELDS(t, name) t *name##_next, *name##_prev

#define LIST_PREPEND(name, head, item)                                  \
        do {                                                            \
                __typeof__(*(head)) **_head = &(head), *_item = (item); \
                assert(_item);                                          \
                if ((_item->name##_next = *_head))                      \
                        _item->name##_next->name##_prev = _item;        \
                _item->name##_prev = NULL;                              \
                *_head = _item;                                         \
        } while (0)

#define LIST_REMOVE(name, head, item)                                   \
        do {                                                            \
                __typeof__(*(head)) **_head = &(head), *_item = (item); \
                assert(_item);                                          \
                if (_item->name##_next)                                 \
                        _item->name##_next->name##_prev = _item->name##_prev; \
                if (_item->name##_prev)                                 \
                        _item->name##_prev->name##_next = _item->name##_next; \
                else {                                                  \
                        assert(*_head == _item);                        \
                        *_head = _item->name##_next;                    \
                }                                                       \
                _item->name##_next = _item->name##_prev = NULL;         \
        } while (0)

/* Put item after after, or at the head when after is NULL: with a tail
 * pointer kept beside the head, appending to a FIFO is O(1). */
#define LIST_INSERT_AFTER(name, head, after, item)                              \
        do {                                                                    \
                __typeof__(*(head)) **_ia_head = &(head), *_ia_after = (after),   \
                                    *_ia_item = (item);                         \
                assert(_ia_item);                                               \
                if (!_ia_after) {                                               \
                        LIST_PREPEND(name, *_ia_head, _ia_item);                \
                        break;                                                  \
                }                                                               \
                if ((_ia_item->name##_next = _ia_after->name##_next))           \
                        _ia_item->name##_next->name##_prev = _ia_item;          \
                _ia_item->name##_prev = _ia_after;                              \
                _ia_after->name##_next = _ia_item;                              \
        } while (0)

/* i may be removed (and freed) in the body. */
#define LIST_FOREACH(name, i, head)                                                     \
        for (__typeof__(*(head)) *i = (head), *_next_##i = i ? i->name##_next : NULL; i; \
             i = _next_##i, _next_##i = i ? i->name##_next : NULL)

#define LIST_IS_EMPTY(head) (!(head))
