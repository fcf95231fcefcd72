#!/usr/bin/python3
"""MQTT 5.0 properties through the mosquitto command-line clients: what mosquitto_pub -V mqttv5
-D publish ... sets (user properties, content type, response topic, correlation data, payload
format indicator, message expiry, topic alias) is what mosquitto_sub -V mqttv5 -F '%P %C %R %D
%F %E' prints, live and retained; mosquitto_sub's subscription identifier (%S) and will
properties come back too."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402

# Message.extra fields, in the order of this format.
PROPS_FORMAT = r"%P\t%C\t%R\t%D\t%F\t%E"
USER, CONTENT, RESPONSE, CORRELATION, FORMAT_INDICATOR, EXPIRY = range(6)

PUBLISH_PROPS = ["-D", "publish", "user-property", "colour", "blue",
                 "-D", "publish", "user-property", "size", "xl",
                 "-D", "publish", "user-property", "colour", "red",
                 "-D", "publish", "content-type", "application/json",
                 "-D", "publish", "response-topic", "it/cli/reply",
                 "-D", "publish", "correlation-data", "req-42",
                 "-D", "publish", "payload-format-indicator", "1"]


class CommandLinePropertiesTest(mqtt5.V5TestCase):

    def sub5(self, topic, extra_format=PROPS_FORMAT, extra=(), **kwargs):
        return self.sub(topic, qos=1, version="mqttv5", extra_format=extra_format,
                        extra=list(extra), **kwargs)

    def check_properties(self, m):
        # 5.0 [MQTT-3.3.2-17], [MQTT-3.3.2-18] (user properties in order, duplicates kept),
        # [MQTT-3.3.2-20], [MQTT-3.3.2-15], [MQTT-3.3.2-16], [MQTT-3.3.2-4]
        self.assertEqual(m.extra[USER], "colour:blue size:xl colour:red")
        self.assertEqual(m.extra[CONTENT], "application/json")
        self.assertEqual(m.extra[RESPONSE], "it/cli/reply")
        self.assertEqual(m.extra[CORRELATION], "req-42")
        self.assertEqual(m.extra[FORMAT_INDICATOR], "1")

    def test_publish_properties_are_shown_unchanged(self):
        sub = self.sub5("it/cli/props")
        self.pub("it/cli/props", '{"a":1}', qos=1, version="mqttv5", extra=PUBLISH_PROPS)
        m = sub.get()
        self.assertEqual((m.topic, m.payload, m.qos), ("it/cli/props", b'{"a":1}', 1))
        self.check_properties(m)
        self.assertEqual(m.extra[EXPIRY], "")  # none was set

    def test_message_without_properties_shows_none(self):
        sub = self.sub5("it/cli/plain")
        self.pub("it/cli/plain", "x", qos=1, version="mqttv5")
        self.assertEqual(sub.get().extra, ["", "", "", "", "", ""])

    def test_message_expiry_interval(self):
        sub = self.sub5("it/cli/exp")
        self.pub("it/cli/exp", "x", qos=1, version="mqttv5",
                 extra=["-D", "publish", "message-expiry-interval", "100"])
        self.assertIn(sub.get().extra[EXPIRY], ("99", "100"))

    def test_retained_message_keeps_its_properties(self):
        self.pub("it/cli/ret", "state", qos=1, retain=True, version="mqttv5",
                 extra=PUBLISH_PROPS)
        m = self.sub5("it/cli/ret").get()
        self.assertEqual((m.payload, m.retain), (b"state", True))
        self.check_properties(m)

    def test_311_mosquitto_sub_gets_the_payload_without_properties(self):
        sub = self.sub("it/cli/old", qos=1, version="mqttv311", extra_format=PROPS_FORMAT)
        self.pub("it/cli/old", "plain", qos=1, version="mqttv5", extra=PUBLISH_PROPS)
        m = sub.get()
        self.assertEqual(m.payload, b"plain")
        self.assertEqual(m.extra, ["", "", "", "", "", ""])

    def test_subscription_identifier(self):
        # 5.0 [MQTT-3.3.4-3]
        sub = self.sub5("it/cli/sid", extra_format="%S",
                        extra=["-D", "subscribe", "subscription-identifier", "12"])
        self.pub("it/cli/sid", "x", qos=1, version="mqttv5")
        self.assertEqual(sub.get().extra, ["12"])

    def test_inbound_topic_alias_from_mosquitto_pub(self):
        sub = self.sub5("it/cli/alias/#")
        self.pub("it/cli/alias/a", None, qos=1, version="mqttv5", lines=["1", "2", "3"],
                 extra=["-D", "publish", "topic-alias", "1"])
        got = sub.collect(3)
        self.assertEqual([(m.topic, m.payload) for m in got],
                         [("it/cli/alias/a", b"1"), ("it/cli/alias/a", b"2"),
                          ("it/cli/alias/a", b"3")])

    def test_no_aliases_to_a_mosquitto_sub_that_allows_none(self):
        # 5.0 [MQTT-3.1.2-27]. (libmosquitto 2.0.11 cannot take an aliased PUBLISH with an empty
        # topic at all, eclipse-mosquitto/mosquitto#1468, so nothing here lets it allow any.)
        sub = self.sub5("it/cli/rep", extra_format="%A")
        self.pub("it/cli/rep", None, qos=1, version="mqttv5", lines=["1", "2", "3"])
        got = sub.collect(3)
        self.assertEqual([(m.topic, m.payload, m.extra) for m in got],
                         [("it/cli/rep", b"%d" % i, [""]) for i in (1, 2, 3)])

    def test_will_properties_set_by_mosquitto_sub(self):
        # 5.0 [MQTT-3.1.3-10]
        watcher = self.sub5("it/cli/will")
        dying = self.sub("it/cli/unused", version="mqttv5",
                         will=("it/cli/will", "bye", 1, False),
                         extra=["-D", "will", "user-property", "why", "killed",
                                "-D", "will", "content-type", "text/plain",
                                "-D", "will", "response-topic", "it/cli/r",
                                "-D", "will", "correlation-data", "w-1"])
        dying.kill(signal.SIGKILL)  # no DISCONNECT: the will goes out
        m = watcher.get()
        self.assertEqual(m.payload, b"bye")
        self.assertEqual(m.extra[:4], ["why:killed", "text/plain", "it/cli/r", "w-1"])


if __name__ == "__main__":
    harness.main()
