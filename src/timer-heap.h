/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Many one-shot timers on one sd-event source: a binary heap of deadlines
 * (CLOCK_BOOTTIME µs, src/deadline.h), the source armed at the earliest.
 * A client has three timers (expiry, next checker, approval window); as
 * sd-event sources they cost some 300 bytes each, and 100,000 clients'
 * sources made every re-arm a walk through sd-event's two priority queues.
 * Here a timer is two words inside its owner, the heap an array of
 * (deadline, timer) pairs: 16 bytes an armed timer. The handler finds its
 * owner with container_of(). */

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct TimerHeap TimerHeap;
typedef struct HeapTimer HeapTimer;

typedef void (*heap_timer_handler_t)(HeapTimer *t);

struct HeapTimer {
        heap_timer_handler_t handler;
        size_t index;             /* position in the heap + 1; 0: not armed */
};

int timer_heap_new(sd_event *event, TimerHeap **ret);
/* Every timer still armed is forgotten (none is called). */
TimerHeap *timer_heap_free(TimerHeap *h);

/* Arm (or move) t to fire at when (CLOCK_BOOTTIME µs), calling handler(t)
 * once; a deadline already past fires at the next loop iteration. Returns
 * 0 or -ENOMEM. The handler gets t disarmed, and may arm it again. */
int timer_heap_arm(TimerHeap *h, HeapTimer *t, uint64_t when, heap_timer_handler_t handler);
/* Disarm t, if armed. */
void timer_heap_disarm(TimerHeap *h, HeapTimer *t);

static inline int heap_timer_armed(const HeapTimer *t) {
        return t->index != 0;
}

size_t timer_heap_size(const TimerHeap *h);
