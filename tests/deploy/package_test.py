"""The Debian package (deploy/debian/README.md): `cpack -G DEB` in the build directory makes it; this test
checks what it holds, lints its systemd unit, unpacks it into a temporary root (dpkg-deb -x) and runs
the unpacked binary there with the package's own configuration (data directory and port overridden
by ORDERFLOW_* variables, as `systemctl edit` would), then places an order through it.

Needs the build directory (ORDERFLOW_BUILD_DIR, else build/ under the repository root)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "e2e"))
from harness import Client, SERVING_LINE, create_account, create_product, place_order, settled_orders  # noqa: E402

BUILD_DIR = os.environ.get("ORDERFLOW_BUILD_DIR") or os.path.join(REPO_ROOT, "build")
UNIT = "lib/systemd/system/orderflow.service"


class DebianPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="orderflow-package-test-")
        out = subprocess.run(["cpack", "-G", "DEB", "--config", os.path.join(BUILD_DIR, "CPackConfig.cmake"),
                              "-B", cls.dir], capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            shutil.rmtree(cls.dir, ignore_errors=True)
            raise AssertionError(f"cpack failed:\n{out.stdout}\n{out.stderr}")
        debs = [f for f in os.listdir(cls.dir) if f.endswith(".deb")]
        assert len(debs) == 1, debs
        cls.deb = os.path.join(cls.dir, debs[0])
        cls.root = os.path.join(cls.dir, "root")
        subprocess.run(["dpkg-deb", "-x", cls.deb, cls.root], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def field(self, name):
        return subprocess.run(["dpkg-deb", "-f", self.deb, name], capture_output=True, text=True,
                              check=True).stdout.strip()

    def test_it_holds_the_binary_unit_configuration_and_docs(self):
        listing = subprocess.run(["dpkg-deb", "-c", self.deb], capture_output=True, text=True, check=True).stdout
        files = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
        for path in ("/usr/bin/orderflow", "/" + UNIT, "/usr/lib/sysusers.d/orderflow.conf",
                     "/etc/orderflow/orderflow.toml", "/usr/share/doc/orderflow/README.md",
                     "/usr/share/doc/orderflow/api.md", "/usr/share/doc/orderflow/operations.md",
                     "/usr/share/doc/orderflow/design.md", "/usr/share/doc/orderflow/copyright"):
            self.assertIn(path, files)
        self.assertEqual(self.field("Package"), "orderflow")
        depends = self.field("Depends")
        for library in ("libsqlite3", "libpq5", "libtomlplusplus3", "systemd"):
            self.assertIn(library, depends)
        control = subprocess.run(["dpkg-deb", "--info", self.deb, "conffiles"], capture_output=True, text=True,
                                 check=True).stdout
        self.assertIn("/etc/orderflow/orderflow.toml", control)  # an upgrade keeps the operator's edits

    def test_the_unit_runs_hardened_as_its_own_user(self):
        with open(os.path.join(self.root, UNIT)) as f:
            unit = f.read()
        for line in ("User=orderflow", "ProtectSystem=strict", "StateDirectory=orderflow", "LimitNOFILE=",
                     "NoNewPrivileges=yes", "ExecStart=/usr/bin/orderflow serve --config /etc/orderflow/orderflow.toml"):
            self.assertIn(line, unit)
        # Linted on this machine's systemd, with ExecStart pointing at the unpacked binary (verify checks
        # that it is executable); an unknown or misspelt key is a remark on stderr.
        linted = os.path.join(self.dir, "lint", "orderflow.service")
        os.makedirs(os.path.dirname(linted))
        with open(linted, "w") as f:
            f.write(unit.replace("/usr/bin/orderflow", os.path.join(self.root, "usr/bin/orderflow")))
        verify = subprocess.run(["systemd-analyze", "verify", linted], capture_output=True, text=True, timeout=60)
        self.assertEqual(verify.returncode, 0, verify.stderr)
        self.assertEqual(verify.stderr.strip(), "", "systemd-analyze verify has remarks")
        security = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--root={self.root}",
                                   "--no-pager", "/" + UNIT], capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", security.stdout + security.stderr)
        self.assertIsNotNone(m, security.stdout + security.stderr)
        print(f"\nsystemd-analyze security: exposure {m.group(1)} {m.group(2)}", file=sys.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0, security.stdout)  # "OK" is below 2.0 on systemd's scale

    def test_the_unpacked_binary_serves_with_the_package_configuration(self):
        data = os.path.join(self.dir, "data")
        env = {**os.environ, "ORDERFLOW_DATA": data, "ORDERFLOW_SERVE_LISTEN": "127.0.0.1:0"}
        config = os.path.join(self.root, "etc/orderflow/orderflow.toml")
        proc = subprocess.Popen([os.path.join(self.root, "usr/bin/orderflow"), "serve", "--config", config],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=self.dir, text=True)
        try:
            first = proc.stdout.readline().rstrip("\n")
            m = SERVING_LINE.match(first)
            self.assertIsNotNone(m, f"{first!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}")
            self.assertIn(f"embedded store in {data}", first)
            c = Client(int(m.group(1)))
            pid = create_product(c)
            aid = create_account(c, balance=1000)
            order_id = place_order(c, aid, [(pid, 1)])
            self.assertEqual(settled_orders(c, [order_id])[order_id]["status"], "CONFIRMED")
            c.close()
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 0, err)
        self.assertTrue(os.path.exists(os.path.join(data, "events.db")))


if __name__ == "__main__":
    unittest.main()
