"""Resource limits against hostile clients (docs/api.md §2): idle connections over the caps and clients that
never read large listings leave `/healthz` answering and the server's memory bounded."""

import socket
import time
import unittest

from harness import API, ServerTestCase, raw_request, Client


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Limits(ServerTestCase, unittest.TestCase):
    def healthz_answers(self, timeout=5.0):
        c = Client(self.server.port, timeout=timeout)
        try:
            return c.get("/healthz").status == 200
        finally:
            c.close()

    def test_300_idle_connections_from_one_address_leave_healthz_answering(self):
        idle = []
        try:
            for _ in range(300):
                idle.append(socket.create_connection(("127.0.0.1", self.server.port), timeout=5))
            time.sleep(0.2)
            started = time.monotonic()
            self.assertTrue(self.healthz_answers())
            self.assertLess(time.monotonic() - started, 2.0)
            s = self.server.raw_socket()
            try:
                s.sendall(raw_request("GET", f"{API}/products"))
                head = s.recv(4096).decode(errors="replace")
            finally:
                s.close()
            self.assertTrue(head.startswith("HTTP/1.1 503"), head[:200])
        finally:
            for s in idle:
                s.close()
            self.wait_until_served()

    def wait_until_served(self, timeout=10.0):
        # The server frees a closed connection's slot when it reads the close: under load that
        # can take a moment, and the next test's requests must not meet the cap this one filled.
        deadline = time.monotonic() + timeout
        while True:
            c = Client(self.server.port, timeout=5.0)
            try:
                if c.get(f"{API}/products").status != 503:
                    return
            finally:
                c.close()
            self.assertLess(time.monotonic(), deadline, "the closed connections' slots were not freed")
            time.sleep(0.05)

    def test_clients_that_never_read_large_listings_do_not_grow_memory(self):
        # About 10 MB of events: 1000 accounts whose owner is 10 KB.
        c = self.c
        for i in range(1000):
            r = c.post(f"{API}/accounts", {"account_id": f"big-{i}-{time.monotonic_ns()}", "owner": "x" * 10_000})
            self.assertEqual(r.status, 201, r)
        page = c.get(f"{API}/admin/events?limit=1000")
        self.assertEqual(page.status, 200)
        self.assertLess(len(page.body), 2 << 20, "a page stops growing past 1 MiB")
        self.assertLess(len(page.json["events"]), 1000)
        self.assertEqual(page.json["next_from"], page.json["events"][-1]["position"] + 1)

        before = rss_mb(self.server.proc.pid)
        stuck = []
        try:
            for _ in range(60):
                s = self.server.raw_socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(raw_request("GET", f"{API}/admin/events?limit=1000"))
                stuck.append(s)  # never read
            time.sleep(1.0)
            self.assertTrue(self.healthz_answers())
            grown = rss_mb(self.server.proc.pid) - before
        finally:
            for s in stuck:
                s.close()
        self.assertLess(grown, 150, f"RSS grew {grown:.0f} MB for 60 clients that do not read")


if __name__ == "__main__":
    unittest.main()
