"""Logs (issue #14): `--log-format json` writes one JSON object per stderr line (time, level, component,
message, fields); start-up tells the effective configuration and shutdown what it flushed; the access log
(`--access-log`) tells each request by route pattern, and nothing is logged per request without it."""

import json
import subprocess
import unittest

from harness import API, RFC3339_MS, Server, binary, create_account, new_id


def json_lines(srv):
    return [json.loads(line) for line in srv.stderr(None).splitlines()]


class JsonLogs(unittest.TestCase):
    def run_server(self, extra_args):
        srv = Server(extra_args=["--log-format", "json", *extra_args])
        self.addCleanup(srv.cleanup)
        srv.start()
        c = srv.client()
        self.addCleanup(c.close)
        account = create_account(c)
        for _ in range(3):
            self.assertEqual(c.get(f"{API}/accounts/{account}?consistency=strong").status, 200)
        self.assertEqual(c.get(f"{API}/accounts/{new_id('missing')}").status, 404)
        srv.stop()
        return json_lines(srv)

    def test_start_up_and_shutdown_lines(self):
        lines = self.run_server([])
        for line in lines:
            self.assertRegex(line["time"], RFC3339_MS)
            self.assertIn(line["level"], ("debug", "info", "warning", "error"))
            self.assertIsInstance(line["component"], str)
            self.assertIsInstance(line["message"], str)
        starting = next(l for l in lines if l["message"] == "starting")
        self.assertEqual(starting["roles"], "command,query,admin,projector,saga,relay")
        self.assertEqual(starting["bus"], "none")
        self.assertEqual(starting["log_format"], "json")
        self.assertIs(starting["access_log"], False)
        self.assertEqual((starting["otlp_endpoint"], starting["trace_sample_ratio"]), ("none", "1"))
        self.assertIsInstance(starting["io_threads"], int)
        stopped = [l for l in lines if l["component"] == "projections" and l["message"] == "stopped"]
        self.assertEqual(sorted(l["projection"] for l in stopped), ["accounts", "orders", "products", "sales"])
        last = next(l for l in lines if l["message"].startswith("stopped: accepted appends are written"))
        self.assertGreaterEqual(last["last_position"], 1)
        self.assertFalse([l for l in lines if l["component"] == "http"], "a request was logged without --access-log")

    def test_access_log_names_the_route_pattern(self):
        lines = self.run_server(["--access-log"])
        requests = [l for l in lines if l["component"] == "http" and l["message"] == "request"]
        gets = [l for l in requests if l["route"] == "/api/v1/accounts/{id}"]
        self.assertEqual(sorted(l["status"] for l in gets), [200, 200, 200, 404], requests)
        for l in gets:
            self.assertEqual(l["method"], "GET")
            self.assertGreater(l["bytes"], 0)
            self.assertGreaterEqual(l["duration_ms"], 0)
            self.assertRegex(l["trace_id"], "^[0-9a-f]{32}$")
        self.assertEqual(len({l["trace_id"] for l in gets}), 4, "each request starts a trace of its own")
        self.assertTrue(any(l["method"] == "POST" and l["status"] == 201 for l in requests), requests)


class LogOptions(unittest.TestCase):
    def test_unknown_level_or_format_is_refused(self):
        for args, message in ((["--log-level", "verbose"], "--log-level: takes debug, info, warn, error or off"),
                              (["--log-format", "xml"], "--log-format: takes text or json")):
            out = subprocess.run([binary(), "serve", "--listen", "127.0.0.1:0", *args], capture_output=True,
                                 text=True, timeout=30)
            self.assertEqual(out.returncode, 2, out)
            self.assertIn(message, out.stderr)

    def test_level_warn_hides_the_start_up_lines(self):
        srv = Server(extra_args=["--log-level", "warn"])
        self.addCleanup(srv.cleanup)
        srv.start()
        srv.stop()
        self.assertNotIn("starting", srv.stderr(None))


if __name__ == "__main__":
    unittest.main()
