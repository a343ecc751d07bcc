"""The monitoring that ships in deploy/, run against real servers.

Three real segserve replicas on 127.0.0.1, .2 and .3, scraped every second
by a real Prometheus (Debian's /usr/bin/prometheus) that labels them as
Kubernetes service discovery would (namespace="test", pod="segserve-N"), are
loaded by segload. Then:
  1. the HPA signal, the prometheus-adapter rule shipped in deploy/ (its
     ConfigMap's config.yaml), with its series name, label matchers and
     group-by filled in as the adapter fills them for a Pods metric, gives one
     finite sample per pod, and their request-weighted mean agrees within 20%
     with the mean queue time the responses themselves report (segload's
     server_us.queue) over the same stretch of load;
  2. once the load has stopped and the rule's rate window has passed, it
     gives 0 for every pod: a number, not NaN, not absent;
  3. every query of every panel of the shipped Grafana dashboard returns data
     during the load;
  4. the metric name the rule exposes is the one the HPA asks for.
Every model in --model_repository is served, plus an idle copy of the default
model under another name: the rule must weigh requests, not models, so a
pod's idle model must not pull its value down (averaging per-model ratios,
Triton's style, would halve it). The query is the shipped one, unchanged,
window included, so the load runs for the window plus a margin and the test
waits one window after it: about 2.5 minutes with a 1m window.
Every address used is on loopback; every process is stopped on the way out.
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", ".."))
from tests.segserve_process import ready_ports, repository_models  # noqa: E402

NAMESPACE = "test"
HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
PODS = [f"segserve-{i}" for i in range(len(HOSTS))]
IDLE_MODEL_SUFFIX = "-idle"
TOLERANCE = 0.20
IDLE_MAX_S = 0.001
# Grafana's built-in variables, as Grafana would set them for a Prometheus
# scraped every 15 s (deploy/base/servicemonitor.yaml) on a 1 h dashboard.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
T0 = time.time()


def log(message):
    print(f"[{time.time() - T0:6.1f}s] {message}", flush=True)


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def duration_s(text):
    """A Prometheus duration ('90s', '1m', '1h30m', '500ms') in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400,
             "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    check(parts and "".join(n + u for n, u in parts) == text,
          f"not a Prometheus duration: {text!r}")
    return sum(int(n) * units[u] for n, u in parts)


# ---------------------------------------------------------------- deploy/

def find_adapter_rule(repo):
    """The ConfigMap under deploy/ whose config.yaml has the adapter rules."""
    found = []
    for root, _, files in os.walk(os.path.join(repo, "deploy")):
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")):
                continue
            path = os.path.join(root, name)
            with open(path) as f:
                text = f.read()
            if "metricsQuery" not in text:
                continue
            for doc in yaml.safe_load_all(text):
                if not isinstance(doc, dict) or doc.get("kind") != "ConfigMap":
                    continue
                for key, value in (doc.get("data") or {}).items():
                    config = yaml.safe_load(value)
                    if isinstance(config, dict) and config.get("rules"):
                        found.append((path, key, config["rules"]))
    check(found, "no ConfigMap with prometheus-adapter rules under deploy/")
    check(len(found) == 1, f"several adapter rule ConfigMaps: {found}")
    return found[0]


def find_hpa_metrics(repo):
    names = []
    for root, _, files in os.walk(os.path.join(repo, "deploy")):
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")):
                continue
            with open(os.path.join(root, name)) as f:
                for doc in yaml.safe_load_all(f):
                    if (isinstance(doc, dict) and
                            doc.get("kind") == "HorizontalPodAutoscaler"):
                        for metric in doc["spec"].get("metrics", []):
                            if metric.get("type") == "Pods":
                                names.append(metric["pods"]["metric"]["name"])
    return names


def find_dashboards(repo):
    paths = []
    for root, _, files in os.walk(os.path.join(repo, "deploy")):
        for name in sorted(files):
            if name.endswith(".json"):
                path = os.path.join(root, name)
                with open(path) as f:
                    doc = json.load(f)
                if isinstance(doc, dict) and "panels" in doc:
                    paths.append((path, doc))
    check(paths, "no Grafana dashboard (a JSON file with panels) under deploy/")
    return paths


def panels_of(dashboard):
    """Every panel, those folded into rows included."""
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def resource_label(rule, resource):
    """The series label the rule maps to a Kubernetes resource."""
    resources = rule.get("resources") or {}
    for label, target in (resources.get("overrides") or {}).items():
        if target.get("resource") in (resource, resource + "s"):
            return label
    template = resources.get("template")
    if template:
        return template.replace("<<.Resource>>", resource)
    raise Failure(f"the rule maps no label to the {resource} resource: "
                  f"{resources}")


def go_replacement(template):
    """A Go regexp replacement ('$1', '${1}') in Python's re syntax."""
    return re.sub(r"\$\{?(\w+)\}?", r"\\g<\1>", template)


def adapter_metric_names(rule, series_names):
    """What the adapter names the metric for each discovered series name."""
    name = rule.get("name") or {}
    matches = name.get("matches", "(.*)")
    replacement = go_replacement(name.get("as", "$1") or "$1")
    out = {}
    for series in series_names:
        m = re.search(matches, series)
        if m:
            out[series] = re.sub(matches, replacement, series, count=1)
    return out


def render_metrics_query(rule, series, pods):
    """The metricsQuery as the adapter renders it for a Pods metric of the
    pods `pods` in NAMESPACE."""
    namespace_label = resource_label(rule, "namespace")
    pod_label = resource_label(rule, "pod")
    matchers = (f'{namespace_label}="{NAMESPACE}",'
                f'{pod_label}=~"{"|".join(pods)}"')
    query = rule["metricsQuery"]
    query = re.sub(r"<<\s*\.Series\s*>>", series, query)
    query = re.sub(r"<<\s*\.LabelMatchers\s*>>", matchers, query)
    query = re.sub(r"<<\s*\.GroupBy\s*>>", pod_label, query)
    check("<<" not in query and ">>" not in query,
          f"template fields left that the test does not know: {query}")
    return query, pod_label


def substitute_grafana(expr, variables):
    def one(m):
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise Failure(f"unknown dashboard variable ${name} in {expr!r}")
        return variables[name]
    out = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, expr)
    check("$" not in out, f"unsubstituted '$' in {out!r}")
    return out


def dashboard_variables(dashboard):
    """Grafana's built-ins plus the dashboard's own template variables: a
    namespace or pod variable gets this test's values, others their
    current value or a match-all regex."""
    variables = dict(GRAFANA_VARIABLES)
    for var in (dashboard.get("templating") or {}).get("list", []):
        name = var.get("name")
        if not name:
            continue
        if var.get("type") == "datasource":
            variables[name] = "prometheus"
        elif name == "namespace":
            variables[name] = NAMESPACE
        elif name == "pod":
            variables[name] = "|".join(PODS)
        else:
            current = (var.get("current") or {}).get("value")
            if isinstance(current, list):
                current = "|".join(current)
            if current in (None, "", "$__all", "All"):
                current = ".*"
            variables[name] = str(current)
    return variables


# ------------------------------------------------------------- processes

class Processes:
    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, argv):
        path = os.path.join(self.workdir, name + ".log")
        out = open(path, "w+")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        proc.log_path = path
        proc.log_name = name
        self.procs.append(proc)
        return proc

    @staticmethod
    def text(proc):
        with open(proc.log_path, errors="replace") as f:
            return f.read()

    def stop_all(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 15
        for proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(predicate, timeout_s, what, proc=None, procs=None):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise Failure(f"{what}: the process exited "
                          f"({proc.returncode}):\n{procs.text(proc)[-3000:]}")
        if predicate():
            return
        time.sleep(0.2)
    tail = procs.text(proc)[-3000:] if proc is not None else ""
    raise Failure(f"timed out after {timeout_s}s waiting for {what}\n{tail}")


def model_repository_with_idle_copy(source, default_model, workdir):
    repo = os.path.join(workdir, "model_repository")
    shutil.copytree(source, repo)
    check(os.path.isdir(os.path.join(repo, default_model)),
          f"the default model {default_model} is not in {source}")
    idle = default_model + IDLE_MODEL_SUFFIX
    shutil.copytree(os.path.join(repo, default_model),
                    os.path.join(repo, idle))
    config = os.path.join(repo, idle, "config.pbtxt")
    with open(config) as f:
        text = f.read()
    text, n = re.subn(r'(?m)^name:\s*"[^"]*"', f'name: "{idle}"', text)
    check(n == 1, f"no name field in {config}")
    with open(config, "w") as f:
        f.write(text)
    return repo, idle


# ------------------------------------------------------------ Prometheus

class Prometheus:
    def __init__(self, address):
        self.base = f"http://{address}"

    def get(self, path, params=None):
        url = self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())

    def ready(self):
        try:
            with urllib.request.urlopen(self.base + "/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, expr, at):
        reply = self.get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        check(reply.get("status") == "success",
              f"query failed: {expr}\n{reply}")
        return reply["data"]

    def vector_by(self, expr, at, label):
        data = self.query(expr, at)
        check(data["resultType"] == "vector",
              f"{expr} gives a {data['resultType']}, not a vector")
        out = {}
        for sample in data["result"]:
            key = sample["metric"].get(label)
            check(key not in out, f"two samples for {label}={key}: {data}")
            out[key] = float(sample["value"][1])
        return out

    def targets_up(self, n):
        reply = self.get("/api/v1/targets")
        active = reply.get("data", {}).get("activeTargets", [])
        return sum(t.get("health") == "up" for t in active) == n


def write_prometheus_config(path, metrics_addresses):
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                   "evaluation_interval": "1s"},
        "scrape_configs": [{
            "job_name": "segserve",
            "static_configs": [
                {"targets": [address],
                 "labels": {"namespace": NAMESPACE, "pod": pod}}
                for address, pod in zip(metrics_addresses, PODS)],
        }],
    }
    with open(path, "w") as f:
        yaml.safe_dump(config, f)


# ------------------------------------------------------------------ test

def run(args, workdir, procs):
    timings = {}
    rule_path, rule_key, rules = find_adapter_rule(args.repo)
    log(f"adapter rules: {os.path.relpath(rule_path, args.repo)} "
        f"(data.{rule_key}), {len(rules)} rule(s)")
    hpa_metrics = find_hpa_metrics(args.repo)
    dashboards = find_dashboards(args.repo)

    # The rule's rate windows: the load must cover the longest.
    windows = {w: duration_s(w) for r in rules
               for w in re.findall(r"\[([0-9a-z]+)(?::[0-9a-z]*)?\]",
                                   r["metricsQuery"])}
    window_s = max(windows.values()) if windows else 0
    check(window_s > 0, "the rule's metricsQuery has no range selector")
    check(window_s <= args.max_window_s,
          f"the rule's window {window_s}s is longer than this test runs for "
          f"(--max_window_s={args.max_window_s})")
    load_s = window_s + args.margin_s
    log(f"rule windows {sorted(windows)}: load {load_s:.0f}s, "
        f"then {window_s + 5:.0f}s idle")

    # The replicas.
    t = time.time()
    model_repo, idle_model = model_repository_with_idle_copy(
        args.model_repository, args.default_model, workdir)
    replicas = []
    for host, pod in zip(HOSTS, PODS):
        grpc_port, metrics_port = free_port(host), free_port(host)
        argv = [args.segserve, f"--model_repository={model_repo}",
                f"--default_model={args.default_model}",
                f"--host={host}", f"--grpc_port={grpc_port}",
                f"--metrics_port={metrics_port}", "--http_port=-1",
                f"--{args.cores_flag}=1",
                "--preprocess_threads=1"]
        proc = procs.start(pod, argv)
        replicas.append((proc, f"{host}:{grpc_port}", f"{host}:{metrics_port}"))
    for proc, _, _ in replicas:
        wait_for(lambda p=proc: ready_ports(procs.text(p)) is not None,
                 args.start_timeout_s, f"{proc.log_name} ready", proc, procs)
    timings["replicas ready"] = time.time() - t
    log(f"replicas ready in {timings['replicas ready']:.1f}s: "
        + ", ".join(f"{pod} grpc {g} metrics {m}"
                    for pod, (_, g, m) in zip(PODS, replicas)))

    # Prometheus.
    t = time.time()
    prom_address = f"127.0.0.1:{free_port('127.0.0.1')}"
    config_path = os.path.join(workdir, "prometheus.yml")
    write_prometheus_config(config_path, [m for _, _, m in replicas])
    prom_proc = procs.start("prometheus", [
        args.prometheus, f"--config.file={config_path}",
        f"--storage.tsdb.path={os.path.join(workdir, 'tsdb')}",
        f"--web.listen-address={prom_address}"])
    prom = Prometheus(prom_address)
    wait_for(prom.ready, 60, "Prometheus /-/ready", prom_proc, procs)
    wait_for(lambda: prom.targets_up(len(replicas)), 30,
             "all three targets up", prom_proc, procs)
    timings["prometheus ready"] = time.time() - t
    log(f"Prometheus {prom_address} ready, 3 targets up, in "
        f"{timings['prometheus ready']:.1f}s")

    # The series the adapter discovers, and what it names them.
    t_discover = time.time()
    discovered = []
    for rule in rules:
        reply = prom.get("/api/v1/series", {"match[]": rule["seriesQuery"],
                                            "start": f"{T0:.3f}"})
        check(reply.get("status") == "success",
              f"seriesQuery failed: {rule['seriesQuery']}: {reply}")
        names = sorted({s["__name__"] for s in reply["data"]})
        for series, metric in adapter_metric_names(rule, names).items():
            discovered.append((rule, series, metric))
    check(discovered, "no rule's seriesQuery/name.matches finds a series")
    metric_names = sorted({m for _, _, m in discovered})
    log(f"adapter metrics: {metric_names}; HPA asks for {hpa_metrics}")
    for name in hpa_metrics:
        check(name in metric_names,
              f"the HPA's Pods metric {name} is not one the rules expose "
              f"({metric_names})")
    check(hpa_metrics, "no HorizontalPodAutoscaler with a Pods metric")
    hpa_rules = [(r, s, m) for r, s, m in discovered if m in hpa_metrics]
    check(len(hpa_rules) == 1,
          f"{len(hpa_rules)} series give the HPA's metric: {hpa_rules}")
    rule, series, metric = hpa_rules[0]
    hpa_query, pod_label = render_metrics_query(rule, series, PODS)
    log(f"HPA query ({metric}, series {series}):\n    {hpa_query}")

    # Every model of the repository per pod, all but the default idle: the
    # premise of the weighting check.
    models = len(repository_models(model_repo))
    counts = prom.vector_by(
        f'count by (pod) (segserve_queue_duration_seconds_count'
        f'{{namespace="{NAMESPACE}"}})', time.time(), "pod")
    check(models >= 2 and all(counts.get(p) == models for p in PODS),
          f"expected {models} queue histograms (one per model of "
          f"{model_repo}) per pod: {counts}")

    # The load.
    json_path = os.path.join(workdir, "segload.json")
    t_load = time.time()
    load = procs.start("segload", [
        args.segload, "--target=" + ",".join(g for _, g, _ in replicas),
        f"--concurrency={args.concurrency}", f"--duration_s={load_s:g}",
        f"--warmup_requests={args.warmup_requests}", "--raw",
        f"--sizes={args.sizes}", "--mask_encoding=rle",
        "--decode_masks=false", f"--json={json_path}"])
    try:
        load.wait(load_s + args.warmup_requests + 120)
    except subprocess.TimeoutExpired:
        raise Failure("segload did not finish")
    t_end = time.time()
    timings["load"] = t_end - t_load
    check(load.returncode == 0,
          f"segload failed ({load.returncode}):\n{procs.text(load)[-3000:]}")
    log(f"segload ran {timings['load']:.1f}s:\n" + procs.text(load)[-1500:])
    with open(json_path) as f:
        step = json.load(f)["steps"][0]
    check(step["failed"] == 0, f"requests failed: {step['errors']}")
    check(step["ok"] > 0, "no request succeeded")
    response_queue_s = step["server_us"]["queue"] / 1e6
    check(response_queue_s >= 0.001,
          f"the load did not queue: mean queue {response_queue_s * 1e3:.3f} ms"
          " (raise --concurrency)")

    # The rule, evaluated at the last second of the measured load: its window
    # [at - window, at] lies inside segload's measured stretch, which began
    # at least --margin_s - 2 seconds before at - window.
    at = t_end - 2
    check(at - window_s >= t_load, "the load is shorter than the window")
    values = prom.vector_by(hpa_query, at, pod_label)
    rates = prom.vector_by(
        f"sum by (pod) (rate({series.rsplit('_', 1)[0]}_count"
        f'{{namespace="{NAMESPACE}"}}[{window_s:g}s]))', at, "pod")
    log("per pod (value, requests/s in the window): " + ", ".join(
        f"{p} {values.get(p, float('nan')) * 1e3:.2f} ms "
        f"{rates.get(p, 0):.1f}/s" for p in PODS))
    check(sorted(values) == sorted(PODS),
          f"expected one sample per pod {PODS}, got {values}")
    check(all(math.isfinite(v) for v in values.values()),
          f"non-finite values: {values}")
    total_rate = sum(rates[p] for p in PODS)
    check(total_rate > 0, "no requests in the window")
    weighted = sum(values[p] * rates[p] for p in PODS) / total_rate
    deviation = weighted / response_queue_s - 1
    targets = ", ".join(f"{t['target']} {t['ok'] / step['duration_s']:.1f}/s"
                        for t in step["targets"])
    log(f"HPA signal (request-weighted over pods) {weighted * 1e3:.3f} ms vs "
        f"responses' mean queue {response_queue_s * 1e3:.3f} ms: "
        f"{deviation * 100:+.1f}% (limit +-{TOLERANCE * 100:.0f}%); segload "
        f"{step['ok']} ok in {step['duration_s']:.1f}s: {targets}")

    # What averaging per-model ratios with 1 + n (Triton's style) would say:
    # printed only, to show what the comparison tells apart.
    base = series.rsplit("_", 1)[0]
    naive = prom.vector_by(
        f"avg by (pod) (rate({base}_sum{{namespace=\"{NAMESPACE}\"}}"
        f"[{window_s:g}s]) / (1 + rate({base}_count{{namespace="
        f"\"{NAMESPACE}\"}}[{window_s:g}s])))", at, "pod")
    one_plus_n = prom.vector_by(
        f"sum by (pod) (rate({base}_sum{{namespace=\"{NAMESPACE}\"}}"
        f"[{window_s:g}s])) / (1 + sum by (pod) (rate({base}_count{{namespace="
        f"\"{NAMESPACE}\"}}[{window_s:g}s])))", at, "pod")
    for what, wrong in (("per-model ratios averaged, 1+n", naive),
                        ("sums' ratio, 1+n", one_plus_n)):
        if wrong:
            w = sum(wrong.get(p, 0) * rates[p] for p in PODS) / total_rate
            log(f"(for comparison only, {what}: {w * 1e3:.3f} ms, "
                f"{(w / response_queue_s - 1) * 100:+.1f}%)")

    failures = []
    if abs(deviation) > TOLERANCE:
        failures.append(
            f"the HPA signal {weighted * 1e3:.3f} ms is {deviation * 100:+.1f}% "
            f"off the responses' mean queue time {response_queue_s * 1e3:.3f} ms")

    # The dashboard, at the same moment.
    checked = []
    for path, dashboard in dashboards:
        variables = dashboard_variables(dashboard)
        for panel in panels_of(dashboard):
            for target in panel.get("targets", []):
                expr = target.get("expr")
                if not expr:
                    continue
                title = panel.get("title", "?")
                try:
                    query = substitute_grafana(expr, variables)
                    data = prom.query(query, at)
                    if not data["result"]:
                        raise Failure(f"no data: {query}")
                except Failure as e:
                    failures.append(f"panel {title!r} "
                                    f"({target.get('refId', '?')}): {e}")
                    continue
                checked.append((title, target.get("refId", "?"),
                                len(data["result"])))
    log(f"dashboard: {len(checked)} queries with data:\n" + "\n".join(
        f"    {title} [{ref}]: {n} series" for title, ref, n in checked))

    # Idle: one window after the last request.
    t_idle = t_end + window_s + 5
    while time.time() < t_idle + 1:
        time.sleep(min(5, t_idle + 1 - time.time()))
    idle = prom.vector_by(hpa_query, t_idle, pod_label)
    log("idle, one window after the load: " + ", ".join(
        f"{p} {idle.get(p)}" for p in PODS))
    if sorted(idle) != sorted(PODS):
        failures.append(f"idle: expected one sample per pod, got {idle}")
    elif not all(math.isfinite(v) and abs(v) < IDLE_MAX_S
                 for v in idle.values()):
        failures.append(f"idle: expected ~0 for every pod, got {idle}")
    timings["total"] = time.time() - T0
    log("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    if failures:
        raise Failure("\n".join(failures))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--segload", required=True)
    parser.add_argument("--model_repository", required=True)
    parser.add_argument("--repo", required=True,
                        help="the source tree whose deploy/ is checked")
    parser.add_argument("--prometheus", default="/usr/bin/prometheus")
    parser.add_argument("--default_model", default="scenes-sgcpnet")
    parser.add_argument("--cores_flag", default="cpu_cores",
                        help="segserve's flag for its core count")
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--sizes", default="128x128")
    parser.add_argument("--warmup_requests", type=int, default=30)
    parser.add_argument("--margin_s", type=float, default=6,
                        help="load this much longer than the rule's window")
    parser.add_argument("--max_window_s", type=float, default=120)
    parser.add_argument("--start_timeout_s", type=float, default=120)
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (logs, TSDB)")
    args = parser.parse_args()
    for name in ("segserve", "segload", "model_repository", "repo"):
        setattr(args, name, os.path.abspath(getattr(args, name)))

    workdir = tempfile.mkdtemp(prefix="segserve-monitoring-")
    procs = Processes(workdir)
    status = 0
    try:
        run(args, workdir, procs)
        log("PASS")
    except Failure as e:
        log(f"FAIL: {e}")
        for proc in procs.procs:
            print(f"--- {proc.log_name} log (tail) ---\n"
                  f"{procs.text(proc)[-1500:]}", flush=True)
        status = 1
    finally:
        procs.stop_all()
        if args.keep or status:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
