"""The contract as the binary serves it (docs/api.md §7, issue #13): /api/v1/openapi.json is
docs/openapi.yaml, and /docs is a Redoc page that works without the network: its script comes from the
binary, and headless Chromium renders the operations with every other host unreachable."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import openapi
from harness import API, ServerTestCase

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class Docs(ServerTestCase, unittest.TestCase):
    def test_openapi_json_is_the_document_in_the_repository(self):
        r = self.c.get(f"{API}/openapi.json")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(r.json, openapi.load_spec())

    def test_the_docs_page_loads_its_script_and_the_document_from_this_server(self):
        page = self.c.get("/docs")
        self.assertEqual(page.status, 200)
        self.assertEqual(page.header("Content-Type"), "text/html; charset=utf-8")
        html = page.body.decode()
        self.assertIn('<redoc spec-url="/api/v1/openapi.json">', html)
        self.assertEqual(re.findall(r'<script src="([^"]+)"', html), ["/docs/redoc.standalone.js"])
        self.assertNotIn("http", html)  # nothing from another site
        script = self.c.get("/docs/redoc.standalone.js")
        self.assertEqual(script.status, 200)
        self.assertEqual(script.header("Content-Type"), "text/javascript; charset=utf-8")
        self.assertGreater(len(script.body), 500_000)
        self.assertIn(b"Redoc", script.body[:400_000])

    def test_chromium_renders_the_operations_offline(self):
        chromium = shutil.which("chromium")
        if not chromium:
            self.skipTest("chromium is not installed (scripts/install-deps.sh installs it)")
        profile = tempfile.mkdtemp(prefix="orderflow-e2e-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        out = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             # Every host but this server's is unreachable: the page must render from the binary alone.
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
             "--virtual-time-budget=15000", "--dump-dom", f"http://127.0.0.1:{self.server.port}/docs"],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        dom = out.stdout
        summaries = [op["summary"] for item in openapi.load_spec()["paths"].values() for op in item.values()]
        missing = [s for s in summaries if s.replace("&", "&amp;") not in dom]
        self.assertEqual(missing, [], f"operations the rendered page does not show (DOM {len(dom)} bytes)")


if __name__ == "__main__":
    unittest.main()
