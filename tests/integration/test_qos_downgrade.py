#!/usr/bin/python3
"""Delivery at the lower of the publish QoS and the subscription QoS (3.1.1 §3.8.4,
[MQTT-3.8.4-6]).

Raw subscribers at QoS 0, 1 and 2 read the QoS of each PUBLISH they get from messages published at
QoS 0, 1 and 2; a QoS 0 delivery carries no packet identifier, a QoS 1/2 one a non-zero one.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class QosDowngradeTest(harness.BrokerTestCase):

    def test_delivered_at_lower_of_publish_and_subscription_qos(self):
        subscribers = {}
        for sub_qos in (0, 1, 2):
            c = self.raw_connected(f"it-down-sub{sub_qos}")
            self.assertEqual(c.subscribe([("it/down", sub_qos)]), [sub_qos])
            subscribers[sub_qos] = c
        publisher = self.raw_connected("it-down-pub")
        for pub_qos in (0, 1, 2):
            publisher.publish_and_complete("it/down", f"published-at-{pub_qos}", pub_qos)

        for sub_qos, c in subscribers.items():
            got = c.receive_messages(3)
            self.assertEqual([p.payload for p in got],
                             [b"published-at-0", b"published-at-1", b"published-at-2"])
            for pub_qos, p in zip((0, 1, 2), got):
                with self.subTest(publish_qos=pub_qos, subscription_qos=sub_qos):
                    self.assertEqual(p.qos, min(pub_qos, sub_qos))
                    self.assertFalse(p.dup)
                    self.assertFalse(p.retain)
                    if p.qos == 0:
                        self.assertIsNone(p.packet_id)
                    else:
                        self.assertNotEqual(p.packet_id, 0)
            c.expect_silence(0.3)

    def test_overlapping_subscriptions_on_two_clients(self):
        # One client's QoS never affects another's: same filter, different QoS.
        low = self.raw_connected("it-down-low")
        high = self.raw_connected("it-down-high")
        self.assertEqual(low.subscribe([("it/down/#", 0)]), [0])
        self.assertEqual(high.subscribe([("it/down/+", 2)]), [2])
        publisher = self.raw_connected("it-down-pub2")
        publisher.publish_and_complete("it/down/x", "x", 2)
        self.assertEqual(low.receive_messages(1)[0].qos, 0)
        self.assertEqual(high.receive_messages(1)[0].qos, 2)

    def test_resubscribe_changes_qos(self):
        # [MQTT-3.8.4-3]: a SUBSCRIBE with an existing filter replaces the subscription's QoS.
        c = self.raw_connected("it-down-resub")
        self.assertEqual(c.subscribe([("it/down/r", 2)]), [2])
        self.assertEqual(c.subscribe([("it/down/r", 1)]), [1])
        publisher = self.raw_connected("it-down-pub3")
        publisher.publish_and_complete("it/down/r", "r", 2)
        got = c.receive_messages(1)
        self.assertEqual(got[0].qos, 1)
        c.expect_silence(0.3)  # one subscription, one copy

    def test_overlapping_subscriptions_of_one_client_use_the_highest_qos(self):
        # [MQTT-3.3.5-1]: a message matching several subscriptions of one client is delivered
        # respecting the maximum QoS of them; further copies (one per subscription) are allowed.
        c = self.raw_connected("it-down-overlap")
        self.assertEqual(c.subscribe([("it/over/#", 0), ("it/over/+", 2)]), [0, 2])
        publisher = self.raw_connected("it-down-pub4")
        publisher.publish_and_complete("it/over/x", "x", 2)
        publisher.publish_and_complete("it/over/end", "end", 0)
        got = c.receive_until(lambda p: p.payload == b"end")
        copies = [p for p in got if p.payload == b"x"]
        self.assertIn(len(copies), (1, 2), got)
        self.assertEqual(max(p.qos for p in copies), 2, got)

    def test_unsubscribe_stops_delivery(self):
        c = self.raw_connected("it-down-unsub")
        self.assertEqual(c.subscribe([("it/unsub/#", 1), ("it/unsub/keep", 1)]), [1, 1])
        c.send(harness.encode_unsubscribe(9, ["it/unsub/#"]))
        c.expect(harness.UNSUBACK, 9)  # [MQTT-3.10.4-4]
        publisher = self.raw_connected("it-down-pub5")
        publisher.publish_and_complete("it/unsub/gone", "gone", 1)
        publisher.publish_and_complete("it/unsub/keep", "kept", 1)
        got = c.receive_until(lambda p: p.payload == b"kept")
        self.assertEqual([p.payload for p in got], [b"kept"])


if __name__ == "__main__":
    harness.main()
