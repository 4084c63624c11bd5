/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "checker.h"

#include <assert.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <signal.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

#include "launcher.h"
#include "log.h"
#include "loop.h"
#include "thread-util.h"
#include "util.h"

/* One process for the spawner thread to start, and its outcome. */
typedef struct SpawnJob SpawnJob;
struct SpawnJob {
        SpawnJob *next;
        Checker *checker;            /* the loop's; the thread never touches it */
        char *argv2;                 /* what "/bin/sh -c" runs */
        int go_fd;                   /* the child's fd 3 (scope backend), or -1 */
        bool keep_stderr;
        pid_t pid;                   /* set by the thread, */
        int error;                   /* or this, -errno */
        /* For the loop, once spawned: */
        char *name;                  /* the client's name, for its scope */
        uint64_t runtime_max;
};

struct CheckerManager {
        sd_event *event;
        unsigned max_running;
        unsigned n_running;          /* Checker objects alive, stopping ones included */
        bool keep_stderr;

        CheckerRequest *queue_head, *queue_tail; /* FIFO of requests waiting for a slot */
        size_t queue_len;

        bool use_scopes;             /* false once the manager proved unreachable */
        sd_bus *bus;                 /* to the systemd manager, for scopes */
        sd_bus *launcher;            /* or to the root launcher, which makes them */
        sd_bus_slot *job_removed;
        unsigned serial;

        char *program;               /* the last name is_program() looked up, */
        bool program_found;          /* and whether it was found */

        LIST_HEAD(Checker, checkers); /* every live checker */
        sd_event_source *queue_runner; /* starts queued checkers, a few each iteration */
        uint64_t spawn_iteration;    /* the loop iteration spawns_left counts for */
        unsigned spawns_left;

        /* The spawner thread: posix_spawn() returns once the child has
         * exec'd (a vfork), which on a busy machine takes a good part of a
         * millisecond, and the loop must not wait for it. */
        bool spawner_started;
        pthread_t spawner;
        pthread_mutex_t lock;
        pthread_cond_t wake;         /* todo went non-empty, or stopping */
        SpawnJob *todo, **todo_tail; /* under lock */
        SpawnJob *done, **done_tail; /* under lock */
        bool stopping;               /* under lock */
        int done_fd;                 /* eventfd: done went non-empty */
        sd_event_source *done_source;
};

/* Checkers started per loop iteration, at most: the loop's part of each
 * (the command expanded, the client's signals) is tens of microseconds;
 * the rest wait in the queue for the next iterations. */
#define SPAWNS_PER_ITERATION 8

struct Checker {
        CheckerManager *manager;
        LIST_FIELDS(Checker, checkers);
        CheckerRequest *request;     /* NULL once stopped: nobody hears of the end */
        pid_t pid;                   /* also the process group; 0 while the spawner starts it */
        bool exited;
        int go_fd;                   /* write end: one byte lets the child exec */
        char *scope;                 /* unit name, scope backend */
        char *job;                   /* job path of StartTransientUnit */
        sd_bus_slot *start_slot;
        sd_event_source *child_source;
        sd_event_source *timer;      /* scope set-up deadline, then SIGKILL after the grace period */
};

/* ---------------------------------------------------------------- processes */

static void manager_run_queue(CheckerManager *m);
static void start_queued(CheckerManager *m);
static void checker_stop(Checker *ch);

/* Takes one spawn of this iteration's SPAWNS_PER_ITERATION, if one is left. */
static bool spawn_budget(CheckerManager *m) {
        uint64_t iteration = 0;

        (void) sd_event_get_iteration(m->event, &iteration);
        if (iteration != m->spawn_iteration) {
                m->spawn_iteration = iteration;
                m->spawns_left = SPAWNS_PER_ITERATION;
        }
        if (m->spawns_left == 0)
                return false;
        m->spawns_left--;
        return true;
}

static Checker *checker_free(Checker *ch) {
        CheckerManager *m = ch->manager;

        LIST_REMOVE(checkers, m->checkers, ch);
        ch->child_source = sd_event_source_disable_unref(ch->child_source);
        ch->timer = sd_event_source_disable_unref(ch->timer);
        ch->start_slot = sd_bus_slot_unref(ch->start_slot);
        if (ch->go_fd >= 0)
                (void) close(ch->go_fd);
        free(ch->scope);
        free(ch->job);
        free(ch);
        m->n_running--;
        return NULL;
}

/* Let the child exec (once; closing the pipe without a byte makes it exit). */
static void checker_release(Checker *ch) {
        if (ch->go_fd < 0)
                return;
        (void) write(ch->go_fd, "g\n", 2);
        (void) close(ch->go_fd);
        ch->go_fd = -1;
        ch->timer = sd_event_source_disable_unref(ch->timer);
}

static void stop_scope(Checker *ch) {
        CheckerManager *m = ch->manager;

        if (ch->scope && m->launcher) {
                (void) launcher_stop_scope(m->launcher, ch->scope);
                ch->scope = mfree(ch->scope);
                return;
        }
        if (!ch->scope || !m->bus)
                return;
        (void) sd_bus_call_method_async(m->bus, NULL, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                        "org.freedesktop.systemd1.Manager", "StopUnit", NULL, NULL, "ss",
                                        ch->scope, "replace");
}

static int on_kill_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Checker *ch = userdata;

        assert(ch);
        if (ch->go_fd >= 0) {
                /* The scope never came: run the checker where it is. */
                log_warning("The systemd manager did not set up %s in time; the checker runs outside it",
                            ch->scope ?: "the checker's scope");
                checker_release(ch);
                return 0;
        }
        (void) kill(-ch->pid, SIGKILL);
        return 0;
}

static int on_checker_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Checker *ch = userdata;
        CheckerRequest *req;

        assert(ch);
        req = ch->request;
        loop_note("the exit of checker process %d", (int) ch->pid);

        ch->exited = true;
        /* Reap it now (sd-event would, after this callback) so that its slot
         * is free only once the process is really gone. */
        siginfo_t reaped;
        (void) waitid(P_PID, (id_t) ch->pid, &reaped, WEXITED | WNOHANG);
        /* Whatever the command left behind in its group goes with it. */
        (void) kill(-ch->pid, SIGKILL);
        stop_scope(ch);

        if (req) {
                ch->request = NULL;
                req->process = NULL;
                if (si->si_code == CLD_EXITED)
                        req->ops->finished(req, si->si_status, 0);
                else
                        req->ops->finished(req, -1, si->si_status);
        }
        CheckerManager *m = ch->manager;
        checker_free(ch);
        /* The freed slot goes to the next one waiting, now. */
        start_queued(m);
        return 0;
}

/* A checker in a scope must not run before the scope exists: it first
 * waits for one line "g" on fd 3, then becomes "/bin/sh -c COMMAND". */
static const char scope_wrapper[] =
        "IFS= read -r go <&3 && [ \"$go\" = g ] || exit 1; exec 3<&-; exec /bin/sh -c \"$1\"";

/* Is word an executable the shell would run (no keyword, no builtin, no
 * assignment), found the way the shell finds it? A builtin such as `true`,
 * `test` or `echo` runs inside the shell as it is: exec'ing the program of
 * that name would add a second exec to every checker (twice the cost of
 * the spawn) and change which implementation runs. */
static bool is_program(const char *word, size_t len) {
        static const char *const keywords[] = {
                "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while",
                "until", "do", "done", "in", "function", "time",
                /* dash(1) and POSIX special and regular builtins */
                "[", "alias", "bg", "break", "cd", "chdir", "command", "continue", "echo", "eval", "exec",
                "exit", "export", "false", "fc", "fg", "getopts", "hash", "jobs", "kill", "local", "printf",
                "pwd", "read", "readonly", "return", "set", "shift", "test", "times", "trap", "true", "type",
                "ulimit", "umask", "unalias", "unset", "wait",
        };
        _cleanup_free_ char *name = strndup(word, len), *path = NULL;
        const char *dirs = getenv("PATH") ?: "/usr/bin:/bin";

        if (!name || len == 0 || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                              "0123456789_./+-") != len)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(keywords); i++)
                if (streq(name, keywords[i]))
                        return false;
        if (strchr(name, '/'))
                return access(name, X_OK) == 0;
        for (const char *d = dirs;; d += strcspn(d, ":") + 1) {
                int n = (int) strcspn(d, ":");
                free(path);
                if (asprintf(&path, "%.*s/%s", n, n ? d : ".", name) < 0)
                        return false;
                if (access(path, X_OK) == 0)
                        return true;
                if (!d[n])
                        return false;
        }
}

/* is_program(), remembered for the last name: thousands of clients have
 * the same checker, and a PATH search costs an access() per directory at
 * every spawn. A stale answer changes only whether the shell execs or
 * forks the program, never what runs or its result. */
static bool is_program_cached(CheckerManager *m, const char *word, size_t len) {
        if (m->program && strlen(m->program) == len && strncmp(m->program, word, len) == 0)
                return m->program_found;
        free(m->program);
        m->program = strndup(word, len);
        m->program_found = is_program(word, len);
        return m->program_found;
}

/* "exec COMMAND" when COMMAND is one simple command: the shell then becomes
 * the program instead of waiting for it, one process per checker instead of
 * two (ten thousand clients under a cap of 64: 65 processes, not 129). Lists,
 * pipes, redirections, substitutions, assignments and keywords are left as
 * they are, and so is a shell builtin. Returns NULL if
 * the command is not simple or on ENOMEM. */
static char *exec_form(CheckerManager *m, const char *command) {
        const char *w = command + strspn(command, " \t");
        char *r;

        if (command[strcspn(command, ";&|<>()`$\n")] || !is_program_cached(m, w, strcspn(w, " \t")))
                return NULL;
        return asprintf(&r, "exec %s", command) < 0 ? NULL : r;
}

/* posix_spawn (a vfork underneath): forking a copy of the server for each
 * checker costs far more, in page-table copies, at thousands of checkers.
 * Runs in the spawner thread: it reads its arguments and the environment,
 * which nothing changes once the server runs. */
static int spawn_process(const char *cmd, int go_fd, bool keep_stderr, pid_t *ret) {
        char *argv_plain[] = { "sh", "-c", (char *) cmd, NULL };
        char *argv_scope[] = { "sh", "-c", (char *) scope_wrapper, "mandos-checker", (char *) cmd, NULL };
        posix_spawn_file_actions_t actions;
        posix_spawnattr_t attr;
        sigset_t none, pipe_only;
        int r;

        sigemptyset(&none);
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        r = posix_spawnattr_init(&attr);
        if (r != 0)
                return -r;
        r = posix_spawn_file_actions_init(&actions);
        if (r != 0) {
                posix_spawnattr_destroy(&attr);
                return -r;
        }
        /* Its own process group (so it can be killed as a whole), none of the
         * signals the server blocks for sd-event, SIGPIPE back to default. */
        (void) posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        (void) posix_spawnattr_setpgroup(&attr, 0);
        (void) posix_spawnattr_setsigmask(&attr, &none);
        (void) posix_spawnattr_setsigdefault(&attr, &pipe_only);

        r = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        if (r == 0 && !keep_stderr)
                r = posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
        if (r == 0 && go_fd >= 0)
                r = posix_spawn_file_actions_adddup2(&actions, go_fd, 3);
        if (r == 0)
                r = posix_spawn_file_actions_addclosefrom_np(&actions, go_fd >= 0 ? 4 : 3);
        if (r == 0)
                r = posix_spawn_file_actions_addchdir_np(&actions, "/");
        if (r == 0)
                r = posix_spawn(ret, "/bin/sh", &actions, &attr, go_fd >= 0 ? argv_scope : argv_plain, environ);
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
        return -r;
}

static SpawnJob *spawn_job_free(SpawnJob *job) {
        if (!job)
                return NULL;
        if (job->go_fd >= 0)
                (void) close(job->go_fd);
        free(job->argv2);
        free(job->name);
        free(job);
        return NULL;
}

/* Appends job to the list at head, whose last next pointer is *tail;
 * true if the list was empty. */
static bool jobs_append(SpawnJob **head, SpawnJob ***tail, SpawnJob *job) {
        job->next = NULL;
        **tail = job;
        *tail = &job->next;
        return *head == job;
}

static void spawn_job_freep(SpawnJob **job) {
        spawn_job_free(*job);
}

/* The spawner thread: starts the jobs in order, hands each back. */
static void *spawner_main(void *userdata) {
        CheckerManager *m = userdata;

        pthread_mutex_lock(&m->lock);
        for (;;) {
                SpawnJob *job = m->todo;

                if (m->stopping)
                        break;
                if (!job) {
                        pthread_cond_wait(&m->wake, &m->lock);
                        continue;
                }
                m->todo = job->next;
                if (!m->todo)
                        m->todo_tail = &m->todo;
                pthread_mutex_unlock(&m->lock);

                job->error = spawn_process(job->argv2, job->go_fd, job->keep_stderr, &job->pid);

                pthread_mutex_lock(&m->lock);
                /* The loop takes the whole list when woken: one wake-up for
                 * as many as are done by then. */
                if (jobs_append(&m->done, &m->done_tail, job))
                        (void) eventfd_write(m->done_fd, 1);
        }
        pthread_mutex_unlock(&m->lock);
        return NULL;
}

static int on_spawned(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static int spawner_start(CheckerManager *m) {
        int r;

        if (m->spawner_started)
                return 0;
        m->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m->done_fd < 0)
                return -errno;
        r = sd_event_add_io(m->event, &m->done_source, m->done_fd, EPOLLIN, on_spawned, m);
        if (r >= 0)
                r = thread_start(&m->spawner, spawner_main, m);
        if (r < 0) {
                m->done_source = sd_event_source_disable_unref(m->done_source);
                (void) close(m->done_fd);
                m->done_fd = -1;
                return r;
        }
        m->spawner_started = true;
        return 0;
}

static void spawner_push(CheckerManager *m, SpawnJob *job) {
        pthread_mutex_lock(&m->lock);
        if (jobs_append(&m->todo, &m->todo_tail, job))
                pthread_cond_signal(&m->wake);
        pthread_mutex_unlock(&m->lock);
}

/* Stops the thread after the process it is starting, if any; the jobs
 * it did not start stay in m->todo, those it did in m->done. */
static void spawner_stop(CheckerManager *m) {
        if (!m->spawner_started)
                return;
        pthread_mutex_lock(&m->lock);
        m->stopping = true;
        pthread_cond_signal(&m->wake);
        pthread_mutex_unlock(&m->lock);
        (void) pthread_join(m->spawner, NULL);
        m->spawner_started = false;
        m->done_source = sd_event_source_disable_unref(m->done_source);
        (void) close(m->done_fd);
        m->done_fd = -1;
}

static int on_start_unit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Checker *ch = userdata;
        CheckerManager *m = ch->manager;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *job;

        assert(ch);
        ch->start_slot = sd_bus_slot_unref(ch->start_slot);
        if (e) {
                log_warning("The systemd manager refused the checker scope %s (%s); checkers run as "
                            "plain process groups from now on", ch->scope, e->message ?: e->name);
                m->use_scopes = false;
                ch->scope = mfree(ch->scope);
                checker_release(ch);
                return 0;
        }
        if (sd_bus_message_read(reply, "o", &job) < 0 || !(ch->job = strdup(job)))
                checker_release(ch);
        return 0;
}

static int on_job_removed(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        CheckerManager *m = userdata;
        const char *job, *unit, *result;
        uint32_t id;

        assert(m);
        if (sd_bus_message_read(message, "uoss", &id, &job, &unit, &result) < 0)
                return 0;
        LIST_FOREACH(checkers, ch, m->checkers)
                if (ch->job && streq(ch->job, job)) {
                        if (!streq(result, "done"))
                                log_warning("Checker scope %s: %s", unit, result);
                        checker_release(ch);
                        break;
                }
        return 0;
}

/* Without the subscription no JobRemoved comes, and a checker would wait
 * for its scope until on_kill_timer(): no scopes from now on. */
static int on_subscribe_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        CheckerManager *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        assert(m);
        if (e) {
                log_info("No systemd manager reachable (%s): checkers run as plain process groups",
                         e->message ?: e->name);
                m->use_scopes = false;
        }
        return 0;
}

static int manager_connect_systemd(CheckerManager *m) {
        int r;

        if (m->bus)
                return 0;
        r = sd_bus_open_system(&m->bus);
        if (r >= 0)
                r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        /* JobRemoved tells when a scope exists; systemd sends it to subscribers only. */
        if (r >= 0)
                r = sd_bus_match_signal_async(m->bus, &m->job_removed, "org.freedesktop.systemd1",
                                              "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                                              "JobRemoved", on_job_removed, NULL, m);
        /* Asynchronous like every other call here: a busy or hung manager
         * must not hold up the loop. The StartTransientUnit that follows is
         * queued behind it, and the manager answers in order. */
        if (r >= 0)
                r = sd_bus_call_method_async(m->bus, NULL, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                             "org.freedesktop.systemd1.Manager", "Subscribe", on_subscribe_reply, m,
                                             NULL);
        if (r < 0) {
                (void) log_full_errno(LOG_INFO, r,
                                      "No systemd manager reachable (%m): checkers run as plain process groups");
                m->job_removed = sd_bus_slot_unref(m->job_removed);
                m->bus = sd_bus_flush_close_unref(m->bus);
                m->use_scopes = false;
        }
        return r;
}

char *checker_scope_name(const char *client, unsigned serial) {
        FILE *f;
        char *buf = NULL;
        size_t size = 0;

        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        fputs("mandos-checker-", f);
        for (const unsigned char *p = (const unsigned char *) client; *p; p++)
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    *p == ':' || *p == '_' || *p == '.' || *p == '-')
                        fputc(*p, f);
                else
                        fprintf(f, "\\x%02x", *p);
        fprintf(f, "-%u.scope", serial);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* The launcher's answer: the scope's name, or why not. */
static int on_launcher_scope_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Checker *ch = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *unit;

        assert(ch);
        ch->start_slot = sd_bus_slot_unref(ch->start_slot);
        if (e && sd_bus_error_has_name(e, LAUNCHER_ERROR_NO_MANAGER)) {
                /* Asking for every checker would cost a round trip to the
                 * launcher and a warning each, at thousands of checkers a
                 * minute; the launcher has said why, once. */
                if (ch->manager->use_scopes)
                        log_debug("The launcher has no systemd manager (%s): no more scopes asked for",
                                  e->message ?: e->name);
                ch->manager->use_scopes = false;
        } else if (e || sd_bus_message_read(reply, "s", &unit) < 0 || !(ch->scope = strdup(unit)))
                log_warning("No scope for the checker of PID %d (%s); it runs as a plain process group",
                            (int) ch->pid, e ? e->message ?: e->name : "bad reply");
        checker_release(ch);
        return 0;
}

static int arm_scope_timer(Checker *ch) {
        CheckerManager *m = ch->manager;
        uint64_t now;
        int r;

        /* Should the manager never answer, run the checker anyway after a while. */
        r = sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (r >= 0)
                r = sd_event_add_time(m->event, &ch->timer, CLOCK_MONOTONIC, now + 5 * USEC_PER_SEC, 0,
                                      on_kill_timer, ch);
        return r;
}

static int start_scope(Checker *ch, const char *name, uint64_t runtime_max) {
        CheckerManager *m = ch->manager;
        _cleanup_free_ char *description = NULL;
        sd_bus_message *msg = NULL;
        int r;

        if (m->launcher) {
                r = launcher_start_scope_async(m->launcher, ch->pid, name, runtime_max,
                                               &ch->start_slot, on_launcher_scope_reply, ch);
                return r < 0 ? r : arm_scope_timer(ch);
        }

        ch->scope = checker_scope_name(name, ++m->serial);
        if (!ch->scope || asprintf(&description, "Mandos checker for %s", name) < 0)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(m->bus, &msg, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                           "org.freedesktop.systemd1.Manager", "StartTransientUnit");
        if (r >= 0)
                r = sd_bus_message_append(msg, "ss", ch->scope, "fail");
        if (r >= 0)
                r = sd_bus_message_append(msg, "a(sv)", 7,
                                          "Description", "s", description,
                                          /* Stopping means stopping: SIGKILL after the grace period. */
                                          "TimeoutStopUSec", "t", (uint64_t) CHECKER_KILL_GRACE,
                                          "PIDs", "au", 1, (uint32_t) ch->pid,
                                          "CollectMode", "s", "inactive-or-failed",
                                          "TasksMax", "t", (uint64_t) 64,
                                          "MemoryMax", "t", (uint64_t) 256 * 1024 * 1024,
                                          "RuntimeMaxUSec", "t", runtime_max);
        if (r >= 0)
                r = sd_bus_message_append(msg, "a(sa(sv))", 0);
        if (r >= 0)
                r = sd_bus_call_async(m->bus, &ch->start_slot, msg, on_start_unit_reply, ch, 0);
        sd_bus_message_unref(msg);
        if (r < 0)
                return r;
        return arm_scope_timer(ch);
}

/* Stops a checker that never ran, as if /bin/sh could not run it: exit
 * status 127 (posix_spawn's child exits so when its exec fails). */
static void spawn_failed(CheckerManager *m, Checker *ch) {
        CheckerRequest *req = ch->request;

        if (req) {
                ch->request = NULL;
                req->process = NULL;
                req->ops->finished(req, 127, 0);
        }
        checker_free(ch);
        start_queued(m);
}

/* The spawner's outcome for one checker: watch it and put it in its scope;
 * or, if it was stopped meanwhile, stop it. */
static void spawn_finished(CheckerManager *m, SpawnJob *job) {
        Checker *ch = job->checker;
        int r;

        if (job->error < 0) {
                log_error_errno(job->error, "Failed to start a checker: %m");
                spawn_failed(m, ch);
                return;
        }
        ch->pid = job->pid;
        r = sd_event_add_child(m->event, &ch->child_source, ch->pid, WEXITED, on_checker_exit, ch);
        if (r < 0) {
                /* Cannot watch it: do not leave it behind either. */
                log_error_errno(r, "Failed to watch checker process %d: %m", (int) ch->pid);
                (void) kill(-ch->pid, SIGKILL);
                (void) waitpid(ch->pid, NULL, 0);
                spawn_failed(m, ch);
                return;
        }
        if (!ch->request) {
                checker_stop(ch);
                return;
        }
        if (ch->go_fd >= 0 && start_scope(ch, job->name, job->runtime_max) < 0) {
                log_warning("Could not ask for a checker scope; the checker runs as a plain process group");
                ch->scope = mfree(ch->scope);
                checker_release(ch);
        }
}

static int on_spawned(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        CheckerManager *m = userdata;
        SpawnJob *done;
        eventfd_t n;

        assert(m);
        (void) eventfd_read(fd, &n);
        pthread_mutex_lock(&m->lock);
        done = m->done;
        m->done = NULL;
        m->done_tail = &m->done;
        pthread_mutex_unlock(&m->lock);
        while (done) {
                SpawnJob *job = done;
                done = job->next;
                spawn_finished(m, job);
                spawn_job_free(job);
        }
        return 0;
}

/* Hands the checker to the spawner thread. It counts as started from now,
 * as the reference's does once it has forked the process that will run it:
 * its slot is taken and its client told. */
static int checker_spawn(CheckerManager *m, CheckerRequest *req, bool waited) {
        _cleanup_(spawn_job_freep) SpawnJob *job = NULL;
        _cleanup_free_ char *command = NULL;
        _cleanup_close_ int go_fd = -1;     /* the write end, the checker's once handed over */
        const char *name = NULL;
        uint64_t runtime_max = 0;
        Checker *ch;
        int r;

        r = spawner_start(m);
        if (r < 0)
                return log_error_errno(r, "Failed to start the checker spawner thread: %m");
        r = req->ops->prepare(req, &command, &name, &runtime_max);
        if (r < 0)
                return r;
        job = calloc(1, sizeof(SpawnJob));
        if (!job)
                return -ENOMEM;
        job->go_fd = -1;
        if (m->use_scopes && (m->launcher || manager_connect_systemd(m) >= 0)) {
                int pipefd[2];

                if (pipe2(pipefd, O_CLOEXEC) < 0)
                        return -errno;
                job->go_fd = pipefd[0];
                go_fd = pipefd[1];
                job->name = strdup(name);
                if (!job->name)
                        return -ENOMEM;
        }
        job->argv2 = exec_form(m, command) ?: strdup(command);
        ch = calloc(1, sizeof(Checker));
        if (!job->argv2 || !ch) {
                free(ch);
                return -ENOMEM;
        }
        job->keep_stderr = m->keep_stderr;
        job->runtime_max = runtime_max;
        job->checker = ch;
        ch->manager = m;
        ch->go_fd = TAKE_FD(go_fd);
        LIST_PREPEND(checkers, m->checkers, ch);
        m->n_running++;
        ch->request = req;
        req->process = ch;
        spawner_push(m, TAKE_PTR(job));
        req->ops->started(req, command, waited);
        return 0;
}

/* ---------------------------------------------------------------- the queue */

/* The queue_prev of the first in line: not NULL, so that queue_prev alone
 * says whether a request waits (no flag in each of 100,000 clients). */
static CheckerRequest queue_first;

static void queue_push(CheckerManager *m, CheckerRequest *req) {
        req->queue_next = NULL;
        req->queue_prev = m->queue_tail ?: &queue_first;
        if (m->queue_tail)
                m->queue_tail->queue_next = req;
        else
                m->queue_head = req;
        m->queue_tail = req;
        m->queue_len++;
}

static void queue_remove(CheckerManager *m, CheckerRequest *req) {
        CheckerRequest *prev = req->queue_prev == &queue_first ? NULL : req->queue_prev, *next = req->queue_next;

        if (!checker_request_queued(req))
                return;
        if (prev)
                prev->queue_next = next;
        else
                m->queue_head = next;
        if (next)
                next->queue_prev = req->queue_prev;
        else
                m->queue_tail = prev;
        req->queue_next = req->queue_prev = NULL;
        m->queue_len--;
}

static CheckerRequest *queue_pop(CheckerManager *m) {
        CheckerRequest *req = m->queue_head;

        if (req)
                queue_remove(m, req);
        return req;
}

/* Start queued checkers into the free slots, within this iteration's
 * spawn budget, and leave the rest to the runner; a slot counts as free
 * only once its process was reaped. A cancelled request has left the queue
 * already. */
static void start_queued(CheckerManager *m) {
        while (m->queue_len > 0 && m->n_running < m->max_running && spawn_budget(m))
                (void) checker_spawn(m, queue_pop(m), true);
        manager_run_queue(m);
}

/* The runner has the loop's normal priority: at idle priority it would
 * wait for a moment with nothing else to do, which a checker storm never
 * leaves (the exits keep coming). */
static int on_run_queue(sd_event_source *s, void *userdata) {
        CheckerManager *m = userdata;

        assert(m);
        loop_note("starting queued checkers");
        start_queued(m);
        return 0;
}

static void manager_run_queue(CheckerManager *m) {
        int r;

        if (m->queue_len == 0 || m->n_running >= m->max_running)
                return;
        if (!m->queue_runner) {
                r = sd_event_add_defer(m->event, &m->queue_runner, on_run_queue, m);
                if (r < 0) {
                        log_error_errno(r, "Failed to schedule queued checkers: %m");
                        return;
                }
        }
        (void) sd_event_source_set_enabled(m->queue_runner, SD_EVENT_ONESHOT);
}

int checker_request(CheckerManager *m, CheckerRequest *req) {
        if (req->process || checker_request_queued(req))
                return 0; /* never two at once for one client */
        /* First come, first served: nobody passes the queue. */
        if (m->n_running < m->max_running && m->queue_len == 0 && spawn_budget(m))
                return checker_spawn(m, req, false);
        queue_push(m, req);
        manager_run_queue(m);
        return 0;
}

static void checker_stop(Checker *ch) {
        CheckerManager *m = ch->manager;
        uint64_t now;

        if (ch->request)
                ch->request->process = NULL;
        ch->request = NULL;
        /* Not started yet: spawn_finished() stops it once it is. */
        if (ch->exited || ch->pid == 0)
                return;
        /* A child still waiting for its scope just exits when the pipe closes. */
        if (ch->go_fd >= 0) {
                (void) close(ch->go_fd);
                ch->go_fd = -1;
        }
        stop_scope(ch);
        (void) kill(-ch->pid, SIGTERM);
        ch->timer = sd_event_source_disable_unref(ch->timer);
        if (sd_event_now(m->event, CLOCK_MONOTONIC, &now) >= 0)
                (void) sd_event_add_time(m->event, &ch->timer, CLOCK_MONOTONIC, now + CHECKER_KILL_GRACE, 0,
                                         on_kill_timer, ch);
}

void checker_cancel(CheckerManager *m, CheckerRequest *req) {
        queue_remove(m, req);
        if (req->process)
                checker_stop(req->process);
}

unsigned checker_manager_queued(const CheckerManager *m) {
        return (unsigned) m->queue_len;
}

int checker_manager_new(sd_event *event, unsigned max_running, bool keep_stderr, bool use_scopes,
                        sd_bus *launcher, CheckerManager **ret) {
        CheckerManager *m = calloc(1, sizeof(CheckerManager));

        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(event);
        m->max_running = max_running ?: 1;
        m->spawn_iteration = UINT64_MAX; /* not the loop's first iteration, 0 */
        m->keep_stderr = keep_stderr;
        m->launcher = launcher;
        m->use_scopes = use_scopes || launcher;
        m->todo_tail = &m->todo;
        m->done_tail = &m->done;
        m->done_fd = -1;
        (void) pthread_mutex_init(&m->lock, NULL);
        (void) pthread_cond_init(&m->wake, NULL);
        if (!m->use_scopes)
                log_info("Not running as root: checkers run as plain process groups");
        *ret = m;
        return 0;
}

CheckerManager *checker_manager_free(CheckerManager *m) {
        if (!m)
                return NULL;
        while (queue_pop(m))
                ;
        m->queue_runner = sd_event_source_disable_unref(m->queue_runner);
        /* Shutting down: nothing may be left behind. The spawner's jobs
         * name checkers that are in m->checkers; those it started get
         * their PID, to be killed with the rest. */
        spawner_stop(m);
        for (SpawnJob *job = m->done, *next; job; job = next) {
                next = job->next;
                if (job->error == 0)
                        job->checker->pid = job->pid;
                spawn_job_free(job);
        }
        for (SpawnJob *job = m->todo, *next; job; job = next) {
                next = job->next;
                spawn_job_free(job);
        }
        m->todo = m->done = NULL;
        while (m->checkers) {
                Checker *ch = m->checkers;
                if (!ch->exited && ch->pid > 0) {
                        (void) kill(-ch->pid, SIGKILL);
                        stop_scope(ch);
                        (void) waitpid(ch->pid, NULL, 0);
                }
                if (ch->request)
                        ch->request->process = NULL;
                ch->request = NULL;
                checker_free(ch);
        }
        m->job_removed = sd_bus_slot_unref(m->job_removed);
        m->bus = sd_bus_flush_close_unref(m->bus);
        free(m->program);
        (void) pthread_cond_destroy(&m->wake);
        (void) pthread_mutex_destroy(&m->lock);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}
