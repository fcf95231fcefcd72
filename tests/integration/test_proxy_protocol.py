#!/usr/bin/python3
"""PROXY protocol listeners (issue #8: a listener with `proxy_protocol = true`, behind a load
balancer; haproxy's "The PROXY protocol, Versions 1 & 2").

Each broker has a plain listener (self.port) and a PROXY one (self.proxy_port). Raw sockets send a
PROXY header, then an MQTT 3.1.1 CONNECT, and must get a CONNACK; the broker's connect line
("client ID connected from ADDR (...)") must name the address the header claims, not 127.0.0.1:

  * v1 TCP4 and TCP6, v1 UNKNOWN (the socket's own address is kept);
  * v2 (binary) TCP4, TCP4 with TLVs after the addresses, TCP6, and LOCAL (a load balancer's
    health check: the socket's own address is kept);
  * each with the header and the CONNECT in one segment, and split byte by byte;
  * on the PROXY listener a client without a header (a plain CONNECT) and garbage headers are
    closed without a CONNACK; a header that stops half-way is closed by connect_timeout_ms;
  * the plain listener next to it is unaffected (and does not honour a PROXY header: it is not
    MQTT there, so the connection is closed);
  * [limits] max_connections_per_address counts the address from the header, not the balancer's
    (four connections from 127.0.0.1 waiting for their headers at once all get in); three connections
    claiming 192.0.2.9 with a cap of 2 -> the third is closed, one claiming 192.0.2.10 gets in
    (all of them really come from 127.0.0.1), and a slot given back is usable again.

A bystander on the plain listener publishes and receives QoS 1 throughout.

tinymq only: mosquitto 2.0.11 has no PROXY protocol support (the whole file skips there).
"""

import faulthandler
import ipaddress
import os
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CONNACK, HOST, WAIT  # noqa: E402

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# The (debug) line that closes a connection whose header the broker refused.
BAD_HEADER = "bad PROXY protocol header"


def v1(source: str, sport: int, dest: str = "127.0.0.1", dport: int = 1883) -> bytes:
    family = "TCP6" if ":" in source else "TCP4"
    return f"PROXY {family} {source} {dest} {sport} {dport}\r\n".encode()


def v2(source: str = "", sport: int = 0, dest: str = "", dport: int = 1883, local: bool = False,
       tlvs: bytes = b"") -> bytes:
    """A v2 header: PROXY (or LOCAL) over TCP (STREAM) for the family of `source`."""
    if local:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack(">H", 0)
    src = ipaddress.ip_address(source)
    if src.version == 4:
        dst = ipaddress.ip_address(dest or "127.0.0.1")
        family = 0x11  # AF_INET, STREAM
    else:
        dst = ipaddress.ip_address(dest or "::1")
        family = 0x21  # AF_INET6, STREAM
    block = src.packed + dst.packed + struct.pack(">HH", sport, dport) + tlvs
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack(">H", len(block)) + block


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack(">H", len(value)) + value


def start_broker(**kwargs):
    """A broker with a plain listener (broker.port) and a PROXY one (returned port)."""
    ports = []

    def make() -> harness.Broker:
        ports.append(harness.free_port())
        return harness.Broker(extra_listeners=[{"port": ports[-1], "proxy_protocol": True}],
                              **kwargs)
    broker = harness.start_with_free_ports(make)
    return broker, ports[-1]


@harness.not_on_mosquitto("no PROXY protocol support in mosquitto 2.0.11")
class ProxyProtocolTestCase(unittest.TestCase):
    # The default connect_timeout_ms (10 s) is over every wait here (5 s): a connection closed
    # within a wait was closed for what it sent, not for its silence.
    limits: dict = {}
    workers = 2

    def setUp(self):
        faulthandler.dump_traceback_later(harness.TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)
        self.broker, self.proxy_port = start_broker(limits=self.limits, workers=self.workers)
        self.addCleanup(self.broker.cleanup)
        self.addCleanup(self.stop_broker)
        self.port = self.broker.port
        self.clients = []
        self.bystander_count = 0
        self.bystander = harness.PahoClient(self.port, "it-proxy-bystander")
        self.bystander.connect()
        self.assertEqual(self.bystander.subscribe("it/proxy/bystander", 1), [1])
        self.check_bystander()

    def stop_broker(self):
        for c in self.clients:
            c.close()
        self.bystander.disconnect()
        problems = self.broker.stop()
        self.assertEqual(problems, [])

    def check_bystander(self):
        """The bystander publishes QoS 1 on the plain listener and gets its message back."""
        self.bystander_count += 1
        payload = f"bystander {self.bystander_count}".encode()
        self.bystander.publish("it/proxy/bystander", payload, 1)
        m = self.bystander.get()
        self.assertEqual((m.topic, m.payload, m.qos), ("it/proxy/bystander", payload, 1))

    def raw(self, port=None) -> harness.RawClient:
        c = harness.RawClient(self.proxy_port if port is None else port)
        self.clients.append(c)
        return c

    def proxied(self, header: bytes, client_id: str, split: bool = False) -> harness.RawClient:
        """Header + CONNECT on the PROXY listener, in one segment or byte by byte; checks the
        CONNACK (return code 0)."""
        c = self.raw()
        data = header + harness.encode_connect(client_id)
        if split:
            for i in range(len(data)):
                c.send(data[i:i + 1])
                time.sleep(0.001)  # TCP_NODELAY: one segment per byte, mostly
        else:
            c.send(data)
        p = c.recv()
        self.assertEqual((p.type, p.return_code), (CONNACK, 0), f"{p!r}")
        return c

    def wait_log(self, text: str, timeout: float = WAIT) -> None:
        """The log is written by a thread of its own: poll (bounded) until `text` is in it."""
        if not harness.wait_until(lambda: text in self.broker.log(), timeout, 0.05):
            self.fail(f"{text!r} not in the broker log within {timeout} s; tail:\n"
                      + self.broker.log_tail(30))

    def assert_refused(self, data: bytes, port=None, what: str = "",
                       log_line: str = "") -> None:
        """`data` on the PROXY listener (or `port`): closed, and not a byte back (no CONNACK).
        With `log_line`, one more line containing it must appear in the log (so the close is the
        refusal, not the CONNECT timeout)."""
        before = self.broker.log().count(log_line) if log_line else 0
        c = self.raw(port)
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed already
        try:
            got = c.expect_closed(WAIT)
        except ConnectionResetError:
            got = []
        self.assertEqual(got, [], f"{what}: the broker answered {got!r}")
        if log_line and not harness.wait_until(
                lambda: self.broker.log().count(log_line) > before, WAIT, 0.05):
            self.fail(f"{what}: no new {log_line!r} line in the log; tail:\n"
                      + self.broker.log_tail(20))

    def assert_works(self, c: harness.RawClient, topic: str) -> None:
        """The connection carries MQTT after the header: subscribe, publish QoS 1, receive."""
        self.assertEqual(c.subscribe([(topic, 1)]), [1])
        pid = c.publish(topic, b"through the proxy", 1)
        # Its PUBACK and the message back to it, in either order.
        got = {}
        for _ in range(2):
            p = c.recv()
            got[p.type] = p
            if p.type == harness.PUBLISH:
                c.puback(p.packet_id)
        self.assertEqual(set(got), {harness.PUBACK, harness.PUBLISH}, f"{got!r}")
        self.assertEqual(got[harness.PUBACK].packet_id, pid)
        m = got[harness.PUBLISH]
        self.assertEqual((m.topic, m.payload, m.qos), (topic, b"through the proxy", 1))


class ProxyHeaderTest(ProxyProtocolTestCase):

    def test_v1_tcp4_one_segment(self):
        c = self.proxied(v1("192.0.2.7", 40000), "it-proxy-v1")
        self.wait_log("client it-proxy-v1 connected from 192.0.2.7:40000 (MQTT 3.1.1")
        self.assert_works(c, "it/proxy/v1")
        self.check_bystander()

    def test_v1_tcp4_byte_by_byte(self):
        c = self.proxied(v1("192.0.2.8", 40001), "it-proxy-v1-split", split=True)
        self.wait_log("client it-proxy-v1-split connected from 192.0.2.8:40001 (MQTT 3.1.1")
        self.assert_works(c, "it/proxy/v1split")
        self.check_bystander()

    def test_v1_tcp6(self):
        self.proxied(v1("2001:db8::9", 40002, "2001:db8::1"), "it-proxy-v1-6")
        self.wait_log("client it-proxy-v1-6 connected from [2001:db8::9]:40002 (")

    def test_v1_unknown_keeps_the_socket_address(self):
        c = self.proxied(b"PROXY UNKNOWN\r\n", "it-proxy-unknown")
        own = f"{HOST}:{c.sock.getsockname()[1]}"
        self.wait_log(f"client it-proxy-unknown connected from {own} (")
        # §2.1: after UNKNOWN the receiver ignores everything up to the CRLF.
        c2 = self.proxied(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", "it-proxy-unknown-2",
                          split=True)
        own2 = f"{HOST}:{c2.sock.getsockname()[1]}"
        self.wait_log(f"client it-proxy-unknown-2 connected from {own2} (")
        self.assert_works(c2, "it/proxy/unknown")

    def test_v2_tcp4_one_segment_and_byte_by_byte(self):
        c = self.proxied(v2("198.51.100.20", 51000), "it-proxy-v2")
        self.wait_log("client it-proxy-v2 connected from 198.51.100.20:51000 (MQTT 3.1.1")
        self.assert_works(c, "it/proxy/v2")
        c2 = self.proxied(v2("198.51.100.21", 51001), "it-proxy-v2-split", split=True)
        self.wait_log("client it-proxy-v2-split connected from 198.51.100.21:51001 (MQTT 3.1.1")
        self.assert_works(c2, "it/proxy/v2split")
        self.check_bystander()

    def test_v2_tcp4_with_tlvs(self):
        # What AWS NLB / haproxy add after the addresses: PP2_TYPE_AUTHORITY (0x02), a unique id
        # (0x05), a NOOP (0x04). Skipped by the broker; the CONNECT after them must be read.
        tlvs = tlv(0x02, b"broker.example.com") + tlv(0x05, b"\x01" * 16) + tlv(0x04, b"")
        c = self.proxied(v2("203.0.113.44", 52000, tlvs=tlvs), "it-proxy-v2-tlv", split=True)
        self.wait_log("client it-proxy-v2-tlv connected from 203.0.113.44:52000 (")
        self.assert_works(c, "it/proxy/tlv")

    def test_v2_tcp6(self):
        c = self.proxied(v2("2001:db8::5", 53000), "it-proxy-v2-6")
        self.wait_log("client it-proxy-v2-6 connected from [2001:db8::5]:53000 (")
        self.assert_works(c, "it/proxy/v26a")
        c2 = self.proxied(v2("2001:db8::6", 53001), "it-proxy-v2-6-split", split=True)
        self.wait_log("client it-proxy-v2-6-split connected from [2001:db8::6]:53001 (")
        self.assert_works(c2, "it/proxy/v26")

    def test_v2_local_health_check_keeps_the_socket_address(self):
        c = self.proxied(v2(local=True), "it-proxy-local")
        own = f"{HOST}:{c.sock.getsockname()[1]}"
        self.wait_log(f"client it-proxy-local connected from {own} (")
        self.assert_works(c, "it/proxy/local")
        # A health check that connects, sends LOCAL and leaves: nothing to answer, no harm.
        s = self.raw()
        s.send(v2(local=True))
        s.close()
        c2 = self.proxied(v2(local=True), "it-proxy-local-split", split=True)
        own2 = f"{HOST}:{c2.sock.getsockname()[1]}"
        self.wait_log(f"client it-proxy-local-split connected from {own2} (")
        self.check_bystander()


class ProxyRefusalTest(ProxyProtocolTestCase):

    def test_plain_connect_without_header_is_closed_without_connack(self):
        self.assert_refused(harness.encode_connect("it-proxy-noheader"), what="plain CONNECT",
                            log_line=BAD_HEADER)
        self.wait_log("PROXY protocol header with")
        self.assertNotIn("client it-proxy-noheader connected", self.broker.log())
        self.check_bystander()

    def test_garbage_headers_are_closed_without_connack(self):
        connect = harness.encode_connect("it-proxy-garbage")
        cases = {
            "HTTP request": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "TLS ClientHello": b"\x16\x03\x01\x00\x05hello",
            "lower-case v1": b"proxy TCP4 192.0.2.7 127.0.0.1 40000 1883\r\n" + connect,
            "v1 bad family": b"PROXY TCP5 192.0.2.7 127.0.0.1 40000 1883\r\n" + connect,
            "v1 bad address": b"PROXY TCP4 192.0.2.999 127.0.0.1 40000 1883\r\n" + connect,
            "v1 v6 address as TCP4": b"PROXY TCP4 2001:db8::1 127.0.0.1 40000 1883\r\n" + connect,
            "v1 port out of range": b"PROXY TCP4 192.0.2.7 127.0.0.1 70000 1883\r\n" + connect,
            "v1 leading zero port": b"PROXY TCP4 192.0.2.7 127.0.0.1 04000 1883\r\n" + connect,
            "v1 two spaces": b"PROXY TCP4  192.0.2.7 127.0.0.1 40000 1883\r\n" + connect,
            "v1 LF without CR": b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 1883\n" + connect,
            "v1 line over 107 bytes": b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n" + connect,
            "v2 version 1": V2_SIGNATURE + bytes([0x11, 0x11, 0, 12]) + bytes(12) + connect,
            "v2 command 2": V2_SIGNATURE + bytes([0x22, 0x11, 0, 12]) + bytes(12) + connect,
            "v2 family 4": V2_SIGNATURE + bytes([0x21, 0x41, 0, 12]) + bytes(12) + connect,
            "v2 length too short for TCP6": V2_SIGNATURE + bytes([0x21, 0x21, 0, 12])
            + bytes(12) + connect,
            "v2 length over the limit": V2_SIGNATURE + bytes([0x21, 0x11, 0xFF, 0xFF])
            + bytes(12),
            "broken signature": b"\r\n\r\n\x00\r\nQUIZ\n" + bytes([0x21, 0x11, 0, 12])
            + bytes(12) + connect,
        }
        for what, data in cases.items():
            with self.subTest(what):
                self.assert_refused(data, what=what, log_line=BAD_HEADER)
        self.assertNotIn("client it-proxy-garbage connected", self.broker.log())
        # The listener still serves well-formed headers afterwards.
        self.proxied(v1("192.0.2.77", 40077), "it-proxy-after-garbage")
        self.wait_log("client it-proxy-after-garbage connected from 192.0.2.77:40077 (")
        self.check_bystander()

    def test_plain_listener_is_unaffected_and_ignores_proxy_headers(self):
        c = self.raw(self.port)
        c.connect("it-proxy-plain")
        own = f"{HOST}:{c.sock.getsockname()[1]}"
        self.wait_log(f"client it-proxy-plain connected from {own} (")
        self.assert_works(c, "it/proxy/plain")
        # A PROXY header on the plain listener is not MQTT: the connection is closed, and the
        # address it claims is never taken.
        self.assert_refused(v1("192.0.2.66", 40066) + harness.encode_connect("it-proxy-spoof"),
                            port=self.port, what="PROXY header on the plain listener")
        log = self.broker.log()
        self.assertNotIn("192.0.2.66", log)
        self.assertNotIn("client it-proxy-spoof connected", log)
        self.check_bystander()


class ProxyStallTest(ProxyProtocolTestCase):
    limits = {"connect_timeout_ms": 1500}

    def test_header_that_stops_half_way_is_closed_by_the_connect_timeout(self):
        c = self.raw()
        c.send(b"PROXY TCP4 192.0.2.7 ")
        started = time.monotonic()
        # A valid beginning: the broker waits for the rest, up to connect_timeout_ms.
        self.assertTrue(c.is_open(0.3), "closed on a valid half header")
        self.assertEqual(c.expect_closed(WAIT), [])
        # connect_timeout_ms is 1500 here; a generous upper bound only.
        self.assertLess(time.monotonic() - started, WAIT)
        self.check_bystander()


class ProxyPerAddressLimitTest(ProxyProtocolTestCase):
    limits = {"max_connections_per_address": 2}

    def wait_admitted(self, header: bytes, client_id: str) -> harness.RawClient:
        """A closed connection's slot comes back once its worker has read the EOF: retry
        (bounded) while the answer is a refusal."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                return self.proxied(header, client_id)
            except (harness.ConnectionClosed, ConnectionResetError, BrokenPipeError,
                    AssertionError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def test_the_balancers_own_address_is_not_capped(self):
        # Four connections from 127.0.0.1 open at once on the PROXY listener, none with its header
        # yet (a balancer opening connections for four clients): the balancer's address counts
        # against nothing (the bystander holds one 127.0.0.1 slot of two meanwhile), each client's
        # address counts once its header is read.
        pending = [self.raw() for _ in range(4)]
        time.sleep(0.3)  # accepted, headers not sent
        for i, c in enumerate(pending):
            c.send(v1(f"192.0.2.{20 + i}", 42000 + i) + harness.encode_connect(f"it-proxy-lb-{i}"))
        for c in pending:
            p = c.recv()
            self.assertEqual((p.type, p.return_code), (CONNACK, 0), f"{p!r}")
        for i in range(4):
            self.wait_log(f"client it-proxy-lb-{i} connected from 192.0.2.{20 + i}:{42000 + i} (")
        self.check_bystander()

    def test_cap_counts_the_address_from_the_header(self):
        # Sequential; the bystander holds one of 127.0.0.1's two slots all along (plain listener).
        first = self.proxied(v1("192.0.2.9", 41001), "it-proxy-cap-1")
        second = self.proxied(v2("192.0.2.9", 41002), "it-proxy-cap-2")
        self.check_bystander()
        self.assert_refused(v1("192.0.2.9", 41003) + harness.encode_connect("it-proxy-cap-3"),
                            what="third connection claiming 192.0.2.9")
        self.wait_log("max_connections_per_address")
        self.assertNotIn("client it-proxy-cap-3 connected", self.broker.log())
        self.check_bystander()
        fourth = self.proxied(v1("192.0.2.10", 41004), "it-proxy-cap-4")
        self.wait_log("client it-proxy-cap-4 connected from 192.0.2.10:41004 (")
        # The two admitted ones still work, from their claimed address.
        self.wait_log("client it-proxy-cap-1 connected from 192.0.2.9:41001 (")
        self.wait_log("client it-proxy-cap-2 connected from 192.0.2.9:41002 (")
        self.assert_works(first, "it/proxy/cap1")
        self.assert_works(second, "it/proxy/cap2")
        self.assert_works(fourth, "it/proxy/cap4")
        # A slot given back is usable again: close one, a new 192.0.2.9 connection gets in.
        first.disconnect()
        self.wait_admitted(v1("192.0.2.9", 41005), "it-proxy-cap-5")
        self.wait_log("client it-proxy-cap-5 connected from 192.0.2.9:41005 (")
        self.check_bystander()


if __name__ == "__main__":
    harness.main()
