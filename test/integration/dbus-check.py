#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks of the D-Bus API for the test-dbus-*.sh tests.

Run with Debian's /usr/bin/python3 (standard library, plus python3-dbus for
the commands that talk to the bus, which they find through
DBUS_SYSTEM_BUS_ADDRESS). Exit status 0: all checks passed; 1: some failed
(each failure printed on a line of its own); 2: usage error.

Commands:
  introspect REF.xml OURS.xml   every interface, member, argument (type,
                                direction, name), property (type, access)
                                and annotation of REF is in OURS; additions
                                are allowed
  layout                        GetManagedObjects, GetAllClients(WithProperties)
                                and GetAll in the reference's layout, with
                                each value of its introspected type
  trace REF.txt OURS.txt        two dbus-monitor traces of one approval (or
                                denial) tell the same story (see
                                mandos-dbus-api(7), CHANGE SIGNALS), and
                                OURS emits every signal in the reference's form
  events OURS.txt               our trace's events, one per line ("prop
                                Enabled=true", "Rejected(\"Denied\")", ...),
                                after checking that each signal is sent in
                                the reference's form; exit 1 if one is not
  normalize [--sort-rows]       stdin to stdout, with timestamps replaced by
                                <time> and runs of blanks squeezed (for
                                comparing mandos-ctl output); --sort-rows:
                                all lines but the first sorted
  json-equal A.json B.json      two mandos-ctl --dump-json outputs are equal
                                but for the timestamps
"""

import json
import re
import sys
import xml.etree.ElementTree as ET

CLIENT_IFACE = "se.recompile.Mandos.Client"
CLIENT_IFACE_OLD = "se.bsnet.fukt.Mandos.Client"
SERVER_IFACES = ("se.recompile.Mandos", "se.bsnet.fukt.Mandos")
PROPS_IFACE = "org.freedesktop.DBus.Properties"
INTRO_IFACE = "org.freedesktop.DBus.Introspectable"
OM_IFACE = "org.freedesktop.DBus.ObjectManager"
BUS_NAME = "se.recompile.Mandos"

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?")
TIMESTAMP_OURS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
TIME_PROPERTIES = ("Created", "Expires", "LastApprovalRequest",
                   "LastCheckedOK", "LastEnabled")

failures = []


def fail(message):
    failures.append(message)
    print("FAIL: " + message, flush=True)


def done():
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("all checks passed")
    sys.exit(0)


# ------------------------------------------------------------ introspection

def annotations(element):
    return {a.get("name"): a.get("value")
            for a in element.findall("annotation")}


def args_of(member, kind):
    default_direction = "in" if kind == "method" else "out"
    return [(a.get("direction", default_direction), a.get("type"),
             a.get("name")) for a in member.findall("arg")]


def parse_interfaces(path):
    root = ET.parse(path).getroot()
    interfaces = {}
    for iface in root.findall("interface"):
        members = {}
        for kind in ("method", "signal", "property"):
            for m in iface.findall(kind):
                members[(kind, m.get("name"))] = m
        interfaces[iface.get("name")] = (iface, members)
    children = {n.get("name") for n in root.findall("node")}
    return interfaces, children


def compare_introspection(ref_path, ours_path):
    ref, ref_children = parse_interfaces(ref_path)
    ours, our_children = parse_interfaces(ours_path)
    for name, (ref_iface, ref_members) in ref.items():
        if name not in ours:
            fail("interface %s is missing" % name)
            continue
        our_iface, our_members = ours[name]
        for key, value in annotations(ref_iface).items():
            if annotations(our_iface).get(key) != value:
                fail("interface %s lacks annotation %s=%s"
                     % (name, key, value))
        for (kind, member), ref_m in ref_members.items():
            where = "%s %s.%s" % (kind, name, member)
            our_m = our_members.get((kind, member))
            if our_m is None:
                fail(where + " is missing")
                continue
            if kind == "property":
                for attr in ("type", "access"):
                    if our_m.get(attr) != ref_m.get(attr):
                        fail("%s has %s %r, the reference %r"
                             % (where, attr, our_m.get(attr),
                                ref_m.get(attr)))
            else:
                ref_args = args_of(ref_m, kind)
                our_args = args_of(our_m, kind)
                if [a[:2] for a in ref_args] != [a[:2] for a in our_args]:
                    fail("%s has arguments %s, the reference %s"
                         % (where, our_args, ref_args))
                else:
                    for r, o in zip(ref_args, our_args):
                        if r[2] is not None and r[2] != o[2]:
                            fail("%s names an argument %r, the reference %r"
                                 % (where, o[2], r[2]))
            for key, value in annotations(ref_m).items():
                if annotations(our_m).get(key) != value:
                    fail("%s lacks annotation %s=%s" % (where, key, value))
            # An annotation the reference does not have would change the
            # meaning (e.g. EmitsChangedSignal=false): none allowed.
            for key, value in annotations(our_m).items():
                if key not in annotations(ref_m):
                    fail("%s has annotation %s=%s the reference lacks"
                         % (where, key, value))
    for child in ref_children:
        if child not in our_children:
            fail("child node %s is not listed" % child)
    extra = sorted(set(ours) - set(ref))
    if extra:
        print("additions: " + ", ".join(extra))
    done()


# ------------------------------------------------------------------- layout

def dbus_signature_of(value):
    import dbus
    table = [(dbus.Boolean, "b"), (dbus.Byte, "y"), (dbus.Int16, "n"),
             (dbus.UInt16, "q"), (dbus.Int32, "i"), (dbus.UInt32, "u"),
             (dbus.Int64, "x"), (dbus.UInt64, "t"), (dbus.Double, "d"),
             (dbus.ObjectPath, "o"), (dbus.Signature, "g"),
             (dbus.String, "s")]
    for cls, sig in table:
        if isinstance(value, cls):
            return sig
    return "?%s" % type(value).__name__


def escaped_path(name):
    out = []
    for ch in name.encode():
        c = chr(ch)
        if c.isascii() and (c.isalnum() or c == "_"):
            out.append(c)
        elif c in ".-":
            out.append("_")
        else:
            out.append("_%02x" % ch)
    return "/clients/" + "".join(out)


def check_layout():
    import dbus
    bus = dbus.SystemBus()
    root = bus.get_object(BUS_NAME, "/", introspect=False)
    managed = root.GetManagedObjects(dbus_interface=OM_IFACE)
    if "/" in managed:
        fail("GetManagedObjects lists / itself")
    if not managed:
        fail("GetManagedObjects lists no clients")
    with_props = root.GetAllClientsWithProperties(
        dbus_interface=SERVER_IFACES[0])
    all_clients = root.GetAllClients(dbus_interface=SERVER_IFACES[0])
    old_all_clients = root.GetAllClients(dbus_interface=SERVER_IFACES[1])
    if sorted(all_clients) != sorted(managed):
        fail("GetAllClients %s differs from GetManagedObjects %s"
             % (sorted(all_clients), sorted(managed)))
    if list(all_clients) != list(old_all_clients):
        fail("GetAllClients differs between the two server interfaces")
    if sorted(with_props) != sorted(managed):
        fail("GetAllClientsWithProperties lists other clients")
    expected_ifaces = {CLIENT_IFACE, CLIENT_IFACE_OLD, PROPS_IFACE,
                       INTRO_IFACE}
    for path, ifaces in managed.items():
        if set(ifaces) != expected_ifaces:
            fail("%s lists interfaces %s" % (path, sorted(ifaces)))
            continue
        for empty in (PROPS_IFACE, INTRO_IFACE):
            if dict(ifaces[empty]) != {}:
                fail("%s: %s is not empty" % (path, empty))
        props = dict(ifaces[CLIENT_IFACE])
        if dict(ifaces[CLIENT_IFACE_OLD]) != props:
            fail("%s: the deprecated interface has other values" % path)
        if dict(with_props.get(path, {})) != props:
            fail("%s: GetAllClientsWithProperties differs" % path)
        # Every readable property, of its introspected type; no others.
        obj = bus.get_object(BUS_NAME, path, introspect=False)
        xml = obj.Introspect(dbus_interface=INTRO_IFACE)
        node = ET.fromstring(xml)
        declared = {}
        for iface in node.findall("interface"):
            if iface.get("name") == CLIENT_IFACE:
                for p in iface.findall("property"):
                    declared[p.get("name")] = (p.get("type"), p.get("access"))
        readable = {n for n, (t, a) in declared.items() if "read" in a}
        if set(props) != readable:
            fail("%s: properties %s, readable ones are %s"
                 % (path, sorted(props), sorted(readable)))
        for name, value in props.items():
            if name in declared:
                sig = dbus_signature_of(value)
                if sig != declared[name][0]:
                    fail("%s: %s has type %s, declared %s"
                         % (path, name, sig, declared[name][0]))
            if name in TIME_PROPERTIES and value != "" and \
               not TIMESTAMP_OURS.match(value):
                fail("%s: %s=%r has not six fractional digits"
                     % (path, name, value))
        if props.get("ObjectPath") != path:
            fail("%s: ObjectPath is %r" % (path, props.get("ObjectPath")))
        if escaped_path(str(props.get("Name"))) != path:
            fail("%s: not the escaped path of the name %r"
                 % (path, props.get("Name")))
        for iface in ("", CLIENT_IFACE, CLIENT_IFACE_OLD):
            got = dict(obj.GetAll(iface, dbus_interface=PROPS_IFACE))
            if got != props:
                fail("%s: GetAll(%r) has %s" % (path, iface, sorted(got)))
        for iface in (PROPS_IFACE, INTRO_IFACE):
            got = dict(obj.GetAll(iface, dbus_interface=PROPS_IFACE))
            if got != {}:
                fail("%s: GetAll(%r) is not empty" % (path, iface))
    done()


# -------------------------------------------------------------------- traces

HEADER = re.compile(r"^(signal|method call|method return|error) .*?"
                    r"sender=(\S+) -> .*?(?:path=([^;]*); "
                    r"interface=([^;]*); member=(\S+))?$")
VALUE = re.compile(r"^(?:variant\s+)?(string|boolean|uint64|int64|int16|"
                   r"uint16|int32|uint32|byte|double|object path)\s+(.*)$")


def parse_monitor(path):
    """The signals of a dbus-monitor trace, as dicts; values as (type, text)
    and "[" / "]" for the start and end of arrays."""
    signals = []
    current = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = HEADER.match(line)
            if m:
                current = None
                if m.group(1) == "signal" and m.group(2) != \
                   "org.freedesktop.DBus":
                    current = {"path": m.group(3), "interface": m.group(4),
                               "member": m.group(5), "args": []}
                    signals.append(current)
                continue
            if current is None:
                continue
            s = line.strip()
            if s.startswith("array ["):
                current["args"].append("[")
                if s.endswith("]"):
                    current["args"].append("]")
            elif s == "]":
                current["args"].append("]")
            else:
                v = VALUE.match(s)
                if v:
                    text = v.group(2)
                    if v.group(1) in ("string", "object path") and \
                       text.startswith('"') and text.endswith('"'):
                        text = text[1:-1]
                    current["args"].append((v.group(1), text))
    return signals


def norm_value(value):
    typ, text = value
    if typ == "string" and TIMESTAMP.fullmatch(text):
        return (typ, "<time>")
    return (typ, text)


def changed_of(sig):
    """PropertiesChanged: (interface, [(name, value)], [invalidated])."""
    args = sig["args"]
    iface = args[0][1] if args and args[0] != "[" else None
    changed, invalidated, depth, arrays = [], [], 0, 0
    pending = None
    for a in args[1:]:
        if a == "[":
            depth += 1
            arrays += 1
            continue
        if a == "]":
            depth -= 1
            continue
        if arrays == 1:
            if pending is None:
                pending = a[1]
            else:
                changed.append((pending, a))
                pending = None
        else:
            invalidated.append(a[1])
    return iface, changed, invalidated


def events_of(signals, strict):
    """The story of a trace: ("prop", name, value) for each property change,
    ("invalidated", name), and (member, args) for every other signal, each
    once. strict: also check that each is sent in the reference's form
    (mandos-dbus-api(7), CHANGE SIGNALS): PropertyChanged on both client
    interfaces then one PropertiesChanged for the primary one, every other
    signal on both interfaces, primary first."""
    events = []
    i = 0
    n = len(signals)

    def complain(message):
        if strict:
            fail("at signal %d (%s.%s): %s"
                 % (i, signals[i]["interface"], signals[i]["member"],
                    message))

    while i < n:
        s = signals[i]
        iface, member = s["interface"], s["member"]
        if member == "PropertyChanged":
            if iface != CLIENT_IFACE:
                if iface != CLIENT_IFACE_OLD:
                    complain("PropertyChanged on %s" % iface)
                i += 1
                continue
            name, value = s["args"][0][1], s["args"][1]
            events.append(("prop", name, norm_value(value)))
            if strict:
                nxt = signals[i + 1: i + 3]
                if len(nxt) < 2 or nxt[0]["member"] != "PropertyChanged" \
                   or nxt[0]["interface"] != CLIENT_IFACE_OLD \
                   or nxt[0]["args"] != s["args"]:
                    complain("%s: no PropertyChanged on %s right after"
                             % (name, CLIENT_IFACE_OLD))
                elif nxt[1]["member"] != "PropertiesChanged" or \
                        changed_of(nxt[1]) != (CLIENT_IFACE,
                                               [(name, value)], []):
                    complain("%s: no PropertiesChanged(%s, {%s}, []) next"
                             % (name, CLIENT_IFACE, name))
                else:
                    i += 3
                    continue
            i += 1
            continue
        if member == "PropertiesChanged" and s["path"] == "/":
            # Our own server properties (se.recompile.Mandos.Server).
            piface, changed, invalidated = changed_of(s)
            events.append(("server-prop", piface, tuple(
                (k, norm_value(v)) for k, v in changed)))
            i += 1
            continue
        if member == "PropertiesChanged":
            piface, changed, invalidated = changed_of(s)
            if piface != CLIENT_IFACE:
                complain("PropertiesChanged for %s" % piface)
            if invalidated:
                events.append(("invalidated", tuple(invalidated)))
            if strict and (changed or len(invalidated) != 1):
                complain("a PropertiesChanged not paired with "
                         "PropertyChanged: %s %s" % (changed, invalidated))
            i += 1
            continue
        pair = {CLIENT_IFACE: CLIENT_IFACE_OLD,
                SERVER_IFACES[0]: SERVER_IFACES[1]}
        if iface in pair:
            events.append((member, tuple(norm_value(a) for a in s["args"]
                                         if a not in ("[", "]"))))
            if strict:
                nxt = signals[i + 1] if i + 1 < n else None
                if nxt is None or nxt["interface"] != pair[iface] or \
                   nxt["member"] != member or nxt["args"] != s["args"]:
                    complain("not repeated on %s right after" % pair[iface])
                else:
                    i += 2
                    continue
        elif iface in pair.values():
            if strict:
                complain("on the deprecated interface without the primary "
                         "one right before")
        else:
            events.append((iface + "." + member,
                           tuple(norm_value(a) for a in s["args"]
                                 if a not in ("[", "]"))))
        i += 1
    return events


def format_event(e):
    if e[0] == "prop":
        return "prop %s=%s" % (e[1], e[2][1])
    if e[0] == "invalidated":
        return "invalidated " + ",".join(e[1])
    if e[0] == "server-prop":
        return "server-prop %s %s" % (e[1], ",".join(
            "%s=%s" % (k, v[1]) for k, v in e[2]))
    return "%s(%s)" % (e[0], ", ".join(
        '"%s"' % a[1] if a[0] in ("string", "object path") else a[1]
        for a in e[1]))


def print_events(path):
    """One line per event of our trace (strictly checked), for grep."""
    for e in events_of(parse_monitor(path), strict=True):
        print(format_event(e))
    sys.exit(1 if failures else 0)


def core(events):
    """From the start to the first ApprovalPending=false: one connection's
    story. The reference sets LastApprovalRequest twice around NeedApproval
    (we set it once: docs/REFERENCE-BEHAVIOUR.md, Approval); the second is
    dropped."""
    out = []
    for e in events:
        if e[:2] == ("prop", "LastApprovalRequest") and len(out) >= 2 and \
           out[-1][0] == "NeedApproval" and \
           out[-2][:2] == ("prop", "LastApprovalRequest"):
            continue
        out.append(e)
        if e == ("prop", "ApprovalPending", ("boolean", "false")):
            break
    return out


def compare_traces(ref_path, ours_path):
    ref = core(events_of(parse_monitor(ref_path), strict=False))
    ours_all = events_of(parse_monitor(ours_path), strict=True)
    ours = core(ours_all)
    for e in ours_all:
        if e[0] == "prop" and e[1] in TIME_PROPERTIES and \
           e[2][1] != "" and e[2][1] != "<time>":
            fail("%s=%r is not a timestamp with six fractional digits"
                 % (e[1], e[2][1]))
    for s in parse_monitor(ours_path):
        for a in s["args"]:
            if a != "[" and a[0] == "string" and TIMESTAMP.fullmatch(a[1]) \
               and not TIMESTAMP_OURS.match(a[1]):
                fail("timestamp %r lacks six fractional digits" % a[1])
    print("reference: " + " | ".join(map(format_event, ref)))
    print("ours:      " + " | ".join(map(format_event, ours)))
    if ref != ours:
        fail("the stories differ")
    done()


# ---------------------------------------------------------------- mandos-ctl

def normalize(sort_rows=False):
    lines = [re.sub(r"[ \t]+", " ",
                    TIMESTAMP.sub("<time>", line.rstrip("\n"))).rstrip()
             for line in sys.stdin]
    if sort_rows:
        # The order of clients is the server's dict order, which means
        # nothing (the reference's varies from run to run).
        lines = lines[:1] + sorted(lines[1:])
    for line in lines:
        print(line)


def strip_times(value):
    if isinstance(value, dict):
        return {k: strip_times(v) for k, v in value.items()}
    if isinstance(value, str) and TIMESTAMP.fullmatch(value):
        return "<time>"
    return value


def json_equal(a_path, b_path):
    with open(a_path) as f:
        a = strip_times(json.load(f))
    with open(b_path) as f:
        b = strip_times(json.load(f))
    if a != b:
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                for key in sorted(set(a.get(name, {})) |
                                  set(b.get(name, {}))):
                    va = a.get(name, {}).get(key)
                    vb = b.get(name, {}).get(key)
                    if va != vb:
                        fail("%s.%s: %r vs %r" % (name, key, va, vb))
        if not failures:
            fail("the dumps differ")
    done()


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "introspect" and len(args) == 2:
        compare_introspection(*args)
    elif cmd == "layout" and not args:
        check_layout()
    elif cmd == "trace" and len(args) == 2:
        compare_traces(*args)
    elif cmd == "events" and len(args) == 1:
        print_events(*args)
    elif cmd == "normalize" and not args:
        normalize()
    elif cmd == "normalize" and args == ["--sort-rows"]:
        normalize(sort_rows=True)
    elif cmd == "json-equal" and len(args) == 2:
        json_equal(*args)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
