/* SPDX-License-Identifier: GPL-3.0-or-later */

/* The Server's clients over time: created from clients.conf merged with
 * the saved state at start-up (docs/STATE.md), saved after changes, and
 * reloaded on SIGHUP with the same rules. */

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "launcher.h"
#include "log.h"
#include "loop.h"
#include "pickle-import.h"
#include "secret-crypt.h"
#include "secret-mem.h"
#include "server.h"
#include "state-journal.h"
#include "state-writer.h"
#include "util.h"

/* ---------------------------------------------------------------- saving */

/* Called at every save: the walk over all clients (100,000 cache misses)
 * is done only after a change that can alter the count, never for the
 * times a checker storm changes. */
void server_notify_status(Server *s) {
        if (s->n_enabled_stale) {
                s->n_enabled = 0;
                for (size_t i = 0; i < s->n_clients; i++)
                        s->n_enabled += s->clients[i]->enabled;
                s->n_enabled_stale = false;
        }
        (void) sd_notifyf(false, "STATUS=%zu of %zu clients enabled; secrets sent: %" PRIu64, s->n_enabled,
                          s->n_clients, s->n_secrets_sent);
}

/* A bounded share per loop iteration; the rest in the next ones. */
static int on_save(sd_event_source *source, void *userdata) {
        Server *s = userdata;

        assert(s);
        loop_note("saving the state");
        if (s->save_soon)
                (void) sd_event_source_set_enabled(s->save_soon, SD_EVENT_OFF);
        if (s->save_later)
                (void) sd_event_source_set_enabled(s->save_later, SD_EVENT_OFF);
        if (s->writer && state_writer_flush(s->writer, false) > 0)
                server_state_dirty(s, true);
        server_notify_status(s);
        return 0;
}

static int on_save_later(sd_event_source *source, uint64_t usec, void *userdata) {
        return on_save(source, userdata);
}

/* Non-urgent changes (times of checks) are saved within this long. */
#define STATE_SAVE_DELAY (5 * USEC_PER_SEC)

void server_state_dirty(Server *s, bool urgent) {
        uint64_t now;
        int r;

        if (!s->statedir)
                return;
        if (urgent) {
                if (!s->save_soon) {
                        /* At the loop's normal priority: at idle priority it
                         * would wait for a moment with nothing else to do,
                         * which a checker storm never leaves, and the changes
                         * piled up until only a snapshot could take them. */
                        r = sd_event_add_defer(s->event, &s->save_soon, on_save, s);
                        if (r < 0) {
                                log_error_errno(r, "Failed to schedule saving the state: %m");
                                return;
                        }
                }
                (void) sd_event_source_set_enabled(s->save_soon, SD_EVENT_ONESHOT);
                return;
        }
        if (s->save_later) {
                int enabled = SD_EVENT_OFF;
                (void) sd_event_source_get_enabled(s->save_later, &enabled);
                if (enabled != SD_EVENT_OFF)
                        return; /* a save is due already */
        }
        r = sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return;
        if (s->save_later) {
                (void) sd_event_source_set_time(s->save_later, now + STATE_SAVE_DELAY);
                (void) sd_event_source_set_enabled(s->save_later, SD_EVENT_ONESHOT);
        } else
                (void) sd_event_add_time(s->event, &s->save_later, CLOCK_MONOTONIC, now + STATE_SAVE_DELAY,
                                         USEC_PER_SEC, on_save_later, s);
}

void server_state_client_dirty(Server *s, Client *c, bool urgent) {
        state_writer_client(s->writer, c, urgent);
        server_state_dirty(s, urgent);
}

void server_state_forgotten(Server *s, Client *c) {
        state_writer_forget(s->writer, c->name);
        server_state_dirty(s, true);
}

/* What changed goes to the journal; the thread writes it (src/state-writer.h). */
int server_write_state(Server *s) {
        int r;

        if (!s->statedir)
                return 0;
        r = state_save(s->statedir, 0, s->clients, s->n_clients, (const SavedClient *const *) s->removed,
                       s->n_removed);
        if (r < 0)
                return log_error_errno(r, "Could not save persistent state in %s: %m", s->statedir);
        return 0;
}

int server_save_state(Server *s) {
        if (!s->statedir || !s->writer)
                return 0;
        if (s->save_soon)
                (void) sd_event_source_set_enabled(s->save_soon, SD_EVENT_OFF);
        if (s->save_later)
                (void) sd_event_source_set_enabled(s->save_later, SD_EVENT_OFF);
        return state_writer_flush(s->writer, true);
}

/* now: clients.conf's settings for the settings the file predates (absent), or NULL. */
static SavedClient *saved_removed_new(const ClientSettings *config, const uint8_t digest[static 32],
                                     const ClientSettings *now, ClientSettingMask absent) {
        SavedClient *r = calloc(1, sizeof(SavedClient));

        if (!r)
                return NULL;
        r->config = client_settings_dup(config);
        if (!r->config)
                return saved_client_free(r);
        FOREACH_CLIENT_SETTING(row)
                if ((absent & CLIENT_SETTING_BIT(client_setting_id(row))) &&
                    client_setting_copy(row, r->config, now) < 0)
                        return saved_client_free(r);
        /* Only the digest of the secret is kept. */
        r->config->secret = secret_free(r->config->secret, r->config->secret_size);
        r->config->secret_size = 0;
        memcpy(r->config_secret_digest, digest, 32);
        return r;
}

static int removed_add(Server *s, SavedClient *r) {
        SavedClient **v = reallocarray(s->removed, s->n_removed + 1, sizeof(SavedClient *));

        if (!v) {
                saved_client_free(r);
                return log_oom();
        }
        v[s->n_removed++] = r;
        s->removed = v;
        return 0;
}

static void removed_drop(Server *s, size_t i) {
        state_writer_unremove(s->writer, s->removed[i]->config->name);
        saved_client_free(s->removed[i]);
        memmove(s->removed + i, s->removed + i + 1, (s->n_removed - i - 1) * sizeof(SavedClient *));
        s->n_removed--;
}

static ssize_t removed_find(Server *s, const char *name) {
        for (size_t i = 0; i < s->n_removed; i++)
                if (streq(s->removed[i]->config->name, name))
                        return (ssize_t) i;
        return -1;
}

void server_remember_removed(Server *s, Client *c) {
        uint8_t digest[32];
        SavedClient *r;

        client_config_secret_digest(c, digest);
        r = saved_removed_new(client_config(c), digest, NULL, 0);
        if (r) {
                state_writer_removed(s->writer, r);
                (void) removed_add(s, r);
        }
}

void server_state_done(Server *s) {
        s->writer = state_writer_free(s->writer);
        s->save_soon = sd_event_source_disable_unref(s->save_soon);
        s->save_later = sd_event_source_disable_unref(s->save_later);
        for (size_t i = 0; i < s->n_removed; i++)
                saved_client_free(s->removed[i]);
        s->removed = mfree(s->removed);
        s->n_removed = 0;
        s->statedir = mfree(s->statedir);
        s->import_pickle = mfree(s->import_pickle);
}

/* ---------------------------------------------------------------- loading */

/* A crash in the middle of a save leaves its temporary file behind. */
static void remove_stale_temporaries(const char *dir) {
        _cleanup_free_ char *prefix = NULL;
        struct dirent **names = NULL;
        int n;

        if (asprintf(&prefix, ".%s.", STATE_FILE_NAME) < 0)
                return;
        n = scandir(dir, &names, NULL, NULL);
        for (int i = 0; i < n; i++) {
                if (strncmp(names[i]->d_name, prefix, strlen(prefix)) == 0) {
                        _cleanup_free_ char *path = NULL;
                        if (asprintf(&path, "%s/%s", dir, names[i]->d_name) >= 0)
                                (void) unlink(path);
                }
                free(names[i]);
        }
        free(names);
}

int server_import_pickle(Server *s, const ClientsConf *conf, int fd, const char *path, State **ret) {
        _cleanup_free_ char *error = NULL;
        int r;

        r = pickle_import_state(fd, conf, ret, &error);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_struct(LOG_ERR, &((LogFields) { .message_id = MESSAGE_ID_STATE_CORRUPT }),
                           "Could not import the reference server's state %s: %s", path,
                           error ?: strerror(-r));
                return r;
        }
        log_info("Importing the reference server's state from %s: %zu clients, %zu removed over D-Bus", path,
                 (*ret)->n_clients, (*ret)->n_removed);
        return 0;
}

/* No state of ours yet, and the reference's clients.pickle: read it instead
 * (docs/STATE.md, "Importing the reference server's clients.pickle"). A
 * refused one is left as it is, for a human; we start from clients.conf. */
static int load_pickle(Server *s, const ClientsConf *conf, State **ret) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -1;
        struct stat st = {};
        int r;

        if (asprintf(&path, "%s/%s", s->statedir, PICKLE_FILE_NAME) < 0)
                return log_oom();
        /* Not following a link, nor hanging on a FIFO. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd >= 0 && fstat(fd, &st) == 0 && !S_ISREG(st.st_mode))
                errno = EBADFD;
        if (fd < 0 || !S_ISREG(st.st_mode)) {
                log_struct(LOG_ERR, &((LogFields) { .message_id = MESSAGE_ID_STATE_CORRUPT }),
                           "Could not import the reference server's state %s: %s; starting from the configuration "
                           "alone, the file is left as it is",
                           path, errno == EBADFD ? "not a regular file" : strerror(errno));
                return 0;
        }
        r = server_import_pickle(s, conf, fd, path, ret);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_error("Starting from the configuration alone; %s is left as it is", path);
                return 0;
        }
        s->import_pickle = TAKE_PTR(path);
        return 0;
}

int server_load_state(Server *s, const ClientsConf *conf, State **ret) {
        _cleanup_free_ char *path = NULL, *error = NULL;
        const char *dir = getenv("STATE_DIRECTORY");
        char *colon;
        int r;

        *ret = NULL;
        /* systemd's StateDirectory= may list several: the first is ours. */
        s->statedir = strdup(!isempty(dir) ? dir : s->settings->statedir);
        if (!s->statedir)
                return log_oom();
        if ((colon = strchr(s->statedir, ':')))
                *colon = 0;
        remove_stale_temporaries(s->statedir);
        if (!s->settings->restore)
                return 0;
        if (asprintf(&path, "%s/%s", s->statedir, STATE_FILE_NAME) < 0)
                return log_oom();
        r = state_load(path, ret, &error);
        if (r == -ENOENT) {
                /* A first start that crashed before its snapshot: its journal. */
                *ret = calloc(1, sizeof(State));
                if (!*ret)
                        return log_oom();
        }
        if (r >= 0 || r == -ENOENT) {
                int k = journal_replay(s->statedir, *ret, r >= 0);
                if (k == -ENOMEM)
                        return log_oom();
                if (k < 0)
                        log_warning_errno(k, "Could not read the journal of the persistent state in %s: %m",
                                          s->statedir);
                else if (k > 0)
                        log_info("Replayed %d records of the persistent state's journal", k);
                if (r == -ENOENT && k <= 0) {
                        /* No state of ours at all: the reference's, if any. */
                        *ret = state_free(*ret);
                        r = conf ? load_pickle(s, conf, ret) : 0;
                        if (r < 0 || *ret || !conf)
                                return r;
                        log_info("No saved state in %s: starting from the configuration", path);
                }
                return 0;
        }
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                /* Keep the bad file for a human, under a name never reused. */
                _cleanup_free_ char *aside = NULL;
                if (asprintf(&aside, "%s.corrupt-%" PRIu64, path, now_realtime()) >= 0 && rename(path, aside) >= 0)
                        ;
                else
                        aside = mfree(aside);
                journal_set_aside(s->statedir, strrchr(strempty(aside), '.'));
                log_struct(LOG_ERR, &((LogFields) { .message_id = MESSAGE_ID_STATE_CORRUPT }),
                           "Could not load persistent state %s: %s; starting from the configuration alone%s%s",
                           path, error ?: strerror(-r), aside ? ", the file is kept as " : "", strempty(aside));
                return 0;
        }
        return 0;
}

/* An imported clients.pickle: our state is written at once, then the
 * pickle is renamed, so that it is neither imported twice nor lost. */
static void finish_import(Server *s) {
        _cleanup_free_ char *kept = NULL;

        if (server_write_state(s) < 0) {
                log_warning("%s is left in place: it will be imported again at the next start", s->import_pickle);
                goto finish;
        }
        if (asprintf(&kept, "%s%s", s->import_pickle, PICKLE_IMPORTED_SUFFIX) < 0) {
                (void) log_oom();
                goto finish;
        }
        if (rename(s->import_pickle, kept) < 0) {
                log_warning_errno(errno, "Imported the reference server's state from %s, but could not rename it to %s: %m",
                                  s->import_pickle, kept);
                goto finish;
        }
        log_info("Imported the reference server's state from %s into %s/%s; the file is kept as %s",
                 s->import_pickle, s->statedir, STATE_FILE_NAME, kept);
finish:
        s->import_pickle = mfree(s->import_pickle);
}

/* A version 1 file's run-time secret, encrypted again with the current
 * passphrase: the old one can be computed from that file alone. Once per
 * such client, at the first start after an upgrade. The same for a secret
 * imported from the reference's clients.pickle. */
static int migrate_secret(Server *s, Client *c, const ClientSettings *config, const uint8_t *plain, size_t n) {
        _cleanup_free_ uint8_t *cipher = NULL;
        size_t cipher_size = 0;
        const char *why = NULL;
        int r;

        r = secret_encrypt(config->secret, config->secret_size, plain, n, &cipher, &cipher_size, &why);
        if (r < 0)
                return log_error_errno(r, "Could not encrypt the run-time secret of %s again: %s", c->name,
                                       strempty(why));
        r = client_restore_secret(c, plain, n, cipher, cipher_size);
        if (r < 0)
                return r;
        log_info("Run-time secret of %s moved to the state's current encryption", c->name);
        /* Replace the old file at once: it opens with the old passphrase. */
        server_state_dirty(s, true);
        return 0;
}

/* Rule 3: a run-time secret, if the configured one still opens it. */
static void restore_secret(Server *s, Client *c, const ClientSettings *config, const SavedClient *saved) {
        SecretKdf kdf = saved->version == 1                      ? SECRET_KDF_LEGACY_SHA256
                        : saved->version == STATE_VERSION_PICKLE ? SECRET_KDF_REFERENCE
                                                                 : SECRET_KDF_HMAC;
        uint8_t *plain = NULL;
        size_t n = 0;
        const char *why = NULL;
        int r;

        if (!saved->encrypted_secret)
                return;
        /* Each decryption runs gpg (for an imported pickle, one per client,
         * as the reference does at every start): a long import must not run
         * out systemd's start timeout and be killed, again and again. */
        (void) sd_notify(false, "EXTEND_TIMEOUT_USEC=30000000");
        r = secret_decrypt(kdf, config->secret, config->secret_size, saved->encrypted_secret,
                           saved->encrypted_secret_size, &plain, &n, &why);
        if (r < 0) {
                log_debug("Failed to decrypt %s old secret (%s): the configured one is used", c->name,
                          strempty(why));
                return;
        }
        if (kdf == SECRET_KDF_REFERENCE && n == config->secret_size && memcmp(plain, config->secret, n) == 0)
                ; /* the reference keeps every secret, even the configured one: not a run-time one */
        else if (kdf == SECRET_KDF_HMAC)
                (void) client_restore_secret(c, plain, n, saved->encrypted_secret, saved->encrypted_secret_size);
        else
                (void) migrate_secret(s, c, config, plain, n);
        erase_and_free(plain, n);
}

/* Takes config (server_insert_client()). */
static int restore_client(Server *s, ClientSettings *config, const SavedClient *saved) {
        _cleanup_(client_settings_freep) ClientSettings *merged =
                client_settings_merge(config, saved->config, saved->runtime, saved->absent);
        ClientTimes times = saved->times;
        Client *c;
        int r;

        if (!merged) {
                client_settings_free(config);
                return log_oom();
        }
        state_check_expiry(merged, &times, now_realtime());
        r = server_insert_client(s, config, merged, &c);
        if (r < 0)
                return r;
        client_restore(c, times.created, times.last_enabled, times.expires, times.last_checked_ok,
                       times.last_approval_request, times.last_checker_status);

        restore_secret(s, c, client_config(c), saved);
        client_start(c);
        return 0;
}

static bool config_unchanged(const ClientSettings *config, const SavedClient *then) {
        uint8_t digest[32];

        secret_digest_for(then->version ?: STATE_VERSION, config->secret, config->secret_size, digest);
        return client_settings_equal(config, then->config, then->absent) &&
               memcmp(digest, then->config_secret_digest, sizeof(digest)) == 0;
}

/* A configured client that is not live yet: new, or removed earlier. It
 * takes its settings from conf. */
static int add_configured(Server *s, ClientsConf *conf, const ClientSettings *config) {
        ssize_t i = removed_find(s, config->name);
        ClientSettings *mine;
        Client *c;
        int r;

        if (i >= 0) {
                /* Removed at run time: stays removed until its section changes. */
                if (config_unchanged(config, s->removed[i]))
                        return 0;
                removed_drop(s, (size_t) i);
        }
        mine = clients_conf_take(conf, config->name);
        if (!mine)
                return 0;
        r = server_insert_client(s, mine, NULL, &c);
        if (r < 0)
                return r;
        state_writer_client(s->writer, c, true);
        client_start(c);
        return 1;
}

int server_add_clients(Server *s, ClientsConf *conf, const State *state) {
        int r;

        /* Removals persist (rule 6), for clients still configured (rule 7:
         * one that left clients.conf is simply forgotten). */
        for (size_t i = 0; state && i < state->n_removed; i++) {
                const SavedClient *then = state->removed[i];
                const ClientSettings *config = clients_conf_find(conf, then->config->name);
                uint8_t digest[32];

                if (!config)
                        continue;
                memcpy(digest, then->config_secret_digest, sizeof(digest));
                if (then->version != STATE_VERSION) {
                        /* An older file's digest: kept only while the section is
                         * unchanged (else the client comes back anyway), as the
                         * current digest of the same secret. */
                        if (!config_unchanged(config, then))
                                continue;
                        secret_digest(config->secret, config->secret_size, digest);
                }
                SavedClient *copy = saved_removed_new(then->config, digest, config, then->absent);
                if (!copy || removed_add(s, copy) < 0)
                        return log_oom();
        }
        /* Saved clients first, in their order (rules 1–4)… */
        for (size_t i = 0; state && i < state->n_clients; i++) {
                const ClientSettings *config = clients_conf_find(conf, state->clients[i]->config->name);
                if (!config || hashmap_get(s->by_name, config->name))
                        continue;
                r = restore_client(s, clients_conf_take(conf, config->name), state->clients[i]);
                if (r == -ENOMEM)
                        return r;
        }
        /* …then the new ones (rule 5). */
        for (size_t i = 0; i < conf->n_clients; i++) {
                if (!conf->clients[i] || hashmap_get(s->by_name, conf->clients[i]->name))
                        continue;
                r = add_configured(s, conf, conf->clients[i]);
                if (r == -ENOMEM)
                        return r;
        }
        if (s->n_clients == 0)
                log_warning("No clients defined");
        /* An import is saved in full before the pickle is renamed. */
        if (s->import_pickle)
                finish_import(s);
        /* From here on each change is journaled; this start is a snapshot. */
        if (s->statedir && !s->writer && !s->settings->import_pickle)
                (void) state_writer_new(s, &s->writer);
        server_state_dirty(s, true);
        return 0;
}

/* ---------------------------------------------------------------- reload */

/* "a, b": what a reload changed, for its log line. */
static void note_changed(char *changed, size_t size, const char *name) {
        if (*changed)
                (void) strncat(changed, ", ", size - strlen(changed) - 1);
        (void) strncat(changed, name, size - strlen(changed) - 1);
}

/* Apply what changed in a client's section since it was last read. */
static int reload_client(Server *s, Client *c, const ClientSettings *now) {
        /* Shallow: clients.conf's values before the setters below change
         * what is in force (client_config() may be those very settings);
         * its strings live until client_set_config(). */
        const ClientSettings then_copy = *client_config(c), *then = &then_copy;
        char changed[256] = "";
        uint8_t digest[32], then_digest[32];

        FOREACH_CLIENT_SETTING_WITH(row, CLIENT_SETTING_SAVED) {
                const char *why = NULL;

                if (client_setting_equal(row, now, then))
                        continue;
                if (row->flags & CLIENT_SETTING_INDEX) {
                        if (server_set_client_key_id(s, c, *CLIENT_SETTING_CFIELD(now, row, char *)) < 0)
                                return log_oom();
                } else if (client_set_setting(c, row, now, &why) == -ENOMEM)
                        return log_oom();
                note_changed(changed, sizeof(changed), row->name);
        }
        secret_digest(now->secret, now->secret_size, digest);
        client_config_secret_digest(c, then_digest);
        if (memcmp(digest, then_digest, sizeof(digest)) != 0) {
                if (client_set_config(c, now) < 0)
                        return log_oom();
                (void) client_set_secret(c, now->secret, now->secret_size);
                note_changed(changed, sizeof(changed), "secret");
        } else if (client_set_config(c, now) < 0)
                return log_oom();
        /* The record holds clients.conf's values too (config), which a
         * setter given its current value does not report. */
        if (*changed)
                state_writer_client(s->writer, c, true);
        if (*changed)
                log_struct(LOG_INFO, &((LogFields) { .client = c->name, .message_id = MESSAGE_ID_RELOADED }),
                           "Client %s changed: %s", c->name, changed);
        return 0;
}

int server_reload_files(Server *s, ConfFiles *files) {
        _cleanup_(clients_conf_freep) ClientsConf *conf = NULL;
        unsigned added = 0, removed = 0;
        int r;

        /* files: what the launcher read for us (src/server.c, server_reload()). */
        if (files)
                r = clients_conf_load_all_files(s->settings->configdir, files, &conf);
        else
                r = clients_conf_load_all(s->settings->configdir, &conf);
        if (r < 0)
                return log_error_errno(r, "Could not reload the configuration: %m");
        if (conf->unreadable) {
                /* Half a configuration would remove the clients of the file we could not read. */
                for (size_t i = 0; i < conf->n_problems; i++)
                        log_error("%s", conf->problems[i]);
                log_error("Reload refused: the configuration could not be read; nothing changed");
                return -EIO;
        }
        for (size_t i = 0; i < conf->n_problems; i++)
                log_error("%s (client skipped)", conf->problems[i]);
        for (size_t i = 0; i < conf->n_warnings; i++)
                log_warning("%s", conf->warnings[i]);

        /* Clients gone from the files go (and are not remembered as removed). */
        for (size_t i = s->n_clients; i > 0; i--) {
                Client *c = s->clients[i - 1];
                const ClientSettings *now = clients_conf_find(conf, c->name);
                if (now) {
                        r = reload_client(s, c, now);
                        if (r < 0)
                                return r;
                        continue;
                }
                log_struct(LOG_INFO, &((LogFields) { .client = c->name, .message_id = MESSAGE_ID_RELOADED }),
                           "Client %s removed: no longer configured", c->name);
                server_forget_client(s, c, false);
                removed++;
        }
        for (size_t i = 0; i < conf->n_clients; i++) {
                /* Taken by the client if added: its name is the client's then. */
                const char *name = conf->clients[i] ? conf->clients[i]->name : NULL;
                if (!name || hashmap_get(s->by_name, name))
                        continue;
                r = add_configured(s, conf, conf->clients[i]);
                if (r < 0)
                        return r;
                if (r > 0) {
                        log_struct(LOG_INFO, &((LogFields) { .client = name, .message_id = MESSAGE_ID_RELOADED }),
                                   "Client %s added", name);
                        added++;
                }
        }
        /* Removals of clients no longer configured are forgotten. */
        for (size_t i = s->n_removed; i > 0; i--)
                if (!clients_conf_find(conf, s->removed[i - 1]->config->name))
                        removed_drop(s, i - 1);

        log_struct(LOG_INFO, &((LogFields) { .message_id = MESSAGE_ID_RELOADED }),
                   "Reloaded the configuration: %u clients, %u added, %u removed", (unsigned) s->n_clients, added,
                   removed);
        server_state_dirty(s, true);
        return 0;
}
