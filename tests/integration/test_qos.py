#!/usr/bin/python3
"""QoS 0, 1 and 2 end to end: mosquitto_pub -> broker -> mosquitto_sub.

Payloads arrive intact and in order, at the QoS of the flow; at QoS 2 each message arrives exactly
once (3.1.1 §4.3.3), also under a burst of publishes.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import PUBCOMP, PUBREC, encode_ack, encode_publish  # noqa: E402


class QosEndToEndTest(harness.BrokerTestCase):

    def check_flow(self, qos: int, count: int) -> None:
        sub = self.sub("it/qos", qos=qos)
        payloads = [f"qos{qos}-message-{i:04d}" for i in range(count)]
        self.pub("it/qos", qos=qos, lines=payloads)
        got = sub.collect(count)
        self.assertEqual([m.payload.decode() for m in got], payloads)
        self.assertEqual({m.qos for m in got}, {qos})
        self.assertEqual({m.retain for m in got}, {False})
        sub.expect_nothing(0.5)  # nothing twice, nothing extra

    def test_qos0(self):
        self.check_flow(0, 20)

    def test_qos1(self):
        self.check_flow(1, 50)

    def test_qos2_exactly_once(self):
        self.check_flow(2, 200)

    def test_binary_empty_and_large_payloads(self):
        sub = self.sub("it/bin/#", qos=1)
        binary = bytes(range(256)) * 4
        large = os.urandom(256 * 1024)
        self.pub("it/bin/a", binary, qos=1)
        self.pub("it/bin/b", qos=2, null_message=True)
        self.pub("it/bin/c", large, qos=2)
        got = sub.collect(3, timeout=10)
        self.assertEqual([(m.topic, m.payload) for m in got],
                         [("it/bin/a", binary), ("it/bin/b", b""), ("it/bin/c", large)])
        self.assertEqual([m.qos for m in got], [1, 1, 1])  # lower of publish and subscription

    def test_qos2_two_subscribers_each_get_every_message_once(self):
        subs = [self.sub("it/fan", qos=2) for _ in range(2)]
        payloads = [f"fan-{i}" for i in range(100)]
        self.pub("it/fan", qos=2, lines=payloads)
        for sub in subs:
            got = sub.collect(len(payloads))
            self.assertEqual([m.payload.decode() for m in got], payloads)
        for sub in subs:
            sub.expect_nothing(0.3)

    @harness.broker_config(limits={"max_packet_size": 8 << 20})  # above the 1 MiB default
    def test_payloads_larger_than_the_output_buffer(self):
        # Several 2 MiB messages in a row (more than tinymq's 1 MiB output high-water mark).
        sub = self.sub("it/big", qos=1)
        payloads = [bytes([i]) * (2 << 20) for i in range(4)]
        publisher = self.raw_connected("it-big-pub")
        for payload in payloads:
            publisher.publish_and_complete("it/big", payload, 1)
        got = sub.collect(len(payloads), timeout=20)
        self.assertTrue([m.payload for m in got] == payloads,
                        f"lengths {[len(m.payload) for m in got]}, first bytes "
                        f"{[m.payload[:1] for m in got]}")

    def test_fan_out_to_200_subscribers(self):
        subscribers = []
        for i in range(200):
            c = self.raw_connected(f"it-fan-{i}")
            c.send(harness.encode_subscribe(1, [("it/fan/all", 1)]))
            subscribers.append(c)
        for c in subscribers:
            c.expect(harness.SUBACK, 1)
        self.pub("it/fan/all", "to-everyone", qos=1)
        for c in subscribers:
            p = c.receive_messages(1)[0]
            self.assertEqual((p.topic, p.payload, p.qos), ("it/fan/all", b"to-everyone", 1))

    def test_qos2_publish_resent_by_the_publisher_is_delivered_once(self):
        # The publisher did not see the PUBREC and sends the PUBLISH again with DUP = 1 and the
        # same packet id: the broker answers PUBREC again but must not route it a second time
        # (§4.3.3, the receiver's side of exactly once).
        sub = self.sub("it/dup", qos=2)
        publisher = self.raw_connected("it-dup-pub")
        publisher.send(encode_publish("it/dup", b"only-once", 2, packet_id=7))
        publisher.expect(PUBREC, 7)
        publisher.send(encode_publish("it/dup", b"only-once", 2, packet_id=7, dup=True))
        publisher.expect(PUBREC, 7)
        publisher.send(encode_ack(harness.PUBREL, 7))
        publisher.expect(PUBCOMP, 7)
        self.assertEqual(sub.get().payload, b"only-once")
        sub.expect_nothing(0.5)
        # The packet id is free again: a new message with it is a new message.
        publisher.publish_and_complete("it/dup", b"second", 2)
        self.assertEqual(sub.get().payload, b"second")

    def test_qos2_flow_completed_after_publisher_reconnects(self):
        # The publisher (clean session 0) got the PUBREC, lost the connection, reconnects and
        # sends the PUBREL: the broker completes with PUBCOMP; the message arrives once.
        sub = self.sub("it/rel", qos=2)
        publisher = self.raw_connected("it-rel-pub", clean_session=False)
        publisher.send(encode_publish("it/rel", b"across", 2, packet_id=11))
        publisher.expect(PUBREC, 11)
        publisher.close()
        publisher = self.raw()
        self.assertTrue(publisher.connect("it-rel-pub", clean_session=False).session_present)
        publisher.send(encode_ack(harness.PUBREL, 11))
        publisher.expect(PUBCOMP, 11)
        self.assertEqual(sub.get().payload, b"across")
        sub.expect_nothing(0.5)


if __name__ == "__main__":
    harness.main()
