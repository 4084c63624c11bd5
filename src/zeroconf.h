/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* The Zeroconf announcement (mandos(8), ZEROCONF;
 * docs/REFERENCE-BEHAVIOUR.md, Zeroconf): "_mandos._tcp" under the configured
 * service name, on the port of the socket we listen on (read with
 * getsockname(), so an activated socket is announced too), through
 * avahi-daemon, from a thread and event loop of its own: a hung
 * avahi-daemon never holds up the server's loop (see zeroconf.c).
 *
 * A missing or restarting avahi-daemon (or system bus) is a state, not an
 * error: it is logged, and the service is published again as soon as the
 * daemon is back. A name collision renames the service ("Mandos #2", ...)
 * and the log prefix with it. */

#include <systemd/sd-event.h>

#include "settings.h"

#define ZEROCONF_SERVICE_TYPE "_mandos._tcp"

typedef struct Zeroconf Zeroconf;

/* Start announcing the service of listen_fd (not taken over; it must stay
 * open until zeroconf_free()). Fails only for lack of memory. */
int zeroconf_new(sd_event *event, const Settings *settings, int listen_fd, Zeroconf **ret);

/* Withdraw the service and disconnect from avahi-daemon. */
Zeroconf *zeroconf_free(Zeroconf *z);
static inline void zeroconf_freep(Zeroconf **z) {
        if (*z)
                zeroconf_free(*z);
}
