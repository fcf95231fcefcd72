#!/usr/bin/python3
"""MQTT 5.0 flow control and packet size limits (5.0 §4.9, §3.1.2.11.4, §3.2.2.3.3,
§3.2.2.3.6): the broker never has more QoS 1/2 PUBLISHes unacknowledged towards a client than the
client's Receive Maximum; a client that leaves more QoS 2 PUBLISHes unfinished than the broker's
Receive Maximum gets DISCONNECT 0x93; a message bigger than a subscriber's Maximum Packet Size
is not sent to it (and only to it); a packet bigger than the broker's gets DISCONNECT 0x95."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402
from harness import PINGRESP, PUBREL, SUBACK, broker_config  # noqa: E402


class ReceiveMaximumTowardsClientTest(mqtt5.V5TestCase):

    def _slow_subscriber(self, client_id, receive_maximum, qos):
        sub = self.connected5(client_id, properties={"ReceiveMaximum": receive_maximum})
        self.assertEqual(sub.subscribe([("it/flow", qos)]).reason_codes, [qos])
        return sub

    def _publish(self, count, qos):
        pub = self.connected5("it-flow-pub")
        for i in range(count):
            pub.publish_and_complete("it/flow", b"%d" % i, qos=qos)

    def _first_window(self, client_id, receive_maximum, qos, count):
        """`count` messages at `qos` to a subscriber that acknowledges none: it gets the first
        `receive_maximum`, then nothing. Returns the subscriber and those messages."""
        sub = self._slow_subscriber(client_id, receive_maximum, qos)
        self._publish(count, qos)
        first = sub.receive_messages(receive_maximum, ack=False)
        self.assertEqual([m.payload for m in first], [b"%d" % i for i in range(receive_maximum)])
        sub.expect_silence(0.5)
        return sub, first

    def test_first_window_is_the_client_receive_maximum(self):
        # 5.0 [MQTT-3.3.4-9], [MQTT-4.9.0-1], [MQTT-4.9.0-2]
        self._first_window("it-flow-first", 3, 1, 10)

    @harness.not_on_mosquitto("2.0.11 sends up to Receive Maximum more PUBLISHes after each PUBACK "
                              "(5.0 [MQTT-3.3.4-9])")
    def test_each_puback_lets_exactly_one_more_out(self):
        # 5.0 [MQTT-3.3.4-9], [MQTT-4.9.0-2]
        sub, first = self._first_window("it-flow-q1", 3, 1, 10)
        sub.puback(first[0].packet_id)
        one_more = sub.receive_messages(1, ack=False)
        self.assertEqual(one_more[0].payload, b"3")
        sub.expect_silence(0.5)
        for m in first[1:] + one_more:
            sub.puback(m.packet_id)
        rest = sub.receive_messages(6)
        self.assertEqual([m.payload for m in rest], [b"%d" % i for i in range(4, 10)])

    @harness.not_on_mosquitto("2.0.11 sends the next PUBLISH on PUBREC, before PUBCOMP "
                              "(5.0 [MQTT-3.3.4-9])")
    def test_qos2_quota_returns_on_pubcomp_not_on_pubrec(self):
        # 5.0 [MQTT-3.3.4-9]; §4.9: the send quota is incremented when PUBCOMP arrives (or a
        # PUBREC >= 0x80), not on a successful PUBREC.
        sub, first = self._first_window("it-flow-q2", 2, 2, 5)
        sub.pubrec(first[0].packet_id)
        rel = sub.expect(PUBREL, first[0].packet_id)
        self.assertEqual(rel.reason_code, mqtt5.SUCCESS)
        sub.expect_silence(0.5)  # PUBREC alone frees nothing
        sub.pubcomp(first[0].packet_id)
        third = sub.receive_messages(1, ack=False)
        self.assertEqual(third[0].payload, b"2")
        sub.expect_silence(0.5)

    def test_other_packets_still_flow_at_quota_zero(self):
        # 5.0 [MQTT-4.9.0-3], [MQTT-3.3.4-10]
        sub = self._slow_subscriber("it-flow-other", 1, 1)
        self._publish(3, 1)
        sub.receive_messages(1, ack=False)
        sub.pingreq()
        sub.expect(PINGRESP)
        sub.send(mqtt5.encode_subscribe5(77, [("it/other", 1)]))
        self.assertEqual(sub.expect(SUBACK, 77).reason_codes, [1])
        sub.expect_silence(0.3)


class ReceiveMaximumFromClientTest(mqtt5.V5TestCase):
    # mosquitto advertises and enforces max_inflight_messages as its Receive Maximum.
    mqtt_config = {"receive_maximum": 3}

    @harness.not_on_mosquitto("2.0.11 answers PUBREC 0x97 instead of DISCONNECT 0x93 "
                              "(5.0 §3.3.4; eclipse-mosquitto/mosquitto#3611)")
    def test_more_unfinished_qos2_publishes_than_receive_maximum_get_0x93(self):
        # 5.0 §3.3.4: more than Receive Maximum QoS 2 PUBLISHes without PUBCOMP -> DISCONNECT 0x93.
        c = self.connected5("it-rm-over")
        self.assertEqual(c.connack.properties.get("ReceiveMaximum"), 3)
        for _ in range(3):
            pid = c.publish("it/rm", b"x", qos=2)
            self.assertLess(c.expect(harness.PUBREC, pid).reason_code, 0x80)
        c.publish("it/rm", b"x", qos=2)
        c.expect_disconnect(mqtt5.RECEIVE_MAXIMUM_EXCEEDED)

    @harness.not_on_mosquitto("2.0.11 answers PUBREC 0x97 instead of DISCONNECT 0x93 "
                              "(5.0 §3.3.4; eclipse-mosquitto/mosquitto#3611)")
    def test_disconnect_reaches_a_client_that_keeps_sending(self):
        """5.0 [MQTT-4.13.1-1], 5.0 [MQTT-3.14.4-1]: the DISCONNECT 0x93 reaches the client even
        when more of its packets are on the way: the broker stops sending, reads and drops the
        rest, and only then closes, so the connection is not reset under the DISCONNECT."""
        c = self.connected5("it-rm-burst")
        burst = b"".join(mqtt5.encode_publish5("it/rm", b"x" * 100, qos=2, packet_id=i)
                         for i in range(1, 201))
        c.send(burst)
        time.sleep(0.5)  # the broker has answered and ended the connection by now
        # Like a client that answers the PUBRECs before it reads the DISCONNECT behind them: the
        # socket must still take what it writes (a reset connection would raise here).
        c.send(b"".join(mqtt5.encode_ack5(harness.PUBREL, i) for i in range(1, 4)))
        for i in range(1, 4):
            c.expect(harness.PUBREC, i)
        c.expect_disconnect(mqtt5.RECEIVE_MAXIMUM_EXCEEDED)

    def test_finishing_a_qos2_flow_frees_its_place(self):
        c = self.connected5("it-rm-ok")
        pids = [c.publish("it/rm", b"x", qos=2) for _ in range(3)]
        for pid in pids:
            c.expect(harness.PUBREC, pid)
        c.pubrel(pids[0])
        c.expect(harness.PUBCOMP, pids[0])
        pid = c.publish("it/rm", b"y", qos=2)
        c.expect(harness.PUBREC, pid)
        self.assertTrue(c.is_open(0.3))


class MaximumPacketSizeTest(mqtt5.V5TestCase):

    def test_message_too_big_for_a_subscriber_is_not_sent_to_it(self):
        # 5.0 [MQTT-3.1.2-24], [MQTT-3.1.2-25]: dropped for that client, as if delivered.
        small = self.connected5("it-mps-small", properties={"MaximumPacketSize": 100})
        small.subscribe([("it/mps", 1)])
        big = self.connected5("it-mps-big")
        big.subscribe([("it/mps", 1)])
        pub = self.connected5("it-mps-pub")
        pub.publish_and_complete("it/mps", b"B" * 200, qos=1)
        pub.publish_and_complete("it/mps", b"small", qos=1)
        self.assertEqual([m.payload for m in big.receive_messages(2)], [b"B" * 200, b"small"])
        got = small.receive_messages(1)
        self.assertEqual(got[0].payload, b"small")
        small.expect_silence(0.3)

    def test_qos0_message_too_big_is_dropped_and_the_connection_stays(self):
        small = self.connected5("it-mps-q0", properties={"MaximumPacketSize": 64})
        small.subscribe([("it/mps0", 0)])
        pub = self.connected5("it-mps-pub0")
        pub.publish("it/mps0", b"x" * 100)
        pub.publish("it/mps0", b"fits")
        self.assertEqual(small.next_publish().payload, b"fits")
        self.assertTrue(small.is_open(0.2))

    @broker_config(limits={"max_packet_size": 1000})
    def test_packet_bigger_than_max_packet_size_gets_0x95(self):
        # 5.0 §3.2.2.3.6: the broker disconnects with 0x95 (Packet too large).
        c = self.connected5("it-mps-over")
        self.assertEqual(c.connack.properties.get("MaximumPacketSize"), 1000)
        c.publish_and_complete("it/mps", b"a" * 900, qos=1)  # just under: accepted
        c.publish("it/mps", b"a" * 2000, qos=1)
        c.expect_disconnect(mqtt5.PACKET_TOO_LARGE)


if __name__ == "__main__":
    harness.main()
