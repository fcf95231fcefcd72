#!/usr/bin/python3
"""Several worker threads (`workers = 4`, docs/configuration.md): each worker has its own epoll
loop and listening sockets (SO_REUSEPORT), so the clients of one test land on different workers,
and everything MQTT promises must hold across them:

* a message reaches every subscriber whatever worker its publisher and the subscriber are on, in
  each publisher's order, once;
* a client id taken over by a new connection on another worker closes the old connection (5.0:
  DISCONNECT 0x8E) and keeps the session, its subscriptions included;
* a persistent session's queue follows the client to the worker of its next connection;
* a shared subscription's members on different workers get each message exactly once between them;
* retained messages set through one worker are sent to new subscribers on every worker;
* a will is published when its client's connection is lost, to subscribers on any worker;
* a client that writes CONNECT, PUBLISH and DISCONNECT at once and closes is heard, whatever
  worker accepted it.

The kernel picks the worker of each connection, so a single pair of connections may share one;
the tests use many connections so that crossing workers is all but certain.

mosquitto has no `workers` setting: the class is skipped with BROKER=mosquitto. These tests also
run against the ThreadSanitizer build (`make tsan`; scripts/run-tests.sh), so the bounds leave
room for a binary several times slower than the ASan one.
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402
from harness import PUBLISH  # noqa: E402

WORKERS = 4
# Bound for collecting a test's messages: generous, for the TSan build on a 2-core CI machine,
# and well inside harness.TEST_TIMEOUT.
COLLECT = 15.0


def run_concurrently(functions, timeout: float = COLLECT + 5) -> list:
    """Runs each function on its own thread; returns their results in order. Re-raises the first
    exception; fails if a thread is still running after `timeout` s."""
    results: list = [None] * len(functions)
    errors: list = []

    def run(i, function):
        try:
            results[i] = function()
        except BaseException as e:  # reported to the test's thread below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, f), daemon=True)
               for i, f in enumerate(functions)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    if any(t.is_alive() for t in threads):
        raise AssertionError(f"threads still running after {timeout} s")
    return results


@harness.not_on_mosquitto("has no `workers` setting")
class WorkersTest(mqtt5.V5TestCase):

    workers = WORKERS

    def test_every_subscriber_gets_every_message_in_publisher_order(self):
        subscribers = []
        for i in range(12):
            s = self.raw_connected(f"it-w-sub{i}")
            self.assertEqual(s.subscribe([("w/#", 1)]), [1])
            subscribers.append(s)
        publishers = [self.raw_connected(f"it-w-pub{n}") for n in range(3)]
        per_publisher = 50

        def publish(n):
            for i in range(per_publisher):
                publishers[n].publish_and_complete(f"w/{n}", f"{n}-{i}", qos=1)

        def receive(s):
            return s.receive_messages(3 * per_publisher, timeout=COLLECT)

        got = run_concurrently([lambda n=n: publish(n) for n in range(3)]
                               + [lambda s=s: receive(s) for s in subscribers])[3:]
        for i, (s, messages) in enumerate(zip(subscribers, got)):
            for n in range(3):
                self.assertEqual([p.payload.decode() for p in messages if p.topic == f"w/{n}"],
                                 [f"{n}-{k}" for k in range(per_publisher)],
                                 f"subscriber {i}, publisher {n}")
            self.assertEqual({p.qos for p in messages}, {1})
            s.expect_silence(0.3)  # no duplicate after the 150

    def test_takeover_311_across_workers_keeps_the_session(self):
        client_id = "it-w-take311"
        first = self.raw()
        self.assertFalse(first.connect(client_id, clean_session=False).session_present)
        self.assertEqual(first.subscribe([("w/take311", 1)]), [1])
        previous = first
        for i in range(15):
            c = self.raw()
            ack = c.connect(client_id, clean_session=False)
            self.assertTrue(ack.session_present, f"connection {i + 2}")
            # 3.1.1 has no DISCONNECT from the server: the old connection is just closed.
            self.assertEqual(previous.expect_closed(), [], f"connection {i + 1}")
            previous = c
        publisher = self.raw_connected("it-w-take311-pub")
        publisher.publish_and_complete("w/take311", "after-16", qos=1)
        got = previous.receive_messages(1)
        self.assertEqual((got[0].topic, got[0].payload), ("w/take311", b"after-16"))
        previous.expect_silence(0.3)

    def test_takeover_v5_across_workers_sends_0x8e_and_keeps_the_session(self):
        client_id = "it-w-take5"
        expiry = {"SessionExpiryInterval": 300}
        first = self.client5()
        ack = first.connect(client_id, clean_start=True, properties=expiry)
        self.assertFalse(ack.session_present)
        self.assertEqual(first.subscribe([("w/take5", 1)]).reason_codes, [1])
        previous = first
        for i in range(15):
            c = self.client5()
            ack = c.connect(client_id, clean_start=False, properties=expiry)
            self.assertTrue(ack.session_present, f"connection {i + 2}")
            previous.expect_disconnect(mqtt5.SESSION_TAKEN_OVER)
            previous = c
        publisher = self.connected5("it-w-take5-pub")
        publisher.publish_and_complete("w/take5", "after-16", qos=1)
        got = previous.receive_messages(1)
        self.assertEqual((got[0].topic, got[0].payload), ("w/take5", b"after-16"))
        previous.expect_silence(0.3)

    def test_persistent_session_queue_follows_the_client(self):
        client_id = "it-w-queue"
        c = self.raw_connected(client_id, clean_session=False)
        self.assertEqual(c.subscribe([("w/queue", 1)]), [1])
        publisher = self.raw_connected("it-w-queue-pub")
        # Three rounds, so that at least one reconnection is all but sure to land on another
        # worker than the connection before it.
        for round_ in range(3):
            c.disconnect()
            sent = [f"r{round_}-{i}" for i in range(100)]
            for payload in sent:
                publisher.publish_and_complete("w/queue", payload, qos=1)
            c = self.raw()
            self.assertTrue(c.connect(client_id, clean_session=False).session_present,
                            f"round {round_}")
            got = c.receive_messages(len(sent), timeout=COLLECT)
            self.assertEqual([p.payload.decode() for p in got], sent, f"round {round_}")
            c.expect_silence(0.3)

    def test_shared_subscription_members_on_several_workers_share_each_message_once(self):
        members = []
        for i in range(8):
            m = self.connected5(f"it-w-sh{i}")
            self.assertEqual(m.subscribe([("$share/g/s/#", 1)]).reason_codes, [1])
            members.append(m)
        publishers = [self.connected5(f"it-w-shpub{n}") for n in range(2)]
        per_publisher = 200
        sent = {f"{n}-{i}" for n in range(2) for i in range(per_publisher)}
        done = threading.Event()
        received: list[list[str]] = [[] for _ in members]

        def publish(n):
            for i in range(per_publisher):
                publishers[n].publish_and_complete(f"s/{n}", f"{n}-{i}", qos=1)

        errors: list = []

        def receive(k):
            m = members[k]
            try:
                while not done.is_set():
                    try:
                        p = m.recv(0.1)
                    except TimeoutError:
                        continue
                    if p.type != PUBLISH:
                        raise AssertionError(f"member {k}: unexpected packet {p!r}")
                    received[k].append(p.payload.decode())
                    if p.qos == 1:
                        m.puback(p.packet_id)
            except BaseException as e:  # reported to the test's thread below
                errors.append(e)
                done.set()

        receivers = [threading.Thread(target=receive, args=(k,), daemon=True)
                     for k in range(len(members))]
        for t in receivers:
            t.start()
        try:
            run_concurrently([lambda n=n: publish(n) for n in range(2)])
            harness.wait_until(lambda: done.is_set() or sum(map(len, received)) >= len(sent),
                               timeout=COLLECT)
            time.sleep(0.5)  # room for a duplicate to show up
        finally:
            done.set()
            for t in receivers:
                t.join(harness.WAIT)
        if errors:
            raise errors[0]
        self.assertFalse(any(t.is_alive() for t in receivers))
        everything = [payload for r in received for payload in r]
        self.assertEqual(len(everything), len(sent),
                         f"per member: {[len(r) for r in received]}")
        self.assertEqual(len(set(everything)), len(everything), "a message went to two members")
        self.assertEqual(set(everything), sent)
        self.assertGreater(sum(1 for r in received if r), 1, "one member got every message")

    def test_retained_messages_reach_new_subscribers_on_every_worker(self):
        publisher = self.raw_connected("it-w-retain-pub")
        topics = [f"r/{i}" for i in range(20)]
        for t in topics:
            publisher.publish_and_complete(t, f"kept-{t}", qos=1, retain=True)
        for i in range(10):
            s = self.raw_connected(f"it-w-retain{i}")
            self.assertEqual(s.subscribe([("r/#", 1)]), [1])
            got = s.receive_messages(len(topics))
            self.assertEqual(sorted((p.topic, p.payload.decode()) for p in got),
                             sorted((t, f"kept-{t}") for t in topics), f"subscriber {i}")
            self.assertTrue(all(p.retain for p in got), f"subscriber {i}")
            s.expect_silence(0.2)
            s.disconnect()

    def test_will_of_a_lost_connection_reaches_a_subscriber_on_another_worker(self):
        # Several will clients, so that some are on another worker than the subscriber.
        wills = []
        for i in range(8):
            w = self.raw()
            w.connect(f"it-w-will{i}", will=("w/will", f"gone-{i}", 1, False))
            wills.append(w)
        watcher = self.raw_connected("it-w-will-watcher")
        self.assertEqual(watcher.subscribe([("w/will", 1)]), [1])
        for w in wills:
            w.abort()
        got = watcher.receive_messages(len(wills), timeout=COLLECT)
        self.assertEqual(sorted(p.payload.decode() for p in got),
                         sorted(f"gone-{i}" for i in range(len(wills))))
        watcher.expect_silence(0.3)

    def test_a_client_that_sends_everything_and_closes_at_once_is_heard(self):
        # CONNECT, PUBLISH and DISCONNECT in one write, then the socket is closed: when the client
        # id belongs to another worker, the accepting worker may read the end of the stream in
        # the same turn as the CONNECT, and must still hand the connection over with its bytes
        # (its home worker reads the PUBLISH, then the end itself).
        watcher = self.raw_connected("it-w-burst-watcher")
        self.assertEqual(watcher.subscribe([("w/burst", 0)]), [0])
        count = 40
        for i in range(count):
            data = (harness.encode_connect(f"it-w-burst{i}")
                    + harness.encode_publish("w/burst", f"burst-{i}".encode())
                    + harness.encode_disconnect())
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                # Drain what the broker answers (the CONNACK) until it closes too.
                sock.settimeout(5)
                while sock.recv(4096):
                    pass
        got = watcher.receive_messages(count, timeout=COLLECT)
        self.assertEqual(sorted(p.payload.decode() for p in got),
                         sorted(f"burst-{i}" for i in range(count)))
        watcher.expect_silence(0.3)


if __name__ == "__main__":
    harness.main()
