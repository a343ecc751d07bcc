#!/usr/bin/python3
"""`make bench-costs`: how segserve's time and memory grow with the work.

On the shipped default model, through the real server and segload (RAW
input, so decoding is out of the figures), with the server's resident
memory (VmRSS) sampled every 100 ms during each step:
  1. image size: 256 to 4096 pixels a side, at concurrency 1, as STRETCH
     (one 512x512 model input) and as SLIDE (512x512 tiles every 341
     pixels): server time per request and the peak RSS of the step;
  2. concurrency 1 to 64, 512x512 images: throughput, p50, p99, peak RSS;
  3. models loaded 1 to 8 (copies of the default, loaded one at a time
     through the REST repository API): RSS when idle, and the first model's
     throughput at concurrency 4, so a loaded model that is not used is seen
     to cost memory only.
Writes the figures into BENCHMARKS.md between the "make bench-costs"
markers, the charts as SVG under docs/bench/, and the raw results as JSON.

  cost_curves.py --build build [--quick]
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_bench  # noqa: E402
from svg_chart import line_chart  # noqa: E402

ROOT = run_bench.ROOT
MODEL = run_bench.MODEL
BEGIN = "<!-- make bench-costs: begin (bench/cost_curves.py writes this part) -->"
END = "<!-- make bench-costs: end -->"
SIDES = [256, 512, 1024, 2048, 4096]
CONCURRENCIES = "1,2,4,8,16,32,64"
MODEL_COPIES = 8


def log(message):
    run_bench.log(message)


class RssSampler:
    """Samples a process's VmRSS (MiB) every 100 ms; peak() since reset()."""

    def __init__(self, pid):
        self.pid, self.samples, self.lock = pid, [], threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def now(self):
        with open(f"/proc/{self.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024

    def run(self):
        while self.running:
            try:
                rss = self.now()
            except (OSError, AttributeError):
                return
            with self.lock:
                self.samples.append(rss)
            time.sleep(0.1)

    def reset(self):
        with self.lock:
            self.samples = []

    def peak(self):
        with self.lock:
            return max(self.samples) if self.samples else self.now()

    def stop(self):
        self.running = False
        self.thread.join()


def make_repository(workdir):
    """The default model as STRETCH and as SLIDE, and copies of it."""
    source = os.path.join(ROOT, "model_repository", MODEL)
    with open(os.path.join(source, "config.pbtxt")) as f:
        config = f.read()
    variants = {MODEL: config,
                MODEL + "-slide": config.replace(
                    "resize: STRETCH",
                    f"resize: SLIDE stride_height: {run_bench.SLIDE_STRIDE} "
                    f"stride_width: {run_bench.SLIDE_STRIDE}")}
    for i in range(2, MODEL_COPIES + 1):
        variants[f"{MODEL}-copy{i}"] = config
    repository = os.path.join(workdir, "repository")
    for name, text in variants.items():
        text = re.sub(r'name: "[^"]*"', f'name: "{name}"', text)
        os.makedirs(os.path.join(repository, name, "1"))
        with open(os.path.join(repository, name, "config.pbtxt"), "w") as f:
            f.write(text)
        shutil.copy(os.path.join(source, "1", "model.pt"),
                    os.path.join(repository, name, "1", "model.pt"))
    return repository


def start_server(args, repository, results, name, extra=()):
    return run_bench.Process(
        [os.path.join(args.build, "server", "segserve"),
         f"--model_repository={repository}", "--grpc_port=0", "--http_port=0",
         "--metrics_port=-1", f"--default_model={MODEL}",
         "--model_control_mode=explicit", "--max_message_bytes=134217728",
         *extra],
        os.path.join(results, f"{name}.log"))


def size_curve(args, repository, results):
    server = start_server(args, repository, results, "costs-sizes",
                          [f"--load_model={MODEL}-slide"])
    rss = RssSampler(server.proc.pid)
    out = []
    try:
        for resize, model in (("STRETCH", MODEL), ("SLIDE", MODEL + "-slide")):
            for side in SIDES:
                requests = 8 if side <= 1024 else (4 if side == 2048 else 2)
                warmups = 1
                if resize == "SLIDE" and side == 4096:
                    # 144 tiles: the first one-request step warms up.
                    requests, warmups = 1, 0
                if args.quick:
                    requests = 1
                log(f"sizes: {resize} {side}x{side}, {requests} request(s)")
                rss.reset()
                step = run_bench.segload(
                    args, server.port,
                    os.path.join(results, f"costs-size-{resize}-{side}.json"),
                    "1", model,
                    ["--raw", f"--sizes={side}x{side}", "--mask_encoding=rle",
                     "--deadline_ms=600000", f"--requests={requests}",
                     f"--warmup_requests={warmups}"])[0]
                out.append({"resize": resize, "side": side,
                            "server_ms": sum(step["server_us"].values()) / 1e3,
                            "server_us": step["server_us"],
                            "p50_ms": step["latency_us"]["p50"] / 1e3,
                            "peak_rss_mib": rss.peak(),
                            "errors": sum(step["errors"].values())})
    finally:
        rss.stop()
        server.stop()
    return out


def concurrency_curve(args, repository, results):
    server = start_server(args, repository, results, "costs-concurrency")
    rss = RssSampler(server.proc.pid)
    out = []
    try:
        for c in CONCURRENCIES.split(","):
            log(f"concurrency {c}")
            rss.reset()
            step = run_bench.segload(
                args, server.port,
                os.path.join(results, f"costs-concurrency-{c}.json"), c, MODEL,
                run_bench.RAW + ["--deadline_ms=60000"])[0]
            out.append({"concurrency": int(c), "rps": step["throughput_rps"],
                        "p50_ms": step["latency_us"]["p50"] / 1e3,
                        "p99_ms": step["latency_us"]["p99"] / 1e3,
                        "batch": step["mean_batch_size"],
                        "peak_rss_mib": rss.peak(),
                        "errors": sum(step["errors"].values())})
    finally:
        rss.stop()
        server.stop()
    return out


def load_model(http_port, name):
    request = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/v2/repository/models/{name}/load",
        data=b"{}", method="POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        response.read()


def models_curve(args, repository, results):
    server = start_server(args, repository, results, "costs-models")
    rss = RssSampler(server.proc.pid)
    out = []
    try:
        for count in range(1, MODEL_COPIES + 1):
            if count > 1:
                log(f"models: loading copy {count}")
                load_model(server.http_port, f"{MODEL}-copy{count}")
            time.sleep(1)
            idle = rss.now()
            rss.reset()
            step = run_bench.segload(
                args, server.port,
                os.path.join(results, f"costs-models-{count}.json"), "4", MODEL,
                run_bench.RAW)[0]
            out.append({"models": count, "idle_rss_mib": idle,
                        "peak_rss_mib": rss.peak(),
                        "rps": step["throughput_rps"],
                        "p99_ms": step["latency_us"]["p99"] / 1e3,
                        "errors": sum(step["errors"].values())})
    finally:
        rss.stop()
        server.stop()
    return out


def charts(costs, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    sizes = costs["sizes"]
    by_resize = lambda key: {
        r: [(p["side"], p[key]) for p in sizes if p["resize"] == r]
        for r in ("STRETCH", "SLIDE")}
    files = {
        "costs-size-time.svg": line_chart(
            "Server time per request against image size (concurrency 1)",
            "image side (pixels, square)", "server ms", by_resize("server_ms"),
            log_x=True),
        "costs-size-rss.svg": line_chart(
            "Peak resident memory against image size", "image side (pixels)",
            "MiB", by_resize("peak_rss_mib"), log_x=True),
        "costs-concurrency.svg": line_chart(
            "512x512 images against concurrency", "concurrency",
            "img/s, ms or MiB / 10",
            {"img/s": [(p["concurrency"], p["rps"]) for p in costs["concurrency"]],
             "p50 ms": [(p["concurrency"], p["p50_ms"])
                        for p in costs["concurrency"]],
             "p99 ms": [(p["concurrency"], p["p99_ms"])
                        for p in costs["concurrency"]],
             "peak RSS MiB / 10": [(p["concurrency"], p["peak_rss_mib"] / 10)
                                   for p in costs["concurrency"]]},
            log_x=True),
        "costs-models.svg": line_chart(
            "Models loaded: memory, and the first model's throughput",
            "models loaded", "MiB, or img/s x 10",
            {"idle RSS MiB": [(p["models"], p["idle_rss_mib"])
                              for p in costs["models"]],
             "img/s x 10 (c=4, model 1)": [(p["models"], p["rps"] * 10)
                                           for p in costs["models"]]}),
    }
    for name, svg in files.items():
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(svg)
    return list(files)


def report(costs, elapsed_s, chart_files):
    load = costs["load"]
    lines = [
        BEGIN,
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `make bench-costs` "
        f"(bench/cost_curves.py) in {elapsed_s / 60:.0f} min, one run; load "
        f"average {load[0]:.2f} before, {load[1]:.2f} after; "
        f"{run_bench.versions()}. RAW input (no decoding), the shipped model; "
        "RSS is the server's VmRSS, sampled every 100 ms.",
        "",
        "#### Image size (concurrency 1)",
        "",
        "| resize | side | server ms | queue / preprocess / inference / "
        "postprocess ms | peak RSS MiB |",
        "|---|---|---|---|---|",
    ]
    for p in costs["sizes"]:
        parts = " / ".join(f"{p['server_us'][k] / 1e3:.1f}" for k in
                           ("queue", "preprocess", "inference", "postprocess"))
        lines.append(f"| {p['resize']} | {p['side']} | {p['server_ms']:.1f} | "
                     f"{parts} | {p['peak_rss_mib']:.0f} |")
    lines += ["", "![server time against image size](docs/bench/costs-size-time.svg)",
              "![memory against image size](docs/bench/costs-size-rss.svg)", "",
              "#### Concurrency (512x512)", "",
              "| concurrency | img/s | p50 ms | p99 ms | mean batch | peak RSS MiB |",
              "|---|---|---|---|---|---|"]
    for p in costs["concurrency"]:
        lines.append(f"| {p['concurrency']} | {p['rps']:.1f} | {p['p50_ms']:.1f} | "
                     f"{p['p99_ms']:.1f} | {p['batch']:.2f} | "
                     f"{p['peak_rss_mib']:.0f} |")
    lines += ["", "![against concurrency](docs/bench/costs-concurrency.svg)", "",
              "#### Models loaded", "",
              "| models | idle RSS MiB | model 1 img/s (c=4) | p99 ms | "
              "peak RSS MiB |", "|---|---|---|---|---|"]
    for p in costs["models"]:
        lines.append(f"| {p['models']} | {p['idle_rss_mib']:.0f} | "
                     f"{p['rps']:.1f} | {p['p99_ms']:.1f} | "
                     f"{p['peak_rss_mib']:.0f} |")
    lines += ["", "![models loaded](docs/bench/costs-models.svg)", "", END]
    assert len(chart_files) == 4
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--window_s", type=float, default=3)
    parser.add_argument("--results", default=None)
    parser.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    parser.add_argument("--quick", action="store_true",
                        help="short steps, no BENCHMARKS.md or charts written")
    args = parser.parse_args()
    if args.quick:
        args.window_s = 1
    args.build = os.path.abspath(args.build)
    results = os.path.abspath(args.results or
                              os.path.join(args.build, "bench-results"))
    os.makedirs(results, exist_ok=True)
    started = time.time()
    costs = {"load": [os.getloadavg()[0]]}
    with tempfile.TemporaryDirectory(prefix="segserve-costs-") as workdir:
        repository = make_repository(workdir)
        costs["sizes"] = size_curve(args, repository, results)
        costs["concurrency"] = concurrency_curve(args, repository, results)
        costs["models"] = models_curve(args, repository, results)
    costs["load"].append(os.getloadavg()[0])
    with open(os.path.join(results, "costs.json"), "w") as f:
        json.dump(costs, f, indent=1)
    errors = [p for curve in ("sizes", "concurrency", "models")
              for p in costs[curve] if p["errors"]]
    if errors:
        sys.exit(f"make bench-costs: failed requests in {errors}")
    if args.quick:
        print(json.dumps(costs, indent=1))
        return
    chart_files = charts(costs, os.path.join(ROOT, "docs", "bench"))
    text = report(costs, time.time() - started, chart_files)
    print(text)
    run_bench.write_between(text, args.output, BEGIN, END,
                            "## Cost curves (`make bench-costs`)")
    log(f"wrote {args.output} and docs/bench/")


if __name__ == "__main__":
    main()
