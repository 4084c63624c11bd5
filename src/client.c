/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "client.h"

#include <assert.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#include "deadline.h"
#include "duration.h"
#include "hex.h"
#include "log.h"
#include "secret-mem.h"
#include "shared-str.h"
#include "slab.h"
#include "loop.h"
#include "secret-crypt.h"
#include "util.h"

uint64_t now_realtime(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

const char *client_property_name(ClientProperty p) {
        static const char *const names[_CLIENT_PROPERTY_MAX - _CLIENT_SETTING_MAX] = {
                [CLIENT_APPROVAL_PENDING - _CLIENT_SETTING_MAX] = "ApprovalPending",
                [CLIENT_CHECKER_RUNNING - _CLIENT_SETTING_MAX] = "CheckerRunning",
                [CLIENT_EXPIRES - _CLIENT_SETTING_MAX] = "Expires",
                [CLIENT_LAST_APPROVAL_REQUEST - _CLIENT_SETTING_MAX] = "LastApprovalRequest",
                [CLIENT_LAST_CHECKED_OK - _CLIENT_SETTING_MAX] = "LastCheckedOK",
                [CLIENT_LAST_CHECKER_STATUS - _CLIENT_SETTING_MAX] = "LastCheckerStatus",
                [CLIENT_LAST_ENABLED - _CLIENT_SETTING_MAX] = "LastEnabled",
        };

        if ((int) p < 0 || p >= _CLIENT_PROPERTY_MAX)
                return NULL;
        if ((int) p < _CLIENT_SETTING_MAX)
                return client_settings_table[p].property;
        return names[p - _CLIENT_SETTING_MAX];
}

static bool client_live(const Client *c) {
        return c->owner && !c->removed;
}

/* Reported to the host; a client not (or no longer) in its table is quiet. */
static void client_event(Client *c, ClientEvent e) {
        if (client_live(c) && c->owner->on_event)
                c->owner->on_event(c, &e, c->owner->userdata);
}

static void client_changed(Client *c, ClientProperty p) {
        client_event(c, (ClientEvent) { .type = CLIENT_EVENT_CHANGED, .property = p });
}

static void set_time(Client *c, uint64_t *field, uint64_t value, ClientProperty p) {
        if (*field == value)
                return;
        *field = value;
        client_changed(c, p);
}

/* Arm (or re-arm) a one-shot timer at a CLOCK_BOOTTIME deadline: a wall
 * clock set forward must not fire it early (src/deadline.h). */
static void arm_timer(Client *c, HeapTimer *timer, uint64_t when, heap_timer_handler_t handler, const char *what) {
        int r;

        if (!client_live(c))
                return;
        r = timer_heap_arm(c->owner->timers, timer, when, handler);
        if (r < 0)
                log_error_errno(r, "Failed to arm the %s timer of %s: %m", what, c->name);
}

static void disarm_timer(Client *c, HeapTimer *timer) {
        if (client_live(c))
                timer_heap_disarm(c->owner->timers, timer);
}

/* ---------------------------------------------------------------- expiry */

static void disable(Client *c);

static void on_expired(HeapTimer *t) {
        Client *c = container_of(t, Client, expiry_timer);

        loop_note("the expiry timer of %s", c->name);

        /* Waiting for a free checker slot is our doing, not the host's:
         * look again shortly (on_checker_started() extends expiry). */
        if (checker_request_queued(&c->checker_job)) {
                arm_timer(c, &c->expiry_timer, deadline_after(clock_now().boot, USEC_PER_SEC), on_expired,
                          "expiry");
                return;
        }
        log_struct(LOG_WARNING, &((LogFields) { .client = c->name, .key_id = c->key_id,
                                                .message_id = MESSAGE_ID_CLIENT_DISABLED }),
                   "Client %s has expired and is disabled: no successful checker for its timeout", c->name);
        if (c->enabled)
                disable(c);
}

/* Expiry at a boottime deadline (0: none), shown as the wall time wall. */
static void set_expires_shown(Client *c, uint64_t deadline, uint64_t wall) {
        c->expires_deadline = deadline;
        set_time(c, &c->expires, deadline ? wall : 0, CLIENT_EXPIRES);
        if (deadline)
                arm_timer(c, &c->expiry_timer, deadline, on_expired, "expiry");
        else
                disarm_timer(c, &c->expiry_timer);
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

static void on_checker_timer(HeapTimer *t) {
        Client *c = container_of(t, Client, checker_timer);
        ClockNow now = clock_now();
        uint64_t next;

        next = deadline_after(now.boot, c->interval);
        loop_note("the checker timer of %s", c->name);
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
        int r = checker_request(c->owner->checkers, &c->checker_job);
        if (r < 0)
                log_error_errno(r, "Could not start the checker of %s: %m", c->name);
}

void client_stop_checker(Client *c) {
        bool running = client_checker_running(c);

        if (!client_live(c) || (!running && !checker_request_queued(&c->checker_job)))
                return;
        log_debug("Stopping checker for %s", c->name);
        checker_cancel(c->owner->checkers, &c->checker_job);
        if (running)
                client_changed(c, CLIENT_CHECKER_RUNNING);
}

/* Python's str() of the run-time values a checker template may name. */
static void template_runtime_value(const char *name, char buf[static 64], const char **ret, void *userdata) {
        const Client *c = userdata;

        assert(c);
        const struct {
                const char *name;
                uint64_t value;
        } times[] = {
                { "created", c->created },
                { "expires", c->expires },
                { "last_approval_request", c->last_approval_request },
                { "last_checked_ok", c->last_checked_ok },
                { "last_enabled", c->last_enabled },
        };

        for (size_t i = 0; i < ELEMENTSOF(times); i++)
                if (streq(name, times[i].name)) {
                        *ret = times[i].value ? timestamp_format_python(times[i].value, buf) : "None";
                        return;
                }
        if (streq(name, "dbus_object_path"))
                *ret = c->bus_exported ? client_object_path(c->name) ?: "None" : "None";
        else
                *ret = "";
}

int checker_expand(const Client *c, const char *template, char **ret) {
        return checker_template_expand(template, &c->settings, template_runtime_value, (void *) c, ret);
}

/* The checker manager's CheckerRequest callbacks (src/checker.h). */
static int on_checker_prepare(CheckerRequest *req, char **ret_command, const char **ret_name,
                              uint64_t *ret_runtime_max) {
        Client *c = container_of(req, Client, checker_job);
        int r;

        r = checker_expand(c, c->checker_command, ret_command);
        if (r < 0) {
                log_error("Could not format string \"%s\"", c->checker_command);
                return r;
        }
        *ret_name = c->name;
        /* A checker never outlives its client's timeout by much. */
        *ret_runtime_max = c->timeout + 10 * USEC_PER_SEC;
        return 0;
}

static void on_checker_started(CheckerRequest *req, const char *command, bool waited) {
        Client *c = container_of(req, Client, checker_job);
        char *copy;

        /* Without a %(name)s field, every client's command is the same
         * shared string: so is what it expands to (shared_str_dup()). */
        copy = shared_str_dup(command);
        if (copy) {
                shared_str_free(c->checker_command_expanded);
                c->checker_command_expanded = copy;
        }
        log_info("Starting checker '%s' for %s", command, c->name);
        client_changed(c, CLIENT_CHECKER_RUNNING);
        /* A checker that waited for a slot gets one interval to report,
         * as the first one does (mandos(8), CHECKERS). */
        ClockNow now = clock_now();
        uint64_t end = deadline_after(now.boot, c->interval);
        if (waited && c->enabled && c->expires_deadline < end)
                set_expires(c, end, now);
        client_event(c, (ClientEvent) { .type = CLIENT_EVENT_CHECKER_STARTED });
}

static void on_checker_finished(CheckerRequest *req, int exit_code, int signal) {
        /* The handlers it calls may let go of it. */
        _cleanup_(client_unrefp) Client *c = client_ref(container_of(req, Client, checker_job));
        LogFields f = { .client = c->name, .key_id = c->key_id };
        int16_t code = (int16_t) exit_code;
        int64_t wait_status;

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
        client_event(c, (ClientEvent) { .type = CLIENT_EVENT_CHECKER_FINISHED, .exit_code = code,
                                        .wait_status = wait_status });
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

static int config_split(Client *c);

void client_enable(Client *c) {
        if (c->enabled)
                return;
        if (config_split(c) < 0)
                (void) log_oom(); /* enabled all the same; clients.conf's value is lost */
        c->enabled = true;
        client_changed(c, CLIENT_PROPERTY_SETTING(CLIENT_SETTING_ENABLED));
        set_time(c, &c->last_enabled, now_realtime(), CLIENT_LAST_ENABLED);
        init_checker(c, false);
        client_event(c, (ClientEvent) { .type = CLIENT_EVENT_APPROVAL_DECIDED });
}

static void disable(Client *c) {
        if (config_split(c) < 0)
                (void) log_oom(); /* disabled all the same; clients.conf's value is lost */
        set_expires_shown(c, 0, 0);
        /* An Approve or Deny given before is for this enabled period only. */
        c->approved = -1;
        disarm_timer(c, &c->approval_timer);
        disarm_timer(c, &c->checker_timer);
        client_stop_checker(c);
        c->enabled = false;
        client_changed(c, CLIENT_PROPERTY_SETTING(CLIENT_SETTING_ENABLED));
        /* Unlike the reference, waiting connections hear of it at once (and get nothing). */
        client_event(c, (ClientEvent) { .type = CLIENT_EVENT_APPROVAL_DECIDED });
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
        client_event(c, (ClientEvent) { .type = CLIENT_EVENT_SECRET_SENT });
}

/* ---------------------------------------------------------------- approval */

static void on_approval_window_end(HeapTimer *t) {
        Client *c = container_of(t, Client, approval_timer);

        loop_note("the approval timer of %s", c->name);
        c->approved = -1;
}

void client_approve(Client *c, bool approve) {
        c->approved = approve;
        /* One window per client: a later Approve extends it rather than being
         * cut short by an earlier one's timer as in the reference
         * (docs/REFERENCE-BEHAVIOUR.md, Approval). */
        arm_timer(c, &c->approval_timer, deadline_after(clock_now().boot, c->approval_duration),
                  on_approval_window_end, "approval");
        client_event(c, (ClientEvent) { .type = CLIENT_EVENT_APPROVAL_DECIDED });
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
        client_event(c, (ClientEvent) { .type = CLIENT_EVENT_NEED_APPROVAL });
}

void client_rejected(Client *c, const char *reason) {
        client_event(c, (ClientEvent) { .type = CLIENT_EVENT_REJECTED, .reason = reason });
}

/* ---------------------------------------------------------------- settings */

/* What a setting does beyond being stored and announced: check refuses a
 * value (before it is stored), apply acts on the new one (it runs even
 * when the value did not change, as a D-Bus Set of the same value does),
 * set replaces storing altogether. */
typedef struct SettingSemantics {
        int (*check)(Client *c, const ClientSettings *v, const char **ret_error);
        void (*apply)(Client *c, const ClientSettings *old);
        void (*set)(Client *c, const ClientSettings *v);
} SettingSemantics;

/* Timeout: expiry moves by the difference (mandos-dbus-api(7), Timeout),
 * and so does the wall time shown for it. */
static void timeout_apply(Client *c, const ClientSettings *old) {
        ClockNow now = clock_now();
        uint64_t deadline;

        if (!c->enabled || !c->expires_deadline)
                return;
        deadline = deadline_shift(c->expires_deadline, old->timeout, c->timeout);
        if (deadline <= now.boot)
                client_disable(c);
        else
                set_expires_shown(c, deadline, deadline_shift(c->expires, old->timeout, c->timeout));
}

static int interval_check(Client *c, const ClientSettings *v, const char **ret_error) {
        if (v->interval == 0) {
                *ret_error = "the interval must not be zero";
                return -EINVAL;
        }
        return 0;
}

/* As the reference: re-arm the periodic timer, and check now. */
static void interval_apply(Client *c, const ClientSettings *old) {
        if (c->enabled && heap_timer_armed(&c->checker_timer)) {
                c->checker_randomized = false;
                arm_timer(c, &c->checker_timer, deadline_after(clock_now().boot, c->interval), on_checker_timer,
                          "checker");
                client_start_checker(c);
        }
}

static int approval_delay_check(Client *c, const ClientSettings *v, const char **ret_error) {
        if (v->approval_delay > CLIENT_APPROVAL_DELAY_MAX) {
                *ret_error = "approval delay too long (at most one day)";
                return -EINVAL;
        }
        return 0;
}

static void enabled_set(Client *c, const ClientSettings *v) {
        if (v->enabled)
                client_enable(c);
        else
                client_disable(c);
}

static const SettingSemantics setting_semantics[_CLIENT_SETTING_MAX] = {
        [CLIENT_SETTING_TIMEOUT] = { .apply = timeout_apply },
        [CLIENT_SETTING_INTERVAL] = { .check = interval_check, .apply = interval_apply },
        [CLIENT_SETTING_APPROVAL_DELAY] = { .check = approval_delay_check },
        [CLIENT_SETTING_ENABLED] = { .set = enabled_set },
};

/* A string setting in force the same as clients.conf's is c->config's
 * string, not a copy (with 100,000 clients, copies cost some 20 MB): the
 * settings borrow it while the pointers are the same. Whoever replaces one
 * leaves the borrowed string to c->config; pointers in c->settings never
 * change otherwise (tables borrow c->name and c->key_id). */
static bool type_is_string(ClientSettingType t) {
        return t == CLIENT_SETTING_TYPE_STRING || t == CLIENT_SETTING_TYPE_KEY;
}

static bool setting_borrowed(const Client *c, const ClientSettingInfo *row) {
        return c->config && type_is_string(row->type) &&
               *CLIENT_SETTING_CFIELD(&c->settings, row, char *) == *CLIENT_SETTING_CFIELD(c->config, row, char *);
}

/* row's value in force from v, leaving a borrowed string to c->config. */
static int settings_set(Client *c, const ClientSettingInfo *row, const ClientSettings *v) {
        if (setting_borrowed(c, row)) {
                char *copy = shared_str_dup(strempty(*CLIENT_SETTING_CFIELD(v, row, char *)));
                if (!copy)
                        return -ENOMEM;
                *CLIENT_SETTING_FIELD(&c->settings, row, char *) = copy;
                return 0;
        }
        return client_setting_copy(row, &c->settings, v);
}

/* The settings in force from settings: its strings the same as
 * c->config's are borrowed. */
static int settings_init(Client *c, const ClientSettings *settings) {
        FOREACH_CLIENT_SETTING(row) {
                if (row->type == CLIENT_SETTING_TYPE_SECRET)
                        continue;
                if (type_is_string(row->type) &&
                    (client_setting_id(row) == CLIENT_SETTING_NAME || client_setting_equal(row, settings, c->config)))
                        *CLIENT_SETTING_FIELD(&c->settings, row, char *) = *CLIENT_SETTING_FIELD(c->config, row, char *);
                else if (client_setting_copy(row, &c->settings, settings) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Frees the settings in force, not what they borrow. */
static void settings_done(Client *c) {
        FOREACH_CLIENT_SETTING(row)
                if (setting_borrowed(c, row))
                        *CLIENT_SETTING_FIELD(&c->settings, row, char *) = NULL;
        client_settings_done(&c->settings);
}

/* A client whose settings in force are clients.conf's (most of them) keeps
 * one copy: c->config is NULL, and c->settings owns the strings and the
 * secret (100 bytes a client less). Before anything in force changes,
 * clients.conf's values move to a c->config of their own, which then owns
 * them while the settings in force borrow them (setting_borrowed()). */
static int config_split(Client *c) {
        if (c->config)
                return 0;
        c->config = malloc(sizeof(ClientSettings));
        if (!c->config)
                return -ENOMEM;
        *c->config = c->settings; /* shallow: the pointers are the same, so borrowed */
        return 0;
}

/* The reverse, when nothing in force differs from c->config (the same
 * strings and secret, not just equal ones). */
static void config_join(Client *c) {
        if (!c->config || c->secret != c->config->secret || c->secret_size != c->config->secret_size)
                return;
        FOREACH_CLIENT_SETTING(row) {
                if (row->type == CLIENT_SETTING_TYPE_SECRET)
                        continue;
                if (type_is_string(row->type) ? !setting_borrowed(c, row) : !client_setting_equal(row, &c->settings, c->config))
                        return;
        }
        c->config = mfree(c->config);
}

const ClientSettings *client_config(const Client *c) {
        return c->config ?: &c->settings;
}

static int check_setting(Client *c, const ClientSettingInfo *row, const ClientSettings *v, const char **ret_error) {
        const SettingSemantics *sem = &setting_semantics[client_setting_id(row)];

        if (row->type == CLIENT_SETTING_TYPE_SECRET || (row->flags & CLIENT_SETTING_INDEX)) {
                *ret_error = "not settable this way";
                return -EINVAL;
        }
        /* Its own limit first: a day is less than ten years. */
        if (sem->check && sem->check(c, v, ret_error) < 0)
                return -EINVAL;
        if (row->type == CLIENT_SETTING_TYPE_DURATION &&
            *CLIENT_SETTING_CFIELD(v, row, uint64_t) > CLIENT_DURATION_MAX) {
                *ret_error = "duration too long (at most ten years)";
                return -EINVAL;
        }
        if (row->validate && row->validate(CLIENT_SETTING_CFIELD(v, row, void), ret_error) < 0)
                return -EINVAL;
        return 0;
}

int client_set_setting(Client *c, const ClientSettingInfo *row, const ClientSettings *v, const char **ret_error) {
        const SettingSemantics *sem = &setting_semantics[client_setting_id(row)];
        ClientSettings old = c->settings; /* shallow: apply() reads its numbers only */
        int r;

        r = check_setting(c, row, v, ret_error);
        if (r < 0)
                return r;
        if (sem->set) {
                sem->set(c, v);
                return 0;
        }
        if (!client_setting_equal(row, &c->settings, v)) {
                r = config_split(c);
                if (r >= 0)
                        r = settings_set(c, row, v);
                if (r < 0)
                        return r;
                /* Constant ones on D-Bus (fingerprint) change on reload only, unannounced. */
                if (row->flags & CLIENT_SETTING_WRITABLE)
                        client_changed(c, CLIENT_PROPERTY_SETTING(client_setting_id(row)));
        }
        if (sem->apply)
                sem->apply(c, &old);
        return 0;
}

/* The secret in force is clients.conf's (c->config's bytes, not a copy:
 * with 100,000 clients a copy each costs 60 MB) or one set at run time,
 * c's own. */
static bool secret_is_config(const Client *c) {
        return c->config && c->secret == c->config->secret;
}

static void secret_release(Client *c) {
        if (!secret_is_config(c))
                secret_free(c->secret, c->secret_size);
        c->secret = NULL;
        c->secret_size = 0;
}

static bool secret_equal(const uint8_t *a, size_t a_size, const uint8_t *b, size_t b_size) {
        return a_size == b_size && (a_size == 0 || memcmp(a, b, a_size) == 0);
}

/* Takes secret (NULL: the configured one) and encrypted, freeing them on failure. */
static int apply_secret(Client *c, uint8_t *secret, size_t size, uint8_t *encrypted, size_t encrypted_size) {
        if (config_split(c) < 0) {
                secret_free(secret, size);
                free(encrypted);
                return -ENOMEM;
        }
        free(c->secret_sets->encrypted);
        c->secret_sets->encrypted = encrypted;
        c->secret_sets->encrypted_size = encrypted_size;
        secret_release(c);
        c->secret = secret ?: c->config->secret;
        c->secret_size = secret ? size : c->config->secret_size;
        client_changed(c, CLIENT_PROPERTY_SETTING(CLIENT_SETTING_SECRET));
        return 0;
}

typedef struct SecretSet {
        Client *client;             /* a reference */
        uint64_t serial;
        uint8_t *secret;
        size_t size;
        client_secret_done_t done;
        void *userdata;
} SecretSet;

static void on_secret_encrypted(int r, uint8_t *cipher, size_t cipher_size, const char *why, void *userdata) {
        SecretSet *set = userdata;
        Client *c;

        assert(set);
        c = set->client;
        if (r < 0)
                log_error_errno(r, "Could not encrypt the new secret of %s for the state file: %s", c->name,
                                strempty(why));
        else if (c->removed)
                r = -ESRCH;
        else if (set->serial > c->secret_sets->applied) {
                /* A later Set that finished first has already won. */
                c->secret_sets->applied = set->serial;
                r = apply_secret(c, TAKE_PTR(set->secret), set->size, TAKE_PTR(cipher), cipher_size);
                if (r < 0)
                        log_oom();
        }
        free(cipher);
        if (set->done)
                set->done(r, set->userdata);
        secret_free(set->secret, set->size);
        client_unref(c);
        free(set);
}

int client_set_secret_async(Client *c, const uint8_t *secret, size_t size, client_secret_done_t done,
                            void *userdata) {
        uint8_t *copy;
        SecretSet *set;
        int r;

        if (!client_live(c))
                return -ESRCH;
        copy = secret_new(secret, size);
        if (!copy || (!c->secret_sets && !(c->secret_sets = calloc(1, sizeof(ClientSecretSets))))) {
                secret_free(copy, size);
                return -ENOMEM;
        }
        c->secret_sets->calls++;
        if (size == client_config(c)->secret_size && memcmp(secret, client_config(c)->secret, size) == 0) {
                /* Back to the configured secret: nothing to encrypt. */
                c->secret_sets->applied = c->secret_sets->calls;
                secret_free(copy, size);
                return apply_secret(c, NULL, 0, NULL, 0);
        }
        /* Only the ciphertext may reach the state file. */
        set = malloc(sizeof(SecretSet));
        if (!set) {
                secret_free(copy, size);
                return -ENOMEM;
        }
        *set = (SecretSet) { .client = client_ref(c), .serial = c->secret_sets->calls, .secret = copy, .size = size,
                             .done = done, .userdata = userdata };
        r = secret_encrypt_async(c->owner->event, client_config(c)->secret, client_config(c)->secret_size, secret, size,
                                 on_secret_encrypted, set);
        if (r < 0) {
                secret_free(set->secret, size);
                client_unref(c);
                free(set);
                return log_error_errno(r, "Could not encrypt the new secret of %s for the state file: %m", c->name);
        }
        return 1;
}

int client_set_secret(Client *c, const uint8_t *secret, size_t size) {
        return client_set_secret_async(c, secret, size, NULL, NULL);
}

/* Constant on D-Bus, so no change is announced. */
int client_set_key_id(Client *c, const char *key_id) {
        char *copy = shared_str_dup(key_id);
        if (!copy || config_split(c) < 0) {
                shared_str_free(copy);
                return -ENOMEM;
        }
        if (!setting_borrowed(c, client_setting(CLIENT_SETTING_KEY_ID)))
                shared_str_free(c->key_id);
        c->key_id = copy;
        return 0;
}

int client_set_config(Client *c, const ClientSettings *config) {
        ClientSettings *copy = client_settings_dup(config);

        if (!copy || config_split(c) < 0) {
                client_settings_free(copy);
                return -ENOMEM;
        }
        if (secret_is_config(c)) {
                /* The secret in force stays what it is: the new file's, if
                 * the same, else a copy of its own. */
                if (secret_equal(c->secret, c->secret_size, copy->secret, copy->secret_size))
                        c->secret = copy->secret;
                else {
                        uint8_t *own = secret_new(c->secret, c->secret_size);
                        if (!own) {
                                client_settings_free(copy);
                                return -ENOMEM;
                        }
                        c->secret = own;
                }
        }
        /* A string unchanged keeps its allocation, which the settings in
         * force may borrow; a changed one they borrow becomes theirs. */
        FOREACH_CLIENT_SETTING(row) {
                if (!type_is_string(row->type))
                        continue;
                char **was = CLIENT_SETTING_FIELD(c->config, row, char *), **now = CLIENT_SETTING_FIELD(copy, row, char *);
                if (streq(*was, *now)) {
                        shared_str_free(*now);
                        *now = TAKE_PTR(*was);
                } else if (setting_borrowed(c, row))
                        *was = NULL;
        }
        client_settings_free(c->config);
        c->config = copy;
        config_join(c);
        return 0;
}

void client_config_secret_digest(const Client *c, uint8_t ret[static 32]) {
        secret_digest(client_config(c)->secret, client_config(c)->secret_size, ret);
}

static const CheckerRequestOps checker_ops = {
        .prepare = on_checker_prepare,
        .started = on_checker_started,
        .finished = on_checker_finished,
};

/* ---------------------------------------------------------------- life */

const char *client_object_path_in(const char *name, char **buf, size_t *size) {
        size_t need;
        char *p;

        if (isempty(name))
                return NULL;
        need = strlen("/clients/") + 3 * strlen(name) + 1;
        if (need > *size) {
                char *bigger = realloc(*buf, need);
                if (!bigger)
                        return NULL;
                *buf = bigger;
                *size = need;
        }
        p = stpcpy(*buf, "/clients/");
        for (const unsigned char *s = (const unsigned char *) name; *s; s++) {
                if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')
                        *p++ = (char) *s;
                else if (*s == '.' || *s == '-')
                        *p++ = '_';
                else {
                        *p++ = '_';
                        *p++ = hexchar(*s >> 4, false);
                        *p++ = hexchar(*s, false);
                }
        }
        *p = '\0';
        return *buf;
}

const char *client_object_path(const char *name) {
        static char *buf;
        static size_t size;

        return client_object_path_in(name, &buf, &size);
}

/* Clients, packed (src/slab.h): 100,000 of them, each kept from start-up
 * to its removal. */
static Slab clients = SLAB_INIT(sizeof(Client));

/* Takes config (freed on failure). */
static int client_new_owned(const ClientOwner *owner, ClientSettings *config, const ClientSettings *settings,
                            Client **ret) {
        Client *c = slab_alloc(&clients);

        if (!c) {
                client_settings_free(config);
                return -ENOMEM;
        }
        if (!settings)
                settings = config;
        c->n_ref = 1;
        c->owner = owner;
        c->approved = -1;
        c->checker_job = (CheckerRequest) { .ops = &checker_ops };
        c->config = config;
        /* The secret in force is config's bytes (secret_is_config()), and so
         * are the strings the same as config's (settings_init()). */
        if (settings_init(c, settings) < 0) {
                client_unref(c);
                return -ENOMEM;
        }
        c->secret = c->config->secret;
        c->secret_size = c->config->secret_size;
        c->created = now_realtime();
        c->last_checker_status = -2;
        config_join(c);

        log_debug("Creating client '%s'", c->name);
        log_debug("  Key ID: %s", c->key_id);
        log_debug("  Fingerprint: %s", c->fingerprint);
        *ret = c;
        return 0;
}

int client_new(const ClientOwner *owner, const ClientSettings *config, const ClientSettings *settings, Client **ret) {
        ClientSettings *copy = client_settings_dup(config);

        if (!copy)
                return -ENOMEM;
        return client_new_owned(owner, copy, settings, ret);
}

int client_new_take(const ClientOwner *owner, ClientSettings *config, const ClientSettings *settings, Client **ret) {
        /* A copy makes NULL strings "": so does this. */
        FOREACH_CLIENT_SETTING(row) {
                char **v = CLIENT_SETTING_FIELD(config, row, char *);
                if (type_is_string(row->type) && !*v && !(*v = shared_str_dup(""))) {
                        client_settings_free(config);
                        return -ENOMEM;
                }
        }
        return client_new_owned(owner, config, settings, ret);
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
        uint8_t *plain = secret_new(secret, size), *cipher = malloc(encrypted_size ?: 1);

        if (!plain || !cipher || (!c->secret_sets && !(c->secret_sets = calloc(1, sizeof(ClientSecretSets))))) {
                secret_free(plain, size);
                free(cipher);
                return -ENOMEM;
        }
        if (config_split(c) < 0) {
                secret_free(plain, size);
                free(cipher);
                return -ENOMEM;
        }
        memcpy(cipher, encrypted, encrypted_size);
        secret_release(c);
        c->secret = plain;
        c->secret_size = size;
        free(c->secret_sets->encrypted);
        c->secret_sets->encrypted = cipher;
        c->secret_sets->encrypted_size = encrypted_size;
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
        secret_release(c);
        settings_done(c);
        shared_str_free(c->checker_command_expanded);
        if (c->secret_sets)
                free(c->secret_sets->encrypted);
        free(c->secret_sets);
        client_settings_free(c->config);
        slab_free(&clients, c);
        return NULL;
}

void client_detach(Client *c) {
        if (client_live(c) && (c->checker_job.process || checker_request_queued(&c->checker_job)))
                checker_cancel(c->owner->checkers, &c->checker_job);
        disarm_timer(c, &c->expiry_timer);
        disarm_timer(c, &c->checker_timer);
        disarm_timer(c, &c->approval_timer);
        c->removed = true;
}
