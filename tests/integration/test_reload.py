#!/usr/bin/python3
"""SIGHUP reloads the configuration (issue #8) while clients stay connected.

Each test writes the broker's TOML file itself, sends SIGHUP and checks what changed for new
connections, and that a client connected before the reload goes on publishing and receiving on
the same socket (paho never reconnected). The broker must stay up, and exit 0 on SIGTERM at the
end (the harness checks).

  * log level: the file says "info" (the command line says nothing: the harness's
    `--log-level debug` would override the file, so ReloadBroker drops it): no debug line; the
    file says "debug", SIGHUP: a new connection logs "new connection from" (debug); back to
    "warn": a new client's "connected" (info) line is not logged.
  * limits: [limits] max_packet_size 1024 after SIGHUP: a new 5.0 client's CONNACK announces
    Maximum Packet Size 1024, a 2000-byte PUBLISH from a new 3.1.1 client closes it, while the
    old connections stay up (and keep what their CONNACK announced).
  * a broken file (a TOML syntax error, then a value out of range): "configuration not
    reloaded", the old limits still apply, the broker still serves; a fixed file reloads again.
  * the password file: a user added with tinymq-passwd can connect after SIGHUP; a user deleted
    cannot; a broken password file keeps the old one.

tinymq only (mosquitto reloads a different set of settings on SIGHUP, from its own file format).
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mqtt5  # noqa: E402
from harness import CONNACK, WAIT  # noqa: E402

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


class ReloadBroker(harness.Broker):
    """harness.Broker without `--log-level debug` on the command line, so that the file's
    log_level counts (the command line overrides the file, on SIGHUP too)."""

    def _command(self) -> list[str]:
        argv = super()._command()
        for i in range(len(argv) - 1):
            if argv[i] == "--log-level":
                del argv[i:i + 2]
                break
        return argv


@harness.not_on_mosquitto("tinymq's SIGHUP reload of its TOML file")
class ReloadTestCase(unittest.TestCase):

    def setUp(self):
        faulthandler.dump_traceback_later(harness.TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)
        self.files = Path(tempfile.mkdtemp(prefix="tinymq-it-reload-"))
        self.addCleanup(shutil.rmtree, self.files, True)
        self._closers: list = []

    def start(self, top: dict, **kwargs) -> None:
        self.broker = ReloadBroker(top=top, **kwargs).start()
        self.addCleanup(self.broker.cleanup)
        self.addCleanup(self.stop_broker)
        self.port = self.broker.port
        self.config_path = self.broker.dir / "tinymq.toml"
        self.assertTrue(self.config_path.exists())
        self.assertNotIn("--log-level", self.broker.proc.args)

    def stop_broker(self):
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                pass
        problems = self.broker.stop()
        self.assertEqual(problems, [])

    # Clients. -------------------------------------------------------------------------------

    def paho(self, client_id: str, **kwargs) -> harness.PahoClient:
        c = harness.PahoClient(self.port, client_id, **kwargs)
        self._closers.append(c.stop)
        return c

    def paho5(self, client_id: str, **kwargs) -> mqtt5.Paho5:
        c = mqtt5.Paho5(self.port, client_id, **kwargs)
        self._closers.append(c.stop)
        return c

    def raw(self) -> harness.RawClient:
        c = harness.RawClient(self.port)
        self._closers.append(c.close)
        return c

    def old_client(self, client_id: str = "it-reload-old", username: str | None = None,
                   password: str | None = None) -> harness.PahoClient:
        """A paho client connected (and subscribed to its own topic) before the reloads, whose
        connections are counted so that a silent reconnect would show."""
        c = self.paho(client_id)
        if username is not None:
            c.client.username_pw_set(username, password)
        c.connects = 0
        original = c.client.on_connect

        def counting(*args, **kwargs):
            c.connects += 1
            original(*args, **kwargs)

        c.client.on_connect = counting
        c.connect()
        c.topic = f"it/reload/{client_id}"
        self.assertEqual(c.subscribe(c.topic, 1), [1])
        c.local_port = c.client.socket().getsockname()[1]
        c.rounds = 0
        self.check_old_client(c)
        return c

    def check_old_client(self, c: harness.PahoClient) -> None:
        """Still the same connection, and it still publishes and receives QoS 1."""
        c.rounds += 1
        payload = f"round {c.rounds}".encode()
        c.publish(c.topic, payload, 1)
        m = c.get()
        self.assertEqual((m.topic, m.payload, m.qos), (c.topic, payload, 1))
        self.assertEqual(c.connects, 1, "the old client had to reconnect")
        self.assertFalse(c.disconnected.is_set(), "the old client was disconnected")
        self.assertEqual(c.client.socket().getsockname()[1], c.local_port)

    # Reloads. -------------------------------------------------------------------------------

    def wait_log(self, text: str, count: int = 1, timeout: float = WAIT) -> None:
        """Waits (bounded) until `text` is in the log at least `count` times."""
        if not harness.wait_until(lambda: self.broker.log().count(text) >= count, timeout, 0.05):
            self.fail(f"{text!r} (x{count}) not in the broker log within {timeout} s; tail:\n"
                      + self.broker.log_tail(30))

    def reload(self, config: str, expect: str = "access reloaded") -> None:
        """Writes the configuration file, sends SIGHUP and waits for the line that ends the
        reload: "access reloaded" (logged by every reload that parsed), or `expect`."""
        self.config_path.write_text(config)
        before = self.broker.log().count(expect)
        self.broker.proc.send_signal(signal.SIGHUP)
        self.wait_log(expect, before + 1)
        self.assertTrue(self.broker.alive(), "the broker died on SIGHUP:\n"
                        + self.broker.log_tail(30))


class LogLevelReloadTest(ReloadTestCase):

    def connect_new(self, client_id: str) -> int:
        """A new 3.1.1 client connects and leaves; returns its local port."""
        c = self.raw()
        c.connect(client_id)
        port = c.sock.getsockname()[1]
        c.disconnect()
        return port

    def test_log_level_follows_the_file(self):
        self.start({"log_level": "info"})
        old = self.old_client()
        port = self.connect_new("it-reload-at-info")
        self.wait_log("client it-reload-at-info connected from")
        self.assertNotIn("new connection from", self.broker.log(),
                         "a debug line at log_level info")
        self.assertNotIn(" debug ", self.broker.log())

        self.reload('log_level = "debug"\n')
        self.assertTrue(self.broker.alive())
        port = self.connect_new("it-reload-at-debug")
        self.wait_log(f"new connection from 127.0.0.1:{port}")
        self.wait_log("client it-reload-at-debug connected from")
        self.check_old_client(old)

        # Down to "warn": not even the info line of a connection. Nothing at info is logged to
        # say the reload is done, so the file changes a limit too: the reload applies the
        # logging first and the limits last, so once a new CONNACK shows the new limit, the
        # level is in force.
        self.config_path.write_text('log_level = "warn"\n[limits]\nmax_packet_size = 5000\n')
        self.broker.proc.send_signal(signal.SIGHUP)

        def announced() -> int | None:
            c = mqtt5.Client5(self.port)
            try:
                return c.connect("it-reload-probe").properties.get("MaximumPacketSize")
            finally:
                c.close()

        self.assertTrue(harness.wait_until(lambda: announced() == 5000, WAIT, 0.1),
                        "the reload to warn never took effect")
        size_before = len(self.broker.log())
        port = self.connect_new("it-reload-at-warn")
        self.check_old_client(old)
        self.connect_new("it-reload-at-warn-2")
        self.check_old_client(old)
        # (The log is written by a thread of its own: give it a moment for a line that must
        # not come.)
        harness.wait_until(lambda: False, 0.3)
        log = self.broker.log()
        self.assertNotIn("it-reload-at-warn", log[size_before:])
        self.assertNotIn(f"new connection from 127.0.0.1:{port}", log)
        self.assertTrue(self.broker.alive())


class LimitsReloadTest(ReloadTestCase):

    def expect_closed_by_publish(self, size: int) -> None:
        """A new 3.1.1 client publishes `size` bytes of payload at QoS 0 and is closed."""
        c = self.raw()
        c.connect("it-reload-big")
        try:
            c.publish("it/reload/big", b"x" * size, 0)
        except (BrokenPipeError, ConnectionResetError):
            return
        try:
            got = c.expect_closed(WAIT)
        except ConnectionResetError:
            return
        self.assertEqual(got, [], "nothing comes back for an oversized PUBLISH")

    def expect_accepted_publish(self, size: int) -> None:
        """A new 3.1.1 client publishes `size` bytes at QoS 1 and gets its PUBACK."""
        c = self.raw()
        c.connect("it-reload-fits")
        c.publish_and_complete("it/reload/fits", b"x" * size, 1)
        c.disconnect()

    def announced(self) -> int | None:
        """A new 5.0 client's CONNACK Maximum Packet Size (None: not announced)."""
        c = self.paho5("it-reload-v5-new")
        props = c.connect()
        c.disconnect()
        return props.get("MaximumPacketSize")

    def test_max_packet_size_for_new_connections_only(self):
        self.start({"log_level": "info"})
        old = self.old_client()
        old5 = self.paho5("it-reload-v5-old")
        self.assertEqual(old5.connect().get("MaximumPacketSize"), 1048576)
        self.expect_accepted_publish(2000)

        self.reload('log_level = "info"\n[limits]\nmax_packet_size = 1024\n',
                    expect="limits reloaded")
        self.assertEqual(self.announced(), 1024)
        self.expect_closed_by_publish(2000)
        self.expect_accepted_publish(500)
        # The old connections stay; their CONNACK said 1 MiB, and that is what they keep.
        self.check_old_client(old)
        old5.publish("it/reload/it-reload-old", b"y" * 2000, 1)
        m = old.get()
        self.assertEqual((m.topic, len(m.payload)), ("it/reload/it-reload-old", 2000))
        self.check_old_client(old)
        self.assertFalse(old5.disconnected.is_set())

    def test_broken_file_keeps_the_old_settings(self):
        self.start({"log_level": "info"}, limits={"max_packet_size": 1024})
        old = self.old_client()
        self.assertEqual(self.announced(), 1024)

        # A TOML syntax error.
        self.reload('log_level = "info"\n[limits\nmax_packet_size = 4096\n',
                    expect="configuration not reloaded")
        self.assertIn(str(self.config_path), self.broker.log_tail(5))
        self.assertEqual(self.announced(), 1024)
        self.expect_closed_by_publish(2000)
        self.check_old_client(old)
        # Valid TOML, a value out of range: the whole file is refused, the good key included.
        self.reload('log_level = "debug"\n[limits]\nmax_packet_size = 4096\nmax_inflight = 0\n',
                    expect="configuration not reloaded")
        self.assertIn("limits.max_inflight", self.broker.log_tail(5))
        self.assertEqual(self.announced(), 1024)
        self.expect_closed_by_publish(2000)
        self.assertNotIn("new connection from", self.broker.log(), "log_level was applied")
        self.check_old_client(old)

        # Fixed: it reloads again.
        self.reload('log_level = "info"\n[limits]\nmax_packet_size = 4096\n',
                    expect="limits reloaded")
        self.assertEqual(self.announced(), 4096)
        self.expect_accepted_publish(2000)
        self.check_old_client(old)


class PasswordReloadTest(ReloadTestCase):

    def passwd(self, *args: str) -> None:
        tool = str(Path(harness.tinymq_binary()).parent / "tinymq-passwd")
        if os.access(tool, os.X_OK):
            argv = [tool, "-I", "1000", *args]  # few iterations: ASan makes hashing slow
        else:
            argv = [MOSQUITTO_PASSWD, *args]
        r = subprocess.run(argv, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)

    def login(self, user: str, password: str, expect_rc: int) -> None:
        c = self.raw()
        p = c.connect(f"it-reload-{user}", username=user, password=password, expect_rc=None)
        self.assertEqual((p.type, p.return_code), (CONNACK, expect_rc), f"{user}: {p!r}")
        if expect_rc == 0:
            c.disconnect()
        else:
            c.expect_closed()

    def test_password_file_is_read_again(self):
        passwords = self.files / "passwords"
        self.passwd("-c", "-b", str(passwords), "alice", "alice-pw")
        auth = {"password_file": str(passwords), "allow_anonymous": False,
                "failure_delay_ms": 50}
        config = ('log_level = "info"\n[auth]\n' + "".join(
            f"{k} = {harness.toml_value(v)}\n" for k, v in auth.items()))
        self.start({"log_level": "info"}, auth=auth)
        old = self.old_client("it-reload-old-alice", "alice", "alice-pw")
        self.login("alice", "alice-pw", 0)
        self.login("bob", "bob-pw", 5)

        # bob added: he gets in after SIGHUP.
        self.passwd("-b", str(passwords), "bob", "bob-pw")
        self.reload(config)
        self.login("bob", "bob-pw", 0)
        self.login("bob", "wrong", 5)
        self.login("alice", "alice-pw", 0)
        self.check_old_client(old)

        # A broken password file: the old one stays (bob and alice still get in).
        good = passwords.read_text()
        passwords.write_text(good + "this line is no user:hash line\n")
        self.reload(config, expect="access not reloaded")
        self.login("bob", "bob-pw", 0)
        self.login("alice", "alice-pw", 0)
        self.check_old_client(old)

        # Repaired, and alice deleted: new connections as alice are refused.
        passwords.write_text(good)
        self.passwd("-D", str(passwords), "alice")
        self.reload(config)
        self.login("alice", "alice-pw", 5)
        self.login("bob", "bob-pw", 0)
        # An open connection keeps the rights it connected with (docs/operations.md).
        self.check_old_client(old)
        old.disconnect()


if __name__ == "__main__":
    harness.main()
