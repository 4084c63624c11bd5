/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "state.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <json-c/json.h>
#include <stdio.h>
#include <sys/stat.h>

#include "client.h"
#include "log.h"
#include "hex.h"
#include "shared-str.h"
#include "state-json.h"
#include "util.h"

/* ---------------------------------------------------------------- helpers */

SavedClient *saved_client_free(SavedClient *s) {
        if (!s)
                return NULL;
        client_settings_free(s->config);
        client_settings_free(s->runtime);
        free(s->encrypted_secret);
        free(s);
        return NULL;
}

State *state_free(State *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_clients; i++)
                saved_client_free(s->clients[i]);
        for (size_t i = 0; i < s->n_removed; i++)
                saved_client_free(s->removed[i]);
        free(s->clients);
        free(s->removed);
        free(s);
        return NULL;
}

const SavedClient *state_find(const State *s, const char *name, bool removed) {
        SavedClient *const *v = removed ? s->removed : s->clients;
        size_t n = removed ? s->n_removed : s->n_clients;

        for (size_t i = 0; s && i < n; i++)
                if (streq(v[i]->config->name, name))
                        return v[i];
        return NULL;
}

/* ---------------------------------------------------------------- merging */

void state_check_expiry(ClientSettings *m, ClientTimes *t, uint64_t now) {
        if (!m->enabled || !t->expires || now < t->expires)
                return;
        if (!t->last_checked_ok) {
                log_warning("disabling client %s - Client never performed a successful checker", m->name);
                m->enabled = false;
        } else if (t->last_checker_status != 0) {
                log_warning("disabling client %s - Client last checker failed with error code %d", m->name,
                            t->last_checker_status);
                m->enabled = false;
        } else {
                t->expires = now + m->timeout;
                log_debug("Last checker succeeded, keeping %s enabled", m->name);
        }
}

/* ---------------------------------------------------------------- writing */

/* The saved settings (CLIENT_SETTING_SAVED), in the table's order. */
static json_object *settings_to_json(const ClientSettings *c) {
        json_object *o = json_object_new_object();
        const char *str;
        uint64_t usec;

        if (!o)
                return NULL;
        FOREACH_CLIENT_SETTING_WITH(row, CLIENT_SETTING_SAVED) {
                switch (row->type) {
                case CLIENT_SETTING_TYPE_STRING:
                case CLIENT_SETTING_TYPE_KEY:
                        str = strempty(*CLIENT_SETTING_CFIELD(c, row, char *));
                        json_object_object_add(o, row->name, json_object_new_string(str));
                        break;
                case CLIENT_SETTING_TYPE_DURATION:
                        usec = *CLIENT_SETTING_CFIELD(c, row, uint64_t);
                        json_object_object_add(o, row->name, json_object_new_int64((int64_t) usec));
                        break;
                case CLIENT_SETTING_TYPE_BOOLEAN:
                        json_object_object_add(o, row->name,
                                               json_object_new_boolean(*CLIENT_SETTING_CFIELD(c, row, bool)));
                        break;
                case CLIENT_SETTING_TYPE_SECRET:
                        break; /* only its digest, or its ciphertext */
                }
        }
        return o;
}

static json_object *config_to_json(const ClientSettings *c, const uint8_t digest[static 32]) {
        json_object *o = settings_to_json(c);
        _cleanup_free_ char *d = hexmem(digest, 32);

        if (o && d)
                json_object_object_add(o, "secret_digest", json_object_new_string(d));
        return o;
}

json_object *client_to_json(const Client *c) {
        json_object *o = json_object_new_object(), *r = settings_to_json(&c->settings);
        uint8_t digest[32];

        if (!o || !r) {
                json_object_put(o);
                json_object_put(r);
                return NULL;
        }
        json_object_object_add(r, "created", json_object_new_int64((int64_t) c->created));
        json_object_object_add(r, "last_enabled", json_object_new_int64((int64_t) c->last_enabled));
        json_object_object_add(r, "expires", json_object_new_int64((int64_t) c->expires));
        json_object_object_add(r, "last_checked_ok", json_object_new_int64((int64_t) c->last_checked_ok));
        json_object_object_add(r, "last_approval_request", json_object_new_int64((int64_t) c->last_approval_request));
        json_object_object_add(r, "last_checker_status", json_object_new_int(c->last_checker_status));

        json_object_object_add(o, "name", json_object_new_string(c->name));
        client_config_secret_digest(c, digest);
        json_object_object_add(o, "config", config_to_json(client_config(c), digest));
        json_object_object_add(o, "runtime", r);
        if (c->secret_sets && c->secret_sets->encrypted) {
                gnutls_datum_t in = { c->secret_sets->encrypted, (unsigned) c->secret_sets->encrypted_size }, out = {};
                if (gnutls_base64_encode2(&in, &out) >= 0) {
                        json_object_object_add(o, "encrypted_secret",
                                               json_object_new_string_len((const char *) out.data, (int) out.size));
                        gnutls_free(out.data);
                }
        }
        return o;
}

json_object *removed_to_json(const SavedClient *s) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "name", json_object_new_string(s->config->name));
        json_object_object_add(o, "config", config_to_json(s->config, s->config_secret_digest));
        return o;
}

typedef int (*StateFill)(FILE *f, const void *userdata);

/* Temporary file (0600 from its creation), filled by fill, fsync, rename,
 * fsync of the directory. */
static int write_atomically(const char *dir, const char *name, StateFill fill, const void *userdata) {
        _cleanup_free_ char *tmp = NULL, *path = NULL;
        _cleanup_close_ int dfd = -1;
        FILE *f;
        int fd, r;

        if (asprintf(&tmp, "%s/.%s.XXXXXX", dir, name) < 0 || asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        f = fdopen(fd, "w");
        if (!f) {
                r = -errno;
                close(fd);
                (void) unlink(tmp);
                return r;
        }
        r = fill(f, userdata);
        if (fflush(f) != 0 && r >= 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (fclose(f) != 0 && r >= 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        if (fsync(dfd) < 0)
                return -errno;
        return 0;
}

/* Writes o (consumed) as one line of JSON after prefix. */
static int put_json(FILE *f, const char *prefix, json_object *o) {
        const char *text;
        int r = 0;

        if (!o)
                return -ENOMEM;
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                r = -ENOMEM;
        else if (fputs(prefix, f) < 0 || fputs(text, f) < 0)
                r = -EIO;
        json_object_put(o);
        return r;
}

typedef struct StateData {
        uint64_t journal;
        Client *const *clients;
        size_t n_clients;
        const SavedClient *const *removed;
        size_t n_removed;
} StateData;

/* The file is one object, written one client per line and one client at a
 * time: with ten thousand clients a whole json-c tree would take a hundred
 * megabytes for a moment, and the heap would keep them. */
static int fill_state(FILE *f, const void *userdata) {
        const StateData *d = userdata;
        int r;

        r = put_json(f, "{\n  \"format\": ", json_object_new_string(STATE_FORMAT));
        if (r >= 0 && fprintf(f, ",\n  \"version\": %d,", STATE_VERSION) < 0)
                r = -EIO;
        if (r >= 0 && d->journal > 0 && fprintf(f, "\n  \"journal\": %" PRIu64 ",", d->journal) < 0)
                r = -EIO;
        if (r >= 0 && fputs("\n  \"clients\": [", f) < 0)
                r = -EIO;
        for (size_t i = 0; r >= 0 && i < d->n_clients; i++)
                r = put_json(f, i ? ",\n    " : "\n    ", client_to_json(d->clients[i]));
        if (r >= 0 && fputs("\n  ],\n  \"removed\": [", f) < 0)
                r = -EIO;
        for (size_t i = 0; r >= 0 && i < d->n_removed; i++)
                r = put_json(f, i ? ",\n    " : "\n    ", removed_to_json(d->removed[i]));
        if (r >= 0 && fputs("\n  ]\n}\n", f) < 0)
                r = -EIO;
        return r;
}

int state_save(const char *dir, uint64_t journal, Client *const *clients, size_t n_clients,
               const SavedClient *const *removed, size_t n_removed) {
        StateData d = { journal, clients, n_clients, removed, n_removed };

        return write_atomically(dir, STATE_FILE_NAME, fill_state, &d);
}

/* ---------------------------------------------------------------- reading */

_printf_(2, 3)
void fail(Reader *rd, const char *format, ...) {
        va_list ap;

        if (rd->error)
                return;
        va_start(ap, format);
        if (vasprintf(&rd->error, format, ap) < 0)
                rd->error = NULL;
        va_end(ap);
}

json_object *member(Reader *rd, json_object *o, const char *key, json_type type) {
        json_object *v = NULL;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type)) {
                fail(rd, "'%s' missing or of the wrong type", key);
                return NULL;
        }
        return v;
}

static char *get_string(Reader *rd, json_object *o, const char *key) {
        json_object *v = member(rd, o, key, json_type_string);
        return shared_str_dup(v ? json_object_get_string(v) : "");
}

uint64_t get_u64(Reader *rd, json_object *o, const char *key) {
        json_object *v = member(rd, o, key, json_type_int);
        int64_t n = v ? json_object_get_int64(v) : 0;

        if (n < 0) {
                fail(rd, "'%s' is negative", key);
                return 0;
        }
        return (uint64_t) n;
}

static bool get_bool(Reader *rd, json_object *o, const char *key) {
        json_object *v = member(rd, o, key, json_type_boolean);
        return v && json_object_get_boolean(v);
}

/* absent: the CLIENT_SETTING_LATER settings o lacks are added to it. */
static ClientSettings *settings_from_json(Reader *rd, json_object *o, const char *name, ClientSettingMask *absent) {
        ClientSettings *c = calloc(1, sizeof(ClientSettings));

        if (!c)
                return NULL;
        c->name = shared_str_dup(name);
        if (!c->name)
                fail(rd, "out of memory");
        FOREACH_CLIENT_SETTING_WITH(row, CLIENT_SETTING_SAVED) {
                if ((row->flags & CLIENT_SETTING_LATER) && !json_object_object_get_ex(o, row->name, NULL)) {
                        *absent |= CLIENT_SETTING_BIT(client_setting_id(row));
                        if (row->type == CLIENT_SETTING_TYPE_STRING || row->type == CLIENT_SETTING_TYPE_KEY) {
                                *CLIENT_SETTING_FIELD(c, row, char *) = shared_str_dup("");
                                if (!*CLIENT_SETTING_FIELD(c, row, char *))
                                        fail(rd, "out of memory");
                        }
                        continue;
                }
                switch (row->type) {
                case CLIENT_SETTING_TYPE_STRING:
                case CLIENT_SETTING_TYPE_KEY:
                        *CLIENT_SETTING_FIELD(c, row, char *) = get_string(rd, o, row->name);
                        if (!*CLIENT_SETTING_FIELD(c, row, char *))
                                fail(rd, "out of memory");
                        break;
                case CLIENT_SETTING_TYPE_DURATION:
                        *CLIENT_SETTING_FIELD(c, row, uint64_t) = get_u64(rd, o, row->name);
                        break;
                case CLIENT_SETTING_TYPE_BOOLEAN:
                        *CLIENT_SETTING_FIELD(c, row, bool) = get_bool(rd, o, row->name);
                        break;
                case CLIENT_SETTING_TYPE_SECRET:
                        break;
                }
        }
        return c;
}

SavedClient *saved_from_json(Reader *rd, json_object *o, unsigned version, bool live) {
        const char *digest_name = version == 1 ? "secret_sha256" : "secret_digest";
        json_object *name = member(rd, o, "name", json_type_string);
        json_object *config = member(rd, o, "config", json_type_object);
        json_object *runtime = live ? member(rd, o, "runtime", json_type_object) : NULL;
        json_object *secret = NULL;
        SavedClient *s;

        if (!name || !config || (live && !runtime))
                return NULL;
        s = calloc(1, sizeof(SavedClient));
        if (!s) {
                fail(rd, "out of memory");
                return NULL;
        }
        s->version = version;
        s->config = settings_from_json(rd, config, json_object_get_string(name), &s->absent);
        json_object *digest = member(rd, config, digest_name, json_type_string);
        if (digest && hex_decode(json_object_get_string(digest), s->config_secret_digest, 32) < 0)
                fail(rd, "'%s' of %s is not 64 hex digits", digest_name, json_object_get_string(name));
        if (live) {
                s->runtime = settings_from_json(rd, runtime, json_object_get_string(name), &s->absent);
                s->times = (ClientTimes) {
                        .created = get_u64(rd, runtime, "created"),
                        .last_enabled = get_u64(rd, runtime, "last_enabled"),
                        .expires = get_u64(rd, runtime, "expires"),
                        .last_checked_ok = get_u64(rd, runtime, "last_checked_ok"),
                        .last_approval_request = get_u64(rd, runtime, "last_approval_request"),
                };
                json_object *st = member(rd, runtime, "last_checker_status", json_type_int);
                s->times.last_checker_status = st ? json_object_get_int(st) : -2;
        }
        if (live && json_object_object_get_ex(o, "encrypted_secret", &secret)) {
                gnutls_datum_t in = { (unsigned char *) json_object_get_string(secret),
                                      (unsigned) json_object_get_string_len(secret) }, out = {};
                if (!json_object_is_type(secret, json_type_string) || gnutls_base64_decode2(&in, &out) < 0)
                        fail(rd, "'encrypted_secret' of %s is not base64", json_object_get_string(name));
                else {
                        s->encrypted_secret = malloc(out.size ?: 1);
                        if (s->encrypted_secret) {
                                memcpy(s->encrypted_secret, out.data, out.size);
                                s->encrypted_secret_size = out.size;
                        }
                        gnutls_free(out.data);
                }
        }
        return s;
}

static int read_list(Reader *rd, json_object *root, const char *key, unsigned version, bool live,
                     SavedClient ***ret, size_t *n) {
        json_object *array = member(rd, root, key, json_type_array);
        size_t len = array ? json_object_array_length(array) : 0;

        *ret = calloc(len ?: 1, sizeof(SavedClient *));
        if (!*ret)
                return -ENOMEM;
        for (size_t i = 0; i < len && !rd->error; i++) {
                SavedClient *s = saved_from_json(rd, json_object_array_get_idx(array, i), version, live);
                if (s)
                        (*ret)[(*n)++] = s;
        }
        return 0;
}

static int read_file(const char *path, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        char *buf;
        size_t n = 0;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if (st.st_size > 512 * 1024 * 1024)
                return -EFBIG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + n, (size_t) st.st_size - n);
                if (k <= 0) {
                        int e = k < 0 ? errno : EIO;
                        free(buf);
                        return -e;
                }
                n += (size_t) k;
        }
        buf[n] = 0;
        *ret = buf;
        *ret_size = n;
        return 0;
}

int state_load(const char *path, State **ret, char **ret_error) {
        _cleanup_(state_freep) State *s = calloc(1, sizeof(State));
        _cleanup_free_ char *text = NULL;
        enum json_tokener_error jerr;
        Reader rd = {};
        json_object *root, *v;
        unsigned version = 0;
        size_t size = 0;
        int r;

        *ret_error = NULL;
        if (!s)
                return -ENOMEM;
        r = read_file(path, &text, &size);
        if (r < 0)
                return r;
        if (strlen(text) != size) {
                *ret_error = strdup("contains a NUL byte");
                return -EINVAL;
        }
        root = json_tokener_parse_verbose(text, &jerr);
        if (!root) {
                if (asprintf(ret_error, "not JSON: %s", json_tokener_error_desc(jerr)) < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        if (!json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, "format", &v) ||
            !streq(strempty(json_object_get_string(v)), STATE_FORMAT))
                fail(&rd, "not a mandos state file");
        else if (!json_object_object_get_ex(root, "version", &v) || !json_object_is_type(v, json_type_int) ||
                 json_object_get_int(v) < 1 || json_object_get_int(v) > STATE_VERSION)
                fail(&rd, "unknown version (this server reads versions 1 to %d)", STATE_VERSION);
        else
                version = (unsigned) json_object_get_int(v);
        /* The journal generation that follows this snapshot (docs/STATE.md, Journal). */
        if (!rd.error && json_object_object_get_ex(root, "journal", &v))
                s->journal = get_u64(&rd, root, "journal");
        if (!rd.error)
                r = read_list(&rd, root, "clients", version, true, &s->clients, &s->n_clients);
        if (!rd.error && r >= 0)
                r = read_list(&rd, root, "removed", version, false, &s->removed, &s->n_removed);
        json_object_put(root);
        if (r < 0)
                return r;
        if (rd.error) {
                *ret_error = rd.error;
                return -EINVAL;
        }
        *ret = TAKE_PTR(s);
        return 0;
}
