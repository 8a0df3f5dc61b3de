"""Keeps the docs honest where that is cheap (issue #13).

- Every relative link in the repository's Markdown files resolves to a file or folder inside the
  repository, and a `#fragment` into a Markdown file to one of its headings (GitHub's anchors);
  nothing points at `../shared` (the contract lived there before docs/).
- docs/api.md names what the code serves: every route the API registers (and every route its tables
  document exists, unless marked planned), every error code and status the API answers, every
  /metrics family and every subcommand.

Python 3, stdlib only; run by ctest (`docs`) or `python3 tests/docs/docs_test.py`.
"""

import os
import re
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
API_MD = os.path.join(ROOT, "docs", "api.md")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def markdown_files():
    """Every .md file of the repository, build trees, npm's installs and hidden folders left out."""
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "build")) and d != "node_modules")
        for name in sorted(files):
            if name.endswith(".md"):
                yield os.path.join(top, name)


def without_fences(text):
    """The text without its fenced code blocks: no headings or links are read there."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def without_code(text):
    """The text without fenced blocks and inline code spans: links are not parsed there."""
    return re.sub(r"`[^`\n]*`", "", without_fences(text))


def slug(heading):
    """GitHub's anchor for a heading's text."""
    s = heading.strip().lower().replace("`", "")
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    found, seen = set(), {}
    for line in without_fences(read(path)).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken_links(path):
    """(link, why) for every relative link of `path` that does not resolve inside the repository."""
    out = []
    text = read(path)
    for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", without_code(text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if os.path.commonpath([resolved, ROOT]) != ROOT:
            out.append((target, "leaves the repository"))
        elif not os.path.exists(resolved):
            out.append((target, "no such file"))
        elif fragment and resolved.endswith(".md") and fragment not in anchors(resolved):
            out.append((target, f"no heading #{fragment} in {os.path.relpath(resolved, ROOT)}"))
    return out


def source(*parts):
    return read(os.path.join(ROOT, "src", *parts))


def api_sources():
    folder = os.path.join(ROOT, "src", "api")
    texts = []
    for top, _, files in os.walk(folder):
        texts += [read(os.path.join(top, f)) for f in sorted(files) if f.endswith(".cc")]
    return "\n".join(texts)


def route_key(path):
    """A route without its query and with its parameters' names erased: /a/{id}/b -> /a/{}/b."""
    return re.sub(r"\{[^}]*\}", "{}", path.split("?")[0])


class Links(unittest.TestCase):
    def test_every_relative_link_resolves_inside_the_repository(self):
        files = list(markdown_files())
        self.assertIn(os.path.join(ROOT, "README.md"), files)
        broken = [f"{os.path.relpath(p, ROOT)}: ({link}) {why}" for p in files for link, why in broken_links(p)]
        self.assertEqual(broken, [], "broken links:\n" + "\n".join(broken))

    def test_nothing_points_at_the_old_shared_folder(self):
        naming = [os.path.relpath(p, ROOT) for p in markdown_files() if "../shared" in read(p)]
        self.assertEqual(naming, [])

    def test_the_readme_leads_to_the_docs(self):
        readme = read(os.path.join(ROOT, "README.md"))
        for doc in ("docs/api.md", "docs/design.md", "docs/operations.md"):
            self.assertIn(f"]({doc})", readme)


class ApiDoc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = read(API_MD)
        cls.rows = [[c.strip() for c in line.strip().strip("|").split("|")]
                    for line in cls.doc.splitlines() if line.startswith("|")]

    def test_every_route_is_documented(self):
        routes = re.findall(r"router\.add\(\s*Method::(\w+),\s*\"([^\"]+)\"", api_sources())
        self.assertGreater(len(routes), 20)
        documented = {route_key(p) for p in re.findall(r"`(/[^`\s]*)`", self.doc)}
        missing = [f"{m.upper()} {p}" for m, p in routes if route_key(p) not in documented]
        self.assertEqual(missing, [], "routes served but not in docs/api.md")

    def test_every_documented_route_exists_unless_planned(self):
        served = {route_key(p) for p in re.findall(r"router\.add\(\s*Method::\w+,\s*\"([^\"]+)\"", api_sources())}
        ghosts = []
        for line in self.doc.splitlines():
            if not re.match(r"\|\s*(GET|POST|PUT|DELETE|PATCH)\b", line) or "**planned**" in line:
                continue
            first_cell = line.strip("|").split("|")[0]
            ghosts += [p for p in re.findall(r"`(/[^`\s]*)`", first_cell) if route_key(p) not in served]
        self.assertEqual(ghosts, [], "docs/api.md documents routes the server does not have")

    def test_every_error_code_is_in_the_error_table(self):
        answers = set(re.findall(r"answer\((\d{3}),\s*\"(\w+)\"\)", source("api", "errors.cc")))
        answers |= set(re.findall(r"error_response\(\s*(\d{3}),\s*\"(\w+)\"", api_sources()))
        self.assertIn(("409", "version_conflict"), answers)
        self.assertIn(("413", "payload_too_large"), answers)
        missing = [f"{status} {code}" for status, code in sorted(answers)
                   if not any(len(r) > 2 and status in r[0] and f"`{code}`" in r[1] for r in self.rows)]
        self.assertEqual(missing, [], "error answers not in the table of docs/api.md §3")

    def test_every_metric_family_is_documented(self):
        families = re.findall(r"# TYPE (\w+) ", source("api", "metrics.cc"))
        self.assertGreater(len(families), 5)
        self.assertEqual([f for f in families if f"`{f}`" not in self.doc], [])

    def test_every_subcommand_is_documented(self):
        cli = "\n".join(read(os.path.join(ROOT, "src", "cli", f))
                        for f in sorted(os.listdir(os.path.join(ROOT, "src", "cli"))) if f.endswith(".cc"))
        top = re.findall(r"root\.add_subcommand\(\s*\"([\w-]+)\"", cli)
        bench = re.findall(r"bench->add_subcommand\(\s*\"([\w-]+)\"", cli)
        self.assertIn("serve", top)
        self.assertIn("append", bench)
        missing = [c for c in top if not re.search(rf"`(orderflow )?{c}\b", self.doc)]
        missing += [f"bench {c}" for c in bench if f"`bench {c}" not in self.doc]
        self.assertEqual(missing, [], "subcommands not in docs/api.md §1")


if __name__ == "__main__":
    unittest.main(verbosity=2)
