#!/usr/bin/python3
"""Checks the Kubernetes manifests in deploy/ (issue 11).

  manifests_test.py --segserve build/server/segserve [--repo .]

1. renders every overlay in deploy/overlays with Debian's kubectl 1.20 (the
   oldest kustomize the manifests promise to work with);
2. validates every rendered object against the Kubernetes and Prometheus
   Operator schemas (validate.mjs; an unknown apiVersion/kind fails);
3. checks that segserve accepts every flag in the container's args;
4. checks what ties the objects together: probes, ports, Service selectors
   and targetPorts, the shutdown budget, env vars used in args, the HPA
   metric against the prometheus-adapter rule, the ServiceMonitor, metric
   names against server/core/metrics.cc, the GPU overlay's model config;
5. runs promtool check rules and promtool test rules on the PrometheusRule's
   spec (alerts_test.yaml) and on the adapter rule's query (adapter_test.yaml);
6. checks the structure of the KServe example (deploy/kserve): grpc-v2 on
   one h2c port, args segserve accepts, an InferenceService that uses it.

Prints one line per check and a closing "N passed, N failed"; exits 1 on any
failure. Needs python3-yaml, node with this folder's node_modules (installed
by scripts/setup-debian.sh: npm ci) and promtool (Debian's prometheus).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEBIAN_KUBECTL = "/opt/segserve/kubernetes-client/usr/bin/kubectl"
APP_LABEL = ("app.kubernetes.io/name", "segserve")
CONTAINER = "segserve"
# What each overlay must run.
OVERLAY_IMAGES = {"cpu": "segserve:cpu", "gpu": "segserve:gpu"}
# Kinds every overlay must contain (how many of each).
REQUIRED_KINDS = {
    "Deployment": 1, "ServiceAccount": 1, "PodDisruptionBudget": 1,
    "NetworkPolicy": 1, "HorizontalPodAutoscaler": 1, "ServiceMonitor": 1,
    "PrometheusRule": 1, "Service": 2,
}
# Grafana's built-in variables the dashboard may use; the dashboard test
# that runs the panels against a real Prometheus substitutes them.
DASHBOARD_VARIABLES = {"$__rate_interval"}


class CheckFailed(Exception):
    pass


def require(condition, message):
    if not condition:
        raise CheckFailed(message)


def run(cmd, **kwargs):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kwargs)


class Runner:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, fn, *args, note=None):
        """Runs fn(*args); returns its result, or None when it failed. The
        line printed carries note(result), or the result if it is a str."""
        try:
            result = fn(*args)
        except CheckFailed as e:
            self.failed += 1
            print(f"FAIL {name}: {e}")
            return None
        except Exception:  # a crash in a check is a failure too
            self.failed += 1
            print(f"FAIL {name}: crashed\n{traceback.format_exc()}")
            return None
        self.passed += 1
        text = note(result) if note else (result if isinstance(result, str) else "")
        print(f"ok   {name}" + (f" ({text})" if text else ""))
        return True if result is None else result


# ---------------------------------------------------------------- rendering

def find_kubectl(explicit):
    path = explicit or (DEBIAN_KUBECTL if os.path.exists(DEBIAN_KUBECTL)
                        else "/usr/bin/kubectl")
    require(os.access(path, os.X_OK),
            f"no kubectl at {path}; scripts/setup-debian.sh installs Debian's "
            "kubernetes-client (kubectl 1.20)")
    out = run([path, "version", "--client"]).stdout
    m = re.search(r'GitVersion:"(v[0-9.]+)', out) or re.search(r"(v\d+\.\d+\.\d+)", out)
    require(m and m.group(1).startswith("v1.20."),
            f"{path} is {m.group(1) if m else out.strip()!r}, not Debian's kubectl "
            f"v1.20 (expected at {DEBIAN_KUBECTL}; scripts/setup-debian.sh puts it there)")
    return path, m.group(1)


def render(kubectl, overlay_dir):
    proc = run([kubectl, "kustomize", overlay_dir])
    require(proc.returncode == 0, f"kubectl kustomize {overlay_dir} failed:\n{proc.stdout}")
    objects = [o for o in yaml.safe_load_all(proc.stdout) if o is not None]
    require(objects, f"{overlay_dir} rendered no objects")
    return objects


# ---------------------------------------------------------------- helpers

def by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def one(objects, kind):
    found = by_kind(objects, kind)
    require(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0]


def container_of(deployment):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    found = [c for c in containers if c.get("name") == CONTAINER]
    require(len(found) == 1, f"Deployment has no single container named {CONTAINER!r}")
    return found[0]


def parse_args(container):
    """--name=value args -> {name: value}; every arg must have that form."""
    flags = {}
    for arg in container.get("args", []):
        m = re.fullmatch(r"--([A-Za-z0-9_]+)=(.*)", arg)
        require(m, f"arg {arg!r} is not of the form --name=value")
        require(m.group(1) not in flags, f"flag --{m.group(1)} given twice")
        flags[m.group(1)] = m.group(2)
    require(not container.get("command"),
            "container sets command: the image's entrypoint (segserve) must run")
    return flags


def int_flag(flags, name):
    require(name in flags, f"args lack --{name}")
    require(re.fullmatch(r"-?\d+", flags[name]), f"--{name}={flags[name]} is not an integer")
    return int(flags[name])


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_labels(deployment):
    return deployment["spec"]["template"]["metadata"]["labels"]


def ports_by_name(container):
    return {p["name"]: p for p in container.get("ports", [])}


def metric_names(repo):
    """Series names the server exports, from server/core/metrics.cc."""
    text = open(os.path.join(repo, "server", "core", "metrics.cc")).read()
    names = set()
    # Each family is built as Build<Type>().Name("x") or Seconds(registry, "x").
    for m in re.finditer(r'Build(Counter|Gauge|Histogram)\(\)\s*\.Name\("([a-z0-9_]+)"\)', text):
        kind, name = m.groups()
        names |= ({name + s for s in ("_bucket", "_sum", "_count")}
                  if kind == "Histogram" else {name})
    for m in re.finditer(r'Seconds\(\s*registry,\s*"([a-z0-9_]+)"', text):
        names |= {m.group(1) + s for s in ("_bucket", "_sum", "_count")}
    require(names, "found no metric names in server/core/metrics.cc")
    return names


def used_metrics(expr):
    """segserve_* series an expression reads."""
    return set(re.findall(r"\b(segserve_[a-z0-9_]+)", expr))


def adapter_rules(objects):
    cms = [o for o in by_kind(objects, "ConfigMap")
           if "config.yaml" in (o.get("data") or {})
           and "rules" in (yaml.safe_load(o["data"]["config.yaml"]) or {})]
    require(len(cms) == 1, f"expected one prometheus-adapter rules ConfigMap, found {len(cms)}")
    rules = yaml.safe_load(cms[0]["data"]["config.yaml"])["rules"]
    require(isinstance(rules, list) and rules, "adapter config.yaml has no rules")
    return rules


def dashboard_exprs(objects):
    cms = [o for o in by_kind(objects, "ConfigMap")
           if (o["metadata"].get("labels") or {}).get("grafana_dashboard") == "1"]
    require(len(cms) == 1, f"expected one ConfigMap labelled grafana_dashboard=1, found {len(cms)}")
    data = cms[0].get("data") or {}
    require(len(data) == 1 and next(iter(data)).endswith(".json"),
            "the dashboard ConfigMap should hold exactly one .json file")
    dash = json.loads(next(iter(data.values())))
    exprs = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                exprs.append((p.get("title", "?"), t["expr"]))
    walk(dash.get("panels", []))
    require(exprs, "the dashboard has no panel queries")
    return dash, exprs


def prometheus_rule_spec(objects):
    return one(objects, "PrometheusRule")["spec"]


# ---------------------------------------------------------------- checks

def check_kinds(objects):
    counts = {}
    for o in objects:
        counts[o["kind"]] = counts.get(o["kind"], 0) + 1
    for kind, n in REQUIRED_KINDS.items():
        require(counts.get(kind, 0) == n, f"expected {n} {kind}, rendered {counts.get(kind, 0)}")
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def check_metadata(objects):
    for o in objects:
        md = o.get("metadata", {})
        what = f"{o['kind']} {md.get('name')}"
        require((md.get("labels") or {}).get(APP_LABEL[0]) == APP_LABEL[1],
                f"{what} lacks label {APP_LABEL[0]}: {APP_LABEL[1]}")
        require("namespace" not in md, f"{what} sets a namespace; the manifests are namespace-agnostic")


def check_schemas(objects, node, tmp, label):
    require(os.path.isdir(os.path.join(HERE, "node_modules", "kubernetes-models")),
            f"{HERE}/node_modules is missing: run scripts/setup-debian.sh (npm ci)")
    path = os.path.join(tmp, f"{label}.json")
    with open(path, "w") as f:
        json.dump(objects, f)
    proc = run([node, os.path.join(HERE, "validate.mjs"), path], cwd=HERE)
    require(proc.returncode == 0, "schema validation failed:\n" + proc.stdout)
    return proc.stdout.strip().splitlines()[-1]


def help_flags(segserve):
    require(os.access(segserve, os.X_OK), f"no segserve binary at {segserve}")
    # --helpfull lists every flag the binary accepts (absl's --help may omit
    # flags defined outside the main file). absl prints each as
    # "--name (help); default: value;" and exits 1.
    proc = run([segserve, "--helpfull"], timeout=60)
    flags = set(re.findall(r"^ {4}--([A-Za-z0-9_]+) \(", proc.stdout, re.M))
    require("grpc_port" in flags,
            f"could not read the flags from `{segserve} --helpfull`:\n{proc.stdout[:2000]}")
    return flags


def check_flags(objects, accepted):
    flags = parse_args(container_of(one(objects, "Deployment")))
    missing = sorted(set(flags) - accepted)
    require(not missing, "segserve does not accept " + ", ".join("--" + f for f in missing))
    return f"{len(flags)} flags"


def check_container(objects, overlay):
    dep = one(objects, "Deployment")
    c = container_of(dep)
    want = OVERLAY_IMAGES.get(overlay)
    require(want, f"overlay {overlay!r} has no expected image in the test: add it to OVERLAY_IMAGES")
    require(c.get("image") == want, f"image is {c.get('image')}, expected {want}")
    require(c.get("imagePullPolicy") == "IfNotPresent", "imagePullPolicy should be IfNotPresent")
    require(selects(dep["spec"]["selector"]["matchLabels"], pod_labels(dep)),
            "the Deployment's selector does not match its pod template's labels")
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        for r in ("cpu", "memory"):
            require(r in res.get(part, {}), f"resources.{part}.{r} is not set")


def check_ports_and_probes(objects):
    c = container_of(one(objects, "Deployment"))
    flags = parse_args(c)
    ports = ports_by_name(c)
    require(set(ports) >= {"grpc", "http", "metrics"},
            f"container ports are {sorted(ports)}, need grpc, http and metrics")
    require(int_flag(flags, "http_port") == ports["http"]["containerPort"],
            f"--http_port={flags.get('http_port')} but the http containerPort is "
            f"{ports['http']['containerPort']}")
    grpc_port = ports["grpc"]["containerPort"]
    require(int_flag(flags, "grpc_port") == grpc_port,
            f"--grpc_port={flags.get('grpc_port')} but the grpc containerPort is {grpc_port}")
    require(int_flag(flags, "metrics_port") == ports["metrics"]["containerPort"],
            f"--metrics_port={flags.get('metrics_port')} but the metrics containerPort is "
            f"{ports['metrics']['containerPort']}")
    want = {"startupProbe": "readiness", "readinessProbe": "readiness", "livenessProbe": "liveness"}
    for probe, service in want.items():
        p = c.get(probe)
        require(p, f"no {probe}")
        g = p.get("grpc")
        require(g, f"{probe} is not a native grpc probe")
        require(g.get("port") == grpc_port, f"{probe} port {g.get('port')} is not the grpc port {grpc_port}")
        require(g.get("service") == service,
                f"{probe} checks health service {g.get('service')!r}, expected {service!r}")
    s = c["startupProbe"]
    budget = s.get("periodSeconds", 10) * s.get("failureThreshold", 3)
    # The default model loads in under 5 s; a startup budget under 30 s
    # leaves no room for slow nodes.
    require(budget >= 30, f"startupProbe allows only {budget} s to load the models")
    return f"startup budget {budget} s"


def check_shutdown(objects):
    dep = one(objects, "Deployment")
    c = container_of(dep)
    flags = parse_args(c)
    cmd = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command")
    require(cmd and len(cmd) == 2 and cmd[0] == "sleep" and re.fullmatch(r"\d+", str(cmd[1])),
            f"preStop should be exec [sleep, N], is {cmd}")
    sleep = int(cmd[1])
    drain = int_flag(flags, "drain_timeout_s")
    grace = dep["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    require(grace > sleep + drain,
            f"terminationGracePeriodSeconds {grace} must exceed preStop sleep {sleep} + "
            f"--drain_timeout_s {drain}")
    require(int_flag(flags, "grpc_max_connection_age_s") > 0,
            "--grpc_max_connection_age_s must bound connection age (scale-ups get no traffic otherwise)")
    return f"{grace} > {sleep} + {drain}"


def check_env(objects):
    c = container_of(one(objects, "Deployment"))
    env = {e["name"]: e for e in c.get("env", [])}
    used = set()
    for arg in c.get("args", []):
        used |= set(re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg))
    for name in used:
        require(name in env, f"args use $({name}), which env does not define")
    cpu = env.get("SEGSERVE_CPU_LIMIT")
    require(cpu, "env SEGSERVE_CPU_LIMIT is not defined")
    ref = (cpu.get("valueFrom") or {}).get("resourceFieldRef") or {}
    require(ref.get("resource") == "limits.cpu" and ref.get("containerName") == CONTAINER
            and str(ref.get("divisor")) == "1",
            f"SEGSERVE_CPU_LIMIT should be limits.cpu of {CONTAINER} with divisor 1, is {ref}")
    require("cpu" in c["resources"].get("limits", {}),
            "SEGSERVE_CPU_LIMIT reads limits.cpu, which is not set (it would be the node's cores)")
    return "uses " + ", ".join(sorted(used))


def check_security(objects):
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    c = container_of(one(objects, "Deployment"))
    pod_sc = spec.get("securityContext") or {}
    sc = c.get("securityContext") or {}

    def eff(key):
        return sc.get(key, pod_sc.get(key))
    require(eff("runAsNonRoot") is True, "runAsNonRoot is not true")
    require(eff("runAsUser") == 10001 and eff("runAsGroup") == 10001,
            "runAsUser/runAsGroup should be 10001 (the image's segserve user)")
    require(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem is not true")
    require(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false")
    require("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), "capabilities do not drop ALL")
    require((eff("seccompProfile") or {}).get("type") == "RuntimeDefault",
            "seccompProfile is not RuntimeDefault")
    sa_name = spec.get("serviceAccountName")
    require(sa_name, "no serviceAccountName")
    sa = one(objects, "ServiceAccount")
    require(sa["metadata"]["name"] == sa_name, f"serviceAccountName {sa_name} names no ServiceAccount")
    require(sa.get("automountServiceAccountToken") is False,
            "the ServiceAccount should set automountServiceAccountToken: false")


def check_services(objects):
    dep = one(objects, "Deployment")
    labels = pod_labels(dep)
    cports = ports_by_name(container_of(dep))
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    for name, svc in services.items():
        spec = svc["spec"]
        require(selects(spec.get("selector"), labels), f"Service {name} does not select the pods")
        for p in spec.get("ports", []):
            tp = p.get("targetPort")
            require(isinstance(tp, str) and tp in cports,
                    f"Service {name} port {p.get('name')} targets {tp!r}, not a container port name "
                    f"({sorted(cports)})")
            require(p["port"] == cports[tp]["containerPort"],
                    f"Service {name} port {p['name']} is {p['port']}, the container's is "
                    f"{cports[tp]['containerPort']}")
    headless = [s for s in services.values() if s["spec"].get("clusterIP") == "None"]
    require(len(headless) == 1, "need exactly one headless Service (clusterIP: None)")
    h = headless[0]
    require(h["spec"].get("publishNotReadyAddresses", False) is False,
            "the headless Service must not publish unready (loading or draining) pods")
    require(any(p.get("targetPort") == "grpc" for p in h["spec"]["ports"]),
            "the headless Service has no grpc port")
    cluster = [s for s in services.values() if s["spec"].get("clusterIP") != "None"]
    require(len(cluster) == 1, "need exactly one ClusterIP Service")
    ports = {p["name"]: p for p in cluster[0]["spec"]["ports"]}
    require("grpc" in ports and "metrics" in ports, "the ClusterIP Service needs grpc and metrics ports")
    require(ports["grpc"].get("appProtocol") in ("grpc", "kubernetes.io/h2c"),
            "the ClusterIP Service's grpc port should say appProtocol grpc or kubernetes.io/h2c")
    return f"headless {h['metadata']['name']}, ClusterIP {cluster[0]['metadata']['name']}"


def check_servicemonitor(objects):
    sm = one(objects, "ServiceMonitor")
    selector = sm["spec"]["selector"].get("matchLabels") or {}
    services = [s for s in by_kind(objects, "Service")
                if selects(selector, s["metadata"].get("labels") or {})]
    require(len(services) == 1,
            f"the ServiceMonitor selects {len(services)} Services; it should select the ClusterIP one only")
    svc = services[0]
    require(svc["spec"].get("clusterIP") != "None", "the ServiceMonitor selects the headless Service")
    port_names = {p["name"] for p in svc["spec"]["ports"]}
    endpoints = sm["spec"].get("endpoints") or []
    require(endpoints, "the ServiceMonitor has no endpoints")
    for ep in endpoints:
        require(ep.get("port") in port_names,
                f"ServiceMonitor endpoint port {ep.get('port')!r} is not a port of Service "
                f"{svc['metadata']['name']} ({sorted(port_names)})")
        tp = next(p["targetPort"] for p in svc["spec"]["ports"] if p["name"] == ep["port"])
        require(tp == "metrics", f"the ServiceMonitor scrapes the {tp} container port, not metrics")
    return f"selects {svc['metadata']['name']}:{endpoints[0]['port']}"


def check_pdb_and_netpol(objects):
    dep = one(objects, "Deployment")
    labels = pod_labels(dep)
    pdb = one(objects, "PodDisruptionBudget")
    require(selects(pdb["spec"]["selector"].get("matchLabels"), labels), "the PDB does not select the pods")
    np = one(objects, "NetworkPolicy")
    require(selects(np["spec"]["podSelector"].get("matchLabels"), labels),
            "the NetworkPolicy does not select the pods")
    require("Ingress" in np["spec"].get("policyTypes", []), "the NetworkPolicy does not restrict ingress")
    allowed = set()
    for rule in np["spec"].get("ingress", []):
        for p in rule.get("ports", []):
            allowed.add((p.get("protocol", "TCP"), p.get("port")))
    want = {("TCP", p["containerPort"]) for p in container_of(dep)["ports"]}
    require(allowed == want, f"the NetworkPolicy allows {sorted(allowed)}, the container serves {sorted(want)}")


def check_hpa(objects):
    hpa = one(objects, "HorizontalPodAutoscaler")
    dep = one(objects, "Deployment")
    ref = hpa["spec"]["scaleTargetRef"]
    require(ref.get("kind") == "Deployment" and ref.get("name") == dep["metadata"]["name"],
            f"the HPA scales {ref}, not the Deployment")
    require(hpa["spec"].get("minReplicas", 1) >= 2, "minReplicas below 2 leaves no replica during a drain")
    metrics = hpa["spec"]["metrics"]
    pods = [m for m in metrics if m["type"] == "Pods"]
    require(len(pods) == 1, "the HPA should scale on one Pods metric")
    name = pods[0]["pods"]["metric"]["name"]
    rules = adapter_rules(objects)
    exposed = {}
    for r in rules:
        series = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", r["seriesQuery"]).group(1)
        matches = r["name"].get("matches", "")
        require(re.search(matches, series), f"adapter name.matches {matches!r} does not match {series}")
        overrides = (r.get("resources") or {}).get("overrides") or {}
        require({"namespace", "pod"} <= set(overrides),
                "the adapter rule must map the namespace and pod labels to resources")
        q = r["metricsQuery"]
        require("<<.LabelMatchers>>" in q and "<<.GroupBy>>" in q,
                "metricsQuery must use <<.LabelMatchers>> and <<.GroupBy>>")
        exposed[r["name"]["as"]] = r
    require(name in exposed, f"the HPA's metric {name} is none of the adapter's {sorted(exposed)}")
    require(pods[0]["pods"]["target"]["type"] == "AverageValue", "a Pods metric target is an AverageValue")
    return f"{name} target {pods[0]['pods']['target']['averageValue']}"


def check_metric_names(objects, repo):
    known = metric_names(repo)
    exprs = [("adapter " + r["name"]["as"], r["seriesQuery"] + " " + r["metricsQuery"])
             for r in adapter_rules(objects)]
    for g in prometheus_rule_spec(objects)["groups"]:
        exprs += [(r.get("alert") or r.get("record"), r["expr"]) for r in g["rules"]]
    exprs += [("panel " + t, e) for t, e in dashboard_exprs(objects)[1]]
    for where, expr in exprs:
        unknown = used_metrics(expr) - known
        require(not unknown, f"{where} reads {sorted(unknown)}, which server/core/metrics.cc does not export")
    return f"{len(exprs)} expressions"


def check_dashboard(objects, promtool, tmp):
    dash, exprs = dashboard_exprs(objects)
    # Grafana's $__rate_interval and the dashboard's own template variables.
    defined = {"$" + v["name"] for v in dash.get("templating", {}).get("list", [])}
    allowed = DASHBOARD_VARIABLES | defined
    records = []
    for i, (title, expr) in enumerate(exprs):
        variables = set(re.findall(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", expr))
        require(variables <= allowed,
                f"panel {title!r} uses {sorted(variables - allowed)}; "
                f"only {sorted(allowed)} may be used")
        expr = expr.replace("$__rate_interval", "1m")
        for variable in defined:
            expr = expr.replace(variable, "test")
        records.append({"record": f"dashboard:expr_{i}", "expr": expr})
    titles = {p.get("title") for p in dash["panels"]}
    require(len(titles) == len(dash["panels"]), "two panels share a title")
    path = os.path.join(tmp, "dashboard.rules.yaml")
    with open(path, "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}, f)
    proc = run([promtool, "check", "rules", path])
    require(proc.returncode == 0, "a panel's query is not valid PromQL:\n" + proc.stdout)
    return f"{len(exprs)} queries in {len(dash['panels'])} panels parse"


def check_model_config_mounts(objects, repo, overlay):
    """A config.pbtxt mounted over the image's must match the repository's
    model config in everything but instance_group."""
    dep = one(objects, "Deployment")
    c = container_of(dep)
    flags = parse_args(c)
    root = flags.get("model_repository", "").rstrip("/")
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"].get("volumes", [])}
    cms = {o["metadata"]["name"]: o for o in by_kind(objects, "ConfigMap")}
    mounted = []
    for m in c.get("volumeMounts", []):
        mp = m["mountPath"]
        if not mp.startswith(root + "/"):
            continue
        parts = mp[len(root) + 1:].split("/")
        require(len(parts) == 2 and parts[1] == "config.pbtxt" and m.get("subPath") == "config.pbtxt",
                f"mount at {mp}: only <model>/config.pbtxt may be replaced, by subPath config.pbtxt")
        model = parts[0]
        ours = os.path.join(repo, "model_repository", model, "config.pbtxt")
        require(os.path.exists(ours), f"{mp} replaces the config of {model}, which model_repository lacks")
        cm = cms.get(volumes[m["name"]]["configMap"]["name"])
        require(cm, f"volume {m['name']} names no rendered ConfigMap")
        theirs = cm["data"]["config.pbtxt"]

        def significant(text):
            lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
            return [ln for ln in lines if ln and not ln.startswith("instance_group")]
        require(significant(theirs) == significant(open(ours).read()),
                f"the mounted config of {model} differs from model_repository/{model}/config.pbtxt "
                "in more than instance_group: copy the change over")
        groups = [ln for ln in theirs.splitlines() if ln.strip().startswith("instance_group")]
        mounted.append((model, groups))
    if overlay == "gpu":
        require(mounted, "the gpu overlay does not put the default model on the GPU")
        for model, groups in mounted:
            require(groups and all(re.search(r"\bkind:\s*GPU\b", g) for g in groups),
                    f"the gpu overlay's config of {model} has no instance_group kind GPU")
        res = c["resources"]
        require(str(res.get("limits", {}).get("nvidia.com/gpu")) == "1", "the gpu overlay requests no nvidia.com/gpu")
        tol = dep["spec"]["template"]["spec"].get("tolerations", [])
        require(any(t.get("key") == "nvidia.com/gpu" for t in tol), "the gpu overlay does not tolerate nvidia.com/gpu")
    else:
        require("nvidia.com/gpu" not in c["resources"].get("limits", {}),
                f"overlay {overlay} asks for a GPU")
    return ", ".join(f"{m}: {g}" for m, g in mounted) or "none"


def check_alerts(objects, promtool, tmp):
    spec = prometheus_rule_spec(objects)
    alerts = {r["alert"] for g in spec["groups"] for r in g["rules"] if "alert" in r}
    want = {"SegserveHighQueueTime", "SegserveHighErrorRatio", "SegserveModelNotReady"}
    require(want <= alerts, f"alerts {sorted(want - alerts)} are missing")
    rules = os.path.join(tmp, "segserve.rules.yaml")
    with open(rules, "w") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    proc = run([promtool, "check", "rules", rules])
    require(proc.returncode == 0, "promtool check rules failed:\n" + proc.stdout)
    test = os.path.join(tmp, "alerts_test.yaml")
    shutil.copy(os.path.join(HERE, "alerts_test.yaml"), test)
    tested = {t["alertname"] for case in yaml.safe_load(open(test))["tests"]
              for t in case.get("alert_rule_test", [])}
    require(alerts <= tested, f"alerts {sorted(alerts - tested)} have no test in alerts_test.yaml")
    proc = run([promtool, "test", "rules", test], cwd=tmp)
    require(proc.returncode == 0, "promtool test rules failed:\n" + proc.stdout)
    return f"{len(alerts)} alerts"


def check_adapter_query(objects, promtool, tmp):
    hpa = one(objects, "HorizontalPodAutoscaler")
    metric = next(m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    rules = [r for r in adapter_rules(objects) if r["name"]["as"] == metric]
    require(rules, f"no adapter rule exposes the HPA's metric {metric}")
    rule = rules[0]
    # As prometheus-adapter fills in the template for a Pods metric query.
    query = (rule["metricsQuery"]
             .replace("<<.LabelMatchers>>", 'namespace="ns",pod=~"a|c|d"')
             .replace("<<.GroupBy>>", "pod"))
    require("<<" not in query, f"metricsQuery uses template fields the test does not fill: {query}")
    test = yaml.safe_load(open(os.path.join(HERE, "adapter_test.yaml")))
    for case in test["tests"]:
        for t in case["promql_expr_test"]:
            if t["expr"] == "@METRICS_QUERY@":
                t["expr"] = query
    path = os.path.join(tmp, "adapter_test.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(test, f, sort_keys=False)
    proc = run([promtool, "test", "rules", path], cwd=tmp)
    require(proc.returncode == 0, "the adapter query gives wrong values:\n" + proc.stdout)


# ---------------------------------------------------------------- main

def check_kserve(repo, accepted):
    """The KServe example (deploy/kserve): a ServingRuntime that speaks
    grpc-v2 on its one h2c port and v2 REST on KServe's 8080, with args
    segserve accepts, and an
    InferenceService that uses it. No KServe schemas are at hand: the
    structure is checked here."""
    def load(name):
        with open(os.path.join(repo, "deploy", "kserve", name)) as f:
            return yaml.safe_load(f)
    runtime = load("servingruntime.yaml")
    service = load("inferenceservice.yaml")
    require((runtime["apiVersion"], runtime["kind"]) ==
            ("serving.kserve.io/v1alpha1", "ServingRuntime"),
            f"servingruntime.yaml is {runtime['apiVersion']} {runtime['kind']}")
    require((service["apiVersion"], service["kind"]) ==
            ("serving.kserve.io/v1beta1", "InferenceService"),
            f"inferenceservice.yaml is {service['apiVersion']} {service['kind']}")
    spec = runtime["spec"]
    require(spec.get("protocolVersions") == ["grpc-v2", "v2"],
            f"protocolVersions are {spec.get('protocolVersions')}, need [grpc-v2, v2]")
    require(int_flag(parse_args(spec["containers"][0]), "http_port") == 8080,
            "--http_port must be 8080, KServe's HTTP port for v2 REST")
    formats = {f["name"] for f in spec.get("supportedModelFormats", [])}
    require(len(spec.get("containers", [])) == 1, "the runtime needs one container")
    container = spec["containers"][0]
    require(container.get("image") == OVERLAY_IMAGES["cpu"],
            f"the runtime's image is {container.get('image')}")
    flags = parse_args(container)
    if accepted:
        missing = sorted(set(flags) - accepted)
        require(not missing, "segserve does not accept " + ", ".join("--" + f for f in missing))
    require(flags.get("model_repository") == "/mnt/models",
            "--model_repository must be /mnt/models, where KServe mounts storageUri")
    require(os.path.isdir(os.path.join(repo, "model_repository", flags.get("default_model", ""))),
            f"--default_model={flags.get('default_model')} is not a shipped model")
    ports = container.get("ports", [])
    require(len(ports) == 1 and ports[0].get("name") == "h2c",
            f"the runtime needs one port named h2c (gRPC for Knative), has {ports}")
    require(int_flag(flags, "grpc_port") == ports[0]["containerPort"],
            f"--grpc_port={flags.get('grpc_port')} but the h2c port is {ports[0]['containerPort']}")
    model = service["spec"]["predictor"]["model"]
    require(model.get("runtime") == runtime["metadata"]["name"],
            f"the InferenceService uses runtime {model.get('runtime')}")
    require(model.get("modelFormat", {}).get("name") in formats,
            f"its modelFormat {model.get('modelFormat')} is not one the runtime supports {formats}")
    require(model.get("protocolVersion") == "grpc-v2", "its protocolVersion must be grpc-v2")
    require(model.get("storageUri"), "it has no storageUri")
    return f"{len(flags)} flags, port {ports[0]['containerPort']}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segserve", required=True, help="the segserve binary whose flags the args must use")
    ap.add_argument("--repo", default=os.path.normpath(os.path.join(HERE, "..", "..", "..")))
    ap.add_argument("--kubectl", help=f"kubectl 1.20 (default {DEBIAN_KUBECTL}, else /usr/bin/kubectl)")
    ap.add_argument("--node", default=shutil.which("node") or "/usr/bin/node")
    ap.add_argument("--promtool", default=shutil.which("promtool") or "/usr/bin/promtool")
    args = ap.parse_args()

    r = Runner()
    found = r.check("kubectl is Debian's v1.20", find_kubectl, args.kubectl, note=lambda k: f"{k[0]}: {k[1]}")
    kubectl = found[0] if found else None
    accepted = r.check("segserve --helpfull lists flags", help_flags, args.segserve,
                       note=lambda f: f"{len(f)} flags")

    def unavailable(what):
        raise CheckFailed(what)

    overlays_dir = os.path.join(args.repo, "deploy", "overlays")
    overlays = sorted(d for d in os.listdir(overlays_dir)
                      if os.path.exists(os.path.join(overlays_dir, d, "kustomization.yaml")))
    rendered = {}
    with tempfile.TemporaryDirectory(prefix="segserve-manifests-") as tmp:
        for ov in overlays:
            objs = r.check(f"[{ov}] kubectl kustomize renders",
                           render if kubectl else lambda *_: unavailable("no usable kubectl"),
                           kubectl, os.path.join(overlays_dir, ov), note=lambda o: f"{len(o)} objects")
            if not objs:
                continue
            rendered[ov] = objs
            r.check(f"[{ov}] kinds", check_kinds, objs)
            r.check(f"[{ov}] labels and namespace", check_metadata, objs)
            r.check(f"[{ov}] schemas (kubernetes-models)", check_schemas, objs, args.node, tmp, ov)
            r.check(f"[{ov}] segserve accepts the args",
                    check_flags if accepted else lambda *_: unavailable("segserve's flags could not be read"),
                    objs, accepted)
            r.check(f"[{ov}] image and resources", check_container, objs, ov)
            r.check(f"[{ov}] ports and probes", check_ports_and_probes, objs)
            r.check(f"[{ov}] shutdown budget", check_shutdown, objs)
            r.check(f"[{ov}] env used in args", check_env, objs)
            r.check(f"[{ov}] security", check_security, objs)
            r.check(f"[{ov}] Services", check_services, objs)
            r.check(f"[{ov}] ServiceMonitor", check_servicemonitor, objs)
            r.check(f"[{ov}] PDB and NetworkPolicy", check_pdb_and_netpol, objs)
            r.check(f"[{ov}] HPA and adapter rule", check_hpa, objs)
            r.check(f"[{ov}] metric names exist", check_metric_names, objs, args.repo)
            r.check(f"[{ov}] model config mounts", check_model_config_mounts, objs, args.repo, ov)

        # The monitoring objects come from the base: test them once, and make
        # sure no overlay changes them.
        if rendered:
            first = rendered[min(rendered)]

            def monitoring(objs):
                keep = ("PrometheusRule", "ServiceMonitor", "HorizontalPodAutoscaler")
                return [o for o in objs if o["kind"] in keep]

            def same_monitoring():
                require(all(monitoring(o) == monitoring(first) for o in rendered.values()),
                        "an overlay changes the PrometheusRule, ServiceMonitor or HPA")
            r.check("monitoring objects equal in every overlay", same_monitoring)
            r.check("alerts: promtool check rules + test rules", check_alerts, first, args.promtool, tmp)
            r.check("adapter query: promtool test (weighting, idle pod = 0)",
                    check_adapter_query, first, args.promtool, tmp)
            r.check("dashboard queries", check_dashboard, first, args.promtool, tmp)

        def all_rendered():
            require(set(OVERLAY_IMAGES) <= set(overlays),
                    f"overlays {sorted(overlays)}; need at least {sorted(OVERLAY_IMAGES)}")
            require(len(rendered) == len(overlays), f"rendered {sorted(rendered)} of {overlays}")
        r.check("every overlay rendered", all_rendered)
        r.check("KServe ServingRuntime and InferenceService", check_kserve, args.repo, accepted)

    print(f"manifests: {r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
