/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "timer-heap.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

/* Deadlines are copied into the entries: sifting compares without a
 * pointer chase into the owners. */
typedef struct Entry {
        uint64_t when;
        HeapTimer *timer;
} Entry;

struct TimerHeap {
        Entry *entries;
        size_t n, size;
        heap_timer_handler_t handlers[TIMER_HEAP_HANDLERS_MAX];
        unsigned n_handlers;
        sd_event_source *source;   /* CLOCK_BOOTTIME, at entries[0].when */
};

/* Timers due at once are run this many per loop iteration, so that
 * connections and other events keep their turn. */
#define TIMER_HEAP_BATCH 256

static void place(TimerHeap *h, size_t i, Entry e) {
        h->entries[i] = e;
        e.timer->index = (uint32_t) (i + 1);
}

static void sift_up(TimerHeap *h, size_t i) {
        Entry e = h->entries[i];

        while (i > 0) {
                size_t parent = (i - 1) / 2;
                if (h->entries[parent].when <= e.when)
                        break;
                place(h, i, h->entries[parent]);
                i = parent;
        }
        place(h, i, e);
}

static void sift_down(TimerHeap *h, size_t i) {
        Entry e = h->entries[i];

        for (;;) {
                size_t child = 2 * i + 1;
                if (child >= h->n)
                        break;
                if (child + 1 < h->n && h->entries[child + 1].when < h->entries[child].when)
                        child++;
                if (e.when <= h->entries[child].when)
                        break;
                place(h, i, h->entries[child]);
                i = child;
        }
        place(h, i, e);
}

static void remove_at(TimerHeap *h, size_t i) {
        h->entries[i].timer->index = 0;
        h->n--;
        if (i == h->n)
                return;
        h->entries[i] = h->entries[h->n];
        if (i > 0 && h->entries[i].when < h->entries[(i - 1) / 2].when)
                sift_up(h, i);
        else
                sift_down(h, i);
}

static void rearm_source(TimerHeap *h) {
        if (h->n == 0) {
                (void) sd_event_source_set_enabled(h->source, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(h->source, h->entries[0].when);
        (void) sd_event_source_set_enabled(h->source, SD_EVENT_ON);
}

static int on_due(sd_event_source *s, uint64_t usec, void *userdata) {
        TimerHeap *h = userdata;
        uint64_t now;

        assert(h);

        if (sd_event_now(sd_event_source_get_event(s), CLOCK_BOOTTIME, &now) < 0)
                now = usec;
        for (unsigned i = 0; i < TIMER_HEAP_BATCH && h->n > 0 && h->entries[0].when <= now; i++) {
                HeapTimer *t = h->entries[0].timer;
                remove_at(h, 0);
                h->handlers[t->handler](t);
        }
        rearm_source(h);
        return 0;
}

int timer_heap_new(sd_event *event, TimerHeap **ret) {
        TimerHeap *h = calloc(1, sizeof(TimerHeap));
        int r;

        if (!h)
                return -ENOMEM;
        /* As the sources per timer were: a millisecond of slack. */
        r = sd_event_add_time(event, &h->source, CLOCK_BOOTTIME, UINT64_MAX, USEC_PER_MSEC, on_due, h);
        if (r >= 0)
                r = sd_event_source_set_enabled(h->source, SD_EVENT_OFF);
        if (r < 0) {
                timer_heap_free(h);
                return r;
        }
        *ret = h;
        return 0;
}

TimerHeap *timer_heap_free(TimerHeap *h) {
        if (!h)
                return NULL;
        for (size_t i = 0; i < h->n; i++)
                h->entries[i].timer->index = 0;
        free(h->entries);
        sd_event_source_disable_unref(h->source);
        free(h);
        return NULL;
}

/* By a quarter, not double: 100,000 clients arm 200,000 timers at start,
 * and a doubled array would keep room for 400,000 (3 MB, 30 bytes a
 * client). Appending stays amortized O(1). */
static int grow(TimerHeap *h) {
        size_t n = MAX(h->size + h->size / 4, (size_t) 64);
        Entry *e = reallocarray(h->entries, n, sizeof(Entry));

        if (!e)
                return -ENOMEM;
        h->entries = e;
        h->size = n;
        return 0;
}

/* handler's number in h's table, added if new. */
static int handler_id(TimerHeap *h, heap_timer_handler_t handler) {
        for (unsigned i = 0; i < h->n_handlers; i++)
                if (h->handlers[i] == handler)
                        return (int) i;
        if (h->n_handlers >= TIMER_HEAP_HANDLERS_MAX)
                return -E2BIG;
        h->handlers[h->n_handlers] = handler;
        return (int) h->n_handlers++;
}

int timer_heap_arm(TimerHeap *h, HeapTimer *t, uint64_t when, heap_timer_handler_t handler) {
        Entry e = { .when = when, .timer = t };
        HeapTimer *first = h->n ? h->entries[0].timer : NULL;
        uint64_t first_when = h->n ? h->entries[0].when : 0;
        int id = handler_id(h, handler);
        size_t i;

        if (id < 0)
                return id;
        if (!t->index && h->n >= UINT32_MAX - 1)
                return -ENOMEM;
        t->handler = (uint32_t) id;
        if (t->index) {
                i = t->index - 1;
                uint64_t old = h->entries[i].when;
                h->entries[i] = e;
                if (when < old)
                        sift_up(h, i);
                else
                        sift_down(h, i);
        } else {
                if (h->n == h->size && grow(h) < 0)
                        return -ENOMEM;
                h->entries[h->n++] = e;
                sift_up(h, h->n - 1);
        }
        if (h->entries[0].timer != first || h->entries[0].when != first_when)
                rearm_source(h);
        return 0;
}

void timer_heap_disarm(TimerHeap *h, HeapTimer *t) {
        bool first;

        if (!h || !t->index)
                return;
        first = t->index == 1;
        remove_at(h, t->index - 1);
        if (first)
                rearm_source(h);
}

size_t timer_heap_size(const TimerHeap *h) {
        return h ? h->n : 0;
}
