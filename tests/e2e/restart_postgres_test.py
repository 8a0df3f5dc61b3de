"""PostgreSQL stopped and started again under load (docs/api.md §3 `503 unavailable`, §5 invariants), and
`serve` started while PostgreSQL is down (docs/api.md §1: it waits for the database).

It stops the whole PostgreSQL server, so it runs on a server of its own: ctest's `e2e_postgres_restart`
starts one with scripts/pg-test-server.sh (which sets ORDERFLOW_TEST_PG and ORDERFLOW_TEST_PG_DATA), and the
discovery of test_*.py files does not pick it up. By hand:

    scripts/pg-test-server.sh python3 tests/e2e/restart_postgres_test.py -v
"""

import http.client
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

from harness import (API, Server, binary, create_account, create_product, new_pg_store, pg_base_url, place_order,
                     scan_events, section5_problems, settled_orders, stream_events, wait_caught_up, wait_until)

PG_BIN = "/usr/lib/postgresql/15/bin"
DOWN_SECONDS = 2.5
SLOW = 10.0  # no answer may take longer: an outage is answered, not waited out


def pg_ctl(*args):
    """pg_ctl on $ORDERFLOW_TEST_PG_DATA, as the cluster's owner (`postgres` when we are root)."""
    data = os.environ["ORDERFLOW_TEST_PG_DATA"]
    cmd = [f"{PG_BIN}/pg_ctl", "-D", data, *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {out.stdout}{out.stderr}")


def postmaster_options():
    """The options the server was started with (as `pg_ctl restart` would reuse them), without -D."""
    with open(os.path.join(os.environ["ORDERFLOW_TEST_PG_DATA"], "postmaster.opts")) as f:
        argv = shlex.split(f.read())[1:]
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "-D":
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return shlex.join(out)


def pg_stop():
    pg_ctl("stop", "-m", "fast", "-w")


def pg_start():
    pg_ctl("start", "-w", "-t", "60", "-l", os.path.join(os.path.dirname(os.environ["ORDERFLOW_TEST_PG_DATA"]),
                                                     "server.log"), "-o", postmaster_options())


@unittest.skipUnless(os.environ.get("ORDERFLOW_TEST_PG_DATA") and os.environ.get("ORDERFLOW_TEST_PG"),
                     "needs a PostgreSQL server of its own (scripts/pg-test-server.sh)")
class PostgresRestartUnderLoad(unittest.TestCase):
    def test_outage_answers_503_loses_no_acknowledged_write_and_recovers(self):
        srv = Server(store=new_pg_store())
        srv.start()
        self.addCleanup(srv.cleanup)
        c = srv.client()
        product = create_product(c, price=100, stock=1_000_000)
        customers = [create_account(c, balance=50_000) for _ in range(3)]

        answers = []  # (sent at, answered at, kind, correlation id, status, body json or None)
        lock = threading.Lock()
        stop = threading.Event()

        def worker(i):
            cl = srv.client()
            n = 0
            while not stop.is_set():
                customer = customers[(i + n) % len(customers)]
                corr = f"restart-{uuid.uuid4().hex}"
                if n % 2:
                    kind, path, body = "deposit", f"{API}/accounts/{customer}/deposit", {"amount_cents": 1}
                else:
                    kind, path = "order", f"{API}/orders"
                    body = {"customer_id": customer, "items": [{"product_id": product, "quantity": 1}]}
                sent = time.monotonic()
                try:
                    r = cl.post(path, body, headers={"X-Correlation-Id": corr})
                    status, payload = r.status, (r.json if r.body else None)
                    retry_after = r.header("Retry-After")
                except Exception as e:  # noqa: BLE001 - a hang or a dropped connection is a finding
                    status, payload, retry_after = None, repr(e), None
                    cl.close()
                    cl = srv.client()
                with lock:
                    answers.append((sent, time.monotonic(), kind, corr, status, payload, retry_after))
                n += 1
                if status == 503:
                    time.sleep(0.05)  # a client honouring Retry-After would wait longer
            cl.close()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            pg_stop()
            down_from = time.monotonic()
            time.sleep(DOWN_SECONDS)
            down_to = time.monotonic()
            pg_start()
            up_at = time.monotonic()
            # The server recovers by itself: new writes are accepted again.
            wait_until(lambda: any(a[0] > up_at and a[4] in (200, 202) for a in list(answers)), 20,
                       "a write accepted after PostgreSQL came back")
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join()

        problems = []
        during = [a for a in answers if a[0] >= down_from + 0.2 and a[1] <= down_to]
        if len(during) < 5:
            problems.append(f"only {len(during)} requests were answered while PostgreSQL was down")
        for sent, got, kind, corr, status, body, retry_after in answers:
            if got - sent > SLOW:
                problems.append(f"{kind} {corr} took {got - sent:.1f}s ({status})")
            ok = status in (200, 202) or (status == 503 and isinstance(body, dict)
                                          and body.get("error", {}).get("code") == "unavailable"
                                          and retry_after is not None)
            if not ok:
                problems.append(f"{kind} {corr}: {status} {body!r}")
        for a in during:
            if a[4] != 503:
                problems.append(f"{a[2]} {a[3]} answered {a[4]} while PostgreSQL was down")
        self.assertEqual(problems[:10], [], f"{len(problems)} problems")
        print(f"\n{len(answers)} requests: {sum(1 for a in answers if a[4] in (200, 202))} accepted, "
              f"{sum(1 for a in answers if a[4] == 503)} answered 503, {len(during)} while PostgreSQL was down; "
              f"slowest answer {max(a[1] - a[0] for a in answers):.2f}s", file=sys.stderr)

        # Quiet: projections and the saga have resumed and caught up.
        c = srv.client()
        wait_caught_up(c, timeout=60)
        self.assertEqual([p["name"] for p in c.get(f"{API}/admin/projections").json if p["status"] == "failed"], [])

        # Every acknowledged write is in the store; a write answered 503 may or may not be (its outcome was
        # unknown), so the ledger is checked against what the store holds.
        placed = [e["stream_id"][len("order-"):] for e in scan_events(c, category="order", type="OrderPlaced")]
        acked_orders = {a[5]["order_id"] for a in answers if a[2] == "order" and a[4] == 202}
        self.assertEqual(acked_orders - set(placed), set(), "acknowledged orders missing from the store")
        net_funds = {}
        for customer in customers:
            deposits = [e for e in stream_events(c, f"account-{customer}") if e["type"] == "FundsDeposited"]
            written = {e["metadata"].get("correlation_id") for e in deposits}
            acked = {a[3] for a in answers if a[2] == "deposit" and a[4] == 200 and a[3].startswith("restart-")
                     and a[5]["account_id"] == customer}
            self.assertEqual(acked - written, set(), f"acknowledged deposits to {customer} missing from the store")
            net_funds[customer] = sum(e["data"]["amount_cents"] for e in deposits)
        orders = settled_orders(c, placed, timeout=60)
        self.assertGreater(sum(1 for a in answers if a[0] > up_at and a[4] in (200, 202)), 0)
        wait_caught_up(c, timeout=30)
        self.assertEqual(section5_problems(c, {product: 1_000_000}, net_funds, orders), [])
        rc, out = srv.verify()
        self.assertEqual(rc, 0, out)
        self.assertTrue(srv.runs_saga(), srv.stderr())  # it lost the saga lease with its session, and took it back


WAITING = "PostgreSQL cannot be reached yet"


@unittest.skipUnless(os.environ.get("ORDERFLOW_TEST_PG_DATA") and os.environ.get("ORDERFLOW_TEST_PG"),
                     "needs a PostgreSQL server of its own (scripts/pg-test-server.sh)")
def answers_while_waiting(stderr):
    """The port `serve` answers on while it waits (from its log line), and its answers there to
    GET /healthz, GET /readyz and POST /api/v1/orders: (status, headers, JSON body) each."""
    m = re.search(r"answering /healthz .* url=http://127\.0\.0\.1:(\d+)", stderr)
    if not m:
        raise AssertionError(f"no line saying where serve answers while it waits: {stderr}")
    port = int(m.group(1))
    answers = []
    for method, path, body in (("GET", "/healthz", None), ("GET", "/readyz", None),
                               ("POST", API + "/orders", b'{"customer_id":"c","lines":[]}')):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            answers.append((r.status, dict(r.getheaders()), json.loads(r.read())))
        finally:
            conn.close()
    return port, answers


class ServeStartedBeforePostgres(unittest.TestCase):
    def test_serve_waits_for_postgresql_and_then_serves(self):
        store = new_pg_store()
        srv = Server(store=store)
        self.addCleanup(srv.cleanup)
        pg_stop()
        seen = {}

        def start_postgres_later():
            try:
                time.sleep(3.0)
                seen["alive"] = srv.proc is not None and srv.proc.poll() is None
                seen["stderr"] = srv.stderr(tail=None)
                seen["answers"] = answers_while_waiting(seen["stderr"])
            finally:
                pg_start()

        later = threading.Thread(target=start_postgres_later)
        later.start()
        try:
            srv.start()  # the serving line comes once PostgreSQL answers
        finally:
            later.join()
        self.assertTrue(seen["alive"], "serve ended while PostgreSQL was down")
        self.assertIn(WAITING, seen["stderr"])
        self.assertIn("Connection refused", seen["stderr"])
        # Meanwhile: alive for a liveness probe, not ready, and every other request 503 with Retry-After.
        port, answers = seen["answers"]
        health, ready, order = answers
        self.assertEqual(health[0], 200, health)
        self.assertEqual(health[2], {"status": "ok"})
        for status, headers, body in (ready, order):
            self.assertEqual(status, 503, body)
            self.assertEqual(headers.get("Retry-After"), "1")
            self.assertEqual(body["error"]["code"], "unavailable")
            self.assertIn("PostgreSQL cannot be reached yet", body["error"]["message"])
        store_check = ready[2]["error"]["details"]["checks"]["store"]
        self.assertFalse(store_check["readable"])
        self.assertIn("Connection refused", store_check["error"])
        self.assertEqual(srv.port, port, "the server took another port than the one answered on while waiting")
        self.assertIn("PostgreSQL reached", srv.stderr(tail=None))
        c = srv.client()
        product = create_product(c, price=100, stock=10)
        customer = create_account(c, balance=1000)
        orders = settled_orders(c, [place_order(c, customer, [(product, 1)])], timeout=30)
        self.assertEqual([o["status"] for o in orders.values()], ["CONFIRMED"])
        c.close()
        srv.stop()
        rc, out = srv.verify()
        self.assertEqual(rc, 0, out)

    def test_serve_stopped_while_it_waits_exits_0(self):
        store = new_pg_store()
        pg_stop()
        self.addCleanup(pg_start)
        with tempfile.TemporaryDirectory(prefix="orderflow-e2e-") as data, \
                tempfile.TemporaryFile() as err:
            proc = subprocess.Popen([binary(), "serve", "--listen", "127.0.0.1:0", "--data", data, "--store", store],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
            try:
                def stderr():
                    err.seek(0)
                    return err.read().decode(errors="replace")
                wait_until(lambda: WAITING in stderr(), 10, "the waiting line")
                self.assertIsNone(proc.poll())
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(timeout=5), 0, stderr())
                self.assertIn("stopped before PostgreSQL could be reached", stderr())
                self.assertEqual(proc.stdout.read(), b"")  # never served
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.stdout.close()

    def test_a_database_postgresql_refuses_ends_serve_at_once(self):
        base = urllib.parse.urlsplit(pg_base_url())
        for url, says in [(base._replace(path="/no_such_database").geturl(), "does not exist"),
                          (base._replace(netloc="no_such_role@" + base.netloc.split("@")[-1]).geturl(),
                           "does not exist")]:
            with tempfile.TemporaryDirectory(prefix="orderflow-e2e-") as data:
                started = time.monotonic()
                out = subprocess.run([binary(), "serve", "--listen", "127.0.0.1:0", "--data", data, "--store", url],
                                     stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
                self.assertEqual(out.returncode, 1, out.stderr)
                self.assertLess(time.monotonic() - started, 5)
                self.assertIn(says, out.stderr)
                self.assertNotIn(WAITING, out.stderr)


if __name__ == "__main__":
    unittest.main()
