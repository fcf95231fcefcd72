#!/usr/bin/python3
"""10,000 QoS 1 messages queued for an offline persistent session are all delivered, in order,
after it reconnects (3.1.1 §4.6: an ordered topic), through the broker's in-flight window.

The broker runs with a queue limit above 10,000 (tinymq's default is 1,000, as is mosquitto's)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import PUBACK, encode_publish  # noqa: E402

COUNT = 10_000
CHUNK = 500  # publishes sent before their PUBACKs are read


class LargeQueueTest(harness.BrokerTestCase):
    limits = {"max_queued_messages": 20_000}

    def publish_all(self) -> float:
        publisher = self.raw_connected("it-big-pub")
        start = time.monotonic()
        for base in range(0, COUNT, CHUNK):
            ids = range(base + 1, base + CHUNK + 1)  # 1..10000: all distinct, none 0
            publisher.send(b"".join(encode_publish("it/big", f"{i:05d}", 1, packet_id=i)
                                    for i in ids))
            for i in ids:
                publisher.expect(PUBACK, i, timeout=10)
        return time.monotonic() - start

    def check_in_order(self, payloads: list, first: int = 1) -> None:
        wrong = next((i for i, p in enumerate(payloads) if p != f"{i + first:05d}"), None)
        if wrong is not None:
            self.fail(f"message {wrong} out of order: {payloads[max(0, wrong - 3):wrong + 3]}")

    def test_10000_queued_qos1_messages_resent_in_order(self):
        c = self.raw_connected("it-big-queue", clean_session=False)
        self.assertEqual(c.subscribe([("it/big", 1)]), [1])
        c.disconnect()
        publish_time = self.publish_all()

        c = self.raw(timeout=10)
        self.assertTrue(c.connect("it-big-queue", clean_session=False).session_present)
        start = time.monotonic()
        got = c.receive_messages(COUNT, timeout=20)
        receive_time = time.monotonic() - start
        self.check_in_order([p.payload.decode() for p in got])
        self.assertTrue(all(p.qos == 1 and not p.dup for p in got))
        c.expect_silence(0.5)
        print(f"\n  published {COUNT} in {publish_time:.2f} s, received in {receive_time:.2f} s",
              file=sys.stderr)

    def test_in_flight_window_resent_with_dup_then_the_rest_in_order(self):
        # The subscriber is online but acknowledges nothing: the broker fills its in-flight
        # window and queues the rest. After a reconnect the window is resent (DUP, same ids),
        # then the queue follows, all in publish order.
        c = self.raw_connected("it-big-window", clean_session=False)
        self.assertEqual(c.subscribe([("it/big", 1)]), [1])
        self.publish_all()
        window = []
        while True:  # the window's size is the broker's business: read until it stops
            try:
                window.append(c.expect(harness.PUBLISH, timeout=0.5))
            except TimeoutError:
                break
            self.assertLess(len(window), COUNT)
        self.assertGreater(len(window), 0)
        self.check_in_order([p.payload.decode() for p in window])
        c.close()

        c = self.raw(timeout=10)
        self.assertTrue(c.connect("it-big-window", clean_session=False).session_present)
        got = c.receive_messages(COUNT, timeout=20)
        resent = got[:len(window)]
        self.assertEqual([(p.packet_id, p.payload, p.dup) for p in resent],
                         [(p.packet_id, p.payload, True) for p in window])
        self.assertFalse(any(p.dup for p in got[len(window):]))
        self.check_in_order([p.payload.decode() for p in got])
        c.expect_silence(0.5)


if __name__ == "__main__":
    harness.main()
