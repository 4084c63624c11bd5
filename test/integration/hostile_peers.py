#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile peers in bulk, for the test-hostile-*.sh integration tests.

Builds on peers.py (same rules: standard library only, loopback only, every
loop bounded, every socket operation with a timeout). Exit status 0 means
the expected outcome was seen, 1 that it was not, 2 a usage error.

Commands:
  hold    open many bad connections at once (silent ones, ones that stop
          in the middle of the TLS handshake, ones that send random bytes
          after "1\\r\\n"), then report when the server closed each one
  churn   make many short bad connections one after another (connect and
          close, the protocol line and close, an aborted handshake, a bad
          protocol version, an X.509 TLS peer), each waiting for the server
          to close its side
"""

import argparse
import os
import random
import select
import ssl
import sys
import time

from peers import check_loopback, connect, log, wait_closed

# The first 15 bytes of a TLS 1.2 ServerHello record that says it is 122
# bytes long: a handshake that stops here waits for the rest forever.
PARTIAL_SERVER_HELLO = bytes.fromhex("160303007a020000760303") + os.urandom(4)


class Conn:
    def __init__(self, kind, index, sock):
        self.kind = kind
        self.index = index
        self.sock = sock
        self.opened = time.monotonic()
        self.last_sent = self.opened  # the server's deadline runs from here
        self.got_hello = False
        self.result = None            # "eof", "reset", "data" or None (open)
        self.closed = None            # seconds after last_sent

    def send(self, data):
        self.sock.setblocking(True)
        self.sock.settimeout(5.0)
        self.sock.sendall(data)
        self.sock.setblocking(False)
        self.last_sent = time.monotonic()


def open_conns(args, rng):
    """Connect every connection (in order: silent, midhandshake, random) and
    send what each kind sends first."""
    conns = []
    plan = ([("silent", args.silent), ("midhandshake", args.midhandshake),
             ("random", args.random)])
    for kind, count in plan:
        for i in range(count):
            try:
                s = connect(args.address, args.port, 5.0)
            except OSError as e:
                log("connection %s %d failed: %s" % (kind, i, e))
                return None
            c = Conn(kind, len(conns), s)
            s.setblocking(False)
            conns.append(c)
    for c in conns:
        try:
            if c.kind == "midhandshake":
                c.send(b"1\r\n")
            elif c.kind == "random":
                c.send(b"1\r\n" + rng.randbytes(rng.randint(1, 2048)))
        except OSError as e:
            # Closed by the server already (e.g. dropped by its cap).
            c.result, c.closed = "reset", 0.0
            log("send on %s %d failed: %s" % (c.kind, c.index, e))
    return conns


def on_readable(c):
    """Handle data or the end of c. A mid-handshake peer answers the
    server's ClientHello, every other one, with half a ServerHello, then
    goes quiet."""
    try:
        data = c.sock.recv(65536)
    except BlockingIOError:
        return
    except (ConnectionResetError, BrokenPipeError):
        data = None
    except OSError:
        data = None
    if data is None or data == b"":
        c.result = "reset" if data is None else "eof"
        c.closed = time.monotonic() - c.last_sent
        return
    if c.kind == "midhandshake" and not c.got_hello:
        c.got_hello = True
        if c.index % 2 == 0:
            try:
                c.send(PARTIAL_SERVER_HELLO)
            except OSError:
                pass
    elif c.kind == "silent":
        c.result = "data"  # a silent peer must never be sent anything
        c.closed = time.monotonic() - c.last_sent


def cmd_hold(args):
    check_loopback(args.address)
    rng = random.Random(args.seed)
    conns = open_conns(args, rng)
    if conns is None:
        return 1
    log("ready %d" % len(conns))
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("%d\n" % len(conns))

    poller = select.poll()
    byfd = {}
    for c in conns:
        if c.result is None:
            poller.register(c.sock.fileno(), select.POLLIN | select.POLLERR
                            | select.POLLHUP)
            byfd[c.sock.fileno()] = c
    end = time.monotonic() + args.deadline + 10  # a bound; the real test is below
    while byfd and time.monotonic() < end:
        for fd, _ in poller.poll(200):
            c = byfd[fd]
            on_readable(c)
            if c.result is not None:
                poller.unregister(fd)
                del byfd[fd]
        # Each connection's own deadline, counted from its last byte sent.
        now = time.monotonic()
        if all(now - c.last_sent > args.deadline for c in byfd.values()):
            break

    status = 0
    for kind in ("silent", "midhandshake", "random"):
        mine = [c for c in conns if c.kind == kind]
        if not mine:
            continue
        counts = {}
        for c in mine:
            what = c.result or "open"
            counts[what] = counts.get(what, 0) + 1
            if c.result not in ("eof", "reset") or c.closed > args.deadline:
                status = 1
        times = [c.closed for c in mine if c.closed is not None]
        hellos = sum(c.got_hello for c in mine)
        log("%s: %s%s%s" % (
            kind, " ".join("%s=%d" % kv for kv in sorted(counts.items())),
            " closed %.2f..%.2f s after their last byte" % (min(times), max(times))
            if times else "",
            " (%d got a ClientHello)" % hellos if kind == "midhandshake" else ""))
        if kind == "midhandshake" and hellos < len(mine):
            status = 1
    if args.early is not None:
        early = [c.index for c in conns
                 if c.closed is not None and c.closed < args.early]
        log("closed within %.1f s: %s" % (args.early, " ".join(map(str, early))))
    for c in conns:
        c.sock.close()
    return status


def churn_one(kind, args, rng, ctx):
    """One short connection of this kind; returns how it ended."""
    s = connect(args.address, args.port, 5.0)
    try:
        if kind == "close":
            return "closed"
        if kind == "line":
            s.sendall(b"1\r\n")
            return "closed"
        if kind == "hello":
            s.sendall(b"1\r\n")
            s.settimeout(5.0)
            return "hello" if s.recv(1) else "eof"
        if kind == "badversion":
            s.sendall(b"%d\r\n" % rng.randint(2, 10**6))
            return wait_closed(s, time.monotonic() + 5.0)[0]
        if kind == "x509":
            s.sendall(b"1\r\n")
            s.settimeout(5.0)
            try:
                tls = ctx.wrap_socket(s, server_side=True)
            except (ssl.SSLError, OSError):
                return "refused"
            # TLS 1.3: the server may reject the certificate only after the
            # handshake, as the reference does; it must send nothing then.
            try:
                data = tls.recv(65536)
            except (ssl.SSLError, OSError):
                data = b""
            tls.close()
            return "refused-after-handshake" if not data else "got-data"
        raise ValueError(kind)
    finally:
        s.close()


def cmd_churn(args):
    check_loopback(args.address)
    rng = random.Random(args.seed)
    kinds = []
    for spec in args.kinds.split(","):
        kind, _, n = spec.partition("=")
        kinds += [kind] * int(n)
    rng.shuffle(kinds)
    ctx = None
    if "x509" in kinds:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    outcomes = {}
    start = time.monotonic()
    for kind in kinds:
        try:
            what = churn_one(kind, args, rng, ctx)
        except OSError as e:
            what = "error:%s" % type(e).__name__
        key = "%s/%s" % (kind, what)
        outcomes[key] = outcomes.get(key, 0) + 1
    log("%d connections in %.1f s: %s" % (
        len(kinds), time.monotonic() - start,
        " ".join("%s=%d" % kv for kv in sorted(outcomes.items()))))
    bad = [k for k in outcomes
           if "error:" in k or k.endswith("/got-data") or k.endswith("/open")]
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def target(sp):
        sp.add_argument("--address", default="127.0.0.1")
        sp.add_argument("--port", type=int, required=True)
        sp.add_argument("--seed", type=int, default=9)

    sp = sub.add_parser("hold")
    target(sp)
    sp.add_argument("--silent", type=int, default=0)
    sp.add_argument("--midhandshake", type=int, default=0)
    sp.add_argument("--random", type=int, default=0)
    sp.add_argument("--deadline", type=float, default=15.0,
                    help="seconds each may stay open after its last byte")
    sp.add_argument("--ready-file")
    sp.add_argument("--early", type=float,
                    help="also list the connections closed within EARLY s")

    sp = sub.add_parser("churn")
    target(sp)
    sp.add_argument("--kinds", required=True,
                    help="KIND=N,...: close, line, hello, badversion, x509")
    sp.add_argument("--cert")
    sp.add_argument("--key")

    args = p.parse_args()
    return {"hold": cmd_hold, "churn": cmd_churn}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
