#!/usr/bin/python3
"""Accuracy gates of the shipped scene models, through the real binaries.

Starts segserve on a model repository, then scores held-out scenes (seeds
that training never draws) with segdemo, which draws each scene, sends it
encoded as its seed says (PNG or JPEG) and compares the returned mask with
the scene's exact labels. segdemo exits 1 when a gate is missed.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import start_segserve, stop_segserve  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--segdemo", required=True)
    parser.add_argument("--model_repository", required=True)
    parser.add_argument("--gate", action="append", required=True,
                        help="MODEL:SCENES:MIN_MIOU:MIN_CLASS_IOU[:WxH]")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="segserve-gates-")
    server, port, _ = start_segserve(
        args.segserve,
        ["--model_repository=" + args.model_repository, "--grpc_port=0",
         "--metrics_port=0", "--host=127.0.0.1", "--intra_op_threads=2",
         "--default_model=scenes-sgcpnet"],
        os.path.join(tmp, "server.log"))
    failed = 0
    try:
        for gate in args.gate:
            parts = gate.split(":")
            model, count, min_miou, min_class = parts[:4]
            command = [args.segdemo, f"--target=127.0.0.1:{port}",
                       f"--model={model}", "--first_seed=0",
                       f"--count={count}", f"--min_miou={min_miou}",
                       f"--min_class_iou={min_class}"]
            if len(parts) > 4:
                width, height = parts[4].split("x")
                command += [f"--width={width}", f"--height={height}"]
            started = time.time()
            result = subprocess.run(command, capture_output=True, text=True)
            print(f"--- {gate} ({time.time() - started:.1f} s)")
            print(result.stdout + result.stderr, end="")
            print("PASS" if result.returncode == 0 else "FAIL")
            failed += result.returncode != 0
    finally:
        stop_segserve(server)
    print(f"{len(args.gate) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
