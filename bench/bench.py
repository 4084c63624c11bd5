# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmark: mandos against the reference server, side by side, in one run.

Run by bench/run (which installs what it needs and builds first). For each
server, on the same generated clients (the same keys and secrets):

  throughput   fetches/s and p50/p99 latency at concurrency 1, 10, 50, 200,
               by bench/mandos-load (the client's side of the wire protocol,
               without its OpenPGP work), 100 clients configured;
  start-up     time from exec until the port accepts a connection, and the
               memory at idle after it: RSS of the server process, PSS summed
               over its process tree, with 1, 1,000 and 10,000 clients;
  storm        10,000 clients whose checker is `sleep 1`, interval 1 minute:
               for the first minute after the port answers, the process count
               and PSS of the tree each second, and a fetch every 2 seconds;
  limit        bench/limit-server (accept, fork, TLS handshake, send the
               secret: nothing else) under the same throughput load, and
               bench/handshake-rate (the same handshakes, both ends in one
               thread: what one core can do);
  scale        ours alone (the reference would take minutes to start), with
               100,000 clients whose checker is `true`:
               - start-up (the port answers, then the first fetch served),
                 RSS and peak RSS (VmHWM) of the server process, PSS of the
                 tree, after an idle pause;
               - on that server (interval so that some 1,500 checkers
                 complete a minute), one minute: fetch latency at
                 concurrency 1, then at 50, and the checkers completed in
                 that minute (their CheckerCompleted signals);
               - another server on the same clients with an interval that
                 asks for more checkers than two cores can spawn: checkers
                 completed per second (bench/signal-count counts the
                 signals) and the CPU a checker run took in each process
                 (server, checkers, bus daemon, counter), then
                 bench/spawn-limit (posix_spawn and reap `sh -c true`, 64 at
                 a time: the limit) on its own, with its CPU a run.

Prints a table with the ratios and writes everything as JSON. Both servers
run as root here and drop privileges as they do in production, with D-Bus on
a private system bus each, no Zeroconf, and without --debug (no per-fetch
log lines). Only ::1 receives traffic; every process started is stopped by its
PID.
"""

import argparse
import base64
import glob
import json
import os
import platform
import pwd
import queue
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

FULL = dict(tp_clients=100, concurrencies=[1, 10, 50, 200], tp_seconds=5,
            sizes=[1, 1000, 10000], storm_clients=10000, storm_seconds=60,
            fetch_every=2.0, handshake_seconds=5, start_timeout=180,
            scale_clients=100000, scale_idle=10, scale_latency_seconds=30, scale_fetch_clients=1000,
            scale_checkers_per_min=3000, scale_spawn_interval="PT20S", scale_spawn_seconds=30)
SMOKE = dict(tp_clients=10, concurrencies=[1, 10], tp_seconds=1,
             sizes=[1, 20], storm_clients=50, storm_seconds=4,
             fetch_every=1.0, handshake_seconds=1, start_timeout=60,
             scale_clients=200, scale_idle=1, scale_latency_seconds=2, scale_fetch_clients=10,
             scale_checkers_per_min=3000, scale_spawn_interval="PT1S", scale_spawn_seconds=2)

# The project's performance targets (README.md, Benchmark), checked on the
# numbers of this run.
TARGETS = [
    ("throughput at concurrency 1 >= 20x the reference", "ratio_ref", ("fetches_per_s", 1), 20, ">="),
    ("throughput at concurrency 50 >= 10x the reference", "ratio_ref", ("fetches_per_s", 50), 10, ">="),
    ("throughput at concurrency 50 >= 0.8x the limit", "ratio_limit", ("fetches_per_s", 50), 0.8, ">="),
    ("p99 latency at concurrency 50 <= 1/10 of the reference's", "ratio_ref", ("p99_ms", 50), 0.1, "<="),
    ("start-up with 10,000 clients < 1 s", "ours", ("startup_s", 10000), 1.0, "<"),
    ("RSS with 10,000 clients < 64 MB", "ours", ("rss_mb", 10000), 64, "<"),
    # The server, its root launcher (src/launcher.h) and the checkers.
    ("checker storm: processes <= 2 + checker cap (66)", "ours", ("storm_max_procs", None), 66, "<="),
    ("checker storm: slowest fetch < 1 s", "ours", ("storm_fetch_max_s", None), 1.0, "<"),
    ("checker storm: real mandos-client fetch < 1 s", "ours", ("storm_real_fetch_s", None), 1.0, "<"),
    # 100,000 clients; the reference is not measured there.
    ("start-up with 100,000 clients < 1 s", "ours", ("startup_s", "100,000"), 1.0, "<"),
    ("100,000 clients: per-client RSS beyond the secret < 512 bytes", "ours", ("scale_overhead_b", None), 512, "<"),
    ("100,000 clients: peak RSS during start-up <= 1.5x the steady RSS", "ours", ("scale_peak_ratio", None), 1.5,
     "<="),
    ("100,000 clients: >= 1,000 checkers completed in the latency minute", "ours", ("scale_checkers_per_min", None),
     1000, ">="),
    ("100,000 clients: max fetch latency at concurrency 1 < 50 ms", "ours", ("scale_max_ms", 1), 50, "<"),
    ("100,000 clients: checkers completed/s >= 0.8x the posix_spawn loop", "ratio_limit",
     ("scale_checkers_per_s", None), 0.8, ">="),
]

# The most PSS a server's process tree may take in the checker storm.
STORM_PSS_CAP_MB = 6000
STORM_MIN_AVAILABLE_MB = 4000


def mem_available_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


MANDOS_CLIENT = next(iter(sorted(glob.glob("/usr/lib/*/mandos/plugins.d/mandos-client"))),
                     "/usr/lib/mandos/plugins.d/mandos-client")


def cpu_seconds(pid, children=False):
    """CPU seconds (user + system) a process has used, its threads included;
    with children, those of its reaped children. 0 if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        i = 13 if children else 11
        return (int(fields[i]) + int(fields[i + 1])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0


def cpu_bound_ratio(cpu_ms, limit_per_s):
    """The highest ratio to the limit's rate a checker run costing cpu_ms
    ({process: ms}) allows: every core busy with nothing but checker runs."""
    return os.cpu_count() * 1000 / sum(cpu_ms.values()) / limit_per_s


def machine_busy():
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def log(msg):
    print("# " + msg, flush=True)


class Bench:
    def __init__(self, args, sizes):
        self.args = args
        self.z = sizes
        self.build = os.path.abspath(args.build)
        self.src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.work = tempfile.mkdtemp(prefix="mandos-bench.")
        os.chmod(self.work, 0o755)
        self.pids = []          # every process started, to stop at the end
        # gpg-agents daemonize away from whoever started them (the reference
        # server, mandos-keygen, mandos-client): those in GnuPG homes made
        # during the run are stopped at the end (stop_agents).
        self.homes_before = set(self.gnupg_homes())
        self.load = os.path.join(self.build, "bench", "mandos-load")
        self.keys = os.path.join(self.work, "keys.txt")
        self.lines = []

    # ------------------------------------------------------------ helpers

    def run_json(self, cmd, timeout):
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout).stdout
        return json.loads(out.strip().splitlines()[-1])

    def free_port(self):
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            return s.getsockname()[1]

    def keygen(self):
        n = max(self.z["sizes"] + [self.z["storm_clients"], self.z["tp_clients"], self.z["scale_clients"]])
        with open(self.keys, "w") as f:
            subprocess.run([self.load, "keygen", "--count", str(n)], check=True, stdout=f)
        with open(self.keys) as f:
            self.lines = f.read().splitlines()
        log("%d clients generated" % len(self.lines))
        # One real client (OpenPGP + TLS keys by mandos-keygen) for the storm.
        self.real = os.path.join(self.work, "real")
        os.makedirs(self.real)
        self.real_secret = b"mandos bench: the real client's password"
        with open(os.path.join(self.real, "secret"), "wb") as f:
            f.write(self.real_secret)
        subprocess.run(["mandos-keygen", "--dir", self.real, "--force"], check=True, capture_output=True)
        self.real_section = subprocess.run(
            ["mandos-keygen", "--dir", self.real, "--password", "--passfile", os.path.join(self.real, "secret"),
             "--name", "real"], check=True, capture_output=True, text=True).stdout
        with open(os.path.join(self.real, "dhparams.pem"), "w") as f:
            subprocess.run(["certtool", "--generate-dh-params", "--sec-param=medium"], check=True, stdout=f,
                           stderr=subprocess.DEVNULL)

    def confdir(self, name, n, checker="true", interval="1d", timeout="2d", extra=""):
        """A configuration directory with the first n clients (and the extra text)."""
        d = os.path.join(self.work, name)
        os.makedirs(d, mode=0o755)
        with open(os.path.join(d, "mandos.conf"), "w") as f:
            f.write("[DEFAULT]\n")
        with open(os.path.join(d, "clients.conf"), "w") as f:
            f.write("[DEFAULT]\nchecker = %s\ninterval = %s\ntimeout = %s\n\n" % (checker, interval, timeout))
            for i, line in enumerate(self.lines[:n]):
                key_id, _, _, secret = line.split()
                f.write("[c%05d]\nkey_id = %s\nfingerprint = %s\nsecret = %s\n\n" % (
                    i, key_id, key_id[:40].upper(), base64.b64encode(bytes.fromhex(secret)).decode()))
            f.write(extra)
        for fn in ("mandos.conf", "clients.conf"):
            os.chmod(os.path.join(d, fn), 0o644)
        return d

    def statedir(self, name):
        d = os.path.join(self.work, name + "-state")
        os.makedirs(d)
        try:
            pw = pwd.getpwnam("_mandos")
            os.chown(d, pw.pw_uid, pw.pw_gid)
        except KeyError:
            os.chmod(d, 0o777)
        return d

    def start_bus(self, name):
        d = os.path.join(self.work, "bus-" + name)
        os.makedirs(os.path.join(d, "system.d"))
        os.chmod(d, 0o755)
        shutil.copy(os.path.join(self.src, "dbus", "se.recompile.Mandos.conf"), os.path.join(d, "system.d"))
        # The tests' private-bus configuration (test/integration/lib.sh).
        with open(os.path.join(self.src, "test", "private-bus.conf.in")) as f:
            conf = f.read().replace("@DIR@", d)
        with open(os.path.join(d, "bus.conf"), "w") as f:
            f.write(conf + "</busconfig>\n")
        out = subprocess.run(["dbus-daemon", "--config-file=" + os.path.join(d, "bus.conf"), "--fork",
                              "--print-pid"], check=True, capture_output=True, text=True).stdout
        self.bus_pid = int(out.split()[0])
        self.pids.append(self.bus_pid)
        for _ in range(100):
            if os.path.exists(os.path.join(d, "system_bus_socket")):
                break
            time.sleep(0.05)
        return "unix:path=%s/system_bus_socket" % d

    def server_cmd(self, which, conf, state, port):
        if which == "mandos":
            return [os.path.join(self.build, "src", "mandos"), "--foreground", "--no-zeroconf",
                    "--configdir", conf, "--statedir", state, "--address", "::1", "--port", str(port)]
        if which == "reference":
            return [self.args.reference, "--foreground", "--no-zeroconf",
                    "--configdir", conf, "--statedir", state, "--address", "::1", "--port", str(port)]
        return [os.path.join(self.build, "bench", "limit-server"), "--keys", conf, "--port", str(port)]

    def start_server(self, which, name, n, watch=None, **conf_args):
        """Start a server on n clients; returns (Popen, port, start time, log path).
        watch: the object path of the last client, to watch its bus from
        before the server starts (self.counter, see checker_counter)."""
        port = self.free_port()
        if which == "limit":
            conf = os.path.join(self.work, name + "-keys.txt")
            with open(conf, "w") as f:
                f.write("\n".join(self.lines[:n]) + "\n")
            state = None
        else:
            conf = self.confdir(name, n, **conf_args)
            state = self.statedir(name)
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "JOURNAL_STREAM", "WATCHDOG_USEC")}
        if which != "limit":
            env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus_address = self.start_bus(name)
            if watch:
                self.counter = self.checker_counter(watch)
            # The reference's temporary files (pymp-*) stay in its own directory.
            env["TMPDIR"] = state
        logpath = os.path.join(self.work, name + ".log")
        with open(logpath, "w") as logf:
            t0 = time.monotonic()
            p = subprocess.Popen(self.server_cmd(which, conf, state, port), stdin=subprocess.DEVNULL,
                                 stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.pids.append(p.pid)
        return p, port, t0, logpath

    def wait_port(self, p, port, t0, logpath):
        """Seconds from t0 until the port accepts a connection; None if it
        did not within start_timeout."""
        deadline = t0 + self.z["start_timeout"]
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError("server exited with %s before listening; log:\n%s" % (
                    p.returncode, open(logpath).read()[-2000:]))
            try:
                with socket.create_connection(("::1", port), timeout=1):
                    return time.monotonic() - t0
            except OSError:
                time.sleep(0.01)
        return None

    @staticmethod
    def tree(pid):
        """pid and all its descendants."""
        children = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
        out, todo = [], [pid]
        while todo:
            q = todo.pop()
            out.append(q)
            todo.extend(children.get(q, []))
        return out

    @staticmethod
    def rss_mb(pid, field="VmRSS:"):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith(field):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def pss_mb(self, pid):
        total = 0
        for q in self.tree(pid):
            try:
                with open("/proc/%d/smaps_rollup" % q) as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
                            break
            except OSError:
                pass
        return total / 1024

    @staticmethod
    def kill_pids(pids):
        for q in pids:
            try:
                os.kill(q, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def kill_tree(self, p):
        """SIGKILL the server and every descendant, by PID, now."""
        self.kill_pids(self.tree(p.pid))
        p.wait()

    def stop(self, p, grace=10):
        """SIGTERM the server, then SIGKILL; and every descendant left, by PID."""
        if p.poll() is not None:
            return
        rest = self.tree(p.pid)[1:]
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        self.kill_pids(rest)

    @staticmethod
    def gnupg_homes():
        """Temporary GnuPG homes: the reference's, mandos-keygen's, mandos-client's."""
        return glob.glob("/tmp/mandos-????????") + glob.glob("/tmp/mandos??????") + \
            glob.glob("/tmp/mandos-keygen-keyrings.*")

    def stop_agents(self):
        """Stop, by PID, the gpg-agents of GnuPG homes made since the start, and remove the homes."""
        new = set(self.gnupg_homes()) - self.homes_before
        for pid in [int(d) for d in os.listdir("/proc") if d.isdigit()]:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if os.path.basename(argv[0]) == b"gpg-agent" and any(h.encode() in argv for h in new):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for h in new:
            shutil.rmtree(h, ignore_errors=True)

    def cleanup(self):
        self.stop_agents()
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def fetch_load(self, port, n_clients, concurrency, seconds=None, count=None, timeout=10):
        cmd = [self.load, "run", "--keys", self.keys, "--port", str(port), "--clients", str(n_clients),
               "--concurrency", str(concurrency), "--timeout", str(timeout)]
        cmd += ["--seconds", str(seconds)] if seconds else ["--count", str(count)]
        return self.run_json(cmd, timeout=(seconds or 0) + timeout * 3 + 30)

    def real_fetch(self, port):
        """Seconds Debian's mandos-client takes to get and decrypt its
        password, or None if it did not within 30 s."""
        k = self.real
        cmd = [MANDOS_CLIENT, "--connect=[::1]:%d" % port, "--interface=none",
               "--pubkey=%s/pubkey.txt" % k, "--seckey=%s/seckey.txt" % k,
               "--tls-pubkey=%s/tls-pubkey.pem" % k, "--tls-privkey=%s/tls-privkey.pem" % k,
               "--dh-params=%s/dhparams.pem" % k]
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        self.pids.append(p.pid)
        try:
            out, _ = p.communicate(timeout=30)
            t = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            p.kill()
            out, t = p.communicate()[0], None
        return t if t is not None and p.returncode == 0 and out == self.real_secret else None

    # --------------------------------------------------------- measurements

    def throughput(self, which):
        n = self.z["tp_clients"]
        p, port, t0, logpath = self.start_server(which, which + "-tp", n)
        try:
            if self.wait_port(p, port, t0, logpath) is None:
                raise RuntimeError("%s did not listen within %d s" % (which, self.z["start_timeout"]))
            time.sleep(0.5)
            out = {}
            for c in self.z["concurrencies"]:
                r = self.fetch_load(port, n, c, seconds=self.z["tp_seconds"], timeout=5)
                log("%-9s c=%-3d %8.1f fetches/s  p50 %7.2f ms  p99 %8.2f ms  failed %d  wrong %d" % (
                    which, c, r["per_second"], r["p50_ms"], r["p99_ms"], r["failed"], r["wrong"]))
                out[c] = r
            if p.poll() is not None:
                raise RuntimeError("%s died during the throughput run" % which)
            return out
        finally:
            self.stop(p)

    def startup(self, which, n):
        p, port, t0, logpath = self.start_server(which, "%s-start-%d" % (which, n), n)
        try:
            t = self.wait_port(p, port, t0, logpath)
            if t is None:
                log("%-9s %5d clients: no answer within %d s" % (which, n, self.z["start_timeout"]))
                return dict(startup_s=None, rss_mb=None, pss_mb=None, procs=None, fetch_ok=False, first_fetch_s=None,
                            note="no answer within %d s" % self.z["start_timeout"])
            time.sleep(2)  # idle
            # A fetch proves the server serves, not only listens.
            out = dict(startup_s=t, rss_mb=self.rss_mb(p.pid), pss_mb=self.pss_mb(p.pid),
                       procs=len(self.tree(p.pid)))
            r = self.fetch_load(port, min(n, 10), 1, count=1, timeout=20)
            out["fetch_ok"] = r["completed"] == 1 and r["wrong"] == 0
            out["first_fetch_s"] = r["max_ms"] / 1000 if out["fetch_ok"] else None
            log("%-9s %5d clients: start-up %.3f s, RSS %.1f MB, PSS (tree) %.1f MB, %d processes" % (
                which, n, t, out["rss_mb"], out["pss_mb"], out["procs"]))
            return out
        finally:
            self.stop(p, grace=10)

    def storm(self, which):
        n = self.z["storm_clients"]
        p, port, t0, logpath = self.start_server(which, which + "-storm", n, checker="sleep 1",
                                                 interval="1m", timeout="1h", extra=self.real_section)
        try:
            t = self.wait_port(p, port, t0, logpath)
            if t is None:
                log("%-9s storm: no answer within %d s" % (which, self.z["start_timeout"]))
                return None
            fetches, stop = [], threading.Event()

            def fetcher():
                while not stop.is_set():
                    t1 = time.monotonic()
                    try:
                        # (client c00000: loading all n keys for one fetch would load the CPU)
                        r = self.fetch_load(port, 1, 1, count=1, timeout=10)
                        ok = r["completed"] == 1 and r["wrong"] == 0
                        fetches.append(r["max_ms"] / 1000 if ok else None)
                    except (subprocess.SubprocessError, ValueError):
                        fetches.append(None)
                    stop.wait(max(0, self.z["fetch_every"] - (time.monotonic() - t1)))

            real = []

            def real_fetcher():
                if not stop.wait(self.z["storm_seconds"] / 2):
                    real.append(self.real_fetch(port))

            th = threading.Thread(target=fetcher)
            th.start()
            th_real = threading.Thread(target=real_fetcher)
            th_real.start()
            samples = []
            capped = False
            end = time.monotonic() + self.z["storm_seconds"]
            while time.monotonic() < end:
                samples.append((len(self.tree(p.pid)), self.pss_mb(p.pid)))
                # The reference forks a process per checker: on a machine
                # of 24 GB its tree reached 19 GB and the OOM killer ended
                # the whole run. Past the cap it is stopped, and said so.
                # Killed at once, before the fetchers are waited for: its
                # tree goes on growing meanwhile (a run of 2026-12-01 was
                # ended by the OOM killer while the real client's fetch,
                # up to 30 s, was waited for). Also when the machine's
                # available memory runs low, whatever the tree's PSS says.
                if samples[-1][1] > STORM_PSS_CAP_MB or mem_available_mb() < STORM_MIN_AVAILABLE_MB:
                    capped = True
                    self.kill_tree(p)
                    log("%-9s storm: stopped, its tree's PSS passed %d MB or the machine had under %d MB left" % (
                        which, STORM_PSS_CAP_MB, STORM_MIN_AVAILABLE_MB))
                    break
                time.sleep(1)
            th_real.join()  # it may outlast the window (up to 30 s)
            stop.set()
            th.join()
            ok = [f for f in fetches if f is not None]
            out = dict(startup_s=t, max_procs=max(s[0] for s in samples),
                       max_pss_mb=max(s[1] for s in samples), fetches=len(fetches),
                       fetches_failed=len(fetches) - len(ok),
                       fetch_max_s=max(ok) if ok else None,
                       fetch_median_s=sorted(ok)[len(ok) // 2] if ok else None,
                       real_fetch_s=real[0] if real else None, pss_capped=capped)
            log("%-9s storm: up after %.1f s; max %d processes, max PSS %.1f MB; %d fetches, %d failed, "
                "slowest %s s; real mandos-client %s s" % (
                    which, t, out["max_procs"], out["max_pss_mb"], out["fetches"], out["fetches_failed"],
                    "%.3f" % out["fetch_max_s"] if ok else "-",
                    "%.3f" % out["real_fetch_s"] if out["real_fetch_s"] is not None else "failed"))
            return out
        finally:
            self.stop(p, grace=10)

    def checker_counter(self, last_path=None):
        """Counts the server's CheckerCompleted signals (one per completed
        checker, on the current interface) with bench/signal-count, which
        takes little CPU from the checkers it counts: returns a function giving the count
        so far, a stop, and a function that waits (at most a timeout) for
        the ClientAdded of last_path: the server announces its clients on
        D-Bus after start-up, and one not yet announced sends no signal."""
        cmd = [os.path.join(self.build, "bench", "signal-count"), "--address", self.bus_address]
        if last_path:
            cmd += ["--announced", last_path]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, bufsize=1, start_new_session=True)
        self.pids.append(p.pid)
        self.counter_pid = p.pid
        counts, added, added_at, ready = queue.Queue(), threading.Event(), [], threading.Event()

        def reader():
            for line in p.stdout:
                w = line.split()
                if w[:1] == ["ready"]:
                    ready.set()
                elif w[:1] == ["announced"]:
                    added_at.append(float(w[1]))
                    added.set()
                elif w[:1] == ["count"]:
                    counts.put(int(w[1]))
            counts.put(None)

        threading.Thread(target=reader, daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("signal-count did not subscribe")

        def count():
            p.stdin.write("\n")
            n = counts.get(timeout=10)
            if n is None:
                raise RuntimeError("signal-count ended")
            return n

        def stop():
            p.kill()
            p.wait()

        def wait_announced(timeout):
            """The monotonic time of the announcement, or None."""
            return added_at[0] if added.wait(timeout) else None
        return count, stop, wait_announced

    def wait_served(self, port, t0, deadline):
        """Seconds from t0 until a fetch is served (the clients are all
        created: the loop serves nothing before), or None."""
        while time.monotonic() < deadline:
            try:
                r = self.fetch_load(port, 1, 1, count=1, timeout=5)
                if r["completed"] == 1 and r["wrong"] == 0:
                    return time.monotonic() - t0
            except (subprocess.SubprocessError, ValueError):
                pass
            time.sleep(0.05)
        return None

    def scale(self):
        """100,000 clients: start-up, memory, fetch latency while checkers
        run, and the checker spawn rate against the posix_spawn loop."""
        z = self.z
        n = z["scale_clients"]
        assert len(self.lines) >= n, "keygen made fewer clients than the scale row needs"
        secret = sum(len(line.split()[3]) // 2 for line in self.lines[:n])
        out = dict(clients=n)
        # Interval such that scale_checkers_per_min are due a minute (the
        # first run of each is at a random moment within one interval).
        # Twice the 1,000 asked for: connections come before checkers, and
        # at concurrency 50 about half of them wait.
        interval = "PT%dS" % max(1, n * 60 // z["scale_checkers_per_min"])
        last = "/clients/c%05d" % (n - 1)
        p, port, t0, logpath = self.start_server("mandos", "scale", n, watch=last, checker="true",
                                                 interval=interval, timeout="PT24H")
        count, stop_counter, wait_announced = self.counter
        try:
            deadline = t0 + z["start_timeout"]
            t = self.wait_port(p, port, t0, logpath)
            if t is None:
                log("mandos    %d clients: no answer within %d s" % (n, z["start_timeout"]))
                return None
            out["startup_s"] = t
            out["ready_s"] = self.wait_served(port, t0, deadline)
            time.sleep(z["scale_idle"])
            out["rss_mb"] = self.rss_mb(p.pid)
            out["peak_mb"] = self.rss_mb(p.pid, "VmHWM:")
            out["pss_mb"] = self.pss_mb(p.pid)
            out["secret_mb"] = secret / 2**20
            # Beyond the secrets, per client, from the RSS of the same server
            # with one client (the 1-client start-up row, else 0).
            base = (self.base_rss_mb or 0) * 2**20
            out["overhead_b"] = (out["rss_mb"] * 2**20 - base - secret) / n
            out["peak_ratio"] = out["peak_mb"] / out["rss_mb"] if out["rss_mb"] else None
            log("mandos    %d clients: port after %.3f s, first fetch served after %s s, RSS %.1f MB, peak %.1f MB, "
                "PSS (tree) %.1f MB; %.0f bytes a client beyond the secret" % (
                    n, t, "%.3f" % out["ready_s"] if out["ready_s"] else "-", out["rss_mb"], out["peak_mb"],
                    out["pss_mb"], out["overhead_b"]))
            # Signals count from the last client's announcement on.
            announced = wait_announced(z["start_timeout"])
            out["announced_s"] = announced - t0 if announced else None
            log("mandos    %d clients: all announced on D-Bus after %s s" % (
                n, "%.1f" % out["announced_s"] if announced else "(not within %d s)" % z["start_timeout"]))
            time.sleep(1)
            n0, w0 = count(), time.monotonic()
            out["latency"] = {}
            for c in (1, 50):
                r = self.fetch_load(port, z["scale_fetch_clients"], c, seconds=z["scale_latency_seconds"], timeout=5)
                out["latency"][c] = r
                log("mandos    %d clients, c=%-2d while checkers run: p50 %.2f ms, p99 %.2f ms, max %.2f ms, "
                    "%.1f fetches/s, failed %d, wrong %d" % (n, c, r["p50_ms"], r["p99_ms"], r["max_ms"],
                                                            r["per_second"], r["failed"], r["wrong"]))
            n1, w1 = count(), time.monotonic()
            out["checkers_per_min"] = (n1 - n0) * 60 / (w1 - w0)
            log("mandos    %d clients: %.0f checkers completed a minute meanwhile" % (n, out["checkers_per_min"]))
        finally:
            stop_counter()
            self.stop(p, grace=30)

        # The spawn rate: an interval that asks more than two cores can do.
        p, port, t0, logpath = self.start_server("mandos", "scale-spawn", n, watch=last, checker="true",
                                                 interval=z["scale_spawn_interval"], timeout="PT24H")
        _, stop_counter, wait_announced = self.counter
        try:
            if self.wait_port(p, port, t0, logpath) is None or \
               self.wait_served(port, t0, t0 + z["start_timeout"]) is None:
                log("mandos    %d clients (spawn rate): not up within %d s" % (n, z["start_timeout"]))
                return out
            wait_announced(z["start_timeout"])
            time.sleep(max(2, z["scale_spawn_seconds"] // 6))
            w = self.checker_window(p, z["scale_spawn_seconds"])
            out["checkers_per_s"], out["cpu_ms_per_checker"] = w["per_second"], w["cpu_ms"]
        finally:
            stop_counter()
            self.stop(p, grace=30)
        r = self.spawn_limit(z["scale_spawn_seconds"])
        out["spawn_limit_per_s"], out["spawn_limit_cpu_ms"] = r["per_second"], r["cpu_ms"]
        log("mandos    %d clients: %.1f checkers completed/s; the posix_spawn loop: %.1f/s" % (
            n, out["checkers_per_s"], r["per_second"]))
        if w["cpu_ms"]:
            out["cpu_bound_ratio"] = cpu_bound_ratio(w["cpu_ms"], r["per_second"])
            log("mandos    CPU a checker run: %.3f ms (%s); the posix_spawn loop: %.3f ms; with every "
                "core busy, at most %.2f of its rate" % (
                    sum(w["cpu_ms"].values()), ", ".join("%s %.3f" % kv for kv in w["cpu_ms"].items()),
                    r["cpu_ms"], out["cpu_bound_ratio"]))
        return out

    def checker_window(self, p, seconds):
        """Over the next seconds, on server p started with a counter: the
        checkers completed a second, the CPU ms a checker run took in each
        process (the server and its threads, the checkers it reaped, the
        bus daemon, the signal counter; empty if none completed) and the
        share of the machine's CPU time that was busy."""
        count = self.counter[0]
        who = {"server": p.pid, "bus": self.bus_pid, "counter": self.counter_pid}
        c0 = {k: cpu_seconds(q) for k, q in who.items()}
        k0 = cpu_seconds(p.pid, children=True)
        n0, w0, m0 = count(), time.monotonic(), machine_busy()
        time.sleep(seconds)
        n1, w1, m1 = count(), time.monotonic(), machine_busy()
        done = n1 - n0
        ms = {k: (cpu_seconds(q) - c0[k]) * 1000 / done for k, q in who.items()} if done else {}
        if done:
            ms["checkers"] = (cpu_seconds(p.pid, children=True) - k0) * 1000 / done
        return dict(per_second=done / (w1 - w0), cpu_ms=ms, busy=(m1[0] - m0[0]) / (m1[1] - m0[1]))

    def spawn_limit(self, seconds):
        """bench/spawn-limit for seconds, 64 at a time: its checkers a
        second and CPU ms a run (itself and its children)."""
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = self.run_json([os.path.join(self.build, "bench", "spawn-limit"), "--seconds", str(seconds),
                           "--parallel", "64"], timeout=seconds + 60)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_ms = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) * 1000 / r["completed"]
        return dict(per_second=r["per_second"], cpu_ms=cpu_ms)

    def handshake_rate(self):
        r = self.run_json([os.path.join(self.build, "bench", "handshake-rate"), "--seconds",
                           str(self.z["handshake_seconds"])], timeout=self.z["handshake_seconds"] + 60)
        log("in-process handshakes: %.1f/s" % r["per_second"])
        return r

    # ----------------------------------------------------------------- run

    def run(self):
        res = {"mandos": {}, "reference": {}, "limit": {}}
        self.keygen()
        servers = ["mandos"] + ([] if self.args.no_reference else ["reference"])
        for s in servers + ["limit"]:
            res[s]["throughput"] = self.throughput(s)
        res["limit"]["handshakes"] = self.handshake_rate()
        for s in servers:
            res[s]["startup"] = {n: self.startup(s, n) for n in self.z["sizes"]}
        one = res["mandos"]["startup"].get(1) or {}
        self.base_rss_mb = one.get("rss_mb")
        res["mandos"]["scale"] = self.scale()
        for s in servers:
            if res[s]["startup"][self.z["sizes"][-1]]["startup_s"] is None:
                log("%s storm: not measured, it did not start with %d clients" % (s, self.z["sizes"][-1]))
                continue
            res[s]["storm"] = self.storm(s)
        return res


def flat(res, which):
    """The numbers of one server as {(metric, parameter): value}."""
    r = res.get(which, {})
    out = {}
    for c, t in r.get("throughput", {}).items():
        out[("fetches_per_s", c)] = t["per_second"]
        out[("p50_ms", c)] = t["p50_ms"]
        out[("p99_ms", c)] = t["p99_ms"]
    for n, s in r.get("startup", {}).items():
        out[("startup_s", n)] = s["startup_s"]
        out[("rss_mb", n)] = s["rss_mb"]
        out[("pss_mb", n)] = s["pss_mb"]
        out[("first_fetch_s", n)] = s["first_fetch_s"]
    st = r.get("storm")
    if st:
        out[("storm_max_procs", None)] = st["max_procs"]
        out[("storm_max_pss_mb", None)] = st["max_pss_mb"]
        out[("storm_fetch_max_s", None)] = st["fetch_max_s"]
        out[("storm_fetches_failed", None)] = st["fetches_failed"]
        out[("storm_real_fetch_s", None)] = st["real_fetch_s"]
    sc = r.get("scale")
    if sc:
        k = "{:,}".format(sc["clients"])
        out[("startup_s", k)] = sc.get("startup_s")
        out[("ready_s", k)] = sc.get("ready_s")
        out[("announced_s", k)] = sc.get("announced_s")
        out[("rss_mb", k)] = sc.get("rss_mb")
        out[("peak_mb", k)] = sc.get("peak_mb")
        out[("pss_mb", k)] = sc.get("pss_mb")
        out[("scale_overhead_b", None)] = sc.get("overhead_b")
        out[("scale_peak_ratio", None)] = sc.get("peak_ratio")
        for c, t in sc.get("latency", {}).items():
            out[("scale_p50_ms", c)] = t["p50_ms"]
            out[("scale_p99_ms", c)] = t["p99_ms"]
            out[("scale_max_ms", c)] = t["max_ms"]
        out[("scale_checkers_per_min", None)] = sc.get("checkers_per_min")
        out[("scale_checkers_per_s", None)] = sc.get("checkers_per_s")
        if sc.get("cpu_ms_per_checker"):
            out[("scale_checker_cpu_ms", None)] = sum(sc["cpu_ms_per_checker"].values())
    return out


LABELS = {"fetches_per_s": "fetches/s, concurrency %s", "p50_ms": "p50 ms, concurrency %s",
          "p99_ms": "p99 ms, concurrency %s", "startup_s": "start-up s, %s clients",
          "rss_mb": "RSS MB idle, %s clients", "pss_mb": "PSS MB idle (tree), %s clients",
          "first_fetch_s": "first fetch s, %s clients",
          "storm_max_procs": "storm: max processes", "storm_max_pss_mb": "storm: max PSS MB (tree)",
          "storm_fetch_max_s": "storm: slowest fetch s", "storm_fetches_failed": "storm: failed fetches",
          "storm_real_fetch_s": "storm: real mandos-client fetch s",
          "ready_s": "first fetch served s (from exec), %s clients",
          "announced_s": "all clients announced on D-Bus s (from exec), %s clients", "peak_mb": "peak RSS MB (start-up), %s clients",
          "scale_overhead_b": "100,000 clients: RSS bytes a client beyond the secret",
          "scale_peak_ratio": "100,000 clients: peak RSS / steady RSS",
          "scale_p50_ms": "100,000 clients, checkers running: p50 ms, concurrency %s",
          "scale_p99_ms": "100,000 clients, checkers running: p99 ms, concurrency %s",
          "scale_max_ms": "100,000 clients, checkers running: max ms, concurrency %s",
          "scale_checkers_per_min": "100,000 clients: checkers completed a minute, meanwhile",
          "scale_checkers_per_s": "100,000 clients: checkers completed/s (limit: posix_spawn loop)",
          "scale_checker_cpu_ms": "100,000 clients: CPU ms a checker run, all processes (limit: the loop's)"}


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, int):
        return "{:,}".format(v)
    return "%.3g" % v if abs(v) < 100 else "{:,.0f}".format(v)


def report(res):
    ours, ref, lim = flat(res, "mandos"), flat(res, "reference"), flat(res, "limit")
    sc = res.get("mandos", {}).get("scale")
    if sc and sc.get("spawn_limit_per_s"):
        lim[("scale_checkers_per_s", None)] = sc["spawn_limit_per_s"]
    if sc and sc.get("spawn_limit_cpu_ms"):
        lim[("scale_checker_cpu_ms", None)] = sc["spawn_limit_cpu_ms"]
    scale_key = "{:,}".format(sc["clients"]) if sc else None
    rows, ratios = [], {}
    for key in ours:
        metric, param = key
        o, r, l = ours.get(key), ref.get(key), lim.get(key)
        rr = o / r if o is not None and r else None
        rl = o / l if o is not None and l else None
        label = LABELS[metric] % ("{:,}".format(param) if isinstance(param, int) else param) \
            if param is not None else LABELS[metric]
        if param == 1:
            label = label.replace("1 clients", "1 client")
        scale = metric.startswith("scale_") or param == scale_key
        if scale and sc:
            label = label.replace("100,000", "{:,}".format(sc["clients"]))
        rows.append((label, fmt(o), "skipped" if scale and r is None else fmt(r), fmt(l), fmt(rr), fmt(rl)))
        ratios["%s:%s" % (metric, param)] = dict(mandos=o, reference=r, limit=l, ours_over_reference=rr,
                                                  ours_over_limit=rl)
    hs = res["limit"]["handshakes"]["per_second"]
    rows.append(("TLS handshakes/s, both ends in 1 thread", "", "", fmt(hs), "", ""))
    for which in ("mandos", "reference"):
        if (res.get(which, {}).get("storm") or {}).get("pss_capped"):
            rows.append(("(%s's storm stopped when its tree passed {:,} MB PSS: its max PSS is at least that)"
                         .format(STORM_PSS_CAP_MB) % which, "", "", "", "", ""))
    if sc:
        rows.append(("(reference skipped at {:,} clients: it takes minutes to start)".format(sc["clients"]),
                     "", "", "", "", ""))
    head = ("", "mandos", "reference", "limit", "ours/ref", "ours/limit")
    widths = [max(len(row[i]) for row in rows + [head]) for i in range(6)]
    lines = ["  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))
             for row in [head] + rows]
    checks = []
    for desc, kind, key, target, op in TARGETS:
        v = ratios.get("%s:%s" % key, {})
        value = {"ours": v.get("mandos"), "ratio_ref": v.get("ours_over_reference"),
                 "ratio_limit": v.get("ours_over_limit")}[kind]
        met = None if value is None else {">=": value >= target, "<=": value <= target, "<": value < target}[op]
        checks.append(dict(target=desc, value=value, met=met))
    return "\n".join(lines), ratios, checks


def state_crash(build, clients):
    """The state crash test (random SIGKILLs) at this many clients."""
    log("state crash test at %d clients" % clients)
    t0 = time.monotonic()
    p = subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "state-crash"), build,
                        str(clients)], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith(("ok ", "not ok ", "# round")):
            log(line)
    return dict(clients=clients, ok=p.returncode == 0, seconds=round(time.monotonic() - t0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True, help="the meson build directory")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds: checks that it works")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--reference", default="/usr/sbin/mandos", help="the reference server")
    ap.add_argument("--no-reference", action="store_true", help="measure mandos and the limit only")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    ap.add_argument("--long", action="store_true",
                    help="also the state crash test at 100,000 clients (bench/state-crash)")
    args = ap.parse_args()
    why = None
    if os.geteuid() != 0:
        why = "must run as root (the servers drop privileges as in production)"
    elif not args.no_reference and not os.access(args.reference, os.X_OK):
        why = "no reference server at %s (Debian package mandos)" % args.reference
    elif not shutil.which("dbus-daemon"):
        why = "needs dbus-daemon"
    if why:
        print("bench: " + why, file=sys.stderr)
        # Under meson test (the smoke run) 77 means skipped; CI allows no skip.
        return 77 if args.smoke and not os.environ.get("MANDOS_TEST_NO_SKIP") else 1
    z = SMOKE if args.smoke else FULL
    b = Bench(args, z)
    t_start = time.monotonic()
    try:
        res = b.run()
    finally:
        b.cleanup()
    if args.long:
        res["mandos"]["state_crash"] = state_crash(args.build, 100000)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.machine())
    machine = dict(cpu=cpu, cores=os.cpu_count(), memory_gb=round(os.sysconf("SC_PAGE_SIZE") *
                   os.sysconf("SC_PHYS_PAGES") / 2**30, 1), kernel=platform.release(),
                   date=time.strftime("%Y-%m-%d"), gnutls=subprocess.run(
                       ["pkg-config", "--modversion", "gnutls"], capture_output=True, text=True).stdout.strip())
    table, ratios, checks = report(res)
    print("mandos benchmark%s: %s, %d cores, %s GB, Linux %s, %s" % (
        " (smoke)" if args.smoke else "", machine["cpu"], machine["cores"], machine["memory_gb"],
        machine["kernel"], machine["date"]))
    print(table)
    if not args.smoke:
        print()
        for c in checks:
            print("%-4s %s (%s)" % ({True: "met", False: "MISS", None: "n/a"}[c["met"]], c["target"],
                                    fmt(c["value"])))
    print("(%.0f s)" % (time.monotonic() - t_start))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=machine, smoke=args.smoke, sizes=z, results=res, ratios=ratios,
                           targets=checks), f, indent=1, default=str)
    # Smoke mode asserts that everything worked, never a speed.
    bad = []
    # The reference's failures are its results (in the table); ours are bugs.
    for s in ("mandos", "limit"):
        for c, t in res.get(s, {}).get("throughput", {}).items():
            if t["wrong"] or t["completed"] == 0 or t["failed"]:
                bad.append("%s c=%s: %d completed, %d failed, %d wrong" % (s, c, t["completed"], t["failed"],
                                                                          t["wrong"]))
        for n, st in res.get(s, {}).get("startup", {}).items():
            if not st["fetch_ok"]:
                bad.append("%s with %s clients: the fetch after start-up failed" % (s, n))
    for c, t in res.get("reference", {}).get("throughput", {}).items():
        if t["wrong"] or t["completed"] == 0:
            bad.append("reference c=%s: %d completed, %d wrong" % (c, t["completed"], t["wrong"]))
    st = res["mandos"].get("storm")
    if st and (st["fetches_failed"] or not st["fetches"]):
        bad.append("mandos storm: %d of %d fetches failed" % (st["fetches_failed"], st["fetches"]))
    if st and st["real_fetch_s"] is None:
        bad.append("mandos storm: the real mandos-client got nothing")
    sc = res["mandos"].get("state_crash")
    if sc and not sc["ok"]:
        bad.append("the state crash test at %d clients failed (bench/state-crash)" % sc["clients"])
    for line in bad:
        print("FAILED: " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
