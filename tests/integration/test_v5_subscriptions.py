#!/usr/bin/python3
"""MQTT 5.0 subscription options and identifiers (5.0 §3.8.3.1, §3.8.2.1.2, §3.3.4): No Local,
Retain As Published, Retain Handling 0/1/2, Subscription Identifiers on forwarded and retained
messages (several on one copy when several subscriptions match), and the protocol errors: No
Local on a shared subscription, identifier 0."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402


class NoLocalTest(mqtt5.V5TestCase):

    def test_no_local_keeps_a_clients_own_messages_from_it(self):
        # 5.0 [MQTT-3.8.3-3]
        me = self.connected5("it-nl-me")
        me.subscribe([("it/nl", {"qos": 1, "no_local": True})])
        other = self.connected5("it-nl-other")
        other.subscribe([("it/nl", 1)])
        me.publish("it/nl", b"mine", qos=1)
        self.assertEqual(me.expect(harness.PUBACK).reason_code, mqtt5.SUCCESS)
        self.connected5("it-nl-pub").publish_and_complete("it/nl", b"theirs", qos=1)
        self.assertEqual([m.payload for m in other.receive_messages(2)], [b"mine", b"theirs"])
        self.assertEqual([m.payload for m in me.receive_messages(1)], [b"theirs"])
        me.expect_silence(0.3)

    def test_without_no_local_a_client_gets_its_own_messages(self):
        me = self.connected5("it-nl-off")
        me.subscribe([("it/nl", {"qos": 1, "no_local": False})])
        me.publish("it/nl", b"echo", qos=1)
        got = me.receive_until(lambda p: True)  # the PUBACK may come before or after
        self.assertEqual(got[0].payload, b"echo")

    @harness.not_on_mosquitto("2.0.11 grants it (5.0 [MQTT-3.8.3-4])")
    def test_no_local_on_a_shared_subscription_is_a_protocol_error(self):
        # 5.0 [MQTT-3.8.3-4]
        c = self.connected5("it-nl-shared")
        c.send(mqtt5.encode_subscribe5(1, [("$share/g/it/nl", {"qos": 1, "no_local": True})]))
        c.expect_disconnect(mqtt5.PROTOCOL_ERROR)


class RetainOptionsTest(mqtt5.V5TestCase):

    def _retained(self, topic="it/ro", payload=b"kept"):
        self.connected5("it-ro-pub").publish_and_complete(topic, payload, qos=1, retain=True)

    def test_retain_as_published(self):
        # 5.0 [MQTT-3.3.1-12], [MQTT-3.3.1-13]
        rap = self.connected5("it-rap-1")
        rap.subscribe([("it/rap", {"qos": 1, "retain_as_published": True})])
        plain = self.connected5("it-rap-0")
        plain.subscribe([("it/rap", {"qos": 1, "retain_as_published": False})])
        pub = self.connected5("it-rap-pub")
        pub.publish_and_complete("it/rap", b"r", qos=1, retain=True)
        pub.publish_and_complete("it/rap", b"n", qos=1, retain=False)
        self.assertEqual([(m.payload, m.retain) for m in rap.receive_messages(2)],
                         [(b"r", True), (b"n", False)])
        self.assertEqual([(m.payload, m.retain) for m in plain.receive_messages(2)],
                         [(b"r", False), (b"n", False)])

    def test_retained_message_sent_at_subscribe_has_retain_set_either_way(self):
        # 5.0 §3.3.1.3: messages sent because of a new subscription carry RETAIN 1.
        self._retained()
        for rap in (False, True):
            c = self.connected5(f"it-rap-sub-{int(rap)}")
            c.subscribe([("it/ro", {"qos": 1, "retain_as_published": rap})])
            got = c.receive_messages(1)[0]
            self.assertEqual((got.payload, got.retain), (b"kept", True))

    def test_retain_handling_0_sends_retained_on_every_subscribe(self):
        # 5.0 [MQTT-3.3.1-9], [MQTT-3.8.4-4]
        self._retained()
        c = self.connected5("it-rh0")
        for _ in range(2):
            c.subscribe([("it/ro", {"qos": 1, "retain_handling": 0})])
            got = c.receive_messages(1)[0]
            self.assertEqual((got.payload, got.retain), (b"kept", True))

    def test_retain_handling_1_sends_retained_only_for_a_new_subscription(self):
        # 5.0 [MQTT-3.3.1-10]
        self._retained()
        c = self.connected5("it-rh1")
        c.subscribe([("it/ro", {"qos": 1, "retain_handling": 1})])
        self.assertEqual(c.receive_messages(1)[0].payload, b"kept")
        c.subscribe([("it/ro", {"qos": 1, "retain_handling": 1})])  # exists: nothing
        c.expect_silence(0.5)
        c.unsubscribe(["it/ro"])
        c.subscribe([("it/ro", {"qos": 1, "retain_handling": 1})])  # new again
        self.assertEqual(c.receive_messages(1)[0].payload, b"kept")

    def test_retain_handling_2_never_sends_retained(self):
        # 5.0 [MQTT-3.3.1-11]
        self._retained()
        c = self.connected5("it-rh2")
        c.subscribe([("it/ro", {"qos": 1, "retain_handling": 2})])
        c.expect_silence(0.5)
        self.connected5("it-rh2-pub").publish_and_complete("it/ro", b"live", qos=1)
        got = c.receive_messages(1)[0]
        self.assertEqual((got.payload, got.retain), (b"live", False))

    @harness.not_on_mosquitto("2.0.11 answers 0x81 Malformed Packet; 5.0 §3.8.3.1 makes it a "
                              "Protocol Error (0x82)")
    def test_retain_handling_3_is_a_protocol_error(self):
        # 5.0 §3.8.3.1: Retain Handling 3 is a Protocol Error.
        c = self.connected5("it-rh3")
        c.send(mqtt5.encode_subscribe5(1, [("it/ro", (3 << 4) | 1)]))
        c.expect_disconnect(mqtt5.PROTOCOL_ERROR)

    def test_paho_retain_handling(self):
        self._retained()
        sub = self.paho5("it-rh-paho")
        sub.subscribe("it/ro", qos=1, retain_handling=2)
        sub.expect_nothing(0.5)
        sub.subscribe("it/ro", qos=1, retain_handling=0)
        got = sub.get()
        self.assertEqual((got.payload, got.retain), (b"kept", True))


class SubscriptionIdentifierTest(mqtt5.V5TestCase):

    def test_identifier_comes_with_the_message(self):
        # 5.0 [MQTT-3.3.4-3]
        sub = self.connected5("it-sid")
        sub.subscribe([("it/sid/+", 1)], properties={"SubscriptionIdentifier": 7})
        plain = self.connected5("it-sid-plain")
        plain.subscribe([("it/sid/+", 1)])
        self.connected5("it-sid-pub").publish_and_complete("it/sid/a", b"x", qos=1)
        self.assertEqual(sub.receive_messages(1)[0].properties.get("SubscriptionIdentifier"),
                         [7])
        self.assertNotIn("SubscriptionIdentifier", plain.receive_messages(1)[0].properties)

    def test_largest_identifier(self):
        sub = self.connected5("it-sid-max")
        sub.subscribe([("it/sid/max", 0)], properties={"SubscriptionIdentifier": 268435455})
        self.connected5("it-sid-pub").publish("it/sid/max", b"x")
        self.assertEqual(sub.next_publish().properties.get("SubscriptionIdentifier"),
                         [268435455])

    def test_two_matching_subscriptions_give_both_identifiers(self):
        # 5.0 [MQTT-3.3.4-4] (one copy carries both) or [MQTT-3.3.4-5] (one copy each).
        sub = self.connected5("it-sid-two")
        sub.subscribe([("it/sid/#", 1)], properties={"SubscriptionIdentifier": 1})
        sub.subscribe([("it/sid/+/x", 1)], properties={"SubscriptionIdentifier": 2})
        pub = self.connected5("it-sid-pub")
        pub.publish_and_complete("it/sid/a/x", b"both", qos=1)
        pub.publish_and_complete("it/sid/b", b"one", qos=1)
        got = sub.receive_until(lambda p: p.payload == b"one")
        both = [p for p in got if p.payload == b"both"]
        ids = sorted(i for p in both for i in p.properties.get("SubscriptionIdentifier", []))
        self.assertEqual(ids, [1, 2], f"{both!r}")
        if len(both) == 2:  # one copy per subscription: each has only its own identifier
            self.assertEqual(sorted(len(p.properties["SubscriptionIdentifier"]) for p in both),
                             [1, 1])
        else:
            self.assertEqual(len(both), 1, f"{both!r}")
        self.assertEqual(got[-1].properties.get("SubscriptionIdentifier"), [1])

    def test_identifier_on_retained_message_sent_at_subscribe(self):
        self.connected5("it-sid-pub").publish_and_complete("it/sid/r", b"ret", qos=1,
                                                           retain=True)
        sub = self.connected5("it-sid-ret")
        sub.subscribe([("it/sid/r", 1)], properties={"SubscriptionIdentifier": 42})
        got = sub.receive_messages(1)[0]
        self.assertTrue(got.retain)
        self.assertEqual(got.properties.get("SubscriptionIdentifier"), [42])

    def test_resubscribing_replaces_the_identifier(self):
        # 5.0 [MQTT-3.8.4-3]: the new subscription replaces the old one, identifier included.
        sub = self.connected5("it-sid-re")
        sub.subscribe([("it/sid/re", 1)], properties={"SubscriptionIdentifier": 3})
        sub.subscribe([("it/sid/re", 1)], properties={"SubscriptionIdentifier": 4})
        pub = self.connected5("it-sid-pub")
        pub.publish_and_complete("it/sid/re", b"a", qos=1)
        self.assertEqual(sub.receive_messages(1)[0].properties.get("SubscriptionIdentifier"),
                         [4])
        sub.subscribe([("it/sid/re", 1)])
        pub.publish_and_complete("it/sid/re", b"b", qos=1)
        self.assertNotIn("SubscriptionIdentifier", sub.receive_messages(1)[0].properties)

    def test_identifier_survives_in_the_session(self):
        # The identifier is part of the subscription, so of the session state (5.0 §4.1).
        props = {"SessionExpiryInterval": 60}
        sub = self.connected5("it-sid-sess", properties=props)
        sub.subscribe([("it/sid/s", 1)], properties={"SubscriptionIdentifier": 9})
        sub.disconnect()
        self.connected5("it-sid-pub").publish_and_complete("it/sid/s", b"queued", qos=1)
        again = self.client5()
        self.assertTrue(again.connect("it-sid-sess", clean_start=False,
                                      properties=props).session_present)
        self.assertEqual(again.receive_messages(1)[0].properties.get("SubscriptionIdentifier"),
                         [9])

    def test_paho_sees_the_identifier(self):
        sub = self.paho5("it-sid-paho")
        sub.subscribe("it/sid/p", qos=1, properties={"SubscriptionIdentifier": 5})
        self.paho5("it-sid-paho-pub").publish("it/sid/p", b"p", qos=1)
        self.assertEqual(sub.get().properties.get("SubscriptionIdentifier"), [5])

    @harness.not_on_mosquitto("2.0.11 answers 0x81 Malformed Packet; 5.0 §3.8.2.1.2 makes it a "
                              "Protocol Error (0x82)")
    def test_identifier_0_is_a_protocol_error(self):
        # 5.0 §3.8.2.1.2: a Subscription Identifier of 0 is a Protocol Error.
        c = self.connected5("it-sid-zero")
        c.send(mqtt5.encode_subscribe5(1, [("it/sid/z", 0)],
                                       properties={"SubscriptionIdentifier": 0}))
        c.expect_disconnect(mqtt5.PROTOCOL_ERROR)


if __name__ == "__main__":
    harness.main()
