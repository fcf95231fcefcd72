#!/usr/bin/python3
"""`make bench`: tinymq and Mosquitto side by side, one after the other, on 127.0.0.1.

Each broker runs pinned to one core (taskset -c BROKER_CPU, default 0) and tinymq-bench to another
(BENCH_CPU, default 1); a fresh broker process serves each scenario. Mosquitto (Debian package)
runs with `set_tcp_nodelay true`, no persistence and unlimited queues and in-flight windows;
tinymq likewise (`max_inflight` 65535, queues that do not drop), otherwise its defaults.

Scenarios whose name ends in -ws speak MQTT over WebSocket (tinymq-bench --websocket) to a
WebSocket listener beside the TCP one: tinymq's `[[listeners]]` entry with `websocket = true`,
Mosquitto's `listener P` with `protocol websockets` (libwebsockets inside Mosquitto; it needs a
plain listener next to it to start at all).

Prints one table: per scenario the figure that matters for it for both brokers and the
tinymq/Mosquitto ratio. Results are figures, never assertions: this is not a test.

Environment: BENCH_SECONDS (10) measured seconds per scenario, BENCH_WARMUP (1), BENCH_ONLY
(comma-separated scenario names), BENCH_JSON_DIR (keep every tinymq-bench JSON there),
BENCH_IDLE (15000) idle connections for the memory scenario, TINYMQ / TINYMQ_BENCH (binaries),
BENCH_WORKERS (qos1-fanin-4x1,qos1-pairs-100): scenarios run once more on tinymq alone with 1 and
with 2 workers, nothing pinned (the load generator shares the cores), for a second table;
BENCH_STORE (qos1-fanin-4x1): scenarios run with persistent sessions on tinymq without a store and
with one in each durability mode (a fresh data directory each), and on Mosquitto with persistence
on, for a third table.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINYMQ = os.environ.get("TINYMQ", str(REPO / "build/release/bin/tinymq"))
BENCH = os.environ.get("TINYMQ_BENCH", str(REPO / "build/release/bin/tinymq-bench"))
MOSQUITTO = "/usr/sbin/mosquitto"
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "1"))
BROKER_CPU = os.environ.get("BROKER_CPU", "0")
BENCH_CPU = os.environ.get("BENCH_CPU", "1")
IDLE = int(os.environ.get("BENCH_IDLE", "15000"))
# Scenarios also run with tinymq on 1 and on 2 workers, unpinned (BENCH_WORKERS="" skips them).
WORKER_SCENARIOS = {s for s in os.environ.get("BENCH_WORKERS",
                                              "qos1-fanin-4x1,qos1-pairs-100").split(",") if s}

# Scenarios also run with persistent sessions on tinymq in each durability mode and on Mosquitto
# with persistence (BENCH_STORE="" skips them).
STORE_SCENARIOS = {s for s in os.environ.get("BENCH_STORE", "qos1-fanin-4x1").split(",") if s}

# name, tinymq-bench arguments, the figure compared, whether higher is better.
SCENARIOS = [
    ("qos1-fanin-4x1", ["--scenario", "fanin", "--qos", "1", "--publishers", "4",
                        "--subscribers", "1", "--inflight", "32"], "delivered_rate", True),
    ("qos1-pairs-100", ["--scenario", "pairs", "--qos", "1", "--pairs", "100",
                        "--inflight", "32"], "delivered_rate", True),
    ("qos0-fanin-100k", ["--scenario", "fanin", "--qos", "0", "--publishers", "4",
                         "--subscribers", "1", "--rate", "100000"],
     "broker_cpu_us_per_delivery", False),
    ("qos0-fanout-1k-x100", ["--scenario", "fanout", "--qos", "0", "--subscribers", "100",
                             "--rate", "1000"], "broker_cpu_us_per_delivery", False),
    # The same loads over WebSocket.
    ("qos1-fanin-4x1-ws", ["--websocket", "--scenario", "fanin", "--qos", "1", "--publishers", "4",
                           "--subscribers", "1", "--inflight", "32"], "delivered_rate", True),
    ("qos0-fanout-1k-x100-ws", ["--websocket", "--scenario", "fanout", "--qos", "0",
                                "--subscribers", "100", "--rate", "1000"],
     "broker_cpu_us_per_delivery", False),
    ("idle-connections", None, "kib_per_connection", False),
    ("idle-connections-ws", None, "kib_per_connection", False),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def is_websocket(args: list[str] | None) -> bool:
    return args is not None and "--websocket" in args


class Broker:
    """One broker process pinned to BROKER_CPU (unless pin is False), stopped by stop().

    With websocket, it also has a WebSocket listener on ws_port; bench_port is the port the load
    generator uses."""

    def __init__(self, kind: str, workdir: Path, workers: int = 1, pin: bool = True,
                 durability: str = "", websocket: bool = False):
        self.kind = kind
        self.port = free_port()
        self.ws_port = 0
        while websocket and self.ws_port in (0, self.port):
            self.ws_port = free_port()
        self.bench_port = self.ws_port or self.port
        self.log = open(workdir / f"{kind}.log", "ab")
        if kind == "tinymq":
            conf = workdir / "tinymq.toml"
            # Like Mosquitto's unlimited settings below: no in-flight window to the subscriber
            # but what MQTT allows, and queues that do not drop.
            text = (f"workers = {workers}\n"
                    "[limits]\nmax_inflight = 65535\nmax_queued_messages = 100000000\n"
                    "max_queued_bytes = 17179869184\n")
            # --bind/--port would replace the file's listeners: with a WebSocket one, the file
            # lists both.
            listen = ["--bind", "127.0.0.1", "--port", str(self.port)]
            if websocket:
                text += (f"[[listeners]]\nbind = \"127.0.0.1\"\nport = {self.port}\n"
                         f"[[listeners]]\nbind = \"127.0.0.1\"\nport = {self.ws_port}\n"
                         "websocket = true\n")
                listen = []
            conf.write_text(text)
            argv = [TINYMQ, "--config", str(conf), *listen, "--log-level", "warn"]
            if durability:  # a fresh data directory per run
                data = Path(tempfile.mkdtemp(prefix=f"data-{durability}-", dir=workdir))
                argv += ["--data-dir", str(data), "--durability", durability]
        else:
            conf = workdir / "mosquitto.conf"
            persistence = "false"
            if durability:  # Mosquitto saves its state to a file every autosave_interval
                data = Path(tempfile.mkdtemp(prefix="mosquitto-data-", dir=workdir))
                persistence = f"true\npersistence_location {data}/"
            conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                            f"persistence {persistence}\nset_tcp_nodelay true\n"
                            "max_queued_messages 0\n"
                            "max_inflight_messages 0\nmax_connections -1\nlog_type error\n"
                            + (f"listener {self.ws_port} 127.0.0.1\nprotocol websockets\n"
                               # libwebsockets binds to :: whatever the address: keep it on lo.
                               "bind_interface lo\nmax_connections -1\n"
                               if websocket else ""))
            argv = [MOSQUITTO, "-c", str(conf)]
        if pin:
            argv = ["taskset", "-c", BROKER_CPU, *argv]
        self.proc = subprocess.Popen(argv, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        # Every listener: Mosquitto opens its WebSocket one after its TCP one.
        waiting = [p for p in (self.port, self.ws_port) if p]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{kind} exited at start (see {workdir}/{kind}.log)")
            try:
                socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.5).close()
                waiting.pop(0)
                if not waiting:
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{kind} did not accept connections within 10 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def run_bench(args: list[str], port: int, pid: int, out: Path, duration: float,
              pin: bool = True) -> dict:
    argv = [BENCH, *args, "--port", str(port), "--duration",
            str(duration), "--json", str(out), "--broker-pid", str(pid), "-q"]
    if pin:
        argv = ["taskset", "-c", BENCH_CPU, *argv]
    if "conn" not in args:
        argv += ["--warmup", str(WARMUP)]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=duration + WARMUP + 120)
    if r.returncode != 0 and not out.exists():
        raise RuntimeError(f"tinymq-bench failed: {r.stderr.strip()}")
    return json.loads(out.read_text())


def idle_memory(kind: str, workdir: Path, websocket: bool = False) -> dict:
    broker = Broker(kind, workdir, websocket=websocket)
    try:
        before = rss_kib(broker.proc.pid)
        out = workdir / f"{kind}-idle.json"
        argv = ["taskset", "-c", BENCH_CPU, BENCH, "--scenario", "conn", "--connections",
                str(IDLE), "--duration", "8", "--port", str(broker.bench_port), "--json", str(out), "-q",
                *(["--websocket"] if websocket else [])]
        bench = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak = before
        deadline = time.monotonic() + 60
        while bench.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            peak = max(peak, rss_kib(broker.proc.pid))
        if bench.poll() is None:
            bench.kill()
        bench.wait(10)
        result = json.loads(out.read_text()) if out.exists() else {}
        up = result.get("stayed_up", 0) or IDLE
        result["kib_per_connection"] = (peak - before) / max(up, 1)
        result["rss_before_kib"] = before
        result["rss_peak_kib"] = peak
        return result
    finally:
        broker.stop()


def main() -> int:
    for path in (TINYMQ, BENCH, MOSQUITTO):
        if not os.access(path, os.X_OK):
            print(f"bench: {path} not found (run `make build`; Mosquitto comes with "
                  f"scripts/install-deps.sh)", file=sys.stderr)
            return 1
    if shutil.which("taskset") is None:
        print("bench: taskset not found (util-linux)", file=sys.stderr)
        return 1
    only = {s for s in os.environ.get("BENCH_ONLY", "").split(",") if s}
    keep = os.environ.get("BENCH_JSON_DIR")
    workdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="tinymq-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for name, args, figure, higher in SCENARIOS:
            if only and name not in only:
                continue
            results = {}
            for kind in ("tinymq", "mosquitto"):
                print(f"bench: {name} on {kind} ...", file=sys.stderr, flush=True)
                if args is None:
                    results[kind] = idle_memory(kind, workdir, websocket=name.endswith("-ws"))
                    continue
                broker = Broker(kind, workdir, websocket=is_websocket(args))
                try:
                    results[kind] = run_bench(args, broker.bench_port, broker.proc.pid,
                                              workdir / f"{kind}-{name}.json", SECONDS)
                finally:
                    broker.stop()
            rows.append((name, figure, higher, results))
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{'scenario':32} {'figure':28} {'tinymq':>12} {'mosquitto':>12} {'ratio':>8}"
          f"   p99 µs tinymq / mosquitto   loss")
    for name, figure, higher, results in rows:
        t = results["tinymq"].get(figure)
        m = results["mosquitto"].get(figure)
        ratio = "-"
        if t and m:
            ratio = f"{t / m:.2f}x" if higher else f"{m / t:.2f}x"
        p99 = " / ".join(f"{results[k].get('p99_us', float('nan')):.0f}"
                         for k in ("tinymq", "mosquitto")) if "p99_us" in results["tinymq"] else ""
        loss = " / ".join(str(results[k].get("loss", "-")) for k in ("tinymq", "mosquitto"))
        fmt = (lambda v: f"{v:,.2f}" if isinstance(v, float) else str(v))
        print(f"{name:32} {figure:28} {fmt(t):>12} {fmt(m):>12} {ratio:>8}   {p99:27} {loss}")
    print("\nratio: how many times better tinymq is (higher rate, or lower CPU/memory per unit).")

    # With persistent sessions, so that what is queued is written: tinymq without a store and in
    # each durability mode, Mosquitto with its persistence on.
    store_rows = []
    for name, args, figure, higher in SCENARIOS:
        if name not in STORE_SCENARIOS or (only and name not in only):
            continue
        sargs = [*args, "--persistent", "--client-id-prefix", "store"]
        for label, kind, durability in (("tinymq, memory only", "tinymq", ""),
                                        ("tinymq, none", "tinymq", "none"),
                                        ("tinymq, batch", "tinymq", "batch"),
                                        ("tinymq, always", "tinymq", "always"),
                                        ("mosquitto, persistence", "mosquitto", "on")):
            print(f"bench: {name} (persistent sessions) on {label} ...", file=sys.stderr,
                  flush=True)
            sdir = Path(tempfile.mkdtemp(prefix="tinymq-bench-store-"))
            broker = Broker(kind, sdir, durability=durability, websocket=is_websocket(args))
            try:
                r = run_bench(sargs, broker.bench_port, broker.proc.pid, sdir / "r.json", SECONDS)
            finally:
                broker.stop()
                shutil.rmtree(sdir, ignore_errors=True)
            store_rows.append((name, label, r.get(figure), r.get("p99_us"), r.get("loss", "-")))
    if store_rows:
        print(f"\n{'persistent sessions':32} {'broker':24} {'delivered/s':>12} {'p99 µs':>10}  loss")
        for name, label, rate, p99, loss in store_rows:
            print(f"{name:32} {label:24} {rate or 0:>12,.0f} {p99 or 0:>10,.0f}  {loss}")

    # Two workers against one, nothing pinned: the load generator shares the two cores.
    scaling = [s for s in SCENARIOS if s[0] in WORKER_SCENARIOS and (not only or s[0] in only)]
    if scaling:
        print(f"\n{'tinymq, no pinning':32} {'figure':28} {'1 worker':>12} {'2 workers':>12} "
              f"{'gain':>8}")
    sdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="tinymq-bench-"))
    try:
        for name, args, figure, higher in scaling:
            figures = []
            for workers in (1, 2):
                print(f"bench: {name} on tinymq with {workers} worker(s), unpinned ...",
                      file=sys.stderr, flush=True)
                broker = Broker("tinymq", sdir, workers, pin=False, websocket=is_websocket(args))
                try:
                    figures.append(run_bench(args, broker.bench_port, broker.proc.pid,
                                             sdir / f"tinymq-w{workers}-{name}.json", SECONDS,
                                             pin=False).get(figure))
                finally:
                    broker.stop()
            one, two = figures
            gain = f"{two / one:.2f}x" if one and two else "-"
            print(f"{name:32} {figure:28} {one or 0:>12,.0f} {two or 0:>12,.0f} {gain:>8}")
    finally:
        if not keep:
            shutil.rmtree(sdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
