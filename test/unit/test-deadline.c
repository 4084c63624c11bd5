/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Deadlines on CLOCK_BOOTTIME and the wall-clock times shown for them
 * (src/deadline.h), with made-up clock readings. */

#include "deadline.h"
#include "test.h"
#include "util.h"

#define MIN_ (60 * USEC_PER_SEC)
#define DAY_ (24 * 60 * MIN_)

/* A wall clock that is wrong at boot: 2001, while boottime is 30 s. */
static const ClockNow boot_time = { .wall = UINT64_C(978307200) * USEC_PER_SEC, .boot = 30 * USEC_PER_SEC };

/* NTP steps the wall clock forward by 25 years; boottime moved 2 s. */
static ClockNow jumped(ClockNow t, uint64_t wall_jump, uint64_t boot_elapsed) {
        return (ClockNow) { .wall = t.wall + wall_jump + boot_elapsed, .boot = t.boot + boot_elapsed };
}

static void test_forward_jump_brings_no_deadline_forward(void) {
        const uint64_t timeout = 5 * MIN_, interval = 2 * MIN_, extended = 15 * MIN_;
        const uint64_t jump = 25 * 365 * DAY_;
        ClockNow t0 = boot_time, t1 = jumped(t0, jump, 2 * USEC_PER_SEC);

        /* Every deadline a client arms (expiry, first checker, approval). */
        uint64_t expiry = deadline_after(t0.boot, timeout);
        uint64_t first = deadline_after(deadline_after(t0.boot, interval), interval);
        uint64_t secret = deadline_after(t0.boot, extended);
        uint64_t approval = deadline_after(t0.boot, 10 * USEC_PER_SEC);

        /* After a jump of far more than the timeout, none is due yet: each
         * still has all but the 2 s that really went by. */
        check(expiry > t1.boot);
        check_int(expiry - t1.boot, timeout - 2 * USEC_PER_SEC);
        check_int(first - t1.boot, 2 * interval - 2 * USEC_PER_SEC);
        check_int(secret - t1.boot, extended - 2 * USEC_PER_SEC);
        check_int(approval - t1.boot, 8 * USEC_PER_SEC);
        /* A bump after the jump is from the new boottime, not the wall. */
        check_int(deadline_after(t1.boot, timeout) - expiry, 2 * USEC_PER_SEC);
        /* A timeout changed after the jump moves expiry by the difference only. */
        check_int(deadline_shift(expiry, timeout, timeout + MIN_), expiry + MIN_);
        check_int(deadline_shift(expiry, timeout, timeout - MIN_), expiry - MIN_);
        /* What is shown follows the wall clock of the moment it is computed. */
        check_int(deadline_to_wall(expiry, t0), t0.wall + timeout);
        check_int(deadline_to_wall(expiry, t1), t1.wall + timeout - 2 * USEC_PER_SEC);
}

static void test_backward_jump_delays_nothing(void) {
        const uint64_t timeout = 5 * MIN_;
        ClockNow t0 = { .wall = 2000000000 * USEC_PER_SEC, .boot = 100 * USEC_PER_SEC };
        ClockNow t1 = { .wall = t0.wall - 365 * DAY_, .boot = t0.boot + timeout };
        uint64_t expiry = deadline_after(t0.boot, timeout);

        /* A wall clock set back a year: expiry is due on time all the same. */
        check(expiry <= t1.boot);
}

static void test_restore_keeps_expiry_exactly(void) {
        ClockNow now = { .wall = 2000000000 * USEC_PER_SEC + 123456, .boot = 7 * USEC_PER_SEC + 42 };
        uint64_t cap = deadline_restore_cap(5 * MIN_, 15 * MIN_, 2 * MIN_);
        uint64_t saved = now.wall + 3 * MIN_ + 987654;
        uint64_t d = deadline_from_wall(saved, now, cap);

        check_int(d, now.boot + 3 * MIN_ + 987654);
        /* Shown as saved, to the µs (test-state.sh, README "Security"). */
        check_int(deadline_to_wall(d, now), saved);
}

static void test_restore_past_or_far(void) {
        ClockNow now = { .wall = 2000000000 * USEC_PER_SEC, .boot = 50 * USEC_PER_SEC };
        uint64_t cap = deadline_restore_cap(5 * MIN_, 15 * MIN_, 2 * MIN_);

        /* Passed, or due this very moment: as before, the caller decides. */
        check_int(deadline_from_wall(now.wall - 1, now, cap), 0);
        check_int(deadline_from_wall(now.wall, now, cap), 0);
        /* Saved under a good clock, restored under one 25 years behind:
         * bounded by the longest expiry this server sets, not 25 years. */
        ClockNow behind = { .wall = now.wall - 25 * 365 * DAY_, .boot = now.boot };
        check_int(deadline_from_wall(now.wall + MIN_, behind, cap), behind.boot + cap);
        check_int(cap, 15 * MIN_ + 5 * MIN_);
        check_int(deadline_restore_cap(MIN_, MIN_, 10 * MIN_), 20 * MIN_ + MIN_);
}

static void test_saturation(void) {
        ClockNow now = { .wall = UINT64_MAX - 5, .boot = UINT64_MAX - 10 };

        check_int(deadline_after(UINT64_MAX - 10, 100), (int64_t) (UINT64_MAX - 1));
        check(deadline_after(5, UINT64_MAX) == UINT64_MAX - 1);
        check(deadline_to_wall(UINT64_MAX - 1, now) == UINT64_MAX - 1);
        check_int(deadline_to_wall(3, (ClockNow) { .wall = 1000, .boot = 10 }), 1000);
        check_int(deadline_shift(5, 10, 1), 0);
        check(deadline_shift(UINT64_MAX - 3, 1, 10) == UINT64_MAX - 1);
        check(deadline_restore_cap(UINT64_MAX, UINT64_MAX, UINT64_MAX) == UINT64_MAX - 1);
}

static void test_clock_now(void) {
        ClockNow a = clock_now(), b = clock_now();

        check(a.boot > 0 && a.wall > 0);
        check(b.boot >= a.boot);
}

TEST_MAIN(TEST(test_forward_jump_brings_no_deadline_forward),
          TEST(test_backward_jump_delays_nothing),
          TEST(test_restore_keeps_expiry_exactly),
          TEST(test_restore_past_or_far),
          TEST(test_saturation),
          TEST(test_clock_now))
