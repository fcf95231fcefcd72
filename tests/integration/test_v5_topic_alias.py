#!/usr/bin/python3
"""MQTT 5.0 topic aliases (5.0 §3.3.2.3.4). Inbound: a client sets an alias with a topic and
then publishes with an empty topic and the alias; alias 0, an alias above the broker's Topic
Alias Maximum, or any alias when that maximum is 0 get DISCONNECT 0x94; an alias never set (or
set on an earlier connection) with an empty topic is a Protocol Error (0x82). Outbound: to a
client that allows N aliases, tinymq replaces a repeated topic by an alias (never above N, never
when the client allows none, never when outbound_topic_alias_maximum = 0), and aliases never
outlive the connection."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402
from harness import broker_config  # noqa: E402


class AliasResolver:
    """The receiving side of one connection's topic aliases: checks each PUBLISH against the
    rules and returns its real topic."""

    def __init__(self, test, maximum):
        self.test, self.maximum, self.aliases = test, maximum, {}

    def topic(self, p) -> str:
        alias = p.properties.get("TopicAlias")
        if alias is None:
            self.test.assertTrue(p.topic, f"empty topic without an alias: {p!r}")
            return p.topic
        # 5.0 [MQTT-3.3.2-8], [MQTT-3.3.2-11], [MQTT-3.1.2-26], [MQTT-3.1.2-27]
        self.test.assertGreaterEqual(alias, 1, f"{p!r}")
        self.test.assertLessEqual(alias, self.maximum, f"alias above our maximum: {p!r}")
        if p.topic:
            self.aliases[alias] = p.topic
            return p.topic
        self.test.assertIn(alias, self.aliases, f"alias used before it was set: {p!r}")
        return self.aliases[alias]


class InboundAliasTest(mqtt5.V5TestCase):

    def _subscriber(self):
        sub = self.connected5("it-ta-sub")
        sub.subscribe([("it/ta/#", 0)])
        return sub

    def test_alias_set_with_a_topic_then_used_alone(self):
        # 5.0 [MQTT-3.3.2-12]
        sub = self._subscriber()
        pub = self.connected5("it-ta-pub")
        self.assertEqual(pub.connack.properties.get("TopicAliasMaximum"), 10)
        pub.publish("it/ta/one", b"1", properties={"TopicAlias": 1})
        pub.publish("", b"2", properties={"TopicAlias": 1})
        pub.publish("it/ta/max", b"3", properties={"TopicAlias": 10})
        pub.publish("", b"4", properties={"TopicAlias": 10})
        pub.publish("it/ta/two", b"5", properties={"TopicAlias": 1})  # remapped
        pub.publish("", b"6", properties={"TopicAlias": 1})
        pub.publish_and_complete("", b"7", qos=1, properties={"TopicAlias": 10})
        got = [(m.topic, m.payload) for m in sub.receive_messages(7)]
        self.assertEqual(got, [("it/ta/one", b"1"), ("it/ta/one", b"2"), ("it/ta/max", b"3"),
                               ("it/ta/max", b"4"), ("it/ta/two", b"5"), ("it/ta/two", b"6"),
                               ("it/ta/max", b"7")])

    def test_paho_publisher_with_alias(self):
        sub = self._subscriber()
        pub = self.paho5("it-ta-paho")
        pub.publish("it/ta/p", b"a", qos=1, properties={"TopicAlias": 2})
        pub.publish("", b"b", qos=1, properties={"TopicAlias": 2})
        self.assertEqual([(m.topic, m.payload) for m in sub.receive_messages(2)],
                         [("it/ta/p", b"a"), ("it/ta/p", b"b")])

    @harness.not_on_mosquitto("answers alias 0 with 0x81 Malformed Packet, not 0x94 Topic Alias "
                              "invalid")
    def test_alias_0_gets_0x94(self):
        # 5.0 [MQTT-3.3.2-8] (alias 0 is never valid), §3.3.2.3.4: DISCONNECT 0x94.
        pub = self.connected5("it-ta-zero")
        pub.publish("it/ta/z", b"x", properties={"TopicAlias": 0})
        pub.expect_disconnect(mqtt5.TOPIC_ALIAS_INVALID)

    def test_alias_above_the_maximum_gets_0x94(self):
        pub = self.connected5("it-ta-over")
        pub.publish("it/ta/o", b"x", properties={"TopicAlias": 11})
        pub.expect_disconnect(mqtt5.TOPIC_ALIAS_INVALID)

    @broker_config(mqtt={"topic_alias_maximum": 3})
    def test_configured_maximum_is_the_limit(self):
        pub = self.connected5("it-ta-three")
        self.assertEqual(pub.connack.properties.get("TopicAliasMaximum"), 3)
        pub.publish_and_complete("it/ta/3", b"x", qos=1, properties={"TopicAlias": 3})
        pub.publish("it/ta/4", b"x", properties={"TopicAlias": 4})
        pub.expect_disconnect(mqtt5.TOPIC_ALIAS_INVALID)

    @broker_config(mqtt={"topic_alias_maximum": 0})
    def test_any_alias_is_invalid_when_the_maximum_is_0(self):
        pub = self.connected5("it-ta-none")
        self.assertEqual(pub.connack.properties.get("TopicAliasMaximum", 0), 0)
        pub.publish("it/ta/n", b"x", properties={"TopicAlias": 1})
        pub.expect_disconnect(mqtt5.TOPIC_ALIAS_INVALID)

    def test_unknown_alias_with_an_empty_topic_is_a_protocol_error(self):
        # 5.0 §3.3.4: an empty topic whose alias has no mapping is a Protocol Error.
        pub = self.connected5("it-ta-unknown")
        pub.publish("", b"x", properties={"TopicAlias": 5})
        pub.expect_disconnect(mqtt5.PROTOCOL_ERROR)

    def test_empty_topic_without_alias_is_a_protocol_error(self):
        pub = self.connected5("it-ta-empty")
        pub.publish("", b"x", qos=1)
        pub.expect_disconnect(mqtt5.PROTOCOL_ERROR)

    def test_aliases_do_not_survive_the_connection(self):
        # 5.0 [MQTT-3.3.2-7]: a new connection of the same session starts without aliases.
        first = self.connected5("it-ta-again", clean_start=False,
                                properties={"SessionExpiryInterval": 60})
        first.publish_and_complete("it/ta/s", b"x", qos=1, properties={"TopicAlias": 1})
        first.disconnect()
        second = self.client5()
        self.assertTrue(second.connect("it-ta-again", clean_start=False,
                                       properties={"SessionExpiryInterval": 60}).session_present)
        second.publish("", b"y", properties={"TopicAlias": 1})
        second.expect_disconnect(mqtt5.PROTOCOL_ERROR)


class OutboundAliasTest(mqtt5.V5TestCase):

    TOPICS = ["it/out/a", "it/out/b", "it/out/c"]

    def _deliver(self, sub_max, rounds=3, sub_id="it-out-sub"):
        """A subscriber allowing `sub_max` aliases gets `rounds` messages on each of 3 topics;
        returns (packets, resolver), having checked that every topic resolves right."""
        props = {"TopicAliasMaximum": sub_max} if sub_max is not None else None
        sub = self.connected5(sub_id, properties=props)
        sub.subscribe([("it/out/#", 1)])
        pub = self.connected5("it-out-pub")
        expected = []
        for r in range(rounds):
            for t in self.TOPICS:
                pub.publish_and_complete(t, f"{t}:{r}", qos=1)
                expected.append((t, f"{t}:{r}".encode()))
        packets = sub.receive_messages(len(expected))
        resolver = AliasResolver(self, sub_max or 0)
        self.assertEqual([(resolver.topic(p), p.payload) for p in packets], expected)
        return packets, resolver

    def test_aliases_sent_resolve_right_and_stay_within_the_client_maximum(self):
        # 5.0 [MQTT-3.3.2-11], [MQTT-3.1.2-26], [MQTT-3.3.2-8]
        self._deliver(2)

    def test_no_aliases_to_a_client_that_allows_none(self):
        # 5.0 [MQTT-3.1.2-27]
        packets, _ = self._deliver(None)
        self.assertFalse([p for p in packets if "TopicAlias" in p.properties])
        packets, _ = self._deliver(0, sub_id="it-out-zero")
        self.assertFalse([p for p in packets if "TopicAlias" in p.properties])

    @harness.not_on_mosquitto("sends no topic aliases to clients (optional in 5.0 §3.3.2.3.4)")
    def test_a_repeated_topic_is_replaced_by_an_alias(self):
        packets, resolver = self._deliver(10, rounds=2)
        first, again = packets[:3], packets[3:]
        for p in first:
            self.assertIn("TopicAlias", p.properties, f"{p!r}")
            self.assertTrue(p.topic)
        for p in again:
            self.assertEqual(p.topic, "", f"repeated topic sent in full: {p!r}")
            self.assertIn("TopicAlias", p.properties)
        self.assertEqual(len({p.properties["TopicAlias"] for p in first}), 3)

    @harness.not_on_mosquitto("sends no topic aliases to clients (optional in 5.0 §3.3.2.3.4)")
    def test_a_single_alias_is_remapped_and_still_resolves(self):
        # One alias for three topics: every PUBLISH that uses it still resolves to its topic
        # (checked in _deliver), and alias 1 is the only one used.
        packets, _ = self._deliver(1)
        used = {p.properties["TopicAlias"] for p in packets if "TopicAlias" in p.properties}
        self.assertEqual(used, {1})

    @broker_config(mqtt={"outbound_topic_alias_maximum": 0})
    def test_no_aliases_when_outbound_maximum_is_0(self):
        packets, _ = self._deliver(10)
        self.assertFalse([p for p in packets if "TopicAlias" in p.properties])

    @broker_config(mqtt={"outbound_topic_alias_maximum": 1})
    def test_outbound_maximum_caps_the_client_maximum(self):
        packets, _ = self._deliver(5)
        used = {p.properties["TopicAlias"] for p in packets if "TopicAlias" in p.properties}
        self.assertEqual(used, {1})

    def test_outbound_aliases_are_not_carried_over_a_reconnect(self):
        # 5.0 [MQTT-3.3.2-7]: after a reconnect every alias is set again before it is used.
        props = {"TopicAliasMaximum": 5, "SessionExpiryInterval": 60}
        sub = self.connected5("it-out-re", clean_start=False, properties=props)
        sub.subscribe([("it/out/#", 1)])
        pub = self.connected5("it-out-pub")
        pub.publish_and_complete("it/out/a", b"1", qos=1)
        pub.publish_and_complete("it/out/a", b"2", qos=1)
        AliasResolver(self, 5).topic(sub.receive_messages(1)[0])
        sub.close()  # "2" may be in flight; it is re-sent on the new connection
        pub.publish_and_complete("it/out/a", b"3", qos=1)
        again = self.client5()
        self.assertTrue(again.connect("it-out-re", clean_start=False,
                                      properties=props).session_present)
        resolver = AliasResolver(self, 5)  # a new connection knows no alias
        got = again.receive_until(lambda p: p.payload == b"3")
        self.assertEqual([resolver.topic(p) for p in got], ["it/out/a"] * len(got))
        self.assertEqual(got[-1].payload, b"3")


if __name__ == "__main__":
    harness.main()
