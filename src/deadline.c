/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "deadline.h"

#include <time.h>

#include "util.h"

#define DEADLINE_MAX (UINT64_MAX - 1)

static uint64_t read_clock(clockid_t id) {
        struct timespec ts;
        (void) clock_gettime(id, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

ClockNow clock_now(void) {
        return (ClockNow) { .wall = read_clock(CLOCK_REALTIME), .boot = read_clock(CLOCK_BOOTTIME) };
}

static uint64_t add_sat(uint64_t a, uint64_t b) {
        return a > DEADLINE_MAX - b || b > DEADLINE_MAX ? DEADLINE_MAX : a + b;
}

uint64_t deadline_after(uint64_t now, uint64_t usec) {
        return add_sat(now, usec);
}

uint64_t deadline_to_wall(uint64_t deadline, ClockNow now) {
        return add_sat(now.wall, deadline > now.boot ? deadline - now.boot : 0);
}

uint64_t deadline_from_wall(uint64_t wall, ClockNow now, uint64_t cap) {
        uint64_t remaining;

        if (wall <= now.wall)
                return 0;
        remaining = wall - now.wall;
        return add_sat(now.boot, remaining < cap ? remaining : cap);
}

uint64_t deadline_shift(uint64_t deadline, uint64_t old_usec, uint64_t new_usec) {
        if (new_usec >= old_usec)
                return add_sat(deadline, new_usec - old_usec);
        return deadline > old_usec - new_usec ? deadline - (old_usec - new_usec) : 0;
}

uint64_t deadline_restore_cap(uint64_t timeout, uint64_t extended_timeout, uint64_t interval) {
        /* A secret sent (extended_timeout) or a checker's first run (up to
         * two intervals), then a timeout raised by up to the timeout. */
        uint64_t longest = extended_timeout > timeout ? extended_timeout : timeout;
        uint64_t two_intervals = add_sat(interval, interval);

        if (two_intervals > longest)
                longest = two_intervals;
        return add_sat(longest, timeout);
}
