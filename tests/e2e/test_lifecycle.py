"""docs/api.md §1: restart on the same data dir keeps everything; SIGTERM finishes in-flight requests and exits 0."""

import concurrent.futures
import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

from harness import (API, ErrorAsserts, ResponseReader, Server, binary, create_account, create_product, events_caused_by,
                     new_id, place_order, raw_request, scan_events, stream_events, wait_quiet)


class Lifecycle(ErrorAsserts, unittest.TestCase):
    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="orderflow-e2e-life-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.cleanup()

    def start(self):
        s = Server(data_dir=self.data_dir).start()
        self.servers.append(s)
        return s

    def test_sigterm_on_idle_server_exits_0(self):
        s = self.start()
        c = s.client()
        self.assertEqual(c.get("/healthz").status, 200)  # an idle keep-alive connection stays open
        self.assertEqual(s.stop(), 0)
        c.close()
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", s.port), timeout=2).close()

    def test_a_port_in_use_ends_serve_before_it_opens_the_store(self):
        # exit 1 naming the address, and nothing opened: no store files, no lease taken from the
        # process on the same store (PostgreSQL runs) on its way out.
        s = self.start()
        other = tempfile.mkdtemp(prefix="orderflow-e2e-life-")
        self.addCleanup(shutil.rmtree, other, True)
        r = subprocess.run([binary(), "serve", "--listen", f"127.0.0.1:{s.port}", "--data", other, *s.store_args()],
                           capture_output=True, text=True, timeout=60, cwd=other)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"cannot listen on 127.0.0.1:{s.port}", r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertNotIn("lease", r.stderr)
        self.assertEqual(os.listdir(other), [])
        self.assertEqual(s.client().get("/healthz").status, 200)

    def test_restart_keeps_entities_events_and_idempotency_keys(self):
        s = self.start()
        c = s.client()
        pid = create_product(c, price=450, stock=9)
        c.post(f"{API}/products/{pid}/restock", {"quantity": 1})
        aid = create_account(c, balance=5000, owner="Restart")
        c.post(f"{API}/accounts/{aid}/withdraw", {"amount_cents": 1000})
        o1 = place_order(c, aid, [(pid, 2)])
        o2 = place_order(c, aid, [(pid, 1)], order_id=str(uuid.uuid4()))
        c.post(f"{API}/orders/{o2}/cancel", {"reason": "restart test"})
        k = "restart-" + uuid.uuid4().hex
        keyed = c.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 3}, headers={"Idempotency-Key": k})
        self.assertEqual(keyed.status, 200, keyed)
        wait_quiet(c)  # any background work (a saga) done before the snapshot

        paths = [f"{API}/products/{pid}", f"{API}/accounts/{aid}", f"{API}/orders/{o1}", f"{API}/orders/{o2}",
                 f"{API}/orders/{o2}?version=0", f"{API}/orders/{o1}/events", f"{API}/orders/{o2}/events"]
        before = {p: c.get(p) for p in paths}
        for p, r in before.items():
            self.assertEqual(r.status, 200, (p, r))
        log = scan_events(c)
        c.close()
        self.assertEqual(s.stop(), 0)

        s2 = self.start()
        self.assertNotEqual(s2.proc.pid, s.proc.pid)
        c2 = s2.client()
        for p, r in before.items():
            after = c2.get(p)
            self.assertEqual(after.status, 200, (p, after))
            self.assertEqual(after.json, r.json, p)
            self.assertEqual(after.header("ETag"), r.header("ETag"), p)
        self.assertEqual(scan_events(c2)[:len(log)], log)

        # The idempotency key survived: a replay writes nothing.
        n_sent = len(c2.sent)
        again = c2.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 3}, headers={"Idempotency-Key": k})
        self.assertEqual((again.status, again.body), (keyed.status, keyed.body))
        self.assertEqual(events_caused_by(c2, c2.sent[n_sent:], log[-1]["position"]), [])
        self.assertEqual(c2.get(f"{API}/accounts/{aid}").json, before[f"{API}/accounts/{aid}"].json)

        # Versions and positions continue.
        r = c2.post(f"{API}/accounts/{aid}/deposit", {"amount_cents": 1})
        b = self.assertAccepted(r, 200, "account_id", aid)
        self.assertEqual(b["version"], before[f"{API}/accounts/{aid}"].json["version"] + 1)
        self.assertGreater(b["position"], log[-1]["position"])
        self.assertError(c2.post(f"{API}/products", {"product_id": pid, "name": "x", "unit_price_cents": 1,
                                                     "initial_stock": 1}), 409, "already_exists")
        o3 = place_order(c2, new_id("c"), [(pid, 1)])
        self.assertGreater(o3.replace("-", "")[:12], o1.replace("-", "")[:12])
        wait_quiet(c2)
        account2 = c2.get(f"{API}/accounts/{aid}").json
        self.assertEqual(account2["balance_cents"], before[f"{API}/accounts/{aid}"].json["balance_cents"] + 1)
        log2 = scan_events(c2)
        c2.close()
        self.assertEqual(s2.stop(), 0)

        # A third start sees the writes of the second.
        s3 = self.start()
        c3 = s3.client()
        self.assertEqual(c3.get(f"{API}/accounts/{aid}").json, account2)
        self.assertEqual(c3.get(f"{API}/orders/{o3}").status, 200)
        self.assertEqual(scan_events(c3)[:len(log2)], log2)
        c3.close()
        self.assertEqual(s3.stop(), 0)

    def _hammer_then_sigterm(self, aid, n_threads=64, min_answers=150):
        """One server life: n_threads connections deposit 1 cent in a loop, each request with its own
        X-Correlation-Id; SIGTERM once min_answers have come back. Returns (exit code, answered: correlation id
        -> (status, body), unanswered: correlation id -> client error with no byte of an answer, broken: answers
        cut short)."""
        s = self.start()
        answered, unanswered, broken = {}, {}, []
        lock = threading.Lock()
        enough = threading.Event()
        stop_at = time.monotonic() + 20

        def worker():
            cl = http.client.HTTPConnection("127.0.0.1", s.port, timeout=15)
            try:
                while time.monotonic() < stop_at:
                    corr = "inflight-" + uuid.uuid4().hex
                    try:
                        cl.request("POST", f"{API}/accounts/{aid}/deposit", body='{"amount_cents": 1}',
                                   headers={"Content-Type": "application/json", "X-Correlation-Id": corr})
                        resp = cl.getresponse()
                        body = resp.read()
                    except (ConnectionRefusedError, http.client.RemoteDisconnected, ConnectionResetError,
                            BrokenPipeError) as e:
                        with lock:  # no byte of an answer came back
                            unanswered[corr] = repr(e)
                        return
                    except (http.client.HTTPException, OSError) as e:
                        with lock:  # an answer cut short, or none and no close
                            broken.append((corr, repr(e)))
                        return
                    with lock:
                        answered[corr] = (resp.status, body[:200])
                        if len(answered) >= min_answers:
                            enough.set()
                    if (resp.getheader("Connection") or "").lower() == "close":
                        return
            finally:
                cl.close()

        with concurrent.futures.ThreadPoolExecutor(n_threads) as pool:
            futures = [pool.submit(worker) for _ in range(n_threads)]
            self.assertTrue(enough.wait(15), "load did not get going")
            s.signal(signal.SIGTERM)
            rc = s.wait()
            for f in futures:
                f.result(timeout=30)
        return rc, answered, unanswered, broken

    def test_sigterm_with_requests_in_flight(self):
        """64 connections hammer deposits while the server gets SIGTERM (several server lives on one data dir,
        since the window is short). Each life exits 0; no answer is cut short; every deposit answered is
        answered 200 (no If-Match was sent); after a restart the account's events are exactly the deposits
        answered 200: nothing written unanswered, nothing answered unwritten, nothing rejected but written."""
        s = self.start()
        c = s.client()
        aid = create_account(c)
        c.close()
        self.assertEqual(s.stop(), 0)

        codes, answered, unanswered, broken = [], {}, {}, []
        for _ in range(6):
            rc, a, u, b = self._hammer_then_sigterm(aid)
            codes.append(rc)
            answered.update(a)
            unanswered.update(u)
            broken.extend(b)

        s2 = self.start()
        c2 = s2.client()
        events = stream_events(c2, f"account-{aid}")[1:]
        acct = c2.get(f"{API}/accounts/{aid}").json
        c2.close()
        self.assertEqual(s2.stop(), 0)

        written = {e["metadata"]["correlation_id"]: e["position"] for e in events}
        ok = {k for k, (status, _) in answered.items() if status == 200}
        problems = []
        if any(codes):
            problems.append(f"exit codes after SIGTERM: {codes}")
        if broken:
            problems.append(f"{len(broken)} answers cut short: {broken[:3]}")
        lost = sorted((p, k, unanswered.get(k, "no client record")) for k, p in written.items() if k not in answered)
        if lost:
            problems.append(
                f"{len(lost)} deposits written but never answered: POST {API}/accounts/{aid}/deposit "
                '{"amount_cents": 1} with X-Correlation-Id K, the client saw the connection close without a '
                f"response, yet an event with K exists; (position, K, client error): {lost[:3]}")
        not_ok = [(k, status, body) for k, (status, body) in answered.items() if status != 200]
        if not_ok:
            problems.append(f"{len(not_ok)} deposits without If-Match answered other than 200 "
                            f"(X-Correlation-Id, status, body): {not_ok[:2]}")
        rejected_written = [k for k, _, _ in not_ok if k in written]
        if rejected_written:
            problems.append(f"{len(rejected_written)} deposits answered non-2xx but written: {rejected_written[:3]}")
        unwritten = sorted(k for k in ok if k not in written)
        if unwritten:
            problems.append(f"{len(unwritten)} deposits answered 200 but not written: {unwritten[:3]}")
        if acct["balance_cents"] != len(written):
            problems.append(f"balance {acct['balance_cents']} != {len(written)} deposit events")
        if problems:
            self.fail("\n".join(problems))

    def test_sigterm_answers_requests_already_received(self):
        """16 connections each pipeline 20 deposits; SIGTERM once every connection has its first answer (so
        the server is reading each batch). Each connection gets only complete answers, then a clean close (no
        reset, no answer cut short); what was answered is exactly what was written. (Pipelined requests not
        yet started may go unanswered: HTTP/1.1 lets a server close after any complete answer.)"""
        s = self.start()
        c = s.client()
        aid = create_account(c)
        c.close()
        conns = [s.raw_socket(timeout=15) for _ in range(16)]
        readers = [ResponseReader(sock) for sock in conns]
        for sock, rd in zip(conns, readers):  # the server has accepted every connection
            sock.sendall(raw_request("GET", "/healthz"))
            self.assertEqual(rd.read().status, 200)
        batch = b"".join(raw_request("POST", f"{API}/accounts/{aid}/deposit", {"amount_cents": 1})
                         for _ in range(20))
        for sock in conns:
            sock.sendall(batch)
        answers = []
        for rd in readers:
            first = rd.read()
            self.assertEqual(first.status, 200, first)
            answers.append(first)
        s.signal(signal.SIGTERM)

        problems = []
        for i, rd in enumerate(readers):
            got, closed_by_header = 1, False
            while got < 20:
                try:
                    r = rd.read()
                except EOFError:
                    if rd.buf:
                        problems.append(f"conn {i}: closed mid-answer after {got} answers: {rd.buf[:200]!r}")
                    break
                except (ConnectionResetError, BrokenPipeError) as e:
                    problems.append(f"conn {i}: {e!r} after {got} answers")
                    break
                except socket.timeout:
                    problems.append(f"conn {i}: no answer and no close after {got} answers")
                    break
                answers.append(r)
                got += 1
                if r.status != 200:
                    problems.append(f"conn {i}: {r}")
                if (r.header("Connection") or "").lower() == "close":
                    closed_by_header = True
                    break
            if closed_by_header and not rd.at_eof(timeout=10):
                problems.append(f"conn {i}: not closed after Connection: close")
        for sock in conns:
            sock.close()
        rc = s.wait()
        self.assertEqual(rc, 0, s.stderr())
        self.assertEqual(problems, [])
        ok = [a for a in answers if a.status == 200]

        s2 = self.start()
        c2 = s2.client()
        acct = c2.get(f"{API}/accounts/{aid}").json
        self.assertEqual(acct["balance_cents"], len(ok), "answered deposits != written deposits")
        self.assertEqual(sorted(a.json["version"] for a in ok), list(range(1, len(ok) + 1)))
        c2.close()
        self.assertEqual(s2.stop(), 0)

    def test_sigterm_while_request_body_is_arriving(self):
        """A request whose head has arrived is in flight: SIGTERM must not drop it."""
        s = self.start()
        c = s.client()
        aid = create_account(c)
        c.close()
        body = b'{"amount_cents": 9' + b" " * 200_000 + b"}"
        head = (f"POST {API}/accounts/{aid}/deposit HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        sock = s.raw_socket(timeout=15)
        try:
            sock.sendall(head + body[:1000])
            time.sleep(0.2)  # let the server parse the head
            s.signal(signal.SIGTERM)
            time.sleep(0.2)
            try:
                sock.sendall(body[1000:])
            except (BrokenPipeError, ConnectionResetError) as e:
                self.fail(f"server cut an in-flight request: {e!r}")
            try:
                r = ResponseReader(sock).read()
            except (EOFError, ConnectionResetError) as e:
                self.fail(f"no answer to an in-flight request: {e!r}")
        finally:
            sock.close()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(s.wait(), 0, s.stderr())
        s2 = self.start()
        c2 = s2.client()
        self.assertEqual(c2.get(f"{API}/accounts/{aid}").json["balance_cents"], 9)
        c2.close()
        self.assertEqual(s2.stop(), 0)

    def test_sigint_also_exits_0(self):
        s = self.start()
        c = s.client()
        aid = create_account(c)
        c.close()
        s.signal(signal.SIGINT)
        self.assertEqual(s.wait(), 0, s.stderr())
        s2 = self.start()
        c2 = s2.client()
        self.assertEqual(c2.get(f"{API}/accounts/{aid}").status, 200)
        c2.close()
        self.assertEqual(s2.stop(), 0)


if __name__ == "__main__":
    unittest.main()
