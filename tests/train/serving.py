"""Starts and stops the real segserve for the scene-model tests."""
import re
import signal
import subprocess
import sys
import time


def start_segserve(segserve, repository, log_path, default_model):
    """Starts segserve on free ports; returns (process, grpc_port)."""
    log = open(log_path, "w+")
    server = subprocess.Popen([
        segserve, f"--model_repository={repository}", "--grpc_port=0",
        "--metrics_port=0", "--host=127.0.0.1", "--intra_op_threads=2",
        f"--default_model={default_model}"], stderr=log)
    deadline = time.time() + 300
    while time.time() < deadline and server.poll() is None:
        log.seek(0)
        match = re.search(r"ready grpc_port=(\d+)", log.read())
        if match:
            return server, int(match.group(1))
        time.sleep(0.2)
    server.kill()
    log.seek(0)
    sys.exit("segserve did not become ready:\n" + log.read())


def stop_segserve(server):
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
