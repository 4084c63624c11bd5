#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The persistent state as docs/STATE.md describes it, read independently of
the server: the snapshot clients.json, then the journals clients.journal-N
from the snapshot's "journal" generation on, record by record (CRC-32 of the
JSON, a space, the JSON, a newline). A record cut short is allowed only as
the last thing in a journal (a crash tore it); anything else is an error.

  state_journal.py check DIR [N]        valid; N clients (if given); prints the names' count
  state_journal.py get DIR NAME FIELD   the runtime FIELD of live client NAME after replay
  state_journal.py snapshot DIR NAME FIELD   the same, from the snapshot alone
  state_journal.py records DIR          the journals' records, one JSON per line
"""
import json
import os
import re
import sys
import zlib


def journals(d, since):
    gens = sorted(int(m.group(1)) for f in os.listdir(d) if (m := re.fullmatch(r"clients\.journal-(\d+)", f)))
    return [os.path.join(d, "clients.journal-%d" % g) for g in gens if g >= since]


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if last and line == b"":
            return
        ok = len(line) > 9 and line[8:9] == b" " and int(line[:8], 16) == zlib.crc32(line[9:]) if not last else False
        if not ok:
            if last:
                return  # torn by a crash: ignored, as the server does
            raise ValueError("%s: bad record %d (not torn: more follows)" % (path, i))
        yield json.loads(line[9:])


def load(d, replay=True):
    snap = os.path.join(d, "clients.json")
    if os.path.exists(snap):
        s = json.load(open(snap))
        assert s["format"] == "mandos-state" and s["version"] == 2, "not a version 2 state"
        since = s.get("journal", 0)
        if not since:
            replay = False
    else:
        s = {"clients": [], "removed": []}
        since = 0
    live = {c["name"]: c for c in s["clients"]}
    removed = {c["name"]: c for c in s["removed"]}
    for c in s["clients"]:
        for part in ("config", "runtime"):
            for k in ("key_id", "host", "checker", "timeout", "interval", "enabled"):
                assert k in c[part], (c["name"], part, k)
    if replay:
        for path in journals(d, since):
            for r in records(path):
                op, name = r["op"], r["name"]
                if op == "client":
                    live[name] = r  # in place, or appended: the server's order
                elif op == "times":
                    if name in live:
                        live[name]["runtime"].update({k: v for k, v in r.items() if k not in ("op", "name")})
                elif op == "forget":
                    live.pop(name, None)
                elif op == "removed":
                    removed[name] = r
                elif op == "unremove":
                    removed.pop(name, None)
                else:
                    raise ValueError("unknown record " + op)
    return live, removed


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "check":
        live, _ = load(d)
        if len(sys.argv) > 3:
            assert len(live) == int(sys.argv[3]), "%d clients, not %s" % (len(live), sys.argv[3])
        print(len(live))
    elif cmd in ("get", "snapshot"):
        live, _ = load(d, replay=cmd == "get")
        print(json.dumps(live[sys.argv[3]]["runtime"][sys.argv[4]]))
    elif cmd == "records":
        s = json.load(open(os.path.join(d, "clients.json"))) if os.path.exists(os.path.join(d, "clients.json")) else {}
        for path in journals(d, s.get("journal", 0) or 1):
            for r in records(path):
                print(json.dumps(r))


if __name__ == "__main__":
    sys.exit(main())
