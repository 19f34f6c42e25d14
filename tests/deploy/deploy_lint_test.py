#!/usr/bin/python3
"""Checks deploy/ without Docker, Kubernetes or Grafana (none of which run here).

What it proves: the dashboard is well formed and every panel query parses (promtool), every
alert carries a severity and annotations naming what it is about and is tested both firing and
not firing, the example Alertmanager config cannot send anywhere real, and docker-compose,
Grafana provisioning, the Dockerfiles and the Kubernetes manifests agree with each other (ports,
service names, mount paths, the rules file), and each worker manifest agrees with itself and with
the agent: the GPUs it requests, passes as --gpus and selects nodes by, the shared ReadWriteMany
work dir, the data-parallel rendezvous (its pod IP as --rendezvous-host, one TCP containerPort
per GPU slot from --rendezvous-port-base, no hostPort), and every argument a flag that
tuneledger-worker defines (worker/agent/worker_main.cc), in a form its parser takes (an unknown
flag makes the agent exit).

Run by ctest (label unit); PROMTOOL names the promtool binary.
"""

import os
import pathlib
import re
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import dashboard_queries  # noqa: E402

DEPLOY = dashboard_queries.REPO / "deploy"
WORKER_MAIN = dashboard_queries.REPO / "worker" / "agent" / "worker_main.cc"
PROMTOOL = os.environ.get("PROMTOOL", "promtool")
GRID_COLUMNS = 24


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_yaml_documents(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def alerts():
    rules = load_yaml(DEPLOY / "prometheus" / "rules.yml")
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def agent_flags():
    """({switches}, {value flags}, {flags its usage lists}) that tuneledger-worker's parser registers, read from the
    handlers.kind lambda of worker_main.cc's ParseFlags (base/command_line.h: a switch is --name
    or --name=true|false|1|0, a value flag --name VALUE or --name=VALUE)."""
    source = WORKER_MAIN.read_text(encoding="utf-8")
    kind = re.search(r"handlers\.kind = .*?\n  \};\n", source, re.S)
    if not kind:
        raise AssertionError(f"{WORKER_MAIN}: no handlers.kind lambda to read the flags from")
    switches, values = set(), set()
    for condition in re.findall(r"if \((.*?)\) return FlagKind::kSwitch;", kind.group(0), re.S):
        switches.update(re.findall(r'"([a-z][a-z-]*)"', condition))
    for names in re.findall(r"for \(const char\* \w+ :\s*\{(.*?)\}\)", kind.group(0), re.S):
        values.update(re.findall(r'"([a-z][a-z-]*)"', names))
    # The "Flags:" section of its usage text: one "  --name ..." line per flag.
    usage = re.search(r'kUsage\[\] = R"\(.*?\nFlags:\n(.*?)\)";', source, re.S)
    if not usage:
        raise AssertionError(f"{WORKER_MAIN}: no Flags: section in kUsage")
    return switches, values, set(re.findall(r"^  --([a-z][a-z-]*)", usage.group(1), re.M))


def host_port(address):
    host, _, port = address.rpartition(":")
    return host, int(port)


class DashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dashboard = dashboard_queries.load_dashboard()
        datasources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" /
                                "prometheus.yml")
        cls.datasource_uid = datasources["datasources"][0]["uid"]
        cls.query_panels = [
            p for p in dashboard_queries.panels(cls.dashboard) if p.get("type") != "row"
        ]

    def test_dashboard_has_identity(self):
        for key in ("uid", "title", "schemaVersion", "panels", "templating"):
            self.assertIn(key, self.dashboard)
        self.assertTrue(self.dashboard["uid"])

    def test_panels_have_unique_ids_titles_and_fit_the_grid(self):
        ids = [p["id"] for p in dashboard_queries.panels(self.dashboard)]
        self.assertEqual(len(ids), len(set(ids)), f"duplicate panel ids: {ids}")
        for panel in dashboard_queries.panels(self.dashboard):
            with self.subTest(panel=panel.get("title")):
                self.assertTrue(panel.get("title"), f"panel {panel['id']} has no title")
                grid = panel["gridPos"]
                self.assertGreater(grid["w"], 0)
                self.assertGreater(grid["h"], 0)
                self.assertGreaterEqual(grid["x"], 0)
                self.assertLessEqual(grid["x"] + grid["w"], GRID_COLUMNS,
                                     f"panel {panel['title']} is wider than the grid: {grid}")

    def test_panels_do_not_overlap(self):
        placed = []
        for panel in dashboard_queries.panels(self.dashboard):
            g = panel["gridPos"]
            for other_title, o in placed:
                overlap = (g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"] and
                           g["y"] < o["y"] + o["h"] and o["y"] < g["y"] + g["h"])
                self.assertFalse(overlap, f"{panel['title']} {g} overlaps {other_title} {o}")
            placed.append((panel["title"], g))

    def test_every_query_panel_uses_the_provisioned_datasource(self):
        self.assertGreaterEqual(len(self.query_panels), 10)
        for panel in self.query_panels:
            with self.subTest(panel=panel["title"]):
                self.assertEqual(panel["datasource"]["uid"], self.datasource_uid)
                self.assertTrue(panel.get("targets"), "a panel without queries shows nothing")
                ref_ids = [t["refId"] for t in panel["targets"]]
                self.assertEqual(len(ref_ids), len(set(ref_ids)), f"duplicate refIds {ref_ids}")
                for target in panel["targets"]:
                    self.assertTrue(target.get("expr", "").strip(), f"empty query {target}")
                    self.assertEqual(target["datasource"]["uid"], self.datasource_uid)

    def test_job_id_variable_drives_every_per_job_query(self):
        variables = {v["name"]: v for v in self.dashboard["templating"]["list"]}
        self.assertIn("job_id", variables)
        self.assertIn("label_values(tuneledger_job_", variables["job_id"]["definition"])
        for title, ref, expr in dashboard_queries.panel_queries(self.dashboard,
                                                                {"job_id": "JOB"}):
            # Per-job series (job_id label); the per-tenant and per-state counters have none.
            for name in re.findall(r"\btuneledger_job_(?!submissions|finishes)\w+", expr):
                with self.subTest(panel=title, ref=ref, metric=name):
                    self.assertRegex(expr, rf'{name}\{{[^}}]*job_id=~"JOB"',
                                     f"{expr} does not filter {name} by $job_id")

    def test_required_views_are_present(self):
        exprs_by_panel = {}
        for title, _, expr in dashboard_queries.panel_queries(self.dashboard, {"job_id": "J"}):
            exprs_by_panel.setdefault(title, []).append(expr)

        def panels_using(*needles):
            return [t for t, exprs in exprs_by_panel.items()
                    if all(any(n in e for e in exprs) for n in needles)]

        required = {
            "queue depth": ("tuneledger_queue_depth",),
            "jobs by state": ("tuneledger_jobs",),
            "workers by state": ("tuneledger_workers",),
            "per-job loss curve": ('tuneledger_job_loss{job_id=~"J"}',),
            "eval loss": ("tuneledger_job_eval_loss",),
            "tokens/s": ("tuneledger_job_tokens_per_second",),
            "accrued cost against budget with threshold lines":
                ("tuneledger_job_accrued_cost_usd", "tuneledger_job_budget_usd",
                 "tuneledger_job_budget_threshold_ratio"),
            "projected cost": ("tuneledger_job_projected_cost_usd",),
            "cost by tenant": ("tuneledger_compute_cost_usd_total", "by (tenant)"),
            "finished jobs' total cost against eval loss, Pareto-optimal marked":
                ("tuneledger_job_total_cost_usd", "tuneledger_job_eval_loss",
                 "tuneledger_job_pareto_optimal"),
            "RPC latency p50 and p99":
                ("histogram_quantile(0.5,", "histogram_quantile(0.99,",
                 "tuneledger_rpc_duration_seconds_bucket"),
        }
        for view, needles in required.items():
            with self.subTest(view=view):
                self.assertTrue(panels_using(*needles), f"no panel shows {view} ({needles})")

    def test_every_query_parses(self):
        """promtool parses each query as the expression of a recording rule."""
        rules = [{"record": f"dashboard:query_{i}", "expr": expr}
                 for i, (_, _, expr) in enumerate(
                     dashboard_queries.panel_queries(self.dashboard, {"job_id": "job-1"}))]
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "dashboard_queries.yml"
            path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
            result = subprocess.run([PROMTOOL, "check", "rules", str(path)],
                                    capture_output=True, text=True)
        self.assertEqual(result.returncode, 0,
                         f"promtool rejects a dashboard query:\n{result.stdout}{result.stderr}")


class RulesTest(unittest.TestCase):
    REQUIRED = {
        "TuneledgerJobNearBudget", "TuneledgerJobOverBudget", "TuneledgerJobProjectedOverrun",
        "TuneledgerJobLossNaN", "TuneledgerJobLossDiverging", "TuneledgerJobsLossDiverged",
        "TuneledgerJobsQueuedWithoutWorkers", "TuneledgerJobsUnschedulable",
        "TuneledgerWorkerLost",
    }

    def test_required_alerts_exist(self):
        self.assertEqual({a["alert"] for a in alerts()}, self.REQUIRED)

    def test_every_alert_has_severity_summary_and_description(self):
        for alert in alerts():
            with self.subTest(alert=alert["alert"]):
                self.assertIn(alert["labels"]["severity"], ("warning", "critical"))
                self.assertTrue(alert["annotations"]["summary"])
                self.assertTrue(alert["annotations"]["description"])

    def test_alerts_name_the_job_and_tenant_or_the_server(self):
        for alert in alerts():
            text = alert["annotations"]["summary"] + alert["annotations"]["description"]
            with self.subTest(alert=alert["alert"]):
                # Per-job series carry job_id and tenant; the finishes counter is per server.
                if re.search(r"\btuneledger_job_(?!submissions|finishes)", alert["expr"]):
                    self.assertIn("$labels.job_id", alert["annotations"]["summary"])
                    self.assertIn("$labels.tenant", alert["annotations"]["summary"])
                    self.assertIn("$labels.job_id", alert["annotations"]["description"])
                    self.assertIn("$labels.tenant", alert["annotations"]["description"])
                else:
                    self.assertIn("$labels.instance", text)

    def test_every_alert_is_tested_firing_and_not_firing(self):
        tests = load_yaml(DEPLOY / "prometheus" / "rules_test.yml")
        self.assertEqual(tests["rule_files"], ["rules.yml"])
        firing, silent = set(), set()
        for case in tests["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
        for alert in self.REQUIRED:
            with self.subTest(alert=alert):
                self.assertIn(alert, firing, "no case where it fires")
                self.assertIn(alert, silent, "no case where it stays silent")

    def test_prometheus_config_loads_the_rules_scrapes_the_server_and_alerts(self):
        config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
        compose = load_yaml(DEPLOY / "docker-compose.yml")
        self.assertEqual(config["rule_files"], ["rules.yml"])
        targets = [t for job in config["scrape_configs"]
                   for sc in job["static_configs"] for t in sc["targets"]]
        self.assertIn("tuneledger-server:9464", targets)
        self.assertIn("--metrics-listen=0.0.0.0:9464",
                      compose["services"]["tuneledger-server"]["command"])
        am_targets = [t for am in config["alerting"]["alertmanagers"]
                      for sc in am["static_configs"] for t in sc["targets"]]
        host, port = host_port(am_targets[0])
        self.assertIn(host, compose["services"])
        self.assertEqual(port, 9093)


class AlertmanagerTest(unittest.TestCase):
    def test_every_severity_has_a_route(self):
        config = load_yaml(DEPLOY / "alertmanager" / "alertmanager.yml")
        routed = " ".join(m for r in config["route"]["routes"] for m in r["matchers"])
        for severity in {a["labels"]["severity"] for a in alerts()}:
            with self.subTest(severity=severity):
                self.assertIn(f'severity = "{severity}"', routed)

    def test_webhooks_are_placeholders_that_cannot_resolve(self):
        config = load_yaml(DEPLOY / "alertmanager" / "alertmanager.yml")
        urls = [w["url"] for r in config["receivers"] for w in r.get("webhook_configs", [])]
        self.assertTrue(urls)
        for url in urls:
            with self.subTest(url=url):
                self.assertRegex(url, r"^https?://example[\w.-]*\.invalid/")


class ComposeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.compose = load_yaml(DEPLOY / "docker-compose.yml")
        cls.services = cls.compose["services"]

    def test_runs_the_whole_system(self):
        self.assertLessEqual(
            {"tuneledger-server", "tuneledger-worker", "prometheus", "alertmanager", "grafana"},
            set(self.services))

    def test_worker_dials_the_worker_listener_with_the_token_the_server_lists(self):
        worker = self.services["tuneledger-worker"]
        server = self.services["tuneledger-server"]
        self.assertIn("--server=tuneledger-server:50052", worker["command"])
        self.assertIn("--listen=0.0.0.0:50051", server["command"])
        self.assertIn("--worker-listen=0.0.0.0:50052", server["command"])
        self.assertNotIn("127.0.0.1:50052:50052", server.get("ports", []),
                         "the worker listener is for the compose network only")
        self.assertTrue(any(a.startswith("--price-per-gpu-hour=") for a in worker["command"]))
        # Both files come from the one volume the secrets service writes.
        token_file = [a for a in worker["command"] if a.startswith("--token-file=")][0]
        tokens_file = [a for a in server["command"] if a.startswith("--tokens-file=")][0]
        secrets = self.services["tuneledger-secrets"]
        volume, mount = secrets["volumes"][0].split(":")[:2]
        script = secrets["entrypoint"][-1]
        for service, path in ((worker, token_file.split("=", 1)[1]),
                              (server, tokens_file.split("=", 1)[1])):
            folder, name = path.rsplit("/", 1)
            self.assertIn(f"{volume}:{folder}:ro", service["volumes"])
            self.assertIn(f"> {name}", script)
        self.assertEqual(server["depends_on"]["tuneledger-secrets"]["condition"],
                         "service_completed_successfully")

    def test_bind_mounts_exist_and_configs_land_where_their_commands_read_them(self):
        for name, service in self.services.items():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("./"):
                    with self.subTest(service=name, volume=volume):
                        self.assertTrue((DEPLOY / source).exists(), f"{source} does not exist")
        self.assertIn("./prometheus:/etc/prometheus:ro", self.services["prometheus"]["volumes"])
        self.assertIn("--config.file=/etc/prometheus/prometheus.yml",
                      self.services["prometheus"]["command"])
        self.assertIn("./alertmanager:/etc/alertmanager:ro",
                      self.services["alertmanager"]["volumes"])
        self.assertIn("--config.file=/etc/alertmanager/alertmanager.yml",
                      self.services["alertmanager"]["command"])

    def test_grafana_provisioning_matches_the_mounts(self):
        grafana = self.services["grafana"]["volumes"]
        self.assertIn("./grafana/provisioning:/etc/grafana/provisioning:ro", grafana)
        providers = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" /
                              "tuneledger.yml")
        path = providers["providers"][0]["options"]["path"]
        self.assertIn(f"./grafana/dashboards:{path}:ro", grafana)
        datasources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" /
                                "prometheus.yml")
        url = datasources["datasources"][0]["url"]
        self.assertEqual(url, "http://prometheus:9090")

    def test_dockerfiles_are_multi_stage_debian_12_with_apt_only(self):
        for name in ("Dockerfile.server", "Dockerfile.worker"):
            text = (DEPLOY / "docker" / name).read_text()
            with self.subTest(dockerfile=name):
                stages = re.findall(r"^FROM (\S+)", text, re.M)
                self.assertGreaterEqual(len(stages), 2, "not multi-stage")
                for image in stages:
                    self.assertRegex(image, r"^debian:12(-slim)?$")
                self.assertIn("COPY --from=build", text)
                for forbidden in ("curl ", "wget ", "pip install", "ADD http"):
                    self.assertNotIn(forbidden, text)
            service = self.services[
                "tuneledger-server" if name.endswith("server") else "tuneledger-worker"]
            self.assertEqual(service["build"]["dockerfile"], f"deploy/docker/{name}")
            self.assertEqual(service["build"]["context"], "..")


class KubernetesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kustomization = load_yaml(DEPLOY / "kustomization.yaml")
        cls.objects = []
        for resource in cls.kustomization["resources"]:
            cls.objects += load_yaml_documents(DEPLOY / resource)

    def find(self, kind, name):
        matches = [o for o in self.objects
                   if o["kind"] == kind and o["metadata"]["name"] == name]
        self.assertEqual(len(matches), 1, f"expected one {kind} {name}")
        return matches[0]

    def test_kustomization_lists_every_manifest(self):
        listed = {pathlib.Path(r).name for r in self.kustomization["resources"]}
        present = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")}
        self.assertEqual(listed, present)

    def test_rules_configmap_is_generated_from_the_tested_rules_file(self):
        generators = {g["name"]: g for g in self.kustomization["configMapGenerator"]}
        files = generators["tuneledger-prometheus-rules"]["files"]
        self.assertEqual([f.split("=")[-1] for f in files], ["prometheus/rules.yml"])

    def test_server_is_one_replica_statefulset_with_its_db_on_a_volume(self):
        server = self.find("StatefulSet", "tuneledger-server")
        spec = server["spec"]
        self.assertEqual(spec["replicas"], 1)
        claims = {c["metadata"]["name"]: c for c in spec["volumeClaimTemplates"]}
        container = spec["template"]["spec"]["containers"][0]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        db_flag = [a for a in container["args"] if a.startswith("--db=")][0]
        db_volume = [n for n, path in mounts.items() if db_flag[len("--db="):].startswith(path)]
        self.assertEqual(len(db_volume), 1, f"--db {db_flag} is not on a mounted volume")
        self.assertIn(db_volume[0], claims, "the db volume is not a persistent claim")
        self.assertEqual(spec["serviceName"], "tuneledger-server-headless")
        self.find("Service", spec["serviceName"])

    def test_server_service_exposes_grpc_and_metrics_and_workers_have_their_own(self):
        service = self.find("Service", "tuneledger-server")
        ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
        self.assertEqual(ports, {"grpc": 50051, "metrics": 9464})
        workers = self.find("Service", "tuneledger-server-workers")
        self.assertEqual({p["name"]: p["port"] for p in workers["spec"]["ports"]},
                         {"worker": 50052})
        self.assertNotIn(workers["spec"].get("type"), ("LoadBalancer", "NodePort"))
        server = self.find("StatefulSet", "tuneledger-server")
        pod_labels = server["spec"]["template"]["metadata"]["labels"]
        self.assertLessEqual(service["spec"]["selector"].items(), pod_labels.items(),
                             "the Service does not select the server pod")
        args = server["spec"]["template"]["spec"]["containers"][0]["args"]
        self.assertIn("--listen=0.0.0.0:50051", args)
        self.assertIn("--worker-listen=0.0.0.0:50052", args)
        self.assertIn("--metrics-listen=0.0.0.0:9464", args)

    # Worker pods: every workload whose pod carries this label runs tuneledger-worker.
    WORKER_LABEL = ("app.kubernetes.io/component", "worker")
    WORKERS = {("Deployment", "tuneledger-worker"), ("DaemonSet", "tuneledger-gpu-worker")}
    # tuneledger-worker's default --preempt-grace-seconds (worker/agent/agent_options.h).
    DEFAULT_PREEMPT_GRACE_SECONDS = 30
    # tuneledger-worker's default --rendezvous-port-base (worker/agent/agent_options.h).
    DEFAULT_RENDEZVOUS_PORT_BASE = 29500

    def flags(self, container):
        """{flag: [values]} of a container's args, each --name=value or a bare switch --name
        (value None); a value in an argument of its own is refused."""
        flags = {}
        for arg in container["args"]:
            self.assertRegex(arg, r"^--[a-z][a-z-]*(=|$)",
                             "write flags as --name=value (or a bare --switch)")
            name, equals, value = arg[2:].partition("=")
            flags.setdefault(name, []).append(value if equals else None)
        return flags

    def workers(self):
        """(name, pod spec, its one container, its flags) of every worker workload."""
        key, value = self.WORKER_LABEL
        found = []
        for obj in self.objects:
            template = obj.get("spec", {}).get("template")
            if template and template["metadata"]["labels"].get(key) == value:
                pod = template["spec"]
                self.assertEqual(len(pod["containers"]), 1, obj["metadata"]["name"])
                container = pod["containers"][0]
                found.append((f"{obj['kind']}/{obj['metadata']['name']}", pod, container,
                              self.flags(container)))
        return found

    @staticmethod
    def gpu_count(flags):
        """How many GPUs the agent uses: the length of --gpus; 0 for a CPU agent."""
        return len(flags["gpus"][0].split(",")) if "gpus" in flags else 0

    def test_the_workers_are_the_cpu_deployment_and_the_gpu_daemonset(self):
        key, value = self.WORKER_LABEL
        found = {(o["kind"], o["metadata"]["name"]) for o in self.objects
                 if o.get("spec", {}).get("template", {}).get("metadata", {})
                 .get("labels", {}).get(key) == value}
        self.assertEqual(found, self.WORKERS)
        for kind, name in self.WORKERS:
            selector = self.find(kind, name)["spec"]["selector"]["matchLabels"]
            for other_kind, other in self.WORKERS - {(kind, name)}:
                labels = self.find(other_kind, other)["spec"]["template"]["metadata"]["labels"]
                self.assertFalse(selector.items() <= labels.items(),
                                 f"{kind} {name}'s selector also selects {other}'s pods")

    def test_workers_dial_the_worker_listener_with_the_servers_token(self):
        server = self.find("StatefulSet", "tuneledger-server")["spec"]["template"]["spec"]
        server_secrets = [v["secret"]["secretName"] for v in server["volumes"] if "secret" in v]
        for name, pod, container, flags in self.workers():
            with self.subTest(worker=name):
                host, port = host_port(flags["server"][0])
                service = self.find("Service", host)
                self.assertIn(port, [p["port"] for p in service["spec"]["ports"]])
                self.assertEqual(port, 50052, "workers dial the worker listener")
                # The worker token comes from the Secret whose "tokens" key the server reads.
                token_path = flags["token-file"][0]
                token_mount = [m for m in container["volumeMounts"]
                               if token_path.startswith(m["mountPath"] + "/")]
                self.assertEqual(len(token_mount), 1, "--token-file is not on a mounted volume")
                volumes = {v["name"]: v for v in pod["volumes"]}
                secret = volumes[token_mount[0]["name"]]["secret"]
                self.assertEqual(server_secrets, [secret["secretName"]])

    def test_workers_share_one_read_write_many_work_dir(self):
        """A preempted job resumes from its checkpoint on whichever worker leases it next."""
        seen = set()
        for name, pod, container, flags in self.workers():
            with self.subTest(worker=name):
                work_dir = flags["work-dir"][0]
                mount = [m for m in container["volumeMounts"] if m["mountPath"] == work_dir]
                self.assertEqual(len(mount), 1, f"--work-dir {work_dir} is not a mounted volume")
                self.assertFalse(mount[0].get("readOnly", False))
                volume = {v["name"]: v for v in pod["volumes"]}[mount[0]["name"]]
                self.assertIn("persistentVolumeClaim", volume,
                              f"--work-dir {work_dir} is not on a persistent claim")
                claim = volume["persistentVolumeClaim"]["claimName"]
                pvc = self.find("PersistentVolumeClaim", claim)
                self.assertEqual(pvc["spec"]["accessModes"], ["ReadWriteMany"],
                                 "checkpoints must be reachable from every worker")
                seen.add((claim, work_dir))
        self.assertEqual(len(seen), 1, f"workers use different work dirs: {sorted(seen)}")

    def test_workers_request_exactly_the_gpus_they_use(self):
        for name, pod, container, flags in self.workers():
            with self.subTest(worker=name):
                gpus = self.gpu_count(flags)
                resources = container["resources"]
                self.assertEqual(int(resources.get("limits", {}).get("nvidia.com/gpu", 0)), gpus,
                                 f"nvidia.com/gpu limit against --gpus {flags.get('gpus')}")
                if "nvidia.com/gpu" in resources.get("requests", {}):
                    self.assertEqual(int(resources["requests"]["nvidia.com/gpu"]), gpus)
                if not gpus:
                    continue
                # The device plugin numbers the container's GPUs 0..N-1, whichever they are.
                self.assertEqual(flags["gpus"], [",".join(str(k) for k in range(gpus))])
                tolerations = [t for t in pod.get("tolerations", [])
                               if t.get("key") == "nvidia.com/gpu"]
                self.assertTrue(tolerations, "GPU nodes are usually tainted nvidia.com/gpu")

    def test_gpu_daemonset_runs_on_nodes_labelled_with_its_gpu_count(self):
        daemonset = self.find("DaemonSet", "tuneledger-gpu-worker")
        pod = daemonset["spec"]["template"]["spec"]
        flags = self.flags(pod["containers"][0])
        self.assertGreaterEqual(self.gpu_count(flags), 1)
        self.assertEqual(pod["nodeSelector"], {"tuneledger.io/gpus": str(self.gpu_count(flags))})
        # NCCL's intra-node transport needs more /dev/shm than a container's 64 MiB.
        shm = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        self.assertEqual(len(shm), 1, "no /dev/shm volume for NCCL")
        volume = {v["name"]: v for v in pod["volumes"]}[shm[0]["name"]]
        self.assertEqual(volume.get("emptyDir", {}).get("medium"), "Memory")

    def test_worker_args_are_flags_the_agent_defines(self):
        """tuneledger-worker exits 2 on a flag it does not know, or a value it parses wrongly."""
        switches, values, usage = agent_flags()
        # The parse found the agent's flags, not a fragment of them: its usage lists the same.
        self.assertIn("server", values)
        self.assertEqual(switches | values, usage,
                         f"flags registered in {WORKER_MAIN} differ from its usage text")
        for name, pod, container, flags in self.workers():
            for flag, given in flags.items():
                with self.subTest(worker=name, flag=flag):
                    self.assertIn(flag, switches | values,
                                  f"tuneledger-worker has no --{flag} (see {WORKER_MAIN}); "
                                  f"it has {sorted(switches | values)}")
                    for value in given:
                        if flag in values:
                            self.assertIsNotNone(value, f"--{flag} takes a value: --{flag}=...")
                        else:
                            self.assertIn(value, (None, "true", "false", "1", "0"),
                                          f"--{flag} is a switch")

    def test_workers_advertise_their_pod_ip_as_the_rendezvous_host(self):
        """Ranks on other pods dial rank 0 at --rendezvous-host; the agent's default, the
        hostname (the pod name), does not resolve from other pods."""
        for name, pod, container, flags in self.workers():
            with self.subTest(worker=name):
                self.assertEqual(flags.get("rendezvous-host"), ["$(POD_IP)"])
                env = {e["name"]: e for e in container.get("env", [])}
                self.assertIn("POD_IP", env, "--rendezvous-host=$(POD_IP) without POD_IP in env")
                self.assertEqual(
                    env["POD_IP"].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath"),
                    "status.podIP", "POD_IP must come from the downward API's status.podIP")

    def test_workers_declare_one_tcp_rendezvous_port_per_gpu_slot(self):
        """Rank 0 of a job on the agent's k-th GPU slot listens on --rendezvous-port-base + k; a
        CPU agent counts as one GPU. Pod network only: no hostPort."""
        for name, pod, container, flags in self.workers():
            with self.subTest(worker=name):
                base = int(flags.get("rendezvous-port-base",
                                     [self.DEFAULT_RENDEZVOUS_PORT_BASE])[0])
                slots = max(1, self.gpu_count(flags))
                self.assertLessEqual(base + slots - 1, 65535)
                ports = container.get("ports", [])
                rendezvous = {p["name"]: p["containerPort"] for p in ports
                              if p.get("name", "").startswith("rendezvous-")}
                self.assertEqual(rendezvous,
                                 {f"rendezvous-{k}": base + k for k in range(slots)},
                                 f"want ports {base}..{base + slots - 1} for {slots} slot(s)")
                for port in ports:
                    self.assertNotIn("hostPort", port,
                                     f"{port}: ranks reach each other over the pod network")
                    if port.get("name", "").startswith("rendezvous-"):
                        # Kubernetes' default protocol is TCP; c10d's TCPStore is TCP.
                        self.assertEqual(port.get("protocol", "TCP"), "TCP", str(port))

    def test_worker_args_expand_only_variables_the_container_defines(self):
        for name, pod, container, flags in self.workers():
            with self.subTest(worker=name):
                # Kubernetes expands $(VAR) only when the container's env defines VAR; else the
                # agent gets the text "$(VAR)".
                env = {e["name"] for e in container.get("env", [])}
                for arg in container["args"]:
                    for variable in re.findall(r"\$\((\w+)\)", arg):
                        self.assertIn(variable, env, f"{arg}: {variable} is not in env")

    def test_host_network_keeps_cluster_dns(self):
        for name, pod, container, flags in self.workers():
            with self.subTest(worker=name):
                if pod.get("hostNetwork"):
                    # Else the server's Service name does not resolve from the pod.
                    self.assertEqual(pod.get("dnsPolicy"), "ClusterFirstWithHostNet")

    def test_termination_grace_covers_the_trainers_checkpoint(self):
        for name, pod, container, flags in self.workers():
            with self.subTest(worker=name):
                preempt = int(flags.get("preempt-grace-seconds",
                                        [self.DEFAULT_PREEMPT_GRACE_SECONDS])[0])
                # After the trainer's checkpoint the agent still reports the attempt PREEMPTED.
                self.assertGreaterEqual(pod["terminationGracePeriodSeconds"], preempt + 10,
                                        f"SIGKILL could cut --preempt-grace-seconds={preempt}")

    def test_network_policy_admits_every_worker_to_every_workers_ports(self):
        policy = self.find("NetworkPolicy", "tuneledger-worker-ranks")["spec"]
        self.assertEqual(policy["policyTypes"], ["Ingress"],
                         "an Egress policy would cut workers off from the server")
        selector = policy["podSelector"]["matchLabels"]
        self.assertEqual(len(policy["ingress"]), 1)
        rule = policy["ingress"][0]
        self.assertNotIn("ports", rule, "Gloo and NCCL connect on ephemeral ports")
        self.assertEqual([peer["podSelector"]["matchLabels"] for peer in rule["from"]],
                         [selector])
        for kind, name in self.WORKERS:
            labels = self.find(kind, name)["spec"]["template"]["metadata"]["labels"]
            with self.subTest(worker=name):
                self.assertLessEqual(selector.items(), labels.items(),
                                     "the policy does not cover this worker's ranks")

    def test_everything_is_in_one_namespace(self):
        for obj in self.objects:
            if obj["kind"] != "Namespace":
                with self.subTest(kind=obj["kind"], name=obj["metadata"]["name"]):
                    self.assertEqual(obj["metadata"]["namespace"], "tuneledger")


if __name__ == "__main__":
    unittest.main(verbosity=2)
