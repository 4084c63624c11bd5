/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "state-writer.h"

#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "list.h"
#include "log.h"
#include "loop.h"
#include "server.h"
#include "state-journal.h"
#include "thread-util.h"
#include "util.h"

/* A snapshot is written when the journals since the last one exceed this
 * share of it (a quarter: the replay at start-up costs at most that much
 * more than the snapshot), and never for less than JOURNAL_MIN. */
#define JOURNAL_SHARE 4
#define JOURNAL_MIN (64 * 1024)
/* After a failed snapshot, wait this long before the next try. */
#define SNAPSHOT_RETRY (10 * USEC_PER_SEC)

/* Work for the thread, in order: bytes to append to fd and sync; then
 * maybe close fd, or delete the journals a new snapshot covers. The thread
 * allocates and frees nothing but under the lock, which the loop holds
 * while it forks: the child never inherits a heap in mid-change. */
typedef struct Batch Batch;
struct Batch {
        LIST_FIELDS(Batch, batches);
        int fd;
        bool sync_dir;          /* fd is a new file: its name must be durable too */
        bool close_after;
        char **unlink;          /* journals to delete (NULL-terminated), or NULL */
        JournalBuffer data;
};

struct StateWriter {
        Server *server;
        char *dir;
        int dir_fd;

        uint64_t gen;            /* the journal appended to now; fd its file (-1: none) */
        int fd;
        uint64_t bytes_gen;      /* appended to it */
        uint64_t bytes_older;    /* in the journals between the snapshot and it */
        uint64_t snapshot_size;

        JournalBuffer records;   /* changes of the set of clients since the last flush */
        Client **dirty;          /* changed clients (referenced), c->state_dirty says how */
        size_t n_dirty, allocated_dirty;
        size_t n_dirty_full;     /* of those, the ones with more than times changed */
        bool snapshot_due;       /* a write failed or memory ran short: the journal is incomplete */

        pid_t child;             /* writing the snapshot that journal child_gen follows */
        uint64_t child_gen;
        sd_event_source *child_source;
        uint64_t retry_after;    /* CLOCK_MONOTONIC */

        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        bool running;            /* under lock: the thread waits for work (it is past its start-up) */
        LIST_HEAD(Batch, batches); /* under lock: a FIFO, */
        Batch *batches_tail;     /* appended to here */
        Batch *current;          /* the one the thread runs (under lock) */
        bool stop;               /* under lock */
        int error;               /* under lock: a failed write or sync since the last flush */
        int broken_fd;           /* under lock: a write to it failed; nothing more goes there */
};

#define CLIENT_DIRTY_TIMES 1
#define CLIENT_DIRTY_FULL 2

/* ---------------------------------------------------------------- thread */

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* The paths of the journals older than below, NULL-terminated. */
static char **older_journals(const char *dir, uint64_t below) {
        _cleanup_free_ uint64_t *gens = NULL;
        size_t n = 0, k = 0;
        char **v;

        if (journal_list(dir, &gens, &n) < 0)
                return NULL;
        v = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; v && i < n && gens[i] < below; i++)
                if (journal_path(dir, gens[i], &v[k]) >= 0)
                        k++;
        return v;
}

static void batch_free(Batch *b) {
        for (char **p = b->unlink; p && *p; p++)
                free(*p);
        free(b->unlink);
        journal_buffer_done(&b->data);
        free(b);
}

static int run_batch(StateWriter *w, Batch *b, int broken_fd) {
        int r = 0;

        for (char **p = b->unlink; p && *p; p++)
                (void) unlink(*p);
        if (b->fd >= 0 && b->fd != broken_fd) {
                if (b->data.size > 0)
                        r = write_all(b->fd, b->data.data, b->data.size);
                if (r >= 0 && (b->data.size > 0 || b->sync_dir) && fdatasync(b->fd) < 0)
                        r = -errno;
                if (r >= 0 && b->sync_dir && fsync(w->dir_fd) < 0)
                        r = -errno;
        }
        if (b->close_after)
                (void) close(b->fd);
        return r;
}

static void *writer_thread(void *userdata) {
        StateWriter *w = userdata;

        pthread_mutex_lock(&w->lock);
        w->running = true;
        pthread_cond_broadcast(&w->wake);
        for (;;) {
                Batch *b;
                int broken, r;

                while (!w->batches && !w->stop)
                        pthread_cond_wait(&w->wake, &w->lock);
                b = w->batches;
                if (!b)
                        break;
                LIST_REMOVE(batches, w->batches, b);
                if (w->batches_tail == b)
                        w->batches_tail = NULL;
                /* Kept where a snapshot child (a fork of the loop's thread)
                 * still sees it: to valgrind there it is not lost. */
                w->current = b;
                broken = w->broken_fd;
                pthread_mutex_unlock(&w->lock);

                r = run_batch(w, b, broken);

                pthread_mutex_lock(&w->lock);
                if (r < 0) {
                        w->error = r;
                        if (!b->close_after)
                                w->broken_fd = b->fd;
                }
                if (b->close_after && w->broken_fd == b->fd)
                        w->broken_fd = -1;
                w->current = NULL;
                batch_free(b);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

/* Queue work; data (may be NULL) is moved, appended to the last batch if
 * that one is for the same file and waits still. */
static int enqueue(StateWriter *w, int fd, JournalBuffer *data, bool sync_dir, bool close_after,
                   char **unlink_paths) {
        Batch *b = NULL;
        int r = 0;

        pthread_mutex_lock(&w->lock);
        if (data && !sync_dir && !close_after && !unlink_paths && w->batches_tail && w->batches_tail->fd == fd &&
            !w->batches_tail->close_after && !w->batches_tail->unlink) {
                Batch *t = w->batches_tail;
                r = GREEDY_REALLOC(t->data.data, t->data.allocated, t->data.size + data->size);
                if (r >= 0) {
                        memcpy(t->data.data + t->data.size, data->data, data->size);
                        t->data.size += data->size;
                        data->size = 0;
                }
        } else {
                b = calloc(1, sizeof(Batch));
                if (!b) {
                        r = -ENOMEM;
                        for (char **p = unlink_paths; p && *p; p++)
                                free(*p);
                        free(unlink_paths);
                } else {
                        *b = (Batch) { .fd = fd, .sync_dir = sync_dir, .close_after = close_after,
                                       .unlink = unlink_paths };
                        if (data) {
                                b->data = *data;
                                *data = (JournalBuffer) {};
                        }
                        LIST_INSERT_AFTER(batches, w->batches, w->batches_tail, b);
                        w->batches_tail = b;
                }
        }
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        return r;
}

/* ---------------------------------------------------------------- snapshots */

static _noreturn_ void snapshot_child(StateWriter *w, pid_t parent, uint64_t gen) {
        Server *s = w->server;
        int r;

        /* A server killed is never outlived by its snapshot writer: the next
         * server must find the files as the dead one left them. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(EXIT_FAILURE);
        (void) setpriority(PRIO_PROCESS, 0, 10);
        (void) prctl(PR_SET_NAME, "mandos-snapshot");
        r = state_save(w->dir, gen, s->clients, s->n_clients, (const SavedClient *const *) s->removed,
                       s->n_removed);
        _exit(r < 0 ? MIN(-r, 255) : 0);
}

static int snapshot_start(StateWriter *w);

static int on_snapshot_done(sd_event_source *source, const siginfo_t *si, void *userdata) {
        StateWriter *w = userdata;
        _cleanup_free_ char *path = NULL;
        struct stat st;

        assert(w);
        loop_note("the end of a snapshot");

        w->child_source = sd_event_source_disable_unref(w->child_source);
        w->child = 0;
        if (si->si_code != CLD_EXITED || si->si_status != 0) {
                /* The writer exits with the errno it failed with. */
                if (si->si_code == CLD_EXITED)
                        log_warning_errno(si->si_status,
                                          "Could not save persistent state in %s: the snapshot writer failed: %m",
                                          w->dir);
                else
                        log_warning("Could not save persistent state in %s: the snapshot writer was killed by "
                                    "signal %s", w->dir, strsignal(si->si_status));
                w->retry_after = now_monotonic() + SNAPSHOT_RETRY;
                w->snapshot_due = true;
                return 0;
        }
        w->bytes_older = 0;
        if (asprintf(&path, "%s/%s", w->dir, STATE_FILE_NAME) >= 0 && stat(path, &st) >= 0)
                w->snapshot_size = (uint64_t) st.st_size;
        (void) enqueue(w, -1, NULL, false, false, older_journals(w->dir, w->child_gen));
        log_debug("Persistent state saved: a snapshot of %zu clients (%" PRIu64 " bytes), journal %s%" PRIu64
                  " follows it", w->server->n_clients, w->snapshot_size, JOURNAL_PREFIX, w->child_gen);
        if (w->snapshot_due)
                (void) snapshot_start(w);
        return 0;
}

/* A new journal for what comes next, and a child writing the snapshot of
 * now that it follows. */
static int snapshot_start(StateWriter *w) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;
        pid_t parent = getpid(), pid;
        uint64_t t0;
        int r;

        if (w->child > 0 || now_monotonic() < w->retry_after) {
                w->snapshot_due = true;
                return 0;
        }
        r = journal_path(w->dir, w->gen + 1, &path);
        if (r < 0)
                return r;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
                w->retry_after = now_monotonic() + SNAPSHOT_RETRY;
                w->snapshot_due = true;
                return log_warning_errno(errno, "Could not save persistent state in %s: %m", w->dir);
        }
        /* The old journal is closed after its last append; the new one's
         * name is made durable before anything in it counts. */
        if (w->fd >= 0)
                (void) enqueue(w, w->fd, NULL, false, true, NULL);
        w->fd = TAKE_FD(fd);
        w->gen++;
        w->bytes_older += w->bytes_gen;
        w->bytes_gen = 0;
        (void) enqueue(w, w->fd, NULL, true, false, NULL);
        w->snapshot_due = false;

        t0 = now_monotonic();
        pthread_mutex_lock(&w->lock);
        pid = fork();
        if (pid == 0)
                snapshot_child(w, parent, w->gen);
        r = pid < 0 ? -errno : 0;
        pthread_mutex_unlock(&w->lock);
        if (r < 0) {
                w->retry_after = now_monotonic() + SNAPSHOT_RETRY;
                w->snapshot_due = true;
                return log_warning_errno(r, "Could not save persistent state in %s: fork: %m", w->dir);
        }
        w->child = pid;
        w->child_gen = w->gen;
        r = sd_event_add_child(w->server->event, &w->child_source, pid, WEXITED, on_snapshot_done, w);
        if (r < 0) {
                /* Cannot wait for it: stop it; the journals keep everything. */
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                w->child = 0;
                w->retry_after = now_monotonic() + SNAPSHOT_RETRY;
                w->snapshot_due = true;
                return log_warning_errno(r, "Could not save persistent state in %s: %m", w->dir);
        }
        log_debug("Writing a snapshot of the persistent state (process %d; the fork took %.1f ms)", (int) pid,
                  (double) (now_monotonic() - t0) / 1000.0);
        return 0;
}

/* ---------------------------------------------------------------- the loop's side */

void state_writer_client(StateWriter *w, Client *c, bool full) {
        if (!w)
                return;
        if (!c->state_dirty) {
                if (GREEDY_REALLOC(w->dirty, w->allocated_dirty, w->n_dirty + 1) < 0) {
                        w->snapshot_due = true;
                        return;
                }
                w->dirty[w->n_dirty++] = client_ref(c);
        }
        if (full && !(c->state_dirty & CLIENT_DIRTY_FULL))
                w->n_dirty_full++;
        c->state_dirty |= full ? CLIENT_DIRTY_FULL : CLIENT_DIRTY_TIMES;
}

static void queued(StateWriter *w, int r) {
        if (r < 0)
                w->snapshot_due = true; /* out of memory: a snapshot covers it */
}

void state_writer_forget(StateWriter *w, const char *name) {
        if (w)
                queued(w, journal_record_forget(&w->records, name));
}

void state_writer_removed(StateWriter *w, const SavedClient *r) {
        if (w)
                queued(w, journal_record_removed(&w->records, r));
}

void state_writer_unremove(StateWriter *w, const char *name) {
        if (w)
                queued(w, journal_record_unremove(&w->records, name));
}

/* Clients formatted per loop iteration: a few microseconds each. */
#define FLUSH_CHUNK 256

/* More clients with whole records due than this are saved by a snapshot
 * instead (a reload that changed them all): a whole record costs about
 * what the client costs in the snapshot, so their records alone would soon
 * call for one. A record of times only is a fifth of that or less: those
 * always go to the journal, a few hundred per iteration. */
static bool burst(StateWriter *w) {
        return w->n_dirty_full > MAX(w->server->n_clients / JOURNAL_SHARE, (size_t) FLUSH_CHUNK * 4);
}

/* Once empty, a list that a start or a reload made long goes: 100,000
 * clients all saved once would keep a megabyte for the few a checker
 * storm dirties at a time. */
#define DIRTY_KEEP 4096

static void dirty_shrink(StateWriter *w) {
        if (w->n_dirty == 0 && w->allocated_dirty > DIRTY_KEEP) {
                w->dirty = mfree(w->dirty);
                w->allocated_dirty = 0;
        }
}

static void drop_dirty(StateWriter *w) {
        for (size_t i = 0; i < w->n_dirty; i++) {
                w->dirty[i]->state_dirty = 0;
                client_unref(w->dirty[i]);
        }
        w->n_dirty = 0;
        w->n_dirty_full = 0;
        dirty_shrink(w);
}

int state_writer_flush(StateWriter *w, bool all) {
        uint64_t t0 = now_monotonic(), bytes;
        size_t n;
        int error, r = 0;

        if (!all && w->child == 0 && burst(w)) {
                /* The set changes queued go first, to the journal the
                 * snapshot replaces; the clients are in the snapshot. */
                bytes = w->records.size;
                if (bytes > 0 && w->fd >= 0 && enqueue(w, w->fd, &w->records, false, false, NULL) >= 0)
                        w->bytes_gen += bytes;
                journal_buffer_done(&w->records);
                (void) snapshot_start(w);
                if (w->child > 0) {
                        log_debug("Persistent state: %zu clients changed, saved by a snapshot", w->n_dirty);
                        drop_dirty(w);
                }
        }
        n = all ? w->n_dirty : MIN(w->n_dirty, (size_t) FLUSH_CHUNK);

        for (size_t i = 0; i < n; i++) {
                Client *c = w->dirty[i];
                /* One that left the table: its "forget" is queued already. */
                if (!c->removed && r >= 0)
                        r = c->state_dirty & CLIENT_DIRTY_FULL ? journal_record_client(&w->records, c)
                                                               : journal_record_times(&w->records, c);
                if (c->state_dirty & CLIENT_DIRTY_FULL)
                        w->n_dirty_full--;
                c->state_dirty = 0;
                client_unref(c);
        }
        /* The rest keep their order, for the next iteration. */
        if (w->n_dirty > n)
                memmove(w->dirty, w->dirty + n, (w->n_dirty - n) * sizeof(Client *));
        w->n_dirty -= n;
        dirty_shrink(w);
        queued(w, r);
        bytes = w->records.size;
        if (bytes > 0 && w->fd >= 0 && enqueue(w, w->fd, &w->records, false, false, NULL) >= 0)
                w->bytes_gen += bytes;
        else if (bytes > 0)
                w->snapshot_due = true;
        journal_buffer_done(&w->records);

        pthread_mutex_lock(&w->lock);
        error = w->error;
        w->error = 0;
        pthread_mutex_unlock(&w->lock);
        if (error < 0) {
                log_warning_errno(error, "Could not save persistent state in %s: %m", w->dir);
                w->snapshot_due = true;
        }
        if (n > 0)
                log_debug("Persistent state: %zu clients, %" PRIu64 " bytes queued for the journal in %.3f ms", n,
                          bytes, (double) (now_monotonic() - t0) / 1000.0);
        /* A snapshot being written covers the journals before it: only
         * what grew since counts (bytes_gen). */
        if (w->snapshot_due ||
            (w->child == 0 &&
             w->bytes_gen + w->bytes_older > MAX(w->snapshot_size / JOURNAL_SHARE, (uint64_t) JOURNAL_MIN)))
                (void) snapshot_start(w);
        return error < 0 ? error : w->n_dirty > 0;
}

/* ---------------------------------------------------------------- life */

/* The "journal" of the snapshot in dir, from its head, where state_save()
 * puts it; 0 if none. */
static uint64_t snapshot_journal(const char *dir) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;
        char head[256];
        const char *p;
        ssize_t n;

        if (asprintf(&path, "%s/%s", dir, STATE_FILE_NAME) < 0)
                return 0;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return 0;
        n = read(fd, head, sizeof(head) - 1);
        if (n <= 0)
                return 0;
        head[n] = 0;
        p = strstr(head, "\"journal\": ");
        return p ? strtoull(p + strlen("\"journal\": "), NULL, 10) : 0;
}

int state_writer_new(Server *s, StateWriter **ret) {
        _cleanup_free_ uint64_t *gens = NULL;
        StateWriter *w;
        size_t n = 0;
        int r;

        w = calloc(1, sizeof(StateWriter));
        if (!w)
                return log_oom();
        *w = (StateWriter) { .server = s, .fd = -1, .dir_fd = -1, .broken_fd = -1 };
        w->dir = strdup(s->statedir);
        if (!w->dir) {
                free(w);
                return log_oom();
        }
        w->dir_fd = open(w->dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (w->dir_fd < 0) {
                r = log_warning_errno(errno, "Could not save persistent state in %s: %m", w->dir);
                free(w->dir);
                free(w);
                return r;
        }
        /* Generations only grow: past any journal a crash left, and past
         * the one the snapshot on disk names (read or not: --no-restore),
         * so that until a new snapshot is in place, the old one is still
         * followed by what is written now. */
        if (journal_list(w->dir, &gens, &n) >= 0 && n > 0)
                w->gen = gens[n - 1];
        w->gen = MAX(w->gen, snapshot_journal(w->dir));
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        r = thread_start(&w->thread, writer_thread, w);
        if (r < 0) {
                log_error_errno(r, "Could not start the state writer: %m");
                close(w->dir_fd);
                free(w->dir);
                free(w);
                return r;
        }
        /* A thread's start-up may allocate (sanitizers do): not while we fork. */
        pthread_mutex_lock(&w->lock);
        while (!w->running)
                pthread_cond_wait(&w->wake, &w->lock);
        pthread_mutex_unlock(&w->lock);
        /* The merge of the files and the state is a state of its own: written whole. */
        (void) snapshot_start(w);
        *ret = w;
        return 0;
}

StateWriter *state_writer_free(StateWriter *w) {
        if (!w)
                return NULL;
        drop_dirty(w);
        free(w->dirty);
        journal_buffer_done(&w->records);
        w->child_source = sd_event_source_disable_unref(w->child_source);
        if (w->child > 0) {
                /* Not waited for: the journals already hold what it would. */
                (void) kill(w->child, SIGKILL);
                (void) waitpid(w->child, NULL, 0);
                log_debug("Stopped the snapshot writer: the journals hold the state");
        }
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
        if (w->error < 0)
                log_warning_errno(w->error, "Could not save persistent state in %s: %m", w->dir);
        if (w->fd >= 0)
                close(w->fd);
        close(w->dir_fd);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake);
        free(w->dir);
        free(w);
        return NULL;
}
