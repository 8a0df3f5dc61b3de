#!/usr/bin/env python3
"""Converts a YAML document (docs/openapi.yaml) to compact JSON: yaml_to_json.py IN.yaml OUT.json.

A value JSON cannot carry (a YAML date or timestamp left unquoted, a non-string key) fails the
conversion, and with it the build, naming the trouble.
"""

import json
import sys

import yaml


class JsonLoader(yaml.SafeLoader):
    """YAML's safe loader without implicit timestamps: `2026-12-04` stays a string, as in JSON."""


JsonLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path):
    """The YAML document at `path` as the JSON the build makes of it."""
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=JsonLoader)


def main(src, out):
    doc = load(src)
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: yaml_to_json.py IN.yaml OUT.json")
    try:
        main(sys.argv[1], sys.argv[2])
    except (yaml.YAMLError, TypeError, ValueError) as e:
        sys.exit(f"{sys.argv[1]}: {e}")
