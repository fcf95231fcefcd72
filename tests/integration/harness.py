#!/usr/bin/python3
"""Black-box integration tests for tinymq: the broker under test, and the clients that drive it.

Every test runs the real binary on 127.0.0.1, on a free port of its own, so test files can run in
parallel. The broker under test is tinymq (the binary named by `--tinymq PATH` on the command
line, else $TINYMQ_BIN, else build/asan/bin/tinymq) or, with BROKER=mosquitto in the
environment, the reference broker /usr/sbin/mosquitto: every test can be checked against it.

Three kinds of client:
  * MosquittoSub / mosquitto_pub(): the mosquitto command-line clients, as subprocesses;
  * PahoClient: paho-mqtt 1.6.1 (Debian's python3-paho-mqtt, hence /usr/bin/python3);
  * RawClient: our own MQTT 3.1.1 client over a plain socket, for tests that must stop the
    acknowledgement flows at a precise point or send malformed packets.

Bounds: every wait has a timeout; a test that runs longer than TEST_TIMEOUT seconds has its
stacks dumped and the process exits (the brokers and clients it started die with it: they are
started under `setpriv --pdeathsig KILL`).

Run a test file alone:  /usr/bin/python3 tests/integration/test_qos.py [--tinymq PATH] [-v]
Against mosquitto:      BROKER=mosquitto /usr/bin/python3 tests/integration/test_qos.py
Keep each broker's configuration and log (path printed): KEEP_LOGS=1
"""

from __future__ import annotations

import atexit
import faulthandler
import json
import os
import queue
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
SETPRIV = shutil.which("setpriv")
STDBUF = shutil.which("stdbuf")

# Default bound for a single wait (a packet, a message, a subprocess).
WAIT = 5.0
# Bound for one test method, set-up and clean-up included.
TEST_TIMEOUT = 30.0
# How long a stopped broker gets between SIGTERM and SIGKILL.
STOP_GRACE = 5.0
# What in a sanitizer build's stderr means the broker did something undefined.
SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer", "ThreadSanitizer")


# --------------------------------------------------------------------------------------------
# Which broker, which binary.


def broker_kind() -> str:
    """'tinymq' (default) or 'mosquitto' (BROKER=mosquitto)."""
    kind = os.environ.get("BROKER", "tinymq").strip().lower() or "tinymq"
    if kind not in ("tinymq", "mosquitto"):
        raise RuntimeError(f"BROKER must be tinymq or mosquitto, got {kind!r}")
    return kind


def is_mosquitto() -> bool:
    return broker_kind() == "mosquitto"


def tinymq_binary() -> str:
    path = os.environ.get("TINYMQ_BIN") or str(REPO / "build" / "asan" / "bin" / "tinymq")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"tinymq binary not found or not executable: {path} "
                           "(set TINYMQ_BIN or pass --tinymq PATH)")
    return path


def broker_binary() -> str:
    return MOSQUITTO if is_mosquitto() else tinymq_binary()


# --------------------------------------------------------------------------------------------
# Subprocesses: all tracked, all stopped.

_live_processes: list[subprocess.Popen] = []
_live_lock = threading.Lock()


def spawn(argv: list[str], **kwargs) -> subprocess.Popen:
    """Popen that dies with this process (SIGKILL via PR_SET_PDEATHSIG) and is killed at exit."""
    if SETPRIV:
        argv = [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
    proc = subprocess.Popen(argv, **kwargs)
    with _live_lock:
        _live_processes.append(proc)
    return proc


def forget(proc: subprocess.Popen) -> None:
    with _live_lock:
        if proc in _live_processes:
            _live_processes.remove(proc)


def kill_and_reap(proc: subprocess.Popen, sig: int = signal.SIGKILL, timeout: float = WAIT) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    forget(proc)


@atexit.register
def _kill_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live_processes)
    for proc in leftovers:
        try:
            kill_and_reap(proc)
        except Exception:  # at exit: best effort, never hang
            pass


def run_command(argv: list[str], timeout: float = 10.0, input: Optional[bytes] = None
                ) -> subprocess.CompletedProcess:
    """Runs a command to completion with a bound; raises AssertionError on timeout."""
    proc = spawn(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_and_reap(proc)
        raise AssertionError(f"command timed out after {timeout} s: {' '.join(argv)}")
    forget(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it: bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT,
               interval: float = 0.02) -> bool:
    """Polls `predicate` until it is true or `timeout` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# The broker under test.


class BrokerStartError(Exception):
    def __init__(self, message: str, log: str):
        super().__init__(f"{message}\n--- broker stderr ---\n{log}")
        self.log = log


def toml_value(value) -> str:
    """A Python bool, int or str as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    raise TypeError(f"no TOML form for {value!r}")


def mosquitto_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Broker:
    """One broker process (tinymq or mosquitto) listening on 127.0.0.1:port.

    `limits` are tinymq's [limits] settings (docs/configuration.md), e.g.
    {"connect_timeout_ms": 1000}; for mosquitto the ones it has an equivalent for are mapped
    (MOSQUITTO_LIMITS) and the others ignored: tests that need those skip themselves on mosquitto.

    `mqtt` are tinymq's [mqtt] settings (the MQTT 5.0 features offered), e.g.
    {"maximum_qos": 1, "retain_available": False, "shared_subscription_policy": "publisher_hash"};
    Python bools and strings become TOML true/false and quoted strings. For mosquitto the keys
    in MOSQUITTO_MQTT are mapped; a key in MOSQUITTO_BUILTIN is fine when its value is what
    mosquitto always does; any other key is listed by mosquitto_unsupported() (BrokerTestCase
    skips such a test on mosquitto).

    `workers` is tinymq's top-level `workers` key (worker threads; 0 = one per core), written
    before the tables as TOML requires. mosquitto has no such setting and ignores it: a test that
    depends on several workers skips itself on mosquitto.

    `data_dir` (True: `<broker dir>/data`, or a path) is tinymq's `--data-dir`, and `durability`
    its `--durability` (tinymq only; mosquitto ignores both). The data directory belongs to this
    Broker object, not to one process: kill() (SIGKILL, a crash) then restart() starts a new
    process on the same directory, by default on the same port. Each process has its own log
    (broker.log, broker-2.log, ...); stop() and kill() look for sanitizer reports in it.

    `tls` (tinymq only) makes the listener on self.port a TLS one: the keys of its
    [listeners.tls] table, e.g. {"cert": "server.pem", "key": "server.key"}.
    `extra_listeners` are more [[listeners]] tables, e.g.
    [{"port": 18884}, {"port": 18885, "tls": {...}}, {"port": 18886, "websocket": True}] (bind
    defaults to 127.0.0.1; every key but "tls" is written as is: websocket, proxy_protocol). With
    either, the listeners are written in the configuration file instead of --bind/--port. For
    mosquitto, plain and websocket extra listeners become `listener` lines (with `protocol
    websockets`); TLS and PROXY-protocol ones are tinymq only.
    `top` are more top-level keys (sys_interval, log_destination, log_file, ...); mosquitto gets
    the ones it has (sys_interval). `tables` are more tables, e.g. {"metrics": {"enabled": True,
    "port": 19090}} (tinymq only).
    """

    MOSQUITTO_LIMITS = {
        "max_queued_messages": "max_queued_messages",
        "max_inflight": "max_inflight_messages",
        "max_packet_size": "max_packet_size",
    }
    # [mqtt] key -> mosquitto.conf option. mosquitto 2.0 advertises max_inflight_messages as its
    # CONNACK Receive Maximum (and enforces it on QoS 2 PUBLISHes), so receive_maximum maps there
    # (and wins over [limits] max_inflight when both are given).
    MOSQUITTO_MQTT = {
        "maximum_qos": "max_qos",
        "retain_available": "retain_available",
        "topic_alias_maximum": "max_topic_alias",
        "max_keep_alive_s": "max_keepalive",
        "receive_maximum": "max_inflight_messages",
    }
    # [mqtt] key -> the value that describes what mosquitto 2.0.11 always does (no option).
    MOSQUITTO_BUILTIN = {
        "wildcard_subscriptions": True,
        "subscription_identifiers": True,
        "shared_subscriptions": True,
        "shared_subscription_policy": "round_robin",
        "outbound_topic_alias_maximum": 0,  # mosquitto never sets up aliases towards a client
        "max_session_expiry_s": 0,
    }

    def __init__(self, limits: Optional[dict] = None, extra_args: Iterable[str] = (),
                 mqtt: Optional[dict] = None, workers: Optional[int] = None,
                 data_dir=None, durability: Optional[str] = None, tls: Optional[dict] = None,
                 extra_listeners: Optional[list] = None, auth: Optional[dict] = None,
                 top: Optional[dict] = None, tables: Optional[dict] = None):
        self.kind = broker_kind()
        self.top = dict(top or {})
        self.tables = {name: dict(values) for name, values in (tables or {}).items()}
        # tinymq's [auth] table (password_file, acl_file, allow_anonymous, failure_delay_ms); for
        # mosquitto the first three become the options of the same names.
        self.auth = dict(auth or {})
        self.tls = dict(tls) if tls else None
        self.extra_listeners = [dict(listener) for listener in (extra_listeners or [])]
        self.limits = dict(limits or {})
        self.mqtt = dict(mqtt or {})
        self.workers = workers
        self.extra_args = list(extra_args)
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.dir = Path(tempfile.mkdtemp(prefix="tinymq-it-"))
        self.data_dir: Optional[Path] = (self.dir / "data" if data_dir is True
                                         else Path(data_dir) if data_dir else None)
        self.durability = durability
        self.processes = 0  # processes started so far (the current one included)
        self.log_path = self.dir / "broker.log"
        self._log_file = None

    def mosquitto_unsupported(self) -> list[str]:
        """The [mqtt] settings mosquitto cannot reproduce (no option, different fixed value)."""
        return [f"{k} = {toml_value(v)}" for k, v in self.mqtt.items()
                if k not in self.MOSQUITTO_MQTT
                and not (k in self.MOSQUITTO_BUILTIN and self.MOSQUITTO_BUILTIN[k] == v)]

    # Start-up. ---------------------------------------------------------------------------

    def start(self, attempts: int = 3, port: Optional[int] = None) -> "Broker":
        """Starts the broker on `port`, else on a free port. With a given port, a port in use is
        tried again (`attempts` times, 0.2 s apart) and then BrokerStartError is raised."""
        last: Optional[BrokerStartError] = None
        for attempt in range(attempts):
            self.port = port if port else free_port()
            try:
                self._start_once()
                return self
            except BrokerStartError as e:
                last = e
                # Another test may have taken the port between our probe and the broker's bind.
                if "in use" not in e.log.lower():
                    raise
                if port and attempt + 1 < attempts:
                    time.sleep(0.2)
        assert last is not None
        raise last

    def restart(self, same_port: bool = True, attempts: int = 5) -> "Broker":
        """Starts a new process (after kill() or stop()) with the same configuration and data
        directory, on the same port unless `same_port` is False (then a free one: self.port)."""
        if self.alive():
            raise RuntimeError("restart(): the broker is still running")
        return self.start(attempts, port=self.port if same_port else None)

    def kill(self) -> list[str]:
        """SIGKILL, as a crash: no clean-up in the broker. Returns the problems found: the
        process had died before, or its log holds a sanitizer report."""
        problems: list[str] = []
        if self.proc is None:
            return problems
        proc, self.proc = self.proc, None
        if proc.poll() is not None:
            problems.append(f"{self.kind} died before SIGKILL with status {proc.returncode}")
        kill_and_reap(proc, signal.SIGKILL)
        if self._log_file:
            self._log_file.close()
        text = self.log()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                problems.append(f"{self.kind} stderr contains {marker!r}")
        if problems:
            problems.append(f"--- broker stderr (tail, {self.log_path.name}) ---\n"
                            + self.log_tail(60))
        return problems

    def command_for_port(self, port: int) -> list[str]:
        """The command line that starts this broker on `port` (writing its configuration)."""
        self.port = port
        return self._command()

    def _command(self) -> list[str]:
        d = self.dir
        if self.kind == "mosquitto":
            conf = d / "mosquitto.conf"
            anonymous = self.auth.get("allow_anonymous", not self.auth.get("password_file"))
            lines = [f"listener {self.port} {HOST}",
                     f"allow_anonymous {mosquitto_value(bool(anonymous))}", "persistence false",
                     "log_dest stderr", "log_type all"]
            for key in ("password_file", "acl_file"):
                if self.auth.get(key):
                    lines.append(f"{key} {self.auth[key]}")
            options: dict = {}
            for key, value in self.limits.items():
                if key in self.MOSQUITTO_LIMITS:
                    options[self.MOSQUITTO_LIMITS[key]] = value
            for key, value in self.mqtt.items():
                if key in self.MOSQUITTO_MQTT:
                    options[self.MOSQUITTO_MQTT[key]] = value
            for option, value in options.items():
                lines.append(f"{option} {mosquitto_value(value)}")
            if "sys_interval" in self.top:
                lines.append(f"sys_interval {self.top['sys_interval']}")
            for listener in self.extra_listeners:
                lines.append(f"listener {listener['port']} {listener.get('bind', HOST)}")
                if listener.get("websocket"):
                    lines.append("protocol websockets")
            conf.write_text("\n".join(lines) + "\n")
            return [MOSQUITTO, "-c", str(conf), *self.extra_args]
        argv = [tinymq_binary()]
        listeners_in_file = self.tls is not None or bool(self.extra_listeners)
        if (self.limits or self.mqtt or self.auth or self.workers is not None
                or listeners_in_file or self.top or self.tables):
            conf = d / "tinymq.toml"
            body = ""
            # Top-level keys first: after a [table] header a key belongs to that table.
            if self.workers is not None:
                body += f"workers = {toml_value(self.workers)}\n"
            body += "".join(f"{k} = {toml_value(v)}\n" for k, v in self.top.items())
            for table, values in (("limits", self.limits), ("mqtt", self.mqtt),
                                  ("auth", self.auth), *self.tables.items()):
                if values:
                    body += f"[{table}]\n" + "".join(f"{k} = {toml_value(v)}\n"
                                                     for k, v in values.items())
            if listeners_in_file:
                for listener in [{"port": self.port, "tls": self.tls}, *self.extra_listeners]:
                    body += (f"[[listeners]]\nbind = {toml_value(listener.get('bind', HOST))}\n"
                             f"port = {toml_value(listener['port'])}\n")
                    body += "".join(f"{k} = {toml_value(v)}\n" for k, v in listener.items()
                                    if k not in ("bind", "port", "tls") and v is not None)
                    if listener.get("tls"):
                        body += "[listeners.tls]\n" + "".join(
                            f"{k} = {toml_value(v)}\n" for k, v in listener["tls"].items())
            conf.write_text(body)
            argv += ["--config", str(conf)]
        if not listeners_in_file:
            argv += ["--bind", HOST, "--port", str(self.port)]
        argv += ["--log-level", "debug"]
        if self.data_dir is not None:
            argv += ["--data-dir", str(self.data_dir)]
        if self.durability is not None:
            argv += ["--durability", self.durability]
        return argv + self.extra_args

    def _start_once(self) -> None:
        argv = self._command()
        self.processes += 1
        self.log_path = self.dir / ("broker.log" if self.processes == 1
                                    else f"broker-{self.processes}.log")
        self._log_file = open(self.log_path, "wb")
        env = dict(os.environ)
        # Sanitizer reports go to stderr (the default) and must not be swallowed.
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.proc = spawn(argv, stdin=subprocess.DEVNULL, stdout=self._log_file,
                          stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                forget(self.proc)
                self.proc = None
                self._log_file.close()
                raise BrokerStartError(f"{self.kind} exited with {rc} at start-up "
                                       f"({' '.join(argv)})", self.log())
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        kill_and_reap(self.proc)
        self.proc = None
        self._log_file.close()
        raise BrokerStartError(f"{self.kind} did not accept connections within 10 s", self.log())

    # Shutdown. ----------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, text: str, timeout: float = WAIT, after: int = 0) -> bool:
        """Waits for `text` in the log past offset `after`. The broker logs from a thread of
        its own, so a line can reach the file a moment after the event that caused it."""
        return wait_until(lambda: text in self.log()[after:], timeout, 0.02)

    def log_line(self, text: str, timeout: float = WAIT) -> str:
        """The first log line holding `text`, waited for; empty when none comes."""
        if not self.wait_for_log(text, timeout):
            return ""
        return next(line for line in self.log().splitlines() if text in line)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> list[str]:
        """SIGTERM, then SIGKILL after STOP_GRACE s. Returns the problems found (empty: clean)."""
        problems: list[str] = []
        if self.proc is None:
            return problems
        proc, self.proc = self.proc, None
        if proc.poll() is not None:
            problems.append(f"{self.kind} died during the test with status {proc.returncode}")
        else:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(WAIT)
                problems.append(f"{self.kind} did not exit within {STOP_GRACE} s of SIGTERM")
            else:
                if proc.returncode != 0:
                    problems.append(f"{self.kind} exited with status {proc.returncode} on SIGTERM")
        forget(proc)
        if self._log_file:
            self._log_file.close()
        text = self.log()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                problems.append(f"{self.kind} stderr contains {marker!r}")
        if problems:
            problems.append("--- broker stderr (tail) ---\n" + self.log_tail(60))
        return problems

    def cleanup(self) -> None:
        """Removes the configuration and log, unless KEEP_LOGS is set in the environment."""
        if os.environ.get("KEEP_LOGS"):
            print(f"\n  broker files kept in {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The raw MQTT 3.1.1 client.

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14
PACKET_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
                7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
                12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}


def start_with_free_ports(make: Callable[[], "Broker"], attempts: int = 3) -> "Broker":
    """Starts the broker make() builds, which probes free ports of its own for extra listeners;
    when one of them was taken between the probe and the bind, make() builds another (the
    broker's main port is retried by Broker.start itself). The caller cleans the broker up."""
    last: Optional[BrokerStartError] = None
    for _ in range(attempts):
        broker = make()
        try:
            return broker.start()
        except BrokerStartError as e:
            broker.cleanup()
            last = e
            if "in use" not in e.log.lower():
                raise
    assert last is not None
    raise last


def encode_varint(n: int) -> bytes:
    """§1.5.5 / 3.1.1 §2.2.3 Remaining Length: 7 bits per byte, high bit = more."""
    if not 0 <= n <= 268_435_455:
        raise ValueError(f"remaining length out of range: {n}")
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_string(s) -> bytes:
    data = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return len(data).to_bytes(2, "big") + data


def frame(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + encode_varint(len(body)) + body


def encode_connect(client_id="", clean_session=True, keepalive=60, will=None, username=None,
                   password=None, protocol_name="MQTT", protocol_level=4) -> bytes:
    """`will` is (topic, payload, qos, retain). Strings may be bytes, to send invalid UTF-8."""
    flags = 0x02 if clean_session else 0
    payload = encode_string(client_id)
    if will is not None:
        w_topic, w_payload, w_qos, w_retain = will
        flags |= 0x04 | (w_qos << 3) | (0x20 if w_retain else 0)
        w_bytes = w_payload.encode() if isinstance(w_payload, str) else bytes(w_payload)
        payload += encode_string(w_topic) + len(w_bytes).to_bytes(2, "big") + w_bytes
    if username is not None:
        flags |= 0x80
        payload += encode_string(username)
    if password is not None:
        flags |= 0x40
        payload += encode_string(password)
    body = (encode_string(protocol_name) + bytes([protocol_level, flags]) +
            keepalive.to_bytes(2, "big") + payload)
    return frame(CONNECT << 4, body)


def encode_publish(topic, payload=b"", qos=0, retain=False, packet_id=None, dup=False,
                   flags: Optional[int] = None) -> bytes:
    """`flags` overrides the fixed-header flags (to send e.g. QoS 3)."""
    if flags is None:
        flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    data = payload.encode() if isinstance(payload, str) else bytes(payload)
    body = encode_string(topic)
    if (flags >> 1) & 0x03:
        if packet_id is None:
            raise ValueError("QoS > 0 needs a packet id")
        body += packet_id.to_bytes(2, "big")
    return frame((PUBLISH << 4) | flags, body + data)


def encode_ack(packet_type: int, packet_id: int, flags: Optional[int] = None) -> bytes:
    """PUBACK, PUBREC, PUBREL (flags 0010), PUBCOMP or UNSUBACK-shaped packets."""
    if flags is None:
        flags = 0x02 if packet_type == PUBREL else 0
    return frame((packet_type << 4) | flags, packet_id.to_bytes(2, "big"))


def encode_subscribe(packet_id: int, filters, flags: int = 0x02) -> bytes:
    """`filters`: [(filter, qos)]; `flags` other than 0010 is a malformed SUBSCRIBE."""
    body = packet_id.to_bytes(2, "big")
    for topic_filter, qos in filters:
        body += encode_string(topic_filter) + bytes([qos])
    return frame((SUBSCRIBE << 4) | flags, body)


def encode_unsubscribe(packet_id: int, filters) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(encode_string(f) for f in filters)
    return frame((UNSUBSCRIBE << 4) | 0x02, body)


def encode_pingreq() -> bytes:
    return bytes([PINGREQ << 4, 0])


def encode_disconnect() -> bytes:
    return bytes([DISCONNECT << 4, 0])


@dataclass
class Packet:
    """One packet received by RawClient, with the fields of its type decoded."""
    type: int
    flags: int
    body: bytes
    packet_id: Optional[int] = None
    # PUBLISH
    topic: Optional[str] = None
    payload: bytes = b""
    qos: int = 0
    dup: bool = False
    retain: bool = False
    # CONNACK
    session_present: bool = False
    return_code: Optional[int] = None
    # SUBACK
    return_codes: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return PACKET_NAMES.get(self.type, f"type {self.type}")

    def __repr__(self) -> str:
        if self.type == PUBLISH:
            return (f"PUBLISH(topic={self.topic!r}, payload={self.payload[:40]!r}, qos={self.qos}, "
                    f"dup={int(self.dup)}, retain={int(self.retain)}, id={self.packet_id})")
        if self.type == CONNACK:
            return f"CONNACK(sp={int(self.session_present)}, rc={self.return_code})"
        if self.type == SUBACK:
            return f"SUBACK(id={self.packet_id}, codes={self.return_codes})"
        if self.packet_id is not None:
            return f"{self.name}(id={self.packet_id})"
        return f"{self.name}(flags={self.flags:#x}, body={self.body!r})"


class ProtocolViolation(AssertionError):
    """The broker sent something a 3.1.1 server must not send."""


def decode_packet(first_byte: int, body: bytes) -> Packet:
    ptype, flags = first_byte >> 4, first_byte & 0x0F
    p = Packet(ptype, flags, body)
    try:
        if ptype == PUBLISH:
            p.dup, p.qos, p.retain = bool(flags & 0x08), (flags >> 1) & 0x03, bool(flags & 0x01)
            if p.qos == 3:
                raise ProtocolViolation(f"broker sent a PUBLISH with QoS 3: {body!r}")
            n = int.from_bytes(body[0:2], "big")
            if len(body) < 2 + n:
                raise ProtocolViolation(f"short PUBLISH: {body!r}")
            p.topic = body[2:2 + n].decode("utf-8")
            pos = 2 + n
            if p.qos:
                p.packet_id = int.from_bytes(body[pos:pos + 2], "big")
                pos += 2
            p.payload = bytes(body[pos:])
        elif ptype == CONNACK:
            if len(body) != 2:
                raise ProtocolViolation(f"CONNACK of length {len(body)}: {body!r}")
            p.session_present, p.return_code = bool(body[0] & 0x01), body[1]
        elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
            if len(body) != 2:
                raise ProtocolViolation(f"{p.name} of length {len(body)}: {body!r}")
            p.packet_id = int.from_bytes(body, "big")
        elif ptype == SUBACK:
            p.packet_id = int.from_bytes(body[0:2], "big")
            p.return_codes = list(body[2:])
    except UnicodeDecodeError as e:
        raise ProtocolViolation(f"broker sent a topic that is not UTF-8: {body!r}") from e
    return p


class ConnectionClosed(Exception):
    """The broker closed the connection (EOF or reset)."""


class RawClient:
    """A minimal MQTT 3.1.1 client over a blocking socket: send exactly what a test says, read
    packets one at a time with a timeout. It never acknowledges anything by itself, except in the
    explicitly named helpers (receive_messages, publish_and_complete)."""

    def __init__(self, port: int, timeout: float = WAIT):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.timeout = timeout
        self.closed_by_peer = False
        self._next_id = 0

    # Sending. ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def connect(self, client_id="", clean_session=True, keepalive=60, will=None,
                expect_rc: Optional[int] = 0, **kwargs) -> Packet:
        """Sends CONNECT and returns the CONNACK; checks its return code unless expect_rc=None."""
        self.send(encode_connect(client_id, clean_session, keepalive, will, **kwargs))
        p = self.recv()
        if p.type != CONNACK:
            raise AssertionError(f"expected CONNACK, got {p!r}")
        if expect_rc is not None and p.return_code != expect_rc:
            raise AssertionError(f"CONNACK return code {p.return_code}, expected {expect_rc}")
        return p

    def subscribe(self, filters, packet_id: Optional[int] = None) -> list:
        """SUBSCRIBE [(filter, qos)] and wait for the SUBACK; returns its return codes."""
        pid = packet_id or self.next_packet_id()
        self.send(encode_subscribe(pid, filters))
        p = self.recv()
        if p.type != SUBACK or p.packet_id != pid:
            raise AssertionError(f"expected SUBACK for {pid}, got {p!r}")
        return p.return_codes

    def publish(self, topic, payload=b"", qos=0, retain=False, packet_id=None, dup=False) -> int:
        """Sends one PUBLISH (no waiting); returns its packet id (0 for QoS 0)."""
        if qos and packet_id is None:
            packet_id = self.next_packet_id()
        self.send(encode_publish(topic, payload, qos, retain, packet_id, dup))
        return packet_id or 0

    def publish_and_complete(self, topic, payload=b"", qos=0, retain=False) -> None:
        """Publishes and runs the QoS 1 or 2 flow to its end (PUBACK, or PUBREC/PUBREL/PUBCOMP)."""
        pid = self.publish(topic, payload, qos, retain)
        if qos == 1:
            self.expect(PUBACK, pid)
        elif qos == 2:
            self.expect(PUBREC, pid)
            self.send(encode_ack(PUBREL, pid))
            self.expect(PUBCOMP, pid)

    def puback(self, pid: int) -> None:
        self.send(encode_ack(PUBACK, pid))

    def pubrec(self, pid: int) -> None:
        self.send(encode_ack(PUBREC, pid))

    def pubrel(self, pid: int) -> None:
        self.send(encode_ack(PUBREL, pid))

    def pubcomp(self, pid: int) -> None:
        self.send(encode_ack(PUBCOMP, pid))

    def pingreq(self) -> None:
        self.send(encode_pingreq())

    def disconnect(self) -> None:
        """Sends DISCONNECT and closes the socket."""
        try:
            self.send(encode_disconnect())
        finally:
            self.close()

    def close(self) -> None:
        """Closes the socket without DISCONNECT (a lost connection, for the broker)."""
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Closes with a TCP reset (SO_LINGER 0), like a crashed host's stack would."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    # Receiving. -------------------------------------------------------------------------

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no packet from the broker in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no packet from the broker in time") from None
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed_by_peer = True
            raise ConnectionClosed("the broker closed the connection")
        self.buf += chunk

    def _try_parse(self) -> Optional[Packet]:
        if len(self.buf) < 2:
            return None
        length, multiplier, pos = 0, 1, 1
        while True:
            if pos >= len(self.buf):
                return None
            byte = self.buf[pos]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            pos += 1
            if not byte & 0x80:
                break
            if pos > 4:
                raise ProtocolViolation(
                    f"bad remaining length from the broker: {bytes(self.buf[:6])!r}")
        if len(self.buf) < pos + length:
            return None
        first = self.buf[0]
        body = bytes(self.buf[pos:pos + length])
        del self.buf[:pos + length]
        return self.decode(first, body)

    def decode(self, first_byte: int, body: bytes) -> Packet:
        """Decodes one received packet (3.1.1 here; mqtt5.Client5 overrides it)."""
        return decode_packet(first_byte, body)

    def recv(self, timeout: Optional[float] = None) -> Packet:
        """The next packet; TimeoutError if none in `timeout` s, ConnectionClosed on EOF."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            p = self._try_parse()
            if p is not None:
                return p
            if self.closed_by_peer:
                raise ConnectionClosed("the broker closed the connection")
            self._fill(deadline)

    def expect(self, packet_type: int, packet_id: Optional[int] = None,
               timeout: Optional[float] = None) -> Packet:
        p = self.recv(timeout)
        if p.type != packet_type or (packet_id is not None and p.packet_id != packet_id):
            want = PACKET_NAMES[packet_type] + (f"(id={packet_id})" if packet_id else "")
            raise AssertionError(f"expected {want}, got {p!r}")
        return p

    def expect_closed(self, timeout: float = WAIT) -> list:
        """Waits until the broker closes the connection; returns the packets received before.
        AssertionError if it is still open after `timeout` s."""
        deadline = time.monotonic() + timeout
        packets = []
        while True:
            try:
                packets.append(self.recv(max(0.0, deadline - time.monotonic()) or 0.001))
            except ConnectionClosed:
                return packets
            except TimeoutError:
                raise AssertionError(f"connection still open after {timeout} s "
                                     f"(received {packets!r})") from None

    def is_open(self, wait: float = 0.2) -> bool:
        """True if the connection is still open after `wait` s without a packet arriving."""
        try:
            p = self.recv(wait)
        except TimeoutError:
            return True
        except ConnectionClosed:
            return False
        raise AssertionError(f"unexpected packet {p!r}")

    def expect_silence(self, duration: float = 0.3) -> None:
        """Fails if any packet arrives (or the connection closes) within `duration` s."""
        try:
            p = self.recv(duration)
        except TimeoutError:
            return
        except ConnectionClosed:
            raise AssertionError("the broker closed the connection") from None
        raise AssertionError(f"unexpected packet {p!r}")

    def receive_messages(self, count: int, timeout: float = WAIT, ack: bool = True) -> list:
        """Receives `count` PUBLISH packets, acknowledging each as a well-behaved client does
        (PUBACK; PUBREC, then PUBCOMP on the PUBREL) when `ack`. Fails on anything else."""
        got: list[Packet] = []
        return self._receive(lambda p: (got.append(p), len(got) >= count)[1], timeout, ack,
                             f"{count} messages")

    def receive_until(self, last: Callable[[Packet], bool], timeout: float = WAIT,
                      ack: bool = True) -> list:
        """Receives PUBLISH packets (acknowledged as in receive_messages) up to and including the
        first for which `last` is true."""
        return self._receive(last, timeout, ack, "the last message")

    def _receive(self, done: Callable[[Packet], bool], timeout: float, ack: bool,
                 what: str) -> list:
        deadline = time.monotonic() + timeout
        messages: list[Packet] = []
        pending_rel: set = set()
        finished = False
        while not finished or (ack and pending_rel):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"did not receive {what} in {timeout} s: got {len(messages)} "
                                     f"messages, the last {messages[-3:]!r}; waiting for PUBREL "
                                     f"of {sorted(pending_rel)}")
            try:
                p = self.recv(remaining)
            except TimeoutError:
                continue
            if p.type == PUBLISH and not finished:
                messages.append(p)
                if ack and p.qos == 1:
                    self.puback(p.packet_id)
                elif ack and p.qos == 2:
                    self.pubrec(p.packet_id)
                    pending_rel.add(p.packet_id)
                finished = done(p)
            elif p.type == PUBREL and ack:
                self.pubcomp(p.packet_id)
                pending_rel.discard(p.packet_id)
            else:
                raise AssertionError(f"unexpected packet {p!r} while receiving messages")
        return messages


# --------------------------------------------------------------------------------------------
# mosquitto_pub / mosquitto_sub.


def mosquitto_pub(port: int, topic: str, message=None, qos: int = 0, retain: bool = False,
                  null_message: bool = False, lines: Optional[list] = None,
                  version: str = "mqttv311", extra: Iterable[str] = (),
                  timeout: float = 10.0) -> None:
    """Publishes with mosquitto_pub and checks it exited 0. `message` may be bytes (sent through
    stdin with -s); `lines` publishes one message per line (-l); `null_message` is -n."""
    argv = [MOSQUITTO_PUB, "-h", HOST, "-p", str(port), "-t", topic, "-q", str(qos), "-V", version]
    data = None
    if retain:
        argv.append("-r")
    if null_message:
        argv.append("-n")
    elif lines is not None:
        argv.append("-l")
        data = "".join(f"{line}\n" for line in lines).encode()
    elif message is not None:
        argv.append("-s")
        data = message.encode() if isinstance(message, str) else bytes(message)
    argv += list(extra)
    result = run_command(argv, timeout=timeout, input=data if data is not None else None)
    if result.returncode != 0:
        raise AssertionError(f"mosquitto_pub exited {result.returncode}: "
                             f"{result.stderr.decode(errors='replace')}")


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    # MosquittoSub(extra_format=...): the extra fields printed, in order (not compared).
    extra: list = field(default_factory=list, compare=False)


class MosquittoSub:
    """mosquitto_sub as a subprocess; its messages (-F with a hex payload) go to a queue. Debug
    output (-d) tells when the SUBACK came back, so tests never publish before the subscription
    exists."""

    FORMAT = r"M\t%q\t%r\t%t\t%x"

    def __init__(self, port: int, topics, qos: int = 0, client_id: Optional[str] = None,
                 clean_session: bool = True, version: str = "mqttv311", will=None,
                 extra: Iterable[str] = (), extra_format: Optional[str] = None):
        """`extra_format`: more -F sequences (e.g. r"%P\\t%C" for MQTT 5 properties), printed
        after the standard fields, tab-separated; they land in Message.extra."""
        if isinstance(topics, str):
            topics = [topics]
        fmt = self.FORMAT + (r"\t" + extra_format if extra_format else "")
        # Line-buffered stdout (stdbuf): the SUBACK line must reach us when it is printed.
        argv = ([STDBUF, "-oL"] if STDBUF else []) + [
            MOSQUITTO_SUB, "-h", HOST, "-p", str(port), "-q", str(qos), "-V", version, "-d",
            "-F", fmt]
        for t in topics:
            argv += ["-t", t]
        if client_id is not None:
            argv += ["-i", client_id]
        if not clean_session:
            argv.append("-c")
        if will is not None:
            w_topic, w_payload, w_qos, w_retain = will
            argv += ["--will-topic", w_topic, "--will-payload", w_payload, "--will-qos", str(w_qos)]
            if w_retain:
                argv.append("--will-retain")
        argv += list(extra)
        self.argv = argv
        self.messages: "queue.Queue[Message]" = queue.Queue()
        self.subscribed = threading.Event()
        self.granted: list[int] = []
        self.output: list[str] = []
        self.proc = spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.output.append(line)
            if line.startswith("M\t"):
                parts = line.split("\t")
                if len(parts) >= 5:
                    self.messages.put(Message(parts[3], bytes.fromhex(parts[4]), int(parts[1]),
                                              parts[2] == "1", parts[5:]))
            elif line.startswith("Subscribed (mid:"):
                try:
                    self.granted = [int(x) for x in line.split(":", 2)[2].split(",")]
                except ValueError:
                    pass
                self.subscribed.set()

    def wait_subscribed(self, timeout: float = WAIT) -> "MosquittoSub":
        if not self.subscribed.wait(timeout):
            raise AssertionError(f"mosquitto_sub got no SUBACK in {timeout} s; output:\n"
                                 + "\n".join(self.output[-20:]))
        return self

    def get(self, timeout: float = WAIT) -> Message:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"mosquitto_sub received nothing in {timeout} s; running="
                                 f"{self.proc.poll() is None}; output:\n"
                                 + "\n".join(self.output[-20:])) from None

    def collect(self, count: int, timeout: float = WAIT) -> list:
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"mosquitto_sub received {len(got)} of {count} messages in "
                                     f"{timeout} s: {got[-5:]!r}")
            try:
                got.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                pass
        return got

    def expect_nothing(self, duration: float = 0.5) -> None:
        try:
            m = self.messages.get(timeout=duration)
        except queue.Empty:
            return
        raise AssertionError(f"mosquitto_sub received an unexpected message: {m!r}")

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        kill_and_reap(self.proc, sig)
        self._reader.join(WAIT)
        if not self._reader.is_alive() and self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


# --------------------------------------------------------------------------------------------
# paho-mqtt 1.6.1.

try:
    import paho.mqtt.client as mqtt  # Debian python3-paho-mqtt, for /usr/bin/python3
except ImportError:  # pragma: no cover: reported by the tests that need it
    mqtt = None


class PahoClient:
    """A paho client on its own network thread, with every wait bounded. Received messages go to
    a queue as Message. mqtt5.Paho5 extends it with MQTT 5 properties and reason codes."""

    DEFAULT_PROTOCOL = "MQTTv311"  # the name of a paho protocol constant

    def __init__(self, port: int, client_id: str = "", clean_session: Optional[bool] = True,
                 protocol: Optional[int] = None, will=None, keepalive: int = 60):
        if mqtt is None:
            raise unittest.SkipTest("paho-mqtt is not installed for this interpreter "
                                    "(run the tests with /usr/bin/python3)")
        self.port = port
        self.protocol = getattr(mqtt, self.DEFAULT_PROTOCOL) if protocol is None else protocol
        kwargs = {"client_id": client_id, "protocol": self.protocol}
        if self.protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = clean_session
        self.client = mqtt.Client(**kwargs)
        self.keepalive = keepalive
        if will is not None:
            self._set_will(will)
        self.messages: queue.Queue = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack: Optional[tuple] = None
        self.connack_rc: Optional[int] = None
        self.disconnect_rc: Optional[int] = None
        self._cond = threading.Condition()
        self._subacks: dict = {}
        self._published: set = set()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self._started = False

    def _set_will(self, will) -> None:
        """`will`: (topic, payload, qos, retain)."""
        w_topic, w_payload, w_qos, w_retain = will
        self.client.will_set(w_topic, w_payload, w_qos, w_retain)

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connack = (flags, rc)
        self.connack_rc = reason_value(rc)
        self.connected.set()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.disconnect_rc = reason_value(rc)
        self.disconnected.set()

    def _on_message(self, client, userdata, msg):
        self.messages.put(Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self._cond:
            self._subacks[mid] = [reason_value(g) for g in granted]
            self._cond.notify_all()

    def _on_publish(self, client, userdata, mid):
        with self._cond:
            self._published.add(mid)
            self._cond.notify_all()

    def _connect_kwargs(self) -> dict:
        """More arguments for paho's connect()."""
        return {}

    def connect(self, timeout: float = WAIT, expect_rc: Optional[int] = 0) -> tuple:
        """Connects and waits for the CONNACK (with return code `expect_rc` unless that is None);
        returns (flags, rc)."""
        self.client.connect(HOST, self.port, self.keepalive, **self._connect_kwargs())
        self.client.loop_start()
        self._started = True
        if not self.connected.wait(timeout):
            raise AssertionError(f"paho: no CONNACK in {timeout} s")
        if expect_rc is not None and self.connack_rc != expect_rc:
            raise AssertionError(f"paho: CONNACK {self.connack_rc}, expected {expect_rc}")
        assert self.connack is not None
        return self.connack

    def _acknowledged(self, request: str, result: int, mid: int, acks: dict, ack: str,
                      timeout: float):
        """After paho's subscribe() or unsubscribe(): checks it sent the request and waits for
        the answer; returns the reason codes the network thread put in `acks`."""
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"paho {request} failed: {result}")
        with self._cond:
            if not self._cond.wait_for(lambda: mid in acks, timeout):
                raise AssertionError(f"paho: no {ack} in {timeout} s")
            return acks[mid]

    def subscribe(self, topic: str, qos: int = 0, timeout: float = WAIT) -> list:
        """Subscribes and waits for the SUBACK; returns its return codes."""
        result, mid = self.client.subscribe(topic, qos)
        return self._acknowledged("subscribe", result, mid, self._subacks, "SUBACK", timeout)

    def publish(self, topic: str, payload=b"", qos: int = 0, retain: bool = False,
                timeout: float = WAIT, **kwargs) -> None:
        """Publishes and, for QoS 1/2, waits until the flow completes. `kwargs` go to paho's
        publish() (properties=...)."""
        info = self.client.publish(topic, payload, qos, retain, **kwargs)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"paho publish failed: {info.rc}")
        with self._cond:
            if not self._cond.wait_for(lambda: info.mid in self._published, timeout):
                raise AssertionError(f"paho: publish {info.mid} not completed in {timeout} s")

    def get(self, timeout: float = WAIT):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"paho received nothing in {timeout} s") from None

    def expect_nothing(self, duration: float = 0.5) -> None:
        try:
            m = self.messages.get(timeout=duration)
        except queue.Empty:
            return
        raise AssertionError(f"paho received an unexpected message: {m!r}")

    def disconnect(self, timeout: float = WAIT, **kwargs) -> None:
        """Sends DISCONNECT and stops the network thread. `kwargs` go to paho's disconnect()
        (reasoncode=..., properties=...)."""
        if self._started:
            self.client.disconnect(**kwargs)
            self.disconnected.wait(timeout)
            self.stop()

    def stop(self) -> None:
        """Stops the network thread and closes the socket (no DISCONNECT)."""
        if self._started:
            self._started = False
            self.client.loop_stop()
            try:
                sock = self.client.socket()
                if sock is not None:
                    sock.close()
            except Exception:
                pass


def reason_value(rc) -> int:
    """A paho return or reason code as an int (paho gives MQTT 5 ones as ReasonCodes)."""
    return rc if isinstance(rc, int) else rc.value


# --------------------------------------------------------------------------------------------
# unittest glue.


def broker_config(limits: Optional[dict] = None, mqtt: Optional[dict] = None):
    """Decorates one BrokerTestCase test method: its broker gets these [limits] / [mqtt] settings
    on top of the class's (`limits`, `mqtt_config`), e.g.

        @harness.broker_config(mqtt={"retain_available": False})
        def test_retain_refused(self): ...
    """
    def mark(method):
        method.broker_limits = dict(limits or {})
        method.broker_mqtt = dict(mqtt or {})
        return method
    return mark


def not_on_mosquitto(reason: str):
    """Skips a test method (or class) on mosquitto, before its broker starts: for settings
    mosquitto refuses, or where mosquitto deviates from the specification (name the rule)."""
    return unittest.skipIf(is_mosquitto(), f"mosquitto: {reason}")


class BrokerTestCase(unittest.TestCase):
    """Starts a fresh broker for every test (self.broker, self.port) and stops it afterwards:
    SIGTERM must make tinymq exit 0, and its stderr must hold no sanitizer report. Clients made
    with the helpers below are closed before the broker stops.

    The broker's configuration: the class attributes `limits` ([limits]) and `mqtt_config`
    ([mqtt]), overridden key by key by a @broker_config(...) on the test method, and `workers`
    (the top-level key). On mosquitto, a test whose [mqtt] settings mosquitto cannot reproduce is
    skipped (Broker.mosquitto_unsupported).
    """

    # tinymq [limits] for this class's brokers, e.g. {"connect_timeout_ms": 1000}.
    limits: Optional[dict] = None
    # tinymq [mqtt] for this class's brokers, e.g. {"maximum_qos": 1}.
    mqtt_config: Optional[dict] = None
    # tinymq's `workers` for this class's brokers (None: not written, tinymq's default; ignored
    # by mosquitto).
    workers: Optional[int] = None

    def broker_settings(self) -> tuple[dict, dict]:
        """([limits], [mqtt]) for this test: the class's, then the method's @broker_config."""
        method = getattr(self, self._testMethodName, None)
        limits = {**(self.limits or {}), **getattr(method, "broker_limits", {})}
        mqtt_settings = {**(self.mqtt_config or {}), **getattr(method, "broker_mqtt", {})}
        return limits, mqtt_settings

    def setUp(self) -> None:
        faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)
        limits, mqtt_settings = self.broker_settings()
        self.broker = Broker(limits, mqtt=mqtt_settings, workers=self.workers)
        self.addCleanup(self.broker.cleanup)
        if self.broker.kind == "mosquitto" and self.broker.mosquitto_unsupported():
            self.skipTest("mosquitto has no equivalent of [mqtt] "
                          + ", ".join(self.broker.mosquitto_unsupported()))
        self.broker.start()
        self.addCleanup(self._stop_broker)
        self.port = self.broker.port

    def _stop_broker(self) -> None:
        problems = self.broker.stop()
        if problems:
            self.fail("broker problems:\n" + "\n".join(problems))

    def broker_log_tail(self) -> str:
        return self.broker.log_tail()

    # Client factories; every client is closed in clean-up (before the broker stops).

    def raw(self, timeout: float = WAIT) -> RawClient:
        c = RawClient(self.port, timeout)
        self.addCleanup(c.close)
        return c

    def raw_connected(self, client_id: str = "", clean_session: bool = True, keepalive: int = 60,
                      will=None) -> RawClient:
        c = self.raw()
        c.connect(client_id, clean_session, keepalive, will)
        return c

    def sub(self, topics, qos: int = 0, **kwargs) -> MosquittoSub:
        """A mosquitto_sub that has its SUBACK."""
        s = MosquittoSub(self.port, topics, qos, **kwargs)
        self.addCleanup(s.stop)
        return s.wait_subscribed()

    def pub(self, topic: str, message=None, qos: int = 0, **kwargs) -> None:
        mosquitto_pub(self.port, topic, message, qos, **kwargs)

    def paho(self, client_id: str = "", **kwargs) -> PahoClient:
        c = PahoClient(self.port, client_id, **kwargs)
        self.addCleanup(c.stop)
        return c

    def skip_on_mosquitto(self, reason: str) -> None:
        if is_mosquitto():
            self.skipTest(f"mosquitto: {reason}")


def main() -> None:
    """unittest.main with `--tinymq PATH` (or `--tinymq=PATH`) taken out of argv first."""
    argv = list(sys.argv)
    for i, arg in enumerate(argv):
        if arg == "--tinymq" and i + 1 < len(argv):
            os.environ["TINYMQ_BIN"] = argv[i + 1]
            del argv[i:i + 2]
            break
        if arg.startswith("--tinymq="):
            os.environ["TINYMQ_BIN"] = arg.split("=", 1)[1]
            del argv[i]
            break
    print(f"broker under test: {broker_kind()} ({broker_binary()})", file=sys.stderr, flush=True)
    unittest.main(module="__main__", argv=argv, verbosity=2)
