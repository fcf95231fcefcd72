#!/usr/bin/python3
"""Bad state on disk (issue #6, docs/durability.md): a data directory that cannot be a store, a
damaged store and a store another tinymq holds each stop the start with exit status 1 and one line
naming the directory and the way out; `--repair` brings a damaged store back with what it held.
In every durability mode a retained message and a persistent session's queued message survive a
clean restart."""

import faulthandler
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import PUBLISH  # noqa: E402


@unittest.skipIf(harness.is_mosquitto(), "tinymq's data directory")
class StoreErrorsTest(unittest.TestCase):

    def setUp(self):
        faulthandler.dump_traceback_later(harness.TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)

    def broker(self) -> harness.Broker:
        b = harness.Broker(data_dir=True)
        self.addCleanup(b.cleanup)
        return b

    def refused(self, broker: harness.Broker, *extra: str) -> str:
        """Runs the broker's command (plus `extra`); it must exit 1 at once. Returns stderr."""
        result = harness.run_command(broker.command_for_port(broker.port or 0) + list(extra),
                                     timeout=30)
        err = result.stderr.decode(errors="replace")
        self.assertEqual(result.returncode, 1, err)
        for marker in harness.SANITIZER_MARKERS:
            self.assertNotIn(marker, err)
        return err

    def test_a_file_where_the_directory_should_be(self):
        b = self.broker()
        b.data_dir.write_text("not a directory\n")
        err = self.refused(b)
        self.assertIn(str(b.data_dir), err)
        self.assertIn("move the directory aside", err)

    def test_a_damaged_store_is_refused_and_repair_keeps_what_it_held(self):
        b = self.broker()
        b.start()
        c = harness.RawClient(b.port)
        c.connect("keeper", clean_session=False)
        c.subscribe([("kept/#", 1)])
        c.send(harness.encode_disconnect())
        p = harness.RawClient(b.port)
        p.connect("publisher")
        p.publish_and_complete("kept/retained", b"still here", qos=1, retain=True)
        p.publish_and_complete("kept/queued", b"for keeper", qos=1)
        b.stop()
        # RocksDB's CURRENT names the live MANIFEST; garbage there is a damaged store.
        (b.data_dir / "CURRENT").write_text("garbage\n")
        err = self.refused(b)
        self.assertIn(str(b.data_dir), err)
        self.assertIn("--repair", err)
        # --repair rebuilds it from its tables and logs: the state is back.
        b.extra_args.append("--repair")
        b.start()
        c = harness.RawClient(b.port)
        connack = c.connect("keeper", clean_session=False)
        self.assertTrue(connack.session_present)
        # Both messages were queued for it (it subscribed to kept/#), in order.
        for topic, payload in (("kept/retained", b"still here"), ("kept/queued", b"for keeper")):
            got = c.expect(PUBLISH)
            self.assertEqual((got.topic, got.payload), (topic, payload))
            c.puback(got.packet_id)
        c.subscribe([("kept/retained", 0)])
        got = c.expect(PUBLISH)
        self.assertEqual((got.topic, got.payload, got.retain), ("kept/retained", b"still here", True))

    def test_every_durability_mode_keeps_the_state_across_a_clean_restart(self):
        for mode in ("none", "batch", "always"):
            with self.subTest(durability=mode):
                b = harness.Broker(data_dir=True, durability=mode)
                self.addCleanup(b.cleanup)
                b.start()
                c = harness.RawClient(b.port)
                c.connect("keeper", clean_session=False)
                c.subscribe([("mode/queued", 1)])
                c.send(harness.encode_disconnect())
                p = harness.RawClient(b.port)
                p.connect("publisher")
                p.publish_and_complete("mode/queued", mode.encode(), qos=1)
                p.publish_and_complete("mode/retained", b"kept", qos=1, retain=True)
                b.stop()
                b.start()
                c = harness.RawClient(b.port)
                self.assertTrue(c.connect("keeper", clean_session=False).session_present)
                got = c.expect(PUBLISH)
                self.assertEqual((got.topic, got.payload), ("mode/queued", mode.encode()))
                c.puback(got.packet_id)
                c.subscribe([("mode/retained", 0)])
                got = c.expect(PUBLISH)
                self.assertEqual((got.payload, got.retain), (b"kept", True))
                b.stop()

    def test_a_store_in_use_by_another_tinymq_is_refused(self):
        b = self.broker()
        b.start()
        other = harness.Broker(data_dir=b.data_dir)
        self.addCleanup(other.cleanup)
        other.port = harness.free_port()
        err = self.refused(other)
        self.assertIn(str(b.data_dir), err)
        self.assertIn("another", err)


if __name__ == "__main__":
    harness.main()
