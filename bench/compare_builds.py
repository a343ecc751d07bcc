#!/usr/bin/python3
"""Before/after rows of BENCHMARKS.md: two segserve builds, side by side.

Serves the default model with each binary (and model repository: the
shipped one unless --before_repository/--after_repository say otherwise) in
turn (never both at once), R repetitions alternating which goes first, and loads each with
segload (closed loop, RAW RGB8 512x512 in, RLE mask out) at every
--concurrency. Per step it records throughput, p50/p99, the server's mean
inference time per batch and the server process's minor page faults per
request (from /proc/PID/stat around the step) and the server's mean queue time. Prints a markdown table of
medians and after/before ratios.

  compare_builds.py --before /tmp/before/segserve --after build/server/segserve
      [--segload build/tools/segload/segload] [--concurrency 1,16] [--repeats 5]
      [--before_repository DIR] [--after_repository DIR]
"""
import argparse
import os
import statistics
import sys
import tempfile

import run_bench

ROOT = run_bench.ROOT


def minor_faults(pid):
    with open(f"/proc/{pid}/stat") as f:
        # Fields after the parenthesised command name; minflt is field 10.
        return int(f.read().rsplit(")", 1)[1].split()[7])


def measure(args, workdir, label, rep):
    binary = getattr(args, label)
    repository = getattr(args, f"{label}_repository")
    server = run_bench.Process(
        [binary, f"--model_repository={repository}",
         "--default_model=scenes-sgcpnet",
         "--grpc_port=0", "--http_port=-1", "--metrics_port=-1"],
        os.path.join(workdir, f"{label}-{rep}.log"))
    rows = {}
    try:
        for concurrency in args.concurrency.split(","):
            before = minor_faults(server.proc.pid)
            step = run_bench.segload(
                args, server.port,
                os.path.join(workdir, f"{label}-{rep}-{concurrency}.json"),
                concurrency, run_bench.MODEL, run_bench.RAW)[0]
            faults = minor_faults(server.proc.pid) - before
            # Warm-up requests fault too; the step's own count is the bound.
            requests = step["ok"] + step["failed"] + args.warmup_requests
            rows[concurrency] = {
                "rps": step["throughput_rps"],
                "p50": step["latency_us"]["p50"] / 1e3,
                "p99": step["latency_us"]["p99"] / 1e3,
                "queue": step["server_us"]["queue"] / 1e3,
                "inference": step["server_us"]["inference"] / 1e3,
                "batch": step["mean_batch_size"],
                "faults": faults / max(1, requests),
                "errors": sum(step["errors"].values()),
            }
    finally:
        server.stop()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="segserve binary")
    parser.add_argument("--after", required=True, help="segserve binary")
    parser.add_argument("--segload",
                        default=os.path.join(ROOT, "build", "tools", "segload", "segload"))
    shipped = os.path.join(ROOT, "model_repository")
    parser.add_argument("--before_repository", default=shipped)
    parser.add_argument("--after_repository", default=shipped)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--window_s", type=float, default=3)
    args = parser.parse_args()
    args.warmup_requests = 16  # What run_bench.segload sends.
    # run_bench.segload finds segload under args.build (<build>/tools/segload/).
    args.build = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(args.segload))))

    runs = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="segserve-compare-") as workdir:
        for rep in range(args.repeats):
            order = ["before", "after"] if rep % 2 == 0 else ["after", "before"]
            for label in order:
                run_bench.log(f"repetition {rep + 1}: {label}")
                runs[label].append(measure(args, workdir, label, rep))
    errors = sum(r[c]["errors"] for label in runs for r in runs[label]
                 for c in r)
    print(f"medians of {args.repeats} repetitions; load average now "
          f"{os.getloadavg()[0]:.2f}\n")
    print("| concurrency | figure | before | after | after / before |")
    print("|---|---|---|---|---|")
    for concurrency in args.concurrency.split(","):
        for key, name in (("rps", "img/s"), ("p50", "p50 ms"),
                          ("p99", "p99 ms"), ("queue", "queue ms"),
                          ("inference", "inference ms/batch"),
                          ("batch", "mean batch"),
                          ("faults", "minor faults/request")):
            med = {label: statistics.median(r[concurrency][key]
                                            for r in runs[label])
                   for label in runs}
            ratio = (f"{med['after'] / med['before']:.2f}"
                     if med["before"] else "")
            print(f"| {concurrency} | {name} | {med['before']:.2f} | "
                  f"{med['after']:.2f} | {ratio} |")
    if errors:
        sys.exit(f"compare_builds: {errors} failed requests")


if __name__ == "__main__":
    main()
