#!/usr/bin/python3
"""Keep-alive (3.1.1 §3.1.2.10, [MQTT-3.1.2-24]): a client silent for one and a half times its
keep-alive is disconnected, and its will is published; PINGREQ keeps it alive; 0 turns it off."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class KeepAliveTest(harness.BrokerTestCase):

    def test_silent_client_is_closed_and_its_will_published(self):
        watcher = self.raw_connected("it-ka-watcher")
        watcher.subscribe([("it/ka/will", 1)])
        client = self.raw()
        client.connect("it-ka-silent", keepalive=1, will=("it/ka/will", b"timed-out", 1, False))
        start = time.monotonic()
        # Mosquitto 2.0.11 deviates: it checks keep-alives on a coarse timer and closes this
        # client after about 5 s instead of 1.5 s. Only the timing bound is relaxed for it.
        latest = 8.0 if harness.is_mosquitto() else 3.0
        self.assertEqual(client.expect_closed(timeout=latest), [])
        elapsed = time.monotonic() - start
        # [MQTT-3.1.2-24]: the deadline is 1.5 x the keep-alive; not before it, not long after.
        self.assertGreaterEqual(elapsed, 1.4)
        self.assertLessEqual(elapsed, latest)
        got = watcher.receive_messages(1)
        self.assertEqual((got[0].topic, got[0].payload), ("it/ka/will", b"timed-out"))

    def test_pingreq_keeps_the_connection_alive(self):
        client = self.raw()
        client.connect("it-ka-ping", keepalive=1)
        for _ in range(6):  # 3 s: twice the deadline
            time.sleep(0.5)
            client.pingreq()
            client.expect(harness.PINGRESP, timeout=1.0)
        self.assertTrue(client.is_open(0.1))

    def test_other_traffic_keeps_the_connection_alive(self):
        client = self.raw()
        client.connect("it-ka-traffic", keepalive=1)
        for i in range(6):
            time.sleep(0.5)
            client.publish_and_complete("it/ka/traffic", f"{i}", 1)
        self.assertTrue(client.is_open(0.1))

    def test_keepalive_zero_never_times_out(self):
        client = self.raw()
        client.connect("it-ka-zero", keepalive=0)
        self.assertTrue(client.is_open(2.5))
        client.pingreq()
        client.expect(harness.PINGRESP)


if __name__ == "__main__":
    harness.main()
