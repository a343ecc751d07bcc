"""Starts and stops the real segserve binary for the Python tests.

One helper for every test that runs the server: it starts segserve with the
given flags, reads the ports from its "ready grpc_port=N metrics_port=M"
line, and stops it the way a supervisor does (SIGTERM, then SIGKILL).
"""
import re
import signal
import subprocess
import time


class SegserveNotReady(RuntimeError):
    pass


def start_segserve(segserve, flags, log_path, timeout_s=300):
    """Starts `segserve` with `flags`; returns (process, grpc_port,
    metrics_port) once it is ready. Raises SegserveNotReady, with the log,
    when it exits or is not ready within `timeout_s`."""
    log = open(log_path, "w+")
    server = subprocess.Popen([segserve, *flags], stderr=log)
    deadline = time.time() + timeout_s
    while time.time() < deadline and server.poll() is None:
        log.seek(0)
        match = re.search(r"ready grpc_port=(\d+) metrics_port=(-?\d+)",
                          log.read())
        if match:
            return server, int(match.group(1)), int(match.group(2))
        time.sleep(0.1)
    server.kill()
    server.wait()
    log.seek(0)
    raise SegserveNotReady("segserve did not become ready:\n" + log.read())


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
