#!/usr/bin/python3
"""Shutdown with QoS 1 traffic in flight (issue #8: "shutdown with QoS 1 traffic in flight losing
nothing that was acknowledged").

  * No loss: a broker with a data directory (durability "batch", the default); a persistent
    subscriber at QoS 1 (3.1.1 clean session 0, or 5.0 with a Session Expiry Interval); a paho
    publisher sending QoS 1 messages as fast as its window allows and recording which got their
    PUBACK; SIGTERM in the middle of the stream (the harness checks exit status 0 within
    STOP_GRACE); a restart on the same data directory; the subscriber comes back with the same
    client id and session and must get every message whose PUBACK the publisher received
    (duplicates are allowed at QoS 1). Three times, with a different subscriber and a different
    moment: offline subscriber; connected subscriber that never acknowledges; 5.0 subscriber
    that acknowledges as it goes (what it got before the stop counts as delivered).
  * 50 connected clients at SIGTERM: every MQTT 5.0 client gets DISCONNECT 0x8B (Server shutting
    down) and then EOF, every MQTT 3.1.1 client just EOF; the broker exits 0 in under 5 s.

tinymq only for the no-loss part (mosquitto has no data directory here: the harness starts it
with persistence off) and for 0x8B (mosquitto 2.0.11 closes without a DISCONNECT).
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402
from harness import PUBLISH, WAIT, ConnectionClosed  # noqa: E402

TOPIC = "it/sq/stream"
# Messages a run may queue for the subscriber: far above what a run publishes.
QUEUE_LIMIT = 100_000
# Most messages the publisher has sent and not seen acknowledged (paho queues the rest itself).
WINDOW = 40


class StreamPublisher:
    """A paho 3.1.1 client publishing QoS 1 messages "<run>-<n>" on a thread of its own, as fast
    as its window allows, recording the payload of every message whose PUBACK came back."""

    def __init__(self, port: int, run: str, payload_size: int):
        self.paho = harness.PahoClient(port, f"it-sq-pub-{run}")
        self.run = run
        self.payload_size = payload_size
        self.lock = threading.Condition()
        self.sent: dict[int, bytes] = {}   # mid -> payload, for the messages not acknowledged
        self.acked: set[bytes] = set()
        self.acked_mids: set[int] = set()  # acknowledged before publish() returned its mid
        self.published = 0
        self.stopping = threading.Event()
        self.paho.client.on_publish = self._on_publish
        self.paho.client.max_inflight_messages_set(WINDOW)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_publish(self, client, userdata, mid):
        with self.lock:
            payload = self.sent.pop(mid, None)
            if payload is None:
                self.acked_mids.add(mid)
            else:
                self.acked.add(payload)
            self.lock.notify_all()

    def start(self) -> "StreamPublisher":
        self.paho.connect()
        self.thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self.stopping.is_set() and n < 60_000:
            payload = f"{self.run}-{n}".encode().ljust(self.payload_size, b".")
            with self.lock:
                # At most WINDOW unacknowledged (paho itself would queue the rest).
                if not self.lock.wait_for(lambda: len(self.sent) < WINDOW
                                          or self.stopping.is_set(), 0.2):
                    continue
                if self.stopping.is_set():
                    return
            # Not under self.lock: paho calls on_publish holding its own message lock, which
            # publish() takes too.
            info = self.paho.client.publish(TOPIC, payload, 1)
            if info.rc != harness.mqtt.MQTT_ERR_SUCCESS:
                return  # the connection is gone
            with self.lock:
                if info.mid in self.acked_mids:
                    self.acked_mids.discard(info.mid)
                    self.acked.add(payload)
                else:
                    self.sent[info.mid] = payload
                self.published += 1
            n += 1

    def wait_acked(self, count: int, timeout: float = WAIT * 2) -> None:
        with self.lock:
            if not self.lock.wait_for(lambda: len(self.acked) >= count, timeout):
                raise AssertionError(f"only {len(self.acked)} of {count} PUBACKs in {timeout} s")

    def stop(self) -> set[bytes]:
        """Stops publishing and the network thread (no reconnection to the next broker);
        returns the payloads acknowledged."""
        self.stopping.set()
        with self.lock:
            self.lock.notify_all()
        self.thread.join(WAIT)
        self.paho.stop()
        with self.lock:
            return set(self.acked)


class LiveSubscriber5:
    """A 5.0 persistent subscriber that acknowledges every message as it comes, on a thread of
    its own, until the connection ends; what it got is in `received`."""

    def __init__(self, port: int, client_id: str):
        self.client = mqtt5.Client5(port)
        self.client.connect(client_id, clean_start=True,
                            properties={"SessionExpiryInterval": 600})
        p = self.client.subscribe([(TOPIC, 1)])
        assert p.reason_codes == [1], p
        self.received: set[bytes] = set()
        self.ended_by: object = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                p = self.client.recv(timeout=30)
            except (ConnectionClosed, OSError, TimeoutError) as e:
                self.ended_by = e
                return
            if p.type == PUBLISH:
                self.received.add(p.payload)
                try:
                    self.client.puback(p.packet_id)
                except OSError as e:
                    self.ended_by = e
                    return
            else:
                self.ended_by = p
                if p.type == harness.DISCONNECT:
                    continue  # EOF follows

    def join(self) -> None:
        self.thread.join(WAIT)
        self.client.close()


@harness.not_on_mosquitto("needs tinymq's data directory (the harness runs mosquitto without "
                          "persistence)")
class NoLossOnShutdownTest(unittest.TestCase):
    limits = {"max_queued_messages": QUEUE_LIMIT, "max_queued_bytes": 1 << 30}

    def setUp(self):
        faulthandler.dump_traceback_later(harness.TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)
        self.broker = harness.Broker(self.limits, data_dir=True)  # durability: the default
        self.addCleanup(self.broker.cleanup)
        self.broker.start()
        self.addCleanup(self.stop_broker)
        self.port = self.broker.port

    def stop_broker(self):
        self.assertEqual(self.broker.stop(), [])

    def redeliver(self, make_client, acked: set[bytes], already: set[bytes],
                  client_id: str) -> set[bytes]:
        """After the restart: the subscriber's session comes back (session present) and gets
        the messages; returns every payload received, `already` included."""
        c = make_client()
        self.addCleanup(c.close)
        got = set(already)
        missing = acked - got
        deadline = time.monotonic() + 10.0
        while missing and time.monotonic() < deadline:
            try:
                p = c.recv(max(0.05, deadline - time.monotonic()))
            except TimeoutError:
                break
            self.assertEqual(p.type, PUBLISH, f"{client_id}: unexpected {p!r}")
            self.assertEqual(p.qos, 1)
            c.puback(p.packet_id)
            got.add(p.payload)
            missing.discard(p.payload)
        c.close()
        return got

    def shutdown_mid_stream(self, publisher: StreamPublisher, after_acks: int) -> set[bytes]:
        """SIGTERM once `after_acks` PUBACKs are in (the stream still running); checks the exit
        (status 0 within STOP_GRACE); returns the payloads acknowledged."""
        publisher.wait_acked(after_acks)
        self.assertTrue(publisher.thread.is_alive(), "the stream ended before the SIGTERM")
        started = time.monotonic()
        problems = self.broker.stop()
        self.assertEqual(problems, [])
        self.assertLess(time.monotonic() - started, harness.STOP_GRACE)
        acked = publisher.stop()
        self.assertGreaterEqual(len(acked), after_acks)
        return acked

    def check_no_loss(self, acked: set[bytes], got: set[bytes], run: str) -> None:
        missing = sorted(acked - got)
        self.assertEqual(missing, [], f"{run}: {len(missing)} of {len(acked)} acknowledged "
                         f"messages lost, e.g. {missing[:5]!r}")

    def test_offline_311_subscriber(self):
        sub_id = "it-sq-sub-offline"
        sub = harness.RawClient(self.port)
        sub.connect(sub_id, clean_session=False)
        self.assertEqual(sub.subscribe([(TOPIC, 1)]), [1])
        sub.disconnect()
        publisher = StreamPublisher(self.port, "offline", 32).start()
        acked = self.shutdown_mid_stream(publisher, 60)

        self.broker.restart()

        def reconnect():
            c = harness.RawClient(self.port)
            p = c.connect(sub_id, clean_session=False)
            self.assertTrue(p.session_present, "the session did not survive the restart")
            return c

        got = self.redeliver(reconnect, acked, set(), sub_id)
        self.check_no_loss(acked, got, "offline 3.1.1 subscriber")

    def test_connected_311_subscriber_that_never_acknowledges(self):
        sub_id = "it-sq-sub-slow"
        sub = harness.RawClient(self.port)
        self.addCleanup(sub.close)
        sub.connect(sub_id, clean_session=False)
        self.assertEqual(sub.subscribe([(TOPIC, 1)]), [1])
        # It reads (the kernel buffers) but never acknowledges: max_inflight in flight, the
        # rest queued.
        publisher = StreamPublisher(self.port, "slow", 200).start()
        acked = self.shutdown_mid_stream(publisher, 300)
        sub.close()

        self.broker.restart()

        def reconnect():
            c = harness.RawClient(self.port)
            p = c.connect(sub_id, clean_session=False)
            self.assertTrue(p.session_present, "the session did not survive the restart")
            return c

        got = self.redeliver(reconnect, acked, set(), sub_id)
        self.check_no_loss(acked, got, "connected 3.1.1 subscriber without acknowledgements")

    def test_live_50_subscriber_with_session_expiry(self):
        sub_id = "it-sq-sub-live5"
        live = LiveSubscriber5(self.port, sub_id)
        self.addCleanup(live.client.close)
        publisher = StreamPublisher(self.port, "live", 8).start()
        acked = self.shutdown_mid_stream(publisher, 700)
        live.join()
        self.assertTrue(live.received, "the live subscriber got nothing before the stop")

        self.broker.restart()

        def reconnect():
            c = mqtt5.Client5(self.port)
            p = c.connect(sub_id, clean_start=False,
                          properties={"SessionExpiryInterval": 600})
            self.assertTrue(p.session_present, "the session did not survive the restart")
            return c

        got = self.redeliver(reconnect, acked, live.received, sub_id)
        self.check_no_loss(acked, got, "live 5.0 subscriber")


class ConnectedClientsOnShutdownTest(harness.BrokerTestCase):

    def test_50_clients_v5_get_disconnect_0x8b_v311_get_eof(self):
        v5 = []
        v311 = []
        for i in range(25):
            c = mqtt5.Client5(self.port)
            self.addCleanup(c.close)
            c.connect(f"it-sq-v5-{i}", properties={"SessionExpiryInterval": 60} if i % 2 else None)
            v5.append(c)
            r = self.raw()
            r.connect(f"it-sq-v311-{i}", clean_session=bool(i % 2))
            v311.append(r)
        # Some of them busy: subscribed, with messages in flight to them.
        for c in v5[:5]:
            c.subscribe([("it/sq/busy/#", 1)])
        publisher = self.raw_connected("it-sq-busy-pub")
        for n in range(10):
            publisher.publish_and_complete(f"it/sq/busy/{n}", b"x" * 100, 1)
        paho5 = mqtt5.Paho5(self.port, "it-sq-paho5")
        self.addCleanup(paho5.stop)
        paho5.connect()

        started = time.monotonic()
        problems = self.broker.stop()
        elapsed = time.monotonic() - started
        self.assertEqual(problems, [])
        self.assertLess(elapsed, 5.0, "SIGTERM to exit with 50 clients")

        if harness.is_mosquitto():
            for c in v5:
                c.expect_closed(WAIT)  # mosquitto 2.0.11 sends no DISCONNECT on shutdown
        else:
            for i, c in enumerate(v5):
                p = c.expect_disconnect(0x8B, skip=(PUBLISH,))
                self.assertEqual(p.reason_code, 0x8B, f"client {i}")
            self.assertTrue(paho5.disconnected.wait(WAIT), "paho 5.0 saw no disconnect")
            self.assertEqual(paho5.disconnect_rc, 0x8B, "paho 5.0 on_disconnect reason code")
        for i, r in enumerate(v311):
            self.assertEqual(r.expect_closed(WAIT), [], f"3.1.1 client {i}: packets before EOF")
        paho5.stop()


if __name__ == "__main__":
    harness.main()
