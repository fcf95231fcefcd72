#!/usr/bin/python3
"""MQTT 5.0 on a plain socket, for the test_v5_*.py integration tests: what paho cannot show.

  * encode_*5(): MQTT 5.0 packets with properties (a dict, see PROPERTIES), byte for byte as the
    test says, including ones a real client would never send;
  * Client5: a harness.RawClient speaking 5.0: it decodes every 5.0 packet (reason codes,
    properties, topic aliases) and never acknowledges anything unless told to;
  * Paho5: paho-mqtt 1.6.1 in MQTTv5 mode with bounded waits, keeping received properties;
  * V5TestCase: a harness.BrokerTestCase with factories for both.

Properties are dicts keyed by the names of 5.0 §2.2.2.2 in CamelCase (paho's spelling):
{"SessionExpiryInterval": 60, "UserProperty": [("k", "v")], "SubscriptionIdentifier": [3]}.
UserProperty and SubscriptionIdentifier, the two that may repeat, are always lists when decoded.
"""

from __future__ import annotations

import os
import queue
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (CONNACK, DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC,  # noqa: E402
                     PUBREL, SUBACK, SUBSCRIBE, UNSUBACK, UNSUBSCRIBE, WAIT,
                     ConnectionClosed, ProtocolViolation, encode_string, encode_varint, frame)

AUTH = 15

# --------------------------------------------------------------------------------------------
# Properties (5.0 §2.2.2.2).

BYTE, U16, U32, VARINT = "byte", "u16", "u32", "varint"
STRING, BINARY, PAIR = "string", "bin", "pair"

PROPERTIES = {
    0x01: ("PayloadFormatIndicator", BYTE),
    0x02: ("MessageExpiryInterval", U32),
    0x03: ("ContentType", STRING),
    0x08: ("ResponseTopic", STRING),
    0x09: ("CorrelationData", BINARY),
    0x0B: ("SubscriptionIdentifier", VARINT),
    0x11: ("SessionExpiryInterval", U32),
    0x12: ("AssignedClientIdentifier", STRING),
    0x13: ("ServerKeepAlive", U16),
    0x15: ("AuthenticationMethod", STRING),
    0x16: ("AuthenticationData", BINARY),
    0x17: ("RequestProblemInformation", BYTE),
    0x18: ("WillDelayInterval", U32),
    0x19: ("RequestResponseInformation", BYTE),
    0x1A: ("ResponseInformation", STRING),
    0x1C: ("ServerReference", STRING),
    0x1F: ("ReasonString", STRING),
    0x21: ("ReceiveMaximum", U16),
    0x22: ("TopicAliasMaximum", U16),
    0x23: ("TopicAlias", U16),
    0x24: ("MaximumQoS", BYTE),
    0x25: ("RetainAvailable", BYTE),
    0x26: ("UserProperty", PAIR),
    0x27: ("MaximumPacketSize", U32),
    0x28: ("WildcardSubscriptionAvailable", BYTE),
    0x29: ("SubscriptionIdentifierAvailable", BYTE),
    0x2A: ("SharedSubscriptionAvailable", BYTE),
}
PROPERTY_IDS = {name: (pid, kind) for pid, (name, kind) in PROPERTIES.items()}
REPEATABLE = ("UserProperty", "SubscriptionIdentifier")

# Reason codes the tests name (5.0 §2.4).
SUCCESS = 0x00
GRANTED_QOS_1, GRANTED_QOS_2 = 0x01, 0x02
DISCONNECT_WITH_WILL = 0x04
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
BAD_AUTHENTICATION_METHOD = 0x8C
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
RECEIVE_MAXIMUM_EXCEEDED = 0x93
RETAIN_NOT_SUPPORTED = 0x9A
QOS_NOT_SUPPORTED = 0x9B
SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


def _encode_value(kind: str, value) -> bytes:
    if kind == BYTE:
        return bytes([value])
    if kind == U16:
        return value.to_bytes(2, "big")
    if kind == U32:
        return value.to_bytes(4, "big")
    if kind == VARINT:
        return encode_varint(value)
    if kind == STRING:
        return encode_string(value)
    if kind == BINARY:
        data = value.encode() if isinstance(value, str) else bytes(value)
        return len(data).to_bytes(2, "big") + data
    if kind == PAIR:
        return encode_string(value[0]) + encode_string(value[1])
    raise ValueError(kind)


def encode_properties(props: Optional[dict]) -> bytes:
    """Property Length + properties, in the dict's order; a list value of a repeatable property
    is written as one property per element."""
    body = b""
    for name, value in (props or {}).items():
        pid, kind = PROPERTY_IDS[name]
        if name == "UserProperty":
            values = list(value)  # [(name, value), ...]
        elif name == "SubscriptionIdentifier" and isinstance(value, (list, tuple)):
            values = list(value)
        else:
            values = [value]
        for v in values:
            body += encode_varint(pid) + _encode_value(kind, v)
    return encode_varint(len(body)) + body


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    for i in range(4):
        if pos + i >= len(data):
            raise ProtocolViolation(f"truncated variable byte integer: {data!r}")
        byte = data[pos + i]
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos + i + 1
    raise ProtocolViolation(f"variable byte integer longer than 4 bytes: {data!r}")


def _decode_string(data: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _decode_binary(data, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as e:
        raise ProtocolViolation(f"broker sent a string that is not UTF-8: {raw!r}") from e


def _decode_binary(data: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(data):
        raise ProtocolViolation(f"truncated length prefix: {data!r}")
    n = int.from_bytes(data[pos:pos + 2], "big")
    if pos + 2 + n > len(data):
        raise ProtocolViolation(f"truncated string or binary data: {data!r}")
    return bytes(data[pos + 2:pos + 2 + n]), pos + 2 + n


def decode_properties(data: bytes, pos: int) -> tuple[dict, int]:
    """Decodes Property Length + properties at `pos`; returns (properties, position after)."""
    length, pos = decode_varint(data, pos)
    end = pos + length
    if end > len(data):
        raise ProtocolViolation(f"property length {length} beyond the packet: {data!r}")
    props: dict = {}
    while pos < end:
        pid, pos = decode_varint(data, pos)
        if pid not in PROPERTIES:
            raise ProtocolViolation(f"unknown property identifier {pid:#x}")
        name, kind = PROPERTIES[pid]
        if kind == BYTE:
            value, pos = data[pos], pos + 1
        elif kind == U16:
            value, pos = int.from_bytes(data[pos:pos + 2], "big"), pos + 2
        elif kind == U32:
            value, pos = int.from_bytes(data[pos:pos + 4], "big"), pos + 4
        elif kind == VARINT:
            value, pos = decode_varint(data, pos)
        elif kind == STRING:
            value, pos = _decode_string(data, pos)
        elif kind == BINARY:
            value, pos = _decode_binary(data, pos)
        else:
            key, pos = _decode_string(data, pos)
            val, pos = _decode_string(data, pos)
            value = (key, val)
        if name in REPEATABLE:
            props.setdefault(name, []).append(value)
        elif name in props:
            # 5.0 §2.2.2.2: including a property more than once is a Protocol Error.
            raise ProtocolViolation(f"broker sent property {name} twice")
        else:
            props[name] = value
    if pos != end:
        raise ProtocolViolation(f"properties overrun their length: {data!r}")
    return props, end


# --------------------------------------------------------------------------------------------
# Encoding 5.0 packets.


def encode_connect5(client_id="", clean_start=True, keepalive=60, properties=None, will=None,
                    username=None, password=None) -> bytes:
    """`will`: dict(topic, payload, qos=0, retain=False, properties=None)."""
    flags = 0x02 if clean_start else 0
    payload = encode_string(client_id)
    if will is not None:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
        w_payload = will.get("payload", b"")
        w_bytes = w_payload.encode() if isinstance(w_payload, str) else bytes(w_payload)
        payload += (encode_properties(will.get("properties")) + encode_string(will["topic"])
                    + len(w_bytes).to_bytes(2, "big") + w_bytes)
    if username is not None:
        flags |= 0x80
        payload += encode_string(username)
    if password is not None:
        flags |= 0x40
        pw = password.encode() if isinstance(password, str) else bytes(password)
        payload += len(pw).to_bytes(2, "big") + pw
    body = (encode_string("MQTT") + bytes([5, flags]) + keepalive.to_bytes(2, "big")
            + encode_properties(properties) + payload)
    return frame(harness.CONNECT << 4, body)


def encode_publish5(topic, payload=b"", qos=0, retain=False, packet_id=None, dup=False,
                    properties=None) -> bytes:
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = encode_string(topic)
    if qos:
        body += packet_id.to_bytes(2, "big")
    data = payload.encode() if isinstance(payload, str) else bytes(payload)
    body += encode_properties(properties) + data
    return frame((PUBLISH << 4) | flags, body)


def encode_ack5(packet_type: int, packet_id: int, reason: int = 0, properties=None) -> bytes:
    """PUBACK, PUBREC, PUBREL or PUBCOMP; the short form (no reason code) for 0 without
    properties, as 5.0 §3.4.2.1 allows."""
    flags = 0x02 if packet_type == PUBREL else 0
    body = packet_id.to_bytes(2, "big")
    if reason or properties:
        body += bytes([reason]) + (encode_properties(properties) if properties else b"")
    return frame((packet_type << 4) | flags, body)


def subscription_options(qos=0, no_local=False, retain_as_published=False,
                         retain_handling=0) -> int:
    """The Subscription Options byte of 5.0 §3.8.3.1."""
    return (qos | (0x04 if no_local else 0) | (0x08 if retain_as_published else 0)
            | (retain_handling << 4))


def encode_subscribe5(packet_id: int, filters, properties=None) -> bytes:
    """`filters`: [(filter, options)] where options is a QoS (int) or a dict of
    subscription_options() arguments."""
    body = packet_id.to_bytes(2, "big") + encode_properties(properties)
    for topic_filter, options in filters:
        opts = options if isinstance(options, int) else subscription_options(**options)
        body += encode_string(topic_filter) + bytes([opts])
    return frame((SUBSCRIBE << 4) | 0x02, body)


def encode_unsubscribe5(packet_id: int, filters, properties=None) -> bytes:
    body = (packet_id.to_bytes(2, "big") + encode_properties(properties)
            + b"".join(encode_string(f) for f in filters))
    return frame((UNSUBSCRIBE << 4) | 0x02, body)


def encode_disconnect5(reason: int = 0, properties=None) -> bytes:
    if not reason and not properties:
        return bytes([DISCONNECT << 4, 0])
    return frame(DISCONNECT << 4, bytes([reason]) + encode_properties(properties))


# --------------------------------------------------------------------------------------------
# Decoding 5.0 packets.


@dataclass
class Packet5:
    """One packet received by Client5, with the fields of its type decoded."""
    type: int
    flags: int
    body: bytes
    packet_id: Optional[int] = None
    properties: dict = field(default_factory=dict)
    # PUBLISH
    topic: Optional[str] = None
    payload: bytes = b""
    qos: int = 0
    dup: bool = False
    retain: bool = False
    # CONNACK, PUBACK..PUBCOMP, DISCONNECT, AUTH
    session_present: bool = False
    reason_code: Optional[int] = None
    # SUBACK, UNSUBACK
    reason_codes: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return harness.PACKET_NAMES.get(self.type, f"type {self.type}")

    def __repr__(self) -> str:
        props = f", props={self.properties}" if self.properties else ""
        if self.type == PUBLISH:
            return (f"PUBLISH(topic={self.topic!r}, payload={self.payload[:40]!r}, qos={self.qos}, "
                    f"dup={int(self.dup)}, retain={int(self.retain)}, id={self.packet_id}{props})")
        if self.type == CONNACK:
            return f"CONNACK(sp={int(self.session_present)}, rc={self.reason_code:#04x}{props})"
        if self.type in (SUBACK, UNSUBACK):
            codes = [f"{c:#04x}" for c in self.reason_codes]
            return f"{self.name}(id={self.packet_id}, codes={codes}{props})"
        if self.type in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            return f"{self.name}(id={self.packet_id}, rc={self.reason_code:#04x}{props})"
        if self.reason_code is not None:
            return f"{self.name}(rc={self.reason_code:#04x}{props})"
        return f"{self.name}(flags={self.flags:#x}, body={self.body!r})"


def decode_packet5(first_byte: int, body: bytes) -> Packet5:
    ptype, flags = first_byte >> 4, first_byte & 0x0F
    p = Packet5(ptype, flags, body)
    if ptype == PUBLISH:
        p.dup, p.qos, p.retain = bool(flags & 0x08), (flags >> 1) & 0x03, bool(flags & 0x01)
        if p.qos == 3:
            raise ProtocolViolation(f"broker sent a PUBLISH with QoS 3: {body!r}")
        p.topic, pos = _decode_string(body, 0)
        if p.qos:
            p.packet_id = int.from_bytes(body[pos:pos + 2], "big")
            pos += 2
        p.properties, pos = decode_properties(body, pos)
        p.payload = bytes(body[pos:])
    elif ptype == CONNACK:
        if len(body) < 3:
            raise ProtocolViolation(f"5.0 CONNACK of length {len(body)}: {body!r}")
        p.session_present, p.reason_code = bool(body[0] & 0x01), body[1]
        p.properties, end = decode_properties(body, 2)
        if end != len(body):
            raise ProtocolViolation(f"bytes after the CONNACK properties: {body!r}")
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        if len(body) < 2:
            raise ProtocolViolation(f"{p.name} of length {len(body)}: {body!r}")
        p.packet_id = int.from_bytes(body[0:2], "big")
        p.reason_code = body[2] if len(body) > 2 else 0
        if len(body) > 3:
            p.properties, _ = decode_properties(body, 3)
    elif ptype in (SUBACK, UNSUBACK):
        p.packet_id = int.from_bytes(body[0:2], "big")
        p.properties, pos = decode_properties(body, 2)
        p.reason_codes = list(body[pos:])
    elif ptype in (DISCONNECT, AUTH):
        p.reason_code = body[0] if body else 0
        if len(body) > 1:
            p.properties, _ = decode_properties(body, 1)
    return p


# --------------------------------------------------------------------------------------------
# The raw 5.0 client.


class Client5(harness.RawClient):
    """harness.RawClient for MQTT 5.0: sends exactly what the test says, decodes what comes back
    as Packet5. Inherited helpers (recv, expect, expect_closed, expect_silence, receive_messages
    with or without acks) work unchanged; acknowledgements carry reason codes here."""

    def decode(self, first_byte: int, body: bytes) -> Packet5:
        return decode_packet5(first_byte, body)

    def connect(self, client_id="", clean_start=True, keepalive=60, properties=None, will=None,
                expect_reason: Optional[int] = 0, username=None, password=None) -> Packet5:
        """Sends CONNECT, returns the CONNACK; checks its reason code unless expect_reason=None."""
        self.send(encode_connect5(client_id, clean_start, keepalive, properties, will,
                                  username, password))
        p = self.recv()
        if p.type != CONNACK:
            raise AssertionError(f"expected CONNACK, got {p!r}")
        if expect_reason is not None and p.reason_code != expect_reason:
            raise AssertionError(f"CONNACK reason {p.reason_code:#04x}, expected "
                                 f"{expect_reason:#04x}: {p!r}")
        return p

    def subscribe(self, filters, properties=None, packet_id: Optional[int] = None) -> Packet5:
        """SUBSCRIBE [(filter, options)] (see encode_subscribe5); returns the SUBACK."""
        pid = packet_id or self.next_packet_id()
        self.send(encode_subscribe5(pid, filters, properties))
        p = self.recv()
        if p.type != SUBACK or p.packet_id != pid:
            raise AssertionError(f"expected SUBACK for {pid}, got {p!r}")
        return p

    def unsubscribe(self, filters, properties=None) -> Packet5:
        pid = self.next_packet_id()
        self.send(encode_unsubscribe5(pid, filters, properties))
        return self.expect(UNSUBACK, pid)

    def publish(self, topic, payload=b"", qos=0, retain=False, packet_id=None, dup=False,
                properties=None) -> int:
        if qos and packet_id is None:
            packet_id = self.next_packet_id()
        self.send(encode_publish5(topic, payload, qos, retain, packet_id, dup, properties))
        return packet_id or 0

    def publish_and_complete(self, topic, payload=b"", qos=0, retain=False,
                             properties=None) -> Optional[Packet5]:
        """Publishes and completes the QoS 1/2 flow; returns the PUBACK or PUBREC (reason code)."""
        pid = self.publish(topic, payload, qos, retain, properties=properties)
        if qos == 1:
            return self.expect(PUBACK, pid)
        if qos == 2:
            rec = self.expect(PUBREC, pid)
            self.send(encode_ack5(PUBREL, pid))
            self.expect(PUBCOMP, pid)
            return rec
        return None

    def puback(self, pid: int, reason: int = 0) -> None:
        self.send(encode_ack5(PUBACK, pid, reason))

    def pubrec(self, pid: int, reason: int = 0) -> None:
        self.send(encode_ack5(PUBREC, pid, reason))

    def pubrel(self, pid: int, reason: int = 0) -> None:
        self.send(encode_ack5(PUBREL, pid, reason))

    def pubcomp(self, pid: int, reason: int = 0) -> None:
        self.send(encode_ack5(PUBCOMP, pid, reason))

    def disconnect(self, reason: int = 0, properties=None) -> None:
        """Sends DISCONNECT and closes the socket."""
        try:
            self.send(encode_disconnect5(reason, properties))
        finally:
            self.close()

    def expect_disconnect(self, reason: int, timeout: float = WAIT,
                          skip=(PUBLISH,)) -> Packet5:
        """Waits for a DISCONNECT from the broker (packets of the types in `skip` before it are
        ignored), checks its reason code, then checks that the broker closes the connection."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            try:
                p = self.recv(max(0.001, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError(f"no DISCONNECT {reason:#04x} in {timeout} s "
                                     f"(received {seen!r})") from None
            except ConnectionClosed:
                raise AssertionError(f"connection closed without DISCONNECT {reason:#04x} "
                                     f"(received {seen!r})") from None
            if p.type == DISCONNECT:
                break
            if p.type not in skip:
                raise AssertionError(f"expected DISCONNECT {reason:#04x}, got {p!r}")
            seen.append(p)
        if p.reason_code != reason:
            raise AssertionError(f"DISCONNECT reason {p.reason_code:#04x}, expected "
                                 f"{reason:#04x}: {p!r}")
        rest = self.expect_closed(max(0.5, deadline - time.monotonic()))
        if rest:
            raise AssertionError(f"packets after DISCONNECT: {rest!r}")
        return p

    def next_publish(self, timeout: Optional[float] = None) -> Packet5:
        return self.expect(PUBLISH, timeout=timeout)


# --------------------------------------------------------------------------------------------
# paho-mqtt in 5.0 mode.

try:
    import paho.mqtt.client as paho
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError:  # pragma: no cover
    paho = None


def paho_properties(packet_type, values: Optional[dict]):
    """A paho Properties object for `packet_type` (PacketTypes.*) from a dict as above."""
    if not values:
        return None
    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    return props


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: dict


def properties_dict(props) -> dict:
    """paho Properties -> dict as above (UserProperty and SubscriptionIdentifier as lists)."""
    if props is None:
        return {}
    out = {}
    for name in props.names:
        attr = name.replace(" ", "")
        if hasattr(props, attr):
            value = getattr(props, attr)
            if attr in REPEATABLE and not isinstance(value, list):
                value = [value]
            out[attr] = value
    return out


class Paho5(harness.PahoClient):
    """harness.PahoClient in MQTT 5 mode (or `protocol`): properties on CONNECT, the will,
    PUBLISH, SUBSCRIBE and DISCONNECT, subscription options, UNSUBSCRIBE, reason codes, and
    received messages as Received (with their properties)."""

    DEFAULT_PROTOCOL = "MQTTv5"

    def __init__(self, port: int, client_id: str = "", clean_start: bool = True,
                 properties: Optional[dict] = None, will: Optional[dict] = None,
                 keepalive: int = 60, protocol=None):
        super().__init__(port, client_id, clean_start, protocol, will, keepalive)
        self.clean_start = clean_start
        self.connect_properties = properties
        self.connack_properties: dict = {}
        self._unsubacks: dict = {}
        self.client.on_unsubscribe = self._on_unsubscribe

    def _set_will(self, will: dict) -> None:
        """`will`: {"topic", "payload", "qos", "retain", "properties"}, all but the topic
        optional."""
        self.client.will_set(will["topic"], will.get("payload", b""), will.get("qos", 0),
                             will.get("retain", False),
                             properties=paho_properties(PacketTypes.WILLMESSAGE,
                                                        will.get("properties")))

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connack_properties = properties_dict(properties)
        super()._on_connect(client, userdata, flags, rc, properties)

    def _on_message(self, client, userdata, msg):
        self.messages.put(Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain),
                                   properties_dict(getattr(msg, "properties", None))))

    def _on_unsubscribe(self, client, userdata, mid, properties=None, reasons=None):
        with self._cond:
            if isinstance(reasons, list):
                reasons = [harness.reason_value(r) for r in reasons]
            elif reasons is not None:
                reasons = [harness.reason_value(reasons)]
            self._unsubacks[mid] = reasons
            self._cond.notify_all()

    def _connect_kwargs(self) -> dict:
        if self.protocol != paho.MQTTv5:
            return {}
        return {"clean_start": self.clean_start,
                "properties": paho_properties(PacketTypes.CONNECT, self.connect_properties)}

    def connect(self, timeout: float = WAIT, expect_rc: Optional[int] = 0) -> dict:
        """Connects and waits for the CONNACK; returns its properties."""
        super().connect(timeout, expect_rc)
        return self.connack_properties

    def subscribe(self, topic: str, qos: int = 0, no_local=False, retain_as_published=False,
                  retain_handling=0, properties: Optional[dict] = None,
                  timeout: float = WAIT) -> list:
        """Subscribes and waits for the SUBACK; returns its reason codes."""
        if self.protocol != paho.MQTTv5:
            return super().subscribe(topic, qos, timeout)
        options = SubscribeOptions(qos=qos, noLocal=no_local,
                                   retainAsPublished=retain_as_published,
                                   retainHandling=retain_handling)
        result, mid = self.client.subscribe(
            topic, options=options, properties=paho_properties(PacketTypes.SUBSCRIBE, properties))
        return self._acknowledged("subscribe", result, mid, self._subacks, "SUBACK", timeout)

    def unsubscribe(self, topic: str, timeout: float = WAIT):
        result, mid = self.client.unsubscribe(topic)
        return self._acknowledged("unsubscribe", result, mid, self._unsubacks, "UNSUBACK",
                                  timeout)

    def publish(self, topic: str, payload=b"", qos: int = 0, retain: bool = False,
                properties: Optional[dict] = None, timeout: float = WAIT) -> None:
        """Publishes (with properties) and, for QoS 1/2, waits until the flow completes."""
        super().publish(topic, payload, qos, retain, timeout,
                        properties=paho_properties(PacketTypes.PUBLISH, properties))

    def collect(self, count: int, timeout: float = WAIT) -> list:
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < count:
            try:
                got.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"paho received {len(got)} of {count} messages in "
                                     f"{timeout} s: {got!r}") from None
        return got

    def drain(self) -> list:
        got = []
        while True:
            try:
                got.append(self.messages.get_nowait())
            except queue.Empty:
                return got

    def disconnect(self, reason: int = 0, properties: Optional[dict] = None,
                   timeout: float = WAIT) -> None:
        """Sends DISCONNECT (with a reason code and properties in 5.0) and stops."""
        if self.protocol != paho.MQTTv5:
            super().disconnect(timeout)
            return
        from paho.mqtt.reasoncodes import ReasonCodes
        super().disconnect(timeout, reasoncode=ReasonCodes(PacketTypes.DISCONNECT,
                                                           identifier=reason),
                           properties=paho_properties(PacketTypes.DISCONNECT, properties))


# --------------------------------------------------------------------------------------------
# unittest glue.


class V5TestCase(harness.BrokerTestCase):
    """BrokerTestCase with 5.0 client factories; every client is closed before the broker stops."""

    def client5(self, timeout: float = WAIT) -> Client5:
        """A raw 5.0 client, connected at TCP level only."""
        c = Client5(self.port, timeout)
        self.addCleanup(c.close)
        return c

    def connected5(self, client_id: str = "", clean_start: bool = True, keepalive: int = 60,
                   properties: Optional[dict] = None, will: Optional[dict] = None) -> Client5:
        """A raw 5.0 client after a successful CONNACK (in c.connack)."""
        c = self.client5()
        c.connack = c.connect(client_id, clean_start, keepalive, properties, will)
        return c

    def paho5(self, client_id: str = "", connect: bool = True, **kwargs) -> Paho5:
        """A paho 5.0 client (connected unless connect=False)."""
        c = Paho5(self.port, client_id, **kwargs)
        self.addCleanup(c.stop)
        if connect:
            c.connect()
        return c

    def paho311(self, client_id: str = "", connect: bool = True, **kwargs) -> Paho5:
        """The same wrapper speaking MQTT 3.1.1."""
        return self.paho5(client_id, connect, protocol=paho.MQTTv311, **kwargs)
