#!/usr/bin/python3
"""Command-line errors: an unknown option, and a port already in use, each make the broker exit
with a non-zero status and a message naming the culprit."""

import faulthandler
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class CommandLineTest(unittest.TestCase):
    # No broker is started for these: each test runs the binary with a bad command line.

    def setUp(self):
        faulthandler.dump_traceback_later(harness.TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)
        self.binary = harness.broker_binary()

    def assert_no_sanitizer_report(self, output: str) -> None:
        for marker in harness.SANITIZER_MARKERS:
            self.assertNotIn(marker, output)

    def test_unknown_option(self):
        result = harness.run_command([self.binary, "--no-such-option"], timeout=10)
        output = (result.stdout + result.stderr).decode(errors="replace")
        self.assertNotEqual(result.returncode, 0, output)
        self.assertIn("--no-such-option", output)
        self.assert_no_sanitizer_report(output)
        if not harness.is_mosquitto():
            self.assertEqual(result.returncode, 2, output)  # app/main.cc: 2 = bad command line
            self.assertIn("--no-such-option", result.stderr.decode(errors="replace"))

    def test_port_already_in_use(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
            holder.bind((harness.HOST, 0))
            holder.listen(1)
            port = holder.getsockname()[1]
            broker = harness.Broker()
            self.addCleanup(broker.cleanup)
            result = harness.run_command(broker.command_for_port(port), timeout=10)
        output = (result.stdout + result.stderr).decode(errors="replace")
        self.assertNotEqual(result.returncode, 0, output)
        self.assertIn("in use", output.lower())
        if harness.is_mosquitto():
            # Mosquitto 2.0.11 names the port on one line ("... on port N.") and the error on
            # the next, never "address:port".
            self.assertIn(str(port), output)
        else:
            self.assertIn(f"{harness.HOST}:{port}", result.stderr.decode(errors="replace"))
        self.assert_no_sanitizer_report(output)

    def test_bad_port_value(self):
        result = harness.run_command([self.binary, "-p", "70000"], timeout=10)
        output = (result.stdout + result.stderr).decode(errors="replace")
        self.assertNotEqual(result.returncode, 0, output)
        self.assertIn("70000", output)
        self.assert_no_sanitizer_report(output)

    def test_help_and_version_exit_0(self):
        if harness.is_mosquitto():
            self.skipTest("mosquitto: -h exits 3 and there is no --version")
        for option, expected in (("--help", "--port"), ("--version", "tinymq")):
            with self.subTest(option=option):
                result = harness.run_command([self.binary, option], timeout=10)
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertIn(expected, result.stdout.decode(errors="replace"))


if __name__ == "__main__":
    harness.main()
