/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Privilege separation, after dbus-broker's launcher.
 *
 * Started as root (and without mandos.conf's run_as_root), the server
 * forks a LAUNCHER, a child that stays root, before it drops to its
 * unprivileged user. The launcher never sees the network socket nor any
 * byte from the network. It holds what needs root:
 *  - read access to the root-only configuration (clients.conf, clients.d/,
 *    secfiles), handed over on every reload (ReadConfiguration) in a
 *    sealed memfd that lives no longer than the reload;
 *  - its own connection to the system bus, the only one that may create
 *    units: it makes the transient scope of a checker when the server asks
 *    (StartCheckerScope), after checking that the PID is an unreaped child
 *    of the server running as the server's user, with properties it fixes
 *    itself, and stops it again (StopCheckerScope, only scopes it made).
 * The channel is a socketpair carrying a private sd-bus peer-to-peer
 * connection; the launcher treats every message on it as hostile.
 *
 * Unlike dbus-broker, the unprivileged server stays the parent (and the
 * unit's main PID): systemd signals, notifications, the watchdog and the
 * activated socket go to it as before. The launcher dies with it
 * (PR_SET_PDEATHSIG, and the channel's end) and stops every scope it made
 * on its way out. */

#include <fcntl.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "clients-conf.h"

#define LAUNCHER_INTERFACE "se.recompile.Mandos.Launcher1"
#define LAUNCHER_PATH "/se/recompile/Mandos/Launcher1"
/* StartCheckerScope's error when the launcher has no systemd manager, or
 * the manager refused a scope: asking again is no use. */
#define LAUNCHER_ERROR_NO_MANAGER "se.recompile.Mandos.Launcher1.Error.NoManager"

/* Bounds the launcher puts on a scope (mandos(8), CHECKERS). */
#define LAUNCHER_SCOPE_TASKS_MAX 64
#define LAUNCHER_SCOPE_MEMORY_MAX (UINT64_C(256) * 1024 * 1024)
#define LAUNCHER_SCOPE_RUNTIME_MIN (UINT64_C(10) * 1000000)          /* 10 s */
#define LAUNCHER_SCOPE_RUNTIME_MAX (UINT64_C(7) * 24 * 3600 * 1000000) /* a week */
#define LAUNCHER_SCOPES_MAX 4096 /* scopes alive at once */

/* The user the server drops to: the reference's choice (mandos(8),
 * PRIVILEGES), the first of _mandos, mandos, nobody:nogroup, else 65534. */
void launcher_server_user(uid_t *ret_uid, gid_t *ret_gid);

/* Fork the launcher (we must be root). In the caller: *ret_fd is its end
 * of the channel, *ret_pid the launcher. configdir: where the launcher reads
 * the clients' configuration; server_uid/gid: the user the caller is about
 * to become; keep_fds: fds (<0 ignored) the launcher closes first;
 * conf: the caller's parsed configuration (or NULL), which the launcher
 * frees at once, giving the memory back: with 100,000 clients its
 * copy-on-write pages would otherwise stay, some 200 MB. */
int launcher_fork(const char *configdir, uid_t server_uid, gid_t server_gid, const int *close_fds,
                  size_t n_close_fds, ClientsConf **conf, int *ret_fd, pid_t *ret_pid);

/* Server side of the channel: a connected sd-bus peer on fd (taken). */
int launcher_connect(int fd, sd_bus **ret);

/* ReadConfiguration(): the files, for clients_conf_load_all_files()
 * (replay). The reply carries their bytes in one memfd, sealed with
 * LAUNCHER_SEALS, which the server refuses without them: no D-Bus array
 * bound (64 MiB) on the configuration, but each file's, LAUNCHER_FILE_SIZE_MAX,
 * the same as ini.c's at start. Asynchronous, bounded to 10 s: callback gets
 * the reply (or the error), for launcher_configuration_reply(). */
#define LAUNCHER_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)
#define LAUNCHER_FILE_SIZE_MAX (UINT64_C(1024) * 1024 * 1024)
int launcher_read_configuration_async(sd_bus *link, sd_bus_slot **ret_slot, sd_bus_message_handler_t callback,
                                      void *userdata);
/* The files of ReadConfiguration's reply (or the error it carries, logged). */
int launcher_configuration_reply(sd_bus_message *reply, ConfFiles *ret);
/* Map fd read-only (*ret_map NULL if empty) if it bears LAUNCHER_SEALS;
 * else -EPERM. Unmap with munmap(). */
int launcher_map_sealed(int fd, const void **ret_map, size_t *ret_size);

/* StartCheckerScope(pid, client, runtime_max): callback gets the reply
 * ("s" unit name, or an error). */
int launcher_start_scope_async(sd_bus *link, pid_t pid, const char *client, uint64_t runtime_max,
                               sd_bus_slot **ret_slot, sd_bus_message_handler_t callback, void *userdata);

/* StopCheckerScope(unit), without waiting for the reply. */
int launcher_stop_scope(sd_bus *link, const char *unit);
