# SPDX-License-Identifier: GPL-3.0-or-later
"""The checker spawn rate alone, as bench.py's scale section measures it.

Starts our server on N clients whose checker is `true` with an interval
that asks for more checkers than the machine can spawn, counts their
CheckerCompleted signals for some seconds, then runs bench/spawn-limit for
as long. Prints one line: checkers/s, spawn-limit/s and the ratio.
  python3 bench/checker-rate.py --build build [--clients N] [--seconds S]
         [--interval PT20S] [--perf FILE]
With --perf, `perf record -g` runs on the server during the count."""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--clients", type=int, default=100000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--interval", default="PT20S")
    ap.add_argument("--perf")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    z = dict(bench.FULL, scale_clients=args.clients, start_timeout=180)
    b = bench.Bench(args, z)
    n = args.clients
    try:
        with open(b.keys, "w") as f:
            subprocess.run([b.load, "keygen", "--count", str(n)], check=True, stdout=f)
        with open(b.keys) as f:
            b.lines = f.read().splitlines()
        last = "/clients/c%05d" % (n - 1)
        p, port, t0, logpath = b.start_server("mandos", "rate", n, watch=last, checker="true",
                                              interval=args.interval, timeout="PT24H")
        count, stop_counter, wait_announced = b.counter
        perf = None
        try:
            if b.wait_port(p, port, t0, logpath) is None:
                print("not up", file=sys.stderr)
                return 1
            wait_announced(z["start_timeout"])
            time.sleep(3)
            if args.perf:
                perf = subprocess.Popen(["perf", "record", "-g", "-o", args.perf, "-p", str(p.pid)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
            w0 = time.monotonic()
            time.sleep(args.seconds)
            w1 = time.monotonic()
            rate = count(w0, w1) / (w1 - w0)
            if perf:
                perf.send_signal(2)
                perf.wait(60)
        finally:
            stop_counter()
            b.stop(p, grace=30)
        r = b.run_json([os.path.join(b.build, "bench", "spawn-limit"), "--seconds", str(args.seconds),
                        "--parallel", "64"], timeout=args.seconds + 60)
        print("checkers/s %.1f  spawn-limit/s %.1f  ratio %.2f  (%d clients, %s)" % (
            rate, r["per_second"], rate / r["per_second"], n, args.interval), flush=True)
    finally:
        b.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
