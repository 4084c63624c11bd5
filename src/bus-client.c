/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The client objects "/clients/NAME" (mandos-dbus-api(7), CLIENT OBJECTS):
 * both client interfaces with every property, method and signal of the
 * reference, and the change signals in the reference's order. */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "bus-internal.h"
#include "bus-introspect.h"
#include <assert.h>
#include "duration.h"
#include "hex.h"
#include "log.h"
#include "server.h"
#include "util.h"

/* ------------------------------------------------------------ properties */

/* Getters get the field (the client plus the entry's offset), as sd-bus
 * gives it; setters get the whole Client, see client_set_property(). */

static int property_get_duration(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "t", *(uint64_t *) userdata / USEC_PER_MSEC);
}

static int property_get_time(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        uint64_t t = *(uint64_t *) userdata;
        char buf[TIMESTAMP_MAX];

        return sd_bus_message_append(reply, "s", t ? timestamp_format_iso(t, buf) : "");
}

static int property_get_bool(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", (int) *(bool *) userdata);
}

static int property_get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", strempty(*(char **) userdata));
}

/* Computed from the name, here only: the other getters ignore their path. */
static int property_get_object_path(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const char *p = client_object_path(((const Client *) userdata)->name);

        return p ? sd_bus_message_append(reply, "o", p) : -ENOMEM;
}

static int property_get_checker_status(sd_bus *bus, const char *path, const char *interface,
                                       const char *property, sd_bus_message *reply, void *userdata,
                                       sd_bus_error *error) {
        return sd_bus_message_append(reply, "n", (int16_t) * (int *) userdata);
}

static int property_get_approval_pending(sd_bus *bus, const char *path, const char *interface,
                                         const char *property, sd_bus_message *reply, void *userdata,
                                         sd_bus_error *error) {
        Client *c = userdata;

        assert(c);
        return sd_bus_message_append(reply, "b", (int) (c->approvals_pending > 0));
}

static int property_get_checker_running(sd_bus *bus, const char *path, const char *interface,
                                        const char *property, sd_bus_message *reply, void *userdata,
                                        sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", (int) client_checker_running(userdata));
}

static int property_get_write_only(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Property %s is write-only", property);
}

/* A duration arrives in ms. mandos-ctl (dbus-python) sends whatever integer
 * type fits the number, so every integer type is taken; negative values
 * and values beyond CLIENT_DURATION_MAX are refused. */
static int read_duration(sd_bus_message *value, uint64_t *ret_usec, sd_bus_error *error) {
        union {
                uint8_t y;
                int16_t n;
                uint16_t q;
                int32_t i;
                uint32_t u;
                int64_t x;
                uint64_t t;
        } v = {};
        int64_t sms = 0;
        uint64_t ms;
        char type;
        int r;

        r = sd_bus_message_peek_type(value, &type, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_read_basic(value, type, &v);
        if (r < 0)
                return r;
        switch (type) {
        case 'y': ms = v.y; break;
        case 'q': ms = v.q; break;
        case 'u': ms = v.u; break;
        case 't': ms = v.t; break;
        case 'n': sms = v.n; ms = (uint64_t) sms; break;
        case 'i': sms = v.i; ms = (uint64_t) sms; break;
        case 'x': sms = v.x; ms = (uint64_t) sms; break;
        default:
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "A duration is an integer of milliseconds");
        }
        if (sms < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Negative duration: %" PRIi64 " ms", sms);
        if (ms > CLIENT_DURATION_MAX / USEC_PER_MSEC)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Duration too long: %" PRIu64 " ms (at most %" PRIu64 ")", ms,
                                         CLIENT_DURATION_MAX / USEC_PER_MSEC);
        *ret_usec = ms * USEC_PER_MSEC;
        return 0;
}

static int read_bool(sd_bus_message *value, bool *ret) {
        int b, r;

        r = sd_bus_message_read_basic(value, 'b', &b);
        if (r < 0)
                return r;
        *ret = b;
        return 0;
}

/* A boolean that switches something on or off. */
#define DEFINE_SWITCH_SETTER(setter, on, off)                                                              \
        static int setter(sd_bus *bus, const char *path, const char *interface, const char *property,      \
                          sd_bus_message *value, void *userdata, sd_bus_error *error) {                    \
                bool b;                                                                                     \
                int r = read_bool(value, &b);                                                               \
                if (r < 0)                                                                                  \
                        return r;                                                                           \
                if (b)                                                                                      \
                        on(userdata);                                                                       \
                else                                                                                        \
                        off(userdata);                                                                      \
                return 0;                                                                                   \
        }

DEFINE_SWITCH_SETTER(property_set_checker_running, client_start_checker, client_stop_checker)

/* Any setting but the secret: its value as its row's type says, set with
 * its semantics (client_set_setting()). */
static int property_set_setting(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *value, void *userdata, sd_bus_error *error) {
        const ClientSettingInfo *row = client_setting_by_property(property);
        ClientSettings v = {};        /* strings borrowed from the message */
        const char *why = NULL;
        int r = -EINVAL;

        assert(row);
        switch (row->type) {
        case CLIENT_SETTING_TYPE_STRING:
        case CLIENT_SETTING_TYPE_KEY:
                r = sd_bus_message_read_basic(value, 's', CLIENT_SETTING_FIELD(&v, row, const char *));
                break;
        case CLIENT_SETTING_TYPE_DURATION:
                r = read_duration(value, CLIENT_SETTING_FIELD(&v, row, uint64_t), error);
                break;
        case CLIENT_SETTING_TYPE_BOOLEAN:
                r = read_bool(value, CLIENT_SETTING_FIELD(&v, row, bool));
                break;
        case CLIENT_SETTING_TYPE_SECRET:
                break;
        }
        if (r < 0)
                return r;
        r = client_set_setting(userdata, row, &v, &why);
        if (r == -EINVAL)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s", why ?: "Invalid value");
        return r;
}

/* Any value means "a checker just succeeded" (mandos-ctl --bump-timeout sends ""). */
static int property_set_last_checked_ok(sd_bus *bus, const char *path, const char *interface,
                                        const char *property, sd_bus_message *value, void *userdata,
                                        sd_bus_error *error) {
        const char *s;
        int r;

        r = sd_bus_message_read_basic(value, 's', &s);
        if (r < 0)
                return r;
        client_checked_ok(userdata);
        return 0;
}

/* The Set call waits for the ciphertext of the state file, made off the
 * loop (client_set_secret_async()): its reply says the secret is in place,
 * as it did when encryption ran inside the call. */
static void on_secret_set(int r, void *userdata) {
        sd_bus_message *m = userdata;

        assert(m);
        if (r == -ESRCH)
                r = sd_bus_reply_method_errorf(m, SD_BUS_ERROR_UNKNOWN_OBJECT, "The client was removed");
        else if (r < 0) /* not the caller's fault: no errno-named error such as AccessDenied */
                r = sd_bus_reply_method_errorf(m, SD_BUS_ERROR_FAILED, "Could not store the new secret: %s",
                                               strerror(-r));
        else
                r = sd_bus_reply_method_return(m, NULL);
        if (r < 0)
                log_debug_errno(r, "Could not answer a Set of Secret: %m");
        sd_bus_message_unref(m);
}

/* Returns 1 when the reply is left to on_secret_set(). */
static int property_set_secret(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *value, void *userdata, sd_bus_error *error) {
        const void *data;
        size_t size;
        int r;

        r = sd_bus_message_read_array(value, 'y', &data, &size);
        if (r < 0)
                return r;
        r = client_set_secret_async(userdata, data, size, on_secret_set, value);
        if (r > 0) {
                sd_bus_message_ref(value);
                return 1;
        }
        if (r == -ENOMEM)
                return r;
        if (r < 0) /* not the caller's fault: no errno-named error such as AccessDenied */
                return sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Could not store the new secret: %s",
                                         strerror(-r));
        return 0;
}

/* ---------------------------------------------------------------- methods */

static int method_approve(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int b, r;

        r = sd_bus_message_read(m, "b", &b);
        if (r < 0)
                return r;
        client_approve(userdata, b);
        return sd_bus_reply_method_return(m, NULL);
}

/* The methods without arguments: one Client function each. */
#define DEFINE_CLIENT_METHOD(handler, function)                                          \
        static int handler(sd_bus_message *m, void *userdata, sd_bus_error *error) {    \
                function(userdata);                                                      \
                return sd_bus_reply_method_return(m, NULL);                              \
        }

DEFINE_CLIENT_METHOD(method_checked_ok, client_checked_ok)
DEFINE_CLIENT_METHOD(method_enable, client_enable)
DEFINE_CLIENT_METHOD(method_disable, client_disable)
DEFINE_CLIENT_METHOD(method_start_checker, client_start_checker)
DEFINE_CLIENT_METHOD(method_stop_checker, client_stop_checker)

/* ----------------------------------------------------------------- vtables */

#define UNPRIVILEGED SD_BUS_VTABLE_UNPRIVILEGED /* the bus policy decides who may call */
#define DEPRECATED   SD_BUS_VTABLE_DEPRECATED
#define EMITS_CHANGE SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE
#define CONST        SD_BUS_VTABLE_PROPERTY_CONST
/* See bus-introspect.h: a hidden writable property is write-only. */
#define WRITE_ONLY   (SD_BUS_VTABLE_HIDDEN | SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION | SD_BUS_VTABLE_SENSITIVE)

/* The two client interfaces are the same but for the deprecation of the
 * second (mandos-dbus-api(7), DESCRIPTION): their methods and signals
 * here, then their properties in name order, those of the settings from
 * their table (src/client-settings.h) and the run-time ones below. */
#define CLIENT_VTABLE_HEAD(flags)                                                                            \
        SD_BUS_VTABLE_START(flags),                                                                           \
        SD_BUS_METHOD_WITH_ARGS("Approve", SD_BUS_ARGS("b", value), SD_BUS_NO_RESULT, method_approve,         \
                                UNPRIVILEGED),                                                                \
        SD_BUS_METHOD_WITH_ARGS("CheckedOK", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_checked_ok, UNPRIVILEGED), \
        SD_BUS_METHOD_WITH_ARGS("Enable", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_enable,                    \
                                UNPRIVILEGED | DEPRECATED),                                                   \
        SD_BUS_METHOD_WITH_ARGS("Disable", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_disable,                  \
                                UNPRIVILEGED | DEPRECATED),                                                   \
        SD_BUS_METHOD_WITH_ARGS("StartChecker", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_start_checker,       \
                                UNPRIVILEGED | DEPRECATED),                                                   \
        SD_BUS_METHOD_WITH_ARGS("StopChecker", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_stop_checker,         \
                                UNPRIVILEGED | DEPRECATED),                                                   \
        SD_BUS_SIGNAL_WITH_ARGS("CheckerCompleted", SD_BUS_ARGS("n", exitcode, "x", waitstatus, "s", command), \
                                0),                                                                           \
        SD_BUS_SIGNAL_WITH_ARGS("CheckerStarted", SD_BUS_ARGS("s", command), 0),                              \
        SD_BUS_SIGNAL_WITH_ARGS("GotSecret", SD_BUS_NO_ARGS, 0),                                              \
        SD_BUS_SIGNAL_WITH_ARGS("Rejected", SD_BUS_ARGS("s", reason), 0),                                     \
        SD_BUS_SIGNAL_WITH_ARGS("NeedApproval", SD_BUS_ARGS("t", timeout, "b", default), 0),                  \
        SD_BUS_SIGNAL_WITH_ARGS("PropertyChanged", SD_BUS_ARGS("s", property, "v", value), DEPRECATED)

static const sd_bus_vtable client_vtable_head[] = { CLIENT_VTABLE_HEAD(0) };
static const sd_bus_vtable client_vtable_head_deprecated[] = { CLIENT_VTABLE_HEAD(SD_BUS_VTABLE_DEPRECATED) };

/* The properties that are no setting. */
static const sd_bus_vtable client_runtime_properties[] = {
        SD_BUS_PROPERTY("ApprovalPending", "b", property_get_approval_pending, 0, EMITS_CHANGE),
        SD_BUS_WRITABLE_PROPERTY("CheckerRunning", "b", property_get_checker_running, property_set_checker_running,
                                 0, EMITS_CHANGE | UNPRIVILEGED),
        SD_BUS_PROPERTY("Created", "s", property_get_time, offsetof(Client, created), CONST),
        SD_BUS_PROPERTY("Expires", "s", property_get_time, offsetof(Client, expires), EMITS_CHANGE),
        SD_BUS_PROPERTY("LastApprovalRequest", "s", property_get_time, offsetof(Client, last_approval_request),
                        EMITS_CHANGE),
        SD_BUS_WRITABLE_PROPERTY("LastCheckedOK", "s", property_get_time, property_set_last_checked_ok,
                                 offsetof(Client, last_checked_ok), EMITS_CHANGE | UNPRIVILEGED),
        SD_BUS_PROPERTY("LastCheckerStatus", "n", property_get_checker_status, offsetof(Client, last_checker_status),
                        EMITS_CHANGE),
        SD_BUS_PROPERTY("LastEnabled", "s", property_get_time, offsetof(Client, last_enabled), EMITS_CHANGE),
        SD_BUS_PROPERTY("ObjectPath", "o", property_get_object_path, 0, CONST | DEPRECATED),
};

/* A setting's property, as its row says. */
static sd_bus_vtable setting_property(const ClientSettingInfo *row) {
        size_t offset = offsetof(Client, settings) + row->offset;
        sd_bus_property_get_t get = property_get_string;
        const char *signature = "s";

        switch (row->type) {
        case CLIENT_SETTING_TYPE_SECRET:
                return (sd_bus_vtable) SD_BUS_WRITABLE_PROPERTY(row->property, "ay", property_get_write_only,
                                                                property_set_secret, 0, WRITE_ONLY | UNPRIVILEGED);
        case CLIENT_SETTING_TYPE_DURATION:
                signature = "t";
                get = property_get_duration;
                break;
        case CLIENT_SETTING_TYPE_BOOLEAN:
                signature = "b";
                get = property_get_bool;
                break;
        case CLIENT_SETTING_TYPE_STRING:
        case CLIENT_SETTING_TYPE_KEY:
                break;
        }
        if (row->flags & CLIENT_SETTING_WRITABLE)
                return (sd_bus_vtable) SD_BUS_WRITABLE_PROPERTY(row->property, signature, get, property_set_setting,
                                                                offset, EMITS_CHANGE | UNPRIVILEGED);
        return (sd_bus_vtable) SD_BUS_PROPERTY(row->property, signature, get, offset, CONST);
}

static int property_compare(const void *a, const void *b) {
        return strcmp(((const sd_bus_vtable *) a)->x.property.member, ((const sd_bus_vtable *) b)->x.property.member);
}

#define CLIENT_VTABLE_SIZE \
        (ELEMENTSOF(client_vtable_head) + ELEMENTSOF(client_runtime_properties) + _CLIENT_SETTING_MAX + 1)

static sd_bus_vtable client_vtable[CLIENT_VTABLE_SIZE], client_vtable_deprecated[CLIENT_VTABLE_SIZE];

static void client_vtable_build(sd_bus_vtable *v, const sd_bus_vtable *head) {
        size_t n = ELEMENTSOF(client_vtable_head), first;

        memcpy(v, head, sizeof(client_vtable_head));
        first = n;
        for (size_t i = 0; i < ELEMENTSOF(client_runtime_properties); i++)
                v[n++] = client_runtime_properties[i];
        FOREACH_CLIENT_SETTING(row)
                if (row->property)
                        v[n++] = setting_property(row);
        qsort(v + first, n - first, sizeof(sd_bus_vtable), property_compare);
        v[n] = (sd_bus_vtable) SD_BUS_VTABLE_END;
}

/* Built once, before the first use; sd-bus keeps pointers to them. */
static void client_vtables_init(void) {
        if (client_vtable[0].type == _SD_BUS_VTABLE_START)
                return;
        client_vtable_build(client_vtable, client_vtable_head);
        client_vtable_build(client_vtable_deprecated, client_vtable_head_deprecated);
}

static const struct {
        const char *name;
        const sd_bus_vtable *vtable;
} client_interfaces[] = {
        { BUS_CLIENT_INTERFACE, client_vtable },
        { BUS_CLIENT_INTERFACE_DEPRECATED, client_vtable_deprecated },
};

static bool vtable_is_property(const sd_bus_vtable *v) {
        return v->type == _SD_BUS_VTABLE_PROPERTY || v->type == _SD_BUS_VTABLE_WRITABLE_PROPERTY;
}

static bool property_is_readable(const sd_bus_vtable *v) {
        return vtable_is_property(v) && !(v->flags & SD_BUS_VTABLE_HIDDEN);
}

static const sd_bus_vtable *find_property(const sd_bus_vtable *vtable, const char *name) {
        for (const sd_bus_vtable *v = vtable + 1; v->type != _SD_BUS_VTABLE_END; v++)
                if (vtable_is_property(v) && streq(v->x.property.member, name))
                        return v;
        return NULL;
}

static const sd_bus_vtable *find_interface(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(client_interfaces); i++)
                if (streq(client_interfaces[i].name, name))
                        return client_interfaces[i].vtable;
        return NULL;
}

/* v: the property's value as a variant, from its getter. */
static int append_property_value(sd_bus_message *m, Client *c, const sd_bus_vtable *v) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_message_open_container(m, 'v', v->x.property.signature);
        if (r < 0)
                return r;
        r = v->x.property.get(sd_bus_message_get_bus(m), sd_bus_message_get_path(m), BUS_CLIENT_INTERFACE,
                              v->x.property.member, m, (uint8_t *) c + v->x.property.offset, &error);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* {sv}: the property's name and value. */
static int append_property_entry(sd_bus_message *m, Client *c, const sd_bus_vtable *v) {
        int r;

        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", v->x.property.member);
        if (r >= 0)
                r = append_property_value(m, c, v);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

int bus_client_append_properties(sd_bus_message *m, Client *c) {
        int r;

        client_vtables_init();
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        for (const sd_bus_vtable *v = client_vtable + 1; r >= 0 && v->type != _SD_BUS_VTABLE_END; v++)
                if (property_is_readable(v))
                        r = append_property_entry(m, c, v);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* The reference lists the standard interfaces too, with no properties. */
static const char *const listed_interfaces[] = {
        BUS_CLIENT_INTERFACE,
        BUS_CLIENT_INTERFACE_DEPRECATED,
        DBUS_INTERFACE_PROPERTIES,
        DBUS_INTERFACE_INTROSPECTABLE,
};

int bus_client_append_interfaces(sd_bus_message *m, Client *c) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sa{sv}}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(listed_interfaces); i++) {
                r = sd_bus_message_open_container(m, 'e', "sa{sv}");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", listed_interfaces[i]);
                if (r >= 0)
                        r = find_interface(listed_interfaces[i]) ? bus_client_append_properties(m, c)
                                                                 : sd_bus_message_append(m, "a{sv}", 0);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

int bus_client_append_interface_names(sd_bus_message *m) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "s");
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(listed_interfaces); i++)
                r = sd_bus_message_append(m, "s", listed_interfaces[i]);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* ------------------------------------------------- what sd-bus can't do */

/* Properties.Set, ours rather than sd-bus's: durations take any integer
 * type (see read_duration()), every other property exactly its declared
 * type; setters get the Client itself. */
static int client_set_property(sd_bus_message *m, Client *c, sd_bus_error *error) {
        const char *interface, *name, *contents;
        const sd_bus_vtable *vtable, *v;
        char type;
        int r;

        r = sd_bus_message_read(m, "ss", &interface, &name);
        if (r < 0)
                return r;
        vtable = find_interface(interface);
        if (!vtable)
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_INTERFACE, "No interface %s on %s", interface,
                                         sd_bus_message_get_path(m));
        v = find_property(vtable, name);
        if (!v)
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "No property %s.%s", interface, name);
        if (v->type != _SD_BUS_VTABLE_WRITABLE_PROPERTY)
                return sd_bus_error_setf(error, SD_BUS_ERROR_PROPERTY_READ_ONLY, "Property %s is read-only", name);
        if (v->flags & SD_BUS_VTABLE_SENSITIVE)
                (void) sd_bus_message_sensitive(m);

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (type != SD_BUS_TYPE_VARIANT)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "Expected a variant");
        if (!streq(contents, v->x.property.signature) &&
            !(streq(v->x.property.signature, "t") && contents[0] && !contents[1] && strchr("ynqiuxt", contents[0])))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Property %s has type %s, not %s", name,
                                         v->x.property.signature, contents);
        r = sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, contents);
        if (r < 0)
                return r;
        r = v->x.property.set(sd_bus_message_get_bus(m), sd_bus_message_get_path(m), interface, name, m, c, error);
        if (r != 0)
                return r; /* failed, or (Secret) answered later */
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, NULL);
}

static int client_introspect(sd_bus_message *m, Client *c) {
        _cleanup_(bus_introspect_done) BusIntrospect i = {};
        int r;

        r = bus_introspect_begin(&i, BUS_INTROSPECT_INTROSPECTABLE | BUS_INTROSPECT_PEER | BUS_INTROSPECT_PROPERTIES);
        if (r < 0)
                return r;
        for (size_t k = 0; k < ELEMENTSOF(client_interfaces); k++)
                bus_introspect_interface(&i, client_interfaces[k].name, client_interfaces[k].vtable);
        return bus_introspect_reply(&i, m);
}

/* Runs before sd-bus's own dispatch for /clients and every path under it:
 * takes Introspect, Properties.Set and GetAll("") (the reference merges
 * all interfaces; sd-bus would list every property twice); leaves the rest.
 * A path below /clients that is no client's is refused here: this handler
 * alone would make sd-bus treat every such path as an existing object. */
static int client_object_handler(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Bus *b = userdata;
        const char *path = sd_bus_message_get_path(m);
        const char *interface;
        Client *c;
        int r;

        assert(b);
        c = path ? bus_client_at(b, path) : NULL;
        if (!c) {
                if (streq_ptr(path, BUS_CLIENTS_PATH))
                        return 0; /* sd-bus lists the children */
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_OBJECT, "No client has the object path %s",
                                         path);
        }
        if (sd_bus_message_is_method_call(m, DBUS_INTERFACE_INTROSPECTABLE, "Introspect"))
                return client_introspect(m, c);
        if (sd_bus_message_is_method_call(m, DBUS_INTERFACE_PROPERTIES, "Set"))
                return client_set_property(m, c, error);
        if (sd_bus_message_is_method_call(m, DBUS_INTERFACE_PROPERTIES, "GetAll")) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;

                r = sd_bus_message_read(m, "s", &interface);
                if (r < 0 || !isempty(interface))
                        return 0; /* sd-bus answers (or refuses) the rest */
                r = sd_bus_message_new_method_return(m, &reply);
                if (r >= 0)
                        r = bus_client_append_properties(reply, c);
                if (r >= 0)
                        r = sd_bus_send(NULL, reply, NULL);
                return r < 0 ? r : 1;
        }
        return 0;
}

static int client_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret_found,
                       sd_bus_error *error) {
        Bus *b = userdata;
        Client *c;

        assert(b);
        c = bus_client_at(b, path);
        if (!c)
                return 0;
        *ret_found = c;
        return 1;
}

static int client_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes,
                            sd_bus_error *error) {
        Bus *b = userdata;
        Server *s;
        char **nodes;
        size_t n = 0;

        assert(b);
        s = b->server;
        nodes = calloc(s->n_clients + 1, sizeof(char *));
        if (!nodes)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_clients; i++) {
                const char *path;

                if (!s->clients[i]->bus_exported)
                        continue;
                path = client_object_path(s->clients[i]->name);
                nodes[n] = path ? strdup(path) : NULL;
                if (!nodes[n]) {
                        while (n > 0)
                                free(nodes[--n]);
                        free(nodes);
                        return -ENOMEM;
                }
                n++;
        }
        *ret_nodes = nodes;
        return 0;
}

int bus_export_clients(Bus *b) {
        int r;

        client_vtables_init();
        r = sd_bus_add_fallback(b->bus, &b->client_slots[0], BUS_CLIENTS_PATH, client_object_handler, b);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(b->bus, &b->client_slots[1], BUS_CLIENTS_PATH, client_enumerate, b);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(client_interfaces); i++)
                r = sd_bus_add_fallback_vtable(b->bus, &b->client_slots[2 + i], BUS_CLIENTS_PATH,
                                               client_interfaces[i].name, client_interfaces[i].vtable,
                                               client_find, b);
        if (r < 0)
                return log_error_errno(r, "Failed to export the client objects: %m");
        return 0;
}

/* ------------------------------------------------------------ object path */

Client *bus_client_at(Bus *b, const char *path) {
        Client *c;

        if (!startswith(path, BUS_CLIENTS_PATH "/"))
                return NULL;
        c = server_find_client_by_name(b->server, path + strlen(BUS_CLIENTS_PATH "/"));
        if (c && c->bus_exported)
                return c; /* its name is its path's last element */
        return hashmap_get(b->escaped, path);
}

int bus_client_object_path(const char *name, char **ret) {
        const char *path;

        if (isempty(name))
                return -EINVAL;
        path = client_object_path(name);
        if (!path || !(*ret = strdup(path)))
                return -ENOMEM;
        return 0;
}

/* ----------------------------------------------------------------- signals */

static void emit_client_signal(Bus *b, Client *c, const char *member, const char *types, ...) {
        static const char *const interfaces[2] = { BUS_CLIENT_INTERFACE, BUS_CLIENT_INTERFACE_DEPRECATED };
        const char *path;
        va_list ap;

        /* Not announced yet: InterfacesAdded will carry the news. */
        if (!c->bus_exported || c->bus_pending || !(path = client_object_path(c->name)))
                return;
        va_start(ap, types);
        bus_emit_twice(b, path, interfaces, member, types, ap);
        va_end(ap);
}

static void emit_property_changed(Bus *b, Client *c, const sd_bus_vtable *v) {
        for (size_t i = 0; i < ELEMENTSOF(client_interfaces); i++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
                int r;

                r = sd_bus_message_new_signal(b->bus, &m, client_object_path(c->name), client_interfaces[i].name,
                                              "PropertyChanged");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", v->x.property.member);
                if (r >= 0)
                        r = append_property_value(m, c, v);
                if (r < 0) {
                        log_error_errno(r, "Failed to build PropertyChanged(%s): %m", v->x.property.member);
                        return;
                }
                bus_send(b, m);
        }
}

/* PropertiesChanged for the primary interface only, one property per signal. */
static void emit_properties_changed(Bus *b, Client *c, const sd_bus_vtable *v) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        bool invalidate = v->flags & SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION;
        int r;

        r = sd_bus_message_new_signal(b->bus, &m, client_object_path(c->name), DBUS_INTERFACE_PROPERTIES,
                                      "PropertiesChanged");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", BUS_CLIENT_INTERFACE);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && !invalidate)
                r = append_property_entry(m, c, v);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = invalidate ? sd_bus_message_append(m, "as", 1, v->x.property.member)
                               : sd_bus_message_append(m, "as", 0);
        if (r < 0) {
                log_error_errno(r, "Failed to build PropertiesChanged(%s): %m", v->x.property.member);
                return;
        }
        bus_send(b, m);
}

void bus_client_changed(Bus *b, Client *c, ClientProperty p) {
        const sd_bus_vtable *v;
        const char *name;

        if (!b || !c->bus_exported || c->bus_pending)
                return;
        name = client_property_name(p);
        if (!name)
                return;
        v = find_property(client_vtable, name);
        if (!v)
                return;
        /* A write-only value is never sent, only invalidated
         * (mandos-dbus-api(7), CHANGE SIGNALS). */
        if (!(v->flags & SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION))
                emit_property_changed(b, c, v);
        emit_properties_changed(b, c, v);
}

void bus_checker_started(Bus *b, Client *c, const char *command) {
        if (b)
                emit_client_signal(b, c, "CheckerStarted", "s", strempty(command));
}

void bus_checker_completed(Bus *b, Client *c, int16_t exit_code, int64_t wait_status, const char *command) {
        if (b)
                emit_client_signal(b, c, "CheckerCompleted", "nxs", exit_code, wait_status, strempty(command));
}

void bus_got_secret(Bus *b, Client *c) {
        if (b)
                emit_client_signal(b, c, "GotSecret", NULL);
}

void bus_rejected(Bus *b, Client *c, const char *reason) {
        if (b)
                emit_client_signal(b, c, "Rejected", "s", reason);
}

void bus_need_approval(Bus *b, Client *c, uint64_t timeout_ms, bool approved_by_default) {
        if (b)
                emit_client_signal(b, c, "NeedApproval", "tb", timeout_ms, (int) approved_by_default);
}
