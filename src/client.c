/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "client.h"

#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#include "checker.h"
#include "deadline.h"
#include "secret-crypt.h"
#include "state.h"
#include "log.h"
#include "server.h"
#include "util.h"

uint64_t now_realtime(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static bool client_live(const Client *c) {
        return c->server && !c->removed;
}

static void client_changed(Client *c, ClientProperty p) {
        if (client_live(c))
                server_client_changed(c->server, c, p);
}

static void set_time(Client *c, uint64_t *field, uint64_t value, ClientProperty p) {
        if (*field == value)
                return;
        *field = value;
        client_changed(c, p);
}

static void set_duration(Client *c, uint64_t *field, uint64_t value, ClientProperty p) {
        set_time(c, field, value, p);
}

static void set_bool(Client *c, bool *field, bool value, ClientProperty p) {
        if (*field == value)
                return;
        *field = value;
        client_changed(c, p);
}

/* Arm (or re-arm) a one-shot timer at a CLOCK_BOOTTIME deadline: a wall
 * clock set forward must not fire it early (src/deadline.h). */
static void arm_timer(Client *c, sd_event_source **source, uint64_t when, sd_event_time_handler_t handler,
                      const char *what) {
        int r;

        if (!client_live(c))
                return;
        if (*source) {
                r = sd_event_source_set_time(*source, when);
                if (r >= 0)
                        r = sd_event_source_set_enabled(*source, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time(c->server->event, source, CLOCK_BOOTTIME, when, USEC_PER_MSEC,
                                      handler, c);
        if (r < 0)
                log_error_errno(r, "Failed to arm the %s timer of %s: %m", what, c->name);
}

static void disarm_timer(sd_event_source *source) {
        if (source)
                (void) sd_event_source_set_enabled(source, SD_EVENT_OFF);
}

/* ---------------------------------------------------------------- expiry */

static void disable(Client *c);

static int on_expired(sd_event_source *s, uint64_t usec, void *userdata) {
        Client *c = userdata;

        /* Waiting for a free checker slot is our doing, not the host's:
         * look again shortly (client_checker_started extends expiry). */
        if (c->checker_queued) {
                arm_timer(c, &c->disable_timer, deadline_after(clock_now().boot, USEC_PER_SEC), on_expired,
                          "expiry");
                return 0;
        }
        log_struct(LOG_WARNING, &((LogFields) { .client = c->name, .key_id = c->key_id,
                                                .message_id = MESSAGE_ID_CLIENT_DISABLED }),
                   "Client %s has expired and is disabled: no successful checker for its timeout", c->name);
        if (c->enabled)
                disable(c);
        return 0;
}

/* Expiry at a boottime deadline (0: none), shown as the wall time wall. */
static void set_expires_shown(Client *c, uint64_t deadline, uint64_t wall) {
        c->expires_deadline = deadline;
        set_time(c, &c->expires, deadline ? wall : 0, CLIENT_EXPIRES);
        if (deadline)
                arm_timer(c, &c->disable_timer, deadline, on_expired, "expiry");
        else
                disarm_timer(c->disable_timer);
}

/* Expiry at a boottime deadline (0: none), shown as the wall time now plus
 * what remains (docs/DBUS-API.md, Expires). */
static void set_expires(Client *c, uint64_t deadline, ClockNow now) {
        set_expires_shown(c, deadline, deadline_to_wall(deadline, now));
}

void client_bump_timeout(Client *c, uint64_t usec) {
        ClockNow now = clock_now();

        if (!c->enabled)
                return;
        set_expires(c, deadline_after(now.boot, usec), now);
}

/* ---------------------------------------------------------------- checkers */

static int on_checker_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Client *c = userdata;
        ClockNow now = clock_now();
        uint64_t next = deadline_after(now.boot, c->interval);

        /* Every interval from now on. */
        arm_timer(c, &c->checker_timer, next, on_checker_timer, "checker");
        if (c->checker_randomized) {
                /* The first, randomly delayed run (docs/REFERENCE-BEHAVIOUR.md,
                 * Checker scheduling). */
                c->checker_randomized = false;
                if (c->expires_deadline < next)
                        set_expires(c, next, now);
        }
        client_start_checker(c);
        return 0;
}

/* The reference's init_checker (docs/REFERENCE-BEHAVIOUR.md, Checker
 * scheduling): the next checker after a random delay within one interval
 * (start-up) or after one interval; expiry one interval after that. */
static void init_checker(Client *c, bool randomize) {
        uint64_t delay = c->interval;
        ClockNow now = clock_now();

        if (randomize && c->interval > 0) {
                uint64_t r = 0;
                (void) getrandom(&r, sizeof(r), GRND_NONBLOCK);
                delay = (r % (c->interval / USEC_PER_MSEC + 1)) * USEC_PER_MSEC;
        }
        c->checker_randomized = randomize;
        arm_timer(c, &c->checker_timer, deadline_after(now.boot, delay), on_checker_timer, "checker");
        set_expires(c, deadline_after(deadline_after(now.boot, delay), c->interval), now);
}

void client_start_checker(Client *c) {
        if (!client_live(c))
                return;
        int r = checker_request(c->server->checkers, c);
        if (r < 0)
                log_error_errno(r, "Could not start the checker of %s: %m", c->name);
}

void client_stop_checker(Client *c) {
        if (!client_live(c) || (!c->checker && !c->checker_queued))
                return;
        log_debug("Stopping checker for %s", c->name);
        checker_cancel(c->server->checkers, c);
        if (c->checker) {
                c->checker = NULL;
                client_changed(c, CLIENT_CHECKER_RUNNING);
        }
}

void client_checker_started(Client *c, Checker *checker, const char *command, bool waited) {
        char *copy = strdup(command);

        if (copy) {
                free(c->current_checker_command);
                c->current_checker_command = copy;
        }
        c->checker = checker;
        log_info("Starting checker '%s' for %s", command, c->name);
        client_changed(c, CLIENT_CHECKER_RUNNING);
        /* A checker that waited for a slot gets one interval to report,
         * as the first one does (mandos(8), CHECKERS). */
        ClockNow now = clock_now();
        uint64_t end = deadline_after(now.boot, c->interval);
        if (waited && c->enabled && c->expires_deadline < end)
                set_expires(c, end, now);
        if (client_live(c))
                server_checker_started(c->server, c);
}

void client_checker_finished(Client *c, int exit_code, int signal) {
        LogFields f = { .client = c->name, .key_id = c->key_id };
        int16_t code = (int16_t) exit_code;
        int64_t wait_status;

        c->checker = NULL;
        client_changed(c, CLIENT_CHECKER_RUNNING);
        if (exit_code >= 0) {
                wait_status = (int64_t) exit_code << 8;
                if (c->last_checker_status != exit_code) {
                        c->last_checker_status = exit_code;
                        client_changed(c, CLIENT_LAST_CHECKER_STATUS);
                }
                if (exit_code == 0) {
                        log_struct(LOG_INFO, &f, "Checker for %s succeeded", c->name);
                        client_checked_ok(c);
                } else {
                        f.message_id = MESSAGE_ID_CHECKER_FAILED;
                        log_struct(LOG_INFO, &f, "Checker for %s failed", c->name);
                }
        } else {
                /* As the reference reports it: -1 and (-1 << 8) | signal. */
                wait_status = (int64_t) -256 | signal;
                c->last_checker_signal = signal;
                if (c->last_checker_status != -1) {
                        c->last_checker_status = -1;
                        client_changed(c, CLIENT_LAST_CHECKER_STATUS);
                }
                f.message_id = MESSAGE_ID_CHECKER_FAILED;
                log_struct(LOG_WARNING, &f, "Checker for %s crashed?", c->name);
        }
        if (client_live(c))
                server_checker_completed(c->server, c, code, wait_status);
}

void client_checked_ok(Client *c) {
        set_time(c, &c->last_checked_ok, now_realtime(), CLIENT_LAST_CHECKED_OK);
        if (c->last_checker_status != 0) {
                c->last_checker_status = 0;
                c->last_checker_signal = 0;
                client_changed(c, CLIENT_LAST_CHECKER_STATUS);
        }
        client_bump_timeout(c, c->timeout);
}

/* ---------------------------------------------------------------- enable/disable */

void client_enable(Client *c) {
        if (c->enabled)
                return;
        c->enabled = true;
        client_changed(c, CLIENT_ENABLED);
        set_time(c, &c->last_enabled, now_realtime(), CLIENT_LAST_ENABLED);
        init_checker(c, false);
        if (client_live(c))
                server_wake_approval_waiters(c->server, c);
}

static void disable(Client *c) {
        set_expires_shown(c, 0, 0);
        /* An Approve or Deny given before is for this enabled period only. */
        c->approved = -1;
        disarm_timer(c->approval_timer);
        disarm_timer(c->checker_timer);
        client_stop_checker(c);
        c->enabled = false;
        client_changed(c, CLIENT_ENABLED);
        /* Unlike the reference, waiting connections hear of it at once (and get nothing). */
        if (client_live(c))
                server_wake_approval_waiters(c->server, c);
}

void client_disable_quietly(Client *c) {
        if (c->enabled)
                disable(c);
}

void client_disable(Client *c) {
        if (!c->enabled)
                return;
        /* The reference is quiet here; a disabled host matters to admins. */
        if (client_live(c))
                log_struct(LOG_INFO, &((LogFields) { .client = c->name, .key_id = c->key_id,
                                                     .message_id = MESSAGE_ID_CLIENT_DISABLED }),
                           "Client %s disabled by an administrator (D-Bus or clients.conf)", c->name);
        disable(c);
}

void client_secret_sent(Client *c) {
        client_bump_timeout(c, c->extended_timeout);
        if (client_live(c))
                server_got_secret(c->server, c);
}

/* ---------------------------------------------------------------- approval */

static int on_approval_window_end(sd_event_source *s, uint64_t usec, void *userdata) {
        Client *c = userdata;
        c->approved = -1;
        return 0;
}

void client_approve(Client *c, bool approve) {
        c->approved = approve;
        /* One window per client: a later Approve extends it rather than being
         * cut short by an earlier one's timer as in the reference
         * (docs/REFERENCE-BEHAVIOUR.md, Approval). */
        arm_timer(c, &c->approval_timer, deadline_after(clock_now().boot, c->approval_duration),
                  on_approval_window_end, "approval");
        if (client_live(c))
                server_wake_approval_waiters(c->server, c);
}

void client_approval_wait_begin(Client *c) {
        if (c->approvals_pending++ == 0)
                client_changed(c, CLIENT_APPROVAL_PENDING);
}

void client_approval_wait_end(Client *c) {
        if (c->approvals_pending > 0 && --c->approvals_pending == 0)
                client_changed(c, CLIENT_APPROVAL_PENDING);
}

void client_need_approval(Client *c) {
        LogFields f = { .client = c->name, .key_id = c->key_id, .message_id = MESSAGE_ID_APPROVAL_REQUESTED };

        log_struct(LOG_INFO, &f, "Client %s needs approval", c->name);
        set_time(c, &c->last_approval_request, now_realtime(), CLIENT_LAST_APPROVAL_REQUEST);
        if (client_live(c))
                server_need_approval(c->server, c);
}

void client_rejected(Client *c, const char *reason) {
        if (client_live(c))
                server_rejected(c->server, c, reason);
}

/* ---------------------------------------------------------------- settings */

static int check_duration(uint64_t usec, const char **ret_error) {
        if (usec > CLIENT_DURATION_MAX) {
                *ret_error = "duration too long (at most ten years)";
                return -EINVAL;
        }
        return 0;
}

int client_set_timeout(Client *c, uint64_t usec, const char **ret_error) {
        uint64_t old = c->timeout, deadline;
        ClockNow now = clock_now();

        if (check_duration(usec, ret_error) < 0)
                return -EINVAL;
        set_duration(c, &c->timeout, usec, CLIENT_TIMEOUT);
        if (!c->enabled || !c->expires_deadline)
                return 0;
        /* Expiry moves by the difference (mandos-dbus-api(7), Timeout), and so
         * does the wall time shown for it. */
        deadline = deadline_shift(c->expires_deadline, old, usec);
        if (deadline <= now.boot)
                client_disable(c);
        else
                set_expires_shown(c, deadline, deadline_shift(c->expires, old, usec));
        return 0;
}

int client_set_extended_timeout(Client *c, uint64_t usec, const char **ret_error) {
        if (check_duration(usec, ret_error) < 0)
                return -EINVAL;
        set_duration(c, &c->extended_timeout, usec, CLIENT_EXTENDED_TIMEOUT);
        return 0;
}

int client_set_interval(Client *c, uint64_t usec, const char **ret_error) {
        if (check_duration(usec, ret_error) < 0)
                return -EINVAL;
        if (usec == 0) {
                *ret_error = "the interval must not be zero";
                return -EINVAL;
        }
        set_duration(c, &c->interval, usec, CLIENT_INTERVAL);
        /* As the reference: re-arm the periodic timer, and check now. */
        if (c->enabled && c->checker_timer) {
                c->checker_randomized = false;
                arm_timer(c, &c->checker_timer, deadline_after(clock_now().boot, usec), on_checker_timer,
                          "checker");
                client_start_checker(c);
        }
        return 0;
}

int client_set_approval_delay(Client *c, uint64_t usec, const char **ret_error) {
        if (usec > CLIENT_APPROVAL_DELAY_MAX) {
                *ret_error = "approval delay too long (at most one day)";
                return -EINVAL;
        }
        set_duration(c, &c->approval_delay, usec, CLIENT_APPROVAL_DELAY);
        return 0;
}

int client_set_approval_duration(Client *c, uint64_t usec, const char **ret_error) {
        if (check_duration(usec, ret_error) < 0)
                return -EINVAL;
        set_duration(c, &c->approval_duration, usec, CLIENT_APPROVAL_DURATION);
        return 0;
}

void client_set_approved_by_default(Client *c, bool b) {
        set_bool(c, &c->approved_by_default, b, CLIENT_APPROVED_BY_DEFAULT);
}

static int set_string(Client *c, char **field, const char *value, ClientProperty p) {
        char *copy;

        if (streq(*field, value))
                return 0;
        copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        client_changed(c, p);
        return 0;
}

int client_set_host(Client *c, const char *host) {
        return set_string(c, &c->host, host, CLIENT_HOST);
}

int client_set_checker(Client *c, const char *command, const char **ret_error) {
        if (checker_template_validate(command, ret_error) < 0)
                return -EINVAL;
        return set_string(c, &c->checker_command, command, CLIENT_CHECKER);
}

int client_set_secret(Client *c, const uint8_t *secret, size_t size) {
        uint8_t *copy = malloc(size ?: 1), *encrypted = NULL;
        size_t encrypted_size = 0;
        const char *why = NULL;
        int r;

        if (!copy)
                return -ENOMEM;
        memcpy(copy, secret, size);
        /* Only the ciphertext may reach the state file. */
        if (size != c->config->secret_size || memcmp(secret, c->config->secret, size) != 0) {
                r = secret_encrypt(c->config->secret, c->config->secret_size, secret, size, &encrypted,
                                   &encrypted_size, &why);
                if (r < 0) {
                        erase_and_free(copy, size);
                        return log_error_errno(r, "Could not encrypt the new secret of %s for the state file: %s",
                                               c->name, strempty(why));
                }
        }
        free(c->encrypted_secret);
        c->encrypted_secret = encrypted;
        c->encrypted_secret_size = encrypted_size;
        erase_and_free(c->secret, c->secret_size);
        c->secret = copy;
        c->secret_size = size;
        client_changed(c, CLIENT_SECRET);
        return 0;
}

/* Constant on D-Bus, so no change is announced. */
static int replace_string(char **field, const char *value) {
        char *copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

int client_set_key_id(Client *c, const char *key_id) {
        return replace_string(&c->key_id, key_id);
}

int client_set_fingerprint(Client *c, const char *fingerprint) {
        return replace_string(&c->fingerprint, fingerprint);
}

int client_set_config(Client *c, const ClientConfig *config) {
        ClientConfig *copy = client_config_dup(config);

        if (!copy)
                return -ENOMEM;
        client_config_free(c->config);
        c->config = copy;
        secret_digest(config->secret, config->secret_size, c->config_secret_digest);
        return 0;
}

/* ---------------------------------------------------------------- life */

static int dup_or_empty(char **field, const char *value) {
        *field = strdup(strempty(value));
        return *field ? 0 : -ENOMEM;
}

int client_new(Server *server, const ClientConfig *config, const ClientConfig *settings, Client **ret) {
        Client *c = calloc(1, sizeof(Client));

        if (!c)
                return -ENOMEM;
        if (!settings)
                settings = config;
        c->n_ref = 1;
        c->server = server;
        c->approved = -1;
        c->config = client_config_dup(config);
        if (!c->config ||
            dup_or_empty(&c->name, config->name) < 0 ||
            dup_or_empty(&c->key_id, settings->key_id) < 0 ||
            dup_or_empty(&c->fingerprint, settings->fingerprint) < 0 ||
            dup_or_empty(&c->host, settings->host) < 0 ||
            dup_or_empty(&c->checker_command, settings->checker) < 0 ||
            !(c->secret = malloc(config->secret_size ?: 1))) {
                client_unref(c);
                return -ENOMEM;
        }
        secret_digest(config->secret, config->secret_size, c->config_secret_digest);
        if (config->secret_size)
                memcpy(c->secret, config->secret, config->secret_size);
        c->secret_size = config->secret_size;
        c->timeout = settings->timeout;
        c->extended_timeout = settings->extended_timeout;
        c->interval = settings->interval;
        c->approval_delay = settings->approval_delay;
        c->approval_duration = settings->approval_duration;
        c->approved_by_default = settings->approved_by_default;
        c->enabled = settings->enabled;
        c->created = now_realtime();
        c->last_checker_status = -2;

        log_debug("Creating client '%s'", c->name);
        log_debug("  Key ID: %s", c->key_id);
        log_debug("  Fingerprint: %s", c->fingerprint);
        *ret = c;
        return 0;
}

void client_restore(Client *c, uint64_t created, uint64_t last_enabled, uint64_t expires, uint64_t last_checked_ok,
                    uint64_t last_approval_request, int last_checker_status) {
        c->created = created ?: c->created;
        c->last_enabled = last_enabled; /* kept when disabled, as the reference shows it */
        c->expires = c->enabled ? expires : 0;
        c->last_checked_ok = last_checked_ok;
        c->last_approval_request = last_approval_request;
        c->last_checker_status = last_checker_status;
}

int client_restore_secret(Client *c, const uint8_t *secret, size_t size, const uint8_t *encrypted, size_t encrypted_size) {
        uint8_t *plain = malloc(size ?: 1), *cipher = malloc(encrypted_size ?: 1);

        if (!plain || !cipher) {
                free(plain);
                free(cipher);
                return -ENOMEM;
        }
        memcpy(plain, secret, size);
        memcpy(cipher, encrypted, encrypted_size);
        erase_and_free(c->secret, c->secret_size);
        c->secret = plain;
        c->secret_size = size;
        free(c->encrypted_secret);
        c->encrypted_secret = cipher;
        c->encrypted_secret_size = encrypted_size;
        return 0;
}

void client_start(Client *c) {
        ClockNow now = clock_now();
        uint64_t restored = c->expires, deadline;

        if (!c->enabled)
                return;
        /* Quietly: the client is not announced yet. */
        if (!c->last_enabled)
                c->last_enabled = c->created;
        init_checker(c, true);
        /* A restored expiry still ahead is kept exactly (the reference
         * recomputes it, forgetting a recent successful check): what
         * remained of it on the wall clock becomes a boottime deadline,
         * within bounds should the wall clock be far behind now. */
        deadline = deadline_from_wall(restored, now,
                                      deadline_restore_cap(c->timeout, c->extended_timeout, c->interval));
        if (deadline)
                set_expires(c, deadline, now);
}

Client *client_ref(Client *c) {
        c->n_ref++;
        return c;
}

Client *client_unref(Client *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        client_detach(c);
        free(c->name);
        free(c->key_id);
        free(c->fingerprint);
        erase_and_free(c->secret, c->secret_size);
        free(c->host);
        free(c->checker_command);
        free(c->current_checker_command);
        free(c->object_path);
        free(c->encrypted_secret);
        client_config_free(c->config);
        free(c);
        return NULL;
}

void client_detach(Client *c) {
        if (client_live(c) && (c->checker || c->checker_queued))
                checker_cancel(c->server->checkers, c);
        c->checker = NULL;
        c->disable_timer = sd_event_source_disable_unref(c->disable_timer);
        c->checker_timer = sd_event_source_disable_unref(c->checker_timer);
        c->approval_timer = sd_event_source_disable_unref(c->approval_timer);
        c->removed = true;
}
