/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Introspection XML, written from the same sd_bus_vtable tables sd-bus
 * dispatches with. We write it ourselves because sd-bus's writer cannot say
 * what the reference says (mandos-dbus-api(7), Secret): a write-only property.
 * Here a writable property flagged SD_BUS_VTABLE_HIDDEN is write-only: listed
 * with access="write", left out of GetAll (sd-bus already skips hidden ones
 * there), and its getter refuses. Every other flag means what it means to
 * sd-bus: DEPRECATED, METHOD_NO_REPLY, PROPERTY_CONST / EMITS_CHANGE /
 * EMITS_INVALIDATION become the usual annotations. */

#include <stdio.h>
#include <systemd/sd-bus.h>

typedef struct BusIntrospect {
        FILE *f;
        char *text;
        size_t size;
} BusIntrospect;

/* The standard interfaces one may list on an object. */
typedef enum BusStandardInterface {
        BUS_INTROSPECT_INTROSPECTABLE = 1 << 0,
        BUS_INTROSPECT_PEER           = 1 << 1,
        BUS_INTROSPECT_PROPERTIES     = 1 << 2,
        BUS_INTROSPECT_OBJECT_MANAGER = 1 << 3,
} BusStandardInterface;

int bus_introspect_begin(BusIntrospect *i, unsigned standard_interfaces);
void bus_introspect_interface(BusIntrospect *i, const char *name, const sd_bus_vtable *vtable);
void bus_introspect_child(BusIntrospect *i, const char *name);
/* Close the document; returns its text (owned by i), or NULL when out of memory. */
const char *bus_introspect_finish(BusIntrospect *i);
/* Close the document and send it as the reply to call. */
int bus_introspect_reply(BusIntrospect *i, sd_bus_message *call);
void bus_introspect_done(BusIntrospect *i);
