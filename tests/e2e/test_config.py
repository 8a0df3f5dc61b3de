"""The configuration (docs/operations.md §2): a --config file, ORDERFLOW_* variables and flags, one
precedence rule (flag > environment > file > default), `orderflow config` agreeing with what serve
runs with, and bad keys or values refused with exit 2 before anything is written."""

import json
import os
import re
import subprocess
import tempfile
import unittest

from harness import Server, binary, create_account, create_product, place_order


def run(*args, env=None):
    return subprocess.run([binary(), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


class ScopedEnv:
    """Sets variables of this process (inherited by the servers it starts) for a `with` block."""

    def __init__(self, **values):
        self.values = values

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def config_line(output, key):
    """The `key = value  # source (VARIABLE)` line of `orderflow config` output, as (value, source)."""
    for line in output.splitlines():
        m = re.match(r"^(\w+) = (.*?)\s+# (.*) \(ORDERFLOW_\w+\)$", line)
        if m and m.group(1) == key:
            return m.group(2), m.group(3)
    raise AssertionError(f"no line for {key} in:\n{output}")


class Precedence(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="orderflow-e2e-config-")
        self.addCleanup(subprocess.run, ["rm", "-rf", self.dir])
        self.config = os.path.join(self.dir, "orderflow.toml")
        with open(self.config, "w") as f:
            f.write('[serve]\n'
                    'listen = "127.0.0.1:1"\n'    # the flag (harness: port 0) wins
                    'log_format = "json"\n'       # from the file
                    'log_level = "error"\n'       # the environment wins: info
                    'access_log = false\n')       # the environment wins: true

    def test_serve_runs_with_what_orderflow_config_prints(self):
        env = {"ORDERFLOW_SERVE_LOG_LEVEL": "info", "ORDERFLOW_SERVE_ACCESS_LOG": "true"}
        with ScopedEnv(**env):
            srv = Server(extra_args=["--config", self.config])
            self.addCleanup(srv.cleanup)
            srv.start()
            c = srv.client()
            pid = create_product(c)
            aid = create_account(c, balance=10_000)
            place_order(c, aid, [(pid, 1)])
            c.close()
            srv.stop()
        lines = [json.loads(l) for l in srv.stderr(None).splitlines()]  # json: from the file
        self.assertTrue(any(l["message"] == "starting" for l in lines), lines)  # info: from the environment
        self.assertTrue(any(l["component"] == "http" and l["message"] == "request" for l in lines))  # access log

        out = run("config", "serve", "--config", self.config, "--listen", "127.0.0.1:0", "--data", srv.data_dir,
                  env=env)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(config_line(out.stdout, "listen"), ('"127.0.0.1:0"', "flag --listen"))
        self.assertEqual(config_line(out.stdout, "log_format"), ('"json"', f"file {self.config} line 3"))
        self.assertEqual(config_line(out.stdout, "log_level"), ('"info"', "environment"))
        self.assertEqual(config_line(out.stdout, "access_log"), ("true", "environment"))
        self.assertEqual(config_line(out.stdout, "io_threads"), ("2", "default"))
        self.assertEqual(config_line(out.stdout, "data"), (f'"{srv.data_dir}"', "flag --data"))
        self.assertNotIn("[bench.append]", out.stdout)  # only serve's settings

    def test_without_a_command_every_setting_is_printed_and_passwords_are_not(self):
        with open(self.config, "a") as f:
            f.write('[bench.http]\ntoken = "eyJ.secret.token"\n')
        out = run("config", "--config", self.config, env={"ORDERFLOW_STORE": "postgres://app:s3cret@db/orders"})
        self.assertEqual(out.returncode, 0, out.stderr)
        for table in ("[serve]", "[token]", "[demo]", "[bench.append]", "[bench.soak]"):
            self.assertIn(table, out.stdout)
        self.assertEqual(config_line(out.stdout, "store"), ('"postgres://app:***@db/orders"', "environment"))
        self.assertNotIn("s3cret", out.stdout)
        self.assertNotIn("eyJ.secret.token", out.stdout)
        # What it prints is a configuration file orderflow loads.
        printed = os.path.join(self.dir, "printed.toml")
        with open(printed, "w") as f:
            f.write(out.stdout)
        again = run("config", "--config", printed)
        self.assertEqual(again.returncode, 0, again.stderr)


class BadConfiguration(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="orderflow-e2e-config-")
        self.addCleanup(subprocess.run, ["rm", "-rf", self.dir])
        self.data = os.path.join(self.dir, "data")

    def serve(self, config_text=None, env=None, *flags):
        args = ["serve", "--listen", "127.0.0.1:0", "--data", self.data, *flags]
        if config_text is not None:
            path = os.path.join(self.dir, "orderflow.toml")
            with open(path, "w") as f:
                f.write(config_text)
            args += ["--config", path]
        out = run(*args, env=env)
        self.assertEqual(out.returncode, 2, out)
        self.assertFalse(os.path.exists(self.data), "a refused configuration wrote the data directory")
        return out.stderr

    def test_an_unknown_key_is_named_with_its_line(self):
        err = self.serve('[serve]\nio_threads = 2\nlisten_address = "127.0.0.1:0"\n')
        self.assertIn("orderflow.toml line 3: unknown key serve.listen_address", err)

    def test_a_value_of_the_wrong_type_is_named_with_its_line(self):
        err = self.serve('[serve]\nmax_connections = "many"\n')
        self.assertIn("orderflow.toml line 2: serve.max_connections must be an integer", err)

    def test_a_bad_value_in_the_file_is_named_with_its_line(self):
        err = self.serve('[serve]\nroles = "command,chef"\n')
        self.assertIn("orderflow.toml line 2: bad value for serve.roles", err)

    def test_a_bad_value_in_the_environment_names_the_variable(self):
        err = self.serve(None, {"ORDERFLOW_SERVE_MAX_CONNECTIONS": "0"})
        self.assertIn("ORDERFLOW_SERVE_MAX_CONNECTIONS: bad value for serve.max_connections", err)

    def test_a_bad_flag_value_names_the_flag(self):
        err = self.serve(None, None, "--io-threads", "two")
        self.assertIn("--io-threads", err)

    def test_a_kafka_session_timeout_a_broker_refuses_is_refused_naming_it(self):
        for seconds in ("5", "1801", "ten"):
            err = self.serve(None, None, "--bus-session-timeout", seconds)
            self.assertIn("--bus-session-timeout", err)

    def test_a_file_that_is_not_toml_is_named_with_its_line(self):
        err = self.serve('[serve]\nlisten = "127.0.0.1:0\n')
        self.assertIn("orderflow.toml line 2:", err)


if __name__ == "__main__":
    unittest.main()
