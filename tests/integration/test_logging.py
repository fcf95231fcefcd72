#!/usr/bin/python3
"""Logging (issue #8: "Logging with spdlog: levels, one line per connect and disconnect (client
id, address, protocol version, reason), to stderr, a file or syslog, without blocking a worker on
I/O"; the keys `log_destination` and `log_file`).

  * log_destination = "file": the lines land in log_file, stderr stays empty; exactly one line
    per connect ("client ID connected from 127.0.0.1:PORT (MQTT 5.0, ...)") and one per
    disconnect ("client ID disconnected from 127.0.0.1:PORT (REASON)"), for MQTT 3.1, 3.1.1 and
    5.0, with the reasons: the client's DISCONNECT, a lost connection, a takeover, a keep-alive
    timeout, a protocol error.
  * logrotate: the file renamed, SIGHUP, new lines go to a new file at the configured path
    (created 0640), the renamed one gets no more.
  * a log_file that cannot be opened (its directory does not exist, or it is a directory): exit
    status 1 and one line on stderr naming the path; "file" without log_file, or log_file without
    "file": exit status 2 (a configuration error).
  * log_destination = "syslog": starts, serves, exits 0, nothing on stderr.
  * a log destination that stops taking lines (a FIFO nobody reads): the broker goes on serving;
    the lines that did not fit are dropped and counted, not waited for.

tinymq only: mosquitto's logging is configured differently (log_dest), and the harness does not
map these keys.
"""

from __future__ import annotations

import faulthandler
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import threading
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402
from harness import HOST, WAIT  # noqa: E402

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"
CONNECTED = re.compile(
    rf"^{STAMP} info client (\S+) connected from (\S+) \((MQTT [0-9.]+), (.*)\)$")
DISCONNECTED = re.compile(rf"^{STAMP} info client (\S+) disconnected from (\S+) \((.*)\)$")


@harness.not_on_mosquitto("tinymq's log_destination and log_file keys")
class LoggingTestCase(unittest.TestCase):

    def setUp(self):
        faulthandler.dump_traceback_later(harness.TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)
        self._closers: list = []

    def start(self, top: dict, log_name: str | None = "tinymq.log",
              **kwargs) -> harness.Broker:
        """A broker with these top-level keys; with `log_name`, log_destination "file" and
        log_file in the broker's directory (self.log_file)."""
        broker = harness.Broker(top=dict(top), **kwargs)
        self.addCleanup(broker.cleanup)
        if log_name is not None:
            self.log_file = broker.dir / log_name
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            broker.top.update({"log_destination": "file", "log_file": str(self.log_file)})
        broker.start()
        self.broker = broker
        self.port = broker.port
        self.addCleanup(self.stop_broker)
        return broker

    def stop_broker(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                pass
        self._closers.clear()
        if self.broker.alive():
            self.assertEqual(self.broker.stop(), [])

    def raw(self) -> harness.RawClient:
        c = harness.RawClient(self.port)
        self._closers.append(c.close)
        return c

    def raw5(self) -> mqtt5.Client5:
        c = mqtt5.Client5(self.port)
        self._closers.append(c.close)
        return c

    def file_text(self, path: Path | None = None) -> str:
        try:
            return (path or self.log_file).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_file(self, text: str, path: Path | None = None, timeout: float = WAIT) -> None:
        if not harness.wait_until(lambda: text in self.file_text(path), timeout, 0.05):
            self.fail(f"{text!r} not in {path or self.log_file} within {timeout} s:\n"
                      + self.file_text(path)[-3000:])


class FileDestinationTest(LoggingTestCase):

    def test_one_line_per_connect_and_disconnect(self):
        self.start({}, limits={"connect_timeout_ms": 5000})
        expected = {}  # client id -> (address, version, reason fragment)

        def address(c) -> str:
            return f"{HOST}:{c.sock.getsockname()[1]}"

        c = self.raw()
        c.connect("it-log-311")
        expected["it-log-311"] = (address(c), "MQTT 3.1.1", "client sent DISCONNECT")
        c.disconnect()

        c = self.raw5()
        c.connect("it-log-5", properties={"SessionExpiryInterval": 30})
        expected["it-log-5"] = (address(c), "MQTT 5.0", "client sent DISCONNECT")
        c.disconnect()

        c = self.raw()
        c.connect("it-log-31", protocol_name="MQIsdp", protocol_level=3)
        expected["it-log-31"] = (address(c), "MQTT 3.1", "connection lost")
        c.close()

        c = self.raw()
        c.connect("it-log-proto")
        c.send(harness.encode_connect("it-log-proto"))  # a second CONNECT: a protocol error
        c.expect_closed()
        expected["it-log-proto"] = (address(c), "MQTT 3.1.1", "protocol error")

        c = self.raw()
        c.connect("it-log-keepalive", keepalive=1)
        expected["it-log-keepalive"] = (address(c), "MQTT 3.1.1", "keep")
        c.expect_closed(WAIT)  # silent for 1.5 x its keep-alive

        first = self.raw()
        first.connect("it-log-take")
        first_address = address(first)
        second = self.raw()
        second.connect("it-log-take")
        second_address = address(second)
        first.expect_closed()
        second.disconnect()

        self.wait_file(f"client it-log-take disconnected from {second_address}")
        for client_id in expected:
            self.wait_file(f"client {client_id} disconnected from ")
        text = self.file_text()
        lines = text.splitlines()
        connects = [m.groups() for m in map(CONNECTED.match, lines) if m]
        disconnects = [m.groups() for m in map(DISCONNECTED.match, lines) if m]
        for client_id, (addr, version, reason) in expected.items():
            with self.subTest(client_id):
                mine = [g for g in connects if g[0] == client_id]
                self.assertEqual(len(mine), 1, f"connect lines of {client_id}: {mine}")
                self.assertEqual(mine[0][1:3], (addr, version))
                mine = [g for g in disconnects if g[0] == client_id]
                self.assertEqual(len(mine), 1, f"disconnect lines of {client_id}: {mine}")
                self.assertEqual(mine[0][1], addr)
                self.assertIn(reason.lower(), mine[0][2].lower())
        # The takeover: two connects, two disconnects, the first one's says why.
        take_c = [g for g in connects if g[0] == "it-log-take"]
        take_d = [g for g in disconnects if g[0] == "it-log-take"]
        self.assertEqual([g[1] for g in take_c], [first_address, second_address])
        self.assertEqual(len(take_d), 2, take_d)
        self.assertEqual(take_d[0][1], first_address)
        self.assertIn("taken over", take_d[0][2])
        self.assertEqual(take_d[1][2], "client sent DISCONNECT")

        self.stop_broker()
        # Everything went to the file, up to the last line; nothing to stderr.
        self.assertEqual(self.broker.log(), "", "stderr/stdout of a broker logging to a file")
        text = self.file_text()
        self.assertIn("listening on", text)
        self.assertRegex(text.splitlines()[-1], rf"^{STAMP} info stopped$")

    def test_logrotate_rename_then_sighup(self):
        self.start({})
        before = self.raw()
        before.connect("it-log-before")
        self.wait_file("client it-log-before connected")
        rotated = self.log_file.with_name("tinymq.log.1")
        os.rename(self.log_file, rotated)
        self.broker.proc.send_signal(signal.SIGHUP)
        # The reload's own lines go on in a new file at the configured path.
        self.wait_file("access reloaded")
        self.assertTrue(self.broker.alive())
        mode = stat.S_IMODE(os.stat(self.log_file).st_mode)
        umask = os.umask(0o022)
        os.umask(umask)
        self.assertEqual(mode, 0o640 & ~umask,
                         f"new log file mode {mode:o} (documented: 0640 minus the umask)")

        after = self.raw()
        after.connect("it-log-after")
        after.disconnect()
        before.disconnect()
        self.wait_file("client it-log-after disconnected")
        self.wait_file("client it-log-before disconnected")
        old = self.file_text(rotated)
        self.assertIn("client it-log-before connected", old)
        self.assertNotIn("it-log-after", old)
        self.assertNotIn("client it-log-before disconnected", old)
        self.assertNotIn("access reloaded", old)
        new = self.file_text()
        self.assertNotIn("client it-log-before connected", new)
        # Rotated again, with no SIGHUP yet: lines go on to the renamed file (the open one).
        rotated2 = self.log_file.with_name("tinymq.log.2")
        os.rename(self.log_file, rotated2)
        again = self.raw()
        again.connect("it-log-again")
        again.disconnect()
        self.wait_file("client it-log-again disconnected", rotated2)
        self.assertFalse(self.log_file.exists())
        self.stop_broker()
        self.assertEqual(self.broker.log(), "")
        self.assertTrue(self.file_text(rotated2).rstrip().endswith("info stopped"))


    def test_file_that_cannot_be_reopened_keeps_the_old_one(self):
        # log_file in a directory of its own, which is moved away (the open file with it).
        self.start({}, log_name="logs/tinymq.log")
        self.assertTrue(self.log_file.exists())
        moved_dir = self.log_file.parent.with_name("logs.old")
        os.rename(self.log_file.parent, moved_dir)
        moved = moved_dir / "tinymq.log"
        self.broker.proc.send_signal(signal.SIGHUP)
        self.wait_file("logging settings not reloaded", moved)
        error = [line for line in self.file_text(moved).splitlines()
                 if "logging settings not reloaded" in line]
        self.assertIn(str(self.log_file), error[0])
        self.assertTrue(self.broker.alive())
        c = self.raw()
        c.connect("it-log-kept")
        c.disconnect()
        self.wait_file("client it-log-kept disconnected", moved)
        self.assertFalse(self.log_file.parent.exists(), "the directory was created")
        # The directory back: the next SIGHUP opens a new file there.
        self.log_file.parent.mkdir()
        self.broker.proc.send_signal(signal.SIGHUP)
        self.wait_file("access reloaded")
        c = self.raw()
        c.connect("it-log-new")
        c.disconnect()
        self.wait_file("client it-log-new disconnected")
        self.assertNotIn("it-log-new", self.file_text(moved))
        self.stop_broker()
        self.assertEqual(self.broker.log(), "")


class LogFileErrorsTest(unittest.TestCase):
    """Start-up refusals: the binary run directly, bounded (a broker that unexpectedly starts is
    killed at the bound and the test fails)."""

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="tinymq-it-log-"))
        self.addCleanup(shutil.rmtree, self.dir, True)

    def run_tinymq(self, config: str | None, *args: str):
        argv = [harness.tinymq_binary()]
        if config is not None:
            path = self.dir / "tinymq.toml"
            path.write_text(config)
            argv += ["--config", str(path)]
        argv += ["--bind", HOST, "--port", "0", *args]
        return harness.run_command(argv, timeout=15.0)

    @harness.not_on_mosquitto("tinymq's log_file")
    def test_unwritable_log_file_exits_1_naming_the_path(self):
        missing = self.dir / "no-such-dir" / "tinymq.log"
        cases = {
            "config file, missing directory": (
                f'log_destination = "file"\nlog_file = "{missing}"\n', ()),
            "--log-file, missing directory": (None, ("--log-file", str(missing))),
            "log_file is a directory": (
                f'log_destination = "file"\nlog_file = "{self.dir}"\n', ()),
        }
        for what, (config, args) in cases.items():
            with self.subTest(what):
                r = self.run_tinymq(config, *args)
                err = r.stderr.decode(errors="replace")
                self.assertEqual(r.returncode, 1, f"{what}: {err}")
                self.assertEqual(r.stdout, b"")
                lines = err.strip().splitlines()
                self.assertEqual(len(lines), 1, f"{what}: {err!r}")
                path = str(self.dir) if "directory" in what and "missing" not in what \
                    else str(missing)
                self.assertIn(path, lines[0])
                self.assertTrue(lines[0].startswith("tinymq: "), lines[0])
        self.assertFalse(missing.parent.exists(), "a missing directory is not created")

    @harness.not_on_mosquitto("tinymq's log_destination and log_file")
    def test_inconsistent_keys_are_a_configuration_error(self):
        for what, config in {
            "file without log_file": 'log_destination = "file"\n',
            "log_file without file": f'log_file = "{self.dir / "x.log"}"\n',
            "unknown destination": 'log_destination = "journald"\n',
        }.items():
            with self.subTest(what):
                r = self.run_tinymq(config)
                err = r.stderr.decode(errors="replace")
                self.assertEqual(r.returncode, 2, f"{what}: {err}")
                self.assertEqual(len(err.strip().splitlines()), 1, err)
                self.assertRegex(err, r"log_(destination|file)")


class SyslogTest(LoggingTestCase):

    def test_syslog_starts_serves_and_exits_0(self):
        self.start({"log_destination": "syslog"}, log_name=None)
        c = harness.PahoClient(self.port, "it-log-syslog")
        self._closers.append(c.stop)
        c.connect()
        self.assertEqual(c.subscribe("it/log/syslog", 1), [1])
        c.publish("it/log/syslog", b"to syslog", 1)
        self.assertEqual(c.get().payload, b"to syslog")
        c.disconnect()
        self.stop_broker()  # exit status 0, checked
        self.assertNotIn("client it-log-syslog", self.broker.log(),
                         "the log went to stderr, not syslog")


class StalledDestinationTest(LoggingTestCase):

    def test_a_log_destination_that_stops_reading_does_not_stop_the_broker(self):
        # A FIFO as log_file, with a reader that never reads: once the pipe (64 KiB) and the log
        # queue are full, every further line must be dropped, not waited for.
        fifo_dir = Path(tempfile.mkdtemp(prefix="tinymq-it-log-fifo-"))
        self.addCleanup(shutil.rmtree, fifo_dir, True)
        fifo = fifo_dir / "log.fifo"
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        broker = harness.Broker(top={"log_destination": "file", "log_file": str(fifo)})
        self.addCleanup(broker.cleanup)
        broker.start()
        self.broker = broker
        self.port = broker.port
        self.addCleanup(self.stop_broker)

        # A debug line for each of these ("client ... may not publish to $SYS/..."): 30000 lines,
        # about 2 MB, far over the pipe and the 8192-line queue.
        noisy = self.raw()
        noisy.connect("it-log-noisy")
        blob = harness.encode_publish("$SYS/it/noise", b"n", 0) * 30000
        noisy.send(blob)
        noisy.pingreq()
        p = noisy.recv(timeout=20)
        self.assertEqual(p.type, harness.PINGRESP, "the noisy client's PINGREQ after its burst")

        # The broker still serves new clients, with more lines to log.
        for i in range(3):
            c = harness.PahoClient(self.port, f"it-log-after-stall-{i}")
            self._closers.append(c.stop)
            c.connect()
            self.assertEqual(c.subscribe("it/log/stall", 1), [1])
            c.publish("it/log/stall", b"still serving", 1)
            self.assertEqual(c.get().payload, b"still serving")
            c.disconnect()

        # Let the log drain before the stop, which writes what is queued.
        chunks: list[bytes] = []

        def drain():
            os.set_blocking(reader, True)
            while True:
                data = os.read(reader, 1 << 16)
                if not data:
                    return
                chunks.append(data)

        drainer = threading.Thread(target=drain, daemon=True)
        drainer.start()
        noisy.close()
        self.stop_broker()
        drainer.join(WAIT)
        text = b"".join(chunks).decode(errors="replace")
        # What could not be written was counted and reported at the end (after "stopped").
        self.assertIn(" info stopped\n", text)
        self.assertRegex(text.rstrip().splitlines()[-1],
                         r"warning \d+ log line\(s\) were dropped")


if __name__ == "__main__":
    harness.main()
