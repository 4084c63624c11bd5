/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "client-settings.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <stdio.h>

#include "duration.h"
#include "secret-mem.h"
#include "shared-str.h"
#include "util.h"

static int validate_checker(const void *field, const char **ret_error) {
        return checker_template_validate(*(char *const *) field, ret_error);
}

#define ROW(id, n, prop, t, field, fl, ...)                                                                     \
        [CLIENT_SETTING_##id] = { .name = n, .property = prop, .type = CLIENT_SETTING_TYPE_##t,                       \
                                  .offset = offsetof(ClientSettings, field), .flags = fl, __VA_ARGS__ }

#define SAVED CLIENT_SETTING_SAVED
#define TEMPLATE CLIENT_SETTING_TEMPLATE
#define WRITABLE CLIENT_SETTING_WRITABLE

/* The defaults are those of the reference's Client class (mandos-clients.conf(5), OPTIONS). */
const ClientSettingInfo client_settings_table[_CLIENT_SETTING_MAX] = {
        ROW(NAME, "name", "Name", STRING, name, TEMPLATE),
        ROW(KEY_ID, "key_id", "KeyID", KEY, key_id, SAVED | TEMPLATE | CLIENT_SETTING_INDEX),
        ROW(FINGERPRINT, "fingerprint", "Fingerprint", KEY, fingerprint, SAVED | TEMPLATE),
        ROW(HOST, "host", "Host", STRING, host, SAVED | TEMPLATE | WRITABLE, .default_value = ""),
        ROW(CHECKER, "checker", "Checker", STRING, checker_command, SAVED | WRITABLE,
            .pickle_name = "checker_command", .default_value = "fping -q -- %%(host)s",
            .validate = validate_checker),
        ROW(TIMEOUT, "timeout", "Timeout", DURATION, timeout, SAVED | TEMPLATE | WRITABLE,
            .default_value = "PT5M"),
        ROW(EXTENDED_TIMEOUT, "extended_timeout", "ExtendedTimeout", DURATION, extended_timeout,
            SAVED | WRITABLE, .default_value = "PT15M"),
        ROW(INTERVAL, "interval", "Interval", DURATION, interval,
            SAVED | TEMPLATE | WRITABLE | CLIENT_SETTING_NONZERO, .default_value = "PT2M"),
        ROW(APPROVAL_DELAY, "approval_delay", "ApprovalDelay", DURATION, approval_delay, SAVED | TEMPLATE | WRITABLE,
            .default_value = "PT0S"),
        ROW(APPROVAL_DURATION, "approval_duration", "ApprovalDuration", DURATION, approval_duration,
            SAVED | TEMPLATE | WRITABLE, .default_value = "PT1S"),
        ROW(APPROVED_BY_DEFAULT, "approved_by_default", "ApprovedByDefault", BOOLEAN, approved_by_default,
            SAVED | WRITABLE, .default_value = "True"),
        ROW(ENABLED, "enabled", "Enabled", BOOLEAN, enabled, SAVED | TEMPLATE | WRITABLE,
            .default_value = "True"),
        /* Write-only on D-Bus; the state file keeps only a digest of it. */
        ROW(SECRET, "secret", "Secret", SECRET, secret, WRITABLE),
};

const ClientSettingInfo *client_setting_by_name(const char *name) {
        FOREACH_CLIENT_SETTING(row)
                if (streq(row->name, name))
                        return row;
        return NULL;
}

const ClientSettingInfo *client_setting_by_property(const char *property) {
        FOREACH_CLIENT_SETTING(row)
                if (streq(row->property, property))
                        return row;
        return NULL;
}

static bool type_is_string(ClientSettingType t) {
        return t == CLIENT_SETTING_TYPE_STRING || t == CLIENT_SETTING_TYPE_KEY;
}

static size_t *secret_size_field(ClientSettings *s, const ClientSettingInfo *row) {
        return (size_t *) ((uint8_t *) s + row->offset + sizeof(uint8_t *));
}

static void setting_done(const ClientSettingInfo *row, ClientSettings *s) {
        if (type_is_string(row->type))
                *CLIENT_SETTING_FIELD(s, row, char *) = shared_str_free(*CLIENT_SETTING_FIELD(s, row, char *));
        else if (row->type == CLIENT_SETTING_TYPE_SECRET) {
                uint8_t **secret = CLIENT_SETTING_FIELD(s, row, uint8_t *);
                size_t *size = secret_size_field(s, row);
                *secret = secret_free(*secret, *size);
                *size = 0;
        }
}

void client_settings_done(ClientSettings *s) {
        FOREACH_CLIENT_SETTING(row)
                setting_done(row, s);
}

ClientSettings *client_settings_free(ClientSettings *s) {
        if (!s)
                return NULL;
        client_settings_done(s);
        free(s);
        return NULL;
}

int client_setting_copy(const ClientSettingInfo *row, ClientSettings *dest, const ClientSettings *src) {
        switch (row->type) {
        case CLIENT_SETTING_TYPE_STRING:
        case CLIENT_SETTING_TYPE_KEY: {
                char *v = shared_str_dup(strempty(*CLIENT_SETTING_CFIELD(src, row, char *)));
                if (!v)
                        return -ENOMEM;
                shared_str_free(*CLIENT_SETTING_FIELD(dest, row, char *));
                *CLIENT_SETTING_FIELD(dest, row, char *) = v;
                return 0;
        }
        case CLIENT_SETTING_TYPE_SECRET: {
                const uint8_t *from = *CLIENT_SETTING_CFIELD(src, row, uint8_t *);
                size_t size = *secret_size_field((ClientSettings *) src, row);
                uint8_t *v = secret_new(from, size);
                if (!v)
                        return -ENOMEM;
                setting_done(row, dest);
                *CLIENT_SETTING_FIELD(dest, row, uint8_t *) = v;
                *secret_size_field(dest, row) = size;
                return 0;
        }
        case CLIENT_SETTING_TYPE_DURATION:
                *CLIENT_SETTING_FIELD(dest, row, uint64_t) = *CLIENT_SETTING_CFIELD(src, row, uint64_t);
                return 0;
        case CLIENT_SETTING_TYPE_BOOLEAN:
                *CLIENT_SETTING_FIELD(dest, row, bool) = *CLIENT_SETTING_CFIELD(src, row, bool);
                return 0;
        }
        return -EINVAL;
}

int client_settings_copy(ClientSettings *dest, const ClientSettings *src, bool with_secret) {
        *dest = (ClientSettings) {};
        FOREACH_CLIENT_SETTING(row) {
                if (row->type == CLIENT_SETTING_TYPE_SECRET && !with_secret)
                        continue;
                if (client_setting_copy(row, dest, src) < 0) {
                        client_settings_done(dest);
                        return -ENOMEM;
                }
        }
        return 0;
}

ClientSettings *client_settings_dup(const ClientSettings *s) {
        ClientSettings *d = malloc(sizeof(ClientSettings));

        if (!d)
                return NULL;
        if (client_settings_copy(d, s, true) < 0)
                return mfree(d);
        return d;
}

bool client_setting_equal(const ClientSettingInfo *row, const ClientSettings *a, const ClientSettings *b) {
        switch (row->type) {
        case CLIENT_SETTING_TYPE_STRING:
        case CLIENT_SETTING_TYPE_KEY:
                /* NULL is "", as copies make it. */
                return streq(strempty(*CLIENT_SETTING_CFIELD(a, row, char *)),
                             strempty(*CLIENT_SETTING_CFIELD(b, row, char *)));
        case CLIENT_SETTING_TYPE_DURATION:
                return *CLIENT_SETTING_CFIELD(a, row, uint64_t) == *CLIENT_SETTING_CFIELD(b, row, uint64_t);
        case CLIENT_SETTING_TYPE_BOOLEAN:
                return *CLIENT_SETTING_CFIELD(a, row, bool) == *CLIENT_SETTING_CFIELD(b, row, bool);
        case CLIENT_SETTING_TYPE_SECRET: {
                size_t n = *secret_size_field((ClientSettings *) a, row);
                return n == *secret_size_field((ClientSettings *) b, row) &&
                       (n == 0 || memcmp(*CLIENT_SETTING_CFIELD(a, row, uint8_t *),
                                         *CLIENT_SETTING_CFIELD(b, row, uint8_t *), n) == 0);
        }
        }
        return false;
}

bool client_settings_equal(const ClientSettings *a, const ClientSettings *b, ClientSettingMask skip) {
        FOREACH_CLIENT_SETTING_WITH(row, CLIENT_SETTING_SAVED)
                if (!(skip & CLIENT_SETTING_BIT(client_setting_id(row))) && !client_setting_equal(row, a, b))
                        return false;
        return true;
}

ClientSettings *client_settings_merge(const ClientSettings *now, const ClientSettings *then,
                                      const ClientSettings *saved, ClientSettingMask absent) {
        ClientSettings *m = client_settings_dup(now);

        if (!m)
                return NULL;
        FOREACH_CLIENT_SETTING_WITH(row, CLIENT_SETTING_SAVED)
                if (!(absent & CLIENT_SETTING_BIT(client_setting_id(row))) && client_setting_equal(row, now, then) &&
                    client_setting_copy(row, m, saved) < 0)
                        return client_settings_free(m);
        return m;
}

void client_setting_format_python(const ClientSettingInfo *row, const ClientSettings *s, char buf[static 64],
                                  const char **ret) {
        switch (row->type) {
        case CLIENT_SETTING_TYPE_STRING:
        case CLIENT_SETTING_TYPE_KEY:
                *ret = strempty(*CLIENT_SETTING_CFIELD(s, row, char *));
                return;
        case CLIENT_SETTING_TYPE_DURATION:
                *ret = duration_format_python(*CLIENT_SETTING_CFIELD(s, row, uint64_t), buf);
                return;
        case CLIENT_SETTING_TYPE_BOOLEAN:
                *ret = *CLIENT_SETTING_CFIELD(s, row, bool) ? "True" : "False";
                return;
        case CLIENT_SETTING_TYPE_SECRET:
                break;
        }
        *ret = "";
}

#define DIGEST_LABEL "mandos state: configured secret digest"

void secret_digest_for(unsigned version, const uint8_t *secret, size_t size, uint8_t ret[static 32]) {
        int r;

        if (version == 1)
                r = gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, size, ret);
        else
                r = gnutls_hmac_fast(GNUTLS_MAC_SHA256, secret, size, DIGEST_LABEL, strlen(DIGEST_LABEL), ret);
        if (r < 0)
                memset(ret, 0, 32);
}

void secret_digest(const uint8_t *secret, size_t size, uint8_t ret[static 32]) {
        secret_digest_for(2, secret, size, ret);
}

/* ---------------------------------------------------------------- the checker template */

/* The names a checker command may use (mandos-clients.conf(5), EXPANSION):
 * the settings marked CLIENT_SETTING_TEMPLATE, and these run-time values
 * of the client (checker_template_expand()'s runtime). */
static const char *const template_runtime_names[] = {
        "created", "dbus_object_path", "expires", "last_approval_request", "last_checked_ok", "last_enabled",
};

static bool template_name_known(const char *name, size_t len) {
        FOREACH_CLIENT_SETTING_WITH(row, CLIENT_SETTING_TEMPLATE)
                if (strlen(row->name) == len && strncmp(row->name, name, len) == 0)
                        return true;
        for (size_t i = 0; i < ELEMENTSOF(template_runtime_names); i++)
                if (strlen(template_runtime_names[i]) == len && strncmp(template_runtime_names[i], name, len) == 0)
                        return true;
        return false;
}

/* Walk the template; for each "%(name)s" call field(), for other text text(). */
typedef int (*TemplateText)(const char *s, size_t n, void *userdata);
typedef int (*TemplateField)(const char *name, size_t n, void *userdata);

static int template_walk(const char *t, TemplateText text, TemplateField field, void *userdata,
                         const char **ret_error) {
        int r;

        while (*t) {
                const char *p = strchr(t, '%');
                if (!p)
                        return text(t, strlen(t), userdata);
                if ((r = text(t, (size_t) (p - t), userdata)) < 0)
                        return r;
                if (p[1] == '%') {
                        if ((r = text("%", 1, userdata)) < 0)
                                return r;
                        t = p + 2;
                        continue;
                }
                if (p[1] != '(') {
                        *ret_error = "'%' must be followed by '%' or '(name)s'";
                        return -EINVAL;
                }
                const char *close = strchr(p + 2, ')');
                if (!close) {
                        *ret_error = "unterminated '%(' in the checker command";
                        return -EINVAL;
                }
                if (close[1] != 's') {
                        *ret_error = "only '%(name)s' conversions are supported in the checker command";
                        return -EINVAL;
                }
                if (!template_name_known(p + 2, (size_t) (close - p - 2))) {
                        *ret_error = "unknown name in '%(name)s' of the checker command";
                        return -EINVAL;
                }
                if ((r = field(p + 2, (size_t) (close - p - 2), userdata)) < 0)
                        return r;
                t = close + 2;
        }
        return 0;
}

static int ignore_text(const char *s, size_t n, void *userdata) {
        return 0;
}

static int ignore_field(const char *s, size_t n, void *userdata) {
        return 0;
}

int checker_template_validate(const char *template, const char **ret_error) {
        return template_walk(template, ignore_text, ignore_field, NULL, ret_error);
}

char *shell_quote(const char *s) {
        static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-";
        size_t n = 3;
        char *ret, *d;

        if (*s && strspn(s, safe) == strlen(s))
                return strdup(s);
        for (const char *p = s; *p; p++)
                n += *p == '\'' ? 5 : 1;
        ret = d = malloc(n);
        if (!ret)
                return NULL;
        *d++ = '\'';
        for (const char *p = s; *p; p++)
                if (*p == '\'')
                        d = stpcpy(d, "'\"'\"'");
                else
                        *d++ = *p;
        *d++ = '\'';
        *d = 0;
        return ret;
}

typedef struct Expansion {
        const ClientSettings *settings;
        checker_template_runtime_t runtime;
        void *userdata;
        FILE *out;
} Expansion;

static int expand_text(const char *s, size_t n, void *userdata) {
        Expansion *e = userdata;
        return fwrite(s, 1, n, e->out) == n ? 0 : -ENOMEM;
}

static int expand_field(const char *name, size_t n, void *userdata) {
        Expansion *e = userdata;
        _cleanup_free_ char *key = strndup(name, n), *quoted = NULL;
        const ClientSettingInfo *row;
        char buf[64];
        const char *value = "";

        if (!key)
                return -ENOMEM;
        row = client_setting_by_name(key);
        if (row && (row->flags & CLIENT_SETTING_TEMPLATE))
                client_setting_format_python(row, e->settings, buf, &value);
        else if (e->runtime)
                e->runtime(key, buf, &value, e->userdata);
        quoted = shell_quote(value);
        if (!quoted)
                return -ENOMEM;
        return fputs(quoted, e->out) >= 0 ? 0 : -ENOMEM;
}

int checker_template_expand(const char *template, const ClientSettings *settings, checker_template_runtime_t runtime,
                            void *userdata, char **ret) {
        Expansion e = { .settings = settings, .runtime = runtime, .userdata = userdata };
        const char *error = NULL;
        char *buf = NULL;
        size_t size = 0;
        int r;

        e.out = open_memstream(&buf, &size);
        if (!e.out)
                return -ENOMEM;
        r = template_walk(template, expand_text, expand_field, &e, &error);
        if (fclose(e.out) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0) {
                free(buf);
                return r;
        }
        *ret = buf;
        return 0;
}
