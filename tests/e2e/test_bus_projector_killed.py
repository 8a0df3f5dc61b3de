"""A bus-fed projector process killed while writes are still arriving (docs/api.md §10 "A projector fed
from the bus"): on PostgreSQL, a writer (`--roles command,query,admin,saga,relay --bus`) takes orders,
deposits and new accounts without a pause while a projector process (`--roles projector,query,admin --bus`,
a real nats-server) is killed with SIGKILL once it has applied some of them (on a count, not a timer) and
started again; writes go on the whole time. Once the writes stop and the projector has acknowledged
everything, `orderflow verify` finds the read models it folded equal to a fold of the log, and nothing
was dead-lettered (a redelivery after the kill changes nothing, nothing is skipped). Accounts are opened
without an owner: read models fed from the bus hold personal data revealed (the relay publishes it so),
where a fold of the store holds it sealed, and verify would count each owner as a difference."""

import signal
import threading
import unittest

from harness import API, Server, create_account, create_product, new_pg_store, on_postgres, wait_until
from test_bus import needs_nats, started_nats
from test_bus_dead_letters import labelled_metric


@needs_nats
@unittest.skipUnless(on_postgres(), "a writer and a projector process on one store need PostgreSQL "
                                    "(ORDERFLOW_E2E_STORE=postgres)")
class BusFedProjectorKilledUnderWrites(unittest.TestCase):
    def test_killed_and_restarted_while_the_writer_appends_then_read_models_equal_the_log(self):
        nats = started_nats(self)
        bus = f"nats://127.0.0.1:{nats.port}"
        writer, projector = writer_and_projectors(self, bus)

        first = projector()
        stop = threading.Event()
        done = {"writes": 0}
        failures = []

        def write():
            c = writer.client()
            try:
                products = [create_product(c, price=100 + i, stock=1_000_000) for i in range(5)]
                accounts = [create_account(c, balance=10_000_000, owner=None) for _ in range(10)]
                i = 0
                while not stop.is_set():
                    i += 1
                    if i % 10 == 0:
                        accounts.append(create_account(c, balance=1000, owner=None))
                    elif i % 3 == 0:
                        r = c.post(f"{API}/accounts/{accounts[i % len(accounts)]}/deposit", {"amount_cents": i})
                        if r.status != 200:
                            raise AssertionError(f"deposit: {r}")
                    else:
                        items = [{"product_id": products[i % 5], "quantity": 1 + i % 3}]
                        r = c.post(f"{API}/orders", {"customer_id": accounts[i % 10], "items": items})
                        if r.status != 202:
                            raise AssertionError(f"place order: {r}")
                    done["writes"] = i
            except Exception as e:  # noqa: BLE001 - reported by the test below
                failures.append(e)
            finally:
                c.close()

        writing = threading.Thread(target=write, daemon=True)
        writing.start()
        self.addCleanup(stop.set)
        c = first.client()
        wait_until(lambda: failures or (labelled_metric(c, "orderflow_bus_consumer_applied_total") or 0) >= 300, 120,
                   "the projector applied some of the writes")
        c.close()
        self.assertFalse(failures, failures)
        first.signal(signal.SIGKILL)
        first.wait()
        at_kill = done["writes"]

        # Writes go on while no projector runs, and after it is back.
        wait_until(lambda: failures or done["writes"] >= at_kill + 200, 120, "more writes while it is down")
        second = projector()
        c = second.client()
        wait_until(lambda: failures or (labelled_metric(c, "orderflow_bus_consumer_applied_total") or 0) >= 100, 120,
                   "the restarted projector applying")
        stop.set()
        writing.join(timeout=60)
        self.assertFalse(failures, failures)

        # What the killed one fetched and never acknowledged comes again after the consumer's 30 s ack wait.
        relayed = expect_everything_applied_once(self, writer, second, c)
        print(f"killed after {at_kill} writes; {done['writes']} writes, {relayed} events relayed")


def writer_and_projectors(test, bus, writer_args=()):
    """On a fresh PostgreSQL schema, a writer process (`--roles command,query,admin,saga,relay --bus`, then
    `writer_args`), started, and a function starting a projector process (`--roles projector,query,admin
    --bus`) on it."""
    store = new_pg_store()
    writer = Server(store=store, extra_args=["--roles", "command,query,admin,saga,relay", "--bus", bus,
                                             *writer_args])
    test.addCleanup(writer.cleanup)
    writer.start()

    def projector():
        srv = Server(store=store, extra_args=["--roles", "projector,query,admin", "--bus", bus])
        test.addCleanup(srv.cleanup)
        return srv.start()

    return writer, projector


def expect_everything_applied_once(test, writer, projector, c):
    """Once the writes stopped: every write relayed, then acknowledged by `projector` (`c` its client, closed
    here), nothing dead-lettered or held; both processes stopped, `orderflow verify` finds the read models
    equal to a fold of the log. Answers the position relayed."""
    w = writer.client()
    wait_until(lambda: (r := w.get(f"{API}/admin/relay").json)["lag"] == 0 and r["state"] == "publishing", 60,
               "the relay caught up")
    relayed = w.get(f"{API}/admin/relay").json["position"]
    wait_until(lambda: all(p["lag"] == 0 for p in c.get(f"{API}/admin/projections").json)
               and labelled_metric(c, "orderflow_bus_consumer_lag") == 0, 180,
               "the projector acknowledged everything")
    test.assertEqual(labelled_metric(c, "orderflow_bus_consumer_dead_letters_total"), 0)
    test.assertEqual(labelled_metric(c, "orderflow_bus_consumer_held_streams"), 0)
    w.close()
    c.close()
    projector.stop()
    writer.stop()
    rc, out = writer.verify()
    test.assertEqual(rc, 0, out)
    test.assertIn("no differences", out)
    return relayed


if __name__ == "__main__":
    unittest.main()
