"""Admission control (docs/api.md §3, `503 overloaded`): past a bound on the work behind (here the saga
lagging more than one event), clients' writes are refused at once with Retry-After and write nothing,
reads keep answering, and writes are admitted again once the saga has caught up."""

import threading
import unittest
import uuid

from harness import API, ServerTestCase, create_account, create_product, events_caused_by, wait_quiet, wait_until


class Admission(ServerTestCase, unittest.TestCase):
    server_args = ("--max-saga-lag", "1")

    def test_writes_past_the_saga_bound_are_refused_and_write_nothing_while_reads_answer(self):
        c = self.c
        product = create_product(c, stock=100_000)
        account = create_account(c, balance=10**9)
        start = wait_quiet(c)
        answers, reads, lock = [], [], threading.Lock()

        def place(n):
            mine = self.server.client()
            try:
                for _ in range(n):
                    correlation = str(uuid.uuid4())
                    r = mine.post(f"{API}/orders", {"customer_id": account, "items": [{"product_id": product,
                                                                                     "quantity": 1}]},
                                  headers={"X-Correlation-Id": correlation})
                    g = mine.get(f"{API}/products/{product}")
                    with lock:
                        answers.append((correlation, r))
                        reads.append(g.status)
            finally:
                mine.close()

        threads = [threading.Thread(target=place, args=(25,)) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        refused = [(cid, r) for cid, r in answers if r.status != 202]
        self.assertTrue(refused, "no write was refused while the saga lagged behind a burst of 300 orders")
        for _, r in refused:
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json["error"]["code"], "overloaded", r)
            self.assertIn("saga", r.json["error"]["message"])
            self.assertEqual(r.header("Retry-After"), "1", r)
        self.assertLess(len(refused), len(answers), "every write was refused")
        self.assertEqual(set(reads), {200}, "a read was refused")

        wait_quiet(c)
        written = events_caused_by(c, [cid for cid, _ in refused], after_position=start)
        self.assertEqual(written, [], "a refused order wrote events")
        metrics = c.get("/metrics").body.decode()
        self.assertRegex(metrics, r'orderflow_admission_refused_total\{reason="saga_lag"\} [1-9]')

        # Caught up: writes are admitted again.
        def admitted():
            r = c.post(f"{API}/accounts/{account}/deposit", {"amount_cents": 1})
            return r.status == 200
        wait_until(admitted, 10, "a deposit admitted once the saga caught up")


if __name__ == "__main__":
    unittest.main()
