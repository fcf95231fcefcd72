#!/usr/bin/python3
"""tinymq-passwd (issue #7): adds, changes and deletes users of a password file in Mosquitto's
PBKDF2-SHA512 form. Files go both ways: mosquitto_passwd adds to a file tinymq-passwd made, and
Mosquitto itself (the reference peer) lets in the users tinymq-passwd wrote, with their passwords
only. Command-line mistakes exit non-zero with a message naming the file."""

import faulthandler
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"


@unittest.skipIf(harness.is_mosquitto(), "tinymq's tool")
class PasswdTest(unittest.TestCase):

    def setUp(self):
        faulthandler.dump_traceback_later(harness.TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)
        self.tool = str(Path(harness.tinymq_binary()).parent / "tinymq-passwd")
        if not os.access(self.tool, os.X_OK):
            self.skipTest(f"{self.tool} not built")
        self.dir = Path(tempfile.mkdtemp(prefix="tinymq-it-passwd-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.file = self.dir / "passwords"

    def run_tool(self, *args, stdin: str = "") -> subprocess.CompletedProcess:
        # Few iterations: this is about the tool and the format, not the cost of a hash.
        return subprocess.run([self.tool, "-I", "1000", *args], input=stdin.encode(),
                              capture_output=True, timeout=60)

    def test_add_change_delete_and_mosquitto_passwd_on_the_same_file(self):
        r = self.run_tool("-c", "-b", str(self.file), "alice", "a pass")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(stat.S_IMODE(self.file.stat().st_mode), 0o600)
        # A password asked twice on stdin.
        r = self.run_tool(str(self.file), "bob", stdin="b-pass\nb-pass\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_tool(str(self.file), "carol", stdin="one\ntwo\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"differ", r.stderr)
        # Mosquitto's tool adds to it; then ours changes alice and deletes bob.
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(self.file), "dave", "d-pass"], check=True,
                       capture_output=True, timeout=60)
        self.assertEqual(self.run_tool("-b", str(self.file), "alice", "new a").returncode, 0)
        self.assertEqual(self.run_tool("-D", str(self.file), "bob").returncode, 0)
        users = [line.split(":")[0] for line in self.file.read_text().splitlines()]
        self.assertEqual(users, ["alice", "dave"])
        self.assertTrue(all(":$7$" in line for line in self.file.read_text().splitlines()))
        self.mosquitto_accepts({"alice": "new a", "dave": "d-pass"},
                               {"alice": "a pass", "bob": "b-pass", "dave": "wrong"})

    def test_mistakes_exit_non_zero_naming_the_file(self):
        self.assertEqual(self.run_tool("-c", "-b", str(self.file), "a", "x").returncode, 0)
        r = self.run_tool("-c", "-b", str(self.file), "b", "y")
        self.assertEqual(r.returncode, 1)
        self.assertIn(str(self.file).encode(), r.stderr)
        r = self.run_tool("-D", str(self.file), "nobody")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"no user 'nobody'", r.stderr)
        r = self.run_tool("-b", str(self.dir / "missing"), "a", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"use -c", r.stderr)
        r = self.run_tool("-b", str(self.file), "a:b", "x")
        self.assertEqual(r.returncode, 1)
        r = subprocess.run([self.tool, str(self.file)], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.file.write_text("garbage line\n")
        r = self.run_tool("-b", str(self.file), "a", "x")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"line 1", r.stderr)
        self.assertEqual(self.file.read_text(), "garbage line\n")  # left as it was

    def mosquitto_accepts(self, good: dict, bad: dict) -> None:
        """Mosquitto, with the file as its password_file, lets in `good` and refuses `bad`."""
        if not os.access(harness.MOSQUITTO, os.X_OK):
            return
        readable = self.dir / "for-mosquitto"
        shutil.copy(self.file, readable)
        readable.chmod(0o644)  # mosquitto drops root for its own user
        self.dir.chmod(0o755)
        port = harness.free_port()
        conf = self.dir / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\n"
                        f"password_file {readable}\n")
        proc = subprocess.Popen([harness.MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.addCleanup(harness.kill_and_reap, proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        for users, want in ((good, 0), (bad, None)):
            for user, password in users.items():
                r = subprocess.run([MOSQUITTO_PUB, "-p", str(port), "-u", user, "-P", password,
                                    "-t", "t", "-m", "x"], capture_output=True, timeout=30)
                if want == 0:
                    self.assertEqual(r.returncode, 0, (user, r.stderr))
                else:
                    self.assertNotEqual(r.returncode, 0, user)


if __name__ == "__main__":
    harness.main()
