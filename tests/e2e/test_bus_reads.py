"""docs/api.md §10 "Reads", as a client of a bus-fed query process meets it (`serve --roles
projector,query,admin --bus`, no relay): a read of one entity waits until the entity's stream is applied
up to its last event in the store (or the last at or below `min_position`), and answers it promptly once
the bus brings it; while the bus is away it is `503 projection_lagging` after `wait_ms`, naming the
stream and the versions. A list answers what is applied at once, and with `min_position` waits for an
applied event at or past it. /api/v1/admin/projections describes the bus-fed projector, and a rebuild is
409. A server first writes the log and relays it to a real nats-server, then stops; the bus-fed process
starts with its own empty read models while the nats-server is down, and it is started again later."""

import json
import shutil
import subprocess
import time
import unittest

from harness import API, Server, create_account, create_product, new_id, on_postgres, wait_until
from test_bus import needs_nats, relayed_store, started_nats


@needs_nats
@unittest.skipIf(on_postgres(), "the bus-fed process's read models start empty only in the embedded database")
class BusFedReads(unittest.TestCase):
    def test_entity_reads_wait_for_their_stream_lists_answer_what_is_applied(self):
        nats = started_nats(self)
        bus = f"nats://127.0.0.1:{nats.port}"
        account = "reader-account"
        written = {}

        # A server writes the log and relays it to the bus.
        def write(c):
            written["product"] = create_product(c, price=700, stock=3)
            create_account(c, account)
            written["positions"] = []
            for cents in (100, 200, 300):
                r = c.post(f"{API}/accounts/{account}/deposit", {"amount_cents": cents})
                self.assertEqual(r.status, 200, r)
                written["positions"].append(r.json["position"])

        data, last = relayed_store(self, bus, write)
        product, positions = written["product"], written["positions"]
        nats.stop()  # its store is kept: started again below with every message

        # The bus-fed process gets read models of its own and starts with the bus away.
        with Server(data_dir=data, extra_args=["--roles", "projector,query,admin", "--bus", bus]) as projector:
            c = projector.client()
            t0 = time.monotonic()
            lagging = c.get(f"{API}/accounts/{account}?wait_ms=300")
            waited = time.monotonic() - t0
            self.assertEqual((lagging.status, lagging.json["error"]["code"]), (503, "projection_lagging"), lagging)
            self.assertIn("Retry-After", lagging.headers)
            self.assertGreaterEqual(waited, 0.3)
            self.assertLess(waited, 1.5, "answered at its deadline, not after the projector's back-off")
            details = lagging.json["error"]["details"]
            self.assertEqual({k: details[k] for k in ("projection", "position", "min_position", "stream_id",
                                                      "version", "applied_version")},
                             {"projection": "accounts", "position": 0, "min_position": None,
                              "stream_id": f"account-{account}", "version": 3, "applied_version": -1})
            # min_position before the account's first event: nothing to wait for, nothing applied.
            self.assertEqual(c.get(f"{API}/accounts/{account}?min_position=0").status, 404)
            listed = c.get(f"{API}/products")
            self.assertEqual((listed.status, listed.json["products"]), (200, []), "a list answers what is applied")
            for p in c.get(f"{API}/admin/projections").json:
                self.assertEqual((p["fed_by"], p["position"], p["lag"]), ("bus", 0, last), p)
                self.assertIn(p["status"], ("connecting", "retrying"), p)
            self.assertEqual(c.post(f"{API}/admin/projections/orders/rebuild").status, 409)
            self.assertEqual(c.post(f"{API}/admin/projections/nope/rebuild").status, 404)

            # The bus comes back: the read waits until the account's stream is applied, then answers it.
            nats.start()
            t0 = time.monotonic()
            read = c.get(f"{API}/accounts/{account}?wait_ms=10000")
            self.assertEqual(read.status, 200, read)
            self.assertEqual((read.json["balance_cents"], read.json["version"]), (600, 3))
            self.assertEqual(read.headers.get("ETag"), '"3"')
            self.assertLess(time.monotonic() - t0, 10)
            # Without min_position, promptly and whole, now that it is applied.
            t0 = time.monotonic()
            again = c.get(f"{API}/accounts/{account}")
            self.assertEqual((again.status, again.json["balance_cents"]), (200, 600), again)
            self.assertLess(time.monotonic() - t0, 0.5)
            self.assertEqual([t["amount_cents"] for t in c.get(f"{API}/accounts/{account}/transactions").json[
                "transactions"]], [100, 200, 300])
            # min_position within the stream: its last event at or below it, here the first deposit's.
            first = c.get(f"{API}/accounts/{account}?min_position={positions[0]}")
            self.assertEqual((first.status, first.json["balance_cents"]), (200, 600), "answers the state applied")
            got = c.get(f"{API}/products/{product}")
            self.assertEqual((got.status, got.json["unit_price_cents"]), (200, 700), got)
            wait_until(lambda: c.get(f"{API}/products").json["products"], 10, "the product listed")

            # A list with min_position: an applied event at or past it answers, one beyond all is 503.
            self.assertEqual(c.get(f"{API}/products?min_position=1").status, 200)
            t0 = time.monotonic()
            beyond = c.get(f"{API}/products?min_position={last + 1000}&wait_ms=300")
            self.assertEqual((beyond.status, beyond.json["error"]["code"]), (503, "projection_lagging"), beyond)
            self.assertGreaterEqual(time.monotonic() - t0, 0.3)
            self.assertEqual((beyond.json["error"]["details"]["min_position"], beyond.json["error"]["details"][
                "projection"]), (last + 1000, "products"))
            self.assertNotIn("stream_id", beyond.json["error"]["details"])

            wait_until(lambda: all(p["status"] == "consuming" for p in c.get(f"{API}/admin/projections").json), 10,
                       "the projector consuming")
            projections = {p["name"]: p for p in c.get(f"{API}/admin/projections").json}
            self.assertEqual(sorted(projections), ["accounts", "orders", "products", "sales"])
            self.assertEqual(projections["accounts"]["position"], positions[-1])
            for p in projections.values():
                self.assertEqual(p["lag"], 0, f"every message acknowledged, quiet categories too: {p}")
            self.assertEqual(projections["accounts"]["fed_by"], "bus")
            self.assertIsNone(projections["accounts"]["last_error"])
            self.assertGreater(projections["accounts"]["lag_window"], 0)

            # /metrics shows the bus-fed projector's read models in the projection families (the
            # log-tailing runner never ran here), and the page stays valid exposition format.
            page = c.get("/metrics").body.decode()
            series = {line.split(" ")[0]: float(line.split(" ")[1]) for line in page.splitlines()
                      if line.startswith("orderflow_projection_")}
            self.assertEqual(series['orderflow_projection_position{projection="accounts"}'], positions[-1])
            for name in ("orders", "products", "accounts", "sales"):
                self.assertEqual(series[f'orderflow_projection_lag{{projection="{name}"}}'], 0)
                self.assertEqual(series[f'orderflow_projection_up{{projection="{name}"}}'], 1)
            self.assertGreaterEqual(series['orderflow_projection_lag_seconds_count{projection="accounts"}'], 4,
                                    "the account's four events, each applied to the accounts read model")
            self.assertNotIn("orderflow_projection_lag_age_seconds", page, "a bus-fed process cannot tell it")
            if shutil.which("promtool"):
                out = subprocess.run(["promtool", "check", "metrics"], input=page.encode(), capture_output=True,
                                     timeout=60)
                self.assertIn(out.returncode, (0, 3), out)  # 3: lint advice only
            c.close()


@needs_nats
@unittest.skipIf(on_postgres(), "the bus-fed process's read models start empty only in the embedded database")
class BusPersonalData(unittest.TestCase):
    """docs/api.md §7 and §10: with `--bus-personal-data sealed` the bus carries personal data as stored
    (sealed), never in plaintext; a bus-fed process shows it revealed as every read does, and once the customer
    is erased shows "[erased]" there too. With the default (revealed) the bus carries the plaintext."""

    def accounts_on_the_bus(self, nats):
        return [json.loads(b)["data"] for b in nats.bodies() if json.loads(b)["type"] == "AccountOpened"]

    def test_sealed_on_the_bus_revealed_in_reads_and_erased_everywhere(self):
        nats = started_nats(self)
        bus = f"nats://127.0.0.1:{nats.port}"
        account = "sealed-" + new_id("a")
        data, _ = relayed_store(self, bus, lambda c: create_account(c, account, owner="Ada Lovelace"),
                                ["--bus-personal-data", "sealed"])
        [opened] = self.accounts_on_the_bus(nats)
        self.assertEqual(opened["account_id"], account)
        self.assertTrue(opened["owner"].startswith("of:sealed:v1:"), opened)
        self.assertNotIn("Ada", json.dumps(nats.bodies()))

        # The command role for the erasure (a write of the key table).
        with Server(data_dir=data, extra_args=["--roles", "projector,query,admin,command", "--bus", bus,
                                               "--bus-personal-data", "sealed"]) as projector:
            c = projector.client()
            read = c.get(f"{API}/accounts/{account}?wait_ms=10000")
            self.assertEqual((read.status, read.json["owner"]), (200, "Ada Lovelace"), read)
            erased = c.request("DELETE", f"{API}/customers/{account}/personal-data")
            self.assertEqual(erased.status, 200, erased)
            self.assertEqual(c.get(f"{API}/accounts/{account}").json["owner"], "[erased]")
            c.close()

    def test_revealed_by_default(self):
        nats = started_nats(self)
        bus = f"nats://127.0.0.1:{nats.port}"
        account = "revealed-" + new_id("a")
        relayed_store(self, bus, lambda c: create_account(c, account, owner="Ada Lovelace"))
        self.assertEqual([a["owner"] for a in self.accounts_on_the_bus(nats)], ["Ada Lovelace"])


if __name__ == "__main__":
    unittest.main()
