#!/usr/bin/env python3
"""Runs the benchmarks of docs/design.md §5 several times and prints the median of each figure.

    scripts/bench.py [--runs 3] [--only append,read,projection,http,saga,tracing,postgres] [--bin build/orderflow]

Each benchmark prints a JSON line last; this keeps every run's line and prints, per
benchmark, the median of the figures that the targets name. Servers for the HTTP runs are
started here on a free loopback port with a fresh data dir. `postgres` needs
ORDERFLOW_TEST_PG (scripts/pg-test-server.sh sets it): default servers on a fresh database per
run, one and then two at once (scale-out). Benchmarks measure; they assert nothing.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from harness import Collector  # noqa: E402 (an OTLP receiver, the tracing runs' live endpoint)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU time a process has used, from /proc (the figure that load beside a run
    disturbs least: a slower run of the same work uses about the same CPU)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


class Server:
    def __init__(self, binary, *extra):
        self.dir = tempfile.mkdtemp(prefix="orderflow-bench-")
        self.port = free_port()
        self.proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data", self.dir, *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not re.match(r"orderflow: serving", line):
            raise RuntimeError(f"server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(pg):
    """A new database on the server of `pg` (a postgresql:// URL), its URL, dropped after: each
    run starts from an empty store, not behind what an earlier run left (its saga's backlog)."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", "-qX", pg, "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    try:
        base, _, query = pg.partition("?")
        yield base.rsplit("/", 1)[0] + "/" + name + ("?" + query if query else "")
    finally:
        subprocess.run(["psql", "-qX", pg, "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


def http_on_servers(binary, extra, servers, scenario, connections, duration):
    """`bench http` against each of `servers` fresh servers at once: requests_per_s and the
    counts summed over them, latencies the worst of them."""
    started = []
    try:
        for _ in range(servers):
            started.append(Server(binary, *extra))
        runs = [subprocess.Popen([binary, "bench", "http", "--target", srv.url, "--scenario", scenario,
                                  "--connections", str(connections), "--duration", str(duration), "--warmup", "2"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for srv in started]
        lines = []
        for run, srv in zip(runs, started):
            out, err = run.communicate()
            if run.returncode != 0:
                raise RuntimeError(f"bench http failed ({run.returncode}) against a server: {err.strip()[-500:]}")
            line = json.loads(out.strip().splitlines()[-1])
            # The store's appends by outcome (written, version_conflict, …), set-up included.
            for series, value in metric_values(srv.url, "orderflow_appends_total{").items():
                line["appends_" + re.search(r'outcome="([^"]*)"', series).group(1)] = value
            lines.append(line)
    finally:
        for srv in started:
            srv.stop()
    if len(lines) == 1:
        return lines[0]
    out = {}
    for key, value in lines[0].items():
        values = [line.get(key) for line in lines]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        out[key] = max(values) if key.endswith(("_us", "_ms")) else sum(values)
    return out


def metric_values(url, prefix):
    """{series: value} of the /metrics lines starting with `prefix`."""
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(prefix)}


def pick(line, key):
    """line["a"]["b"] for key "a.b"; None where it is missing."""
    for part in key.split("."):
        line = line.get(part) if isinstance(line, dict) else None
    return line


def report(name, lines, keys):
    print(f"== {name} ({len(lines)} runs)")
    for key in keys:
        runs = [pick(line, key) for line in lines]
        numbers = [v for v in runs if isinstance(v, (int, float))]
        m = statistics.median(numbers) if numbers else None
        shown = ", ".join(f"{r:.0f}" if isinstance(r, (int, float)) and r >= 100 else str(r) for r in runs)
        print(f"  {key:42} median {m if m is None else round(m, 3)}   runs: {shown}")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="append,read,projection,http,saga")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "orderflow"))
    ap.add_argument("--duration", type=float, default=10, help="seconds per HTTP run")
    ap.add_argument("--saga-duration", type=float, default=60, help="seconds per saga run (the target is sustained for a minute)")
    args = ap.parse_args()
    only = set(args.only.split(","))
    b = args.bin
    scratch = tempfile.mkdtemp(prefix="orderflow-bench-data-")
    try:
        if "append" in only:
            lines = [run_json([b, "bench", "append", "--writers", "256", "--streams", "1000", "--events", "200000",
                               "--data", os.path.join(scratch, f"a{i}")]) for i in range(args.runs)]
            report("bench append --writers 256 --streams 1000 --events 200000", lines,
                   ["events_per_s", "p50_us", "p99_us", "raw_rows_per_s", "ratio_to_raw", "raw_unindexed_rows_per_s",
                    "ratio_to_raw_unindexed", "no_group_commit_events_per_s", "group_commit_speedup"])
            lines = [run_json([b, "bench", "append", "--writers", "16", "--streams", "1", "--events", "20000",
                               "--data", os.path.join(scratch, f"h{i}")]) for i in range(args.runs)]
            report("bench append --writers 16 --streams 1 --events 20000", lines,
                   ["events_per_s", "p50_us", "p99_us", "conflicts"])
        if "read" in only:
            lines = [run_json([b, "bench", "read", "--events", "1000000", "--data", os.path.join(scratch, "r")])
                     for _ in range(args.runs)]
            report("bench read --events 1000000", lines, ["events_per_s", "raw_rows_per_s", "ratio_to_raw"])
        if "projection" in only:
            lines = [run_json([b, "bench", "projection", "--events", "300000", "--data", os.path.join(scratch, "p")])
                     for _ in range(args.runs)]
            report("bench projection --events 300000", lines,
                   ["events_per_s"] + [f"rebuild_events_per_s.{n}" for n in ("orders", "products", "accounts", "sales")])
        if "http" in only:
            # The default server (saga on) first, then the command side alone (saga off), then the queries.
            for scenario, extra in (("place-order", []), ("place-order", ["--roles", "command,query,admin,projector"]),
                                    ("flash-sale", []), ("get-product", []), ("get-order", []), ("list-orders", [])):
                lines = [http_on_servers(b, extra, 1, scenario, 64, args.duration) for _ in range(args.runs)]
                keys = ["requests_per_s", "p50_us", "p99_us", "non_2xx"]
                if scenario == "flash-sale":
                    keys += ["confirmed_per_s", "confirm_p99_ms", "refused_share"]
                if scenario == "place-order":
                    keys += [f"projection_lag_p{q}_ms.{n}" for q in (50, 99) for n in ("orders", "products", "accounts", "sales")]
                report(f"bench http --scenario {scenario} --connections 64 {' '.join(extra)}", lines, keys)
        if "saga" in only:
            # At the target's load and 10% past it (orders/s offered for the whole run: is
            # every order confirmed, and how fast?), then as fast as 64 connections go (the
            # capacity; past the saga's pace its queue, and so the latency, grows all run long).
            for rate in (["--rate", "5100"], ["--rate", "5500"], []):
                lines = []
                for _ in range(args.runs):
                    srv = Server(b)
                    try:
                        lines.append(run_json([b, "bench", "http", "--target", srv.url, "--scenario", "place-order-confirmed",
                                               "--connections", "64", *rate, "--duration", str(args.saga_duration),
                                               "--warmup", "2"]))
                    finally:
                        srv.stop()
                report(f"bench http --scenario place-order-confirmed --connections 64 {' '.join(rate)} "
                       f"--duration {args.saga_duration:g}", lines,
                       ["confirmed_per_s", "confirmed_slowest_s", "confirm_p50_ms", "confirm_p99_ms", "placed", "confirmed",
                        "requests_per_s", "p99_us"] +
                       [f"projection_lag_p{q}_ms.{n}" for q in (50, 99) for n in ("orders", "products", "accounts", "sales")])
        if "tracing" in only:
            # Overhead of tracing and of the access log: the same scenario against servers that differ only
            # in those options, interleaved run by run so that drift in the machine's load hits each alike.
            collector = Collector(keep=False)
            configs = {"off": [], "access-log": ["--access-log"],
                       "trace-1%": ["--otlp-endpoint", collector.url, "--trace-sample-ratio", "0.01"],
                       "trace-100%": ["--otlp-endpoint", collector.url, "--trace-sample-ratio", "1"]}
            try:
                for scenario in ("place-order", "get-order"):
                    lines = {name: [] for name in configs}
                    for _ in range(args.runs):
                        for name, extra in configs.items():
                            srv = Server(b, *extra, "--roles", "command,query,admin,projector,saga")
                            try:
                                cpu = cpu_seconds(srv.proc.pid)
                                line = run_json([b, "bench", "http", "--target", srv.url, "--scenario", scenario,
                                                 "--connections", "64", "--duration", str(args.duration), "--warmup", "2"])
                                # The server's CPU per measured request (seeding and warm-up included alike
                                # in every configuration): overhead that a loaded machine's throughput hides.
                                line["server_cpu_us_per_request"] = round(
                                    1e6 * (cpu_seconds(srv.proc.pid) - cpu) / max(1, line["ok"] + line["non_2xx"]), 1)
                                line["spans"] = metric_values(srv.url, "orderflow_trace_spans_")
                                lines[name].append(line)
                            finally:
                                srv.stop()
                    base = statistics.median(line["requests_per_s"] for line in lines["off"])
                    base_cpu = statistics.median(line["server_cpu_us_per_request"] for line in lines["off"])
                    for name, runs in lines.items():
                        report(f"bench http --scenario {scenario} --connections 64, {name}", runs,
                               ["requests_per_s", "server_cpu_us_per_request", "p50_us", "p99_us", "non_2xx"])
                        rate = statistics.median(line["requests_per_s"] for line in runs)
                        cpu = statistics.median(line["server_cpu_us_per_request"] for line in runs)
                        print(f"  {'requests_per_s vs off':42} {100 * (rate / base - 1):+.1f}%")
                        print(f"  {'server_cpu_us_per_request vs off':42} {100 * (cpu / base_cpu - 1):+.1f}%   "
                              f"spans (last run): {runs[-1]['spans']}")
            finally:
                collector.close()
        if "postgres" in only:
            pg = os.environ.get("ORDERFLOW_TEST_PG")
            if not pg:
                print("== postgres: skipped (ORDERFLOW_TEST_PG is not set; run under scripts/pg-test-server.sh)")
            else:
                lines = [run_json([b, "bench", "append", "--writers", "256", "--streams", "1000", "--events", "200000",
                                   "--store", pg]) for _ in range(args.runs)]
                report("bench append --store postgres://… --writers 256 --streams 1000 --events 200000", lines,
                       ["events_per_s", "p50_us", "p99_us", "raw_rows_per_s", "ratio_to_raw", "no_group_commit_events_per_s",
                        "group_commit_speedup"])
                lines = [run_json([b, "bench", "append", "--writers", "16", "--streams", "1", "--events", "20000",
                                   "--store", pg]) for _ in range(args.runs)]
                report("bench append --store postgres://… --writers 16 --streams 1", lines,
                       ["events_per_s", "p99_us", "conflicts"])
                # Default servers on the one database. A command is a read and an append of one event
                # (deposit: many accounts; deposit-one-account: every request on one stream).
                http_keys = ["requests_per_s", "p50_us", "p99_us", "non_2xx", "transport_errors"]
                for scenario, connections, keys in (
                        ("deposit", 64, http_keys), ("deposit", 16, http_keys),
                        ("deposit-one-account", 16, http_keys + ["appends_written", "appends_version_conflict"]),
                        ("place-order", 64, http_keys),
                        ("place-order-confirmed", 64, http_keys + ["confirmed_per_s", "confirm_p99_ms"])):
                    lines = []
                    for _ in range(args.runs):
                        with fresh_database(pg) as db:
                            lines.append(http_on_servers(b, ["--store", db], 1, scenario, connections, args.duration))
                    report(f"bench http --scenario {scenario} --connections {connections}, default serve on PostgreSQL",
                           lines, keys)
                # Scale-out: two servers on the one database, each under the same load as the one above,
                # at once; their requests/s summed (p99: the worse of the two).
                for scenario in ("place-order", "deposit"):
                    lines = []
                    for _ in range(args.runs):
                        with fresh_database(pg) as db:
                            lines.append(http_on_servers(b, ["--store", db], 2, scenario, 64, args.duration))
                    report(f"bench http --scenario {scenario} --connections 64 against each of two servers on one "
                           f"PostgreSQL, at once", lines, http_keys)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
