#!/usr/bin/python3
"""MQTT 5.0 and 3.1.1 clients on one broker: messages cross in both directions at QoS 0, 1 and 2
(at the lower of published and granted QoS); a 3.1.1 receiver gets a 5.0 message without its
properties, in 3.1.1 form; a 5.0 receiver of a 3.1.1 message sees no properties; a retained
message published by a 5.0 client keeps its properties for a later 5.0 subscriber even after a
3.1.1 client got it; wills cross versions too."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402

PROPS = {"UserProperty": [("b", "2"), ("a", "1")], "ContentType": "text/plain",
         "PayloadFormatIndicator": 1, "ResponseTopic": "it/mix/reply",
         "CorrelationData": b"\x07", "MessageExpiryInterval": 300}


class MixedVersionsTest(mqtt5.V5TestCase):

    def test_5_publisher_to_311_subscribers_at_every_qos(self):
        raw = self.raw_connected("it-mix-raw311")
        self.assertEqual(raw.subscribe([("it/mix/to311", 2)]), [2])
        paho311 = self.paho311("it-mix-paho311")
        paho311.subscribe("it/mix/to311", qos=2)
        pub = self.paho5("it-mix-pub5")
        for qos in (0, 1, 2):
            pub.publish("it/mix/to311", b"q%d" % qos, qos=qos, properties=PROPS)
        # harness.RawClient decodes as 3.1.1: any property bytes would show in the payload.
        got = raw.receive_messages(3)
        self.assertEqual([(m.topic, m.payload, m.qos) for m in got],
                         [("it/mix/to311", b"q%d" % q, q) for q in (0, 1, 2)])
        got = paho311.collect(3)
        self.assertEqual([(m.payload, m.qos, m.properties) for m in got],
                         [(b"q%d" % q, q, {}) for q in (0, 1, 2)])

    def test_311_publisher_to_5_subscribers_at_every_qos(self):
        raw5 = self.connected5("it-mix-raw5")
        raw5.subscribe([("it/mix/to5", 2)])
        paho5 = self.paho5("it-mix-paho5")
        paho5.subscribe("it/mix/to5", qos=2)
        pub = self.raw_connected("it-mix-pub311")
        for qos in (0, 1, 2):
            pub.publish_and_complete("it/mix/to5", b"q%d" % qos, qos=qos)
        got = raw5.receive_messages(3)
        self.assertEqual([(m.payload, m.qos, m.properties) for m in got],
                         [(b"q%d" % q, q, {}) for q in (0, 1, 2)])
        got = paho5.collect(3)
        self.assertEqual([(m.payload, m.qos) for m in got], [(b"q%d" % q, q) for q in (0, 1, 2)])
        self.assertFalse(any(m.properties for m in got))

    def test_delivered_at_the_lower_of_published_and_granted_qos(self):
        # 5.0 [MQTT-3.8.4-8], 3.1.1 [MQTT-3.8.4-6]
        old = self.raw_connected("it-mix-q1")
        self.assertEqual(old.subscribe([("it/mix/q", 1)]), [1])
        new = self.connected5("it-mix-q0")
        new.subscribe([("it/mix/q", 0)])
        self.connected5("it-mix-qpub").publish_and_complete("it/mix/q", b"x", qos=2)
        self.assertEqual(old.receive_messages(1)[0].qos, 1)
        self.assertEqual(new.next_publish().qos, 0)

    def test_retained_5_message_keeps_its_properties_after_a_311_subscriber_got_it(self):
        pub = self.connected5("it-mix-rpub")
        pub.publish_and_complete("it/mix/ret", b"state", qos=1, retain=True, properties=PROPS)
        old = self.raw_connected("it-mix-r311")
        old.subscribe([("it/mix/ret", 1)])
        got = old.receive_messages(1)[0]
        self.assertEqual((got.payload, got.retain), (b"state", True))
        late = self.connected5("it-mix-r5")
        late.subscribe([("it/mix/ret", 1)])
        got = late.receive_messages(1)[0]
        self.assertEqual((got.payload, got.retain), (b"state", True))
        p = dict(got.properties)
        remaining = p.pop("MessageExpiryInterval", None)
        self.assertTrue(remaining is not None and 298 <= remaining <= 300, f"{got!r}")
        self.assertEqual(p, {k: v for k, v in PROPS.items() if k != "MessageExpiryInterval"})

    def test_retained_311_message_has_no_properties_for_a_5_subscriber(self):
        self.raw_connected("it-mix-r311pub").publish_and_complete("it/mix/ret3", b"old", qos=1,
                                                                  retain=True)
        late = self.connected5("it-mix-r5b")
        late.subscribe([("it/mix/ret3", 1)])
        got = late.receive_messages(1)[0]
        self.assertEqual((got.payload, got.retain, got.properties), (b"old", True, {}))

    def test_5_will_reaches_a_311_subscriber_and_311_will_a_5_subscriber(self):
        old = self.raw_connected("it-mix-w311")
        old.subscribe([("it/mix/will5", 1)])
        new = self.connected5("it-mix-w5")
        new.subscribe([("it/mix/will311", 1)])
        dying5 = self.connected5("it-mix-dying5", will={
            "topic": "it/mix/will5", "payload": b"five", "qos": 1,
            "properties": {"UserProperty": [("x", "y")]}})
        dying311 = self.raw_connected("it-mix-dying311",
                                      will=("it/mix/will311", b"three", 1, False))
        dying5.close()
        dying311.close()
        got = old.receive_messages(1)[0]
        self.assertEqual((got.topic, got.payload), ("it/mix/will5", b"five"))
        got = new.receive_messages(1)[0]
        self.assertEqual((got.topic, got.payload, got.properties),
                         ("it/mix/will311", b"three", {}))

    def test_mosquitto_clients_across_versions(self):
        sub311 = self.sub("it/mix/cli", qos=1)
        sub5 = self.sub("it/mix/cli", qos=1, version="mqttv5")
        self.pub("it/mix/cli", "from5", qos=1, version="mqttv5",
                 extra=["-D", "publish", "user-property", "k", "v"])
        self.pub("it/mix/cli", "from311", qos=1)
        for s in (sub311, sub5):
            self.assertEqual([(m.payload, m.qos) for m in s.collect(2)],
                             [(b"from5", 1), (b"from311", 1)])


if __name__ == "__main__":
    harness.main()
