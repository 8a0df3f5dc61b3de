"""docs/api.md §2 Idempotency-Key: replays, key reuse, rejected requests not stored, concurrent duplicates."""

import concurrent.futures
import json
import threading
import time
import unittest
import uuid

from harness import (API, ServerTestCase, create_account, create_product, events_caused_by, new_id, scan_events,
                     stream_events)


def key():
    return "idem-" + uuid.uuid4().hex


class Idempotency(ServerTestCase, unittest.TestCase):
    def test_replay_returns_first_answer_and_writes_nothing(self):
        aid = create_account(self.c)
        k = key()
        first = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 250}, headers={"Idempotency-Key": k})
        self.assertAccepted(first, 200, "account_id", aid)
        mark = self.mark()
        for _ in range(3):
            again = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 250},
                                headers={"Idempotency-Key": k})
            self.assertEqual(again.status, first.status)
            self.assertEqual(again.body, first.body)
            self.assertEqual(again.header("ETag"), first.header("ETag"))
        self.assertNothingWrittenSince(mark, "a replay wrote events")
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 250)

    def test_replay_after_later_writes_still_returns_first_answer(self):
        aid = create_account(self.c)
        k = key()
        first = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1}, headers={"Idempotency-Key": k})
        self.assertEqual(first.status, 200, first)
        self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 10})
        again = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1}, headers={"Idempotency-Key": k})
        self.assertEqual((again.status, again.body), (first.status, first.body))
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 11)

    def test_body_compared_as_parsed_json(self):
        pid = create_product(self.c, price=100)
        aid = create_account(self.c)
        k = key()
        raw1 = json.dumps({"customer_id": aid, "items": [{"product_id": pid, "quantity": 2}]})
        raw2 = ('{ "items" : [ { "quantity":2 ,  "product_id" : "%s" } ] ,\n\t"customer_id":"%s" }' % (pid, aid))
        first = self.c.post(f"{API}/orders", raw=raw1, headers={"Idempotency-Key": k})
        self.assertAccepted(first, 202, "order_id")
        mark = self.mark()
        again = self.c.post(f"{API}/orders", raw=raw2, headers={"Idempotency-Key": k})
        self.assertEqual(again.status, 202)
        self.assertEqual(again.body, first.body)  # the same server-made order_id
        self.assertNothingWrittenSince(mark, "a replay wrote events")
        placed = scan_events(self.c, from_position=first.json["position"], type="OrderPlaced")
        self.assertEqual([e["stream_id"] for e in placed], [f"order-{first.json['order_id']}"])

    def test_same_key_other_body_is_reused(self):
        aid = create_account(self.c)
        k = key()
        self.assertEqual(self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 5},
                                     headers={"Idempotency-Key": k}).status, 200)
        mark = self.mark()
        r = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 6}, headers={"Idempotency-Key": k})
        self.assertError(r, 409, "idempotency_key_reused")
        self.assertNothingWrittenSince(mark)
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 5)

    def test_same_key_other_route_is_reused(self):
        aid = create_account(self.c, balance=100)
        other = create_account(self.c)
        k = key()
        self.assertEqual(self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 5},
                                     headers={"Idempotency-Key": k}).status, 200)
        mark = self.mark()
        # same body, other path
        r = self.c.post(f"{API}/accounts/{aid}/withdraw", {"amount_cents": 5}, headers={"Idempotency-Key": k})
        self.assertError(r, 409, "idempotency_key_reused")
        r = self.c.post(f"{API}/accounts/{other}/deposit", {"amount_cents": 5}, headers={"Idempotency-Key": k})
        self.assertError(r, 409, "idempotency_key_reused")
        self.assertNothingWrittenSince(mark)

    def test_rejected_request_is_not_stored_and_can_be_retried(self):
        aid = create_account(self.c, balance=100)
        k = key()
        mark = self.mark()
        r = self.c.post(f"{API}/accounts/{aid}/withdraw", {"amount_cents": 150}, headers={"Idempotency-Key": k})
        self.assertError(r, 409, "insufficient_funds")
        self.assertNothingWrittenSince(mark)
        self.assertEqual(self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 100}).status, 200)
        r = self.c.post(f"{API}/accounts/{aid}/withdraw", {"amount_cents": 150}, headers={"Idempotency-Key": k})
        first = self.assertAccepted(r, 200, "account_id", aid)
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 50)
        # and now it is stored
        again = self.c.post(f"{API}/accounts/{aid}/withdraw", {"amount_cents": 150}, headers={"Idempotency-Key": k})
        self.assertEqual((again.status, again.json), (200, first))
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 50)

    def test_validation_failure_is_not_stored(self):
        aid = create_account(self.c)
        k = key()
        self.assertError(self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 0},
                                     headers={"Idempotency-Key": k}), 422, "validation_failed")
        # the key is free: another body with it is accepted
        r = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 7}, headers={"Idempotency-Key": k})
        self.assertAccepted(r, 200, "account_id", aid)

    def test_version_conflict_is_not_stored(self):
        aid = create_account(self.c)
        k = key()
        self.assertError(self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 4},
                                     headers={"Idempotency-Key": k, "If-Match": '"5"'}), 409, "version_conflict")
        r = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 4},
                        headers={"Idempotency-Key": k, "If-Match": '"0"'})
        self.assertAccepted(r, 200, "account_id", aid)

    def test_create_replay(self):
        pid = new_id("p")
        body = {"product_id": pid, "name": "Idem", "unit_price_cents": 10, "initial_stock": 1}
        k = key()
        first = self.c.post(f"{API}/products", body, headers={"Idempotency-Key": k})
        self.assertAccepted(first, 201, "product_id", pid)
        again = self.c.post(f"{API}/products", body, headers={"Idempotency-Key": k})
        self.assertEqual((again.status, again.body), (201, first.body))
        # Without the key the same create is already_exists.
        self.assertError(self.c.post(f"{API}/products", body), 409, "already_exists")
        self.assertEqual(len(stream_events(self.c, f"product-{pid}")), 1)

    def _concurrent_same_key(self, method, path, body, n=8):
        """n connections send the same keyed request at once; returns (answers, correlation ids sent)."""
        k = key()
        barrier = threading.Barrier(n)
        clients = [self.server.client() for _ in range(n)]
        corr = ["e2e-same-key-" + uuid.uuid4().hex for _ in range(n)]
        try:
            for cl in clients:  # connect first so the barrier releases all requests at once
                cl.get("/healthz")

            def send(i):
                barrier.wait(timeout=10)
                return clients[i].request(method, path, body=body,
                                          headers={"Idempotency-Key": k, "X-Correlation-Id": corr[i]})

            with concurrent.futures.ThreadPoolExecutor(n) as pool:
                answers = list(pool.map(send, range(n)))
        finally:
            for cl in clients:
                cl.close()
        return answers, corr

    def test_concurrent_same_key_deposit_writes_once(self):
        aid = create_account(self.c)
        _, position, _ = self.mark()
        answers, corr = self._concurrent_same_key("POST", f"{API}/accounts/{aid}/deposit", {"amount_cents": 77})
        for a in answers:
            self.assertEqual(a.status, 200, a)
        self.assertEqual(len({a.body for a in answers}), 1, answers)
        caused = events_caused_by(self.c, corr, position)
        self.assertEqual([e["type"] for e in caused], ["FundsDeposited"])
        self.assertEqual(caused[0]["position"], answers[0].json["position"])
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 77)

    def test_concurrent_same_key_withdrawal_of_everything_answers_as_the_first(self):
        """The tries after the first decide on the state the first leaves (no funds): their refusal is not the
        key's answer, the first try's success is."""
        for _ in range(5):
            aid = create_account(self.c, balance=300)
            answers, _ = self._concurrent_same_key("POST", f"{API}/accounts/{aid}/withdraw", {"amount_cents": 300})
            self.assertEqual([a.status for a in answers], [200] * len(answers), answers)
            self.assertEqual(len({a.body for a in answers}), 1, answers)
            self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 0)

    def test_concurrent_same_key_order_writes_once(self):
        pid = create_product(self.c, price=10)
        aid = create_account(self.c)
        _, position, _ = self.mark()
        answers, corr = self._concurrent_same_key("POST", f"{API}/orders",
                                                  {"customer_id": aid, "items": [{"product_id": pid, "quantity": 1}]})
        for a in answers:
            self.assertEqual(a.status, 202, a)
        self.assertEqual(len({a.body for a in answers}), 1, answers)
        oid = answers[0].json["order_id"]
        # Exactly one order placed (a saga may add events of its own to it, under the same correlation id).
        caused = events_caused_by(self.c, corr, position)
        placed = [e for e in caused if e["type"] == "OrderPlaced"]
        self.assertEqual([e["stream_id"] for e in placed], [f"order-{oid}"])
        self.assertEqual({e["stream_id"] for e in caused if e["stream_id"].startswith("order-")}, {f"order-{oid}"})
        orders_since = {e["stream_id"] for e in scan_events(self.c, from_position=position + 1, type="OrderPlaced")}
        self.assertEqual(orders_since, {f"order-{oid}"})


class IdempotencyRetention(ServerTestCase, unittest.TestCase):
    """docs/api.md §2: a key's answer is kept --idempotency-retention-s seconds, then deleted; a repeat after that
    is a new request."""
    server_args = ("--idempotency-retention-s", "2")

    def expired(self):
        for line in self.c.get("/metrics").body.decode().splitlines():
            if line.startswith("orderflow_idempotency_expired_total "):
                return float(line.split()[1])
        raise AssertionError("orderflow_idempotency_expired_total not in /metrics")

    def test_a_key_past_its_retention_is_new_again(self):
        aid = create_account(self.c)
        k = key()
        first = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 250}, headers={"Idempotency-Key": k})
        self.assertEqual(first.status, 200, first)
        again = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 250}, headers={"Idempotency-Key": k})
        self.assertEqual((again.status, again.body, again.header("Idempotent-Replayed")),
                         (200, first.body, "true"), "a repeat within the retention is answered from the key")
        before = self.expired()
        deadline = time.monotonic() + 20
        while self.expired() == before:
            self.assertLess(time.monotonic(), deadline, "no answer was deleted within 20 s of a 2 s retention")
            time.sleep(0.2)
        later = self.c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 250}, headers={"Idempotency-Key": k})
        self.assertEqual(later.status, 200, later)
        self.assertIsNone(later.header("Idempotent-Replayed"))
        self.assertGreater(later.json["position"], first.json["position"])
        self.assertEqual(self.c.get(f"{API}/accounts/{aid}").json["balance_cents"], 500)


if __name__ == "__main__":
    unittest.main()
