"""Admission control (docs/api.md §3, `503 overloaded`): past a bound on the work behind (here the saga
lagging more than one event), clients' writes are refused at once with Retry-After and write nothing,
reads keep answering, and writes are admitted again once the saga has caught up."""

import threading
import time
import unittest
import uuid

from harness import API, ServerTestCase, create_account, create_product, events_caused_by, wait_quiet, wait_until


def retry_overloaded(make):
    """make(), tried again while the server refuses it as overloaded (the saga a step behind the last set-up
    write is past these tests' bounds)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return make()
        except AssertionError as e:
            if "overloaded" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Admission(ServerTestCase, unittest.TestCase):
    server_args = ("--max-saga-lag", "1")

    def test_writes_past_the_saga_bound_are_refused_and_write_nothing_while_reads_answer(self):
        c = self.c
        product = retry_overloaded(lambda: create_product(c, stock=100_000))
        account = retry_overloaded(lambda: create_account(c, balance=10**9))
        start = wait_quiet(c)
        answers, reads, lock = [], [], threading.Lock()
        # Bursts until a write was refused (a look at the gauges, every 50 ms, finds the saga behind) or 20 s
        # passed: how many orders that takes depends on the machine.
        deadline = time.monotonic() + 20

        def place():
            mine = self.server.client()
            try:
                while time.monotonic() < deadline and not any(r.status != 202 for _, r in answers[-50:]):
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

        threads = [threading.Thread(target=place) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        refused = [(cid, r) for cid, r in answers if r.status != 202]
        self.assertTrue(refused, f"no write was refused in 20 s of bursts ({len(answers)} orders)")
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


class AdmissionByAge(Admission):
    """The same with the bound in time: the oldest event the saga has not read older than 1 ms."""
    server_args = ("--max-saga-lag", "0", "--max-saga-lag-ms", "1")


if __name__ == "__main__":
    unittest.main()
