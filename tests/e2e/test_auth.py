"""Authentication and roles (docs/api.md §3 "Authentication"): a server run with --auth-keys wants bearer
tokens; a customer's token sees and touches only its own orders and account; admin routes are for operators
and admins. Tokens are minted here with Python's own HMAC (so the server's JWTs are checked against an
independent implementation) and with `orderflow token`."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import (API, Client, ErrorAsserts, Server, binary, create_account, create_product, events_caused_by,
                     last_position, new_id, place_order, wait_until)

KEYS = {"k1": os.urandom(32), "k2": os.urandom(32)}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(role, sub=None, kid="k1", ttl=3600, alg="HS256", key=None):
    header = {"alg": alg, "typ": "JWT", "kid": kid}
    payload = {"role": role, "exp": int(time.time()) + ttl}
    if sub is not None:
        payload["sub"] = sub
    signed = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    mac = hmac.new(key or KEYS.get(kid, b"x" * 32), signed.encode(), hashlib.sha256).digest()
    return signed + "." + b64url(mac)


class TokenClient(Client):
    """A Client that sends `Authorization: Bearer <token>` with every request."""

    def __init__(self, port, bearer):
        super().__init__(port)
        self.bearer = bearer

    def request(self, method, path, body=None, headers=None, **kw):
        return super().request(method, path, body, {"Authorization": f"Bearer {self.bearer}", **(headers or {})}, **kw)


class Auth(ErrorAsserts, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="orderflow-e2e-keys-")
        cls.keys_file = os.path.join(cls.dir, "auth-keys")
        with open(cls.keys_file, "w") as f:
            f.write("# kid=base64secret\n")
            f.writelines(f"{kid}={base64.b64encode(secret).decode()}\n" for kid, secret in KEYS.items())
        cls.server = Server(extra_args=["--auth-keys", cls.keys_file]).start()
        cls.admin = TokenClient(cls.server.port, token("admin"))
        cls.operator = TokenClient(cls.server.port, token("operator", "ops-1", kid="k2"))
        cls.product = create_product(cls.admin, price=100, stock=100)
        cls.alice, cls.bob = new_id("alice"), new_id("bob")
        for customer in (cls.alice, cls.bob):
            create_account(cls.admin, customer)
            assert cls.admin.post(f"{API}/accounts/{customer}/deposit", {"amount_cents": 10_000}).status == 200

    @classmethod
    def tearDownClass(cls):
        for c in (cls.admin, cls.operator):
            c.close()
        try:
            cls.server.stop()
        finally:
            cls.server.cleanup()
            shutil.rmtree(cls.dir, ignore_errors=True)

    def customer(self, customer_id):
        c = TokenClient(self.server.port, token("customer", customer_id))
        self.addCleanup(c.close)
        return c

    def anonymous(self):
        c = Client(self.server.port)
        self.addCleanup(c.close)
        return c

    def assertUnauthorized(self, r, challenge="Bearer"):
        self.assertError(r, 401, "unauthorized")
        self.assertEqual(r.header("WWW-Authenticate"), challenge, r)

    def test_no_or_bad_token_is_401_and_health_routes_stay_open(self):
        anon = self.anonymous()
        for path in ("/healthz", "/readyz", "/metrics", f"{API}/openapi.json", "/docs", "/docs/redoc.standalone.js"):
            self.assertEqual(anon.get(path).status, 200, path)
        self.assertUnauthorized(anon.get(f"{API}/products"))
        self.assertUnauthorized(anon.post(f"{API}/accounts", {"account_id": new_id("a")}))
        self.assertUnauthorized(anon.get(f"{API}/products", headers={"Authorization": "Basic YTpi"}))
        invalid = 'Bearer error="invalid_token"'
        for bad in (token("admin", ttl=-5),                        # expired
                    token("admin", kid="k9"),                      # unknown kid
                    token("admin", key=b"y" * 32),                 # signed with another key
                    token("admin", alg="none"),                    # alg none
                    token("admin", alg="HS512"),                   # another alg
                    token("admin")[:-4] + "!!!!",                  # malformed base64
                    token("customer")):                            # a customer without sub
            r = anon.get(f"{API}/products", headers={"Authorization": f"Bearer {bad}"})
            self.assertUnauthorized(r, invalid)
        # A refused write wrote nothing (found by correlation id: the saga of another test's order may
        # still be appending).
        before, sent = last_position(self.admin), len(anon.sent)
        r = anon.post(f"{API}/accounts/{self.alice}/withdraw", {"amount_cents": 1},
                      headers={"Authorization": f"Bearer {token('admin', ttl=-1)}"})
        self.assertUnauthorized(r, invalid)
        self.assertEqual(events_caused_by(self.admin, anon.sent[sent:], before), [])

    def test_a_customer_cannot_see_or_touch_another_customers_data(self):
        alice, bob = self.customer(self.alice), self.customer(self.bob)
        order = place_order(alice, self.alice, [(self.product, 1)], headers={"X-Actor": "saga"})
        placed = self.admin.get(f"{API}/orders/{order}/events").json["events"][0]
        self.assertEqual(placed["metadata"]["actor"], f"customer:{self.alice}", "the actor is the token's, not X-Actor")
        self.assertEqual(alice.get(f"{API}/orders/{order}").status, 200)
        self.assertEqual(alice.get(f"{API}/orders/{order}/events").status, 200)
        self.assertEqual(alice.get(f"{API}/accounts/{self.alice}").status, 200)
        self.assertEqual(alice.get(f"{API}/accounts/{self.alice}/transactions").status, 200)
        self.assertEqual(alice.get(f"{API}/products/{self.product}").status, 200)

        mark, sent = last_position(self.admin), len(bob.sent)
        # Another customer's resources are 404, as if they did not exist.
        for path in (f"/orders/{order}", f"/orders/{order}/events", f"/orders/{order}?consistency=strong",
                     f"/accounts/{self.alice}", f"/accounts/{self.alice}/transactions",
                     f"/customers/{self.alice}/orders"):
            self.assertError(bob.get(API + path), 404, "not_found")
        self.assertError(bob.post(f"{API}/orders/{order}/cancel", {"reason": "mine now"}), 404, "not_found")
        self.assertError(bob.post(f"{API}/accounts/{self.alice}/withdraw", {"amount_cents": 1}), 404, "not_found")
        self.assertError(bob.post(f"{API}/accounts/{self.alice}/deposit", {"amount_cents": 1}), 404, "not_found")
        # Naming another customer in a body or a query is refused.
        r = bob.post(f"{API}/orders", {"customer_id": self.alice, "items": [{"product_id": self.product, "quantity": 1}]})
        self.assertError(r, 403, "forbidden")
        self.assertError(bob.post(f"{API}/accounts", {"account_id": new_id("other")}), 403, "forbidden")
        r = bob.post(f"{API}/accounts", {"account_id": new_id("other"), "customer_id": self.bob})
        self.assertError(r, 403, "forbidden")
        self.assertError(bob.get(f"{API}/orders?customer_id={self.alice}"), 403, "forbidden")
        self.assertEqual(events_caused_by(self.admin, bob.sent[sent:], mark), [], "a refused request wrote")

        # Bob's own listing holds only his orders; Alice's account is untouched.
        mine = place_order(bob, self.bob, [(self.product, 2)])
        listed = bob.get(f"{API}/orders?min_position={last_position(self.admin)}").json["orders"]
        self.assertEqual({o["customer_id"] for o in listed}, {self.bob})
        self.assertIn(mine, [o["order_id"] for o in listed])
        self.assertEqual(bob.post(f"{API}/accounts/{self.bob}/deposit", {"amount_cents": 5}).status, 200)
        self.assertEqual(alice.post(f"{API}/orders/{order}/cancel", {"reason": "changed my mind"}).status, 200)

    def test_roles_gate_admin_routes(self):
        alice = self.customer(self.alice)
        for method, path, body in (("GET", "/admin/events", None), ("GET", "/admin/projections", None),
                                   ("POST", "/admin/projections/orders/rebuild", None),
                                   ("GET", "/admin/dead-letters", None), ("GET", "/admin/invariants", None),
                                   ("GET", "/analytics/sales", None), ("GET", "/events/stream", None),
                                   ("POST", "/products", {"product_id": new_id("p"), "name": "x",
                                                          "unit_price_cents": 1, "initial_stock": 1}),
                                   ("POST", f"/products/{self.product}/restock", {"quantity": 1}),
                                   ("PUT", f"/orders/{new_id('o')}/shipping-status", {"status": "IN_TRANSIT"})):
            self.assertError(alice.request(method, API + path, body), 403, "forbidden")

        # An operator reads everything and runs operations, but places, pays and stocks nothing.
        op = self.operator
        self.assertEqual(op.get(f"{API}/admin/events?limit=5").status, 200)
        self.assertEqual(op.get(f"{API}/accounts/{self.alice}").status, 200)
        self.assertEqual(op.get(f"{API}/admin/invariants").status, 200)
        self.assertEqual(op.post(f"{API}/admin/projections/products/rebuild").status, 202)
        order = place_order(self.admin, self.bob, [(self.product, 1)])
        r = op.put(f"{API}/orders/{order}/shipping-status", {"status": "IN_TRANSIT"})
        self.assertIn(r.status, (200, 409), r)  # allowed; 409 while the saga has not confirmed it yet
        self.assertError(op.post(f"{API}/accounts/{self.alice}/withdraw", {"amount_cents": 1}), 403, "forbidden")
        self.assertError(op.post(f"{API}/products/{self.product}/restock", {"quantity": 1}), 403, "forbidden")
        r = op.post(f"{API}/orders", {"customer_id": self.bob, "items": [{"product_id": self.product, "quantity": 1}]})
        self.assertError(r, 403, "forbidden")

    def test_the_token_subcommand_mints_tokens_the_server_accepts(self):
        out = subprocess.run([binary(), "token", "--role", "customer", "--sub", self.alice, "--kid", "k2",
                              "--auth-keys", self.keys_file, "--ttl", "10m"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        c = TokenClient(self.server.port, out.stdout.strip())
        self.addCleanup(c.close)
        self.assertEqual(c.get(f"{API}/accounts/{self.alice}").status, 200)
        self.assertError(c.get(f"{API}/accounts/{self.bob}"), 404, "not_found")
        bad = subprocess.run([binary(), "token", "--role", "customer", "--kid", "k1", "--auth-keys", self.keys_file],
                             capture_output=True, text=True)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--sub", bad.stderr)


class DnsRebinding(ErrorAsserts, unittest.TestCase):
    """Without --auth-keys only the server's own names are served: a page that a browser loaded from
    attacker.example cannot reach a localhost server by pointing attacker.example at 127.0.0.1."""

    def serve(self, *args):
        server = Server(extra_args=list(args)).start()
        self.addCleanup(server.cleanup)
        self.addCleanup(server.stop)
        c = server.client()
        self.addCleanup(c.close)
        return server, c

    def test_only_the_configured_host_names_are_answered(self):
        server, c = self.serve()
        for host in ("localhost", "LOCALHOST:8080", "127.0.0.1", f"127.0.0.1:{server.port}", "[::1]:80"):
            self.assertEqual(c.get("/healthz", headers={"Host": host}).status, 200, host)
        mark = last_position(c)
        for host in ("attacker.example", "attacker.example:8080", "localhost.attacker.example", "127.0.0.2"):
            self.assertError(c.get(f"{API}/products", headers={"Host": host}), 421, "misdirected_request")
            r = c.post(f"{API}/accounts", {"account_id": new_id("a")}, headers={"Host": host})
            self.assertError(r, 421, "misdirected_request")
        self.assertEqual(last_position(c), mark)

    def test_allowed_hosts_replaces_the_default_names(self):
        _, c = self.serve("--allowed-hosts", "orderflow.internal,10.1.2.3")
        self.assertEqual(c.get("/healthz", headers={"Host": "orderflow.internal:8080"}).status, 200)
        self.assertEqual(c.get("/healthz", headers={"Host": "10.1.2.3"}).status, 200)
        self.assertError(c.get("/healthz", headers={"Host": "localhost"}), 421, "misdirected_request")

    def test_with_authentication_any_host_is_served(self):
        with tempfile.TemporaryDirectory() as d:
            keys = os.path.join(d, "keys")
            with open(keys, "w") as f:
                f.write(f"k1={base64.b64encode(KEYS['k1']).decode()}\n")
            _, c = self.serve("--auth-keys", keys)
            r = c.get(f"{API}/products", headers={"Host": "api.example.com", "Authorization": f"Bearer {token('admin')}"})
            self.assertEqual(r.status, 200, r)


class Exposure(unittest.TestCase):
    def test_serve_refuses_a_non_loopback_address_without_auth(self):
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run([binary(), "serve", "--listen", "0.0.0.0:0", "--data", d], capture_output=True,
                                 text=True, timeout=30)
        self.assertEqual(out.returncode, 2, out)
        self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)
        self.assertIn("--insecure", out.stderr)

    def test_serve_refuses_a_bad_key_file(self):
        with tempfile.TemporaryDirectory() as d:
            keys = os.path.join(d, "keys")
            with open(keys, "w") as f:
                f.write("k1=c2hvcnQ=\n")
            out = subprocess.run([binary(), "serve", "--listen", "127.0.0.1:0", "--data", d, "--auth-keys", keys],
                                 capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 2, out)
        self.assertIn("shorter than 32 bytes", out.stderr)


if __name__ == "__main__":
    unittest.main()
