"""Issue #11 point 4: a byte of events.db changed while the server is stopped is noticed. Reads of the changed
event answer a JSON error naming its position (never a broken body), a changed newest event stops the server
from starting, and `orderflow verify` exits 1 naming the position. Embedded store only (it changes the file)."""

import concurrent.futures
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import (API, ErrorAsserts, Server, binary, create_account, create_product, new_id, on_postgres,
                     scan_events)

# The server checks this many of the newest events at start (SqliteEventStoreOptions::verify_at_open).
VERIFIED_AT_START = 4096


def flip_quote_before(path, marker):
    """Turns the '"' before the only occurrence of `marker` in the file into '!' (one bit changed): the event's
    data is no longer JSON, as in the issue."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    at = data.find(marker)
    assert at > 0 and data.find(marker, at + 1) < 0, f"{marker!r} is not in {path} exactly once"
    assert data[at - 1] == ord('"'), data[at - 8:at + len(marker)]
    data[at - 1] ^= 0x03
    with open(path, "wb") as f:
        f.write(data)


@unittest.skipIf(on_postgres(), "changes the embedded store's file")
class Corruption(ErrorAsserts, unittest.TestCase):
    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="orderflow-e2e-corrupt-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)
        self.db = os.path.join(self.data_dir, "events.db")

    def marked_product(self, s, events_after):
        """Creates a product with a unique name, then `events_after` more events; answers (name, its position)."""
        c = s.client()
        name = "Marked " + new_id("name")
        pid = create_product(c, name=name)
        aid = create_account(c)

        def deposit(_):
            client = s.client()
            try:
                r = client.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1})
                self.assertEqual(r.status, 200, r)
            finally:
                client.close()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(deposit, range(events_after)))
        created = [e for e in scan_events(c, category="product") if e["stream_id"] == f"product-{pid}"]
        c.close()
        return name, created[0]["position"]

    def verify(self):
        with tempfile.TemporaryDirectory(prefix="orderflow-e2e-verify-") as d:
            shutil.copy(self.db, d)  # the read models of a fresh dir: verify looks at the log first
            out = subprocess.run([binary(), "verify", "--data", d], capture_output=True, text=True, timeout=300, cwd=d)
        return out.returncode, out.stdout + out.stderr

    def test_a_changed_event_is_a_json_error_naming_its_position_and_verify_exits_1(self):
        s = Server(data_dir=self.data_dir).start()
        try:
            name, position = self.marked_product(s, VERIFIED_AT_START + 100)
            self.assertEqual(s.stop(), 0)
            rc, out = self.verify()
            self.assertEqual(rc, 0, out)
            flip_quote_before(self.db, name.encode())

            s = Server(data_dir=self.data_dir).start()
            c = s.client()
            r = c.get(f"/api/v1/admin/events?from_position=1&limit=1000")
            self.assertError(r, 500, "internal")
            self.assertIn(f"position {position} ", r.json["error"]["message"])
            r = c.get(f"/api/v1/admin/events?from_position={position + 1}&limit=10")
            self.assertEqual(r.status, 200, r)
            json.loads(r.body)
            s.stop(expect_rc=None)
        finally:
            s.cleanup()
        rc, out = self.verify()
        self.assertEqual(rc, 1, out)
        self.assertIn(f"position {position} ", out)

    def test_a_changed_newest_event_stops_the_start_naming_its_position(self):
        s = Server(data_dir=self.data_dir).start()
        try:
            name, position = self.marked_product(s, 10)
            self.assertEqual(s.stop(), 0)
        finally:
            s.cleanup()
        flip_quote_before(self.db, name.encode())
        with self.assertRaises(RuntimeError) as refused:
            Server(data_dir=self.data_dir).start()
        self.assertIn(f"position {position} ", str(refused.exception))
        rc, out = self.verify()
        self.assertEqual(rc, 1, out)
        self.assertIn(f"position {position} ", out)


if __name__ == "__main__":
    unittest.main()
