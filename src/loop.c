/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "loop.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "log.h"

/* What the current iteration ran, as its callback said. Per thread: only
 * the server's loop uses it, but a thread of its own must not write here. */
static _Thread_local char note[128];

void loop_note(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        (void) vsnprintf(note, sizeof(note), format, ap);
        va_end(ap);
}

void loop_note_source(sd_event_source *s) {
        const char *d = NULL;

        if (sd_event_source_get_description(s, &d) >= 0 && d)
                loop_note("%s", d);
}

/* One sd_event_run(), with the wait left out of the measure. */
static int loop_iterate(sd_event *e) {
        uint64_t start, spent;
        int r;

        note[0] = 0;
        start = now_monotonic();
        r = sd_event_prepare(e);
        if (r == 0) {
                spent = now_monotonic() - start;
                r = sd_event_wait(e, UINT64_MAX);
                start = now_monotonic() - spent;
        }
        if (r > 0)
                r = sd_event_dispatch(e);
        spent = now_monotonic() - start;
        if (spent > LOOP_STALL_USEC)
                log_debug("Event loop stalled for %" PRIu64 " ms by %s", spent / USEC_PER_MSEC,
                          note[0] ? note : "an unnamed source");
        return r;
}

int loop_run(sd_event *e) {
        int code, r;

        while (sd_event_get_state(e) != SD_EVENT_FINISHED) {
                r = loop_iterate(e);
                if (r < 0)
                        return r;
        }
        r = sd_event_get_exit_code(e, &code);
        return r < 0 ? r : code;
}
