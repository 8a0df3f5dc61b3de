"""Issue #11 point 1, as an operator tried it: a few hundred orders, wait until quiet, then SIGTERM and start
again several times with no request in between. A quiet restart changes nothing: the log does not grow, the
saga's checkpoint does not move backwards (a replay from an older position would re-issue steps), every
snapshot stays the fold of its stream's events, and `orderflow verify` exits 0 after every stop."""

import os
import random
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import (API, Server, binary, create_account, create_product, last_position, on_postgres,
                     place_order, section5_problems, settled_orders, wait_caught_up)


class QuietRestarts(unittest.TestCase):
    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="orderflow-e2e-restarts-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)

    def start(self):
        s = Server(data_dir=self.data_dir).start()
        self.addCleanup(s.cleanup)
        return s

    def test_four_quiet_restarts_change_nothing_and_verify_stays_clean(self):
        rng = random.Random(11)
        s = self.start()
        c = s.client()
        # Product streams pass 100 events (the snapshot interval) several times over.
        scarce = create_product(c, price=300, stock=120)
        plenty = [create_product(c, price=100 + 50 * i, stock=100_000) for i in range(2)]
        funds = {create_account(c, balance=b): b for b in (2_000, 9_000, 50_000, 500_000, 500_000)}
        customers = list(funds)
        orders = []
        for _ in range(360):
            items = [(rng.choice([scarce, *plenty]), rng.randint(1, 3))]
            if rng.random() < 0.3:
                items.append((rng.choice(plenty), 1))
            order_id = place_order(c, rng.choice(customers), items)
            orders.append(order_id)
            if rng.random() < 0.15:
                c.post(f"{API}/orders/{order_id}/cancel", {"reason": "changed my mind"})
        settled = settled_orders(c, orders, timeout=60)
        wait_caught_up(c, timeout=30)
        products = {scarce: 120, **{p: 100_000 for p in plenty}}
        self.assertEqual(section5_problems(c, products, funds, settled), [])
        quiet_at = last_position(c)
        before = {p: c.get(f"{API}/products/{p}").json for p in products}
        c.close()
        self.assertEqual(s.stop(), 0)
        rc, out = s.verify()
        self.assertEqual(rc, 0, out)

        for round_ in range(4):
            s = self.start()
            c = s.client()
            wait_caught_up(c, timeout=30)
            time.sleep(1.5)  # the saga saves its checkpoint every second: a chance to save a wrong one
            self.assertEqual(last_position(c), quiet_at, f"restart {round_ + 1}: a quiet restart appended events")
            self.assertEqual({p: c.get(f"{API}/products/{p}").json for p in products}, before,
                             f"restart {round_ + 1}")
            c.close()
            self.assertEqual(s.stop(), 0)
            rc, out = s.verify()
            self.assertEqual(rc, 0, f"restart {round_ + 1}: {out}")

        # And the world still works on top of it: new orders settle and every invariant holds.
        s = self.start()
        c = s.client()
        more = [place_order(c, rng.choice(customers), [(rng.choice([scarce, *plenty]), 1)]) for _ in range(40)]
        settled.update(settled_orders(c, more, timeout=60))
        wait_caught_up(c, timeout=30)
        self.assertEqual(section5_problems(c, products, funds, settled), [])
        c.close()
        self.assertEqual(s.stop(), 0)
        rc, out = s.verify()
        self.assertEqual(rc, 0, out)


@unittest.skipIf(on_postgres(), "the embedded store's files (a PostgreSQL restore is the database's own)")
class RestoredBackup(unittest.TestCase):
    """docs/operations.md: the events restored from an older backup beside newer read models. The read models
    are ahead of the log they now stand beside; served, they would show entities the log never had and skip
    the log's next events. They are built again from the log instead."""

    def test_read_models_newer_than_a_restored_log_are_built_again_from_it(self):
        data_dir = tempfile.mkdtemp(prefix="orderflow-e2e-restore-")
        backup = tempfile.mkdtemp(prefix="orderflow-e2e-backup-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        self.addCleanup(shutil.rmtree, backup, True)
        def accounts_then_stop(n):
            s = Server(data_dir=data_dir).start()
            self.addCleanup(s.cleanup)
            c = s.client()
            made = [create_account(c, balance=100) for _ in range(n)]
            wait_caught_up(c)
            c.close()
            self.assertEqual(s.stop(), 0)
            return made

        def copy_log(src, dst):
            for name in os.listdir(src):
                if name.startswith("events.db"):
                    shutil.copy2(os.path.join(src, name), dst)

        kept = accounts_then_stop(3)
        copy_log(data_dir, backup)  # the backup: the log alone
        lost = accounts_then_stop(5)
        for name in os.listdir(data_dir):  # restored: the old log beside the newer read models
            if name.startswith("events.db"):
                os.remove(os.path.join(data_dir, name))
        copy_log(backup, data_dir)

        s = Server(data_dir=data_dir).start()
        self.addCleanup(s.cleanup)
        c = s.client()
        self.addCleanup(c.close)
        wait_caught_up(c)
        for a in kept:
            self.assertEqual(c.get(f"{API}/accounts/{a}").json["balance_cents"], 100)
        for a in lost:  # written after the backup: not in the restored log
            self.assertEqual(c.get(f"{API}/accounts/{a}").status, 404)
        self.assertIn("built from another log", s.stderr(None))
        # Writes after the restore reach the read models (a model left ahead would skip them).
        later = create_account(c, balance=7)
        wait_caught_up(c)
        self.assertEqual(c.get(f"{API}/accounts/{later}").json["balance_cents"], 7)
        c.close()
        self.assertEqual(s.stop(), 0)
        rc, out = s.verify()
        self.assertEqual(rc, 0, out)

    def test_a_backup_verified_read_only_is_left_byte_for_byte(self):
        """`verify --read-only` on a copy of a stopped server's directory: no migration, no catching up, no file
        made beside the databases; the read models are compared where they stand."""
        data_dir = tempfile.mkdtemp(prefix="orderflow-e2e-verify-ro-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        s = Server(data_dir=data_dir).start()
        self.addCleanup(s.cleanup)
        c = s.client()
        for _ in range(4):
            create_account(c, balance=100)
        wait_caught_up(c)
        c.close()
        self.assertEqual(s.stop(), 0)

        def files():
            out = {}
            for name in sorted(os.listdir(data_dir)):
                with open(os.path.join(data_dir, name), "rb") as f:
                    out[name] = f.read()
            return out
        before = files()
        out = subprocess.run([binary(), "verify", "--data", data_dir, "--read-only"], capture_output=True,
                             text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertRegex(out.stdout, r"read models compared where they stand: orders at \d+, products at \d+")
        self.assertRegex(out.stdout, r"accounts +ok")
        self.assertNotIn("the store cannot be written", out.stdout)  # asked for, not fallen back to
        self.assertTrue(files() == before, "verify --read-only changed the directory")

        pg = subprocess.run([binary(), "verify", "--store", "postgres://nobody@127.0.0.1:1/none", "--read-only"],
                            capture_output=True, text=True, timeout=60)
        self.assertEqual(pg.returncode, 2, pg.stderr)
        self.assertIn("--read-only is for the embedded store", pg.stderr)


if __name__ == "__main__":
    unittest.main()
