#!/usr/bin/env python3
"""examples/orchestrate.py against tandem_fake_launcher, which keeps `tandem
launch`'s contract (token file, control port, job=serve until Shutdown) with a
fake job behind the endpoint. Run by ctest with:
  TANDEM_FAKE_LAUNCHER  the fake launcher binary
  TANDEM_PYTHON_STUBS   build/python (tandem_pb2*.py)
  TANDEM_SOURCE_DIR     the checkout
"""
import os
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.environ["TANDEM_SOURCE_DIR"]
FAKE = os.environ["TANDEM_FAKE_LAUNCHER"]
STUBS = os.environ["TANDEM_PYTHON_STUBS"]
SCRIPT = os.path.join(SOURCE, "examples", "orchestrate.py")
CONFIG = os.path.join(SOURCE, "configs", "local.yaml")


def orchestrate(*extra, env=None, tandem=FAKE, run_dir=None):
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, SCRIPT, "--tandem", tandem, "--stubs", STUBS, "--run-dir", run_dir or tmp,
                "--startup-timeout", "30", "--timeout", "30", *extra, CONFIG]
        # From the checkout: configs/local.yaml names the bundled model relative to it.
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=SOURCE,
                              env={**os.environ, **(env or {})})


def published_story():
    with open(os.path.join(SOURCE, "models", "stories260K", "README.md"), encoding="utf-8") as f:
        readme = f.read()
    start = readme.index("```\n") + 4
    return readme[start:readme.index("\n```", start)]


class StubsTest(unittest.TestCase):
    def test_stubs_import_and_describe_the_api(self):
        sys.path.insert(0, STUBS)
        import tandem_pb2
        import tandem_pb2_grpc
        self.assertEqual(tandem_pb2.DESCRIPTOR.package, "tandem.v1")
        self.assertTrue(hasattr(tandem_pb2_grpc, "ControlStub"))
        methods = [m.name for m in tandem_pb2.DESCRIPTOR.services_by_name["Control"].methods]
        self.assertEqual(methods, ["Health", "Status", "Generate", "Cancel", "Shutdown"])


class OrchestrateTest(unittest.TestCase):
    def test_drives_a_real_two_worker_job(self):
        # The real launcher and workers: the greedy story comes back through
        # rank 0's Generate, streamed, then the status of both ranks.
        r = orchestrate("--prompt", "", "--max-tokens", "256", tandem=os.environ["TANDEM_BINARY"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(published_story()), r.stdout)
        self.assertIn("parallel  tp=2 pp=1", r.stdout)
        self.assertIn("rank 1    localhost", r.stdout)
        self.assertIn("served    1 requests, 256 tokens", r.stdout)
        self.assertIn("2 ranks exited 0", r.stderr)

    def test_runs_a_job_end_to_end(self):
        r = orchestrate("--prompt", "Once", "--max-tokens", "4")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The fake job's first four pieces, then the status block.
        self.assertTrue(r.stdout.startswith("Once upon a time\n"), r.stdout)
        self.assertIn("parallel  tp=2 pp=1", r.stdout)
        self.assertIn("finish length", r.stderr)
        self.assertIn("launcher exited 0", r.stderr)
        self.assertIn("--set job=serve --set control.port=", r.stderr)

    def test_a_launcher_that_dies_is_an_error(self):
        r = orchestrate(env={"TANDEM_FAKE_LAUNCHER_FAIL": "1"})
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("the launcher exited with code 3 before the job was healthy", r.stderr)

    def test_a_missing_binary_is_an_error(self):
        r = orchestrate(tandem="/nonexistent/tandem")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("not an executable", r.stderr)

    def test_missing_stubs_are_named(self):
        r = subprocess.run([sys.executable, SCRIPT, "--tandem", FAKE, "--stubs", "/nonexistent", CONFIG],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("/nonexistent", r.stderr)

    def test_usage_error_exits_two(self):
        r = subprocess.run([sys.executable, SCRIPT, CONFIG], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)


if __name__ == "__main__":
    unittest.main()
