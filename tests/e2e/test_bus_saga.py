"""docs/api.md §10 "A saga fed from the bus", as an operator runs it: on one PostgreSQL store, a process with
the command, query, admin, projector and relay roles, and a saga process fed from NATS (`--roles saga
--bus`, no relay). Orders placed reach a final state through it; the saga process killed with SIGKILL
mid-way (once it folded a share of the messages, on a count) and started again resumes from its
checkpoint: every order ends final (the declined ones compensated and cancelled), the invariants hold and
no reserve, release, charge or refund is recorded twice."""

import collections
import signal
import unittest

from harness import API, Server, create_account, create_product, new_pg_store, on_postgres, place_order, \
    scan_events, settled_orders, wait_until
from test_bus import needs_nats, started_nats


def saga_bus(c):
    """checks.saga_bus of the process's /readyz (ready or not)."""
    r = c.get("/readyz")
    checks = r.json.get("checks") if r.status == 200 else r.json.get("error", {}).get("details", {}).get("checks")
    return (checks or {}).get("saga_bus")


@needs_nats
@unittest.skipUnless(on_postgres(), "a saga process beside a command process needs PostgreSQL "
                                    "(ORDERFLOW_E2E_STORE=postgres)")
class SagaFedFromTheBus(unittest.TestCase):
    def test_a_saga_process_killed_mid_way_resumes_and_every_order_ends_final(self):
        nats = started_nats(self)
        store = new_pg_store()
        bus = ["--bus", f"nats://127.0.0.1:{nats.port}"]
        front = Server(store=store, extra_args=["--roles", "command,query,admin,projector,relay", *bus])
        self.addCleanup(front.cleanup)
        front.start()

        def saga_process():
            srv = Server(store=store, extra_args=["--roles", "saga", *bus])
            self.addCleanup(srv.cleanup)
            return srv.start()

        saga = saga_process()
        c, s = front.client(), saga.client()
        wait_until(lambda: (b := saga_bus(s)) and b["state"] == "consuming", 60, "the saga consumes from the bus")
        products = [create_product(c, stock=1000) for _ in range(4)]
        rich = [create_account(c, balance=10_000_000) for _ in range(4)]
        poor = create_account(c)

        def place(n):
            return [place_order(c, poor if i % 10 == 9 else rich[i % 4], [(products[i % 4], 1 + i % 2)])
                    for i in range(n)]

        orders = place(80)
        # About 9 events an order: killed once it folded a quarter of them.
        wait_until(lambda: saga_bus(s)["folded"] >= 180, 120, "the saga folded a share of the messages")
        saga.signal(signal.SIGKILL)
        saga.wait()
        s.close()
        final_at_kill = sum(1 for o in orders if c.get(f"{API}/orders/{o}?consistency=strong").json["status"]
                            in ("CONFIRMED", "CANCELLED"))
        orders += place(40)  # while no saga runs
        saga = saga_process()
        s = saga.client()
        final = settled_orders(c, orders, timeout=240)
        statuses = collections.Counter(o["status"] for o in final.values())
        self.assertEqual(set(statuses), {"CONFIRMED", "CANCELLED"}, statuses)
        self.assertEqual(statuses["CANCELLED"], 12, "every tenth order, declined, compensated")
        r = c.get(f"{API}/admin/invariants")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["violations"], [])
        steps = collections.Counter()
        for e in scan_events(c, limit=1000):
            if e["type"] in ("StockReserved", "StockReleased", "AccountCharged", "AccountRefunded"):
                steps[(e["type"], e["data"]["order_id"], e["stream_id"])] += 1
        self.assertTrue(steps)
        self.assertEqual([k for k, n in steps.items() if n > 1], [], "no step recorded twice")
        b = saga_bus(s)
        self.assertEqual(b["state"], "consuming")
        self.assertGreater(b["from_store"], 0, "the restart folded the store from its checkpoint first")
        self.assertEqual(b["dead_lettered"], 0)
        print(f"\nkilled with {final_at_kill} of 80 orders final; restarted: {b['from_store']} events from the "
              f"store, {b['folded']} folded from the bus", flush=True)
        for cl in (c, s):
            cl.close()
        saga.stop()
        front.stop()


if __name__ == "__main__":
    unittest.main()
