#!/usr/bin/python3
"""End-to-end test of the segserve:cpu image, run the way the kubelet runs the
Deployment of deploy/overlays/cpu (`make test-image`; long, so not in ctest).

It renders the overlay with Debian's kubectl (1.20), takes the `segserve`
container's args, env, ports, probes, preStop hook, grace period and limits,
and runs the image with exactly those under Docker (host networking):
readiness, one segmentation, the metrics, the image's own HEALTHCHECK, the
runtime image's contents, and a stop under load (preStop, SIGTERM, grace
period, KILL) that must lose no accepted request.

  tests/deploy/image/image_test.py --segclient build/tools/segclient \
      --segload build/tools/segload/segload [--image segserve:cpu]
"""
import argparse
import fractions
import json
import math
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib

import yaml

DOCKER = "/usr/bin/docker"  # Debian's client; /usr/local/bin/docker may be another
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
KUBECTLS = ["/opt/segserve/kubernetes-client/usr/bin/kubectl", "/usr/bin/kubectl"]
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


def run(cmd, check=True, timeout=120, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {p.returncode}\n{p.stdout}{p.stderr}")
    return p


def docker(*args, **kw):
    return run([DOCKER, *args], **kw)


# ---------------------------------------------------------------- the manifest

def debian_kubectl():
    for k in KUBECTLS:
        if os.access(k, os.X_OK):
            v = run([k, "version", "--client"], check=False).stdout
            if "v1.20" in v:
                return k
    raise AssertionError(f"no Debian kubectl 1.20 in {KUBECTLS} (scripts/setup-debian.sh)")


def render(overlay):
    out = run([debian_kubectl(), "kustomize", os.path.join(ROOT, overlay)]).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def quantity(q):
    """A Kubernetes resource quantity ("1500m", "2", "3Gi", "1e3") as a Fraction."""
    m = re.fullmatch(r"([0-9.]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)", str(q).strip())
    if not m:
        raise AssertionError(f"bad quantity {q!r}")
    suffixes = {"": 1, "m": fractions.Fraction(1, 1000), "k": 10**3, "M": 10**6,
                "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
                "Ti": 2**40}
    return fractions.Fraction(m.group(1)) * suffixes[m.group(2)]


def expand(text, env):
    """$(VAR) expansion as Kubernetes does it: $$ escapes, unknown refs stay."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and ")" in text[i + 2:]:
            j = text.index(")", i + 2)
            name = text[i + 2:j]
            out.append(env.get(name, text[i:j + 1]))
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def pod_spec(docs):
    """What the kubelet would run for container `segserve` of Deployment `segserve`."""
    dep = [d for d in docs if d.get("kind") == "Deployment"
           and d["metadata"]["name"] == "segserve"]
    assert len(dep) == 1, "the overlay must render one Deployment named segserve"
    spec = dep[0]["spec"]["template"]["spec"]
    (c,) = [c for c in spec["containers"] if c["name"] == "segserve"]
    limits = c.get("resources", {}).get("limits", {})
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
            continue
        ref = e.get("valueFrom", {}).get("resourceFieldRef")
        assert ref, f"env {e['name']}: only values and resourceFieldRef are emulated"
        kind, res = ref["resource"].split(".", 1)
        amount = c["resources"][kind][res]
        # The kubelet rounds up to a whole number of divisors.
        env[e["name"]] = str(math.ceil(quantity(amount) / quantity(ref.get("divisor", "1"))))
    # securityContext: the container's fields over the pod's.
    sec = {**spec.get("securityContext", {}), **c.get("securityContext", {})}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    tmpfs = []
    for m in c.get("volumeMounts", []):
        v = volumes[m["name"]]
        assert "emptyDir" in v, f"volume {m['name']}: only emptyDir is emulated"
        limit = v["emptyDir"].get("sizeLimit")
        tmpfs.append(m["mountPath"] + (f":size={int(quantity(limit))}" if limit else ""))
    ready = c["readinessProbe"]["grpc"]
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    return {
        "image": c["image"],
        "command": [expand(a, env) for a in c.get("command", [])],
        "args": [expand(a, env) for a in c.get("args", [])],
        "env": env,
        "ports": {p.get("name", str(p["containerPort"])): p["containerPort"]
                  for p in c.get("ports", [])},
        "ready_port": ready["port"],
        "ready_service": ready.get("service", ""),
        "live_service": c["livenessProbe"]["grpc"].get("service", ""),
        "pre_stop": pre_stop,
        "grace_s": spec.get("terminationGracePeriodSeconds", 30),
        "cpus": limits.get("cpu"),
        "memory": limits.get("memory"),
        "security": sec,
        "tmpfs": tmpfs,
    }


# -------------------------------------------------------------------- helpers

def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))  # segserve listens on all addresses
            return True
        except OSError:
            return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_flag(args, name, value):
    return [f"--{name}={value}" if a.startswith(f"--{name}=") else a for a in args]


def flag(args, name):
    vals = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return vals[-1] if vals else None


def write_png(path, w, h):
    """An RGB test picture (gradient, a disk, a bar), written without OpenCV."""
    rows = []
    for y in range(h):
        row = bytearray([0])
        for x in range(w):
            r, g, b = x * 255 // w, y * 255 // h, 96
            if (x - w // 3) ** 2 + (y - h // 2) ** 2 < (h // 4) ** 2:
                r, g, b = 230, 40, 40
            elif 2 * w // 3 < x < 2 * w // 3 + w // 8:
                r, g, b = 30, 30, 220
            row += bytes((r, g, b))
        rows.append(bytes(row))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(
        ">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def health(segclient, port, service):
    return run([segclient, "--health", f"--health_service={service}",
                f"--target=127.0.0.1:{port}", "--deadline_ms=1000"],
               check=False, timeout=30).returncode


def state(name):
    out = docker("inspect", "--format", "{{json .State}}", name).stdout
    return json.loads(out)


def requests_total(metrics_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    ok = 0.0
    for line in text.splitlines():
        if line.startswith("segserve_requests_total{") and 'code="OK"' in line:
            ok += float(line.rsplit(" ", 1)[1])
    return ok, text


# ----------------------------------------------------------------------- test

def test(a, name, tmp, timings):
    if a.manifest:
        with open(a.manifest) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
    else:
        docs = render(a.overlay)
    pod = pod_spec(docs)
    log(f"manifest: image {pod['image']}, args {pod['args']}, env {pod['env']}, "
        f"limits cpu={pod['cpus']} memory={pod['memory']}, grace {pod['grace_s']} s, "
        f"preStop {pod['pre_stop']}")
    image = a.image or pod["image"]
    args = pod["args"]
    grpc_port = int(flag(args, "grpc_port") or 50051)
    metrics_port = int(flag(args, "metrics_port") or 8002)
    http_port = int(flag(args, "http_port") or 8000)
    assert pod["ready_port"] == grpc_port, "the readiness probe must ask the gRPC port"
    assert {grpc_port, metrics_port, http_port} <= set(pod["ports"].values()), \
        f"containerPorts {pod['ports']} must list the gRPC, HTTP and metrics ports"
    health_cmd = []
    # Host networking shares the host's ports: keep the manifest's when free;
    # otherwise move ONLY the port flags (and the health check with them).
    if not (port_free(grpc_port) and port_free(metrics_port) and port_free(http_port)):
        grpc_port, metrics_port, http_port = free_port(), free_port(), free_port()
        args = set_flag(set_flag(set_flag(args, "grpc_port", grpc_port),
                                 "metrics_port", metrics_port), "http_port", http_port)
        health_cmd = ["--health-cmd", f"/usr/local/bin/segclient --health "
                      f"--target=127.0.0.1:{grpc_port} --health_service=liveness "
                      "--deadline_ms=3000 || exit 1"]
        log(f"manifest ports busy here: using grpc {grpc_port}, metrics {metrics_port}, "
            f"http {http_port}")

    cmd = [DOCKER, "run", "-d", "--name", name, "--network", "host",
           # The image's HEALTHCHECK, probed every second instead of 15 s.
           "--health-interval=1s", *health_cmd]
    # The pod's securityContext. The user stays the image's (USER 10001): the
    # manifest's runAsUser must agree with it, checked below.
    sec = pod["security"]
    if sec.get("readOnlyRootFilesystem"):
        cmd += ["--read-only"]
    if sec.get("allowPrivilegeEscalation") is False:
        cmd += ["--security-opt", "no-new-privileges"]
    cmd += [f"--cap-drop={c}" for c in sec.get("capabilities", {}).get("drop", [])]
    cmd += [f"--cap-add={c}" for c in sec.get("capabilities", {}).get("add", [])]
    cmd += [f"--tmpfs={t}" for t in pod["tmpfs"]]
    user = docker("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    for key, part in (("runAsUser", 0), ("runAsGroup", 1)):
        if key in sec:
            assert str(sec[key]) == (user.split(":") + [""])[part], \
                f"manifest {key}={sec[key]} but the image's USER is {user!r}"
    if pod["cpus"]:
        cmd += [f"--cpus={float(quantity(pod['cpus'])):g}"]
    if pod["memory"]:
        cmd += [f"--memory={int(quantity(pod['memory']))}b"]
    for k, v in pod["env"].items():
        cmd += ["-e", f"{k}={v}"]
    if pod["command"]:  # command replaces ENTRYPOINT, as in Kubernetes
        cmd += ["--entrypoint", pod["command"][0]]
    cmd += [image, *pod["command"][1:], *args]
    log("run: " + " ".join(cmd))
    t = time.monotonic()
    run(cmd)

    # 1. Readiness, as the readiness probe asks it.
    deadline = time.monotonic() + a.ready_timeout_s
    while health(a.segclient, grpc_port, pod["ready_service"]) != 0:
        assert state(name)["Running"], "the container exited before it was ready"
        assert time.monotonic() < deadline, f"not ready after {a.ready_timeout_s} s"
        time.sleep(0.5)
    timings["ready"] = time.monotonic() - t
    log(f"ready ({pod['ready_service']!r} SERVING) after {timings['ready']:.1f} s")
    assert health(a.segclient, grpc_port, pod["live_service"]) == 0, "liveness not SERVING"

    # 2. One segmentation, mask of the input's size.
    src, mask = os.path.join(tmp, "in.png"), os.path.join(tmp, "mask.png")
    write_png(src, 320, 200)
    t = time.monotonic()
    out = run([a.segclient, f"--target=127.0.0.1:{grpc_port}", "--image", src, "--mask", mask])
    timings["segment"] = time.monotonic() - t
    assert png_size(mask) == (320, 200), f"mask is {png_size(mask)}, want (320, 200)"
    log(f"segmented 320x200 -> mask 320x200 in {timings['segment']:.2f} s: "
        f"{out.stdout.strip().splitlines()[0] if out.stdout.strip() else ''}")

    # 2b. The same image through the HTTP port, as curl sends it.
    with open(src, "rb") as f:
        request = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/v2/models/scenes-sgcpnet/segment",
            data=f.read(), headers={"Content-Type": "image/png", "Accept": "image/png"})
    with urllib.request.urlopen(request, timeout=60) as r:
        body = r.read()
    assert body[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", body[16:24]) == (320, 200), \
        "the HTTP image endpoint did not answer the mask PNG"
    log(f"HTTP image endpoint: mask 320x200 on port {http_port}")

    # 3. Metrics count them.
    ok, _ = requests_total(metrics_port)
    assert ok >= 1, "segserve_requests_total{code=\"OK\"} does not show the request"
    log(f"metrics: segserve_requests_total OK = {ok:g}")

    # 4. The runtime image: non-root, no toolchain, no -dev packages, all libraries.
    uid = docker("exec", name, "id", "-u").stdout.strip()
    assert uid == "10001", f"runs as uid {uid}, want 10001"
    tools = docker("exec", name, "sh", "-c", "command -v gcc cc c++ g++ clang; true").stdout
    assert not tools.strip(), f"compiler in the runtime image: {tools}"
    pkgs = docker("exec", name, "dpkg-query", "-W", "-f", "${Package}\n").stdout.split()
    dev = [p for p in pkgs if re.search(r"-dev(:|$)", p)]
    assert not dev, f"-dev packages in the runtime image: {dev}"
    for b in ("/usr/local/bin/segserve", "/usr/local/bin/segclient"):
        ldd = docker("exec", name, "ldd", b).stdout
        assert "not found" not in ldd, f"{b}: missing libraries\n{ldd}"
    docker("exec", name, "sh", "-c", "command -v sleep")  # the preStop hook needs it
    deadline = time.monotonic() + 60
    while (h := state(name).get("Health", {}).get("Status")) != "healthy":
        assert h != "unhealthy" and time.monotonic() < deadline, f"HEALTHCHECK: {h}"
        time.sleep(0.5)
    log(f"image: uid 10001, no compiler, no -dev among {len(pkgs)} packages, "
        "ldd complete, HEALTHCHECK healthy")

    # 5. Stop under load, as the kubelet does: preStop, SIGTERM, grace period, KILL.
    report = os.path.join(tmp, "load.json")
    # Long enough to outlast the preStop hook and the start of the drain; not
    # much longer: requests refused after the drain fail fast, in a busy loop.
    pre = pod["pre_stop"]
    hook_s = float(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else pod["grace_s"] / 2
    load_s = 3 + hook_s + 5
    load = subprocess.Popen(
        [a.segload, f"--target=127.0.0.1:{grpc_port}", "--concurrency=4",
         f"--duration_s={load_s}", "--warmup_requests=0", "--deadline_ms=30000",
         f"--json={report}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(3)
    before, _ = requests_total(metrics_port)
    assert before > ok, "no load reached the server"
    t = time.monotonic()
    docker("exec", name, *pod["pre_stop"], timeout=pod["grace_s"])
    pre_stop_s = time.monotonic() - t
    docker("kill", "--signal=TERM", name)
    # The grace period counts from the start of the preStop hook.
    deadline = t + pod["grace_s"]
    while state(name)["Running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = state(name)["Running"]
    if killed:
        docker("kill", name)
    timings["stop"] = time.monotonic() - t
    code = state(name)["ExitCode"]
    out = docker("logs", name)
    logs = out.stdout + out.stderr
    load_out = load.communicate(timeout=load_s + 60)[0]
    log(f"stop: preStop {pre_stop_s:.1f} s, exit {code} after {timings['stop']:.1f} s "
        f"of {pod['grace_s']} s grace")
    print(load_out, flush=True)
    drain = [l for l in logs.splitlines() if "draining" in l or "stopped" in l]
    print("\n".join(drain), flush=True)
    assert not killed, f"still running after {pod['grace_s']} s: KILLed\n{logs[-3000:]}"
    assert code == 0, f"exit code {code}\n{logs[-3000:]}"
    assert "stopped cleanly" in logs, f"no 'stopped cleanly' in the logs\n{logs[-3000:]}"
    m = re.search(r"draining (\d+)", logs)
    assert m and int(m.group(1)) > 0, "no request was in flight when the drain began"
    with open(report) as f:
        steps = json.load(f)["steps"]
    errors = {k: v for s in steps for k, v in s["errors"].items()}
    okays = sum(s["ok"] for s in steps)
    # Refused after the drain began: UNAVAILABLE, or CANCELLED for a call that
    # raced the GOAWAY (gRPC drops it before segserve sees it; segload has no
    # retries here). "stopped cleanly" above says no accepted one was cut.
    assert okays > 0 and set(errors) <= {"UNAVAILABLE", "CANCELLED"}, \
        f"requests failed other than refused after the drain: {errors}"
    log(f"load: {okays} ok, errors {errors or 'none'}; {m.group(1)} in flight at SIGTERM, "
        "all finished")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--segclient", default=os.path.join(ROOT, "build/tools/segclient"))
    p.add_argument("--segload", default=os.path.join(ROOT, "build/tools/segload/segload"))
    p.add_argument("--image", default="", help="default: the manifest's image")
    p.add_argument("--overlay", default="deploy/overlays/cpu")
    p.add_argument("--manifest", default="",
                   help="an already rendered manifest instead of the overlay (debugging)")
    p.add_argument("--ready_timeout_s", type=float, default=120)
    a = p.parse_args()
    for b in (a.segclient, a.segload):
        assert os.access(b, os.X_OK), f"{b} missing: build it first (make build)"

    # A daemon that answers is reused; otherwise the one started here is stopped again.
    env = run([os.path.join(ROOT, "docker/start-dockerd.sh")]).stdout
    for k, v in re.findall(r"export (\w+)=(\S*)", env):
        os.environ[k] = v
    started = os.environ.get("SEGSERVE_DOCKERD_STARTED") == "1"
    name = f"segserve-image-test-{os.getpid()}"
    timings = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            test(a, name, tmp, timings)
    except BaseException:
        out = docker("logs", "--tail", "30", name, check=False)
        print(f"--- last lines of the container's log:\n{out.stdout}{out.stderr}", flush=True)
        raise
    finally:
        docker("rm", "-f", name, check=False)
        if started:
            run([os.path.join(ROOT, "docker/start-dockerd.sh"), "stop"], check=False)
        log("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    log("image test PASSED")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        log(f"image test FAILED: {e}")
        sys.exit(1)
