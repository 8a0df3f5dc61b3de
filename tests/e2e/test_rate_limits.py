"""Rate limits (docs/api.md §3 "Rate limits"; serve --rate-limit, --rate-burst): a token bucket per caller,
its token's role and sub with authentication, else its client address. One over its limit is answered
429 rate_limited with Retry-After and writes nothing; health, readiness and metrics are never limited;
/metrics counts the refusals."""

import base64
import os
import re
import subprocess
import tempfile
import time
import unittest

from harness import API, Client, ErrorAsserts, Server, binary, new_id
from test_auth import KEYS, TokenClient, token


def rate_limited_total(c, caller):
    m = re.search(r'^orderflow_http_rate_limited_total\{caller="%s"\} (\d+)$' % caller, c.get("/metrics").body.decode(),
                  re.M)
    return int(m.group(1))


def until_refused(c, path, most=20):
    """GETs `path` until one is refused 429 (at most `most`): (the refused answer, how many passed, seconds)."""
    start, passed = time.monotonic(), 0
    while True:
        r = c.get(path)
        if r.status != 200 or passed == most:
            return r, passed, time.monotonic() - start
        passed += 1


class RateLimitsByAddress(ErrorAsserts, unittest.TestCase):
    def test_over_the_burst_is_429_with_retry_after_and_writes_nothing(self):
        # A token every 2 s, 5 at once.
        with Server(extra_args=["--rate-limit", "0.5", "--rate-burst", "5"]) as server:
            c = server.client()
            self.addCleanup(c.close)
            r, passed, took = until_refused(c, f"{API}/products")
            self.assertError(r, 429, "rate_limited")
            self.assertGreaterEqual(passed, 5)
            self.assertLessEqual(passed, 5 + int(took * 0.5) + 1)
            self.assertIn(r.header("Retry-After"), ("1", "2"))  # whole seconds until the next token
            # Another connection from the same address shares the bucket; the refused write writes nothing.
            other = server.client()
            self.addCleanup(other.close)
            account = new_id("a")
            self.assertError(other.post(f"{API}/accounts", {"account_id": account}), 429, "rate_limited")
            # Health, readiness and metrics are answered all the same.
            for _ in range(3):
                for path in ("/healthz", "/readyz", "/metrics"):
                    self.assertEqual(c.get(path).status, 200, path)
            self.assertEqual(rate_limited_total(c, "address"), 2)
            self.assertEqual(rate_limited_total(c, "token"), 0)
            time.sleep(4.5)  # two tokens
            self.assertEqual(c.get(f"{API}/accounts/{account}").status, 404)
            self.assertEqual(c.post(f"{API}/accounts", {"account_id": account}).status, 201)

    def test_off_by_default_on_loopback(self):
        with Server() as server:
            c = server.client()
            self.addCleanup(c.close)
            statuses = {c.get(f"{API}/products").status for _ in range(300)}
            self.assertEqual(statuses, {200})
            self.assertEqual(rate_limited_total(c, "address"), 0)

    def test_a_burst_below_one_is_refused_at_start(self):
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.run([binary(), "serve", "--listen", "127.0.0.1:0", "--data", d, "--rate-limit", "5",
                                "--rate-burst", "0.5"], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("--rate-burst must be at least 1", p.stderr)

    def test_the_settings_come_from_the_configuration_file_and_the_environment(self):
        with tempfile.TemporaryDirectory() as d:
            config = os.path.join(d, "orderflow.toml")
            with open(config, "w") as f:
                f.write("[serve]\nrate_limit = 5\n")
            env = dict(os.environ, ORDERFLOW_SERVE_RATE_BURST="0.5")
            p = subprocess.run([binary(), "serve", "--config", config, "--listen", "127.0.0.1:0", "--data", d],
                               capture_output=True, text=True, timeout=30, env=env)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("--rate-burst must be at least 1", p.stderr)
            # Unset, the limit is the server's to choose (off on loopback): `orderflow config` says so.
            p = subprocess.run([binary(), "config", "serve"], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, r"(?m)^# rate_limit unset +# default \(ORDERFLOW_SERVE_RATE_LIMIT\)$")


class RateLimitsByToken(ErrorAsserts, unittest.TestCase):
    def test_each_token_has_its_own_limit(self):
        with tempfile.TemporaryDirectory() as d:
            keys_file = os.path.join(d, "auth-keys")
            with open(keys_file, "w") as f:
                f.writelines(f"{kid}={base64.b64encode(secret).decode()}\n" for kid, secret in KEYS.items())
            with Server(extra_args=["--auth-keys", keys_file, "--rate-limit", "0.2", "--rate-burst", "3"]) as server:
                alice, bob = new_id("alice"), new_id("bob")
                a, b = TokenClient(server.port, token("customer", alice)), TokenClient(server.port, token("customer", bob))
                # Another token of the same customer is the same caller.
                a2 = TokenClient(server.port, token("customer", alice, kid="k2"))
                anon = Client(server.port)
                for c in (a, b, a2, anon):
                    self.addCleanup(c.close)
                # A token every 5 s, 3 at once; alice's two tokens draw on one bucket.
                for i in range(2):
                    self.assertEqual(a2.get(f"{API}/products").status, 200, i)
                r, passed, took = until_refused(a, f"{API}/products")
                self.assertError(r, 429, "rate_limited")
                self.assertGreaterEqual(passed, 1)
                self.assertLessEqual(passed, 1 + int(took * 0.2) + 1)
                self.assertIn(r.header("Retry-After"), ("1", "2", "3", "4", "5"))
                self.assertEqual(b.get(f"{API}/products").status, 200)  # bob is not held back by alice
                self.assertEqual(anon.get("/metrics").status, 200)
                self.assertEqual(rate_limited_total(anon, "token"), 1)


if __name__ == "__main__":
    unittest.main()
