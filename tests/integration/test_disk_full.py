#!/usr/bin/python3
"""Disk full (issue #6, docs/durability.md "Disk full"): tinymq with its data directory on a small
filesystem that the test fills up, then frees.

While a write of the store fails the broker logs an error ("cannot write"), keeps the
acknowledgements it holds, and refuses new QoS 1/2 PUBLISHes: MQTT 5 clients get PUBACK / PUBREC
0x97 (Quota exceeded), 3.1.1 clients get no acknowledgement; QoS 0 and everything else go on. It
retries every second; once space is back it logs "store writable again", the held
acknowledgements go out and new PUBLISHes are acknowledged as before. A PUBLISH refused was not
accepted: it is not retained.

A connection's output is written in order, and a held acknowledgement holds back whatever was
queued for that connection after it (acknowledgements go out in the order of the PUBLISHes, as
§4.6 asks). So the publisher whose PUBLISH hit the full disk hears nothing more while the disk
stays full, its 0x97 acknowledgements included: they follow the held one once space is back. The
refusals while full are therefore checked on another connection, and the held publisher's
acknowledgements after.

The filesystem is a 64 MiB tmpfs (RocksDB resumes only with 16 MiB free, so it must be larger than
that), mounted by one of:

* `userns` (preferred): in a private mount namespace: the broker runs under
  `unshare --user --map-root-user --mount sh -c 'mount -t tmpfs ... && exec tinymq ...'`, and the
  test reaches the filesystem through /proc/<broker pid>/root/<mount point>. The mount dies with
  the broker, whatever happens to the test;
* `mount`: where user namespaces are not available, as root, on the host, on a directory of the
  broker's temporary directory, unmounted in clean-up (after the broker has stopped).

If neither works the tests are skipped (the reason says why). TINYMQ_DISKFULL_FS=mount|userns
forces one (e.g. userns as root, to check that path). tinymq only: mosquitto keeps no store.

Filling: a filler file leaves LEAVE_FREE bytes free, then one client publishes retained QoS 1
messages of PAYLOAD bytes (each one a write to the store) until one is not acknowledged and the
broker logs "cannot write". RocksDB preallocates its write-ahead log (1.1 x a column family's
write buffer: several MiB), so that much goes through before a write reaches the full disk: hence
the large payloads. Removing the filler gives the space back.
"""

from __future__ import annotations

import errno
import faulthandler
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402
from harness import PINGRESP, PUBACK, PUBREC, TEST_TIMEOUT, WAIT, wait_until  # noqa: E402

UNSHARE = shutil.which("unshare")
MOUNT = shutil.which("mount") or "/bin/mount"
UMOUNT = shutil.which("umount") or "/bin/umount"

FS_SIZE = 64 << 20
# Free space the filler leaves; the store fills it up.
LEAVE_FREE = 300 << 10
# Payload of the retained messages that fill the store.
PAYLOAD = b"f" * (256 << 10)
# Bounds on filling the store: more than the whole filesystem, and time.
FILL_MAX_PUBLISHES = (FS_SIZE // len(PAYLOAD)) * 2
FILL_TIME = 10.0
# An acknowledgement not there this long after its PUBLISH may be held: then the broker's log
# must say "cannot write" (within WAIT s) unless the acknowledgement comes meanwhile.
HELD_AFTER = 1.0
# The broker retries every second; after the filler is removed it must acknowledge within this.
RECOVERY = 12.0
# 3.1.1: how long a refused PUBLISH must stay unanswered.
SILENCE = 3.0
# MQTT 5 reason codes of an acknowledgement.
QUOTA_EXCEEDED = 0x97
ACCEPTED = (mqtt5.SUCCESS, mqtt5.NO_MATCHING_SUBSCRIBERS)

MOUNT_OPTIONS = f"size={FS_SIZE >> 20}m"
# The wrapper of the userns mode: mount the tmpfs ($1: options) on $2, then become tinymq.
USERNS_WRAPPER = 'mount -t tmpfs -o "$1" tmpfs "$2" && shift 2 && exec "$@"'


# --------------------------------------------------------------------------------------------
# The small filesystem.

_mode: Optional[tuple[Optional[str], str]] = None  # (mode or None, why not) once probed


def _probe(argv: list[str]) -> tuple[bool, str]:
    try:
        r = harness.run_command(argv, timeout=10.0)
    except (AssertionError, OSError) as e:
        return False, str(e)
    return r.returncode == 0, r.stderr.decode(errors="replace").strip()


def filesystem_mode() -> tuple[Optional[str], str]:
    """("mount" | "userns", "") if a 64 MiB tmpfs can be had, else (None, why not). Probed once,
    on a temporary directory (a tmpfs mounted there on the host is unmounted at once)."""
    global _mode
    if _mode is not None:
        return _mode
    forced = os.environ.get("TINYMQ_DISKFULL_FS", "").strip().lower()
    if forced not in ("", "mount", "userns"):
        raise RuntimeError(f"TINYMQ_DISKFULL_FS must be mount or userns, got {forced!r}")
    reasons = []
    probe_dir = tempfile.mkdtemp(prefix="tinymq-it-diskfull-probe-")
    try:
        if forced in ("", "userns"):
            if UNSHARE is None:
                reasons.append("userns: no unshare command")
            else:
                ok, err = _probe([UNSHARE, "--user", "--map-root-user", "--mount", "sh", "-c",
                                  'mount -t tmpfs -o "$1" tmpfs "$2"', "sh", MOUNT_OPTIONS,
                                  probe_dir])
                if ok:
                    _mode = ("userns", "")
                    return _mode
                reasons.append(f"unshare --user --map-root-user --mount, then mount -t tmpfs, "
                               f"failed: {err}")
        if forced in ("", "mount"):
            if os.geteuid() != 0:
                reasons.append("mount: not root")
            else:
                ok, err = _probe([MOUNT, "-t", "tmpfs", "-o", MOUNT_OPTIONS, "tmpfs", probe_dir])
                if os.path.ismount(probe_dir):
                    unmount(Path(probe_dir))
                if ok:
                    _mode = ("mount", "")
                    return _mode
                reasons.append(f"mount -t tmpfs as root failed: {err}")
    finally:
        try:
            os.rmdir(probe_dir)
        except OSError:
            pass
    _mode = (None, "no small filesystem to fill: " + "; ".join(reasons))
    return _mode


def mount_tmpfs(path: Path) -> None:
    r = harness.run_command([MOUNT, "-t", "tmpfs", "-o", MOUNT_OPTIONS, "tmpfs", str(path)])
    if r.returncode != 0:
        raise AssertionError(f"mount -t tmpfs on {path} failed: "
                             f"{r.stderr.decode(errors='replace')}")


def unmount(path: Path) -> None:
    """Unmounts `path` (lazily if it is still busy): never leaves it mounted."""
    if not os.path.ismount(path):
        return
    r = harness.run_command([UMOUNT, str(path)])
    if os.path.ismount(path):
        harness.run_command([UMOUNT, "-l", str(path)])
    if os.path.ismount(path):
        raise AssertionError(f"{path} is still mounted after umount: "
                             f"{r.stderr.decode(errors='replace')}")


class DiskFullBroker(harness.Broker):
    """tinymq with its data directory on a 64 MiB tmpfs at `<broker dir>/fs` (mode "mount": on
    the host, mounted by the test; mode "userns": in the broker's own mount namespace)."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.mount_point = self.dir / "fs"
        self.mount_point.mkdir()
        self.data_dir = self.mount_point / "data"

    def _command(self) -> list[str]:
        argv = super()._command()
        if self.mode == "userns":
            # unshare (no --fork) and `exec` keep one process: self.proc.pid is tinymq's.
            return [UNSHARE, "--user", "--map-root-user", "--mount", "sh", "-c", USERNS_WRAPPER,
                    "sh", MOUNT_OPTIONS, str(self.mount_point), *argv]
        return argv

    def fs(self) -> Path:
        """The tmpfs as this process sees it."""
        if self.mode == "userns":
            assert self.proc is not None, "the broker is not running"
            return Path(f"/proc/{self.proc.pid}/root{self.mount_point}")
        return self.mount_point


# --------------------------------------------------------------------------------------------
# The tests.


@harness.not_on_mosquitto("no store that refuses PUBLISHes on a full disk (tinymq's --data-dir)")
class DiskFullTest(mqtt5.V5TestCase):

    def setUp(self) -> None:
        # harness.BrokerTestCase.setUp, with the tmpfs mounted between the Broker object and the
        # process, and unmounted after the process stops and before its directory is removed.
        faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)
        mode, why = filesystem_mode()
        if mode is None:
            self.skipTest(why)
        self.broker = DiskFullBroker(mode)
        self.addCleanup(self.broker.cleanup)
        if mode == "mount":
            mount_tmpfs(self.broker.mount_point)
            self.addCleanup(unmount, self.broker.mount_point)
        self.broker.start()
        self.addCleanup(self._stop_broker)
        self.port = self.broker.port
        self.fs = self.broker.fs()
        self.topic_of: dict[int, str] = {}
        # No false pass: the store is on the small filesystem.
        st = os.statvfs(self.fs)
        self.assertEqual(st.f_blocks * st.f_frsize, FS_SIZE,
                         f"{self.fs} is not the {FS_SIZE >> 20} MiB tmpfs")
        self.assertTrue(wait_until(lambda: (self.fs / "data" / "CURRENT").exists()),
                        f"no RocksDB store in {self.fs / 'data'}\n{self.broker.log_tail()}")

    # Helpers. ----------------------------------------------------------------------------

    def free_bytes(self) -> int:
        st = os.statvfs(self.fs)
        return st.f_bavail * st.f_frsize

    def fill(self) -> None:
        """Writes a filler file that leaves LEAVE_FREE bytes free."""
        size = self.free_bytes() - LEAVE_FREE
        self.assertGreater(size, 16 << 20, "the store already takes most of the filesystem")
        chunk = bytes(1 << 20)
        try:
            with open(self.fs / "filler", "wb") as f:
                while size > 0:
                    n = min(size, len(chunk))
                    f.write(chunk[:n])
                    size -= n
        except OSError as e:  # the store grew meanwhile: full is what we want
            if e.errno != errno.ENOSPC:
                raise
        self.assertLessEqual(self.free_bytes(), LEAVE_FREE + (64 << 10))

    def free(self) -> None:
        os.remove(self.fs / "filler")
        self.assertGreater(self.free_bytes(), 32 << 20)

    def assert_alive(self) -> None:
        self.assertTrue(self.broker.alive(), "the broker died:\n" + self.broker.log_tail(60))

    def log_has(self, text: str, timeout: float = WAIT) -> bool:
        return wait_until(lambda: text in self.broker.log(), timeout, interval=0.05)

    def wait_log(self, text: str, timeout: float = WAIT) -> None:
        if not self.log_has(text, timeout):
            self.fail(f"no {text!r} in the broker's log after {timeout} s:\n"
                      + self.broker.log_tail(30))

    def fill_store(self, pub, v5: bool) -> int:
        """Publishes retained QoS 1 messages of PAYLOAD bytes until one is not acknowledged and
        the broker has logged "cannot write"; returns that PUBLISH's packet id (held)."""
        deadline = time.monotonic() + FILL_TIME
        for i in range(FILL_MAX_PUBLISHES):
            if time.monotonic() > deadline:
                break
            topic = f"it/df/fill/{i}"
            pid = pub.publish(topic, PAYLOAD, qos=1, retain=True)
            self.topic_of[pid] = topic
            try:
                p = pub.recv(HELD_AFTER)
            except TimeoutError:
                # Held, or merely slow: the log tells (and a slow acknowledgement may come).
                wait_end = time.monotonic() + WAIT
                while "cannot write" not in self.broker.log():
                    try:
                        p = pub.recv(0.05)
                        break
                    except TimeoutError:
                        if time.monotonic() > wait_end:
                            self.fail(f"PUBLISH {pid} neither acknowledged nor refused, and no "
                                      f"'cannot write' in the log after {HELD_AFTER + WAIT} s\n"
                                      + self.broker.log_tail(30))
                else:
                    return pid
            self.assertEqual((p.type, p.packet_id), (PUBACK, pid), f"unexpected packet {p!r}")
            if v5:
                self.assertIn(p.reason_code, ACCEPTED,
                              f"before the disk was full: {p!r}\n" + self.broker.log_tail(20))
            self.assert_alive()
        self.fail(f"the broker acknowledged every retained QoS 1 PUBLISH ({i + 1} of "
                  f"{len(PAYLOAD)} bytes, {self.free_bytes()} bytes free) within {FILL_TIME} s: "
                  f"the disk never filled up?\n" + self.broker.log_tail(30))

    def collect_retained(self, client) -> set:
        """The topics of the retained messages a fresh subscription gets (until 1 s of
        silence)."""
        got = set()
        while True:
            try:
                p = client.recv(1.0)
            except TimeoutError:
                return got
            self.assertEqual(p.type, harness.PUBLISH, f"unexpected packet {p!r}")
            self.assertTrue(p.retain, f"not retained: {p!r}")
            got.add(p.topic)
            if p.qos == 1:
                client.puback(p.packet_id)

    # MQTT 5. -----------------------------------------------------------------------------

    def test_v5_quota_exceeded_while_full_and_success_after(self):
        pub = self.connected5("it-df-pub5")
        self.fill()
        held = self.fill_store(pub, v5=True)
        self.wait_log("cannot write")

        # The publisher goes on: QoS 1 and 2 PUBLISHes, refused. Their acknowledgements (0x97)
        # queue up behind the held one: nothing comes back while the disk is full.
        behind = []  # (packet type, packet id, topic) of what pub must get after the held PUBACK
        for topic, qos in (("it/df/refused/pub-q1", 1), ("it/df/refused/pub-q2", 2)):
            pid = pub.publish(topic, b"refused", qos=qos, retain=True)
            behind.append((PUBACK if qos == 1 else PUBREC, pid, topic))

        # Another publisher: every QoS 1/2 PUBLISH gets 0x97 at once, retained or not. A PUBREC
        # >= 0x80 ends the QoS 2 flow (5.0 [MQTT-4.3.3-4]): no PUBREL.
        other = self.connected5("it-df-other5")
        for topic, qos, retain in (("it/df/refused/q1", 1, True), ("it/df/refused/q2", 2, True),
                                   ("it/df/refused/q1-plain", 1, False),
                                   ("it/df/refused/q2-plain", 2, False),
                                   ("it/df/refused/q1-again", 1, True)):
            pid = other.publish(topic, b"refused", qos=qos, retain=retain)
            p = other.expect(PUBACK if qos == 1 else PUBREC, pid)
            self.assertEqual(p.reason_code, QUOTA_EXCEEDED,
                             f"QoS {qos} PUBLISH on {topic} while the store cannot write: {p!r}")
        other.pingreq()
        other.expect(PINGRESP)

        # QoS 0 and everything else go on: new connections, a subscription, QoS 0 messages (from
        # the held publisher too).
        sub = self.connected5("it-df-sub5")
        self.assertEqual(sub.subscribe([("it/df/q0", 0)]).reason_codes, [mqtt5.SUCCESS])
        for n in range(3):
            other.publish("it/df/q0", f"q0-{n}".encode(), qos=0)
        pub.publish("it/df/q0", b"q0-from-pub", qos=0)
        got = sorted(m.payload for m in sub.receive_messages(4))
        self.assertEqual(got, [b"q0-0", b"q0-1", b"q0-2", b"q0-from-pub"])
        # The held acknowledgement waits, and what is behind it.
        pub.expect_silence(0.5)
        self.assertTrue(self.log_has("cannot write", 0))
        self.assertNotIn("store writable again", self.broker.log())
        self.assert_alive()

        self.free()
        # Within RECOVERY s: a new retained QoS 1 PUBLISH is acknowledged with success (sent
        # again while it is refused with 0x97) ...
        deadline = time.monotonic() + RECOVERY
        refused_topics = set()
        probes = 0
        while True:
            if time.monotonic() > deadline:
                self.fail(f"no successful PUBACK {RECOVERY} s after the space came back "
                          f"({probes} PUBLISHes refused)\n" + self.broker.log_tail(30))
            probe_topic = f"it/df/after/{probes}"
            probes += 1
            pid = other.publish(probe_topic, b"after", qos=1, retain=True)
            p = other.expect(PUBACK, pid, timeout=max(0.1, deadline - time.monotonic()))
            if p.reason_code != QUOTA_EXCEEDED:
                self.assertIn(p.reason_code, ACCEPTED, f"after the space came back: {p!r}")
                break
            refused_topics.add(probe_topic)
            time.sleep(0.2)
        self.wait_log("store writable again")
        # ... the held PUBLISH is acknowledged with success, then the ones behind it with 0x97,
        # in order.
        p = pub.expect(PUBACK, held, timeout=max(1.0, deadline - time.monotonic()))
        self.assertIn(p.reason_code, ACCEPTED, f"the held acknowledgement: {p!r}")
        for ptype, pid, topic in behind:
            p = pub.expect(ptype, pid)
            self.assertEqual(p.reason_code, QUOTA_EXCEEDED,
                             f"PUBLISH on {topic}, sent while the disk was full: {p!r}")
        # ... and the publisher is acknowledged as before.
        p = pub.publish_and_complete("it/df/after/pub", b"after", qos=1, retain=True)
        self.assertIn(p.reason_code, ACCEPTED)
        p = pub.publish_and_complete("it/df/after/pub-q2", b"after", qos=2, retain=True)
        self.assertIn(p.reason_code, ACCEPTED)

        # The held PUBLISH was kept, the refused ones were not. (QoS 1: retained QoS 0 messages
        # beyond the output high-water mark would be dropped.)
        check = self.connected5("it-df-check5")
        check.subscribe([(self.topic_of[held], 1), ("it/df/refused/#", 1), ("it/df/after/#", 1)])
        topics = self.collect_retained(check)
        self.assertIn(self.topic_of[held], topics, "the held PUBLISH was not retained")
        self.assertFalse({t for t in topics
                          if t.startswith("it/df/refused/") or t in refused_topics},
                         f"PUBLISHes refused with 0x97 were retained: {sorted(topics)}")
        self.assertTrue({probe_topic, "it/df/after/pub", "it/df/after/pub-q2"} <= topics,
                        sorted(topics))
        self.assert_alive()

    # MQTT 3.1.1. -------------------------------------------------------------------------

    def test_311_no_puback_while_full_and_puback_after(self):
        pub = self.raw_connected("it-df-pub311")
        self.fill()
        held = self.fill_store(pub, v5=False)
        self.wait_log("cannot write")
        # The held publisher goes on: dropped, it will have to send again.
        dropped = pub.publish("it/df/refused/pub", b"refused", qos=1, retain=True)

        # Another publisher: no PUBACK for SILENCE s; the connection stays open and served.
        other = self.raw_connected("it-df-other311")
        refused = other.publish("it/df/refused/other", b"refused", qos=1, retain=True)
        other.expect_silence(SILENCE)
        other.pingreq()
        other.expect(PINGRESP)
        self.assertTrue(other.is_open(0.1))
        pub.expect_silence(0.1)
        self.assertTrue(self.log_has("cannot write", 0))
        self.assertNotIn("store writable again", self.broker.log())
        self.assert_alive()

        self.free()
        # Within RECOVERY s: a new PUBLISH is acknowledged (the refused ones stay unanswered:
        # one every second until one is).
        deadline = time.monotonic() + RECOVERY
        unanswered = {refused: "it/df/refused/other"}
        probe = 0
        probes = 0
        last_probe = 0.0
        acked: set[int] = set()
        while probe not in acked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.fail(f"no PUBACK for a new PUBLISH {RECOVERY} s after the space came back "
                          f"(acknowledged: {sorted(acked)})\n" + self.broker.log_tail(30))
            if time.monotonic() - last_probe >= 1.0:
                if probe:
                    unanswered[probe] = self.topic_of[probe]
                topic = f"it/df/after/{probes}"
                probes += 1
                probe = other.publish(topic, b"after", qos=1, retain=True)
                self.topic_of[probe] = topic
                last_probe = time.monotonic()
            try:
                p = other.expect(PUBACK, timeout=min(remaining, 0.2))
            except TimeoutError:
                continue
            acked.add(p.packet_id)
        self.wait_log("store writable again")
        # The held PUBLISH is acknowledged without being sent again.
        pub.expect(PUBACK, held, timeout=max(1.0, deadline - time.monotonic()))
        # The dropped ones, sent again with DUP (3.1.1 §4.4), are acknowledged.
        pub.send(harness.encode_publish("it/df/refused/pub", b"again", 1, True, dropped,
                                        dup=True))
        pub.expect(PUBACK, dropped)
        for pid, topic in unanswered.items():
            if pid not in acked:
                other.send(harness.encode_publish(topic, b"again", 1, True, pid, dup=True))
                while pid not in acked:
                    acked.add(other.expect(PUBACK).packet_id)
        pub.publish_and_complete("it/df/after/pub", b"after", qos=1, retain=True)
        pub.publish_and_complete("it/df/after/pub-q2", b"after", qos=2, retain=True)
        self.assertTrue(pub.is_open(0.1))
        self.assert_alive()


if __name__ == "__main__":
    harness.main()
