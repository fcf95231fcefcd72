#!/usr/bin/python3
"""CONNECT rules (3.1.1 §3.1 and §3.2): protocol level, client id, a second CONNECT, the reserved
flag, a will QoS without a will, and the time a connection may take to send its CONNECT."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CONNACK, encode_connect  # noqa: E402


def connect_body(flags: int, client_id: bytes = b"\x00\x02id", keepalive: int = 60) -> bytes:
    """A 3.1.1 CONNECT with hand-set connect flags and a raw payload."""
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + keepalive.to_bytes(2, "big") + client_id
    return harness.frame(0x10, body)


class ConnectTest(harness.BrokerTestCase):

    def assert_refused(self, client: harness.RawClient, return_code: int) -> None:
        packets = client.expect_closed()
        self.assertEqual(len(packets), 1, f"expected one CONNACK, got {packets!r}")
        self.assertEqual(packets[0].type, CONNACK)
        self.assertEqual(packets[0].return_code, return_code)
        self.assertFalse(packets[0].session_present)  # [MQTT-3.2.2-4]

    def test_unsupported_protocol_level_gets_connack_1_then_close(self):
        # [MQTT-3.1.2-2]: CONNACK 0x01 (unacceptable protocol level), then disconnect.
        c = self.raw()
        c.send(encode_connect("it-level6", protocol_level=6))
        self.assert_refused(c, 0x01)

    def test_empty_client_id_without_clean_session_gets_connack_2(self):
        # [MQTT-3.1.3-8]: CONNACK 0x02 (identifier rejected), then close.
        c = self.raw()
        c.send(encode_connect("", clean_session=False))
        self.assert_refused(c, 0x02)

    def test_empty_client_id_with_clean_session_is_accepted(self):
        # [MQTT-3.1.3-6]: the server assigns an identifier.
        c = self.raw()
        ack = c.connect("", clean_session=True)
        self.assertFalse(ack.session_present)
        self.assertEqual(c.subscribe([("it/anon", 1)]), [1])
        self.pub("it/anon", "hi", qos=1)
        self.assertEqual(c.receive_messages(1)[0].payload, b"hi")

    def test_second_connect_closes_the_connection(self):
        # [MQTT-3.1.0-2]: a second CONNECT is a protocol violation: disconnect.
        c = self.raw_connected("it-twice")
        c.send(encode_connect("it-twice"))
        self.assertEqual(c.expect_closed(), [])

    def test_reserved_connect_flag_closes_the_connection(self):
        # [MQTT-3.1.2-3]: the reserved flag must be 0, else disconnect.
        c = self.raw()
        c.send(connect_body(0x03))
        packets = c.expect_closed()
        self.assertFalse(any(p.type == CONNACK and p.return_code == 0 for p in packets), packets)

    def test_will_qos_without_will_flag_closes_the_connection(self):
        # [MQTT-3.1.2-13]: with the will flag 0, will QoS must be 0.
        c = self.raw()
        c.send(connect_body(0x02 | 0x08))
        packets = c.expect_closed()
        self.assertFalse(any(p.type == CONNACK and p.return_code == 0 for p in packets), packets)

    def test_wrong_protocol_name_is_not_accepted(self):
        # [MQTT-3.1.2-1]: the server may disconnect, or answer per another specification; it
        # must not accept the connection as 3.1.1.
        c = self.raw()
        c.send(encode_connect("it-name", protocol_name="MQTX"))
        packets = c.expect_closed()
        self.assertFalse(any(p.type == CONNACK and p.return_code == 0 for p in packets), packets)

    def test_connack_accepts_and_session_present_0_for_a_new_session(self):
        c = self.raw()
        ack = c.connect("it-new-session", clean_session=False)
        self.assertEqual((ack.return_code, ack.session_present), (0, False))
        c.disconnect()
        c = self.raw()
        ack = c.connect("it-new-session", clean_session=False)
        self.assertEqual((ack.return_code, ack.session_present), (0, True))  # [MQTT-3.2.2-2]


class ConnectTimeoutTest(harness.BrokerTestCase):
    limits = {"connect_timeout_ms": 1000}

    def setUp(self):
        if harness.is_mosquitto():
            # Mosquitto has no separate CONNECT timeout setting (it uses its default keep-alive).
            self.skipTest("mosquitto has no connect timeout option")
        try:
            super().setUp()
        except harness.BrokerStartError as e:
            if "connect_timeout_ms" in e.log:
                self.skipTest("this tinymq has no limits.connect_timeout_ms setting yet")
            raise

    def test_no_connect_within_the_timeout_closes(self):
        c = self.raw()
        start = time.monotonic()
        self.assertEqual(c.expect_closed(timeout=5.0), [])
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertLessEqual(elapsed, 3.0)

    def test_partial_connect_within_the_timeout_closes(self):
        c = self.raw()
        c.send(encode_connect("it-partial")[:5])  # a CONNECT that never completes
        start = time.monotonic()
        self.assertEqual(c.expect_closed(timeout=5.0), [])
        self.assertLessEqual(time.monotonic() - start, 3.0)

    def test_connect_in_time_is_not_affected(self):
        c = self.raw()
        time.sleep(0.3)
        c.connect("it-in-time", keepalive=0)
        self.assertTrue(c.is_open(1.5))  # past the CONNECT timeout: it no longer applies


if __name__ == "__main__":
    harness.main()
