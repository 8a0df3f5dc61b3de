"""docs/api.md §10 and operations.md §9, as an operator meets them: `serve --bus` with a bus that is not
there yet, goes away and comes back; writes never wait for it; the relay's state, lag and catch-up in
/api/v1/admin/relay, /readyz and /metrics; and what JetStream holds at the end (its monitoring endpoint).
A bad --bus is exit 2 with one sentence. On PostgreSQL, two servers with --bus: one relays (the relay
lease), and the other takes over when it is killed."""

import base64
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import unittest
import urllib.request

from harness import API, Server, binary, create_account, new_pg_store, on_postgres, wait_until


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """nats-server with JetStream on loopback ports, its store in a temp dir kept across restarts."""

    def __init__(self):
        self.port, self.monitor = free_port(), free_port()
        self.dir = tempfile.mkdtemp(prefix="orderflow-e2e-nats-")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-m",
                                      str(self.monitor), "-js", "-sd", self.dir], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(self.messages_or_none, 10, "nats-server monitoring answers", interval=0.1)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def messages_or_none(self):
        """(True, messages in ORDERFLOW_EVENTS) once the server answers; None before."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/jsz?streams=true", timeout=2) as r:
                jsz = json.load(r)
        except OSError:
            return None
        streams = [s for a in jsz.get("account_details", []) for s in a.get("stream_detail", [])]
        return (True, sum(s["state"]["messages"] for s in streams if s["name"] == "ORDERFLOW_EVENTS"))

    def messages(self):
        return self.messages_or_none()[1]

    def bodies(self):
        """The body of every message in ORDERFLOW_EVENTS, in order: JetStream's message get API
        ($JS.API.STREAM.MSG.GET) over the NATS text protocol, one request per message."""
        out = []
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            f = s.makefile("rb")
            f.readline()  # INFO
            s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\nSUB _INBOX.e2e 1\r\n')
            for seq in range(1, self.messages() + 1):
                req = json.dumps({"seq": seq}).encode()
                s.sendall(b"PUB $JS.API.STREAM.MSG.GET.ORDERFLOW_EVENTS _INBOX.e2e %d\r\n%s\r\nPING\r\n"
                          % (len(req), req))
                while True:
                    line = f.readline()
                    if line.startswith(b"MSG "):
                        payload = f.read(int(line.split()[-1]) + 2)[:-2]
                        out.append(base64.b64decode(json.loads(payload)["message"]["data"]).decode())
                        break
                    if line.startswith(b"-ERR"):
                        raise AssertionError(line)
        return out


class BadBusUrl(unittest.TestCase):
    def test_unknown_scheme_or_malformed_url_is_exit_2_with_one_sentence(self):
        for url in ("redis://127.0.0.1:6379", "nats://127.0.0.1", "kafka://127.0.0.1:99999", "nats://:4222",
                    "nats://127.0.0.1:4222,"):
            with self.subTest(url=url), tempfile.TemporaryDirectory() as d:
                out = subprocess.run([binary(), "serve", "--listen", "127.0.0.1:0", "--data", d, "--bus", url],
                                     capture_output=True, text=True, timeout=30)
                self.assertEqual(out.returncode, 2, out)
                lines = out.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, out.stderr)
                self.assertIn(url, lines[0])
                self.assertEqual(out.stdout, "", "nothing served")

    def test_bus_without_a_role_it_feeds_or_one_consumer_for_projector_and_saga_is_exit_2(self):
        # --bus without relay feeds the projector and saga roles, each with its own consumer.
        for roles, extra, says in (("command,query", [], "relay, the projector or the saga role"),
                                   ("projector,saga", ["--bus-saga-consumer", "orderflow-projector"],
                                    "--bus-consumer and --bus-saga-consumer must differ")):
            with self.subTest(roles=roles), tempfile.TemporaryDirectory() as d:
                out = subprocess.run([binary(), "serve", "--listen", "127.0.0.1:0", "--data", d, "--roles", roles,
                                      "--bus", "nats://127.0.0.1:4222", *extra],
                                     capture_output=True, text=True, timeout=30)
                self.assertEqual(out.returncode, 2, out)
                self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)
                self.assertIn(says, out.stderr)
                self.assertEqual(out.stdout, "", "nothing served")


@unittest.skipUnless(shutil.which("nats-server"), "nats-server is not installed (scripts/install-deps.sh)")
class RelayToNats(unittest.TestCase):
    def setUp(self):
        self.nats = NatsServer()
        self.addCleanup(self.nats.cleanup)
        self.dir = tempfile.mkdtemp(prefix="orderflow-e2e-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.srv = self.server()

    def server(self):
        srv = Server(data_dir=self.dir, extra_args=["--bus", f"nats://127.0.0.1:{self.nats.port}"])
        self.addCleanup(srv.cleanup)
        return srv

    def relay(self):
        r = self.c.get(f"{API}/admin/relay")
        self.assertEqual(r.status, 200, r)
        return r.json

    def metric(self, name):
        return metric(self.c, name)

    def write(self, n):
        for _ in range(n):
            create_account(self.c)

    def test_bus_absent_at_start_then_down_then_back_loses_nothing(self):
        self.srv.start()  # the bus is not there yet: the server serves all the same
        self.c = self.srv.client()
        self.write(20)
        relay = wait_until(lambda: (r := self.relay())["state"] == "retrying" and r, 30, "relay retrying")
        self.assertIn("NATS", relay["last_error"])
        self.assertEqual(relay["position"], 0)
        self.assertGreaterEqual(relay["lag"], 20)
        self.assertGreater(relay["lag_seconds"], 0)
        ready = self.c.get("/readyz")
        self.assertEqual(ready.status, 200, ready)
        self.assertEqual(ready.json["checks"]["relay"]["state"], "retrying")
        self.assertEqual(self.metric("orderflow_relay_up"), 0)
        self.assertGreaterEqual(self.metric("orderflow_relay_lag"), 20)

        self.nats.start()
        wait_until(lambda: self.relay()["lag"] == 0, 60, "relay caught up after the bus came")
        relay = self.relay()
        self.assertEqual(relay["state"], "publishing")
        self.assertIsNone(relay["last_error"])
        self.assertEqual(self.nats.messages(), relay["position"])
        self.assertEqual(self.metric("orderflow_relay_up"), 1)
        self.assertEqual(self.metric("orderflow_relay_lag"), 0)

        self.nats.stop()
        self.write(30)  # the log is the outbox: writes go on
        wait_until(lambda: self.relay()["state"] == "retrying", 60, "relay noticed the bus went")
        self.assertGreaterEqual(self.relay()["lag"], 30)
        self.nats.start()
        wait_until(lambda: self.relay()["lag"] == 0 and self.relay()["state"] == "publishing", 60,
                   "relay caught up after the bus came back")
        self.assertEqual(self.nats.messages(), self.relay()["position"], "every event once on the bus")
        self.assertGreaterEqual(self.relay()["position"], 50)
        self.c.close()
        self.srv.stop()

        # A restart resumes from the checkpoint: nothing published twice, nothing skipped.
        self.srv = self.server().start()
        self.c = self.srv.client()
        self.write(5)
        wait_until(lambda: self.relay()["lag"] == 0 and self.relay()["state"] == "publishing", 60,
                   "relay caught up after a restart")
        self.assertEqual(self.nats.messages(), self.relay()["position"])
        self.c.close()


def metric(client, name):
    for line in client.get("/metrics").body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def started_nats(test):
    """A NatsServer started for `test`, cleaned up after it."""
    nats = NatsServer()
    test.addCleanup(nats.cleanup)
    nats.start()
    return nats


def relayed_store(test, bus, write, extra_args=()):
    """A data dir (cleaned up after `test`) whose log a server with `--bus bus` (and `extra_args`) wrote with
    write(client) and relayed whole; its read models removed, for a bus-fed process to make its own. Answers
    (dir, the relay's last position)."""
    data = tempfile.mkdtemp(prefix="orderflow-e2e-")
    test.addCleanup(shutil.rmtree, data, True)
    with Server(data_dir=data, extra_args=["--bus", bus, *extra_args]) as writer:
        c = writer.client()
        write(c)
        wait_until(lambda: c.get(f"{API}/admin/relay").json["lag"] == 0, 60, "everything relayed")
        last = c.get(f"{API}/admin/relay").json["position"]
        c.close()
    for f in glob.glob(os.path.join(data, "readmodels.db*")):
        os.remove(f)
    return data, last


needs_nats = unittest.skipUnless(shutil.which("nats-server"), "nats-server is not installed (scripts/install-deps.sh)")


@needs_nats
@unittest.skipUnless(on_postgres(), "several servers on one store need PostgreSQL (ORDERFLOW_E2E_STORE=postgres)")
class RelayLease(unittest.TestCase):
    def test_one_relays_the_other_takes_over_when_it_is_killed(self):
        nats = started_nats(self)
        store = new_pg_store()
        servers = [Server(store=store, extra_args=["--bus", f"nats://127.0.0.1:{nats.port}"]) for _ in range(2)]
        for srv in servers:
            self.addCleanup(srv.cleanup)
            srv.start()
        clients = [srv.client() for srv in servers]
        for c in clients:
            create_account(c)
        states = lambda: sorted(c.get(f"{API}/admin/relay").json["state"] for c in clients)  # noqa: E731
        wait_until(lambda: states() == ["publishing", "standby"], 30, "one relays, one stands by")
        self.assertEqual(sum(metric(c, "orderflow_relay_running") for c in clients), 1)
        holder = next(i for i, c in enumerate(clients) if c.get(f"{API}/admin/relay").json["state"] == "publishing")
        other = clients[1 - holder]
        servers[holder].kill()
        for _ in range(20):
            create_account(other)
        wait_until(lambda: (r := other.get(f"{API}/admin/relay").json)["state"] == "publishing" and r["lag"] == 0,
                   30, "the standby took the relay over and caught up")
        self.assertEqual(nats.messages(), other.get(f"{API}/admin/relay").json["position"],
                         "every event once on the bus across the takeover")
        self.assertIn("holds the relay lease", servers[1 - holder].stderr(None))
        for c in clients:
            c.close()
        servers[1 - holder].stop()
