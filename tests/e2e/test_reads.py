"""docs/api.md §6–§8: entity reads folded from the store, time travel, event listings and their shape."""

import unittest
import uuid

from harness import (API, RFC3339_MS, ServerTestCase, create_account, create_product, new_id, place_order,
                     scan_events, stream_events, wait_quiet)

EVENT_KEYS = {"event_id", "stream_id", "type", "version", "position", "schema_version", "data", "metadata",
              "recorded_at"}


class EntityReads(ServerTestCase, unittest.TestCase):
    def test_healthz(self):
        r = self.c.get("/healthz")
        self.assertEqual(r.status, 200, r)

    def test_unknown_entities_are_404(self):
        for path in (f"{API}/products/{new_id('nope')}", f"{API}/accounts/{new_id('nope')}",
                     f"{API}/orders/{uuid.uuid4()}", f"{API}/orders/{uuid.uuid4()}/events"):
            self.assertError(self.c.get(path), 404, "not_found")

    def test_unknown_route_is_404(self):
        self.assertError(self.c.get(f"{API}/nothing-here"), 404, "not_found")
        self.assertError(self.c.get("/api/v2/products/x"), 404, "not_found")

    def test_etag_tracks_version(self):
        aid = create_account(self.c)
        for i in range(1, 4):
            self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1})
            g = self.c.get(f"{API}/accounts/{aid}")
            self.assertEqual(g.json["version"], i)
            self.assertEqual(g.header("ETag"), f'"{i}"')
            self.assertEqual(g.json["balance_cents"], i)


# The order status each order event leaves behind (docs/api.md §5, §8).
STATUS_AFTER = {"OrderPlaced": "PENDING", "OrderConfirmed": "CONFIRMED", "OrderCancelled": "CANCELLED",
                "OrderPaymentSettled": "CANCELLED",
                "OrderShipped": "SHIPPED", "OrderDelivered": "DELIVERED"}


class TimeTravel(ServerTestCase, unittest.TestCase):
    def test_order_at_version(self):
        pid = create_product(self.c, price=120, stock=10)
        aid = create_account(self.c, balance=10_000)
        oid = place_order(self.c, aid, [(pid, 2)])
        self.assertEqual(self.c.post(f"{API}/orders/{oid}/cancel", {"reason": "nope"}).status, 200)
        wait_quiet(self.c)
        events = self.c.get(f"{API}/orders/{oid}/events").json["events"]
        latest = events[-1]["version"]

        v0 = self.c.get(f"{API}/orders/{oid}?version=0")
        self.assertEqual(v0.status, 200, v0)
        self.assertEqual((v0.json["status"], v0.json["payment_status"]), ("PENDING", "PENDING"))
        self.assertEqual(v0.json["version"], 0)
        self.assertEqual(v0.json["total_cents"], 240)
        self.assertNotIn("cancellation_reason", v0.json)
        self.assertEqual(v0.header("ETag"), '"0"')

        for e in events:
            r = self.c.get(f"{API}/orders/{oid}?version={e['version']}")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["version"], e["version"])
            self.assertEqual(r.header("ETag"), f'"{e["version"]}"')
            self.assertEqual(r.json["status"], STATUS_AFTER[e["type"]], (e["type"], r.json))

        last = self.c.get(f"{API}/orders/{oid}?version={latest}")
        self.assertEqual(last.json["status"], "CANCELLED")
        self.assertEqual(last.json["cancellation_reason"], "nope")
        self.assertEqual(last.json, self.c.get(f"{API}/orders/{oid}").json)

        for past in (latest + 1, latest + 50):
            self.assertError(self.c.get(f"{API}/orders/{oid}?version={past}"), 404, "not_found")
        self.assertError(self.c.get(f"{API}/orders/{uuid.uuid4()}?version=0"), 404, "not_found")

    def test_bad_version_parameter(self):
        oid = place_order(self.c, new_id("c"), [(create_product(self.c), 1)])
        for bad in ("abc", "-1", "1.5"):
            self.assertError(self.c.get(f"{API}/orders/{oid}?version={bad}"), 400, "invalid_request")


class EventListings(ServerTestCase, unittest.TestCase):
    def assertEventShape(self, e):
        self.assertTrue(EVENT_KEYS <= set(e), f"event keys {sorted(e)}")
        self.assertIsInstance(e["event_id"], str)
        self.assertTrue(e["event_id"])
        self.assertIsInstance(e["version"], int)
        self.assertIsInstance(e["position"], int)
        self.assertGreaterEqual(e["position"], 1)
        self.assertIsInstance(e["schema_version"], int)
        self.assertGreaterEqual(e["schema_version"], 1)
        self.assertIsInstance(e["data"], dict)
        self.assertIsInstance(e["metadata"], dict)
        self.assertIn("correlation_id", e["metadata"])
        self.assertIn("causation_id", e["metadata"])
        self.assertRegex(e["recorded_at"], RFC3339_MS)

    def test_order_events_placed_then_cancelled(self):
        pid = create_product(self.c, price=700, stock=10)
        aid = create_account(self.c, balance=100_000)
        corr = "corr-" + uuid.uuid4().hex
        oid = place_order(self.c, aid, [(pid, 3)], headers={"X-Correlation-Id": corr})
        corr2 = "corr-" + uuid.uuid4().hex
        cancel = self.c.post(f"{API}/orders/{oid}/cancel", {"reason": "changed"},
                             headers={"X-Correlation-Id": corr2}).json
        wait_quiet(self.c)

        r = self.c.get(f"{API}/orders/{oid}/events")
        self.assertEqual(r.status, 200, r)
        events = r.json["events"]
        types = [e["type"] for e in events]
        # OrderPlaced first, then at most a saga's OrderConfirmed, OrderCancelled, and after it
        # OrderPaymentSettled if the cancel landed while the saga was charging.
        if types[-1] == "OrderPaymentSettled":
            types.pop()
            self.assertEqual(events[-1]["data"]["payment_status"], "REFUNDED")
        self.assertEqual(types[0], "OrderPlaced", types)
        self.assertEqual(types[-1], "OrderCancelled", types)
        self.assertTrue(set(types[1:-1]) <= {"OrderConfirmed"}, types)
        for e in events:
            self.assertEventShape(e)
            self.assertEqual(e["stream_id"], f"order-{oid}")
        self.assertEqual([e["version"] for e in events], list(range(len(events))))
        positions = [e["position"] for e in events]
        self.assertEqual(positions, sorted(set(positions)))
        cancelled = events[len(types) - 1]
        self.assertEqual(cancelled["position"], cancel["position"])
        self.assertEqual(cancelled["version"], cancel["version"])
        self.assertEqual(len({e["event_id"] for e in events}), len(events))
        self.assertEqual([e["recorded_at"] for e in events], sorted(e["recorded_at"] for e in events))
        self.assertEqual(events[0]["metadata"]["correlation_id"], corr)
        self.assertEqual(cancelled["metadata"]["correlation_id"], corr2)
        self.assertEqual(r.json["next_from"], len(events))

    def test_admin_stream_events_paging(self):
        aid = create_account(self.c)
        for i in range(5):
            self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": i + 1})
        stream = f"account-{aid}"
        full = stream_events(self.c, stream)
        self.assertEqual([e["version"] for e in full], list(range(6)))
        self.assertEqual([e["type"] for e in full], ["AccountOpened"] + ["FundsDeposited"] * 5)
        for e in full:
            self.assertEventShape(e)
            self.assertEqual(e["stream_id"], stream)

        paged, frm = [], 0
        for _ in range(10):
            r = self.c.get(f"{API}/admin/streams/{stream}/events?from_version={frm}&limit=2")
            self.assertEqual(r.status, 200, r)
            if not r.json["events"]:
                self.assertEqual(r.json["next_from"], frm)
                break
            self.assertLessEqual(len(r.json["events"]), 2)
            paged.extend(r.json["events"])
            self.assertEqual(r.json["next_from"], r.json["events"][-1]["version"] + 1)
            frm = r.json["next_from"]
        self.assertEqual(paged, full)

        r = self.c.get(f"{API}/admin/streams/{stream}/events?from_version=4&limit=1")
        self.assertEqual([e["version"] for e in r.json["events"]], [4])
        self.assertEqual(r.json["next_from"], 5)

    def test_admin_global_log_paging_and_from_position(self):
        aid = create_account(self.c)
        answers = [self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1}).json for _ in range(4)]
        full = scan_events(self.c)
        positions = [e["position"] for e in full]
        self.assertEqual(positions, sorted(positions))
        self.assertEqual(len(set(positions)), len(positions))
        self.assertEqual(len({e["event_id"] for e in full}), len(full))
        for e in full:
            self.assertEventShape(e)

        # Paging two at a time gives the same log (plus whatever was appended since).
        self.assertEqual(scan_events(self.c, limit=2)[:len(full)], full)

        # from_position=P starts at the event with position P.
        p = answers[1]["position"]
        r = self.c.get(f"{API}/admin/events?from_position={p}&limit=2")
        self.assertEqual(r.status, 200, r)
        got = r.json["events"]
        self.assertEqual(got[0]["position"], p)
        self.assertTrue(all(e["position"] >= p for e in got))
        self.assertEqual(r.json["next_from"], got[-1]["position"] + 1)

        # Past the end: no events.
        end = full[-1]["position"] + 1_000_000
        r = self.c.get(f"{API}/admin/events?from_position={end}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["events"], [])

    def test_admin_global_log_filters(self):
        pid = create_product(self.c)
        oid = place_order(self.c, new_id("c"), [(pid, 1)])
        # The saga may cancel it first (the customer has no account): then the client's cancel is refused,
        # and the refusal rests on the saga's cancel being in the log.
        cancel = self.c.post(f"{API}/orders/{oid}/cancel", {"reason": "x"})
        self.assertIn(cancel.status, (200, 409), cancel)
        orders = scan_events(self.c, category="order")
        self.assertTrue(orders)
        self.assertTrue(all(e["stream_id"].startswith("order-") for e in orders))
        self.assertIn(f"order-{oid}", {e["stream_id"] for e in orders})

        cancelled = scan_events(self.c, type="OrderCancelled")
        self.assertTrue(cancelled)
        self.assertTrue(all(e["type"] == "OrderCancelled" for e in cancelled))
        self.assertIn(f"order-{oid}", {e["stream_id"] for e in cancelled})

        both = scan_events(self.c, category="product", type="ProductRegistered")
        self.assertTrue(all(e["type"] == "ProductRegistered" and e["stream_id"].startswith("product-")
                            for e in both))
        self.assertIn(f"product-{pid}", {e["stream_id"] for e in both})
        self.assertEqual(scan_events(self.c, category="product", type="OrderPlaced"), [])

    def test_event_query_parameters_out_of_range(self):
        aid = create_account(self.c)
        for q in ("limit=0", "limit=5000", "limit=-1", "limit=abc", "from_position=abc", "from_position=-5"):
            self.assertError(self.c.get(f"{API}/admin/events?{q}"), 400, "invalid_request")
        for q in ("limit=0", "limit=5000", "from_version=x", "from_version=-1"):
            self.assertError(self.c.get(f"{API}/admin/streams/account-{aid}/events?{q}"), 400, "invalid_request")
        oid = place_order(self.c, aid, [(create_product(self.c), 1)])
        self.assertError(self.c.get(f"{API}/orders/{oid}/events?limit=0"), 400, "invalid_request")


if __name__ == "__main__":
    unittest.main()
