#!/usr/bin/python3
"""MQTT 5.0 CONNACK (5.0 §3.2): its properties say what the configuration ([mqtt], [limits])
offers, and what is not offered is refused with the reason code of the spec: a PUBLISH above
Maximum QoS (DISCONNECT 0x9B) or with RETAIN while retain is not available (0x9A), a will that
asks for either (CONNACK 0x9B / 0x9A), a wildcard or shared filter when those are off (SUBACK 0xA2
/ 0x9E), a subscription identifier when those are off (DISCONNECT 0xA1), and an Authentication
Method the broker does not know (CONNACK 0x8C)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402
from harness import broker_config  # noqa: E402


class ConnackPropertiesTest(mqtt5.V5TestCase):

    def test_defaults(self):
        # 5.0 §3.2.2.3: an absent property means the default (everything available, QoS 2).
        c = self.connected5("it-defaults", properties={"SessionExpiryInterval": 100})
        p = c.connack.properties
        self.assertEqual(c.connack.reason_code, mqtt5.SUCCESS)
        self.assertNotIn("MaximumQoS", p)
        self.assertEqual(p.get("RetainAvailable", 1), 1)
        self.assertEqual(p.get("WildcardSubscriptionAvailable", 1), 1)
        self.assertEqual(p.get("SubscriptionIdentifierAvailable", 1), 1)
        self.assertEqual(p.get("SharedSubscriptionAvailable", 1), 1)
        self.assertEqual(p.get("TopicAliasMaximum"), 10)
        # The documented defaults: tinymq receive_maximum 1024, mosquitto max_inflight_messages 20.
        self.assertEqual(p.get("ReceiveMaximum"), 20 if harness.is_mosquitto() else 1024)
        # The documented default limit: tinymq max_packet_size 1 MiB; mosquitto none (absent).
        if harness.is_mosquitto():
            self.assertNotIn("MaximumPacketSize", p)
        else:
            self.assertEqual(p.get("MaximumPacketSize"), 1048576)
        # The client's own keep alive and session expiry are used as sent.
        self.assertNotIn("ServerKeepAlive", p)
        self.assertNotIn("SessionExpiryInterval", p)
        self.assertNotIn("AssignedClientIdentifier", p)
        # 5.0 [MQTT-4.12.0-6]: no Authentication Method unless the client sent one.
        self.assertNotIn("AuthenticationMethod", p)

    @broker_config(limits={"max_packet_size": 2000},
                   mqtt={"receive_maximum": 7, "maximum_qos": 1, "retain_available": False,
                         "topic_alias_maximum": 3})
    def test_properties_reflect_the_configuration(self):
        # 5.0 [MQTT-3.2.2-9]
        p = self.connected5("it-configured").connack.properties
        self.assertEqual(p.get("ReceiveMaximum"), 7)
        self.assertEqual(p.get("MaximumQoS"), 1)
        self.assertEqual(p.get("RetainAvailable"), 0)
        self.assertEqual(p.get("MaximumPacketSize"), 2000)
        self.assertEqual(p.get("TopicAliasMaximum"), 3)

    @broker_config(mqtt={"maximum_qos": 0, "topic_alias_maximum": 0})
    def test_maximum_qos_0_and_no_topic_aliases(self):
        p = self.connected5("it-qos0").connack.properties
        self.assertEqual(p.get("MaximumQoS"), 0)
        # 5.0 §3.2.2.3.8: absent or 0 means the client may use no alias.
        self.assertEqual(p.get("TopicAliasMaximum", 0), 0)

    @broker_config(mqtt={"wildcard_subscriptions": False, "subscription_identifiers": False,
                         "shared_subscriptions": False})
    def test_features_switched_off_are_announced(self):
        p = self.connected5("it-off").connack.properties
        self.assertEqual(p.get("WildcardSubscriptionAvailable"), 0)
        self.assertEqual(p.get("SubscriptionIdentifierAvailable"), 0)
        self.assertEqual(p.get("SharedSubscriptionAvailable"), 0)

    @broker_config(mqtt={"max_keep_alive_s": 20})
    def test_server_keep_alive_caps_the_client_keep_alive(self):
        # 5.0 §3.2.2.3.14: the server's Keep Alive replaces the client's.
        longer = self.connected5("it-ka-60", keepalive=60)
        self.assertEqual(longer.connack.properties.get("ServerKeepAlive"), 20)
        none = self.connected5("it-ka-0", keepalive=0)
        self.assertEqual(none.connack.properties.get("ServerKeepAlive"), 20)
        shorter = self.connected5("it-ka-10", keepalive=10)
        self.assertEqual(shorter.connack.properties.get("ServerKeepAlive", 10), 10)

    @harness.not_on_mosquitto("refuses max_keepalive below 10 s (too slow for this test)")
    @broker_config(mqtt={"max_keep_alive_s": 1})
    def test_server_keep_alive_is_enforced(self):
        # 5.0 [MQTT-3.1.2-22] with the Server Keep Alive instead of the client's 60 s.
        c = self.connected5("it-ka-enforced", keepalive=60)
        self.assertEqual(c.connack.properties.get("ServerKeepAlive"), 1)
        start = time.monotonic()
        c.expect_disconnect(mqtt5.KEEP_ALIVE_TIMEOUT, timeout=5)
        self.assertLess(time.monotonic() - start, 3.0)

    def test_assigned_client_identifier_for_an_empty_id(self):
        # 5.0 [MQTT-3.2.2-16], [MQTT-3.1.3-6], [MQTT-3.1.3-7]
        first = self.connected5("").connack.properties.get("AssignedClientIdentifier")
        second = self.connected5("").connack.properties.get("AssignedClientIdentifier")
        self.assertTrue(first)
        self.assertTrue(second)
        self.assertNotEqual(first, second)
        named = self.connected5("it-named").connack.properties
        self.assertNotIn("AssignedClientIdentifier", named)

    def test_assigned_client_identifier_names_the_session(self):
        # 5.0 [MQTT-3.1.3-7]: the broker carries on as if the client had sent that id, so a later
        # CONNECT with it resumes the session (Session Expiry > 0).
        c = self.connected5("", clean_start=True, properties={"SessionExpiryInterval": 60})
        assigned = c.connack.properties["AssignedClientIdentifier"]
        self.assertEqual(c.subscribe([("it/assigned", 1)]).reason_codes, [1])
        c.disconnect()
        self.connected5("it-pub").publish_and_complete("it/assigned", b"kept", qos=1)
        again = self.client5()
        connack = again.connect(assigned, clean_start=False,
                                properties={"SessionExpiryInterval": 60})
        self.assertTrue(connack.session_present)
        self.assertEqual(again.receive_messages(1)[0].payload, b"kept")

    @broker_config(mqtt={"max_session_expiry_s": 30})
    def test_session_expiry_is_capped_and_the_connack_says_so(self):
        # 5.0 §3.2.2.3.2: a CONNACK Session Expiry Interval tells the client the value in use.
        capped = self.connected5("it-se-long", properties={"SessionExpiryInterval": 3600})
        self.assertEqual(capped.connack.properties.get("SessionExpiryInterval"), 30)
        forever = self.connected5("it-se-max", properties={"SessionExpiryInterval": 0xFFFFFFFF})
        self.assertEqual(forever.connack.properties.get("SessionExpiryInterval"), 30)
        short = self.connected5("it-se-short", properties={"SessionExpiryInterval": 10})
        self.assertEqual(short.connack.properties.get("SessionExpiryInterval", 10), 10)

    @broker_config(mqtt={"max_session_expiry_s": 1})
    def test_session_expiry_cap_is_enforced(self):
        # 5.0 [MQTT-4.1.0-2] with the capped interval: the session is gone after 1 s, not 3600 s.
        c = self.connected5("it-se-cap", properties={"SessionExpiryInterval": 3600})
        self.assertEqual(c.subscribe([("it/se", 1)]).reason_codes, [1])
        c.disconnect()
        time.sleep(2.5)
        again = self.client5()
        connack = again.connect("it-se-cap", clean_start=False,
                                properties={"SessionExpiryInterval": 3600})
        self.assertFalse(connack.session_present)


class RefusalTest(mqtt5.V5TestCase):

    @broker_config(mqtt={"maximum_qos": 1})
    def test_publish_above_maximum_qos_is_disconnected_with_0x9b(self):
        # 5.0 §3.2.2.3.4: a PUBLISH above the advertised Maximum QoS gets DISCONNECT 0x9B.
        c = self.connected5("it-qos-over")
        c.publish("it/qos", b"x", qos=2)
        c.expect_disconnect(mqtt5.QOS_NOT_SUPPORTED)

    @broker_config(mqtt={"maximum_qos": 0})
    def test_qos1_publish_above_maximum_qos_0_is_disconnected_with_0x9b(self):
        c = self.connected5("it-qos1-over")
        c.publish("it/qos", b"x", qos=1)
        c.expect_disconnect(mqtt5.QOS_NOT_SUPPORTED)

    @broker_config(mqtt={"maximum_qos": 1})
    def test_publish_at_maximum_qos_is_accepted(self):
        sub = self.connected5("it-qos-sub")
        sub.subscribe([("it/qos", 1)])
        pub = self.connected5("it-qos-ok")
        self.assertEqual(pub.publish_and_complete("it/qos", b"ok", qos=1).reason_code,
                         mqtt5.SUCCESS)
        self.assertEqual(sub.receive_messages(1)[0].payload, b"ok")

    @broker_config(mqtt={"maximum_qos": 1})
    def test_will_above_maximum_qos_is_refused_with_connack_0x9b(self):
        # 5.0 [MQTT-3.2.2-12], [MQTT-3.2.2-7]
        c = self.client5()
        connack = c.connect("it-will-qos", will={"topic": "it/will", "payload": b"w", "qos": 2},
                            expect_reason=mqtt5.QOS_NOT_SUPPORTED)
        self.assertFalse(connack.session_present)
        self.assertEqual(c.expect_closed(), [])

    @broker_config(mqtt={"maximum_qos": 1})
    def test_subscription_is_granted_at_most_maximum_qos(self):
        # 5.0 [MQTT-3.2.2-10]: SUBSCRIBE at QoS 2 is still accepted, granted QoS 1.
        sub = self.connected5("it-grant")
        self.assertEqual(sub.subscribe([("it/grant", 2)]).reason_codes, [mqtt5.GRANTED_QOS_1])
        self.connected5("it-grant-pub").publish_and_complete("it/grant", b"g", qos=1)
        self.assertEqual(sub.receive_messages(1)[0].qos, 1)

    @broker_config(mqtt={"retain_available": False})
    def test_retained_publish_is_disconnected_with_0x9a(self):
        # 5.0 §3.2.2.3.5: RETAIN 1 while Retain Available is 0 gets DISCONNECT 0x9A.
        c = self.connected5("it-retain")
        self.assertEqual(c.connack.properties.get("RetainAvailable"), 0)
        c.publish("it/retain", b"r", qos=0, retain=True)
        c.expect_disconnect(mqtt5.RETAIN_NOT_SUPPORTED)

    @broker_config(mqtt={"retain_available": False})
    def test_retained_will_is_refused_with_connack_0x9a(self):
        # 5.0 [MQTT-3.2.2-13]
        c = self.client5()
        c.connect("it-will-retain", will={"topic": "it/will", "payload": b"w", "retain": True},
                  expect_reason=mqtt5.RETAIN_NOT_SUPPORTED)
        self.assertEqual(c.expect_closed(), [])

    @broker_config(mqtt={"wildcard_subscriptions": False})
    def test_wildcard_filters_get_suback_0xa2(self):
        # 5.0 §3.9.3: 0xA2 per filter; the plain filter in the same SUBSCRIBE is granted.
        c = self.connected5("it-wild")
        suback = c.subscribe([("it/+/x", 1), ("it/plain", 1), ("it/#", 0)])
        self.assertEqual(suback.reason_codes, [mqtt5.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
                                               mqtt5.GRANTED_QOS_1,
                                               mqtt5.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED])
        self.assertTrue(c.is_open())

    @broker_config(mqtt={"subscription_identifiers": False})
    def test_subscription_identifier_is_disconnected_with_0xa1(self):
        # 5.0 §3.2.2.3.12: a SUBSCRIBE with an identifier when they are not available.
        c = self.connected5("it-subid")
        c.send(mqtt5.encode_subscribe5(1, [("it/subid", 0)],
                                       properties={"SubscriptionIdentifier": 5}))
        c.expect_disconnect(mqtt5.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED)

    @broker_config(mqtt={"shared_subscriptions": False})
    def test_shared_filter_gets_suback_0x9e(self):
        c = self.connected5("it-shared-off")
        suback = c.subscribe([("$share/g/it/s", 1), ("it/s", 1)])
        self.assertEqual(suback.reason_codes, [mqtt5.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
                                               mqtt5.GRANTED_QOS_1])
        self.assertTrue(c.is_open())

    def test_unknown_authentication_method_gets_connack_0x8c(self):
        # 5.0 [MQTT-4.12.0-1], [MQTT-3.2.2-7]
        c = self.client5()
        connack = c.connect("it-auth", properties={"AuthenticationMethod": "SCRAM-SHA-1",
                                                   "AuthenticationData": b"client-first"},
                            expect_reason=mqtt5.BAD_AUTHENTICATION_METHOD)
        self.assertFalse(connack.session_present)
        self.assertEqual(c.expect_closed(), [])


if __name__ == "__main__":
    harness.main()
