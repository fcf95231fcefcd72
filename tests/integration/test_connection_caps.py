#!/usr/bin/python3
"""[limits] max_connections and max_connections_per_address (issue #7): counted across workers
(the kernel spreads one address's connections over the workers' sockets, and a CONNECT may hand
its connection to another worker), refused at accept without a CONNACK, logged with a count, and
given back on every close so that the cap never leaks."""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOST, WAIT  # noqa: E402


def connect_from(port: int, source: str, client_id: str) -> harness.RawClient:
    """A RawClient whose connection comes from `source` (any 127.x address is this machine)."""
    c = harness.RawClient.__new__(harness.RawClient)
    c.sock = socket.create_connection((HOST, port), timeout=WAIT, source_address=(source, 0))
    c.buf = bytearray()
    c.timeout = WAIT
    c.closed_by_peer = False
    c._next_id = 0
    c.connect(client_id)
    return c


@harness.not_on_mosquitto("mosquitto's max_connections is per listener, and it has no cap per "
                          "address")
class ConnectionCapsTest(harness.BrokerTestCase):
    workers = 2

    def assert_refused(self, source: str = HOST) -> None:
        s = socket.create_connection((HOST, self.port), timeout=WAIT, source_address=(source, 0))
        try:
            s.sendall(harness.encode_connect("refused"))
            s.settimeout(WAIT)
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        finally:
            s.close()
        self.assertEqual(data, b"", "a refused connection gets nothing, no CONNACK")

    def admitted(self, client_id: str, source: str = HOST) -> harness.RawClient:
        c = connect_from(self.port, source, client_id)
        self.addCleanup(c.close)
        return c

    def wait_admitted(self, client_id: str, source: str = HOST) -> harness.RawClient:
        """The count of a closed connection comes back once its worker has read the EOF."""
        last = None
        for _ in range(100):
            try:
                return self.admitted(client_id, source)
            except (harness.ConnectionClosed, ConnectionResetError, TimeoutError) as e:
                last = e
                harness.wait_until(lambda: False, 0.05)
        self.fail(f"never admitted again: {last!r}")

    @harness.broker_config(limits={"max_connections": 3})
    def test_max_connections_across_workers(self):
        # Client ids spread over both workers: some connections are handed over, with their count.
        # (wait_admitted: the harness's probe of the port may not be counted out yet.)
        clients = [self.wait_admitted(f"c{i}") for i in range(3)]
        self.assert_refused()
        self.assert_refused()
        self.assertTrue(harness.wait_until(
            lambda: "limits.max_connections (3) reached: refused 1 connection(s)"
            in self.broker.log()), self.broker.log_tail())
        clients.pop().disconnect()
        clients.append(self.wait_admitted("c3"))
        self.assert_refused()
        # Many connections come and go: nothing leaks.
        for c in clients:
            c.disconnect()
        for i in range(12):
            self.wait_admitted(f"churn{i}").disconnect()
        for i in range(3):
            self.wait_admitted(f"again{i}")

    @harness.broker_config(limits={"max_connections_per_address": 2})
    def test_max_connections_per_address(self):
        a = [self.wait_admitted("a1"), self.wait_admitted("a2")]
        self.assert_refused()
        # Another address has its own count.
        self.admitted("b1", "127.0.0.2")
        self.admitted("b2", "127.0.0.2")
        self.assert_refused("127.0.0.2")
        self.assertTrue(harness.wait_until(
            lambda: "limits.max_connections_per_address (2) reached" in self.broker.log()))
        a.pop().disconnect()
        self.wait_admitted("a3")
        self.assert_refused()


if __name__ == "__main__":
    harness.main()
