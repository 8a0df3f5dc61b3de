"""Several `orderflow serve` processes on one PostgreSQL store (runs with ORDERFLOW_E2E_STORE=postgres, else
skipped): orders for the same scarce product and the same accounts from two servers at once keep every docs/api.md
§5 invariant; exactly one process runs the fulfilment saga (the holder of the saga lease) and the other takes
over when it is killed with SIGKILL."""

import random
import threading
import time
import unittest

from harness import (API, Server, create_account, create_product, new_id, new_pg_store, on_postgres,
                     place_order, section5_problems, settled_orders, wait_caught_up, wait_until)


def saga_holder(servers, timeout=10.0):
    """The one server that runs the saga (by its stderr); fails if none or several do."""
    def one():
        holders = [s for s in servers if s.runs_saga()]
        return holders if len(holders) == 1 else None
    return wait_until(one, timeout, "exactly one server holding the saga lease")[0]


def saga_gauge(c):
    """orderflow_saga_running from the server's /metrics (None if absent)."""
    for line in c.get("/metrics").body.decode().splitlines():
        if line.startswith("orderflow_saga_running "):
            return int(line.split()[1])
    return None


class Load:
    """Client threads placing orders, depositing, withdrawing and cancelling on the given servers; keeps what
    was acknowledged (2xx) so the ledger can be checked afterwards. Every write carries an Idempotency-Key:
    a client whose server is killed under it sends the same request, with the same key, to a live server,
    and that answer is the outcome (API.md §2) -- without it, an append committed just before the kill but
    never answered would be missing from the ledger."""

    def __init__(self, servers, customers, lines, seed):
        self.servers, self.customers, self.lines = servers, customers, lines
        self.rng = random.Random(seed)
        self.orders = []  # acknowledged (202) order ids
        self.net_funds = {a: 0 for a in customers}  # acknowledged deposits - withdrawals
        self.errors = []  # answers other than the expected ones
        self.killed = set()  # ports of servers killed on purpose: their clients may see the connection drop
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def live_server(self):
        with self.lock:
            return next(s for s in self.servers if s.port not in self.killed)

    def send(self, srv, c, path, body):
        """POSTs with a fresh Idempotency-Key; if `srv` was killed under the request, the same request on a
        live server. Answers (response, whether the client's server died)."""
        key = {"Idempotency-Key": new_id("k")}
        try:
            return c.post(path, body, headers=key), False
        except OSError as e:
            with self.lock:
                if srv.port not in self.killed:
                    raise
            # The killed server may have stored it: the key tells.
            other = self.live_server().client()
            try:
                return other.post(path, body, headers=key), True
            finally:
                other.close()

    def worker(self, srv, seed, max_requests):
        rng = random.Random(seed)
        c = srv.client()
        try:
            for n in range(max_requests):
                if self.stop.is_set():
                    return
                customer = rng.choice(self.customers)
                kind = rng.random()
                try:
                    if kind < 0.6:
                        lines = rng.choice(self.lines)
                        r, died = self.send(srv, c, f"{API}/orders",
                                            {"customer_id": customer,
                                             "items": [{"product_id": p, "quantity": q} for p, q in lines]})
                        if r.status == 202:
                            with self.lock:
                                self.orders.append(r.json["order_id"])
                            if died:
                                return
                            if rng.random() < 0.15:
                                _, died = self.send(srv, c, f"{API}/orders/{r.json['order_id']}/cancel",
                                                    {"reason": "changed my mind"})
                                if died:
                                    return
                            continue
                    else:
                        action = "deposit" if kind < 0.8 else "withdraw"
                        amount = rng.choice((100, 300, 700))
                        r, died = self.send(srv, c, f"{API}/accounts/{customer}/{action}", {"amount_cents": amount})
                        if r.status == 200:
                            with self.lock:
                                self.net_funds[customer] += amount if action == "deposit" else -amount
                            if died:
                                return
                            continue
                        if action == "withdraw" and r.status == 409 and r.json["error"]["code"] == "insufficient_funds":
                            if died:
                                return
                            continue
                except OSError as e:  # not a server killed on purpose (send() handles those)
                    with self.lock:
                        self.errors.append(f"{srv.port}: {e!r}")
                    return
                with self.lock:
                    self.errors.append(f"{srv.port}: {r}")
        finally:
            c.close()

    def run(self, per_server=4, max_requests=40):
        threads = [threading.Thread(target=self.worker, args=(srv, self.rng.random(), max_requests))
                   for srv in self.servers for _ in range(per_server)]
        for t in threads:
            t.start()
        return threads


@unittest.skipUnless(on_postgres(), "several servers on one store need PostgreSQL (ORDERFLOW_E2E_STORE=postgres)")
class TwoServersOneStore(unittest.TestCase):
    maxDiff = None

    def start_pair(self):
        store = new_pg_store()
        servers = []
        for _ in range(2):
            s = Server(store=store).start()
            self.addCleanup(s.cleanup)
            servers.append(s)
        return servers

    def world(self, c, scarce_stock):
        scarce = create_product(c, price=500, stock=scarce_stock)
        plenty = create_product(c, price=200, stock=10_000)
        customers = [create_account(c, balance=3000) for _ in range(4)]
        return scarce, plenty, customers

    def check_quiet(self, servers, load, stock):
        """Waits for quiet, then checks §5 through each server's API, /admin/invariants and `orderflow verify`."""
        clients = [s.client() for s in servers]
        for c in clients:
            self.addCleanup(c.close)
        orders = settled_orders(clients[0], load.orders, timeout=60)
        # Quiet (docs/api.md §6) also means no saga in a non-final state: a cancelled order's release may follow it.
        for c in clients:
            wait_until(lambda: not any(c.get(f"{API}/admin/sagas?state={s}").json["sagas"]
                                       for s in ("RUNNING", "COMPENSATING")), 60, "every saga final")
            wait_caught_up(c, timeout=30)
        accounts = {a: 3000 + n for a, n in load.net_funds.items()}
        for s, c in zip(servers, clients):
            self.assertEqual(section5_problems(c, stock, accounts, orders), [], f"server {s.port}")
        rc, out = servers[0].verify()
        self.assertEqual(rc, 0, out)
        return orders

    def test_two_servers_take_orders_for_one_scarce_product_and_shared_accounts(self):
        a, b = self.start_pair()
        holder = saga_holder([a, b])
        ca, cb = a.client(), b.client()
        self.addCleanup(ca.close)
        self.addCleanup(cb.close)
        scarce, plenty, customers = self.world(ca, scarce_stock=15)
        # Both servers know the entities (b reads a's writes from the shared store).
        wait_until(lambda: cb.get(f"{API}/products/{plenty}").status == 200, 10, "b sees a's product")
        load = Load([a, b], customers, [[(scarce, 1)], [(scarce, 2), (plenty, 1)], [(plenty, 3)]], seed=6)
        for t in load.run(per_server=4, max_requests=40):
            t.join()
        self.assertEqual(load.errors, [])
        self.assertGreater(len(load.orders), 80)
        orders = self.check_quiet([a, b], load, {scarce: 15, plenty: 10_000})
        confirmed_scarce = sum(line["quantity"] for o in orders.values() if o["status"] == "CONFIRMED"
                               for line in o["items"] if line["product_id"] == scarce)
        self.assertLessEqual(confirmed_scarce, 15)
        self.assertTrue(any(o["cancellation_reason"] == f"out_of_stock:{scarce}" for o in orders.values()
                            if o["status"] == "CANCELLED"), "the scarce product never ran out: a weak test")
        # One process ran the saga throughout; the other never did.
        self.assertIs(saga_holder([a, b]), holder)
        other = b if holder is a else a
        self.assertNotIn("holds the saga lease", other.stderr(None))
        self.assertEqual((saga_gauge(ca), saga_gauge(cb)), (1, 0) if holder is a else (0, 1))

    def test_killing_the_saga_holder_hands_the_saga_to_the_other(self):
        a, b = self.start_pair()
        holder = saga_holder([a, b])
        standby = b if holder is a else a
        c = standby.client()
        self.addCleanup(c.close)
        scarce, plenty, customers = self.world(c, scarce_stock=40)
        load = Load([standby], customers, [[(scarce, 1)], [(plenty, 2)], [(scarce, 1), (plenty, 1)]], seed=9)
        threads = load.run(per_server=4, max_requests=10_000)
        wait_until(lambda: len(load.orders) >= 30, 20, "orders placed on the standby")
        holder.kill()  # SIGKILL: its session, and the saga lease with it, ends
        killed_at = time.monotonic()
        wait_until(standby.runs_saga, 10, "the standby taking the saga lease over")
        takeover = time.monotonic() - killed_at
        time.sleep(1.0)  # more orders, now driven by the new holder
        load.stop.set()
        for t in threads:
            t.join()
        self.assertEqual(load.errors, [])
        self.check_quiet([standby], load, {scarce: 40, plenty: 10_000})
        self.assertLess(takeover, 5.0)
        self.assertEqual(saga_gauge(c), 1)

    def test_killing_one_of_two_busy_servers_leaves_every_invariant_and_no_dead_letter(self):
        """The operator's scenario of issue #11: 8 clients on each server (orders, cancels, deposits,
        withdrawals on shared products and accounts), the saga holder killed with SIGKILL mid-load. The
        survivor takes the saga over; every order settles, no saga is dead-lettered (a version conflict is a
        reason to decide again, never a failed step), §5 holds and `verify` (snapshots included) exits 0."""
        a, b = self.start_pair()
        holder = saga_holder([a, b])
        survivor = b if holder is a else a
        c = survivor.client()
        self.addCleanup(c.close)
        scarce, plenty, customers = self.world(c, scarce_stock=60)
        h = holder.client()
        wait_until(lambda: h.get(f"{API}/products/{plenty}").status == 200, 10, "both see the world")
        h.close()
        load = Load([a, b], customers, [[(scarce, 1)], [(scarce, 2), (plenty, 1)], [(plenty, 3)], [(plenty, 1)]],
                    seed=13)
        threads = load.run(per_server=8, max_requests=10_000)
        wait_until(lambda: len(load.orders) >= 150, 60, "orders placed on both servers")
        load.killed.add(holder.port)
        holder.kill()
        wait_until(survivor.runs_saga, 10, "the survivor taking the saga lease over")
        time.sleep(2.0)  # more orders, driven by the survivor alone
        load.stop.set()
        for t in threads:
            t.join()
        self.assertEqual(load.errors, [])
        self.check_quiet([survivor], load, {scarce: 60, plenty: 10_000})
        self.assertEqual(c.get(f"{API}/admin/dead-letters").json, {"dead_letters": []})


if __name__ == "__main__":
    unittest.main()
