/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* A client's timers (expiry, checker, approval window) run on CLOCK_BOOTTIME,
 * which no one can set: a wall clock stepped forward (NTP correcting a bad
 * clock at boot) must not expire every client at once. Wall-clock times
 * (CLOCK_REALTIME) remain for what people and files see: the D-Bus
 * properties (docs/DBUS-API.md) and the state file (docs/STATE.md).
 *
 * The arithmetic between the two is here, pure: every function takes the
 * clock readings as arguments. All times are µs; sums saturate. */

#include <stdint.h>

typedef struct ClockNow {
        uint64_t wall;  /* CLOCK_REALTIME */
        uint64_t boot;  /* CLOCK_BOOTTIME */
} ClockNow;

/* Both clocks, read one after the other. */
ClockNow clock_now(void);

/* now + usec, at most UINT64_MAX - 1 (UINT64_MAX is sd-event's "never"). */
uint64_t deadline_after(uint64_t now, uint64_t usec);

/* The wall-clock time shown for a boottime deadline: the wall time now plus
 * what remains of it (nothing remains of a passed one). */
uint64_t deadline_to_wall(uint64_t deadline, ClockNow now);

/* The boottime deadline for a wall-clock time restored from the state file:
 * what remained of it at now.wall, but at most cap, from now.boot. 0 when it
 * has passed already (the caller deals with that as before). */
uint64_t deadline_from_wall(uint64_t wall, ClockNow now, uint64_t cap);

/* A deadline (or wall time) moved by new_usec - old_usec, as a changed
 * timeout moves expiry (docs/DBUS-API.md, Timeout); 0 if it would go below 0. */
uint64_t deadline_shift(uint64_t deadline, uint64_t old_usec, uint64_t new_usec);

/* The most a restored expiry may lie ahead of start-up, for a client with
 * these settings: no expiry this server sets lies further ahead (a secret
 * sent, a checker or its first delayed run, then a timeout raised). A wall
 * clock far behind at start-up must not push expiry out by years. */
uint64_t deadline_restore_cap(uint64_t timeout, uint64_t extended_timeout, uint64_t interval);
