"""TLS (docs/api.md §1 `--tls-cert`, `--tls-key`; operations.md "TLS"): serve speaks HTTPS with a certificate
made here by the `openssl` CLI, reads the files again on SIGHUP (new connections get the new certificate, open
ones keep theirs), and keeps the certificate it has when the new files are bad."""

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import Server, binary, wait_until


def make_cert(directory, name):
    """A self-signed certificate for 127.0.0.1 and localhost: (cert path, key path)."""
    cert, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def der(cert_path):
    with open(cert_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class Tls(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="orderflow-e2e-tls-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.cert, self.key = os.path.join(self.dir, "server.crt"), os.path.join(self.dir, "server.key")
        self.first = make_cert(self.dir, "first")
        self.second = make_cert(self.dir, "second")
        self.install(self.first)

    def install(self, pair):
        shutil.copy(pair[0], self.cert)
        shutil.copy(pair[1], self.key)

    def https(self, server, trusted):
        ctx = ssl.create_default_context(cafile=trusted[0])
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)
        self.addCleanup(conn.close)
        return conn

    def get(self, conn, path):
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()

    def served_cert(self, server):
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as s:
                return s.getpeercert(binary_form=True)

    def test_https_and_reload_on_sighup(self):
        with Server(extra_args=["--tls-cert", self.cert, "--tls-key", self.key]) as server:
            self.assertTrue(server.stdout_lines[0].startswith("orderflow: serving https://127.0.0.1:"), server.stdout_lines)
            kept = self.https(server, self.first)
            self.assertEqual(self.get(kept, "/healthz")[0], 200)
            status, body = self.get(kept, "/api/v1/products")
            self.assertEqual(status, 200, body)
            self.assertEqual(self.served_cert(server), der(self.first[0]))

            # Plain HTTP on the TLS port gets no answer: the connection is closed.
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain:
                plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                self.assertFalse(plain.recv(4096).startswith(b"HTTP/"))

            # New files, SIGHUP: new connections get the new certificate; the open one goes on.
            self.install(self.second)
            server.signal(signal.SIGHUP)
            wait_until(lambda: self.served_cert(server) == der(self.second[0]), 10, "the new certificate served")
            self.assertIn("TLS certificate and key reloaded", server.stderr())
            self.assertEqual(self.get(kept, "/healthz")[0], 200)
            self.assertEqual(self.get(self.https(server, self.second), "/healthz")[0], 200)

            # A bad file (a key that is not the certificate's, then garbage): logged, the second kept.
            shutil.copy(self.first[0], self.cert)
            server.signal(signal.SIGHUP)
            wait_until(lambda: "TLS reload failed" in server.stderr(), 10, "the failed reload logged")
            with open(self.cert, "w") as f:
                f.write("not a certificate\n")
            server.signal(signal.SIGHUP)
            wait_until(lambda: server.stderr().count("TLS reload failed") >= 2, 10, "the second failed reload logged")
            self.assertIn("cannot use the certificate chain", server.stderr())
            self.assertEqual(self.served_cert(server), der(self.second[0]))
            self.assertEqual(self.get(self.https(server, self.second), "/healthz")[0], 200)

    def test_bad_files_at_start_are_exit_2(self):
        with open(os.path.join(self.dir, "junk.pem"), "w") as f:
            f.write("junk\n")
        for args, says in ((["--tls-cert", self.cert], "--tls-cert and --tls-key go together"),
                           (["--tls-cert", self.cert, "--tls-key", self.second[1]], "key values mismatch"),
                           (["--tls-cert", os.path.join(self.dir, "junk.pem"), "--tls-key", self.key],
                            "cannot use the certificate chain"),
                           (["--tls-cert", self.cert, "--tls-key", os.path.join(self.dir, "missing.key")],
                            "cannot use the private key")):
            with tempfile.TemporaryDirectory() as d:
                p = subprocess.run([binary(), "serve", "--listen", "127.0.0.1:0", "--data", d, *args],
                                   capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(says, p.stderr, args)


if __name__ == "__main__":
    unittest.main()
