"""Two bus-fed projector processes in one Kafka consumer group (docs/api.md §10 "A projector fed from the
bus", librdkafka's mock cluster, build/tests/kafka_mock_cluster) on one PostgreSQL store, while a writer
(`--roles command,query,admin,saga,relay --bus`) takes orders, deposits and new accounts without a pause. The
read models are shared, and one process at a time writes them (it holds their claims): a second projector
process started mid-load stands by (no member of the group, /readyz 503 `standby`) instead of exiting; the
first one stopped with SIGTERM leaves the group, and the second takes its claims and the group's partitions
over, resuming from the offsets the group committed. A third joins, the second is killed with SIGKILL (its
claims go with its sessions; the group gives its partitions away after the session timeout) and the third
takes over. Once the writes stop and everything is acknowledged, `orderflow verify` finds the read models
equal to a fold of the log, nothing dead-lettered: nothing lost, nothing applied twice. Accounts are opened
without an owner (read models fed from the bus hold personal data revealed, a fold of the store sealed).
About a minute (librdkafka's mock cluster waits out each rebalance, the 10 s session timeout less 1 s):
not in the e2e discovery; ctest runs it as e2e_kafka_projector_group (label bus)."""

import signal
import threading
import time
import unittest

from harness import API, create_account, create_product, on_postgres, place_order, wait_until
from test_bus_dead_letters import labelled_metric
from test_bus_projector_killed import expect_everything_applied_once, writer_and_projectors
from test_bus_saga import started_kafka


def projector_state(c):
    """checks.bus_projector.state of the process's /readyz (ready or not)."""
    r = c.get("/readyz")
    checks = r.json.get("checks") if r.status == 200 else r.json.get("error", {}).get("details", {}).get("checks")
    return ((checks or {}).get("bus_projector") or {}).get("state")


def applied(c):
    return labelled_metric(c, "orderflow_bus_consumer_applied_total") or 0


@unittest.skipUnless(on_postgres(), "projector processes beside a writer on one store need PostgreSQL "
                                    "(ORDERFLOW_E2E_STORE=postgres)")
class BusFedProjectorsInOneKafkaGroup(unittest.TestCase):
    def test_a_projector_joining_mid_load_stands_by_and_takes_over_when_the_other_leaves_or_is_killed(self):
        bus = started_kafka(self)
        writer, projector = writer_and_projectors(self, bus)

        stop, failures, writes = threading.Event(), [], [0]

        def write():
            c = writer.client()
            try:
                products = [create_product(c, price=100 + i, stock=1_000_000) for i in range(4)]
                accounts = [create_account(c, balance=10_000_000, owner=None) for _ in range(8)]
                while not stop.is_set():
                    i = writes[0] = writes[0] + 1
                    if i % 10 == 0:
                        accounts.append(create_account(c, balance=1000, owner=None))
                    elif i % 3 == 0:
                        r = c.post(f"{API}/accounts/{accounts[i % len(accounts)]}/deposit", {"amount_cents": i})
                        self.assertEqual(r.status, 200, r)
                    else:
                        place_order(c, accounts[i % 8], [(products[i % 4], 1 + i % 3)])
                    time.sleep(0.02)
            except Exception as e:  # noqa: BLE001 - reported by the test below
                failures.append(e)
            finally:
                c.close()

        t0 = time.monotonic()
        marks = []

        def mark(what):
            marks.append(f"{what} {time.monotonic() - t0:.0f} s")

        first = projector()
        writing = threading.Thread(target=write, daemon=True)
        writing.start()
        self.addCleanup(stop.set)
        fc = first.client()
        # The mock cluster's first assignment of a new group took 29 s here with 10 s sessions
        # (96 s, and over 120 s in a CI run, with librdkafka's 45 s): the wait is for Kafka.
        wait_until(lambda: failures or applied(fc) >= 200, 240, "the first projector applying")
        mark("first applying")

        # A second member joins mid-load: it stands by, the first goes on applying.
        second = projector()
        sc = second.client()
        wait_until(lambda: projector_state(sc) == "standby", 30, "the second projector standing by")
        self.assertEqual(sc.get("/readyz").status, 503)
        before = applied(fc)
        wait_until(lambda: failures or applied(fc) >= before + 100, 60, "the first still applying")
        mark("second standing by")

        # The first leaves (SIGTERM: it leaves the group, its claims go with its connections).
        first.stop()
        fc.close()
        wait_until(lambda: failures or (projector_state(sc) == "consuming" and applied(sc) >= 100), 120,
                   "the second projector taking over")
        mark("second took over")

        # A third joins; the second is killed.
        third = projector()
        tc = third.client()
        wait_until(lambda: projector_state(tc) == "standby", 30, "the third projector standing by")
        second.signal(signal.SIGKILL)
        second.wait()
        sc.close()
        wait_until(lambda: failures or (projector_state(tc) == "consuming" and applied(tc) >= 100), 150,
                   "the third projector taking over")
        mark("third took over")
        stop.set()
        writing.join(timeout=60)
        self.assertFalse(failures, failures)

        expect_everything_applied_once(self, writer, third, tc)
        mark("verified")
        print(f"\n{writes[0]} writes; " + ", ".join(marks), flush=True)


if __name__ == "__main__":
    unittest.main()
