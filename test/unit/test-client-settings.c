/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The settings table (src/client-settings.h) and what it drives, without a
 * server: the merge rules of docs/STATE.md ("Merging at start", rules 1
 * and 2), and the state file's round trip (clients written, read back, and
 * equal setting by setting through the table). */

#include <stdlib.h>
#include <unistd.h>

#include "client.h"
#include "state.h"
#include "test.h"
#include "util.h"

static const uint8_t secret[] = "s3cret";

static ClientSettings settings(const char *name) {
        return (ClientSettings) {
                .name = (char *) name, .key_id = (char *) "AB01", .fingerprint = (char *) "CD02",
                .host = (char *) "host.example", .checker_command = (char *) "fping -q -- %(host)s",
                .secret = (uint8_t *) secret, .secret_size = sizeof(secret),
                .timeout = 300 * USEC_PER_SEC, .extended_timeout = 900 * USEC_PER_SEC,
                .interval = 120 * USEC_PER_SEC, .approval_delay = 0, .approval_duration = USEC_PER_SEC,
                .approved_by_default = true, .enabled = true,
        };
}

static void test_table_is_complete(void) {
        size_t named = 0;

        /* Every row names a field of its own, in clients.conf and on D-Bus. */
        FOREACH_CLIENT_SETTING(row) {
                check(row->name != NULL);
                check(row->property != NULL);
                check(row->offset < sizeof(ClientSettings));
                check(client_setting_by_name(row->name) == row);
                check(client_setting_by_property(row->property) == row);
                named++;
        }
        check_int(named, _CLIENT_SETTING_MAX);
        check(client_setting_by_name("nosuch") == NULL);
}

static void test_equal_copy_and_diff(void) {
        ClientSettings a = settings("a"), b = settings("a"), copy;

        check(client_settings_equal(&a, &b, 0));
        check(client_settings_copy(&copy, &a, true) == 0);
        FOREACH_CLIENT_SETTING(row)
                check(client_setting_equal(row, &copy, &a));
        b.host = (char *) "other";
        check(!client_settings_equal(&a, &b, 0));
        check(!client_setting_equal(client_setting(CLIENT_SETTING_HOST), &a, &b));
        check(client_setting_equal(client_setting(CLIENT_SETTING_TIMEOUT), &a, &b));
        /* The name and the secret are no saved settings. */
        b = settings("b");
        b.secret_size = 1;
        check(client_settings_equal(&a, &b, 0));
        client_settings_done(&copy);
}

/* Rule 1: a setting clients.conf changed since the save wins; otherwise
 * the run-time value saved does. */
static void test_merge_rule_1(void) {
        ClientSettings then = settings("a"), now = settings("a"), saved = settings("a");
        ClientSettings *m;

        saved.timeout = 60 * USEC_PER_SEC;       /* changed over D-Bus */
        saved.host = (char *) "runtime.example";  /* changed over D-Bus */
        saved.enabled = false;                    /* disabled by an administrator */
        now.host = (char *) "file.example";       /* edited in clients.conf since */
        now.interval = 10 * USEC_PER_SEC;         /* edited, not changed at run time */
        saved.secret = NULL;
        saved.secret_size = 0;

        m = client_settings_merge(&now, &then, &saved, 0);
        check(m != NULL);
        if (!m)
                return;
        check_int(m->timeout, 60 * USEC_PER_SEC);
        check_streq(m->host, "file.example");
        check(!m->enabled);
        check_int(m->interval, 10 * USEC_PER_SEC);
        check_int(m->extended_timeout, 900 * USEC_PER_SEC);
        check_streq(m->checker_command, "fping -q -- %(host)s");
        /* The secret is clients.conf's. */
        check_int(m->secret_size, sizeof(secret));
        check(memcmp(m->secret, secret, sizeof(secret)) == 0);
        client_settings_free(m);

        /* A setting the file predates (absent) is clients.conf's, and not compared. */
        then.host = now.host;
        m = client_settings_merge(&now, &then, &saved, CLIENT_SETTING_BIT(CLIENT_SETTING_HOST));
        check(m != NULL);
        if (m)
                check_streq(m->host, "file.example");
        client_settings_free(m);
        then.host = (char *) "";
        check(!client_settings_equal(&now, &then, 0));
        check(client_settings_equal(&now, &then, CLIENT_SETTING_BIT(CLIENT_SETTING_HOST) |
                                                CLIENT_SETTING_BIT(CLIENT_SETTING_INTERVAL)));
}

/* Rule 2: an expiry that passed while away keeps the client enabled only
 * after a successful last checker, then for one timeout from now. */
static void test_merge_rule_2(void) {
        const uint64_t now = 1000 * USEC_PER_SEC;
        ClientSettings m = settings("a");
        ClientTimes t;

        t = (ClientTimes) { .expires = now - 1, .last_checked_ok = 0, .last_checker_status = -2 };
        m.enabled = true;
        state_check_expiry(&m, &t, now);
        check(!m.enabled);

        t = (ClientTimes) { .expires = now - 1, .last_checked_ok = now - 5, .last_checker_status = 1 };
        m.enabled = true;
        state_check_expiry(&m, &t, now);
        check(!m.enabled);

        t = (ClientTimes) { .expires = now - 1, .last_checked_ok = now - 5, .last_checker_status = 0 };
        m.enabled = true;
        state_check_expiry(&m, &t, now);
        check(m.enabled);
        check_int(t.expires, now + m.timeout);

        /* Still ahead: kept as it was. */
        t = (ClientTimes) { .expires = now + 7, .last_checked_ok = 0, .last_checker_status = -2 };
        state_check_expiry(&m, &t, now);
        check(m.enabled);
        check_int(t.expires, now + 7);
}

static void check_saved(const SavedClient *s, const Client *c) {
        uint8_t digest[32];

        check(s != NULL);
        if (!s)
                return;
        check_streq(s->config->name, c->name);
        check(client_settings_equal(s->config, client_config(c), 0));
        check(client_settings_equal(s->runtime, &c->settings, 0));
        check_int(s->absent, 0);
        client_config_secret_digest(c, digest);
        check(memcmp(s->config_secret_digest, digest, 32) == 0);
        check_int(s->times.created, c->created);
        check_int(s->times.last_enabled, c->last_enabled);
        check_int(s->times.expires, c->expires);
        check_int(s->times.last_checked_ok, c->last_checked_ok);
        check_int(s->times.last_approval_request, c->last_approval_request);
        check_int(s->times.last_checker_status, c->last_checker_status);
        check(s->encrypted_secret == NULL);
}

static void test_state_round_trip(void) {
        char dir[] = "/tmp/test-client-settings.XXXXXX", path[64];
        ClientSettings a = settings("alpha"), b = settings("bravo");
        _cleanup_(state_freep) State *state = NULL;
        _cleanup_free_ char *error = NULL;
        ClientSettings changed;
        Client *clients[2] = {};

        check(mkdtemp(dir) != NULL);
        b.key_id = (char *) "";
        b.enabled = false;
        check(client_new(NULL, &a, NULL, &clients[0]) >= 0);
        /* Settings in force that differ from clients.conf's, as after D-Bus Sets. */
        changed = b;
        changed.host = (char *) "changed.example";
        changed.timeout = 42 * USEC_PER_SEC;
        changed.approved_by_default = false;
        check(client_new(NULL, &b, &changed, &clients[1]) >= 0);
        client_restore(clients[1], 11, 22, 0, 44, 55, 3);

        check(state_save(dir, 0, clients, 2, NULL, 0) >= 0);
        snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE_NAME);
        check(state_load(path, &state, &error) >= 0);
        check(error == NULL);
        check(state != NULL);
        if (state) {
                check_int(state->n_clients, 2);
                check_int(state->n_removed, 0);
                check_saved(state_find(state, "alpha", false), clients[0]);
                check_saved(state_find(state, "bravo", false), clients[1]);
                check(!client_settings_equal(state_find(state, "bravo", false)->config,
                                             state_find(state, "bravo", false)->runtime, 0));
        }
        (void) unlink(path);
        (void) rmdir(dir);
        client_unref(clients[0]);
        client_unref(clients[1]);
}

TEST_MAIN(TEST(test_table_is_complete),
          TEST(test_equal_copy_and_diff),
          TEST(test_merge_rule_1),
          TEST(test_merge_rule_2),
          TEST(test_state_round_trip));
