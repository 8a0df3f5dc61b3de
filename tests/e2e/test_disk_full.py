"""Disk full and freed (issue #11 point 3), on the embedded store: the data directory on a 40 MiB tmpfs.

While the disk is full, writes answer 503 unavailable and /readyz 503 with the reason; once space is
freed, writes, projections and /readyz come back by themselves within a few seconds, stderr tells the
failure and the recovery, nothing acknowledged is lost, and `orderflow verify` passes after a SIGTERM;
on a disk still full it passes too, read-only, writing nothing.
A server started on a full disk either serves reads (writes 503) or exits 1 with a sentence saying
why; either way the store stays consistent.

Needs root (mount -t tmpfs); skipped with a message otherwise, and on PostgreSQL (the store is not on
the data directory there).
"""

import errno
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import API, Server, create_account, on_postgres, wait_quiet, wait_until

RECOVERY_SECONDS = 8.0  # "within a few seconds": the pipeline probes at most every 2 s


def fill(path):
    """Writes `path` until the file system is full; returns the bytes written."""
    written = 0
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return written
                chunk = chunk[: len(chunk) // 16 or 1]


class DiskFull(unittest.TestCase):
    def setUp(self):
        if on_postgres():
            self.skipTest("the PostgreSQL store does not live in the data directory")
        self.mount = tempfile.mkdtemp(prefix="orderflow-e2e-full-")
        self.addCleanup(shutil.rmtree, self.mount, True)
        try:
            out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", self.mount],
                                 capture_output=True, text=True)
            why = out.stderr.strip() if out.returncode else None
        except OSError as e:
            why = str(e)
        if why is not None:
            self.skipTest(f"mounting a tmpfs is not permitted here (it needs root): {why}")
        self.addCleanup(subprocess.run, ["umount", "-l", self.mount], capture_output=True)
        self.data = os.path.join(self.mount, "data")
        os.mkdir(self.data)
        self.filler = os.path.join(self.mount, "filler")
        self.deposited = 0  # acknowledged deposits to self.account

    def start(self, extra_args=()):
        srv = Server(data_dir=self.data, extra_args=extra_args)
        srv.start()
        self.addCleanup(srv.cleanup)
        return srv

    def client(self, srv):
        c = srv.client()
        self.addCleanup(c.close)
        return c

    def deposit(self, c, amount=100):
        r = c.post(f"{API}/accounts/{self.account}/deposit", {"amount_cents": amount})
        if r.status == 200:
            self.deposited += amount
        elif r.status != 503 or r.json["error"]["code"] != "unavailable":
            self.fail(f"a deposit answered {r}")
        return r.status

    def write_until_refused(self, c, limit=20000):
        for _ in range(limit):
            if self.deposit(c) == 503:
                return
        self.fail(f"{limit} deposits on a full disk were all accepted")

    def assert_balance(self, c):
        r = c.get(f"{API}/accounts/{self.account}?consistency=strong")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["balance_cents"], self.deposited, "acknowledged deposits lost or doubled")

    def assert_recovers(self, srv, c):
        """After space is freed: writes, /readyz and the projections come back by themselves."""
        freed = time.monotonic()
        wait_until(lambda: self.deposit(c) == 200, RECOVERY_SECONDS, "a write accepted after space was freed",
                   interval=0.1)
        took = time.monotonic() - freed
        wait_until(lambda: c.get("/readyz").status == 200, RECOVERY_SECONDS, "/readyz ready again")
        for _ in range(20):
            self.assertEqual(self.deposit(c), 200)
        quiet = wait_quiet(c)

        def projections_caught_up():
            r = c.get(f"{API}/admin/projections")
            return r.status == 200 and all(p["status"] == "running" and p["position"] >= quiet
                                           and p["last_error"] is None for p in r.json)
        wait_until(projections_caught_up, RECOVERY_SECONDS, "every projection running and caught up")
        self.assert_balance(c)
        return took

    def start_with_deposits(self, extra_args=()):
        srv = self.start(extra_args)
        c = self.client(srv)
        self.account = create_account(c)
        for _ in range(20):
            self.assertEqual(self.deposit(c), 200)
        return srv, c

    def test_writes_resume_once_space_is_freed(self):
        srv, c = self.start_with_deposits()

        fill(self.filler)
        self.write_until_refused(c)
        # While full: writes are refused (one may get through now and then, in space the
        # files already hold), /readyz says why, reads still answer.
        r = c.get("/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertIn("full", r.json["error"]["details"]["reason"], r)
        self.assertFalse(r.json["error"]["details"]["checks"]["store"]["writable"], r)
        refused = sum(self.deposit(c) == 503 for _ in range(20))
        self.assertGreater(refused, 10, "writes on a full disk were mostly accepted")
        r = c.get(f"{API}/accounts/{self.account}")
        self.assertEqual(r.status, 200, r)

        os.remove(self.filler)
        took = self.assert_recovers(srv, c)
        self.assertLess(took, RECOVERY_SECONDS)
        err = srv.stderr(None)
        self.assertIn("event store: write failed", err)
        self.assertIn("event store: write works again", err)

        srv.stop()
        rc, out = srv.verify()
        self.assertEqual(rc, 0, out)

    def test_json_log_tells_the_failure_once_and_the_recovery_with_the_count(self):
        srv, c = self.start_with_deposits(["--log-format", "json"])
        fill(self.filler)
        self.write_until_refused(c)

        def write_failures():
            for line in c.get("/metrics").body.decode().splitlines():
                if line.startswith('orderflow_background_failures_total{component="event store",failure="write"}'):
                    return int(line.split()[-1])
            return 0
        # The pipeline's probe writes fail too (after 100, 200, 400 ms, ...).
        wait_until(lambda: write_failures() >= 3, RECOVERY_SECONDS, "three failed writes")
        os.remove(self.filler)
        self.assert_recovers(srv, c)
        failures = write_failures()
        srv.stop()

        lines = [json.loads(l) for l in srv.stderr(None).splitlines()]  # every line is one JSON object
        writes = [l for l in lines if l["component"] == "event store" and l.get("failure") == "write"]
        self.assertEqual(len(writes), 2, writes)  # within a minute: told once, and once recovered
        failed, again = writes
        self.assertEqual((failed["level"], failed["count"], failed["suppressed"]), ("error", 1, 0), failed)
        self.assertIn("write failed", failed["message"])
        self.assertEqual((again["level"], again["count"], again["suppressed"]), ("info", failures, failures - 1),
                         again)
        self.assertIn("write works again", again["message"])

    def test_verify_on_a_full_disk_checks_the_store_without_writing(self):
        """A server stopped while the disk is full leaves a store verify cannot write to (not even
        the header's format): verify says so, checks it read-only (the read models where they
        stand) and changes no byte of the databases or their WALs."""
        srv, c = self.start_with_deposits()
        fill(self.filler)
        self.write_until_refused(c)
        srv.stop()

        def contents():
            out = {}
            for name in ("events.db", "events.db-wal", "readmodels.db", "readmodels.db-wal"):
                path = os.path.join(self.data, name)
                if os.path.exists(path):
                    with open(path, "rb") as f:
                        out[name] = f.read()
            return out
        before = contents()
        rc, out = srv.verify()
        self.assertEqual(rc, 0, out)
        self.assertIn("the store cannot be written", out)
        self.assertIn("verified read-only, the read models where they stand", out)
        self.assertRegex(out, r"read models compared where they stand: orders at \d+")
        self.assertRegex(out, r"chain +ok")
        self.assertRegex(out, r"accounts +ok")
        self.assertTrue(before == contents(), "verify on a full disk changed the store's files")

        os.remove(self.filler)
        again = self.start()
        self.assert_balance(self.client(again))
        again.stop()
        rc, out = again.verify()
        self.assertEqual(rc, 0, out)
        self.assertNotIn("read-only", out)

    def test_restart_on_a_full_disk_stays_consistent(self):
        srv, _ = self.start_with_deposits()
        srv.stop()

        fill(self.filler)
        again = Server(data_dir=self.data)
        try:
            again.start()
        except RuntimeError as e:  # it may refuse to start: exit 1, with a sentence
            self.assertIn("exited (1)", str(e))
            self.assertRegex(str(e), r"orderflow: .*(No space left on device|database or disk is full)")
            again.cleanup()
        else:
            self.addCleanup(again.cleanup)
            c = self.client(again)
            r = c.get(f"{API}/accounts/{self.account}")
            self.assertEqual(r.status, 200, r)
            self.write_until_refused(c)
            os.remove(self.filler)
            self.assert_recovers(again, c)
            again.stop()
        if os.path.exists(self.filler):
            os.remove(self.filler)

        rc, out = Server(data_dir=self.data).verify()
        self.assertEqual(rc, 0, out)
        final = self.start()
        self.assert_balance(self.client(final))
        final.stop()


if __name__ == "__main__":
    unittest.main()
