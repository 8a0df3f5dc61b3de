"""The fulfilment saga over HTTP (docs/api.md §5, §7): every path of an order's life, a cancel racing
the saga, scarce stock under concurrency, and kill -9 under load followed by a restart."""

import threading
import time
import unittest

from harness import API, Server, new_id

TERMINAL = {"CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"}
FINAL_SAGA = {"COMPLETED", "COMPENSATED", "FAILED"}


def setup_world(c, stock=10, balance=10_000, price=500):
    product, customer = new_id("p"), new_id("c")
    assert c.post(f"{API}/products", {"product_id": product, "name": "Mug", "unit_price_cents": price,
                                      "initial_stock": stock}).status == 201
    assert c.post(f"{API}/accounts", {"account_id": customer}).status == 201
    if balance:
        assert c.post(f"{API}/accounts/{customer}/deposit", {"amount_cents": balance}).status == 200
    return product, customer


def place(c, customer, lines):
    r = c.post(f"{API}/orders", {"customer_id": customer,
                                 "items": [{"product_id": p, "quantity": q} for p, q in lines]})
    assert r.status == 202, r
    return r.json["order_id"]


def settle(c, order_id, timeout=15.0):
    """The order once its saga is final (the order itself folded from the store)."""
    deadline = time.monotonic() + timeout
    while True:
        saga = c.get(f"{API}/admin/sagas/{order_id}")
        if saga.status == 200 and saga.json["state"] in FINAL_SAGA:
            return c.get(f"{API}/orders/{order_id}?consistency=strong").json
        if time.monotonic() > deadline:
            raise AssertionError(f"saga of {order_id} not final: {saga.status} {saga.body!r}")
        time.sleep(0.02)


def invariants(c):
    return c.get(f"{API}/admin/invariants").json["violations"]


class SagaPathsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server().start()
        cls.c = cls.srv.client()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.srv.cleanup()

    def product(self, pid):
        return self.c.get(f"{API}/products/{pid}?consistency=strong").json

    def balance(self, aid):
        return self.c.get(f"{API}/accounts/{aid}?consistency=strong").json["balance_cents"]

    def test_confirms_then_ships_and_commits_stock(self):
        p, cust = setup_world(self.c)
        o = place(self.c, cust, [(p, 2)])
        order = settle(self.c, o)
        self.assertEqual((order["status"], order["payment_status"], order["shipping_status"]),
                         ("CONFIRMED", "PAID", "WAITING_FOR_SHIPMENT"))
        self.assertEqual(self.balance(cust), 10_000 - 1000)
        saga = self.c.get(f"{API}/admin/sagas/{o}").json
        self.assertEqual(saga["state"], "COMPLETED")
        self.assertEqual([s["name"] for s in saga["steps"]], ["reserve", "charge", "confirm"])
        self.assertIsNone(saga["deadline"])
        self.assertEqual(self.c.put(f"{API}/orders/{o}/shipping-status", {"status": "IN_TRANSIT"}).status, 200)
        deadline = time.monotonic() + 10
        while self.product(p)["on_hand"] != 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual((self.product(p)["on_hand"], self.product(p)["reserved"]), (8, 0))

    def test_out_of_stock_releases_and_cancels(self):
        p, cust = setup_world(self.c, stock=5)
        q, _ = setup_world(self.c, stock=1)
        o = place(self.c, cust, [(p, 2), (q, 3)])
        order = settle(self.c, o)
        self.assertEqual(order["status"], "CANCELLED")
        self.assertEqual(order["cancellation_reason"], f"out_of_stock:{q}")
        self.assertEqual(order["payment_status"], "PENDING")
        self.assertEqual(self.product(p)["reserved"], 0)
        self.assertEqual(self.c.get(f"{API}/admin/sagas/{o}").json["state"], "COMPENSATED")

    def test_declined_payment_releases_and_cancels(self):
        p, poor = setup_world(self.c, balance=100)
        for customer in (poor, new_id("nobody")):
            o = place(self.c, customer, [(p, 1)])
            order = settle(self.c, o)
            self.assertEqual((order["status"], order["cancellation_reason"], order["payment_status"]),
                             ("CANCELLED", "payment_declined", "DECLINED"))
        self.assertEqual(self.product(p)["reserved"], 0)
        self.assertEqual(self.balance(poor), 100)

    def test_cancel_after_confirmation_refunds_and_releases(self):
        p, cust = setup_world(self.c)
        o = place(self.c, cust, [(p, 3)])
        settle(self.c, o)
        self.assertEqual(self.c.post(f"{API}/orders/{o}/cancel", {"reason": "changed my mind"}).status, 200)
        order = settle(self.c, o)
        self.assertEqual((order["status"], order["payment_status"]), ("CANCELLED", "REFUNDED"))
        deadline = time.monotonic() + 10
        while self.balance(cust) != 10_000 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(self.balance(cust), 10_000)
        self.assertEqual(self.product(p)["reserved"], 0)

    def test_cancel_racing_the_saga_leaves_nothing_held_or_charged(self):
        p, cust = setup_world(self.c, stock=100, balance=100_000)
        orders = []
        for i in range(40):  # each cancel soon after its placing: some land before, some during, some after the saga
            orders.append(place(self.c, cust, [(p, 1)]))
            time.sleep(0.0005 * (i % 7))
            self.c.post(f"{API}/orders/{orders[-1]}/cancel", {"reason": "race"})
        final = {o: settle(self.c, o) for o in orders}
        charged = {t["order_id"] for t in self.c.get(f"{API}/accounts/{cust}/transactions?limit=100").json["transactions"]
                   if t["type"] == "charge"}
        for o, order in final.items():
            self.assertEqual(order["status"], "CANCELLED")
            # A cancel that landed while the charge was taken still ends REFUNDED (OrderPaymentSettled).
            self.assertEqual(order["payment_status"], "REFUNDED" if o in charged else "PENDING", o)
        self.assertEqual(self.product(p)["reserved"], 0)
        self.assertEqual(self.balance(cust), 100_000)
        self.assertEqual(invariants(self.c), [])

    def test_scarce_stock_is_never_oversold(self):
        p, cust = setup_world(self.c, stock=10, balance=1_000_000)
        ids, lock = [], threading.Lock()

        def client():
            c = self.srv.client()
            for _ in range(10):
                o = place(c, cust, [(p, 1)])
                with lock:
                    ids.append(o)
            c.close()

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        states = [settle(self.c, o)["status"] for o in ids]
        self.assertEqual(states.count("CONFIRMED"), 10)
        self.assertEqual(states.count("CANCELLED"), 30)
        self.assertEqual(self.product(p)["reserved"], 10)
        self.assertEqual(invariants(self.c), [])

    def test_admin_lists_sagas_and_validates_parameters(self):
        p, cust = setup_world(self.c)
        o = place(self.c, cust, [(p, 1)])
        settle(self.c, o)
        listed = self.c.get(f"{API}/admin/sagas?state=COMPLETED&limit=100").json["sagas"]
        self.assertIn(o, [s["order_id"] for s in listed])
        self.assertTrue(all(s["state"] == "COMPLETED" for s in listed))
        self.assertEqual(self.c.get(f"{API}/admin/sagas?state=DONE").status, 400)
        self.assertEqual(self.c.get(f"{API}/admin/sagas/{new_id('x')}").status, 404)
        self.assertEqual(self.c.get(f"{API}/admin/dead-letters").json, {"dead_letters": []})
        # A dead letter id is a UUID: anything else is a bad request; an unknown one is not found.
        self.assertEqual(self.c.post(f"{API}/admin/dead-letters/nope/retry").status, 400)
        self.assertEqual(self.c.post(f"{API}/admin/dead-letters/0193a5c9-0000-7000-8000-00000000dead/retry").status,
                         404)


class SagaCrashTest(unittest.TestCase):
    def test_kill_9_under_load_then_every_acknowledged_order_ends(self):
        srv = Server().start()
        try:
            c = srv.client()
            products = [setup_world(c, stock=200, balance=0)[0] for _ in range(3)]
            customers = [setup_world(c, stock=0, balance=50_000)[1] for _ in range(4)]
            acked, stop = [], threading.Event()

            def load(i):
                cl = srv.client()
                n = 0
                while not stop.is_set():
                    try:
                        o = place(cl, customers[(i + n) % 4], [(products[n % 3], 1 + n % 2)])
                    except Exception:  # the server died under us
                        cl.close()
                        return
                    acked.append(o)
                    if n % 5 == 0:
                        try:
                            cl.post(f"{API}/orders/{o}/cancel", {"reason": "race"})
                        except Exception:
                            cl.close()
                            return
                    n += 1

            threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            time.sleep(1.5)
            srv.kill()  # SIGKILL
            stop.set()
            for t in threads:
                t.join()
            self.assertGreater(len(acked), 20)

            restarted = Server(data_dir=srv.data_dir).start()
            try:
                c = restarted.client()
                for o in acked:
                    self.assertIn(settle(c, o, timeout=30)["status"], TERMINAL, o)
                deadline = time.monotonic() + 15
                while c.get(f"{API}/admin/sagas?state=RUNNING").json["sagas"] or \
                        c.get(f"{API}/admin/sagas?state=COMPENSATING").json["sagas"]:
                    self.assertLess(time.monotonic(), deadline, "sagas never got quiet")
                    time.sleep(0.05)
                self.assertEqual(invariants(c), [])
            finally:
                restarted.stop()
                restarted.cleanup()
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
