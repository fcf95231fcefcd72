#!/usr/bin/python3
"""`cmake --install` (what `make install` runs; docs/operations.md) of the build tree under test.

The tree is the one of the tinymq binary under test (--tinymq PATH or $TINYMQ_BIN: its parent's
parent, e.g. build/asan for build/asan/bin/tinymq), installed into a temporary prefix. Checked: the
binaries run; the installed configuration is the example; the broker starts with exactly the
systemd unit's ExecStart (only the state directory moved into the temporary directory, plus a free
port and a log file) and stops cleanly, its last log line written; the unit names the installed
paths and passes `systemd-analyze verify` (when that exists); an existing configuration file is
kept by a later install; DESTDIR stages an install without appearing in the unit.

Run alone: /usr/bin/python3 tests/integration/test_install.py --tinymq build/asan/bin/tinymq
"""

import faulthandler
import filecmp
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CMAKE = shutil.which("cmake") or "/usr/bin/cmake"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
# Copying the (sanitizer-sized) binaries is the slow part.
INSTALL_TIMEOUT = 120.0
BINARIES = ("tinymq", "tinymq-passwd", "tinymq-bench")


def install(build_dir: Path, prefix: str, destdir: str = "") -> str:
    """Runs `cmake --install build_dir --prefix prefix` (with DESTDIR when given); returns its
    output, or fails the test with it."""
    argv = [CMAKE, "--install", str(build_dir), "--prefix", prefix]
    if destdir:
        argv = ["env", f"DESTDIR={destdir}", *argv]
    result = harness.run_command(argv, timeout=INSTALL_TIMEOUT)
    output = (result.stdout + result.stderr).decode(errors="replace")
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{output}")
    return output


def unit_setting(unit_text: str, key: str) -> str:
    """The value of the first `key=` line of a unit file."""
    match = re.search(rf"^{re.escape(key)}=(.*)$", unit_text, re.MULTILINE)
    if match is None:
        raise AssertionError(f"no {key}= in the unit:\n{unit_text}")
    return match.group(1).strip()


@unittest.skipIf(harness.is_mosquitto(), "installs tinymq's build tree")
class InstallTest(unittest.TestCase):
    build_dir: Path
    tmp: Path
    prefix: Path

    @classmethod
    def setUpClass(cls):
        binary = Path(harness.tinymq_binary()).resolve()
        cls.build_dir = binary.parent.parent
        if not (cls.build_dir / "cmake_install.cmake").is_file():
            raise AssertionError(f"{cls.build_dir} (from {binary}) is not a CMake build tree")
        missing = [b for b in BINARIES if not (binary.parent / b).is_file()]
        if missing:
            raise AssertionError(f"{', '.join(missing)} not built in {binary.parent}: build every "
                                 "target of the tree before installing it")
        cls.tmp = Path(tempfile.mkdtemp(prefix="tinymq-install-"))
        cls.prefix = cls.tmp / "prefix"
        cls.install_output = install(cls.build_dir, str(cls.prefix))

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("KEEP_LOGS"):
            print(f"kept: {cls.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        faulthandler.dump_traceback_later(harness.TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)

    def unit_path(self, prefix: Path) -> Path:
        return prefix / "lib" / "systemd" / "system" / "tinymq.service"

    def test_binaries_are_installed_and_run(self):
        for name in BINARIES:
            path = self.prefix / "bin" / name
            with self.subTest(binary=name):
                self.assertTrue(os.access(path, os.X_OK), f"{path} is not an executable")
        result = harness.run_command([str(self.prefix / "bin" / "tinymq"), "--version"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout.decode(), r"^tinymq \d+\.\d+\.\d+")
        for name in ("tinymq-passwd", "tinymq-bench"):
            with self.subTest(binary=name):
                result = harness.run_command([str(self.prefix / "bin" / name), "--help"])
                self.assertEqual(result.returncode, 0, result.stderr)

    def test_configuration_and_docs_are_installed(self):
        config = self.prefix / "etc" / "tinymq" / "tinymq.toml"
        docs = self.prefix / "share" / "doc" / "tinymq"
        example = harness.REPO / "tinymq.example.toml"
        self.assertTrue(filecmp.cmp(config, example, shallow=False), f"{config} is not the example")
        self.assertTrue(filecmp.cmp(docs / "tinymq.example.toml", example, shallow=False))
        for doc in ("README.md", "operations.md", "configuration.md", "security.md"):
            with self.subTest(doc=doc):
                self.assertTrue((docs / doc).is_file(), f"{docs / doc} missing")

    def test_unit_names_the_installed_paths(self):
        unit = self.unit_path(self.prefix).read_text()
        self.assertNotIn("@", unit, "a placeholder was not substituted")
        exec_start = shlex.split(unit_setting(unit, "ExecStart"))
        self.assertEqual(exec_start[0], str(self.prefix / "bin" / "tinymq"))
        config = exec_start[exec_start.index("--config") + 1]
        self.assertEqual(config, str(self.prefix / "etc" / "tinymq" / "tinymq.toml"))
        self.assertEqual(exec_start[exec_start.index("--data-dir") + 1], "/var/lib/tinymq")
        self.assertEqual(unit_setting(unit, "ExecReload"), "/bin/kill -HUP $MAINPID")
        self.assertEqual(unit_setting(unit, "Type"), "exec")
        self.assertEqual(unit_setting(unit, "KillSignal"), "SIGTERM")
        self.assertEqual(unit_setting(unit, "Restart"), "on-failure")
        self.assertEqual(unit_setting(unit, "LimitNOFILE"), "1048576")
        self.assertEqual(unit_setting(unit, "ProtectSystem"), "strict")
        self.assertEqual(unit_setting(unit, "NoNewPrivileges"), "yes")
        self.assertEqual(unit_setting(unit, "CapabilityBoundingSet"), "")
        self.assertIn("/var/lib/tinymq", unit_setting(unit, "ReadWritePaths").split())

    def test_systemd_analyze_verify(self):
        if SYSTEMD_ANALYZE is None:
            self.skipTest("systemd-analyze is not installed")
        unit = self.unit_path(self.prefix)
        result = harness.run_command([SYSTEMD_ANALYZE, "verify", str(unit)], timeout=60)
        output = (result.stdout + result.stderr).decode(errors="replace")
        # Only what concerns this unit: verify also reports on units of the host it loads.
        own = [line for line in output.splitlines() if "tinymq" in line]
        self.assertEqual(result.returncode, 0, output)
        self.assertEqual(own, [], output)

    def test_broker_runs_with_the_units_command_line(self):
        unit = self.unit_path(self.prefix).read_text()
        state = self.tmp / "state"
        log = self.tmp / "run" / "tinymq.log"
        log.parent.mkdir(exist_ok=True)
        argv = [str(state) if a == "/var/lib/tinymq" else a
                for a in shlex.split(unit_setting(unit, "ExecStart"))]
        port = harness.free_port()
        argv += ["--port", str(port), "--log-file", str(log)]
        stderr_path = self.tmp / "run" / "stderr.txt"
        with open(stderr_path, "wb") as stderr:
            proc = harness.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=stderr)
        self.addCleanup(harness.kill_and_reap, proc)
        listening = f"listening on {harness.HOST}:{port}"
        started = harness.wait_until(
            lambda: proc.poll() is not None or (log.exists() and listening in log.read_text()),
            timeout=20)
        self.assertTrue(started and proc.poll() is None,
                        f"not started: {stderr_path.read_text()}\n"
                        f"{log.read_text() if log.exists() else ''}")
        with socket.create_connection((harness.HOST, port), timeout=harness.WAIT):
            pass
        self.assertEqual(stat.S_IMODE(log.stat().st_mode), 0o640)
        self.assertTrue(state.is_dir(), "the --data-dir of ExecStart was not created")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(harness.STOP_GRACE), 0, stderr_path.read_text())
        harness.forget(proc)
        # The logging thread's queue was written out before exit, the last line included.
        lines = log.read_text().splitlines()
        self.assertTrue(lines and lines[-1].endswith(" stopped"), lines[-5:])
        errors = stderr_path.read_text()
        for marker in harness.SANITIZER_MARKERS:
            self.assertNotIn(marker, errors)

    def test_existing_configuration_is_kept(self):
        prefix = self.tmp / "kept"
        config = prefix / "etc" / "tinymq" / "tinymq.toml"
        config.parent.mkdir(parents=True)
        config.write_text('log_level = "debug"\n')
        output = install(self.build_dir, str(prefix))
        self.assertEqual(config.read_text(), 'log_level = "debug"\n')
        self.assertIn("Keeping", output)
        # The example of this version is still there, to compare.
        example = prefix / "share" / "doc" / "tinymq" / "tinymq.example.toml"
        self.assertTrue(filecmp.cmp(example, harness.REPO / "tinymq.example.toml", shallow=False))

    def test_destdir_stages_without_appearing_in_the_unit(self):
        stage = self.tmp / "stage"
        install(self.build_dir, "/opt/tinymq-test", destdir=str(stage))
        root = stage / "opt" / "tinymq-test"
        self.assertTrue(os.access(root / "bin" / "tinymq", os.X_OK))
        self.assertTrue((root / "etc" / "tinymq" / "tinymq.toml").is_file())
        unit = self.unit_path(root).read_text()
        self.assertNotIn(str(stage), unit)
        exec_start = shlex.split(unit_setting(unit, "ExecStart"))
        self.assertEqual(exec_start[0], "/opt/tinymq-test/bin/tinymq")
        self.assertIn("/opt/tinymq-test/etc/tinymq/tinymq.toml", exec_start)
        self.assertFalse(Path("/opt/tinymq-test").exists(), "DESTDIR was not honoured")


if __name__ == "__main__":
    harness.main()
