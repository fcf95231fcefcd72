#!/usr/bin/python3
"""Retained messages (3.1.1 §3.3.1.3): set, replace, delete with an empty payload; delivered to a
later subscriber with the RETAIN flag, to an established one without it; `#` and `+` do not match
topics that start with `$` (§4.7.2, [MQTT-4.7.2-1])."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class RetainedTest(harness.BrokerTestCase):

    def test_set_replace_delete(self):
        self.pub("it/ret", "v1", qos=1, retain=True)
        sub = self.sub("it/ret", qos=1)
        m = sub.get()
        self.assertEqual((m.topic, m.payload, m.retain, m.qos), ("it/ret", b"v1", True, 1))
        sub.stop()

        self.pub("it/ret", "v2", qos=1, retain=True)  # replaces v1 [MQTT-3.3.1-5]
        sub = self.sub("it/ret", qos=1)
        m = sub.get()
        self.assertEqual((m.payload, m.retain), (b"v2", True))
        sub.expect_nothing(0.3)  # only the latest value is kept
        sub.stop()

        self.pub("it/ret", qos=1, retain=True, null_message=True)  # deletes [MQTT-3.3.1-10]
        sub = self.sub("it/ret", qos=1)
        sub.expect_nothing(0.5)
        self.pub("it/ret", "live", qos=1)  # the subscription works: it just had nothing retained
        m = sub.get()
        self.assertEqual((m.payload, m.retain), (b"live", False))

    def test_established_subscriber_gets_retain_flag_0(self):
        # [MQTT-3.3.1-9]: a message sent because it matches an established subscription has
        # RETAIN 0, however it was published; the empty deleting message is delivered too.
        sub = self.sub("it/live", qos=1)
        self.pub("it/live", "kept", qos=1, retain=True)
        self.pub("it/live", qos=1, retain=True, null_message=True)
        got = sub.collect(2)
        self.assertEqual([(m.payload, m.retain) for m in got], [(b"kept", False), (b"", False)])

    def test_retained_qos_is_lower_of_publish_and_subscription(self):
        self.pub("it/rq/1", "at-1", qos=1, retain=True)
        self.pub("it/rq/2", "at-2", qos=2, retain=True)
        self.pub("it/rq/0", "at-0", qos=0, retain=True)
        c = self.raw_connected("it-rq")
        c.subscribe([("it/rq/1", 2), ("it/rq/2", 1), ("it/rq/0", 2)])
        got = {p.topic: p for p in c.receive_messages(3)}
        self.assertEqual({t: (p.payload, p.qos, p.retain) for t, p in got.items()},
                         {"it/rq/1": (b"at-1", 1, True), "it/rq/2": (b"at-2", 1, True),
                          "it/rq/0": (b"at-0", 0, True)})

    def test_wildcard_subscription_gets_every_matching_retained_message(self):
        for topic in ("it/w/a", "it/w/b", "it/w/a/deep", "it/other"):
            self.pub(topic, topic, qos=1, retain=True)
        sub = self.sub("it/w/+", qos=1)
        got = sub.collect(2)
        self.assertEqual(sorted(m.topic for m in got), ["it/w/a", "it/w/b"])
        self.assertTrue(all(m.retain and m.payload == m.topic.encode() for m in got))
        sub.expect_nothing(0.3)
        sub.stop()
        sub = self.sub("it/w/#", qos=1)
        got = sub.collect(3)
        self.assertEqual(sorted(m.topic for m in got), ["it/w/a", "it/w/a/deep", "it/w/b"])
        sub.expect_nothing(0.3)

    def test_hash_does_not_match_dollar_topics(self):
        self.pub("$it/ret", "dollar-retained", qos=1, retain=True)
        everything = self.sub("#", qos=1)
        plus = self.sub("+/ret", qos=1)
        dollar = self.sub("$it/#", qos=1)
        m = dollar.get()  # the retained one: `$it/#` does match it
        self.assertEqual((m.topic, m.payload, m.retain), ("$it/ret", b"dollar-retained", True))

        self.pub("$it/ret", "dollar-live", qos=1)
        self.pub("it/ret", "plain", qos=1)  # a sentinel every subscription matches but `$it/#`
        m = dollar.get()
        self.assertEqual((m.topic, m.payload), ("$it/ret", b"dollar-live"))
        for sub in (everything, plus):
            m = sub.get()
            self.assertEqual((m.topic, m.payload, m.retain), ("it/ret", b"plain", False))
            sub.expect_nothing(0.3)


if __name__ == "__main__":
    harness.main()
