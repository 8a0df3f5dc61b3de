"""--store postgres://: the read models live in PostgreSQL, shared by every process on the database.
One process folds each projection; another serves reads at once and takes over when the first dies.
Skipped without ORDERFLOW_TEST_PG (scripts/pg-test-server.sh sets it)."""

import os
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

from harness import API, Client, Server, binary, create_account, create_product, psql, raw_request

PG = os.environ.get("ORDERFLOW_TEST_PG")


@unittest.skipUnless(PG, "ORDERFLOW_TEST_PG is not set (scripts/pg-test-server.sh sets it)")
class PostgresReadModels(unittest.TestCase):
    def setUp(self):
        db = "e2e_" + uuid.uuid4().hex[:12]
        psql(f"CREATE DATABASE {db}")
        self.addCleanup(psql, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        self.url = PG.rsplit("/", 1)[0] + "/" + db

    def serve(self, *roles):
        args = ["--roles", ",".join(roles)] if roles else []
        server = Server(extra_args=args, store=self.url).start()
        self.addCleanup(server.cleanup)
        client = server.client()
        self.addCleanup(client.close)
        return server, client

    def statuses(self, c):
        return {p["name"]: p["status"] for p in c.get(f"{API}/admin/projections").json}

    def wait_statuses(self, c, want, timeout=10.0):
        deadline = time.monotonic() + timeout
        while set(self.statuses(c).values()) != {want} and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(set(self.statuses(c).values()), {want})

    def cli(self, *args):
        with tempfile.TemporaryDirectory() as cwd:
            return subprocess.run([binary(), *args, "--store", self.url], cwd=cwd, capture_output=True, text=True,
                                  timeout=60)

    def test_listings_held_by_a_locked_table_leave_the_io_threads_answering(self):
        # A lock someone else holds on a read model's table (a migration, an operator's
        # session) holds every listing of it; those wait on the blocking threads
        # (--blocking-threads), more of them than there are io threads, and health checks and
        # commands are still answered at once.
        server, c = self.serve()
        aid = create_account(c, balance=0)
        create_product(c, stock=5)
        self.wait_statuses(c, "running")
        tables = psql("SELECT string_agg(tablename, ', ') FROM pg_tables WHERE tablename LIKE 'products%'", self.url)
        self.assertTrue(tables)
        locker = subprocess.Popen(["psql", "-X", "-q", "-d", self.url, "-c",
                                   f"BEGIN; LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(locker.wait)
        deadline = time.monotonic() + 10
        while psql("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation IS NOT NULL",
                   self.url) == "0" and time.monotonic() < deadline:
            time.sleep(0.05)
        held = []
        for _ in range(4):  # twice the io threads
            s = server.raw_socket(timeout=20)
            s.sendall(raw_request("GET", f"{API}/products"))
            held.append(s)
            self.addCleanup(s.close)
        time.sleep(0.5)
        quick = Client(server.port, timeout=2)
        self.addCleanup(quick.close)
        self.assertEqual(quick.get("/healthz").status, 200)
        self.assertEqual(quick.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 5}).status, 200)
        locker.wait()
        for s in held:  # and each listing is answered once the lock goes
            self.assertTrue(s.recv(64).startswith(b"HTTP/1.1 200"))

    def test_a_second_process_serves_at_once_and_takes_over(self):
        first, c1 = self.serve()
        aid = create_account(c1, balance=500)
        create_product(c1, stock=5)
        self.wait_statuses(c1, "running")

        second, c2 = self.serve("command", "query", "admin", "projector")  # one saga is enough
        self.assertEqual(c2.get(f"{API}/accounts/{aid}").json["balance_cents"], 500)
        self.wait_statuses(c2, "following")
        pos = c2.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 5}).json["position"]
        r = c2.get(f"{API}/accounts/{aid}?min_position={pos}&wait_ms=5000")
        self.assertEqual(r.json["balance_cents"], 505, r)
        self.assertEqual({p["name"]: p["lag"] for p in c2.get(f"{API}/admin/projections").json}["accounts"], 0)
        self.assertEqual(c2.post(f"{API}/admin/projections/accounts/rebuild").status, 409)

        first.kill()  # its sessions end, and its claims with them
        self.wait_statuses(c2, "running")
        pos = c2.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 7}).json["position"]
        self.assertEqual(c2.get(f"{API}/accounts/{aid}?min_position={pos}").json["balance_cents"], 512)
        self.assertEqual(c2.post(f"{API}/admin/projections/accounts/rebuild").status, 202)
        self.wait_statuses(c2, "running")
        self.assertEqual(c2.get(f"{API}/accounts/{aid}").json["balance_cents"], 512)
        second.stop()

        rebuilt = self.cli("rebuild", "accounts")
        self.assertEqual(rebuilt.returncode, 0, rebuilt.stderr)
        verified = self.cli("verify")
        self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)
        self.assertIn("no differences", verified.stdout)

    def test_verify_beside_writers_compares_each_document_with_its_stream_at_the_version_it_shows(self):
        # Writers go on while verify runs: a document may stand past the log's position verify
        # caught the read models up to, or its stream may move between verify's fold and its read of
        # the document. Neither is a difference; a document behind that position would be.
        server, c = self.serve()
        accounts = [create_account(c, balance=1000) for _ in range(4)]
        self.wait_statuses(c, "running")
        stop = threading.Event()
        answered = []

        def deposits():
            client = server.client()
            try:
                while not stop.is_set():
                    for aid in accounts:
                        answered.append(client.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1}).status)
            finally:
                client.close()

        writers = [threading.Thread(target=deposits) for _ in range(2)]
        for w in writers:
            w.start()
        try:
            for _ in range(3):
                verified = self.cli("verify")
                self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)
                self.assertIn("no differences", verified.stdout)
        finally:
            stop.set()
            for w in writers:
                w.join()
        self.assertGreater(len(answered), 100)
        self.assertEqual(set(answered), {200})

    def test_verify_gives_up_on_read_models_another_process_stopped_folding(self):
        writer, c1 = self.serve("command", "query", "admin", "saga")
        projector, c2 = self.serve("projector", "query", "admin")
        aid = create_account(c1, balance=0)
        self.wait_statuses(c2, "running")
        os.kill(projector.proc.pid, signal.SIGSTOP)  # its sessions, and its claims, stay
        self.addCleanup(os.kill, projector.proc.pid, signal.SIGCONT)
        for _ in range(3):
            self.assertEqual(c1.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 5}).status, 200)

        started = time.monotonic()
        stuck = self.cli("verify", "--wait", "2")
        self.assertEqual(stuck.returncode, 1, stuck.stdout + stuck.stderr)
        self.assertLess(time.monotonic() - started, 30)
        self.assertIn("the read models stood still for 2 s short of the log's position", stuck.stderr)
        self.assertRegex(stuck.stderr, r"accounts at position \d+ \(following: another process folds it\)")

        os.kill(projector.proc.pid, signal.SIGCONT)
        verified = self.cli("verify", "--wait", "2")
        self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)
        self.assertIn("no differences", verified.stdout)
        self.assertEqual(self.cli("verify", "--wait", "0").returncode, 2)


if __name__ == "__main__":
    unittest.main()
