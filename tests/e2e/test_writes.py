"""docs/api.md §2 and §4: every write endpoint, its answer, ETag, versions, positions and If-Match."""

import time
import unittest
import uuid

from harness import (API, RFC3339_MS, UUID_V7, ErrorAsserts, Server, ServerTestCase, create_account, create_product,
                     last_position, new_id, place_order, scan_events, stream_events, wait_quiet)


# (status, payment_status, shipping_status) of an order placed for a funded customer with stock available:
# PENDING as placed, CONFIRMED once a fulfilment saga (docs/api.md §5) has reserved and charged.
PLACED_OR_CONFIRMED = {("PENDING", "PENDING", "WAITING_FOR_PAYMENT"), ("CONFIRMED", "PAID", "WAITING_FOR_SHIPMENT")}


class ProductWrites(ServerTestCase, unittest.TestCase):
    def test_register_product_answers_201_with_version_0_and_etag(self):
        pid = new_id("p")
        before = last_position(self.c)
        r = self.c.post(f"{API}/products", {"product_id": pid, "name": "Widget", "unit_price_cents": 1999,
                                            "initial_stock": 7})
        body = self.assertAccepted(r, 201, "product_id", pid)
        self.assertEqual(body["version"], 0)  # the first event of a stream is version 0
        self.assertGreater(body["position"], before)
        self.assertTrue((r.header("Content-Type") or "").startswith("application/json"))

        g = self.c.get(f"{API}/products/{pid}")
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.json, {"product_id": pid, "name": "Widget", "unit_price_cents": 1999, "on_hand": 7,
                                  "reserved": 0, "available": 7, "version": 0})
        self.assertEqual(g.header("ETag"), '"0"')

    def test_zero_price_and_zero_stock_are_valid(self):
        pid = new_id("p")
        r = self.c.post(f"{API}/products", {"product_id": pid, "name": "Free", "unit_price_cents": 0,
                                            "initial_stock": 0})
        self.assertAccepted(r, 201, "product_id", pid)
        g = self.c.get(f"{API}/products/{pid}").json
        self.assertEqual((g["unit_price_cents"], g["on_hand"], g["available"]), (0, 0, 0))

    def test_id_charset_boundaries_are_accepted(self):
        for pid in ("A", "x" * 64, "Az09_.:-" + new_id("q")[:20]):
            r = self.c.post(f"{API}/products", {"product_id": pid, "name": "n", "unit_price_cents": 1,
                                                "initial_stock": 1})
            self.assertAccepted(r, 201, "product_id", pid)
            self.assertEqual(self.c.get(f"{API}/products/{pid}").json["product_id"], pid)

    def test_restock_bumps_version_and_on_hand(self):
        pid = create_product(self.c, price=100, stock=3)
        r1 = self.c.post(f"{API}/products/{pid}/restock", {"quantity": 5})
        b1 = self.assertAccepted(r1, 200, "product_id", pid)
        self.assertEqual(b1["version"], 1)
        r2 = self.c.post(f"{API}/products/{pid}/restock", {"quantity": 2})
        b2 = self.assertAccepted(r2, 200, "product_id", pid)
        self.assertEqual(b2["version"], 2)
        self.assertGreater(b2["position"], b1["position"])
        g = self.c.get(f"{API}/products/{pid}")
        self.assertEqual(g.json["on_hand"], 10)
        self.assertEqual(g.json["available"], 10)
        self.assertEqual(g.json["version"], 2)
        self.assertEqual(g.header("ETag"), '"2"')
        types = [e["type"] for e in stream_events(self.c, f"product-{pid}")]
        self.assertEqual(types, ["ProductRegistered", "StockAdded", "StockAdded"])


class AccountWrites(ServerTestCase, unittest.TestCase):
    def test_open_account_with_and_without_owner(self):
        aid = new_id("a")
        r = self.c.post(f"{API}/accounts", {"account_id": aid, "owner": "Ada Lovelace"})
        b = self.assertAccepted(r, 201, "account_id", aid)
        self.assertEqual(b["version"], 0)
        g = self.c.get(f"{API}/accounts/{aid}")
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.json, {"account_id": aid, "owner": "Ada Lovelace", "balance_cents": 0, "version": 0})
        self.assertEqual(g.header("ETag"), '"0"')

        aid2 = new_id("a")
        r = self.c.post(f"{API}/accounts", {"account_id": aid2})
        self.assertAccepted(r, 201, "account_id", aid2)
        g = self.c.get(f"{API}/accounts/{aid2}").json
        self.assertEqual(g["account_id"], aid2)
        self.assertIn("owner", g)
        self.assertEqual(g["balance_cents"], 0)

    def test_deposit_and_withdraw(self):
        aid = create_account(self.c)
        d = self.assertAccepted(self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1000}), 200,
                                "account_id", aid)
        self.assertEqual(d["version"], 1)
        w = self.assertAccepted(self.c.post(f"{API}/accounts/{aid}/withdraw", {"amount_cents": 400}), 200,
                                "account_id", aid)
        self.assertEqual(w["version"], 2)
        self.assertGreater(w["position"], d["position"])
        # Withdrawing the whole balance is fine: balance may reach 0.
        w2 = self.assertAccepted(self.c.post(f"{API}/accounts/{aid}/withdraw", {"amount_cents": 600}), 200,
                                 "account_id", aid)
        self.assertEqual(w2["version"], 3)
        g = self.c.get(f"{API}/accounts/{aid}")
        self.assertEqual(g.json["balance_cents"], 0)
        self.assertEqual(g.json["version"], 3)
        self.assertEqual(g.header("ETag"), '"3"')
        types = [e["type"] for e in stream_events(self.c, f"account-{aid}")]
        self.assertEqual(types, ["AccountOpened", "FundsDeposited", "FundsWithdrawn", "FundsWithdrawn"])

    def test_position_of_answer_is_the_events_global_position(self):
        aid = create_account(self.c)
        b = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 5}).json
        ev = scan_events(self.c, from_position=b["position"], limit=1)
        self.assertEqual(ev[0]["position"], b["position"])
        self.assertEqual(ev[0]["stream_id"], f"account-{aid}")
        self.assertEqual(ev[0]["version"], b["version"])
        self.assertEqual(ev[0]["type"], "FundsDeposited")


class OrderWrites(ServerTestCase, unittest.TestCase):
    def test_place_order_202_pending_with_server_made_uuid_v7(self):
        pid = create_product(self.c, price=250, stock=10)
        aid = create_account(self.c, balance=10_000)
        t0 = int(time.time() * 1000)
        r = self.c.post(f"{API}/orders", {"customer_id": aid, "items": [{"product_id": pid, "quantity": 2}]})
        b = self.assertAccepted(r, 202, "order_id")
        self.assertEqual(b["status"], "PENDING")
        self.assertEqual(b["version"], 0)
        self.assertRegex(b["order_id"], UUID_V7)
        # v7: the first 48 bits are the Unix time in ms.
        ms = int(b["order_id"].replace("-", "")[:12], 16)
        self.assertLess(abs(ms - t0), 60_000, "UUIDv7 timestamp far from now")

        r2 = self.c.post(f"{API}/orders", {"customer_id": aid, "items": [{"product_id": pid, "quantity": 1}]})
        b2 = self.assertAccepted(r2, 202, "order_id")
        self.assertNotEqual(b2["order_id"], b["order_id"])
        self.assertRegex(b2["order_id"], UUID_V7)
        self.assertGreaterEqual(b2["order_id"].replace("-", "")[:12], b["order_id"].replace("-", "")[:12],
                                "UUIDv7 ids must be time-ordered")

    def test_client_supplied_uuid_is_used(self):
        pid = create_product(self.c)
        oid = str(uuid.uuid4())
        r = self.c.post(f"{API}/orders", {"order_id": oid, "customer_id": new_id("c"),
                                          "items": [{"product_id": pid, "quantity": 1}]})
        b = self.assertAccepted(r, 202, "order_id", oid)
        self.assertEqual(b["status"], "PENDING")
        g = self.c.get(f"{API}/orders/{oid}")
        self.assertEqual(g.status, 200, g)
        self.assertEqual(g.json["order_id"], oid)

    def test_order_lines_and_totals_use_product_prices(self):
        p1 = create_product(self.c, price=250, stock=10)
        p2 = create_product(self.c, price=1999, stock=10)
        aid = create_account(self.c, balance=100_000)
        oid = place_order(self.c, aid, [(p1, 3), (p2, 2)], shipping_address="1 Main St")
        g = self.c.get(f"{API}/orders/{oid}")
        self.assertEqual(g.status, 200, g)
        o = g.json
        self.assertEqual(o["order_id"], oid)
        self.assertEqual(o["customer_id"], aid)
        self.assertEqual(o["items"], [
            {"product_id": p1, "quantity": 3, "unit_price_cents": 250, "line_total_cents": 750},
            {"product_id": p2, "quantity": 2, "unit_price_cents": 1999, "line_total_cents": 3998},
        ])
        self.assertEqual(o["total_cents"], 4748)
        # PENDING until a fulfilment saga confirms it (§5: funded customer, stock available).
        self.assertIn((o["status"], o["payment_status"], o["shipping_status"]), PLACED_OR_CONFIRMED)
        self.assertNotIn("cancellation_reason", o)
        self.assertRegex(o["created_at"], RFC3339_MS)
        self.assertRegex(o["updated_at"], RFC3339_MS)
        self.assertEqual(g.header("ETag"), f'"{o["version"]}"')
        # As placed (version 0): PENDING, waiting for payment.
        v0 = self.c.get(f"{API}/orders/{oid}?version=0").json
        self.assertEqual((v0["status"], v0["payment_status"], v0["shipping_status"]),
                         ("PENDING", "PENDING", "WAITING_FOR_PAYMENT"))
        self.assertEqual((v0["items"], v0["total_cents"], v0["version"]), (o["items"], 4748, 0))

    def test_client_sent_unit_price_is_never_used(self):
        pid = create_product(self.c, price=500, stock=10)
        aid = create_account(self.c)
        mark = self.mark()
        r = self.c.post(f"{API}/orders", {"customer_id": aid, "items": [
            {"product_id": pid, "quantity": 2, "unit_price_cents": 1}]})
        if r.status == 202:
            o = self.c.get(f"{API}/orders/{r.json['order_id']}").json
            self.assertEqual(o["items"][0]["unit_price_cents"], 500)
            self.assertEqual(o["items"][0]["line_total_cents"], 1000)
            self.assertEqual(o["total_cents"], 1000)
        else:
            self.assertIn(r.status, (400, 422), r)
            self.assertNothingWrittenSince(mark)

    def test_hundred_lines_is_the_maximum_accepted(self):
        pids = [create_product(self.c, price=i, stock=5) for i in range(1, 101)]
        oid = place_order(self.c, new_id("c"), [(p, 1) for p in pids])
        o = self.c.get(f"{API}/orders/{oid}").json
        self.assertEqual(len(o["items"]), 100)
        self.assertEqual(o["total_cents"], sum(range(1, 101)))

    def test_cancel_order(self):
        pid = create_product(self.c, price=300, stock=5)
        aid = create_account(self.c, balance=1000)
        oid = place_order(self.c, aid, [(pid, 1)])
        r = self.c.post(f"{API}/orders/{oid}/cancel", {"reason": "customer changed mind"})
        b = self.assertAccepted(r, 200, "order_id", oid)
        self.assertGreaterEqual(b["version"], 1)  # 1 while the order is PENDING
        o = self.c.get(f"{API}/orders/{oid}")
        self.assertEqual(o.json["status"], "CANCELLED")
        self.assertEqual(o.json["shipping_status"], "CANCELLED")
        self.assertIn(o.json["payment_status"], ("PENDING", "REFUNDED"))  # never charged, or refunded
        self.assertEqual(o.json["cancellation_reason"], "customer changed mind")
        self.assertEqual(o.header("ETag"), f'"{o.json["version"]}"')
        # Nothing held, nothing charged (once any background compensation is done).
        wait_quiet(self.c)
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 1000)
        p = self.c.get(f"{API}/products/{pid}").json
        self.assertEqual((p["on_hand"], p["reserved"], p["available"]), (5, 0, 5))
        types = [e["type"] for e in self.c.get(f"{API}/orders/{oid}/events").json["events"]]
        self.assertEqual(types[0], "OrderPlaced")
        # OrderPaymentSettled follows when the cancel landed while the saga was charging.
        self.assertEqual(types[-2] if types[-1] == "OrderPaymentSettled" else types[-1], "OrderCancelled")

    def test_cancelled_order_cannot_be_cancelled_again(self):
        aid = create_account(self.c, balance=10_000)
        oid = place_order(self.c, aid, [(create_product(self.c), 1)])
        self.assertEqual(self.c.post(f"{API}/orders/{oid}/cancel", {"reason": "r1"}).status, 200)
        mark = self.mark()
        r = self.c.post(f"{API}/orders/{oid}/cancel", {"reason": "r2"})
        self.assertError(r, 409, "invalid_state")
        self.assertNothingWrittenSince(mark)
        self.assertEqual(self.c.get(f"{API}/orders/{oid}").json["cancellation_reason"], "r1")

    def test_shipping_an_unpaid_order_is_invalid_state(self):
        # The customer has no account: the order is PENDING (or, with the saga, CANCELLED payment_declined).
        oid = place_order(self.c, new_id("c"), [(create_product(self.c), 1)])
        mark = self.mark()
        for status in ("IN_TRANSIT", "DELIVERED"):
            r = self.c.put(f"{API}/orders/{oid}/shipping-status", {"status": status})
            self.assertError(r, 409, "invalid_state")
        self.assertNothingWrittenSince(mark)
        self.assertIn(self.c.get(f"{API}/orders/{oid}").json["status"], ("PENDING", "CANCELLED"))

    def test_shipping_a_cancelled_order_is_invalid_state(self):
        # A funded customer: without an account the saga may cancel (payment_declined) before we do.
        aid = create_account(self.c, balance=10_000)
        oid = place_order(self.c, aid, [(create_product(self.c), 1)])
        self.assertEqual(self.c.post(f"{API}/orders/{oid}/cancel", {"reason": "x"}).status, 200)
        r = self.c.put(f"{API}/orders/{oid}/shipping-status", {"status": "IN_TRANSIT"})
        self.assertError(r, 409, "invalid_state")


class IfMatch(ServerTestCase, unittest.TestCase):
    def test_matching_version_writes(self):
        aid = create_account(self.c)
        r = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 10}, headers={"If-Match": '"0"'})
        self.assertEqual(self.assertAccepted(r, 200, "account_id", aid)["version"], 1)
        r = self.c.post(f"{API}/accounts/{aid}/withdraw", {"amount_cents": 3}, headers={"If-Match": '"1"'})
        self.assertEqual(self.assertAccepted(r, 200, "account_id", aid)["version"], 2)

    def test_etag_from_get_round_trips_as_if_match(self):
        pid = create_product(self.c)
        etag = self.c.get(f"{API}/products/{pid}").header("ETag")
        r = self.c.post(f"{API}/products/{pid}/restock", {"quantity": 1}, headers={"If-Match": etag})
        self.assertAccepted(r, 200, "product_id", pid)
        # The same (now stale) ETag again: conflict.
        r = self.c.post(f"{API}/products/{pid}/restock", {"quantity": 1}, headers={"If-Match": etag})
        self.assertError(r, 409, "version_conflict")

    def test_mismatch_is_version_conflict_and_writes_nothing(self):
        aid = create_account(self.c, balance=100)  # version 1
        mark = self.mark()
        for v in ('"0"', '"2"', '"99"'):
            r = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 10}, headers={"If-Match": v})
            self.assertError(r, 409, "version_conflict")
        self.assertNothingWrittenSince(mark)
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 100)

    def test_if_match_on_a_create_conflicts_because_the_stream_does_not_exist(self):
        mark = self.mark()
        for v in ('"0"', '"1"'):
            aid = new_id("a")
            r = self.c.post(f"{API}/accounts", {"account_id": aid}, headers={"If-Match": v})
            self.assertError(r, 409, "version_conflict")
            self.assertError(self.c.get(f"{API}/accounts/{aid}"), 404, "not_found")
        self.assertNothingWrittenSince(mark)

    def test_repeat_of_a_keyed_conditional_write_replays_instead_of_conflicting(self):
        aid = create_account(self.c)
        h = {"If-Match": '"0"', "Idempotency-Key": "im-" + uuid.uuid4().hex}
        first = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 8}, headers=h)
        self.assertAccepted(first, 200, "account_id", aid)
        mark = self.mark()
        again = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 8}, headers=h)
        self.assertEqual((again.status, again.body), (first.status, first.body))
        self.assertNothingWrittenSince(mark, "a replay wrote events")

    def test_if_match_on_order_commands(self):
        aid = create_account(self.c, balance=10_000)
        oid = place_order(self.c, aid, [(create_product(self.c), 1)])
        wait_quiet(self.c)  # let any saga step land, so the ETag below stays current
        etag = self.c.get(f"{API}/orders/{oid}").header("ETag")
        version = int(etag.strip('"'))
        mark = self.mark()
        r = self.c.post(f"{API}/orders/{oid}/cancel", {"reason": "x"}, headers={"If-Match": f'"{version + 3}"'})
        self.assertError(r, 409, "version_conflict")
        self.assertNothingWrittenSince(mark)
        r = self.c.post(f"{API}/orders/{oid}/cancel", {"reason": "x"}, headers={"If-Match": etag})
        self.assertEqual(self.assertAccepted(r, 200, "order_id", oid)["version"], version + 1)


class Positions(ErrorAsserts, unittest.TestCase):
    def test_positions_start_at_1_and_grow(self):
        # A fresh server's first write is position 1.
        with Server() as srv:
            c = srv.client()
            r = c.post(f"{API}/accounts", {"account_id": "first"})
            self.assertEqual(self.assertAccepted(r, 201, "account_id", "first")["position"], 1)
            last = 1
            for i in range(5):
                b = c.post(f"{API}/accounts/first/deposit", {"amount_cents": i + 1}).json
                self.assertGreater(b["position"], last)
                self.assertEqual(b["version"], i + 1)
                last = b["position"]
            c.close()


if __name__ == "__main__":
    unittest.main()
