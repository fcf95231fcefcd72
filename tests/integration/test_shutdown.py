#!/usr/bin/python3
"""Stopping the broker with SIGTERM while clients are connected, with messages in flight in both
directions: it closes every connection and exits 0 within the grace period, with no sanitizer
report (the harness checks the exit status and stderr of every broker it stops)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import PUBREC, encode_publish  # noqa: E402


class ShutdownTest(harness.BrokerTestCase):

    def test_sigterm_with_busy_connections(self):
        subscribers = []
        for i in range(20):
            c = self.raw_connected(f"it-stop-sub-{i}", clean_session=bool(i % 2))
            c.subscribe([("it/stop/#", 2)])
            subscribers.append(c)
        publisher = self.raw_connected("it-stop-pub")
        for i in range(30):
            publisher.publish_and_complete(f"it/stop/{i}", f"m{i}", i % 3)
        # An inbound QoS 2 message left at PUBREC, and a half-sent packet.
        publisher.send(encode_publish("it/stop/x", b"half", 2, packet_id=99))
        publisher.expect(PUBREC, 99)
        publisher.send(encode_publish("it/stop/y", b"partial", 1, packet_id=100)[:6])
        idle = self.raw()  # connected at TCP level only, no CONNECT
        for c in subscribers[:5]:
            c.receive_messages(3, ack=False)  # some read, none acknowledged
        time.sleep(0.2)

        start = time.monotonic()
        problems = self.broker.stop()
        self.assertEqual(problems, [])
        self.assertLess(time.monotonic() - start, harness.STOP_GRACE)
        for c in subscribers + [publisher, idle]:
            c.expect_closed(timeout=2.0)  # whatever was still buffered, then EOF


if __name__ == "__main__":
    harness.main()
