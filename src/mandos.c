/* SPDX-License-Identifier: GPL-3.0-or-later */

/* mandos: hands each host of a fleet the OpenPGP-encrypted password of its
 * root file system, over TLS, when the host proves its key (mandos(8)). */

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "bus.h"
#include "clients-conf.h"
#include "launcher.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "secret-crypt.h"
#include "server.h"
#include "settings.h"
#include "util.h"
#include "zeroconf.h"

/* --check: every problem of the configuration, one line each. */
static int run_check(const Settings *settings) {
        _cleanup_(clients_conf_freep) ClientsConf *conf = NULL;
        _cleanup_free_ char *path = NULL;
        TlsContext tls;
        const char *error_pos = NULL;
        unsigned problems = 0;
        int r;

        r = tls_context_init(&tls, settings->priority, &error_pos);
        if (r < 0) {
                errno = -r;
                printf("%s/mandos.conf: [DEFAULT] priority: bad GnuTLS priority string at '%s': %m\n",
                       settings->configdir, strempty(error_pos));
                problems++;
        } else
                tls_context_done(&tls);

        if (asprintf(&path, "%s/clients.conf", settings->configdir) < 0)
                return log_oom();
        r = clients_conf_load_all(settings->configdir, &conf);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", path);
        for (size_t i = 0; i < conf->n_warnings; i++)
                fprintf(stderr, "warning: %s\n", conf->warnings[i]);
        for (size_t i = 0; i < conf->n_problems; i++)
                printf("%s\n", conf->problems[i]);
        problems += conf->n_problems;
        return problems > 0 ? 1 : 0;
}

static int load_clients(const Settings *settings, ClientsConf **ret) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (asprintf(&path, "%s/clients.conf", settings->configdir) < 0)
                return log_oom();
        r = clients_conf_load_all(settings->configdir, ret);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", path);
        if ((*ret)->unreadable) {
                /* Starting with part of the clients would forget the rest,
                 * and save that over their state (a disabled host would
                 * come back enabled once the file is readable again). */
                for (size_t i = 0; i < (*ret)->n_problems; i++)
                        log_error("%s", (*ret)->problems[i]);
                *ret = clients_conf_free(*ret);
                log_error("Not starting: the client configuration in %s could not be read", settings->configdir);
                return -EIO;
        }
        for (size_t i = 0; i < (*ret)->n_problems; i++)
                log_error("%s (client skipped)", (*ret)->problems[i]);
        for (size_t i = 0; i < (*ret)->n_warnings; i++)
                log_warning("%s", (*ret)->warnings[i]);
        return 0;
}

/* CAP_NET_RAW for the checkers (fping) across the setuid: in the
 * permitted, inheritable and ambient sets only, as the unit's
 * AmbientCapabilities= used to give it (drop_effective_capabilities()). */
static int keep_net_raw_for_checkers(void) {
        struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};

        if (syscall(SYS_capget, &header, data) < 0)
                return -errno;
        /* Whatever else PR_SET_KEEPCAPS kept goes. */
        data[0].permitted &= UINT32_C(1) << CAP_NET_RAW;
        data[0].inheritable = data[0].permitted;
        data[0].effective = 0;
        data[1].permitted = data[1].inheritable = data[1].effective = 0;
        if (syscall(SYS_capset, &header, data) < 0)
                return -errno;
        if (data[0].permitted && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_RAW, 0, 0) < 0)
                return -errno;
        return 0;
}

/* A unit without User= gets its StateDirectory= owned by root (systemd
 * chowns it to the unit's user): give the directory and the files in it,
 * those root owns, to the user the server becomes. Never following a link. */
static void give_state_dir(const char *dir, uid_t uid, gid_t gid) {
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        DIR *d;

        if (fd < 0 || fstat(fd, &st) < 0 || st.st_uid != 0)
                return;
        if (fchown(fd, uid, gid) < 0) {
                log_warning("Could not give %s to the server's user: %m", dir);
                return;
        }
        d = fdopendir(dup(fd));
        if (!d)
                return;
        for (struct dirent *e; (e = readdir(d));)
                if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
                    st.st_uid == 0)
                        (void) fchownat(fd, e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW);
        closedir(d);
}

/* Only what systemd made for us ($STATE_DIRECTORY, under /var/lib/), never
 * --statedir: an admin's typo must not hand a root directory to _mandos. */
static void give_state_dirs(uid_t uid, gid_t gid) {
        _cleanup_free_ char *dirs = strdup(getenv("STATE_DIRECTORY") ?: "");
        char *p, *save = NULL;

        if (!dirs)
                return;
        for (p = strtok_r(dirs, ":", &save); p; p = strtok_r(NULL, ":", &save))
                if (startswith(p, "/var/lib/") && !strstr(p, "/../"))
                        give_state_dir(p, uid, gid);
}

/* The reference's choice of user (launcher_server_user()). Unlike the
 * reference, also drop root's supplementary groups, and fail closed: a
 * server started as root that cannot leave root stops, unless mandos.conf
 * says run_as_root. */
static int drop_privileges(const Settings *settings) {
        bool net_raw = prctl(PR_CAPBSET_READ, CAP_NET_RAW) > 0;
        uid_t uid;
        gid_t gid;
        int r;

        if (geteuid() != 0)
                return 0;
        if (settings->run_as_root) {
                log_warning("Running as root, as mandos.conf's run_as_root asks");
                return 0;
        }
        launcher_server_user(&uid, &gid);
        if (net_raw && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
                net_raw = false;
        /* Unlike the reference, which carries on as root when it lacks the
         * capability (a unit whose bounding set has no CAP_SETUID). */
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
                return log_error_errno(errno, "Failed to setuid/setgid to %u:%u, not running as root: %m",
                                       uid, gid);
        if (net_raw) {
                (void) prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
                r = keep_net_raw_for_checkers();
                if (r < 0)
                        return log_error_errno(r, "Failed to drop the capabilities kept across setuid: %m");
        }
        /* Core dumps could hold secrets; setuid makes us non-dumpable, keep it so. */
        (void) prctl(PR_SET_DUMPABLE, 0);
        log_debug("Did setuid/setgid to %u:%u", uid, gid);
        return 0;
}

/* The server itself needs no capability. One it was given for its checkers
 * (CAP_NET_RAW for fping, as the shipped unit's AmbientCapabilities=) stays
 * in the permitted, inheritable and ambient sets, so that checkers get it at
 * exec, but leaves the effective set: the network-facing code cannot use it.
 * Root (run_as_root) keeps its effective set. */
static int drop_effective_capabilities(void) {
        struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};

        if (geteuid() == 0)
                return 0;
        if (syscall(SYS_capget, &header, data) < 0)
                return log_error_errno(errno, "Failed to read our capabilities: %m");
        if (!data[0].effective && !data[1].effective)
                return 0;
        data[0].effective = data[1].effective = 0;
        if (syscall(SYS_capset, &header, data) < 0)
                return log_error_errno(errno, "Failed to clear our effective capabilities: %m");
        log_debug("Cleared the effective capabilities; the ambient ones stay for checkers");
        return 0;
}

static int open_pid_file(char **ret_path) {
        struct stat st;
        const char *path = stat("/run", &st) == 0 && S_ISDIR(st.st_mode) ? "/run/mandos.pid" : "/var/run/mandos.pid";
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);

        if (fd < 0)
                log_error("Could not open file '%s'", path);
        *ret_path = strdup(path);
        return fd;
}

static void write_pid_file(int fd, const char *path) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());

        if (fd < 0)
                return;
        if (write(fd, buf, (size_t) n) != n)
                log_error("Could not write to file '%s' with PID %d", path, (int) getpid());
        (void) close(fd);
}

/* Detach as the reference does (mandos(8), PROCESS): fork, setsid, fork,
 * chdir /, stdio on /dev/null. */
static int daemonize(void) {
        pid_t pid;
        int fd;

        fflush(NULL);
        pid = fork();
        if (pid < 0)
                return log_error_errno(errno, "Failed to fork: %m");
        if (pid > 0)
                _exit(EXIT_SUCCESS);
        if (setsid() < 0)
                return log_error_errno(errno, "Failed to start a session: %m");
        pid = fork();
        if (pid < 0)
                return log_error_errno(errno, "Failed to fork: %m");
        if (pid > 0)
                _exit(EXIT_SUCCESS);
        if (chdir("/") < 0)
                return log_error_errno(errno, "Failed to change to /: %m");

        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "Failed to open /dev/null: %m");
        for (int i = 0; i <= 2; i++)
                if (dup2(fd, i) < 0)
                        return log_error_errno(errno, "Failed to redirect stdio: %m");
        if (fd > 2)
                (void) close(fd);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Server **server = userdata;

        assert(server);

        if (si->ssi_signo == SIGINT)
                log_debug("Server received KeyboardInterrupt");
        else
                log_debug("Server received signal %s", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1");
        if (!*server)
                return sd_event_exit(sd_event_source_get_event(s), 0);
        server_stop(*server);
        return 0;
}

/* A Secret set just before the end is answered and saved: its encryption
 * is waited for before sd-bus's own exit handler closes the bus. */
static int on_exit_wait_secrets(sd_event_source *s, void *userdata) {
        if (secret_encrypt_wait_all() > 0)
                log_debug("Waited for the encryption of a new secret");
        return 0;
}

static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Server *server = userdata;

        assert(server);

        loop_note("a reload (SIGHUP)");

        log_info("Reloading the configuration (SIGHUP)");
        server_reload(server);
        return 0;
}

static int run_server(const Settings *settings, ClientsConf **conf, int listen_fd, int pid_fd, const char *pid_path,
                      sd_bus *launcher) {
        _cleanup_(server_freep) Server *server = NULL;
        State *state = NULL;
        Zeroconf *zeroconf = NULL;
        sd_event *event = NULL;
        sd_event_source *wait_secrets = NULL;
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD); /* sd-event reaps checkers */
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to create the event loop: %m");
        r = sd_event_add_signal(event, NULL, SIGTERM, on_signal, &server);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_signal, &server);
        if (r >= 0)
                r = sd_event_add_exit(event, &wait_secrets, on_exit_wait_secrets, NULL);
        if (r >= 0)
                r = sd_event_source_set_priority(wait_secrets, SD_EVENT_PRIORITY_IMPORTANT);
        /* The loop owns it from here. */
        if (r >= 0)
                r = sd_event_source_set_floating(wait_secrets, true);
        wait_secrets = sd_event_source_unref(wait_secrets);
        if (r < 0) {
                sd_event_unref(event);
                return log_error_errno(r, "Failed to watch signals: %m");
        }

        if (launcher && (r = sd_bus_attach_event(launcher, event, SD_EVENT_PRIORITY_NORMAL)) < 0) {
                sd_event_unref(event);
                sd_bus_flush_close_unref(launcher);
                return log_error_errno(r, "Failed to watch the launcher's channel: %m");
        }
        r = server_new(event, settings, launcher, &server);
        if (r >= 0 && settings->use_dbus && bus_new(server, &server->bus) < 0)
                log_error("Disabling D-Bus: the system bus or our names are not available");
        if (r >= 0 && server->bus)
                bus_announce_later(server->bus);
        if (r >= 0)
                r = server_load_state(server, *conf, &state);
        if (r >= 0)
                r = server_add_clients(server, *conf, state);
        state = state_free(state);
        /* The clients took their settings from it: give the rest of the
         * parse's memory back (with ten thousand clients, megabytes). */
        *conf = clients_conf_free(*conf);
        (void) malloc_trim(0);
        /* Unlike the reference, whose SIGHUP stops it: reload clients.conf. */
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGHUP, on_reload, server);
        if (r >= 0)
                r = server_listen(server, listen_fd);
        else
                (void) close(listen_fd);
        if (r >= 0 && settings->zeroconf)
                r = zeroconf_new(event, settings, server->listen_fd, &zeroconf);
        if (r >= 0) {
                write_pid_file(pid_fd, pid_path);
                /* Listening, announced, and the bus names held (if any). */
                (void) sd_notify(false, "READY=1");
                server_notify_status(server);
                /* WATCHDOG=1 every half WatchdogSec=, if the unit sets one. */
                (void) sd_event_set_watchdog(event, true);
                log_debug("Starting main loop");
                r = loop_run(event);
        }
        zeroconf = zeroconf_free(zeroconf);
        /* Should the loop have failed: nothing runs on into the save. */
        (void) on_exit_wait_secrets(NULL, NULL);
        if (server)
                (void) server_save_state(server);
        server = server_free(server);
        sd_event_unref(event);
        log_debug("Server exiting");
        return r;
}

/* --import-pickle FILE (mandos(8)): the reference server's saved state
 * merged with clients.conf, as a first start would do it, into our state
 * directory, without serving. An existing state of ours is never
 * overwritten (move it away first); FILE is left as it is. The file is
 * opened as the caller, parsed and written as the server's user. */
static int run_import_pickle(const Settings *settings, ClientsConf *conf) {
        _cleanup_(server_freep) Server *server = NULL;
        _cleanup_(state_freep) State *state = NULL;
        _cleanup_free_ char *dir = strdup(!isempty(getenv("STATE_DIRECTORY")) ? getenv("STATE_DIRECTORY")
                                                                              : settings->statedir);
        _cleanup_free_ char *ours = NULL;
        _cleanup_close_ int fd = -1;
        sd_event *event = NULL;
        struct stat st;
        int r;

        if (!dir)
                return log_oom();
        dir[strcspn(dir, ":")] = 0;
        fd = open(settings->import_pickle, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return log_error_errno(errno, "Could not open %s: %m", settings->import_pickle);
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return log_error_errno(EINVAL, "Could not import %s: not a regular file", settings->import_pickle);
        if (asprintf(&ours, "%s/%s", dir, STATE_FILE_NAME) < 0)
                return log_oom();
        if (lstat(ours, &st) == 0 || errno != ENOENT)
                return log_error_errno(EEXIST, "Not importing %s: %s exists (move it away to import again)",
                                       settings->import_pickle, ours);
        r = drop_privileges(settings);
        if (r < 0)
                return r;
        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to create the event loop: %m");
        r = server_new(event, settings, NULL, &server);
        if (r >= 0)
                r = server_load_state(server, NULL, &state);
        if (r >= 0)
                r = server_import_pickle(server, conf, fd, settings->import_pickle, &state);
        if (r >= 0)
                r = server_add_clients(server, conf, state);
        if (r >= 0)
                r = server_write_state(server);
        if (r >= 0)
                log_info("Imported %s into %s: %zu clients", settings->import_pickle, ours, server->n_clients);
        server = server_free(server);
        sd_event_unref(event);
        return r;
}

int main(int argc, char *argv[]) {
        _cleanup_(clients_conf_freep) ClientsConf *conf = NULL;
        _cleanup_free_ char *pid_path = NULL;
        Settings settings;
        sd_bus *launcher = NULL;
        pid_t launcher_pid = 0;
        bool launched;
        int listen_fd, pid_fd = -1, link_fd = -1, r = 0;

        switch (settings_load(&settings, argc, argv)) {
        case SETTINGS_RUN:
                break;
        case SETTINGS_EXIT_OK:
                settings_done(&settings);
                return EXIT_SUCCESS;
        case SETTINGS_EXIT_USAGE:
                settings_done(&settings);
                return 2;
        case SETTINGS_EXIT_FAILURE:
                settings_done(&settings);
                return EXIT_FAILURE;
        }

        /* Secrets are in memory from here on: no core dump, and no ptrace or
         * /proc/PID/mem by our own user, whatever user we start as (the
         * setuid in drop_privileges() resets it; it is set again there). */
        (void) prctl(PR_SET_DUMPABLE, 0);

        if (settings.check) {
                r = run_check(&settings);
                settings_done(&settings);
                return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
        }

        log_set_max_level(settings.import_pickle ? MAX(settings.log_level, LOG_INFO) : settings.log_level);
        /* The journal is filtered when read (journalctl -p): under systemd,
         * keep the INFO events (secrets sent, checkers) unless told otherwise. */
        if (settings.foreground && log_target_for_foreground() == LOG_TARGET_JOURNAL && !settings.debug &&
            !settings.debuglevel)
                log_set_max_level(LOG_INFO);
        log_set_service_name(settings.servicename);
        log_open(settings.foreground || settings.import_pickle ? log_target_for_foreground() : LOG_TARGET_SYSLOG);
        (void) signal(SIGPIPE, SIG_IGN);

        if (tls_priority_allows_rawpk(settings.priority) == 0)
                log_warning("The GnuTLS priority string lacks +CTYPE-RAWPK: clients with raw public keys "
                            "(all current ones) cannot connect");

        r = load_clients(&settings, &conf);
        if (r < 0)
                goto finish;
        if (settings.import_pickle) {
                r = run_import_pickle(&settings, conf);
                goto finish;
        }

        listen_fd = listener_open(&settings);
        if (listen_fd < 0) {
                r = listen_fd;
                goto finish;
        }
        if (!settings.foreground)
                pid_fd = open_pid_file(&pid_path);
        /* Root: a launcher keeps what needs root, the server drops it
         * (src/launcher.h). The launcher is the final server's child. */
        launched = geteuid() == 0 && !settings.run_as_root;
        if (launched) {
                uid_t uid;
                gid_t gid;
                int fds[] = { listen_fd, pid_fd };

                launcher_server_user(&uid, &gid);
                give_state_dirs(uid, gid);
                if (!settings.foreground)
                        r = daemonize();
                if (r >= 0)
                        r = launcher_fork(settings.configdir, uid, gid, fds, ELEMENTSOF(fds), &conf, &link_fd,
                                          &launcher_pid);
        }
        if (r >= 0)
                r = drop_privileges(&settings);
        if (r >= 0)
                r = drop_effective_capabilities();
        if (r >= 0 && !settings.foreground && !launched)
                r = daemonize();
        if (r >= 0 && link_fd >= 0) {
                r = launcher_connect(link_fd, &launcher);
                link_fd = -1;
        }
        if (r < 0) {
                (void) close(listen_fd);
                if (link_fd >= 0)
                        (void) close(link_fd);
                goto finish;
        }
        r = run_server(&settings, &conf, listen_fd, pid_fd, pid_path, launcher);

finish:
        settings_done(&settings);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
