"""docs/api.md §10 on a 3-node JetStream cluster with a replicated (R3) stream: the stream's leader killed
with SIGKILL while orders are placed; the relay's publishes go to the survivors with the same message ids:
nothing lost, nothing stored twice, and the relay catches up by itself. On PostgreSQL, the same with a
bus-fed projector process reading the stream through its durable consumer: once quiet it has acknowledged
everything, dead-lettered nothing, and `orderflow verify` finds its read models equal to the log (nothing
lost, nothing applied twice)."""

import json
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import unittest
import urllib.request

from harness import API, Server, create_account, on_postgres, wait_until
from test_bus_dead_letters import labelled_metric
from test_bus_projector_killed import expect_everything_applied_once, writer_and_projectors


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, name, cluster_ports, i, base):
        self.name, self.port, self.monitor = name, free_port(), free_port()
        routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(cluster_ports) if j != i)
        self.args = ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor), "-js", "-sd",
                     f"{base}/{name}", "--server_name", name, "--cluster_name", "orderflow-test", "--cluster",
                     f"nats://127.0.0.1:{cluster_ports[i]}", "--routes", routes]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stream(self):
        """ORDERFLOW_EVENTS as this node sees it (messages, cluster leader), or None."""
        try:
            url = f"http://127.0.0.1:{self.monitor}/jsz?streams=true&config=true"
            with urllib.request.urlopen(url, timeout=2) as r:
                jsz = json.load(r)
        except OSError:
            return None
        for a in jsz.get("account_details", []):
            for s in a.get("stream_detail", []):
                if s["name"] == "ORDERFLOW_EVENTS":
                    return s
        return None

    def jetstream_ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/jsz", timeout=2) as r:
                return json.load(r).get("meta_cluster", {}).get("leader")
        except OSError:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@unittest.skipUnless(shutil.which("nats-server"), "nats-server is not installed (scripts/install-deps.sh)")
class RelayToJetStreamCluster(unittest.TestCase):
    def cluster(self):
        """Three JetStream nodes, their meta leader elected: (nodes, the --bus URL naming all three)."""
        base = tempfile.mkdtemp(prefix="orderflow-e2e-nats-cluster-")
        self.addCleanup(shutil.rmtree, base, True)
        ports = [free_port() for _ in range(3)]
        nodes = [Node(f"n{i}", ports, i, base) for i in range(3)]
        for n in nodes:
            self.addCleanup(n.kill)
        wait_until(lambda: all(n.jetstream_ready() for n in nodes), 30, "JetStream meta leader elected")
        return nodes, "nats://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes)

    @unittest.skipUnless(on_postgres(), "a writer and a projector process on one store need PostgreSQL "
                                        "(ORDERFLOW_E2E_STORE=postgres)")
    def test_leader_killed_under_a_bus_fed_projector_nothing_lost_nothing_applied_twice(self):
        nodes, bus = self.cluster()
        writer, projector = writer_and_projectors(self, bus, ["--bus-replicas", "3"])
        c = writer.client()
        create_account(c, owner=None)
        stream = wait_until(lambda: (s := nodes[0].stream()) and s.get("cluster", {}).get("leader") and s, 60,
                            "the stream made by the relay, with a leader")
        self.assertEqual(stream["config"]["num_replicas"], 3)
        proj = projector()  # after the relay made the stream (R3): a consumer makes it with one replica
        pc = proj.client()
        stop, written = threading.Event(), []

        def load():
            w = writer.client()
            while not stop.is_set():
                create_account(w, balance=100, owner=None)
                written.append(1)
            w.close()

        t = threading.Thread(target=load)
        t.start()
        try:
            # Killed on a count: once the projector applied some of the load (two events an account).
            wait_until(lambda: (labelled_metric(pc, "orderflow_bus_consumer_applied_total") or 0) >= 300, 120,
                       "the projector applying the load")
            leader = next(n for n in nodes if n.name == stream["cluster"]["leader"])
            leader.kill()
            at_kill = len(written)
            wait_until(lambda: len(written) >= at_kill + 300, 120, "writes go on after the leader died")
        finally:
            stop.set()
            t.join(timeout=60)
        c.close()
        relayed = expect_everything_applied_once(self, writer, proj, pc)
        self.assertGreaterEqual(relayed, 2 * len(written))
        print(f"\nleader {leader.name} killed after {at_kill} accounts; {len(written)} in all, {relayed} events relayed",
              flush=True)

    def test_leader_killed_mid_load_nothing_lost_nothing_doubled(self):
        nodes, bus = self.cluster()
        srv = Server(extra_args=["--bus", bus, "--bus-replicas", "3"])
        self.addCleanup(srv.cleanup)
        srv.start()
        c = srv.client()
        relay = lambda: c.get(f"{API}/admin/relay").json  # noqa: E731
        create_account(c)
        wait_until(lambda: relay()["lag"] == 0 and relay()["position"] > 0, 60, "the stream made and published to")
        stream = wait_until(lambda: (s := nodes[0].stream()) and s.get("cluster", {}).get("leader") and s, 30,
                            "the stream has a leader")
        self.assertEqual(stream["config"]["num_replicas"], 3)

        # Writes from another thread while the leader dies; killed on a count of events, not a timer.
        stop = threading.Event()
        written = []

        def load():
            w = srv.client()
            while not stop.is_set():
                create_account(w)
                written.append(1)
            w.close()

        t = threading.Thread(target=load)
        t.start()
        try:
            wait_until(lambda: len(written) >= 200, 60, "load under way")
            leader = next(n for n in nodes if n.name == stream["cluster"]["leader"])
            leader.kill()
            wait_until(lambda: len(written) >= 600, 120, "writes go on after the leader died")
        finally:
            stop.set()
            t.join(timeout=60)
        survivors = [n for n in nodes if n is not leader]
        wait_until(lambda: relay()["lag"] == 0 and relay()["state"] == "publishing", 120,
                   "the relay caught up on the new leader")
        position = relay()["position"]
        self.assertGreaterEqual(position, 601)
        wait_until(lambda: all((s := n.stream()) and s["state"]["messages"] == position for n in survivors), 30,
                   f"every survivor holds the {position} events once")
        c.close()
        srv.stop()
