/* SPDX-License-Identifier: GPL-3.0-or-later */

/* clients.pickle → State (pickle-import.h). The merge itself is
 * server-state.c's, as for our own state; what differs is only where the
 * snapshot of clients.conf and the run-time values come from:
 *
 * - a live client: its saved settings become `runtime`, the pickled
 *   client_settings entry becomes `config` (a setting the reference did not
 *   record takes the value clients.conf has now, so that the saved value
 *   stays, as the reference keeps it when the old entry lacks the key);
 * - a client in client_settings and in clients.conf but not live was
 *   removed over D-Bus: it goes into `removed`, with the digest of the
 *   secret the reference kept (in plaintext) for it;
 * - a client no longer in clients.conf is dropped, live or removed (where
 *   the reference crashes with a KeyError for the latter). */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "hashmap.h"
#include "pickle-import.h"
#include "pickle.h"
#include "secret-mem.h"
#include "shared-str.h"
#include "util.h"

typedef struct Import {
        const ClientsConf *conf;
        State *state;
        char *error;
} Import;

_printf_(2, 3) static int bad(Import *im, const char *fmt, ...) {
        va_list ap;

        if (!im->error) {
                va_start(ap, fmt);
                if (vasprintf(&im->error, fmt, ap) < 0)
                        im->error = NULL;
                va_end(ap);
        }
        return im->error ? -EBADMSG : -ENOMEM;
}

static int wrong_type(Import *im, const char *where, const char *name, const char *key, const PickleValue *v,
                      const char *want) {
        return bad(im, "%s['%s']['%s'] is a %s, not a %s", where, name, key, pickle_type_name(v->type), want);
}

/* One saved setting from v into c. */
static int apply_setting(Import *im, ClientSettings *c, const ClientSettingInfo *row, const PickleValue *v,
                         const char *where, const char *key) {
        char *str;

        switch (row->type) {
        case CLIENT_SETTING_TYPE_STRING:
        case CLIENT_SETTING_TYPE_KEY:
                if (!pickle_is_cstr(v))
                        return wrong_type(im, where, c->name, key, v, "str without NUL");
                str = shared_str_dup(v->str.data);
                if (!str)
                        return -ENOMEM;
                shared_str_free(*CLIENT_SETTING_FIELD(c, row, char *));
                *CLIENT_SETTING_FIELD(c, row, char *) = str;
                return 0;
        case CLIENT_SETTING_TYPE_DURATION:
                if (pickle_timedelta_usec(v, CLIENT_SETTING_FIELD(c, row, uint64_t)) < 0)
                        return wrong_type(im, where, c->name, key, v, "positive timedelta");
                return 0;
        case CLIENT_SETTING_TYPE_BOOLEAN:
                if (v->type != PICKLE_BOOL)
                        return wrong_type(im, where, c->name, key, v, "bool");
                *CLIENT_SETTING_FIELD(c, row, bool) = v->boolean;
                return 0;
        case CLIENT_SETTING_TYPE_SECRET:
                break;
        }
        return 0;
}

/* The saved settings in dict d (those present) over c: strings, then
 * durations, then booleans, in the order the import has always checked
 * them (the first wrong one is reported). */
static int apply_settings(Import *im, ClientSettings *c, const PickleValue *d, const char *where) {
        static const ClientSettingType passes[][2] = {
                { CLIENT_SETTING_TYPE_STRING, CLIENT_SETTING_TYPE_KEY },
                { CLIENT_SETTING_TYPE_DURATION, CLIENT_SETTING_TYPE_DURATION },
                { CLIENT_SETTING_TYPE_BOOLEAN, CLIENT_SETTING_TYPE_BOOLEAN },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(passes); i++)
                FOREACH_CLIENT_SETTING(row) {
                        const char *key = row->pickle_name ?: row->name;
                        const PickleValue *v;

                        if (!(row->flags & CLIENT_SETTING_SAVED) ||
                            (row->type != passes[i][0] && row->type != passes[i][1]))
                                continue;
                        if (!(v = pickle_dict_get(d, key)))
                                continue;
                        r = apply_setting(im, c, row, v, where, key);
                        if (r < 0)
                                return r;
                }
        return 0;
}

/* The configured client's settings, without its secret, with d's over them. */
static int settings_from(Import *im, const ClientSettings *now, const PickleValue *d, const char *where,
                         ClientSettings **ret) {
        _cleanup_(client_settings_freep) ClientSettings *c = client_settings_dup(now);
        int r;

        if (!c)
                return -ENOMEM;
        c->secret = secret_free(c->secret, c->secret_size);
        c->secret_size = 0;
        if (d && (r = apply_settings(im, c, d, where)) < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

static int time_of(Import *im, const char *name, const PickleValue *client, const char *key, uint64_t *ret) {
        const PickleValue *v = pickle_dict_get(client, key);

        *ret = 0;
        if (!v || v->type == PICKLE_NONE)
                return 0;
        if (pickle_datetime_usec(v, ret) < 0)
                return wrong_type(im, "clients", name, key, v, "datetime after 1970 or None");
        return 0;
}

static int read_times(Import *im, const char *name, const PickleValue *client, ClientTimes *t) {
        const PickleValue *v;
        int r;

        if ((r = time_of(im, name, client, "created", &t->created)) < 0 ||
            (r = time_of(im, name, client, "last_enabled", &t->last_enabled)) < 0 ||
            (r = time_of(im, name, client, "expires", &t->expires)) < 0 ||
            (r = time_of(im, name, client, "last_checked_ok", &t->last_checked_ok)) < 0 ||
            (r = time_of(im, name, client, "last_approval_request", &t->last_approval_request)) < 0)
                return r;
        t->last_checker_status = -2;
        v = pickle_dict_get(client, "last_checker_status");
        if (v) {
                if (v->type != PICKLE_INT || v->integer < -2 || v->integer > 255)
                        return wrong_type(im, "clients", name, "last_checker_status", v, "int from -2 to 255");
                t->last_checker_status = (int) v->integer;
        }
        return 0;
}

static int append(SavedClient ***v, size_t *n, SavedClient *c) {
        SavedClient **a = reallocarray(*v, *n + 1, sizeof(SavedClient *));

        if (!a) {
                saved_client_free(c);
                return -ENOMEM;
        }
        a[(*n)++] = c;
        *v = a;
        return 0;
}

static int import_live(Import *im, const char *name, const PickleValue *client, const PickleValue *old) {
        const ClientSettings *now = clients_conf_find(im->conf, name);
        SavedClient *s;
        const PickleValue *v;
        int r;

        if (!now)
                return 0; /* no longer configured: dropped */
        if (client->type != PICKLE_DICT)
                return bad(im, "clients['%s'] is a %s, not a dict", name, pickle_type_name(client->type));
        if (old && old->type != PICKLE_DICT)
                return bad(im, "client_settings['%s'] is a %s, not a dict", name, pickle_type_name(old->type));
        s = calloc(1, sizeof(SavedClient));
        if (!s)
                return -ENOMEM;
        s->version = STATE_VERSION_PICKLE;
        if ((r = settings_from(im, now, old, "client_settings", &s->config)) < 0 ||
            (r = settings_from(im, now, client, "clients", &s->runtime)) < 0 ||
            (r = read_times(im, name, client, &s->times)) < 0) {
                saved_client_free(s);
                return r;
        }
        v = pickle_dict_get(client, "encrypted_secret");
        if (v && v->type == PICKLE_BYTES && v->str.size > 0) {
                s->encrypted_secret = malloc(v->str.size);
                if (!s->encrypted_secret) {
                        saved_client_free(s);
                        return -ENOMEM;
                }
                memcpy(s->encrypted_secret, v->str.data, v->str.size);
                s->encrypted_secret_size = v->str.size;
        } else if (v && v->type != PICKLE_BYTES) {
                saved_client_free(s);
                return wrong_type(im, "clients", name, "encrypted_secret", v, "bytes");
        }
        return append(&im->state->clients, &im->state->n_clients, s);
}

/* In client_settings and clients.conf, not live: removed over D-Bus. */
static int import_removed(Import *im, const char *name, const PickleValue *old) {
        const ClientSettings *now = clients_conf_find(im->conf, name);
        const PickleValue *secret;
        SavedClient *s;
        int r;

        if (!now)
                return 0; /* removed, then deleted from clients.conf: forgotten */
        if (old->type != PICKLE_DICT)
                return bad(im, "client_settings['%s'] is a %s, not a dict", name, pickle_type_name(old->type));
        s = calloc(1, sizeof(SavedClient));
        if (!s)
                return -ENOMEM;
        s->version = STATE_VERSION;
        r = settings_from(im, now, old, "client_settings", &s->config);
        if (r < 0) {
                saved_client_free(s);
                return r;
        }
        /* The reference keeps the configured secret of a removed client in
         * the clear: only its digest is kept (the pickle's copy is wiped
         * with the tree). Without one, the secret configured now. */
        secret = pickle_dict_get(old, "secret");
        if (secret && secret->type == PICKLE_BYTES)
                secret_digest((const uint8_t *) secret->str.data, secret->str.size, s->config_secret_digest);
        else
                secret_digest(now->secret, now->secret_size, s->config_secret_digest);
        return append(&im->state->removed, &im->state->n_removed, s);
}

/* name → value, the last of equal keys winning (as in Python). */
static int index_dict(Import *im, const PickleValue *d, const char *what, Hashmap **ret) {
        Hashmap *h = hashmap_new();

        if (!h)
                return -ENOMEM;
        for (size_t i = 0; i + 1 < d->seq.n; i += 2) {
                const PickleValue *k = d->seq.items[i];
                if (!pickle_is_cstr(k)) {
                        hashmap_free(h);
                        return bad(im, "a key of %s is a %s, not a client name", what, pickle_type_name(k->type));
                }
                (void) hashmap_remove(h, k->str.data);
                if (hashmap_put(h, k->str.data, d->seq.items[i + 1]) < 0) {
                        hashmap_free(h);
                        return -ENOMEM;
                }
        }
        *ret = h;
        return 0;
}

static int import_tree(Import *im, const PickleValue *root) {
        const PickleValue *clients, *settings;
        Hashmap *by_name = NULL, *old_by_name = NULL;
        int r = 0;

        if ((root->type != PICKLE_TUPLE && root->type != PICKLE_LIST) || root->seq.n != 2)
                return bad(im, "not the reference's (clients, client_settings) but a %s", pickle_type_name(root->type));
        clients = root->seq.items[0];
        settings = root->seq.items[1];
        if (clients->type != PICKLE_DICT || settings->type != PICKLE_DICT)
                return bad(im, "not the reference's (clients, client_settings) but a (%s, %s)",
                           pickle_type_name(clients->type), pickle_type_name(settings->type));
        if ((r = index_dict(im, clients, "clients", &by_name)) < 0 ||
            (r = index_dict(im, settings, "client_settings", &old_by_name)) < 0)
                goto finish;
        /* Live clients in the pickle's order (the reference's dict order). */
        for (size_t i = 0; r >= 0 && i + 1 < clients->seq.n; i += 2) {
                const char *name = clients->seq.items[i]->str.data;
                if (hashmap_get(by_name, name) != clients->seq.items[i + 1])
                        continue; /* a later duplicate wins */
                r = import_live(im, name, clients->seq.items[i + 1], hashmap_get(old_by_name, name));
        }
        for (size_t i = 0; r >= 0 && i + 1 < settings->seq.n; i += 2) {
                const char *name = settings->seq.items[i]->str.data;
                if (hashmap_get(old_by_name, name) != settings->seq.items[i + 1] || hashmap_get(by_name, name))
                        continue;
                r = import_removed(im, name, settings->seq.items[i + 1]);
        }
finish:
        hashmap_free(by_name);
        hashmap_free(old_by_name);
        return r;
}

int pickle_import_state(int fd, const ClientsConf *conf, State **ret, char **ret_error) {
        _cleanup_(pickle_freep) Pickle *p = NULL;
        Import im = { .conf = conf };
        int r;

        *ret = NULL;
        *ret_error = NULL;
        r = pickle_parse_fd(fd, &p, ret_error);
        if (r < 0)
                return r;
        im.state = calloc(1, sizeof(State));
        if (!im.state)
                return -ENOMEM;
        r = import_tree(&im, pickle_root(p));
        if (r < 0) {
                state_free(im.state);
                *ret_error = im.error;
                return r;
        }
        *ret = im.state;
        return 0;
}
