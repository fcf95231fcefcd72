#!/usr/bin/python3
"""MQTT 5.0 wills (5.0 §3.1.2.5, §3.1.3.2): the Will Delay Interval holds the will back after a
lost connection, a reconnect to the session within it cancels the will, a session that ends
first sends it at once; the will properties (user properties in order, content type, message
expiry, ...) reach the subscriber; DISCONNECT 0x04 sends the will, DISCONNECT 0x00 discards it.
Delays of 1–2 s."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402


def will(delay=None, payload=b"gone", **extra_props):
    props = dict(extra_props)
    if delay is not None:
        props["WillDelayInterval"] = delay
    return {"topic": "it/will", "payload": payload, "qos": 1, "properties": props}


class WillTest(mqtt5.V5TestCase):

    def setUp(self):
        super().setUp()
        self.watcher = self.connected5("it-will-watcher")
        self.assertEqual(self.watcher.subscribe([("it/will", 1)]).reason_codes, [1])

    def _will_arrival(self, timeout=6.0):
        """Seconds from now until the will arrives (fails if it does not within `timeout`)."""
        start = time.monotonic()
        got = self.watcher.receive_messages(1, timeout=timeout)[0]
        self.assertEqual(got.topic, "it/will")
        return time.monotonic() - start, got

    def test_will_without_delay_is_sent_at_once(self):
        c = self.connected5("it-will-now", will=will())
        c.close()
        elapsed, got = self._will_arrival()
        self.assertEqual(got.payload, b"gone")
        self.assertLess(elapsed, 1.0)

    def test_will_is_sent_after_the_delay(self):
        # 5.0 [MQTT-3.1.2-8]
        c = self.connected5("it-will-delay", will=will(2),
                            properties={"SessionExpiryInterval": 60})
        c.close()
        elapsed, got = self._will_arrival()
        self.assertEqual(got.payload, b"gone")
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, 4.0)

    def test_no_will_if_the_session_is_resumed_within_the_delay(self):
        # 5.0 [MQTT-3.1.3-9]
        props = {"SessionExpiryInterval": 60}
        c = self.connected5("it-will-back", will=will(2), properties=props)
        c.close()
        time.sleep(0.5)
        again = self.client5()
        self.assertTrue(again.connect("it-will-back", clean_start=False,
                                      properties=props).session_present)
        self.watcher.expect_silence(3.0)

    def test_no_will_if_the_session_is_taken_over_within_the_delay(self):
        # 5.0 [MQTT-3.1.3-9]: the new connection is to the same session (Clean Start 0).
        props = {"SessionExpiryInterval": 60}
        old = self.connected5("it-will-takeover", will=will(2), properties=props)
        new = self.client5()
        self.assertTrue(new.connect("it-will-takeover", clean_start=False,
                                    properties=props).session_present)
        old.expect_closed()
        self.watcher.expect_silence(3.0)

    @harness.not_on_mosquitto("2.0.11 drops the will when the client id reconnects with Clean "
                              "Start 1 within the delay (see the comment in the test)")
    def test_will_is_sent_when_a_clean_start_ends_the_session_within_the_delay(self):
        # 5.0 §3.1.2.5: the will goes out when the delay passes "or the Session ends, whichever
        # happens first"; Clean Start 1 ends the old session ([MQTT-3.1.2-4]), and the new
        # connection is not "to this Session" ([MQTT-3.1.3-9]). ([MQTT-3.1.2-8] also says "a new
        # Network Connection for the ClientID" cancels the will; mosquitto reads it that way.)
        props = {"SessionExpiryInterval": 60}
        c = self.connected5("it-will-clean", will=will(10), properties=props)
        c.close()
        time.sleep(0.3)
        self.connected5("it-will-clean", clean_start=True, properties=props)
        elapsed, got = self._will_arrival(timeout=3.0)
        self.assertEqual(got.payload, b"gone")

    def test_will_is_sent_when_the_session_expires_before_the_delay(self):
        # 5.0 [MQTT-3.1.2-8]: Session Expiry 1 s < Will Delay 10 s.
        c = self.connected5("it-will-expiry", will=will(10),
                            properties={"SessionExpiryInterval": 1})
        c.close()
        elapsed, got = self._will_arrival(timeout=5.0)
        self.assertGreater(elapsed, 0.5)
        self.assertLess(elapsed, 3.0)

    @harness.not_on_mosquitto("2.0.11 waits for the will delay although the session ended at "
                              "the close (5.0 [MQTT-3.1.2-8])")
    def test_will_delay_with_session_expiry_0_is_sent_at_close(self):
        # 5.0 [MQTT-3.1.2-8]: the session ends with the connection (Session Expiry 0), which
        # comes before the 10 s delay.
        c = self.connected5("it-will-se0", will=will(10))
        c.close()
        elapsed, _ = self._will_arrival(timeout=3.0)
        self.assertLess(elapsed, 1.5)

    def test_will_properties_reach_the_subscriber(self):
        # 5.0 [MQTT-3.1.3-10] (user properties in order), §3.1.3.2
        props = {"UserProperty": [("b", "2"), ("a", "1"), ("b", "3")],
                 "ContentType": "text/plain", "PayloadFormatIndicator": 1,
                 "MessageExpiryInterval": 60, "ResponseTopic": "it/will/reply",
                 "CorrelationData": b"\x00\x01"}
        c = self.connected5("it-will-props", will=will(payload=b"bye", **props))
        c.close()
        _, got = self._will_arrival()
        p = got.properties
        self.assertEqual(got.payload, b"bye")
        self.assertEqual(p.get("UserProperty"), [("b", "2"), ("a", "1"), ("b", "3")])
        self.assertEqual(p.get("ContentType"), "text/plain")
        self.assertEqual(p.get("PayloadFormatIndicator"), 1)
        self.assertEqual(p.get("ResponseTopic"), "it/will/reply")
        self.assertEqual(p.get("CorrelationData"), b"\x00\x01")
        self.assertIn(p.get("MessageExpiryInterval"), (59, 60))
        self.assertNotIn("WillDelayInterval", p)

    def test_paho_subscriber_sees_the_will_properties(self):
        sub = self.paho5("it-will-paho")
        sub.subscribe("it/will", qos=1)
        c = self.connected5("it-will-props2",
                            will=will(UserProperty=[("k", "v")], ContentType="a/b"))
        c.close()
        got = sub.get()
        self.assertEqual(got.properties.get("UserProperty"), [("k", "v")])
        self.assertEqual(got.properties.get("ContentType"), "a/b")

    def test_disconnect_with_will_message_sends_the_will(self):
        # 5.0 §3.14.2.1: reason 0x04 asks the server to publish the will.
        c = self.connected5("it-will-04", will=will())
        c.disconnect(mqtt5.DISCONNECT_WITH_WILL)
        _, got = self._will_arrival()
        self.assertEqual(got.payload, b"gone")

    def test_normal_disconnect_discards_a_delayed_will(self):
        # 5.0 [MQTT-3.14.4-3], [MQTT-3.1.2-10]
        c = self.connected5("it-will-00", will=will(1),
                            properties={"SessionExpiryInterval": 60})
        c.disconnect(mqtt5.SUCCESS)
        self.watcher.expect_silence(2.5)


if __name__ == "__main__":
    harness.main()
