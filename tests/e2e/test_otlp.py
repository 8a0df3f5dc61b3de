"""Spans exported over OTLP/HTTP (issue #14, docs/api.md §9): a local collector (a Python HTTP server taking
POST /v1/traces in the OTLP JSON encoding) receives the trace of one order from the HTTP request through every
saga step and the projections, with correct parent links; sampling follows the ratio for new traces and the
caller's flag for continued ones; a collector that never answers costs spans (dropped and counted), not
request time."""

import json
import re
import socket
import subprocess
import time
import unittest
import uuid

from harness import API, Collector, Server, binary, new_id
from test_saga import settle, setup_world

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"
HEX = re.compile(r"^[0-9a-f]+$")
SERVER, INTERNAL = 2, 1


def metric(c, line_start):
    for line in c.get("/metrics").body.decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {line_start} in /metrics")


class OrderTrace(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.collector = Collector()
        cls.srv = Server(extra_args=["--otlp-endpoint", cls.collector.url]).start()
        cls.c = cls.srv.client()

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.srv.stop()
        cls.srv.cleanup()
        cls.collector.close()

    def test_one_order_is_one_trace_from_the_request_through_the_saga_and_projections(self):
        product, customer = setup_world(self.c)
        r = self.c.post(f"{API}/orders", {"customer_id": customer, "items": [{"product_id": product, "quantity": 2}]},
                        headers={"traceparent": CALLER})
        self.assertEqual(r.status, 202, r)
        order_id = r.json["order_id"]
        self.assertEqual(settle(self.c, order_id)["status"], "CONFIRMED")
        steps = {"saga reserve", "saga charge", "saga confirm"}
        commands = {"ReserveStock", "Charge", "ConfirmOrder", "SagaEnded"}
        spans = self.collector.wait_for(CALLER_TRACE, {"POST /api/v1/orders", "project orders"} | steps | commands)
        by_name = {}
        for s in spans:
            by_name.setdefault(s["name"], []).append(s)
        ids = {s["spanId"] for s in spans}
        self.assertEqual(len(ids), len(spans), "span ids are unique")

        for s in spans:  # the OTLP JSON mapping
            self.assertEqual(s["traceId"], CALLER_TRACE)
            self.assertRegex(s["spanId"], HEX)
            self.assertEqual(len(s["spanId"]), 16)
            self.assertIsInstance(s["startTimeUnixNano"], str)
            self.assertLessEqual(int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"]))
            self.assertIn({"key": "service.name", "value": {"stringValue": "orderflow"}}, s["resource"]["attributes"])
            self.assertEqual(s["scope"]["name"], "orderflow")
            self.assertNotIn("status", s, "nothing failed")

        http, = by_name["POST /api/v1/orders"]
        self.assertEqual(http["kind"], SERVER)
        self.assertEqual(http["parentSpanId"], "00f067aa0ba902b7", "under the caller's span")
        attributes = {a["key"]: a["value"] for a in http["attributes"]}
        self.assertEqual(attributes["http.route"], {"stringValue": "/api/v1/orders"})
        self.assertEqual(attributes["http.response.status_code"], {"intValue": "202"})

        # HTTP -> saga reserve -> ReserveStock -> saga charge -> Charge -> saga confirm -> ConfirmOrder: each step
        # under the span that appended the event that caused it, each command under its step.
        def one(name):
            self.assertEqual(len(by_name[name]), 1, by_name[name])
            return by_name[name][0]

        reserve, charge, confirm = one("saga reserve"), one("saga charge"), one("saga confirm")
        self.assertEqual(reserve["parentSpanId"], http["spanId"])
        self.assertEqual(one("ReserveStock")["parentSpanId"], reserve["spanId"])
        self.assertEqual(charge["parentSpanId"], one("ReserveStock")["spanId"])
        self.assertEqual(one("Charge")["parentSpanId"], charge["spanId"])
        self.assertEqual(confirm["parentSpanId"], one("Charge")["spanId"])
        self.assertEqual(one("ConfirmOrder")["parentSpanId"], confirm["spanId"])
        self.assertEqual(one("SagaEnded")["parentSpanId"], confirm["spanId"])
        for step in (reserve, charge, confirm):
            self.assertEqual(step["kind"], INTERNAL)
            attributes = {a["key"]: a["value"] for a in step["attributes"]}
            self.assertEqual(attributes["order_id"], {"stringValue": order_id})
            self.assertEqual(attributes["saga.step.status"], {"stringValue": "completed"})

        # Projections apply each event under the span that appended it.
        projected = {(s["parentSpanId"], {a["key"]: a["value"]["stringValue"] for a in s["attributes"]
                                          if a["key"] == "event.type"}["event.type"])
                     for s in spans if s["name"].startswith("project ")}
        self.assertIn((http["spanId"], "OrderPlaced"), projected)
        self.wait_projected(one("ConfirmOrder")["spanId"], "OrderConfirmed")

        # The events keep the spans' traceparents (what a later process would continue).
        events = self.c.get(f"{API}/orders/{order_id}/events").json["events"]
        confirmed = next(e for e in events if e["type"] == "OrderConfirmed")
        self.assertEqual(confirmed["metadata"]["traceparent"], f"00-{CALLER_TRACE}-{one('ConfirmOrder')['spanId']}-01")
        self.assertEqual(confirmed["metadata"]["correlation_id"], order_id)
        self.assertEqual(confirmed["metadata"]["causation_id"], f"saga-{order_id}")

        path, content_type, _ = self.collector.requests[0]
        self.assertEqual((path, content_type), ("/v1/traces", "application/json"))
        self.assertGreaterEqual(metric(self.c, "orderflow_trace_spans_exported_total"), len(spans))
        self.assertGreater(metric(self.c, 'orderflow_saga_step_duration_seconds_count{step="confirm"}'), 0)

    def wait_projected(self, parent, event_type, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in self.collector.trace(CALLER_TRACE):
                types = [a["value"]["stringValue"] for a in s.get("attributes", []) if a["key"] == "event.type"]
                if s["name"].startswith("project ") and s["parentSpanId"] == parent and types == [event_type]:
                    return
            time.sleep(0.05)
        self.fail(f"no projection span of {event_type} under {parent}")

    def test_a_failed_order_traces_its_compensation(self):
        product, customer = setup_world(self.c, balance=0)  # the charge is declined
        trace_id = uuid.uuid4().hex
        r = self.c.post(f"{API}/orders", {"customer_id": customer, "items": [{"product_id": product, "quantity": 1}]},
                        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(settle(self.c, r.json["order_id"])["status"], "CANCELLED")
        spans = self.collector.wait_for(trace_id, {"saga charge", "saga compensate", "CancelOrder", "ReleaseStock"})
        by_name = {s["name"]: s for s in spans}
        self.assertEqual(by_name["saga charge"]["status"]["code"], 2, "the step that failed is an error")
        self.assertEqual(by_name["saga compensate"]["parentSpanId"], by_name["Charge"]["spanId"],
                         "compensation is caused by the decline")
        self.assertEqual(by_name["CancelOrder"]["parentSpanId"], by_name["saga compensate"]["spanId"])
        self.assertEqual(by_name["ReleaseStock"]["parentSpanId"], by_name["saga compensate"]["spanId"])


class Sampling(unittest.TestCase):
    def test_ratio_zero_samples_no_new_trace_but_follows_a_sampled_caller(self):
        collector = Collector()
        self.addCleanup(collector.close)
        with Server(extra_args=["--otlp-endpoint", collector.url, "--trace-sample-ratio", "0"]) as srv:
            c = srv.client()
            self.addCleanup(c.close)
            for _ in range(20):
                self.assertEqual(c.get("/healthz").status, 200)
            unsampled = "00-" + "ab" * 16 + "-00f067aa0ba902b7-00"
            self.assertEqual(c.get("/healthz", headers={"traceparent": unsampled}).status, 200)
            self.assertEqual(c.get("/healthz", headers={"traceparent": CALLER}).status, 200)
            collector.wait_for(CALLER_TRACE, {"GET /healthz"})
            time.sleep(1.0)  # a batch leaves every 0.5 s
            self.assertEqual({s["traceId"] for s in collector.spans}, {CALLER_TRACE})

    def test_bad_options_are_refused(self):
        for args in (["--otlp-endpoint", "127.0.0.1:4318"], ["--trace-sample-ratio", "1.5"],
                     ["--trace-sample-ratio", "-0.1"]):
            p = subprocess.run([binary(), "serve", "--listen", "127.0.0.1:0", "--data", "/nonexistent", *args],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(p.returncode, 2, (args, p.stderr))


class DeadCollector(unittest.TestCase):
    def test_a_collector_that_never_answers_costs_spans_not_request_time(self):
        # Accepts connections (the kernel's backlog) and never reads or answers: each export waits out its
        # 2 s timeout while requests keep coming.
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        self.addCleanup(hole.close)
        srv = Server(extra_args=["--otlp-endpoint", f"http://127.0.0.1:{hole.getsockname()[1]}"]).start()
        self.addCleanup(srv.cleanup)
        c = srv.client()
        self.addCleanup(c.close)
        product = new_id("p")
        self.assertEqual(c.post(f"{API}/products", {"product_id": product, "name": "Mug", "unit_price_cents": 100,
                                                    "initial_stock": 1}).status, 201)
        # Load until more spans were made than the queue holds while the exporter waited (4096 spans, drained
        # 512 per 2 s timeout: at 850 requests/s, a loaded machine's, that takes 7 s).
        deadline = time.monotonic() + 90
        while True:
            p = subprocess.run([binary(), "bench", "http", "--target", f"http://127.0.0.1:{srv.port}",
                                "--scenario", "get-product", "--connections", "16", "--duration", "6",
                                "--warmup", "0"], capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            report = json.loads(p.stdout.strip().splitlines()[-1])
            # Requests never wait for an export (each takes its 2 s timeout here).
            self.assertLess(report["p99_us"], 500_000, report)
            if metric(c, 'orderflow_trace_spans_dropped_total{reason="queue_full"}') > 0:
                break
            self.assertLess(time.monotonic(), deadline, f"the span queue never filled: {report}")
        deadline = time.monotonic() + 10
        while metric(c, "orderflow_trace_export_failures_total") == 0:
            self.assertLess(time.monotonic(), deadline, "the timed-out export is counted")
            time.sleep(0.2)
        self.assertGreater(metric(c, 'orderflow_trace_spans_dropped_total{reason="export_failed"}'), 0)
        self.assertEqual(metric(c, "orderflow_trace_spans_exported_total"), 0)
        self.assertGreater(metric(c, 'orderflow_background_failures_total{component="tracing",failure="export"}'),
                           0)
        srv.stop()
        self.assertEqual(srv.stderr(None).count("tracing: export failed"), 1, "repeats are not logged")


if __name__ == "__main__":
    unittest.main()
