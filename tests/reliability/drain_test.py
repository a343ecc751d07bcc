#!/usr/bin/python3
"""Drain under load: 16 clients send Segment calls without retries through
a SIGTERM, --runs times in a row, against the real segserve and its shipped
default model.

Checks, in every run: every call ends OK or UNAVAILABLE (what clients retry
on another replica), never CANCELLED or anything else, even the calls that
race the end of the drain; some calls were served; segserve exits 0 after
logging "stopped cleanly" (every accepted request answered).
RELIABILITY.md reports the 50-run figure:
  drain_test.py ... --runs 50
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import SegserveProcess  # noqa: E402

CLIENTS = 16


def one_run(args, workdir, run):
    """Returns (failures, ok, unavailable) of one drain under load."""
    server = SegserveProcess(args.segserve, [
        f"--model_repository={args.model_repository}", "--host=127.0.0.1",
        "--default_model=scenes-sgcpnet",
        "--grpc_port=0", "--http_port=-1", "--metrics_port=0", "--drain_timeout_s=20"],
        os.path.join(workdir, f"segserve-{run}.log"))
    port, _ = server.wait_ready(timeout_s=120)
    out = os.path.join(workdir, f"load-{run}.json")
    load = subprocess.Popen([
        args.segload, f"--target=127.0.0.1:{port}", "--sizes=64x64",
        f"--concurrency={CLIENTS}", "--duration_s=3", "--warmup_requests=0",
        "--retry_max_attempts=1", "--deadline_ms=60000", f"--json={out}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Mid-load, and at a different moment of a batch in every run.
    time.sleep(1.0 + 0.37 * (run % 3))
    code = server.stop(timeout_s=60)
    _, stderr = load.communicate(timeout=120)
    failures = []
    if not os.path.exists(out):
        return [f"segload wrote no result:\n{stderr[-2000:]}"], 0, 0
    with open(out) as f:
        step = json.load(f)["steps"][0]
    others = {k: v for k, v in step["errors"].items() if k != "UNAVAILABLE"}
    if others:
        failures.append(f"calls ended other than OK or UNAVAILABLE: {others}")
    if step["ok"] == 0:
        failures.append("nothing was served before the drain")
    if code != 0 or "stopped cleanly" not in server.log_text():
        failures.append(f"segserve exited {code}:\n{server.log_text()[-2000:]}")
    return failures, step["ok"], step["errors"].get("UNAVAILABLE", 0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--segload", required=True)
    parser.add_argument("--model_repository", required=True)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="segserve-drain-")
    with open("/proc/loadavg") as f:
        print(f"load average before: {f.read().split()[0]}")
    failed_runs = 0
    for run in range(args.runs):
        failures, ok, unavailable = one_run(args, workdir, run)
        print(f"run {run + 1}/{args.runs}: {ok} OK, {unavailable} UNAVAILABLE"
              f"{'' if not failures else ', FAILED'}", flush=True)
        for failure in failures:
            print("  FAIL " + failure)
        failed_runs += bool(failures)
    print(f"{args.runs - failed_runs} of {args.runs} runs: every call OK or "
          "UNAVAILABLE, segserve stopped cleanly")
    print(f"drain test: {'FAILED' if failed_runs else 'ok'}")
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
