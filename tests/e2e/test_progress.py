"""Progress of long work (docs/api.md §1): drawn on stderr when it is a terminal, nothing when it is
not (a pipe, as here and under systemd)."""

import os
import pty
import select
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

from harness import Server, binary, create_account, create_product, place_order, settled_orders

PROGRESS_MARK = "\r\x1b[K"


def on_terminal(args, timeout=120):
    """Runs the binary with a pseudo-terminal as stdin, stdout and stderr: (exit code, all it wrote)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([binary(), *args], stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=10), out.decode(errors="replace")


def write_second_format_store(path, count):
    """An embedded store of the second format (before the hash chain), as an older orderflow wrote it
    (tests/store/sqlite: AFileOfTheSecondFormatIsMigratedAtOpen)."""
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE events (position INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, stream_id TEXT NOT NULL, "
        "version INTEGER NOT NULL, type TEXT NOT NULL, schema_version INTEGER NOT NULL, data TEXT NOT NULL, "
        "metadata TEXT NOT NULL, recorded_at INTEGER NOT NULL) STRICT;"
        "CREATE TABLE stream_index (stream_id TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL, "
        "PRIMARY KEY (stream_id, version)) WITHOUT ROWID, STRICT;"
        "CREATE TABLE stream_index_state (id INTEGER PRIMARY KEY CHECK (id = 1), indexed_through INTEGER NOT NULL) "
        "STRICT; INSERT INTO stream_index_state VALUES (1, 0);"
        "CREATE TABLE snapshots (stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL, schema_version INTEGER NOT NULL, "
        "state TEXT NOT NULL) STRICT;"
        "CREATE TABLE checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL) STRICT;"
        "CREATE TABLE idempotency (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL, "
        "response TEXT NOT NULL, created_at INTEGER NOT NULL, position INTEGER NOT NULL) STRICT;")
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, 'BenchEvent', 1, '{}', '{}', ?)",
                   ((i, f"e{i}", f"bench-{i % 7}", (i - 1) // 7, 1000 + i) for i in range(1, count + 1)))
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()


class Progress(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="orderflow-e2e-progress-")
        cls.data = os.path.join(cls.dir, "data")
        os.makedirs(cls.data)
        with Server(data_dir=cls.data) as srv:
            c = srv.client()
            pid = create_product(c, stock=1000)
            aid = create_account(c, balance=1_000_000)
            settled_orders(c, [place_order(c, aid, [(pid, 1)]) for _ in range(20)])  # verify finds none PENDING
            c.close()
        cls.store = srv.store_args() or ["--data", cls.data]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_a_terminal_sees_events_done_of_the_total(self):
        rc, out = on_terminal(["bench", "append", "--events", "30000", "--writers", "16",
                               "--data", os.path.join(self.dir, "bench")])
        self.assertEqual(rc, 0, out)
        self.assertIn(PROGRESS_MARK + "bench append: ", out)
        self.assertIn("/30000 events (", out)
        # And the pipeline's batches over the timed run (es/append_metrics.h).
        self.assertRegex(out, r'"batches":[1-9]\d*,"appends_per_batch":[\d.]+,"batch_write_us":\d+,"batch_sync_us":\d+')

    def test_rebuild_on_a_terminal_draws_then_clears_its_line(self):
        rc, out = on_terminal(["rebuild", "orders", *self.store])
        self.assertEqual(rc, 0, out)
        self.assertIn(PROGRESS_MARK + "rebuild orders: ", out)
        # The result comes after the cleared line, on a line of its own.
        self.assertRegex(out, r"\r\x1b\[Krebuilt orders through position \d+")

    def test_migrate_on_a_terminal_draws_the_migration_of_an_older_file(self):
        data = os.path.join(self.dir, "format2")
        os.makedirs(data)
        write_second_format_store(os.path.join(data, "events.db"), 20000)
        rc, out = on_terminal(["migrate", "--data", data])
        self.assertEqual(rc, 0, out)
        self.assertIn(PROGRESS_MARK + "migrate: ", out)
        self.assertIn("/20000 events (", out)

    def test_nothing_is_drawn_into_a_pipe(self):
        for args in (["rebuild", "orders", *self.store], ["verify", *self.store], ["migrate", *self.store]):
            out = subprocess.run([binary(), *args], capture_output=True, text=True, timeout=120)
            self.assertEqual(out.returncode, 0, out)
            self.assertNotIn("\r", out.stderr + out.stdout, args)
            self.assertNotIn("events (", out.stderr, args)


if __name__ == "__main__":
    unittest.main()
