#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Misbehaving peers for the mandos integration tests.

Run with Debian's /usr/bin/python3 (standard library only). Every command
connects only to the address it is given, every loop is bounded and every
socket operation has a timeout. Exit status 0 means the expected outcome was
seen, 1 that it was not, 2 a usage error.

Commands:
  free-port                 print a free TCP port on loopback
  silent                    hold N connections that send nothing; report
                            when (and whether) the server closes each one
  send                      send some bytes, then report how the server
                            ended the connection (EOF, reset, or not at all)
  x509-tls                  send "1\\r\\n", then act as a TLS server with an
                            X.509 certificate (the server expects a raw
                            public key) and report what happened
  listen-exec               bind+listen on ADDRESS:PORT, put the listening
                            socket on fd N and exec a command
"""

import argparse
import errno
import os
import select
import signal
import socket
import ssl
import sys
import time

LOOPBACK = {"::1", "127.0.0.1", "localhost"}


def log(*args):
    print(*args, flush=True)


def family_of(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def check_loopback(address):
    if address not in LOOPBACK and not address.startswith("127."):
        sys.exit("peers.py: refusing to talk to non-loopback address %r"
                 % address)


def connect(address, port, timeout):
    s = socket.socket(family_of(address), socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((address, port))
    return s


def wait_closed(s, deadline):
    """Wait until the peer closes s, or until time.monotonic() > deadline.

    Returns ("eof", n) / ("reset", n) / ("open", n), n = bytes received."""
    received = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "open", received
        s.settimeout(min(left, 1.0))
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return "reset", received
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
                return "reset", received
            raise
        if not data:
            return "eof", received
        received += len(data)


# ------------------------------------------------------------------ commands

def cmd_free_port(args):
    # Bind the IPv6 wildcard with dual stack, so the port is free for both
    # families on this host (the server listens on [::] dual stack).
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", 0))
    port = s.getsockname()[1]
    s.close()
    print(port)
    return 0


def cmd_silent(args):
    """Open COUNT connections, send nothing, print 'ready', then wait up to
    DEADLINE seconds (from the moment each connection was made) for the
    server to close every one of them."""
    check_loopback(args.address)
    socks = []
    opened = []
    for i in range(args.count):
        try:
            s = connect(args.address, args.port, 5.0)
        except OSError as e:
            log("connection %d failed: %s" % (i, e))
            return 1
        socks.append(s)
        opened.append(time.monotonic())
    log("ready %d" % len(socks))
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("%d\n" % len(socks))

    # Wait for all of them at once: poll the sockets for readability.
    results = [None] * len(socks)
    closed_at = [None] * len(socks)
    end = max(opened) + args.deadline
    poller = select.poll()
    fdmap = {}
    for i, s in enumerate(socks):
        s.setblocking(False)
        poller.register(s.fileno(), select.POLLIN | select.POLLERR
                        | select.POLLHUP)
        fdmap[s.fileno()] = i
    pending = len(socks)
    while pending and time.monotonic() < end:
        left_ms = max(1, int((end - time.monotonic()) * 1000))
        for fd, ev in poller.poll(min(left_ms, 1000)):
            i = fdmap[fd]
            if results[i] is not None:
                continue
            try:
                data = socks[i].recv(4096)
                what = "eof" if not data else "data"
            except (ConnectionResetError, BrokenPipeError):
                what = "reset"
            except BlockingIOError:
                continue
            except OSError as e:
                what = "error:" + (errno.errorcode.get(e.errno) or str(e))
            results[i] = what
            closed_at[i] = time.monotonic() - opened[i]
            poller.unregister(fd)
            pending -= 1

    status = 0
    counts = {}
    for i, what in enumerate(results):
        what = what or "open"
        counts[what] = counts.get(what, 0) + 1
        if what not in ("eof", "reset"):
            status = 1
    times = [t for t in closed_at if t is not None]
    log("results %s" % " ".join("%s=%d" % kv for kv in sorted(counts.items())))
    if times:
        log("closed after %.2f..%.2f s" % (min(times), max(times)))
    for s in socks:
        s.close()
    return status


def cmd_send(args):
    """Connect, send DATA (or SIZE bytes of filler without newline), then
    report how the server ended the connection within WAIT seconds.

    Prints 'result <eof|reset|open> received=<n> sent=<n> send_error=<e>
    elapsed=<s>'. Exit 0 iff the server closed the connection in time (and,
    with --expect-reset, did so without reading all that was sent)."""
    check_loopback(args.address)
    if args.size:
        payload = b"A" * args.size
    else:
        payload = args.data.encode("latin-1").decode("unicode_escape") \
                                 .encode("latin-1")
    start = time.monotonic()
    s = connect(args.address, args.port, 5.0)
    deadline = start + args.wait
    sent = 0
    send_error = "none"
    view = memoryview(payload)
    while sent < len(payload) and time.monotonic() < deadline:
        s.settimeout(max(0.01, min(1.0, deadline - time.monotonic())))
        try:
            sent += s.send(view[sent:sent + 65536])
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError) as e:
            send_error = errno.errorcode.get(e.errno, str(e))
            break
    if send_error == "none" and sent < len(payload):
        send_error = "timeout"
    if send_error in ("ECONNRESET", "EPIPE"):
        how, received = "reset", 0
    else:
        how, received = wait_closed(s, deadline)
    elapsed = time.monotonic() - start
    s.close()
    log("result %s received=%d sent=%d send_error=%s elapsed=%.2f"
        % (how, received, sent, send_error, elapsed))
    if how == "open":
        return 1
    if args.expect_reset and how != "reset":
        return 1
    if args.max_received is not None and received > args.max_received:
        return 1
    return 0


def cmd_x509_tls(args):
    """Send the protocol line, then be a TLS *server* presenting an X.509
    certificate. The Mandos server (TLS client) demands a raw public key,
    so it must fail the handshake or reject the certificate; either way it
    must send no application data and close the connection.

    Prints 'handshake ok|failed: <reason>' and 'result <eof|reset|open>
    received=<n>'. Exit 0 iff no application data arrived and the
    connection was closed within WAIT seconds."""
    check_loopback(args.address)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    start = time.monotonic()
    deadline = start + args.wait
    raw = connect(args.address, args.port, 5.0)
    raw.sendall(b"1\r\n")
    raw.settimeout(max(0.1, deadline - time.monotonic()))
    received = 0
    try:
        tls = ctx.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError) as e:
        log("handshake failed: %s" % e)
        how, received = wait_closed(raw, deadline)
        raw.close()
    else:
        log("handshake ok: %s %s" % (tls.version(), tls.cipher()))
        how = "open"
        while time.monotonic() < deadline:
            tls.settimeout(max(0.1, min(1.0, deadline - time.monotonic())))
            try:
                data = tls.recv(65536)
            except socket.timeout:
                continue
            except ssl.SSLZeroReturnError:
                how = "eof"
                break
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                how = "reset"
                break
            if not data:
                how = "eof"
                break
            received += len(data)
        tls.close()
    log("result %s received=%d elapsed=%.2f"
        % (how, received, time.monotonic() - start))
    return 0 if how != "open" and received == 0 else 1


def cmd_listen_exec(args):
    """Listen on ADDRESS:PORT, make the listening socket fd FD (inheritable)
    and exec COMMAND. The socket is what systemd would pass."""
    check_loopback(args.address)
    if not args.command:
        sys.exit("listen-exec: no command")
    command = args.command
    if command[0] == "--":
        command = command[1:]
    s = socket.socket(family_of(args.address), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.address, args.port))
    s.listen(args.backlog)
    fd = s.fileno()
    if fd != args.fd:
        os.dup2(fd, args.fd, inheritable=True)
        s.close()
    else:
        os.set_inheritable(fd, True)
    # Python ignores SIGPIPE; give the server the default dispositions.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.execv(command[0], command)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    sub.add_parser("free-port")

    def target(sp):
        sp.add_argument("--address", default="::1")
        sp.add_argument("--port", type=int, required=True)

    sp = sub.add_parser("silent")
    target(sp)
    sp.add_argument("--count", type=int, default=50)
    sp.add_argument("--deadline", type=float, default=15.0,
                    help="seconds each connection may stay open")
    sp.add_argument("--ready-file")

    sp = sub.add_parser("send")
    target(sp)
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("--data", help="bytes to send (Python escapes allowed)")
    g.add_argument("--size", type=int, help="send SIZE bytes, no newline")
    sp.add_argument("--wait", type=float, default=12.0)
    sp.add_argument("--expect-reset", action="store_true",
                    help="fail unless the server closed with data unread")
    sp.add_argument("--max-received", type=int)

    sp = sub.add_parser("x509-tls")
    target(sp)
    sp.add_argument("--cert", required=True)
    sp.add_argument("--key", required=True)
    sp.add_argument("--wait", type=float, default=12.0)

    sp = sub.add_parser("listen-exec")
    target(sp)
    sp.add_argument("--fd", type=int, default=3)
    sp.add_argument("--backlog", type=int, default=16)
    sp.add_argument("command", nargs=argparse.REMAINDER)

    args = p.parse_args()
    handler = {
        "free-port": cmd_free_port,
        "silent": cmd_silent,
        "send": cmd_send,
        "x509-tls": cmd_x509_tls,
        "listen-exec": cmd_listen_exec,
    }[args.cmd]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
