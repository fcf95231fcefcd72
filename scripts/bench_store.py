#!/usr/bin/env python3
"""Store benchmarks for docs/benchmarks.md (issue #6): not tests, no assertions on time.

  offline   N persistent sessions (default 10,000) subscribe to one topic and go offline; M QoS 1
            messages of 64 bytes (default 1,000) are published to it, so every session queues M.
            Reports the broker's RSS before and after (the queues must live in the store, not in
            memory), disk bytes per queued message, the restart's restore time, and then every
            session comes back and must receive its M messages, in order.
  restore   R retained messages (default 1,000,000) and S persistent sessions (default 100,000,
            each with one subscription), then a restart: the restore time the broker logs.

Usage: scripts/bench_store.py [offline|restore|all] [--sessions N] [--messages M] [--retained R]
       [--restore-sessions S] [--workers W] [--durability MODE]
Needs a release build (make build). Talks to 127.0.0.1 only; every broker it starts it stops.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(os.environ.get("TINYMQ_BIN", ROOT / "build/release/bin/tinymq"))


# --- A minimal MQTT 3.1.1 client over raw sockets (fast enough to load a broker) -------------

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def mqtt_str(s: bytes) -> bytes:
    return struct.pack(">H", len(s)) + s


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect(client_id: str, clean: bool) -> bytes:
    flags = 0x02 if clean else 0x00
    body = mqtt_str(b"MQTT") + bytes([4, flags]) + struct.pack(">H", 600) + \
        mqtt_str(client_id.encode())
    return packet(0x10, body)


def subscribe(pid: int, topic: str, qos: int) -> bytes:
    return packet(0x82, struct.pack(">H", pid) + mqtt_str(topic.encode()) + bytes([qos]))


def publish(topic: bytes, payload: bytes, qos: int, pid: int, retain: bool = False) -> bytes:
    first = 0x30 | (qos << 1) | (1 if retain else 0)
    body = mqtt_str(topic) + (struct.pack(">H", pid) if qos else b"") + payload
    return packet(first, body)


DISCONNECT = b"\xe0\x00"


class Reader:
    """Whole packets from a socket: (first byte, body)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()

    def packets(self, timeout: float = 30.0):
        self.sock.settimeout(timeout)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed by the broker")
        self.buf += chunk
        out = []
        at = 0
        buf = self.buf
        while True:
            if len(buf) - at < 2:
                break
            mult, n, i = 1, 0, at + 1
            while True:
                if i >= len(buf):
                    n = -1
                    break
                b = buf[i]
                n += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
            if n < 0 or i + n > len(buf):
                break
            out.append((buf[at], bytes(buf[i:i + n])))
            at = i + n
        del self.buf[:at]
        return out


def open_client(port: int, client_id: str, clean: bool, extra: bytes = b"") -> tuple:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(connect(client_id, clean) + extra)
    r = Reader(s)
    return s, r


def expect(reader: Reader, kind: int, count: int = 1, timeout: float = 60.0) -> list:
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited for {count} packets of type {kind:#x}, got {len(got)}")
        for first, body in reader.packets(timeout):
            if first >> 4 == kind:
                got.append(body)
    return got


# --- The broker ----------------------------------------------------------------------------

class Broker:
    def __init__(self, data_dir: Path, workers: int, durability: str):
        self.data_dir = data_dir
        self.workers = workers
        self.durability = durability
        self.proc = None
        self.port = 0
        self.log_path = data_dir.parent / "broker.log"

    def start(self) -> float:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = self.data_dir.parent / "tinymq.toml"
        config.write_text(f'workers = {self.workers}\n[[listeners]]\nbind = "127.0.0.1"\n'
                          f'port = {self.port}\n[limits]\nmax_queued_messages = 100000\n')
        log = open(self.log_path, "a")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([str(BINARY), "--config", str(config), "--data-dir",
                                      str(self.data_dir), "--durability", self.durability],
                                     stdout=log, stderr=log)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("broker exited:\n" + self.log_path.read_text()[-3000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return time.monotonic() - t0
            except OSError:
                time.sleep(0.02)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def settle(self, quiet_s: float = 2.0, limit_s: float = 600.0):
        """Waits until the broker has used no CPU to speak of for `quiet_s` (writes done)."""
        deadline = time.monotonic() + limit_s
        last = self.cpu_s()
        while time.monotonic() < deadline:
            time.sleep(quiet_s)
            now = self.cpu_s()
            if now - last < 0.05 * quiet_s:
                return
            last = now

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restore_line(self) -> str:
        lines = [l for l in self.log_path.read_text().splitlines() if "restored" in l]
        return lines[-1] if lines else "(no restore line)"


def du_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def restore_seconds(line: str) -> str:
    m = re.search(r"in ([0-9.]+) ?(m?s)", line)
    return f"{m.group(1)} {m.group(2)}" if m else "?"


# --- Scenarios -----------------------------------------------------------------------------

def make_sessions(port: int, count: int, prefix: str, topic_of) -> None:
    """`count` persistent sessions, each subscribed to topic_of(i) at QoS 1, then offline."""
    batch = 200
    for start in range(0, count, batch):
        socks = []
        for i in range(start, min(start + batch, count)):
            s, r = open_client(port, f"{prefix}{i}", clean=False,
                               extra=subscribe(1, topic_of(i), 1))
            socks.append((s, r))
        for s, r in socks:
            expect(r, 9)  # SUBACK
            s.sendall(DISCONNECT)
            s.close()


def offline(args, work: Path) -> None:
    n, m = args.sessions, args.messages
    b = Broker(work / "data", args.workers, args.durability)
    b.start()
    try:
        make_sessions(b.port, n, "fleet-", lambda i: "fleet/all")
        b.settle()
        rss_before = b.rss_mib()
        disk_before = du_bytes(b.data_dir)
        s, r = open_client(b.port, "fleet-publisher", clean=True)
        expect(r, 2)
        t0 = time.monotonic()
        window, sent, acked = 32, 0, 0
        while acked < m:
            while sent < m and sent - acked < window:
                sent += 1
                payload = f"{sent:08d}".encode().ljust(64, b"x")  # 64 bytes, numbered
                s.sendall(publish(b"fleet/all", payload, 1, (sent % 65535) + 1))
            acked += len(expect(r, 4, 1, timeout=600))
        publish_s = time.monotonic() - t0
        s.sendall(DISCONNECT)
        s.close()
        b.settle()
        rss_after = b.rss_mib()
        disk_after = du_bytes(b.data_dir)
        queued = n * m
        print(f"offline: {n} sessions x {m} messages of 64 bytes = {queued:,} queued in "
              f"{publish_s:.1f} s ({queued / publish_s:,.0f} queued/s)")
        print(f"  broker RSS {rss_before:.1f} MiB -> {rss_after:.1f} MiB "
              f"(+{rss_after - rss_before:.1f} MiB; bound 200 MB)")
        print(f"  data dir {disk_before / 2**20:.1f} MiB -> {disk_after / 2**20:.1f} MiB: "
              f"{(disk_after - disk_before) / queued:.1f} bytes per queued message")
        b.stop()
        b.start()
        print(f"  restart: {b.restore_line()}")
        print(f"  disk after restart (compacted?) {du_bytes(b.data_dir) / 2**20:.1f} MiB")
        # Every session comes back and takes its messages, in order.
        t0 = time.monotonic()
        bad = 0
        out_of_order = 0
        for i in range(n):
            s, r = open_client(b.port, f"fleet-{i}", clean=False)
            got = 0
            last = -1
            connack = False
            while got < m:
                for first, body in r.packets(60):
                    kind = first >> 4
                    if kind == 2:
                        connack = True
                        continue
                    if kind != 3:
                        continue
                    tlen = struct.unpack_from(">H", body)[0]
                    pid = struct.unpack_from(">H", body, 2 + tlen)[0]
                    seq = int(body[4 + tlen:12 + tlen])
                    if seq != last + 1 and last != -1 or (last == -1 and seq != 1):
                        out_of_order += 1
                    last = seq
                    s.sendall(b"\x40\x02" + struct.pack(">H", pid))
                    got += 1
            if not connack:
                bad += 1
            s.sendall(DISCONNECT)
            s.close()
        print(f"  all {n} sessions took their {m} messages back in {time.monotonic() - t0:.1f} s "
              f"({queued / (time.monotonic() - t0):,.0f} msg/s); sessions without CONNACK: {bad}; "
              f"messages out of order or missing: {out_of_order}")
        b.settle()
        print(f"  RSS after every queue drained: {b.rss_mib():.1f} MiB")
    finally:
        b.stop()


def restore(args, work: Path) -> None:
    b = Broker(work / "data-restore", args.workers, args.durability)
    b.start()
    try:
        s, r = open_client(b.port, "retainer", clean=True)
        expect(r, 2)
        t0 = time.monotonic()
        chunk = []
        for i in range(args.retained):
            chunk.append(publish(f"retained/{i // 1000}/{i}".encode(), b"v" * 32, 0, 0, True))
            if len(chunk) == 2000:
                s.sendall(b"".join(chunk))
                chunk = []
        s.sendall(b"".join(chunk) + subscribe(1, "nothing", 0))
        expect(r, 9, timeout=600)
        s.sendall(DISCONNECT)
        s.close()
        print(f"restore: {args.retained:,} retained messages published in "
              f"{time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        make_sessions(b.port, args.restore_sessions, "dev-", lambda i: f"dev/{i}/cmd")
        print(f"  {args.restore_sessions:,} persistent sessions made in {time.monotonic() - t0:.1f} s")
        b.settle()
        print(f"  data dir {du_bytes(b.data_dir) / 2**20:.1f} MiB, broker RSS {b.rss_mib():.1f} MiB")
        for how, sig in (("SIGTERM", signal.SIGTERM), ("SIGKILL", signal.SIGKILL)):
            b.stop(sig)
            ready = b.start()
            print(f"  after {how}: {b.restore_line()}  (listening {ready:.2f} s after exec)")
            b.settle()
    finally:
        b.stop()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("scenario", nargs="?", default="all", choices=["offline", "restore", "all"])
    p.add_argument("--sessions", type=int, default=10000)
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--retained", type=int, default=1000000)
    p.add_argument("--restore-sessions", type=int, default=100000)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--durability", default="batch")
    args = p.parse_args()
    if not BINARY.exists():
        print(f"{BINARY} not found: run make build first", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="tinymq-bench-store-"))
    try:
        if args.scenario in ("offline", "all"):
            offline(args, work)
        if args.scenario in ("restore", "all"):
            restore(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
