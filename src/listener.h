/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* The listening socket, in order of preference: the one systemd passed
 * (LISTEN_FDS), then --socket FD, then one we bind ourselves to
 * --address/--port/--interface (mandos(8), LISTENING SOCKET). */


#include "settings.h"

/* Returns a listening, non-blocking, close-on-exec socket (the one systemd
 * passed, the --socket one, or our own), or a negative errno (logged). */
int listener_open(const Settings *s);

/* Log "Now listening on address '…', port …" as the reference does; the
 * port number is returned (0 on error). */
int listener_log_address(int fd);
