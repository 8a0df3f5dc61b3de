"""docs/api.md §3: every error code the server gives today, its shape, and that a rejected request writes nothing."""

import json
import unittest
import uuid

from harness import (API, ResponseReader, ServerTestCase, create_account, create_product, new_id, place_order,
                     raw_request)

MIB = 1024 * 1024


class Errors(ServerTestCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self._mark = None

    def start_mark(self):
        self._mark = self.mark()

    def assertNothingWritten(self):
        self.assertNothingWrittenSince(self._mark)

    def assertRejected(self, r, status, code):
        self.assertError(r, status, code)
        self.assertNothingWritten()

    # -- 400 invalid_json ----------------------------------------------------------------------------------
    def test_invalid_json(self):
        aid = create_account(self.c)
        pid = create_product(self.c)
        oid = place_order(self.c, aid, [(pid, 1)])
        self.start_mark()
        for raw in ("{", '{"amount_cents": 1', "not json", '{"amount_cents": 1} trailing', "", "{'a': 1}"):
            with self.subTest(raw=raw):
                self.assertError(self.c.post(f"{API}/accounts/{aid}/deposit", raw=raw), 400, "invalid_json")
        self.assertError(self.c.post(f"{API}/products", raw="{,}"), 400, "invalid_json")
        self.assertError(self.c.post(f"{API}/orders", raw='{"items": [}'), 400, "invalid_json")
        self.assertError(self.c.put(f"{API}/orders/{oid}/shipping-status", raw="{"), 400, "invalid_json")
        self.assertNothingWritten()

    # -- 400 invalid_request -------------------------------------------------------------------------------
    def test_missing_or_wrong_type_fields(self):
        aid = create_account(self.c)
        pid = create_product(self.c)
        oid = place_order(self.c, aid, [(pid, 1)])
        self.start_mark()
        cases = [
            ("POST", f"{API}/products", {"name": "n", "unit_price_cents": 1, "initial_stock": 1}),
            ("POST", f"{API}/products", {"product_id": new_id("p"), "unit_price_cents": 1, "initial_stock": 1}),
            ("POST", f"{API}/products", {"product_id": new_id("p"), "name": "n", "initial_stock": 1}),
            ("POST", f"{API}/products", {"product_id": new_id("p"), "name": "n", "unit_price_cents": 1}),
            ("POST", f"{API}/products", {"product_id": new_id("p"), "name": "n", "unit_price_cents": "1",
                                         "initial_stock": 1}),
            ("POST", f"{API}/products", {"product_id": new_id("p"), "name": "n", "unit_price_cents": 1.5,
                                         "initial_stock": 1}),
            ("POST", f"{API}/products", {"product_id": 42, "name": "n", "unit_price_cents": 1, "initial_stock": 1}),
            ("POST", f"{API}/products", {"product_id": new_id("p"), "name": None, "unit_price_cents": 1,
                                         "initial_stock": 1}),
            ("POST", f"{API}/products/{pid}/restock", {}),
            ("POST", f"{API}/products/{pid}/restock", {"quantity": "5"}),
            ("POST", f"{API}/accounts", {}),
            ("POST", f"{API}/accounts", {"account_id": 7}),
            ("POST", f"{API}/accounts", {"account_id": new_id("a"), "owner": 5}),
            ("POST", f"{API}/accounts/{aid}/deposit", {}),
            ("POST", f"{API}/accounts/{aid}/deposit", {"amount_cents": "100"}),
            ("POST", f"{API}/accounts/{aid}/deposit", {"amount_cents": True}),
            ("POST", f"{API}/accounts/{aid}/withdraw", {"amount": 1}),
            ("POST", f"{API}/orders", {"items": [{"product_id": pid, "quantity": 1}]}),
            ("POST", f"{API}/orders", {"customer_id": aid}),
            ("POST", f"{API}/orders", {"customer_id": aid, "items": {"product_id": pid, "quantity": 1}}),
            ("POST", f"{API}/orders", {"customer_id": aid, "items": [{"quantity": 1}]}),
            ("POST", f"{API}/orders", {"customer_id": aid, "items": [{"product_id": pid}]}),
            ("POST", f"{API}/orders", {"customer_id": aid, "items": [{"product_id": pid, "quantity": "1"}]}),
            ("POST", f"{API}/orders", {"customer_id": aid, "items": [{"product_id": pid, "quantity": 1.5}]}),
            ("POST", f"{API}/orders", {"customer_id": aid, "items": ["x"]}),
            ("POST", f"{API}/orders", {"customer_id": 1, "items": [{"product_id": pid, "quantity": 1}]}),
            ("POST", f"{API}/orders", {"customer_id": aid, "order_id": 5,
                                       "items": [{"product_id": pid, "quantity": 1}]}),
            ("POST", f"{API}/orders/{oid}/cancel", {}),
            ("POST", f"{API}/orders/{oid}/cancel", {"reason": 3}),
            ("PUT", f"{API}/orders/{oid}/shipping-status", {}),
            ("PUT", f"{API}/orders/{oid}/shipping-status", {"status": 1}),
            # valid JSON that is not an object
            ("POST", f"{API}/accounts/{aid}/deposit", [1]),
            ("POST", f"{API}/accounts/{aid}/deposit", 5),
            ("POST", f"{API}/orders", None),
        ]
        for method, path, body in cases:
            with self.subTest(method=method, path=path, body=body):
                raw = json.dumps(body)
                r = self.c.request(method, path, raw=raw)
                self.assertError(r, 400, "invalid_request")
        self.assertNothingWritten()

    def test_bad_if_match_header(self):
        aid = create_account(self.c)
        self.start_mark()
        # A weak tag (W/"0", even of the current version 0) never matches: RFC 9110 compares If-Match strongly.
        for v in ("abc", '"x"', '"-1"', '"1.0"', '""', 'W/"0"'):
            with self.subTest(if_match=v):
                r = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1}, headers={"If-Match": v})
                self.assertError(r, 400, "invalid_request")
        self.assertNothingWritten()

    def test_bad_idempotency_key_header(self):
        aid = create_account(self.c)
        self.start_mark()
        for key in ("", "k" * 256, "bad\x01key", "tab\tkey"):
            with self.subTest(key=key):
                r = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1},
                                headers={"Idempotency-Key": key})
                self.assertError(r, 400, "invalid_request")
        self.assertNothingWritten()
        # 255 printable characters is fine.
        r = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1},
                        headers={"Idempotency-Key": "~" + uuid.uuid4().hex + "k" * 222})
        self.assertAccepted(r, 200, "account_id", aid)

    # -- 404 not_found -------------------------------------------------------------------------------------
    def test_commands_on_missing_entities(self):
        self.start_mark()
        ghost = new_id("ghost")
        self.assertRejected(self.c.post(f"{API}/products/{ghost}/restock", {"quantity": 1}), 404, "not_found")
        self.assertRejected(self.c.post(f"{API}/accounts/{ghost}/deposit", {"amount_cents": 1}), 404, "not_found")
        self.assertRejected(self.c.post(f"{API}/accounts/{ghost}/withdraw", {"amount_cents": 1}), 404, "not_found")
        oid = str(uuid.uuid4())
        self.assertRejected(self.c.post(f"{API}/orders/{oid}/cancel", {"reason": "x"}), 404, "not_found")
        self.assertRejected(self.c.put(f"{API}/orders/{oid}/shipping-status", {"status": "IN_TRANSIT"}), 404,
                            "not_found")
        self.assertRejected(self.c.post(f"{API}/no/such/route", {}), 404, "not_found")

    # -- 405 method_not_allowed ----------------------------------------------------------------------------
    def test_method_not_allowed(self):
        pid = create_product(self.c)
        aid = create_account(self.c)
        oid = place_order(self.c, aid, [(pid, 1)])
        self.start_mark()
        cases = [
            ("DELETE", f"{API}/products/{pid}"),
            ("PUT", f"{API}/products/{pid}"),
            ("GET", f"{API}/products/{pid}/restock"),
            ("DELETE", f"{API}/accounts/{aid}"),
            ("GET", f"{API}/accounts/{aid}/deposit"),
            ("PUT", f"{API}/accounts/{aid}/withdraw"),
            ("GET", f"{API}/orders/{oid}/cancel"),
            ("POST", f"{API}/orders/{oid}/shipping-status"),
            ("GET", f"{API}/orders/{oid}/shipping-status"),
            ("DELETE", f"{API}/orders/{oid}"),
            ("POST", f"{API}/orders/{oid}/events"),
            ("POST", f"{API}/admin/events"),
            ("POST", "/healthz"),
        ]
        for method, path in cases:
            with self.subTest(method=method, path=path):
                body = {} if method in ("POST", "PUT") else None
                self.assertError(self.c.request(method, path, body=body), 405, "method_not_allowed")
        self.assertNothingWritten()

    # -- 409 -----------------------------------------------------------------------------------------------
    def test_insufficient_funds(self):
        aid = create_account(self.c, balance=500)
        self.start_mark()
        self.assertRejected(self.c.post(f"{API}/accounts/{aid}/withdraw", {"amount_cents": 501}), 409,
                            "insufficient_funds")
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 500)
        empty = create_account(self.c)
        self.start_mark()
        self.assertRejected(self.c.post(f"{API}/accounts/{empty}/withdraw", {"amount_cents": 1}), 409,
                            "insufficient_funds")

    def test_already_exists(self):
        pid = create_product(self.c)
        aid = create_account(self.c)
        oid = str(uuid.uuid4())
        body = {"order_id": oid, "customer_id": aid, "items": [{"product_id": pid, "quantity": 1}]}
        self.assertEqual(self.c.post(f"{API}/orders", body).status, 202)
        self.start_mark()
        self.assertRejected(self.c.post(f"{API}/products", {"product_id": pid, "name": "again",
                                                            "unit_price_cents": 5, "initial_stock": 5}),
                            409, "already_exists")
        self.assertRejected(self.c.post(f"{API}/accounts", {"account_id": aid, "owner": "again"}), 409,
                            "already_exists")
        self.assertRejected(self.c.post(f"{API}/orders", dict(body, customer_id=new_id("other"))), 409,
                            "already_exists")
        self.assertEqual(self.c.get(f"{API}/products/{pid}").json["name"], f"Product {pid}")

    # -- 413 payload_too_large -----------------------------------------------------------------------------
    def test_payload_too_large_by_content_length(self):
        aid = create_account(self.c)
        self.start_mark()
        corr = "e2e-413-" + uuid.uuid4().hex
        self.c.sent.append(corr)
        s = self.server.raw_socket()
        try:
            head = (f"POST {API}/accounts/{aid}/deposit HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Correlation-Id: {corr}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {MIB + 1}\r\n\r\n").encode()
            s.sendall(head)
            r = ResponseReader(s).read()  # answered without waiting for the body
        finally:
            s.close()
        self.assertRejected(r, 413, "payload_too_large")

    def test_body_just_over_one_mib_is_rejected(self):
        aid = create_account(self.c)
        self.start_mark()
        body = b'{"amount_cents": 1' + b" " * (MIB + 1 - len(b'{"amount_cents": 1}')) + b"}"
        self.assertEqual(len(body), MIB + 1)
        corr = "e2e-413-" + uuid.uuid4().hex
        self.c.sent.append(corr)
        s = self.server.raw_socket()
        try:
            try:
                s.sendall(raw_request("POST", f"{API}/accounts/{aid}/deposit", body,
                                      headers={"X-Correlation-Id": corr}))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer and close before reading it all
            r = ResponseReader(s).read()
        finally:
            s.close()
        self.assertRejected(r, 413, "payload_too_large")

    def test_body_of_exactly_one_mib_is_accepted(self):
        aid = create_account(self.c)
        body = b'{"amount_cents": 3' + b" " * (MIB - len(b'{"amount_cents": 3}')) + b"}"
        self.assertEqual(len(body), MIB)
        r = self.c.post(f"{API}/accounts/{aid}/deposit", raw=body)
        self.assertAccepted(r, 200, "account_id", aid)
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 3)

    # -- 415 unsupported_media_type ------------------------------------------------------------------------
    def test_unsupported_media_type(self):
        aid = create_account(self.c)
        self.start_mark()
        body = json.dumps({"amount_cents": 1})
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
            with self.subTest(content_type=ctype):
                r = self.c.post(f"{API}/accounts/{aid}/deposit", raw=body, content_type=ctype)
                self.assertError(r, 415, "unsupported_media_type")
        r = self.c.post(f"{API}/accounts", raw=json.dumps({"account_id": new_id("a")}), content_type="text/plain")
        self.assertError(r, 415, "unsupported_media_type")
        self.assertNothingWritten()
        # JSON with parameters is JSON.
        r = self.c.post(f"{API}/accounts/{aid}/deposit", raw=body, content_type="application/json; charset=utf-8")
        self.assertAccepted(r, 200, "account_id", aid)

    def test_state_changes_need_a_json_content_type_even_without_a_body(self):
        """CSRF: a web page can send a form or text/plain anywhere, application/json cross-site only after a
        preflight this server never grants. A write without it is refused and does nothing."""
        aid = create_account(self.c)
        self.start_mark()
        for ctype in (None, "application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"):
            with self.subTest(content_type=ctype):
                r = self.c.post(f"{API}/admin/projections/orders/rebuild", raw="", content_type=ctype)
                self.assertError(r, 415, "unsupported_media_type")
                r = self.c.post(f"{API}/accounts/{aid}/deposit", raw="", content_type=ctype)
                self.assertError(r, 415, "unsupported_media_type")
        self.assertNothingWritten()
        states = {p["name"]: p["status"] for p in self.c.get(f"{API}/admin/projections").json}
        self.assertNotIn("rebuilding", states.values())
        r = self.c.post(f"{API}/admin/projections/orders/rebuild", raw="", content_type="application/json")
        self.assertEqual(r.status, 202, r)

    # -- 422 validation_failed -----------------------------------------------------------------------------
    def test_validation_failed_values(self):
        pid = create_product(self.c)
        aid = create_account(self.c, balance=100)
        oid = place_order(self.c, aid, [(pid, 1)])
        self.start_mark()
        def product(**kw):
            return dict({"product_id": new_id("p"), "name": "n", "unit_price_cents": 1, "initial_stock": 1}, **kw)
        def order(**kw):
            return dict({"customer_id": aid, "items": [{"product_id": pid, "quantity": 1}]}, **kw)
        many = [create_product(self.c) for _ in range(101)]
        self.start_mark()
        cases = [
            ("POST", f"{API}/products", product(unit_price_cents=-1)),
            ("POST", f"{API}/products", product(initial_stock=-1)),
            ("POST", f"{API}/products", product(product_id="")),
            ("POST", f"{API}/products", product(product_id="has space")),
            ("POST", f"{API}/products", product(product_id="slash/id")),
            ("POST", f"{API}/products", product(product_id="x" * 65)),
            ("POST", f"{API}/products", product(product_id="ümlaut")),
            ("POST", f"{API}/products/{pid}/restock", {"quantity": 0}),
            ("POST", f"{API}/products/{pid}/restock", {"quantity": -3}),
            ("POST", f"{API}/accounts", {"account_id": "bad id"}),
            ("POST", f"{API}/accounts", {"account_id": ""}),
            ("POST", f"{API}/accounts", {"account_id": "a" * 65}),
            ("POST", f"{API}/accounts/{aid}/deposit", {"amount_cents": 0}),
            ("POST", f"{API}/accounts/{aid}/deposit", {"amount_cents": -5}),
            ("POST", f"{API}/accounts/{aid}/withdraw", {"amount_cents": 0}),
            ("POST", f"{API}/accounts/{aid}/withdraw", {"amount_cents": -1}),
            ("POST", f"{API}/orders", order(items=[])),
            ("POST", f"{API}/orders", order(items=[{"product_id": p, "quantity": 1} for p in many])),
            ("POST", f"{API}/orders", order(items=[{"product_id": pid, "quantity": 0}])),
            ("POST", f"{API}/orders", order(items=[{"product_id": pid, "quantity": -1}])),
            ("POST", f"{API}/orders", order(customer_id="bad customer")),
            ("POST", f"{API}/orders", order(customer_id="")),
            ("POST", f"{API}/orders", order(items=[{"product_id": "bad product", "quantity": 1}])),
            ("POST", f"{API}/orders", order(order_id="not-a-uuid")),
            ("PUT", f"{API}/orders/{oid}/shipping-status", {"status": "LOST"}),
            ("PUT", f"{API}/orders/{oid}/shipping-status", {"status": "in_transit"}),
            ("PUT", f"{API}/orders/{oid}/shipping-status", {"status": ""}),
        ]
        for method, path, body in cases:
            with self.subTest(method=method, path=path, body=str(body)[:120]):
                self.assertError(self.c.request(method, path, body=body), 422, "validation_failed")
        self.assertNothingWritten()

    def test_unknown_product(self):
        pid = create_product(self.c)
        aid = create_account(self.c)
        self.start_mark()
        ghost = new_id("ghost")
        r = self.c.post(f"{API}/orders", {"customer_id": aid, "items": [{"product_id": pid, "quantity": 1},
                                                                         {"product_id": ghost, "quantity": 1}]})
        self.assertRejected(r, 422, "unknown_product")

    def test_amounts_that_would_overflow_are_rejected(self):
        big = 2**63 - 1
        aid = create_account(self.c, balance=5)
        pid = create_product(self.c, price=big, stock=1)
        self.start_mark()
        for method, path, body in [
            ("POST", f"{API}/accounts/{aid}/deposit", {"amount_cents": big}),
            ("POST", f"{API}/products/{pid}/restock", {"quantity": big}),
            ("POST", f"{API}/orders", {"customer_id": aid, "items": [{"product_id": pid, "quantity": 2}]}),
        ]:
            with self.subTest(path=path):
                r = self.c.request(method, path, body=body)
                self.assertTrue(400 <= r.status < 500, r)
                self.assertIn(r.json["error"]["code"], ("validation_failed", "invalid_request"), r)
        self.assertNothingWritten()
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 5)
        self.assertEqual(self.c.get(f"{API}/products/{pid}").json["on_hand"], 1)

    def test_rejections_leave_entities_usable(self):
        aid = create_account(self.c, balance=10)
        self.c.post(f"{API}/accounts/{aid}/withdraw", {"amount_cents": 11})
        self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 0})
        self.c.post(f"{API}/accounts/{aid}/deposit", raw="{")
        r = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 5})
        self.assertEqual(self.assertAccepted(r, 200, "account_id", aid)["version"], 2)
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 15)


if __name__ == "__main__":
    unittest.main()
