#!/usr/bin/python3
"""TLS listeners (issue #7): real clients (mosquitto_pub/mosquitto_sub, paho, Python's ssl) over
TLS, protocol version bounds, client certificates (required, another CA, the username taken from
the certificate's CN), certificates reloaded on SIGHUP without dropping a connection, and plain
TCP or garbage on a TLS port next to a client that keeps working. The CA and the certificates are
made with the openssl command in a temporary directory."""

import faulthandler
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOST, WAIT  # noqa: E402

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def openssl(*args, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


class Pki:
    """A CA with a server certificate for 127.0.0.1 and a client certificate (CN=dev1), another
    server certificate of the same CA, and another CA with a client certificate of its own."""

    def __init__(self, root: Path):
        self.dir = root
        self.ca = self._ca("ca", "tinymq test CA")
        self.other_ca = self._ca("other-ca", "someone else's CA")
        self.server = self._leaf("server", "/CN=server-a", "ca", server=True)
        self.server_b = self._leaf("server-b", "/CN=server-b", "ca", server=True)
        self.client = self._leaf("client", "/O=Acme/CN=dev1", "ca")
        self.stranger = self._leaf("stranger", "/CN=dev1", "other-ca")

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def _ca(self, name: str, cn: str) -> str:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={cn}",
                cwd=self.dir)
        return self.path(f"{name}.pem")

    def _leaf(self, name: str, subject: str, ca: str, server: bool = False) -> tuple:
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=self.dir)
        ext = self.dir / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" if server
                       else "extendedKeyUsage=clientAuth\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", str(ext),
                cwd=self.dir)
        return self.path(f"{name}.pem"), self.path(f"{name}.key")


def client_context(ca: str, cert: tuple = None, minimum=None, maximum=None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if cert is not None:
        ctx.load_cert_chain(*cert)
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


class TlsRawClient(harness.RawClient):
    """harness.RawClient over TLS. A TLS alert or a TLS-level EOF counts as the broker closing."""

    def __init__(self, port: int, context: ssl.SSLContext, timeout: float = WAIT):
        plain = socket.create_connection((HOST, port), timeout=timeout)
        plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = context.wrap_socket(plain, server_hostname=HOST)
        except BaseException:
            plain.close()
            raise
        self.buf = bytearray()
        self.timeout = timeout
        self.closed_by_peer = False
        self._next_id = 0

    def _fill(self, deadline: float) -> None:
        try:
            super()._fill(deadline)
        except (ssl.SSLError, OSError) as e:
            if isinstance(e, (socket.timeout, TimeoutError)):
                raise
            self.closed_by_peer = True
            raise harness.ConnectionClosed(f"TLS: {e}") from None

    def peer_cn(self) -> str:
        subject = dict(x[0] for x in self.sock.getpeercert()["subject"])
        return subject["commonName"]


def tls_paho(case: unittest.TestCase, port: int, ca: str, cert: tuple = None,
             **kwargs) -> harness.PahoClient:
    c = harness.PahoClient(port, **kwargs)
    case.addCleanup(c.stop)
    if cert is None:
        c.client.tls_set(ca_certs=ca)
    else:
        c.client.tls_set(ca_certs=ca, certfile=cert[0], keyfile=cert[1])
    return c


@harness.not_on_mosquitto("the harness writes TLS listeners for tinymq only")
class TlsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.root = Path(tempfile.mkdtemp(prefix="tinymq-it-tls-"))
        cls.pki = Pki(cls.root)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        faulthandler.dump_traceback_later(harness.TEST_TIMEOUT, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)

    def start(self, tls: dict = None, extra_listeners: list = None, auth: str = "",
              **kwargs) -> harness.Broker:
        """A broker whose listener on broker.port speaks TLS (`tls` on top of the server
        certificate and key), with `extra_listeners`; `auth` lines go in an [auth] table."""
        settings = {"cert": self.pki.server[0], "key": self.pki.server[1], **(tls or {})}
        broker = harness.Broker(tls=settings, extra_listeners=extra_listeners, **kwargs)
        self.addCleanup(broker.cleanup)
        if auth:
            command = broker._command

            def with_auth():
                argv = command()
                conf = broker.dir / "tinymq.toml"
                conf.write_text(conf.read_text() + "[auth]\n" + auth)
                return argv
            broker._command = with_auth
        broker.start()
        self.addCleanup(self._stop, broker)
        return broker

    def _stop(self, broker: harness.Broker) -> None:
        problems = broker.stop()
        if problems:
            self.fail("broker problems:\n" + "\n".join(problems))

    def raw(self, port: int, context: ssl.SSLContext) -> TlsRawClient:
        c = TlsRawClient(port, context)
        self.addCleanup(c.close)
        return c

    def assert_refused(self, port: int, context: ssl.SSLContext) -> None:
        """The TLS handshake fails, or (TLS 1.3, where the client finishes first) the broker
        closes the connection before any CONNACK."""
        try:
            c = self.raw(port, context)
            c.send(harness.encode_connect("refused"))
            packet = c.recv()
        except (ssl.SSLError, harness.ConnectionClosed, ConnectionResetError, BrokenPipeError):
            return
        self.fail(f"the broker answered {packet!r}")

    def sub(self, port: int, topic: str, extra) -> harness.MosquittoSub:
        s = harness.MosquittoSub(port, topic, 1, extra=extra)
        self.addCleanup(s.stop)
        return s.wait_subscribed()

    # Real clients. ------------------------------------------------------------------------

    def test_mosquitto_clients_with_client_certificates(self):
        broker = self.start({"ca": self.pki.ca, "client_certs": "required"})
        tls = ["--cafile", self.pki.ca, "--cert", self.pki.client[0], "--key", self.pki.client[1]]
        s = self.sub(broker.port, "tls/#", tls)
        harness.mosquitto_pub(broker.port, "tls/a", "over TLS", qos=1, extra=tls)
        big = os.urandom(100_000)  # several records each way
        harness.mosquitto_pub(broker.port, "tls/big", big, qos=1, extra=tls)
        self.assertEqual(s.get().payload, b"over TLS")
        self.assertEqual(s.get().payload, big)

    def test_paho_publishes_and_receives(self):
        broker = self.start(workers=2)
        sub = tls_paho(self, broker.port, self.pki.ca, client_id="paho-sub")
        sub.connect()
        sub.subscribe("p/#", qos=1)
        pub = tls_paho(self, broker.port, self.pki.ca, client_id="paho-pub")
        pub.connect()
        for i in range(20):
            pub.publish(f"p/{i}", f"m{i}".encode() * 100, qos=1)
        got = [sub.get() for _ in range(20)]
        self.assertEqual([m.payload for m in got], [f"m{i}".encode() * 100 for i in range(20)])
        pub.disconnect()
        sub.disconnect()

    def test_sessions_handed_to_other_workers_keep_working(self):
        # With 4 workers, most of these client ids belong to another worker than the one that
        # accepted the connection: the TLS session moves there with the socket.
        broker = self.start(workers=4)
        ctx = client_context(self.pki.ca)
        clients = [self.raw(broker.port, ctx) for _ in range(8)]
        for i, c in enumerate(clients):
            c.connect(f"handed-{i}")
            c.subscribe([(f"h/{i}", 1)])
        for i, c in enumerate(clients):
            clients[(i + 1) % len(clients)].publish(f"h/{i}", f"to {i}" * 1000, qos=0)
        for i, c in enumerate(clients):
            self.assertEqual(c.recv().payload, f"to {i}".encode() * 1000)

    def test_tls_and_plain_listeners_side_by_side(self):
        plain = harness.free_port()
        broker = self.start(extra_listeners=[{"port": plain}])
        s = self.sub(broker.port, "mix/#", ["--cafile", self.pki.ca])
        harness.mosquitto_pub(plain, "mix/plain", "from TCP")
        harness.mosquitto_pub(broker.port, "mix/tls", "from TLS", extra=["--cafile", self.pki.ca])
        self.assertEqual(sorted(m.payload for m in (s.get(), s.get())),
                         [b"from TCP", b"from TLS"])

    # Versions. ----------------------------------------------------------------------------

    def test_tls12_only_and_tls13_only_listeners(self):
        only12 = harness.free_port()
        broker = self.start({"min_version": "1.3"},
                            extra_listeners=[{"port": only12, "tls": {
                                "cert": self.pki.server[0], "key": self.pki.server[1],
                                "max_version": "1.2"}}])
        ca = self.pki.ca
        # The 1.3-only listener refuses a client that stops at 1.2, and speaks 1.3 to the others.
        with self.assertRaises(ssl.SSLError):
            TlsRawClient(broker.port, client_context(ca, maximum=ssl.TLSVersion.TLSv1_2))
        c = self.raw(broker.port, client_context(ca))
        self.assertEqual(c.sock.version(), "TLSv1.3")
        c.connect("v13")
        # The 1.2-only listener speaks 1.2, and refuses a client that wants 1.3 at least.
        c = self.raw(only12, client_context(ca))
        self.assertEqual(c.sock.version(), "TLSv1.2")
        c.connect("v12")
        with self.assertRaises(ssl.SSLError):
            TlsRawClient(only12, client_context(ca, minimum=ssl.TLSVersion.TLSv1_3))
        self.assertTrue(broker.wait_for_log("failed: unsupported protocol"), broker.log_tail())

    # Client certificates. -----------------------------------------------------------------

    def test_required_client_certificate(self):
        broker = self.start({"ca": self.pki.ca, "client_certs": "required"})
        ca = self.pki.ca
        self.assert_refused(broker.port, client_context(ca))
        self.assert_refused(broker.port, client_context(ca, cert=self.pki.stranger))
        c = self.raw(broker.port, client_context(ca, cert=self.pki.client))
        c.connect("with-cert")
        c.disconnect()
        self.assertTrue(harness.wait_until(lambda: "certificate verify failed" in broker.log()))

    def test_username_from_certificate_common_name(self):
        # A password file without dev1: the certificate's name needs no password, and a wrong one
        # in the CONNECT is ignored; the plain listener next to it checks passwords as usual.
        passwords = self.root / "passwords"
        if not passwords.exists():
            subprocess.run([MOSQUITTO_PASSWD, "-c", "-b", str(passwords), "someone", "secret"],
                           check=True, capture_output=True, timeout=30)
        plain = harness.free_port()
        broker = self.start({"ca": self.pki.ca, "client_certs": "required",
                             "username_from_cert": "cn"},
                            extra_listeners=[{"port": plain}],
                            auth=f"password_file = {harness.toml_value(str(passwords))}\n"
                                 "allow_anonymous = false\nfailure_delay_ms = 0\n")
        c = self.raw(broker.port, client_context(self.pki.ca, cert=self.pki.client))
        c.connect("cert-user", username="not-dev1", password="wrong")
        self.assertTrue(harness.wait_until(
            lambda: "client cert-user connected from" in broker.log()))
        line = next(line for line in broker.log().splitlines()
                    if "client cert-user connected from" in line)
        self.assertIn("user dev1", line)
        c.subscribe([("cert/t", 0)])
        c.publish("cert/t", "mine")
        self.assertEqual(c.expect(harness.PUBLISH).payload, b"mine")
        p = harness.RawClient(plain)
        self.addCleanup(p.close)
        connack = p.connect("plain-user", username="dev1", password="wrong", expect_rc=None)
        self.assertNotEqual(connack.return_code, 0)

    def test_input_waiting_in_the_tls_session_during_a_password_check(self):
        # CONNECT, SUBSCRIBE and a PUBLISH in one TLS record: the broker stops taking input while
        # the password is checked (on another thread), with the rest of the record decrypted and
        # left in the session, which no readiness event announces. It must still be read.
        passwords = self.root / "passwords-u"
        if not passwords.exists():
            subprocess.run([MOSQUITTO_PASSWD, "-c", "-b", str(passwords), "u", "p"],
                           check=True, capture_output=True, timeout=30)
        broker = self.start(auth=f"password_file = {harness.toml_value(str(passwords))}\n"
                                 "allow_anonymous = false\n", workers=2)
        c = self.raw(broker.port, client_context(self.pki.ca))
        payload = os.urandom(12_000)
        c.send(harness.encode_connect("pipelined", username="u", password="p") +
               harness.encode_subscribe(1, [("pipe/t", 0)]) +
               harness.encode_publish("pipe/t", payload))
        self.assertEqual(c.expect(harness.CONNACK).return_code, 0)
        self.assertEqual(c.expect(harness.SUBACK, 1).return_codes, [0])
        self.assertEqual(c.expect(harness.PUBLISH).payload, payload)

    # Reload. ------------------------------------------------------------------------------

    def test_sighup_reloads_the_certificate_without_dropping_connections(self):
        work = self.root / "reload"
        work.mkdir(exist_ok=True)
        cert, key = work / "server.pem", work / "server.key"
        shutil.copy(self.pki.server[0], cert)
        shutil.copy(self.pki.server[1], key)
        broker = self.start({"cert": str(cert), "key": str(key)}, workers=2)
        ctx = client_context(self.pki.ca)
        before = self.raw(broker.port, ctx)
        self.assertEqual(before.peer_cn(), "server-a")
        before.connect("before")
        before.subscribe([("r/#", 1)])

        shutil.copy(self.pki.server_b[0], cert)
        shutil.copy(self.pki.server_b[1], key)
        os.kill(broker.proc.pid, signal.SIGHUP)
        self.assertTrue(harness.wait_until(lambda: "TLS certificates reloaded" in broker.log()),
                        broker.log_tail())
        after = self.raw(broker.port, ctx)
        self.assertEqual(after.peer_cn(), "server-b")
        after.connect("after")
        after.publish("r/1", "from the new one", qos=1)
        after.expect(harness.PUBACK)
        # The connection from before the reload goes on, both ways.
        self.assertEqual(before.receive_messages(1)[0].payload, b"from the new one")
        pid = before.publish("r/2", "from the old one", qos=1)
        packets = [before.recv(), before.recv()]  # its PUBACK and its own message, either first
        self.assertIn((harness.PUBACK, pid), [(p.type, p.packet_id) for p in packets])
        self.assertIn(b"from the old one", [p.payload for p in packets])

        # A reload that fails (the key is not the certificate's) keeps what is served.
        shutil.copy(self.pki.client[1], key)
        os.kill(broker.proc.pid, signal.SIGHUP)
        self.assertTrue(harness.wait_until(
            lambda: "key does not match the certificate" in broker.log()), broker.log_tail())
        third = self.raw(broker.port, ctx)
        self.assertEqual(third.peer_cn(), "server-b")
        third.connect("third")

    # Hostile input. -----------------------------------------------------------------------

    def test_plain_mqtt_and_garbage_on_the_tls_port(self):
        broker = self.start()
        bystander = tls_paho(self, broker.port, self.pki.ca, client_id="bystander")
        bystander.connect()
        bystander.subscribe("b/#")
        # Plain MQTT: refused, no CONNACK (a TLS server cannot speak plain MQTT).
        p = harness.RawClient(broker.port)
        self.addCleanup(p.close)
        p.send(harness.encode_connect("plain"))
        with self.assertRaises(harness.ConnectionClosed):
            p.recv()
        # Garbage before and after a handshake; a connection that says nothing and goes away.
        for data in (os.urandom(3000), b"\x16\x03\x01\xff\xff" + os.urandom(100)):
            g = socket.create_connection((HOST, broker.port), timeout=WAIT)
            try:
                g.sendall(data)
                g.settimeout(WAIT)
                while g.recv(4096):
                    pass
            except OSError:
                pass
            g.close()
        socket.create_connection((HOST, broker.port), timeout=WAIT).close()
        t = self.raw(broker.port, client_context(self.pki.ca))
        t.send(os.urandom(200))
        with self.assertRaises(harness.ConnectionClosed):
            t.recv()
        # The bystander never noticed.
        harness.mosquitto_pub(broker.port, "b/1", "still here", extra=["--cafile", self.pki.ca])
        self.assertEqual(bystander.get().payload, b"still here")
        self.assertTrue(broker.wait_for_log("failed: wrong version number"), broker.log_tail())

    def test_bad_certificate_file_stops_the_start(self):
        broker = harness.Broker(tls={"cert": str(self.root / "missing.pem"),
                                     "key": self.pki.server[1]})
        self.addCleanup(broker.cleanup)
        with self.assertRaises(harness.BrokerStartError) as e:
            broker.start(attempts=1)
        self.assertIn(f"tls.cert {self.root / 'missing.pem'}: cannot read: no such file or "
                      "directory", e.exception.log)


if __name__ == "__main__":
    harness.main()
