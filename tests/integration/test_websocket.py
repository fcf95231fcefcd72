#!/usr/bin/python3
"""MQTT over WebSocket listeners (issue #8: a listener with `websocket = true`; RFC 6455, MQTT 5.0
§6 and 3.1.1 §6): real JavaScript clients and a browser, plus our own frames.

  * MQTT.js in Node.js (tests/js/mqttjs_client.mjs) over ws://, MQTT 3.1.1 and 5.0: QoS 0/1/2 to
    itself; to and from mosquitto_sub / mosquitto_pub on the same broker's TCP listener; a
    512 KiB message; over wss:// with a self-signed certificate (tinymq only: the harness writes
    TLS listeners for tinymq only).
  * The browser test (the issue's "done when"): tests/js/browser/index.html in Debian's headless
    Chromium (tests/js/browser_driver.mjs, playwright-core) connects over WebSocket, subscribes
    and publishes; mosquitto_sub over TCP receives the page's message, and the page shows the
    one mosquitto_pub sends it.
  * Raw frames from Python: an MQTT packet split across frames, a fragmented message with a ping
    between its fragments, an unmasked frame, a text frame, bad upgrade requests (exact HTTP
    statuses for tinymq; for mosquitto, whose libwebsockets answers differently, only "no 101 and
    the connection ends"), and a normal client on the same broker afterwards.

The JavaScript side needs node, tests/js/node_modules (scripts/install-deps.sh runs `npm ci`) and,
for the browser, /usr/bin/chromium. Without them those tests skip, saying what is missing, unless
TINYMQ_REQUIRE_BROWSER or CI is set in the environment: then they fail.

Against mosquitto (BROKER=mosquitto), which must be built with websockets (Debian's 2.0.11 is):
the harness maps a plain websocket listener to `listener PORT 127.0.0.1` + `protocol websockets`.
"""

from __future__ import annotations

import base64
import faulthandler
import hashlib
import json
import os
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
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOST, WAIT  # noqa: E402

JS_DIR = harness.REPO / "tests" / "js"
NODE = shutil.which("node")
CHROMIUM = "/usr/bin/chromium"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
# Set: a missing node, node_modules or chromium fails the tests that need them instead of skipping.
REQUIRE_JS = bool(os.environ.get("TINYMQ_REQUIRE_BROWSER") or os.environ.get("CI"))
# Bound for one MQTT.js run (the client's own --timeout; this file waits a little longer).
JS_TIMEOUT = 15.0
# Bound for the browser driver's whole run: Chromium takes 3-5 s to start on a 2-core machine.
BROWSER_TIMEOUT = 22.0

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


# --------------------------------------------------------------------------------------------
# WebSocket frames, client side (RFC 6455 §5).


def ws_frame(opcode: int, payload: bytes = b"", fin: bool = True, mask: bool = True) -> bytes:
    """One frame as a client sends it: masked (with a random key) unless `mask` is False."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def upgrade_request(path: str = "/mqtt", key: Optional[str] = None, version: str = "13",
                    method: str = "GET", protocol: Optional[str] = "mqtt",
                    omit: tuple = ()) -> bytes:
    """An HTTP/1.1 upgrade request; header fields named in `omit` are left out."""
    fields = {"Host": f"{HOST}", "Upgrade": "websocket", "Connection": "Upgrade",
              "Sec-WebSocket-Key": key or base64.b64encode(os.urandom(16)).decode(),
              "Sec-WebSocket-Version": version}
    if protocol is not None:
        fields["Sec-WebSocket-Protocol"] = protocol
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in fields.items() if name not in omit)
    return (head + "\r\n").encode()


@dataclass
class HttpResponse:
    status_line: str
    status: int
    headers: dict  # lower-case names
    rest: bytes    # what came after the head (body, or the first frames)
    closed: bool   # the server closed the connection (EOF) within the wait


def read_http_response(sock: socket.socket, timeout: float = WAIT,
                       until_eof: bool = False) -> HttpResponse:
    """Reads a response head (and, with `until_eof`, everything up to EOF) within `timeout`."""
    deadline = time.monotonic() + timeout
    data = b""
    closed = False
    while (until_eof or b"\r\n\r\n" not in data) and not closed:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            closed = True
        data += chunk
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return HttpResponse(data.decode("latin-1")[:200], 0, {}, b"", closed)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HttpResponse(lines[0], status, headers, rest, closed)


class WsClosed(harness.ConnectionClosed):
    """The server sent a close frame (code, or None without one) or closed the TCP connection."""

    def __init__(self, message: str, code: Optional[int] = None):
        super().__init__(message)
        self.code = code


class WsMqttClient(harness.RawClient):
    """harness.RawClient over a WebSocket: MQTT bytes go out in masked binary frames (send()), and
    the payload of the binary frames received is the MQTT byte stream that recv() parses. Pongs
    are kept in `pongs`; a close frame ends the stream (WsClosed with its code). Frames a server
    must not send (masked, RSV bits, text) are ProtocolViolations."""

    def __init__(self, port: int, path: str = "/mqtt", timeout: float = WAIT):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()     # MQTT bytes
        self.wsbuf = bytearray()   # WebSocket bytes not parsed yet
        self.timeout = timeout
        self.closed_by_peer = False
        self.eof = False
        self.close_code: Optional[int] = None
        self.pongs: list[bytes] = []
        self._next_id = 0
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(upgrade_request(path, key))
        self.response = read_http_response(self.sock, timeout)
        if self.response.status != 101:
            raise AssertionError(f"upgrade refused: {self.response.status_line!r}")
        if self.response.headers.get("sec-websocket-accept") != ws_accept(key):
            raise AssertionError(f"bad Sec-WebSocket-Accept in {self.response.headers!r}")
        self.wsbuf += self.response.rest

    def send(self, data: bytes) -> None:
        self.sock.sendall(ws_frame(OP_BINARY, data))

    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True,
                   mask: bool = True) -> None:
        self.sock.sendall(ws_frame(opcode, payload, fin, mask))

    def _parse_frame(self) -> Optional[tuple]:
        b = self.wsbuf
        if len(b) < 2:
            return None
        fin, rsv, opcode = bool(b[0] & 0x80), b[0] & 0x70, b[0] & 0x0F
        masked, n, pos = bool(b[1] & 0x80), b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, pos = struct.unpack(">H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, pos = struct.unpack(">Q", b[2:10])[0], 10
        if masked:
            raise harness.ProtocolViolation(f"the server sent a masked frame: {bytes(b[:14])!r}")
        if rsv:
            raise harness.ProtocolViolation(f"the server set RSV bits: {bytes(b[:2])!r}")
        if opcode not in (OP_CONT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
            raise harness.ProtocolViolation(f"the server sent a frame with opcode {opcode:#x} "
                                            "(MQTT goes in binary frames only)")
        if len(b) < pos + n:
            return None
        payload = bytes(b[pos:pos + n])
        del b[:pos + n]
        return fin, opcode, payload

    def recv_frame(self, deadline: float) -> tuple:
        """The next frame (fin, opcode, payload); TimeoutError at `deadline`, WsClosed on EOF."""
        while True:
            f = self._parse_frame()
            if f is not None:
                return f
            if self.eof:
                raise WsClosed("EOF", self.close_code)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the server in time")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no frame from the server in time") from None
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.eof = True
            self.wsbuf += chunk

    def _fill(self, deadline: float) -> None:
        try:
            fin, opcode, payload = self.recv_frame(deadline)
        except WsClosed:
            self.closed_by_peer = True
            raise
        if opcode in (OP_BINARY, OP_CONT):
            self.buf += payload
        elif opcode == OP_PONG:
            self.pongs.append(payload)
        elif opcode == OP_PING:
            self.send_frame(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
            self.closed_by_peer = True
            raise WsClosed(f"close frame {self.close_code}", self.close_code)

    def wait_pong(self, timeout: float = WAIT) -> bytes:
        deadline = time.monotonic() + timeout
        while not self.pongs:
            self._fill(deadline)
        return self.pongs.pop(0)

    def expect_end(self, timeout: float = WAIT) -> tuple:
        """Waits until the server ends the connection: EOF, after a close frame or not. Returns
        (the close code or None, the MQTT packets received before). AssertionError if the
        connection is still open after `timeout` s."""
        deadline = time.monotonic() + timeout
        packets = []
        while not self.eof:
            try:
                packets.append(self.recv(max(0.001, deadline - time.monotonic())))
            except WsClosed:
                # A close frame (or EOF): from now on only EOF is expected.
                try:
                    while not self.eof:
                        self.recv_frame(deadline)
                except WsClosed:
                    pass
                except TimeoutError:
                    raise AssertionError(f"close frame {self.close_code} but no EOF within "
                                         f"{timeout} s") from None
            except TimeoutError:
                raise AssertionError(f"connection still open after {timeout} s "
                                     f"(received {packets!r})") from None
        return self.close_code, packets


# --------------------------------------------------------------------------------------------
# Node.js processes: mqttjs_client.mjs and browser_driver.mjs.


class NodeProcess:
    """A script of tests/js run by node, in its own process group (killed, with whatever it
    started, in the test's clean-up); its stdout is JSON lines (events), its stderr is kept."""

    def __init__(self, case: unittest.TestCase, script: str, args: list,
                 env: Optional[dict] = None):
        self.argv = [NODE, str(JS_DIR / script), *[str(a) for a in args]]
        self.proc = harness.spawn(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, start_new_session=True,
                                  env={**os.environ, **(env or {})})
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self._cond = threading.Condition()
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._readers:
            t.start()
        case.addCleanup(self.kill)

    def _read_stdout(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "unparsed", "line": line}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode(errors="replace").rstrip("\n"))

    def describe(self) -> str:
        return (f"{' '.join(self.argv[1:])[:300]}\n--- stdout events ---\n"
                + "\n".join(json.dumps(e)[:300] for e in self.events[-20:])
                + "\n--- stderr ---\n" + "\n".join(self.stderr[-30:]))

    def wait_event(self, name: str, timeout: float) -> dict:
        """The first event named `name`; fails if the process ends or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if e.get("event") == name:
                        return e
                if self.proc.poll() is not None and not self._readers[0].is_alive():
                    raise AssertionError(f"node exited {self.proc.returncode} before "
                                         f"{name!r}: {self.describe()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {name!r} from node in {timeout} s: "
                                         f"{self.describe()}")
                self._cond.wait(min(remaining, 0.1))

    def wait_exit(self, timeout: float) -> int:
        """Waits for the exit (killing at `timeout`: AssertionError); its status."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"node still running after {timeout} s: {self.describe()}")
        for t in self._readers:
            t.join(WAIT)
        harness.forget(self.proc)
        return self.proc.returncode

    def finish(self, timeout: float) -> list:
        """Waits for the exit (killing at `timeout`); fails unless it exited 0. Its events."""
        if self.wait_exit(timeout) != 0:
            raise AssertionError(f"node exited {self.proc.returncode}: {self.describe()}")
        return self.events

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        harness.kill_and_reap(self.proc)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except Exception:
                pass


def messages(events: list) -> list:
    return [e for e in events if e.get("event") == "message"]


def payload_of(event: dict) -> bytes:
    return base64.b64decode(event["payload_b64"])


def self_signed_certificate(directory: Path) -> tuple:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    cert, key = directory / "ws-server.pem", directory / "ws-server.key"
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return str(cert), str(key)


# --------------------------------------------------------------------------------------------
# The tests.


class WebSocketTest(unittest.TestCase):
    """Each test starts its own broker: its TCP listener on broker.port and a WebSocket one on
    self.ws_port (wss: `tls` given)."""

    def setUp(self):
        faulthandler.dump_traceback_later(harness.TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)

    # Set-up helpers. --------------------------------------------------------------------

    def need_js(self, browser: bool = False) -> None:
        """Skips (or, with TINYMQ_REQUIRE_BROWSER or CI set, fails) when what the JavaScript
        clients need is missing."""
        missing = []
        if NODE is None:
            missing.append("node is not on PATH")
        packages = ["mqtt"] + (["playwright-core"] if browser else [])
        for package in packages:
            if not (JS_DIR / "node_modules" / package / "package.json").is_file():
                missing.append(f"tests/js/node_modules/{package} is not installed")
        if browser and not os.access(CHROMIUM, os.X_OK):
            missing.append(f"{CHROMIUM} is missing (Debian package chromium)")
        if not missing:
            return
        reason = "; ".join(missing) + " (scripts/install-deps.sh installs them)"
        if REQUIRE_JS:
            self.fail(f"{reason}; not skipped because TINYMQ_REQUIRE_BROWSER or CI is set")
        self.skipTest(reason)

    def start(self, tls: Optional[dict] = None) -> harness.Broker:
        """A broker with a WebSocket listener (a wss one with `tls`) on self.ws_port besides its
        TCP listener on self.port."""
        def make() -> harness.Broker:
            self.ws_port = harness.free_port()
            listener = {"port": self.ws_port, "websocket": True}
            if tls:
                listener["tls"] = tls
            return harness.Broker(extra_listeners=[listener])
        broker = harness.start_with_free_ports(make)
        self.addCleanup(broker.cleanup)
        self.addCleanup(self._stop, broker)
        self.broker, self.port = broker, broker.port
        # The harness waits for broker.port only; mosquitto opens its WebSocket listener after
        # its TCP one.
        if not harness.wait_until(lambda: self._accepts(self.ws_port), timeout=10.0):
            self.fail(f"the WebSocket listener on {self.ws_port} does not accept:\n"
                      + broker.log_tail())
        return broker

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            return False

    def _stop(self, broker: harness.Broker) -> None:
        problems = broker.stop()
        if problems:
            self.fail("broker problems:\n" + "\n".join(problems))

    def ws_url(self, path: str = "/mqtt", scheme: str = "ws") -> str:
        return f"{scheme}://{HOST}:{self.ws_port}{path}"

    def mqttjs(self, client_id: str, version: int, steps: list, url: Optional[str] = None,
               options: tuple = ()) -> NodeProcess:
        """mqttjs_client.mjs running `steps` (see its header); returns at once."""
        args = ["--timeout", JS_TIMEOUT, *options, url or self.ws_url(), client_id, version,
                *steps]
        return NodeProcess(self, "mqttjs_client.mjs", args)

    def run_mqttjs(self, client_id: str, version: int, steps: list, **kwargs) -> list:
        """mqttjs_client.mjs to its end (exit 0); its events."""
        return self.mqttjs(client_id, version, steps, **kwargs).finish(JS_TIMEOUT + 5)

    def sub(self, topics, qos: int = 1, version: str = "mqttv311") -> harness.MosquittoSub:
        s = harness.MosquittoSub(self.port, topics, qos, version=version)
        self.addCleanup(s.stop)
        return s.wait_subscribed()

    def ws_client(self, path: str = "/mqtt") -> WsMqttClient:
        c = WsMqttClient(self.ws_port, path)
        self.addCleanup(c.close)
        return c

    # a. MQTT.js to itself, QoS 0/1/2. ----------------------------------------------------

    def round_trip(self, version: int) -> None:
        self.need_js()
        self.start()
        events = self.run_mqttjs(f"js-rt-{version}", version, [
            "sub", "rt/#", "2",
            "pub", "rt/q0", "0", "zero", "pub", "rt/q1", "1", "one", "pub", "rt/q2", "2", "two",
            "recv", "3", "sleep", "300"])
        self.assertEqual(events[0]["event"], "connected")
        self.assertEqual(events[0]["reasonCode"], 0)
        subscribed = [e for e in events if e["event"] == "subscribed"]
        self.assertEqual(subscribed[0]["granted"], [2])
        got = sorted((m["topic"], m["qos"], payload_of(m), m["retain"]) for m in messages(events))
        # Each message once, at the QoS it was published with (the subscription allows 2).
        self.assertEqual(got, [("rt/q0", 0, b"zero", False), ("rt/q1", 1, b"one", False),
                               ("rt/q2", 2, b"two", False)])
        self.assertEqual(events[-1], {"event": "done", "received": 3})

    def test_mqttjs_round_trip_mqtt311(self):
        self.round_trip(4)

    def test_mqttjs_round_trip_mqtt5(self):
        self.round_trip(5)

    # b. MQTT.js over WebSocket <-> the mosquitto clients over TCP. -----------------------

    def test_mqttjs_and_mosquitto_clients_cross(self):
        self.need_js()
        self.start()
        tcp_sub = self.sub("cross/to-tcp", qos=2, version="mqttv5")
        js = self.mqttjs("js-cross", 5, ["sub", "cross/to-ws/#", "2", "recv", "2",
                                          "pub", "cross/to-tcp", "1", "from MQTT.js over ws",
                                          "pub", "cross/to-tcp", "2", "second from ws"])
        js.wait_event("subscribed", JS_TIMEOUT)
        # mosquitto_pub over TCP -> MQTT.js over WebSocket.
        harness.mosquitto_pub(self.port, "cross/to-ws/a", "from mosquitto_pub", qos=1)
        harness.mosquitto_pub(self.port, "cross/to-ws/b", "again over tcp", qos=2)
        events = js.finish(JS_TIMEOUT + 5)
        got = sorted((m["topic"], m["qos"], payload_of(m)) for m in messages(events))
        self.assertEqual(got, [("cross/to-ws/a", 1, b"from mosquitto_pub"),
                               ("cross/to-ws/b", 2, b"again over tcp")])
        # MQTT.js over WebSocket -> mosquitto_sub over TCP.
        got = [(m.topic, m.qos, m.payload) for m in tcp_sub.collect(2)]
        self.assertEqual(got, [("cross/to-tcp", 1, b"from MQTT.js over ws"),
                               ("cross/to-tcp", 2, b"second from ws")])
        tcp_sub.expect_nothing(0.2)

    # c. A browser page. ------------------------------------------------------------------

    def test_browser_page_over_websocket(self):
        """Headless Chromium loads a page that connects over WebSocket with MQTT.js, subscribes
        and publishes: mosquitto_sub over TCP receives the page's message, and the page shows
        (in its DOM, read by the driver) the message mosquitto_pub sends it over TCP."""
        self.need_js(browser=True)
        self.start()
        tcp_sub = self.sub("browser/out", qos=1)
        # Chromium's profile and temporary files go in a directory of this test's, removed even
        # when the driver is killed before it could remove them.
        tmp = tempfile.mkdtemp(prefix="tinymq-it-browser-")
        self.addCleanup(shutil.rmtree, tmp, True)
        driver = NodeProcess(self, "browser_driver.mjs", [
            "--ws", self.ws_url("/mqtt"), "--sub", "browser/in/#", "--pub", "browser/out",
            "--payload", "hello from chromium", "--expect", "hello from mosquitto_pub",
            "--id", "chromium-page", "--timeout", BROWSER_TIMEOUT], env={"TMPDIR": tmp})
        subscribed = driver.wait_event("subscribed", BROWSER_TIMEOUT)
        self.assertEqual(subscribed["published"], "browser/out hello from chromium")
        m = tcp_sub.get()
        self.assertEqual((m.topic, m.payload), ("browser/out", b"hello from chromium"))
        harness.mosquitto_pub(self.port, "browser/in/tcp", "hello from mosquitto_pub", qos=1)
        events = driver.finish(BROWSER_TIMEOUT)
        received = [e for e in events if e["event"] == "received"][0]["messages"]
        self.assertEqual(received, [{"topic": "browser/in/tcp",
                                     "payload": "hello from mosquitto_pub"}])

    # d. wss. --------------------------------------------------------------------------------

    @harness.not_on_mosquitto("the harness writes TLS (wss) listeners for tinymq only")
    def test_mqttjs_over_wss_self_signed(self):
        self.need_js()
        root = Path(tempfile.mkdtemp(prefix="tinymq-it-wss-"))
        self.addCleanup(shutil.rmtree, root, True)
        cert, key = self_signed_certificate(root)
        self.start(tls={"cert": cert, "key": key})
        url = self.ws_url("/mqtt", scheme="wss")
        steps = ["sub", "wss/#", "1", "pub", "wss/a", "1", "over TLS", "recv", "1"]
        # Verified against the certificate (its own CA), then without verification.
        for version, options in ((5, ("--ca", cert)), (4, ("--insecure",))):
            with self.subTest(options=options):
                events = self.run_mqttjs(f"js-wss-{version}", version, steps, url=url,
                                         options=options)
                self.assertEqual([(m["topic"], payload_of(m)) for m in messages(events)],
                                 [("wss/a", b"over TLS")])
        # Verification on and no CA given: the self-signed certificate is refused, so the
        # listener did speak TLS (and the client checks it). Exit 1 is an error (3: a timeout).
        js = self.mqttjs("js-wss-untrusted", 4, steps, url=url)
        self.assertEqual(js.wait_exit(JS_TIMEOUT + 5), 1, js.describe())
        self.assertIn("self-signed certificate", "\n".join(js.stderr))
        # Plain ws:// to the wss listener: an error at once, no MQTT session.
        js = self.mqttjs("js-wss-plain", 4, steps, url=self.ws_url("/mqtt"))
        self.assertEqual(js.wait_exit(JS_TIMEOUT + 5), 1, js.describe())
        self.assertNotIn("connected", [e["event"] for e in js.events])

    # e. Raw frames. -----------------------------------------------------------------------

    def test_frames_split_fragmented_and_control_frames_interleaved(self):
        self.start()
        c = self.ws_client("/any/path?at=all")
        # The subprotocol asked for is the one chosen (MQTT 5.0 §6, [MQTT-6.0.0-4]).
        self.assertEqual(c.response.headers.get("sec-websocket-protocol"), "mqtt")
        # A CONNECT split across two binary messages ([MQTT-6.0.0-2]: packets are not aligned
        # on frame boundaries).
        connect = harness.encode_connect("ws-split", keepalive=30)
        half = len(connect) // 2
        c.send_frame(OP_BINARY, connect[:half])
        c.send_frame(OP_BINARY, connect[half:])
        self.assertEqual(c.expect(harness.CONNACK).return_code, 0)
        # A PINGREQ (2 bytes) as one message of 3 fragments, 0xC0 | ping | 0x00 | (empty, FIN),
        # with a ping control frame between the first two (RFC 6455 §5.4).
        c.send_frame(OP_BINARY, b"\xc0", fin=False)
        c.send_frame(OP_PING, b"tinymq-ping-42")
        c.send_frame(OP_CONT, b"\x00", fin=False)
        c.send_frame(OP_CONT, b"", fin=True)
        self.assertEqual(c.wait_pong(), b"tinymq-ping-42")
        c.expect(harness.PINGRESP)
        # Several packets in one frame, and a publish to ourselves.
        c.send(harness.encode_subscribe(1, [("ws/self", 1)]) + harness.encode_publish(
            "ws/self", b"x" * 300, qos=1, packet_id=2))
        got = sorted(c.recv().name for _ in range(3))
        self.assertEqual(got, ["PUBACK", "PUBLISH", "SUBACK"])
        # A clean end: DISCONNECT, then a close frame, answered by a close frame and EOF.
        c.send(harness.encode_disconnect())
        c.send_frame(OP_CLOSE, struct.pack(">H", 1000))
        code, packets = c.expect_end()
        self.assertEqual(packets, [])
        self.assertIn(code, (1000, None))

    def assert_connection_ends(self, c: WsMqttClient, tinymq_code: int, what: str) -> None:
        code, packets = c.expect_end()
        self.assertEqual(packets, [], f"the broker answered {what}")
        if not harness.is_mosquitto() and code is not None:
            self.assertEqual(code, tinymq_code, f"close code after {what}")

    @harness.not_on_mosquitto("libwebsockets 4.1.6 processes an unmasked client frame and "
                              "stays open (RFC 6455 §5.1)")
    def test_unmasked_client_frame_ends_the_connection(self):
        # RFC 6455 §5.1: a server MUST close the connection on an unmasked client frame.
        self.start()
        c = self.ws_client()
        c.connect("ws-unmasked")
        c.send_frame(OP_BINARY, harness.encode_pingreq(), mask=False)
        self.assert_connection_ends(c, 1002, "an unmasked frame")

    @harness.not_on_mosquitto("it routes a PUBLISH sent in a text frame and stays open "
                              "([MQTT-6.0.0-1])")
    def test_text_frame_ends_the_connection(self):
        # [MQTT-6.0.0-1]: MQTT goes in binary frames; any other data frame closes the connection.
        # The text frame holds a valid UTF-8 PUBLISH that must not be routed.
        self.start()
        tcp_sub = self.sub("ws/text", qos=0)
        c = self.ws_client()
        c.connect("ws-text")
        publish = harness.encode_publish("ws/text", b"as text", qos=0)
        publish.decode("utf-8")  # valid UTF-8: only the opcode is wrong
        c.send_frame(OP_TEXT, publish)
        self.assert_connection_ends(c, 1003, "a text frame")
        tcp_sub.expect_nothing(0.3)

    def test_bad_upgrade_requests_then_a_good_client(self):
        """Each refused with an HTTP error status and the connection closed (tinymq: the exact
        status; mosquitto's libwebsockets: only no 101 and the connection ends); then the broker
        still serves WebSocket and TCP clients."""
        self.start()
        # (what, request, the status tinymq answers (None: any 4xx), mosquitto upgrades it)
        cases = [
            ("Sec-WebSocket-Version 8", upgrade_request(version="8"), 426, True),
            ("no Sec-WebSocket-Key", upgrade_request(omit=("Sec-WebSocket-Key",)), 400, False),
            ("POST", upgrade_request(method="POST"), 405, True),
            ("garbage", b"\x16\x03\x01 this is not HTTP at all\r\n\r\n", None, False),
        ]
        for what, request, status, mosquitto_upgrades in cases:
            with self.subTest(what):
                if harness.is_mosquitto() and mosquitto_upgrades:
                    self.skipTest("mosquitto (libwebsockets 4.1.6) answers 101 to any "
                                  "Sec-WebSocket-Version and to POST or PUT")
                with socket.create_connection((HOST, self.ws_port), timeout=WAIT) as s:
                    try:
                        s.sendall(request)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # refused before the whole request was read: fine
                    r = read_http_response(s, WAIT, until_eof=True)
                self.assertNotEqual(r.status, 101, f"{what}: upgraded ({r.status_line!r})")
                self.assertTrue(r.closed, f"{what}: connection still open after {WAIT} s "
                                          f"(response {r.status_line!r})")
                if harness.is_mosquitto():
                    continue  # libwebsockets' statuses differ (and it may just close)
                self.assertTrue(r.status_line.startswith("HTTP/1.1 "), r.status_line)
                if status is None:
                    self.assertTrue(400 <= r.status < 500, f"{what}: {r.status_line!r}")
                else:
                    self.assertEqual(r.status, status, f"{what}: {r.status_line!r}")
                if status == 426:
                    # RFC 6455 §4.4: the versions the server speaks.
                    self.assertEqual(r.headers.get("sec-websocket-version"), "13")
        # The broker still works, over WebSocket and over TCP.
        self.assertTrue(self.broker.alive(), "the broker died")
        tcp_sub = self.sub("ws/after", qos=1)
        c = self.ws_client()
        c.connect("ws-after")
        self.assertEqual(c.subscribe([("ws/back", 1)]), [1])
        c.publish_and_complete("ws/after", b"still serving", qos=1)
        self.assertEqual(tcp_sub.get().payload, b"still serving")
        harness.mosquitto_pub(self.port, "ws/back", "and back", qos=1)
        m = c.expect(harness.PUBLISH)
        c.puback(m.packet_id)
        self.assertEqual((m.topic, m.payload), ("ws/back", b"and back"))
        c.disconnect()

    # f. A big message. --------------------------------------------------------------------

    def test_big_message_from_mqttjs(self):
        self.need_js()
        self.start()
        big = os.urandom(512 * 1024)
        root = Path(tempfile.mkdtemp(prefix="tinymq-it-ws-big-"))
        self.addCleanup(shutil.rmtree, root, True)
        (root / "big.bin").write_bytes(big)
        tcp_sub = self.sub("big/#", qos=1)
        # mosquitto 2.0.11 takes about 13 s to send 512 KiB over WebSocket (small writes, one
        # per libwebsockets writable callback): there, only the way in is checked.
        back = not harness.is_mosquitto()
        steps = ["pub-file", "big/one", "1", root / "big.bin"]
        if back:
            steps = ["sub", "big/#", "1", *steps, "recv", "1"]
        events = self.run_mqttjs("js-big", 5, steps)
        # Over TCP, intact.
        m = tcp_sub.get(timeout=10)
        self.assertEqual((m.topic, len(m.payload)), ("big/one", len(big)))
        self.assertTrue(m.payload == big, "the payload mosquitto_sub got differs")
        if not back:
            return
        # And back to MQTT.js over WebSocket (many frames the other way), intact.
        got = messages(events)
        self.assertEqual([(e["topic"], e["size"], e["sha256"]) for e in got],
                         [("big/one", len(big), hashlib.sha256(big).hexdigest())])


if __name__ == "__main__":
    harness.main()
