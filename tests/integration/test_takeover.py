#!/usr/bin/python3
"""Client take-over (3.1.1 §3.1.4, [MQTT-3.1.4-2]): a second connection with a client id already
connected makes the server close the first; the session goes with the id (clean session 0) or is
discarded (clean session 1)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class TakeoverTest(harness.BrokerTestCase):

    def test_second_connection_closes_the_first(self):
        first = self.raw_connected("it-same-id")
        second = self.raw()
        ack = second.connect("it-same-id")
        self.assertFalse(ack.session_present)
        self.assertEqual(first.expect_closed(), [])
        # The new connection works.
        self.assertEqual(second.subscribe([("it/take", 1)]), [1])
        self.pub("it/take", "mine", qos=1)
        got = second.receive_messages(1)
        self.assertEqual(got[0].payload, b"mine")

    def test_takeover_keeps_a_persistent_session(self):
        first = self.raw_connected("it-take-persist", clean_session=False)
        self.assertEqual(first.subscribe([("it/take/p", 1)]), [1])
        second = self.raw()
        ack = second.connect("it-take-persist", clean_session=False)
        self.assertTrue(ack.session_present)
        first.expect_closed()
        self.pub("it/take/p", "for-the-session", qos=1)
        got = second.receive_messages(1)
        self.assertEqual((got[0].topic, got[0].payload), ("it/take/p", b"for-the-session"))

    def test_takeover_resends_what_the_first_connection_left_unacknowledged(self):
        first = self.raw_connected("it-take-inflight", clean_session=False)
        self.assertEqual(first.subscribe([("it/take/i", 1)]), [1])
        self.pub("it/take/i", "unacked", qos=1)
        original = first.receive_messages(1, ack=False)[0]
        second = self.raw()
        self.assertTrue(second.connect("it-take-inflight", clean_session=False).session_present)
        first.expect_closed()
        again = second.receive_messages(1)[0]
        self.assertEqual((again.payload, again.packet_id, again.dup),
                         (b"unacked", original.packet_id, True))
        second.expect_silence(0.3)

    def test_takeover_with_clean_session_discards_the_session(self):
        first = self.raw_connected("it-take-clean", clean_session=False)
        self.assertEqual(first.subscribe([("it/take/c", 1)]), [1])
        second = self.raw()
        ack = second.connect("it-take-clean", clean_session=True)
        self.assertFalse(ack.session_present)  # [MQTT-3.2.2-1]
        first.expect_closed()
        self.pub("it/take/c", "nobody", qos=1)
        second.expect_silence(0.5)

    def test_takeover_by_mosquitto_sub_then_old_client_is_gone(self):
        first = self.raw_connected("it-take-sub")
        sub = self.sub("it/take/s", qos=1, client_id="it-take-sub")
        first.expect_closed()
        self.pub("it/take/s", "to-sub", qos=1)
        self.assertEqual(sub.get().payload, b"to-sub")


if __name__ == "__main__":
    harness.main()
