#!/usr/bin/python3
"""Will messages (3.1.1 §3.1.2.5): published when the connection is lost without a DISCONNECT (a
client killed with SIGKILL, a socket closed, a protocol error), with the will's QoS and RETAIN;
never after a DISCONNECT ([MQTT-3.1.2-10])."""

import os
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# A paho client with a will that connects, says so on stdout and waits to be killed.
PAHO_WITH_WILL = r"""
import sys, time
import paho.mqtt.client as mqtt
c = mqtt.Client(client_id="it-will-paho", clean_session=True, protocol=mqtt.MQTTv311)
c.will_set("it/will/paho", b"paho-gone", 1, False)
c.on_connect = lambda client, userdata, flags, rc: print("connected", rc, flush=True)
c.connect("127.0.0.1", int(sys.argv[1]), 60)
c.loop_start()
time.sleep(30)
"""


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([proc.stdout], [], [], remaining)[0]:
            raise AssertionError(f"no line from the child in {timeout} s (got {line!r})")
        byte = os.read(proc.stdout.fileno(), 1)
        if not byte:
            raise AssertionError(f"the child exited before a whole line (got {line!r})")
        line += byte
    return line.decode().strip()


class WillTest(harness.BrokerTestCase):

    def watcher(self, qos: int = 1) -> harness.RawClient:
        c = self.raw_connected("it-will-watcher")
        self.assertEqual(c.subscribe([("it/will/#", qos)]), [qos])
        return c

    def assert_no_will(self, watcher: harness.RawClient) -> None:
        """Nothing but the sentinel published after the (absent) will can arrive."""
        time.sleep(0.5)  # a will, if any, would be routed by now
        self.pub("it/will/sentinel", "sentinel", qos=1)
        got = watcher.receive_messages(1)
        self.assertEqual((got[0].topic, got[0].payload), ("it/will/sentinel", b"sentinel"))
        watcher.expect_silence(0.3)

    def test_will_of_mosquitto_sub_killed_with_sigkill(self):
        watcher = self.watcher()
        victim = self.sub("it/other", will=("it/will/sub", "sub-gone", 1, False),
                          client_id="it-will-sub")
        victim.kill(signal.SIGKILL)
        got = watcher.receive_messages(1)
        self.assertEqual((got[0].topic, got[0].payload, got[0].qos, got[0].retain),
                         ("it/will/sub", b"sub-gone", 1, False))

    def test_will_of_paho_client_killed_with_sigkill(self):
        if harness.mqtt is None:
            self.skipTest("paho-mqtt not installed")
        watcher = self.watcher()
        child = harness.spawn(["/usr/bin/python3", "-c", PAHO_WITH_WILL, str(self.port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (harness.kill_and_reap(child), child.stdout.close()))
        self.assertEqual(read_line(child, harness.WAIT), "connected 0")
        harness.kill_and_reap(child, signal.SIGKILL)
        got = watcher.receive_messages(1)
        self.assertEqual((got[0].topic, got[0].payload, got[0].qos),
                         ("it/will/paho", b"paho-gone", 1))

    def test_will_on_socket_closed_without_disconnect(self):
        watcher = self.watcher(qos=2)
        victim = self.raw_connected("it-will-raw", will=("it/will/raw", b"raw-gone", 2, False))
        victim.close()
        got = watcher.receive_messages(1)
        self.assertEqual((got[0].topic, got[0].payload, got[0].qos, got[0].retain),
                         ("it/will/raw", b"raw-gone", 2, False))

    def test_will_on_connection_reset(self):
        watcher = self.watcher()
        victim = self.raw_connected("it-will-rst", will=("it/will/rst", b"reset", 0, False))
        victim.abort()
        got = watcher.receive_messages(1)
        self.assertEqual((got[0].topic, got[0].payload, got[0].qos), ("it/will/rst", b"reset", 0))

    def test_retained_will_reaches_later_subscriber(self):
        victim = self.raw_connected("it-will-ret", will=("it/will/ret", b"offline", 1, True))
        victim.close()
        time.sleep(0.5)
        late = self.sub("it/will/ret", qos=1)
        m = late.get()
        self.assertEqual((m.topic, m.payload, m.retain, m.qos),
                         ("it/will/ret", b"offline", True, 1))

    def test_will_on_protocol_error(self):
        # §3.1.2.5: the will is published when the server closes the connection for a protocol
        # error; here a QoS 3 PUBLISH ([MQTT-3.3.1-4]).
        watcher = self.watcher()
        victim = self.raw_connected("it-will-err", will=("it/will/err", b"error", 1, False))
        victim.send(harness.encode_publish("it/x", b"bad", flags=0x06, packet_id=1))
        victim.expect_closed()
        got = watcher.receive_messages(1)
        self.assertEqual((got[0].topic, got[0].payload), ("it/will/err", b"error"))

    def test_no_will_after_disconnect(self):
        watcher = self.watcher()
        victim = self.raw_connected("it-will-clean", will=("it/will/clean", b"wrong", 1, False))
        victim.disconnect()
        self.assert_no_will(watcher)

    def test_no_will_after_paho_disconnect(self):
        watcher = self.watcher()
        client = self.paho("it-will-paho-clean", will=("it/will/paho", b"wrong", 1, False))
        client.connect()
        client.disconnect()
        self.assert_no_will(watcher)

    def test_retained_will_not_set_after_disconnect(self):
        victim = self.raw_connected("it-will-ret2", will=("it/will/ret2", b"wrong", 1, True))
        victim.disconnect()
        time.sleep(0.5)
        late = self.sub("it/will/ret2", qos=1)
        late.expect_nothing(0.5)


if __name__ == "__main__":
    harness.main()
