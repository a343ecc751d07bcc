#!/usr/bin/python3
"""Mask geometry through the real binaries, for every input size class.

Serves the shipped scenes-sgcpnet weights under two configs, STRETCH and
LETTERBOX, and segments scenes of fixed sizes from 256 to 1024 on each side.
segscore fails when a mask's size differs from its image's; the foreground
IoU (objects of any class against background) shows that the mask also lies
where the objects are: a transposed, shifted or mis-padded mask scores near
0. The bar (0.5) is a placement check, not an accuracy one: letterboxing a
1024x256 scene leaves its objects 10 to 60 pixels wide in the model input,
a scale the STRETCH-trained model rarely saw, and there it scores 0.76 to
0.85.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", ".."))
from tests.segserve_process import start_segserve, stop_segserve  # noqa: E402

SIDES = [256, 257, 480, 512, 777, 1024]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--segserve", required=True)
    parser.add_argument("--segscore", required=True)
    parser.add_argument("--model_repository", required=True)
    parser.add_argument("--min_foreground_iou", type=float, default=0.5)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="segserve-geometry-")
    source = os.path.join(args.model_repository, "scenes-sgcpnet")
    with open(os.path.join(source, "config.pbtxt")) as f:
        config = f.read()
    for mode in ("STRETCH", "LETTERBOX"):
        name = f"scenes-{mode.lower()}"
        os.makedirs(os.path.join(tmp, "repo", name, "1"))
        text = config.replace('name: "scenes-sgcpnet"', f'name: "{name}"')
        text = re.sub(r"resize: \w+", f"resize: {mode}", text)
        with open(os.path.join(tmp, "repo", name, "config.pbtxt"), "w") as f:
            f.write(text)
        shutil.copy(os.path.join(source, "1", "model.pt"),
                    os.path.join(tmp, "repo", name, "1", "model.pt"))

    server, port, _ = start_segserve(
        args.segserve,
        ["--model_repository=" + os.path.join(tmp, "repo"), "--grpc_port=0", "--http_port=-1",
         "--metrics_port=0", "--host=127.0.0.1", "--intra_op_threads=2",
         "--default_model=scenes-stretch"],
        os.path.join(tmp, "server.log"))

    failed = 0
    runs = 0
    try:
        for mode in ("stretch", "letterbox"):
            for width in SIDES:
                for height in SIDES:
                    runs += 1
                    result = subprocess.run([
                        args.segscore, f"--target=127.0.0.1:{port}",
                        f"--model=scenes-{mode}", f"--width={width}",
                        f"--height={height}", "--first_seed=0", "--count=2",
                        f"--min_foreground_iou={args.min_foreground_iou}"],
                        capture_output=True, text=True)
                    summary = [line for line in result.stdout.splitlines()
                               if "foreground IoU" in line]
                    status = "ok" if result.returncode == 0 else "FAIL"
                    print(f"{mode:9} {width:4}x{height:<4} {status} "
                          f"{summary[0].strip() if summary else ''} "
                          f"{result.stderr.strip()}")
                    failed += result.returncode != 0
    finally:
        stop_segserve(server)
    print(f"{runs - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
