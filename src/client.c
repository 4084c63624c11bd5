/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "client.h"

#include <time.h>

#include "log.h"
#include "server.h"
#include "util.h"

uint64_t now_realtime(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static void client_changed(Client *c, ClientProperty p) {
        if (c->server && !c->removed)
                server_client_changed(c->server, c, p);
}

static void set_time(Client *c, uint64_t *field, uint64_t value, ClientProperty p) {
        if (*field == value)
                return;
        *field = value;
        client_changed(c, p);
}

static int on_expired(sd_event_source *s, uint64_t usec, void *userdata) {
        Client *c = userdata;

        log_struct(LOG_INFO, &((LogFields) { .client = c->name, .key_id = c->key_id,
                                             .message_id = MESSAGE_ID_CLIENT_DISABLED }),
                   "Client %s has expired and is disabled", c->name);
        client_disable(c);
        return 0;
}

/* (Re-)arm the disable timer for c->expires. */
static void arm_disable_timer(Client *c) {
        int r;

        if (!c->server || c->removed)
                return;
        if (c->disable_timer) {
                r = sd_event_source_set_time(c->disable_timer, c->expires);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->disable_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time(c->server->event, &c->disable_timer, CLOCK_REALTIME, c->expires,
                                      USEC_PER_MSEC, on_expired, c);
        if (r < 0)
                log_error_errno(r, "Failed to arm the expiry timer of %s: %m", c->name);
}

static void set_expires(Client *c, uint64_t expires) {
        set_time(c, &c->expires, expires, CLIENT_EXPIRES);
        if (expires)
                arm_disable_timer(c);
        else if (c->disable_timer)
                (void) sd_event_source_set_enabled(c->disable_timer, SD_EVENT_OFF);
}

static int dup_or_empty(char **field, const char *value) {
        *field = strdup(strempty(value));
        return *field ? 0 : -ENOMEM;
}

int client_new(Server *server, const ClientConfig *config, Client **ret) {
        Client *c = calloc(1, sizeof(Client));
        uint64_t now = now_realtime();

        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->server = server;
        if (dup_or_empty(&c->name, config->name) < 0 ||
            dup_or_empty(&c->key_id, config->key_id) < 0 ||
            dup_or_empty(&c->fingerprint, config->fingerprint) < 0 ||
            dup_or_empty(&c->host, config->host) < 0 ||
            dup_or_empty(&c->checker_command, config->checker) < 0 ||
            !(c->secret = malloc(config->secret_size ?: 1))) {
                client_unref(c);
                return -ENOMEM;
        }
        memcpy(c->secret, config->secret, config->secret_size);
        c->secret_size = config->secret_size;
        c->timeout = config->timeout;
        c->extended_timeout = config->extended_timeout;
        c->interval = config->interval;
        c->approval_delay = config->approval_delay;
        c->approval_duration = config->approval_duration;
        c->approved_by_default = config->approved_by_default;
        c->enabled = config->enabled;
        c->created = now;
        c->last_checker_status = -2;

        log_debug("Creating client '%s'", c->name);
        log_debug("  Key ID: %s", c->key_id);
        log_debug("  Fingerprint: %s", c->fingerprint);

        if (c->enabled) {
                c->last_enabled = now;
                c->expires = now + c->timeout;
                arm_disable_timer(c);
        }
        *ret = c;
        return 0;
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
        free(c);
        return NULL;
}

void client_detach(Client *c) {
        c->disable_timer = sd_event_source_disable_unref(c->disable_timer);
        c->removed = true;
}

void client_enable(Client *c) {
        if (c->enabled)
                return;
        c->enabled = true;
        client_changed(c, CLIENT_ENABLED);
        set_time(c, &c->last_enabled, now_realtime(), CLIENT_LAST_ENABLED);
        set_expires(c, now_realtime() + c->timeout);
}

void client_disable(Client *c) {
        if (!c->enabled)
                return;
        set_expires(c, 0);
        c->enabled = false;
        client_changed(c, CLIENT_ENABLED);
}

void client_bump_timeout(Client *c, uint64_t usec) {
        if (!c->enabled)
                return;
        set_expires(c, now_realtime() + usec);
}

void client_checked_ok(Client *c) {
        set_time(c, &c->last_checked_ok, now_realtime(), CLIENT_LAST_CHECKED_OK);
        if (c->last_checker_status != 0) {
                c->last_checker_status = 0;
                client_changed(c, CLIENT_LAST_CHECKER_STATUS);
        }
        client_bump_timeout(c, c->timeout);
}

void client_secret_sent(Client *c) {
        client_bump_timeout(c, c->extended_timeout);
}
