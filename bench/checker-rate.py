# SPDX-License-Identifier: GPL-3.0-or-later
"""The checker spawn rate alone, as bench.py's scale section measures it.

Starts our server on N clients whose checker is `true` with an interval
that asks for more checkers than the machine can spawn, counts their
CheckerCompleted signals for some seconds, then runs bench/spawn-limit for
as long (Bench.checker_window() and Bench.spawn_limit(), as bench.py does).
Prints the CPU a checker run took in each process, how busy the machine
was, and checkers/s, spawn-limit/s and the ratio.
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
    ap.add_argument("--hook", help="run HOOK SERVER-PID after the count (e.g. a short strace)")
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
        _, stop_counter, wait_announced = b.counter
        perf = None
        try:
            if b.wait_port(p, port, t0, logpath) is None:
                print("not up", file=sys.stderr)
                return 1
            wait_announced(z["start_timeout"])
            time.sleep(3)
            if args.perf:
                perf = subprocess.Popen(["perf", "record", "-g", "--no-inherit", "-o", args.perf, "-p", str(p.pid)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
            w = b.checker_window(p, args.seconds)
            if args.hook:
                subprocess.run([args.hook, str(p.pid)], timeout=60)
            if perf:
                perf.send_signal(2)
                perf.wait(60)
        finally:
            stop_counter()
            b.stop(p, grace=30)
        r = b.spawn_limit(args.seconds)
        rate, ms = w["per_second"], w["cpu_ms"]
        if ms:
            print("CPU ms a checker: ours %.3f (%s), spawn-limit %.3f; with every core busy at most %.2f of "
                  "spawn-limit's rate" % (sum(ms.values()), ", ".join("%s %.3f" % kv for kv in ms.items()),
                                          r["cpu_ms"], bench.cpu_bound_ratio(ms, r["per_second"])))
        print("CPU (cores) " + ", ".join("%s %.2f" % (k, v * rate / 1000) for k, v in ms.items()) +
              "; machine busy %.0f%% of %d cores" % (w["busy"] * 100, os.cpu_count()))
        print("checkers/s %.1f  spawn-limit/s %.1f  ratio %.2f  (%d clients, %s)" % (
            rate, r["per_second"], rate / r["per_second"], n, args.interval), flush=True)
    finally:
        b.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
