"""docs/openapi.yaml on its own (issue #13): every example in it validates against the schema beside
it, and `@redocly/cli lint` (pinned in tests/docs/package.json, installed by scripts/install-deps.sh)
finds nothing wrong. The document against the router is tests/api/openapi_test.cc; against real answers,
tests/e2e/openapi.py.

Python 3 with python3-yaml and python3-jsonschema; run by ctest (`openapi`) or directly.
"""

import copy
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import openapi  # noqa: E402

REDOCLY = os.path.join(HERE, "node_modules", ".bin", "redocly")
REDOCLY_CONFIG = os.path.join(HERE, "redocly.yaml")


def examples(spec):
    """(where, schema, value) for every example of the document: of media types, parameters, headers
    and schemas."""
    out = []

    def walk(node, where):
        if isinstance(node, list):
            for i, x in enumerate(node):
                walk(x, f"{where}/{i}")
            return
        if not isinstance(node, dict):
            return
        schema = node.get("schema")
        if schema is not None and "example" in node:  # a media type, parameter or header
            out.append((f"{where}/example", schema, node["example"]))
        named = node.get("examples")
        if isinstance(named, dict) and schema is not None:  # named examples of a media type or parameter
            out.extend((f"{where}/examples/{name}", schema, spec.resolve(ex)["value"]) for name, ex in named.items())
        if isinstance(named, list):  # a schema's own examples
            out.extend((f"{where}/examples/{i}", node, v) for i, v in enumerate(named))
        for key, value in node.items():
            if key not in ("example", "examples"):
                walk(value, f"{where}/{key}")

    walk(spec.doc, "")
    return out


def wrong_examples(spec):
    return [f"{where}: {e.message}" for where, schema, value in examples(spec)
            for e in spec.validator(spec.resolve(schema)).iter_errors(value)]


class Examples(unittest.TestCase):
    def test_every_example_validates_against_its_schema(self):
        spec = openapi.spec()
        self.assertGreater(len(examples(spec)), 40)
        self.assertEqual(wrong_examples(spec), [], "examples that fail their schemas")

    def test_a_wrong_example_is_caught(self):
        doc = copy.deepcopy(openapi.load_spec())
        get_product = doc["paths"]["/api/v1/products/{id}"]["get"]
        get_product["responses"]["200"]["content"]["application/json"]["example"]["available"] = -1
        self.assertEqual(len(wrong_examples(openapi.Spec(doc))), 1)


class Lint(unittest.TestCase):
    def test_redocly_lint_finds_nothing(self):
        if not os.access(REDOCLY, os.X_OK):
            self.fail(f"{REDOCLY} is missing: run scripts/install-deps.sh (npm ci in tests/docs)")
        out = subprocess.run([REDOCLY, "lint", "--config", REDOCLY_CONFIG, "--format", "stylish", openapi.SPEC_PATH], capture_output=True,
                             text=True, timeout=120, cwd=openapi.REPO_ROOT,
                             # No telemetry and no update check: the test talks to no network.
                             env={**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"})
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
