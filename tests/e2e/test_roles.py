"""docs/api.md §1 `--roles`: a process serves the routes of its roles (command: writes; query: reads of read
models and of the log; admin: /api/v1/admin/); a route of another role is 421 misdirected_request and writes
nothing. Health, readiness, metrics and the API's documents are served whatever the roles."""

import unittest

from harness import API, ErrorAsserts, Server, new_id


class Roles(ErrorAsserts, unittest.TestCase):
    def serve(self, roles):
        server = Server(extra_args=["--roles", roles]).start()
        self.addCleanup(server.cleanup)
        self.addCleanup(server.stop)
        client = server.client()
        self.addCleanup(client.close)
        return client

    def assertServedByAll(self, c):
        for path in ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"):
            with self.subTest(path=path):
                self.assertEqual(c.get(path).status, 200, path)

    def test_a_query_process_refuses_writes_and_admin_routes_and_writes_nothing(self):
        c = self.serve("query,projector,saga")
        product = new_id("p")
        writes = (("POST", "/products", {"product_id": product, "name": "x", "unit_price_cents": 1,
                                         "initial_stock": 1}),
                  ("POST", "/accounts", {"account_id": new_id("a")}),
                  ("POST", f"/products/{product}/restock", {"quantity": 1}),
                  ("PUT", f"/orders/{new_id('o')}/shipping-status", {"status": "IN_TRANSIT"}),
                  ("DELETE", f"/customers/{new_id('c')}/personal-data", None))
        for method, path, body in writes:
            with self.subTest(method=method, path=path):
                r = c.request(method, API + path, body)
                self.assertError(r, 421, "misdirected_request")
                self.assertIn("--roles lack command", r.json["error"]["message"])
        for path in ("/admin/events", "/admin/projections", "/admin/invariants", "/admin/dead-letters"):
            with self.subTest(path=path):
                self.assertError(c.get(API + path), 421, "misdirected_request")
        self.assertError(c.get(f"{API}/products/{product}"), 404, "not_found")  # nothing was written
        self.assertEqual(c.get(f"{API}/products").status, 200)
        self.assertServedByAll(c)

    def test_a_command_process_refuses_reads(self):
        c = self.serve("command,saga,projector")
        product = new_id("p")
        r = c.post(f"{API}/products", {"product_id": product, "name": "x", "unit_price_cents": 1, "initial_stock": 1})
        self.assertEqual(r.status, 201, r)
        for path in (f"/products/{product}", "/products", f"/orders/{new_id('o')}/events", "/admin/events"):
            with self.subTest(path=path):
                self.assertError(c.get(API + path), 421, "misdirected_request")
        self.assertServedByAll(c)

    def test_an_admin_process_serves_admin_routes_only(self):
        c = self.serve("admin")
        self.assertEqual(c.get(f"{API}/admin/events?limit=1").status, 200)
        self.assertEqual(c.get(f"{API}/admin/invariants").json, {"violations": []})
        self.assertError(c.get(f"{API}/products"), 421, "misdirected_request")
        self.assertError(c.post(f"{API}/accounts", {"account_id": new_id("a")}), 421, "misdirected_request")


if __name__ == "__main__":
    unittest.main()
