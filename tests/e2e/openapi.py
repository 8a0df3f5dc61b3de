"""docs/openapi.yaml against real answers (issue #13): the e2e HTTP helper (harness.Client) hands every
answer here, and an answer of a documented operation must be documented: its status among the
operation's responses, its media type among that response's, a JSON body valid against its schema
(JSON Schema 2020-12, python3-jsonschema) and each documented header valid against its own. Answers of
paths and methods the document does not have are not checked here (tests/api/openapi_test.cc holds the
document to the router).
"""

import json
import os
import sys

import jsonschema

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC_PATH = os.path.join(REPO_ROOT, "docs", "openapi.yaml")
sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
import yaml_to_json  # noqa: E402  (the build's own YAML reading)

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def load_spec():
    return yaml_to_json.load(SPEC_PATH)


class Spec:
    def __init__(self, doc):
        self.doc = doc
        self._validators = {}
        # (segments, path) of every documented path; a segment is (literal, None) or (None, name).
        self._paths = []
        for path in doc["paths"]:
            segs = tuple((None, s[1:-1]) if s.startswith("{") and s.endswith("}") else (s, None)
                         for s in path.split("/")[1:])
            self._paths.append((segs, path))

    def resolve(self, obj):
        """`obj`, or what its local reference (`#/components/…`) names."""
        while isinstance(obj, dict) and "$ref" in obj:
            target = self.doc
            for part in obj["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            obj = target
        return obj

    def validator(self, schema):
        """A validator of `schema`, whose #/components/… references resolve in the document."""
        key = id(schema)  # kept with its validator below, so the id stays its own
        if key not in self._validators:
            root = dict(schema)
            root["components"] = self.doc.get("components", {})
            root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
            self._validators[key] = (schema, jsonschema.Draft202012Validator(root))
        return self._validators[key][1]

    def template(self, path):
        """The documented path a request path matches, as the router matches: a literal segment wins
        over a parameter. None when there is none."""
        segs = path.split("?", 1)[0].split("/")[1:]
        fits = [(tuple(lit is None for lit, _ in t), p) for t, p in self._paths
                if len(t) == len(segs) and all(s == lit if lit is not None else s != "" for (lit, _), s in zip(t, segs))]
        return min(fits)[1] if fits else None

    def problems(self, method, path, status, content_type, headers, body):
        """What is wrong with this answer against the document: a list of sentences, empty when it fits
        (or when the document has no such operation)."""
        template = self.template(path)
        operation = self.doc["paths"][template].get(method.lower()) if template else None
        if operation is None:
            return []
        where = f"{method} {template} answered {status}"
        response = operation["responses"].get(str(status))
        if response is None:
            return [f"{where}, a status docs/openapi.yaml does not document for it"]
        response = self.resolve(response)
        out = []
        for name, header in response.get("headers", {}).items():
            value = headers.get(name)
            if value is not None:
                for e in self.validator(self.resolve(header)["schema"]).iter_errors(value):
                    out.append(f"{where} with header {name}: {value!r}: {e.message}")
        content = response.get("content", {})
        if not content:
            return out
        media = (content_type or "").split(";")[0].strip().lower()
        if media not in content:
            return out + [f"{where} as {media or 'no Content-Type'}, not {', '.join(content)}"]
        schema = content[media].get("schema")
        if media == "application/json" and schema is not None:
            try:
                value = json.loads(body.decode("utf-8"))
            except ValueError as e:
                return out + [f"{where} with a body that is not JSON: {e}"]
            for e in self.validator(schema).iter_errors(value):
                at = "/".join(str(p) for p in e.absolute_path)
                out.append(f"{where} with a body that fails its schema at /{at}: {e.message}")
        return out


_spec = None


def spec():
    global _spec
    if _spec is None:
        _spec = Spec(load_spec())
    return _spec


def check_answer(method, path, status, headers, body):
    """Raises AssertionError, naming every mismatch, when the answer is not as docs/openapi.yaml documents."""
    problems = spec().problems(method, path, status, headers.get("Content-Type"), headers, body)
    if problems:
        raise AssertionError("the answer does not match docs/openapi.yaml:\n  " + "\n  ".join(problems)
                             + f"\n  body: {body[:600]!r}")
