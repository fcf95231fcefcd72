#!/usr/bin/python3
"""Hostile clients (issue #7): one attack per test against the real binary, with a bystander.

Each test sends one attack on its own connection and checks three things:

  (a) the broker answers as MQTT 3.1.1 / 5.0 say (the statement ids are in the comments);
  (b) the broker process stays up (and, when it stops, the harness finds no sanitizer report);
  (c) a well-behaved *bystander* on another connection (a paho client from 127.0.0.2 that
      publishes QoS 1 to a topic it subscribes to, a message every ~20 ms) keeps working: after
      the attack it receives messages it sent during the attack window and after it, none lost.

Where 5.0 says the server SHOULD send DISCONNECT with a reason code before closing (§4.13.1),
tinymq does and the tests require the code; mosquitto 2.0.11 sometimes just closes, which the
tests accept only for it (`v5_error`). Where the specification leaves two answers open, both are
accepted and the comment says so.

test_malformed.py holds the single-packet malformed cases of 3.1.1 (QoS 3, reserved flags,
ill-formed UTF-8 topics, packets before CONNECT...): they are not repeated here. Resource limits
(packet sizes, memory, slow clients, connection floods, rates, quotas) are in
test_hostile_limits.py, which imports the bystander from this file.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import unittest
from typing import Iterable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402
from harness import (CONNACK, DISCONNECT, HOST, PINGRESP, PUBACK, PUBCOMP,  # noqa: E402
                     PUBLISH, PUBREC, PUBREL, SUBACK, WAIT, ConnectionClosed, encode_ack,
                     encode_connect, encode_publish, encode_string, encode_varint, frame)

# The memory checks read the broker's VmRSS / VmHWM. ASan keeps freed memory in a quarantine
# (256 MB by default) that counts as resident; a small one keeps use-after-free detection and
# lets the figures mean what the broker holds (unless the caller chose a quarantine size).
_asan_options = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
if "quarantine_size_mb" not in _asan_options:
    os.environ["ASAN_OPTIONS"] = _asan_options + ":quarantine_size_mb=16"

# The bystander connects from here: per-address limits on 127.0.0.1 cannot touch it.
BYSTANDER_ADDRESS = "127.0.0.2"
VERBOSE = "-v" in sys.argv or "--verbose" in sys.argv or os.environ.get("HOSTILE_VERBOSE")

# 5.0 reason codes (§2.4) the tests name, beyond those in mqtt5.
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_ID_NOT_FOUND = 0x92
MESSAGE_RATE_TOO_HIGH = 0x96
QUOTA_EXCEEDED = 0x97
SUBACK_FAILURE_311 = 0x80

try:
    import paho.mqtt.client as paho
except ImportError:  # pragma: no cover: reported by the tests that need it
    paho = None


def note(text: str) -> None:
    """A figure for the reader of the test output (-v): memory, latency, counts."""
    if VERBOSE:
        print(f"\n    [hostile] {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Encoding what mqtt5 cannot: properties in a given order with repeats, raw PUBLISH bodies.


def properties_raw(items: Iterable[tuple]) -> bytes:
    """Property Length + the properties [(name, value)] exactly in this order, repeats allowed
    (mqtt5.encode_properties takes a dict and cannot repeat a property)."""
    body = bytearray()
    for name, value in items:
        pid, kind = mqtt5.PROPERTY_IDS[name]
        body += encode_varint(pid) + mqtt5._encode_value(kind, value)
    return encode_varint(len(body)) + bytes(body)


def publish5_raw(topic, props: bytes = b"\x00", payload: bytes = b"", qos: int = 0,
                 packet_id: Optional[int] = None, retain: bool = False,
                 flags: Optional[int] = None) -> bytes:
    """A 5.0 PUBLISH with `props` (Property Length included) written as given."""
    if flags is None:
        flags = (qos << 1) | (0x01 if retain else 0)
    body = encode_string(topic)
    if (flags >> 1) & 0x03:
        body += packet_id.to_bytes(2, "big")
    return frame(0x30 | flags, body + props + payload)


# --------------------------------------------------------------------------------------------
# The bystander.


class Bystander:
    """A well-behaved client on its own connection, from BYSTANDER_ADDRESS: paho-mqtt (MQTT
    3.1.1, clean session) subscribed at QoS 1 to its own topic, and a thread that publishes a
    numbered QoS 1 message there every `period` seconds. It records when each message was sent
    and when it came back; anything else arriving on its topic, and any disconnection, is a
    failure (an attacker's message was routed, or the bystander was hurt)."""

    def __init__(self, port: int, tag: str, period: float = 0.02,
                 bind_address: str = BYSTANDER_ADDRESS):
        if paho is None:
            raise unittest.SkipTest("paho-mqtt is not installed for this interpreter "
                                    "(run the tests with /usr/bin/python3)")
        self.port = port
        self.topic = f"hostile/bystander/{tag}"
        self.client_id = f"bystander-{tag}"[:23]
        self.period = period
        self.bind_address = bind_address
        self.client = paho.Client(client_id=self.client_id, protocol=paho.MQTTv311,
                                  clean_session=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self._started = False
        self.connack_rc: Optional[int] = None
        self.granted: list = []
        self.sent: dict[int, float] = {}      # seq -> when published
        self.received: dict[int, float] = {}  # seq -> when it first came back
        self.duplicates = 0
        self.foreign: list = []               # (topic, payload) not ours
        self.disconnects: list = []           # (when, rc)
        self.publish_errors: list = []

    # paho callbacks (its network thread).

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connack_rc = harness.reason_value(rc)
        self._connected.set()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        self.granted = [harness.reason_value(g) for g in granted]
        self._subscribed.set()

    def _on_message(self, client, userdata, msg):
        now = time.monotonic()
        payload = bytes(msg.payload)
        seq = None
        if msg.topic == self.topic and payload.startswith(b"by:"):
            try:
                seq = int(payload[3:])
            except ValueError:
                seq = None
        with self._lock:
            if seq is None or seq not in self.sent:
                self.foreign.append((msg.topic, payload[:60]))
            elif seq in self.received:
                self.duplicates += 1
            else:
                self.received[seq] = now

    def _on_disconnect(self, client, userdata, rc, properties=None):
        if not self._stopping:
            with self._lock:
                self.disconnects.append((time.monotonic(), harness.reason_value(rc)))

    # Life.

    def start(self) -> "Bystander":
        self.client.connect(HOST, self.port, 60, bind_address=self.bind_address)
        self.client.loop_start()
        self._started = True
        if not self._connected.wait(WAIT) or self.connack_rc != 0:
            raise AssertionError(f"bystander: no successful CONNACK ({self.connack_rc})")
        self.client.subscribe(self.topic, 1)
        if not self._subscribed.wait(WAIT) or self.granted != [1]:
            raise AssertionError(f"bystander: SUBACK {self.granted}, expected [1]")
        self._thread = threading.Thread(target=self._run, name="bystander", daemon=True)
        self._thread.start()
        # Running: its first message is back.
        if not harness.wait_until(lambda: bool(self.received), WAIT):
            raise AssertionError("bystander: its first message did not come back")
        return self

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            seq += 1
            with self._lock:
                self.sent[seq] = time.monotonic()
            info = self.client.publish(self.topic, b"by:%d" % seq, qos=1)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                with self._lock:
                    self.publish_errors.append((seq, info.rc))
            self._stop.wait(self.period)

    def stop(self) -> None:
        """Stops publishing and disconnects (clean-up; checks nothing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(WAIT)
        if self._started:
            self._stopping = True
            self._started = False
            try:
                self.client.disconnect()
            except Exception:
                pass
            self.client.loop_stop()

    # Checks.

    def check(self, since: float, served_during: bool = False, min_after: int = 3,
              after_timeout: float = 20.0) -> str:
        """After an attack that began at `since` (time.monotonic()) and ends now: waits until
        `min_after` messages published from now on have come back (within `after_timeout`
        seconds), then checks that every message published before the last one back has come
        back (none lost at QoS 1), that nothing foreign arrived and that the bystander was never
        disconnected. With `served_during`, it must also have received messages while the attack
        went on. Returns a one-line summary (sent/received in the window, worst latency)."""
        end = time.monotonic()

        def after_count() -> int:
            with self._lock:
                return sum(1 for s, t in list(self.sent.items())
                           if t > end and s in self.received)
        ok = harness.wait_until(lambda: after_count() >= min_after or bool(self.disconnects),
                                after_timeout)
        with self._lock:
            sent = dict(self.sent)
            received = dict(self.received)
            foreign = list(self.foreign)
            disconnects = list(self.disconnects)
            errors = list(self.publish_errors)
            duplicates = self.duplicates
        sent_during = [s for s, t in sent.items() if since <= t <= end]
        received_during = [s for s, t in received.items() if since <= t <= end]
        latencies = [received[s] - sent[s] for s in sent_during if s in received]
        worst = max(latencies) if latencies else 0.0
        summary = (f"bystander: window {end - since:.2f} s, sent {len(sent_during)} / received "
                   f"{len(received_during)} in it, worst latency of those {worst * 1000:.0f} ms; "
                   f"{len(sent)} sent, {len(received)} back in all")
        problems = []
        if disconnects:
            problems.append(f"it was disconnected: {disconnects}")
        if foreign:
            problems.append(f"it received messages that are not its own: {foreign[:5]}")
        if errors:
            problems.append(f"paho refused to publish: {errors[:5]}")
        if not ok:
            problems.append(f"fewer than {min_after} of its messages published after the attack "
                            f"came back within {after_timeout} s")
        if received:
            last = max(received)
            missing = [s for s in range(1, last) if s not in received]
            if missing:
                problems.append(f"QoS 1 messages lost (sent before #{last}, which came back): "
                                f"{missing[:20]} ({len(missing)} in all)")
        if served_during and not received_during:
            problems.append("it received nothing while the attack went on")
        if problems:
            raise AssertionError("bystander: " + "; ".join(problems) + f"\n{summary}")
        if duplicates:
            summary += f", {duplicates} duplicates (allowed at QoS 1)"
        return summary


# --------------------------------------------------------------------------------------------
# Test case.


class HostileTestCase(mqtt5.V5TestCase):
    """V5TestCase with a bystander running for every test (self.by), `attack()` to check it
    around an attack, and helpers for what the broker answers and how much memory it holds."""

    # Seconds between two bystander messages.
    bystander_period = 0.02

    def setUp(self) -> None:
        super().setUp()
        self._attackers = 0
        self.by = Bystander(self.port, self._testMethodName[5:][-40:].replace("_", "-"),
                            period=self.bystander_period)
        self.addCleanup(self.by.stop)
        self.by.start()

    @contextlib.contextmanager
    def attack(self, served_during: bool = False, after_timeout: float = 20.0):
        """Wraps one attack: afterwards the broker is alive and the bystander is fine."""
        start = time.monotonic()
        yield
        self.assert_broker_alive()
        summary = self.by.check(start, served_during=served_during, after_timeout=after_timeout)
        note(summary)

    def assert_broker_alive(self) -> None:
        if not self.broker.alive():
            self.fail(f"the broker died; stderr:\n{self.broker.log_tail(60)}")

    def attacker_id(self) -> str:
        self._attackers += 1
        return f"hostile-{self._attackers}"

    # Answers.

    @staticmethod
    def until_closed(c: harness.RawClient, timeout: float = WAIT) -> tuple[list, bool]:
        """The packets received until the broker closed the connection (True) or `timeout`
        passed (False). Never raises for either outcome."""
        deadline = time.monotonic() + timeout
        packets = []
        while True:
            try:
                packets.append(c.recv(max(0.001, deadline - time.monotonic())))
            except ConnectionClosed:
                return packets, True
            except TimeoutError:
                return packets, False

    def assert_closed_silently(self, c: harness.RawClient, timeout: float = WAIT) -> None:
        """The broker closes without sending anything (3.1.1, or before CONNECT)."""
        packets, closed = self.until_closed(c, timeout)
        self.assertEqual(packets, [], "the broker answered (expected a plain close)")
        self.assertTrue(closed, f"connection still open after {timeout} s")

    def v5_error(self, c: mqtt5.Client5, reasons, timeout: float = WAIT,
                 skip: tuple = ()) -> Optional[int]:
        """5.0 §4.13.1: DISCONNECT with one of `reasons` (an int or a set), then the close.
        Packets of the types in `skip` before it are ignored. mosquitto may close without
        DISCONNECT (the DISCONNECT is a SHOULD); tinymq sends it. Returns the reason sent."""
        reasons = {reasons} if isinstance(reasons, int) else set(reasons)
        packets, closed = self.until_closed(c, timeout)
        packets = [p for p in packets if p.type not in skip]
        self.assertTrue(closed, f"connection still open after {timeout} s (got {packets!r})")
        if not packets and harness.is_mosquitto():
            return None
        self.assertEqual(len(packets), 1, f"expected one DISCONNECT, got {packets!r}")
        self.assertEqual(packets[0].type, DISCONNECT, f"expected DISCONNECT, got {packets!r}")
        self.assertIn(packets[0].reason_code, reasons,
                      f"DISCONNECT reason {packets[0].reason_code:#04x}, expected one of "
                      f"{sorted(hex(r) for r in reasons)}")
        return packets[0].reason_code

    def v5_connect_refused(self, c: mqtt5.Client5, reasons, timeout: float = WAIT) -> None:
        """5.0 [MQTT-3.1.4-1] / §4.13.1: a bad CONNECT ends in a close, a CONNACK with one of
        `reasons` before it being allowed (MAY): both answers are accepted."""
        reasons = {reasons} if isinstance(reasons, int) else set(reasons)
        packets, closed = self.until_closed(c, timeout)
        self.assertTrue(closed, f"connection still open after {timeout} s (got {packets!r})")
        if packets:
            self.assertEqual(len(packets), 1, f"expected at most a CONNACK, got {packets!r}")
            self.assertEqual(packets[0].type, CONNACK, f"expected CONNACK, got {packets!r}")
            self.assertIn(packets[0].reason_code, reasons, f"{packets[0]!r}")

    def assert_open(self, c: harness.RawClient) -> None:
        """The connection still works: PINGREQ gets PINGRESP (other packets in between are
        skipped and returned)."""
        c.pingreq()
        deadline = time.monotonic() + WAIT
        while True:
            p = c.recv(max(0.001, deadline - time.monotonic()))
            if p.type == PINGRESP:
                return

    @staticmethod
    def send_quietly(c: harness.RawClient, data: bytes) -> None:
        """Sends what it can: the broker may close in the middle of a large attack packet."""
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def watcher(self) -> mqtt5.Client5:
        """A 5.0 client subscribed to '#' at QoS 0: sees every message routed (the bystander's
        too), to show that an attack message was not."""
        w = self.connected5("hostile-watcher")
        self.assertEqual(w.subscribe([("#", 0)]).reason_codes, [0])
        return w

    def assert_not_routed(self, w: mqtt5.Client5, duration: float = 0.5) -> None:
        """Nothing but the bystander's messages reaches the watcher for `duration` s."""
        deadline = time.monotonic() + duration
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                p = w.recv(remaining)
            except TimeoutError:
                return
            if p.type != PUBLISH or p.topic != self.by.topic:
                self.fail(f"the watcher on '#' received {p!r}: the attack was routed")

    # Memory (Linux /proc).

    def broker_kb(self, field: str = "VmRSS") -> int:
        """A /proc/<pid>/status figure of the broker, in kB (VmRSS now, VmHWM its peak)."""
        assert self.broker.proc is not None
        with open(f"/proc/{self.broker.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.broker.proc.pid}/status")


# --------------------------------------------------------------------------------------------
# 1, 2, 3: packets out of place.


class OutOfPlacePacketTest(HostileTestCase):

    def test_publish_before_connect_is_closed_without_connack(self):
        # [MQTT-3.1.0-1]: the first packet must be CONNECT; anything else is a protocol
        # violation: closed, no CONNACK. A 5.0-shaped PUBLISH (properties) at the bystander's
        # topic: it must not be routed (the bystander fails on a foreign message).
        with self.attack():
            c = self.client5()
            c.send(mqtt5.encode_publish5(self.by.topic, b"attack", qos=1, packet_id=1,
                                         properties={"UserProperty": [("a", "b")]}))
            self.assert_closed_silently(c)

    def test_subscribe_before_connect_is_closed_without_connack(self):
        # [MQTT-3.1.0-1]: a 5.0 SUBSCRIBE to '#' as the first packet: closed, no SUBACK, and
        # no subscription (nothing is ever sent on that connection).
        with self.attack():
            c = self.client5()
            c.send(mqtt5.encode_subscribe5(1, [("#", 1)]))
            self.assert_closed_silently(c)

    def test_second_connect_v5_naming_the_bystander(self):
        # 5.0 [MQTT-3.1.0-2]: a second CONNECT is a Protocol Error: DISCONNECT 0x82 and close.
        # It names the bystander's client id: that must not take the bystander's session over.
        with self.attack():
            c = self.connected5(self.attacker_id())
            c.send(mqtt5.encode_connect5(self.by.client_id, clean_start=True))
            self.v5_error(c, mqtt5.PROTOCOL_ERROR)

    def test_second_connect_v311_naming_the_bystander(self):
        # 3.1.1 [MQTT-3.1.0-2]: a second CONNECT is a protocol violation: disconnect (3.1.1
        # has no DISCONNECT from the server). The bystander's session is not taken over.
        with self.attack():
            c = self.raw_connected(self.attacker_id())
            c.send(encode_connect(self.by.client_id))
            self.assert_closed_silently(c)

    def test_server_packets_from_a_v5_client(self):
        # 5.0 §2.1.2: CONNACK, SUBACK, UNSUBACK and PINGRESP go from server to client only.
        # A well-formed one from a client parses, so it is a Protocol Error (§1.2: "data that is
        # not allowed by the protocol") rather than Malformed; the specification names no code
        # for this case, so 0x81 is accepted too. §4.13.1: DISCONNECT, then close.
        packets = {
            "CONNACK": bytes([0x20, 0x03, 0x00, 0x00, 0x00]),
            "SUBACK": bytes([0x90, 0x04, 0x00, 0x01, 0x00, 0x00]),
            "UNSUBACK": bytes([0xB0, 0x04, 0x00, 0x01, 0x00, 0x00]),
            "PINGRESP": bytes([0xD0, 0x00]),
        }
        if harness.is_mosquitto():
            # 2.0.11 closes on a CONNACK but ignores the other three, against [MQTT-4.13.1-1].
            packets = {"CONNACK": packets["CONNACK"]}
        with self.attack():
            for name, data in packets.items():
                with self.subTest(packet=name):
                    c = self.connected5(self.attacker_id())
                    c.send(data)
                    self.v5_error(c, {mqtt5.PROTOCOL_ERROR, mqtt5.MALFORMED_PACKET})

    @harness.not_on_mosquitto("2.0.11 ignores SUBACK, UNSUBACK and PINGRESP from a client "
                              "(3.1.1 [MQTT-4.8.0-1])")
    def test_server_packets_from_a_v311_client(self):
        # 3.1.1 §2.2.1 (direction) and [MQTT-4.8.0-1]: a packet the server never receives is a
        # protocol violation: the connection is closed. (CONNACK is in test_malformed.py.)
        packets = {
            "SUBACK": bytes([0x90, 0x03, 0x00, 0x01, 0x00]),
            "UNSUBACK": bytes([0xB0, 0x02, 0x00, 0x01]),
            "PINGRESP": bytes([0xD0, 0x00]),
        }
        with self.attack():
            for name, data in packets.items():
                with self.subTest(packet=name):
                    c = self.raw_connected(self.attacker_id())
                    c.send(data)
                    self.assert_closed_silently(c)


# --------------------------------------------------------------------------------------------
# 5: remaining length of five bytes.


class RemainingLengthTest(HostileTestCase):

    def test_five_byte_remaining_length_as_the_first_packet(self):
        # 5.0 §1.5.5 / 3.1.1 §2.2.3: a Remaining Length has at most four bytes. As the first
        # packet (a CONNECT header): the version is unknown, so closed without CONNACK
        # ([MQTT-3.1.0-1] / 3.1.1 [MQTT-3.1.4-1]).
        with self.attack():
            c = self.client5()
            c.send(bytes([0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]))
            self.assert_closed_silently(c)

    def test_five_byte_remaining_length_after_a_v5_connect(self):
        # 5.0 §1.5.5, §4.13.1: Malformed Packet: DISCONNECT 0x81, then close. (The 3.1.1 case is
        # test_malformed.py's test_remaining_length_of_five_bytes.)
        with self.attack():
            c = self.connected5(self.attacker_id())
            c.send(bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]))
            self.v5_error(c, mqtt5.MALFORMED_PACKET)


# --------------------------------------------------------------------------------------------
# 6: topics with a huge number of levels (limits.max_topic_levels, default 128).

DEEP_TOPIC = "/" * 65535  # the longest topic a string can hold: 65,536 (empty) levels
MOSQUITTO_LEVELS = ("limits.max_topic_levels is tinymq's; 2.0.11 has a fixed limit of 200 levels "
                    "and answers DISCONNECT 0x82 (PUBLISH) or 0x81 (SUBSCRIBE) instead of "
                    "PUBACK 0x90 / SUBACK 0x8F")


class TopicLevelsTest(HostileTestCase):

    @harness.not_on_mosquitto(MOSQUITTO_LEVELS)
    def test_publish_65536_levels_v5(self):
        # A topic name holds at most 65,535 bytes ([MQTT-4.7.3-3]); 65,535 '/' is 65,536 levels,
        # above limits.max_topic_levels (128). 5.0 §3.4.2.1 / §3.5.2.1: PUBACK / PUBREC 0x90
        # Topic Name invalid ("correctly formed, but not accepted by this Server"); QoS 0 has no
        # acknowledgement: dropped. The connection stays usable; nothing is routed.
        w = self.watcher()
        with self.attack():
            c = self.connected5(self.attacker_id())
            c.send(mqtt5.encode_publish5(DEEP_TOPIC, b"attack", qos=1, packet_id=1))
            ack = c.expect(PUBACK, 1)
            self.assertEqual(ack.reason_code, TOPIC_NAME_INVALID, f"{ack!r}")
            c.send(mqtt5.encode_publish5(DEEP_TOPIC, b"attack", qos=2, packet_id=2))
            rec = c.expect(PUBREC, 2)
            self.assertEqual(rec.reason_code, TOPIC_NAME_INVALID, f"{rec!r}")
            c.send(mqtt5.encode_publish5(DEEP_TOPIC, b"attack", qos=0))
            self.assert_open(c)
            self.assert_not_routed(w)

    def test_publish_65536_levels_v311(self):
        # 3.1.1 has no way to refuse a PUBLISH but closing ([MQTT-3.3.5-2]: positive
        # acknowledgement or close; a message that is not routed must not be acknowledged).
        w = self.watcher()
        with self.attack():
            c = self.raw_connected(self.attacker_id())
            c.send(encode_publish(DEEP_TOPIC, b"attack", qos=1, packet_id=1))
            self.assert_closed_silently(c)
            self.assert_not_routed(w)

    @harness.not_on_mosquitto(MOSQUITTO_LEVELS)
    def test_subscribe_65536_levels(self):
        # A filter above the level limit: 5.0 SUBACK 0x8F Topic Filter invalid (§3.9.3),
        # 3.1.1 SUBACK 0x80 Failure (§3.9.3); the connection goes on.
        with self.attack():
            c5 = self.connected5(self.attacker_id())
            self.assertEqual(c5.subscribe([(DEEP_TOPIC, 1)]).reason_codes, [TOPIC_FILTER_INVALID])
            self.assert_open(c5)
            c3 = self.raw_connected(self.attacker_id())
            self.assertEqual(c3.subscribe([(DEEP_TOPIC[:-1] + "#", 1)]), [SUBACK_FAILURE_311])
            self.assert_open(c3)

    @harness.not_on_mosquitto(MOSQUITTO_LEVELS)
    def test_subscribe_100000_levels_in_four_filters(self):
        # 100,000 levels cannot fit one filter; four filters of 25,000 levels each in one
        # SUBSCRIBE: each gets 0x8F, in order ([MQTT-3.9.3-1]).
        deep = "/" * 24999
        with self.attack():
            c = self.connected5(self.attacker_id())
            suback = c.subscribe([(deep, 1), (deep + "a", 0), ("+" + deep, 1), (deep + "#", 2)])
            self.assertEqual(suback.reason_codes, [TOPIC_FILTER_INVALID] * 4)
            self.assert_open(c)

    def test_subscribe_100000_levels_in_1000_filters(self):
        # 1,000 filters of 100 levels (within the limit) in one SUBSCRIBE (~200 KB): all granted
        # ([MQTT-3.8.4-5]: as 1,000 SUBSCRIBEs), and they work.
        filters = [("l/" * 99 + f"f{i}", 1) for i in range(1000)]
        with self.attack():
            c = self.connected5(self.attacker_id())
            suback = c.subscribe(filters)
            self.assertEqual(suback.reason_codes, [1] * 1000)
            p = self.connected5(self.attacker_id())
            p.publish_and_complete(filters[617][0], b"deep", qos=1)
            m = c.receive_messages(1)[0]
            self.assertEqual((m.topic, m.payload), (filters[617][0], b"deep"))

    def test_publish_100000_levels_behind_a_wrong_string_length(self):
        # A PUBLISH body of 100,000 '/' whose topic length prefix says 34,464 (100,000 mod
        # 65,536). 5.0: the rest is read as Property Length 0x2F and property 0x2F, which does
        # not exist: Malformed Packet (§2.2.2.2), DISCONNECT 0x81. 3.1.1: the rest is payload,
        # the topic has 34,465 levels: over the limit, closed ([MQTT-3.3.5-2]).
        body = (34464).to_bytes(2, "big") + b"/" * 100000
        with self.attack():
            c5 = self.connected5(self.attacker_id())
            c5.send(frame(0x30, body))
            self.v5_error(c5, mqtt5.MALFORMED_PACKET)
            c3 = self.raw_connected(self.attacker_id())
            c3.send(frame(0x30, body))
            self.assert_closed_silently(c3)

    def test_topic_length_longer_than_the_packet(self):
        # The topic length says 65,535 but the packet ends after 1,000 bytes: Malformed Packet
        # (5.0 §1.5.4, §4.13.1: DISCONNECT 0x81; 3.1.1: closed).
        body = (65535).to_bytes(2, "big") + b"/" * 1000
        with self.attack():
            c5 = self.connected5(self.attacker_id())
            c5.send(frame(0x30, body))
            self.v5_error(c5, mqtt5.MALFORMED_PACKET)


# --------------------------------------------------------------------------------------------
# 7, 8: topic names that are not topic names.


class BadTopicNameTest(HostileTestCase):

    def test_zero_length_topic_without_alias_v5(self):
        # 5.0 §3.3.2.1: "It is a Protocol Error if the Topic Name is zero length and there is no
        # Topic Alias" (no statement id; [MQTT-4.7.3-1] is the general rule): DISCONNECT 0x82.
        # (3.1.1 [MQTT-4.7.3-1] is test_malformed.py's test_publish_empty_topic.)
        with self.attack():
            for qos in (0, 1):
                with self.subTest(qos=qos):
                    c = self.connected5(self.attacker_id())
                    c.send(mqtt5.encode_publish5("", b"attack", qos=qos,
                                                 packet_id=1 if qos else None))
                    self.v5_error(c, mqtt5.PROTOCOL_ERROR)

    def test_wildcards_in_a_v5_publish_topic(self):
        # [MQTT-3.3.2-2]: a topic name holds no wildcard. The specification names no reason code
        # for it: 0x90 Topic Name invalid (tinymq) and 0x82 Protocol Error are both accepted.
        with self.attack():
            for topic, qos in (("hostile/+", 0), ("hostile/#", 1), ("+", 1), ("#", 0),
                               (self.by.topic + "/#", 1)):
                with self.subTest(topic=topic, qos=qos):
                    c = self.connected5(self.attacker_id())
                    c.send(mqtt5.encode_publish5(topic, b"attack", qos=qos,
                                                 packet_id=1 if qos else None))
                    self.v5_error(c, {TOPIC_NAME_INVALID, mqtt5.PROTOCOL_ERROR})

    def test_multi_level_wildcard_in_a_v311_publish_topic(self):
        # 3.1.1 [MQTT-3.3.2-2], [MQTT-4.7.1-1]: closed. ('+' is in test_malformed.py.)
        with self.attack():
            c = self.raw_connected(self.attacker_id())
            c.send(encode_publish(self.by.topic + "/#", b"attack", qos=1, packet_id=1))
            self.assert_closed_silently(c)


# --------------------------------------------------------------------------------------------
# 9: malformed shared subscriptions.


class SharedFilterTest(HostileTestCase):

    def test_malformed_share_filters(self):
        # 5.0 [MQTT-4.8.2-1]: "$share/" then a ShareName of at least one character;
        # [MQTT-4.8.2-2]: the ShareName holds no '/', '+' or '#' and is followed by '/' and a
        # Topic Filter (at least one character, [MQTT-4.7.3-1]). The specification leaves two
        # answers: SUBACK 0x8F Topic Filter invalid for that filter (§3.9.3; tinymq: the valid
        # filter next to it is granted and works), or, the packet breaking a MUST, DISCONNECT
        # 0x81 / 0x82 and close (§4.13.1; mosquitto 2.0.11: 0x81). Both are accepted, as
        # test_wildcards.py does for 3.1.1. Either way nothing is subscribed.
        good = self.by.topic + "-shared"
        bad_filters = ["$share/g", "$share//a", "$share/g+/a", "$share/#/a", "$share/g/"]
        if harness.is_mosquitto():
            # 2.0.11 grants these three (against [MQTT-4.8.2-1] / [MQTT-4.8.2-2]).
            bad_filters = ["$share/g+/a", "$share/#/a"]
        with self.attack():
            for i, bad in enumerate(bad_filters):
                with self.subTest(filter=bad):
                    c = self.connected5(self.attacker_id())
                    c.send(mqtt5.encode_subscribe5(1, [(bad, 1), (f"$share/g{i}/{good}", 1)]))
                    try:
                        p = c.recv()
                    except ConnectionClosed:
                        self.assertTrue(harness.is_mosquitto(), "closed without DISCONNECT")
                        continue
                    if p.type == DISCONNECT:
                        self.assertIn(p.reason_code, (mqtt5.MALFORMED_PACKET,
                                                      mqtt5.PROTOCOL_ERROR), f"{p!r}")
                        self.assertEqual(c.expect_closed(), [])
                        continue
                    self.assertEqual((p.type, p.packet_id, p.reason_codes),
                                     (SUBACK, 1, [TOPIC_FILTER_INVALID, 1]), f"{p!r}")
                    ack = self.connected5(self.attacker_id()).publish_and_complete(
                        good, b"%d" % i, qos=1)
                    try:
                        m = c.receive_messages(1)[0]
                    except AssertionError as e:
                        raise AssertionError(f"{e} (the publisher got {ack!r})") from None
                    self.assertEqual(m.payload, b"%d" % i)
                    c.disconnect()

    @harness.not_on_mosquitto("2.0.11 grants No Local on a shared subscription (5.0 "
                              "[MQTT-3.8.3-4])")
    def test_no_local_on_a_share_filter(self):
        # 5.0 [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error:
        # DISCONNECT 0x82, then close.
        with self.attack():
            c = self.connected5(self.attacker_id())
            c.send(mqtt5.encode_subscribe5(1, [("$share/g/" + self.by.topic,
                                                {"qos": 1, "no_local": True})]))
            self.v5_error(c, mqtt5.PROTOCOL_ERROR)


# --------------------------------------------------------------------------------------------
# 10: ill-formed UTF-8 and U+0000.

BAD_STRINGS = {
    "ill-formed (C3 28)": b"hostile/\xc3\x28",
    "surrogate (ED A0 80)": b"hostile/\xed\xa0\x80",
    "U+0000": b"hostile/\x00x",
}


class Utf8Test(HostileTestCase):

    def test_bad_topic_v5(self):
        # 5.0 [MQTT-1.5.4-1] (well-formed, no surrogates), [MQTT-1.5.4-2] (no U+0000): else a
        # Malformed Packet: DISCONNECT 0x81 (§4.13.1). (3.1.1: test_malformed.py.)
        with self.attack():
            for name, topic in BAD_STRINGS.items():
                with self.subTest(topic=name):
                    c = self.connected5(self.attacker_id())
                    c.send(mqtt5.encode_publish5(topic, b"attack", qos=1, packet_id=1))
                    self.v5_error(c, mqtt5.MALFORMED_PACKET)

    def test_bad_client_id_v5(self):
        # 5.0 [MQTT-3.1.3-4]: the client id is a UTF-8 string; [MQTT-1.5.4-1], [MQTT-1.5.4-2].
        # [MQTT-3.1.4-1]: close; a CONNACK 0x81 first is allowed (MAY), so both are accepted.
        with self.attack():
            for name, raw in BAD_STRINGS.items():
                with self.subTest(client_id=name):
                    c = self.client5()
                    c.send(mqtt5.encode_connect5(raw.replace(b"/", b"-")))
                    self.v5_connect_refused(c, mqtt5.MALFORMED_PACKET)

    def test_nul_in_client_id_v311(self):
        # 3.1.1 [MQTT-1.5.3-2]: U+0000 in a string: close. [MQTT-3.1.4-1]: close without
        # CONNACK; a CONNACK 0x02 Identifier rejected is tolerated (never an acceptance).
        with self.attack():
            c = self.raw()
            c.send(encode_connect(b"hostile\x00id"))
            packets, closed = self.until_closed(c)
            self.assertTrue(closed)
            self.assertFalse(any(p.type == CONNACK and p.return_code == 0 for p in packets),
                             f"{packets!r}")

    def test_bad_user_property_in_publish(self):
        # 5.0 [MQTT-1.5.7-1]: both strings of a UTF-8 String Pair follow the string rules:
        # else Malformed Packet, DISCONNECT 0x81.
        with self.attack():
            for where in ("name", "value"):
                for name, raw in BAD_STRINGS.items():
                    with self.subTest(where=where, string=name):
                        pair = (raw, "v") if where == "name" else ("k", raw)
                        c = self.connected5(self.attacker_id())
                        c.send(publish5_raw(self.by.topic,
                                            properties_raw([("UserProperty", pair)]),
                                            b"attack", qos=1, packet_id=1))
                        self.v5_error(c, mqtt5.MALFORMED_PACKET)

    def test_bad_user_property_in_connect(self):
        # 5.0 [MQTT-1.5.7-1] in CONNECT: close, CONNACK 0x81 allowed first ([MQTT-3.1.4-1]).
        with self.attack():
            c = self.client5()
            c.send(mqtt5.encode_connect5(self.attacker_id(),
                                         properties={"UserProperty": [("k", b"\xff")]}))
            self.v5_connect_refused(c, mqtt5.MALFORMED_PACKET)


# --------------------------------------------------------------------------------------------
# 11: duplicate and misplaced properties.


class PropertyAbuseTest(HostileTestCase):

    def test_duplicate_properties_in_publish(self):
        # 5.0 §3.3.2.3.2 and §3.3.2.3.4: "It is a Protocol Error to include the Payload Format
        # Indicator / the Topic Alias value more than once": DISCONNECT 0x82.
        cases = {
            "PayloadFormatIndicator": [("PayloadFormatIndicator", 0),
                                       ("PayloadFormatIndicator", 1)],
            "TopicAlias": [("TopicAlias", 1), ("TopicAlias", 1)],
            "MessageExpiryInterval": [("MessageExpiryInterval", 10),
                                      ("MessageExpiryInterval", 20)],
        }
        with self.attack():
            for name, items in cases.items():
                with self.subTest(property=name):
                    c = self.connected5(self.attacker_id())
                    c.send(publish5_raw(self.by.topic, properties_raw(items), b"attack",
                                        qos=1, packet_id=1))
                    self.v5_error(c, mqtt5.PROTOCOL_ERROR)

    def test_duplicate_session_expiry_in_connect(self):
        # 5.0 §3.1.2.11.2: "It is a Protocol Error to include the Session Expiry Interval more
        # than once": close, CONNACK 0x82 allowed first ([MQTT-3.1.4-1]).
        body = (encode_string("MQTT") + bytes([5, 0x02]) + (60).to_bytes(2, "big")
                + properties_raw([("SessionExpiryInterval", 10), ("SessionExpiryInterval", 0)])
                + encode_string(self.attacker_id()))
        with self.attack():
            c = self.client5()
            c.send(frame(0x10, body))
            self.v5_connect_refused(c, mqtt5.PROTOCOL_ERROR)

    def test_property_not_allowed_in_the_packet(self):
        # 5.0 §2.2.2.2: "A Control Packet which contains an Identifier which is not valid for its
        # packet type ... is a Malformed Packet": DISCONNECT 0x81.
        cases = {
            "SessionExpiryInterval in PUBLISH": publish5_raw(
                self.by.topic, properties_raw([("SessionExpiryInterval", 5)]), b"attack",
                qos=1, packet_id=1),
            "ReceiveMaximum in SUBSCRIBE": frame(0x82, (1).to_bytes(2, "big") + properties_raw(
                [("ReceiveMaximum", 5)]) + encode_string("hostile/x") + b"\x01"),
            "AssignedClientIdentifier in PUBLISH": publish5_raw(
                self.by.topic, properties_raw([("AssignedClientIdentifier", "x")]), b"attack"),
            "undefined identifier 0x7F in PUBLISH": publish5_raw(
                self.by.topic, b"\x02\x7f\x00", b"attack"),
        }
        with self.attack():
            for name, data in cases.items():
                with self.subTest(case=name):
                    c = self.connected5(self.attacker_id())
                    c.send(data)
                    self.v5_error(c, mqtt5.MALFORMED_PACKET)

    @harness.not_on_mosquitto("2.0.11 acknowledges it (PUBACK 0x00), against 5.0 [MQTT-3.3.4-6]")
    def test_subscription_identifier_in_a_client_publish(self):
        # 5.0 [MQTT-3.3.4-6]: a PUBLISH from a client carries no Subscription Identifier. It is
        # a valid PUBLISH property (server to client), so this is a Protocol Error, 0x82; 0x81
        # is accepted too (the specification names no code).
        with self.attack():
            c = self.connected5(self.attacker_id())
            c.send(publish5_raw(self.by.topic, properties_raw([("SubscriptionIdentifier", 3)]),
                                b"attack", qos=1, packet_id=1))
            self.v5_error(c, {mqtt5.PROTOCOL_ERROR, mqtt5.MALFORMED_PACKET})


# --------------------------------------------------------------------------------------------
# 13: QoS 3 and reserved flags (what test_malformed.py lacks: the 5.0 answers, UNSUBSCRIBE).


class ReservedFlagsTest(HostileTestCase):

    def test_reserved_flags_v5(self):
        # 5.0 [MQTT-2.1.3-1]: reserved flag bits hold the values of the table, else Malformed
        # Packet; [MQTT-3.3.1-4]: no QoS 3; [MQTT-3.6.1-1] PUBREL, [MQTT-3.8.1-1] SUBSCRIBE,
        # [MQTT-3.10.1-1] UNSUBSCRIBE flags are 0010. §4.13.1: DISCONNECT 0x81, then close.
        cases = {
            "PUBLISH QoS 3": mqtt5.encode_publish5(self.by.topic, b"attack", qos=3, packet_id=1),
            "PUBLISH QoS 3 DUP RETAIN": publish5_raw(self.by.topic, b"\x00", b"attack",
                                                     packet_id=1, flags=0x0F),
            "PUBREL flags 0000": frame(0x60, b"\x00\x01"),
            "PUBREL flags 0011": frame(0x63, b"\x00\x01"),
            "SUBSCRIBE flags 0000": frame(0x80, b"\x00\x01\x00" + encode_string("a") + b"\x00"),
            "SUBSCRIBE flags 1111": frame(0x8F, b"\x00\x01\x00" + encode_string("a") + b"\x00"),
            "UNSUBSCRIBE flags 0000": frame(0xA0, b"\x00\x01\x00" + encode_string("a")),
            "PINGREQ flags 0001": bytes([0xC1, 0x00]),
        }
        if harness.is_mosquitto():
            # 2.0.11 answers PINGREQ 0xC1 with PINGRESP ([MQTT-2.1.3-1]; see test_malformed.py).
            del cases["PINGREQ flags 0001"]
        with self.attack():
            for name, data in cases.items():
                with self.subTest(case=name):
                    c = self.connected5(self.attacker_id())
                    c.send(data)
                    self.v5_error(c, mqtt5.MALFORMED_PACKET)

    def test_disconnect_with_reserved_flags_v5_publishes_the_will(self):
        # 5.0 [MQTT-2.1.3-1]: DISCONNECT flags are 0000; 0xE1 is a Malformed Packet, so the
        # connection ends in error, not by a normal DISCONNECT: the will is published
        # ([MQTT-3.1.2-8]; [MQTT-3.14.4-3] discards it only on a valid DISCONNECT 0x00).
        will_topic = self.by.topic + "-will"
        sub = self.connected5(self.attacker_id())
        sub.subscribe([(will_topic, 1)])
        with self.attack():
            c = self.connected5(self.attacker_id(), will={"topic": will_topic,
                                                          "payload": b"will", "qos": 1})
            c.send(bytes([0xE1, 0x00]))
            self.v5_error(c, mqtt5.MALFORMED_PACKET)
            m = sub.receive_messages(1)[0]
            self.assertEqual((m.topic, m.payload), (will_topic, b"will"))

    def test_unsubscribe_reserved_flags_v311(self):
        # 3.1.1 [MQTT-3.10.1-1]: UNSUBSCRIBE flags are 0010, else close ([MQTT-2.2.2-2]).
        with self.attack():
            c = self.raw_connected(self.attacker_id())
            c.send(frame(0xA0, b"\x00\x01" + encode_string("a")))
            self.assert_closed_silently(c)

    def test_publish_qos3_v311_routes_nothing(self):
        # 3.1.1 [MQTT-3.3.1-4]: QoS 3 PUBLISH at the bystander's topic with DUP and RETAIN: closed,
        # and neither routed nor retained (a new subscriber gets no retained message).
        with self.attack():
            c = self.raw_connected(self.attacker_id())
            c.send(encode_publish(self.by.topic, b"attack", packet_id=1, flags=0x0F))
            self.assert_closed_silently(c)
        late = self.raw_connected(self.attacker_id())
        self.assertEqual(late.subscribe([(self.by.topic + "-none", 0), (self.by.topic, 0)]),
                         [0, 0])
        # Only the bystander's own (non-retained) messages may come: none is retained.
        for p in late.receive_messages(3):
            self.assertFalse(p.retain, f"{p!r}")
            self.assertTrue(p.payload.startswith(b"by:"), f"{p!r}")


# --------------------------------------------------------------------------------------------
# 14: QoS 2 packet identifiers.


class Qos2IdentifierTest(HostileTestCase):

    def _reuse(self, publisher, subscriber, ack_kind_v5: bool):
        topic = self.by.topic + "-q2"
        # The same id again, before PUBREL, with another payload and DUP 0.
        for payload in (b"first", b"second"):
            if ack_kind_v5:
                publisher.send(mqtt5.encode_publish5(topic, payload, qos=2, packet_id=7))
            else:
                publisher.send(encode_publish(topic, payload, qos=2, packet_id=7))
            publisher.expect(PUBREC, 7)
        publisher.send(encode_ack(PUBREL, 7))
        publisher.expect(PUBCOMP, 7)
        # Delivered once. The receiver may pass the message on at the PUBLISH (tinymq; 3.1.1
        # §4.3.3 Method B) or at the PUBREL (mosquitto; Method A), so which payload the
        # id stood for is the receiver's choice: "first" or "second", never both.
        got = subscriber.receive_messages(1)
        self.assertIn(got[0].payload, (b"first", b"second"))
        subscriber.expect_silence(0.5)  # never a second delivery
        # After PUBCOMP the id is free: a new message.
        if ack_kind_v5:
            publisher.send(mqtt5.encode_publish5(topic, b"third", qos=2, packet_id=7))
        else:
            publisher.send(encode_publish(topic, b"third", qos=2, packet_id=7))
        publisher.expect(PUBREC, 7)
        publisher.send(encode_ack(PUBREL, 7))
        publisher.expect(PUBCOMP, 7)
        self.assertEqual(subscriber.receive_messages(1)[0].payload, b"third")

    def test_packet_id_reused_before_pubrel_v5(self):
        # 5.0 [MQTT-4.3.3-10]: until PUBREL, a PUBLISH with the same id gets PUBREC and is not
        # delivered again; [MQTT-4.3.3-12]: after PUBCOMP the id is a new message.
        sub = self.connected5(self.attacker_id())
        sub.subscribe([(self.by.topic + "-q2", 2)])
        with self.attack():
            self._reuse(self.connected5(self.attacker_id()), sub, True)

    def test_packet_id_reused_before_pubrel_v311(self):
        # 3.1.1 §4.3.3 Method B, [MQTT-4.3.3-2]: PUBREC for the same id until PUBREL, delivered
        # once; after PUBCOMP, a new publication.
        sub = self.raw_connected(self.attacker_id())
        sub.subscribe([(self.by.topic + "-q2", 2)])
        with self.attack():
            self._reuse(self.raw_connected(self.attacker_id()), sub, False)

    def test_pubrel_for_an_unknown_id(self):
        # 5.0 [MQTT-4.3.3-11]: PUBREL is answered by PUBCOMP with its id. §3.7.2.1 offers 0x92
        # Packet Identifier not found (tinymq) but makes no code a MUST, and 0x00 fits a PUBREL
        # resent after its PUBCOMP was lost ("not an error during recovery"; mosquitto): both
        # are accepted. 3.1.1 [MQTT-4.3.3-2]: PUBCOMP with the id.
        with self.attack():
            c5 = self.connected5(self.attacker_id())
            c5.send(mqtt5.encode_ack5(PUBREL, 4242))
            comp = c5.expect(PUBCOMP, 4242)
            self.assertIn(comp.reason_code, (PACKET_ID_NOT_FOUND, mqtt5.SUCCESS), f"{comp!r}")
            self.assert_open(c5)
            c3 = self.raw_connected(self.attacker_id())
            c3.send(encode_ack(PUBREL, 4242))
            c3.expect(PUBCOMP, 4242)
            self.assert_open(c3)

    @harness.not_on_mosquitto("2.0.11 answers PUBREC 0x97 instead of DISCONNECT 0x93 "
                              "(§3.3.4; mosquitto#3611)")
    def test_unreleased_ids_beyond_receive_maximum_v5(self):
        # 5.0 [MQTT-3.3.4-8] / §3.3.4: more unfinished QoS 2 PUBLISHes than the CONNACK's
        # Receive Maximum: DISCONNECT 0x93 Receive Maximum exceeded. Thousands sent at once: the
        # first Receive Maximum get PUBREC, then the DISCONNECT.
        c = self.connected5(self.attacker_id())
        rm = c.connack.properties.get("ReceiveMaximum", 65535)
        count = max(5000, rm + 1)
        topic = self.by.topic + "-rm"
        blob = b"".join(mqtt5.encode_publish5(topic, b"x", qos=2, packet_id=i)
                        for i in range(1, count + 1))
        with self.attack():
            self.send_quietly(c, blob)
            packets, closed = self.until_closed(c, 3 * WAIT)
            self.assertTrue(closed, "connection still open")
            recs = [p for p in packets if p.type == PUBREC]
            rest = [p for p in packets if p.type != PUBREC]
            self.assertEqual(len(recs), rm, f"PUBRECs before the DISCONNECT (Receive Maximum {rm})")
            self.assertEqual([(p.type, p.reason_code) for p in rest],
                             [(DISCONNECT, mqtt5.RECEIVE_MAXIMUM_EXCEEDED)], f"{rest!r}")

    def test_thousands_of_unreleased_ids_v311(self):
        # 3.1.1 has no Receive Maximum: the packet id space (65,535) bounds what a client can
        # leave unreleased. tinymq acknowledges each ([MQTT-4.3.3-2]) and keeps only the id
        # until PUBREL: 20,000 unreleased ids must not cost much memory, and releasing them all
        # then works.
        c = self.raw_connected(self.attacker_id())
        count = 20000
        topic = self.by.topic + "-unrel"
        before = self.broker_kb("VmRSS")
        blob = b"".join(encode_publish(topic, b"x", qos=2, packet_id=i)
                        for i in range(1, count + 1))
        with self.attack():
            c.send(blob)
            recs = 0
            while recs < count:
                p = c.recv(3 * WAIT)
                self.assertEqual(p.type, PUBREC, f"{p!r}")
                recs += 1
            grown = self.broker_kb("VmRSS") - before
            note(f"{count} unreleased QoS 2 ids: broker RSS +{grown} kB "
                 f"({grown * 1024 / count:.0f} B per id)")
            self.assertLess(grown, 64 * 1024, f"RSS grew by {grown} kB for {count} ids")
            c.send(b"".join(encode_ack(PUBREL, i) for i in range(1, count + 1)))
            for i in range(1, count + 1):
                c.expect(PUBCOMP, i, timeout=3 * WAIT)
            self.assert_open(c)


# --------------------------------------------------------------------------------------------
# 15: a will delay longer than the session.


class WillDelayTest(HostileTestCase):

    def test_will_delay_of_2_pow_32_minus_1_with_session_expiry_2(self):
        # 5.0 §3.1.3.2.2: the will is published when the Will Delay Interval has passed or the
        # Session ends, whichever happens first ([MQTT-3.1.2-8]). A Will Delay of 4294967295 s
        # (the largest, overflowing any naive milliseconds arithmetic) with a Session Expiry of
        # 2 s: the will comes when the session expires. Lower bound: not before the session
        # expiry could have run (a clock slip of 1 s allowed); upper bound: generous.
        will_topic = self.by.topic + "-will"
        sub = self.connected5(self.attacker_id())
        sub.subscribe([(will_topic, 1)])
        with self.attack(served_during=True):
            c = self.connected5(self.attacker_id(), clean_start=True,
                                properties={"SessionExpiryInterval": 2},
                                will={"topic": will_topic, "payload": b"late", "qos": 1,
                                      "properties": {"WillDelayInterval": 0xFFFFFFFF}})
            c.abort()  # no DISCONNECT: the will stands
            gone = time.monotonic()
            m = sub.receive_messages(1, timeout=2 + 15)[0]
            waited = time.monotonic() - gone
            self.assertEqual((m.topic, m.payload), (will_topic, b"late"))
            self.assertGreaterEqual(waited, 1.0, "the will came before the session expired")
            note(f"will published {waited:.2f} s after the connection was lost "
                 "(session expiry 2 s)")


if __name__ == "__main__":
    harness.main()
