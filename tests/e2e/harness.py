"""End-to-end harness: runs the real `orderflow serve` binary and speaks HTTP to it.

Stdlib, with python3-yaml and python3-jsonschema: every answer a Client gets is checked against
docs/openapi.yaml (openapi.py). The binary is $ORDERFLOW_BIN, else build/orderflow under the repository root.

    with Server() as srv:            # fresh temp data dir, port 0
        c = srv.client()             # one keep-alive connection
        r = c.post("/api/v1/accounts", {"account_id": "a1"})
        assert r.status == 201 and r.json["version"] == 0

The store is the embedded one, or with ORDERFLOW_E2E_STORE=postgres a PostgreSQL schema of the server
ORDERFLOW_TEST_PG names (scripts/pg-test-server.sh): each data dir gets its own fresh schema, so a
server restarted on the same data dir finds the same store, as on the embedded store.
"""

import atexit
import http.client
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openapi

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
API = "/api/v1"

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID_V7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SERVING_LINE = re.compile(r"^orderflow: serving https?://127\.0\.0\.1:(\d+) \(.*\)$")

START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
REQUEST_TIMEOUT = 30.0


_binary_copy = None
_binary_missing = False


def binary():
    """A private copy of $ORDERFLOW_BIN (else build/orderflow), made once per test process, so a rebuild
    that relinks the binary during a run neither breaks the run nor mixes two builds in it."""
    global _binary_copy, _binary_missing
    if _binary_copy:
        return _binary_copy
    path = os.path.abspath(os.environ.get("ORDERFLOW_BIN") or os.path.join(REPO_ROOT, "build", "orderflow"))
    deadline = time.monotonic() + (0 if _binary_missing else 20)
    while not os.access(path, os.X_OK):  # a relink in progress removes it for a moment
        if time.monotonic() >= deadline:
            _binary_missing = True  # fail the other test classes at once
            raise RuntimeError(f"orderflow binary not found at {path} (build it, or set ORDERFLOW_BIN)")
        time.sleep(0.2)
    copy_dir = tempfile.mkdtemp(prefix="orderflow-e2e-bin-")
    atexit.register(shutil.rmtree, copy_dir, True)
    copy = os.path.join(copy_dir, "orderflow")
    for attempt in range(50):
        try:
            shutil.copy2(path, copy)
            break
        except OSError:
            if attempt == 49:
                raise
            time.sleep(0.2)
    _binary_copy = copy
    return copy


_ids = itertools.count(1)


def thread_stacks(pid):
    """Every thread's stack of a running process (gdb), to say where a server that will not stop is stuck."""
    if not shutil.which("gdb"):
        return "(gdb is not installed)"
    out = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 30"],
                         capture_output=True, text=True, timeout=60)
    return "\n".join(l for l in out.stdout.splitlines() if l.startswith(("Thread", "#")))


def on_postgres():
    """Does this run put the servers on PostgreSQL (ORDERFLOW_E2E_STORE=postgres)?"""
    store = os.environ.get("ORDERFLOW_E2E_STORE", "embedded")
    if store not in ("embedded", "postgres"):
        raise RuntimeError(f"ORDERFLOW_E2E_STORE must be embedded or postgres, not {store!r}")
    return store == "postgres"


def pg_base_url():
    """$ORDERFLOW_TEST_PG; skips the test without it."""
    url = os.environ.get("ORDERFLOW_TEST_PG")
    if not url:
        raise unittest.SkipTest("ORDERFLOW_TEST_PG is not set (run under scripts/pg-test-server.sh)")
    return url


def psql(sql, url=None):
    """Runs SQL on the test PostgreSQL server with psql; returns its unaligned output."""
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url or pg_base_url(),
                          "-c", sql], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"psql {sql!r}: {out.stderr.strip()}")
    return out.stdout.strip()


def new_pg_store():
    """A fresh, empty schema on the test PostgreSQL server: the --store URL that puts a server in it
    (libpq's `options=-c search_path=…`)."""
    base = pg_base_url()
    schema = f"e2e_{uuid.uuid4().hex[:16]}"
    psql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    return base + sep + "options=" + urllib.parse.quote(f"-c search_path={schema}", safe="")


_stores = {}  # data dir -> --store URL (PostgreSQL runs)
_stores_lock = threading.Lock()


def store_for(data_dir):
    """The --store URL of the servers on `data_dir`: None on the embedded store; on PostgreSQL the
    schema made for that data dir the first time it is asked for."""
    if not on_postgres():
        return None
    key = os.path.realpath(data_dir)
    with _stores_lock:
        if key not in _stores:
            _stores[key] = new_pg_store()
        return _stores[key]


def new_id(prefix="id"):
    """A fresh entity id within the 1-64 [A-Za-z0-9_.:-] charset, unique per process and run."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}-{next(_ids)}"


class Server:
    """One `orderflow serve --listen 127.0.0.1:0 --data DIR [--store URL]` process. `store`: a --store URL
    (e.g. several servers on one PostgreSQL schema); default: store_for(DIR)."""

    def __init__(self, data_dir=None, extra_args=(), store=None):
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="orderflow-e2e-")
        self.store = store or store_for(self.data_dir)
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None
        self.stdout_lines = []
        self._stderr_file = None
        self._stdout_thread = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self):
        try:
            return self._start()
        except BaseException:
            self.cleanup()  # the temp data dir too, if it is ours
            raise

    def _start(self):
        self._stderr_file = tempfile.TemporaryFile(prefix="orderflow-e2e-stderr-")
        args = [binary(), "serve", "--listen", "127.0.0.1:0", "--data", self.data_dir, *self.store_args(),
                *self.extra_args]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr_file, cwd=self.data_dir)
        first = self._read_first_line(START_TIMEOUT)
        m = SERVING_LINE.match(first)
        if not m:
            self.kill()
            raise RuntimeError(f"unexpected first stdout line {first!r}; stderr: {self.stderr()}")
        self.port = int(m.group(1))
        self.stdout_lines.append(first)
        self._stdout_thread = threading.Thread(target=self._drain_stdout, daemon=True)
        self._stdout_thread.start()
        return self

    def _read_first_line(self, timeout):
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise RuntimeError(f"server printed no serving line within {timeout}s; stderr: {self.stderr()}")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    rc = self.proc.wait(timeout=5)
                    raise RuntimeError(f"server exited ({rc}) before serving; stderr: {self.stderr()}")
                buf += chunk
        line, _, rest = buf.partition(b"\n")
        if rest:
            self.stdout_lines.extend(rest.decode(errors="replace").splitlines())
        return line.decode(errors="replace").rstrip("\r")

    def _drain_stdout(self):
        for raw in self.proc.stdout:
            self.stdout_lines.append(raw.decode(errors="replace").rstrip("\n"))

    def store_args(self):
        """The --store argument of this server (none on the embedded store)."""
        return ["--store", self.store] if self.store else []

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stacks = thread_stacks(self.proc.pid)
            self.kill()
            raise AssertionError(f"server did not exit within {timeout}s; stderr: {self.stderr()}\n"
                                 f"its threads:\n{stacks}")
        if self._stdout_thread:
            self._stdout_thread.join(timeout=5)
        return rc

    def stop(self, expect_rc=0):
        """SIGTERM and wait; the exit code must be `expect_rc` (0 per docs/api.md §1)."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
        else:
            self.signal(signal.SIGTERM)
            rc = self.wait()
        if expect_rc is not None and rc != expect_rc:
            raise AssertionError(f"server exit code {rc}, expected {expect_rc}; stderr: {self.stderr()}")
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def cleanup(self):
        self.kill()
        if self._stdout_thread:
            self._stdout_thread.join(timeout=5)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if self._stderr_file:
            self._stderr_file.close()
            self._stderr_file = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def stderr(self, tail=4000):
        """The server's stderr so far: its last `tail` characters (None: all of it)."""
        if not self._stderr_file:
            return ""
        self._stderr_file.seek(0)
        text = self._stderr_file.read().decode(errors="replace")
        return text if tail is None else text[-tail:]

    def runs_saga(self):
        """Does this server run the fulfilment saga now, by its last saga-lease line on stderr? (Only a
        server on PostgreSQL writes them; see SagaRunner.)"""
        text = self.stderr(None)
        return text.rfind("holds the saga lease") > text.rfind("saga lease is lost")

    def verify(self):
        """`orderflow verify` on this server's store (read models in a temp dir): (exit code, output)."""
        with tempfile.TemporaryDirectory(prefix="orderflow-e2e-verify-") as d:
            store = self.store_args() or ["--data", self.data_dir]
            out = subprocess.run([binary(), "verify", *store, *(["--data", d] if self.store else [])],
                                 capture_output=True, text=True, timeout=120, cwd=d)
        return out.returncode, out.stdout + out.stderr

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.stop()
        finally:
            self.cleanup()

    # -- clients --------------------------------------------------------------------------------------
    def client(self):
        return Client(self.port)

    def raw_socket(self, timeout=REQUEST_TIMEOUT):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s


class Collector:
    """An OTLP/HTTP receiver on a loopback port, answering 200 to every POST as the specification asks of a
    full success. With `keep`, it keeps every span POSTed to /v1/traces (with its resource and scope) and each
    request's (path, Content-Type, body); without, it only reads them (a fast endpoint for benchmarks)."""

    def __init__(self, keep=True):
        self.spans, self.requests = [], []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if keep:
                    collector.take(self.path, self.headers.get("Content-Type"), body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def take(self, path, content_type, body):
        with self.lock:
            self.requests.append((path, content_type, body))
            for rs in json.loads(body)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        self.spans.append(dict(span, resource=rs["resource"], scope=ss["scope"]))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def trace(self, trace_id):
        with self.lock:
            return [s for s in self.spans if s["traceId"] == trace_id]

    def wait_for(self, trace_id, names, timeout=10.0):
        """The trace's spans once every name in `names` is among them."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.trace(trace_id)
            if names <= {s["name"] for s in spans}:
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"missing {names - {s['name'] for s in spans}} in {[s['name'] for s in spans]}")
            time.sleep(0.05)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # case-insensitive mapping (http.client.HTTPMessage or CIDict)
        self.body = body  # bytes
        self._json = None

    @property
    def json(self):
        if self._json is None:
            self._json = json.loads(self.body.decode("utf-8"))
        return self._json

    def header(self, name):
        return self.headers.get(name)

    def __repr__(self):
        return f"<{self.status} {self.body[:400]!r}>"


class Client:
    """One keep-alive HTTP/1.1 connection (re-opened transparently if the server closed it)."""

    def __init__(self, port, timeout=REQUEST_TIMEOUT):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        # Every request carries an X-Correlation-Id (one is made up unless the caller sent one); the ids
        # sent, in order, let a test find the events a request caused (metadata.correlation_id, docs/api.md §8)
        # even while background work (the saga) appends events of its own.
        self.sent = []

    def close(self):
        self.conn.close()

    def request(self, method, path, body=None, headers=None, raw=None, content_type="application/json"):
        """body: a JSON-able value; raw: bytes/str sent as they are. content_type None: no header."""
        hdrs = {}
        data = None
        if raw is not None:
            data = raw.encode() if isinstance(raw, str) else raw
        elif body is not None:
            data = json.dumps(body).encode()
        if content_type is not None and (data is not None or method in ("POST", "PUT", "PATCH", "DELETE")):
            hdrs["Content-Type"] = content_type  # a write is JSON even without a body (docs/api.md §2)
        if headers:
            hdrs.update(headers)
        corr = next((v for k, v in hdrs.items() if k.lower() == "x-correlation-id"), None)
        if corr is None:
            corr = hdrs["X-Correlation-Id"] = "e2e-" + uuid.uuid4().hex
        self.sent.append(corr)
        if data is None and method in ("POST", "PUT", "PATCH"):
            data = b""
        self.conn.request(method, path, body=data, headers=hdrs)
        resp = self.conn.getresponse()
        payload = resp.read()
        # Every answer of a documented operation is as docs/openapi.yaml says (tests/e2e/openapi.py).
        openapi.check_answer(method, path, resp.status, resp.headers, payload)
        return Response(resp.status, resp.headers, payload)

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post(self, path, body=None, headers=None, **kw):
        return self.request("POST", path, body=body, headers=headers, **kw)

    def put(self, path, body=None, headers=None, **kw):
        return self.request("PUT", path, body=body, headers=headers, **kw)


# -- raw HTTP over a socket (pipelining) ------------------------------------------------------------------
def raw_request(method, path, body=None, headers=None, content_type="application/json"):
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if body is not None and content_type:
        lines.append(f"Content-Type: {content_type}")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(data)}")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


class CIDict(dict):
    def get(self, key, default=None):
        return super().get(key.lower(), default)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(key.lower())


class ResponseReader:
    """Reads HTTP/1.1 responses one after another from a socket (Content-Length or chunked)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read(self):
        """The next response; EOFError if the connection closed before its first byte."""
        status_line = self._line().decode()
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ValueError(f"bad status line {status_line!r}")
        status = int(parts[1])
        headers = CIDict()
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                self._exact(2)
        else:
            body = self._exact(int(headers.get("content-length", "0")))
        return Response(status, headers, body)

    def at_eof(self, timeout=5.0):
        """True if the peer closes the connection (without sending more) within `timeout`."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


# -- domain helpers -----------------------------------------------------------------------------------------
def create_product(c, product_id=None, price=250, stock=10, name=None):
    product_id = product_id or new_id("p")
    r = c.post(f"{API}/products", {"product_id": product_id, "name": name or f"Product {product_id}",
                                   "unit_price_cents": price, "initial_stock": stock})
    if r.status != 201:
        raise AssertionError(f"create product {product_id}: {r}")
    return product_id


def create_account(c, account_id=None, balance=0, owner="E2E Owner"):
    account_id = account_id or new_id("a")
    body = {"account_id": account_id}
    if owner is not None:
        body["owner"] = owner
    r = c.post(f"{API}/accounts", body)
    if r.status != 201:
        raise AssertionError(f"create account {account_id}: {r}")
    if balance:
        r = c.post(f"{API}/accounts/{account_id}/deposit", {"amount_cents": balance})
        if r.status != 200:
            raise AssertionError(f"deposit to {account_id}: {r}")
    return account_id


def place_order(c, customer_id, items, headers=None, **extra):
    body = {"customer_id": customer_id, "items": [{"product_id": p, "quantity": q} for p, q in items]}
    body.update(extra)
    r = c.post(f"{API}/orders", body, headers=headers)
    if r.status != 202:
        raise AssertionError(f"place order: {r}")
    return r.json["order_id"]


def scan_events(c, from_position=1, limit=100, max_pages=10000, **filters):
    """Every event of the global log from `from_position`, following next_from."""
    events = []
    pos = from_position
    for _ in range(max_pages):
        q = f"from_position={pos}&limit={limit}" + "".join(f"&{k}={v}" for k, v in filters.items())
        r = c.get(f"{API}/admin/events?{q}")
        if r.status != 200:
            raise AssertionError(f"GET /admin/events?{q}: {r}")
        page = r.json["events"]
        if not page:
            return events
        events.extend(page)
        nxt = r.json["next_from"]
        if nxt <= pos:
            raise AssertionError(f"next_from {nxt} does not advance past {pos}")
        pos = nxt
    raise AssertionError("admin/events paging did not end")


def last_position(c):
    """The global position of the newest event (0 if the log is empty)."""
    events = scan_events(c)
    return events[-1]["position"] if events else 0


def events_caused_by(c, correlation_ids, after_position=0):
    """Events after `after_position` whose metadata.correlation_id is one of `correlation_ids`."""
    ids = set(correlation_ids)
    return [e for e in scan_events(c, from_position=after_position + 1)
            if (e.get("metadata") or {}).get("correlation_id") in ids]


def wait_quiet(c, settle=0.3, timeout=15.0):
    """Waits until the global log has not grown for `settle` seconds (background work such as the
    fulfilment saga has finished); returns the last position."""
    deadline = time.monotonic() + timeout
    last, since = last_position(c), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = last_position(c)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            return last
    raise AssertionError(f"the event log kept growing for {timeout}s (last position {last})")


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls `predicate` until it answers something true (which is returned); AssertionError naming `what`
    after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(interval)


TERMINAL_ORDER = {"CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"}


def settled_orders(c, order_ids, timeout=30.0):
    """Waits until every order is in a terminal state (folded from the store: ?consistency=strong) and
    answers them by id."""
    done = {}

    def all_terminal():
        for o in order_ids:
            if o not in done:
                r = c.get(f"{API}/orders/{o}?consistency=strong")
                if r.status != 200 or r.json["status"] not in TERMINAL_ORDER:
                    return False
                done[o] = r.json
        return True

    try:
        wait_until(all_terminal, timeout, "orders in a terminal state")
    except AssertionError:
        late = [o for o in order_ids if o not in done][:3]
        raise AssertionError(f"{len(order_ids) - len(done)} of {len(order_ids)} orders not terminal within "
                             f"{timeout}s, e.g. {[(o, c.get(f'{API}/orders/{o}?consistency=strong')) for o in late]}")
    return done


def transactions(c, account_id):
    """Every transaction of an account's ledger (read model), following next_cursor."""
    out, cursor = [], 0
    while True:
        r = c.get(f"{API}/accounts/{account_id}/transactions?limit=1000&cursor={cursor}")
        if r.status != 200:
            raise AssertionError(f"transactions of {account_id}: {r}")
        out.extend(r.json["transactions"])
        if r.json["next_cursor"] is None:
            return out
        cursor = r.json["next_cursor"]


def wait_caught_up(c, timeout=20.0):
    """Waits until the log is quiet and every projection of the server behind `c` has applied all of it."""
    wait_quiet(c, timeout=timeout)
    try:
        wait_until(lambda: all(p["lag"] == 0 for p in c.get(f"{API}/admin/projections").json), timeout,
                   "projections caught up")
    except AssertionError as e:
        raise AssertionError(f"{e}; /admin/projections: {c.get(f'{API}/admin/projections').json}") from None


def section5_problems(c, products, accounts, orders):
    """The docs/api.md §5 invariants, checked through the API of the server behind `c` at a quiet moment.
    products: id -> on_hand it must have (nothing shipped); accounts: id -> deposits - withdrawals the
    clients were answered 2xx for; orders: id -> the order (terminal). Answers one sentence per problem."""
    problems = []
    held = {p: 0 for p in products}
    charged = {a: 0 for a in accounts}
    charged_orders = set()
    for o in orders.values():
        if o["status"] not in TERMINAL_ORDER:
            problems.append(f"order {o['order_id']} is {o['status']}")
        if o["status"] == "CONFIRMED":
            for line in o["items"]:
                held[line["product_id"]] += line["quantity"]
        if o["status"] in ("CONFIRMED", "SHIPPED", "DELIVERED") and o["customer_id"] in charged:
            charged[o["customer_id"]] += o["total_cents"]
    for pid, on_hand in products.items():
        p = c.get(f"{API}/products/{pid}").json
        if not 0 <= p["reserved"] <= p["on_hand"] or p["available"] != p["on_hand"] - p["reserved"]:
            problems.append(f"product {pid}: on_hand {p['on_hand']}, reserved {p['reserved']}, "
                            f"available {p['available']}")
        if (p["on_hand"], p["reserved"]) != (on_hand, held[pid]):
            problems.append(f"product {pid}: on_hand {p['on_hand']} reserved {p['reserved']}, but confirmed "
                            f"orders hold {held[pid]} of {on_hand}")
    for aid, net_funds in accounts.items():
        balance = c.get(f"{API}/accounts/{aid}").json["balance_cents"]
        expected = net_funds - charged[aid]
        if balance < 0 or balance != expected:
            problems.append(f"account {aid}: balance {balance}, expected deposits - withdrawals - net charges "
                            f"= {expected}")
        per_order = {}
        for t in transactions(c, aid):
            if t["type"] in ("charge", "refund"):
                per_order.setdefault(t["order_id"], []).append(t)
            if t["type"] == "charge":
                charged_orders.add(t["order_id"])
        for oid, ts in per_order.items():
            charges = [t["amount_cents"] for t in ts if t["type"] == "charge"]
            refunds = [t["amount_cents"] for t in ts if t["type"] == "refund"]
            o = orders.get(oid)
            want = 0 if o is None or o["status"] == "CANCELLED" else o["total_cents"]
            if len(charges) > 1 or len(refunds) > 1 or sum(charges) - sum(refunds) != want:
                problems.append(f"order {oid}: charges {charges}, refunds {refunds}, net should be {want}")
    for o in orders.values():
        if o["status"] != "CANCELLED" and o["customer_id"] in accounts and o["order_id"] not in charged_orders:
            problems.append(f"order {o['order_id']} is {o['status']} but its customer was never charged")
    violations = c.get(f"{API}/admin/invariants").json["violations"]
    if violations:
        problems.append(f"/admin/invariants: {violations[:5]}")
    return problems


def read_sse(port, path, headers, want):
    """The first `want` events of an SSE feed (the server's headers and comments skipped), each a dict of its
    fields: id, event, data (as sent)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
    buf, events = b"", []
    while len(events) < want:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf and len(events) < want:
            block, _, buf = buf.partition(b"\n\n")
            fields = dict(line.split(": ", 1) for line in block.decode().splitlines()
                          if ": " in line and not line.startswith(":"))
            if "id" in fields:
                events.append(fields)
    s.close()
    return events


def stream_events(c, stream_id, max_pages=10000):
    """Every event of one stream, oldest first, following next_from."""
    events, frm = [], 0
    for _ in range(max_pages):
        r = c.get(f"{API}/admin/streams/{stream_id}/events?from_version={frm}&limit=100")
        if r.status != 200:
            raise AssertionError(f"GET stream {stream_id}: {r}")
        page = r.json["events"]
        if not page:
            return events
        events.extend(page)
        if r.json["next_from"] <= frm:
            raise AssertionError(f"stream next_from {r.json['next_from']} does not advance past {frm}")
        frm = r.json["next_from"]
    raise AssertionError("stream paging did not end")


class ErrorAsserts:
    """Mixin for unittest.TestCase: checks the docs/api.md §3 error shape."""

    def assertError(self, r, status, code):
        self.assertEqual(r.status, status, f"expected {status} {code}, got {r}")
        ctype = r.header("Content-Type") or ""
        self.assertTrue(ctype.startswith("application/json"), f"error Content-Type {ctype!r}")
        body = r.json
        self.assertIsInstance(body, dict, r)
        self.assertIn("error", body, r)
        err = body["error"]
        self.assertEqual(err.get("code"), code, r)
        self.assertIsInstance(err.get("message"), str, r)
        self.assertTrue(err["message"], f"empty error message: {r}")
        self.assertIn("details", err, r)
        self.assertIsInstance(err["details"], dict, r)

    def assertAccepted(self, r, status, id_field, id_value=None):
        """An accepted write: {<entity>_id, version, position} and ETag "V"."""
        self.assertEqual(r.status, status, r)
        body = r.json
        self.assertIn(id_field, body, r)
        if id_value is not None:
            self.assertEqual(body[id_field], id_value, r)
        self.assertIsInstance(body.get("version"), int, r)
        self.assertIsInstance(body.get("position"), int, r)
        self.assertGreaterEqual(body["version"], 0, r)
        self.assertGreaterEqual(body["position"], 1, r)
        self.assertEqual(r.header("ETag"), f'"{body["version"]}"', r)
        return body


class ServerTestCase(ErrorAsserts):
    """Mixin: one fresh server per test class (tests use fresh ids); stopped with SIGTERM -> exit 0."""

    server = None
    server_args = ()  # extra arguments of `serve`

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = Server(extra_args=cls.server_args).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            cls.server.cleanup()
            super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.c = self.server.client()
        self.addCleanup(self.c.close)

    def mark(self, client=None):
        """Where the log and the client's requests are now; see assertNothingWrittenSince."""
        client = client or self.c
        return (client, last_position(client), len(client.sent))

    def assertNothingWrittenSince(self, mark, msg="a rejected request wrote events"):
        """No request the client sent since `mark` caused an event (found by correlation id, so events the
        saga appends for earlier orders don't count)."""
        client, position, index = mark
        caused = events_caused_by(client, client.sent[index:], position)
        self.assertEqual([(e["position"], e["stream_id"], e["type"], e["metadata"].get("correlation_id"))
                          for e in caused], [], msg)
