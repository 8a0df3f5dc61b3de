"""Crypto-shredding of personal data (docs/api.md §7, DELETE /api/v1/customers/{id}/personal-data): an account's
owner and an order's shipping address are stored sealed under the customer's key; erasing the key makes every read
(orders, listings, event listings, the live feed, accounts, time travel, rebuilt read models, `orderflow events`)
show "[erased]", changes nothing else (totals, invariants, `orderflow verify`), and only an admin may ask it."""

import base64
import glob
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import (API, Client, ErrorAsserts, Server, binary, create_account, create_product, on_postgres,
                     place_order, read_sse, scan_events, settled_orders, stream_events, wait_caught_up, wait_until)
from test_auth import KEYS, TokenClient, token

ERASED = "[erased]"


def feed_data(port, path, want):
    """The data of the first `want` events of the live feed, parsed (an admin's token)."""
    return [json.loads(e["data"]) for e in read_sse(port, path, {"Authorization": f"Bearer {token('admin')}"}, want)]


def personal_values(event):
    data = event["data"]
    return [data[f] for f in ("owner", "shipping_address") if data.get(f) is not None]


class Shredding(ErrorAsserts, unittest.TestCase):
    """One server with authentication: two customers with personal data, one of them erased."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="orderflow-e2e-shred-keys-")
        keys = os.path.join(cls.dir, "auth-keys")
        with open(keys, "w") as f:
            f.writelines(f"{kid}={base64.b64encode(secret).decode()}\n" for kid, secret in KEYS.items())
        cls.server = Server(extra_args=["--auth-keys", keys]).start()
        cls.admin = TokenClient(cls.server.port, token("admin"))
        c = cls.admin
        cls.product = create_product(c, price=300, stock=50)
        cls.alice = create_account(c, f"alice-{os.urandom(4).hex()}", balance=10_000, owner="Alice Liddell")
        cls.bob = create_account(c, f"bob-{os.urandom(4).hex()}", balance=10_000, owner="Bob Builder")
        cls.alice_orders = [place_order(c, cls.alice, [(cls.product, 2)], shipping_address="1 Rabbit Hole, Oxford")
                            for _ in range(2)]
        cls.bob_order = place_order(c, cls.bob, [(cls.product, 1)], shipping_address="7 Yard Lane, Leeds")
        settled_orders(c, cls.alice_orders + [cls.bob_order])
        wait_caught_up(c)

    @classmethod
    def tearDownClass(cls):
        cls.admin.close()
        try:
            cls.server.stop()
        finally:
            cls.server.cleanup()
            shutil.rmtree(cls.dir, ignore_errors=True)

    def client(self, bearer):
        c = TokenClient(self.server.port, bearer)
        self.addCleanup(c.close)
        return c

    def totals(self):
        c = self.admin
        return {
            "product": {k: c.get(f"{API}/products/{self.product}").json[k] for k in ("on_hand", "reserved")},
            "balances": [c.get(f"{API}/accounts/{a}").json["balance_cents"] for a in (self.alice, self.bob)],
            "statuses": [c.get(f"{API}/orders/{o}").json["status"] for o in self.alice_orders + [self.bob_order]],
            "sales": c.get(f"{API}/analytics/sales").json["revenue_cents"],
            "invariants": c.get(f"{API}/admin/invariants").json["violations"],
            "events": len(scan_events(c)),
        }

    def alice_reads(self):
        """Every read of Alice's personal data there is: (where, value) pairs."""
        c, order = self.admin, self.alice_orders[0]
        seen = [("account", c.get(f"{API}/accounts/{self.alice}").json["owner"])]
        for q in ("", "?consistency=strong", "?version=0", "?at=2999-01-01"):
            r = c.get(f"{API}/orders/{order}{q}")
            self.assertEqual(r.status, 200, r)
            seen.append((f"order{q}", r.json["shipping_address"]))
        for path in (f"/orders?customer_id={self.alice}", f"/customers/{self.alice}/orders"):
            seen += [(path, o["shipping_address"]) for o in c.get(API + path).json["orders"]]
        seen += [("order events", v) for e in c.get(f"{API}/orders/{order}/events").json["events"]
                 for v in personal_values(e)]
        for stream in (f"account-{self.alice}", f"order-{order}"):
            seen += [(f"stream {stream}", v) for e in stream_events(c, stream) for v in personal_values(e)]
        seen += [("admin events", v) for e in scan_events(c)
                 if e["stream_id"] == f"account-{self.alice}" or e["data"].get("customer_id") == self.alice
                 for v in personal_values(e)]
        for stream in (f"order-{order}", f"account-{self.alice}"):
            seen += [("live feed", v) for e in feed_data(self.server.port, f"{API}/events/stream?stream_id={stream}", 1)
                     for v in personal_values(e)]
        return seen

    def test_1_reads_show_personal_data_stored_only_sealed(self):
        values = {v for _, v in self.alice_reads()}
        self.assertEqual(values, {"Alice Liddell", "1 Rabbit Hole, Oxford"})
        if not on_postgres():
            # At rest only the sealed form: no file of the store holds the plaintext.
            for path in glob.glob(os.path.join(self.server.data_dir, "*.db*")):
                with open(path, "rb") as f:
                    raw = f.read()
                self.assertNotIn(b"Rabbit Hole", raw, path)
                self.assertNotIn(b"Alice Liddell", raw, path)

    def test_2_only_an_admin_erases(self):
        path = f"{API}/customers/{self.alice}/personal-data"
        self.assertError(self.client(token("customer", self.alice)).request("DELETE", path), 403, "forbidden")
        self.assertError(self.client(token("operator", "ops")).request("DELETE", path), 403, "forbidden")
        anonymous = Client(self.server.port)
        self.addCleanup(anonymous.close)
        self.assertError(anonymous.request("DELETE", path), 401, "unauthorized")
        self.assertError(self.admin.request("DELETE", f"{API}/customers/nobody-{os.urandom(4).hex()}/personal-data"),
                         404, "not_found")
        self.assertEqual({v for _, v in self.alice_reads()}, {"Alice Liddell", "1 Rabbit Hole, Oxford"})

    def test_3_erasure_shows_erased_everywhere_and_changes_nothing_else(self):
        before = self.totals()
        r = self.admin.request("DELETE", f"{API}/customers/{self.alice}/personal-data")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["customer_id"], self.alice)
        again = self.admin.request("DELETE", f"{API}/customers/{self.alice}/personal-data")
        self.assertEqual((again.status, again.json), (200, r.json), "a repeat answers the same")

        seen = self.alice_reads()
        self.assertGreaterEqual(len(seen), 14, seen)
        self.assertEqual([w for w, v in seen if v != ERASED], [], seen)
        # Bob's are untouched, and nothing else changed: no event written, totals and invariants as they were.
        self.assertEqual(self.admin.get(f"{API}/accounts/{self.bob}").json["owner"], "Bob Builder")
        self.assertEqual(self.admin.get(f"{API}/orders/{self.bob_order}").json["shipping_address"], "7 Yard Lane, Leeds")
        self.assertEqual(self.totals(), before)
        self.assertEqual(self.totals()["invariants"], [])

        metrics = self.admin.get("/metrics").body.decode()
        self.assertIn('orderflow_personal_data_erasures_total{outcome="erased"} 1\n', metrics)
        self.assertIn('orderflow_personal_data_erasures_total{outcome="already_erased"} 1\n', metrics)

        # Rebuilt read models fold the sealed events again: still erased.
        for name in ("orders", "accounts"):
            self.assertEqual(self.admin.post(f"{API}/admin/projections/{name}/rebuild").status, 202)
        wait_until(lambda: all(p["status"] in ("running", "following") and p["lag"] == 0
                               for p in self.admin.get(f"{API}/admin/projections").json), 30, "rebuilt")
        seen = self.alice_reads()
        self.assertEqual([w for w, v in seen if v != ERASED], [], seen)
        self.assertEqual(self.totals(), before)

    def test_4_new_personal_data_after_an_erasure_gets_a_new_key(self):
        order = place_order(self.admin, self.alice, [(self.product, 1)], shipping_address="2 Looking Glass Rd")
        settled_orders(self.admin, [order])
        self.assertEqual(self.admin.get(f"{API}/orders/{order}?consistency=strong").json["shipping_address"],
                         "2 Looking Glass Rd")
        old = self.admin.get(f"{API}/orders/{self.alice_orders[0]}?consistency=strong").json
        self.assertEqual(old["shipping_address"], ERASED)


class ShreddingSurvivesRestarts(unittest.TestCase):
    """As an operator: erase, stop, verify, rebuild and read from the command line, restart twice."""

    def test_erased_after_restarts_rebuild_and_verify(self):
        server = Server().start()
        try:
            c = server.client()
            product = create_product(c, price=100, stock=10)
            alice = create_account(c, f"alice-{os.urandom(4).hex()}", balance=1_000, owner="Alice Liddell")
            order = place_order(c, alice, [(product, 1)], shipping_address="1 Rabbit Hole, Oxford")
            settled_orders(c, [order])
            r = c.request("DELETE", f"{API}/customers/{alice}/personal-data")
            self.assertEqual(r.status, 200, r)
            balance = c.get(f"{API}/accounts/{alice}").json["balance_cents"]
            c.close()
            server.stop()

            rc, out = server.verify()
            self.assertEqual(rc, 0, out)
            # On PostgreSQL --data holds only the read models (the rebuild's): the server's own dir will do.
            store = [*server.store_args(), "--data", server.data_dir]
            for name in ("orders", "accounts"):
                run = subprocess.run([binary(), "rebuild", name, *store],
                                     capture_output=True, text=True, timeout=120)
                self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            run = subprocess.run([binary(), "events", f"order-{order}", *store],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertEqual(json.loads(run.stdout.splitlines()[0])["data"]["shipping_address"], ERASED)

            for _ in range(2):
                with Server(data_dir=server.data_dir, store=server.store) as again:
                    c = again.client()
                    self.assertEqual(c.get(f"{API}/orders/{order}").json["shipping_address"], ERASED)
                    account = c.get(f"{API}/accounts/{alice}").json
                    self.assertEqual((account["owner"], account["balance_cents"]), (ERASED, balance))
                    c.close()
            rc, out = server.verify()
            self.assertEqual(rc, 0, out)
        finally:
            server.cleanup()


if __name__ == "__main__":
    unittest.main()
