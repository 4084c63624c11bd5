/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* An AvahiPoll on sd-event, so that avahi-client runs inside an sd_event
 * loop (zeroconf.c's, on a thread of its own): watches become io sources,
 * timeouts become CLOCK_MONOTONIC time sources. The same shape as
 * avahi-glib's AvahiGLibPoll. */

#include <avahi-common/watch.h>
#include <systemd/sd-event.h>

typedef struct AvahiSdEventPoll AvahiSdEventPoll;

int avahi_sd_event_poll_new(sd_event *event, AvahiSdEventPoll **ret);

/* Free it only after everything made with it (the AvahiClient) is freed. */
AvahiSdEventPoll *avahi_sd_event_poll_free(AvahiSdEventPoll *p);
static inline void avahi_sd_event_poll_freep(AvahiSdEventPoll **p) {
        if (*p)
                avahi_sd_event_poll_free(*p);
}

const AvahiPoll *avahi_sd_event_poll_get(AvahiSdEventPoll *p);
