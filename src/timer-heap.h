/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Many one-shot timers on one sd-event source: a binary heap of deadlines
 * (CLOCK_BOOTTIME µs, src/deadline.h), the source armed at the earliest.
 * A client has three timers (expiry, next checker, approval window); as
 * sd-event sources they cost some 300 bytes each, and 100,000 clients'
 * sources made every re-arm a walk through sd-event's two priority queues.
 * Here a timer is eight bytes inside its owner (its place in the heap and
 * which of the heap's few handlers it calls), the heap an array of
 * (deadline, timer) pairs: 16 bytes an armed timer. The handler finds its
 * owner with container_of(). */

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct TimerHeap TimerHeap;
typedef struct HeapTimer HeapTimer;

typedef void (*heap_timer_handler_t)(HeapTimer *t);

struct HeapTimer {
        uint32_t index;           /* position in the heap + 1; 0: not armed */
        uint32_t handler;         /* in the heap's table of handlers (TIMER_HEAP_HANDLERS_MAX) */
};

/* The different handlers one heap calls, at most: a kind of timer each
 * (a client has three), not one per timer. */
#define TIMER_HEAP_HANDLERS_MAX 16

int timer_heap_new(sd_event *event, TimerHeap **ret);
/* Every timer still armed is forgotten (none is called). */
TimerHeap *timer_heap_free(TimerHeap *h);

/* Arm (or move) t to fire at when (CLOCK_BOOTTIME µs), calling handler(t)
 * once; a deadline already past fires at the next loop iteration. Returns
 * 0, -ENOMEM, or -E2BIG for a handler beyond the TIMER_HEAP_HANDLERS_MAX
 * different ones. The handler gets t disarmed, and may arm it again. */
int timer_heap_arm(TimerHeap *h, HeapTimer *t, uint64_t when, heap_timer_handler_t handler);
/* Disarm t, if armed. */
void timer_heap_disarm(TimerHeap *h, HeapTimer *t);

static inline int heap_timer_armed(const HeapTimer *t) {
        return t->index != 0;
}

size_t timer_heap_size(const TimerHeap *h);
