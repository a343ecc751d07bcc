"""Replicas behind one name, as a headless Kubernetes Service gives them.

Real segserve replicas on 127.0.0.1, .2, .3 (same port) behind one DNS name
served by a real DNS server of the test's own (dnsmasq on a loopback port),
loaded by segload through the client library with round_robin over
dns://127.0.0.1:PORT/segserve.test:PORT. Checks, in one run:
  1. the requests spread over the replicas within +-15%;
  2. a fourth replica added to DNS gets its share within
     --grpc_max_connection_age_s plus a few seconds;
  3. a replica drained with SIGTERM costs no request;
  4. a replica killed with SIGKILL costs at most the requests in flight on it
     without retries, and none with the client's retry policy.
Every address used is on loopback.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

MAX_AGE_S = 3
AGE_GRACE_S = 2
NAME = "segserve.test"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", ".."))
from tests.segserve_process import (  # noqa: E402
    SegserveNotReady, SegserveProcess)


def free_port(hosts):
    """A TCP port that is free on every one of `hosts`."""
    for _ in range(100):
        probe = socket.socket()
        probe.bind((hosts[0], 0))
        port = probe.getsockname()[1]
        probe.close()
        try:
            for host in hosts:
                s = socket.socket()
                s.bind((host, port))
                s.close()
            return port
        except OSError:
            continue
    sys.exit("no port free on every replica address")


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Replica:
    def __init__(self, args, host, grpc_port, metrics_port, workdir):
        self.host = host
        self.metrics_port = metrics_port
        self.server = SegserveProcess(args.segserve, [
            f"--model_repository={args.model_repository}",
            "--default_model=scenes-sgcpnet",
            f"--host={host}", f"--grpc_port={grpc_port}",
            f"--metrics_port={metrics_port}", "--http_port=-1", "--cpu_cores=1",
            "--preprocess_threads=1", "--drain_timeout_s=20",
            f"--grpc_max_connection_age_s={MAX_AGE_S}",
            f"--grpc_max_connection_age_grace_s={AGE_GRACE_S}"],
            os.path.join(workdir, f"segserve-{host}.log"))
        self.process = self.server.process

    def wait_ready(self):
        try:
            self.server.wait_ready(timeout_s=120)
        except SegserveNotReady as e:
            sys.exit(f"replica {self.host} did not start: {e}")

    def text(self):
        return self.server.log_text()

    def requests(self):
        """Requests this replica answered (all codes), from its /metrics."""
        url = f"http://{self.host}:{self.metrics_port}/metrics"
        body = urllib.request.urlopen(url, timeout=5).read().decode()
        return sum(float(m) for m in re.findall(
            r"^segserve_requests_total\{[^}]*\} (\S+)$", body, re.M))

    def stop(self):
        self.server.kill()


class Dns:
    """dnsmasq answering NAME from a hosts file it re-reads on SIGHUP."""

    def __init__(self, workdir, addresses):
        self.port = free_udp_port()
        self.hosts = os.path.join(workdir, "hosts")
        self.write(addresses)
        self.log = open(os.path.join(workdir, "dnsmasq.log"), "w+")
        self.process = subprocess.Popen([
            "/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            "--no-resolv", "--no-hosts", f"--addn-hosts={self.hosts}",
            "--listen-address=127.0.0.1", "--bind-interfaces",
            f"--port={self.port}", "--pid-file=", "--user=root",
            "--log-facility=-"], stderr=self.log, stdout=self.log)
        deadline = time.time() + 10
        while "started" not in self.text():
            if time.time() > deadline or self.process.poll() is not None:
                sys.exit(f"dnsmasq did not start:\n{self.text()}")
            time.sleep(0.05)

    def write(self, addresses):
        with open(self.hosts + ".new", "w") as f:
            f.writelines(f"{a} {NAME}\n" for a in addresses)
        os.replace(self.hosts + ".new", self.hosts)

    def set(self, addresses):
        reads = self.text().count("read " + self.hosts)
        self.write(addresses)
        self.process.send_signal(signal.SIGHUP)
        while self.text().count("read " + self.hosts) == reads:
            time.sleep(0.05)

    def text(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        self.process.kill()
        self.process.wait()


def start_load(args, target, workdir, name, retries, concurrency, seconds):
    out = os.path.join(workdir, f"{name}.json")
    process = subprocess.Popen([
        args.segload, f"--target={target}", f"--concurrency={concurrency}",
        f"--duration_s={seconds}", "--warmup_requests=0", "--raw",
        "--sizes=96x96", "--mask_encoding=raw", "--deadline_ms=20000",
        f"--retry_max_attempts={retries}", f"--json={out}"],
        stdout=subprocess.DEVNULL, stderr=open(out + ".log", "w"))
    return process, out


def finish_load(process, out):
    if process.wait(timeout=300) != 0:
        sys.exit(f"segload failed:\n{open(out + '.log').read()}")
    with open(out) as f:
        step = json.load(f)["steps"][0]
    return step


def shares(before, after):
    counts = [a - b for a, b in zip(after, before)]
    total = sum(counts)
    return counts, [c / total if total else 0 for c in counts]


def check_spread(label, counts, failures):
    mean = sum(counts) / len(counts)
    print(f"{label}: requests per replica {counts}")
    for count in counts:
        if abs(count - mean) > 0.15 * mean:
            failures.append(f"{label}: {counts} is not within +-15% of the "
                            f"mean {mean:.1f}")
            return


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--segload", required=True)
    parser.add_argument("--model_repository", required=True)
    args = parser.parse_args()

    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
    grpc_port = free_port(hosts)
    metrics_port = free_port(hosts)
    workdir = tempfile.mkdtemp(prefix="segserve-replicas-")
    replicas = []
    dns = None
    failures = []
    try:
        # All four start now (the fourth is not in DNS yet), so that model
        # loading does not count against the scale-up bound.
        replicas = [Replica(args, h, grpc_port, metrics_port, workdir)
                    for h in hosts]
        for r in replicas:
            r.wait_ready()
        dns = Dns(workdir, hosts[:3])
        target = f"dns://127.0.0.1:{dns.port}/{NAME}:{grpc_port}"
        print(f"target {target}")

        # The main load, with the client's retry policy (3 attempts), runs
        # through every phase.
        main_load = start_load(args, target, workdir, "retrying", 3, 4, 50)
        time.sleep(3)

        # 1. Spread over three. Windows of several connection ages: each
        # GOAWAY takes its replica out of the rotation until it reconnects.
        before = [r.requests() for r in replicas]
        time.sleep(8)
        counts, _ = shares(before, [r.requests() for r in replicas])
        check_spread("three replicas", counts[:3], failures)
        if counts[3] != 0:
            failures.append(f"replica 4 got {counts[3]} requests before it "
                            "was in DNS")

        # 2. Scale-up: the fourth joins the name.
        start = replicas[3].requests()
        dns.set(hosts)
        added = time.time()
        while replicas[3].requests() == start:
            if time.time() - added > MAX_AGE_S + AGE_GRACE_S + 10:
                break
            time.sleep(0.1)
        reached_s = time.time() - added
        print(f"the fourth replica got its first request {reached_s:.1f} s "
              f"after it joined DNS (connection age {MAX_AGE_S} s)")
        if reached_s > MAX_AGE_S + 5:
            failures.append(f"the fourth replica waited {reached_s:.1f} s for "
                            f"traffic; the bound is {MAX_AGE_S} + 5 s")
        # Every connection has turned over once after a full age and grace.
        time.sleep(MAX_AGE_S * 1.1 + AGE_GRACE_S)
        before = [r.requests() for r in replicas]
        time.sleep(7)
        counts, _ = shares(before, [r.requests() for r in replicas])
        check_spread("four replicas", counts, failures)

        # 3. Drain replica 3 under a second load with the client library's
        # default retry policy (3 attempts): a drain must cost no request.
        # (Without retries a call that races the GOAWAY can end CANCELLED:
        # gRPC drops it before the server sees it.)
        strict = start_load(args, target, workdir, "drain", 3, 2, 6)
        time.sleep(2)
        replicas[2].process.send_signal(signal.SIGTERM)
        code = replicas[2].process.wait(timeout=60)
        if code != 0 or "stopped cleanly" not in replicas[2].text():
            failures.append(f"the drained replica exited {code}:\n"
                            f"{replicas[2].text()[-2000:]}")
        dns.set([hosts[0], hosts[1], hosts[3]])
        drain_step = finish_load(*strict)
        print(f"drain: {drain_step['ok']} ok, errors {drain_step['errors']}")
        if drain_step["failed"] != 0:
            failures.append("draining a replica failed requests: "
                            f"{drain_step['errors']}")

        # 4. Kill replica 2 under load; a load without retries may lose at
        # most what was in flight on it (its concurrency bounds that).
        lossy = start_load(args, target, workdir, "no-retry-kill", 1, 2, 6)
        time.sleep(2)
        replicas[1].process.kill()
        replicas[1].process.wait()
        kill_step = finish_load(*lossy)
        print(f"kill without retries: {kill_step['ok']} ok, errors "
              f"{kill_step['errors']}")
        if kill_step["failed"] > 2 or any(
                code != "UNAVAILABLE" for code in kill_step["errors"]):
            failures.append("killing a replica cost more than the requests in "
                            f"flight on it: {kill_step['errors']}")

        main_step = finish_load(*main_load)
        print(f"with retries, through all of it: {main_step['ok']} ok, "
              f"errors {main_step['errors']}")
        if main_step["failed"] != 0:
            failures.append("the client with a retry policy lost requests: "
                            f"{main_step['errors']}")
        if main_step["ok"] < 100:
            failures.append(f"only {main_step['ok']} requests succeeded")
    finally:
        for r in replicas:
            r.stop()
        if dns:
            dns.stop()
    if failures:
        print("FAILED:\n" + "\n".join(failures))
        print(f"logs in {workdir}")
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
