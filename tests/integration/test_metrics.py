#!/usr/bin/python3
"""Metrics (issue #8; docs/metrics.md): the Prometheus endpoint and the $SYS/ topics.

  * SysTopicsTest (tinymq and mosquitto): with sys_interval = 1 a `$SYS/#` subscriber gets
    $SYS/broker/version, uptime, clients/connected, messages/received (which grows after
    publishes) and load/messages/received/1min within a few seconds, as retained messages; a
    client cannot publish to $SYS/ (a subscriber to $SYS/broker/uptime never sees the spoofed
    payload, live or retained); with sys_interval = 0 no $SYS/ topic arrives.
  * MetricsHttpTest (tinymq only): [metrics] enabled on a free port. /metrics answers 200 with
    Prometheus' text format 0.0.4 (every family has HELP and TYPE); HEAD, /, 404, 405 + Allow,
    400. Counters move by exactly what the clients did: PUBLISH packets by QoS, payload bytes,
    connections accepted and closed, subscriptions, sessions, retained messages, queued messages
    and offline QoS 0 drops, refusals by reason (auth, proxy, websocket), forced disconnects, ACL
    denials (the $SYS/ spoof); the worker-loop and store-write histograms count.
  * MetricsOffTest (tinymq only): without [metrics] the broker logs no "metrics:" line.

Worker figures are snapshots taken once a second: every check polls /metrics (bounded) until the
value arrives, then checks it is exactly what was expected.
"""

from __future__ import annotations

import faulthandler
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CONNACK, HOST, WAIT  # noqa: E402

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
# How long a figure may take to reach /metrics or $SYS/ (once-a-second snapshots, then the next
# 1 s update): generous, it is a bound, not a measurement.
SNAPSHOT_WAIT = 6.0
# The $SYS/ topics every test expects (tinymq and mosquitto both publish them).
SYS_TOPICS = ("$SYS/broker/version", "$SYS/broker/uptime", "$SYS/broker/clients/connected",
              "$SYS/broker/messages/received", "$SYS/broker/load/messages/received/1min")

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Scrape:
    """One /metrics answer, parsed (Prometheus text format 0.0.4)."""

    def __init__(self, text: str):
        self.text = text
        self.samples: dict[tuple, float] = {}
        self.help: dict[str, str] = {}
        self.types: dict[str, str] = {}
        for line in text.splitlines():
            if not line:
                continue
            if line.startswith("# HELP "):
                name, _, doc = line[7:].partition(" ")
                self.help[name] = doc
            elif line.startswith("# TYPE "):
                name, _, kind = line[7:].partition(" ")
                self.types[name] = kind
            elif line.startswith("#"):
                continue
            else:
                m = LINE.match(line)
                if not m:
                    raise AssertionError(f"not a Prometheus sample line: {line!r}")
                labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
                self.samples[(m.group(1), labels)] = float(m.group(3))

    def get(self, name: str, **labels) -> float:
        key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
        if key not in self.samples:
            raise AssertionError(f"no sample {name}{labels or ''} in /metrics")
        return self.samples[key]

    def total(self, name: str) -> float:
        """The sum over every label set of `name` (e.g. each worker's histogram count)."""
        values = [v for (n, _), v in self.samples.items() if n == name]
        if not values:
            raise AssertionError(f"no sample {name} in /metrics")
        return sum(values)


class BrokerCase(unittest.TestCase):
    """One broker per test from `broker_kwargs()`; clients made with the helpers close first."""

    def broker_kwargs(self) -> dict:
        return {}

    def setUp(self):
        faulthandler.dump_traceback_later(harness.TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)
        self.broker = harness.start_with_free_ports(lambda: harness.Broker(**self.broker_kwargs()))
        self.addCleanup(self.broker.cleanup)
        self.addCleanup(self.stop_broker)
        self.port = self.broker.port
        self._closers: list = []

    def stop_broker(self):
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                pass
        problems = self.broker.stop()
        self.assertEqual(problems, [])

    def sub(self, topics, **kwargs) -> harness.MosquittoSub:
        s = harness.MosquittoSub(self.port, topics, **kwargs)
        self._closers.append(s.stop)
        return s.wait_subscribed()

    def paho(self, client_id: str = "", **kwargs) -> harness.PahoClient:
        c = harness.PahoClient(self.port, client_id, **kwargs)
        self._closers.append(c.stop)
        return c

    def raw(self, port: Optional[int] = None) -> harness.RawClient:
        c = harness.RawClient(self.port if port is None else port)
        self._closers.append(c.close)
        return c


# --------------------------------------------------------------------------------------------
# $SYS/ topics: tinymq and mosquitto.


class SysTopicsTest(BrokerCase):
    sys_interval = 1

    def broker_kwargs(self) -> dict:
        return {"top": {"sys_interval": self.sys_interval}}

    def setUp(self):
        super().setUp()
        self.history: dict[str, list[str]] = {}  # $SYS/ topic -> payloads received, in order

    def pump(self, s: harness.MosquittoSub, timeout: float) -> None:
        """Moves what `s` received (waiting up to `timeout` for one message) into self.history:
        topic -> the payloads received, in order."""
        try:
            m = s.messages.get(timeout=timeout)
        except Exception:
            return
        while True:
            self.history.setdefault(m.topic, []).append(m.payload.decode(errors="replace"))
            try:
                m = s.messages.get_nowait()
            except Exception:
                return

    def collect_sys(self, s: harness.MosquittoSub, wanted,
                    timeout: float = SNAPSHOT_WAIT) -> dict:
        """Reads $SYS/ messages until every topic in `wanted` has arrived; returns the history."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.history
            if all(t in seen for t in wanted):
                return seen
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail(f"$SYS/ topics missing after {timeout} s: "
                          f"{sorted(t for t in wanted if t not in seen)}; got {sorted(seen)}")
            self.pump(s, min(remaining, 0.2))

    def wait_sys_value(self, s: harness.MosquittoSub, topic: str,
                       predicate: Callable[[str], bool], timeout: float = SNAPSHOT_WAIT) -> str:
        """Reads $SYS/ messages until one received on `topic` (now or before) satisfies
        `predicate`; returns its payload."""
        deadline = time.monotonic() + timeout
        while True:
            values = self.history.get(topic, [])
            for v in values:
                if predicate(v):
                    return v
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail(f"{topic}: no value as expected within {timeout} s (got {values!r})")
            self.pump(s, min(remaining, 0.2))

    def test_sys_topics_arrive_and_follow_the_counters(self):
        s = self.sub("$SYS/#")
        seen = {t: list(v) for t, v in self.collect_sys(s, SYS_TOPICS).items()}
        version = seen["$SYS/broker/version"][0]
        if harness.is_mosquitto():
            self.assertTrue(version.startswith("mosquitto version "), version)
        else:
            self.assertRegex(version, r"^tinymq \d+\.\d+\.\d+")
        self.assertRegex(seen["$SYS/broker/uptime"][-1], r"^\d+ seconds$")
        self.assertRegex(seen["$SYS/broker/clients/connected"][-1], r"^\d+$")
        self.assertRegex(seen["$SYS/broker/load/messages/received/1min"][-1], r"^\d+\.\d\d$")
        before = int(seen["$SYS/broker/messages/received"][-1])
        # The uptime moves (one update a second here).
        first_uptime = int(seen["$SYS/broker/uptime"][-1].split()[0])
        self.wait_sys_value(s, "$SYS/broker/uptime",
                            lambda v: int(v.split()[0]) > first_uptime)

        publisher = self.paho("it-sys-pub")
        publisher.connect()
        for i in range(5):
            publisher.publish("it/sys/traffic", f"m{i}".encode(), 1)
        # tinymq counts PUBLISH packets; mosquitto every packet: at least 5 more either way.
        self.wait_sys_value(s, "$SYS/broker/messages/received", lambda v: int(v) >= before + 5)
        self.wait_sys_value(s, "$SYS/broker/load/messages/received/1min",
                            lambda v: float(v) > 0.0)
        # Two clients connected now (mosquitto_sub and the publisher): clients/connected follows.
        self.wait_sys_value(s, "$SYS/broker/clients/connected", lambda v: int(v) >= 2)
        publisher.disconnect()

    def test_sys_topics_are_retained(self):
        s = self.sub("$SYS/#")
        self.collect_sys(s, ("$SYS/broker/version",))
        late = self.sub("$SYS/broker/version")
        m = late.get()
        self.assertEqual(m.topic, "$SYS/broker/version")
        self.assertTrue(m.retain, "a new subscriber gets the $SYS/ values as retained messages")

    def test_clients_cannot_publish_to_sys(self):
        watcher = self.sub("$SYS/broker/uptime")
        spoofer = self.paho("it-sys-spoofer")
        spoofer.connect()
        spoofer.publish("$SYS/broker/uptime", b"spoofed", 0)
        spoofer.publish("$SYS/broker/uptime", b"spoofed", 1, retain=True)
        spoofer.publish("$SYS/broker/uptime", b"spoofed", 2)
        spoofer.publish("$SYS/it/new", b"spoofed", 1, retain=True)
        # Watch two real updates go by (after the first, which may precede the spoof).
        values = []
        deadline = time.monotonic() + SNAPSHOT_WAIT
        while len([v for v in values if v != b"spoofed"]) < 3 and time.monotonic() < deadline:
            try:
                values.append(watcher.messages.get(timeout=0.2).payload)
            except Exception:
                pass
        self.assertNotIn(b"spoofed", values)
        self.assertGreaterEqual(len(values), 3, f"too few uptime updates: {values!r}")
        # Nor is the spoof retained: a new subscriber gets the broker's own value.
        late = self.sub(["$SYS/broker/uptime", "$SYS/it/new"])
        m = late.get()
        self.assertEqual(m.topic, "$SYS/broker/uptime")
        self.assertRegex(m.payload.decode(), r"^\d+ seconds$")
        time.sleep(0.3)
        more = [late.messages.get_nowait() for _ in range(late.messages.qsize())]
        self.assertEqual([x for x in more if x.topic != "$SYS/broker/uptime"
                          or x.payload == b"spoofed"], [])
        spoofer.disconnect()


class SysIntervalZeroTest(BrokerCase):

    def broker_kwargs(self) -> dict:
        return {"top": {"sys_interval": 0}}

    def test_no_sys_topics_with_sys_interval_zero(self):
        s = self.sub("$SYS/#")
        harness.mosquitto_pub(self.port, "it/sys0/x", "hello", 1)
        s.expect_nothing(2.5)


# --------------------------------------------------------------------------------------------
# The Prometheus endpoint: tinymq only.


@harness.not_on_mosquitto("no Prometheus endpoint in mosquitto (its figures are $SYS/ only)")
class MetricsHttpTest(BrokerCase):

    def broker_kwargs(self) -> dict:
        self.metrics_port = harness.free_port()
        self.proxy_port = harness.free_port()
        self.ws_port = harness.free_port()
        return {
            "top": {"sys_interval": 1},
            "workers": 2,  # connections handed from one worker to the other are counted too
            "tables": {"metrics": {"enabled": True, "port": self.metrics_port}},
            "data_dir": True,
            "extra_listeners": [{"port": self.proxy_port, "proxy_protocol": True},
                                {"port": self.ws_port, "websocket": True}],
            "auth": {"password_file": str(self.passwords()), "allow_anonymous": True,
                     "failure_delay_ms": 100},
        }

    def passwords(self) -> Path:
        if not hasattr(self, "pw_dir"):
            self.pw_dir = Path(tempfile.mkdtemp(prefix="tinymq-it-metrics-"))
            self.addCleanup(shutil.rmtree, self.pw_dir, True)
            subprocess.run([MOSQUITTO_PASSWD, "-c", "-b", str(self.pw_dir / "passwords"),
                            "alice", "alice-pw"], check=True, capture_output=True, timeout=30)
        return self.pw_dir / "passwords"

    # HTTP. -----------------------------------------------------------------------------------

    def url(self, path: str = "/metrics") -> str:
        return f"http://{HOST}:{self.metrics_port}{path}"

    def scrape(self) -> Scrape:
        with urllib.request.urlopen(self.url(), timeout=WAIT) as r:
            self.assertEqual(r.status, 200)
            return Scrape(r.read().decode())

    def wait_metrics(self, check: Callable[[Scrape], bool], what: str,
                     timeout: float = SNAPSHOT_WAIT) -> Scrape:
        """Scrapes (bounded) until `check` holds; fails with the last values otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.scrape()
            try:
                if check(s):
                    return s
            except AssertionError:
                pass
            if time.monotonic() >= deadline:
                self.fail(f"/metrics never showed {what} within {timeout} s; last scrape:\n"
                          + "\n".join(line for line in s.text.splitlines()
                                      if not line.startswith("#") and "_bucket" not in line))
            time.sleep(0.1)

    def http(self, method: str, path: str, body: Optional[bytes] = None):
        conn = http.client.HTTPConnection(HOST, self.metrics_port, timeout=WAIT)
        try:
            conn.request(method, path, body=body)
            r = conn.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            conn.close()

    def test_http_answers(self):
        with urllib.request.urlopen(self.url(), timeout=WAIT) as r:
            self.assertEqual(r.status, 200)
            content_type = r.headers["Content-Type"]
            text = r.read().decode()
        self.assertTrue(content_type.startswith("text/plain; version=0.0.4"), content_type)
        s = Scrape(text)
        families = {
            "tinymq_build_info": "gauge", "tinymq_uptime_seconds": "gauge",
            "tinymq_connections": "gauge", "tinymq_clients_connected": "gauge",
            "tinymq_sessions": "gauge", "tinymq_subscriptions": "gauge",
            "tinymq_queued_messages": "gauge", "tinymq_inflight_messages": "gauge",
            "tinymq_retained_messages": "gauge", "tinymq_retained_bytes": "gauge",
            "tinymq_connections_accepted_total": "counter",
            "tinymq_connections_closed_total": "counter",
            "tinymq_connections_refused_total": "counter",
            "tinymq_forced_disconnects_total": "counter",
            "tinymq_messages_received_total": "counter",
            "tinymq_messages_sent_total": "counter",
            "tinymq_publish_bytes_received_total": "counter",
            "tinymq_publish_bytes_sent_total": "counter",
            "tinymq_bytes_received_total": "counter", "tinymq_bytes_sent_total": "counter",
            "tinymq_dropped_deliveries_total": "counter",
            "tinymq_acl_denied_total": "counter",
            "tinymq_worker_loop_seconds": "histogram",
            "tinymq_store_write_seconds": "histogram",
            "tinymq_store_batches_total": "counter",
        }
        for name, kind in families.items():
            self.assertEqual(s.types.get(name), kind, f"# TYPE of {name}")
            self.assertTrue(s.help.get(name), f"# HELP of {name}")
        # Every sample belongs to a family with HELP and TYPE.
        for (name, _) in s.samples:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            self.assertTrue(name in s.types or family in s.types, f"{name} has no # TYPE")
        build = [(dict(labels), v) for (n, labels), v in s.samples.items()
                 if n == "tinymq_build_info"]
        self.assertEqual(len(build), 1, build)
        self.assertRegex(build[0][0].get("version", ""), r"^\d+\.\d+\.\d+")
        self.assertEqual(build[0][1], 1)
        for qos in (0, 1, 2):
            s.get("tinymq_messages_received_total", qos=qos)
            s.get("tinymq_messages_sent_total", qos=qos)
        for reason in ("auth", "tls", "websocket", "proxy", "max_connections",
                       "max_connections_per_address"):
            s.get("tinymq_connections_refused_total", reason=reason)
        # Histograms: cumulative buckets ending in +Inf == _count.
        buckets = sorted(((float(dict(labels)["le"]), v) for (n, labels), v in s.samples.items()
                          if n == "tinymq_store_write_seconds_bucket"), key=lambda x: x[0])
        self.assertEqual(len(buckets), 17, buckets)
        self.assertEqual(buckets[-1][0], float("inf"))
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))
        self.assertEqual(buckets[-1][1], s.get("tinymq_store_write_seconds_count"))

        status, headers, body = self.http("HEAD", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        self.assertEqual(body, b"")
        status, _, _ = self.http("GET", "/metrics?name[]=x")
        self.assertEqual(status, 200, "a query string is ignored")
        status, _, _ = self.http("GET", "/")
        self.assertEqual(status, 200)
        status, _, _ = self.http("GET", "/nope")
        self.assertEqual(status, 404)
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(self.url("/nope"), timeout=WAIT)
        self.assertEqual(caught.exception.code, 404)
        status, headers, _ = self.http("POST", "/metrics", b"x=1")
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("allow", "").replace(" ", ""), "GET,HEAD")
        # A malformed request: 400, then closed.
        with socket.create_connection((HOST, self.metrics_port), timeout=WAIT) as sock:
            sock.sendall(b"NONSENSE\r\n\r\n")
            data = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:80])
        # Still serving.
        self.scrape()

    def test_counters_move_with_traffic(self):
        # The start-up probe's connection is counted once the snapshot has it.
        base = self.wait_metrics(lambda s: s.get("tinymq_connections_accepted_total") >= 1,
                                 "the start-up probe's connection")
        time.sleep(1.1)  # one more snapshot, so that `base` is settled
        base = self.scrape()
        b = base.get
        self.assertGreater(base.total("tinymq_worker_loop_seconds_count"), 0)

        subscriber = self.paho("it-metrics-sub", clean_session=False)
        subscriber.connect()
        self.assertEqual(subscriber.subscribe("it/m/#", 2), [2])
        publisher = self.paho("it-metrics-pub")
        publisher.connect()
        payloads = {0: [b"zero-a", b"zero-b", b"zero-c"], 1: [b"one-a", b"one-bb"], 2: [b"two"]}
        for qos, items in payloads.items():
            for p in items:
                publisher.publish(f"it/m/q{qos}", p, qos)
        for _ in range(6):
            subscriber.get()
        sent_bytes = sum(len(p) for items in payloads.values() for p in items)

        def delta(s: Scrape, name: str, **labels) -> float:
            return s.get(name, **labels) - base.get(name, **labels)

        def moved(s: Scrape) -> bool:
            by_qos = {0: 3, 1: 2, 2: 1}
            return (all(delta(s, "tinymq_messages_received_total", qos=q) == n
                        and delta(s, "tinymq_messages_sent_total", qos=q) == n
                        for q, n in by_qos.items())
                    and delta(s, "tinymq_connections_accepted_total") >= 2
                    and delta(s, "tinymq_clients_connected") == 2
                    and delta(s, "tinymq_subscriptions") == 1
                    and delta(s, "tinymq_store_write_seconds_count") > 0)

        s = self.wait_metrics(moved, "the traffic's messages, connections and subscription")
        g = s.get
        self.assertEqual(g("tinymq_connections"), b("tinymq_connections") + 2)
        self.assertEqual(g("tinymq_sessions"), b("tinymq_sessions") + 2)
        self.assertEqual(s.total("tinymq_publish_bytes_received_total"),
                         base.total("tinymq_publish_bytes_received_total") + sent_bytes)
        self.assertEqual(s.total("tinymq_publish_bytes_sent_total"),
                         base.total("tinymq_publish_bytes_sent_total") + sent_bytes)
        # Whole packets: more than the payloads alone, both ways.
        self.assertGreater(g("tinymq_bytes_received_total"),
                           b("tinymq_bytes_received_total") + sent_bytes)
        self.assertGreater(g("tinymq_bytes_sent_total"), b("tinymq_bytes_sent_total") + sent_bytes)
        self.assertGreater(g("tinymq_store_batches_total"), b("tinymq_store_batches_total"))
        self.assertGreater(s.total("tinymq_worker_loop_seconds_count"),
                           base.total("tinymq_worker_loop_seconds_count"))
        self.assertEqual(g("tinymq_connections_closed_total"),
                         b("tinymq_connections_closed_total"))

        # A retained message, then its deletion.
        publisher.publish("it/m/retained", b"kept", 1, retain=True)
        subscriber.get()
        self.wait_metrics(lambda s: s.get("tinymq_retained_messages")
                          == b("tinymq_retained_messages") + 1, "one more retained message")
        publisher.publish("it/m/retained", b"", 1, retain=True)
        subscriber.get()
        self.wait_metrics(lambda s: s.get("tinymq_retained_messages")
                          == b("tinymq_retained_messages"), "the retained message deleted")

        # The persistent subscriber goes away: a QoS 1 message waits in its queue, a QoS 0 one
        # is dropped (an offline session keeps none).
        subscriber.disconnect()
        mid = self.scrape()
        publisher.publish("it/m/offline", b"queued", 1)
        publisher.publish("it/m/offline", b"dropped", 0)
        self.wait_metrics(
            lambda s: (s.get("tinymq_queued_messages") == mid.get("tinymq_queued_messages") + 1
                       and s.get("tinymq_dropped_deliveries_total", cause="offline_qos0")
                       == mid.get("tinymq_dropped_deliveries_total", cause="offline_qos0") + 1
                       and s.get("tinymq_clients_connected") == b("tinymq_clients_connected") + 1
                       and s.get("tinymq_connections_closed_total")
                       == b("tinymq_connections_closed_total") + 1),
            "the queued QoS 1, the dropped QoS 0 and the closed connection")
        again = self.paho("it-metrics-sub", clean_session=False)
        again.connect()
        m = again.get()
        self.assertEqual((m.topic, m.payload), ("it/m/offline", b"queued"))
        self.wait_metrics(lambda s: s.get("tinymq_queued_messages")
                          == mid.get("tinymq_queued_messages"), "the queue drained")
        again.disconnect()
        publisher.disconnect()
        # Eight more clients come and go: with two workers, some of them are accepted by one and
        # served by the other (a CONNECT hands its connection to the worker of its client id).
        for i in range(8):
            c = self.raw()
            c.connect(f"it-metrics-short-{i}")
            c.disconnect()

        # Every connection is counted once, whichever worker ends up serving it: eleven
        # accepted, eleven closed.
        end = self.wait_metrics(lambda s: s.get("tinymq_connections") == b("tinymq_connections")
                                and s.get("tinymq_clients_connected")
                                == b("tinymq_clients_connected"),
                                "every client gone")
        accepted = end.get("tinymq_connections_accepted_total")
        closed = end.get("tinymq_connections_closed_total")
        self.assertEqual(closed, b("tinymq_connections_closed_total") + 11)
        self.assertEqual(accepted - closed, end.get("tinymq_connections"),
                         "connections accepted - closed != connections open")
        self.assertEqual(accepted, b("tinymq_connections_accepted_total") + 11)

    def test_bytes_and_connections_counted_once(self):
        # Ten 3.1.1 clients send exactly CONNECT + DISCONNECT and get a 4-byte CONNACK. With two
        # workers, a CONNECT often hands its connection to the other worker (the one of its
        # client id): that must not count the connection, or the CONNECT's bytes, twice.
        self.wait_metrics(lambda s: s.get("tinymq_connections_closed_total") >= 1,
                          "the start-up probe's connection")
        time.sleep(1.1)  # one more snapshot, so that `base` is settled
        base = self.scrape()
        sent = 0
        for i in range(10):
            connect = harness.encode_connect(f"it-metrics-bytes-{i}")
            c = self.raw()
            c.send(connect)
            p = c.recv()
            self.assertEqual((p.type, p.return_code), (CONNACK, 0))
            c.disconnect()
            sent += len(connect) + len(harness.encode_disconnect())
        s = self.wait_metrics(
            lambda s: s.get("tinymq_connections_closed_total")
            == base.get("tinymq_connections_closed_total") + 10
            and s.get("tinymq_connections") == base.get("tinymq_connections"),
            "ten connections closed")
        time.sleep(1.1)  # and one more: every worker's figures after the last close
        s = self.scrape()

        def delta(name: str) -> float:
            return s.get(name) - base.get(name)

        self.assertEqual(delta("tinymq_bytes_sent_total"), 10 * 4, "ten CONNACKs")
        self.assertEqual(delta("tinymq_bytes_received_total"), sent,
                         "ten CONNECTs and DISCONNECTs, in bytes")
        self.assertEqual(delta("tinymq_connections_accepted_total"), 10)
        self.assertEqual(delta("tinymq_connections_closed_total"), 10)

    def test_refusals_are_counted_by_reason(self):
        base = self.scrape()
        reasons = ("auth", "tls", "websocket", "proxy", "max_connections",
                   "max_connections_per_address")

        # auth: a wrong password.
        c = self.raw()
        c.send(harness.encode_connect("it-metrics-bad-pw", username="alice", password="nope"))
        p = c.recv()
        self.assertEqual((p.type, p.return_code), (CONNACK, 5))
        c.expect_closed()
        # proxy: a plain CONNECT on the PROXY listener.
        c = self.raw(self.proxy_port)
        c.send(harness.encode_connect("it-metrics-no-proxy-header"))
        try:
            self.assertEqual(c.expect_closed(), [])
        except ConnectionResetError:
            pass
        # websocket: an HTTP request that is not an upgrade.
        with socket.create_connection((HOST, self.ws_port), timeout=WAIT) as sock:
            sock.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            try:
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
            except ConnectionResetError:
                pass
        self.assertFalse(answer.startswith(b"HTTP/1.1 101"), answer[:80])
        # A protocol error: a second CONNECT on a connected client.
        c = self.raw()
        c.connect("it-metrics-twice")
        c.send(harness.encode_connect("it-metrics-twice"))
        c.expect_closed()
        # An ACL denial: a client publishing to $SYS/.
        c = self.raw()
        c.connect("it-metrics-sys")
        c.publish_and_complete("$SYS/broker/uptime", b"spoofed", 1)
        c.disconnect()
        # And one good password, which is no refusal.
        c = self.raw()
        c.connect("it-metrics-alice", username="alice", password="alice-pw")
        c.disconnect()

        expected = {"auth": 1, "proxy": 1, "websocket": 1}

        def counted(s: Scrape) -> bool:
            return (all(s.get("tinymq_connections_refused_total", reason=r)
                        == base.get("tinymq_connections_refused_total", reason=r)
                        + expected.get(r, 0) for r in reasons)
                    and s.get("tinymq_forced_disconnects_total", reason="protocol_error")
                    == base.get("tinymq_forced_disconnects_total", reason="protocol_error") + 1
                    and s.get("tinymq_acl_denied_total", action="publish")
                    == base.get("tinymq_acl_denied_total", action="publish") + 1)

        self.wait_metrics(counted, "one refusal each for auth, proxy and websocket, one protocol "
                          "error and one ACL denial")


@harness.not_on_mosquitto("tinymq's [metrics] table")
class MetricsOffTest(BrokerCase):

    def test_metrics_listener_is_off_by_default(self):
        self.assertTrue(harness.wait_until(lambda: "listening on" in self.broker.log(), WAIT),
                        self.broker.log_tail())
        c = self.raw()
        c.connect("it-metrics-off")
        c.disconnect()
        self.assertTrue(harness.wait_until(
            lambda: "client it-metrics-off disconnected" in self.broker.log(), WAIT))
        self.assertNotIn("metrics:", self.broker.log())


if __name__ == "__main__":
    harness.main()
