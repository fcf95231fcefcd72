#!/usr/bin/python3
"""Malformed packets and protocol violations close only the offending connection (3.1.1 §4.8):
a well-behaved mosquitto_sub on another connection keeps receiving what a publisher sends, and
nothing the offender sent is routed."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (PUBREL, encode_ack, encode_connect, encode_publish,  # noqa: E402
                     encode_subscribe, frame)


class MalformedPacketTest(harness.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.bystander = self.sub("it/#", qos=1)
        self.round = 0

    def check_bystander(self) -> None:
        """A message published now reaches the bystander, and it is the only thing it gets."""
        self.round += 1
        tag = f"alive-{self.round}"
        self.pub("it/alive", tag, qos=1)
        m = self.bystander.get()
        self.assertEqual((m.topic, m.payload), ("it/alive", tag.encode()),
                         "the bystander got something else first (was the bad packet routed?)")
        self.assertTrue(self.bystander.running())

    def assert_closes(self, data: bytes, connect: bool = True) -> None:
        c = self.raw()
        if connect:
            c.connect(f"it-bad-{self.id().rsplit('.', 1)[-1]}"[:60])
        c.send(data)
        packets = c.expect_closed()
        self.assertEqual(packets, [], "the broker answered a malformed packet")
        self.check_bystander()

    # PUBLISH.

    def test_publish_qos_3(self):
        # [MQTT-3.3.1-4]: a PUBLISH must not have both QoS bits set.
        self.assert_closes(encode_publish("it/bad", b"x", flags=0x06, packet_id=1))

    def test_publish_topic_not_utf8(self):
        # [MQTT-1.5.3-1]: ill-formed UTF-8 in a string: close.
        self.assert_closes(encode_publish(b"it/\xff\xfe", b"x", qos=0))

    def test_publish_topic_overlong_utf8(self):
        self.assert_closes(encode_publish(b"it/\xc0\xaf", b"x", qos=1, packet_id=1))

    def test_publish_topic_with_nul(self):
        # [MQTT-1.5.3-2]: U+0000 in a string: close.
        self.assert_closes(encode_publish(b"it/\x00x", b"x", qos=0))

    def test_publish_topic_with_wildcard(self):
        # [MQTT-3.3.2-2]: a topic name has no wildcards.
        self.assert_closes(encode_publish("it/+", b"x", qos=0))

    def test_publish_empty_topic(self):
        # [MQTT-4.7.3-1]: topic names are at least one character long.
        self.assert_closes(encode_publish("", b"x", qos=0))

    def test_publish_qos1_packet_id_0(self):
        # [MQTT-2.3.1-1]: QoS 1/2 packets carry a non-zero packet identifier.
        self.assert_closes(encode_publish("it/bad", b"x", qos=1, packet_id=0))

    def test_publish_shorter_than_its_topic(self):
        self.assert_closes(frame(0x30, b"\x00\x10it/bad"))

    # Reserved flag bits ([MQTT-2.2.2-1], [MQTT-2.2.2-2]).

    def test_subscribe_reserved_flags_0000(self):
        # [MQTT-3.8.1-1]: SUBSCRIBE flags are 0010.
        self.assert_closes(encode_subscribe(1, [("it/x", 0)], flags=0x00))

    def test_pubrel_reserved_flags_0000(self):
        # [MQTT-3.6.1-1]: PUBREL flags are 0010.
        self.assert_closes(encode_ack(PUBREL, 1, flags=0x00))

    def test_pingreq_reserved_flags(self):
        # Mosquitto 2.0.11 deviates from [MQTT-2.2.2-2] here: it answers PINGREQ 0xC1 with a
        # PINGRESP instead of closing the connection.
        self.skip_on_mosquitto("answers a PINGREQ with reserved flags set")
        self.assert_closes(bytes([0xC1, 0x00]))

    def test_disconnect_reserved_flags_is_an_error_not_a_disconnect(self):
        # [MQTT-3.14.1-1]: a DISCONNECT with non-zero flags is a protocol error, so the
        # connection is closed *without* a clean DISCONNECT: the will is published (§3.1.2.5).
        c = self.raw()
        c.connect("it-bad-disconnect", will=("it/will", b"bad-disconnect", 1, False))
        c.send(bytes([0xE2, 0x00]))
        self.assertEqual(c.expect_closed(), [])
        m = self.bystander.get()
        self.assertEqual((m.topic, m.payload), ("it/will", b"bad-disconnect"))
        self.check_bystander()

    # Other malformed packets.

    def test_subscribe_qos_3(self):
        # [MQTT-3.8.3-4]: requested QoS 3 is malformed.
        self.assert_closes(encode_subscribe(1, [("it/x", 3)]))

    def test_subscribe_without_filters(self):
        # [MQTT-3.8.3-3]: at least one topic filter.
        self.assert_closes(frame(0x82, b"\x00\x01"))

    def test_unsubscribe_without_filters(self):
        # [MQTT-3.10.3-2]: at least one topic filter.
        self.assert_closes(frame(0xA2, b"\x00\x01"))

    def test_remaining_length_of_five_bytes(self):
        # §2.2.3: at most four bytes of Remaining Length.
        self.assert_closes(bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]))

    def test_reserved_packet_types(self):
        for first in (0x00, 0xF0):  # types 0 and 15 are reserved in 3.1.1
            with self.subTest(first_byte=hex(first)):
                self.assert_closes(bytes([first, 0x00]))

    def test_connack_from_a_client(self):
        self.assert_closes(bytes([0x20, 0x02, 0x00, 0x00]))

    # Anything but CONNECT first ([MQTT-3.1.0-1]).

    def test_publish_before_connect(self):
        self.assert_closes(encode_publish("it/alive", b"must-not-be-routed", qos=0), connect=False)

    def test_subscribe_before_connect(self):
        self.assert_closes(encode_subscribe(1, [("it/#", 0)]), connect=False)

    def test_pingreq_before_connect(self):
        self.assert_closes(bytes([0xC0, 0x00]), connect=False)

    def test_connect_with_bad_utf8_client_id(self):
        c = self.raw()
        c.send(encode_connect(b"it-\xff"))
        packets = c.expect_closed()
        # 3.1.1 allows CONNACK 0x02 before closing, or a plain close; never an acceptance.
        self.assertFalse(any(p.type == harness.CONNACK and p.return_code == 0 for p in packets))
        self.check_bystander()

    def test_many_bad_connections_in_a_row(self):
        bad = [encode_publish("it/bad", b"x", flags=0x06, packet_id=1),
               encode_subscribe(1, [("it/x", 0)], flags=0x00),
               encode_publish(b"it/\xff", b"x")]
        for i in range(15):
            c = self.raw()
            c.connect(f"it-bad-many-{i}")
            c.send(bad[i % len(bad)])
            c.expect_closed()
        self.check_bystander()


if __name__ == "__main__":
    harness.main()
