/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* The server's event loop, and a watch on it: nothing may keep the loop
 * busy for long (README.md, Security: a stalled loop stalls every fetch,
 * and the watchdog). loop_run() is sd_event_loop(), but an iteration whose
 * work (prepare and dispatch, not the wait) takes longer than
 * LOOP_STALL_USEC is logged at debug level, with what ran.
 *
 * sd-event does not say which source it dispatched, so callbacks say it:
 * loop_note_source() (the source's description) or loop_note(), first
 * thing. An iteration with no note is logged as an unnamed source. */

#include <systemd/sd-event.h>

#include "util.h"

#define LOOP_STALL_USEC (50 * USEC_PER_MSEC)

/* Runs until sd_event_exit(); returns its code, or a negative errno. */
int loop_run(sd_event *e);

void loop_note(const char *format, ...) _printf_(1, 2);
void loop_note_source(sd_event_source *s);
