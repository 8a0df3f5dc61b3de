"""HTTP/1.1 behaviour: keep-alive, pipelining, many concurrent connections without lost updates."""

import concurrent.futures
import threading
import unittest

from harness import (API, ResponseReader, ServerTestCase, create_account, create_product, new_id, raw_request,
                     scan_events, stream_events)


class Connections(ServerTestCase, unittest.TestCase):
    def test_keep_alive_serves_many_requests_on_one_connection(self):
        aid = create_account(self.c)
        sock = self.c.conn.sock
        self.assertIsNotNone(sock)
        for i in range(10):
            r = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1})
            self.assertEqual(r.status, 200, r)
            g = self.c.get(f"{API}/accounts/{aid}")
            self.assertEqual(g.json["balance_cents"], i + 1)
        # errors keep the connection too
        self.assertEqual(self.c.get(f"{API}/accounts/{new_id('none')}").status, 404)
        self.assertEqual(self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 0}).status, 422)
        self.assertEqual(self.c.get("/healthz").status, 200)
        self.assertIs(self.c.conn.sock, sock, "the server closed a keep-alive connection")

    def test_pipelined_requests_answered_in_order(self):
        aid = create_account(self.c)
        s = self.server.raw_socket()
        try:
            s.sendall(raw_request("POST", f"{API}/accounts/{aid}/deposit", {"amount_cents": 5})
                      + raw_request("GET", f"{API}/accounts/{aid}")
                      + raw_request("POST", f"{API}/accounts/{aid}/deposit", {"amount_cents": 7}))
            reader = ResponseReader(s)
            r1, r2, r3 = reader.read(), reader.read(), reader.read()
        finally:
            s.close()
        self.assertEqual(r1.status, 200, r1)
        self.assertEqual(r1.json["version"], 1)
        self.assertEqual(r1.header("ETag"), '"1"')
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.json["balance_cents"], 5)
        self.assertEqual(r2.json["version"], 1)
        self.assertEqual(r3.status, 200, r3)
        self.assertEqual(r3.json["version"], 2)
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 12)

    def test_pipelined_mix_of_errors_and_writes(self):
        pid = create_product(self.c, stock=1)
        s = self.server.raw_socket()
        try:
            s.sendall(raw_request("POST", f"{API}/products/{pid}/restock", {"quantity": 0})
                      + raw_request("GET", f"{API}/products/{new_id('none')}")
                      + raw_request("POST", f"{API}/products/{pid}/restock", {"quantity": 4})
                      + raw_request("GET", f"{API}/products/{pid}"))
            reader = ResponseReader(s)
            answers = [reader.read() for _ in range(4)]
        finally:
            s.close()
        self.assertEqual([a.status for a in answers], [422, 404, 200, 200], answers)
        self.assertEqual(answers[0].json["error"]["code"], "validation_failed")
        self.assertEqual(answers[1].json["error"]["code"], "not_found")
        self.assertEqual(answers[3].json["on_hand"], 5)

    def test_connection_close_is_honoured(self):
        s = self.server.raw_socket()
        try:
            s.sendall(raw_request("GET", "/healthz", headers={"Connection": "close"}))
            reader = ResponseReader(s)
            self.assertEqual(reader.read().status, 200)
            self.assertTrue(reader.at_eof(), "server kept the connection after Connection: close")
        finally:
            s.close()


class Concurrency(ServerTestCase, unittest.TestCase):
    def test_64_connections_depositing_to_one_account_lose_nothing(self):
        aid = create_account(self.c)
        threads, total = 64, 200
        amounts = list(range(1, total + 1))
        shares = [amounts[i::threads] for i in range(threads)]
        barrier = threading.Barrier(threads)

        def worker(share):
            c = self.server.client()
            try:
                c.get("/healthz")
                barrier.wait(timeout=20)
                return [(amt, c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": amt})) for amt in share]
            finally:
                c.close()

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            results = [r for rs in pool.map(worker, shares) for r in rs]
        self.assertEqual(len(results), total)
        ok = [(amt, r) for amt, r in results if r.status == 200]
        self.assertEqual(len(ok), total, [r for _, r in results if r.status != 200][:5])
        versions = sorted(r.json["version"] for _, r in ok)
        self.assertEqual(versions, list(range(1, total + 1)), "each deposit must get its own version")
        self.assertEqual(len({r.json["position"] for _, r in ok}), total)
        for _, r in ok:
            self.assertEqual(r.header("ETag"), f'"{r.json["version"]}"')

        g = self.c.get(f"{API}/accounts/{aid}").json
        self.assertEqual(g["balance_cents"], sum(amt for amt, _ in ok))
        self.assertEqual(g["version"], total)
        events = stream_events(self.c, f"account-{aid}")
        self.assertEqual([e["version"] for e in events], list(range(total + 1)))

    def _race(self, n, send):
        """Runs send(client, i) on n connections released together; returns the answers in order of i."""
        barrier = threading.Barrier(n)

        def worker(i):
            c = self.server.client()
            try:
                c.get("/healthz")
                barrier.wait(timeout=20)
                return send(c, i)
            finally:
                c.close()

        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return list(pool.map(worker, range(n)))

    def test_concurrent_if_match_exactly_one_wins(self):
        aid = create_account(self.c, balance=10)  # version 1
        answers = self._race(12, lambda c, i: c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": i + 1},
                                                      headers={"If-Match": '"1"'}))
        won = [a for a in answers if a.status == 200]
        self.assertEqual(len(won), 1, answers)
        for a in answers:
            if a.status != 200:
                self.assertError(a, 409, "version_conflict")
        self.assertEqual(won[0].json["version"], 2)
        events = stream_events(self.c, f"account-{aid}")
        self.assertEqual(len(events), 3)
        g = self.c.get(f"{API}/accounts/{aid}").json
        self.assertEqual(g["balance_cents"], 10 + answers.index(won[0]) + 1)

    def test_concurrent_creates_of_one_id_exactly_one_wins(self):
        pid = new_id("p")
        answers = self._race(12, lambda c, i: c.post(f"{API}/products", {
            "product_id": pid, "name": f"racer {i}", "unit_price_cents": 100 + i, "initial_stock": 1}))
        won = [i for i, a in enumerate(answers) if a.status == 201]
        self.assertEqual(len(won), 1, answers)
        for a in answers:
            if a.status != 201:
                self.assertError(a, 409, "already_exists")
        self.assertEqual(len(stream_events(self.c, f"product-{pid}")), 1)
        self.assertEqual(self.c.get(f"{API}/products/{pid}").json["unit_price_cents"], 100 + won[0])

    def test_concurrent_withdrawals_never_overdraw(self):
        aid = create_account(self.c, balance=1000)
        answers = self._race(24, lambda c, i: c.post(f"{API}/accounts/{aid}/withdraw", {"amount_cents": 100}))
        ok = [a for a in answers if a.status == 200]
        self.assertEqual(len(ok), 10, answers)
        for a in answers:
            if a.status != 200:
                self.assertError(a, 409, "insufficient_funds")
        g = self.c.get(f"{API}/accounts/{aid}").json
        self.assertEqual(g["balance_cents"], 0)
        self.assertEqual(g["version"], 11)
        self.assertEqual(sorted(a.json["version"] for a in ok), list(range(2, 12)))

    def test_concurrent_orders_and_reads_on_many_connections(self):
        pids = [create_product(self.c, price=100 + i, stock=1000) for i in range(4)]
        customer = create_account(self.c)
        n = 48
        barrier = threading.Barrier(n)

        def worker(i):
            c = self.server.client()
            try:
                c.get("/healthz")
                barrier.wait(timeout=20)
                pid = pids[i % len(pids)]
                r = c.post(f"{API}/orders", {"customer_id": customer, "items": [{"product_id": pid,
                                                                                  "quantity": 1 + i % 3}]})
                g = c.get(f"{API}/orders/{r.json['order_id']}") if r.status == 202 else None
                return i, r, g
            finally:
                c.close()

        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            results = list(pool.map(worker, range(n)))
        ids = set()
        for i, r, g in results:
            self.assertEqual(r.status, 202, r)
            self.assertEqual(g.status, 200, g)
            price = 100 + (i % len(pids))
            self.assertEqual(g.json["total_cents"], price * (1 + i % 3))
            ids.add(r.json["order_id"])
        self.assertEqual(len(ids), n)
        placed = {e["stream_id"] for e in scan_events(self.c, type="OrderPlaced")}
        self.assertTrue({f"order-{i}" for i in ids} <= placed)


if __name__ == "__main__":
    unittest.main()
