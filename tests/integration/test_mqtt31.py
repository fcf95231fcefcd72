#!/usr/bin/python3
"""MQTT 3.1 clients (protocol name "MQIsdp", level 3): paho MQTTv31 and mosquitto_sub/pub
-V mqttv31 connect, subscribe and exchange messages, with each other and with 3.1.1 clients."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CONNACK, encode_connect  # noqa: E402


class Mqtt31Test(harness.BrokerTestCase):

    def test_paho_v31_publish_and_subscribe_at_every_qos(self):
        mqtt = harness.mqtt
        if mqtt is None:
            self.skipTest("paho-mqtt not installed")
        sub = self.paho("it-v31-sub", protocol=mqtt.MQTTv31)
        sub.connect()
        self.assertEqual(list(sub.subscribe("it/v31/#", 2)), [2])
        pub = self.paho("it-v31-pub", protocol=mqtt.MQTTv31)
        pub.connect()
        for qos in (0, 1, 2):
            pub.publish(f"it/v31/{qos}", f"v31 at {qos}".encode(), qos)
        got = [sub.get() for _ in range(3)]
        self.assertEqual([(m.topic, m.payload, m.qos) for m in got],
                         [(f"it/v31/{q}", f"v31 at {q}".encode(), q) for q in (0, 1, 2)])
        sub.expect_nothing(0.3)
        pub.disconnect()
        sub.disconnect()

    def test_mosquitto_clients_v31(self):
        sub = self.sub("it/v31/m", qos=1, version="mqttv31", client_id="it-v31-msub")
        self.pub("it/v31/m", "from-v31", qos=1, version="mqttv31")
        self.pub("it/v31/m", "from-v311", qos=2, version="mqttv311")
        got = sub.collect(2)
        self.assertEqual([(m.payload, m.qos) for m in got], [(b"from-v31", 1), (b"from-v311", 1)])

    def test_v311_subscriber_gets_v31_messages(self):
        sub = self.sub("it/v31/x", qos=2)
        self.pub("it/v31/x", "hello", qos=2, version="mqttv31", extra=["-i", "it-v31-mpub"])
        m = sub.get()
        self.assertEqual((m.payload, m.qos), (b"hello", 2))

    def test_raw_mqisdp_connack_has_no_session_present_flag(self):
        # 3.1's CONNACK has a reserved first byte; only 3.1.1 added session present.
        c = self.raw()
        ack = c.connect("it-v31-raw", clean_session=False, protocol_name="MQIsdp",
                        protocol_level=3)
        self.assertEqual(ack.body, b"\x00\x00")
        c.disconnect()
        c = self.raw()
        ack = c.connect("it-v31-raw", clean_session=False, protocol_name="MQIsdp",
                        protocol_level=3)
        self.assertEqual(ack.body, b"\x00\x00")
        self.assertEqual(c.subscribe([("it/v31/raw", 1)]), [1])
        self.pub("it/v31/raw", "raw", qos=1)
        self.assertEqual(c.receive_messages(1)[0].payload, b"raw")

    def test_empty_client_id_refused_in_v31(self):
        # 3.1 requires a client id of 1 to 23 characters: CONNACK 2, identifier rejected.
        c = self.raw()
        c.send(encode_connect("", clean_session=True, protocol_name="MQIsdp", protocol_level=3))
        packets = c.expect_closed()
        self.assertEqual([(p.type, p.return_code) for p in packets], [(CONNACK, 0x02)])

    def test_mqisdp_with_level_4_is_refused(self):
        # The protocol name and level go together: "MQIsdp" is level 3 only.
        c = self.raw()
        c.send(encode_connect("it-v31-l4", protocol_name="MQIsdp", protocol_level=4))
        packets = c.expect_closed()
        self.assertFalse(any(p.type == CONNACK and p.return_code == 0 for p in packets), packets)


if __name__ == "__main__":
    harness.main()
