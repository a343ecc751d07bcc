#!/usr/bin/python3
"""Overload: open-loop load at a multiple of capacity against the real
segserve and its shipped default model.

Measures the closed-loop capacity first (segload, concurrency 4), then
sends Poisson arrivals at --factor times it for --seconds, every request
with a --deadline_ms deadline and no retries, while sampling the server's
RSS and queue depth. Checks what must hold on any machine:
  - the queue never holds more than the model's max_queue_size;
  - every failure is a refusal (RESOURCE_EXHAUSTED) or a deadline
    (DEADLINE_EXCEEDED), never anything else;
  - the server's RSS stays flat: its peak after the first third (the
    warm-up, while gRPC's threads and the allocators reach their working
    set) stays within 10% of its peak during it;
  - requests are still served.
and prints the figures (goodput against capacity, refusal latency, served
p99) that RELIABILITY.md reports from the 10-minute run:
  overload_test.py ... --seconds 600
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import SegserveProcess  # noqa: E402

MAX_QUEUE_SIZE = 256  # model_repository/scenes-sgcpnet/config.pbtxt
CPU_INFERENCE_NICE = 10  # segserve's --cpu_inference_nice default


def rss_and_threads(pid):
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    return (int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024,
            int(re.search(r"Threads:\s+(\d+)", status).group(1)))


def queue_depth(metrics_port):
    body = urllib.request.urlopen(
        f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    depths = re.findall(r"^segserve_queue_depth\{[^}]*\} (\S+)$", body, re.M)
    return max((float(d) for d in depths), default=0)


def cpu_seconds(pid):
    """User plus system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_nice_values(pid):
    """How many of the process's threads run at each nice value."""
    counts = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as f:
            # Fields after the command (which may hold spaces); nice is 19th.
            nice = int(f.read().rsplit(")", 1)[1].split()[16])
        counts[nice] = counts.get(nice, 0) + 1
    return counts


def peak_by_tenth(samples, column, seconds):
    """The peak of one sampled column in each tenth of the run, as text."""
    tenth = seconds / 10
    peaks = [max((s[column] for s in samples
                  if i * tenth <= s[0] < (i + 1) * tenth), default=0)
             for i in range(10)]
    return " ".join(f"{p:.0f}" for p in peaks)


def segload(args, port, out, *flags):
    result = subprocess.run([
        args.segload, f"--target=127.0.0.1:{port}", "--raw",
        "--sizes=512x512", "--mask_encoding=rle", "--retry_max_attempts=1",
        f"--json={out}", *flags], capture_output=True, text=True)
    if not os.path.exists(out):
        sys.exit(f"segload wrote no result:\n{result.stderr[-2000:]}")
    with open(out) as f:
        return json.load(f)["steps"][0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--segload", required=True)
    parser.add_argument("--model_repository", required=True)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--deadline_ms", type=int, default=500)
    parser.add_argument("--server_flag", action="append", default=[],
                        help="extra segserve flags, e.g. "
                             "--deadline_admission=false")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="segserve-overload-")
    with open("/proc/loadavg") as f:
        print(f"load average before: {f.read().split()[0]}")

    server = SegserveProcess(args.segserve, [
        f"--model_repository={args.model_repository}", "--host=127.0.0.1",
        "--default_model=scenes-sgcpnet",
        "--grpc_port=0", "--http_port=-1", "--metrics_port=0", *args.server_flag],
        os.path.join(workdir, "segserve.log"))
    port, metrics_port = server.wait_ready(timeout_s=120)
    failures = []
    try:
        capacity = segload(args, port, os.path.join(workdir, "capacity.json"),
                           "--concurrency=4", "--duration_s=8",
                           "--warmup_requests=10")["throughput_rps"]
        rate = args.factor * capacity
        print(f"capacity {capacity:.1f} img/s; offering {rate:.1f}/s "
              f"(Poisson) for {args.seconds} s, deadline {args.deadline_ms} ms")

        samples = []  # (seconds since start, rss MiB, queue depth, threads)
        stop = threading.Event()

        def sample():
            start = time.time()
            while not stop.wait(0.5):
                try:
                    rss, threads = rss_and_threads(server.process.pid)
                    samples.append((time.time() - start, rss,
                                    queue_depth(metrics_port), threads))
                except OSError:
                    pass

        sampler = threading.Thread(target=sample)
        sampler.start()
        # Who used the cores: the client shares them with the server here.
        server_cpu = cpu_seconds(server.process.pid)
        client_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.time()
        try:
            step = segload(args, port, os.path.join(workdir, "overload.json"),
                           f"--rate={rate:.2f}", "--arrivals=poisson",
                           f"--duration_s={args.seconds}",
                           "--warmup_requests=0",
                           f"--deadline_ms={args.deadline_ms}",
                           "--max_outstanding=2000")
        finally:
            stop.set()
            sampler.join()

        elapsed = time.time() - started
        server_cores = (cpu_seconds(server.process.pid) - server_cpu) / elapsed
        client_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cores = (client_usage.ru_utime + client_usage.ru_stime -
                        client_cpu.ru_utime - client_cpu.ru_stime) / elapsed
        nice = thread_nice_values(server.process.pid)
        errors = step["errors"]
        refused = errors.get("RESOURCE_EXHAUSTED", 0)
        late = errors.get("DEADLINE_EXCEEDED", 0)
        others = {k: v for k, v in errors.items()
                  if k not in ("RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED")}
        max_queue = max((q for _, _, q, _ in samples), default=0)
        # Peak against peak: a single early sample can fall in a lull.
        warm_up = args.seconds / 3
        baseline = max((r for t, r, _, _ in samples if t < warm_up), default=0)
        peak = max((r for t, r, _, _ in samples if t >= warm_up), default=0)
        sent = step["ok"] + step["failed"]
        print(f"served {step['ok']} ({step['throughput_rps']:.1f}/s, "
              f"{step['throughput_rps'] / capacity:.2f} of capacity), "
              f"refused {refused} ({refused / max(sent, 1):.0%}), "
              f"deadline exceeded {late}, other {others}")
        refusal = step["failed_latency_us"].get("RESOURCE_EXHAUSTED", {})
        print(f"served p50 {step['latency_us']['p50'] / 1000:.0f} ms, "
              f"p99 {step['latency_us']['p99'] / 1000:.0f} ms; refusals p50 "
              f"{refusal.get('p50', 0) / 1000:.1f} ms, p99 "
              f"{refusal.get('p99', 0) / 1000:.1f} ms")
        print(f"queue depth max {max_queue:.0f} (limit {MAX_QUEUE_SIZE}); "
              f"RSS peak {baseline:.0f} MiB in the warm-up, {peak:.0f} MiB "
              f"after it ({(peak / baseline - 1) if baseline else 0:+.1%})")
        print("by tenth of the run: RSS peak (MiB) "
              f"{peak_by_tenth(samples, 1, args.seconds)}; threads peak "
              f"{peak_by_tenth(samples, 3, args.seconds)}")
        print(f"threads by nice value: {nice}")
        print(f"cores used: server {server_cores:.2f}, client "
              f"{client_cores:.2f} (of {os.cpu_count()})")
        if not nice.get(CPU_INFERENCE_NICE) or not nice.get(0):
            failures.append("the models' threads do not run at nice "
                            f"{CPU_INFERENCE_NICE} below the others")
        if max_queue > MAX_QUEUE_SIZE:
            failures.append(f"the queue held {max_queue:.0f}")
        if others:
            failures.append(f"failures other than refusals/deadlines: {others}")
        if baseline and peak > 1.10 * baseline:
            failures.append(f"RSS grew {peak / baseline - 1:.1%} after warm-up")
        if step["ok"] == 0:
            failures.append("nothing was served")
    finally:
        server.stop()
    for failure in failures:
        print("FAIL " + failure)
    print(f"overload test: {'FAILED' if failures else 'ok'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
