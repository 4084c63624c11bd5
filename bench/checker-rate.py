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
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def machine_busy():
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return str(pid)


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
        count, stop_counter, wait_announced = b.counter
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
            watched = [q for q in b.pids if q != p.pid] + [p.pid]
            c0 = {q: bench.cpu_seconds(q) for q in watched}
            k0 = bench.cpu_seconds(p.pid, True)
            names = {q: comm(q) for q in watched}
            n0, w0, m0 = count(), time.monotonic(), machine_busy()
            time.sleep(args.seconds)
            n1, w1, m1 = count(), time.monotonic(), machine_busy()
            cpus = {names[q]: (bench.cpu_seconds(q) - c0[q]) / (w1 - w0) for q in watched}
            cpus["checkers"] = (bench.cpu_seconds(p.pid, True) - k0) / (w1 - w0)
            rate = (n1 - n0) / (w1 - w0)
            if args.hook:
                subprocess.run([args.hook, str(p.pid)], timeout=60)
            if perf:
                perf.send_signal(2)
                perf.wait(60)
        finally:
            stop_counter()
            b.stop(p, grace=30)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = b.run_json([os.path.join(b.build, "bench", "spawn-limit"), "--seconds", str(args.seconds),
                        "--parallel", "64"], timeout=args.seconds + 60)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        lim_ms = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) * 1000 / r["completed"]
        ours_ms = sum(cpus.values()) * 1000 / rate if rate else 0
        print("CPU ms a checker: ours %.3f (all processes below), spawn-limit %.3f; with every core busy "
              "at most %.2f of spawn-limit's rate" % (
                  ours_ms, lim_ms, os.cpu_count() * 1000 / ours_ms / r["per_second"] if ours_ms else 0))
        print("CPU (cores) " + ", ".join("%s %.2f" % (q, c) for q, c in cpus.items()) +
              "; machine busy %.0f%% of %d cores" % ((m1[0] - m0[0]) * 100 / (m1[1] - m0[1]), os.cpu_count()))
        print("checkers/s %.1f  spawn-limit/s %.1f  ratio %.2f  (%d clients, %s)" % (
            rate, r["per_second"], rate / r["per_second"], n, args.interval), flush=True)
    finally:
        b.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
