"""docs/api.md §6–§7 read side: queries served from projections, read-your-writes, paging, rebuild, live feed."""

import time
import unittest
import uuid

from harness import API, ServerTestCase, create_account, create_product, new_id, place_order, read_sse


class ReadSide(ServerTestCase, unittest.TestCase):
    def test_reads_see_own_writes_and_min_position(self):
        aid = create_account(self.c, balance=700)
        r = self.c.get(f"{API}/accounts/{aid}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["balance_cents"], 700)
        pos = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 5}).json["position"]
        r = self.c.get(f"{API}/accounts/{aid}?min_position={pos}&wait_ms=5000")
        self.assertEqual(r.json["balance_cents"], 705, r)
        r = self.c.get(f"{API}/accounts/{aid}?min_position={pos + 1000000}&wait_ms=200")
        self.assertError(r, 503, "projection_lagging")
        self.assertIsNotNone(r.header("Retry-After"))
        for bad in ("wait_ms=10001", "min_position=-1", "wait_ms=x"):
            self.assertError(self.c.get(f"{API}/accounts/{aid}?{bad}"), 400, "invalid_request")

    def test_transactions_ledger(self):
        aid = create_account(self.c, balance=300)
        self.c.post(f"{API}/accounts/{aid}/withdraw", {"amount_cents": 100})
        r = self.c.get(f"{API}/accounts/{aid}/transactions")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([(t["type"], t["amount_cents"]) for t in r.json["transactions"]],
                         [("deposit", 300), ("withdrawal", 100)])
        for t in r.json["transactions"]:
            self.assertIn("at", t)
            self.assertIsInstance(t["position"], int)
        self.assertError(self.c.get(f"{API}/accounts/{new_id('nope')}/transactions"), 404, "not_found")

    def test_order_list_pages_newest_first_exactly_once(self):
        pid = create_product(self.c, stock=1000)
        customer = new_id("c")
        placed = [place_order(self.c, customer, [(pid, 1)]) for _ in range(9)]
        seen, cursor = [], None
        while True:
            q = f"customer_id={customer}&limit=4" + (f"&cursor={cursor}" if cursor else "")
            r = self.c.get(f"{API}/orders?{q}")
            self.assertEqual(r.status, 200, r)
            seen += [o["order_id"] for o in r.json["orders"]]
            place_order(self.c, customer, [(pid, 1)])  # new orders arrive while paging
            cursor = r.json["next_cursor"]
            if not cursor:
                break
        self.assertEqual(seen, list(reversed(placed)))
        # The saga moves orders on; filter once every order has reached its final status.
        deadline = time.monotonic() + 10
        while True:
            same = self.c.get(f"{API}/customers/{customer}/orders?limit=100")
            if all(o["status"] != "PENDING" for o in same.json["orders"]) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(same.json["orders"]), 12, same)
        status = same.json["orders"][0]["status"]
        filtered = self.c.get(f"{API}/customers/{customer}/orders?limit=100&status={status}").json["orders"]
        self.assertTrue(filtered and all(o["status"] == status for o in filtered), filtered)
        for bad in ("limit=0", "limit=101", "status=FOO", "cursor=zzz"):
            self.assertError(self.c.get(f"{API}/orders?{bad}"), 400, "invalid_request")

    def test_products_list_and_sales(self):
        pids = sorted(create_product(self.c, product_id=f"zz-{uuid.uuid4().hex[:8]}-{i}") for i in range(3))
        r = self.c.get(f"{API}/products?limit=100")
        self.assertEqual(r.status, 200, r)
        listed = [p["product_id"] for p in r.json["products"]]
        self.assertEqual(sorted(listed), listed)
        self.assertTrue(set(pids) <= set(listed))
        place_order(self.c, new_id("c"), [(pids[0], 2)])
        s = self.c.get(f"{API}/analytics/sales?from=2000-01-01&to=2100-01-01T00:00:00Z")
        self.assertEqual(s.status, 200, s)
        for key in ("orders_placed", "orders_confirmed", "orders_cancelled", "revenue_cents", "by_day",
                    "top_products"):
            self.assertIn(key, s.json)
        self.assertGreaterEqual(s.json["orders_placed"], 1)
        self.assertError(self.c.get(f"{API}/analytics/sales?from=yesterday"), 400, "invalid_request")

    def test_time_travel_and_strong_reads(self):
        oid = place_order(self.c, new_id("c"), [(create_product(self.c, price=100), 1)])
        strong = self.c.get(f"{API}/orders/{oid}?consistency=strong").json
        self.assertEqual(strong["order_id"], oid)
        self.assertError(self.c.get(f"{API}/orders/{oid}?at=2000-01-01T00:00:00Z"), 404, "not_found")
        later = time.strftime("%Y-%m-%dT%H:%M:%S.999Z", time.gmtime(time.time() + 5))
        self.assertGreaterEqual(self.c.get(f"{API}/orders/{oid}?at={later}").json["version"], strong["version"])
        self.assertError(self.c.get(f"{API}/orders/{oid}?at=yesterday"), 400, "invalid_request")

    def test_rebuild_keeps_answering_and_ends_identical(self):
        aid = create_account(self.c, balance=42)
        before = self.c.get(f"{API}/accounts/{aid}").json
        r = self.c.post(f"{API}/admin/projections/accounts/rebuild")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json, before)
        self.assertError(self.c.post(f"{API}/admin/projections/nope/rebuild"), 404, "not_found")
        for _ in range(200):
            states = {p["name"]: p for p in self.c.get(f"{API}/admin/projections").json}
            if states["accounts"]["status"] == "running":
                break
            time.sleep(0.05)
        self.assertEqual(set(states), {"orders", "products", "accounts", "sales"})
        for p in states.values():
            self.assertEqual(set(p), {"name", "position", "lag", "status", "last_error",
                                      "lag_p50_ms", "lag_p99_ms", "lag_window", "fed_by"})
            self.assertEqual(p["fed_by"], "log")
        self.assertEqual(states["accounts"]["status"], "running")
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json, before)

    def test_projection_lag_is_measured(self):
        aid = create_account(self.c, balance=10)
        pos = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 5}).json["position"]
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}?min_position={pos}&wait_ms=5000").status, 200)
        accounts = {p["name"]: p for p in self.c.get(f"{API}/admin/projections").json}["accounts"]
        self.assertGreaterEqual(accounts["lag_window"], 3)  # opened, deposit on creation, deposit
        self.assertLessEqual(0, accounts["lag_p50_ms"])
        self.assertLessEqual(accounts["lag_p50_ms"], accounts["lag_p99_ms"])
        self.assertLess(accounts["lag_p99_ms"], 10000)
        text = self.c.get("/metrics").body.decode()
        self.assertIn("# TYPE orderflow_projection_lag_seconds histogram", text)
        count = next(line for line in text.splitlines()
                     if line.startswith('orderflow_projection_lag_seconds_count{projection="accounts"}'))
        self.assertGreaterEqual(int(count.split()[-1]), 3)

    def test_readyz_and_metrics(self):
        r = self.c.get("/readyz")
        self.assertEqual(r.status, 200)
        checks = r.json["checks"]
        self.assertEqual(checks["store"], {"readable": True, "writable": True})
        self.assertEqual({p["name"] for p in checks["projections"]}, {"orders", "products", "accounts", "sales"})
        self.assertTrue(all(p["caught_up"] for p in checks["projections"]), checks)
        self.assertIn(checks["saga"]["holds_lease"], (True, False))  # False: on PostgreSQL, before the lease is taken
        r = self.c.get("/metrics")
        self.assertEqual(r.status, 200)
        text = r.body.decode()
        self.assertIn("orderflow_http_requests_total{", text)
        self.assertIn('orderflow_projection_lag{projection="orders"}', text)

    def read_sse(self, path, headers, want):
        """The first `want` events of an SSE stream as (id, event) pairs."""
        return [(int(e["id"]), e["event"]) for e in read_sse(self.server.port, path, headers, want)]

    def test_live_feed_resumes_with_last_event_id(self):
        aid = create_account(self.c)
        for _ in range(5):
            self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1})
        stream = f"{API}/events/stream?stream_id=account-{aid}"
        first = self.read_sse(stream, {}, 3)
        self.assertEqual([e for _, e in first], ["AccountOpened", "FundsDeposited", "FundsDeposited"])
        rest = self.read_sse(stream, {"Last-Event-ID": first[-1][0]}, 3)
        self.assertEqual(len(rest), 3)
        self.assertTrue(all(p > first[-1][0] for p, _ in rest))
        positions = [p for p, _ in first + rest]
        self.assertEqual(positions, sorted(set(positions)))
        # live: an event appended after the client connected arrives too
        late = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1}).json["position"]
        tail = self.read_sse(stream, {"Last-Event-ID": rest[-1][0]}, 1)
        self.assertEqual(tail[0][0], late)


if __name__ == "__main__":
    unittest.main()
