#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""A steady load of cheap Mandos connections, for the restart test.

usage: connect_load.py ADDRESS PORT RATE SECONDS OUT

Opens RATE connections a second to ADDRESS:PORT for SECONDS seconds, on a
fixed schedule (each in a thread of its own, so that a slow answer delays
no later connection). Each connection sends the protocol line "1\\r\\n" and
reads until the server's first bytes: the server, the TLS client of the
protocol, then sends its ClientHello (a TLS handshake record, first byte
0x16), which proves that a server took the connection and handled it. The
connection is then closed (the server sees a handshake cut short).

Each connection ends in one of:
  handled          the server's ClientHello arrived
  refused          connect() was refused (nobody listening)
  reset            the connection was reset before any byte came
  eof              the connection was closed before any byte came (lost)
  timeout          nothing within 20 s
  unexpected:HEX   other bytes came first
  error:ERRNO      anything else

OUT gets one line per connection: "START_MS END_MS OUTCOME" (milliseconds
since the first connection); standard output gets "OUTCOME COUNT" lines,
then "total N" and "t0 MS", the wall clock time (milliseconds since the
epoch) of the first connection.
"""

import errno
import socket
import sys
import threading
import time

WAIT = 20.0


def exchange(addr, port):
    """One connection's outcome (see above)."""
    try:
        with socket.create_connection((addr, port), timeout=WAIT) as s:
            s.sendall(b"1\r\n")
            data = s.recv(5)
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "error:" + errno.errorcode.get(e.errno, str(e.errno))
    if data[:1] == b"\x16":
        return "handled"
    return "unexpected:" + data.hex() if data else "eof"


def one(addr, port, t0, results, index):
    start = time.monotonic()
    outcome = exchange(addr, port)
    end = time.monotonic()
    results[index] = (int((start - t0) * 1000), int((end - t0) * 1000), outcome)


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    addr, port = sys.argv[1], int(sys.argv[2])
    rate, seconds, out = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    n = int(rate * seconds)
    results = [None] * n
    threads = []
    t0 = time.monotonic()
    t0_wall = time.time()
    for i in range(n):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=one, args=(addr, port, t0, results, i), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(WAIT + 5)
    counts = {}
    with open(out, "w") as f:
        for r in results:
            if r is None:
                r = (-1, -1, "unfinished")
            f.write("%d %d %s\n" % r)
            counts[r[2]] = counts.get(r[2], 0) + 1
    for outcome in sorted(counts):
        print(outcome, counts[outcome])
    print("total", n)
    print("t0", int(t0_wall * 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
