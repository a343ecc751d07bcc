#!/usr/bin/python3
"""`make bench`: the serving benchmarks of BENCHMARKS.md, side by side.

Runs, R times in turn (so that every ratio compares runs taken minutes
apart under the same machine load), on the shipped default model:
  1. the in-process model (bench/inprocess_bench) at batch 1..max_batch_size;
  1b. the mask pass fused (the default) and unfused
     (--fused_mask_upsampling=false), in-process at batch 1 and
     max_batch_size and through a second server at concurrency 16, and the
     masks' agreement between the two servers with segscore;
  2. segserve under a closed-loop concurrency sweep (segload, RAW input),
     and at concurrency 16 through the Open Inference Protocol's ModelInfer;
  3. segserve with batching off (max_batch_size 1) at concurrency 16;
  4. segserve (builtin network, and the TorchScript export with its load-time
     optimization) against the Python peer (bench/python_peer.py: batching,
     concurrent handlers, the same export frozen in channels-last layout) at
     concurrency 1, 4 and 16; and the TorchScript export in-process and at
     concurrency 16 with its optimization off (NONE) and on (AUTO);
  5. 2048x2048 images through the same weights as SLIDE (36 tiles of
     512x512, each a batch item) and as STRETCH, at concurrency 2;
  5b. a 2048x2048 JPEG at concurrency 1, decoded reduced (the default) and
     whole (a second server, --reduced_jpeg_decode=false), and segscore's
     mIoU and mask agreement for both on large scene JPEGs;
  6. the request codecs per megapixel (inprocess_bench --codecs);
  7. segserve at concurrency 1 with a 512x512 JPEG;
then writes the medians and ratios into BENCHMARKS.md between the
"make bench" markers, and every raw result as JSON under --results.

  run_bench.py --build build [--repeats 3] [--quick]
"""
import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "scenes-sgcpnet"
BEGIN = "<!-- make bench: begin (bench/run_bench.py writes this part) -->"
END = "<!-- make bench: end -->"


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
          flush=True)


class Process:
    """A server started in the background; waits for its "ready" line."""

    def __init__(self, argv, log_path, env=None):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))
        self.log_path = log_path
        # Five models load in turn, the TorchScript ones timing each rewrite.
        deadline = time.time() + 300
        while time.time() < deadline:
            with open(log_path) as f:
                match = re.search(r"ready grpc_port=(\d+)(?: metrics_port=-?\d+ "
                                  r"http_port=(\d+))?", f.read())
            if match:
                self.port = int(match.group(1))
                self.http_port = int(match.group(2) or 0)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        with open(log_path) as f:
            raise RuntimeError(f"{argv[0]} did not start:\n{f.read()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def make_repository(workdir, torchscript):
    """The shipped model as it is, with batching off, and as TorchScript
    (optimized at load, and as saved)."""
    source = os.path.join(ROOT, "model_repository", MODEL)
    repository = os.path.join(workdir, "repository")
    with open(os.path.join(source, "config.pbtxt")) as f:
        config = f.read()
    torchscript_config = re.sub(
        r"\narchitecture: [^\n]*", "",
        config.replace("platform: BUILTIN", "platform: TORCHSCRIPT"))
    variants = {
        MODEL: config,
        MODEL + "-nobatch": re.sub(
            r"max_batch_size: \d+", "max_batch_size: 1",
            re.sub(r"\n\s*preferred_batch_size: \[[^\]]*\]", "", config)),
        MODEL + "-slide": config.replace(
            "resize: STRETCH",
            f"resize: SLIDE stride_height: {SLIDE_STRIDE} "
            f"stride_width: {SLIDE_STRIDE}"),
        MODEL + "-ts": torchscript_config,
        MODEL + "-ts-none": torchscript_config +
        "\ntorchscript { optimization: NONE }\n",
    }
    for name, text in variants.items():
        text = re.sub(r'name: "[^"]*"', f'name: "{name}"', text)
        os.makedirs(os.path.join(repository, name, "1"))
        with open(os.path.join(repository, name, "config.pbtxt"), "w") as f:
            f.write(text)
        weights = (torchscript if "-ts" in name else
                   os.path.join(source, "1", "model.pt"))
        shutil.copy(weights, os.path.join(repository, name, "1", "model.pt"))
    return repository


def run_json(argv):
    out = subprocess.run(argv, check=True, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout
    return json.loads(out)


def segload(args, port, json_path, concurrency, model, extra=()):
    argv = [os.path.join(args.build, "tools", "segload", "segload"),
            f"--target=127.0.0.1:{port}", f"--concurrency={concurrency}",
            f"--model={model}", "--decode_masks=false",
            f"--window_s={args.window_s}", "--max_windows=8",
            "--warmup_requests=16", f"--json={json_path}", *extra]
    done = subprocess.run(argv, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    with open(json_path) as f:
        return json.load(f)["steps"]


RAW = ["--raw", "--sizes=512x512", "--mask_encoding=rle"]
# SLIDE: 512 x 512 tiles every 341 pixels of 2048 x 2048 images (6 x 6 = 36
# tiles), against STRETCH on the same images.
SLIDE_STRIDE = 341
SLIDE_SIDE = 2048
SLIDE_TILES = ((SLIDE_SIDE - 512 + SLIDE_STRIDE - 1) // SLIDE_STRIDE + 1) ** 2
SLIDE_CONCURRENCY = "2"
BIG_RAW = ["--raw", f"--sizes={SLIDE_SIDE}x{SLIDE_SIDE}", "--mask_encoding=rle",
           "--deadline_ms=120000"]
PEER_CONCURRENCIES = "1,4,16"
# PyTorch's CPU performance guide for the peer: glibc's malloc keeps freed
# memory instead of returning it to the system at every batch, and OpenBLAS
# does not start threads of its own next to PyTorch's OpenMP ones.
PEER_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 34),
            "MALLOC_TRIM_THRESHOLD_": str(1 << 34),
            "MALLOC_TOP_PAD_": str(1 << 30),
            "OPENBLAS_NUM_THREADS": "1"}
JPEG = ["--send=jpeg", "--sizes=512x512", "--mask_encoding=png"]
# A large JPEG to the 512x512 STRETCH model, decoded reduced (the default)
# and whole (--reduced_jpeg_decode=false, a second server), at concurrency 1.
BIG_JPEG_SIDE = 2048
BIG_JPEG = ["--send=jpeg", f"--sizes={BIG_JPEG_SIDE}x{BIG_JPEG_SIDE}",
            "--mask_encoding=rle", "--deadline_ms=60000"]
# Scenes scored through both servers once, for the masks' agreement.
BIG_JPEG_SCENES = 12


def one_repetition(args, rep, repository, torchscript, results):
    bench = os.path.join(args.build, "bench", "inprocess_bench")
    out = {"load_before": os.getloadavg()[0]}
    log(f"repetition {rep}: in-process model")
    out["inprocess"] = run_json(
        [bench, f"--model_dir={os.path.join(repository, MODEL)}",
         f"--min_seconds={args.min_seconds}"])["batches"]
    for name in ("ts", "ts-none"):
        log(f"repetition {rep}: in-process TorchScript export ({name})")
        out[f"inprocess_{name}"] = run_json(
            [bench, f"--model_dir={os.path.join(repository, MODEL + '-' + name)}",
             f"--batches=1,{args.max_batch}",
             f"--min_seconds={args.min_seconds}"])["batches"]
    log(f"repetition {rep}: in-process model, mask pass unfused")
    out["inprocess_unfused"] = run_json(
        [bench, f"--model_dir={os.path.join(repository, MODEL)}",
         f"--batches=1,{args.max_batch}", "--fused_mask_upsampling=false",
         f"--min_seconds={args.min_seconds}"])["batches"]
    log(f"repetition {rep}: codecs")
    out["codecs"] = run_json([bench, "--codecs", f"--model_dir={repository}/{MODEL}",
                              f"--min_seconds={args.min_seconds}"])["codecs"]

    server = Process([os.path.join(args.build, "server", "segserve"),
                      f"--model_repository={repository}", "--grpc_port=0", "--http_port=0",
                      "--metrics_port=-1", f"--default_model={MODEL}"],
                     os.path.join(results, f"segserve-{rep}.log"))
    whole_decode = Process([os.path.join(args.build, "server", "segserve"),
                            f"--model_repository={repository}", "--grpc_port=0",
                            "--http_port=0", "--metrics_port=-1",
                            f"--default_model={MODEL}",
                            "--model_control_mode=explicit",
                            "--reduced_jpeg_decode=false"],
                           os.path.join(results, f"segserve-whole-{rep}.log"))
    unfused = Process([os.path.join(args.build, "server", "segserve"),
                       f"--model_repository={repository}", "--grpc_port=0",
                       "--http_port=0", "--metrics_port=-1",
                       f"--default_model={MODEL}",
                       "--model_control_mode=explicit",
                       "--fused_mask_upsampling=false"],
                      os.path.join(results, f"segserve-unfused-{rep}.log"))
    peer = Process(["/usr/bin/python3", os.path.join(ROOT, "bench", "python_peer.py"),
                    f"--model={torchscript}",
                    f"--proto_root={os.path.join(ROOT, 'proto')}", "--port=0",
                    f"--max_batch_size={args.max_batch}",
                    f"--model_name={MODEL}-ts"],
                   os.path.join(results, f"peer-{rep}.log"), PEER_ENV)
    try:
        path = lambda name: os.path.join(results, f"{name}-{rep}.json")
        log(f"repetition {rep}: concurrency sweep {args.sweep}")
        out["sweep"] = segload(args, server.port, path("sweep"), args.sweep,
                               MODEL, RAW)
        log(f"repetition {rep}: Open Inference Protocol, concurrency 16")
        out["oip"] = segload(args, server.port, path("oip"), "16", MODEL,
                             RAW + ["--protocol=oip"])[0]
        log(f"repetition {rep}: KServe v2 REST (binary tensors), concurrency "
            "16 and 1, beside Segment at concurrency 1")
        out["rest"] = segload(args, server.http_port, path("rest"), "16", MODEL,
                              RAW + ["--protocol=http"])[0]
        out["grpc_c1"] = segload(args, server.port, path("grpc_c1"), "1", MODEL,
                                 RAW)[0]
        out["rest_c1"] = segload(args, server.http_port, path("rest_c1"), "1",
                                 MODEL, RAW + ["--protocol=http"])[0]
        log(f"repetition {rep}: mask pass unfused, concurrency 16")
        out["unfused"] = segload(args, unfused.port, path("unfused"), "16",
                                 MODEL, RAW)[0]
        if rep == 1:
            out["mask_pass_scores"] = mask_pass_scores(args, server.port,
                                                       unfused.port)
        log(f"repetition {rep}: batching off, concurrency 16")
        out["nobatch"] = segload(args, server.port, path("nobatch"), "16",
                                 MODEL + "-nobatch", RAW)[0]
        log(f"repetition {rep}: TorchScript in segserve, concurrency "
            f"{PEER_CONCURRENCIES}")
        out["torchscript"] = segload(args, server.port, path("torchscript"),
                                     PEER_CONCURRENCIES, MODEL + "-ts", RAW)
        log(f"repetition {rep}: TorchScript as saved in segserve, concurrency 16")
        out["torchscript_none"] = segload(
            args, server.port, path("torchscript_none"), "16",
            MODEL + "-ts-none", RAW)[0]
        log(f"repetition {rep}: Python peer, concurrency {PEER_CONCURRENCIES}")
        out["peer"] = segload(args, peer.port, path("peer"), PEER_CONCURRENCIES,
                              MODEL + "-ts", RAW)
        log(f"repetition {rep}: {SLIDE_SIDE}x{SLIDE_SIDE} SLIDE and STRETCH, "
            f"concurrency {SLIDE_CONCURRENCY}")
        # A SLIDE request takes longer than a quick run's 1-s windows.
        big = BIG_RAW + (["--requests=4", "--warmup_requests=2"]
                         if args.quick else [])
        out["slide"] = segload(args, server.port, path("slide"),
                               SLIDE_CONCURRENCY, MODEL + "-slide", big)[0]
        out["big_stretch"] = segload(args, server.port, path("big_stretch"),
                                     SLIDE_CONCURRENCY, MODEL, big)[0]
        log(f"repetition {rep}: concurrency 1, 512x512 JPEG")
        out["jpeg_c1"] = segload(args, server.port, path("jpeg_c1"), "1",
                                 MODEL, JPEG)[0]
        log(f"repetition {rep}: concurrency 1, {BIG_JPEG_SIDE}x{BIG_JPEG_SIDE} "
            "JPEG decoded reduced and whole")
        big_jpeg = BIG_JPEG + (["--requests=4", "--warmup_requests=1"]
                               if args.quick else [])
        out["big_jpeg_reduced"] = segload(args, server.port, path("big_jpeg_reduced"),
                                          "1", MODEL, big_jpeg)[0]
        out["big_jpeg_whole"] = segload(args, whole_decode.port,
                                        path("big_jpeg_whole"), "1", MODEL,
                                        big_jpeg)[0]
        if rep == 1:
            out["big_jpeg_scores"] = big_jpeg_scores(args, server.port,
                                                     whole_decode.port)
    finally:
        server.stop()
        whole_decode.stop()
        unfused.stop()
        peer.stop()
    with open(os.path.join(results, f"segserve-{rep}.log")) as f:
        chosen = re.search(rf"{MODEL}-ts/1/model.pt on cpu: TorchScript "
                           r"optimization (\S+)", f.read())
    out["ts_optimization"] = chosen.group(1) if chosen else "?"
    out["load_after"] = os.getloadavg()[0]
    return out


def score(args, port, scene_args, reference_port=None):
    """segscore's mIoU on scenes through the server at `port`, and with a
    reference server the share of mask pixels on which the two agree."""
    argv = [os.path.join(args.build, "tools", "segscore"),
            f"--target=127.0.0.1:{port}", f"--model={MODEL}"] + scene_args
    if reference_port:
        argv.append(f"--reference_target=127.0.0.1:{reference_port}")
    out = subprocess.run(argv, stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    scores = {"miou": float(re.search(r"mIoU (\S+)", out).group(1))}
    agreement = re.search(r"agreement with \S+: (\S+)", out)
    if agreement:
        scores["agreement"] = float(agreement.group(1))
    return scores


def big_jpeg_scores(args, reduced_port, whole_port):
    """mIoU of both decodings on the same large scene JPEGs, and the share of
    mask pixels on which they agree (segscore against both servers)."""
    scenes = [f"--count={2 if args.quick else BIG_JPEG_SCENES}",
              f"--width={BIG_JPEG_SIDE}", f"--height={BIG_JPEG_SIDE}",
              "--jpeg_quality=90", "--concurrency=1", "--first_seed=5000"]
    reduced = score(args, reduced_port, scenes, whole_port)
    return {"reduced_miou": reduced["miou"], "agreement": reduced["agreement"],
            "whole_miou": score(args, whole_port, scenes)["miou"]}


# Held-out scenes scored through the fused and unfused mask passes.
MASK_PASS_SCENES = 100


def mask_pass_scores(args, fused_port, unfused_port):
    """mIoU of both mask passes on the same held-out scenes (clean and
    noisy), and the share of mask pixels on which they agree."""
    out = {}
    for variant, extra in (("clean", []), ("noisy", ["--noise_over_objects"])):
        scenes = [f"--count={4 if args.quick else MASK_PASS_SCENES}",
                  "--first_seed=0"] + extra
        fused = score(args, fused_port, scenes, unfused_port)
        out[variant] = {"fused_miou": fused["miou"],
                        "agreement": fused["agreement"],
                        "unfused_miou": score(args, unfused_port, scenes)["miou"]}
    return out


def median(values):
    return statistics.median(values)


def summarize(reps):
    """Medians over repetitions of every figure the report uses."""
    s = {}
    batches = [row["batch"] for row in reps[0]["inprocess"]]
    s["inprocess"] = {
        b: {"images_per_s": median([r["inprocess"][i]["images_per_s"] for r in reps]),
            "batch_ms": median([r["inprocess"][i]["batch_ms"] for r in reps]),
            "batch_ms_mean": median([r["inprocess"][i]["batch_ms_mean"] for r in reps])}
        for i, b in enumerate(batches)}
    for key in ("inprocess_ts", "inprocess_ts-none", "inprocess_unfused"):
        s[key] = {row["batch"]: median([r[key][i]["images_per_s"] for r in reps])
                  for i, row in enumerate(reps[0][key])}
    s["ts_optimization"] = sorted({r["ts_optimization"] for r in reps})

    def step_stats(steps):
        return {
            "rps": median([t["throughput_rps"] for t in steps]),
            "p50": median([t["latency_us"]["p50"] for t in steps]) / 1e3,
            "p99": median([t["latency_us"]["p99"] for t in steps]) / 1e3,
            "batch": median([t["mean_batch_size"] for t in steps]),
            "server": {k: median([t["server_us"][k] for t in steps]) / 1e3
                       for k in ("queue", "preprocess", "inference", "postprocess")},
            "errors": sum(sum(t["errors"].values()) for t in steps),
        }

    concurrencies = [t["concurrency"] for t in reps[0]["sweep"]]
    s["sweep"] = {c: step_stats([r["sweep"][i] for r in reps])
                  for i, c in enumerate(concurrencies)}
    for key in ("oip", "rest", "grpc_c1", "rest_c1", "nobatch",
                "torchscript_none", "jpeg_c1", "slide", "big_stretch",
                "big_jpeg_reduced", "big_jpeg_whole", "unfused"):
        s[key] = step_stats([r[key] for r in reps])
    s["big_jpeg_scores"] = reps[0]["big_jpeg_scores"]
    s["mask_pass_scores"] = reps[0]["mask_pass_scores"]
    for key in ("torchscript", "peer"):
        s[key] = {t["concurrency"]: step_stats([r[key][i] for r in reps])
                  for i, t in enumerate(reps[0][key])}
    codec_keys = [(c["step"], c["size"]) for c in reps[0]["codecs"]
                  if c["step"] != "bytes"]
    s["codecs"] = {
        k: {f: median([c[f] for r in reps for c in r["codecs"]
                       if (c["step"], c["size"]) == k]) for f in ("ms", "ms_per_mp")}
        for k in codec_keys}
    s["bytes"] = [c for c in reps[0]["codecs"] if c["step"] == "bytes"]
    s["load"] = [(r["load_before"], r["load_after"]) for r in reps]
    return s


def check(s):
    """What would make the report meaningless: failed requests, a silent
    server, a batching config that never batched."""
    problems = []
    steps = {f"concurrency {c}": t for c, t in s["sweep"].items()}
    steps.update({k: s[k] for k in ("oip", "rest", "grpc_c1", "rest_c1",
                                    "nobatch", "torchscript_none", "jpeg_c1",
                                    "slide", "big_stretch", "big_jpeg_reduced",
                                    "big_jpeg_whole", "unfused")})
    for key in ("torchscript", "peer"):
        steps.update({f"{key}, concurrency {c}": t for c, t in s[key].items()})
    for name, t in steps.items():
        if t["errors"]:
            problems.append(f"{name}: {t['errors']} failed requests")
        if t["rps"] <= 0:
            problems.append(f"{name}: no throughput")
    if s["nobatch"]["batch"] != 1:
        problems.append(f"batching off ran batches of {s['nobatch']['batch']}")
    if s["sweep"][16]["batch"] <= 1:
        problems.append("batching on never batched at concurrency 16")
    return problems


def closest_batch(inprocess, mean_batch):
    return min(inprocess, key=lambda b: abs(b - mean_batch))


def versions():
    def pkg(name):
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True).stdout
        return out or "?"

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    return (f"{os.cpu_count()} vCPUs ({cpu}), "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') >> 30} GiB; "
            f"libtorch1.13 {pkg('libtorch1.13')}, libgrpc++1.51 {pkg('libgrpc++1.51')}, "
            f"python3-torch {pkg('python3-torch')}, python3-grpcio {pkg('python3-grpcio')}, "
            f"OpenBLAS {pkg('libopenblas0-pthread')}; commit {commit}")


def report(s, args, elapsed_s):
    ip = s["inprocess"]
    sweep = s["sweep"]
    best_c = max(sweep, key=lambda c: sweep[c]["rps"])
    best = sweep[best_c]
    same_b = closest_batch(ip, best["batch"])
    overhead = best["rps"] / ip[same_b]["images_per_s"]
    ceiling_b = max(ip, key=lambda b: ip[b]["images_per_s"])
    on, off = sweep[16], s["nobatch"]
    ts, peer, ts_none = s["torchscript"], s["peer"], s["torchscript_none"]
    peer_cs = list(peer)

    def ratios(served, key):
        return " / ".join(f"{served[c][key] / peer[c][key]:.2f}" for c in peer_cs)
    c1 = s["jpeg_c1"]
    c1_server = sum(c1["server"].values())
    # The server's times are means over requests: compare with the mean.
    model_b1 = ip[1]["batch_ms_mean"]
    lines = [
        BEGIN,
        "",
        f"Written by `make bench` on {datetime.date.today()} in {elapsed_s / 60:.0f} min: "
        f"medians of {args.repeats} repetitions, each running every part below in turn.",
        f"Machine: {versions()}. segserve with its defaults (intra-op threads = cores, "
        "2 preprocess threads); segload on the same machine, masks not decoded. "
        "Load average (1 min) before/after each repetition: "
        + ", ".join(f"{a:.2f}/{b:.2f}" for a, b in s["load"]) + ".",
        "",
        "### Summary (goals from the benchmark issue)",
        "",
        "| figure | measured | goal |",
        "|---|---|---|",
        f"| serving overhead, RAW input (server img/s at its best concurrency {best_c} "
        f"/ in-process img/s at batch {same_b}) | **{overhead:.2f}** | >= 0.90 |",
        f"| ModelInfer (Open Inference Protocol) / Segment throughput, c=16, RAW | "
        f"**{s['oip']['rps'] / on['rps']:.2f}x** (p99 {s['oip']['p99']:.0f} / "
        f"{on['p99']:.0f} ms) | within 5% |",
        f"| KServe v2 REST (binary tensors) / Segment throughput, c=16, RAW | "
        f"**{s['rest']['rps'] / on['rps']:.2f}x** (p99 {s['rest']['p99']:.0f} / "
        f"{on['p99']:.0f} ms) | >= 0.9 |",
        f"| REST latency added at c=1, RAW (p50 REST - p50 Segment, measured "
        f"one after the other) | **{s['rest_c1']['p50'] - s['grpc_c1']['p50']:+.2f} ms** "
        f"({s['rest_c1']['p50']:.2f} / {s['grpc_c1']['p50']:.2f} ms) | < 1 ms |",
        f"| batching gain at concurrency 16 (max_batch_size {args.max_batch} / 1) | "
        f"**{on['rps'] / off['rps']:.2f}x** | >= 1.3x |",
        f"| segserve builtin / Python peer throughput, c={'/'.join(map(str, peer_cs))} | "
        f"**{ratios(sweep, 'rps')}** | >= 3x each |",
        f"| segserve TorchScript / Python peer throughput, c={'/'.join(map(str, peer_cs))} | "
        f"**{ratios(ts, 'rps')}** | >= 3x each |",
        f"| segserve builtin p99 / peer p99, c={'/'.join(map(str, peer_cs))} | "
        f"**{ratios(sweep, 'p99')}** | < 1 |",
        f"| segserve TorchScript p99 / peer p99, c={'/'.join(map(str, peer_cs))} | "
        f"**{ratios(ts, 'p99')}** | < 1 |",
        f"| TorchScript export in segserve, optimized ({', '.join(s['ts_optimization'])}) / "
        f"as saved (NONE), c=16 | **{ts[16]['rps'] / ts_none['rps']:.2f}x** | |",
        f"| server time over model time at c=1, 512x512 JPEG (server queue+pre+infer+post "
        f"- in-process batch 1) | **{c1_server - model_b1:.2f} ms** | <= 2 ms |",
        f"| client p50 at c=1 - in-process batch-1 latency | {c1['p50'] - model_b1:.2f} ms | |",
        "",
        "### 1. In-process model (the ceiling): `inprocess_bench`",
        "",
        "The server's loader and `SegmentationModel::Infer` on preprocessed 512x512 scenes "
        "(forward, logits resized to the input, argmax); no gRPC, no codecs.",
        "",
        "| batch | ms per batch | images/s | vs batch 1 |",
        "|---|---|---|---|",
    ]
    for b, row in ip.items():
        lines.append(f"| {b} | {row['batch_ms']:.1f} | {row['images_per_s']:.1f} | "
                     f"{row['images_per_s'] / ip[1]['images_per_s']:.2f}x |")
    lines += [
        "",
        f"Best in-process throughput: batch {ceiling_b}, {ip[ceiling_b]['images_per_s']:.1f} images/s.",
        "",
        "### 1b. The mask pass: fused against unfused",
        "",
        "Labels (and confidence) computed from the model's 1/8 logits in one pass "
        "(`model/upsampled_argmax.h`, the default) against the logits upsampled "
        "to 512x512 first, then the argmax (`--fused_mask_upsampling=false`): "
        "in-process, and through two servers at concurrency 16 in the same run. "
        f"Agreement and mIoU: held-out scenes 0..{MASK_PASS_SCENES - 1} through "
        "both servers (`segscore --reference_target`).",
        "",
        "| figure | fused | unfused | fused / unfused |",
        "|---|---|---|---|",
    ]
    unfused_ip, unfused = s["inprocess_unfused"], s["unfused"]
    for b in unfused_ip:
        lines.append(
            f"| in-process img/s, batch {b} | {ip[b]['images_per_s']:.1f} | "
            f"{unfused_ip[b]:.1f} | {ip[b]['images_per_s'] / unfused_ip[b]:.2f}x |")
    lines += [
        f"| served img/s, concurrency 16 | {on['rps']:.1f} | {unfused['rps']:.1f} | "
        f"{on['rps'] / unfused['rps']:.2f}x |",
        f"| served p50 ms, concurrency 16 | {on['p50']:.0f} | {unfused['p50']:.0f} | "
        f"{on['p50'] / unfused['p50']:.2f}x |",
        f"| server inference ms a request | {on['server']['inference']:.1f} | "
        f"{unfused['server']['inference']:.1f} | "
        f"{on['server']['inference'] / unfused['server']['inference']:.2f}x |",
    ]
    for variant, scores in s["mask_pass_scores"].items():
        lines += [
            f"| mIoU, {variant} scenes | {scores['fused_miou']:.4f} | "
            f"{scores['unfused_miou']:.4f} | |",
            f"| mask pixels that agree, {variant} | {scores['agreement']:.6f} | | |",
        ]
    lines += [
        "",
        "### 2. segserve under a concurrency sweep (RAW RGB8 512x512 in, RLE mask out)",
        "",
        "| concurrency | img/s | p50 ms | p99 ms | mean batch | queue ms | preprocess ms | "
        "inference ms | postprocess ms | img/s / in-process at that batch | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c, t in sweep.items():
        b = closest_batch(ip, t["batch"])
        lines.append(
            f"| {c} | {t['rps']:.1f} | {t['p50']:.1f} | {t['p99']:.1f} | {t['batch']:.2f} | "
            f"{t['server']['queue']:.1f} | {t['server']['preprocess']:.2f} | "
            f"{t['server']['inference']:.1f} | {t['server']['postprocess']:.2f} | "
            f"{t['rps'] / ip[b]['images_per_s']:.2f} (b={b}) | {t['errors']} |")
    lines += [
        "",
        "### 3. Batching on versus off at concurrency 16",
        "",
        "| config | img/s | p50 ms | p99 ms | mean batch |",
        "|---|---|---|---|---|",
        f"| shipped (max_batch_size {args.max_batch}, dynamic batching) | {on['rps']:.1f} | "
        f"{on['p50']:.1f} | {on['p99']:.1f} | {on['batch']:.2f} |",
        f"| max_batch_size 1 | {off['rps']:.1f} | {off['p50']:.1f} | {off['p99']:.1f} | "
        f"{off['batch']:.2f} |",
        "",
        "### 4. segserve versus the strongest plain Python server",
        "",
        "The peer (bench/python_peer.py) is Python grpcio + PyTorch as PyTorch's CPU "
        "performance guide has it: concurrent handlers, a batching thread (up to "
        f"max_batch_size {args.max_batch}, no waiting), the TorchScript export "
        "(bench/export_torchscript.py) frozen with channels-last weights and inputs, "
        "inference_mode, intra-op threads = cores, glibc malloc keeping freed memory, "
        "OpenBLAS single-threaded, numpy-vectorized RLE. segserve serves the shipped "
        "builtin network, and the same TorchScript export through its TORCHSCRIPT "
        "platform (torchscript.optimization AUTO chose "
        f"{', '.join(s['ts_optimization'])}), both with the shipped batching config.",
        "",
        "| concurrency | server | img/s | p50 ms | p99 ms | mean batch | img/s / peer | "
        "p99 / peer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in peer_cs:
        for name, t in (("segserve builtin", sweep[c]), ("segserve TorchScript", ts[c]),
                        ("Python peer", peer[c])):
            lines.append(
                f"| {c} | {name} | {t['rps']:.1f} | {t['p50']:.1f} | {t['p99']:.1f} | "
                f"{t['batch']:.2f} | {t['rps'] / peer[c]['rps']:.2f} | "
                f"{t['p99'] / peer[c]['p99']:.2f} |")
    ip_ts, ip_none = s["inprocess_ts"], s["inprocess_ts-none"]
    lines += [
        "",
        "The TorchScript export before (optimization NONE: the module as saved) and "
        "after (AUTO) the load-time optimization; in-process through the server's "
        "loader, and served at concurrency 16:",
        "",
        "| figure | NONE | AUTO | AUTO / NONE | builtin network |",
        "|---|---|---|---|---|",
    ]
    for b in ip_ts:
        lines.append(
            f"| in-process img/s, batch {b} | {ip_none[b]:.1f} | {ip_ts[b]:.1f} | "
            f"{ip_ts[b] / ip_none[b]:.2f}x | {ip[b]['images_per_s']:.1f} |")
    lines += [
        f"| served img/s, c=16 | {ts_none['rps']:.1f} | {ts[16]['rps']:.1f} | "
        f"{ts[16]['rps'] / ts_none['rps']:.2f}x | {sweep[16]['rps']:.1f} |",
        f"| served p99 ms, c=16 | {ts_none['p99']:.1f} | {ts[16]['p99']:.1f} | "
        f"{ts[16]['p99'] / ts_none['p99']:.2f} | {sweep[16]['p99']:.1f} |",
        "",
        "### 5. Sliding windows (SLIDE) on large images",
        "",
        f"{SLIDE_SIDE}x{SLIDE_SIDE} RAW images at concurrency {SLIDE_CONCURRENCY}: "
        f"the shipped weights as SLIDE ({SLIDE_TILES} tiles of 512x512, stride "
        f"{SLIDE_STRIDE}, each a batch item) and as shipped (STRETCH to 512x512). "
        "Tiles/s over the single-image throughput (512x512 at concurrency 16, "
        "section 1) is how much of the batcher's throughput sliding windows keep; "
        "the rest goes to cutting tiles and blending the logits of a "
        f"{SLIDE_SIDE}x{SLIDE_SIDE} image.",
        "",
        "| figure | SLIDE | STRETCH |",
        "|---|---|---|",
        f"| img/s | {s['slide']['rps']:.2f} | {s['big_stretch']['rps']:.2f} |",
        f"| model items/s (tiles) | {s['slide']['rps'] * SLIDE_TILES:.1f} | "
        f"{s['big_stretch']['rps']:.1f} |",
        f"| items/s over single-image img/s ({sweep[16]['rps']:.1f}) | "
        f"{s['slide']['rps'] * SLIDE_TILES / sweep[16]['rps']:.2f} | "
        f"{s['big_stretch']['rps'] / sweep[16]['rps']:.2f} |",
        f"| p50 / p99 ms | {s['slide']['p50']:.0f} / {s['slide']['p99']:.0f} | "
        f"{s['big_stretch']['p50']:.0f} / {s['big_stretch']['p99']:.0f} |",
        f"| mean batch | {s['slide']['batch']:.2f} | {s['big_stretch']['batch']:.2f} |",
        "| server queue / preprocess / inference / postprocess ms | "
        + " | ".join(" / ".join(f"{t['server'][k]:.0f}" for k in
                                ("queue", "preprocess", "inference", "postprocess"))
                     for t in (s["slide"], s["big_stretch"])) + " |",
        "",
        f"### 5b. A {BIG_JPEG_SIDE}x{BIG_JPEG_SIDE} JPEG to a 512x512 model",
        "",
        "Concurrency 1, the shipped model (STRETCH): decoded at 1/2, 1/4 or 1/8 "
        "scale in the DCT domain when that still covers the input (the default; "
        "here 1/4, 512x512) against decoded whole and shrunk "
        "(`--reduced_jpeg_decode=false`), two servers in the same run. The masks "
        f"keep the image's size. Agreement and mIoU: {BIG_JPEG_SCENES} scenes "
        f"drawn at {BIG_JPEG_SIDE}x{BIG_JPEG_SIDE}, JPEG q90, through both "
        "(`segscore --reference_target`).",
        "",
        "| figure | reduced | whole | whole / reduced |",
        "|---|---|---|---|",
    ]
    reduced, whole = s["big_jpeg_reduced"], s["big_jpeg_whole"]
    server_ms = {k: sum(t["server"].values()) for k, t in
                 (("reduced", reduced), ("whole", whole))}
    lines += [
        f"| server ms (queue + preprocess + inference + postprocess) | "
        f"{server_ms['reduced']:.1f} | {server_ms['whole']:.1f} | "
        f"{server_ms['whole'] / server_ms['reduced']:.2f}x |",
        f"| preprocess ms | {reduced['server']['preprocess']:.1f} | "
        f"{whole['server']['preprocess']:.1f} | "
        f"{whole['server']['preprocess'] / reduced['server']['preprocess']:.2f}x |",
        f"| client p50 ms | {reduced['p50']:.1f} | {whole['p50']:.1f} | "
        f"{whole['p50'] / reduced['p50']:.2f}x |",
        f"| mIoU on the scenes | {s['big_jpeg_scores']['reduced_miou']:.4f} | "
        f"{s['big_jpeg_scores']['whole_miou']:.4f} | |",
        f"| mask pixels that agree | {s['big_jpeg_scores']['agreement']:.5f} | | |",
        "",
        "### 6. Codec costs",
        "",
        "Median ms of one call on a synthetic scene, and per megapixel. Share = the "
        "512x512 cost over the server time of a 512x512 request at concurrency 1 "
        f"({c1_server:.1f} ms: queue + preprocess + inference + postprocess, section 7).",
        "",
        "| step | size | ms | ms per MP | share of a 512x512 request |",
        "|---|---|---|---|---|",
    ]
    for (step, size), row in s["codecs"].items():
        share = (f"{100 * row['ms'] / c1_server:.1f}%" if size == "512x512" else "")
        lines.append(f"| {step} | {size} | {row['ms']:.3f} | {row['ms_per_mp']:.3f} | {share} |")
    lines += ["", "Encoded sizes: " + "; ".join(
        f"{b['size']} scene JPEG q90 {b['jpeg'] / 1024:.0f} KiB, PNG {b['png'] / 1024:.0f} KiB; "
        f"its mask PNG {b['mask_png'] / 1024:.1f} KiB, RLE {b['mask_rle'] / 1024:.1f} KiB"
        for b in s["bytes"]) + ".", ""]
    lines += [
        "### 7. Latency at concurrency 1 (512x512 JPEG in, PNG mask out)",
        "",
        "| figure | ms |",
        "|---|---|",
        f"| client p50 | {c1['p50']:.2f} |",
        f"| client p99 | {c1['p99']:.2f} |",
        f"| server queue / preprocess / inference / postprocess (means) | "
        f"{c1['server']['queue']:.2f} / {c1['server']['preprocess']:.2f} / "
        f"{c1['server']['inference']:.2f} / {c1['server']['postprocess']:.2f} |",
        f"| in-process batch 1 (mean) | {model_b1:.2f} |",
        f"| client p50 - in-process batch 1 | {c1['p50'] - model_b1:.2f} |",
        f"| server time - in-process batch 1 | {c1_server - model_b1:.2f} |",
        "",
        END,
    ]
    return "\n".join(lines)


def write_between(text, path, begin, end, heading):
    """Replaces what lies between `begin` and `end` in the file at `path`
    (`text` carries both markers), or appends `heading` and `text`. Shared
    by the bench scripts that each own a part of BENCHMARKS.md."""
    with open(path) as f:
        current = f.read()
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        updated = head + text + rest.split(end, 1)[1]
    else:
        updated = current.rstrip("\n") + f"\n\n{heading}\n\n{text}\n"
    with open(path, "w") as f:
        f.write(updated)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep", default="1,2,4,8,16,32")
    parser.add_argument("--window_s", type=float, default=4)
    parser.add_argument("--min_seconds", type=float, default=2)
    parser.add_argument("--results", default=None,
                        help="Folder for raw results (default: BUILD/bench-results)")
    parser.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    parser.add_argument("--quick", action="store_true",
                        help="1 repetition, short windows: checks the pipeline, "
                             "does not write BENCHMARKS.md")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.window_s, args.min_seconds = 1, 1, 0.3
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not {"1", "4", "16"} <= set(args.sweep.split(",")):
        parser.error("--sweep must include 1, 4 and 16 (the batching and peer "
                     "comparisons use them)")
    args.build = os.path.abspath(args.build)
    results = os.path.abspath(args.results or os.path.join(args.build, "bench-results"))
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(ROOT, "model_repository", MODEL, "config.pbtxt")) as f:
        config = f.read()
    args.max_batch = int(re.search(r"max_batch_size: (\d+)", config).group(1))
    num_classes = re.search(r"num_classes: (\d+)", config).group(1)

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="segserve-bench-") as workdir:
        torchscript = os.path.join(workdir, "torchscript.pt")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "export_torchscript.py"),
                        os.path.join(ROOT, "model_repository", MODEL, "1", "model.pt"),
                        num_classes, torchscript], check=True, stdout=subprocess.DEVNULL)
        repository = make_repository(workdir, torchscript)
        reps = [one_repetition(args, rep, repository, torchscript, results)
                for rep in range(1, args.repeats + 1)]
    with open(os.path.join(results, "repetitions.json"), "w") as f:
        json.dump(reps, f, indent=1)
    summary = summarize(reps)
    text = report(summary, args, time.time() - started)
    print(text)
    problems = check(summary)
    if problems:
        sys.exit("make bench: " + "; ".join(problems))
    if not args.quick:
        write_between(text, args.output, BEGIN, END,
                      "## Serving benchmarks (`make bench`)")
        log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
