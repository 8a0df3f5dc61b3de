"""docs/api.md §7 and §10, as an operator meets a bus dead letter: a bus-fed projector (`serve --roles
projector,query,admin --bus`) cannot apply an account's first event (its read-model table refuses it: a
fault put there by the test), so the event is dead-lettered after its attempts and the account's stream
held, its later events dead-lettered behind it. GET /api/v1/admin/dead-letters lists it (`source` `bus`);
a retry while the fault is still there fails and keeps it held; once the fault is gone the retry re-drives
the stream from the event store and releases it (200), the account is served with every deposit, and a
second retry is 409. /metrics shows the consumer's lag and held streams throughout."""

import os
import re
import shutil
import sqlite3
import subprocess
import unittest

from harness import API, Server, create_account, on_postgres, wait_until
from test_bus import free_port, needs_nats, relayed_store, started_nats


def labelled_metric(client, name):
    """The value of `name{…}` in /metrics (one series), or None when it is absent."""
    for line in client.get("/metrics").body.decode().splitlines():
        if re.match(re.escape(name) + r"\{[^}]*\} ", line):
            return float(line.split()[-1])
    return None


@needs_nats
@unittest.skipIf(on_postgres(), "the fault is a trigger in the embedded read-model database")
class BusDeadLetters(unittest.TestCase):
    def test_a_held_stream_is_listed_then_redriven_over_http_and_released(self):
        nats = started_nats(self)
        bus = f"nats://127.0.0.1:{nats.port}"
        held = "held-account"

        # A server writes the log and relays it to the bus.
        def write(c):
            create_account(c, held)
            for cents in (100, 200, 300):
                self.assertEqual(c.post(f"{API}/accounts/{held}/deposit", {"amount_cents": cents}).status, 200)
            for _ in range(5):
                create_account(c, balance=50)

        data, _ = relayed_store(self, bus, write)
        # The bus-fed projector gets read models of its own: made by a first start against a bus that is
        # not there (nothing consumed), then the accounts table refuses the held account.
        roles = ["--roles", "projector,query,admin"]
        with Server(data_dir=data, extra_args=[*roles, "--bus", f"nats://127.0.0.1:{free_port()}"]):
            pass
        db = sqlite3.connect(os.path.join(data, "readmodels.db"))
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE "
                                           "'accounts_g%'")]
        self.assertTrue(tables)
        for t in tables:
            db.execute(f"CREATE TRIGGER refuse_{t} BEFORE INSERT ON {t} WHEN NEW.id IN ('{held}', 'account-{held}') "
                       f"BEGIN SELECT RAISE(ABORT, 'injected fault: {held} refused'); END")
        db.commit()
        db.close()

        with Server(data_dir=data, extra_args=[*roles, "--bus", bus]) as projector:
            c = projector.client()
            series = lambda name: labelled_metric(c, "orderflow_bus_consumer_" + name)  # noqa: E731
            wait_until(lambda: series("held_streams") == 1 and series("dead_letters_total") == 4
                       and series("lag") == 0, 60, "the account held behind its dead letter, the rest applied")
            self.assertEqual(series("up"), 1)
            self.assertEqual(series("applied_total"), 10, "the other five accounts: opened, deposited")
            self.assertGreaterEqual(series("applied_lag_seconds"), 0)
            if shutil.which("promtool"):
                page = c.get("/metrics").body
                out = subprocess.run(["promtool", "check", "metrics"], input=page, capture_output=True, timeout=60)
                self.assertIn(out.returncode, (0, 3), out)  # 3: lint advice only
            letters = [d for d in c.get(f"{API}/admin/dead-letters").json["dead_letters"] if d["source"] == "bus"]
            self.assertEqual(len(letters), 1, letters)
            letter = letters[0]
            self.assertEqual(letter["stream_id"], f"account-{held}")
            self.assertEqual(letter["version"], 0)
            self.assertEqual(letter["subject"], "orderflow.events.account")
            self.assertEqual(letter["consumer"], "orderflow-projector")
            self.assertIn("failed 5 times", letter["reason"])
            self.assertIn("injected fault", letter["reason"])
            self.assertIsNone(letter["retried_at"])
            # min_position=0: no event of the account at or below it to wait for (docs/api.md §10
            # "Reads"); without it the read would wait for the held stream.
            unapplied = c.get(f"{API}/accounts/{held}?min_position=0")
            self.assertEqual(unapplied.status, 404, f"nothing of a held stream applied: {unapplied}")
            retry = f"{API}/admin/dead-letters/{letter['dead_letter_id']}/retry"

            # Retried while the fault is still there: its error, and the stream stays held.
            failed = c.post(retry)
            self.assertGreaterEqual(failed.status, 500, failed)
            self.assertIn("error", failed.json)
            self.assertEqual(series("held_streams"), 1)

            db = sqlite3.connect(os.path.join(data, "readmodels.db"))
            for t in tables:
                db.execute(f"DROP TRIGGER refuse_{t}")
            db.commit()
            db.close()
            done = c.post(retry)
            self.assertEqual(done.status, 200, done)
            self.assertEqual({k: done.json[k] for k in ("dead_letter_id", "source", "stream_id", "version", "events")},
                             {"dead_letter_id": letter["dead_letter_id"], "source": "bus",
                              "stream_id": f"account-{held}", "version": 3, "events": 4})
            account = c.get(f"{API}/accounts/{held}?min_position=0")
            self.assertEqual(account.status, 200, account)
            self.assertEqual(account.json["balance_cents"], 600)
            self.assertEqual(account.json["version"], 3)
            self.assertEqual(series("held_streams"), 0)
            listed = [d for d in c.get(f"{API}/admin/dead-letters").json["dead_letters"] if d["source"] == "bus"]
            self.assertEqual(listed[0]["retried_at"], done.json["retried_at"])
            again = c.post(retry)
            self.assertEqual((again.status, again.json["error"]["code"]), (409, "invalid_state"), again)
            self.assertEqual(c.post(f"{API}/admin/dead-letters/nope/retry").status, 400)
            c.close()
