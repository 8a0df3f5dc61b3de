"""docs/api.md §10 "A saga fed from the bus", as an operator runs it: on one PostgreSQL store, a process with
the command, query, admin, projector and relay roles, and a saga process fed from the bus (`--roles saga
--bus`, no relay): NATS JetStream, and Kafka (librdkafka's mock cluster, build/tests/kafka_mock_cluster, its
topics created on first use). Orders placed reach a final state through it; the saga process killed with SIGKILL
mid-way (once it folded a share of the messages, on a count) and started again resumes from its
checkpoint: every order ends final (the declined ones compensated and cancelled), the invariants hold and
no reserve, release, charge or refund is recorded twice. Two saga processes on NATS, one holding the saga
lease: the holder killed with SIGKILL while orders keep coming, the other takes over within seconds, with
the same outcome and `orderflow verify` finding the read models equal to the log."""

import collections
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import API, REPO_ROOT, Server, create_account, create_product, new_pg_store, on_postgres, place_order, \
    scan_events, settled_orders, wait_until
from test_bus import needs_nats, started_nats


def saga_bus(c):
    """checks.saga_bus of the process's /readyz (ready or not)."""
    r = c.get("/readyz")
    checks = r.json.get("checks") if r.status == 200 else r.json.get("error", {}).get("details", {}).get("checks")
    return (checks or {}).get("saga_bus")


def publish_raw(port, subject, headers, body):
    """One message with `headers` published to `subject` on the nats-server at `port` with the plain NATS
    protocol (HPUB; answered once the server has it, by a PONG): what a broken producer could put on the
    relay's subjects."""
    head = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()  # INFO
        s.sendall(b'CONNECT {"verbose":false,"headers":true}\r\n' +
                  f"HPUB {subject} {len(head)} {len(head) + len(body)}\r\n{head}{body}\r\nPING\r\n".encode())
        while not f.readline().startswith(b"PONG"):
            pass


def started_kafka(test):
    """The 3-broker mock cluster beside the orderflow binary (tests/bus/kafka_mock_cluster.cc), stopped after
    `test`: its kafka:// URL."""
    build = os.path.dirname(os.path.abspath(os.environ.get("ORDERFLOW_BIN") or os.path.join(REPO_ROOT, "build", "x")))
    path = os.path.join(build, "tests", "kafka_mock_cluster")
    if not os.path.exists(path):
        raise unittest.SkipTest(f"{path} is not built")
    proc = subprocess.Popen([path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def stop():
        proc.terminate()
        proc.wait(timeout=20)

    test.addCleanup(stop)
    return "kafka://" + proc.stdout.readline().strip()


@unittest.skipUnless(on_postgres(), "a saga process beside a command process needs PostgreSQL "
                                    "(ORDERFLOW_E2E_STORE=postgres)")
class SagaFedFromTheBus(unittest.TestCase):
    @needs_nats
    def test_a_saga_process_on_nats_killed_mid_way_resumes_and_every_order_ends_final(self):
        self.killed_case(f"nats://127.0.0.1:{started_nats(self).port}")

    def test_a_saga_process_on_kafka_killed_mid_way_resumes_and_every_order_ends_final(self):
        # The mock cluster creates the topics on the relay's first publish and gives a new group member its
        # partitions slowly (a killed member's only after its 10 s session): the store bridges meanwhile (§10),
        # so here most or all of what the saga folds may come from the store; what this case proves is the
        # kill and restart against a Kafka consumer group (orders settle, invariants, no step twice).
        self.killed_case(started_kafka(self))

    @needs_nats
    def test_two_saga_processes_on_nats_the_lease_holder_killed_mid_load_the_other_takes_over(self):
        url = f"nats://127.0.0.1:{started_nats(self).port}"
        store = new_pg_store()
        bus = ["--bus", url]
        front = Server(store=store, extra_args=["--roles", "command,query,admin,projector,relay", *bus])
        self.addCleanup(front.cleanup)
        front.start()
        sagas = []
        for _ in range(2):
            srv = Server(store=store, extra_args=["--roles", "saga", *bus])
            self.addCleanup(srv.cleanup)
            sagas.append(srv.start())
        holder = wait_until(lambda: [p for p in sagas if p.runs_saga()], 30, "one saga process holding the lease")
        self.assertEqual(len(holder), 1, "exactly one saga process runs the saga")
        holder = holder[0]
        standby = sagas[1] if holder is sagas[0] else sagas[0]
        c, hs, ss = front.client(), holder.client(), standby.client()
        self.assertEqual(saga_bus(ss)["state"], "standby")
        products = [create_product(c, stock=1000) for _ in range(4)]
        rich = [create_account(c, balance=10_000_000) for _ in range(4)]
        poor = create_account(c)
        orders, stop_placing, placed_after_kill = [], threading.Event(), threading.Event()
        killed_at = []

        def placer():  # one order every ~20 ms until told, at least 40 after the kill
            pc = front.client()
            i = 0
            while not stop_placing.is_set() and i < 600:
                orders.append(place_order(pc, poor if i % 10 == 9 else rich[i % 4], [(products[i % 4], 1 + i % 2)]))
                i += 1
                if killed_at and len(orders) >= killed_at[0] + 40:
                    placed_after_kill.set()
                time.sleep(0.02)
            pc.close()

        t = threading.Thread(target=placer, daemon=True)
        t.start()
        try:
            # Killed mid-load, on a count: once the holder folded a share of the events (about 9 an order).
            wait_until(lambda: (b := saga_bus(hs))["folded"] + b["from_store"] >= 300, 120,
                       "the holder folded a share of the events")
            killed_at.append(len(orders))
            holder.signal(signal.SIGKILL)
            kill_time = time.monotonic()
            holder.wait()
            hs.close()
            # Its session ends with it, and the advisory lock with it: the standby's next check (500 ms) takes it.
            wait_until(standby.runs_saga, 10, "the standby taking the saga lease over")
            took_over = time.monotonic() - kill_time
            wait_until(lambda: saga_bus(ss)["state"] in ("catching up", "consuming"), 10, "the standby runs the saga")
            self.assertTrue(placed_after_kill.wait(120), "orders placed after the kill")
        finally:
            stop_placing.set()
            t.join(60)
        final = settled_orders(c, orders, timeout=240)
        statuses = collections.Counter(o["status"] for o in final.values())
        self.assertEqual(set(statuses), {"CONFIRMED", "CANCELLED"}, statuses)
        self.assertGreaterEqual(statuses["CANCELLED"], len(orders) // 10, "every tenth order, declined, compensated")
        steps = self.clean_steps(c)
        # A cancelled order is compensated: what was reserved for it released, what was charged refunded.
        for o, body in final.items():
            if body["status"] != "CANCELLED":
                continue
            for done, undone in (("StockReserved", "StockReleased"), ("AccountCharged", "AccountRefunded")):
                did = {k[2] for k in steps if k[0] == done and k[1] == o}
                self.assertEqual(did, {k[2] for k in steps if k[0] == undone and k[1] == o}, f"{o}: {done} undone")
        b = saga_bus(ss)
        self.assertEqual(b["state"], "consuming")
        self.assertEqual(b["dead_lettered"], 0)
        rc, out = front.verify()
        self.assertEqual(rc, 0, out)
        print(f"\nnats: holder killed after {killed_at[0]} of {len(orders)} orders placed; the standby took over "
              f"in {took_over:.1f} s; {b['from_store']} events from the store, {b['folded']} folded from the bus",
              flush=True)
        for cl in (c, ss):
            cl.close()
        standby.stop()
        front.stop()

    @needs_nats
    def test_a_message_the_saga_cannot_decode_is_listed_and_retried_over_http(self):
        nats = started_nats(self)
        bus = ["--bus", f"nats://127.0.0.1:{nats.port}"]
        store = new_pg_store()
        front = Server(store=store, extra_args=["--roles", "command,query,admin,projector,relay", *bus])
        self.addCleanup(front.cleanup)
        front.start()
        saga = Server(store=store, extra_args=["--roles", "saga,admin", *bus])
        self.addCleanup(saga.cleanup)
        saga.start()
        c, s = front.client(), saga.client()
        account = create_account(c, balance=1000)
        wait_until(lambda: c.get(f"{API}/admin/relay").json["lag"] == 0, 60, "the relay published the account")
        e = c.get(f"{API}/admin/events?from_position=1&limit=1").json["events"][0]
        # The account's first event again, its body broken: the saga dead-letters it, its event folded already.
        publish_raw(nats.port, "orderflow.events.account",
                    {"orderflow-event-id": e["event_id"], "orderflow-stream-id": e["stream_id"],
                     "orderflow-type": e["type"], "orderflow-version": e["version"],
                     "orderflow-position": e["position"], "orderflow-previous-position": e["position"] - 1}, "{not json")
        letters = wait_until(lambda: s.get(f"{API}/admin/dead-letters").json["dead_letters"], 60,
                             "the dead letter listed")
        self.assertEqual(len(letters), 1, letters)
        d = letters[0]
        self.assertEqual((d["source"], d["consumer"], d["subject"]), ("bus", "orderflow-saga", "orderflow.events.account"))
        self.assertEqual((d["stream_id"], d["version"], d["event_id"], d["position"]),
                         (f"account-{account}", e["version"], e["event_id"], e["position"]))
        self.assertTrue(d["reason"])
        self.assertIsNone(d["retried_at"])
        self.assertEqual(c.get(f"{API}/admin/dead-letters").json["dead_letters"], [],
                         "a process that runs no bus-fed saga lists none of its dead letters")
        r = s.post(f"{API}/admin/dead-letters/{d['dead_letter_id']}/retry", {})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["source"], r.json["stream_id"], r.json["position"], r.json["events"]),
                         ("bus", f"account-{account}", e["position"], 0), "folded already: nothing to fold again")
        r = s.post(f"{API}/admin/dead-letters/{d['dead_letter_id']}/retry", {})
        self.assertEqual((r.status, r.json["error"]["code"]), (409, "invalid_state"), r)
        self.assertIsNotNone(s.get(f"{API}/admin/dead-letters").json["dead_letters"][0]["retried_at"])
        for cl in (c, s):
            cl.close()
        saga.stop()
        front.stop()

    def clean_steps(self, c):
        """The invariants hold (at a quiet moment: a cancelled order's compensation, its stock released, may
        still be on its way when the order reads CANCELLED) and no reserve, release, charge or refund is
        recorded twice: those steps counted by (type, order, stream)."""
        def violations():
            r = c.get(f"{API}/admin/invariants")
            self.assertEqual(r.status, 200, r)
            return r.json["violations"]

        try:
            wait_until(lambda: not violations(), 60, "the invariants hold")
        except AssertionError:
            self.assertEqual(violations(), [])
        steps = collections.Counter()
        for e in scan_events(c, limit=1000):
            if e["type"] in ("StockReserved", "StockReleased", "AccountCharged", "AccountRefunded"):
                steps[(e["type"], e["data"]["order_id"], e["stream_id"])] += 1
        self.assertTrue(steps)
        self.assertEqual([k for k, n in steps.items() if n > 1], [], "no step recorded twice")
        return steps

    def killed_case(self, url):
        store = new_pg_store()
        bus = ["--bus", url]
        front = Server(store=store, extra_args=["--roles", "command,query,admin,projector,relay", *bus])
        self.addCleanup(front.cleanup)
        front.start()

        def saga_process():
            srv = Server(store=store, extra_args=["--roles", "saga", *bus])
            self.addCleanup(srv.cleanup)
            return srv.start()

        saga = saga_process()
        c, s = front.client(), saga.client()
        products = [create_product(c, stock=1000) for _ in range(4)]
        rich = [create_account(c, balance=10_000_000) for _ in range(4)]
        poor = create_account(c)

        def place(n):
            return [place_order(c, poor if i % 10 == 9 else rich[i % 4], [(products[i % 4], 1 + i % 2)])
                    for i in range(n)]

        orders = place(80)
        # About 9 events an order: killed once it folded a quarter of them (from the bus, or from the store
        # while a Kafka group waits for its topics and its first assignment).
        wait_until(lambda: (b := saga_bus(s))["folded"] + b["from_store"] >= 180, 120,
                   "the saga folded a share of the events")
        saga.signal(signal.SIGKILL)
        saga.wait()
        s.close()
        final_at_kill = sum(1 for o in orders if c.get(f"{API}/orders/{o}?consistency=strong").json["status"]
                            in ("CONFIRMED", "CANCELLED"))
        orders += place(40)  # while no saga runs
        saga = saga_process()
        s = saga.client()
        final = settled_orders(c, orders, timeout=240)
        # The bus resumes too (Kafka: once the group gave the new member its partitions; the store bridged).
        wait_until(lambda: saga_bus(s)["state"] == "consuming", 240, "the restarted saga consumes")
        statuses = collections.Counter(o["status"] for o in final.values())
        self.assertEqual(set(statuses), {"CONFIRMED", "CANCELLED"}, statuses)
        self.assertEqual(statuses["CANCELLED"], 12, "every tenth order, declined, compensated")
        self.clean_steps(c)
        b = saga_bus(s)
        self.assertEqual(b["state"], "consuming")
        self.assertGreater(b["from_store"], 0, "the restart folded the store from its checkpoint first")
        self.assertEqual(b["dead_lettered"], 0)
        print(f"\n{url.split(':')[0]}: killed with {final_at_kill} of 80 orders final; restarted: {b['from_store']} "
              f"events from the store, {b['folded']} folded from the bus", flush=True)
        for cl in (c, s):
            cl.close()
        saga.stop()
        front.stop()


if __name__ == "__main__":
    unittest.main()
