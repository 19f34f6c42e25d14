#!/usr/bin/python3
"""Integration: a real tuneledger-server with a local worker, a real Prometheus, the dashboard.

One scenario, several checks:
  * `promtool check metrics` on a live scrape, taken while a job runs (its per-job series
    present), finds no problems;
  * Debian's Prometheus, started here on loopback with a temp --storage.tsdb.path and a
    generated config that scrapes the server every second and loads deploy/prometheus/rules.yml,
    scrapes the server while jobs run, and every Grafana dashboard panel query (with $job_id set
    to the running job's id) returns data;
  * in that Prometheus, TuneledgerJobOverBudget fires for the job whose tiny budget got it
    cancelled, naming the job.

Jobs: B has a tiny budget and a high priority (it runs first and is cancelled with reason
BUDGET_EXCEEDED after crossing its thresholds and raising a projected overrun); A has a large
budget and a validation set (loss, eval loss, tokens/s, cost against budget) and is cancelled by
the test once every panel has had data, so that finished-job counters and its place on the
cost-quality plane (total cost, Pareto-optimal) exist too.

Run by ctest (label integration) with TUNELEDGER_BIN_DIR, PROMTOOL and PROMETHEUS set.
"""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import dashboard_queries  # noqa: E402
import tiny_job  # noqa: E402

REPO = dashboard_queries.REPO
BIN_DIR = pathlib.Path(os.environ.get("TUNELEDGER_BIN_DIR", REPO / "build" / "bin"))
PROMTOOL = os.environ.get("PROMTOOL", "promtool")
PROMETHEUS = os.environ.get("PROMETHEUS", "prometheus")

# Local workers declare this price: 36 USD per GPU-hour is 1 cent per second.
PRICE_PER_GPU_HOUR = 36.0
LARGE_BUDGET_USD = 1000.0
# The budget job must raise a projected overrun and then be cancelled at 100% of its budget
# (20 s of compute). It is far too long to finish, so the server raises the overrun once it has
# measured the step rate over kMinStepsForProjection (20) steps, which takes a second or two here
# and must only happen within the 20 s: any rate above ~1.5 steps/s will do.
TINY_BUDGET_USD = 0.20
BUDGET_JOB_FLAGS = tiny_job.COMMON_FLAGS + ["--max-steps", "1000000", "--eval-every", "1000",
                                         "--checkpoint-every", "1000"]


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def expired(self):
        return time.monotonic() >= self.end


def wait_for(condition, seconds, what, interval=0.2):
    """Polls condition() until it returns a truthy value; fails with `what` at the deadline."""
    deadline = Deadline(seconds)
    while True:
        value = condition()
        if value:
            return value
        if deadline.expired():
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(interval)


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode("utf-8")


def free_loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process with its output in files, stopped (and reaped) by stop()."""

    def __init__(self, name, args, log_dir):
        self.name = name
        self.args = [str(a) for a in args]
        self.log_path = pathlib.Path(log_dir) / f"{name}.log"
        self.log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self):
        return self.popen.poll() is None

    def stop(self, grace_seconds=20):
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()
        return self.popen.returncode

    def log_tail(self, lines=40):
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class LivePrometheusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tuneledger-live-prom-")
        cls.processes = []
        try:
            cls.run_scenario()
        except BaseException:
            cls.print_logs()
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for process in reversed(cls.processes):
            process.stop()
        cls.processes = []
        if os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def print_logs(cls):
        for process in cls.processes:
            print(f"----- {process.name} ({' '.join(process.args)})\n{process.log_tail()}",
                  file=sys.stderr)

    # ------------------------------------------------------------------ scenario
    @classmethod
    def run_scenario(cls):
        tmp = pathlib.Path(cls.tmp)
        model_dir, train_path, valid_path = tiny_job.make(tmp / "data")
        cls.start_server(tmp)
        cls.start_prometheus(tmp)
        cls.start_time = time.time()

        cls.budget_job = cls.submit(model_dir, train_path, valid_path, TINY_BUDGET_USD,
                                    priority=10, name="tiny-budget", flags=BUDGET_JOB_FLAGS)
        cls.job = cls.submit(model_dir, train_path, valid_path, LARGE_BUDGET_USD, priority=0,
                             name="live-prometheus", flags=tiny_job.LONG_JOB_FLAGS)

        budget_job = wait_for(lambda: cls.final(cls.budget_job), 180,
                              f"job {cls.budget_job} (budget ${TINY_BUDGET_USD}) to end")
        cls.budget_job_final = budget_job
        cls.budget_job_events = cls.tunectl("events", cls.budget_job)

        wait_for(lambda: cls.get(cls.job).get("state") == "RUNNING", 120,
                 f"job {cls.job} to run")
        # Series of the running job: loss over several scrapes and an evaluation.
        wait_for(lambda: cls.has_data(
            f'count_over_time(tuneledger_job_loss{{job_id="{cls.job}"}}[5m]) >= 3'), 120,
                 "three scrapes of the running job's loss")
        wait_for(lambda: cls.has_data(f'tuneledger_job_eval_loss{{job_id="{cls.job}"}}'), 120,
                 "the running job's eval loss")
        cls.live_scrape = cls.scrape()
        cls.live_scrape_state = cls.get(cls.job).get("state")

        cls.tunectl("cancel", cls.job)
        wait_for(lambda: cls.final(cls.job), 60, f"job {cls.job} to be cancelled")
        wait_for(lambda: cls.has_data(
            'count_over_time(tuneledger_job_finishes_total{state="CANCELLED",reason="USER"}[5m])'
            ' >= 2'), 60, "two scrapes of the USER cancellation counter")
        # A finished with an eval loss: the ticker places it on the cost-quality plane.
        wait_for(lambda: cls.has_data(f'tuneledger_job_pareto_optimal{{job_id="{cls.job}"}}'), 60,
                 "the cancelled job's cost-quality gauges")
        cls.end_time = time.time()

    @classmethod
    def start_server(cls, tmp):
        ready = tmp / "server-ready.json"
        server = Process("tuneledger-server", [
            BIN_DIR / "tuneledger-server", "--listen", "127.0.0.1:0", "--metrics-listen",
            "127.0.0.1:0", "--db", tmp / "tuneledger.db", "--ready-file", ready,
            "--local-workers", "1", "--work-dir", tmp / "work", "--price-per-gpu-hour",
            PRICE_PER_GPU_HOUR, "--data-root", tmp / "data"
        ], tmp)
        cls.processes.append(server)

        def read_ready():
            if not server.alive():
                raise AssertionError(f"tuneledger-server exited with {server.popen.returncode}")
            try:
                return json.loads(ready.read_text())
            except (OSError, ValueError):
                return None

        info = wait_for(read_ready, 60, "the server's ready file")
        cls.grpc_address = info["grpc"]
        cls.metrics_address = info["metrics"]

    @classmethod
    def start_prometheus(cls, tmp):
        config = tmp / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(REPO / "deploy" / "prometheus" / "rules.yml")],
            "scrape_configs": [{
                "job_name": "tuneledger",
                "static_configs": [{"targets": [cls.metrics_address]}],
            }],
        }))
        for attempt in range(3):  # the free port can be taken between probe and bind
            port = free_loopback_port()
            prometheus = Process(f"prometheus-{attempt}", [
                PROMETHEUS, f"--config.file={config}",
                f"--storage.tsdb.path={tmp / f'tsdb-{attempt}'}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"
            ], tmp)
            cls.processes.append(prometheus)
            cls.prometheus_url = f"http://127.0.0.1:{port}"

            def ready():
                if not prometheus.alive():
                    return "exited"
                try:
                    return http_get(cls.prometheus_url + "/-/ready", timeout=2)[0] == 200
                except (urllib.error.URLError, OSError):
                    return False

            if wait_for(ready, 60, "Prometheus to be ready") is True:
                return
        raise AssertionError("Prometheus did not start on a free loopback port in 3 tries")

    # ------------------------------------------------------------------ helpers
    @classmethod
    def tunectl(cls, *args):
        result = subprocess.run(
            [str(BIN_DIR / "tunectl"), "--server", cls.grpc_address, "--output", "json", *args],
            capture_output=True, text=True, timeout=60)
        if result.returncode != 0 and args[0] != "get":
            raise AssertionError(f"tunectl {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}{result.stderr}")
        return result.stdout

    @classmethod
    def submit(cls, model_dir, train_path, valid_path, budget_usd, priority, name, flags):
        out = cls.tunectl("submit", "--model", model_dir, "--train", train_path, "--valid",
                          valid_path, "--name", name, "--budget-usd", str(budget_usd),
                          "--priority", str(priority), *flags)
        return json.loads(out)["id"]

    @classmethod
    def get(cls, job_id):
        try:
            return json.loads(cls.tunectl("get", job_id))
        except ValueError:
            return {}

    @classmethod
    def final(cls, job_id):
        job = cls.get(job_id)
        return job if job.get("state") in ("SUCCEEDED", "FAILED", "CANCELLED") else None

    @classmethod
    def scrape(cls):
        status, text = http_get(f"http://{cls.metrics_address}/metrics")
        assert status == 200, status
        return text

    @classmethod
    def api(cls, path, **params):
        url = f"{cls.prometheus_url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            _, body = http_get(url)
        except urllib.error.HTTPError as error:
            body = error.read().decode("utf-8")
        return json.loads(body)

    @classmethod
    def has_data(cls, query):
        response = cls.api("query", query=query)
        return response.get("status") == "success" and bool(response["data"]["result"])

    # ------------------------------------------------------------------ checks
    def test_promtool_check_metrics_on_a_live_scrape_finds_no_problems(self):
        self.assertEqual(self.live_scrape_state, "RUNNING")
        self.assertIn(f'job_id="{self.job}"', self.live_scrape,
                      "the scrape was taken without the running job's series")
        result = subprocess.run([PROMTOOL, "check", "metrics"], input=self.live_scrape,
                                capture_output=True, text=True)
        self.assertEqual((result.returncode, result.stdout + result.stderr), (0, ""),
                         f"promtool check metrics found problems in:\n{self.live_scrape}")

    def test_budget_job_was_cancelled_for_its_budget(self):
        self.assertEqual(self.budget_job_final.get("state"), "CANCELLED",
                         f"{self.budget_job_final}\nevents:\n{self.budget_job_events}")
        self.assertEqual(self.budget_job_final.get("reason"), "BUDGET_EXCEEDED",
                         self.budget_job_final)

    def test_every_dashboard_panel_query_returns_data(self):
        dashboard = dashboard_queries.load_dashboard()
        targets = {}
        for panel in dashboard_queries.panels(dashboard):
            for target in panel.get("targets", []):
                targets[(panel["title"], target["refId"])] = target.get("instant", False)
        self.assertGreaterEqual(len(targets), 15)
        empty = []
        for title, ref, expr in dashboard_queries.panel_queries(dashboard,
                                                                {"job_id": self.job}):
            with self.subTest(panel=title, ref=ref):
                if targets[(title, ref)]:
                    response = self.api("query", query=expr, time=self.end_time)
                else:
                    response = self.api("query_range", query=expr, start=self.start_time,
                                        end=self.end_time, step="1")
                self.assertEqual(response.get("status"), "success", f"{expr}: {response}")
                if not response["data"]["result"]:
                    empty.append(f"{title} [{ref}]: {expr}")
        self.assertEqual(empty, [], f"dashboard queries without data (job_id={self.job}); "
                         f"events of budget job {self.budget_job}:\n{self.budget_job_events}")

    def test_over_budget_alert_fires_for_the_cancelled_job(self):
        def firing():
            alerts = self.api("alerts")["data"]["alerts"]
            return [a for a in alerts
                    if a["labels"].get("alertname") == "TuneledgerJobOverBudget"
                    and a["labels"].get("job_id") == self.budget_job and a["state"] == "firing"]

        alerts = wait_for(firing, 30, f"TuneledgerJobOverBudget for job {self.budget_job}")
        self.assertEqual(alerts[0]["labels"]["severity"], "critical")
        self.assertIn(self.budget_job, alerts[0]["annotations"]["summary"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
