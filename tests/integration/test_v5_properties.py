#!/usr/bin/python3
"""MQTT 5.0 properties that travel with a message (5.0 §3.3.2.3): a paho-mqtt 5.0 publisher's
user properties (in order), content type, payload format indicator, response topic and correlation
data reach a 5.0 subscriber unchanged; a 3.1.1 subscriber gets the message without them; a
retained message keeps them. Request/response works end to end."""

import os
import queue
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

WAIT = 10


class V5Client:
    """A paho 1.6 client in MQTT 5 mode whose received messages land in a queue."""

    def __init__(self, port, client_id, protocol=mqtt.MQTTv5):
        self.messages = queue.Queue()
        self.connected = queue.Queue()
        self.client = mqtt.Client(client_id=client_id, protocol=protocol)
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        if protocol == mqtt.MQTTv5:
            self.client.on_connect = lambda c, u, f, rc, p=None: self.connected.put(rc)
        else:
            self.client.on_connect = lambda c, u, f, rc: self.connected.put(rc)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.connected.get(timeout=WAIT)

    def subscribe(self, topic, qos=1):
        done = queue.Queue()
        self.client.on_subscribe = lambda *args: done.put(True)
        self.client.subscribe(topic, qos)
        done.get(timeout=WAIT)

    def next_message(self):
        return self.messages.get(timeout=WAIT)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def request_properties():
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("b", "2"), ("a", "1"), ("b", "3")]
    props.ContentType = "application/json"
    props.PayloadFormatIndicator = 1
    props.ResponseTopic = "it/v5/resp"
    props.CorrelationData = b"\x01\x00\xff"
    return props


class V5PropertiesTest(harness.BrokerTestCase):

    def client(self, client_id, protocol=mqtt.MQTTv5):
        c = V5Client(self.port, client_id, protocol)
        self.addCleanup(c.close)
        return c

    def test_properties_reach_a_5_subscriber_unchanged_and_in_order(self):
        # 5.0 [MQTT-3.3.2-4], [MQTT-3.3.2-15], [MQTT-3.3.2-16], [MQTT-3.3.2-17], [MQTT-3.3.2-18],
        # [MQTT-3.3.2-20]
        sub = self.client("it-v5-sub")
        sub.subscribe("it/v5/req")
        pub = self.client("it-v5-pub")
        pub.client.publish("it/v5/req", b"{}", qos=1,
                           properties=request_properties()).wait_for_publish(WAIT)
        got = sub.next_message()
        self.assertEqual(got.payload, b"{}")
        p = got.properties
        self.assertEqual(p.UserProperty, [("b", "2"), ("a", "1"), ("b", "3")])
        self.assertEqual(p.ContentType, "application/json")
        self.assertEqual(p.PayloadFormatIndicator, 1)
        self.assertEqual(p.ResponseTopic, "it/v5/resp")
        self.assertEqual(p.CorrelationData, b"\x01\x00\xff")

    def test_request_response_round_trip(self):
        responder = self.client("it-v5-responder")
        responder.subscribe("it/v5/req")
        requester = self.client("it-v5-requester")
        requester.subscribe("it/v5/resp")
        requester.client.publish("it/v5/req", b"ping", qos=1,
                                 properties=request_properties()).wait_for_publish(WAIT)
        request = responder.next_message()
        reply = Properties(PacketTypes.PUBLISH)
        reply.CorrelationData = request.properties.CorrelationData
        responder.client.publish(request.properties.ResponseTopic, b"pong", qos=1,
                                 properties=reply).wait_for_publish(WAIT)
        answer = requester.next_message()
        self.assertEqual((answer.topic, answer.payload), ("it/v5/resp", b"pong"))
        self.assertEqual(answer.properties.CorrelationData, b"\x01\x00\xff")

    def test_a_311_subscriber_gets_the_message_without_properties(self):
        old = self.client("it-v5-old", protocol=mqtt.MQTTv311)
        old.subscribe("it/v5/mixed")
        pub = self.client("it-v5-pub2")
        pub.client.publish("it/v5/mixed", b"hello", qos=1,
                           properties=request_properties()).wait_for_publish(WAIT)
        self.assertEqual(old.next_message().payload, b"hello")

    def test_a_retained_message_keeps_its_properties(self):
        pub = self.client("it-v5-pub3")
        pub.client.publish("it/v5/kept", b"state", qos=1, retain=True,
                           properties=request_properties()).wait_for_publish(WAIT)
        late = self.client("it-v5-late")
        late.subscribe("it/v5/kept")
        got = late.next_message()
        self.assertTrue(got.retain)
        self.assertEqual(got.properties.UserProperty, [("b", "2"), ("a", "1"), ("b", "3")])
        self.assertEqual(got.properties.ContentType, "application/json")


if __name__ == "__main__":
    harness.main()
