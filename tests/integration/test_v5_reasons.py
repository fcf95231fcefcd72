#!/usr/bin/python3
"""MQTT 5.0 reason codes the broker sends (5.0 §2.4): PUBACK / PUBREC 0x10 when nobody is
subscribed, UNSUBACK 0x11 for a filter that was not subscribed, DISCONNECT 0x8E to a connection
taken over, 0x8D on keep-alive timeout, 0x81 for a malformed packet, 0x82 for a Session Expiry
raised from 0 in DISCONNECT; and a 3.1.1 client on the same broker still gets 3.1.1 packets,
with no reason codes and no DISCONNECT."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402
from harness import PUBACK, PUBCOMP, PUBREC, broker_config  # noqa: E402


class ReasonCodeTest(mqtt5.V5TestCase):

    def test_puback_0x10_without_subscribers_and_0x00_with(self):
        # 5.0 §3.4.2.1: 0x10 No matching subscribers.
        pub = self.connected5("it-rc-pub")
        self.assertEqual(pub.publish_and_complete("it/rc/none", b"x", qos=1).reason_code,
                         mqtt5.NO_MATCHING_SUBSCRIBERS)
        sub = self.connected5("it-rc-sub")
        sub.subscribe([("it/rc/some", 0)])
        self.assertEqual(pub.publish_and_complete("it/rc/some", b"x", qos=1).reason_code,
                         mqtt5.SUCCESS)

    @harness.not_on_mosquitto("2.0.11 answers a QoS 2 PUBLISH nobody subscribed to with PUBREC "
                              "0x00 (0x10 is optional: 5.0 §3.5.2.1)")
    def test_pubrec_0x10_without_subscribers(self):
        # 5.0 §3.5.2.1; [MQTT-4.3.3-4]: a PUBREC below 0x80 is followed by PUBREL / PUBCOMP.
        pub = self.connected5("it-rc-pub2")
        rec = pub.publish_and_complete("it/rc/none", b"x", qos=2)
        self.assertEqual(rec.reason_code, mqtt5.NO_MATCHING_SUBSCRIBERS)
        self.assertTrue(pub.is_open())

    def test_pubrec_0x00_with_subscribers(self):
        pub = self.connected5("it-rc-pub2")
        sub = self.connected5("it-rc-sub2")
        sub.subscribe([("it/rc/some", 2)])
        self.assertEqual(pub.publish_and_complete("it/rc/some", b"x", qos=2).reason_code,
                         mqtt5.SUCCESS)
        self.assertEqual(sub.receive_messages(1)[0].payload, b"x")

    def test_unsuback_0x11_for_a_filter_not_subscribed(self):
        # 5.0 [MQTT-3.11.3-1]: one code per filter, in order.
        c = self.connected5("it-rc-unsub")
        c.subscribe([("it/rc/a", 0), ("it/rc/#", 1)])
        unsuback = c.unsubscribe(["it/rc/none", "it/rc/a", "it/rc/#", "it/rc/a"])
        self.assertEqual(unsuback.reason_codes, [mqtt5.NO_SUBSCRIPTION_EXISTED, mqtt5.SUCCESS,
                                                 mqtt5.SUCCESS, mqtt5.NO_SUBSCRIPTION_EXISTED])

    @harness.not_on_mosquitto("2.0.11 closes the old connection without DISCONNECT 0x8E "
                              "(5.0 [MQTT-3.1.4-3])")
    def test_taken_over_connection_gets_disconnect_0x8e(self):
        # 5.0 [MQTT-3.1.4-3], [MQTT-3.14.2-2] (no Session Expiry from the server)
        old = self.connected5("it-rc-twice")
        new = self.connected5("it-rc-twice")
        p = old.expect_disconnect(mqtt5.SESSION_TAKEN_OVER)
        self.assertNotIn("SessionExpiryInterval", p.properties)
        self.assertTrue(new.is_open())

    @harness.not_on_mosquitto("2.0.11 closes without DISCONNECT 0x8D (5.0 §4.13.1: send "
                              "DISCONNECT with the reason before closing)")
    def test_keep_alive_timeout_gets_disconnect_0x8d(self):
        # 5.0 [MQTT-3.1.2-22]; §4.13.1: DISCONNECT with the reason before closing.
        c = self.connected5("it-rc-ka", keepalive=1)
        start = time.monotonic()
        c.expect_disconnect(mqtt5.KEEP_ALIVE_TIMEOUT, timeout=4)
        self.assertGreater(time.monotonic() - start, 1.0)

    def test_malformed_packet_gets_disconnect_0x81(self):
        # 5.0 [MQTT-4.13.1-1]: a PUBLISH whose Property Length runs past the packet.
        c = self.connected5("it-rc-malformed")
        body = harness.encode_string("it/rc/m") + b"\x00\x01" + b"\x20\x01\x00"
        c.send(harness.frame((harness.PUBLISH << 4) | 0x02, body))
        c.expect_disconnect(mqtt5.MALFORMED_PACKET)

    def test_publish_with_qos_3_gets_disconnect_0x81(self):
        # 5.0 [MQTT-3.3.1-4]
        c = self.connected5("it-rc-qos3")
        body = harness.encode_string("it/rc/q") + b"\x00\x01" + b"\x00"
        c.send(harness.frame((harness.PUBLISH << 4) | 0x06, body))
        c.expect_disconnect(mqtt5.MALFORMED_PACKET)

    def test_session_expiry_raised_from_0_in_disconnect_is_a_protocol_error(self):
        # 5.0 §3.14.2.2.2: Session Expiry 0 in CONNECT, non-zero in DISCONNECT: Protocol Error,
        # so the broker answers DISCONNECT 0x82 and the will is published (not a normal end).
        watcher = self.connected5("it-rc-watch")
        watcher.subscribe([("it/rc/will", 0)])
        c = self.connected5("it-rc-se", will={"topic": "it/rc/will", "payload": b"w"})
        c.send(mqtt5.encode_disconnect5(0, {"SessionExpiryInterval": 60}))
        c.expect_disconnect(mqtt5.PROTOCOL_ERROR)
        self.assertEqual(watcher.next_publish().payload, b"w")

    def test_session_expiry_changed_in_disconnect_when_it_was_not_0(self):
        # 5.0 §3.14.2.2.2: allowed when the CONNECT value was not 0; the new value applies.
        c = self.connected5("it-rc-se2", properties={"SessionExpiryInterval": 60})
        c.subscribe([("it/rc/se2", 1)])
        c.send(mqtt5.encode_disconnect5(0, {"SessionExpiryInterval": 0}))
        self.assertEqual(c.expect_closed(), [])
        again = self.client5()
        self.assertFalse(again.connect("it-rc-se2", clean_start=False,
                                       properties={"SessionExpiryInterval": 60}).session_present)


class V311OnTheSameBrokerTest(mqtt5.V5TestCase):
    """harness.RawClient decodes strictly as 3.1.1: a CONNACK, PUBACK or UNSUBACK longer than
    2 bytes fails the test."""

    def test_311_client_gets_311_packets(self):
        v5 = self.connected5("it-311-v5")
        v5.subscribe([("it/311/to5", 1)])
        old = self.raw_connected("it-311")
        self.assertEqual(old.subscribe([("it/311/sub/#", 2)]), [2])
        pid = old.publish("it/311/nobody", b"x", qos=1)  # no subscriber: still a plain PUBACK
        old.expect(PUBACK, pid)
        pid = old.publish("it/311/nobody", b"x", qos=2)
        old.expect(PUBREC, pid)
        old.pubrel(pid)
        old.expect(PUBCOMP, pid)
        old.send(harness.encode_unsubscribe(9, ["it/311/never"]))
        old.expect(harness.UNSUBACK, 9)
        # A 5.0 message reaches it in 3.1.1 form: no properties before the payload.
        self.assertEqual(v5.publish_and_complete("it/311/sub/x", b"y", qos=1,
                                                 properties={"UserProperty": [("k", "v")]}
                                                 ).reason_code, mqtt5.SUCCESS)
        got = old.receive_messages(1)[0]
        self.assertEqual((got.topic, got.payload, got.qos), ("it/311/sub/x", b"y", 1))
        old.publish_and_complete("it/311/to5", b"z", qos=1)
        self.assertEqual(v5.receive_messages(1)[0].payload, b"z")

    def test_taken_over_311_connection_is_closed_without_disconnect(self):
        old = self.raw_connected("it-311-twice")
        self.connected5("it-311-twice")
        self.assertEqual(old.expect_closed(), [])

    def test_311_keep_alive_timeout_closes_without_disconnect(self):
        old = self.raw_connected("it-311-ka", keepalive=1)
        self.assertEqual(old.expect_closed(timeout=8 if harness.is_mosquitto() else 4), [])

    @broker_config(mqtt={"maximum_qos": 1})
    def test_311_publish_above_maximum_qos_is_closed_without_disconnect(self):
        old = self.raw_connected("it-311-qos")
        self.assertEqual(old.subscribe([("it/311/q", 2)]), [1])
        old.publish("it/311/q", b"x", qos=2)
        self.assertEqual(old.expect_closed(), [])

    @broker_config(mqtt={"retain_available": False})
    def test_311_retained_publish_is_closed_without_disconnect(self):
        old = self.raw_connected("it-311-ret")
        old.publish("it/311/r", b"x", qos=0, retain=True)
        self.assertEqual(old.expect_closed(), [])


if __name__ == "__main__":
    harness.main()
