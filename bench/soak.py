#!/usr/bin/python3
"""`make soak`: segserve under steady load for a long time, watching its
memory and its tail latency.

Measures the default model's capacity (closed loop, concurrency 16, 512x512
RAW images), then offers 70% of it open loop (constant arrivals) for
--minutes, one segload step a minute, sampling the server's VmRSS every
100 ms. Passes when, after the first two minutes (warm-up), resident memory
never grows more than 5% over what it was at their end, and the p99 of the
last five minutes is within 25% of the p99 of minutes 3 to 7. Also
reported, not judged: the growth of the end-of-minute RSS (what memory
comes back to between bursts: a leak shows there) and the minutes whose peak
went over the limit (queue bursts: queued requests hold their inputs).
Writes the
per-minute figures into BENCHMARKS.md between the "make soak" markers and a
chart under docs/bench/ (not with --minutes under 10).

  soak.py --build build [--minutes 30]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cost_curves  # noqa: E402
import run_bench  # noqa: E402
from svg_chart import line_chart  # noqa: E402

ROOT = run_bench.ROOT
MODEL = run_bench.MODEL
BEGIN = "<!-- make soak: begin (bench/soak.py writes this part) -->"
END = "<!-- make soak: end -->"
WARMUP_MINUTES = 2
MAX_RSS_GROWTH = 0.05
MAX_P99_DRIFT = 0.25


def open_loop_minute(args, port, path, rate, warmup_requests):
    """One minute of constant arrivals at `rate` (run_bench.segload is
    closed loop only)."""
    argv = [os.path.join(args.build, "tools", "segload", "segload"),
            f"--target=127.0.0.1:{port}", f"--rate={rate}",
            f"--model={MODEL}", "--decode_masks=false", "--duration_s=60",
            "--deadline_ms=10000", f"--warmup_requests={warmup_requests}",
            f"--json={path}", *run_bench.RAW]
    done = subprocess.run(argv, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    with open(path) as f:
        return json.load(f)["steps"][0]


def verdict(minutes):
    """(passed, rss growth, p99 drift, end-of-minute rss growth, burst
    minutes) from the per-minute figures."""
    settled = minutes[WARMUP_MINUTES - 1]["end_rss_mib"]
    later = minutes[WARMUP_MINUTES:]
    growth = max(m["peak_rss_mib"] for m in later) / settled - 1
    end_growth = max(m["end_rss_mib"] for m in later) / settled - 1
    bursts = [m["minute"] for m in later
              if m["peak_rss_mib"] / settled - 1 > MAX_RSS_GROWTH]
    early = statistics.median(m["p99_ms"] for m in later[:5])
    late = statistics.median(m["p99_ms"] for m in later[-5:])
    drift = late / early - 1
    passed = growth <= MAX_RSS_GROWTH and drift <= MAX_P99_DRIFT
    return passed, growth, drift, end_growth, bursts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--load", type=float, default=0.7,
                        help="share of the measured capacity offered")
    parser.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    args = parser.parse_args()
    if args.minutes < WARMUP_MINUTES + 5:
        parser.error(f"--minutes must be at least {WARMUP_MINUTES + 5}")
    args.build = os.path.abspath(args.build)
    args.window_s = 5
    results = os.path.join(args.build, "bench-results")
    os.makedirs(results, exist_ok=True)
    load_before = os.getloadavg()[0]
    minutes = []
    with tempfile.TemporaryDirectory(prefix="segserve-soak-") as workdir:
        repository = cost_curves.make_repository(workdir)
        server = cost_curves.start_server(args, repository, results, "soak")
        rss = cost_curves.RssSampler(server.proc.pid)
        try:
            capacity = run_bench.segload(
                args, server.port, os.path.join(results, "soak-capacity.json"),
                "16", MODEL, run_bench.RAW)[0]["throughput_rps"]
            rate = round(capacity * args.load, 1)
            run_bench.log(f"capacity {capacity:.1f} img/s; offering {rate} "
                          f"for {args.minutes} min")
            for minute in range(1, args.minutes + 1):
                rss.reset()
                step = open_loop_minute(
                    args, server.port,
                    os.path.join(results, f"soak-{minute}.json"), rate,
                    16 if minute == 1 else 0)
                minutes.append({
                    "minute": minute, "rps": step["throughput_rps"],
                    "p50_ms": step["latency_us"]["p50"] / 1e3,
                    "p99_ms": step["latency_us"]["p99"] / 1e3,
                    "peak_rss_mib": rss.peak(), "end_rss_mib": rss.now(),
                    "errors": sum(step["errors"].values()),
                    "late_sends": step["late_sends"]})
                run_bench.log(f"minute {minute}: {minutes[-1]}")
        finally:
            rss.stop()
            server.stop()
    passed, growth, drift, end_growth, bursts = verdict(minutes)
    with open(os.path.join(results, "soak.json"), "w") as f:
        json.dump({"capacity": capacity, "rate": rate, "minutes": minutes,
                   "rss_growth": growth, "p99_drift": drift,
                   "end_rss_growth": end_growth, "burst_minutes": bursts},
                  f, indent=1)
    errors = sum(m["errors"] for m in minutes)
    lines = [
        BEGIN, "",
        f"Measured {time.strftime('%Y-%m-%d')} by `make soak` (bench/soak.py): "
        f"{args.minutes} min at {rate} img/s, {100 * args.load:.0f}% of the "
        f"{capacity:.1f} img/s measured at concurrency 16 just before; 512x512 "
        "RAW images, open loop, constant arrivals; load average "
        f"{load_before:.2f} before. {run_bench.versions()}.", "",
        f"- Resident memory after the {WARMUP_MINUTES}-minute warm-up: at most "
        f"{100 * growth:+.1f}% over its value at the warm-up's end (limit "
        f"+{100 * MAX_RSS_GROWTH:.0f}%).",
        f"- End-of-minute resident memory (reported, not judged): at most "
        f"{100 * end_growth:+.1f}% over the same value; minutes whose peak "
        f"went over the limit: {', '.join(map(str, bursts)) or 'none'}.",
        f"- p99 of the last five minutes against minutes 3 to 7: "
        f"{100 * drift:+.1f}% (limit +{100 * MAX_P99_DRIFT:.0f}%).",
        f"- Failed requests: {errors}. Verdict: "
        f"{'passed' if passed and not errors else 'FAILED'}.", "",
        "| minute | img/s | p50 ms | p99 ms | peak RSS MiB | end RSS MiB |",
        "|---|---|---|---|---|---|"]
    for m in minutes:
        lines.append(f"| {m['minute']} | {m['rps']:.1f} | {m['p50_ms']:.1f} | "
                     f"{m['p99_ms']:.1f} | {m['peak_rss_mib']:.0f} | "
                     f"{m['end_rss_mib']:.0f} |")
    lines += ["", "![soak](docs/bench/soak.svg)", "", END]
    text = "\n".join(lines)
    print(text)
    if args.minutes >= 10:
        os.makedirs(os.path.join(ROOT, "docs", "bench"), exist_ok=True)
        with open(os.path.join(ROOT, "docs", "bench", "soak.svg"), "w") as f:
            f.write(line_chart(
                f"Soak: {rate} img/s for {args.minutes} min", "minute",
                "MiB / 10, or ms",
                {"peak RSS MiB / 10": [(m["minute"], m["peak_rss_mib"] / 10)
                                       for m in minutes],
                 "p99 ms": [(m["minute"], m["p99_ms"]) for m in minutes],
                 "p50 ms": [(m["minute"], m["p50_ms"]) for m in minutes]}))
        run_bench.write_between(text, args.output, BEGIN, END,
                                "## Soak (`make soak`)")
    if not passed or errors:
        sys.exit("make soak: failed (see above)")


if __name__ == "__main__":
    main()
