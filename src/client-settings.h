/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* A client's settings (mandos-clients.conf(5), OPTIONS), and the one table
 * that says, for each, its name in clients.conf and the state file, its
 * D-Bus property (mandos-dbus-api(7)), its type and what it takes part in.
 * Parsing clients.conf, the state file, equality and the reload diff, the
 * merge rules (docs/STATE.md, Merging at start), the D-Bus properties and
 * their change signals, and the checker command's %(name)s fields all walk
 * this table, as systemd's JsonDispatch and ConfigPerfItem tables drive
 * theirs. A new setting is a field here, an id, a row in
 * client-settings.c (a saved one flagged CLIENT_SETTING_LATER, for older
 * state files), and its semantics (its entry in client.c's
 * setting_semantics) if it has any beyond being stored and announced. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The fields of ClientSettings, once: a Client embeds the same fields in
 * an anonymous struct (src/client.h), so that c->host and
 * c->settings.host are one and the same. */
#define CLIENT_SETTINGS_FIELDS                                                                  \
        char *name;                                                                             \
        char *key_id;              /* upper case, spaces removed; may be "" */                  \
        char *fingerprint;         /* upper case, spaces removed; may be "" */                  \
        uint8_t *secret;           /* wiped when freed */                                       \
        size_t secret_size;                                                                     \
        char *host;                                                                             \
        char *checker_command;     /* the command template: "%(host)s" not yet expanded */      \
        uint64_t timeout;          /* µs */                                                     \
        uint64_t extended_timeout;                                                              \
        uint64_t interval;                                                                      \
        uint64_t approval_delay;                                                                \
        uint64_t approval_duration;                                                             \
        bool approved_by_default;                                                               \
        bool enabled;

/* The largest duration a D-Bus write may set (10 years), and the longest
 * approval wait: a connection is never held longer than this. */
#define CLIENT_DURATION_MAX (UINT64_C(10) * 365 * 24 * 3600 * 1000000)
#define CLIENT_APPROVAL_DELAY_MAX (UINT64_C(24) * 3600 * 1000000)

typedef struct ClientSettings {
        CLIENT_SETTINGS_FIELDS
} ClientSettings;

/* The rows of the table, in its order: the state file's order of keys,
 * and the order a reload names what changed in (the secret last). */
typedef enum ClientSettingId {
        CLIENT_SETTING_NAME,
        CLIENT_SETTING_KEY_ID,
        CLIENT_SETTING_FINGERPRINT,
        CLIENT_SETTING_HOST,
        CLIENT_SETTING_CHECKER,
        CLIENT_SETTING_TIMEOUT,
        CLIENT_SETTING_EXTENDED_TIMEOUT,
        CLIENT_SETTING_INTERVAL,
        CLIENT_SETTING_APPROVAL_DELAY,
        CLIENT_SETTING_APPROVAL_DURATION,
        CLIENT_SETTING_APPROVED_BY_DEFAULT,
        CLIENT_SETTING_ENABLED,
        CLIENT_SETTING_SECRET,
        _CLIENT_SETTING_MAX,
} ClientSettingId;

typedef enum ClientSettingType {
        CLIENT_SETTING_TYPE_STRING,       /* char * */
        CLIENT_SETTING_TYPE_KEY,          /* char *, normalized (normalize_key_id()) */
        CLIENT_SETTING_TYPE_DURATION,     /* uint64_t µs; ISO 8601 or "5m" in clients.conf, ms on D-Bus */
        CLIENT_SETTING_TYPE_BOOLEAN,      /* bool */
        CLIENT_SETTING_TYPE_SECRET,       /* uint8_t * and the size_t after it; secret or secfile */
} ClientSettingType;

typedef enum ClientSettingFlags {
        /* In the state file's "config" and "runtime" objects, compared by
         * client_settings_equal() and the reload diff, and merged by
         * client_settings_merge(). */
        CLIENT_SETTING_SAVED = 1 << 0,
        /* A %(name)s field of the checker command (mandos-clients.conf(5), EXPANSION). */
        CLIENT_SETTING_TEMPLATE = 1 << 1,
        /* Writable over D-Bus, announced when it changes; else constant there. */
        CLIENT_SETTING_WRITABLE = 1 << 2,
        /* The server finds clients by it: a change needs the server's table rehashed. */
        CLIENT_SETTING_INDEX = 1 << 3,
        /* clients.conf refuses zero: the section is skipped. */
        CLIENT_SETTING_NONZERO = 1 << 4,
        /* Saved, but newer than some state files: one without it is read,
         * and clients.conf's value applies (docs/STATE.md, Format). A
         * saved setting added to the table later needs this flag. */
        CLIENT_SETTING_LATER = 1 << 5,
} ClientSettingFlags;

typedef struct ClientSettingInfo {
        const char *name;            /* in clients.conf, the state file and the checker template */
        const char *pickle_name;     /* in the reference's clients.pickle, if not name */
        const char *property;        /* the D-Bus property */
        const char *default_value;   /* clients.conf's built-in [DEFAULT], or NULL */
        ClientSettingType type;
        size_t offset;               /* in ClientSettings */
        ClientSettingFlags flags;
        /* Checks a value clients.conf or D-Bus gives, beyond its type:
         * returns 0, or -EINVAL with *ret_error (static). */
        int (*validate)(const void *field, const char **ret_error);
} ClientSettingInfo;

extern const ClientSettingInfo client_settings_table[_CLIENT_SETTING_MAX];

static inline const ClientSettingInfo *client_setting(ClientSettingId id) {
        return &client_settings_table[id];
}
static inline ClientSettingId client_setting_id(const ClientSettingInfo *row) {
        return (ClientSettingId) (row - client_settings_table);
}
#define CLIENT_SETTING_FIELD(settings, row, type) ((type *) ((uint8_t *) (settings) + (row)->offset))
#define CLIENT_SETTING_CFIELD(settings, row, type) ((const type *) ((const uint8_t *) (settings) + (row)->offset))
#define FOREACH_CLIENT_SETTING(row)                                                     \
        for (const ClientSettingInfo *row = client_settings_table;                       \
             row < client_settings_table + _CLIENT_SETTING_MAX; row++)
/* The rows with flag. */
#define FOREACH_CLIENT_SETTING_WITH(row, flag) \
        FOREACH_CLIENT_SETTING(row)            \
                if (!(row->flags & (flag))) {  \
                } else

/* By clients.conf name / D-Bus property; NULL if none. */
const ClientSettingInfo *client_setting_by_name(const char *name);
const ClientSettingInfo *client_setting_by_property(const char *property);

/* Frees what s holds (not s), wiping the secret. */
void client_settings_done(ClientSettings *s);
ClientSettings *client_settings_free(ClientSettings *s);
static inline void client_settings_freep(ClientSettings **s) {
        if (*s)
                client_settings_free(*s);
}
/* A deep copy (NULL strings become ""); with_secret false leaves the secret out. */
int client_settings_copy(ClientSettings *dest, const ClientSettings *src, bool with_secret);
ClientSettings *client_settings_dup(const ClientSettings *s);

/* Whether row's value is the same in a and b (a secret: the same bytes). */
bool client_setting_equal(const ClientSettingInfo *row, const ClientSettings *a, const ClientSettings *b);
/* A set of settings: bit 1 << id for each ClientSettingId in it. */
typedef uint32_t ClientSettingMask;
#define CLIENT_SETTING_BIT(id) ((ClientSettingMask) 1 << (id))
_Static_assert(_CLIENT_SETTING_MAX <= 32, "ClientSettingMask holds every setting");

/* Whether two clients' saved settings (CLIENT_SETTING_SAVED) are equal:
 * the name and the secret aside, and those in skip. */
bool client_settings_equal(const ClientSettings *a, const ClientSettings *b, ClientSettingMask skip);
/* Copy row's value from src into dest (freeing dest's old one). */
int client_setting_copy(const ClientSettingInfo *row, ClientSettings *dest, const ClientSettings *src);

/* docs/STATE.md, Merging at start, rule 1: each saved setting is now's
 * where clients.conf changed it since then (the configuration as saved),
 * else saved's (the value in force when saved). The secret is now's, and
 * so are the settings in absent (the file predates them). */
ClientSettings *client_settings_merge(const ClientSettings *now, const ClientSettings *then,
                                      const ClientSettings *saved, ClientSettingMask absent);

/* Python's str() of row's value, as the reference fills a %(name)s field in
 * (durations as "0:05:00", booleans as "True"); *ret points into buf or s. */
void client_setting_format_python(const ClientSettingInfo *row, const ClientSettings *s, char buf[static 64],
                                  const char **ret);

/* The digest of a configured secret that the state keeps to see whether it
 * changed (docs/STATE.md): an HMAC-SHA256 keyed with the secret over a
 * label of its own, unrelated to the passphrase of run-time secrets
 * (secret-crypt.h). secret_digest_for() gives the digest of a given state
 * file version (1: the plain SHA-256 that version 1 files stored). */
void secret_digest(const uint8_t *secret, size_t size, uint8_t ret[static 32]);
void secret_digest_for(unsigned version, const uint8_t *secret, size_t size, uint8_t ret[static 32]);

/* The checker command template: Python %-formatting with a mapping, where
 * only "%(name)s" (name one of those of mandos-clients.conf(5), EXPANSION)
 * and "%%" are allowed. Returns 0, or -EINVAL with *ret_error (static). */
int checker_template_validate(const char *template, const char **ret_error);
/* The value of a run-time name (created, expires, ...) as Python's str()
 * gives it; *ret points into buf or to a constant. */
typedef void (*checker_template_runtime_t)(const char *name, char buf[static 64], const char **ret, void *userdata);
/* Expand template: the settings' fields from settings, the others from
 * runtime; each value shell-quoted as Python's shlex.quote. */
int checker_template_expand(const char *template, const ClientSettings *settings, checker_template_runtime_t runtime,
                            void *userdata, char **ret);
/* shlex.quote(s), malloc'd. */
char *shell_quote(const char *s);
