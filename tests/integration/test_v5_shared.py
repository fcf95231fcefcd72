#!/usr/bin/python3
"""MQTT 5.0 shared subscriptions (5.0 §4.8.2): the members of $share/<group>/<filter> get each
message exactly once between them (round robin by default, one member per publisher with
shared_subscription_policy = "publisher_hash"); every group and every non-shared subscriber gets
its own copy; no retained messages on a shared subscription; each member at its own granted QoS;
QoS 1 messages a leaving member did not acknowledge go to a remaining member."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402
from harness import broker_config  # noqa: E402


def payloads(packets):
    return [p.payload for p in packets]


class SharedSubscriptionTest(mqtt5.V5TestCase):

    def _members(self, count, shared="$share/g/it/sh", qos=1, **connect):
        members = []
        for i in range(count):
            m = self.connected5(f"it-sh-m{i}", **connect)
            self.assertEqual(m.subscribe([(shared, qos)]).reason_codes, [qos])
            members.append(m)
        return members

    def _publish(self, count, topic="it/sh", qos=1, client_id="it-sh-pub", prefix=""):
        pub = self.connected5(client_id)
        sent = [f"{prefix}{i}".encode() for i in range(count)]
        for data in sent:
            pub.publish_and_complete(topic, data, qos=qos)
        return sent

    def _drain(self, client, duration=0.5):
        """Every PUBLISH that arrives until `duration` s pass without one (acknowledged)."""
        got = []
        while True:
            try:
                got += client.receive_messages(1, timeout=duration)
            except AssertionError:
                return got

    def test_two_members_share_each_message_exactly_once_alternating(self):
        a, b = self._members(2)
        sent = self._publish(10)
        got_a, got_b = self._drain(a), self._drain(b)
        self.assertEqual(sorted(payloads(got_a) + payloads(got_b)), sorted(sent))
        # Round robin: the members take turns.
        first, second = (got_a, got_b) if payloads(got_a)[:1] == [b"0"] else (got_b, got_a)
        self.assertEqual(payloads(first), [b"0", b"2", b"4", b"6", b"8"])
        self.assertEqual(payloads(second), [b"1", b"3", b"5", b"7", b"9"])

    def test_every_group_and_every_plain_subscriber_gets_a_copy(self):
        g1 = self._members(1, shared="$share/g1/it/sh")[0]
        g2 = self.connected5("it-sh-g2")
        g2.subscribe([("$share/g2/it/sh", 1)])
        plain = self.connected5("it-sh-plain")
        plain.subscribe([("it/sh", 1)])
        sent = self._publish(4)
        for c in (g1, g2, plain):
            self.assertEqual(payloads(c.receive_messages(4)), sent)

    def test_shared_filter_with_wildcards(self):
        a, b = self._members(2, shared="$share/w/it/+/sh")
        pub = self.connected5("it-sh-pub")
        for i in range(4):
            pub.publish_and_complete(f"it/{i}/sh", b"%d" % i, qos=1)
        got = self._drain(a) + self._drain(b)
        self.assertEqual(sorted((p.topic, p.payload) for p in got),
                         [(f"it/{i}/sh", b"%d" % i) for i in range(4)])

    @harness.not_on_mosquitto("2.0.11 sends retained messages on a new shared subscription "
                              "(5.0 §3.3.1.3: only a new non-shared subscription gets them)")
    def test_retained_messages_are_not_sent_on_a_shared_subscription(self):
        # 5.0 §3.3.1.3, §4.8.2: retained messages are sent for a new non-shared subscription only.
        pub = self.connected5("it-sh-pub")
        pub.publish_and_complete("it/sh", b"retained", qos=1, retain=True)
        member = self._members(1)[0]
        member.expect_silence(0.5)
        plain = self.connected5("it-sh-plain")
        plain.subscribe([("it/sh", 1)])
        self.assertEqual(payloads(plain.receive_messages(1)), [b"retained"])

    def test_each_member_gets_its_own_granted_qos(self):
        # 5.0 [MQTT-4.8.2-3]
        q0 = self.connected5("it-sh-q0")
        q0.subscribe([("$share/q/it/sh", 0)])
        q1 = self.connected5("it-sh-q1")
        q1.subscribe([("$share/q/it/sh", 1)])
        self._publish(6, qos=1)
        got0, got1 = self._drain(q0), self._drain(q1)
        self.assertEqual(len(got0) + len(got1), 6)
        self.assertTrue(got0 and got1)
        self.assertEqual({p.qos for p in got0}, {0})
        self.assertEqual({p.qos for p in got1}, {1})

    def test_after_unsubscribe_the_remaining_member_gets_everything(self):
        a, b = self._members(2)
        a.unsubscribe(["$share/g/it/sh"])
        sent = self._publish(4)
        self.assertEqual(payloads(b.receive_messages(4)), sent)
        a.expect_silence(0.3)

    @harness.not_on_mosquitto("2.0.11 drops what the leaving member did not acknowledge "
                              "(5.0 §4.8.2 says the server should send it to another member)")
    def test_unacknowledged_messages_of_a_leaving_member_go_to_the_remaining_one(self):
        # 5.0 §4.8.2: the leaving member's session ends (Session Expiry 0), so its unacknowledged
        # QoS 1 message and the ones queued behind it go to the other member.
        leaving = self.connected5("it-sh-leaving", properties={"ReceiveMaximum": 1})
        leaving.subscribe([("$share/g/it/sh", 1)])
        staying = self.connected5("it-sh-staying")
        staying.subscribe([("$share/g/it/sh", 1)])
        sent = self._publish(6)
        held = leaving.receive_messages(1, ack=False)  # never acknowledged
        self.assertEqual(len(held), 1)
        leaving.close()
        got = staying.receive_messages(len(sent), timeout=8)
        self.assertEqual(sorted(payloads(got)), sorted(sent))
        staying.expect_silence(0.3)

    @broker_config(mqtt={"shared_subscription_policy": "publisher_hash"})
    def test_publisher_hash_sends_one_publishers_messages_to_one_member(self):
        a, b = self._members(2)
        for n in range(4):
            self._publish(6, client_id=f"it-sh-pub{n}", prefix=f"p{n}-")
        got_a, got_b = payloads(self._drain(a)), payloads(self._drain(b))
        self.assertEqual(len(got_a) + len(got_b), 24)
        for n in range(4):
            mine = [p for p in got_a if p.startswith(b"p%d-" % n)]
            theirs = [p for p in got_b if p.startswith(b"p%d-" % n)]
            self.assertTrue(not mine or not theirs,
                            f"publisher {n} went to both members: {mine} / {theirs}")
            # In publish order, wherever they went.
            self.assertEqual(mine or theirs, [b"p%d-%d" % (n, i) for i in range(6)])


if __name__ == "__main__":
    harness.main()
