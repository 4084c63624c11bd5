/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Many one-shot timers on one sd-event source (src/timer-heap.h): they fire
 * in deadline order, once each; moved, disarmed or re-armed from their own
 * handler, they do what one sd-event source each did. */

#include <stdlib.h>

#include "deadline.h"
#include "test.h"
#include "timer-heap.h"
#include "util.h"

#define N_ 1000

typedef struct Owner {
        unsigned fired;
        uint64_t order;
        uint64_t when;      /* as last armed */
        HeapTimer timer;    /* not first: the handler finds its owner by container_of */
} Owner;

static int arm(TimerHeap *h, Owner *o, uint64_t when, heap_timer_handler_t handler) {
        o->when = when;
        return timer_heap_arm(h, &o->timer, when, handler);
}

static uint64_t fire_count;

static void on_fire(HeapTimer *t) {
        Owner *o = container_of(t, Owner, timer);

        check(t == &o->timer);
        check(!heap_timer_armed(t));
        o->fired++;
        o->order = ++fire_count;
}

/* Run the loop until nothing is armed (or 5 s). */
static void run(sd_event *e, TimerHeap *h) {
        for (unsigned i = 0; i < 5000 && timer_heap_size(h) > 0; i++)
                check(sd_event_run(e, 10 * USEC_PER_MSEC) >= 0);
        check_int(timer_heap_size(h), 0);
}

static void test_order_move_disarm(void) {
        sd_event *e = NULL;
        TimerHeap *h = NULL;
        Owner *o = calloc(N_, sizeof(Owner));
        uint64_t now = clock_now().boot;

        check(o != NULL);
        check(sd_event_new(&e) >= 0);
        check(timer_heap_new(e, &h) >= 0);
        fire_count = 0;
        /* Deadlines in a scrambled order, up to 50 ms ahead. */
        for (unsigned i = 0; i < N_; i++)
                check(arm(h, &o[i], now + (i * 7919 % N_) * 50, on_fire) >= 0);
        check_int(timer_heap_size(h), N_);
        /* Move some later and some earlier; disarm every tenth. */
        for (unsigned i = 0; i < N_; i += 3)
                check(arm(h, &o[i], now + 60 * USEC_PER_MSEC + i, on_fire) >= 0);
        check(arm(h, &o[1], now, on_fire) >= 0);
        for (unsigned i = 0; i < N_; i += 10) {
                timer_heap_disarm(h, &o[i].timer);
                timer_heap_disarm(h, &o[i].timer); /* twice is fine */
        }
        run(e, h);
        for (unsigned i = 0; i < N_; i++)
                check_int(o[i].fired, i % 10 == 0 ? 0 : 1);
        /* In deadline order. */
        for (unsigned i = 0; i < N_; i++)
                for (unsigned j = 0; j < N_; j += 97)
                        if (o[i].fired && o[j].fired && o[i].when < o[j].when)
                                check(o[i].order < o[j].order);
        check_int(o[1].order, 1);
        timer_heap_free(h);
        sd_event_unref(e);
        free(o);
}

static Owner again;
static TimerHeap *again_heap;

static void on_fire_again(HeapTimer *t) {
        Owner *o = container_of(t, Owner, timer);

        /* Re-armed from its own handler, three times in all. */
        if (++o->fired < 3)
                check(arm(again_heap, o, clock_now().boot + USEC_PER_MSEC, on_fire_again) >= 0);
}

static void test_rearm_from_handler(void) {
        sd_event *e = NULL;
        TimerHeap *h = NULL;

        check(sd_event_new(&e) >= 0);
        check(timer_heap_new(e, &h) >= 0);
        again = (Owner) {};
        again_heap = h;
        check(arm(h, &again, clock_now().boot, on_fire_again) >= 0);
        run(e, h);
        check_int(again.fired, 3);
        /* Freed with a timer armed: that timer is disarmed, never called. */
        check(arm(h, &again, clock_now().boot + USEC_PER_SEC, on_fire_again) >= 0);
        timer_heap_free(h);
        check(!heap_timer_armed(&again.timer));
        sd_event_unref(e);
}

/* A timer keeps a handler's number in its heap's table: each calls its
 * own, a timer moved to another handler calls the new one, and a heap
 * refuses one handler more than the table holds. */
static unsigned kind_calls[TIMER_HEAP_HANDLERS_MAX + 1];

#define KIND(k) \
        static void on_kind_##k(HeapTimer *t) { \
                (void) t; \
                kind_calls[k]++; \
        }
KIND(0) KIND(1) KIND(2) KIND(3) KIND(4) KIND(5) KIND(6) KIND(7) KIND(8)
KIND(9) KIND(10) KIND(11) KIND(12) KIND(13) KIND(14) KIND(15) KIND(16)
static const heap_timer_handler_t kinds[] = {
        on_kind_0, on_kind_1, on_kind_2, on_kind_3, on_kind_4, on_kind_5, on_kind_6, on_kind_7, on_kind_8,
        on_kind_9, on_kind_10, on_kind_11, on_kind_12, on_kind_13, on_kind_14, on_kind_15, on_kind_16,
};

static void test_handlers(void) {
        sd_event *e = NULL;
        TimerHeap *h = NULL;
        Owner o[TIMER_HEAP_HANDLERS_MAX + 1] = {};
        uint64_t now = clock_now().boot;

        check_int(ELEMENTSOF(kinds), TIMER_HEAP_HANDLERS_MAX + 1);
        check_int(sizeof(HeapTimer), 8);
        check(sd_event_new(&e) >= 0);
        check(timer_heap_new(e, &h) >= 0);
        /* Timer i calls handler i; timer 0 is moved from handler 1 to 0. */
        check(arm(h, &o[0], now, kinds[1]) >= 0);
        for (unsigned i = 0; i < TIMER_HEAP_HANDLERS_MAX; i++)
                check(arm(h, &o[i], now + i, kinds[i]) >= 0);
        check_int(arm(h, &o[TIMER_HEAP_HANDLERS_MAX], now, kinds[TIMER_HEAP_HANDLERS_MAX]), -E2BIG);
        check(!heap_timer_armed(&o[TIMER_HEAP_HANDLERS_MAX].timer));
        run(e, h);
        for (unsigned i = 0; i < TIMER_HEAP_HANDLERS_MAX; i++)
                check_int(kind_calls[i], 1);
        check_int(kind_calls[TIMER_HEAP_HANDLERS_MAX], 0);
        timer_heap_free(h);
        sd_event_unref(e);
}

TEST_MAIN(TEST(test_order_move_disarm),
          TEST(test_rearm_from_handler),
          TEST(test_handlers))
