/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "launcher.h"

#include <assert.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <systemd/sd-id128.h>
#include <systemd/sd-login.h>

#include "checker.h"
#include "list.h"
#include "log.h"
#include "util.h"

#define SYSTEMD_DEST "org.freedesktop.systemd1"
#define SYSTEMD_PATH "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"
#define LAUNCHER_ERROR "se.recompile.Mandos.Launcher1.Error.Refused"
#define PENDING_MAX 256
#define CLIENT_NAME_MAX 200

void launcher_server_user(uid_t *ret_uid, gid_t *ret_gid) {
        static const char *const pairs[][2] = {
                { "_mandos", "_mandos" },
                { "mandos", "mandos" },
                { "nobody", "nogroup" },
        };

        *ret_uid = 65534;
        *ret_gid = 65534;
        for (size_t i = 0; i < ELEMENTSOF(pairs); i++) {
                struct passwd *user = getpwnam(pairs[i][0]);
                struct passwd *group = user ? getpwnam(pairs[i][1]) : NULL;
                if (user && group) {
                        *ret_uid = user->pw_uid;
                        *ret_gid = group->pw_gid;
                        return;
                }
        }
}

/* ================================================================ launcher side */

typedef struct Launcher Launcher;

typedef struct Pending Pending;
struct Pending {
        LIST_FIELDS(Pending, pending);
        Launcher *launcher;
        sd_bus_message *call; /* the server's request, answered when the job ends */
        int pidfd;            /* the process checked (verify_pid()) */
        char *unit;
        char *job;
        sd_bus_slot *slot;
};

struct Launcher {
        sd_event *event;
        sd_bus *system;       /* as root; NULL if there is no manager */
        sd_bus *link;         /* to the server */
        pid_t server;
        uid_t uid;
        gid_t gid;
        const char *configdir;
        unsigned serial;
        char **scopes;        /* made, and not stopped yet */
        size_t n_scopes;
        LIST_HEAD(Pending, pending);
        unsigned n_pending;
        char *own_service;    /* the service we run in, if any: its scopes are PartOf= it */
};

static Pending *pending_free(Launcher *l, Pending *p) {
        LIST_REMOVE(pending, l->pending, p);
        l->n_pending--;
        sd_bus_message_unref(p->call);
        sd_bus_slot_unref(p->slot);
        if (p->pidfd >= 0)
                (void) close(p->pidfd);
        free(p->unit);
        free(p->job);
        free(p);
        return NULL;
}

static int refuse(sd_bus_message *m, sd_bus_error *error, const char *format, ...) _printf_(3, 4);
static int refuse(sd_bus_message *m, sd_bus_error *error, const char *format, ...) {
        _cleanup_free_ char *why = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&why, format, ap) < 0)
                why = NULL;
        va_end(ap);
        log_warning("Launcher: refused %s: %s", sd_bus_message_get_member(m) ?: "?", why ?: "out of memory");
        return sd_bus_error_set(error, LAUNCHER_ERROR, why ?: "refused");
}

/* Read /proc/PID/FILE as the server's user: under ProtectProc=invisible
 * root sees another user's processes only with CAP_SYS_PTRACE, which the
 * launcher does not have; the server's user sees its own (dumpable) ones,
 * and no other user's. */
static int read_proc(const Launcher *l, pid_t pid, const char *file, char *buf, size_t size) {
        char path[64];
        ssize_t n;
        int fd, e;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
        (void) setfsgid(l->gid);
        (void) setfsuid(l->uid);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        e = errno;
        (void) setfsuid(0);
        (void) setfsgid(0);
        /* A change of the fsuid clears the parent-death signal (prctl(2)). */
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (fd < 0)
                return -e;
        n = read(fd, buf, size - 1);
        e = errno;
        (void) close(fd);
        if (n < 0)
                return -e;
        buf[n] = 0;
        return 0;
}

/* Is pid an unreaped child of the server, running as the server's user?
 * Returns 0 and a pidfd of it, or -errno with *why. The pidfd pins the
 * process across the reads: if it is still alive after them, it is the one
 * they described; and again once the manager has attached the PID. */
static int verify_pid(const Launcher *l, uint32_t pid, int *ret_pidfd, const char **why) {
        _cleanup_close_ int pidfd = -1;
        char stat[1024], status[4096];
        const char *p;
        int ppid = 0;
        char state = 0;
        unsigned uids[4];

        if (pid <= 1 || pid > INT32_MAX || (pid_t) pid == getpid() || (pid_t) pid == l->server) {
                *why = "not a child of the server";
                return -EPERM;
        }
        pidfd = (int) syscall(SYS_pidfd_open, (pid_t) pid, 0);
        if (pidfd < 0) {
                *why = "no such process";
                return -errno;
        }
        if (read_proc(l, (pid_t) pid, "stat", stat, sizeof(stat)) < 0 ||
            read_proc(l, (pid_t) pid, "status", status, sizeof(status)) < 0) {
                *why = "not a process of the server's user";
                return -EPERM;
        }
        p = strrchr(stat, ')');
        if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2) {
                *why = "unreadable /proc/PID/stat";
                return -EINVAL;
        }
        if (ppid != l->server) {
                *why = "not a child of the server";
                return -EPERM;
        }
        if (state == 'Z' || state == 'X') {
                *why = "already exited";
                return -ESRCH;
        }
        p = strstr(status, "\nUid:");
        if (!p || sscanf(p + 5, "%u %u %u %u", &uids[0], &uids[1], &uids[2], &uids[3]) != 4 ||
            uids[0] != l->uid || uids[1] != l->uid || uids[2] != l->uid || uids[3] != l->uid) {
                *why = "not running as the server's user";
                return -EPERM;
        }
        /* EPERM (no CAP_KILL over the server's user) still means alive. */
        if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0 && errno == ESRCH) {
                *why = "exited while being checked";
                return -ESRCH;
        }
        *ret_pidfd = TAKE_FD(pidfd);
        return 0;
}

/* The process checked is the one the manager attached, unless it exited
 * meanwhile (and its PID could then be another's). */
static bool pidfd_alive(int pidfd) {
        return syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) >= 0 || errno != ESRCH;
}

static bool client_name_ok(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > CLIENT_NAME_MAX)
                return false;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return false;
        return true;
}

static int scopes_add(Launcher *l, const char *unit) {
        char **n = realloc(l->scopes, (l->n_scopes + 1) * sizeof(char *));

        if (!n)
                return -ENOMEM;
        l->scopes = n;
        if (!(l->scopes[l->n_scopes] = strdup(unit)))
                return -ENOMEM;
        l->n_scopes++;
        return 0;
}

static bool scopes_remove(Launcher *l, const char *unit) {
        for (size_t i = 0; i < l->n_scopes; i++)
                if (streq(l->scopes[i], unit)) {
                        free(l->scopes[i]);
                        l->scopes[i] = l->scopes[--l->n_scopes];
                        return true;
                }
        return false;
}

static int on_start_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Pending *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *job;

        assert(p);

        p->slot = sd_bus_slot_unref(p->slot);
        if (e || sd_bus_message_read(reply, "o", &job) < 0 || !(p->job = strdup(job))) {
                log_warning("Launcher: the systemd manager refused the scope %s: %s", p->unit,
                            e ? e->message ?: e->name : "bad reply");
                (void) sd_bus_reply_method_errorf(p->call, LAUNCHER_ERROR_NO_MANAGER, "the manager refused %s: %s",
                                                  p->unit, e ? e->message ?: e->name : "bad reply");
                pending_free(p->launcher, p);
        }
        return 0;
}

static int on_job_removed(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        Launcher *l = userdata;
        const char *job, *unit, *result;
        uint32_t id;

        assert(l);

        if (sd_bus_message_read(message, "uoss", &id, &job, &unit, &result) < 0)
                return 0;
        LIST_FOREACH(pending, p, l->pending)
                if (p->job && streq(p->job, job)) {
                        if (streq(result, "done") && !pidfd_alive(p->pidfd)) {
                                log_warning("Launcher: the checker of %s exited before it was attached: "
                                            "stopping the scope", p->unit);
                                (void) sd_bus_call_method_async(l->system, NULL, SYSTEMD_DEST, SYSTEMD_PATH,
                                                                SYSTEMD_MANAGER, "StopUnit", NULL, NULL, "ss",
                                                                p->unit, "replace");
                                (void) sd_bus_reply_method_errorf(p->call, LAUNCHER_ERROR,
                                                                  "the process exited before it was attached");
                        } else if (streq(result, "done") && scopes_add(l, p->unit) >= 0) {
                                log_debug("Launcher: made %s", p->unit);
                                (void) sd_bus_reply_method_return(p->call, "s", p->unit);
                        } else
                                (void) sd_bus_reply_method_errorf(p->call, LAUNCHER_ERROR_NO_MANAGER,
                                                                  "scope %s: %s", unit, result);
                        pending_free(l, p);
                        break;
                }
        return 0;
}

static int method_start_scope(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Launcher *l = userdata;
        _cleanup_free_ char *description = NULL;
        sd_bus_message *msg = NULL;
        const char *client, *why = NULL;
        _cleanup_close_ int pidfd = -1;
        uint64_t runtime;
        uint32_t pid;
        Pending *p;
        int r;

        assert(l);

        r = sd_bus_message_read(m, "ust", &pid, &client, &runtime);
        if (r < 0)
                return refuse(m, error, "bad arguments");
        if (!client_name_ok(client))
                return refuse(m, error, "bad client name");
        /* First: with no manager there is nothing to ask, whatever the PID
         * (a short checker may be gone already). */
        if (!l->system)
                return sd_bus_error_set(error, LAUNCHER_ERROR_NO_MANAGER, "no systemd manager");
        r = verify_pid(l, pid, &pidfd, &why);
        if (r < 0)
                return refuse(m, error, "PID %u: %s", pid, why);
        if (l->n_pending >= PENDING_MAX || l->n_scopes >= LAUNCHER_SCOPES_MAX)
                return refuse(m, error, "too many scopes");
        runtime = MAX(MIN(runtime, LAUNCHER_SCOPE_RUNTIME_MAX), LAUNCHER_SCOPE_RUNTIME_MIN);

        p = calloc(1, sizeof(Pending));
        if (!p)
                return -ENOMEM;
        p->launcher = l;
        p->pidfd = TAKE_FD(pidfd);
        p->call = sd_bus_message_ref(m);
        p->unit = checker_scope_name(client, ++l->serial);
        LIST_PREPEND(pending, l->pending, p);
        l->n_pending++;
        if (!p->unit || asprintf(&description, "Mandos checker for %s", client) < 0) {
                pending_free(l, p);
                return -ENOMEM;
        }
        r = sd_bus_message_new_method_call(l->system, &msg, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                           "StartTransientUnit");
        if (r >= 0)
                r = sd_bus_message_append(msg, "ss", p->unit, "fail");
        /* Fixed properties: this PID only, the documented limits, and no
         * dependency but one the launcher chooses: part of our own service,
         * so that stopping the service stops the scope with it. */
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "(sv)");
        if (r >= 0)
                r = sd_bus_message_append(msg, "(sv)(sv)(sv)(sv)(sv)(sv)(sv)",
                                          "Description", "s", description,
                                          "TimeoutStopUSec", "t", (uint64_t) 5 * USEC_PER_SEC,
                                          "PIDs", "au", 1, pid,
                                          "CollectMode", "s", "inactive-or-failed",
                                          "TasksMax", "t", (uint64_t) LAUNCHER_SCOPE_TASKS_MAX,
                                          "MemoryMax", "t", LAUNCHER_SCOPE_MEMORY_MAX,
                                          "RuntimeMaxUSec", "t", runtime);
        if (r >= 0 && l->own_service)
                r = sd_bus_message_append(msg, "(sv)", "PartOf", "as", 1, l->own_service);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        if (r >= 0)
                r = sd_bus_message_append(msg, "a(sa(sv))", 0);
        if (r >= 0)
                r = sd_bus_call_async(l->system, &p->slot, msg, on_start_reply, p, 0);
        sd_bus_message_unref(msg);
        if (r < 0) {
                pending_free(l, p);
                return r;
        }
        log_debug("Launcher: asked for %s (PID %u)", p->unit, pid);
        return 1; /* answered when the job ends */
}

static int method_stop_scope(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Launcher *l = userdata;
        const char *unit;
        int r;

        assert(l);

        r = sd_bus_message_read(m, "s", &unit);
        if (r < 0)
                return refuse(m, error, "bad arguments");
        if (!scopes_remove(l, unit))
                return refuse(m, error, "%s is not a scope of ours", strlen(unit) > 300 ? "(long name)" : unit);
        if (l->system)
                (void) sd_bus_call_method_async(l->system, NULL, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                                "StopUnit", NULL, NULL, "ss", unit, "replace");
        return sd_bus_reply_method_return(m, NULL);
}

/* The files' bytes, one after the other, in a new memfd sealed against any
 * change (memfd_create(2), fcntl(2) File Sealing): the server maps it and
 * must see the same bytes, neither a shrink (SIGBUS) nor a write while it
 * parses. */
static int conf_files_to_memfd(const ConfFiles *files, int *ret_fd) {
        _cleanup_close_ int fd = -1;

        fd = memfd_create("mandos-configuration", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        for (size_t i = 0; i < files->n; i++) {
                const uint8_t *p = files->files[i].data;
                size_t left = files->files[i].size;

                while (left > 0) {
                        ssize_t n = write(fd, p, left);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0)
                                return n < 0 ? -errno : -EIO;
                        p += n;
                        left -= (size_t) n;
                }
        }
        if (fcntl(fd, F_ADD_SEALS, LAUNCHER_SEALS) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* The reply: the sealed memfd, then per file its kind, path, error, why
 * and where its bytes are in the memfd. Not the bytes themselves: a D-Bus
 * array holds at most 64 MiB (sd-bus's bound), far less than the 1 GiB a
 * file may have at start. The memfd lives no longer than the reply: our fd
 * is closed here, the message's once it is sent. */
static int method_read_configuration(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Launcher *l = userdata;
        _cleanup_(clients_conf_freep) ClientsConf *conf = NULL;
        _cleanup_close_ int fd = -1;
        ConfFiles files = {};
        sd_bus_message *reply = NULL;
        uint64_t offset = 0;
        int r;

        assert(l);

        r = clients_conf_load_all_files(l->configdir, &files, &conf);
        if (r >= 0)
                r = conf_files_to_memfd(&files, &fd);
        if (r >= 0)
                r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_sensitive(reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "h", fd);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ysistt)");
        for (size_t i = 0; r >= 0 && i < files.n; i++) {
                const ConfFile *f = &files.files[i];
                r = sd_bus_message_append(reply, "(ysistt)", (uint8_t) f->kind, f->path, f->error,
                                          strempty(f->why), offset, (uint64_t) f->size);
                offset += f->size;
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        conf_files_done(&files);
        if (r < 0)
                log_error_errno(r, "Launcher: could not hand over the configuration: %m");
        return r < 0 ? r : 1;
}

static const sd_bus_vtable launcher_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("ReadConfiguration", "", "ha(ysistt)", method_read_configuration, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("StartCheckerScope", "ust", "s", method_start_scope, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("StopCheckerScope", "s", "", method_stop_scope, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* Keep what reading root-only files and setfsuid() need; nothing else, ever.
 * CAP_NET_RAW only so that the server's checkers, which hold it, are
 * readable in /proc with the launcher's fsuid set to theirs (a target's
 * permitted set must be within the reader's effective one, ptrace(2)). */
static void launcher_bound_capabilities(void) {
        static const int keep[] = { CAP_DAC_READ_SEARCH, CAP_SETUID, CAP_SETGID, CAP_NET_RAW };
        struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
        uint64_t mask = 0;

        for (size_t i = 0; i < ELEMENTSOF(keep); i++)
                mask |= UINT64_C(1) << keep[i];
        for (int c = 0; c <= 63; c++)
                if (!(mask & (UINT64_C(1) << c)) && prctl(PR_CAPBSET_READ, c) > 0)
                        (void) prctl(PR_CAPBSET_DROP, c);
        (void) prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        if (syscall(SYS_capget, &header, data) < 0)
                return;
        data[0].permitted &= (uint32_t) mask;
        data[1].permitted &= (uint32_t) (mask >> 32);
        data[0].effective = data[0].permitted;
        data[1].effective = data[1].permitted;
        data[0].inheritable = data[1].inheritable = 0;
        if (syscall(SYS_capset, &header, data) < 0)
                log_warning("Launcher: could not bound its capabilities: %m");
        (void) prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

static int launcher_connect_system(Launcher *l) {
        int r;

        r = sd_bus_open_system(&l->system);
        if (r >= 0)
                r = sd_bus_attach_event(l->system, l->event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_match_signal(l->system, NULL, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "JobRemoved",
                                        on_job_removed, l);
        if (r >= 0)
                r = sd_bus_call_method(l->system, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "Subscribe", NULL,
                                       NULL, NULL);
        if (r < 0) {
                (void) log_full_errno(LOG_INFO, r, "No systemd manager reachable (%m): checkers run as plain process groups");
                l->system = sd_bus_flush_close_unref(l->system);
        }
        return r;
}

static void stop_unit(Launcher *l, const char *unit) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        if (sd_bus_call_method(l->system, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "StopUnit", &error, NULL,
                               "ss", unit, "replace") < 0 &&
            !sd_bus_error_has_name(&error, "org.freedesktop.systemd1.NoSuchUnit"))
                log_warning("Launcher: could not stop %s: %s", unit, error.message ?: "?");
}

/* Nothing the launcher made outlives it. */
static void launcher_stop_all(Launcher *l) {
        if (!l->system)
                return;
        LIST_FOREACH(pending, p, l->pending)
                if (p->unit)
                        (void) scopes_add(l, p->unit);
        if (l->n_scopes > 0)
                log_info("Launcher: stopping the checker scopes it made (%zu)", l->n_scopes);
        for (size_t i = 0; i < l->n_scopes; i++)
                stop_unit(l, l->scopes[i]);
}

/* Checker scopes of an earlier run of our service that outlived it: its
 * server was killed (systemd does not carry a restart over to the scopes
 * that are PartOf= it). */
static bool unit_part_of(Launcher *l, const char *path, const char *service) {
        char **part_of = NULL;
        bool found = false;

        if (sd_bus_get_property_strv(l->system, SYSTEMD_DEST, path, "org.freedesktop.systemd1.Unit", "PartOf",
                                     NULL, &part_of) < 0)
                return false;
        for (char **p = part_of; *p; p++) {
                found = found || streq(*p, service);
                free(*p);
        }
        free(part_of);
        return found;
}

static void launcher_stop_stale(Launcher *l) {
        sd_bus_message *reply = NULL;
        const char *name, *path;
        int r;

        if (!l->system || !l->own_service)
                return;
        r = sd_bus_call_method(l->system, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "ListUnitsByPatterns", NULL,
                               &reply, "asas", 0, 1, "mandos-checker-*.scope");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssssssouso)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssssssouso)", &name, NULL, NULL, NULL, NULL, NULL, &path,
                                                 NULL, NULL, NULL)) > 0) {
                if (!unit_part_of(l, path, l->own_service))
                        continue;
                log_info("Launcher: stopping %s, left by an earlier run of %s", name, l->own_service);
                stop_unit(l, name);
        }
        if (r < 0)
                log_warning_errno(r, "Launcher: could not list the checker scopes left behind: %m");
        sd_bus_message_unref(reply);
}

static int on_exit_stop_all(sd_event_source *s, void *userdata) {
        assert(userdata);
        launcher_stop_all(userdata);
        return 0;
}

static int on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int launcher_main(const char *configdir, int fd, pid_t server, uid_t uid, gid_t gid) {
        Launcher l = { .server = server, .uid = uid, .gid = gid, .configdir = configdir };
        sd_event_source *stop_all = NULL;
        sd_id128_t id;
        sigset_t mask;
        int r;

        /* Dies with the server; if it is already gone, go at once. */
        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != server)
                return -ESRCH;
        (void) signal(SIGINT, SIG_IGN);
        (void) signal(SIGHUP, SIG_IGN);
        (void) signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_SETMASK, &mask, NULL);
        launcher_bound_capabilities();

        r = sd_event_new(&l.event);
        if (r >= 0)
                r = sd_event_add_signal(l.event, NULL, SIGTERM, on_term, &l);
        /* Before sd-bus's own exit handlers close the system bus. */
        if (r >= 0)
                r = sd_event_add_exit(l.event, &stop_all, on_exit_stop_all, &l);
        if (r >= 0)
                r = sd_event_source_set_priority(stop_all, SD_EVENT_PRIORITY_IMPORTANT);
        if (r < 0)
                return log_error_errno(r, "Launcher: no event loop: %m");
        /* The system bus as root, first, and for the launcher only. */
        (void) launcher_connect_system(&l);
        if (sd_pid_get_unit(0, &l.own_service) < 0 || !endswith(l.own_service, ".service"))
                l.own_service = mfree(l.own_service);
        launcher_stop_stale(&l);

        r = sd_id128_randomize(&id);
        if (r >= 0)
                r = sd_bus_new(&l.link);
        if (r >= 0)
                r = sd_bus_set_fd(l.link, fd, fd);
        if (r >= 0)
                r = sd_bus_set_server(l.link, 1, id);
        /* Both ends were made by root: EXTERNAL would compare the server's
         * UID with root's, the socketpair's creator. The pair is private. */
        if (r >= 0)
                r = sd_bus_set_anonymous(l.link, 1);
        if (r >= 0)
                r = sd_bus_set_exit_on_disconnect(l.link, 1);
        if (r >= 0)
                r = sd_bus_add_object_vtable(l.link, NULL, LAUNCHER_PATH, LAUNCHER_INTERFACE, launcher_vtable, &l);
        if (r >= 0)
                r = sd_bus_attach_event(l.link, l.event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_start(l.link);
        if (r < 0)
                log_error_errno(r, "Launcher: cannot serve the channel: %m");
        else {
                log_debug("Launcher running (PID %d) for the server %d", (int) getpid(), (int) server);
                r = sd_event_loop(l.event);
        }
        stop_all = sd_event_source_unref(stop_all);
        while (l.pending)
                pending_free(&l, l.pending);
        for (size_t i = 0; i < l.n_scopes; i++)
                free(l.scopes[i]);
        free(l.scopes);
        free(l.own_service);
        l.link = sd_bus_flush_close_unref(l.link);
        l.system = sd_bus_flush_close_unref(l.system);
        sd_event_unref(l.event);
        log_debug("Launcher exiting");
        return r;
}

int launcher_fork(const char *configdir, uid_t server_uid, gid_t server_gid, const int *close_fds,
                  size_t n_close_fds, ClientsConf **conf, int *ret_fd, pid_t *ret_pid) {
        pid_t server = getpid(), pid;
        int pair[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return log_error_errno(errno, "Failed to make the launcher's channel: %m");
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                (void) close(pair[0]);
                (void) close(pair[1]);
                return log_error_errno(errno, "Failed to fork the launcher: %m");
        }
        if (pid == 0) {
                /* Never the network socket, nor the server's end. */
                for (size_t i = 0; i < n_close_fds; i++)
                        if (close_fds[i] >= 0)
                                (void) close(close_fds[i]);
                (void) close(pair[0]);
                if (conf)
                        *conf = clients_conf_free(*conf);
                (void) malloc_trim(0);
                _exit(launcher_main(configdir, pair[1], server, server_uid, server_gid) < 0 ? EXIT_FAILURE
                                                                                           : EXIT_SUCCESS);
        }
        (void) close(pair[1]);
        *ret_fd = pair[0];
        *ret_pid = pid;
        return 0;
}

/* ================================================================ server side */

int launcher_connect(int fd, sd_bus **ret) {
        sd_bus *b = NULL;
        int r;

        r = sd_bus_new(&b);
        if (r >= 0)
                r = sd_bus_set_fd(b, fd, fd);
        if (r >= 0)
                r = sd_bus_set_anonymous(b, 1);
        if (r >= 0)
                r = sd_bus_start(b);
        if (r < 0) {
                sd_bus_unref(b);
                return log_error_errno(r, "Failed to talk to the launcher: %m");
        }
        *ret = b;
        return 0;
}

#define LAUNCHER_CALL_TIMEOUT_USEC (10 * USEC_PER_SEC)

int launcher_read_configuration_async(sd_bus *link, sd_bus_slot **ret_slot, sd_bus_message_handler_t callback,
                                      void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        int r;

        /* Bounded (the launcher only reads files), and asynchronous: a slow
         * launcher must not hold the loop, which serves clients meanwhile. */
        r = sd_bus_message_new_method_call(link, &call, NULL, LAUNCHER_PATH, LAUNCHER_INTERFACE,
                                           "ReadConfiguration");
        if (r >= 0)
                r = sd_bus_call_async(link, ret_slot, call, callback, userdata, LAUNCHER_CALL_TIMEOUT_USEC);
        return r;
}

int launcher_map_sealed(int fd, const void **ret_map, size_t *ret_size) {
        struct stat st;
        void *map;
        int seals;

        /* Unsealed, the launcher's bytes could shrink under our mapping
         * (SIGBUS) or change between our checks and our parsing. Only a
         * memfd (or other shmem) has seals: F_GET_SEALS fails for the rest. */
        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0)
                return errno == EINVAL ? -EPERM : -errno;
        if ((seals & LAUNCHER_SEALS) != LAUNCHER_SEALS)
                return -EPERM;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size < 0)
                return -EBADF;
        if (st.st_size == 0) {
                *ret_map = NULL;
                *ret_size = 0;
                return 0;
        }
        map = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
                return -errno;
        /* Secrets: never in a core dump. */
        (void) madvise(map, (size_t) st.st_size, MADV_DONTDUMP);
        *ret_map = map;
        *ret_size = (size_t) st.st_size;
        return 0;
}

static int conf_files_from_reply(sd_bus_message *reply, const uint8_t *map, size_t map_size, ConfFiles *files) {
        const char *path, *why;
        uint64_t offset, size;
        uint8_t kind;
        int32_t err;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "(ysistt)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(reply, "(ysistt)", &kind, &path, &err, &why, &offset, &size)) > 0) {
                if (offset > map_size || size > map_size - offset || size > LAUNCHER_FILE_SIZE_MAX)
                        return -EBADMSG;
                r = conf_files_add(files, (char) kind, path, err, *why ? why : NULL, size ? (const void *) (map + offset) : "",
                                   (size_t) size);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(reply);
}

int launcher_configuration_reply(sd_bus_message *reply, ConfFiles *ret) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        ConfFiles files = { .replay = true };
        const void *map = NULL;
        size_t map_size = 0;
        int fd, r;

        if (e)
                return log_error_errno(sd_bus_message_get_errno(reply),
                                       "The launcher did not hand over the configuration: %s",
                                       e->message ?: e->name);
        r = sd_bus_message_read(reply, "h", &fd);
        if (r >= 0)
                r = launcher_map_sealed(fd, &map, &map_size);
        if (r == -EPERM)
                return log_error_errno(r, "The launcher handed over the configuration in an unsealed file: refused");
        /* The bytes are copied into the files (wiped when they are freed),
         * and the mapping goes at once. Not read() into a buffer of ours:
         * that would be one more copy of every secret to wipe, with the
         * same bytes still in the memfd's pages. The mapping is of those
         * very pages, read-only (sealed: explicit_bzero() on it is not
         * possible), and munmap() leaves nothing of ours behind; the pages
         * are the kernel's to free once the last fd (the launcher's reply,
         * this message's) is closed, which is right after this reload. */
        if (r >= 0)
                r = conf_files_from_reply(reply, map, map_size, &files);
        if (map)
                (void) munmap((void *) map, map_size);
        if (r < 0) {
                conf_files_done(&files);
                return log_error_errno(r, "Bad configuration from the launcher: %m");
        }
        *ret = files;
        return 0;
}

int launcher_start_scope_async(sd_bus *link, pid_t pid, const char *client, uint64_t runtime_max,
                               sd_bus_slot **ret_slot, sd_bus_message_handler_t callback, void *userdata) {
        return sd_bus_call_method_async(link, ret_slot, NULL, LAUNCHER_PATH, LAUNCHER_INTERFACE,
                                        "StartCheckerScope", callback, userdata, "ust", (uint32_t) pid, client,
                                        runtime_max);
}

int launcher_stop_scope(sd_bus *link, const char *unit) {
        return sd_bus_call_method_async(link, NULL, NULL, LAUNCHER_PATH, LAUNCHER_INTERFACE, "StopCheckerScope",
                                        NULL, NULL, "s", unit);
}
