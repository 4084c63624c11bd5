/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <errno.h>
#include <stdlib.h>

#include "bus-internal.h"
#include "bus-introspect.h"
#include "test.h"
#include "util.h"

/* The object path of a client name, or the error as a string. */
static char path_buf[256];
static const char *path_of(const char *name) {
        char *path = NULL;
        int r = bus_client_object_path(name, &path);

        if (r < 0)
                snprintf(path_buf, sizeof(path_buf), "error %d", r);
        else
                snprintf(path_buf, sizeof(path_buf), "%s", path);
        free(path);
        return path_buf;
}

static void test_object_paths_are_the_reference_s(void) {
        check_streq(path_of("foo.bar-baz"), "/clients/foo_bar_baz");
        check_streq(path_of("other-client"), "/clients/other_client");
        check_streq(path_of("testclient"), "/clients/testclient");
        check_streq(path_of("Host_01"), "/clients/Host_01");
}

static void test_other_bytes_are_encoded(void) {
        check_streq(path_of("odd name+1"), "/clients/odd_20name_2b1");
        check_streq(path_of("a/b"), "/clients/a_2fb");
        check_streq(path_of("\xc3\xa9t\xc3\xa9"), "/clients/_c3_a9t_c3_a9");
        check_streq(path_of(""), "error -22");
}

static int handler(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return 0;
}

static int setter(sd_bus *bus, const char *path, const char *interface, const char *property,
                  sd_bus_message *value, void *userdata, sd_bus_error *error) {
        return 0;
}

static const sd_bus_vtable example_vtable[] = {
        SD_BUS_VTABLE_START(SD_BUS_VTABLE_DEPRECATED),
        SD_BUS_METHOD_WITH_ARGS("Mix", SD_BUS_ARGS("a{sv}", dict, "(ii)", pair, "as", list),
                                SD_BUS_RESULT("a{oa{sa{sv}}}", objects), handler, 0),
        SD_BUS_METHOD("Unnamed", NULL, "ao", handler, SD_BUS_VTABLE_DEPRECATED),
        SD_BUS_SIGNAL_WITH_ARGS("Happened", SD_BUS_ARGS("n", code, "x", status), 0),
        SD_BUS_PROPERTY("Plain", "s", NULL, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Fixed", "o", NULL, 0, SD_BUS_VTABLE_PROPERTY_CONST | SD_BUS_VTABLE_DEPRECATED),
        SD_BUS_PROPERTY("Quiet", "u", NULL, 0, 0),
        SD_BUS_WRITABLE_PROPERTY("Both", "t", NULL, setter, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_WRITABLE_PROPERTY("Hidden", "ay", NULL, setter, 0,
                                 SD_BUS_VTABLE_HIDDEN | SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_VTABLE_END,
};

#define check_has(text, s) check(strstr((text), (s)) != NULL)

static void test_introspection_says_what_the_vtable_says(void) {
        BusIntrospect i;
        const char *x;

        check_int(bus_introspect_begin(&i, BUS_INTROSPECT_INTROSPECTABLE), 0);
        bus_introspect_interface(&i, "org.example.Thing", example_vtable);
        bus_introspect_child(&i, "child");
        x = bus_introspect_finish(&i);
        check(x != NULL);
        if (!x)
                return;
        check_has(x, "<interface name=\"org.freedesktop.DBus.Introspectable\">");
        check(!strstr(x, "org.freedesktop.DBus.Peer"));
        check_has(x, " <interface name=\"org.example.Thing\">\n"
                     "  <annotation name=\"org.freedesktop.DBus.Deprecated\" value=\"true\"/>\n");
        /* Each argument is one complete type, named in order, in before out. */
        check_has(x, "  <method name=\"Mix\">\n"
                     "   <arg type=\"a{sv}\" name=\"dict\" direction=\"in\"/>\n"
                     "   <arg type=\"(ii)\" name=\"pair\" direction=\"in\"/>\n"
                     "   <arg type=\"as\" name=\"list\" direction=\"in\"/>\n"
                     "   <arg type=\"a{oa{sa{sv}}}\" name=\"objects\" direction=\"out\"/>\n"
                     "  </method>\n");
        check_has(x, "  <method name=\"Unnamed\">\n"
                     "   <arg type=\"ao\" direction=\"out\"/>\n"
                     "   <annotation name=\"org.freedesktop.DBus.Deprecated\" value=\"true\"/>\n");
        check_has(x, "  <signal name=\"Happened\">\n"
                     "   <arg type=\"n\" name=\"code\"/>\n"
                     "   <arg type=\"x\" name=\"status\"/>\n");
        check_has(x, "<property name=\"Plain\" type=\"s\" access=\"read\">\n  </property>");
        check_has(x, "<property name=\"Fixed\" type=\"o\" access=\"read\">\n"
                     "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"const\"/>\n"
                     "   <annotation name=\"org.freedesktop.DBus.Deprecated\" value=\"true\"/>\n");
        check_has(x, "<property name=\"Quiet\" type=\"u\" access=\"read\">\n"
                     "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"false\"/>");
        check_has(x, "<property name=\"Both\" type=\"t\" access=\"readwrite\">\n  </property>");
        check_has(x, "<property name=\"Hidden\" type=\"ay\" access=\"write\">\n"
                     "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"invalidates\"/>");
        check_has(x, " <node name=\"child\"/>\n</node>\n");
        bus_introspect_done(&i);
}

int main(void) {
        static const TestCase tests[] = {
                TEST(test_object_paths_are_the_reference_s),
                TEST(test_other_bytes_are_encoded),
                TEST(test_introspection_says_what_the_vtable_says),
        };
        return test_run_all(tests, ELEMENTSOF(tests));
}
