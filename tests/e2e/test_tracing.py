"""W3C trace context on HTTP (issue #14): a command's events keep, in metadata.traceparent, a span of their
own in the trace of the request's valid `traceparent`, or in a new trace when it sent none or an invalid one
(docs/api.md §2, §8)."""

import re
import unittest

from harness import API, ServerTestCase, create_account, new_id, stream_events

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Tracing(ServerTestCase, unittest.TestCase):
    def traceparent_of(self, account_id):
        events = stream_events(self.c, f"account-{account_id}")
        self.assertEqual(len(events), 1, events)
        m = TRACEPARENT.match(events[0]["metadata"].get("traceparent", ""))
        self.assertTrue(m, events[0]["metadata"])
        return m.groups()

    def open_account(self, headers):
        account_id = new_id("a")
        r = self.c.post(f"{API}/accounts", {"account_id": account_id, "owner": "Trace"}, headers=headers)
        self.assertEqual(r.status, 201, r)
        return account_id

    def test_a_valid_traceparent_is_continued_with_a_span_of_its_own(self):
        trace_id, span_id, flags = self.traceparent_of(self.open_account({"traceparent": CALLER}))
        self.assertEqual(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertNotEqual(span_id, "00f067aa0ba902b7")
        self.assertEqual(flags, "01")

    def test_without_one_each_request_starts_a_trace(self):
        first = self.traceparent_of(create_account(self.c))
        second = self.traceparent_of(create_account(self.c))
        self.assertNotEqual(first[0], second[0])

    def test_an_invalid_one_is_ignored(self):
        for bad in ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "garbage"):
            trace_id, _, _ = self.traceparent_of(self.open_account({"traceparent": bad}))
            self.assertNotIn(trace_id, bad)


if __name__ == "__main__":
    unittest.main()
