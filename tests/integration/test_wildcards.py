#!/usr/bin/python3
"""Topic wildcards (3.1.1 §4.7.1): `+` matches exactly one level (an empty one too), `#` any number
of levels including the parent ("sport/#" matches "sport": the example of §4.7.1.2).

One raw subscriber per filter; one publisher sends every topic at QoS 1, then one sentinel per
filter (told apart by its payload). Messages from one publisher arrive in order, so once a
subscriber has its sentinel it has everything it will ever get; what it got must be exactly the
expected set (written out by hand here, not computed, so the test does not share a matcher's
mistakes)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TOPICS = ["sport", "sport/", "sport/tennis", "sport/tennis/player1",
          "sport/tennis/player1/ranking", "sports", "/finance", "finance", "a/b/c", "a//c"]

# filter -> (topics of TOPICS it matches, a sentinel topic it matches)
CASES = {
    "sport/#": ({"sport", "sport/", "sport/tennis", "sport/tennis/player1",
                 "sport/tennis/player1/ranking"}, "sport/end"),
    "sport/tennis/+": ({"sport/tennis/player1"}, "sport/tennis/end"),
    "sport/+": ({"sport/", "sport/tennis"}, "sport/end"),
    "sport/tennis/player1/#": ({"sport/tennis/player1", "sport/tennis/player1/ranking"},
                               "sport/tennis/player1/end"),
    "+": ({"sport", "sports", "finance"}, "end"),
    "+/+": ({"sport/", "sport/tennis", "/finance"}, "end/end"),
    "/+": ({"/finance"}, "/end"),
    "+/tennis/#": ({"sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking"},
                   "x/tennis/end"),
    "#": (set(TOPICS), "end"),
    "a/+/c": ({"a/b/c", "a//c"}, "a/end/c"),
    "+/+/+": ({"sport/tennis/player1", "a/b/c", "a//c"}, "end/end/end"),
    "sport": ({"sport"}, "sport"),
    "sport/tennis/#": ({"sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking"},
                       "sport/tennis/end"),
}
SENTINELS = {sentinel for _, sentinel in CASES.values()}


class WildcardTest(harness.BrokerTestCase):

    def test_filters_match_exactly_the_expected_topics(self):
        subscribers = {}
        for i, topic_filter in enumerate(CASES):
            c = self.raw_connected(f"it-wild-{i}")
            self.assertEqual(c.subscribe([(topic_filter, 1)]), [1])
            subscribers[topic_filter] = c
        publisher = self.raw_connected("it-wild-pub")
        for topic in TOPICS:
            publisher.publish_and_complete(topic, f"payload of {topic}", 1)
        for sentinel in sorted(SENTINELS):
            publisher.publish_and_complete(sentinel, "sentinel", 1)

        for topic_filter, (expected, sentinel) in CASES.items():
            with self.subTest(filter=topic_filter):
                got = subscribers[topic_filter].receive_until(
                    lambda p, s=sentinel: p.topic == s and p.payload == b"sentinel")
                received = [p.topic for p in got if p.payload != b"sentinel"]
                self.assertEqual(sorted(received), sorted(expected))
                self.assertEqual(len(received), len(set(received)), "a topic arrived twice")
                for p in got:
                    if p.payload != b"sentinel":
                        self.assertEqual(p.payload, f"payload of {p.topic}".encode())

    def test_wildcard_subscription_with_mosquitto_clients(self):
        sub = self.sub(["it/+/temp", "it/house/#"], qos=1)
        self.pub("it/kitchen/temp", "21", qos=1)
        self.pub("it/house", "parent", qos=1)
        self.pub("it/house/a/b", "deep", qos=1)
        self.pub("it/kitchen/humidity", "no", qos=1)
        self.pub("it/kitchen/temp/x", "no", qos=1)
        self.pub("it/end/temp", "end", qos=1)
        got = sub.collect(4)
        self.assertEqual([(m.topic, m.payload) for m in got],
                         [("it/kitchen/temp", b"21"), ("it/house", b"parent"),
                          ("it/house/a/b", b"deep"), ("it/end/temp", b"end")])
        sub.expect_nothing(0.3)

    def test_invalid_filters_are_refused(self):
        # §4.7.1: `#` only last and alone in its level, `+` alone in its level; §4.7.3: not
        # empty. 3.1.1 lets the server refuse with SUBACK 0x80 (tinymq) or treat it as a
        # protocol violation and close (mosquitto). Either way nothing is subscribed.
        for bad in ("it/#/x", "it/a+", "it/#a", ""):
            with self.subTest(filter=bad):
                c = self.raw_connected("it-wild-bad")
                c.send(harness.encode_subscribe(1, [("it/good", 1), (bad, 1)]))
                try:
                    p = c.recv()
                except harness.ConnectionClosed:
                    continue  # closed: fine
                self.assertEqual((p.type, p.packet_id, p.return_codes),
                                 (harness.SUBACK, 1, [1, 0x80]))
                self.pub("it/good", "good", qos=1)  # the valid entry of the same SUBSCRIBE works
                self.assertEqual(c.receive_messages(1)[0].payload, b"good")
                c.disconnect()


if __name__ == "__main__":
    harness.main()
