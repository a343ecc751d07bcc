"""Starts and stops the real segserve binary for the Python tests.

One helper for every test that runs the server: it starts segserve with the
given flags, reads the ports from its "ready grpc_port=N metrics_port=M"
line, and stops it the way a supervisor does (SIGTERM, then SIGKILL).
Tests that start several servers at once launch them all first and wait for
each afterwards, so that their models load in parallel. It also lists the
models a repository holds, for tests that check what the server serves.
"""
import os
import re
import signal
import subprocess
import time


class SegserveNotReady(RuntimeError):
    pass


def repository_models(repo):
    """(name, newest version) of each model directory of a repository, by
    name: what a server without version policies serves from it."""
    models = []
    for name in sorted(os.listdir(repo)):
        if not os.path.isfile(os.path.join(repo, name, "config.pbtxt")):
            continue
        versions = [int(v) for v in os.listdir(os.path.join(repo, name))
                    if v.isdigit()]
        models.append((name, str(max(versions)) if versions else ""))
    return models


def ready_ports(log_text):
    """(grpc_port, metrics_port) from segserve's ready line, or None."""
    match = re.search(r"ready grpc_port=(\d+) metrics_port=(-?\d+)", log_text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def ready_http_port(log_text):
    """The HTTP port of segserve's ready line (-1 with no HTTP), or None."""
    match = re.search(r"ready grpc_port=\d+ metrics_port=-?\d+ "
                      r"http_port=(-?\d+)", log_text)
    return int(match.group(1)) if match else None


class SegserveProcess:
    """A segserve started with `flags`, its stderr in `log_path`. Does not
    wait: call wait_ready."""

    def __init__(self, segserve, flags, log_path):
        self.log_path = log_path
        self._log = open(log_path, "w+")
        self.process = subprocess.Popen([segserve, *flags], stderr=self._log)

    def log_text(self):
        self._log.seek(0)
        return self._log.read()

    def wait_ready(self, timeout_s=300):
        """Returns (grpc_port, metrics_port) once segserve is ready. Raises
        SegserveNotReady, with the log, when it exits or is not ready within
        `timeout_s` (and kills it)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline and self.process.poll() is None:
            ports = ready_ports(self.log_text())
            if ports:
                return ports
            time.sleep(0.1)
        self.kill()
        raise SegserveNotReady("segserve did not become ready:\n"
                               + self.log_text())

    def stop(self, timeout_s=60):
        """SIGTERM (the drain), then SIGKILL after `timeout_s`; returns the
        exit code."""
        return stop_segserve(self.process, timeout_s)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def start_segserve(segserve, flags, log_path, timeout_s=300):
    """Starts `segserve` with `flags`; returns (process, grpc_port,
    metrics_port) once it is ready. Raises SegserveNotReady, with the log,
    when it exits or is not ready within `timeout_s`."""
    server = SegserveProcess(segserve, flags, log_path)
    grpc_port, metrics_port = server.wait_ready(timeout_s)
    return server.process, grpc_port, metrics_port


def stop_segserve(server, timeout_s=60):
    """SIGTERM (the drain), then SIGKILL after `timeout_s`; returns the exit
    code."""
    if server.poll() is not None:
        return server.returncode
    server.send_signal(signal.SIGTERM)
    try:
        return server.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.wait()
