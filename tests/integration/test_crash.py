#!/usr/bin/python3
"""Crash drills (issue #6, docs/configuration.md "Persistence"): tinymq with a data directory is
killed with SIGKILL at random moments while clients publish, and restarted on the same data
directory and port. Whatever it acknowledged must survive:

* every QoS 1 message whose PUBACK and every QoS 2 message whose PUBCOMP the publisher received
  reaches the persistent subscriber (QoS 1 at least once: duplicates are counted and printed;
  QoS 2 exactly once);
* the subscriber's session and subscription survive (session present = 1 after every restart;
  a message published after the last restart arrives without the subscriber subscribing again);
* a retained message set before the first crash is still retained after the last restart.

Clients: paho-mqtt (MQTT 3.1.1, Clean Session 0, fixed client ids). A QoS 1 publisher (`q1`) and
a QoS 2 publisher (`q2`) each publish numbered messages (`<name>:<seq>` on `crash/<name>`) as fast
as their window of WINDOW unacknowledged messages allows; paho's own network thread reconnects
them. A message counts as acknowledged when paho marks it published (on_publish: PUBACK for QoS 1,
PUBCOMP for QoS 2).

paho 1.6.1 keeps its unacknowledged messages in the Client object across reconnects and resends
them after the CONNACK (QoS 1 PUBLISH with DUP; QoS 2 PUBLISH with DUP, or PUBREL when the PUBREC
had come), and keeps incoming QoS 2 ids across reconnects (Clean Session 0): the exactly-once check
relies on both (client.py: _messages_reconnect_reset_out / _in, _handle_connack). With one bug: a
reconnect that takes more than one attempt (as here, while the broker restarts) turns a QoS 2
message whose PUBREL was sent back into a PUBLISH with DUP 0, a new message to the broker; the
drills replace that one method with a fixed copy (_messages_reconnect_reset_out_fixed;
CRASH_PAHO_FIX=0 shows paho's own behaviour: QoS 2 duplicates).

Two drills: the subscriber online during the crashes (it reconnects with paho's reconnect and
never subscribes again), and the subscriber offline during the crashes (it subscribes,
disconnects, and comes back after the last restart). Each runs once, with durability batch or
always and 1 or 2 workers. test_qos2_in_flight_at_the_kill_2_workers is a smaller drill with the
raw client: QoS 2 PUBLISHes in flight at the kill, resent after the restart.

Settings (environment): CRASH_SEED (the random kill moments; printed by every drill, so a failure
can be replayed), CRASH_KILLS (kills per drill, default 5), CRASH_RAW_TRIALS (default 4). tinymq
only (mosquitto keeps nothing across a SIGKILL: skipped). Each drill prints one SUMMARY line; a
lost or duplicated QoS 2 message is reported with paho's log of its packet id and the broker
process ("epoch": 0 before the first kill, k after the k-th restart) of each step.
"""

from __future__ import annotations

import collections
import faulthandler
import os
import random
import sys
import threading
import time
import types
import unittest
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import mqtt  # noqa: E402

KILLS = int(os.environ.get("CRASH_KILLS", "5"))
SEED = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1, 2**31))
# Random time between a restart (all clients back) and the next SIGKILL, seconds.
KILL_DELAY = (0.2, 1.5)
# Unacknowledged messages a publisher keeps in flight (paho's default max_inflight is 20).
WINDOW = 20
# How long clients may take to reconnect after a restart.
RECONNECT = 15.0
# After the last restart, the publishers go on this long, then stop publishing new messages.
TAIL = 0.5
# Draining: until the publishers have no unacknowledged message and the subscriber has had no
# new message for QUIET s, at most DRAIN s.
QUIET = 3.0
DRAIN = 45.0
# Bound for one test method (its dump-and-exit timer).
METHOD_TIMEOUT = 150.0
# Replace paho's _messages_reconnect_reset_out by the fixed copy below (CRASH_PAHO_FIX=0: do not,
# to see paho's own behaviour).
PAHO_RESET_FIX = os.environ.get("CRASH_PAHO_FIX", "1") != "0"
# The raw QoS 2 test: trials, and the choice of delays between the PUBLISHes and the kill.
RAW_TRIALS = int(os.environ.get("CRASH_RAW_TRIALS", "4"))
RAW_KILL_AFTER = (0.0, 0.001, 0.002, 0.005, 0.02)
# Queues large enough that nothing a drill publishes is dropped for want of room.
LIMITS = {"max_queued_messages": 10_000_000, "max_queued_bytes": 1_000_000_000}

# Client ids. tinymq keeps a session on worker HomeAmong(id) = std::hash<std::string_view>(id) %
# workers; with libstdc++ (what tinymq links) and 2 workers, SUB_ID's session is on worker 1 and
# the publishers' on worker 0, so that every message crosses workers in the 2-worker drills (the
# 1-worker drills cover the routing within one worker). Another standard library may hash them
# differently: the drills still run, with less crossing.
SUB_ID = "crash-sub-a"
PUBLISHER_IDS = {"q1": "crash-q1", "q2": "crash-q2"}
RAW_SUB_ID, RAW_PUB_ID = "sub", "pub"  # worker 1 and worker 0 likewise

SUB_TOPIC = "crash/#"
RETAINED_TOPIC = "retained/crash-drill"


def _messages_reconnect_reset_out_fixed(self) -> None:
    """paho 1.6.1's Client._messages_reconnect_reset_out with one fix: a QoS 2 message whose
    PUBREL was sent stays "resend PUBREL" however many times it runs.

    paho calls it on every reconnect attempt, failed ones included. The original turns
    wait-for-PUBCOMP into resend-PUBREL on the first call, and on the next call (after a refused
    attempt: the broker is still down) the else branch turns resend-PUBREL into a plain
    PUBLISH with DUP 0: after the CONNACK paho publishes the message again under the same
    packet id although it had sent the PUBREL (3.1.1 §4.3.3 [MQTT-4.3.3-1]: the sender MUST NOT re-send
    the PUBLISH once it has sent the PUBREL). A broker that had handled the PUBREL rightly takes it
    for a new message: a duplicate this test would blame on the broker."""
    with self._out_message_mutex:
        self._inflight_messages = 0
        for m in self._out_messages.values():
            m.timestamp = 0
            if (self._max_inflight_messages == 0
                    or self._inflight_messages < self._max_inflight_messages):
                if m.qos == 0:
                    m.state = mqtt.mqtt_ms_publish
                elif m.qos == 1:
                    if m.state == mqtt.mqtt_ms_wait_for_puback:
                        m.dup = True
                    m.state = mqtt.mqtt_ms_publish
                elif m.qos == 2:
                    if self._check_clean_session():
                        if m.state != mqtt.mqtt_ms_publish:
                            m.dup = True
                        m.state = mqtt.mqtt_ms_publish
                    elif m.state in (mqtt.mqtt_ms_wait_for_pubcomp, mqtt.mqtt_ms_resend_pubrel):
                        m.state = mqtt.mqtt_ms_resend_pubrel  # the fix: resend_pubrel kept
                    else:
                        if m.state == mqtt.mqtt_ms_wait_for_pubrec:
                            m.dup = True
                        m.state = mqtt.mqtt_ms_publish
            else:
                m.state = mqtt.mqtt_ms_queued


class DrillClient(harness.PahoClient):
    """A paho client that reconnects by itself (paho's network thread, short back-off) and
    counts its CONNACKs and their session-present flags. With an Epoch, it keeps paho's log of
    the packets it sends and receives (for the report on a lost or duplicated message)."""

    def __init__(self, port: int, client_id: str, clean_session: bool = False,
                 epoch: "Optional[Epoch]" = None):
        super().__init__(port, client_id, clean_session=clean_session)
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.5)
        if PAHO_RESET_FIX:
            self.client._messages_reconnect_reset_out = types.MethodType(
                _messages_reconnect_reset_out_fixed, self.client)
        self.connacks: list[tuple[int, int]] = []  # (session present, return code)
        self.disconnects = 0
        self.epoch = epoch
        self.trace: list[tuple[float, float, str]] = []  # (time, epoch, paho's log line)
        if epoch is not None:
            self.client.on_log = self._on_log

    def _on_log(self, client, userdata, level, text):
        if text.startswith(("Sending", "Received")):
            self.trace.append((time.monotonic(), self.epoch.value, text))

    def trace_of(self, mid: int) -> list[str]:
        """paho's log lines about packet id `mid`, and the connections in between."""
        marks = (f"m{mid})", f"(Mid: {mid})")
        lines = [f"{t:.3f} [{e}] {text}" for t, e, text in self.trace
                 if text.endswith(marks) or f" m{mid})" in text or "CONNACK" in text]
        # Only the CONNACKs between the first and last line about the packet id.
        about = [i for i, line in enumerate(lines) if "CONNACK" not in line]
        return lines[about[0]:about[-1] + 1] if about else []

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connacks.append((int(flags.get("session present", 0)), harness.reason_value(rc)))
        super()._on_connect(client, userdata, flags, rc, properties)

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.disconnects += 1
        super()._on_disconnect(client, userdata, rc, properties)

    def close(self, timeout: float = harness.WAIT) -> None:
        """DISCONNECT (if connected) and stop the network thread, bounded: paho's loop_stop()
        joins its thread without a timeout, and that thread does not end while it holds
        unacknowledged messages on a live connection."""
        if not self._started:
            return
        self._started = False
        try:
            self.client.disconnect()
        except Exception:
            pass
        self.client._thread_terminate = True
        thread = getattr(self.client, "_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        try:
            sock = self.client.socket()
            if sock is not None:
                sock.close()
        except Exception:
            pass

    def stop(self) -> None:
        self.close()


class Epoch:
    """Which broker process is running: 0 before the first kill, k after the k-th restart (and
    k - 0.5 between the k-th kill and its restart). Recorded with each event, for the report."""

    def __init__(self) -> None:
        self.value: float = 0


def published(info) -> bool:
    """paho's MQTTMessageInfo.is_published() without its exception for a message published
    while disconnected (rc MQTT_ERR_NO_CONN: paho keeps it and sends it after the CONNACK)."""
    with info._condition:
        return info._published


class Publisher:
    """Publishes `<name>:<seq>` on crash/<name> at `qos`, keeping up to WINDOW messages
    unacknowledged, from its own thread, until stop_publishing()."""

    def __init__(self, client: DrillClient, name: str, qos: int, epoch: Epoch):
        self.client = client
        self.name = name
        self.qos = qos
        self.epoch = epoch
        self.topic = f"crash/{name}"
        self.infos: dict[int, object] = {}  # seq -> paho MQTTMessageInfo
        self.published_in: dict[int, float] = {}  # seq -> epoch of publish()
        self.acks: list[tuple[int, float]] = []  # (mid, epoch) of each on_publish
        self.unacked: dict[int, object] = {}
        self.acked: set[int] = set()
        self.refused: list[tuple[int, int]] = []  # (seq, rc) publish() did not take
        self.next_seq = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        client.client.on_publish = self._on_publish
        self._thread = threading.Thread(target=self._run, name=f"publisher-{name}", daemon=True)

    def _on_publish(self, client, userdata, mid):
        # Called by paho under its message lock: only note it and wake the publishing thread.
        self.acks.append((mid, self.epoch.value))
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def _collect(self) -> None:
        for seq, info in list(self.unacked.items()):
            if published(info):
                del self.unacked[seq]
                self.acked.add(seq)

    def _run(self) -> None:
        deadline = time.monotonic() + METHOD_TIMEOUT  # stop_publishing() comes long before
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                self._collect()
                if len(self.unacked) >= WINDOW:
                    self._wake.wait(0.05)
                    self._wake.clear()
                    continue
                seq = self.next_seq
                info = self.client.client.publish(self.topic, f"{self.name}:{seq}".encode(),
                                                  self.qos)
                # MQTT_ERR_NO_CONN: paho keeps the message and sends it after the CONNACK.
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    self.refused.append((seq, info.rc))
                    time.sleep(0.01)
                    continue
                self.next_seq += 1
                self.infos[seq] = info
                self.published_in[seq] = self.epoch.value
                self.unacked[seq] = info
        except BaseException as e:  # reported by stop_publishing()
            self._errors.append(e)

    def stop(self) -> None:
        """Ends the publishing thread without waiting (clean-up)."""
        self._stop.set()

    def stop_publishing(self) -> None:
        self._stop.set()
        self._thread.join(harness.WAIT)
        if self._thread.is_alive():
            raise AssertionError(f"publisher {self.name}: thread did not stop")
        if self._errors:
            raise self._errors[0]

    def drained(self) -> bool:
        self._collect()
        return not self.unacked

    @property
    def published(self) -> int:
        return self.next_seq

    def describe(self, seq: int) -> str:
        """seq, packet id, epochs of publish() and of the acknowledgement (the first
        acknowledgement of that packet id: ambiguous once paho's ids wrap after 65535)."""
        mid = self.infos[seq].mid if seq in self.infos else None
        acked_in = [e for m, e in self.acks if m == mid]
        return (f"{seq}(id {mid}, published in {self.published_in.get(seq)}, acknowledged in "
                f"{acked_in[0] if acked_in else '-'})")


class Subscriber:
    """Collects what arrives on crash/# as (publisher name, seq, qos, dup); never subscribes
    again by itself (it only counts connections)."""

    def __init__(self, client: DrillClient, epoch: Epoch):
        self.client = client
        self.epoch = epoch
        self.lock = threading.Lock()
        self.received: list[tuple[str, int, int, bool, int, float]] = []
        self.others: list[tuple[str, bytes]] = []
        self.last_arrival = time.monotonic()
        client.client.on_message = self._on_message

    def _on_message(self, client, userdata, msg):
        payload = bytes(msg.payload)
        with self.lock:
            self.last_arrival = time.monotonic()
            name, _, seq = payload.decode(errors="replace").partition(":")
            if msg.topic == f"crash/{name}" and seq.isdigit():
                self.received.append((name, int(seq), msg.qos, bool(msg.dup), msg.mid,
                                      self.epoch.value))
            else:
                self.others.append((msg.topic, payload))

    def quiet_for(self) -> float:
        with self.lock:
            return time.monotonic() - self.last_arrival

    def of(self, name: str) -> list[int]:
        with self.lock:
            return [r[1] for r in self.received if r[0] == name]

    def copies(self, name: str, seq: int) -> str:
        """How each copy of a message arrived: packet id, DUP, epoch."""
        with self.lock:
            return ", ".join(f"id {r[4]} dup {int(r[3])} qos {r[2]} in {r[5]}"
                             for r in self.received if r[0] == name and r[1] == seq)


def seqs_text(seqs, limit: int = 40) -> str:
    seqs = sorted(seqs)
    text = ", ".join(map(str, seqs[:limit]))
    return text + (f", ... ({len(seqs)} in all)" if len(seqs) > limit else "")


@harness.not_on_mosquitto("a crash drill needs tinymq's --data-dir (mosquitto keeps nothing "
                          "across a SIGKILL)")
class CrashTest(unittest.TestCase):

    def setUp(self) -> None:
        if mqtt is None:
            self.skipTest("paho-mqtt is not installed for this interpreter "
                          "(run the tests with /usr/bin/python3)")
        faulthandler.dump_traceback_later(METHOD_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)

    # Set-up helpers. -------------------------------------------------------------------------

    def start_broker(self, durability: str, workers: int) -> harness.Broker:
        broker = harness.Broker(LIMITS, workers=workers, data_dir=True, durability=durability)
        self.addCleanup(broker.cleanup)
        broker.start()
        self.addCleanup(self._stop_broker, broker)
        if not broker.wait_for_log("state kept in"):
            self.fail("tinymq did not report a data directory in its first log line:\n"
                      + broker.log_tail())
        return broker

    def _stop_broker(self, broker: harness.Broker) -> None:
        problems = broker.stop()
        if problems:
            self.fail("broker problems:\n" + "\n".join(problems))

    def client(self, broker: harness.Broker, client_id: str, clean_session: bool = False,
               epoch: Optional[Epoch] = None) -> DrillClient:
        c = DrillClient(broker.port, client_id, clean_session, epoch)
        self.addCleanup(c.close)
        return c

    def set_retained(self, broker: harness.Broker, drill: str) -> bytes:
        payload = f"retained before the first crash ({drill})".encode()
        c = self.client(broker, f"crash-{drill}-retainer", clean_session=True)
        c.connect()
        c.publish(RETAINED_TOPIC, payload, qos=1, retain=True)
        c.close()
        return payload

    def check_retained(self, broker: harness.Broker, drill: str, payload: bytes) -> None:
        c = self.client(broker, f"crash-{drill}-retained-reader", clean_session=True)
        c.connect()
        self.assertEqual(c.subscribe(RETAINED_TOPIC, 1), [1])
        try:
            m = c.get(10.0)
        except AssertionError:
            self.fail(f"[{drill}] the retained message set before the first crash is gone "
                      "after the last restart")
        self.assertEqual((m.topic, m.payload, m.retain), (RETAINED_TOPIC, payload, True),
                         f"[{drill}] retained message after the last restart")
        c.close()

    def check_subscription_intact(self, broker: harness.Broker, drill: str,
                                  subscriber: Subscriber) -> None:
        """A message published after the last restart reaches the subscriber, which never
        subscribed again."""
        c = self.client(broker, f"crash-{drill}-marker", clean_session=True)
        c.connect()
        c.publish("crash/marker", b"after the last restart", qos=1)
        c.close()
        ok = harness.wait_until(
            lambda: any(t == "crash/marker" for t, _ in list(subscriber.others)), 10.0)
        self.assertTrue(ok, f"[{drill}] the subscriber got no message published after the last "
                            "restart: its subscription did not survive")

    # The crashes. ----------------------------------------------------------------------------

    def crash_and_restart(self, broker: harness.Broker, rng: random.Random,
                          clients: list[DrillClient], drill: str, log: list[str],
                          epoch: Epoch) -> None:
        """KILLS times: wait a random moment, SIGKILL, restart on the same data directory and
        port, wait until every client in `clients` is connected again."""
        for k in range(KILLS):
            delay = rng.uniform(*KILL_DELAY)
            time.sleep(delay)
            before = [len(c.connacks) for c in clients]
            epoch.value = k + 0.5
            problems = broker.kill()
            if problems:
                self.fail(f"[{drill}] at kill {k + 1}:\n" + "\n".join(problems))
            port = broker.port
            moved = ""
            try:
                broker.restart(same_port=True)
            except harness.BrokerStartError as e:
                if "in use" not in e.log.lower():
                    raise
                broker.restart(same_port=False)  # clients follow it to the new port
                for c in clients:
                    c.client._port = broker.port
                moved = f" (port {port} taken: restarted on {broker.port})"
            restored = broker.log_line("restored from")
            if not restored:
                self.fail(f"[{drill}] restart {k + 1}: no 'restored from' line:\n"
                          + broker.log_tail())
            epoch.value = k + 1
            log.append(f"kill {k + 1} after {delay:.2f} s{moved}: "
                       + restored.split(" info ", 1)[-1])
            back = harness.wait_until(
                lambda: all(len(c.connacks) > n for c, n in zip(clients, before)), RECONNECT)
            if not back:
                self.fail(f"[{drill}] clients not connected again {RECONNECT} s after restart "
                          f"{k + 1}: " + ", ".join(
                              f"{c.client._client_id.decode()}: {len(c.connacks) - n} CONNACK(s)"
                              for c, n in zip(clients, before))
                          + "\n" + broker.log_tail())

    def start_publishers(self, broker: harness.Broker, drill: str,
                         epoch: Epoch) -> list[Publisher]:
        publishers = []
        for name, qos in (("q1", 1), ("q2", 2)):
            c = self.client(broker, PUBLISHER_IDS[name], epoch=epoch)
            c.connect()
            publishers.append(Publisher(c, name, qos, epoch))
        for p in publishers:
            self.addCleanup(p.stop)  # before its client closes, should the test end early
            p.start()
        return publishers

    def finish_publishers(self, publishers: list[Publisher], drill: str) -> None:
        time.sleep(TAIL)
        for p in publishers:
            p.stop_publishing()
        harness.wait_until(lambda: all(p.drained() for p in publishers), DRAIN, 0.05)
        stuck = {p.name: sorted(p.unacked) for p in publishers if p.unacked}
        self.assertFalse(stuck, f"[{drill}] messages never acknowledged, {DRAIN} s after the "
                                f"last restart (seed {SEED}): "
                                + "; ".join(f"{n}: {seqs_text(s)}" for n, s in stuck.items()))

    def drain_subscriber(self, subscriber: Subscriber) -> None:
        """Until nothing new has arrived for QUIET s (counted from the call at the earliest), at
        most DRAIN s."""
        start = time.monotonic()
        while time.monotonic() < start + DRAIN:
            if min(subscriber.quiet_for(), time.monotonic() - start) >= QUIET:
                return
            time.sleep(0.1)

    # The verdict. ----------------------------------------------------------------------------

    def verdict(self, drill: str, seed: int, publishers: list[Publisher],
                subscriber: Subscriber, log: list[str]) -> None:
        findings: list[str] = []
        summary = []
        for p in publishers:
            got = subscriber.of(p.name)
            counts = collections.Counter(got)
            received = set(counts)
            duplicates = {s: n for s, n in counts.items() if n > 1}
            lost = p.acked - received
            unknown = received - set(p.infos)
            unacked_received = received - p.acked
            out_of_order = sum(1 for a, b in zip(got, got[1:]) if b < a)
            summary.append(f"{p.name} (QoS {p.qos}): published {p.published}, acknowledged "
                           f"{len(p.acked)}, received {len(got)} ({len(received)} distinct), "
                           f"duplicates {sum(n - 1 for n in duplicates.values())}, "
                           f"lost {len(lost)}, backwards steps {out_of_order}")
            if duplicates:
                print(f"  [{drill}] {p.name} duplicates (seq x count): "
                      + ", ".join(f"{s}x{n}" for s, n in sorted(duplicates.items())[:40]),
                      file=sys.stderr)
            if lost:
                findings.append(f"{p.name}: {len(lost)} acknowledged message(s) never reached "
                                f"the subscriber: seq {seqs_text(lost)}; in detail: "
                                + ", ".join(p.describe(s) for s in sorted(lost)[:20]))
            if p.qos == 2 and duplicates:
                findings.append(f"{p.name}: QoS 2 messages received more than once: "
                                + ", ".join(f"seq {s} x{n}"
                                            for s, n in sorted(duplicates.items())[:40])
                                + "; in detail: " + "; ".join(
                                    f"{p.describe(s)} received as [{subscriber.copies(p.name, s)}]"
                                    for s in sorted(duplicates)[:10]))
            if unknown:
                findings.append(f"{p.name}: received messages never published: "
                                f"seq {seqs_text(unknown)}")
            for s in (sorted(lost)[:3] + sorted(duplicates)[:3] if p.qos == 2 else []):
                mid = p.infos[s].mid
                print(f"  [{drill}] paho log of {p.name} for seq {s} (packet id {mid}):\n      "
                      + "\n      ".join(p.client.trace_of(mid)), file=sys.stderr)
            if p.refused:
                findings.append(f"{p.name}: paho refused {len(p.refused)} publish() calls: "
                                f"{p.refused[:5]}")
            if unacked_received:
                print(f"  [{drill}] {p.name}: {len(unacked_received)} message(s) received "
                      f"but never acknowledged to the publisher", file=sys.stderr)
        print(f"\n  [{drill}] seed {seed} (CRASH_SEED={SEED}), {len(log)} kill(s):", file=sys.stderr)
        for line in log:
            print(f"    {line}", file=sys.stderr)
        print(f"  SUMMARY [{drill}] kills {len(log)}; " + "; ".join(summary), file=sys.stderr,
              flush=True)
        if findings:
            self.fail(f"[{drill}] seed {seed} (CRASH_SEED={SEED} CRASH_KILLS={KILLS}):\n  "
                      + "\n  ".join(findings))

    # The drills. -----------------------------------------------------------------------------

    def drill_subscriber_online(self, durability: str, workers: int, index: int) -> None:
        drill = f"online-{durability}-{workers}w"
        seed = SEED * 100 + index
        rng = random.Random(seed)
        epoch = Epoch()
        broker = self.start_broker(durability, workers)
        sub_client = self.client(broker, SUB_ID, epoch=epoch)
        flags, _ = sub_client.connect()
        self.assertEqual(flags.get("session present"), 0)
        subscriber = Subscriber(sub_client, epoch)
        self.assertEqual(sub_client.subscribe(SUB_TOPIC, 2), [2])
        retained = self.set_retained(broker, drill)
        publishers = self.start_publishers(broker, drill, epoch)
        log: list[str] = []
        self.crash_and_restart(broker, rng, [sub_client] + [p.client for p in publishers],
                               drill, log, epoch)
        self.finish_publishers(publishers, drill)
        self.drain_subscriber(subscriber)
        lost_sessions = [(c.client._client_id.decode(), c.connacks)
                         for c in [sub_client] + [p.client for p in publishers]
                         if any(sp != 1 or rc != 0 for sp, rc in c.connacks[1:])]
        self.assertFalse(lost_sessions, f"[{drill}] a reconnection found no session "
                                        f"(session present 0) or was refused: {lost_sessions}")
        self.verdict(drill, seed, publishers, subscriber, log)
        self.check_subscription_intact(broker, drill, subscriber)
        self.check_retained(broker, drill, retained)

    def drill_subscriber_offline(self, durability: str, workers: int, index: int) -> None:
        drill = f"offline-{durability}-{workers}w"
        seed = SEED * 100 + index
        rng = random.Random(seed)
        epoch = Epoch()
        broker = self.start_broker(durability, workers)
        sub_id = SUB_ID
        first = self.client(broker, sub_id)
        first.connect()
        self.assertEqual(first.subscribe(SUB_TOPIC, 2), [2])
        first.close()  # DISCONNECT: the session stays, the subscriber is away
        retained = self.set_retained(broker, drill)
        publishers = self.start_publishers(broker, drill, epoch)
        log: list[str] = []
        self.crash_and_restart(broker, rng, [p.client for p in publishers], drill, log, epoch)
        self.finish_publishers(publishers, drill)
        sub_client = self.client(broker, sub_id, epoch=epoch)
        subscriber = Subscriber(sub_client, epoch)
        flags, _ = sub_client.connect(timeout=10.0)
        self.assertEqual(flags.get("session present"), 1,
                         f"[{drill}] the subscriber's session is gone after the crashes")
        self.drain_subscriber(subscriber)
        lost_sessions = [(c.client._client_id.decode(), c.connacks)
                         for c in [p.client for p in publishers]
                         if any(sp != 1 or rc != 0 for sp, rc in c.connacks[1:])]
        self.assertFalse(lost_sessions, f"[{drill}] a reconnection found no session "
                                        f"(session present 0) or was refused: {lost_sessions}")
        self.verdict(drill, seed, publishers, subscriber, log)
        self.check_subscription_intact(broker, drill, subscriber)
        self.check_retained(broker, drill, retained)

    # A smaller drill without paho: QoS 2 PUBLISHes in flight at the kill. -----------------------

    def test_qos2_in_flight_at_the_kill_2_workers(self):
        """RAW_TRIALS times, each on a new broker (2 workers, durability batch): a raw publisher
        sends WINDOW QoS 2 PUBLISHes at once; the broker is killed RAW_KILL_AFTER s later, before
        or after their PUBRECs; after the restart the publisher resends each unacknowledged
        PUBLISH (DUP 1, same packet id; PUBREL where its PUBREC had come) and completes every
        flow; then the subscriber, offline all along, must get each message exactly once."""
        rng = random.Random(SEED * 100 + 9)
        findings = []
        for trial in range(RAW_TRIALS):
            delay = rng.choice(RAW_KILL_AFTER)
            finding = self.raw_qos2_trial(delay)
            if finding:
                findings.append(f"trial {trial + 1} (kill {delay * 1000:g} ms after the "
                                f"PUBLISHes): {finding}")
        print(f"\n  SUMMARY [raw-qos2-2w] seed {SEED * 100 + 9} (CRASH_SEED={SEED}): "
              f"{RAW_TRIALS} trials, {len(findings)} with a lost or duplicated message",
              file=sys.stderr, flush=True)
        if findings:
            self.fail(f"seed {SEED * 100 + 9} (CRASH_SEED={SEED}):\n  " + "\n  ".join(findings))

    def raw_qos2_trial(self, delay: float) -> Optional[str]:
        broker = self.start_broker("batch", 2)
        sub = harness.RawClient(broker.port)
        sub.connect(RAW_SUB_ID, clean_session=False)
        self.assertEqual(sub.subscribe([("raw/q2", 2)]), [2])
        sub.disconnect()
        pub = harness.RawClient(broker.port)
        self.addCleanup(pub.close)
        pub.connect(RAW_PUB_ID, clean_session=False)
        # A CONNACK waits for nothing; a SUBACK waits until the subscription, and so the session
        # written before it, is durable: the kill below cannot come before the session is kept.
        self.assertEqual(pub.subscribe([("raw/nothing", 0)]), [0])
        ids = range(1, WINDOW + 1)
        for i in ids:
            pub.publish("raw/q2", f"m{i}", qos=2, packet_id=i)
        time.sleep(delay)
        pubrecs = set()
        try:
            while True:
                p = pub.recv(0.001)
                if p.type == harness.PUBREC:
                    pubrecs.add(p.packet_id)
        except (TimeoutError, AssertionError):
            pass
        problems = broker.kill()
        self.assertFalse(problems, "\n".join(problems))
        pub.close()
        broker.restart()
        restored = broker.log_line("restored from")
        self.assertTrue(restored, broker.log_tail())
        incoming = restored.split("messages, ", 1)[-1].split(",", 1)[0]
        pub = harness.RawClient(broker.port)
        self.addCleanup(pub.close)
        self.assertTrue(pub.connect(RAW_PUB_ID, clean_session=False).session_present,
                        "the publisher's session (its SUBACK came before the kill) is gone")
        for i in ids:
            if i in pubrecs:
                pub.pubrel(i)
            else:
                pub.publish("raw/q2", f"m{i}", qos=2, packet_id=i, dup=True)
        completed = set()
        while len(completed) < len(ids):
            p = pub.recv(10.0)
            if p.type == harness.PUBREC:
                pub.pubrel(p.packet_id)
            elif p.type == harness.PUBCOMP:
                completed.add(p.packet_id)
            else:
                self.fail(f"publisher: unexpected {p!r}")
        pub.disconnect()
        sub = harness.RawClient(broker.port)
        self.addCleanup(sub.close)
        self.assertTrue(sub.connect(RAW_SUB_ID, clean_session=False).session_present,
                        "the subscriber's session (its SUBACK came before the kill) is gone")
        got = []
        while True:  # bounded: each wait is, and at most 2 * WINDOW messages are taken
            try:
                # Once all have come, a short wait for a duplicate.
                p = sub.recv(0.3 if len(got) >= WINDOW else 2.0)
            except (TimeoutError, AssertionError):
                break
            if p.type == harness.PUBLISH:
                got.append(p.payload.decode())
                sub.pubrec(p.packet_id)
            elif p.type == harness.PUBREL:
                sub.pubcomp(p.packet_id)
            if len(got) > 2 * WINDOW:
                break
        sub.disconnect()
        problems = broker.stop()
        self.assertFalse(problems, "\n".join(problems))
        counts = collections.Counter(got)
        lost = [i for i in ids if counts[f"m{i}"] == 0]
        duplicated = [i for i in ids if counts[f"m{i}"] > 1]
        if not lost and not duplicated:
            return None
        return (f"{len(pubrecs)} PUBREC(s) before the kill; restart found {incoming}; all "
                f"{len(ids)} flows completed; subscriber got {len(got)}: lost packet ids "
                f"{lost}, duplicated {duplicated}")

    def test_online_batch_1_worker(self):
        self.drill_subscriber_online("batch", 1, 1)

    def test_online_always_2_workers(self):
        self.drill_subscriber_online("always", 2, 2)

    def test_offline_batch_2_workers(self):
        self.drill_subscriber_offline("batch", 2, 3)

    def test_offline_always_1_worker(self):
        self.drill_subscriber_offline("always", 1, 4)


if __name__ == "__main__":
    harness.main()
