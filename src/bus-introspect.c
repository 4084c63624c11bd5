/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "bus-introspect.h"

#include <errno.h>
#include <stdlib.h>

#include "util.h"

#define ANNOTATION_DEPRECATED "   <annotation name=\"org.freedesktop.DBus.Deprecated\" value=\"true\"/>\n"

static const char introspectable_xml[] =
        " <interface name=\"org.freedesktop.DBus.Introspectable\">\n"
        "  <method name=\"Introspect\">\n"
        "   <arg type=\"s\" name=\"xml_data\" direction=\"out\"/>\n"
        "  </method>\n"
        " </interface>\n";

static const char peer_xml[] =
        " <interface name=\"org.freedesktop.DBus.Peer\">\n"
        "  <method name=\"Ping\"/>\n"
        "  <method name=\"GetMachineId\">\n"
        "   <arg type=\"s\" name=\"machine_uuid\" direction=\"out\"/>\n"
        "  </method>\n"
        " </interface>\n";

static const char properties_xml[] =
        " <interface name=\"org.freedesktop.DBus.Properties\">\n"
        "  <method name=\"Get\">\n"
        "   <arg type=\"s\" name=\"interface_name\" direction=\"in\"/>\n"
        "   <arg type=\"s\" name=\"property_name\" direction=\"in\"/>\n"
        "   <arg type=\"v\" name=\"value\" direction=\"out\"/>\n"
        "  </method>\n"
        "  <method name=\"Set\">\n"
        "   <arg type=\"s\" name=\"interface_name\" direction=\"in\"/>\n"
        "   <arg type=\"s\" name=\"property_name\" direction=\"in\"/>\n"
        "   <arg type=\"v\" name=\"value\" direction=\"in\"/>\n"
        "  </method>\n"
        "  <method name=\"GetAll\">\n"
        "   <arg type=\"s\" name=\"interface_name\" direction=\"in\"/>\n"
        "   <arg type=\"a{sv}\" name=\"props\" direction=\"out\"/>\n"
        "  </method>\n"
        "  <signal name=\"PropertiesChanged\">\n"
        "   <arg type=\"s\" name=\"interface_name\"/>\n"
        "   <arg type=\"a{sv}\" name=\"changed_properties\"/>\n"
        "   <arg type=\"as\" name=\"invalidated_properties\"/>\n"
        "  </signal>\n"
        " </interface>\n";

static const char object_manager_xml[] =
        " <interface name=\"org.freedesktop.DBus.ObjectManager\">\n"
        "  <method name=\"GetManagedObjects\">\n"
        "   <arg type=\"a{oa{sa{sv}}}\" name=\"objpath_interfaces_and_properties\" direction=\"out\"/>\n"
        "  </method>\n"
        "  <signal name=\"InterfacesAdded\">\n"
        "   <arg type=\"o\" name=\"object_path\"/>\n"
        "   <arg type=\"a{sa{sv}}\" name=\"interfaces_and_properties\"/>\n"
        "  </signal>\n"
        "  <signal name=\"InterfacesRemoved\">\n"
        "   <arg type=\"o\" name=\"object_path\"/>\n"
        "   <arg type=\"as\" name=\"interfaces\"/>\n"
        "  </signal>\n"
        " </interface>\n";

int bus_introspect_begin(BusIntrospect *i, unsigned standard_interfaces) {
        *i = (BusIntrospect) {};
        i->f = open_memstream(&i->text, &i->size);
        if (!i->f)
                return -ENOMEM;
        fputs("<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"
              " \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n"
              "<node>\n", i->f);
        if (standard_interfaces & BUS_INTROSPECT_INTROSPECTABLE)
                fputs(introspectable_xml, i->f);
        if (standard_interfaces & BUS_INTROSPECT_PEER)
                fputs(peer_xml, i->f);
        if (standard_interfaces & BUS_INTROSPECT_PROPERTIES)
                fputs(properties_xml, i->f);
        if (standard_interfaces & BUS_INTROSPECT_OBJECT_MANAGER)
                fputs(object_manager_xml, i->f);
        return 0;
}

/* The length of the single complete type at the start of s, 0 if there is none. */
static size_t signature_element_length(const char *s) {
        size_t n, k;
        char close;

        switch (*s) {
        case '\0':
                return 0;
        case 'a':
                k = signature_element_length(s + 1);
                return k ? 1 + k : 0;
        case '(':
        case '{':
                close = *s == '(' ? ')' : '}';
                for (n = 1; s[n] && s[n] != close; n += k) {
                        k = signature_element_length(s + n);
                        if (k == 0)
                                return 0;
                }
                return s[n] ? n + 1 : 0;
        default:
                return 1;
        }
}

/* Argument names come NUL-separated, one per argument; "" means unnamed. */
static const char *next_name(const char **names) {
        const char *name = *names;

        if (!name || !*name)
                return NULL;
        *names = name + strlen(name) + 1;
        return name;
}

static void write_args(FILE *f, const char *signature, const char **names, const char *direction) {
        for (const char *s = strempty(signature); *s;) {
                size_t n = signature_element_length(s);
                const char *name;

                if (n == 0)
                        return;
                name = next_name(names);
                fprintf(f, "   <arg type=\"%.*s\"", (int) n, s);
                if (name)
                        fprintf(f, " name=\"%s\"", name);
                if (direction)
                        fprintf(f, " direction=\"%s\"", direction);
                fputs("/>\n", f);
                s += n;
        }
}

static void write_property(FILE *f, const sd_bus_vtable *v) {
        bool writable = v->type == _SD_BUS_VTABLE_WRITABLE_PROPERTY;
        const char *emits = NULL;

        fprintf(f, "  <property name=\"%s\" type=\"%s\" access=\"%s\">\n", v->x.property.member,
                v->x.property.signature,
                !writable                          ? "read"
                : v->flags & SD_BUS_VTABLE_HIDDEN ? "write"
                                                   : "readwrite");
        if (v->flags & SD_BUS_VTABLE_PROPERTY_CONST)
                emits = "const";
        else if (v->flags & SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION)
                emits = "invalidates";
        else if (!(v->flags & SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE))
                emits = "false";
        if (emits)
                fprintf(f, "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"%s\"/>\n",
                        emits);
        if (v->flags & SD_BUS_VTABLE_DEPRECATED)
                fputs(ANNOTATION_DEPRECATED, f);
        fputs("  </property>\n", f);
}

void bus_introspect_interface(BusIntrospect *i, const char *name, const sd_bus_vtable *vtable) {
        FILE *f = i->f;

        fprintf(f, " <interface name=\"%s\">\n", name);
        if (vtable[0].flags & SD_BUS_VTABLE_DEPRECATED)
                fputs("  <annotation name=\"org.freedesktop.DBus.Deprecated\" value=\"true\"/>\n", f);
        for (const sd_bus_vtable *v = vtable + 1; v->type != _SD_BUS_VTABLE_END; v++) {
                const char *names;

                switch (v->type) {
                case _SD_BUS_VTABLE_METHOD:
                        names = v->x.method.names;
                        fprintf(f, "  <method name=\"%s\">\n", v->x.method.member);
                        write_args(f, v->x.method.signature, &names, "in");
                        write_args(f, v->x.method.result, &names, "out");
                        if (v->flags & SD_BUS_VTABLE_DEPRECATED)
                                fputs(ANNOTATION_DEPRECATED, f);
                        if (v->flags & SD_BUS_VTABLE_METHOD_NO_REPLY)
                                fputs("   <annotation name=\"org.freedesktop.DBus.Method.NoReply\" value=\"true\"/>\n", f);
                        fputs("  </method>\n", f);
                        break;
                case _SD_BUS_VTABLE_SIGNAL:
                        names = v->x.signal.names;
                        fprintf(f, "  <signal name=\"%s\">\n", v->x.signal.member);
                        write_args(f, v->x.signal.signature, &names, NULL);
                        if (v->flags & SD_BUS_VTABLE_DEPRECATED)
                                fputs(ANNOTATION_DEPRECATED, f);
                        fputs("  </signal>\n", f);
                        break;
                case _SD_BUS_VTABLE_PROPERTY:
                case _SD_BUS_VTABLE_WRITABLE_PROPERTY:
                        write_property(f, v);
                        break;
                }
        }
        fputs(" </interface>\n", f);
}

void bus_introspect_child(BusIntrospect *i, const char *name) {
        fprintf(i->f, " <node name=\"%s\"/>\n", name);
}

const char *bus_introspect_finish(BusIntrospect *i) {
        fputs("</node>\n", i->f);
        if (fflush(i->f) != 0 || ferror(i->f))
                return NULL;
        return i->text;
}

int bus_introspect_reply(BusIntrospect *i, sd_bus_message *call) {
        const char *text = bus_introspect_finish(i);

        if (!text)
                return -ENOMEM;
        return sd_bus_reply_method_return(call, "s", text);
}

void bus_introspect_done(BusIntrospect *i) {
        if (i->f)
                (void) fclose(i->f);
        free(i->text);
        *i = (BusIntrospect) {};
}
