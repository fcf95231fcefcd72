#!/usr/bin/python3
"""MQTT 5.0 Message Expiry Interval (5.0 §3.3.2.3.3): the interval a message is forwarded with
is the one it was published with minus the time it waited in the broker (queued for an offline
session, held back by flow control, or retained), and a message whose interval ran out is never
delivered. Intervals of 1–10 s; waits of 2–2.5 s."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402

SESSION = {"SessionExpiryInterval": 60}


class MessageExpiryTest(mqtt5.V5TestCase):

    def _offline_subscriber(self, client_id):
        sub = self.connected5(client_id, clean_start=True, properties=SESSION)
        self.assertEqual(sub.subscribe([("it/exp/#", 1)]).reason_codes, [1])
        sub.disconnect()

    def _reconnect(self, client_id):
        sub = self.client5()
        self.assertTrue(sub.connect(client_id, clean_start=False,
                                    properties=SESSION).session_present)
        return sub

    def test_interval_is_forwarded_when_nothing_waited(self):
        sub = self.connected5("it-exp-live")
        sub.subscribe([("it/exp/#", 1)])
        pub = self.connected5("it-exp-pub")
        pub.publish_and_complete("it/exp/a", b"x", qos=1,
                                 properties={"MessageExpiryInterval": 10})
        pub.publish_and_complete("it/exp/b", b"y", qos=1)
        got = sub.receive_messages(2)
        self.assertIn(got[0].properties.get("MessageExpiryInterval"), (9, 10))
        self.assertNotIn("MessageExpiryInterval", got[1].properties)

    def test_interval_is_counted_down_while_queued_for_an_offline_session(self):
        # 5.0 [MQTT-3.3.2-6]
        self._offline_subscriber("it-exp-q")
        pub = self.connected5("it-exp-pub")
        pub.publish_and_complete("it/exp/q", b"waited", qos=1,
                                 properties={"MessageExpiryInterval": 10})
        time.sleep(2.2)
        got = self._reconnect("it-exp-q").receive_messages(1)[0]
        self.assertEqual(got.payload, b"waited")
        remaining = got.properties.get("MessageExpiryInterval")
        self.assertIsNotNone(remaining, f"{got!r}")
        self.assertTrue(6 <= remaining <= 8, f"10 s minus about 2.2 s waited, got {remaining}")

    def test_expired_queued_message_is_not_delivered(self):
        # 5.0 [MQTT-3.3.2-5]
        self._offline_subscriber("it-exp-gone")
        pub = self.connected5("it-exp-pub")
        pub.publish_and_complete("it/exp/gone", b"expired", qos=1,
                                 properties={"MessageExpiryInterval": 1})
        pub.publish_and_complete("it/exp/gone", b"kept", qos=1,
                                 properties={"MessageExpiryInterval": 60})
        pub.publish_and_complete("it/exp/gone", b"forever", qos=1)
        time.sleep(2.2)
        sub = self._reconnect("it-exp-gone")
        got = sub.receive_messages(2)
        self.assertEqual([m.payload for m in got], [b"kept", b"forever"])
        sub.expect_silence(0.3)

    @harness.not_on_mosquitto("2.0.11 drops the expired message but then never sends the one "
                              "queued behind it ([MQTT-4.5.0-1])")
    def test_expired_message_held_back_by_flow_control_is_not_delivered(self):
        # 5.0 [MQTT-3.3.2-5]: "before onward delivery began" includes waiting for send quota.
        sub = self.connected5("it-exp-flow", properties={"ReceiveMaximum": 1})
        sub.subscribe([("it/exp/#", 1)])
        pub = self.connected5("it-exp-pub")
        pub.publish_and_complete("it/exp/f", b"first", qos=1)
        pub.publish_and_complete("it/exp/f", b"expires", qos=1,
                                 properties={"MessageExpiryInterval": 1})
        pub.publish_and_complete("it/exp/f", b"last", qos=1)
        first = sub.receive_messages(1, ack=False)[0]
        self.assertEqual(first.payload, b"first")
        time.sleep(2.2)
        sub.puback(first.packet_id)
        self.assertEqual(sub.receive_messages(1)[0].payload, b"last")
        sub.expect_silence(0.3)

    def test_retained_message_interval_is_counted_down(self):
        # 5.0 [MQTT-3.3.2-6] for a retained message.
        pub = self.connected5("it-exp-pub")
        pub.publish_and_complete("it/exp/r", b"state", qos=1, retain=True,
                                 properties={"MessageExpiryInterval": 10})
        time.sleep(2.2)
        sub = self.connected5("it-exp-late")
        sub.subscribe([("it/exp/r", 1)])
        got = sub.receive_messages(1)[0]
        self.assertTrue(got.retain)
        remaining = got.properties.get("MessageExpiryInterval")
        self.assertIsNotNone(remaining, f"{got!r}")
        self.assertTrue(6 <= remaining <= 8, f"10 s minus about 2.2 s retained, got {remaining}")

    def test_expired_retained_message_is_not_sent(self):
        # 5.0 [MQTT-3.3.2-5]
        pub = self.connected5("it-exp-pub")
        pub.publish_and_complete("it/exp/rgone", b"old", qos=1, retain=True,
                                 properties={"MessageExpiryInterval": 1})
        pub.publish_and_complete("it/exp/rkept", b"new", qos=1, retain=True)
        time.sleep(2.2)
        sub = self.connected5("it-exp-late")
        sub.subscribe([("it/exp/+", 1)])
        got = sub.receive_messages(1)
        self.assertEqual([(m.topic, m.payload) for m in got], [("it/exp/rkept", b"new")])
        sub.expect_silence(0.3)

    def test_paho_subscriber_sees_the_counted_down_interval(self):
        pub = self.paho5("it-exp-paho-pub")
        pub.publish("it/exp/p", b"p", qos=1, retain=True,
                    properties={"MessageExpiryInterval": 30})
        time.sleep(2.2)
        sub = self.paho5("it-exp-paho-sub")
        sub.subscribe("it/exp/p", qos=1)
        got = sub.get()
        self.assertTrue(26 <= got.properties.get("MessageExpiryInterval", 0) <= 28,
                        f"{got!r}")


if __name__ == "__main__":
    harness.main()
